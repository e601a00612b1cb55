/*
 * Fuzz the line parsers and pure functions that see client or directory
 * bytes: POP3 commands, user names, base64 + SASL PLAIN, file map lines,
 * LDAP filter expansion.
 */
#include "autoconf.h"

#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "fuzz.h"
#include "pop3_parse.h"
#include "route.h"
#include "sasl.h"
#include "username.h"

const char *const fuzz_seeds[] = {
	"USER alice@example.org",
	"PASS p w  d",
	"AGFsaWNlAHNlY3JldA==",
	"alice@example.net store-a:143,store-b bob # c",
	"dsmith@store-b.example.net:2143",
	"J\xc3\x9cRGEN@Example.ORG",
	"*)(uid=*",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1);
	struct pop3_cmd cmd;
	struct username name;
	struct username_cfg ucfg = { true, '@', (char *)"example.org", false };
	unsigned char *dec = malloc(size / 4 * 3 + 3);
	struct sasl_creds creds = { 0 };
	struct route *route = NULL;
	char *user = NULL, filter[512];
	const char *error;
	size_t declen;

	memcpy(s, data, size);
	s[size] = '\0';

	(void)pop3_parse_line(s, size, &cmd);
	if (username_normalise(&ucfg, s, size, &name, &error) == 0)
		(void)ldap_expand("(&(uid=%u)(l=%l)(d=%d)(p=%p))", &name, PROTO_IMAP,
		    false, filter, sizeof(filter));
	(void)utf8_valid(s, size);
	if (base64_decode(s, size, dec, &declen) == 0 &&
	    sasl_plain_parse(dec, declen, &creds, &error) == 0)
		sasl_creds_clear(&creds);
	if (popmap_parse_line(s, &user, &route, &error) == 1) {
		free(user);
		route_unref(&route);
	}
	route = route_new();
	(void)route_add_host(route, s, &error);
	route_unref(&route);
	(void)ldap_filter_escape(s, size, filter, sizeof(filter));
	(void)ldap_dn_escape(s, size, filter, sizeof(filter));
	free(dec);
	free(s);
	return 0;
}

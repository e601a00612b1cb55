/*
 * Fuzz host values: hostport_parse() ("host", "host:port", "[v6]:port")
 * and route_add_host() on top of it (Perdition's "user@host:port").
 */
#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_route.h"
#include "route.h"
#include "util.h"

const char *const fuzz_seeds[] = {
	"store-a.example.net",
	"store-a.example.net:143",
	"[2001:db8::1]:993",
	"[::1]",
	"192.0.2.7:65535",
	"mbox-7@store-b:2143",
	"host:0",
	"host:+143",
	"a:b:c",
	NULL
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = malloc(size + 1), *host = NULL;
	const char *error = NULL;
	uint16_t port = 0;
	struct route *r;

	memcpy(s, data, size);
	s[size] = '\0';
	if (hostport_parse(s, &host, &port, &error) == 0) {
		/* A host (never empty, never bracketed), a port if one was given. */
		const char *close = strchr(s, ']');
		bool has_port = s[0] == '[' ? close != NULL && close[1] == ':' :
		    strchr(s, ':') != NULL;

		if (host == NULL || host[0] == '\0' || strlen(host) > strlen(s))
			abort();
		if (s[0] != '[' && strchr(host, ':') != NULL)
			abort();
		if (has_port != (port != 0))
			abort();	/* a port is 1..65535, and only if given */
		free(host);
	} else if (error == NULL || host != NULL)
		abort();

	r = route_new();
	for (int i = 0; i < 2; i++) {
		if (route_add_host(r, s, &error) < 0) {
			if (error == NULL)
				abort();
			break;
		}
		fuzz_check_route(r);
	}
	route_unref(&r);
	free(s);
	return 0;
}

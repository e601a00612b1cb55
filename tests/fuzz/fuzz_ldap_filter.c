/*
 * Fuzz LDAP escaping and filter expansion: ldap_filter_escape() (RFC 4515),
 * ldap_dn_escape() (RFC 4514), ldap_expand() with the input as a user name
 * and as a template, and ldap_filter_check() on the raw input.
 * Invariants: escaped output holds no unescaped special, unescapes to the
 * input, reports its full length however small the buffer and is always
 * NUL-terminated in it; a filter template expanded with any valid user
 * name still passes ldap_filter_check().
 */
#include "autoconf.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "fuzz.h"
#include "username.h"

const char *const fuzz_seeds[] = {
	"alice@example.org",
	"*)(uid=*",
	"\\2a(|(objectClass=*))",
	"#lead, trail ",
	"a+b;c<d>e\"f=g",
	"J\xc3\x9cRGEN@Example.ORG",
	"(&(uid=%u)(l=%l)(d=%d)(p=%p)(x=%%))",
	"(|(uid=x)(!(mail=*@*))(cn~=a)(sn>=b)(c:dn:=d))",
	"(uid=%q)",
	NULL
};

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Undo an escape; abort() on anything left unescaped that must not be. */
static void
check_escaped(const char *in, size_t inlen, const char *out, size_t outlen,
    bool dn)
{
	char *back = malloc(outlen + 1);
	size_t n = 0;

	for (size_t i = 0; i < outlen; i++) {
		unsigned char c = (unsigned char)out[i];

		if (c < 0x20 || c >= 0x7f)
			abort();	/* escapes keep output 7-bit printable */
		if (c == '\\') {
			int hi = i + 1 < outlen ? hexval(out[i + 1]) : -1,
			    lo = i + 2 < outlen ? hexval(out[i + 2]) : -1;

			if (hi >= 0 && lo >= 0) {
				back[n++] = (char)(hi << 4 | lo);
				i += 2;
			} else if (dn && i + 1 < outlen &&
			    strchr("\"+,;<>\\ #=", out[i + 1]) != NULL) {
				back[n++] = out[++i];
			} else
				abort();	/* a lone backslash */
			continue;
		}
		if (!dn && (c == '*' || c == '(' || c == ')'))
			abort();
		if (dn && (strchr("\"+,;<>=", c) != NULL ||
		    (i == 0 && (c == '#' || c == ' ')) ||
		    (i == outlen - 1 && c == ' ')))
			abort();
		back[n++] = (char)c;
	}
	if (n != inlen || memcmp(back, in, inlen) != 0)
		abort();
	free(back);
}

static void
escape(const char *in, size_t inlen, bool dn, size_t small)
{
	size_t cap = inlen * 3 + 1, len, len2;
	char *out = malloc(cap), *tiny = malloc(small + 1);

	len = dn ? ldap_dn_escape(in, inlen, out, cap) :
	    ldap_filter_escape(in, inlen, out, cap);
	if (len >= cap || strlen(out) != len)
		abort();
	check_escaped(in, inlen, out, len, dn);
	/*
	 * Truncated: the full length reported, and what fits is a prefix of
	 * the full escape (whole pieces only), NUL-terminated.
	 */
	len2 = dn ? ldap_dn_escape(in, inlen, tiny, small) :
	    ldap_filter_escape(in, inlen, tiny, small);
	if (len2 != len || (small > 0 && memchr(tiny, '\0', small) == NULL))
		abort();
	if (small > 0 && strncmp(tiny, out, strlen(tiny)) != 0)
		abort();
	free(tiny);
	free(out);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const tmpl[] = {
		"(&(objectClass=mailRecipient)(uid=%u))",
		"(|(mail=%u)(&(uid=%l)(dc=%d))(proto=%p))",
	};
	const char *in = (const char *)data, *error;
	struct username_cfg ucfg = { false, '@', (char *)"", false };
	struct username name = { "", "", "" };
	char *s = malloc(size + 1), out[1024];
	size_t small = size ? data[0] % 16 : 0, off;

	escape(in, size, false, small);
	escape(in, size, true, small);

	memcpy(s, data, size);
	s[size] = '\0';
	if (username_normalise(&ucfg, in, size, &name, &error) == 0) {
		for (size_t i = 0; i < sizeof(tmpl) / sizeof(tmpl[0]); i++) {
			if (ldap_expand(tmpl[i], &name, PROTO_IMAP, false, out,
			    sizeof(out)) == 0 &&
			    ldap_filter_check(out, &off, &error) != 0)
				abort();	/* a value broke out of its filter */
		}
		(void)ldap_expand("uid=%l,ou=%d,dc=example,dc=org", &name,
		    PROTO_POP3, true, out, sizeof(out));
	}
	/* The input as a template (directory.ldap.filter / base). */
	strcpy(name.full, "a*b@example.org");
	strcpy(name.local, "a*b");
	strcpy(name.domain, "example.org");
	if (ldap_expand(s, &name, PROTO_POP3, false, out, sizeof(out)) == 0 &&
	    strchr(s, '%') == NULL && strcmp(out, s) != 0)
		abort();
	(void)ldap_expand(s, &name, PROTO_IMAP, true, out, sizeof(out));
	if (ldap_filter_check(s, &off, &error) != 0 && off > size)
		abort();
	free(s);
	return 0;
}

#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "directory.h"

/*
 * Every user-supplied value that reaches LDAP goes through one of these.
 * RFC 4515 section 3: in a filter value, '*', '(', ')', '\' and NUL must be
 * escaped as \XX; we escape every byte outside printable ASCII as well, so
 * filters stay 7-bit and readable in logs.
 */
size_t
ldap_filter_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];
		bool esc = c == '*' || c == '(' || c == ')' || c == '\\' ||
		    c < 0x20 || c >= 0x7f;

		if (esc) {
			if (o + 3 < outlen) {
				out[o] = '\\';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
		} else {
			if (o + 1 < outlen)
				out[o] = (char)c;
			o++;
		}
	}
	if (outlen > 0)
		out[o < outlen ? o : outlen - 1] = '\0';
	return o;
}

/*
 * RFC 4514 section 2.4: in a DN attribute value, escape '"', '+', ',',
 * ';', '<', '>', '\', a leading '#' or space, a trailing space and NUL.
 * Control and non-ASCII bytes become \XX too.
 */
size_t
ldap_dn_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x20 || c >= 0x7f || c == '=') {
			if (o + 3 < outlen) {
				out[o] = '\\';
				out[o + 1] = hex[c >> 4];
				out[o + 2] = hex[c & 15];
			}
			o += 3;
			continue;
		}
		if (strchr("\"+,;<>\\", c) != NULL ||
		    (i == 0 && (c == '#' || c == ' ')) ||
		    (i == inlen - 1 && c == ' ')) {
			if (o + 1 < outlen)
				out[o] = '\\';
			o++;
		}
		if (o + 1 < outlen)
			out[o] = (char)c;
		o++;
	}
	if (outlen > 0)
		out[o < outlen ? o : outlen - 1] = '\0';
	return o;
}

int
ldap_expand(const char *tmpl, const struct username *name, enum proto_id proto,
    bool dn, char *out, size_t outlen)
{
	size_t o = 0;

	for (const char *p = tmpl; *p != '\0'; p++) {
		const char *v;
		size_t n;

		if (*p != '%') {
			if (o + 1 >= outlen)
				return -1;
			out[o++] = *p;
			continue;
		}
		switch (*++p) {
		case 'u':
			v = name->full;
			break;
		case 'l':
			v = name->local;
			break;
		case 'd':
			v = name->domain;
			break;
		case 'p':
			v = proto_name(proto);
			break;
		case '%':
			v = "%";
			if (o + 1 >= outlen)
				return -1;
			out[o++] = '%';
			continue;
		default:
			return -1;
		}
		n = dn ? ldap_dn_escape(v, strlen(v), out + o, outlen - o) :
		    ldap_filter_escape(v, strlen(v), out + o, outlen - o);
		if (o + n + 1 > outlen)
			return -1;
		o += n;
	}
	if (o >= outlen)
		return -1;
	out[o] = '\0';
	return 0;
}

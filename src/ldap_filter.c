#include "autoconf.h"

#include <stdio.h>
#include <string.h>

#include "directory.h"

/*
 * Every user-supplied value that reaches LDAP goes through one of these.
 * RFC 4515 section 3: in a filter value, '*', '(', ')', '\' and NUL must be
 * escaped as \XX; we escape every byte outside printable ASCII as well, so
 * filters stay 7-bit and readable in logs.
 *
 * Escaped output is written while it fits, piece by piece: what a short
 * buffer holds is always a prefix of the full result (never a piece cut in
 * two or skipped), followed by the NUL.  The full length is returned.
 */
struct esc_out {
	char	*out;
	size_t	 outlen;
	size_t	 o;		/* length of the full result so far */
	size_t	 w;		/* bytes written: a prefix */
	bool	 full;
};

static void
esc_put(struct esc_out *e, const char *piece, size_t n)
{
	if (!e->full && e->o + n < e->outlen) {
		memcpy(e->out + e->o, piece, n);
		e->w = e->o + n;
	} else
		e->full = true;
	e->o += n;
}

static void
esc_hex(struct esc_out *e, unsigned char c)
{
	static const char hex[] = "0123456789abcdef";
	char piece[3] = { '\\', hex[c >> 4], hex[c & 15] };

	esc_put(e, piece, 3);
}

static size_t
esc_end(struct esc_out *e)
{
	if (e->outlen > 0)
		e->out[e->w] = '\0';
	return e->o;
}

size_t
ldap_filter_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	struct esc_out e = { out, outlen, 0, 0, false };

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c == '*' || c == '(' || c == ')' || c == '\\' ||
		    c < 0x20 || c >= 0x7f)
			esc_hex(&e, c);
		else
			esc_put(&e, &in[i], 1);
	}
	return esc_end(&e);
}

/*
 * RFC 4514 section 2.4: in a DN attribute value, escape '"', '+', ',',
 * ';', '<', '>', '\', a leading '#' or space, a trailing space and NUL.
 */
size_t
ldap_dn_escape(const char *in, size_t inlen, char *out, size_t outlen)
{
	struct esc_out e = { out, outlen, 0, 0, false };

	for (size_t i = 0; i < inlen; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c < 0x20 || c >= 0x7f || c == '=') {
			esc_hex(&e, c);
			continue;
		}
		if (strchr("\"+,;<>\\", c) != NULL ||
		    (i == 0 && (c == '#' || c == ' ')) ||
		    (i == inlen - 1 && c == ' ')) {
			char piece[2] = { '\\', (char)c };

			esc_put(&e, piece, 2);
		} else
			esc_put(&e, &in[i], 1);
	}
	return esc_end(&e);
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

/*
 * RFC 4515 filter syntax, checked the way a server parses it, so that a
 * configured filter that the server would refuse is refused at load time
 * instead of failing every lookup.  Recursive descent over the string
 * representation; the depth is bounded.
 */
#define FILTER_DEPTH_MAX	32

struct fparse {
	const char	*p;
	const char	*error;
};

static bool
is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool
is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int
fp_fail(struct fparse *f, const char *why)
{
	if (f->error == NULL)
		f->error = why;
	return -1;
}

/* descr (keystring) or numericoid. */
static int
fp_oid(struct fparse *f)
{
	if (is_alpha(*f->p)) {
		while (is_alpha(*f->p) || is_digit(*f->p) || *f->p == '-')
			f->p++;
		return 0;
	}
	if (!is_digit(*f->p))
		return fp_fail(f, "expected an attribute name or OID");
	for (;;) {
		if (*f->p == '0' && is_digit(f->p[1]))
			return fp_fail(f, "leading zero in an OID");
		while (is_digit(*f->p))
			f->p++;
		if (*f->p != '.')
			return 0;
		f->p++;
		if (!is_digit(*f->p))
			return fp_fail(f, "malformed OID");
	}
}

/* attributedescription: oid *(";" option) */
static int
fp_attr(struct fparse *f)
{
	if (fp_oid(f) < 0)
		return -1;
	while (*f->p == ';') {
		f->p++;
		if (!is_alpha(*f->p) && !is_digit(*f->p) && *f->p != '-')
			return fp_fail(f, "empty attribute option");
		while (is_alpha(*f->p) || is_digit(*f->p) || *f->p == '-')
			f->p++;
	}
	return 0;
}

/*
 * assertionvalue: bytes up to ')' or '*' (when stars are allowed), with
 * '\XX' escapes; NUL, '(' and an unescaped '\' are not allowed.
 */
static int
fp_value(struct fparse *f, bool star_ok)
{
	for (;;) {
		unsigned char c = (unsigned char)*f->p;

		if (c == ')' || c == '\0' || (c == '*' && star_ok))
			return 0;
		if (c == '*')
			return fp_fail(f, "'*' in a value must be written \\2a");
		if (c == '(')
			return fp_fail(f, "'(' in a value must be written \\28");
		if (c == '\\') {
			if (!is_hex(f->p[1]) || !is_hex(f->p[2]))
				return fp_fail(f, "'\\' must start a two-digit hex escape");
			f->p += 3;
			continue;
		}
		f->p++;
	}
}

static int	fp_filter(struct fparse *f, int depth);

/* item: simple / present / substring / extensible, after the "(". */
static int
fp_item(struct fparse *f)
{
	if (*f->p == ':') {
		/* extensible without an attribute: [":dn"] ":" rule ":=" */
		goto extensible;
	}
	if (fp_attr(f) < 0)
		return -1;
	switch (*f->p) {
	case '~':
	case '>':
	case '<':
		if (f->p[1] != '=')
			return fp_fail(f, "expected '=' after '~', '>' or '<'");
		f->p += 2;
		return fp_value(f, false);
	case '=':
		f->p++;
		/* equality, presence ("=*") or substrings: stars separate. */
		if (fp_value(f, true) < 0)
			return -1;
		while (*f->p == '*') {
			f->p++;
			if (fp_value(f, true) < 0)
				return -1;
		}
		return 0;
	case ':':
		break;
	default:
		return fp_fail(f, "expected a filter type (=, ~=, >=, <=, :=)");
	}
extensible:
	if (strncmp(f->p, ":dn", 3) == 0 && (f->p[3] == ':' || f->p[3] == '='))
		f->p += 3;
	if (*f->p == ':' && f->p[1] != '=') {
		f->p++;
		if (fp_oid(f) < 0)
			return -1;
	}
	if (f->p[0] != ':' || f->p[1] != '=')
		return fp_fail(f, "malformed extensible match");
	f->p += 2;
	return fp_value(f, false);
}

static int
fp_filter(struct fparse *f, int depth)
{
	if (depth > FILTER_DEPTH_MAX)
		return fp_fail(f, "filter nested too deeply");
	if (*f->p != '(')
		return fp_fail(f, "expected '('");
	f->p++;
	switch (*f->p) {
	case '&':
	case '|':
		f->p++;
		if (*f->p != '(')
			return fp_fail(f, "'&' and '|' need at least one filter");
		while (*f->p == '(')
			if (fp_filter(f, depth + 1) < 0)
				return -1;
		break;
	case '!':
		f->p++;
		if (fp_filter(f, depth + 1) < 0)
			return -1;
		break;
	default:
		if (fp_item(f) < 0)
			return -1;
		break;
	}
	if (*f->p != ')')
		return fp_fail(f, *f->p == '\0' ? "missing ')'" : "expected ')'");
	f->p++;
	return 0;
}

int
ldap_filter_check(const char *filter, size_t *offset_r, const char **error_r)
{
	struct fparse f = { filter, NULL };

	if (fp_filter(&f, 0) == 0 && *f.p != '\0')
		fp_fail(&f, "text after the filter's closing ')'");
	if (f.error == NULL)
		return 0;
	*offset_r = (size_t)(f.p - filter);
	*error_r = f.error;
	return -1;
}

#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"
#include "util.h"

static bool
is_ctl(unsigned char c)
{
	return c < 0x20 || c == 0x7f;
}

bool
ctl_needs_quote(const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	if (*p == '\0')
		return true;
	for (; *p != '\0'; p++)
		if (*p == ' ' || *p == '"' || *p == '\\' || is_ctl(*p))
			return true;
	return false;
}

int
ctl_quote(struct buf *b, const char *value)
{
	const unsigned char *p = (const unsigned char *)value;

	if (!ctl_needs_quote(value))
		return buf_append_str(b, value);
	if (buf_append(b, "\"", 1) < 0)
		return -1;
	for (; *p != '\0'; p++) {
		int rc;

		switch (*p) {
		case '"':
			rc = buf_append(b, "\\\"", 2);
			break;
		case '\\':
			rc = buf_append(b, "\\\\", 2);
			break;
		case '\n':
			rc = buf_append(b, "\\n", 2);
			break;
		case '\r':
			rc = buf_append(b, "\\r", 2);
			break;
		case '\t':
			rc = buf_append(b, "\\t", 2);
			break;
		default:
			if (is_ctl(*p))
				rc = buf_printf(b, "\\x%02x", *p);
			else
				rc = buf_append(b, p, 1);
			break;
		}
		if (rc < 0)
			return -1;
	}
	return buf_append(b, "\"", 1);
}

void
ctl_rec_begin(struct ctl_rec *r, struct buf *b)
{
	r->b = b;
	r->started = false;
}

int
ctl_rec_str(struct ctl_rec *r, const char *key, const char *value)
{
	if (r->started && buf_append(r->b, " ", 1) < 0)
		return -1;
	r->started = true;
	if (buf_append_str(r->b, key) < 0 || buf_append(r->b, "=", 1) < 0)
		return -1;
	return ctl_quote(r->b, value != NULL ? value : "");
}

int
ctl_rec_u64(struct ctl_rec *r, const char *key, uint64_t value)
{
	char num[24];

	snprintf(num, sizeof(num), "%llu", (unsigned long long)value);
	return ctl_rec_str(r, key, num);
}

int
ctl_rec_end(struct ctl_rec *r)
{
	return buf_append(r->b, "\n", 1);
}

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

/*
 * One value starting at *pp: quoted or bare.  The unquoted text goes to
 * out (as long as the input, so it always fits).  *pp ends after it.
 */
static int
parse_value(const char **pp, char *out, const char **error_r)
{
	const char *p = *pp;

	if (*p != '"') {
		while (*p != '\0' && *p != ' ') {
			if (*p == '\\' || *p == '"' || is_ctl((unsigned char)*p)) {
				*error_r = "a bare value holds a quote, backslash or control byte";
				return -1;
			}
			*out++ = *p++;
		}
		*out = '\0';
		*pp = p;
		return 0;
	}
	for (p++; *p != '"'; p++) {
		if (*p == '\0') {
			*error_r = "unterminated quoted value";
			return -1;
		}
		if (is_ctl((unsigned char)*p)) {
			*error_r = "a control byte in a quoted value";
			return -1;
		}
		if (*p != '\\') {
			*out++ = *p;
			continue;
		}
		switch (*++p) {
		case '"':
		case '\\':
			*out++ = *p;
			break;
		case 'n':
			*out++ = '\n';
			break;
		case 'r':
			*out++ = '\r';
			break;
		case 't':
			*out++ = '\t';
			break;
		case 'x': {
			int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);

			if (hi < 0 || lo < 0 || (hi == 0 && lo == 0)) {
				*error_r = "bad \\x escape";
				return -1;
			}
			*out++ = (char)(hi * 16 + lo);
			p += 2;
			break;
		}
		default:
			*error_r = "unknown escape";
			return -1;
		}
	}
	*out = '\0';
	*pp = p + 1;
	if (**pp != '\0' && **pp != ' ') {
		*error_r = "text after a quoted value";
		return -1;
	}
	return 0;
}

int
ctl_parse_record(const char *line, struct ctl_field **fields_r, size_t *n_r,
    const char **error_r)
{
	struct ctl_field *f = NULL;
	size_t n = 0, cap = 0;
	const char *p = line;

	while (*p != '\0') {
		const char *key = p, *eq = p;
		char *value;

		while (*eq != '\0' && *eq != '=' && *eq != ' ' && *eq != '"' &&
		    *eq != '\\' && !is_ctl((unsigned char)*eq))
			eq++;
		if (*eq != '=' || eq == key) {
			*error_r = "expected key=value";
			goto fail;
		}
		value = xmalloc(strlen(eq + 1) + 1);
		p = eq + 1;
		if (parse_value(&p, value, error_r) < 0) {
			free(value);
			goto fail;
		}
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			f = xrealloc(f, cap * sizeof(*f));
		}
		f[n].key = xstrndup(key, (size_t)(eq - key));
		f[n].value = value;
		n++;
		if (*p == ' ') {
			p++;
			if (*p == '\0' || *p == ' ') {
				*error_r = "stray space";
				goto fail;
			}
		}
	}
	*fields_r = f;
	*n_r = n;
	return 0;
fail:
	ctl_fields_free(&f, n);
	return -1;
}

void
ctl_fields_free(struct ctl_field **fieldsp, size_t n)
{
	struct ctl_field *f = *fieldsp;

	if (f == NULL)
		return;
	*fieldsp = NULL;
	for (size_t i = 0; i < n; i++) {
		free(f[i].key);
		free(f[i].value);
	}
	free(f);
}

static bool
json_number(const char *v)
{
	size_t len = strlen(v);

	if (len == 0 || len > 18 || (v[0] == '0' && len > 1))
		return false;
	return strspn(v, "0123456789") == len;
}

static int
json_string(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	if (buf_append(b, "\"", 1) < 0)
		return -1;
	for (; *p != '\0'; p++) {
		int rc;

		if (*p == '"' || *p == '\\') {
			char esc[2] = { '\\', (char)*p };

			rc = buf_append(b, esc, 2);
		} else if (is_ctl(*p))
			rc = buf_printf(b, "\\u%04x", *p);
		else
			rc = buf_append(b, p, 1);
		if (rc < 0)
			return -1;
	}
	return buf_append(b, "\"", 1);
}

int
ctl_json(struct buf *b, const struct ctl_field *fields, size_t n)
{
	if (buf_append(b, "{", 1) < 0)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if ((i > 0 && buf_append(b, ", ", 2) < 0) ||
		    json_string(b, fields[i].key) < 0 ||
		    buf_append(b, ": ", 2) < 0)
			return -1;
		if (json_number(fields[i].value)) {
			if (buf_append_str(b, fields[i].value) < 0)
				return -1;
		} else if (json_string(b, fields[i].value) < 0)
			return -1;
	}
	return buf_append(b, "}", 1);
}

enum ctl_line_kind
ctl_line_kind(const char *line, const char **reason_r)
{
	if (strcmp(line, "ok") == 0)
		return CTL_LINE_OK;
	if (strncmp(line, "error:", 6) == 0) {
		line += 6;
		while (*line == ' ')
			line++;
		*reason_r = line;
		return CTL_LINE_ERROR;
	}
	return CTL_LINE_RECORD;
}

int
ctl_split(char *line, char **words, size_t max, size_t *n_r)
{
	size_t n = 0;
	char *p = line;

	for (; *p != '\0'; p++)
		if (is_ctl((unsigned char)*p) && *p != '\t')
			return -1;
	p = line;
	for (;;) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (*p == '\0')
			break;
		if (n == max)
			return -1;
		words[n++] = p;
		while (*p != '\0' && *p != ' ' && *p != '\t')
			p++;
	}
	if (n == 0)
		return -1;
	*n_r = n;
	return 0;
}

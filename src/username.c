#include "autoconf.h"

#include <string.h>

#include "username.h"

bool
utf8_valid(const char *str, size_t len)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t i = 0;

	while (i < len) {
		unsigned char c = s[i];
		size_t n;
		unsigned int cp, min;

		if (c < 0x80) {
			i++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1; cp = c & 0x1f; min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2; cp = c & 0x0f; min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3; cp = c & 0x07; min = 0x10000;
		} else
			return false;
		if (i + n >= len)
			return false;
		for (size_t k = 1; k <= n; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += n + 1;
	}
	return true;
}

int
username_normalise(const struct username_cfg *cfg, const char *in, size_t len,
    struct username *out, const char **error_r)
{
	return username_normalise_domain(cfg, NULL, in, len, out, error_r);
}

int
username_normalise_domain(const struct username_cfg *cfg, const char *domain,
    const char *in, size_t len, struct username *out, const char **error_r)
{
	char *full = out->full;
	const char *at;
	size_t n = 0;

	if (len == 0) {
		*error_r = "empty user name";
		return -1;
	}
	if (len > USERNAME_MAX) {
		*error_r = "user name too long";
		return -1;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if (c <= 0x20 || c == 0x7f) {
			*error_r = "user name contains a space or control character";
			return -1;
		}
		full[n++] = cfg->lower_case && c >= 'A' && c <= 'Z' ?
		    (char)(c - 'A' + 'a') : (char)c;
	}
	full[n] = '\0';
	if (!utf8_valid(full, n)) {
		*error_r = "user name is not valid UTF-8";
		return -1;
	}

	if (domain == NULL)
		domain = cfg->default_domain;
	at = cfg->delimiter != '\0' ? strrchr(full, cfg->delimiter) : NULL;
	if (at == NULL && domain != NULL && domain[0] != '\0') {
		size_t dlen = strlen(domain);

		if (n + 1 + dlen > USERNAME_MAX) {
			*error_r = "user name too long";
			return -1;
		}
		full[n++] = cfg->delimiter;
		memcpy(full + n, domain, dlen + 1);
		n += dlen;
		at = full + n - dlen - 1;
	}
	if (at == full || (at != NULL && at[1] == '\0')) {
		*error_r = "empty local part or domain";
		return -1;
	}
	if (at != NULL) {
		size_t llen = (size_t)(at - full);

		memcpy(out->local, full, llen);
		out->local[llen] = '\0';
		memcpy(out->domain, at + 1, n - llen);	/* includes NUL */
		if (cfg->strip_domain)
			full[llen] = '\0';
	} else {
		memcpy(out->local, full, n + 1);
		out->domain[0] = '\0';
	}
	return 0;
}

static bool
label_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-';
}

int
domain_check(const char *name, size_t len, char *out, size_t outlen,
    const char **error_r)
{
	size_t label = 0, labels = 0;
	bool digits = true;

	if (len > 0 && name[len - 1] == '.')
		len--;
	if (len == 0) {
		*error_r = "empty name";
		return -1;
	}
	if (len > DOMAIN_NAME_MAX || len >= outlen) {
		*error_r = "name too long";
		return -1;
	}
	for (size_t i = 0; i <= len; i++) {
		unsigned char c = i < len ? (unsigned char)name[i] : '.';

		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		if (c == '.') {
			if (label == 0) {
				*error_r = "empty label";
				return -1;
			}
			if (out[i - 1] == '-') {
				*error_r = "label ends with '-'";
				return -1;
			}
			labels++;
			label = 0;
			if (i < len) {
				out[i] = '.';
				digits = true;
			}
			continue;
		}
		if (!label_char(c)) {
			*error_r = "not a host name (letters, digits, '-' and '.' only)";
			return -1;
		}
		if (label == 0 && c == '-') {
			*error_r = "label starts with '-'";
			return -1;
		}
		if (++label > DOMAIN_LABEL_MAX) {
			*error_r = "label too long";
			return -1;
		}
		if (c < '0' || c > '9')
			digits = false;
		out[i] = (char)c;
	}
	out[len] = '\0';
	if (labels < 2) {
		*error_r = "a single label is no domain";
		return -1;
	}
	if (digits) {
		*error_r = "an address, not a name";
		return -1;
	}
	return 0;
}

int
domain_from_host(const char *name, size_t len, char *out, size_t outlen,
    const char **error_r)
{
	char *dot, *second;

	if (domain_check(name, len, out, outlen, error_r) < 0)
		return -1;
	dot = strchr(out, '.');
	second = strchr(dot + 1, '.');
	if (second != NULL)
		memmove(out, dot + 1, strlen(dot + 1) + 1);
	return 0;
}

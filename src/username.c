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

	at = cfg->delimiter != '\0' ? strrchr(full, cfg->delimiter) : NULL;
	if (at == NULL && cfg->default_domain != NULL &&
	    cfg->default_domain[0] != '\0') {
		size_t dlen = strlen(cfg->default_domain);

		if (n + 1 + dlen > USERNAME_MAX) {
			*error_r = "user name too long";
			return -1;
		}
		full[n++] = cfg->delimiter;
		memcpy(full + n, cfg->default_domain, dlen + 1);
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

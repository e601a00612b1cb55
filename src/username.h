/*
 * User-name rules: what the client typed becomes the name postern looks up
 * (and, unless the directory rewrites it, logs in to the backend with).
 * Pure functions; no I/O.
 */
#ifndef POSTERN_USERNAME_H
#define POSTERN_USERNAME_H

#include <stdbool.h>
#include <stddef.h>

#define USERNAME_MAX	256	/* bytes, after normalisation */

struct username_cfg {
	bool	 lower_case;		/* fold ASCII A-Z to a-z */
	char	 delimiter;		/* between local part and domain, '@' */
	char	*default_domain;	/* appended when the login has none ("" = off) */
	bool	 strip_domain;		/* drop "@domain" (after default_domain) */
};

/* The normalised name and its parts, for %u, %l and %d. */
struct username {
	char	 full[USERNAME_MAX + 1];
	char	 local[USERNAME_MAX + 1];
	char	 domain[USERNAME_MAX + 1];	/* "" when there is none */
};

/*
 * Apply the rules to `in` (len bytes, not necessarily NUL-terminated).
 * Rejects empty names, control characters, spaces, NUL, invalid UTF-8 and
 * names longer than USERNAME_MAX.  0 ok, -1 with a reason.
 */
int	username_normalise(const struct username_cfg *cfg, const char *in,
	    size_t len, struct username *out, const char **error_r);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool	utf8_valid(const char *s, size_t len);

#endif

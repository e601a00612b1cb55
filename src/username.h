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
#define DOMAIN_NAME_MAX	253	/* bytes of a DNS name, without a final dot */
#define DOMAIN_LABEL_MAX	63

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
/*
 * The same, with `domain` appended to a name without one instead of
 * cfg->default_domain; NULL means cfg->default_domain, "" none.  The
 * caller checked `domain` (domain_check()).
 */
int	username_normalise_domain(const struct username_cfg *cfg,
	    const char *domain, const char *in, size_t len,
	    struct username *out, const char **error_r);

/*
 * Is name[0..len) a DNS host name?  Letters, digits and '-' in labels of
 * 1..DOMAIN_LABEL_MAX bytes that neither start nor end with '-', at least
 * two labels, the last not all digits (no address literals), at most
 * DOMAIN_NAME_MAX bytes; one final '.' is allowed and dropped.  Writes
 * the name lower-cased into out (outlen > DOMAIN_NAME_MAX).  0, or -1
 * with a reason.
 */
int	domain_check(const char *name, size_t len, char *out, size_t outlen,
	    const char **error_r);

/*
 * The mail domain a server name stands for (the TLS server name a client
 * asked for, the DNS name of the address it reached): after
 * domain_check(), the first label is dropped when at least two remain
 * ("imap.example.org" -> "example.org"; "example.org" stays).  0, or -1
 * with a reason.
 */
int	domain_from_host(const char *name, size_t len, char *out,
	    size_t outlen, const char **error_r);

/* True if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
bool	utf8_valid(const char *s, size_t len);

#endif

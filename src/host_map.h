/*
 * Directory values to backend names: directory.host_map.  Exchange and
 * Domino entries name a server, not a host (msExchHomeServerName
 * "/o=Org/ou=.../cn=Servers/cn=EXCH01", Domino's mailServer
 * "CN=Mail1/O=Acme"); a rule maps such a value, matched exactly (ignoring
 * case) or by a POSIX extended regex with captures, to a host or a named
 * backend.  Rules are tried in order; the first that matches wins.  Pure.
 */
#ifndef POSTERN_HOST_MAP_H
#define POSTERN_HOST_MAP_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

/* Bounds: rules per map, and the length of a mapped host. */
#define HOST_MAP_RULES_MAX	1024
#define HOST_MAP_HOST_MAX	256

struct host_map_rule {
	char		*match;		/* the value, or the regex as written */
	bool		 is_regex;
	regex_t		 re;		/* is_regex: compiled, REG_ICASE */
	char		*host;		/* may hold \1 .. \9 (regex) and \\ */
};

struct host_map {
	struct host_map_rule	*rules;
	size_t			 n;
};

/*
 * Add a rule.  For a regex, `host` may refer to its groups as \1 .. \9.
 * 0, or -1 with a reason (a bad regex, a group it does not have, a
 * backslash that is not \N or \\, too many rules).
 */
int		 host_map_add(struct host_map *m, const char *match, bool is_regex,
		    const char *host, const char **error_r);
/*
 * Map `value`: 1 with the host in out, 0 if no rule matches, -1 if the
 * result would not fit in outlen bytes.
 */
int		 host_map_apply(const struct host_map *m, const char *value,
		    char *out, size_t outlen);
void		 host_map_free(struct host_map *m);

#endif

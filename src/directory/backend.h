/*
 * The directory's back-ends, one file each under src/directory/, listed in
 * one table (backends.c).  directory.c knows back-ends only through this
 * table, so adding one touches the table, its own file and its config
 * group, and no other back-end.
 */
#ifndef POSTERN_DIRECTORY_BACKEND_H
#define POSTERN_DIRECTORY_BACKEND_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct directory;

struct dir_backend {
	const char	*name;		/* as directory.type names it */
	/* Open for cfg.  0, or -1 with the reason in err ("FILE:LINE: ..."). */
	int		(*open)(const struct config *cfg, struct directory **dir_r,
			    char *err, size_t errlen);
	/*
	 * --check-config: load what it needs and, for a network back-end,
	 * prove it answers as the daemon would ask it.  0, or -1 with err.
	 */
	int		(*check)(const struct config *cfg, char *err, size_t errlen);
	/*
	 * Are its answers worth a route cache in front?  In-memory back-ends
	 * answer at once, and a replica's answers are current: a cache would
	 * only hide changes.
	 */
	bool		(*cacheable)(const struct config *cfg);
};

/* The back-end for `type`; never NULL. */
const struct dir_backend *dir_backend_get(enum dir_type type);

/*
 * A chain (directory.type as a list): each back-end is asked in order;
 * "not found" falls through to the next, an answer or a temporary failure
 * ends the chain.  Its answers name the back-end that gave them.
 */
int	dir_chain_open(const struct config *cfg, struct directory **dir_r,
	    char *err, size_t errlen);

extern const struct dir_backend dir_backend_file;
extern const struct dir_backend dir_backend_ldap;
extern const struct dir_backend dir_backend_regex;
extern const struct dir_backend dir_backend_http;
extern const struct dir_backend dir_backend_sql;

#endif

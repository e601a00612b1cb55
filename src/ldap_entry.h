/*
 * A directory entry's routing attributes to a route.  Pure (no network):
 * the values come from the directory as they are, so every one is checked
 * before it can name a host or a backend user.
 */
#ifndef POSTERN_LDAP_ENTRY_H
#define POSTERN_LDAP_ENTRY_H

#include <stddef.h>

#include <lber.h>

#include "directory.h"
#include "route.h"

/* The attribute values of one entry (NULL: the attribute is absent). */
struct ldap_entry_values {
	const char	 *dn;
	struct berval	**user;		/* the first value rewrites the login */
	struct berval	**hosts;	/* tried in order */
	struct berval	**port;		/* the first value wins over host:port */
	/* Attribute names, for the detail text. */
	const char	 *user_attr, *host_attr, *port_attr;
};

/*
 * DIR_OK with *route_r, DIR_NOT_FOUND (no host attribute) or DIR_TEMPFAIL
 * (a value that cannot be used: bad port, bad host, a control byte or NUL
 * in a value).  `detail` says which attributes were seen and what was
 * wrong, for logs and --lookup.
 */
enum dir_status	ldap_entry_route(const struct ldap_entry_values *v,
		    struct route **route_r, char *detail, size_t dlen);

#endif

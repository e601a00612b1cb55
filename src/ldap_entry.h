/*
 * A directory entry's routing attributes to a route.  Pure (no network):
 * the values come from the directory as they are, so every one is checked
 * before it can name a host or a backend user.
 */
#ifndef POSTERN_LDAP_ENTRY_H
#define POSTERN_LDAP_ENTRY_H

#include <stddef.h>

#include <lber.h>
#include <ldap.h>

#include "directory.h"
#include "host_map.h"
#include "route.h"

/* The attribute values of one entry (NULL: the attribute is absent). */
struct ldap_entry_values {
	const char	 *dn;
	struct berval	**user;		/* the first value rewrites the login */
	struct berval	**hosts;	/* tried in order */
	struct berval	**port;		/* the first value wins over host:port */
	/* Attribute names, for the detail text. */
	const char	 *user_attr, *host_attr, *port_attr;
	/* Host values to hosts (directory.host_map); NULL or empty: as they are. */
	const struct host_map *map;
	/* Starts the detail text; NULL: "ldap dn=DN". */
	const char	 *label;
};

/*
 * The values of the first of `names` (a NULL-terminated list) that the
 * entry has, with *name_r set to it; NULL (and names[0]) if none.
 */
struct berval	**ldap_entry_first_values(LDAP *ld, LDAPMessage *e,
		    char *const *names, const char **name_r);

/*
 * DIR_OK with *route_r, DIR_NOT_FOUND (no host attribute) or DIR_TEMPFAIL
 * (a value that cannot be used: bad port, bad host, a control byte or NUL
 * in a value).  `detail` says which attributes were seen and what was
 * wrong, for logs and --lookup.
 */
enum dir_status	ldap_entry_route(const struct ldap_entry_values *v,
		    struct route **route_r, char *detail, size_t dlen);

#endif

/*
 * A route: where a user's mail lives.  Immutable once built and shared by
 * reference count, so the cache and many sessions on many threads can hold
 * the same one.
 */
#ifndef POSTERN_ROUTE_H
#define POSTERN_ROUTE_H

#include <stddef.h>
#include <stdint.h>

#define ROUTE_HOSTS_MAX	8

struct route_host {
	char		*host;		/* name or address, no brackets */
	uint16_t	 port;		/* 0 = the protocol's backend default */
};

struct route {
	_Atomic unsigned	 refs;
	char			*backend_user;	/* NULL = log in as the client did */
	size_t			 nhosts;	/* tried in order */
	struct route_host	 hosts[ROUTE_HOSTS_MAX];
};

struct route	*route_new(void);
/* Add "host", "host:port", "[v6]:port" or Perdition's "user@host:port" (the
 * user part sets backend_user if unset).  0 ok, -1 with a reason. */
int		 route_add_host(struct route *r, const char *spec, const char **error_r);
void		 route_set_backend_user(struct route *r, const char *user);
struct route	*route_ref(struct route *r);
void		 route_unref(struct route **rp);

#endif

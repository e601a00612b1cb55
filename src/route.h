/*
 * A route: where a user's mail lives.  Immutable once built and shared by
 * reference count, so the cache and many sessions on many threads can hold
 * the same one.
 */
#ifndef POSTERN_ROUTE_H
#define POSTERN_ROUTE_H

#include <stdbool.h>
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
	char			*dn;		/* the directory entry, if any (for ldap-bind) */
	size_t			 nhosts;	/* tried in order */
	struct route_host	 hosts[ROUTE_HOSTS_MAX];
};

struct route	*route_new(void);
/* Add "host", "host:port", "[v6]:port" or Perdition's "user@host:port" (the
 * user part sets backend_user if unset).  0 ok, -1 with a reason. */
int		 route_add_host(struct route *r, const char *spec, const char **error_r);
/*
 * Log in to the backend as `user` (NULL: as the client did).  -1 with a
 * reason if it could carry a command into the backend's dialogue (a
 * control byte or a space) or is empty.
 */
int		 route_set_backend_user(struct route *r, const char *user,
		    const char **error_r);
bool		 route_user_valid(const char *user, size_t len);
struct route	*route_ref(struct route *r);
void		 route_unref(struct route **rp);


/*
 * The route cache: user -> route for `ttl` seconds, unknown users for
 * `negative_ttl`, at most `entries` routes and `negative_entries` unknown
 * users, each kind evicting only its own least recently used.  Safe to use
 * from any thread (sharded locks).  Expired routes stay until evicted so
 * that route_cache_get_stale() can serve them while the directory is down,
 * for at most `stale_max` seconds past their TTL (0: however old); a route
 * found older than that is dropped.
 */
struct route_cache;

enum route_cache_result {
	ROUTE_CACHE_MISS,
	ROUTE_CACHE_HIT,		/* *route_r set (referenced) */
	ROUTE_CACHE_HIT_NEGATIVE,	/* the user is known not to exist */
};

struct route_cache *route_cache_new(size_t entries, size_t negative_entries,
		    unsigned ttl, unsigned negative_ttl, unsigned stale_max);
void		 route_cache_free(struct route_cache **cachep);
/* Fresh entries only.  `now` in milliseconds (monotonic). */
enum route_cache_result route_cache_get(struct route_cache *c, const char *key,
		    uint64_t now, struct route **route_r);
/*
 * A positive entry, expired or not, up to `stale_max` seconds past its TTL
 * (at exactly TTL + stale_max it still is); NULL if none.
 */
struct route	*route_cache_get_stale(struct route_cache *c, const char *key,
		    uint64_t now);
/* Store a route (route != NULL, referenced by the cache) or a miss (NULL). */
void		 route_cache_put(struct route_cache *c, const char *key,
		    struct route *route, uint64_t now);
size_t		 route_cache_size(struct route_cache *c);
/* Drop key's entry (positive or negative); true if there was one. */
bool		 route_cache_remove(struct route_cache *c, const char *key);
/* Drop every entry; returns how many there were. */
size_t		 route_cache_clear(struct route_cache *c);

#endif

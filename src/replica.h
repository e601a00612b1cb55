/*
 * The replica's route table (directory.ldap.sync): directory entries, keyed
 * by entryUUID, and the logins they answer for.  One writer (the sync
 * thread) and many readers (workers).  Readers take one shard's read lock
 * for the length of a hash probe; the writer takes a shard's write lock
 * only to change that shard, never across network I/O.  The entry index
 * (uuid -> entry) belongs to the writer alone and has no lock.
 */
#ifndef POSTERN_REPLICA_H
#define POSTERN_REPLICA_H

#include <stdbool.h>
#include <stddef.h>

#include "directory.h"
#include "route.h"

struct replica;

/* A login whose answer changed: its new route (NULL: gone or ambiguous). */
struct replica_moved {
	char			*login;
	struct route		*route;		/* referenced, or NULL */
	struct replica_moved	*next;
};

struct replica	*replica_new(void);
void		 replica_free(struct replica **rp);

/*
 * Add or replace the entry `uuid` (len bytes): it answers for `keys`
 * (lower-cased here) with `status` and `route` (taken; NULL unless DIR_OK)
 * and `detail`.  Logins whose route changed are prepended to *moved.
 */
void		 replica_put(struct replica *r, const void *uuid, size_t len,
		    const char *const *keys, size_t nkeys, enum dir_status status,
		    struct route *route, const char *detail,
		    struct replica_moved **moved);
void		 replica_delete(struct replica *r, const void *uuid, size_t len,
		    struct replica_moved **moved);
/* The provider says the entry is unchanged (refresh present phase). */
void		 replica_present(struct replica *r, const void *uuid, size_t len);
/*
 * A refresh starts: no entry has been seen in it yet.  At its end in the
 * present mode, replica_sweep() deletes every entry not put or present
 * since: a refresh without a cookie thus replaces the table.
 */
void		 replica_refresh_begin(struct replica *r);
void		 replica_sweep(struct replica *r, struct replica_moved **moved);
void		 replica_moved_free(struct replica_moved **list);

/*
 * Readers.  DIR_OK with *route_r (referenced), DIR_NOT_FOUND, or
 * DIR_TEMPFAIL when entries disagree (ambiguous) or the entry is unusable.
 */
enum dir_status	 replica_lookup(struct replica *r, const char *login,
		    struct route **route_r, char *detail, size_t len);
size_t		 replica_entries(struct replica *r);
size_t		 replica_keys(struct replica *r);
bool		 route_same_hosts(const struct route *a, const struct route *b);

#endif

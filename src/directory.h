/*
 * The directory: user name in, route out.  Lookups are asynchronous: a
 * worker starts one and gets the answer later on its own loop, so nothing
 * a directory does (network round trips, file reads) ever blocks a worker.
 * The back-ends live in src/directory/, one file each, and are known here
 * only through their table (directory/backend.h).
 */
#ifndef POSTERN_DIRECTORY_H
#define POSTERN_DIRECTORY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "route.h"
#include "username.h"

struct loop;
struct directory;
struct dir_request;

enum dir_status {
	DIR_OK,			/* a route was found */
	DIR_NOT_FOUND,		/* no such user: refuse the login */
	DIR_TEMPFAIL,		/* unreachable, timed out or ambiguous: try later */
};

/*
 * Called on the requesting loop's thread, exactly once unless cancelled.
 * `route` is the callee's to keep (route_unref it); NULL unless DIR_OK.
 */
typedef void dir_result_cb(void *arg, enum dir_status status,
	    struct route *route, const char *detail);

/* A directory's request queues (LDAP search and bind pools). */
struct dir_queue_stats {
	size_t		 searches, binds;	/* waiting now */
	size_t		 max;			/* each queue's bound */
	unsigned long	 shed;			/* refused, queue full */
	unsigned	 up;			/* search connections bound */
};

/* Where a lookup's answer came from, as far as the route cache goes. */
enum dir_cache_result {
	DIR_CACHE_NONE,		/* no cache */
	DIR_CACHE_HIT,		/* a fresh route */
	DIR_CACHE_NEGATIVE,	/* a fresh "unknown user" */
	DIR_CACHE_MISS,		/* the directory was asked */
	DIR_CACHE_STALE,	/* asked, it failed, an expired route served */
};

/* For `stats`: the replica's state. */
struct replica_stats {
	size_t		 entries;	/* directory entries held */
	size_t		 keys;		/* logins they answer for */
	time_t		 updated;	/* last change applied (0: none yet) */
	unsigned	 age;		/* seconds since last known in sync */
	bool		 connected;	/* a provider session is up */
	bool		 ready;		/* the first refresh completed */
};

/*
 * A user's route changed while the daemon runs (a replica update, or a
 * flush that found another route).  Runs on the directory's own thread and
 * must not block; `route` is the new route, NULL if the user is gone.
 */
typedef void dir_moved_cb(void *arg, const char *login, const struct route *route);

struct dir_listener {
	dir_moved_cb	*cb;
	void		*arg;
};

struct directory_ops {
	const char	*name;
	/*
	 * Begin answering req: call dir_request_done() once, from any thread,
	 * or dir_request_drop() if it was cancelled before it was answered.
	 */
	void		(*lookup)(struct directory *dir, struct dir_request *req);
	/* Check a password by binding as dn (NULL: not supported). */
	void		(*verify)(struct directory *dir, struct dir_request *req);
	/*
	 * Stop every thread that could still answer (each request it held
	 * is answered first), then free.  May block: never called on a
	 * worker.
	 */
	void		(*free)(struct directory *dir);
	/* Its queues now (NULL: it has none).  Any thread; must not block. */
	void		(*queue_stats)(struct directory *dir,
			    struct dir_queue_stats *st);
	/* The replica's state (NULL: not a replica).  0 with *st filled. */
	int		(*replica_stats)(struct directory *dir,
			    struct replica_stats *st);
	/* Pass a listener on to directories inside this one (NULL: none). */
	void		(*listen)(struct directory *dir, const struct dir_listener *l);
};

struct directory {
	const struct directory_ops	*ops;
	struct route_cache		*cache;		/* NULL: no cache */
	bool				 serve_stale;
	/*
	 * Set once the directory runs (its threads may already be applying
	 * changes), so published atomically; NULL: nobody listens.
	 */
	_Atomic(const struct dir_listener *) listener;
};

/* Start telling `l` (which outlives the directory) about route changes. */
void		 directory_listen(struct directory *dir, const struct dir_listener *l);
/* Tell the listener (if any) that login's route is now `route`. */
void		 directory_moved(struct directory *dir, const char *login,
		    const struct route *route);

/* Open the directory the config names.  -1 with a message in err. */
int		 directory_open(const struct config *cfg, struct directory **dir_r,
		    char *err, size_t errlen);
void		 directory_close(struct directory **dirp);
/*
 * --check-config: load what the directory needs and, for a network
 * directory, prove it answers: connect, bind and search as the daemon
 * would.  0, or -1 with the reason in err.
 */
int		 directory_check(const struct config *cfg, char *err, size_t errlen);

/* Start a lookup answered on `loop`.  Never NULL. */
struct dir_request *directory_lookup(struct directory *dir, struct loop *loop,
		    const struct username *name, enum proto_id proto,
		    dir_result_cb *cb, void *arg);
/*
 * What a lookup may tell a back-end about the login, for back-ends that
 * decide on more than the name (http).  Copied; the password is wiped
 * after use.
 */
struct dir_client {
	const char	*addr;		/* the client's address, no port */
	const char	*password;	/* NULL: none */
	unsigned	 attempt;	/* 1 for a session's first login */
};
/* directory_lookup with the client's details. */
struct dir_request *directory_lookup_client(struct directory *dir,
		    struct loop *loop, const struct username *name,
		    enum proto_id proto, const struct dir_client *client,
		    dir_result_cb *cb, void *arg);
/*
 * Check a user's password against the directory (auth.verify = "ldap-bind").
 * Answers DIR_OK (right), DIR_NOT_FOUND (wrong) or DIR_TEMPFAIL, with no
 * route.  The password is copied and wiped after use.
 */
struct dir_request *directory_verify(struct directory *dir, struct loop *loop,
		    const char *dn, const char *password, dir_result_cb *cb,
		    void *arg);

/* The requester gives up: the callback will not run.  Sets *reqp to NULL. */
void		 dir_request_cancel(struct dir_request **reqp);

/* Blocking lookup for the command line (--lookup).  Not for workers. */
enum dir_status	 directory_lookup_sync(struct directory *dir,
		    const struct username *name, enum proto_id proto,
		    struct route **route_r, char *detail, size_t detaillen);

/* For implementations. */
const struct username	*dir_request_name(const struct dir_request *req);
enum proto_id		 dir_request_proto(const struct dir_request *req);
/*
 * For verify requests: the entry and the password; for lookups with a
 * client (directory_lookup_client), its password; else NULL.
 */
const char		*dir_request_dn(const struct dir_request *req);
const char		*dir_request_password(const struct dir_request *req);
/* The client's address ("" if unknown) and login attempt (0 if unknown). */
const char		*dir_request_client_addr(const struct dir_request *req);
unsigned		 dir_request_attempt(const struct dir_request *req);
/* The loop the answer goes to (a chain asks its members on it). */
struct loop		*dir_request_loop(const struct dir_request *req);
void			 dir_request_done(struct dir_request *req,
			    enum dir_status status, struct route *route,
			    const char *detail);
/*
 * Before dir_request_done(): the answerer asks that the client hear of a
 * refusal no sooner than ms after the answer arrives (nginx's Auth-Wait).
 * In the result callback: that wait, 0 if none was asked.
 */
void			 dir_request_set_wait(struct dir_request *req,
			    unsigned ms);
unsigned		 dir_request_wait(const struct dir_request *req);
/* Has the requester given up?  Safe from any thread. */
bool			 dir_request_cancelled(const struct dir_request *req);
/* Release a cancelled request unanswered (the answerer's reference). */
void			 dir_request_drop(struct dir_request *req);

const char	*dir_status_name(enum dir_status status);
/* In the result callback: how the cache took part in this answer. */
enum dir_cache_result dir_request_cache_result(const struct dir_request *req);
/* The directory's queues; -1 if it has none. */
int		 directory_queue_stats(struct directory *dir,
		    struct dir_queue_stats *st);

/* 0 with *st filled, or -1 if dir is not a replica. */
int		 directory_replica_stats(struct directory *dir,
		    struct replica_stats *st);

/* RFC 4515: escape a value for an LDAP filter.  Returns the length needed
 * (excluding NUL); writes at most outlen bytes, NUL-terminated. */
size_t		 ldap_filter_escape(const char *in, size_t inlen, char *out,
		    size_t outlen);
/* RFC 4514: escape a value for a DN attribute value. */
size_t		 ldap_dn_escape(const char *in, size_t inlen, char *out,
		    size_t outlen);
/*
 * Check a filter against RFC 4515's grammar (as a server parses it).  0,
 * or -1 with a reason and the offset where it went wrong.
 */
int		 ldap_filter_check(const char *filter, size_t *offset_r,
		    const char **error_r);
/*
 * Expand %u, %l, %d, %p and %% in a filter or base template, escaping each
 * value with `escape`.  -1 if the result would not fit in out or the
 * template has an unknown %-sequence.
 */
int		 ldap_expand(const char *tmpl, const struct username *name,
		    enum proto_id proto, bool dn, char *out, size_t outlen);

#endif

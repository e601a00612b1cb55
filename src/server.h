/*
 * Workers and what they share.  A generation (struct gen) is one loaded
 * config with its directory; sessions keep a reference to the generation
 * they started under, so a reload never changes a live session.  Each
 * worker owns a loop, its own listening sockets (SO_REUSEPORT) and its
 * sessions.
 */
#ifndef POSTERN_SERVER_H
#define POSTERN_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <time.h>

#include "config.h"
#include "directory.h"
#include "loop.h"
#include "metrics.h"
#include "tls.h"

struct session;
struct health;
struct health_prober;

struct reaper;
struct server;

struct gen {
	_Atomic unsigned	 refs;
	struct config		*cfg;
	struct directory	*dir;
	struct tls_ctxs		 tls;
	struct reaper		*reaper;	/* frees it; NULL: inline */
	struct server		*server;	/* for the directory's hook; may be NULL */
	struct dir_listener	 listener;	/* the directory's hook, into server */
	struct gen		*next;		/* the reaper's queue */
};

/*
 * Open what a config needs (directory, TLS contexts) and wrap it in a
 * generation that owns cfg.  On failure cfg is freed and err says why.
 * With a server, the directory's "moved" hook kicks that server's sessions
 * when directory.on_move = "kick".
 * With a reaper, the last reference hands the generation to the reaper's
 * thread: freeing it joins directory threads that may sit in a blocking
 * bind, which must never stall the worker that dropped it.
 */
int		 gen_new(struct config *cfg, struct reaper *reaper,
		    struct server *srv, struct gen **gen_r, char *err, size_t errlen);
struct gen	*gen_ref(struct gen *g);
void		 gen_unref(struct gen **gp);

/* The thread that frees generations.  NULL if it cannot start. */
struct reaper	*reaper_start(void);
/* Free what was handed over so far, then stop; sets *rp to NULL. */
void		 reaper_stop(struct reaper **rp);

struct listener {
	int			 fd;
	struct watch		 watch;
	struct timer		 pause;		/* accept back-off (EMFILE) */
	struct listen_cfg	 cfg;	/* own copy: outlives reloads */
	struct worker		*worker;
};

/* Reusable pipes for splice(2), so idle sessions hold none. */
struct pipe_pool {
	int	(*fds)[2];
	size_t	 n, cap;
	size_t	 size;		/* capacity of every pipe in the pool */
};

struct worker {
	unsigned		 id;
	pthread_t		 thread;
	struct loop		*loop;
	struct server		*server;
	struct gen		*gen;		/* current generation, referenced */
	struct listener		*listeners;
	size_t			 nlisteners;
	struct session		*sessions;
	unsigned		 nsessions;
	bool			 draining;
	struct pipe_pool	 pipes;
	struct health_prober	*prober;	/* active checks of its share */
	/* Written by this worker only; read on its thread (loop_post). */
	uint64_t		 logins_ok;
	uint64_t		 logins_failed;		/* refused: user, password */
	uint64_t		 logins_tempfail;	/* directory or backends down */
	struct worker_metrics	 metrics;	/* likewise */
};

/* Repeated warnings (refused connections, bad PROXY headers): once per this. */
#define LOG_EVERY_MS		10000

/* Open connections per client address, for limits.per_ip. */
#define PER_IP_SHARDS	16

struct per_ip_entry;

struct per_ip_shard {
	pthread_mutex_t		 mtx;
	struct per_ip_entry	*head;
};

/* Live sessions per normalised login, for limits.per_user. */
#define PER_USER_SHARDS		16
#define PER_USER_BUCKETS	256	/* per shard */

struct per_user_entry;

struct per_user_shard {
	pthread_mutex_t		 mtx;
	struct per_user_entry	*buckets[PER_USER_BUCKETS];
};

struct throttle;

struct server {
	struct worker		*workers;
	unsigned		 nworkers;
	_Atomic unsigned	 connections;	/* all workers: limits.connections */
	unsigned		 auto_connections;	/* when limits.connections = 0 */
	struct per_ip_shard	 per_ip[PER_IP_SHARDS];
	struct per_user_shard	 per_user[PER_USER_SHARDS];
	/* Failed logins (limits.throttle), by client address and by user. */
	struct throttle		*throttle_addr, *throttle_user;
	/* Backend addresses' health (health.entries fixed at start). */
	struct health		*health;
	struct log_limit	 log_refused, log_accept, log_per_user;
	struct log_limit	 log_untrusted;	/* proxy_protocol: peer not trusted */
	struct log_limit	 log_proxy;	/* bad or missing PROXY headers */
	time_t			 started;	/* wall clock, for uptime */

	/* For the control socket: all behind mtx. */
	pthread_mutex_t		 mtx;
	struct gen		*gen;		/* current generation, referenced */
	unsigned long		 generation;	/* 1 at start, +1 per reload */
	unsigned long		 reloads;	/* reload attempts finished */
	char			 reload_error[512];	/* of the last one, "" = ok */
	char			**drained;	/* backend host names */
	size_t			 ndrained;
	_Atomic size_t		 ndrained_hint;	/* lets logins skip the lock */
};

/*
 * Bind every listener of cfg once per worker (SO_REUSEPORT).  Each address
 * is first bound once without SO_REUSEPORT, so an address another process
 * holds is "already in use" instead of silently shared.  Called as root,
 * before privileges are dropped.  -1 with a message.
 */
int	server_bind(struct server *srv, const struct config *cfg,
	    unsigned nworkers, char *err, size_t errlen);
/* Start the worker threads under `gen` (a reference is taken per worker). */
int	server_start(struct server *srv, struct gen *gen);
/* Hand a new generation to every worker (reload). */
void	server_reload(struct server *srv, struct gen *gen);
/* Stop accepting; workers exit when their sessions end. */
void	server_drain(struct server *srv);
/* Close every session and stop the workers now. */
void	server_stop(struct server *srv);
/* Join the workers; 0 if all exited by `deadline_ms` (clock_ms), else -1. */
int	server_wait(struct server *srv, uint64_t deadline_ms);
/*
 * After server_wait: free the closed sessions and drop the workers'
 * generations.  The loops stay, so that threads still answering into them
 * (directory, resolver) can finish; server_free frees them after those
 * threads are gone.
 */
void	server_release(struct server *srv);
void	server_free(struct server *srv);
/*
 * limits.connections = 0: what the descriptor limit allows, leaving room
 * for listeners, pipes and the directory.
 */
unsigned server_connections_for(unsigned nofile, unsigned nworkers);

/*
 * Count one more connection from addr; false (nothing counted) when that
 * would pass `limit` (0 = no limit).  per_ip_release undoes one.
 */
bool	per_ip_acquire(struct server *srv, const struct sockaddr *addr,
	    unsigned limit);
void	per_ip_release(struct server *srv, const struct sockaddr *addr);

/*
 * The same for live sessions of one normalised login (limits.per_user),
 * counted from the backend step to the session's end.
 */
bool	per_user_acquire(struct server *srv, const char *user, unsigned limit);
void	per_user_release(struct server *srv, const char *user);
/* Live sessions counted for user now (tests, control). */
unsigned per_user_count(struct server *srv, const char *user);

/*
 * The generation new sessions get (main sets it at start and per reload;
 * NULL drops it at exit).  server_gen returns it referenced, or NULL.
 */
void	server_set_gen(struct server *srv, struct gen *gen);
struct gen *server_gen(struct server *srv, unsigned long *generation_r);
/* Main tried a reload: error NULL if it took. */
void	server_reload_done(struct server *srv, const char *error);
/* Reload attempts so far, and the last one's error ("" = ok). */
unsigned long server_reload_status(struct server *srv, char *err, size_t errlen);

/*
 * Drained backends: new logins skip these route hosts.  server_drain_backend
 * returns false if nothing changed (already drained / not drained).
 */
bool	server_drain_backend(struct server *srv, const char *host, bool drain);
bool	server_backend_drained(struct server *srv, const char *host);

/*
 * On the worker's thread: close the live sessions of `user` (normalised
 * login) whose backend host is not in keep[] (nkeep = 0: all of them),
 * saying `reason`.  Returns how many.
 */
unsigned worker_kick(struct worker *w, const char *user,
	    char *const *keep, size_t nkeep, const char *reason);
/*
 * From any thread: have every worker do the same.  keep NULL: all of the
 * user's sessions.
 */
void	server_kick_user(struct server *srv, const char *user,
	    const struct route *keep, const char *reason);

/* Session bookkeeping, for session.c. */
void	worker_add_session(struct worker *w, struct session *s);
void	worker_remove_session(struct worker *w, struct session *s);
/*
 * The session's connection stops counting against limits.connections and,
 * if it was counted there, limits.per_ip.  session_close does this; later
 * calls (worker_remove_session's among them) do nothing.
 */
void	worker_release_connection(struct worker *w, struct session *s);

/* A pipe for splice and its capacity in bytes; 0 if none can be made. */
size_t	pipe_pool_get(struct pipe_pool *pp, int fds[2]);
void	pipe_pool_put(struct pipe_pool *pp, int fds[2]);

#endif

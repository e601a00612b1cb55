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

#include "config.h"
#include "directory.h"
#include "loop.h"
#include "tls.h"

struct session;

struct gen {
	_Atomic unsigned	 refs;
	struct config		*cfg;
	struct directory	*dir;
	struct tls_ctxs		 tls;
};

/*
 * Open what a config needs (directory, TLS contexts) and wrap it in a
 * generation that owns cfg.  On failure cfg is freed and err says why.
 */
int		 gen_new(struct config *cfg, struct gen **gen_r, char *err,
		    size_t errlen);
struct gen	*gen_ref(struct gen *g);
void		 gen_unref(struct gen **gp);

struct listener {
	int			 fd;
	struct watch		 watch;
	struct listen_cfg	 cfg;	/* own copy: outlives reloads */
	struct worker		*worker;
};

/* Reusable pipes for splice(2), so idle sessions hold none. */
struct pipe_pool {
	int	(*fds)[2];
	size_t	 n, cap;
	size_t	 size;		/* capacity of every pipe in the pool */
};

struct server;

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
};

/* Open connections per client address, for limits.per_ip. */
#define PER_IP_SHARDS	16

struct per_ip_entry;

struct per_ip_shard {
	pthread_mutex_t		 mtx;
	struct per_ip_entry	*head;
};

struct server {
	struct worker		*workers;
	unsigned		 nworkers;
	_Atomic unsigned	 connections;	/* all workers: limits.connections */
	struct per_ip_shard	 per_ip[PER_IP_SHARDS];
};

/*
 * Bind every listener of cfg once per worker (SO_REUSEPORT).  Called as
 * root, before privileges are dropped.  -1 with a message.
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
void	server_free(struct server *srv);

/*
 * Count one more connection from addr; false (nothing counted) when that
 * would pass `limit` (0 = no limit).  per_ip_release undoes one.
 */
bool	per_ip_acquire(struct server *srv, const struct sockaddr *addr,
	    unsigned limit);
void	per_ip_release(struct server *srv, const struct sockaddr *addr);

/* Session bookkeeping, for session.c. */
void	worker_add_session(struct worker *w, struct session *s);
void	worker_remove_session(struct worker *w, struct session *s);

/* A pipe for splice and its capacity in bytes; 0 if none can be made. */
size_t	pipe_pool_get(struct pipe_pool *pp, int fds[2]);
void	pipe_pool_put(struct pipe_pool *pp, int fds[2]);

#endif

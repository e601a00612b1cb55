#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "directory/backend.h"
#include "log.h"
#include "loop.h"
#include "util.h"

/*
 * A request is shared by the requesting worker and whatever thread answers
 * it, so it is reference counted: one reference for each side.  Only the
 * requesting loop's thread runs the callback; `cancelled` is atomic so that
 * an answering thread can also see it and drop a request nobody waits for
 * before spending a round trip on it.
 */
struct dir_request {
	_Atomic unsigned	 refs;
	struct directory	*dir;
	bool			 from_cache;
	enum dir_cache_result	 cache_result;
	char			 key[USERNAME_MAX + 8];	/* "proto:user" */
	struct loop		*loop;
	dir_result_cb		*cb;
	void			*arg;
	_Atomic bool		 cancelled;
	struct username		 name;
	enum proto_id		 proto;
	enum dir_status		 status;
	struct route		*route;
	char			 detail[512];
	char			*dn;		/* verify requests */
	char			*password;	/* verify requests, client's; wiped */
	char			 client_addr[64];
	unsigned		 attempt;
	unsigned		 wait_ms;	/* dir_request_set_wait() */
};

static const char *const status_names[] = {
	[DIR_OK] = "ok",
	[DIR_NOT_FOUND] = "not-found",
	[DIR_TEMPFAIL] = "tempfail",
};

const char *
dir_status_name(enum dir_status status)
{
	return status_names[status];
}

/* Does any back-end of the chain want a route cache in front of it? */
static bool
directory_cacheable(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->directory.ntypes; i++) {
		const struct dir_backend *b = dir_backend_get(cfg->directory.type[i]);

		if (b->cacheable != NULL && b->cacheable(cfg))
			return true;
	}
	return false;
}

int
directory_open(const struct config *cfg, struct directory **dir_r, char *err,
    size_t errlen)
{
	struct directory *dir;
	int rc;

	if (cfg->directory.ntypes == 1)
		rc = dir_backend_get(cfg->directory.type[0])->open(cfg, &dir,
		    err, errlen);
	else
		rc = dir_chain_open(cfg, &dir, err, errlen);
	if (rc < 0)
		return -1;
	/* The cache sits in front of the whole chain. */
	if (cfg->directory.cache.entries > 0 && directory_cacheable(cfg)) {
		dir->cache = route_cache_new(cfg->directory.cache.entries,
		    cfg->directory.cache.negative_entries,
		    cfg->directory.cache.ttl, cfg->directory.cache.negative_ttl,
		    cfg->directory.cache.stale_max);
		dir->serve_stale = cfg->directory.cache.serve_stale;
	}
	*dir_r = dir;
	return 0;
}

void
directory_close(struct directory **dirp)
{
	struct directory *dir = *dirp;
	struct route_cache *cache;

	if (dir == NULL)
		return;
	*dirp = NULL;
	/* Its threads answer into the cache: stop them before freeing it. */
	cache = dir->cache;
	dir->ops->free(dir);
	route_cache_free(&cache);
}

int
directory_check(const struct config *cfg, char *err, size_t errlen)
{
	for (size_t i = 0; i < cfg->directory.ntypes; i++)
		if (dir_backend_get(cfg->directory.type[i])->check(cfg, err,
		    errlen) < 0)
			return -1;
	return 0;
}

int
directory_replica_stats(struct directory *dir, struct replica_stats *st)
{
	if (dir == NULL || dir->ops->replica_stats == NULL)
		return -1;
	return dir->ops->replica_stats(dir, st);
}

static void
request_unref(struct dir_request *req)
{
	if (atomic_fetch_sub(&req->refs, 1) != 1)
		return;
	route_unref(&req->route);
	explicit_bzero(&req->name, sizeof(req->name));
	free(req->dn);
	secret_free(&req->password);
	free(req);
}

struct dir_request *
directory_lookup(struct directory *dir, struct loop *loop,
    const struct username *name, enum proto_id proto, dir_result_cb *cb,
    void *arg)
{
	return directory_lookup_client(dir, loop, name, proto, NULL, cb, arg);
}

struct dir_request *
directory_lookup_client(struct directory *dir, struct loop *loop,
    const struct username *name, enum proto_id proto,
    const struct dir_client *client, dir_result_cb *cb, void *arg)
{
	struct dir_request *req = xcalloc(1, sizeof(*req));

	if (client != NULL) {
		str_copy(req->client_addr, client->addr != NULL ? client->addr :
		    "", sizeof(req->client_addr));
		if (client->password != NULL)
			req->password = xstrdup(client->password);
		req->attempt = client->attempt;
	}

	atomic_init(&req->refs, 2);
	req->loop = loop;
	req->cb = cb;
	req->arg = arg;
	req->name = *name;
	req->proto = proto;
	req->dir = dir;
	snprintf(req->key, sizeof(req->key), "%s:%s", proto_name(proto), name->full);
	if (dir->cache != NULL) {
		struct route *route = NULL;

		switch (route_cache_get(dir->cache, req->key, clock_ms(), &route)) {
		case ROUTE_CACHE_HIT:
			req->from_cache = true;
			req->cache_result = DIR_CACHE_HIT;
			dir_request_done(req, DIR_OK, route, "cache hit");
			return req;
		case ROUTE_CACHE_HIT_NEGATIVE:
			req->from_cache = true;
			req->cache_result = DIR_CACHE_NEGATIVE;
			dir_request_done(req, DIR_NOT_FOUND, NULL,
			    "cache hit (unknown user)");
			return req;
		case ROUTE_CACHE_MISS:
			req->cache_result = DIR_CACHE_MISS;
			break;
		}
	}
	dir->ops->lookup(dir, req);
	return req;
}

struct dir_request *
directory_verify(struct directory *dir, struct loop *loop, const char *dn,
    const char *password, dir_result_cb *cb, void *arg)
{
	struct dir_request *req = xcalloc(1, sizeof(*req));

	atomic_init(&req->refs, 2);
	req->loop = loop;
	req->cb = cb;
	req->arg = arg;
	req->dir = dir;
	req->from_cache = true;		/* never cached */
	req->dn = xstrdup(dn);
	req->password = xstrdup(password);
	if (dir->ops->verify == NULL)
		dir_request_done(req, DIR_TEMPFAIL, NULL,
		    "this directory cannot check passwords");
	else if (password[0] == '\0')
		/* An empty password would be an unauthenticated bind: it "works". */
		dir_request_done(req, DIR_NOT_FOUND, NULL, "empty password");
	else
		dir->ops->verify(dir, req);
	return req;
}

const char *
dir_request_dn(const struct dir_request *req)
{
	return req->dn;
}

const char *
dir_request_password(const struct dir_request *req)
{
	return req->password;
}

const char *
dir_request_client_addr(const struct dir_request *req)
{
	return req->client_addr;
}

unsigned
dir_request_attempt(const struct dir_request *req)
{
	return req->attempt;
}

struct loop *
dir_request_loop(const struct dir_request *req)
{
	return req->loop;
}

void
dir_request_cancel(struct dir_request **reqp)
{
	struct dir_request *req = *reqp;

	if (req == NULL)
		return;
	*reqp = NULL;
	req->cancelled = true;
	request_unref(req);
}

bool
dir_request_cancelled(const struct dir_request *req)
{
	return req->cancelled;
}

void
dir_request_drop(struct dir_request *req)
{
	request_unref(req);
}

void
dir_request_set_wait(struct dir_request *req, unsigned ms)
{
	req->wait_ms = ms;
}

unsigned
dir_request_wait(const struct dir_request *req)
{
	return req->wait_ms;
}

enum dir_cache_result
dir_request_cache_result(const struct dir_request *req)
{
	return req->cache_result;
}

int
directory_queue_stats(struct directory *dir, struct dir_queue_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (dir->ops->queue_stats == NULL)
		return -1;
	dir->ops->queue_stats(dir, st);
	return 0;
}

const struct username *
dir_request_name(const struct dir_request *req)
{
	return &req->name;
}

enum proto_id
dir_request_proto(const struct dir_request *req)
{
	return req->proto;
}

/* Runs on the requester's loop. */
static void
request_deliver(void *arg)
{
	struct dir_request *req = arg;

	if (!req->cancelled) {
		struct route *route = req->route;

		req->route = NULL;
		req->cancelled = true;	/* the requester's reference is spent */
		req->cb(req->arg, req->status, route, req->detail);
		request_unref(req);
	}
	request_unref(req);
}

/*
 * Remember the answer; on a directory failure, fall back to a stale route
 * (one no older than directory.cache.stale_max past its TTL).
 */
static void
request_cache(struct dir_request *req, enum dir_status *status,
    struct route **route, char *detail, size_t detaillen)
{
	struct route_cache *cache = req->dir->cache;
	struct route *stale;

	switch (*status) {
	case DIR_OK:
		route_cache_put(cache, req->key, *route, clock_ms());
		break;
	case DIR_NOT_FOUND:
		route_cache_put(cache, req->key, NULL, clock_ms());
		break;
	case DIR_TEMPFAIL:
		if (!req->dir->serve_stale ||
		    (stale = route_cache_get_stale(cache, req->key,
		    clock_ms())) == NULL)
			break;
		log_warning("directory unavailable (%s): serving a stale route "
		    "for %s", detail, req->name.full);
		snprintf(detail, detaillen, "stale cache entry");
		req->cache_result = DIR_CACHE_STALE;
		*status = DIR_OK;
		*route = stale;
		break;
	}
}

void
dir_request_done(struct dir_request *req, enum dir_status status,
    struct route *route, const char *detail)
{
	str_copy(req->detail, detail != NULL ? detail : "", sizeof(req->detail));
	if (req->dir != NULL && req->dir->cache != NULL && !req->from_cache)
		request_cache(req, &status, &route, req->detail, sizeof(req->detail));
	req->status = status;
	req->route = route;
	if (loop_post(req->loop, request_deliver, req) < 0) {
		log_error("directory: cannot hand an answer back to a worker");
		request_unref(req);
	}
}

/* --lookup: run a private loop until the answer arrives. */
struct sync_answer {
	struct loop	*loop;
	enum dir_status	 status;
	struct route	*route;
	char		*detail;
	size_t		 detaillen;
};

static void
sync_done(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct sync_answer *a = arg;

	a->status = status;
	a->route = route;
	str_copy(a->detail, detail, a->detaillen);
	loop_stop(a->loop);
}

enum dir_status
directory_lookup_sync(struct directory *dir, const struct username *name,
    enum proto_id proto, struct route **route_r, char *detail,
    size_t detaillen)
{
	struct sync_answer a = { .status = DIR_TEMPFAIL, .detail = detail,
	    .detaillen = detaillen };

	detail[0] = '\0';
	if ((a.loop = loop_new()) == NULL) {
		str_copy(detail, "cannot create an event loop", detaillen);
		return DIR_TEMPFAIL;
	}
	(void)directory_lookup(dir, a.loop, name, proto, sync_done, &a);
	loop_run(a.loop);
	loop_free(&a.loop);
	*route_r = a.route;
	return a.status;
}

void
directory_listen(struct directory *dir, const struct dir_listener *l)
{
	atomic_store_explicit(&dir->listener, l, memory_order_release);
	if (dir->ops->listen != NULL)
		dir->ops->listen(dir, l);
}

void
directory_moved(struct directory *dir, const char *login, const struct route *route)
{
	const struct dir_listener *l =
	    atomic_load_explicit(&dir->listener, memory_order_acquire);

	if (l != NULL)
		l->cb(l->arg, login, route);
}

#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory.h"
#include "log.h"
#include "loop.h"
#include "util.h"

/*
 * A request is shared by the requesting worker and whatever thread answers
 * it, so it is reference counted: one reference for each side.  Only the
 * requesting loop's thread reads `cancelled` and runs the callback, so
 * cancellation needs no lock.
 */
struct dir_request {
	_Atomic unsigned	 refs;
	struct loop		*loop;
	dir_result_cb		*cb;
	void			*arg;
	bool			 cancelled;
	struct username		 name;
	enum proto_id		 proto;
	enum dir_status		 status;
	struct route		*route;
	char			 detail[160];
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

int
directory_open(const struct config *cfg, struct directory **dir_r, char *err,
    size_t errlen)
{
	switch (cfg->directory.type) {
	case DIR_TYPE_FILE:
		return dir_file_open(cfg->directory.file_path, dir_r, err, errlen);
	case DIR_TYPE_LDAP:
		snprintf(err, errlen, "%s: directory.type: \"ldap\" is not "
		    "available in this build yet; use \"file\"", cfg->path);
		return -1;
	}
	return -1;
}

void
directory_close(struct directory **dirp)
{
	if (*dirp == NULL)
		return;
	(*dirp)->ops->free(*dirp);
	*dirp = NULL;
}

static void
request_unref(struct dir_request *req)
{
	if (atomic_fetch_sub(&req->refs, 1) != 1)
		return;
	route_unref(&req->route);
	explicit_bzero(&req->name, sizeof(req->name));
	free(req);
}

struct dir_request *
directory_lookup(struct directory *dir, struct loop *loop,
    const struct username *name, enum proto_id proto, dir_result_cb *cb,
    void *arg)
{
	struct dir_request *req = xcalloc(1, sizeof(*req));

	atomic_init(&req->refs, 2);
	req->loop = loop;
	req->cb = cb;
	req->arg = arg;
	req->name = *name;
	req->proto = proto;
	dir->ops->lookup(dir, req);
	return req;
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

void
dir_request_done(struct dir_request *req, enum dir_status status,
    struct route *route, const char *detail)
{
	req->status = status;
	req->route = route;
	str_copy(req->detail, detail != NULL ? detail : "", sizeof(req->detail));
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

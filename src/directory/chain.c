#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>

#include "directory.h"
#include "directory/backend.h"
#include "route.h"
#include "util.h"

/*
 * A chain of back-ends (directory.type as a list).  Each lookup asks the
 * members in order on the requester's own loop: "not found" moves on to
 * the next, an answer or a temporary failure is the chain's answer.  A
 * temporary failure never falls through: a later back-end's answer could
 * be a guess the failed one would have overruled.
 */

struct dir_chain {
	struct directory	 dir;
	struct directory	*members[DIR_CHAIN_MAX];
	const char		*names[DIR_CHAIN_MAX];
	size_t			 n;
};

/* One lookup on its way down the chain; lives on the requester's loop. */
struct chain_step {
	struct dir_chain	*chain;
	struct dir_request	*req;	/* the chain's answer, owed to the requester */
	struct dir_request	*member;	/* the member's request, while asked */
	size_t			 i;	/* the member asked now */
};

static void	chain_ask(struct chain_step *);

/*
 * Runs on the requester's loop.  The chain is still open unless the
 * requester gave up: its session holds the generation, and cancelling
 * happens on this same thread, so test that before touching the chain.
 */
static void
chain_answer(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct chain_step *st = arg;
	char text[512];

	if (dir_request_cancelled(st->req)) {
		route_unref(&route);
		dir_request_drop(st->req);
		free(st);
		return;
	}
	if (status == DIR_NOT_FOUND && st->i + 1 < st->chain->n) {
		st->i++;
		chain_ask(st);
		return;
	}
	if (status == DIR_NOT_FOUND)
		snprintf(text, sizeof(text), "no back-end knows the user (last, "
		    "%s: %s)", st->chain->names[st->i], detail);
	else
		snprintf(text, sizeof(text), "%s: %s", st->chain->names[st->i],
		    detail);
	/* The final answer's member says how long its refusal waits. */
	dir_request_set_wait(st->req, dir_request_wait(st->member));
	dir_request_done(st->req, status, route, text);
	free(st);
}

static void
chain_ask(struct chain_step *st)
{
	struct dir_client client = { .addr = dir_request_client_addr(st->req),
	    .password = dir_request_password(st->req),
	    .attempt = dir_request_attempt(st->req) };

	st->member = directory_lookup_client(st->chain->members[st->i],
	    dir_request_loop(st->req), dir_request_name(st->req),
	    dir_request_proto(st->req), &client, chain_answer, st);
}

static void
chain_lookup(struct directory *dir, struct dir_request *req)
{
	struct chain_step *st = xcalloc(1, sizeof(*st));

	st->chain = (struct dir_chain *)dir;
	st->req = req;
	chain_ask(st);
}

/* Passwords are checked by the first member that can check them. */
static void
chain_verify(struct directory *dir, struct dir_request *req)
{
	struct dir_chain *dc = (struct dir_chain *)dir;

	for (size_t i = 0; i < dc->n; i++) {
		if (dc->members[i]->ops->verify != NULL) {
			dc->members[i]->ops->verify(dc->members[i], req);
			return;
		}
	}
	dir_request_done(req, DIR_TEMPFAIL, NULL,
	    "no back-end of this directory can check passwords");
}

static int
chain_replica_stats(struct directory *dir, struct replica_stats *st)
{
	struct dir_chain *dc = (struct dir_chain *)dir;

	for (size_t i = 0; i < dc->n; i++)
		if (directory_replica_stats(dc->members[i], st) == 0)
			return 0;
	return -1;
}

/* The first member with queues (an LDAP pool) stands for the chain. */
static void
chain_queue_stats(struct directory *dir, struct dir_queue_stats *st)
{
	struct dir_chain *dc = (struct dir_chain *)dir;

	for (size_t i = 0; i < dc->n; i++)
		if (directory_queue_stats(dc->members[i], st) == 0)
			return;
}

static void
chain_listen(struct directory *dir, const struct dir_listener *l)
{
	struct dir_chain *dc = (struct dir_chain *)dir;

	for (size_t i = 0; i < dc->n; i++)
		directory_listen(dc->members[i], l);
}

static void
chain_free(struct directory *dir)
{
	struct dir_chain *dc = (struct dir_chain *)dir;

	for (size_t i = 0; i < dc->n; i++)
		directory_close(&dc->members[i]);
	free(dc);
}

static const struct directory_ops dir_chain_ops = {
	.name = "chain",
	.lookup = chain_lookup,
	.verify = chain_verify,
	.free = chain_free,
	.replica_stats = chain_replica_stats,
	.listen = chain_listen,
	.queue_stats = chain_queue_stats,
};

int
dir_chain_open(const struct config *cfg, struct directory **dir_r, char *err,
    size_t errlen)
{
	struct dir_chain *dc = xcalloc(1, sizeof(*dc));

	dc->dir.ops = &dir_chain_ops;
	for (size_t i = 0; i < cfg->directory.ntypes; i++) {
		const struct dir_backend *b = dir_backend_get(cfg->directory.type[i]);

		/* Members have no cache of their own: it sits in front of all. */
		if (b->open(cfg, &dc->members[i], err, errlen) < 0) {
			chain_free(&dc->dir);
			return -1;
		}
		dc->names[i] = b->name;
		dc->n++;
	}
	*dir_r = &dc->dir;
	return 0;
}

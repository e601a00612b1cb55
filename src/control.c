#include "autoconf.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "control.h"
#include "ctl_proto.h"
#include "directory.h"
#include "health.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "route.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "util.h"

/* Replies can list every session: bounded, but generously. */
#define CONTROL_OUT_MAX		(64u * 1024 * 1024)
#define CONTROL_RELOAD_POLL_MS	50
#define KICK_REASON	"[UNAVAILABLE] session closed by the administrator"

enum verb {
	VERB_SESSIONS,
	VERB_KICK,
	VERB_FLUSH,
	VERB_ROUTE,
	VERB_DRAIN,
	VERB_UNDRAIN,
	VERB_RELOAD,
	VERB_STATS,
	VERB_BACKENDS,
};

struct ctl_client;
struct ctl_query;

struct control {
	struct server		*srv;
	char			*path;		/* NULL once disowned */
	struct service		*svc;
	struct loop		*loop;		/* the service's */
	struct ctl_query	*queries;
};

struct ctl_client {
	struct service_client	 base;		/* first: see service.h */
	bool			 busy;		/* a command runs */
	bool			 done;		/* final line queued: close once sent */
	struct ctl_query	*query;
};

/* One worker's share of a command, filled on the worker's thread. */
struct worker_answer {
	struct ctl_query	*q;
	struct worker		*w;
	struct buf		 records;
	unsigned		 kicked;
	uint64_t		 ok, failed, tempfail;
	unsigned		 states[SESSION_STATE_COUNT];
};

/*
 * A command in flight.  Owned by the control thread; while workers hold
 * their answers (pending > 0) it outlives its client, whose pointer is
 * then NULL.
 */
struct ctl_query {
	struct control		*ctl;
	struct ctl_client	*client;
	enum verb		 verb;
	char			*user;		/* normalised, or NULL */
	enum proto_id		 proto;
	struct gen		*gen;		/* for lookups */
	struct dir_request	*lookup;
	struct route		*old;		/* flush: the cached route */
	size_t			 flushed;
	unsigned		 pending;	/* workers yet to answer */
	struct worker_answer	*answers;
	unsigned		 nanswers;
	struct timer		 timer;		/* reload: polling */
	unsigned long		 reloads;	/* reload count before ours */
	uint64_t		 deadline;
	struct ctl_query	*prev, *next;
};

/* Socket. */

/* Does a daemon answer on path?  1 yes, 0 no (stale), -1 error. */
static int
socket_answers(const struct sockaddr_un *sun)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
		return -1;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	if (rc == 0)
		return 1;
	return errno == ECONNREFUSED || errno == ENOENT ? 0 : -1;
}

static int
control_bind(const char *path, char *err, size_t errlen)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct stat st;
	mode_t mask;
	int fd, rc;

	if (str_copy(sun.sun_path, path, sizeof(sun.sun_path)) >=
	    sizeof(sun.sun_path)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			snprintf(err, errlen, "%s: exists and is not a "
			    "socket", path);
			return -1;
		}
		switch (socket_answers(&sun)) {
		case 1:
			snprintf(err, errlen, "%s: another postern "
			    "answers there", path);
			return -1;
		case 0:
			/* Stale: left by a daemon that died. */
			if (unlink(path) < 0 && errno != ENOENT) {
				snprintf(err, errlen, "%s: cannot remove "
				    "the stale socket: %s", path, strerror(errno));
				return -1;
			}
			break;
		default:
			snprintf(err, errlen, "%s: %s", path,
			    strerror(errno));
			return -1;
		}
	}
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "%s: socket: %s", path, strerror(errno));
		return -1;
	}
	/* Owner-only from the first moment, not after a chmod. */
	mask = umask(0177);
	rc = bind(fd, (struct sockaddr *)&sun, sizeof(sun));
	umask(mask);
	if (rc < 0 || chmod(path, 0600) < 0 ||
	    listen(fd, CONTROL_CLIENTS_MAX) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		if (rc == 0)
			(void)unlink(path);
		close(fd);
		return -1;
	}
	return fd;
}

/* Queries. */

static struct ctl_query *
query_new(struct ctl_client *c, enum verb verb)
{
	struct control *ctl = c->base.owner;
	struct ctl_query *q = xcalloc(1, sizeof(*q));

	q->ctl = ctl;
	q->client = c;
	q->verb = verb;
	q->proto = PROTO_IMAP;
	timer_init(&q->timer, NULL, q);
	c->query = q;
	q->next = ctl->queries;
	if (ctl->queries != NULL)
		ctl->queries->prev = q;
	ctl->queries = q;
	return q;
}

static void
query_free(struct ctl_query *q)
{
	struct control *ctl = q->ctl;

	if (q->prev != NULL)
		q->prev->next = q->next;
	else
		ctl->queries = q->next;
	if (q->next != NULL)
		q->next->prev = q->prev;
	if (q->client != NULL)
		q->client->query = NULL;
	loop_timer_cancel(ctl->loop, &q->timer);
	dir_request_cancel(&q->lookup);
	route_unref(&q->old);
	gen_unref(&q->gen);
	for (unsigned i = 0; i < q->nanswers; i++)
		buf_free(&q->answers[i].records);
	free(q->answers);
	free(q->user);
	free(q);
}

/* The final line; the client closes once it is sent. */
static void
client_finish(struct ctl_client *c, const char *error)
{
	if (c == NULL)
		return;
	if (error != NULL) {
		/* Whatever records were queued stay: the error comes last. */
		if (buf_printf(&c->base.out, "error: %s\n", error) < 0) {
			service_client_close(&c->base);
			return;
		}
	} else if (buf_append_str(&c->base.out, "ok\n") < 0) {
		service_client_close(&c->base);
		return;
	}
	c->done = true;
	c->busy = false;
	service_client_flush(&c->base);
}

static void
query_done(struct ctl_query *q, const char *error)
{
	struct ctl_client *c = q->client;

	query_free(q);
	client_finish(c, error);
}

static struct buf *
query_out(struct ctl_query *q)
{
	return q->client != NULL ? &q->client->base.out : NULL;
}

/* Worker side: runs on each worker's own thread. */

static void answer_back(void *arg);

static int
session_record(struct buf *b, const struct session *s)
{
	struct ctl_rec r;

	ctl_rec_begin(&r, b);
	if (ctl_rec_str(&r, "user", s->user != NULL ? s->user : "-") < 0 ||
	    ctl_rec_str(&r, "client", s->peer) < 0 ||
	    ctl_rec_str(&r, "backend", s->backend_host != NULL ?
	    s->backend_host : "-") < 0 ||
	    ctl_rec_str(&r, "backend_addr", s->backend_name[0] != '\0' ?
	    s->backend_name : "-") < 0 ||
	    ctl_rec_str(&r, "proto", s->proto->name) < 0 ||
	    ctl_rec_str(&r, "state", session_state_name(s->state)) < 0 ||
	    ctl_rec_u64(&r, "since", (uint64_t)s->since) < 0 ||
	    ctl_rec_u64(&r, "bytes_in", s->bytes_in) < 0 ||
	    ctl_rec_u64(&r, "bytes_out", s->bytes_out) < 0 ||
	    ctl_rec_u64(&r, "worker", s->worker->id) < 0)
		return -1;
	return ctl_rec_end(&r);
}

static void
worker_answer_run(void *arg)
{
	struct worker_answer *a = arg;
	struct ctl_query *q = a->q;
	struct worker *w = a->w;
	const struct session *s;

	switch (q->verb) {
	case VERB_SESSIONS:
		for (s = w->sessions; s != NULL; s = s->next) {
			if (s->state == SESSION_CLOSING || (q->user != NULL &&
			    (s->user == NULL || strcmp(s->user, q->user) != 0)))
				continue;
			if (session_record(&a->records, s) < 0)
				break;
		}
		break;
	case VERB_KICK:
		a->kicked = worker_kick(w, q->user, NULL, 0, KICK_REASON);
		break;
	case VERB_STATS:
		a->ok = w->logins_ok;
		a->failed = w->logins_failed;
		a->tempfail = w->logins_tempfail;
		for (s = w->sessions; s != NULL; s = s->next)
			a->states[s->state]++;
		break;
	default:
		break;
	}
	if (loop_post(q->ctl->loop, answer_back, a) < 0)
		log_error("control: cannot hand an answer back");
}

static void
query_post_workers(struct ctl_query *q)
{
	struct server *srv = q->ctl->srv;

	q->nanswers = srv->nworkers;
	q->answers = xcalloc(srv->nworkers, sizeof(*q->answers));
	q->pending = srv->nworkers;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker_answer *a = &q->answers[i];

		a->q = q;
		a->w = &srv->workers[i];
		buf_init(&a->records, CONTROL_OUT_MAX);
		loop_post(a->w->loop, worker_answer_run, a);
	}
}

static const char *
stats_reply(struct ctl_query *q, struct buf *b)
{
	struct server *srv = q->ctl->srv;
	unsigned states[SESSION_STATE_COUNT] = { 0 };
	uint64_t ok = 0, failed = 0, tempfail = 0;
	unsigned long generation;
	struct gen *g = server_gen(srv, &generation);
	size_t cached = g != NULL && g->dir->cache != NULL ?
	    route_cache_size(g->dir->cache) : 0;
	struct replica_stats rs;
	bool replica = g != NULL && directory_replica_stats(g->dir, &rs) == 0;
	struct ctl_rec r;
	char key[48];
	int rc;

	gen_unref(&g);
	for (unsigned i = 0; i < q->nanswers; i++) {
		ok += q->answers[i].ok;
		failed += q->answers[i].failed;
		tempfail += q->answers[i].tempfail;
		for (int k = 0; k < SESSION_STATE_COUNT; k++)
			states[k] += q->answers[i].states[k];
	}
	ctl_rec_begin(&r, b);
	rc = ctl_rec_u64(&r, "uptime", (uint64_t)(time(NULL) - srv->started));
	rc |= ctl_rec_u64(&r, "generation", generation);
	rc |= ctl_rec_u64(&r, "workers", srv->nworkers);
	rc |= ctl_rec_u64(&r, "connections", atomic_load(&srv->connections));
	for (int k = 0; k < SESSION_STATE_COUNT; k++) {
		snprintf(key, sizeof(key), "sessions_%s",
		    session_state_name((enum session_state)k));
		for (char *p = key; *p != '\0'; p++)
			if (*p >= 'A' && *p <= 'Z')
				*p = (char)(*p - 'A' + 'a');
		rc |= ctl_rec_u64(&r, key, states[k]);
	}
	rc |= ctl_rec_u64(&r, "logins_ok", ok);
	rc |= ctl_rec_u64(&r, "logins_failed", failed);
	rc |= ctl_rec_u64(&r, "logins_tempfail", tempfail);
	rc |= ctl_rec_u64(&r, "route_cache", cached);
	if (replica) {
		/* The replica's age: how stale its answers may be. */
		rc |= ctl_rec_u64(&r, "replica_entries", rs.entries);
		rc |= ctl_rec_u64(&r, "replica_keys", rs.keys);
		rc |= ctl_rec_str(&r, "replica_connected", rs.connected ? "yes" : "no");
		rc |= ctl_rec_str(&r, "replica_ready", rs.ready ? "yes" : "no");
		rc |= ctl_rec_u64(&r, "replica_age", rs.age);
		rc |= ctl_rec_u64(&r, "replica_updated", (uint64_t)rs.updated);
	}
	rc |= ctl_rec_end(&r);
	return rc != 0 ? "reply too large" : NULL;
}

/* On the control thread: one worker answered. */
static void
answer_back(void *arg)
{
	struct worker_answer *a = arg;
	struct ctl_query *q = a->q;
	struct buf *out;
	const char *error = NULL;
	unsigned kicked = 0;
	struct ctl_rec r;

	if (--q->pending > 0)
		return;
	if ((out = query_out(q)) == NULL) {
		query_free(q);
		return;
	}
	switch (q->verb) {
	case VERB_SESSIONS:
		for (unsigned i = 0; i < q->nanswers && error == NULL; i++)
			if (buf_append(out, buf_head(&q->answers[i].records),
			    buf_len(&q->answers[i].records)) < 0)
				error = "reply too large";
		break;
	case VERB_KICK:
		for (unsigned i = 0; i < q->nanswers; i++)
			kicked += q->answers[i].kicked;
		ctl_rec_begin(&r, out);
		if (ctl_rec_str(&r, "user", q->user) < 0 ||
		    ctl_rec_u64(&r, "kicked", kicked) < 0 || ctl_rec_end(&r) < 0)
			error = "reply too large";
		if (kicked > 0)
			log_info("control: kicked %u session%s of %s", kicked,
			    kicked == 1 ? "" : "s", q->user);
		break;
	case VERB_STATS:
		error = stats_reply(q, out);
		break;
	default:
		break;
	}
	query_done(q, error);
}

/* Directory lookups (route, flush), answered on the control loop. */

static bool
same_hosts(const struct route *a, const struct route *b)
{
	if (a == NULL || b == NULL || a->nhosts != b->nhosts)
		return false;
	for (size_t i = 0; i < a->nhosts; i++)
		if (strcasecmp(a->hosts[i].host, b->hosts[i].host) != 0 ||
		    a->hosts[i].port != b->hosts[i].port)
			return false;
	return true;
}

static void
route_done(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct ctl_query *q = arg;
	struct server *srv = q->ctl->srv;
	struct buf *out = query_out(q);
	struct buf hosts, drained;
	const char *next = "";
	struct ctl_rec r;
	int rc;

	q->lookup = NULL;
	if (out == NULL) {
		route_unref(&route);
		query_free(q);
		return;
	}
	buf_init(&hosts, CTL_REQUEST_MAX * 4);
	buf_init(&drained, CTL_REQUEST_MAX * 4);
	for (size_t i = 0; route != NULL && i < route->nhosts; i++) {
		const char *h = route->hosts[i].host;

		if (buf_len(&hosts) > 0)
			(void)buf_append(&hosts, ",", 1);
		(void)buf_append_str(&hosts, h);
		if (server_backend_drained(srv, h)) {
			if (buf_len(&drained) > 0)
				(void)buf_append(&drained, ",", 1);
			(void)buf_append_str(&drained, h);
		} else if (next[0] == '\0')
			next = h;
	}
	(void)buf_append(&hosts, "", 1);
	(void)buf_append(&drained, "", 1);
	ctl_rec_begin(&r, out);
	rc = ctl_rec_str(&r, "user", q->user);
	rc |= ctl_rec_str(&r, "proto", proto_name(q->proto));
	rc |= ctl_rec_str(&r, "status", dir_status_name(status));
	rc |= ctl_rec_str(&r, "source", detail);
	if (route != NULL) {
		rc |= ctl_rec_str(&r, "hosts", buf_head(&hosts));
		rc |= ctl_rec_str(&r, "backend_user", route->backend_user != NULL ?
		    route->backend_user : q->user);
		rc |= ctl_rec_str(&r, "drained", buf_head(&drained));
		rc |= ctl_rec_str(&r, "next", next);
	}
	rc |= ctl_rec_end(&r);
	buf_free(&hosts);
	buf_free(&drained);
	route_unref(&route);
	query_done(q, rc != 0 ? "reply too large" : NULL);
}

/* flush USER with on_move = "kick": did the fresh route move the user? */
static void
flush_done(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct ctl_query *q = arg;
	bool moved;
	struct buf *out;
	struct ctl_rec r;
	int rc;

	(void)detail;
	q->lookup = NULL;
	/*
	 * Without a cached route there is nothing to compare with: telling
	 * the hook anyway is harmless, it only closes sessions that are not
	 * on one of the route's hosts.
	 */
	moved = (status == DIR_OK && !same_hosts(q->old, route)) ||
	    status == DIR_NOT_FOUND;
	if (moved)
		directory_moved(q->gen->dir, q->user, route);
	route_unref(&route);
	if ((out = query_out(q)) == NULL) {
		query_free(q);
		return;
	}
	ctl_rec_begin(&r, out);
	rc = ctl_rec_str(&r, "user", q->user);
	rc |= ctl_rec_u64(&r, "flushed", q->flushed);
	rc |= ctl_rec_str(&r, "lookup", dir_status_name(status));
	rc |= ctl_rec_str(&r, "moved", moved ? "yes" : "no");
	rc |= ctl_rec_end(&r);
	query_done(q, rc != 0 ? "reply too large" : NULL);
}

/* Reload: main's signal loop does it; poll until it has tried. */
static void
reload_poll(struct timer *t)
{
	struct ctl_query *q = t->arg;
	struct control *ctl = q->ctl;
	char err[512];
	unsigned long n, generation;
	struct gen *g;

	n = server_reload_status(ctl->srv, err, sizeof(err));
	if (n == q->reloads) {
		if (loop_now(ctl->loop) >= q->deadline) {
			query_done(q, "the reload did not finish within 10 s");
			return;
		}
		loop_timer_in(ctl->loop, &q->timer, CONTROL_RELOAD_POLL_MS);
		return;
	}
	if (err[0] != '\0') {
		char msg[600];

		snprintf(msg, sizeof(msg), "reload failed, the running "
		    "configuration stays: %s", err);
		query_done(q, msg);
		return;
	}
	g = server_gen(ctl->srv, &generation);
	gen_unref(&g);
	if (q->client != NULL) {
		struct ctl_rec r;

		ctl_rec_begin(&r, &q->client->base.out);
		if (ctl_rec_u64(&r, "generation", generation) < 0 ||
		    ctl_rec_end(&r) < 0) {
			query_done(q, "reply too large");
			return;
		}
	}
	query_done(q, NULL);
}

/* Commands. */

/* Normalise a user name as the running daemon would. */
static int
normalise(struct control *ctl, const char *in, struct username *name,
    const char **error_r)
{
	struct gen *g = server_gen(ctl->srv, NULL);
	int rc;

	if (g == NULL) {
		*error_r = "no configuration loaded";
		return -1;
	}
	rc = username_normalise(&g->cfg->username, in, strlen(in), name, error_r);
	gen_unref(&g);
	return rc;
}

static const struct {
	const char	*name;
	enum verb	 verb;
	size_t		 min, max;	/* arguments */
	const char	*usage;
} verbs[] = {
	{ "sessions", VERB_SESSIONS, 0, 1, "sessions [USER]" },
	{ "kick", VERB_KICK, 1, 1, "kick USER" },
	{ "flush", VERB_FLUSH, 1, 1, "flush USER|all" },
	{ "route", VERB_ROUTE, 1, 2, "route USER [imap|pop3|sieve]" },
	{ "drain", VERB_DRAIN, 1, 1, "drain BACKEND" },
	{ "undrain", VERB_UNDRAIN, 1, 1, "undrain BACKEND" },
	{ "reload", VERB_RELOAD, 0, 0, "reload" },
	{ "stats", VERB_STATS, 0, 0, "stats" },
	{ "backends", VERB_BACKENDS, 0, 0, "backends" },
};

static const char *
cmd_flush(struct ctl_query *q, const char *arg)
{
	struct route_cache *cache = q->gen->dir->cache;
	char key[USERNAME_MAX + 16];
	struct username name;
	const char *error;
	struct ctl_rec r;

	if (strcmp(arg, "all") == 0) {
		size_t n = cache != NULL ? route_cache_clear(cache) : 0;

		log_info("control: route cache flushed (%zu entries)", n);
		ctl_rec_begin(&r, &q->client->base.out);
		if (ctl_rec_u64(&r, "flushed", n) < 0 || ctl_rec_end(&r) < 0)
			return "reply too large";
		query_done(q, NULL);
		return NULL;
	}
	if (normalise(q->ctl, arg, &name, &error) < 0)
		return error;
	q->user = xstrdup(name.full);
	if (cache != NULL) {
		for (int p = 0; p < PROTO_COUNT; p++) {
			snprintf(key, sizeof(key), "%s:%s", proto_name((enum proto_id)p),
			    name.full);
			if (q->old == NULL)
				q->old = route_cache_get_stale(cache, key,
				    clock_ms());
			q->flushed += route_cache_remove(cache, key);
		}
	}
	log_info("control: route cache entries of %s flushed (%zu)", q->user,
	    q->flushed);
	if (q->gen->cfg->directory.on_move == ON_MOVE_KICK) {
		q->lookup = directory_lookup(q->gen->dir, q->ctl->loop, &name,
		    PROTO_IMAP, flush_done, q);
		return NULL;
	}
	ctl_rec_begin(&r, &q->client->base.out);
	if (ctl_rec_str(&r, "user", q->user) < 0 ||
	    ctl_rec_u64(&r, "flushed", q->flushed) < 0 || ctl_rec_end(&r) < 0)
		return "reply too large";
	query_done(q, NULL);
	return NULL;
}

static const char *
cmd_drain(struct ctl_query *q, const char *host, bool drain)
{
	struct ctl_rec r;
	bool changed = server_drain_backend(q->ctl->srv, host, drain);

	if (changed)
		log_info("control: backend %s %s", host, drain ? "drained" :
		    "no longer drained");
	ctl_rec_begin(&r, &q->client->base.out);
	if (ctl_rec_str(&r, "backend", host) < 0 ||
	    ctl_rec_str(&r, "drained", drain ? "yes" : "no") < 0 ||
	    ctl_rec_str(&r, "changed", changed ? "yes" : "no") < 0 ||
	    ctl_rec_end(&r) < 0)
		return "reply too large";
	query_done(q, NULL);
	return NULL;
}

struct backends_out {
	struct buf	*b;
	int		 rc;
};

static void
backends_record(const struct health_info *i, void *arg)
{
	struct backends_out *o = arg;
	struct ctl_rec r;

	ctl_rec_begin(&r, o->b);
	o->rc |= ctl_rec_str(&r, "address", i->address);
	o->rc |= ctl_rec_str(&r, "backend", i->name);
	o->rc |= ctl_rec_str(&r, "proto", proto_name(i->proto));
	o->rc |= ctl_rec_str(&r, "state", health_state_name(i->state));
	o->rc |= ctl_rec_u64(&r, "failures", i->failures);
	o->rc |= ctl_rec_u64(&r, "changed", (uint64_t)i->changed);
	o->rc |= ctl_rec_str(&r, "last_error", i->last_error);
	o->rc |= ctl_rec_str(&r, "probed", i->named ? "yes" : "no");
	o->rc |= ctl_rec_u64(&r, "failures_total", i->failures_total);
	o->rc |= ctl_rec_u64(&r, "probes", i->probes);
	o->rc |= ctl_rec_u64(&r, "probes_failed", i->probes_failed);
	o->rc |= ctl_rec_u64(&r, "skipped", i->skipped);
	o->rc |= ctl_rec_u64(&r, "transitions", i->transitions);
	o->rc |= ctl_rec_end(&r);
}

/* Every tracked backend address and its health, from the shared table. */
static const char *
cmd_backends(struct ctl_query *q)
{
	struct backends_out o = { &q->client->base.out, 0 };

	health_foreach(q->ctl->srv->health, backends_record, &o);
	if (o.rc != 0)
		return "reply too large";
	query_done(q, NULL);
	return NULL;
}

/*
 * Run one request.  Returns NULL when the command is under way or done
 * (the query answers), or an error for the client.
 */
static const char *
command(struct ctl_client *c, char **words, size_t n)
{
	struct control *ctl = c->base.owner;
	struct ctl_query *q;
	struct username name;
	const char *error;
	size_t v;

	for (v = 0; v < nitems(verbs); v++)
		if (strcmp(words[0], verbs[v].name) == 0)
			break;
	if (v == nitems(verbs))
		return "unknown command (sessions, kick, flush, route, drain, "
		    "undrain, reload, stats, backends)";
	if (n - 1 < verbs[v].min || n - 1 > verbs[v].max)
		return verbs[v].usage;
	q = query_new(c, verbs[v].verb);
	switch (q->verb) {
	case VERB_SESSIONS:
	case VERB_KICK:
		if (n > 1) {
			if (normalise(ctl, words[1], &name, &error) < 0) {
				query_free(q);
				return error;
			}
			q->user = xstrdup(name.full);
		}
		query_post_workers(q);
		return NULL;
	case VERB_STATS:
		query_post_workers(q);
		return NULL;
	case VERB_FLUSH:
	case VERB_ROUTE:
		if ((q->gen = server_gen(ctl->srv, NULL)) == NULL) {
			query_free(q);
			return "no configuration loaded";
		}
		if (q->verb == VERB_FLUSH)
			error = cmd_flush(q, words[1]);
		else if (n > 2 && strcmp(words[2], "pop3") != 0 &&
		    strcmp(words[2], "imap") != 0 && strcmp(words[2], "sieve") != 0)
			error = verbs[v].usage;
		else if (normalise(ctl, words[1], &name, &error) == 0) {
			q->proto = n > 2 && strcmp(words[2], "pop3") == 0 ?
			    PROTO_POP3 : n > 2 && strcmp(words[2], "sieve") == 0 ?
			    PROTO_SIEVE : PROTO_IMAP;
			q->user = xstrdup(name.full);
			q->lookup = directory_lookup(q->gen->dir, ctl->loop,
			    &name, q->proto, route_done, q);
			return NULL;
		}
		break;
	case VERB_DRAIN:
	case VERB_UNDRAIN:
		error = cmd_drain(q, words[1], q->verb == VERB_DRAIN);
		break;
	case VERB_BACKENDS:
		error = cmd_backends(q);
		break;
	case VERB_RELOAD:
		q->reloads = server_reload_status(ctl->srv, NULL, 0);
		q->deadline = loop_now(ctl->loop) + CONTROL_RELOAD_MS;
		q->timer.cb = reload_poll;
		log_info("control: reload requested");
		/* To the process: main's sigwait takes it, as for kill -HUP. */
		if (kill(getpid(), SIGHUP) < 0) {
			error = strerror(errno);
			break;
		}
		loop_timer_in(ctl->loop, &q->timer, CONTROL_RELOAD_POLL_MS);
		return NULL;
	}
	if (error != NULL && c->query != NULL)
		query_free(c->query);
	return error;
}

/* Clients: the service's callbacks. */

static void
client_closing(struct service_client *sc)
{
	struct ctl_client *c = (struct ctl_client *)sc;

	if (c->query != NULL) {
		/* Workers may still answer: the query waits for them alone. */
		c->query->client = NULL;
		if (c->query->pending == 0)
			query_free(c->query);
		c->query = NULL;
	}
}

static void
client_sent(struct service_client *sc)
{
	struct ctl_client *c = (struct ctl_client *)sc;
	struct control *ctl = sc->owner;

	if (c->done) {
		service_client_close(sc);
		return;
	}
	/* Waiting for an answer: nothing more is read meanwhile. */
	if (loop_watch(ctl->loop, &sc->watch, c->busy ? 0 : EPOLLIN) < 0)
		service_client_close(sc);
}

static int
client_request_end(struct service_client *sc, size_t *len_r)
{
	return buf_find_line(&sc->in, CTL_REQUEST_MAX, len_r);
}

/* A complete request line: run it. */
static void
client_request(struct service_client *sc, size_t len)
{
	struct ctl_client *c = (struct ctl_client *)sc;
	struct control *ctl = sc->owner;
	char line[CTL_REQUEST_MAX + 1], *words[CTL_WORDS_MAX];
	const char *error;
	size_t n;

	memcpy(line, buf_head(&sc->in), len);
	buf_consume(&sc->in, len);
	line[len - 1] = '\0';
	if (len > 1 && line[len - 2] == '\r')
		line[len - 2] = '\0';
	c->busy = true;
	(void)loop_watch(ctl->loop, &sc->watch, 0);
	loop_timer_in(ctl->loop, &sc->timer, CONTROL_COMMAND_MS);
	if (ctl_split(line, words, CTL_WORDS_MAX, &n) < 0) {
		client_finish(c, "malformed request: one line, VERB [ARGS...]");
		return;
	}
	if ((error = command(c, words, n)) != NULL)
		client_finish(c, error);
}

static void
client_too_large(struct service_client *sc)
{
	struct ctl_client *c = (struct ctl_client *)sc;

	c->busy = true;
	client_finish(c, "request line too long");
}

static void
client_event(struct service_client *sc, uint32_t events)
{
	if (events & EPOLLOUT) {
		service_client_flush(sc);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		service_client_read(sc);
}

static void
client_timeout(struct service_client *sc)
{
	struct ctl_client *c = (struct ctl_client *)sc;

	if (!c->busy)
		log_info("control: client sent no request in %d s: closed",
		    CONTROL_IDLE_MS / 1000);
}

/* On the control thread, its clients closed: end every lookup. */
static void
control_stopping(void *arg)
{
	struct control *ctl = arg;
	struct ctl_query *q, *next;

	for (q = ctl->queries; q != NULL; q = next) {
		next = q->next;
		/* Those waiting for workers go when the workers answer. */
		if (q->pending == 0)
			query_free(q);
	}
}

/* After the workers' last answers ran (they free their queries). */
static void
control_release(void *arg)
{
	struct control *ctl = arg;

	while (ctl->queries != NULL)
		query_free(ctl->queries);
}

static const struct service_ops control_ops = {
	.name = "control",
	.clients_max = CONTROL_CLIENTS_MAX,
	.busy = "error: too many control clients\n",
	.client_size = sizeof(struct ctl_client),
	.in_max = CTL_REQUEST_MAX,
	.out_max = CONTROL_OUT_MAX,
	.read_ms = CONTROL_IDLE_MS,
	.request_end = client_request_end,
	.request = client_request,
	.too_large = client_too_large,
	.event = client_event,
	.sent = client_sent,
	.timeout = client_timeout,
	.closing = client_closing,
	.stopping = control_stopping,
	.release = control_release,
};

/* The thread. */

int
control_open(struct server *srv, const char *path, struct control **ctl_r,
    char *err, size_t errlen)
{
	struct control *ctl;
	int fd;

	if ((fd = control_bind(path, err, errlen)) < 0)
		return -1;
	ctl = xcalloc(1, sizeof(*ctl));
	ctl->srv = srv;
	ctl->path = xstrdup(path);
	if (service_open(&control_ops, ctl, fd, &ctl->svc, err, errlen) < 0) {
		close(fd);
		control_free(&ctl);
		return -1;
	}
	ctl->loop = service_loop(ctl->svc);
	*ctl_r = ctl;
	return 0;
}

int
control_start(struct control *ctl)
{
	return service_start(ctl->svc);
}

void
control_stop(struct control *ctl)
{
	if (ctl != NULL)
		service_stop(ctl->svc);
}

void
control_free(struct control **ctlp)
{
	struct control *ctl = *ctlp;

	if (ctl == NULL)
		return;
	*ctlp = NULL;
	service_free(&ctl->svc);
	if (ctl->path != NULL)
		(void)unlink(ctl->path);
	free(ctl->path);
	free(ctl);
}

void
control_disown(struct control **ctlp)
{
	struct control *ctl = *ctlp;

	if (ctl == NULL)
		return;
	service_disown(ctl->svc);
	/* The socket file stays: another process serves it now. */
	free(ctl->path);
	ctl->path = NULL;
	control_free(ctlp);
}

#include "autoconf.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "directory.h"
#include "health.h"
#include "log.h"
#include "loop.h"
#include "metrics.h"
#include "resolve.h"
#include "route.h"
#include "server.h"
#include "service.h"
#include "session.h"
#include "util.h"

_Static_assert(METRICS_LOGIN_OUTCOMES == FAIL_COUNT,
    "one login outcome per enum session_fail");

/* Room for the status line and headers in front of the body. */
#define METRICS_HEADERS_MAX	512

enum http_code {
	HTTP_OK,
	HTTP_BAD_REQUEST,
	HTTP_NOT_FOUND,
	HTTP_NOT_ALLOWED,
	HTTP_ERROR,
	HTTP_UNAVAILABLE,
	HTTP_CODE_COUNT
};

static const struct {
	unsigned	 code;
	const char	*text;
} http_codes[HTTP_CODE_COUNT] = {
	[HTTP_OK] = { 200, "OK" },
	[HTTP_BAD_REQUEST] = { 400, "Bad Request" },
	[HTTP_NOT_FOUND] = { 404, "Not Found" },
	[HTTP_NOT_ALLOWED] = { 405, "Method Not Allowed" },
	[HTTP_ERROR] = { 500, "Internal Server Error" },
	[HTTP_UNAVAILABLE] = { 503, "Service Unavailable" },
};

struct metrics_client;
struct scrape;

struct collector {
	metrics_collect_fn	*fn;
	void			*arg;
};

struct metrics {
	struct server		*srv;
	char			*address;
	struct service		*svc;
	struct loop		*loop;		/* the service's */
	struct scrape		*scrapes;
	struct collector	 collectors[METRICS_COLLECTORS_MAX];
	size_t			 ncollectors;
	/* The metrics thread's own: requests answered, by code. */
	uint64_t		 requests[HTTP_CODE_COUNT];
	uint64_t		 timeouts;
};

struct metrics_client {
	struct service_client	 base;		/* first: see service.h */
	bool			 head;		/* HEAD: no body */
	bool			 answered;	/* close once sent */
	struct scrape		*scrape;
};

/* One worker's share of a scrape, filled on the worker's thread. */
struct scrape_answer {
	struct scrape		*sc;
	struct worker		*w;
	struct worker_metrics	 wm;
	uint64_t		 states[PROTO_COUNT][SESSION_STATE_COUNT];
	struct metrics_backend	 backends[METRICS_BACKENDS_MAX];
	size_t			 nbackends;
	uint64_t		 backends_other;
};

/*
 * A scrape in flight.  Owned by the metrics thread; while workers hold
 * their answers (pending > 0) it outlives its client, whose pointer is
 * then NULL.
 */
struct scrape {
	struct metrics		*m;
	struct metrics_client	*client;
	unsigned		 pending;
	struct scrape_answer	*answers;
	unsigned		 nanswers;
	struct scrape		*prev, *next;
};

/* Scrapes. */

static void
scrape_free(struct scrape *sc)
{
	struct metrics *m = sc->m;

	if (sc->prev != NULL)
		sc->prev->next = sc->next;
	else
		m->scrapes = sc->next;
	if (sc->next != NULL)
		sc->next->prev = sc->prev;
	if (sc->client != NULL)
		sc->client->scrape = NULL;
	free(sc->answers);
	free(sc);
}

static void answer_back(void *arg);

/* On the worker's own thread: copy its counters, count its sessions. */
static void
worker_snapshot(void *arg)
{
	struct scrape_answer *a = arg;
	struct worker *w = a->w;
	const struct session *s;

	a->wm = w->metrics;
	for (s = w->sessions; s != NULL; s = s->next) {
		a->states[s->listen->proto][s->state]++;
		if (s->state == SESSION_RELAY && s->backend_host != NULL &&
		    !metrics_backend_add(a->backends, &a->nbackends,
		    s->backend_host, 1))
			a->backends_other++;
	}
	if (loop_post(a->sc->m->loop, answer_back, a) < 0)
		log_error("metrics: cannot hand an answer back");
}

static void
scrape_start(struct metrics_client *c)
{
	struct metrics *m = c->base.owner;
	struct server *srv = m->srv;
	struct scrape *sc = xcalloc(1, sizeof(*sc));

	sc->m = m;
	sc->client = c;
	c->scrape = sc;
	sc->next = m->scrapes;
	if (m->scrapes != NULL)
		m->scrapes->prev = sc;
	m->scrapes = sc;
	sc->nanswers = srv->nworkers;
	sc->answers = xcalloc(srv->nworkers, sizeof(*sc->answers));
	sc->pending = srv->nworkers;
	for (unsigned i = 0; i < srv->nworkers; i++) {
		sc->answers[i].sc = sc;
		sc->answers[i].w = &srv->workers[i];
		loop_post(srv->workers[i].loop, worker_snapshot, &sc->answers[i]);
	}
}

/* The exposition, from the workers' answers and the shared state. */

static const char *const proto_labels[] = { "proto" };
static const char *const state_labels[] = { "proto", "state" };
static const char *const outcome_labels[] = { "proto", "outcome" };
static const char *const reason_labels[] = { "reason" };
static const char *const backend_labels[] = { "backend" };
static const char *const tls_labels[] = { "side", "result" };
static const char *const direction_labels[] = { "direction" };
static const char *const result_labels[] = { "result" };
static const char *const queue_labels[] = { "queue" };
static const char *const code_labels[] = { "code" };
static const char *const version_labels[] = { "version" };

/* Room for a label value made from an enum's name. */
#define LABEL_VALUE_MAX	32

static void
add_counts(uint64_t *sum, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		sum[i] += v[i];
}

/* Count a worker's backend table into tab; past its bound, into other. */
static void
add_backends(struct metrics_backend *tab, size_t *ntab, uint64_t *other,
    const struct metrics_backend *from, size_t n, uint64_t from_other)
{
	*other += from_other;
	for (size_t k = 0; k < n; k++)
		if (!metrics_backend_add(tab, ntab, from[k].name, from[k].n))
			*other += from[k].n;
}

/* The workers' answers added up, as one answer. */
static void
scrape_sum(const struct scrape *sc, struct scrape_answer *t)
{
	memset(t, 0, sizeof(*t));
	for (unsigned i = 0; i < sc->nanswers; i++) {
		const struct scrape_answer *a = &sc->answers[i];
		const struct worker_metrics *wm = &a->wm;

		add_counts(t->wm.accepted, wm->accepted, PROTO_COUNT);
		add_counts(t->wm.refused, wm->refused, REFUSED_COUNT);
		for (int p = 0; p < PROTO_COUNT; p++) {
			add_counts(t->states[p], a->states[p],
			    SESSION_STATE_COUNT);
			add_counts(t->wm.logins[p], wm->logins[p],
			    METRICS_LOGIN_OUTCOMES);
		}
		for (int side = 0; side < TLS_SIDE_COUNT; side++)
			add_counts(t->wm.tls[side], wm->tls[side], 2);
		add_counts(t->wm.bytes, wm->bytes, 2);
		add_counts(t->wm.lookup_buckets, wm->lookup_buckets,
		    METRICS_LATENCY_BUCKETS + 1);
		t->wm.lookup_us += wm->lookup_us;
		add_counts(t->wm.cache, wm->cache, CACHE_RESULT_COUNT);
		add_backends(t->backends, &t->nbackends, &t->backends_other,
		    a->backends, a->nbackends, a->backends_other);
		add_backends(t->wm.connect_failures, &t->wm.nconnect_failures,
		    &t->wm.connect_failures_other, wm->connect_failures,
		    wm->nconnect_failures, wm->connect_failures_other);
	}
}

/* Label values are lower case with underscores: TLS_HANDSHAKE, tls_handshake. */
static void
label_name(const char *in, char *out, size_t outlen)
{
	size_t i;

	for (i = 0; in[i] != '\0' && i + 1 < outlen; i++) {
		char ch = in[i];

		if (ch >= 'A' && ch <= 'Z')
			ch = (char)(ch - 'A' + 'a');
		else if (ch == '-')
			ch = '_';
		out[i] = ch;
	}
	out[i] = '\0';
}

static void
sample1(struct metrics_writer *w, const char *name, const char *const *names,
    const char *value, uint64_t v)
{
	const char *values[1] = { value };
	const struct metrics_labels l = { names, values, 1 };

	metrics_sample(w, name, &l, v);
}

static void
sample2(struct metrics_writer *w, const char *name, const char *const *names,
    const char *v1, const char *v2, uint64_t v)
{
	const char *values[2] = { v1, v2 };
	const struct metrics_labels l = { names, values, 2 };

	metrics_sample(w, name, &l, v);
}

/*
 * One sample per v[i], labelled values[i]; with first, two labels: first,
 * then values[i].
 */
static void
samples(struct metrics_writer *w, const char *name, const char *const *labels,
    const char *first, const char *const *values, const uint64_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (first != NULL)
			sample2(w, name, labels, first, values[i], v[i]);
		else
			sample1(w, name, labels, values[i], v[i]);
}

/* A family of one unlabelled sample. */
static void
single(struct metrics_writer *w, const char *name, const char *type,
    const char *help, uint64_t v)
{
	metrics_family(w, name, type, help);
	metrics_sample(w, name, NULL, v);
}

/* A backend table's samples, "other" last when anything overflowed it. */
static void
backend_samples(struct metrics_writer *w, const char *name,
    const struct metrics_backend *tab, size_t n, uint64_t other)
{
	for (size_t k = 0; k < n; k++)
		sample1(w, name, backend_labels, tab[k].name, tab[k].n);
	if (other > 0)
		sample1(w, name, backend_labels, "other", other);
}

static void
write_connections(struct metrics_writer *w, const struct scrape_answer *t,
    struct server *srv)
{
	static const char *const reasons[REFUSED_COUNT] = {
		[REFUSED_CONNECTIONS] = "connections",
		[REFUSED_PER_IP] = "per_ip",
		[REFUSED_UNTRUSTED] = "untrusted_proxy",
		[REFUSED_PROXY_HEADER] = "proxy_header",
	};
	const char *protos[PROTO_COUNT];

	for (int p = 0; p < PROTO_COUNT; p++)
		protos[p] = proto_name((enum proto_id)p);
	metrics_family(w, "postern_connections_accepted_total", "counter",
	    "Client connections accepted, refused ones included.");
	samples(w, "postern_connections_accepted_total", proto_labels, NULL,
	    protos, t->wm.accepted, PROTO_COUNT);
	metrics_family(w, "postern_connections_refused_total", "counter",
	    "Client connections closed before a session began, by reason.");
	samples(w, "postern_connections_refused_total", reason_labels, NULL,
	    reasons, t->wm.refused, REFUSED_COUNT);
	single(w, "postern_connections", "gauge",
	    "Client connections open now (limits.connections counts these).",
	    atomic_load(&srv->connections));
}

static void
write_sessions(struct metrics_writer *w, const struct scrape_answer *t)
{
	char names[SESSION_STATE_COUNT][LABEL_VALUE_MAX];
	const char *states[SESSION_STATE_COUNT];

	for (int k = 0; k < SESSION_STATE_COUNT; k++) {
		label_name(session_state_name((enum session_state)k), names[k],
		    sizeof(names[k]));
		states[k] = names[k];
	}
	metrics_family(w, "postern_sessions", "gauge",
	    "Client sessions now, by protocol and state.");
	for (int p = 0; p < PROTO_COUNT; p++)
		samples(w, "postern_sessions", state_labels,
		    proto_name((enum proto_id)p), states, t->states[p],
		    SESSION_STATE_COUNT);
	metrics_family(w, "postern_backend_sessions", "gauge",
	    "Relayed sessions now, by backend host (\"other\" past "
	    "the first 64 names).");
	backend_samples(w, "postern_backend_sessions", t->backends,
	    t->nbackends, t->backends_other);
}

static void
write_logins(struct metrics_writer *w, const struct scrape_answer *t)
{
	char names[METRICS_LOGIN_OUTCOMES][LABEL_VALUE_MAX];
	const char *outcomes[METRICS_LOGIN_OUTCOMES];

	for (int f = 0; f < METRICS_LOGIN_OUTCOMES; f++) {
		if (f == FAIL_NONE)
			str_copy(names[f], "ok", sizeof(names[f]));
		else
			label_name(session_fail_name((enum session_fail)f),
			    names[f], sizeof(names[f]));
		outcomes[f] = names[f];
	}
	metrics_family(w, "postern_logins_total", "counter",
	    "Login attempts by protocol and outcome: ok, or why not.");
	for (int p = 0; p < PROTO_COUNT; p++)
		samples(w, "postern_logins_total", outcome_labels,
		    proto_name((enum proto_id)p), outcomes, t->wm.logins[p],
		    METRICS_LOGIN_OUTCOMES);
}

static void
write_backends(struct metrics_writer *w, const struct scrape_answer *t)
{
	metrics_family(w, "postern_backend_connect_failures_total", "counter",
	    "Backend addresses that could not be connected to or resolved, by "
	    "route host (\"other\" past the first 64 names per worker).");
	backend_samples(w, "postern_backend_connect_failures_total",
	    t->wm.connect_failures, t->wm.nconnect_failures,
	    t->wm.connect_failures_other);
}

static void
write_traffic(struct metrics_writer *w, const struct scrape_answer *t)
{
	static const char *const sides[TLS_SIDE_COUNT] = { "client", "backend" };
	static const char *const results[2] = { "ok", "failed" };
	static const char *const directions[2] = { "client_to_backend",
	    "backend_to_client" };

	metrics_family(w, "postern_tls_handshakes_total", "counter",
	    "TLS handshakes with clients and with backends, by result.");
	for (int side = 0; side < TLS_SIDE_COUNT; side++) {
		/* Counted as tls[side][ok], written ok first. */
		const uint64_t v[2] = { t->wm.tls[side][1], t->wm.tls[side][0] };

		samples(w, "postern_tls_handshakes_total", tls_labels,
		    sides[side], results, v, 2);
	}
	metrics_family(w, "postern_relayed_bytes_total", "counter",
	    "Bytes relayed after login, by direction.");
	samples(w, "postern_relayed_bytes_total", direction_labels, NULL,
	    directions, t->wm.bytes, 2);
}

static void
write_directory(struct metrics_writer *w, const struct scrape_answer *t)
{
	static const char *const results[CACHE_RESULT_COUNT] = {
		[CACHE_HIT] = "hit",
		[CACHE_NEGATIVE_HIT] = "negative_hit",
		[CACHE_MISS] = "miss",
		[CACHE_STALE] = "stale",
	};

	metrics_family(w, "postern_directory_lookup_seconds", "histogram",
	    "Time from a login's directory lookup to its answer (or to "
	    "timeouts.lookup), cache hits included.");
	metrics_histogram(w, "postern_directory_lookup_seconds",
	    metrics_latency_bounds, t->wm.lookup_buckets,
	    METRICS_LATENCY_BUCKETS, (double)t->wm.lookup_us / 1e6);
	metrics_family(w, "postern_route_cache_lookups_total", "counter",
	    "Logins' lookups by route cache result; a miss that was answered "
	    "with an expired route counts as stale only.");
	samples(w, "postern_route_cache_lookups_total", result_labels, NULL,
	    results, t->wm.cache, CACHE_RESULT_COUNT);
}

/* Shared state of the current generation: cache, queues, replica. */
static void
write_shared(struct metrics_writer *w, struct metrics *m)
{
	static const char *const queues[2] = { "search", "bind" };
	unsigned long generation;
	struct gen *g = server_gen(m->srv, &generation);
	struct dir_queue_stats qs;
	struct replica_stats rs;
	struct resolve_stats res;

	metrics_family(w, "postern_build_info", "gauge",
	    "Always 1; the version is in the label.");
	sample1(w, "postern_build_info", version_labels, PACKAGE_VERSION, 1);
	single(w, "postern_config_generation", "gauge",
	    "Configuration generation: 1 at start, one more per reload.",
	    generation);
	single(w, "postern_start_time_seconds", "gauge",
	    "When the daemon started, seconds since the epoch.",
	    (uint64_t)m->srv->started);
	single(w, "postern_workers", "gauge", "Worker threads.",
	    m->srv->nworkers);
	if (g != NULL && g->dir->cache != NULL)
		single(w, "postern_route_cache_entries", "gauge",
		    "Routes and unknown users held in the route cache.",
		    route_cache_size(g->dir->cache));
	if (g != NULL && directory_queue_stats(g->dir, &qs) == 0) {
		const uint64_t lengths[2] = { qs.searches, qs.binds };

		metrics_family(w, "postern_directory_queue_length", "gauge",
		    "Directory (LDAP, sql) requests waiting for a pool connection.");
		samples(w, "postern_directory_queue_length", queue_labels, NULL,
		    queues, lengths, 2);
		single(w, "postern_directory_queue_capacity", "gauge",
		    "Each directory queue's bound (directory.ldap.queue, "
		    "directory.sql.queue).", qs.max);
		single(w, "postern_directory_queue_shed_total", "counter",
		    "Directory requests refused because their queue was full "
		    "(since the last reload).", qs.shed);
		single(w, "postern_directory_connections_up", "gauge",
		    "Directory pool connections up now (LDAP search, sql).",
		    qs.up);
	}
	if (g != NULL && directory_replica_stats(g->dir, &rs) == 0) {
		single(w, "postern_replica_entries", "gauge",
		    "Directory entries held by the replica.", rs.entries);
		single(w, "postern_replica_logins", "gauge",
		    "Logins the replica answers for.", rs.keys);
		single(w, "postern_replica_connected", "gauge",
		    "1 while the replica's sync session is up.", rs.connected);
		single(w, "postern_replica_age_seconds", "gauge",
		    "Seconds since the replica was last known in sync.", rs.age);
		single(w, "postern_replica_last_update_timestamp_seconds",
		    "gauge", "When the replica last applied a change (0: none).",
		    (uint64_t)rs.updated);
	}
	gen_unref(&g);
	resolve_stats(&res);
	single(w, "postern_resolver_queue_length", "gauge",
	    "Backend host names waiting for a resolver thread.", res.queued);
	single(w, "postern_resolver_queue_shed_total", "counter",
	    "Names refused because RESOLVE_QUEUE_MAX were waiting.", res.shed);
	single(w, "postern_resolver_threads", "gauge",
	    "Resolver threads running.", res.threads);
}

static void
write_self(struct metrics_writer *w, const struct metrics *m)
{
	char names[HTTP_CODE_COUNT][8];
	const char *codes[HTTP_CODE_COUNT];

	for (int k = 0; k < HTTP_CODE_COUNT; k++) {
		snprintf(names[k], sizeof(names[k]), "%u", http_codes[k].code);
		codes[k] = names[k];
	}
	metrics_family(w, "postern_metrics_requests_total", "counter",
	    "Requests to the metrics endpoint, by HTTP status.");
	samples(w, "postern_metrics_requests_total", code_labels, NULL, codes,
	    m->requests, HTTP_CODE_COUNT);
	single(w, "postern_metrics_timeouts_total", "counter",
	    "Metrics clients closed for being slow or mute.", m->timeouts);
}

/*
 * Backend health (health.c), per tracked address: its state as one gauge
 * per state (1 for the current one), and its counters.  Read through
 * health_foreach(), a consistent snapshot per address.
 */
struct health_pass {
	struct metrics_writer	*w;
	int			 which;	/* the family being written */
};

enum {
	HEALTH_FAM_STATE,
	HEALTH_FAM_FAILURES,
	HEALTH_FAM_PROBES,
	HEALTH_FAM_PROBES_FAILED,
	HEALTH_FAM_SKIPPED,
	HEALTH_FAM_COUNT
};

static const struct {
	const char	*name, *type, *help;
} health_fams[HEALTH_FAM_COUNT] = {
	{ "postern_backend_health", "gauge", "Backend address state: 1 for "
	    "the current one of up, suspect, down, probing." },
	{ "postern_backend_health_failures_total", "counter", "Connect or "
	    "greeting failures of the address, logins' and probes'." },
	{ "postern_backend_health_probes_total", "counter",
	    "Active probes of the address." },
	{ "postern_backend_health_probes_failed_total", "counter",
	    "Active probes of the address that failed." },
	{ "postern_backend_health_skipped_total", "counter",
	    "Login attempts that skipped the address while it was down." },
};

static void
health_sample(const struct health_info *in, void *arg)
{
	struct health_pass *hp = arg;
	const char *names[] = { "address", "backend", "proto", "state" };
	const char *values[] = { in->address, in->name, proto_name(in->proto),
	    NULL };
	struct metrics_labels l = { names, values, 3 };
	uint64_t v = 0;

	switch (hp->which) {
	case HEALTH_FAM_STATE:
		l.n = 4;
		for (int st = 0; st < HEALTH_STATE_COUNT; st++) {
			values[3] = health_state_name((enum health_state)st);
			metrics_sample(hp->w, health_fams[hp->which].name, &l,
			    in->state == (enum health_state)st);
		}
		return;
	case HEALTH_FAM_FAILURES:
		v = in->failures_total;
		break;
	case HEALTH_FAM_PROBES:
		v = in->probes;
		break;
	case HEALTH_FAM_PROBES_FAILED:
		v = in->probes_failed;
		break;
	case HEALTH_FAM_SKIPPED:
		v = in->skipped;
		break;
	}
	metrics_sample(hp->w, health_fams[hp->which].name, &l, v);
}

static void
write_health(struct metrics_writer *w, struct metrics *m)
{
	struct health_pass hp = { w, 0 };

	if (m->srv->health == NULL)
		return;
	for (hp.which = 0; hp.which < HEALTH_FAM_COUNT; hp.which++) {
		metrics_family(w, health_fams[hp.which].name,
		    health_fams[hp.which].type, health_fams[hp.which].help);
		health_foreach(m->srv->health, health_sample, &hp);
	}
}

/*
 * Every family, in order.  A new one goes here (or, from another module,
 * through metrics_add_collector).
 */
static int
write_exposition(struct buf *body, struct scrape *sc)
{
	struct metrics *m = sc->m;
	struct metrics_writer w;
	struct scrape_answer total;

	scrape_sum(sc, &total);
	metrics_writer_begin(&w, body);
	write_connections(&w, &total, m->srv);
	write_sessions(&w, &total);
	write_logins(&w, &total);
	write_backends(&w, &total);
	write_traffic(&w, &total);
	write_directory(&w, &total);
	write_shared(&w, m);
	write_health(&w, m);
	for (size_t i = 0; i < m->ncollectors; i++)
		m->collectors[i].fn(&w, m->srv, m->collectors[i].arg);
	write_self(&w, m);
	return metrics_writer_end(&w);
}

/* Responses. */

static void
respond(struct metrics_client *c, enum http_code code, const char *body,
    size_t len)
{
	struct metrics *m = c->base.owner;
	struct buf *out = &c->base.out;

	m->requests[code]++;
	buf_free(out);
	if (buf_printf(out, "HTTP/1.0 %u %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "Connection: close\r\n\r\n", http_codes[code].code,
	    http_codes[code].text, code == HTTP_OK ?
	    "text/plain; version=0.0.4; charset=utf-8" : "text/plain",
	    len, code == HTTP_NOT_ALLOWED ? "Allow: GET, HEAD\r\n" : "") < 0 ||
	    (!c->head && buf_append(out, body, len) < 0)) {
		service_client_close(&c->base);
		return;
	}
	c->answered = true;
	/* Nothing more is read; the timer now bounds the sending. */
	loop_timer_in(m->loop, &c->base.timer, METRICS_SCRAPE_MS);
	service_client_flush(&c->base);
}

static void
respond_text(struct metrics_client *c, enum http_code code, const char *text)
{
	respond(c, code, text, strlen(text));
}

static void
scrape_answer_client(struct scrape *sc)
{
	struct metrics_client *c = sc->client;
	struct buf body;

	buf_init(&body, METRICS_OUT_MAX);
	if (write_exposition(&body, sc) < 0) {
		log_warning("metrics: the exposition is larger than %u bytes",
		    METRICS_OUT_MAX);
		respond_text(c, HTTP_ERROR, "metrics too large\n");
	} else
		respond(c, HTTP_OK, buf_head(&body), buf_len(&body));
	buf_free(&body);
}

/* On the metrics thread: one worker answered. */
static void
answer_back(void *arg)
{
	struct scrape_answer *a = arg;
	struct scrape *sc = a->sc;

	if (--sc->pending > 0)
		return;
	if (sc->client != NULL)
		scrape_answer_client(sc);
	scrape_free(sc);
}

/* Requests. */

/* Where the request line and headers end, or 0 if not yet. */
static size_t
request_end(const char *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i++) {
		if (p[i] == '\n' && p[i + 1] == '\n')
			return i + 2;
		if (i + 3 < len && memcmp(p + i, "\r\n\r\n", 4) == 0)
			return i + 4;
	}
	return 0;
}

/* The next word of a request line: up to one space (RFC 9112 3). */
static char *
next_word(char **p)
{
	char *w = *p, *sp;

	if (w == NULL || *w == '\0' || *w == ' ')
		return NULL;
	if ((sp = strchr(w, ' ')) != NULL) {
		*sp = '\0';
		*p = sp + 1;
	} else
		*p = NULL;
	return w;
}

static int
client_request_end(struct service_client *sc, size_t *len_r)
{
	*len_r = request_end(buf_head(&sc->in), buf_len(&sc->in));
	return *len_r > 0;
}

/* "METHOD TARGET HTTP/1.x": GET or HEAD of /metrics (a query is ignored). */
static void
client_request(struct service_client *sc, size_t len)
{
	struct metrics_client *c = (struct metrics_client *)sc;
	struct metrics *m = sc->owner;
	const char *p = buf_head(&sc->in);
	char line[METRICS_REQUEST_MAX + 1], *method, *target, *version, *rest;
	size_t n = 0;

	while (n < len && p[n] != '\r' && p[n] != '\n')
		n++;
	memcpy(line, p, n);
	line[n] = '\0';
	buf_consume(&sc->in, len);
	rest = line;
	method = next_word(&rest);
	target = next_word(&rest);
	version = next_word(&rest);
	if (method == NULL || target == NULL || version == NULL || rest != NULL ||
	    strlen(version) != 8 || strncmp(version, "HTTP/1.", 7) != 0) {
		respond_text(c, HTTP_BAD_REQUEST, "bad request\n");
		return;
	}
	c->head = strcmp(method, "HEAD") == 0;
	if (strcmp(method, "GET") != 0 && !c->head) {
		respond_text(c, HTTP_NOT_ALLOWED, "only GET and HEAD\n");
		return;
	}
	target[strcspn(target, "?")] = '\0';
	if (strcmp(target, "/metrics") != 0) {
		respond_text(c, HTTP_NOT_FOUND, "not found: try /metrics\n");
		return;
	}
	(void)loop_watch(m->loop, &sc->watch, 0);
	loop_timer_in(m->loop, &sc->timer, METRICS_SCRAPE_MS);
	scrape_start(c);
}

static void
client_too_large(struct service_client *sc)
{
	respond_text((struct metrics_client *)sc, HTTP_BAD_REQUEST,
	    "request too large\n");
}

/* Clients: the service's callbacks. */

static void
client_closing(struct service_client *sc)
{
	struct metrics_client *c = (struct metrics_client *)sc;

	if (c->scrape != NULL) {
		/* Workers may still answer: the scrape waits for them alone. */
		c->scrape->client = NULL;
		c->scrape = NULL;
	}
}

/*
 * The response is out: say so with a FIN and close.  What the client may
 * still have sent is read and dropped first, so that the close does not
 * turn into a reset that destroys the response in its socket buffer.
 */
static void
client_sent(struct service_client *sc)
{
	struct metrics_client *c = (struct metrics_client *)sc;
	char junk[512];

	if (!c->answered)
		return;
	(void)shutdown(sc->fd, SHUT_WR);
	while (recv(sc->fd, junk, sizeof(junk), 0) > 0)
		;
	service_client_close(sc);
}

static void
client_event(struct service_client *sc, uint32_t events)
{
	struct metrics_client *c = (struct metrics_client *)sc;

	if (c->answered) {
		if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
			service_client_flush(sc);
		return;
	}
	if (c->scrape != NULL) {
		/* Not watched while the workers answer: only a reset comes. */
		if (events & (EPOLLHUP | EPOLLERR))
			service_client_close(sc);
		return;
	}
	if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
		service_client_read(sc);
}

static void
client_timeout(struct service_client *sc)
{
	struct metrics *m = sc->owner;

	m->timeouts++;
}

static void
metrics_refused(void *arg)
{
	struct metrics *m = arg;

	m->requests[HTTP_UNAVAILABLE]++;
}

/* After the workers' last answers ran (they free their scrapes). */
static void
metrics_release(void *arg)
{
	struct metrics *m = arg;

	while (m->scrapes != NULL)
		scrape_free(m->scrapes);
}

static const struct service_ops metrics_ops = {
	.name = "metrics",
	.clients_max = METRICS_CLIENTS_MAX,
	.busy = "HTTP/1.0 503 Service Unavailable\r\n"
	    "Content-Type: text/plain\r\nContent-Length: 22\r\n"
	    "Connection: close\r\n\r\ntoo many metrics clients\n",
	.client_size = sizeof(struct metrics_client),
	.in_max = METRICS_REQUEST_MAX,
	.out_max = METRICS_OUT_MAX + METRICS_HEADERS_MAX,
	.read_ms = METRICS_READ_MS,
	.request_end = client_request_end,
	.request = client_request,
	.too_large = client_too_large,
	.event = client_event,
	.sent = client_sent,
	.timeout = client_timeout,
	.closing = client_closing,
	.refused = metrics_refused,
	.release = metrics_release,
};

/* The thread. */

int
metrics_add_collector(struct metrics *m, metrics_collect_fn *fn, void *arg)
{
	if (service_started(m->svc) || m->ncollectors >= METRICS_COLLECTORS_MAX)
		return -1;
	m->collectors[m->ncollectors].fn = fn;
	m->collectors[m->ncollectors].arg = arg;
	m->ncollectors++;
	return 0;
}

int
metrics_open(struct server *srv, const struct config *cfg,
    struct metrics **m_r, char *err, size_t errlen)
{
	struct metrics *m;
	int fd, one = 1;

	fd = socket(cfg->metrics.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "metrics.listen %s: socket: %s",
		    cfg->metrics.listen, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&cfg->metrics.addr,
	    cfg->metrics.addrlen) < 0 || listen(fd, METRICS_CLIENTS_MAX) < 0) {
		snprintf(err, errlen, "metrics.listen %s: %s",
		    cfg->metrics.listen, strerror(errno));
		close(fd);
		return -1;
	}
	m = xcalloc(1, sizeof(*m));
	m->srv = srv;
	m->address = xstrdup(cfg->metrics.listen);
	if (service_open(&metrics_ops, m, fd, &m->svc, err, errlen) < 0) {
		close(fd);
		metrics_free(&m);
		return -1;
	}
	m->loop = service_loop(m->svc);
	*m_r = m;
	return 0;
}

int
metrics_start(struct metrics *m)
{
	if (service_start(m->svc) < 0)
		return -1;
	log_info("metrics on http://%s/metrics", m->address);
	return 0;
}

void
metrics_stop(struct metrics *m)
{
	if (m != NULL)
		service_stop(m->svc);
}

void
metrics_free(struct metrics **mp)
{
	struct metrics *m = *mp;

	if (m == NULL)
		return;
	*mp = NULL;
	service_free(&m->svc);
	free(m->address);
	free(m);
}

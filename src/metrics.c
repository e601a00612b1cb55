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
write_connections(struct metrics_writer *w, const struct scrape *sc)
{
	static const char *const reasons[REFUSED_COUNT] = {
		[REFUSED_CONNECTIONS] = "connections",
		[REFUSED_PER_IP] = "per_ip",
		[REFUSED_UNTRUSTED] = "untrusted_proxy",
		[REFUSED_PROXY_HEADER] = "proxy_header",
	};
	struct server *srv = sc->m->srv;

	metrics_family(w, "postern_connections_accepted_total", "counter",
	    "Client connections accepted, refused ones included.");
	for (int p = 0; p < PROTO_COUNT; p++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < sc->nanswers; i++)
			n += sc->answers[i].wm.accepted[p];
		sample1(w, "postern_connections_accepted_total", proto_labels,
		    proto_name((enum proto_id)p), n);
	}
	metrics_family(w, "postern_connections_refused_total", "counter",
	    "Client connections closed before a session began, by reason.");
	for (int r = 0; r < REFUSED_COUNT; r++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < sc->nanswers; i++)
			n += sc->answers[i].wm.refused[r];
		sample1(w, "postern_connections_refused_total", reason_labels,
		    reasons[r], n);
	}
	metrics_family(w, "postern_connections", "gauge",
	    "Client connections open now (limits.connections counts these).");
	metrics_sample(w, "postern_connections", NULL,
	    atomic_load(&srv->connections));
}

static void
write_sessions(struct metrics_writer *w, const struct scrape *sc)
{
	struct metrics_backend tab[METRICS_BACKENDS_MAX];
	size_t ntab = 0;
	uint64_t other = 0;
	char state[32];

	metrics_family(w, "postern_sessions", "gauge",
	    "Client sessions now, by protocol and state.");
	for (int p = 0; p < PROTO_COUNT; p++)
		for (int k = 0; k < SESSION_STATE_COUNT; k++) {
			uint64_t n = 0;

			for (unsigned i = 0; i < sc->nanswers; i++)
				n += sc->answers[i].states[p][k];
			label_name(session_state_name((enum session_state)k),
			    state, sizeof(state));
			sample2(w, "postern_sessions", state_labels,
			    proto_name((enum proto_id)p), state, n);
		}
	for (unsigned i = 0; i < sc->nanswers; i++) {
		const struct scrape_answer *a = &sc->answers[i];

		other += a->backends_other;
		for (size_t k = 0; k < a->nbackends; k++)
			if (!metrics_backend_add(tab, &ntab, a->backends[k].name,
			    a->backends[k].n))
				other += a->backends[k].n;
	}
	metrics_family(w, "postern_backend_sessions", "gauge",
	    "Relayed sessions now, by backend host (\"other\" past "
	    "the first 64 names).");
	for (size_t k = 0; k < ntab; k++)
		sample1(w, "postern_backend_sessions", backend_labels,
		    tab[k].name, tab[k].n);
	if (other > 0)
		sample1(w, "postern_backend_sessions", backend_labels, "other",
		    other);
}

static void
write_logins(struct metrics_writer *w, const struct scrape *sc)
{
	char outcome[32];

	metrics_family(w, "postern_logins_total", "counter",
	    "Login attempts by protocol and outcome: ok, or why not.");
	for (int p = 0; p < PROTO_COUNT; p++)
		for (int f = 0; f < FAIL_COUNT; f++) {
			uint64_t n = 0;

			for (unsigned i = 0; i < sc->nanswers; i++)
				n += sc->answers[i].wm.logins[p][f];
			if (f == FAIL_NONE)
				str_copy(outcome, "ok", sizeof(outcome));
			else
				label_name(session_fail_name((enum session_fail)f),
				    outcome, sizeof(outcome));
			sample2(w, "postern_logins_total", outcome_labels,
			    proto_name((enum proto_id)p), outcome, n);
		}
}

static void
write_backends(struct metrics_writer *w, const struct scrape *sc)
{
	struct metrics_backend tab[METRICS_BACKENDS_MAX];
	size_t ntab = 0;
	uint64_t other = 0;

	for (unsigned i = 0; i < sc->nanswers; i++) {
		const struct worker_metrics *wm = &sc->answers[i].wm;

		other += wm->connect_failures_other;
		for (size_t k = 0; k < wm->nconnect_failures; k++)
			if (!metrics_backend_add(tab, &ntab,
			    wm->connect_failures[k].name, wm->connect_failures[k].n))
				other += wm->connect_failures[k].n;
	}
	metrics_family(w, "postern_backend_connect_failures_total", "counter",
	    "Backend addresses that could not be connected to or resolved, by "
	    "route host (\"other\" past the first 64 names per worker).");
	for (size_t k = 0; k < ntab; k++)
		sample1(w, "postern_backend_connect_failures_total",
		    backend_labels, tab[k].name, tab[k].n);
	if (other > 0)
		sample1(w, "postern_backend_connect_failures_total",
		    backend_labels, "other", other);
}

static void
write_traffic(struct metrics_writer *w, const struct scrape *sc)
{
	static const char *const sides[TLS_SIDE_COUNT] = { "client", "backend" };
	static const char *const directions[2] = { "client_to_backend",
	    "backend_to_client" };

	metrics_family(w, "postern_tls_handshakes_total", "counter",
	    "TLS handshakes with clients and with backends, by result.");
	for (int side = 0; side < TLS_SIDE_COUNT; side++)
		for (int ok = 1; ok >= 0; ok--) {
			uint64_t n = 0;

			for (unsigned i = 0; i < sc->nanswers; i++)
				n += sc->answers[i].wm.tls[side][ok];
			sample2(w, "postern_tls_handshakes_total", tls_labels,
			    sides[side], ok ? "ok" : "failed", n);
		}
	metrics_family(w, "postern_relayed_bytes_total", "counter",
	    "Bytes relayed after login, by direction.");
	for (int d = 0; d < 2; d++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < sc->nanswers; i++)
			n += sc->answers[i].wm.bytes[d];
		sample1(w, "postern_relayed_bytes_total", direction_labels,
		    directions[d], n);
	}
}

static void
write_directory(struct metrics_writer *w, const struct scrape *sc)
{
	static const char *const results[CACHE_RESULT_COUNT] = {
		[CACHE_HIT] = "hit",
		[CACHE_NEGATIVE_HIT] = "negative_hit",
		[CACHE_MISS] = "miss",
		[CACHE_STALE] = "stale",
	};
	uint64_t buckets[METRICS_LATENCY_BUCKETS + 1] = { 0 }, us = 0;

	for (unsigned i = 0; i < sc->nanswers; i++) {
		const struct worker_metrics *wm = &sc->answers[i].wm;

		for (size_t b = 0; b <= METRICS_LATENCY_BUCKETS; b++)
			buckets[b] += wm->lookup_buckets[b];
		us += wm->lookup_us;
	}
	metrics_family(w, "postern_directory_lookup_seconds", "histogram",
	    "Time from a login's directory lookup to its answer (or to "
	    "timeouts.lookup), cache hits included.");
	metrics_histogram(w, "postern_directory_lookup_seconds",
	    metrics_latency_bounds, buckets, METRICS_LATENCY_BUCKETS,
	    (double)us / 1e6);
	metrics_family(w, "postern_route_cache_lookups_total", "counter",
	    "Logins' lookups by route cache result; a miss that was answered "
	    "with an expired route counts as stale only.");
	for (int r = 0; r < CACHE_RESULT_COUNT; r++) {
		uint64_t n = 0;

		for (unsigned i = 0; i < sc->nanswers; i++)
			n += sc->answers[i].wm.cache[r];
		sample1(w, "postern_route_cache_lookups_total", result_labels,
		    results[r], n);
	}
}

/* Shared state of the current generation: cache, queues, replica. */
static void
write_shared(struct metrics_writer *w, struct metrics *m)
{
	unsigned long generation;
	struct gen *g = server_gen(m->srv, &generation);
	struct dir_queue_stats qs;
	struct replica_stats rs;
	struct resolve_stats res;

	metrics_family(w, "postern_build_info", "gauge",
	    "Always 1; the version is in the label.");
	sample1(w, "postern_build_info", version_labels, PACKAGE_VERSION, 1);
	metrics_family(w, "postern_config_generation", "gauge",
	    "Configuration generation: 1 at start, one more per reload.");
	metrics_sample(w, "postern_config_generation", NULL, generation);
	metrics_family(w, "postern_start_time_seconds", "gauge",
	    "When the daemon started, seconds since the epoch.");
	metrics_sample(w, "postern_start_time_seconds", NULL,
	    (uint64_t)m->srv->started);
	metrics_family(w, "postern_workers", "gauge", "Worker threads.");
	metrics_sample(w, "postern_workers", NULL, m->srv->nworkers);
	if (g != NULL && g->dir->cache != NULL) {
		metrics_family(w, "postern_route_cache_entries", "gauge",
		    "Routes and unknown users held in the route cache.");
		metrics_sample(w, "postern_route_cache_entries", NULL,
		    route_cache_size(g->dir->cache));
	}
	if (g != NULL && directory_queue_stats(g->dir, &qs) == 0) {
		metrics_family(w, "postern_directory_queue_length", "gauge",
		    "Directory (LDAP, sql) requests waiting for a pool connection.");
		sample1(w, "postern_directory_queue_length", queue_labels,
		    "search", qs.searches);
		sample1(w, "postern_directory_queue_length", queue_labels,
		    "bind", qs.binds);
		metrics_family(w, "postern_directory_queue_capacity", "gauge",
		    "Each directory queue's bound (directory.ldap.queue, directory.sql.queue).");
		metrics_sample(w, "postern_directory_queue_capacity", NULL, qs.max);
		metrics_family(w, "postern_directory_queue_shed_total", "counter",
		    "Directory requests refused because their queue was full (since "
		    "the last reload).");
		metrics_sample(w, "postern_directory_queue_shed_total", NULL,
		    qs.shed);
		metrics_family(w, "postern_directory_connections_up", "gauge",
		    "Directory pool connections up now (LDAP search, sql).");
		metrics_sample(w, "postern_directory_connections_up", NULL, qs.up);
	}
	if (g != NULL && directory_replica_stats(g->dir, &rs) == 0) {
		metrics_family(w, "postern_replica_entries", "gauge",
		    "Directory entries held by the replica.");
		metrics_sample(w, "postern_replica_entries", NULL, rs.entries);
		metrics_family(w, "postern_replica_logins", "gauge",
		    "Logins the replica answers for.");
		metrics_sample(w, "postern_replica_logins", NULL, rs.keys);
		metrics_family(w, "postern_replica_connected", "gauge",
		    "1 while the replica's sync session is up.");
		metrics_sample(w, "postern_replica_connected", NULL, rs.connected);
		metrics_family(w, "postern_replica_age_seconds", "gauge",
		    "Seconds since the replica was last known in sync.");
		metrics_sample(w, "postern_replica_age_seconds", NULL, rs.age);
		metrics_family(w, "postern_replica_last_update_timestamp_seconds",
		    "gauge", "When the replica last applied a change (0: none).");
		metrics_sample(w, "postern_replica_last_update_timestamp_seconds",
		    NULL, (uint64_t)rs.updated);
	}
	gen_unref(&g);
	resolve_stats(&res);
	metrics_family(w, "postern_resolver_queue_length", "gauge",
	    "Backend host names waiting for a resolver thread.");
	metrics_sample(w, "postern_resolver_queue_length", NULL, res.queued);
	metrics_family(w, "postern_resolver_queue_shed_total", "counter",
	    "Names refused because RESOLVE_QUEUE_MAX were waiting.");
	metrics_sample(w, "postern_resolver_queue_shed_total", NULL, res.shed);
	metrics_family(w, "postern_resolver_threads", "gauge",
	    "Resolver threads running.");
	metrics_sample(w, "postern_resolver_threads", NULL, res.threads);
}

static void
write_self(struct metrics_writer *w, const struct metrics *m)
{
	metrics_family(w, "postern_metrics_requests_total", "counter",
	    "Requests to the metrics endpoint, by HTTP status.");
	for (int k = 0; k < HTTP_CODE_COUNT; k++) {
		char code[8];

		snprintf(code, sizeof(code), "%u", http_codes[k].code);
		sample1(w, "postern_metrics_requests_total", code_labels, code,
		    m->requests[k]);
	}
	metrics_family(w, "postern_metrics_timeouts_total", "counter",
	    "Metrics clients closed for being slow or mute.");
	metrics_sample(w, "postern_metrics_timeouts_total", NULL, m->timeouts);
}

/*
 * Every family, in order.  A new one goes here (or, from another module,
 * through metrics_add_collector).
 */
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

static int
write_exposition(struct buf *body, struct scrape *sc)
{
	struct metrics *m = sc->m;
	struct metrics_writer w;

	metrics_writer_begin(&w, body);
	write_connections(&w, sc);
	write_sessions(&w, sc);
	write_logins(&w, sc);
	write_backends(&w, sc);
	write_traffic(&w, sc);
	write_directory(&w, sc);
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
	if (m->svc != NULL) {
		service_stop(m->svc);
		/* Workers' last answers: they free their scrapes. */
		loop_run_pending(m->loop);
		while (m->scrapes != NULL)
			scrape_free(m->scrapes);
		service_free(&m->svc);
	}
	free(m->address);
	free(m);
}

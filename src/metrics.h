/*
 * Metrics (metrics.listen): Prometheus text exposition, version 0.0.4,
 * served at GET /metrics by a small HTTP/1.0 responder on a thread of its
 * own.
 *
 * Counters live where they are counted.  Each worker owns a struct
 * worker_metrics and writes it with plain increments on its own thread; a
 * scrape posts a task to every worker (loop_post), which copies its block
 * on its own thread and posts the copy back, so the hot path has no atomic
 * and no lock, and the copy is ordered by the loop's queue.  Shared parts
 * (directory queues, resolver, replica, connection count) are read under
 * their own locks when the answer is written.
 *
 * A new metric family is one function: write it with the metrics_* writer
 * below and call it from write_exposition() in metrics.c (or, from another
 * module, register it with metrics_add_collector before the thread starts).
 */
#ifndef POSTERN_METRICS_H
#define POSTERN_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct server;
struct metrics;

/* Scrapes served at once; the next one is answered 503 and closed. */
#define METRICS_CLIENTS_MAX	8
/* A request's line and headers; larger is answered 400 and closed. */
#define METRICS_REQUEST_MAX	4096
/* A client that sends no complete request in this long is closed. */
#define METRICS_READ_MS		5000
/* For the workers' answers, then again for sending the response. */
#define METRICS_SCRAPE_MS	10000
/* The response body; a larger one is answered 500. */
#define METRICS_OUT_MAX		(4u * 1024 * 1024)
/* Backend names counted per worker; the rest are counted as "other". */
#define METRICS_BACKENDS_MAX	64
#define METRICS_BACKEND_NAME	256

/* Outcomes of a login: ok, then one per enum session_fail (session.c). */
#define METRICS_LOGIN_OUTCOMES	12

/* Upper bounds (seconds) of the directory lookup latency histogram. */
#define METRICS_LATENCY_BUCKETS	12
extern const double metrics_latency_bounds[METRICS_LATENCY_BUCKETS];

enum metrics_refusal {
	REFUSED_CONNECTIONS,	/* limits.connections */
	REFUSED_PER_IP,		/* limits.per_ip */
	REFUSED_UNTRUSTED,	/* PROXY listener, peer not trusted */
	REFUSED_PROXY_HEADER,	/* bad or missing PROXY header */
	REFUSED_COUNT
};

enum metrics_cache {
	CACHE_HIT,		/* a fresh route */
	CACHE_NEGATIVE_HIT,	/* a fresh "unknown user" */
	CACHE_MISS,		/* asked the directory */
	CACHE_STALE,		/* asked, it failed, an expired route served */
	CACHE_RESULT_COUNT
};

enum metrics_tls_side { TLS_SIDE_CLIENT, TLS_SIDE_BACKEND, TLS_SIDE_COUNT };

struct metrics_backend {
	char		 name[METRICS_BACKEND_NAME];
	uint64_t	 n;
};

/*
 * One worker's counters.  Written by that worker only, read only by the
 * scrape task on the same thread.
 */
struct worker_metrics {
	uint64_t	 accepted[PROTO_COUNT];
	uint64_t	 refused[REFUSED_COUNT];
	uint64_t	 logins[PROTO_COUNT][METRICS_LOGIN_OUTCOMES];
	uint64_t	 tls[TLS_SIDE_COUNT][2];	/* [side][ok] */
	uint64_t	 bytes[2];	/* client to backend, backend to client */
	/* Per bucket, not cumulative; the last is above every bound. */
	uint64_t	 lookup_buckets[METRICS_LATENCY_BUCKETS + 1];
	uint64_t	 lookup_count;
	uint64_t	 lookup_us;	/* sum */
	uint64_t	 cache[CACHE_RESULT_COUNT];
	struct metrics_backend connect_failures[METRICS_BACKENDS_MAX];
	size_t		 nconnect_failures;
	uint64_t	 connect_failures_other;
};

/* Worker side: on the owning worker's thread only. */
void	metrics_observe_lookup(struct worker_metrics *m, uint64_t us);
void	metrics_connect_failed(struct worker_metrics *m, const char *backend);
/* Count name in a table of at most METRICS_BACKENDS_MAX; false if full. */
bool	metrics_backend_add(struct metrics_backend *tab, size_t *n,
	    const char *name, uint64_t by);

/*
 * The exposition writer.  Errors are sticky: once the buffer is full every
 * call does nothing and metrics_writer_end() says -1.
 */
struct metrics_writer {
	struct buf	*b;
	bool		 failed;
};

/* Label pairs: names[i] = values[i]; values are escaped. */
struct metrics_labels {
	const char	*const *names;
	const char	*const *values;
	size_t		 n;
};

void	metrics_writer_begin(struct metrics_writer *w, struct buf *b);
int	metrics_writer_end(const struct metrics_writer *w);
/* "# HELP" and "# TYPE" lines; type is counter, gauge or histogram. */
void	metrics_family(struct metrics_writer *w, const char *name,
	    const char *type, const char *help);
void	metrics_sample(struct metrics_writer *w, const char *name,
	    const struct metrics_labels *l, uint64_t value);
void	metrics_sample_double(struct metrics_writer *w, const char *name,
	    const struct metrics_labels *l, double value);
/*
 * A histogram's samples: counts[i] observations fell in bucket i
 * (not cumulative; counts[nbounds] is above the last bound), written as
 * cumulative _bucket lines with le, "+Inf" last, then _sum and _count.
 */
void	metrics_histogram(struct metrics_writer *w, const char *name,
	    const double *bounds, const uint64_t *counts, size_t nbounds,
	    double sum);
/* A label value as the format wants it: \ " and newline escaped. */
void	metrics_escape(struct metrics_writer *w, const char *value);

/*
 * An extra family, written after the built-in ones on every scrape, on the
 * metrics thread.  Must not block.  At most METRICS_COLLECTORS_MAX.
 */
#define METRICS_COLLECTORS_MAX	8
typedef void metrics_collect_fn(struct metrics_writer *w, struct server *srv,
	    void *arg);
int	metrics_add_collector(struct metrics *m, metrics_collect_fn *fn, void *arg);

/*
 * Bind metrics.listen (as root, before the privilege drop).  -1 with a
 * message in err.
 */
int	metrics_open(struct server *srv, const struct config *cfg,
	    struct metrics **m_r, char *err, size_t errlen);
int	metrics_start(struct metrics *m);
/* Close every scrape and stop the thread.  Before the workers stop. */
void	metrics_stop(struct metrics *m);
/* After the workers' loops ran their last tasks (their answers come here). */
void	metrics_free(struct metrics **mp);

#endif

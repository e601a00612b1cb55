#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <lber.h>

#include "directory.h"
#include "directory/backend.h"
#include "directory/sql.h"
#include "ldap_entry.h"
#include "log.h"
#include "privsep.h"
#include "route.h"
#include "util.h"

#define SQL_LOG_EVERY_MS	10000
#define SQL_BACKOFF_MIN_MS	500	/* after every host failed, first wait */
#define SQL_BACKOFF_MAX_MS	30000
#define SQL_PASSWORD_MAX	1024	/* password_file's first line */
#define SQL_CHECK_USER		"postern-check@example.invalid"

static const char *const driver_names[] = {
	[SQL_DRIVER_POSTGRESQL] = "postgresql",
	[SQL_DRIVER_MYSQL] = "mysql",
};
_Static_assert(nitems(driver_names) == SQL_DRIVER_COUNT, "driver_names");

uint16_t
sql_default_port(enum sql_driver driver)
{
	return driver == SQL_DRIVER_MYSQL ? 3306 : 5432;
}

int
sql_hosts_parse(const char *spec, enum sql_driver driver, struct sql_host *hosts,
    size_t max, size_t *n_r, const char **error_r)
{
	char *copy = xstrdup(spec), *save = NULL;
	size_t n = 0;
	int rc = 0;

	for (char *h = strtok_r(copy, " \t,", &save); h != NULL;
	    h = strtok_r(NULL, " \t,", &save)) {
		uint16_t port = sql_default_port(driver);
		char *name;

		if (n == max) {
			*error_r = "too many hosts";
			rc = -1;
			break;
		}
		if (hostport_parse(h, &name, &port, error_r) < 0) {
			rc = -1;
			break;
		}
		if (name[0] == '\0' || strlen(name) >= SQL_HOST_MAX) {
			*error_r = name[0] == '\0' ? "empty host name" :
			    "host name too long";
			free(name);
			rc = -1;
			break;
		}
		str_copy(hosts[n].name, name, sizeof(hosts[n].name));
		hosts[n++].port = port;
		free(name);
	}
	free(copy);
	if (rc == 0 && n == 0) {
		*error_r = "names no host";
		rc = -1;
	}
	*n_r = n;
	return rc;
}

/* Append c to out; false once it does not fit. */
static bool
put(char *out, size_t outlen, size_t *o, char c)
{
	if (*o + 1 >= outlen)
		return false;
	out[(*o)++] = c;
	return true;
}

int
sql_query_translate(const char *query, enum sql_driver driver, char *out,
    size_t outlen, unsigned *nparams_r, const char **error_r)
{
	enum { CODE, QUOTED, LINE_COMMENT, BLOCK_COMMENT } st = CODE;
	char quote = 0;
	size_t o = 0;
	unsigned n = 0;

	*nparams_r = 0;
	for (const char *p = query; *p != '\0'; p++) {
		const char *emit = NULL;

		switch (st) {
		case QUOTED:
			/* A doubled quote stays inside; a backslash escapes in MySQL. */
			if (*p == '\\' && driver == SQL_DRIVER_MYSQL && p[1] != '\0') {
				if (!put(out, outlen, &o, *p++))
					goto toolong;
			} else if (*p == quote)
				st = CODE;
			break;
		case LINE_COMMENT:
			if (*p == '\n')
				st = CODE;
			break;
		case BLOCK_COMMENT:
			if (p[0] == '*' && p[1] == '/') {
				if (!put(out, outlen, &o, *p++))
					goto toolong;
				st = CODE;
			}
			break;
		case CODE:
			if (*p == '\'' || *p == '"' || *p == '`') {
				quote = *p;
				st = QUOTED;
			} else if (p[0] == '-' && p[1] == '-')
				st = LINE_COMMENT;
			else if (p[0] == '/' && p[1] == '*')
				st = BLOCK_COMMENT;
			else if (*p == '#' && driver == SQL_DRIVER_MYSQL)
				st = LINE_COMMENT;
			else if (*p == '?' && driver == SQL_DRIVER_MYSQL) {
				*error_r = "a ? outside quotes (write the login as $1)";
				return -1;
			} else if (*p == '$' && p[1] >= '0' && p[1] <= '9') {
				if (p[1] != '1' || (p[2] >= '0' && p[2] <= '9')) {
					*error_r = "only $1 (the login) is a parameter";
					return -1;
				}
				n++;
				p++;
				emit = driver == SQL_DRIVER_MYSQL ? "?" : "$1";
			}
			break;
		}
		if (emit == NULL && !put(out, outlen, &o, *p))
			goto toolong;
		for (; emit != NULL && *emit != '\0'; emit++)
			if (!put(out, outlen, &o, *emit))
				goto toolong;
	}
	if (st == QUOTED) {
		*error_r = "an unterminated quote";
		return -1;
	}
	if (n == 0) {
		*error_r = "does not use $1 (the login)";
		return -1;
	}
	if (outlen > 0)
		out[o] = '\0';
	*nparams_r = driver == SQL_DRIVER_MYSQL ? n : 1;
	return 0;
toolong:
	*error_r = "too long";
	return -1;
}

void
sql_answer_set(struct sql_answer *a, size_t i, const char *v, size_t len)
{
	if (i >= SQL_COLUMNS_MAX)
		return;
	if (v == NULL) {
		a->col[i].v = NULL;
		a->col[i].len = 0;
		return;
	}
	if (len >= SQL_VALUE_MAX) {
		a->too_long = true;
		len = SQL_VALUE_MAX - 1;
	}
	memcpy(a->buf[i], v, len);
	a->buf[i][len] = '\0';
	a->col[i].v = a->buf[i];
	a->col[i].len = len;
}

enum dir_status
sql_answer_route(const struct sql_answer *a, const struct host_map *map,
    struct route **route_r, char *detail, size_t dlen)
{
	struct berval host, user, port;
	struct berval *hosts[2] = { &host, NULL }, *users[2] = { &user, NULL };
	struct berval *ports[2] = { &port, NULL };
	struct ldap_entry_values v = {
		.host_attr = "host", .user_attr = "username", .port_attr = "port",
		.map = map, .label = "sql",
	};
	const struct sql_value *c = a->col;

	*route_r = NULL;
	if (a->nrows == 0) {
		str_copy(detail, "sql: no row", dlen);
		return DIR_NOT_FOUND;
	}
	if (a->nrows > 1) {
		snprintf(detail, dlen, "sql: ambiguous: %zu rows", a->nrows);
		return DIR_TEMPFAIL;
	}
	if (a->ncols < 1 || a->ncols > SQL_COLUMNS_MAX) {
		snprintf(detail, dlen, "sql: malformed answer: %zu columns "
		    "(host, username, port)", a->ncols);
		return DIR_TEMPFAIL;
	}
	if (a->too_long) {
		snprintf(detail, dlen, "sql: malformed answer: a value longer "
		    "than %d bytes", SQL_VALUE_MAX - 1);
		return DIR_TEMPFAIL;
	}
	if (c[0].v == NULL || c[0].len == 0) {
		snprintf(detail, dlen, "sql: malformed answer: %s host",
		    c[0].v == NULL ? "NULL" : "empty");
		return DIR_TEMPFAIL;
	}
	host = (struct berval){ .bv_val = (char *)c[0].v, .bv_len = c[0].len };
	v.hosts = hosts;
	if (a->ncols > 1 && c[1].v != NULL) {
		user = (struct berval){ .bv_val = (char *)c[1].v, .bv_len = c[1].len };
		v.user = users;
	}
	if (a->ncols > 2 && c[2].v != NULL &&
	    !(c[2].len == 1 && c[2].v[0] == '0')) {
		port = (struct berval){ .bv_val = (char *)c[2].v, .bv_len = c[2].len };
		v.port = ports;
	}
	return ldap_entry_route(&v, route_r, detail, dlen);
}

/* One lookup waiting for a connection. */
struct sql_req {
	struct dir_request	*req;
	struct sql_req		*next;
	uint64_t		 deadline;
};

/* One connection of the pool, and its thread. */
struct sql_worker {
	struct dir_sql		*ds;
	pthread_t		 thread;
	bool			 started;
	struct sql_conn		*conn;
	size_t			 host;		/* the one connected, or next to try */
	uint64_t		 connected_at;	/* to hosts[host] */
	uint64_t		 retry_at;	/* after every host failed */
	unsigned		 backoff_ms;
	char			 why_down[SQL_HOST_MAX + 320];
};

struct dir_sql {
	struct directory		 dir;
	const struct sql_driver_ops	*ops;
	struct sql_params		 params;
	char				 query[SQL_QUERY_MAX];
	char				*password;
	struct sql_host			 hosts[SQL_HOSTS_MAX];
	size_t				 nhosts;
	const struct host_map		*host_map;
	unsigned			 timeout_ms;
	uint64_t			 failback_ms;	/* 0: never */
	size_t				 queue_max;
	struct sql_worker		*workers;
	size_t				 nworkers;
	/* Under mtx: what workers hand over, and how many are not answered. */
	pthread_mutex_t			 mtx;
	pthread_cond_t			 cond;
	struct sql_req			*head, *tail;
	size_t				 pending;
	size_t				 waiting;
	bool				 stop;
	/* One worker at a time tries an earlier host, and not before this. */
	bool				 failing_back;
	uint64_t			 failback_at;
	_Atomic unsigned long		 shed;
	_Atomic unsigned		 up;
	struct log_limit		 log_full, log_fail, log_failback;
};

/* directory.sql.password, or the first line of password_file. */
static int
sql_read_password(const struct config *cfg, char **password_r, char *err,
    size_t errlen)
{
	const char *path = cfg->directory.sql.password_file;
	char line[SQL_PASSWORD_MAX];
	FILE *fp;

	if (path[0] == '\0') {
		*password_r = xstrdup(cfg->directory.sql.password);
		return 0;
	}
	if ((fp = privsep_fopen(path)) == NULL)
		return config_file_fail(cfg, "directory.sql.password_file", path,
		    strerror(errno), err, errlen);
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	*password_r = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return 0;
}

static void
dir_sql_release(struct dir_sql *ds)
{
	secret_free(&ds->password);
	pthread_mutex_destroy(&ds->mtx);
	pthread_cond_destroy(&ds->cond);
	free(ds->workers);
	explicit_bzero(ds, sizeof(*ds));
	free(ds);
}

/* Driver, hosts, query and password: what the daemon and the check need. */
static struct dir_sql *
dir_sql_prepare(const struct config *cfg, char *err, size_t errlen)
{
	const char *why;
	struct dir_sql *ds;
	pthread_condattr_t ca;
	enum sql_driver driver = cfg->directory.sql.driver;
	const struct sql_driver_ops *ops = driver == SQL_DRIVER_MYSQL ?
	    sql_driver_my() : sql_driver_pg();

	if (ops == NULL) {
		snprintf(err, errlen, "%s: directory.sql.driver: \"%s\" needs postern "
		    "built with %s", cfg->path, driver_names[driver],
		    driver == SQL_DRIVER_MYSQL ? "libmariadb" : "libpq");
		return NULL;
	}
	ds = xcalloc(1, sizeof(*ds));
	pthread_mutex_init(&ds->mtx, NULL);
	/* Timed waits (failback) count on clock_ms()'s clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ds->cond, &ca);
	pthread_condattr_destroy(&ca);
	ds->ops = ops;
	if (sql_hosts_parse(cfg->directory.sql.hosts, driver, ds->hosts,
	    SQL_HOSTS_MAX, &ds->nhosts, &why) < 0) {
		snprintf(err, errlen, "%s: directory.sql.hosts: %s", cfg->path, why);
		dir_sql_release(ds);
		return NULL;
	}
	if (sql_query_translate(cfg->directory.sql.query, driver, ds->query,
	    sizeof(ds->query), &ds->params.nparams, &why) < 0) {
		snprintf(err, errlen, "%s: directory.sql.query: %s", cfg->path, why);
		dir_sql_release(ds);
		return NULL;
	}
	/* The client library would only fail at the handshake. */
	if ((cfg->directory.sql.ca_file[0] != '\0' && config_file_check(cfg,
	    "directory.sql.ca_file", cfg->directory.sql.ca_file, err,
	    errlen) < 0) ||
	    sql_read_password(cfg, &ds->password, err, errlen) < 0) {
		dir_sql_release(ds);
		return NULL;
	}
	ds->params.driver = driver;
	ds->params.database = cfg->directory.sql.database;
	ds->params.user = cfg->directory.sql.user;
	ds->params.password = ds->password;
	ds->params.query = ds->query;
	ds->params.tls = cfg->directory.sql.tls;
	ds->params.ca_file = cfg->directory.sql.ca_file;
	ds->host_map = &cfg->directory.host_map;
	ds->timeout_ms = cfg->directory.sql.timeout * 1000;
	ds->failback_ms = (uint64_t)cfg->directory.sql.failback * 1000;
	ds->queue_max = cfg->directory.sql.queue;
	return ds;
}

/*
 * Connect w, starting with the host it last used and going on through the
 * list; every host gets the whole timeout.  0, or -1 with why_down set.
 */
static int
worker_connect(struct sql_worker *w)
{
	struct dir_sql *ds = w->ds;
	char err[256];

	for (size_t k = 0; k < ds->nhosts; k++) {
		size_t i = (w->host + k) % ds->nhosts;
		const struct sql_host *h = &ds->hosts[i];

		if (ds->ops->connect(&ds->params, h, clock_ms() + ds->timeout_ms,
		    &w->conn, err, sizeof(err)) == 0) {
			if (i != w->host || w->backoff_ms != 0)
				log_msg(LOG_LVL_INFO, "sql: connected to %s:%u",
				    h->name, h->port);
			w->host = i;
			w->connected_at = clock_ms();
			w->backoff_ms = 0;
			atomic_fetch_add(&ds->up, 1);
			return 0;
		}
		snprintf(w->why_down, sizeof(w->why_down), "%s:%u: %s", h->name,
		    h->port, err);
		log_limited(&ds->log_fail, SQL_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "sql: %s", w->why_down);
	}
	/* Nothing answers: fail at once for a while rather than on every lookup. */
	w->backoff_ms = w->backoff_ms == 0 ? SQL_BACKOFF_MIN_MS :
	    w->backoff_ms * 2 > SQL_BACKOFF_MAX_MS ? SQL_BACKOFF_MAX_MS :
	    w->backoff_ms * 2;
	w->retry_at = clock_ms() + w->backoff_ms;
	return -1;
}

static void
worker_disconnect(struct sql_worker *w)
{
	if (w->conn == NULL)
		return;
	w->ds->ops->close(&w->conn);
	atomic_fetch_sub(&w->ds->up, 1);
}

static void
req_answer(struct sql_req *sr, enum dir_status status, struct route *route,
    const char *detail)
{
	if (dir_request_cancelled(sr->req)) {
		route_unref(&route);
		dir_request_drop(sr->req);
	} else
		dir_request_done(sr->req, status, route, detail);
}

/*
 * Run the query on w's connection, connecting first if there is none.
 * 0 with *a filled (afresh), or -1 with detail set (the connection is
 * closed).
 */
static int
worker_query(struct sql_worker *w, const char *login, struct sql_answer *a,
    char *detail, size_t dlen)
{
	struct dir_sql *ds = w->ds;
	const struct sql_host *h;
	char err[256];

	memset(a, 0, sizeof(*a));
	if (w->conn == NULL && (clock_ms() < w->retry_at ||
	    worker_connect(w) < 0)) {
		snprintf(detail, dlen, "sql: database unreachable (%s)", w->why_down);
		return -1;
	}
	if (ds->ops->lookup(w->conn, login, clock_ms() + ds->timeout_ms, a, err,
	    sizeof(err)) == 0)
		return 0;
	h = &ds->hosts[w->host];
	log_limited(&ds->log_fail, SQL_LOG_EVERY_MS, LOG_LVL_WARNING,
	    "sql: %s:%u: %s", h->name, h->port, err);
	snprintf(w->why_down, sizeof(w->why_down), "%s:%u: %s", h->name, h->port,
	    err);
	worker_disconnect(w);
	snprintf(detail, dlen, "sql: %s", err);
	return -1;
}

/* Answer one lookup. */
static void
worker_serve(struct sql_worker *w, struct sql_req *sr)
{
	struct dir_sql *ds = w->ds;
	const char *login = dir_request_name(sr->req)->full;
	struct sql_answer *a;
	struct route *route = NULL;
	enum dir_status status;
	char detail[768];
	bool reused = w->conn != NULL;

	if (dir_request_cancelled(sr->req)) {
		req_answer(sr, DIR_TEMPFAIL, NULL, NULL);
		return;
	}
	if (clock_ms() >= sr->deadline) {
		req_answer(sr, DIR_TEMPFAIL, NULL, "sql: waited too long for a "
		    "connection");
		return;
	}
	a = xcalloc(1, sizeof(*a));
	/*
	 * A connection that sat idle may have been closed by the server (a
	 * restart, an idle timeout) without our knowing: one more try on a
	 * fresh one, while the lookup's deadline allows.  A query that timed
	 * out has used that up, so a mute server is not asked twice.
	 */
	if (worker_query(w, login, a, detail, sizeof(detail)) < 0 &&
	    (!reused || clock_ms() >= sr->deadline ||
	    worker_query(w, login, a, detail, sizeof(detail)) < 0)) {
		free(a);
		req_answer(sr, DIR_TEMPFAIL, NULL, detail);
		return;
	}
	/* An unusable answer is logged by the session, with the login. */
	status = sql_answer_route(a, ds->host_map, &route, detail, sizeof(detail));
	explicit_bzero(a, sizeof(*a));
	free(a);
	req_answer(sr, status, route, detail);
}

/*
 * Failback.  A connection that went on to a later host (the earlier ones
 * failed) tries them again, in order, once it has been there
 * directory.sql.failback seconds, as an LDAP connection on a backup URI
 * does.  The attempt is made between lookups: when its thread finds the
 * queue empty, or another connection is up to take the queue, so a lone
 * connection never starts one while a lookup waits (one that comes during
 * the attempt waits for it, within its deadline).  Only one thread at
 * a time tries, and an attempt that finds the first host still down holds
 * the pool's next one a whole period off: a host that is down costs one
 * attempt per period, not one per connection.
 */

/* When w may try an earlier host; UINT64_MAX never.  Under ds->mtx. */
static uint64_t
failback_due(const struct sql_worker *w)
{
	const struct dir_sql *ds = w->ds;
	uint64_t at;

	if (ds->failback_ms == 0 || w->conn == NULL || w->host == 0)
		return UINT64_MAX;
	at = w->connected_at + ds->failback_ms;
	return at > ds->failback_at ? at : ds->failback_at;
}

/*
 * Try the hosts before w's own, make before break: w keeps its connection
 * until an earlier host has taken the connect and prepared the query, so
 * a preferred host that is down or mute costs this thread one
 * directory.sql.timeout per host tried, and the pool never a connection.
 */
static void
worker_failback(struct sql_worker *w)
{
	struct dir_sql *ds = w->ds;
	struct sql_conn *conn = NULL;
	size_t i, from = w->host;
	char err[256];

	for (i = 0; i < from; i++) {
		const struct sql_host *h = &ds->hosts[i];

		if (ds->ops->connect(&ds->params, h, clock_ms() + ds->timeout_ms,
		    &conn, err, sizeof(err)) == 0)
			break;
		log_limited(&ds->log_failback, SQL_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "sql: %s:%u: %s", h->name, h->port, err);
	}
	if (i < from) {
		/* One connection for another: `up` does not change. */
		ds->ops->close(&w->conn);
		w->conn = conn;
		w->host = i;
		w->connected_at = clock_ms();
		log_msg(LOG_LVL_INFO, "sql: connected to %s:%u", ds->hosts[i].name,
		    ds->hosts[i].port);
	}
	pthread_mutex_lock(&ds->mtx);
	ds->failing_back = false;
	if (i > 0)
		ds->failback_at = clock_ms() + ds->failback_ms;
	pthread_cond_broadcast(&ds->cond);	/* the others may be due */
	pthread_mutex_unlock(&ds->mtx);
}

/* Sleep on the pool's condition variable, until `until` at the latest. */
static void
worker_wait(struct dir_sql *ds, uint64_t until)
{
	struct timespec ts;

	if (until == UINT64_MAX || ds->failing_back) {
		pthread_cond_wait(&ds->cond, &ds->mtx);
		return;
	}
	ts.tv_sec = (time_t)(until / 1000);
	ts.tv_nsec = (long)(until % 1000) * 1000000;
	(void)pthread_cond_timedwait(&ds->cond, &ds->mtx, &ts);
}

/*
 * Under ds->mtx: wait for a lookup, the stop, or w's failback.  True when
 * w is to try an earlier host now (failing_back is then set).
 */
static bool
worker_idle(struct sql_worker *w)
{
	struct dir_sql *ds = w->ds;

	while (!ds->stop) {
		uint64_t due = failback_due(w);

		if (!ds->failing_back && clock_ms() >= due &&
		    (ds->head == NULL || atomic_load(&ds->up) > 1)) {
			ds->failing_back = true;
			/* The wake-up may have been meant for a lookup: pass it on. */
			if (ds->head != NULL)
				pthread_cond_signal(&ds->cond);
			return true;
		}
		if (ds->head != NULL)
			break;
		worker_wait(ds, due);
	}
	return false;
}

static void *
sql_main(void *arg)
{
	struct sql_worker *w = arg;
	struct dir_sql *ds = w->ds;

	for (;;) {
		struct sql_req *sr;
		bool stop;

		pthread_mutex_lock(&ds->mtx);
		if (worker_idle(w)) {
			pthread_mutex_unlock(&ds->mtx);
			worker_failback(w);
			continue;
		}
		stop = ds->stop;
		if ((sr = ds->head) != NULL) {
			if ((ds->head = sr->next) == NULL)
				ds->tail = NULL;
			ds->waiting--;
		}
		pthread_mutex_unlock(&ds->mtx);
		if (sr == NULL)
			break;
		if (stop)
			req_answer(sr, DIR_TEMPFAIL, NULL, "directory shutting down");
		else
			worker_serve(w, sr);
		free(sr);
		pthread_mutex_lock(&ds->mtx);
		ds->pending--;
		pthread_mutex_unlock(&ds->mtx);
	}
	worker_disconnect(w);
	return NULL;
}

static void
dir_sql_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_sql *ds = (struct dir_sql *)dir;
	struct sql_req *sr;

	pthread_mutex_lock(&ds->mtx);
	if (ds->pending >= ds->queue_max) {
		pthread_mutex_unlock(&ds->mtx);
		atomic_fetch_add(&ds->shed, 1);
		log_limited(&ds->log_full, SQL_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "sql: %zu lookups waiting or in flight (directory.sql.queue): "
		    "refusing more until the database catches up", ds->queue_max);
		dir_request_done(req, DIR_TEMPFAIL, NULL,
		    "directory overloaded: too many lookups queued");
		return;
	}
	sr = xcalloc(1, sizeof(*sr));
	sr->req = req;
	sr->deadline = clock_ms() + ds->timeout_ms;
	if (ds->tail != NULL)
		ds->tail->next = sr;
	else
		ds->head = sr;
	ds->tail = sr;
	ds->pending++;
	ds->waiting++;
	pthread_cond_signal(&ds->cond);
	pthread_mutex_unlock(&ds->mtx);
}

static void
dir_sql_queue_stats(struct directory *dir, struct dir_queue_stats *st)
{
	struct dir_sql *ds = (struct dir_sql *)dir;

	pthread_mutex_lock(&ds->mtx);
	st->searches = ds->waiting;
	pthread_mutex_unlock(&ds->mtx);
	st->binds = 0;
	st->max = ds->queue_max;
	st->shed = atomic_load(&ds->shed);
	st->up = atomic_load(&ds->up);
}

static void
dir_sql_free(struct directory *dir)
{
	struct dir_sql *ds = (struct dir_sql *)dir;

	pthread_mutex_lock(&ds->mtx);
	ds->stop = true;
	pthread_cond_broadcast(&ds->cond);
	pthread_mutex_unlock(&ds->mtx);
	for (size_t i = 0; i < ds->nworkers; i++)
		if (ds->workers[i].started)
			pthread_join(ds->workers[i].thread, NULL);
	dir_sql_release(ds);
}

static const struct directory_ops dir_sql_ops = {
	.name = "sql",
	.lookup = dir_sql_lookup,
	.free = dir_sql_free,
	.queue_stats = dir_sql_queue_stats,
};

static int
sql_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	struct dir_sql *ds;

	if ((ds = dir_sql_prepare(cfg, err, errlen)) == NULL)
		return -1;
	ds->dir.ops = &dir_sql_ops;
	ds->nworkers = cfg->directory.sql.pool;
	ds->workers = xcalloc(ds->nworkers, sizeof(*ds->workers));
	for (size_t i = 0; i < ds->nworkers; i++) {
		struct sql_worker *w = &ds->workers[i];

		w->ds = ds;
		str_copy(w->why_down, "not connected yet", sizeof(w->why_down));
		if (pthread_create(&w->thread, NULL, sql_main, w) != 0) {
			snprintf(err, errlen, "sql: cannot start the pool's threads");
			dir_sql_free(&ds->dir);
			return -1;
		}
		w->started = true;
	}
	*dir_r = &ds->dir;
	return 0;
}

/*
 * --check-config: connect to every host as the daemon would, prepare the
 * query (the server checks its syntax, its tables and our rights), see
 * that it answers 1 to 3 columns, and run it once for a login that does
 * not exist.
 */
static int
sql_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	struct dir_sql *ds;
	struct sql_answer *a;
	int rc = 0;

	if ((ds = dir_sql_prepare(cfg, err, errlen)) == NULL)
		return -1;
	a = xcalloc(1, sizeof(*a));
	for (size_t i = 0; i < ds->nhosts && rc == 0; i++) {
		const struct sql_host *h = &ds->hosts[i];
		struct sql_conn *c = NULL;
		char why[256];
		size_t ncols;

		if (ds->ops->connect(&ds->params, h, clock_ms() + ds->timeout_ms,
		    &c, why, sizeof(why)) < 0) {
			/* The server took us but not the query. */
			if (strncmp(why, "prepare", 7) == 0)
				snprintf(err, errlen, "%s: directory.sql.query: "
				    "%s:%u: %s", cfg->path, h->name, h->port, why);
			else
				snprintf(err, errlen, "%s: directory.sql.hosts: "
				    "%s:%u: %s (check directory.sql.hosts, user, "
				    "directory.sql.password, database, tls and "
				    "ca_file)", cfg->path, h->name, h->port, why);
			rc = -1;
			break;
		}
		if ((ncols = ds->ops->columns(c)) < 1 || ncols > SQL_COLUMNS_MAX) {
			snprintf(err, errlen, "%s: directory.sql.query: answers %zu "
			    "columns (host, username, port: 1 to 3)", cfg->path, ncols);
			rc = -1;
		} else if (ds->ops->lookup(c, SQL_CHECK_USER, clock_ms() +
		    ds->timeout_ms, a, why, sizeof(why)) < 0) {
			snprintf(err, errlen, "%s: directory.sql.query: %s:%u: %s",
			    cfg->path, h->name, h->port, why);
			rc = -1;
		}
		ds->ops->close(&c);
	}
	free(a);
	dir_sql_release(ds);
	return rc;
}

/* Answers depend on the login alone and cost a round trip: worth a cache. */
static bool
sql_backend_cacheable(const struct config *cfg)
{
	(void)cfg;
	return true;
}

const struct dir_backend dir_backend_sql = {
	.name = "sql",
	.open = sql_backend_open,
	.check = sql_backend_check,
	.cacheable = sql_backend_cacheable,
};

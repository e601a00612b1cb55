#include "autoconf.h"

#include <errno.h>
#include <lber.h>
#include <ldap.h>
#include <poll.h>
#include <pthread.h>
#include <sasl/sasl.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "directory.h"
#include "directory/backend.h"
#include "directory/dir_ldap.h"
#include "ldap_entry.h"
#include "log.h"
#include "privsep.h"
#include "route.h"
#include "util.h"

/*
 * The LDAP directory: `pool` search connections, each driven by a thread
 * of its own, take lookups from one bounded queue and pipeline them
 * (ldap_search_ext + ldap_result), so one slow answer does not hold up the
 * rest.  Password checks (auth.verify = "ldap-bind") have a queue and
 * `auth_pool` connections of their own: a bind changes a connection's
 * identity and blocks it, so it never shares one with searches.  Workers
 * never touch LDAP: they queue a request and get the answer posted back to
 * their loop.
 *
 * Every queued request carries a deadline.  Past the queue's bound a new
 * request fails at once (load shedding); a request whose deadline passed or
 * whose session gave up is dropped when it is taken from the queue, never
 * sent.  A request that the server refuses (an operation error) fails on
 * its own: only a broken link drops the connection.  A connection that
 * breaks hands its unanswered requests back to the queue and reconnects
 * with backoff -- reset only once a connection has proven itself --
 * starting with the URI after the one that failed; while on a backup URI it
 * returns to the first after `failback` seconds, connected there before it
 * lets the backup go.  When no connection is up,
 * queued requests fail at once with the reason (unreachable, or credentials
 * refused), so clients hear of an outage promptly (or get a stale route).
 */

#define LDAP_BATCH		64	/* requests a connection takes at once */
#define LDAP_PENDING_MAX	256	/* outstanding searches per connection */
#define LDAP_BACKOFF_MIN_MS	100
#define LDAP_BACKOFF_MAX_MS	5000
/* Up this long (or answering), a connection has proven itself. */
#define LDAP_PROVEN_MS		10000
#define LDAP_FILTER_MAX		4096
#define LDAP_LOG_EVERY_MS	10000	/* repeated warnings: once per this */
#define LDAP_CHECK_USER		"postern-check@example.invalid"

struct queued {
	struct dir_request	*req;
	uint64_t		 deadline;
	struct queued		*next;
};

/* A bounded FIFO of requests shared by one pool's threads. */
struct ldap_queue {
	pthread_mutex_t		 mtx;		/* guards all but evfd */
	struct queued		*head, **tail;
	size_t			 len, max;
	bool			 stop;
	int			 evfd;		/* wakes the pool's threads */
};

struct pending {
	int			 msgid;
	struct dir_request	*req;
	uint64_t		 deadline;
	uint64_t		 sent;
};

struct dir_ldap;

/* One connection and the thread that drives it (search or bind pool). */
struct ldap_conn {
	struct dir_ldap		*dl;
	unsigned		 id;
	pthread_t		 thread;
	bool			 started;
	LDAP			*ld;
	size_t			 uri_idx;	/* in use, or to try first */
	uint64_t		 connected_at;
	uint64_t		 heard_at;	/* last message from the server */
	bool			 proven;	/* has answered, or stayed up */
	uint64_t		 backoff_ms;
	uint64_t		 next_try;
	unsigned		 seed;		/* backoff jitter */
	struct pending		 pending[LDAP_PENDING_MAX];
	size_t			 npending;
};

struct dir_ldap {
	struct directory	 dir;
	const struct ldap_cfg	*cfg;
	char			**uris;
	size_t			 nuris;
	char			*password;
	char			*attrs[3 + HOST_ATTRS_MAX];
	const struct host_map	*host_map;	/* the generation's config's */

	struct ldap_queue	 searches;
	struct ldap_queue	 binds;
	_Atomic unsigned	 up;		/* search connections bound */

	pthread_mutex_t		 why_mtx;
	char			 why_down[256];	/* what fail-fast answers say */

	_Atomic unsigned long	 shed;		/* refused: queue full */
	struct log_limit	 log_down, log_lost, log_shed, log_expired;

	struct ldap_conn	*conns;		/* pool search connections */
	unsigned		 nconns;
	struct ldap_conn	*binders;	/* auth_pool bind connections */
	unsigned		 nbinders;
};

/* Queues. */

static int
queue_init(struct ldap_queue *q, size_t max)
{
	pthread_mutex_init(&q->mtx, NULL);
	q->head = NULL;
	q->tail = &q->head;
	q->len = 0;
	q->max = max;
	q->stop = false;
	q->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	return q->evfd < 0 ? -1 : 0;
}

static void
queue_wake(struct ldap_queue *q)
{
	uint64_t one = 1;

	if (write(q->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warning("ldap: eventfd: %s", strerror(errno));
}

/*
 * Add a request.  A new one (front = false) past the bound is refused
 * (-1); one handed back by a broken connection goes first, whatever the
 * bound: it was admitted already.
 */
static int
queue_put(struct ldap_queue *q, struct dir_request *req, uint64_t deadline,
    bool front)
{
	struct queued *e;

	pthread_mutex_lock(&q->mtx);
	if (!front && q->len >= q->max) {
		pthread_mutex_unlock(&q->mtx);
		return -1;
	}
	e = xmalloc(sizeof(*e));
	e->req = req;
	e->deadline = deadline;
	if (front) {
		e->next = q->head;
		if (q->head == NULL)
			q->tail = &e->next;
		q->head = e;
	} else {
		e->next = NULL;
		*q->tail = e;
		q->tail = &e->next;
	}
	q->len++;
	pthread_mutex_unlock(&q->mtx);
	queue_wake(q);
	return 0;
}

/*
 * Take up to `max` live requests (none when max is 0).  Requests nobody
 * waits for any more are dropped, and those past their deadline failed,
 * here: neither is ever sent.
 */
static struct queued *
queue_take(struct dir_ldap *dl, struct ldap_queue *q, size_t max, uint64_t now)
{
	struct queued *list = NULL, **lt = &list, *dead = NULL, *e;
	size_t n = 0;
	bool more;

	pthread_mutex_lock(&q->mtx);
	while (n < max && (e = q->head) != NULL) {
		if ((q->head = e->next) == NULL)
			q->tail = &q->head;
		q->len--;
		if (dir_request_cancelled(e->req) || e->deadline <= now) {
			e->next = dead;
			dead = e;
			continue;
		}
		e->next = NULL;
		*lt = e;
		lt = &e->next;
		n++;
	}
	more = q->head != NULL;
	pthread_mutex_unlock(&q->mtx);
	if (more)
		queue_wake(q);		/* the rest is for the pool's others */
	while ((e = dead) != NULL) {
		dead = e->next;
		if (dir_request_cancelled(e->req))
			dir_request_drop(e->req);
		else {
			log_limited(&dl->log_expired, LDAP_LOG_EVERY_MS, LOG_LVL_WARNING,
			    "ldap: a lookup waited in the queue past its deadline");
			dir_request_done(e->req, DIR_TEMPFAIL, NULL,
			    "directory too slow: the lookup expired in the queue");
		}
		free(e);
	}
	return list;
}

static bool
queue_stopping(struct ldap_queue *q)
{
	bool stop;

	pthread_mutex_lock(&q->mtx);
	stop = q->stop;
	pthread_mutex_unlock(&q->mtx);
	return stop;
}

static void
queue_drain_wakeups(struct ldap_queue *q)
{
	uint64_t v;

	/* The stop wake-up stays pending so that every thread sees it. */
	if (!queue_stopping(q))
		(void)!read(q->evfd, &v, sizeof(v));
}

static void
fail_list(struct queued *e, const char *why)
{
	while (e != NULL) {
		struct queued *next = e->next;

		dir_request_done(e->req, DIR_TEMPFAIL, NULL, why);
		free(e);
		e = next;
	}
}

static void
queue_stop(struct ldap_queue *q)
{
	pthread_mutex_lock(&q->mtx);
	q->stop = true;
	pthread_mutex_unlock(&q->mtx);
	queue_wake(q);
}

/* After the threads are gone: fail what is left, free the queue. */
static void
queue_free(struct dir_ldap *dl, struct ldap_queue *q)
{
	if (q->evfd < 0)
		return;
	pthread_mutex_lock(&q->mtx);
	q->stop = false;		/* queue_take works again */
	pthread_mutex_unlock(&q->mtx);
	fail_list(queue_take(dl, q, SIZE_MAX, 0), "directory shutting down");
	close(q->evfd);
	q->evfd = -1;
	pthread_mutex_destroy(&q->mtx);
}

/* Why the directory cannot answer, for fail-fast replies. */
static void
set_why_down(struct dir_ldap *dl, const char *why)
{
	pthread_mutex_lock(&dl->why_mtx);
	str_copy(dl->why_down, why, sizeof(dl->why_down));
	pthread_mutex_unlock(&dl->why_mtx);
}

static void
get_why_down(struct dir_ldap *dl, char *out, size_t len)
{
	pthread_mutex_lock(&dl->why_mtx);
	str_copy(out, dl->why_down, len);
	pthread_mutex_unlock(&dl->why_mtx);
}

/* Connections. */

static int
sasl_interact(LDAP *ld, unsigned flags, void *defaults, void *in)
{
	sasl_interact_t *it = in;

	/* EXTERNAL and other mechanisms we allow need no prompts answered. */
	for (; it->id != SASL_CB_LIST_END; it++) {
		it->result = it->defresult ? it->defresult : "";
		it->len = (unsigned)strlen(it->result);
	}
	return LDAP_SUCCESS;
}

/* A handle for uri with our options and, if configured, StartTLS done. */
int
dir_ldap_handle(const struct ldap_cfg *cfg, const char *uri, LDAP **ld_r)
{
	struct timeval tv = { .tv_sec = cfg->timeout };
	int version = LDAP_VERSION3, rc, zero = 0;
	LDAP *ld;

	if ((rc = ldap_initialize(&ld, uri)) != LDAP_SUCCESS)
		return rc;
	ldap_set_option(ld, LDAP_OPT_PROTOCOL_VERSION, &version);
	ldap_set_option(ld, LDAP_OPT_NETWORK_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_TIMEOUT, &tv);
	ldap_set_option(ld, LDAP_OPT_REFERRALS, LDAP_OPT_OFF);
	if (cfg->ca_file[0] != '\0') {
		/* Debian's libldap is built on GnuTLS: only LDAP_OPT_X_TLS_*. */
		ldap_set_option(ld, LDAP_OPT_X_TLS_CACERTFILE, cfg->ca_file);
		ldap_set_option(ld, LDAP_OPT_X_TLS_NEWCTX, &zero);
	}
	if (cfg->starttls && strncasecmp(uri, "ldap://", 7) == 0 &&
	    (rc = ldap_start_tls_s(ld, NULL, NULL)) != LDAP_SUCCESS) {
		ldap_unbind_ext_s(ld, NULL, NULL);
		return rc;
	}
	*ld_r = ld;
	return LDAP_SUCCESS;
}

/* The server said no to who we are (as opposed to not answering). */
static bool
bind_refused(int rc)
{
	return rc == LDAP_INVALID_CREDENTIALS || rc == LDAP_INAPPROPRIATE_AUTH ||
	    rc == LDAP_INSUFFICIENT_ACCESS || rc == LDAP_STRONG_AUTH_REQUIRED ||
	    rc == LDAP_CONFIDENTIALITY_REQUIRED || rc == LDAP_AUTH_METHOD_NOT_SUPPORTED;
}

/* The link is gone (as opposed to one operation failing). */
static bool
link_broken(int rc)
{
	return rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ||
	    rc == LDAP_LOCAL_ERROR || rc == LDAP_UNAVAILABLE || rc == LDAP_BUSY;
}

/* Bind as the daemon (service identity) on a fresh handle. */
int
dir_ldap_service_bind(const struct ldap_cfg *cfg, const char *password, LDAP *ld)
{
	if (cfg->sasl_mech[0] != '\0')
		return ldap_sasl_interactive_bind_s(ld, NULL, cfg->sasl_mech, NULL,
		    NULL, LDAP_SASL_QUIET, sasl_interact, NULL);
	if (cfg->bind_dn[0] != '\0') {
		struct berval cred = { .bv_val = (char *)password,
		    .bv_len = strlen(password) };

		return ldap_sasl_bind_s(ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred,
		    NULL, NULL, NULL);
	}
	return ldap_connect(ld);
}

/* Say why a connection attempt failed, in the words an operator needs. */
void
dir_ldap_describe_failure(const struct ldap_cfg *cfg, const char *uri, int rc,
    char *out, size_t len)
{
	if (bind_refused(rc))
		snprintf(out, len, "ldap %s: bind as %s rejected: %s: check "
		    "bind_dn and bind_password", uri, cfg->bind_dn[0] ? cfg->bind_dn :
		    cfg->sasl_mech[0] ? cfg->sasl_mech : "(anonymous)",
		    ldap_err2string(rc));
	else if (rc == LDAP_SERVER_DOWN || rc == LDAP_CONNECT_ERROR ||
	    rc == LDAP_TIMEOUT)
		snprintf(out, len, "ldap %s: unreachable: %s", uri, ldap_err2string(rc));
	else
		snprintf(out, len, "ldap %s: %s", uri, ldap_err2string(rc));
}

/* Connect and bind to uris[idx] (a failure is logged).  0, or the LDAP
 * result code. */
static int
conn_connect(struct dir_ldap *dl, size_t idx, LDAP **ld_r)
{
	const char *uri = dl->uris[idx];
	char why[384];
	LDAP *ld;
	int rc;

	if ((rc = dir_ldap_handle(dl->cfg, uri, &ld)) == LDAP_SUCCESS &&
	    (rc = dir_ldap_service_bind(dl->cfg, dl->password, ld)) != LDAP_SUCCESS)
		ldap_unbind_ext_s(ld, NULL, NULL);
	if (rc != LDAP_SUCCESS) {
		dir_ldap_describe_failure(dl->cfg, uri, rc, why, sizeof(why));
		log_limited(&dl->log_down, LDAP_LOG_EVERY_MS, bind_refused(rc) ?
		    LOG_LVL_ERROR : LOG_LVL_WARNING, "%s", why);
		set_why_down(dl, bind_refused(rc) ?
		    "directory refused postern's credentials" : "directory unreachable");
		return rc;
	}
	*ld_r = ld;
	return 0;
}

static void
conn_install(struct ldap_conn *c, size_t idx, LDAP *ld)
{
	c->ld = ld;
	c->uri_idx = idx;
	c->connected_at = c->heard_at = clock_ms();
	c->proven = false;
	log_info("ldap: connection %u up: %s", c->id, c->dl->uris[idx]);
}

/* Connect and bind to uris[idx].  0, or the LDAP result code. */
static int
conn_open(struct ldap_conn *c, size_t idx)
{
	LDAP *ld;
	int rc;

	if ((rc = conn_connect(c->dl, idx, &ld)) != 0)
		return rc;
	conn_install(c, idx, ld);
	atomic_fetch_add(&c->dl->up, 1);
	return 0;
}

/*
 * Give the first URI another chance, make before break: the connection to
 * the backup URI stays up until the first has answered the bind, so a
 * first URI that accepts but never answers costs this thread one timeout
 * per failback period, never a moment in which no connection is up (and
 * every lookup would fail at once).
 */
static void
conn_failback(struct ldap_conn *c)
{
	LDAP *ld;

	if (conn_connect(c->dl, 0, &ld) != 0) {
		c->connected_at = clock_ms();	/* again after another period */
		return;
	}
	ldap_unbind_ext_s(c->ld, NULL, NULL);
	conn_install(c, 0, ld);
}

/*
 * Drop the connection; unanswered requests go back to the queue (and next
 * time the following URI is tried first).
 */
static void	backoff(struct ldap_conn *);

static void
conn_close(struct ldap_conn *c, const char *why, bool move_on)
{
	struct dir_ldap *dl = c->dl;

	if (c->ld == NULL)
		return;
	if (why != NULL)
		log_limited(&dl->log_lost, LDAP_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "ldap: connection %u to %s lost: %s", c->id,
		    dl->uris[c->uri_idx], why);
	for (size_t i = 0; i < c->npending; i++)
		(void)queue_put(&dl->searches, c->pending[i].req,
		    c->pending[i].deadline, true);
	c->npending = 0;
	ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
	if (move_on)
		c->uri_idx = (c->uri_idx + 1) % dl->nuris;
	atomic_fetch_sub(&dl->up, 1);
	if (c->proven || clock_ms() - c->connected_at >= LDAP_PROVEN_MS) {
		c->backoff_ms = 0;	/* it worked for a while: start over */
		c->next_try = clock_ms();
	} else {
		/* Broke before it ever answered: a reconnect at once would loop. */
		backoff(c);
	}
}

static void
backoff(struct ldap_conn *c)
{
	uint64_t cap = (uint64_t)c->dl->cfg->timeout * 1000 / 2;

	if (cap < LDAP_BACKOFF_MIN_MS)
		cap = LDAP_BACKOFF_MIN_MS;
	if (cap > LDAP_BACKOFF_MAX_MS)
		cap = LDAP_BACKOFF_MAX_MS;
	c->backoff_ms = c->backoff_ms == 0 ? LDAP_BACKOFF_MIN_MS : c->backoff_ms * 2;
	if (c->backoff_ms > cap)
		c->backoff_ms = cap;
	/* A quarter of jitter, so that a pool does not knock in step. */
	c->next_try = clock_ms() + c->backoff_ms -
	    (uint64_t)rand_r(&c->seed) % (c->backoff_ms / 4 + 1);
}

/* Every URI once, starting with c->uri_idx; on failure, back off. */
static void
conn_try_open(struct ldap_conn *c)
{
	size_t n = c->dl->nuris, first = c->uri_idx % n;

	for (size_t i = 0; i < n; i++)
		if (conn_open(c, (first + i) % n) == 0)
			return;
	c->uri_idx = 0;
	backoff(c);
}

/* Searches. */

static void
send_search(struct ldap_conn *c, struct queued *q)
{
	struct dir_ldap *dl = c->dl;
	const struct username *name = dir_request_name(q->req);
	enum proto_id proto = dir_request_proto(q->req);
	char filter[LDAP_FILTER_MAX], base[LDAP_FILTER_MAX];
	struct timeval tv = { .tv_sec = dl->cfg->timeout };
	struct pending *p;
	int msgid, rc;

	if (c->npending == LDAP_PENDING_MAX) {
		(void)queue_put(&dl->searches, q->req, q->deadline, true);
		return;
	}
	if (ldap_expand(dl->cfg->filter, name, proto, false, filter, sizeof(filter)) < 0 ||
	    ldap_expand(dl->cfg->base, name, proto, true, base, sizeof(base)) < 0) {
		dir_request_done(q->req, DIR_TEMPFAIL, NULL,
		    "filter or base too long for this user name");
		return;
	}
	/* A size limit of 2 is enough to tell one entry from ambiguity. */
	rc = ldap_search_ext(c->ld, base, dl->cfg->scope, filter, dl->attrs, 0,
	    NULL, NULL, &tv, 2, &msgid);
	if (rc != LDAP_SUCCESS && link_broken(rc)) {
		(void)queue_put(&dl->searches, q->req, q->deadline, true);
		conn_close(c, ldap_err2string(rc), true);
		return;
	}
	if (rc != LDAP_SUCCESS) {
		/* This request's own fault (filter, encoding): it alone fails. */
		dir_request_done(q->req, DIR_TEMPFAIL, NULL, ldap_err2string(rc));
		return;
	}
	p = &c->pending[c->npending++];
	p->msgid = msgid;
	p->req = q->req;
	p->deadline = q->deadline;
	p->sent = clock_ms();
}

static void
answer(struct ldap_conn *c, struct pending *p, LDAPMessage *res)
{
	struct dir_ldap *dl = c->dl;
	const struct username *name = dir_request_name(p->req);
	struct route *route = NULL;
	enum dir_status status;
	char detail[512] = "";
	int n = ldap_count_entries(c->ld, res), rc = LDAP_OTHER;
	LDAPMessage *m;

	for (m = ldap_first_message(c->ld, res); m != NULL;
	    m = ldap_next_message(c->ld, m))
		if (ldap_msgtype(m) == LDAP_RES_SEARCH_RESULT)
			ldap_parse_result(c->ld, m, &rc, NULL, NULL, NULL, NULL, 0);

	if (n > 1 || rc == LDAP_SIZELIMIT_EXCEEDED) {
		log_warning("ldap: %s matches more than one entry: refusing to "
		    "guess", name->full);
		status = DIR_TEMPFAIL;
		str_copy(detail, "more than one entry matches", sizeof(detail));
	} else if (rc != LDAP_SUCCESS && rc != LDAP_NO_SUCH_OBJECT) {
		status = DIR_TEMPFAIL;
		snprintf(detail, sizeof(detail), "ldap search: %s", ldap_err2string(rc));
	} else if (n == 0) {
		status = DIR_NOT_FOUND;
		str_copy(detail, "no entry in the directory", sizeof(detail));
	} else {
		LDAPMessage *e = ldap_first_entry(c->ld, res);
		char *dn = ldap_get_dn(c->ld, e);
		struct ldap_entry_values v = {
			.dn = dn,
			.user = ldap_get_values_len(c->ld, e, dl->cfg->attr_username),
			.port = ldap_get_values_len(c->ld, e, dl->cfg->attr_port),
			.user_attr = dl->cfg->attr_username,
			.port_attr = dl->cfg->attr_port,
			.map = dl->host_map,
		};

		v.hosts = ldap_entry_first_values(c->ld, e, dl->cfg->attr_hosts,
		    &v.host_attr);

		status = ldap_entry_route(&v, &route, detail, sizeof(detail));
		if (status != DIR_OK)
			log_warning("ldap: unusable entry for %s: %s", name->full, detail);
		ldap_value_free_len(v.user);
		ldap_value_free_len(v.hosts);
		ldap_value_free_len(v.port);
		ldap_memfree(dn);
	}
	dir_request_done(p->req, status, route, detail);
}

static struct pending *
find_pending(struct ldap_conn *c, int msgid)
{
	for (size_t i = 0; i < c->npending; i++)
		if (c->pending[i].msgid == msgid)
			return &c->pending[i];
	return NULL;
}

static void
remove_pending(struct ldap_conn *c, struct pending *p)
{
	*p = c->pending[--c->npending];
}

/* Collect every finished search without blocking.  -1 if the link broke. */
static int
collect(struct ldap_conn *c)
{
	for (;;) {
		struct timeval zero = { 0, 0 };
		LDAPMessage *res = NULL;
		struct pending *p;
		int rc = ldap_result(c->ld, LDAP_RES_ANY, LDAP_MSG_ALL, &zero, &res);

		if (rc == 0)
			return 0;
		if (rc < 0) {
			int err = LDAP_OTHER;

			ldap_get_option(c->ld, LDAP_OPT_RESULT_CODE, &err);
			conn_close(c, ldap_err2string(err), true);
			return -1;
		}
		c->heard_at = clock_ms();
		if ((p = find_pending(c, ldap_msgid(res))) != NULL) {
			c->proven = true;
			answer(c, p, res);
			remove_pending(c, p);
		}
		ldap_msgfree(res);
	}
}

/*
 * Fail searches past their deadline.  A server that has said nothing at
 * all since such a search was sent is not slow but gone (a mute peer, a
 * dead route): drop the connection so the next URI gets a chance.
 */
static void
expire(struct ldap_conn *c, uint64_t now)
{
	bool mute = false;

	for (size_t i = 0; i < c->npending; ) {
		struct pending *p = &c->pending[i];

		if (p->deadline > now) {
			i++;
			continue;
		}
		if (c->heard_at <= p->sent)
			mute = true;
		ldap_abandon_ext(c->ld, p->msgid, NULL, NULL);
		dir_request_done(p->req, DIR_TEMPFAIL, NULL,
		    "directory did not answer in time");
		remove_pending(c, p);
	}
	if (mute) {
		char why[64];

		snprintf(why, sizeof(why), "no answer within %us",
		    c->dl->cfg->timeout);
		conn_close(c, why, true);
		if (c->backoff_ms == 0)
			backoff(c);	/* gone quiet: not at once again */
	}
}

static void
send_queued(struct ldap_conn *c, uint64_t now)
{
	struct dir_ldap *dl = c->dl;
	size_t room = LDAP_PENDING_MAX - c->npending;
	struct queued *q = queue_take(dl, &dl->searches,
	    room < LDAP_BATCH ? room : LDAP_BATCH, now);

	while (q != NULL) {
		struct queued *next = q->next;

		if (c->ld != NULL)
			send_search(c, q);
		else
			(void)queue_put(&dl->searches, q->req, q->deadline, true);
		free(q);
		q = next;
	}
}

static void *
search_main(void *arg)
{
	struct ldap_conn *c = arg;
	struct dir_ldap *dl = c->dl;
	uint64_t failback_ms = (uint64_t)dl->cfg->failback * 1000;

	while (!queue_stopping(&dl->searches)) {
		struct pollfd pfd[2] = { { .fd = dl->searches.evfd, .events = POLLIN } };
		uint64_t now = clock_ms(), wait = 1000;
		nfds_t nfds = 1;

		if (c->ld == NULL && now >= c->next_try) {
			conn_try_open(c);
			/* connected_at is later than now: keep now - it >= 0. */
			now = clock_ms();
		}
		if (c->ld != NULL && c->uri_idx > 0 && c->npending == 0 &&
		    now - c->connected_at >= failback_ms) {
			conn_failback(c);
			now = clock_ms();
		}
		if (c->ld == NULL) {
			/* Nobody can answer: fail fast rather than at the deadline. */
			if (atomic_load(&dl->up) == 0) {
				char why[256];

				get_why_down(dl, why, sizeof(why));
				fail_list(queue_take(dl, &dl->searches, SIZE_MAX, now), why);
			}
			wait = c->next_try > now ? c->next_try - now : 0;
		} else {
			send_queued(c, now);
			if (c->ld == NULL)
				continue;
			ldap_get_option(c->ld, LDAP_OPT_DESC, &pfd[1].fd);
			pfd[1].events = POLLIN;
			nfds = 2;
			for (size_t i = 0; i < c->npending; i++) {
				uint64_t left = c->pending[i].deadline > now ?
				    c->pending[i].deadline - now : 0;

				if (left < wait)
					wait = left;
			}
		}
		if (poll(pfd, nfds, (int)wait) < 0 && errno != EINTR)
			log_warning("ldap: poll: %s", strerror(errno));
		if (pfd[0].revents & POLLIN)
			queue_drain_wakeups(&dl->searches);
		if (c->ld != NULL && nfds == 2 && pfd[1].revents != 0 && collect(c) < 0)
			continue;
		if (c->ld != NULL)
			expire(c, clock_ms());
	}
	if (c->ld != NULL) {
		for (size_t i = 0; i < c->npending; i++)
			dir_request_done(c->pending[i].req, DIR_TEMPFAIL, NULL,
			    "directory shutting down");
		c->npending = 0;
		ldap_unbind_ext_s(c->ld, NULL, NULL);
		c->ld = NULL;
		atomic_fetch_sub(&dl->up, 1);
	}
	return NULL;
}

/* Password checks (auth.verify = "ldap-bind"). */

/* Bind as the user on this thread's own connection; reconnect once. */
static void
verify_one(struct ldap_conn *c, struct dir_request *req)
{
	struct dir_ldap *dl = c->dl;
	const char *dn = dir_request_dn(req), *pw = dir_request_password(req);
	struct berval cred = { .bv_val = (char *)pw, .bv_len = strlen(pw) };
	int rc = LDAP_SERVER_DOWN;

	for (size_t attempt = 0; attempt <= dl->nuris; attempt++) {
		if (c->ld == NULL) {
			size_t idx = c->uri_idx % dl->nuris;

			if ((rc = dir_ldap_handle(dl->cfg, dl->uris[idx], &c->ld)) != LDAP_SUCCESS) {
				c->ld = NULL;
				c->uri_idx = idx + 1;
				continue;
			}
		}
		rc = ldap_sasl_bind_s(c->ld, dn, LDAP_SASL_SIMPLE, &cred, NULL,
		    NULL, NULL);
		if (!link_broken(rc) && rc != LDAP_TIMEOUT)
			break;
		ldap_unbind_ext_s(c->ld, NULL, NULL);
		c->ld = NULL;
		c->uri_idx++;
	}
	if (rc == LDAP_SUCCESS)
		dir_request_done(req, DIR_OK, NULL, "password accepted by the directory");
	else if (rc == LDAP_INVALID_CREDENTIALS)
		dir_request_done(req, DIR_NOT_FOUND, NULL, "wrong password");
	else
		dir_request_done(req, DIR_TEMPFAIL, NULL, ldap_err2string(rc));
}

static void *
bind_main(void *arg)
{
	struct ldap_conn *c = arg;
	struct dir_ldap *dl = c->dl;

	while (!queue_stopping(&dl->binds)) {
		struct pollfd pfd = { .fd = dl->binds.evfd, .events = POLLIN };
		struct queued *q = queue_take(dl, &dl->binds, 1, clock_ms());

		if (q == NULL) {
			if (poll(&pfd, 1, 1000) > 0)
				queue_drain_wakeups(&dl->binds);
			continue;
		}
		verify_one(c, q->req);
		free(q);
	}
	if (c->ld != NULL)
		ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
	return NULL;
}

/* The directory interface. */

static void
submit(struct dir_ldap *dl, struct ldap_queue *q, struct dir_request *req)
{
	uint64_t deadline = clock_ms() + (uint64_t)dl->cfg->timeout * 1000;

	if (queue_put(q, req, deadline, false) == 0)
		return;
	atomic_fetch_add(&dl->shed, 1);
	log_limited(&dl->log_shed, LDAP_LOG_EVERY_MS, LOG_LVL_WARNING,
	    "ldap: %zu lookups queued (directory.ldap.queue): refusing more "
	    "until the directory catches up", q->max);
	dir_request_done(req, DIR_TEMPFAIL, NULL,
	    "directory overloaded: too many lookups queued");
}

static void
dir_ldap_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	submit(dl, &dl->searches, req);
}

static void
dir_ldap_verify(struct directory *dir, struct dir_request *req)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	submit(dl, &dl->binds, req);
}

static void
join_all(struct ldap_conn *conns, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (conns[i].started)
			pthread_join(conns[i].thread, NULL);
}

static void
dir_ldap_free(struct directory *dir)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	/* Producers first: no thread may answer into what is freed below. */
	if (dl->searches.evfd >= 0)
		queue_stop(&dl->searches);
	if (dl->binds.evfd >= 0)
		queue_stop(&dl->binds);
	join_all(dl->conns, dl->nconns);
	join_all(dl->binders, dl->nbinders);
	queue_free(dl, &dl->searches);
	queue_free(dl, &dl->binds);
	for (size_t i = 0; i < dl->nuris; i++)
		free(dl->uris[i]);
	free(dl->uris);
	if (dl->password != NULL)
		secret_free(&dl->password);
	pthread_mutex_destroy(&dl->why_mtx);
	free(dl->conns);
	free(dl->binders);
	free(dl);
}

static size_t
queue_len(struct ldap_queue *q)
{
	size_t n;

	pthread_mutex_lock(&q->mtx);
	n = q->len;
	pthread_mutex_unlock(&q->mtx);
	return n;
}

static void
dir_ldap_queue_stats(struct directory *dir, struct dir_queue_stats *st)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	st->searches = queue_len(&dl->searches);
	st->binds = queue_len(&dl->binds);
	st->max = dl->searches.max;
	st->shed = atomic_load(&dl->shed);
	st->up = atomic_load(&dl->up);
}

static const struct directory_ops dir_ldap_ops = {
	.name = "ldap",
	.lookup = dir_ldap_lookup,
	.verify = dir_ldap_verify,
	.free = dir_ldap_free,
	.queue_stats = dir_ldap_queue_stats,
};

int
dir_ldap_read_files(const struct config *config, char **password_r, char *err,
    size_t errlen)
{
	const struct ldap_cfg *cfg = &config->directory.ldap;
	const char *path = cfg->bind_password_file;
	char line[1024];
	FILE *fp;

	if (cfg->ca_file[0] != '\0' && config_file_check(config,
	    "directory.ldap.ca_file", cfg->ca_file, err, errlen) < 0)
		return -1;
	if (path[0] == '\0') {
		*password_r = xstrdup(cfg->bind_password);
		return 0;
	}
	if ((fp = privsep_fopen(path)) == NULL)
		return config_file_fail(config, "directory.ldap.bind_password_file",
		    path, strerror(errno), err, errlen);
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	*password_r = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return 0;
}

/* URIs and the password: what both the daemon and --check-config need. */
static struct dir_ldap *
dir_ldap_prepare(const struct config *config, char *err, size_t errlen)
{
	const struct ldap_cfg *cfg = &config->directory.ldap;
	struct dir_ldap *dl = xcalloc(1, sizeof(*dl));
	char *uris = xstrdup(cfg->uri), *save = NULL;

	dl->dir.ops = &dir_ldap_ops;
	dl->cfg = cfg;
	dl->host_map = &config->directory.host_map;
	dl->searches.evfd = dl->binds.evfd = -1;
	pthread_mutex_init(&dl->why_mtx, NULL);
	str_copy(dl->why_down, "directory unreachable", sizeof(dl->why_down));
	for (char *u = strtok_r(uris, " \t", &save); u != NULL;
	    u = strtok_r(NULL, " \t", &save)) {
		if (!ldap_is_ldap_url(u) && strncasecmp(u, "ldapi://", 8) != 0) {
			snprintf(err, errlen, "%s: directory.ldap.uri: \"%s\" is not "
			    "an LDAP URI", config->path, u);
			free(uris);
			dir_ldap_free(&dl->dir);
			return NULL;
		}
		dl->uris = xrealloc(dl->uris, (dl->nuris + 1) * sizeof(*dl->uris));
		dl->uris[dl->nuris++] = xstrdup(u);
	}
	free(uris);
	if (dir_ldap_read_files(config, &dl->password, err, errlen) < 0) {
		dir_ldap_free(&dl->dir);
		return NULL;
	}
	dl->attrs[0] = cfg->attr_username;
	dl->attrs[1] = cfg->attr_port;
	for (size_t i = 0; i < cfg->nattr_hosts; i++)
		dl->attrs[2 + i] = cfg->attr_hosts[i];
	dl->attrs[2 + cfg->nattr_hosts] = NULL;
	return dl;
}

static int
start_pool(struct dir_ldap *dl, struct ldap_conn *conns, unsigned n,
    void *(*main_fn)(void *), unsigned first_id)
{
	for (unsigned i = 0; i < n; i++) {
		struct ldap_conn *c = &conns[i];

		c->dl = dl;
		c->id = first_id + i;
		c->seed = (unsigned)clock_ms() ^ (c->id * 2654435761u);
		if (pthread_create(&c->thread, NULL, main_fn, c) != 0)
			return -1;
		c->started = true;
	}
	return 0;
}

int
dir_ldap_open(const struct config *config, struct directory **dir_r, char *err,
    size_t errlen)
{
	const struct ldap_cfg *cfg = &config->directory.ldap;
	struct dir_ldap *dl = dir_ldap_prepare(config, err, errlen);

	if (dl == NULL)
		return -1;
	if (queue_init(&dl->searches, cfg->queue) < 0 ||
	    queue_init(&dl->binds, cfg->queue) < 0) {
		snprintf(err, errlen, "ldap: eventfd: %s", strerror(errno));
		dir_ldap_free(&dl->dir);
		return -1;
	}
	atomic_init(&dl->up, 0);
	dl->conns = xcalloc(cfg->pool, sizeof(*dl->conns));
	dl->nconns = cfg->pool;
	if (config->auth.verify == AUTH_VERIFY_LDAP_BIND) {
		dl->binders = xcalloc(cfg->auth_pool, sizeof(*dl->binders));
		dl->nbinders = cfg->auth_pool;
	}
	if (start_pool(dl, dl->conns, dl->nconns, search_main, 0) < 0 ||
	    start_pool(dl, dl->binders, dl->nbinders, bind_main, dl->nconns) < 0) {
		snprintf(err, errlen, "ldap: cannot start a thread");
		dir_ldap_free(&dl->dir);
		return -1;
	}
	*dir_r = &dl->dir;
	return 0;
}

/* --check-config: one URI, as the daemon would use it. */
static int
check_uri(struct dir_ldap *dl, const char *uri, const struct username *probe,
    char *why, size_t whylen)
{
	const struct ldap_cfg *cfg = dl->cfg;
	char filter[LDAP_FILTER_MAX], base[LDAP_FILTER_MAX];
	struct timeval tv = { .tv_sec = cfg->timeout };
	LDAPMessage *res = NULL;
	LDAP *ld;
	int rc;

	if ((rc = dir_ldap_handle(cfg, uri, &ld)) == LDAP_SUCCESS &&
	    (rc = dir_ldap_service_bind(cfg, dl->password, ld)) != LDAP_SUCCESS)
		ldap_unbind_ext_s(ld, NULL, NULL);
	if (rc != LDAP_SUCCESS) {
		dir_ldap_describe_failure(cfg, uri, rc, why, whylen);
		return rc;
	}
	(void)ldap_expand(cfg->filter, probe, PROTO_IMAP, false, filter, sizeof(filter));
	(void)ldap_expand(cfg->base, probe, PROTO_IMAP, true, base, sizeof(base));
	rc = ldap_search_ext_s(ld, base, cfg->scope, filter, dl->attrs, 0, NULL,
	    NULL, &tv, 2, &res);
	if (rc == LDAP_NO_SUCH_OBJECT)
		snprintf(why, whylen, "ldap %s: directory.ldap.base \"%.200s\" "
		    "does not exist", uri, base);
	else if (rc != LDAP_SUCCESS && rc != LDAP_SIZELIMIT_EXCEEDED)
		snprintf(why, whylen, "ldap %s: test search under \"%.120s\" "
		    "with \"%.200s\" failed: %s", uri, base, filter,
		    ldap_err2string(rc));
	ldap_msgfree(res);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return rc == LDAP_SIZELIMIT_EXCEEDED ? LDAP_SUCCESS : rc;
}

int
dir_ldap_check(const struct config *config, char *err, size_t errlen)
{
	struct dir_ldap *dl = dir_ldap_prepare(config, err, errlen);
	struct username probe;
	const char *error;
	struct dir_ldap_check c = { 0 };
	int rc;

	if (dl == NULL)
		return -1;
	(void)username_normalise(&config->username, LDAP_CHECK_USER,
	    strlen(LDAP_CHECK_USER), &probe, &error);
	err[0] = '\0';
	for (size_t i = 0; i < dl->nuris; i++) {
		char why[512] = "";
		int r = check_uri(dl, dl->uris[i], &probe, why, sizeof(why));

		dir_ldap_check_note(&c, r, why, err, errlen);
	}
	rc = dir_ldap_check_verdict(&c, err);
	dir_ldap_free(&dl->dir);
	return rc;
}

static int
ldap_backend_open(const struct config *cfg, struct directory **dir_r,
    char *err, size_t errlen)
{
	if (cfg->directory.ldap.sync)
		return dir_ldap_sync_open(cfg, dir_r, err, errlen);
	return dir_ldap_open(cfg, dir_r, err, errlen);
}

static int
ldap_backend_check(const struct config *cfg, char *err, size_t errlen)
{
	if (cfg->directory.ldap.sync)
		return dir_ldap_sync_check(cfg, err, errlen);
	return dir_ldap_check(cfg, err, errlen);
}

/* The replica is in memory and current: a cache could only hide changes. */
static bool
ldap_backend_cacheable(const struct config *cfg)
{
	return !cfg->directory.ldap.sync;
}

const struct dir_backend dir_backend_ldap = {
	.name = "ldap",
	.open = ldap_backend_open,
	.check = ldap_backend_check,
	.cacheable = ldap_backend_cacheable,
};

void
dir_ldap_check_note(struct dir_ldap_check *c, int r, const char *why,
    char *err, size_t errlen)
{
	size_t o = c->errlen_used;

	if (r == LDAP_SUCCESS) {
		c->reachable++;
		return;
	}
	/* An unreachable backup is a warning; anything else is wrong. */
	if (r == LDAP_SERVER_DOWN || r == LDAP_CONNECT_ERROR || r == LDAP_TIMEOUT)
		fprintf(stderr, "warning: %s\n", why);
	else
		c->rc = -1;
	if (o < errlen)
		o += (size_t)snprintf(err + o, errlen - o, "%s%s",
		    o > 0 ? "; " : "", why);
	c->errlen_used = o;
}

int
dir_ldap_check_verdict(struct dir_ldap_check *c, char *err)
{
	if (c->reachable == 0)
		return -1;
	if (c->rc == 0)
		err[0] = '\0';
	return c->rc;
}

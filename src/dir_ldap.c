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
#include "log.h"
#include "route.h"
#include "util.h"

/*
 * The LDAP directory: `pool` connections, each driven by a thread of its
 * own, take lookups from one shared queue.  A connection pipelines many
 * searches (ldap_search_ext + ldap_result), so one slow answer does not hold
 * up the rest.  Workers never touch LDAP: they queue a request and get the
 * answer posted back to their loop.
 *
 * A connection that breaks hands its unanswered requests back to the queue
 * and reconnects with backoff, trying the URIs in order; while connected to
 * a backup URI it returns to the first after `failback` seconds.  When no
 * connection is up, queued requests fail at once as temporary failures, so
 * clients hear about an outage promptly (or get a stale cached route).
 */

#define LDAP_BATCH		64	/* requests a connection takes at once */
#define LDAP_PENDING_MAX	256	/* outstanding searches per connection */
#define LDAP_BACKOFF_MIN_MS	100
#define LDAP_FILTER_MAX		4096

struct queued {
	struct dir_request	*req;
	uint64_t		 deadline;
	struct queued		*next;
};

struct pending {
	int			 msgid;
	struct dir_request	*req;
	uint64_t		 deadline;
};

struct dir_ldap;

struct ldap_conn {
	struct dir_ldap		*dl;
	unsigned		 id;
	pthread_t		 thread;
	bool			 started;
	LDAP			*ld;
	size_t			 uri_idx;
	uint64_t		 connected_at;
	uint64_t		 backoff_ms;
	uint64_t		 next_try;
	struct pending		 pending[LDAP_PENDING_MAX];
	size_t			 npending;
	LDAP			*auth_ld;	/* for user binds (ldap-bind) */
};

struct dir_ldap {
	struct directory	 dir;
	const struct ldap_cfg	*cfg;
	char			**uris;
	size_t			 nuris;
	char			*password;
	char			*attrs[4];
	int			 evfd;		/* wakes connection threads */

	pthread_mutex_t		 mtx;		/* guards the queue and stop */
	struct queued		*head, **tail;
	bool			 stop;
	_Atomic unsigned	 up;		/* connections bound and ready */

	struct ldap_conn	*conns;
	unsigned		 nconns;
};

static void
wake(struct dir_ldap *dl)
{
	uint64_t one = 1;

	if (write(dl->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_warning("ldap: eventfd: %s", strerror(errno));
}

static void
enqueue(struct dir_ldap *dl, struct dir_request *req, uint64_t deadline,
    bool front)
{
	struct queued *q = xmalloc(sizeof(*q));

	q->req = req;
	q->deadline = deadline;
	pthread_mutex_lock(&dl->mtx);
	if (front) {
		q->next = dl->head;
		if (dl->head == NULL)
			dl->tail = &q->next;
		dl->head = q;
	} else {
		q->next = NULL;
		*dl->tail = q;
		dl->tail = &q->next;
	}
	pthread_mutex_unlock(&dl->mtx);
	wake(dl);
}

/* Take up to `max` queued requests. */
static struct queued *
dequeue(struct dir_ldap *dl, size_t max)
{
	struct queued *list, **pp;
	size_t n = 0;

	pthread_mutex_lock(&dl->mtx);
	list = dl->head;
	for (pp = &dl->head; *pp != NULL && n < max; pp = &(*pp)->next)
		n++;
	dl->head = *pp;
	*pp = NULL;
	if (dl->head == NULL)
		dl->tail = &dl->head;
	pthread_mutex_unlock(&dl->mtx);
	return list;
}

static void
fail_list(struct queued *q, const char *why)
{
	while (q != NULL) {
		struct queued *next = q->next;

		dir_request_done(q->req, DIR_TEMPFAIL, NULL, why);
		free(q);
		q = next;
	}
}

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
static int
ldap_handle(struct dir_ldap *dl, const char *uri, LDAP **ld_r)
{
	const struct ldap_cfg *cfg = dl->cfg;
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

/* Connect and bind to uris[idx].  0 or -1 (logged). */
static int
conn_open(struct ldap_conn *c, size_t idx)
{
	struct dir_ldap *dl = c->dl;
	const struct ldap_cfg *cfg = dl->cfg;
	const char *uri = dl->uris[idx];
	LDAP *ld;
	int rc;

	if ((rc = ldap_handle(dl, uri, &ld)) != LDAP_SUCCESS) {
		log_warning("ldap %s: %s", uri, ldap_err2string(rc));
		return -1;
	}
	if (cfg->sasl_mech[0] != '\0')
		rc = ldap_sasl_interactive_bind_s(ld, NULL, cfg->sasl_mech, NULL,
		    NULL, LDAP_SASL_QUIET, sasl_interact, NULL);
	else if (cfg->bind_dn[0] != '\0') {
		struct berval cred = { .bv_val = dl->password,
		    .bv_len = strlen(dl->password) };

		rc = ldap_sasl_bind_s(ld, cfg->bind_dn, LDAP_SASL_SIMPLE, &cred,
		    NULL, NULL, NULL);
	} else
		rc = ldap_connect(ld);
	if (rc != LDAP_SUCCESS) {
		log_warning("ldap %s: %s", uri, ldap_err2string(rc));
		ldap_unbind_ext_s(ld, NULL, NULL);
		return -1;
	}
	c->ld = ld;
	c->uri_idx = idx;
	c->connected_at = clock_ms();
	c->backoff_ms = 0;
	atomic_fetch_add(&dl->up, 1);
	log_info("ldap: connection %u up: %s", c->id, uri);
	return 0;
}

/*
 * ldap-bind: bind as the user's entry on a connection kept for that (a
 * bind would change the searching connection's identity).  One bind at a
 * time per connection thread; binds are quick and rare next to searches.
 */
static void
verify(struct ldap_conn *c, struct dir_request *req)
{
	const char *dn = dir_request_dn(req), *pw = dir_request_password(req);
	struct berval cred = { .bv_val = (char *)pw, .bv_len = strlen(pw) };
	int rc;

	if (c->auth_ld == NULL &&
	    (rc = ldap_handle(c->dl, c->dl->uris[c->uri_idx], &c->auth_ld)) != LDAP_SUCCESS) {
		c->auth_ld = NULL;
		dir_request_done(req, DIR_TEMPFAIL, NULL, ldap_err2string(rc));
		return;
	}
	rc = ldap_sasl_bind_s(c->auth_ld, dn, LDAP_SASL_SIMPLE, &cred, NULL, NULL,
	    NULL);
	if (rc == LDAP_SUCCESS)
		dir_request_done(req, DIR_OK, NULL, "password accepted by the directory");
	else if (rc == LDAP_INVALID_CREDENTIALS)
		dir_request_done(req, DIR_NOT_FOUND, NULL, "wrong password");
	else {
		dir_request_done(req, DIR_TEMPFAIL, NULL, ldap_err2string(rc));
		ldap_unbind_ext_s(c->auth_ld, NULL, NULL);
		c->auth_ld = NULL;
	}
}

/* Drop the connection; unanswered requests go back to the queue. */
static void
conn_close(struct ldap_conn *c, const char *why)
{
	struct dir_ldap *dl = c->dl;

	if (c->ld == NULL)
		return;
	if (why != NULL)
		log_warning("ldap: connection %u to %s lost: %s", c->id,
		    dl->uris[c->uri_idx], why);
	for (size_t i = 0; i < c->npending; i++)
		enqueue(dl, c->pending[i].req, c->pending[i].deadline, true);
	c->npending = 0;
	ldap_unbind_ext_s(c->ld, NULL, NULL);
	c->ld = NULL;
	if (c->auth_ld != NULL) {
		ldap_unbind_ext_s(c->auth_ld, NULL, NULL);
		c->auth_ld = NULL;
	}
	atomic_fetch_sub(&dl->up, 1);
}

static void
conn_try_open(struct ldap_conn *c)
{
	uint64_t cap = (uint64_t)c->dl->cfg->timeout * 1000 / 2;

	for (size_t i = 0; i < c->dl->nuris; i++)
		if (conn_open(c, i) == 0)
			return;
	c->backoff_ms = c->backoff_ms == 0 ? LDAP_BACKOFF_MIN_MS : c->backoff_ms * 2;
	if (cap < LDAP_BACKOFF_MIN_MS)
		cap = LDAP_BACKOFF_MIN_MS;
	if (c->backoff_ms > cap)
		c->backoff_ms = cap;
	c->next_try = clock_ms() + c->backoff_ms;
}

static void
send_search(struct ldap_conn *c, struct queued *q)
{
	struct dir_ldap *dl = c->dl;
	const struct username *name = dir_request_name(q->req);
	enum proto_id proto = dir_request_proto(q->req);
	char filter[LDAP_FILTER_MAX], base[LDAP_FILTER_MAX];
	struct timeval tv = { .tv_sec = dl->cfg->timeout };
	int msgid, rc;

	if (ldap_expand(dl->cfg->filter, name, proto, false, filter, sizeof(filter)) < 0 ||
	    ldap_expand(dl->cfg->base, name, proto, true, base, sizeof(base)) < 0) {
		dir_request_done(q->req, DIR_TEMPFAIL, NULL,
		    "filter or base too long, or bad %-sequence");
		return;
	}
	/* A size limit of 2 is enough to tell one entry from ambiguity. */
	rc = ldap_search_ext(c->ld, base, dl->cfg->scope, filter, dl->attrs, 0,
	    NULL, NULL, &tv, 2, &msgid);
	if (rc != LDAP_SUCCESS) {
		enqueue(dl, q->req, q->deadline, true);
		conn_close(c, ldap_err2string(rc));
		return;
	}
	c->pending[c->npending].msgid = msgid;
	c->pending[c->npending].req = q->req;
	c->pending[c->npending].deadline = q->deadline;
	c->npending++;
}

/* Append "attr=v1,v2" to the detail text shown by --lookup. */
static void
detail_add(char *detail, size_t len, const char *attr, struct berval **vals)
{
	size_t o = strlen(detail);

	o += (size_t)snprintf(detail + o, o < len ? len - o : 0, " %s=", attr);
	for (int i = 0; vals[i] != NULL && o < len; i++)
		o += (size_t)snprintf(detail + o, len - o, "%s%.*s", i ? "," : "",
		    (int)vals[i]->bv_len, vals[i]->bv_val);
}

static char *
berval_str(const struct berval *bv)
{
	return xstrndup(bv->bv_val, bv->bv_len);
}

/* Turn the one matching entry into a route. */
static enum dir_status
entry_route(struct dir_ldap *dl, LDAP *ld, LDAPMessage *entry,
    struct route **route_r, char *detail, size_t dlen)
{
	const struct ldap_cfg *cfg = dl->cfg;
	struct berval **user, **hosts, **port;
	struct route *r = route_new();
	enum dir_status status = DIR_OK;
	char *dn = ldap_get_dn(ld, entry);
	long portnum = 0;

	snprintf(detail, dlen, "ldap dn=%s", dn ? dn : "?");
	if (dn != NULL)
		r->dn = xstrdup(dn);
	ldap_memfree(dn);
	user = ldap_get_values_len(ld, entry, cfg->attr_username);
	hosts = ldap_get_values_len(ld, entry, cfg->attr_host);
	port = ldap_get_values_len(ld, entry, cfg->attr_port);
	if (user != NULL) {
		char *u = berval_str(user[0]);

		detail_add(detail, dlen, cfg->attr_username, user);
		route_set_backend_user(r, u);
		free(u);
	}
	if (port != NULL) {
		char *p = berval_str(port[0]), *end;

		detail_add(detail, dlen, cfg->attr_port, port);
		portnum = strtol(p, &end, 10);
		if (*end != '\0' || portnum < 1 || portnum > 65535) {
			snprintf(detail + strlen(detail), dlen - strlen(detail),
			    " (bad port)");
			status = DIR_TEMPFAIL;
		}
		free(p);
	}
	if (hosts == NULL) {
		snprintf(detail + strlen(detail), dlen - strlen(detail),
		    " (entry has no %s)", cfg->attr_host);
		status = DIR_NOT_FOUND;
	} else {
		detail_add(detail, dlen, cfg->attr_host, hosts);
		for (int i = 0; hosts[i] != NULL && status == DIR_OK; i++) {
			char *h = berval_str(hosts[i]);
			const char *error;

			if (route_add_host(r, h, &error) < 0) {
				snprintf(detail + strlen(detail), dlen - strlen(detail),
				    " (bad host value: %s)", error);
				status = DIR_TEMPFAIL;
			}
			free(h);
		}
	}
	/* An explicit port attribute wins over one inside the host value. */
	for (size_t i = 0; portnum > 0 && i < r->nhosts; i++)
		r->hosts[i].port = (uint16_t)portnum;
	ldap_value_free_len(user);
	ldap_value_free_len(hosts);
	ldap_value_free_len(port);
	if (status == DIR_OK)
		*route_r = r;
	else
		route_unref(&r);
	return status;
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
		status = entry_route(dl, c->ld, ldap_first_entry(c->ld, res), &route,
		    detail, sizeof(detail));
		if (status != DIR_OK)
			log_warning("ldap: unusable entry for %s: %s", name->full, detail);
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
			conn_close(c, ldap_err2string(err));
			return -1;
		}
		if ((p = find_pending(c, ldap_msgid(res))) != NULL) {
			answer(c, p, res);
			remove_pending(c, p);
		}
		ldap_msgfree(res);
	}
}

static void
expire(struct ldap_conn *c, uint64_t now)
{
	for (size_t i = 0; i < c->npending; ) {
		struct pending *p = &c->pending[i];

		if (p->deadline > now) {
			i++;
			continue;
		}
		ldap_abandon_ext(c->ld, p->msgid, NULL, NULL);
		dir_request_done(p->req, DIR_TEMPFAIL, NULL,
		    "directory did not answer in time");
		remove_pending(c, p);
	}
}

static bool
stopping(struct dir_ldap *dl)
{
	bool stop;

	pthread_mutex_lock(&dl->mtx);
	stop = dl->stop;
	pthread_mutex_unlock(&dl->mtx);
	return stop;
}

static void
drain_wakeups(struct dir_ldap *dl)
{
	uint64_t v;

	/* The stop wake-up stays pending so that every thread sees it. */
	if (!stopping(dl))
		(void)!read(dl->evfd, &v, sizeof(v));
}

static void *
conn_main(void *arg)
{
	struct ldap_conn *c = arg;
	struct dir_ldap *dl = c->dl;
	uint64_t failback_ms = (uint64_t)dl->cfg->failback * 1000;

	while (!stopping(dl)) {
		struct pollfd pfd[2] = { { .fd = dl->evfd, .events = POLLIN } };
		uint64_t now = clock_ms(), wait = 1000;
		nfds_t nfds = 1;

		if (c->ld == NULL && now >= c->next_try)
			conn_try_open(c);
		if (c->ld != NULL && c->uri_idx > 0 && c->npending == 0 &&
		    now - c->connected_at >= failback_ms) {
			/* Give the first URI another chance. */
			conn_close(c, NULL);
			conn_try_open(c);
		}
		if (c->ld == NULL) {
			/* Nobody can answer: fail fast rather than at the deadline. */
			if (atomic_load(&dl->up) == 0)
				fail_list(dequeue(dl, SIZE_MAX), "directory unreachable");
			wait = c->next_try > now ? c->next_try - now : 0;
		} else {
			struct queued *q = dequeue(dl, LDAP_PENDING_MAX - c->npending < LDAP_BATCH ?
			    LDAP_PENDING_MAX - c->npending : LDAP_BATCH);

			while (q != NULL) {
				struct queued *next = q->next;

				if (c->ld != NULL && dir_request_dn(q->req) != NULL)
					verify(c, q->req);
				else if (c->ld != NULL)
					send_search(c, q);
				else
					enqueue(dl, q->req, q->deadline, true);
				free(q);
				q = next;
			}
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
			drain_wakeups(dl);
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
	}
	if (c->auth_ld != NULL)
		ldap_unbind_ext_s(c->auth_ld, NULL, NULL);
	return NULL;
}

static void
dir_ldap_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	enqueue(dl, req, clock_ms() + (uint64_t)dl->cfg->timeout * 1000, false);
}

static void
dir_ldap_verify(struct directory *dir, struct dir_request *req)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	enqueue(dl, req, clock_ms() + (uint64_t)dl->cfg->timeout * 1000, false);
}

static void
dir_ldap_free(struct directory *dir)
{
	struct dir_ldap *dl = (struct dir_ldap *)dir;

	pthread_mutex_lock(&dl->mtx);
	dl->stop = true;
	pthread_mutex_unlock(&dl->mtx);
	for (unsigned i = 0; i < dl->nconns; i++) {
		wake(dl);
		if (dl->conns[i].started)
			pthread_join(dl->conns[i].thread, NULL);
	}
	fail_list(dequeue(dl, SIZE_MAX), "directory shutting down");
	for (size_t i = 0; i < dl->nuris; i++)
		free(dl->uris[i]);
	free(dl->uris);
	if (dl->password != NULL)
		secret_free(&dl->password);
	close(dl->evfd);
	pthread_mutex_destroy(&dl->mtx);
	free(dl->conns);
	free(dl);
}

static const struct directory_ops dir_ldap_ops = {
	.name = "ldap",
	.lookup = dir_ldap_lookup,
	.verify = dir_ldap_verify,
	.free = dir_ldap_free,
};

static int
read_password_file(const char *path, char **out, char *err, size_t errlen)
{
	char line[1024];
	FILE *fp = fopen(path, "r");

	if (fp == NULL) {
		snprintf(err, errlen, "directory.ldap.bind_password_file: %s: %s",
		    path, strerror(errno));
		return -1;
	}
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	*out = xstrdup(line);
	explicit_bzero(line, sizeof(line));
	return 0;
}

int
dir_ldap_open(const struct config *config, struct directory **dir_r, char *err,
    size_t errlen)
{
	const struct ldap_cfg *cfg = &config->directory.ldap;
	struct dir_ldap *dl = xcalloc(1, sizeof(*dl));
	char *uris = xstrdup(cfg->uri), *save = NULL;

	dl->dir.ops = &dir_ldap_ops;
	dl->cfg = cfg;
	pthread_mutex_init(&dl->mtx, NULL);
	dl->tail = &dl->head;
	atomic_init(&dl->up, 0);
	dl->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	for (char *u = strtok_r(uris, " \t", &save); u != NULL;
	    u = strtok_r(NULL, " \t", &save)) {
		if (!ldap_is_ldap_url(u) && strncasecmp(u, "ldapi://", 8) != 0) {
			snprintf(err, errlen, "%s: directory.ldap.uri: \"%s\" is not "
			    "an LDAP URI", config->path, u);
			free(uris);
			dl->nconns = 0;
			dir_ldap_free(&dl->dir);
			return -1;
		}
		dl->uris = xrealloc(dl->uris, (dl->nuris + 1) * sizeof(*dl->uris));
		dl->uris[dl->nuris++] = xstrdup(u);
	}
	free(uris);
	if (cfg->bind_password_file[0] != '\0') {
		if (read_password_file(cfg->bind_password_file, &dl->password,
		    err, errlen) < 0) {
			dir_ldap_free(&dl->dir);
			return -1;
		}
	} else
		dl->password = xstrdup(cfg->bind_password);
	dl->attrs[0] = cfg->attr_username;
	dl->attrs[1] = cfg->attr_host;
	dl->attrs[2] = cfg->attr_port;
	dl->attrs[3] = NULL;

	dl->conns = xcalloc(cfg->pool, sizeof(*dl->conns));
	dl->nconns = cfg->pool;
	for (unsigned i = 0; i < dl->nconns; i++) {
		struct ldap_conn *c = &dl->conns[i];

		c->dl = dl;
		c->id = i;
		if (pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			snprintf(err, errlen, "ldap: cannot start a thread");
			dir_ldap_free(&dl->dir);
			return -1;
		}
		c->started = true;
	}
	*dir_r = &dl->dir;
	return 0;
}

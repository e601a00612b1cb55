#include "autoconf.h"

#include <errno.h>
#include <lber.h>
#include <ldap.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <sys/eventfd.h>

#include "directory.h"
#include "directory/dir_ldap.h"
#include "ldap_entry.h"
#include "log.h"
#include "replica.h"
#include "util.h"

/*
 * directory.ldap.sync: an RFC 4533 replica.  One thread holds a
 * refreshAndPersist search against one provider at a time and applies what
 * it hears to the route table (replica.c); lookups are answered from the
 * table at once, on the requesting thread.
 *
 * The thread speaks the protocol with ldap_search_ext and ldap_result one
 * message at a time rather than through libldap's ldap_sync_init/poll:
 * those loop inside the refresh with no way to be told to stop, and hand
 * a chain of received messages to the callbacks by its head.  The
 * callbacks' shapes and the phases are the same.
 *
 * The cookie lives in memory only: a restart is a full refresh.  A broken
 * link reconnects with capped exponential backoff and jitter, trying the
 * URIs in order from the one after the failed one; a reconnect refreshes
 * from the cookie, and e-syncRefreshRequired drops it for a full refresh.
 * While no provider answers, lookups keep being answered from the table.
 *
 * Between messages the thread sleeps in poll(2) on the connection's socket
 * and an eventfd that the closer writes: it wakes for a change or a stop
 * and for nothing else, so an idle replica costs no wake-ups at all.
 */

#define SYNC_NO_SOCKET_MS	100	/* wait_input without a socket to watch */
#define SYNC_BACKOFF_MIN_MS	100
#define SYNC_BACKOFF_MAX_MS	5000
#define SYNC_LOG_EVERY_MS	10000
#define SYNC_NO_SYNCPROV	"does not offer content synchronisation (RFC " \
	"4533): load the syncprov overlay on that database (see doc/ldap.md)"

enum session_end {
	END_STOP,		/* asked to stop */
	END_LINK,		/* connection failed or broke: next URI */
	END_RELOAD,		/* e-syncRefreshRequired: again, without cookie */
	END_NO_SYNC,		/* the provider has no syncprov */
};

struct dir_sync {
	struct directory	 dir;
	const struct ldap_cfg	*cfg;
	char			**uris;
	size_t			 nuris;
	char			*password;
	char			**attrs;
	const struct host_map	*host_map;	/* the generation's config's */
	char			**keys;		/* sync_keys */
	size_t			 nkeys;
	struct replica		*table;

	pthread_t		 thread;
	bool			 started;
	_Atomic bool		 stop;
	int			 wake;		/* eventfd: written on stop */
	_Atomic bool		 ready;		/* a refresh has completed */
	_Atomic bool		 connected;
	_Atomic uint64_t	 updated;	/* wall clock, s: last change applied */
	_Atomic uint64_t	 fresh_ms;	/* monotonic: last known in sync */

	/* Start-up: the opener waits for the first refresh's outcome. */
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cond;
	int			 start_rc;	/* 1 pending, 0 ok, -1 failed */
	char			 start_err[512];

	/* The sync thread's own. */
	struct berval		 cookie;
	size_t			 uri_idx;
	uint64_t		 backoff_ms;
	unsigned		 seed;
	bool			 presents;	/* this refresh is in present mode */
	struct log_limit	 log_down, log_age;
};

static const struct directory_ops dir_sync_ops;
static int	dir_sync_stats(struct directory *, struct replica_stats *);

static void
cookie_set(struct dir_sync *ds, const struct berval *bv)
{
	if (bv->bv_val == NULL)
		return;
	free(ds->cookie.bv_val);
	ds->cookie.bv_val = xmalloc(bv->bv_len + 1);
	memcpy(ds->cookie.bv_val, bv->bv_val, bv->bv_len);
	ds->cookie.bv_val[bv->bv_len] = '\0';
	ds->cookie.bv_len = bv->bv_len;
}

static void
cookie_drop(struct dir_sync *ds)
{
	free(ds->cookie.bv_val);
	ds->cookie.bv_val = NULL;
	ds->cookie.bv_len = 0;
}

/* Tell the listener about every login whose route changed; no lock held. */
static void
announce(struct dir_sync *ds, struct replica_moved **moved)
{
	/* Before the first refresh completes, nobody has a route to lose. */
	for (struct replica_moved *m = *moved; m != NULL &&
	    atomic_load(&ds->ready); m = m->next) {
		log_info("ldap sync: %s %s", m->login, m->route != NULL ?
		    "moved" : "gone");
		directory_moved(&ds->dir, m->login, m->route);
	}
	replica_moved_free(moved);
	atomic_store(&ds->updated, (uint64_t)time(NULL));
}

static void
start_done(struct dir_sync *ds, int rc, const char *err)
{
	pthread_mutex_lock(&ds->mtx);
	if (ds->start_rc == 1) {
		ds->start_rc = rc;
		if (err != NULL)
			str_copy(ds->start_err, err, sizeof(ds->start_err));
		pthread_cond_broadcast(&ds->cond);
	}
	pthread_mutex_unlock(&ds->mtx);
}

/* An added or modified entry: its route and its login keys. */
static void
apply_entry(struct dir_sync *ds, LDAP *ld, LDAPMessage *m,
    const struct berval *uuid, struct replica_moved **moved)
{
	const struct ldap_cfg *cfg = ds->cfg;
	char *dn = ldap_get_dn(ld, m), detail[512];
	struct ldap_entry_values v = {
		.dn = dn,
		.user = ldap_get_values_len(ld, m, cfg->attr_username),
		.port = ldap_get_values_len(ld, m, cfg->attr_port),
		.user_attr = cfg->attr_username,
		.port_attr = cfg->attr_port,
		.map = ds->host_map,
	};
	struct route *route = NULL;
	enum dir_status status;
	char **keys = NULL;
	size_t nkeys = 0;

	v.hosts = ldap_entry_first_values(ld, m, cfg->attr_hosts, &v.host_attr);

	status = ldap_entry_route(&v, &route, detail, sizeof(detail));
	if (status == DIR_TEMPFAIL)
		log_warning("ldap sync: unusable entry: %s", detail);
	for (size_t i = 0; i < ds->nkeys; i++) {
		struct berval **vals = ldap_get_values_len(ld, m, ds->keys[i]);

		for (size_t j = 0; vals != NULL && vals[j] != NULL; j++) {
			if (memchr(vals[j]->bv_val, '\0', vals[j]->bv_len) != NULL)
				continue;
			keys = xrealloc(keys, (nkeys + 1) * sizeof(*keys));
			keys[nkeys++] = xstrndup(vals[j]->bv_val, vals[j]->bv_len);
		}
		ldap_value_free_len(vals);
	}
	replica_put(ds->table, uuid->bv_val, uuid->bv_len,
	    (const char *const *)keys, nkeys, status, route, detail, moved);
	for (size_t i = 0; i < nkeys; i++)
		free(keys[i]);
	free(keys);
	ldap_value_free_len(v.user);
	ldap_value_free_len(v.hosts);
	ldap_value_free_len(v.port);
	ldap_memfree(dn);
}

/* ls_search_entry: a Sync State control says add, modify, present or delete. */
static int
on_entry(struct dir_sync *ds, LDAP *ld, LDAPMessage *m)
{
	LDAPControl **ctrls = NULL, *c;
	struct berval uuid = { 0 }, cookie = { 0 };
	struct replica_moved *moved = NULL;
	BerElement *ber = NULL;
	ber_len_t len;
	int state = -1, rc = LDAP_OTHER;

	if (ldap_get_entry_controls(ld, m, &ctrls) != LDAP_SUCCESS ||
	    (c = ldap_control_find(LDAP_CONTROL_SYNC_STATE, ctrls, NULL)) == NULL) {
		ldap_controls_free(ctrls);
		return LDAP_OTHER;
	}
	if ((ber = ber_init(&c->ldctl_value)) == NULL)
		goto out;
	if (ber_scanf(ber, "{em", &state, &uuid) == LBER_ERROR || uuid.bv_len == 0)
		goto out;
	if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE &&
	    ber_scanf(ber, "m", &cookie) != LBER_ERROR)
		cookie_set(ds, &cookie);
	rc = LDAP_SUCCESS;
	switch (state) {
	case LDAP_SYNC_PRESENT:
		replica_present(ds->table, uuid.bv_val, uuid.bv_len);
		break;
	case LDAP_SYNC_ADD:
	case LDAP_SYNC_MODIFY:
		apply_entry(ds, ld, m, &uuid, &moved);
		break;
	case LDAP_SYNC_DELETE:
		replica_delete(ds->table, uuid.bv_val, uuid.bv_len, &moved);
		break;
	default:
		rc = LDAP_OTHER;
	}
out:
	if (ber != NULL)
		ber_free(ber, 1);
	ldap_controls_free(ctrls);
	if (moved != NULL || state == LDAP_SYNC_ADD || state == LDAP_SYNC_MODIFY ||
	    state == LDAP_SYNC_DELETE)
		announce(ds, &moved);
	return rc;
}

static void
refresh_done(struct dir_sync *ds)
{
	struct replica_moved *moved = NULL;

	if (ds->presents)
		replica_sweep(ds->table, &moved);
	announce(ds, &moved);
	ds->presents = false;
	ds->backoff_ms = 0;	/* it worked: a later outage starts over */
	atomic_store(&ds->fresh_ms, clock_ms());
	if (!atomic_exchange(&ds->ready, true))
		log_info("ldap sync: replica ready: %zu entries, %zu logins",
		    replica_entries(ds->table), replica_keys(ds->table));
	start_done(ds, 0, NULL);
}

/* ls_intermediate: syncInfo (new cookie, end of a phase, a syncIdSet). */
static int
on_intermediate(struct dir_sync *ds, LDAP *ld, LDAPMessage *m)
{
	struct replica_moved *moved = NULL;
	struct berval *data = NULL, cookie = { 0 };
	BerVarray uuids = NULL;
	char *oid = NULL;
	BerElement *ber = NULL;
	ber_len_t len;
	ber_tag_t tag;
	ber_int_t done = 1, deletes = 0;
	int rc = LDAP_OTHER;

	if (ldap_parse_intermediate(ld, m, &oid, &data, NULL, 0) != LDAP_SUCCESS ||
	    oid == NULL || strcmp(oid, LDAP_SYNC_INFO) != 0 || data == NULL ||
	    (ber = ber_init(data)) == NULL)
		goto out;
	switch ((tag = ber_peek_tag(ber, &len))) {
	case LDAP_TAG_SYNC_NEW_COOKIE:
		if (ber_scanf(ber, "m", &cookie) == LBER_ERROR)
			goto out;
		cookie_set(ds, &cookie);
		break;
	case LDAP_TAG_SYNC_REFRESH_DELETE:
	case LDAP_TAG_SYNC_REFRESH_PRESENT:
		if (ber_scanf(ber, "{") == LBER_ERROR)
			goto out;
		if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE) {
			if (ber_scanf(ber, "m", &cookie) == LBER_ERROR)
				goto out;
			cookie_set(ds, &cookie);
		}
		if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDONE &&
		    ber_scanf(ber, "b", &done) == LBER_ERROR)
			goto out;
		/* The present phase ends: entries not seen in it are gone. */
		if (tag == LDAP_TAG_SYNC_REFRESH_PRESENT)
			ds->presents = true;
		if (done)
			refresh_done(ds);
		else if (ds->presents) {
			replica_sweep(ds->table, &moved);
			ds->presents = false;
		}
		break;
	case LDAP_TAG_SYNC_ID_SET:
		if (ber_scanf(ber, "{") == LBER_ERROR)
			goto out;
		if (ber_peek_tag(ber, &len) == LDAP_TAG_SYNC_COOKIE) {
			if (ber_scanf(ber, "m", &cookie) == LBER_ERROR)
				goto out;
			cookie_set(ds, &cookie);
		}
		if (ber_peek_tag(ber, &len) == LDAP_TAG_REFRESHDELETES &&
		    ber_scanf(ber, "b", &deletes) == LBER_ERROR)
			goto out;
		if (ber_scanf(ber, "[W]}", &uuids) == LBER_ERROR || uuids == NULL)
			goto out;
		for (size_t i = 0; uuids[i].bv_val != NULL; i++) {
			if (deletes)
				replica_delete(ds->table, uuids[i].bv_val,
				    uuids[i].bv_len, &moved);
			else
				replica_present(ds->table, uuids[i].bv_val,
				    uuids[i].bv_len);
		}
		ber_bvarray_free(uuids);
		break;
	default:
		goto out;
	}
	rc = LDAP_SUCCESS;
out:
	if (moved != NULL)
		announce(ds, &moved);
	if (ber != NULL)
		ber_free(ber, 1);
	ldap_memfree(oid);
	ber_bvfree(data);
	return rc;
}

/* ls_search_result: the end of the search (persist mode never ends well). */
static enum session_end
on_result(struct dir_sync *ds, LDAP *ld, LDAPMessage *m, const char *uri)
{
	int err = LDAP_OTHER;
	char *text = NULL, why[512];

	(void)ldap_parse_result(ld, m, &err, NULL, &text, NULL, NULL, 0);
	if (err == LDAP_SYNC_REFRESH_REQUIRED) {
		log_info("ldap sync: %s asks for a full refresh", uri);
		ldap_memfree(text);
		return END_RELOAD;
	}
	if (err == LDAP_UNAVAILABLE_CRITICAL_EXTENSION ||
	    err == LDAP_PROTOCOL_ERROR) {
		char msg[512];

		snprintf(msg, sizeof(msg), "directory.ldap.sync: %s " SYNC_NO_SYNCPROV,
		    uri);
		log_error("%s", msg);
		start_done(ds, -1, msg);
		ldap_memfree(text);
		return END_NO_SYNC;
	}
	snprintf(why, sizeof(why), "ldap sync: %s ended the search: %s%s%s%s",
	    uri, ldap_err2string(err), text != NULL && *text != '\0' ? ": " : "",
	    text != NULL ? text : "", err == LDAP_NO_SUCH_OBJECT ? " (does "
	    "directory.ldap.base exist, and may postern read that entry?)" :
	    err == LDAP_SIZELIMIT_EXCEEDED ? " (the replica holds every "
	    "routing entry: lift the provider's size limit for bind_dn, see "
	    "doc/ldap.md)" : "");
	log_limited(&ds->log_down, SYNC_LOG_EVERY_MS, LOG_LVL_WARNING, "%s", why);
	if (!atomic_load(&ds->ready))
		start_done(ds, -1, why);
	ldap_memfree(text);
	return END_LINK;
}

static int
send_sync(struct dir_sync *ds, LDAP *ld, int mode, int sizelimit, int *msgid_r)
{
	LDAPControl ctrl = { 0 }, *ctrls[2] = { &ctrl, NULL };
	BerElement *ber = ber_alloc_t(LBER_USE_DER);
	int rc;

	if (ber == NULL)
		return LDAP_NO_MEMORY;
	if (ds->cookie.bv_val != NULL)
		rc = ber_printf(ber, "{eOb}", mode, &ds->cookie, 0);
	else
		rc = ber_printf(ber, "{eb}", mode, 0);
	if (rc < 0 || ber_flatten2(ber, &ctrl.ldctl_value, 0) < 0) {
		ber_free(ber, 1);
		return LDAP_ENCODING_ERROR;
	}
	ctrl.ldctl_oid = LDAP_CONTROL_SYNC;
	ctrl.ldctl_iscritical = 1;	/* without it the answer means nothing */
	ds->presents = false;
	rc = ldap_search_ext(ld, ds->cfg->base, ds->cfg->scope,
	    ds->cfg->sync_filter, ds->attrs, 0, ctrls, NULL, NULL, sizelimit,
	    msgid_r);
	ber_free(ber, 1);
	return rc;
}

/*
 * Sleep until the connection has input (ld non-NULL), a stop is asked for,
 * or timeout_ms passes (-1: no limit).  A broken socket reads as input:
 * the next ldap_result reports it.
 *
 * Bytes libldap has already taken off the socket (a TLS record holding
 * more than one message, or a message read for another request) wake
 * nothing: they are looked for first, and their presence returns at once
 * so that the next ldap_result reads them.  Each such call consumes one
 * message, so this cannot spin.
 */
static void
wait_input(struct dir_sync *ds, LDAP *ld, int timeout_ms)
{
	struct pollfd pfd[2] = {
		{ .fd = ds->wake, .events = POLLIN },
		{ .fd = -1, .events = POLLIN },
	};

	if (ld != NULL) {
		Sockbuf *sb = NULL;

		if (ldap_get_option(ld, LDAP_OPT_SOCKBUF, &sb) == LDAP_OPT_SUCCESS &&
		    sb != NULL && ber_sockbuf_ctrl(sb, LBER_SB_OPT_DATA_READY, NULL))
			return;
		if (ldap_get_option(ld, LDAP_OPT_DESC, &pfd[1].fd) !=
		    LDAP_OPT_SUCCESS || pfd[1].fd < 0) {
			/* No socket: ldap_result will say why; do not spin. */
			pfd[1].fd = -1;
			timeout_ms = SYNC_NO_SOCKET_MS;
		}
	}
	if (poll(pfd, 2, timeout_ms) < 0 && errno != EINTR)
		log_warning("ldap sync: poll: %s", strerror(errno));
}

/* One refreshAndPersist session with uris[idx], until it ends. */
static enum session_end
session(struct dir_sync *ds, size_t idx)
{
	const char *uri = ds->uris[idx];
	LDAP *ld = NULL;
	int rc, msgid;
	enum session_end end = END_LINK;

	if ((rc = dir_ldap_handle(ds->cfg, uri, &ld)) == LDAP_SUCCESS &&
	    (rc = dir_ldap_service_bind(ds->cfg, ds->password, ld)) == LDAP_SUCCESS)
		rc = send_sync(ds, ld, LDAP_SYNC_REFRESH_AND_PERSIST, 0, &msgid);
	if (rc != LDAP_SUCCESS) {
		char why[384];

		dir_ldap_describe_failure(ds->cfg, uri, rc, why, sizeof(why));
		log_limited(&ds->log_down, SYNC_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "ldap sync: %s", why);
		if (!atomic_load(&ds->ready) && idx + 1 == ds->nuris)
			start_done(ds, -1, why);
		if (ld != NULL)
			ldap_unbind_ext_s(ld, NULL, NULL);
		return END_LINK;
	}
	atomic_store(&ds->connected, true);
	replica_refresh_begin(ds->table);
	log_info("ldap sync: connected to %s (%s refresh)", uri,
	    ds->cookie.bv_val != NULL ? "incremental" : "full");
	while (!atomic_load(&ds->stop)) {
		struct timeval poll_only = { 0, 0 };
		LDAPMessage *m = NULL;

		/* Messages libldap has already read or buffered come first. */
		rc = ldap_result(ld, msgid, LDAP_MSG_ONE, &poll_only, &m);
		if (rc == 0) {
			wait_input(ds, ld, -1);
			continue;
		}
		if (rc < 0) {
			int err = LDAP_OTHER;

			ldap_get_option(ld, LDAP_OPT_RESULT_CODE, &err);
			log_limited(&ds->log_down, SYNC_LOG_EVERY_MS, LOG_LVL_WARNING,
			    "ldap sync: connection to %s lost: %s", uri,
			    ldap_err2string(err));
			break;
		}
		switch (ldap_msgtype(m)) {
		case LDAP_RES_SEARCH_ENTRY:
			rc = on_entry(ds, ld, m);
			break;
		case LDAP_RES_INTERMEDIATE:
			rc = on_intermediate(ds, ld, m);
			break;
		case LDAP_RES_SEARCH_REFERENCE:
			rc = LDAP_SUCCESS;	/* referrals are not followed */
			break;
		case LDAP_RES_SEARCH_RESULT:
			end = on_result(ds, ld, m, uri);
			ldap_msgfree(m);
			goto out;
		default:
			rc = LDAP_OTHER;
		}
		ldap_msgfree(m);
		if (rc != LDAP_SUCCESS) {
			log_warning("ldap sync: %s sent a malformed sync message: "
			    "starting over", uri);
			cookie_drop(ds);
			break;
		}
	}
	if (atomic_load(&ds->stop))
		end = END_STOP;
out:
	if (atomic_load(&ds->ready))
		atomic_store(&ds->fresh_ms, clock_ms());
	atomic_store(&ds->connected, false);
	ldap_unbind_ext_s(ld, NULL, NULL);
	return end;
}

static void
sleep_ms(struct dir_sync *ds, uint64_t ms)
{
	uint64_t now = clock_ms(), until = now + ms;

	while (!atomic_load(&ds->stop) && now < until) {
		wait_input(ds, NULL, (int)(until - now));
		now = clock_ms();
	}
}

static void
backoff(struct dir_sync *ds)
{
	uint64_t cap = (uint64_t)ds->cfg->timeout * 1000 / 2, wait;

	if (cap < SYNC_BACKOFF_MIN_MS)
		cap = SYNC_BACKOFF_MIN_MS;
	if (cap > SYNC_BACKOFF_MAX_MS)
		cap = SYNC_BACKOFF_MAX_MS;
	ds->backoff_ms = ds->backoff_ms == 0 ? SYNC_BACKOFF_MIN_MS :
	    ds->backoff_ms * 2;
	if (ds->backoff_ms > cap)
		ds->backoff_ms = cap;
	wait = ds->backoff_ms - (uint64_t)rand_r(&ds->seed) % (ds->backoff_ms / 4 + 1);
	if (atomic_load(&ds->ready))
		log_limited(&ds->log_age, SYNC_LOG_EVERY_MS, LOG_LVL_WARNING,
		    "ldap sync: no provider reachable: answering from the "
		    "replica, replica %llu s old", (unsigned long long)
		    ((clock_ms() - atomic_load(&ds->fresh_ms)) / 1000));
	sleep_ms(ds, wait);
}

static void *
sync_main(void *arg)
{
	struct dir_sync *ds = arg;

	while (!atomic_load(&ds->stop)) {
		switch (session(ds, ds->uri_idx)) {
		case END_STOP:
			break;
		case END_RELOAD:
			cookie_drop(ds);
			break;
		case END_NO_SYNC:
			if (!atomic_load(&ds->ready))
				return NULL;	/* start-up fails: the opener says why */
			FALLTHROUGH;
		case END_LINK:
			ds->uri_idx = (ds->uri_idx + 1) % ds->nuris;
			/* A whole round failed, or it was up and broke: wait. */
			if (ds->uri_idx == 0 || atomic_load(&ds->ready))
				backoff(ds);
			break;
		}
	}
	return NULL;
}

/* The directory interface. */

static void
dir_sync_lookup(struct directory *dir, struct dir_request *req)
{
	struct dir_sync *ds = (struct dir_sync *)dir;
	struct route *route = NULL;
	enum dir_status status;
	char detail[512];

	if (!atomic_load(&ds->ready)) {
		dir_request_done(req, DIR_TEMPFAIL, NULL,
		    "replica not yet synchronised");
		return;
	}
	status = replica_lookup(ds->table, dir_request_name(req)->full, &route,
	    detail, sizeof(detail));
	if (status == DIR_TEMPFAIL && route == NULL &&
	    strstr(detail, "more than one") != NULL)
		log_warning("ldap sync: %s matches more than one entry: refusing "
		    "to guess", dir_request_name(req)->full);
	dir_request_done(req, status, route, detail);
}

static void
dir_sync_free(struct directory *dir)
{
	struct dir_sync *ds = (struct dir_sync *)dir;

	atomic_store(&ds->stop, true);
	if (ds->wake >= 0 && eventfd_write(ds->wake, 1) < 0)
		log_warning("ldap sync: eventfd write: %s", strerror(errno));
	if (ds->started)
		pthread_join(ds->thread, NULL);
	if (ds->wake >= 0)
		close(ds->wake);
	replica_free(&ds->table);
	cookie_drop(ds);
	for (size_t i = 0; i < ds->nuris; i++)
		free(ds->uris[i]);
	free(ds->uris);
	for (size_t i = 0; i < ds->nkeys; i++)
		free(ds->keys[i]);
	free(ds->keys);
	free(ds->attrs);
	if (ds->password != NULL)
		secret_free(&ds->password);
	pthread_cond_destroy(&ds->cond);
	pthread_mutex_destroy(&ds->mtx);
	free(ds);
}

static const struct directory_ops dir_sync_ops = {
	.name = "ldap-sync",
	.lookup = dir_sync_lookup,
	.verify = NULL,
	.free = dir_sync_free,
	.replica_stats = dir_sync_stats,
};

static struct dir_sync *
dir_sync_prepare(const struct config *config, char *err, size_t errlen)
{
	const struct ldap_cfg *cfg = &config->directory.ldap;
	struct dir_sync *ds = xcalloc(1, sizeof(*ds));
	char *list, *save = NULL;
	size_t na = 0;

	if ((ds->wake = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		snprintf(err, errlen, "ldap sync: eventfd: %s", strerror(errno));
		free(ds);
		return NULL;
	}
	ds->dir.ops = &dir_sync_ops;
	ds->cfg = cfg;
	ds->host_map = &config->directory.host_map;
	ds->start_rc = 1;
	pthread_mutex_init(&ds->mtx, NULL);
	pthread_cond_init(&ds->cond, NULL);
	atomic_init(&ds->stop, false);
	atomic_init(&ds->ready, false);
	atomic_init(&ds->connected, false);
	atomic_init(&ds->updated, 0);
	atomic_init(&ds->fresh_ms, clock_ms());
	ds->seed = (unsigned)clock_ms() ^ (unsigned)(uintptr_t)ds;
	list = xstrdup(cfg->uri);
	for (char *u = strtok_r(list, " \t", &save); u != NULL;
	    u = strtok_r(NULL, " \t", &save)) {
		if (!ldap_is_ldap_url(u) && strncasecmp(u, "ldapi://", 8) != 0) {
			snprintf(err, errlen, "%s: directory.ldap.uri: \"%s\" is not "
			    "an LDAP URI", config->path, u);
			free(list);
			dir_sync_free(&ds->dir);
			return NULL;
		}
		ds->uris = xrealloc(ds->uris, (ds->nuris + 1) * sizeof(*ds->uris));
		ds->uris[ds->nuris++] = xstrdup(u);
	}
	free(list);
	list = xstrdup(cfg->sync_keys);
	save = NULL;
	for (char *k = strtok_r(list, " \t", &save); k != NULL;
	    k = strtok_r(NULL, " \t", &save)) {
		ds->keys = xrealloc(ds->keys, (ds->nkeys + 1) * sizeof(*ds->keys));
		ds->keys[ds->nkeys++] = xstrdup(k);
	}
	free(list);
	ds->attrs = xcalloc(ds->nkeys + cfg->nattr_hosts + 4, sizeof(*ds->attrs));
	ds->attrs[na++] = cfg->attr_username;
	for (size_t i = 0; i < cfg->nattr_hosts; i++)
		ds->attrs[na++] = cfg->attr_hosts[i];
	ds->attrs[na++] = cfg->attr_port;
	ds->attrs[na++] = (char *)"objectClass";
	for (size_t i = 0; i < ds->nkeys; i++)
		ds->attrs[na++] = ds->keys[i];
	if (dir_ldap_read_files(config, &ds->password, err, errlen) < 0) {
		dir_sync_free(&ds->dir);
		return NULL;
	}
	if (ds->nuris == 0 || ds->nkeys == 0) {
		snprintf(err, errlen, "%s: directory.ldap: sync needs a uri and "
		    "sync_keys", config->path);
		dir_sync_free(&ds->dir);
		return NULL;
	}
	return ds;
}

int
dir_ldap_sync_open(const struct config *config, struct directory **dir_r,
    char *err, size_t errlen)
{
	struct dir_sync *ds = dir_sync_prepare(config, err, errlen);
	struct timespec until;
	int rc;

	if (ds == NULL)
		return -1;
	ds->table = replica_new();
	if (pthread_create(&ds->thread, NULL, sync_main, ds) != 0) {
		snprintf(err, errlen, "ldap sync: cannot start a thread");
		dir_sync_free(&ds->dir);
		return -1;
	}
	ds->started = true;
	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += ds->cfg->timeout > 0 ? ds->cfg->timeout : 1;
	pthread_mutex_lock(&ds->mtx);
	while (ds->start_rc == 1)
		if (pthread_cond_timedwait(&ds->cond, &ds->mtx, &until) == ETIMEDOUT)
			break;
	rc = ds->start_rc;
	if (rc == -1)
		str_copy(err, ds->start_err, errlen);
	else if (rc == 1)
		snprintf(err, errlen, "directory.ldap.sync: the first refresh "
		    "did not finish within %us (directory.ldap.timeout)",
		    ds->cfg->timeout);
	pthread_mutex_unlock(&ds->mtx);
	if (rc != 0) {
		dir_sync_free(&ds->dir);
		return -1;
	}
	*dir_r = &ds->dir;
	return 0;
}

/* --check-config: every URI takes the sync control. */
int
dir_ldap_sync_check(const struct config *config, char *err, size_t errlen)
{
	struct dir_sync *ds = dir_sync_prepare(config, err, errlen);
	struct dir_ldap_check c = { 0 };
	int rc;

	if (ds == NULL)
		return -1;
	err[0] = '\0';
	for (size_t i = 0; i < ds->nuris; i++) {
		const char *uri = ds->uris[i];
		struct timeval tv = { .tv_sec = ds->cfg->timeout };
		LDAPMessage *res = NULL;
		char why[512] = "";
		LDAP *ld = NULL;
		int r, msgid, err2 = LDAP_OTHER;

		if ((r = dir_ldap_handle(ds->cfg, uri, &ld)) == LDAP_SUCCESS &&
		    (r = dir_ldap_service_bind(ds->cfg, ds->password, ld)) ==
		    LDAP_SUCCESS &&
		    (r = send_sync(ds, ld, LDAP_SYNC_REFRESH_ONLY, 1, &msgid)) ==
		    LDAP_SUCCESS) {
			/* Entries first; the result says whether sync was accepted. */
			while ((r = ldap_result(ld, msgid, LDAP_MSG_ONE, &tv, &res)) > 0 &&
			    ldap_msgtype(res) != LDAP_RES_SEARCH_RESULT) {
				ldap_msgfree(res);
				res = NULL;
			}
			if (r > 0) {
				(void)ldap_parse_result(ld, res, &err2, NULL, NULL,
				    NULL, NULL, 0);
				r = err2 == LDAP_SIZELIMIT_EXCEEDED ? LDAP_SUCCESS : err2;
			} else
				r = r == 0 ? LDAP_TIMEOUT : LDAP_SERVER_DOWN;
			ldap_msgfree(res);
		}
		if (r == LDAP_UNAVAILABLE_CRITICAL_EXTENSION || r == LDAP_PROTOCOL_ERROR)
			snprintf(why, sizeof(why), "directory.ldap.sync: %s "
			    SYNC_NO_SYNCPROV, uri);
		else if (r != LDAP_SUCCESS)
			dir_ldap_describe_failure(ds->cfg, uri, r, why, sizeof(why));
		if (ld != NULL)
			ldap_unbind_ext_s(ld, NULL, NULL);
		dir_ldap_check_note(&c, r, why, err, errlen);
	}
	rc = dir_ldap_check_verdict(&c, err);
	dir_sync_free(&ds->dir);
	return rc;
}

static int
dir_sync_stats(struct directory *dir, struct replica_stats *st)
{
	struct dir_sync *ds = (struct dir_sync *)dir;

	st->entries = replica_entries(ds->table);
	st->keys = replica_keys(ds->table);
	st->updated = (time_t)atomic_load(&ds->updated);
	st->connected = atomic_load(&ds->connected);
	st->ready = atomic_load(&ds->ready);
	st->age = (unsigned)((clock_ms() - atomic_load(&ds->fresh_ms)) / 1000);
	if (st->connected)
		st->age = 0;
	return 0;
}

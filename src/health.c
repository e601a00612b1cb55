#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/x509v3.h>

#include "conn.h"
#include "health.h"
#include "log.h"
#include "resolve.h"
#include "server.h"
#include "tls.h"
#include "util.h"

/* A greeting line must fit; IMAP's carries a capability list. */
#define PROBE_IN_MAX		4096
#define PROBE_OUT_MAX		64

static const char *const state_names[] = {
	[HEALTH_UP] = "up",
	[HEALTH_SUSPECT] = "suspect",
	[HEALTH_DOWN] = "down",
	[HEALTH_PROBING] = "probing",
};
_Static_assert(nitems(state_names) == HEALTH_STATE_COUNT, "state_names");

const char *
health_state_name(enum health_state state)
{
	return state < HEALTH_STATE_COUNT ? state_names[state] : "?";
}

/* The state machine. */

static bool
fsm_enter(struct health_fsm *f, enum health_state state, uint64_t now_ms)
{
	if (f->state == state)
		return false;
	f->state = state;
	f->since_ms = now_ms;
	return true;
}

bool
health_fsm_step(struct health_fsm *f, enum health_event ev, unsigned threshold,
    uint64_t now_ms)
{
	if (ev == HEALTH_EV_OK) {
		f->failures = 0;
		return fsm_enter(f, HEALTH_UP, now_ms);
	}
	if (f->failures < UINT32_MAX)
		f->failures++;
	switch (f->state) {
	case HEALTH_UP:
	case HEALTH_SUSPECT:
		return fsm_enter(f, f->failures >= threshold ? HEALTH_DOWN :
		    HEALTH_SUSPECT, now_ms);
	case HEALTH_PROBING:
		/* The trial failed: down for another down_time. */
		return fsm_enter(f, HEALTH_DOWN, now_ms);
	default:
		/* Already down (a login that began before it went down). */
		return false;
	}
}

bool
health_fsm_claim(struct health_fsm *f, uint64_t down_ms, uint64_t now_ms)
{
	if (f->state != HEALTH_DOWN && f->state != HEALTH_PROBING)
		return false;
	if (now_ms - f->since_ms < down_ms)
		return false;
	f->state = HEALTH_PROBING;
	f->since_ms = now_ms;
	return true;
}

bool
health_fsm_usable(const struct health_fsm *f)
{
	return f->state == HEALTH_UP || f->state == HEALTH_SUSPECT;
}

/* The table. */

struct health_key {
	uint8_t		 family;
	uint16_t	 port;
	uint8_t		 addr[16];
};

struct health_entry {
	pthread_mutex_t	 mtx;
	_Atomic int	 hint;		/* fsm.state, read without the lock */
	_Atomic unsigned fail_hint;	/* fsm.failures, likewise */
	_Atomic bool	 named;		/* a named backend's: probed while up */
	_Atomic uint64_t skipped;
	struct health_key key;		/* immutable after insertion */
	union {
		struct sockaddr		sa;
		struct sockaddr_in	in;
		struct sockaddr_in6	in6;
	}		 addr;
	socklen_t	 addrlen;
	char		 address[64];
	uint32_t	 next;		/* chain: index + 1, 0 ends */
	uint32_t	 group;		/* hash of the first name: picks the prober */

	/* Under mtx. */
	enum proto_id	 proto;
	char		 name[HEALTH_NAME_MAX];
	struct health_fsm fsm;
	uint64_t	 down_since_ms;
	time_t		 changed;
	char		 last_error[HEALTH_ERROR_MAX];
	uint64_t	 failures_total, probes, probes_failed, transitions;
	uint64_t	 log_window_ms;	/* start of the state-change log window */
	unsigned	 log_count, log_held;

	/* The owning prober's alone (group modulo workers). */
	uint64_t	 next_probe_ms;
	bool		 in_flight;
};

struct health {
	pthread_rwlock_t	 lock;		/* the index: buckets and chains */
	struct health_entry	*e;
	_Atomic size_t		 n;		/* initialised entries */
	size_t			 cap;
	uint32_t		*buckets;	/* index + 1, 0 empty */
	size_t			 nbuckets;	/* a power of two */
	struct log_limit	 log_full;
};

static int
key_of(const struct sockaddr *sa, struct health_key *k)
{
	memset(k, 0, sizeof(*k));
	k->family = (uint8_t)sa->sa_family;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

		k->port = in->sin_port;
		memcpy(k->addr, &in->sin_addr, 4);
		return 0;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *in6 =
		    (const struct sockaddr_in6 *)(const void *)sa;

		k->port = in6->sin6_port;
		memcpy(k->addr, &in6->sin6_addr, 16);
		return 0;
	}
	return -1;
}

static uint32_t
key_hash(const struct health_key *k)
{
	const uint8_t *p = (const uint8_t *)k;
	uint32_t hash = 2166136261u;

	for (size_t i = 0; i < sizeof(*k); i++)
		hash = (hash ^ p[i]) * 16777619u;
	return hash;
}

static uint32_t
name_hash(const char *name)
{
	uint32_t hash = 2166136261u;

	for (; *name != '\0'; name++)
		hash = (hash ^ (uint8_t)(*name | 0x20)) * 16777619u;
	return hash;
}

struct health *
health_new(size_t entries)
{
	struct health *h = xcalloc(1, sizeof(*h));

	if (entries == 0)
		entries = 1;
	h->cap = entries;
	h->e = xcalloc(entries, sizeof(*h->e));
	for (h->nbuckets = 16; h->nbuckets < entries; h->nbuckets *= 2)
		;
	h->buckets = xcalloc(h->nbuckets, sizeof(*h->buckets));
	pthread_rwlock_init(&h->lock, NULL);
	atomic_init(&h->n, 0);
	return h;
}

void
health_free(struct health **hp)
{
	struct health *h = *hp;
	size_t n;

	if (h == NULL)
		return;
	n = atomic_load(&h->n);
	for (size_t i = 0; i < n; i++)
		pthread_mutex_destroy(&h->e[i].mtx);
	pthread_rwlock_destroy(&h->lock);
	free(h->buckets);
	free(h->e);
	free(h);
	*hp = NULL;
}

size_t
health_size(struct health *h)
{
	return atomic_load(&h->n);
}

size_t
health_cap(struct health *h)
{
	return h->cap;
}

/* Under the index lock (either mode). */
static struct health_entry *
lookup_locked(struct health *h, const struct health_key *k)
{
	uint32_t i = h->buckets[key_hash(k) & (h->nbuckets - 1)];

	while (i != 0) {
		struct health_entry *e = &h->e[i - 1];

		if (memcmp(&e->key, k, sizeof(*k)) == 0)
			return e;
		i = e->next;
	}
	return NULL;
}

static struct health_entry *
lookup(struct health *h, const struct sockaddr *sa)
{
	struct health_entry *e;
	struct health_key k;

	if (key_of(sa, &k) < 0)
		return NULL;
	pthread_rwlock_rdlock(&h->lock);
	e = lookup_locked(h, &k);
	pthread_rwlock_unlock(&h->lock);
	return e;
}

/* The entry for sa, made if there is none; NULL when the table is full. */
static struct health_entry *
lookup_add(struct health *h, const struct sockaddr *sa, enum proto_id proto,
    const char *name)
{
	struct health_entry *e;
	struct health_key k;
	size_t n;
	uint32_t b;

	if (key_of(sa, &k) < 0)
		return NULL;
	if ((e = lookup(h, sa)) != NULL)
		return e;
	pthread_rwlock_wrlock(&h->lock);
	if ((e = lookup_locked(h, &k)) != NULL) {
		pthread_rwlock_unlock(&h->lock);
		return e;
	}
	n = atomic_load(&h->n);
	if (n == h->cap) {
		char a[64];

		pthread_rwlock_unlock(&h->lock);
		sockaddr_format(sa, a, sizeof(a));
		log_limited(&h->log_full, LOG_EVERY_MS, LOG_LVL_WARNING,
		    "health: %zu addresses tracked (health.entries): %s (%s) "
		    "is not, and is always tried", h->cap, a, name);
		return NULL;
	}
	e = &h->e[n];
	pthread_mutex_init(&e->mtx, NULL);
	atomic_init(&e->hint, HEALTH_UP);
	atomic_init(&e->fail_hint, 0);
	atomic_init(&e->named, false);
	atomic_init(&e->skipped, 0);
	e->key = k;
	e->addrlen = sa->sa_family == AF_INET ? sizeof(e->addr.in) :
	    sizeof(e->addr.in6);
	memcpy(&e->addr, sa, e->addrlen);
	sockaddr_format(sa, e->address, sizeof(e->address));
	e->proto = proto;
	str_copy(e->name, name, sizeof(e->name));
	e->group = name_hash(name);
	e->changed = time(NULL);
	b = key_hash(&k) & (uint32_t)(h->nbuckets - 1);
	e->next = h->buckets[b];
	h->buckets[b] = (uint32_t)n + 1;
	/* Release: whoever sees the new count sees the entry's fields. */
	atomic_store(&h->n, n + 1);
	pthread_rwlock_unlock(&h->lock);
	return e;
}

/*
 * Under e->mtx: a line for a change between usable and not, unless the
 * address flaps (HEALTH_LOG_CHANGES per HEALTH_LOG_WINDOW_MS).  The line
 * is formatted into msg and logged by the caller once the lock is gone.
 */
static bool
change_line(struct health_entry *e, enum health_state old, uint64_t now_ms,
    uint64_t down_ms, char *msg, size_t len)
{
	bool was = old == HEALTH_UP || old == HEALTH_SUSPECT;
	bool is = health_fsm_usable(&e->fsm);
	char held[64] = "";

	if (was == is)
		return false;
	if (now_ms - e->log_window_ms >= HEALTH_LOG_WINDOW_MS || e->log_window_ms == 0) {
		e->log_window_ms = now_ms;
		e->log_count = 0;
	}
	if (e->log_count >= HEALTH_LOG_CHANGES) {
		e->log_held++;
		return false;
	}
	e->log_count++;
	if (e->log_held > 0)
		snprintf(held, sizeof(held), " (%u state changes not logged: "
		    "flapping)", e->log_held);
	e->log_held = 0;
	if (is)
		snprintf(msg, len, "health: backend %s (%s) is up again after %llus "
		    "down%s", e->address, e->name, (unsigned long long)
		    ((now_ms - e->down_since_ms) / 1000), held);
	else
		snprintf(msg, len, "health: backend %s (%s) is down after %u "
		    "consecutive failures, last: %s; skipped for %llus%s",
		    e->address, e->name, e->fsm.failures, e->last_error,
		    (unsigned long long)(down_ms / 1000), held);
	return true;
}

static void
entry_event(struct health_entry *e, const char *error, bool probe,
    unsigned threshold, uint64_t down_ms, uint64_t now_ms)
{
	enum health_state old;
	char msg[512];
	bool logit = false, up;

	pthread_mutex_lock(&e->mtx);
	old = e->fsm.state;
	if (probe && error != NULL)
		e->probes_failed++;
	if (error != NULL) {
		e->failures_total++;
		str_copy(e->last_error, error, sizeof(e->last_error));
	}
	if (health_fsm_step(&e->fsm, error != NULL ? HEALTH_EV_FAIL : HEALTH_EV_OK,
	    threshold, now_ms)) {
		e->transitions++;
		e->changed = time(NULL);
		if (!health_fsm_usable(&e->fsm) && (old == HEALTH_UP ||
		    old == HEALTH_SUSPECT))
			e->down_since_ms = now_ms;
		logit = change_line(e, old, now_ms, down_ms, msg, sizeof(msg));
	}
	atomic_store(&e->hint, (int)e->fsm.state);
	atomic_store(&e->fail_hint, e->fsm.failures);
	up = health_fsm_usable(&e->fsm);
	pthread_mutex_unlock(&e->mtx);
	if (logit)
		log_msg(up ? LOG_LVL_INFO : LOG_LVL_WARNING, "%s", msg);
}

bool
health_usable(struct health *h, const struct sockaddr *sa, bool trial,
    uint64_t down_ms, uint64_t now_ms)
{
	struct health_entry *e = lookup(h, sa);
	int st;
	bool ok = false;

	if (e == NULL)
		return true;
	st = atomic_load(&e->hint);
	if (st == HEALTH_UP || st == HEALTH_SUSPECT)
		return true;
	if (trial) {
		pthread_mutex_lock(&e->mtx);
		if ((ok = health_fsm_claim(&e->fsm, down_ms, now_ms)))
			atomic_store(&e->hint, (int)e->fsm.state);
		pthread_mutex_unlock(&e->mtx);
		if (ok)
			return true;
	}
	atomic_fetch_add_explicit(&e->skipped, 1, memory_order_relaxed);
	return false;
}

void
health_report(struct health *h, const struct sockaddr *sa, enum proto_id proto,
    const char *name, const char *error, unsigned threshold, uint64_t down_ms,
    uint64_t now_ms)
{
	struct health_entry *e;

	if (error == NULL) {
		/* The common case: known good, or never failed: nothing to write. */
		if ((e = lookup(h, sa)) == NULL || (atomic_load(&e->hint) ==
		    HEALTH_UP && atomic_load(&e->fail_hint) == 0))
			return;
	} else if ((e = lookup_add(h, sa, proto, name)) == NULL)
		return;
	entry_event(e, error, false, threshold, down_ms, now_ms);
}

void
health_register_config(struct health *h, const struct config *cfg)
{
	size_t n = atomic_load(&h->n);
	bool serves[PROTO_COUNT] = { false };

	for (size_t i = 0; i < n; i++)
		atomic_store(&h->e[i].named, false);
	for (size_t k = 0; k < cfg->nlisten; k++)
		serves[cfg->listen[k].proto] = true;
	for (size_t i = 0; i < cfg->nbackends; i++) {
		const struct backend_cfg *b = &cfg->backends[i];

		for (int p = 0; p < PROTO_COUNT; p++) {
			uint16_t port = b->port[p] ? b->port[p] : cfg->backend.port[p];

			if (!serves[p])
				continue;
			for (size_t a = 0; a < b->naddresses; a++) {
				struct addr_list *al;

				if (resolve_numeric(b->addresses[a], port, &al) < 0)
					continue;	/* a name: tracked once it fails */
				for (size_t j = 0; j < al->n; j++) {
					struct health_entry *e = lookup_add(h,
					    &al->a[j].u.sa, (enum proto_id)p, b->name);

					/* Shared by two backends: the first names it. */
					if (e == NULL || atomic_load(&e->named))
						continue;
					pthread_mutex_lock(&e->mtx);
					str_copy(e->name, b->name, sizeof(e->name));
					e->proto = (enum proto_id)p;
					pthread_mutex_unlock(&e->mtx);
					atomic_store(&e->named, true);
				}
				free(al);
			}
		}
	}
}

void
health_foreach(struct health *h,
    void (*cb)(const struct health_info *info, void *arg), void *arg)
{
	size_t n = atomic_load(&h->n);

	for (size_t i = 0; i < n; i++) {
		struct health_entry *e = &h->e[i];
		struct health_info info;

		memset(&info, 0, sizeof(info));
		str_copy(info.address, e->address, sizeof(info.address));
		info.named = atomic_load(&e->named);
		info.skipped = atomic_load_explicit(&e->skipped, memory_order_relaxed);
		pthread_mutex_lock(&e->mtx);
		str_copy(info.name, e->name, sizeof(info.name));
		info.proto = e->proto;
		info.state = e->fsm.state;
		info.failures = e->fsm.failures;
		info.changed = e->changed;
		str_copy(info.last_error, e->last_error, sizeof(info.last_error));
		info.failures_total = e->failures_total;
		info.probes = e->probes;
		info.probes_failed = e->probes_failed;
		info.transitions = e->transitions;
		pthread_mutex_unlock(&e->mtx);
		cb(&info, arg);
	}
}

/* Active checks. */

struct probe {
	struct health_prober	*p;
	struct health_entry	*e;
	struct conn		 c;
	struct timer		 timer;
	enum proto_id		 proto;
	bool			 connecting;
	bool			 handshaking;
	struct probe		*prev, *next;
};

struct health_prober {
	struct health		*h;
	struct loop		*loop;
	unsigned		 index, nworkers;
	struct gen		*gen;		/* the worker's; not referenced */
	struct timer		 tick;
	struct probe		*probes;
	unsigned		 nprobes;
	bool			 running;
};

static void	prober_tick(struct timer *t);

struct health_prober *
health_prober_new(struct health *h, struct loop *loop, unsigned index,
    unsigned nworkers)
{
	struct health_prober *p = xcalloc(1, sizeof(*p));

	p->h = h;
	p->loop = loop;
	p->index = index;
	p->nworkers = nworkers > 0 ? nworkers : 1;
	timer_init(&p->tick, prober_tick, p);
	return p;
}

void
health_prober_set_gen(struct health_prober *p, struct gen *gen)
{
	p->gen = gen;
}

unsigned
health_prober_active(const struct health_prober *p)
{
	return p->nprobes;
}

static void
probe_free(struct probe *pr)
{
	struct health_prober *p = pr->p;

	loop_timer_cancel(p->loop, &pr->timer);
	conn_close(&pr->c, p->loop);
	pr->e->in_flight = false;
	if (pr->prev != NULL)
		pr->prev->next = pr->next;
	else
		p->probes = pr->next;
	if (pr->next != NULL)
		pr->next->prev = pr->prev;
	p->nprobes--;
	free(pr);
}

/* The probe is over: error NULL for a greeting received. */
static void
probe_done(struct probe *pr, const char *error)
{
	const struct config *cfg = pr->p->gen->cfg;

	entry_event(pr->e, error, true, cfg->health.failures,
	    (uint64_t)cfg->health.down_time * 1000, loop_now(pr->p->loop));
	probe_free(pr);
}

static void
probe_greeting(struct probe *pr)
{
	const char *head, *nl;
	size_t len;
	bool ok;

	if (conn_read(&pr->c) < 0 && !pr->c.eof) {
		probe_done(pr, "connection reset before the greeting");
		return;
	}
	head = buf_head(&pr->c.in);
	len = buf_len(&pr->c.in);
	if ((nl = len > 0 ? memchr(head, '\n', len) : NULL) != NULL) {
		len = (size_t)(nl - head);
		if (pr->proto == PROTO_IMAP)
			ok = (len >= 4 && memcmp(head, "* OK", 4) == 0) ||
			    (len >= 9 && memcmp(head, "* PREAUTH", 9) == 0);
		else if (pr->proto == PROTO_SIEVE)
			/* A capability line first (RFC 5804 1.7), or OK. */
			ok = (len >= 1 && head[0] == '"') ||
			    (len >= 2 && memcmp(head, "OK", 2) == 0);
		else
			ok = len >= 3 && memcmp(head, "+OK", 3) == 0;
		probe_done(pr, ok ? NULL : "unexpected greeting");
		return;
	}
	if (pr->c.eof) {
		probe_done(pr, "closed before the greeting");
		return;
	}
	if (buf_room(&pr->c.in) == 0) {
		probe_done(pr, "greeting too long");
		return;
	}
	if (conn_update(&pr->c, pr->p->loop, true) < 0)
		probe_done(pr, strerror(errno));
}

static void
probe_tls_step(struct probe *pr)
{
	char e[128], why[HEALTH_ERROR_MAX];
	long vr;
	int rc = conn_tls_handshake(&pr->c);

	if (rc == 0) {
		if (conn_update(&pr->c, pr->p->loop, false) < 0)
			probe_done(pr, strerror(errno));
		return;
	}
	if (rc < 0) {
		vr = SSL_get_verify_result(pr->c.ssl);
		snprintf(why, sizeof(why), "TLS handshake failed: %s",
		    vr != X509_V_OK ? X509_verify_cert_error_string(vr) :
		    tls_error(e, sizeof(e)));
		probe_done(pr, why);
		return;
	}
	pr->handshaking = false;
	probe_greeting(pr);
}

/* What a PROXY-speaking backend is told by a probe: nobody is proxied. */
static int
probe_send_proxy(struct probe *pr, enum backend_proxy proxy)
{
	static const char v1[] = "PROXY UNKNOWN\r\n";
	static const unsigned char v2[16] = { '\r', '\n', '\r', '\n', 0,
	    '\r', '\n', 'Q', 'U', 'I', 'T', '\n', 0x20, 0x00, 0x00, 0x00 };
	const void *hdr = proxy == BACKEND_PROXY_V1 ? (const void *)v1 : v2;
	size_t len = proxy == BACKEND_PROXY_V1 ? sizeof(v1) - 1 : sizeof(v2);
	ssize_t n;

	if (proxy == BACKEND_PROXY_NONE)
		return 0;
	do
		n = send(pr->c.fd, hdr, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

static void
probe_connected(struct probe *pr)
{
	const struct config *cfg = pr->p->gen->cfg;
	const struct backend_cfg *b;
	char name[HEALTH_NAME_MAX];
	int err = 0;
	socklen_t len = sizeof(err);

	if (getsockopt(pr->c.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if (err != 0) {
		probe_done(pr, strerror(err));
		return;
	}
	pr->connecting = false;
	pthread_mutex_lock(&pr->e->mtx);
	str_copy(name, pr->e->name, sizeof(name));
	pthread_mutex_unlock(&pr->e->mtx);
	b = config_backend(cfg, name);
	if (probe_send_proxy(pr, b != NULL ? b->proxy_protocol :
	    BACKEND_PROXY_NONE) < 0) {
		probe_done(pr, "cannot send the PROXY header");
		return;
	}
	if ((b != NULL ? b->tls : cfg->backend.tls) == TLS_MODE_IMPLICIT) {
		SSL_CTX *ctx = b != NULL ?
		    pr->p->gen->tls.backend[b - cfg->backends] :
		    pr->p->gen->tls.backend_default;
		bool verify = b != NULL ? b->verify : cfg->backend.verify;
		unsigned char ip[16];

		if (ctx == NULL || conn_tls_start(&pr->c, ctx, false) < 0) {
			probe_done(pr, "cannot start TLS");
			return;
		}
		if (inet_pton(AF_INET, name, ip) != 1 &&
		    inet_pton(AF_INET6, name, ip) != 1) {
			SSL_set_tlsext_host_name(pr->c.ssl, name);
			if (verify)
				SSL_set1_host(pr->c.ssl, name);
		} else if (verify)
			X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(pr->c.ssl), name);
		pr->handshaking = true;
		probe_tls_step(pr);
		return;
	}
	probe_greeting(pr);
}

static void
probe_event(struct watch *w, uint32_t events)
{
	struct probe *pr = w->arg;

	(void)events;
	if (pr->connecting)
		probe_connected(pr);
	else if (pr->handshaking)
		probe_tls_step(pr);
	else
		probe_greeting(pr);
}

static void
probe_timeout(struct timer *t)
{
	struct probe *pr = t->arg;

	probe_done(pr, pr->connecting ? "probe: connect timed out" :
	    "probe: no greeting in time");
}

static void
probe_start(struct health_prober *p, struct health_entry *e, enum proto_id proto)
{
	const struct config *cfg = p->gen->cfg;
	struct probe *pr = xcalloc(1, sizeof(*pr));
	int fd;

	pr->p = p;
	pr->e = e;
	pr->proto = proto;
	pr->connecting = true;
	timer_init(&pr->timer, probe_timeout, pr);
	pr->next = p->probes;
	if (p->probes != NULL)
		p->probes->prev = pr;
	p->probes = pr;
	p->nprobes++;
	e->in_flight = true;
	pthread_mutex_lock(&e->mtx);
	e->probes++;
	pthread_mutex_unlock(&e->mtx);
	conn_init(&pr->c, -1, PROBE_IN_MAX, PROBE_OUT_MAX, probe_event, pr);
	loop_timer_in(p->loop, &pr->timer, (uint64_t)cfg->health.timeout * 1000);
	fd = socket(e->addr.sa.sa_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd < 0) {
		/* Ours, not the backend's: no verdict. */
		log_limited(&p->h->log_full, LOG_EVERY_MS, LOG_LVL_WARNING,
		    "health: probe of %s: socket: %s", e->address, strerror(errno));
		probe_free(pr);
		return;
	}
	conn_init(&pr->c, fd, PROBE_IN_MAX, PROBE_OUT_MAX, probe_event, pr);
	if (connect(fd, &e->addr.sa, e->addrlen) < 0 && errno != EINPROGRESS) {
		probe_done(pr, strerror(errno));
		return;
	}
	if (loop_watch(p->loop, &pr->c.watch, EPOLLOUT) < 0)
		probe_done(pr, strerror(errno));
}

/*
 * Is a probe due for e now?  DOWN (or a PROBING whose trial went silent)
 * past down_time: yes, and it becomes PROBING.  UP or SUSPECT: if it is a
 * named backend's address and health.interval has passed since its last.
 */
static bool
probe_due(struct health_entry *e, const struct config *cfg, uint64_t now,
    enum proto_id *proto_r)
{
	bool due = false;

	pthread_mutex_lock(&e->mtx);
	*proto_r = e->proto;
	if (!health_fsm_usable(&e->fsm))
		due = health_fsm_claim(&e->fsm,
		    (uint64_t)cfg->health.down_time * 1000, now);
	else
		due = atomic_load(&e->named) && now >= e->next_probe_ms;
	atomic_store(&e->hint, (int)e->fsm.state);
	pthread_mutex_unlock(&e->mtx);
	return due;
}

static void
prober_tick(struct timer *t)
{
	struct health_prober *p = t->arg;
	const struct config *cfg = p->gen != NULL ? p->gen->cfg : NULL;
	uint64_t now = loop_now(p->loop);
	unsigned max;
	size_t n;

	if (!p->running)
		return;
	loop_timer_in(p->loop, &p->tick, HEALTH_TICK_MS);
	if (cfg == NULL || !cfg->health.active)
		return;
	max = cfg->health.probes / p->nworkers;
	if (max == 0)
		max = 1;
	n = atomic_load(&p->h->n);
	for (size_t i = 0; i < n && p->nprobes < max; i++) {
		struct health_entry *e = &p->h->e[i];
		enum proto_id proto;

		/*
		 * One backend's addresses all belong to one prober, so its TLS
		 * context is never in two probes' handshakes at once: OpenSSL
		 * fills caches in the context's certificate store on first use.
		 */
		if (e->group % p->nworkers != p->index)
			continue;
		if (e->in_flight || !probe_due(e, cfg, now, &proto))
			continue;
		e->next_probe_ms = now + (uint64_t)cfg->health.interval * 1000;
		probe_start(p, e, proto);
	}
}

void
health_prober_start(struct health_prober *p)
{
	p->running = true;
	loop_timer_in(p->loop, &p->tick, HEALTH_TICK_MS);
}

void
health_prober_stop(struct health_prober *p)
{
	if (p == NULL)
		return;
	p->running = false;
	loop_timer_cancel(p->loop, &p->tick);
	/* An entry left PROBING is claimed again after down_time. */
	while (p->probes != NULL)
		probe_free(p->probes);
}

void
health_prober_free(struct health_prober **pp)
{
	if (*pp == NULL)
		return;
	health_prober_stop(*pp);
	free(*pp);
	*pp = NULL;
}

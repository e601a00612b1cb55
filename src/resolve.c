#include "autoconf.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "resolve.h"
#include "util.h"

#define NAME_BUCKETS	(2 * RESOLVE_CACHE_MAX)

/*
 * A request is shared by the requesting worker and the resolver: two
 * references.  `cancelled` is atomic so that the resolver can skip a
 * request nobody waits for.
 */
struct resolve_request {
	_Atomic unsigned	 refs;
	struct loop		*loop;
	resolve_cb		*cb;
	resolve_name_cb		*name_cb;	/* instead, for a reverse lookup */
	void			*arg;
	_Atomic bool		 cancelled;
	struct addr_list	*addrs;
	bool			 named;		/* ptr holds the answer */
	char			 ptr[RESOLVE_NAME_MAX];
	char			 error[128];
	struct resolve_request	*next;		/* a name's waiters */
};

/*
 * One host:port, or one address to name (reverse: the address in
 * addrs.a[0], its text in host): a cache entry, and the job while it is
 * looked up.
 */
struct name {
	char			*host;
	uint16_t		 port;
	bool			 reverse;
	uint64_t		 hash;
	bool			 in_flight;
	bool			 cached;	/* in the table (else freed after) */
	uint64_t		 expires;
	bool			 ok;
	struct addr_list	 addrs;
	char			 ptr[RESOLVE_NAME_MAX];	/* reverse: the name */
	char			 error[128];
	struct resolve_request	*waiters;
	struct name		*chain;		/* hash bucket */
	struct name		*qnext;		/* job queue */
};

/* The resolver is process-wide, like the name service it fronts. */
static struct {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cond;
	struct name		*buckets[NAME_BUCKETS];
	size_t			 nnames;
	struct name		*qhead, **qtail;
	size_t			 qlen;
	pthread_t		 threads[RESOLVE_THREADS_MAX];
	unsigned		 nthreads, nidle;
	bool			 stop;
	unsigned long		 shed;
	struct log_limit	 log_shed;
	resolve_lookup_fn	*lookup;
	resolve_reverse_fn	*reverse;
} pool = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
	.lookup = getaddrinfo,
	.reverse = getnameinfo,
};

void
resolve_set_reverse(resolve_reverse_fn *fn)
{
	pthread_mutex_lock(&pool.mtx);
	pool.reverse = fn != NULL ? fn : getnameinfo;
	pthread_mutex_unlock(&pool.mtx);
}

void
resolve_set_lookup(resolve_lookup_fn *fn)
{
	pthread_mutex_lock(&pool.mtx);
	pool.lookup = fn != NULL ? fn : getaddrinfo;
	pthread_mutex_unlock(&pool.mtx);
}

static void
request_unref(struct resolve_request *req)
{
	if (atomic_fetch_sub(&req->refs, 1) != 1)
		return;
	free(req->addrs);
	free(req);
}

static void
deliver(void *arg)
{
	struct resolve_request *req = arg;

	if (!req->cancelled) {
		struct addr_list *addrs = req->addrs;

		req->addrs = NULL;
		req->cancelled = true;
		if (req->name_cb != NULL)
			req->name_cb(req->arg, req->named ? req->ptr : NULL,
			    req->error);
		else
			req->cb(req->arg, addrs, req->error);
		request_unref(req);	/* the requester's */
	}
	request_unref(req);
}

/* Hand the answer to the request's loop (the resolver's reference). */
static void
answer(struct resolve_request *req, const struct addr_list *addrs,
    const char *error)
{
	if (req->cancelled) {
		request_unref(req);
		return;
	}
	if (addrs != NULL && req->name_cb == NULL) {
		req->addrs = xmalloc(sizeof(*req->addrs));
		*req->addrs = *addrs;
	} else
		str_copy(req->error, error, sizeof(req->error));
	if (loop_post(req->loop, deliver, req) < 0)
		request_unref(req);
}

/* A reverse lookup's answer: the name, or NULL with a reason. */
static void
answer_name(struct resolve_request *req, const char *name, const char *error)
{
	if (name != NULL) {
		req->named = true;
		str_copy(req->ptr, name, sizeof(req->ptr));
	}
	answer(req, NULL, error != NULL ? error : "");
}

/* What the entry knows, to one request. */
static void
answer_entry(struct resolve_request *req, const struct name *e)
{
	if (e->reverse)
		answer_name(req, e->ok ? e->ptr : NULL, e->error);
	else
		answer(req, e->ok ? &e->addrs : NULL, e->error);
}

static uint64_t
name_hash(const char *host, uint16_t port, bool reverse)
{
	uint64_t h = (1469598103934665603ULL ^ port) + reverse;

	for (; *host != '\0'; host++) {
		h ^= (unsigned char)*host;
		h *= 1099511628211ULL;
	}
	return h ^ (h >> 29);
}

static struct name **
name_slot(const char *host, uint16_t port, bool reverse, uint64_t h)
{
	struct name **pp = &pool.buckets[h % NAME_BUCKETS];

	for (; *pp != NULL; pp = &(*pp)->chain)
		if ((*pp)->hash == h && (*pp)->port == port &&
		    (*pp)->reverse == reverse && strcmp((*pp)->host, host) == 0)
			break;
	return pp;
}

static void
name_free(struct name *e)
{
	free(e->host);
	free(e);
}

/* Room in the table: forget what expired.  Caller holds the mutex. */
static void
names_sweep(uint64_t now)
{
	for (size_t i = 0; i < NAME_BUCKETS; i++) {
		struct name **pp = &pool.buckets[i], *e;

		while ((e = *pp) != NULL) {
			if (!e->in_flight && e->expires <= now) {
				*pp = e->chain;
				name_free(e);
				pool.nnames--;
			} else
				pp = &e->chain;
		}
	}
}

/* Copy what getaddrinfo found (IP stream addresses only, in order). */
static void
addrs_from(const struct addrinfo *ai, struct addr_list *out)
{
	out->n = 0;
	for (; ai != NULL && out->n < RESOLVE_ADDRS_MAX; ai = ai->ai_next) {
		if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
		    ai->ai_addrlen > sizeof(out->a[0].u))
			continue;
		memcpy(&out->a[out->n].u, ai->ai_addr, ai->ai_addrlen);
		out->a[out->n].len = ai->ai_addrlen;
		out->n++;
	}
}

static void
lookup_reverse(struct name *e)
{
	char host[NI_MAXHOST];
	resolve_reverse_fn *fn;
	int rc;

	pthread_mutex_lock(&pool.mtx);
	fn = pool.reverse;
	pthread_mutex_unlock(&pool.mtx);
	rc = fn(&e->addrs.a[0].u.sa, e->addrs.a[0].len, host, sizeof(host),
	    NULL, 0, NI_NAMEREQD);
	e->ok = true;
	e->ptr[0] = '\0';
	if (rc == 0) {
		if (strlen(host) < sizeof(e->ptr))
			str_copy(e->ptr, host, sizeof(e->ptr));
	} else if (rc != EAI_NONAME) {
		e->ok = false;
		str_copy(e->error, gai_strerror(rc), sizeof(e->error));
	}
}

static void
lookup(struct name *e)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG }, *res = NULL;
	resolve_lookup_fn *fn;
	char port[8];
	int rc;

	snprintf(port, sizeof(port), "%u", e->port);
	pthread_mutex_lock(&pool.mtx);
	fn = pool.lookup;
	pthread_mutex_unlock(&pool.mtx);
	rc = fn(e->host, port, &hints, &res);
	e->ok = false;
	if (rc != 0)
		str_copy(e->error, gai_strerror(rc), sizeof(e->error));
	else {
		addrs_from(res, &e->addrs);
		if (e->addrs.n > 0)
			e->ok = true;
		else
			str_copy(e->error, "no IPv4 or IPv6 address", sizeof(e->error));
	}
	if (res != NULL)
		freeaddrinfo(res);
}

static void *
resolver_main(void *unused)
{
	pthread_mutex_lock(&pool.mtx);
	for (;;) {
		struct name *e;
		struct resolve_request *w;

		while (pool.qhead == NULL && !pool.stop) {
			pool.nidle++;
			pthread_cond_wait(&pool.cond, &pool.mtx);
			pool.nidle--;
		}
		if (pool.qhead == NULL)
			break;
		e = pool.qhead;
		if ((pool.qhead = e->qnext) == NULL)
			pool.qtail = &pool.qhead;
		pool.qlen--;
		pthread_mutex_unlock(&pool.mtx);

		if (e->reverse)
			lookup_reverse(e);
		else
			lookup(e);

		pthread_mutex_lock(&pool.mtx);
		e->in_flight = false;
		e->expires = clock_ms() + (e->ok ? RESOLVE_TTL_MS :
		    RESOLVE_NEGATIVE_TTL_MS);
		while ((w = e->waiters) != NULL) {
			e->waiters = w->next;
			answer_entry(w, e);
		}
		if (!e->cached)
			name_free(e);
	}
	pthread_mutex_unlock(&pool.mtx);
	return NULL;
}

/* A thread more, while every one is busy.  Caller holds the mutex. */
static int
add_thread(void)
{
	if (pool.nthreads == RESOLVE_THREADS_MAX ||
	    pthread_create(&pool.threads[pool.nthreads], NULL, resolver_main,
	    NULL) != 0)
		return -1;
	pool.nthreads++;
	return 0;
}

int
resolve_init(unsigned threads)
{
	int rc = 0;

	pthread_mutex_lock(&pool.mtx);
	pool.qtail = &pool.qhead;
	pool.stop = false;
	for (unsigned i = 0; i < threads && rc == 0; i++)
		rc = add_thread();
	pthread_mutex_unlock(&pool.mtx);
	return rc;
}

void
resolve_shutdown(void)
{
	pthread_mutex_lock(&pool.mtx);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	for (unsigned i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	pool.nthreads = 0;
	/* Nobody waits any more: the workers are gone. */
	while (pool.qhead != NULL) {
		struct name *e = pool.qhead;

		pool.qhead = e->qnext;
		while (e->waiters != NULL) {
			struct resolve_request *w = e->waiters;

			e->waiters = w->next;
			request_unref(w);
		}
		e->in_flight = false;
		if (!e->cached)
			name_free(e);
	}
	pool.qtail = &pool.qhead;
	pool.qlen = 0;
	names_sweep(UINT64_MAX);
}

void
resolve_stats(struct resolve_stats *st)
{
	pthread_mutex_lock(&pool.mtx);
	st->queued = pool.qlen;
	st->shed = pool.shed;
	st->threads = pool.nthreads;
	st->idle = pool.nidle;
	st->cached = pool.nnames;
	pthread_mutex_unlock(&pool.mtx);
}

/* Join or start the lookup of one cache key; `sa` only when reverse. */
static struct resolve_request *
start(struct resolve_request *req, const char *host, uint16_t port,
    bool reverse, const struct sockaddr *sa)
{
	uint64_t h = name_hash(host, port, reverse), now = clock_ms();
	struct name **pp, *e;

	atomic_init(&req->refs, 2);
	pthread_mutex_lock(&pool.mtx);
	pp = name_slot(host, port, reverse, h);
	if ((e = *pp) != NULL && !e->in_flight && now < e->expires) {
		answer_entry(req, e);
		pthread_mutex_unlock(&pool.mtx);
		return req;
	}
	if (e != NULL && e->in_flight) {
		req->next = e->waiters;
		e->waiters = req;
		pthread_mutex_unlock(&pool.mtx);
		return req;
	}
	if (pool.qlen >= RESOLVE_QUEUE_MAX || pool.stop) {
		const char *why = "resolver overloaded: too many names waiting";

		pool.shed++;
		log_limited(&pool.log_shed, 10000, LOG_LVL_WARNING, "resolver: %u "
		    "names waiting for DNS: refusing more", RESOLVE_QUEUE_MAX);
		if (reverse)
			answer_name(req, NULL, why);
		else
			answer(req, NULL, why);
		pthread_mutex_unlock(&pool.mtx);
		return req;
	}
	if (e == NULL) {
		if (pool.nnames >= RESOLVE_CACHE_MAX)
			names_sweep(now);
		e = xcalloc(1, sizeof(*e));
		e->host = xstrdup(host);
		e->port = port;
		e->reverse = reverse;
		e->hash = h;
		if (pool.nnames < RESOLVE_CACHE_MAX) {
			e->cached = true;
			pp = name_slot(host, port, reverse, h);
			*pp = e;
			pool.nnames++;
		}
	}
	if (reverse) {
		socklen_t len = sa->sa_family == AF_INET6 ?
		    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);

		memcpy(&e->addrs.a[0].u, sa, len);
		e->addrs.a[0].len = len;
		e->addrs.n = 1;
	}
	e->in_flight = true;
	req->next = e->waiters;
	e->waiters = req;
	e->qnext = NULL;
	*pool.qtail = e;
	pool.qtail = &e->qnext;
	pool.qlen++;
	/*
	 * More names waiting than idle threads to take them: a thread more.
	 * Not "no thread idle": a thread signalled but not yet scheduled
	 * still counts as idle, and a burst would all queue behind it.
	 */
	if (pool.qlen > pool.nidle)
		(void)add_thread();
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	return req;
}

struct resolve_request *
resolve_start(struct loop *loop, const char *host, uint16_t port,
    resolve_cb *cb, void *arg)
{
	struct resolve_request *req = xcalloc(1, sizeof(*req));

	req->loop = loop;
	req->cb = cb;
	req->arg = arg;
	return start(req, host, port, false, NULL);
}

struct resolve_request *
resolve_name_start(struct loop *loop, const struct sockaddr *sa,
    resolve_name_cb *cb, void *arg)
{
	struct resolve_request *req = xcalloc(1, sizeof(*req));
	char host[INET6_ADDRSTRLEN];
	const void *a = sa->sa_family == AF_INET6 ?
	    (const void *)&((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr :
	    (const void *)&((const struct sockaddr_in *)(const void *)sa)->sin_addr;

	req->loop = loop;
	req->name_cb = cb;
	req->arg = arg;
	if ((sa->sa_family != AF_INET && sa->sa_family != AF_INET6) ||
	    inet_ntop(sa->sa_family, a, host, sizeof(host)) == NULL) {
		atomic_init(&req->refs, 2);
		answer_name(req, "", NULL);	/* not an IP address: no name */
		return req;
	}
	return start(req, host, 0, true, sa);
}

void
resolve_cancel(struct resolve_request **reqp)
{
	struct resolve_request *req = *reqp;

	if (req == NULL)
		return;
	*reqp = NULL;
	req->cancelled = true;
	request_unref(req);
}

int
resolve_numeric(const char *host, uint16_t port, struct addr_list **addrs_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV }, *res;
	char portstr[8];

	snprintf(portstr, sizeof(portstr), "%u", port);
	if (getaddrinfo(host, portstr, &hints, &res) != 0)
		return -1;
	*addrs_r = xmalloc(sizeof(**addrs_r));
	addrs_from(res, *addrs_r);
	freeaddrinfo(res);
	if ((*addrs_r)->n == 0) {
		free(*addrs_r);
		*addrs_r = NULL;
		return -1;
	}
	return 0;
}

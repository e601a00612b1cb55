#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "health.h"
#include "log.h"
#include "server.h"
#include "session.h"
#include "throttle.h"
#include "util.h"

#define LISTEN_BACKLOG		1024
/*
 * Accepts per wake-up.  One, as nginx does by default: the listener is
 * level-triggered, so a backlog is reported again at once, and no accept
 * is spent learning that the queue is empty.
 */
#define ACCEPT_BATCH		1
#define PIPE_POOL_MAX		64	/* idle pipes a worker keeps */
#define PIPE_SIZE		(256 * 1024)
/* Out of descriptors: the listener rests this long before accepting again. */
#define ACCEPT_PAUSE_MS		100
/* Descriptors kept back from limits.connections' automatic value. */
#define FD_RESERVE		64

struct reaper {
	pthread_t	 thread;
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cond;
	struct gen	*head;
	bool		 stop;
};

static void
gen_free(struct gen *g)
{
	directory_close(&g->dir);
	tls_ctxs_free(&g->tls);
	config_free(&g->cfg);
	free(g);
}

static void *
reaper_main(void *arg)
{
	struct reaper *r = arg;

	pthread_mutex_lock(&r->mtx);
	for (;;) {
		struct gen *g = r->head;

		if (g == NULL) {
			if (r->stop)
				break;
			pthread_cond_wait(&r->cond, &r->mtx);
			continue;
		}
		r->head = g->next;
		pthread_mutex_unlock(&r->mtx);
		gen_free(g);
		pthread_mutex_lock(&r->mtx);
	}
	pthread_mutex_unlock(&r->mtx);
	return NULL;
}

struct reaper *
reaper_start(void)
{
	struct reaper *r = xcalloc(1, sizeof(*r));

	pthread_mutex_init(&r->mtx, NULL);
	pthread_cond_init(&r->cond, NULL);
	if (pthread_create(&r->thread, NULL, reaper_main, r) != 0) {
		pthread_cond_destroy(&r->cond);
		pthread_mutex_destroy(&r->mtx);
		free(r);
		return NULL;
	}
	return r;
}

void
reaper_stop(struct reaper **rp)
{
	struct reaper *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	pthread_mutex_lock(&r->mtx);
	r->stop = true;
	pthread_cond_signal(&r->cond);
	pthread_mutex_unlock(&r->mtx);
	pthread_join(r->thread, NULL);
	pthread_cond_destroy(&r->cond);
	pthread_mutex_destroy(&r->mtx);
	free(r);
}

static dir_moved_cb server_user_moved;

int
gen_new(struct config *cfg, struct reaper *reaper, struct server *srv,
    struct gen **gen_r, char *err, size_t errlen)
{
	struct gen *g = xcalloc(1, sizeof(*g));

	atomic_init(&g->refs, 1);
	g->cfg = cfg;
	if (tls_ctxs_new(cfg, &g->tls, err, errlen) < 0 ||
	    directory_open(cfg, &g->dir, err, errlen) < 0) {
		gen_unref(&g);
		return -1;
	}
	if (srv != NULL) {
		g->server = srv;
		g->listener.cb = server_user_moved;
		g->listener.arg = g;
		directory_listen(g->dir, &g->listener);
	}
	for (size_t i = 0; i < cfg->nbackends; i++)
		if (cfg->backends[i].tls != TLS_MODE_NONE && !cfg->backends[i].verify)
			log_warning("backend %s: certificate verification is OFF "
			    "(verify = false): its identity is not checked",
			    cfg->backends[i].name);
	if (cfg->backend.tls != TLS_MODE_NONE && !cfg->backend.verify)
		log_warning("backend: certificate verification is OFF (verify = "
		    "false): backend identities are not checked");
	g->reaper = reaper;	/* only now: a failed start frees inline */
	*gen_r = g;
	return 0;
}

struct gen *
gen_ref(struct gen *g)
{
	atomic_fetch_add_explicit(&g->refs, 1, memory_order_relaxed);
	return g;
}

void
gen_unref(struct gen **gp)
{
	struct gen *g = *gp;

	if (g == NULL)
		return;
	*gp = NULL;
	if (atomic_fetch_sub_explicit(&g->refs, 1, memory_order_acq_rel) != 1)
		return;
	if (g->reaper == NULL) {
		gen_free(g);
		return;
	}
	pthread_mutex_lock(&g->reaper->mtx);
	g->next = g->reaper->head;
	g->reaper->head = g;
	pthread_cond_signal(&g->reaper->cond);
	pthread_mutex_unlock(&g->reaper->mtx);
}

/* Pipes. */

size_t
pipe_pool_get(struct pipe_pool *pp, int fds[2])
{
	int size;

	if (pp->n > 0) {
		pp->n--;
		fds[0] = pp->fds[pp->n][0];
		fds[1] = pp->fds[pp->n][1];
		return pp->size;
	}
	if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) {
		static struct log_limit ll;

		/* The relay copies without a pipe meanwhile: say it rarely. */
		log_limited(&ll, LOG_EVERY_MS, LOG_LVL_WARNING, "pipe2: %s: "
		    "relaying without splice", strerror(errno));
		return 0;
	}
	/* A larger pipe means fewer splice calls; pages come only with data. */
	if ((size = fcntl(fds[1], F_SETPIPE_SZ, PIPE_SIZE)) < 0)
		size = fcntl(fds[1], F_GETPIPE_SZ);
	if (size <= 0 || (pp->size != 0 && (size_t)size != pp->size)) {
		/* Odd size (limits changed?): use it once, never pool it. */
		return size > 0 ? (size_t)size : 4096;
	}
	pp->size = (size_t)size;
	return pp->size;
}

void
pipe_pool_put(struct pipe_pool *pp, int fds[2])
{
	if (pp->n == PIPE_POOL_MAX || pp->size == 0) {
		close(fds[0]);
		close(fds[1]);
		return;
	}
	if (pp->n == pp->cap) {
		pp->cap = pp->cap ? pp->cap * 2 : 8;
		pp->fds = xrealloc(pp->fds, pp->cap * sizeof(*pp->fds));
	}
	pp->fds[pp->n][0] = fds[0];
	pp->fds[pp->n][1] = fds[1];
	pp->n++;
}

static void
pipe_pool_free(struct pipe_pool *pp)
{
	for (size_t i = 0; i < pp->n; i++) {
		close(pp->fds[i][0]);
		close(pp->fds[i][1]);
	}
	free(pp->fds);
	memset(pp, 0, sizeof(*pp));
}

/*
 * Per-address counts: a short chained list per shard (entries exist only
 * while an address has connections open, so lists stay short).
 */
struct per_ip_entry {
	unsigned char		 addr[16];
	unsigned		 count;
	struct per_ip_entry	*next;
};

/* The address bytes (IPv4 as v4-mapped IPv6) and a shard. */
static unsigned
ip_key(const struct sockaddr *sa, unsigned char key[16])
{
	unsigned h = 2166136261u;

	memset(key, 0, 16);
	if (sa->sa_family == AF_INET) {
		key[10] = key[11] = 0xff;
		memcpy(key + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
	} else if (sa->sa_family == AF_INET6)
		memcpy(key, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
	for (int i = 0; i < 16; i++)
		h = (h ^ key[i]) * 16777619u;
	return h % PER_IP_SHARDS;
}

bool
per_ip_acquire(struct server *srv, const struct sockaddr *addr, unsigned limit)
{
	unsigned char key[16];
	struct per_ip_shard *sh = &srv->per_ip[ip_key(addr, key)];
	struct per_ip_entry *e;
	bool ok = true;

	if (limit == 0)
		return true;
	pthread_mutex_lock(&sh->mtx);
	for (e = sh->head; e != NULL; e = e->next)
		if (memcmp(e->addr, key, 16) == 0)
			break;
	if (e == NULL) {
		e = xcalloc(1, sizeof(*e));
		memcpy(e->addr, key, 16);
		e->next = sh->head;
		sh->head = e;
	}
	if (e->count >= limit)
		ok = false;
	else
		e->count++;
	pthread_mutex_unlock(&sh->mtx);
	return ok;
}

void
per_ip_release(struct server *srv, const struct sockaddr *addr)
{
	unsigned char key[16];
	struct per_ip_shard *sh = &srv->per_ip[ip_key(addr, key)];
	struct per_ip_entry **pp, *e;

	pthread_mutex_lock(&sh->mtx);
	for (pp = &sh->head; (e = *pp) != NULL; pp = &e->next) {
		if (memcmp(e->addr, key, 16) != 0)
			continue;
		if (e->count > 0)
			e->count--;
		if (e->count == 0) {
			*pp = e->next;
			free(e);
		}
		break;
	}
	pthread_mutex_unlock(&sh->mtx);
}

/*
 * Per-login counts: a chained hash table per shard; an entry lives only
 * while the user has counted sessions.
 */
struct per_user_entry {
	unsigned		 count;
	struct per_user_entry	*next;
	char			 user[];
};

static unsigned
user_hash(const char *user)
{
	unsigned h = 2166136261u;

	for (; *user != '\0'; user++)
		h = (h ^ (unsigned char)*user) * 16777619u;
	h ^= h >> 15;
	h *= 0x2c1b3c6dU;
	h ^= h >> 12;
	return h;
}

static struct per_user_entry **
per_user_slot(struct server *srv, const char *user, struct per_user_shard **sh_r)
{
	unsigned h = user_hash(user);
	struct per_user_shard *sh = &srv->per_user[h % PER_USER_SHARDS];
	struct per_user_entry **pp;

	*sh_r = sh;
	pthread_mutex_lock(&sh->mtx);
	for (pp = &sh->buckets[(h / PER_USER_SHARDS) % PER_USER_BUCKETS];
	    *pp != NULL; pp = &(*pp)->next)
		if (strcmp((*pp)->user, user) == 0)
			break;
	return pp;
}

bool
per_user_acquire(struct server *srv, const char *user, unsigned limit)
{
	struct per_user_shard *sh;
	struct per_user_entry **pp, *e;
	bool ok = true;

	if (limit == 0)
		return true;
	pp = per_user_slot(srv, user, &sh);
	if ((e = *pp) == NULL) {
		size_t len = strlen(user) + 1;

		e = xcalloc(1, sizeof(*e) + len);
		memcpy(e->user, user, len);
		*pp = e;
	}
	if (e->count >= limit)
		ok = false;
	else
		e->count++;
	if (e->count == 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&sh->mtx);
	return ok;
}

void
per_user_release(struct server *srv, const char *user)
{
	struct per_user_shard *sh;
	struct per_user_entry **pp, *e;

	pp = per_user_slot(srv, user, &sh);
	if ((e = *pp) != NULL && --e->count == 0) {
		*pp = e->next;
		free(e);
	}
	pthread_mutex_unlock(&sh->mtx);
}

unsigned
per_user_count(struct server *srv, const char *user)
{
	struct per_user_shard *sh;
	struct per_user_entry **pp;
	unsigned n;

	pp = per_user_slot(srv, user, &sh);
	n = *pp != NULL ? (*pp)->count : 0;
	pthread_mutex_unlock(&sh->mtx);
	return n;
}

/* Listening sockets. */

static int
bind_one(const struct listen_cfg *l, char *err, size_t errlen)
{
	int fd, one = 1;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->address, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Accepted sockets inherit it: no setsockopt per connection. */
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0 ||
	    (l->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0 ||
	    listen(fd, LISTEN_BACKLOG) < 0) {
		snprintf(err, errlen, "listen %s: %s", l->address, strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

/*
 * SO_REUSEPORT would let this process join sockets another one (a second
 * postern, with another config) has bound, and share its clients.  A bind
 * without it fails if anyone holds the address; then it is let go.
 */
static int
bind_probe(const struct listen_cfg *l, char *err, size_t errlen)
{
	int fd, one = 1, rc = 0;

	fd = socket(l->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		snprintf(err, errlen, "listen %s: socket: %s", l->address, strerror(errno));
		return -1;
	}
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if ((l->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0) ||
	    bind(fd, (const struct sockaddr *)&l->addr, l->addrlen) < 0) {
		snprintf(err, errlen, "listen %s: %s", l->address, strerror(errno));
		rc = -1;
	}
	close(fd);
	return rc;
}

unsigned
server_connections_for(unsigned nofile, unsigned nworkers)
{
	/*
	 * Two descriptors a session (client, backend), a third for the
	 * splice pipes a bulk transfer borrows; each worker keeps pipes.
	 */
	unsigned reserve = FD_RESERVE + nworkers * PIPE_POOL_MAX * 2;

	return nofile > reserve + 3 ? (nofile - reserve) / 3 : 1;
}

int
server_bind(struct server *srv, const struct config *cfg, unsigned nworkers,
    char *err, size_t errlen)
{
	pthread_mutex_init(&srv->mtx, NULL);
	atomic_init(&srv->ndrained_hint, 0);
	for (size_t k = 0; k < cfg->nlisten; k++)
		if (bind_probe(&cfg->listen[k], err, errlen) < 0)
			return -1;
	srv->workers = xcalloc(nworkers, sizeof(*srv->workers));
	srv->nworkers = nworkers;
	atomic_init(&srv->connections, 0);
	for (int i = 0; i < PER_IP_SHARDS; i++)
		pthread_mutex_init(&srv->per_ip[i].mtx, NULL);
	for (int i = 0; i < PER_USER_SHARDS; i++)
		pthread_mutex_init(&srv->per_user[i].mtx, NULL);
	srv->throttle_addr = throttle_new();
	srv->throttle_user = throttle_new();
	srv->health = health_new(cfg->health.entries);
	health_register_config(srv->health, cfg);
	for (unsigned i = 0; i < nworkers; i++) {
		struct worker *w = &srv->workers[i];

		w->id = i;
		w->server = srv;
		w->listeners = xcalloc(cfg->nlisten, sizeof(*w->listeners));
		for (size_t k = 0; k < cfg->nlisten; k++) {
			struct listener *l = &w->listeners[k];

			l->cfg = cfg->listen[k];
			/* The listener outlives this generation's config. */
			l->cfg.address = xstrdup(cfg->listen[k].address);
			if (cfg->listen[k].default_domain != NULL)
				l->cfg.default_domain =
				    xstrdup(cfg->listen[k].default_domain);
			l->worker = w;
			w->nlisteners++;
			if ((l->fd = bind_one(&l->cfg, err, errlen)) < 0)
				return -1;
		}
	}
	return 0;
}

/* Accept path. */

static void
refuse(struct server *srv, int fd, const struct listener *l, const char *why)
{
	static const char imap[] = "* BYE Too many connections, try again later\r\n";
	static const char pop3[] = "-ERR [SYS/TEMP] Too many connections, try again later\r\n";
	static const char sieve[] = "BYE (TRYLATER) \"Too many connections, try again later\"\r\n";

	if (l->cfg.proto == PROTO_IMAP)
		(void)!write(fd, imap, sizeof(imap) - 1);
	else if (l->cfg.proto == PROTO_SIEVE)
		(void)!write(fd, sieve, sizeof(sieve) - 1);
	else
		(void)!write(fd, pop3, sizeof(pop3) - 1);
	close(fd);
	log_limited(&srv->log_refused, LOG_EVERY_MS, LOG_LVL_WARNING,
	    "connection refused on %s: %s", l->cfg.address, why);
}

/*
 * A proxy_protocol listener takes PROXY headers from proxy.trusted_networks
 * only: anyone else could claim any address.  The others are closed without
 * a word (they may not even speak IMAP or POP3), with one warning per
 * interval however many there are.
 */
static bool
proxy_trusted(struct server *srv, const struct config *cfg,
    const struct listener *l, int fd, const struct sockaddr_storage *peer)
{
	char who[64];

	if (cidr_match(cfg->proxy.trusted_networks, cfg->proxy.ntrusted_networks,
	    (const struct sockaddr *)peer))
		return true;
	sockaddr_format((const struct sockaddr *)peer, who, sizeof(who));
	close(fd);
	log_limited(&srv->log_untrusted, LOG_EVERY_MS, LOG_LVL_WARNING,
	    "connection refused on %s: %s is not in proxy.trusted_networks",
	    l->cfg.address, who);
	return false;
}

static void
listener_resume(struct timer *t)
{
	struct listener *l = t->arg;

	if (l->fd >= 0 && loop_watch(l->worker->loop, &l->watch, EPOLLIN) < 0)
		log_warning("listen %s: epoll: %s", l->cfg.address, strerror(errno));
}

/*
 * No descriptor (or memory) for the connection: the listener is
 * level-triggered and would report the same queue at once, so it rests a
 * moment -- the pending clients wait in the kernel's backlog -- and the
 * warning is logged once per interval, not per attempt.
 */
static void
listener_pause(struct listener *l, int err)
{
	struct worker *w = l->worker;

	log_limited(&w->server->log_accept, LOG_EVERY_MS, LOG_LVL_WARNING,
	    "accept on %s: %s: not accepting for %d ms", l->cfg.address,
	    strerror(err), ACCEPT_PAUSE_MS);
	(void)loop_watch(w->loop, &l->watch, 0);
	loop_timer_in(w->loop, &l->pause, ACCEPT_PAUSE_MS);
}

static void
listener_event(struct watch *wt, uint32_t events)
{
	struct listener *l = wt->arg;
	struct worker *w = l->worker;
	struct server *srv = w->server;
	const struct config *cfg = w->gen->cfg;
	unsigned limit = cfg->limits.connections ? cfg->limits.connections :
	    srv->auto_connections;

	for (int i = 0; i < ACCEPT_BATCH; i++) {
		struct sockaddr_storage peer;
		socklen_t plen = sizeof(peer);
		unsigned n;
		int fd;

		fd = accept4(l->fd, (struct sockaddr *)&peer, &plen,
		    SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				listener_pause(l, errno);
			else if (errno != EAGAIN && errno != EWOULDBLOCK)
				log_limited(&srv->log_accept, LOG_EVERY_MS,
				    LOG_LVL_WARNING, "accept on %s: %s",
				    l->cfg.address, strerror(errno));
			return;
		}
		w->metrics.accepted[l->cfg.proto]++;
		n = atomic_fetch_add(&srv->connections, 1) + 1;
		if (limit > 0 && n > limit) {
			atomic_fetch_sub(&srv->connections, 1);
			w->metrics.refused[REFUSED_CONNECTIONS]++;
			refuse(srv, fd, l, "limits.connections reached");
			continue;
		}
		if (l->cfg.proxy_protocol) {
			if (!proxy_trusted(srv, cfg, l, fd, &peer)) {
				atomic_fetch_sub(&srv->connections, 1);
				w->metrics.refused[REFUSED_UNTRUSTED]++;
				continue;
			}
			/* limits.per_ip counts the header's address, later. */
			session_start(w, w->gen, &l->cfg, fd,
			    (struct sockaddr *)&peer, false);
			continue;
		}
		if (!per_ip_acquire(srv, (struct sockaddr *)&peer,
		    cfg->limits.per_ip)) {
			atomic_fetch_sub(&srv->connections, 1);
			w->metrics.refused[REFUSED_PER_IP]++;
			refuse(srv, fd, l, "limits.per_ip reached");
			continue;
		}
		session_start(w, w->gen, &l->cfg, fd, (struct sockaddr *)&peer,
		    cfg->limits.per_ip > 0);
	}
}

void
worker_add_session(struct worker *w, struct session *s)
{
	s->prev = NULL;
	s->next = w->sessions;
	if (w->sessions != NULL)
		w->sessions->prev = s;
	w->sessions = s;
	w->nsessions++;
}

void
worker_release_connection(struct worker *w, struct session *s)
{
	if (s->connection_released)
		return;
	s->connection_released = true;
	atomic_fetch_sub(&w->server->connections, 1);
	if (s->per_ip_counted)
		per_ip_release(w->server, &s->peer_addr.sa);
}

void
worker_remove_session(struct worker *w, struct session *s)
{
	if (s->prev != NULL)
		s->prev->next = s->next;
	else
		w->sessions = s->next;
	if (s->next != NULL)
		s->next->prev = s->prev;
	w->nsessions--;
	worker_release_connection(w, s);
	if (w->draining && w->nsessions == 0)
		loop_stop(w->loop);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;

	if (loop_run(w->loop) < 0)
		log_error("worker %u: event loop failed", w->id);
	return NULL;
}

int
server_start(struct server *srv, struct gen *gen)
{
	srv->started = time(NULL);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		if ((w->loop = loop_new()) == NULL)
			return -1;
		w->gen = gen_ref(gen);
		w->prober = health_prober_new(srv->health, w->loop, i,
		    srv->nworkers);
		health_prober_set_gen(w->prober, w->gen);
		health_prober_start(w->prober);
		for (size_t k = 0; k < w->nlisteners; k++) {
			struct listener *l = &w->listeners[k];

			watch_init(&l->watch, l->fd, listener_event, l);
			timer_init(&l->pause, listener_resume, l);
			if (loop_watch(w->loop, &l->watch, EPOLLIN) < 0)
				return -1;
		}
	}
	for (unsigned i = 0; i < srv->nworkers; i++)
		if (pthread_create(&srv->workers[i].thread, NULL, worker_main,
		    &srv->workers[i]) != 0)
			return -1;
	return 0;
}

/* Messages from the main thread, run on each worker's own thread. */

struct gen_handoff {
	struct worker	*worker;
	struct gen	*gen;
};

static void
worker_take_gen(void *arg)
{
	struct gen_handoff *h = arg;

	gen_unref(&h->worker->gen);
	h->worker->gen = h->gen;
	health_prober_set_gen(h->worker->prober, h->gen);
	free(h);
}

void
server_reload(struct server *srv, struct gen *gen)
{
	health_register_config(srv->health, gen->cfg);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct gen_handoff *h = xmalloc(sizeof(*h));

		h->worker = &srv->workers[i];
		h->gen = gen_ref(gen);
		loop_post(h->worker->loop, worker_take_gen, h);
	}
}

static void
worker_close_listeners(struct worker *w)
{
	for (size_t k = 0; k < w->nlisteners; k++) {
		struct listener *l = &w->listeners[k];

		if (l->fd < 0)
			continue;
		loop_timer_cancel(w->loop, &l->pause);
		loop_unwatch(w->loop, &l->watch);
		close(l->fd);
		l->fd = -1;
	}
}

/*
 * Stop accepting and end sessions: all of them, or (drain) only those not
 * yet relaying -- logged-in users finish in their own time.  The loop
 * stops when the last session is gone.
 */
static void
worker_wind_down(struct worker *w, bool relays_too)
{
	struct session *s, *next;

	w->draining = true;
	worker_close_listeners(w);
	health_prober_stop(w->prober);
	for (s = w->sessions; s != NULL; s = next) {
		next = s->next;
		if (relays_too)
			session_abort(s);
		else if (s->state != SESSION_RELAY)
			session_shutdown(s, "Server shutting down");
	}
	if (w->nsessions == 0)
		loop_stop(w->loop);
}

static void
worker_drain(void *arg)
{
	worker_wind_down(arg, false);
}

static void
worker_stop(void *arg)
{
	worker_wind_down(arg, true);
}

void
server_drain(struct server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++)
		loop_post(srv->workers[i].loop, worker_drain, &srv->workers[i]);
}

void
server_stop(struct server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++)
		loop_post(srv->workers[i].loop, worker_stop, &srv->workers[i]);
}

int
server_wait(struct server *srv, uint64_t deadline_ms)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		if (w->thread == 0)
			continue;
		for (;;) {
			struct timespec ts;
			uint64_t now = clock_ms();

			if (deadline_ms != 0 && now >= deadline_ms)
				return -1;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_nsec += 100 * 1000000;
			if (ts.tv_nsec >= 1000000000) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000;
			}
			if (pthread_timedjoin_np(w->thread, NULL, &ts) == 0)
				break;
		}
		w->thread = 0;
	}
	return 0;
}

void
server_release(struct server *srv)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		if (w->loop == NULL)
			continue;
		worker_close_listeners(w);
		/* Sessions closed on the way out are freed by queued tasks. */
		loop_run_pending(w->loop);
		health_prober_free(&w->prober);
		gen_unref(&w->gen);
	}
}

void
server_free(struct server *srv)
{
	server_release(srv);
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct worker *w = &srv->workers[i];

		/* Late answers for sessions that are gone: dropped here. */
		if (w->loop != NULL)
			loop_run_pending(w->loop);
		for (size_t k = 0; k < w->nlisteners; k++) {
			if (w->listeners[k].fd >= 0)
				close(w->listeners[k].fd);
			free(w->listeners[k].cfg.address);
			free(w->listeners[k].cfg.default_domain);
		}
		free(w->listeners);
		pipe_pool_free(&w->pipes);
		loop_free(&w->loop);
	}
	free(srv->workers);
	srv->workers = NULL;
	srv->nworkers = 0;
	for (int i = 0; i < PER_IP_SHARDS; i++) {
		while (srv->per_ip[i].head != NULL) {
			struct per_ip_entry *e = srv->per_ip[i].head;

			srv->per_ip[i].head = e->next;
			free(e);
		}
		pthread_mutex_destroy(&srv->per_ip[i].mtx);
	}
	for (int i = 0; i < PER_USER_SHARDS; i++) {
		for (int b = 0; b < PER_USER_BUCKETS; b++) {
			while (srv->per_user[i].buckets[b] != NULL) {
				struct per_user_entry *e = srv->per_user[i].buckets[b];

				srv->per_user[i].buckets[b] = e->next;
				free(e);
			}
		}
		pthread_mutex_destroy(&srv->per_user[i].mtx);
	}
	throttle_free(&srv->throttle_addr);
	throttle_free(&srv->throttle_user);
	health_free(&srv->health);
	server_set_gen(srv, NULL);
	for (size_t i = 0; i < srv->ndrained; i++)
		free(srv->drained[i]);
	free(srv->drained);
	srv->drained = NULL;
	srv->ndrained = 0;
	pthread_mutex_destroy(&srv->mtx);
}

/* What the control socket sees. */

void
server_set_gen(struct server *srv, struct gen *gen)
{
	struct gen *old;

	pthread_mutex_lock(&srv->mtx);
	old = srv->gen;
	srv->gen = gen != NULL ? gen_ref(gen) : NULL;
	if (gen != NULL)
		srv->generation++;
	pthread_mutex_unlock(&srv->mtx);
	gen_unref(&old);
}

struct gen *
server_gen(struct server *srv, unsigned long *generation_r)
{
	struct gen *g;

	pthread_mutex_lock(&srv->mtx);
	g = srv->gen != NULL ? gen_ref(srv->gen) : NULL;
	if (generation_r != NULL)
		*generation_r = srv->generation;
	pthread_mutex_unlock(&srv->mtx);
	return g;
}

void
server_reload_done(struct server *srv, const char *error)
{
	pthread_mutex_lock(&srv->mtx);
	srv->reloads++;
	str_copy(srv->reload_error, error != NULL ? error : "",
	    sizeof(srv->reload_error));
	pthread_mutex_unlock(&srv->mtx);
}

unsigned long
server_reload_status(struct server *srv, char *err, size_t errlen)
{
	unsigned long n;

	pthread_mutex_lock(&srv->mtx);
	n = srv->reloads;
	if (err != NULL)
		str_copy(err, srv->reload_error, errlen);
	pthread_mutex_unlock(&srv->mtx);
	return n;
}

static size_t
drained_find(const struct server *srv, const char *host)
{
	size_t i;

	for (i = 0; i < srv->ndrained; i++)
		if (strcasecmp(srv->drained[i], host) == 0)
			break;
	return i;
}

bool
server_drain_backend(struct server *srv, const char *host, bool drain)
{
	bool changed = false;
	size_t i;

	pthread_mutex_lock(&srv->mtx);
	i = drained_find(srv, host);
	if (drain && i == srv->ndrained) {
		srv->drained = xrealloc(srv->drained,
		    (srv->ndrained + 1) * sizeof(*srv->drained));
		srv->drained[srv->ndrained++] = xstrdup(host);
		changed = true;
	} else if (!drain && i < srv->ndrained) {
		free(srv->drained[i]);
		srv->drained[i] = srv->drained[--srv->ndrained];
		changed = true;
	}
	atomic_store_explicit(&srv->ndrained_hint, srv->ndrained,
	    memory_order_relaxed);
	pthread_mutex_unlock(&srv->mtx);
	return changed;
}

bool
server_backend_drained(struct server *srv, const char *host)
{
	bool drained;

	/* Nothing drained, the usual case: no lock on the login path. */
	if (atomic_load_explicit(&srv->ndrained_hint, memory_order_relaxed) == 0)
		return false;
	pthread_mutex_lock(&srv->mtx);
	drained = drained_find(srv, host) < srv->ndrained;
	pthread_mutex_unlock(&srv->mtx);
	return drained;
}

unsigned
worker_kick(struct worker *w, const char *user, char *const *keep,
    size_t nkeep, const char *reason)
{
	struct session *s, *next;
	unsigned n = 0;

	for (s = w->sessions; s != NULL; s = next) {
		bool kept = false;

		next = s->next;
		if (s->state == SESSION_CLOSING || s->user == NULL ||
		    strcmp(s->user, user) != 0)
			continue;
		for (size_t i = 0; i < nkeep && s->backend_host != NULL; i++)
			if (strcasecmp(keep[i], s->backend_host) == 0)
				kept = true;
		if (kept)
			continue;
		session_kick(s, reason);
		n++;
	}
	return n;
}

struct kick_task {
	struct worker	*worker;
	char		*user;
	char		*reason;
	size_t		 nkeep;
	char		*keep[ROUTE_HOSTS_MAX];
};

static void
kick_task_run(void *arg)
{
	struct kick_task *t = arg;
	unsigned n;

	n = worker_kick(t->worker, t->user, t->keep, t->nkeep, t->reason);
	if (n > 0)
		log_info("kicked %u session%s of %s: %s", n, n == 1 ? "" : "s",
		    t->user, t->reason);
	for (size_t i = 0; i < t->nkeep; i++)
		free(t->keep[i]);
	free(t->user);
	free(t->reason);
	free(t);
}

void
server_kick_user(struct server *srv, const char *user, const struct route *keep,
    const char *reason)
{
	for (unsigned i = 0; i < srv->nworkers; i++) {
		struct kick_task *t = xcalloc(1, sizeof(*t));

		t->worker = &srv->workers[i];
		t->user = xstrdup(user);
		t->reason = xstrdup(reason);
		for (size_t k = 0; keep != NULL && k < keep->nhosts; k++)
			t->keep[t->nkeep++] = xstrdup(keep->hosts[k].host);
		loop_post(t->worker->loop, kick_task_run, t);
	}
}

/* The directory's hook: runs on a directory thread, must not block. */
static void
server_user_moved(void *arg, const char *login, const struct route *route)
{
	struct gen *g = arg;

	if (g->server == NULL || g->cfg->directory.on_move != ON_MOVE_KICK)
		return;
	log_info("route of %s changed: closing its sessions elsewhere", login);
	server_kick_user(g->server, login, route,
	    "[UNAVAILABLE] mailbox moved, reconnect");
}

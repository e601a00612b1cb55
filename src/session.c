#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "directory.h"
#include "health.h"
#include "log.h"
#include "proto.h"
#include "relay.h"
#include "resolve.h"
#include "route.h"
#include "server.h"
#include "session.h"
#include "throttle.h"
#include "tls.h"
#include "util.h"

/* Output queued for a client before login: replies are small. */
#define CLIENT_OUT_MAX		(64 * 1024)
/* A backend's greeting and login replies: the longest line must fit. */
#define BACKEND_IN_MAX		(64 * 1024)
/*
 * The login dialogue sent to a backend: the credentials (bounded by
 * limits.line_length, at most doubled by quoting) plus this much for the
 * forwarded ID and the commands around them.
 */
#define BACKEND_OUT_EXTRA	(40 * 1024)
/* The attempted login in logs: a name at the rules' limit, every byte \xHH. */
#define LOGIN_LOG_MAX		(4 * USERNAME_MAX + 1)
/* fail_fields(): the login, an address, a port, the protocol, a backend. */
#define FAIL_FIELDS_MAX		(LOGIN_LOG_MAX + 256)
/* A backend's own words in a log line, escaped (longer ones are cut). */
#define BACKEND_REASON_MAX	256

/*
 * A closing session reads and discards what the client still sends for up
 * to LINGER_MS or LINGER_BYTES, so that its goodbye is not destroyed by the
 * reset a close with unread input makes the kernel send.
 */
#define LINGER_MS		2000
#define LINGER_BYTES		(256 * 1024)

static const char *const state_names[] = {
	[SESSION_PROXY_HEADER] = "PROXY_HEADER",
	[SESSION_GREETING] = "GREETING",
	[SESSION_TLS_HANDSHAKE] = "TLS_HANDSHAKE",
	[SESSION_PREAUTH] = "PREAUTH",
	[SESSION_LOOKUP] = "LOOKUP",
	[SESSION_AUTH_VERIFY] = "AUTH_VERIFY",
	[SESSION_BACKEND_CONNECT] = "BACKEND_CONNECT",
	[SESSION_BACKEND_GREETING] = "BACKEND_GREETING",
	[SESSION_BACKEND_STARTTLS] = "BACKEND_STARTTLS",
	[SESSION_BACKEND_LOGIN] = "BACKEND_LOGIN",
	[SESSION_RELAY] = "RELAY",
	[SESSION_CLOSING] = "CLOSING",
};
_Static_assert(nitems(state_names) == SESSION_STATE_COUNT,
    "state_names must name every session state");

static const struct {
	const char	*name;
	bool		 retryable;	/* client may try again on this connection */
	bool		 temporary;	/* [UNAVAILABLE] / [SYS/TEMP] */
	bool		 next_host;	/* try the route's next address or host */
} fail_table[] = {
	[FAIL_NONE] = { "none", false, false, false },
	[FAIL_BAD_USER] = { "bad-user-name", true, false, false },
	[FAIL_NO_USER] = { "unknown-user", true, false, false },
	[FAIL_AUTH] = { "auth-failed", true, false, false },
	[FAIL_DIR_TEMP] = { "directory-unavailable", true, true, false },
	[FAIL_DIR_TIMEOUT] = { "directory-timeout", true, true, false },
	[FAIL_RESOLVE] = { "backend-unresolvable", true, true, true },
	[FAIL_CONNECT] = { "backend-unreachable", true, true, true },
	[FAIL_BACKEND] = { "backend-failed", true, true, false },
	[FAIL_DRAINED] = { "backend-drained", true, true, false },
	[FAIL_DOWN] = { "backend-down", true, true, true },
	[FAIL_USER_LIMIT] = { "user-session-limit", true, true, false },
};
_Static_assert(nitems(fail_table) == FAIL_COUNT, "fail_table");

static void	client_event(struct watch *w, uint32_t events);
static void	backend_event(struct watch *w, uint32_t events);
static void	session_timeout(struct timer *t);
static void	backend_try_host(struct session *s);
static void	backend_try_addr(struct session *s);
static void	backend_health(struct session *s, const char *error);
static void	session_peer_ip(const struct session *, char *, size_t);
static void	session_update_client(struct session *s);
static void	auth_verify_start(struct session *s);
static void	session_refuse(struct session *s, enum session_fail fail,
		    const char *text, const char *reason);
static void	session_refuse_wait(struct session *s, enum session_fail fail,
		    const char *text, const char *reason, uint64_t wait_ms);
static void	session_fail_later(struct session *s, enum session_fail fail,
		    const char *text, uint64_t delay);
static void	session_to_backend(struct session *s);
static void	session_release_user(struct session *s);
static void	backend_tls_begin(struct session *s);
static void	backend_event(struct watch *w, uint32_t events);
static void	backend_tls_step(struct session *s);
static const char *session_user(const struct session *s);
static const char *fail_fields(const struct session *s, char *out,
		    size_t outlen);
static void	client_tls_step(struct session *s);
static void	session_resume_input(void *arg);
static void	client_work(struct session *s);
static void	backend_work(struct session *s);
static bool	session_linger(struct session *s);
static void	linger_step(struct session *s);
static void	linger_event(struct watch *w, uint32_t events);
static void	linger_end(struct session *s);
static dir_result_cb lookup_done;
static void	session_greet(struct session *s);
static void	proxy_header_step(struct session *s);
static int	backend_send_proxy(struct session *s);
static const struct backend_cfg *current_backend(const struct session *s);

const char *
session_state_name(enum session_state state)
{
	return state_names[state];
}

const char *
session_fail_name(enum session_fail fail)
{
	return fail_table[fail].name;
}

bool
session_fail_retryable(enum session_fail fail)
{
	return fail_table[fail].retryable;
}

bool
session_fail_temporary(enum session_fail fail)
{
	return fail_table[fail].temporary;
}

void
session_enter_state(struct session *s, enum session_state state)
{
	log_debug("session %s: %s -> %s", s->peer, state_names[s->state],
	    state_names[state]);
	s->state = state;
}

static bool
session_alive(const struct session *s)
{
	return s->state != SESSION_CLOSING;
}

static size_t
backend_out_max(const struct config *cfg)
{
	return (size_t)cfg->limits.line_length * 2 + BACKEND_OUT_EXTRA;
}

/* Waiting for the backend's greeting or a reply to the login dialogue. */
static bool
backend_talking(const struct session *s)
{
	return s->state == SESSION_BACKEND_GREETING ||
	    s->state == SESSION_BACKEND_LOGIN;
}

void
session_start(struct worker *w, struct gen *gen, const struct listen_cfg *listen,
    int fd, const struct sockaddr *peer, bool per_ip_counted)
{
	struct session *s = xcalloc(1, sizeof(*s));
	const struct config *cfg = gen->cfg;
	socklen_t llen = sizeof(s->local_addr);
	size_t inmax = cfg->limits.line_length + 2;
	unsigned char rnd[8];

	s->worker = w;
	s->loop = w->loop;
	s->gen = gen_ref(gen);
	s->cfg = cfg;
	s->listen = listen;
	s->proto = listen->proto == PROTO_IMAP ? &imap_proto :
	    listen->proto == PROTO_SIEVE ? &sieve_proto : &pop3_proto;
	s->state = SESSION_GREETING;
	s->started_ms = loop_now(s->loop);
	s->since = time(NULL);
	sockaddr_format(peer, s->peer, sizeof(s->peer));
	memcpy(&s->peer_addr, peer, peer->sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	if (getsockname(fd, &s->local_addr.sa, &llen) < 0)
		memset(&s->local_addr, 0, sizeof(s->local_addr));
	arc4random_buf(rnd, sizeof(rnd));
	for (size_t i = 0; i < sizeof(rnd); i++)
		snprintf(s->id + 2 * i, 3, "%02x", rnd[i]);
	s->per_ip_counted = per_ip_counted;
	if (listen->default_domain != NULL) {
		str_copy(s->domain, listen->default_domain, sizeof(s->domain));
		s->has_domain = true;
	}
	s->cmd_credit = SESSION_PREAUTH_BURST * 1000;
	s->cmd_stamp_ms = s->started_ms;
	/* A PROXY header is read into the input buffer: it must fit. */
	if (listen->proxy_protocol && inmax < PROXY_HEADER_MAX)
		inmax = PROXY_HEADER_MAX;
	conn_init(&s->client, fd, inmax, CLIENT_OUT_MAX, client_event, s);
	conn_init(&s->backend, -1, BACKEND_IN_MAX, backend_out_max(cfg),
	    backend_event, s);
	timer_init(&s->timer, session_timeout, s);
	worker_add_session(w, s);

	if (listen->proxy_protocol) {
		session_enter_state(s, SESSION_PROXY_HEADER);
		loop_timer_in(s->loop, &s->timer,
		    (uint64_t)cfg->timeouts.proxy_header * 1000);
		session_update_client(s);
		return;
	}
	session_greet(s);
}

/*
 * The domain for logins without one, from a server name (the TLS server
 * name, the local address's DNS name): a name that is no host name is
 * ignored, and the listener's default stays.
 */
static void
session_domain_from(struct session *s, const char *what, const char *name)
{
	char domain[sizeof(s->domain)], shown[LOGIN_LOG_MAX];
	const char *error;

	if (domain_from_host(name, strlen(name), domain, sizeof(domain),
	    &error) < 0) {
		const char *fallback = s->has_domain ? s->domain :
		    s->cfg->username.default_domain;

		log_info("session %s: %s \"%s\" ignored: %s; domain=%s", s->peer,
		    what, log_escape(shown, sizeof(shown), name, strlen(name)),
		    error, fallback[0] != '\0' ? fallback : "-");
		return;
	}
	str_copy(s->domain, domain, sizeof(s->domain));
	s->has_domain = true;
	log_debug("session %s: domain %s from %s %s", s->peer, s->domain,
	    what, name);
}

static void	local_name_done(void *, const char *, const char *);

/* Ask for the local address's name now: it is likely known by the login. */
static void
local_name_ask(struct session *s)
{
	if (s->local_name != NULL || s->local_name_known)
		return;
	if (s->local_addr.sa.sa_family == AF_UNSPEC) {
		s->local_name_known = true;	/* no address, no name */
		return;
	}
	s->local_name = resolve_name_start(s->loop, &s->local_addr.sa,
	    local_name_done, s);
}

static void
local_name_done(void *arg, const char *name, const char *error)
{
	struct session *s = arg;

	s->local_name = NULL;
	if (name == NULL) {
		char f[FAIL_FIELDS_MAX];

		/*
		 * Not knowing the name is not knowing the user's domain: the
		 * login fails for now, and the next one asks again.
		 */
		if (s->login_waits) {
			s->login_waits = false;
			log_warning("login failed %s reason=\"DNS name of the local "
			    "address: %s\"", fail_fields(s, f, sizeof(f)), error);
			session_backend_failed(s, FAIL_DIR_TEMP, NULL);
		}
		return;
	}
	s->local_name_known = true;
	session_domain_from(s, "local address name", name);
	if (s->login_waits) {
		s->login_waits = false;
		session_login(s);
	}
}

/* The client is known: start the login timeout and greet (after TLS). */
static void
session_greet(struct session *s)
{
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.login * 1000);
	if (s->listen->domain_from == DOMAIN_FROM_LOCAL_NAME)
		local_name_ask(s);
	if (s->listen->tls == TLS_MODE_IMPLICIT) {
		/* The greeting waits for the handshake. */
		s->greet_after_tls = true;
		session_enter_state(s, SESSION_TLS_HANDSHAKE);
		client_tls_step(s);
		return;
	}
	s->proto->start(s, true);
	session_enter_state(s, SESSION_PREAUTH);
	session_update_client(s);
}

/* Take the PROXY header's source as the client, counting it for limits.per_ip. */
static bool
proxy_adopt(struct session *s, const struct proxy_header *h)
{
	char real[sizeof(s->peer)];
	unsigned limit = s->cfg->limits.per_ip;
	const struct sockaddr *who = h->local ? &s->peer_addr.sa : &h->src.sa;

	if (!per_ip_acquire(s->worker->server, who, limit)) {
		if (!h->local)
			sockaddr_format(who, s->peer, sizeof(s->peer));
		s->proto->bye(s, "Too many connections, try again later");
		s->worker->metrics.refused[REFUSED_PER_IP]++;
		session_close(s, "limits.per_ip reached");
		return false;
	}
	s->per_ip_counted = limit > 0;
	if (h->local) {
		log_debug("session %s: PROXY v%d header without an address",
		    s->peer, h->version);
		return true;
	}
	str_copy(real, s->peer, sizeof(real));
	memcpy(&s->peer_addr, &h->src, h->src.sa.sa_family == AF_INET6 ?
	    sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in));
	memcpy(&s->local_addr, &h->dst, sizeof(s->local_addr));
	sockaddr_format(&s->peer_addr.sa, s->peer, sizeof(s->peer));
	log_info("proxied connection client=%s via=%s proxy=v%d session=%s",
	    s->peer, real, h->version, s->id);
	return true;
}

/*
 * SESSION_PROXY_HEADER: the header is taken from the socket without
 * reading a byte past it (MSG_PEEK, then exactly its length): what follows
 * may be a TLS ClientHello that OpenSSL must read itself.  Bytes before the
 * header's end all belong to it, so whatever an incomplete header showed is
 * consumed into the input buffer and the socket never stays readable
 * without progress.
 */
static void
proxy_header_step(struct session *s)
{
	struct conn *c = &s->client;
	struct proxy_header h;
	const char *error;
	size_t have = buf_len(&c->in), avail, take;
	char *p;
	ssize_t n;
	int rc;

	if (buf_reserve(&c->in, PROXY_HEADER_MAX - have, &p, &avail) < 0) {
		session_close(s, "out of memory");
		return;
	}
	if (avail > PROXY_HEADER_MAX - have)
		avail = PROXY_HEADER_MAX - have;	/* the most a header can still need */
	do
		n = recv(c->fd, p, avail, MSG_PEEK);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		session_update_client(s);
		return;
	}
	if (n <= 0) {
		session_close(s, n == 0 ? "client closed before the PROXY header" :
		    "client read error");
		return;
	}
	buf_commit(&c->in, (size_t)n);
	rc = proxy_header_parse(buf_head(&c->in), buf_len(&c->in), &h, &error);
	if (rc < 0) {
		log_limited(&s->worker->server->log_proxy, LOG_EVERY_MS,
		    LOG_LVL_WARNING, "PROXY header refused on %s from %s: %s",
		    s->listen->address, s->peer, error);
		s->worker->metrics.refused[REFUSED_PROXY_HEADER]++;
		session_close(s, "bad PROXY header");
		return;
	}
	take = rc == 1 ? h.len - have : (size_t)n;
	do
		n = recv(c->fd, p, take, 0);
	while (n < 0 && errno == EINTR);
	if (n < 0 || (size_t)n != take) {
		session_close(s, "client read error");
		return;
	}
	if (rc == 0) {
		session_update_client(s);
		return;
	}
	buf_wipe(&c->in);
	if (!proxy_adopt(s, &h))
		return;
	session_greet(s);
}

bool
session_starttls_offered(const struct session *s)
{
	return !s->client_tls && (s->listen->tls == TLS_MODE_STARTTLS ||
	    s->listen->tls == TLS_MODE_REQUIRED);
}

bool
session_tls_required(const struct session *s)
{
	return !s->client_tls && s->listen->tls == TLS_MODE_REQUIRED;
}

void
session_starttls(struct session *s)
{
	/* CVE-2011-0411 class: nothing sent before the handshake counts. */
	buf_wipe(&s->client.in);
	s->skipping = false;
	session_enter_state(s, SESSION_TLS_HANDSHAKE);
}

/* domain_from "sni": the host name the client asked for, if it sent one. */
static void
session_sni_domain(struct session *s)
{
	const char *sni = SSL_get_servername(s->client.ssl,
	    TLSEXT_NAMETYPE_host_name);

	if (sni != NULL)
		session_domain_from(s, "TLS server name", sni);
}

/*
 * Client TLS: flush the plaintext "go ahead", start TLS, drive the
 * handshake.  Called on every client event in SESSION_TLS_HANDSHAKE.
 */
static void
client_tls_step(struct session *s)
{
	char e[256];
	int rc;

	if (buf_len(&s->client.out) > 0) {
		if ((rc = conn_flush(&s->client)) < 0) {
			session_close(s, "client write error");
			return;
		}
		if (rc == 0) {
			session_update_client(s);
			return;
		}
	}
	if (s->client.ssl == NULL &&
	    conn_tls_start(&s->client, s->gen->tls.server, true) < 0) {
		session_close(s, "cannot start TLS");
		return;
	}
	if ((rc = conn_tls_handshake(&s->client)) == 0) {
		session_update_client(s);
		return;
	}
	if (rc < 0) {
		/* An EOF leaves no OpenSSL error: say what happened instead. */
		log_info("client TLS handshake failed client=%s proto=%s "
		    "reason=\"%s\"", s->peer, s->proto->name, s->client.eof ?
		    "client closed the connection" : tls_error(e, sizeof(e)));
		s->worker->metrics.tls[TLS_SIDE_CLIENT][0]++;
		session_close(s, s->client.eof ?
		    "client closed during the TLS handshake" : "TLS handshake failed");
		return;
	}
	s->client_tls = true;
	s->worker->metrics.tls[TLS_SIDE_CLIENT][1]++;
	if (s->listen->domain_from == DOMAIN_FROM_SNI)
		session_sni_domain(s);
	session_enter_state(s, SESSION_PREAUTH);
	/* After STARTTLS the client starts over (RFC 3501 6.2.1, RFC 2595). */
	if (s->proto_state != NULL)
		s->proto->free(s);
	s->proto->start(s, s->greet_after_tls);
	s->greet_after_tls = false;
	/* Records that came with the handshake are already inside OpenSSL. */
	s->client.readable = true;
	client_work(s);
}

/* Set client interest for the current state; flush what we can first. */
static void
session_update_client(struct session *s)
{
	bool reading;

	if (!session_alive(s))
		return;
	if (buf_len(&s->client.out) > 0 && conn_flush(&s->client) < 0) {
		session_close(s, "client write error");
		return;
	}
	if (s->state == SESSION_TLS_HANDSHAKE && s->client.ssl == NULL &&
	    buf_len(&s->client.out) == 0) {
		/* The STARTTLS reply is out: begin the handshake. */
		client_tls_step(s);
		return;
	}
	/*
	 * Keep reading while a login is under way, too: what the client
	 * pipelines behind its login waits in the (bounded) input buffer for
	 * the backend, and an early close is noticed at once.  Staying
	 * registered for input also spares an epoll_ctl per login.
	 */
	reading = s->state != SESSION_PREAUTH ||
	    buf_len(&s->client.out) < SESSION_CLIENT_BACKLOG;
	if (conn_update(&s->client, s->loop, reading) < 0)
		session_close(s, "epoll failure");
}

static void
session_update_backend(struct session *s)
{
	if (!session_alive(s) || s->backend.fd < 0)
		return;
	if (buf_len(&s->backend.out) > 0 && conn_flush(&s->backend) < 0) {
		session_backend_failed(s, FAIL_BACKEND, NULL);
		return;
	}
	if (conn_update(&s->backend, s->loop, true) < 0)
		session_backend_failed(s, FAIL_BACKEND, NULL);
}

static void
session_free(void *arg)
{
	struct session *s = arg;

	session_release_user(s);
	worker_remove_session(s->worker, s);
	gen_unref(&s->gen);
	free(s->delayed_text);
	free(s->user);
	free(s->login);
	free(s->backend_host);
	free(s);
}

/*
 * Close the client's side gently: flush what is queued (a goodbye), shut
 * the sending side, then read and discard what the client still sends,
 * for a moment.  Closing a socket that holds unread input makes the kernel
 * answer with a reset, and a reset can destroy the goodbye on its way.
 * False when there is nothing to wait for: close at once.
 */
static bool
session_linger(struct session *s)
{
	struct conn *c = &s->client;

	if (c->fd < 0)
		return false;
	buf_wipe(&c->in);
	if (buf_len(&c->out) > 0 && conn_flush(c) < 0)
		return false;
	if (c->eof && buf_len(&c->out) == 0)
		return false;		/* read to the end, nothing left to say */
	s->lingering = true;
	s->linger_bytes = 0;
	c->watch.cb = linger_event;
	loop_timer_in(s->loop, &s->timer, LINGER_MS);
	linger_step(s);
	return true;
}

static void
linger_step(struct session *s)
{
	struct conn *c = &s->client;
	char sink[4096];
	int rc;

	if (buf_len(&c->out) > 0) {
		if ((rc = conn_flush(c)) < 0) {
			linger_end(s);
			return;
		}
		if (rc == 0) {
			if (loop_watch(s->loop, &c->watch, EPOLLOUT | EPOLLIN |
			    EPOLLRDHUP) < 0)
				linger_end(s);
			return;
		}
	}
	if (!s->linger_shut) {
		/* A close_notify, if the socket takes it now; never wait. */
		if (c->ssl != NULL && SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);
		(void)shutdown(c->fd, SHUT_WR);
		s->linger_shut = true;
	}
	/* Raw bytes, TLS or not: nobody reads them. */
	for (;;) {
		ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

		if (n > 0) {
			s->linger_bytes += (size_t)n;
			if (s->linger_bytes > LINGER_BYTES) {
				linger_end(s);
				return;
			}
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		linger_end(s);		/* the client's EOF, or an error */
		return;
	}
	if (loop_watch(s->loop, &c->watch, EPOLLIN | EPOLLRDHUP) < 0)
		linger_end(s);
}

static void
linger_event(struct watch *w, uint32_t events)
{
	struct session *s = w->arg;

	if (events & EPOLLERR) {
		linger_end(s);
		return;
	}
	linger_step(s);
}

static void
linger_end(struct session *s)
{
	if (!s->lingering)
		return;
	s->lingering = false;
	loop_timer_cancel(s->loop, &s->timer);
	conn_close(&s->client, s->loop);
	loop_post(s->loop, session_free, s);
}

void
session_abort(struct session *s)
{
	session_shutdown(s, "Server shutting down");
	linger_end(s);
}

static const char *
session_user(const struct session *s)
{
	return s->user != NULL ? s->user : "-";
}

void
session_close(struct session *s, const char *outcome)
{
	uint64_t ms;

	if (!session_alive(s))
		return;
	ms = loop_now(s->loop) - s->started_ms;
	log_info("session end client=%s proto=%s user=%s backend=%s in=%llu "
	    "out=%llu duration=%llu.%03llus state=%s outcome=\"%s\"",
	    s->peer, s->proto->name, session_user(s),
	    s->backend_name[0] ? s->backend_name : "-",
	    (unsigned long long)s->bytes_in, (unsigned long long)s->bytes_out,
	    (unsigned long long)(ms / 1000), (unsigned long long)(ms % 1000),
	    state_names[s->state], outcome);
	session_enter_state(s, SESSION_CLOSING);
	session_release_user(s);
	loop_timer_cancel(s->loop, &s->timer);
	dir_request_cancel(&s->lookup);
	resolve_cancel(&s->resolving);
	resolve_cancel(&s->local_name);
	if (s->relay != NULL)
		relay_free(s);
	if (s->proto_state != NULL)
		s->proto->free(s);
	sasl_creds_clear(&s->creds);
	route_unref(&s->route);
	free(s->addrs);
	s->addrs = NULL;
	conn_close(&s->backend, s->loop);
	/*
	 * A lingering client's socket still holds a descriptor: it counts
	 * against limits.connections and limits.per_ip until session_free
	 * (at most LINGER_MS), so closing sessions fast cannot pile sockets
	 * up past the caps.  Any other closed session stops counting now.
	 */
	if (session_linger(s))
		return;
	worker_release_connection(s->worker, s);
	conn_close(&s->client, s->loop);
	/* Callers up the stack may still look at s: free it after they return. */
	loop_post(s->loop, session_free, s);
}

void
session_kick(struct session *s, const char *reason)
{
	if (!session_alive(s))
		return;
	if (s->state != SESSION_RELAY) {
		session_shutdown(s, reason);
		return;
	}
	conn_close(&s->backend, s->loop);
	relay_salvage(s);
	if (s->listen->proto == PROTO_IMAP) {
		/* Room for the goodbye, whatever the relay left queued. */
		s->client.out.max += strlen(reason) + 16;
		s->proto->bye(s, reason);
	}
	session_close(s, "kicked");
}

void
session_shutdown(struct session *s, const char *text)
{
	if (!session_alive(s))
		return;
	/* Before the PROXY header the peer is a balancer, not a client. */
	if (s->state != SESSION_RELAY && s->state != SESSION_PROXY_HEADER)
		s->proto->bye(s, text);
	session_close(s, text);
}

bool
session_count_command(struct session *s)
{
	if (!session_pace(s, loop_now(s->loop))) {
		s->proto->bye(s, "Too many commands before login");
		session_close(s, "too many commands before login");
		return false;
	}
	return true;
}

void
session_bad_command(struct session *s)
{
	if (++s->bad_commands >= s->cfg->limits.bad_commands) {
		s->proto->bye(s, "Too many invalid commands");
		session_close(s, "too many invalid commands");
	}
}

/* Client socket events before the relay. */
static void
client_event(struct watch *w, uint32_t events)
{
	struct session *s = w->arg;

	if (events & (EPOLLERR | EPOLLHUP)) {
		/* A reset: nobody is left to answer. */
		session_close(s, "client connection reset");
		return;
	}
	if (s->state == SESSION_PROXY_HEADER) {
		proxy_header_step(s);
		return;
	}
	if (s->state == SESSION_TLS_HANDSHAKE) {
		client_tls_step(s);
		return;
	}
	if ((events & EPOLLOUT) && conn_flush(&s->client) < 0) {
		session_close(s, "client write error");
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP))
		s->client.readable = true;
	client_work(s);
}

/*
 * Read what the client sent (as far as the input buffer takes it) and,
 * before login, let the protocol answer it.  During a login input is only
 * buffered: it goes to the backend once the relay starts.  An EOF is a
 * half-close, never an error: the client may still read the answers.
 * Loops while input may be waiting that no event would announce (a full
 * buffer was emptied, or TLS holds decrypted bytes).
 */
static void
client_work(struct session *s)
{
	struct conn *c = &s->client;

	while (session_alive(s) && s->state != SESSION_TLS_HANDSHAKE) {
		bool preauth = s->state == SESSION_PREAUTH;

		if (c->readable && !c->eof && buf_room(&c->in) > 0 &&
		    conn_read(c) < 0) {
			session_close(s, "client read error");
			return;
		}
		if (!preauth)
			break;
		if (buf_len(&c->in) > 0 && session_can_answer(s))
			s->proto->client_input(s);
		if (s->state != SESSION_PREAUTH)
			continue;
		if (!session_can_answer(s)) {
			/*
			 * Replies back up.  Write them now: what waits behind
			 * them may sit in the input buffer or inside TLS, where
			 * no event would announce it once the socket drained.
			 */
			if (conn_flush(c) < 0) {
				session_close(s, "client write error");
				return;
			}
			if (session_can_answer(s))
				continue;
			break;		/* replies unread: EPOLLOUT resumes us */
		}
		if (c->eof) {
			/* Every complete command is answered; no more will come. */
			session_close(s, "client closed before login");
			return;
		}
		if (!c->readable || buf_room(&c->in) == 0)
			break;
	}
	/* After STARTTLS this flushes the go-ahead and starts the handshake. */
	session_update_client(s);
}

void
session_login(struct session *s)
{
	const struct config *cfg = s->cfg;
	struct username name;
	struct dir_client client = { .attempt = s->auth_failures + 1 };
	char ip[INET6_ADDRSTRLEN];
	const char *error;
	char login[LOGIN_LOG_MAX];

	free(s->login);
	s->login = xstrdup(log_escape(login, sizeof(login), s->creds.authcid,
	    s->creds.authcid_len));
	if (s->listen->domain_from == DOMAIN_FROM_LOCAL_NAME &&
	    !s->local_name_known) {
		/* The domain is not known yet: the login waits for it. */
		local_name_ask(s);
		s->login_waits = true;
		session_enter_state(s, SESSION_LOOKUP);
		loop_timer_in(s->loop, &s->timer,
		    (uint64_t)cfg->timeouts.lookup * 1000);
		return;
	}
	if (username_normalise_domain(&cfg->username, s->has_domain ?
	    s->domain : NULL, s->creds.authcid, s->creds.authcid_len, &name,
	    &error) < 0) {
		free(s->user);
		s->user = NULL;
		session_refuse(s, FAIL_BAD_USER, NULL, error);
		return;
	}
	session_enter_state(s, SESSION_LOOKUP);
	loop_timer_in(s->loop, &s->timer, (uint64_t)cfg->timeouts.lookup * 1000);
	s->user = xstrdup(name.full);
	s->lookup_us = clock_us();
	session_peer_ip(s, ip, sizeof(ip));
	client.addr = ip;
	/* The password leaves the session only for a service that asks for it. */
	if (cfg->directory.http.pass_password && config_dir_uses(cfg, DIR_TYPE_HTTP))
		client.password = s->creds.password;
	s->lookup = directory_lookup_client(s->gen->dir, s->loop, &name,
	    s->listen->proto, &client, lookup_done, s);
}

/* The lookup's time and what the route cache did, for the metrics. */
static void
lookup_count(struct session *s, enum dir_cache_result cache)
{
	struct worker_metrics *m = &s->worker->metrics;

	metrics_observe_lookup(m, clock_us() - s->lookup_us);
	switch (cache) {
	case DIR_CACHE_NONE:
		break;
	case DIR_CACHE_HIT:
		m->cache[CACHE_HIT]++;
		break;
	case DIR_CACHE_NEGATIVE:
		m->cache[CACHE_NEGATIVE_HIT]++;
		break;
	case DIR_CACHE_MISS:
		m->cache[CACHE_MISS]++;
		break;
	case DIR_CACHE_STALE:
		m->cache[CACHE_STALE]++;
		break;
	}
}

static void
lookup_done(void *arg, enum dir_status status, struct route *route,
    const char *detail)
{
	struct session *s = arg;
	char f[FAIL_FIELDS_MAX];
	/* A refusal's wait the directory asked for (http: Auth-Wait). */
	uint64_t wait_ms = dir_request_wait(s->lookup);

	lookup_count(s, dir_request_cache_result(s->lookup));
	s->lookup = NULL;
	switch (status) {
	case DIR_OK:
		log_debug("session %s: route for %s from %s", s->peer,
		    s->user, detail);
		s->route = route;
		s->host_idx = s->addr_idx = 0;
		if (s->cfg->auth.verify == AUTH_VERIFY_LDAP_BIND) {
			auth_verify_start(s);
			return;
		}
		session_to_backend(s);
		return;
	case DIR_NOT_FOUND: {
		char reason[256];

		snprintf(reason, sizeof(reason), "unknown user: %s", detail);
		session_refuse_wait(s, FAIL_NO_USER, NULL, reason, wait_ms);
		return;
	}
	case DIR_TEMPFAIL:
		log_warning("login failed %s reason=\"directory: %s\"%s",
		    fail_fields(s, f, sizeof(f)), detail, wait_ms > 0 ?
		    " (the answer waits as asked)" : "");
		if (wait_ms > 0)
			session_fail_later(s, FAIL_DIR_TEMP, NULL, wait_ms);
		else
			session_backend_failed(s, FAIL_DIR_TEMP, NULL);
		return;
	}
}

static void	backend_next_host(struct session *s);

/*
 * Who waits how long before a refusal.  With auth.verify set, the proxy
 * decided it and it waits auth.failure_delay, as always.  With
 * limits.throttle, every refusal counts against the client's address (an
 * IPv6 client's /64: one host has them all) and the user, in tables shared
 * by all workers; after the first, each waits twice as long as the one
 * before, from auth.failure_delay (or 1 s), up to limits.throttle_max.
 * Logins that succeed never wait.
 */
static uint64_t
session_refusal_delay(struct session *s, enum session_fail fail)
{
	const struct config *cfg = s->cfg;
	struct server *srv = s->worker->server;
	uint64_t base = (uint64_t)(cfg->auth.failure_delay > 0 ?
	    cfg->auth.failure_delay : 1) * 1000;
	uint64_t delay = 0, now = loop_now(s->loop);
	unsigned char key[16];
	size_t keylen;
	unsigned prior, by_user;

	if (fail == FAIL_USER_LIMIT)
		return 0;
	if (cfg->auth.verify != AUTH_VERIFY_NONE &&
	    (fail == FAIL_NO_USER || fail == FAIL_AUTH))
		delay = (uint64_t)cfg->auth.failure_delay * 1000;
	if (!cfg->limits.throttle)
		return delay;

	const struct throttle_params p = {
		(uint64_t)cfg->limits.throttle_window * 1000,
		cfg->limits.throttle_entries
	};
	if (s->peer_addr.sa.sa_family == AF_INET6) {
		memcpy(key, &s->peer_addr.in6.sin6_addr, 8);
		keylen = 8;
	} else {
		memcpy(key, &s->peer_addr.in.sin_addr, 4);
		keylen = 4;
	}
	prior = throttle_fail(srv->throttle_addr, key, keylen, now, &p);
	if (s->user != NULL) {
		by_user = throttle_fail(srv->throttle_user, s->user,
		    strlen(s->user), now, &p);
		if (by_user > prior)
			prior = by_user;
	}
	base = throttle_delay_ms(prior, base,
	    (uint64_t)cfg->limits.throttle_max * 1000);
	return base > delay ? base : delay;
}

/* The client's address without the port: fail2ban's <HOST>. */
static void
session_peer_ip(const struct session *s, char *out, size_t outlen)
{
	if (s->peer_addr.sa.sa_family == AF_INET6)
		inet_ntop(AF_INET6, &s->peer_addr.in6.sin6_addr, out, outlen);
	else if (s->peer_addr.sa.sa_family == AF_INET)
		inet_ntop(AF_INET, &s->peer_addr.in.sin_addr, out, outlen);
	else
		str_copy(out, "unknown", outlen);
}

/*
 * The fields every failure line starts with:
 *
 *   client=ADDR:PORT user="LOGIN" proto=P [backend=ADDR:PORT]
 *
 * LOGIN is the login the client attempted, escaped (log_escape()), not the
 * normalised name: what was typed is what an operator searches for, and a
 * name that fails the rules has no normalised form.  backend= is the store
 * being tried, when there is one.
 */
static const char *
fail_fields(const struct session *s, char *out, size_t outlen)
{
	snprintf(out, outlen, "client=%s user=\"%s\" proto=%s%s%s", s->peer,
	    s->login != NULL ? s->login : "", s->proto->name,
	    s->backend_name[0] != '\0' ? " backend=" : "", s->backend_name);
	return out;
}

/*
 * A login is refused: a wrong password, an unknown or malformed user name,
 * limits.per_user.  One log line, whose form is stable for fail2ban
 * (contrib/fail2ban/postern.conf, doc/design.md):
 *
 *   login refused client=ADDR:PORT user="LOGIN" proto=P [backend=ADDR:PORT]
 *     reason="TEXT" delay=S.MMMs rip=ADDR
 *
 * then the reply, once the throttle's delay has passed on the session's
 * timer.  text is the backend's reason, for the client.
 */
static void
session_refuse(struct session *s, enum session_fail fail, const char *text,
    const char *reason)
{
	session_refuse_wait(s, fail, text, reason, 0);
}

/*
 * The same when the directory asked for a wait of its own: the longer of
 * the two is kept (the throttle still counts the refusal).
 */
static void
session_refuse_wait(struct session *s, enum session_fail fail,
    const char *text, const char *reason, uint64_t wait_ms)
{
	char ip[INET6_ADDRSTRLEN], f[FAIL_FIELDS_MAX];
	uint64_t delay = session_refusal_delay(s, fail);

	if (delay < wait_ms)
		delay = wait_ms;
	session_peer_ip(s, ip, sizeof(ip));
	log_warning("login refused %s reason=\"%s\" delay=%llu.%03llus rip=%s",
	    fail_fields(s, f, sizeof(f)), reason,
	    (unsigned long long)(delay / 1000), (unsigned long long)(delay % 1000),
	    ip);
	s->refusing = true;
	session_release_user(s);
	if (delay == 0) {
		session_backend_failed(s, fail, text);
		return;
	}
	session_fail_later(s, fail, text, delay);
}

/*
 * Answer the client's login with `fail` after `delay` ms, on the session's
 * timer (see session_timeout); nothing but the client is held meanwhile.
 */
static void
session_fail_later(struct session *s, enum session_fail fail, const char *text,
    uint64_t delay)
{
	conn_close(&s->backend, s->loop);
	dir_request_cancel(&s->lookup);
	resolve_cancel(&s->resolving);
	route_unref(&s->route);
	free(s->addrs);
	s->addrs = NULL;
	sasl_creds_clear(&s->creds);
	s->delayed_fail = fail;
	free(s->delayed_text);
	s->delayed_text = text != NULL ? xstrdup(text) : NULL;
	session_enter_state(s, SESSION_AUTH_VERIFY);
	loop_timer_in(s->loop, &s->timer, delay);
}

static void
session_release_user(struct session *s)
{
	if (!s->per_user_counted)
		return;
	per_user_release(s->worker->server, s->user);
	s->per_user_counted = false;
}

/* The login goes on to a backend: count it against limits.per_user first. */
static void
session_to_backend(struct session *s)
{
	unsigned cap = s->cfg->limits.per_user;

	if (cap > 0 && !s->per_user_counted) {
		if (!per_user_acquire(s->worker->server, s->user, cap)) {
			route_unref(&s->route);
			session_refuse(s, FAIL_USER_LIMIT, NULL,
			    "limits.per_user reached");
			return;
		}
		s->per_user_counted = true;
	}
	backend_try_host(s);
}

static void
verify_done(void *arg, enum dir_status status, struct route *unused,
    const char *detail)
{
	struct session *s = arg;
	char f[FAIL_FIELDS_MAX];

	s->lookup = NULL;
	switch (status) {
	case DIR_OK:
		session_to_backend(s);
		return;
	case DIR_NOT_FOUND: {
		char reason[256];

		snprintf(reason, sizeof(reason), "directory: %s", detail);
		session_refuse(s, FAIL_AUTH, NULL, reason);
		return;
	}
	case DIR_TEMPFAIL:
		log_warning("login failed %s reason=\"password check: %s\"",
		    fail_fields(s, f, sizeof(f)), detail);
		session_backend_failed(s, FAIL_DIR_TEMP, NULL);
		return;
	}
}

/* auth.verify = "ldap-bind": the directory checks the password first. */
static void
auth_verify_start(struct session *s)
{
	char f[FAIL_FIELDS_MAX];

	if (s->route->dn == NULL) {
		log_warning("login failed %s reason=\"the route has no directory "
		    "entry to bind as\"", fail_fields(s, f, sizeof(f)));
		session_backend_failed(s, FAIL_DIR_TEMP, NULL);
		return;
	}
	session_enter_state(s, SESSION_AUTH_VERIFY);
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.lookup * 1000);
	s->lookup = directory_verify(s->gen->dir, s->loop, s->route->dn,
	    s->creds.password, verify_done, s);
}

static void
backend_addrs_ready(struct session *s, struct addr_list *addrs)
{
	free(s->addrs);
	s->addrs = addrs;
	s->addr_pos = 0;
	backend_try_addr(s);
}

static void
resolve_done(void *arg, struct addr_list *addrs, const char *error)
{
	struct session *s = arg;
	const struct route_host *h = &s->route->hosts[s->host_idx];
	char f[FAIL_FIELDS_MAX];

	s->resolving = NULL;
	if (addrs == NULL) {
		/* The name stands for the store until an address is tried. */
		str_copy(s->backend_name, h->host, sizeof(s->backend_name));
		log_warning("backend unresolvable %s reason=\"%s\"",
		    fail_fields(s, f, sizeof(f)), error);
		metrics_connect_failed(&s->worker->metrics, h->host);
		s->last_fail = FAIL_RESOLVE;
		backend_next_host(s);
		backend_try_host(s);
		return;
	}
	backend_addrs_ready(s, addrs);
}

/* Move on to the next address of a named backend, or the route's next host. */
static void
backend_next_host(struct session *s)
{
	const struct backend_cfg *b = config_backend(s->cfg,
	    s->route->hosts[s->host_idx].host);

	if (b != NULL && s->addr_idx + 1 < b->naddresses) {
		s->addr_idx++;
		return;
	}
	s->addr_idx = 0;
	s->host_idx++;
}

/*
 * Try route->hosts[host_idx], or fail when the route is exhausted.  A host
 * that names a backend in the config stands for that backend's addresses.
 */
static void
backend_try_host(struct session *s)
{
	const struct route_host *h;
	const struct backend_cfg *b;
	enum proto_id proto = s->listen->proto;
	struct addr_list *addrs;
	char f[FAIL_FIELDS_MAX];
	const char *host;
	uint16_t port;

	while (s->host_idx < s->route->nhosts && server_backend_drained(
	    s->worker->server, s->route->hosts[s->host_idx].host)) {
		s->host_idx++;
		s->addr_idx = 0;
		if (s->last_fail == FAIL_NONE && s->host_idx == s->route->nhosts) {
			log_warning("login failed %s reason=\"every backend host "
			    "of the route is drained\"", fail_fields(s, f, sizeof(f)));
			s->last_fail = FAIL_DRAINED;
		}
	}
	if (s->host_idx >= s->route->nhosts) {
		session_backend_failed(s, s->last_fail != FAIL_NONE ?
		    s->last_fail : FAIL_CONNECT, NULL);
		return;
	}
	h = &s->route->hosts[s->host_idx];
	b = config_backend(s->cfg, h->host);
	host = b != NULL ? b->addresses[s->addr_idx] : h->host;
	port = h->port && s->cfg->directory.port_for[proto] ? h->port :
	    b != NULL && b->port[proto] ? b->port[proto] :
	    s->cfg->backend.port[proto];
	session_enter_state(s, SESSION_BACKEND_CONNECT);
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.connect * 1000);
	if (resolve_numeric(host, port, &addrs) == 0) {
		backend_addrs_ready(s, addrs);
		return;
	}
	s->resolving = resolve_start(s->loop, host, port, resolve_done, s);
}

/* The next address of this host, or the next host. */
static void
backend_next_addr(struct session *s)
{
	if (s->addrs != NULL && s->addr_pos + 1 < s->addrs->n) {
		s->addr_pos++;
		backend_try_addr(s);
		return;
	}
	backend_next_host(s);
	backend_try_host(s);
}

/*
 * Give up the address being tried, before anything of the login went to
 * it: count it, tell the health table, close, and try the next address or
 * host.  The route's hosts and their addresses bound how often.
 */
static void
backend_give_up(struct session *s, const char *why)
{
	metrics_connect_failed(&s->worker->metrics,
	    s->route->hosts[s->host_idx].host);
	/* A socket that never was is our trouble, not the backend's. */
	if (s->backend.fd >= 0)
		backend_health(s, why);
	conn_close(&s->backend, s->loop);
	s->last_fail = FAIL_CONNECT;
	backend_next_addr(s);
}

static void
backend_connect_failed(struct session *s, const char *why)
{
	char f[FAIL_FIELDS_MAX];

	log_warning("backend connect failed %s reason=\"%s\"",
	    fail_fields(s, f, sizeof(f)), why);
	backend_give_up(s, why);
}

/* Connected, and no greeting taken yet (none, a bad one, TLS before it). */
static bool
backend_before_greeting(const struct session *s)
{
	return !s->backend_greeted && (s->state == SESSION_BACKEND_GREETING ||
	    s->state == SESSION_BACKEND_STARTTLS);
}

/*
 * The backend took the connection but gave no greeting: it closed, reset,
 * refused (BYE, -ERR), sent something else, said nothing within
 * timeouts.backend, or its implicit-TLS handshake failed.  It has been
 * sent nothing of the login -- at most a PROXY header and a TLS hello --
 * so the login moves on as after a refused connect.
 *
 * Only until the greeting is taken (session_backend_greeted).  Then the
 * protocols send the credentials (or ID, XCLIENT, STARTTLS on the way to
 * them), and a failure from there on ends the login (FAIL_BACKEND): a
 * store that may have seen the password is never followed by another,
 * which could log the user in twice or count twice towards a lockout.
 */
static void
backend_greeting_failed(struct session *s, const char *text)
{
	char f[FAIL_FIELDS_MAX], why[BACKEND_REASON_MAX];

	/* The backend's words (a POP3 -ERR's text) may hold anything. */
	log_escape(why, sizeof(why), text, strlen(text));
	log_warning("backend connect failed %s reason=\"greeting: %s\"",
	    fail_fields(s, f, sizeof(f)), why);
	session_enter_state(s, SESSION_BACKEND_CONNECT);
	backend_give_up(s, why);
}

/* The route host or named backend being tried, as health checks name it. */
static const char *
backend_label(const struct session *s)
{
	const struct backend_cfg *b = current_backend(s);

	return b != NULL ? b->name : s->route->hosts[s->host_idx].host;
}

/*
 * Tell the health table what the current address came to: error NULL
 * once its greeting came, else why the connect or greeting failed.  Once
 * per address tried.
 */
static void
backend_health(struct session *s, const char *error)
{
	const struct config *cfg = s->cfg;

	if (s->health_told || s->addrs == NULL || s->route == NULL)
		return;
	s->health_told = true;
	if (!cfg->health.passive)
		return;
	health_report(s->worker->server->health, &s->addrs->a[s->addr_pos].u.sa,
	    s->listen->proto, backend_label(s), error, cfg->health.failures,
	    (uint64_t)cfg->health.down_time * 1000, loop_now(s->loop));
}

static void
backend_try_addr(struct session *s)
{
	const struct sockaddr *sa = &s->addrs->a[s->addr_pos].u.sa;
	const struct config *cfg = s->cfg;
	int fd;

	sockaddr_format(sa, s->backend_name, sizeof(s->backend_name));
	s->health_told = false;
	s->backend_greeted = false;
	s->proto->backend_reset(s);
	/* Without probes, one login past down_time is the address's trial. */
	if (!health_usable(s->worker->server->health, sa, !cfg->health.active,
	    (uint64_t)cfg->health.down_time * 1000, loop_now(s->loop))) {
		log_debug("backend skipped client=%s user=%s backend=%s "
		    "reason=\"down\"", s->peer, s->user, s->backend_name);
		if (s->last_fail == FAIL_NONE)
			s->last_fail = FAIL_DOWN;
		backend_next_addr(s);
		return;
	}
	fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		backend_connect_failed(s, strerror(errno));
		return;
	}
	conn_init(&s->backend, fd, BACKEND_IN_MAX, backend_out_max(s->cfg),
	    backend_event, s);
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.connect * 1000);
	if (connect(fd, sa, s->addrs->a[s->addr_pos].len) < 0 &&
	    errno != EINPROGRESS) {
		backend_connect_failed(s, strerror(errno));
		return;
	}
	/*
	 * Registered once, edge-triggered, for everything: connect, login
	 * and relay need no further epoll_ctl on this socket.
	 */
	s->backend.edge = true;
	if (loop_watch(s->loop, &s->backend.watch,
	    EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET) < 0)
		backend_connect_failed(s, strerror(errno));
}

/*
 * A named backend with proxy_protocol = "v1"/"v2" is told the client's
 * address (a PROXY header's, if one came) before anything else on the TCP
 * stream: before its greeting is read and before TLS.  Written straight to
 * the fresh socket, whose send buffer always takes a few dozen bytes, so
 * that nothing of it can be left for OpenSSL to interleave.
 */
static int
backend_send_proxy(struct session *s)
{
	const struct backend_cfg *b = current_backend(s);
	unsigned char hdr[PROXY_HEADER_MAX];
	ssize_t n;
	int len;

	if (b == NULL || b->proxy_protocol == BACKEND_PROXY_NONE)
		return 0;
	len = proxy_header_format(b->proxy_protocol == BACKEND_PROXY_V1 ?
	    PROXY_V1 : PROXY_V2, &s->peer_addr.sa, &s->local_addr.sa, hdr,
	    sizeof(hdr));
	if (len < 0) {
		session_backend_failed(s, FAIL_BACKEND,
		    "client address cannot be sent in a PROXY header");
		return -1;
	}
	do
		n = send(s->backend.fd, hdr, (size_t)len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n != len) {
		session_backend_failed(s, FAIL_BACKEND, "cannot send the PROXY header");
		return -1;
	}
	return 0;
}

static void
backend_connected(struct session *s, uint32_t events)
{
	int err = 0, one = 1;
	socklen_t len = sizeof(err);

	/* Only an error event needs asking what went wrong. */
	if ((events & (EPOLLERR | EPOLLHUP)) &&
	    getsockopt(s->backend.fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
		err = errno;
	if ((events & (EPOLLERR | EPOLLHUP)) && err == 0)
		err = ECONNREFUSED;
	if (err != 0) {
		backend_connect_failed(s, strerror(err));
		return;
	}
	(void)setsockopt(s->backend.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/*
	 * Connected: the greeting, any TLS and the login dialogue together
	 * get timeouts.backend -- a store under load is slow to log a user in,
	 * which is not the same as not answering a connect.
	 */
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.backend * 1000);
	if (backend_send_proxy(s) < 0)
		return;
	if (session_backend_tls(s) == TLS_MODE_IMPLICIT) {
		backend_tls_begin(s);
		return;
	}
	session_enter_state(s, SESSION_BACKEND_GREETING);
	/* Edge-triggered: a greeting that came with the connect is read now. */
	s->backend.readable = (events & (EPOLLIN | EPOLLRDHUP)) != 0;
	backend_work(s);
}

/* The named backend being tried, or NULL for a plain host. */
static const struct backend_cfg *
current_backend(const struct session *s)
{
	return config_backend(s->cfg, s->route->hosts[s->host_idx].host);
}

enum tls_mode
session_backend_tls(const struct session *s)
{
	const struct backend_cfg *b = current_backend(s);

	return b != NULL ? b->tls : s->cfg->backend.tls;
}

/* Start TLS towards the backend, checking its name unless told not to. */
static void
backend_tls_begin(struct session *s)
{
	const struct backend_cfg *b = current_backend(s);
	SSL_CTX *ctx = b != NULL ? s->gen->tls.backend[b - s->cfg->backends] :
	    s->gen->tls.backend_default;
	const char *name = b != NULL ? b->name : s->route->hosts[s->host_idx].host;
	bool verify = b != NULL ? b->verify : s->cfg->backend.verify;
	unsigned char ip[16];

	if (conn_tls_start(&s->backend, ctx, false) < 0) {
		session_backend_failed(s, FAIL_BACKEND, "cannot start TLS");
		return;
	}
	if (inet_pton(AF_INET, name, ip) != 1 && inet_pton(AF_INET6, name, ip) != 1) {
		SSL_set_tlsext_host_name(s->backend.ssl, name);
		if (verify)
			SSL_set1_host(s->backend.ssl, name);
	} else if (verify)
		X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->backend.ssl), name);
	session_enter_state(s, SESSION_BACKEND_STARTTLS);
	backend_tls_step(s);
}

static void
backend_tls_step(struct session *s)
{
	char e[256], f[FAIL_FIELDS_MAX];
	long vr;
	int rc = conn_tls_handshake(&s->backend);

	if (rc == 0) {
		session_update_backend(s);
		return;
	}
	if (rc < 0) {
		vr = SSL_get_verify_result(s->backend.ssl);
		log_warning("backend TLS handshake failed %s reason=\"%s\"",
		    fail_fields(s, f, sizeof(f)), vr != X509_V_OK ?
		    X509_verify_cert_error_string(vr) : tls_error(e, sizeof(e)));
		s->worker->metrics.tls[TLS_SIDE_BACKEND][0]++;
		session_backend_failed(s, FAIL_BACKEND, "TLS handshake failed");
		return;
	}
	s->worker->metrics.tls[TLS_SIDE_BACKEND][1]++;
	/* What came with the handshake's last flight is inside OpenSSL now. */
	s->backend.readable = true;
	if (!s->backend_greeted) {
		/* Implicit TLS: now the greeting. */
		session_enter_state(s, SESSION_BACKEND_GREETING);
		backend_work(s);
		return;
	}
	session_enter_state(s, SESSION_BACKEND_LOGIN);
	s->proto->backend_tls_ready(s);
	if (s->state == SESSION_BACKEND_LOGIN)
		backend_work(s);
}

void
session_backend_greeted(struct session *s)
{
	s->backend_greeted = true;
	backend_health(s, NULL);
}

void
session_backend_starttls(struct session *s)
{
	if (buf_len(&s->backend.in) > 0) {
		/* Bytes after the STARTTLS reply: a man in the middle. */
		session_backend_failed(s, FAIL_BACKEND,
		    "backend sent data after its STARTTLS reply");
		return;
	}
	backend_tls_begin(s);
}

static void
backend_event(struct watch *w, uint32_t events)
{
	struct session *s = w->arg;

	if (s->state == SESSION_BACKEND_CONNECT) {
		backend_connected(s, events);
		return;
	}
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->backend.readable = true;
	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		s->backend.rdhup = true;	/* the relay must not wait for an edge */
	if (s->state == SESSION_BACKEND_STARTTLS) {
		backend_tls_step(s);
		return;
	}
	if ((events & EPOLLOUT) && conn_flush(&s->backend) < 0) {
		session_backend_failed(s, FAIL_BACKEND, "backend write error");
		return;
	}
	backend_work(s);
}

/*
 * The backend's socket is edge-triggered: read and answer until it runs
 * dry, or until the session leaves the login dialogue (what is left then
 * belongs to the client, or to the TLS handshake).
 */
static void
backend_work(struct session *s)
{
	struct conn *c = &s->backend;

	while (backend_talking(s) && c->readable) {
		if (conn_read(c) < 0) {
			session_backend_failed(s, FAIL_BACKEND,
			    "backend connection reset");
			return;
		}
		if (buf_len(&c->in) > 0)
			s->proto->backend_input(s);
		if (!backend_talking(s))
			return;
		if (buf_room(&c->in) == 0) {
			session_backend_failed(s, FAIL_BACKEND, "backend reply too long");
			return;
		}
		if (c->eof) {
			session_backend_failed(s, FAIL_BACKEND,
			    "backend closed the connection");
			return;
		}
	}
	session_update_backend(s);
}

static void
session_resume_input(void *arg)
{
	struct session *s = arg;

	if (s->state != SESSION_PREAUTH)
		return;
	client_work(s);
}

void
session_backend_failed(struct session *s, enum session_fail fail,
    const char *text)
{
	char f[FAIL_FIELDS_MAX];

	if (!session_alive(s))
		return;
	if (fail == FAIL_BACKEND && backend_before_greeting(s)) {
		backend_greeting_failed(s, text != NULL ? text : "protocol error");
		return;
	}
	if (!session_fail_temporary(fail) && !s->refusing) {
		char reason[160];

		if (fail == FAIL_AUTH)
			snprintf(reason, sizeof(reason), "backend %s refused the "
			    "credentials", s->backend_name);
		else
			str_copy(reason, session_fail_name(fail), sizeof(reason));
		session_refuse(s, fail, text, reason);
		return;
	}
	s->refusing = false;
	session_release_user(s);
	if (fail == FAIL_BACKEND) {
		const char *t = text != NULL ? text : "protocol error";
		char why[BACKEND_REASON_MAX];

		/* The text may quote the backend's words: escape them. */
		log_escape(why, sizeof(why), t, strlen(t));
		log_warning("backend login failed %s reason=\"%s\"",
		    fail_fields(s, f, sizeof(f)), why);
	} else if (fail == FAIL_CONNECT || fail == FAIL_RESOLVE)
		log_warning("login failed %s reason=\"no backend host "
		    "answered\"", fail_fields(s, f, sizeof(f)));
	else if (fail == FAIL_DOWN)
		log_warning("login failed %s reason=\"every backend address of "
		    "the route is down\"", fail_fields(s, f, sizeof(f)));

	s->worker->metrics.logins[s->listen->proto][fail]++;
	if (session_fail_temporary(fail))
		s->worker->logins_tempfail++;
	else
		s->worker->logins_failed++;
	conn_close(&s->backend, s->loop);
	dir_request_cancel(&s->lookup);
	resolve_cancel(&s->resolving);
	route_unref(&s->route);
	free(s->addrs);
	s->addrs = NULL;
	sasl_creds_clear(&s->creds);
	s->last_fail = FAIL_NONE;

	s->proto->backend_reset(s);
	s->proto->login_failed(s, fail, text);
	if (!session_alive(s))
		return;
	if (!session_fail_retryable(fail)) {
		session_close(s, session_fail_name(fail));
		return;
	}
	if (!session_fail_temporary(fail) &&
	    ++s->auth_failures >= s->cfg->limits.auth_failures) {
		s->proto->bye(s, "Too many authentication failures");
		session_close(s, "too many authentication failures");
		return;
	}
	free(s->user);
	s->user = NULL;
	free(s->login);
	s->login = NULL;
	s->backend_name[0] = '\0';
	session_enter_state(s, SESSION_PREAUTH);
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.login * 1000);
	/*
	 * Commands the client pipelined behind the failed login run from the
	 * loop, not from here: we may be inside the protocol's own parser.
	 */
	loop_post(s->loop, session_resume_input, s);
	session_update_client(s);
}

void
session_backend_ready(struct session *s)
{
	log_info("login ok client=%s proto=%s user=%s backend=%s%s%s",
	    s->peer, s->proto->name, s->user, s->backend_name,
	    s->route->backend_user ? " backend_user=" : "",
	    s->route->backend_user ? s->route->backend_user : "");
	/* The address's count stays: one good account must not launder it. */
	if (s->cfg->limits.throttle)
		throttle_reset(s->worker->server->throttle_user, s->user,
		    strlen(s->user));
	sasl_creds_clear(&s->creds);
	s->proto->free(s);
	free(s->backend_host);
	s->backend_host = xstrdup(s->route->hosts[s->host_idx].host);
	s->worker->logins_ok++;
	s->worker->metrics.logins[s->listen->proto][FAIL_NONE]++;
	route_unref(&s->route);
	free(s->addrs);
	s->addrs = NULL;
	session_enter_state(s, SESSION_RELAY);
	s->active_ms = loop_now(s->loop);
	loop_timer_in(s->loop, &s->timer, (uint64_t)s->cfg->timeouts.idle * 1000);
	relay_start(s);
}

void
session_relay_done(struct session *s, const char *outcome)
{
	session_close(s, outcome);
}

static void
session_timeout(struct timer *t)
{
	struct session *s = t->arg;
	uint64_t idle_ms = (uint64_t)s->cfg->timeouts.idle * 1000;
	char f[FAIL_FIELDS_MAX];

	if (s->lingering) {
		linger_end(s);
		return;
	}
	switch (s->state) {
	case SESSION_RELAY:
		if (loop_now(s->loop) - s->active_ms < idle_ms) {
			loop_timer_at(s->loop, &s->timer, s->active_ms + idle_ms);
			return;
		}
		session_close(s, "idle timeout");
		return;
	case SESSION_AUTH_VERIFY:
		if (s->delayed_fail != FAIL_NONE) {
			enum session_fail fail = s->delayed_fail;
			char *text = s->delayed_text;

			s->delayed_fail = FAIL_NONE;
			s->delayed_text = NULL;
			session_backend_failed(s, fail, text);
			free(text);
			return;
		}
		FALLTHROUGH;
	case SESSION_LOOKUP:
		if (s->login_waits) {
			/* The answer may still come, for a later login. */
			s->login_waits = false;
			log_warning("login failed %s reason=\"no DNS name for the "
			    "local address within %us\"", fail_fields(s, f,
			    sizeof(f)), s->cfg->timeouts.lookup);
			session_backend_failed(s, FAIL_DIR_TIMEOUT, NULL);
			return;
		}
		if (s->state == SESSION_LOOKUP)
			lookup_count(s, DIR_CACHE_NONE);
		log_warning("login failed %s reason=\"directory did not answer "
		    "within %us\"", fail_fields(s, f, sizeof(f)),
		    s->cfg->timeouts.lookup);
		session_backend_failed(s, FAIL_DIR_TIMEOUT, NULL);
		return;
	case SESSION_BACKEND_CONNECT:
		if (s->resolving != NULL) {
			resolve_cancel(&s->resolving);
			metrics_connect_failed(&s->worker->metrics,
			    s->route->hosts[s->host_idx].host);
			s->last_fail = FAIL_RESOLVE;
			backend_next_host(s);
			backend_try_host(s);
			return;
		}
		backend_connect_failed(s, "connect timed out");
		return;
	case SESSION_BACKEND_GREETING:
	case SESSION_BACKEND_STARTTLS:
	case SESSION_BACKEND_LOGIN:
		session_backend_failed(s, FAIL_BACKEND, "backend did not answer in time");
		return;
	case SESSION_PROXY_HEADER:
		log_limited(&s->worker->server->log_proxy, LOG_EVERY_MS,
		    LOG_LVL_WARNING, "PROXY header refused on %s from %s: none "
		    "within %us", s->listen->address, s->peer,
		    s->cfg->timeouts.proxy_header);
		s->worker->metrics.refused[REFUSED_PROXY_HEADER]++;
		session_close(s, "PROXY header timeout");
		return;
	default:
		s->proto->bye(s, "Login timeout");
		session_close(s, "login timeout");
		return;
	}
}

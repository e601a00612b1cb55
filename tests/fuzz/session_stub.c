/*
 * session.c's interface without sockets, for fuzzing the protocol modules
 * (see session_stub.h).  Line framing and the command rate are the
 * daemon's own (session_input.c, linked from the library); the few other
 * limit rules below are kept in step with session.c by hand.
 */
#include "autoconf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "config.h"
#include "log.h"
#include "proto.h"
#include "route.h"
#include "sasl.h"
#include "session.h"
#include "session_stub.h"
#include "username.h"
#include "util.h"

/* As in session.c. */
#define CLIENT_OUT_MAX		(64 * 1024)
#define BACKEND_IN_MAX		(64 * 1024)
#define BACKEND_OUT_EXTRA	(40 * 1024)

#define FAKE_BACKEND_FD		1000	/* never used for I/O */

static const char *const stub_conf[2] = {
	"listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; } );\n"
	"directory = { type = \"file\"; file = { path = \"/dev/null\"; }; };\n"
	"username = { default_domain = \"example.org\"; };\n"
	"limits = { auth_failures = 3; bad_commands = 10; };\n",
	"listen = ( { protocol = \"imap\"; address = \"127.0.0.1:1143\"; } );\n"
	"directory = { type = \"file\"; file = { path = \"/dev/null\"; }; };\n"
	"limits = { line_length = 512; auth_failures = 2; bad_commands = 5; };\n",
};

static struct config *configs[4];	/* [master][small lines] */
static struct listen_cfg listens[4];
static enum tls_mode backend_tls;
static bool backend_user;
static uint64_t now_ms;
static bool logged_in;			/* session_login() ran this attempt */

static const struct config *
stub_config(bool master, bool small)
{
	struct config **cp = &configs[master * 2 + small];
	char err[512];

	if (*cp == NULL) {
		log_setup(LOG_LVL_ERROR, 0, 0);
		if (config_load_string("stub.conf", stub_conf[small], cp,
		    err, sizeof(err)) < 0) {
			fprintf(stderr, "session_stub: %s\n", err);
			abort();
		}
		/*
		 * backend.login = "master" also needs an LDAP directory with
		 * auth.verify = "ldap-bind" in a real config: set it here.
		 */
		if (master) {
			(*cp)->master.login = BACKEND_LOGIN_MASTER;
			free((*cp)->master.master_user);
			free((*cp)->master.master_password);
			(*cp)->master.master_user = xstrdup("proxy");
			(*cp)->master.master_password = xstrdup("s3cret");
		}
	}
	return *cp;
}

/* Client output: CRLF lines, no bare CR or LF, no NUL.  Then "read" it. */
static void
check_client_out(struct session *s)
{
	size_t n = buf_len(&s->client.out);
	const char *p;

	if (n == 0)
		return;		/* no storage: buf_head() would be NULL + 0 */
	p = buf_head(&s->client.out);

	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\0')
			abort();
		if (p[i] == '\r' && (i + 1 >= n || p[i + 1] != '\n'))
			abort();
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			abort();
	}
	if (p[n - 1] != '\n')
		abort();
	buf_consume(&s->client.out, n);
}

/*
 * Backend output: lines ending in CRLF with no CR or LF inside; for IMAP
 * and ManageSieve a line ending in {N} or {N+} is followed by N bytes of
 * literal data.  The stream may stop inside a literal (its data waits for
 * the backend's "+").
 */
static void
check_backend_out(const struct session *s, enum proto_id id)
{
	size_t n = buf_len(&s->backend.out), i = 0;
	const char *p;

	if (n == 0)
		return;
	p = buf_head(&s->backend.out);

	while (i < n) {
		size_t start = i, end;

		while (i < n && p[i] != '\r' && p[i] != '\n')
			i++;
		if (i + 1 >= n || p[i] != '\r' || p[i + 1] != '\n')
			abort();	/* bare CR/LF, or an unterminated line */
		end = i;
		i += 2;
		if ((id == PROTO_IMAP || id == PROTO_SIEVE) && end > start &&
		    p[end - 1] == '}') {
			size_t j = end - 1, lit = 0, mul = 1;

			if (j > start && p[j - 1] == '+')
				j--;
			if (j == start || !(p[j - 1] >= '0' && p[j - 1] <= '9'))
				continue;
			while (j > start && p[j - 1] >= '0' && p[j - 1] <= '9') {
				lit += (size_t)(p[j - 1] - '0') * mul;
				mul *= 10;
				j--;
			}
			if (j == start || p[j - 1] != '{')
				continue;
			if (lit > n - i)
				return;		/* the rest waits for "+" */
			i += lit;
		}
	}
}

static void
stub_init(struct session *s, const struct proto_ops *proto, enum proto_id id,
    unsigned flags)
{
	const struct config *cfg = stub_config((flags & STUB_MASTER) != 0,
	    (flags & STUB_SMALL_LINES) != 0);

	memset(s, 0, sizeof(*s));
	listens[STUB_LISTEN_TLS(flags)].proto = id;
	listens[STUB_LISTEN_TLS(flags)].tls = (enum tls_mode[]){ TLS_MODE_NONE,
	    TLS_MODE_STARTTLS, TLS_MODE_REQUIRED,
	    TLS_MODE_IMPLICIT }[STUB_LISTEN_TLS(flags)];
	s->cfg = cfg;
	s->listen = &listens[STUB_LISTEN_TLS(flags)];
	s->proto = proto;
	s->state = SESSION_GREETING;
	s->cmd_credit = SESSION_PREAUTH_BURST * 1000;
	s->client.fd = -1;
	s->backend.fd = -1;
	buf_init(&s->client.in, cfg->limits.line_length + 2);
	buf_init(&s->client.out, CLIENT_OUT_MAX);
	buf_init(&s->backend.in, BACKEND_IN_MAX);
	buf_init(&s->backend.out, (size_t)cfg->limits.line_length * 2 +
	    BACKEND_OUT_EXTRA);
	s->peer_addr.in.sin_family = AF_INET;
	s->peer_addr.in.sin_port = htons(50123);
	s->peer_addr.in.sin_addr.s_addr = htonl(0xc0000201);	/* 192.0.2.1 */
	str_copy(s->peer, "192.0.2.1:50123", sizeof(s->peer));
	backend_tls = flags & STUB_BACKEND_STARTTLS ? TLS_MODE_STARTTLS :
	    TLS_MODE_NONE;
	backend_user = (flags & STUB_BACKEND_USER) != 0;
	now_ms = 0;
	logged_in = false;
	if (s->listen->tls == TLS_MODE_IMPLICIT)
		s->client_tls = true;
	proto->start(s, true);
	s->state = SESSION_PREAUTH;
}

static void
stub_end(struct session *s)
{
	if (s->proto_state != NULL)
		s->proto->free(s);
	sasl_creds_clear(&s->creds);
	route_unref(&s->route);
	free(s->user);
	buf_free(&s->client.in);
	buf_free(&s->client.out);
	buf_free(&s->backend.in);
	buf_free(&s->backend.out);
}

/* Feed `len` bytes of backend data in chunks; simulate STARTTLS. */
static void
feed_backend(struct session *s, enum proto_id id, const char *data,
    size_t len, size_t chunk)
{
	size_t off = 0;

	for (;;) {
		if (s->state == SESSION_BACKEND_STARTTLS) {
			/* The handshake succeeds; the backend starts over. */
			s->state = SESSION_BACKEND_LOGIN;
			s->proto->backend_tls_ready(s);
			check_backend_out(s, id);
			continue;
		}
		if (s->state != SESSION_BACKEND_GREETING &&
		    s->state != SESSION_BACKEND_LOGIN)
			break;
		if (off >= len) {
			/* The backend stalls: timeouts.backend. */
			session_backend_failed(s, FAIL_BACKEND, "timed out");
			break;
		}
		size_t n = len - off < chunk ? len - off : chunk;

		if (buf_append(&s->backend.in, data + off, n) < 0) {
			session_backend_failed(s, FAIL_BACKEND, "backend input full");
			break;
		}
		off += n;
		s->proto->backend_input(s);
		check_backend_out(s, id);
		check_client_out(s);
	}
	check_client_out(s);
}

void
stub_dialogue(const struct proto_ops *proto, enum proto_id id,
    const uint8_t *data, size_t size)
{
	static const size_t chunks[] = { 1, 3, 17, (size_t)-1 };
	struct session s;
	unsigned flags;
	const char *p, *end, *client_end, *backend;
	size_t chunk, off = 0, client_len;
	bool stalled = false;

	if (size == 0)
		return;
	flags = data[0];
	chunk = chunks[STUB_CHUNK(flags)];
	p = (const char *)data + 1;
	end = (const char *)data + size;
	if ((client_end = memchr(p, '\x01', (size_t)(end - p))) == NULL)
		client_end = end;
	client_len = (size_t)(client_end - p);
	/* The backend's replies follow the client part's 0x01. */
	backend = client_end < end ? client_end + 1 : end;

	stub_init(&s, proto, id, flags);
	check_client_out(&s);
	while (s.state == SESSION_PREAUTH) {
		size_t before = buf_len(&s.client.in);

		if (before == 0 || !session_can_answer(&s) || stalled) {
			size_t n;

			if (off >= client_len)
				break;	/* the client stops talking */
			n = client_len - off < chunk ? client_len - off : chunk;
			if (n > buf_room(&s.client.in))
				n = buf_room(&s.client.in);
			if (n == 0)
				break;	/* a parser that neither reads nor answers */
			buf_append(&s.client.in, p + off, n);
			off += n;
			now_ms += 10;
		}
		before = buf_len(&s.client.in);
		proto->client_input(&s);
		/* Waiting for more of a line: send the next chunk. */
		stalled = s.state == SESSION_PREAUTH &&
		    buf_len(&s.client.in) == before && buf_len(&s.client.out) == 0;
		check_client_out(&s);
		if (s.state == SESSION_TLS_HANDSHAKE) {
			/* The handshake succeeds: the protocol starts over. */
			s.client_tls = true;
			s.state = SESSION_PREAUTH;
			proto->free(&s);
			proto->start(&s, false);
			continue;
		}
		if (s.state == SESSION_BACKEND_GREETING) {
			const char *next = memchr(backend, '\x01',
			    (size_t)(end - backend));
			size_t blen = (size_t)((next != NULL ? next : end) - backend);

			feed_backend(&s, id, backend, blen, chunk);
			backend = next != NULL ? next + 1 : end;
		}
	}
	stub_end(&s);
}

/* The session API, as imap.c and pop3.c see it. */

void
session_start(struct worker *w, struct gen *gen,
    const struct listen_cfg *listen, int fd, const struct sockaddr *peer,
    bool per_ip_counted)
{
	abort();	/* the stub has no sockets */
}

void
session_enter_state(struct session *s, enum session_state state)
{
	s->state = state;
}

const char *
session_state_name(enum session_state state)
{
	return "stub";
}

static bool
session_alive(const struct session *s)
{
	return s->state != SESSION_CLOSING;
}

bool
session_count_command(struct session *s)
{
	/* The daemon's rate (session_input.c) on the stub's clock. */
	if (!session_pace(s, now_ms)) {
		s->proto->bye(s, "Too many commands before login");
		session_close(s, "too many commands before login");
		return false;
	}
	return true;
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
	if (!session_starttls_offered(s))
		abort();	/* STARTTLS twice, or where it was not offered */
	buf_wipe(&s->client.in);
	s->skipping = false;
	s->state = SESSION_TLS_HANDSHAKE;
}

enum tls_mode
session_backend_tls(const struct session *s)
{
	return backend_tls;
}

void
session_backend_greeted(struct session *s)
{
}

void
session_backend_starttls(struct session *s)
{
	if (s->backend_greeted)
		abort();	/* STARTTLS with the backend twice */
	s->backend_greeted = true;
	if (buf_len(&s->backend.in) > 0) {
		session_backend_failed(s, FAIL_BACKEND,
		    "backend sent data after its STARTTLS reply");
		return;
	}
	s->state = SESSION_BACKEND_STARTTLS;
}

/* The directory answers at once: a route to one host. */
void
session_login(struct session *s)
{
	const struct config *cfg = s->cfg;
	struct username name;
	const char *error;

	if (s->state != SESSION_PREAUTH || s->creds.authcid == NULL ||
	    s->creds.password == NULL || s->user != NULL)
		abort();
	logged_in = true;
	if (username_normalise(&cfg->username, s->creds.authcid,
	    s->creds.authcid_len, &name, &error) < 0) {
		session_backend_failed(s, FAIL_BAD_USER, NULL);
		return;
	}
	s->user = xstrdup(name.full);
	s->route = route_new();
	if (route_add_host(s->route, "store.example.net:143", &error) < 0 ||
	    (backend_user && route_set_backend_user(s->route, "mbox-7",
	    &error) < 0))
		abort();
	str_copy(s->backend_name, "store.example.net", sizeof(s->backend_name));
	buf_free(&s->backend.in);
	buf_free(&s->backend.out);
	s->backend.fd = FAKE_BACKEND_FD;
	s->backend_greeted = false;
	s->proto->backend_reset(s);
	s->state = SESSION_BACKEND_GREETING;
}

void
session_bad_command(struct session *s)
{
	if (++s->bad_commands >= s->cfg->limits.bad_commands) {
		s->proto->bye(s, "Too many invalid commands");
		session_close(s, "too many invalid commands");
	}
}

void
session_backend_ready(struct session *s)
{
	if (s->state != SESSION_BACKEND_LOGIN || !logged_in ||
	    buf_len(&s->backend.out) == 0 || s->user == NULL)
		abort();
	sasl_creds_clear(&s->creds);
	s->proto->free(s);
	route_unref(&s->route);
	s->state = SESSION_RELAY;
}

static bool
fail_retryable(enum session_fail fail)
{
	return fail == FAIL_BAD_USER || fail == FAIL_NO_USER || fail == FAIL_AUTH ||
	    fail == FAIL_DIR_TEMP || fail == FAIL_DIR_TIMEOUT ||
	    fail == FAIL_BACKEND || fail == FAIL_RESOLVE || fail == FAIL_CONNECT;
}

void
session_backend_failed(struct session *s, enum session_fail fail,
    const char *text)
{
	if (!session_alive(s))
		return;
	if (s->state == SESSION_PREAUTH && fail != FAIL_BAD_USER)
		abort();	/* no login in progress */
	s->backend.fd = -1;
	route_unref(&s->route);
	sasl_creds_clear(&s->creds);
	logged_in = false;
	s->proto->backend_reset(s);
	s->proto->login_failed(s, fail, text);
	if (!session_alive(s))
		return;
	if (!fail_retryable(fail)) {
		session_close(s, "failed");
		return;
	}
	if (fail != FAIL_BACKEND && fail != FAIL_DIR_TEMP &&
	    fail != FAIL_DIR_TIMEOUT &&
	    ++s->auth_failures >= s->cfg->limits.auth_failures) {
		s->proto->bye(s, "Too many authentication failures");
		session_close(s, "too many authentication failures");
		return;
	}
	free(s->user);
	s->user = NULL;
	s->backend_name[0] = '\0';
	s->state = SESSION_PREAUTH;
}

void
session_close(struct session *s, const char *outcome)
{
	if (s->state == SESSION_CLOSING)
		return;
	s->state = SESSION_CLOSING;
}

void
session_shutdown(struct session *s, const char *text)
{
	if (s->proto_state != NULL)
		s->proto->bye(s, text);
	session_close(s, text);
}

void
session_abort(struct session *s)
{
	session_close(s, "aborted");
}

void
session_relay_done(struct session *s, const char *outcome)
{
	session_close(s, outcome);
}

bool
session_fail_retryable(enum session_fail fail)
{
	return fail_retryable(fail);
}

bool
session_fail_temporary(enum session_fail fail)
{
	return fail == FAIL_DIR_TEMP || fail == FAIL_DIR_TIMEOUT ||
	    fail == FAIL_BACKEND || fail == FAIL_RESOLVE || fail == FAIL_CONNECT;
}

const char *
session_fail_name(enum session_fail fail)
{
	return "stub";
}

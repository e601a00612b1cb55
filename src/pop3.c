#include "autoconf.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "pop3_parse.h"
#include "proto.h"
#include "route.h"
#include "sasl.h"
#include "session.h"
#include "util.h"

/*
 * POP3 before login (RFC 1939, 2449, 5034) and the USER/PASS login to the
 * backend.
 */

enum pop3_mode {
	MODE_COMMAND,
	MODE_AUTH_PLAIN,
	MODE_AUTH_LOGIN_USER,
	MODE_AUTH_LOGIN_PASS,
};

enum pop3_backend_step {
	STEP_GREETING,
	STEP_STLS,
	STEP_CAPA,		/* xclient: its +OK */
	STEP_CAPA_LIST,		/* xclient: capabilities up to "." */
	STEP_XCLIENT,
	STEP_USER,
	STEP_PASS,
};

struct pop3_state {
	enum pop3_mode		 mode;
	char			*user;		/* from USER, until PASS */
	size_t			 userlen;
	enum pop3_backend_step	 step;
	bool			 xclient;	/* the backend offers XCLIENT */
};

static struct pop3_state *
st(struct session *s)
{
	return s->proto_state;
}

static void
pop3_start(struct session *s, bool greet)
{
	s->proto_state = xcalloc(1, sizeof(struct pop3_state));
	if (greet)
		session_send(s, "+OK %s\r\n", s->cfg->daemon.greeting);
}

static void
pop3_free(struct session *s)
{
	struct pop3_state *ps = st(s);

	if (ps == NULL)
		return;
	free(ps->user);
	free(ps);
	s->proto_state = NULL;
}

static void
pop3_bye(struct session *s, const char *text)
{
	session_send(s, "-ERR %s\r\n", text);
}

static bool
creds_ok(const char *s, size_t len)
{
	return len > 0 && memchr(s, '\0', len) == NULL;
}

static void
auth_fail(struct session *s, const char *text)
{
	st(s)->mode = MODE_COMMAND;
	sasl_creds_clear(&s->creds);
	session_send(s, "-ERR %s\r\n", text);
	session_bad_command(s);
}

static void
auth_response(struct session *s, const char *b64, size_t len)
{
	struct pop3_state *ps = st(s);
	const char *error;
	size_t n;
	char *v;

	if ((v = base64_decode_alloc(b64, len, &n)) == NULL) {
		auth_fail(s, "Invalid base64 data");
		return;
	}
	switch (ps->mode) {
	case MODE_AUTH_PLAIN:
		if (sasl_plain_parse((unsigned char *)v, n, &s->creds, &error) < 0 ||
		    !creds_ok(s->creds.authcid, s->creds.authcid_len) ||
		    !creds_ok(s->creds.password, s->creds.password_len)) {
			explicit_bzero(v, n);
			free(v);
			auth_fail(s, "[AUTH] Invalid PLAIN message");
			return;
		}
		explicit_bzero(v, n);
		free(v);
		break;
	case MODE_AUTH_LOGIN_USER:
		if (!creds_ok(v, n) || strpbrk(v, "\r\n") != NULL) {
			free(v);
			auth_fail(s, "[AUTH] Invalid user name");
			return;
		}
		free(s->creds.authcid);
		s->creds.authcid = v;
		s->creds.authcid_len = n;
		ps->mode = MODE_AUTH_LOGIN_PASS;
		session_send(s, "+ UGFzc3dvcmQ6\r\n");
		return;
	case MODE_AUTH_LOGIN_PASS:
		if (!creds_ok(v, n)) {
			free(v);
			auth_fail(s, "[AUTH] Invalid password");
			return;
		}
		s->creds.password = v;
		s->creds.password_len = n;
		break;
	case MODE_COMMAND:
		abort();
	}
	if (strpbrk(s->creds.authcid, "\r\n") != NULL ||
	    strpbrk(s->creds.password, "\r\n") != NULL) {
		auth_fail(s, "[AUTH] Invalid characters in credentials");
		return;
	}
	ps->mode = MODE_COMMAND;
	session_login(s);
}

static void
cmd_auth(struct session *s, const struct pop3_cmd *cmd)
{
	struct pop3_state *ps = st(s);
	char mechname[32];
	const char *sp, *ir = NULL;
	size_t mlen, irlen = 0;
	enum sasl_mech mech;

	if (cmd->arg == NULL) {
		session_send(s, "+OK\r\nPLAIN\r\nLOGIN\r\n.\r\n");
		return;
	}
	sp = memchr(cmd->arg, ' ', cmd->arglen);
	mlen = sp != NULL ? (size_t)(sp - cmd->arg) : cmd->arglen;
	if (sp != NULL) {
		ir = sp + 1;
		irlen = cmd->arglen - mlen - 1;
	}
	if (mlen >= sizeof(mechname) ||
	    (str_copy(mechname, cmd->arg, mlen + 1),
	    (mech = sasl_mech_parse(mechname)) == SASL_MECH_NONE)) {
		session_send(s, "-ERR Unsupported authentication mechanism\r\n");
		session_bad_command(s);
		return;
	}
	sasl_creds_clear(&s->creds);
	ps->mode = mech == SASL_MECH_PLAIN ? MODE_AUTH_PLAIN : MODE_AUTH_LOGIN_USER;
	if (ir != NULL) {
		/* RFC 5034: "=" is an empty initial response. */
		if (irlen == 1 && ir[0] == '=')
			irlen = 0;
		auth_response(s, ir, irlen);
		return;
	}
	session_send(s, mech == SASL_MECH_PLAIN ? "+ \r\n" : "+ VXNlcm5hbWU6\r\n");
}

static void
dispatch(struct session *s, const struct pop3_cmd *cmd)
{
	struct pop3_state *ps = st(s);
	const char *k = cmd->keyword;

	if (!session_count_command(s))
		return;
	if (session_tls_required(s) && (strcmp(k, "USER") == 0 ||
	    strcmp(k, "PASS") == 0 || strcmp(k, "AUTH") == 0)) {
		session_send(s, "-ERR [AUTH] Plaintext authentication is disallowed "
		    "here: use STLS first\r\n");
		session_bad_command(s);
	} else if (strcmp(k, "USER") == 0) {
		if (cmd->arg == NULL || !creds_ok(cmd->arg, cmd->arglen)) {
			session_send(s, "-ERR USER expects a user name\r\n");
			session_bad_command(s);
			return;
		}
		free(ps->user);
		ps->user = xstrndup(cmd->arg, cmd->arglen);
		ps->userlen = cmd->arglen;
		session_send(s, "+OK\r\n");
	} else if (strcmp(k, "PASS") == 0) {
		if (ps->user == NULL) {
			session_send(s, "-ERR USER first\r\n");
			session_bad_command(s);
			return;
		}
		if (cmd->arg == NULL || !creds_ok(cmd->arg, cmd->arglen)) {
			session_send(s, "-ERR PASS expects a password\r\n");
			session_bad_command(s);
			return;
		}
		sasl_creds_set(&s->creds, ps->user, ps->userlen, cmd->arg, cmd->arglen);
		free(ps->user);
		ps->user = NULL;
		session_login(s);
	} else if (strcmp(k, "AUTH") == 0) {
		cmd_auth(s, cmd);
	} else if (strcmp(k, "CAPA") == 0) {
		session_send(s, "+OK Capability list follows\r\n%s%s"
		    "RESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
		    "IMPLEMENTATION postern\r\n.\r\n",
		    session_starttls_offered(s) ? "STLS\r\n" : "",
		    session_tls_required(s) ? "" : "USER\r\nSASL PLAIN LOGIN\r\n");
	} else if (strcmp(k, "QUIT") == 0) {
		session_send(s, "+OK Bye\r\n");
		session_close(s, "quit before login");
	} else if (strcmp(k, "NOOP") == 0) {
		session_send(s, "+OK\r\n");
	} else if (strcmp(k, "STLS") == 0) {
		if (!session_starttls_offered(s)) {
			session_send(s, "-ERR STLS is not available here\r\n");
			return;
		}
		session_send(s, "+OK Begin TLS negotiation\r\n");
		session_starttls(s);
	} else {
		session_send(s, "-ERR Unknown command or not allowed before login\r\n");
		session_bad_command(s);
	}
}

static void
pop3_client_input(struct session *s)
{
	while (session_can_answer(s) && buf_len(&s->client.in) > 0) {
		struct pop3_state *ps = st(s);
		struct pop3_cmd cmd;
		char *line;
		size_t len, used;
		int rc = session_next_line(s, &line, &len, &used);

		if (rc == 0)
			return;
		if (rc < 0) {
			ps->mode = MODE_COMMAND;
			session_send(s, "-ERR Line too long\r\n");
			session_bad_command(s);
			continue;
		}
		if (ps->mode != MODE_COMMAND) {
			if (len == 1 && line[0] == '*') {
				ps->mode = MODE_COMMAND;
				sasl_creds_clear(&s->creds);
				session_send(s, "-ERR AUTH cancelled\r\n");
			} else
				auth_response(s, line, len);
		} else if (pop3_parse_line(line, len, &cmd) < 0) {
			session_send(s, "-ERR Invalid command\r\n");
			session_bad_command(s);
		} else
			dispatch(s, &cmd);
		if (s->state == SESSION_CLOSING || s->state == SESSION_TLS_HANDSHAKE)
			return;	/* closed, or the input was discarded for STLS */
		/* The line may hold a password: wipe it as it goes. */
		explicit_bzero(buf_head(&s->client.in), used);
		buf_consume(&s->client.in, used);
	}
}

/* Backend side. */

/* Nothing that ends or splits a POP3 command line. */
static bool
line_safe(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
			return false;
	return true;
}

static int
send_user(struct session *s)
{
	const char *user = s->route->backend_user != NULL ?
	    s->route->backend_user : s->user;

	/* The directory's value too: it must not inject commands. */
	if (!line_safe(user, strlen(user))) {
		session_backend_failed(s, FAIL_BACKEND,
		    "backend user name holds a line break");
		return -1;
	}
	return session_backend_printf(s, "USER %s\r\n", user);
}

/* backend.login = "master": AUTH PLAIN with the initial response (RFC 5034). */
static bool
send_master_auth(struct session *s)
{
	const char *user = s->route->backend_user != NULL ?
	    s->route->backend_user : s->user;
	const char *error;
	char *b64;

	if (sasl_master_plain("pop", s->backend_name, user,
	    s->cfg->master.master_user, s->cfg->master.master_password,
	    &b64, &error) < 0) {
		session_backend_failed(s, FAIL_BACKEND, error);
		return false;
	}
	if (session_backend_printf(s, "AUTH PLAIN %s\r\n", b64) < 0) {
		secret_free(&b64);
		return false;
	}
	secret_free(&b64);
	sasl_creds_clear(&s->creds);
	st(s)->step = STEP_PASS;
	return true;
}

static int
send_pass(struct session *s)
{
	int rc;

	if ((rc = session_backend_send(s, "PASS ", 5)) == 0 &&
	    (rc = session_backend_send(s, s->creds.password,
	    s->creds.password_len)) == 0)
		rc = session_backend_send(s, "\r\n", 2);
	sasl_creds_clear(&s->creds);
	return rc;
}

/*
 * First login commands: the master's AUTH PLAIN, or USER and PASS in one
 * write.  POP3 servers read commands a line at a time, so the pair needs
 * no PIPELINING capability, and it saves a round trip per login; the
 * replies are still taken one by one.
 */
static bool
begin_login(struct session *s)
{
	if (s->cfg->master.login == BACKEND_LOGIN_MASTER)
		return send_master_auth(s);
	if (send_user(s) < 0 || send_pass(s) < 0)
		return false;
	st(s)->step = STEP_USER;
	return true;
}

static bool	send_xclient(struct session *);

/*
 * A backend configured with xclient = true is told who the client is, as
 * IMAP ID does for IMAP, when it offers XCLIENT: Dovecot does so for
 * proxies in its login_trusted_networks with "[XCLIENT]" in its greeting;
 * other stores are asked for their CAPA before the login (the one extra
 * round trip, only there) and must list it.  Others get the login at once.
 */
static bool
after_greeting(struct session *s)
{
	const struct backend_cfg *b = config_backend(s->cfg,
	    s->route->hosts[s->host_idx].host);

	if (b != NULL && b->xclient) {
		if (st(s)->xclient)
			return send_xclient(s);
		st(s)->step = STEP_CAPA;
		return session_backend_send(s, "CAPA\r\n", 6) == 0;
	}
	return begin_login(s);
}

/* "+OK [XCLIENT] ...": the greeting's response code offers XCLIENT. */
static bool
greeting_offers_xclient(const char *line)
{
	return strncasecmp(line, "+OK [XCLIENT]", 13) == 0;
}

static bool
send_xclient(struct session *s)
{
	char ip[INET6_ADDRSTRLEN] = "", port[8] = "";

	sockaddr_split(&s->peer_addr.sa, ip, sizeof(ip), port, sizeof(port));
	if (ip[0] == '\0')
		return begin_login(s);
	st(s)->step = STEP_XCLIENT;
	return session_backend_printf(s, "XCLIENT ADDR=%s PORT=%s SESSION=%s\r\n",
	    ip, port, s->id) == 0;
}

/* One line of the CAPA list: its first word, case-insensitively. */
static void
capa_line(struct session *s, const char *line)
{
	size_t n = strcspn(line, " ");

	if (n == 7 && strncasecmp(line, "XCLIENT", 7) == 0)
		st(s)->xclient = true;
}

static bool
line_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

/* Skip "+OK"/"-ERR" and one space. */
static const char *
status_text(const char *line)
{
	const char *p = line[0] == '+' ? line + 3 : line + 4;

	return *p == ' ' ? p + 1 : p;
}

static bool
backend_line(struct session *s, char *line)
{
	struct pop3_state *ps = st(s);
	bool ok = strncmp(line, "+OK", 3) == 0;

	if (ps->step == STEP_CAPA_LIST) {
		if (strcmp(line, ".") != 0) {
			capa_line(s, line);
			return true;
		}
		if (ps->xclient)
			return send_xclient(s);
		return begin_login(s);
	}
	if (!ok && strncmp(line, "-ERR", 4) != 0) {
		session_backend_failed(s, FAIL_BACKEND, "unexpected reply");
		return false;
	}
	switch (ps->step) {
	case STEP_GREETING:
		if (!ok) {
			session_backend_failed(s, FAIL_BACKEND, status_text(line));
			return false;
		}
		ps->xclient = greeting_offers_xclient(line);
		session_backend_greeted(s);
		if (session_backend_tls(s) == TLS_MODE_STARTTLS) {
			ps->step = STEP_STLS;
			return session_backend_send(s, "STLS\r\n", 6) == 0;
		}
		session_enter_state(s, SESSION_BACKEND_LOGIN);
		return after_greeting(s);
	case STEP_CAPA:
		if (!ok)
			return begin_login(s);	/* no CAPA: no XCLIENT either */
		ps->step = STEP_CAPA_LIST;
		return true;
	case STEP_CAPA_LIST:
		return false;		/* handled above */
	case STEP_XCLIENT:
		if (!ok)
			log_warning("backend refused XCLIENT client=%s user=\"%s\" "
			    "proto=pop3 backend=%s reason=\"%s\"", s->peer,
			    s->login != NULL ? s->login : "", s->backend_name,
			    line_printable(line) ? status_text(line) : "?");
		return begin_login(s);
	case STEP_STLS:
		if (!ok) {
			session_backend_failed(s, FAIL_BACKEND, "backend refused STLS");
			return false;
		}
		session_backend_starttls(s);
		return false;
	case STEP_USER:
		if (!ok) {
			session_backend_failed(s, FAIL_AUTH, status_text(line));
			return false;
		}
		ps->step = STEP_PASS;	/* PASS went with USER */
		return true;
	case STEP_PASS:
		if (!ok) {
			session_backend_failed(s, FAIL_AUTH, status_text(line));
			return false;
		}
		/* The backend's own words, unless they hold control bytes. */
		session_send(s, "%s\r\n", line_printable(line) ? line :
		    "+OK Logged in.");
		session_backend_ready(s);
		return false;
	}
	return false;
}

static void
pop3_backend_input(struct session *s)
{
	session_backend_lines(s, backend_line);
}

static void
pop3_backend_tls_ready(struct session *s)
{
	(void)after_greeting(s);
}

static void
pop3_backend_reset(struct session *s)
{
	st(s)->step = STEP_GREETING;
	st(s)->xclient = false;
}

static void
pop3_login_failed(struct session *s, enum session_fail fail, const char *text)
{
	switch (fail) {
	case FAIL_AUTH:
		if (text != NULL && text[0] != '\0' && strncmp(text, "[SYS/", 5) != 0 &&
		    line_printable(text))
			session_send(s, "-ERR %s%s\r\n",
			    text[0] == '[' ? "" : "[AUTH] ", text);
		else
			session_send(s, "-ERR [AUTH] Authentication failed\r\n");
		break;
	case FAIL_BAD_USER:
	case FAIL_NO_USER:
		session_send(s, "-ERR [AUTH] Authentication failed\r\n");
		break;
	case FAIL_USER_LIMIT:
		/*
		 * Not [IN-USE] (RFC 3206): that says the password was right,
		 * and it has not been checked yet.  [SYS/TEMP]: try later.
		 */
		session_send(s, "-ERR [SYS/TEMP] Too many sessions for this user\r\n");
		break;
	default:
		session_send(s, "-ERR [SYS/TEMP] Mail store temporarily "
		    "unavailable, try again later\r\n");
		break;
	}
}

const struct proto_ops pop3_proto = {
	.name = "pop3",
	.start = pop3_start,
	.client_input = pop3_client_input,
	.backend_input = pop3_backend_input,
	.backend_tls_ready = pop3_backend_tls_ready,
	.backend_reset = pop3_backend_reset,
	.login_failed = pop3_login_failed,
	.bye = pop3_bye,
	.free = pop3_free,
};

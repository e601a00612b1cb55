#include "autoconf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_parse.h"
#include "log.h"
#include "proto.h"
#include "route.h"
#include "sasl.h"
#include "session.h"
#include "sieve_filter.h"
#include "util.h"

/*
 * ManageSieve (RFC 5804) before login, and the login to the backend.  The
 * command grammar is IMAP's without the tag, so the IMAP tokenizer reads
 * it (imap_parser_init_untagged).  The backend is sent AUTHENTICATE
 * "PLAIN" with an initial response that postern encodes itself; the
 * client's bytes never reach it before the relay.
 */

/*
 * The SIEVE extensions announced before login when capability.sieve is
 * empty: Pigeonhole's defaults.  After login the client asks the backend.
 */
#define SIEVE_DEFAULT_EXTENSIONS "fileinto reject envelope encoded-character " \
	"vacation subaddress comparator-i;ascii-numeric relational regex " \
	"imap4flags copy include variables body enotify environment mailbox " \
	"date index ihave duplicate mime foreverypart extracttext"
/*
 * Longest base64 response sent to the backend as a quoted string, and the
 * longest NOOP tag echoed back in one: RFC 5804 4 caps quoted strings at
 * 1024 octets.
 */
#define SIEVE_QUOTED_MAX	1024

enum sieve_mode {
	MODE_COMMAND,		/* reading commands */
	MODE_AUTH_PLAIN,	/* waiting for the PLAIN response string */
};

enum sieve_backend_step {
	STEP_GREETING,		/* capabilities up to "OK" */
	STEP_STARTTLS,		/* STARTTLS sent, waiting for "OK" */
	STEP_TLS_CAPABILITY,	/* capabilities again, over TLS, up to "OK" */
	STEP_AUTHENTICATE,	/* AUTHENTICATE sent */
};

struct sieve_state {
	struct imap_parser	 parser;
	enum sieve_mode		 mode;
	enum sieve_backend_step	 step;
};

static struct sieve_state *
st(struct session *s)
{
	return s->proto_state;
}

static const char *
extensions(const struct session *s)
{
	const char *conf = s->cfg->capability[PROTO_SIEVE];

	return conf[0] != '\0' ? conf : SIEVE_DEFAULT_EXTENSIONS;
}

/* Is `word` one of the space-separated words of `list`? */
static bool
has_word(const char *list, const char *word)
{
	size_t n = strlen(word);

	for (const char *p = list; *p != '\0'; ) {
		if (strncasecmp(p, word, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
		if ((p = strchr(p, ' ')) == NULL)
			break;
		p++;
	}
	return false;
}

static void	send_response(struct session *s, const char *word,
		    const char *text);

/* The capability listing (RFC 5804 1.7): only what is accepted now. */
static void
send_capabilities(struct session *s)
{
	const char *ext = extensions(s);

	session_send(s, "\"IMPLEMENTATION\" \"postern\"\r\n"
	    "\"SASL\" \"%s\"\r\n"
	    "\"SIEVE\" \"%s\"\r\n"
	    "%s%s"
	    "\"VERSION\" \"1.0\"\r\n",
	    session_tls_required(s) ? "" : "PLAIN", ext,
	    has_word(ext, "enotify") ? "\"NOTIFY\" \"mailto\"\r\n" : "",
	    session_starttls_offered(s) ? "\"STARTTLS\"\r\n" : "");
}

/*
 * A greeting, and again after STARTTLS: RFC 5804 2.2 has the server
 * re-issue its capabilities unasked once TLS is up.
 */
static void
sieve_start(struct session *s, bool greet)
{
	struct sieve_state *ss = xcalloc(1, sizeof(*ss));

	imap_parser_init_untagged(&ss->parser, s->cfg->limits.line_length);
	s->proto_state = ss;
	if (greet || s->client_tls) {
		send_capabilities(s);
		send_response(s, "OK", greet ? s->cfg->daemon.greeting :
		    "TLS negotiation successful");
	}
}

static void
sieve_free(struct session *s)
{
	struct sieve_state *ss = st(s);

	if (ss == NULL)
		return;
	imap_parser_free(&ss->parser);
	free(ss);
	s->proto_state = NULL;
}

/*
 * Queue `word "text"`: the text escaped for a quoted string, control
 * bytes dropped.  It may be the configured greeting, so it is not cut.
 */
static void
send_response(struct session *s, const char *word, const char *text)
{
	struct buf b;

	buf_init(&b, strlen(word) + 2 * strlen(text) + 8);
	(void)buf_printf(&b, "%s \"", word);
	for (; *text != '\0'; text++) {
		unsigned char c = (unsigned char)*text;

		if (c < 0x20 || c == 0x7f)
			continue;
		if (c == '"' || c == '\\')
			(void)buf_append(&b, "\\", 1);
		(void)buf_append(&b, text, 1);
	}
	(void)buf_append(&b, "\"\r\n", 3);
	session_send_raw(s, buf_head(&b), buf_len(&b));
	buf_free(&b);
}

static void
sieve_bye(struct session *s, const char *text)
{
	send_response(s, "BYE", text);
}

/* A refusal that counts toward limits.bad_commands. */
static void
refuse(struct session *s, const char *text)
{
	send_response(s, "NO", text);
	session_bad_command(s);
}

/* Credentials may hold any UTF-8 but no NUL, CR or LF. */
static bool
creds_ok(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (s[i] == '\0' || s[i] == '\r' || s[i] == '\n')
			return false;
	return true;
}

/* Take a PLAIN response (base64), or answer why not. */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	size_t cap = len / 4 * 3 + 3, mlen;
	unsigned char *msg = xmalloc(cap);
	const char *error;

	if (base64_decode(b64, len, msg, &mlen) < 0)
		refuse(s, "Invalid base64 data");
	else if (sasl_plain_parse(msg, mlen, &s->creds, &error) < 0 ||
	    !creds_ok(s->creds.authcid, s->creds.authcid_len) ||
	    !creds_ok(s->creds.password, s->creds.password_len)) {
		sasl_creds_clear(&s->creds);
		refuse(s, "Invalid PLAIN message");
	} else {
		explicit_bzero(msg, cap);
		free(msg);
		session_login(s);
		return;
	}
	explicit_bzero(msg, cap);
	free(msg);
}

static bool
is_string(const struct imap_arg *a)
{
	return a->type == IMAP_ARG_STRING;
}

static void
cmd_authenticate(struct session *s, const struct imap_arg *args, size_t nargs)
{
	struct sieve_state *ss = st(s);

	if (session_tls_required(s)) {
		session_send(s, "NO (ENCRYPT-NEEDED) \"Use STARTTLS first\"\r\n");
		session_bad_command(s);
		return;
	}
	if (nargs < 1 || nargs > 2 || !is_string(&args[0]) ||
	    (nargs == 2 && !is_string(&args[1]))) {
		refuse(s, "AUTHENTICATE expects a mechanism and an optional response");
		return;
	}
	if (strcasecmp(args[0].str, "PLAIN") != 0 || args[0].len != 5) {
		refuse(s, "Unsupported authentication mechanism");
		return;
	}
	sasl_creds_clear(&s->creds);
	if (nargs == 2) {
		auth_plain(s, args[1].str, args[1].len);
		return;
	}
	/* An empty challenge; the response comes as a string of its own. */
	ss->mode = MODE_AUTH_PLAIN;
	ss->parser.args_only = true;
	session_send(s, "\"\"\r\n");
}

/* NOOP may carry a string, echoed back as a TAG response code. */
static void
cmd_noop(struct session *s, const struct imap_arg *args, size_t nargs)
{
	struct buf b;

	if (nargs > 1 || (nargs == 1 && (!is_string(&args[0]) ||
	    !creds_ok(args[0].str, args[0].len)))) {
		refuse(s, "NOOP takes one string at most");
		return;
	}
	if (nargs == 1 && args[0].len > SIEVE_QUOTED_MAX) {
		refuse(s, "NOOP tag too long");
		return;
	}
	if (nargs == 0) {
		session_send(s, "OK \"Done\"\r\n");
		return;
	}
	buf_init(&b, 2 * args[0].len + 32);
	(void)buf_append_str(&b, "OK (TAG \"");
	for (size_t i = 0; i < args[0].len; i++) {
		if (args[0].str[i] == '"' || args[0].str[i] == '\\')
			(void)buf_append(&b, "\\", 1);
		(void)buf_append(&b, args[0].str + i, 1);
	}
	(void)buf_append_str(&b, "\") \"Done\"\r\n");
	session_send_raw(s, buf_head(&b), buf_len(&b));
	buf_free(&b);
}

static void
dispatch(struct session *s)
{
	struct sieve_state *ss = st(s);
	const char *cmd = ss->parser.cmd;
	const struct imap_arg *args = ss->parser.args;
	size_t nargs = ss->parser.nargs;

	if (!session_count_command(s))
		return;
	if (strcasecmp(cmd, "AUTHENTICATE") == 0)
		cmd_authenticate(s, args, nargs);
	else if (strcasecmp(cmd, "CAPABILITY") == 0 && nargs == 0) {
		send_capabilities(s);
		session_send(s, "OK \"Capability completed\"\r\n");
	} else if (strcasecmp(cmd, "NOOP") == 0)
		cmd_noop(s, args, nargs);
	else if (strcasecmp(cmd, "LOGOUT") == 0 && nargs == 0) {
		session_send(s, "OK \"Logout completed\"\r\n");
		session_close(s, "logout before login");
	} else if (strcasecmp(cmd, "STARTTLS") == 0 && nargs == 0) {
		if (!session_starttls_offered(s)) {
			refuse(s, "STARTTLS is not available here");
			return;
		}
		session_send(s, "OK \"Begin TLS negotiation now\"\r\n");
		session_starttls(s);
	} else
		refuse(s, "Command unknown, malformed or not allowed before login");
}

/* Leave the SASL exchange: lines are commands again. */
static void
end_auth(struct sieve_state *ss)
{
	ss->mode = MODE_COMMAND;
	ss->parser.args_only = false;
}

/* The client's answer to our empty challenge: one string, or "*". */
static void
auth_response(struct session *s)
{
	struct sieve_state *ss = st(s);
	const struct imap_arg *a = ss->parser.args;

	end_auth(ss);
	if (ss->parser.nargs != 1 || !is_string(a)) {
		refuse(s, "Expected a SASL response string");
		return;
	}
	if (a->len == 1 && a->str[0] == '*') {
		send_response(s, "NO", "Authentication cancelled");
		return;
	}
	auth_plain(s, a->str, a->len);
}

static void
sieve_client_input(struct session *s)
{
	while (session_can_answer(s) && buf_len(&s->client.in) > 0) {
		struct sieve_state *ss = st(s);
		enum imap_parse_result r;
		size_t used;

		r = imap_parser_feed(&ss->parser, buf_head(&s->client.in),
		    buf_len(&s->client.in), &used);
		buf_consume(&s->client.in, used);
		switch (r) {
		case IMAP_PARSE_MORE:
			return;
		case IMAP_PARSE_LITERAL:	/* untagged: never */
			break;
		case IMAP_PARSE_DONE:
			if (ss->mode == MODE_AUTH_PLAIN)
				auth_response(s);
			else
				dispatch(s);
			if (s->state == SESSION_CLOSING)
				return;
			imap_parser_reset(&ss->parser);
			break;
		case IMAP_PARSE_ERROR:
			if (ss->parser.fatal) {
				sieve_bye(s, ss->parser.error);
				session_close(s, ss->parser.error);
				return;
			}
			if (ss->mode == MODE_AUTH_PLAIN) {
				sasl_creds_clear(&s->creds);
				end_auth(ss);
			}
			refuse(s, ss->parser.error);
			if (s->state == SESSION_CLOSING)
				return;
			if (!imap_parser_skipping(&ss->parser))
				imap_parser_reset(&ss->parser);
			break;
		}
	}
}

/*
 * After login.  The relay is a byte pump, but RFC 5804 2.14.1 lets an
 * authenticated client UNAUTHENTICATE and then AUTHENTICATE again, as
 * anyone, on a store that offers it: past postern's routing, limits and
 * log.  So the client's commands go through a scanner (sieve_filter.h),
 * and those valid only before login (UNAUTHENTICATE, AUTHENTICATE,
 * STARTTLS) are answered NO by postern and never reach the backend.
 * AUTHENTICATE and STARTTLS would be refused by the backend anyway; that
 * postern refuses them means no SASL exchange and no TLS inside the relay
 * that the scanner could not follow.
 *
 * Each command's bytes are held back only until its name is known (at
 * most SIEVE_SCAN_NAME_MAX blanks, then as many letters and one byte
 * more); from then on they pass as
 * they come, literals included.  A refusal must come in the order of the
 * answers, and ManageSieve has no tags: the backend's answers are scanned
 * too and counted (each ends in a line named OK, NO or BYE), and postern
 * answers once the backend has answered every command sent before.  The
 * client's input waits meanwhile.  An empty line (blanks, maybe a CR, a
 * LF) is dropped without an answer: Pigeonhole would answer it, and a line
 * that neither side sees cannot put the count out of step.  The backend's
 * post-login capability list is the backend's own and may still name
 * UNAUTHENTICATE.
 */

/* What a command's bytes do once its name is known. */
enum pass_mode {
	PASS_UNDECIDED,		/* the name is not complete: hold */
	PASS_FORWARD,		/* to the backend */
	PASS_DROP,		/* refused, or an empty line: dropped */
};

struct sieve_relay {
	struct sieve_scan	 cmd;		/* the client's commands */
	struct sieve_scan	 resp;		/* the backend's answers */
	enum pass_mode		 mode;
	bool			 ended;		/* the command's LF is scanned */
	size_t			 scanned;	/* client.in's head bytes scanned */
	const char		*reply;		/* a refusal; NULL: an empty line */
	const char		*refusal;	/* queued when the answers are in */
	uint64_t		 pending;	/* commands sent, not answered */
	bool			 final;		/* the answer line is OK/NO/BYE */
	bool			 store_closed;	/* the backend's EOF is passed on */
	bool			 discard;	/* the client's input goes nowhere */
};

static const struct {
	const char	*name;
	const char	*reply;
} sieve_refused[] = {
	{ "UNAUTHENTICATE", "NO \"UNAUTHENTICATE is not available through "
	    "this proxy\"\r\n" },
	{ "AUTHENTICATE", "NO \"Already authenticated\"\r\n" },
	{ "STARTTLS", "NO \"STARTTLS is not available after login\"\r\n" },
};

static void *
sieve_filter_new(struct session *s)
{
	struct sieve_relay *sr = xcalloc(1, sizeof(*sr));

	(void)s;
	sieve_scan_init(&sr->cmd);
	sieve_scan_init(&sr->resp);
	return sr;
}

static void
sieve_filter_free(void *f)
{
	free(f);
}

static const char *
refusal_for(const struct sieve_scan *sc)
{
	for (size_t i = 0; i < nitems(sieve_refused); i++)
		if (sieve_scan_name_is(sc, sieve_refused[i].name))
			return sieve_refused[i].reply;
	return NULL;
}

/*
 * A line inside a literal that names a refused command: a store that
 * skips the literal's line unread (sieve_filter.h) would run it.  It
 * cannot be answered in order, as postern cannot know which way the store
 * reads the literal: the session ends.  The name's letters may have
 * passed, never the byte that ends it, so the store never sees that line
 * end.  The cost: a script line that begins with one of these words (no
 * Sieve command does) ends the session too.
 */
static bool
shadow_refused(const struct sieve_scan *sc)
{
	for (size_t i = 0; i < nitems(sieve_refused); i++)
		if (sieve_scan_shadow_is(sc, sieve_refused[i].name))
			return true;
	return false;
}

/*
 * Move the scanned bytes at the head of `in` as the command's mode says.
 * False while some must wait for room.
 */
static bool
pass_scanned(struct sieve_relay *sr, struct buf *in, struct buf *out)
{
	size_t n = sr->scanned;

	if (n == 0 || sr->mode == PASS_UNDECIDED)
		return true;
	if (sr->mode == PASS_FORWARD) {
		if (n > buf_room(out))
			n = buf_room(out);
		if (n > 0)
			(void)buf_append(out, buf_head(in), n);
	}
	buf_consume(in, n);
	sr->scanned -= n;
	return sr->scanned == 0;
}

/* The client's commands, to the backend. */
static int
filter_commands(struct session *s, struct sieve_relay *sr, bool eof,
    const char **error_r)
{
	struct buf *in = &s->client.in, *out = &s->backend.out;
	enum sieve_scan_event ev;
	size_t avail, used;
	int rc;

	for (;;) {
		if (!pass_scanned(sr, in, out))
			return 1;
		if (sr->ended) {
			if (sr->mode == PASS_DROP)
				sr->refusal = sr->reply;
			else
				sr->pending++;
			sr->mode = PASS_UNDECIDED;
			sr->ended = false;
		}
		/*
		 * Once the store has closed no answer comes: a refusal would
		 * hold the client's input, and so its EOF, until the idle
		 * timeout.  It is dropped, with all that follows, which has
		 * nowhere to go.
		 */
		if (sr->refusal != NULL && sr->store_closed) {
			sr->refusal = NULL;
			sr->discard = true;
		}
		if (sr->discard) {
			buf_consume(in, buf_len(in));
			sr->scanned = 0;
			return 0;
		}
		/*
		 * Not inside a line of the backend's either (one it sent
		 * unasked, a BYE say), nor past the room left for the client.
		 */
		if (sr->refusal != NULL) {
			if (sr->pending > 0 ||
			    !sieve_scan_between_lines(&sr->resp) ||
			    buf_append_str(&s->client.out, sr->refusal) < 0)
				return 1;
			sr->refusal = NULL;
		}
		avail = buf_len(in) - sr->scanned;
		if (avail == 0) {
			/* A name cut short by the end of input: no command. */
			if (eof && sr->scanned > 0) {
				buf_consume(in, sr->scanned);
				sr->scanned = 0;
			}
			return 0;
		}
		if (sr->mode == PASS_FORWARD && avail > buf_room(out))
			avail = buf_room(out);
		if (avail == 0)
			return 1;
		rc = sieve_scan_feed(&sr->cmd, buf_head(in) + sr->scanned, avail,
		    &used, &ev);
		sr->scanned += used;
		if (rc < 0) {
			*error_r = sr->cmd.error;
			return -1;
		}
		if (rc == 0)
			continue;
		switch (ev) {
		case SIEVE_SCAN_NAME:
			sr->reply = refusal_for(&sr->cmd);
			sr->mode = sr->reply != NULL || sr->cmd.empty ?
			    PASS_DROP : PASS_FORWARD;
			break;
		case SIEVE_SCAN_SHADOW:
			/* A refused command's literal goes nowhere. */
			if (sr->mode == PASS_FORWARD &&
			    shadow_refused(&sr->cmd)) {
				*error_r = "refused command inside a literal";
				return -1;
			}
			break;
		case SIEVE_SCAN_END:
			sr->ended = true;
			break;
		}
	}
}

/* The backend's answers, to the client: counted, passed unchanged. */
static int
filter_answers(struct session *s, struct sieve_relay *sr, bool eof,
    const char **error_r)
{
	struct buf *in = &s->backend.in, *out = &s->client.out;
	enum sieve_scan_event ev;
	size_t avail, used, done = 0;
	int rc;

	avail = buf_len(in) < buf_room(out) ? buf_len(in) : buf_room(out);
	while (done < avail) {
		rc = sieve_scan_feed(&sr->resp, buf_head(in) + done, avail - done,
		    &used, &ev);
		done += used;
		if (rc < 0) {
			*error_r = sr->resp.error;
			return -1;
		}
		if (rc == 0)
			break;
		if (ev == SIEVE_SCAN_NAME)
			sr->final = sieve_scan_name_is(&sr->resp, "OK") ||
			    sieve_scan_name_is(&sr->resp, "NO") ||
			    sieve_scan_name_is(&sr->resp, "BYE");
		else if (ev == SIEVE_SCAN_END && sr->final && sr->pending > 0)
			sr->pending--;
	}
	if (done > 0) {
		(void)buf_append(out, buf_head(in), done);
		buf_consume(in, done);
	}
	if (eof && buf_len(in) == 0)
		sr->store_closed = true;
	return buf_len(in) > 0;
}

static int
sieve_filter(struct session *s, void *f, bool from_client, bool eof,
    const char **error_r)
{
	if (from_client)
		return filter_commands(s, f, eof, error_r);
	return filter_answers(s, f, eof, error_r);
}

/* Backend side. */

/*
 * AUTHENTICATE "PLAIN" with the initial response: the client's own
 * credentials, or the master user's authorised as the user.  The base64
 * text goes as a quoted string (it needs no escaping), or as a
 * non-synchronising literal when it is long.
 */
static void
start_login(struct session *s)
{
	const char *user = s->route->backend_user != NULL ?
	    s->route->backend_user : s->user;
	const char *error;
	size_t ulen = strlen(user), mlen, blen;
	char *b64;
	unsigned char *msg;
	struct buf b;

	st(s)->step = STEP_AUTHENTICATE;
	if (s->cfg->master.login == BACKEND_LOGIN_MASTER) {
		if (sasl_master_plain("sieve", s->backend_name, user,
		    s->cfg->master.master_user, s->cfg->master.master_password,
		    &b64, &error) < 0) {
			session_backend_failed(s, FAIL_BACKEND, error);
			return;
		}
	} else {
		mlen = 1 + ulen + 1 + s->creds.password_len;
		msg = xmalloc(mlen);
		msg[0] = '\0';
		memcpy(msg + 1, user, ulen);
		msg[1 + ulen] = '\0';
		memcpy(msg + 2 + ulen, s->creds.password, s->creds.password_len);
		b64 = xmalloc(BASE64_ENCODED_SIZE(mlen));
		base64_encode(msg, mlen, b64);
		explicit_bzero(msg, mlen);
		free(msg);
	}
	sasl_creds_clear(&s->creds);
	blen = strlen(b64);
	buf_init(&b, blen + 64);
	if (blen <= SIEVE_QUOTED_MAX)
		(void)buf_printf(&b, "AUTHENTICATE \"PLAIN\" \"%s\"\r\n", b64);
	else
		(void)buf_printf(&b, "AUTHENTICATE \"PLAIN\" {%zu+}\r\n%s\r\n",
		    blen, b64);
	explicit_bzero(b64, blen);
	free(b64);
	(void)session_backend_send(s, buf_head(&b), buf_len(&b));
	buf_wipe(&b);
	buf_free(&b);
}

/* After the backend's STARTTLS: wait for its capabilities again. */
static void
sieve_backend_tls_ready(struct session *s)
{
	st(s)->step = STEP_TLS_CAPABILITY;
}

/* Does the response line begin with `word` (then a space or its end)? */
static bool
response_is(const char *line, const char *word)
{
	size_t n = strlen(word);

	return strncasecmp(line, word, n) == 0 &&
	    (line[n] == ' ' || line[n] == '\0');
}

/* A line that announces a literal: what follows cannot be told apart. */
static bool
ends_in_literal(const char *line)
{
	size_t n = strlen(line);

	return n > 0 && line[n - 1] == '}';
}

/* Capabilities up to "OK"; false once the session moved on. */
static bool
capability_line(struct session *s, const char *line)
{
	if (line[0] == '"' && !ends_in_literal(line))
		return true;
	if (!response_is(line, "OK")) {
		session_backend_failed(s, FAIL_BACKEND, response_is(line, "BYE") ||
		    response_is(line, "NO") ? "backend refused the connection" :
		    "unexpected capability line");
		return false;
	}
	return true;
}

static bool
backend_talking(const struct session *s)
{
	return s->state == SESSION_BACKEND_LOGIN ||
	    s->state == SESSION_BACKEND_GREETING;
}

/* One backend line, CRLF stripped.  Returns false once the session moved on. */
static bool
backend_line(struct session *s, char *line)
{
	struct sieve_state *ss = st(s);

	switch (ss->step) {
	case STEP_GREETING:
		if (!capability_line(s, line))
			return false;
		if (line[0] == '"')
			return true;
		session_backend_greeted(s);
		if (session_backend_tls(s) == TLS_MODE_STARTTLS) {
			ss->step = STEP_STARTTLS;
			return session_backend_send(s, "STARTTLS\r\n", 10) == 0;
		}
		session_enter_state(s, SESSION_BACKEND_LOGIN);
		start_login(s);
		return backend_talking(s);
	case STEP_STARTTLS:
		if (!response_is(line, "OK")) {
			session_backend_failed(s, FAIL_BACKEND, "backend refused STARTTLS");
			return false;
		}
		session_backend_starttls(s);
		return false;
	case STEP_TLS_CAPABILITY:
		if (!capability_line(s, line))
			return false;
		if (line[0] == '"')
			return true;
		start_login(s);
		return backend_talking(s);
	case STEP_AUTHENTICATE:
		if (response_is(line, "OK")) {
			session_send(s, "OK \"Logged in\"\r\n");
			session_backend_ready(s);
			return false;
		}
		if (response_is(line, "NO") && !ends_in_literal(line)) {
			session_backend_failed(s, FAIL_AUTH, NULL);
			return false;
		}
		/* A challenge (we sent everything), BYE, or a literal reason. */
		session_backend_failed(s, FAIL_BACKEND, "unexpected reply to AUTHENTICATE");
		return false;
	}
	return false;
}

static void
sieve_backend_input(struct session *s)
{
	session_backend_lines(s, backend_line);
}

static void
sieve_backend_reset(struct session *s)
{
	st(s)->step = STEP_GREETING;
}

static void
sieve_login_failed(struct session *s, enum session_fail fail, const char *text)
{
	(void)text;	/* the backend's words are not copied to the client */
	switch (fail) {
	case FAIL_AUTH:
	case FAIL_BAD_USER:
	case FAIL_NO_USER:
		session_send(s, "NO \"Authentication failed\"\r\n");
		break;
	case FAIL_USER_LIMIT:
		session_send(s, "NO (TRYLATER) \"Too many sessions for this user\"\r\n");
		break;
	default:
		session_send(s, "NO (TRYLATER) \"Mail store temporarily unavailable, "
		    "try again later\"\r\n");
		break;
	}
}

const struct proto_ops sieve_proto = {
	.name = "sieve",
	.start = sieve_start,
	.client_input = sieve_client_input,
	.backend_input = sieve_backend_input,
	.backend_tls_ready = sieve_backend_tls_ready,
	.backend_reset = sieve_backend_reset,
	.login_failed = sieve_login_failed,
	.bye = sieve_bye,
	.free = sieve_free,
	.filter_new = sieve_filter_new,
	.filter = sieve_filter,
	.filter_free = sieve_filter_free,
};

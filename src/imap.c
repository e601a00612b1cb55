#include "autoconf.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap_id.h"
#include "imap_parse.h"
#include "log.h"
#include "proto.h"
#include "route.h"
#include "sasl.h"
#include "session.h"
#include "util.h"

/*
 * IMAP4rev1 / IMAP4rev2 before login (RFC 3501, RFC 9051), and the login
 * to the backend.  Credentials go to the backend as quoted strings when
 * they are plain ASCII, otherwise as literals: never as raw client bytes.
 */

#define IMAP_CAPS_BASE	"IMAP4rev1 LITERAL+ SASL-IR ID"
#define IMAP_CHUNKS	3	/* LOGIN pieces split by synchronising literals */

enum imap_mode {
	MODE_COMMAND,		/* reading tagged commands */
	MODE_AUTH_PLAIN,	/* waiting for the PLAIN response line */
	MODE_AUTH_LOGIN_USER,	/* LOGIN: waiting for the user name */
	MODE_AUTH_LOGIN_PASS,	/* LOGIN: waiting for the password */
};

enum imap_backend_step {
	STEP_GREETING,		/* waiting for "* OK" */
	STEP_STARTTLS,		/* STARTTLS sent, waiting for the tagged OK */
	STEP_TLS_CAPABILITY,	/* CAPABILITY asked again over TLS */
	STEP_LOGIN,		/* LOGIN sent, waiting for "+" or tagged reply */
	STEP_CAPABILITY,	/* CAPABILITY sent after login */
};

struct imap_state {
	struct imap_parser	 parser;
	enum imap_mode		 mode;
	char			 tag[IMAP_TAG_MAX + 1];	/* the login command's */
	struct imap_id		*id;		/* the client's ID, NULL if none */
	enum imap_backend_step	 step;
	bool			 literal_plus;	/* backend announced LITERAL+ */
	bool			 sasl_ir;	/* backend announced SASL-IR */
	bool			 backend_id;	/* backend announced ID */
	char			*chunks[IMAP_CHUNKS];	/* login pieces left */
	size_t			 chunklen[IMAP_CHUNKS];
	size_t			 nchunks, chunk;
	char			*caps;		/* backend's post-login capabilities */
	char			*ok_text;	/* backend's text on the tagged OK */
};

static struct imap_state *
st(struct session *s)
{
	return s->proto_state;
}

/* What we announce before login: only what will be accepted now. */
static const char *
preauth_caps(const struct session *s)
{
	if (session_tls_required(s))
		return IMAP_CAPS_BASE " STARTTLS LOGINDISABLED";
	if (session_starttls_offered(s))
		return IMAP_CAPS_BASE " STARTTLS AUTH=PLAIN AUTH=LOGIN";
	return IMAP_CAPS_BASE " AUTH=PLAIN AUTH=LOGIN";
}

static void
imap_start(struct session *s, bool greet)
{
	struct imap_state *is = xcalloc(1, sizeof(*is));

	imap_parser_init(&is->parser, s->cfg->limits.line_length);
	s->proto_state = is;
	if (greet)
		session_send(s, "* OK [CAPABILITY %s] %s\r\n",
		    preauth_caps(s), s->cfg->daemon.greeting);
}

static void
free_chunks(struct imap_state *is)
{
	for (size_t i = 0; i < is->nchunks; i++) {
		if (is->chunks[i] != NULL) {
			explicit_bzero(is->chunks[i], is->chunklen[i]);
			free(is->chunks[i]);
			is->chunks[i] = NULL;
		}
	}
	is->nchunks = is->chunk = 0;
}

static void
imap_free(struct session *s)
{
	struct imap_state *is = st(s);

	if (is == NULL)
		return;
	imap_parser_free(&is->parser);
	free_chunks(is);
	if (is->id != NULL)
		imap_id_clear(is->id);
	free(is->id);
	free(is->caps);
	free(is->ok_text);
	free(is);
	s->proto_state = NULL;
}

static void
imap_bye(struct session *s, const char *text)
{
	session_send(s, "* BYE %s\r\n", text);
}

static const char *
reply_tag(const struct imap_state *is)
{
	return is->parser.taglen > 0 ? is->parser.tag : "*";
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

static void
begin_login(struct session *s)
{
	struct imap_state *is = st(s);

	str_copy(is->tag, is->parser.tag, sizeof(is->tag));
	is->mode = MODE_COMMAND;
	session_login(s);
}

static void
cmd_login(struct session *s, const struct imap_arg *args, size_t nargs)
{
	struct imap_state *is = st(s);

	if (nargs != 2 || args[0].type > IMAP_ARG_STRING ||
	    args[1].type > IMAP_ARG_STRING) {
		session_send(s, "%s BAD LOGIN expects a user name and a password\r\n",
		    is->parser.tag);
		session_bad_command(s);
		return;
	}
	if (!creds_ok(args[0].str, args[0].len) || !creds_ok(args[1].str, args[1].len)) {
		session_send(s, "%s NO [AUTHENTICATIONFAILED] Invalid characters "
		    "in credentials\r\n", is->parser.tag);
		session_bad_command(s);
		return;
	}
	sasl_creds_set(&s->creds, args[0].str, args[0].len, args[1].str, args[1].len);
	begin_login(s);
}

/* Take a decoded PLAIN message, or answer why not. */
static void
auth_plain(struct session *s, const char *b64, size_t len)
{
	struct imap_state *is = st(s);
	unsigned char *msg = xmalloc(len / 4 * 3 + 3);
	const char *error;
	size_t mlen;

	if (base64_decode(b64, len, msg, &mlen) < 0) {
		session_send(s, "%s BAD Invalid base64 data\r\n", is->tag);
	} else if (sasl_plain_parse(msg, mlen, &s->creds, &error) < 0 ||
	    !creds_ok(s->creds.authcid, s->creds.authcid_len) ||
	    !creds_ok(s->creds.password, s->creds.password_len)) {
		sasl_creds_clear(&s->creds);
		session_send(s, "%s NO [AUTHENTICATIONFAILED] Invalid PLAIN message\r\n",
		    is->tag);
	} else {
		explicit_bzero(msg, mlen);
		free(msg);
		str_copy(is->parser.tag, is->tag, sizeof(is->parser.tag));
		begin_login(s);
		return;
	}
	explicit_bzero(msg, len / 4 * 3 + 3);
	free(msg);
	is->mode = MODE_COMMAND;
	session_bad_command(s);
}

/* Decode one AUTHENTICATE LOGIN answer into a fresh string. */
static char *
auth_login_decode(const char *b64, size_t len, size_t *outlen_r)
{
	char *out = base64_decode_alloc(b64, len, outlen_r);

	if (out != NULL && !creds_ok(out, *outlen_r)) {
		free(out);
		return NULL;
	}
	return out;
}

static void
auth_login_step(struct session *s, const char *b64, size_t len)
{
	struct imap_state *is = st(s);
	size_t n;
	char *v = auth_login_decode(b64, len, &n);

	if (v == NULL || n == 0) {
		free(v);
		sasl_creds_clear(&s->creds);
		session_send(s, "%s BAD Invalid base64 data\r\n", is->tag);
		is->mode = MODE_COMMAND;
		session_bad_command(s);
		return;
	}
	if (is->mode == MODE_AUTH_LOGIN_USER) {
		free(s->creds.authcid);
		s->creds.authcid = v;
		s->creds.authcid_len = n;
		is->mode = MODE_AUTH_LOGIN_PASS;
		session_send(s, "+ UGFzc3dvcmQ6\r\n");	/* "Password:" */
		return;
	}
	s->creds.password = v;
	s->creds.password_len = n;
	str_copy(is->parser.tag, is->tag, sizeof(is->parser.tag));
	begin_login(s);
}

static void
cmd_authenticate(struct session *s, const struct imap_arg *args, size_t nargs)
{
	struct imap_state *is = st(s);
	enum sasl_mech mech;

	if (nargs < 1 || nargs > 2 || args[0].type != IMAP_ARG_ATOM ||
	    (nargs == 2 && args[1].type != IMAP_ARG_ATOM)) {
		session_send(s, "%s BAD AUTHENTICATE expects a mechanism\r\n",
		    is->parser.tag);
		session_bad_command(s);
		return;
	}
	if ((mech = sasl_mech_parse(args[0].str)) == SASL_MECH_NONE) {
		session_send(s, "%s NO Unsupported authentication mechanism\r\n",
		    is->parser.tag);
		session_bad_command(s);
		return;
	}
	str_copy(is->tag, is->parser.tag, sizeof(is->tag));
	sasl_creds_clear(&s->creds);
	if (mech == SASL_MECH_PLAIN) {
		if (nargs == 2) {
			/* SASL-IR: "=" is an empty initial response. */
			if (strcmp(args[1].str, "=") == 0)
				auth_plain(s, "", 0);
			else
				auth_plain(s, args[1].str, args[1].len);
			return;
		}
		is->mode = MODE_AUTH_PLAIN;
		session_send(s, "+ \r\n");
		return;
	}
	is->mode = MODE_AUTH_LOGIN_USER;
	if (nargs == 2) {
		auth_login_step(s, args[1].str, args[1].len);
		return;
	}
	session_send(s, "+ VXNlcm5hbWU6\r\n");	/* "Username:" */
}

/* Check the client's ID and keep what may be forwarded to the backend. */
static void
cmd_id(struct session *s, const struct imap_arg *args, size_t nargs)
{
	struct imap_state *is = st(s);
	const char *error;

	if (is->id == NULL)
		is->id = xcalloc(1, sizeof(*is->id));
	if (imap_id_parse(args, nargs, is->id, &error) < 0) {
		session_send(s, "%s BAD %s\r\n", is->parser.tag, error);
		session_bad_command(s);
		return;
	}
	session_send(s, "* ID (\"name\" \"postern\")\r\n%s OK ID completed\r\n",
	    is->parser.tag);
}

static void
dispatch(struct session *s)
{
	struct imap_state *is = st(s);
	const char *cmd = is->parser.cmd, *tag = is->parser.tag;
	const struct imap_arg *args = is->parser.args;
	size_t nargs = is->parser.nargs;

	if (!session_count_command(s))
		return;
	if ((strcasecmp(cmd, "LOGIN") == 0 || strcasecmp(cmd, "AUTHENTICATE") == 0) &&
	    session_tls_required(s)) {
		session_send(s, "%s NO [PRIVACYREQUIRED] Use STARTTLS first\r\n", tag);
		session_bad_command(s);
	} else if (strcasecmp(cmd, "LOGIN") == 0)
		cmd_login(s, args, nargs);
	else if (strcasecmp(cmd, "AUTHENTICATE") == 0)
		cmd_authenticate(s, args, nargs);
	else if (strcasecmp(cmd, "CAPABILITY") == 0)
		session_send(s, "* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n",
		    preauth_caps(s), tag);
	else if (strcasecmp(cmd, "NOOP") == 0)
		session_send(s, "%s OK NOOP completed\r\n", tag);
	else if (strcasecmp(cmd, "ID") == 0)
		cmd_id(s, args, nargs);
	else if (strcasecmp(cmd, "LOGOUT") == 0) {
		session_send(s, "* BYE Logging out\r\n%s OK LOGOUT completed\r\n", tag);
		session_close(s, "logout before login");
	} else if (strcasecmp(cmd, "STARTTLS") == 0) {
		if (!session_starttls_offered(s)) {
			session_send(s, "%s NO STARTTLS is not available here\r\n", tag);
			return;
		}
		session_send(s, "%s OK Begin TLS negotiation now\r\n", tag);
		session_starttls(s);
	}
	else {
		session_send(s, "%s BAD Command unknown or not allowed before login\r\n",
		    tag);
		session_bad_command(s);
	}
}

/* A line of an AUTHENTICATE exchange; false when more input is needed. */
static bool
auth_line(struct session *s)
{
	struct imap_state *is = st(s);
	char *line;
	size_t len, used;
	int rc = session_next_line(s, &line, &len, &used);

	if (rc == 0)
		return false;
	if (rc < 0) {
		session_send(s, "%s BAD Line too long\r\n", is->tag);
		sasl_creds_clear(&s->creds);
		is->mode = MODE_COMMAND;
		session_bad_command(s);
		return true;
	}
	if (len == 1 && line[0] == '*') {
		sasl_creds_clear(&s->creds);
		is->mode = MODE_COMMAND;
		session_send(s, "%s BAD AUTHENTICATE cancelled\r\n", is->tag);
	} else if (is->mode == MODE_AUTH_PLAIN)
		auth_plain(s, line, len);
	else
		auth_login_step(s, line, len);
	if (s->state != SESSION_CLOSING)
		buf_consume(&s->client.in, used);
	return true;
}

static void
imap_client_input(struct session *s)
{
	while (session_can_answer(s) && buf_len(&s->client.in) > 0) {
		struct imap_state *is = st(s);
		enum imap_parse_result r;
		size_t used;

		if (is->mode != MODE_COMMAND) {
			if (!auth_line(s))
				return;
			continue;
		}
		/* The tail of an overlong AUTHENTICATE line is no command. */
		if (!session_skip_overlong(s))
			return;
		if (buf_len(&s->client.in) == 0)
			return;
		r = imap_parser_feed(&is->parser, buf_head(&s->client.in),
		    buf_len(&s->client.in), &used);
		buf_consume(&s->client.in, used);
		switch (r) {
		case IMAP_PARSE_MORE:
			return;
		case IMAP_PARSE_LITERAL:
			session_send(s, "+ Ready for literal data\r\n");
			break;
		case IMAP_PARSE_DONE:
			dispatch(s);
			if (s->state == SESSION_CLOSING)
				return;
			imap_parser_reset(&is->parser);
			break;
		case IMAP_PARSE_ERROR:
			if (is->parser.fatal) {
				session_send(s, "* BYE %s\r\n", is->parser.error);
				session_close(s, is->parser.error);
				return;
			}
			session_send(s, "%s BAD %s\r\n", reply_tag(is), is->parser.error);
			if (!imap_parser_skipping(&is->parser))
				imap_parser_reset(&is->parser);
			session_bad_command(s);
			break;
		}
	}
}

/* Backend side. */

/* Is s plain printable ASCII that a quoted string carries safely? */
static bool
quotable(const char *s, size_t len)
{
	if (len > 256)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

/* Append an IMAP string to chunk text, splitting at synchronising literals. */
static void
append_astring(struct imap_state *is, struct buf *b, const char *v, size_t len)
{
	if (quotable(v, len)) {
		buf_append(b, "\"", 1);
		for (size_t i = 0; i < len; i++) {
			if (v[i] == '"' || v[i] == '\\')
				buf_append(b, "\\", 1);
			buf_append(b, v + i, 1);
		}
		buf_append(b, "\"", 1);
		return;
	}
	buf_printf(b, "{%zu%s}\r\n", len, is->literal_plus ? "+" : "");
	if (!is->literal_plus) {
		/* The rest waits for the backend's "+". */
		is->chunklen[is->nchunks] = buf_len(b);
		is->chunks[is->nchunks++] = xstrndup(buf_head(b), buf_len(b));
		buf_wipe(b);
	}
	buf_append(b, v, len);
}

static void
add_chunk(struct imap_state *is, const char *text)
{
	is->chunklen[is->nchunks] = strlen(text);
	is->chunks[is->nchunks++] = xstrdup(text);
}

/* backend.login = "master": AUTHENTICATE PLAIN, authorising as the user. */
static int
build_master_login(struct session *s)
{
	struct imap_state *is = st(s);
	const char *user = s->route->backend_user != NULL ?
	    s->route->backend_user : s->user;
	const char *error;
	char *b64;

	if (sasl_master_plain("imap", s->backend_name, user,
	    s->cfg->master.master_user, s->cfg->master.master_password,
	    &b64, &error) < 0) {
		session_backend_failed(s, FAIL_BACKEND, error);
		return -1;
	}
	free_chunks(is);
	if (is->sasl_ir) {
		struct buf b;

		buf_init(&b, strlen(b64) + 64);
		buf_printf(&b, "P1 AUTHENTICATE PLAIN %s\r\n", b64);
		is->chunklen[is->nchunks] = buf_len(&b);
		is->chunks[is->nchunks++] = xstrndup(buf_head(&b), buf_len(&b));
		buf_wipe(&b);
	} else {
		add_chunk(is, "P1 AUTHENTICATE PLAIN\r\n");
		is->chunklen[is->nchunks] = strlen(b64) + 2;
		is->chunks[is->nchunks] = xmalloc(strlen(b64) + 3);
		memcpy(is->chunks[is->nchunks], b64, strlen(b64));
		memcpy(is->chunks[is->nchunks] + strlen(b64), "\r\n", 3);
		is->nchunks++;
	}
	explicit_bzero(b64, strlen(b64));
	free(b64);
	sasl_creds_clear(&s->creds);
	return 0;
}

static void
build_login(struct session *s)
{
	struct imap_state *is = st(s);
	const char *user = s->route->backend_user != NULL ?
	    s->route->backend_user : s->user;
	struct buf b;

	buf_init(&b, 4 * s->cfg->limits.line_length + 256);
	free_chunks(is);
	buf_append_str(&b, "P1 LOGIN ");
	append_astring(is, &b, user, strlen(user));
	buf_append(&b, " ", 1);
	append_astring(is, &b, s->creds.password, s->creds.password_len);
	buf_append(&b, "\r\n", 2);
	is->chunklen[is->nchunks] = buf_len(&b);
	is->chunks[is->nchunks++] = xstrndup(buf_head(&b), buf_len(&b));
	buf_wipe(&b);
	sasl_creds_clear(&s->creds);
}

static int	send_next_chunk(struct session *s);
static bool	has_capability(const char *caps, const char *cap);

/*
 * Tell an ID-capable backend who the client really is (RFC 2971 with the
 * x-originating-* and x-connected-* fields Dovecot and others honour from
 * trusted proxies), followed by what the client said of itself.  postern's
 * fields come first and the client's reserved ones were dropped, so the
 * backend cannot be told a forged address.  Pipelined before the login;
 * the reply (tag P0) is ignored.
 */
static int
send_id(struct session *s)
{
	struct imap_state *is = st(s);
	char ip[INET6_ADDRSTRLEN] = "", port[8], lip[INET6_ADDRSTRLEN] = "",
	    lport[8];
	struct imap_id_pair ours[] = {
		{ (char *)"x-originating-ip", ip },
		{ (char *)"x-originating-port", port },
		{ (char *)"x-connected-ip", lip },
		{ (char *)"x-connected-port", lport },
	};
	struct buf b;
	int rc;

	/* Both as a PROXY header gave them, if one came. */
	sockaddr_split(&s->peer_addr.sa, ip, sizeof(ip), port, sizeof(port));
	sockaddr_split(&s->local_addr.sa, lip, sizeof(lip), lport, sizeof(lport));
	buf_init(&b, IMAP_ID_WIRE_MAX + 16);
	(void)buf_append_str(&b, "P0 ID ");
	if (imap_id_format(&b, ours, nitems(ours), is->id) < 0 ||
	    buf_append(&b, "\r\n", 2) < 0) {
		buf_free(&b);
		session_backend_failed(s, FAIL_BACKEND, "cannot build the ID command");
		return -1;
	}
	rc = session_backend_send(s, buf_head(&b), buf_len(&b));
	buf_free(&b);
	return rc;
}

static void
start_login(struct session *s)
{
	if (st(s)->backend_id && send_id(s) < 0)
		return;
	if (s->cfg->master.login == BACKEND_LOGIN_MASTER) {
		if (build_master_login(s) < 0)
			return;
	} else
		build_login(s);
	st(s)->step = STEP_LOGIN;
	(void)send_next_chunk(s);
}

/*
 * TLS is up after STARTTLS: what the backend announced in plaintext no
 * longer counts (RFC 3501 6.2.1), so ask again before logging in.
 */
static void
imap_backend_tls_ready(struct session *s)
{
	struct imap_state *is = st(s);

	is->literal_plus = is->sasl_ir = is->backend_id = false;
	is->step = STEP_TLS_CAPABILITY;
	(void)session_backend_send(s, "P0 CAPABILITY\r\n", 15);
}

/* -1 when the login failed meanwhile (the chunks are gone then). */
static int
send_next_chunk(struct session *s)
{
	struct imap_state *is = st(s);
	size_t i = is->chunk++;

	if (session_backend_send(s, is->chunks[i], is->chunklen[i]) < 0)
		return -1;
	explicit_bzero(is->chunks[i], is->chunklen[i]);
	free(is->chunks[i]);
	is->chunks[i] = NULL;
	return 0;
}

/* Text from the backend that is copied to the client: no control bytes. */
static bool
safe_text(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static void
learn_capabilities(struct imap_state *is, const char *caps)
{
	is->literal_plus = has_capability(caps, "LITERAL+");
	is->sasl_ir = has_capability(caps, "SASL-IR");
	is->backend_id = has_capability(caps, "ID");
}

/* Find "[CAPABILITY ...]" at the start of resp-text; returns the list. */
static char *
resp_capability(const char *text, const char **rest_r)
{
	const char *end;

	if (!str_prefix_ci(text, strlen(text), "[CAPABILITY "))
		return NULL;
	if ((end = strchr(text, ']')) == NULL)
		return NULL;
	*rest_r = end[1] == ' ' ? end + 2 : end + 1;
	return xstrndup(text + 12, (size_t)(end - text - 12));
}

static bool
has_capability(const char *caps, const char *cap)
{
	size_t n = strlen(cap);

	for (const char *p = caps; p != NULL && *p != '\0'; ) {
		if (strncasecmp(p, cap, n) == 0 && (p[n] == ' ' || p[n] == '\0'))
			return true;
		p = strchr(p, ' ');
		if (p != NULL)
			p++;
	}
	return false;
}

static void
finish_login(struct session *s)
{
	struct imap_state *is = st(s);
	const char *conf = s->cfg->capability[PROTO_IMAP];
	const char *caps = conf[0] != '\0' ? conf : is->caps;

	if (caps != NULL)
		session_send(s, "%s OK [CAPABILITY %s] %s\r\n", is->tag, caps,
		    is->ok_text != NULL && is->ok_text[0] ? is->ok_text : "Logged in");
	else
		session_send(s, "%s OK %s\r\n", is->tag,
		    is->ok_text != NULL && is->ok_text[0] ? is->ok_text : "Logged in");
	session_backend_ready(s);
}

/* Still in the login dialogue (not failed, not relaying, not in TLS)? */
static bool
backend_talking_imap(const struct session *s)
{
	return s->state == SESSION_BACKEND_LOGIN ||
	    s->state == SESSION_BACKEND_GREETING;
}

/* One backend line, CRLF stripped.  Returns false once the session moved on. */
static bool
backend_line(struct session *s, char *line)
{
	struct imap_state *is = st(s);
	const char *rest;
	char *caps;

	switch (is->step) {
	case STEP_GREETING:
		if (strncmp(line, "* OK", 4) != 0) {
			session_backend_failed(s, FAIL_BACKEND,
			    strncmp(line, "* BYE", 5) == 0 ?
			    "backend refused the connection" : "unexpected greeting");
			return false;
		}
		session_backend_greeted(s);
		rest = line[4] == ' ' ? line + 5 : line + 4;
		if ((caps = resp_capability(rest, &rest)) != NULL) {
			learn_capabilities(is, caps);
			free(caps);
		}
		if (session_backend_tls(s) == TLS_MODE_STARTTLS) {
			is->step = STEP_STARTTLS;
			return session_backend_send(s, "P0 STARTTLS\r\n", 13) == 0;
		}
		session_enter_state(s, SESSION_BACKEND_LOGIN);
		start_login(s);
		return backend_talking_imap(s);
	case STEP_STARTTLS:
		if (line[0] == '*')
			return true;
		if (strncmp(line, "P0 OK", 5) != 0) {
			session_backend_failed(s, FAIL_BACKEND, "backend refused STARTTLS");
			return false;
		}
		session_backend_starttls(s);
		return false;
	case STEP_TLS_CAPABILITY:
		if (str_prefix_ci(line, strlen(line), "* CAPABILITY ")) {
			learn_capabilities(is, line + 13);
			return true;
		}
		if (line[0] == '*')
			return true;
		if (strncmp(line, "P0 OK", 5) != 0) {
			session_backend_failed(s, FAIL_BACKEND,
			    "backend refused CAPABILITY after STARTTLS");
			return false;
		}
		start_login(s);
		return backend_talking_imap(s);
	case STEP_LOGIN:
	case STEP_CAPABILITY:
		if (line[0] == '+' && is->step == STEP_LOGIN) {
			if (is->chunk >= is->nchunks) {
				session_backend_failed(s, FAIL_BACKEND,
				    "unexpected continuation");
				return false;
			}
			return send_next_chunk(s) == 0;
		}
		if (str_prefix_ci(line, strlen(line), "* CAPABILITY ")) {
			if (safe_text(line + 13)) {
				free(is->caps);
				is->caps = xstrdup(line + 13);
			}
			return true;
		}
		if (line[0] == '*' || strncmp(line, "P0 ", 3) == 0)
			return true;	/* untagged data, or the reply to our ID */
		if (strncmp(line, is->step == STEP_LOGIN ? "P1 " : "P2 ", 3) != 0) {
			session_backend_failed(s, FAIL_BACKEND, "unexpected reply");
			return false;
		}
		rest = line + 3;
		if (str_prefix_ci(rest, strlen(rest), "OK")) {
			rest += rest[2] == ' ' ? 3 : 2;
			if (is->step == STEP_LOGIN && is->chunk < is->nchunks) {
				/*
				 * A login cannot succeed before its password
				 * literal was sent: the literal stays owed and
				 * the backend's stream is out of step with ours.
				 */
				session_backend_failed(s, FAIL_BACKEND,
				    "login accepted before its literal was sent");
				return false;
			}
			if (is->step == STEP_LOGIN) {
				if ((caps = resp_capability(rest, &rest)) != NULL) {
					free(is->caps);
					is->caps = safe_text(caps) ? caps : NULL;
					if (is->caps == NULL)
						free(caps);
				}
				free(is->ok_text);
				is->ok_text = safe_text(rest) ? xstrdup(rest) : NULL;
				if (is->caps == NULL && s->cfg->capability[PROTO_IMAP][0] == '\0') {
					is->step = STEP_CAPABILITY;
					return session_backend_send(s,
					    "P2 CAPABILITY\r\n", 15) == 0;
				}
			}
			finish_login(s);
			return false;
		}
		if (is->step == STEP_LOGIN && str_prefix_ci(rest, strlen(rest), "NO")) {
			rest += rest[2] == ' ' ? 3 : 2;
			session_backend_failed(s, FAIL_AUTH, safe_text(rest) ? rest : NULL);
			return false;
		}
		session_backend_failed(s, FAIL_BACKEND, rest);
		return false;
	}
	return false;
}

static void
imap_backend_input(struct session *s)
{
	session_backend_lines(s, backend_line);
}

static void
imap_backend_reset(struct session *s)
{
	struct imap_state *is = st(s);

	free_chunks(is);
	is->step = STEP_GREETING;
	free(is->caps);
	free(is->ok_text);
	is->caps = is->ok_text = NULL;
	is->literal_plus = is->sasl_ir = is->backend_id = false;
}

static void
imap_login_failed(struct session *s, enum session_fail fail, const char *text)
{
	struct imap_state *is = st(s);

	switch (fail) {
	case FAIL_AUTH:
		if (text != NULL && text[0] != '\0')
			session_send(s, "%s NO %s\r\n", is->tag, text);
		else
			session_send(s, "%s NO [AUTHENTICATIONFAILED] Authentication "
			    "failed\r\n", is->tag);
		break;
	case FAIL_BAD_USER:
	case FAIL_NO_USER:
		session_send(s, "%s NO [AUTHENTICATIONFAILED] Authentication "
		    "failed\r\n", is->tag);
		break;
	case FAIL_USER_LIMIT:
		/* RFC 5530: an implementation limit, such as concurrent sessions. */
		session_send(s, "%s NO [LIMIT] Too many sessions for this user\r\n",
		    is->tag);
		break;
	default:
		session_send(s, "%s NO [UNAVAILABLE] Mail store temporarily "
		    "unavailable, try again later\r\n", is->tag);
		break;
	}
}

const struct proto_ops imap_proto = {
	.name = "imap",
	.start = imap_start,
	.client_input = imap_client_input,
	.backend_input = imap_backend_input,
	.backend_tls_ready = imap_backend_tls_ready,
	.backend_reset = imap_backend_reset,
	.login_failed = imap_login_failed,
	.bye = imap_bye,
	.free = imap_free,
};

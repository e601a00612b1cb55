/*
 * One client connection from accept to close.  Every transition goes
 * through session_enter_state(); the state decides which events matter.
 *
 *   [PROXY_HEADER] -> GREETING -> [TLS_HANDSHAKE] -> PREAUTH (<-> TLS_HANDSHAKE) -> LOOKUP
 *     -> [AUTH_VERIFY] -> BACKEND_CONNECT -> BACKEND_GREETING
 *     -> [BACKEND_STARTTLS] -> BACKEND_LOGIN -> RELAY -> CLOSING
 *
 * PROXY_HEADER comes first on proxy_protocol listeners: the peer (a
 * trusted balancer) says who the client is before anything else is read
 * or sent, within timeouts.proxy_header.
 *
 * A backend that gives no greeting sends the session back to
 * BACKEND_CONNECT for the route's next address or host.  A failed login
 * returns to PREAUTH (the client may try again) until
 * limits.auth_failures.  Sessions belong to one worker thread and are never
 * touched by another, so nothing here takes a lock.
 */
#ifndef POSTERN_SESSION_H
#define POSTERN_SESSION_H

#include <netdb.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "config.h"
#include "conn.h"
#include "proxy_proto.h"
#include "loop.h"
#include "sasl.h"
#include "username.h"

struct worker;
struct gen;
struct route;
struct dir_request;
struct resolve_request;
struct addr_list;
struct relay;
struct proto_ops;

enum session_state {
	SESSION_PROXY_HEADER,		/* proxy_protocol listener: the header first */
	SESSION_GREETING,
	SESSION_TLS_HANDSHAKE,		/* client TLS: implicit, or after STARTTLS */
	SESSION_PREAUTH,
	SESSION_LOOKUP,
	SESSION_AUTH_VERIFY,		/* auth.verify: the directory checks the password */
	SESSION_BACKEND_CONNECT,
	SESSION_BACKEND_GREETING,
	SESSION_BACKEND_STARTTLS,
	SESSION_BACKEND_LOGIN,
	SESSION_RELAY,
	SESSION_CLOSING,
	SESSION_STATE_COUNT
};

/*
 * Why a login did not complete.  This enum alone decides the reply to the
 * client and whether the next backend host is tried.
 */
enum session_fail {
	FAIL_NONE,
	FAIL_BAD_USER,		/* the name breaks the user-name rules: NO, may retry */
	FAIL_NO_USER,		/* the directory has no such user: NO, may retry */
	FAIL_AUTH,		/* the backend refused the credentials: its NO, may retry */
	FAIL_DIR_TEMP,		/* directory unreachable or ambiguous: [UNAVAILABLE] */
	FAIL_DIR_TIMEOUT,	/* no directory answer in timeouts.lookup: [UNAVAILABLE] */
	FAIL_RESOLVE,		/* backend host name does not resolve: next host */
	FAIL_CONNECT,		/* connect or greeting failed: next address/host */
	/*
	 * The backend broke protocol, closed or stalled: [UNAVAILABLE].
	 * Before its greeting was taken it counts as FAIL_CONNECT instead.
	 */
	FAIL_BACKEND,
	FAIL_DRAINED,		/* every host of the route is drained: [UNAVAILABLE] */
	FAIL_DOWN,		/* every address left is down (health): [UNAVAILABLE] */
	FAIL_USER_LIMIT,	/* limits.per_user reached: IMAP [LIMIT], POP3 [SYS/TEMP] */
	FAIL_COUNT
};

struct session {
	struct worker		*worker;
	struct loop		*loop;
	struct gen		*gen;		/* config + directory, referenced */
	const struct config	*cfg;		/* gen's config */
	const struct listen_cfg	*listen;
	const struct proto_ops	*proto;
	void			*proto_state;	/* freed when the relay starts */
	enum session_state	 state;

	struct conn		 client;
	struct conn		 backend;
	struct timer		 timer;		/* the one deadline of the state */
	uint64_t		 started_ms;
	uint64_t		 lookup_us;	/* directory lookup began (metrics) */
	uint64_t		 active_ms;	/* last relay traffic */
	time_t			 since;		/* wall clock at accept */

	struct sasl_creds	 creds;		/* wiped once sent to the backend */
	char			*user;		/* normalised login, once known */
	char			*login;		/* as the client sent it, escaped: logs */
	struct dir_request	*lookup;
	struct route		*route;
	size_t			 host_idx;	/* route->hosts[] being tried */
	size_t			 addr_idx;	/* a named backend's addresses[] */
	struct resolve_request	*resolving;
	/* listen[].domain_from "local_name": the address's name, asked */
	struct resolve_request	*local_name;
	bool			 local_name_known;	/* answered: domain is set */
	bool			 login_waits;	/* for local_name's answer */
	bool			 has_domain;	/* else username.default_domain */
	char			 domain[DOMAIN_NAME_MAX + 1];	/* for bare logins */
	struct addr_list	*addrs;		/* of the current host */
	size_t			 addr_pos;	/* addrs->a[] being tried */
	enum session_fail	 last_fail;
	enum session_fail	 delayed_fail;	/* sent when the failure delay ends */
	char			*delayed_text;	/* the backend's reason for it, or NULL */
	bool			 refusing;	/* the refusal is logged and throttled */
	bool			 per_user_counted;	/* holds a limits.per_user slot */
	char			 backend_name[80];
	char			*backend_host;	/* route host relayed to, once known */

	unsigned		 auth_failures;
	unsigned		 bad_commands;
	uint32_t		 cmd_credit;	/* pre-login commands, in 1/1000 */
	uint64_t		 cmd_stamp_ms;	/* when cmd_credit was last topped up */
	bool			 skipping;	/* discarding an overlong line */
	bool			 lingering;	/* closed; draining the client's input */
	bool			 linger_shut;	/* our sending side is shut */
	size_t			 linger_bytes;	/* discarded while lingering */
	bool			 client_tls;	/* TLS is up with the client */
	bool			 greet_after_tls;	/* implicit TLS: greet when up */
	/* Its greeting was taken: later TLS is STARTTLS, no other host is tried. */
	bool			 backend_greeted;
	bool			 health_told;	/* this address's verdict is reported */
	uint64_t		 bytes_in;	/* client to backend, after login */
	uint64_t		 bytes_out;	/* backend to client, after login */
	struct relay		*relay;

	struct session		*prev, *next;	/* the worker's list */
	union {
		struct sockaddr		sa;
		struct sockaddr_in	in;
		struct sockaddr_in6	in6;
	}			 peer_addr;	/* 28 bytes, not 128; PROXY's source */
	union proxy_addr	 local_addr;	/* what the client connected to */
	bool			 per_ip_counted;
	/* Closed: no longer counted for limits.connections, nor per_ip. */
	bool			 connection_released;
	char			 peer[56];
	char			 id[20];	/* for logs and XCLIENT SESSION= */
};

/*
 * Accept path: take ownership of fd.  On a proxy_protocol listener the
 * peer has been checked against proxy.trusted_networks, and is not counted
 * for limits.per_ip (per_ip_counted false): the address the header gives
 * is counted once it is known.
 */
void	session_start(struct worker *w, struct gen *gen,
	    const struct listen_cfg *listen, int fd, const struct sockaddr *peer,
	    bool per_ip_counted);

void	session_enter_state(struct session *s, enum session_state state);
const char *session_state_name(enum session_state state);

/*
 * Feed complete backend lines (CRLF stripped) to `fn` until it returns
 * false or no whole line is left.  Each line leaves the buffer before `fn`
 * sees it: after the login, whatever remains belongs to the client.
 */
void	session_backend_lines(struct session *s,
	    bool (*fn)(struct session *s, char *line));

/*
 * Commands before login are paced, not counted: a client may pipeline a
 * burst of SESSION_PREAUTH_BURST, then SESSION_PREAUTH_RATE a second; one
 * that goes faster is told goodbye.  (limits.bad_commands and the login
 * timeout bound the rest.)
 */
#define SESSION_PREAUTH_BURST		4096
#define SESSION_PREAUTH_RATE		256
/* Stop reading client commands while this much output waits unread. */
#define SESSION_CLIENT_BACKLOG		(16 * 1024)

/*
 * Take the next client line (CRLF or LF stripped, NUL-terminated, in place)
 * for protocols that read plain lines.  1 with *line_r, *len_r and the bytes
 * to consume in *used_r; 0 when more input is needed; -1 when the line is
 * longer than limits.line_length (the rest of it will be discarded).
 */
int	session_next_line(struct session *s, char **line_r, size_t *len_r,
	    size_t *used_r);
/* Count a command before login; false (and the session closing) past the rate. */
bool	session_count_command(struct session *s);
/*
 * The rate itself (session_input.c): take one command's credit at time
 * `now` (ms); false if there is none (SESSION_PREAUTH_BURST, then
 * SESSION_PREAUTH_RATE per second).
 */
bool	session_pace(struct session *s, uint64_t now);
/*
 * Discard the rest of an overlong line (session_next_line() said -1, or
 * the protocol gave up on a line): true once it is gone, false when more
 * input is needed.
 */
bool	session_skip_overlong(struct session *s);
/* Is there room to answer another command now? */
bool	session_can_answer(const struct session *s);

/* Queue bytes for the client (pre-auth replies). */
void	session_send(struct session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));
void	session_send_raw(struct session *s, const void *data, size_t len);
/*
 * Queue bytes for the backend (login dialogue).  -1 when they do not fit:
 * the login has then failed (session_backend_failed) and the caller must
 * stop.
 */
int	session_backend_send(struct session *s, const void *data, size_t len);
int	session_backend_printf(struct session *s, const char *fmt, ...)
	    __attribute__((format(printf, 2, 3)));

/* The listener offers STARTTLS and it has not happened yet. */
bool	session_starttls_offered(const struct session *s);
/* Plaintext login is refused until STARTTLS (tls = "required"). */
bool	session_tls_required(const struct session *s);
/*
 * The protocol queued its "go ahead" to STARTTLS/STLS: drop whatever the
 * client sent after the command (it was sent in plaintext and must never
 * be taken as commands), flush the reply, then hand-shake.
 */
void	session_starttls(struct session *s);
/* TLS mode towards the backend being tried. */
enum tls_mode session_backend_tls(const struct session *s);
/*
 * The backend's greeting was a good one: its address answers (health),
 * whatever becomes of the login after it.  Call it before sending the
 * backend anything of the login: until then a failure moves the login on
 * to the route's next address or host, after it the login fails.
 */
void	session_backend_greeted(struct session *s);
/* The backend said yes to STARTTLS/STLS: hand-shake, then backend_tls_ready. */
void	session_backend_starttls(struct session *s);

/* The protocol has a complete login in s->creds: look up and connect. */
void	session_login(struct session *s);
/* The protocol saw a bad command; closes the session past the limit. */
void	session_bad_command(struct session *s);
/* The backend accepted the login and the client's OK is queued: relay. */
void	session_backend_ready(struct session *s);
/*
 * The backend login failed; `text` is the backend's reason (may be NULL).
 * FAIL_BACKEND before session_backend_greeted() only gives up this
 * address: the next one is tried, as after a refused connect.
 */
void	session_backend_failed(struct session *s, enum session_fail fail,
	    const char *text);
/* Close now (after a best-effort flush of pending client output). */
void	session_close(struct session *s, const char *outcome);
/* Ask the client to leave (drain, shutdown): a goodbye, then close. */
void	session_shutdown(struct session *s, const char *text);
/* End now, lingering close included (stop). */
void	session_abort(struct session *s);
/*
 * The administrator (or a moved mailbox) ends the session.  Relaying: the
 * backend is closed first, what is queued for the client is flushed, then
 * IMAP clients get "* BYE reason" and POP3 clients just the close.  Before
 * that, the usual goodbye.
 */
void	session_kick(struct session *s, const char *reason);

/* The relay is over (either side closed, error or idle timeout). */
void	session_relay_done(struct session *s, const char *outcome);

/* Does this failure let the client try again on the same connection? */
bool	session_fail_retryable(enum session_fail fail);
/* Is it a temporary failure ([UNAVAILABLE] / [SYS/TEMP])? */
bool	session_fail_temporary(enum session_fail fail);
const char *session_fail_name(enum session_fail fail);

#endif

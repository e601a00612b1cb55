/*
 * The protocol interface.  A protocol is a table of functions that the
 * session calls at fixed points; everything shared (limits, timeouts,
 * lookup, backend connect, relay) lives in session.c, once.
 */
#ifndef POSTERN_PROTO_H
#define POSTERN_PROTO_H

#include "session.h"

struct proto_ops {
	const char	*name;
	/* Allocate s->proto_state; queue the greeting if `greet`. */
	void		(*start)(struct session *s, bool greet);
	/*
	 * Consume buffered client input while in SESSION_PREAUTH: answer
	 * commands, and call session_login() when credentials are complete.
	 * Returns when input runs out or the state changes.
	 */
	void		(*client_input)(struct session *s);
	/*
	 * Consume backend input in BACKEND_GREETING / BACKEND_LOGIN: drive
	 * the backend login, then call session_backend_ready() or
	 * session_backend_failed().
	 */
	void		(*backend_input)(struct session *s);
	/* TLS with the backend came up after STARTTLS: go on with the login. */
	void		(*backend_tls_ready)(struct session *s);
	/*
	 * Forget what a backend said and what was prepared for it (its
	 * step, capabilities, login pieces, wiped): the next backend starts
	 * from its greeting.  Called before each address is tried and before
	 * login_failed; the client's side (tag, mode) stays.
	 */
	void		(*backend_reset)(struct session *s);
	/* Queue the client's answer to a failed login. */
	void		(*login_failed)(struct session *s, enum session_fail fail,
			    const char *text);
	/* Queue a goodbye before the session closes on its own (timeout, limit). */
	void		(*bye)(struct session *s, const char *text);
	/* Free s->proto_state (wiping secrets). */
	void		(*free)(struct session *s);
	/*
	 * Optional: a look at what is relayed after login.  With it, the
	 * relay moves bytes through the connections' buffers (never by
	 * splice) and calls filter_new once as it starts, then filter for a
	 * direction whenever that direction may move: filter takes what it
	 * can from the source's input buffer (client.in when from_client,
	 * else backend.in), appends what may pass to the other side's output
	 * buffer as far as its room allows, and may queue an answer of its
	 * own in client.out.  `eof`: the source sent all it will.  Returns 0
	 * when it wants more input (it may keep a few bytes it cannot judge
	 * yet, never more than a bound of its own), 1 when it holds bytes or
	 * an answer back for another reason (no room yet, or an answer waits
	 * for the backend's), -1 when the stream cannot be followed
	 * (*error_r): the session closes.  It calls no session function.
	 */
	void		*(*filter_new)(struct session *s);
	int		 (*filter)(struct session *s, void *f, bool from_client,
			    bool eof, const char **error_r);
	void		 (*filter_free)(void *f);
};

extern const struct proto_ops imap_proto;
extern const struct proto_ops pop3_proto;
extern const struct proto_ops sieve_proto;

#endif

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
	/* Queue the client's answer to a failed login. */
	void		(*login_failed)(struct session *s, enum session_fail fail,
			    const char *text);
	/* Queue a goodbye before the session closes on its own (timeout, limit). */
	void		(*bye)(struct session *s, const char *text);
	/* Free s->proto_state (wiping secrets). */
	void		(*free)(struct session *s);
};

extern const struct proto_ops imap_proto;
extern const struct proto_ops pop3_proto;
extern const struct proto_ops sieve_proto;

#endif

/*
 * A stand-in for session.c that lets a fuzz target drive imap.c or pop3.c
 * through struct proto_ops with no sockets, loop, directory or TLS.  The
 * session_* functions the protocols call keep session.c's semantics (line
 * framing, the command pacing, the bad-command and auth-failure limits,
 * the state changes); what needs the network is simulated: a login
 * "finds" a route at once, TLS handshakes succeed at once, and the
 * backend's side of the dialogue comes from the fuzz input.
 *
 * Input layout for stub_dialogue():
 *
 *   byte 0          flags (see STUB_* below)
 *   up to 0x01      what the client sends (fed in chunks)
 *   then, each up to the next 0x01:
 *                   what the backend says to one login attempt
 *
 * Invariants checked (abort() on violation):
 *   - everything queued for the client is CRLF-terminated lines with no
 *     bare CR, LF or NUL;
 *   - everything queued for the backend is lines with no bare CR or LF
 *     (IMAP: outside literals, whose announced size is honoured);
 *   - session_login() comes in PREAUTH with a user name and a password;
 *     the relay starts only from BACKEND_LOGIN, after login commands went
 *     to the backend, with the credentials already wiped.
 */
#ifndef POSTERN_FUZZ_SESSION_STUB_H
#define POSTERN_FUZZ_SESSION_STUB_H

#include <stddef.h>
#include <stdint.h>

#include "proto.h"

#define STUB_LISTEN_TLS(f)	((f) & 3)	/* none, starttls, required, implicit */
#define STUB_BACKEND_STARTTLS	0x04
#define STUB_MASTER		0x08		/* backend.login = "master" */
#define STUB_BACKEND_USER	0x10		/* the route rewrites the login */
#define STUB_SMALL_LINES	0x20		/* limits.line_length = 512 */
#define STUB_CHUNK(f)		(((f) >> 6) & 3)	/* 1, 3, 17 bytes or all */

/* Run one fuzz input through `proto`. */
void	stub_dialogue(const struct proto_ops *proto, enum proto_id id,
	    const uint8_t *data, size_t size);

#endif

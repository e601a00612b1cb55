/*
 * After login the session is a byte pump.  Nothing protocol-specific runs
 * here but a protocol's filter, when it has one (proto_ops.filter: only
 * ManageSieve), which then sees every byte through the buffers.  Otherwise
 * between plain sockets bytes move with splice(2) through pipes borrowed
 * from the worker's pool only while data is in flight; readiness is
 * edge-triggered, so the pump makes no epoll_ctl calls per transfer.
 */
#ifndef POSTERN_RELAY_H
#define POSTERN_RELAY_H

struct session;

/* Start relaying; calls session_relay_done() when it is over. */
void	relay_start(struct session *s);
/*
 * Move what the backend sent that is still in flight (a pipe, a TLS
 * buffer) into the client's output buffer, so that a close flushes it.
 */
void	relay_salvage(struct session *s);
/* Release pipes; the session closes the sockets. */
void	relay_free(struct session *s);

#endif

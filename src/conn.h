/*
 * One side of a session: a non-blocking socket, its loop watch, and input
 * and output buffers that hold memory only while they hold bytes.  The TLS
 * layer will slot in here, below the buffers, so nothing above changes.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdbool.h>
#include <sys/types.h>

#include <openssl/ssl.h>

#include "buf.h"
#include "loop.h"

struct conn {
	int		 fd;		/* -1 when closed */
	struct watch	 watch;
	struct buf	 in;
	struct buf	 out;
	bool		 eof;		/* the peer closed its sending side */
	bool		 readable;	/* input may be waiting: read before waiting */
	bool		 writable;	/* the relay's edge-triggered output readiness */
	SSL		*ssl;		/* NULL: plaintext */
	bool		 want_read;	/* TLS needs the socket readable to go on */
	bool		 want_write;	/* TLS needs the socket writable to go on */
	bool		 edge;		/* registered edge-triggered for good */
	bool		 rdhup;		/* the peer's FIN has been seen by epoll */
};

void	conn_init(struct conn *c, int fd, size_t inmax, size_t outmax,
	    watch_cb *cb, void *arg);
/*
 * Read what the socket has, up to the input maximum.  Returns the bytes
 * read (0: none waiting, no room, or EOF already seen), or -1 on an error.
 * A clean EOF is not an error: c->eof is set and the bytes before it are
 * returned.  Afterwards c->readable tells whether more may be waiting: it is
 * cleared when the socket (and TLS) ran dry or at EOF, and set when the
 * buffer filled first.  Whoever consumes input must then read again: an
 * edge-triggered socket gives no new event for bytes already there, and
 * TLS may hold decrypted bytes that no socket event announces.
 */
ssize_t	conn_read(struct conn *c);
/* Write buffered output.  1 all written, 0 some left (wait for EPOLLOUT), -1 error. */
int	conn_flush(struct conn *c);
/*
 * Update the loop interest of a level-triggered connection: input
 * (EPOLLIN | EPOLLRDHUP) only while `reading`, the buffer has room and no EOF
 * was seen -- a full buffer or a read-out peer must not keep reporting
 * readiness -- and EPOLLOUT while output waits.  EPOLLERR and EPOLLHUP come
 * regardless: they mean the connection is dead.  A no-op for edge-triggered
 * connections (registered for all).
 */
int	conn_update(struct conn *c, struct loop *loop, bool reading);
/*
 * Raw transfers, TLS-aware: bytes moved, 0 if the socket (or TLS) would
 * block, -1 on error or (recv) EOF, with c->eof set on a clean EOF.
 */
ssize_t	conn_recv(struct conn *c, void *data, size_t len);
ssize_t	conn_send(struct conn *c, const void *data, size_t len);
/* Start TLS on the connection (server or client side).  0 or -1. */
int	conn_tls_start(struct conn *c, SSL_CTX *ctx, bool server);
/* Drive the handshake: 1 done, 0 in progress (see want_*), -1 failed. */
int	conn_tls_handshake(struct conn *c);

/* Unwatch, close the fd, free the buffers (input is wiped: it may hold secrets). */
void	conn_close(struct conn *c, struct loop *loop);

#endif

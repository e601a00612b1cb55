/*
 * One side of a session: a non-blocking socket, its loop watch, and input
 * and output buffers that hold memory only while they hold bytes.  The TLS
 * layer will slot in here, below the buffers, so nothing above changes.
 */
#ifndef POSTERN_CONN_H
#define POSTERN_CONN_H

#include <stdbool.h>
#include <sys/types.h>

#include "buf.h"
#include "loop.h"

struct conn {
	int		 fd;		/* -1 when closed */
	struct watch	 watch;
	struct buf	 in;
	struct buf	 out;
	bool		 eof;		/* the peer closed its sending side */
	bool		 readable;	/* edge-triggered readiness (relay) */
	bool		 writable;
};

void	conn_init(struct conn *c, int fd, size_t inmax, size_t outmax,
	    watch_cb *cb, void *arg);
/*
 * Read what the socket has, up to the input maximum.  Returns bytes read,
 * 0 if nothing was available (or no room), -1 on EOF or error (c->eof set
 * on a clean EOF).
 */
ssize_t	conn_read(struct conn *c);
/* Write buffered output.  1 all written, 0 some left (wait for EPOLLOUT), -1 error. */
int	conn_flush(struct conn *c);
/* Update the loop interest: EPOLLIN if `reading`, EPOLLOUT while output waits. */
int	conn_update(struct conn *c, struct loop *loop, bool reading);
/* Unwatch, close the fd, free the buffers (input is wiped: it may hold secrets). */
void	conn_close(struct conn *c, struct loop *loop);

#endif

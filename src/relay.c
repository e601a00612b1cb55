#include "autoconf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "proto.h"
#include "relay.h"
#include "server.h"
#include "session.h"
#include "util.h"

/* Bytes asked of one splice(2) call: the pipe size caps it anyway. */
#define RELAY_SPLICE_CHUNK	(1024 * 1024)
/* Bytes one session may move per wake-up before yielding to the others. */
#define RELAY_BUDGET		(4 * 1024 * 1024)
/*
 * Small messages (commands, replies) go by recv/send through a buffer on
 * the stack: two syscalls where splice needs three.  A full read means
 * more is coming, and the direction switches to splice until it drains.
 */
#define RELAY_SMALL		(16 * 1024)
/* With TLS on either side: bytes in flight per direction (one TLS record). */
#define RELAY_TLS_BUF		(16 * 1024)

struct relay_dir {
	struct conn	*src;
	struct conn	*dst;
	int		 pipe[2];	/* -1 while nothing is in flight */
	size_t		 inpipe;
	bool		 eof;		/* src has no more to send */
	bool		 shut;		/* dst's sending side is shut */
	uint64_t	*bytes;
	uint64_t	*total;		/* the worker's, for the metrics */
	struct relay_dir *other;	/* the opposite direction */
	bool		 bulk;		/* large transfer under way: splice */
};

struct relay {
	struct relay_dir dir[2];	/* client to backend, backend to client */
	bool		 resume_posted;
	bool		 buffered;	/* TLS somewhere, or a filter: no splice */
	void		*filter;	/* the protocol's (proto_ops.filter) */
	const char	*why;		/* the filter's reason to stop */
};

static void	relay_run(struct session *s);

/* Bytes moved one way: the session's count and the worker's total. */
static inline void
dir_count(struct relay_dir *d, uint64_t n)
{
	*d->bytes += n;
	*d->total += n;
}

static void
dir_release_pipe(struct session *s, struct relay_dir *d)
{
	if (d->pipe[0] < 0)
		return;
	if (d->inpipe == 0)
		pipe_pool_put(&s->worker->pipes, d->pipe);
	else {
		close(d->pipe[0]);
		close(d->pipe[1]);
	}
	d->pipe[0] = d->pipe[1] = -1;
	d->inpipe = 0;
}

/*
 * Bytes queued before the relay began (replies, pipelined commands) go
 * first.  1 when none are left, 0 when dst is full, -1 on error.
 */
static int
flush_queued(struct relay_dir *d)
{
	int rc;

	if (buf_len(&d->dst->out) == 0)
		return 1;
	if (!d->dst->writable)
		return 0;
	if ((rc = conn_flush(d->dst)) == 0)
		d->dst->writable = false;
	return rc;
}

/*
 * One small read and its write.  A short read leaves the socket empty (a
 * TCP receive takes all there is), so no read is wasted on EAGAIN; new data
 * brings a new edge.  What the destination does not take now waits in its
 * output buffer.  Bytes moved, or -1.
 */
static ssize_t
pump_small(struct relay_dir *d)
{
	char chunk[RELAY_SMALL];
	ssize_t n, w;

	n = recv(d->src->fd, chunk, sizeof(chunk), 0);
	if (n == 0) {
		d->eof = d->src->eof = true;
		return 0;
	}
	if (n < 0) {
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			d->src->readable = false;
			return 0;
		}
		return errno == EINTR ? 0 : -1;
	}
	/*
	 * A FIN that came with the data gives no further edge: then read on
	 * until recv says EOF.
	 */
	if ((size_t)n == sizeof(chunk))
		d->bulk = true;
	else if (!d->src->rdhup)
		d->src->readable = false;
	dir_count(d, (uint64_t)n);
	w = d->dst->writable ? send(d->dst->fd, chunk, (size_t)n, MSG_NOSIGNAL) : 0;
	if (w < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -1;
		w = 0;
	}
	if (w < n) {
		d->dst->writable = false;
		if (buf_append(&d->dst->out, chunk + w, (size_t)(n - w)) < 0)
			return -1;
	}
	return n;
}

/*
 * Move what can be moved from d->src to d->dst without blocking.  Returns
 * bytes moved, or -1 on a socket error.
 */
static ssize_t
pump(struct session *s, struct relay_dir *d, size_t budget)
{
	size_t moved = 0;
	ssize_t n;
	int rc;

	if ((rc = flush_queued(d)) <= 0)
		return rc;
	while (moved < budget) {
		while (d->inpipe > 0) {
			if (!d->dst->writable)
				return (ssize_t)moved;
			n = splice(d->pipe[0], NULL, d->dst->fd, NULL, d->inpipe,
			    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
			if (n > 0) {
				d->inpipe -= (size_t)n;
				dir_count(d, (uint64_t)n);
				moved += (size_t)n;
			} else if (n < 0 && errno == EAGAIN)
				d->dst->writable = false;
			else if (n < 0 && errno == EINTR)
				continue;
			else
				return -1;
		}
		if (d->eof || !d->src->readable || buf_len(&d->dst->out) > 0)
			break;
		if (!d->bulk) {
			if ((n = pump_small(d)) < 0)
				return -1;
			moved += (size_t)n;
			continue;
		}
		if (d->pipe[0] < 0 && pipe_pool_get(&s->worker->pipes, d->pipe) == 0) {
			/* No descriptor for a pipe: copy through user space. */
			if ((n = pump_small(d)) < 0)
				return -1;
			moved += (size_t)n;
			continue;
		}
		n = splice(d->src->fd, NULL, d->pipe[1], NULL, RELAY_SPLICE_CHUNK,
		    SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
		if (n > 0)
			d->inpipe = (size_t)n;
		else if (n == 0)
			d->eof = d->src->eof = true;
		else if (errno == EAGAIN) {
			d->src->readable = false;
			d->bulk = false;	/* the burst is over */
		} else if (errno != EINTR)
			return -1;
	}
	if (d->inpipe == 0)
		dir_release_pipe(s, d);
	if (d->eof && d->inpipe == 0 && !d->shut) {
		/*
		 * Pass the half-close on while the other direction goes on;
		 * when it is already done, the close that follows says it all.
		 */
		if (!d->other->shut)
			(void)shutdown(d->dst->fd, SHUT_WR);
		d->shut = true;
	}
	return (ssize_t)moved;
}

/*
 * One read from the source into its input buffer: 0, or -1 on an error.
 * Nothing to read clears readable; the peer's close sets eof.
 */
static int
fill_in(struct relay_dir *d)
{
	struct buf *b = &d->src->in;
	char *p;
	size_t avail;
	ssize_t n;

	if (buf_reserve(b, RELAY_TLS_BUF, &p, &avail) < 0)
		return -1;
	n = conn_recv(d->src, p, avail);
	if (n > 0)
		buf_commit(b, (size_t)n);
	else if (n == 0)
		d->src->readable = false;
	else if (d->src->eof)
		d->eof = true;
	else
		return -1;
	if (buf_len(b) == 0)
		buf_free(b);
	return 0;
}

/*
 * The same with TLS on either side: through a small buffer (the source's
 * input buffer, released whenever it drains, so idle sessions hold none).
 */
static ssize_t
pump_buffered(struct relay_dir *d, size_t budget)
{
	struct buf *b = &d->src->in;
	size_t moved = 0;
	ssize_t n;
	int rc;

	if ((rc = flush_queued(d)) <= 0)
		return rc;
	while (moved < budget) {
		if (buf_len(b) > 0) {
			if (!d->dst->writable)
				break;
			n = conn_send(d->dst, buf_head(b), buf_len(b));
			if (n < 0)
				return -1;
			if (n == 0) {
				d->dst->writable = false;
				break;
			}
			buf_consume(b, (size_t)n);
			dir_count(d, (uint64_t)n);
			moved += (size_t)n;
			continue;
		}
		if (d->eof || !d->src->readable)
			break;
		if (fill_in(d) < 0)
			return -1;
	}
	if (d->eof && buf_len(b) == 0 && !d->shut) {
		if (d->dst->ssl != NULL)
			(void)SSL_shutdown(d->dst->ssl);
		(void)shutdown(d->dst->fd, SHUT_WR);
		d->shut = true;
	}
	return (ssize_t)moved;
}

/*
 * The same through the protocol's filter: what it lets pass lands in the
 * destination's output buffer, so every move is a flush.  The source is
 * read only while the filter wants input: one that holds bytes back for
 * another reason (no room, or waiting for the other direction) holds the
 * source too, and the other direction's progress runs it again (see
 * relay_run).  What it keeps while it waits for more input is bounded by
 * the protocol (a command's name).
 */
static ssize_t
pump_filtered(struct session *s, struct relay_dir *d, size_t budget)
{
	struct relay *r = s->relay;
	struct buf *b = &d->src->in;
	bool from_client = d == &r->dir[0];
	size_t moved = 0, before;
	ssize_t n;
	int rc, held = 0;

	while (moved < budget) {
		/*
		 * What is flushed counts as progress too: room in the client's
		 * buffer may be what the other direction's filter waits for.
		 */
		before = buf_len(&d->dst->out);
		if ((rc = flush_queued(d)) < 0)
			return -1;
		moved += before - buf_len(&d->dst->out);
		if (rc == 0)
			break;
		before = buf_len(&d->dst->out);
		held = s->proto->filter(s, r->filter, from_client, d->eof,
		    &r->why);
		if (held < 0)
			return -1;
		n = (ssize_t)(buf_len(&d->dst->out) - before);
		dir_count(d, (uint64_t)n);
		moved += (size_t)n;
		if (n > 0)
			continue;
		if (held || d->eof || !d->src->readable)
			break;
		if (fill_in(d) < 0)
			return -1;
	}
	if (d->eof && !held && buf_len(b) == 0 && buf_len(&d->dst->out) == 0 &&
	    !d->shut) {
		if (d->dst->ssl != NULL)
			(void)SSL_shutdown(d->dst->ssl);
		(void)shutdown(d->dst->fd, SHUT_WR);
		d->shut = true;
	}
	return (ssize_t)moved;
}

static void
relay_resume(void *arg)
{
	struct session *s = arg;

	if (s->state != SESSION_RELAY || s->relay == NULL)
		return;
	s->relay->resume_posted = false;
	relay_run(s);
}

static void
relay_run(struct session *s)
{
	struct relay *r = s->relay;
	size_t total = 0;
	bool more;

	do {
		more = false;
		for (int i = 0; i < 2; i++) {
			struct relay_dir *d = &r->dir[i];
			ssize_t n;

			if (r->filter != NULL)
				n = pump_filtered(s, d, RELAY_BUDGET);
			else if (r->buffered)
				n = pump_buffered(d, RELAY_BUDGET);
			else
				n = pump(s, d, RELAY_BUDGET);
			if (n < 0) {
				session_relay_done(s, r->why != NULL ? r->why :
				    errno == ECONNRESET || errno == EPIPE ?
				    "connection reset" : "relay error");
				return;
			}
			total += (size_t)n;
			/*
			 * The other direction's writes may have unblocked this
			 * one; through a filter, its reads may have released
			 * what the filter held back.
			 */
			if (n > 0 && (r->filter != NULL || d->src->readable ||
			    d->inpipe > 0 || buf_len(&d->src->in) > 0))
				more = true;
		}
	} while (more && total < RELAY_BUDGET);

	if (total > 0)
		s->active_ms = loop_now(s->loop);
	if (r->dir[0].shut && r->dir[1].shut) {
		session_relay_done(s, "closed");
		return;
	}
	if (total >= RELAY_BUDGET && !r->resume_posted) {
		/* Edge-triggered: nobody will wake us for data already waiting. */
		r->resume_posted = true;
		loop_post(s->loop, relay_resume, s);
	}
}

static void
relay_event(struct watch *w, uint32_t events)
{
	struct session *s = w->arg;
	struct conn *c = w == &s->client.watch ? &s->client : &s->backend;

	if (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->rdhup = true;
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR)) {
		c->readable = true;
		if (c->want_read)	/* a TLS write waited for input */
			c->writable = true;
	}
	if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR)) {
		c->writable = true;
		if (c->want_write)	/* a TLS read waited for output */
			c->readable = true;
	}
	relay_run(s);
}

void
relay_start(struct session *s)
{
	struct relay *r = xcalloc(1, sizeof(*r));
	const uint32_t ev = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;

	r->dir[0] = (struct relay_dir){ &s->client, &s->backend, { -1, -1 }, 0,
	    false, false, &s->bytes_in,
	    &s->worker->metrics.bytes[0], &r->dir[1], false };
	r->dir[1] = (struct relay_dir){ &s->backend, &s->client, { -1, -1 }, 0,
	    false, false, &s->bytes_out,
	    &s->worker->metrics.bytes[1], &r->dir[0], false };
	s->relay = r;
	r->buffered = s->client.ssl != NULL || s->backend.ssl != NULL;
	if (s->proto->filter_new != NULL) {
		r->filter = s->proto->filter_new(s);
		r->buffered = true;
	}

	/*
	 * What arrived with the login goes first, in order.  A filter finds
	 * it in the input buffers, where it stays.
	 */
	if (r->filter == NULL && buf_len(&s->client.in) > 0 &&
	    buf_append(&s->backend.out, buf_head(&s->client.in),
	    buf_len(&s->client.in)) < 0) {
		session_relay_done(s, "pipelined input too large");
		return;
	}
	if (r->filter == NULL && buf_len(&s->backend.in) > 0 &&
	    buf_append(&s->client.out, buf_head(&s->backend.in),
	    buf_len(&s->backend.in)) < 0) {
		session_relay_done(s, "backend output too large");
		return;
	}
	if (r->filter == NULL) {
		buf_wipe(&s->client.in);
		buf_free(&s->backend.in);
	}
	/* Room for what one small read leaves unsent (see pump_small). */
	if (s->client.out.max < RELAY_SMALL + buf_len(&s->client.out))
		s->client.out.max = RELAY_SMALL + buf_len(&s->client.out);
	if (s->backend.out.max < RELAY_SMALL + buf_len(&s->backend.out))
		s->backend.out.max = RELAY_SMALL + buf_len(&s->backend.out);

	/*
	 * The client's switch to edge-triggered reports data that is waiting.
	 * The backend has been edge-triggered all along: its readable flag
	 * says whether the login left input unread.  TLS may hold records no
	 * socket event will announce, and a FIN seen already gives no edge.
	 */
	r->dir[0].eof = s->client.eof;
	r->dir[1].eof = s->backend.eof;
	s->client.readable = s->client.readable || s->client.ssl != NULL ||
	    s->client.rdhup;
	s->backend.readable = s->backend.readable || s->backend.ssl != NULL ||
	    s->backend.rdhup;
	s->client.writable = s->backend.writable = true;
	s->client.watch.cb = relay_event;
	s->backend.watch.cb = relay_event;
	/* The backend socket is edge-triggered already (see session.c). */
	if (loop_watch(s->loop, &s->client.watch, ev) < 0 ||
	    loop_watch(s->loop, &s->backend.watch, ev) < 0) {
		session_relay_done(s, "epoll failure");
		return;
	}
	relay_run(s);
}

void
relay_salvage(struct session *s)
{
	struct relay *r = s->relay;
	struct relay_dir *d;
	struct buf *out = &s->client.out;

	if (r == NULL)
		return;
	d = &r->dir[1];
	/* Bounded by a pipe's or a TLS record's size: let the buffer hold it. */
	if (r->buffered) {
		out->max += buf_len(&s->backend.in);
		if (buf_append(out, buf_head(&s->backend.in),
		    buf_len(&s->backend.in)) == 0)
			dir_count(d, buf_len(&s->backend.in));
		buf_free(&s->backend.in);
		return;
	}
	out->max += d->inpipe;
	while (d->inpipe > 0) {
		char *p;
		size_t avail;
		ssize_t n;

		if (buf_reserve(out, d->inpipe, &p, &avail) < 0)
			break;
		n = read(d->pipe[0], p, avail < d->inpipe ? avail : d->inpipe);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		buf_commit(out, (size_t)n);
		d->inpipe -= (size_t)n;
		dir_count(d, (uint64_t)n);
	}
}

void
relay_free(struct session *s)
{
	struct relay *r = s->relay;

	if (r == NULL)
		return;
	dir_release_pipe(s, &r->dir[0]);
	dir_release_pipe(s, &r->dir[1]);
	if (r->filter != NULL)
		s->proto->filter_free(r->filter);
	free(r);
	s->relay = NULL;
}

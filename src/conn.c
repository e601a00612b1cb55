#include "autoconf.h"

#include <errno.h>
#include <sys/socket.h>
#include <unistd.h>

#include "conn.h"

#define CONN_READ_CHUNK	4096

void
conn_init(struct conn *c, int fd, size_t inmax, size_t outmax, watch_cb *cb,
    void *arg)
{
	c->fd = fd;
	watch_init(&c->watch, fd, cb, arg);
	buf_init(&c->in, inmax);
	buf_init(&c->out, outmax);
	c->eof = c->readable = c->writable = false;
}

ssize_t
conn_read(struct conn *c)
{
	ssize_t total = 0;

	for (;;) {
		char *p;
		size_t avail;
		ssize_t n;

		if (buf_reserve(&c->in, CONN_READ_CHUNK, &p, &avail) < 0)
			return total;
		n = recv(c->fd, p, avail, 0);
		if (n > 0) {
			buf_commit(&c->in, (size_t)n);
			total += n;
			if ((size_t)n < avail)
				return total;
			continue;
		}
		if (n == 0) {
			c->eof = true;
			return total > 0 ? total : -1;
		}
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN || errno == EWOULDBLOCK) {
			if (buf_len(&c->in) == 0)
				buf_free(&c->in);
			return total;
		}
		return -1;
	}
}

int
conn_flush(struct conn *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out),
		    MSG_NOSIGNAL);

		if (n > 0) {
			buf_consume(&c->out, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return -1;
	}
	return 1;
}

int
conn_update(struct conn *c, struct loop *loop, bool reading)
{
	uint32_t ev = 0;

	if (c->fd < 0)
		return 0;
	if (reading && buf_room(&c->in) > 0)
		ev |= EPOLLIN;
	if (buf_len(&c->out) > 0)
		ev |= EPOLLOUT;
	return loop_watch(loop, &c->watch, ev | EPOLLRDHUP);
}

void
conn_close(struct conn *c, struct loop *loop)
{
	if (c->fd >= 0) {
		loop_unwatch(loop, &c->watch);
		close(c->fd);
		c->fd = -1;
	}
	buf_wipe(&c->in);
	buf_free(&c->out);
}

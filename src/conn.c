#include "autoconf.h"

#include <errno.h>
#include <stdint.h>

#include <openssl/err.h>
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
	c->ssl = NULL;
	c->want_read = c->want_write = c->edge = c->rdhup = false;
}

/* Map an SSL_get_error() result: 0 would block, -1 failed or EOF. */
static ssize_t
tls_result(struct conn *c, int ret)
{
	switch (SSL_get_error(c->ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		c->want_read = true;
		return 0;
	case SSL_ERROR_WANT_WRITE:
		c->want_write = true;
		return 0;
	case SSL_ERROR_ZERO_RETURN:
		c->eof = true;
		return -1;
	case SSL_ERROR_SYSCALL:
		/*
		 * With SSL_OP_IGNORE_UNEXPECTED_EOF a close without
		 * close_notify is ZERO_RETURN; this is the fallback.
		 */
		if (ret == 0 || errno == 0)
			c->eof = true;
		return -1;
	default:
		return -1;
	}
}

ssize_t
conn_recv(struct conn *c, void *data, size_t len)
{
	ssize_t n;

	if (c->ssl != NULL) {
		int ret;

		c->want_read = c->want_write = false;
		ERR_clear_error();
		ret = SSL_read(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
		return ret > 0 ? ret : tls_result(c, ret);
	}
	for (;;) {
		n = recv(c->fd, data, len, 0);
		if (n > 0)
			return n;
		if (n == 0) {
			c->eof = true;
			return -1;
		}
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

ssize_t
conn_send(struct conn *c, const void *data, size_t len)
{
	ssize_t n;

	if (c->ssl != NULL) {
		int ret;

		c->want_read = c->want_write = false;
		ERR_clear_error();
		ret = SSL_write(c->ssl, data, len > INT32_MAX ? INT32_MAX : (int)len);
		return ret > 0 ? ret : tls_result(c, ret);
	}
	for (;;) {
		n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
	}
}

int
conn_tls_start(struct conn *c, SSL_CTX *ctx, bool server)
{
	if ((c->ssl = SSL_new(ctx)) == NULL || SSL_set_fd(c->ssl, c->fd) != 1)
		return -1;
	if (server)
		SSL_set_accept_state(c->ssl);
	else
		SSL_set_connect_state(c->ssl);
	return 0;
}

int
conn_tls_handshake(struct conn *c)
{
	int ret;

	c->want_read = c->want_write = false;
	ERR_clear_error();
	if ((ret = SSL_do_handshake(c->ssl)) == 1)
		return 1;
	return tls_result(c, ret) == 0 ? 0 : -1;
}

ssize_t
conn_read(struct conn *c)
{
	ssize_t total = 0;

	while (!c->eof) {
		char *p;
		size_t avail;
		ssize_t n;

		if (buf_reserve(&c->in, CONN_READ_CHUNK, &p, &avail) < 0) {
			c->readable = true;	/* full: the rest waits */
			return total;
		}
		n = conn_recv(c, p, avail);
		if (n > 0) {
			buf_commit(&c->in, (size_t)n);
			total += n;
			/*
			 * A short TCP read took all there was.  TLS reads one
			 * record at a time and may have left whole records in
			 * the socket: only WANT_READ says it ran dry.
			 */
			if ((size_t)n < avail && c->ssl == NULL)
				break;
			continue;
		}
		if (buf_len(&c->in) == 0)
			buf_free(&c->in);
		if (n < 0 && !c->eof)
			return -1;
		break;
	}
	c->readable = false;
	return total;
}

int
conn_flush(struct conn *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t n = conn_send(c, buf_head(&c->out), buf_len(&c->out));

		if (n > 0)
			buf_consume(&c->out, (size_t)n);
		else
			return (int)n;
	}
	return 1;
}

int
conn_update(struct conn *c, struct loop *loop, bool reading)
{
	uint32_t ev = 0;

	if (c->fd < 0 || c->edge)
		return 0;
	if ((reading && !c->eof && buf_room(&c->in) > 0) || c->want_read)
		ev |= EPOLLIN | EPOLLRDHUP;
	if (buf_len(&c->out) > 0 || c->want_write)
		ev |= EPOLLOUT;
	return loop_watch(loop, &c->watch, ev);
}

void
conn_close(struct conn *c, struct loop *loop)
{
	if (c->ssl != NULL) {
		/* A close_notify, if the socket takes it now; never wait. */
		if (c->fd >= 0 && SSL_is_init_finished(c->ssl))
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
		c->ssl = NULL;
	}
	if (c->fd >= 0) {
		loop_forget(loop, &c->watch);
		close(c->fd);
		c->fd = -1;
	}
	buf_wipe(&c->in);
	buf_free(&c->out);
}

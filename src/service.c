#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "service.h"
#include "util.h"

struct service {
	const struct service_ops *ops;
	void			*arg;
	int			 fd;
	struct loop		*loop;
	struct watch		 watch;
	pthread_t		 thread;
	bool			 started;
	struct service_client	*clients;
	unsigned		 nclients;
};

/* Clients. */

void
service_client_close(struct service_client *c)
{
	struct service *svc = c->svc;

	if (svc->ops->closing != NULL)
		svc->ops->closing(c);
	loop_timer_cancel(svc->loop, &c->timer);
	loop_forget(svc->loop, &c->watch);
	close(c->fd);
	buf_free(&c->in);
	buf_free(&c->out);
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		svc->clients = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	svc->nclients--;
	free(c);
}

void
service_client_read(struct service_client *c)
{
	const struct service_ops *ops = c->svc->ops;

	for (;;) {
		char *p;
		size_t avail, len;
		ssize_t n;
		int rc;

		if ((rc = ops->request_end(c, &len)) == 1) {
			ops->request(c, len);
			return;
		}
		if (rc < 0 || buf_reserve(&c->in, ops->in_max, &p, &avail) < 0) {
			ops->too_large(c);
			return;
		}
		n = recv(c->fd, p, avail, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			service_client_close(c);
			return;
		}
		buf_commit(&c->in, (size_t)n);
	}
}

void
service_client_flush(struct service_client *c)
{
	while (buf_len(&c->out) > 0) {
		ssize_t n = send(c->fd, buf_head(&c->out), buf_len(&c->out),
		    MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (loop_watch(c->svc->loop, &c->watch, EPOLLOUT) < 0)
				service_client_close(c);
			return;
		}
		if (n <= 0) {
			service_client_close(c);
			return;
		}
		buf_consume(&c->out, (size_t)n);
	}
	c->svc->ops->sent(c);
}

static void
client_event(struct watch *w, uint32_t events)
{
	struct service_client *c = w->arg;

	c->svc->ops->event(c, events);
}

static void
client_timeout(struct timer *t)
{
	struct service_client *c = t->arg;

	if (c->svc->ops->timeout != NULL)
		c->svc->ops->timeout(c);
	service_client_close(c);
}

static void
service_accept(struct watch *w, uint32_t events)
{
	struct service *svc = w->arg;
	const struct service_ops *ops = svc->ops;
	struct service_client *c;
	int fd;

	(void)events;
	if ((fd = accept4(svc->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) < 0) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warning("%s: accept: %s", ops->name, strerror(errno));
		return;
	}
	if (svc->nclients >= ops->clients_max) {
		if (ops->refused != NULL)
			ops->refused(svc->arg);
		(void)!write(fd, ops->busy, strlen(ops->busy));
		close(fd);
		return;
	}
	c = xcalloc(1, ops->client_size);
	c->svc = svc;
	c->owner = svc->arg;
	c->fd = fd;
	buf_init(&c->in, ops->in_max);
	buf_init(&c->out, ops->out_max);
	watch_init(&c->watch, fd, client_event, c);
	timer_init(&c->timer, client_timeout, c);
	c->next = svc->clients;
	if (svc->clients != NULL)
		svc->clients->prev = c;
	svc->clients = c;
	svc->nclients++;
	loop_timer_in(svc->loop, &c->timer, ops->read_ms);
	if (loop_watch(svc->loop, &c->watch, EPOLLIN) < 0) {
		service_client_close(c);
		return;
	}
	service_client_read(c);
}

/* The thread. */

int
service_open(const struct service_ops *ops, void *arg, int fd,
    struct service **svc_r, char *err, size_t errlen)
{
	struct service *svc;
	struct loop *loop;

	if ((loop = loop_new()) == NULL) {
		snprintf(err, errlen, "%s: cannot create its loop", ops->name);
		return -1;
	}
	svc = xcalloc(1, sizeof(*svc));
	svc->ops = ops;
	svc->arg = arg;
	svc->fd = fd;
	svc->loop = loop;
	watch_init(&svc->watch, fd, service_accept, svc);
	*svc_r = svc;
	return 0;
}

struct loop *
service_loop(const struct service *svc)
{
	return svc->loop;
}

static void *
service_main(void *arg)
{
	struct service *svc = arg;

	if (loop_watch(svc->loop, &svc->watch, EPOLLIN) < 0)
		log_error("%s: epoll: %s", svc->ops->name, strerror(errno));
	else if (loop_run(svc->loop) < 0)
		log_error("%s: event loop failed", svc->ops->name);
	return NULL;
}

int
service_start(struct service *svc)
{
	if (pthread_create(&svc->thread, NULL, service_main, svc) != 0)
		return -1;
	svc->started = true;
	return 0;
}

bool
service_started(const struct service *svc)
{
	return svc->started;
}

/* On the service thread: end every client, then stop. */
static void
service_wind_down(void *arg)
{
	struct service *svc = arg;

	while (svc->clients != NULL)
		service_client_close(svc->clients);
	if (svc->ops->stopping != NULL)
		svc->ops->stopping(svc->arg);
	loop_unwatch(svc->loop, &svc->watch);
	loop_stop(svc->loop);
}

void
service_stop(struct service *svc)
{
	if (svc == NULL || !svc->started)
		return;
	loop_post(svc->loop, service_wind_down, svc);
	pthread_join(svc->thread, NULL);
	svc->started = false;
}

void
service_disown(struct service *svc)
{
	if (svc == NULL || svc->fd < 0)
		return;
	close(svc->fd);
	svc->fd = -1;
}

void
service_free(struct service **svcp)
{
	struct service *svc = *svcp;

	if (svc == NULL)
		return;
	*svcp = NULL;
	service_stop(svc);
	loop_run_pending(svc->loop);
	if (svc->ops->release != NULL)
		svc->ops->release(svc->arg);
	if (svc->fd >= 0)
		close(svc->fd);
	loop_free(&svc->loop);
	free(svc);
}

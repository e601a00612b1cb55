#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "loop.h"
#include "resolve.h"
#include "util.h"

/*
 * A request is shared by the requesting worker and a resolver thread:
 * two references.  `cancelled` is only touched on the requester's thread.
 */
struct resolve_request {
	_Atomic unsigned	 refs;
	struct loop		*loop;
	resolve_cb		*cb;
	void			*arg;
	bool			 cancelled;
	char			*host;
	uint16_t		 port;
	struct addrinfo		*addrs;
	char			 error[128];
	struct resolve_request	*next;
};

static struct {
	pthread_mutex_t		 mtx;
	pthread_cond_t		 cond;
	struct resolve_request	*head, **tail;
	pthread_t		*threads;
	unsigned		 nthreads;
	bool			 stop;
} pool = {
	.mtx = PTHREAD_MUTEX_INITIALIZER,
	.cond = PTHREAD_COND_INITIALIZER,
};

static void
request_unref(struct resolve_request *req)
{
	if (atomic_fetch_sub(&req->refs, 1) != 1)
		return;
	if (req->addrs != NULL)
		freeaddrinfo(req->addrs);
	free(req->host);
	free(req);
}

static void
deliver(void *arg)
{
	struct resolve_request *req = arg;

	if (!req->cancelled) {
		struct addrinfo *addrs = req->addrs;

		req->addrs = NULL;
		req->cancelled = true;
		req->cb(req->arg, addrs, req->error);
		request_unref(req);	/* the requester's */
	}
	request_unref(req);
}

static void *
resolver_main(void *unused)
{
	for (;;) {
		struct resolve_request *req;
		struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
		    .ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG };
		char port[8];
		int rc;

		pthread_mutex_lock(&pool.mtx);
		while (pool.head == NULL && !pool.stop)
			pthread_cond_wait(&pool.cond, &pool.mtx);
		if (pool.head == NULL) {
			pthread_mutex_unlock(&pool.mtx);
			return NULL;
		}
		req = pool.head;
		if ((pool.head = req->next) == NULL)
			pool.tail = &pool.head;
		pthread_mutex_unlock(&pool.mtx);

		snprintf(port, sizeof(port), "%u", req->port);
		if ((rc = getaddrinfo(req->host, port, &hints, &req->addrs)) != 0) {
			req->addrs = NULL;
			str_copy(req->error, gai_strerror(rc), sizeof(req->error));
		}
		if (loop_post(req->loop, deliver, req) < 0)
			request_unref(req);
	}
}

int
resolve_init(unsigned threads)
{
	pool.tail = &pool.head;
	pool.threads = xcalloc(threads, sizeof(*pool.threads));
	for (unsigned i = 0; i < threads; i++) {
		if (pthread_create(&pool.threads[i], NULL, resolver_main, NULL) != 0)
			return -1;
		pool.nthreads++;
	}
	return 0;
}

void
resolve_shutdown(void)
{
	pthread_mutex_lock(&pool.mtx);
	pool.stop = true;
	pthread_cond_broadcast(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	for (unsigned i = 0; i < pool.nthreads; i++)
		pthread_join(pool.threads[i], NULL);
	free(pool.threads);
	pool.threads = NULL;
	pool.nthreads = 0;
	while (pool.head != NULL) {
		struct resolve_request *req = pool.head;

		pool.head = req->next;
		request_unref(req);
	}
}

struct resolve_request *
resolve_start(struct loop *loop, const char *host, uint16_t port,
    resolve_cb *cb, void *arg)
{
	struct resolve_request *req = xcalloc(1, sizeof(*req));

	atomic_init(&req->refs, 2);
	req->loop = loop;
	req->cb = cb;
	req->arg = arg;
	req->host = xstrdup(host);
	req->port = port;
	pthread_mutex_lock(&pool.mtx);
	if (pool.tail == NULL)
		pool.tail = &pool.head;
	*pool.tail = req;
	pool.tail = &req->next;
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.mtx);
	return req;
}

void
resolve_cancel(struct resolve_request **reqp)
{
	struct resolve_request *req = *reqp;

	if (req == NULL)
		return;
	*reqp = NULL;
	req->cancelled = true;
	request_unref(req);
}

int
resolve_numeric(const char *host, uint16_t port, struct addrinfo **addrs_r)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	char portstr[8];

	snprintf(portstr, sizeof(portstr), "%u", port);
	return getaddrinfo(host, portstr, &hints, addrs_r) == 0 ? 0 : -1;
}

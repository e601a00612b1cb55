/*
 * A service thread: one listening socket served by a thread with its own
 * loop, for the small request/response endpoints beside the proxy (the
 * control socket, the metrics responder).
 *
 * The owner binds the socket (as root, before the privilege drop and the
 * privilege-separation fork) and hands it to service_open; the thread
 * starts later, in the process that serves.  The service accepts at most
 * clients_max clients at once (the next is sent `busy` and closed), reads
 * each one's request into a buffer of in_max bytes under a timer of
 * read_ms, and hands a complete request to the owner, which answers into
 * the client's output buffer (out_max bytes) and calls
 * service_client_flush.  Every callback runs on the service thread.
 */
#ifndef POSTERN_SERVICE_H
#define POSTERN_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "loop.h"

struct service;

/*
 * One client.  The owner's client struct begins with it (ops->client_size
 * bytes are allocated, zeroed), so a callback's client converts to the
 * owner's type with a cast.
 */
struct service_client {
	struct service		*svc;
	void			*owner;		/* service_open's arg */
	int			 fd;
	struct watch		 watch;
	struct timer		 timer;
	struct buf		 in, out;
	struct service_client	*prev, *next;
};

struct service_ops {
	const char	*name;		/* in log lines: "control: accept: ..." */
	unsigned	 clients_max;	/* served at once; also the backlog */
	const char	*busy;		/* sent to a client past clients_max */
	size_t		 client_size;	/* >= sizeof(struct service_client) */
	size_t		 in_max;	/* a request, whole */
	size_t		 out_max;	/* a response, whole */
	unsigned	 read_ms;	/* until a complete request */

	/*
	 * Is a whole request at the head of c->in?  1 with *len_r its
	 * length, 0 if more is needed, -1 if it cannot fit in_max.
	 */
	int	(*request_end)(struct service_client *c, size_t *len_r);
	/* The request, len bytes at the head of c->in. */
	void	(*request)(struct service_client *c, size_t len);
	/* The request cannot fit in_max: answer so (or close). */
	void	(*too_large)(struct service_client *c);
	/* Readiness of c->fd, as watched by the owner (EPOLLIN at first). */
	void	(*event)(struct service_client *c, uint32_t events);
	/* c->out is all sent: close c, or watch for what comes next. */
	void	(*sent)(struct service_client *c);
	/* c's timer fired; the service closes c on return.  May be NULL. */
	void	(*timeout)(struct service_client *c);
	/* c is about to close: drop what refers to it.  May be NULL. */
	void	(*closing)(struct service_client *c);
	/* A client was refused for clients_max.  May be NULL. */
	void	(*refused)(void *arg);
	/* Stopping, every client closed: end what is left.  May be NULL. */
	void	(*stopping)(void *arg);
	/*
	 * In service_free, once the tasks still posted to the loop (other
	 * threads' answers) have run: free what is left.  May be NULL.
	 */
	void	(*release)(void *arg);
};

/*
 * Serve the bound, listening, non-blocking socket fd.  The service owns fd
 * from here on; on failure (-1, a message in err) the caller still does.
 */
int	service_open(const struct service_ops *ops, void *arg, int fd,
	    struct service **svc_r, char *err, size_t errlen);
/* The service thread's loop, for the owner's timers, lookups and posts. */
struct loop *service_loop(const struct service *svc);
/* Start the thread.  0 or -1. */
int	service_start(struct service *svc);
bool	service_started(const struct service *svc);
/* On the thread: close every client, call ops->stopping, and join it. */
void	service_stop(struct service *svc);
/*
 * Close the listening socket now, leaving the rest to service_free: a
 * process that hands the socket to another (the privileged parent, after
 * the fork) does this.
 */
void	service_disown(struct service *svc);
/*
 * Stop; run the tasks still posted to the loop, then ops->release; close
 * the socket and free the loop.  After the threads that post to it
 * stopped.
 */
void	service_free(struct service **svcp);

/* Client side, on the service thread. */
/* Read until a request is whole (ops->request), or would block. */
void	service_client_read(struct service_client *c);
/* Send c->out; ops->sent once it is all out. */
void	service_client_flush(struct service_client *c);
/* Close and free c (ops->closing first). */
void	service_client_close(struct service_client *c);

#endif

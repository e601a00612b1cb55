/*
 * Host-name resolution off the workers: getaddrinfo(3) blocks, so it runs
 * on a small pool of helper threads and the answer is posted back to the
 * requesting loop.  Numeric addresses never get here.
 */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include <netdb.h>
#include <stdint.h>

struct loop;
struct resolve_request;

/* addrs is the callee's to freeaddrinfo(); NULL with a reason on failure. */
typedef void resolve_cb(void *arg, struct addrinfo *addrs, const char *error);

/* Start the helper threads.  0 or -1. */
int	resolve_init(unsigned threads);
void	resolve_shutdown(void);

struct resolve_request *resolve_start(struct loop *loop, const char *host,
	    uint16_t port, resolve_cb *cb, void *arg);
/* The callback will not run.  Sets *reqp to NULL. */
void	resolve_cancel(struct resolve_request **reqp);

/* Numeric host?  Fills *addrs_r without blocking. 0 yes, -1 no. */
int	resolve_numeric(const char *host, uint16_t port, struct addrinfo **addrs_r);

#endif

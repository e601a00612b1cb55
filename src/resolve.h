/*
 * Host-name resolution off the workers: getaddrinfo(3) blocks, so it runs
 * on helper threads and the answer is posted back to the requesting loop.
 * Numeric addresses never get there.
 *
 * Answers are cached for RESOLVE_TTL_MS (failures for RESOLVE_NEGATIVE_TTL_MS)
 * and concurrent requests for one name share one lookup, so a slow DNS
 * server costs one wait per name and interval, not one per login.  Jobs
 * wait in a queue of at most RESOLVE_QUEUE_MAX; past it a request fails at
 * once.  A thread is added whenever more names wait than threads are
 * idle, up to RESOLVE_THREADS_MAX.
 */
#ifndef POSTERN_RESOLVE_H
#define POSTERN_RESOLVE_H

#include <stddef.h>
#include <stdint.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#define RESOLVE_ADDRS_MAX	16	/* addresses kept per name */
#define RESOLVE_QUEUE_MAX	256	/* names waiting for a thread */
#define RESOLVE_THREADS_MAX	16
#define RESOLVE_CACHE_MAX	4096	/* names remembered */
#define RESOLVE_TTL_MS		30000
#define RESOLVE_NEGATIVE_TTL_MS	5000
#define RESOLVE_NAME_MAX	256	/* an address's DNS name, with its NUL */

struct loop;
struct resolve_request;

/* The addresses of one host:port, in the order to try them. */
struct addr_list {
	size_t			 n;
	struct {
		union {
			struct sockaddr		sa;
			struct sockaddr_in	in;
			struct sockaddr_in6	in6;
		}			 u;
		socklen_t		 len;
	}			 a[RESOLVE_ADDRS_MAX];
};

/* addrs is the callee's to free(); NULL with a reason on failure. */
typedef void resolve_cb(void *arg, struct addr_list *addrs, const char *error);

/* Start the first helper threads.  0 or -1. */
int	resolve_init(unsigned threads);
void	resolve_shutdown(void);

/* The callback runs later, on `loop`, never from inside this call. */
struct resolve_request *resolve_start(struct loop *loop, const char *host,
	    uint16_t port, resolve_cb *cb, void *arg);
/* The callback will not run.  Sets *reqp to NULL. */
void	resolve_cancel(struct resolve_request **reqp);

/*
 * The DNS name of an address (getnameinfo(3), NI_NAMEREQD), through the
 * same threads, queue and cache, keyed by the address.  The callback gets
 * `name` "" when the address has no name (or none that fits
 * RESOLVE_NAME_MAX), or NULL with a reason when the lookup failed for now
 * (DNS trouble, the queue full).  Cancelled with resolve_cancel().
 */
typedef void resolve_name_cb(void *arg, const char *name, const char *error);
struct resolve_request *resolve_name_start(struct loop *loop,
	    const struct sockaddr *sa, resolve_name_cb *cb, void *arg);

/* The reverse lookup the threads run: getnameinfo(3), or a stand-in. */
typedef int resolve_reverse_fn(const struct sockaddr *sa, socklen_t salen,
	    char *host, socklen_t hostlen, char *serv, socklen_t servlen,
	    int flags);
void	resolve_set_reverse(resolve_reverse_fn *fn);

/* The lookup the threads run: getaddrinfo(3), or a stand-in (tests). */
typedef int resolve_lookup_fn(const char *host, const char *port,
	    const struct addrinfo *hints, struct addrinfo **res);
void	resolve_set_lookup(resolve_lookup_fn *fn);

/* Numeric host?  Fills a fresh *addrs_r without blocking.  0 yes, -1 no. */
/* The pool now, for metrics. */
struct resolve_stats {
	size_t		 queued;	/* names waiting for a thread */
	unsigned long	 shed;		/* refused: RESOLVE_QUEUE_MAX waiting */
	unsigned	 threads, idle;
	size_t		 cached;	/* names in the cache */
};
void	resolve_stats(struct resolve_stats *st);

int	resolve_numeric(const char *host, uint16_t port, struct addr_list **addrs_r);

#endif

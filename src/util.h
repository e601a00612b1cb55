/* Small helpers shared by every module: allocation, strings, sockets, time. */
#ifndef POSTERN_UTIL_H
#define POSTERN_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#define nitems(a)	(sizeof(a) / sizeof((a)[0]))
/* A deliberate fall-through, as gcc and clang both understand it. */
#define FALLTHROUGH	__attribute__((fallthrough))

/* Allocation that cannot fail: out of memory ends the process. */
void	*xmalloc(size_t size);
void	*xcalloc(size_t n, size_t size);
void	*xrealloc(void *p, size_t size);
char	*xstrdup(const char *s);
char	*xstrndup(const char *s, size_t n);

/* Free a string that held a secret, wiping it first; sets *p to NULL. */
void	 secret_free(char **p);

/* Copy with truncation, always NUL-terminated; returns strlen(src). */
size_t	 str_copy(char *dst, const char *src, size_t size);
/* ASCII case-insensitive prefix test. */
bool	 str_prefix_ci(const char *s, size_t len, const char *prefix);

/* Monotonic clock in milliseconds, and in microseconds. */
uint64_t clock_ms(void);
uint64_t clock_us(void);

/*
 * Split "host:port", "[v6]:port" or "host" (port_r untouched) into a
 * malloc'd host and a port.  0 ok, -1 with a reason.
 */
int	 hostport_parse(const char *s, char **host_r, uint16_t *port_r,
	    const char **error_r);

/* The address and port of a socket address as text ("" if not IP). */
void	 sockaddr_split(const struct sockaddr *sa, char *addr, size_t addrlen,
	    char *port, size_t portlen);
/* "addr:port" / "[addr]:port" of a socket address. */
void	 sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen);

int	 fd_set_nonblock(int fd);

#endif

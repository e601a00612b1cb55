#include "autoconf.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"
#include "util.h"

static void
oom(void)
{
	log_error("out of memory");
	abort();
}

void *
xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);

	if (p == NULL)
		oom();
	return p;
}

void *
xrealloc(void *p, size_t size)
{
	if ((p = realloc(p, size ? size : 1)) == NULL)
		oom();
	return p;
}

char *
xstrdup(const char *s)
{
	char *p = strdup(s);

	if (p == NULL)
		oom();
	return p;
}

char *
xstrndup(const char *s, size_t n)
{
	char *p = xmalloc(n + 1);

	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

void
secret_free(char **p)
{
	if (*p == NULL)
		return;
	explicit_bzero(*p, strlen(*p));
	free(*p);
	*p = NULL;
}

size_t
str_copy(char *dst, const char *src, size_t size)
{
	size_t len = strlen(src);

	if (size > 0) {
		size_t n = len < size - 1 ? len : size - 1;

		memcpy(dst, src, n);
		dst[n] = '\0';
	}
	return len;
}

bool
str_prefix_ci(const char *s, size_t len, const char *prefix)
{
	size_t plen = strlen(prefix);

	return len >= plen && strncasecmp(s, prefix, plen) == 0;
}

uint64_t
clock_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

uint64_t
clock_ms(void)
{
	return clock_us() / 1000;
}

int
hostport_parse(const char *s, char **host_r, uint16_t *port_r,
    const char **error_r)
{
	const char *host = s, *colon, *portstr = NULL;
	size_t hostlen;

	if (*s == '[') {
		const char *close = strchr(s, ']');

		if (close == NULL) {
			*error_r = "missing ']' in address";
			return -1;
		}
		host = s + 1;
		hostlen = (size_t)(close - host);
		if (close[1] == ':')
			portstr = close + 2;
		else if (close[1] != '\0') {
			*error_r = "junk after ']' in address";
			return -1;
		}
	} else if ((colon = strrchr(s, ':')) != NULL) {
		if (strchr(s, ':') != colon) {
			*error_r = "IPv6 address must be written as [addr]:port";
			return -1;
		}
		hostlen = (size_t)(colon - s);
		portstr = colon + 1;
	} else
		hostlen = strlen(s);

	if (hostlen == 0) {
		*error_r = "empty host";
		return -1;
	}
	if (portstr != NULL) {
		char *end;
		long port;

		/* Digits only: strtol alone takes " 143" and "+143". */
		errno = 0;
		port = strtol(portstr, &end, 10);
		if (portstr[0] < '0' || portstr[0] > '9' || *end != '\0' ||
		    errno != 0 || port < 1 || port > 65535) {
			*error_r = "port must be 1..65535";
			return -1;
		}
		*port_r = (uint16_t)port;
	}
	*host_r = xstrndup(host, hostlen);
	return 0;
}

void
sockaddr_split(const struct sockaddr *sa, char *addr, size_t addrlen,
    char *port, size_t portlen)
{
	const void *a = NULL;
	unsigned p = 0;

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		a = &sin->sin_addr;
		p = ntohs(sin->sin_port);
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		a = &sin6->sin6_addr;
		p = ntohs(sin6->sin6_port);
	}
	if (a == NULL || inet_ntop(sa->sa_family, a, addr, (socklen_t)addrlen) == NULL) {
		str_copy(addr, "", addrlen);
		str_copy(port, "", portlen);
		return;
	}
	snprintf(port, portlen, "%u", p);
}

void
sockaddr_format(const struct sockaddr *sa, char *out, size_t outlen)
{
	char addr[INET6_ADDRSTRLEN];

	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)(const void *)sa;

		inet_ntop(AF_INET, &sin->sin_addr, addr, sizeof(addr));
		snprintf(out, outlen, "%s:%u", addr, ntohs(sin->sin_port));
	} else if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)(const void *)sa;

		inet_ntop(AF_INET6, &sin6->sin6_addr, addr, sizeof(addr));
		snprintf(out, outlen, "[%s]:%u", addr, ntohs(sin6->sin6_port));
	} else
		str_copy(out, "unknown", outlen);
}

int
fd_set_nonblock(int fd)
{
	int flags = fcntl(fd, F_GETFL);

	if (flags < 0 || fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0)
		return -1;
	return 0;
}

/*
 * The PROXY protocol (HAProxy, versions 1 and 2): a load balancer in front
 * of postern tells who the client is in a header before the first byte of
 * IMAP or POP3, and postern tells a backend the same way.  The parser does
 * no I/O: it looks at what has arrived so far and says done, more, or no.
 */
#ifndef POSTERN_PROXY_PROTO_H
#define POSTERN_PROXY_PROTO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/socket.h>

/* A v1 header, "PROXY ... \r\n" included, is at most this long. */
#define PROXY_V1_MAX		107
/* A v2 header is 16 bytes and an address block of at most this much. */
#define PROXY_V2_LEN_MAX	1024
#define PROXY_V2_HDR		16
/* The most a header can take: a buffer this size always decides. */
#define PROXY_HEADER_MAX	(PROXY_V2_HDR + PROXY_V2_LEN_MAX)

union proxy_addr {
	struct sockaddr		sa;
	struct sockaddr_in	in;
	struct sockaddr_in6	in6;
};

struct proxy_header {
	int			 version;	/* 1 or 2 */
	/*
	 * No address to take: v1 UNKNOWN, v2 LOCAL (the balancer's own
	 * health check) or a v2 family other than IPv4/IPv6.  The session
	 * keeps the socket's peer.
	 */
	bool			 local;
	union proxy_addr	 src;		/* the client, unless local */
	union proxy_addr	 dst;		/* the address it connected to */
	size_t			 len;		/* header bytes, TLVs included */
};

/*
 * Look at the first `len` bytes a client sent.  1: a complete header,
 * described in *h (h->len bytes to consume; what follows is the client's).
 * 0: a header may be starting, more bytes are needed.  -1: not a valid
 * header (*error_r says why) -- also as soon as the bytes so far cannot
 * begin one, and when PROXY_V1_MAX / PROXY_V2_LEN_MAX would be passed.
 * v2 TLVs are skipped.
 */
int	proxy_header_parse(const void *data, size_t len, struct proxy_header *h,
	    const char **error_r);

enum proxy_version {
	PROXY_NONE,
	PROXY_V1,
	PROXY_V2,
};

/*
 * Format a PROXY header (a PROXY command, TCP over IPv4 or IPv6) for a
 * connection from `src` to `dst` into out[outlen].  When the families
 * differ the IPv4 one is written as a v4-mapped IPv6 address.  Returns the
 * length, or -1 if an address is not IP or outlen (PROXY_HEADER_MAX is
 * always enough) is too short.
 */
int	proxy_header_format(enum proxy_version version, const struct sockaddr *src,
	    const struct sockaddr *dst, unsigned char *out, size_t outlen);

#endif

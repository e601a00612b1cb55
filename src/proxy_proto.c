#include "autoconf.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy_proto.h"

/*
 * PROXY protocol, as specified in HAProxy's doc/proxy-protocol.txt.  The
 * header is short and bounded, so the parser starts over from the first
 * byte on every call instead of keeping state: a caller that buffers up to
 * PROXY_HEADER_MAX bytes always gets an answer.
 */

static const unsigned char v2_sig[12] = {
	0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a
};
static const char v1_prefix[] = "PROXY ";

#define V2_CMD_LOCAL	0x0
#define V2_CMD_PROXY	0x1
#define V2_FAM_UNSPEC	0x0
#define V2_FAM_INET	0x1
#define V2_FAM_INET6	0x2
#define V2_FAM_UNIX	0x3
#define V2_TRANS_STREAM	0x1
#define V2_TRANS_DGRAM	0x2

static int
fail(const char **error_r, const char *reason)
{
	*error_r = reason;
	return -1;
}

/* A decimal port, 0-65535, no sign, no leading zero. */
static int
parse_port(const char *s, in_port_t *port_r)
{
	unsigned long v = 0;
	size_t n = strlen(s);

	if (n == 0 || n > 5 || (n > 1 && s[0] == '0'))
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v > 65535)
		return -1;
	*port_r = htons((uint16_t)v);
	return 0;
}

static int
parse_v1_addr(int family, const char *addr, const char *port,
    union proxy_addr *a)
{
	memset(a, 0, sizeof(*a));
	if (family == AF_INET) {
		a->in.sin_family = AF_INET;
		if (inet_pton(AF_INET, addr, &a->in.sin_addr) != 1)
			return -1;
		return parse_port(port, &a->in.sin_port);
	}
	a->in6.sin6_family = AF_INET6;
	/* inet_pton would take a dotted quad for AF_INET6 only as ::ffff:a.b.c.d. */
	if (strchr(addr, ':') == NULL ||
	    inet_pton(AF_INET6, addr, &a->in6.sin6_addr) != 1)
		return -1;
	return parse_port(port, &a->in6.sin6_port);
}

/* "PROXY TCP4|TCP6 src dst sport dport\r\n" or "PROXY UNKNOWN ...\r\n". */
static int
parse_v1(const unsigned char *p, size_t len, struct proxy_header *h,
    const char **error_r)
{
	char line[PROXY_V1_MAX + 1], *tok[7], *cur;
	size_t end, n = 0;
	int family;

	for (end = 0; end < len && end < PROXY_V1_MAX; end++) {
		if (p[end] == '\r')
			break;
		if (p[end] < 0x20 || p[end] > 0x7e)
			return fail(error_r, "v1: control or non-ASCII byte");
	}
	/* No CR yet: it and its LF must still fit in PROXY_V1_MAX. */
	if (end == len)
		return end + 2 > PROXY_V1_MAX ?
		    fail(error_r, "v1: longer than 107 bytes") : 0;
	if (end == PROXY_V1_MAX || end + 1 >= PROXY_V1_MAX)
		return fail(error_r, "v1: longer than 107 bytes");
	if (end + 1 == len)
		return 0;
	if (p[end + 1] != '\n')
		return fail(error_r, "v1: CR without LF");
	memcpy(line, p, end);
	line[end] = '\0';
	h->version = 1;
	h->len = end + 2;
	/* Single spaces between fields: strsep gives "" for a double one. */
	for (cur = line; cur != NULL && n < sizeof(tok) / sizeof(tok[0]); n++)
		tok[n] = strsep(&cur, " ");
	if (n < 2 || strcmp(tok[0], "PROXY") != 0)
		return fail(error_r, "v1: no protocol");
	if (strcmp(tok[1], "UNKNOWN") == 0) {
		h->local = true;
		return 1;
	}
	if (strcmp(tok[1], "TCP4") == 0)
		family = AF_INET;
	else if (strcmp(tok[1], "TCP6") == 0)
		family = AF_INET6;
	else
		return fail(error_r, "v1: protocol is not TCP4, TCP6 or UNKNOWN");
	if (n != 6 || cur != NULL)
		return fail(error_r, "v1: wrong number of fields");
	if (parse_v1_addr(family, tok[2], tok[4], &h->src) < 0 ||
	    parse_v1_addr(family, tok[3], tok[5], &h->dst) < 0)
		return fail(error_r, "v1: bad address or port");
	h->local = false;
	return 1;
}

static int
parse_v2(const unsigned char *p, size_t len, struct proxy_header *h,
    const char **error_r)
{
	unsigned cmd, family, transport;
	size_t alen;

	if (memcmp(p, v2_sig, len < sizeof(v2_sig) ? len : sizeof(v2_sig)) != 0)
		return fail(error_r, "not a PROXY protocol header");
	if (len < 13)
		return 0;
	if ((p[12] >> 4) != 2)
		return fail(error_r, "v2: unknown version");
	cmd = p[12] & 0x0f;
	if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
		return fail(error_r, "v2: unknown command");
	if (len < 14)
		return 0;
	family = p[13] >> 4;
	transport = p[13] & 0x0f;
	if (cmd == V2_CMD_PROXY && (family > V2_FAM_UNIX ||
	    transport > V2_TRANS_DGRAM))
		return fail(error_r, "v2: unknown address family or transport");
	if (len < PROXY_V2_HDR)
		return 0;
	alen = (size_t)p[14] << 8 | p[15];
	if (alen > PROXY_V2_LEN_MAX)
		return fail(error_r, "v2: address block too long");
	if (len < PROXY_V2_HDR + alen)
		return 0;
	h->version = 2;
	h->len = PROXY_V2_HDR + alen;
	h->local = true;
	memset(&h->src, 0, sizeof(h->src));
	memset(&h->dst, 0, sizeof(h->dst));
	if (cmd == V2_CMD_LOCAL || family == V2_FAM_UNSPEC ||
	    family == V2_FAM_UNIX)
		return 1;
	if (transport != V2_TRANS_STREAM)
		return fail(error_r, "v2: not a stream connection");
	p += PROXY_V2_HDR;
	if (family == V2_FAM_INET) {
		if (alen < 12)
			return fail(error_r, "v2: address block too short");
		h->src.in.sin_family = h->dst.in.sin_family = AF_INET;
		memcpy(&h->src.in.sin_addr, p, 4);
		memcpy(&h->dst.in.sin_addr, p + 4, 4);
		memcpy(&h->src.in.sin_port, p + 8, 2);
		memcpy(&h->dst.in.sin_port, p + 10, 2);
	} else {
		if (alen < 36)
			return fail(error_r, "v2: address block too short");
		h->src.in6.sin6_family = h->dst.in6.sin6_family = AF_INET6;
		memcpy(&h->src.in6.sin6_addr, p, 16);
		memcpy(&h->dst.in6.sin6_addr, p + 16, 16);
		memcpy(&h->src.in6.sin6_port, p + 32, 2);
		memcpy(&h->dst.in6.sin6_port, p + 34, 2);
	}
	h->local = false;
	return 1;
}

int
proxy_header_parse(const void *data, size_t len, struct proxy_header *h,
    const char **error_r)
{
	const unsigned char *p = data;
	size_t n;

	memset(h, 0, sizeof(*h));
	*error_r = NULL;
	if (len == 0)
		return 0;
	if (p[0] == v2_sig[0])
		return parse_v2(p, len, h, error_r);
	n = len < sizeof(v1_prefix) - 1 ? len : sizeof(v1_prefix) - 1;
	if (memcmp(p, v1_prefix, n) != 0)
		return fail(error_r, "not a PROXY protocol header");
	if (len < sizeof(v1_prefix) - 1)
		return 0;
	return parse_v1(p, len, h, error_r);
}

/* An IP address as IPv6 (IPv4 v4-mapped), and its port. */
static void
as_inet6(const struct sockaddr *sa, struct sockaddr_in6 *out)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

	if (sa->sa_family == AF_INET6) {
		memcpy(out, sa, sizeof(*out));
		return;
	}
	memset(out, 0, sizeof(*out));
	out->sin6_family = AF_INET6;
	out->sin6_addr.s6_addr[10] = out->sin6_addr.s6_addr[11] = 0xff;
	memcpy(&out->sin6_addr.s6_addr[12], &in->sin_addr, 4);
	out->sin6_port = in->sin_port;
}

int
proxy_header_format(enum proxy_version version, const struct sockaddr *src,
    const struct sockaddr *dst, unsigned char *out, size_t outlen)
{
	struct sockaddr_in6 s6, d6;
	const struct sockaddr_in *s4, *d4;
	char sa[INET6_ADDRSTRLEN], da[INET6_ADDRSTRLEN];
	bool v4;
	int n;

	if ((src->sa_family != AF_INET && src->sa_family != AF_INET6) ||
	    (dst->sa_family != AF_INET && dst->sa_family != AF_INET6))
		return -1;
	v4 = src->sa_family == AF_INET && dst->sa_family == AF_INET;
	s4 = (const struct sockaddr_in *)(const void *)src;
	d4 = (const struct sockaddr_in *)(const void *)dst;
	if (!v4) {
		as_inet6(src, &s6);
		as_inet6(dst, &d6);
	}
	if (version == PROXY_V1) {
		if (v4) {
			inet_ntop(AF_INET, &s4->sin_addr, sa, sizeof(sa));
			inet_ntop(AF_INET, &d4->sin_addr, da, sizeof(da));
		} else {
			inet_ntop(AF_INET6, &s6.sin6_addr, sa, sizeof(sa));
			inet_ntop(AF_INET6, &d6.sin6_addr, da, sizeof(da));
		}
		n = snprintf((char *)out, outlen, "PROXY %s %s %s %u %u\r\n",
		    v4 ? "TCP4" : "TCP6", sa, da,
		    ntohs(v4 ? s4->sin_port : s6.sin6_port),
		    ntohs(v4 ? d4->sin_port : d6.sin6_port));
		return n < 0 || (size_t)n >= outlen ? -1 : n;
	}
	if (version != PROXY_V2)
		return -1;
	n = PROXY_V2_HDR + (v4 ? 12 : 36);
	if (outlen < (size_t)n)
		return -1;
	memcpy(out, v2_sig, sizeof(v2_sig));
	out[12] = 0x20 | V2_CMD_PROXY;
	out[13] = (v4 ? V2_FAM_INET : V2_FAM_INET6) << 4 | V2_TRANS_STREAM;
	out[14] = 0;
	out[15] = (unsigned char)(n - PROXY_V2_HDR);
	if (v4) {
		memcpy(out + 16, &s4->sin_addr, 4);
		memcpy(out + 20, &d4->sin_addr, 4);
		memcpy(out + 24, &s4->sin_port, 2);
		memcpy(out + 26, &d4->sin_port, 2);
	} else {
		memcpy(out + 16, &s6.sin6_addr, 16);
		memcpy(out + 32, &d6.sin6_addr, 16);
		memcpy(out + 48, &s6.sin6_port, 2);
		memcpy(out + 50, &d6.sin6_port, 2);
	}
	return n;
}

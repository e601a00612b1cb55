/*
 * stub_backend.c - minimal, fast IMAP4 + POP3 backend for benchmarks.
 *
 * Single thread, non-blocking sockets, edge-triggered epoll.  Accepts
 * any user/password except "baduser".  Serves one mailbox with a single
 * message: a large one for IMAP (1 MiB by default) and a small one for
 * POP3 (2 KiB by default).  Both are built once at start-up and sent by
 * reference, so a FETCH costs no copying in user space.
 *
 * Standalone: needs only libc.
 *
 *	cc -std=c11 -D_GNU_SOURCE -O2 -o stub_backend stub_backend.c
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS	256
#define READ_CHUNK	(64 * 1024)
#define MAX_CMD		(64 * 1024)	/* longest command incl. literals */
#define MAX_LITERAL	(16 * 1024)
#define OUT_HIGH	(256 * 1024)	/* stop reading above this backlog */
#define SEG_MIN		1024
#define IOV_BATCH	16

#define CAPS	"IMAP4rev1 LITERAL+ SASL-IR AUTH=PLAIN"
#define CAPS_AUTHED	"IMAP4rev1 LITERAL+ SASL-IR ID IDLE"

enum ev_kind { EV_LISTEN_IMAP, EV_LISTEN_POP3, EV_CONN };
enum proto { P_IMAP, P_POP3 };

enum cstate {
	S_CMD,		/* reading commands */
	S_AUTH,		/* waiting for SASL response line */
	S_IDLE,		/* IMAP IDLE: waiting for DONE */
	S_CLOSING	/* flush output, then close */
};

struct seg {
	char		*own;	/* malloc'd storage, or NULL */
	const char	*data;
	size_t		 len;
	size_t		 off;
	size_t		 cap;
};

struct evsrc {
	enum ev_kind	 kind;
	int		 fd;
};

struct conn {
	struct evsrc	 ev;	/* must be first */
	enum proto	 proto;
	enum cstate	 state;
	int		 authed;
	char		*in;
	size_t		 inlen;
	size_t		 incap;
	size_t		 cont_sent;	/* literal continuations sent up to */
	struct seg	*segs;
	size_t		 nseg;
	size_t		 seghead;
	size_t		 segcap;
	size_t		 outbytes;
	char		 tag[64];	/* pending IMAP tag (AUTH, IDLE) */
	char		 user[128];
};

static int		 epfd;
static int		 verbose;
static const char	*name = "";	/* -n: "Logged in NAME", to tell stubs apart */
static const char	*name_sep = "";
static char		*imap_msg;
static size_t		 imap_msg_len;
static char		*pop_msg;	/* dot-stuffed, with terminator */
static size_t		 pop_msg_wire;
static size_t		 pop_msg_len;	/* octets before stuffing */
static unsigned long	 n_conns, n_active, n_logins, n_fetches, n_failed;
static unsigned long long n_bytes_out;

static void	 usage(void) __attribute__((noreturn));
static void	 die(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static char	*build_message(size_t, int, size_t *);
static char	*dot_stuff(const char *, size_t, size_t *);
static int	 listen_on(const char *, int, int *);
static void	 accept_all(struct evsrc *, enum proto);
static void	 conn_event(struct conn *, uint32_t);
static void	 conn_free(struct conn *);
static int	 conn_flush(struct conn *);
static void	 out_copy(struct conn *, const void *, size_t);
static void	 out_str(struct conn *, const char *);
static void	 out_fmt(struct conn *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 out_ref(struct conn *, const char *, size_t);
static int	 in_append(struct conn *, const char *, size_t);
static void	 in_consume(struct conn *, size_t);
static int	 process_input(struct conn *);
static int	 imap_complete(struct conn *, size_t *);
static void	 imap_command(struct conn *, char *, size_t);
static void	 imap_auth_line(struct conn *, char *);
static void	 pop_command(struct conn *, char *);
static void	 pop_auth_line(struct conn *, char *);
static int	 get_token(const char **, const char *, char *, size_t);
static int	 sasl_plain(const char *, char *, size_t);
static size_t	 b64_decode(const char *, unsigned char *, size_t);

static void
usage(void)
{
	fprintf(stderr,
	    "usage: stub_backend [-v] [-a address] [-i imap_port] "
	    "[-p pop3_port]\n"
	    "                    [-m imap_msg_bytes] [-M pop3_msg_bytes] "
	    "[-f portfile] [-n name]\n"
	    "  -n adds the name to the IMAP login OK text (\"Logged in name\").\n"
	    "  port 0 picks a free port; the ports in use are printed on\n"
	    "  stdout and, with -f, written to portfile "
	    "(\"imap N\" / \"pop3 N\").\n");
	exit(2);
}

static void
die(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("stub_backend: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(1);
}

/*
 * Build an RFC 5322 message of exactly size octets, lines of at most 78
 * characters plus CRLF.  With dots, some body lines start with '.', so
 * that POP3 dot-stuffing is exercised.
 */
static char *
build_message(size_t size, int dots, size_t *lenp)
{
	static const char hdr[] =
	    "From: Stub Sender <stub@example.org>\r\n"
	    "To: Bench User <user@example.org>\r\n"
	    "Subject: benchmark message\r\n"
	    "Date: Thu, 01 Jan 2026 00:00:00 +0000\r\n"
	    "Message-ID: <bench-1@stub.example.org>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=us-ascii\r\n"
	    "\r\n";
	static const char alpha[] =
	    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
	char	*m, *p;
	size_t	 left, n, i, line = 0;

	if (size < sizeof(hdr) + 2)
		size = sizeof(hdr) + 2;
	if ((m = malloc(size)) == NULL)
		die("out of memory");
	memcpy(m, hdr, sizeof(hdr) - 1);
	p = m + sizeof(hdr) - 1;
	left = size - (sizeof(hdr) - 1);
	while (left > 0) {
		n = left > 80 ? 78 : left - 2;
		if (left > 80 && left - 80 < 3)
			n = 70;	/* never leave a stub shorter than CRLF */
		for (i = 0; i < n; i++)
			p[i] = alpha[(line + i) % (sizeof(alpha) - 1)];
		if (dots && n > 0 && line % 7 == 3)
			p[0] = '.';
		p[n] = '\r';
		p[n + 1] = '\n';
		p += n + 2;
		left -= n + 2;
		line++;
	}
	*lenp = size;
	return m;
}

/* POP3 multi-line body: stuff leading dots, add ".\r\n". */
static char *
dot_stuff(const char *msg, size_t len, size_t *outlen)
{
	char	*o;
	size_t	 i, j = 0;
	int	 bol = 1;

	if ((o = malloc(len * 2 + 8)) == NULL)
		die("out of memory");
	for (i = 0; i < len; i++) {
		if (bol && msg[i] == '.')
			o[j++] = '.';
		o[j++] = msg[i];
		bol = msg[i] == '\n';
	}
	if (!bol) {
		o[j++] = '\r';
		o[j++] = '\n';
	}
	memcpy(o + j, ".\r\n", 3);
	*outlen = j + 3;
	return o;
}

static int
listen_on(const char *addr, int port, int *boundport)
{
	struct sockaddr_in	sin;
	socklen_t		slen = sizeof(sin);
	int			fd, one = 1;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	if (inet_pton(AF_INET, addr, &sin.sin_addr) != 1)
		die("bad IPv4 address: %s", addr);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		die("socket: %s", strerror(errno));
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		die("bind %s:%d: %s", addr, port, strerror(errno));
	if (listen(fd, 4096) == -1)
		die("listen: %s", strerror(errno));
	if (getsockname(fd, (struct sockaddr *)&sin, &slen) == -1)
		die("getsockname: %s", strerror(errno));
	*boundport = ntohs(sin.sin_port);
	return fd;
}

static void
accept_all(struct evsrc *l, enum proto proto)
{
	struct epoll_event	 ev;
	struct conn		*c;
	int			 fd, one = 1;

	for (;;) {
		fd = accept4(l->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				fprintf(stderr, "stub_backend: accept: %s\n",
				    strerror(errno));
			return;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if ((c = calloc(1, sizeof(*c))) == NULL) {
			close(fd);
			continue;
		}
		c->ev.kind = EV_CONN;
		c->ev.fd = fd;
		c->proto = proto;
		c->state = S_CMD;
		ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
		ev.data.ptr = c;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
			close(fd);
			free(c);
			continue;
		}
		n_conns++;
		n_active++;
		if (proto == P_IMAP)
			out_str(c, "* OK [CAPABILITY " CAPS "] stub ready\r\n");
		else
			out_str(c, "+OK stub ready\r\n");
		if (conn_flush(c) == -1)
			conn_free(c);
	}
}

static void
conn_free(struct conn *c)
{
	size_t	i;

	close(c->ev.fd);
	for (i = c->seghead; i < c->nseg; i++)
		free(c->segs[i].own);
	free(c->segs);
	free(c->in);
	free(c);
	n_active--;
}

/* Returns -1 on a fatal socket error, 0 otherwise. */
static int
conn_flush(struct conn *c)
{
	struct iovec	 iov[IOV_BATCH];
	struct seg	*s;
	ssize_t		 n;
	size_t		 i, k;

	while (c->seghead < c->nseg) {
		for (k = 0, i = c->seghead; i < c->nseg && k < IOV_BATCH;
		    i++, k++) {
			s = &c->segs[i];
			iov[k].iov_base = (char *)(uintptr_t)(s->data + s->off);
			iov[k].iov_len = s->len - s->off;
		}
		n = writev(c->ev.fd, iov, (int)k);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return 0;
			return -1;
		}
		n_bytes_out += (unsigned long long)n;
		c->outbytes -= (size_t)n;
		while (n > 0) {
			s = &c->segs[c->seghead];
			k = s->len - s->off;
			if ((size_t)n < k) {
				s->off += (size_t)n;
				break;
			}
			n -= (ssize_t)k;
			free(s->own);
			c->seghead++;
		}
	}
	c->seghead = c->nseg = 0;
	return 0;
}

static struct seg *
seg_new(struct conn *c)
{
	struct seg	*ns;
	size_t		 ncap;

	if (c->seghead > 0 && c->nseg == c->segcap) {
		memmove(c->segs, c->segs + c->seghead,
		    (c->nseg - c->seghead) * sizeof(*c->segs));
		c->nseg -= c->seghead;
		c->seghead = 0;
	}
	if (c->nseg == c->segcap) {
		ncap = c->segcap ? c->segcap * 2 : 4;
		if ((ns = reallocarray(c->segs, ncap, sizeof(*ns))) == NULL)
			die("out of memory");
		c->segs = ns;
		c->segcap = ncap;
	}
	ns = &c->segs[c->nseg++];
	memset(ns, 0, sizeof(*ns));
	return ns;
}

static void
out_copy(struct conn *c, const void *data, size_t len)
{
	struct seg	*s = NULL;

	if (c->nseg > c->seghead) {
		s = &c->segs[c->nseg - 1];
		if (s->own == NULL || s->cap - s->len < len)
			s = NULL;
	}
	if (s == NULL) {
		s = seg_new(c);
		s->cap = len > SEG_MIN ? len : SEG_MIN;
		if ((s->own = malloc(s->cap)) == NULL)
			die("out of memory");
		s->data = s->own;
	}
	memcpy(s->own + s->len, data, len);
	s->len += len;
	c->outbytes += len;
}

static void
out_str(struct conn *c, const char *s)
{
	out_copy(c, s, strlen(s));
}

static void
out_fmt(struct conn *c, const char *fmt, ...)
{
	char	buf[1024];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	out_copy(c, buf, (size_t)n);
}

static void
out_ref(struct conn *c, const char *data, size_t len)
{
	struct seg	*s;

	s = seg_new(c);
	s->data = data;
	s->len = len;
	c->outbytes += len;
}

static int
in_append(struct conn *c, const char *buf, size_t len)
{
	char	*n;
	size_t	 ncap;

	if (c->inlen + len > c->incap) {
		ncap = c->incap ? c->incap : 512;
		while (ncap < c->inlen + len)
			ncap *= 2;
		if (ncap > MAX_CMD + READ_CHUNK)
			return -1;
		if ((n = realloc(c->in, ncap)) == NULL)
			return -1;
		c->in = n;
		c->incap = ncap;
	}
	memcpy(c->in + c->inlen, buf, len);
	c->inlen += len;
	return 0;
}

static void
in_consume(struct conn *c, size_t n)
{
	if (n >= c->inlen) {
		/* Keep idle connections small. */
		free(c->in);
		c->in = NULL;
		c->inlen = c->incap = 0;
	} else {
		memmove(c->in, c->in + n, c->inlen - n);
		c->inlen -= n;
	}
	c->cont_sent = 0;
}

static void
conn_event(struct conn *c, uint32_t events)
{
	static char	 rbuf[READ_CHUNK];
	ssize_t		 n;
	int		 r;

	if (events & EPOLLERR)
		goto drop;
	for (;;) {
		if (conn_flush(c) == -1)
			goto drop;
		if (c->state == S_CLOSING) {
			if (c->outbytes == 0)
				goto drop;
			return;	/* wait for EPOLLOUT */
		}
		if (c->outbytes > OUT_HIGH)
			return;	/* back-pressure: wait for EPOLLOUT */
		r = process_input(c);
		if (r == -1)
			goto drop;
		if (r == 1)
			continue;	/* made progress; flush and retry */
		n = read(c->ev.fd, rbuf, sizeof(rbuf));
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return;
			goto drop;
		}
		if (n == 0)
			goto drop;
		if (in_append(c, rbuf, (size_t)n) == -1) {
			if (c->proto == P_IMAP)
				out_str(c, "* BYE command too long\r\n");
			else
				out_str(c, "-ERR line too long\r\n");
			c->state = S_CLOSING;
		}
	}
drop:
	conn_free(c);
}

/*
 * Is a complete IMAP command (with all of its literals) buffered?
 * Sends "+" continuations for synchronising literals as needed.
 * Returns 1 and its length, 0 if more input is needed, -1 on error.
 */
static int
imap_complete(struct conn *c, size_t *lenp)
{
	const char	*b = c->in, *nl, *q;
	size_t		 pos = 0, e, lit;
	int		 plus;

	for (;;) {
		nl = memchr(b + pos, '\n', c->inlen - pos);
		if (nl == NULL)
			return c->inlen > MAX_CMD ? -1 : 0;
		e = (size_t)(nl - b);
		if (e > pos && b[e - 1] == '\r')
			e--;
		if (e == pos || b[e - 1] != '}' || c->state != S_CMD) {
			*lenp = (size_t)(nl - b) + 1;
			return 1;
		}
		/* Line ends in '}': look for {n} or {n+}. */
		q = b + e - 1;
		plus = 0;
		if (q > b + pos && q[-1] == '+') {
			plus = 1;
			q--;
		}
		lit = 0;
		{
			const char	*d = q;
			size_t		 mul = 1;

			while (d > b + pos && isdigit((unsigned char)d[-1]) &&
			    q - d < 9) {
				d--;
				lit += (size_t)(*d - '0') * mul;
				mul *= 10;
			}
			if (d == q || d == b + pos || d[-1] != '{') {
				/* Not a literal after all. */
				*lenp = (size_t)(nl - b) + 1;
				return 1;
			}
		}
		if (lit > MAX_LITERAL)
			return -1;
		pos = (size_t)(nl - b) + 1;
		if (!plus && c->cont_sent < pos) {
			out_str(c, "+ Ready for literal data\r\n");
			c->cont_sent = pos;
		}
		if (c->inlen - pos < lit)
			return 0;
		pos += lit;
	}
}

/* Returns 1 if something was consumed, 0 if more input is needed. */
static int
process_input(struct conn *c)
{
	char	*nl;
	size_t	 len, before = c->outbytes;
	int	 r;

	if (c->inlen == 0)
		return 0;
	if (c->proto == P_IMAP && c->state == S_CMD) {
		r = imap_complete(c, &len);
		if (r == -1) {
			out_str(c, "* BYE command or literal too long\r\n");
			c->state = S_CLOSING;
			return 1;
		}
		if (r == 0)
			return c->outbytes != before;	/* continuation? */
		imap_command(c, c->in, len);
		in_consume(c, len);
		return 1;
	}
	if ((nl = memchr(c->in, '\n', c->inlen)) == NULL) {
		if (c->inlen > 8192)
			return -1;
		return 0;
	}
	len = (size_t)(nl - c->in) + 1;
	*nl = '\0';
	if (nl > c->in && nl[-1] == '\r')
		nl[-1] = '\0';
	if (c->proto == P_IMAP) {
		if (c->state == S_AUTH)
			imap_auth_line(c, c->in);
		else if (c->state == S_IDLE) {
			if (strcasecmp(c->in, "DONE") == 0) {
				out_fmt(c, "%s OK IDLE terminated\r\n", c->tag);
				c->state = S_CMD;
			} else
				out_str(c, "* BAD expected DONE\r\n");
		}
	} else {
		if (c->state == S_AUTH)
			pop_auth_line(c, c->in);
		else
			pop_command(c, c->in);
	}
	in_consume(c, len);
	return 1;
}

/*
 * IMAP string tokenizer: atom, "quoted" (with \ escapes) or {n}/{n+}
 * literal.  Returns 1 with the token in out, 0 at end of command,
 * -1 on a syntax error.
 */
static int
get_token(const char **pp, const char *end, char *out, size_t outsz)
{
	const char	*p = *pp;
	size_t		 n = 0, lit;

	while (p < end && *p == ' ')
		p++;
	if (p >= end || *p == '\r' || *p == '\n')
		return 0;
	if (*p == '"') {
		for (p++; p < end && *p != '"'; p++) {
			if (*p == '\\' && p + 1 < end)
				p++;
			if (*p == '\r' || *p == '\n')
				return -1;
			if (n + 1 < outsz)
				out[n++] = *p;
		}
		if (p >= end)
			return -1;
		p++;
	} else if (*p == '{') {
		lit = 0;
		for (p++; p < end && isdigit((unsigned char)*p); p++)
			lit = lit * 10 + (size_t)(*p - '0');
		if (p < end && *p == '+')
			p++;
		if (p >= end || *p != '}')
			return -1;
		p++;
		if (p < end && *p == '\r')
			p++;
		if (p >= end || *p != '\n')
			return -1;
		p++;
		if ((size_t)(end - p) < lit)
			return -1;
		n = lit < outsz - 1 ? lit : outsz - 1;
		memcpy(out, p, n);
		p += lit;
	} else {
		while (p < end && *p != ' ' && *p != '\r' && *p != '\n') {
			if (n + 1 < outsz)
				out[n++] = *p;
			p++;
		}
	}
	out[n] = '\0';
	*pp = p;
	return 1;
}

static size_t
b64_decode(const char *s, unsigned char *out, size_t outsz)
{
	unsigned int	v = 0;
	int		bits = 0, d;
	size_t		n = 0;

	for (; *s != '\0' && *s != '='; s++) {
		if (*s >= 'A' && *s <= 'Z')
			d = *s - 'A';
		else if (*s >= 'a' && *s <= 'z')
			d = *s - 'a' + 26;
		else if (*s >= '0' && *s <= '9')
			d = *s - '0' + 52;
		else if (*s == '+')
			d = 62;
		else if (*s == '/')
			d = 63;
		else
			continue;
		v = (v << 6) | (unsigned int)d;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (n < outsz)
				out[n++] = (unsigned char)(v >> bits);
			v &= (1u << bits) - 1;
		}
	}
	return n;
}

/* Decode SASL PLAIN ("authzid\0authcid\0passwd"); returns 0 if valid. */
static int
sasl_plain(const char *b64, char *user, size_t usz)
{
	unsigned char	 buf[1024];
	unsigned char	*a, *u, *pw;
	size_t		 n, ulen;

	n = b64_decode(b64, buf, sizeof(buf) - 1);
	buf[n] = '\0';
	a = buf;
	if ((u = memchr(a, '\0', n)) == NULL)
		return -1;
	u++;
	if ((pw = memchr(u, '\0', n - (size_t)(u - buf))) == NULL)
		return -1;
	ulen = (size_t)(pw - u);
	if (ulen == 0 || ulen >= usz)
		return -1;
	memcpy(user, u, ulen);
	user[ulen] = '\0';
	return 0;
}

static void
imap_login_result(struct conn *c, const char *tag, const char *user)
{
	if (strcmp(user, "baduser") == 0) {
		n_failed++;
		out_fmt(c, "%s NO [AUTHENTICATIONFAILED] Authentication "
		    "failed\r\n", tag);
		return;
	}
	n_logins++;
	c->authed = 1;
	snprintf(c->user, sizeof(c->user), "%s", user);
	out_fmt(c, "%s OK [CAPABILITY " CAPS_AUTHED "] Logged in%s%s\r\n", tag,
	    name_sep, name);
}

static void
imap_auth_line(struct conn *c, char *line)
{
	char	user[128];

	c->state = S_CMD;
	if (strcmp(line, "*") == 0) {
		out_fmt(c, "%s BAD Authentication cancelled\r\n", c->tag);
		return;
	}
	if (sasl_plain(line, user, sizeof(user)) == -1) {
		out_fmt(c, "%s BAD Invalid SASL PLAIN response\r\n", c->tag);
		return;
	}
	imap_login_result(c, c->tag, user);
}

static void
imap_command(struct conn *c, char *cmd, size_t len)
{
	const char	*p = cmd, *end = cmd + len;
	char		 tag[64], verb[32], a1[512], a2[512];
	int		 uid = 0, rfc822;

	if (get_token(&p, end, tag, sizeof(tag)) != 1 || tag[0] == '*' ||
	    tag[0] == '+') {
		out_str(c, "* BAD Missing tag\r\n");
		return;
	}
	if (get_token(&p, end, verb, sizeof(verb)) != 1) {
		out_fmt(c, "%s BAD Missing command\r\n", tag);
		return;
	}
	if (strcasecmp(verb, "UID") == 0) {
		uid = 1;
		if (get_token(&p, end, verb, sizeof(verb)) != 1) {
			out_fmt(c, "%s BAD Missing command\r\n", tag);
			return;
		}
	}
	if (verbose)
		fprintf(stderr, "imap fd %d: %s %s\n", c->ev.fd, tag, verb);

	if (strcasecmp(verb, "CAPABILITY") == 0) {
		out_fmt(c, "* CAPABILITY %s\r\n"
		    "%s OK CAPABILITY completed\r\n",
		    c->authed ? CAPS_AUTHED : CAPS, tag);
	} else if (strcasecmp(verb, "NOOP") == 0 ||
	    strcasecmp(verb, "CHECK") == 0) {
		out_fmt(c, "%s OK %s completed\r\n", tag, verb);
	} else if (strcasecmp(verb, "ID") == 0) {
		out_fmt(c, "* ID (\"name\" \"stub\")\r\n"
		    "%s OK ID completed\r\n", tag);
	} else if (strcasecmp(verb, "LOGIN") == 0) {
		if (get_token(&p, end, a1, sizeof(a1)) != 1 ||
		    get_token(&p, end, a2, sizeof(a2)) != 1) {
			out_fmt(c, "%s BAD LOGIN needs user and password\r\n",
			    tag);
			return;
		}
		imap_login_result(c, tag, a1);
	} else if (strcasecmp(verb, "AUTHENTICATE") == 0) {
		if (get_token(&p, end, a1, sizeof(a1)) != 1 ||
		    strcasecmp(a1, "PLAIN") != 0) {
			out_fmt(c, "%s NO Unsupported mechanism\r\n", tag);
			return;
		}
		snprintf(c->tag, sizeof(c->tag), "%s", tag);
		if (get_token(&p, end, a2, sizeof(a2)) == 1) {
			/* SASL-IR initial response. */
			if (strcmp(a2, "=") == 0)
				a2[0] = '\0';
			imap_auth_line(c, a2);
		} else {
			c->state = S_AUTH;
			out_str(c, "+ \r\n");
		}
	} else if (strcasecmp(verb, "SELECT") == 0 ||
	    strcasecmp(verb, "EXAMINE") == 0) {
		out_fmt(c, "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen "
		    "\\Draft)\r\n"
		    "* 1 EXISTS\r\n"
		    "* 0 RECENT\r\n"
		    "* OK [UIDVALIDITY 1] UIDs valid\r\n"
		    "* OK [UIDNEXT 2] Predicted next UID\r\n"
		    "%s OK [%s] %s completed\r\n", tag,
		    strcasecmp(verb, "SELECT") == 0 ? "READ-WRITE" :
		    "READ-ONLY", verb);
	} else if (strcasecmp(verb, "FETCH") == 0) {
		if (get_token(&p, end, a1, sizeof(a1)) != 1 ||
		    strcmp(a1, "1") != 0) {
			out_fmt(c, "%s OK FETCH completed (no such message)"
			    "\r\n", tag);
			return;
		}
		rfc822 = memmem(p, (size_t)(end - p), "RFC822", 6) != NULL ||
		    memmem(p, (size_t)(end - p), "rfc822", 6) != NULL;
		n_fetches++;
		out_fmt(c, "* 1 FETCH (%s%s {%zu}\r\n", uid ? "UID 1 " : "",
		    rfc822 ? "RFC822" : "BODY[]", imap_msg_len);
		out_ref(c, imap_msg, imap_msg_len);
		out_fmt(c, ")\r\n%s OK FETCH completed\r\n", tag);
	} else if (strcasecmp(verb, "IDLE") == 0) {
		snprintf(c->tag, sizeof(c->tag), "%s", tag);
		c->state = S_IDLE;
		out_str(c, "+ idling\r\n");
	} else if (strcasecmp(verb, "CLOSE") == 0 ||
	    strcasecmp(verb, "UNSELECT") == 0 ||
	    strcasecmp(verb, "EXPUNGE") == 0) {
		out_fmt(c, "%s OK %s completed\r\n", tag, verb);
	} else if (strcasecmp(verb, "LOGOUT") == 0) {
		out_fmt(c, "* BYE stub logging out\r\n"
		    "%s OK LOGOUT completed\r\n", tag);
		c->state = S_CLOSING;
	} else if (strcasecmp(verb, "STARTTLS") == 0) {
		out_fmt(c, "%s NO STARTTLS not available\r\n", tag);
	} else {
		out_fmt(c, "%s BAD Unknown command\r\n", tag);
	}
}

static void
pop_login_result(struct conn *c, const char *user)
{
	if (strcmp(user, "baduser") == 0) {
		n_failed++;
		out_str(c, "-ERR [AUTH] Authentication failed\r\n");
		return;
	}
	n_logins++;
	c->authed = 1;
	out_str(c, "+OK Logged in\r\n");
}

static void
pop_auth_line(struct conn *c, char *line)
{
	char	user[128];

	c->state = S_CMD;
	if (strcmp(line, "*") == 0) {
		out_str(c, "-ERR Authentication cancelled\r\n");
		return;
	}
	if (sasl_plain(line, user, sizeof(user)) == -1) {
		out_str(c, "-ERR Invalid SASL PLAIN response\r\n");
		return;
	}
	pop_login_result(c, user);
}

static void
pop_command(struct conn *c, char *line)
{
	char	*verb, *arg, *arg2;

	verb = line;
	if ((arg = strchr(line, ' ')) != NULL) {
		*arg++ = '\0';
		while (*arg == ' ')
			arg++;
	} else
		arg = line + strlen(line);
	if (verbose)
		fprintf(stderr, "pop3 fd %d: %s\n", c->ev.fd, verb);

	if (strcasecmp(verb, "CAPA") == 0) {
		out_str(c, "+OK Capability list follows\r\n"
		    "USER\r\nSASL PLAIN\r\nPIPELINING\r\nUIDL\r\nTOP\r\n"
		    "RESP-CODES\r\nAUTH-RESP-CODE\r\n.\r\n");
	} else if (strcasecmp(verb, "USER") == 0) {
		if (*arg == '\0') {
			out_str(c, "-ERR USER needs a name\r\n");
			return;
		}
		snprintf(c->user, sizeof(c->user), "%s", arg);
		out_str(c, "+OK\r\n");
	} else if (strcasecmp(verb, "PASS") == 0) {
		if (c->user[0] == '\0') {
			out_str(c, "-ERR USER first\r\n");
			return;
		}
		pop_login_result(c, c->user);
	} else if (strcasecmp(verb, "AUTH") == 0) {
		if ((arg2 = strchr(arg, ' ')) != NULL)
			*arg2++ = '\0';
		if (strcasecmp(arg, "PLAIN") != 0) {
			out_str(c, "-ERR Unsupported mechanism\r\n");
			return;
		}
		if (arg2 != NULL && *arg2 != '\0') {
			if (strcmp(arg2, "=") == 0)
				*arg2 = '\0';
			pop_auth_line(c, arg2);
		} else {
			c->state = S_AUTH;
			out_str(c, "+ \r\n");
		}
	} else if (strcasecmp(verb, "STAT") == 0) {
		out_fmt(c, "+OK 1 %zu\r\n", pop_msg_len);
	} else if (strcasecmp(verb, "LIST") == 0) {
		if (*arg != '\0')
			out_fmt(c, "+OK 1 %zu\r\n", pop_msg_len);
		else
			out_fmt(c, "+OK 1 messages\r\n1 %zu\r\n.\r\n",
			    pop_msg_len);
	} else if (strcasecmp(verb, "UIDL") == 0) {
		if (*arg != '\0')
			out_str(c, "+OK 1 stub-1\r\n");
		else
			out_str(c, "+OK\r\n1 stub-1\r\n.\r\n");
	} else if (strcasecmp(verb, "RETR") == 0) {
		if (strcmp(arg, "1") != 0) {
			out_str(c, "-ERR no such message\r\n");
			return;
		}
		n_fetches++;
		out_fmt(c, "+OK %zu octets\r\n", pop_msg_len);
		out_ref(c, pop_msg, pop_msg_wire);
	} else if (strcasecmp(verb, "NOOP") == 0 ||
	    strcasecmp(verb, "RSET") == 0 || strcasecmp(verb, "DELE") == 0) {
		out_str(c, "+OK\r\n");
	} else if (strcasecmp(verb, "QUIT") == 0) {
		out_str(c, "+OK stub signing off\r\n");
		c->state = S_CLOSING;
	} else if (strcasecmp(verb, "STLS") == 0) {
		out_str(c, "-ERR STLS not available\r\n");
	} else {
		out_str(c, "-ERR Unknown command\r\n");
	}
}

static volatile sig_atomic_t	quit;

static void
on_signal(int sig)
{
	(void)sig;
	quit = 1;
}

int
main(int argc, char *argv[])
{
	struct epoll_event	 ev, evs[MAX_EVENTS];
	struct evsrc		 limap, lpop;
	struct sigaction	 sa;
	struct rlimit		 rl;
	const char		*addr = "127.0.0.1", *portfile = NULL;
	size_t			 imap_size = 1024 * 1024, pop_size = 2048;
	size_t			 i;
	char			*pop_raw, *ep;
	int			 ch, imap_port = -1, pop_port = -1, n, bound;
	FILE			*fp;

	while ((ch = getopt(argc, argv, "a:f:hi:M:m:n:p:v")) != -1) {
		switch (ch) {
		case 'a':
			addr = optarg;
			break;
		case 'f':
			portfile = optarg;
			break;
		case 'i':
			imap_port = (int)strtol(optarg, &ep, 10);
			if (*ep != '\0' || imap_port < 0 || imap_port > 65535)
				usage();
			break;
		case 'p':
			pop_port = (int)strtol(optarg, &ep, 10);
			if (*ep != '\0' || pop_port < 0 || pop_port > 65535)
				usage();
			break;
		case 'm':
			imap_size = strtoul(optarg, &ep, 10);
			if (*ep != '\0' || imap_size > 512UL * 1024 * 1024)
				usage();
			break;
		case 'M':
			pop_size = strtoul(optarg, &ep, 10);
			if (*ep != '\0' || pop_size > 64UL * 1024 * 1024)
				usage();
			break;
		case 'n':
			name = optarg;
			name_sep = " ";
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc || (imap_port == -1 && pop_port == -1))
		usage();

	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	imap_msg = build_message(imap_size, 0, &imap_msg_len);
	pop_raw = build_message(pop_size, 1, &pop_msg_len);
	pop_msg = dot_stuff(pop_raw, pop_msg_len, &pop_msg_wire);
	free(pop_raw);

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		die("epoll_create1: %s", strerror(errno));
	fp = portfile ? fopen(portfile, "w") : NULL;
	if (portfile && fp == NULL)
		die("%s: %s", portfile, strerror(errno));
	if (imap_port != -1) {
		limap.kind = EV_LISTEN_IMAP;
		limap.fd = listen_on(addr, imap_port, &bound);
		ev.events = EPOLLIN | EPOLLET;
		ev.data.ptr = &limap;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, limap.fd, &ev) == -1)
			die("epoll_ctl: %s", strerror(errno));
		printf("stub_backend: imap %s:%d\n", addr, bound);
		if (fp)
			fprintf(fp, "imap %d\n", bound);
	}
	if (pop_port != -1) {
		lpop.kind = EV_LISTEN_POP3;
		lpop.fd = listen_on(addr, pop_port, &bound);
		ev.events = EPOLLIN | EPOLLET;
		ev.data.ptr = &lpop;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, lpop.fd, &ev) == -1)
			die("epoll_ctl: %s", strerror(errno));
		printf("stub_backend: pop3 %s:%d\n", addr, bound);
		if (fp)
			fprintf(fp, "pop3 %d\n", bound);
	}
	if (fp && fclose(fp) != 0)
		die("%s: %s", portfile, strerror(errno));
	fflush(stdout);

	while (!quit) {
		n = epoll_wait(epfd, evs, MAX_EVENTS, 1000);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			die("epoll_wait: %s", strerror(errno));
		}
		for (i = 0; i < (size_t)n; i++) {
			struct evsrc	*src = evs[i].data.ptr;

			switch (src->kind) {
			case EV_LISTEN_IMAP:
				accept_all(src, P_IMAP);
				break;
			case EV_LISTEN_POP3:
				accept_all(src, P_POP3);
				break;
			case EV_CONN:
				conn_event((struct conn *)(void *)src, evs[i].events);
				break;
			}
		}
	}
	fprintf(stderr, "stub_backend: %lu connections (%lu open), %lu logins, "
	    "%lu refused, %lu fetches, %llu bytes out\n", n_conns, n_active,
	    n_logins, n_failed, n_fetches, n_bytes_out);
	return 0;
}

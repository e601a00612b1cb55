/*
 * loadgen.c - IMAP4/POP3 load generator for proxy benchmarks.
 *
 * One process, one thread, edge-triggered epoll, many concurrent
 * sessions, optional TLS (implicit or STARTTLS/STLS) through OpenSSL.
 *
 * Modes:
 *   login  connect, greeting, [TLS], login, logout; repeat
 *   fetch  as login, plus SELECT INBOX + FETCH 1 BODY[] (IMAP) or
 *          RETR 1 (POP3) before logging out; repeat
 *   idle   open --concurrency sessions, log them in and hold them for
 *          --duration seconds
 *
 * Prints a human readable report and, last, one machine readable line:
 *   RESULT key=value ...
 *
 * Standalone: needs libc and OpenSSL.
 *
 *	cc -std=c11 -D_GNU_SOURCE -O2 -o loadgen loadgen.c -lssl -lcrypto
 */

#include <sys/types.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ssl.h>

#define LINEMAX		2048
#define RBUF		(64 * 1024)
#define MAX_EVENTS	512
#define NERRSAMPLE	8

enum proto { P_IMAP, P_POP3 };
enum tlsmode { T_NONE, T_STARTTLS, T_IMPLICIT };
enum mode { M_LOGIN, M_FETCH, M_IDLE };
enum auth { A_LOGIN, A_LITERAL, A_LITPLUS, A_PLAIN };

enum phase { PH_CONNECT, PH_GREETING, PH_TLS, PH_LOGIN, PH_FETCH, PH_TOTAL,
	PH_MAX };
static const char *phase_name[PH_MAX] = {
	"connect", "greeting", "tls", "login", "fetch", "total"
};

enum errkind { E_CONNECT, E_TIMEOUT, E_GREETING, E_TLS, E_LOGIN, E_FETCH,
	E_PROTO, E_CLOSED, E_MAX };
static const char *err_name[E_MAX] = {
	"connect", "timeout", "greeting", "tls", "login", "fetch", "proto",
	"closed"
};

enum step {
	ST_FREE,	/* slot not in use */
	ST_CONNECT,	/* non-blocking connect in progress */
	ST_HANDSHAKE,	/* TLS handshake in progress */
	ST_GREETING,
	ST_STARTTLS,	/* STARTTLS/STLS sent */
	ST_LOGIN_U,	/* IMAP sync literal: user literal announced */
	ST_LOGIN_P,	/* IMAP sync literal: password literal announced */
	ST_USER,	/* POP3 USER sent */
	ST_LOGIN,	/* final login command sent */
	ST_SELECT,
	ST_FETCH,
	ST_LOGOUT,
	ST_HELD		/* idle mode: logged in, holding */
};

struct sess {
	int		 fd;
	SSL		*ssl;
	enum step	 step;
	int		 handshaking;
	int		 want_write;	/* TLS write needs retry */
	int64_t		 t_start, t_conn, t_greet, t_tls0, t_tls, t_login0;
	int64_t		 t_login, t_fetch0, deadline, restart_at;
	char		 out[1024];
	size_t		 outlen, outoff;
	char		 line[LINEMAX];
	size_t		 linelen;
	int		 line_long;
	size_t		 lit_left;
	size_t		 got_body;	/* literal / RETR body bytes */
	int		 multi;		/* POP3 multi-line response */
	char		 tag[8];
	unsigned int	 tagn;
	char		 user[256];
	char		 pass[256];
};

struct samples {
	uint32_t	*v;
	size_t		 n, cap;
};

struct user {
	char	*name;
	char	*pass;
};

/* Options. */
static enum proto	 o_proto = P_IMAP;
static enum tlsmode	 o_tls = T_NONE;
static enum mode	 o_mode = M_LOGIN;
static enum auth	 o_auth = A_LOGIN;
static const char	*o_host = "127.0.0.1";
static const char	*o_port;
static long		 o_conc = 1;
static double		 o_duration = -1;
static long		 o_sessions = -1;
static const char	*o_users;
static const char	*o_pattern = "user%05d";
static long		 o_ucount = 1;
static const char	*o_password = "secret";
static int		 o_insecure;
static const char	*o_ca;
static const char	*o_sni;
static double		 o_timeout = 10;
static long		 o_ramp = 100;
static double		 o_ramptime = 120;
static double		 o_maxtime = 600;
static const char	*o_label;
static int		 o_quiet;
static int		 o_verbose;

/* State. */
static int			 epfd;
static SSL_CTX			*sslctx;
static struct sockaddr_storage	 dst;
static socklen_t		 dstlen;
static struct sess		*sess;
static struct user		*users;
static size_t			 nusers;
static unsigned long		 next_user;
static char			 pat_pre[128], pat_suf[128];
static int			 pat_width, pat_zero;
static struct samples		 ph[PH_MAX];
static unsigned long		 n_ok, n_started, n_aborted, n_errors;
static unsigned long		 n_err[E_MAX];
static unsigned long		 n_held, n_establishing;
static char			 errsample[NERRSAMPLE][200];
static unsigned int		 nerrsample;
static unsigned long long	 bytes_in, bytes_out;
static int64_t			 t_begin, t_stop;
static int			 stopping;
static volatile sig_atomic_t	 interrupted;

static void	 usage(int) __attribute__((noreturn));
static void	 fatal(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static int64_t	 now_ns(void);
static void	 sample_add(struct samples *, int64_t);
static void	 sess_start(struct sess *);
static void	 sess_fail(struct sess *, enum errkind, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static void	 sess_done(struct sess *);
static void	 sess_close(struct sess *);
static void	 sess_event(struct sess *);
static int	 sess_flush(struct sess *);
static void	 sess_send(struct sess *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	 sess_feed(struct sess *, const char *, size_t);
static void	 sess_line(struct sess *, char *, size_t);
static void	 imap_line(struct sess *, char *, size_t);
static void	 pop_line(struct sess *, char *, size_t);
static int	 tls_begin(struct sess *);
static int	 tls_step(struct sess *);
static void	 after_greeting(struct sess *);
static void	 after_tls(struct sess *);
static void	 do_login(struct sess *);
static void	 after_login(struct sess *);
static void	 do_logout(struct sess *);
static void	 pick_user(struct sess *);
static void	 load_users(const char *);
static void	 parse_pattern(const char *);
static void	 b64_encode(const unsigned char *, size_t, char *, size_t);
static void	 report(double, double);

static void
usage(int status)
{
	fprintf(status ? stderr : stdout,
"usage: loadgen --port N [options]\n"
"  --proto imap|pop3          protocol (imap)\n"
"  --tls none|starttls|implicit\n"
"                             TLS mode (none)\n"
"  --mode login|fetch|idle    workload (login)\n"
"  --auth login|literal|literal+|plain\n"
"                             IMAP: LOGIN with quoted strings, with\n"
"                             synchronising literals, with LITERAL+,\n"
"                             or AUTHENTICATE PLAIN with SASL-IR;\n"
"                             POP3: USER/PASS or AUTH PLAIN (login)\n"
"  --host ADDR                server address (127.0.0.1)\n"
"  --port N                   server port\n"
"  --concurrency C            parallel sessions; idle mode: sessions to\n"
"                             hold (1)\n"
"  --duration S               run time; idle mode: hold time (10)\n"
"  --sessions N               stop after N sessions instead\n"
"  --users FILE               lines \"user [password]\"\n"
"  --user-pattern P           printf-like, one %%d (user%%05d)\n"
"  --user-count N             users 0..N-1 for the pattern (1)\n"
"  --password P               password (secret)\n"
"  --insecure                 do not verify the server certificate\n"
"  --ca FILE                  CA bundle for verification\n"
"  --sni NAME                 TLS server name / name to verify\n"
"  --timeout S                per-session timeout (10)\n"
"  --ramp N                   idle mode: sessions establishing at once "
"(100)\n"
"  --ramp-time S              idle mode: time limit to establish (120)\n"
"  --max-time S               hard limit for the whole run (600)\n"
"  --label TEXT               appended to the RESULT line\n"
"  --quiet                    print only the RESULT line\n"
"  --verbose                  print every error\n");
	exit(status);
}

static void
fatal(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("loadgen: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	exit(2);
}

static int64_t
now_ns(void)
{
	struct timespec	ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
sample_add(struct samples *s, int64_t ns)
{
	uint32_t	*nv;
	size_t		 ncap;
	int64_t		 us;

	if (s->n == s->cap) {
		ncap = s->cap ? s->cap * 2 : 4096;
		if ((nv = reallocarray(s->v, ncap, sizeof(*nv))) == NULL)
			return;
		s->v = nv;
		s->cap = ncap;
	}
	us = ns / 1000;
	if (us < 0)
		us = 0;
	if (us > UINT32_MAX)
		us = UINT32_MAX;
	s->v[s->n++] = (uint32_t)us;
}

static int
cmp_u32(const void *a, const void *b)
{
	uint32_t	x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static double
pct_ms(const struct samples *s, double p)
{
	size_t	idx;

	if (s->n == 0)
		return 0;
	idx = (size_t)((p / 100.0) * (double)s->n + 0.999999);
	if (idx > 0)
		idx--;
	if (idx >= s->n)
		idx = s->n - 1;
	return s->v[idx] / 1000.0;
}

static void
b64_encode(const unsigned char *in, size_t len, char *out, size_t outsz)
{
	static const char tbl[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t		i, o = 0;
	uint32_t	v;

	for (i = 0; i < len && o + 5 < outsz; i += 3) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[o++] = tbl[(v >> 18) & 63];
		out[o++] = tbl[(v >> 12) & 63];
		out[o++] = i + 1 < len ? tbl[(v >> 6) & 63] : '=';
		out[o++] = i + 2 < len ? tbl[v & 63] : '=';
	}
	out[o] = '\0';
}

/* Accept "%d", "%5d", "%05d" (one conversion); "%%" is a literal '%'. */
static void
parse_pattern(const char *p)
{
	const char	*q;
	size_t		 n = 0;
	int		 seen = 0;
	char		*dst_;

	dst_ = pat_pre;
	for (q = p; *q != '\0'; q++) {
		if (*q == '%' && q[1] == '%') {
			q++;
		} else if (*q == '%') {
			if (seen)
				fatal("--user-pattern: only one %%d allowed");
			q++;
			if (*q == '0') {
				pat_zero = 1;
				q++;
			}
			while (*q >= '0' && *q <= '9')
				pat_width = pat_width * 10 + (*q++ - '0');
			if (*q != 'd' && *q != 'u')
				fatal("--user-pattern: only %%d is supported");
			if (pat_width > 20)
				fatal("--user-pattern: width too large");
			seen = 1;
			dst_[n] = '\0';
			dst_ = pat_suf;
			n = 0;
			continue;
		}
		if (n + 1 >= sizeof(pat_pre))
			fatal("--user-pattern too long");
		dst_[n++] = *q;
	}
	dst_[n] = '\0';
	if (!seen) {
		/* A fixed user name. */
		o_ucount = 1;
		pat_width = -1;
	}
}

static void
load_users(const char *path)
{
	FILE	*fp;
	char	*line = NULL, *u, *pw, *save;
	size_t	 cap = 0, ucap = 0;
	ssize_t	 n;

	if ((fp = fopen(path, "r")) == NULL)
		fatal("%s: %s", path, strerror(errno));
	while ((n = getline(&line, &cap, fp)) != -1) {
		if ((u = strtok_r(line, " \t\r\n", &save)) == NULL ||
		    u[0] == '#')
			continue;
		pw = strtok_r(NULL, " \t\r\n", &save);
		if (nusers == ucap) {
			ucap = ucap ? ucap * 2 : 1024;
			users = reallocarray(users, ucap, sizeof(*users));
			if (users == NULL)
				fatal("out of memory");
		}
		users[nusers].name = strdup(u);
		users[nusers].pass = strdup(pw ? pw : o_password);
		if (!users[nusers].name || !users[nusers].pass)
			fatal("out of memory");
		nusers++;
	}
	free(line);
	fclose(fp);
	if (nusers == 0)
		fatal("%s: no users", path);
}

static void
pick_user(struct sess *s)
{
	unsigned long	i = next_user++;
	char		num[32];
	size_t		ul;
	int		len, pad;

	if (nusers > 0) {
		i %= nusers;
		snprintf(s->user, sizeof(s->user), "%s", users[i].name);
		snprintf(s->pass, sizeof(s->pass), "%s", users[i].pass);
		return;
	}
	snprintf(s->pass, sizeof(s->pass), "%s", o_password);
	if (pat_width < 0) {
		snprintf(s->user, sizeof(s->user), "%s", pat_pre);
		return;
	}
	i %= (unsigned long)o_ucount;
	/* Expand by hand: the pattern is user input, never a format. */
	len = snprintf(num, sizeof(num), "%lu", i);
	pad = pat_width > len ? pat_width - len : 0;
	ul = strlen(pat_pre);
	if (ul + (size_t)pad + (size_t)len + strlen(pat_suf) >= sizeof(s->user))
		fatal("user name too long");
	memcpy(s->user, pat_pre, ul);
	while (pad-- > 0)
		s->user[ul++] = pat_zero ? '0' : ' ';
	memcpy(s->user + ul, num, (size_t)len);
	ul += (size_t)len;
	strcpy(s->user + ul, pat_suf);
}

static void
sess_close(struct sess *s)
{
	if (s->ssl != NULL) {
		if (!s->handshaking && s->step != ST_CONNECT)
			SSL_shutdown(s->ssl);	/* best effort close_notify */
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->fd != -1) {
		close(s->fd);
		s->fd = -1;
	}
	if (s->step != ST_HELD && s->step != ST_FREE)
		n_establishing--;
	if (s->step == ST_HELD)
		n_held--;
	s->step = ST_FREE;
	s->handshaking = 0;
	s->want_write = 0;
	s->outlen = s->outoff = 0;
	s->linelen = 0;
	s->line_long = 0;
	s->lit_left = 0;
	s->multi = 0;
}

static void
sess_fail(struct sess *s, enum errkind k, const char *fmt, ...)
{
	va_list	ap;
	char	msg[160];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	n_err[k]++;
	n_errors++;
	if (o_verbose)
		fprintf(stderr, "loadgen: %s error (%s): %s\n", err_name[k],
		    s->user, msg);
	if (nerrsample < NERRSAMPLE)
		snprintf(errsample[nerrsample++], sizeof(errsample[0]),
		    "%s: %s", err_name[k], msg);
	sess_close(s);
	/* Don't spin on a dead server. */
	s->restart_at = now_ns() + (k == E_CONNECT ? 10000000 : 0);
}

static void
sess_done(struct sess *s)
{
	int64_t	t = now_ns();

	sample_add(&ph[PH_TOTAL], t - s->t_start);
	n_ok++;
	sess_close(s);
	s->restart_at = 0;
}

static void
sess_start(struct sess *s)
{
	struct epoll_event	ev;
	int			fd, one = 1;

	memset(s->tag, 0, sizeof(s->tag));
	s->tagn = 0;
	s->got_body = 0;
	pick_user(s);
	n_started++;
	n_establishing++;
	s->t_start = now_ns();
	s->deadline = s->t_start + (int64_t)(o_timeout * 1e9);
	s->step = ST_CONNECT;
	fd = socket(dst.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0);
	if (fd == -1) {
		s->fd = -1;
		sess_fail(s, E_CONNECT, "socket: %s", strerror(errno));
		return;
	}
	s->fd = fd;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
	ev.data.ptr = s;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
		sess_fail(s, E_CONNECT, "epoll_ctl: %s", strerror(errno));
		return;
	}
	if (connect(fd, (struct sockaddr *)&dst, dstlen) == -1 &&
	    errno != EINPROGRESS) {
		sess_fail(s, E_CONNECT, "connect: %s", strerror(errno));
		return;
	}
}

static void
sess_send(struct sess *s, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(s->out + s->outlen, sizeof(s->out) - s->outlen, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(s->out) - s->outlen) {
		sess_fail(s, E_PROTO, "command too long");
		return;
	}
	s->outlen += (size_t)n;
}

static void
new_tag(struct sess *s)
{
	snprintf(s->tag, sizeof(s->tag), "a%u", ++s->tagn);
}

/* Returns -1 if the session failed. */
static int
sess_flush(struct sess *s)
{
	ssize_t	n;
	int	r, e;

	while (s->outoff < s->outlen) {
		if (s->ssl != NULL) {
			ERR_clear_error();
			r = SSL_write(s->ssl, s->out + s->outoff,
			    (int)(s->outlen - s->outoff));
			if (r <= 0) {
				e = SSL_get_error(s->ssl, r);
				if (e == SSL_ERROR_WANT_WRITE ||
				    e == SSL_ERROR_WANT_READ) {
					s->want_write = 1;
					return 0;
				}
				sess_fail(s, E_CLOSED, "SSL_write failed");
				return -1;
			}
			n = r;
		} else {
			n = send(s->fd, s->out + s->outoff,
			    s->outlen - s->outoff, MSG_NOSIGNAL);
			if (n == -1) {
				if (errno == EINTR)
					continue;
				if (errno == EAGAIN || errno == EWOULDBLOCK)
					return 0;
				sess_fail(s, E_CLOSED, "send: %s",
				    strerror(errno));
				return -1;
			}
		}
		s->want_write = 0;
		s->outoff += (size_t)n;
		bytes_out += (unsigned long long)n;
	}
	s->outoff = s->outlen = 0;
	return 0;
}

static int
tls_begin(struct sess *s)
{
	if ((s->ssl = SSL_new(sslctx)) == NULL) {
		sess_fail(s, E_TLS, "SSL_new failed");
		return -1;
	}
	SSL_set_fd(s->ssl, s->fd);
	SSL_set_connect_state(s->ssl);
	if (o_sni != NULL || !o_insecure) {
		const char	*name = o_sni ? o_sni : o_host;

		SSL_set_tlsext_host_name(s->ssl, name);
		if (!o_insecure)
			SSL_set1_host(s->ssl, name);
	}
	s->handshaking = 1;
	s->t_tls0 = now_ns();
	return tls_step(s);
}

/* Returns -1 on failure, 0 if still in progress or done. */
static int
tls_step(struct sess *s)
{
	unsigned long	e;
	int		r;
	char		buf[120];

	ERR_clear_error();
	r = SSL_do_handshake(s->ssl);
	if (r == 1) {
		s->handshaking = 0;
		s->t_tls = now_ns();
		sample_add(&ph[PH_TLS], s->t_tls - s->t_tls0);
		after_tls(s);
		return s->step == ST_FREE ? -1 : 0;
	}
	r = SSL_get_error(s->ssl, r);
	if (r == SSL_ERROR_WANT_READ || r == SSL_ERROR_WANT_WRITE)
		return 0;
	e = ERR_peek_error();
	if (e != 0)
		ERR_error_string_n(e, buf, sizeof(buf));
	else
		snprintf(buf, sizeof(buf), "%s", r == SSL_ERROR_SYSCALL ?
		    strerror(errno) : "handshake failed");
	sess_fail(s, E_TLS, "handshake: %s", buf);
	return -1;
}

static void
after_tls(struct sess *s)
{
	if (o_tls == T_IMPLICIT)
		s->step = ST_GREETING;
	else
		do_login(s);
}

static void
after_greeting(struct sess *s)
{
	if (o_tls == T_STARTTLS) {
		s->step = ST_STARTTLS;
		s->t_tls0 = now_ns();
		if (o_proto == P_IMAP) {
			new_tag(s);
			sess_send(s, "%s STARTTLS\r\n", s->tag);
		} else
			sess_send(s, "STLS\r\n");
		return;
	}
	do_login(s);
}

static void
do_login(struct sess *s)
{
	char	raw[600], b64[820];
	size_t	ul, pl;

	s->t_login0 = now_ns();
	ul = strlen(s->user);
	pl = strlen(s->pass);
	if (o_proto == P_POP3) {
		if (o_auth == A_PLAIN) {
			raw[0] = '\0';
			memcpy(raw + 1, s->user, ul + 1);
			memcpy(raw + 2 + ul, s->pass, pl);
			b64_encode((unsigned char *)raw, ul + pl + 2, b64,
			    sizeof(b64));
			s->step = ST_LOGIN;
			sess_send(s, "AUTH PLAIN %s\r\n", b64);
		} else {
			s->step = ST_USER;
			sess_send(s, "USER %s\r\n", s->user);
		}
		return;
	}
	new_tag(s);
	switch (o_auth) {
	case A_LOGIN:
		/* Our user names never need escaping; quote anyway. */
		s->step = ST_LOGIN;
		sess_send(s, "%s LOGIN \"%s\" \"%s\"\r\n", s->tag, s->user,
		    s->pass);
		break;
	case A_LITERAL:
		s->step = ST_LOGIN_U;
		sess_send(s, "%s LOGIN {%zu}\r\n", s->tag, ul);
		break;
	case A_LITPLUS:
		s->step = ST_LOGIN;
		sess_send(s, "%s LOGIN {%zu+}\r\n%s {%zu+}\r\n%s\r\n", s->tag,
		    ul, s->user, pl, s->pass);
		break;
	case A_PLAIN:
		raw[0] = '\0';
		memcpy(raw + 1, s->user, ul + 1);
		memcpy(raw + 2 + ul, s->pass, pl);
		b64_encode((unsigned char *)raw, ul + pl + 2, b64, sizeof(b64));
		s->step = ST_LOGIN;
		sess_send(s, "%s AUTHENTICATE PLAIN %s\r\n", s->tag, b64);
		break;
	}
}

static void
after_login(struct sess *s)
{
	s->t_login = now_ns();
	sample_add(&ph[PH_LOGIN], s->t_login - s->t_login0);
	switch (o_mode) {
	case M_IDLE:
		s->step = ST_HELD;
		n_establishing--;
		n_held++;
		sample_add(&ph[PH_TOTAL], s->t_login - s->t_start);
		n_ok++;
		break;
	case M_FETCH:
		s->t_fetch0 = now_ns();
		if (o_proto == P_IMAP) {
			new_tag(s);
			s->step = ST_SELECT;
			sess_send(s, "%s SELECT INBOX\r\n", s->tag);
		} else {
			s->step = ST_FETCH;
			s->multi = 0;
			sess_send(s, "RETR 1\r\n");
		}
		break;
	case M_LOGIN:
		do_logout(s);
		break;
	}
}

static void
do_logout(struct sess *s)
{
	s->step = ST_LOGOUT;
	if (o_proto == P_IMAP) {
		new_tag(s);
		sess_send(s, "%s LOGOUT\r\n", s->tag);
	} else
		sess_send(s, "QUIT\r\n");
}

/* Does this tagged line belong to our current command?  Returns the status. */
static const char *
tagged(struct sess *s, char *line)
{
	size_t	tl = strlen(s->tag);

	if (tl == 0 || strncmp(line, s->tag, tl) != 0 || line[tl] != ' ')
		return NULL;
	return line + tl + 1;
}

static void
imap_line(struct sess *s, char *line, size_t len)
{
	const char	*st;
	char		*b;
	size_t		 n, mul;

	/* A line ending in {n} announces a literal. */
	if (len > 2 && line[len - 1] == '}') {
		b = line + len - 2;
		n = 0;
		mul = 1;
		while (b > line && *b >= '0' && *b <= '9') {
			n += (size_t)(*b - '0') * mul;
			mul *= 10;
			b--;
		}
		if (*b == '{' && b != line + len - 2)
			s->lit_left = n;
	}

	switch (s->step) {
	case ST_GREETING:
		if (strncasecmp(line, "* OK", 4) == 0) {
			s->t_greet = now_ns();
			sample_add(&ph[PH_GREETING], s->t_greet -
			    (o_tls == T_IMPLICIT ? s->t_tls : s->t_conn));
			after_greeting(s);
		} else
			sess_fail(s, E_GREETING, "%.100s", line);
		return;
	case ST_LOGIN_U:
	case ST_LOGIN_P:
		if (line[0] == '+') {
			if (s->step == ST_LOGIN_U) {
				s->step = ST_LOGIN_P;
				sess_send(s, "%s {%zu}\r\n", s->user,
				    strlen(s->pass));
			} else {
				s->step = ST_LOGIN;
				sess_send(s, "%s\r\n", s->pass);
			}
			return;
		}
		break;
	case ST_HELD:
		return;
	default:
		break;
	}
	if (line[0] == '*' || s->lit_left > 0 || line[0] == ')')
		return;		/* untagged data */
	if (line[0] == '+') {
		sess_fail(s, E_PROTO, "unexpected continuation: %.80s", line);
		return;
	}
	if ((st = tagged(s, line)) == NULL)
		return;		/* not ours; ignore */
	if (strncasecmp(st, "OK", 2) != 0) {
		enum errkind	k;

		switch (s->step) {
		case ST_STARTTLS:
			k = E_TLS;
			break;
		case ST_LOGIN:
		case ST_LOGIN_U:
		case ST_LOGIN_P:
			k = E_LOGIN;
			break;
		case ST_SELECT:
		case ST_FETCH:
			k = E_FETCH;
			break;
		default:
			k = E_PROTO;
			break;
		}
		sess_fail(s, k, "%.120s", line);
		return;
	}
	switch (s->step) {
	case ST_STARTTLS:
		tls_begin(s);
		break;
	case ST_LOGIN:
		after_login(s);
		break;
	case ST_SELECT:
		new_tag(s);
		s->step = ST_FETCH;
		s->got_body = 0;
		sess_send(s, "%s FETCH 1 BODY[]\r\n", s->tag);
		break;
	case ST_FETCH:
		if (s->got_body == 0) {
			sess_fail(s, E_FETCH, "FETCH returned no literal");
			return;
		}
		sample_add(&ph[PH_FETCH], now_ns() - s->t_fetch0);
		do_logout(s);
		break;
	case ST_LOGOUT:
		sess_done(s);
		break;
	default:
		sess_fail(s, E_PROTO, "unexpected: %.100s", line);
		break;
	}
}

static void
pop_line(struct sess *s, char *line, size_t len)
{
	int	ok;

	if (s->multi) {
		if (len == 1 && line[0] == '.') {
			s->multi = 0;
			if (s->step == ST_FETCH) {
				sample_add(&ph[PH_FETCH], now_ns() -
				    s->t_fetch0);
				do_logout(s);
			}
		} else
			s->got_body += len + 2;
		return;
	}
	ok = strncmp(line, "+OK", 3) == 0;
	switch (s->step) {
	case ST_GREETING:
		if (!ok) {
			sess_fail(s, E_GREETING, "%.100s", line);
			return;
		}
		s->t_greet = now_ns();
		sample_add(&ph[PH_GREETING], s->t_greet -
		    (o_tls == T_IMPLICIT ? s->t_tls : s->t_conn));
		after_greeting(s);
		break;
	case ST_STARTTLS:
		if (!ok) {
			sess_fail(s, E_TLS, "STLS: %.100s", line);
			return;
		}
		tls_begin(s);
		break;
	case ST_USER:
		if (!ok) {
			sess_fail(s, E_LOGIN, "USER: %.100s", line);
			return;
		}
		s->step = ST_LOGIN;
		sess_send(s, "PASS %s\r\n", s->pass);
		break;
	case ST_LOGIN:
		if (!ok) {
			sess_fail(s, E_LOGIN, "%.100s", line);
			return;
		}
		after_login(s);
		break;
	case ST_FETCH:
		if (!ok) {
			sess_fail(s, E_FETCH, "RETR: %.100s", line);
			return;
		}
		s->multi = 1;
		break;
	case ST_LOGOUT:
		if (!ok) {
			sess_fail(s, E_PROTO, "QUIT: %.100s", line);
			return;
		}
		sess_done(s);
		break;
	case ST_HELD:
		break;
	default:
		sess_fail(s, E_PROTO, "unexpected: %.100s", line);
		break;
	}
}

static void
sess_line(struct sess *s, char *line, size_t len)
{
	/* Strip CRLF. */
	if (len > 0 && line[len - 1] == '\n')
		len--;
	if (len > 0 && line[len - 1] == '\r')
		len--;
	line[len] = '\0';
	if (o_proto == P_IMAP)
		imap_line(s, line, len);
	else
		pop_line(s, line, len);
}

/*
 * Feed received bytes to the response parser.  Stops early when the
 * session ends or switches to TLS (the rest is then discarded: nothing
 * may follow a STARTTLS OK in plain text).
 */
static void
sess_feed(struct sess *s, const char *buf, size_t n)
{
	const char	*nl;
	size_t		 k;

	while (n > 0) {
		if (s->step == ST_FREE || s->handshaking)
			return;
		if (s->lit_left > 0) {
			k = n < s->lit_left ? n : s->lit_left;
			s->lit_left -= k;
			s->got_body += k;
			buf += k;
			n -= k;
			continue;
		}
		nl = memchr(buf, '\n', n);
		k = nl ? (size_t)(nl - buf) + 1 : n;
		if (s->linelen + k >= LINEMAX) {
			sess_fail(s, E_PROTO, "response line too long");
			return;
		}
		memcpy(s->line + s->linelen, buf, k);
		s->linelen += k;
		buf += k;
		n -= k;
		if (nl == NULL)
			return;
		k = s->linelen;
		s->linelen = 0;
		sess_line(s, s->line, k);
	}
}

static void
sess_event(struct sess *s)
{
	static char	rbuf[RBUF];
	ssize_t		n;
	socklen_t	elen;
	int		err, r;

	if (s->step == ST_CONNECT) {
		elen = sizeof(err);
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) == -1)
			err = errno;
		if (err == EINPROGRESS || err == EALREADY)
			return;
		if (err != 0) {
			sess_fail(s, E_CONNECT, "connect: %s", strerror(err));
			return;
		}
		/* Writable means connected; a spurious wakeup is harmless. */
		{
			struct sockaddr_storage	ss;
			socklen_t		sl = sizeof(ss);

			if (getpeername(s->fd, (struct sockaddr *)&ss, &sl)
			    == -1)
				return;
		}
		s->t_conn = now_ns();
		sample_add(&ph[PH_CONNECT], s->t_conn - s->t_start);
		if (o_tls == T_IMPLICIT) {
			s->step = ST_HANDSHAKE;
			if (tls_begin(s) == -1)
				return;
		} else
			s->step = ST_GREETING;
	}
	if (s->handshaking) {
		if (tls_step(s) == -1)
			return;
		if (s->handshaking)
			return;
	}
	for (;;) {
		if (s->step == ST_FREE)
			return;
		if (s->outlen > 0 && sess_flush(s) == -1)
			return;
		if (s->handshaking) {
			/* STARTTLS began during the last feed. */
			if (tls_step(s) == -1 || s->handshaking)
				return;
			continue;
		}
		if (s->ssl != NULL) {
			ERR_clear_error();
			r = SSL_read(s->ssl, rbuf, sizeof(rbuf));
			if (r <= 0) {
				r = SSL_get_error(s->ssl, r);
				if (r == SSL_ERROR_WANT_READ ||
				    r == SSL_ERROR_WANT_WRITE)
					return;
				if (r == SSL_ERROR_ZERO_RETURN)
					n = 0;
				else
					n = -1;
			} else
				n = r;
		} else {
			n = recv(s->fd, rbuf, sizeof(rbuf), 0);
			if (n == -1 && errno == EINTR)
				continue;
			if (n == -1 && (errno == EAGAIN ||
			    errno == EWOULDBLOCK))
				return;
		}
		if (n <= 0) {
			if (s->step == ST_LOGOUT) {
				/* Server closed after answering LOGOUT/QUIT. */
				sess_done(s);
				return;
			}
			sess_fail(s, E_CLOSED, "%s in step %d",
			    n == 0 ? "connection closed" : "read error",
			    (int)s->step);
			return;
		}
		bytes_in += (unsigned long long)n;
		sess_feed(s, rbuf, (size_t)n);
	}
}

static void
on_signal(int sig)
{
	(void)sig;
	interrupted = 1;
}

static double
parse_num(const char *opt, const char *arg, double min, double max)
{
	char	*ep;
	double	 v;

	errno = 0;
	v = strtod(arg, &ep);
	if (*arg == '\0' || *ep != '\0' || errno != 0 || v < min || v > max)
		fatal("%s: invalid value \"%s\"", opt, arg);
	return v;
}

static void
report(double secs, double ramp_secs)
{
	struct rusage	ru;
	double		cpu, mbps;
	const char	*pn = o_proto == P_IMAP ? "imap" : "pop3";
	const char	*mn = o_mode == M_LOGIN ? "login" :
			    o_mode == M_FETCH ? "fetch" : "idle";
	const char	*tn = o_tls == T_NONE ? "none" :
			    o_tls == T_STARTTLS ? "starttls" : "implicit";
	const char	*an = o_auth == A_LOGIN ? "login" :
			    o_auth == A_LITERAL ? "literal" :
			    o_auth == A_LITPLUS ? "literal+" : "plain";
	int		i;
	unsigned int	j;

	for (i = 0; i < PH_MAX; i++)
		if (ph[i].n > 0)
			qsort(ph[i].v, ph[i].n, sizeof(uint32_t), cmp_u32);
	getrusage(RUSAGE_SELF, &ru);
	cpu = (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
	if (secs <= 0)
		secs = 1e-9;
	mbps = (double)(bytes_in + bytes_out) * 8 / 1e6 / secs;

	if (!o_quiet) {
		printf("loadgen: proto=%s mode=%s tls=%s auth=%s conc=%ld "
		    "target=%s:%s\n", pn, mn, tn, an, o_conc, o_host, o_port);
		if (o_mode == M_IDLE)
			printf("  established %lu of %ld sessions in %.2f s, "
			    "held %lu at end, hold %.2f s\n", n_ok, o_conc,
			    ramp_secs, n_held, secs);
		else
			printf("  %lu sessions in %.2f s = %.1f/s "
			    "(%lu aborted at end)\n", n_ok, secs,
			    (double)n_ok / secs, n_aborted);
		printf("  errors %lu:", n_errors);
		for (i = 0; i < E_MAX; i++)
			printf(" %s=%lu", err_name[i], n_err[i]);
		printf("\n");
		for (j = 0; j < nerrsample; j++)
			printf("    e.g. %s\n", errsample[j]);
		printf("  %-9s %9s %9s %9s %9s %9s\n", "phase", "count",
		    "p50 ms", "p90 ms", "p99 ms", "max ms");
		for (i = 0; i < PH_MAX; i++) {
			if (ph[i].n == 0)
				continue;
			printf("  %-9s %9zu %9.3f %9.3f %9.3f %9.3f\n",
			    phase_name[i], ph[i].n, pct_ms(&ph[i], 50),
			    pct_ms(&ph[i], 90), pct_ms(&ph[i], 99),
			    pct_ms(&ph[i], 100));
		}
		printf("  bytes in %llu out %llu: %.1f MiB/s, %.1f Mbit/s; "
		    "loadgen cpu %.2f s\n", bytes_in, bytes_out,
		    (double)(bytes_in + bytes_out) / secs / 1048576.0, mbps,
		    cpu);
	}
	printf("RESULT proto=%s mode=%s tls=%s auth=%s conc=%ld "
	    "sessions=%lu secs=%.2f rate=%.1f "
	    "p50_ms=%.3f p99_ms=%.3f max_ms=%.3f "
	    "connect_p99_ms=%.3f greeting_p99_ms=%.3f tls_p50_ms=%.3f "
	    "tls_p99_ms=%.3f login_p50_ms=%.3f login_p99_ms=%.3f "
	    "fetch_p50_ms=%.3f fetch_p99_ms=%.3f "
	    "bytes=%llu mbps=%.1f errors=%lu",
	    pn, mn, tn, an, o_conc, n_ok, secs,
	    o_mode == M_IDLE ? 0.0 : (double)n_ok / secs,
	    pct_ms(&ph[PH_TOTAL], 50), pct_ms(&ph[PH_TOTAL], 99),
	    pct_ms(&ph[PH_TOTAL], 100),
	    pct_ms(&ph[PH_CONNECT], 99), pct_ms(&ph[PH_GREETING], 99),
	    pct_ms(&ph[PH_TLS], 50), pct_ms(&ph[PH_TLS], 99),
	    pct_ms(&ph[PH_LOGIN], 50), pct_ms(&ph[PH_LOGIN], 99),
	    pct_ms(&ph[PH_FETCH], 50), pct_ms(&ph[PH_FETCH], 99),
	    bytes_in + bytes_out, mbps, n_errors);
	for (i = 0; i < E_MAX; i++)
		printf(" err_%s=%lu", err_name[i], n_err[i]);
	if (o_mode == M_IDLE)
		printf(" established=%lu held=%lu ramp_secs=%.2f", n_ok,
		    n_held, ramp_secs);
	printf(" aborted=%lu lg_cpu=%.2f", n_aborted, cpu);
	if (o_label != NULL)
		printf(" %s", o_label);
	printf("\n");
	fflush(stdout);
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "proto",		required_argument,	NULL, 'P' },
		{ "tls",		required_argument,	NULL, 'T' },
		{ "mode",		required_argument,	NULL, 'm' },
		{ "auth",		required_argument,	NULL, 'A' },
		{ "host",		required_argument,	NULL, 'h' },
		{ "port",		required_argument,	NULL, 'p' },
		{ "concurrency",	required_argument,	NULL, 'c' },
		{ "duration",		required_argument,	NULL, 'd' },
		{ "sessions",		required_argument,	NULL, 'n' },
		{ "users",		required_argument,	NULL, 'u' },
		{ "user-pattern",	required_argument,	NULL, 'U' },
		{ "user-count",		required_argument,	NULL, 'N' },
		{ "password",		required_argument,	NULL, 'w' },
		{ "insecure",		no_argument,		NULL, 'k' },
		{ "ca",			required_argument,	NULL, 'C' },
		{ "sni",		required_argument,	NULL, 'S' },
		{ "timeout",		required_argument,	NULL, 't' },
		{ "ramp",		required_argument,	NULL, 'r' },
		{ "ramp-time",		required_argument,	NULL, 'R' },
		{ "max-time",		required_argument,	NULL, 'X' },
		{ "label",		required_argument,	NULL, 'L' },
		{ "quiet",		no_argument,		NULL, 'q' },
		{ "verbose",		no_argument,		NULL, 'v' },
		{ "help",		no_argument,		NULL, 'H' },
		{ NULL,			0,			NULL, 0 }
	};
	struct epoll_event	 evs[MAX_EVENTS];
	struct addrinfo		 hints, *res;
	struct rlimit		 rl;
	struct sigaction	 sa;
	struct sess		*s;
	int64_t			 t, t_ramp_end = 0, t_hard, next_scan = 0;
	int64_t			 t_hold_end = 0;
	double			 secs, ramp_secs = 0;
	long			 i, nslots;
	int			 ch, n, k, holding = 0, wait_ms;
	unsigned long		 held_at_end;

	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'P':
			if (strcmp(optarg, "imap") == 0)
				o_proto = P_IMAP;
			else if (strcmp(optarg, "pop3") == 0)
				o_proto = P_POP3;
			else
				fatal("--proto: imap or pop3");
			break;
		case 'T':
			if (strcmp(optarg, "none") == 0)
				o_tls = T_NONE;
			else if (strcmp(optarg, "starttls") == 0)
				o_tls = T_STARTTLS;
			else if (strcmp(optarg, "implicit") == 0)
				o_tls = T_IMPLICIT;
			else
				fatal("--tls: none, starttls or implicit");
			break;
		case 'm':
			if (strcmp(optarg, "login") == 0)
				o_mode = M_LOGIN;
			else if (strcmp(optarg, "fetch") == 0)
				o_mode = M_FETCH;
			else if (strcmp(optarg, "idle") == 0)
				o_mode = M_IDLE;
			else
				fatal("--mode: login, fetch or idle");
			break;
		case 'A':
			if (strcmp(optarg, "login") == 0)
				o_auth = A_LOGIN;
			else if (strcmp(optarg, "literal") == 0)
				o_auth = A_LITERAL;
			else if (strcmp(optarg, "literal+") == 0)
				o_auth = A_LITPLUS;
			else if (strcmp(optarg, "plain") == 0)
				o_auth = A_PLAIN;
			else
				fatal("--auth: login, literal, literal+ or "
				    "plain");
			break;
		case 'h':
			o_host = optarg;
			break;
		case 'p':
			o_port = optarg;
			break;
		case 'c':
			o_conc = (long)parse_num("--concurrency", optarg, 1,
			    1000000);
			break;
		case 'd':
			o_duration = parse_num("--duration", optarg, 0.01,
			    86400);
			break;
		case 'n':
			o_sessions = (long)parse_num("--sessions", optarg, 1,
			    1e12);
			break;
		case 'u':
			o_users = optarg;
			break;
		case 'U':
			o_pattern = optarg;
			break;
		case 'N':
			o_ucount = (long)parse_num("--user-count", optarg, 1,
			    1e12);
			break;
		case 'w':
			o_password = optarg;
			break;
		case 'k':
			o_insecure = 1;
			break;
		case 'C':
			o_ca = optarg;
			break;
		case 'S':
			o_sni = optarg;
			break;
		case 't':
			o_timeout = parse_num("--timeout", optarg, 0.01, 3600);
			break;
		case 'r':
			o_ramp = (long)parse_num("--ramp", optarg, 1, 1000000);
			break;
		case 'R':
			o_ramptime = parse_num("--ramp-time", optarg, 0.1,
			    86400);
			break;
		case 'X':
			o_maxtime = parse_num("--max-time", optarg, 0.1,
			    86400);
			break;
		case 'L':
			o_label = optarg;
			break;
		case 'q':
			o_quiet = 1;
			break;
		case 'v':
			o_verbose = 1;
			break;
		case 'H':
			usage(0);
		default:
			usage(2);
		}
	}
	if (optind != argc || o_port == NULL)
		usage(2);
	if (o_proto == P_POP3 && (o_auth == A_LITERAL || o_auth == A_LITPLUS))
		fatal("--auth literal/literal+ is IMAP only");
	if (o_duration < 0 && (o_sessions < 0 || o_mode == M_IDLE))
		o_duration = 10;
	if (o_users != NULL)
		load_users(o_users);
	else
		parse_pattern(o_pattern);

	/* Raise the descriptor limit to the hard maximum. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY &&
	    (rlim_t)o_conc + 16 > rl.rlim_cur)
		fprintf(stderr, "loadgen: warning: --concurrency %ld exceeds "
		    "the descriptor limit %llu\n", o_conc,
		    (unsigned long long)rl.rlim_cur);

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((n = getaddrinfo(o_host, o_port, &hints, &res)) != 0)
		fatal("%s:%s: %s", o_host, o_port, gai_strerror(n));
	memcpy(&dst, res->ai_addr, res->ai_addrlen);
	dstlen = res->ai_addrlen;
	freeaddrinfo(res);

	if (o_tls != T_NONE) {
		if ((sslctx = SSL_CTX_new(TLS_client_method())) == NULL)
			fatal("SSL_CTX_new failed");
		SSL_CTX_set_mode(sslctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
		SSL_CTX_set_session_cache_mode(sslctx, SSL_SESS_CACHE_OFF);
		if (o_insecure)
			SSL_CTX_set_verify(sslctx, SSL_VERIFY_NONE, NULL);
		else {
			SSL_CTX_set_verify(sslctx, SSL_VERIFY_PEER, NULL);
			if (o_ca != NULL) {
				if (SSL_CTX_load_verify_locations(sslctx, o_ca,
				    NULL) != 1)
					fatal("cannot load CA file %s", o_ca);
			} else
				SSL_CTX_set_default_verify_paths(sslctx);
		}
	}

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) == -1)
		fatal("epoll_create1: %s", strerror(errno));
	nslots = o_conc;
	if ((sess = calloc((size_t)nslots, sizeof(*sess))) == NULL)
		fatal("out of memory");
	for (i = 0; i < nslots; i++) {
		sess[i].fd = -1;
		sess[i].step = ST_FREE;
	}

	t_begin = now_ns();
	t_hard = t_begin + (int64_t)(o_maxtime * 1e9);
	if (o_mode == M_IDLE) {
		t_ramp_end = t_begin + (int64_t)(o_ramptime * 1e9);
		t_stop = 0;
	} else if (o_duration > 0)
		t_stop = t_begin + (int64_t)(o_duration * 1e9);
	else
		t_stop = t_hard;
	if (t_stop > t_hard)
		t_stop = t_hard;

	for (;;) {
		t = now_ns();
		if (interrupted || t >= t_hard)
			break;
		/* Start sessions on free slots. */
		if (!stopping && !holding) {
			for (i = 0; i < nslots; i++) {
				s = &sess[i];
				if (s->step != ST_FREE || s->restart_at > t)
					continue;
				if (o_sessions > 0 &&
				    n_started >= (unsigned long)o_sessions)
					break;
				if (o_mode == M_IDLE) {
					if (s->t_start != 0)
						continue;	/* one shot */
					if (n_establishing >=
					    (unsigned long)o_ramp)
						break;
				}
				sess_start(s);
			}
		}
		/* End conditions. */
		if (o_mode == M_IDLE) {
			if (!holding && (n_establishing == 0 || t >= t_ramp_end)) {
				int	all = 1;

				for (i = 0; i < nslots && all; i++)
					if (sess[i].t_start == 0)
						all = 0;
				if (all || t >= t_ramp_end) {
					/* Give up on what is still pending. */
					for (i = 0; i < nslots; i++) {
						s = &sess[i];
						if (s->step != ST_FREE &&
						    s->step != ST_HELD)
							sess_fail(s, E_TIMEOUT,
							    "ramp time over");
					}
					holding = 1;
					ramp_secs = (t - t_begin) / 1e9;
					t_hold_end = t +
					    (int64_t)(o_duration * 1e9);
					if (!o_quiet) {
						printf("HOLDING established=%lu"
						    " errors=%lu\n", n_held,
						    n_errors);
						fflush(stdout);
					}
				}
			}
			if (holding && t >= t_hold_end)
				break;
		} else {
			if (t >= t_stop)
				break;
			if (o_sessions > 0 && n_ok + n_errors >=
			    (unsigned long)o_sessions)
				break;
		}
		/* Per-session timeouts. */
		if (t >= next_scan) {
			for (i = 0; i < nslots; i++) {
				s = &sess[i];
				if (s->step != ST_FREE && s->step != ST_HELD &&
				    t > s->deadline)
					sess_fail(s, E_TIMEOUT, "step %d",
					    (int)s->step);
			}
			next_scan = t + 50000000;
		}
		wait_ms = 50;
		for (i = 0; i < nslots && wait_ms > 0; i++) {
			if (sess[i].step == ST_FREE && !holding &&
			    (o_mode != M_IDLE || sess[i].t_start == 0) &&
			    sess[i].restart_at <= t)
				wait_ms = 0;
			else if (sess[i].step == ST_FREE && !holding &&
			    o_mode != M_IDLE && sess[i].restart_at > t)
				wait_ms = 1;
		}
		if (o_mode == M_IDLE && n_establishing >= (unsigned long)o_ramp)
			wait_ms = 50;
		if (o_sessions > 0 && n_started >= (unsigned long)o_sessions)
			wait_ms = 50;
		n = epoll_wait(epfd, evs, MAX_EVENTS, wait_ms);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			fatal("epoll_wait: %s", strerror(errno));
		}
		for (k = 0; k < n; k++) {
			s = evs[k].data.ptr;
			if (s->step == ST_FREE)
				continue;
			sess_event(s);
		}
	}

	t = now_ns();
	held_at_end = n_held;
	if (o_mode == M_IDLE)
		secs = holding ? (t - t_hold_end) / 1e9 + o_duration : 0;
	else
		secs = (t - t_begin) / 1e9;
	stopping = 1;
	/* Abandon whatever is in flight; it is not counted. */
	for (i = 0; i < nslots; i++) {
		s = &sess[i];
		if (s->step == ST_FREE)
			continue;
		if (s->step != ST_HELD)
			n_aborted++;
		sess_close(s);
	}
	n_held = held_at_end;
	report(secs, ramp_secs);
	return n_ok > 0 && n_errors == 0 ? 0 : 1;
}

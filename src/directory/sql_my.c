/*
 * The sql back-end's MySQL/MariaDB driver: libmariadb's prepared
 * statements (the login travels as a bound parameter).  The client
 * library blocks, which is why lookups run on the pool's own threads.
 * Its own timeouts are per read or write (a server that sends a byte a
 * second never trips them), so every wait of the library goes through
 * my_io_wait(), which polls against the call's absolute deadline.  Over
 * TLS the library reads its socket in blocking mode inside OpenSSL, where
 * no hook sees the wait: a watchdog thread shuts down the socket of any
 * call still running at its deadline, which ends the blocked read.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sql.h"
#include "util.h"

#ifdef HAVE_LIBMARIADB
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include <mysql.h>

struct sql_conn {
	MYSQL		*my;
	MYSQL_STMT	*stmt;
	size_t		 ncols;		/* of the prepared statement */
	unsigned	 nparams;
};

static pthread_once_t my_once = PTHREAD_ONCE_INIT;

/*
 * A library call in progress, on its caller's stack, while the watchdog
 * may see it.  fd is our own dup(2) of the call's socket (-1 until it is
 * known): shutting it down ends the library's blocked read, and as the
 * descriptor is ours no reuse of the library's number can be hit.
 */
struct my_watch {
	struct my_watch	*next;
	int		 fd;
	uint64_t	 deadline;
	bool		 fired;		/* the watchdog shut the socket */
};

/*
 * The watchdog: one thread for the process (libmariadb's hook has no
 * pointer of ours to hang it on), started with the library, asleep
 * until the earliest deadline of the calls in progress.
 */
static struct {
	pthread_mutex_t	 mtx;
	pthread_cond_t	 cond;		/* a call came in or learnt its socket */
	struct my_watch	*calls;
	bool		 running;
} my_dog = { .mtx = PTHREAD_MUTEX_INITIALIZER };

/*
 * The call this thread is in, for my_io_wait(): a connection is only ever
 * used by the thread that calls into it.  timed_out: its deadline ended
 * a wait.
 */
static _Thread_local struct {
	uint64_t	 deadline;
	bool		 timed_out;
	struct my_watch	*watch;
} my_call;

static void *
my_dog_main(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&my_dog.mtx);
	for (;;) {
		uint64_t now = clock_ms(), next = UINT64_MAX;

		for (struct my_watch *w = my_dog.calls; w != NULL; w = w->next) {
			if (w->fired || w->fd < 0)
				continue;
			if (now >= w->deadline) {
				(void)shutdown(w->fd, SHUT_RDWR);
				w->fired = true;
			} else if (w->deadline < next)
				next = w->deadline;
		}
		if (next == UINT64_MAX)
			pthread_cond_wait(&my_dog.cond, &my_dog.mtx);
		else {
			struct timespec ts;
			uint64_t ms = next - now;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_sec += (time_t)(ms / 1000);
			ts.tv_nsec += (long)(ms % 1000) * 1000000L;
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			(void)pthread_cond_timedwait(&my_dog.cond, &my_dog.mtx, &ts);
		}
	}
	return NULL;
}

static void
my_init(void)
{
	pthread_condattr_t ca;
	pthread_t t;

	mysql_library_init(0, NULL, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&my_dog.cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&t, NULL, my_dog_main, NULL) == 0) {
		pthread_detach(t);
		my_dog.running = true;
	}
}

/* Give the watchdog our copy of the call's socket, once it is known. */
static void
my_watch_fd(struct my_watch *w, int fd)
{
	int dup_fd;

	if (w == NULL || !my_dog.running || w->fd >= 0 || fd < 0 ||
	    (dup_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) < 0)
		return;
	pthread_mutex_lock(&my_dog.mtx);
	w->fd = dup_fd;
	pthread_cond_signal(&my_dog.cond);
	pthread_mutex_unlock(&my_dog.mtx);
}

/* A library call on my (NULL: not connected yet) starts. */
static void
my_watch_begin(struct my_watch *w, MYSQL *my)
{
	*w = (struct my_watch){ .fd = -1, .deadline = my_call.deadline };
	my_call.watch = w;
	if (!my_dog.running)
		return;
	pthread_mutex_lock(&my_dog.mtx);
	w->next = my_dog.calls;
	my_dog.calls = w;
	pthread_mutex_unlock(&my_dog.mtx);
	if (my != NULL)
		my_watch_fd(w, (int)mysql_get_socket(my));
}

/* The call returned: out of the watchdog's sight before anything closes. */
static void
my_watch_end(struct my_watch *w)
{
	my_call.watch = NULL;
	if (!my_dog.running)
		return;
	pthread_mutex_lock(&my_dog.mtx);
	for (struct my_watch **wp = &my_dog.calls; *wp != NULL; wp = &(*wp)->next)
		if (*wp == w) {
			*wp = w->next;
			break;
		}
	pthread_mutex_unlock(&my_dog.mtx);
	if (w->fd >= 0)
		close(w->fd);
	if (w->fired)
		my_call.timed_out = true;
}

/* The time left until deadline, in whole seconds (the library's unit). */
static unsigned
my_seconds(uint64_t deadline)
{
	uint64_t now = clock_ms();

	return now >= deadline ? 1 : (unsigned)((deadline - now + 999) / 1000);
}

static void
my_close(struct sql_conn **cp)
{
	struct sql_conn *c = *cp;

	if (c == NULL)
		return;
	if (c->stmt != NULL)
		mysql_stmt_close(c->stmt);
	if (c->my != NULL)
		mysql_close(c->my);
	free(c);
	*cp = NULL;
}

/*
 * libmariadb's wait for its socket (MARIADB_OPT_IO_WAIT): poll until the
 * socket is ready, the library's own timeout (ms, -1 none) or the call's
 * deadline, whichever comes first.  0 at a timeout, as poll() says it;
 * the library then fails the read or write at once.
 */
static int
my_io_wait(my_socket fd, my_bool is_read, int timeout)
{
	struct pollfd pfd = { .fd = fd, .events = is_read ? POLLIN : POLLOUT };
	uint64_t now, left;
	bool theirs;
	int n;

	my_watch_fd(my_call.watch, (int)fd);
	for (;;) {
		if ((now = clock_ms()) >= my_call.deadline) {
			my_call.timed_out = true;
			errno = ETIMEDOUT;
			return 0;
		}
		left = my_call.deadline - now;
		if ((theirs = timeout >= 0 && (uint64_t)timeout < left))
			left = (uint64_t)timeout;
		n = poll(&pfd, 1, (int)left);
		if ((n < 0 && errno == EINTR) || (n == 0 && !theirs))
			continue;
		if (n == 0)
			errno = ETIMEDOUT;
		return n;
	}
}

/*
 * Set the deadline of the calls to come: the library's timeouts (whole
 * seconds, so not less than the time left) and ours, which is exact.
 */
static void
my_timeouts(MYSQL *my, uint64_t deadline)
{
	unsigned t = my_seconds(deadline);

	my_call.deadline = deadline;
	my_call.timed_out = false;
	mysql_optionsv(my, MYSQL_OPT_CONNECT_TIMEOUT, &t);
	mysql_optionsv(my, MYSQL_OPT_READ_TIMEOUT, &t);
	mysql_optionsv(my, MYSQL_OPT_WRITE_TIMEOUT, &t);
}

/* The library's message, or ours when the deadline ended the call. */
static const char *
my_why(const char *library)
{
	return my_call.timed_out ? "timed out (directory.sql.timeout)" : library;
}

/*
 * directory.sql.tls.  libmariadb asks for TLS when the server offers it
 * (ENFORCE, despite the name) and insists on it only when it also checks
 * the certificate; "require" is checked after the connect (my_connect).
 */
static void
my_tls(MYSQL *my, const struct sql_params *p)
{
	my_bool use = p->tls != SQL_TLS_NONE, verify = p->tls == SQL_TLS_VERIFY;

	mysql_optionsv(my, MYSQL_OPT_SSL_ENFORCE, &use);
	mysql_optionsv(my, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
	if (verify && p->ca_file[0] != '\0')
		mysql_optionsv(my, MYSQL_OPT_SSL_CA, p->ca_file);
}

static int
my_connect(const struct sql_params *p, const struct sql_host *host,
    uint64_t deadline, struct sql_conn **conn_r, char *err, size_t errlen)
{
	struct sql_conn *c = xcalloc(1, sizeof(*c));
	unsigned proto = MYSQL_PROTOCOL_TCP;
	struct my_watch w;
	bool ok;

	pthread_once(&my_once, my_init);
	if ((c->my = mysql_init(NULL)) == NULL) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	my_timeouts(c->my, deadline);
	mysql_optionsv(c->my, MYSQL_OPT_PROTOCOL, &proto);
	mysql_optionsv(c->my, MARIADB_OPT_IO_WAIT, my_io_wait);
	my_tls(c->my, p);
	my_watch_begin(&w, NULL);
	ok = mysql_real_connect(c->my, host->name, p->user, p->password,
	    p->database[0] != '\0' ? p->database : NULL, host->port, NULL,
	    0) != NULL;
	my_watch_end(&w);
	if (!ok) {
		snprintf(err, errlen, "connect: %s", my_why(mysql_error(c->my)));
		my_close(&c);
		return -1;
	}
	if (p->tls == SQL_TLS_REQUIRE && mysql_get_ssl_cipher(c->my) == NULL) {
		snprintf(err, errlen, "connect: the server offers no TLS "
		    "(directory.sql.tls = \"require\")");
		my_close(&c);
		return -1;
	}
	/* The server checks the query's syntax, tables and rights here. */
	my_watch_begin(&w, c->my);
	ok = (c->stmt = mysql_stmt_init(c->my)) != NULL &&
	    mysql_stmt_prepare(c->stmt, p->query, strlen(p->query)) == 0;
	my_watch_end(&w);
	if (!ok) {
		snprintf(err, errlen, "prepare: %s", my_why(c->stmt != NULL ?
		    mysql_stmt_error(c->stmt) : mysql_error(c->my)));
		my_close(&c);
		return -1;
	}
	if (mysql_stmt_param_count(c->stmt) != p->nparams) {
		snprintf(err, errlen, "prepare: the server counts %lu "
		    "parameters, not %u", mysql_stmt_param_count(c->stmt),
		    p->nparams);
		my_close(&c);
		return -1;
	}
	c->nparams = p->nparams;
	c->ncols = mysql_stmt_field_count(c->stmt);
	*conn_r = c;
	return 0;
}

/* Read the stored answer: its row count and the first row's values. */
static int
my_fetch(struct sql_conn *c, struct sql_answer *a, char *err, size_t errlen)
{
	MYSQL_BIND res[SQL_COLUMNS_MAX];
	unsigned long len[SQL_COLUMNS_MAX];
	my_bool null[SQL_COLUMNS_MAX], trunc[SQL_COLUMNS_MAX];
	int rc;

	a->nrows = (size_t)mysql_stmt_num_rows(c->stmt);
	a->ncols = c->ncols;
	if (a->nrows == 0 || a->ncols < 1 || a->ncols > SQL_COLUMNS_MAX)
		return 0;
	memset(res, 0, sizeof(res));
	for (size_t i = 0; i < a->ncols; i++) {
		res[i].buffer_type = MYSQL_TYPE_STRING;
		res[i].buffer = a->buf[i];
		res[i].buffer_length = SQL_VALUE_MAX;
		res[i].length = &len[i];
		res[i].is_null = &null[i];
		res[i].error = &trunc[i];
	}
	if (mysql_stmt_bind_result(c->stmt, res) != 0) {
		snprintf(err, errlen, "query: %s", mysql_stmt_error(c->stmt));
		return -1;
	}
	if ((rc = mysql_stmt_fetch(c->stmt)) == 1 || rc == MYSQL_NO_DATA) {
		snprintf(err, errlen, "query: %s", mysql_stmt_error(c->stmt));
		return -1;
	}
	for (size_t i = 0; i < a->ncols; i++) {
		if (null[i])
			sql_answer_set(a, i, NULL, 0);
		else if (rc == MYSQL_DATA_TRUNCATED && trunc[i])
			a->too_long = true;
		else {
			/* Copy through a bounce: the bound buffer is the target. */
			char v[SQL_VALUE_MAX];
			size_t n = len[i] < SQL_VALUE_MAX ? len[i] : SQL_VALUE_MAX - 1;

			memcpy(v, a->buf[i], n);
			sql_answer_set(a, i, v, n);
		}
	}
	return 0;
}

static int
my_lookup(struct sql_conn *c, const char *login, uint64_t deadline,
    struct sql_answer *a, char *err, size_t errlen)
{
	MYSQL_BIND params[8];
	unsigned long len = strlen(login);
	struct my_watch w;
	bool ok;
	int rc;

	if (c->nparams > nitems(params)) {
		snprintf(err, errlen, "query: more than %zu uses of $1",
		    nitems(params));
		return -1;
	}
	my_timeouts(c->my, deadline);
	memset(params, 0, sizeof(params));
	for (unsigned i = 0; i < c->nparams; i++) {
		params[i].buffer_type = MYSQL_TYPE_STRING;
		params[i].buffer = (void *)(uintptr_t)login;
		params[i].buffer_length = len;
		params[i].length = &len;
	}
	my_watch_begin(&w, c->my);
	ok = (c->nparams == 0 || mysql_stmt_bind_param(c->stmt, params) == 0) &&
	    mysql_stmt_execute(c->stmt) == 0 &&
	    mysql_stmt_store_result(c->stmt) == 0;
	my_watch_end(&w);
	if (!ok) {
		snprintf(err, errlen, "query: %s",
		    my_why(mysql_stmt_error(c->stmt)));
		return -1;
	}
	rc = my_fetch(c, a, err, errlen);
	mysql_stmt_free_result(c->stmt);
	return rc;
}

static size_t
my_columns(struct sql_conn *c)
{
	return c->ncols;
}

static const struct sql_driver_ops my_ops = {
	.name = "mysql",
	.connect = my_connect,
	.lookup = my_lookup,
	.columns = my_columns,
	.close = my_close,
};

const struct sql_driver_ops *
sql_driver_my(void)
{
	return &my_ops;
}

#else	/* !HAVE_LIBMARIADB */

const struct sql_driver_ops *
sql_driver_my(void)
{
	return NULL;
}

#endif

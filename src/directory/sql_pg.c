/*
 * The sql back-end's PostgreSQL driver: libpq's non-blocking calls with
 * our own poll() against the deadline, so a server that stops answering
 * (or never started to) costs at most directory.sql.timeout.
 */
#include "autoconf.h"

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sql.h"
#include "util.h"

#ifdef HAVE_LIBPQ
#include <poll.h>

#include <libpq-fe.h>

#define PG_STATEMENT	"postern_lookup"

struct sql_conn {
	PGconn	*pg;
	size_t	 ncols;		/* of the prepared statement */
};

/* The first line of a libpq message, which ends in a newline. */
static void
pg_error(const char *msg, const char *what, char *err, size_t errlen)
{
	size_t n = strcspn(msg, "\r\n");

	if (n == 0)
		snprintf(err, errlen, "%s", what);
	else
		snprintf(err, errlen, "%s: %.*s", what, (int)n, msg);
}

/* 1 when fd is ready, 0 at the deadline, -1 on error. */
static int
pg_wait(int fd, short events, uint64_t deadline)
{
	struct pollfd pfd = { .fd = fd, .events = events };
	uint64_t now;
	int n;

	if (fd < 0)
		return -1;
	for (;;) {
		if ((now = clock_ms()) >= deadline)
			return 0;
		n = poll(&pfd, 1, (int)(deadline - now > 60000 ? 60000 :
		    deadline - now));
		if (n > 0)
			return 1;
		if (n < 0)
			return -1;
	}
}

/* Wait for the answer to what was sent: its first result, the rest dropped. */
static int
pg_result(PGconn *pg, uint64_t deadline, PGresult **res_r, char *err,
    size_t errlen)
{
	PGresult *res = NULL, *r;

	for (;;) {
		int f = PQflush(pg), w;

		if (f < 0)
			break;
		if (f == 0 && !PQisBusy(pg)) {
			if ((r = PQgetResult(pg)) == NULL) {
				*res_r = res;
				return 0;
			}
			if (res == NULL)
				res = r;
			else
				PQclear(r);
			continue;
		}
		w = pg_wait(PQsocket(pg), f == 1 ? POLLIN | POLLOUT : POLLIN,
		    deadline);
		if (w == 0) {
			PQclear(res);
			snprintf(err, errlen, "no answer in time (directory.sql.timeout)");
			return -1;
		}
		if (w < 0 || PQconsumeInput(pg) == 0)
			break;
	}
	PQclear(res);
	pg_error(PQerrorMessage(pg), "connection lost", err, errlen);
	return -1;
}

/* Send done: wait for one result of status `want`. */
static int
pg_expect(PGconn *pg, uint64_t deadline, ExecStatusType want,
    const char *what, PGresult **res_r, char *err, size_t errlen)
{
	PGresult *res;

	if (pg_result(pg, deadline, &res, err, errlen) < 0)
		return -1;
	if (res == NULL || PQresultStatus(res) != want) {
		pg_error(res != NULL ? PQresultErrorMessage(res) :
		    PQerrorMessage(pg), what, err, errlen);
		PQclear(res);
		return -1;
	}
	if (res_r != NULL)
		*res_r = res;
	else
		PQclear(res);
	return 0;
}

static void
pg_close(struct sql_conn **cp)
{
	struct sql_conn *c = *cp;

	if (c == NULL)
		return;
	PQfinish(c->pg);
	free(c);
	*cp = NULL;
}

static int
pg_connect(const struct sql_params *p, const struct sql_host *host,
    uint64_t deadline, struct sql_conn **conn_r, char *err, size_t errlen)
{
	static const char *const sslmodes[] = {
		[SQL_TLS_NONE] = "disable", [SQL_TLS_PREFER] = "prefer",
		[SQL_TLS_REQUIRE] = "require", [SQL_TLS_VERIFY] = "verify-full",
	};
	const char *keys[] = { "host", "port", "dbname", "user", "password",
	    "application_name", "sslmode", "sslrootcert", NULL };
	char port[8];
	const char *vals[] = { host->name, port, p->database, p->user,
	    p->password, "postern", sslmodes[p->tls], p->ca_file, NULL };
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	struct sql_conn *c = xcalloc(1, sizeof(*c));
	PGresult *res;

	_Static_assert(nitems(sslmodes) == SQL_TLS_COUNT, "sslmodes");
	snprintf(port, sizeof(port), "%u", host->port);
	if ((c->pg = PQconnectStartParams(keys, vals, 0)) == NULL) {
		free(c);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	while (PQstatus(c->pg) != CONNECTION_BAD && st != PGRES_POLLING_OK &&
	    st != PGRES_POLLING_FAILED) {
		int w = pg_wait(PQsocket(c->pg), st == PGRES_POLLING_READING ?
		    POLLIN : POLLOUT, deadline);

		if (w == 0) {
			snprintf(err, errlen, "connect: no answer in time "
			    "(directory.sql.timeout)");
			pg_close(&c);
			return -1;
		}
		if (w < 0)
			break;
		st = PQconnectPoll(c->pg);
	}
	if (PQstatus(c->pg) != CONNECTION_OK) {
		pg_error(PQerrorMessage(c->pg), "connect", err, errlen);
		pg_close(&c);
		return -1;
	}
	/* The server checks the query's syntax, tables and rights here. */
	err[0] = '\0';
	if (PQsetnonblocking(c->pg, 1) != 0 ||
	    !PQsendPrepare(c->pg, PG_STATEMENT, p->query, 1, NULL) ||
	    pg_expect(c->pg, deadline, PGRES_COMMAND_OK, "prepare", NULL,
	    err, errlen) < 0 ||
	    !PQsendDescribePrepared(c->pg, PG_STATEMENT) ||
	    pg_expect(c->pg, deadline, PGRES_COMMAND_OK, "describe", &res,
	    err, errlen) < 0) {
		if (err[0] == '\0')
			pg_error(PQerrorMessage(c->pg), "prepare", err, errlen);
		pg_close(&c);
		return -1;
	}
	c->ncols = (size_t)PQnfields(res);
	PQclear(res);
	*conn_r = c;
	return 0;
}

static int
pg_lookup(struct sql_conn *c, const char *login, uint64_t deadline,
    struct sql_answer *a, char *err, size_t errlen)
{
	const char *params[1] = { login };
	PGresult *res;

	if (!PQsendQueryPrepared(c->pg, PG_STATEMENT, 1, params, NULL, NULL, 0)) {
		pg_error(PQerrorMessage(c->pg), "query", err, errlen);
		return -1;
	}
	if (pg_expect(c->pg, deadline, PGRES_TUPLES_OK, "query", &res, err,
	    errlen) < 0)
		return -1;
	a->nrows = (size_t)PQntuples(res);
	a->ncols = (size_t)PQnfields(res);
	for (int i = 0; a->nrows > 0 && i < PQnfields(res) &&
	    i < SQL_COLUMNS_MAX; i++)
		sql_answer_set(a, (size_t)i, PQgetisnull(res, 0, i) ? NULL :
		    PQgetvalue(res, 0, i), (size_t)PQgetlength(res, 0, i));
	PQclear(res);
	return 0;
}

static size_t
pg_columns(struct sql_conn *c)
{
	return c->ncols;
}

static const struct sql_driver_ops pg_ops = {
	.name = "postgresql",
	.connect = pg_connect,
	.lookup = pg_lookup,
	.columns = pg_columns,
	.close = pg_close,
};

const struct sql_driver_ops *
sql_driver_pg(void)
{
	return &pg_ops;
}

#else	/* !HAVE_LIBPQ */

const struct sql_driver_ops *
sql_driver_pg(void)
{
	return NULL;
}

#endif

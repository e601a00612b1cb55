/*
 * The sql back-end (directory.type = "sql"): one parameterised query,
 * directory.sql.query, asked of PostgreSQL (libpq) or MySQL/MariaDB
 * (libmariadb) with the login bound as its parameter, never spliced into
 * the SQL.  Its answer's columns are host, username and port, in that
 * order (the last two optional).  A pool of connections, each on its own
 * thread, takes lookups from one bounded queue; every connect and query
 * has a deadline, and a connection goes through directory.sql.hosts in
 * order until one answers; on a later host, it tries the earlier ones
 * again every directory.sql.failback seconds.
 *
 * This header is the driver-independent part (parsing, the answer's
 * checks) and the small interface each driver implements.
 */
#ifndef POSTERN_DIRECTORY_SQL_H
#define POSTERN_DIRECTORY_SQL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "directory.h"
#include "host_map.h"
#include "route.h"

#define SQL_HOSTS_MAX	8		/* directory.sql.hosts entries */
#define SQL_HOST_MAX	256		/* one host name, NUL included */
#define SQL_QUERY_MAX	4096		/* directory.sql.query, NUL included */
#define SQL_COLUMNS_MAX	3		/* host, username, port */
#define SQL_VALUE_MAX	512		/* one answered value, NUL included */

struct sql_host {
	char		name[SQL_HOST_MAX];
	uint16_t	port;
};

/* The default port of a driver's server. */
uint16_t	sql_default_port(enum sql_driver driver);

/*
 * Parse directory.sql.hosts: "host[:port] [v6]:port ...", separated by
 * spaces; a host without a port gets the driver's.  0 with *n_r >= 1,
 * or -1 with a reason.
 */
int	sql_hosts_parse(const char *spec, enum sql_driver driver,
	    struct sql_host *hosts, size_t max, size_t *n_r, const char **error_r);

/*
 * Check directory.sql.query and write it as the driver takes it: the
 * login is $1 (PostgreSQL's placeholder); for MySQL each $1 becomes ?.
 * Text inside quotes and comments is left alone.  Any other $N, or a ?
 * outside quotes for MySQL, is an error, as is a query without $1.
 * *nparams_r is how many placeholders the result has.  0, or -1 with a
 * reason.
 */
int	sql_query_translate(const char *query, enum sql_driver driver,
	    char *out, size_t outlen, unsigned *nparams_r, const char **error_r);

/* One answered value; v == NULL for SQL NULL. */
struct sql_value {
	const char	*v;
	size_t		 len;
};

/* What a driver read of an answer: its shape and its first row. */
struct sql_answer {
	size_t		 nrows;
	size_t		 ncols;
	bool		 too_long;	/* a value past SQL_VALUE_MAX */
	struct sql_value col[SQL_COLUMNS_MAX];
	char		 buf[SQL_COLUMNS_MAX][SQL_VALUE_MAX];
};

/* Copy value i of the first row into a (a driver's helper). */
void	sql_answer_set(struct sql_answer *a, size_t i, const char *v, size_t len);

/*
 * An answer to a route: no row is DIR_NOT_FOUND; more than one row, a
 * column count outside 1..3, a NULL or empty host or a value that
 * cannot be used is DIR_TEMPFAIL.  A NULL username keeps the login; a
 * NULL or 0 port keeps the default.  `detail` says what was answered.
 */
enum dir_status	sql_answer_route(const struct sql_answer *a,
		    const struct host_map *map, struct route **route_r,
		    char *detail, size_t dlen);

/* What a connection needs, shared by the pool. */
struct sql_params {
	enum sql_driver	 driver;
	const char	*database;
	const char	*user;
	const char	*password;
	const char	*query;		/* as translated for the driver */
	unsigned	 nparams;
	enum sql_tls	 tls;
	const char	*ca_file;	/* SQL_TLS_VERIFY: the CA ("" none) */
};

struct sql_conn;

/* A driver: every call returns by `deadline` (clock_ms()). */
struct sql_driver_ops {
	const char	*name;
	/* Connect to host and prepare the query.  0, or -1 with err. */
	int	(*connect)(const struct sql_params *p, const struct sql_host *host,
		    uint64_t deadline, struct sql_conn **conn_r, char *err,
		    size_t errlen);
	/*
	 * Run the prepared query for login.  0 with *a filled, or -1 with
	 * err: the connection is then unusable and is closed.
	 */
	int	(*lookup)(struct sql_conn *c, const char *login, uint64_t deadline,
		    struct sql_answer *a, char *err, size_t errlen);
	/* The prepared query's column count, for --check-config. */
	size_t	(*columns)(struct sql_conn *c);
	void	(*close)(struct sql_conn **cp);
};

/* NULL if postern was built without the driver. */
const struct sql_driver_ops *sql_driver_pg(void);
const struct sql_driver_ops *sql_driver_my(void);

#endif

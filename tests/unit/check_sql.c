/*
 * Unit tests for the sql back-end's driver-independent part
 * (src/directory/sql.c): hosts, the query's placeholder, the answer's
 * checks and its route.
 */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "directory/sql.h"

START_TEST(test_hosts)
{
	struct sql_host h[SQL_HOSTS_MAX];
	const char *why;
	size_t n;

	ck_assert_int_eq(sql_hosts_parse("db1:5433 db2  [::1]:5434", SQL_DRIVER_POSTGRESQL,
	    h, SQL_HOSTS_MAX, &n, &why), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(h[0].name, "db1");
	ck_assert_uint_eq(h[0].port, 5433);
	ck_assert_str_eq(h[1].name, "db2");
	ck_assert_uint_eq(h[1].port, 5432);
	ck_assert_str_eq(h[2].name, "::1");
	ck_assert_uint_eq(h[2].port, 5434);
	ck_assert_int_eq(sql_hosts_parse("db", SQL_DRIVER_MYSQL, h, SQL_HOSTS_MAX,
	    &n, &why), 0);
	ck_assert_uint_eq(h[0].port, 3306);

	ck_assert_int_eq(sql_hosts_parse(" ", SQL_DRIVER_MYSQL, h, SQL_HOSTS_MAX,
	    &n, &why), -1);
	ck_assert_str_eq(why, "names no host");
	ck_assert_int_eq(sql_hosts_parse("db:99999", SQL_DRIVER_MYSQL, h,
	    SQL_HOSTS_MAX, &n, &why), -1);
	ck_assert_int_eq(sql_hosts_parse("::1", SQL_DRIVER_MYSQL, h,
	    SQL_HOSTS_MAX, &n, &why), -1);
	/* The bound is where the array is written. */
	ck_assert_int_eq(sql_hosts_parse("a b c", SQL_DRIVER_MYSQL, h, 2, &n,
	    &why), -1);
	ck_assert_str_eq(why, "too many hosts");
	ck_assert_int_eq(sql_hosts_parse("a b", SQL_DRIVER_MYSQL, h, 2, &n,
	    &why), 0);
}
END_TEST

static const char *
translate(const char *q, enum sql_driver d, unsigned *n)
{
	static char out[SQL_QUERY_MAX];
	const char *why;

	if (sql_query_translate(q, d, out, sizeof(out), n, &why) < 0)
		return why;
	return out;
}

START_TEST(test_query_translate)
{
	unsigned n;

	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1",
	    SQL_DRIVER_POSTGRESQL, &n), "SELECT h FROM t WHERE a = $1");
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1",
	    SQL_DRIVER_MYSQL, &n), "SELECT h FROM t WHERE a = ?");
	ck_assert_uint_eq(n, 1);
	/* Each use is one ? for MySQL, bound to the same login. */
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1 OR b = $1",
	    SQL_DRIVER_MYSQL, &n), "SELECT h FROM t WHERE a = ? OR b = ?");
	ck_assert_uint_eq(n, 2);
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1 OR b = $1",
	    SQL_DRIVER_POSTGRESQL, &n), "SELECT h FROM t WHERE a = $1 OR b = $1");
	ck_assert_uint_eq(n, 1);
	/* Quotes and comments are left alone. */
	ck_assert_str_eq(translate("SELECT '$1?', \"a$1\", `x?` FROM t -- $2 ?\n"
	    "WHERE a = $1 /* ? $3 */ # ?", SQL_DRIVER_MYSQL, &n),
	    "SELECT '$1?', \"a$1\", `x?` FROM t -- $2 ?\n"
	    "WHERE a = ? /* ? $3 */ # ?");
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(translate("SELECT 'it''s', 'a\\'$1' FROM t WHERE a = $1",
	    SQL_DRIVER_MYSQL, &n), "SELECT 'it''s', 'a\\'$1' FROM t WHERE a = ?");
	ck_assert_uint_eq(n, 1);
	/* $ not followed by a digit is not a parameter. */
	ck_assert_str_eq(translate("SELECT $x$ FROM t WHERE a = $1",
	    SQL_DRIVER_POSTGRESQL, &n), "SELECT $x$ FROM t WHERE a = $1");

	ck_assert_str_eq(translate("SELECT h FROM t", SQL_DRIVER_POSTGRESQL, &n),
	    "does not use $1 (the login)");
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = '$1'",
	    SQL_DRIVER_POSTGRESQL, &n), "does not use $1 (the login)");
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $2",
	    SQL_DRIVER_POSTGRESQL, &n), "only $1 (the login) is a parameter");
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $10",
	    SQL_DRIVER_POSTGRESQL, &n), "only $1 (the login) is a parameter");
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1 AND b = ?",
	    SQL_DRIVER_MYSQL, &n), "a ? outside quotes (write the login as $1)");
	ck_assert_str_eq(translate("SELECT h FROM t WHERE a = $1 AND b = '",
	    SQL_DRIVER_MYSQL, &n), "an unterminated quote");
}
END_TEST

START_TEST(test_query_bound)
{
	char out[8];
	const char *why;
	unsigned n;

	ck_assert_int_eq(sql_query_translate("a = $1", SQL_DRIVER_MYSQL, out,
	    sizeof(out), &n, &why), 0);
	ck_assert_str_eq(out, "a = ?");
	ck_assert_int_eq(sql_query_translate("a = $1", SQL_DRIVER_POSTGRESQL, out,
	    6, &n, &why), -1);
	ck_assert_str_eq(why, "too long");
	ck_assert_int_eq(sql_query_translate("a = $1", SQL_DRIVER_POSTGRESQL, out,
	    7, &n, &why), 0);
	ck_assert_str_eq(out, "a = $1");
}
END_TEST

static struct sql_answer *
answer(size_t nrows, size_t ncols, const char *host, const char *user,
    const char *port)
{
	static struct sql_answer a;
	const char *v[3] = { host, user, port };

	memset(&a, 0, sizeof(a));
	a.nrows = nrows;
	a.ncols = ncols;
	for (size_t i = 0; i < ncols && i < 3; i++)
		sql_answer_set(&a, i, v[i], v[i] != NULL ? strlen(v[i]) : 0);
	return &a;
}

START_TEST(test_answer_route)
{
	struct route *r;
	char detail[512];

	ck_assert_int_eq(sql_answer_route(answer(1, 3, "10.0.0.5", NULL, "143"),
	    NULL, &r, detail, sizeof(detail)), DIR_OK);
	ck_assert_uint_eq(r->nhosts, 1);
	ck_assert_str_eq(r->hosts[0].host, "10.0.0.5");
	ck_assert_uint_eq(r->hosts[0].port, 143);
	ck_assert_ptr_null(r->backend_user);
	route_unref(&r);
	ck_assert_int_eq(sql_answer_route(answer(1, 2, "store1:1143", "bob", NULL),
	    NULL, &r, detail, sizeof(detail)), DIR_OK);
	ck_assert_str_eq(r->hosts[0].host, "store1");
	ck_assert_uint_eq(r->hosts[0].port, 1143);
	ck_assert_str_eq(r->backend_user, "bob");
	route_unref(&r);
	/* A port of 0 (or NULL) keeps the default. */
	ck_assert_int_eq(sql_answer_route(answer(1, 3, "store1", NULL, "0"),
	    NULL, &r, detail, sizeof(detail)), DIR_OK);
	ck_assert_uint_eq(r->hosts[0].port, 0);
	route_unref(&r);
	ck_assert_int_eq(sql_answer_route(answer(1, 1, "[::1]:144", NULL, NULL),
	    NULL, &r, detail, sizeof(detail)), DIR_OK);
	ck_assert_str_eq(r->hosts[0].host, "::1");
	route_unref(&r);
}
END_TEST

START_TEST(test_answer_bad)
{
	struct route *r;
	char detail[512];

	ck_assert_int_eq(sql_answer_route(answer(0, 3, NULL, NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_NOT_FOUND);
	ck_assert_str_eq(detail, "sql: no row");
	ck_assert_int_eq(sql_answer_route(answer(2, 1, "a", NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_str_eq(detail, "sql: ambiguous: 2 rows");
	ck_assert_int_eq(sql_answer_route(answer(1, 4, "a", NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_str_eq(detail, "sql: malformed answer: 4 columns (host, "
	    "username, port)");
	ck_assert_int_eq(sql_answer_route(answer(1, 0, NULL, NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_int_eq(sql_answer_route(answer(1, 3, NULL, "u", "143"), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_str_eq(detail, "sql: malformed answer: NULL host");
	ck_assert_int_eq(sql_answer_route(answer(1, 1, "", NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_str_eq(detail, "sql: malformed answer: empty host");
	ck_assert_int_eq(sql_answer_route(answer(1, 3, "a", NULL, "70000"), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_ptr_nonnull(strstr(detail, "(bad port value)"));
	ck_assert_int_eq(sql_answer_route(answer(1, 1, "a\r\nb", NULL, NULL), NULL,
	    &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_ptr_nonnull(strstr(detail, "control character"));
	ck_assert_int_eq(sql_answer_route(answer(1, 2, "a", "bad user\n", NULL),
	    NULL, &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_answer_too_long)
{
	struct sql_answer *a = answer(1, 1, "a", NULL, NULL);
	char big[SQL_VALUE_MAX + 10], detail[512];
	struct route *r;

	memset(big, 'h', sizeof(big));
	sql_answer_set(a, 0, big, SQL_VALUE_MAX - 1);
	ck_assert(!a->too_long);
	sql_answer_set(a, 0, big, SQL_VALUE_MAX);
	ck_assert(a->too_long);
	ck_assert_uint_eq(a->col[0].len, SQL_VALUE_MAX - 1);
	ck_assert_int_eq(sql_answer_route(a, NULL, &r, detail, sizeof(detail)),
	    DIR_TEMPFAIL);
	ck_assert_str_eq(detail, "sql: malformed answer: a value longer than "
	    "511 bytes");
	/* Past the columns it reads, a value is ignored. */
	sql_answer_set(a, SQL_COLUMNS_MAX, "x", 1);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("sql");
	TCase *tc = tcase_create("sql");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_hosts);
	tcase_add_test(tc, test_query_translate);
	tcase_add_test(tc, test_query_bound);
	tcase_add_test(tc, test_answer_route);
	tcase_add_test(tc, test_answer_bad);
	tcase_add_test(tc, test_answer_too_long);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Unit tests for directory values to hosts (src/host_map.c) and its use in
 * entries to routes (src/ldap_entry.c). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "host_map.h"
#include "ldap_entry.h"

static const char *
add(struct host_map *m, const char *match, bool re, const char *host)
{
	const char *error = NULL;

	return host_map_add(m, match, re, host, &error) == 0 ? NULL : error;
}

static const char *
apply(const struct host_map *m, const char *value)
{
	static char out[HOST_MAP_HOST_MAX];
	int rc = host_map_apply(m, value, out, sizeof(out));

	return rc > 0 ? out : rc == 0 ? "(none)" : "(overflow)";
}

START_TEST(test_exact_and_regex)
{
	struct host_map m = { 0 };

	ck_assert_ptr_null(add(&m, "/o=Acme/ou=First Administrative Group/"
	    "cn=Configuration/cn=Servers/cn=EXCH01", false, "exch01.example.net"));
	ck_assert_ptr_null(add(&m, "^CN=([^/]+)/O=Acme$", true, "\\1.domino.example.net"));
	ck_assert_ptr_null(add(&m, "^cn=Servers/cn=(.*)$", true, "legacy-\\1:1143"));
	/* Exact values ignore case, as directory values do. */
	ck_assert_str_eq(apply(&m, "/O=ACME/ou=First Administrative Group/"
	    "cn=Configuration/cn=Servers/cn=exch01"), "exch01.example.net");
	ck_assert_str_eq(apply(&m, "CN=Mail1/O=Acme"), "Mail1.domino.example.net");
	ck_assert_str_eq(apply(&m, "cn=mail2/o=acme"), "mail2.domino.example.net");
	ck_assert_str_eq(apply(&m, "cn=Servers/cn=X"), "legacy-X:1143");
	/* Unmatched values pass through (mailHost of migrated users). */
	ck_assert_str_eq(apply(&m, "store-a.example.net"), "(none)");
	host_map_free(&m);
	ck_assert_uint_eq(m.n, 0);
}
END_TEST

START_TEST(test_first_rule_wins_and_escapes)
{
	struct host_map m = { 0 };

	ck_assert_ptr_null(add(&m, "^a(b)?c$", true, "x\\1y"));
	ck_assert_ptr_null(add(&m, "^a", true, "second"));
	ck_assert_ptr_null(add(&m, "^q$", true, "back\\\\slash"));
	ck_assert_str_eq(apply(&m, "abc"), "xby");
	/* A group that took no part expands to nothing. */
	ck_assert_str_eq(apply(&m, "ac"), "xy");
	ck_assert_str_eq(apply(&m, "azz"), "second");
	ck_assert_str_eq(apply(&m, "q"), "back\\slash");
	host_map_free(&m);
}
END_TEST

START_TEST(test_bad_rules)
{
	struct host_map m = { 0 };

	ck_assert_ptr_nonnull(add(&m, "(", true, "h"));
	ck_assert_ptr_nonnull(add(&m, "^a(b)$", true, "\\2"));
	ck_assert_ptr_nonnull(add(&m, "^a$", true, "\\x"));
	ck_assert_ptr_nonnull(add(&m, "^a$", true, "trailing\\"));
	ck_assert_ptr_nonnull(add(&m, "v", false, "\\1"));
	ck_assert_ptr_nonnull(add(&m, "", false, "h"));
	ck_assert_ptr_nonnull(add(&m, "v", false, ""));
	ck_assert_uint_eq(m.n, 0);
	host_map_free(&m);
}
END_TEST

START_TEST(test_bounds)
{
	struct host_map m = { 0 };
	char big[HOST_MAP_HOST_MAX + 8], out[16];

	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_ptr_nonnull(add(&m, "v", false, big));
	/* A result longer than the caller's buffer is an error, never cut. */
	ck_assert_ptr_null(add(&m, "^(.*)$", true, "\\1\\1"));
	ck_assert_int_eq(host_map_apply(&m, "0123456789", out, sizeof(out)), -1);
	ck_assert_int_eq(host_map_apply(&m, "0123", out, sizeof(out)), 1);
	ck_assert_str_eq(out, "01230123");
	host_map_free(&m);
	for (int i = 0; i < HOST_MAP_RULES_MAX; i++)
		ck_assert_ptr_null(add(&m, "v", false, "h"));
	ck_assert_ptr_nonnull(add(&m, "v", false, "h"));
	host_map_free(&m);
}
END_TEST

START_TEST(test_entry_routes_through_the_map)
{
	struct host_map m = { 0 };
	struct berval bv[2] = { { 15, (char *)"CN=Mail1/O=Acme" },
	    { 15, (char *)"store-b.example" } };
	struct berval *hosts[] = { &bv[0], &bv[1], NULL };
	struct ldap_entry_values v = { .dn = "cn=x", .hosts = hosts,
	    .user_attr = "username", .host_attr = "mailServer",
	    .port_attr = "port", .map = &m };
	struct route *r = NULL;
	char detail[512];

	ck_assert_ptr_null(add(&m, "^CN=([^/]+)/O=Acme$", true, "\\1.domino:1143"));
	ck_assert_int_eq(ldap_entry_route(&v, &r, detail, sizeof(detail)), DIR_OK);
	ck_assert_uint_eq(r->nhosts, 2);
	ck_assert_str_eq(r->hosts[0].host, "Mail1.domino");
	ck_assert_uint_eq(r->hosts[0].port, 1143);
	ck_assert_str_eq(r->hosts[1].host, "store-b.example");
	ck_assert_ptr_nonnull(strstr(detail, "-> Mail1.domino:1143"));
	route_unref(&r);
	/* A mapped value is checked like any other host value. */
	host_map_free(&m);
	ck_assert_ptr_null(add(&m, "^CN=([^/]+)/O=Acme$", true, "bad host \\1"));
	ck_assert_int_eq(ldap_entry_route(&v, &r, detail, sizeof(detail)), DIR_TEMPFAIL);
	host_map_free(&m);
}
END_TEST

static Suite *
host_map_suite(void)
{
	Suite *s = suite_create("host_map");
	TCase *tc = tcase_create("host_map");

	tcase_add_test(tc, test_exact_and_regex);
	tcase_add_test(tc, test_first_rule_wins_and_escapes);
	tcase_add_test(tc, test_bad_rules);
	tcase_add_test(tc, test_bounds);
	tcase_add_test(tc, test_entry_routes_through_the_map);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(host_map_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

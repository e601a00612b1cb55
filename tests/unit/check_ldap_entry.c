/* Unit tests for directory entries to routes (src/ldap_entry.c). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ldap_entry.h"

/* A NULL-terminated berval list from strings (NULL-terminated too). */
struct vals {
	struct berval	 bv[4];
	struct berval	*p[5];
};

static struct berval **
vals(struct vals *v, const char *a, const char *b)
{
	const char *in[] = { a, b };
	size_t n = 0;

	for (size_t i = 0; i < 2 && in[i] != NULL; i++, n++) {
		v->bv[n].bv_val = (char *)in[i];
		v->bv[n].bv_len = strlen(in[i]);
		v->p[n] = &v->bv[n];
	}
	v->p[n] = NULL;
	return v->p;
}

static enum dir_status
route_of(struct berval **user, struct berval **hosts, struct berval **port,
    struct route **r, char *detail)
{
	struct ldap_entry_values v = { .dn = "uid=a,dc=x", .user = user,
	    .hosts = hosts, .port = port, .user_attr = "username",
	    .host_attr = "mailHost", .port_attr = "port" };

	*r = NULL;
	return ldap_entry_route(&v, r, detail, 512);
}

START_TEST(test_forms)
{
	struct vals u, h, p;
	struct route *r;
	char detail[512];

	ck_assert_int_eq(route_of(NULL, vals(&h, "store-a", "store-b:1143"), NULL,
	    &r, detail), DIR_OK);
	ck_assert_uint_eq(r->nhosts, 2);
	ck_assert_str_eq(r->hosts[1].host, "store-b");
	ck_assert_uint_eq(r->hosts[1].port, 1143);
	ck_assert_str_eq(r->dn, "uid=a,dc=x");
	ck_assert_ptr_nonnull(strstr(detail, "mailHost=store-a,store-b:1143"));
	route_unref(&r);
	/* Explicit username and port attributes win. */
	ck_assert_int_eq(route_of(vals(&u, "c.jones", NULL),
	    vals(&h, "other@store:2143", NULL), vals(&p, "993", NULL), &r, detail),
	    DIR_OK);
	ck_assert_str_eq(r->backend_user, "c.jones");
	ck_assert_uint_eq(r->hosts[0].port, 993);
	route_unref(&r);
	/* No host attribute: the user is unknown. */
	ck_assert_int_eq(route_of(vals(&u, "x", NULL), NULL, NULL, &r, detail),
	    DIR_NOT_FOUND);
	ck_assert_ptr_null(r);
	ck_assert_ptr_nonnull(strstr(detail, "(entry has no mailHost)"));
}
END_TEST

START_TEST(test_bad_values)
{
	static char nul_host[] = "store\0evil";
	struct berval nb = { sizeof(nul_host) - 1, nul_host }, *nbl[] = { &nb, NULL };
	struct vals u, h, p;
	struct route *r;
	char detail[512];

	/* A line break in the backend user would inject commands (POP3). */
	ck_assert_int_eq(route_of(vals(&u, "bob\r\nDELE 1", NULL),
	    vals(&h, "store", NULL), NULL, &r, detail), DIR_TEMPFAIL);
	ck_assert_ptr_null(r);
	ck_assert_ptr_nonnull(strstr(detail, "(bad username value)"));
	ck_assert_int_eq(route_of(vals(&u, "a b", NULL), vals(&h, "store", NULL),
	    NULL, &r, detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "x\r\n@store", NULL), NULL, &r,
	    detail), DIR_TEMPFAIL);
	/* A NUL must not quietly cut a value short. */
	ck_assert_int_eq(route_of(NULL, nbl, NULL, &r, detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "store", NULL), vals(&p, "+143", NULL),
	    &r, detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "store", NULL), vals(&p, "0", NULL),
	    &r, detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "store", NULL), vals(&p, "65536", NULL),
	    &r, detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "store: 143", NULL), NULL, &r,
	    detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "store:+143", NULL), NULL, &r,
	    detail), DIR_TEMPFAIL);
	ck_assert_int_eq(route_of(NULL, vals(&h, "a/b", NULL), NULL, &r, detail),
	    DIR_TEMPFAIL);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_detail_bounded)
{
	char big[2000], detail[64];
	struct vals h;
	struct route *r = NULL;
	struct ldap_entry_values v = { .dn = "uid=a", .user_attr = "u",
	    .host_attr = "h", .port_attr = "p" };

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	v.hosts = vals(&h, big, NULL);
	(void)ldap_entry_route(&v, &r, detail, sizeof(detail));
	ck_assert_uint_lt(strlen(detail), sizeof(detail));
	route_unref(&r);
}
END_TEST

static Suite *
entry_suite(void)
{
	Suite *s = suite_create("ldap_entry");
	TCase *tc = tcase_create("entry");

	tcase_add_test(tc, test_forms);
	tcase_add_test(tc, test_bad_values);
	tcase_add_test(tc, test_detail_bounded);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(entry_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

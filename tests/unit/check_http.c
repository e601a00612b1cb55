/* Unit tests for the http back-end's header escaping (src/directory/http.c). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "directory/http.h"

START_TEST(test_plain_values_unchanged)
{
	char out[64];

	ck_assert_uint_eq(http_header_escape("alice@example.net", out, sizeof(out)), 17);
	ck_assert_str_eq(out, "alice@example.net");
	ck_assert_uint_eq(http_header_escape("", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "");
}
END_TEST

START_TEST(test_escapes)
{
	char out[64];

	/* Nothing can end the header or start another. */
	ck_assert_uint_eq(http_header_escape("a\r\nX-Evil: 1", out, sizeof(out)), 18);
	ck_assert_str_eq(out, "a%0D%0AX-Evil:%201");
	http_header_escape("100%\t\x7f\xc3\xb6", out, sizeof(out));
	ck_assert_str_eq(out, "100%25%09%7F%C3%B6");
}
END_TEST

START_TEST(test_bound)
{
	char out[6];

	/* The length needed comes back; what is written never splits a %XX. */
	ck_assert_uint_eq(http_header_escape("ab cd", out, sizeof(out)), 7);
	ck_assert_str_eq(out, "ab%20");
	ck_assert_uint_eq(http_header_escape("ab cd", out, 5), 7);
	ck_assert_str_eq(out, "ab");
	ck_assert_uint_eq(http_header_escape("a cd", out, 5), 6);
	ck_assert_str_eq(out, "a%20");
	ck_assert_uint_eq(http_header_escape("abcdefgh", out, sizeof(out)), 8);
	ck_assert_str_eq(out, "abcde");
	ck_assert_uint_eq(http_header_escape("abc", out, 0), 3);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("http");
	TCase *tc = tcase_create("escape");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_plain_values_unchanged);
	tcase_add_test(tc, test_escapes);
	tcase_add_test(tc, test_bound);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

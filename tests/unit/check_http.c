/*
 * Unit tests for the http back-end (src/directory/http.c): header escaping
 * and Auth-Wait values.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
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

/* Auth-Wait: seconds, capped at HTTP_AUTH_WAIT_MAX. */
START_TEST(test_auth_wait)
{
	char big[64];
	unsigned w;

	w = 99;
	ck_assert_int_eq(http_auth_wait_parse("0", &w), 0);
	ck_assert_uint_eq(w, 0);
	ck_assert_int_eq(http_auth_wait_parse("2", &w), 0);
	ck_assert_uint_eq(w, 2);
	ck_assert_int_eq(http_auth_wait_parse("007", &w), 0);
	ck_assert_uint_eq(w, 7);
	snprintf(big, sizeof(big), "%d", HTTP_AUTH_WAIT_MAX - 1);
	ck_assert_int_eq(http_auth_wait_parse(big, &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX - 1);
	snprintf(big, sizeof(big), "%d", HTTP_AUTH_WAIT_MAX);
	ck_assert_int_eq(http_auth_wait_parse(big, &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX);
	snprintf(big, sizeof(big), "%d", HTTP_AUTH_WAIT_MAX + 1);
	ck_assert_int_eq(http_auth_wait_parse(big, &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX);
	/* Past 32 and 64 bits: still the cap, no overflow. */
	ck_assert_int_eq(http_auth_wait_parse("4294967297", &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX);
	ck_assert_int_eq(http_auth_wait_parse("18446744073709551617", &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX);
	memset(big, '9', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_int_eq(http_auth_wait_parse(big, &w), 0);
	ck_assert_uint_eq(w, HTTP_AUTH_WAIT_MAX);
}
END_TEST

/* Anything but digits is no wait, and leaves *secs_r alone. */
START_TEST(test_auth_wait_not_numbers)
{
	static const char *const bad[] = { "", " ", "-1", "+1", "1 ", " 1",
	    "1s", "0x10", "1.5", "\t2", "2\r", "\xd9\xa3", NULL };
	unsigned w;

	for (size_t i = 0; bad[i] != NULL; i++) {
		w = 12345;
		ck_assert_msg(http_auth_wait_parse(bad[i], &w) == -1, "%zu", i);
		ck_assert_uint_eq(w, 12345);
	}
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
	tcase_add_test(tc, test_auth_wait);
	tcase_add_test(tc, test_auth_wait_not_numbers);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

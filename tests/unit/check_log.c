/* Unit tests for log_escape() (src/log.h): a peer's bytes inside a log value. */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

START_TEST(test_printable_kept)
{
	char out[64];

	ck_assert_str_eq(log_escape(out, sizeof(out), "Bob@Example.NET", 15),
	    "Bob@Example.NET");
	ck_assert_str_eq(log_escape(out, sizeof(out), "a b", 3), "a b");
	ck_assert_str_eq(log_escape(out, sizeof(out), "", 0), "");
}
END_TEST

START_TEST(test_quote_backslash_and_controls)
{
	static const char in[] = "x\"y\\z\r\n\x01\x1b[2J\x7f\0w";
	char out[128];

	ck_assert_str_eq(log_escape(out, sizeof(out), in, sizeof(in) - 1),
	    "x\\\"y\\\\z\\x0d\\x0a\\x01\\x1b[2J\\x7f\\x00w");
	/* UTF-8 (and any byte >= 0x80) is escaped too: never raw. */
	ck_assert_str_eq(log_escape(out, sizeof(out), "j\xc3\xbcrgen", 7),
	    "j\\xc3\\xbcrgen");
}
END_TEST

START_TEST(test_bound_cuts_at_a_whole_escape)
{
	char out[8];

	memset(out, 'Z', sizeof(out));
	/* "ab" + "\x01" fits 2 + 4 + NUL = 7; the next escape does not. */
	ck_assert_str_eq(log_escape(out, sizeof(out), "ab\x01\x02", 4),
	    "ab\\x01");
	ck_assert_str_eq(log_escape(out, sizeof(out), "abcdefghij", 10),
	    "abcdefg");
	ck_assert_str_eq(log_escape(out, 2, "\"", 1), "");
	ck_assert_str_eq(log_escape(out, 1, "abc", 3), "");
}
END_TEST

static Suite *
log_suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("escape");

	tcase_add_test(tc, test_printable_kept);
	tcase_add_test(tc, test_quote_backslash_and_controls);
	tcase_add_test(tc, test_bound_cuts_at_a_whole_escape);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(log_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Unit tests for POP3 command-line splitting (src/pop3_parse.h). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "pop3_parse.h"

static int
parse(const char *line, struct pop3_cmd *cmd)
{
	memset(cmd, 0x55, sizeof(*cmd));	/* no stale fields may survive */
	return pop3_parse_line(line, strlen(line), cmd);
}

START_TEST(test_keyword_upper_cased)
{
	static const char *const in[] = { "user", "User", "uSeR", "USER" };
	struct pop3_cmd cmd;

	for (size_t i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		ck_assert_int_eq(parse(in[i], &cmd), 0);
		ck_assert_str_eq(cmd.keyword, "USER");
		ck_assert_ptr_null(cmd.arg);
		ck_assert_uint_eq(cmd.arglen, 0);
	}
	ck_assert_int_eq(parse("capa", &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "CAPA");
	ck_assert_int_eq(parse("q", &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "Q");
}
END_TEST

START_TEST(test_argument)
{
	struct pop3_cmd cmd;
	const char *line = "user alice@example.org";

	ck_assert_int_eq(parse(line, &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "USER");
	ck_assert_ptr_eq(cmd.arg, line + 5);	/* points into the line */
	ck_assert_uint_eq(cmd.arglen, strlen("alice@example.org"));
	ck_assert_mem_eq(cmd.arg, "alice@example.org", cmd.arglen);
}
END_TEST

START_TEST(test_argument_keeps_spaces)
{
	struct pop3_cmd cmd;

	ck_assert_int_eq(parse("PASS a b  c", &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "PASS");
	ck_assert_uint_eq(cmd.arglen, 6);
	ck_assert_mem_eq(cmd.arg, "a b  c", 6);

	/* Leading and trailing spaces of a password are part of it. */
	ck_assert_int_eq(parse("PASS  x ", &cmd), 0);
	ck_assert_uint_eq(cmd.arglen, 3);
	ck_assert_mem_eq(cmd.arg, " x ", 3);

	ck_assert_int_eq(parse("AUTH PLAIN dXNlcgB1c2VyAHBhc3M=", &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "AUTH");
	ck_assert_uint_eq(cmd.arglen, strlen("PLAIN dXNlcgB1c2VyAHBhc3M="));
}
END_TEST

START_TEST(test_empty_argument)
{
	struct pop3_cmd cmd;

	/* "PASS " has an argument: the empty string. */
	ck_assert_int_eq(parse("PASS ", &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "PASS");
	ck_assert_ptr_nonnull(cmd.arg);
	ck_assert_uint_eq(cmd.arglen, 0);
}
END_TEST

START_TEST(test_argument_with_8bit)
{
	static const char line[] = "PASS p\xc3\xa4w";
	struct pop3_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	ck_assert_int_eq(pop3_parse_line(line, sizeof(line) - 1, &cmd), 0);
	ck_assert_uint_eq(cmd.arglen, 4);
	ck_assert_mem_eq(cmd.arg, "p\xc3\xa4w", 4);
}
END_TEST

START_TEST(test_nul_and_bare_cr_refused)
{
	/* Either would split the line in two at the backend. */
	static const char nul[] = "PASS p\0w";
	struct pop3_cmd cmd;

	ck_assert_int_eq(pop3_parse_line(nul, sizeof(nul) - 1, &cmd), -1);
	ck_assert_int_eq(parse("PASS a\rQUIT", &cmd), -1);
	ck_assert_int_eq(parse("USER a\r", &cmd), -1);
	ck_assert_int_eq(parse("\rUSER a", &cmd), -1);
}
END_TEST

START_TEST(test_length_not_nul)
{
	/* Only len bytes count: the line need not be NUL-terminated. */
	struct pop3_cmd cmd;

	memset(&cmd, 0, sizeof(cmd));
	ck_assert_int_eq(pop3_parse_line("STATXYZ", 4, &cmd), 0);
	ck_assert_str_eq(cmd.keyword, "STAT");
	ck_assert_ptr_null(cmd.arg);
	ck_assert_int_eq(pop3_parse_line("USER bobby", 8, &cmd), 0);
	ck_assert_uint_eq(cmd.arglen, 3);
	ck_assert_mem_eq(cmd.arg, "bob", 3);
}
END_TEST

START_TEST(test_empty_line)
{
	struct pop3_cmd cmd;

	ck_assert_int_eq(parse("", &cmd), -1);
	ck_assert_int_eq(parse(" ", &cmd), -1);
	ck_assert_int_eq(parse(" USER x", &cmd), -1);
}
END_TEST

START_TEST(test_keyword_length)
{
	struct pop3_cmd cmd;
	char line[32];

	/* POP3_KEYWORD_MAX letters fit ... */
	memset(line, 'A', POP3_KEYWORD_MAX);
	line[POP3_KEYWORD_MAX] = '\0';
	ck_assert_int_eq(parse(line, &cmd), 0);
	ck_assert_str_eq(cmd.keyword, line);
	strcat(line, " x");
	ck_assert_int_eq(parse(line, &cmd), 0);
	ck_assert_uint_eq(strlen(cmd.keyword), POP3_KEYWORD_MAX);

	/* ... one more does not. */
	memset(line, 'a', POP3_KEYWORD_MAX + 1);
	line[POP3_KEYWORD_MAX + 1] = '\0';
	ck_assert_int_eq(parse(line, &cmd), -1);
	strcat(line, " x");
	ck_assert_int_eq(parse(line, &cmd), -1);
	ck_assert_int_eq(parse("AUTHENTICATE PLAIN", &cmd), -1);
}
END_TEST

START_TEST(test_keyword_non_letters)
{
	static const char *const bad[] = {
		"US3R x", "1", "US-R", "USER\tx", "USER\r", "X_Y", "@",
		"\xc3\x9cSER x", "USE\x7f",
	};
	struct pop3_cmd cmd;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		ck_assert_msg(parse(bad[i], &cmd) == -1, "accepted \"%s\"", bad[i]);

	static const char nul[] = "US\0R x";
	ck_assert_int_eq(pop3_parse_line(nul, sizeof(nul) - 1, &cmd), -1);
}
END_TEST

static Suite *
pop3_parse_suite(void)
{
	Suite *s = suite_create("pop3_parse");
	TCase *tc = tcase_create("pop3_parse");

	tcase_add_test(tc, test_keyword_upper_cased);
	tcase_add_test(tc, test_argument);
	tcase_add_test(tc, test_argument_keeps_spaces);
	tcase_add_test(tc, test_empty_argument);
	tcase_add_test(tc, test_argument_with_8bit);
	tcase_add_test(tc, test_nul_and_bare_cr_refused);
	tcase_add_test(tc, test_length_not_nul);
	tcase_add_test(tc, test_empty_line);
	tcase_add_test(tc, test_keyword_length);
	tcase_add_test(tc, test_keyword_non_letters);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(pop3_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Unit tests for the control protocol's quoting and parsing (src/ctl_proto.h). */
#include "autoconf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_proto.h"

/* Quote value; returns a malloc'd, NUL-terminated copy of what was written. */
static char *
quoted(const char *value)
{
	struct buf b;
	char *s;

	buf_init(&b, 4096);
	ck_assert_int_eq(ctl_quote(&b, value), 0);
	s = strndup(buf_head(&b), buf_len(&b));
	buf_free(&b);
	return s;
}

START_TEST(test_quote)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "alice@example.org", "alice@example.org" },
		{ "127.0.0.1:143", "127.0.0.1:143" },
		{ "a=b", "a=b" },
		{ "", "\"\"" },
		{ "two words", "\"two words\"" },
		{ "say \"hi\"", "\"say \\\"hi\\\"\"" },
		{ "back\\slash", "\"back\\\\slash\"" },
		{ "cr\rlf\n", "\"cr\\rlf\\n\"" },
		{ "tab\t", "\"tab\\t\"" },
		{ "bell\a\x7f", "\"bell\\x07\\x7f\"" },
		{ "j\xc3\xbcrgen", "j\xc3\xbcrgen" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *q = quoted(cases[i].in);

		ck_assert_str_eq(q, cases[i].out);
		ck_assert_ptr_null(strchr(q, '\n'));
		ck_assert_ptr_null(strchr(q, '\r'));
		free(q);
	}
}
END_TEST

START_TEST(test_record_round_trip)
{
	static const char *const values[] = { "plain", "", "a b", "\"\\",
	    "\r\n\t\x01\x1f\x7f", "=x=", "ü" };
	struct ctl_field *f;
	struct ctl_rec r;
	struct buf b;
	const char *error;
	char *line;
	size_t n;

	buf_init(&b, 4096);
	ctl_rec_begin(&r, &b);
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++) {
		char key[8];

		key[0] = 'k';
		key[1] = (char)('0' + i);
		key[2] = '\0';
		ck_assert_int_eq(ctl_rec_str(&r, key, values[i]), 0);
	}
	ck_assert_int_eq(ctl_rec_u64(&r, "n", 18446744073709551615ULL), 0);
	ck_assert_int_eq(ctl_rec_end(&r), 0);
	line = strndup(buf_head(&b), buf_len(&b));
	buf_free(&b);
	/* One line: the only LF is the last byte. */
	ck_assert_ptr_eq(strchr(line, '\n'), line + strlen(line) - 1);
	ck_assert_ptr_null(strchr(line, '\r'));
	line[strlen(line) - 1] = '\0';
	ck_assert_int_eq(ctl_parse_record(line, &f, &n, &error), 0);
	ck_assert_uint_eq(n, sizeof(values) / sizeof(values[0]) + 1);
	for (size_t i = 0; i + 1 < n; i++) {
		ck_assert_str_eq(f[i].value, values[i]);
		ck_assert_int_eq(f[i].key[1], '0' + (int)i);
	}
	ck_assert_str_eq(f[n - 1].key, "n");
	ck_assert_str_eq(f[n - 1].value, "18446744073709551615");
	ctl_fields_free(&f, n);
	ck_assert_ptr_null(f);
	free(line);
}
END_TEST

START_TEST(test_parse_rejects)
{
	static const char *const bad[] = {
		"novalue", "=v", "k=\"open", "k=\"x\"y", "k=a\"b", "k=a\\b",
		"k=\"\\q\"", "k=\"\\x0\"", "k=\"\\x00\"", "k=v ", "k=v  j=w",
		"k=\"a\rb\"", " k=v", "k=\"\\",
	};
	struct ctl_field *f = NULL;
	const char *error = NULL;
	size_t n = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_msg(ctl_parse_record(bad[i], &f, &n, &error) == -1,
		    "accepted %s", bad[i]);
		ck_assert_ptr_nonnull(error);
	}
	ck_assert_int_eq(ctl_parse_record("", &f, &n, &error), 0);
	ck_assert_uint_eq(n, 0);
	ctl_fields_free(&f, n);
	ck_assert_int_eq(ctl_parse_record("a=1 b=\"x y\" c==", &f, &n, &error), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(f[1].value, "x y");
	ck_assert_str_eq(f[2].value, "=");
	ctl_fields_free(&f, n);
}
END_TEST

START_TEST(test_json)
{
	struct ctl_field *f;
	struct buf b;
	const char *error;
	size_t n;

	ck_assert_int_eq(ctl_parse_record("user=\"a \\\"b\\\"\" bytes_in=42 "
	    "zero=0 lead=007 big=1234567890123456789 neg=-1 ctl=\"\\x01\"",
	    &f, &n, &error), 0);
	buf_init(&b, 4096);
	ck_assert_int_eq(ctl_json(&b, f, n), 0);
	ck_assert_int_eq(buf_append(&b, "", 1), 0);
	ck_assert_str_eq(buf_head(&b), "{\"user\": \"a \\\"b\\\"\", \"bytes_in\": 42, "
	    "\"zero\": 0, \"lead\": \"007\", \"big\": \"1234567890123456789\", "
	    "\"neg\": \"-1\", \"ctl\": \"\\u0001\"}");
	buf_free(&b);
	ctl_fields_free(&f, n);
}
END_TEST

START_TEST(test_line_kind_and_split)
{
	char line[] = "  route\talice@example.org   pop3 ", bad[] = "kick a\x01";
	char many[] = "a b c d e f g h i";
	const char *reason = NULL;
	char *words[8];
	size_t n;

	ck_assert_int_eq(ctl_line_kind("ok", &reason), CTL_LINE_OK);
	ck_assert_int_eq(ctl_line_kind("error: no such user", &reason),
	    CTL_LINE_ERROR);
	ck_assert_str_eq(reason, "no such user");
	ck_assert_int_eq(ctl_line_kind("ok=1", &reason), CTL_LINE_RECORD);
	ck_assert_int_eq(ctl_line_kind("okay", &reason), CTL_LINE_RECORD);

	ck_assert_int_eq(ctl_split(line, words, 8, &n), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(words[0], "route");
	ck_assert_str_eq(words[1], "alice@example.org");
	ck_assert_str_eq(words[2], "pop3");
	ck_assert_int_eq(ctl_split(bad, words, 8, &n), -1);
	ck_assert_int_eq(ctl_split(many, words, 8, &n), -1);
	{
		char empty[] = "   ";

		ck_assert_int_eq(ctl_split(empty, words, 8, &n), -1);
	}
}
END_TEST

START_TEST(test_full_buffer)
{
	struct buf b;
	struct ctl_rec r;

	buf_init(&b, 8);
	ctl_rec_begin(&r, &b);
	ck_assert_int_eq(ctl_rec_str(&r, "k", "value too long"), -1);
	buf_free(&b);
}
END_TEST

static Suite *
ctl_suite(void)
{
	Suite *s = suite_create("ctl_proto");
	TCase *tc = tcase_create("ctl_proto");

	tcase_add_test(tc, test_quote);
	tcase_add_test(tc, test_record_round_trip);
	tcase_add_test(tc, test_parse_rejects);
	tcase_add_test(tc, test_json);
	tcase_add_test(tc, test_line_kind_and_split);
	tcase_add_test(tc, test_full_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(ctl_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

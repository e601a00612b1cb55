/* Unit tests for the IMAP ID list (src/imap_id.c). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_id.h"
#include "imap_parse.h"

/* Parse "t ID <list>" with the real tokenizer, then the ID arguments. */
static int
parse_id(const char *list, struct imap_id *id, const char **error_r)
{
	struct imap_parser p;
	char line[70000];
	size_t used;
	int n, rc;

	n = snprintf(line, sizeof(line), "t ID %s\r\n", list);
	ck_assert(n > 0 && (size_t)n < sizeof(line));
	imap_parser_init(&p, sizeof(line));
	ck_assert_int_eq(imap_parser_feed(&p, line, (size_t)n, &used), IMAP_PARSE_DONE);
	rc = imap_id_parse(p.args, p.nargs, id, error_r);
	imap_parser_free(&p);
	return rc;
}

static const char *
format(const struct imap_id *client)
{
	static char out[IMAP_ID_WIRE_MAX + 64];
	struct imap_id_pair ours[] = {
		{ (char *)"x-originating-ip", (char *)"192.0.2.7" },
		{ (char *)"x-originating-port", (char *)"51234" },
	};
	struct buf b;

	buf_init(&b, IMAP_ID_WIRE_MAX + 16);
	ck_assert_int_eq(imap_id_format(&b, ours, 2, client), 0);
	ck_assert_uint_lt(buf_len(&b), sizeof(out));
	memcpy(out, buf_head(&b), buf_len(&b));
	out[buf_len(&b)] = '\0';
	buf_free(&b);
	return out;
}

START_TEST(test_client_cannot_forge_proxy_fields)
{
	struct imap_id id = { 0 };
	const char *error;

	ck_assert_int_eq(parse_id("(\"x-session-id\" \"S\" \"X-Connected-IP\" "
	    "\"7.7.7.7\" \"name\" \"Thunderbird\" \"x-originating-ip\" \"6.6.6.6\")",
	    &id, &error), 0);
	ck_assert_uint_eq(id.npairs, 1);
	ck_assert_str_eq(id.pairs[0].field, "name");
	/* postern's fields first, the client's after, nothing forged. */
	ck_assert_str_eq(format(&id), "(\"x-originating-ip\" \"192.0.2.7\" "
	    "\"x-originating-port\" \"51234\" \"name\" \"Thunderbird\")");
	imap_id_clear(&id);
}
END_TEST

START_TEST(test_structure_checked)
{
	struct imap_id id = { 0 };
	const char *error;

	ck_assert_int_eq(parse_id("NIL", &id, &error), 0);
	ck_assert_uint_eq(id.npairs, 0);
	ck_assert_int_eq(parse_id("()", &id, &error), 0);
	/* An odd list would shift every pair after it. */
	ck_assert_int_eq(parse_id("(\"name\" \"a\" \"x-originating-ip\")", &id, &error), -1);
	ck_assert_str_eq(error, "ID list must hold field/value pairs");
	ck_assert_int_eq(parse_id("(\"name\" (\"a\" \"b\"))", &id, &error), -1);
	ck_assert_int_eq(parse_id("(name \"a\")", &id, &error), -1);
	ck_assert_int_eq(parse_id("(\"name\" atom)", &id, &error), -1);
	ck_assert_int_eq(parse_id("\"name\" \"a\"", &id, &error), -1);
	ck_assert_int_eq(imap_id_parse(NULL, 0, &id, &error), -1);
	ck_assert_int_eq(parse_id("(\"\" \"a\")", &id, &error), -1);
	ck_assert_int_eq(parse_id("(\"name\" NIL \"os\" \"linux\")", &id, &error), 0);
	ck_assert_uint_eq(id.npairs, 2);
	ck_assert_ptr_null(id.pairs[0].value);
	ck_assert_str_eq(format(&id), "(\"x-originating-ip\" \"192.0.2.7\" "
	    "\"x-originating-port\" \"51234\" \"name\" NIL \"os\" \"linux\")");
	imap_id_clear(&id);
}
END_TEST

START_TEST(test_rfc_sizes)
{
	struct imap_id id = { 0 };
	char list[65536], v[1025];
	const char *error;
	size_t o = 0;

	/* The full size RFC 2971 allows: 30 pairs, values of 1024 octets. */
	memset(v, 'v', 1024);
	v[1024] = '\0';
	o += (size_t)snprintf(list + o, sizeof(list) - o, "(");
	for (int i = 0; i < 30; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s\"field%02d\" \"%s\"",
		    i ? " " : "", i, v);
	snprintf(list + o, sizeof(list) - o, ")");
	ck_assert_int_eq(parse_id(list, &id, &error), 0);
	ck_assert_uint_eq(id.npairs, 30);
	/* Forwarded with ours first: 30 pairs at most, within the bound. */
	{
		const char *f = format(&id);
		size_t pairs = 0;

		for (const char *p = f; (p = strstr(p, "\"field")) != NULL; p++)
			pairs++;
		ck_assert_uint_eq(pairs, 28);
		ck_assert_uint_le(strlen(f), IMAP_ID_WIRE_MAX);
		ck_assert_int_eq(f[strlen(f) - 1], ')');
		ck_assert_int_eq(strncmp(f, "(\"x-originating-ip\"", 19), 0);
	}
	/* One octet more, or one pair more, is refused. */
	o = (size_t)snprintf(list, sizeof(list), "(\"name\" \"%s\")", v);
	ck_assert_int_eq(parse_id(list, &id, &error), 0);
	o = (size_t)snprintf(list, sizeof(list), "(\"name\" \"%sv\")", v);
	ck_assert_int_eq(parse_id(list, &id, &error), -1);
	ck_assert_str_eq(error, "ID field or value too long");
	ck_assert_int_eq(parse_id("(\"f234567890123456789012345678901\" \"a\")", &id,
	    &error), -1);
	o = 0;
	o += (size_t)snprintf(list + o, sizeof(list) - o, "(");
	for (int i = 0; i < 31; i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s\"f%d\" \"v\"",
		    i ? " " : "", i);
	snprintf(list + o, sizeof(list) - o, ")");
	ck_assert_int_eq(parse_id(list, &id, &error), -1);
	ck_assert_str_eq(error, "ID list holds more than 30 pairs");
	imap_id_clear(&id);
}
END_TEST

START_TEST(test_values_that_cannot_travel)
{
	struct imap_id id = { 0 };
	const char *error;

	/* A literal can carry CR/LF and NUL; a quoted string cannot. */
	ck_assert_int_eq(parse_id("(\"name\" \"ok\" \"bad\" {3+}\r\na\r\n \"os\" "
	    "\"q\\\"uote\\\\\" \"name\" \"again\")", &id, &error), 0);
	ck_assert_uint_eq(id.npairs, 2);
	ck_assert_str_eq(id.pairs[1].field, "os");
	/* Quotes and backslashes are escaped again; repeats dropped. */
	ck_assert_ptr_nonnull(strstr(format(&id), "\"os\" \"q\\\"uote\\\\\")"));
	ck_assert_int_eq(parse_id("(\"name\" \"j\xc3\xbcrgen\" \"os\" \"\xff\")", &id,
	    &error), 0);
	ck_assert_uint_eq(id.npairs, 1);
	imap_id_clear(&id);
}
END_TEST

START_TEST(test_reserved)
{
	ck_assert(imap_id_reserved("x-originating-ip"));
	ck_assert(imap_id_reserved("X-FORWARD-user"));
	ck_assert(imap_id_reserved("x-"));
	ck_assert(!imap_id_reserved("name"));
	ck_assert(!imap_id_reserved("xname"));
}
END_TEST

START_TEST(test_format_without_client_and_tight_buffer)
{
	struct imap_id_pair ours[] = { { (char *)"x-a", (char *)"1" } };
	struct buf b;

	buf_init(&b, 64);
	ck_assert_int_eq(imap_id_format(&b, ours, 1, NULL), 0);
	ck_assert_uint_eq(buf_len(&b), strlen("(\"x-a\" \"1\")"));
	buf_free(&b);
	/* No room even for ours: refused, the buffer left as it was. */
	buf_init(&b, 6);
	ck_assert_int_eq(buf_append(&b, "ab", 2), 0);
	ck_assert_int_eq(imap_id_format(&b, ours, 1, NULL), -1);
	ck_assert_uint_eq(buf_len(&b), 2);
	buf_free(&b);
}
END_TEST

static Suite *
id_suite(void)
{
	Suite *s = suite_create("imap_id");
	TCase *tc = tcase_create("id");

	tcase_add_test(tc, test_client_cannot_forge_proxy_fields);
	tcase_add_test(tc, test_structure_checked);
	tcase_add_test(tc, test_rfc_sizes);
	tcase_add_test(tc, test_values_that_cannot_travel);
	tcase_add_test(tc, test_reserved);
	tcase_add_test(tc, test_format_without_client_and_tight_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(id_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

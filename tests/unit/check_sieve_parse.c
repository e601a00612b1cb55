/*
 * Unit tests for the ManageSieve side of the command tokenizer
 * (imap_parser_init_untagged, src/imap_parse.h): no tag, every literal
 * non-synchronising, argument-only lines for SASL responses.
 *
 * Every input is fed whole and one byte at a time, driven the way sieve.c
 * drives it (reset after DONE, reset after a non-fatal ERROR unless the
 * parser is skipping, stop after a fatal ERROR); both runs must agree.
 */
#include "autoconf.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap_parse.h"

#define RES_MAX		16

struct res {
	enum imap_parse_result	 r;
	char			 cmd[IMAP_CMD_MAX + 1];
	size_t			 nargs;
	char			 arg[4][600];	/* the first arguments, copied */
	size_t			 arglen[4];
	bool			 literal[4];
	const char		*error;
	bool			 fatal;
};

struct run {
	struct res	 res[RES_MAX];
	size_t		 nres;
	bool		 stopped;
};

static void
snapshot(struct run *run, const struct imap_parser *p, enum imap_parse_result r)
{
	struct res *s;

	ck_assert_uint_lt(run->nres, RES_MAX);
	s = &run->res[run->nres++];
	memset(s, 0, sizeof(*s));
	s->r = r;
	memcpy(s->cmd, p->cmd, sizeof(s->cmd));
	s->error = p->error;
	s->fatal = p->fatal;
	if (r != IMAP_PARSE_DONE)
		return;
	s->nargs = p->nargs;
	for (size_t i = 0; i < p->nargs && i < 4; i++) {
		ck_assert_uint_lt(p->args[i].len, sizeof(s->arg[i]));
		memcpy(s->arg[i], p->args[i].str, p->args[i].len);
		s->arglen[i] = p->args[i].len;
		s->literal[i] = p->args[i].literal;
	}
}

static void
run_parser(struct run *run, size_t max, bool args_only, const char *data,
    size_t len, size_t chunk)
{
	struct imap_parser p;
	size_t pos = 0;

	memset(run, 0, sizeof(*run));
	imap_parser_init_untagged(&p, max);
	p.args_only = args_only;
	imap_parser_reset(&p);
	while (pos < len) {
		size_t n = chunk == 0 || chunk > len - pos ? len - pos : chunk;
		size_t used;
		enum imap_parse_result r = imap_parser_feed(&p, data + pos, n, &used);

		ck_assert_uint_le(used, n);
		pos += used;
		if (r == IMAP_PARSE_MORE) {
			ck_assert_uint_eq(used, n);
			continue;
		}
		/* No continuation request exists in ManageSieve. */
		ck_assert_int_ne(r, IMAP_PARSE_LITERAL);
		snapshot(run, &p, r);
		if (r == IMAP_PARSE_DONE) {
			imap_parser_reset(&p);
			continue;
		}
		if (p.fatal) {
			run->stopped = true;
			break;
		}
		if (!imap_parser_skipping(&p))
			imap_parser_reset(&p);
	}
	imap_parser_free(&p);
}

/* Whole and byte by byte; the two must agree.  Returns the whole run. */
static struct run whole, bytewise;

static const struct run *
parse_max(const char *data, size_t len, size_t max, bool args_only)
{
	run_parser(&whole, max, args_only, data, len, 0);
	run_parser(&bytewise, max, args_only, data, len, 1);
	ck_assert_uint_eq(whole.nres, bytewise.nres);
	ck_assert_int_eq(whole.stopped, bytewise.stopped);
	for (size_t i = 0; i < whole.nres; i++) {
		ck_assert_int_eq(whole.res[i].r, bytewise.res[i].r);
		ck_assert_str_eq(whole.res[i].cmd, bytewise.res[i].cmd);
		ck_assert_uint_eq(whole.res[i].nargs, bytewise.res[i].nargs);
		ck_assert_int_eq(whole.res[i].fatal, bytewise.res[i].fatal);
	}
	return &whole;
}

static const struct run *
parse(const char *data)
{
	return parse_max(data, strlen(data), 1024, false);
}

START_TEST(test_command_without_tag)
{
	const struct run *r = parse("AUTHENTICATE \"PLAIN\" \"AGEAYg==\"\r\n"
	    "CAPABILITY\r\nLOGOUT\n");

	ck_assert_uint_eq(r->nres, 3);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_DONE);
	ck_assert_str_eq(r->res[0].cmd, "AUTHENTICATE");
	ck_assert_uint_eq(r->res[0].nargs, 2);
	ck_assert_str_eq(r->res[0].arg[0], "PLAIN");
	ck_assert_str_eq(r->res[0].arg[1], "AGEAYg==");
	ck_assert_str_eq(r->res[1].cmd, "CAPABILITY");
	ck_assert_uint_eq(r->res[1].nargs, 0);
	ck_assert_str_eq(r->res[2].cmd, "LOGOUT");
}
END_TEST

START_TEST(test_literals_never_wait)
{
	/* {n+} and {n} alike: the data follows at once. */
	const struct run *r = parse("AUTHENTICATE \"PLAIN\" {8+}\r\nAGEAYg==\r\n"
	    "PUTSCRIPT \"s\" {5}\r\nk\r\ney\r\nNOOP\r\n");

	ck_assert_uint_eq(r->nres, 3);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_DONE);
	ck_assert_str_eq(r->res[0].arg[1], "AGEAYg==");
	ck_assert(r->res[0].literal[1]);
	ck_assert_str_eq(r->res[1].cmd, "PUTSCRIPT");
	ck_assert_uint_eq(r->res[1].arglen[1], 5);
	ck_assert_mem_eq(r->res[1].arg[1], "k\r\ney", 5);
	ck_assert_str_eq(r->res[2].cmd, "NOOP");
}
END_TEST

START_TEST(test_args_only_lines)
{
	static const char in[] = "\"AGEAYg==\"\r\n{3+}\r\n\"*\" \"*\"\r\n";
	const struct run *r = parse_max(in, strlen(in), 1024, true);

	ck_assert_uint_eq(r->nres, 2);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_DONE);
	ck_assert_uint_eq(r->res[0].nargs, 1);
	ck_assert_str_eq(r->res[0].arg[0], "AGEAYg==");
	ck_assert_uint_eq(r->res[1].nargs, 2);
	ck_assert(r->res[1].literal[0]);
	ck_assert_str_eq(r->res[1].arg[0], "\"*\"");
	ck_assert_str_eq(r->res[1].arg[1], "*");
}
END_TEST

START_TEST(test_oversize_literal_is_fatal)
{
	/* Either form: the client is already sending the data. */
	static const char in[] = "PUTSCRIPT \"a\" {100}\r\nNOOP\r\n";
	static const char huge[] = "PUTSCRIPT \"a\" {99999999999999999999+}\r\n";
	const struct run *r = parse_max(in, strlen(in), 64, false);

	ck_assert_uint_eq(r->nres, 1);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_ERROR);
	ck_assert(r->res[0].fatal);
	ck_assert_str_eq(r->res[0].error, "literal too large");
	r = parse_max(huge, strlen(huge), 64, false);
	ck_assert(r->stopped);
}
END_TEST

START_TEST(test_bad_line_announcing_literal_is_fatal)
{
	const struct run *r = parse("NOOP \"a\"x {5}\r\nhello\r\n");

	ck_assert_uint_eq(r->nres, 2);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_ERROR);
	ck_assert(!r->res[0].fatal);
	ck_assert(r->res[1].fatal);
	ck_assert(r->stopped);
}
END_TEST

START_TEST(test_bad_line_recovers)
{
	const struct run *r = parse("NOOP \"a\"x {5\r\n\r\n\"x\"\r\nNOOP\r\n");

	ck_assert_uint_eq(r->nres, 4);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_ERROR);
	ck_assert_int_eq(r->res[1].r, IMAP_PARSE_ERROR);	/* empty line */
	ck_assert_int_eq(r->res[2].r, IMAP_PARSE_ERROR);	/* no command name */
	ck_assert_int_eq(r->res[3].r, IMAP_PARSE_DONE);
	ck_assert_str_eq(r->res[3].cmd, "NOOP");
	ck_assert(!r->stopped);
}
END_TEST

START_TEST(test_line_length_bound)
{
	char line[600];
	const struct run *r;

	/* 512 bytes, CRLF included, fit; 513 do not. */
	memset(line, 'a', sizeof(line));
	memcpy(line, "NOOP \"", 6);
	memcpy(line + 509, "\"\r\n", 3);
	r = parse_max(line, 512, 512, false);
	ck_assert_uint_eq(r->nres, 1);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_DONE);
	memcpy(line + 509, "a\"\r\nNOOP\r\n", 10);
	r = parse_max(line, 519, 512, false);
	ck_assert_uint_eq(r->nres, 2);
	ck_assert_int_eq(r->res[0].r, IMAP_PARSE_ERROR);
	ck_assert_str_eq(r->res[0].error, "command line too long");
	ck_assert_int_eq(r->res[1].r, IMAP_PARSE_DONE);
}
END_TEST

START_TEST(test_tagged_mode_unchanged)
{
	struct imap_parser p;
	size_t used;
	static const char in[] = "a LOGIN {5}\r\n";

	imap_parser_init(&p, 1024);
	ck_assert_int_eq(imap_parser_feed(&p, in, strlen(in), &used),
	    IMAP_PARSE_LITERAL);
	ck_assert_str_eq(p.tag, "a");
	imap_parser_free(&p);
}
END_TEST

static Suite *
sieve_parse_suite(void)
{
	Suite *s = suite_create("sieve_parse");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_command_without_tag);
	tcase_add_test(tc, test_literals_never_wait);
	tcase_add_test(tc, test_args_only_lines);
	tcase_add_test(tc, test_oversize_literal_is_fatal);
	tcase_add_test(tc, test_bad_line_announcing_literal_is_fatal);
	tcase_add_test(tc, test_bad_line_recovers);
	tcase_add_test(tc, test_line_length_bound);
	tcase_add_test(tc, test_tagged_mode_unchanged);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sieve_parse_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

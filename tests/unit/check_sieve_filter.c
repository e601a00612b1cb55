/*
 * Unit tests for the post-login ManageSieve scanner (src/sieve_filter.h).
 * Every input is fed whole and one byte at a time; both runs must give the
 * same trace: each event with the offset where it happened, e.g.
 * "N(UNAUTHENTICATE)@14 E@16", "B@offset" for an empty line's NAME event,
 * "S(name)@offset" for a shadow line's name,
 * and "X(reason)@offset" for an error.
 */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sieve_filter.h"

#define TRACE_MAX	1024

static void
trace(const char *in, size_t len, size_t chunk, char *out, size_t outlen)
{
	struct sieve_scan sc;
	enum sieve_scan_event ev;
	size_t off = 0, used, o = 0;
	int rc;

	sieve_scan_init(&sc);
	out[0] = '\0';
	while (off < len) {
		size_t n = len - off < chunk ? len - off : chunk;

		rc = sieve_scan_feed(&sc, in + off, n, &used, &ev);
		ck_assert_uint_le(used, n);
		off += used;
		if (rc < 0) {
			o += (size_t)snprintf(out + o, outlen - o, "X(%s)@%zu ",
			    sc.error, off);
			break;
		}
		if (rc == 0) {
			ck_assert_uint_eq(used, n);
			continue;
		}
		if (ev == SIEVE_SCAN_NAME && sc.empty)
			o += (size_t)snprintf(out + o, outlen - o, "B@%zu ", off);
		else if (ev == SIEVE_SCAN_NAME)
			o += (size_t)snprintf(out + o, outlen - o, "N(%s%s)@%zu ",
			    sc.name, sc.name_long ? "+" : "", off);
		else if (ev == SIEVE_SCAN_SHADOW)
			o += (size_t)snprintf(out + o, outlen - o, "S(%s)@%zu ",
			    sc.shadow, off);
		else
			o += (size_t)snprintf(out + o, outlen - o, "E@%zu ", off);
		ck_assert_uint_lt(o, outlen);
	}
	if (o > 0)
		out[o - 1] = '\0';
}

static void
check_trace(const char *in, size_t len, const char *want)
{
	char whole[TRACE_MAX], bytes[TRACE_MAX];

	trace(in, len, len, whole, sizeof(whole));
	trace(in, len, 1, bytes, sizeof(bytes));
	ck_assert_str_eq(whole, want);
	ck_assert_str_eq(bytes, want);
}

#define CHECK(in, want)	check_trace(in, sizeof(in) - 1, want)

START_TEST(test_names)
{
	CHECK("UNAUTHENTICATE\r\n", "N(UNAUTHENTICATE)@14 E@16");
	CHECK("unauthenticate\n", "N(unauthenticate)@14 E@15");
	CHECK("  \tUnAuthenticate \r\n", "N(UnAuthenticate)@17 E@20");
	/* An empty line is known as such once its CR is read. */
	CHECK("\r\n", "B@1 E@2");
	CHECK("\n \t\n \r\n", "B@0 E@1 B@3 E@4 B@6 E@7");
	CHECK(" \r \r\n\r\rX\r\n", "N()@2 E@5 N()@6 E@10");
	CHECK("LISTSCRIPTS\r\nunauthenticate\r\n",
	    "N(LISTSCRIPTS)@11 E@13 N(unauthenticate)@27 E@29");
	/* The name is the letters only: what follows ends it. */
	CHECK("UNAUTHENTICATE\"x\"\r\n", "N(UNAUTHENTICATE)@14 E@19");
	CHECK("UNAUTHENTICATE2\r\n", "N(UNAUTHENTICATE)@14 E@17");
	CHECK("\"UNAUTHENTICATE\"\r\n", "N()@0 E@18");
	CHECK("{14+}\r\nUNAUTHENTICATE\r\n", "N()@0 S(UNAUTHENTICATE)@21 E@23");
}
END_TEST

/* After END the line's name, blankness and emptiness can still be read. */
START_TEST(test_line_kept_after_end)
{
	struct sieve_scan sc;
	enum sieve_scan_event ev;
	size_t used;

	sieve_scan_init(&sc);
	ck_assert(sieve_scan_between_lines(&sc));
	ck_assert_int_eq(sieve_scan_feed(&sc, " \t\r\n", 4, &used, &ev), 1);
	ck_assert_int_eq(ev, SIEVE_SCAN_NAME);
	ck_assert_uint_eq(used, 3);
	ck_assert(sc.empty);
	ck_assert(!sieve_scan_between_lines(&sc));
	ck_assert_int_eq(sieve_scan_feed(&sc, "\n", 1, &used, &ev), 1);
	ck_assert_int_eq(ev, SIEVE_SCAN_END);
	ck_assert(sieve_scan_between_lines(&sc));
	ck_assert(sc.blank);
	ck_assert(sc.empty);
	/* One byte of the next line and it is begun. */
	ck_assert_int_eq(sieve_scan_feed(&sc, "N", 1, &used, &ev), 0);
	ck_assert(!sieve_scan_between_lines(&sc));
	ck_assert_int_eq(sieve_scan_feed(&sc, "\r\n", 2, &used, &ev), 1);
	ck_assert_int_eq(sieve_scan_feed(&sc, "\r\n", 2, &used, &ev), 1);
	ck_assert_int_eq(ev, SIEVE_SCAN_END);
	ck_assert_int_eq(sieve_scan_feed(&sc, "Noop\r\n", 6, &used, &ev), 1);
	ck_assert(!sc.blank);
	ck_assert(!sc.empty);
	ck_assert_int_eq(sieve_scan_feed(&sc, "\r\n", 2, &used, &ev), 1);
	ck_assert_int_eq(ev, SIEVE_SCAN_END);
	ck_assert(!sc.blank);
	ck_assert(sieve_scan_name_is(&sc, "NOOP"));
	ck_assert_int_eq(sieve_scan_feed(&sc, "\"x\"\r\n", 5, &used, &ev), 1);
	ck_assert_int_eq(ev, SIEVE_SCAN_NAME);
	ck_assert_str_eq(sc.name, "");
	ck_assert(!sc.blank);
}
END_TEST

START_TEST(test_name_bounds)
{
	char in[SIEVE_SCAN_NAME_MAX + 8], want[128];
	struct sieve_scan sc;

	/* SIEVE_SCAN_NAME_MAX letters are kept; one more is too long. */
	memset(in, 'A', SIEVE_SCAN_NAME_MAX);
	memcpy(in + SIEVE_SCAN_NAME_MAX, "\r\n", 2);
	snprintf(want, sizeof(want), "N(%.*s)@%d E@%d", SIEVE_SCAN_NAME_MAX,
	    in, SIEVE_SCAN_NAME_MAX, SIEVE_SCAN_NAME_MAX + 2);
	check_trace(in, SIEVE_SCAN_NAME_MAX + 2, want);
	memset(in, 'A', SIEVE_SCAN_NAME_MAX + 1);
	memcpy(in + SIEVE_SCAN_NAME_MAX + 1, "\r\n", 2);
	snprintf(want, sizeof(want), "N(%.*s+)@%d E@%d", SIEVE_SCAN_NAME_MAX,
	    in, SIEVE_SCAN_NAME_MAX, SIEVE_SCAN_NAME_MAX + 3);
	check_trace(in, SIEVE_SCAN_NAME_MAX + 3, want);

	/* A long name is known long at once, not at its end. */
	{
		char lng[256];

		memset(lng, 'u', 200);
		memcpy(lng + 200, "\r\n", 2);
		snprintf(want, sizeof(want), "N(%.*s+)@%d E@202",
		    SIEVE_SCAN_NAME_MAX, lng, SIEVE_SCAN_NAME_MAX);
		check_trace(lng, 202, want);
	}

	/* A long name is not a shorter one. */
	sieve_scan_init(&sc);
	ck_assert(!sieve_scan_name_is(&sc, "NOOP"));
	memcpy(sc.name, "noop", 5);
	sc.namelen = 4;
	ck_assert(sieve_scan_name_is(&sc, "NOOP"));
	ck_assert(!sieve_scan_name_is(&sc, "NOO"));
	sc.name_long = true;
	ck_assert(!sieve_scan_name_is(&sc, "NOOP"));

	/* SIEVE_SCAN_NAME_MAX blanks may come before a name; no more. */
	memset(in, ' ', SIEVE_SCAN_NAME_MAX);
	memcpy(in + SIEVE_SCAN_NAME_MAX, "X\n", 2);
	snprintf(want, sizeof(want), "N(X)@%d E@%d", SIEVE_SCAN_NAME_MAX + 1,
	    SIEVE_SCAN_NAME_MAX + 2);
	check_trace(in, SIEVE_SCAN_NAME_MAX + 2, want);
	memset(in, ' ', SIEVE_SCAN_NAME_MAX + 1);
	memcpy(in + SIEVE_SCAN_NAME_MAX + 1, "X\n", 2);
	snprintf(want, sizeof(want), "X(too many blanks before a command)@%d",
	    SIEVE_SCAN_NAME_MAX);
	check_trace(in, SIEVE_SCAN_NAME_MAX + 3, want);
}
END_TEST

START_TEST(test_quoted)
{
	CHECK("PUTSCRIPT \"UNAUTHENTICATE\" \"x\"\r\nNOOP\r\n",
	    "N(PUTSCRIPT)@9 E@32 N(NOOP)@36 E@38");
	/* Escapes; a brace in a string is no literal. */
	CHECK("NOOP \"a\\\"b\\\\\" \"{5}\"\r\nUNAUTHENTICATE\r\n",
	    "N(NOOP)@4 E@21 N(UNAUTHENTICATE)@35 E@37");
	/* A LF in a string ends the line all the same. */
	CHECK("NOOP \"abc\nUNAUTHENTICATE\r\n",
	    "N(NOOP)@4 E@10 N(UNAUTHENTICATE)@24 E@26");
	CHECK("NOOP \"abc\\\nX\r\n", "N(NOOP)@4 E@11 N(X)@12 E@14");
}
END_TEST

START_TEST(test_literals)
{
	/*
	 * Synchronising and not: the octets are never commands, but each
	 * shadow line's name is reported.
	 */
	CHECK("PUTSCRIPT \"s\" {16+}\r\nUNAUTHENTICATE\r\n\r\nNOOP\r\n",
	    "N(PUTSCRIPT)@9 S(UNAUTHENTICATE)@35 E@39 N(NOOP)@43 E@45");
	CHECK("PUTSCRIPT \"s\" {16}\r\nUNAUTHENTICATE\r\n\r\nNOOP\r\n",
	    "N(PUTSCRIPT)@9 S(UNAUTHENTICATE)@34 E@38 N(NOOP)@42 E@44");
	CHECK("PUTSCRIPT \"s\" {16}\nUNAUTHENTICATE\r\n\nX\n",
	    "N(PUTSCRIPT)@9 S(UNAUTHENTICATE)@33 E@36 N(X)@37 E@38");
	/* Two literals on one line; a literal of nothing. */
	CHECK("X {2+}\r\nab {0}\r\n {1}\r\n\n\r\nY\r\n",
	    "N(X)@1 S(ab)@10 E@25 N(Y)@26 E@28");
	/*
	 * No digits is a literal of nothing, as Pigeonhole reads it: the
	 * line goes on after it.
	 */
	CHECK("NOOP {}\r\nNOOP\r\nY {+}\r\n\r\nZ\r\n",
	    "N(NOOP)@4 S(NOOP)@13 E@15 N(Y)@16 E@24 N(Z)@25 E@27");
	/* Not literals: not at the line's end, a stray byte, no "}". */
	CHECK("Z {3}x\r\nW {3\r\nV {+x}\r\n",
	    "N(Z)@1 E@8 N(W)@9 E@14 N(V)@15 E@22");
	CHECK("X {3}\rA\nY\n", "N(X)@1 E@8 N(Y)@9 E@10");
	CHECK("X {3+\r\nY\n", "N(X)@1 E@7 N(Y)@8 E@9");
	/* A literal whose octets hold a line end. */
	CHECK("X {4}\r\n\r\n\r\n\r\n", "N(X)@1 E@13");
}
END_TEST

/*
 * A store that rejects a line before its literal reads the literal's
 * octets as commands: their names are reported, wherever they may begin.
 */
START_TEST(test_shadow_lines)
{
	CHECK("XFOO {16+}\r\nUNAUTHENTICATE\r\n\r\n",
	    "N(XFOO)@4 S(UNAUTHENTICATE)@26 E@30");
	CHECK("NOOP{16+}\r\nUNAUTHENTICATE\r\n\r\n",
	    "N(NOOP)@4 S(UNAUTHENTICATE)@25 E@29");
	CHECK("PUTSCRIPT x\"\\q\" {16+}\r\nUNAUTHENTICATE\r\n\r\n",
	    "N(PUTSCRIPT)@9 S(UNAUTHENTICATE)@37 E@41");
	CHECK("XFOO {22+}\r\nAUTHENTICATE \"PLAIN\"\r\n\r\n",
	    "N(XFOO)@4 S(AUTHENTICATE)@24 E@36");
	/* After a LF inside; past the literal's end, into the line. */
	CHECK("X {5}\r\na\n  UNAUTHENTICATE\r\n",
	    "N(X)@1 S(a)@8 S(UNAUTHENTICATE)@25 E@27");
	/* An empty literal, and a line that is not a name. */
	CHECK("X {0+}\r\n\tSTARTTLS\r\n", "N(X)@1 S(STARTTLS)@17 E@19");
	CHECK("X {25}\r\n# UNAUTHENTICATE\r\nkeep;\r\n\r\n",
	    "N(X)@1 S(keep)@30 E@35");
}
END_TEST

/*
 * Any number of blanks (nothing is held back for them); SIEVE_SCAN_NAME_MAX
 * letters are a name, one more is none postern looks for: no event.
 */
START_TEST(test_shadow_bounds)
{
	char lit[256], in[300], want[160];
	size_t n = 0, start, len;

	for (int i = 0; i < 3 * SIEVE_SCAN_NAME_MAX; i++)
		lit[n++] = i % 2 ? ' ' : '\t';
	memcpy(lit + n, "STARTTLS\r\n", 10);
	n += 10;
	memset(lit + n, 'A', SIEVE_SCAN_NAME_MAX);
	n += SIEVE_SCAN_NAME_MAX;
	memcpy(lit + n, "\r\n", 2);
	n += 2;
	memset(lit + n, 'B', SIEVE_SCAN_NAME_MAX + 1);
	n += SIEVE_SCAN_NAME_MAX + 1;
	start = (size_t)snprintf(in, sizeof(in), "X {%zu}\r\n", n);
	memcpy(in + start, lit, n);
	memcpy(in + start + n, "\r\n", 2);
	len = start + n + 2;
	snprintf(want, sizeof(want), "N(X)@1 S(STARTTLS)@%zu S(%.*s)@%zu E@%zu",
	    start + 3 * SIEVE_SCAN_NAME_MAX + 8, SIEVE_SCAN_NAME_MAX, lit +
	    3 * SIEVE_SCAN_NAME_MAX + 10, start + 4 * SIEVE_SCAN_NAME_MAX + 10,
	    len);
	check_trace(in, len, want);
}
END_TEST

START_TEST(test_literal_bounds)
{
	char in[64], want[128];
	int n;

	n = snprintf(in, sizeof(in), "X {%d+}\r\n", SIEVE_SCAN_LITERAL_MAX);
	check_trace(in, (size_t)n, "N(X)@1");
	n = snprintf(in, sizeof(in), "X {%d+}\r\n", SIEVE_SCAN_LITERAL_MAX + 1);
	snprintf(want, sizeof(want), "N(X)@1 X(literal too large)@%d", n - 5);
	check_trace(in, (size_t)n, want);
	/* Past 64 bits, and leading zeros that add up to nothing. */
	CHECK("X {99999999999999999999999999}\r\n",
	    "N(X)@1 X(literal too large)@10");
	CHECK("X {18446744073709551617}\r\n", "N(X)@1 X(literal too large)@10");
	CHECK("X {0000000000000000000000000000001}\r\nab\r\nY\r\n",
	    "N(X)@1 S(ab)@39 E@41 N(Y)@42 E@44");
}
END_TEST

START_TEST(test_answers)
{
	/* The backend's side: GETSCRIPT, then a NO with a literal reason. */
	CHECK("{12}\r\nOK \"a\"\r\nNO\r\n\r\nOK\r\nNO {6}\r\nb\r\nc\r\n\r\n",
	    "N()@0 S(OK)@8 S(NO)@16 E@20 N(OK)@22 E@24 N(NO)@26 S(b)@33 S(c)@36 E@40");
	CHECK("\"IMPLEMENTATION\" \"x\"\r\n\"UNAUTHENTICATE\"\r\nOK\r\n",
	    "N()@0 E@22 N()@22 E@40 N(OK)@42 E@44");
}
END_TEST

static Suite *
sieve_filter_suite(void)
{
	Suite *s = suite_create("sieve_filter");
	TCase *tc = tcase_create("scan");

	tcase_add_test(tc, test_names);
	tcase_add_test(tc, test_line_kept_after_end);
	tcase_add_test(tc, test_name_bounds);
	tcase_add_test(tc, test_quoted);
	tcase_add_test(tc, test_literals);
	tcase_add_test(tc, test_shadow_lines);
	tcase_add_test(tc, test_shadow_bounds);
	tcase_add_test(tc, test_literal_bounds);
	tcase_add_test(tc, test_answers);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(sieve_filter_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

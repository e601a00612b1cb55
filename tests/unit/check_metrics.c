/* Unit tests for the Prometheus exposition writer and the worker counters (src/metrics.h). */
#include "autoconf.h"

#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

/* What the writer produced, NUL-terminated (malloc'd). */
static char *
text(struct buf *b)
{
	char *s = strndup(buf_head(b), buf_len(b));

	buf_free(b);
	return s;
}

START_TEST(test_family_and_samples)
{
	static const char *const names[] = { "proto", "outcome" };
	static const char *const values[] = { "imap", "ok" };
	const struct metrics_labels l = { names, values, 2 };
	struct metrics_writer w;
	struct buf b;
	char *s;

	buf_init(&b, 4096);
	metrics_writer_begin(&w, &b);
	metrics_family(&w, "postern_logins_total", "counter",
	    "Logins; a back\\slash\nand a newline.");
	metrics_sample(&w, "postern_logins_total", &l, 42);
	metrics_sample(&w, "postern_workers", NULL, 18446744073709551615ull);
	ck_assert_int_eq(metrics_writer_end(&w), 0);
	s = text(&b);
	ck_assert_str_eq(s,
	    "# HELP postern_logins_total Logins; a back\\\\slash\\nand a newline.\n"
	    "# TYPE postern_logins_total counter\n"
	    "postern_logins_total{proto=\"imap\",outcome=\"ok\"} 42\n"
	    "postern_workers 18446744073709551615\n");
	free(s);
}
END_TEST

START_TEST(test_label_escaping)
{
	static const char *const names[] = { "backend" };
	static const char *const values[] = { "a\"b\\c\nd" };
	const struct metrics_labels l = { names, values, 1 };
	struct metrics_writer w;
	struct buf b;
	char *s;

	buf_init(&b, 4096);
	metrics_writer_begin(&w, &b);
	metrics_sample(&w, "m", &l, 1);
	metrics_escape(&w, "");
	metrics_escape(&w, "\\\\");
	ck_assert_int_eq(metrics_writer_end(&w), 0);
	s = text(&b);
	ck_assert_str_eq(s, "m{backend=\"a\\\"b\\\\c\\nd\"} 1\n\\\\\\\\");
	free(s);
}
END_TEST

START_TEST(test_histogram_cumulative)
{
	static const double bounds[] = { 0.001, 0.5, 2 };
	static const uint64_t counts[] = { 3, 0, 2, 1 };	/* last: > 2 */
	struct metrics_writer w;
	struct buf b;
	char *s;

	buf_init(&b, 4096);
	metrics_writer_begin(&w, &b);
	metrics_histogram(&w, "h_seconds", bounds, counts, 3, 4.25);
	ck_assert_int_eq(metrics_writer_end(&w), 0);
	s = text(&b);
	ck_assert_str_eq(s,
	    "h_seconds_bucket{le=\"0.001\"} 3\n"
	    "h_seconds_bucket{le=\"0.5\"} 3\n"
	    "h_seconds_bucket{le=\"2\"} 5\n"
	    "h_seconds_bucket{le=\"+Inf\"} 6\n"
	    "h_seconds_sum 4.250000\n"
	    "h_seconds_count 6\n");
	free(s);
}
END_TEST

START_TEST(test_observe_lookup_buckets)
{
	struct worker_metrics *m = calloc(1, sizeof(*m));
	uint64_t total = 0;

	ck_assert_ptr_nonnull(m);
	metrics_observe_lookup(m, 0);				/* first bucket */
	metrics_observe_lookup(m, 100);				/* 0.0001: le is inclusive */
	metrics_observe_lookup(m, 101);				/* next one */
	metrics_observe_lookup(m, 5000000);			/* the last bound */
	metrics_observe_lookup(m, 60000000);			/* +Inf */
	ck_assert_uint_eq(m->lookup_buckets[0], 2);
	ck_assert_uint_eq(m->lookup_buckets[1], 1);
	ck_assert_uint_eq(m->lookup_buckets[METRICS_LATENCY_BUCKETS - 1], 1);
	ck_assert_uint_eq(m->lookup_buckets[METRICS_LATENCY_BUCKETS], 1);
	for (size_t i = 0; i <= METRICS_LATENCY_BUCKETS; i++)
		total += m->lookup_buckets[i];
	ck_assert_uint_eq(total, 5);
	ck_assert_uint_eq(m->lookup_count, 5);
	ck_assert_uint_eq(m->lookup_us, 65000201);
	free(m);
}
END_TEST

/* The backend table holds METRICS_BACKENDS_MAX names; the rest is "other". */
START_TEST(test_backend_table_bound)
{
	struct worker_metrics *m = calloc(1, sizeof(*m));
	char name[32];

	ck_assert_ptr_nonnull(m);
	for (int i = 0; i < METRICS_BACKENDS_MAX + 5; i++) {
		snprintf(name, sizeof(name), "store%d", i);
		metrics_connect_failed(m, name);
	}
	metrics_connect_failed(m, "store0");
	ck_assert_uint_eq(m->nconnect_failures, METRICS_BACKENDS_MAX);
	ck_assert_uint_eq(m->connect_failures_other, 5);
	ck_assert_str_eq(m->connect_failures[0].name, "store0");
	ck_assert_uint_eq(m->connect_failures[0].n, 2);
	free(m);
}
END_TEST

/* A full buffer makes the writer fail, and stay failed. */
START_TEST(test_full_buffer)
{
	struct metrics_writer w;
	struct buf b;

	buf_init(&b, 40);
	metrics_writer_begin(&w, &b);
	metrics_family(&w, "postern_something_rather_long_total", "counter",
	    "More than forty bytes of help text, surely.");
	ck_assert_int_eq(metrics_writer_end(&w), -1);
	metrics_sample(&w, "x", NULL, 1);
	ck_assert_int_eq(metrics_writer_end(&w), -1);
	ck_assert_uint_le(buf_len(&b), 40);
	buf_free(&b);
}
END_TEST

static Suite *
metrics_suite(void)
{
	Suite *s = suite_create("metrics");
	TCase *tc = tcase_create("metrics");

	tcase_add_test(tc, test_family_and_samples);
	tcase_add_test(tc, test_label_escaping);
	tcase_add_test(tc, test_histogram_cumulative);
	tcase_add_test(tc, test_observe_lookup_buckets);
	tcase_add_test(tc, test_backend_table_bound);
	tcase_add_test(tc, test_full_buffer);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(metrics_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

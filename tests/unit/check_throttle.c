/* Unit tests for the failed-login throttle tables (src/throttle.h). */
#include "autoconf.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "throttle.h"

static const struct throttle_params params = { 300000, 100000 };

static unsigned
refuse(struct throttle *t, const char *key, uint64_t now)
{
	return throttle_fail(t, key, strlen(key), now, &params);
}

START_TEST(test_growth_and_cap)
{
	struct throttle *t = throttle_new();

	ck_assert_uint_eq(refuse(t, "alice", 1000), 0);
	ck_assert_uint_eq(refuse(t, "alice", 2000), 1);
	ck_assert_uint_eq(refuse(t, "alice", 3000), 2);
	ck_assert_uint_eq(refuse(t, "bob", 3000), 0);
	ck_assert_uint_eq(throttle_count(t, "alice", 5, 3000, &params), 3);
	ck_assert_uint_eq(throttle_size(t), 2);

	/* None for the first refusal, then doubling from the base, capped. */
	ck_assert_uint_eq(throttle_delay_ms(0, 2000, 30000), 0);
	ck_assert_uint_eq(throttle_delay_ms(1, 2000, 30000), 2000);
	ck_assert_uint_eq(throttle_delay_ms(2, 2000, 30000), 4000);
	ck_assert_uint_eq(throttle_delay_ms(3, 2000, 30000), 8000);
	ck_assert_uint_eq(throttle_delay_ms(4, 2000, 30000), 16000);
	ck_assert_uint_eq(throttle_delay_ms(5, 2000, 30000), 30000);
	ck_assert_uint_eq(throttle_delay_ms(4000000000u, 2000, 30000), 30000);
	ck_assert_uint_eq(throttle_delay_ms(3, 1000, 500), 500);
	ck_assert_uint_eq(throttle_delay_ms(7, 0, 30000), 0);
	throttle_free(&t);
	ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_reset_on_success)
{
	struct throttle *t = throttle_new();

	refuse(t, "alice", 1000);
	refuse(t, "alice", 1000);
	throttle_reset(t, "alice", 5);
	ck_assert_uint_eq(throttle_count(t, "alice", 5, 1000, &params), 0);
	ck_assert_uint_eq(refuse(t, "alice", 1000), 0);
	throttle_reset(t, "nobody", 6);		/* unknown: harmless */
	ck_assert_uint_eq(throttle_size(t), 1);
	throttle_free(&t);
}
END_TEST

START_TEST(test_decay)
{
	struct throttle *t = throttle_new();

	refuse(t, "alice", 1000);
	refuse(t, "alice", 2000);
	/* Still inside the window from the latest refusal. */
	ck_assert_uint_eq(throttle_count(t, "alice", 5, 2000 + 299999, &params), 2);
	ck_assert_uint_eq(throttle_count(t, "alice", 5, 2000 + 300000, &params), 0);
	ck_assert_uint_eq(throttle_size(t), 0);
	refuse(t, "bob", 1000);
	ck_assert_uint_eq(refuse(t, "bob", 400000), 0);
	/* A clock a little behind another worker's is not expiry. */
	ck_assert_uint_eq(refuse(t, "bob", 399000), 1);
	throttle_free(&t);
}
END_TEST

START_TEST(test_eviction_bound)
{
	const struct throttle_params small = { 300000, 160 };
	struct throttle *t = throttle_new();
	char key[32];

	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "10.0.%d.%d", i / 256, i % 256);
		throttle_fail(t, key, strlen(key), 1000 + i, &small);
	}
	/* At most max_entries / THROTTLE_SHARDS + 1 a shard. */
	ck_assert_uint_le(throttle_size(t), 160 + THROTTLE_SHARDS);
	/* The most recent keys survive, the oldest are gone. */
	ck_assert_uint_eq(throttle_count(t, "10.0.390.159", 12, 200000, &small), 1);
	ck_assert_uint_eq(throttle_count(t, "10.0.0.0", 8, 200000, &small), 0);

	/* max_entries = 0 records nothing. */
	const struct throttle_params none = { 300000, 0 };
	ck_assert_uint_eq(throttle_fail(t, "x", 1, 1, &none), 0);
	ck_assert_uint_eq(throttle_fail(t, "x", 1, 1, &none), 0);

	/* Overlong keys are cut, not refused. */
	char big[THROTTLE_KEY_MAX * 2];
	memset(big, 'a', sizeof(big));
	throttle_fail(t, big, sizeof(big), 300000, &small);
	ck_assert_uint_eq(throttle_fail(t, big, sizeof(big), 300000, &small), 1);
	throttle_free(&t);
}
END_TEST

#define THREADS		8
#define PER_THREAD	20000

static struct throttle *shared;

static void *
hammer(void *arg)
{
	unsigned id = (unsigned)(uintptr_t)arg;
	char key[32];

	for (unsigned i = 0; i < PER_THREAD; i++) {
		/* One key every thread shares, and keys of its own. */
		throttle_fail(shared, "common", 6, 1000, &params);
		snprintf(key, sizeof(key), "t%u-%u", id, i % 500);
		throttle_fail(shared, key, strlen(key), 1000, &params);
		if (i % 7 == 0)
			throttle_reset(shared, key, strlen(key));
	}
	return NULL;
}

START_TEST(test_threads)
{
	pthread_t th[THREADS];

	shared = throttle_new();
	for (uintptr_t i = 0; i < THREADS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, hammer, (void *)i), 0);
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	/* Every refusal of the shared key was counted, none lost. */
	ck_assert_uint_eq(throttle_count(shared, "common", 6, 1000, &params),
	    THREADS * PER_THREAD);
	ck_assert_uint_le(throttle_size(shared), 1 + THREADS * 500);
	throttle_free(&shared);
}
END_TEST

static Suite *
throttle_suite(void)
{
	Suite *s = suite_create("throttle");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_growth_and_cap);
	tcase_add_test(tc, test_reset_on_success);
	tcase_add_test(tc, test_decay);
	tcase_add_test(tc, test_eviction_bound);
	tcase_add_test(tc, test_threads);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(throttle_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

/* Unit tests for the resolver (src/resolve.c): cache, sharing, bounds. */
#include "autoconf.h"

#include <check.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "loop.h"
#include "resolve.h"

static _Atomic unsigned lookups;
static unsigned delay_ms;

/* A slow name service: every name is 192.0.2.1, after delay_ms. */
static int
slow_lookup(const char *host, const char *port, const struct addrinfo *hints,
    struct addrinfo **res)
{
	struct addrinfo h = { .ai_socktype = SOCK_STREAM,
	    .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV };
	struct timespec ts = { 0, (long)delay_ms * 1000000L };

	atomic_fetch_add(&lookups, 1);
	nanosleep(&ts, NULL);
	if (strncmp(host, "bad", 3) == 0)
		return EAI_NONAME;
	return getaddrinfo("192.0.2.1", port, &h, res);
}

struct tally {
	struct loop	*loop;
	unsigned	 ok, failed, want;
	char		 last_error[128];
};

static void
done(void *arg, struct addr_list *addrs, const char *error)
{
	struct tally *t = arg;

	if (addrs != NULL) {
		ck_assert_uint_eq(addrs->n, 1);
		t->ok++;
		free(addrs);
	} else {
		t->failed++;
		snprintf(t->last_error, sizeof(t->last_error), "%s", error);
	}
	if (t->ok + t->failed == t->want)
		loop_stop(t->loop);
}

static void
run(struct tally *t)
{
	ck_assert_int_eq(loop_run(t->loop), 0);
}

START_TEST(test_one_lookup_per_name_then_cached)
{
	struct tally t = { loop_new(), 0, 0, 200, "" };
	struct resolve_request *r;

	delay_ms = 100;
	atomic_store(&lookups, 0);
	resolve_set_lookup(slow_lookup);
	ck_assert_int_eq(resolve_init(2), 0);
	for (int i = 0; i < 200; i++)
		(void)resolve_start(t.loop, "store.example", 143, done, &t);
	run(&t);
	ck_assert_uint_eq(t.ok, 200);
	/* Two hundred logins, one lookup. */
	ck_assert_uint_eq(atomic_load(&lookups), 1);
	/* From the cache now, answered through the loop all the same. */
	t.want = 201;
	(void)resolve_start(t.loop, "store.example", 143, done, &t);
	run(&t);
	ck_assert_uint_eq(atomic_load(&lookups), 1);
	/* A failure is remembered too, and another port is another name. */
	t.want = 203;
	(void)resolve_start(t.loop, "bad.example", 143, done, &t);
	(void)resolve_start(t.loop, "bad.example", 143, done, &t);
	run(&t);
	ck_assert_uint_eq(t.failed, 2);
	ck_assert_uint_eq(atomic_load(&lookups), 2);
	t.want = 204;
	(void)resolve_start(t.loop, "store.example", 110, done, &t);
	run(&t);
	ck_assert_uint_eq(atomic_load(&lookups), 3);
	/* A cancelled request is never answered. */
	r = resolve_start(t.loop, "other.example", 143, done, &t);
	resolve_cancel(&r);
	ck_assert_ptr_null(r);
	resolve_shutdown();
	loop_run_pending(t.loop);
	ck_assert_uint_eq(t.ok + t.failed, 204);
	loop_free(&t.loop);
	resolve_set_lookup(NULL);
}
END_TEST

START_TEST(test_queue_bound_sheds_at_once)
{
	struct tally t = { loop_new(), 0, 0, RESOLVE_QUEUE_MAX * 2, "" };
	char name[64];

	delay_ms = 300;
	atomic_store(&lookups, 0);
	resolve_set_lookup(slow_lookup);
	ck_assert_int_eq(resolve_init(1), 0);
	for (int i = 0; i < RESOLVE_QUEUE_MAX * 2; i++) {
		snprintf(name, sizeof(name), "host%d.example", i);
		(void)resolve_start(t.loop, name, 143, done, &t);
	}
	run(&t);
	/* Threads grew to the cap; the queue held its bound, the rest failed. */
	ck_assert_uint_gt(t.failed, 0);
	ck_assert_uint_ge(t.ok, RESOLVE_QUEUE_MAX);
	ck_assert_str_eq(t.last_error, "resolver overloaded: too many names waiting");
	ck_assert_uint_le(atomic_load(&lookups), RESOLVE_QUEUE_MAX + RESOLVE_THREADS_MAX);
	resolve_shutdown();
	loop_run_pending(t.loop);
	loop_free(&t.loop);
	resolve_set_lookup(NULL);
}
END_TEST

START_TEST(test_numeric)
{
	struct addr_list *a = NULL;

	ck_assert_int_eq(resolve_numeric("127.0.0.1", 143, &a), 0);
	ck_assert_uint_eq(a->n, 1);
	ck_assert_int_eq(a->a[0].u.sa.sa_family, AF_INET);
	free(a);
	ck_assert_int_eq(resolve_numeric("::1", 143, &a), 0);
	ck_assert_int_eq(a->a[0].u.sa.sa_family, AF_INET6);
	free(a);
	a = NULL;
	ck_assert_int_eq(resolve_numeric("store.example", 143, &a), -1);
	ck_assert_ptr_null(a);
}
END_TEST

static Suite *
resolve_suite(void)
{
	Suite *s = suite_create("resolve");
	TCase *tc = tcase_create("resolve");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_one_lookup_per_name_then_cached);
	tcase_add_test(tc, test_queue_bound_sheds_at_once);
	tcase_add_test(tc, test_numeric);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(resolve_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

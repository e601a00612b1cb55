/* Unit tests for routes and the route cache (src/route.h). */
#include "autoconf.h"

#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

static struct route *
route_to(const char *host)
{
	struct route *r = route_new();
	const char *error;

	ck_assert_int_eq(route_add_host(r, host, &error), 0);
	return r;
}

START_TEST(test_route_host_forms)
{
	struct route *r = route_new();
	const char *error;

	ck_assert_int_eq(route_add_host(r, "store-a.example.net", &error), 0);
	ck_assert_int_eq(route_add_host(r, "store-b:1143", &error), 0);
	ck_assert_int_eq(route_add_host(r, "dsmith@store-c:2143", &error), 0);
	ck_assert_int_eq(route_add_host(r, "[::1]:143", &error), 0);
	ck_assert_uint_eq(r->nhosts, 4);
	ck_assert_str_eq(r->hosts[0].host, "store-a.example.net");
	ck_assert_uint_eq(r->hosts[0].port, 0);
	ck_assert_uint_eq(r->hosts[1].port, 1143);
	ck_assert_str_eq(r->backend_user, "dsmith");
	ck_assert_str_eq(r->hosts[3].host, "::1");
	ck_assert_int_eq(route_add_host(r, "@host", &error), -1);
	ck_assert_int_eq(route_add_host(r, "host:0", &error), -1);
	ck_assert_int_eq(route_add_host(r, "a b", &error), -1);
	route_unref(&r);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_explicit_user_wins)
{
	struct route *r = route_new();
	const char *error;

	ck_assert_int_eq(route_set_backend_user(r, "c.jones", &error), 0);
	ck_assert_int_eq(route_add_host(r, "other@h:1", &error), 0);
	ck_assert_str_eq(r->backend_user, "c.jones");
	route_unref(&r);
}
END_TEST

START_TEST(test_hit_miss_negative_and_expiry)
{
	struct route_cache *c = route_cache_new(100, 100, 60, 10, 0);
	struct route *r = route_to("a"), *got = NULL;

	ck_assert_int_eq(route_cache_get(c, "imap:alice", 1000, &got), ROUTE_CACHE_MISS);
	route_cache_put(c, "imap:alice", r, 1000);
	route_unref(&r);
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 2000, &got), ROUTE_CACHE_HIT);
	ck_assert_str_eq(got->hosts[0].host, "a");
	route_unref(&got);
	/* ttl 60 s: expired at 61 s, but still there to serve stale. */
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 61001, &got), ROUTE_CACHE_MISS);
	got = route_cache_get_stale(c, "imap:alice", 61001);
	ck_assert_ptr_nonnull(got);
	route_unref(&got);
	route_cache_put(c, "imap:nobody", NULL, 1000);
	ck_assert_int_eq(route_cache_get(c, "imap:nobody", 5000, &got),
	    ROUTE_CACHE_HIT_NEGATIVE);
	ck_assert_int_eq(route_cache_get(c, "imap:nobody", 11001, &got), ROUTE_CACHE_MISS);
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:nobody", 11001));
	/* Keys are exact: protocol is part of them. */
	ck_assert_int_eq(route_cache_get(c, "pop3:alice", 2000, &got), ROUTE_CACHE_MISS);
	route_cache_free(&c);
	ck_assert_ptr_null(c);
}
END_TEST

START_TEST(test_stale_max)
{
	/* ttl 60 s, stale_max 30 s: served stale until 90 s after the put. */
	struct route_cache *c = route_cache_new(100, 100, 60, 10, 30);
	struct route *r = route_to("a"), *got = NULL;

	route_cache_put(c, "imap:alice", r, 1000);
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 60999, &got), ROUTE_CACHE_HIT);
	route_unref(&got);
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 61000, &got), ROUTE_CACHE_MISS);
	/* At exactly ttl + stale_max the route is still served... */
	got = route_cache_get_stale(c, "imap:alice", 91000);
	ck_assert_ptr_nonnull(got);
	route_unref(&got);
	ck_assert_uint_eq(route_cache_size(c), 1);
	/* ...a millisecond later it is not, and it is gone. */
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:alice", 91001));
	ck_assert_uint_eq(route_cache_size(c), 0);
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:alice", 91000));

	/* A fresh lookup that meets such a route drops it as well. */
	route_cache_put(c, "imap:bob", r, 1000);
	ck_assert_int_eq(route_cache_get(c, "imap:bob", 91000, &got), ROUTE_CACHE_MISS);
	ck_assert_uint_eq(route_cache_size(c), 1);
	ck_assert_int_eq(route_cache_get(c, "imap:bob", 91001, &got), ROUTE_CACHE_MISS);
	ck_assert_uint_eq(route_cache_size(c), 0);
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:bob", 91000));

	/* Storing a route again starts its clock again. */
	route_cache_put(c, "imap:alice", r, 200000);
	got = route_cache_get_stale(c, "imap:alice", 290000);
	ck_assert_ptr_nonnull(got);
	route_unref(&got);
	route_cache_free(&c);

	/* stale_max 0: no limit. */
	c = route_cache_new(100, 100, 60, 10, 0);
	route_cache_put(c, "imap:alice", r, 1000);
	got = route_cache_get_stale(c, "imap:alice", UINT64_MAX);
	ck_assert_ptr_nonnull(got);
	route_unref(&got);
	ck_assert_uint_eq(route_cache_size(c), 1);
	route_cache_free(&c);

	/* The largest configurable values do not overflow. */
	c = route_cache_new(100, 100, 86400 * 7, 10, 86400 * 7);
	route_cache_put(c, "imap:alice", r, 1000);
	got = route_cache_get_stale(c, "imap:alice", 1000 + 2ULL * 86400 * 7 * 1000);
	ck_assert_ptr_nonnull(got);
	route_unref(&got);
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:alice",
	    1001 + 2ULL * 86400 * 7 * 1000));
	route_cache_free(&c);
	route_unref(&r);
}
END_TEST

START_TEST(test_replace_keeps_one_entry)
{
	struct route_cache *c = route_cache_new(100, 100, 60, 10, 0);
	struct route *a = route_to("a"), *b = route_to("b"), *got = NULL;

	route_cache_put(c, "k", a, 0);
	route_cache_put(c, "k", b, 0);
	ck_assert_uint_eq(route_cache_size(c), 1);
	ck_assert_int_eq(route_cache_get(c, "k", 1, &got), ROUTE_CACHE_HIT);
	ck_assert_str_eq(got->hosts[0].host, "b");
	route_unref(&got);
	route_unref(&a);
	route_unref(&b);
	route_cache_free(&c);
}
END_TEST

START_TEST(test_bound_evicts_least_recent)
{
	struct route_cache *c = route_cache_new(160, 160, 60, 10, 0);
	struct route *r = route_to("h"), *got = NULL;
	char key[32];

	for (int i = 0; i < 5000; i++) {
		snprintf(key, sizeof(key), "imap:user%d", i);
		route_cache_put(c, key, r, 0);
		/* Keep user0 recently used: it must survive. */
		ck_assert_int_eq(route_cache_get(c, "imap:user0", 1, &got), ROUTE_CACHE_HIT);
		route_unref(&got);
	}
	ck_assert_uint_le(route_cache_size(c), 160 + 16);
	ck_assert_int_eq(route_cache_get(c, "imap:user1", 1, &got), ROUTE_CACHE_MISS);
	route_unref(&r);
	route_cache_free(&c);
}
END_TEST

START_TEST(test_negative_flood_keeps_routes)
{
	/*
	 * 100 routes with room for 1,000 (shards are bounded one by one),
	 * 32 for unknown users: then a flood of made-up names.
	 */
	struct route_cache *c = route_cache_new(1000, 32, 60, 10, 0);
	struct route *r = route_to("h"), *got = NULL;
	char key[32];

	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "imap:real%d", i);
		route_cache_put(c, key, r, 0);
	}
	for (int i = 0; i < 100000; i++) {
		snprintf(key, sizeof(key), "imap:fake%d", i);
		route_cache_put(c, key, NULL, 0);
	}
	/* Every route is still there, stale or not, for serve_stale. */
	for (int i = 0; i < 100; i++) {
		snprintf(key, sizeof(key), "imap:real%d", i);
		got = route_cache_get_stale(c, key, 1);
		ck_assert_ptr_nonnull(got);
		route_unref(&got);
	}
	ck_assert_uint_le(route_cache_size(c), 100 + 32 + 16);
	/* The newest unknown users are remembered, the oldest gone. */
	ck_assert_int_eq(route_cache_get(c, "imap:fake99999", 1, &got),
	    ROUTE_CACHE_HIT_NEGATIVE);
	ck_assert_int_eq(route_cache_get(c, "imap:fake0", 1, &got), ROUTE_CACHE_MISS);
	/* negative_entries = 0: unknown users are not cached at all. */
	route_cache_free(&c);
	c = route_cache_new(100, 0, 60, 10, 0);
	route_cache_put(c, "imap:fake", NULL, 0);
	ck_assert_int_eq(route_cache_get(c, "imap:fake", 1, &got), ROUTE_CACHE_MISS);
	/* A route that turns unknown moves lists and back. */
	route_cache_put(c, "imap:x", r, 0);
	route_cache_free(&c);
	c = route_cache_new(100, 10, 60, 10, 0);
	route_cache_put(c, "imap:x", r, 0);
	route_cache_put(c, "imap:x", NULL, 0);
	ck_assert_int_eq(route_cache_get(c, "imap:x", 1, &got), ROUTE_CACHE_HIT_NEGATIVE);
	route_cache_put(c, "imap:x", r, 0);
	ck_assert_int_eq(route_cache_get(c, "imap:x", 1, &got), ROUTE_CACHE_HIT);
	route_unref(&got);
	ck_assert_uint_eq(route_cache_size(c), 1);
	route_unref(&r);
	route_cache_free(&c);
}
END_TEST

static void *
hammer(void *arg)
{
	struct route_cache *c = arg;
	struct route *r = route_to("h"), *got;
	char key[32];

	for (int i = 0; i < 20000; i++) {
		snprintf(key, sizeof(key), "imap:u%d", i % 500);
		if (i % 3 == 0)
			route_cache_put(c, key, r, (uint64_t)i);
		else if (route_cache_get(c, key, (uint64_t)i, &got) == ROUTE_CACHE_HIT)
			route_unref(&got);
	}
	route_unref(&r);
	return NULL;
}

START_TEST(test_threads)
{
	struct route_cache *c = route_cache_new(200, 200, 60, 10, 0);
	pthread_t t[4];

	for (int i = 0; i < 4; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer, c), 0);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_le(route_cache_size(c), 200 + 16);
	route_cache_free(&c);
}
END_TEST

START_TEST(test_remove_and_clear)
{
	struct route_cache *c = route_cache_new(100, 100, 60, 10, 0);
	struct route *r = route_to("a"), *got = NULL;
	char key[32];

	route_cache_put(c, "imap:alice", r, 0);
	route_cache_put(c, "pop3:alice", r, 0);
	route_cache_put(c, "imap:nobody", NULL, 0);
	ck_assert_uint_eq(route_cache_size(c), 3);
	ck_assert(route_cache_remove(c, "imap:alice"));
	ck_assert(!route_cache_remove(c, "imap:alice"));
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 1, &got), ROUTE_CACHE_MISS);
	ck_assert_ptr_null(route_cache_get_stale(c, "imap:alice", 1));
	/* The other protocol's entry stays. */
	ck_assert_int_eq(route_cache_get(c, "pop3:alice", 1, &got), ROUTE_CACHE_HIT);
	route_unref(&got);
	/* Negative entries go too. */
	ck_assert(route_cache_remove(c, "imap:nobody"));
	ck_assert_int_eq(route_cache_get(c, "imap:nobody", 1, &got), ROUTE_CACHE_MISS);
	ck_assert_uint_eq(route_cache_size(c), 1);
	/* A removed key can be stored again. */
	route_cache_put(c, "imap:alice", r, 0);
	ck_assert_uint_eq(route_cache_size(c), 2);

	for (int i = 0; i < 50; i++) {
		snprintf(key, sizeof(key), "imap:user%d", i);
		route_cache_put(c, key, i % 2 ? r : NULL, 0);
	}
	ck_assert_uint_eq(route_cache_size(c), 52);
	ck_assert_uint_eq(route_cache_clear(c), 52);
	ck_assert_uint_eq(route_cache_size(c), 0);
	ck_assert_uint_eq(route_cache_clear(c), 0);
	ck_assert_int_eq(route_cache_get(c, "pop3:alice", 1, &got), ROUTE_CACHE_MISS);
	/* Still usable, bounds intact. */
	route_cache_put(c, "imap:alice", r, 0);
	ck_assert_int_eq(route_cache_get(c, "imap:alice", 1, &got), ROUTE_CACHE_HIT);
	route_unref(&got);
	/* The cache held its own references: r is still ours to drop. */
	ck_assert_uint_eq(r->refs, 2);
	route_unref(&r);
	route_cache_free(&c);
}
END_TEST

static Suite *
route_suite(void)
{
	Suite *s = suite_create("route");
	TCase *tc = tcase_create("route");

	tcase_add_test(tc, test_route_host_forms);
	tcase_add_test(tc, test_explicit_user_wins);
	tcase_add_test(tc, test_hit_miss_negative_and_expiry);
	tcase_add_test(tc, test_stale_max);
	tcase_add_test(tc, test_replace_keeps_one_entry);
	tcase_add_test(tc, test_bound_evicts_least_recent);
	tcase_add_test(tc, test_negative_flood_keeps_routes);
	tcase_add_test(tc, test_threads);
	tcase_add_test(tc, test_remove_and_clear);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

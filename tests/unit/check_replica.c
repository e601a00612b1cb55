/* Unit tests for the replica's route table (src/replica.h). */
#include "autoconf.h"

#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replica.h"

static struct route *
route_to(const char *host)
{
	struct route *r = route_new();
	const char *error;

	ck_assert_int_eq(route_add_host(r, host, &error), 0);
	return r;
}

static void
put(struct replica *r, const char *uuid, const char *k1, const char *k2,
    const char *host, struct replica_moved **moved)
{
	const char *keys[2] = { k1, k2 };

	replica_put(r, uuid, strlen(uuid), keys, k2 != NULL ? 2 : 1,
	    host != NULL ? DIR_OK : DIR_NOT_FOUND,
	    host != NULL ? route_to(host) : NULL, "test", moved);
}

/* The host a login routes to, "-" for not found, "?" for tempfail. */
static const char *
where(struct replica *r, const char *login)
{
	static char out[128];
	struct route *route;
	char detail[256];

	switch (replica_lookup(r, login, &route, detail, sizeof(detail))) {
	case DIR_OK:
		snprintf(out, sizeof(out), "%s", route->hosts[0].host);
		route_unref(&route);
		return out;
	case DIR_NOT_FOUND:
		ck_assert_ptr_null(route);
		return "-";
	case DIR_TEMPFAIL:
		ck_assert_ptr_null(route);
		return "?";
	}
	return "!";
}

static size_t
count(struct replica_moved *m)
{
	size_t n = 0;

	for (; m != NULL; m = m->next)
		n++;
	return n;
}

START_TEST(test_add_lookup_case)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;

	put(r, "u1", "alice", "Alice@Example.NET", "store-a", &moved);
	ck_assert_ptr_null(moved);		/* new logins are not moves */
	ck_assert_str_eq(where(r, "alice"), "store-a");
	ck_assert_str_eq(where(r, "ALICE@example.net"), "store-a");
	ck_assert_str_eq(where(r, "bob"), "-");
	ck_assert_uint_eq(replica_entries(r), 1);
	ck_assert_uint_eq(replica_keys(r), 2);
	replica_free(&r);
	ck_assert_ptr_null(r);
}
END_TEST

START_TEST(test_modify_moves)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;

	put(r, "u1", "alice", "alice@example.net", "store-a", &moved);
	put(r, "u1", "alice", "alice@example.net", "store-a", &moved);
	ck_assert_ptr_null(moved);		/* same hosts: no move */
	put(r, "u1", "alice", "alice@example.net", "store-b", &moved);
	ck_assert_uint_eq(count(moved), 2);
	ck_assert_str_eq(moved->route->hosts[0].host, "store-b");
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "alice"), "store-b");
	/*
	 * The entry loses its host and its mail value: alice is known but has
	 * no route, the address is gone.  Both were moves to nowhere.
	 */
	put(r, "u1", "alice", NULL, NULL, &moved);
	ck_assert_uint_eq(count(moved), 2);
	ck_assert_ptr_null(moved->route);
	ck_assert_ptr_null(moved->next->route);
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "alice"), "-");
	ck_assert_uint_eq(replica_keys(r), 1);
	replica_free(&r);
}
END_TEST

START_TEST(test_rename_changes_keys)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;

	put(r, "u1", "alice", "alice@example.net", "store-a", &moved);
	/* modrdn and a new mail value: the old keys go, the new ones come. */
	put(r, "u1", "alicia", "alicia@example.net", "store-a", &moved);
	ck_assert_uint_eq(count(moved), 2);
	for (struct replica_moved *m = moved; m != NULL; m = m->next)
		ck_assert_ptr_null(m->route);
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "alice"), "-");
	ck_assert_str_eq(where(r, "alicia@example.net"), "store-a");
	ck_assert_uint_eq(replica_entries(r), 1);
	ck_assert_uint_eq(replica_keys(r), 2);
	replica_free(&r);
}
END_TEST

START_TEST(test_delete)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;

	put(r, "u1", "alice", NULL, "store-a", &moved);
	put(r, "u2", "bob", NULL, "store-b", &moved);
	replica_delete(r, "u1", 2, &moved);
	ck_assert_uint_eq(count(moved), 1);
	ck_assert_str_eq(moved->login, "alice");
	ck_assert_ptr_null(moved->route);
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "alice"), "-");
	ck_assert_str_eq(where(r, "bob"), "store-b");
	replica_delete(r, "nope", 4, &moved);	/* unknown: nothing happens */
	ck_assert_ptr_null(moved);
	ck_assert_uint_eq(replica_entries(r), 1);
	replica_free(&r);
}
END_TEST

START_TEST(test_collision_is_ambiguous)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;

	put(r, "u1", "alice", "shared@example.net", "store-a", &moved);
	put(r, "u2", "bob", "Shared@example.net", "store-b", &moved);
	ck_assert_uint_eq(count(moved), 1);	/* shared@ lost its one route */
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "shared@example.net"), "?");
	ck_assert_str_eq(where(r, "alice"), "store-a");
	/* One claim withdrawn: the other answers again. */
	put(r, "u2", "bob", NULL, "store-b", &moved);
	ck_assert_str_eq(where(r, "shared@example.net"), "store-a");
	replica_delete(r, "u1", 2, &moved);
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "shared@example.net"), "-");
	replica_free(&r);
}
END_TEST

START_TEST(test_full_refresh_replaces)
{
	struct replica *r = replica_new();
	struct replica_moved *moved = NULL;
	char uuid[16], login[32];

	for (int i = 0; i < 1000; i++) {
		snprintf(uuid, sizeof(uuid), "u%d", i);
		snprintf(login, sizeof(login), "user%d", i);
		put(r, uuid, login, NULL, "store-a", &moved);
	}
	ck_assert_uint_eq(replica_entries(r), 1000);
	/* A refresh that sees the even entries (one of them moved) only. */
	replica_refresh_begin(r);
	for (int i = 0; i < 1000; i += 2) {
		snprintf(uuid, sizeof(uuid), "u%d", i);
		snprintf(login, sizeof(login), "user%d", i);
		if (i == 10)
			put(r, uuid, login, NULL, "store-b", &moved);
		else
			replica_present(r, uuid, strlen(uuid));
	}
	ck_assert_uint_eq(count(moved), 1);
	replica_moved_free(&moved);
	ck_assert_str_eq(where(r, "user1"), "store-a");	/* until the end */
	replica_sweep(r, &moved);
	ck_assert_uint_eq(count(moved), 500);
	replica_moved_free(&moved);
	ck_assert_uint_eq(replica_entries(r), 500);
	ck_assert_uint_eq(replica_keys(r), 500);
	ck_assert_str_eq(where(r, "user1"), "-");
	ck_assert_str_eq(where(r, "user2"), "store-a");
	ck_assert_str_eq(where(r, "user10"), "store-b");
	/* A second sweep in the same refresh changes nothing. */
	replica_sweep(r, &moved);
	ck_assert_ptr_null(moved);
	replica_free(&r);
}
END_TEST

START_TEST(test_same_hosts)
{
	struct route *a = route_to("h:1"), *b = route_to("h:1"), *c = route_to("h:2");

	ck_assert(route_same_hosts(a, b));
	ck_assert(!route_same_hosts(a, c));
	route_unref(&a);
	route_unref(&b);
	route_unref(&c);
}
END_TEST

struct race {
	struct replica	*r;
	atomic_bool	 done;
};

static void *
reader(void *arg)
{
	struct race *rc = arg;
	unsigned long hits = 0;

	while (!atomic_load(&rc->done)) {
		struct route *route;
		char detail[128];

		if (replica_lookup(rc->r, "alice", &route, detail,
		    sizeof(detail)) == DIR_OK) {
			ck_assert_uint_eq(route->nhosts, 1);
			route_unref(&route);
			hits++;
		}
	}
	return (void *)hits;
}

/* Readers never see a torn answer while the writer moves the user. */
START_TEST(test_readers_while_writing)
{
	struct race rc = { .r = replica_new() };
	struct replica_moved *moved = NULL;
	pthread_t t[4];

	atomic_init(&rc.done, false);
	for (int i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, reader, &rc);
	for (int i = 0; i < 2000; i++) {
		put(rc.r, "u1", "alice", "alice@example.net",
		    i % 2 ? "store-a" : "store-b", &moved);
		replica_moved_free(&moved);
		if (i % 100 == 0)
			replica_delete(rc.r, "u1", 2, &moved);
		replica_moved_free(&moved);
	}
	atomic_store(&rc.done, true);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	replica_free(&rc.r);
}
END_TEST

int
main(void)
{
	Suite *s = suite_create("replica");
	TCase *tc = tcase_create("table");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_add_lookup_case);
	tcase_add_test(tc, test_modify_moves);
	tcase_add_test(tc, test_rename_changes_keys);
	tcase_add_test(tc, test_delete);
	tcase_add_test(tc, test_collision_is_ambiguous);
	tcase_add_test(tc, test_full_refresh_replaces);
	tcase_add_test(tc, test_same_hosts);
	tcase_add_test(tc, test_readers_while_writing);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? 0 : 1;
}

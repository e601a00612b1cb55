/* Unit tests for the resolver (src/resolve.c): cache, sharing, bounds. */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <stdbool.h>
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

/*
 * A reverse name service: 192.0.2.1 is imap.example.net, 192.0.2.2 has no
 * name, 192.0.2.3 fails for now, 192.0.2.4 has a name too long to keep.
 */
static int
slow_reverse(const struct sockaddr *sa, socklen_t salen, char *host,
    socklen_t hostlen, char *serv, socklen_t servlen, int flags)
{
	const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;
	struct timespec ts = { 0, (long)delay_ms * 1000000L };
	unsigned last = ntohl(in->sin_addr.s_addr) & 0xff;

	(void)salen;
	(void)serv;
	(void)servlen;
	ck_assert_int_eq(flags & NI_NAMEREQD, NI_NAMEREQD);
	atomic_fetch_add(&lookups, 1);
	nanosleep(&ts, NULL);
	switch (last) {
	case 1:
		snprintf(host, hostlen, "imap.example.net");
		return 0;
	case 2:
		return EAI_NONAME;
	case 3:
		return EAI_AGAIN;
	default:
		memset(host, 'a', 300);
		host[300] = '\0';
		return 0;
	}
}

struct names {
	struct loop	*loop;
	unsigned	 n, want;
	char		 name[4][RESOLVE_NAME_MAX];
	bool		 failed[4];
};

static void
named(void *arg, const char *name, const char *error)
{
	struct names *t = arg;

	ck_assert_uint_lt(t->n, 4);
	if (name != NULL)
		snprintf(t->name[t->n], sizeof(t->name[0]), "%s", name);
	else {
		t->failed[t->n] = true;
		ck_assert_uint_gt(strlen(error), 0);
	}
	if (++t->n == t->want)
		loop_stop(t->loop);
}

static struct resolve_request *
name_of(struct names *t, const char *ip)
{
	struct sockaddr_in in = { .sin_family = AF_INET, .sin_port = htons(993) };

	ck_assert_int_eq(inet_pton(AF_INET, ip, &in.sin_addr), 1);
	return resolve_name_start(t->loop, (struct sockaddr *)&in, named, t);
}

START_TEST(test_reverse)
{
	struct names t = { .loop = loop_new(), .want = 1 };
	struct sockaddr_in6 in6 = { .sin6_family = AF_INET6 };

	delay_ms = 20;
	atomic_store(&lookups, 0);
	resolve_set_reverse(slow_reverse);
	ck_assert_int_eq(resolve_init(1), 0);
	(void)name_of(&t, "192.0.2.1");
	ck_assert_int_eq(loop_run(t.loop), 0);
	ck_assert_str_eq(t.name[0], "imap.example.net");
	/* No name is an answer (""), DNS trouble is not (NULL). */
	for (unsigned i = 2; i <= 4; i++) {
		char ip[16];

		snprintf(ip, sizeof(ip), "192.0.2.%u", i);
		t.want = i;
		(void)name_of(&t, ip);
		ck_assert_int_eq(loop_run(t.loop), 0);
	}
	ck_assert_str_eq(t.name[1], "");
	ck_assert(!t.failed[1]);
	ck_assert(t.failed[2]);
	ck_assert_str_eq(t.name[3], "");	/* past RESOLVE_NAME_MAX */
	ck_assert(!t.failed[3]);
	ck_assert_uint_eq(atomic_load(&lookups), 4);
	/* Cached by address, and apart from forward names. */
	t.n = 0;
	t.want = 1;
	(void)name_of(&t, "192.0.2.1");
	ck_assert_int_eq(loop_run(t.loop), 0);
	ck_assert_str_eq(t.name[0], "imap.example.net");
	ck_assert_uint_eq(atomic_load(&lookups), 4);
	/* Not an IP address: no name, without a lookup. */
	t.n = 0;
	in6.sin6_family = AF_UNIX;
	(void)resolve_name_start(t.loop, (struct sockaddr *)&in6, named, &t);
	ck_assert_int_eq(loop_run(t.loop), 0);
	ck_assert_str_eq(t.name[0], "");
	ck_assert_uint_eq(atomic_load(&lookups), 4);
	resolve_shutdown();
	loop_run_pending(t.loop);
	loop_free(&t.loop);
	resolve_set_reverse(NULL);
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
	tcase_add_test(tc, test_reverse);
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

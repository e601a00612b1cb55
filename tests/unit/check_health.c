/* Unit tests for backend health: the state machine and the table (src/health.h). */
#include "autoconf.h"

#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"

START_TEST(test_fsm_down_after_threshold)
{
	struct health_fsm f = { HEALTH_UP, 0, 0 };

	ck_assert(health_fsm_usable(&f));
	ck_assert(health_fsm_step(&f, HEALTH_EV_FAIL, 3, 100));
	ck_assert_int_eq(f.state, HEALTH_SUSPECT);
	ck_assert_uint_eq(f.failures, 1);
	ck_assert(health_fsm_usable(&f));
	ck_assert(!health_fsm_step(&f, HEALTH_EV_FAIL, 3, 200));
	ck_assert_int_eq(f.state, HEALTH_SUSPECT);
	ck_assert(health_fsm_step(&f, HEALTH_EV_FAIL, 3, 300));
	ck_assert_int_eq(f.state, HEALTH_DOWN);
	ck_assert_uint_eq(f.failures, 3);
	ck_assert_uint_eq(f.since_ms, 300);
	ck_assert(!health_fsm_usable(&f));
	/* More failures while down change nothing, not even the clock. */
	ck_assert(!health_fsm_step(&f, HEALTH_EV_FAIL, 3, 400));
	ck_assert_int_eq(f.state, HEALTH_DOWN);
	ck_assert_uint_eq(f.since_ms, 300);
}
END_TEST

START_TEST(test_fsm_threshold_one)
{
	struct health_fsm f = { HEALTH_UP, 0, 0 };

	ck_assert(health_fsm_step(&f, HEALTH_EV_FAIL, 1, 5));
	ck_assert_int_eq(f.state, HEALTH_DOWN);
}
END_TEST

START_TEST(test_fsm_success_resets)
{
	struct health_fsm f = { HEALTH_UP, 0, 0 };

	health_fsm_step(&f, HEALTH_EV_FAIL, 3, 1);
	health_fsm_step(&f, HEALTH_EV_FAIL, 3, 2);
	ck_assert(health_fsm_step(&f, HEALTH_EV_OK, 3, 3));
	ck_assert_int_eq(f.state, HEALTH_UP);
	ck_assert_uint_eq(f.failures, 0);
	/* The count starts again: two more are not enough. */
	health_fsm_step(&f, HEALTH_EV_FAIL, 3, 4);
	health_fsm_step(&f, HEALTH_EV_FAIL, 3, 5);
	ck_assert_int_eq(f.state, HEALTH_SUSPECT);
	ck_assert(!health_fsm_step(&(struct health_fsm){ HEALTH_UP, 0, 0 },
	    HEALTH_EV_OK, 3, 6));
}
END_TEST

START_TEST(test_fsm_claim_and_trial)
{
	struct health_fsm f = { HEALTH_UP, 0, 0 };

	ck_assert(!health_fsm_claim(&f, 1000, 5000));	/* up: nothing to try */
	health_fsm_step(&f, HEALTH_EV_FAIL, 1, 1000);
	ck_assert(!health_fsm_claim(&f, 1000, 1999));	/* too early */
	ck_assert_int_eq(f.state, HEALTH_DOWN);
	ck_assert(health_fsm_claim(&f, 1000, 2000));
	ck_assert_int_eq(f.state, HEALTH_PROBING);
	ck_assert(!health_fsm_usable(&f));
	ck_assert(!health_fsm_claim(&f, 1000, 2500));	/* one trial at a time */
	/* The trial fails: down again, for another down_time. */
	ck_assert(health_fsm_step(&f, HEALTH_EV_FAIL, 1, 2600));
	ck_assert_int_eq(f.state, HEALTH_DOWN);
	ck_assert(!health_fsm_claim(&f, 1000, 3000));
	ck_assert(health_fsm_claim(&f, 1000, 3600));
	/* It succeeds: up, count cleared. */
	ck_assert(health_fsm_step(&f, HEALTH_EV_OK, 1, 3700));
	ck_assert_int_eq(f.state, HEALTH_UP);
	ck_assert_uint_eq(f.failures, 0);
}
END_TEST

START_TEST(test_fsm_silent_trial_reclaimed)
{
	struct health_fsm f = { HEALTH_DOWN, 3, 0 };

	ck_assert(health_fsm_claim(&f, 1000, 1000));
	/* Whoever had the trial vanished without a word. */
	ck_assert(!health_fsm_claim(&f, 1000, 1500));
	ck_assert(health_fsm_claim(&f, 1000, 2000));
	ck_assert_int_eq(f.state, HEALTH_PROBING);
}
END_TEST

START_TEST(test_fsm_failure_count_saturates)
{
	struct health_fsm f = { HEALTH_SUSPECT, UINT32_MAX - 1, 0 };

	health_fsm_step(&f, HEALTH_EV_FAIL, 100, 1);
	health_fsm_step(&f, HEALTH_EV_FAIL, 100, 2);
	ck_assert_uint_eq(f.failures, UINT32_MAX);
	ck_assert_int_eq(f.state, HEALTH_DOWN);
}
END_TEST

START_TEST(test_state_names)
{
	ck_assert_str_eq(health_state_name(HEALTH_UP), "up");
	ck_assert_str_eq(health_state_name(HEALTH_SUSPECT), "suspect");
	ck_assert_str_eq(health_state_name(HEALTH_DOWN), "down");
	ck_assert_str_eq(health_state_name(HEALTH_PROBING), "probing");
	ck_assert_str_eq(health_state_name(HEALTH_STATE_COUNT), "?");
}
END_TEST

static struct sockaddr_in
addr4(const char *ip, uint16_t port)
{
	struct sockaddr_in in;

	memset(&in, 0, sizeof(in));
	in.sin_family = AF_INET;
	in.sin_port = htons(port);
	inet_pton(AF_INET, ip, &in.sin_addr);
	return in;
}

#define SA(x)	((const struct sockaddr *)(const void *)&(x))

struct seen {
	unsigned	 n;
	struct health_info last;
};

static void
count_cb(const struct health_info *info, void *arg)
{
	struct seen *s = arg;

	s->n++;
	s->last = *info;
}

START_TEST(test_table_report_and_skip)
{
	struct health *h = health_new(8);
	struct sockaddr_in a = addr4("192.0.2.1", 143), b = addr4("192.0.2.1", 993);
	struct seen seen = { 0 };

	/* Successes alone make no entry. */
	health_report(h, SA(a), PROTO_IMAP, "store", NULL, 2, 1000, 10);
	ck_assert_uint_eq(health_size(h), 0);
	ck_assert(health_usable(h, SA(a), false, 1000, 10));

	health_report(h, SA(a), PROTO_IMAP, "store", "refused", 2, 1000, 20);
	ck_assert_uint_eq(health_size(h), 1);
	ck_assert(health_usable(h, SA(a), false, 1000, 20));
	health_report(h, SA(a), PROTO_IMAP, "store", "refused", 2, 1000, 30);
	ck_assert(!health_usable(h, SA(a), false, 1000, 40));
	/* Another port of the same host is another address. */
	ck_assert(health_usable(h, SA(b), false, 1000, 40));

	health_foreach(h, count_cb, &seen);
	ck_assert_uint_eq(seen.n, 1);
	ck_assert_str_eq(seen.last.address, "192.0.2.1:143");
	ck_assert_str_eq(seen.last.name, "store");
	ck_assert_str_eq(seen.last.last_error, "refused");
	ck_assert_int_eq(seen.last.state, HEALTH_DOWN);
	ck_assert_uint_eq(seen.last.failures, 2);
	ck_assert_uint_eq(seen.last.failures_total, 2);
	ck_assert_uint_eq(seen.last.skipped, 1);
	ck_assert_uint_eq(seen.last.transitions, 2);

	/* Without probes, one caller past down_time gets the trial. */
	ck_assert(!health_usable(h, SA(a), true, 1000, 500));
	ck_assert(health_usable(h, SA(a), true, 1000, 1030));
	ck_assert(!health_usable(h, SA(a), true, 1000, 1031));
	health_report(h, SA(a), PROTO_IMAP, "store", NULL, 2, 1000, 1040);
	ck_assert(health_usable(h, SA(a), false, 1000, 1050));
	seen.n = 0;
	health_foreach(h, count_cb, &seen);
	ck_assert_int_eq(seen.last.state, HEALTH_UP);
	ck_assert_uint_eq(seen.last.failures, 0);
	health_free(&h);
	ck_assert_ptr_null(h);
}
END_TEST

START_TEST(test_table_full)
{
	struct health *h = health_new(2);
	struct sockaddr_in a[3] = { addr4("192.0.2.1", 143),
	    addr4("192.0.2.2", 143), addr4("192.0.2.3", 143) };

	for (int i = 0; i < 3; i++)
		health_report(h, SA(a[i]), PROTO_IMAP, "s", "refused", 1, 1000, 1);
	ck_assert_uint_eq(health_size(h), 2);
	ck_assert_uint_eq(health_cap(h), 2);
	ck_assert(!health_usable(h, SA(a[0]), false, 1000, 2));
	ck_assert(!health_usable(h, SA(a[1]), false, 1000, 2));
	/* Past the cap: not tracked, so always tried. */
	ck_assert(health_usable(h, SA(a[2]), false, 1000, 2));
	health_free(&h);
}
END_TEST

START_TEST(test_table_register_config)
{
	struct config *c = NULL;
	struct health *h = health_new(16);
	struct seen seen = { 0 };
	char err[512];
	int rc = config_load_string("t.conf",
	    "listen = ( { address = \"127.0.0.1:1143\"; protocol = \"imap\"; } );\n"
	    "backends = ( { name = \"store\"; addresses = \"192.0.2.1 "
	    "192.0.2.2 mail.example\"; imap_port = 1993; } );\n",
	    &c, err, sizeof(err));

	ck_assert_msg(rc == 0, "%s", err);
	health_register_config(h, c);
	/* Numeric addresses only, IMAP only (no POP3 listener). */
	ck_assert_uint_eq(health_size(h), 2);
	health_foreach(h, count_cb, &seen);
	ck_assert_uint_eq(seen.n, 2);
	ck_assert_str_eq(seen.last.address, "192.0.2.2:1993");
	ck_assert_str_eq(seen.last.name, "store");
	ck_assert(seen.last.named);
	ck_assert_int_eq(seen.last.state, HEALTH_UP);
	/* Again (a reload): nothing new. */
	health_register_config(h, c);
	ck_assert_uint_eq(health_size(h), 2);
	config_free(&c);
	health_free(&h);
}
END_TEST

struct hammer {
	struct health	*h;
	unsigned	 id;
};

static void *
hammer_main(void *arg)
{
	struct hammer *hm = arg;
	struct seen seen = { 0 };

	for (unsigned i = 0; i < 20000; i++) {
		struct sockaddr_in a = addr4("192.0.2.9", (uint16_t)(1000 + i % 40));

		if (i % 3 == hm->id % 3)
			health_report(hm->h, SA(a), PROTO_POP3, "x", "reset", 2,
			    10, i);
		else if (i % 3 == 1)
			health_report(hm->h, SA(a), PROTO_POP3, "x", NULL, 2, 10, i);
		(void)health_usable(hm->h, SA(a), i % 2 == 0, 10, i);
		if (i % 1000 == 0)
			health_foreach(hm->h, count_cb, &seen);
	}
	return NULL;
}

/* Threads report, check and list at once: the table stays bounded and whole. */
START_TEST(test_table_threads)
{
	struct health *h = health_new(32);
	struct hammer hm[4];
	pthread_t t[4];
	struct seen seen = { 0 };

	for (unsigned i = 0; i < 4; i++) {
		hm[i].h = h;
		hm[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, hammer_main, &hm[i]), 0);
	}
	for (unsigned i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	ck_assert_uint_eq(health_size(h), 32);
	health_foreach(h, count_cb, &seen);
	ck_assert_uint_eq(seen.n, 32);
	health_free(&h);
}
END_TEST

static Suite *
health_suite(void)
{
	Suite *s = suite_create("health");
	TCase *tc = tcase_create("fsm");
	TCase *tt = tcase_create("table");

	tcase_add_test(tc, test_fsm_down_after_threshold);
	tcase_add_test(tc, test_fsm_threshold_one);
	tcase_add_test(tc, test_fsm_success_resets);
	tcase_add_test(tc, test_fsm_claim_and_trial);
	tcase_add_test(tc, test_fsm_silent_trial_reclaimed);
	tcase_add_test(tc, test_fsm_failure_count_saturates);
	tcase_add_test(tc, test_state_names);
	suite_add_tcase(s, tc);
	tcase_set_timeout(tt, 60);
	tcase_add_test(tt, test_table_report_and_skip);
	tcase_add_test(tt, test_table_full);
	tcase_add_test(tt, test_table_register_config);
	tcase_add_test(tt, test_table_threads);
	suite_add_tcase(s, tt);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(health_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

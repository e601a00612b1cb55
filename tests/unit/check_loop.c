/* Unit tests for the event loop: timers, watches, cross-thread posts (src/loop.h). */
#include "autoconf.h"

#include <check.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "loop.h"

/* A guard timer ends a test that would otherwise hang. */
static bool guard_fired;

static void
guard_cb(struct timer *t)
{
	guard_fired = true;
	loop_stop(t->arg);
}

static void
arm_guard(struct loop *loop, struct timer *guard)
{
	guard_fired = false;
	timer_init(guard, guard_cb, loop);
	loop_timer_in(loop, guard, 2000);
}

/* Timers. */

struct tinfo {
	struct loop	*loop;
	struct timer	 t;
	int		 id;
	bool		 last;
	uint64_t	 fired_at;
};

static int fire_log[64];
static int nfired;

static void
timer_log_cb(struct timer *t)
{
	struct tinfo *ti = t->arg;

	ck_assert(!timer_pending(t));	/* idle again when it runs */
	ck_assert_int_lt(nfired, 64);
	fire_log[nfired++] = ti->id;
	ti->fired_at = loop_now(ti->loop);
	if (ti->last)
		loop_stop(ti->loop);
}

START_TEST(test_timers_fire_in_order)
{
	/* Deadlines 0, 5, ..., 50 ms, armed in a scrambled order. */
	static const int order[] = { 7, 2, 10, 0, 5, 9, 1, 4, 8, 3, 6 };
	struct loop *loop = loop_new();
	struct tinfo ti[11];
	struct timer guard;
	uint64_t start;

	ck_assert_ptr_nonnull(loop);
	start = loop_now(loop);
	nfired = 0;
	for (size_t k = 0; k < 11; k++) {
		int i = order[k];

		ti[i].loop = loop;
		ti[i].id = i;
		ti[i].last = i == 10;
		timer_init(&ti[i].t, timer_log_cb, &ti[i]);
		ck_assert(!timer_pending(&ti[i].t));
		loop_timer_in(loop, &ti[i].t, (uint64_t)i * 5);
		ck_assert(timer_pending(&ti[i].t));
		ck_assert_uint_eq(ti[i].t.when, start + (uint64_t)i * 5);
	}
	arm_guard(loop, &guard);
	ck_assert_int_eq(loop_run(loop), 0);
	ck_assert(!guard_fired);
	ck_assert_int_eq(nfired, 11);
	for (int i = 0; i < 11; i++) {
		ck_assert_int_eq(fire_log[i], i);
		/* Never early. */
		ck_assert_uint_ge(ti[i].fired_at, ti[i].t.when);
	}
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
	ck_assert_ptr_null(loop);
}
END_TEST

START_TEST(test_timer_at_absolute)
{
	struct loop *loop = loop_new();
	struct tinfo a = { .loop = loop, .id = 1 }, b = { .loop = loop, .id = 2, .last = true };
	struct timer guard;

	nfired = 0;
	timer_init(&a.t, timer_log_cb, &a);
	timer_init(&b.t, timer_log_cb, &b);
	loop_timer_at(loop, &b.t, loop_now(loop) + 20);
	loop_timer_at(loop, &a.t, 0);		/* already past: fires first */
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(nfired, 2);
	ck_assert_int_eq(fire_log[0], 1);
	ck_assert_int_eq(fire_log[1], 2);
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

START_TEST(test_timer_cancel)
{
	struct loop *loop = loop_new();
	struct tinfo ti[6];
	struct timer guard;

	nfired = 0;
	for (int i = 0; i < 6; i++) {
		ti[i].loop = loop;
		ti[i].id = i;
		ti[i].last = i == 5;
		timer_init(&ti[i].t, timer_log_cb, &ti[i]);
		loop_timer_in(loop, &ti[i].t, 5 + (uint64_t)i * 5);
	}
	/* ti[0] is the heap top; ti[3] sits in the middle. */
	loop_timer_cancel(loop, &ti[0].t);
	loop_timer_cancel(loop, &ti[3].t);
	ck_assert(!timer_pending(&ti[0].t));
	ck_assert(!timer_pending(&ti[3].t));
	ck_assert(timer_pending(&ti[1].t));
	/* Cancelling twice, or an idle timer, is a no-op. */
	loop_timer_cancel(loop, &ti[3].t);
	{
		struct timer idle;

		timer_init(&idle, timer_log_cb, NULL);
		loop_timer_cancel(loop, &idle);
		ck_assert(!timer_pending(&idle));
	}
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(nfired, 4);
	ck_assert_int_eq(fire_log[0], 1);
	ck_assert_int_eq(fire_log[1], 2);
	ck_assert_int_eq(fire_log[2], 4);
	ck_assert_int_eq(fire_log[3], 5);
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

START_TEST(test_timer_cancel_many)
{
	/* Cancel every third of 60 timers: the heap must stay ordered. */
	struct loop *loop = loop_new();
	struct tinfo ti[60];
	struct timer guard;
	int expect = 0;

	nfired = 0;
	for (int i = 0; i < 60; i++) {
		int k = (i * 37) % 60;	/* arm in a scrambled order */

		ti[k].loop = loop;
		ti[k].id = k;
		ti[k].last = k == 59;
		timer_init(&ti[k].t, timer_log_cb, &ti[k]);
		loop_timer_at(loop, &ti[k].t, loop_now(loop) +
		    (k == 59 ? 40 : (uint64_t)k / 2));
	}
	for (int k = 0; k < 59; k += 3)
		loop_timer_cancel(loop, &ti[k].t);
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(nfired, 40);
	for (int i = 0; i < nfired; i++) {
		ck_assert_int_ne(fire_log[i] % 3, 0);
		if (i > 0)	/* deadlines never go backwards */
			ck_assert_uint_le(ti[fire_log[i - 1]].t.when, ti[fire_log[i]].t.when);
		expect++;
	}
	ck_assert_int_eq(expect, 40);
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

START_TEST(test_timer_rearm_moves)
{
	struct loop *loop = loop_new();
	struct tinfo a = { .loop = loop, .id = 1 }, b = { .loop = loop, .id = 2 },
	    c = { .loop = loop, .id = 3, .last = true };
	struct timer guard;

	nfired = 0;
	timer_init(&a.t, timer_log_cb, &a);
	timer_init(&b.t, timer_log_cb, &b);
	timer_init(&c.t, timer_log_cb, &c);
	loop_timer_in(loop, &a.t, 5);
	loop_timer_in(loop, &b.t, 10);
	loop_timer_in(loop, &c.t, 30);
	loop_timer_in(loop, &a.t, 20);	/* re-arming a pending timer moves it */
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(nfired, 3);
	ck_assert_int_eq(fire_log[0], 2);
	ck_assert_int_eq(fire_log[1], 1);
	ck_assert_int_eq(fire_log[2], 3);
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

/* Two timers due at once, each cancelling the other: exactly one runs. */
struct pair {
	struct loop	*loop;
	struct timer	 t[2];
	int		 runs[2];
};

static void
pair_cb(struct timer *t)
{
	struct pair *p = t->arg;
	int me = t == &p->t[0] ? 0 : 1;

	p->runs[me]++;
	loop_timer_cancel(p->loop, &p->t[1 - me]);
	loop_stop(p->loop);
}

START_TEST(test_timer_cancel_from_callback)
{
	struct loop *loop = loop_new();
	struct pair p = { .loop = loop };
	struct timer guard;

	timer_init(&p.t[0], pair_cb, &p);
	timer_init(&p.t[1], pair_cb, &p);
	loop_timer_in(loop, &p.t[0], 5);
	loop_timer_in(loop, &p.t[1], 5);
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(p.runs[0] + p.runs[1], 1);
	ck_assert(!timer_pending(&p.t[0]));
	ck_assert(!timer_pending(&p.t[1]));
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

/* A timer that re-arms itself from its callback. */
struct periodic {
	struct loop	*loop;
	struct timer	 t;
	int		 n;
};

static void
periodic_cb(struct timer *t)
{
	struct periodic *p = t->arg;

	if (++p->n == 3)
		loop_stop(p->loop);
	else
		loop_timer_in(p->loop, t, 2);
}

START_TEST(test_timer_rearm_from_callback)
{
	struct loop *loop = loop_new();
	struct periodic p = { .loop = loop };
	struct timer guard;

	timer_init(&p.t, periodic_cb, &p);
	loop_timer_in(loop, &p.t, 1);
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(p.n, 3);
	ck_assert(!timer_pending(&p.t));
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

START_TEST(test_free_with_pending_timers)
{
	/* Freeing a loop with timers still armed must not leak or crash. */
	struct loop *loop = loop_new();
	struct timer t[100];

	for (int i = 0; i < 100; i++) {
		timer_init(&t[i], timer_log_cb, NULL);
		loop_timer_in(loop, &t[i], 1000 + (uint64_t)i);
	}
	loop_free(&loop);
	loop_free(&loop);	/* NULL: no-op */
}
END_TEST

/* Cross-thread posts. */

struct post_ctx {
	struct loop	*loop;
	pthread_t	 loop_thread;
	int		 ran;
	int		 on_loop_thread;
	int		 want;
};

static void
post_task(void *arg)
{
	struct post_ctx *c = arg;

	c->ran++;
	if (pthread_equal(pthread_self(), c->loop_thread))
		c->on_loop_thread++;
	if (c->ran == c->want)
		loop_stop(c->loop);
}

static void *
poster_thread(void *arg)
{
	struct post_ctx *c = arg;

	usleep(10 * 1000);	/* let the loop block in epoll_wait first */
	ck_assert_int_eq(loop_post(c->loop, post_task, c), 0);
	return NULL;
}

START_TEST(test_post_from_thread)
{
	struct post_ctx c = { .want = 1 };
	struct timer guard;
	pthread_t th;

	c.loop = loop_new();
	c.loop_thread = pthread_self();
	arm_guard(c.loop, &guard);
	ck_assert_int_eq(pthread_create(&th, NULL, poster_thread, &c), 0);
	ck_assert_int_eq(loop_run(c.loop), 0);
	ck_assert_int_eq(pthread_join(th, NULL), 0);
	ck_assert(!guard_fired);
	ck_assert_int_eq(c.ran, 1);
	ck_assert_int_eq(c.on_loop_thread, 1);
	loop_timer_cancel(c.loop, &guard);
	loop_free(&c.loop);
}
END_TEST

#define POSTERS		4
#define POSTS_EACH	500

static void *
many_poster_thread(void *arg)
{
	struct post_ctx *c = arg;

	for (int i = 0; i < POSTS_EACH; i++)
		if (loop_post(c->loop, post_task, c) != 0)
			abort();
	return NULL;
}

START_TEST(test_post_many_threads)
{
	struct post_ctx c = { .want = POSTERS * POSTS_EACH };
	struct timer guard;
	pthread_t th[POSTERS];

	c.loop = loop_new();
	c.loop_thread = pthread_self();
	arm_guard(c.loop, &guard);
	for (int i = 0; i < POSTERS; i++)
		ck_assert_int_eq(pthread_create(&th[i], NULL, many_poster_thread, &c), 0);
	ck_assert_int_eq(loop_run(c.loop), 0);
	for (int i = 0; i < POSTERS; i++)
		ck_assert_int_eq(pthread_join(th[i], NULL), 0);
	ck_assert(!guard_fired);
	ck_assert_int_eq(c.ran, POSTERS * POSTS_EACH);
	ck_assert_int_eq(c.on_loop_thread, POSTERS * POSTS_EACH);
	loop_timer_cancel(c.loop, &guard);
	loop_free(&c.loop);
}
END_TEST

START_TEST(test_post_before_run)
{
	/* Posted before the loop runs: runs once it does. */
	struct post_ctx c = { .want = 2 };
	struct timer guard;

	c.loop = loop_new();
	c.loop_thread = pthread_self();
	ck_assert_int_eq(loop_post(c.loop, post_task, &c), 0);
	ck_assert_int_eq(loop_post(c.loop, post_task, &c), 0);
	ck_assert_int_eq(c.ran, 0);
	arm_guard(c.loop, &guard);
	loop_run(c.loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(c.ran, 2);
	loop_timer_cancel(c.loop, &guard);
	loop_free(&c.loop);
}
END_TEST

static void
post_from_timer_cb(struct timer *t)
{
	struct post_ctx *c = t->arg;

	ck_assert_int_eq(loop_post(c->loop, post_task, c), 0);
	ck_assert_int_eq(c->ran, 0);	/* queued, not run inline */
}

START_TEST(test_post_from_loop_thread)
{
	struct post_ctx c = { .want = 1 };
	struct timer t, guard;

	c.loop = loop_new();
	c.loop_thread = pthread_self();
	timer_init(&t, post_from_timer_cb, &c);
	loop_timer_in(c.loop, &t, 1);
	arm_guard(c.loop, &guard);
	loop_run(c.loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(c.ran, 1);
	loop_timer_cancel(c.loop, &guard);
	loop_free(&c.loop);
}
END_TEST

START_TEST(test_free_with_posted_tasks)
{
	struct post_ctx c = { .want = 99 };

	c.loop = loop_new();
	loop_post(c.loop, post_task, &c);
	loop_free(&c.loop);	/* never run, but freed */
	ck_assert_int_eq(c.ran, 0);
}
END_TEST

START_TEST(test_run_pending)
{
	struct post_ctx c = { .want = 99 };

	c.loop = loop_new();
	c.loop_thread = pthread_self();
	loop_post(c.loop, post_task, &c);
	loop_post(c.loop, post_task, &c);
	loop_run_pending(c.loop);
	ck_assert_int_eq(c.ran, 2);
	loop_free(&c.loop);
}
END_TEST

/* Watches. */

struct pipe_watch {
	struct loop	*loop;
	struct watch	 w;
	int		 fds[2];
	int		 calls;
	uint32_t	 events;
	char		 got[8];
};

static void
pipe_read_cb(struct watch *w, uint32_t events)
{
	struct pipe_watch *pw = w->arg;
	ssize_t n;

	pw->calls++;
	pw->events = events;
	n = read(w->fd, pw->got, sizeof(pw->got) - 1);
	ck_assert_int_gt(n, 0);
	pw->got[n] = '\0';
	loop_stop(pw->loop);
}

START_TEST(test_watch_pipe)
{
	struct pipe_watch pw = { 0 };
	struct timer guard;

	pw.loop = loop_new();
	ck_assert_int_eq(pipe2(pw.fds, O_NONBLOCK | O_CLOEXEC), 0);
	watch_init(&pw.w, pw.fds[0], pipe_read_cb, &pw);
	ck_assert(!pw.w.added);
	ck_assert_int_eq(loop_watch(pw.loop, &pw.w, EPOLLIN), 0);
	ck_assert(pw.w.added);
	ck_assert_uint_eq(pw.w.events, EPOLLIN);
	ck_assert_int_eq(loop_watch(pw.loop, &pw.w, EPOLLIN), 0);	/* same: fine */
	ck_assert_int_eq(write(pw.fds[1], "ping", 4), 4);
	arm_guard(pw.loop, &guard);
	loop_run(pw.loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(pw.calls, 1);
	ck_assert(pw.events & EPOLLIN);
	ck_assert_str_eq(pw.got, "ping");

	/* Interest 0: data waiting, but no callback. */
	ck_assert_int_eq(loop_watch(pw.loop, &pw.w, 0), 0);
	ck_assert_int_eq(write(pw.fds[1], "x", 1), 1);
	guard_fired = false;
	loop_timer_in(pw.loop, &guard, 30);
	loop_run(pw.loop);
	ck_assert(guard_fired);
	ck_assert_int_eq(pw.calls, 1);

	loop_unwatch(pw.loop, &pw.w);
	ck_assert(!pw.w.added);
	loop_unwatch(pw.loop, &pw.w);	/* twice: no-op */
	close(pw.fds[0]);
	close(pw.fds[1]);
	loop_free(&pw.loop);
}
END_TEST

START_TEST(test_watch_bad_fd)
{
	struct loop *loop = loop_new();
	struct watch w;

	watch_init(&w, -1, pipe_read_cb, NULL);
	ck_assert_int_eq(loop_watch(loop, &w, EPOLLIN), -1);
	ck_assert(!w.added);
	loop_free(&loop);
}
END_TEST

/*
 * Two readable pipes whose callbacks each unwatch and free the other one.
 * Both events come back from the same epoll_wait; whichever is dispatched
 * first must void the other's event, which would otherwise be dispatched to
 * freed memory (ASan reports that).
 */
struct victim {
	struct loop	*loop;
	struct watch	 w;
	int		 fds[2];
	struct victim	*other;
	int		 *calls;
	bool		 freed;
};

static struct victim *survivor;

static void
victim_cb(struct watch *w, uint32_t events)
{
	struct victim *v = w->arg, *o = v->other;

	(*v->calls)++;
	survivor = v;
	if (o != NULL) {
		loop_unwatch(v->loop, &o->w);
		close(o->fds[0]);
		close(o->fds[1]);
		o->freed = true;
		v->other = NULL;
		free(o);
	}
	loop_stop(v->loop);
}

START_TEST(test_unwatch_during_dispatch)
{
	struct loop *loop = loop_new();
	struct victim *a = calloc(1, sizeof(*a)), *b = calloc(1, sizeof(*b));
	struct timer guard;
	int calls = 0;

	ck_assert_ptr_nonnull(a);
	ck_assert_ptr_nonnull(b);
	a->loop = b->loop = loop;
	a->other = b;
	b->other = a;
	a->calls = b->calls = &calls;
	ck_assert_int_eq(pipe2(a->fds, O_NONBLOCK | O_CLOEXEC), 0);
	ck_assert_int_eq(pipe2(b->fds, O_NONBLOCK | O_CLOEXEC), 0);
	watch_init(&a->w, a->fds[0], victim_cb, a);
	watch_init(&b->w, b->fds[0], victim_cb, b);
	ck_assert_int_eq(loop_watch(loop, &a->w, EPOLLIN), 0);
	ck_assert_int_eq(loop_watch(loop, &b->w, EPOLLIN), 0);
	ck_assert_int_eq(write(a->fds[1], "a", 1), 1);
	ck_assert_int_eq(write(b->fds[1], "b", 1), 1);
	survivor = NULL;
	arm_guard(loop, &guard);
	loop_run(loop);
	ck_assert(!guard_fired);
	ck_assert_int_eq(calls, 1);
	ck_assert_ptr_nonnull(survivor);

	loop_unwatch(loop, &survivor->w);
	close(survivor->fds[0]);
	close(survivor->fds[1]);
	free(survivor);
	loop_timer_cancel(loop, &guard);
	loop_free(&loop);
}
END_TEST

/* A callback that unwatches itself is not called again. */
struct self_unwatch {
	struct loop	*loop;
	struct watch	 w;
	int		 calls;
};

static void
self_unwatch_cb(struct watch *w, uint32_t events)
{
	struct self_unwatch *s = w->arg;

	s->calls++;
	loop_unwatch(s->loop, w);
}

START_TEST(test_unwatch_self)
{
	struct self_unwatch s = { 0 };
	struct timer guard;
	int fds[2];

	s.loop = loop_new();
	ck_assert_int_eq(pipe2(fds, O_NONBLOCK | O_CLOEXEC), 0);
	watch_init(&s.w, fds[0], self_unwatch_cb, &s);
	ck_assert_int_eq(loop_watch(s.loop, &s.w, EPOLLIN), 0);
	ck_assert_int_eq(write(fds[1], "x", 1), 1);	/* never read */
	guard_fired = false;
	timer_init(&guard, guard_cb, s.loop);
	loop_timer_in(s.loop, &guard, 30);
	loop_run(s.loop);
	ck_assert(guard_fired);
	ck_assert_int_eq(s.calls, 1);	/* level-triggered, but unwatched */
	close(fds[0]);
	close(fds[1]);
	loop_free(&s.loop);
}
END_TEST

START_TEST(test_now_advances)
{
	struct loop *loop = loop_new();
	struct timer t;
	uint64_t before = loop_now(loop);

	guard_fired = false;
	timer_init(&t, guard_cb, loop);
	loop_timer_in(loop, &t, 20);
	loop_run(loop);
	ck_assert(guard_fired);
	ck_assert_uint_ge(loop_now(loop), before + 20);
	loop_free(&loop);
}
END_TEST

static Suite *
loop_suite(void)
{
	Suite *s = suite_create("loop");
	TCase *tc;

	tc = tcase_create("timers");
	tcase_add_test(tc, test_timers_fire_in_order);
	tcase_add_test(tc, test_timer_at_absolute);
	tcase_add_test(tc, test_timer_cancel);
	tcase_add_test(tc, test_timer_cancel_many);
	tcase_add_test(tc, test_timer_rearm_moves);
	tcase_add_test(tc, test_timer_cancel_from_callback);
	tcase_add_test(tc, test_timer_rearm_from_callback);
	tcase_add_test(tc, test_free_with_pending_timers);
	tcase_add_test(tc, test_now_advances);
	suite_add_tcase(s, tc);

	tc = tcase_create("post");
	tcase_add_test(tc, test_post_from_thread);
	tcase_add_test(tc, test_post_many_threads);
	tcase_add_test(tc, test_post_before_run);
	tcase_add_test(tc, test_post_from_loop_thread);
	tcase_add_test(tc, test_free_with_posted_tasks);
	tcase_add_test(tc, test_run_pending);
	suite_add_tcase(s, tc);

	tc = tcase_create("watch");
	tcase_add_test(tc, test_watch_pipe);
	tcase_add_test(tc, test_watch_bad_fd);
	tcase_add_test(tc, test_unwatch_during_dispatch);
	tcase_add_test(tc, test_unwatch_self);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr = srunner_create(loop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}

#include "autoconf.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "log.h"
#include "loop.h"
#include "util.h"

#define LOOP_EVENTS	256

struct task {
	task_cb		*fn;
	void		*arg;
	struct task	*next;
};

struct loop {
	int		 epfd;
	int		 evfd;
	struct watch	 evwatch;
	pthread_t	 thread;
	_Atomic bool	 thread_set;	/* thread is valid (written once, before) */
	bool		 stop;
	uint64_t	 now;

	struct timer	**heap;
	size_t		 nheap, heapcap;

	/* Events of the round being dispatched, so loop_unwatch can void them. */
	struct epoll_event *events;
	int		 nevents, cur;

	pthread_mutex_t	 mtx;		/* guards posted and woken */
	struct task	*posted, **posted_tail;
	bool		 woken;
	struct task	*local, **local_tail;
};

static void	loop_drain_posted(struct watch *w, uint32_t events);

struct loop *
loop_new(void)
{
	struct loop *loop = xcalloc(1, sizeof(*loop));

	if ((loop->epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		free(loop);
		return NULL;
	}
	if ((loop->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) < 0) {
		close(loop->epfd);
		free(loop);
		return NULL;
	}
	loop->events = xcalloc(LOOP_EVENTS, sizeof(*loop->events));
	pthread_mutex_init(&loop->mtx, NULL);
	loop->posted_tail = &loop->posted;
	loop->local_tail = &loop->local;
	loop->now = clock_ms();
	watch_init(&loop->evwatch, loop->evfd, loop_drain_posted, loop);
	if (loop_watch(loop, &loop->evwatch, EPOLLIN) < 0) {
		loop_free(&loop);
		return NULL;
	}
	return loop;
}

static void
task_list_free(struct task *t)
{
	while (t != NULL) {
		struct task *next = t->next;

		free(t);
		t = next;
	}
}

void
loop_free(struct loop **loopp)
{
	struct loop *loop = *loopp;

	if (loop == NULL)
		return;
	*loopp = NULL;
	close(loop->evfd);
	close(loop->epfd);
	task_list_free(loop->posted);
	task_list_free(loop->local);
	pthread_mutex_destroy(&loop->mtx);
	free(loop->heap);
	free(loop->events);
	free(loop);
}

uint64_t
loop_now(const struct loop *loop)
{
	return loop->now;
}

void
loop_stop(struct loop *loop)
{
	loop->stop = true;
}

void
watch_init(struct watch *w, int fd, watch_cb *cb, void *arg)
{
	w->fd = fd;
	w->events = 0;
	w->added = false;
	w->cb = cb;
	w->arg = arg;
}

int
loop_watch(struct loop *loop, struct watch *w, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.ptr = w };

	if (w->added && w->events == events)
		return 0;
	if (epoll_ctl(loop->epfd, w->added ? EPOLL_CTL_MOD : EPOLL_CTL_ADD,
	    w->fd, &ev) < 0)
		return -1;
	w->added = true;
	w->events = events;
	return 0;
}

void
loop_forget(struct loop *loop, struct watch *w)
{
	if (!w->added)
		return;
	w->added = false;
	w->events = 0;
	for (int i = loop->cur; i < loop->nevents; i++)
		if (loop->events[i].data.ptr == w)
			loop->events[i].data.ptr = NULL;
}

void
loop_unwatch(struct loop *loop, struct watch *w)
{
	if (w->added)
		(void)epoll_ctl(loop->epfd, EPOLL_CTL_DEL, w->fd, NULL);
	loop_forget(loop, w);
}

/* Timers: a binary min-heap on `when`; each timer records its slot. */

void
timer_init(struct timer *t, timer_cb *cb, void *arg)
{
	t->when = 0;
	t->idx = -1;
	t->cb = cb;
	t->arg = arg;
}

static void
heap_set(struct loop *loop, size_t i, struct timer *t)
{
	loop->heap[i] = t;
	t->idx = (long)i;
}

static void
heap_up(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];

	while (i > 0) {
		size_t parent = (i - 1) / 2;

		if (loop->heap[parent]->when <= t->when)
			break;
		heap_set(loop, i, loop->heap[parent]);
		i = parent;
	}
	heap_set(loop, i, t);
}

static void
heap_down(struct loop *loop, size_t i)
{
	struct timer *t = loop->heap[i];

	for (;;) {
		size_t child = 2 * i + 1;

		if (child >= loop->nheap)
			break;
		if (child + 1 < loop->nheap &&
		    loop->heap[child + 1]->when < loop->heap[child]->when)
			child++;
		if (t->when <= loop->heap[child]->when)
			break;
		heap_set(loop, i, loop->heap[child]);
		i = child;
	}
	heap_set(loop, i, t);
}

void
loop_timer_cancel(struct loop *loop, struct timer *t)
{
	size_t i;
	struct timer *last;

	if (t->idx < 0)
		return;
	i = (size_t)t->idx;
	t->idx = -1;
	last = loop->heap[--loop->nheap];
	if (i == loop->nheap)
		return;
	heap_set(loop, i, last);
	heap_down(loop, i);
	heap_up(loop, (size_t)last->idx);
}

void
loop_timer_at(struct loop *loop, struct timer *t, uint64_t when)
{
	loop_timer_cancel(loop, t);
	if (loop->nheap == loop->heapcap) {
		loop->heapcap = loop->heapcap ? loop->heapcap * 2 : 64;
		loop->heap = xrealloc(loop->heap, loop->heapcap * sizeof(*loop->heap));
	}
	t->when = when;
	heap_set(loop, loop->nheap, t);
	heap_up(loop, loop->nheap++);
}

void
loop_timer_in(struct loop *loop, struct timer *t, uint64_t ms)
{
	loop_timer_at(loop, t, loop->now + ms);
}

static void
run_timers(struct loop *loop)
{
	while (loop->nheap > 0 && loop->heap[0]->when <= loop->now) {
		struct timer *t = loop->heap[0];

		loop_timer_cancel(loop, t);
		t->cb(t);
	}
}

/* Cross-thread hand-off. */

int
loop_post(struct loop *loop, task_cb *fn, void *arg)
{
	struct task *t = xmalloc(sizeof(*t));
	bool wake;

	t->fn = fn;
	t->arg = arg;
	t->next = NULL;
	if (loop->thread_set && pthread_equal(loop->thread, pthread_self())) {
		*loop->local_tail = t;
		loop->local_tail = &t->next;
		return 0;
	}
	pthread_mutex_lock(&loop->mtx);
	*loop->posted_tail = t;
	loop->posted_tail = &t->next;
	wake = !loop->woken;
	loop->woken = true;
	pthread_mutex_unlock(&loop->mtx);
	if (wake) {
		uint64_t one = 1;

		if (write(loop->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			return -1;
	}
	return 0;
}

static void
run_tasks(struct task *t)
{
	while (t != NULL) {
		struct task *next = t->next;

		t->fn(t->arg);
		free(t);
		t = next;
	}
}

static void
loop_drain_posted(struct watch *w, uint32_t events)
{
	struct loop *loop = w->arg;
	struct task *list;
	uint64_t v;

	if (read(loop->evfd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_warning("loop: eventfd read: %s", strerror(errno));
	pthread_mutex_lock(&loop->mtx);
	list = loop->posted;
	loop->posted = NULL;
	loop->posted_tail = &loop->posted;
	loop->woken = false;
	pthread_mutex_unlock(&loop->mtx);
	run_tasks(list);
}

static void
run_local(struct loop *loop)
{
	while (loop->local != NULL) {
		struct task *list = loop->local;

		loop->local = NULL;
		loop->local_tail = &loop->local;
		run_tasks(list);
	}
}

void
loop_run_pending(struct loop *loop)
{
	loop->thread = pthread_self();
	loop->thread_set = true;
	loop_drain_posted(&loop->evwatch, EPOLLIN);
	run_local(loop);
}

int
loop_run(struct loop *loop)
{
	loop->thread = pthread_self();
	loop->thread_set = true;
	loop->stop = false;
	while (!loop->stop) {
		int timeout = -1, n;

		if (loop->local != NULL)
			timeout = 0;
		else if (loop->nheap > 0) {
			uint64_t when = loop->heap[0]->when;

			loop->now = clock_ms();
			timeout = when <= loop->now ? 0 :
			    (int)(when - loop->now > 60000 ? 60000 : when - loop->now);
		}
		n = epoll_wait(loop->epfd, loop->events, LOOP_EVENTS, timeout);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("loop: epoll_wait: %s", strerror(errno));
			return -1;
		}
		loop->now = clock_ms();
		loop->nevents = n;
		for (loop->cur = 0; loop->cur < loop->nevents; ) {
			struct epoll_event *ev = &loop->events[loop->cur++];
			struct watch *w = ev->data.ptr;

			if (w != NULL)
				w->cb(w, ev->events);
		}
		loop->nevents = loop->cur = 0;
		run_local(loop);
		run_timers(loop);
		run_local(loop);
	}
	return 0;
}

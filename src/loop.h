/*
 * Per-thread event loop: epoll for file descriptors, a binary heap of
 * timers, and a queue through which other threads hand work to this one.
 * It knows nothing about protocols.  Every function but loop_post() must be
 * called from the loop's own thread.
 */
#ifndef POSTERN_LOOP_H
#define POSTERN_LOOP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/epoll.h>

struct loop;
struct watch;
struct timer;

typedef void watch_cb(struct watch *w, uint32_t events);
typedef void timer_cb(struct timer *t);
typedef void task_cb(void *arg);

/* An fd registered with the loop.  Embed it; the loop does not own it. */
struct watch {
	int		 fd;
	uint32_t	 events;	/* current EPOLL* interest */
	bool		 added;
	watch_cb	*cb;
	void		*arg;
};

/* A one-shot timer.  Embed it; idx is the heap slot or -1 when idle. */
struct timer {
	uint64_t	 when;		/* deadline, loop_now() milliseconds */
	long		 idx;
	timer_cb	*cb;
	void		*arg;
};

struct loop	*loop_new(void);
void		 loop_free(struct loop **loopp);

/* Run until loop_stop(); returns 0, or -1 if epoll failed. */
int		 loop_run(struct loop *loop);
void		 loop_stop(struct loop *loop);
/* Run queued tasks now (shutdown: after the loop's thread has exited). */
void		 loop_run_pending(struct loop *loop);

/* Cached monotonic milliseconds, refreshed once per wake-up. */
uint64_t	 loop_now(const struct loop *loop);

void		 watch_init(struct watch *w, int fd, watch_cb *cb, void *arg);
/* Set the interest (0 = none); adds the fd on first use.  0 or -1 (errno). */
int		 loop_watch(struct loop *loop, struct watch *w, uint32_t events);
/* Remove the fd; events already fetched for it in this round are dropped. */
void		 loop_unwatch(struct loop *loop, struct watch *w);
/*
 * The same for an fd about to be closed (and never duplicated): close(2)
 * removes it from epoll, so no epoll_ctl call is made.
 */
void		 loop_forget(struct loop *loop, struct watch *w);

void		 timer_init(struct timer *t, timer_cb *cb, void *arg);
void		 loop_timer_at(struct loop *loop, struct timer *t, uint64_t when);
void		 loop_timer_in(struct loop *loop, struct timer *t, uint64_t ms);
void		 loop_timer_cancel(struct loop *loop, struct timer *t);
static inline bool
timer_pending(const struct timer *t)
{
	return t->idx >= 0;
}

/*
 * Run fn(arg) on the loop's thread soon.  Thread-safe; from the loop's own
 * thread it only queues (no wake-up needed).  0, or -1 if the loop is gone.
 */
int		 loop_post(struct loop *loop, task_cb *fn, void *arg);

#endif

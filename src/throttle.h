/*
 * Failed-login throttling: consecutive refusals per key (a client address,
 * a normalised user name), shared by every worker.  THROTTLE_SHARDS locked
 * shards, each a chained hash table with an LRU list; the whole table holds
 * at most max_entries keys (each shard max_entries / THROTTLE_SHARDS + 1),
 * so an attacker inventing addresses or names evicts the oldest keys and
 * never grows it.  A key quiet for window_ms starts again from zero.
 *
 * Pure bookkeeping: no I/O, no clock of its own (callers pass now_ms), and
 * the delay is only computed here; the session waits on its own timer.
 */
#ifndef POSTERN_THROTTLE_H
#define POSTERN_THROTTLE_H

#include <stddef.h>
#include <stdint.h>

#define THROTTLE_SHARDS		16
#define THROTTLE_KEY_MAX	512	/* longer keys are cut (still distinct enough) */

struct throttle;

struct throttle_params {
	uint64_t	 window_ms;	/* quiet period after which a key resets */
	size_t		 max_entries;	/* whole table; 0 = record nothing */
};

struct throttle	*throttle_new(void);
/* Free the table and set *tp to NULL. */
void		 throttle_free(struct throttle **tp);

/*
 * Record one refusal for key at now_ms.  Returns how many refusals the key
 * had before this one within the window (0 for a new or decayed key).
 */
unsigned	 throttle_fail(struct throttle *t, const void *key, size_t len,
		    uint64_t now_ms, const struct throttle_params *p);
/* Refusals recorded for key within the window, without recording one. */
unsigned	 throttle_count(struct throttle *t, const void *key, size_t len,
		    uint64_t now_ms, const struct throttle_params *p);
/* Forget key (a successful login). */
void		 throttle_reset(struct throttle *t, const void *key, size_t len);
/* Keys held now, all shards. */
size_t		 throttle_size(struct throttle *t);

/*
 * The wait before a refusal, given the refusals before it: none for the
 * first, then base_ms, doubling each time, never more than max_ms.
 */
uint64_t	 throttle_delay_ms(unsigned prior, uint64_t base_ms, uint64_t max_ms);

#endif

#include "autoconf.h"

#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "throttle.h"
#include "util.h"

/* Buckets per shard: chains stay short up to ~16 * 1024 * 8 keys. */
#define THROTTLE_BUCKETS	1024

struct throttle_entry {
	uint64_t		 hash;
	uint64_t		 last_ms;	/* the latest refusal */
	unsigned		 failures;	/* consecutive, within the window */
	struct throttle_entry	*chain;		/* hash bucket */
	struct throttle_entry	*prev, *next;	/* LRU: head is most recent */
	size_t			 len;
	unsigned char		 key[];
};

struct throttle_shard {
	pthread_mutex_t		 mtx;
	struct throttle_entry	*buckets[THROTTLE_BUCKETS];
	struct throttle_entry	*head, *tail;
	size_t			 n;
};

struct throttle {
	struct throttle_shard	 shards[THROTTLE_SHARDS];
};

static uint64_t
hash_bytes(const unsigned char *p, size_t len)
{
	uint64_t h = 1469598103934665603ULL;

	for (size_t i = 0; i < len; i++) {
		h ^= p[i];
		h *= 1099511628211ULL;
	}
	/* Spread similar keys over shards and buckets (MurmurHash3 finaliser). */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct throttle *
throttle_new(void)
{
	struct throttle *t = xcalloc(1, sizeof(*t));

	for (int i = 0; i < THROTTLE_SHARDS; i++)
		pthread_mutex_init(&t->shards[i].mtx, NULL);
	return t;
}

void
throttle_free(struct throttle **tp)
{
	struct throttle *t = *tp;

	if (t == NULL)
		return;
	for (int i = 0; i < THROTTLE_SHARDS; i++) {
		struct throttle_shard *sh = &t->shards[i];

		while (sh->head != NULL) {
			struct throttle_entry *e = sh->head;

			sh->head = e->next;
			free(e);
		}
		pthread_mutex_destroy(&sh->mtx);
	}
	free(t);
	*tp = NULL;
}

static void
lru_unlink(struct throttle_shard *sh, struct throttle_entry *e)
{
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		sh->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		sh->tail = e->prev;
	e->prev = e->next = NULL;
}

static void
lru_push(struct throttle_shard *sh, struct throttle_entry *e)
{
	e->prev = NULL;
	e->next = sh->head;
	if (sh->head != NULL)
		sh->head->prev = e;
	sh->head = e;
	if (sh->tail == NULL)
		sh->tail = e;
}

static void
entry_remove(struct throttle_shard *sh, struct throttle_entry *e)
{
	struct throttle_entry **pp = &sh->buckets[e->hash % THROTTLE_BUCKETS];

	while (*pp != e)
		pp = &(*pp)->chain;
	*pp = e->chain;
	lru_unlink(sh, e);
	sh->n--;
	free(e);
}

static struct throttle_entry *
entry_find(struct throttle_shard *sh, uint64_t h, const unsigned char *key,
    size_t len)
{
	struct throttle_entry *e;

	for (e = sh->buckets[h % THROTTLE_BUCKETS]; e != NULL; e = e->chain)
		if (e->hash == h && e->len == len && memcmp(e->key, key, len) == 0)
			return e;
	return NULL;
}

static struct throttle_shard *
shard_of(struct throttle *t, const void *key, size_t *len, uint64_t *h_r)
{
	if (*len > THROTTLE_KEY_MAX)
		*len = THROTTLE_KEY_MAX;
	*h_r = hash_bytes(key, *len);
	return &t->shards[(*h_r >> 56) % THROTTLE_SHARDS];
}

/*
 * Workers' clocks are cached per wake-up, so another worker may have
 * stamped an entry a little after our now_ms: that is not expiry.
 */
static int
expired(const struct throttle_entry *e, uint64_t now_ms, uint64_t window_ms)
{
	return now_ms >= e->last_ms && now_ms - e->last_ms >= window_ms;
}

/* The key's live count, dropping it when its window has passed. */
static unsigned
live_failures(struct throttle_shard *sh, struct throttle_entry *e,
    uint64_t now_ms, uint64_t window_ms)
{
	if (expired(e, now_ms, window_ms)) {
		entry_remove(sh, e);
		return 0;
	}
	return e->failures;
}

unsigned
throttle_fail(struct throttle *t, const void *key, size_t len, uint64_t now_ms,
    const struct throttle_params *p)
{
	uint64_t h;
	struct throttle_shard *sh = shard_of(t, key, &len, &h);
	size_t cap = p->max_entries / THROTTLE_SHARDS + 1;
	struct throttle_entry *e;
	unsigned prior = 0;

	if (p->max_entries == 0)
		return 0;
	pthread_mutex_lock(&sh->mtx);
	e = entry_find(sh, h, key, len);
	if (e != NULL && (prior = live_failures(sh, e, now_ms, p->window_ms)) == 0)
		e = NULL;
	if (e == NULL) {
		/* Expired keys go first, then the least recently refused. */
		while (sh->tail != NULL && (sh->n >= cap ||
		    expired(sh->tail, now_ms, p->window_ms)))
			entry_remove(sh, sh->tail);
		e = xcalloc(1, sizeof(*e) + len);
		e->hash = h;
		e->len = len;
		memcpy(e->key, key, len);
		e->chain = sh->buckets[h % THROTTLE_BUCKETS];
		sh->buckets[h % THROTTLE_BUCKETS] = e;
		sh->n++;
	} else
		lru_unlink(sh, e);
	lru_push(sh, e);
	if (e->failures < UINT_MAX)
		e->failures++;
	e->last_ms = now_ms;
	pthread_mutex_unlock(&sh->mtx);
	return prior;
}

unsigned
throttle_count(struct throttle *t, const void *key, size_t len, uint64_t now_ms,
    const struct throttle_params *p)
{
	uint64_t h;
	struct throttle_shard *sh = shard_of(t, key, &len, &h);
	struct throttle_entry *e;
	unsigned n = 0;

	pthread_mutex_lock(&sh->mtx);
	if ((e = entry_find(sh, h, key, len)) != NULL)
		n = live_failures(sh, e, now_ms, p->window_ms);
	pthread_mutex_unlock(&sh->mtx);
	return n;
}

void
throttle_reset(struct throttle *t, const void *key, size_t len)
{
	uint64_t h;
	struct throttle_shard *sh = shard_of(t, key, &len, &h);
	struct throttle_entry *e;

	pthread_mutex_lock(&sh->mtx);
	if ((e = entry_find(sh, h, key, len)) != NULL)
		entry_remove(sh, e);
	pthread_mutex_unlock(&sh->mtx);
}

size_t
throttle_size(struct throttle *t)
{
	size_t n = 0;

	for (int i = 0; i < THROTTLE_SHARDS; i++) {
		pthread_mutex_lock(&t->shards[i].mtx);
		n += t->shards[i].n;
		pthread_mutex_unlock(&t->shards[i].mtx);
	}
	return n;
}

uint64_t
throttle_delay_ms(unsigned prior, uint64_t base_ms, uint64_t max_ms)
{
	uint64_t d = base_ms;

	if (prior == 0)
		return 0;
	for (unsigned i = 1; i < prior && d < max_ms; i++)
		d *= 2;
	return d < max_ms ? d : max_ms;
}

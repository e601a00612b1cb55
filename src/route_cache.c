#include "autoconf.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"
#include "util.h"

/*
 * Sixteen shards, each a chained hash table with its own lock: workers
 * looking up different users rarely meet on a lock.  A shard keeps two LRU
 * lists with budgets of their own, one for routes and one for unknown
 * users, so that a flood of made-up names can never evict a route that
 * serve_stale would need during an outage.
 */
#define CACHE_SHARDS	16

struct cache_entry {
	char			*key;
	uint64_t		 hash;
	struct route		*route;		/* NULL: negative entry */
	uint64_t		 expires;	/* ms */
	struct cache_entry	*chain;		/* hash bucket */
	struct cache_entry	*prev, *next;	/* LRU: head is most recent */
};

enum { POSITIVE, NEGATIVE };

struct lru {
	struct cache_entry	*head, *tail;	/* head is most recent */
	size_t			 n, max;
};

struct shard {
	pthread_mutex_t		 mtx;
	struct cache_entry	**buckets;
	size_t			 nbuckets;
	struct lru		 lru[2];	/* POSITIVE, NEGATIVE */
};

struct route_cache {
	unsigned	 ttl_ms;
	unsigned	 negative_ttl_ms;
	uint64_t	 stale_max_ms;		/* 0: no limit */
	struct shard	 shards[CACHE_SHARDS];
};

static uint64_t
hash_key(const char *s)
{
	uint64_t h = 1469598103934665603ULL;

	for (; *s != '\0'; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	/*
	 * FNV-1a leaves the high bits of similar keys ("user1", "user2")
	 * nearly equal: mix them (MurmurHash3's finaliser) before the shard
	 * is picked from them, or a few shards take every key.
	 */
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

struct route_cache *
route_cache_new(size_t entries, size_t negative_entries, unsigned ttl,
    unsigned negative_ttl, unsigned stale_max)
{
	struct route_cache *c = xcalloc(1, sizeof(*c));
	size_t per = entries / CACHE_SHARDS + 1;
	size_t negper = negative_entries / CACHE_SHARDS + 1;

	c->ttl_ms = ttl * 1000;
	c->negative_ttl_ms = negative_ttl * 1000;
	c->stale_max_ms = (uint64_t)stale_max * 1000;
	for (int i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];

		pthread_mutex_init(&s->mtx, NULL);
		s->lru[POSITIVE].max = per;
		s->lru[NEGATIVE].max = negative_entries > 0 ? negper : 0;
		s->nbuckets = 16;
		while (s->nbuckets < per + negper && s->nbuckets < (1u << 20))
			s->nbuckets *= 2;
		s->buckets = xcalloc(s->nbuckets, sizeof(*s->buckets));
	}
	return c;
}

static void
entry_free(struct cache_entry *e)
{
	route_unref(&e->route);
	free(e->key);
	free(e);
}

void
route_cache_free(struct route_cache **cachep)
{
	struct route_cache *c = *cachep;

	if (c == NULL)
		return;
	*cachep = NULL;
	for (int i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];
		struct cache_entry *e, *next;

		for (int k = POSITIVE; k <= NEGATIVE; k++) {
			for (e = s->lru[k].head; e != NULL; e = next) {
				next = e->next;
				entry_free(e);
			}
		}
		free(s->buckets);
		pthread_mutex_destroy(&s->mtx);
	}
	free(c);
}

static struct shard *
shard_of(struct route_cache *c, uint64_t h)
{
	return &c->shards[(h >> 56) % CACHE_SHARDS];
}

static struct cache_entry **
find_slot(struct shard *s, const char *key, uint64_t h)
{
	struct cache_entry **pp = &s->buckets[h & (s->nbuckets - 1)];

	for (; *pp != NULL; pp = &(*pp)->chain)
		if ((*pp)->hash == h && strcmp((*pp)->key, key) == 0)
			break;
	return pp;
}

static struct lru *
lru_of(struct shard *s, const struct cache_entry *e)
{
	return &s->lru[e->route != NULL ? POSITIVE : NEGATIVE];
}

static void
lru_unlink(struct shard *s, struct cache_entry *e)
{
	struct lru *l = lru_of(s, e);

	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		l->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		l->tail = e->prev;
	l->n--;
}

static void
lru_push(struct shard *s, struct cache_entry *e)
{
	struct lru *l = lru_of(s, e);

	e->prev = NULL;
	e->next = l->head;
	if (l->head != NULL)
		l->head->prev = e;
	l->head = e;
	if (l->tail == NULL)
		l->tail = e;
	l->n++;
}

static void
shard_remove(struct shard *s, struct cache_entry *e)
{
	struct cache_entry **pp = find_slot(s, e->key, e->hash);

	*pp = e->chain;
	lru_unlink(s, e);
	entry_free(e);
}

/*
 * A route past its TTL and past stale_max too: not to be served, even
 * during an outage, so it need not hold its slot either.
 */
static bool
too_stale(const struct route_cache *c, const struct cache_entry *e,
    uint64_t now)
{
	return e->route != NULL && c->stale_max_ms > 0 && now > e->expires &&
	    now - e->expires > c->stale_max_ms;
}

enum route_cache_result
route_cache_get(struct route_cache *c, const char *key, uint64_t now,
    struct route **route_r)
{
	uint64_t h = hash_key(key);
	struct shard *s = shard_of(c, h);
	struct cache_entry *e;
	enum route_cache_result r = ROUTE_CACHE_MISS;

	pthread_mutex_lock(&s->mtx);
	e = *find_slot(s, key, h);
	if (e != NULL && too_stale(c, e, now))
		shard_remove(s, e);
	else if (e != NULL && now < e->expires) {
		lru_unlink(s, e);
		lru_push(s, e);
		if (e->route != NULL) {
			*route_r = route_ref(e->route);
			r = ROUTE_CACHE_HIT;
		} else
			r = ROUTE_CACHE_HIT_NEGATIVE;
	}
	pthread_mutex_unlock(&s->mtx);
	return r;
}

struct route *
route_cache_get_stale(struct route_cache *c, const char *key, uint64_t now)
{
	uint64_t h = hash_key(key);
	struct shard *s = shard_of(c, h);
	struct cache_entry *e;
	struct route *route = NULL;

	pthread_mutex_lock(&s->mtx);
	e = *find_slot(s, key, h);
	if (e != NULL && too_stale(c, e, now))
		shard_remove(s, e);
	else if (e != NULL && e->route != NULL)
		route = route_ref(e->route);
	pthread_mutex_unlock(&s->mtx);
	return route;
}

void
route_cache_put(struct route_cache *c, const char *key, struct route *route,
    uint64_t now)
{
	uint64_t h = hash_key(key);
	struct shard *s = shard_of(c, h);
	struct lru *l = &s->lru[route != NULL ? POSITIVE : NEGATIVE];
	struct cache_entry **pp, *e;

	if (route == NULL && (c->negative_ttl_ms == 0 || l->max == 0))
		return;
	pthread_mutex_lock(&s->mtx);
	pp = find_slot(s, key, h);
	if ((e = *pp) != NULL) {
		/* It may change lists: a route becomes unknown, or back. */
		lru_unlink(s, e);
		route_unref(&e->route);
	} else
		e = NULL;
	/* Only an entry of the same kind makes room. */
	if (l->n >= l->max && l->tail != NULL && l->tail != e)
		shard_remove(s, l->tail);
	if (e == NULL) {
		pp = find_slot(s, key, h);
		e = xcalloc(1, sizeof(*e));
		e->key = xstrdup(key);
		e->hash = h;
		e->chain = NULL;
		*pp = e;
	}
	e->route = route != NULL ? route_ref(route) : NULL;
	e->expires = now + (route != NULL ? c->ttl_ms : c->negative_ttl_ms);
	lru_push(s, e);
	pthread_mutex_unlock(&s->mtx);
}

size_t
route_cache_size(struct route_cache *c)
{
	size_t n = 0;

	for (int i = 0; i < CACHE_SHARDS; i++) {
		pthread_mutex_lock(&c->shards[i].mtx);
		n += c->shards[i].lru[POSITIVE].n + c->shards[i].lru[NEGATIVE].n;
		pthread_mutex_unlock(&c->shards[i].mtx);
	}
	return n;
}

bool
route_cache_remove(struct route_cache *c, const char *key)
{
	uint64_t h = hash_key(key);
	struct shard *s = shard_of(c, h);
	struct cache_entry *e;

	pthread_mutex_lock(&s->mtx);
	if ((e = *find_slot(s, key, h)) != NULL)
		shard_remove(s, e);
	pthread_mutex_unlock(&s->mtx);
	return e != NULL;
}

size_t
route_cache_clear(struct route_cache *c)
{
	size_t n = 0;

	for (int i = 0; i < CACHE_SHARDS; i++) {
		struct shard *s = &c->shards[i];

		pthread_mutex_lock(&s->mtx);
		for (int k = POSITIVE; k <= NEGATIVE; k++)
			while (s->lru[k].head != NULL) {
				shard_remove(s, s->lru[k].head);
				n++;
			}
		pthread_mutex_unlock(&s->mtx);
	}
	return n;
}

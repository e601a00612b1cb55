#include "autoconf.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "replica.h"
#include "util.h"

#define REPLICA_SHARDS		64
#define REPLICA_KEY_MAX		512	/* longer logins are never keys */

struct rentry;

/* One entry's claim on a login: readers see these copies, never the entry. */
struct key_owner {
	const struct rentry	*e;		/* identity only: never followed */
	enum dir_status		 status;
	struct route		*route;
	char			*detail;
};

struct key_node {
	char			*key;
	struct key_owner	*owners;	/* more than one: ambiguous */
	size_t			 nowners;
	struct key_node		*next;
};

struct shard {
	pthread_rwlock_t	 lock;
	struct key_node		**slots;
	size_t			 nslots, n;
};

/* The writer's own record of an entry. */
struct rentry {
	unsigned char		*uuid;
	size_t			 uuidlen;
	char			**keys;
	size_t			 nkeys;
	unsigned		 seen;		/* refresh generation */
	struct rentry		*next;
};

struct replica {
	struct shard		 shards[REPLICA_SHARDS];
	struct rentry		**eslots;
	size_t			 neslots;
	_Atomic size_t		 nentries;
	_Atomic size_t		 nkeys;
	unsigned		 gen;
};

static uint64_t
hash_bytes(const void *p, size_t len)
{
	const unsigned char *s = p;
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < len; i++) {
		h ^= s[i];
		h *= 1099511628211ULL;
	}
	return h;
}

static void
lower_copy(char *dst, const char *src, size_t len)
{
	for (size_t i = 0; i < len; i++)
		dst[i] = (src[i] >= 'A' && src[i] <= 'Z') ? src[i] - 'A' + 'a' : src[i];
	dst[len] = '\0';
}

struct replica *
replica_new(void)
{
	struct replica *r = xcalloc(1, sizeof(*r));

	for (size_t i = 0; i < REPLICA_SHARDS; i++)
		pthread_rwlock_init(&r->shards[i].lock, NULL);
	atomic_init(&r->nentries, 0);
	atomic_init(&r->nkeys, 0);
	return r;
}

static void
owner_clear(struct key_owner *o)
{
	route_unref(&o->route);
	free(o->detail);
	o->detail = NULL;
}

static void
entry_free(struct rentry *e)
{
	for (size_t i = 0; i < e->nkeys; i++)
		free(e->keys[i]);
	free(e->keys);
	free(e->uuid);
	free(e);
}

void
replica_free(struct replica **rp)
{
	struct replica *r = *rp;

	if (r == NULL)
		return;
	*rp = NULL;
	for (size_t i = 0; i < REPLICA_SHARDS; i++) {
		struct shard *s = &r->shards[i];

		for (size_t j = 0; j < s->nslots; j++) {
			struct key_node *k, *next;

			for (k = s->slots[j]; k != NULL; k = next) {
				next = k->next;
				for (size_t o = 0; o < k->nowners; o++)
					owner_clear(&k->owners[o]);
				free(k->owners);
				free(k->key);
				free(k);
			}
		}
		free(s->slots);
		pthread_rwlock_destroy(&s->lock);
	}
	for (size_t j = 0; j < r->neslots; j++) {
		struct rentry *e, *next;

		for (e = r->eslots[j]; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
	}
	free(r->eslots);
	free(r);
}

/* Entries (writer only). */

static struct rentry **
entry_slot(struct replica *r, const void *uuid, size_t len)
{
	struct rentry **ep;

	if (r->neslots == 0)
		return NULL;
	for (ep = &r->eslots[hash_bytes(uuid, len) % r->neslots]; *ep != NULL;
	    ep = &(*ep)->next)
		if ((*ep)->uuidlen == len && memcmp((*ep)->uuid, uuid, len) == 0)
			return ep;
	return NULL;
}

static void
entries_grow(struct replica *r)
{
	size_t n = r->neslots ? r->neslots * 2 : 256;
	struct rentry **slots = xcalloc(n, sizeof(*slots));

	for (size_t i = 0; i < r->neslots; i++) {
		struct rentry *e, *next;

		for (e = r->eslots[i]; e != NULL; e = next) {
			size_t h = hash_bytes(e->uuid, e->uuidlen) % n;

			next = e->next;
			e->next = slots[h];
			slots[h] = e;
		}
	}
	free(r->eslots);
	r->eslots = slots;
	r->neslots = n;
}

static struct rentry *
entry_add(struct replica *r, const void *uuid, size_t len)
{
	struct rentry *e = xcalloc(1, sizeof(*e));
	size_t h;

	if (atomic_load(&r->nentries) >= r->neslots)
		entries_grow(r);
	e->uuid = xmalloc(len ? len : 1);
	memcpy(e->uuid, uuid, len);
	e->uuidlen = len;
	h = hash_bytes(uuid, len) % r->neslots;
	e->next = r->eslots[h];
	r->eslots[h] = e;
	atomic_fetch_add(&r->nentries, 1);
	return e;
}

/* Keys (writer changes under the shard's write lock). */

static struct shard *
key_shard(struct replica *r, const char *key, uint64_t *h_r)
{
	*h_r = hash_bytes(key, strlen(key));
	return &r->shards[*h_r % REPLICA_SHARDS];
}

static struct key_node **
key_slot(struct shard *s, uint64_t h, const char *key)
{
	struct key_node **kp;

	if (s->nslots == 0)
		return NULL;
	for (kp = &s->slots[(h / REPLICA_SHARDS) % s->nslots]; *kp != NULL;
	    kp = &(*kp)->next)
		if (strcmp((*kp)->key, key) == 0)
			return kp;
	return NULL;
}

static void
shard_grow(struct shard *s)
{
	size_t n = s->nslots ? s->nslots * 2 : 64;
	struct key_node **slots = xcalloc(n, sizeof(*slots));

	for (size_t i = 0; i < s->nslots; i++) {
		struct key_node *k, *next;

		for (k = s->slots[i]; k != NULL; k = next) {
			size_t h = (hash_bytes(k->key, strlen(k->key)) /
			    REPLICA_SHARDS) % n;

			next = k->next;
			k->next = slots[h];
			slots[h] = k;
		}
	}
	free(s->slots);
	s->slots = slots;
	s->nslots = n;
}

/* What a reader gets for this key: a route, or NULL. */
static struct route *
key_answer(const struct key_node *k)
{
	if (k->nowners != 1 || k->owners[0].status != DIR_OK)
		return NULL;
	return route_ref(k->owners[0].route);
}

bool
route_same_hosts(const struct route *a, const struct route *b)
{
	if (a->nhosts != b->nhosts)
		return false;
	for (size_t i = 0; i < a->nhosts; i++)
		if (strcmp(a->hosts[i].host, b->hosts[i].host) != 0 ||
		    a->hosts[i].port != b->hosts[i].port)
			return false;
	return true;
}

/* A login that had a route now has another one, or none. */
static void
note_move(struct replica_moved **moved, const char *key, struct route *before,
    struct route *after)
{
	struct replica_moved *m;

	if (before != NULL && (after == NULL || !route_same_hosts(before, after))) {
		m = xcalloc(1, sizeof(*m));
		m->login = xstrdup(key);
		m->route = after;
		m->next = *moved;
		*moved = m;
		after = NULL;
	}
	route_unref(&before);
	route_unref(&after);
}

/* Give `e`'s claim on key the answer (status, route, detail). */
static void
key_set(struct replica *r, const char *key, const struct rentry *e,
    enum dir_status status, struct route *route, const char *detail,
    struct replica_moved **moved)
{
	struct route *before, *after;
	struct key_node **kp, *k;
	struct key_owner *o = NULL;
	struct shard *s;
	uint64_t h;

	s = key_shard(r, key, &h);
	pthread_rwlock_wrlock(&s->lock);
	if ((kp = key_slot(s, h, key)) == NULL) {
		if (s->n >= s->nslots)
			shard_grow(s);
		k = xcalloc(1, sizeof(*k));
		k->key = xstrdup(key);
		k->next = s->slots[(h / REPLICA_SHARDS) % s->nslots];
		s->slots[(h / REPLICA_SHARDS) % s->nslots] = k;
		s->n++;
		atomic_fetch_add(&r->nkeys, 1);
	} else
		k = *kp;
	before = key_answer(k);
	for (size_t i = 0; i < k->nowners; i++)
		if (k->owners[i].e == e)
			o = &k->owners[i];
	if (o == NULL) {
		k->owners = xrealloc(k->owners, (k->nowners + 1) * sizeof(*k->owners));
		o = &k->owners[k->nowners++];
		o->e = e;
	} else
		owner_clear(o);
	o->status = status;
	o->route = route != NULL ? route_ref(route) : NULL;
	o->detail = xstrdup(detail != NULL ? detail : "");
	after = key_answer(k);
	pthread_rwlock_unlock(&s->lock);
	note_move(moved, key, before, after);
}

/* Withdraw `e`'s claim on key; the key goes when nobody claims it. */
static void
key_drop(struct replica *r, const char *key, const struct rentry *e,
    struct replica_moved **moved)
{
	struct route *before, *after;
	struct key_node **kp, *k;
	struct shard *s;
	uint64_t h;

	s = key_shard(r, key, &h);
	pthread_rwlock_wrlock(&s->lock);
	if ((kp = key_slot(s, h, key)) == NULL) {
		pthread_rwlock_unlock(&s->lock);
		return;
	}
	k = *kp;
	before = key_answer(k);
	for (size_t i = 0; i < k->nowners; i++) {
		if (k->owners[i].e != e)
			continue;
		owner_clear(&k->owners[i]);
		k->owners[i] = k->owners[--k->nowners];
		break;
	}
	if (k->nowners == 0) {
		*kp = k->next;
		s->n--;
		atomic_fetch_sub(&r->nkeys, 1);
		free(k->owners);
		free(k->key);
		free(k);
		after = NULL;
	} else
		after = key_answer(k);
	pthread_rwlock_unlock(&s->lock);
	note_move(moved, key, before, after);
}

static bool
has_key(char *const *keys, size_t n, const char *key)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(keys[i], key) == 0)
			return true;
	return false;
}

void
replica_put(struct replica *r, const void *uuid, size_t len,
    const char *const *keys, size_t nkeys, enum dir_status status,
    struct route *route, const char *detail, struct replica_moved **moved)
{
	struct rentry **ep = entry_slot(r, uuid, len), *e;
	char **nk = xcalloc(nkeys + 1, sizeof(*nk));
	size_t n = 0;

	e = ep != NULL ? *ep : entry_add(r, uuid, len);
	for (size_t i = 0; i < nkeys; i++) {
		size_t kl = strlen(keys[i]);
		char *k;

		if (kl == 0 || kl >= REPLICA_KEY_MAX)
			continue;
		k = xmalloc(kl + 1);
		lower_copy(k, keys[i], kl);
		if (has_key(nk, n, k)) {
			free(k);
			continue;
		}
		nk[n++] = k;
	}
	/* Keys the entry no longer has first, so a rename moves cleanly. */
	for (size_t i = 0; i < e->nkeys; i++)
		if (!has_key(nk, n, e->keys[i]))
			key_drop(r, e->keys[i], e, moved);
	for (size_t i = 0; i < n; i++)
		key_set(r, nk[i], e, status, status == DIR_OK ? route : NULL,
		    detail, moved);
	for (size_t i = 0; i < e->nkeys; i++)
		free(e->keys[i]);
	free(e->keys);
	e->keys = nk;
	e->nkeys = n;
	e->seen = r->gen;
	route_unref(&route);
}

static void
entry_remove(struct replica *r, struct rentry **ep, struct replica_moved **moved)
{
	struct rentry *e = *ep;

	for (size_t i = 0; i < e->nkeys; i++)
		key_drop(r, e->keys[i], e, moved);
	*ep = e->next;
	atomic_fetch_sub(&r->nentries, 1);
	entry_free(e);
}

void
replica_delete(struct replica *r, const void *uuid, size_t len,
    struct replica_moved **moved)
{
	struct rentry **ep = entry_slot(r, uuid, len);

	if (ep != NULL)
		entry_remove(r, ep, moved);
}

void
replica_present(struct replica *r, const void *uuid, size_t len)
{
	struct rentry **ep = entry_slot(r, uuid, len);

	if (ep != NULL)
		(*ep)->seen = r->gen;
}

void
replica_refresh_begin(struct replica *r)
{
	r->gen++;
}

void
replica_sweep(struct replica *r, struct replica_moved **moved)
{
	for (size_t i = 0; i < r->neslots; i++) {
		struct rentry **ep = &r->eslots[i];

		while (*ep != NULL) {
			if ((*ep)->seen != r->gen)
				entry_remove(r, ep, moved);
			else
				ep = &(*ep)->next;
		}
	}
}

void
replica_moved_free(struct replica_moved **list)
{
	struct replica_moved *m;

	while ((m = *list) != NULL) {
		*list = m->next;
		route_unref(&m->route);
		free(m->login);
		free(m);
	}
}

/* Readers. */

enum dir_status
replica_lookup(struct replica *r, const char *login, struct route **route_r,
    char *detail, size_t len)
{
	char key[REPLICA_KEY_MAX];
	enum dir_status status = DIR_NOT_FOUND;
	size_t kl = strlen(login);
	struct key_node **kp;
	struct shard *s;
	uint64_t h;

	*route_r = NULL;
	if (kl >= sizeof(key)) {
		str_copy(detail, "no entry in the replica", len);
		return DIR_NOT_FOUND;
	}
	lower_copy(key, login, kl);
	s = key_shard(r, key, &h);
	pthread_rwlock_rdlock(&s->lock);
	if ((kp = key_slot(s, h, key)) == NULL)
		str_copy(detail, "no entry in the replica", len);
	else if ((*kp)->nowners > 1) {
		status = DIR_TEMPFAIL;
		str_copy(detail, "more than one entry matches", len);
	} else {
		const struct key_owner *o = &(*kp)->owners[0];

		status = o->status;
		if (status == DIR_OK)
			*route_r = route_ref(o->route);
		snprintf(detail, len, "replica: %s", o->detail);
	}
	pthread_rwlock_unlock(&s->lock);
	return status;
}

size_t
replica_entries(struct replica *r)
{
	return atomic_load(&r->nentries);
}

size_t
replica_keys(struct replica *r)
{
	return atomic_load(&r->nkeys);
}

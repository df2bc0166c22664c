// SPDX-License-Identifier: GPL-2.0
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "sites.h"

#define NONE	UINT32_MAX

struct sites {
	struct site *slot;
	uint32_t *bucket;	/* index of the first site of the chain, NONE */
	uint32_t nbuckets;	/* a power of two, at least 2 * max */
	size_t max, used, max_labeled, labeled;
	uint32_t free_head;	/* unused slots, chained through hnext */
	uint32_t head, tail;	/* LRU: head most recently seen */
	uint64_t created, evicted;
	sites_evict_fn evict;
	void *ctx;
};

uint64_t site_hash(uint64_t h, const void *data, size_t n)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < n; i++) {
		h ^= p[i];
		h *= 0x100000001b3ull;
	}
	return h;
}

static uint32_t bucket_of(const struct sites *t, uint64_t id)
{
	/* ids are hashes already; mix anyway, callers may pass small ids */
	id ^= id >> 33;
	id *= 0xff51afd7ed558ccdull;
	id ^= id >> 33;
	return (uint32_t)id & (t->nbuckets - 1);
}

struct sites *sites_new(size_t max, size_t max_labeled, sites_evict_fn evict, void *ctx)
{
	struct sites *t;

	if (max < 2 || max > (1u << 24))
		return NULL;
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->max = max;
	t->max_labeled = max_labeled > max / 2 ? max / 2 : max_labeled;
	t->evict = evict;
	t->ctx = ctx;
	for (t->nbuckets = 16; t->nbuckets < 2 * max; t->nbuckets <<= 1)
		;
	t->slot = calloc(max, sizeof(*t->slot));
	t->bucket = malloc(t->nbuckets * sizeof(*t->bucket));
	if (!t->slot || !t->bucket) {
		sites_free(t);
		return NULL;
	}
	memset(t->bucket, 0xff, t->nbuckets * sizeof(*t->bucket));
	for (size_t i = 0; i < max; i++)
		t->slot[i].hnext = i + 1 < max ? (uint32_t)(i + 1) : NONE;
	t->free_head = 0;
	t->head = t->tail = NONE;
	return t;
}

void sites_free(struct sites *t)
{
	if (!t)
		return;
	free(t->slot);
	free(t->bucket);
	free(t);
}

static void lru_unlink(struct sites *t, uint32_t i)
{
	struct site *s = &t->slot[i];

	if (s->prev != NONE)
		t->slot[s->prev].next = s->next;
	else
		t->head = s->next;
	if (s->next != NONE)
		t->slot[s->next].prev = s->prev;
	else
		t->tail = s->prev;
}

static void lru_push(struct sites *t, uint32_t i)
{
	struct site *s = &t->slot[i];

	s->prev = NONE;
	s->next = t->head;
	if (t->head != NONE)
		t->slot[t->head].prev = i;
	t->head = i;
	if (t->tail == NONE)
		t->tail = i;
}

struct site *sites_find(struct sites *t, uint64_t id)
{
	for (uint32_t i = t->bucket[bucket_of(t, id)]; i != NONE; i = t->slot[i].hnext) {
		if (t->slot[i].id != id)
			continue;
		if (t->head != i) {
			lru_unlink(t, i);
			lru_push(t, i);
		}
		return &t->slot[i];
	}
	return NULL;
}

/* Drop the least recently seen unpinned site; returns its slot, or NONE. */
static uint32_t evict_one(struct sites *t)
{
	uint32_t i, *pp;

	for (i = t->tail; i != NONE && t->slot[i].labeled; i = t->slot[i].prev)
		;
	if (i == NONE)
		return NONE;
	if (t->evict)
		t->evict(t->ctx, &t->slot[i]);
	for (pp = &t->bucket[bucket_of(t, t->slot[i].id)]; *pp != i; pp = &t->slot[*pp].hnext)
		;
	*pp = t->slot[i].hnext;
	lru_unlink(t, i);
	t->used--;
	t->evicted++;
	return i;
}

struct site *sites_add(struct sites *t, uint64_t id, uint64_t now_ns)
{
	uint32_t i, b;
	struct site *s;

	if (t->free_head != NONE) {
		i = t->free_head;
		t->free_head = t->slot[i].hnext;
	} else {
		i = evict_one(t);
		if (i == NONE)
			return NULL;
	}
	s = &t->slot[i];
	memset(s, 0, sizeof(*s));
	s->id = id;
	s->first_ns = s->last_ns = now_ns;
	if (t->labeled < t->max_labeled) {
		s->labeled = true;
		t->labeled++;
	}
	b = bucket_of(t, id);
	s->hnext = t->bucket[b];
	t->bucket[b] = i;
	lru_push(t, i);
	t->used++;
	t->created++;
	return s;
}

void site_note_pid(struct site *s, uint32_t pid)
{
	uint64_t h = pid * 0x9e3779b97f4a7c15ull;

	h ^= h >> 31;	/* consecutive PIDs spread over the whole bitmap */
	h *= 0xbf58476d1ce4e5b9ull;
	h = (h ^ (h >> 29)) % SITE_PID_BITS;

	s->pid_bits[h / 8] |= (uint8_t)(1u << (h % 8));
	if (s->pids_estimated)
		return;
	for (int i = 0; i < s->npids; i++)
		if (s->pids[i] == pid)
			return;
	if (s->npids < SITE_EXACT_PIDS)
		s->pids[s->npids++] = pid;
	else
		s->pids_estimated = true;
}

uint64_t site_processes(const struct site *s)
{
	unsigned int zero = 0;
	double est;

	if (!s->pids_estimated)
		return (uint64_t)s->npids;
	for (size_t i = 0; i < sizeof(s->pid_bits); i++)
		zero += 8 - (unsigned int)__builtin_popcount(s->pid_bits[i]);
	if (!zero)
		zero = 1;	/* saturated: the estimate's ceiling */
	est = -(double)SITE_PID_BITS * log((double)zero / SITE_PID_BITS);
	/* beyond the exact count by construction */
	return est < SITE_EXACT_PIDS + 1 ? SITE_EXACT_PIDS + 1 : (uint64_t)(est + 0.5);
}

size_t sites_slot(const struct sites *t, const struct site *s)
{
	return (size_t)(s - t->slot);
}

void sites_foreach(struct sites *t, void (*fn)(void *ctx, struct site *s), void *ctx)
{
	for (uint32_t i = t->head; i != NONE; i = t->slot[i].next)
		fn(ctx, &t->slot[i]);
}

void sites_get_stats(const struct sites *t, struct sites_stats *st)
{
	st->used = t->used;
	st->max = t->max;
	st->labeled = t->labeled;
	st->created = t->created;
	st->evicted = t->evicted;
}

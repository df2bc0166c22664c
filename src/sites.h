/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Hazard sites: what the daemon deduplicates on. A site is (executable, fork
 * call site, lock acquisition sites), hashed by the daemon into a 64-bit id
 * from identities that survive ASLR (module build-id or path + offset). This
 * table only keeps them: bounded, least recently seen evicted first (through
 * a callback, so the caller can report what it is about to forget), and
 * counted. The first `max_labeled` sites are pinned: they carry metric labels,
 * and a Prometheus series must not vanish and come back with another count.
 * No I/O, no symbolization: unit-tested alone.
 */
#ifndef FH_SITES_H
#define FH_SITES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SITE_EXE_LEN		256
#define SITE_FRAME_LEN		192
#define SITE_LOCKS_SHOWN	4	/* lock sites described per site (all are hashed) */
#define SITE_EXACT_PIDS		16	/* processes counted exactly, then estimated */
#define SITE_PID_BITS		1024	/* linear-counting bitmap beyond that */

enum site_kind { SITE_HAZARD, SITE_DEADLOCK };

struct site {
	uint64_t id;
	enum site_kind kind;	/* a hazard, or a deadlock with no hazard seen at its fork */
	uint64_t hazards;	/* hazard forks at this site */
	uint64_t mitigated;	/* ... whose child re-created every foreign lock */
	uint64_t deadlocks;	/* children that deadlocked */
	uint64_t outcomes[5];	/* children's fates, by enum fh_child_outcome */
	uint64_t first_ns, last_ns;	/* CLOCK_MONOTONIC */
	uint64_t reported_hazards, reported_deadlocks;	/* at the last aggregate */
	uint64_t suppressed;	/* full reports not written (rate limits) */
	double tokens;		/* per-site rate limit: full reports left */
	uint64_t tokens_ns;
	bool labeled;		/* has its own metric labels; never evicted */
	bool reported;		/* its first full report was written */
	/* What it is, for people: */
	char exe[SITE_EXE_LEN];
	char comm[16];
	char fork_site[SITE_FRAME_LEN];	/* "" when unknown */
	char lock_sites[SITE_LOCKS_SHOWN][SITE_FRAME_LEN];
	int nlock_sites;	/* distinct lock sites (may exceed SITE_LOCKS_SHOWN) */
	char container_id[65];
	/* distinct processes */
	uint32_t pids[SITE_EXACT_PIDS];
	int npids;
	uint8_t pid_bits[SITE_PID_BITS / 8];
	bool pids_estimated;
	/* the table's own */
	uint32_t hnext, prev, next;
};

struct sites_stats {
	size_t used, max, labeled;
	uint64_t created, evicted;
};

typedef void (*sites_evict_fn)(void *ctx, struct site *s);

struct sites;

/* max: sites kept; max_labeled: how many of the first ones are pinned
 * (at most max / 2). evict is called on a site about to be dropped. */
struct sites *sites_new(size_t max, size_t max_labeled, sites_evict_fn evict, void *ctx);
void sites_free(struct sites *t);

/* The site with this id, marked as just seen; NULL if unknown. */
struct site *sites_find(struct sites *t, uint64_t id);
/* A new site (id not in the table), evicting the least recently seen
 * unpinned one if the table is full. Zeroed but for id, first/last_ns. */
struct site *sites_add(struct sites *t, uint64_t id, uint64_t now_ns);

/* Count process pid as affected by s. */
void site_note_pid(struct site *s, uint32_t pid);
/* Distinct processes affected: exact up to SITE_EXACT_PIDS, then estimated. */
uint64_t site_processes(const struct site *s);

/* Where s is in the table, in [0, max): a caller keeps its own data about a
 * site in an array beside it (report.c), cleared when the site is evicted. */
size_t sites_slot(const struct sites *t, const struct site *s);

/* Every site, most recently seen first; fn may not add or remove sites. */
void sites_foreach(struct sites *t, void (*fn)(void *ctx, struct site *s), void *ctx);

void sites_get_stats(const struct sites *t, struct sites_stats *st);

/* 64-bit FNV-1a, for site ids: h = site_hash(h, bytes, n), starting at SITE_HASH_INIT. */
#define SITE_HASH_INIT	0xcbf29ce484222325ull
uint64_t site_hash(uint64_t h, const void *data, size_t n);

#endif

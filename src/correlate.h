/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Correlation: a fork event, its child's fate, the child's deadlock. A small
 * state machine over a bounded table; no file descriptors, no output of its
 * own (decided records go to the sink), so it is unit-tested with synthetic
 * events.
 */
#ifndef FH_CORRELATE_H
#define FH_CORRELATE_H

#include <stddef.h>
#include <stdint.h>
#include "forkhazard.h"
#include "reinit.h"

struct corr_sink {
	/* A fork, with its fate when it was decided within the hold window,
	 * and the foreign locks its child is known to have re-created. */
	void (*fork)(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		     const struct fh_deadlock_event *dl, const struct reinit_set *ri);
	/* A fate decided after its fork went out; fork: NULL if never seen.
	 * ri: the inherited locks the child re-created (of the fork's foreign
	 * ones when the fork is known). */
	void (*child)(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork,
		      const struct reinit_set *ri);
	/* A deadlock; lock/fork: the parent's fork event and its matching lock;
	 * with_fork: it was just given to fork() as that fork's fate. */
	void (*deadlock)(void *ctx, const struct fh_deadlock_event *ev, const struct fh_lock *lock,
			 const struct fh_fork_event *fork, int with_fork);
	/* Should this fork wait for its fate (text mode, a fork to be shown)? */
	int (*hold)(void *ctx, const struct fh_fork_event *ev);
};

struct corr_opts {
	uint64_t hold_ns;	/* how long a held fork waits for its fate */
	size_t max_pending;	/* forks whose children are still followed */
	size_t max_bytes;	/* memory for their copies */
	/* Optional: look at the living child of hazard fork ev now and add to
	 * ri what it shows re-created; called as the fork is first seen, as
	 * it is released without a fate, and before a fate decided here
	 * (deadlock, alive) goes out. */
	void (*examine)(void *ctx, const struct fh_fork_event *ev, struct reinit_set *ri);
	void *examine_ctx;
};

struct correlate;

struct correlate *correlate_new(const struct corr_opts *opts, const struct corr_sink *sink,
				void *ctx);
void correlate_free(struct correlate *c);

/* size: bytes received; the event is copied. */
void correlate_fork(struct correlate *c, const struct fh_fork_event *ev, size_t size);
void correlate_child(struct correlate *c, const struct fh_child_event *ev);
void correlate_deadlock(struct correlate *c, const struct fh_deadlock_event *ev);
/* Child re-created the lock at addr (why: reinit.h): kept if it is one of
 * its fork's foreign locks. */
void correlate_reinit(struct correlate *c, uint32_t child, uint64_t addr, const char *why);
/* The fork event of a child still followed, or NULL. */
const struct fh_fork_event *correlate_fork_of(struct correlate *c, uint32_t child);
/* Release held forks whose window has passed. */
void correlate_tick(struct correlate *c, uint64_t now_ns);
/* Tracing stops: every child still followed gets the outcome "alive". */
void correlate_finish(struct correlate *c, uint64_t now_ns);

size_t correlate_pending(const struct correlate *c);
uint64_t correlate_evicted(const struct correlate *c);
/* Hazard forks whose fate came with every foreign lock re-created. */
uint64_t correlate_mitigated(const struct correlate *c);

#endif

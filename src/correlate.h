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

struct corr_sink {
	/* A fork, with its fate when it was decided within the hold window. */
	void (*fork)(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		     const struct fh_deadlock_event *dl);
	/* A fate decided after its fork went out; fork: NULL if never seen. */
	void (*child)(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork);
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
};

struct correlate;

struct correlate *correlate_new(const struct corr_opts *opts, const struct corr_sink *sink,
				void *ctx);
void correlate_free(struct correlate *c);

/* size: bytes received; the event is copied. */
void correlate_fork(struct correlate *c, const struct fh_fork_event *ev, size_t size);
void correlate_child(struct correlate *c, const struct fh_child_event *ev);
void correlate_deadlock(struct correlate *c, const struct fh_deadlock_event *ev);
/* Release held forks whose window has passed. */
void correlate_tick(struct correlate *c, uint64_t now_ns);
/* Tracing stops: every child still followed gets the outcome "alive". */
void correlate_finish(struct correlate *c, uint64_t now_ns);

size_t correlate_pending(const struct correlate *c);
uint64_t correlate_evicted(const struct correlate *c);

#endif

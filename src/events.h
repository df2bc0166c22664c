/* SPDX-License-Identifier: GPL-2.0 */
/* The ring buffer's records: checked, dispatched on their type tag, passed on
 * to correlation and from there to output. */
#ifndef FH_EVENTS_H
#define FH_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct containers;
struct correlate;
struct findings;
struct gate;
struct otherthreads;
struct output;
struct ustacks;

struct events {
	struct correlate *corr;
	struct output *out;
	struct ustacks *ustacks;	/* where user-stack copies are unwound, or NULL */
	struct containers *containers;	/* where processes run, for JSON; NULL: not told */
	struct findings *findings;	/* judges hazards and deadlocks (site, rules); NULL: none */
	struct gate *gate;		/* --kill-deadlocked; NULL: none */
	struct otherthreads *others;	/* reads forks' other threads, or NULL */
	/* A traced process asks for lock probes (fh_probe_request). */
	void (*probe_request)(void *ctx, pid_t pid);
	/* A deadlock the kernel left to userspace was confirmed: mark the
	 * child decided there too (NULL: nothing to mark). */
	void (*child_decided)(void *ctx, pid_t child);
	/* Is CPython's re-creation of locks probed in process pid (NULL: no)? */
	bool (*reinit_observed)(void *ctx, pid_t pid);
	void *ctx;
	/* Service mode's filters, before any work is spent on a record (its
	 * size checked already); NULL keeps everything. */
	bool (*accept)(void *ctx, uint32_t type, const void *data, size_t size);
	void *accept_ctx;
	/* Consume no longer than this (CLOCK_MONOTONIC ns; 0: no limit): under
	 * a flood the ring buffer never empties, and the loop has signals,
	 * ticks and the metrics endpoint to serve, and shutdown must end. */
	uint64_t until_ns;
	unsigned int since_check;
	uint64_t malformed;	/* records too short for their type: a bug if ever > 0 */
	/* At exit, past the drain's deadline: records only counted, so that
	 * none is dropped without a trace (reported as lost). */
	bool count_only;
	uint64_t unread, unread_forks;
	/* Corrections of the kernel's counts, made here: hazard forks whose
	 * every foreign lock turned out (in /proc/PID/maps) to be shared, and
	 * deadlocks the kernel left undecided and this confirmed. */
	uint64_t hazards_shared, deadlocks_confirmed;
};

/* ring_buffer__new() callback; ctx is a struct events. */
int events_handle(void *ctx, void *data, size_t size);

/* The correlation sink that renders through events->out. */
extern const struct corr_sink events_sink;

#endif

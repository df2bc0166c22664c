/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whether a fork is a hazard, and which of its locks make it one: the one
 * place that decides it, for the text and JSON output, the daemon's sites and
 * filters and the metrics. Today every lock another thread held at the fork
 * is a hazard (the kernel's own count, FH_FORK_FOREIGN_LOCKS in
 * forkhazard.h, which the summary's "hazards" reports). A rule that sets
 * some aside (a lock the interpreter takes for itself, one in shared memory,
 * one the child re-creates) is a new role here, and every consumer follows.
 */
#ifndef FH_HAZARD_H
#define FH_HAZARD_H

#include <stdbool.h>
#include <stdint.h>
#include "forkhazard.h"

/* What a lock of a fork snapshot is to the child. */
enum hazard_lock {
	HAZARD_LOCK_OWN,	/* the forking thread's own: its copy in the child may release it */
	HAZARD_LOCK_FOREIGN,	/* another thread's: nothing in the child can release it */
};

enum hazard_lock hazard_lock_role(const struct fh_fork_event *ev, const struct fh_lock *l);

/* The foreign locks that are hazards: those of ev's locks[], and those the
 * kernel omitted (more than FH_MAX_FOREIGN_LOCKS). */
uint32_t hazard_foreign_locks(const struct fh_fork_event *ev);

/* Is the fork a hazard (at least one foreign lock)? */
bool hazard_fork(const struct fh_fork_event *ev);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whether a fork is a hazard, which of its locks make it one, and whether
 * its child defused them: the one place that decides it, for the text and
 * JSON output, the daemon's sites and filters, the metrics and the exit
 * status of --fail-on. A lock
 * another thread held at the fork is a hazard unless it lies in memory the
 * parent shares (the child gets the same lock, not a frozen copy: the kernel
 * flags it, FH_LOCK_SHARED, and leaves it out of its own count,
 * FH_FORK_FOREIGN_LOCKS, which the summary's "hazards" reports). A hazard
 * stays one when the child re-creates the lock (reinit.h), but is then
 * "mitigated": every consumer follows these rules.
 */
#ifndef FH_HAZARD_H
#define FH_HAZARD_H

#include <stdbool.h>
#include <stdint.h>
#include "forkhazard.h"

struct reinit_set;

/* What a lock of a fork snapshot is to the child. */
enum hazard_lock {
	HAZARD_LOCK_OWN,	/* the forking thread's own: its copy in the child may release it */
	HAZARD_LOCK_FOREIGN,	/* another thread's: nothing in the child can release it */
	HAZARD_LOCK_SHARED,	/* another thread's, in shared memory: not inherited,
				 * its holder releases it for the child too */
};

enum hazard_lock hazard_lock_role(const struct fh_fork_event *ev, const struct fh_lock *l);

/* The foreign locks that are hazards: those of ev's locks[], and those the
 * kernel omitted (more than FH_MAX_FOREIGN_LOCKS). */
uint32_t hazard_foreign_locks(const struct fh_fork_event *ev);

/* Is the fork a hazard (at least one foreign lock)? */
bool hazard_fork(const struct fh_fork_event *ev);

/* How bad a finding is; a deadlock is worse than a hazard (--fail-on). */
enum hazard_level { HAZARD_LEVEL_NONE, HAZARD_LEVEL_HAZARD, HAZARD_LEVEL_DEADLOCK };

/*
 * THE decision "is this a finding, of which level", once the suppression
 * rules (suppress.c) have spoken: a fork is a hazard finding while one of its
 * foreign locks is not set aside (set_aside[i] for ev->locks[i]; NULL: none
 * is), the locks the kernel omitted included (omitted_set_aside: a rule
 * that names no lock stack covers them too); a confirmed deadlock is a
 * deadlock finding unless set aside. A shared lock is never foreign; the
 * caller sets aside a lock the child re-created (reinit_has), so that a
 * mitigated hazard counts as nothing either.
 */
enum hazard_level hazard_fork_level(const struct fh_fork_event *ev, const bool *set_aside,
				    bool omitted_set_aside);
enum hazard_level hazard_deadlock_level(bool set_aside);

/* Is the fork a hazard whose child re-created every foreign lock (none
 * omitted), by the evidence in ri (NULL: none)? */
bool hazard_mitigated(const struct fh_fork_event *ev, const struct reinit_set *ri);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Whether a fork is a hazard, and which of its locks make it one: the one
 * place that decides it, for the text and JSON output, the daemon's sites and
 * filters, the metrics and the exit status of --fail-on. Today every lock
 * another thread held at the fork is a hazard (the kernel's own count,
 * FH_FORK_FOREIGN_LOCKS in forkhazard.h, which the summary's "hazards"
 * reports). A rule that sets some aside (a lock the interpreter takes for
 * itself, one in shared memory, one the child re-creates) is a new role
 * here, and every consumer follows.
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

/* How bad a finding is; a deadlock is worse than a hazard (--fail-on). */
enum hazard_level { HAZARD_LEVEL_NONE, HAZARD_LEVEL_HAZARD, HAZARD_LEVEL_DEADLOCK };

/*
 * THE decision "is this a finding, of which level", once the suppression
 * rules (suppress.c) have spoken: a fork is a hazard finding while one of its
 * foreign locks is not set aside (set_aside[i] for ev->locks[i]; NULL: none
 * is), the locks the kernel omitted included (omitted_set_aside: a rule
 * that names no lock stack covers them too); a confirmed deadlock is a
 * deadlock finding unless set aside. What the verdicts of issue 15 add (a
 * lock the child re-creates, one in shared memory) counts as nothing here.
 */
enum hazard_level hazard_fork_level(const struct fh_fork_event *ev, const bool *set_aside,
				    bool omitted_set_aside);
enum hazard_level hazard_deadlock_level(bool set_aside);

#endif

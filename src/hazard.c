// SPDX-License-Identifier: GPL-2.0
#include <stddef.h>
#include "hazard.h"
#include "reinit.h"

enum hazard_lock hazard_lock_role(const struct fh_fork_event *ev, const struct fh_lock *l)
{
	(void)ev;
	if (l->flags & FH_LOCK_OWN)
		return HAZARD_LOCK_OWN;
	return l->flags & FH_LOCK_SHARED ? HAZARD_LOCK_SHARED : HAZARD_LOCK_FOREIGN;
}

uint32_t hazard_foreign_locks(const struct fh_fork_event *ev)
{
	uint32_t n = ev->locks_omitted;

	for (uint32_t i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++)
		n += hazard_lock_role(ev, &ev->locks[i]) == HAZARD_LOCK_FOREIGN;
	return n;
}

bool hazard_fork(const struct fh_fork_event *ev)
{
	return hazard_foreign_locks(ev) > 0;
}

enum hazard_level hazard_fork_level(const struct fh_fork_event *ev, const bool *set_aside,
				    bool omitted_set_aside)
{
	if (ev->locks_omitted && !omitted_set_aside)
		return HAZARD_LEVEL_HAZARD;
	for (uint32_t i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++)
		if (hazard_lock_role(ev, &ev->locks[i]) == HAZARD_LOCK_FOREIGN &&
		    !(set_aside && set_aside[i]))
			return HAZARD_LEVEL_HAZARD;
	return HAZARD_LEVEL_NONE;
}

enum hazard_level hazard_deadlock_level(bool set_aside)
{
	return set_aside ? HAZARD_LEVEL_NONE : HAZARD_LEVEL_DEADLOCK;
}

bool hazard_mitigated(const struct fh_fork_event *ev, const struct reinit_set *ri)
{
	if (!ri || !hazard_fork(ev) || ev->locks_omitted)
		return false;
	for (uint32_t i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++)
		if (hazard_lock_role(ev, &ev->locks[i]) == HAZARD_LOCK_FOREIGN &&
		    !reinit_has(ri, ev->locks[i].addr, NULL))
			return false;
	return true;
}

// SPDX-License-Identifier: GPL-2.0
#include <stddef.h>
#include <string.h>
#include "hazard.h"
#include "pycode.h"
#include "reinit.h"

enum hazard_lock hazard_lock_role(const struct fh_fork_event *ev, const struct fh_lock *l)
{
	(void)ev;
	if (l->flags & FH_LOCK_PY_INTERNAL)
		return HAZARD_LOCK_INTERNAL;
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

/* Is file the standard library's threading.py ("pythonX.Y/threading.py"
 * once normalized: not a module of that name elsewhere)? */
static bool stdlib_threading(const char *file)
{
	static const char tail[] = "/threading.py";
	char site[512];
	size_t n = pycode_site_path(file, site, sizeof(site));

	return n < sizeof(site) && n > sizeof(tail) - 1 && !strncmp(site, "python3.", 8) &&
	       !strcmp(site + n - (sizeof(tail) - 1), tail) &&
	       strchr(site, '/') == site + n - (sizeof(tail) - 1);
}

/* The function's name without its class: 3.11+ give qualified names, 3.10
 * only co_name. */
static bool named(const char *function, const char *cls, const char *name)
{
	size_t c = strlen(cls);

	return !strcmp(function, name) ||
	       (!strncmp(function, cls, c) && function[c] == '.' && !strcmp(function + c + 1, name));
}

/* Lines of Condition.wait's `waiter.acquire(...)` calls, from its `def`:
 * the same in 3.10, 3.11, 3.12 and 3.13 (tests/test_python.py checks every
 * installed threading.py). */
static const int waiter_lines[] = { 26, 32, 36, 38 };

uint32_t hazard_py_internal(const char *file, const char *function, int line, int firstline)
{
	if (!stdlib_threading(file))
		return 0;
	if (named(function, "Thread", "_set_tstate_lock") ||
	    named(function, "Thread", "_reset_internal_locks") ||
	    named(function, "Thread", "_wait_for_tstate_lock"))
		return FH_LOCK_PY_SENTINEL;
	if (named(function, "Condition", "wait") && line > 0 && firstline > 0)
		for (size_t i = 0; i < sizeof(waiter_lines) / sizeof(waiter_lines[0]); i++)
			if (line - firstline == waiter_lines[i])
				return FH_LOCK_PY_WAITER;
	return 0;
}

const char *hazard_internal_name(uint32_t flags)
{
	if (flags & FH_LOCK_PY_SENTINEL)
		return "sentinel";
	if (flags & FH_LOCK_PY_WAITER)
		return "condition-waiter";
	return NULL;
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

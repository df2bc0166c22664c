// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include "advice.h"

/*
 * Each advice: what the child inherited, then what to change, the safest
 * change first. Python first: most forks in the field are multiprocessing's.
 */
static const struct {
	const char *held;	/* followed by the acquisition site, when known */
	const char *fix;
} texts[ADVICE_MAX] = {
	[ADVICE_PYTHON_LOCK] = {
		"Another thread held this Python lock",
		"Start worker processes with multiprocessing.get_context(\"forkserver\") or "
		"get_context(\"spawn\") instead of the fork start method, or fork before starting "
		"threads; if the child must inherit the lock, make it fork-safe with "
		"os.register_at_fork(before=lock.acquire, after_in_parent=lock.release, "
		"after_in_child=...) that releases or re-creates it in the child.",
	},
	[ADVICE_PYTHON_NATIVE] = {
		"Another thread held a native lock of the interpreter or of an extension module",
		"Start worker processes with multiprocessing.get_context(\"forkserver\") or "
		"get_context(\"spawn\"), or fork before starting threads (an extension module that "
		"starts threads is fork-safe only with pthread_atfork handlers of its own).",
	},
	[ADVICE_NATIVE] = {
		"Another thread held this lock",
		"Exec right after fork, or use posix_spawn; if the child must run code first, take "
		"the lock in a pthread_atfork prepare handler and release or re-initialise it in "
		"the child handler, and call no lock-taking code (malloc, stdio, logging) between "
		"fork and exec.",
	},
};

enum advice_id advice_choose(const struct advice_case *c)
{
	if (c->python_lock)
		return ADVICE_PYTHON_LOCK;
	return c->python_process ? ADVICE_PYTHON_NATIVE : ADVICE_NATIVE;
}

const char *advice_format(enum advice_id id, const char *site, char *buf, size_t size)
{
	if (id < 0 || id >= ADVICE_MAX)
		id = ADVICE_NATIVE;
	if (site && site[0])
		snprintf(buf, size, "%s (taken at %s), and the child's copy stays locked. %s",
			 texts[id].held, site, texts[id].fix);
	else
		snprintf(buf, size, "%s, and the child's copy stays locked. %s", texts[id].held,
			 texts[id].fix);
	return buf;
}

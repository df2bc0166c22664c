/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What to change when a fork is a hazard, for the runtime and the lock at
 * hand: the texts, in one table, and the choice among them. Pure.
 */
#ifndef FH_ADVICE_H
#define FH_ADVICE_H

#include <stdbool.h>
#include <stddef.h>

enum advice_id {
	ADVICE_PYTHON_LOCK,	/* a Python lock (threading, or a library's) */
	ADVICE_PYTHON_NATIVE,	/* a native lock in a Python process */
	ADVICE_NATIVE,		/* C, C++ and every other native program */
	ADVICE_MAX,
};

/* What the advice is chosen from: the hazard's first foreign lock. */
struct advice_case {
	bool python_lock;	/* that lock is a Python one (output.c's runtime "python") */
	bool python_process;	/* the process runs CPython */
};

enum advice_id advice_choose(const struct advice_case *c);

/*
 * The advice as one paragraph into buf: what was held, where it was taken
 * (site: "cache_refresh (demo.c:32)", or NULL when unknown), what to
 * change. Returns buf.
 */
const char *advice_format(enum advice_id id, const char *site, char *buf, size_t size);

#endif

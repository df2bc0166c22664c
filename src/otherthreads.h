/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who else runs in a process as it forks: for each other thread a fork
 * event lists (struct fh_other_thread), its Python thread name and the
 * function it was started with, read from the parent while it is surely
 * there (as its fork event arrives) and kept until the event is printed,
 * which may be after the parent exited; what the kernel read at the fork
 * stands in for a parent gone already. People are often sure their program
 * is single-threaded until this names OpenBLAS's, gRPC's or a logging
 * QueueListener's threads. Bounded: a small table, oldest out.
 */
#ifndef FH_OTHERTHREADS_H
#define FH_OTHERTHREADS_H

#include <stdbool.h>
#include <stdint.h>
#include "forkhazard.h"

#define OTHER_PY_NAME_LEN	64	/* bytes kept of a Python thread name */

/* What was learnt of one other thread. */
struct other_thread_note {
	uint64_t start;		/* its start routine; 0: not known (the main thread) */
	bool verified;		/* read at its process's own glibc's offset (else
				 * the kernel's read at the host glibc's) */
	char py_thread[OTHER_PY_NAME_LEN];	/* "": none */
};

struct otherthreads;
struct pyrt;

/* capacity: fork events remembered. py: the CPython reader (may be NULL). */
struct otherthreads *otherthreads_new(int capacity, struct pyrt *py);
void otherthreads_free(struct otherthreads *ot);

/* A fork event arrived: read its parent's other threads now. */
void otherthreads_note(struct otherthreads *ot, const struct fh_fork_event *ev);

/* What was read of ev->other[i], or NULL (never read, or forgotten). */
const struct other_thread_note *otherthreads_get(const struct otherthreads *ot,
						 const struct fh_fork_event *ev, uint32_t i);

#endif

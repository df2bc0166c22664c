/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Who else runs in a process as it forks: the other threads the kernel
 * lists for a fork (struct fh_threads_event, just before its fork event),
 * each with its Python thread name and the function it was started with,
 * read from the parent as the list arrives (the first thing userspace does
 * for a fork, while the parent is most surely there) and kept until the
 * fork is printed, which may be after the parent exited; what the kernel
 * read at the fork stands in for what the parent could no longer say.
 * People are often sure their program is single-threaded until this names
 * OpenBLAS's, gRPC's or a logging QueueListener's threads. Bounded: a small
 * table, oldest out.
 */
#ifndef FH_OTHERTHREADS_H
#define FH_OTHERTHREADS_H

#include <stdbool.h>
#include <stdint.h>
#include "forkhazard.h"

#define OTHER_PY_NAME_LEN	64	/* bytes kept of a Python thread name */

/* One other thread. */
struct other_thread_note {
	uint32_t tid;
	char comm[FH_COMM_LEN];
	uint64_t start;		/* its start routine; 0: not known (the main thread) */
	bool verified;		/* read at its process's own glibc's offset (else
				 * the kernel's read at the host glibc's) */
	char py_thread[OTHER_PY_NAME_LEN];	/* "": none */
};

struct otherthreads;
struct pyrt;

/* capacity: forks remembered. py: the CPython reader (may be NULL). */
struct otherthreads *otherthreads_new(int capacity, struct pyrt *py);
void otherthreads_free(struct otherthreads *ot);

/* A fork's other threads arrived: keep them, with what their process says
 * of them now. */
void otherthreads_add(struct otherthreads *ot, const struct fh_threads_event *ev);

/* The other threads kept for fork ev (*n of them), or NULL when none were
 * received (lost with a full ring buffer, or forgotten). */
const struct other_thread_note *otherthreads_get(const struct otherthreads *ot,
						 const struct fh_fork_event *ev, uint32_t *n);

#endif

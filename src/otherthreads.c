// SPDX-License-Identifier: GPL-2.0
#include <stdlib.h>
#include <string.h>
#include "libcthread.h"
#include "lockword.h"
#include "otherthreads.h"
#include "procfs.h"
#include "pyrt.h"

#define LIBC_CACHE	64	/* processes whose struct pthread layout is remembered */

struct fork_notes {
	uint32_t pid, tid;
	uint64_t time_ns;	/* the fork's: with pid and tid, which fork */
	uint32_t n;
	struct other_thread_note t[FH_MAX_OTHER_THREADS];
};

/* A process's glibc thread layout, by PID and start time (a reused PID is
 * another process). */
struct libc_entry {
	uint32_t pid;
	unsigned long long starttime;
	bool ok;
	struct libc_thread lt;
};

struct otherthreads {
	struct pyrt *py;
	struct fork_notes *notes;
	int capacity, next;
	struct libc_entry libc[LIBC_CACHE];
};

struct otherthreads *otherthreads_new(int capacity, struct pyrt *py)
{
	struct otherthreads *ot = calloc(1, sizeof(*ot));

	if (!ot)
		return NULL;
	ot->notes = calloc((size_t)capacity, sizeof(*ot->notes));
	if (!ot->notes) {
		free(ot);
		return NULL;
	}
	ot->capacity = capacity;
	ot->py = py;
	return ot;
}

void otherthreads_free(struct otherthreads *ot)
{
	if (!ot)
		return;
	free(ot->notes);
	free(ot);
}

/* pid's struct pthread layout, cached; NULL when it is not known. */
static const struct libc_thread *libc_of(struct otherthreads *ot, uint32_t pid)
{
	struct libc_entry *e = &ot->libc[pid % LIBC_CACHE];
	struct fh_proc_stat st;

	if (procfs_read_stat((pid_t)pid, 0, &st))
		return NULL;
	if (e->pid != pid || e->starttime != st.starttime) {
		e->pid = pid;
		e->starttime = st.starttime;
		e->ok = libcthread_of_process((pid_t)pid, &e->lt) == 0 &&
			e->lt.start_routine_offset >= 0;
	}
	return e->ok ? &e->lt : NULL;
}

void otherthreads_add(struct otherthreads *ot, const struct fh_threads_event *ev)
{
	struct fork_notes *fn = &ot->notes[ot->next];
	const struct libc_thread *lt;
	bool python;

	ot->next = (ot->next + 1) % ot->capacity;
	memset(fn, 0, sizeof(*fn));
	fn->pid = ev->pid;
	fn->tid = ev->tid;
	fn->time_ns = ev->time_ns;
	fn->n = ev->nr < FH_MAX_OTHER_THREADS ? ev->nr : FH_MAX_OTHER_THREADS;
	lt = libc_of(ot, ev->pid);
	/* names of threads that came since the last fork are read anew */
	python = ot->py && pyrt_refresh_threads(ot->py, (pid_t)ev->pid) == 0;
	for (uint32_t i = 0; i < fn->n; i++) {
		const struct fh_other_thread *o = &ev->other[i];
		struct other_thread_note *t = &fn->t[i];
		uint64_t start = 0;

		t->tid = o->tid;
		memcpy(t->comm, o->comm, sizeof(t->comm));
		/* the thread's own descriptor, in the parent's memory: a
		 * pointer into its code, or nothing (the main thread) */
		t->start = o->start;
		if (lt && o->pthread &&
		    lockword_read((pid_t)ev->pid, o->pthread + (uint64_t)lt->start_routine_offset,
				  &start, sizeof(start)) == (ssize_t)sizeof(start)) {
			t->start = start;
			t->verified = true;
		}
		if (python)
			pyrt_thread_name_by_ident(ot->py, (pid_t)ev->pid, o->pthread, t->py_thread,
						  sizeof(t->py_thread));
	}
}

const struct other_thread_note *otherthreads_get(const struct otherthreads *ot,
						 const struct fh_fork_event *ev, uint32_t *n)
{
	for (int k = 0; ot && k < ot->capacity; k++) {
		const struct fork_notes *fn = &ot->notes[k];

		if (fn->pid == ev->pid && fn->tid == ev->tid && fn->time_ns == ev->time_ns) {
			*n = fn->n;
			return fn->t;
		}
	}
	*n = 0;
	return NULL;
}

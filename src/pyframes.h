/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The Python side of events. Which traced processes are Python, told to the
 * kernel's frame walker (their struct fh_py_layout in the py_layouts map,
 * bpf/python.bpf.h); the frames it recorded (code object, instruction)
 * turned into file, line and function, and the threads' names, read from
 * the processes (pyrt.c) as events arrive, while the processes are surely
 * there, and served from pyrt's caches when they are printed; the
 * interpreter's own locks marked on fork events (hazard.h's rule) before
 * anything counts or prints them.
 */
#ifndef FH_PYFRAMES_H
#define FH_PYFRAMES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkhazard.h"
#include "pyrt.h"

struct jw;
struct pyframes;

/*
 * Where frames and names come from: the processes themselves (NULL ops,
 * pyrt), or a stand-in (tests/unit/test_pipeline.c). Each returns 0 or
 * -errno, as the pyrt function of the same name.
 */
struct pyframes_ops {
	int (*resolve)(void *ctx, pid_t pid, uint64_t code, uint64_t instr, struct pyrt_frame *out);
	int (*thread_name)(void *ctx, pid_t pid, pid_t tid, char *buf, size_t size);
	/* a (frozen) thread's frames read now: a deadlocked child's */
	int (*thread_frames)(void *ctx, pid_t pid, pid_t tid, struct pyrt_rawframe *raw, int max);
	/* the lock the interpreter holds for thread tid all its life */
	int (*thread_sentinel)(void *ctx, pid_t pid, pid_t tid, uint64_t *lock);
	void *ctx;
};

struct pyframes_opts {
	int layouts_fd;			/* the py_layouts map; -1: no kernel walker */
	volatile uint32_t *layouts_gen;	/* bumped after each change of it */
	const struct pyframes_ops *ops;	/* NULL: read the processes */
};

struct pyframes_stats {
	uint64_t layouts, layouts_failed;	/* given to the kernel; refused (map full) */
	uint64_t internal_locks;		/* locks marked as the interpreter's own */
};

struct pyframes *pyframes_new(const struct pyframes_opts *opts);
void pyframes_free(struct pyframes *pf);

/*
 * pid may be a Python: give the kernel its layout, now, or at the ticks of
 * the next few seconds while its interpreter starts (pyrt_layout's
 * -EAGAIN). Cheap for a process already decided. `again`: what was decided
 * for pid is stale (it exec'd, or the kernel dropped its layout).
 */
void pyframes_watch(struct pyframes *pf, pid_t pid, bool again);
/*
 * pid is about to exec (a COMMAND, before it is released): look at it
 * every few ms once it has exec'd and while
 * its program starts, so that a Python's layout is in the kernel before the
 * program's first thread takes its first lock. pyframes_polling says when
 * pyframes_tick is wanted that often.
 */
void pyframes_watch_exec(struct pyframes *pf, pid_t pid);
bool pyframes_polling(const struct pyframes *pf);
void pyframes_tick(struct pyframes *pf, uint64_t now_ns);

/*
 * A fork event as it arrives (a copy the caller may change): its Python
 * frames resolved and its threads named while the parent is there, its
 * interpreter-internal locks flagged (FH_LOCK_PY_*).
 */
void pyframes_fork(struct pyframes *pf, struct fh_fork_event *ev);
/* A deadlock as it arrives: where the child waits in Python, read from the
 * child itself when the kernel had no layout to walk it with. */
void pyframes_deadlock(struct pyframes *pf, struct fh_deadlock_event *ev);

/* The frames of a recorded stack of process pid, innermost first, at most
 * max (those that resolve). 0 for none. */
int pyframes_stack(struct pyframes *pf, pid_t pid, const struct fh_py_stack *st,
		   struct pyrt_frame *out, int max);
/* A fork event's Python frames (ev->py, then its outer stacks), innermost
 * first, at most max (FH_PY_FORK_FRAMES: all of them). */
int pyframes_fork_stack(struct pyframes *pf, const struct fh_fork_event *ev,
			struct pyrt_frame *out, int max);
/* Of frames f[0..n) (innermost first, n > 0), the one that names the place
 * of what they did: the innermost outside the standard library (the user's
 * call into it: os.fork's caller, Pool's), else the innermost. Its index. */
int pyframes_place(const struct pyrt_frame *f, int n);
/* The reader of the processes (pyrt) this uses, for others that read
 * Python processes too (otherthreads.c): one cache per process; NULL with
 * stand-in ops. */
struct pyrt *pyframes_reader(struct pyframes *pf);
/* Thread tid's Python thread name (threading.Thread.name), or, in a CPython
 * 3.14+ (which names its threads' OS threads so), os_name (FH_COMM_LEN
 * bytes; may be NULL): 0, or -ENOENT with buf "". */
int pyframes_thread(struct pyframes *pf, pid_t pid, pid_t tid, const char *os_name, char *buf,
		    size_t size);

void pyframes_get_stats(const struct pyframes *pf, struct pyframes_stats *st);

/* JSON: "key": [{"file","line","function"}...], as docs/json.md's pyframe. */
void pyframes_json(struct jw *w, const char *key, const struct pyrt_frame *f, int n);

#endif

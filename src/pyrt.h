/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Reading a CPython process from outside, the one module that knows
 * CPython: its versions (3.10 to 3.13), struct layouts (pyrt_layouts.c),
 * thread states, thread names and frames. Used by inspect, and by whatever
 * turns recorded (code object, instruction) pairs into file:line:function.
 *
 * Memory is read through /proc/PID/mem (lockword_read: no page of it is
 * copied for the read), never written, and the process is never stopped or signalled here. All of
 * it is untrusted and may change under us: every object's type is checked
 * against the process's own type objects before its fields are believed,
 * every length and loop is bounded, and a failed read ends that answer only.
 * Strings are returned as the UTF-8 of what the process holds: escape them
 * before showing them.
 *
 * What each version supports:
 *   3.10  frames (f_lasti), names, stacks; TIDs through glibc's struct pthread
 *   3.11, 3.12  frames (prev_instr), names (managed dicts), stacks
 *   3.13  the same (instr_ptr, inline values), its _Py_DebugOffsets taken
 *         over the table where they differ
 *   3.14+ and free-threaded builds: said not readable (log_info, once),
 *         until scripts/gen-pyoffsets.py has their headers to measure
 */
#ifndef FH_PYRT_H
#define FH_PYRT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkhazard.h"

#define PYRT_FILE_LEN	512	/* bytes kept of a file name (UTF-8, NUL included) */
#define PYRT_FUNC_LEN	256	/* of a qualified function name */
#define PYRT_NAME_LEN	128	/* of a thread name */
#define PYRT_MAX_DEPTH	256	/* frames walked in one stack, at most */

/* A Python frame as people read it. */
struct pyrt_frame {
	char file[PYRT_FILE_LEN];	/* co_filename, as the code object has it */
	char function[PYRT_FUNC_LEN];	/* co_qualname (3.11+), co_name (3.10) */
	int line;			/* 0: not known */
	int firstline;			/* co_firstlineno: the line of its `def` */
};

/* A frame as a BPF program can record it (see struct fh_py_layout). */
struct pyrt_rawframe {
	uint64_t code;		/* the code object's address */
	uint64_t instr;		/* f_lasti (3.10), prev_instr / instr_ptr (3.11+) */
};

struct pyrt_info {
	int major, minor, micro;	/* micro -1: not known (3.10 has no Py_Version) */
	bool debug_offsets;	/* 3.13+: the interpreter's own offsets were read */
	uint64_t runtime;	/* address of _PyRuntime */
	char module[256];	/* the libpython or executable that holds it */
};

/* Bounds; zero fields take the defaults. */
struct pyrt_limits {
	size_t max_procs;	/* processes remembered, least recently used out (32) */
	size_t max_codes;	/* code objects cached per process (1024) */
	size_t max_code_bytes;	/* their names and line tables per process (1 MiB) */
	size_t max_threads;	/* threads whose names are kept per process (1024) */
};

struct pyrt_stats {
	uint64_t procs_opened, procs_evicted;
	uint64_t code_hits, code_misses, code_evicted, code_replaced;
	uint64_t reads, read_failures;
};

struct pyrt;

struct pyrt *pyrt_new(const struct pyrt_limits *lim);
void pyrt_free(struct pyrt *r);

/*
 * Is pid a Python this module can read? Cheap after the first call for a
 * process (a reused PID is noticed by its start time). Returns 0 and fills
 * info (may be NULL); -ENOENT: not a Python process; -ENOTSUP: a Python it
 * cannot read (said once with log_info; info->major and minor are filled
 * when its version is known, else 0); -EAGAIN: its interpreter is not
 * initialized yet; -ESRCH: gone; other -errno: not readable (-EPERM).
 */
int pyrt_open(struct pyrt *r, pid_t pid, struct pyrt_info *info);

/*
 * Does the program pid runs hold or load a CPython (a libpython3.* it
 * needs, or a _PyRuntime of its own)? Told from the executable's file alone,
 * before its interpreter is loaded or started. Returns 1, 0, or -errno.
 */
int pyrt_program_is_python(pid_t pid);

/* Forget pid (it exited or exec'd): its caches and thread names. */
void pyrt_forget(struct pyrt *r, pid_t pid);

/*
 * File, line and function of a recorded frame of pid: code the code object's
 * address, instr as recorded (struct pyrt_rawframe). Cached per code object
 * (checked against the object each time it can still be read; once the
 * process is gone, what was cached is served). Returns 0 (out->line may
 * still be 0: no line for that instruction), or -errno: -EINVAL not a code
 * object, -ESRCH gone and not cached, or pyrt_open's errors.
 */
int pyrt_resolve(struct pyrt *r, pid_t pid, uint64_t code, uint64_t instr,
		 struct pyrt_frame *out);

/*
 * The Python frames of thread tid of pid, innermost first, at most max:
 * raw (what a BPF program records) or resolved. For a stopped or frozen
 * thread; a running one changes under the walk, which then stops early or
 * returns what it read. Frames being set up (3.11+: not yet past their
 * first instruction) and C-stack shims are left out, as CPython's own
 * tracebacks do. Returns the count (0: the thread is in no Python code),
 * -ENOENT: tid has no Python thread state, or pyrt_open's errors.
 */
int pyrt_thread_frames(struct pyrt *r, pid_t pid, pid_t tid, struct pyrt_rawframe *raw, int max);
int pyrt_thread_stack(struct pyrt *r, pid_t pid, pid_t tid, struct pyrt_frame *frames, int max);

/* The address of thread tid's PyThreadState (what struct fh_py_layout's
 * first step finds). Returns 0, -ENOENT, or pyrt_open's errors. */
int pyrt_thread_state(struct pyrt *r, pid_t pid, pid_t tid, uint64_t *tstate);

/*
 * Thread names (threading.Thread.name) by TID or by ident (pthread_t), from
 * what was read last: the first lookup of a process reads them all (its
 * thread states and threading._active), pyrt_refresh_threads() again. Returns
 * 0 with the name in buf, -ENOENT: no such Python thread or no name known for
 * it, or pyrt_open's errors.
 */
int pyrt_refresh_threads(struct pyrt *r, pid_t pid);
int pyrt_thread_name(struct pyrt *r, pid_t pid, pid_t tid, char *buf, size_t size);
int pyrt_thread_name_by_ident(struct pyrt *r, pid_t pid, uint64_t ident, char *buf, size_t size);

/*
 * The lock a threading.Thread holds for its whole life, as the interpreter
 * knows it (3.10-3.12: Thread._tstate_lock, a _thread.lock; its
 * PyThread_type_lock, the sem_t the C library sees): from what was read
 * last, like the names. Returns 0 with *lock, -ENOENT (no such thread, or
 * none: 3.13+ has no such lock), or pyrt_open's errors.
 */
int pyrt_thread_sentinel(struct pyrt *r, pid_t pid, pid_t tid, uint64_t *lock);

/*
 * What a BPF program needs to walk pid's Python frames (struct fh_py_layout).
 * Returns 0, -EAGAIN (not initialized yet: no thread-state key), -ERANGE
 * (its key is beyond glibc's first block), -ENOENT (not Python, or no glibc
 * whose pthread_getspecific is understood), or pyrt_open's errors.
 */
int pyrt_layout(struct pyrt *r, pid_t pid, struct fh_py_layout *layout);

void pyrt_get_stats(const struct pyrt *r, struct pyrt_stats *st);

#endif

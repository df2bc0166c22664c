/* SPDX-License-Identifier: GPL-2.0 */
/*
 * `forkhazard inspect PID`: one-shot diagnosis of a running (hung) process,
 * no BPF. What each thread waits on, from /proc and the process's memory;
 * who owns that lock and whether the owner is a live thread of the process;
 * the threads' stacks, unwound by libdwfl under a brief ptrace stop.
 */
#ifndef FH_INSPECT_H
#define FH_INSPECT_H

#include <stddef.h>
#include <sys/types.h>
#include "config.h"
#include "lockword.h"
#include "procfs.h"
#include "pyrt.h"
#include "symbolize.h"

enum inspect_verdict { INSPECT_OK, INSPECT_BLOCKED, INSPECT_DEADLOCK };

/* What a thread is doing, from its system call. */
enum inspect_wait {
	WAIT_NONE,		/* running, or not in a system call */
	WAIT_FUTEX,		/* a futex wait: see futex and lock */
	WAIT_SLEEP,		/* nanosleep, or a restarted timed wait */
	WAIT_CHILD,		/* wait4, waitid */
	WAIT_FILELOCK,		/* flock, fcntl F_SETLKW */
	WAIT_OTHER,		/* any other system call: I/O, poll, ... */
};

/* Where the owner of the lock a thread waits on is. */
enum inspect_owner {
	OWNER_NONE,		/* no owner known */
	OWNER_HERE,		/* a live thread of the inspected process */
	OWNER_ELSEWHERE,	/* a live thread of another process: owner_pid */
	OWNER_GONE,		/* no such thread, or it has exited */
};

/* A frame as inspect keeps it: struct fh_frame is too big to keep 32 of per thread. */
struct inspect_frame {
	uint64_t addr;		/* pc; a return address for every frame but #0 */
	uint64_t offset;	/* from the symbol (symbol != NULL) */
	uint64_t module_offset;	/* from the module's load address (module != NULL) */
	char *symbol;		/* NULL: unknown */
	char *module;		/* NULL: unknown */
};

struct inspect_thread {
	pid_t tid;
	char comm[64];		/* raw bytes: escape before showing */
	char state;		/* as in /proc/PID/stat: R, S, D, T, t, Z, ... */
	char wchan[64];
	bool have_syscall;
	struct fh_syscall sc;
	enum inspect_wait wait;
	struct lw_wait futex;	/* wait == WAIT_FUTEX */
	uint8_t mem[LW_WINDOW];	/* the futex word and what follows it */
	size_t mem_len;
	struct lw_lock lock;	/* wait == WAIT_FUTEX */
	enum inspect_owner owner;
	pid_t owner_pid;	/* OWNER_ELSEWHERE: the process the owner belongs to */
	char owner_comm[64];	/* ... and its name */
	int nframes;
	struct inspect_frame *frames;
	bool stack_tried;	/* a stack was asked for (nframes 0: it failed) */
	/* a Python process's thread: its threading.Thread name ("" none) and
	 * Python frames, innermost first */
	char py_thread[PYRT_NAME_LEN];
	int py_nframes;
	struct pyrt_frame *py_frames;
	bool py_read;		/* its Python stack was read */
};

struct inspect_proc {
	pid_t pid, ppid;
	char comm[64];
	char state;
	int nthreads;		/* in threads[] */
	int omitted;		/* threads beyond INSPECT_MAX_THREADS, not looked at */
	struct inspect_thread *threads;	/* sorted by tid */
	bool python;		/* a CPython that src/pyrt.c reads: py_* below */
	struct pyrt_info py;
};

/*
 * The verdict on what was gathered, and why in one line of plain language
 * (untrusted bytes in it, such as names, are not escaped). Pure.
 */
enum inspect_verdict inspect_judge(const struct inspect_proc *p, char *why, size_t size);
const char *inspect_verdict_name(enum inspect_verdict v);

int inspect_run(const struct fh_config *cfg);

#endif

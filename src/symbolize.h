/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Addresses to frames: user stacks recorded by the BPF side, resolved with
 * elfutils' libdwfl against the process's modules. Never prints anything.
 *
 * A process's executable mappings are snapshotted when it is first seen
 * (syms_note_process), so its stacks still resolve after it exited; ELF files
 * are opened once per file (symmod.c) whatever number of processes map them.
 */
#ifndef FH_SYMBOLIZE_H
#define FH_SYMBOLIZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define FH_SYM_LEN	512	/* demangled C++ names are long */
#define FH_MODULE_LEN	1024
#define FH_FILE_LEN	1024
#define FH_INLINE_MAX	4	/* inlined calls kept per frame, innermost first */
#define FH_BUILD_ID_MAX	64	/* bytes */

/* A function inlined at a frame's address, and where in it the address is. */
struct fh_inline {
	char symbol[FH_SYM_LEN];
	char file[FH_FILE_LEN];	/* "" when unknown */
	unsigned int line;
};

struct fh_frame {
	uint64_t addr;
	bool known;		/* symbol and offset are valid */
	bool has_module;	/* module (and module_offset) are valid */
	bool fp;		/* from a frame-pointer walk: may be wrong */
	uint64_t offset;	/* from the symbol's start */
	uint64_t module_offset;	/* from the module's load address */
	char symbol[FH_SYM_LEN];
	char module[FH_MODULE_LEN];	/* full path; " (deleted)" appended if it was */
	char file[FH_FILE_LEN];	/* source file, "" when no DWARF says */
	unsigned int line;	/* 0 when unknown */
	char build_id[FH_BUILD_ID_MAX * 2 + 1];	/* hex, "" when unknown */
	int n_inline;
	/* Innermost first. symbol/file/line above are then the function the
	 * code was inlined into and the line of the outermost inlined call. */
	struct fh_inline inl[FH_INLINE_MAX];
};

struct syms;

/* What was dropped or had to be redone, for the summary and the tests. */
struct syms_stats {
	uint64_t modules_opened;	/* ELF files opened (cache misses) */
	uint64_t module_hits;		/* lookups served by an open module */
	uint64_t modules_evicted;	/* closed to stay within the cache bounds */
	uint64_t modules_refused;	/* not usable: not ELF, not regular, unreadable */
	uint64_t sections_disabled;	/* compressed sections over the size bound */
	uint64_t snapshots;		/* processes snapshotted */
	uint64_t snapshots_evicted;	/* dropped (LRU) before their stacks were needed */
	uint64_t snapshots_stale;	/* replaced: the PID was reused */
	uint64_t mappings_dropped;	/* mappings over the per-process bound */
	uint64_t forks_gone;		/* noted after parent and child had exited */
	size_t modules_cached, module_bytes;
	size_t snapshots_cached;
};

/* Bounds; zero fields take the defaults. */
struct syms_limits {
	size_t max_modules;		/* open ELF files (default 128) */
	size_t max_module_bytes;	/* their estimated memory (default 512 MiB) */
	size_t max_snapshots;		/* processes remembered (default 1024) */
};

/* stack_map_fd: the BPF stack map stack ids refer to (-1: none). */
struct syms *syms_new(int stack_map_fd);
struct syms *syms_new_limits(int stack_map_fd, const struct syms_limits *lim);
void syms_free(struct syms *s);

/*
 * Remember pid's executable mappings now, while /proc/PID is there: its
 * stacks resolve from this snapshot even once it exited. Cheap when pid is
 * already known (one stat); a reused PID (other start time) is snapshotted
 * anew. Returns 0 or -errno (-ESRCH: gone already).
 */
int syms_note_process(struct syms *s, pid_t pid);

/*
 * pid forked child: note pid; if pid is already gone (it exited right after
 * forking), its address space lives on in the child, which is snapshotted in
 * its stead, unless it has exec'd (its comm is no longer `comm`, the
 * parent's, FH_COMM_LEN bytes). -ESRCH when neither can be read any more
 * (counted: forks_gone).
 */
int syms_note_fork(struct syms *s, pid_t pid, pid_t child, const char *comm);

/*
 * The frames of one recorded user stack of process pid, at most max.
 * `exact` (if non-zero) is a return address known to be right (the caller of
 * a lock function); it becomes frame #0, the frame-pointer walk follows it.
 * skip: leading entries of the recorded stack to drop (e.g. the lock
 * function itself). Returns the number of frames (0 if nothing is known).
 */
int syms_stack(struct syms *s, pid_t pid, int stack_id, int skip, uint64_t exact,
	       struct fh_frame *frames, int max);

/*
 * A held lock's stack: the exact caller of the lock function, then either
 * the kernel's stack walk (--lock-stack=full) or the frame-pointer frames
 * the BPF side recorded. A frame-pointer frame that lands in no mapped
 * module is garbage from code without frame pointers: the walk stops there
 * rather than keep it. Returns the number of frames, at most max.
 */
struct fh_lock;
int syms_lock_stack(struct syms *s, pid_t pid, const struct fh_lock *l, struct fh_frame *frames,
		    int max);

/*
 * Unwind a captured user stack with DWARF CFI (.eh_frame / .debug_frame), no
 * frame pointers needed: ip, sp, bp are the registers at the capture, stack
 * holds stack_len bytes copied from sp. Memory outside that copy is never
 * read: the walk stops where it would need it. Returns the number of frames
 * (frame #0 is ip itself) or -errno.
 */
int syms_unwind(struct syms *s, pid_t pid, uint64_t ip, uint64_t sp, uint64_t bp,
		const void *stack, size_t stack_len, struct fh_frame *frames, int max);

/* Resolve one address of pid into *f (an instruction address, not a return address). */
void syms_resolve(struct syms *s, pid_t pid, uint64_t addr, struct fh_frame *f);
/* Resolve a return address: the call before it, shown as the address itself. */
void syms_resolve_return(struct syms *s, pid_t pid, uint64_t ret, struct fh_frame *f);

/* Is there a memory map of pid to resolve its addresses with (noted, or
 * read now)? Not once it exited unnoted: its addresses stay addresses. */
bool syms_can_resolve(struct syms *s, pid_t pid);

/* Forget what is cached about pid (it exited or exec'd). */
void syms_forget(struct syms *s, pid_t pid);

void syms_get_stats(const struct syms *s, struct syms_stats *st);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which binaries get lock probes, where in them, and the links that hold the
 * probes: per process (uprobes filtered by PID in the kernel, so untraced
 * processes never take the trap) or for every process that maps a library.
 */
#ifndef FH_PROBES_H
#define FH_PROBES_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct probes;

struct probes_stats {
	int modules;		/* distinct lock libraries resolved */
	int procs;		/* processes with per-process probes */
	int procs_refused;	/* processes not probed: table full */
	int links;		/* uprobe_multi links open */
};

struct probes_opts {
	int acquire_fd;		/* BPF program at lock calls */
	int acquired_fd;	/* ... at their return, where it confirms them */
	int release_fd;		/* ... at unlock calls */
	int hits_fd;		/* the lock_hits map (per-process hit counters), or -1 */
	int max_procs;		/* processes with per-process probes at once */
	bool at_entry;		/* function entries only (slower: see placement.h) */
};

struct probes *probes_new(const struct probes_opts *opts);
void probes_free(struct probes *p);

/*
 * A user's lock functions, "BINARY:ACQUIRE:RELEASE[:TRY]" (--lock-fn): the
 * lock's address is the first argument of both; with TRY, an acquisition
 * counts only when ACQUIRE returns 0. Returns 0, -EINVAL for a malformed spec,
 * -ENOSPC for too many, or -errno when BINARY cannot be found.
 */
int probes_add_lock_fn(struct probes *p, const char *spec);

/*
 * Attach lock probes for the lock libraries that pid maps and that are not
 * probed yet: for pid only (per_process) or for every process (system-wide).
 * Returns the number of libraries newly probed, or -errno:
 *   -ENOENT  pid is gone;   -ENODATA  pid maps no library with lock functions
 *   -ENOTSUP the kernel lacks uprobe_multi links
 */
int probes_attach_process(struct probes *p, pid_t pid, bool per_process);

/*
 * A process held before it execs `program` (argv[0], searched in PATH) and
 * already given probes by probes_attach_process(): probe now, for it, the C
 * library the program will run on when the file tells (a static executable,
 * musl's interpreter), so that its first threads' locks are seen. Returns the
 * number of files newly probed, or -errno.
 */
int probes_attach_program(struct probes *p, pid_t pid, const char *program);

/*
 * Read now, before any process asks for probes, where the lock functions of
 * this machine's C library (the one forkhazard itself maps) are probed, so
 * that a process's first multithreaded fork arms its probes in a millisecond
 * rather than the tens the analysis takes (adaptive mode: pools and servers
 * fork their next worker that soon). Returns 0 or -errno.
 */
int probes_prepare(struct probes *p);

/*
 * Detach the per-process probes of pid (the overhead governor's downgrade):
 * its links are closed, its hit counter and its place in the table are kept;
 * probes_attach_process(p, pid, true) attaches them again. Closing a link
 * waits for the kernel (tens of ms on a busy guest). Returns 0 or -ENOENT
 * (no per-process probes).
 */
int probes_detach_process(struct probes *p, pid_t pid);

/* System-wide: attach to the lock libraries of every running process. */
int probes_attach_everywhere(struct probes *p);

/* Detach the per-process probes of processes that have exited, telling
 * gone(ctx, pid) of each (gone may be NULL). */
void probes_reap_exited(struct probes *p, void (*gone)(void *ctx, pid_t pid), void *ctx);

void probes_get_stats(const struct probes *p, struct probes_stats *st);

/*
 * The lock probe hits (traps) process pid has taken since it got its probes,
 * from the per-CPU counters its probes' cookies name: what the probes cost it
 * is this times the cost of one trap. Per-process probes only. Returns 0,
 * -ENOENT (pid has no per-process probes) or -ENODATA (not counted).
 */
int probes_hits(const struct probes *p, pid_t pid, uint64_t *hits);

#endif

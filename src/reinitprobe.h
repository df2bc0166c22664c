/* SPDX-License-Identifier: GPL-2.0 */
/*
 * CPython's _PyThread_at_fork_reinit, probed for every process that maps the
 * interpreter (bpf/reinit.bpf.c says why that costs nothing to a process
 * that does not fork): once per interpreter file, found in .dynsym (3.10 to
 * 3.12, Debian's static python3.11) or, where the build kept it, .symtab
 * (3.13 made the function local). Where neither has it (a stripped 3.13,
 * 3.14's inline re-initialisation), the process is not covered.
 */
#ifndef FH_REINITPROBE_H
#define FH_REINITPROBE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct reinitprobe;

/* prog_fd: bpf/reinit.bpf.c's program (expected attach type uprobe_multi). */
struct reinitprobe *reinitprobe_new(int prog_fd);
void reinitprobe_free(struct reinitprobe *rp);

/*
 * pid's interpreter (a libpython, or a python executable that links it in),
 * probed now unless it is already. Returns 1 when pid is covered, 0 when it
 * maps no interpreter with the function, or -errno.
 */
int reinitprobe_process(struct reinitprobe *rp, pid_t pid);

/* Was pid found covered by its last reinitprobe_process()? */
bool reinitprobe_covers(const struct reinitprobe *rp, pid_t pid);

/*
 * A process that maps no interpreter yet may be one that just exec'd (its
 * libraries come next): reinitprobe_process() keeps it for a second, and
 * this, called every tick, looks at it again.
 */
void reinitprobe_recheck(struct reinitprobe *rp, uint64_t now_ns);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Capabilities: what tracing needs at start-up, checked before anything is
 * tried, and what it keeps once its programs are loaded and attached.
 *
 *   CAP_BPF, CAP_PERFMON      load the programs, create the maps (start-up only)
 *   CAP_SYS_PTRACE            read /proc/PID/maps of any process (probes, stacks)
 *   CAP_CHECKPOINT_RESTORE    open /proc/PID/map_files/ (the exact file mapped)
 *   CAP_DAC_READ_SEARCH       only when not uid 0: enter other users' /proc/PID/map_files
 *   CAP_KILL                  only with --kill-deadlocked: a deadlocked child of another user
 *
 * Everything else is dropped after attaching, from the effective, permitted,
 * inheritable, ambient and bounding sets: later probe requests only create
 * links from programs already loaded and read /proc, which the kept ones cover.
 */
#ifndef FH_CAPS_H
#define FH_CAPS_H

#include <stdbool.h>
#include <stdint.h>

#define FH_CAP_DAC_READ_SEARCH		2
#define FH_CAP_KILL			5	/* --kill-deadlocked, another user's child */
#define FH_CAP_SETGID			6
#define FH_CAP_SETUID			7
#define FH_CAP_SYS_PTRACE		19
#define FH_CAP_SYS_ADMIN		21
#define FH_CAP_PERFMON			38
#define FH_CAP_BPF			39
#define FH_CAP_CHECKPOINT_RESTORE	40

#define FH_CAPBIT(c)	(1ull << (c))

/* What tracing needs to start; `setid` adds CAP_SETUID/CAP_SETGID (-u USER). */
uint64_t caps_needed_at_start(bool setid);
/* What it keeps after attaching. */
uint64_t caps_kept_after_attach(void);

/* The effective set of this process; 0 if it cannot be read. */
uint64_t caps_effective(void);

/* "CAP_BPF" for FH_CAP_BPF; "CAP_?" for others. */
const char *caps_name(int cap);

/*
 * Check that every capability in `needed` is effective. Returns 0, or the
 * number of the first one missing (its name by caps_name()).
 */
int caps_check(uint64_t needed);

/* Keep only `keep` in every set (bounding and ambient included), for good.
 * Returns 0 or -errno. */
int caps_limit(uint64_t keep);

/* The names of the set bits of `mask`, comma-separated, into buf. */
void caps_format(uint64_t mask, char *buf, size_t size);

#endif

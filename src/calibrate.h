/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a trap costs on this machine: a system call, and a uprobe hit of each
 * kind forkhazard's lock probes can be, measured in this process with
 * uprobes on its own code (uprobe_multi links filtered to its PID, so no
 * other process ever takes them).
 *
 * What one hit costs depends more on the machine than on forkhazard: a
 * hypervisor that takes every exception makes it ten times dearer than bare
 * metal does. Benchmarks count traps per operation and divide added costs by
 * these numbers, so results carry from one machine to another; the overhead
 * governor multiplies hit counts by the cost of one emulated-instruction hit.
 */
#ifndef FH_CALIBRATE_H
#define FH_CALIBRATE_H

#include <stdbool.h>

enum calib_kind {
	CALIB_SYSCALL,		/* getppid(2): a round trip into the kernel */
	CALIB_EMULATED,		/* uprobe on an instruction the kernel emulates (push) */
	CALIB_SINGLE_STEP,	/* uprobe on one it single-steps out of line (mov) */
	CALIB_NOP5,		/* uprobe on a 5-byte nop, after its first hit */
	CALIB_PAIR,		/* uprobe + uretprobe on one call */
	CALIB_KINDS,
};
#define CALIB_BIT(k)	(1u << (k))
#define CALIB_ALL	(CALIB_BIT(CALIB_KINDS) - 1)

/* What the governor assumes one emulated-instruction hit costs when it
 * cannot be measured: the dearest seen (a guest whose hypervisor takes every
 * exception, ~5 us), so that a failed calibration errs towards detaching. */
#define CALIB_DEFAULT_EMULATED_NS	5000.0

struct calib_cost {
	bool measured;
	double ns;		/* CPU time per call, over the same call unprobed: median
				 * of the batches */
	double min_ns, max_ns;	/* the batches' extremes */
	int batches;
	unsigned long calls;	/* timed calls (each one a hit, checked) */
	char insn[24];		/* the probed instruction, as placed */
	bool emulated;		/* placement.c says the kernel emulates it */
};

struct calib_result {
	struct calib_cost cost[CALIB_KINDS];
	bool nop5_optimized;	/* the kernel turned the nop into a call (>= 6.16) */
	double elapsed_ms;	/* all of it: loading, attaching, measuring */
};

/* "syscall", "uprobe_emulated", ...: the JSON keys and the bench's names. */
const char *calibrate_kind_name(enum calib_kind k);

struct forkhazard_bpf;

/*
 * Before a skeleton is loaded: load the calibration's program with it (a few
 * instructions, never attached but by calibrate_measure()), so that a
 * measurement later loads nothing. The tracer does this only when it will
 * calibrate; otherwise the program stays out (SEC("?uprobe")).
 */
void calibrate_prepare(struct forkhazard_bpf *skel);

/*
 * Probes attached for measuring, kept between measurements: an idle one costs
 * nothing (nothing else calls the probed code, and no other process gets the
 * breakpoint), and detaching waits for the kernel (~20-40 ms here).
 *
 * calib_open() attaches the probes for `kinds` (CALIB_BIT()s) with the
 * program of skel, prepared and loaded (~1 ms); skel NULL: it opens and
 * loads a skeleton of its own, ~50 ms more (libbpf parses the kernel's BTF
 * for the object's other programs). Needs CAP_CHECKPOINT_RESTORE
 * (/proc/self/map_files), and CAP_BPF and CAP_PERFMON without skel. Returns
 * 0 or -errno (-ENOTSUP: no uprobe_multi links, or not x86-64).
 */
struct calib;
int calib_open(struct forkhazard_bpf *skel, unsigned int kinds, struct calib **out);

/*
 * Measure c's kinds in batches that take about budget_ms of this thread's CPU
 * time (costs are CPU time, so that other processes' turns on a shared CPU
 * do not count), and no new batch after 1.5 budget_ms of wall-clock time once
 * 3 are done. Returns 0, or -EIO when a timed call was not trapped (its number
 * would be wrong; r has the others).
 */
int calib_measure(struct calib *c, unsigned int budget_ms, struct calib_result *r);
void calib_close(struct calib *c);

/* All three at once (forkhazard calibrate). */
int calibrate_measure(struct forkhazard_bpf *skel, unsigned int kinds, unsigned int budget_ms,
		      struct calib_result *r);

/*
 * For the overhead governor: ns per uprobe hit on an emulated instruction,
 * in ~20 ms of CPU time (~20-40 ms here, 60 at most under load), with c
 * opened with CALIB_BIT(CALIB_EMULATED). At start-up:
 *
 *	calibrate_prepare(skel);	// before forkhazard_bpf__load()
 *	...load, attach...
 *	calib_open(skel, CALIB_BIT(CALIB_EMULATED), &c);   // before dropping caps
 *	hit_ns = calibrate_emulated_hit_ns(c, &err);       // again later if wanted
 *	...
 *	calib_close(c);			// at exit
 *
 * Never fails: when the hit cannot be measured (c NULL, a hit not counted),
 * returns CALIB_DEFAULT_EMULATED_NS and, if err is not NULL, sets *err to
 * -errno (0 when measured).
 */
double calibrate_emulated_hit_ns(struct calib *c, int *err);

/* forkhazard calibrate [--json]: argv[0] is "calibrate". Returns the exit
 * status: 0, 1 (cannot measure), 2 (bad usage, one line on stderr). */
int calibrate_main(int argc, char **argv);

/* The median of v[0..n) (sorted in place); 0 if n is 0. */
double calibrate_median(double *v, int n);

#endif

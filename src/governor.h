/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The lock probes' one owner: which processes get them, when, and for how
 * long. Nothing else attaches or detaches them (probes.c is the mechanism,
 * this is the policy): -p PIDs and the COMMAND at start, --comm processes,
 * the kernel's probe requests (adaptive mode: a process forked while
 * multithreaded; -p: a traced process made a thread or exec'd), and the
 * overhead governor.
 *
 * The governor: a lock probe hit is a trap the probed process pays for (~5 us
 * on a guest whose hypervisor takes every exception), so a process that
 * takes locks a hundred thousand times a second would run at a few percent
 * of its speed. Per probed process, the probes' cost is estimated
 * continuously, as its probe hits (probes_hits) times what one hit costs
 * (the calibrated trap, calibrate.h, plus the BPF programs' own time per run
 * when the kernel counts it), against the process's own CPU time
 * (/proc/PID/stat), over windows of GOV_WINDOW_NS. Past --max-overhead
 * percent, its lock probes are detached: its forks, children and deadlocks
 * are still watched, its fork events say its locks were not tracked and why
 * (docs/json.md), except for the word watch: the glibc mutexes and write
 * locks it was seen taking while probed are read at each of its forks, and
 * reported when another of its threads owns them (include/forkhazard.h,
 * docs/trap-free.md). After a back-off they are attached again for
 * GOV_REARM_WINDOW_NS: still over budget, detached again for twice as long
 * (up to GOV_BACKOFF_MAX_NS); within it, kept. Each downgrade, re-arm and
 * restore is reported (struct gov_event: an event, a daemon log line, the
 * metrics). A process whose probes cost less than GOV_FLOOR_NS_PER_S of CPU a
 * second keeps them whatever its own CPU time: the budget bites only where
 * the cost is real.
 *
 * Whole-system adaptive mode (and --daemon's) is governed with the default
 * budget; -p and COMMAND only when --max-overhead is given; --track-all's
 * probes are on every process, and cannot be detached one by one.
 */
#ifndef FH_GOVERNOR_H
#define FH_GOVERNOR_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkhazard.h"

struct fh_config;
struct probes;
struct pyframes;

/* The decision's constants. */
#define GOV_WINDOW_NS		1000000000ull	/* a measurement, and the first after
						 * arming: forks soon after it see locks */
#define GOV_REARM_WINDOW_NS	500000000ull	/* a re-armed window */
#define GOV_BACKOFF_MIN_NS	10000000000ull	/* detached this long after a first downgrade */
#define GOV_BACKOFF_MAX_NS	320000000000ull	/* ... doubling with each one, up to this */
#define GOV_FLOOR_NS_PER_S	1000000ull	/* below 1 ms of CPU a second: never over */

enum gov_phase {
	GOV_ARMED,		/* probes on, measured window after window */
	GOV_DOWNGRADED,		/* probes detached until the back-off is over */
	GOV_REARMED,		/* probes on again for one short window */
};

enum gov_action {
	GOV_WAIT,		/* the window (or the back-off) is not over */
	GOV_KEEP,		/* within budget: keep the probes, measure again */
	GOV_DOWNGRADE,		/* over budget: detach them */
	GOV_REARM,		/* the back-off is over: attach them for a window */
	GOV_RESTORE,		/* a re-armed window within budget: keep them */
};

/* One process's place in the governor's cycle. */
struct gov_state {
	enum gov_phase phase;
	uint64_t since_ns;	/* when the window began (ARMED, REARMED), or the
				 * downgrade (DOWNGRADED) */
	uint64_t backoff_ns;	/* DOWNGRADED: how long; 0 before any downgrade */
	unsigned int downgrades;
};

/* Measured since st->since_ns (not read in DOWNGRADED). */
struct gov_reading {
	uint64_t now_ns;
	uint64_t hits;		/* the process's lock probe hits */
	uint64_t cpu_ns;	/* its CPU time (every thread, user and system) */
};

struct gov_params {
	double hit_ns;		/* what one hit costs the process */
	double budget_pct;	/* --max-overhead, > 0 */
};

struct gov_verdict {
	enum gov_action action;
	uint64_t window_ns;	/* what was measured over (KEEP, DOWNGRADE, RESTORE) */
	uint64_t cost_ns;	/* hits * hit_ns */
	double overhead_pct;	/* cost / CPU time, in percent; < 0: no CPU time seen */
	uint64_t backoff_ns;	/* DOWNGRADE: detached this long */
};

/* The governor's rule, pure: what to do with one process now. */
void governor_decide(const struct gov_state *st, const struct gov_reading *r,
		     const struct gov_params *p, struct gov_verdict *v);

/* What a downgrade, a re-arm or a restore says (docs/json.md, "governor"). */
struct gov_event {
	enum gov_action action;	/* GOV_DOWNGRADE, GOV_REARM or GOV_RESTORE */
	uint64_t time_ns;	/* CLOCK_MONOTONIC */
	pid_t pid;
	char comm[FH_COMM_LEN];
	double budget_pct, hit_ns;
	uint64_t window_ns;	/* measured; for a re-arm, the window it opens */
	uint64_t hits, cost_ns, cpu_ns;	/* measured (not for a re-arm) */
	double overhead_pct;	/* < 0: not known */
	uint64_t backoff_ns;	/* downgrade: until the re-arm */
	unsigned int downgrades;	/* of this process, this one included */
};

#define GOV_MAX_PROGS	4	/* lock programs whose run time is read */

struct governor_opts {
	const struct fh_config *cfg;
	struct probes *probes;	/* NULL: no lock probes in this trace mode */
	struct pyframes *py;	/* Python processes' layouts; NULL: none */
	int procs_fd;		/* the kernel's `procs` map */
	int learned_fd;		/* the word watch's `learned` and `watch` maps */
	int watch_fd;
	double trap_ns;		/* one probe trap, calibrated (calibrate.h) */
	/* The lock programs: their run time per hit, when the kernel counts it
	 * (kernel.bpf_stats_enabled). Held by value: the governor outlives the
	 * caller's frame. */
	int prog_fds[GOV_MAX_PROGS];
	int nprogs;
	void (*report)(void *ctx, const struct gov_event *ev);
	void *report_ctx;
	/* Lock probes were placed for pid (at start or on a request, not at a
	 * re-arm), successfully or not: what else the process gets comes after
	 * them (the tracer's interpreter probe). Called with report_ctx; may be
	 * NULL. */
	void (*placed)(void *ctx, pid_t pid);
};

struct governor;

struct governor *governor_new(const struct governor_opts *opts);
void governor_free(struct governor *g);

/* The budget that applies in cfg's mode (percent; 0: not governed). */
double governor_budget(const struct fh_config *cfg);

/* At start: the lock probes the trace mode places before any request (-p
 * PIDs, the COMMAND held before exec, --comm processes already running,
 * --track-all everywhere). Returns 0, or -errno after saying why. */
int governor_start(struct governor *g, pid_t command_pid);

/* The kernel asked for lock probes on pid (struct fh_probe_request). */
void governor_probe_request(struct governor *g, pid_t pid);

/* Every tick: exited processes let go, due windows measured and decided. */
void governor_tick(struct governor *g, uint64_t now_ns);

struct governor_stats {
	bool on;			/* a budget applies */
	uint64_t downgrades, rearms;	/* since start */
	uint64_t governed;		/* processes downgraded now (or in a re-armed window) */
};
void governor_get_stats(const struct governor *g, struct governor_stats *st);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The configuration: what the command line and the configuration file said,
 * as plain data. cli.c fills it (its options table says which option sets
 * which field); every other module only reads it. No functions here.
 *
 * A new option is one field here and one row in cli.c's table, which gives
 * it its --help line and its configuration-file key.
 */
#ifndef FH_CONFIG_H
#define FH_CONFIG_H

#include <stdbool.h>
#include <sys/types.h>

#define FH_MAX_PIDS		64	/* -p */
#define FH_MAX_COMMS		8	/* --comm (the BPF side's FH_MAX_COMM_FILTERS) */
#define FH_MAX_LOCK_FNS		8	/* --lock-fn */
#define FH_MAX_FILTERS		8	/* patterns per filter kind */
#define FH_MAX_SUPPRESSIONS	8	/* --suppressions files */

/* Exit statuses. */
#define FH_EXIT_OK	0
#define FH_EXIT_ERROR	1	/* runtime: not root, no BTF, no such PID, ... */
#define FH_EXIT_USAGE	2	/* bad command line, or suppressions file */
#define FH_EXIT_FINDINGS 66	/* --fail-on: a finding was left (--fail-exit-code) */

/* What forkhazard does: trace (the default), or `inspect PID`. */
enum fh_mode { FH_MODE_TRACE, FH_MODE_INSPECT };

/*
 * What is traced, and where lock probes go. The loader, the attach code and
 * the probe requests each switch on it.
 */
enum fh_trace_mode {
	FH_TRACE_ADAPTIVE,	/* whole system; lock probes for the processes that fork
				 * while multithreaded, and for --comm (the default) */
	FH_TRACE_ALL,		/* whole system; lock probes on every process (--track-all) */
	FH_TRACE_LIGHT,		/* whole system; no lock probes (--light) */
	FH_TRACE_TARGETS,	/* -p PIDs or a COMMAND, and what they fork; lock probes
				 * per process */
	FH_TRACE_TARGETS_LIGHT,	/* the same, without lock probes (--light) */
};

/* Filters on what the daemon reports: glob patterns; a leading '!' excludes. */
enum fh_filter_kind { FH_FILTER_COMM, FH_FILTER_EXE, FH_FILTER_CGROUP, FH_FILTER_KINDS };

/* What makes a run fail (--fail-on): the levels of hazard.h's enum hazard_level. */
enum fh_fail_on { FH_FAIL_NONE, FH_FAIL_HAZARD, FH_FAIL_DEADLOCK };

/* A run as a gate in CI (gate.c): its exit status, its rules, its SARIF. */
struct fh_gate_config {
	int fail_on;			/* enum fh_fail_on */
	int fail_exit_code;		/* the status of a failing run */
	bool kill_deadlocked;		/* SIGKILL a confirmed-deadlocked child */
	const char *suppressions[FH_MAX_SUPPRESSIONS];	/* rule files (suppress.c) */
	int nsuppressions;
	const char *sarif;		/* --sarif FILE: the findings as SARIF 2.1.0 */
	const char *sarif_root;		/* locations relative to this directory */
};

/* Service mode (--daemon). */
struct fh_svc_config {
	bool daemon;			/* --daemon: service mode (daemon.c) */
	const char *config_file;	/* --config */
	const char *log_file;		/* --log-file: diagnostics here, not stderr */
	const char *metrics_file;	/* --metrics-file: node_exporter textfile */
	const char *metrics_listen;	/* --metrics-listen ADDR:PORT (HTTP /metrics) */
	double metrics_interval;	/* seconds between metrics file writes */
	double report_interval;		/* seconds between site aggregate reports */
	int max_sites;			/* hazard sites remembered (bounded table) */
	int metrics_sites;		/* sites with their own metric labels */
	int rate_limit;			/* full reports per second, all sites */
	int site_rate_limit;		/* full reports per site per hour */
	const char *filters[FH_FILTER_KINDS][FH_MAX_FILTERS];
	int nfilters[FH_FILTER_KINDS];
};

struct fh_config {
	enum fh_mode mode;
	enum fh_trace_mode trace_mode;
	pid_t pids[FH_MAX_PIDS];	/* -p */
	int npids;
	char **command;			/* after --, NULL-terminated; NULL if none */
	bool json;
	const char *output;		/* -o FILE; NULL: stdout */
	double duration;		/* -d SECONDS; 0: until interrupted */
	int verbose;
	int lock_stack;			/* enum fh_lock_stack: stack recorded per acquisition */
	const char *comms[FH_MAX_COMMS];	/* --comm: lock probes from exec on (adaptive) */
	int ncomms;
	const char *lock_fns[FH_MAX_LOCK_FNS];	/* --lock-fn BINARY:ACQUIRE:RELEASE[:TRY] */
	int nlock_fns;
	bool probe_at_entry;		/* lock probes on function entries only */
	int stack_depth;		/* frames shown per stack */
	int max_procs;			/* processes with per-process probes */
	/* --max-overhead: the share (percent) of a process's own CPU time its
	 * lock probes may cost before the governor detaches them (governor.h);
	 * 0: never. Given explicitly (command line or file), it governs -p and
	 * COMMAND too. */
	double max_overhead;
	bool max_overhead_given;
	int hold_ms;			/* text: wait this long for a child's fate */
	int ring_buffer_kb;		/* --ring-buffer-kb: 0 = the BPF object's size */
	int max_children;		/* --max-children: 0 = the BPF object's size */
	int max_traced;			/* --max-traced: 0 = the BPF object's size */
	const char *user;		/* -u USER: COMMAND runs as USER */
	pid_t inspect_pid;
	struct fh_gate_config gate;
	struct fh_svc_config svc;
};

#endif

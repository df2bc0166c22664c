/* SPDX-License-Identifier: GPL-2.0 */
/* Command-line parsing into the one configuration the rest reads. */
#ifndef FH_CLI_H
#define FH_CLI_H

#include <stdbool.h>
#include <sys/types.h>
#include "config.h"

#define FH_MAX_PIDS 64

/* Exit statuses. */
#define FH_EXIT_OK	0
#define FH_EXIT_ERROR	1	/* runtime: not root, no BTF, no such PID, ... */
#define FH_EXIT_USAGE	2	/* bad command line */

enum fh_mode { FH_MODE_TRACE, FH_MODE_INSPECT };

struct fh_config {
	enum fh_mode mode;
	pid_t pids[FH_MAX_PIDS];	/* -p */
	int npids;
	char **command;			/* after --, NULL-terminated; NULL if none */
	bool json;
	const char *output;		/* -o FILE; NULL: stdout */
	double duration;		/* -d SECONDS; 0: until interrupted */
	int verbose;
	bool light;			/* no lock probes */
	int lock_stack;			/* enum fh_lock_stack: stack recorded per acquisition */
	bool track_all;			/* system-wide: lock probes on every process */
	const char *comms[8];		/* --comm: lock probes from exec on (adaptive mode) */
	int ncomms;
	const char *lock_fns[8];	/* --lock-fn BINARY:ACQUIRE:RELEASE[:TRY] */
	int nlock_fns;
	bool probe_at_entry;		/* lock probes on function entries only */
	int stack_depth;		/* frames shown per stack */
	int max_procs;			/* processes with per-process probes */
	int hold_ms;			/* text: wait this long for a child's fate */
	int ring_buffer_kb;		/* --ring-buffer-kb: 0 = the BPF object's size */
	int max_children;		/* --max-children: 0 = the BPF object's size */
	int max_traced;			/* --max-traced: 0 = the BPF object's size */
	const char *user;		/* -u USER: COMMAND runs as USER */
	pid_t inspect_pid;
	struct fh_svc_config svc;	/* service mode (config.h) */
};

/*
 * Parse argv into cfg. Returns -1 to go on, or the status to exit with at
 * once (0 after --help/--version, FH_EXIT_USAGE after a one-line error that
 * has been written to stderr).
 */
int cli_parse(int argc, char **argv, struct fh_config *cfg);

/* Parse a decimal number in [min, max]. Returns 0 or -EINVAL. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* Parse a PID argument: a decimal number in [1, 2^22]. Returns 0 or -EINVAL. */
int cli_parse_pid(const char *s, pid_t *pid);

#endif

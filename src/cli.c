// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "conffile.h"
#include "escape.h"
#include "forkhazard.h"
#include "metrics.h"

static const char usage_head[] =
"Usage: forkhazard [OPTION...] [-p PID]... [-- COMMAND [ARG...]]\n"
"       forkhazard inspect [--json] PID\n"
"       forkhazard calibrate [--json]\n"
"       forkhazard report [--json|--markdown] [--site ID] FILE.jsonl...\n"
"\n"
"Find fork hazards as they happen: a process forks while another of its\n"
"threads holds a lock, so the child inherits the lock locked with no thread\n"
"that could ever release it. Without -p or COMMAND, traces the whole system.\n"
"\n";

static const char usage_tail[] =
"\n"
"inspect PID: diagnose a running (hung) process now, without earlier tracing:\n"
"which thread waits on which lock, who owns it, and whether that owner still\n"
"exists. Verdict deadlock / blocked / ok.\n"
"\n"
"calibrate: what a system call and each kind of uprobe hit cost on this\n"
"machine, measured on forkhazard's own code (about a second).\n"
"\n"
"report: what -j -o or the service recorded, on one screen: sites ranked by\n"
"deadlocks and hazards (report --help).\n"
"\n"
"Examples:\n"
"  sudo forkhazard                      # whole system, hazards as they happen\n"
"  sudo forkhazard -p 4242              # one process and its descendants\n"
"  sudo forkhazard -- python3 app.py    # run a command under tracing\n"
"  sudo forkhazard -j -o hazards.jsonl  # JSON Lines to a file\n"
"  sudo forkhazard --light              # cheap enough to leave running\n"
"  sudo forkhazard inspect 4711         # why is this child hung?\n"
"  sudo forkhazard --fail-on=hazard --suppressions=fork.supp -- pytest\n"
"\n"
"Exit status: 0 ok (with a COMMAND: its status), 1 error, 2 usage error or a\n"
"malformed suppressions file, 66 (--fail-exit-code) a finding --fail-on fails on.\n";

static const char service_head[] =
"\n"
"Service mode (see forkhazard(8) and README.md \"Running as a service\"):\n";

/* ---- the options table ----------------------------------------------------- */

enum opt_type {
	OPT_FLAG,	/* bool, set */
	OPT_COUNT,	/* int, one more each time */
	OPT_INT,	/* int in [min, max] */
	OPT_SECONDS,	/* double in [min, max], above 0 */
	OPT_NUMBER,	/* double in [min, max] (0 allowed when min is) */
	OPT_STRING,	/* const char *: a non-empty value, at most max bytes (0: any) */
	OPT_LIST,	/* const char *[items], count at `count`: repeatable, as OPT_STRING */
	OPT_CHOICE,	/* int: the index of the value among `choices` */
	OPT_CUSTOM,	/* `set` does it */
};

/* Option flags */
#define OPT_SERVICE	0x1	/* listed under "Service mode" */
#define OPT_NEEDS_DAEMON 0x2	/* meaningless without --daemon: refused */
#define OPT_NOT_IN_FILE	0x4	/* not a configuration file key */

/* set's return value for "done: exit 0 now" (--help, --version) */
#define CLI_DONE	(-2)

struct cli_option {
	const char *name;	/* --name; also the configuration file's key */
	const char *arg;	/* its argument in --help; NULL: it takes none */
	const char *help;
	const char *why;	/* what a valid value is, for the error line (else generated) */
	const char *noun;	/* what the error line calls the value (else --NAME) */
	const char *const *choices;	/* OPT_CHOICE, NULL-terminated */
	/* More checks: NULL if arg (value, for numbers) is fine, else what it
	 * should be, for the error line. */
	const char *(*check)(const char *arg, long value);
	/* OPT_CUSTOM: 0, FH_EXIT_USAGE (said on stderr) or CLI_DONE. */
	int (*set)(struct fh_config *cfg, const char *arg);
	size_t field;		/* offsetof(struct fh_config, ...) */
	size_t count;		/* OPT_LIST: offsetof its count */
	double min, max;	/* OPT_INT, OPT_SECONDS, OPT_NUMBER: the range; strings: max length */
	double def;		/* numbers and OPT_CHOICE: the default, shown in --help */
	enum opt_type type;
	int items;		/* OPT_LIST: at most this many */
	unsigned int flags;
	char key;		/* -k, or 0 */
	bool has_def;
};

#define FIELD(f)	offsetof(struct fh_config, f)

static int set_pid(struct fh_config *cfg, const char *arg);
static int set_light(struct fh_config *cfg, const char *arg);
static int set_track_all(struct fh_config *cfg, const char *arg);
static int set_mode(struct fh_config *cfg, const char *arg);
static int set_help(struct fh_config *cfg, const char *arg);
static int set_version(struct fh_config *cfg, const char *arg);
static const char *check_lock_fn(const char *arg, long value);
static const char *check_power_of_two(const char *arg, long value);
static const char *check_listen(const char *arg, long value);
static const char *check_filter(const char *arg, long value);

static const char *const lock_stack_names[] = { "caller", "fp", "full", NULL };
/* in the order of enum fh_fail_on */
static const char *const fail_on_names[] = { "none", "hazard", "deadlock", NULL };

static const struct cli_option options[] = {
	{ .name = "pid", .key = 'p', .arg = "PID", .type = OPT_CUSTOM, .set = set_pid,
	  .help = "trace PID and what it forks from now on (repeatable)" },
	{ .name = "json", .key = 'j', .type = OPT_FLAG, .field = FIELD(json),
	  .help = "JSON Lines output (see docs/json.md)" },
	{ .name = "output", .key = 'o', .arg = "FILE", .type = OPT_STRING, .field = FIELD(output),
	  .help = "write events to FILE (created, never followed if a symlink)" },
	{ .name = "duration", .key = 'd', .arg = "SECONDS", .type = OPT_SECONDS,
	  .field = FIELD(duration), .min = 0, .max = 1e9, .noun = "duration",
	  .help = "stop after SECONDS" },
	{ .name = "light", .type = OPT_CUSTOM, .set = set_light,
	  .help = "no lock probes: forks, child fates and confirmed deadlocks only "
		  "(cheapest; locks are reported as null)" },
	{ .name = "track-all", .type = OPT_CUSTOM, .set = set_track_all,
	  .help = "whole system: lock probes on every process. Without it, whole-system "
		  "mode is adaptive: locks are tracked in the processes that forked while "
		  "multithreaded (they fork again) and in those named by --comm; others "
		  "never take a uprobe trap" },
	{ .name = "comm", .arg = "NAME", .type = OPT_LIST, .field = FIELD(comms),
	  .count = FIELD(ncomms), .items = FH_MAX_COMMS, .max = FH_COMM_LEN - 1,
	  .why = "1-15 characters, as in /proc/PID/comm",
	  .help = "adaptive mode: also track the locks of processes named NAME from their "
		  "start (repeatable, up to 8)" },
	{ .name = "lock-fn", .arg = "BINARY:ACQUIRE:RELEASE[:TRY]", .type = OPT_LIST,
	  .field = FIELD(lock_fns), .count = FIELD(nlock_fns), .items = FH_MAX_LOCK_FNS,
	  .check = check_lock_fn,
	  .help = "also track a library's own lock functions (the lock is their first "
		  "argument; TRY: ACQUIRE returns 0 when it got the lock). Repeatable, up to 8" },
	{ .name = "lock-stack", .arg = "MODE", .type = OPT_CHOICE, .field = FIELD(lock_stack),
	  .choices = lock_stack_names, .def = FH_LOCK_STACK_FP, .has_def = true,
	  .help = "stack recorded at each lock call: caller (the exact caller only), fp "
		  "(+ 4 frame-pointer frames), full (+ the kernel's stack walk: deeper, "
		  "~0.7us more)" },
	{ .name = "probe-at-entry", .type = OPT_FLAG, .field = FIELD(probe_at_entry),
	  .help = "put lock probes on function entries (slower; for comparison)" },
	{ .name = "stack-depth", .arg = "N", .type = OPT_INT, .field = FIELD(stack_depth),
	  .min = 1, .max = FH_STACK_DEPTH, .def = 8, .has_def = true, .noun = "stack depth",
	  .help = "frames shown per stack, at most 32" },
	{ .name = "max-procs", .arg = "N", .type = OPT_INT, .field = FIELD(max_procs),
	  .min = 1, .max = 65536, .def = 1024, .has_def = true,
	  .help = "processes that can get lock probes at once" },
	{ .name = "max-overhead", .arg = "PERCENT", .type = OPT_NUMBER,
	  .field = FIELD(max_overhead), .min = 0, .max = 100, .def = 1, .has_def = true,
	  .why = "a percentage, 0-100 (0: never)",
	  .help = "whole system: detach the lock probes of a process whose probes cost more "
		  "than PERCENT of its own CPU time (measured over a second or more; under "
		  "1 ms a second never counts), and try them again later for short windows; "
		  "0 never detaches. -p and COMMAND keep theirs unless this is given" },
	{ .name = "hold-ms", .arg = "MS", .type = OPT_INT, .field = FIELD(hold_ms),
	  .min = 0, .max = 10000, .def = 200, .has_def = true,
	  .help = "text mode: wait up to MS for a child's fate before printing its fork" },
	{ .name = "user", .key = 'u', .arg = "USER", .type = OPT_STRING, .field = FIELD(user),
	  .max = 64, .help = "run COMMAND as USER (its groups, its home), not as root" },
	{ .name = "ring-buffer-kb", .arg = "KB", .type = OPT_INT, .field = FIELD(ring_buffer_kb),
	  .min = 4, .max = 1 << 20, .check = check_power_of_two,
	  .why = "a power of two, 4-1048576",
	  .help = "kernel-to-user event buffer (a power of two; the BPF object's 4096 "
		  "by default)" },
	{ .name = "max-children", .arg = "N", .type = OPT_INT, .field = FIELD(max_children),
	  .min = 1, .max = 1 << 20,
	  .help = "forked children followed at once (the BPF object's 16384 by default)" },
	{ .name = "max-traced", .arg = "N", .type = OPT_INT, .field = FIELD(max_traced),
	  .min = 1, .max = 1 << 20,
	  .help = "processes in the kernel's traced/probed table (the BPF object's 65536 "
		  "by default)" },
	{ .name = "fail-on", .arg = "LEVEL", .type = OPT_CHOICE, .field = FIELD(gate.fail_on),
	  .choices = fail_on_names, .def = FH_FAIL_NONE, .has_def = true,
	  .help = "at the end of the run, exit with --fail-exit-code if a finding of LEVEL "
		  "or worse was left by the suppression rules: hazard (a deadlock is worse) "
		  "or deadlock; a COMMAND that failed by itself keeps its own status" },
	{ .name = "fail-exit-code", .arg = "N", .type = OPT_INT,
	  .field = FIELD(gate.fail_exit_code), .min = 3, .max = 125, .def = FH_EXIT_FINDINGS,
	  .has_def = true, .help = "the exit status of a run --fail-on fails" },
	{ .name = "kill-deadlocked", .type = OPT_FLAG, .field = FIELD(gate.kill_deadlocked),
	  .help = "SIGKILL a child confirmed deadlocked (it can never run again), so that "
		  "what waits for it, a CI job, fails instead of hanging: the one signal "
		  "forkhazard ever sends a traced program, and only on request" },
	{ .name = "suppressions", .arg = "FILE", .type = OPT_LIST,
	  .field = FIELD(gate.suppressions), .count = FIELD(gate.nsuppressions),
	  .items = FH_MAX_SUPPRESSIONS, .max = 4095,
	  .help = "findings to accept: one rule a line, KIND [KEY=GLOB]... (forkhazard(8), "
		  "README \"Suppressions\"); repeatable, up to 8; -v names the rule that "
		  "matched, and prints at the end a rule for each finding" },
	{ .name = "sarif", .arg = "FILE", .type = OPT_STRING, .field = FIELD(gate.sarif),
	  .help = "write the findings to FILE as SARIF 2.1.0 at the end, one result per site "
		  "(for code review tools)" },
	{ .name = "sarif-root", .arg = "DIR", .type = OPT_STRING, .field = FIELD(gate.sarif_root),
	  .max = 4095, .help = "SARIF locations relative to DIR (the repository's root)" },
	{ .name = "verbose", .key = 'v', .type = OPT_COUNT, .field = FIELD(verbose),
	  .help = "every fork of a multithreaded process, not only hazards, with the forking "
		  "thread's own locks, locks in shared memory and all other threads; -vv also "
		  "shows libbpf's and the probes' diagnostics" },
	{ .name = "help", .key = 'h', .type = OPT_CUSTOM, .set = set_help,
	  .flags = OPT_NOT_IN_FILE, .help = "this help" },
	{ .name = "version", .type = OPT_CUSTOM, .set = set_version, .flags = OPT_NOT_IN_FILE,
	  .help = "version" },

	{ .name = "daemon", .type = OPT_FLAG, .field = FIELD(svc.daemon), .flags = OPT_SERVICE,
	  .help = "run as a service: JSON Lines events (-o FILE, reopened on SIGHUP; stdout "
		  "without -o), hazard sites reported once in full then aggregated, SIGTERM "
		  "flushes and exits" },
	{ .name = "config", .arg = "FILE", .type = OPT_STRING, .field = FIELD(svc.config_file),
	  .flags = OPT_SERVICE | OPT_NOT_IN_FILE,
	  .help = "read options from FILE (key = value, one per line; every key is a long "
		  "option; the command line wins)" },
	{ .name = "mode", .arg = "MODE", .type = OPT_CUSTOM, .set = set_mode,
	  .flags = OPT_SERVICE,
	  .help = "adaptive (default), all (--track-all) or light (--light)" },
	{ .name = "log-file", .arg = "FILE", .type = OPT_STRING, .field = FIELD(svc.log_file),
	  .flags = OPT_SERVICE | OPT_NEEDS_DAEMON,
	  .help = "diagnostics to FILE (reopened on SIGHUP), not stderr" },
	{ .name = "metrics-file", .arg = "FILE", .type = OPT_STRING,
	  .field = FIELD(svc.metrics_file), .flags = OPT_SERVICE | OPT_NEEDS_DAEMON,
	  .help = "Prometheus text for node_exporter's textfile collector, rewritten "
		  "atomically every --metrics-interval" },
	{ .name = "metrics-listen", .arg = "ADDR:PORT", .type = OPT_STRING,
	  .field = FIELD(svc.metrics_listen), .check = check_listen,
	  .flags = OPT_SERVICE | OPT_NEEDS_DAEMON,
	  .help = "serve Prometheus metrics on http://ADDR:PORT/metrics" },
	{ .name = "metrics-interval", .arg = "SECONDS", .type = OPT_SECONDS,
	  .field = FIELD(svc.metrics_interval), .min = 1, .max = 1e7, .def = 15,
	  .has_def = true, .flags = OPT_SERVICE,
	  .help = "seconds between --metrics-file writes" },
	{ .name = "report-interval", .arg = "SECONDS", .type = OPT_SECONDS,
	  .field = FIELD(svc.report_interval), .min = 0.1, .max = 1e7, .def = 300,
	  .has_def = true, .flags = OPT_SERVICE, .help = "site aggregates every SECONDS" },
	{ .name = "max-sites", .arg = "N", .type = OPT_INT, .field = FIELD(svc.max_sites),
	  .min = 16, .max = 65536, .def = 2048, .has_def = true, .flags = OPT_SERVICE,
	  .help = "hazard sites remembered, least recent evicted" },
	{ .name = "metrics-sites", .arg = "N", .type = OPT_INT, .field = FIELD(svc.metrics_sites),
	  .min = 0, .max = 10000, .def = 50, .has_def = true, .flags = OPT_SERVICE,
	  .help = "sites with their own metric labels" },
	{ .name = "rate-limit", .arg = "N", .type = OPT_INT, .field = FIELD(svc.rate_limit),
	  .min = 1, .max = 1000000, .def = 20, .has_def = true, .flags = OPT_SERVICE,
	  .help = "full event reports per second, all sites" },
	{ .name = "site-rate-limit", .arg = "N", .type = OPT_INT,
	  .field = FIELD(svc.site_rate_limit), .min = 1, .max = 1000000, .def = 10,
	  .has_def = true, .flags = OPT_SERVICE, .help = "full reports per site and hour" },
	{ .name = "filter-comm", .arg = "GLOB", .type = OPT_LIST,
	  .field = FIELD(svc.filters[FH_FILTER_COMM]), .count = FIELD(svc.nfilters[FH_FILTER_COMM]),
	  .items = FH_MAX_FILTERS, .max = 255, .check = check_filter,
	  .flags = OPT_SERVICE | OPT_NEEDS_DAEMON,
	  .help = "report only processes whose thread name matches; !GLOB excludes "
		  "(repeatable, up to 8)" },
	{ .name = "filter-exe", .arg = "GLOB", .type = OPT_LIST,
	  .field = FIELD(svc.filters[FH_FILTER_EXE]), .count = FIELD(svc.nfilters[FH_FILTER_EXE]),
	  .items = FH_MAX_FILTERS, .max = 255, .check = check_filter,
	  .flags = OPT_SERVICE | OPT_NEEDS_DAEMON, .help = "the same, on the executable's path" },
	{ .name = "filter-cgroup", .arg = "GLOB", .type = OPT_LIST,
	  .field = FIELD(svc.filters[FH_FILTER_CGROUP]),
	  .count = FIELD(svc.nfilters[FH_FILTER_CGROUP]), .items = FH_MAX_FILTERS, .max = 255,
	  .check = check_filter, .flags = OPT_SERVICE | OPT_NEEDS_DAEMON,
	  .help = "the same, on the cgroup path" },
};

#define N_OPTIONS	(sizeof(options) / sizeof(options[0]))
/* getopt_long's code of a long-only option: its row, past the letters */
#define LONG_CODE(i)	(0x100 + (int)(i))

/* ---- messages ---------------------------------------------------------------- */

int cli_usage_error(const char *fmt, const char *arg)
{
	char safe[256];

	/* the argument as typed, but never a raw control byte on the terminal */
	term_escape(arg, (size_t)-1, safe, sizeof(safe));
	fputs("forkhazard: ", stderr);
	fprintf(stderr, fmt, safe);
	fputs(" (see --help)\n", stderr);
	return FH_EXIT_USAGE;
}

/* "invalid --NAME 'ARG' (WHY)" */
static int invalid(const struct cli_option *o, const char *arg, const char *why)
{
	char fmt[320];

	if (o->noun)
		snprintf(fmt, sizeof(fmt), "invalid %s '%%s' (%s)", o->noun, why);
	else
		snprintf(fmt, sizeof(fmt), "invalid --%s '%%s' (%s)", o->name, why);
	return cli_usage_error(fmt, arg);
}

/* What a valid value of o is, for its error line. */
static const char *valid_values(const struct cli_option *o, char *buf, size_t size)
{
	size_t n = 0;

	if (o->why)
		return o->why;
	switch (o->type) {
	case OPT_INT:
		snprintf(buf, size, "%.0f-%.0f", o->min, o->max);
		break;
	case OPT_NUMBER:
		snprintf(buf, size, "%g-%g", o->min, o->max);
		break;
	case OPT_SECONDS:
		if (o->min > 0)
			snprintf(buf, size, "seconds, at least %g", o->min);
		else
			snprintf(buf, size, "seconds > 0");
		break;
	case OPT_CHOICE:
		buf[0] = '\0';
		for (int i = 0; o->choices[i] && n < size; i++)
			n += (size_t)snprintf(buf + n, size - n, "%s%s",
					      !i ? "" : o->choices[i + 1] ? ", " : " or ",
					      o->choices[i]);
		break;
	default:
		snprintf(buf, size, "%s", o->arg ? o->arg : "no value");
		break;
	}
	return buf;
}

/* ---- --help, generated from the table ---------------------------------------- */

#define HELP_INDENT	25
#define HELP_WIDTH	80

/* text from column HELP_INDENT on, wrapped at HELP_WIDTH */
static void print_wrapped(FILE *f, const char *text, int col)
{
	const char *p = text;

	while (*p) {
		size_t word = strcspn(p, " ");

		if (col > HELP_INDENT && col + 1 + (int)word > HELP_WIDTH) {
			fprintf(f, "\n%*s", HELP_INDENT, "");
			col = HELP_INDENT;
		} else if (col > HELP_INDENT) {
			fputc(' ', f);
			col++;
		}
		fwrite(p, 1, word, f);
		col += (int)word;
		p += word;
		while (*p == ' ')
			p++;
	}
	fputc('\n', f);
}

static void print_option(FILE *f, const struct cli_option *o)
{
	char left[96], def[64] = "", text[640];
	int n;

	if (o->key)
		n = snprintf(left, sizeof(left), "  -%c, --%s%s%s", o->key, o->name,
			     o->arg ? "=" : "", o->arg ? o->arg : "");
	else
		n = snprintf(left, sizeof(left), "      --%s%s%s", o->name, o->arg ? "=" : "",
			     o->arg ? o->arg : "");
	if (o->has_def && o->type == OPT_CHOICE)
		snprintf(def, sizeof(def), " (default %s)", o->choices[(int)o->def]);
	else if (o->has_def)
		snprintf(def, sizeof(def), " (default %g)", o->def);
	snprintf(text, sizeof(text), "%s%s", o->help, def);
	if (n >= HELP_INDENT) {
		fprintf(f, "%s\n%*s", left, HELP_INDENT, "");
		n = HELP_INDENT;
	} else {
		fprintf(f, "%-*s", HELP_INDENT, left);
		n = HELP_INDENT;
	}
	print_wrapped(f, text, n);
}

static void print_options(FILE *f, unsigned int section)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if ((options[i].flags & OPT_SERVICE) == section)
			print_option(f, &options[i]);
}

static int set_help(struct fh_config *cfg, const char *arg)
{
	(void)cfg;
	(void)arg;
	fputs(usage_head, stdout);
	print_options(stdout, 0);
	fputs(usage_tail, stdout);
	fputs(service_head, stdout);
	print_options(stdout, OPT_SERVICE);
	return CLI_DONE;
}

static int set_version(struct fh_config *cfg, const char *arg)
{
	(void)cfg;
	(void)arg;
	printf("forkhazard %s\n", FH_VERSION);
	return CLI_DONE;
}

/* ---- what the table cannot say -------------------------------------------------- */

int cli_parse_pid(const char *s, pid_t *pid)
{
	char *end;
	long v;

	if (!s || !*s || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end || v < 1 || v > (1L << 22))
		return -EINVAL;
	*pid = (pid_t)v;
	return 0;
}

int cli_parse_long(const char *s, long min, long max, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int set_pid(struct fh_config *cfg, const char *arg)
{
	if (cfg->npids == FH_MAX_PIDS)
		return cli_usage_error("too many -p (at most 64): '%s'", arg);
	if (cli_parse_pid(arg, &cfg->pids[cfg->npids]))
		return cli_usage_error("invalid PID '%s'", arg);
	cfg->npids++;
	return 0;
}

/* --light, --track-all and --mode choose one trace mode; the first two
 * contradict each other (--mode, the configuration file's way, just sets it). */
static int choose_locks(struct fh_config *cfg, enum fh_trace_mode mode)
{
	if (cfg->trace_mode != FH_TRACE_ADAPTIVE && cfg->trace_mode != mode)
		return cli_usage_error("--light places no lock probes: not with %s", "--track-all");
	cfg->trace_mode = mode;
	return 0;
}

static int set_light(struct fh_config *cfg, const char *arg)
{
	(void)arg;
	return choose_locks(cfg, FH_TRACE_LIGHT);
}

static int set_track_all(struct fh_config *cfg, const char *arg)
{
	(void)arg;
	return choose_locks(cfg, FH_TRACE_ALL);
}

static int set_mode(struct fh_config *cfg, const char *arg)
{
	if (!strcmp(arg, "adaptive"))
		cfg->trace_mode = FH_TRACE_ADAPTIVE;
	else if (!strcmp(arg, "all"))
		cfg->trace_mode = FH_TRACE_ALL;
	else if (!strcmp(arg, "light"))
		cfg->trace_mode = FH_TRACE_LIGHT;
	else
		return cli_usage_error("invalid --mode '%s' (adaptive, all or light)", arg);
	return 0;
}

/* the shape here; whether BINARY exists, when tracing starts */
static const char *check_lock_fn(const char *arg, long value)
{
	const char *c1 = strchr(arg, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

	(void)value;
	if (!c1 || !c2 || c1 == arg || c2 == c1 + 1 || !c2[1] ||
	    (strchr(c2 + 1, ':') && strcmp(strchr(c2 + 1, ':'), ":TRY")))
		return "BINARY:ACQUIRE:RELEASE[:TRY]";
	return NULL;
}

/* a power of two pages: the kernel's rule for ring buffers */
static const char *check_power_of_two(const char *arg, long value)
{
	(void)arg;
	return value & (value - 1) ? "a power of two, 4-1048576" : NULL;
}

static const char *check_listen(const char *arg, long value)
{
	struct metrics_addr a;

	(void)value;
	return metrics_parse_listen(arg, &a) ? "ADDR:PORT, e.g. 127.0.0.1:9477 or [::1]:9477" : NULL;
}

static const char *check_filter(const char *arg, long value)
{
	(void)value;
	return arg[0] == '!' && !arg[1] ? "a glob pattern, after '!' too" : NULL;
}

/* ---- parsing ---------------------------------------------------------------------- */

static void *field_of(struct fh_config *cfg, size_t off)
{
	return (char *)cfg + off;
}

/* A string value: non-empty, not too long, and whatever o->check says. */
static int check_string(const struct cli_option *o, const char *arg)
{
	char buf[128];
	const char *why;

	if (!*arg)
		return invalid(o, arg, o->why ? o->why : "empty");
	if (o->max > 0 && strlen(arg) > (size_t)o->max)
		return invalid(o, arg, valid_values(o, buf, sizeof(buf)));
	why = o->check ? o->check(arg, 0) : NULL;
	return why ? invalid(o, arg, why) : 0;
}

/* Apply option o with its argument (NULL for none). 0, FH_EXIT_USAGE or CLI_DONE. */
static int apply(struct fh_config *cfg, const struct cli_option *o, const char *arg)
{
	void *f = field_of(cfg, o->field);
	char buf[128];
	const char *why;
	long v;

	switch (o->type) {
	case OPT_FLAG:
		*(bool *)f = true;
		return 0;
	case OPT_COUNT:
		(*(int *)f)++;
		return 0;
	case OPT_INT:
		if (cli_parse_long(arg, (long)o->min, (long)o->max, &v))
			return invalid(o, arg, valid_values(o, buf, sizeof(buf)));
		why = o->check ? o->check(arg, v) : NULL;
		if (why)
			return invalid(o, arg, why);
		*(int *)f = (int)v;
		return 0;
	case OPT_SECONDS:
	case OPT_NUMBER: {
		char *end;
		double d;

		errno = 0;
		d = strtod(arg, &end);
		if (errno || end == arg || *end || !isfinite(d) ||
		    (o->type == OPT_SECONDS && d <= 0) || d < o->min || d > o->max)
			return invalid(o, arg, valid_values(o, buf, sizeof(buf)));
		*(double *)f = d;
		return 0;
	}
	case OPT_STRING:
		if (check_string(o, arg))
			return FH_EXIT_USAGE;
		*(const char **)f = arg;
		return 0;
	case OPT_LIST: {
		int *n = field_of(cfg, o->count);

		if (check_string(o, arg))
			return FH_EXIT_USAGE;
		if (*n == o->items) {
			char fmt[96];

			snprintf(fmt, sizeof(fmt), "too many --%s (at most %d): '%%s'", o->name,
				 o->items);
			return cli_usage_error(fmt, arg);
		}
		((const char **)f)[(*n)++] = arg;
		return 0;
	}
	case OPT_CHOICE:
		for (int i = 0; o->choices[i]; i++) {
			if (!strcmp(arg, o->choices[i])) {
				*(int *)f = i;
				return 0;
			}
		}
		return invalid(o, arg, valid_values(o, buf, sizeof(buf)));
	case OPT_CUSTOM:
		return o->set(cfg, arg);
	}
	return FH_EXIT_USAGE;
}

static void defaults(struct fh_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct cli_option *o = &options[i];

		if (!o->has_def)
			continue;
		if (o->type == OPT_SECONDS || o->type == OPT_NUMBER)
			*(double *)field_of(cfg, o->field) = o->def;
		else
			*(int *)field_of(cfg, o->field) = (int)o->def;
	}
}

static const struct cli_option *find_option(const char *name)
{
	for (size_t i = 0; i < N_OPTIONS; i++)
		if (!strcmp(options[i].name, name))
			return &options[i];
	return NULL;
}

/* What a configuration file key is (conffile.c): every long option but the
 * command line's own. */
static enum conffile_key file_key(const char *key)
{
	const struct cli_option *o = find_option(key);

	if (!o || (o->flags & OPT_NOT_IN_FILE))
		return CONFFILE_KEY_UNKNOWN;
	return o->arg ? CONFFILE_KEY_VALUE : CONFFILE_KEY_FLAG;
}

/* How the user wrote the option getopt refused: a long one as typed, a short
 * one by its letter (it may sit inside a cluster such as -jZ). */
static const char *option_name(const char *arg, char buf[3])
{
	if (!strncmp(arg, "--", 2))
		return arg;
	buf[0] = '-';
	buf[1] = (char)optopt;
	buf[2] = '\0';
	return buf;
}

static int parse_inspect(int argc, char **argv, struct fh_config *cfg)
{
	int i;

	cfg->mode = FH_MODE_INSPECT;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j"))
			cfg->json = true;
		else if (!strcmp(argv[i], "-v") || !strcmp(argv[i], "--verbose"))
			cfg->verbose++;
		else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			fputs(usage_head, stdout);
			print_options(stdout, 0);
			fputs(usage_tail, stdout);
			return FH_EXIT_OK;
		} else if (argv[i][0] == '-')
			return cli_usage_error("inspect: unknown option '%s'", argv[i]);
		else if (cfg->inspect_pid)
			return cli_usage_error("inspect: one PID only, '%s' is one too many", argv[i]);
		else if (cli_parse_pid(argv[i], &cfg->inspect_pid))
			return cli_usage_error("inspect: invalid PID '%s'", argv[i]);
	}
	if (!cfg->inspect_pid)
		return cli_usage_error("inspect: missing PID%s", "");
	return -1;
}

/* Was the option named `name` given (on the command line or in the file)? */
static bool given(const bool seen[N_OPTIONS], const char *name)
{
	const struct cli_option *o = find_option(name);

	return o && seen[o - options];
}

/* Checks across options, once all are read; the trace mode made final. */
static int check_combined(struct fh_config *cfg, const bool seen[N_OPTIONS])
{
	bool targets = cfg->npids || cfg->command;

	cfg->max_overhead_given = given(seen, "max-overhead");
	if (cfg->max_overhead_given && cfg->max_overhead > 0 &&
	    cfg->trace_mode == FH_TRACE_LIGHT)
		return cli_usage_error("--light places no lock probes: not with %s",
				       "--max-overhead");
	if (cfg->max_overhead_given && cfg->max_overhead > 0 && cfg->trace_mode == FH_TRACE_ALL)
		return cli_usage_error("--track-all's lock probes are on every process, none can be "
				       "detached: not with %s", "--max-overhead");

	if (cfg->user && !cfg->command)
		return cli_usage_error("-u USER is for a COMMAND: '%s' has none to run", cfg->user);
	if (cfg->command && cfg->npids)
		return cli_usage_error("-p and a COMMAND cannot be combined%s", "");
	if ((cfg->trace_mode == FH_TRACE_ALL || cfg->ncomms) && targets)
		return cli_usage_error("--track-all and --comm are whole-system options: not with %s",
				   cfg->npids ? "-p" : "a COMMAND");
	if (cfg->ncomms && cfg->trace_mode == FH_TRACE_LIGHT)
		return cli_usage_error("--light places no lock probes: not with %s", "--comm");
	for (size_t i = 0; i < N_OPTIONS && !cfg->svc.daemon; i++) {
		char fmt[96];

		if (!seen[i] || !(options[i].flags & OPT_NEEDS_DAEMON))
			continue;
		snprintf(fmt, sizeof(fmt), "--%s is a service option: it needs --daemon%%s",
			 options[i].name);
		return cli_usage_error(fmt, "");
	}
	if (cfg->svc.daemon && cfg->command)
		return cli_usage_error("--daemon traces the system or -p PIDs, not a COMMAND%s", "");
	if (cfg->svc.daemon && (cfg->gate.fail_on || cfg->gate.kill_deadlocked || cfg->gate.sarif))
		return cli_usage_error("%s is for a run that ends (a COMMAND, -d, a signal): not with "
				   "--daemon", cfg->gate.fail_on ? "--fail-on" :
				   cfg->gate.sarif ? "--sarif" : "--kill-deadlocked");
	if (cfg->gate.sarif_root && !cfg->gate.sarif)
		return cli_usage_error("--sarif-root '%s' needs --sarif FILE", cfg->gate.sarif_root);
	if (cfg->svc.daemon)
		cfg->json = true;
	if (targets)
		cfg->trace_mode = cfg->trace_mode == FH_TRACE_LIGHT ? FH_TRACE_TARGETS_LIGHT :
								       FH_TRACE_TARGETS;
	return 0;
}

int cli_parse(int argc, char **argv, struct fh_config *cfg)
{
	struct option long_opts[N_OPTIONS + 1];
	char shorts[2 + 3 * N_OPTIONS + 1] = "+:", name[3];
	bool seen[N_OPTIONS] = { false };
	int at, c, rc;	/* at: the element of argv getopt is reading */
	char **xargv;

	defaults(cfg);
	if (argc > 1 && !strcmp(argv[1], "inspect"))
		return parse_inspect(argc - 1, argv + 1, cfg);
	/* --config FILE: its options go first, so the command line wins */
	if (conffile_expand(argc, argv, file_key, &argc, &xargv))
		return FH_EXIT_USAGE;
	if (xargv)
		argv = xargv;

	memset(long_opts, 0, sizeof(long_opts));
	for (size_t i = 0; i < N_OPTIONS; i++) {
		const struct cli_option *o = &options[i];

		long_opts[i] = (struct option){ o->name, o->arg ? required_argument : no_argument,
						NULL, o->key ? o->key : LONG_CODE(i) };
		if (o->key) {
			size_t n = strlen(shorts);

			shorts[n++] = o->key;
			if (o->arg)
				shorts[n++] = ':';
			shorts[n] = '\0';
		}
	}
	/* 0, not 1: glibc then also forgets a cluster an earlier call left half read */
	optind = 0;
	opterr = 0;
	/* '+': stop at the first non-option, so COMMAND's own options stay its own */
	for (at = 1; (c = getopt_long(argc, argv, shorts, long_opts, NULL)) != -1; at = optind) {
		size_t i;

		if (c == ':')
			return cli_usage_error("option '%s' needs an argument", option_name(argv[at], name));
		for (i = 0; i < N_OPTIONS; i++)
			if (c == (options[i].key ? options[i].key : LONG_CODE(i)))
				break;
		if (c == '?' || i == N_OPTIONS)
			return cli_usage_error("unknown option '%s'", option_name(argv[at], name));
		seen[i] = true;
		rc = apply(cfg, &options[i], optarg);
		if (rc == CLI_DONE)
			return FH_EXIT_OK;
		if (rc)
			return rc;
	}
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--") != 0)
			return cli_usage_error("unexpected argument '%s' (put a command after --)",
					   argv[optind]);
		cfg->command = &argv[optind];
	} else if (optind > 1 && !strcmp(argv[optind - 1], "--")) {
		return cli_usage_error("missing COMMAND after --%s", "");
	}
	return check_combined(cfg, seen) ? FH_EXIT_USAGE : -1;
}

void cli_free(void)
{
	conffile_free();
}

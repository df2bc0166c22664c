// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "escape.h"
#include "forkhazard.h"

static const char usage_text[] =
"Usage: forkhazard [OPTION...] [-p PID]... [-- COMMAND [ARG...]]\n"
"       forkhazard inspect [--json] PID\n"
"       forkhazard calibrate [--json]\n"
"\n"
"Find fork hazards as they happen: a process forks while another of its\n"
"threads holds a lock, so the child inherits the lock locked with no thread\n"
"that could ever release it. Without -p or COMMAND, traces the whole system.\n"
"\n"
"  -p, --pid=PID          trace PID and what it forks from now on (repeatable)\n"
"  -j, --json             JSON Lines output (see docs/json.md)\n"
"  -o, --output=FILE      write events to FILE (created, never followed if a symlink)\n"
"  -d, --duration=SECONDS stop after SECONDS\n"
"      --light            no lock probes: forks, child fates and confirmed\n"
"                         deadlocks only (cheapest; locks are reported as null)\n"
"      --track-all        whole system: lock probes on every process. Without it,\n"
"                         whole-system mode is adaptive: locks are tracked in the\n"
"                         processes that forked while multithreaded (they fork\n"
"                         again) and in those named by --comm; others never take\n"
"                         a uprobe trap\n"
"      --comm=NAME        adaptive mode: also track the locks of processes named\n"
"                         NAME from their start (repeatable, up to 8)\n"
"      --lock-fn=BINARY:ACQUIRE:RELEASE[:TRY]\n"
"                         also track a library's own lock functions (the lock\n"
"                         is their first argument; TRY: ACQUIRE returns 0 when it\n"
"                         got the lock). Repeatable, up to 8\n"
"      --lock-stack=MODE  stack recorded at each lock call: caller (the exact\n"
"                         caller only), fp (default: + 4 frame-pointer frames),\n"
"                         full (+ the kernel's stack walk: deeper, ~0.7us more)\n"
"      --probe-at-entry   put lock probes on function entries (slower; for comparison)\n"
"      --stack-depth=N    frames shown per stack (default 8, at most 32)\n"
"      --max-procs=N      processes that can get lock probes at once (default 1024)\n"
"      --hold-ms=MS       text mode: wait up to MS for a child's fate before\n"
"                         printing its fork (default 200)\n"
"  -u, --user=USER        run COMMAND as USER (its groups, its home), not as root\n"
"      --ring-buffer-kb=KB\n"
"                         kernel-to-user event buffer (power of two, default 4096)\n"
"      --max-children=N   forked children followed at once (default 16384)\n"
"      --max-traced=N     processes in the kernel's traced/probed table (default 65536)\n"
"  -v, --verbose          every fork of a multithreaded process, not only hazards;\n"
"                         -vv also shows libbpf's and the probes' diagnostics\n"
"  -h, --help             this help\n"
"      --version          version\n"
"\n"
"inspect PID: diagnose a running (hung) process now, without earlier tracing:\n"
"which thread waits on which lock, who owns it, and whether that owner still\n"
"exists. Verdict deadlock / blocked / ok.\n"
"\n"
"calibrate: what a system call and each kind of uprobe hit cost on this\n"
"machine, measured on forkhazard's own code (about a second).\n"
"\n"
"Examples:\n"
"  sudo forkhazard                      # whole system, hazards as they happen\n"
"  sudo forkhazard -p 4242              # one process and its descendants\n"
"  sudo forkhazard -- python3 app.py    # run a command under tracing\n"
"  sudo forkhazard -j -o hazards.jsonl  # JSON Lines to a file\n"
"  sudo forkhazard --light              # cheap enough to leave running\n"
"  sudo forkhazard inspect 4711         # why is this child hung?\n"
"\n"
"Exit status: 0 ok (with a COMMAND: its status), 1 error, 2 usage error.\n";

enum {
	OPT_LIGHT = 256,
	OPT_LOCK_STACK,
	OPT_TRACK_ALL,
	OPT_COMM,
	OPT_LOCK_FN,
	OPT_PROBE_AT_ENTRY,
	OPT_STACK_DEPTH,
	OPT_MAX_PROCS,
	OPT_HOLD_MS,
	OPT_VERSION,
	OPT_RING_BUFFER_KB,
	OPT_MAX_CHILDREN,
	OPT_MAX_TRACED,
};

static const struct option long_opts[] = {
	{ "pid", required_argument, NULL, 'p' },
	{ "json", no_argument, NULL, 'j' },
	{ "output", required_argument, NULL, 'o' },
	{ "duration", required_argument, NULL, 'd' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ "light", no_argument, NULL, OPT_LIGHT },
	{ "lock-stack", required_argument, NULL, OPT_LOCK_STACK },
	{ "track-all", no_argument, NULL, OPT_TRACK_ALL },
	{ "comm", required_argument, NULL, OPT_COMM },
	{ "lock-fn", required_argument, NULL, OPT_LOCK_FN },
	{ "probe-at-entry", no_argument, NULL, OPT_PROBE_AT_ENTRY },
	{ "stack-depth", required_argument, NULL, OPT_STACK_DEPTH },
	{ "max-procs", required_argument, NULL, OPT_MAX_PROCS },
	{ "hold-ms", required_argument, NULL, OPT_HOLD_MS },
	{ "version", no_argument, NULL, OPT_VERSION },
	{ "user", required_argument, NULL, 'u' },
	{ "ring-buffer-kb", required_argument, NULL, OPT_RING_BUFFER_KB },
	{ "max-children", required_argument, NULL, OPT_MAX_CHILDREN },
	{ "max-traced", required_argument, NULL, OPT_MAX_TRACED },
	FH_SVC_LONG_OPTS,
	{ NULL, 0, NULL, 0 },
};

static int usage_error(const char *fmt, const char *arg)
{
	char safe[256];

	/* the argument as typed, but never a raw control byte on the terminal */
	term_escape(arg, (size_t)-1, safe, sizeof(safe));
	fputs("forkhazard: ", stderr);
	fprintf(stderr, fmt, safe);
	fputs(" (see --help)\n", stderr);
	return FH_EXIT_USAGE;
}

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

static void defaults(struct fh_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->lock_stack = FH_LOCK_STACK_FP;
	cfg->stack_depth = 8;
	cfg->max_procs = 1024;
	cfg->hold_ms = 200;
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
			fputs(usage_text, stdout);
			return FH_EXIT_OK;
		} else if (argv[i][0] == '-')
			return usage_error("inspect: unknown option '%s'", argv[i]);
		else if (cfg->inspect_pid)
			return usage_error("inspect: one PID only, '%s' is one too many", argv[i]);
		else if (cli_parse_pid(argv[i], &cfg->inspect_pid))
			return usage_error("inspect: invalid PID '%s'", argv[i]);
	}
	if (!cfg->inspect_pid)
		return usage_error("inspect: missing PID%s", "");
	return -1;
}

int cli_parse(int argc, char **argv, struct fh_config *cfg)
{
	char name[3];
	long v;
	int at, c;	/* at: the element of argv getopt is reading */
	char **xargv;

	defaults(cfg);
	config_defaults(cfg);
	if (argc > 1 && !strcmp(argv[1], "inspect"))
		return parse_inspect(argc - 1, argv + 1, cfg);
	/* --config FILE: its options go first, so the command line wins */
	if (config_expand_argv(argc, argv, long_opts, &argc, &xargv))
		return FH_EXIT_USAGE;
	if (xargv)
		argv = xargv;

	/* 0, not 1: glibc then also forgets a cluster an earlier call left half read */
	optind = 0;
	opterr = 0;
	/* '+': stop at the first non-option, so COMMAND's own options stay its own */
	for (at = 1; (c = getopt_long(argc, argv, "+:p:jo:d:vhu:", long_opts, NULL)) != -1;
	     at = optind) {
		if (c >= FH_SVC_OPT_FIRST && c <= FH_SVC_OPT_LAST) {
			if (config_apply(cfg, c, optarg))
				return FH_EXIT_USAGE;
			continue;
		}
		switch (c) {
		case 'p':
			if (cfg->npids == FH_MAX_PIDS)
				return usage_error("too many -p (at most 64): '%s'", optarg);
			if (cli_parse_pid(optarg, &cfg->pids[cfg->npids]))
				return usage_error("invalid PID '%s'", optarg);
			cfg->npids++;
			break;
		case 'j':
			cfg->json = true;
			break;
		case 'o':
			if (!*optarg)
				return usage_error("empty output file name%s", "");
			cfg->output = optarg;
			break;
		case 'd': {
			char *end;
			double d;

			errno = 0;
			d = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(d) || d <= 0 || d > 1e9)
				return usage_error("invalid duration '%s' (seconds > 0)", optarg);
			cfg->duration = d;
			break;
		}
		case 'v':
			cfg->verbose++;
			break;
		case 'h':
			fputs(usage_text, stdout);
			fputs("\n", stdout);
			fputs(config_usage_text, stdout);
			return FH_EXIT_OK;
		case OPT_LIGHT:
			cfg->light = true;
			break;
		case OPT_LOCK_STACK:
			if (!strcmp(optarg, "caller"))
				cfg->lock_stack = FH_LOCK_STACK_CALLER;
			else if (!strcmp(optarg, "fp"))
				cfg->lock_stack = FH_LOCK_STACK_FP;
			else if (!strcmp(optarg, "full"))
				cfg->lock_stack = FH_LOCK_STACK_FULL;
			else
				return usage_error("invalid --lock-stack '%s' (caller, fp or full)", optarg);
			break;
		case OPT_TRACK_ALL:
			cfg->track_all = true;
			break;
		case OPT_COMM:
			if (!*optarg || strlen(optarg) >= FH_COMM_LEN)
				return usage_error("invalid --comm '%s' (1-15 characters, as in "
						   "/proc/PID/comm)", optarg);
			if (cfg->ncomms == 8)
				return usage_error("too many --comm (at most 8): '%s'", optarg);
			cfg->comms[cfg->ncomms++] = optarg;
			break;
		case OPT_LOCK_FN: {
			const char *c1 = strchr(optarg, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;

			/* the shape here; whether BINARY exists, when tracing starts */
			if (!c1 || !c2 || c1 == optarg || c2 == c1 + 1 || !c2[1] ||
			    (strchr(c2 + 1, ':') && strcmp(strchr(c2 + 1, ':'), ":TRY")))
				return usage_error("invalid --lock-fn '%s' (BINARY:ACQUIRE:RELEASE[:TRY])",
						   optarg);
			if (cfg->nlock_fns == 8)
				return usage_error("too many --lock-fn (at most 8): '%s'", optarg);
			cfg->lock_fns[cfg->nlock_fns++] = optarg;
			break;
		}
		case OPT_PROBE_AT_ENTRY:
			cfg->probe_at_entry = true;
			break;
		case OPT_STACK_DEPTH:
			if (cli_parse_long(optarg, 1, FH_STACK_DEPTH, &v))
				return usage_error("invalid stack depth '%s' (1-32)", optarg);
			cfg->stack_depth = (int)v;
			break;
		case OPT_MAX_PROCS:
			if (cli_parse_long(optarg, 1, 65536, &v))
				return usage_error("invalid --max-procs '%s' (1-65536)", optarg);
			cfg->max_procs = (int)v;
			break;
		case OPT_HOLD_MS:
			if (cli_parse_long(optarg, 0, 10000, &v))
				return usage_error("invalid --hold-ms '%s' (0-10000)", optarg);
			cfg->hold_ms = (int)v;
			break;
		case 'u':
			if (!*optarg || strlen(optarg) > 64)
				return usage_error("invalid user '%s'", optarg);
			cfg->user = optarg;
			break;
		case OPT_RING_BUFFER_KB:
			/* a power of two pages: the kernel's rule for ring buffers */
			if (cli_parse_long(optarg, 4, 1 << 20, &v) || (v & (v - 1)))
				return usage_error("invalid --ring-buffer-kb '%s' (a power of two, "
						   "4-1048576)", optarg);
			cfg->ring_buffer_kb = (int)v;
			break;
		case OPT_MAX_CHILDREN:
			if (cli_parse_long(optarg, 1, 1 << 20, &v))
				return usage_error("invalid --max-children '%s' (1-1048576)", optarg);
			cfg->max_children = (int)v;
			break;
		case OPT_MAX_TRACED:
			if (cli_parse_long(optarg, 1, 1 << 20, &v))
				return usage_error("invalid --max-traced '%s' (1-1048576)", optarg);
			cfg->max_traced = (int)v;
			break;
		case OPT_VERSION:
			printf("forkhazard %s\n", FH_VERSION);
			return FH_EXIT_OK;
		case ':':
			return usage_error("option '%s' needs an argument",
					   option_name(argv[at], name));
		default:
			return usage_error("unknown option '%s'", option_name(argv[at], name));
		}
	}
	if (optind < argc) {
		if (strcmp(argv[optind - 1], "--") != 0)
			return usage_error("unexpected argument '%s' (put a command after --)",
					   argv[optind]);
		cfg->command = &argv[optind];
	} else if (optind > 1 && !strcmp(argv[optind - 1], "--")) {
		return usage_error("missing COMMAND after --%s", "");
	}
	if (cfg->user && !cfg->command)
		return usage_error("-u USER is for a COMMAND: '%s' has none to run", cfg->user);
	if (cfg->command && cfg->npids)
		return usage_error("-p and a COMMAND cannot be combined%s", "");
	if ((cfg->track_all || cfg->ncomms) && (cfg->npids || cfg->command))
		return usage_error("--track-all and --comm are whole-system options: not with %s",
				   cfg->npids ? "-p" : "a COMMAND");
	if ((cfg->track_all || cfg->ncomms) && cfg->light)
		return usage_error("--light places no lock probes: not with %s",
				   cfg->track_all ? "--track-all" : "--comm");
	if (config_check(cfg))
		return FH_EXIT_USAGE;
	return -1;
}

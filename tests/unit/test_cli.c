// SPDX-License-Identifier: GPL-2.0
/* cli.c: command lines in, configuration or one clear usage error out. */
#include <errno.h>
#include <stdarg.h>
#include "cli.h"
#include "forkhazard.h"
#include "unit.h"

#define MAX_ARGS 80

struct run {
	int rc;
	struct fh_config cfg;
	char *argv[MAX_ARGS];
	char out[8192], err[1024];	/* what cli_parse printed */
};

/* cli_parse("forkhazard", args..., NULL), its output captured. */
static struct run *run_cli(struct run *r, ...)
{
	struct unit_capture cap;
	va_list ap;
	int argc = 0;
	char *a;

	memset(r, 0, sizeof(*r));
	r->argv[argc++] = "forkhazard";
	va_start(ap, r);
	while ((a = va_arg(ap, char *)) && argc < MAX_ARGS - 1)
		r->argv[argc++] = a;
	va_end(ap);
	r->argv[argc] = NULL;
	if (!unit_capture_begin(&cap)) {
		r->rc = -999;
		return r;
	}
	r->rc = cli_parse(argc, r->argv, &r->cfg);
	unit_capture_end(&cap, r->out, sizeof(r->out), r->err, sizeof(r->err));
	return r;
}

#define RUN(...) run_cli(&r, __VA_ARGS__, (char *)NULL)

/* A usage error: status 2, nothing on stdout, one line on stderr naming `what`. */
static bool usage_error(struct run *r, const char *what, char *why, size_t size)
{
	size_t len = strlen(r->err);

	if (r->rc != FH_EXIT_USAGE)
		snprintf(why, size, "status %d, want 2", r->rc);
	else if (r->out[0])
		snprintf(why, size, "printed to stdout: %.80s", r->out);
	else if (strncmp(r->err, "forkhazard: ", 12) || len < 2 || r->err[len - 1] != '\n' ||
		 strchr(r->err, '\n') != r->err + len - 1)
		snprintf(why, size, "not one 'forkhazard: ...' line: %.200s", r->err);
	else if (what && !strstr(r->err, what))
		snprintf(why, size, "message does not name '%s': %.200s", what, r->err);
	else
		return true;
	return false;
}

#define CHECK_USAGE(what, ...)							\
	do {									\
		char why_[300];							\
		unit_checks++;							\
		RUN(__VA_ARGS__);						\
		if (!usage_error(&r, what, why_, sizeof(why_)))			\
			FAIL("%s: %s", #__VA_ARGS__, why_);			\
	} while (0)

/* Parsed, nothing printed. */
#define CHECK_OK(...)								\
	do {									\
		unit_checks++;							\
		RUN(__VA_ARGS__);						\
		if (r.rc != -1 || r.out[0] || r.err[0])				\
			FAIL("%s: status %d, printed '%.100s%.100s'", #__VA_ARGS__, r.rc, \
			     r.out, r.err);					\
	} while (0)

UNIT_TEST(defaults)
{
	static struct run r;

	/* no argument at all: trace the whole system with the defaults */
	r.rc = 0;
	run_cli(&r, (char *)NULL);
	CHECK_INT(r.rc, -1);
	CHECK_STR(r.err, "");
	CHECK_INT(r.cfg.mode, FH_MODE_TRACE);
	CHECK_INT(r.cfg.npids, 0);
	CHECK(r.cfg.command == NULL);
	CHECK(!r.cfg.json);
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_ADAPTIVE);
	CHECK(r.cfg.output == NULL);
	CHECK(r.cfg.duration == 0);
	CHECK_INT(r.cfg.verbose, 0);
	CHECK_INT(r.cfg.lock_stack, FH_LOCK_STACK_FP);
	CHECK(!r.cfg.probe_at_entry);
	CHECK_INT(r.cfg.stack_depth, 8);
	CHECK_INT(r.cfg.max_procs, 1024);
	CHECK_INT(r.cfg.hold_ms, 200);
	CHECK(r.cfg.max_overhead == 1 && !r.cfg.max_overhead_given);
	CHECK_INT(r.cfg.inspect_pid, 0);
}

UNIT_TEST(pid_repeated)
{
	static struct run r;

	CHECK_OK("-p", "1", "-p", "42", "--pid", "7", "--pid=9", "-p3", "-p", "4194304");
	CHECK_INT(r.cfg.npids, 6);
	CHECK(r.cfg.pids[0] == 1 && r.cfg.pids[1] == 42 && r.cfg.pids[2] == 7);
	CHECK(r.cfg.pids[3] == 9 && r.cfg.pids[4] == 3 && r.cfg.pids[5] == 4194304);
	CHECK(r.cfg.command == NULL);
}

UNIT_TEST(pid_invalid)
{
	static struct run r;

	CHECK_USAGE("junk", "-p", "junk");
	CHECK_USAGE("'0'", "-p", "0");
	CHECK_USAGE("-5", "-p", "-5");
	CHECK_USAGE("+5", "-p", "+5");
	CHECK_USAGE("12abc", "-p", "12abc");
	CHECK_USAGE("''", "-p", "");
	CHECK_USAGE("4194305", "-p", "4194305");	/* above the kernel's PID_MAX_LIMIT */
	CHECK_USAGE("99999999999999999999", "-p", "99999999999999999999");
	CHECK_USAGE("'-p'", "-j", "-p");			/* missing */
	CHECK_USAGE("'--pid'", "--pid");
	CHECK_USAGE("'-p'", "-jp");
	/* one bad -p among good ones still fails */
	CHECK_USAGE("x", "-p", "1", "-p", "x", "-p", "2");
}

UNIT_TEST(pid_count_bounded)
{
	static struct run r;
	static char nums[FH_MAX_PIDS + 1][8];
	static char *argv[2 * (FH_MAX_PIDS + 1) + 2];
	struct unit_capture cap;

	argv[0] = "forkhazard";
	for (int i = 0; i <= FH_MAX_PIDS; i++) {
		snprintf(nums[i], sizeof(nums[i]), "%d", i + 1);
		argv[1 + 2 * i] = "-p";
		argv[2 + 2 * i] = nums[i];
	}
	/* exactly the maximum: fine */
	argv[2 * FH_MAX_PIDS + 1] = NULL;
	CHECK(unit_capture_begin(&cap));
	r.rc = cli_parse(2 * FH_MAX_PIDS + 1, argv, &r.cfg);
	unit_capture_end(&cap, r.out, sizeof(r.out), r.err, sizeof(r.err));
	CHECK_INT(r.rc, -1);
	CHECK_INT(r.cfg.npids, FH_MAX_PIDS);
	CHECK_INT(r.cfg.pids[FH_MAX_PIDS - 1], FH_MAX_PIDS);
	/* one more: refused, and nothing written past the table */
	argv[2 * FH_MAX_PIDS + 1] = "-p";
	CHECK(unit_capture_begin(&cap));
	r.rc = cli_parse(2 * FH_MAX_PIDS + 3, argv, &r.cfg);
	unit_capture_end(&cap, r.out, sizeof(r.out), r.err, sizeof(r.err));
	CHECK_INT(r.rc, FH_EXIT_USAGE);
	CHECK(strstr(r.err, "too many -p") != NULL);
	CHECK_INT(r.cfg.npids, FH_MAX_PIDS);
}

UNIT_TEST(parse_pid_directly)
{
	pid_t pid = 0;

	CHECK_INT(cli_parse_pid("1", &pid), 0);
	CHECK_INT(pid, 1);
	CHECK_INT(cli_parse_pid("4194304", &pid), 0);
	CHECK_INT(pid, 4194304);
	pid = 77;
	CHECK_INT(cli_parse_pid(NULL, &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("", &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("0", &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("-1", &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("0x10", &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("1 ", &pid), -EINVAL);
	CHECK_INT(cli_parse_pid("9223372036854775808", &pid), -EINVAL);
	CHECK_INT(pid, 77);	/* untouched on error */
}

UNIT_TEST(json_and_output)
{
	static struct run r;

	CHECK_OK("-j");
	CHECK(r.cfg.json);
	CHECK_OK("--json", "-o", "out.jsonl");
	CHECK(r.cfg.json);
	CHECK_STR(r.cfg.output, "out.jsonl");
	CHECK_OK("--output=/tmp/x y");
	CHECK_STR(r.cfg.output, "/tmp/x y");
	CHECK(!r.cfg.json);
	CHECK_OK("-jo", "f");
	CHECK(r.cfg.json);
	CHECK_STR(r.cfg.output, "f");
	CHECK_USAGE("empty", "-o", "");
	CHECK_USAGE("-o", "-o");
	CHECK_USAGE("--output", "--output");
}

UNIT_TEST(duration)
{
	static struct run r;

	CHECK_OK("-d", "0.5");
	CHECK(r.cfg.duration == 0.5);
	CHECK_OK("--duration=10");
	CHECK(r.cfg.duration == 10);
	CHECK_OK("-d", "1e9");
	CHECK(r.cfg.duration == 1e9);
	CHECK_USAGE("'0'", "-d", "0");
	CHECK_USAGE("-1", "-d", "-1");
	CHECK_USAGE("-0.5", "-d", "-0.5");
	CHECK_USAGE("nan", "-d", "nan");
	CHECK_USAGE("inf", "-d", "inf");
	CHECK_USAGE("junk", "-d", "junk");
	CHECK_USAGE("1s", "-d", "1s");
	CHECK_USAGE("''", "-d", "");
	CHECK_USAGE("1e10", "-d", "1e10");
	CHECK_USAGE("1e999", "-d", "1e999");
}

UNIT_TEST(verbose_counts)
{
	static struct run r;

	CHECK_OK("-v");
	CHECK_INT(r.cfg.verbose, 1);
	CHECK_OK("-vv");
	CHECK_INT(r.cfg.verbose, 2);
	CHECK_OK("-v", "--verbose", "-vj");
	CHECK_INT(r.cfg.verbose, 3);
	CHECK(r.cfg.json);
}

UNIT_TEST(light_and_probe_at_entry)
{
	static struct run r;

	CHECK_OK("--light");
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_LIGHT);
	CHECK(!r.cfg.probe_at_entry);
	CHECK_OK("--probe-at-entry");
	CHECK(r.cfg.probe_at_entry);
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_ADAPTIVE);
	CHECK_USAGE("--light", "--light=yes");
}

UNIT_TEST(lock_stack_modes)
{
	static struct run r;

	CHECK_OK("--lock-stack", "caller");
	CHECK_INT(r.cfg.lock_stack, FH_LOCK_STACK_CALLER);
	CHECK_OK("--lock-stack=fp");
	CHECK_INT(r.cfg.lock_stack, FH_LOCK_STACK_FP);
	CHECK_OK("--lock-stack=full");
	CHECK_INT(r.cfg.lock_stack, FH_LOCK_STACK_FULL);
	CHECK_USAGE("'FULL'", "--lock-stack", "FULL");
	CHECK_USAGE("''", "--lock-stack=");
	CHECK_USAGE("--lock-stack", "--lock-stack");
}

UNIT_TEST(track_all_and_comm)
{
	static struct run r;

	CHECK_OK("--track-all");
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_ALL);
	CHECK_INT(r.cfg.ncomms, 0);
	CHECK_OK("--comm", "python3", "--comm=123456789012345");	/* 15: the longest comm */
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_ADAPTIVE);
	CHECK_INT(r.cfg.ncomms, 2);
	CHECK_STR(r.cfg.comms[0], "python3");
	CHECK_STR(r.cfg.comms[1], "123456789012345");
	CHECK_USAGE("1234567890123456", "--comm", "1234567890123456");
	CHECK_USAGE("''", "--comm", "");
	CHECK_USAGE("--comm", "--comm");
	CHECK_OK("--comm=a", "--comm=b", "--comm=c", "--comm=d", "--comm=e", "--comm=f",
		 "--comm=g", "--comm=h");
	CHECK_INT(r.cfg.ncomms, 8);
	CHECK_STR(r.cfg.comms[7], "h");
	CHECK_USAGE("too many", "--comm=a", "--comm=b", "--comm=c", "--comm=d", "--comm=e",
		    "--comm=f", "--comm=g", "--comm=h", "--comm=i");
}

UNIT_TEST(lock_fn_shape)
{
	static struct run r;

	CHECK_OK("--lock-fn", "/usr/lib/libx.so:x_lock:x_unlock",
		 "--lock-fn=libx.so:x_trylock:x_unlock:TRY");
	CHECK_INT(r.cfg.nlock_fns, 2);
	CHECK_STR(r.cfg.lock_fns[0], "/usr/lib/libx.so:x_lock:x_unlock");
	CHECK_STR(r.cfg.lock_fns[1], "libx.so:x_trylock:x_unlock:TRY");
	CHECK_USAGE("nocolon", "--lock-fn", "nocolon");
	CHECK_USAGE("'b:a'", "--lock-fn", "b:a");
	CHECK_USAGE("':a:r'", "--lock-fn", ":a:r");
	CHECK_USAGE("'b::r'", "--lock-fn", "b::r");
	CHECK_USAGE("'b:a:'", "--lock-fn", "b:a:");
	CHECK_USAGE("'b:a:r:X'", "--lock-fn", "b:a:r:X");
	CHECK_USAGE("too many", "--lock-fn=b:a:r", "--lock-fn=b:a:r", "--lock-fn=b:a:r",
		    "--lock-fn=b:a:r", "--lock-fn=b:a:r", "--lock-fn=b:a:r", "--lock-fn=b:a:r",
		    "--lock-fn=b:a:r", "--lock-fn=b:a:r");
}

UNIT_TEST(stack_depth_bounds)
{
	static struct run r;

	CHECK_OK("--stack-depth", "1");
	CHECK_INT(r.cfg.stack_depth, 1);
	CHECK_OK("--stack-depth=32");
	CHECK_INT(r.cfg.stack_depth, 32);
	CHECK_USAGE("'0'", "--stack-depth", "0");
	CHECK_USAGE("33", "--stack-depth", "33");
	CHECK_USAGE("-1", "--stack-depth", "-1");
	CHECK_USAGE("x", "--stack-depth", "x");
	CHECK_USAGE("8x", "--stack-depth", "8x");
	CHECK_USAGE("''", "--stack-depth", "");
	CHECK_USAGE("--stack-depth", "--stack-depth");
}

UNIT_TEST(max_procs_bounds)
{
	static struct run r;

	CHECK_OK("--max-procs", "1");
	CHECK_INT(r.cfg.max_procs, 1);
	CHECK_OK("--max-procs=65536");
	CHECK_INT(r.cfg.max_procs, 65536);
	CHECK_USAGE("'0'", "--max-procs", "0");
	CHECK_USAGE("65537", "--max-procs", "65537");
	CHECK_USAGE("99999999999999999999", "--max-procs", "99999999999999999999");
	CHECK_USAGE("x", "--max-procs", "x");
}

UNIT_TEST(max_overhead_bounds_and_modes)
{
	static struct run r;

	CHECK_OK("--max-overhead", "0");
	CHECK(r.cfg.max_overhead == 0 && r.cfg.max_overhead_given);
	CHECK_OK("--max-overhead=2.5");
	CHECK(r.cfg.max_overhead == 2.5);
	CHECK_OK("--max-overhead=100", "-p", "1");
	CHECK(r.cfg.max_overhead == 100 && r.cfg.max_overhead_given);
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_TARGETS);
	CHECK_OK("-p", "1");
	CHECK(r.cfg.max_overhead == 1 && !r.cfg.max_overhead_given);
	CHECK_USAGE("0-100", "--max-overhead", "-1");
	CHECK_USAGE("'100.5'", "--max-overhead", "100.5");
	CHECK_USAGE("nan", "--max-overhead", "nan");
	CHECK_USAGE("1%", "--max-overhead", "1%");
	CHECK_USAGE("--max-overhead", "--light", "--max-overhead", "1");
	CHECK_USAGE("--max-overhead", "--max-overhead=3", "--track-all");
	/* off: nothing to contradict */
	CHECK_OK("--light", "--max-overhead=0");
}

UNIT_TEST(hold_ms_bounds)
{
	static struct run r;

	CHECK_OK("--hold-ms", "0");
	CHECK_INT(r.cfg.hold_ms, 0);
	CHECK_OK("--hold-ms=10000");
	CHECK_INT(r.cfg.hold_ms, 10000);
	CHECK_USAGE("-1", "--hold-ms", "-1");
	CHECK_USAGE("10001", "--hold-ms", "10001");
	CHECK_USAGE("1.5", "--hold-ms", "1.5");
}

UNIT_TEST(command_after_double_dash)
{
	static struct run r;

	CHECK_OK("--", "ls", "-l");
	CHECK(r.cfg.command != NULL);
	CHECK_STR(r.cfg.command[0], "ls");
	CHECK_STR(r.cfg.command[1], "-l");
	CHECK(r.cfg.command[2] == NULL);
	/* the command's options are its own, even ours */
	CHECK_OK("-j", "-v", "--", "sh", "-c", "exit 3", "-p", "5", "--help", "--");
	CHECK(r.cfg.json);
	CHECK_INT(r.cfg.verbose, 1);
	CHECK_INT(r.cfg.npids, 0);
	CHECK_STR(r.cfg.command[0], "sh");
	CHECK_STR(r.cfg.command[4], "5");
	CHECK_STR(r.cfg.command[5], "--help");
	CHECK_STR(r.cfg.command[6], "--");
	CHECK(r.cfg.command[7] == NULL);
	/* points into argv: nothing copied, nothing to free */
	CHECK(r.cfg.command == &r.argv[4]);
}

UNIT_TEST(command_errors)
{
	static struct run r;

	CHECK_USAGE("COMMAND", "--");
	CHECK_USAGE("COMMAND", "-j", "--");
	CHECK_USAGE("'ls'", "ls");			/* a stray positional */
	CHECK_USAGE("'ls'", "-j", "ls", "-l");
	CHECK_USAGE("combined", "-p", "5", "--", "ls");
	CHECK_USAGE("combined", "--pid=5", "--", "true");
}

UNIT_TEST(unknown_options)
{
	static struct run r;

	CHECK_USAGE("--bogus", "--bogus");
	CHECK_USAGE("-Z", "-Z");
	CHECK_USAGE("-Z", "-j", "-Z");
	/* inside a cluster: the letter is named, whatever its place */
	CHECK_USAGE("-Z", "-jZ");
	CHECK_USAGE("-Z", "-Zv");
	CHECK_USAGE("-Z", "--json", "-Zv");
}

UNIT_TEST(parse_again_after_an_error)
{
	static struct run r;

	/* an error inside a cluster leaves getopt mid-element; the next parse
	 * (tests, or any caller that parses twice) must start afresh */
	RUN("-Zv");
	CHECK_INT(r.rc, FH_EXIT_USAGE);
	CHECK_OK("-j");
	CHECK_INT(r.cfg.verbose, 0);
	CHECK(r.cfg.json);
	RUN("-vZj");
	CHECK_INT(r.rc, FH_EXIT_USAGE);
	CHECK_OK("--light");
	CHECK(!r.cfg.json);
	CHECK_INT(r.cfg.trace_mode, FH_TRACE_LIGHT);
}

UNIT_TEST(help_and_version)
{
	static struct run r;

	RUN("--help");
	CHECK_INT(r.rc, 0);
	CHECK(strncmp(r.out, "Usage: forkhazard", 17) == 0);
	CHECK_STR(r.err, "");
	RUN("-h", "--bogus");	/* help wins: it comes first */
	CHECK_INT(r.rc, 0);
	CHECK(strstr(r.out, "inspect PID") != NULL);
	RUN("--version");
	CHECK_INT(r.rc, 0);
	CHECK_STR(r.out, "forkhazard " FH_VERSION "\n");
	CHECK_STR(r.err, "");
}

UNIT_TEST(inspect)
{
	static struct run r;

	CHECK_OK("inspect", "4711");
	CHECK_INT(r.cfg.mode, FH_MODE_INSPECT);
	CHECK_INT(r.cfg.inspect_pid, 4711);
	CHECK(!r.cfg.json);
	CHECK_OK("inspect", "--json", "42");
	CHECK_INT(r.cfg.mode, FH_MODE_INSPECT);
	CHECK_INT(r.cfg.inspect_pid, 42);
	CHECK(r.cfg.json);
	CHECK_OK("inspect", "42", "-j", "-v");
	CHECK(r.cfg.json);
	CHECK_INT(r.cfg.verbose, 1);
	RUN("inspect", "--help");
	CHECK_INT(r.rc, 0);
	CHECK(strstr(r.out, "Usage:") != NULL);
}

UNIT_TEST(inspect_errors)
{
	static struct run r;

	CHECK_USAGE("missing PID", "inspect");
	CHECK_USAGE("missing PID", "inspect", "--json");
	CHECK_USAGE("'2'", "inspect", "1", "2");
	CHECK_USAGE("abc", "inspect", "abc");
	CHECK_USAGE("'0'", "inspect", "0");
	CHECK_USAGE("--bogus", "inspect", "--bogus", "1");
	CHECK_USAGE("-p", "inspect", "-p", "1");
	/* "inspect" is a mode only in first place */
	CHECK_USAGE("inspect", "-j", "inspect", "1");
}

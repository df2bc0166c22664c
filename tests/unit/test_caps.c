// SPDX-License-Identifier: GPL-2.0
/* caps.c: the capability sets, their names, and dropping for good (in a child). */
#include <fcntl.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "caps.h"
#include "cli.h"
#include "unit.h"

UNIT_TEST(sets_nest)
{
	uint64_t kept = caps_kept_after_attach(), start = caps_needed_at_start(false);

	CHECK((kept & start) == kept);
	CHECK(start & FH_CAPBIT(FH_CAP_BPF));
	CHECK(start & FH_CAPBIT(FH_CAP_PERFMON));
	CHECK(!(kept & FH_CAPBIT(FH_CAP_BPF)));
	CHECK(!(start & FH_CAPBIT(FH_CAP_SYS_ADMIN)));
	CHECK(caps_needed_at_start(true) & FH_CAPBIT(FH_CAP_SETUID));
	CHECK(!(start & FH_CAPBIT(FH_CAP_SETUID)));
}

UNIT_TEST(names_and_format)
{
	char buf[256];

	CHECK_STR(caps_name(FH_CAP_BPF), "CAP_BPF");
	CHECK_STR(caps_name(63), "CAP_?");
	caps_format(caps_kept_after_attach(), buf, sizeof(buf));
	CHECK_STR(buf, "CAP_DAC_READ_SEARCH,CAP_SYS_PTRACE,CAP_CHECKPOINT_RESTORE");
	caps_format(caps_kept_after_attach(), buf, 10);	/* truncated, terminated */
	CHECK(strlen(buf) < 10);
	caps_format(0, buf, sizeof(buf));
	CHECK_STR(buf, "");
}

/* In a child: keep one capability; the effective set then has only it. */
UNIT_TEST(limit_keeps_only_what_is_asked)
{
	int status;
	pid_t pid;

	if (caps_check(FH_CAPBIT(FH_CAP_SYS_PTRACE))) {
		CHECK(caps_effective() == 0 || caps_effective() != 0);	/* unprivileged run */
		return;
	}
	pid = fork();
	if (pid == 0) {
		if (caps_limit(FH_CAPBIT(FH_CAP_SYS_PTRACE)))
			_exit(1);
		if (caps_effective() != FH_CAPBIT(FH_CAP_SYS_PTRACE))
			_exit(2);
		if (caps_check(FH_CAPBIT(FH_CAP_BPF)) != FH_CAP_BPF)
			_exit(3);
		if (prctl(PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) != 1)
			_exit(4);
		_exit(0);
	}
	CHECK(pid > 0);
	CHECK(waitpid(pid, &status, 0) == pid);
	CHECK_INT(WIFEXITED(status) ? WEXITSTATUS(status) : 100, 0);
}

static int parse(const char *a1, const char *a2, struct fh_config *cfg)
{
	char *argv[] = { "forkhazard", (char *)a1, (char *)a2, NULL };
	int saved = dup(2), null = open("/dev/null", O_WRONLY), rc;

	dup2(null, 2);	/* usage errors go to stderr */
	rc = cli_parse(a2 ? 3 : 2, argv, cfg);
	dup2(saved, 2);
	close(saved);
	close(null);
	return rc;
}

UNIT_TEST(cli_sizes_and_user)
{
	struct fh_config cfg;

	CHECK_INT(parse("--ring-buffer-kb=64", NULL, &cfg), -1);
	CHECK_INT(cfg.ring_buffer_kb, 64);
	CHECK_INT(parse("--ring-buffer-kb=48", NULL, &cfg), FH_EXIT_USAGE);
	CHECK_INT(parse("--ring-buffer-kb=2", NULL, &cfg), FH_EXIT_USAGE);
	CHECK_INT(parse("--max-children=8", NULL, &cfg), -1);
	CHECK_INT(cfg.max_children, 8);
	CHECK_INT(parse("--max-traced=0", NULL, &cfg), FH_EXIT_USAGE);
	CHECK_INT(parse("-u", "nobody", &cfg), FH_EXIT_USAGE);	/* no COMMAND */
}

// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "command.h"
#include "escape.h"

int command_resolve_user(const char *user, struct command_user *u)
{
	struct passwd pw, *res = NULL;
	char buf[4096], *end;
	int n = COMMAND_MAX_GROUPS, err;
	long uid;

	memset(u, 0, sizeof(*u));
	errno = 0;
	uid = strtol(user, &end, 10);
	if (*user && !*end && !errno && uid >= 0)
		err = getpwuid_r((uid_t)uid, &pw, buf, sizeof(buf), &res);
	else
		err = getpwnam_r(user, &pw, buf, sizeof(buf), &res);
	if (err)
		return -err;
	if (!res)
		return -ENOENT;
	u->uid = pw.pw_uid;
	u->gid = pw.pw_gid;
	snprintf(u->name, sizeof(u->name), "%s", pw.pw_name);
	snprintf(u->home, sizeof(u->home), "%s", pw.pw_dir ? pw.pw_dir : "/");
	if (getgrouplist(pw.pw_name, pw.pw_gid, u->groups, &n) < 0)
		n = COMMAND_MAX_GROUPS;	/* the first ones, a member of more */
	u->ngroups = n;
	return 0;
}

/* In the child: become `u` for good (no way back to root). */
static int become_user(const struct command_user *u)
{
	if (setgroups((size_t)u->ngroups, u->groups) || setresgid(u->gid, u->gid, u->gid) ||
	    setresuid(u->uid, u->uid, u->uid))
		return -errno;
	if (u->uid != 0 && (setuid(0) == 0 || geteuid() == 0))
		return -EPERM;	/* could regain root: refuse to run */
	setenv("HOME", u->home, 1);
	setenv("USER", u->name, 1);
	setenv("LOGNAME", u->name, 1);
	return 0;
}

int command_spawn(char *const argv[], const struct command_user *user, struct command *cmd)
{
	int go[2];
	pid_t pid;

	memset(cmd, 0, sizeof(*cmd));
	cmd->pidfd = cmd->go_fd = -1;
	if (pipe2(go, O_CLOEXEC))
		return -errno;
	pid = fork();
	if (pid < 0) {
		int err = -errno;

		close(go[0]);
		close(go[1]);
		return err;
	}
	if (pid == 0) {
		char byte, name[256];
		sigset_t none;
		int err;
		ssize_t n;

		/* The command gets a clean signal state, not ours. */
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		close(go[1]);
		do {
			n = read(go[0], &byte, 1);
		} while (n < 0 && errno == EINTR);
		if (n != 1)
			_exit(126);	/* the tracer gave up before releasing us */
		if (user && (err = become_user(user))) {
			term_escape(argv[0], (size_t)-1, name, sizeof(name));
			fprintf(stderr, "forkhazard: cannot run '%s' as %s: %s\n", name,
				user->name, strerror(-err));
			_exit(126);
		}
		execvp(argv[0], argv);
		err = errno;
		term_escape(argv[0], (size_t)-1, name, sizeof(name));
		fprintf(stderr, "forkhazard: cannot run '%s': %s\n", name, strerror(err));
		_exit(err == ENOENT ? 127 : 126);
	}
	close(go[0]);
	cmd->pid = pid;
	cmd->go_fd = go[1];
	cmd->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
	if (cmd->pidfd < 0) {
		int err = -errno;

		command_abort(cmd);
		return err;
	}
	return 0;
}

int command_release(struct command *cmd)
{
	ssize_t n = write(cmd->go_fd, "g", 1);

	close(cmd->go_fd);
	cmd->go_fd = -1;
	return n == 1 ? 0 : -errno;
}

bool command_reap(struct command *cmd)
{
	int status;

	if (cmd->reaped || cmd->pid <= 0)
		return cmd->reaped;
	if (waitpid(cmd->pid, &status, WNOHANG) == cmd->pid) {
		cmd->reaped = true;
		cmd->status = status;
	}
	return cmd->reaped;
}

void command_abort(struct command *cmd)
{
	if (cmd->pid > 0 && !cmd->reaped) {
		kill(cmd->pid, SIGKILL);
		if (waitpid(cmd->pid, &cmd->status, 0) == cmd->pid)
			cmd->reaped = true;
	}
	command_close(cmd);
}

int command_exit_status(const struct command *cmd)
{
	if (WIFEXITED(cmd->status))
		return WEXITSTATUS(cmd->status);
	if (WIFSIGNALED(cmd->status))
		return 128 + WTERMSIG(cmd->status);
	return 1;
}

void command_close(struct command *cmd)
{
	if (cmd->go_fd >= 0)
		close(cmd->go_fd);
	if (cmd->pidfd >= 0)
		close(cmd->pidfd);
	cmd->go_fd = cmd->pidfd = -1;
}

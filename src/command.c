// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "command.h"

int command_spawn(char *const argv[], struct command *cmd)
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
		sigset_t none;
		char byte;
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
		execvp(argv[0], argv);
		fprintf(stderr, "forkhazard: cannot run '%s': %s\n", argv[0], strerror(errno));
		_exit(errno == ENOENT ? 127 : 126);
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

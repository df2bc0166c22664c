/* SPDX-License-Identifier: GPL-2.0 */
/* `-- COMMAND`: start it held before exec, let the tracer attach, release it, reap it. */
#ifndef FH_COMMAND_H
#define FH_COMMAND_H

#include <stdbool.h>
#include <sys/types.h>

struct command {
	pid_t pid;
	int pidfd;	/* readable when the command exits */
	int go_fd;	/* write end of the pipe it waits on */
	bool reaped;
	int status;	/* wait status once reaped */
};

/* Who the command runs as (-u USER): resolved before the fork. */
#define COMMAND_MAX_GROUPS	64
struct command_user {
	uid_t uid;
	gid_t gid;
	gid_t groups[COMMAND_MAX_GROUPS];
	int ngroups;
	char name[65];
	char home[256];
};

/* USER as a name or a numeric UID. Returns 0, -ENOENT (no such user) or -errno. */
int command_resolve_user(const char *user, struct command_user *u);

/*
 * Fork the command; it waits for command_release() before exec. With `user`,
 * it takes that user's UID, GID and groups (and HOME, USER, LOGNAME) before
 * exec, so it never runs with our privileges. Returns 0 or -errno.
 */
int command_spawn(char *const argv[], const struct command_user *user, struct command *cmd);
/* Let it exec. Returns 0 or -errno. */
int command_release(struct command *cmd);
/* Kill a command that was never released (setup failed) and reap it. */
void command_abort(struct command *cmd);
/* Reap it if it has exited. Returns true once reaped. */
bool command_reap(struct command *cmd);
/* The exit status forkhazard passes on: its exit code, or 128 + signal. */
int command_exit_status(const struct command *cmd);
void command_close(struct command *cmd);

#endif

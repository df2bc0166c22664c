/*
 * launch: the start handshake for programs that have none (sqlite3,
 * python3): print {"ready":PID}, wait for SIGUSR1, then exec the command in
 * the same process, so a tracer attached to PID (forkhazard -p, bpftrace -p)
 * traces the command from its first instruction.
 *
 *   launch CMD [ARG...]
 *
 * The command measures its own elapsed time (sqlite3's .timer, the Python
 * workload's clock), so neither the exec nor the dynamic loading counts.
 */
#include "common.h"

int main(int argc, char **argv)
{
	sigset_t set;

	if (argc < 2) {
		fprintf(stderr, "usage: launch CMD [ARG...]\n");
		return 2;
	}
	wait_for_go();
	/* The command must not inherit SIGUSR1 blocked. */
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	execvp(argv[1], argv + 1);
	fprintf(stderr, "launch: cannot run %s: ", argv[1]);
	perror(NULL);
	return 127;
}

/*
 * Shared by the benchmark programs: the start handshake, the clock and the
 * JSON line every program prints.
 *
 * With --wait a program prints {"ready":PID} and blocks until SIGUSR1, so
 * that a tracer can attach to the PID (forkhazard -p, bpftrace -p) before
 * any measured work starts. SIGUSR1 is blocked before any thread exists, so
 * every thread inherits the mask and only the sigwait() below takes it.
 *
 * Counting runs (FH_BENCH_PAUSE in the environment) also stop at the edges
 * of each measured loop: the program prints {"pause":"before"|"after",
 * "loop":N} and waits for SIGUSR1 again, so that the runner reads the
 * tracer's probe hit counters while the program does nothing.
 */
#ifndef BENCH_COMMON_H
#define BENCH_COMMON_H

#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static inline void wait_for_go(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("{\"ready\":%d}\n", (int)getpid());
	fflush(stdout);
	if (sigwait(&set, &sig)) {
		perror("sigwait");
		exit(1);
	}
}

/* After wait_for_go(): SIGUSR1 is blocked in every thread. */
static inline void pause_at(const char *edge, int loop)
{
	sigset_t set;
	int sig;

	if (!getenv("FH_BENCH_PAUSE"))
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("{\"pause\":\"%s\",\"loop\":%d}\n", edge, loop);
	fflush(stdout);
	if (sigwait(&set, &sig)) {
		perror("sigwait");
		exit(1);
	}
}

static inline unsigned long parse_count(const char *s, const char *what)
{
	char *end;
	unsigned long v = strtoul(s, &end, 10);

	if (!*s || *end || v == 0) {
		fprintf(stderr, "bad %s: '%s'\n", what, s);
		exit(2);
	}
	return v;
}

#endif

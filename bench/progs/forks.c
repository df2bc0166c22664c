/*
 * forks: fork-heavy programs, one JSON line each.
 *
 *   forks [--wait] big THREADS MB FORKS
 *       A process of THREADS threads (main included) with MB megabytes of
 *       touched heap forks FORKS times; each child exits at once and is
 *       waited for. Every thread but main holds a mutex of its own while it
 *       blocks, as a thread blocked in I/O with a lock held does: each fork
 *       is a hazard with THREADS-1 locks for the tracer to snapshot.
 *   forks [--wait] storm SECONDS
 *       A two-thread process (the worker holding a lock) forks and waits as
 *       fast as it can for SECONDS: the tracer's event throughput and loss.
 *
 * Prints {"forks":N,"elapsed_ns":..} for the fork loop only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <sys/wait.h>
#include "common.h"

#define MAX_THREADS 64
#define STORM_IN_FLIGHT 8

static pthread_mutex_t locks[MAX_THREADS];
static int block_pipe[2];
static pthread_barrier_t holding;

static void *holder_main(void *arg)
{
	pthread_mutex_t *m = arg;
	char c;

	pthread_mutex_lock(m);
	pthread_barrier_wait(&holding);
	/* Blocks until the process exits: nothing ever writes to the pipe. */
	while (read(block_pipe[0], &c, 1) < 0)
		;
	pthread_mutex_unlock(m);
	return NULL;
}

static void start_holders(int n)
{
	pthread_t tid;

	if (pipe(block_pipe)) {
		perror("pipe");
		exit(1);
	}
	pthread_barrier_init(&holding, NULL, (unsigned)n + 1);
	for (int i = 0; i < n; i++) {
		pthread_mutex_init(&locks[i], NULL);
		if (pthread_create(&tid, NULL, holder_main, &locks[i])) {
			fprintf(stderr, "forks: pthread_create failed\n");
			exit(1);
		}
	}
	pthread_barrier_wait(&holding);
}

static void fork_and_wait(void)
{
	pid_t pid = fork();
	int status;

	if (pid < 0) {
		perror("fork");
		exit(1);
	}
	if (pid == 0)
		_exit(0);
	while (waitpid(pid, &status, 0) < 0)
		;
}

static void reap_one(void)
{
	int status;

	while (waitpid(-1, &status, 0) < 0 && errno == EINTR)
		;
}

static void print_result(unsigned long forks, uint64_t elapsed)
{
	printf("{\"pid\":%d,\"forks\":%lu,\"elapsed_ns\":%llu}\n", (int)getpid(), forks,
	       (unsigned long long)elapsed);
}

int main(int argc, char **argv)
{
	bool wait = argc > 1 && !strcmp(argv[1], "--wait");
	int a = wait ? 2 : 1;

	if (a + 4 == argc && !strcmp(argv[a], "big")) {
		unsigned long threads = parse_count(argv[a + 1], "threads");
		unsigned long mb = parse_count(argv[a + 2], "megabytes");
		unsigned long forks = parse_count(argv[a + 3], "forks");
		size_t size = mb << 20;
		volatile char *heap;
		uint64_t t0, t;

		if (threads > MAX_THREADS) {
			fprintf(stderr, "forks: at most %d threads\n", MAX_THREADS);
			return 2;
		}
		if (wait)
			wait_for_go();
		heap = malloc(size);
		if (!heap) {
			perror("malloc");
			return 1;
		}
		/* Touch every page so that each fork copies real page tables. */
		for (size_t i = 0; i < size; i += 4096)
			heap[i] = (char)i;
		start_holders((int)threads - 1);
		pause_at("before", 0);
		t0 = now_ns();
		for (unsigned long i = 0; i < forks; i++)
			fork_and_wait();
		t = now_ns();
		pause_at("after", 0);
		print_result(forks, t - t0);
		return 0;
	}
	if (a + 2 == argc && !strcmp(argv[a], "storm")) {
		uint64_t secs = parse_count(argv[a + 1], "seconds");
		uint64_t t0, t, end;
		unsigned long n = 0;

		if (wait)
			wait_for_go();
		start_holders(1);
		pause_at("before", 0);
		t0 = now_ns();
		end = t0 + secs * 1000000000ull;
		/* A few children in flight: the next fork overlaps the last
		 * child's exit on the other core. */
		do {
			pid_t pid = fork();

			if (pid < 0) {
				perror("fork");
				return 1;
			}
			if (pid == 0)
				_exit(0);
			if (++n > STORM_IN_FLIGHT)
				reap_one();
		} while ((t = now_ns()) < end);
		for (unsigned long i = 0; i < n && i < STORM_IN_FLIGHT; i++)
			reap_one();
		pause_at("after", 0);
		print_result(n, t - t0);
		return 0;
	}
	fprintf(stderr, "usage: forks [--wait] big THREADS MB FORKS | storm SECONDS\n");
	return 2;
}

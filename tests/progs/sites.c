/*
 * sites: hazards for the daemon's tests (tests/test_daemon.py).
 *
 *   sites [OPTION...] repeat N GAP_MS    one site, N times: a worker holds a
 *                                        lock while main forks, GAP_MS apart
 *   sites [OPTION...] distinct N GAP_MS  N distinct sites: for fork i the
 *                                        worker holds the subset i (binary)
 *                                        of 12 locks, each taken by a
 *                                        function of its own
 *
 * Before the first lock, it waits (10 s at most) until lock probes are
 * placed: until pthread_mutex_lock's code in memory differs from the C
 * library's file (the uprobe's breakpoint). Options:
 *   --delay MS     wait MS more
 *   --wait-signal  once multithreaded, print {"ready":PID} and wait for
 *                  SIGUSR1 (the test knows when its tracer's probes are on)
 *   --linger MS    stay MS after the last fork (a tracer that is behind
 *                  still finds the process)
 * Children exit at once. Prints one JSON line of facts at the end
 * ("probed": whether the probes were seen) and exits 0.
 */
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define NLOCKS 12

static pthread_mutex_t locks[NLOCKS];
static atomic_int want = -1;	/* subset the worker should hold; -2: quit */
static atomic_int held = -1;	/* subset it holds */
static atomic_int worker_tid;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* One acquisition site per lock: the site key holds the caller of lock(). */
#define TAKE(i) \
	static __attribute__((noinline)) void take_##i(void) { pthread_mutex_lock(&locks[i]); }
TAKE(0) TAKE(1) TAKE(2) TAKE(3) TAKE(4) TAKE(5)
TAKE(6) TAKE(7) TAKE(8) TAKE(9) TAKE(10) TAKE(11)
static void (*const take[NLOCKS])(void) = {
	take_0, take_1, take_2, take_3, take_4, take_5,
	take_6, take_7, take_8, take_9, take_10, take_11,
};

/* Does pthread_mutex_lock's code in memory differ from the file's? */
static int probes_placed(void)
{
	uintptr_t fn = (uintptr_t)dlsym(RTLD_DEFAULT, "pthread_mutex_lock");
	unsigned long long start, end, off;
	char line[4096], path[4096];
	unsigned char disk[64];
	int found = 0, fd;
	FILE *maps;

	if (!fn || !(maps = fopen("/proc/self/maps", "r")))
		return 0;
	while (!found && fgets(line, sizeof(line), maps))
		found = sscanf(line, "%llx-%llx %*s %llx %*s %*s %4095s", &start, &end, &off,
			       path) == 4 &&
			fn >= start && fn + sizeof(disk) <= end;
	fclose(maps);
	if (!found || (fd = open(path, O_RDONLY)) < 0)
		return 0;
	found = pread(fd, disk, sizeof(disk), (off_t)(off + (fn - start))) == sizeof(disk) &&
		memcmp(disk, (void *)fn, sizeof(disk)) != 0;
	close(fd);
	return found;
}

static void *worker(void *arg)
{
	(void)arg;
	atomic_store(&worker_tid, gettid());
	for (;;) {
		int w = atomic_load(&want), h = atomic_load(&held);

		if (w == -2)
			break;
		if (w == h) {
			sleep_ms(1);
			continue;
		}
		for (int i = 0; h > 0 && i < NLOCKS; i++)
			if (h & (1 << i))
				pthread_mutex_unlock(&locks[i]);
		for (int i = 0; w > 0 && i < NLOCKS; i++)
			if (w & (1 << i))
				take[i]();
		atomic_store(&held, w);
	}
	return NULL;
}

static void hold(int subset)
{
	atomic_store(&want, subset);
	while (atomic_load(&held) != subset)
		sleep_ms(1);
}

static __attribute__((noinline)) pid_t fork_here(void)
{
	pid_t pid = fork();

	if (pid == 0)
		_exit(0);
	return pid;
}

int main(int argc, char **argv)
{
	int delay = 0, n, gap, forks = 0, distinct, probed = 0, wait_signal = 0, linger = 0;
	sigset_t usr1;
	pthread_t t;

	for (;;) {
		if (argc > 2 && !strcmp(argv[1], "--delay")) {
			delay = atoi(argv[2]);
			argc -= 2;
			argv += 2;
		} else if (argc > 2 && !strcmp(argv[1], "--linger")) {
			linger = atoi(argv[2]);
			argc -= 2;
			argv += 2;
		} else if (argc > 1 && !strcmp(argv[1], "--wait-signal")) {
			wait_signal = 1;
			argc--;
			argv++;
		} else {
			break;
		}
	}
	if (argc != 4 || (strcmp(argv[1], "repeat") && strcmp(argv[1], "distinct"))) {
		fprintf(stderr, "usage: sites [--delay MS] [--linger MS] [--wait-signal] "
			"repeat|distinct N GAP_MS\n");
		return 2;
	}
	distinct = !strcmp(argv[1], "distinct");
	n = atoi(argv[2]);
	gap = atoi(argv[3]);
	if (n < 1 || n > (1 << NLOCKS) - 1) {
		fprintf(stderr, "sites: N from 1 to %d\n", (1 << NLOCKS) - 1);
		return 2;
	}
	for (int i = 0; i < NLOCKS; i++)
		pthread_mutex_init(&locks[i], NULL);
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &usr1, NULL);	/* the worker inherits it */
	pthread_create(&t, NULL, worker, NULL);	/* multithreaded: probes come */
	if (wait_signal) {
		int sig;

		printf("{\"ready\":%d}\n", (int)getpid());
		fflush(stdout);
		sigwait(&usr1, &sig);
	}
	for (int i = 0; i < 1000 && !(probed = probes_placed()); i++)
		sleep_ms(10);
	sleep_ms(delay);
	for (int i = 1; i <= n; i++) {
		pid_t pid;

		hold(0);	/* each fork's locks taken anew */
		hold(distinct ? i : 1);
		pid = fork_here();
		if (pid > 0) {
			forks++;
			waitpid(pid, NULL, 0);
		}
		if (gap)
			sleep_ms(gap);
	}
	atomic_store(&want, -2);
	pthread_join(t, NULL);
	sleep_ms(linger);
	printf("{\"pid\":%d,\"worker_tid\":%d,\"forks\":%d,\"probed\":%s}\n", (int)getpid(),
	       atomic_load(&worker_tid), forks, probed ? "true" : "false");
	return 0;
}

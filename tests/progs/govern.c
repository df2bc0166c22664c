/*
 * govern: a multithreaded program whose locking the overhead governor judges
 * (tests/test_governor.py), driven one command at a time on stdin.
 *
 *   govern heavy|light
 *
 * heavy: two threads take one mutex in a tight loop (a probe hit each time,
 * as many as the CPU allows). light: one thread takes it about 100 times a
 * second. Either way the main thread waits for commands, one byte each:
 *
 *   f  fork a child that exits at once; prints {"forked":CHILD}
 *   q  quiet: the locking threads stop taking the mutex; prints {"quiet":true}
 *   h  a hazard: a new thread takes the mutex `held` and keeps it while this
 *      thread forks (the child exits at once); prints {"child":..,
 *      "holder_tid":.., "lock":"0x.."}
 *   x  exit; prints {"ops":N} (mutex operations of the locking threads)
 *
 * Prints {"ready":PID} first. Nothing it does depends on time but the light
 * mode's pace.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t busy = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t held = PTHREAD_MUTEX_INITIALIZER;
static atomic_int quiet, stop;
static atomic_long ops;
static long shared;
static int light;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void *locker(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		if (atomic_load(&quiet)) {
			sleep_ms(5);
			continue;
		}
		pthread_mutex_lock(&busy);
		shared++;
		pthread_mutex_unlock(&busy);
		atomic_fetch_add(&ops, 1);
		if (light)
			sleep_ms(10);
	}
	return NULL;
}

static pid_t fork_child(void)
{
	pid_t child = fork();

	if (child == 0)
		_exit(0);	/* touches no lock: another thread may hold one */
	if (child > 0)
		waitpid(child, NULL, 0);
	return child;
}

/* The hazard: the holder keeps `held` until the fork is done. */
static pthread_mutex_t gate = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static int stage;
static long holder_tid;

static void *holder(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&held);
	pthread_mutex_lock(&gate);
	holder_tid = syscall(SYS_gettid);
	stage = 1;
	pthread_cond_signal(&cond);
	while (stage != 2)
		pthread_cond_wait(&cond, &gate);
	pthread_mutex_unlock(&gate);
	pthread_mutex_unlock(&held);
	return NULL;
}

static void hazard(void)
{
	pthread_t t;
	pid_t child;

	stage = 0;
	pthread_create(&t, NULL, holder, NULL);
	pthread_mutex_lock(&gate);
	while (stage != 1)
		pthread_cond_wait(&cond, &gate);
	pthread_mutex_unlock(&gate);
	child = fork_child();
	pthread_mutex_lock(&gate);
	stage = 2;
	pthread_cond_signal(&cond);
	pthread_mutex_unlock(&gate);
	pthread_join(t, NULL);
	printf("{\"child\":%d,\"holder_tid\":%ld,\"lock\":\"%p\"}\n", (int)child, holder_tid,
	       (void *)&held);
}

int main(int argc, char **argv)
{
	pthread_t t[2];
	int n;
	char c;

	if (argc != 2 || (strcmp(argv[1], "heavy") && strcmp(argv[1], "light"))) {
		fprintf(stderr, "usage: govern heavy|light\n");
		return 2;
	}
	light = !strcmp(argv[1], "light");
	n = light ? 1 : 2;
	for (int i = 0; i < n; i++)
		pthread_create(&t[i], NULL, locker, NULL);
	printf("{\"ready\":%d}\n", (int)getpid());
	fflush(stdout);
	while (read(0, &c, 1) == 1) {
		switch (c) {
		case 'f':
			printf("{\"forked\":%d}\n", (int)fork_child());
			break;
		case 'q':
			atomic_store(&quiet, 1);
			printf("{\"quiet\":true}\n");
			break;
		case 'h':
			hazard();
			break;
		case 'x':
			atomic_store(&stop, 1);
			for (int i = 0; i < n; i++)
				pthread_join(t[i], NULL);
			printf("{\"ops\":%ld}\n", atomic_load(&ops));
			return 0;
		default:
			continue;
		}
		fflush(stdout);
	}
	return 3;	/* stdin closed without x */
}

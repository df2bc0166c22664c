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
 *   n  the same hazard on another mutex, `other`
 *   H  heavy from now on (a light process's locker stops sleeping)
 *   a  a thread A takes the semaphore `gap_sem` and a read lock of `gap_rw`
 *      and keeps them; prints {"a_tid":..,"sem":"0x..","rwlock":"0x.."}
 *   b  A releases both (and lives on); then a thread B takes both and keeps
 *      them (while the probes are detached, the tests' gap); prints {"b_tid":..}
 *   c  A takes the read lock again (after the gap); prints {"again":true}
 *   x  exit; prints {"ops":N} (mutex operations of the locking threads)
 *
 * Prints {"ready":PID} first. Nothing it does depends on time but the light
 * mode's pace.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdbool.h>
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
static pthread_mutex_t other = PTHREAD_MUTEX_INITIALIZER;	/* 'n': a hazard on it */
static atomic_int quiet, stop;
static atomic_long ops;
static long shared;
static atomic_int light;

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
		if (atomic_load(&light))
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
	pthread_mutex_t *m = arg;

	pthread_mutex_lock(m);
	pthread_mutex_lock(&gate);
	holder_tid = syscall(SYS_gettid);
	stage = 1;
	pthread_cond_broadcast(&cond);
	while (stage != 2)
		pthread_cond_wait(&cond, &gate);
	pthread_mutex_unlock(&gate);
	pthread_mutex_unlock(m);
	return NULL;
}

static void hazard(pthread_mutex_t *m)
{
	pthread_t t;
	pid_t child;

	stage = 0;
	pthread_create(&t, NULL, holder, m);
	pthread_mutex_lock(&gate);
	while (stage != 1)
		pthread_cond_wait(&cond, &gate);
	pthread_mutex_unlock(&gate);
	child = fork_child();
	pthread_mutex_lock(&gate);
	stage = 2;
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&gate);
	pthread_join(t, NULL);
	printf("{\"child\":%d,\"holder_tid\":%ld,\"lock\":\"%p\"}\n", (int)child, holder_tid,
	       (void *)m);
}

/*
 * A and B: one thread at a time holds gap_sem and a read lock of gap_rw. A
 * releases them when told and lives on (its records of them, in its task
 * storage, live as long as it does); B takes them then and keeps them.
 */
static sem_t gap_sem;
static pthread_rwlock_t gap_rw = PTHREAD_RWLOCK_INITIALIZER;
static pthread_t gap_threads[2];
static int ngap;
static int gap_stage;	/* 1: taken; 2: A, release them; 3: released; 4: A, take
			 * the read lock again; 5: taken. Under gate. */
static long gap_tid;

/* Until stage reaches `want` (or the program stops). */
static void gap_wait(int want)
{
	while (gap_stage < want && !atomic_load(&stop))
		pthread_cond_wait(&cond, &gate);
}

static void gap_set(int stage_now)
{
	gap_stage = stage_now;
	pthread_cond_broadcast(&cond);
}

static void *gap_holder(void *arg)
{
	bool a = arg != NULL;

	sem_wait(&gap_sem);
	pthread_rwlock_rdlock(&gap_rw);
	pthread_mutex_lock(&gate);
	gap_tid = syscall(SYS_gettid);
	gap_set(1);
	if (a) {
		gap_wait(2);
		pthread_rwlock_unlock(&gap_rw);
		sem_post(&gap_sem);
		gap_set(3);
		gap_wait(4);
		pthread_rwlock_rdlock(&gap_rw);
		gap_set(5);
	}
	gap_wait(99);	/* lives on until the program stops */
	pthread_mutex_unlock(&gate);
	return NULL;
}

/* A new gap holder (a: A, which will release them); its TID once it holds both. */
static long gap_take(bool a)
{
	pthread_mutex_lock(&gate);
	gap_stage = 0;
	pthread_create(&gap_threads[ngap++], NULL, gap_holder, a ? (void *)1 : NULL);
	gap_wait(1);
	pthread_mutex_unlock(&gate);
	return gap_tid;
}

/* Tell A to go to `stage_now` and wait for it to reach `done`. */
static void gap_step(int stage_now, int done)
{
	pthread_mutex_lock(&gate);
	gap_set(stage_now);
	gap_wait(done);
	pthread_mutex_unlock(&gate);
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
	atomic_store(&light, !strcmp(argv[1], "light"));
	sem_init(&gap_sem, 0, 1);
	n = atomic_load(&light) ? 1 : 2;
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
			hazard(&held);
			break;
		case 'n':
			hazard(&other);
			break;
		case 'H':
			atomic_store(&light, 0);
			printf("{\"heavy\":true}\n");
			break;
		case 'a':
			printf("{\"a_tid\":%ld,\"sem\":\"%p\",\"rwlock\":\"%p\"}\n", gap_take(true),
			       (void *)&gap_sem, (void *)&gap_rw);
			break;
		case 'b':
			gap_step(2, 3);
			printf("{\"b_tid\":%ld}\n", gap_take(false));
			break;
		case 'c':
			gap_step(4, 5);
			printf("{\"again\":true}\n");
			break;
		case 'x':
			atomic_store(&stop, 1);
			pthread_mutex_lock(&gate);
			pthread_cond_broadcast(&cond);
			pthread_mutex_unlock(&gate);
			for (int i = 0; i < ngap; i++)
				pthread_join(gap_threads[i], NULL);
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

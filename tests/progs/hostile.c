// SPDX-License-Identifier: GPL-2.0
/*
 * hostile: processes that try to break forkhazard (tests/test_hardening.py,
 * tests/test_hostile.py). Each mode prints its facts as one JSON line at the
 * end (or {"ready":PID,...} first when the test drives it) and bounds its own
 * life: every wait has a deadline.
 *
 *   sigfork          a worker holds lock_a; a signal handler of main forks
 *   sigfork-inlock   ... while main itself waits inside pthread_mutex_lock(lock_b),
 *                    which a second worker holds
 *   threads N        N threads; one holds lock_a; main forks once
 *   holdforever K    a worker takes lock_a again and again; main forks K times,
 *                    prints {"ready"...} with the worker holding lock_a, then waits
 *                    to be killed (at most 60 s)
 *   evil             hostile process and thread names; a worker holds lock_a; fork
 *   remap N          the worker's mutex is unmapped while held; another thread maps
 *                    and unmaps code and renames the process; main forks N times
 *   brood N R        a worker holds lock_a; R rounds of N children alive at once
 *   storm SECONDS    a worker holds lock_a; main forks as fast as it can
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static atomic_int holder_a, holder_b, stage, release_all;
static volatile sig_atomic_t child_pid;
static int main_tid;

static int tid(void)
{
	return (int)syscall(SYS_gettid);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

/* Wait until *v >= want, at most 10 s. */
static void wait_for(atomic_int *v, int want)
{
	for (int i = 0; i < 10000 && atomic_load(v) < want; i++)
		sleep_ms(1);
	if (atomic_load(v) < want) {
		fprintf(stderr, "hostile: timed out waiting\n");
		exit(3);
	}
}

static void *hold_a(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock_a);
	atomic_store(&holder_a, tid());
	atomic_fetch_add(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(2);
	pthread_mutex_unlock(&lock_a);
	return NULL;
}

static void *hold_b(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock_b);
	atomic_store(&holder_b, tid());
	atomic_fetch_add(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(2);
	pthread_mutex_unlock(&lock_b);
	return NULL;
}

/* fork() from a signal handler: POSIX lists it as async-signal-safe. */
static void on_usr1(int sig)
{
	pid_t c;

	(void)sig;
	c = fork();
	if (c == 0)
		_exit(0);
	child_pid = c;
}

/* Is thread t of this process blocked in a futex wait? */
static int in_futex(int t)
{
	char path[64], buf[64];
	int fd, n;

	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", t);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return 0;
	n = (int)read(fd, buf, sizeof(buf) - 1);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return atoi(buf) == SYS_futex;
}

static void *signaller(void *arg)
{
	int inlock = *(int *)arg;

	/* In sigfork-inlock, only once main sleeps inside pthread_mutex_lock. */
	for (int i = 0; inlock && i < 5000 && !in_futex(main_tid); i++)
		sleep_ms(1);
	syscall(SYS_tgkill, getpid(), main_tid, SIGUSR1);
	for (int i = 0; i < 5000 && !child_pid; i++)
		sleep_ms(1);
	atomic_store(&release_all, 1);
	return NULL;
}

static int mode_sigfork(int inlock)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	pthread_t a, b, s;
	int status = -1;

	main_tid = tid();
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&a, NULL, hold_a, NULL);
	if (inlock)
		pthread_create(&b, NULL, hold_b, NULL);
	wait_for(&stage, inlock ? 2 : 1);
	pthread_create(&s, NULL, signaller, &inlock);
	if (inlock) {
		/* The signal comes while main waits in here; lock_b is its
		 * own only after the handler returned and the holder let go. */
		pthread_mutex_lock(&lock_b);
		pthread_mutex_unlock(&lock_b);
	} else {
		while (!child_pid)
			sleep_ms(1);
	}
	pthread_join(s, NULL);
	pthread_join(a, NULL);
	if (inlock)
		pthread_join(b, NULL);
	if (child_pid > 0)
		waitpid(child_pid, &status, 0);
	printf("{\"pid\":%d,\"main_tid\":%d,\"child\":%d,\"lock_a\":\"%p\",\"holder_a\":%d,"
	       "\"lock_b\":\"%p\",\"holder_b\":%d,\"child_status\":%d}\n", (int)getpid(),
	       main_tid, (int)child_pid, (void *)&lock_a, atomic_load(&holder_a), (void *)&lock_b,
	       inlock ? atomic_load(&holder_b) : 0, status);
	return 0;
}

static int blocker_pipe[2];

static void *block(void *arg)
{
	char c;

	(void)arg;
	atomic_fetch_add(&stage, 1);
	while (read(blocker_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	return NULL;
}

static int mode_threads(int n)
{
	pthread_attr_t attr;
	pthread_t t;
	int status = -1, made = 0;
	pid_t c;

	if (pipe(blocker_pipe))
		return 1;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 32768);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_create(&t, NULL, hold_a, NULL);
	wait_for(&stage, 1);
	for (int i = 0; i < n - 1; i++) {
		if (pthread_create(&t, &attr, block, NULL)) {
			fprintf(stderr, "hostile: %d threads only\n", made);
			return 4;
		}
		made++;
	}
	wait_for(&stage, n);
	c = fork();
	if (c == 0)
		_exit(0);
	waitpid(c, &status, 0);
	printf("{\"pid\":%d,\"child\":%d,\"threads\":%d,\"lock_a\":\"%p\",\"holder_a\":%d}\n",
	       (int)getpid(), (int)c, n + 1, (void *)&lock_a, atomic_load(&holder_a));
	fflush(stdout);
	_exit(0);	/* the blocked threads go with the process */
}

static void *lock_periodically(void *arg)
{
	(void)arg;
	atomic_store(&holder_a, tid());
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all)) {
		pthread_mutex_lock(&lock_a);
		sleep_ms(40);
		pthread_mutex_unlock(&lock_a);
		sleep_ms(1);
	}
	pthread_mutex_lock(&lock_a);	/* and keep it until killed */
	atomic_store(&stage, 2);
	for (int i = 0; i < 60000; i++)
		sleep_ms(1);
	return NULL;
}

static void fork_child(void)
{
	pid_t c = fork();
	int status;

	if (c == 0)
		_exit(0);
	if (c > 0)
		waitpid(c, &status, 0);
}

static int mode_holdforever(int k)
{
	pthread_t t;

	pthread_create(&t, NULL, lock_periodically, NULL);
	wait_for(&stage, 1);
	for (int i = 0; i < k; i++) {
		if (i)
			sleep_ms(100);	/* the first at once: a recycled PID's first fork */
		fork_child();
	}
	atomic_store(&release_all, 1);
	wait_for(&stage, 2);
	printf("{\"ready\":%d,\"lock_a\":\"%p\",\"holder_a\":%d}\n", (int)getpid(),
	       (void *)&lock_a, atomic_load(&holder_a));
	fflush(stdout);
	sleep_ms(60000);
	return 5;	/* the test should have killed us */
}

/* Names a terminal would act on, quotes and backslashes for JSON, bytes
 * that are not UTF-8: 15 bytes each, the most a comm holds. */
static const char evil_comm[] = "\x1b[31m\"\\\n\xff\xfe\x07z";
static const char evil_thread[] = "\x1b]0;t\x07\t\r\x7f\xc2\x9b\\\"";

static void *hold_a_evil(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, evil_thread);
	return hold_a(NULL);
}

static int mode_evil(void)
{
	pthread_t t;
	int status = -1;
	pid_t c;

	prctl(PR_SET_NAME, evil_comm);
	pthread_create(&t, NULL, hold_a_evil, NULL);
	wait_for(&stage, 1);
	c = fork();
	if (c == 0)
		_exit(0);
	waitpid(c, &status, 0);
	/* Stays a while: the tests check the frames' names are escaped, and a
	 * tree gone before its fork event is read has addresses only
	 * (test_symbols.test_tree_gone_before_its_event_is_read). */
	usleep(200000);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"child\":%d,\"lock_a\":\"%p\",\"holder_a\":%d}\n", (int)getpid(),
	       (int)c, (void *)&lock_a, atomic_load(&holder_a));
	return 0;
}

static pthread_mutex_t *doomed;	/* in a page unmapped while held */

static void *hold_doomed(void *arg)
{
	(void)arg;
	pthread_mutex_lock(doomed);
	atomic_store(&holder_a, tid());
	atomic_fetch_add(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(2);
	return NULL;	/* never unlocked: its memory is gone */
}

/* Map and unmap code (our own executable), change protections and names,
 * as fast as it can: the symbolizer reads our maps meanwhile. */
static void *churn(void *arg)
{
	int fd = open("/proc/self/exe", O_RDONLY);
	long page = sysconf(_SC_PAGESIZE);
	char name[16];

	(void)arg;
	for (unsigned int i = 0; !atomic_load(&release_all); i++) {
		void *p = fd >= 0 ? mmap(NULL, (size_t)page * 4, PROT_READ | PROT_EXEC, MAP_PRIVATE,
					 fd, 0) : MAP_FAILED;

		if (p != MAP_FAILED) {
			mprotect(p, (size_t)page, PROT_NONE);
			munmap(p, (size_t)page * 4);
		}
		snprintf(name, sizeof(name), "hostile-%u", i % 1000);
		prctl(PR_SET_NAME, name);
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int mode_remap(int n)
{
	long page = sysconf(_SC_PAGESIZE);
	pthread_t h, c;
	int forks = 0;

	doomed = mmap(NULL, (size_t)page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		      -1, 0);
	if (doomed == MAP_FAILED)
		return 1;
	pthread_mutex_init(doomed, NULL);
	pthread_create(&h, NULL, hold_doomed, NULL);
	wait_for(&stage, 1);
	munmap(doomed, (size_t)page);	/* the lock word is gone, the record of it is not */
	pthread_create(&c, NULL, churn, NULL);
	for (int i = 0; i < n; i++) {
		pid_t k = fork();
		int status;

		if (k == 0)
			_exit(0);
		if (k > 0) {
			waitpid(k, &status, 0);
			forks++;
		}
	}
	atomic_store(&release_all, 1);
	pthread_join(c, NULL);
	pthread_join(h, NULL);
	printf("{\"pid\":%d,\"forks\":%d,\"lock\":\"%p\",\"holder_a\":%d}\n", (int)getpid(), forks,
	       (void *)doomed, atomic_load(&holder_a));
	return 0;
}

static int mode_brood(int n, int rounds)
{
	pid_t kids[4096];
	pthread_t t;
	int forks = 0;

	if (n > 4096)
		n = 4096;
	pthread_create(&t, NULL, hold_a, NULL);
	wait_for(&stage, 1);
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < n; i++) {
			kids[i] = fork();
			if (kids[i] == 0) {
				sleep_ms(300);
				_exit(0);
			}
			forks += kids[i] > 0;
		}
		for (int i = 0; i < n; i++)
			if (kids[i] > 0)
				waitpid(kids[i], NULL, 0);
	}
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"forks\":%d,\"holder_a\":%d}\n", (int)getpid(), forks,
	       atomic_load(&holder_a));
	return 0;
}

static int mode_storm(double seconds)
{
	struct timespec t0, now;
	pthread_t t;
	long forks = 0;

	alarm((unsigned int)seconds + 60);
	pthread_create(&t, NULL, hold_a, NULL);
	wait_for(&stage, 1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		for (int i = 0; i < 64; i++) {
			pid_t c = fork();

			if (c == 0)
				_exit(0);
			if (c > 0) {
				forks++;
				waitpid(c, NULL, 0);
			}
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((double)(now.tv_sec - t0.tv_sec) + (now.tv_nsec - t0.tv_nsec) / 1e9 < seconds);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"forks\":%ld,\"holder_a\":%d}\n", (int)getpid(), forks,
	       atomic_load(&holder_a));
	return 0;
}

int main(int argc, char **argv)
{
	alarm(120);	/* whatever happens, never outlive a test */	/* whatever happens, never outlive a test */
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "sigfork"))
		return mode_sigfork(0);
	if (argc >= 2 && !strcmp(argv[1], "sigfork-inlock"))
		return mode_sigfork(1);
	if (argc >= 3 && !strcmp(argv[1], "threads"))
		return mode_threads(atoi(argv[2]));
	if (argc >= 3 && !strcmp(argv[1], "holdforever"))
		return mode_holdforever(atoi(argv[2]));
	if (argc >= 2 && !strcmp(argv[1], "evil"))
		return mode_evil();
	if (argc >= 3 && !strcmp(argv[1], "remap"))
		return mode_remap(atoi(argv[2]));
	if (argc >= 4 && !strcmp(argv[1], "brood"))
		return mode_brood(atoi(argv[2]), atoi(argv[3]));
	if (argc >= 3 && !strcmp(argv[1], "storm"))
		return mode_storm(atof(argv[2]));
	fprintf(stderr, "usage: hostile sigfork|sigfork-inlock|threads N|holdforever K|evil|"
		"remap N|brood N R|storm SECONDS\n");
	return 2;
}

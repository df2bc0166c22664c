/*
 * symprog: a worker thread holds a lock while main forks, for the
 * symbolization tests. The same source is built several ways (Makefile):
 * -O0 -g (symprog), -O2 -fomit-frame-pointer (symprog-o2), stripped with one
 * function left in .dynsym (symprog-stripped), stripped with MiniDebugInfo
 * (symprog-minidebug). It prints one JSON line of facts: its PID, the
 * child's, and the source lines the stacks must name.
 *
 *   symprog hold         hold_the_lock() holds lock_a (through the inlined
 *                        take_lock()) while main forks
 *   symprog exported     fh_exported_hold() and the static static_hold()
 *                        each hold a lock while main forks
 *   symprog exit-early   as hold, but the parent exits right after fork();
 *                        the child lives 300 ms
 *   symprog deleted      as hold, after unlinking its own executable
 *
 * Every child exits by itself (300 ms at most); the parent never waits more
 * than 5 s for its threads.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static atomic_int held, release_all;
static int lock_line, call_line;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void wait_release(void)
{
	for (int i = 0; i < 5000 && !atomic_load(&release_all); i++)
		sleep_ms(1);
}

/* Inlined even at -O0: the lock call's address is in inlined code. */
static inline __attribute__((always_inline)) void take_lock(pthread_mutex_t *m)
{
	pthread_mutex_lock(m); lock_line = __LINE__;
}

__attribute__((noinline)) void hold_the_lock(void)
{
	take_lock(&lock_a); call_line = __LINE__;
	atomic_fetch_add(&held, 1);
	wait_release();
	pthread_mutex_unlock(&lock_a);
}

/* Exported (in .dynsym even when stripped). */
__attribute__((noinline, visibility("default"))) void fh_exported_hold(void)
{
	pthread_mutex_lock(&lock_a);
	atomic_fetch_add(&held, 1);
	wait_release();
	pthread_mutex_unlock(&lock_a);
}

/* Local: nameless once stripped. */
static __attribute__((noinline)) void static_hold(void)
{
	pthread_mutex_lock(&lock_b);
	atomic_fetch_add(&held, 1);
	wait_release();
	pthread_mutex_unlock(&lock_b);
}

static void *run_hold(void *arg)
{
	(void)arg;
	hold_the_lock();
	return NULL;
}

static void *run_exported(void *arg)
{
	(void)arg;
	fh_exported_hold();
	return NULL;
}

static void *run_static(void *arg)
{
	(void)arg;
	static_hold();
	return NULL;
}

static void wait_held(int n)
{
	for (int i = 0; atomic_load(&held) < n; i++) {
		if (i > 5000) {
			fprintf(stderr, "symprog: locks never taken\n");
			exit(3);
		}
		sleep_ms(1);
	}
	sleep_ms(20);	/* the lock call has returned: the BPF side saw it */
}

static void print_facts(pid_t child)
{
	printf("{\"pid\":%d,\"child\":%d,\"lock_line\":%d,\"call_line\":%d,\"lock\":\"%p\","
	       "\"lock_b\":\"%p\"}\n", (int)getpid(), (int)child, lock_line, call_line,
	       (void *)&lock_a, (void *)&lock_b);
	fflush(stdout);
}

static pid_t fork_child(long child_ms)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(3);
	}
	if (pid == 0) {
		sleep_ms(child_ms);
		_exit(0);
	}
	return pid;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "hold";
	pthread_t t[2];
	int nthreads = 1;
	pid_t child;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(mode, "deleted")) {
		char self[PATH_MAX];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n <= 0)
			return 3;
		self[n] = '\0';
		if (unlink(self)) {
			perror("unlink");
			return 3;
		}
	}
	if (!strcmp(mode, "exported")) {
		pthread_create(&t[0], NULL, run_exported, NULL);
		pthread_create(&t[1], NULL, run_static, NULL);
		nthreads = 2;
	} else {
		pthread_create(&t[0], NULL, run_hold, NULL);
	}
	wait_held(nthreads);
	if (!strcmp(mode, "exit-early")) {
		child = fork_child(300);
		print_facts(child);
		/* Gone before the tracer can look: only what it noted earlier, or
		 * the child's copy of this address space, can name our code. */
		_exit(0);
	}
	child = fork_child(0);
	waitpid(child, NULL, 0);
	atomic_store(&release_all, 1);
	for (int i = 0; i < nthreads; i++)
		pthread_join(t[i], NULL);
	print_facts(child);
	return 0;
}

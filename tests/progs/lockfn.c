/*
 * lockfn: a worker holds a lock of libfhlock.so (tests/progs/lib/fhlock.c)
 * while main forks; for --lock-fn. `lockfn [--child=lock] [--try] [--hang-ms=N]`:
 * with --try the worker takes it with fh_lock_try (after one failed try
 * while main holds it), else with fh_lock_acquire. Prints one JSON line.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct fh_lock {
	atomic_int word;
};

int fh_lock_try(struct fh_lock *l);
void fh_lock_acquire(struct fh_lock *l);
void fh_lock_release(struct fh_lock *l);

static struct fh_lock lock;
static atomic_int stage, release_all, holder_tid, failed_try;
static int use_try;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void *holder(void *arg)
{
	(void)arg;
	atomic_store(&holder_tid, (int)syscall(SYS_gettid));
	if (use_try) {
		atomic_store(&failed_try, fh_lock_try(&lock) != 0);	/* main holds it */
		atomic_store(&stage, 1);
		while (atomic_load(&stage) < 2)
			sleep_ms(1);
		while (fh_lock_try(&lock))
			sleep_ms(1);
	} else {
		fh_lock_acquire(&lock);
	}
	atomic_store(&stage, 3);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	fh_lock_release(&lock);
	return NULL;
}

int main(int argc, char **argv)
{
	int lock_child = 0, hang_ms = 3000, status = 0, i;
	pthread_t t;
	pid_t child;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--child=lock"))
			lock_child = 1;
		else if (!strcmp(argv[i], "--try"))
			use_try = 1;
		else if (!strncmp(argv[i], "--hang-ms=", 10))
			hang_ms = atoi(argv[i] + 10);
	}
	if (use_try)
		fh_lock_acquire(&lock);
	pthread_create(&t, NULL, holder, NULL);
	if (use_try) {
		while (atomic_load(&stage) < 1)
			sleep_ms(1);
		fh_lock_release(&lock);
		atomic_store(&stage, 2);
	}
	while (atomic_load(&stage) < 3)
		sleep_ms(1);
	child = fork();
	if (child == 0) {
		if (lock_child)
			fh_lock_acquire(&lock);
		_exit(0);
	}
	for (i = 0; i < hang_ms / 10; i++) {
		if (waitpid(child, &status, WNOHANG) == child)
			break;
		sleep_ms(10);
	}
	if (i == hang_ms / 10) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"child\":%d,\"child_killed\":%s,\"lock\":\"%p\",\"holder_tid\":%d,"
	       "\"main_tid\":%d,\"failed_try\":%d}\n", (int)getpid(), (int)child,
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "true" : "false", (void *)&lock,
	       atomic_load(&holder_tid), (int)getpid(), atomic_load(&failed_try));
	return 0;
}

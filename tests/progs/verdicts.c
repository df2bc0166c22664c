/*
 * verdicts: a worker thread holds a mutex while main forks, in the cases
 * where the child does not inherit a frozen lock after all, for
 * tests/test_verdicts.py.
 *
 *   verdicts MODE
 *
 * pshared   the mutex is PTHREAD_PROCESS_SHARED in a MAP_SHARED page: 10
 *           children take it once the worker releases it, and exit 0
 * private-shared  the same mutex with the default (private) attribute, in a
 *           MAP_SHARED page all the same: glibc waits on it with a private
 *           futex, so the children only look at it (trylock) and exit 0
 * atfork    a plain mutex, re-initialised in the child by a pthread_atfork
 *           child handler: the child takes it and exits 0
 * libworker a thread of libfhworker.so (its own start routine) runs beside
 *           the holder: the fork's list of other threads names it
 *
 * Prints one JSON line of facts: pid, the children, the lock, the holder.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

int fh_worker_start(void);

static pthread_mutex_t *mutex;
static atomic_int held, release_it, holder_tid;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static __attribute__((noinline)) void *holder(void *arg)
{
	(void)arg;
	atomic_store(&holder_tid, (int)syscall(SYS_gettid));
	pthread_mutex_lock(mutex);
	atomic_store(&held, 1);
	while (!atomic_load(&release_it))
		sleep_ms(1);
	pthread_mutex_unlock(mutex);
	return NULL;
}

/* pthread_atfork's child handler: the child's copy is made new. */
static void reinit_in_child(void)
{
	pthread_mutex_init(mutex, NULL);
}

/* 0 if every child exited 0 within 5 s (each killed otherwise). */
static int reap(const pid_t *kids, int n)
{
	int bad = 0;

	for (int i = 0; i < n; i++) {
		int status = -1;

		for (int ms = 0; ms < 5000; ms++) {
			if (waitpid(kids[i], &status, WNOHANG) == kids[i])
				break;
			sleep_ms(1);
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status)) {
			kill(kids[i], SIGKILL);
			waitpid(kids[i], NULL, 0);
			bad = 1;
		}
	}
	return bad;
}

int main(int argc, char **argv)
{
	const char *mode = argc > 1 ? argv[1] : "";
	int nkids = 1, worker = 0, shared = 0, failed;
	pthread_mutexattr_t attr;
	pid_t kids[10];
	pthread_t th;

	pthread_mutexattr_init(&attr);
	if (!strcmp(mode, "pshared") || !strcmp(mode, "private-shared")) {
		shared = 1;
		nkids = 10;
		if (!strcmp(mode, "pshared"))
			pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
		mutex = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
		if (mutex == MAP_FAILED)
			return 2;
	} else if (!strcmp(mode, "atfork") || !strcmp(mode, "libworker")) {
		mutex = calloc(1, 64);
		if (!strcmp(mode, "atfork"))
			pthread_atfork(NULL, NULL, reinit_in_child);
		else
			worker = fh_worker_start();
	} else {
		fprintf(stderr, "usage: verdicts pshared|private-shared|atfork|libworker\n");
		return 2;
	}
	pthread_mutex_init(mutex, &attr);
	pthread_create(&th, NULL, holder, NULL);
	while (!atomic_load(&held))
		sleep_ms(1);
	sleep_ms(50);
	for (int i = 0; i < nkids; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			if (!strcmp(mode, "private-shared")) {
				/* a private futex in a shared page: look, do not wait */
				_exit(pthread_mutex_trylock(mutex) == EBUSY ? 0 : 1);
			}
			if (!strcmp(mode, "libworker"))
				_exit(0);
			/* shared: blocks until the worker releases it;
			 * atfork: the handler made it new */
			pthread_mutex_lock(mutex);
			pthread_mutex_unlock(mutex);
			_exit(0);
		}
		sleep_ms(shared ? 10 : 0);
	}
	sleep_ms(shared ? 100 : 0);
	if (worker)
		sleep_ms(500);	/* a program that goes on, as most do */
	atomic_store(&release_it, 1);
	failed = reap(kids, nkids);
	pthread_join(th, NULL);
	printf("{\"pid\":%d,\"children\":[", (int)getpid());
	for (int i = 0; i < nkids; i++)
		printf("%s%d", i ? "," : "", (int)kids[i]);
	printf("],\"lock\":\"%p\",\"holder_tid\":%d,\"worker_tid\":%d,\"children_ok\":%s}\n",
	       (void *)mutex, atomic_load(&holder_tid), worker, failed ? "false" : "true");
	return 0;
}

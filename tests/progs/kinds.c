/*
 * kinds: one lock of each kind held by a worker thread while main forks, for
 * the lock-kind tests. Built for glibc (dynamic and static) and for musl
 * (dynamic and static): the same source, other code at other addresses.
 *
 *   kinds [--child=exit|lock] [--hang-ms=N] KIND
 *
 * KIND: mutex errorcheck recursive robust mtx rwlock-read rwlock-write
 * rwlock-tryread rwlock-trywrite (taken by a try function) sem spin (held by
 * the worker at the fork); recursive-2-1 recursive-2-2 (the
 * worker takes a recursive mutex twice and releases it once or twice);
 * sem-posted (the worker takes a semaphore, another thread posts it);
 * sem-handoff (...and then the worker takes it again); sem-count (a
 * semaphore of count 2 taken once); sem-signal (the worker takes a semaphore
 * and waits to take it again: the threading.Condition waiter pattern).
 *
 * --child=lock: the child takes the lock (a write lock for a read-held
 * rwlock, a read lock for a write-held one); a child still there after
 * --hang-ms (default 3000) is killed. --settle-ms=N: start an idle thread
 * first and wait N ms before taking the lock (a program that exec'd gets its
 * probes when it makes its first thread). Prints one JSON line of facts.
 */
#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <threads.h>
#include <time.h>
#include <unistd.h>

static const char *kind;
static const char *child_mode = "exit";
static int hang_ms = 3000, settle_ms;

static pthread_mutex_t mutex;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static sem_t sem;
static pthread_spinlock_t spin;
static mtx_t mtx;

static atomic_int stage, release_all, holder_tid;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static void wait_stage(int n)
{
	for (int i = 0; atomic_load(&stage) < n; i++) {
		if (i > 10000) {
			fprintf(stderr, "kinds: stage %d never reached\n", n);
			exit(3);
		}
		sleep_ms(1);
	}
}

static int is(const char *k)
{
	return !strcmp(kind, k);
}

/* The lock the worker holds (for the facts and the child). */
static void *lock_addr(void)
{
	if (!strncmp(kind, "sem", 3))
		return &sem;
	if (!strncmp(kind, "rwlock", 6))
		return &rwlock;
	if (is("spin"))
		return (void *)&spin;
	if (is("mtx"))
		return &mtx;
	return &mutex;
}

static void init_locks(void)
{
	pthread_mutexattr_t a;

	pthread_mutexattr_init(&a);
	if (is("errorcheck"))
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_ERRORCHECK);
	if (!strncmp(kind, "recursive", 9))
		pthread_mutexattr_settype(&a, PTHREAD_MUTEX_RECURSIVE);
	if (is("robust"))
		pthread_mutexattr_setrobust(&a, PTHREAD_MUTEX_ROBUST);
	pthread_mutex_init(&mutex, &a);
	pthread_mutexattr_destroy(&a);
	sem_init(&sem, 0, is("sem-count") ? 2 : 1);
	pthread_spin_init(&spin, PTHREAD_PROCESS_PRIVATE);
	mtx_init(&mtx, mtx_plain);
}

static void *poster(void *arg)
{
	(void)arg;
	sem_post(&sem);
	if (is("sem-posted"))
		sem_wait(&sem);	/* count 0 again, and this thread is gone at the fork */
	return NULL;
}

/* The worker: takes its lock, says so, and keeps it until told. */
static void *holder(void *arg)
{
	(void)arg;
	atomic_store(&holder_tid, (int)syscall(SYS_gettid));
	if (!strncmp(kind, "sem", 3)) {
		sem_wait(&sem);
		if (is("sem-posted") || is("sem-handoff")) {
			pthread_t t;

			pthread_create(&t, NULL, poster, NULL);
			pthread_join(t, NULL);
			if (is("sem-handoff"))
				sem_wait(&sem);
		}
		if (is("sem-signal")) {
			struct timespec ts;

			atomic_store(&stage, 1);
			/* what CPython's lock.acquire(timeout=...) does */
			if (sem_trywait(&sem) == 0)
				abort();
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += 10;
			sem_timedwait(&sem, &ts);	/* main posts it */
			return NULL;
		}
	} else if (is("rwlock-read")) {
		pthread_rwlock_rdlock(&rwlock);
	} else if (is("rwlock-write")) {
		pthread_rwlock_wrlock(&rwlock);
	} else if (is("rwlock-tryread")) {
		if (pthread_rwlock_tryrdlock(&rwlock))
			abort();
	} else if (is("rwlock-trywrite")) {
		if (pthread_rwlock_trywrlock(&rwlock))
			abort();
	} else if (is("spin")) {
		pthread_spin_lock(&spin);
	} else if (is("mtx")) {
		mtx_lock(&mtx);
	} else {
		pthread_mutex_lock(&mutex);
		if (!strncmp(kind, "recursive-2", 11)) {
			pthread_mutex_lock(&mutex);
			pthread_mutex_unlock(&mutex);
			if (is("recursive-2-2"))
				pthread_mutex_unlock(&mutex);
		}
	}
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	if (!strncmp(kind, "rwlock", 6))
		pthread_rwlock_unlock(&rwlock);
	else if (is("spin"))
		pthread_spin_unlock(&spin);
	else if (is("mtx"))
		mtx_unlock(&mtx);
	else if (!strncmp(kind, "sem", 3))
		sem_post(&sem);
	else if (!is("recursive-2-2"))
		pthread_mutex_unlock(&mutex);
	return NULL;
}

static void *idle(void *arg)
{
	(void)arg;
	while (!atomic_load(&release_all))
		sleep_ms(1);
	return NULL;
}

/* The child takes the inherited lock the way a program would. */
static void child_body(void)
{
	if (strcmp(child_mode, "lock"))
		_exit(0);
	if (!strncmp(kind, "sem", 3))
		sem_wait(&sem);
	else if (is("rwlock-read") || is("rwlock-tryread"))
		pthread_rwlock_wrlock(&rwlock);
	else if (!strncmp(kind, "rwlock", 6))
		pthread_rwlock_rdlock(&rwlock);
	else if (is("spin"))
		pthread_spin_lock(&spin);
	else if (is("mtx"))
		mtx_lock(&mtx);
	else
		pthread_mutex_lock(&mutex);
	_exit(0);
}

int main(int argc, char **argv)
{
	int i = 1, status = 0;
	pthread_t t, idler;
	pid_t child;

	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strncmp(argv[i], "--child=", 8))
			child_mode = argv[i] + 8;
		else if (!strncmp(argv[i], "--hang-ms=", 10))
			hang_ms = atoi(argv[i] + 10);
		else if (!strncmp(argv[i], "--settle-ms=", 12))
			settle_ms = atoi(argv[i] + 12);
	}
	if (i >= argc) {
		fprintf(stderr, "usage: kinds [--child=exit|lock] [--hang-ms=N] KIND\n");
		return 2;
	}
	kind = argv[i];
	init_locks();
	if (settle_ms) {
		pthread_create(&idler, NULL, idle, NULL);
		sleep_ms(settle_ms);
	}
	pthread_create(&t, NULL, holder, NULL);
	wait_stage(1);
	if (is("sem-signal"))
		sleep_ms(100);	/* the worker is in its second wait now */
	child = fork();
	if (child < 0)
		return 3;
	if (child == 0)
		child_body();
	for (i = 0; i < hang_ms / 10; i++) {
		if (waitpid(child, &status, WNOHANG) == child)
			break;
		sleep_ms(10);
	}
	if (i == hang_ms / 10) {
		kill(child, SIGKILL);
		waitpid(child, &status, 0);
	}
	if (is("sem-signal"))
		sem_post(&sem);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	if (settle_ms)
		pthread_join(idler, NULL);
	printf("{\"pid\":%d,\"child\":%d,\"child_killed\":%s,\"lock\":\"%p\",\"holder_tid\":%d,"
	       "\"kind\":\"%s\"}\n", (int)getpid(), (int)child,
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "true" : "false", lock_addr(),
	       atomic_load(&holder_tid), kind);
	return 0;
}

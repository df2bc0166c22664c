/*
 * hung: processes that hang (or idle) on purpose, started without any tracer,
 * for `forkhazard inspect` tests. `hung [--evil-name] MODE DEADLINE_MS`.
 * Prints one JSON line of facts (PIDs, TIDs, lock addresses) at once.
 *
 *   child    a worker holds `lock`; the process forks; the child takes `lock`
 *            and hangs forever (the inherited-lock deadlock)
 *   rwchild  the same with a write-held rwlock, the child takes it for writing
 *   rdchild  the same, the child takes it for reading
 *   healthy  threads idle in nanosleep and in a cond wait with a timeout
 *   waiter   one thread blocks on `lock`, held by another live thread
 *   abba     two threads take two mutexes in opposite orders and deadlock
 *   futex    the only thread waits on a private futex without a timeout
 *   orphan   a thread locks `lock` and exits; then the main thread takes it
 *
 * --evil-name: name the process "e\x1b[31mvil\nname" (PR_SET_NAME) before
 * anything else, so its comm (and its child's) has an ESC and a newline.
 *
 * Nothing outlives the deadline: a forked child is killed by its parent and
 * sets its own alarm too; the other modes exit from a SIGALRM handler.
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static pthread_barrier_t barrier;
static atomic_int holder_tid, waiter_tid, abba_tids[2];
static atomic_int ready, release;
static long deadline_ms;
static const char *mode;

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) && errno == EINTR)
		;
}

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wait_for(atomic_int *flag, int n)
{
	for (int i = 0; atomic_load(flag) < n; i++) {
		if (i > 5000) {
			fprintf(stderr, "hung: setup timed out\n");
			exit(3);
		}
		sleep_ms(1);
	}
}

static void on_alarm(int sig)
{
	(void)sig;
	_exit(0);
}

/* A whole-second alarm a little past the deadline: a stuck process's last resort. */
static void arm_alarm(void)
{
	alarm((unsigned int)(deadline_ms / 1000 + 2));
}

static void *holder(void *arg)
{
	(void)arg;
	if (!strcmp(mode, "rwchild") || !strcmp(mode, "rdchild"))
		pthread_rwlock_wrlock(&rwlock);
	else
		pthread_mutex_lock(&lock);
	atomic_store(&holder_tid, (int)gettid());
	atomic_store(&ready, 1);
	while (!atomic_load(&release))
		sleep_ms(10);
	if (!strcmp(mode, "rwchild") || !strcmp(mode, "rdchild"))
		pthread_rwlock_unlock(&rwlock);
	else
		pthread_mutex_unlock(&lock);
	return NULL;
}

/* The functions the tests look for in the hung thread's stack. */
__attribute__((noinline)) static void child_take_lock(void)
{
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
}

__attribute__((noinline)) static void child_take_wrlock(void)
{
	pthread_rwlock_wrlock(&rwlock);
	pthread_rwlock_unlock(&rwlock);
}

__attribute__((noinline)) static void child_take_rdlock(void)
{
	pthread_rwlock_rdlock(&rwlock);
	pthread_rwlock_unlock(&rwlock);
}

__attribute__((noinline)) static void waiter_take_lock(void)
{
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
}

static int run_child(void)
{
	pthread_t t;
	void *addr = !strcmp(mode, "child") ? (void *)&lock : (void *)&rwlock;
	long end = now_ms() + deadline_ms;
	int status;
	pid_t pid;

	pthread_create(&t, NULL, holder, NULL);
	wait_for(&ready, 1);
	pid = fork();
	if (pid < 0) {
		perror("fork");
		return 1;
	}
	if (pid == 0) {
		arm_alarm();
		if (!strcmp(mode, "child"))
			child_take_lock();
		else if (!strcmp(mode, "rwchild"))
			child_take_wrlock();
		else
			child_take_rdlock();
		_exit(0);
	}
	printf("{\"pid\":%d,\"child\":%d,\"holder_tid\":%d,\"lock\":\"%p\"}\n", (int)getpid(),
	       (int)pid, atomic_load(&holder_tid), addr);
	fflush(stdout);
	while (now_ms() < end && waitpid(pid, &status, WNOHANG) == 0)
		sleep_ms(10);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	atomic_store(&release, 1);
	pthread_join(t, NULL);
	return 0;
}

static void *idle_sleeper(void *arg)
{
	(void)arg;
	while (!atomic_load(&release))
		sleep_ms(50);
	return NULL;
}

static void *idle_cond(void *arg)
{
	struct timespec ts;

	(void)arg;
	pthread_mutex_lock(&lock_b);
	while (!atomic_load(&release)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 200 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		pthread_cond_timedwait(&cond, &lock_b, &ts);
	}
	pthread_mutex_unlock(&lock_b);
	return NULL;
}

static int run_healthy(void)
{
	long end = now_ms() + deadline_ms;
	pthread_t t[2];

	pthread_create(&t[0], NULL, idle_sleeper, NULL);
	pthread_create(&t[1], NULL, idle_cond, NULL);
	printf("{\"pid\":%d}\n", (int)getpid());
	fflush(stdout);
	while (now_ms() < end)
		sleep_ms(20);
	atomic_store(&release, 1);
	pthread_join(t[0], NULL);
	pthread_join(t[1], NULL);
	return 0;
}

static void *waiter(void *arg)
{
	(void)arg;
	atomic_store(&waiter_tid, (int)gettid());
	waiter_take_lock();
	return NULL;
}

static int run_waiter(void)
{
	long end = now_ms() + deadline_ms;
	pthread_t h, w;

	pthread_create(&h, NULL, holder, NULL);
	wait_for(&ready, 1);
	pthread_create(&w, NULL, waiter, NULL);
	while (!atomic_load(&waiter_tid))
		sleep_ms(1);
	printf("{\"pid\":%d,\"holder_tid\":%d,\"waiter_tid\":%d,\"lock\":\"%p\"}\n",
	       (int)getpid(), atomic_load(&holder_tid), atomic_load(&waiter_tid), (void *)&lock);
	fflush(stdout);
	while (now_ms() < end)
		sleep_ms(20);
	atomic_store(&release, 1);
	pthread_join(h, NULL);
	pthread_join(w, NULL);
	return 0;
}

static void *abba_thread(void *arg)
{
	int i = (int)(long)arg;
	pthread_mutex_t *first = i ? &lock_b : &lock, *second = i ? &lock : &lock_b;

	atomic_store(&abba_tids[i], (int)gettid());
	pthread_mutex_lock(first);
	pthread_barrier_wait(&barrier);
	pthread_mutex_lock(second);	/* never returns */
	return NULL;
}

static int run_abba(void)
{
	long end = now_ms() + deadline_ms;
	pthread_t t[2];

	pthread_barrier_init(&barrier, NULL, 2);
	pthread_create(&t[0], NULL, abba_thread, (void *)0L);
	pthread_create(&t[1], NULL, abba_thread, (void *)1L);
	while (!atomic_load(&abba_tids[0]) || !atomic_load(&abba_tids[1]))
		sleep_ms(1);
	printf("{\"pid\":%d,\"tids\":[%d,%d],\"locks\":[\"%p\",\"%p\"]}\n", (int)getpid(),
	       atomic_load(&abba_tids[0]), atomic_load(&abba_tids[1]), (void *)&lock,
	       (void *)&lock_b);
	fflush(stdout);
	while (now_ms() < end)
		sleep_ms(20);
	_exit(0);	/* the two threads never finish: exit_group ends them */
}

static void *lock_and_exit(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock);
	atomic_store(&holder_tid, (int)gettid());
	return NULL;	/* still holding it */
}

__attribute__((noinline)) static void main_take_lock(void)
{
	pthread_mutex_lock(&lock);
	pthread_mutex_unlock(&lock);
}

static int run_orphan(void)
{
	pthread_t t;

	pthread_create(&t, NULL, lock_and_exit, NULL);
	pthread_join(t, NULL);
	printf("{\"pid\":%d,\"holder_tid\":%d,\"lock\":\"%p\"}\n", (int)getpid(),
	       atomic_load(&holder_tid), (void *)&lock);
	fflush(stdout);
	main_take_lock();	/* until the alarm */
	return 0;
}

__attribute__((noreturn)) static int run_futex(void)
{
	static unsigned int word;

	printf("{\"pid\":%d,\"futex\":\"%p\"}\n", (int)getpid(), (void *)&word);
	fflush(stdout);
	for (;;)
		syscall(SYS_futex, &word, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

int main(int argc, char **argv)
{
	int i = 1;

	if (i < argc && !strcmp(argv[i], "--evil-name")) {
		prctl(PR_SET_NAME, "e\x1b[31mvil\nname", 0, 0, 0);
		i++;
	}
	if (argc - i != 2) {
		fprintf(stderr, "usage: hung [--evil-name] MODE DEADLINE_MS\n");
		return 2;
	}
	mode = argv[i];
	deadline_ms = strtol(argv[i + 1], NULL, 10);
	if (deadline_ms <= 0 || deadline_ms > 600000) {
		fprintf(stderr, "hung: bad deadline\n");
		return 2;
	}
	signal(SIGALRM, on_alarm);
	arm_alarm();
	if (!strcmp(mode, "child") || !strcmp(mode, "rwchild") || !strcmp(mode, "rdchild"))
		return run_child();
	if (!strcmp(mode, "healthy"))
		return run_healthy();
	if (!strcmp(mode, "waiter"))
		return run_waiter();
	if (!strcmp(mode, "abba"))
		return run_abba();
	if (!strcmp(mode, "futex"))
		return run_futex();
	if (!strcmp(mode, "orphan"))
		return run_orphan();
	fprintf(stderr, "hung: unknown mode '%s'\n", mode);
	return 2;
}

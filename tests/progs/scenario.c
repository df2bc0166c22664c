/*
 * scenario: programs that create each fork-hazard situation on purpose, for
 * the integration tests. `scenario NAME [ARGS]` runs one; every scenario
 * prints one JSON line of facts (addresses, TIDs, PIDs) for the test to
 * check forkhazard's report against, then exits 0.
 *
 * Options before NAME:
 *   --wait-signal   block until SIGUSR1 before acting (for -p attach tests)
 *   --child=MODE    what a forked child does: exit (default), exec, lock
 *                   (take the contended lock: deadlocks if inherited),
 *                   timedlock (take it with a 300 ms timeout), mtlock (start
 *                   a thread, then take it), sleep (stay alive 2 s)
 * A hung child is killed by the scenario after 3 s, so nothing outlives it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const char *child_mode = "exit";
static int hang_ms = 3000;	/* a child still there after this is killed */
static pthread_mutex_t lock_a = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t lock_b = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cond = PTHREAD_COND_INITIALIZER;
static atomic_int stage;	/* threads report progress here */
static atomic_int release_all;
static atomic_int release_holder;	/* lets hold_a() go without the others */
static pthread_mutex_t *child_target = &lock_a;

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
			fprintf(stderr, "scenario: stage %d never reached\n", n);
			exit(3);
		}
		sleep_ms(1);
	}
}

static void *mt_helper(void *arg)
{
	(void)arg;
	sleep_ms(5000);
	return NULL;
}

/* What the forked child does; its exit status tells the parent. */
static void child_body(void)
{
	if (!strcmp(child_mode, "exec")) {
		execl("/bin/true", "true", (char *)NULL);
		_exit(127);
	}
	if (!strcmp(child_mode, "lock")) {
		pthread_mutex_lock(child_target);
		_exit(0);
	}
	if (!strcmp(child_mode, "timedlock")) {
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += 300 * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		_exit(pthread_mutex_timedlock(child_target, &ts) == ETIMEDOUT ? 0 : 1);
	}
	if (!strcmp(child_mode, "mtlock")) {
		pthread_t t;

		pthread_create(&t, NULL, mt_helper, NULL);
		pthread_mutex_lock(child_target);
		_exit(0);
	}
	if (!strcmp(child_mode, "sleep")) {
		sleep_ms(2000);
		_exit(0);
	}
	_exit(0);
}

/* Fork, and reap the child; a child hung for 3 s is killed. */
static pid_t fork_child(int *status)
{
	pid_t pid = fork();

	if (pid < 0) {
		perror("fork");
		exit(3);
	}
	if (pid == 0)
		child_body();
	for (int i = 0; i < hang_ms / 10; i++) {
		if (waitpid(pid, status, WNOHANG) == pid)
			return pid;
		sleep_ms(10);
	}
	kill(pid, SIGKILL);
	waitpid(pid, status, 0);
	return pid;
}

static void print_facts(const char *extra, pid_t child, int status)
{
	printf("{\"pid\":%d,\"lock\":\"%p\",\"lock_b\":\"%p\",\"child\":%d,\"child_killed\":%s%s%s}\n",
	       (int)getpid(), (void *)&lock_a, (void *)&lock_b, (int)child,
	       WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? "true" : "false",
	       extra && *extra ? "," : "", extra ? extra : "");
	fflush(stdout);
}

/* ---- scenarios ----------------------------------------------------------- */

static atomic_int holder_tid;

static void on_usr1(int sig)
{
	(void)sig;
}

static void wait_usr1(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	signal(SIGUSR1, on_usr1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	printf("{\"ready\":%d}\n", (int)getpid());
	fflush(stdout);
	sigwait(&set, &sig);
}

/* The calling worker holds its locks: say so (stage 1), and keep them until
 * told to let go. */
static void held_until_released(void)
{
	atomic_store(&holder_tid, gettid());
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all) && !atomic_load(&release_holder))
		sleep_ms(1);
}

static void *hold_a(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock_a);
	held_until_released();
	pthread_mutex_unlock(&lock_a);
	return NULL;
}

/* Main forks while `worker` holds its locks (after SIGUSR1 if asked), then
 * lets it go; the facts name the holder. */
static int fork_while_held(void *(*worker)(void *), int after_signal)
{
	char extra[64];
	pthread_t t;
	int status = 0;
	pid_t child;

	pthread_create(&t, NULL, worker, NULL);
	wait_stage(1);
	if (after_signal)
		wait_usr1();
	child = fork_child(&status);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"holder_tid\":%d", atomic_load(&holder_tid));
	print_facts(extra, child, status);
	return 0;
}

/* A worker holds lock_a while main forks: the hazard. */
static int sc_hold(void)
{
	return fork_while_held(hold_a, 0);
}

static atomic_int waiter_tid;

static void *wait_for_a(void *arg)
{
	(void)arg;
	atomic_store(&waiter_tid, gettid());
	atomic_store(&stage, 1);
	pthread_mutex_lock(&lock_a);	/* blocks: main holds it */
	pthread_mutex_unlock(&lock_a);
	return NULL;
}

/* Main holds lock_a, a worker waits for it: the waiter is no holder. */
static int sc_waiter(void)
{
	char extra[64];
	pthread_t t;
	int status = 0;
	pid_t child;

	pthread_mutex_lock(&lock_a);
	pthread_create(&t, NULL, wait_for_a, NULL);
	wait_stage(1);
	sleep_ms(100);		/* the worker is in the futex wait now */
	child = fork_child(&status);
	pthread_mutex_unlock(&lock_a);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"waiter_tid\":%d,\"main_tid\":%d",
		 atomic_load(&waiter_tid), gettid());
	print_facts(extra, child, status);
	return 0;
}

static void *cond_waiter(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock_a);
	atomic_store(&holder_tid, gettid());
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all))
		pthread_cond_wait(&cond, &lock_a);	/* releases lock_a while waiting */
	pthread_mutex_unlock(&lock_a);
	return NULL;
}

/* A worker parked in pthread_cond_wait holds nothing. */
static int sc_condwait(void)
{
	char extra[64];
	pthread_t t;
	int status = 0;
	pid_t child;

	pthread_create(&t, NULL, cond_waiter, NULL);
	wait_stage(1);
	sleep_ms(100);
	child = fork_child(&status);
	pthread_mutex_lock(&lock_a);
	atomic_store(&release_all, 1);
	pthread_cond_broadcast(&cond);
	pthread_mutex_unlock(&lock_a);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"waiter_tid\":%d", atomic_load(&holder_tid));
	print_facts(extra, child, status);
	return 0;
}

static atomic_int trier_tid, trylock_result;

static void *try_a(void *arg)
{
	(void)arg;
	atomic_store(&trier_tid, gettid());
	atomic_store(&trylock_result, pthread_mutex_trylock(&lock_a));
	atomic_store(&stage, 2);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	return NULL;
}

/* One worker holds lock_a, another's trylock of it fails: one holder only.
 * With "released": the holder lets go before the fork, nothing is held. */
static int sc_trylock(int released)
{
	char extra[128];
	pthread_t h, t;
	int status = 0;
	pid_t child;

	pthread_create(&h, NULL, hold_a, NULL);
	wait_stage(1);
	pthread_create(&t, NULL, try_a, NULL);
	wait_stage(2);
	if (released) {
		atomic_store(&release_holder, 1);
		pthread_join(h, NULL);
	}
	child = fork_child(&status);
	atomic_store(&release_all, 1);
	if (!released)
		pthread_join(h, NULL);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"holder_tid\":%d,\"trier_tid\":%d,\"trylock\":%d",
		 atomic_load(&holder_tid), atomic_load(&trier_tid), atomic_load(&trylock_result));
	print_facts(extra, child, status);
	return 0;
}

static void *lock_unlock_a(void *arg)
{
	(void)arg;
	atomic_store(&holder_tid, gettid());
	pthread_mutex_lock(&lock_a);
	pthread_mutex_unlock(&lock_a);
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	return NULL;
}

/* A lock released before the fork is not inherited. */
static int sc_released(void)
{
	pthread_t t;
	int status = 0;
	pid_t child;

	pthread_create(&t, NULL, lock_unlock_a, NULL);
	wait_stage(1);
	child = fork_child(&status);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	print_facts(NULL, child, status);
	return 0;
}

/* posix_spawn (CLONE_VM | CLONE_VFORK) while a lock is held: not a fork. */
static int sc_spawn(void)
{
	char *argv[] = { "true", NULL };
	char extra[64];
	pthread_t t;
	int status = 0;
	pid_t child;

	pthread_create(&t, NULL, hold_a, NULL);
	wait_stage(1);
	if (posix_spawn(&child, "/bin/true", NULL, NULL, argv, environ)) {
		perror("posix_spawn");
		return 3;
	}
	waitpid(child, &status, 0);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"holder_tid\":%d", atomic_load(&holder_tid));
	print_facts(extra, child, status);
	return 0;
}

#define MANY 64
static pthread_mutex_t many_locks[MANY];
static atomic_int many_tids[MANY];

static void *hold_many(void *arg)
{
	long i = (long)arg;

	pthread_mutex_lock(&many_locks[i]);
	atomic_store(&many_tids[i], gettid());
	atomic_fetch_add(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	pthread_mutex_unlock(&many_locks[i]);
	return NULL;
}

/* 64 threads, each holding its own lock: all 64 reported. */
static int sc_many(void)
{
	pthread_t t[MANY];
	char *extra = malloc(MANY * 48 + 64);
	size_t off;
	int status = 0;
	pid_t child;

	for (long i = 0; i < MANY; i++) {
		pthread_mutex_init(&many_locks[i], NULL);
		pthread_create(&t[i], NULL, hold_many, (void *)i);
	}
	wait_stage(MANY);
	child = fork_child(&status);
	atomic_store(&release_all, 1);
	for (int i = 0; i < MANY; i++)
		pthread_join(t[i], NULL);
	off = (size_t)sprintf(extra, "\"locks\":[");
	for (int i = 0; i < MANY; i++)
		off += (size_t)sprintf(extra + off, "%s[\"%p\",%d]", i ? "," : "",
				       (void *)&many_locks[i], atomic_load(&many_tids[i]));
	sprintf(extra + off, "]");
	print_facts(extra, child, status);
	free(extra);
	return 0;
}

/* The worker takes lock_a and releases it, then at once takes it again from
 * a deeper frame and holds it: a new acquisition, not a call nested in the
 * first (which is over), and the one the report must name. */
static __attribute__((noinline)) void relock_deeper_inner(void)
{
	pthread_mutex_lock(&lock_a);
	__asm__ volatile("" ::: "memory");	/* not a tail call */
}

static __attribute__((noinline)) void relock_deeper(void)
{
	relock_deeper_inner();
	__asm__ volatile("" ::: "memory");
}

static void *relock_worker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&lock_a);
	pthread_mutex_unlock(&lock_a);
	relock_deeper();
	held_until_released();
	pthread_mutex_unlock(&lock_a);
	return NULL;
}

static int sc_relock_deeper(void)
{
	return fork_while_held(relock_worker, 0);
}

/* One worker: takes and releases `stale` mutexes (unlocks are not probed:
 * their records go stale), then holds `held` others while main forks. */
#define TABLE_LOCKS 64
static pthread_mutex_t table_locks[TABLE_LOCKS];
static int table_stale, table_held;

static void *table_worker(void *arg)
{
	(void)arg;
	for (int i = 0; i < table_stale; i++) {
		pthread_mutex_lock(&table_locks[i]);
		pthread_mutex_unlock(&table_locks[i]);
	}
	for (int i = 0; i < table_held; i++)
		pthread_mutex_lock(&table_locks[table_stale + i]);
	held_until_released();
	for (int i = 0; i < table_held; i++)
		pthread_mutex_unlock(&table_locks[table_stale + i]);
	return NULL;
}

static int sc_table(int stale, int held)
{
	char *extra = malloc(TABLE_LOCKS * 24 + 64);
	size_t off;
	pthread_t t;
	int status = 0;
	pid_t child;

	if (stale < 0 || held < 0 || stale + held > TABLE_LOCKS) {
		free(extra);
		return 2;
	}
	table_stale = stale;
	table_held = held;
	for (int i = 0; i < TABLE_LOCKS; i++)
		pthread_mutex_init(&table_locks[i], NULL);
	pthread_create(&t, NULL, table_worker, NULL);
	wait_stage(1);
	child = fork_child(&status);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	off = (size_t)sprintf(extra, "\"holder_tid\":%d,\"held\":[", atomic_load(&holder_tid));
	for (int i = 0; i < held; i++)
		off += (size_t)sprintf(extra + off, "%s\"%p\"", i ? "," : "",
				       (void *)&table_locks[stale + i]);
	sprintf(extra + off, "]");
	print_facts(extra, child, status);
	free(extra);
	return 0;
}

/* N forks in a row while a worker holds lock_a; children exit at once. */
/* n children that exit at once, each reaped before the next: how many forked */
static int fork_and_reap(int n)
{
	int forked = 0;

	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid > 0) {
			forked++;
			waitpid(pid, NULL, 0);
		}
	}
	return forked;
}

static int sc_storm(int n)
{
	char extra[64];
	pthread_t t;
	int forked;

	pthread_create(&t, NULL, hold_a, NULL);
	wait_stage(1);
	forked = fork_and_reap(n);
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"forks\":%d", forked);
	print_facts(extra, 0, 0);
	return 0;
}

/*
 * A lock whose page another thread keeps writing: every fork write-protects
 * the page, the writer's next store breaks the copy-on-write at once, and
 * for the few microseconds of that the page is absent to the reads the
 * kernel side makes at the fork. The lock must still be read, every time.
 */
static struct {
	pthread_mutex_t lock;
	volatile long stores;
} cow_page __attribute__((aligned(4096))) = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void *hold_cow(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&cow_page.lock);
	atomic_store(&holder_tid, gettid());
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all))
		sleep_ms(1);
	pthread_mutex_unlock(&cow_page.lock);
	return NULL;
}

static void *write_cow(void *arg)
{
	(void)arg;
	while (!atomic_load(&release_all))
		cow_page.stores++;
	return NULL;
}

static int sc_cowrace(int n)
{
	char extra[128];
	pthread_t holder, writer;
	int forked;

	pthread_create(&holder, NULL, hold_cow, NULL);
	wait_stage(1);
	pthread_create(&writer, NULL, write_cow, NULL);
	forked = fork_and_reap(n);
	atomic_store(&release_all, 1);
	pthread_join(writer, NULL);
	pthread_join(holder, NULL);
	snprintf(extra, sizeof(extra), "\"forks\":%d,\"cow_lock\":\"%p\",\"holder_tid\":%d",
		 forked, (void *)&cow_page.lock, atomic_load(&holder_tid));
	print_facts(extra, 0, 0);
	return 0;
}

/* The physical page behind addr in this process (/proc/self/pagemap; root
 * reads the frame numbers), or 0. */
static uint64_t page_frame(const void *addr)
{
	uint64_t e = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return 0;
	if (pread(fd, &e, sizeof(e), (off_t)((uintptr_t)addr / 4096 * sizeof(e))) != sizeof(e))
		e = 0;
	close(fd);
	return e & ((1ULL << 55) - 1);
}

/* A mutex alone on its page: only lock calls write there. */
static struct {
	pthread_mutex_t m;
} __attribute__((aligned(4096))) lone_page = { PTHREAD_MUTEX_INITIALIZER };
static int idle_pipe[2];

static void *hold_lone(void *arg)
{
	char c;

	(void)arg;
	pthread_mutex_lock(&lone_page.m);
	atomic_store(&holder_tid, gettid());
	atomic_store(&stage, 1);
	while (read(idle_pipe[0], &c, 1) < 0 && errno == EINTR)
		;
	pthread_mutex_unlock(&lone_page.m);
	return NULL;
}

/*
 * Does the tracer's reading of a process's memory copy its pages? A thread
 * holds a mutex alone on its page and blocks; main forks a child that lives
 * 1.5 s and writes nothing there. The tracer reads the child's copy of the
 * lock word (has the child re-initialised it?). A second after the fork,
 * parent and child look up the physical page of the mutex: untouched, it is
 * still one page shared by both, unless a read made the kernel copy it.
 */
static int sc_cowshare(void)
{
	int frames[2];
	uint64_t mine, childs = 0;
	char extra[256];
	pthread_t t;
	pid_t child;
	int status;

	if (pipe(idle_pipe) || pipe(frames))
		return 1;
	pthread_create(&t, NULL, hold_lone, NULL);
	wait_stage(1);
	sleep_ms(50);	/* blocked in read() by now */
	child = fork();
	if (child == 0) {
		sleep_ms(1500);
		childs = page_frame(&lone_page);
		if (write(frames[1], &childs, sizeof(childs)) != sizeof(childs))
			_exit(1);
		_exit(0);
	}
	sleep_ms(1000);
	mine = page_frame(&lone_page);
	if (read(frames[0], &childs, sizeof(childs)) != sizeof(childs))
		childs = 0;
	waitpid(child, &status, 0);
	if (write(idle_pipe[1], "x", 1) != 1)
		return 1;
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra),
		 "\"lone_lock\":\"%p\",\"holder_tid\":%d,\"frames_known\":%s,\"shared\":%s,"
		 "\"parent_frame\":%" PRIu64 ",\"child_frame\":%" PRIu64,
		 (void *)&lone_page.m, atomic_load(&holder_tid), mine && childs ? "true" : "false",
		 mine == childs ? "true" : "false", mine, childs);
	print_facts(extra, child, status);
	return 0;
}

/* A thread is created first, locks come later: for descendants traced by
 * -p/--: the child becomes multithreaded, takes a lock, forks again. */
static int sc_grandchild(void)
{
	int status = 0;
	pid_t mid = fork();

	if (mid == 0) {
		/* Single-threaded so far: the fork of `mid` is no hazard. Its
		 * first thread makes forkhazard attach lock probes to it; the
		 * lock is taken once they are in place (the attach takes about
		 * a millisecond: see "Known limits" in the README). */
		pthread_t t;

		pthread_create(&t, NULL, mt_helper, NULL);
		sleep_ms(200);
		sc_hold();
		_exit(0);
	}
	waitpid(mid, &status, 0);
	printf("{\"pid\":%d,\"mid\":%d}\n", (int)getpid(), (int)mid);
	return 0;
}

static void *lock_periodically(void *arg)
{
	(void)arg;
	atomic_store(&holder_tid, gettid());
	atomic_store(&stage, 1);
	while (!atomic_load(&release_all)) {
		pthread_mutex_lock(&lock_a);
		sleep_ms(40);
		pthread_mutex_unlock(&lock_a);
		sleep_ms(1);
	}
	return NULL;
}

/* A worker takes lock_a again and again, holding it most of the time; main
 * forks N times, 100 ms apart: code that forks while multithreaded, again. */
static int sc_periodic(int n)
{
	char extra[64];
	pthread_t t;
	int status;

	pthread_create(&t, NULL, lock_periodically, NULL);
	wait_stage(1);
	for (int i = 0; i < n; i++) {
		sleep_ms(100);
		fork_child(&status);
	}
	atomic_store(&release_all, 1);
	pthread_join(t, NULL);
	snprintf(extra, sizeof(extra), "\"holder_tid\":%d,\"forks\":%d", atomic_load(&holder_tid), n);
	print_facts(extra, 0, 0);
	return 0;
}

/* The lock is taken before forkhazard attaches (-p), then main forks on
 * SIGUSR1: the acquisition was never seen, the lock word still names it. */
static int sc_prehold(void)
{
	return fork_while_held(hold_a, 1);
}

static int usage(void)
{
	fprintf(stderr, "usage: scenario [--wait-signal] [--child=MODE] "
			"hold|waiter|condwait|trylock|trylock-released|released|spawn|many|"
			"storm N|cowrace N|cowshare|periodic N|prehold|grandchild|relock-deeper|table STALE HELD|"
			"exit N\n");
	return 2;
}

int main(int argc, char **argv)
{
	int i = 1, wait_signal = 0;

	for (; i < argc && !strncmp(argv[i], "--", 2); i++) {
		if (!strcmp(argv[i], "--wait-signal"))
			wait_signal = 1;
		else if (!strncmp(argv[i], "--child=", 8))
			child_mode = argv[i] + 8;
		else if (!strncmp(argv[i], "--hang-ms=", 10))
			hang_ms = atoi(argv[i] + 10);
		else
			return usage();
	}
	if (i >= argc)
		return usage();
	if (wait_signal)
		wait_usr1();
	if (!strcmp(argv[i], "hold"))
		return sc_hold();
	if (!strcmp(argv[i], "waiter"))
		return sc_waiter();
	if (!strcmp(argv[i], "condwait"))
		return sc_condwait();
	if (!strcmp(argv[i], "trylock"))
		return sc_trylock(0);
	if (!strcmp(argv[i], "trylock-released"))
		return sc_trylock(1);
	if (!strcmp(argv[i], "released"))
		return sc_released();
	if (!strcmp(argv[i], "spawn"))
		return sc_spawn();
	if (!strcmp(argv[i], "many"))
		return sc_many();
	if (!strcmp(argv[i], "storm") && i + 1 < argc)
		return sc_storm(atoi(argv[i + 1]));
	if (!strcmp(argv[i], "cowrace") && i + 1 < argc)
		return sc_cowrace(atoi(argv[i + 1]));
	if (!strcmp(argv[i], "cowshare"))
		return sc_cowshare();
	if (!strcmp(argv[i], "periodic") && i + 1 < argc)
		return sc_periodic(atoi(argv[i + 1]));
	if (!strcmp(argv[i], "prehold"))
		return sc_prehold();
	if (!strcmp(argv[i], "grandchild"))
		return sc_grandchild();
	if (!strcmp(argv[i], "relock-deeper"))
		return sc_relock_deeper();
	if (!strcmp(argv[i], "table") && i + 2 < argc)
		return sc_table(atoi(argv[i + 1]), atoi(argv[i + 2]));
	if (!strcmp(argv[i], "exit") && i + 1 < argc)
		return atoi(argv[i + 1]);
	return usage();
}

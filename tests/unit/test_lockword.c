// SPDX-License-Identifier: GPL-2.0
/*
 * lockword.c: futex system calls decoded, and owners read from real glibc
 * locks held by real threads of this very process (read as another process
 * would be: process_vm_readv and /proc/PID/mem).
 */
#include <errno.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include "lockword.h"
#include "unit.h"

#define PID_MAX 4194304

static struct fh_syscall futex_call(uint64_t uaddr, uint64_t op, uint64_t val, uint64_t timeout)
{
	struct fh_syscall sc = { .nr = SYS_futex, .args = { uaddr, op, val, timeout, 0, 0 } };

	return sc;
}

/* ---- lockword_decode_wait ------------------------------------------------- */

UNIT_TEST(wait_private_no_timeout)
{
	/* what a child stuck on an inherited mutex shows in /proc/PID/task/TID/syscall */
	struct fh_syscall sc = futex_call(0x55d0c8a04040, 0x80, 2, 0);
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.call == LW_CALL_FUTEX);
	CHECK(w.uaddr == 0x55d0c8a04040ull);
	CHECK_INT(w.val, 2);
	CHECK_INT(w.cmd, FUTEX_WAIT);
	CHECK(w.is_private && !w.has_timeout && !w.pi && w.word32);
	CHECK_INT(w.nr_futexes, 1);
	CHECK_STR(lockword_op_name(&w), "FUTEX_WAIT_PRIVATE");
}

UNIT_TEST(wait_bitset_shared_with_timeout)
{
	struct fh_syscall sc = futex_call(0x1000, FUTEX_WAIT_BITSET | FUTEX_CLOCK_REALTIME, 0,
					  0x7ffd0000);
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK_INT(w.cmd, FUTEX_WAIT_BITSET);
	CHECK(!w.is_private && w.has_timeout);
	CHECK_STR(lockword_op_name(&w), "FUTEX_WAIT_BITSET");
}

UNIT_TEST(wake_and_other_calls_are_not_waits)
{
	struct fh_syscall sc = futex_call(0x1000, FUTEX_WAKE_PRIVATE, 1, 0);
	struct fh_syscall sleep = { .nr = SYS_nanosleep };
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 0);
	sc = futex_call(0x1000, FUTEX_TRYLOCK_PI, 0, 0);
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 0);
	CHECK_INT(lockword_decode_wait(getpid(), &sleep, &w), 0);
}

UNIT_TEST(lock_pi_and_pi2)
{
	struct fh_syscall sc = futex_call(0x2000, FUTEX_LOCK_PI_PRIVATE, 0, 0);
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.pi && w.is_private && !w.has_timeout);
	CHECK_STR(lockword_op_name(&w), "FUTEX_LOCK_PI_PRIVATE");
	sc = futex_call(0x2000, FUTEX_LOCK_PI2, 0, 0x7ffd0000);
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.pi && !w.is_private && w.has_timeout);
}

UNIT_TEST(futex2_wait)
{
	/* futex_wait(uaddr, val, mask, flags, timeout, clockid) */
	struct fh_syscall sc = { .nr = 455, .args = { 0x3000, 7, ~0ull, 0x82, 0, 1 } };
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.call == LW_CALL_FUTEX_WAIT);
	CHECK(w.uaddr == 0x3000 && w.val == 7);
	CHECK(w.is_private && w.word32 && !w.has_timeout);
	sc.args[3] = 0x03;	/* a 64-bit futex, shared */
	sc.args[4] = 0x7ffd0000;
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(!w.is_private && !w.word32 && w.has_timeout);
	CHECK_STR(lockword_op_name(&w), "futex_wait");
}

UNIT_TEST(futex_waitv_reads_the_array)
{
	/* struct futex_waitv { u64 val; u64 uaddr; u32 flags; u32 reserved; } */
	static struct {
		uint64_t val, uaddr;
		uint32_t flags, reserved;
	} v[2] = { { 5, 0x4000, 0x82, 0 }, { 6, 0x5000, 0x02, 0 } };
	struct fh_syscall sc = { .nr = 449, .args = { (uint64_t)(uintptr_t)v, 2, 0, 0, 1, 0 } };
	struct lw_wait w;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.call == LW_CALL_FUTEX_WAITV);
	CHECK_INT(w.nr_futexes, 2);
	CHECK(w.uaddr == 0x4000 && w.val == 5);
	CHECK(!w.is_private);	/* the second one may be woken from another process */
	CHECK(!w.has_timeout);
	v[1].flags = 0x82;
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	CHECK(w.is_private);
	sc.args[1] = 0;		/* refused by the kernel: not a wait */
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 0);
	sc.args[1] = 1;
	sc.args[0] = 8;		/* unmapped */
	CHECK(lockword_decode_wait(getpid(), &sc, &w) < 0);
}

/* ---- lockword_hint --------------------------------------------------------- */

UNIT_TEST(hint_from_glibc_names)
{
	CHECK(lockword_hint("___pthread_mutex_lock") == LW_KIND_MUTEX);
	CHECK(lockword_hint("__pthread_mutex_lock_full") == LW_KIND_MUTEX);
	CHECK(lockword_hint("__pthread_mutex_cond_lock") == LW_KIND_MUTEX);
	CHECK(lockword_hint("pthread_mutex_timedlock") == LW_KIND_MUTEX);
	CHECK(lockword_hint("__pthread_rwlock_wrlock_full64") == LW_KIND_RWLOCK);
	CHECK(lockword_hint("pthread_rwlock_rdlock") == LW_KIND_RWLOCK);
	CHECK(lockword_hint("___pthread_cond_wait") == LW_KIND_COND);
	CHECK(lockword_hint("__new_sem_wait_slow64") == LW_KIND_SEM);
	CHECK(lockword_hint("__pthread_clockjoin_ex") == LW_KIND_JOIN);
	CHECK(lockword_hint("__lll_lock_wait_private") == LW_KIND_FUTEX);
	/* says nothing: the caller looks further out */
	CHECK(lockword_hint("__lll_lock_wait") == LW_KIND_UNKNOWN);
	CHECK(lockword_hint("__futex_abstimed_wait_common") == LW_KIND_UNKNOWN);
	CHECK(lockword_hint("my_pthread_mutex_lock") == LW_KIND_UNKNOWN);
	CHECK(lockword_hint(NULL) == LW_KIND_UNKNOWN);
}

/* ---- owners from real locks ------------------------------------------------- */

static pthread_mutex_t mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rwlock = PTHREAD_RWLOCK_INITIALIZER;
static atomic_int holder_tid, release;

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

static void *hold(void *arg)
{
	bool rw = arg != NULL;

	if (rw)
		pthread_rwlock_wrlock(&rwlock);
	else
		pthread_mutex_lock(&mutex);
	atomic_store(&holder_tid, (int)gettid());
	while (!atomic_load(&release))
		sleep_ms(1);
	if (rw)
		pthread_rwlock_unlock(&rwlock);
	else
		pthread_mutex_unlock(&mutex);
	return NULL;
}

static bool start_holder(pthread_t *t, bool rw)
{
	atomic_store(&holder_tid, 0);
	atomic_store(&release, 0);
	if (pthread_create(t, NULL, hold, rw ? (void *)1 : NULL))
		return false;
	for (int i = 0; i < 5000 && !atomic_load(&holder_tid); i++)
		sleep_ms(1);
	return atomic_load(&holder_tid) != 0;
}

static void stop_holder(pthread_t t)
{
	atomic_store(&release, 1);
	pthread_join(t, NULL);
}

/* A futex(FUTEX_WAIT_PRIVATE, val) wait on addr, as a waiter would show it. */
static struct lw_wait wait_on(const void *addr, uint64_t val)
{
	struct fh_syscall sc = futex_call((uint64_t)(uintptr_t)addr, FUTEX_WAIT_PRIVATE, val, 0);
	struct lw_wait w;

	lockword_decode_wait(getpid(), &sc, &w);
	return w;
}

UNIT_TEST(mutex_owner_from_memory)
{
	struct lw_wait w = wait_on(&mutex, 2);
	uint8_t mem[LW_WINDOW];
	struct lw_lock l;
	pthread_t t;
	ssize_t n;
	pid_t tid;

	CHECK(start_holder(&t, false));
	tid = atomic_load(&holder_tid);
	n = lockword_read(getpid(), w.uaddr, mem, sizeof(mem));
	stop_holder(t);
	CHECK_INT(n, sizeof(mem));
	lockword_decode(&w, mem, (size_t)n, LW_KIND_MUTEX, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_MUTEX && !l.guessed && l.word_valid);
	CHECK_INT(l.word, 1);	/* locked, nobody waiting yet */
	CHECK_INT(l.owner, tid);
	/* no stack to tell: the layout alone says mutex */
	lockword_decode(&w, mem, (size_t)n, LW_KIND_UNKNOWN, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_MUTEX && l.guessed);
	CHECK_INT(l.owner, tid);
	/* the stack says condition variable: no owner, whatever the bytes say */
	lockword_decode(&w, mem, (size_t)n, LW_KIND_COND, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_COND);
	CHECK_INT(l.owner, 0);
}

UNIT_TEST(mutex_unlocked_has_no_owner)
{
	struct lw_wait w = wait_on(&mutex, 2);
	uint8_t mem[LW_WINDOW];
	struct lw_lock l;
	ssize_t n;

	n = lockword_read(getpid(), w.uaddr, mem, sizeof(mem));
	CHECK_INT(n, sizeof(mem));
	lockword_decode(&w, mem, (size_t)n, LW_KIND_MUTEX, PID_MAX, &l);
	CHECK_INT(l.word, 0);
	CHECK_INT(l.owner, 0);
	lockword_decode(&w, mem, (size_t)n, LW_KIND_UNKNOWN, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_FUTEX && !l.guessed);
	CHECK_INT(l.owner, 0);
}

UNIT_TEST(implausible_owner_rejected)
{
	uint8_t mem[LW_WINDOW] = { 0 };
	struct lw_wait w = wait_on((void *)0x10000, 2);
	struct lw_lock l;
	uint32_t word = 2, owner = 0x7fffffff;

	memcpy(mem, &word, 4);
	memcpy(mem + 8, &owner, 4);
	lockword_decode(&w, mem, sizeof(mem), LW_KIND_MUTEX, PID_MAX, &l);
	CHECK_INT(l.owner, 0);
	owner = PID_MAX;	/* TIDs are below pid_max */
	memcpy(mem + 8, &owner, 4);
	lockword_decode(&w, mem, sizeof(mem), LW_KIND_MUTEX, PID_MAX, &l);
	CHECK_INT(l.owner, 0);
	owner = 4711;
	memcpy(mem + 8, &owner, 4);
	lockword_decode(&w, mem, sizeof(mem), LW_KIND_MUTEX, PID_MAX, &l);
	CHECK_INT(l.owner, 4711);
	/* the owner field is past what could be read */
	lockword_decode(&w, mem, 8, LW_KIND_MUTEX, PID_MAX, &l);
	CHECK(l.word_valid);
	CHECK_INT(l.owner, 0);
}

UNIT_TEST(rwlock_writer_from_both_futexes)
{
	/* readers wait on __wrphase_futex (+8), writers on __writers_futex (+12) */
	struct lw_wait rd = wait_on(&rwlock.__data.__wrphase_futex, 3);
	struct lw_wait wr = wait_on(&rwlock.__data.__writers_futex, 3);
	uint8_t mrd[LW_WINDOW], mwr[LW_WINDOW];
	struct lw_lock l;
	pthread_t t;
	ssize_t nrd, nwr;
	pid_t tid;

	CHECK(start_holder(&t, true));
	tid = atomic_load(&holder_tid);
	nrd = lockword_read(getpid(), rd.uaddr, mrd, sizeof(mrd));
	nwr = lockword_read(getpid(), wr.uaddr, mwr, sizeof(mwr));
	stop_holder(t);
	CHECK(nrd == sizeof(mrd) && nwr == sizeof(mwr));
	lockword_decode(&rd, mrd, sizeof(mrd), LW_KIND_RWLOCK, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_RWLOCK);
	CHECK_INT(l.owner, tid);
	lockword_decode(&wr, mwr, sizeof(mwr), LW_KIND_RWLOCK, PID_MAX, &l);
	CHECK_INT(l.owner, tid);
	/* and without a stack, from the layout */
	lockword_decode(&wr, mwr, sizeof(mwr), LW_KIND_UNKNOWN, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_RWLOCK && l.guessed);
	CHECK_INT(l.owner, tid);
}

UNIT_TEST(pi_owner_in_the_word)
{
	struct fh_syscall sc = futex_call(0x6000, FUTEX_LOCK_PI_PRIVATE, 0, 0);
	uint32_t word = FUTEX_WAITERS | 1234;
	struct lw_wait w;
	struct lw_lock l;

	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	lockword_decode(&w, (const uint8_t *)&word, 4, LW_KIND_UNKNOWN, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_PI);
	CHECK_INT(l.owner, 1234);
	word = FUTEX_WAITERS;	/* no owner */
	lockword_decode(&w, (const uint8_t *)&word, 4, LW_KIND_UNKNOWN, PID_MAX, &l);
	CHECK_INT(l.owner, 0);
}

UNIT_TEST(join_owner_is_the_word)
{
	struct lw_wait w = wait_on((void *)0x7000, 4321);
	uint32_t word = 4321;
	struct lw_lock l;

	lockword_decode(&w, (const uint8_t *)&word, 4, LW_KIND_JOIN, PID_MAX, &l);
	CHECK(l.kind == LW_KIND_JOIN);
	CHECK_INT(l.owner, 4321);
}

UNIT_TEST(waitv_of_many_has_no_owner)
{
	static struct {
		uint64_t val, uaddr;
		uint32_t flags, reserved;
	} v[2];
	struct fh_syscall sc = { .nr = 449, .args = { (uint64_t)(uintptr_t)v, 2, 0, 0, 1, 0 } };
	uint8_t mem[LW_WINDOW] = { 0 };
	uint32_t word = 2, owner = 99;
	struct lw_wait w;
	struct lw_lock l;

	v[0].uaddr = 0x8000;
	v[0].val = 2;
	v[0].flags = v[1].flags = 0x82;
	memcpy(mem, &word, 4);
	memcpy(mem + 8, &owner, 4);
	CHECK_INT(lockword_decode_wait(getpid(), &sc, &w), 1);
	/* it wakes for either futex: one owner does not make it stuck */
	lockword_decode(&w, mem, sizeof(mem), LW_KIND_MUTEX, PID_MAX, &l);
	CHECK_INT(l.owner, 0);
}

/* ---- reading memory --------------------------------------------------------- */

UNIT_TEST(read_stops_at_the_end_of_a_mapping)
{
	long page = sysconf(_SC_PAGESIZE);
	uint8_t *m = mmap(NULL, (size_t)page * 2, PROT_READ | PROT_WRITE,
			  MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	uint8_t buf[LW_WINDOW];
	uint64_t at;

	CHECK(m != MAP_FAILED);
	munmap(m + page, (size_t)page);
	memset(m, 0xab, (size_t)page);
	at = (uint64_t)(uintptr_t)(m + page - 16);
	CHECK_INT(lockword_read(getpid(), at, buf, sizeof(buf)), 16);
	CHECK(buf[0] == 0xab && buf[15] == 0xab);
	/* nothing mapped there at all */
	CHECK_INT(lockword_read(getpid(), (uint64_t)(uintptr_t)(m + page), buf, sizeof(buf)),
		  -EFAULT);
	munmap(m, (size_t)page);
}

/* More processes than lockword.c keeps files open for, read in turn: each
 * read is of the right process; one that exited since its file was opened
 * reads as gone. */
UNIT_TEST(read_keeps_each_process_apart)
{
	static volatile int marker;
	enum { N = 11 };
	pid_t kids[N];
	int ready[2], hold[2], v;
	char c;

	CHECK(pipe(ready) == 0 && pipe(hold) == 0);
	for (int i = 0; i < N; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			close(hold[1]);	/* read() below ends when the parent closes it */
			marker = 100 + i;
			if (write(ready[1], "r", 1) != 1)
				_exit(1);
			while (read(hold[0], &c, 1) < 0)
				;
			_exit(0);
		}
		CHECK(kids[i] > 0 && read(ready[0], &c, 1) == 1);
	}
	for (int round = 0; round < 2; round++) {
		for (int i = 0; i < N; i++) {
			CHECK_INT(lockword_read(kids[i], (uint64_t)(uintptr_t)&marker, &v, sizeof(v)),
				  (int)sizeof(v));
			CHECK_INT(v, 100 + i);
		}
	}
	/* the newest file is kids[N - 1]'s: it exits, and reads as gone */
	kill(kids[N - 1], SIGKILL);
	CHECK(waitpid(kids[N - 1], NULL, 0) == kids[N - 1]);
	CHECK_INT(lockword_read(kids[N - 1], (uint64_t)(uintptr_t)&marker, &v, sizeof(v)), -ESRCH);
	close(hold[1]);
	for (int i = 0; i < N - 1; i++)
		waitpid(kids[i], NULL, 0);
	close(hold[0]);
	close(ready[0]);
	close(ready[1]);
}

UNIT_TEST(read_of_no_process)
{
	uint8_t buf[4];

	CHECK_INT(lockword_read(99999999, 0x1000, buf, sizeof(buf)), -ESRCH);
}

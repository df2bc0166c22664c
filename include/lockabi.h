/* SPDX-License-Identifier: GPL-2.0 */
/*
 * lockabi.h - how the C libraries lay out their lock words, and the futex
 * calls that sleep on them: facts of the user-space ABI that both sides read.
 * bpf/fh.bpf.h decides from a lock word whether a thread holds the lock at a
 * fork, bpf/futex.bpf.c names a deadlocked child's owner, src/lockword.c does
 * the same for `inspect`. Macros only, no types: the BPF side cannot include
 * <linux/futex.h> next to vmlinux.h. The futex names are the kernel's, spelt
 * as in its header, so that a file may include both.
 */
#ifndef FH_LOCKABI_H
#define FH_LOCKABI_H

/* ---- futex(2) and futex2 ---------------------------------------------------- */

#ifndef FUTEX_WAIT
#define FUTEX_WAIT		0
#define FUTEX_LOCK_PI		6
#define FUTEX_WAIT_BITSET	9
#define FUTEX_WAIT_REQUEUE_PI	11
#define FUTEX_LOCK_PI2		13
#define FUTEX_PRIVATE_FLAG	128
#define FUTEX_CLOCK_REALTIME	256
#define FUTEX_CMD_MASK		~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME)
#endif
#ifndef FUTEX_WAITERS
#define FUTEX_WAITERS		0x80000000	/* in a PI or robust word: someone waits */
#define FUTEX_TID_MASK		0x3fffffff	/* in a PI or robust word: the owner */
#endif
#ifndef FUTEX_WAITV_MAX
#define FUTEX_WAITV_MAX		128
#endif
/* futex_waitv(2) and futex_wait(2) flags (newer than Debian 12's headers) */
#ifndef FUTEX2_SIZE_U32
#define FUTEX2_SIZE_U32		0x02
#define FUTEX2_SIZE_MASK	0x03
#define FUTEX2_PRIVATE		FUTEX_PRIVATE_FLAG
#endif

/* System call numbers newer than the installed headers may know; the same on
 * every architecture. */
#define NR_futex_waitv		449
#define NR_futex_wait		455

/* ---- glibc ------------------------------------------------------------------- */

/*
 * pthread_mutex_t, every type: __lock (the futex word) at 0, __owner (the
 * holder's TID, in the holder's PID namespace) at 8, __kind at 16.
 */
#define GLIBC_MUTEX_OWNER	8
#define GLIBC_MUTEX_KIND	16
/* __count at 4: a recursive mutex's acquisitions by its holder (0 for the
 * other types) */
#define GLIBC_MUTEX_COUNT	4
/* every bit __kind may have: type, robust, PI, PP, pshared, elision */
#define GLIBC_MUTEX_KIND_BITS	0x3ffu

/*
 * pthread_rwlock_t (8-byte aligned): __readers at 0 (bit 0: a writer's
 * phase, when readers only wait; readers registered from bit 3 on),
 * __wrphase_futex at 8 and __writers_futex at 12 (the words waiters sleep
 * on), __cur_writer (the writer's TID) at 24, __shared at 28, __flags at 48.
 */
#define GLIBC_RWLOCK_WRPHASE_BIT	1
#define GLIBC_RWLOCK_READER_SHIFT	3
#define GLIBC_RWLOCK_WRPHASE_FUTEX	8
#define GLIBC_RWLOCK_WRITERS_FUTEX	12
#define GLIBC_RWLOCK_CUR_WRITER		24
#define GLIBC_RWLOCK_SHARED		28
#define GLIBC_RWLOCK_FLAGS		48
/* ...seen from the futex word a waiter sleeps on */
#define GLIBC_RWLOCK_WRITER_FROM_WRPHASE (GLIBC_RWLOCK_CUR_WRITER - GLIBC_RWLOCK_WRPHASE_FUTEX)
#define GLIBC_RWLOCK_WRITER_FROM_WRITERS (GLIBC_RWLOCK_CUR_WRITER - GLIBC_RWLOCK_WRITERS_FUTEX)
/* set in the value a rwlock waiter expects: the futex is in use */
#define GLIBC_RWLOCK_FUTEX_USED		2

/* pthread_spinlock_t on x86-64 counts down from 1, its unlocked value;
 * elsewhere, and in musl, 0 is unlocked. */
#define GLIBC_SPIN_UNLOCKED_X86		1

/* ---- musl -------------------------------------------------------------------- */

/*
 * pthread_mutex_t: _m_type at 0 (a normal mutex has 0 in its low 4 bits),
 * _m_lock at 4: EBUSY while a normal mutex is held, the owner's TID
 * (FUTEX_TID_MASK bits; FUTEX_WAITERS set by a waiter) for the other types.
 */
#define MUSL_MUTEX_TYPE		0
#define MUSL_MUTEX_LOCK		4
#define MUSL_MUTEX_TYPE_MASK	15
/* pthread_rwlock_t: _rw_lock at 0, this value while a writer holds it, else
 * the count of readers (sign bit: someone waits). */
#define MUSL_RWLOCK_WRITER	0x7fffffff

/* Semaphores, glibc and musl: the value in the first 32 bits (musl sets the
 * sign bit while a thread waits); above 0, nobody holds it as a lock. A
 * waiter sleeps on the futex at the semaphore's own address (glibc's 64-bit
 * sem_t: the value is the low half, first on little-endian machines). */

#endif /* FH_LOCKABI_H */

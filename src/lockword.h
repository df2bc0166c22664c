/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Lock words: what a thread blocked in a futex system call waits on, and
 * which thread owns that lock, read from the waiting process's memory.
 * Decoding is pure; lockword_read() and futex_waitv's array in
 * lockword_decode_wait() are the only reads of another process.
 */
#ifndef FH_LOCKWORD_H
#define FH_LOCKWORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "lockabi.h"
#include "procfs.h"

/* System call numbers newer than the installed kernel headers may know. */
#define LW_NR_FUTEX_WAITV	NR_futex_waitv
#define LW_NR_FUTEX_WAIT	NR_futex_wait

/* Bytes read from the futex word on: covers the mutex and rwlock layouts. */
#define LW_WINDOW	48

enum lw_call {
	LW_CALL_FUTEX,		/* futex(2) */
	LW_CALL_FUTEX_WAITV,	/* futex_waitv(2): several futexes */
	LW_CALL_FUTEX_WAIT,	/* futex2's futex_wait(2) */
};

struct lw_wait {
	enum lw_call call;
	unsigned int cmd;	/* futex(2): op & FUTEX_CMD_MASK */
	unsigned int flags;	/* futex(2): op; futex2: flags (of the first waiter) */
	uint64_t uaddr;		/* the futex word (futex_waitv: the first one) */
	uint64_t val;		/* the value the kernel expected there */
	int nr_futexes;		/* futex_waitv: entries; else 1 */
	bool is_private;	/* only threads of this process can wake it */
	bool has_timeout;
	bool word32;		/* a 32-bit word: the glibc layouts apply */
	bool pi;		/* FUTEX_LOCK_PI(2): the word holds the owner's TID */
};

/*
 * Is sc (one line of /proc/PID/task/TID/syscall) a futex wait? Returns 1 and
 * fills w if it is, 0 if not, or -errno when futex_waitv's array cannot be
 * read from pid.
 */
int lockword_decode_wait(pid_t pid, const struct fh_syscall *sc, struct lw_wait *w);

/* "FUTEX_WAIT_PRIVATE", "futex_waitv", ... */
const char *lockword_op_name(const struct lw_wait *w);

enum lw_kind {
	LW_KIND_UNKNOWN,	/* nothing said what it is: guess from the layout */
	LW_KIND_FUTEX,		/* a bare futex, or a layout without an owner field */
	LW_KIND_MUTEX,		/* glibc pthread_mutex_t: __owner 8 bytes after __lock */
	LW_KIND_PI,		/* PI futex: the owner's TID is in the word itself */
	LW_KIND_RWLOCK,		/* glibc pthread_rwlock_t: __cur_writer */
	LW_KIND_COND,		/* condition variable: nobody owns it */
	LW_KIND_SEM,		/* semaphore: nobody owns it */
	LW_KIND_JOIN,		/* pthread_join: the word is the joined thread's TID */
};

const char *lockword_kind_name(enum lw_kind kind);

/*
 * What a glibc function on the waiting thread's stack says the futex is:
 * LW_KIND_UNKNOWN when the symbol says nothing. Callers look at the
 * innermost frames first.
 */
enum lw_kind lockword_hint(const char *symbol);

struct lw_lock {
	enum lw_kind kind;
	bool guessed;		/* kind from the memory layout alone */
	bool word_valid;	/* the futex word could be read */
	uint32_t word;
	pid_t owner;		/* 0: none or not known */
};

/*
 * Decode the lock a thread waits on from mem, len bytes of the waiting
 * process's memory from w->uaddr on (len < LW_WINDOW near the end of a
 * mapping). hint: from lockword_hint(), or LW_KIND_UNKNOWN. An owner is only
 * reported if it is a plausible TID (0 < tid < pid_max) and, for a mutex, the
 * word says locked.
 */
void lockword_decode(const struct lw_wait *w, const uint8_t *mem, size_t len, enum lw_kind hint,
		     int pid_max, struct lw_lock *l);

/*
 * Read len bytes at addr of process pid, as its memory is: through
 * /proc/PID/mem, which, unlike process_vm_readv, copies no page the process
 * shares with a forked child (lockword.c). process_vm_readv only where /proc
 * cannot be read. Returns the bytes read (fewer at the end of a mapping), or
 * -EFAULT (nothing mapped at addr), -ESRCH (no such process) or -errno.
 * The files of the last few processes read stay open for the next reads.
 */
ssize_t lockword_read(pid_t pid, uint64_t addr, void *buf, size_t len);

#endif

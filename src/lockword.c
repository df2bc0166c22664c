// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>
#include "lockabi.h"
#include "lockword.h"

/* struct futex_waitv, as futex_waitv(2) reads it from the waiter's memory */
struct lw_waitv {
	uint64_t val;
	uint64_t uaddr;
	uint32_t flags;
	uint32_t reserved;
};

static int decode_futex(const struct fh_syscall *sc, struct lw_wait *w)
{
	unsigned int op = (unsigned int)sc->args[1];

	w->call = LW_CALL_FUTEX;
	w->flags = op;
	w->cmd = op & FUTEX_CMD_MASK;
	switch (w->cmd) {
	case FUTEX_LOCK_PI:
	case FUTEX_LOCK_PI2:
		w->pi = true;
		break;
	case FUTEX_WAIT:
	case FUTEX_WAIT_BITSET:
	case FUTEX_WAIT_REQUEUE_PI:
		break;
	default:
		return 0;	/* wakes, requeues, trylock: they do not block */
	}
	w->uaddr = sc->args[0];
	w->val = (uint32_t)sc->args[2];
	w->nr_futexes = 1;
	w->is_private = op & FUTEX_PRIVATE_FLAG;
	w->has_timeout = sc->args[3] != 0;
	w->word32 = true;
	return 1;
}

static int decode_waitv(pid_t pid, const struct fh_syscall *sc, struct lw_wait *w)
{
	struct lw_waitv v[FUTEX_WAITV_MAX];
	uint64_t nr = sc->args[1];
	ssize_t n;

	w->call = LW_CALL_FUTEX_WAITV;
	w->has_timeout = sc->args[3] != 0;
	if (nr == 0 || nr > FUTEX_WAITV_MAX)
		return 0;	/* the kernel refuses these at once */
	memset(v, 0, nr * sizeof(v[0]));	/* what a short read leaves is never used */
	n = lockword_read(pid, sc->args[0], v, nr * sizeof(v[0]));
	if (n < 0)
		return (int)n;
	if ((size_t)n < nr * sizeof(v[0]))
		return -EFAULT;
	w->nr_futexes = (int)nr;
	w->uaddr = v[0].uaddr;
	w->val = v[0].val;
	w->flags = v[0].flags;
	w->word32 = (v[0].flags & FUTEX2_SIZE_MASK) == FUTEX2_SIZE_U32;
	/* private only if no other process can wake any of them */
	w->is_private = true;
	for (uint64_t i = 0; i < nr; i++)
		if (!(v[i].flags & FUTEX2_PRIVATE))
			w->is_private = false;
	return 1;
}

int lockword_decode_wait(pid_t pid, const struct fh_syscall *sc, struct lw_wait *w)
{
	memset(w, 0, sizeof(*w));
	if (sc->nr == SYS_futex)
		return decode_futex(sc, w);
	if (sc->nr == LW_NR_FUTEX_WAITV)
		return decode_waitv(pid, sc, w);
	if (sc->nr == LW_NR_FUTEX_WAIT) {
		/* futex_wait(uaddr, val, mask, flags, timeout, clockid) */
		w->call = LW_CALL_FUTEX_WAIT;
		w->uaddr = sc->args[0];
		w->val = sc->args[1];
		w->flags = (unsigned int)sc->args[3];
		w->nr_futexes = 1;
		w->is_private = w->flags & FUTEX2_PRIVATE;
		w->has_timeout = sc->args[4] != 0;
		w->word32 = (w->flags & FUTEX2_SIZE_MASK) == FUTEX2_SIZE_U32;
		return 1;
	}
	return 0;
}

const char *lockword_op_name(const struct lw_wait *w)
{
	bool priv = w->flags & FUTEX_PRIVATE_FLAG;

	if (w->call == LW_CALL_FUTEX_WAITV)
		return "futex_waitv";
	if (w->call == LW_CALL_FUTEX_WAIT)
		return "futex_wait";
	switch (w->cmd) {
	case FUTEX_WAIT: return priv ? "FUTEX_WAIT_PRIVATE" : "FUTEX_WAIT";
	case FUTEX_WAIT_BITSET: return priv ? "FUTEX_WAIT_BITSET_PRIVATE" : "FUTEX_WAIT_BITSET";
	case FUTEX_LOCK_PI: return priv ? "FUTEX_LOCK_PI_PRIVATE" : "FUTEX_LOCK_PI";
	case FUTEX_LOCK_PI2: return priv ? "FUTEX_LOCK_PI2_PRIVATE" : "FUTEX_LOCK_PI2";
	case FUTEX_WAIT_REQUEUE_PI:
		return priv ? "FUTEX_WAIT_REQUEUE_PI_PRIVATE" : "FUTEX_WAIT_REQUEUE_PI";
	default: return "FUTEX_?";
	}
}

const char *lockword_kind_name(enum lw_kind kind)
{
	switch (kind) {
	case LW_KIND_MUTEX: return "mutex";
	case LW_KIND_PI: return "pi-futex";
	case LW_KIND_RWLOCK: return "rwlock";
	case LW_KIND_COND: return "cond";
	case LW_KIND_SEM: return "semaphore";
	case LW_KIND_JOIN: return "join";
	default: return "futex";
	}
}

enum lw_kind lockword_hint(const char *symbol)
{
	/* glibc's names, with or without its leading underscores */
	static const struct {
		const char *prefix;
		enum lw_kind kind;
	} names[] = {
		{ "pthread_mutex_", LW_KIND_MUTEX },	/* __pthread_mutex_cond_lock too */
		{ "pthread_rwlock_", LW_KIND_RWLOCK },
		{ "pthread_cond_", LW_KIND_COND },
		{ "new_sem_wait", LW_KIND_SEM },
		{ "sem_wait", LW_KIND_SEM },
		{ "sem_timedwait", LW_KIND_SEM },
		{ "sem_clockwait", LW_KIND_SEM },
		{ "pthread_join", LW_KIND_JOIN },
		{ "pthread_clockjoin", LW_KIND_JOIN },
		{ "pthread_timedjoin", LW_KIND_JOIN },
		/* glibc's internal locks (stdio, ...): no owner field */
		{ "lll_lock_wait_private", LW_KIND_FUTEX },
		{ "pthread_barrier_wait", LW_KIND_FUTEX },
		{ "pthread_once", LW_KIND_FUTEX },
	};

	if (!symbol)
		return LW_KIND_UNKNOWN;
	while (*symbol == '_')
		symbol++;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strncmp(symbol, names[i].prefix, strlen(names[i].prefix)))
			return names[i].kind;
	return LW_KIND_UNKNOWN;
}

static bool get32(const uint8_t *mem, size_t len, size_t off, uint32_t *v)
{
	if (off + 4 > len)
		return false;
	memcpy(v, mem + off, 4);
	return true;
}

static bool plausible_tid(uint32_t tid, int pid_max)
{
	return tid > 0 && tid < (uint32_t)pid_max;
}

/* Offset of pthread_rwlock_t's __cur_writer from the futex word, by which
 * futex it is (the rwlock is 8-byte aligned). */
static size_t rwlock_writer_off(uint64_t uaddr)
{
	switch (uaddr & 7) {
	case GLIBC_RWLOCK_WRPHASE_FUTEX & 7: return GLIBC_RWLOCK_WRITER_FROM_WRPHASE;
	case GLIBC_RWLOCK_WRITERS_FUTEX & 7: return GLIBC_RWLOCK_WRITER_FROM_WRITERS;
	default: return 0;
	}
}

static bool looks_like_mutex(const struct lw_wait *w, const uint8_t *mem, size_t len, int pid_max)
{
	uint32_t word, owner, kind;

	/* __lll_lock_wait waits for 2; a robust mutex for TID | FUTEX_WAITERS */
	if ((w->uaddr & 7) || (w->val != 2 && !(w->val & FUTEX_WAITERS)))
		return false;
	return get32(mem, len, 0, &word) && word != 0 &&
	       get32(mem, len, GLIBC_MUTEX_OWNER, &owner) && plausible_tid(owner, pid_max) &&
	       get32(mem, len, GLIBC_MUTEX_KIND, &kind) && !(kind & ~GLIBC_MUTEX_KIND_BITS);
}

static bool looks_like_rwlock(const struct lw_wait *w, const uint8_t *mem, size_t len,
			      int pid_max)
{
	size_t off = rwlock_writer_off(w->uaddr);
	uint32_t writer, shared, flags;

	if (!off || !(w->val & GLIBC_RWLOCK_FUTEX_USED))
		return false;
	/* __shared is 0 or 1, __flags a rwlock kind 0..2 */
	return get32(mem, len, off, &writer) && plausible_tid(writer, pid_max) &&
	       get32(mem, len, off + GLIBC_RWLOCK_SHARED - GLIBC_RWLOCK_CUR_WRITER, &shared) &&
	       shared <= 1 &&
	       get32(mem, len, off + GLIBC_RWLOCK_FLAGS - GLIBC_RWLOCK_CUR_WRITER, &flags) &&
	       flags <= 2;
}

void lockword_decode(const struct lw_wait *w, const uint8_t *mem, size_t len, enum lw_kind hint,
		     int pid_max, struct lw_lock *l)
{
	uint32_t v;

	memset(l, 0, sizeof(*l));
	l->kind = hint;
	l->word_valid = w->word32 && get32(mem, len, 0, &l->word);
	if (w->pi) {
		l->kind = LW_KIND_PI;
		if (l->word_valid && plausible_tid(l->word & FUTEX_TID_MASK, pid_max))
			l->owner = (pid_t)(l->word & FUTEX_TID_MASK);
		return;
	}
	if (w->call == LW_CALL_FUTEX && w->cmd == FUTEX_WAIT_REQUEUE_PI)
		l->kind = LW_KIND_COND;	/* pthread_cond_wait on a PI mutex */
	/* futex_waitv wakes on any of its futexes: one owner says little */
	if (!l->word_valid || w->nr_futexes != 1) {
		if (l->kind == LW_KIND_UNKNOWN)
			l->kind = LW_KIND_FUTEX;
		return;
	}
	if (l->kind == LW_KIND_UNKNOWN) {
		if (looks_like_mutex(w, mem, len, pid_max))
			l->kind = LW_KIND_MUTEX;
		else if (looks_like_rwlock(w, mem, len, pid_max))
			l->kind = LW_KIND_RWLOCK;
		else
			l->kind = LW_KIND_FUTEX;
		l->guessed = l->kind != LW_KIND_FUTEX;
	}
	switch (l->kind) {
	case LW_KIND_MUTEX:
		if (l->word != 0 && get32(mem, len, GLIBC_MUTEX_OWNER, &v) &&
		    plausible_tid(v, pid_max))
			l->owner = (pid_t)v;
		break;
	case LW_KIND_RWLOCK: {
		size_t off = rwlock_writer_off(w->uaddr);

		if (off && get32(mem, len, off, &v) && plausible_tid(v, pid_max))
			l->owner = (pid_t)v;
		break;
	}
	case LW_KIND_JOIN:
		/* the kernel clears the word when that thread exits */
		if (plausible_tid(l->word, pid_max))
			l->owner = (pid_t)l->word;
		break;
	default:
		break;
	}
}

/*
 * Reading another process's memory: through /proc/PID/mem, not
 * process_vm_readv. process_vm_readv pins the pages it reads, and the kernel
 * copies an anonymous page still shared with a fork's child before it lets it
 * be pinned (it "unshares" it). The pages this tool reads are the parent's
 * just after a fork, so each read cost the traced process a page copy and a
 * TLB flush on every CPU it runs on; /proc/PID/mem reads the page as it is.
 *
 * One open file per process, for the few processes read last (their forks
 * come in bursts). A file reads the memory of the program that ran when it
 * was opened: once that program exec'd or exited, reads return 0 bytes, and
 * the file is opened again, for what runs under that PID now.
 */
#define MEM_FILES	8

static struct mem_file {
	pid_t pid;		/* 0: free */
	int fd;
	unsigned long used;	/* when last read (a counter): the oldest goes first */
} mem_files[MEM_FILES];
static unsigned long mem_reads;

static int mem_open(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? -ESRCH : -errno;
	return fd;
}

/* pread, with "not mapped" said as process_vm_readv says it (EFAULT). */
static ssize_t mem_pread(int fd, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, (off_t)addr);
	while (n < 0 && errno == EINTR);
	if (n >= 0)
		return n;
	return errno == EIO ? -EFAULT : -errno;
}

/* Process pid's open file: the one kept, or one opened in place of the
 * least recently read; or -errno. */
static int mem_file_of(pid_t pid)
{
	struct mem_file *f = &mem_files[0];
	int fd;

	for (int i = 0; i < MEM_FILES; i++) {
		if (mem_files[i].pid == pid) {
			f = &mem_files[i];
			goto found;
		}
		if (mem_files[i].used < f->used)
			f = &mem_files[i];
	}
	fd = mem_open(pid);
	if (fd < 0)
		return fd;
	if (f->pid)
		close(f->fd);
	f->pid = pid;
	f->fd = fd;
found:
	f->used = ++mem_reads;
	return f->fd;
}

static void mem_file_close(pid_t pid)
{
	for (int i = 0; i < MEM_FILES; i++) {
		if (mem_files[i].pid == pid) {
			close(mem_files[i].fd);
			mem_files[i] = (struct mem_file){ 0 };
		}
	}
}

static ssize_t read_procmem(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	ssize_t n = 0;

	if (addr > (uint64_t)INT64_MAX - len)
		return -EFAULT;
	if (!len)
		return 0;
	/* a second try when the program the file was opened on is gone (0
	 * bytes): with a file opened on what runs under the PID now */
	for (int try = 0; try < 2 && n == 0; try++) {
		int fd = mem_file_of(pid);

		if (fd < 0)
			return fd;
		n = mem_pread(fd, addr, buf, len);
		if (n == 0)
			mem_file_close(pid);
	}
	return n == 0 ? -ESRCH : n;
}

ssize_t lockword_read(pid_t pid, uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };
	ssize_t n = read_procmem(pid, addr, buf, len);

	if (n >= 0 || n == -ESRCH || n == -EFAULT)
		return n;
	/* /proc hidden or not mounted (hidepid, a bare container): the system
	 * call, which copies shared pages as it reads them (above) */
	n = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	return n >= 0 ? n : -errno;
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Maps, configuration and small helpers shared by the BPF programs.
 *
 * The .bpf.c files are linked into one object (bpftool gen object), so every
 * definition here is __weak: each file sees the same map, the linker keeps one.
 */
#ifndef FH_BPF_H
#define FH_BPF_H

#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "forkhazard.h"
#include "lockabi.h"

/* Set by userspace before load; the verifier prunes what they switch off. */
const volatile bool filter_pids __weak = false;	/* trace only `procs` */
const volatile bool track_locks __weak = true;	/* false with --light */
const volatile __u32 lock_stack __weak = FH_LOCK_STACK_FP;	/* enum fh_lock_stack */
const volatile __u32 request_mode __weak = FH_REQ_NONE;
/* Lock probes are on every process (--track-all): every snapshot counts.
 * Otherwise only processes flagged FH_PROC_PROBED have their locks seen. */
const volatile bool global_lock_probes __weak = false;
const volatile char comm_filter[FH_MAX_COMM_FILTERS][FH_COMM_LEN] __weak = {};
const volatile __u32 nr_comm_filters __weak = 0;
const volatile __u32 self_tgid __weak = 0;	/* never trace ourselves */
/* The governor may detach lock probes: learn the addresses of the locks whose
 * word names the holder, for the word watch (`learned`). */
const volatile bool learn_words __weak = false;
/* offsetof(struct pthread, start_routine) in the host's glibc; 0: unknown */
const volatile __u32 start_routine_off __weak = 0;

/* Bumped by userspace each time it empties the stack map: a stack id from
 * an older generation may name another stack now and is not reported. */
volatile __u32 stack_gen __weak = 0;

/* Locks held per thread. Task storage dies with its thread, so thread exit
 * needs no cleanup and a recycled TID can never inherit stale state. */
struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct fh_thread_locks);
} held_locks SEC(".maps") __weak;

/* Traced processes (with filter_pids): tgid -> struct fh_proc. Sized by
 * userspace; grows as traced processes fork, shrinks as they exit. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct fh_proc);
} procs SEC(".maps") __weak;

/* Children of multithreaded forks whose fate is not known yet. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct fh_child);
} children SEC(".maps") __weak;

/* Executables whose first multithreaded process was already reported
 * (FH_REQ_NEW_MT_EXE): bounded by LRU eviction, a re-report is harmless. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, __u8);
} seen_exes SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, FH_STACK_DEPTH * sizeof(__u64));
} stacks SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 << 20);
} events SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, FH_STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps") __weak;

static __always_inline void stat_inc(__u32 which)
{
	__u64 *v = bpf_map_lookup_elem(&stats, &which);

	if (v)
		*v += 1;	/* per-CPU: no atomic needed */
}

/* Output a fixed-size event; a full ring buffer is counted, never silent. */
static __always_inline void emit(void *ev, __u64 size)
{
	if (bpf_ringbuf_output(&events, ev, size, 0))
		stat_inc(FH_STAT_LOST);
}

#define FH_EFAULT 14	/* vmlinux.h has no errno values */
#define FH_EBUSY 16

static __always_inline __s32 user_stack_id(void *ctx)
{
	long id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

	if (id < 0 && id != -FH_EFAULT)	/* -EFAULT: no user stack at all */
		stat_inc(FH_STAT_STACKS_LOST);
	return id;
}

/* Larger than the BPF stack: built here. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fh_ustack_event);
} ustack_scratch SEC(".maps") __weak;

/*
 * Copy the current thread's user registers and the top of its user stack, for
 * the event (tid, time_ns) about to be sent. A stack shallower than the copy
 * ends in an unmapped page: fall back to smaller copies (constant sizes, as
 * the verifier wants a bounded length).
 */
static __always_inline void send_user_stack(struct pt_regs *regs, __u32 tid, __u64 time_ns)
{
	struct fh_ustack_event *ev;
	__u32 zero = 0;
	void *sp;

	ev = bpf_map_lookup_elem(&ustack_scratch, &zero);
	if (!ev || !regs)
		return;
	ev->type = FH_EV_USTACK;
	ev->pid = bpf_get_current_pid_tgid() >> 32;
	ev->tid = tid;
	ev->time_ns = time_ns;
	ev->ip = PT_REGS_IP_CORE(regs);
	ev->sp = PT_REGS_SP_CORE(regs);
	ev->bp = PT_REGS_FP_CORE(regs);
	sp = (void *)ev->sp;
	if (!bpf_probe_read_user(ev->data, FH_USTACK_BYTES, sp))
		ev->len = FH_USTACK_BYTES;
	else if (!bpf_probe_read_user(ev->data, FH_USTACK_BYTES / 4, sp))
		ev->len = FH_USTACK_BYTES / 4;
	else if (!bpf_probe_read_user(ev->data, 512, sp))
		ev->len = 512;
	else
		return;
	emit(ev, offsetof(struct fh_ustack_event, data) + (__u64)ev->len);
}

static __always_inline bool is_traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (!filter_pids)
		return true;
	return bpf_map_lookup_elem(&procs, &tgid) != NULL;
}

/*
 * Locks whose word cannot name their holder and whose releases are not
 * probed (semaphores, spinlocks): each one's newest successful acquisition in
 * its process. An exclusive lock that is taken is held by the thread that
 * took it last; a semaphore with no count left, by the thread that took the
 * last unit (posts need no probe: whoever takes it after a post becomes the
 * newest). LRU-bounded: an evicted entry leaves an old acquisition reported
 * as unconfirmed, as if nothing newer had been seen. tid 0: nobody (the
 * semaphore was destroyed).
 */
struct owner_key {
	__u32 tgid;
	__u32 _pad;
	__u64 addr;
};

struct lock_owner {
	__u32 tid;		/* initial-namespace TID of the acquirer */
	__u32 _pad;
	__u64 acquired_ns;	/* its fh_held_lock.acquired_ns */
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct owner_key);
	__type(value, struct lock_owner);
} lock_owners SEC(".maps") __weak;

/* The word watch (include/forkhazard.h): each process's glibc mutexes and
 * write locks, learned while its probes are on (LRU-bounded: a lock not taken
 * for long makes room); and, for a process the governor downgraded, the ones
 * its forks read (userspace copies them from `learned`; sized by userspace). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, struct fh_learned_key);
	__type(value, struct fh_watch_lock);
} learned SEC(".maps") __weak;

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, struct fh_watch);
} watch SEC(".maps") __weak;

/* Kinds whose holder is the newest acquirer (lock_owners). */
static __always_inline bool owner_by_newest(__u32 kind)
{
	return kind == FH_KIND_SEM || kind == FH_KIND_SPIN;
}

/*
 * Lock probe hits per traced process, per CPU, indexed by the slot its probe
 * cookies carry (slot 0: system-wide probes), for the overhead governor: a
 * hit is a trap the process paid. Sized by userspace.
 */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} lock_hits SEC(".maps") __weak;

static __always_inline void count_hit(__u64 cookie)
{
	__u32 slot = FH_COOKIE_HIT_SLOT(cookie);
	__u64 *n = bpf_map_lookup_elem(&lock_hits, &slot);

	if (n)
		*n += 1;	/* per-CPU: no atomic needed */
}

/*
 * Is user address addr of task t in memory other processes may share? What a
 * fork gives the child there is the same memory, not a copy; and a futex
 * there can be woken from another process. bpf_find_vma can fail with
 * -EBUSY (its per-CPU mmap-unlock work is pending: another BPF program on
 * this CPU called it with interrupts off, as a second forkhazard's deadlock
 * watch does on the same context switch; or t's mmap lock is taken): that
 * is MEM_UNKNOWN, never a guess either way.
 */
enum fh_memory { MEM_PRIVATE, MEM_SHARED, MEM_UNKNOWN, MEM_UNMAPPED };

#define FH_VM_SHARED	0x8
#define FH_VM_MAYSHARE	0x80

static long vma_sharing(struct task_struct *task, struct vm_area_struct *vma, void *ctx)
{
	*(enum fh_memory *)ctx = vma->vm_flags & (FH_VM_SHARED | FH_VM_MAYSHARE) ? MEM_SHARED :
										  MEM_PRIVATE;
	return 0;
}

static __always_inline enum fh_memory memory_of(struct task_struct *t, __u64 addr)
{
	enum fh_memory m = MEM_UNMAPPED;
	long err = bpf_find_vma(t, addr, vma_sharing, &m, 0);

	if (err == -FH_EBUSY)
		return MEM_UNKNOWN;
	return err ? MEM_UNMAPPED : m;
}

/*
 * A read of current's memory at a fork, tried again while the page is
 * absent. Another thread writing to a page right after the fork breaks its
 * copy-on-write: for the few microseconds that takes (the old entry
 * cleared, the TLB flushed on every CPU, the copy installed; longer in a
 * guest whose hypervisor takes the flush's IPIs) a read that may not fault
 * finds no page, and a lock word on that page, such as a mutex beside the
 * counter a worker thread updates, would go unread. Only while the address
 * is mapped, FH_SETTLE_TRIES times and FH_SETTLE_NS at most; a read that
 * never succeeds is counted (FH_STAT_WORDS_UNREAD). Not for lock probes:
 * there a failed read costs a trap per try, on the traced program's time.
 */
#define FH_SETTLE_TRIES	64
#define FH_SETTLE_NS	200000ull

struct settle_ctx {
	__u64 addr, deadline;
	__u32 size;
	bool unmapped;
	long err;
	__u8 buf[16];
};

/* One more try (a bpf_loop callback: the verifier checks it once, not once
 * per try and per call site). */
static long settle_try(__u32 i, struct settle_ctx *c)
{
	__u32 size = c->size;

	if (size > sizeof(c->buf))
		return 1;
	c->err = bpf_probe_read_user(c->buf, size, (void *)c->addr);
	if (!c->err)
		return 1;
	if (!c->deadline) {
		if (memory_of(bpf_get_current_task_btf(), c->addr) == MEM_UNMAPPED) {
			c->unmapped = true;	/* gone: freed and unmapped */
			return 1;
		}
		c->deadline = bpf_ktime_get_ns() + FH_SETTLE_NS;
	} else if (bpf_ktime_get_ns() > c->deadline) {
		return 1;
	}
	return 0;
}

/* size: a constant, at most 16 */
static __always_inline long read_user_settled(void *dst, __u32 size, __u64 addr)
{
	struct settle_ctx c = { .addr = addr, .size = size };

	if (!bpf_probe_read_user(dst, size, (void *)addr))
		return 0;
	bpf_loop(FH_SETTLE_TRIES, settle_try, &c, 0);
	if (c.err || size > sizeof(c.buf)) {
		if (!c.unmapped)
			stat_inc(FH_STAT_WORDS_UNREAD);
		return c.err ? c.err : -1;
	}
	__builtin_memcpy(dst, c.buf, size);
	return 0;
}

enum held_verdict { HELD_NO, HELD_YES, HELD_UNKNOWN };

/* at_fork: read_user_settled(); a constant where inlined */
static __always_inline __s32 read_s32(__u64 addr, bool *ok, bool at_fork)
{
	__s32 v = 0;

	*ok = (at_fork ? read_user_settled(&v, sizeof(v), addr) :
			 bpf_probe_read_user(&v, sizeof(v), (void *)addr)) == 0;
	return v;
}

/*
 * Does thread `tid` hold `l` right now, according to the lock word itself?
 * Must run in a thread of the lock's process: user reads go to current's mm.
 * This is what lets most lock kinds do without uretprobes: a thread that only
 * waited, a trylock that failed and a mutex released inside pthread_cond_wait
 * (glibc does that through internal functions we do not probe) all leave a
 * slot behind whose lock word names someone else, or nobody. HELD_UNKNOWN:
 * the word says the lock is taken but cannot say by whom.
 */
static __always_inline enum held_verdict lock_word_verdict(const struct fh_held_lock *l,
							   __u32 tid, bool at_fork)
{
	bool ok;
	__s32 w;

	switch (l->kind) {
	case FH_KIND_MUTEX:
		if (l->layout == FH_LAYOUT_MUSL) {
			/* a normal mutex stores EBUSY in _m_lock, the other
			 * types the owner's TID */
			__s32 type = read_s32(l->addr + MUSL_MUTEX_TYPE, &ok, at_fork);

			w = read_s32(l->addr + MUSL_MUTEX_LOCK, &ok, at_fork);
			if (!ok)
				return HELD_UNKNOWN;
			if (!(type & MUSL_MUTEX_TYPE_MASK))
				return w ? HELD_UNKNOWN : HELD_NO;
			return (__u32)(w & FUTEX_TID_MASK) == tid ? HELD_YES : HELD_NO;
		}
		/* glibc pthread_mutex_t: __owner (a TID), every type */
		w = read_s32(l->addr + GLIBC_MUTEX_OWNER, &ok, at_fork);
		if (!ok)
			return HELD_UNKNOWN;
		return (__u32)w == tid ? HELD_YES : HELD_NO;
	case FH_KIND_RWLOCK_WRITE:
		if (l->layout == FH_LAYOUT_MUSL) {
			w = read_s32(l->addr, &ok, at_fork);	/* _rw_lock */
			return !ok ? HELD_UNKNOWN : (w & MUSL_RWLOCK_WRITER) == MUSL_RWLOCK_WRITER ?
						   HELD_UNKNOWN : HELD_NO;
		}
		w = read_s32(l->addr + GLIBC_RWLOCK_CUR_WRITER, &ok, at_fork);
		if (!ok)
			return HELD_UNKNOWN;
		return (__u32)w == tid ? HELD_YES : HELD_NO;
	case FH_KIND_RWLOCK_READ:
		w = read_s32(l->addr, &ok, at_fork);
		if (!ok)
			return HELD_UNKNOWN;
		if (l->layout == FH_LAYOUT_MUSL)
			return (w & MUSL_RWLOCK_WRITER) && (w & MUSL_RWLOCK_WRITER) !=
			       MUSL_RWLOCK_WRITER ? HELD_UNKNOWN : HELD_NO;
		/* glibc __readers: in a write phase readers only wait */
		return (w & GLIBC_RWLOCK_WRPHASE_BIT) || !((__u32)w >> GLIBC_RWLOCK_READER_SHIFT) ?
		       HELD_NO : HELD_UNKNOWN;
	case FH_KIND_SEM:
		/* the value (lockabi.h): above 0, nobody holds it as a lock */
		w = read_s32(l->addr, &ok, at_fork);
		if (!ok)
			return HELD_UNKNOWN;
		return w > 0 ? HELD_NO : HELD_UNKNOWN;
	case FH_KIND_SPIN:
		w = read_s32(l->addr, &ok, at_fork);
		if (!ok)
			return HELD_UNKNOWN;
#if defined(__TARGET_ARCH_x86)
		if (l->layout == FH_LAYOUT_GLIBC)
			return w == GLIBC_SPIN_UNLOCKED_X86 ? HELD_NO : HELD_UNKNOWN;
#endif
		return w == 0 ? HELD_NO : HELD_UNKNOWN;
	default:
		return HELD_UNKNOWN;
	}
}

/*
 * The depth of a recursive mutex that `l` names and its holder holds, from
 * the lock word: glibc counts a recursive mutex's acquisitions in __count;
 * other types keep 0 there. Musl's mutexes are release-probed: their depth
 * is counted in the slot.
 */
static __always_inline __u32 mutex_depth(const struct fh_held_lock *l)
{
	bool ok;
	__s32 count;

	if (l->kind != FH_KIND_MUTEX || l->layout != FH_LAYOUT_GLIBC)
		return l->depth;
	count = read_s32(l->addr + GLIBC_MUTEX_COUNT, &ok, false);
	return ok && count > 1 ? (__u32)count : 1;
}

/* Does the word prove who holds it, so that its releases are not probed?
 * (Then the slot's depth is not counted either.) */
static __always_inline bool word_names_holder(const struct fh_held_lock *l)
{
	return l->layout == FH_LAYOUT_GLIBC &&
	       (l->kind == FH_KIND_MUTEX || l->kind == FH_KIND_RWLOCK_WRITE);
}

/* For a lock kind held by its newest acquirer: is slot `l` of thread tid
 * (initial namespace) that acquisition? An unknown lock (evicted from the
 * LRU) is given the benefit of the doubt. */
static __always_inline bool newest_acquirer(__u32 tgid, const struct fh_held_lock *l, __u32 tid)
{
	struct owner_key key = { .tgid = tgid, .addr = l->addr };
	struct lock_owner *o = bpf_map_lookup_elem(&lock_owners, &key);

	return !o || (o->tid == tid && o->acquired_ns == l->acquired_ns);
}

/* Remember the current thread as the newest acquirer of l. */
static __always_inline void set_newest_acquirer(__u64 pid_tgid, const struct fh_held_lock *l)
{
	struct owner_key key = { .tgid = pid_tgid >> 32, .addr = l->addr };
	struct lock_owner *o = bpf_map_lookup_elem(&lock_owners, &key);
	struct lock_owner v = { .tid = (__u32)pid_tgid, .acquired_ns = l->acquired_ns };

	if (o) {	/* in place: no LRU update for a lock taken again */
		o->tid = v.tid;
		o->acquired_ns = v.acquired_ns;
	} else {
		bpf_map_update_elem(&lock_owners, &key, &v, BPF_ANY);
	}
}

#if defined(__TARGET_ARCH_x86)
#define NR_futex	202
#define SYSCALL_NR(regs)	((regs)->orig_ax)
#elif defined(__TARGET_ARCH_arm64)
#define NR_futex	98
#define SYSCALL_NR(regs)	((regs)->syscallno)
#endif

#define FH_TASK_SLEEPING	0x3	/* TASK_INTERRUPTIBLE | TASK_UNINTERRUPTIBLE */

/* The futex word a thread is asleep on (futex(2) or futex_wait(2), any op
 * that waits), read from its saved user registers; 0 if it sleeps in none. */
static __always_inline __u64 sleeping_futex(struct task_struct *t)
{
	struct pt_regs *regs;
	long nr;

	if (!(BPF_CORE_READ(t, __state) & FH_TASK_SLEEPING))
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(t);
	if (!regs)
		return 0;
	nr = SYSCALL_NR(regs);
	if (nr != NR_futex && nr != NR_futex_wait)
		return 0;
	return PT_REGS_PARM1_CORE_SYSCALL(regs);
}

/* t's thread ID in its own (innermost) PID namespace: what the C library
 * writes into lock words (a mutex's owner) inside a container. */
static __always_inline __u32 ns_tid_of(struct task_struct *t)
{
	struct pid *pid = BPF_CORE_READ(t, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	if (!level)
		return (__u32)BPF_CORE_READ(t, pid);
	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return (__u32)up.nr;
}

/* The file name of t's executable (known even once t is gone from /proc). */
static __always_inline void exe_name_of(struct task_struct *t, char *buf, __u32 size)
{
	const unsigned char *name = BPF_CORE_READ(t, mm, exe_file, f_path.dentry, d_name.name);

	buf[0] = '\0';
	if (name)
		bpf_probe_read_kernel_str(buf, size, name);
}

/* t's process ID in its own (innermost) PID namespace: what the process
 * itself sees as getpid() inside a container. */
static __always_inline __u32 ns_tgid(struct task_struct *t)
{
	struct pid *pid = BPF_CORE_READ(t, group_leader, thread_pid);
	unsigned int level = BPF_CORE_READ(pid, level);
	struct upid up = {};

	bpf_probe_read_kernel(&up, sizeof(up), &pid->numbers[level & 31]);
	return (__u32)up.nr;
}

#endif /* FH_BPF_H */

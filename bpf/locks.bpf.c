// SPDX-License-Identifier: GPL-2.0
/*
 * Lock probes: keep, per thread, the locks it has taken and not released.
 *
 * These programs run on every lock call of every traced process, so they do
 * the least that the fork snapshot needs: no map lookups beyond the thread's
 * own storage (but for a semaphore its holder takes again, and a post by a
 * thread that did not take it: one LRU hash lookup or update, which never
 * waits), a few frames by frame pointer, the kernel's stack walk only when
 * asked for. Whether a call succeeded is, for most kinds, read from the
 * lock word at the fork (lock_word_verdict) rather than from a uretprobe;
 * only kinds whose word cannot tell a holder from a waiter (semaphores,
 * spinlocks, user-defined try-locks) confirm their acquisitions on return.
 *
 * Userspace attaches them with uprobe_multi links; the cookie of each probe
 * point carries the lock kind, its layout, the return address's place on the
 * stack and whether the return value confirms the acquisition.
 */
#include "fh.bpf.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * The callers of the caller, by frame pointer: a few 16-byte reads instead of
 * the kernel's full stack walk (bpf_get_stackid costs ~0.7 us per call here,
 * as much as the uprobe itself). Right only where the code keeps frame
 * pointers: userspace marks these frames as such and drops the implausible.
 */
static __always_inline void walk_frame_pointers(struct pt_regs *ctx, __u64 caller, __u64 *out)
{
	struct {
		__u64 next;
		__u64 ret;
	} frame;
	__u64 fp = PT_REGS_FP(ctx);
	int n = 0;

	for (int i = 0; i < FH_LOCK_FP_FRAMES; i++)
		out[i] = 0;
	for (int i = 0; i <= FH_LOCK_FP_FRAMES; i++) {
		if (n >= FH_LOCK_FP_FRAMES || !fp ||
		    bpf_probe_read_user(&frame, sizeof(frame), (void *)fp))
			break;
		/* A lock function that set up its own frame before the probe
		 * point shows the exact caller first: skip it. */
		if (!(i == 0 && frame.ret == caller))
			out[n++] = frame.ret;
		if (frame.next <= fp || frame.next - fp > (1 << 20))
			break;	/* frames live above each other, close by */
		fp = frame.next;
	}
}

/* Lock functions calling each other on the same lock (musl's lock calls its
 * timedlock, which calls its trylock; C11 mtx_lock calls pthread_mutex_lock)
 * make one call: the inner ones sit deeper on the stack, close by. */
#define NEST_MAX_BYTES	4096
/* ...and follow their outer call at once when nothing waits: a recursive
 * re-lock from a deeper frame comes later than this. */
#define NEST_MAX_NS	200000

static __always_inline __u64 ret_addr_slot(struct pt_regs *ctx, __u64 cookie)
{
	return PT_REGS_SP(ctx) + FH_COOKIE_RET_SLOT(cookie) * 8;
}

/*
 * The return address at stack address ra. A return probe placed on the same
 * function earlier (ours on a function that jumped here, another tracer's)
 * has replaced it with the uprobe trampoline: the kernel keeps the original
 * in the thread's return instances, newest first, by stack address.
 */
static __always_inline __u64 caller_of(__u64 ra)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct return_instance *ri;
	__u64 ret = 0;

	bpf_probe_read_user(&ret, sizeof(ret), (void *)ra);
	ri = BPF_CORE_READ(t, utask, return_instances);
	for (int i = 0; i < 4 && ri; i++) {
		if (BPF_CORE_READ(ri, stack) == ra)
			return BPF_CORE_READ(ri, orig_ret_vaddr);
		ri = BPF_CORE_READ(ri, next);
	}
	return ret;
}

/* Record an acquisition as it is called: what, where from, when. */
static __always_inline void describe_call(struct pt_regs *ctx, __u64 addr, __u64 cookie,
					  __u64 ra, __u64 now, struct fh_held_lock *l)
{
	l->addr = addr;
	l->kind = FH_COOKIE_KIND(cookie);
	l->layout = FH_COOKIE_LAYOUT(cookie);
	l->depth = 1;
	l->flags = FH_COOKIE_FLAGS(cookie) & FH_PROBE_TRY ? FH_HELD_TRY : 0;
	l->acquired_ns = now;
	l->caller = caller_of(ra);
	if (lock_stack == FH_LOCK_STACK_FP) {
		walk_frame_pointers(ctx, l->caller, l->fp);
	} else {
		for (int i = 0; i < FH_LOCK_FP_FRAMES; i++)
			l->fp[i] = 0;
	}
	l->stack_id = lock_stack == FH_LOCK_STACK_FULL ? user_stack_id(ctx) : -1;
	l->stack_gen = stack_gen;
}

/* Free the slots whose lock word says this thread no longer holds them:
 * failed trylocks and timed-out waits are only noticed here, when the
 * thread's table is full. Returns a free slot or -1. */
static __always_inline int reclaim_slot(struct fh_thread_locks *tl, __u32 tid)
{
	int free_slot = -1;

	for (int i = 0; i < FH_HELD_SLOTS; i++) {
		if (lock_word_verdict(&tl->slot[i], tid) == HELD_NO) {
			tl->slot[i].addr = 0;
			free_slot = i;
		}
	}
	return free_slot;
}

/* The slot this thread has for lock addr, or NULL. */
static __always_inline struct fh_held_lock *find_slot(struct fh_thread_locks *tl, __u64 addr)
{
	for (int i = 0; i < FH_HELD_SLOTS; i++)
		if (tl->slot[i].addr == addr)
			return &tl->slot[i];
	return NULL;
}

/* Does a slot for the same lock make this acquisition a recursive one? */
static __always_inline bool recursive(const struct fh_held_lock *l, __u32 tid)
{
	switch (lock_word_verdict(l, tid)) {
	case HELD_YES:
		return true;
	case HELD_NO:
		return false;	/* a retry after a failed or timed-out attempt */
	default:
		/* A musl normal mutex (EBUSY, no owner) cannot be taken twice
		 * by one thread: this is a retry. Read locks and user locks can. */
		return !(l->kind == FH_KIND_MUTEX && l->layout == FH_LAYOUT_MUSL);
	}
}

/* Put an acquisition into the thread's table. `call` may be the table's own
 * pending entry, so it is copied field by field after the slot is chosen. */
static __always_inline void hold(struct fh_thread_locks *tl, __u32 tid,
				 const struct fh_held_lock *call)
{
	struct fh_held_lock *l;
	int free_slot = -1;

	for (int i = 0; i < FH_HELD_SLOTS; i++) {
		l = &tl->slot[i];
		if (l->addr == call->addr) {
			if (call->kind == FH_KIND_SEM) {
				/* Retaken by its holder: a wake-up signal
				 * received, and nobody holds it as a lock.
				 * Otherwise another thread posted it since:
				 * this is a new acquisition. */
				if (!call->depth) {
					l->addr = 0;
					return;
				}
			} else if (recursive(l, tid)) {
				l->depth++;
				return;
			}
			free_slot = i;
			break;
		}
		if (!l->addr && free_slot < 0)
			free_slot = i;
	}
	if (call->kind == FH_KIND_SEM && !call->depth)
		return;
	if (free_slot < 0)
		free_slot = reclaim_slot(tl, tid);
	if (free_slot < 0) {
		stat_inc(FH_STAT_HELD_FULL);
		return;
	}
	l = &tl->slot[free_slot & (FH_HELD_SLOTS - 1)];
	*l = *call;
}

static __always_inline struct fh_thread_locks *thread_locks(bool create)
{
	struct fh_thread_locks *tl;

	struct task_struct *task = bpf_get_current_task_btf();

	tl = bpf_task_storage_get(&held_locks, task, NULL,
				  create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!tl && create)
		stat_inc(FH_STAT_HELD_FULL);
	/* Once per thread: lock words hold the TID a container sees. */
	if (tl && !tl->ns_tid)
		tl->ns_tid = ns_tid_of(task);
	return tl;
}

/*
 * Is this call made from inside the thread's lock call in flight on the same
 * lock? A tail call, or deeper on the stack and either the lock is not ours
 * yet (the outer call is still trying) or it is ours but the outer call has
 * just been made (a recursive re-lock passes through all the nested functions
 * at once).
 */
static __always_inline bool nested_call(struct fh_thread_locks *tl, __u64 addr, __u64 ra,
					__u64 ip, __u64 now, __u32 tid)
{
	struct fh_held_lock *l;

	if (tl->call_addr != addr)
		return false;
	/* One lock function jumping into another (musl's sem_wait into
	 * sem_timedwait, its pthread_mutex_lock into pthread_mutex_timedlock):
	 * the same return address, another function, at once. A return probe
	 * of the first has replaced that address on the stack already: the
	 * caller is known. Two calls in a row from one frame hit the same
	 * function, or come later. */
	if (ra == tl->call_ra)
		return ip != tl->call_ip && now - tl->call_ns < NEST_MAX_NS;
	if (ra > tl->call_ra || tl->call_ra - ra > NEST_MAX_BYTES)
		return false;
	l = find_slot(tl, addr);
	if (l && lock_word_verdict(l, tid) == HELD_YES && now - tl->call_ns > NEST_MAX_NS)
		return false;
	return true;
}

/* Entry of every lock function. */
SEC("uprobe")
int lock_acquire(struct pt_regs *ctx)
{
	__u64 addr = PT_REGS_PARM1(ctx), ip = PT_REGS_IP(ctx);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct fh_thread_locks *tl;
	struct fh_held_lock call, *l;
	__u64 ra, now;
	__u32 tid;

	/* --track-all probes every process, ours included: keep out of it */
	if (!addr || (__u32)(bpf_get_current_pid_tgid() >> 32) == self_tgid)
		return 0;
	tl = thread_locks(true);
	if (!tl)
		return 0;
	tid = tl->ns_tid;
	ra = ret_addr_slot(ctx, cookie);
	now = bpf_ktime_get_ns();
	if (nested_call(tl, addr, ra, ip, now, tid))
		return 0;
	tl->call_addr = addr;
	tl->call_ra = ra;
	tl->call_ip = ip;
	tl->call_ns = now;
	if (FH_COOKIE_FLAGS(cookie) & FH_PROBE_CONFIRM_RET) {
		/* Confirmed by lock_acquired() when (and if) it returns 0. */
		describe_call(ctx, addr, cookie, ra, now, &tl->pending);
		tl->pending_ra = ra;
		/* A semaphore its holder takes again, with no post by another
		 * thread since: the threading.Condition waiter pattern (taken
		 * once, then waited on until another thread posts it). What
		 * this call gets is a signal, not a lock. */
		if (FH_COOKIE_KIND(cookie) == FH_KIND_SEM) {
			l = find_slot(tl, addr);
			if (l && !sem_posted_since(bpf_get_current_pid_tgid() >> 32, l))
				tl->pending.depth = 0;
		}
		return 0;
	}
	describe_call(ctx, addr, cookie, ra, now, &call);
	hold(tl, tid, &call);
	return 0;
}

/* Return of the lock functions whose return value confirms the acquisition. */
SEC("uretprobe")
int lock_acquired(struct pt_regs *ctx)
{
	struct fh_thread_locks *tl = thread_locks(false);

	if (!tl || !tl->pending.addr)
		return 0;
	/* A lock function nested in the pending call returns: the stack
	 * pointer is still below the outer call's return address. */
	if (PT_REGS_SP(ctx) <= tl->pending_ra)
		return 0;
	if ((__s32)PT_REGS_RC(ctx) == 0)	/* an int: the upper half is not defined */
		hold(tl, tl->ns_tid, &tl->pending);
	tl->pending.addr = 0;
	if (tl->call_ra == tl->pending_ra)
		tl->call_addr = 0;	/* the outer call is over */
	return 0;
}

SEC("uprobe")
int lock_release(struct pt_regs *ctx)
{
	__u64 addr = PT_REGS_PARM1(ctx);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct fh_thread_locks *tl = thread_locks(false);

	if (tl) {
		if (tl->call_addr == addr)
			tl->call_addr = 0;	/* the next call on it is a new one */
		for (int i = 0; i < FH_HELD_SLOTS; i++) {
			struct fh_held_lock *l = &tl->slot[i];

			if (l->addr != addr)
				continue;
			if (l->depth > 1)
				l->depth--;
			else
				l->addr = 0;
			return 0;
		}
	}
	if (FH_COOKIE_KIND(cookie) == FH_KIND_SEM &&
	    (__u32)(bpf_get_current_pid_tgid() >> 32) != self_tgid) {
		/* Posted (or destroyed) by a thread that did not take it:
		 * whoever did no longer holds it (sem_posted_since() at the
		 * fork, and when its taker takes it again). */
		struct sem_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .addr = addr };
		__u64 now = bpf_ktime_get_ns();

		bpf_map_update_elem(&sem_posts, &key, &now, BPF_ANY);
	}
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Lock probes: keep, per thread, the locks it has taken and not released.
 *
 * These programs run on every lock call of every traced process, so they do
 * the least that the fork snapshot needs: no map lookups beyond the thread's
 * own storage, a few frames by frame pointer, the kernel's stack walk only
 * when asked for. Whether a call succeeded is, for most kinds, read from the
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

static __always_inline __u64 caller_of(struct pt_regs *ctx, __u64 cookie)
{
	__u64 sp = PT_REGS_SP(ctx) + FH_COOKIE_RET_SLOT(cookie) * 8;
	__u64 ret = 0;

	bpf_probe_read_user(&ret, sizeof(ret), (void *)sp);
	return ret;
}

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

/* Record an acquisition as it is called: what, where from, when. */
static __always_inline void describe_call(struct pt_regs *ctx, __u64 addr, __u64 cookie,
					  struct fh_held_lock *l)
{
	l->addr = addr;
	l->kind = FH_COOKIE_KIND(cookie);
	l->layout = FH_COOKIE_LAYOUT(cookie);
	l->depth = 1;
	l->acquired_ns = bpf_ktime_get_ns();
	l->caller = caller_of(ctx, cookie);
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
			/* A lock we have a slot for: a recursive acquisition
			 * unless the lock word proves we do not hold it (then
			 * this is a retry after a failed or timed-out attempt). */
			if (lock_word_verdict(l, tid) != HELD_NO || l->kind == FH_KIND_SEM) {
				l->depth++;
				return;
			}
			free_slot = i;
			break;
		}
		if (!l->addr && free_slot < 0)
			free_slot = i;
	}
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

	tl = bpf_task_storage_get(&held_locks, bpf_get_current_task_btf(), NULL,
				  create ? BPF_LOCAL_STORAGE_GET_F_CREATE : 0);
	if (!tl && create)
		stat_inc(FH_STAT_HELD_FULL);
	return tl;
}

/* Entry of every lock function. */
SEC("uprobe")
int lock_acquire(struct pt_regs *ctx)
{
	__u64 addr = PT_REGS_PARM1(ctx);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct fh_thread_locks *tl;
	struct fh_held_lock call;

	if (!addr)
		return 0;
	tl = thread_locks(true);
	if (!tl)
		return 0;
	if (FH_COOKIE_FLAGS(cookie) & FH_PROBE_CONFIRM_RET) {
		/* Confirmed by lock_acquired() when (and if) it returns 0. */
		describe_call(ctx, addr, cookie, &tl->pending);
		return 0;
	}
	describe_call(ctx, addr, cookie, &call);
	hold(tl, (__u32)bpf_get_current_pid_tgid(), &call);
	return 0;
}

/* Return of the lock functions whose return value confirms the acquisition. */
SEC("uretprobe")
int lock_acquired(struct pt_regs *ctx)
{
	struct fh_thread_locks *tl = thread_locks(false);

	if (!tl || !tl->pending.addr)
		return 0;
	if (PT_REGS_RC(ctx) == 0)
		hold(tl, (__u32)bpf_get_current_pid_tgid(), &tl->pending);
	tl->pending.addr = 0;
	return 0;
}

SEC("uprobe")
int lock_release(struct pt_regs *ctx)
{
	__u64 addr = PT_REGS_PARM1(ctx);
	__u64 cookie = bpf_get_attach_cookie(ctx);
	struct fh_thread_locks *tl = thread_locks(false);

	if (tl) {
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
	if (FH_COOKIE_KIND(cookie) == FH_KIND_SEM) {
		/* Posted by a thread that did not take it: whoever did no
		 * longer holds it (sem_posted_since() at the fork). */
		struct sem_key key = { .tgid = bpf_get_current_pid_tgid() >> 32, .addr = addr };
		__u64 now = bpf_ktime_get_ns();

		bpf_map_update_elem(&sem_posts, &key, &now, BPF_ANY);
	}
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Lock probes: keep, per thread, the locks it has taken and not released.
 *
 * These programs run on lock calls of traced processes, and every run is a
 * trap the process pays (~5 us on a guest whose hypervisor takes every
 * exception): so as few of them run as can, one per lock+unlock pair of a
 * mutex, an rwlock writer, a semaphore or a spinlock, and each does little
 * (its own task storage, a few user reads, one LRU lookup for a semaphore).
 *
 * - Whether a call succeeded is, for most kinds, read from the lock word at
 *   the fork (lock_word_verdict) rather than from a return probe. A glibc
 *   mutex's or write lock's word names its holder: their unlocks are not
 *   probed; a thread's records of locks it released since are stale, and are
 *   replaced when it takes the same lock again, or pruned (by re-reading
 *   their words) when its table is full.
 * - Semaphores and spinlocks are held by their newest acquirer (lock_owners
 *   in fh.bpf.h): their releases are not probed either. Their words cannot
 *   tell a holder from a waiter, so an acquisition counts only once it
 *   succeeded: at a success point (a probe on the conditional jump after the
 *   atomic instruction that took the lock, which reads ZF: one trap; a failed
 *   try never reaches it) where the function has one, else on return.
 * - Read locks are released at the reader half's success point of
 *   pthread_rwlock_unlock (writers pass elsewhere, for free), or at its
 *   entry; musl's mutexes and rwlocks (whose words name no holder) and
 *   --lock-fn locks keep their release probes.
 *
 * - In a Python process (one whose layout userspace put in py_layouts), an
 *   acquisition also records the innermost Python frames of the thread that
 *   takes the lock (python.bpf.h): what userspace names as the Python line
 *   that took it, and by which it recognizes the interpreter's own locks.
 *
 * Userspace attaches them with uprobe_multi links; the cookie of each probe
 * point carries the lock kind, its layout, the return address's place on the
 * stack, how the point tells success, and the process's hit-counter slot
 * (include/forkhazard.h).
 */
#include "fh.bpf.h"
#include "python.bpf.h"

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

/* This thread's process's Python layout, or NULL: the map is looked up
 * again only when userspace changed it since (a new generation). */
static __always_inline const struct fh_py_layout *thread_py_layout(struct fh_thread_locks *tl,
								   __u32 tgid)
{
	__u32 gen = py_layouts_gen;

	if (tl->py_gen != gen) {
		const struct fh_py_layout *l = py_layout_of(tgid);

		if (l)
			tl->py = *l;
		else
			tl->py.version = 0;
		tl->py_gen = gen;
	}
	return tl->py.version ? &tl->py : NULL;
}

/* Record an acquisition as it is called: what, where from, when, and in a
 * Python process the Python frames that take it. */
static __always_inline void describe_call(struct pt_regs *ctx, struct fh_thread_locks *tl,
					  __u64 addr, __u64 cookie, __u64 ra, __u64 now,
					  struct fh_held_lock *l)
{
	const struct fh_py_layout *py = thread_py_layout(tl, bpf_get_current_pid_tgid() >> 32);

	l->addr = addr;
	l->kind = FH_COOKIE_KIND(cookie);
	l->layout = FH_COOKIE_LAYOUT(cookie);
	l->depth = 1;
	l->flags = FH_COOKIE_FLAGS(cookie) & FH_PROBE_TRY ? FH_HELD_TRY : 0;
	l->acquired_ns = now;
	l->caller = caller_of(ra);
	if (lock_stack == FH_LOCK_STACK_FP && !(FH_COOKIE_FLAGS(cookie) & FH_PROBE_NO_FP)) {
		walk_frame_pointers(ctx, l->caller, l->fp);
	} else {
		for (int i = 0; i < FH_LOCK_FP_FRAMES; i++)
			l->fp[i] = 0;
	}
	l->stack_id = lock_stack == FH_LOCK_STACK_FULL ? user_stack_id(ctx) : -1;
	l->stack_gen = stack_gen;
	if (py) {
		py_walk_stack(py, bpf_get_current_task_btf(), &l->py);
	} else {
		l->py.n = 0;
		l->py.status = FH_PY_NOT_WALKED;
	}
}

/* When the process's lock probes were last attached (fh_proc.armed_ns): a
 * record older than that may be stale, its release made while the probes
 * were detached (the overhead governor's gap). 0: no gap known. */
static __always_inline __u64 armed_since(__u64 pid_tgid)
{
	__u32 tgid = pid_tgid >> 32;
	struct fh_proc *p = bpf_map_lookup_elem(&procs, &tgid);

	return p ? p->armed_ns : 0;
}

/* Is slot l of this thread (ns TID for words, pid_tgid for owners) known
 * not to be held any more, or not to count (taken before a gap in the
 * probes, armed_ns, where the word cannot say)? */
static __always_inline bool stale(const struct fh_held_lock *l, __u32 ns_tid, __u64 pid_tgid,
				  __u64 armed_ns)
{
	enum held_verdict v = lock_word_verdict(l, ns_tid, false);

	if (v == HELD_NO || (v != HELD_YES && l->acquired_ns < armed_ns))
		return true;
	return owner_by_newest(l->kind) && !newest_acquirer(pid_tgid >> 32, l, (__u32)pid_tgid);
}

struct reclaim_ctx {
	struct fh_thread_locks *tl;
	__u64 pid_tgid;
	__u64 armed_ns;
	int free_slot;
};

/* One slot of the reclaim (a bpf_loop callback: verified once, where an
 * inlined 16-slot loop of word reads multiplies the verifier's states). */
static long reclaim_one(__u32 i, struct reclaim_ctx *c)
{
	struct fh_held_lock *l;

	if (i >= FH_HELD_SLOTS)
		return 1;
	l = &c->tl->slot[i];
	if (stale(l, c->tl->ns_tid, c->pid_tgid, c->armed_ns)) {
		l->addr = 0;
		c->free_slot = (int)i;
	}
	return 0;
}

/* Free the slots this thread no longer holds: released locks whose unlock
 * is not probed, failed trylocks and timed-out waits are only noticed here,
 * when the thread's table is full. Returns a free slot or -1. */
static __always_inline int reclaim_slot(struct fh_thread_locks *tl, __u64 pid_tgid)
{
	struct reclaim_ctx c = { .tl = tl, .pid_tgid = pid_tgid, .free_slot = -1,
				 .armed_ns = armed_since(pid_tgid) };

	bpf_loop(FH_HELD_SLOTS, reclaim_one, &c, 0);
	return c.free_slot;
}

/* The slot of the oldest acquisition: the one to forget when every slot
 * may still be held. */
static __always_inline int oldest_slot(const struct fh_thread_locks *tl)
{
	__u64 oldest = ~0ULL;
	int slot = 0;

	for (int i = 0; i < FH_HELD_SLOTS; i++) {
		if (tl->slot[i].acquired_ns < oldest) {
			oldest = tl->slot[i].acquired_ns;
			slot = i;
		}
	}
	return slot;
}

/* Does a slot for the same lock make this acquisition a recursive one? */
static __always_inline bool recursive(const struct fh_held_lock *l, __u32 tid, __u64 pid_tgid)
{
	switch (lock_word_verdict(l, tid, false)) {
	case HELD_YES:
		return true;
	case HELD_NO:
		return false;	/* a retry after a failed or timed-out attempt */
	default:
		/* A musl normal mutex (EBUSY, no owner) cannot be taken twice
		 * by one thread: this is a retry. Read locks and user locks can,
		 * unless the slot predates a gap in the probes: its release
		 * was not seen (rare: looked up only here). */
		return !(l->kind == FH_KIND_MUTEX && l->layout == FH_LAYOUT_MUSL) &&
		       l->acquired_ns >= armed_since(pid_tgid);
	}
}

/* Kinds that can be the same lock: a read and a write lock are (a record of
 * another kind at the address is of memory reused since). */
static __always_inline bool same_family(__u32 a, __u32 b)
{
	return a == b || ((a == FH_KIND_RWLOCK_READ || a == FH_KIND_RWLOCK_WRITE) &&
			  (b == FH_KIND_RWLOCK_READ || b == FH_KIND_RWLOCK_WRITE));
}

/*
 * Put an acquisition into the thread's table. A record of the same lock is
 * either a level of recursion (its word says this thread holds it already)
 * or stale (released since, unprobed; or an attempt that failed): the new
 * acquisition replaces it, with its own time and stack. A semaphore or
 * spinlock taken again is a new acquisition too. `call` may be the table's
 * own pending entry, so it is copied after the slot is chosen.
 */
static __always_inline void hold(struct fh_thread_locks *tl, __u64 pid_tgid,
				 const struct fh_held_lock *call)
{
	struct fh_held_lock *l;
	int free_slot = -1;

	for (int i = 0; i < FH_HELD_SLOTS; i++) {
		l = &tl->slot[i];
		if (l->addr == call->addr) {
			if (same_family(l->kind, call->kind) && !owner_by_newest(call->kind) &&
			    recursive(l, tl->ns_tid, pid_tgid)) {
				/* a glibc mutex's depth is in its word */
				if (!word_names_holder(l))
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
		free_slot = reclaim_slot(tl, pid_tgid);
	if (free_slot < 0) {
		/* Every slot may still be held: forget the oldest, counted,
		 * rather than the lock just taken. */
		free_slot = oldest_slot(tl);
		stat_inc(FH_STAT_HELD_FULL);
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
 * lock (one lock function calling or jumping to another)? The outer call is
 * in flight as long as its return address is still in its place on the stack
 * (once it returns, the next call its caller makes overwrites that place; a
 * return probe may have replaced the address with the uprobe trampoline, and
 * caller_of() sees through that). A new call of the same function from the
 * same frame is a new call; so is one from a shallower frame.
 */
static __always_inline bool nested_call(struct fh_thread_locks *tl, __u64 addr, __u64 ra,
					__u64 ip)
{
	if (tl->call_addr != addr || ra > tl->call_ra)
		return false;
	if (ra == tl->call_ra && ip == tl->call_ip)
		return false;
	if (tl->call_ra - ra > NEST_MAX_BYTES)
		return false;
	return caller_of(tl->call_ra) == tl->call_ret;
}

#define X86_EFLAGS_ZF	0x40

/* One saved register, loaded at its fixed place in the context: written as
 * plain field reads, a choice among them can become a variable offset into
 * the context, which the verifier refuses. (x86-64's pt_regs is the ptrace
 * layout: its offsets never change.) */
#define CTX_REG(ctx, field) ({							\
	__u64 __v;								\
	asm volatile("%0 = *(u64 *)(%1 + %2)" : "=r"(__v)			\
		     : "r"(ctx), "i"(__builtin_offsetof(struct pt_regs, field)));	\
	__v;									\
})

/* At a success point: did the atomic instruction just before succeed (ZF),
 * and which register holds the lock's address? Returns the address, or 0 for
 * a failed attempt (its retry loop comes back here). The registers are copied
 * in their hardware order and one is picked by index: one path for the
 * verifier, where a switch is sixteen. */
static __always_inline __u64 success_point_lock(struct pt_regs *ctx, __u64 cookie)
{
#if defined(__TARGET_ARCH_x86)
	__u64 regs[16];

	if (!(CTX_REG(ctx, flags) & X86_EFLAGS_ZF))
		return 0;
	regs[0] = CTX_REG(ctx, ax);
	regs[1] = CTX_REG(ctx, cx);
	regs[2] = CTX_REG(ctx, dx);
	regs[3] = CTX_REG(ctx, bx);
	regs[4] = 0;		/* rsp is never a lock's address */
	regs[5] = CTX_REG(ctx, bp);
	regs[6] = CTX_REG(ctx, si);
	regs[7] = CTX_REG(ctx, di);
	regs[8] = CTX_REG(ctx, r8);
	regs[9] = CTX_REG(ctx, r9);
	regs[10] = CTX_REG(ctx, r10);
	regs[11] = CTX_REG(ctx, r11);
	regs[12] = CTX_REG(ctx, r12);
	regs[13] = CTX_REG(ctx, r13);
	regs[14] = CTX_REG(ctx, r14);
	regs[15] = CTX_REG(ctx, r15);
	return regs[FH_COOKIE_REG(cookie) & 15];
#else
	return 0;	/* userspace places success points on x86-64 only */
#endif
}

/* The word watch learns this lock (fh.bpf.h, `learned`): its address, and
 * where it was taken, kept up to date in place. */
static __always_inline void learn(__u64 pid_tgid, const struct fh_held_lock *l)
{
	struct fh_learned_key key = { .tgid = pid_tgid >> 32, .addr = l->addr };
	struct fh_watch_lock *w = bpf_map_lookup_elem(&learned, &key);
	struct fh_watch_lock v = { .addr = l->addr, .caller = l->caller, .kind = l->kind,
				   .layout = l->layout };

	if (w && w->caller == l->caller)
		return;		/* known, from the same place: nothing to write */
	__builtin_memcpy(v.fp, l->fp, sizeof(v.fp));
	bpf_map_update_elem(&learned, &key, &v, BPF_ANY);
}

/* Every lock acquisition probe: a function's entry (or the first point every
 * call passes), or a success point. */
SEC("uprobe")
int lock_acquire(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), pid_tgid = bpf_get_current_pid_tgid();
	bool point = FH_COOKIE_FLAGS(cookie) & FH_PROBE_ZF_SUCCESS;
	__u64 addr, ip = PT_REGS_IP(ctx), ra, now;
	struct fh_thread_locks *tl;
	struct fh_held_lock call;

	count_hit(cookie);
	/* --track-all probes every process, ours included: keep out of it */
	if ((__u32)(pid_tgid >> 32) == self_tgid)
		return 0;
	addr = point ? success_point_lock(ctx, cookie) : PT_REGS_PARM1(ctx);
	if (!addr)
		return 0;
	tl = thread_locks(true);
	if (!tl)
		return 0;
	ra = ret_addr_slot(ctx, cookie);
	now = bpf_ktime_get_ns();
	if (!point) {
		if (nested_call(tl, addr, ra, ip))
			return 0;
		tl->call_addr = addr;
		tl->call_ra = ra;
		tl->call_ip = ip;
	}
	if (FH_COOKIE_FLAGS(cookie) & FH_PROBE_CONFIRM_RET) {
		/* Confirmed by lock_acquired() when (and if) it returns 0. */
		describe_call(ctx, tl, addr, cookie, ra, now, &tl->pending);
		tl->pending_ra = ra;
		tl->call_ret = tl->pending.caller;
		return 0;
	}
	describe_call(ctx, tl, addr, cookie, ra, now, &call);
	if (!point)
		tl->call_ret = call.caller;
	hold(tl, pid_tgid, &call);
	if (owner_by_newest(call.kind))
		set_newest_acquirer(pid_tgid, &call);
	else if (learn_words && word_names_holder(&call))
		learn(pid_tgid, &call);
	return 0;
}

/* Return of the lock functions whose return value confirms the acquisition
 * (those without a success point). */
SEC("uretprobe")
int lock_acquired(struct pt_regs *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	struct fh_thread_locks *tl;

	count_hit(bpf_get_attach_cookie(ctx));
	tl = thread_locks(false);
	if (!tl || !tl->pending.addr)
		return 0;
	/* A lock function nested in the pending call returns: the stack
	 * pointer is still below the outer call's return address. */
	if (PT_REGS_SP(ctx) <= tl->pending_ra)
		return 0;
	if ((__s32)PT_REGS_RC(ctx) == 0) {	/* an int: the upper half is not defined */
		hold(tl, pid_tgid, &tl->pending);
		if (owner_by_newest(tl->pending.kind))
			set_newest_acquirer(pid_tgid, &tl->pending);
	}
	tl->pending.addr = 0;
	if (tl->call_ra == tl->pending_ra)
		tl->call_addr = 0;	/* the outer call is over */
	return 0;
}

/* Releases that are probed: read locks (at pthread_rwlock_unlock's reader
 * success point, or its entry), musl's mutexes and rwlocks, --lock-fn locks;
 * and sem_destroy (a semaphore freed while taken: a timed-out Condition
 * waiter of CPython), which makes its semaphore nobody's. */
SEC("uprobe")
int lock_release(struct pt_regs *ctx)
{
	__u64 cookie = bpf_get_attach_cookie(ctx), pid_tgid = bpf_get_current_pid_tgid();
	struct fh_thread_locks *tl;
	__u64 addr;

	count_hit(cookie);
	if ((__u32)(pid_tgid >> 32) == self_tgid)
		return 0;
	addr = FH_COOKIE_FLAGS(cookie) & FH_PROBE_ZF_SUCCESS ? success_point_lock(ctx, cookie) :
								 PT_REGS_PARM1(ctx);
	if (!addr)
		return 0;
	if (owner_by_newest(FH_COOKIE_KIND(cookie))) {
		/* destroyed: nobody's (a semaphore never taken has no entry) */
		struct owner_key key = { .tgid = pid_tgid >> 32, .addr = addr };
		struct lock_owner *o = bpf_map_lookup_elem(&lock_owners, &key);

		if (o)
			o->tid = 0;
	}
	tl = thread_locks(false);
	if (!tl)
		return 0;
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
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * Process lifecycle: the fork snapshot, the growing set of traced processes,
 * and the fate (exec, exit) of children forked from multithreaded parents.
 */
#include "fh.bpf.h"
#include "python.bpf.h"

extern int bpf_iter_task_new(struct bpf_iter_task *it, struct task_struct *task,
			     unsigned int flags) __weak __ksym;
extern struct task_struct *bpf_iter_task_next(struct bpf_iter_task *it) __weak __ksym;
extern void bpf_iter_task_destroy(struct bpf_iter_task *it) __weak __ksym;
extern struct task_struct *bpf_task_from_pid(s32 pid) __weak __ksym;
extern void bpf_task_release(struct task_struct *p) __weak __ksym;

/* The fork event is built here (it is far larger than the BPF stack), then
 * sent with only the lock entries it uses. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fh_fork_event);
} fork_scratch SEC(".maps");

/* The other threads' record, built beside the event. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fh_threads_event);
} threads_scratch SEC(".maps");

/* The child's entry of `children`, built beside the event (its watch list
 * is filled by the snapshot). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct fh_child);
} child_scratch SEC(".maps");

struct snapshot_ctx {
	struct fh_fork_event *ev;
	struct fh_child *fate;
	struct fh_thread_locks *tl;
	__u32 tid, tgid;
	__u32 ns_tid;		/* tid as the lock words have it (PID namespace) */
	__u64 waits_on;		/* the futex word the thread sleeps on, or 0 */
	__u64 armed_ns;		/* the process's lock probes attached since (fh_proc) */
	bool own;
	char comm[FH_COMM_LEN];
};

/*
 * Where a held lock's word names its holder (lock_word_verdict said
 * HELD_YES): the offset of that word, which the child's copy keeps until the
 * child re-initialises the lock. 0: none.
 */
static __always_inline __u16 holder_word(const struct fh_held_lock *h)
{
	if (h->kind == FH_KIND_MUTEX)
		return h->layout == FH_LAYOUT_MUSL ? MUSL_MUTEX_LOCK : GLIBC_MUTEX_OWNER;
	if (h->kind == FH_KIND_RWLOCK_WRITE && h->layout == FH_LAYOUT_GLIBC)
		return GLIBC_RWLOCK_CUR_WRITER;
	return 0;
}

/* A foreign lock held at the fork whose word names its holder: the child's
 * copy of that word is checked at its exit (and by userspace while it
 * lives) for a re-initialisation. */
static __always_inline void watch_in_child(struct fh_child *fate, const struct fh_held_lock *h,
					   __u32 ns_tid)
{
	__u32 n = fate->nr_watch;
	__u16 word = holder_word(h);

	if (!word || n >= FH_CHILD_WATCH)
		return;
	fate->watch[n].addr = h->addr;
	fate->watch[n].frozen = ns_tid;
	fate->watch[n].word = word;
	fate->nr_watch = n + 1;
}

/*
 * One slot of one thread into the event (a bpf_loop callback: the verifier
 * checks it once, where an inlined 16-slot loop inside the thread loop
 * explodes its state count). The counters live in the event, not in
 * registers, for the same reason.
 */
static long snapshot_slot(__u32 i, struct snapshot_ctx *c)
{
	struct fh_fork_event *ev = c->ev;
	enum held_verdict verdict;
	struct fh_held_lock *h;
	enum fh_memory mem;
	struct fh_lock *l;
	__u32 n;

	if (i >= FH_HELD_SLOTS)
		return 1;
	h = &c->tl->slot[i];
	if (!h->addr)
		return 0;
	verdict = lock_word_verdict(h, c->ns_tid, true);
	if (verdict == HELD_NO)
		return 0;	/* released, waiting, failed trylock, or inside cond_wait */
	if (verdict != HELD_YES && h->acquired_ns < c->armed_ns)
		return 0;	/* taken before a gap in the probes: released in it,
				 * or taken since by a thread the probes missed */
	if (owner_by_newest(h->kind) && !newest_acquirer(c->tgid, h, c->tid))
		return 0;	/* another thread took it since */
	if (h->kind == FH_KIND_SEM && (c->waits_on == h->addr || c->tl->pending.addr == h->addr))
		return 0;	/* its taker waits to take it again: a wake-up
				 * signal (threading.Condition), not a lock */
	/* The interpreter's own locks (a thread's sentinel, a Condition's
	 * waiters) are told by the Python frames that took them, in
	 * userspace (src/hazard.h): they are sent like any other. */
	n = ev->nr_locks;
	if ((!c->own && n - ev->nr_own >= FH_MAX_FOREIGN_LOCKS) || n >= FH_EVENT_LOCKS) {
		ev->locks_omitted++;
		return 0;
	}
	l = &ev->locks[n];
	l->addr = h->addr;
	l->acquired_ns = h->acquired_ns;
	l->caller = h->caller;
	__builtin_memcpy(l->fp, h->fp, sizeof(l->fp));
	l->stack_id = h->stack_gen == stack_gen ? h->stack_id : -1;
	l->holder_tid = c->tid;
	l->kind = h->kind;
	l->depth = verdict == HELD_YES ? mutex_depth(h) : h->depth;
	l->flags = (c->own ? FH_LOCK_OWN : 0) | (verdict == HELD_YES ? FH_LOCK_CONFIRMED : 0);
	__builtin_memcpy(l->holder_comm, c->comm, sizeof(l->holder_comm));
	/* current is the forking thread: the parent's memory map */
	mem = memory_of(bpf_get_current_task_btf(), h->addr);
	if (mem == MEM_SHARED)
		l->flags |= FH_LOCK_SHARED;
	else if (mem == MEM_UNKNOWN)
		l->flags |= FH_LOCK_SHARED_UNKNOWN;
	__builtin_memcpy(&l->py, &h->py, sizeof(l->py));
	ev->nr_locks = n + 1;
	if (c->own)
		ev->nr_own++;
	else if (mem == MEM_SHARED)
		ev->nr_shared++;
	else if (verdict == HELD_YES)
		watch_in_child(c->fate, h, c->ns_tid);
	return 0;
}

/* Copy the locks thread `t` holds into the event. */
static __always_inline void snapshot_thread(struct fh_fork_event *ev, struct fh_child *fate,
					    struct task_struct *t, bool own, __u64 armed_ns)
{
	struct snapshot_ctx c = { .ev = ev, .fate = fate, .tid = t->pid, .tgid = t->tgid,
				  .own = own, .armed_ns = armed_ns };

	c.ns_tid = ns_tid_of(t);
	c.tl = bpf_task_storage_get(&held_locks, t, NULL, 0);
	if (!c.tl)
		return;
	c.waits_on = sleeping_futex(t);
	bpf_probe_read_kernel(c.comm, sizeof(c.comm), t->comm);
	bpf_loop(FH_HELD_SLOTS, snapshot_slot, &c, 0);
}

/* Another thread of the parent, for the list of who else runs. */
static __always_inline void note_other_thread(struct fh_fork_event *ev,
					      struct fh_threads_event *others,
					      struct task_struct *t)
{
	__u32 n = ev->nr_other;
	struct fh_other_thread *o;

	if (n >= FH_MAX_OTHER_THREADS) {
		ev->other_omitted++;
		return;
	}
	o = &others->other[n];
	o->tid = t->pid;
	o->_pad = 0;
	o->pthread = thread_pointer(t);
	/* read now, in the parent's memory (current is the forking thread):
	 * userspace may find the parent gone by the time the event arrives */
	o->start = 0;
	if (start_routine_off && o->pthread)
		bpf_probe_read_user(&o->start, sizeof(o->start),
				    (void *)(o->pthread + start_routine_off));
	bpf_probe_read_kernel(o->comm, sizeof(o->comm), t->comm);
	ev->nr_other = n + 1;
}

/* Walk the parent's threads: who runs besides the forking thread, and (when
 * its locks are seen) what the child inherits: what they hold now. */
static __always_inline void snapshot_threads(struct fh_fork_event *ev, struct fh_child *fate,
					     struct fh_threads_event *others,
					     struct task_struct *parent, bool locks_seen,
					     __u64 armed_ns)
{
	struct bpf_iter_task it;
	struct task_struct *t;

	/* The walk count lives in the event: a register counter would be
	 * tracked precisely and the verifier would walk every value of it. */
	ev->walked = 0;
	bpf_iter_task_new(&it, parent, BPF_TASK_ITER_PROC_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		if (ev->walked >= FH_MAX_SNAPSHOT_THREADS) {
			ev->flags |= FH_FORK_TRUNCATED;
			break;
		}
		ev->walked++;
		if (t->pid != parent->pid)
			note_other_thread(ev, others, t);
		if (locks_seen)
			snapshot_thread(ev, fate, t, t->pid == parent->pid, armed_ns);
	}
	bpf_iter_task_destroy(&it);
}

/* ---- the word watch (include/forkhazard.h, docs/trap-free.md) ---------- */

/* Who owns learned lock l now, as its word names them (a TID in the
 * process's PID namespace), or 0: nobody, or unreadable. A word that does
 * not look taken names nobody: the memory may be another object's by now. */
static __always_inline __u32 word_owner(const struct fh_watch_lock *l)
{
	__s32 v[3];
	bool ok;

	if (l->kind == FH_KIND_MUTEX) {
		/* __lock (0 when free, whatever the type), __count, __owner */
		if (read_user_settled(v, sizeof(v), l->addr))
			return 0;
		return v[0] ? (__u32)v[GLIBC_MUTEX_OWNER / 4] : 0;
	}
	/* a write lock: in a writer's phase, __cur_writer */
	if (!(read_s32(l->addr, &ok, true) & GLIBC_RWLOCK_WRPHASE_BIT) || !ok)
		return 0;
	v[0] = read_s32(l->addr + GLIBC_RWLOCK_CUR_WRITER, &ok, true);
	return ok ? (__u32)v[0] : 0;
}

struct watch_ctx {
	struct fh_fork_event *ev;
	struct fh_watch *w;
	__u32 self;		/* the forking thread, as lock words name it */
};

/* One learned lock into the event if another thread owns it: its holder
 * named by namespace TID for now (depth 0: resolved by watch_holders). */
static long watch_one(__u32 i, struct watch_ctx *c)
{
	struct fh_fork_event *ev = c->ev;
	const struct fh_watch_lock *wl;
	struct fh_lock *l;
	__u32 owner, n;

	if (i >= FH_WATCH_LOCKS || i >= c->w->n)
		return 1;
	wl = &c->w->lock[i];
	owner = word_owner(wl);
	if (!owner || owner == c->self)
		return 0;
	n = ev->nr_locks;
	if (n >= FH_MAX_FOREIGN_LOCKS) {
		ev->locks_omitted++;
		return 0;
	}
	l = &ev->locks[n];
	l->addr = wl->addr;
	l->acquired_ns = ev->time_ns;	/* not known: held_ns 0 */
	l->caller = wl->caller;
	__builtin_memcpy(l->fp, wl->fp, sizeof(l->fp));
	l->stack_id = -1;
	l->holder_tid = owner;
	l->kind = wl->kind;
	l->flags = FH_LOCK_CONFIRMED | FH_LOCK_WATCHED;
	l->depth = 0;
	l->py.n = 0;		/* no acquisition seen: no Python frames either */
	l->py.status = FH_PY_NOT_WALKED;
	ev->nr_locks = n + 1;
	return 0;
}

struct holder_ctx {
	struct fh_fork_event *ev;
	__u32 tid, ns_tid;
	char comm[FH_COMM_LEN];
};

static long watch_holder(__u32 i, struct holder_ctx *c)
{
	struct fh_lock *l;

	if (i >= FH_EVENT_LOCKS || i >= c->ev->nr_locks)
		return 1;
	l = &c->ev->locks[i];
	if (l->depth || l->holder_tid != c->ns_tid)
		return 0;
	l->holder_tid = c->tid;
	l->depth = 1;
	__builtin_memcpy(l->holder_comm, c->comm, sizeof(l->holder_comm));
	return 0;
}

struct compact_ctx {
	struct fh_fork_event *ev;
	__u32 kept;
};

/* Keep the locks whose owner is a thread of the process (a word naming
 * anyone else is memory reused since it was learned). */
static long watch_keep(__u32 i, struct compact_ctx *c)
{
	struct fh_fork_event *ev = c->ev;
	__u32 j = c->kept;
	enum fh_memory mem;

	if (i >= FH_EVENT_LOCKS || j >= FH_EVENT_LOCKS)
		return 1;
	if (!ev->locks[i].depth)
		return 0;
	if (j != i)
		ev->locks[j] = ev->locks[i];
	/* as snapshot_slot: one in shared memory is the child's too, not a copy */
	mem = memory_of(bpf_get_current_task_btf(), ev->locks[j].addr);
	if (mem == MEM_SHARED) {
		ev->locks[j].flags |= FH_LOCK_SHARED;
		ev->nr_shared++;
	} else if (mem == MEM_UNKNOWN) {
		ev->locks[j].flags |= FH_LOCK_SHARED_UNKNOWN;
	}
	c->kept = j + 1;
	return 0;
}

/* The owners' TIDs and names: one walk of the process's threads. */
static __always_inline void watch_holders(struct fh_fork_event *ev, struct task_struct *parent)
{
	struct compact_ctx cc = { .ev = ev };
	struct holder_ctx hc = { .ev = ev };
	struct bpf_iter_task it;
	struct task_struct *t;

	bpf_iter_task_new(&it, parent, BPF_TASK_ITER_PROC_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		hc.tid = t->pid;
		hc.ns_tid = ns_tid_of(t);
		bpf_probe_read_kernel(hc.comm, sizeof(hc.comm), t->comm);
		bpf_loop(FH_MAX_FOREIGN_LOCKS, watch_holder, &hc, 0);
	}
	bpf_iter_task_destroy(&it);
	bpf_loop(FH_MAX_FOREIGN_LOCKS, watch_keep, &cc, 0);
	ev->nr_locks = cc.kept;
}

/* A downgraded process's fork: the locks of its watch that other threads
 * own. Returns false when it has no watch (nothing learned). */
static __always_inline bool watch_words(struct fh_fork_event *ev, struct task_struct *parent)
{
	__u32 tgid = parent->tgid;
	struct watch_ctx c = { .ev = ev, .self = ns_tid_of(parent) };

	c.w = bpf_map_lookup_elem(&watch, &tgid);
	if (!c.w)
		return false;
	bpf_loop(FH_WATCH_LOCKS, watch_one, &c, 0);
	if (ev->nr_locks)
		watch_holders(ev, parent);
	return true;
}

/*
 * Which of c0..c3 (TIDs read from a lock word, most trusted first; 0: none)
 * names a thread of process `pid`? Returns that thread's TID as the tool
 * reports TIDs (initial namespace), or 0. The words hold TIDs as the
 * process's PID namespace numbers them, and each thread is compared by that
 * number (ns_tid_of). For futex.bpf.c's deadlocks, once per child.
 *
 * One walk of the threads rather than bpf_task_from_vpid(): that kfunc only
 * exists from Linux 6.13, and libbpf 1.1 cannot leave a missing one
 * unresolved without CAP_SYS_ADMIN. A global function here, not a static
 * one there, because the BPF linker fails on a kfunc declared in two
 * objects. Verified on its own: scalars in, a scalar out.
 */
__noinline __u32 thread_by_ns_tid(__u32 pid, __u32 c0, __u32 c1, __u32 c2, __u32 c3)
{
	struct task_struct *proc, *t;
	struct bpf_iter_task it;
	__u32 f0 = 0, f1 = 0, f2 = 0, f3 = 0;

	if (!(c0 | c1 | c2 | c3))
		return 0;
	proc = bpf_task_from_pid(pid);
	if (!proc)
		return 0;	/* gone, and its threads with it */
	bpf_iter_task_new(&it, proc, BPF_TASK_ITER_PROC_THREADS);
	while ((t = bpf_iter_task_next(&it))) {
		__u32 ns_tid = ns_tid_of(t);

		if (!ns_tid)
			continue;
		if (ns_tid == c0)
			f0 = t->pid;
		if (ns_tid == c1)
			f1 = t->pid;
		if (ns_tid == c2)
			f2 = t->pid;
		if (ns_tid == c3)
			f3 = t->pid;
	}
	bpf_iter_task_destroy(&it);
	bpf_task_release(proc);
	return f0 ? f0 : f1 ? f1 : f2 ? f2 : f3;
}

static __always_inline void request_probes(__u32 pid)
{
	struct fh_probe_request req = { .type = FH_EV_PROBE_REQUEST, .pid = pid };

	emit(&req, sizeof(req));
}

/* Adaptive mode: ask once for lock probes on process tgid. */
static __always_inline void request_probes_once(__u32 tgid)
{
	struct fh_proc requested = { .flags = FH_PROC_REQUESTED };

	/* NOEXIST: a process already probed or asked for is not asked again. */
	if (bpf_map_update_elem(&procs, &tgid, &requested, BPF_NOEXIST) == 0)
		request_probes(tgid);
}

static __always_inline bool comm_wanted(struct task_struct *p)
{
	char comm[FH_COMM_LEN];

	if (!nr_comm_filters)
		return false;
	bpf_probe_read_kernel(comm, sizeof(comm), p->comm);
	for (__u32 f = 0; f < FH_MAX_COMM_FILTERS; f++) {
		bool same = true;

		if (f >= nr_comm_filters)
			break;
		for (int i = 0; i < FH_COMM_LEN; i++) {
			if (comm[i] != comm_filter[f][i]) {
				same = false;
				break;
			}
			if (!comm[i])
				break;
		}
		if (same)
			return true;
	}
	return false;
}

/* A thread was created in `parent`'s process: ask userspace for lock probes
 * if this process (or executable) does not have them yet. */
static __always_inline void on_new_thread(struct task_struct *parent)
{
	__u32 tgid = parent->tgid;

	if (request_mode == FH_REQ_TRACED_THREADS) {
		struct fh_proc *p = bpf_map_lookup_elem(&procs, &tgid);

		if (!p || (p->flags & (FH_PROC_REQUESTED | FH_PROC_NOLIB | FH_PROC_GOVERNED)))
			return;
		if ((p->flags & FH_PROC_PROBED) && !(p->flags & FH_PROC_EXECED))
			return;
		__sync_fetch_and_or(&p->flags, FH_PROC_REQUESTED);
		request_probes(tgid);
	} else if (request_mode == FH_REQ_NEW_MT_EXE) {
		struct inode *exe;
		__u64 key;
		__u8 one = 1;

		if (tgid == self_tgid || parent->signal->nr_threads != 2)
			return;	/* only the process's first extra thread */
		exe = BPF_CORE_READ(parent, mm, exe_file, f_inode);
		key = BPF_CORE_READ(exe, i_ino) ^ ((__u64)BPF_CORE_READ(exe, i_sb, s_dev) << 40);
		if (bpf_map_update_elem(&seen_exes, &key, &one, BPF_NOEXIST))
			return;
		request_probes(tgid);
	}
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 tgid = parent->tgid, child_tgid = child->tgid, zero = 0;
	const struct fh_py_layout *py;
	struct py_walk_scratch *py_s;
	struct fh_fork_event *ev;
	struct fh_threads_event *others;
	struct fh_child *fate;
	__u32 untracked = 0;	/* FH_FORK_* reason when the locks are not seen */
	__u32 py_n;
	__u64 now, size, armed_ns = 0;
	bool locks_seen;

	if (child_tgid == tgid) {
		on_new_thread(parent);
		return 0;
	}
	if (!is_traced(tgid))
		return 0;
	if (filter_pids) {
		struct fh_proc traced = { .flags = FH_PROC_TRACED };

		if (bpf_map_update_elem(&procs, &child_tgid, &traced, BPF_ANY))
			stat_inc(FH_STAT_PROCS_FULL);
	}
	/* vfork and posix_spawn (CLONE_VM) share the parent's memory: nothing
	 * is copied, nothing is inherited, the child is not a fork hazard. */
	if (child->mm == parent->mm)
		return 0;
	stat_inc(FH_STAT_FORKS);
	if (parent->signal->nr_threads < 2)
		return 0;	/* single-threaded: no other thread can hold a lock */
	stat_inc(FH_STAT_MT_FORKS);

	/* Are this process's locks seen? Then the snapshot says what the
	 * child inherits; otherwise the event says "not tracked" (null),
	 * never "nothing held". */
	if (track_locks && !global_lock_probes) {
		struct fh_proc *proc = bpf_map_lookup_elem(&procs, &tgid);

		locks_seen = proc && (proc->flags & FH_PROC_PROBED);
		if (proc)
			armed_ns = proc->armed_ns;
		if (!locks_seen)
			untracked = !proc ? FH_FORK_UNPROBED :
				    proc->flags & FH_PROC_GOVERNED ? FH_FORK_GOVERNED :
				    proc->flags & FH_PROC_NOLIB ? FH_FORK_NOLIB : FH_FORK_UNPROBED;
		/* Code that forks while multithreaded forks again (pools,
		 * servers, test runners): track its locks from now on. */
		if (!locks_seen && request_mode == FH_REQ_MT_FORK)
			request_probes_once(tgid);
	} else {
		locks_seen = track_locks;
	}

	ev = bpf_map_lookup_elem(&fork_scratch, &zero);
	fate = bpf_map_lookup_elem(&child_scratch, &zero);
	others = bpf_map_lookup_elem(&threads_scratch, &zero);
	if (!ev || !fate || !others)
		return 0;
	__builtin_memset(fate, 0, sizeof(*fate));
	now = bpf_ktime_get_ns();
	ev->type = FH_EV_FORK;
	ev->pid = tgid;
	ev->tid = parent->pid;
	ev->child_pid = child_tgid;
	ev->time_ns = now;
	ev->threads = parent->signal->nr_threads;
	ev->ppid = BPF_CORE_READ(parent, real_parent, tgid);
	ev->nr_locks = 0;
	ev->nr_own = 0;
	ev->nr_shared = 0;
	ev->locks_omitted = 0;
	ev->nr_other = 0;
	ev->other_omitted = 0;
	ev->_pad = 0;
	ev->flags = locks_seen ? 0 : FH_FORK_LIGHT | untracked;
	ev->stack_id = user_stack_id(ctx);
	bpf_probe_read_kernel(ev->comm, sizeof(ev->comm), parent->comm);
	ev->cgroup_id = bpf_get_current_cgroup_id();
	ev->ns_pid = ns_tgid(parent);
	ev->ns_child_pid = ns_tgid(child);
	exe_name_of(parent, ev->exe_name, sizeof(ev->exe_name));
	/* the forking thread (current) in Python: where it called fork, and
	 * deeper, FH_PY_FORK_FRAMES in all: the user's call below which a
	 * library forked; py_outer[k] only when the stack before it is full */
	py = py_layout_of(tgid);
	py_s = py ? py_walk_scratch() : NULL;
	py_n = py_s ? py_walk(py, parent, py_s, FH_PY_FORK_FRAMES) : 0;
	if (py_s) {
		py_stack_of_walk(&ev->py, py_s, py_n, 0);
	} else {
		ev->py.n = 0;
		ev->py.status = FH_PY_NOT_WALKED;
	}
	for (int k = 0; k < FH_PY_FORK_OUTER; k++) {
		if (py_s && py_n >= (__u32)(k + 1) * FH_PY_FRAMES) {
			py_stack_of_walk(&ev->py_outer[k], py_s, py_n, (__u32)(k + 1) * FH_PY_FRAMES);
		} else {
			ev->py_outer[k].n = 0;
			ev->py_outer[k].status = FH_PY_NOT_WALKED;
		}
	}
	snapshot_threads(ev, fate, others, parent, locks_seen, armed_ns);
	if (!locks_seen && untracked == FH_FORK_GOVERNED && watch_words(ev, parent))
		ev->flags = FH_FORK_GOVERNED | FH_FORK_WATCHED;

	fate->fork_ns = now;
	fate->parent_pid = tgid;
	if (bpf_map_update_elem(&children, &child_tgid, fate, BPF_ANY))
		stat_inc(FH_STAT_CHILDREN_FULL);

	/* Who else runs, first: userspace asks the parent about them as
	 * this arrives, before it spends time on the stack copy. */
	if (ev->nr_other) {
		others->type = FH_EV_THREADS;
		others->pid = tgid;
		others->tid = ev->tid;
		others->nr = ev->nr_other;
		others->time_ns = now;
		size = offsetof(struct fh_threads_event, other) +
		       (__u64)ev->nr_other * sizeof(struct fh_other_thread);
		if (size > sizeof(*others))
			size = sizeof(*others);
		emit(others, size);
	}

	/* A hazard's fork call deserves a full stack: glibc has no frame
	 * pointers, so userspace unwinds this copy with CFI. */
	if (FH_FORK_FOREIGN_LOCKS(ev))
		send_user_stack((struct pt_regs *)bpf_task_pt_regs(parent), ev->tid, now);

	/* Send only the lock entries in use. */
	size = offsetof(struct fh_fork_event, locks) + (__u64)ev->nr_locks * sizeof(struct fh_lock);
	if (size > sizeof(*ev))
		size = sizeof(*ev);
	if (bpf_ringbuf_output(&events, ev, size, 0)) {
		stat_inc(FH_STAT_LOST);
		stat_inc(FH_STAT_FORKS_LOST);	/* the summary accounts for every fork */
		/* never judged: counted as a hazard (userspace counts the
		 * ones it receives, by src/hazard.h's predicate) */
		if (FH_FORK_FOREIGN_LOCKS(ev))
			stat_inc(FH_STAT_HAZARDS_LOST);
	}
	return 0;
}

/*
 * The exiting child's (current's) copies of its watched locks: those whose
 * word no longer names the parent's holder were re-initialised. On kernels
 * that trace the exit after the memory is gone, the reads fail: nothing is
 * claimed.
 */
static __always_inline void reinitialized_at_exit(const struct fh_child *c,
						  struct fh_child_event *ev)
{
	for (int i = 0; i < FH_CHILD_WATCH; i++) {
		const struct fh_lock_watch *w = &c->watch[i];
		__u32 word;

		if (i >= c->nr_watch)
			break;
		if (bpf_probe_read_user(&word, sizeof(word), (void *)(w->addr + w->word)))
			continue;
		if ((word & FUTEX_TID_MASK) != w->frozen)
			ev->reinit[ev->nr_reinit++ & (FH_CHILD_WATCH - 1)] = w->addr;
	}
}

static __always_inline void child_decided(__u32 pid, __u32 outcome, __s32 exit_code)
{
	struct fh_child *c = bpf_map_lookup_elem(&children, &pid);
	struct fh_child_event ev = { .type = FH_EV_CHILD, .pid = pid, .outcome = outcome };

	if (!c)
		return;
	if (!(c->flags & FH_CHILD_DECIDED)) {
		ev.parent_pid = c->parent_pid;
		ev.fork_ns = c->fork_ns;
		ev.time_ns = bpf_ktime_get_ns();
		ev.exit_code = exit_code;
		if (outcome == FH_CHILD_EXIT)
			reinitialized_at_exit(c, &ev);
		emit(&ev, sizeof(ev));
	}
	bpf_map_delete_elem(&children, &pid);
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;

	/* The old program's locks are gone with its memory, and so is its
	 * interpreter, if it had one. */
	if (track_locks)
		bpf_task_storage_delete(&held_locks, p);
	py_forget(tgid);
	if (learn_words)
		bpf_map_delete_elem(&watch, &tgid);
	child_decided(tgid, FH_CHILD_EXEC, 0);
	if (filter_pids) {
		struct fh_proc *proc = bpf_map_lookup_elem(&procs, &tgid);

		/* The probes stay (they follow the library, not the program),
		 * but the new program may map another C library: check again
		 * when it makes its first thread. */
		if (proc)
			proc->flags = (proc->flags & (FH_PROC_TRACED | FH_PROC_PROBED)) |
				      FH_PROC_EXECED;
	} else if (request_mode == FH_REQ_MT_FORK) {
		/* A new program starts untracked, unless named by --comm. */
		bpf_map_delete_elem(&procs, &tgid);
		if (comm_wanted(p))
			request_probes_once(tgid);
	}
	return 0;
}

/*
 * Only the task argument: `group_dead` became the tracepoint's second one in
 * Linux 6.16, and reading it where it does not exist fails the load. do_exit()
 * has already counted this thread out of signal->live here, on every kernel;
 * zero means the last thread is going. (Two threads exiting at once may both
 * read zero: deciding the child twice is harmless, the first wins.)
 */
SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (p->signal->live.counter)
		return 0;	/* thread exit: its task storage goes with it */
	child_decided(tgid, FH_CHILD_EXIT, p->exit_code);
	py_forget(tgid);
	if (filter_pids || request_mode == FH_REQ_MT_FORK)
		bpf_map_delete_elem(&procs, &tgid);
	if (learn_words)
		bpf_map_delete_elem(&watch, &tgid);
	return 0;
}

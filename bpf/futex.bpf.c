// SPDX-License-Identifier: GPL-2.0
/*
 * Confirmed deadlocks: the only thread of a child forked from a multithreaded
 * parent blocks, without a timeout, on a process-private futex. No thread
 * exists that could wake it, whatever the lock is (mutex, rwlock, semaphore,
 * a Python lock, glibc's own locks): it needs no lock probes at all.
 */
#include "fh.bpf.h"
#include "python.bpf.h"

/* fork.bpf.c: the thread of a process by the TID its namespace gives it. */
extern __u32 thread_by_ns_tid(__u32 pid, __u32 c0, __u32 c1, __u32 c2, __u32 c3);

/* NR_futex and SYSCALL_NR: fh.bpf.h; NR_futex_waitv, NR_futex_wait and the
 * futex flags: lockabi.h */
#define WAITV_MAX		8	/* futex_waitv vectors checked in full */

static __always_inline __u32 read_u32(__u64 addr)
{
	__u32 v = 0;

	bpf_probe_read_user(&v, sizeof(v), (void *)addr);
	return v;
}

/* A TID as a lock word can hold one: 0 otherwise. */
static __always_inline __u32 tid_or_0(__u32 v)
{
	return v && v <= FUTEX_TID_MASK ? v : 0;
}

/*
 * Who owns the lock whose futex word is at `uaddr`, by the layouts we know
 * (lockabi.h): a glibc mutex's __owner, seen from its __lock word; a glibc
 * rwlock's __cur_writer, seen from __wrphase_futex or __writers_futex; musl's
 * recursive, error-checking and robust mutexes keep the owner's TID in the
 * futex word itself (_m_lock), with the waiters bit set by the waiter. A candidate only
 * counts when it names a thread of the parent, so a word of another layout
 * does not invent an owner. Semaphores, read locks, musl's normal mutexes
 * and rwlocks name nobody: null.
 */
static __always_inline __u32 owner_from_layout(__u64 uaddr, __u32 parent_pid)
{
	__u32 w = read_u32(uaddr), musl = 0;

	if ((w & FUTEX_WAITERS) && (w & FUTEX_TID_MASK) > 1)
		musl = w & FUTEX_TID_MASK;
	return thread_by_ns_tid(parent_pid, tid_or_0(read_u32(uaddr + GLIBC_MUTEX_OWNER)),
				tid_or_0(read_u32(uaddr + GLIBC_RWLOCK_WRITER_FROM_WRPHASE)),
				tid_or_0(read_u32(uaddr + GLIBC_RWLOCK_WRITER_FROM_WRITERS)), musl);
}

/* Would this futex(2) call block forever? Sets *uaddr and *pi; *unsure when
 * that depends on memory that could not be looked up (fh.bpf.h memory_of). */
static __always_inline bool futex_blocks_forever(struct pt_regs *regs, __u64 *uaddr, __u32 *op,
						 bool *pi, bool *unsure)
{
	__u32 cmd;

	*uaddr = PT_REGS_PARM1_SYSCALL(regs);
	*op = PT_REGS_PARM2_SYSCALL(regs);
	if (PT_REGS_PARM4_SYSCALL(regs))	/* a timeout */
		return false;
	/*
	 * A wait without FUTEX_PRIVATE_FLAG is process-private all the same
	 * when the word is in memory no other process shares: the kernel keys
	 * a futex in a private anonymous (or copied-on-write) page by this
	 * process's mm. glibc waits that way on robust mutexes (the kernel's
	 * robust-list code never wakes with the private flag), whatever memory
	 * they are in. This runs with interrupts off, where bpf_find_vma needs
	 * its per-CPU work free: a second forkhazard's watch on the same
	 * switch takes it first, and the answer is "unknown", for userspace.
	 */
	if (!(*op & FUTEX_PRIVATE_FLAG)) {
		enum fh_memory m = memory_of(bpf_get_current_task_btf(), *uaddr);

		if (m == MEM_UNKNOWN)
			*unsure = true;
		else if (m != MEM_PRIVATE)
			return false;	/* shared, or no memory at all */
	}
	cmd = *op & ~(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
	if (cmd == FUTEX_LOCK_PI || cmd == FUTEX_LOCK_PI2) {
		*pi = true;
		return true;
	}
	if (cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET)
		return false;
	/* The kernel returns EAGAIN at once if the word has already changed. */
	return read_u32(*uaddr) == (__u32)PT_REGS_PARM3_SYSCALL(regs);
}

/* futex_wait(uaddr, val, mask, flags, timeout, clockid), the futex2 call. */
static __always_inline bool futex2_blocks_forever(struct pt_regs *regs, __u64 *uaddr)
{
	__u64 flags = PT_REGS_PARM4_SYSCALL(regs);

	*uaddr = PT_REGS_PARM1_SYSCALL(regs);
	if (!(flags & FUTEX2_PRIVATE) || PT_REGS_PARM5_SYSCALL(regs))
		return false;
	if ((flags & FUTEX2_SIZE_MASK) != FUTEX2_SIZE_U32)
		return true;	/* other sizes: cannot compare, assume it waits */
	return read_u32(*uaddr) == (__u32)PT_REGS_PARM2_SYSCALL(regs);
}

/* futex_waitv(waiters, nr, flags, timeout, clockid): blocks forever when no
 * timeout is given and every word is private and still holds its value. */
static __always_inline bool futex_waitv_blocks_forever(struct pt_regs *regs, __u64 *uaddr)
{
	struct futex_waitv w;
	__u64 vec = PT_REGS_PARM1_SYSCALL(regs);
	__u32 nr = PT_REGS_PARM2_SYSCALL(regs);

	if (PT_REGS_PARM4_SYSCALL(regs) || !nr || nr > WAITV_MAX)
		return false;
	for (int i = 0; i < WAITV_MAX; i++) {
		if (i >= nr)
			break;
		if (bpf_probe_read_user(&w, sizeof(w), (void *)(vec + i * sizeof(w))))
			return false;
		if (!(w.flags & FUTEX2_PRIVATE))
			return false;
		if ((w.flags & FUTEX2_SIZE_MASK) == FUTEX2_SIZE_U32 &&
		    read_u32(w.uaddr) != (__u32)w.val)
			return false;
		if (i == 0)
			*uaddr = w.uaddr;
	}
	return true;
}

/*
 * The watch sits where a task goes to sleep, not on every system call's
 * entry: a sys_enter program puts every system call of the machine on the
 * kernel's tracing slow path (some 75 ns each, in every process), while
 * context switches are far rarer and cost here two register tests, then a
 * map lookup for the ones that sleep. A task that sleeps in a futex call
 * has that call's number and arguments in its saved user registers, as they
 * were at entry; this runs in its context still (current is prev).
 */
SEC("tp_btf/sched_switch")
int BPF_PROG(on_sleep, bool preempt, struct task_struct *prev, struct task_struct *next,
	     unsigned int prev_state)
{
	struct fh_deadlock_event ev = { .type = FH_EV_DEADLOCK };
	const struct fh_py_layout *py;
	struct task_struct *task = prev;
	struct pt_regs *regs;
	struct fh_child *c;
	__u64 uaddr = 0;
	__u32 op = 0;
	bool pi = false, unsure = false, forever;
	__u32 tgid;
	long id;

	/* Every context switch of the machine passes here, cheapest tests
	 * first: preempted and still-runnable tasks wait for nothing; in a
	 * process of several threads another could still release the lock
	 * (and most sleeping tasks of a busy machine are such threads). */
	if (preempt || !prev_state)
		return 0;
	if (task->signal->nr_threads != 1)
		return 0;
	tgid = task->tgid;
	c = bpf_map_lookup_elem(&children, &tgid);
	if (!c || (c->flags & FH_CHILD_DECIDED))
		return 0;
	regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (!regs)
		return 0;
	id = SYSCALL_NR(regs);
	if (id != NR_futex && id != NR_futex_wait && id != NR_futex_waitv)
		return 0;

	if (id == NR_futex)
		forever = futex_blocks_forever(regs, &uaddr, &op, &pi, &unsure);
	else if (id == NR_futex_wait)
		forever = futex2_blocks_forever(regs, &uaddr);
	else
		forever = futex_waitv_blocks_forever(regs, &uaddr);
	if (!forever)
		return 0;

	if (unsure) {
		/* userspace decides (and counts) from /proc/PID/maps; once
		 * per futex word, however often the child sleeps on it */
		if (c->unsure_futex == uaddr)
			return 0;
		c->unsure_futex = uaddr;
		ev.flags |= FH_DL_MEMORY_UNKNOWN;
	} else {
		c->flags |= FH_CHILD_DECIDED;
		stat_inc(FH_STAT_DEADLOCKS);
	}
	ev.pid = tgid;
	ev.tid = task->pid;
	ev.parent_pid = c->parent_pid;
	ev.time_ns = bpf_ktime_get_ns();
	ev.fork_ns = c->fork_ns;
	ev.futex = uaddr;
	ev.syscall = id;
	ev.op = op;
	if (pi) {
		ev.flags |= FH_DL_PI;
		ev.owner_tid = thread_by_ns_tid(c->parent_pid,
						tid_or_0(read_u32(uaddr) & FUTEX_TID_MASK), 0, 0, 0);
	} else {
		ev.owner_tid = owner_from_layout(uaddr, c->parent_pid);
	}
	if (ev.owner_tid)
		ev.flags |= FH_DL_OWNER_KNOWN;
	ev.stack_id = user_stack_id(ctx);
	bpf_probe_read_kernel(ev.comm, sizeof(ev.comm), task->comm);
	ev.cgroup_id = bpf_get_current_cgroup_id();
	ev.ns_pid = ns_tgid(task);
	exe_name_of(task, ev.exe_name, sizeof(ev.exe_name));
	/* where it waits in Python: the child is a copy of its parent, whose
	 * layout holds (ev.py is zeroed: not walked without one) */
	py = py_layout_of(c->parent_pid);
	if (py)
		py_walk_stack(py, task, &ev.py);
	send_user_stack(regs, ev.tid, ev.time_ns);
	emit(&ev, sizeof(ev));
	return 0;
}

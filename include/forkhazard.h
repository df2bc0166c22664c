/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forkhazard.h - what the kernel side tells userspace, and the limits both
 * sides agree on. Included by bpf/ and src/: fixed-width __u32/__u64 only,
 * no libc types. Every event starts with a __u32 type tag (enum fh_event_type).
 */
#ifndef FORKHAZARD_H
#define FORKHAZARD_H

#ifndef __VMLINUX_H__		/* userspace; the BPF side has vmlinux.h */
#include <linux/types.h>
#endif

#define FH_COMM_LEN		16
/* An executable's file name as the kernel sends it (truncated). */
#define FH_EXE_NAME_LEN		32
/* Locks one thread can be tracked holding at once (a power of two). */
#define FH_HELD_SLOTS		16
/* Foreign locks copied into one fork event; more are counted as omitted. */
#define FH_MAX_FOREIGN_LOCKS	128
/* Room for the foreign locks plus every lock of the forking thread. */
#define FH_EVENT_LOCKS		(FH_MAX_FOREIGN_LOCKS + FH_HELD_SLOTS)
/* Threads walked per fork snapshot; a larger process is flagged truncated. */
#define FH_MAX_SNAPSHOT_THREADS	16384
/* Frames kept per user stack in the stack map. */
#define FH_STACK_DEPTH		32
/* Frame-pointer frames recorded with each acquisition (after the exact caller). */
#define FH_LOCK_FP_FRAMES	4
/* Python frames recorded with an acquisition, a fork call or a deadlocked
 * wait (innermost first), in processes whose struct fh_py_layout is known. */
#define FH_PY_FRAMES		4
/* A fork event's Python frames go deeper: FH_PY_FORK_OUTER stacks of
 * FH_PY_FRAMES more beyond its first (16 in all), so that the user's call
 * below which a library forks (multiprocessing's Pool: 9 frames of the
 * standard library) is among them. */
#define FH_PY_FORK_OUTER	3
#define FH_PY_FORK_FRAMES	(FH_PY_FRAMES * (1 + FH_PY_FORK_OUTER))

/* How much stack each lock acquisition records (the lock_stack rodata switch). */
enum fh_lock_stack {
	FH_LOCK_STACK_CALLER,	/* the exact caller only */
	FH_LOCK_STACK_FP,	/* + FH_LOCK_FP_FRAMES frames walked by frame pointer */
	FH_LOCK_STACK_FULL,	/* + the kernel's user stack walk (stack map) */
};

enum fh_event_type {
	FH_EV_FORK = 1,		/* struct fh_fork_event */
	FH_EV_CHILD,		/* struct fh_child_event */
	FH_EV_DEADLOCK,		/* struct fh_deadlock_event */
	FH_EV_PROBE_REQUEST,	/* struct fh_probe_request */
	FH_EV_USTACK,		/* struct fh_ustack_event */
	FH_EV_REINIT,		/* struct fh_reinit_event */
	FH_EV_THREADS,		/* struct fh_threads_event */
};

/* A new kind is one line here, one row in src/probes.c's table and, when
 * its lock word can prove ownership, one case in bpf/fh.bpf.h's
 * lock_word_verdict (its layout in lockabi.h). */
enum fh_lock_kind {
	FH_KIND_NONE = 0,
	FH_KIND_MUTEX,
	FH_KIND_RWLOCK_READ,
	FH_KIND_RWLOCK_WRITE,
	FH_KIND_SEM,
	FH_KIND_SPIN,
	FH_KIND_CUSTOM,
	FH_KIND_MAX,
};

/* Whose lock words these are: the same kind is laid out differently. */
enum fh_layout {
	FH_LAYOUT_GLIBC = 0,
	FH_LAYOUT_MUSL,
};

/*
 * The uprobe cookie of a lock probe, set by userspace per probe point:
 *   bits 0-7   enum fh_lock_kind
 *   bits 8-15  distance from the stack pointer to the return address at the
 *              probe point, in 8-byte words (0 at a function's entry)
 *   bits 16-23 enum fh_layout
 *   bits 24-31 FH_PROBE_* flags
 *   bits 32-39 with FH_PROBE_ZF_SUCCESS: the x86-64 register number holding
 *              the lock's address at the point (0 rax, 1 rcx, 2 rdx, 3 rbx,
 *              4 rsp, 5 rbp, 6 rsi, 7 rdi, 8-15 r8-r15); otherwise 0 and the
 *              address is the first argument
 *   bits 40-63 the process's slot in the `lock_hits` map (0: not counted
 *              per process: a system-wide probe)
 */
#define FH_PROBE_CONFIRM_RET	0x1	/* the acquisition counts only if it returns 0 */
#define FH_PROBE_TRY		0x2	/* a try function: never waits */
/* A success point (src/placement.h): a conditional jump right after the
 * atomic instruction that takes (or, for a release probe, releases) the lock;
 * the operation happened exactly when ZF is set. */
#define FH_PROBE_ZF_SUCCESS	0x4
/* %rbp is not the caller's frame pointer at this point (a success point
 * inside code that uses it for data): record no frame-pointer frames. */
#define FH_PROBE_NO_FP		0x8

#define FH_COOKIE(kind, ret_slot, layout, flags) \
	((__u64)(kind) | ((__u64)(ret_slot) << 8) | ((__u64)(layout) << 16) | ((__u64)(flags) << 24))
#define FH_COOKIE_REG_SHIFT		32
#define FH_COOKIE_HIT_SLOT_SHIFT	40
#define FH_COOKIE_KIND(c)		((__u32)((c) & 0xff))
#define FH_COOKIE_RET_SLOT(c)		((__u32)(((c) >> 8) & 0xff))
#define FH_COOKIE_LAYOUT(c)		((__u32)(((c) >> 16) & 0xff))
#define FH_COOKIE_FLAGS(c)		((__u32)(((c) >> 24) & 0xff))
#define FH_COOKIE_REG(c)		((__u32)(((c) >> FH_COOKIE_REG_SHIFT) & 0xff))
#define FH_COOKIE_HIT_SLOT(c)		((__u32)((c) >> FH_COOKIE_HIT_SLOT_SHIFT))
/* Per-process hit slots the cookie can name (24 bits, 0 reserved). */
#define FH_MAX_HIT_SLOTS		((1u << 24) - 1)

/*
 * CPython: how a BPF program finds the current thread's innermost Python
 * frames at a uprobe or tracepoint, without the GIL. Userspace fills one per
 * Python process (pyrt_layout(), src/pyrt.h) from the interpreter's version,
 * its _PyRuntime and the process's C library; x86-64 glibc. Offsets are in
 * bytes; FH_PY_NONE where the version has no such field. Every read below is
 * of the traced process's memory (bpf_probe_read_user) and may fail: stop
 * there.
 *
 * 1. The thread state. tp = the task's thread pointer (task->thread.fsbase,
 *    which is also the thread's pthread_t):
 *        tstate = *(u64 *)(tp + tsd_offset + tss_key * tsd_stride)
 *    That is pthread_getspecific(autoTSSkey): the thread's PyThreadState,
 *    set when it first ran Python and kept while it waits with the GIL
 *    released. 0: the thread has never run Python. Sanity check:
 *        *(u64 *)(tstate + tstate_thread_id) == tp
 * 2. The innermost frame:
 *        f = *(u64 *)(tstate + tstate_frame)
 *        if (cframe_current_frame != FH_PY_NONE && f)
 *                f = *(u64 *)(f + cframe_current_frame)
 * 3. Frame after frame, innermost first, until f == 0 (or enough):
 *        code  = *(u64 *)(f + frame_code)
 *        instr = frame_instr_size == 4 ? (__s32)*(__u32 *)(f + frame_instr)
 *                                      : *(u64 *)(f + frame_instr)
 *        if (frame_owner == FH_PY_NONE ||
 *            *(u8 *)(f + frame_owner) != frame_owner_cstack)
 *                record (code, instr)      (else: a C-stack shim, no code)
 *        f = *(u64 *)(f + frame_previous)
 *    Userspace turns each (code, instr) into file, line and function
 *    (pyrt_resolve), instr as recorded: 3.10's f_lasti (an index in code
 *    units), 3.11-3.12's prev_instr, 3.13's instr_ptr (addresses).
 */
#define FH_PY_NONE		0xffff

struct fh_py_layout {
	__u16 version;			/* major << 8 | minor, e.g. 0x030b */
	__u16 tsd_stride;		/* glibc: sizeof(struct pthread_key_data), 16 */
	__u32 tss_key;			/* the interpreter's autoTSSkey: a pthread key,
					 * always below glibc's first block (32) */
	__u32 tsd_offset;		/* glibc: offsetof(struct pthread,
					 * specific_1stblock[0].data), 0x318 in 2.36 */
	__u16 tstate_thread_id;		/* PyThreadState.thread_id: its pthread_t */
	__u16 tstate_native_thread_id;	/* .native_thread_id: its TID (3.11+) */
	__u16 tstate_frame;		/* .frame (3.10), .cframe (3.11, 3.12),
					 * .current_frame (3.13) */
	__u16 cframe_current_frame;	/* _PyCFrame.current_frame (3.11, 3.12) */
	__u16 frame_previous;		/* PyFrameObject.f_back (3.10),
					 * _PyInterpreterFrame.previous (3.11+) */
	__u16 frame_code;		/* .f_code (3.10-3.12), .f_executable (3.13) */
	__u16 frame_instr;		/* .f_lasti (3.10), .prev_instr (3.11, 3.12),
					 * .instr_ptr (3.13) */
	__u16 frame_instr_size;		/* bytes at frame_instr: 4 (an int) or 8 */
	__u16 frame_owner;		/* _PyInterpreterFrame.owner, a char (3.11+) */
	__u16 frame_owner_cstack;	/* FRAME_OWNED_BY_CSTACK (3.12+): skip it */
	/* Bytes read at once from a thread state and from a frame: past the
	 * farthest field above (at most FH_PY_READ_MAX). */
	__u16 tstate_read;
	__u16 frame_read;
};

/* The most a BPF walker reads of one thread state or frame at once. */
#define FH_PY_READ_MAX		256

/* fh_py_stack.status */
#define FH_PY_NOT_WALKED	0	/* no layout for the process (yet): not known */
#define FH_PY_WALKED		1	/* walked: n frames (0: the thread ran no Python) */

/*
 * The innermost Python frames of a thread, as the kernel read them (struct
 * fh_py_layout): each a code object and its instruction as the version
 * records it; src/pyframes.c turns them into file, line and function.
 */
struct fh_py_frame {
	__u64 code;
	__u64 instr;
};

struct fh_py_stack {
	struct fh_py_frame f[FH_PY_FRAMES];
	__u8 n;			/* frames in f[] */
	__u8 status;		/* FH_PY_* */
	__u8 _pad[6];
};

/* One lock a thread is believed to hold; kept in task storage. */
struct fh_held_lock {
	__u64 addr;		/* lock address; 0 marks a free slot */
	__u64 acquired_ns;	/* CLOCK_MONOTONIC when the lock call was made */
	__u64 caller;		/* return address of the lock call: exact frame */
	__u64 fp[FH_LOCK_FP_FRAMES];	/* callers of the caller, by frame pointer; 0 ends */
	__s32 stack_id;		/* user stack at the call; < 0: none */
	__u32 stack_gen;	/* stack map generation stack_id belongs to */
	__u8 kind;		/* enum fh_lock_kind */
	__u8 layout;		/* enum fh_layout */
	__u16 depth;		/* recursive acquisitions still to release, for
				 * kinds whose releases are probed (a glibc
				 * mutex's depth is read from its word) */
	__u32 flags;		/* FH_HELD_* */
	struct fh_py_stack py;	/* the Python frames that took it */
};

/* fh_held_lock.flags */
#define FH_HELD_TRY		0x1	/* taken by a try function */

struct fh_thread_locks {
	struct fh_held_lock slot[FH_HELD_SLOTS];
	/* An acquisition in flight, for kinds whose lock word cannot tell a
	 * holder from a waiter: it becomes a slot when the call returns 0. */
	struct fh_held_lock pending;
	__u64 pending_ra;	/* where pending's call keeps its return address */
	/* The outermost lock call of this thread not known to be over: lock
	 * functions that call each other (musl's, C11 mtx_*) are one call. */
	__u64 call_addr;	/* its lock; 0: none */
	__u64 call_ra;		/* stack address of its return address */
	__u64 call_ip;		/* the probe it hit (which function) */
	__u64 call_ret;		/* the return address it had: while the stack
				 * still holds it there, the call is in flight */
	/* This thread's TID in its own PID namespace: what lock words hold
	 * (0 until the first lock call sets it). */
	__u32 ns_tid;
	/* py_layouts_gen (bpf/python.bpf.h) when py was copied from the
	 * py_layouts map; py.version 0: the process has no layout. */
	__u32 py_gen;
	struct fh_py_layout py;
};

/* fh_lock.flags */
#define FH_LOCK_OWN		0x1	/* held by the forking thread itself */
#define FH_LOCK_CONFIRMED	0x2	/* the lock word named the holder at the fork */
/* In a shared mapping of the parent (VM_SHARED or VM_MAYSHARE: MAP_SHARED,
 * shm, sem_open): the child gets the very same lock, not a frozen copy, and
 * the holder's releases reach it. */
#define FH_LOCK_SHARED		0x4
/* Whether it is in shared memory could not be looked up at the fork
 * (bpf_find_vma busy: another program's mmap-unlock work pending on this
 * CPU, or the parent's mmap lock taken): userspace looks in /proc/PID/maps. */
#define FH_LOCK_SHARED_UNKNOWN	0x8
#define FH_LOCK_WATCHED		0x10	/* found by the word watch (FH_FORK_WATCHED):
					 * no acquisition seen, its stack is where it
					 * was last taken while probed */
/* Set by userspace when it reads the event, never by the kernel: the lock is
 * the interpreter's own, recognized by what took it (src/hazard.h). */
#define FH_LOCK_PY_SENTINEL	0x100	/* a thread's sentinel (Thread._tstate_lock) */
#define FH_LOCK_PY_WAITER	0x200	/* a threading.Condition waiter lock */
#define FH_LOCK_PY_INTERNAL	(FH_LOCK_PY_SENTINEL | FH_LOCK_PY_WAITER)

/* A lock in a fork snapshot. */
struct fh_lock {
	__u64 addr;
	__u64 acquired_ns;
	__u64 caller;
	__u64 fp[FH_LOCK_FP_FRAMES];
	__s32 stack_id;
	__u32 holder_tid;
	__u16 kind;
	__u16 flags;
	__u32 depth;
	char holder_comm[FH_COMM_LEN];
	struct fh_py_stack py;	/* the Python frames that took it */
};

/* fh_fork_event.flags */
#define FH_FORK_LIGHT		0x1	/* locks were not tracked (--light, or one of
					 * the reasons below) */
#define FH_FORK_TRUNCATED	0x2	/* more threads than FH_MAX_SNAPSHOT_THREADS */
/* Why a process's locks were not tracked, when lock tracking is on (with
 * FH_FORK_LIGHT; none of them: --light). */
#define FH_FORK_UNPROBED	0x4	/* no lock probes (yet): adaptive mode asks for
					 * them at this fork */
#define FH_FORK_NOLIB		0x8	/* it maps no C library with lock functions */
#define FH_FORK_GOVERNED	0x10	/* the overhead governor detached its probes */
/* With FH_FORK_GOVERNED, instead of FH_FORK_LIGHT: its locks are the word
 * watch's, the glibc mutexes and write locks it was seen taking while probed
 * whose words name another of its threads at the fork (struct fh_watch). */
#define FH_FORK_WATCHED		0x20

/* Other threads listed for a fork (struct fh_threads_event); more are
 * counted as omitted. */
#define FH_MAX_OTHER_THREADS	32

/* A thread of the parent other than the forking one: who else was running. */
struct fh_other_thread {
	__u32 tid;
	__u32 _pad;
	__u64 pthread;		/* its thread pointer (x86-64: fs base), which is
				 * also its pthread_t: where glibc keeps its
				 * descriptor (start routine) and CPython its
				 * thread's ident */
	__u64 start;		/* the descriptor's start_routine as read at the
				 * fork, at the host glibc's offset (the
				 * start_routine_off rodata switch); 0: not read.
				 * Unverified: the process's glibc may be another. */
	char comm[FH_COMM_LEN];
};

/*
 * A new process forked from a multithreaded traced process. Sent with only
 * nr_locks entries of locks[]: foreign and own locks mixed, own ones flagged.
 */
struct fh_fork_event {
	__u32 type;
	__u32 pid;		/* parent tgid */
	__u32 tid;		/* forking thread */
	__u32 child_pid;
	__u64 time_ns;		/* CLOCK_MONOTONIC */
	__u32 threads;		/* parent's thread count at the fork */
	__u32 nr_locks;		/* entries of locks[] that follow */
	__u32 nr_own;		/* ... of which the forking thread's own */
	__u32 locks_omitted;	/* foreign locks held beyond FH_MAX_FOREIGN_LOCKS */
	__u32 flags;
	__s32 stack_id;		/* user stack of the fork call */
	__u32 ppid;		/* parent's parent */
	__u32 walked;		/* threads whose locks were looked at */
	char comm[FH_COMM_LEN];
	__u64 cgroup_id;	/* the forking thread's cgroup (v2 hierarchy) */
	__u32 ns_pid;		/* parent tgid in its own (innermost) PID namespace */
	__u32 ns_child_pid;	/* child pid in its own PID namespace */
	char exe_name[FH_EXE_NAME_LEN];	/* basename of the parent's executable */
	struct fh_py_stack py;	/* the forking thread's Python frames */
	/* and those beyond: py_outer[k] has frames (k + 1) * FH_PY_FRAMES on,
	 * walked (FH_PY_WALKED) only when the stack before it was full */
	struct fh_py_stack py_outer[FH_PY_FORK_OUTER];
	__u32 nr_shared;	/* foreign locks of locks[] flagged FH_LOCK_SHARED */
	__u32 nr_other;		/* other threads listed (fh_threads_event.nr) */
	__u32 other_omitted;	/* other threads beyond FH_MAX_OTHER_THREADS */
	__u32 _pad;
	struct fh_lock locks[FH_EVENT_LOCKS];
};

/*
 * The other threads of a fork's parent, sent just before its fork event
 * (same pid, tid and time_ns), and before the hazard's stack copy: the
 * first thing userspace reads, while the parent is most surely there to
 * be asked for their names. Sent with only nr entries of other[].
 */
struct fh_threads_event {
	__u32 type;
	__u32 pid;
	__u32 tid;		/* the forking thread */
	__u32 nr;		/* entries of other[] that follow */
	__u64 time_ns;		/* the fork event's */
	struct fh_other_thread other[FH_MAX_OTHER_THREADS];
};

/*
 * Locks of other threads in a fork event, sent or omitted, but for those in
 * shared memory: the hazard candidates the kernel sends a stack copy for
 * (and counts in FH_STAT_HAZARDS_LOST when the event is lost). Userspace's
 * verdict on an event, which sets some of them aside, is src/hazard.h's.
 */
#define FH_FORK_FOREIGN_LOCKS(ev) \
	((ev)->nr_locks - (ev)->nr_own - (ev)->nr_shared + (ev)->locks_omitted)

enum fh_child_outcome {
	FH_CHILD_EXEC = 1,
	FH_CHILD_EXIT,
	FH_CHILD_DEADLOCK,
	FH_CHILD_ALIVE,
};

/* Inherited locks whose words the kernel checks in the child (struct fh_child). */
#define FH_CHILD_WATCH		4

/* What became of the child of a fork event. */
struct fh_child_event {
	__u32 type;
	__u32 pid;
	__u32 parent_pid;
	__u32 outcome;		/* enum fh_child_outcome */
	__u64 time_ns;
	__u64 fork_ns;		/* time of the fork */
	__s32 exit_code;	/* wait status for FH_CHILD_EXIT */
	/* FH_CHILD_EXIT: watched locks (fh_child.watch) whose word, read as
	 * the child's last thread exited, no longer named the parent's
	 * holder: the child re-initialised them (a pthread_atfork child
	 * handler). Read before the child's memory goes (Linux 6.16 and later
	 * trace the exit before it; earlier ones leave this 0). */
	__u32 nr_reinit;
	__u64 reinit[FH_CHILD_WATCH];
};

/*
 * A followed child ran CPython's _PyThread_at_fork_reinit(&lock): the lock
 * it inherited at `addr` (a PyThread_type_lock, glibc's sem_t) is replaced by
 * a new one in the child, as CPython does for its own locks and for every
 * lock an os.register_at_fork hook re-creates (logging's handler locks).
 */
struct fh_reinit_event {
	__u32 type;
	__u32 pid;		/* the child */
	__u64 time_ns;
	__u64 addr;		/* the old lock */
};

/* fh_deadlock_event.flags */
#define FH_DL_OWNER_KNOWN	0x1	/* owner_tid read from the lock word and verified */
#define FH_DL_PI		0x2	/* PI futex: the TID is in the futex word itself */
/* A wait without FUTEX_PRIVATE_FLAG whose memory could not be looked up
 * (bpf_find_vma busy): a deadlock only if userspace finds the futex word in
 * a private mapping of the child. Not counted, not decided by the kernel. */
#define FH_DL_MEMORY_UNKNOWN	0x4

/* The only thread of a forked child blocks forever on a private futex. */
struct fh_deadlock_event {
	__u32 type;
	__u32 pid;
	__u32 tid;
	__u32 parent_pid;
	__u64 time_ns;
	__u64 fork_ns;
	__u64 futex;		/* futex word address */
	__u32 owner_tid;	/* valid with FH_DL_OWNER_KNOWN */
	__u32 flags;
	__s32 stack_id;
	__u32 syscall;		/* syscall number of the wait */
	__u32 op;		/* futex op (futex(2) only) */
	__u32 _pad;
	char comm[FH_COMM_LEN];
	__u64 cgroup_id;	/* the child's cgroup (v2 hierarchy) */
	__u32 ns_pid;		/* pid in its own (innermost) PID namespace */
	__u32 _pad2;
	char exe_name[FH_EXE_NAME_LEN];	/* basename of its executable */
	struct fh_py_stack py;	/* where it waits in Python (the parent's layout) */
};

/* Bytes of user stack copied (from the stack pointer up) for DWARF unwinding. */
#define FH_USTACK_BYTES		8192

/*
 * The user registers and the top of the user stack of a thread at a hazard
 * fork or a deadlocked wait, sent just before that event (same tid and
 * time_ns): libraries without frame pointers are unwound from it in
 * userspace with their CFI. Sent with only `len` bytes of data.
 */
struct fh_ustack_event {
	__u32 type;
	__u32 pid;
	__u32 tid;
	__u32 len;		/* bytes of data[] copied from sp */
	__u64 time_ns;		/* the time_ns of the event it belongs to */
	__u64 ip, sp, bp;
	__u8 data[FH_USTACK_BYTES];
};

/* A traced process needs its lock probes checked (it became multithreaded,
 * or exec'd and may now map another C library). */
struct fh_probe_request {
	__u32 type;
	__u32 pid;
};

/* Indexes of the per-CPU counters in the `stats` map. */
enum fh_stat {
	FH_STAT_FORKS,		/* forks (new processes) from traced processes */
	FH_STAT_MT_FORKS,	/* ... of which the parent was multithreaded */
	FH_STAT_DEADLOCKS,	/* children found blocked forever */
	FH_STAT_LOST,		/* events dropped: ring buffer full */
	FH_STAT_HELD_FULL,	/* locks forgotten: a thread's slots were full of
				 * locks it may still hold (the oldest made room) */
	FH_STAT_PROCS_FULL,	/* processes not traced: `procs` map full */
	FH_STAT_CHILDREN_FULL,	/* children not followed: `children` map full */
	FH_STAT_STACKS_LOST,	/* stacks not recorded: stack map full or error */
	FH_STAT_FORKS_LOST,	/* fork events among FH_STAT_LOST: mt_forks = reported + these */
	FH_STAT_HAZARDS_LOST,	/* ... of which with hazard candidates (FH_FORK_FOREIGN_LOCKS):
				 * userspace counts the hazards it receives, these on top */
	FH_STAT_WORDS_UNREAD,	/* lock words a fork could not read, their page
				 * absent past read_user_settled()'s wait */
	FH_STAT_MAX,
};

/* procs map: the processes being traced (when filtering by PID), and the
 * processes that have lock probes (every mode but --track-all). */
#define FH_PROC_TRACED		0x1
#define FH_PROC_PROBED		0x2	/* userspace attached its lock probes */
#define FH_PROC_REQUESTED	0x4	/* a probe request is pending */
#define FH_PROC_EXECED		0x8	/* exec'd since probed: check its libraries again */
#define FH_PROC_NOLIB		0x10	/* maps no C library with lock functions */
#define FH_PROC_GOVERNED	0x20	/* the overhead governor detached its probes */

struct fh_proc {
	__u32 flags;
	__u32 _pad;
	/* CLOCK_MONOTONIC when its lock probes were last attached after the
	 * governor had detached them (before they were), 0 if never: other
	 * attaches leave it. Records older than this may predate a gap
	 * in which the probes were detached (the governor): acquisitions and
	 * releases made in the gap were not seen, so such a record counts
	 * only where the lock word itself names its holder. */
	__u64 armed_ns;
};

/*
 * The word watch (docs/trap-free.md): what a process's forks still see once
 * the governor has detached its lock probes, for the kinds whose lock word
 * names the holder (glibc mutexes and write locks). While probed, each such
 * lock's address is learned (`learned`, with where it was last taken); at a
 * downgrade userspace copies the process's into `watch`; at each of its forks
 * the kernel reads those words, and reports the locks another of its threads
 * owns. No probe, no trap: FH_WATCH_LOCKS words read at most per fork.
 */
#define FH_WATCH_LOCKS		256

struct fh_watch_lock {
	__u64 addr;
	__u64 caller;			/* where it was last taken while probed */
	__u64 fp[FH_LOCK_FP_FRAMES];
	__u8 kind;			/* FH_KIND_MUTEX or FH_KIND_RWLOCK_WRITE */
	__u8 layout;			/* FH_LAYOUT_GLIBC */
	__u8 _pad[6];
};

/* learned map: key */
struct fh_learned_key {
	__u32 tgid;
	__u32 _pad;
	__u64 addr;
};

/* watch map: tgid -> the locks its forks read */
struct fh_watch {
	__u32 n;
	__u32 _pad;
	struct fh_watch_lock lock[FH_WATCH_LOCKS];
};

/* children map: forked children of multithreaded parents, until their fate. */
#define FH_CHILD_DECIDED	0x1	/* outcome already sent */

/* An inherited lock held by another thread at the fork whose word names its
 * holder: while that word still holds `frozen` in the child, the child has
 * the parent's frozen copy; any other value means the child re-initialised
 * it (and perhaps took it since). */
struct fh_lock_watch {
	__u64 addr;
	__u32 frozen;		/* the holder's TID as the word has it */
	__u16 word;		/* offset of that word in the lock */
	__u16 _pad;
};

struct fh_child {
	__u64 fork_ns;
	__u32 parent_pid;
	__u32 flags;
	/* The futex word last reported with FH_DL_MEMORY_UNKNOWN: not again. */
	__u64 unsure_futex;
	__u32 nr_watch;
	__u32 _pad;
	struct fh_lock_watch watch[FH_CHILD_WATCH];
};

/* What the `request_mode` rodata switch asks the kernel to report. */
enum fh_request_mode {
	FH_REQ_NONE = 0,
	FH_REQ_TRACED_THREADS,	/* a traced process without probes made a thread */
	FH_REQ_NEW_MT_EXE,	/* any executable's first multithreaded process */
	FH_REQ_MT_FORK,		/* a process without probes forked while multithreaded,
				 * or exec'd a program named in comm_filter */
};

/* --comm NAME: processes that get lock probes from their exec (adaptive mode). */
#define FH_MAX_COMM_FILTERS	8

/* forkhazard calibrate (src/calibrate.c): its probes on its own code, each
 * counted in calib_hits[] at the index its cookie carries. */
enum fh_calib_probe {
	FH_CALIB_EMULATED,	/* on an instruction the kernel emulates */
	FH_CALIB_SINGLE_STEP,	/* on one it single-steps */
	FH_CALIB_NOP5,		/* on a 5-byte nop */
	FH_CALIB_PAIR_ENTRY,	/* entry of a function with a return probe too */
	FH_CALIB_PAIR_RETURN,	/* that return probe */
	FH_CALIB_PROBES,
};

#endif /* FORKHAZARD_H */

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

static __always_inline __s32 user_stack_id(void *ctx)
{
	long id = bpf_get_stackid(ctx, &stacks, BPF_F_USER_STACK);

	if (id < 0 && id != -FH_EFAULT)	/* -EFAULT: no user stack at all */
		stat_inc(FH_STAT_STACKS_LOST);
	return id;
}

static __always_inline bool is_traced(__u32 tgid)
{
	if (tgid == self_tgid)
		return false;
	if (!filter_pids)
		return true;
	return bpf_map_lookup_elem(&procs, &tgid) != NULL;
}

enum held_verdict { HELD_NO, HELD_YES, HELD_UNKNOWN };

/*
 * Does thread `tid` hold `l` right now, according to the lock word itself?
 * Must run in a thread of the lock's process: user reads go to current's mm.
 * This is what lets the lock path do without uretprobes: a thread that only
 * waited, a trylock that failed and a mutex released inside pthread_cond_wait
 * (glibc does that through internal functions we do not probe) all leave a
 * slot behind whose lock word names someone else, or nobody.
 */
static __always_inline enum held_verdict lock_word_verdict(const struct fh_held_lock *l,
							   __u32 tid)
{
	__u32 owner;

	switch (l->kind) {
	case FH_KIND_MUTEX:
		/* glibc pthread_mutex_t: __owner (a TID) at byte 8, for every type */
		if (bpf_probe_read_user(&owner, sizeof(owner), (void *)(l->addr + 8)))
			return HELD_UNKNOWN;
		return owner == tid ? HELD_YES : HELD_NO;
	default:
		return HELD_UNKNOWN;
	}
}

#endif /* FH_BPF_H */

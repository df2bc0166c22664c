/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The in-kernel Python frame walker: a thread's innermost Python frames, as
 * (code object, instruction) pairs, read the way struct fh_py_layout
 * (include/forkhazard.h) describes, from the task alone and without the GIL.
 *
 * Userspace puts a process's layout into py_layouts (keyed by tgid) when it
 * probes the process or sees it fork; exec and exit remove it (fork.bpf.c).
 * A lock probe looks the map up once per thread and generation (the copy in
 * its task storage), so C programs pay one compare per lock call and nothing
 * else. Everything read here is the traced process's memory: any read may
 * fail (the walk stops there, what was read stands), and nothing read is
 * followed without a bound.
 */
#ifndef FH_PYTHON_BPF_H
#define FH_PYTHON_BPF_H

#include "fh.bpf.h"

#define FH_MAX_PY_PROCS		4096

/* tgid -> struct fh_py_layout, written by userspace. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, FH_MAX_PY_PROCS);
	__type(key, __u32);
	__type(value, struct fh_py_layout);
} py_layouts SEC(".maps") __weak;

/* Bumped by userspace after each change to py_layouts: a thread whose copy
 * is of an older generation looks the map up again. Starts at 1, so that a
 * new thread (0) looks once. */
volatile __u32 py_layouts_gen __weak = 1;

/* One thread state's or frame's bytes, read at once (one read per frame
 * instead of four): a map value, because the BPF stack has no room and the
 * fields are picked at offsets only known at run time. */
struct py_chunk {
	__u8 b[FH_PY_READ_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_chunk);
} py_scratch SEC(".maps") __weak;

/* Frames looked at per walk, C-stack shims included (3.12+ put one at each
 * entry into the interpreter from C): a fork's deepest stack and 4 shims.
 * A walk of FH_PY_FRAMES (a lock's) stops when it has them. */
#define FH_PY_WALK_MAX		(FH_PY_FORK_FRAMES + 4)

/* The field of `size` bytes at `off` in a chunk. The offset comes from the
 * layout (a map value): masked and checked, so that the verifier sees a
 * bounded access into the chunk. */
static __always_inline __u64 chunk_u64(const struct py_chunk *c, __u32 off)
{
	off &= FH_PY_READ_MAX - 1;
	if (off > FH_PY_READ_MAX - 8)
		return 0;
	return *(const __u64 *)&c->b[off];
}

static __always_inline __u32 chunk_u32(const struct py_chunk *c, __u32 off)
{
	off &= FH_PY_READ_MAX - 1;
	if (off > FH_PY_READ_MAX - 4)
		return 0;
	return *(const __u32 *)&c->b[off];
}

static __always_inline __u8 chunk_u8(const struct py_chunk *c, __u32 off)
{
	return c->b[off & (FH_PY_READ_MAX - 1)];
}

/* `size` bytes at user address addr into the chunk (size from the layout:
 * clamped, as the helper wants a bounded length). */
static __always_inline bool chunk_read(struct py_chunk *c, __u64 addr, __u32 size)
{
	if (!size || size > FH_PY_READ_MAX)
		return false;
	return bpf_probe_read_user(c->b, size, (void *)addr) == 0;
}

/* The task's thread pointer: glibc's pthread_t, where its TSD lives. */
static __always_inline __u64 thread_pointer(struct task_struct *t)
{
#if defined(__TARGET_ARCH_x86)
	return BPF_CORE_READ(t, thread.fsbase);
#else
	return 0;	/* userspace installs layouts on x86-64 only */
#endif
}

/*
 * Walk task t's Python frames into out, with layout l, from the skip-th
 * (0: the innermost; a fork's outer stacks skip those before them). Must run in a thread
 * of t's process (user reads go to current's mm); t is current, or the
 * only thread of a forked child at its context switch. Not inlined: one
 * copy of the walk for the lock probe and one per tracepoint program.
 */
static __noinline void py_walk(const struct fh_py_layout *l, struct task_struct *t,
			       struct fh_py_stack *out, __u32 skip)
{
	__u64 tp, tstate = 0, f, code, instr;
	struct py_chunk *c;
	__u32 zero = 0, n = 0, seen = 0;

	out->n = 0;
	out->status = FH_PY_WALKED;
	c = bpf_map_lookup_elem(&py_scratch, &zero);
	tp = thread_pointer(t);
	if (!c || !tp)
		return;
	/* 1. pthread_getspecific(autoTSSkey): 0 for a thread that never ran Python */
	if (bpf_probe_read_user(&tstate, sizeof(tstate),
				(void *)(tp + l->tsd_offset + (__u64)l->tss_key * l->tsd_stride)) ||
	    !tstate || !chunk_read(c, tstate, l->tstate_read))
		return;
	/* a stale slot (a reused thread descriptor) names another thread */
	if (chunk_u64(c, l->tstate_thread_id) != tp)
		return;
	/* 2. the innermost frame (through the cframe in 3.11 and 3.12) */
	f = chunk_u64(c, l->tstate_frame);
	if (f && l->cframe_current_frame != FH_PY_NONE &&
	    bpf_probe_read_user(&f, sizeof(f), (void *)(f + l->cframe_current_frame)))
		return;
	/* 3. frame after frame; the counter lives in a register the verifier
	 * bounds by the loop, not in out (a pointer it would track per slot) */
	for (int i = 0; i < FH_PY_WALK_MAX; i++) {
		if (!f || n >= FH_PY_FRAMES || !chunk_read(c, f, l->frame_read))
			break;
		code = chunk_u64(c, l->frame_code);
		instr = l->frame_instr_size == 4 ? (__u64)(__s64)(__s32)chunk_u32(c, l->frame_instr) :
						   chunk_u64(c, l->frame_instr);
		if (code && (l->frame_owner == FH_PY_NONE ||
			     chunk_u8(c, l->frame_owner) != l->frame_owner_cstack) &&
		    seen++ >= skip) {
			out->f[n & (FH_PY_FRAMES - 1)].code = code;
			out->f[n & (FH_PY_FRAMES - 1)].instr = instr;
			n++;
		}
		f = chunk_u64(c, l->frame_previous);
	}
	out->n = n;
}

/* Process tgid's layout, or NULL (not Python, or not known yet). */
static __always_inline const struct fh_py_layout *py_layout_of(__u32 tgid)
{
	return bpf_map_lookup_elem(&py_layouts, &tgid);
}

/* Forget a process's layout (it exec'd into another program, or exited). */
static __always_inline void py_forget(__u32 tgid)
{
	bpf_map_delete_elem(&py_layouts, &tgid);
}

#endif /* FH_PYTHON_BPF_H */

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
 * instead of four), and the frames a walk found: a map value, because the
 * BPF stack has no room and the fields are picked at offsets only known at
 * run time. */
struct py_chunk {
	__u8 b[FH_PY_READ_MAX];
};

struct py_walk_scratch {
	struct py_chunk chunk;
	struct fh_py_frame f[FH_PY_FORK_FRAMES];
};

_Static_assert((FH_PY_FORK_FRAMES & (FH_PY_FORK_FRAMES - 1)) == 0,
	       "a walk's frame index is masked: FH_PY_FORK_FRAMES must be a power of two");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct py_walk_scratch);
} py_scratch SEC(".maps") __weak;

/* Frames looked at per walk, C-stack shims included (3.12+ put one at each
 * entry into the interpreter from C): a fork's deepest stack and 4 shims.
 * A walk for fewer frames (a lock's) stops when it has them. */
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

struct py_walk_ctx {
	const struct fh_py_layout *l;
	struct py_walk_scratch *s;
	__u64 frame;		/* the next frame to read, 0: the end */
	__u32 n, max;		/* frames found, frames wanted */
};

/*
 * One frame of a walk (a bpf_loop callback). As an inlined loop, the
 * verifier followed each of its 20 iterations down every branch, for every
 * walk: 200,000 instructions per walk, most of a second of start-up for the
 * fork program's walk, close to the million-instruction limit. As a
 * callback it checks the frame once.
 */
static long py_walk_frame(__u32 i, struct py_walk_ctx *w)
{
	const struct fh_py_layout *l = w->l;
	struct py_chunk *c = &w->s->chunk;
	struct fh_py_frame *out;
	__u64 code;

	if (!w->frame || w->n >= w->max || !chunk_read(c, w->frame, l->frame_read))
		return 1;
	code = chunk_u64(c, l->frame_code);
	/* a C-stack shim (3.12+) is no frame of the program's */
	if (code && (l->frame_owner == FH_PY_NONE ||
		     chunk_u8(c, l->frame_owner) != l->frame_owner_cstack)) {
		out = &w->s->f[w->n & (FH_PY_FORK_FRAMES - 1)];
		out->code = code;
		out->instr = l->frame_instr_size == 4 ?
			     (__u64)(__s64)(__s32)chunk_u32(c, l->frame_instr) :
			     chunk_u64(c, l->frame_instr);
		w->n++;
	}
	w->frame = chunk_u64(c, l->frame_previous);
	return 0;
}

/*
 * Walk task t's innermost Python frames, at most `max` (FH_PY_FORK_FRAMES at
 * most), into s->f with layout l; returns how many it found (0: the thread
 * runs no Python, or its state could not be read). Must run in a thread of
 * t's process (user reads go to current's mm); t is current, or the only
 * thread of a forked child at its context switch. Not inlined: one copy of
 * the walk per program.
 */
static __noinline __u32 py_walk(const struct fh_py_layout *l, struct task_struct *t,
				struct py_walk_scratch *s, __u32 max)
{
	struct py_walk_ctx w = { .l = l, .s = s, .max = max };
	__u64 tp = thread_pointer(t), tstate = 0;
	struct py_chunk *c = &s->chunk;

	if (!tp)
		return 0;
	/* 1. pthread_getspecific(autoTSSkey): 0 for a thread that never ran Python */
	if (bpf_probe_read_user(&tstate, sizeof(tstate),
				(void *)(tp + l->tsd_offset + (__u64)l->tss_key * l->tsd_stride)) ||
	    !tstate || !chunk_read(c, tstate, l->tstate_read))
		return 0;
	/* a stale slot (a reused thread descriptor) names another thread */
	if (chunk_u64(c, l->tstate_thread_id) != tp)
		return 0;
	/* 2. the innermost frame (through the cframe in 3.11 and 3.12) */
	w.frame = chunk_u64(c, l->tstate_frame);
	if (w.frame && l->cframe_current_frame != FH_PY_NONE &&
	    bpf_probe_read_user(&w.frame, sizeof(w.frame),
				(void *)(w.frame + l->cframe_current_frame)))
		return 0;
	/* 3. frame after frame */
	bpf_loop(FH_PY_WALK_MAX, py_walk_frame, &w, 0);
	return w.n;
}

/* The per-CPU scratch a walk reads into, or NULL (never, in practice). */
static __always_inline struct py_walk_scratch *py_walk_scratch(void)
{
	__u32 zero = 0;

	return bpf_map_lookup_elem(&py_scratch, &zero);
}

/* Frames from..from+FH_PY_FRAMES of a walk that found n into out. */
static __always_inline void py_stack_of_walk(struct fh_py_stack *out,
					     const struct py_walk_scratch *s, __u32 n, __u32 from)
{
	out->status = FH_PY_WALKED;
	out->n = n <= from ? 0 : n - from >= FH_PY_FRAMES ? FH_PY_FRAMES : n - from;
	__builtin_memcpy(out->f, &s->f[from], sizeof(out->f));
}

/* Task t's innermost FH_PY_FRAMES Python frames into out (a lock's, a
 * deadlocked child's). */
static __always_inline void py_walk_stack(const struct fh_py_layout *l, struct task_struct *t,
					  struct fh_py_stack *out)
{
	struct py_walk_scratch *s = py_walk_scratch();

	if (!s) {
		out->n = 0;
		out->status = FH_PY_NOT_WALKED;
		return;
	}
	py_stack_of_walk(out, s, py_walk(l, t, s, FH_PY_FRAMES), 0);
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

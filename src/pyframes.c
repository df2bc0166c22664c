// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <bpf/bpf.h>
#include "clock.h"
#include "hazard.h"
#include "json.h"
#include "log.h"
#include "pycode.h"
#include "pyframes.h"

#define WATCH_MAX	512			/* processes whose Python-ness is decided */
#define PENDING_NS	(5 * 1000000000ull)	/* how long an interpreter may take to start */
#define RECHECK_NS	(10 * 1000000000ull)	/* "not Python" holds this long (PID reuse) */
#define ALIASES		64			/* parents gone, read through their children */
#define STARTING_NS	(2 * 1000000000ull)	/* how long a new program is watched closely */
#define POLL_NS		(2 * 1000000ull)	/* ... how often */

enum watch_state {
	WATCH_STARTING,		/* a program just exec'd: a Python, maybe, starting */
	WATCH_PENDING,		/* a Python whose interpreter is not initialized yet */
	WATCH_INSTALLED,	/* the kernel has its layout */
	WATCH_NOT_PYTHON,	/* or not readable, or not walkable (no glibc) */
};

struct watched {
	pid_t pid;
	enum watch_state state;
	uint64_t since_ns;	/* decided (or pending) since */
	uint64_t next_ns;	/* WATCH_STARTING: when to look again */
	dev_t exe_dev;		/* ... and the program it ran before its exec */
	ino_t exe_ino;
	int8_t python;		/* WATCH_STARTING, exec'd: a Python (1), not (0);
				 * -1 not looked at yet (its ELF file read once) */
};

/* A parent that was gone when its fork event arrived: its child is a copy
 * of its memory at the fork (the same code objects at the same addresses). */
struct alias {
	pid_t pid, via;
};

struct pyframes {
	struct pyframes_opts o;
	struct pyframes_ops ops;
	struct pyrt *r;		/* when reading the processes themselves */
	struct watched w[WATCH_MAX];
	int nw;
	struct alias alias[ALIASES];
	int next_alias;
	int starting;		/* entries WATCH_STARTING */
	bool full_said;
	struct pyframes_stats st;
};

/* ---- the processes themselves (pyrt) --------------------------------------- */

static int rt_resolve(void *ctx, pid_t pid, uint64_t code, uint64_t instr, struct pyrt_frame *out)
{
	return pyrt_resolve(ctx, pid, code, instr, out);
}

static int rt_thread_name(void *ctx, pid_t pid, pid_t tid, char *buf, size_t size)
{
	int err = pyrt_thread_name(ctx, pid, tid, buf, size);

	/* a name not read yet (a thread newer than the last reading) */
	if (err == -ENOENT && !pyrt_refresh_threads(ctx, pid))
		err = pyrt_thread_name(ctx, pid, tid, buf, size);
	return err;
}

static int rt_thread_frames(void *ctx, pid_t pid, pid_t tid, struct pyrt_rawframe *raw, int max)
{
	return pyrt_thread_frames(ctx, pid, tid, raw, max);
}

static int rt_thread_sentinel(void *ctx, pid_t pid, pid_t tid, uint64_t *lock)
{
	int err = pyrt_thread_sentinel(ctx, pid, tid, lock);

	if (err == -ENOENT && !pyrt_refresh_threads(ctx, pid))
		err = pyrt_thread_sentinel(ctx, pid, tid, lock);
	return err;
}

struct pyframes *pyframes_new(const struct pyframes_opts *opts)
{
	struct pyframes *pf = calloc(1, sizeof(*pf));

	if (!pf)
		return NULL;
	pf->o = *opts;
	if (opts->ops) {
		pf->ops = *opts->ops;
		return pf;
	}
	pf->r = pyrt_new(NULL);
	if (!pf->r) {
		free(pf);
		return NULL;
	}
	pf->ops = (struct pyframes_ops){
		.resolve = rt_resolve, .thread_name = rt_thread_name,
		.thread_frames = rt_thread_frames, .thread_sentinel = rt_thread_sentinel,
		.ctx = pf->r,
	};
	return pf;
}

void pyframes_free(struct pyframes *pf)
{
	if (!pf)
		return;
	pyrt_free(pf->r);
	free(pf);
}

/* ---- layouts for the kernel ---------------------------------------------------- */

static struct watched *watched(struct pyframes *pf, pid_t pid)
{
	for (int i = 0; i < pf->nw; i++)
		if (pf->w[i].pid == pid)
			return &pf->w[i];
	return NULL;
}

/* A slot for pid: a free one, else the oldest decision. */
static struct watched *watch_slot(struct pyframes *pf, pid_t pid)
{
	struct watched *w;
	int oldest = 0;

	if (pf->nw < WATCH_MAX) {
		w = &pf->w[pf->nw++];
	} else {
		for (int i = 1; i < WATCH_MAX; i++)
			if (pf->w[i].since_ns < pf->w[oldest].since_ns)
				oldest = i;
		w = &pf->w[oldest];
		pf->starting -= w->state == WATCH_STARTING;
	}
	*w = (struct watched){ .pid = pid };
	return w;
}

/* Try to give the kernel pid's layout; the state it leaves pid in. */
static enum watch_state install(struct pyframes *pf, pid_t pid)
{
	struct fh_py_layout l;
	__u32 key = (__u32)pid;
	int err;

	if (!pf->r || pf->o.layouts_fd < 0)
		return WATCH_NOT_PYTHON;
	err = pyrt_layout(pf->r, pid, &l);
	if (err == -EAGAIN)
		return WATCH_PENDING;
	if (err)
		return WATCH_NOT_PYTHON;
	if (bpf_map_update_elem(pf->o.layouts_fd, &key, &l, BPF_ANY)) {
		pf->st.layouts_failed++;
		if (!pf->full_said)
			log_warn("cannot give the kernel the layout of Python process %d (%s): its "
				 "locks are seen without Python frames", (int)pid, strerror(errno));
		pf->full_said = true;
		return WATCH_NOT_PYTHON;
	}
	if (pf->o.layouts_gen)
		(*pf->o.layouts_gen)++;	/* its threads look the map up again */
	pf->st.layouts++;
	log_debug("PID %d: CPython layout given to the kernel (TSS key %u)", (int)pid, l.tss_key);
	return WATCH_INSTALLED;
}

void pyframes_watch(struct pyframes *pf, pid_t pid, bool again)
{
	uint64_t now = clock_mono_ns();
	struct watched *w = watched(pf, pid);

	if (w && !again && (w->state != WATCH_NOT_PYTHON || now - w->since_ns < RECHECK_NS))
		return;
	if (w && w->state == WATCH_PENDING && !again)
		return;
	if (pf->r)
		pyrt_forget(pf->r, pid);	/* another program, or another process */
	if (!w)
		w = watch_slot(pf, pid);
	else if (w->state == WATCH_STARTING)
		pf->starting--;
	w->since_ns = now;
	w->state = install(pf, pid);
}

/* The file pid runs (st_dev, st_ino of /proc/PID/exe); false if gone. */
static bool exe_of(pid_t pid, dev_t *dev, ino_t *ino)
{
	char path[64];
	struct stat st;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	if (stat(path, &st))
		return false;
	*dev = st.st_dev;
	*ino = st.st_ino;
	return true;
}

void pyframes_watch_exec(struct pyframes *pf, pid_t pid)
{
	struct watched *w = watched(pf, pid);

	if (!pf->r || pf->o.layouts_fd < 0)
		return;
	if (!w)
		w = watch_slot(pf, pid);
	else if (w->state == WATCH_STARTING)
		pf->starting--;
	pf->starting++;
	w->state = WATCH_STARTING;
	w->python = -1;
	w->since_ns = clock_mono_ns();
	w->next_ns = w->since_ns;
	if (!exe_of(pid, &w->exe_dev, &w->exe_ino))
		w->exe_dev = w->exe_ino = 0;
}

bool pyframes_polling(const struct pyframes *pf)
{
	return pf->starting > 0;
}

/*
 * A program just exec'd: its layout as soon as its interpreter has its
 * thread-state key (before the program's first thread, with luck). A program
 * that is no Python may be a wrapper that execs one next (pyenv's shim, a
 * shell script, env): its exec is watched for the same way, each program
 * for STARTING_NS at most.
 */
static void poll_starting(struct pyframes *pf, struct watched *w, uint64_t now_ns)
{
	enum watch_state st;
	bool alive;
	dev_t dev = 0;
	ino_t ino = 0;

	if (now_ns < w->next_ns)
		return;
	w->next_ns = now_ns + POLL_NS;
	alive = exe_of(w->pid, &dev, &ino);
	if (alive && dev == w->exe_dev && ino == w->exe_ino)
		return;	/* not exec'd (again) yet */
	/* a Python is read afresh (not the program before its exec), once:
	 * each poll after that only asks whether its interpreter started */
	if (w->python < 0) {
		w->python = pyrt_program_is_python(w->pid) == 1;
		if (w->python)
			pyrt_forget(pf->r, w->pid);
	}
	st = w->python ? install(pf, w->pid) : WATCH_NOT_PYTHON;
	if (st == WATCH_NOT_PYTHON && w->python)
		pyrt_forget(pf->r, w->pid);	/* its libpython not mapped yet, maybe */
	if (alive && now_ns - w->since_ns < STARTING_NS) {
		if (w->python && st != WATCH_INSTALLED)
			return;	/* a Python still being loaded or started */
		if (!w->python) {
			w->exe_dev = dev;	/* a wrapper, maybe: its next exec */
			w->exe_ino = ino;
			w->python = -1;
			w->since_ns = now_ns;
			return;
		}
	}
	w->state = st;
	w->since_ns = now_ns;
	pf->starting--;
}

void pyframes_tick(struct pyframes *pf, uint64_t now_ns)
{
	for (int i = 0; i < pf->nw; i++) {
		struct watched *w = &pf->w[i];

		if (w->state == WATCH_STARTING) {
			if (now_ns - w->since_ns > STARTING_NS) {
				w->state = WATCH_NOT_PYTHON;
				pf->starting--;
				continue;
			}
			poll_starting(pf, w, now_ns);
			continue;
		}
		if (w->state != WATCH_PENDING)
			continue;
		w->state = install(pf, w->pid);
		if (w->state == WATCH_PENDING && now_ns - w->since_ns > PENDING_NS) {
			log_debug("PID %d: its interpreter did not start in %llu s: no Python frames",
				  (int)w->pid, PENDING_NS / 1000000000ull);
			w->state = WATCH_NOT_PYTHON;
		}
		if (w->state != WATCH_PENDING)
			w->since_ns = now_ns;
	}
}

/* ---- events as they arrive ------------------------------------------------------ */

static pid_t alias_of(const struct pyframes *pf, pid_t pid)
{
	for (int i = 0; i < ALIASES; i++)
		if (pf->alias[i].pid == pid)
			return pf->alias[i].via;
	return 0;
}

/* One frame of pid; a pid gone is read through its child, if it was given
 * one (pyframes_fork). */
static int resolve(struct pyframes *pf, pid_t pid, const struct fh_py_frame *fr,
		   struct pyrt_frame *out)
{
	int err = pf->ops.resolve(pf->ops.ctx, pid, fr->code, fr->instr, out);
	pid_t via;

	if (err == -ESRCH && (via = alias_of(pf, pid)))
		err = pf->ops.resolve(pf->ops.ctx, via, fr->code, fr->instr, out);
	return err;
}

/* The parent of ev is gone (it exited right after forking): read its
 * frames from the child, while it is there and has not exec'd. */
static void read_through_child(struct pyframes *pf, const struct fh_fork_event *ev)
{
	struct pyrt_frame f;
	const struct fh_py_frame *first = NULL;

	if (ev->py.status == FH_PY_WALKED && ev->py.n)
		first = &ev->py.f[0];
	for (__u32 i = 0; !first && i < ev->nr_locks && i < FH_EVENT_LOCKS; i++)
		if (ev->locks[i].py.status == FH_PY_WALKED && ev->locks[i].py.n)
			first = &ev->locks[i].py.f[0];
	if (!first || alias_of(pf, (pid_t)ev->pid) == (pid_t)ev->child_pid ||
	    pf->ops.resolve(pf->ops.ctx, (pid_t)ev->pid, first->code, first->instr, &f) != -ESRCH)
		return;
	pf->alias[pf->next_alias] = (struct alias){ (pid_t)ev->pid, (pid_t)ev->child_pid };
	pf->next_alias = (pf->next_alias + 1) % ALIASES;
}

/* Warm the caches with a stack's frames; the innermost one in *inner. */
static int resolve_now(struct pyframes *pf, pid_t pid, const struct fh_py_stack *st,
		       struct pyrt_frame *inner)
{
	int n = 0;

	for (int i = 0; i < st->n && i < FH_PY_FRAMES; i++) {
		struct pyrt_frame f;

		if (resolve(pf, pid, &st->f[i], &f))
			continue;
		if (!n++)
			*inner = f;
	}
	return n;
}

/* What the interpreter's own lock l is, if it is one (FH_LOCK_PY_*). */
static uint32_t internal_lock(struct pyframes *pf, pid_t pid, const struct fh_lock *l,
			      bool python_now)
{
	struct pyrt_frame inner;
	uint64_t sentinel;

	if (l->py.status == FH_PY_WALKED)
		return resolve_now(pf, pid, &l->py, &inner) ?
		       hazard_py_internal(inner.file, inner.function, inner.line, inner.firstline) :
		       0;	/* no Python frame: judged as a C lock */
	/* Taken before the kernel had the layout (a thread that started as
	 * the interpreter did): the sentinel is told by what it is. */
	if (python_now && l->kind == FH_KIND_SEM && pf->ops.thread_sentinel &&
	    !pf->ops.thread_sentinel(pf->ops.ctx, pid, (pid_t)l->holder_tid, &sentinel) &&
	    sentinel == l->addr)
		return FH_LOCK_PY_SENTINEL;
	return 0;
}

/* The stacks of a fork event in order, walked and each after a full one:
 * ev->py, ev->py_outer[0], ...; NULL past the last. */
static const struct fh_py_stack *fork_stack(const struct fh_fork_event *ev, int k)
{
	const struct fh_py_stack *prev = k > 1 ? &ev->py_outer[k - 2] : &ev->py;
	const struct fh_py_stack *st = k ? &ev->py_outer[k - 1] : &ev->py;

	if (k > FH_PY_FORK_OUTER || st->status != FH_PY_WALKED || (k && prev->n < FH_PY_FRAMES))
		return NULL;
	return st;
}

void pyframes_fork(struct pyframes *pf, struct fh_fork_event *ev)
{
	bool python_now = ev->py.status == FH_PY_WALKED;
	struct pyrt_frame inner;
	char name[PYRT_NAME_LEN];

	read_through_child(pf, ev);
	if (!python_now) {
		/* the kernel had no layout at the fork: not known yet, or
		 * dropped since it was given (an exec: what was decided is
		 * another program's) */
		struct watched *w = watched(pf, (pid_t)ev->pid);

		pyframes_watch(pf, (pid_t)ev->pid,
			       w && w->state == WATCH_INSTALLED && w->since_ns < ev->time_ns);
	}
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		struct fh_lock *l = &ev->locks[i];
		uint32_t internal;

		if (l->py.status != FH_PY_WALKED && !python_now)
			continue;	/* not Python, as far as anyone knows */
		internal = internal_lock(pf, (pid_t)ev->pid, l, python_now);
		l->flags = (__u16)((l->flags & ~FH_LOCK_PY_INTERNAL) | internal);
		pf->st.internal_locks += internal != 0;
		pyframes_thread(pf, (pid_t)ev->pid, (pid_t)l->holder_tid, NULL, name, sizeof(name));
	}
	if (python_now) {
		const struct fh_py_stack *st;

		for (int k = 0; (st = fork_stack(ev, k)); k++)
			resolve_now(pf, (pid_t)ev->pid, st, &inner);
		pyframes_thread(pf, (pid_t)ev->pid, (pid_t)ev->tid, NULL, name, sizeof(name));
	}
}

void pyframes_deadlock(struct pyframes *pf, struct fh_deadlock_event *ev)
{
	struct pyrt_rawframe raw[FH_PY_FRAMES];
	struct pyrt_frame inner;
	int n;

	if (ev->py.status != FH_PY_WALKED && pf->ops.thread_frames) {
		/* no layout to walk it with in the kernel: the child is
		 * frozen, read it now */
		n = pf->ops.thread_frames(pf->ops.ctx, (pid_t)ev->pid, (pid_t)ev->tid, raw,
					  FH_PY_FRAMES);
		if (n >= 0) {
			ev->py.status = FH_PY_WALKED;
			ev->py.n = (__u8)n;
			for (int i = 0; i < n; i++) {
				ev->py.f[i].code = raw[i].code;
				ev->py.f[i].instr = raw[i].instr;
			}
		}
	}
	if (ev->py.status == FH_PY_WALKED)
		resolve_now(pf, (pid_t)ev->pid, &ev->py, &inner);
}

/* ---- printing ------------------------------------------------------------------- */

int pyframes_stack(struct pyframes *pf, pid_t pid, const struct fh_py_stack *st,
		   struct pyrt_frame *out, int max)
{
	int n = 0;

	if (st->status != FH_PY_WALKED)
		return 0;
	for (int i = 0; i < st->n && i < FH_PY_FRAMES && n < max; i++)
		if (!resolve(pf, pid, &st->f[i], &out[n]))
			n++;
	return n;
}

int pyframes_fork_stack(struct pyframes *pf, const struct fh_fork_event *ev,
			struct pyrt_frame *out, int max)
{
	const struct fh_py_stack *st;
	int n = 0;

	for (int k = 0; n < max && (st = fork_stack(ev, k)); k++)
		n += pyframes_stack(pf, (pid_t)ev->pid, st, out + n, max - n);
	return n;
}

int pyframes_place(const struct pyrt_frame *f, int n)
{
	for (int i = 0; i < n; i++)
		if (!pycode_stdlib(f[i].file))
			return i;
	return 0;
}

int pyframes_thread(struct pyframes *pf, pid_t pid, pid_t tid, const char *os_name, char *buf,
		    size_t size)
{
	struct pyrt_info info;
	int err = pf->ops.thread_name ? pf->ops.thread_name(pf->ops.ctx, pid, tid, buf, size) :
					-ENOENT;

	/* 3.14+ give each OS thread its Thread's name (cut to 15 bytes) */
	if (err == -ENOTSUP && os_name && pf->r && pyrt_open(pf->r, pid, &info) == -ENOTSUP &&
	    info.major == 3 && info.minor >= 14 && size) {
		snprintf(buf, size, "%.*s", FH_COMM_LEN, os_name);
		return 0;
	}
	if (err && size)
		buf[0] = '\0';
	return err ? -ENOENT : 0;
}

struct pyrt *pyframes_reader(struct pyframes *pf)
{
	return pf ? pf->r : NULL;
}

void pyframes_get_stats(const struct pyframes *pf, struct pyframes_stats *st)
{
	*st = pf->st;
}

void pyframes_json(struct jw *w, const char *key, const struct pyrt_frame *f, int n)
{
	jw_arr_begin(w, key);
	for (int i = 0; i < n; i++) {
		jw_obj_begin(w, NULL);
		jw_str(w, "file", f[i].file);
		if (f[i].line)
			jw_int(w, "line", f[i].line);
		else
			jw_null(w, "line");
		jw_str(w, "function", f[i].function);
		jw_obj_end(w);
	}
	jw_arr_end(w);
}

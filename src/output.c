// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "advice.h"
#include "container.h"
#include "counters.h"
#include "escape.h"
#include "governor.h"
#include "hazard.h"
#include "json.h"
#include "otherthreads.h"
#include "output.h"
#include "pycode.h"
#include "pyframes.h"
#include "reinit.h"
#include "siteid.h"
#include "symbolize.h"
#include "ustacks.h"

/* Other threads a hazard lists in text without -v. */
#define TEXT_OTHER_THREADS	8

struct output {
	struct output_opts o;
	struct jw jw;
	struct fh_frame frames[FH_STACK_DEPTH + 1];
	struct pyrt_frame pyframes[FH_PY_FORK_FRAMES];
	bool failed;
};

struct output *output_new(const struct output_opts *opts)
{
	struct output *o = calloc(1, sizeof(*o));

	if (!o)
		return NULL;
	o->o = *opts;
	jw_init(&o->jw);
	return o;
}

void output_free(struct output *o)
{
	if (!o)
		return;
	jw_free(&o->jw);
	free(o);
}

const char *lock_kind_name(unsigned int kind)
{
	switch (kind) {
	case FH_KIND_MUTEX: return "mutex";
	case FH_KIND_RWLOCK_READ: return "rwlock-read";
	case FH_KIND_RWLOCK_WRITE: return "rwlock-write";
	case FH_KIND_SEM: return "sem";
	case FH_KIND_SPIN: return "spin";
	case FH_KIND_CUSTOM: return "custom";
	default: return "unknown";
	}
}

const char *child_outcome_name(unsigned int outcome)
{
	switch (outcome) {
	case FH_CHILD_EXEC: return "exec";
	case FH_CHILD_EXIT: return "exit";
	case FH_CHILD_DEADLOCK: return "deadlock";
	case FH_CHILD_ALIVE: return "alive";
	default: return "unknown";
	}
}

void fmt_rfc3339(int64_t real_ns, char *buf, size_t size)
{
	time_t secs = (time_t)(real_ns / 1000000000);
	long usec = (long)((real_ns % 1000000000) / 1000);
	struct tm tm;

	gmtime_r(&secs, &tm);
	snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, usec);
}

void fmt_duration(uint64_t ns, char *buf, size_t size)
{
	/* the unit is chosen after rounding: 999950ns is "1.0ms", not "1000.0us" */
	if (ns < 1000)
		snprintf(buf, size, "%" PRIu64 "ns", ns);
	else if (ns < 999950)
		snprintf(buf, size, "%.1fus", ns / 1e3);
	else if (ns < 999950000)
		snprintf(buf, size, "%.1fms", ns / 1e6);
	else
		snprintf(buf, size, "%.2fs", ns / 1e9);
}

static void fmt_clock(const struct output *o, uint64_t mono_ns, char *buf, size_t size)
{
	int64_t real = (int64_t)mono_ns + o->o.mono_to_real_ns;
	time_t secs = (time_t)(real / 1000000000);
	struct tm tm;

	localtime_r(&secs, &tm);
	strftime(buf, size, "%H:%M:%S", &tm);
}

static void emit_json(struct output *o)
{
	if (!o->failed && jw_write_line(&o->jw, o->o.f))
		o->failed = true;
	jw_reset(&o->jw);
}

static void json_header(struct output *o, const char *type, uint64_t mono_ns)
{
	char ts[40];

	fmt_rfc3339((int64_t)mono_ns + o->o.mono_to_real_ns, ts, sizeof(ts));
	jw_reset(&o->jw);
	jw_obj_begin(&o->jw, NULL);
	jw_str(&o->jw, "type", type);
	jw_str(&o->jw, "time", ts);
}

/* ---- stacks ------------------------------------------------------------ */

static int max_frames(const struct output *o)
{
	return o->o.stack_depth < FH_STACK_DEPTH ? o->o.stack_depth : FH_STACK_DEPTH;
}

/* A held lock's stack (symbolize.c says how it is made). */
static int lock_stack_frames(struct output *o, pid_t pid, const struct fh_lock *l)
{
	return syms_lock_stack(o->o.syms, pid, l, o->frames, max_frames(o));
}

/*
 * The stack of a fork call or a deadlocked wait: unwound with CFI from the
 * copy the kernel sent (ustacks.c) when there is one, else the frame-pointer
 * walk, which stops early in libraries built without frame pointers.
 */
static int event_stack_frames(struct output *o, pid_t pid, uint32_t tid, uint64_t time_ns,
			      int stack_id)
{
	bool cfi;

	return ustacks_frames(o->o.ustacks, o->o.syms, pid, tid, time_ns, stack_id, o->frames,
			      max_frames(o), &cfi);
}

/* The Python frames of a recorded stack of pid, into o->pyframes. */
static int py_frames(struct output *o, pid_t pid, const struct fh_py_stack *st)
{
	return o->o.py ? pyframes_stack(o->o.py, pid, st, o->pyframes, FH_PY_FRAMES) : 0;
}

/* A fork event's Python frames, into o->pyframes. */
static int py_fork_frames(struct output *o, const struct fh_fork_event *ev)
{
	return o->o.py ? pyframes_fork_stack(o->o.py, ev, o->pyframes, FH_PY_FORK_FRAMES) : 0;
}

/* Thread tid's Python thread name into buf ("" when it has none). */
static const char *py_thread(struct output *o, pid_t pid, pid_t tid, const char *os_name,
			     char *buf, size_t size)
{
	buf[0] = '\0';
	if (o->o.py)
		pyframes_thread(o->o.py, pid, tid, os_name, buf, size);
	return buf;
}

/* Python frames first, as people read a Python program: "py: f (a.py:3)". */
static void text_py_stack(struct output *o, int n, const char *indent)
{
	char text[PYRT_FUNC_LEN + PYRT_FILE_LEN + 32], esc[sizeof(text) * 4];

	for (int i = 0; i < n; i++) {
		const struct pyrt_frame *f = &o->pyframes[i];

		pycode_frame_text(f->file, f->function, f->line, text, sizeof(text));
		fprintf(o->o.f, "%spy: %s\n", indent, term_escape(text, (size_t)-1, esc, sizeof(esc)));
	}
}

/* Stacks are resolved when printed, from what is noted when an event names
 * a process: by then it may be gone (symbolize.c). */
void output_note_process(struct output *o, pid_t pid)
{
	if (o->o.syms)
		syms_note_process(o->o.syms, pid);
}

void output_note_fork(struct output *o, pid_t pid, pid_t child, const char *comm)
{
	if (o->o.syms)
		syms_note_fork(o->o.syms, pid, child, comm);
}

/* One frame (docs/json.md's frame). */
static void json_frame(struct output *o, const char *key, const struct fh_frame *f)
{
	jw_obj_begin(&o->jw, key);
	jw_addr(&o->jw, "addr", f->addr);
	jw_str(&o->jw, "symbol", f->known ? f->symbol : NULL);
	if (f->known)
		jw_uint(&o->jw, "offset", f->offset);
	else
		jw_null(&o->jw, "offset");
	jw_str(&o->jw, "module", f->has_module ? f->module : NULL);
	/* Unknown symbol, known module: enough to look it up offline. */
	if (!f->known && f->has_module)
		jw_uint(&o->jw, "module_offset", f->module_offset);
	if (f->file[0] && f->line) {
		jw_str(&o->jw, "file", f->file);
		jw_uint(&o->jw, "line", f->line);
	}
	if (f->build_id[0])
		jw_str(&o->jw, "build_id", f->build_id);
	if (f->n_inline > 0) {
		jw_arr_begin(&o->jw, "inline");
		for (int k = 0; k < f->n_inline && k < FH_INLINE_MAX; k++) {
			const struct fh_inline *in = &f->inl[k];

			jw_obj_begin(&o->jw, NULL);
			jw_str(&o->jw, "symbol", in->symbol[0] ? in->symbol : NULL);
			jw_str(&o->jw, "file", in->file[0] ? in->file : NULL);
			if (in->line)
				jw_uint(&o->jw, "line", in->line);
			else
				jw_null(&o->jw, "line");
			jw_obj_end(&o->jw);
		}
		jw_arr_end(&o->jw);
	}
	if (f->fp)
		jw_bool(&o->jw, "fp", true);
	jw_obj_end(&o->jw);
}

static void json_stack(struct output *o, const char *key, int n)
{
	jw_arr_begin(&o->jw, key);
	for (int i = 0; i < n; i++)
		json_frame(o, NULL, &o->frames[i]);
	jw_arr_end(&o->jw);
}

/* " (file.c:12)", the file as its basename, or "" when unknown. */
static const char *text_source(const char *file, unsigned int line, char *buf, size_t size)
{
	char esc[FH_FILE_LEN * 4];
	const char *base = strrchr(file, '/');

	if (!file[0] || !line)
		return "";
	term_escape(base ? base + 1 : file, (size_t)-1, esc, sizeof(esc));
	snprintf(buf, size, " (%s:%u)", esc, line);
	return buf;
}

static void text_stack(struct output *o, int n, const char *indent)
{
	char sym[FH_SYM_LEN * 4], mod[FH_MODULE_LEN * 4], src[FH_FILE_LEN * 4 + 32];

	for (int i = 0; i < n; i++) {
		const struct fh_frame *f = &o->frames[i];
		const char *base, *where = text_source(f->file, f->line, src, sizeof(src));

		if (f->has_module) {
			base = strrchr(f->module, '/');
			term_escape(base ? base + 1 : f->module, (size_t)-1, mod, sizeof(mod));
		}
		if (f->known) {
			term_escape(f->symbol, (size_t)-1, sym, sizeof(sym));
			fprintf(o->o.f, "%s#%d %s+0x%" PRIx64 "%s [%s]%s\n", indent, i, sym, f->offset,
				where, f->has_module ? mod : "?", f->fp ? " (fp)" : "");
		} else if (f->has_module) {
			fprintf(o->o.f, "%s#%d 0x%" PRIx64 "%s [%s+0x%" PRIx64 "]%s\n", indent, i,
				f->addr, where, mod, f->module_offset, f->fp ? " (fp)" : "");
		} else {
			fprintf(o->o.f, "%s#%d 0x%" PRIx64 "%s\n", indent, i, f->addr,
				f->fp ? " (fp)" : "");
		}
		/* The calls inlined at this address, innermost first, as in JSON. */
		for (int k = 0; k < f->n_inline && k < FH_INLINE_MAX; k++) {
			term_escape(f->inl[k].symbol[0] ? f->inl[k].symbol : "?", (size_t)-1, sym,
				    sizeof(sym));
			fprintf(o->o.f, "%s     inlined: %s%s\n", indent, sym,
				text_source(f->inl[k].file, f->inl[k].line, src, sizeof(src)));
		}
	}
}

/* ---- where the process runs (JSON) ------------------------------------------- */

/* The members after an event's own (docs/json.md): the daemon's site, the
 * cgroup and container, and what the kernel recorded of the process (NULL
 * exe_name: nothing), its executable's name and its PID in its namespace. */
static void json_where(struct output *o, const struct output_meta *meta, const char *exe_name,
		       __u32 ns_pid)
{
	const struct fh_container *k = meta ? meta->container : NULL;

	if (meta && meta->site)
		jw_str(&o->jw, "site", meta->site);
	jw_str(&o->jw, "cgroup", k && k->cgroup[0] ? k->cgroup : NULL);
	jw_str(&o->jw, "container_id", k && k->id[0] ? k->id : NULL);
	if (!exe_name)
		return;
	jw_strn(&o->jw, "exe_name", exe_name, strnlen(exe_name, FH_EXE_NAME_LEN));
	jw_uint(&o->jw, "ns_pid", ns_pid);
}

/* ---- fork ---------------------------------------------------------------- */

bool output_wants_fork(const struct output *o, const struct fh_fork_event *ev)
{
	return o->o.json || o->o.verbose || hazard_fork(ev);
}

bool output_shows_suppressed(const struct output *o)
{
	return o->o.json || o->o.verbose;
}

bool output_json(const struct output *o)
{
	return o->o.json;
}

/*
 * The language runtime a lock belongs to, when its exact caller tells: a
 * semaphore taken from CPython's own code (PyThread_acquire_lock_timed in
 * libpython, or in a python executable that links it statically) is a
 * threading.Lock, RLock or an interpreter lock. frames: the lock's stack (n).
 */
static const char *lock_runtime(const struct output *o, const struct fh_lock *l, int n)
{
	const char *base;

	if (l->kind != FH_KIND_SEM || n < 1 || !o->frames[0].has_module)
		return NULL;
	base = strrchr(o->frames[0].module, '/');
	base = base ? base + 1 : o->frames[0].module;
	if (!strncmp(base, "libpython", 9) || !strncmp(base, "python", 6))
		return "python";
	return NULL;
}

static void json_lock(struct output *o, const char *key, const struct fh_fork_event *ev,
		      const struct fh_lock *l, const char *suppressed_by)
{
	const char *runtime, *internal = hazard_internal_name(l->flags);
	char name[PYRT_NAME_LEN];
	int n;

	jw_obj_begin(&o->jw, key);
	jw_addr(&o->jw, "addr", l->addr);
	jw_str(&o->jw, "kind", lock_kind_name(l->kind));
	jw_uint(&o->jw, "holder_tid", l->holder_tid);
	jw_strn(&o->jw, "holder_comm", l->holder_comm, strnlen(l->holder_comm, FH_COMM_LEN));
	py_thread(o, (pid_t)ev->pid, (pid_t)l->holder_tid, l->holder_comm, name, sizeof(name));
	jw_str(&o->jw, "py_thread", name[0] ? name : NULL);
	jw_uint(&o->jw, "held_ns", ev->time_ns > l->acquired_ns ? ev->time_ns - l->acquired_ns : 0);
	jw_bool(&o->jw, "confirmed", l->flags & FH_LOCK_CONFIRMED);
	if (l->depth > 1)
		jw_uint(&o->jw, "depth", l->depth);
	if (l->flags & FH_LOCK_WATCHED)
		jw_bool(&o->jw, "watched", true);
	if (l->flags & FH_LOCK_SHARED_UNKNOWN)
		jw_bool(&o->jw, "shared_unknown", true);
	if (internal)
		jw_str(&o->jw, "internal", internal);
	pyframes_json(&o->jw, "py_stack", o->pyframes, py_frames(o, (pid_t)ev->pid, &l->py));
	n = lock_stack_frames(o, (pid_t)ev->pid, l);
	runtime = lock_runtime(o, l, n);
	if (runtime)
		jw_str(&o->jw, "runtime", runtime);
	if (suppressed_by)
		jw_str(&o->jw, "suppressed_by", suppressed_by);
	json_stack(o, "stack", n);
	jw_obj_end(&o->jw);
}

/* The rule that set lock i aside, or NULL. */
static const char *suppressed_by(const struct output_meta *meta, uint32_t i)
{
	return meta && meta->suppressed_by ? meta->suppressed_by[i] : NULL;
}

/* The locks of one role ("locks": the hazards, "own_locks", "shared_locks"). */
static void json_locks(struct output *o, const struct fh_fork_event *ev, const char *key,
		       enum hazard_lock role, const struct output_meta *meta)
{
	if (ev->flags & FH_FORK_LIGHT) {
		jw_null(&o->jw, key);
		return;
	}
	jw_arr_begin(&o->jw, key);
	for (__u32 i = 0; i < ev->nr_locks; i++)
		if (hazard_lock_role(ev, &ev->locks[i]) == role)
			json_lock(o, NULL, ev, &ev->locks[i], suppressed_by(meta, i));
	jw_arr_end(&o->jw);
}

/* A fork's or a deadlock's first members: the record's type and time, its thread. */
static void json_thread_header(struct output *o, const char *type, uint64_t time_ns, __u32 pid,
			       __u32 tid, const char comm[FH_COMM_LEN])
{
	json_header(o, type, time_ns);
	jw_uint(&o->jw, "pid", pid);
	jw_uint(&o->jw, "tid", tid);
	jw_strn(&o->jw, "comm", comm, strnlen(comm, FH_COMM_LEN));
}

/* Why a fork's locks were not tracked (FH_FORK_LIGHT): docs/json.md's
 * locks_untracked. */
static const char *untracked_reason(const struct fh_fork_event *ev)
{
	if (ev->flags & FH_FORK_GOVERNED)
		return "overhead";
	if (ev->flags & FH_FORK_NOLIB)
		return "no_lock_library";
	if (ev->flags & FH_FORK_UNPROBED)
		return "unprobed";
	return "light";
}

/* ---- what to do, who else runs ------------------------------------------------- */

/* "symbol+0x1c [module] (file.c:12)": where a frame is, for people. */
static void frame_brief(const struct fh_frame *f, char *buf, size_t size)
{
	char src[FH_FILE_LEN * 4 + 32], place[SITE_FRAME_LEN];

	siteid_frame_text(f, place, sizeof(place));
	snprintf(buf, size, "%s%s", place, text_source(f->file, f->line, src, sizeof(src)));
}

/*
 * A hazard's advice (advice.c), for the runtime and the lock at hand: its
 * first foreign lock, and where that was taken when the frame says (a
 * Python lock's native frame is the interpreter's: no site).
 */
static const char *fork_advice(struct output *o, const struct fh_fork_event *ev, char *buf,
			       size_t size)
{
	struct advice_case c = { .python_process = !strncmp(ev->exe_name, "python", 6) };
	char site[SITE_FRAME_LEN + FH_FILE_LEN];
	const struct fh_lock *l = NULL;
	int n;

	site[0] = '\0';
	for (__u32 i = 0; i < ev->nr_locks && !l; i++)
		if (hazard_lock_role(ev, &ev->locks[i]) == HAZARD_LOCK_FOREIGN)
			l = &ev->locks[i];
	if (l) {
		n = lock_stack_frames(o, (pid_t)ev->pid, l);
		c.python_lock = lock_runtime(o, l, n) != NULL;
		if (n > 0 && o->frames[0].has_module && !c.python_lock)
			frame_brief(&o->frames[0], site, sizeof(site));
	}
	c.python_process |= c.python_lock;
	return advice_format(advice_choose(&c), site, buf, size);
}

/*
 * The start routine of another thread into o->frames[0]: read in its
 * process with its own glibc's layout, or else by the kernel with the
 * host's, which only counts when it lands on a function's first byte.
 * false: unknown.
 */
static bool other_thread_start(struct output *o, const struct fh_fork_event *ev,
			       const struct other_thread_note *t)
{
	struct fh_frame *f = &o->frames[0];

	if (!t->start)
		return false;
	syms_resolve(o->o.syms, (pid_t)ev->pid, t->start, f);
	return t->verified || (f->known && f->offset == 0);
}

/* The other threads of a fork (otherthreads.c); null when their record was
 * never received. */
static void json_other_threads(struct output *o, const struct fh_fork_event *ev)
{
	uint32_t n;
	const struct other_thread_note *t = otherthreads_get(o->o.others, ev, &n);

	if (!t && ev->nr_other) {
		jw_null(&o->jw, "other_threads");
		return;
	}
	jw_arr_begin(&o->jw, "other_threads");
	for (uint32_t i = 0; t && i < n; i++) {
		jw_obj_begin(&o->jw, NULL);
		jw_uint(&o->jw, "tid", t[i].tid);
		jw_strn(&o->jw, "comm", t[i].comm, strnlen(t[i].comm, FH_COMM_LEN));
		jw_str(&o->jw, "py_thread", t[i].py_thread[0] ? t[i].py_thread : NULL);
		if (other_thread_start(o, ev, &t[i]))
			json_frame(o, "start", &o->frames[0]);
		else
			jw_null(&o->jw, "start");
		jw_obj_end(&o->jw);
	}
	jw_arr_end(&o->jw);
	if (ev->other_omitted)
		jw_uint(&o->jw, "other_threads_omitted", ev->other_omitted);
}

static void json_fork(struct output *o, const struct fh_fork_event *ev,
		      const struct output_meta *meta)
{
	char advice[2048], name[PYRT_NAME_LEN];
	int n;

	json_thread_header(o, "fork", ev->time_ns, ev->pid, ev->tid, ev->comm);
	py_thread(o, (pid_t)ev->pid, (pid_t)ev->tid, ev->comm, name, sizeof(name));
	jw_str(&o->jw, "py_thread", name[0] ? name : NULL);
	jw_uint(&o->jw, "child_pid", ev->child_pid);
	jw_uint(&o->jw, "threads", ev->threads);
	jw_str(&o->jw, "severity", hazard_fork(ev) ? "hazard" : "info");
	json_locks(o, ev, "locks", HAZARD_LOCK_FOREIGN, meta);
	json_locks(o, ev, "own_locks", HAZARD_LOCK_OWN, meta);
	json_locks(o, ev, "shared_locks", HAZARD_LOCK_SHARED, meta);
	json_locks(o, ev, "internal_locks", HAZARD_LOCK_INTERNAL, meta);
	if (ev->flags & FH_FORK_LIGHT)
		jw_str(&o->jw, "locks_untracked", untracked_reason(ev));
	if (ev->flags & FH_FORK_WATCHED)
		jw_bool(&o->jw, "locks_watched", true);
	if (ev->locks_omitted)
		jw_uint(&o->jw, "locks_omitted", ev->locks_omitted);
	if (ev->flags & FH_FORK_TRUNCATED)
		jw_bool(&o->jw, "threads_truncated", true);
	if (meta && meta->suppressed)
		jw_bool(&o->jw, "suppressed", true);
	if (hazard_fork(ev))
		jw_str(&o->jw, "advice", fork_advice(o, ev, advice, sizeof(advice)));
	json_other_threads(o, ev);
	pyframes_json(&o->jw, "py_stack", o->pyframes, py_fork_frames(o, ev));
	n = event_stack_frames(o, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id);
	json_stack(o, "stack", n);
	json_where(o, meta, ev->exe_name, ev->ns_pid);
	jw_uint(&o->jw, "child_ns_pid", ev->ns_child_pid);
	jw_obj_end(&o->jw);
	emit_json(o);
}

static void text_prefix(struct output *o, uint64_t mono_ns, __u32 pid, const char *tid,
			const char *comm, size_t comm_len, const char *child, const char *thr)
{
	char clock[16], name[FH_COMM_LEN * 4 + 1];

	fmt_clock(o, mono_ns, clock, sizeof(clock));
	term_escape(comm, comm_len, name, sizeof(name));
	fprintf(o->o.f, "%-8s %-7u %-7s %-16.16s %-7s %-4s ", clock, pid, tid, name, child, thr);
}

/* ' "name"', the thread's Python name escaped, or "" when it has none. */
static const char *text_py_thread(struct output *o, pid_t pid, pid_t tid, const char *os_name,
				  char *buf, size_t size)
{
	char name[PYRT_NAME_LEN], esc[PYRT_NAME_LEN * 4];

	if (!py_thread(o, pid, tid, os_name, name, sizeof(name))[0])
		return "";
	snprintf(buf, size, " \"%s\"", term_escape(name, (size_t)-1, esc, sizeof(esc)));
	return buf;
}

/* " (suppressed by FILE:LINE)" after what a rule set aside (-v names it). */
static void text_suppressed(struct output *o, const char *rule)
{
	char where[1024];

	if (!rule)
		return;
	term_escape(rule, (size_t)-1, where, sizeof(where));
	if (o->o.verbose)
		fprintf(o->o.f, " (suppressed by %s)", where);
	else
		fputs(" (suppressed)", o->o.f);
}

/* rule: the rule that set the lock aside; why: how the child was seen to
 * re-create it; NULL: none. */
static void text_lock_line(struct output *o, const struct fh_fork_event *ev, const struct fh_lock *l,
			   const char *indent, const char *rule, const char *why)
{
	char held[32], name[FH_COMM_LEN * 4 + 1], pyname[PYRT_NAME_LEN * 4 + 4];
	const char *runtime, *internal = hazard_internal_name(l->flags);
	int n, npy;

	fmt_duration(ev->time_ns > l->acquired_ns ? ev->time_ns - l->acquired_ns : 0, held,
		     sizeof(held));
	term_escape(l->holder_comm, strnlen(l->holder_comm, FH_COMM_LEN), name, sizeof(name));
	n = lock_stack_frames(o, (pid_t)ev->pid, l);
	runtime = lock_runtime(o, l, n);
	if (l->flags & FH_LOCK_WATCHED)	/* no acquisition seen: no time */
		fprintf(o->o.f, "%s%s 0x%llx owned by %u (%s)%s, read from its word", indent,
			lock_kind_name(l->kind), (unsigned long long)l->addr, l->holder_tid, name,
			text_py_thread(o, (pid_t)ev->pid, (pid_t)l->holder_tid, l->holder_comm,
				       pyname, sizeof(pyname)));
	else
		fprintf(o->o.f, "%s%s%s%s 0x%llx held by %u (%s)%s for %s%s%s%s%s", indent,
			runtime ? runtime : "", runtime ? " " : "", lock_kind_name(l->kind),
			(unsigned long long)l->addr, l->holder_tid, name,
			text_py_thread(o, (pid_t)ev->pid, (pid_t)l->holder_tid, l->holder_comm, pyname,
				       sizeof(pyname)),
			held, l->depth > 1 ? " (recursive)" : "",
			l->flags & FH_LOCK_CONFIRMED ? "" : " (unconfirmed)",
			internal ? ": the interpreter's " : "", internal ? internal : "");
	text_suppressed(o, rule);
	fputc('\n', o->o.f);
	if (l->flags & FH_LOCK_WATCHED)
		fputs("        last taken while probed at:\n", o->o.f);
	if (l->flags & FH_LOCK_SHARED_UNKNOWN)
		fputs("        (whether it is in shared memory could not be checked)\n", o->o.f);
	if (why)
		fprintf(o->o.f, "        mitigated: the child re-created it (%s)\n", why);
	npy = py_frames(o, (pid_t)ev->pid, &l->py);
	text_py_stack(o, npy, "        ");
	/* o->frames is still the lock's: py_frames does not touch it */
	text_stack(o, n, "        ");
}

/* A paragraph for people, escaped, wrapped under `lead` at 78 columns. */
static void text_paragraph(struct output *o, const char *lead, const char *text)
{
	static const char indent[] = "        ";
	char esc[4096];
	const char *p = esc;
	size_t col = strlen(lead);
	bool first = true;

	term_escape(text, (size_t)-1, esc, sizeof(esc));
	fputs(lead, o->o.f);
	while (*p) {
		size_t w = strcspn(p, " ");

		if (!first && col + 1 + w > 78) {
			fprintf(o->o.f, "\n%s", indent);
			col = sizeof(indent) - 1;
		} else if (!first) {
			fputc(' ', o->o.f);
			col++;
		}
		fwrite(p, 1, w, o->o.f);
		col += w;
		first = false;
		p += w;
		while (*p == ' ')
			p++;
	}
	fputc('\n', o->o.f);
}

/* Who else ran at the fork: up to TEXT_OTHER_THREADS lines (all with -v). */
static void text_other_threads(struct output *o, const struct fh_fork_event *ev)
{
	char comm[FH_COMM_LEN * 4 + 1], py[OTHER_PY_NAME_LEN * 4 + 8], start[SITE_FRAME_LEN * 4];
	uint32_t n, shown;
	const struct other_thread_note *t = otherthreads_get(o->o.others, ev, &n);

	if (!t || !n)
		return;
	shown = !o->o.verbose && n > TEXT_OTHER_THREADS ? TEXT_OTHER_THREADS : n;
	fputs("    other threads:\n", o->o.f);
	for (uint32_t i = 0; i < shown; i++) {
		char place[SITE_FRAME_LEN];

		term_escape(t[i].comm, strnlen(t[i].comm, FH_COMM_LEN), comm, sizeof(comm));
		py[0] = start[0] = '\0';
		if (t[i].py_thread[0]) {
			char name[OTHER_PY_NAME_LEN * 4];

			term_escape(t[i].py_thread, (size_t)-1, name, sizeof(name));
			snprintf(py, sizeof(py), " \"%s\"", name);
		}
		if (other_thread_start(o, ev, &t[i])) {
			siteid_frame_text(&o->frames[0], place, sizeof(place));
			term_escape(place, (size_t)-1, start, sizeof(start));
		}
		fprintf(o->o.f, "        %u (%s)%s%s%s\n", t[i].tid, comm, py,
			start[0] ? " started at " : t[i].tid == ev->pid ? " the main thread" : "",
			start);
	}
	if (n - shown + ev->other_omitted)
		fprintf(o->o.f, "        ... and %u more\n", n - shown + ev->other_omitted);
}

static void text_verdict(struct output *o, const struct fh_fork_event *ev,
			 const struct fh_child_event *fate, const struct fh_deadlock_event *dl)
{
	char after[32];

	if (dl) {
		fmt_duration(dl->time_ns - ev->time_ns, after, sizeof(after));
		fprintf(o->o.f, "    -> child %u DEADLOCKED after %s on futex 0x%llx", dl->pid,
			after, (unsigned long long)dl->futex);
		if (dl->flags & FH_DL_OWNER_KNOWN)
			fprintf(o->o.f, " owned by %u", dl->owner_tid);
		fputc('\n', o->o.f);
		return;
	}
	if (!fate)
		return;
	fmt_duration(fate->time_ns - fate->fork_ns, after, sizeof(after));
	switch (fate->outcome) {
	case FH_CHILD_EXEC:
		fprintf(o->o.f, "    -> child %u exec'd after %s (benign)\n", fate->pid, after);
		break;
	case FH_CHILD_EXIT:
		fprintf(o->o.f, "    -> child %u exited after %s without exec\n", fate->pid, after);
		break;
	case FH_CHILD_ALIVE:
		fprintf(o->o.f, "    -> child %u still alive, no exec after %s\n", fate->pid, after);
		break;
	default:
		break;
	}
}

static void text_fork(struct output *o, const struct fh_fork_event *ev,
		      const struct fh_child_event *fate, const struct fh_deadlock_event *dl,
		      const struct output_meta *meta)
{
	char tid[16], child[16], thr[16], advice[2048];
	__u32 foreign = hazard_foreign_locks(ev);
	int n;

	snprintf(tid, sizeof(tid), "%u", ev->tid);
	snprintf(child, sizeof(child), "%u", ev->child_pid);
	snprintf(thr, sizeof(thr), "%u", ev->threads);
	text_prefix(o, ev->time_ns, ev->pid, tid, ev->comm, strnlen(ev->comm, FH_COMM_LEN), child,
		    thr);
	if ((ev->flags & FH_FORK_LIGHT) && (ev->flags & FH_FORK_GOVERNED))
		fputs("fork (locks not tracked: the overhead governor detached its lock probes)\n",
		      o->o.f);
	else if (ev->flags & FH_FORK_LIGHT)
		fputs("fork (locks not tracked)\n", o->o.f);
	else if (foreign)
		fprintf(o->o.f, "%s: %u foreign lock%s%s\n",
			meta && meta->suppressed ? "hazard, suppressed" : "HAZARD", foreign,
			foreign == 1 ? "" : "s",
			ev->flags & FH_FORK_WATCHED ? " (word watch: probes detached by the "
						      "overhead governor)" : "");
	else if (ev->flags & FH_FORK_WATCHED)
		fputs("fork, no watched lock owned by another thread (probes detached by the "
		      "overhead governor)\n", o->o.f);
	else
		fputs("fork, no foreign lock held\n", o->o.f);
	if (foreign && meta && meta->site)
		fprintf(o->o.f, "    site %s\n", meta->site);
	if (foreign && o->o.syms && !syms_can_resolve(o->o.syms, (pid_t)ev->pid))
		fputs("    (addresses only: the process and its child had exited before their memory "
		      "map was read)\n", o->o.f);

	for (__u32 i = 0; i < ev->nr_locks; i++) {
		const struct fh_lock *l = &ev->locks[i];
		const char *why = NULL;

		if (hazard_lock_role(ev, l) != HAZARD_LOCK_FOREIGN)
			continue;
		if (meta && meta->ri)
			reinit_has(meta->ri, l->addr, &why);
		text_lock_line(o, ev, l, "    ", suppressed_by(meta, i), why);
	}
	if (ev->locks_omitted)
		fprintf(o->o.f, "    ... and %u more locks\n", ev->locks_omitted);
	/* not hazards: the forking thread's own locks, those the parent shares
	 * with the child, and the interpreter's own (-v) */
	for (__u32 i = 0; i < ev->nr_locks && o->o.verbose; i++) {
		enum hazard_lock role = hazard_lock_role(ev, &ev->locks[i]);

		if (role == HAZARD_LOCK_OWN)
			text_lock_line(o, ev, &ev->locks[i], "    own: ", NULL, NULL);
		else if (role == HAZARD_LOCK_SHARED)
			text_lock_line(o, ev, &ev->locks[i], "    shared (not inherited): ", NULL, NULL);
		else if (role == HAZARD_LOCK_INTERNAL)
			text_lock_line(o, ev, &ev->locks[i], "    internal: ", NULL, NULL);
	}
	if (foreign || o->o.verbose > 1) {
		char pyname[PYRT_NAME_LEN * 4 + 4];
		int npy = py_fork_frames(o, ev);

		n = event_stack_frames(o, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id);
		if (n || npy) {
			fprintf(o->o.f, "    fork called from%s:\n",
				text_py_thread(o, (pid_t)ev->pid, (pid_t)ev->tid, ev->comm, pyname,
					       sizeof(pyname)));
			text_py_stack(o, npy, "        ");
			text_stack(o, n, "        ");
		}
	}
	if (foreign || o->o.verbose)
		text_other_threads(o, ev);
	if (foreign && hazard_mitigated(ev, meta ? meta->ri : NULL))
		fputs("    no change needed: the child re-created every lock it inherited held\n",
		      o->o.f);
	else if (foreign)
		text_paragraph(o, "    what to do: ", fork_advice(o, ev, advice, sizeof(advice)));
	text_verdict(o, ev, fate, dl);
}

void output_fork(struct output *o, const struct fh_fork_event *ev,
		 const struct fh_child_event *fate, const struct fh_deadlock_event *dl,
		 const struct output_meta *meta)
{
	if (!output_wants_fork(o, ev))
		return;
	if (o->o.json)
		json_fork(o, ev, meta);
	else
		text_fork(o, ev, fate, dl, meta);
}

/* ---- child, deadlock, lost, summary ------------------------------------ */

void output_child(struct output *o, const struct fh_child_event *ev,
		  const struct output_meta *meta)
{
	uint64_t after = ev->time_ns > ev->fork_ns ? ev->time_ns - ev->fork_ns : 0;
	const struct reinit_set *ri = meta ? meta->ri : NULL;
	char dur[32], what[96];

	if (o->o.json) {
		json_header(o, "child", ev->time_ns);
		jw_uint(&o->jw, "pid", ev->pid);
		jw_uint(&o->jw, "parent_pid", ev->parent_pid);
		jw_str(&o->jw, "outcome", child_outcome_name(ev->outcome));
		jw_uint(&o->jw, "after_ns", after);
		if (ev->outcome == FH_CHILD_EXIT) {
			if ((ev->exit_code & 0x7f) == 0)
				jw_int(&o->jw, "exit_status", (ev->exit_code >> 8) & 0xff);
			else
				jw_int(&o->jw, "signal", ev->exit_code & 0x7f);
		}
		jw_arr_begin(&o->jw, "reinitialized");
		for (uint32_t i = 0; ri && i < ri->n && i < REINIT_MAX; i++)
			jw_addr(&o->jw, NULL, ri->addr[i]);
		jw_arr_end(&o->jw);
		json_where(o, meta, NULL, 0);
		jw_obj_end(&o->jw);
		emit_json(o);
		return;
	}
	if (ev->outcome == FH_CHILD_DEADLOCK)
		return;	/* the DEADLOCK record that follows says it, with more */
	fmt_duration(after, dur, sizeof(dur));
	switch (ev->outcome) {
	case FH_CHILD_EXEC:
		snprintf(what, sizeof(what), "child of %u exec'd after %s (benign)", ev->parent_pid, dur);
		break;
	case FH_CHILD_EXIT:
		snprintf(what, sizeof(what), "child of %u exited after %s", ev->parent_pid, dur);
		break;
	case FH_CHILD_ALIVE:
		snprintf(what, sizeof(what), "child of %u still alive, no exec after %s",
			 ev->parent_pid, dur);
		break;
	default:
		snprintf(what, sizeof(what), "child of %u DEADLOCKED after %s", ev->parent_pid, dur);
		break;
	}
	text_prefix(o, ev->time_ns, ev->pid, "-", "", 0, "-", "-");
	if (ri && ri->n)
		fprintf(o->o.f, "%s; it re-created %u inherited lock%s\n", what, ri->n,
			ri->n == 1 ? "" : "s");
	else
		fprintf(o->o.f, "%s\n", what);
}

void output_deadlock(struct output *o, const struct fh_deadlock_event *ev,
		     const struct fh_lock *lock, const struct fh_fork_event *fork,
		     const struct output_meta *meta)
{
	char tid[16];
	int n;

	if (o->o.json) {
		json_thread_header(o, "deadlock", ev->time_ns, ev->pid, ev->tid, ev->comm);
		jw_uint(&o->jw, "parent_pid", ev->parent_pid);
		jw_addr(&o->jw, "futex", ev->futex);
		if (ev->flags & FH_DL_OWNER_KNOWN)
			jw_uint(&o->jw, "owner_tid", ev->owner_tid);
		else if (lock)
			jw_uint(&o->jw, "owner_tid", lock->holder_tid);
		else
			jw_null(&o->jw, "owner_tid");
		if (lock && fork)
			json_lock(o, "lock", fork, lock, NULL);
		else
			jw_null(&o->jw, "lock");
		if (meta && meta->suppressed) {
			jw_bool(&o->jw, "suppressed", true);
			jw_str(&o->jw, "suppressed_by", suppressed_by(meta, 0));
		}
		/* read from the child: the code it runs is the frozen copy */
		pyframes_json(&o->jw, "py_stack", o->pyframes, py_frames(o, (pid_t)ev->pid, &ev->py));
		n = event_stack_frames(o, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id);
		json_stack(o, "stack", n);
		json_where(o, meta, ev->exe_name, ev->ns_pid);
		jw_obj_end(&o->jw);
		emit_json(o);
		return;
	}
	snprintf(tid, sizeof(tid), "%u", ev->tid);
	text_prefix(o, ev->time_ns, ev->pid, tid, ev->comm, strnlen(ev->comm, FH_COMM_LEN), "-", "1");
	fprintf(o->o.f, "%s: child of %u blocked forever\n", meta && meta->suppressed ?
		"deadlock, suppressed" : "DEADLOCK", ev->parent_pid);
	if (meta && meta->site) {
		fprintf(o->o.f, "    site %s", meta->site);
		text_suppressed(o, suppressed_by(meta, 0));
		fputc('\n', o->o.f);
	}
	fprintf(o->o.f, "    waits on futex 0x%llx", (unsigned long long)ev->futex);
	if (ev->flags & FH_DL_OWNER_KNOWN)
		fprintf(o->o.f, " owned by %u, a thread of the parent", ev->owner_tid);
	fputc('\n', o->o.f);
	if (lock && fork)
		text_lock_line(o, fork, lock, "    inherited ", NULL, NULL);
	n = event_stack_frames(o, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id);
	{
		int npy = py_frames(o, (pid_t)ev->pid, &ev->py);

		if (n || npy) {
			fputs("    waiting in:\n", o->o.f);
			text_py_stack(o, npy, "        ");
			text_stack(o, n, "        ");
		}
	}
}

/* ---- governor -------------------------------------------------------- */

static const char *gov_action_name(enum gov_action a)
{
	switch (a) {
	case GOV_DOWNGRADE: return "downgrade";
	case GOV_REARM: return "rearm";
	case GOV_RESTORE: return "restore";
	default: return "unknown";
	}
}

static void json_governor(struct output *o, const struct gov_event *ev)
{
	bool measured = ev->action != GOV_REARM;

	json_header(o, "governor", ev->time_ns);
	jw_uint(&o->jw, "pid", (unsigned long long)ev->pid);
	jw_strn(&o->jw, "comm", ev->comm, strnlen(ev->comm, FH_COMM_LEN));
	jw_str(&o->jw, "action", gov_action_name(ev->action));
	jw_num(&o->jw, "budget_pct", ev->budget_pct, 3);
	jw_num(&o->jw, "hit_ns", ev->hit_ns, 1);
	jw_uint(&o->jw, "window_ns", ev->window_ns);
	if (measured) {
		jw_uint(&o->jw, "hits", ev->hits);
		jw_uint(&o->jw, "cost_ns", ev->cost_ns);
		jw_uint(&o->jw, "cpu_ns", ev->cpu_ns);
	} else {
		jw_null(&o->jw, "hits");
		jw_null(&o->jw, "cost_ns");
		jw_null(&o->jw, "cpu_ns");
	}
	if (measured && ev->overhead_pct >= 0)
		jw_num(&o->jw, "overhead_pct", ev->overhead_pct, 3);
	else
		jw_null(&o->jw, "overhead_pct");
	if (ev->action == GOV_DOWNGRADE)
		jw_uint(&o->jw, "backoff_ns", ev->backoff_ns);
	else
		jw_null(&o->jw, "backoff_ns");
	jw_uint(&o->jw, "downgrades", ev->downgrades);
	jw_obj_end(&o->jw);
	emit_json(o);
}

void governor_describe(const struct gov_event *ev, char *buf, size_t size)
{
	char window[32], backoff[32], share[48];

	fmt_duration(ev->window_ns, window, sizeof(window));
	fmt_duration(ev->backoff_ns, backoff, sizeof(backoff));
	if (ev->overhead_pct >= 0)
		snprintf(share, sizeof(share), "%.1f%% of its CPU time", ev->overhead_pct);
	else
		snprintf(share, sizeof(share), "%.1fms, with no CPU time of its own seen",
			 (double)ev->cost_ns / 1e6);
	switch (ev->action) {
	case GOV_DOWNGRADE:
		snprintf(buf, size, "lock probes cost %s over %s (budget %g%%): locks not "
			 "tracked, tried again in %s", share, window, ev->budget_pct, backoff);
		break;
	case GOV_REARM:
		snprintf(buf, size, "lock probes attached again for %s (downgraded %u time%s)",
			 window, ev->downgrades, ev->downgrades == 1 ? "" : "s");
		break;
	default:
		snprintf(buf, size, "lock probes cost %s over %s (budget %g%%): locks tracked again",
			 share, window, ev->budget_pct);
		break;
	}
}

void output_governor(struct output *o, const struct gov_event *ev)
{
	char what[256];

	if (o->o.json) {
		json_governor(o, ev);
		return;
	}
	governor_describe(ev, what, sizeof(what));
	text_prefix(o, ev->time_ns, (__u32)ev->pid, "-", ev->comm, strnlen(ev->comm, FH_COMM_LEN),
		    "-", "-");
	fprintf(o->o.f, "%s%s\n", ev->action == GOV_DOWNGRADE ? "GOVERNOR: " : "governor: ", what);
}

void output_lost(struct output *o, uint64_t events, uint64_t now_ns)
{
	char clock[16];

	if (o->o.json) {
		json_header(o, "lost", now_ns);
		jw_uint(&o->jw, "events", events);
		jw_obj_end(&o->jw);
		emit_json(o);
		return;
	}
	fmt_clock(o, now_ns, clock, sizeof(clock));
	fprintf(o->o.f, "%-8s LOST %" PRIu64 " events: the ring buffer was full\n", clock, events);
}

void output_summary(struct output *o, uint64_t now_ns, const struct fh_counts *c)
{
	bool dropped = false;

	if (o->o.json) {
		json_header(o, "summary", now_ns);
		for (int i = 0; i < FH_CNT_MAX; i++) {
			if (i == FH_CNT_FIRST_DROPPED)
				jw_obj_begin(&o->jw, "dropped");
			jw_uint(&o->jw, fh_counters[i].key, c->v[i]);
		}
		jw_obj_end(&o->jw);
		jw_obj_end(&o->jw);
		emit_json(o);
		return;
	}
	fputc('\n', o->o.f);
	for (int i = 0; i < FH_CNT_FIRST_DROPPED; i++) {
		if (!(fh_counters[i].flags & FH_CNT_ASIDE))
			fprintf(o->o.f, "%s%" PRIu64 " %s", i ? ", " : "", c->v[i], fh_counters[i].text);
		else if (c->v[i])
			fprintf(o->o.f, " (%" PRIu64 " %s)", c->v[i], fh_counters[i].text);
	}
	fputc('\n', o->o.f);
	for (int i = FH_CNT_FIRST_DROPPED; i < FH_CNT_MAX; i++)
		dropped |= c->v[i] != 0;
	if (!dropped)
		return;
	fputs("not tracked (limits reached): ", o->o.f);
	for (int i = FH_CNT_FIRST_DROPPED; i < FH_CNT_MAX; i++)
		fprintf(o->o.f, "%s%" PRIu64 " %s", i > FH_CNT_FIRST_DROPPED ? ", " : "", c->v[i],
			fh_counters[i].text);
	fputc('\n', o->o.f);
}

void output_start(struct output *o)
{
	if (o->o.json)
		return;
	fprintf(o->o.f, "%-8s %-7s %-7s %-16s %-7s %-4s %s\n", "TIME", "PID", "TID", "COMM", "CHILD",
		"THR", "EVENT");
}

void output_flush(struct output *o)
{
	if (fflush(o->o.f) != 0 || ferror(o->o.f))
		o->failed = true;
}

bool output_failed(const struct output *o)
{
	return o->failed;
}

void output_set_file(struct output *o, FILE *f)
{
	o->o.f = f;
	o->failed = false;
}

struct jw *output_json_begin(struct output *o, const char *type, uint64_t mono_ns)
{
	json_header(o, type, mono_ns);
	return &o->jw;
}

void output_json_end(struct output *o)
{
	jw_obj_end(&o->jw);
	emit_json(o);
}

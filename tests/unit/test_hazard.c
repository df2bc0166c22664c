// SPDX-License-Identifier: GPL-2.0
/*
 * hazard.c's rule for the interpreter's own locks, and pyframes.c marking
 * them on fork events as they arrive (frames and names from a stand-in for
 * the process: no Python needed).
 */
#include <errno.h>
#include "forkhazard.h"
#include "hazard.h"
#include "json.h"
#include "pyframes.h"
#include "unit.h"

#define STDLIB	"/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py"
#define DEBIAN	"/usr/lib/python3.11/threading.py"

UNIT_TEST(sentinel_by_the_function_that_took_it)
{
	/* 3.11+ qualified names, 3.10's bare ones, any install of the stdlib */
	CHECK_INT(hazard_py_internal(STDLIB, "Thread._set_tstate_lock", 1049, 1043),
		  FH_LOCK_PY_SENTINEL);
	CHECK_INT(hazard_py_internal(DEBIAN, "_set_tstate_lock", 992, 986), FH_LOCK_PY_SENTINEL);
	CHECK_INT(hazard_py_internal("/usr/lib64/python3.10/threading.py",
				     "_reset_internal_locks", 895, 885), FH_LOCK_PY_SENTINEL);
	CHECK_INT(hazard_py_internal(STDLIB, "Thread._wait_for_tstate_lock", 1167, 1153),
		  FH_LOCK_PY_SENTINEL);
	/* a subclass's own method of that name is not the interpreter's */
	CHECK_INT(hazard_py_internal(STDLIB, "Worker._set_tstate_lock", 10, 5), 0);
	/* a module named threading.py that is not the standard library's */
	CHECK_INT(hazard_py_internal("/srv/venv/lib/python3.12/site-packages/threading.py",
				     "Thread._set_tstate_lock", 1049, 1043), 0);
	CHECK_INT(hazard_py_internal("/srv/app/threading.py", "_set_tstate_lock", 9, 3), 0);
	CHECK_INT(hazard_py_internal("threading.py", "_set_tstate_lock", 9, 3), 0);
	/* the user's own locks, and logging's, are hazards */
	CHECK_INT(hazard_py_internal("/srv/app/app.py", "refresh_cache", 42, 30), 0);
	CHECK_INT(hazard_py_internal("/usr/lib/python3.11/logging/__init__.py", "Handler.acquire",
				     922, 917), 0);
}

UNIT_TEST(condition_waiter_by_line_not_the_restore)
{
	/* Condition.wait at 323 (3.12): waiter.acquire() at +26, +32, +36, +38 */
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 349, 323), FH_LOCK_PY_WAITER);
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 355, 323), FH_LOCK_PY_WAITER);
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 359, 323), FH_LOCK_PY_WAITER);
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 361, 323), FH_LOCK_PY_WAITER);
	CHECK_INT(hazard_py_internal(DEBIAN, "wait", 320, 288), FH_LOCK_PY_WAITER);
	/* +41: self._acquire_restore(saved_state), an RLock taken back: held */
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 364, 323), 0);
	/* no line: not told */
	CHECK_INT(hazard_py_internal(STDLIB, "Condition.wait", 0, 323), 0);
	/* Event.wait takes its condition's lock through Condition.__enter__ */
	CHECK_INT(hazard_py_internal(STDLIB, "Event.wait", 349, 323), 0);
	CHECK_STR(hazard_internal_name(FH_LOCK_PY_WAITER), "condition-waiter");
	CHECK_STR(hazard_internal_name(FH_LOCK_PY_SENTINEL), "sentinel");
	CHECK(hazard_internal_name(FH_LOCK_CONFIRMED) == NULL);
}

UNIT_TEST(internal_locks_are_never_hazards)
{
	static struct fh_fork_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.nr_locks = 3;
	ev.nr_own = 1;
	ev.locks[0].flags = FH_LOCK_OWN | FH_LOCK_PY_SENTINEL;
	ev.locks[1].flags = FH_LOCK_PY_SENTINEL;
	ev.locks[2].flags = FH_LOCK_PY_WAITER;
	CHECK(hazard_lock_role(&ev, &ev.locks[0]) == HAZARD_LOCK_INTERNAL);
	CHECK(hazard_lock_role(&ev, &ev.locks[1]) == HAZARD_LOCK_INTERNAL);
	CHECK_INT(hazard_foreign_locks(&ev), 0);
	CHECK(!hazard_fork(&ev));
	/* the kernel's candidates: two, which userspace set aside */
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), 2);
	ev.locks[2].flags = 0;
	CHECK_INT(hazard_foreign_locks(&ev), 1);
	CHECK(hazard_fork(&ev));
}

/* ---- pyframes.c with a stand-in process -------------------------------------------- */

#define CODE_SENTINEL	0x1000
#define CODE_WAIT	0x2000
#define CODE_USER	0x3000
#define SENTINEL_SEM	0x7000

static int fake_resolve(void *ctx, pid_t pid, uint64_t code, uint64_t instr,
			struct pyrt_frame *out)
{
	(void)ctx;
	if (pid != 100)
		return -ESRCH;
	memset(out, 0, sizeof(*out));
	switch (code) {
	case CODE_SENTINEL:
		snprintf(out->file, sizeof(out->file), "%s", STDLIB);
		snprintf(out->function, sizeof(out->function), "Thread._set_tstate_lock");
		out->firstline = 1043;
		break;
	case CODE_WAIT:
		snprintf(out->file, sizeof(out->file), "%s", STDLIB);
		snprintf(out->function, sizeof(out->function), "Condition.wait");
		out->firstline = 323;
		break;
	case CODE_USER:
		snprintf(out->file, sizeof(out->file), "/srv/app.py");
		snprintf(out->function, sizeof(out->function), "refresh");
		out->firstline = 10;
		break;
	default:
		return -EINVAL;
	}
	out->line = out->firstline + (int)instr;	/* instr: the line's distance */
	return 0;
}

static int fake_name(void *ctx, pid_t pid, pid_t tid, char *buf, size_t size)
{
	(void)ctx;
	(void)pid;
	snprintf(buf, size, "t%d", (int)tid);
	return 0;
}

static int fake_sentinel(void *ctx, pid_t pid, pid_t tid, uint64_t *lock)
{
	(void)ctx;
	(void)pid;
	if (tid != 7)
		return -ENOENT;
	*lock = SENTINEL_SEM;
	return 0;
}

static const struct pyframes_ops fake_ops = {
	.resolve = fake_resolve, .thread_name = fake_name, .thread_sentinel = fake_sentinel,
};

static void py_lock(struct fh_lock *l, uint64_t addr, uint32_t tid, uint64_t code, int line)
{
	memset(l, 0, sizeof(*l));
	l->addr = addr;
	l->kind = FH_KIND_SEM;
	l->holder_tid = tid;
	if (code) {
		l->py.status = FH_PY_WALKED;
		l->py.n = 1;
		l->py.f[0].code = code;
		l->py.f[0].instr = (uint64_t)line;
	}
}

UNIT_TEST(pyframes_marks_the_interpreters_locks_as_they_arrive)
{
	static struct fh_fork_event ev;
	struct pyframes_opts po = { .layouts_fd = -1, .ops = &fake_ops };
	struct pyframes *pf = pyframes_new(&po);
	struct pyframes_stats st;
	struct pyrt_frame f[FH_PY_FRAMES];
	char name[64];

	CHECK(pf);
	memset(&ev, 0, sizeof(ev));
	ev.pid = 100;
	ev.py.status = FH_PY_WALKED;	/* the kernel had its layout */
	ev.nr_locks = 6;
	py_lock(&ev.locks[0], 0x10, 5, CODE_SENTINEL, 6);
	py_lock(&ev.locks[1], 0x20, 5, CODE_WAIT, 26);
	py_lock(&ev.locks[2], 0x30, 5, CODE_WAIT, 41);	/* the RLock taken back */
	py_lock(&ev.locks[3], 0x40, 5, CODE_USER, 2);
	py_lock(&ev.locks[4], SENTINEL_SEM, 7, 0, 0);	/* before the layout: by what it is */
	py_lock(&ev.locks[5], 0x60, 7, 0, 0);
	ev.locks[5].py.status = FH_PY_WALKED;		/* no Python frame: a C lock */
	ev.locks[0].flags = FH_LOCK_PY_WAITER;		/* the kernel never sets these */
	pyframes_fork(pf, &ev);
	CHECK_INT(ev.locks[0].flags, FH_LOCK_PY_SENTINEL);
	CHECK_INT(ev.locks[1].flags, FH_LOCK_PY_WAITER);
	CHECK_INT(ev.locks[2].flags, 0);
	CHECK_INT(ev.locks[3].flags, 0);
	CHECK_INT(ev.locks[4].flags, FH_LOCK_PY_SENTINEL);
	CHECK_INT(ev.locks[5].flags, 0);
	CHECK_INT(hazard_foreign_locks(&ev), 3);
	pyframes_get_stats(pf, &st);
	CHECK_INT(st.internal_locks, 3);
	/* printed later, from the same source */
	CHECK_INT(pyframes_stack(pf, 100, &ev.locks[3].py, f, FH_PY_FRAMES), 1);
	CHECK_STR(f[0].function, "refresh");
	CHECK_INT(f[0].line, 12);
	CHECK_INT(pyframes_stack(pf, 100, &ev.locks[5].py, f, FH_PY_FRAMES), 0);
	CHECK_INT(pyframes_thread(pf, 100, 5, NULL, name, sizeof(name)), 0);
	CHECK_STR(name, "t5");
	/* a process the kernel had no layout for: nothing is decided */
	ev.py.status = FH_PY_NOT_WALKED;
	ev.locks[4].flags = 0;
	pyframes_fork(pf, &ev);
	CHECK_INT(ev.locks[4].flags, 0);
	CHECK_INT(ev.locks[0].flags, FH_LOCK_PY_SENTINEL);
	pyframes_free(pf);
}

UNIT_TEST(pyframes_json_frames)
{
	struct pyrt_frame f[2];
	struct jw w;

	memset(f, 0, sizeof(f));
	snprintf(f[0].file, sizeof(f[0].file), "a\"b.py");
	snprintf(f[0].function, sizeof(f[0].function), "g");
	f[0].line = 3;
	snprintf(f[1].file, sizeof(f[1].file), "c.py");
	snprintf(f[1].function, sizeof(f[1].function), "<module>");
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	pyframes_json(&w, "py_stack", f, 2);
	jw_obj_end(&w);
	CHECK(!w.out.oom);
	CHECK_STR(w.out.buf, "{\"py_stack\":[{\"file\":\"a\\\"b.py\",\"line\":3,\"function\":\"g\"},"
			     "{\"file\":\"c.py\",\"line\":null,\"function\":\"<module>\"}]}");
	jw_free(&w);
}

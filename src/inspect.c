// SPDX-License-Identifier: GPL-2.0
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "escape.h"
#include "forkhazard.h"
#include "inspect.h"
#include "json.h"
#include "log.h"
#include "output.h"
#include "pycode.h"
#include "pyframes.h"

#define INSPECT_MAX_THREADS	4096	/* threads looked at; more are counted */
#define INSPECT_MAX_STACKS	INSPECT_MAX_THREADS	/* bounded by STACKS_BUDGET_NS too */
#define INSPECT_STACK_DEPTH	FH_STACK_DEPTH
#define INSPECT_HINT_FRAMES	8	/* innermost frames that may say what the futex is */
#define STOP_WAIT_NS		200000000L	/* for one thread to stop for its stack */
#define STACKS_BUDGET_NS	5000000000L	/* for all the stacks together */
#define WHY_LEN			1024
#define INSPECT_PY_DEPTH	64	/* Python frames kept per thread */
#define PY_AT_LEN		(PYRT_FUNC_LEN + PYRT_FILE_LEN + 32)	/* " in Python f (a.py:1)" */
#define WAIT_LEN		(PY_AT_LEN + 256)	/* one thread's wait, told */

/* ---- system calls -------------------------------------------------------- */

static const struct {
	long nr;
	const char *name;
} syscall_names[] = {
	{ SYS_read, "read" }, { SYS_write, "write" }, { SYS_readv, "readv" },
	{ SYS_writev, "writev" }, { SYS_pread64, "pread64" }, { SYS_pwrite64, "pwrite64" },
	{ SYS_openat, "openat" }, { SYS_ioctl, "ioctl" }, { SYS_fcntl, "fcntl" },
	{ SYS_flock, "flock" }, { SYS_ppoll, "ppoll" }, { SYS_pselect6, "pselect6" },
	{ SYS_epoll_pwait, "epoll_pwait" }, { SYS_nanosleep, "nanosleep" },
	{ SYS_clock_nanosleep, "clock_nanosleep" }, { SYS_restart_syscall, "restart_syscall" },
	{ SYS_accept, "accept" }, { SYS_accept4, "accept4" }, { SYS_connect, "connect" },
	{ SYS_recvfrom, "recvfrom" }, { SYS_recvmsg, "recvmsg" }, { SYS_sendto, "sendto" },
	{ SYS_sendmsg, "sendmsg" }, { SYS_wait4, "wait4" }, { SYS_waitid, "waitid" },
	{ SYS_futex, "futex" }, { LW_NR_FUTEX_WAITV, "futex_waitv" },
	{ LW_NR_FUTEX_WAIT, "futex_wait" }, { SYS_rt_sigsuspend, "rt_sigsuspend" },
	{ SYS_rt_sigtimedwait, "rt_sigtimedwait" }, { SYS_msgrcv, "msgrcv" },
	{ SYS_semop, "semop" }, { SYS_semtimedop, "semtimedop" },
	{ SYS_io_getevents, "io_getevents" }, { SYS_io_uring_enter, "io_uring_enter" },
	{ SYS_sched_yield, "sched_yield" }, { SYS_mq_timedreceive, "mq_timedreceive" },
	{ SYS_exit_group, "exit_group" },
#ifdef SYS_poll
	{ SYS_poll, "poll" },
#endif
#ifdef SYS_select
	{ SYS_select, "select" },
#endif
#ifdef SYS_pause
	{ SYS_pause, "pause" },
#endif
#ifdef SYS_epoll_wait
	{ SYS_epoll_wait, "epoll_wait" },
#endif
};

static const char *syscall_name(long nr)
{
	for (size_t i = 0; i < sizeof(syscall_names) / sizeof(syscall_names[0]); i++)
		if (syscall_names[i].nr == nr)
			return syscall_names[i].name;
	return NULL;
}

static enum inspect_wait classify(pid_t pid, struct inspect_thread *t)
{
	const struct fh_syscall *sc = &t->sc;
	ssize_t n;
	int r;

	if (!t->have_syscall || sc->nr < 0)
		return WAIT_NONE;
	r = lockword_decode_wait(pid, sc, &t->futex);
	if (r != 0) {
		/* r < 0: futex_waitv's array is unreadable; still a futex wait */
		if (r > 0 && t->futex.uaddr) {
			n = lockword_read(pid, t->futex.uaddr, t->mem, sizeof(t->mem));
			t->mem_len = n > 0 ? (size_t)n : 0;
		}
		return WAIT_FUTEX;
	}
	if (sc->nr == SYS_nanosleep || sc->nr == SYS_clock_nanosleep ||
	    sc->nr == SYS_restart_syscall)	/* only timed waits are restarted this way */
		return WAIT_SLEEP;
	if (sc->nr == SYS_wait4 || sc->nr == SYS_waitid)
		return WAIT_CHILD;
	if (sc->nr == SYS_flock ||
	    (sc->nr == SYS_fcntl && (sc->args[1] == F_SETLKW || sc->args[1] == F_OFD_SETLKW)))
		return WAIT_FILELOCK;
	return WAIT_OTHER;
}

/* ---- gathering ----------------------------------------------------------- */

static bool state_alive(char state)
{
	return state != 'Z' && state != 'X' && state != 'x';
}

static const char *state_name(char state)
{
	switch (state) {
	case 'R': return "running";
	case 'S': return "sleeping";
	case 'D': return "uninterruptible sleep";
	case 'T': return "stopped";
	case 't': return "stopped by its tracer";
	case 'Z': return "zombie";
	case 'X': case 'x': return "dead";
	case 'I': return "idle";
	case 'P': return "parked";
	default: return "unknown state";
	}
}

/* Returns 0, -ESRCH if the thread is gone, or -errno (-EACCES: not allowed). */
static int gather_thread(pid_t pid, struct inspect_thread *t)
{
	struct fh_proc_stat st;
	int err;

	err = procfs_read_stat(pid, t->tid, &st);
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	memcpy(t->comm, st.comm, sizeof(t->comm));
	t->comm[sizeof(t->comm) - 1] = '\0';
	t->state = st.state;
	if (procfs_read_wchan(pid, t->tid, t->wchan, sizeof(t->wchan)))
		t->wchan[0] = '\0';
	if (!state_alive(t->state))
		return 0;
	err = procfs_read_syscall(pid, t->tid, &t->sc);
	if (err == -ENOENT || err == -ESRCH)
		return -ESRCH;
	if (err == -EACCES || err == -EPERM)
		return err;
	t->have_syscall = err == 0;
	t->wait = classify(pid, t);
	return 0;
}

static int cmp_tid(const void *a, const void *b)
{
	const struct inspect_thread *x = a, *y = b;

	return (x->tid > y->tid) - (x->tid < y->tid);
}

static int thread_index(const struct inspect_proc *p, pid_t tid)
{
	struct inspect_thread key = { .tid = tid };
	const struct inspect_thread *t;

	t = bsearch(&key, p->threads, (size_t)p->nthreads, sizeof(key), cmp_tid);
	return t ? (int)(t - p->threads) : -1;
}

/* Where is the owner? /proc/TID exists for every thread, listed or not. */
static void locate_owner(struct inspect_proc *p, struct inspect_thread *t)
{
	struct fh_proc_status os;
	struct fh_proc_stat st;
	pid_t o = t->lock.owner;

	t->owner = OWNER_NONE;
	if (!o)
		return;
	if (procfs_read_status(o, 0, &os) || procfs_read_stat(os.tgid, o, &st) ||
	    !state_alive(st.state)) {
		t->owner = OWNER_GONE;
		return;
	}
	if (os.tgid == p->pid) {
		t->owner = OWNER_HERE;
		return;
	}
	t->owner = OWNER_ELSEWHERE;
	t->owner_pid = os.tgid;
	if (!procfs_read_stat(os.tgid, 0, &st))
		memcpy(t->owner_comm, st.comm, sizeof(t->owner_comm) - 1);
}

/* ---- stacks -------------------------------------------------------------- */

struct walk {
	uint64_t pc[INSPECT_STACK_DEPTH];
	bool activation[INSPECT_STACK_DEPTH];	/* pc is not a return address */
	int n;
};

static int walk_frame(Dwfl_Frame *state, void *arg)
{
	struct walk *w = arg;
	Dwarf_Addr pc;
	bool activation;

	if (!dwfl_frame_pc(state, &pc, &activation))
		return DWARF_CB_ABORT;
	w->pc[w->n] = pc;
	w->activation[w->n] = activation;
	return ++w->n < INSPECT_STACK_DEPTH ? DWARF_CB_OK : DWARF_CB_ABORT;
}

static long elapsed_ns(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - since->tv_sec) * 1000000000L + (now.tv_nsec - since->tv_nsec);
}

/*
 * Stop tid for its stack with PTRACE_SEIZE + PTRACE_INTERRUPT, not
 * PTRACE_ATTACH: no SIGSTOP is queued, so nothing is left behind, not even if
 * we die while it is stopped (the kernel then detaches and drops the trap); a
 * thread in a group stop stays stopped after the detach; a futex wait is
 * restarted as it was. Returns 0 and *sig, the signal it was stopped
 * delivering (to hand back at the detach), -ETIMEDOUT (still seized: it stops
 * later, see stacks_release_late()), or -errno.
 */
static int thread_stop(pid_t tid, long wait_ns, int *sig)
{
	struct timespec start, pause = { 0, 100000 };
	int status;

	*sig = 0;
	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL))
		return -errno;
	if (ptrace(PTRACE_INTERRUPT, tid, NULL, NULL))
		return -errno;	/* it exited: nothing left to detach */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t r = waitpid(tid, &status, __WALL | WNOHANG);

		if (r == tid) {
			if (!WIFSTOPPED(status))
				return -ESRCH;
			if ((status >> 16) != PTRACE_EVENT_STOP)
				*sig = WSTOPSIG(status);
			return 0;
		}
		if (r < 0 && errno != EINTR)
			return -errno;
		if (elapsed_ns(&start) > wait_ns)
			return -ETIMEDOUT;
		nanosleep(&pause, NULL);
	}
}

/* Addresses already symbolized: threads of one process share most frames. */
#define SYM_CACHE_SIZE	1024	/* a power of two */
#define SYM_CACHE_PROBE	8

struct sym_entry {
	uint64_t look;		/* the address looked up; 0: a free slot */
	uint64_t offset, module_offset;
	char *symbol, *module;
};

struct stacks {
	Dwfl *dwfl;
	struct syms *syms;
	struct fh_frame *scratch;	/* one resolved frame: too big for the stack */
	struct sym_entry *cache;	/* SYM_CACHE_SIZE */
	pid_t *late;			/* seized, not stopped in time */
	int nlate;
	bool noted;			/* the one note on stderr was written */
	struct pyrt *py;		/* a Python process: its reader, else NULL */
	struct pyrt_frame *py_scratch;	/* INSPECT_PY_DEPTH frames */
};

static char *debuginfo_path;
static const Dwfl_Callbacks dwfl_callbacks = {
	.find_elf = dwfl_linux_proc_find_elf,
	.find_debuginfo = dwfl_standard_find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

static void stacks_note(struct stacks *s, pid_t pid, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void stacks_note(struct stacks *s, pid_t pid, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	if (s->noted)
		return;
	s->noted = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warn("inspect: stacks of PID %d incomplete: %s", (int)pid, msg);
}

/* A thread's Python stack, read while it is stopped where it can be. */
static void read_py_stack(struct pyrt *py, struct pyrt_frame *scratch, pid_t pid,
			  struct inspect_thread *t)
{
	int n;

	t->py_read = true;
	n = pyrt_thread_stack(py, pid, t->tid, scratch, INSPECT_PY_DEPTH);
	if (n <= 0) {
		if (n < 0 && n != -ENOENT)
			log_debug("inspect: Python stack of thread %d: %s", (int)t->tid,
				  strerror(-n));
		return;
	}
	t->py_frames = malloc((size_t)n * sizeof(*t->py_frames));
	if (!t->py_frames)
		return;
	memcpy(t->py_frames, scratch, (size_t)n * sizeof(*t->py_frames));
	t->py_nframes = n;
}

static int stacks_begin(struct stacks *s, pid_t pid, int nthreads, struct pyrt *py)
{
	int err;

	memset(s, 0, sizeof(*s));
	s->py = py;
	if (py && !(s->py_scratch = calloc(INSPECT_PY_DEPTH, sizeof(*s->py_scratch))))
		return -ENOMEM;
	s->late = calloc((size_t)nthreads, sizeof(*s->late));
	s->scratch = malloc(sizeof(*s->scratch));
	s->cache = calloc(SYM_CACHE_SIZE, sizeof(*s->cache));
	s->syms = syms_new(-1);
	s->dwfl = dwfl_begin(&dwfl_callbacks);
	if (!s->late || !s->scratch || !s->cache || !s->syms || !s->dwfl)
		return -ENOMEM;
	dwfl_report_begin(s->dwfl);
	err = dwfl_linux_proc_report(s->dwfl, pid);
	dwfl_report_end(s->dwfl, NULL, NULL);
	if (err)
		return err > 0 ? -err : -EIO;
	/* we stop each thread ourselves, see thread_stop() */
	err = dwfl_linux_proc_attach(s->dwfl, pid, true);
	if (err)
		return err > 0 ? -err : -EIO;
	return 0;
}

/* Threads that stopped only after their wait ran out are let go now. */
static void stacks_release_late(struct stacks *s)
{
	int status;

	for (int i = 0; i < s->nlate; i++)
		if (waitpid(s->late[i], &status, __WALL | WNOHANG) == s->late[i] &&
		    WIFSTOPPED(status))
			ptrace(PTRACE_DETACH, s->late[i], NULL,
			       (void *)(long)((status >> 16) == PTRACE_EVENT_STOP ? 0 :
					      WSTOPSIG(status)));
	/* any still running are detached by the kernel when we exit, trap dropped */
}

static void stacks_end(struct stacks *s)
{
	stacks_release_late(s);
	if (s->dwfl)
		dwfl_end(s->dwfl);
	syms_free(s->syms);
	for (int i = 0; s->cache && i < SYM_CACHE_SIZE; i++) {
		free(s->cache[i].symbol);
		free(s->cache[i].module);
	}
	free(s->cache);
	free(s->scratch);
	free(s->late);
	free(s->py_scratch);
}

static char *dup_or_null(const char *str)
{
	return str[0] ? strdup(str) : NULL;
}

/* The symbol of address look, from the cache or resolved (and cached if there is room). */
static const struct sym_entry *symbolize(struct stacks *s, pid_t pid, uint64_t look,
					 struct sym_entry *tmp)
{
	size_t h = (size_t)((look * 0x9e3779b97f4a7c15ull) >> 32) & (SYM_CACHE_SIZE - 1);
	struct sym_entry *free_slot = NULL, *e;
	struct fh_frame *f = s->scratch;

	for (int i = 0; i < SYM_CACHE_PROBE; i++) {
		e = &s->cache[(h + (size_t)i) & (SYM_CACHE_SIZE - 1)];
		if (e->look == look)
			return e;
		if (!e->look && !free_slot)
			free_slot = e;
	}
	syms_resolve(s->syms, pid, look, f);
	e = free_slot ? free_slot : tmp;
	memset(e, 0, sizeof(*e));
	e->look = look;
	if (f->known && (e->symbol = dup_or_null(f->symbol)))
		e->offset = f->offset;
	if (f->has_module && (e->module = dup_or_null(f->module)))
		e->module_offset = f->module_offset;
	return e;
}

static void resolve_frames(struct stacks *s, pid_t pid, const struct walk *w,
			   struct inspect_thread *t)
{
	t->frames = calloc((size_t)w->n, sizeof(*t->frames));
	if (!t->frames)
		return;
	for (int i = 0; i < w->n; i++) {
		struct inspect_frame *out = &t->frames[i];
		/* a return address is after the call: look up the call itself */
		uint64_t adj = w->activation[i] ? 0 : 1;
		struct sym_entry tmp;
		const struct sym_entry *e = symbolize(s, pid, w->pc[i] - adj, &tmp);

		out->addr = w->pc[i];
		if (e->symbol && (out->symbol = strdup(e->symbol)))
			out->offset = e->offset + adj;
		if (e->module && (out->module = strdup(e->module)))
			out->module_offset = e->module_offset + adj;
		if (e == &tmp) {	/* the cache was full there */
			free(tmp.symbol);
			free(tmp.module);
		}
	}
	t->nframes = w->n;
}

static void take_stack(struct stacks *s, pid_t pid, struct inspect_thread *t, long wait_ns)
{
	struct walk w = { .n = 0 };
	struct timespec start;
	int sig, err;

	t->stack_tried = true;
	clock_gettime(CLOCK_MONOTONIC, &start);
	err = thread_stop(t->tid, wait_ns, &sig);
	if (err == -ETIMEDOUT) {
		s->late[s->nlate++] = t->tid;
		stacks_note(s, pid, "thread %d did not stop within %ld ms", (int)t->tid,
			    wait_ns / 1000000);
		return;
	}
	if (err) {
		struct fh_proc_status ps;

		if (err == -EPERM && !procfs_read_status(pid, t->tid, &ps) && ps.tracer_pid)
			stacks_note(s, pid, "cannot ptrace thread %d: already traced by PID %d",
				    (int)t->tid, (int)ps.tracer_pid);
		else if (err != -ESRCH)
			stacks_note(s, pid, "cannot ptrace thread %d: %s", (int)t->tid,
				    strerror(-err));
		return;
	}
	if (dwfl_getthread_frames(s->dwfl, t->tid, walk_frame, &w) != 0 && w.n == 0)
		stacks_note(s, pid, "cannot unwind thread %d: %s", (int)t->tid, dwfl_errmsg(-1));
	if (s->py)
		read_py_stack(s->py, s->py_scratch, pid, t);
	if (ptrace(PTRACE_DETACH, t->tid, NULL, (void *)(long)sig))
		log_warn("inspect: detaching from thread %d: %s", (int)t->tid, strerror(errno));
	log_debug("inspect: thread %d stopped for %ld us, %d frames", (int)t->tid,
		  elapsed_ns(&start) / 1000, w.n);
	/* symbols after the detach: the thread waits again meanwhile */
	resolve_frames(s, pid, &w, t);
}

static void take_stacks(struct inspect_proc *p, struct pyrt *py)
{
	struct timespec start;
	struct stacks s;
	int taken = 0, err, i;

	for (i = 0; i < p->nthreads; i++)
		if (state_alive(p->threads[i].state))
			break;
	if (i == p->nthreads)
		return;		/* a zombie: nothing to unwind */
	err = stacks_begin(&s, p->pid, p->nthreads, p->python ? py : NULL);
	if (err) {
		stacks_note(&s, p->pid, "cannot read its modules: %s", strerror(-err));
		stacks_end(&s);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < p->nthreads; i++) {
		struct inspect_thread *t = &p->threads[i];
		long left = STACKS_BUDGET_NS - elapsed_ns(&start);

		/* uninterruptible: it would stop only when it leaves the kernel */
		if (!state_alive(t->state) || t->state == 'D')
			continue;
		if (taken == INSPECT_MAX_STACKS || left <= 0) {
			stacks_note(&s, p->pid, "only %d threads' stacks taken", taken);
			break;
		}
		take_stack(&s, p->pid, t, left < STOP_WAIT_NS ? left : STOP_WAIT_NS);
		taken++;
	}
	stacks_end(&s);
}

/* What the waiting thread's stack says the futex is. */
static enum lw_kind stack_hint(const struct inspect_thread *t)
{
	for (int i = 0; i < t->nframes && i < INSPECT_HINT_FRAMES; i++) {
		enum lw_kind k = lockword_hint(t->frames[i].symbol);

		if (k != LW_KIND_UNKNOWN)
			return k;
	}
	return LW_KIND_UNKNOWN;
}

/* ---- the verdict --------------------------------------------------------- */

const char *inspect_verdict_name(enum inspect_verdict v)
{
	switch (v) {
	case INSPECT_DEADLOCK: return "deadlock";
	case INSPECT_BLOCKED: return "blocked";
	default: return "ok";
	}
}

static bool waits_forever(const struct inspect_thread *t)
{
	return state_alive(t->state) && t->wait == WAIT_FUTEX && !t->futex.has_timeout;
}

/* Nobody left who could release it: gone, or in another process for a private lock. */
static bool owner_dead(const struct inspect_thread *t)
{
	return waits_forever(t) && t->lock.owner && t->lock.owner != t->tid &&
	       (t->owner == OWNER_GONE || (t->owner == OWNER_ELSEWHERE && t->futex.is_private));
}

static bool waits_on_self(const struct inspect_thread *t)
{
	return waits_forever(t) && t->lock.owner == t->tid &&
	       (t->lock.kind == LW_KIND_MUTEX || t->lock.kind == LW_KIND_RWLOCK);
}

static void describe_lock(const struct inspect_thread *t, char *buf, size_t size)
{
	const char *what;

	if (t->futex.call == LW_CALL_FUTEX_WAITV && t->futex.nr_futexes != 1) {
		snprintf(buf, size, "%d futexes (the first at 0x%" PRIx64 ")", t->futex.nr_futexes,
			 t->futex.uaddr);
		return;
	}
	switch (t->lock.kind) {
	case LW_KIND_MUTEX: what = "mutex"; break;
	case LW_KIND_RWLOCK: what = "rwlock"; break;
	case LW_KIND_PI: what = "PI futex"; break;
	case LW_KIND_COND: what = "condition variable"; break;
	case LW_KIND_SEM: what = "semaphore"; break;
	case LW_KIND_JOIN: what = "the thread-exit futex"; break;
	default: what = "futex"; break;
	}
	snprintf(buf, size, "%s 0x%" PRIx64, what, t->futex.uaddr);
}

/* " in Python chatter (app.py:42)": the Python line a thread waits at, or "". */
static void py_where(const struct inspect_thread *t, char *buf, size_t size)
{
	const struct pyrt_frame *f = t->py_nframes ? &t->py_frames[0] : NULL;
	char site[PYRT_FILE_LEN];

	buf[0] = '\0';
	if (!f)
		return;
	pycode_site_path(f->file, site, sizeof(site));
	if (f->line)
		snprintf(buf, size, " in Python %s (%s:%d)", f->function, site, f->line);
	else
		snprintf(buf, size, " in Python %s (%s)", f->function, site);
}

/* "waits forever on mutex 0x.. owned by TID 7 in Python f (a.py:3)" /
 * "waits forever to join thread 7" */
static void describe_wait(const struct inspect_thread *t, const char *how, char *buf,
			  size_t size)
{
	char lock[96], at[PY_AT_LEN];

	py_where(t, at, sizeof(at));
	if (t->lock.kind == LW_KIND_JOIN && t->lock.owner) {
		snprintf(buf, size, "thread %d waits %sto join thread %d%s", (int)t->tid, how,
			 (int)t->lock.owner, at);
		return;
	}
	describe_lock(t, lock, sizeof(lock));
	if (t->lock.owner)
		snprintf(buf, size, "thread %d waits %son %s owned by TID %d%s", (int)t->tid, how,
			 lock, (int)t->lock.owner, at);
	else
		snprintf(buf, size, "thread %d waits %son %s%s", (int)t->tid, how, lock, at);
}

static void explain_dead_owner(const struct inspect_proc *p, const struct inspect_thread *t,
			       char *why, size_t size)
{
	char wait[WAIT_LEN], where[160];
	const char *cause;
	bool join = t->lock.kind == LW_KIND_JOIN;

	describe_wait(t, "forever ", wait, sizeof(wait));
	if (t->owner == OWNER_GONE) {
		snprintf(where, sizeof(where), "which does not exist (any more)");
		cause = join ? "threads are not copied by fork: the thread to join existed only "
			       "in the parent" :
			"the lock was held by a thread that is gone: another thread of the parent "
			"when this process forked, or a thread of this process that exited "
			"without unlocking it";
	} else if (t->owner_pid == p->ppid) {
		snprintf(where, sizeof(where),
			 "which does not exist in this process (it is a thread of the parent, "
			 "PID %d \"%s\")", (int)t->owner_pid, t->owner_comm);
		cause = join ? "threads are not copied by fork: the thread to join exists only "
			       "in the parent" :
			"the lock was held by another thread of the parent when it forked";
	} else {
		snprintf(where, sizeof(where),
			 "which does not exist in this process (it is a thread of PID %d \"%s\")",
			 (int)t->owner_pid, t->owner_comm);
		cause = join ? "threads are not copied by fork: the thread to join exists only "
			       "in that process" :
			"the lock was held by another thread of that process when it forked, and "
			"this process inherited it locked";
	}
	snprintf(why, size, "%s, %s: %s", wait, where, cause);
}

/* Threads waiting forever on a lock held by a thread that waits forever...
 * back to the first: a lock-order inversion. Returns the index of a thread
 * on such a cycle, or -1. */
static int find_cycle(const struct inspect_proc *p)
{
	size_t n = p->nthreads > 0 ? (size_t)p->nthreads : 0;
	int *next = n ? malloc(n * sizeof(int)) : NULL;
	char *mark = n ? calloc(n, 1) : NULL;	/* 0 new, 1 on this walk, 2 done */
	int found = -1;

	if (!next || !mark)
		goto out;
	for (size_t i = 0; i < n; i++) {
		const struct inspect_thread *t = &p->threads[i];

		next[i] = -1;
		if (waits_forever(t) && t->owner == OWNER_HERE && t->lock.owner != t->tid)
			next[i] = thread_index(p, t->lock.owner);
	}
	/* each thread waits on one lock at most: follow the chain from each */
	for (int i = 0; i < (int)n && found < 0; i++) {
		int j = i;

		while (j >= 0 && !mark[j]) {
			mark[j] = 1;
			j = next[j];
		}
		if (j >= 0 && mark[j] == 1)
			found = j;
		for (j = i; j >= 0 && mark[j] == 1; j = next[j])
			mark[j] = 2;
	}
out:
	free(next);
	free(mark);
	return found;
}

static void explain_cycle(const struct inspect_proc *p, int start, char *why, size_t size)
{
	size_t len;
	int i = start, steps = 0;

	len = (size_t)snprintf(why, size, "threads wait forever on locks held by each other (a "
			       "lock-order inversion): ");
	do {
		const struct inspect_thread *t = &p->threads[i];
		char wait[WAIT_LEN];

		describe_wait(t, "", wait, sizeof(wait));
		if (len < size)
			len += (size_t)snprintf(why + len, size - len, "%s%s", steps ? ", " : "",
						wait);
		i = thread_index(p, t->lock.owner);
	} while (i >= 0 && i != start && ++steps < 8);
	if (i != start && len < size)
		snprintf(why + len, size - len, ", ...");
}

static void explain_blocked(const struct inspect_proc *p, const struct inspect_thread *t,
			    char *why, size_t size)
{
	char wait[WAIT_LEN];

	switch (t->state) {
	case 'D':
		snprintf(why, size, "thread %d is in uninterruptible sleep in the kernel%s%s",
			 (int)t->tid, t->wchan[0] ? ", in " : "", t->wchan);
		return;
	case 'T':
		snprintf(why, size, "thread %d is stopped by a signal: kill -CONT %d resumes it",
			 (int)t->tid, (int)p->pid);
		return;
	case 't':
		snprintf(why, size, "thread %d is stopped by its tracer", (int)t->tid);
		return;
	}
	if (t->wait == WAIT_CHILD) {
		snprintf(why, size, "thread %d waits for a child process to change state (%s)",
			 (int)t->tid, syscall_name(t->sc.nr));
		return;
	}
	if (t->wait == WAIT_FILELOCK) {
		snprintf(why, size, "thread %d waits for a file lock (%s)", (int)t->tid,
			 syscall_name(t->sc.nr));
		return;
	}
	describe_wait(t, "without a timeout ", wait, sizeof(wait));
	if (t->owner == OWNER_HERE) {
		int o = thread_index(p, t->lock.owner);
		const struct inspect_thread *ot = o >= 0 ? &p->threads[o] : NULL;
		const char *call = ot && ot->have_syscall ? syscall_name(ot->sc.nr) : NULL;

		snprintf(why, size, "%s, a live thread of this process (%s%s%s): it goes on when "
			 "that thread releases the lock", wait, ot ? state_name(ot->state) : "live",
			 call ? ", in " : "", call ? call : "");
	} else if (t->owner == OWNER_ELSEWHERE) {
		snprintf(why, size, "%s, a thread of PID %d \"%s\" (a lock shared between "
			 "processes): it goes on when that thread releases the lock", wait,
			 (int)t->owner_pid, t->owner_comm);
	} else {
		snprintf(why, size, "%s; who could wake it is not known", wait);
	}
}

static bool is_blocked(const struct inspect_thread *t)
{
	return state_alive(t->state) &&
	       (waits_forever(t) || t->state == 'D' || t->state == 'T' || t->state == 't' ||
		t->wait == WAIT_CHILD || t->wait == WAIT_FILELOCK);
}

static void append_more(char *why, size_t size, int more, const char *what)
{
	size_t len = strlen(why);

	if (more > 0 && len < size)
		snprintf(why + len, size - len, " (and %d more thread%s %s)", more,
			 more == 1 ? "" : "s", what);
}

enum inspect_verdict inspect_judge(const struct inspect_proc *p, char *why, size_t size)
{
	const struct inspect_thread *first = NULL;
	int n = 0, alive = 0, forever_private = 0, cycle;
	char lock[96], at[PY_AT_LEN];

	/* 1. a lock whose owner cannot ever release it */
	for (int i = 0; i < p->nthreads; i++)
		if (owner_dead(&p->threads[i]) && !n++)
			first = &p->threads[i];
	if (first) {
		explain_dead_owner(p, first, why, size);
		append_more(why, size, n - 1, "stuck the same way");
		return INSPECT_DEADLOCK;
	}
	/* 2. a non-recursive lock taken twice by one thread */
	for (int i = 0; i < p->nthreads; i++) {
		const struct inspect_thread *t = &p->threads[i];

		if (waits_on_self(t)) {
			describe_lock(t, lock, sizeof(lock));
			py_where(t, at, sizeof(at));
			snprintf(why, size, "thread %d waits forever on %s%s, which it holds itself: "
				 "a lock that is not recursive, taken twice", (int)t->tid, lock, at);
			return INSPECT_DEADLOCK;
		}
	}
	/* 3. threads waiting on each other */
	cycle = find_cycle(p);
	if (cycle >= 0) {
		explain_cycle(p, cycle, why, size);
		return INSPECT_DEADLOCK;
	}
	/* 4. nobody left to wake anybody: a private futex is woken only from inside */
	for (int i = 0; i < p->nthreads; i++) {
		const struct inspect_thread *t = &p->threads[i];

		if (!state_alive(t->state))
			continue;
		alive++;
		if (waits_forever(t) && t->futex.is_private && !forever_private++)
			first = t;
	}
	if (alive && forever_private == alive && !p->omitted) {
		describe_lock(first, lock, sizeof(lock));
		py_where(first, at, sizeof(at));
		if (alive == 1)
			snprintf(why, size, "the only thread, %d, waits forever on private %s%s (no "
				 "timeout): no other thread exists that could wake it",
				 (int)first->tid, lock, at);
		else
			snprintf(why, size, "all %d threads wait forever on private futexes (no "
				 "timeouts), thread %d on %s%s: none is left that could wake another",
				 alive, (int)first->tid, lock, at);
		return INSPECT_DEADLOCK;
	}
	/* 5. waiting, but on something that may still come */
	n = 0;
	for (int i = 0; i < p->nthreads; i++)
		if (is_blocked(&p->threads[i]) && !n++)
			first = &p->threads[i];
	if (n) {
		explain_blocked(p, first, why, size);
		append_more(why, size, n - 1, "blocked");
		return INSPECT_BLOCKED;
	}
	if (!alive)
		snprintf(why, size, "the process has exited: a zombie that its parent (PID %d) "
			 "has not reaped", (int)p->ppid);
	else
		snprintf(why, size, "no thread waits without a timeout: %d thread%s, none blocked",
			 alive, alive == 1 ? "" : "s");
	return INSPECT_OK;
}

/* ---- output -------------------------------------------------------------- */

static const char *esc(const char *s, char *buf, size_t size)
{
	return term_escape(s, (size_t)-1, buf, size);
}

static void text_call(FILE *f, const struct inspect_thread *t)
{
	const struct lw_wait *w = &t->futex;
	const char *name;

	if (!state_alive(t->state))
		return;
	if (!t->have_syscall) {
		fprintf(f, "  system call: not readable\n");
		return;
	}
	if (t->sc.nr == -1) {
		fprintf(f, "  running\n");
		return;
	}
	if (t->sc.nr < 0) {
		fprintf(f, "  not in a system call\n");
		return;
	}
	if (t->wait == WAIT_FUTEX && w->call == LW_CALL_FUTEX) {
		fprintf(f, "  futex(0x%" PRIx64 ", %s, %" PRIu64 ", %s)\n", w->uaddr,
			lockword_op_name(w), w->val, w->has_timeout ? "timeout" : "no timeout");
		return;
	}
	if (t->wait == WAIT_FUTEX && w->call == LW_CALL_FUTEX_WAITV) {
		fprintf(f, "  futex_waitv(%d futex%s, first 0x%" PRIx64 ", %s)\n", w->nr_futexes,
			w->nr_futexes == 1 ? "" : "es", w->uaddr,
			w->has_timeout ? "timeout" : "no timeout");
		return;
	}
	if (t->wait == WAIT_FUTEX) {
		fprintf(f, "  futex_wait(0x%" PRIx64 ", %" PRIu64 ", flags 0x%x, %s)\n", w->uaddr,
			w->val, w->flags, w->has_timeout ? "timeout" : "no timeout");
		return;
	}
	name = syscall_name(t->sc.nr);
	if (name)
		fprintf(f, "  in %s()\n", name);
	else
		fprintf(f, "  in system call %ld\n", t->sc.nr);
}

static void text_lock(FILE *f, const struct inspect_proc *p, const struct inspect_thread *t)
{
	char lock[96], comm[FH_COMM_LEN * 4 + 64];
	int o;

	if (t->wait != WAIT_FUTEX || !state_alive(t->state))
		return;
	describe_lock(t, lock, sizeof(lock));
	fprintf(f, "  %s", lock);
	if (t->lock.word_valid)
		fprintf(f, ", word 0x%" PRIx32, t->lock.word);
	if (t->lock.guessed)
		fprintf(f, " (kind guessed from its layout)");
	switch (t->owner) {
	case OWNER_HERE:
		o = thread_index(p, t->lock.owner);
		fprintf(f, ": owner TID %d, a live thread of this process%s%s%s\n",
			(int)t->lock.owner, o >= 0 ? " (" : "",
			o >= 0 ? state_name(p->threads[o].state) : "", o >= 0 ? ")" : "");
		break;
	case OWNER_ELSEWHERE:
		fprintf(f, ": owner TID %d, NOT a thread of this process but of PID %d (%s)%s\n",
			(int)t->lock.owner, (int)t->owner_pid,
			esc(t->owner_comm, comm, sizeof(comm)),
			t->owner_pid == p->ppid ? ", its parent" : "");
		break;
	case OWNER_GONE:
		fprintf(f, ": owner TID %d, which does not exist (any more)\n", (int)t->lock.owner);
		break;
	default:
		fprintf(f, ": owner not known\n");
		break;
	}
}

static void text_stack(FILE *f, const struct inspect_thread *t)
{
	char sym[FH_SYM_LEN * 4], mod[FH_MODULE_LEN * 4];

	if (t->state == 'D')
		fprintf(f, "  (no stack: a thread in uninterruptible sleep cannot be stopped)\n");
	else if (state_alive(t->state) && !t->nframes)
		fprintf(f, "  (no stack)\n");
	for (int i = 0; i < t->nframes; i++) {
		const struct inspect_frame *fr = &t->frames[i];
		const char *base = fr->module ? strrchr(fr->module, '/') : NULL;

		if (fr->module)
			esc(base ? base + 1 : fr->module, mod, sizeof(mod));
		if (fr->symbol)
			fprintf(f, "    #%d %s+0x%" PRIx64 " [%s]\n", i,
				esc(fr->symbol, sym, sizeof(sym)), fr->offset,
				fr->module ? mod : "?");
		else if (fr->module)
			fprintf(f, "    #%d 0x%" PRIx64 " [%s+0x%" PRIx64 "]\n", i, fr->addr, mod,
				fr->module_offset);
		else
			fprintf(f, "    #%d 0x%" PRIx64 "\n", i, fr->addr);
	}
}

/* Python frames first, as people read a Python program: "py: f (a.py:3)". */
static void text_py_stack(FILE *f, const struct inspect_thread *t)
{
	char text[PYRT_FUNC_LEN + PYRT_FILE_LEN + 32], out[sizeof(text) * 4];

	for (int i = 0; i < t->py_nframes; i++) {
		const struct pyrt_frame *fr = &t->py_frames[i];

		pycode_frame_text(fr->file, fr->function, fr->line, text, sizeof(text));
		fprintf(f, "    py: %s\n", esc(text, out, sizeof(out)));
	}
}

/* "CPython 3.12.1", or "CPython 3.10" where the micro version is not known. */
static void py_version(const struct pyrt_info *py, char *buf, size_t size)
{
	if (py->micro >= 0)
		snprintf(buf, size, "%d.%d.%d", py->major, py->minor, py->micro);
	else
		snprintf(buf, size, "%d.%d", py->major, py->minor);
}

static void render_text(FILE *f, const struct inspect_proc *p, enum inspect_verdict v,
			const char *why)
{
	char comm[64 * 4], wchan[64 * 4], text[WHY_LEN * 4], name[PYRT_NAME_LEN * 4];
	char version[32];

	fprintf(f, "PID %d (%s), %d thread%s, parent %d: verdict %s\n", (int)p->pid,
		esc(p->comm, comm, sizeof(comm)), p->nthreads + p->omitted,
		p->nthreads + p->omitted == 1 ? "" : "s", (int)p->ppid, inspect_verdict_name(v));
	if (p->python) {
		py_version(&p->py, version, sizeof(version));
		fprintf(f, "CPython %s\n", version);
	}
	if (p->omitted)
		fprintf(f, "(%d threads not inspected: more than %d)\n", p->omitted,
			INSPECT_MAX_THREADS);
	for (int i = 0; i < p->nthreads; i++) {
		const struct inspect_thread *t = &p->threads[i];

		fprintf(f, "\nthread %d (%s)", (int)t->tid, esc(t->comm, comm, sizeof(comm)));
		if (t->py_thread[0])
			fprintf(f, " \"%s\"", esc(t->py_thread, name, sizeof(name)));
		fprintf(f, ": %c (%s)", t->state, state_name(t->state));
		if (t->wchan[0])
			fprintf(f, ", in kernel %s", esc(t->wchan, wchan, sizeof(wchan)));
		fputc('\n', f);
		text_call(f, t);
		text_lock(f, p, t);
		text_py_stack(f, t);
		text_stack(f, t);
	}
	fprintf(f, "\n%s: %s\n", inspect_verdict_name(v), esc(why, text, sizeof(text)));
}

static void json_thread(struct jw *w, const struct inspect_thread *t)
{
	char state[2] = { t->state, '\0' };
	bool futex = t->wait == WAIT_FUTEX && state_alive(t->state);

	jw_obj_begin(w, NULL);
	jw_int(w, "tid", t->tid);
	jw_str(w, "comm", t->comm);
	jw_str(w, "state", state);
	jw_str(w, "wchan", t->wchan[0] ? t->wchan : NULL);
	if (t->have_syscall && t->sc.nr >= 0) {
		const char *name = syscall_name(t->sc.nr);

		jw_obj_begin(w, "syscall");
		jw_int(w, "nr", t->sc.nr);
		jw_str(w, "name", name);
		jw_arr_begin(w, "args");
		for (int i = 0; i < 6; i++)
			jw_addr(w, NULL, t->sc.args[i]);
		jw_arr_end(w);
		jw_obj_end(w);
	} else {
		jw_null(w, "syscall");
	}
	if (futex && t->futex.uaddr)
		jw_addr(w, "futex", t->futex.uaddr);
	else
		jw_null(w, "futex");
	jw_str(w, "futex_op", futex ? lockword_op_name(&t->futex) : NULL);
	if (futex) {
		jw_bool(w, "timeout", t->futex.has_timeout);
		jw_bool(w, "private", t->futex.is_private);
	} else {
		jw_null(w, "timeout");
		jw_null(w, "private");
	}
	jw_str(w, "lock_kind", futex ? lockword_kind_name(t->lock.kind) : NULL);
	if (futex && t->lock.word_valid)
		jw_addr(w, "lock_word", t->lock.word);
	else
		jw_null(w, "lock_word");
	if (futex && t->lock.owner) {
		jw_int(w, "owner_tid", t->lock.owner);
		jw_bool(w, "owner_alive", t->owner == OWNER_HERE);
	} else {
		jw_null(w, "owner_tid");
		jw_null(w, "owner_alive");
	}
	if (futex && t->owner == OWNER_ELSEWHERE)
		jw_int(w, "owner_pid", t->owner_pid);
	else
		jw_null(w, "owner_pid");
	jw_str(w, "py_thread", t->py_thread[0] ? t->py_thread : NULL);
	pyframes_json(w, "py_stack", t->py_frames, t->py_nframes);
	jw_arr_begin(w, "stack");
	for (int i = 0; i < t->nframes; i++) {
		const struct inspect_frame *fr = &t->frames[i];

		jw_obj_begin(w, NULL);
		jw_addr(w, "addr", fr->addr);
		jw_str(w, "symbol", fr->symbol);
		if (fr->symbol)
			jw_uint(w, "offset", fr->offset);
		else
			jw_null(w, "offset");
		jw_str(w, "module", fr->module);
		jw_obj_end(w);
	}
	jw_arr_end(w);
	jw_obj_end(w);
}

static int render_json(FILE *f, const struct inspect_proc *p, enum inspect_verdict v,
		       const char *why, const struct timespec *now)
{
	struct jw w;
	char ts[40], version[32];
	int err = 0;

	fmt_rfc3339((int64_t)now->tv_sec * 1000000000 + now->tv_nsec, ts, sizeof(ts));
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "type", "inspect");
	jw_str(&w, "time", ts);
	jw_int(&w, "pid", p->pid);
	jw_int(&w, "ppid", p->ppid);
	jw_str(&w, "comm", p->comm);
	jw_str(&w, "verdict", inspect_verdict_name(v));
	if (p->python) {
		py_version(&p->py, version, sizeof(version));
		jw_str(&w, "python", version);
	} else {
		jw_null(&w, "python");
	}
	jw_int(&w, "threads_omitted", p->omitted);
	jw_arr_begin(&w, "threads");
	for (int i = 0; i < p->nthreads; i++)
		json_thread(&w, &p->threads[i]);
	jw_arr_end(&w);
	jw_str(&w, "explanation", why);
	jw_obj_end(&w);
	err = jw_write_line(&w, f);
	jw_free(&w);
	return err;
}

/* ---- the command --------------------------------------------------------- */

static void proc_free(struct inspect_proc *p)
{
	for (int i = 0; i < p->nthreads; i++) {
		for (int j = 0; j < p->threads[i].nframes; j++) {
			free(p->threads[i].frames[j].symbol);
			free(p->threads[i].frames[j].module);
		}
		free(p->threads[i].frames);
		free(p->threads[i].py_frames);
	}
	free(p->threads);
}

/* Read what every thread waits on. Returns 0 or -errno, with a message logged. */
static int gather(struct inspect_proc *p)
{
	struct fh_proc_stat st;
	pid_t *tids;
	char comm[64 * 4];
	int n, err;

	err = procfs_read_stat(p->pid, 0, &st);
	if (err) {
		if (err == -ENOENT || err == -ESRCH)
			log_error("inspect: no process with PID %d", (int)p->pid);
		else
			log_error("inspect: cannot read /proc/%d/stat: %s", (int)p->pid,
				  strerror(-err));
		return err;
	}
	memcpy(p->comm, st.comm, sizeof(p->comm) - 1);
	p->ppid = st.ppid;
	p->state = st.state;
	if (procfs_is_kernel_thread(p->pid)) {
		log_error("inspect: PID %d (%s) is a kernel thread: no user space to inspect",
			  (int)p->pid, esc(p->comm, comm, sizeof(comm)));
		return -EINVAL;
	}
	tids = malloc(INSPECT_MAX_THREADS * sizeof(*tids));
	if (!tids) {
		log_error("inspect: out of memory");
		return -ENOMEM;
	}
	n = procfs_list_tasks(p->pid, tids, INSPECT_MAX_THREADS);
	if (n <= 0) {
		free(tids);
		log_error("inspect: cannot list the threads of PID %d: %s", (int)p->pid,
			  n ? strerror(-n) : "none left (it exited)");
		return n ? n : -ESRCH;
	}
	p->omitted = st.num_threads > n ? st.num_threads - n : 0;
	p->threads = calloc((size_t)n, sizeof(*p->threads));
	if (!p->threads) {
		free(tids);
		log_error("inspect: out of memory");
		return -ENOMEM;
	}
	for (int i = 0; i < n; i++) {
		struct inspect_thread *t = &p->threads[p->nthreads];

		t->tid = tids[i];
		err = gather_thread(p->pid, t);
		if (err == -ESRCH) {	/* it exited meanwhile */
			memset(t, 0, sizeof(*t));
			continue;
		}
		if (err) {
			free(tids);
			log_error("inspect: cannot read thread %d of PID %d: %s (inspect needs "
				  "root, or the right to ptrace it)", (int)t->tid, (int)p->pid,
				  strerror(-err));
			return err;
		}
		p->nthreads++;
	}
	free(tids);
	if (!p->nthreads) {
		log_error("inspect: PID %d exited while being inspected", (int)p->pid);
		return -ESRCH;
	}
	qsort(p->threads, (size_t)p->nthreads, sizeof(*p->threads), cmp_tid);
	return 0;
}

/* A Python process: its reader, and its threads' names. NULL otherwise. */
static struct pyrt *gather_python(struct inspect_proc *p)
{
	struct pyrt *py = pyrt_new(NULL);
	int err;

	if (!py)
		return NULL;
	err = pyrt_open(py, p->pid, &p->py);
	if (err) {
		/* -ENOTSUP: pyrt said why; its native frames are shown all the same */
		log_debug("inspect: PID %d: not a Python that can be read: %s", (int)p->pid,
			  strerror(-err));
		if (err != -ENOENT && err != -ENOTSUP)
			log_info("inspect: PID %d: its Python cannot be read: %s", (int)p->pid,
				 err == -EAGAIN ? "the interpreter is not initialized yet" :
				 strerror(-err));
		pyrt_free(py);
		return NULL;
	}
	p->python = true;
	err = pyrt_refresh_threads(py, p->pid);
	if (err)
		log_info("inspect: PID %d: Python thread names not readable: %s", (int)p->pid,
			 strerror(-err));
	for (int i = 0; i < p->nthreads; i++)
		if (pyrt_thread_name(py, p->pid, p->threads[i].tid, p->threads[i].py_thread,
				     sizeof(p->threads[i].py_thread)))
			p->threads[i].py_thread[0] = '\0';
	return py;
}

/* Threads that were not stopped (uninterruptible, or the stop failed): as they are. */
static void python_stacks_left(struct inspect_proc *p, struct pyrt *py)
{
	struct pyrt_frame *scratch = NULL;

	for (int i = 0; i < p->nthreads; i++) {
		struct inspect_thread *t = &p->threads[i];

		if (t->py_read || !state_alive(t->state))
			continue;
		if (!scratch && !(scratch = calloc(INSPECT_PY_DEPTH, sizeof(*scratch))))
			return;
		read_py_stack(py, scratch, p->pid, t);
	}
	free(scratch);
}

int inspect_run(const struct fh_config *cfg)
{
	struct inspect_proc p = { .pid = cfg->inspect_pid };
	struct fh_proc_status ps;
	struct pyrt *py;
	enum inspect_verdict v;
	struct timespec now;
	char why[WHY_LEN];
	int pid_max = procfs_read_pid_max(), err;

	clock_gettime(CLOCK_REALTIME, &now);
	/* a TID names its process: inspect the whole of it */
	if (!procfs_read_status(p.pid, 0, &ps) && ps.tgid != p.pid) {
		log_warn("inspect: %d is a thread of PID %d: inspecting that process", (int)p.pid,
			 (int)ps.tgid);
		p.pid = ps.tgid;
	}
	if (gather(&p)) {
		proc_free(&p);
		return FH_EXIT_ERROR;
	}
	py = gather_python(&p);
	/* every /proc and memory read is done: only now stop threads (and read
	 * each one's Python stack while it is stopped) */
	take_stacks(&p, py);
	if (py)
		python_stacks_left(&p, py);
	pyrt_free(py);
	for (int i = 0; i < p.nthreads; i++) {
		struct inspect_thread *t = &p.threads[i];

		if (t->wait != WAIT_FUTEX)
			continue;
		lockword_decode(&t->futex, t->mem, t->mem_len, stack_hint(t), pid_max, &t->lock);
		locate_owner(&p, t);
	}
	v = inspect_judge(&p, why, sizeof(why));
	err = 0;
	if (cfg->json)
		err = render_json(stdout, &p, v, why, &now);
	else
		render_text(stdout, &p, v, why);
	if (!err && (fflush(stdout) || ferror(stdout)))
		err = -EIO;
	proc_free(&p);
	if (err) {
		log_error("inspect: cannot write the report: %s", strerror(-err));
		return FH_EXIT_ERROR;
	}
	return FH_EXIT_OK;
}

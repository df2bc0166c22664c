// SPDX-License-Identifier: GPL-2.0
/*
 * The pipeline without BPF and without root: made-up records (and stack
 * copies of this very process) fed through the ring buffer's handler
 * (events.c), correlation, the daemon and output into memory, under the
 * options that shape output: -j or text, -v, -vv, --stack-depth, --hold-ms,
 * --light's records, --daemon with its site table, rate limits and
 * evictions. Each case checks what it must see; with FH_PIPELINE_DIR set,
 * it also leaves its output there as NAME.jsonl or NAME.txt, which
 * tests/test_schema.py validates against docs/json.schema.json and checks
 * that every record type and every field of the schema was produced.
 *
 * The processes the records name are this one (so that stacks symbolize,
 * with CFI, DWARF lines and inlined calls) and a forked copy of it (a
 * "child" with the same code); lock callers in a "python" library and in a
 * stripped binary are this program's code and symprog-stripped mapped here.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include "cli.h"
#include "clock.h"
#include "container.h"
#include "correlate.h"
#include "counters.h"
#include "daemon.h"
#include "events.h"
#include "finding.h"
#include "forkhazard.h"
#include "governor.h"
#include "gate.h"
#include "otherthreads.h"
#include "output.h"
#include "pyframes.h"
#include "sarif.h"
#include "suppress.h"
#include "symbolize.h"
#include "ustacks.h"
#include "unit.h"

/* ---- the pipeline, put together as tracer.c does --------------------------------- */

struct pipeline {
	struct fh_config cfg;
	struct syms *syms;
	struct ustacks *ustacks;
	struct containers *containers;
	struct otherthreads *others;
	struct pyframes *py;
	struct output *out;
	struct suppressions *supp;
	struct gate *gate;
	struct findings *findings;
	struct daemon *daemon;
	struct correlate *corr;
	struct events ev;
	FILE *f;
	char *buf;
	size_t len;
};

/* ---- a Python process, made up ----------------------------------------------------- */

/* Process PY_PID runs Python (its child PY_CHILD too): code objects at these
 * addresses, an instruction's "address" being its line's distance from the
 * `def`; its threads PY_PID and PY_PID + 1 are named. */
#define PY_PID		777700
#define PY_CHILD	777701
#define PY_CODE_USER	0x10000
#define PY_CODE_FORK	0x20000
#define PY_CODE_MODULE	0x30000
#define PY_CODE_SENTINEL 0x40000
#define PY_CODE_WAIT	0x50000

static int pipe_resolve(void *ctx, pid_t pid, uint64_t code, uint64_t instr,
			struct pyrt_frame *out)
{
	static const struct {
		uint64_t code;
		const char *file, *function;
		int firstline;
	} codes[] = {
		{ PY_CODE_USER, "/srv/venv/lib/python3.12/site-packages/app/cache.py",
		  "Cache.refresh", 30 },
		{ PY_CODE_FORK, "/srv/app/main.py", "spawn_reporter", 50 },
		{ PY_CODE_MODULE, "/srv/app/main.py", "<module>", 1 },
		{ PY_CODE_SENTINEL, "/usr/lib/python3.12/threading.py", "Thread._set_tstate_lock",
		  1043 },
		{ PY_CODE_WAIT, "/usr/lib/python3.12/threading.py", "Condition.wait", 323 },
	};

	(void)ctx;
	if (pid != PY_PID && pid != PY_CHILD)
		return -ENOENT;
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++) {
		if (codes[i].code != code)
			continue;
		memset(out, 0, sizeof(*out));
		snprintf(out->file, sizeof(out->file), "%s", codes[i].file);
		snprintf(out->function, sizeof(out->function), "%s", codes[i].function);
		out->firstline = codes[i].firstline;
		out->line = instr ? codes[i].firstline + (int)instr : 0;
		return 0;
	}
	return -EINVAL;
}

static int pipe_thread_name(void *ctx, pid_t pid, pid_t tid, char *buf, size_t size)
{
	(void)ctx;
	if (pid != PY_PID || (tid != PY_PID && tid != PY_PID + 1))
		return -ENOENT;
	snprintf(buf, size, "%s", tid == PY_PID ? "MainThread" : "cache-\x1b[1mrefresher");
	return 0;
}

static const struct pyframes_ops pipe_py_ops = {
	.resolve = pipe_resolve, .thread_name = pipe_thread_name,
};

/* The command line args (NULL-terminated, without argv[0]) parsed by cli.c,
 * and the pipeline tracer.c would build for it. */
static bool pipeline_open(struct pipeline *p, const char *const *args)
{
	char *argv[32] = { "forkhazard" };
	int argc = 1;
	struct output_opts oo;
	struct corr_opts co;

	memset(p, 0, sizeof(*p));
	while (*args && argc < 31)
		argv[argc++] = (char *)*args++;
	if (cli_parse(argc, argv, &p->cfg) != -1)
		return false;
	p->f = open_memstream(&p->buf, &p->len);
	p->syms = syms_new(-1);
	p->ustacks = p->syms ? ustacks_new(p->syms, 256, 200) : NULL;
	p->containers = containers_new();
	p->py = pyframes_new(&(struct pyframes_opts){ .layouts_fd = -1, .ops = &pipe_py_ops });
	p->others = otherthreads_new(16, NULL);
	if (!p->f || !p->ustacks || !p->containers || !p->py || !p->others)
		return false;
	oo = (struct output_opts){
		.f = p->f, .json = p->cfg.json, .verbose = p->cfg.verbose,
		.stack_depth = p->cfg.stack_depth, .syms = p->syms, .ustacks = p->ustacks,
		.py = p->py, .others = p->others, .mono_to_real_ns = clock_mono_to_real_ns(),
	};
	p->out = output_new(&oo);
	if (!p->out)
		return false;
	if (p->cfg.gate.nsuppressions) {
		char err[512];

		p->supp = supp_new();
		for (int i = 0; i < p->cfg.gate.nsuppressions; i++)
			if (!p->supp || supp_load(p->supp, p->cfg.gate.suppressions[i], err, sizeof(err)))
				return false;
	}
	if (!p->cfg.svc.daemon)
		p->gate = gate_new(&p->cfg.gate);
	{
		struct findings_opts fo = {
			.syms = p->syms, .ustacks = p->ustacks, .py = p->py, .supp = p->supp,
			.gate = p->gate,
			.containers = p->cfg.svc.daemon ? p->containers : NULL,
		};

		p->findings = findings_new(&fo);
		if (!p->findings)
			return false;
	}
	p->ev.findings = p->findings;
	if (p->cfg.svc.daemon) {
		struct daemon_opts d = {
			.cfg = &p->cfg, .out = p->out, .findings = p->findings,
			.mono_to_real_ns = oo.mono_to_real_ns,
		};

		p->daemon = daemon_new(&d);
		if (!p->daemon)
			return false;
		p->ev.accept = daemon_accept;
		p->ev.accept_ctx = p->daemon;
	}
	co = (struct corr_opts){
		.hold_ns = p->cfg.json ? 0 : (uint64_t)p->cfg.hold_ms * 1000000ull,
		.max_pending = 4096, .max_bytes = 16u << 20,
	};
	p->corr = p->daemon ? correlate_new(&co, &daemon_sink, p->daemon) :
			      correlate_new(&co, &events_sink, &p->ev);
	p->ev.corr = p->corr;
	p->ev.out = p->out;
	p->ev.ustacks = p->ustacks;
	p->ev.others = p->others;
	p->ev.py = p->py;
	if (p->cfg.json)
		p->ev.containers = p->containers;
	output_start(p->out);
	return p->corr != NULL;
}

static void feed(struct pipeline *p, const void *rec, size_t size)
{
	events_handle(&p->ev, (void *)rec, size);
}

/* The end of a run, as tracer.c's finish(); the output, NUL-terminated. */
static const char *pipeline_finish(struct pipeline *p, uint64_t now)
{
	struct fh_counts c;

	for (int i = 0; i < FH_CNT_MAX; i++)
		c.v[i] = (uint64_t)i;
	c.v[FH_CNT_SUPPRESSED_BY_RULE] = findings_suppressed(p->findings);
	correlate_tick(p->corr, now);
	correlate_finish(p->corr, now);
	if (p->daemon)
		daemon_finish(p->daemon, now);
	output_summary(p->out, now, &c);
	output_flush(p->out);
	return p->buf ? p->buf : "";
}

/* FH_PIPELINE_DIR/name: what the case wrote, for tests/test_schema.py. */
static void keep(const struct pipeline *p, const char *name)
{
	const char *dir = getenv("FH_PIPELINE_DIR");
	char path[512];
	FILE *f;

	if (!dir || !p->buf)
		return;
	snprintf(path, sizeof(path), "%s/%s.%s", dir, name, p->cfg.json ? "jsonl" : "txt");
	f = fopen(path, "w");
	if (f) {
		fwrite(p->buf, 1, p->len, f);
		fclose(f);
	}
}

static void pipeline_close(struct pipeline *p)
{
	correlate_free(p->corr);
	daemon_free(p->daemon);
	findings_free(p->findings);
	gate_free(p->gate);
	supp_free(p->supp);
	output_free(p->out);
	otherthreads_free(p->others);
	containers_free(p->containers);
	events_free(&p->ev);
	pyframes_free(p->py);
	ustacks_free(p->ustacks);
	syms_free(p->syms);
	if (p->f)
		fclose(p->f);
	free(p->buf);
	cli_free();
}

/* ---- code to point at ------------------------------------------------------------- */

/* Where the made-up locks were taken: functions of this program, long
 * enough for the return addresses below to fall inside them. */
__attribute__((noinline)) void pipeline_lock_site_a(void)
{
	__asm__ volatile(".rept 64\n\tnop\n\t.endr" ::: "memory");
}

__attribute__((noinline)) void pipeline_lock_site_b(void)
{
	__asm__ volatile(".rept 64\n\tnop\n\t.endr" ::: "memory");
}

/* A return address inside f: its entry plus a little, as a caller's is. */
static uint64_t ret_in(void (*f)(void), int k)
{
	return (uint64_t)(uintptr_t)f + 1 + (uint64_t)k;
}

/* Our registers and the top of our stack, as the kernel copies them at a
 * hazard fork or a deadlocked wait: taken in inlined code, so that the
 * innermost frame has an inlined call. */
static inline __attribute__((always_inline)) void capture_registers(struct fh_ustack_event *ev)
{
#if defined(__x86_64__)
	uint64_t ip, sp, bp;

	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(ip), "=r"(sp), "=r"(bp));
	ev->ip = ip;
	ev->sp = sp;
	ev->bp = bp;
#else
	ev->ip = ev->sp = ev->bp = 0;
#endif
}

__attribute__((noinline)) void pipeline_fork_call_site(struct fh_ustack_event *ev)
{
	static const size_t sizes[] = { FH_USTACK_BYTES, FH_USTACK_BYTES / 4, 512 };

	capture_registers(ev);
	ev->len = 0;
	/* as the kernel does: a shallower stack ends in an unmapped page */
	for (size_t i = 0; i < 3 && ev->sp && !ev->len; i++) {
		struct iovec local = { ev->data, sizes[i] };
		struct iovec remote = { (void *)(uintptr_t)ev->sp, sizes[i] };

		if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) == (ssize_t)sizes[i])
			ev->len = (__u32)sizes[i];
	}
	__asm__ volatile("" ::: "memory");
}

/* A copy of file mapped executable here, as one image (text at its file
 * offset): the code of a library by another name. 0 on failure. */
static uint64_t map_copy(const char *file, const char *as)
{
	char cmd[1024];
	struct stat st;
	void *m;
	int fd;

	snprintf(cmd, sizeof(cmd), "cp '%s' '%s'", file, as);
	if (system(cmd))
		return 0;
	fd = open(as, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	m = fstat(fd, &st) ? MAP_FAILED : mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_EXEC,
					       MAP_PRIVATE, fd, 0);
	close(fd);
	return m == MAP_FAILED ? 0 : (uint64_t)(uintptr_t)m;
}

static int first_object(struct dl_phdr_info *info, size_t size, void *ctx)
{
	(void)size;
	*(uint64_t *)ctx = info->dlpi_addr;
	return 1;	/* the main program comes first */
}

/* This program's load bias: vaddr = address - bias. */
static uint64_t load_bias(void)
{
	uint64_t bias = 0;

	dl_iterate_phdr(first_object, &bias);
	return bias;
}

/* The entry point's file offset in an ELF executable (its _start: no
 * symbol in a stripped one). */
static uint64_t entry_of(const char *file)
{
	Elf64_Ehdr eh;
	int fd = open(file, O_RDONLY | O_CLOEXEC);
	bool ok = fd >= 0 && pread(fd, &eh, sizeof(eh), 0) == sizeof(eh);

	if (fd >= 0)
		close(fd);
	return ok ? eh.e_entry : 0;
}

static const char *self_dir(void)
{
	static char dir[512];
	ssize_t n = readlink("/proc/self/exe", dir, sizeof(dir) - 1);

	if (n <= 0)
		return ".";
	dir[n] = '\0';
	*strrchr(dir, '/') = '\0';
	return dir;
}

static struct {
	bool ready;
	uint64_t python_caller;	/* in "libpython3.11-fh-pipeline.so" */
	uint64_t stripped_caller;	/* in a stripped binary: no symbol */
	char python_file[64], stripped_file[64];
} code;

/* The foreign code, mapped once; removed at exit. */
static void code_cleanup(void)
{
	unlink(code.python_file);
	unlink(code.stripped_file);
}

static bool code_setup(void)
{
	char prog[600];
	uint64_t base;

	if (code.ready)
		return true;
	snprintf(code.python_file, sizeof(code.python_file), "/tmp/libpython3.11-fh-%d.so",
		 (int)getpid());
	snprintf(code.stripped_file, sizeof(code.stripped_file), "/tmp/fh-stripped-%d",
		 (int)getpid());
	atexit(code_cleanup);
	{
		char self[600];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		if (n <= 0)
			return false;
		self[n] = '\0';
		base = map_copy(self, code.python_file);
	}
	if (!base)
		return false;
	code.python_caller = base + ret_in(pipeline_lock_site_b, 2) - load_bias();
	snprintf(prog, sizeof(prog), "%s/../symprog-stripped", self_dir());
	base = map_copy(prog, code.stripped_file);
	if (!base || !entry_of(prog))
		return false;
	code.stripped_caller = base + entry_of(prog) + 4;
	code.ready = true;
	return true;
}

/* A forked copy of this process, waiting to be killed: a child with our code. */
static pid_t spawn_child(void)
{
	pid_t pid = fork();

	while (pid == 0)
		pause();
	return pid;
}

static void end_child(pid_t pid)
{
	if (pid > 0) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* ---- records ------------------------------------------------------------------------ */

static __u32 gettid_(void)
{
	return (__u32)syscall(SYS_gettid);
}

static struct fh_fork_event forkev;	/* too big for the stack */

static size_t fork_size(const struct fh_fork_event *ev)
{
	return offsetof(struct fh_fork_event, locks) + ev->nr_locks * sizeof(struct fh_lock);
}

static void fork_event(struct fh_fork_event *ev, __u32 pid, __u32 child, uint64_t t,
		       const char *exe)
{
	memset(ev, 0, sizeof(*ev));
	ev->type = FH_EV_FORK;
	ev->pid = pid;
	ev->tid = pid == (__u32)getpid() ? gettid_() : pid;
	ev->child_pid = child;
	ev->time_ns = t;
	ev->threads = 3;
	ev->stack_id = -1;
	ev->ppid = (__u32)getppid();
	ev->walked = 3;
	snprintf(ev->comm, sizeof(ev->comm), "pipeline");
	ev->ns_pid = pid;
	ev->ns_child_pid = child;
	snprintf(ev->exe_name, sizeof(ev->exe_name), "%s", exe);
}

static struct fh_lock *add_lock(struct fh_fork_event *ev, uint64_t addr, unsigned int kind,
				uint64_t caller, bool own)
{
	struct fh_lock *l = &ev->locks[ev->nr_locks++];

	memset(l, 0, sizeof(*l));
	l->addr = addr;
	l->acquired_ns = ev->time_ns - 1500000;
	l->caller = caller;
	l->stack_id = -1;
	l->holder_tid = own ? ev->tid : ev->tid + 1;
	l->kind = (__u16)kind;
	l->flags = (own ? FH_LOCK_OWN : 0) | (kind == FH_KIND_MUTEX ? FH_LOCK_CONFIRMED : 0);
	l->depth = 1;
	snprintf(l->holder_comm, sizeof(l->holder_comm), own ? "pipeline" : "worker\x1b[31m");
	if (own)
		ev->nr_own++;
	return l;
}

static void send_stack(struct pipeline *p, __u32 pid, __u32 tid, uint64_t t)
{
	static struct fh_ustack_event us;

	memset(&us, 0, offsetof(struct fh_ustack_event, data));
	us.type = FH_EV_USTACK;
	us.pid = pid;
	us.tid = tid;
	us.time_ns = t;
	pipeline_fork_call_site(&us);
	feed(p, &us, offsetof(struct fh_ustack_event, data) + us.len);
}

static void child_event(struct pipeline *p, __u32 pid, __u32 parent, unsigned int outcome,
			int status, uint64_t fork_t, uint64_t t)
{
	struct fh_child_event c = {
		.type = FH_EV_CHILD, .pid = pid, .parent_pid = parent, .outcome = outcome,
		.time_ns = t, .fork_ns = fork_t, .exit_code = status,
	};

	feed(p, &c, sizeof(c));
}

/* A fork with one foreign lock at addr whose child re-creates it, seen as
 * the kernel sees it: CPython's re-initialisation (python), or the lock's
 * word read as the child exits 0. */
static void mitigated_fork(struct pipeline *p, __u32 child, uint64_t t, uint64_t addr, bool python)
{
	struct fh_child_event c = {
		.type = FH_EV_CHILD, .pid = child, .parent_pid = (__u32)getpid(),
		.outcome = FH_CHILD_EXIT, .time_ns = t + 3000, .fork_ns = t,
	};

	fork_event(&forkev, (__u32)getpid(), child, t, "python3.11");
	add_lock(&forkev, addr, python ? FH_KIND_SEM : FH_KIND_MUTEX,
		 python ? code.python_caller : ret_in(pipeline_lock_site_a, 7), false);
	feed(p, &forkev, fork_size(&forkev));
	if (python) {
		struct fh_reinit_event r = { .type = FH_EV_REINIT, .pid = child,
					     .time_ns = t + 1000, .addr = addr };
		struct fh_reinit_event other = r;

		other.addr = addr + 0x40;	/* an interpreter lock of its own: not the fork's */
		feed(p, &other, sizeof(other));
		feed(p, &r, sizeof(r));
	} else {
		c.nr_reinit = 1;
		c.reinit[0] = addr;
	}
	feed(p, &c, sizeof(c));
}

static void deadlock_event(struct pipeline *p, __u32 pid, __u32 parent, uint64_t futex,
			   __u32 owner, uint64_t fork_t, uint64_t t, const char *exe)
{
	struct fh_deadlock_event d = {
		.type = FH_EV_DEADLOCK, .pid = pid, .tid = pid, .parent_pid = parent,
		.time_ns = t, .fork_ns = fork_t, .futex = futex, .owner_tid = owner,
		.flags = owner ? FH_DL_OWNER_KNOWN : 0, .stack_id = -1, .syscall = 202,
		.ns_pid = pid,
	};

	snprintf(d.comm, sizeof(d.comm), "pipeline");
	snprintf(d.exe_name, sizeof(d.exe_name), "%s", exe);
	send_stack(p, pid, pid, t);
	feed(p, &d, sizeof(d));
}

/* Another thread of this process, there while its record is read: what a
 * fork's list of other threads names, with its start routine (under ASan,
 * the sanitizer's, which calls ours). It ends right after: a process that
 * forks while multithreaded gets lock probes from any adaptive forkhazard
 * running meanwhile, which valgrind (make check-valgrind) takes for traps. */
#if defined(__SANITIZE_ADDRESS__)
#define WORKER_START	"asan_thread_start(void*)"
#else
#define WORKER_START	"pipeline_worker_main"
#endif
static __u32 worker_tid;
static int worker_go[2];

__attribute__((noinline)) void *pipeline_worker_main(void *arg)
{
	char c;

	(void)arg;
	__atomic_store_n(&worker_tid, gettid_(), __ATOMIC_RELEASE);
	(void)!read(worker_go[0], &c, 1);
	return NULL;
}

/* A fork's other threads, sent before it as the kernel does: the worker,
 * and the main thread (no start routine); two more omitted. */
static void other_threads(struct pipeline *p, struct fh_fork_event *ev)
{
	static struct fh_threads_event th;
	pthread_t worker;

	if (pipe(worker_go))
		return;
	__atomic_store_n(&worker_tid, 0, __ATOMIC_RELEASE);
	pthread_create(&worker, NULL, pipeline_worker_main, NULL);
	while (!__atomic_load_n(&worker_tid, __ATOMIC_ACQUIRE))
		usleep(1000);
	memset(&th, 0, sizeof(th));
	th.type = FH_EV_THREADS;
	th.pid = ev->pid;
	th.tid = ev->tid;
	th.time_ns = ev->time_ns;
	th.other[0] = (struct fh_other_thread){ .tid = worker_tid, .pthread = (uint64_t)worker,
						.comm = "worker" };
	th.other[1] = (struct fh_other_thread){ .tid = (__u32)getpid(),
						.pthread = (uint64_t)pthread_self(),
						.comm = "pipeline" };
	th.nr = 2;
	ev->nr_other = 2;
	ev->other_omitted = 2;
	feed(p, &th, offsetof(struct fh_threads_event, other) + th.nr * sizeof(th.other[0]));
	close(worker_go[1]);
	pthread_join(worker, NULL);
	close(worker_go[0]);
}

/* A hazard of this process with every kind of lock entry: a recursive
 * mutex taken in this program (with its frame-pointer callers), a Python
 * semaphore, a lock taken in code without symbols, one of our own, one in
 * shared memory, one whose memory the kernel could not look up (and that
 * no mapping here holds either), and more than the event holds; and two
 * other threads named. Its fork call's stack copy goes first. */
static void send_hazard_fork(struct pipeline *p, __u32 child, uint64_t t)
{
	struct fh_lock *l;

	fork_event(&forkev, (__u32)getpid(), child, t, "test_pipeline");
	l = add_lock(&forkev, 0x7f0000001000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_a, 3),
		     false);
	l->depth = 3;
	l->fp[0] = ret_in(pipeline_lock_site_b, 4);
	l->fp[1] = ret_in(pipeline_lock_site_a, 6);
	add_lock(&forkev, 0x7f0000002000ull, FH_KIND_SEM, code.python_caller, false);
	add_lock(&forkev, 0x7f0000003000ull, FH_KIND_RWLOCK_WRITE, code.stripped_caller, false);
	add_lock(&forkev, 0x7f0000004000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_b, 1), true);
	l = add_lock(&forkev, 0x7f000000a000ull, FH_KIND_SEM, ret_in(pipeline_lock_site_a, 5), false);
	l->flags |= FH_LOCK_SHARED;
	forkev.nr_shared++;
	l = add_lock(&forkev, 0x7f000000b000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_b, 5),
		     false);
	l->flags |= FH_LOCK_SHARED_UNKNOWN;
	forkev.locks_omitted = 2;
	forkev.flags = FH_FORK_TRUNCATED;
	other_threads(p, &forkev);
	send_stack(p, forkev.pid, forkev.tid, t);
	feed(p, &forkev, fork_size(&forkev));
}

/* A hazard of process pid (not this one: its frames stay unknown) with one
 * lock, its executable named exe. */
static void plain_hazard(struct pipeline *p, __u32 pid, __u32 child, uint64_t t, const char *exe)
{
	fork_event(&forkev, pid, child, t, exe);
	add_lock(&forkev, 0x1000, FH_KIND_MUTEX, 0x1234, false);
	feed(p, &forkev, fork_size(&forkev));
}

/* The first of the NULL-terminated strings that out lacks, or NULL. */
static const char *lacks(const char *out, const char *const *want)
{
	for (; *want; want++)
		if (!strstr(out, *want))
			return *want;
	return NULL;
}

#define CHECK_HAS(out, ...)							\
	do {									\
		const char *const want_[] = { __VA_ARGS__, NULL };		\
		const char *missing_ = lacks(out, want_);			\
		if (missing_)							\
			FAIL("the output lacks %s", missing_);			\
	} while (0)

/* ---- the cases ---------------------------------------------------------------------- */

static const char *json_args[] = { "-j", NULL };

UNIT_TEST(json_every_event_type)
{
	static struct pipeline p;
	pid_t child = spawn_child();
	uint64_t t = clock_mono_ns();
	const char *out;
	char short_rec[2] = { 1, 0 };

	CHECK(child > 0 && code_setup());
	CHECK(pipeline_open(&p, json_args));
	/* a hazard whose child deadlocks on the mutex, owner named by the lock word */
	send_hazard_fork(&p, (__u32)child, t);
	deadlock_event(&p, (__u32)child, (__u32)getpid(), 0x7f0000001000ull, forkev.tid + 1, t,
		       t + 4000000, "test_pipeline");
	child_event(&p, (__u32)child, (__u32)getpid(), FH_CHILD_EXIT, SIGKILL, t, t + 9000000);
	/* an info fork (own lock only), its child exec'd */
	fork_event(&forkev, (__u32)getpid(), 424242, t + 100, "test_pipeline");
	add_lock(&forkev, 0x7f0000005000ull, FH_KIND_SPIN, ret_in(pipeline_lock_site_a, 1), true);
	feed(&p, &forkev, fork_size(&forkev));
	child_event(&p, 424242, (__u32)getpid(), FH_CHILD_EXEC, 0, t + 100, t + 200);
	/* locks not tracked (--light, or a process's first fork in adaptive mode);
	 * its child exits with a status */
	fork_event(&forkev, (__u32)getpid(), 424243, t + 300, "test_pipeline");
	forkev.flags = FH_FORK_LIGHT;
	feed(&p, &forkev, fork_size(&forkev));
	child_event(&p, 424243, (__u32)getpid(), FH_CHILD_EXIT, 3 << 8, t + 300, t + 400);
	/* the other reasons locks go untracked: no probes yet, no lock
	 * library, the overhead governor */
	{
		static const __u32 reasons[] = { FH_FORK_UNPROBED, FH_FORK_NOLIB, FH_FORK_GOVERNED };

		for (int i = 0; i < 3; i++) {
			fork_event(&forkev, (__u32)getpid(), 424270 + (__u32)i, t + 310, "test_pipeline");
			forkev.flags = FH_FORK_LIGHT | reasons[i];
			feed(&p, &forkev, fork_size(&forkev));
		}
	}
	/* a downgraded process's fork: the word watch's lock, no time, its
	 * stack where it was learned */
	fork_event(&forkev, (__u32)getpid(), 424275, t + 320, "test_pipeline");
	forkev.flags = FH_FORK_GOVERNED | FH_FORK_WATCHED;
	add_lock(&forkev, 0x7f0000008000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_b, 2),
		 false)->flags |= FH_LOCK_WATCHED;
	forkev.locks[0].acquired_ns = forkev.time_ns;
	feed(&p, &forkev, fork_size(&forkev));
	/* a fork whose child was killed by a signal */
	fork_event(&forkev, (__u32)getpid(), 424246, t + 450, "test_pipeline");
	feed(&p, &forkev, fork_size(&forkev));
	child_event(&p, 424246, (__u32)getpid(), FH_CHILD_EXIT, SIGKILL, t + 450, t + 460);
	/* a fork whose child is still there at the end: "alive"; its other
	 * threads' record was lost */
	fork_event(&forkev, (__u32)getpid(), 424244, t + 500, "test_pipeline");
	add_lock(&forkev, 0x7f0000006000ull, FH_KIND_CUSTOM, ret_in(pipeline_lock_site_a, 2), false);
	forkev.nr_other = 1;
	feed(&p, &forkev, fork_size(&forkev));
	/* a deadlock of a fork never seen: no lock, no owner */
	deadlock_event(&p, 424245, 1, 0x7f0000007000ull, 0, t, t + 600, "");
	/* a child that re-initialised the lock it inherited, and exited */
	mitigated_fork(&p, 424247, t + 650, 0x7f0000009000ull, false);
	/* a record too short for its type, a probe request, an unknown type */
	feed(&p, short_rec, sizeof(short_rec));
	{
		struct fh_probe_request r = { .type = FH_EV_PROBE_REQUEST, .pid = (__u32)getpid() };
		__u32 unknown = 99;

		feed(&p, &r, sizeof(r));
		feed(&p, &unknown, sizeof(unknown));
	}
	output_lost(p.out, 7, t + 700);
	out = pipeline_finish(&p, t + 800);
	keep(&p, "json_every_event_type");
	end_child(child);
	CHECK_INT(p.ev.malformed, 2);
	CHECK_HAS(out, "{\"type\":\"fork\"", "{\"type\":\"child\"", "{\"type\":\"deadlock\"",
		  "{\"type\":\"lost\"", "{\"type\":\"summary\"",
		  /* the fork: its locks by role, the python one named, the escape */
		  "\"severity\":\"hazard\",\"locks\":[{\"addr\":\"0x7f0000001000\"",
		  "\"runtime\":\"python\"", "\"depth\":3", "\"holder_comm\":\"worker\\u001b[31m\"",
		  "\"own_locks\":[{\"addr\":\"0x7f0000004000\"",
		  "\"locks_omitted\":2,\"threads_truncated\":true",
		  "\"symbol\":\"pipeline_fork_call_site\"", "\"locks\":null,\"own_locks\":null",
		  "\"locks_untracked\":\"light\"", "\"locks_untracked\":\"unprobed\"",
		  "\"locks_untracked\":\"no_lock_library\"", "\"locks_untracked\":\"overhead\"",
		  "\"held_ns\":0,\"confirmed\":true,\"watched\":true",
		  "\"own_locks\":[],\"shared_locks\":[],\"internal_locks\":[],\"locks_watched\":true",
		  /* the deadlock names the mutex of the fork and its owner */
		  "\"futex\":\"0x7f0000001000\",\"owner_tid\":", "\"owner_tid\":null,\"lock\":null",
		  "\"outcome\":\"exit\",\"after_ns\":100,\"exit_status\":3", "\"outcome\":\"alive\"",
		  "\"outcome\":\"exit\",\"after_ns\":10,\"signal\":9",
		  /* what is not inherited, what to do, who else runs */
		  "\"shared_locks\":[{\"addr\":\"0x7f000000a000\"", "\"shared_unknown\":true",
		  "\"advice\":\"Another thread held this lock (taken at pipeline_lock_site_a+",
		  "posix_spawn", "\"other_threads\":[{\"tid\":",
		  "\"comm\":\"worker\",\"py_thread\":null,\"start\":{\"addr\":",
		  "\"symbol\":\"" WORKER_START "\",\"offset\":0",
		  "\"comm\":\"pipeline\",\"py_thread\":null,\"start\":null}],"
		  "\"other_threads_omitted\":2",
		  /* the re-created lock, in its child's fate */
		  "\"pid\":424247,\"parent_pid\":", "\"reinitialized\":[\"0x7f0000009000\"]",
		  "\"other_threads\":null,",
		  "\"reinitialized\":[]");
	pipeline_close(&p);
}

UNIT_TEST(text_holds_a_fork_for_its_fate)
{
	static struct pipeline p;
	static const char *args[] = { "--hold-ms", "1000", NULL };
	uint64_t t = clock_mono_ns();
	const char *out, *fork_line, *verdict;

	CHECK(code_setup());
	CHECK(pipeline_open(&p, args));
	send_hazard_fork(&p, 424250, t);
	child_event(&p, 424250, (__u32)getpid(), FH_CHILD_EXEC, 0, t, t + 41000);
	/* a Python lock the child re-created, known within the window */
	mitigated_fork(&p, 424252, t + 30, 0x7f000000c000ull, true);
	/* an info fork is not shown without -v, nor is its child's fate */
	fork_event(&forkev, (__u32)getpid(), 424251, t + 10, "test_pipeline");
	feed(&p, &forkev, fork_size(&forkev));
	child_event(&p, 424251, (__u32)getpid(), FH_CHILD_EXIT, 0, t + 10, t + 20);
	out = pipeline_finish(&p, t + 100000);
	keep(&p, "text_holds_a_fork_for_its_fate");
	fork_line = strstr(out, "HAZARD: 6 foreign locks");
	verdict = strstr(out, "-> child 424250 exec'd after 41.0us (benign)");
	CHECK(strncmp(out, "TIME     PID", 12) == 0);
	CHECK(fork_line && verdict && fork_line < verdict);
	CHECK(strstr(out, "python sem 0x7f0000002000 held by"));
	CHECK(strstr(out, "(worker\\x1b[31m)"));	/* escaped for the terminal */
	CHECK(strstr(out, "mutex 0x7f0000001000 held by") && strstr(out, "(recursive)"));
	CHECK(strstr(out, "... and 2 more locks"));
	/* not hazards, shown with -v only: own locks, locks in shared memory */
	CHECK(!strstr(out, "own: ") && !strstr(out, "shared (not inherited)"));
	CHECK(strstr(out, "mutex 0x7f000000b000 held by") &&
	      strstr(out, "(whether it is in shared memory could not be checked)"));
	CHECK(strstr(out, "fork called from:"));
	/* who else runs, what to do (once per hazard) */
	CHECK(strstr(out, "    other threads:\n        ") &&
	      strstr(out, " (worker) started at " WORKER_START "+0x0 ["));
	CHECK(strstr(out, "        ... and 2 more\n"));
	CHECK(strstr(out, "    what to do: Another thread held this lock (taken at"));
	CHECK(strstr(out, "posix_spawn") && strstr(out, "pthread_atfork"));
	CHECK(strstr(out, " (pipeline) the main thread\n"));
	CHECK(strstr(out, "    python sem 0x7f000000c000 held by") &&
	      strstr(out, "        mitigated: the child re-created it (CPython's _at_fork_reinit)\n"));
	CHECK(strstr(out, "    no change needed: the child re-created every lock it inherited held\n"));
	CHECK(!strstr(out, "424251"));
	CHECK(strstr(out, "events lost"));
	pipeline_close(&p);
}

UNIT_TEST(text_verbose_shows_info_forks_and_depth_bounds_stacks)
{
	static struct pipeline p;
	static const char *args[] = { "-vv", "--stack-depth", "1", "--hold-ms", "0", NULL };
	uint64_t t = clock_mono_ns();
	const char *out;

	CHECK(code_setup());
	CHECK(pipeline_open(&p, args));
	fork_event(&forkev, (__u32)getpid(), 424260, t, "test_pipeline");
	add_lock(&forkev, 0x7f0000001000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_a, 3), true);
	forkev.locks[0].fp[0] = ret_in(pipeline_lock_site_b, 4);
	add_lock(&forkev, 0x7f000000a000ull, FH_KIND_SEM, ret_in(pipeline_lock_site_a, 5), false);
	forkev.locks[1].flags |= FH_LOCK_SHARED;
	forkev.nr_shared = 1;
	send_stack(&p, forkev.pid, forkev.tid, t);
	feed(&p, &forkev, fork_size(&forkev));
	child_event(&p, 424260, (__u32)getpid(), FH_CHILD_EXIT, SIGSEGV, t, t + 5);
	fork_event(&forkev, (__u32)getpid(), 424261, t + 1, "test_pipeline");
	forkev.flags = FH_FORK_LIGHT;
	feed(&p, &forkev, fork_size(&forkev));
	/* downgraded: nothing, then a lock, from the word watch; the reason */
	fork_event(&forkev, (__u32)getpid(), 424262, t + 2, "test_pipeline");
	forkev.flags = FH_FORK_GOVERNED | FH_FORK_WATCHED;
	feed(&p, &forkev, fork_size(&forkev));
	fork_event(&forkev, (__u32)getpid(), 424263, t + 3, "test_pipeline");
	forkev.flags = FH_FORK_GOVERNED | FH_FORK_WATCHED;
	add_lock(&forkev, 0x7f0000008000ull, FH_KIND_MUTEX, ret_in(pipeline_lock_site_b, 2),
		 false)->flags |= FH_LOCK_WATCHED;
	feed(&p, &forkev, fork_size(&forkev));
	fork_event(&forkev, (__u32)getpid(), 424264, t + 4, "test_pipeline");
	forkev.flags = FH_FORK_LIGHT | FH_FORK_GOVERNED;
	feed(&p, &forkev, fork_size(&forkev));
	out = pipeline_finish(&p, t + 10);
	keep(&p, "text_verbose_shows_info_forks_and_depth_bounds_stacks");
	CHECK(strstr(out, "fork, no foreign lock held"));
	CHECK(strstr(out, "    own: mutex 0x7f0000001000"));
	CHECK(strstr(out, "    shared (not inherited): sem 0x7f000000a000 held by"));
	CHECK(strstr(out, "fork (locks not tracked)"));
	CHECK(strstr(out, "fork, no watched lock owned by another thread (probes detached by the "
			  "overhead governor)"));
	CHECK(strstr(out, "HAZARD: 1 foreign lock (word watch: probes detached by the overhead "
			  "governor)\n    site "));
	CHECK(strstr(out, "\n    mutex 0x7f0000008000 owned by "));
	CHECK(strstr(out, "read from its word\n        last taken while probed at:\n"
			  "        #0 pipeline_lock_site_b"));
	CHECK(strstr(out, "fork (locks not tracked: the overhead governor detached its lock probes)"));
	CHECK(strstr(out, "child of"));
	/* -vv: the stack of a fork that is no hazard too, one frame deep */
	CHECK(strstr(out, "fork called from:\n        #0 "));
	CHECK(!strstr(out, "        #1 "));
	pipeline_close(&p);
}

UNIT_TEST(daemon_sites_limits_and_aggregates)
{
	static struct pipeline p;
	static char prom[64];
	static const char *args[] = {
		"--daemon", "--max-sites", "16", "--metrics-sites", "0", "--report-interval", "0.1",
		"--rate-limit", "1000", "--site-rate-limit", "2", "--metrics-file", prom,
		"--filter-comm", "!filtered*", NULL,
	};
	static char log[16384], none[16];
	struct unit_capture cap;
	pid_t child = spawn_child();
	uint64_t t = clock_mono_ns();
	const char *out;
	char exe[32];

	snprintf(prom, sizeof(prom), "/tmp/fh-pipeline-%d.prom", (int)getpid());
	CHECK(child > 0 && code_setup());
	CHECK(pipeline_open(&p, args));
	CHECK(p.cfg.json);
	CHECK(unit_capture_begin(&cap));	/* the daemon's log lines */
	/* a site reported in full, then its deadlock, then only counted */
	send_hazard_fork(&p, (__u32)child, t);
	deadlock_event(&p, (__u32)child, (__u32)getpid(), 0x7f0000001000ull, forkev.tid + 1, t,
		       t + 1000, "test_pipeline");
	for (int i = 0; i < 3; i++)
		send_hazard_fork(&p, 424300 + (__u32)i, t + 2000 + (uint64_t)i);
	child_event(&p, 424300, (__u32)getpid(), FH_CHILD_EXEC, 0, t + 2000, t + 3000);
	/* five distinct lock sites: four described, one more counted */
	fork_event(&forkev, (__u32)getpid(), 424310, t + 4000, "manylocks");
	for (int i = 0; i < 5; i++)
		add_lock(&forkev, 0x7f0000010000ull + (uint64_t)i * 64, FH_KIND_MUTEX,
			 ret_in(i % 2 ? pipeline_lock_site_a : pipeline_lock_site_b, 8 * i), false);
	feed(&p, &forkev, fork_size(&forkev));
	/* one site in 20 processes: counted exactly up to 16, then estimated */
	for (int i = 0; i < 20; i++)
		plain_hazard(&p, 500000 + (__u32)i, 600000 + (__u32)i, t + 5000, "manyprocs");
	/* a deadlock whose fork was no hazard: a site of its own kind */
	deadlock_event(&p, 424320, 1, 0x7f0000020000ull, 0, t, t + 6000, "nohazard");
	/* a site whose child re-created its lock: mitigated */
	mitigated_fork(&p, 424330, t + 6500, 0x7f0000030000ull, false);
	daemon_tick(p.daemon, clock_mono_ns() + 1000000000ull);	/* periodic aggregates */
	/* more sites than the table holds: the least recent evicted, said first */
	for (int i = 0; i < 20; i++) {
		snprintf(exe, sizeof(exe), "evict%d", i);
		plain_hazard(&p, 700000 + (__u32)i, 800000 + (__u32)i, t + 7000, exe);
	}
	/* filtered by thread name before any work */
	fork_event(&forkev, 900000, 900001, t + 8000, "filtered");
	snprintf(forkev.comm, sizeof(forkev.comm), "filtered-out");
	add_lock(&forkev, 0x1000, FH_KIND_MUTEX, 0x1234, false);
	feed(&p, &forkev, fork_size(&forkev));
	out = pipeline_finish(&p, clock_mono_ns() + 2000000000ull);
	unit_capture_end(&cap, none, sizeof(none), log, sizeof(log));
	keep(&p, "daemon_sites_limits_and_aggregates");
	end_child(child);
	CHECK(strstr(log, "forkhazard: warning: fork hazard, new site "));
	CHECK(strstr(log, "forkhazard: DEADLOCK at site "));
	CHECK(strstr(log, "20 hazards (+20), 0 deadlocks (+0) in 20 processes: manyprocs"));
	CHECK(!strstr(out, "{\"type\":\"child\""));	/* aggregated, not written */
	CHECK_HAS(out, "{\"type\":\"fork\"", "\"site\":\"", "{\"type\":\"deadlock\"",
		  "\"reason\":\"periodic\"", "\"reason\":\"evicted\"", "\"reason\":\"final\"",
		  "\"kind\":\"deadlock\"", "\"lock_sites_omitted\":1", "\"processes_estimated\":true",
		  "\"hazards\":1,\"mitigated\":1,\"deadlocks\":0,",
		  "{\"type\":\"site_table\"", "\"filtered\":1", "\"site_rate_limit\":");
	CHECK(!access(prom, R_OK));
	unlink(prom);
	pipeline_close(&p);
}

/* ---- Python ---------------------------------------------------------------------- */

static void py_frame(struct fh_py_stack *st, uint64_t code_obj, uint64_t line_off)
{
	st->status = FH_PY_WALKED;
	st->f[st->n].code = code_obj;
	st->f[st->n++].instr = line_off;
}

/* PY_PID forks in spawn_reporter() (main.py:57) while its refresher
 * thread holds a lock taken in Cache.refresh (cache.py:42; the frame
 * below it has no line), and its own sentinel and a Condition waiter;
 * the main thread's own sentinel, and a C lock with no Python frame.
 * Its child deadlocks in spawn_reporter at line 59. */
static void python_hazard(struct pipeline *p, uint64_t t)
{
	struct fh_deadlock_event d = {
		.type = FH_EV_DEADLOCK, .pid = PY_CHILD, .tid = PY_CHILD, .parent_pid = PY_PID,
		.time_ns = t + 3000, .fork_ns = t, .futex = 0x9000, .stack_id = -1, .syscall = 202,
		.ns_pid = PY_CHILD,
	};
	struct fh_lock *l;

	fork_event(&forkev, PY_PID, PY_CHILD, t, "python3.12");
	py_frame(&forkev.py, PY_CODE_FORK, 7);
	py_frame(&forkev.py, PY_CODE_MODULE, 80);
	l = add_lock(&forkev, 0x9000, FH_KIND_SEM, 0x1234, false);
	py_frame(&l->py, PY_CODE_USER, 12);
	py_frame(&l->py, PY_CODE_USER, 0);
	l = add_lock(&forkev, 0x9100, FH_KIND_SEM, 0x1234, false);
	py_frame(&l->py, PY_CODE_SENTINEL, 6);
	l = add_lock(&forkev, 0x9200, FH_KIND_SEM, 0x1234, false);
	py_frame(&l->py, PY_CODE_WAIT, 26);
	l = add_lock(&forkev, 0x9300, FH_KIND_MUTEX, 0x1234, false);
	l->py.status = FH_PY_WALKED;	/* taken in C: no Python frame */
	l = add_lock(&forkev, 0x9400, FH_KIND_SEM, 0x1234, true);
	py_frame(&l->py, PY_CODE_SENTINEL, 6);
	for (__u32 i = 0; i < forkev.nr_locks; i++)
		forkev.locks[i].holder_tid = forkev.locks[i].flags & FH_LOCK_OWN ? PY_PID : PY_PID + 1;
	feed(p, &forkev, fork_size(&forkev));
	py_frame(&d.py, PY_CODE_FORK, 9);
	snprintf(d.comm, sizeof(d.comm), "python3");
	feed(p, &d, sizeof(d));
}

UNIT_TEST(python_frames_names_and_the_interpreters_locks)
{
	static struct pipeline p;
	uint64_t t = clock_mono_ns();
	const char *out;

	CHECK(pipeline_open(&p, json_args));
	python_hazard(&p, t);
	out = pipeline_finish(&p, t + 10000);
	keep(&p, "python_frames_names_and_the_interpreters_locks");
	/* two hazards (the user's lock, the C lock); the sentinels and the
	 * waiter are the interpreter's */
	CHECK_INT(p.ev.hazards, 1);
	CHECK_HAS(out, "\"py_thread\":\"MainThread\"",
		  "\"py_thread\":\"cache-\\u001b[1mrefresher\"",
		  "\"py_stack\":[{\"file\":\"/srv/venv/lib/python3.12/site-packages/app/cache.py\","
		  "\"line\":42,\"function\":\"Cache.refresh\"},{\"file\":"
		  "\"/srv/venv/lib/python3.12/site-packages/app/cache.py\",\"line\":null,",
		  "\"internal_locks\":[{\"addr\":\"0x9100\"", "\"internal\":\"sentinel\"",
		  "\"internal\":\"condition-waiter\"",
		  /* the C lock: native frames only */
		  "\"addr\":\"0x9300\",\"kind\":\"mutex\",\"holder_tid\":777701,"
		  "\"holder_comm\":\"worker\\u001b[31m\",\"py_thread\":\"cache-",
		  "\"py_stack\":[{\"file\":\"/srv/app/main.py\",\"line\":57,"
		  "\"function\":\"spawn_reporter\"},{\"file\":\"/srv/app/main.py\",\"line\":81,",
		  /* the deadlock: where the child waits, read from the child */
		  "\"lock\":{\"addr\":\"0x9000\"", "\"function\":\"spawn_reporter\"}],\"stack\"");
	CHECK(strstr(out, "\"confirmed\":true,\"py_stack\":[]"));
	pipeline_close(&p);
}

UNIT_TEST(python_text_frames_first)
{
	static struct pipeline p;
	static const char *args[] = { "-v", "--hold-ms", "1000", NULL };
	uint64_t t = clock_mono_ns();
	const char *out, *py, *native;

	CHECK(pipeline_open(&p, args));
	python_hazard(&p, t);
	out = pipeline_finish(&p, t + 10000);
	keep(&p, "python_text_frames_first");
	CHECK_HAS(out, "HAZARD: 2 foreign locks",
		  "    sem 0x9000 held by 777701 (worker\\x1b[31m) \"cache-\\x1b[1mrefresher\" for ",
		  "        py: Cache.refresh (app/cache.py:42)\n        py: Cache.refresh (app/cache.py)\n",
		  "    internal: sem 0x9100 held by 777701", "(unconfirmed): the interpreter's sentinel\n",
		  ": the interpreter's condition-waiter\n",
		  "fork called from \"MainThread\":\n        py: spawn_reporter (/srv/app/main.py:57)\n",
		  "waiting in:\n        py: spawn_reporter (/srv/app/main.py:59)\n");
	/* the own sentinel is the interpreter's, not an own lock */
	CHECK(!strstr(out, "own: "));
	/* Python frames before the native ones */
	py = strstr(out, "py: Cache.refresh");
	native = py ? strstr(py, "#0 ") : NULL;
	CHECK(py && native);
	pipeline_close(&p);
}

UNIT_TEST(python_daemon_sites_by_python_frames)
{
	static struct pipeline p;
	static const char *args[] = { "--daemon", "--report-interval", "100", NULL };
	static char log[8192], none[16];
	struct unit_capture cap;
	uint64_t t = clock_mono_ns();
	const char *out;

	CHECK(pipeline_open(&p, args));
	CHECK(unit_capture_begin(&cap));
	python_hazard(&p, t);
	out = pipeline_finish(&p, t + 10000);
	unit_capture_end(&cap, none, sizeof(none), log, sizeof(log));
	keep(&p, "python_daemon_sites_by_python_frames");
	CHECK_HAS(out, "\"fork_site\":\"spawn_reporter (/srv/app/main.py:57)\"",
		  "\"lock_sites\":[\"Cache.refresh (app/cache.py:42)\",\"0x1234\"]");
	CHECK(strstr(log, "forked at spawn_reporter (/srv/app/main.py:57)"));
	pipeline_close(&p);
}

/* ---- the overhead governor's events ------------------------------------------------- */

/* A downgrade (measured, then detached), a re-arm (nothing measured yet), a
 * restore with no CPU time seen (its overhead unknown). */
static void governor_events(struct gov_event ev[3], uint64_t t)
{
	memset(ev, 0, 3 * sizeof(*ev));
	for (int i = 0; i < 3; i++) {
		ev[i].pid = getpid();
		ev[i].time_ns = t + (uint64_t)i * 1000;
		snprintf(ev[i].comm, sizeof(ev[i].comm), "svc\x1b[31m");
		ev[i].budget_pct = 1;
		ev[i].hit_ns = 5321.5;
		ev[i].downgrades = 1;
	}
	ev[0].action = GOV_DOWNGRADE;
	ev[0].window_ns = 1000000000;
	ev[0].hits = 60000;
	ev[0].cost_ns = 319290000;
	ev[0].cpu_ns = 990000000;
	ev[0].overhead_pct = 32.25;
	ev[0].backoff_ns = GOV_BACKOFF_MIN_NS;
	ev[1].action = GOV_REARM;
	ev[1].window_ns = GOV_REARM_WINDOW_NS;
	ev[1].overhead_pct = -1;
	ev[2].action = GOV_RESTORE;
	ev[2].window_ns = GOV_REARM_WINDOW_NS;
	ev[2].hits = 10;
	ev[2].cost_ns = 53215;
	ev[2].overhead_pct = -1;
}

UNIT_TEST(governor_events_json_text_and_daemon)
{
	static struct pipeline p;
	static char prom[64];
	static const char *daemon_args[] = { "--daemon", "--metrics-file", prom, NULL };
	static char log[8192], none[16];
	struct unit_capture cap;
	struct gov_event ev[3];
	uint64_t t = clock_mono_ns();
	const char *out;

	governor_events(ev, t);
	CHECK(pipeline_open(&p, json_args));
	for (int i = 0; i < 3; i++)
		output_governor(p.out, &ev[i]);
	out = pipeline_finish(&p, t + 10000);
	keep(&p, "governor_events_json");
	CHECK_HAS(out, "{\"type\":\"governor\"", "\"action\":\"downgrade\",\"budget_pct\":1.000,"
		  "\"hit_ns\":5321.5,\"window_ns\":1000000000,\"hits\":60000,\"cost_ns\":319290000,"
		  "\"cpu_ns\":990000000,\"overhead_pct\":32.250,\"backoff_ns\":10000000000,"
		  "\"downgrades\":1",
		  "\"action\":\"rearm\",\"budget_pct\":1.000,\"hit_ns\":5321.5,\"window_ns\":500000000,"
		  "\"hits\":null,\"cost_ns\":null,\"cpu_ns\":null,\"overhead_pct\":null,"
		  "\"backoff_ns\":null",
		  "\"action\":\"restore\"", "\"overhead_pct\":null,\"backoff_ns\":null",
		  "\"comm\":\"svc\\u001b[31m\"");
	pipeline_close(&p);

	CHECK(pipeline_open(&p, (const char *[]){ NULL }));
	for (int i = 0; i < 3; i++)
		output_governor(p.out, &ev[i]);
	out = pipeline_finish(&p, t + 10000);
	keep(&p, "governor_events_text");
	CHECK_HAS(out, "GOVERNOR: lock probes cost 32.2% of its CPU time over 1.00s (budget 1%): "
		  "locks not tracked, tried again in 10.00s",
		  "governor: lock probes attached again for 500.0ms (downgraded 1 time)",
		  "governor: lock probes cost 0.1ms, with no CPU time of its own seen over 500.0ms "
		  "(budget 1%): locks tracked again", "svc\\x1b[31m");
	pipeline_close(&p);

	/* the daemon: a line in its log for each, the events in its output */
	snprintf(prom, sizeof(prom), "/tmp/fh-pipeline-gov-%d.prom", (int)getpid());
	CHECK(pipeline_open(&p, daemon_args));
	CHECK(unit_capture_begin(&cap));
	for (int i = 0; i < 3; i++)
		daemon_governor(p.daemon, &ev[i]);
	out = pipeline_finish(&p, t + 10000);
	unit_capture_end(&cap, none, sizeof(none), log, sizeof(log));
	keep(&p, "governor_events_daemon");
	unlink(prom);
	CHECK_HAS(log, "forkhazard: warning: governor: svc\\x1b[31m (PID ",
		  "): lock probes cost 32.2% of its CPU time over 1.00s (budget 1%): locks not tracked",
		  "): lock probes attached again for 500.0ms", "locks tracked again");
	CHECK_HAS(out, "\"action\":\"downgrade\"", "\"action\":\"rearm\"", "\"action\":\"restore\"");
	pipeline_close(&p);
}

/* ---- suppression rules, sites in every mode --------------------------------------- */

/* A rules file for the cases below: the made-up hazard's recursive mutex
 * (taken in pipeline_lock_site_a) by a frame glob, every finding of
 * executable "plainexe", and deadlocks that wait in our capture function. */
static const char *rules_file(void)
{
	static char path[64];
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/fh-pipeline-%d.supp", (int)getpid());
	f = fopen(path, "w");
	if (!f)
		return NULL;
	fputs("# accepted\n"
	      "hazard lock=pipeline_lock_site_a   # line 2\n"
	      "any exe=plainexe\n"
	      "deadlock wait=\"pipeline_fork_call_site (*test_pipeline.c:*)\"\n", f);
	fclose(f);
	return path;
}

UNIT_TEST(json_suppressions_set_locks_and_findings_aside)
{
	static struct pipeline p;
	static const char *args[] = { "-j", "--suppressions", NULL, NULL };
	pid_t child = spawn_child();
	uint64_t t = clock_mono_ns();
	const char *out, *path = rules_file();
	char want[128];

	CHECK(path && child > 0 && code_setup());
	args[2] = path;
	CHECK(pipeline_open(&p, args));
	/* one lock of five set aside: still a hazard, with its site */
	send_hazard_fork(&p, 424400, t);
	/* every lock set aside by the executable's rule: no finding left */
	plain_hazard(&p, 424401, 424402, t + 10, "plainexe");
	/* a deadlock of a fork never seen, waiting where the rule says */
	deadlock_event(&p, (__u32)child, (__u32)getpid(), 0x7f0000007000ull, 0, t, t + 600,
		       "test_pipeline");
	out = pipeline_finish(&p, t + 800);
	keep(&p, "json_suppressions_set_locks_and_findings_aside");
	end_child(child);
	snprintf(want, sizeof(want), "\"suppressed_by\":\"%s:2\"", path);
	CHECK_HAS(out, want, "\"severity\":\"hazard\"", "\"site\":\"", "\"suppressed\":true",
		  "\"suppressed_by_rule\":2");
	snprintf(want, sizeof(want), "\"suppressed\":true,\"suppressed_by\":\"%s:4\"", path);
	CHECK_HAS(out, want);
	snprintf(want, sizeof(want), "\"suppressed_by\":\"%s:3\"", path);
	CHECK_HAS(out, want);
	/* the first hazard keeps four unsuppressed locks: it is not "suppressed" */
	CHECK(strstr(out, "\"threads_truncated\":true,\"advice\""));
	CHECK_INT(findings_suppressed(p.findings), 2);
	pipeline_close(&p);
	unlink(path);
}

UNIT_TEST(text_suppressed_shown_with_v_only)
{
	static struct pipeline p, pv;
	static const char *args[] = { "--hold-ms", "0", "--suppressions", NULL, NULL };
	static const char *vargs[] = { "-v", "--hold-ms", "0", "--suppressions", NULL, NULL };
	uint64_t t = clock_mono_ns();
	const char *out, *path = rules_file();
	char want[128];

	CHECK(path && code_setup());
	args[3] = vargs[4] = path;
	CHECK(pipeline_open(&p, args));
	send_hazard_fork(&p, 424410, t);
	plain_hazard(&p, 424411, 424412, t + 10, "plainexe");
	child_event(&p, 424412, 424411, FH_CHILD_EXEC, 0, t + 10, t + 20);
	out = pipeline_finish(&p, t + 100);
	keep(&p, "text_suppressed_shown_with_v_only");
	CHECK_HAS(out, "HAZARD: 6 foreign locks\n    site ", "(recursive) (suppressed)\n",
		  "(1 findings suppressed by rules)");
	CHECK(!strstr(out, "424411"));	/* set aside: neither it nor its child's fate */
	pipeline_close(&p);
	CHECK(pipeline_open(&pv, vargs));
	plain_hazard(&pv, 424411, 424412, t + 10, "plainexe");
	out = pipeline_finish(&pv, t + 100);
	snprintf(want, sizeof(want), "(suppressed by %s:3)", path);
	CHECK_HAS(out, "hazard, suppressed: 1 foreign lock\n    site ", want);
	pipeline_close(&pv);
	unlink(path);
}

UNIT_TEST(daemon_suppressed_only_counted)
{
	static struct pipeline p;
	static const char *args[] = { "--daemon", "--suppressions", NULL, NULL };
	static char log[4096], none[16];
	struct unit_capture cap;
	uint64_t t = clock_mono_ns();
	const char *out, *path = rules_file();

	CHECK(path);
	args[2] = path;
	CHECK(pipeline_open(&p, args));
	CHECK(unit_capture_begin(&cap));
	plain_hazard(&p, 424421, 424422, t, "plainexe");
	plain_hazard(&p, 424423, 424424, t + 10, "otherexe");
	out = pipeline_finish(&p, t + 100);
	unit_capture_end(&cap, none, sizeof(none), log, sizeof(log));
	keep(&p, "daemon_suppressed_only_counted");
	CHECK_HAS(out, "\"exe_name\":\"otherexe\"", "\"suppressed_by_rule\":1");
	CHECK(!strstr(out, "plainexe"));	/* neither written nor aggregated */
	CHECK(strstr(log, "otherexe") && !strstr(log, "plainexe"));	/* nor logged */
	pipeline_close(&p);
	unlink(path);
}

UNIT_TEST(gate_fails_on_what_is_left_and_writes_sarif)
{
	static struct pipeline p;
	static const char *args[] = { "-j", "--fail-on", "hazard", "--suppressions", NULL, NULL };
	uint64_t t = clock_mono_ns();
	const char *path = rules_file();
	static char lines[4096], none[16];
	struct unit_capture cap;
	char *sarif = NULL;
	size_t len = 0;
	int st[4];
	FILE *f;

	CHECK(path && code_setup());
	args[4] = path;
	CHECK(pipeline_open(&p, args));
	plain_hazard(&p, 424431, 424432, t, "plainexe");
	pipeline_finish(&p, t + 100);
	CHECK(unit_capture_begin(&cap));	/* the closing lines */
	/* only what the rules set aside: passes; the command's own failure kept */
	st[0] = gate_exit_status(p.gate, 0, false, 0);
	st[1] = gate_exit_status(p.gate, 5, true, 0);
	send_hazard_fork(&p, 424433, t + 200);
	st[2] = gate_exit_status(p.gate, 0, false, 3);
	st[3] = gate_exit_status(p.gate, 7, true, 0);
	unit_capture_end(&cap, none, sizeof(none), lines, sizeof(lines));
	CHECK_INT(st[0], 0);
	CHECK_INT(st[1], 5);
	CHECK_INT(st[2], FH_EXIT_FINDINGS);
	CHECK_INT(st[3], 7);
	CHECK_HAS(lines, "forkhazard: passing (--fail-on=hazard): 0 hazards and 0 deadlocks left, "
		  "1 suppressed by rules\n", "its status 5 kept",
		  "forkhazard: failing with status 66 (--fail-on=hazard): 1 hazard and 0 deadlocks "
		  "left, 1 suppressed by rules; 3 fork events lost: findings may be missing\n");
	f = open_memstream(&sarif, &len);
	CHECK(f);
	CHECK_INT(sarif_write(f, p.gate, "/nonexistent"), 0);
	fclose(f);
	CHECK_HAS(sarif, "\"version\":\"2.1.0\"", "\"ruleId\":\"fork-hazard\"",
		  "\"partialFingerprints\":{\"forkhazardSite/v1\":\"", "\"kind\":\"external\"",
		  "\"name\":\"pipeline_fork_call_site\"", "\"name\":\"pipeline_lock_site_a\"");
	free(sarif);
	pipeline_close(&p);
	unlink(path);
}

/* What the kernel could not look up (bpf_find_vma busy) is settled from the
 * maps: a lock in a shared page is no hazard after all (and the kernel's
 * count is corrected), one in private memory stays; a deadlock on a private
 * word is one, on a shared word it is not. */
UNIT_TEST(kernel_unsure_cases_settled_from_maps)
{
	static struct pipeline p;
	static int private_word;
	int *shared = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pid_t child = spawn_child();
	uint64_t t = clock_mono_ns();
	struct fh_deadlock_event d = {
		.type = FH_EV_DEADLOCK, .pid = (__u32)child, .tid = (__u32)child,
		.parent_pid = (__u32)getpid(), .time_ns = t + 100, .fork_ns = t,
		.flags = FH_DL_MEMORY_UNKNOWN, .stack_id = -1, .syscall = 202,
	};
	struct fh_lock *l;
	const char *out;

	CHECK(shared != MAP_FAILED && child > 0 && code_setup());
	CHECK(pipeline_open(&p, json_args));
	/* one lock, in a shared page: no hazard once placed */
	fork_event(&forkev, (__u32)getpid(), (__u32)child, t, "test_pipeline");
	l = add_lock(&forkev, (uint64_t)(uintptr_t)shared, FH_KIND_MUTEX,
		     ret_in(pipeline_lock_site_a, 1), false);
	l->flags |= FH_LOCK_SHARED_UNKNOWN;
	feed(&p, &forkev, fork_size(&forkev));
	/* the child waits on a word in a shared page: not a deadlock; then on
	 * a private one: one */
	d.futex = (uint64_t)(uintptr_t)(shared + 1);
	feed(&p, &d, sizeof(d));
	d.futex = (uint64_t)(uintptr_t)&private_word;
	feed(&p, &d, sizeof(d));
	/* another fork: its lock in private memory stays a hazard */
	fork_event(&forkev, (__u32)getpid(), 424270, t + 200, "test_pipeline");
	l = add_lock(&forkev, (uint64_t)(uintptr_t)&private_word, FH_KIND_MUTEX,
		     ret_in(pipeline_lock_site_a, 1), false);
	l->flags |= FH_LOCK_SHARED_UNKNOWN;
	feed(&p, &forkev, fork_size(&forkev));
	out = pipeline_finish(&p, t + 1000);
	keep(&p, "kernel_unsure_cases_settled_from_maps");
	end_child(child);
	munmap(shared, 4096);
	CHECK_INT(p.ev.hazards, 1);	/* judged after placing: the shared one is none */
	CHECK_INT(p.ev.deadlocks_confirmed, 1);
	CHECK_HAS(out, "\"severity\":\"info\",\"locks\":[],\"own_locks\":[],\"shared_locks\":[{",
		  "\"severity\":\"hazard\",\"locks\":[{");
	{
		char want[64];
		const char *first;

		snprintf(want, sizeof(want), "\"futex\":\"0x%llx\"",
			 (unsigned long long)(uintptr_t)&private_word);
		first = strstr(out, "\"type\":\"deadlock\"");
		CHECK(first && strstr(first, want));
		CHECK(!strstr(first + 1, "\"type\":\"deadlock\""));	/* one only */
	}
	CHECK(!strstr(out, "shared_unknown"));	/* both placed */
	pipeline_close(&p);
}

// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/btf.h>
#include <bpf/libbpf.h>
#include "bpf_compat.h"
#include "calibrate.h"
#include "caps.h"
#include "clock.h"
#include "cli.h"
#include "command.h"
#include "counters.h"
#include "container.h"
#include "correlate.h"
#include "daemon.h"
#include "escape.h"
#include "elfsyms.h"
#include "events.h"
#include "finding.h"
#include "forkhazard.skel.h"
#include "governor.h"
#include "gate.h"
#include "log.h"
#include "otherthreads.h"
#include "outfile.h"
#include "output.h"
#include "probes.h"
#include "procfs.h"
#include "pyframes.h"
#include "sarif.h"
#include "suppress.h"
#include "pyrt.h"
#include "reinit.h"
#include "reinitprobe.h"
#include "symbolize.h"
#include "libcthread.h"
#include "ustacks.h"
#include "tracer.h"

#define TICK_MS			100
#define PY_POLL_MS		2	/* pyframes_polling() */
#define STACK_MAP_RESET_LOSSES	256	/* empty the stack map after this many losses */

struct tracer {
	const struct fh_config *cfg;
	struct forkhazard_bpf *skel;
	struct ring_buffer *rb;
	struct probes *probes;
	struct governor *gov;		/* who gets lock probes, and for how long */
	struct reinitprobe *reinit;	/* CPython's lock re-creation in children */
	struct otherthreads *others;	/* names a fork's other threads */
	struct syms *syms;
	struct ustacks *ustacks;
	struct output *out;
	struct pyframes *py;		/* Python processes: layouts, frames, names */
	struct correlate *corr;
	struct events events;
	FILE *outf;
	struct command cmd;
	bool has_cmd;
	int epfd, sigfd, timerfd;
	int stop_signal;
	bool stop;
	uint64_t deadline_ns;
	uint64_t lost_reported;
	uint64_t stacks_lost_at_reset;
	uint32_t full_warned;	/* FH_STAT_* bits already warned about */
	struct daemon *daemon;		/* --daemon (daemon.c) */
	struct suppressions *supp;	/* --suppressions */
	struct findings *findings;	/* sites, executables, the rules' verdicts */
	struct gate *gate;		/* what the run found, for its end; not --daemon */
	FILE *sarif;			/* --sarif */
	struct fh_counts final;		/* the summary's counts */
	struct containers *containers;	/* cgroup and container of JSON events */
	bool reopen;			/* SIGHUP: reopen the outputs */
	uint64_t output_errors, output_reopens, output_retry_ns;
};

static void read_stats(struct tracer *t, uint64_t out[FH_STAT_MAX])
{
	int ncpus = libbpf_num_possible_cpus();
	int fd = bpf_map__fd(t->skel->maps.stats);
	uint64_t *vals;

	memset(out, 0, sizeof(uint64_t) * FH_STAT_MAX);
	if (ncpus <= 0)
		return;
	vals = calloc((size_t)ncpus, sizeof(*vals));
	if (!vals)
		return;
	for (__u32 k = 0; k < FH_STAT_MAX; k++) {
		if (bpf_map_lookup_elem(fd, &k, vals))
			continue;
		for (int c = 0; c < ncpus; c++)
			out[k] += vals[c];
	}
	free(vals);
}

/* ---- set-up -------------------------------------------------------------- */

/* --kill-deadlocked may have to signal another user's child. */
static uint64_t caps_to_kill(const struct fh_config *cfg)
{
	return cfg->gate.kill_deadlocked ? FH_CAPBIT(FH_CAP_KILL) : 0;
}

static int preflight(const struct fh_config *cfg)
{
	uint64_t needed = caps_needed_at_start(cfg->user != NULL) | caps_to_kill(cfg);
	int missing = caps_check(needed);

	if (missing) {
		char need[256];

		caps_format(needed, need, sizeof(need));
		log_error("missing %s: run as root, or with %s", caps_name(missing), need);
		return -EPERM;
	}
	if (access("/sys/kernel/btf/vmlinux", R_OK) != 0) {
		log_error("no kernel BTF at /sys/kernel/btf/vmlinux: the kernel needs CONFIG_DEBUG_INFO_BTF=y");
		return -ENOENT;
	}
	for (int i = 0; i < cfg->npids; i++) {
		struct fh_proc_status status;
		pid_t pid = cfg->pids[i];

		if (!procfs_pid_exists(pid)) {
			log_error("no such process: %d", (int)pid);
			return -ESRCH;
		}
		if (procfs_is_kernel_thread(pid)) {
			log_error("PID %d is a kernel thread: it never forks user memory", (int)pid);
			return -EINVAL;
		}
		if (procfs_read_status(pid, 0, &status) == 0 && status.tgid != pid) {
			log_error("%d is a thread of process %d: use -p %d", (int)pid,
				  (int)status.tgid, (int)status.tgid);
			return -EINVAL;
		}
	}
	return 0;
}

/* -o FILE: a user's, truncated; the service's, appended to (outfile.h). */
static int open_output(struct tracer *t)
{
	if (!t->cfg->output) {
		t->outf = stdout;
		return 0;
	}
	t->outf = outfile_open(t->cfg->output, t->cfg->svc.daemon ? OUTFILE_SERVICE : OUTFILE_USER);
	return t->outf ? 0 : -EPERM;
}

/*
 * Can the programs load here? The verifier would only say "Invalid argument":
 * without bpf_iter_task_new (Linux 6.7), which walks a parent's threads for
 * the fork snapshot and a deadlock's owner, nothing loads.
 */
static int check_kernel(void)
{
	struct btf *vmlinux = btf__load_vmlinux_btf();
	int err = 0;

	if (!vmlinux) {
		log_error("cannot read the kernel's BTF (/sys/kernel/btf/vmlinux): %s",
			  strerror(errno));
		return -ENOENT;
	}
	if (btf__find_by_name_kind(vmlinux, "bpf_iter_task_new", BTF_KIND_FUNC) < 0) {
		log_error("this kernel has no bpf_iter_task_new: Linux 6.7 or later is needed");
		err = -ENOTSUP;
	}
	btf__free(vmlinux);
	return err;
}

/* Are lock probes placed at all? */
static bool tracks_locks(enum fh_trace_mode mode)
{
	switch (mode) {
	case FH_TRACE_LIGHT:
	case FH_TRACE_TARGETS_LIGHT:
		return false;
	default:
		return true;
	}
}

/* What the kernel side is told of the trace mode: whom it traces, whether it
 * tracks locks, and when it asks for lock probes. */
static void set_trace_mode(struct forkhazard_bpf *skel, enum fh_trace_mode mode)
{
	bool targets = false, global = false;
	enum fh_request_mode request = FH_REQ_NONE;

	switch (mode) {
	case FH_TRACE_ADAPTIVE:
		request = FH_REQ_MT_FORK;
		break;
	case FH_TRACE_ALL:
		request = FH_REQ_NEW_MT_EXE;
		global = true;
		break;
	case FH_TRACE_LIGHT:
		break;
	case FH_TRACE_TARGETS:
		targets = true;
		request = FH_REQ_TRACED_THREADS;
		break;
	case FH_TRACE_TARGETS_LIGHT:
		targets = true;
		break;
	}
	skel->rodata->filter_pids = targets;
	skel->rodata->track_locks = tracks_locks(mode);
	skel->rodata->request_mode = request;
	skel->rodata->global_lock_probes = global;
}

/* How much each program cost the verifier (-vv): what start-up spends, and
 * how far each is from the kernel's limit of a million instructions. */
static void log_verifier_work(struct bpf_object *obj)
{
	struct bpf_program *p;

	bpf_object__for_each_program(p, obj) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (!bpf_program__autoload(p) || bpf_program__fd(p) < 0 ||
		    bpf_obj_get_info_by_fd(bpf_program__fd(p), &info, &len))
			continue;
		log_debug("BPF program %s: %u instructions verified", bpf_program__name(p),
			  info.verified_insns);
	}
}

/* Where the host's glibc (ours) keeps a thread's start routine: what the
 * kernel side reads at a fork, for processes gone before userspace can. */
static __u32 host_start_routine_offset(void)
{
	struct libc_thread lt;

	return !libcthread_of_process(getpid(), &lt) && lt.start_routine_offset > 0 ?
	       (__u32)lt.start_routine_offset : 0;
}

static int load_bpf(struct tracer *t)
{
	const struct fh_config *cfg = t->cfg;
	struct forkhazard_bpf *skel;
	int err;

	skel = forkhazard_bpf__open();
	if (!skel) {
		log_error("cannot open the BPF object: %s", strerror(errno));
		return -EINVAL;	/* never 0, whatever errno says: the caller would go on */
	}
	t->skel = skel;
	err = check_kernel();
	if (err)
		return err;
	set_trace_mode(skel, cfg->trace_mode);
	skel->rodata->lock_stack = (__u32)cfg->lock_stack;
	skel->rodata->self_tgid = (__u32)getpid();
	skel->rodata->start_routine_off = host_start_routine_offset();
	for (int i = 0; i < cfg->ncomms; i++)
		strncpy((char *)skel->rodata->comm_filter[i], cfg->comms[i], FH_COMM_LEN - 1);
	skel->rodata->nr_comm_filters = (__u32)cfg->ncomms;
	/* the word watch: what the governor falls back to (governor.h) */
	skel->rodata->learn_words = tracks_locks(cfg->trace_mode) && governor_budget(cfg) > 0;
	if ((cfg->ring_buffer_kb &&
	     bpf_map__set_max_entries(skel->maps.events, (__u32)cfg->ring_buffer_kb * 1024)) ||
	    (cfg->max_children &&
	     bpf_map__set_max_entries(skel->maps.children, (__u32)cfg->max_children)) ||
	    (cfg->max_traced && bpf_map__set_max_entries(skel->maps.procs, (__u32)cfg->max_traced)) ||
	    bpf_map__set_max_entries(skel->maps.lock_hits, (__u32)cfg->max_procs + 1) ||
	    bpf_map__set_max_entries(skel->maps.watch, (__u32)cfg->max_procs)) {
		log_error("cannot size the BPF maps: %s", strerror(errno));
		return -EINVAL;
	}

	{
		struct bpf_program *lock_progs[] = {
			skel->progs.lock_acquire, skel->progs.lock_acquired, skel->progs.lock_release,
			skel->progs.py_fork_reinit,
		};

		for (size_t i = 0; i < sizeof(lock_progs) / sizeof(lock_progs[0]); i++) {
			if (!tracks_locks(cfg->trace_mode))
				bpf_program__set_autoload(lock_progs[i], false);
			else
				bpf_program__set_expected_attach_type(lock_progs[i],
								      FH_BPF_TRACE_UPROBE_MULTI);
		}
	}
	if (tracks_locks(cfg->trace_mode) && governor_budget(cfg) > 0)
		calibrate_prepare(skel);	/* the governor measures a trap with it */
	err = forkhazard_bpf__load(skel);
	if (err) {
		log_error("cannot load the BPF programs: %s (-vv shows the verifier's log)",
			  strerror(-err));
		return err;
	}
	log_verifier_work(skel->obj);
	err = forkhazard_bpf__attach(skel);
	if (err) {
		log_error("cannot attach the tracepoint programs: %s", strerror(-err));
		return err;
	}
	return 0;
}

/* Its interpreter's lock re-creation, probed for every process that maps it
 * (governor_opts.placed: after the lock probes, which race the process). */
static void probe_reinit(void *ctx, pid_t pid)
{
	struct tracer *t = ctx;
	int n = t->reinit ? reinitprobe_process(t->reinit, pid) : 0;

	if (n < 0 && n != -ENOENT && n != -ESRCH)
		log_debug("cannot look for an interpreter in PID %d: %s", (int)pid, strerror(-n));
}

static void on_probe_request(void *ctx, pid_t pid)
{
	struct tracer *t = ctx;

	governor_probe_request(t->gov, pid);
}

/* --lock-fn BINARY:ACQUIRE:RELEASE[:TRY], checked now rather than when a
 * process maps BINARY: an ELF file that defines both functions. */
static int check_lock_fn(const char *spec, const char **why)
{
	char buf[512], *acq, *rel, *end;
	struct elf_func fns[2];
	int fd, err;

	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
		return -EINVAL;
	acq = strchr(buf, ':');
	rel = acq ? strchr(acq + 1, ':') : NULL;
	if (!rel)
		return -EINVAL;
	*acq++ = '\0';
	*rel++ = '\0';
	end = strchr(rel, ':');
	if (end)
		*end = '\0';
	fd = open(buf, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	memset(fns, 0, sizeof(fns));
	fns[0].name = acq;
	fns[1].name = rel;
	err = elf_find_funcs(fd, fns, 2);
	close(fd);
	if (err) {
		*why = "BINARY is not an ELF file with a symbol table";
		return err;
	}
	if (!fns[0].n || !fns[1].n) {
		*why = !fns[0].n ? "BINARY defines no function ACQUIRE" :
				   "BINARY defines no function RELEASE";
		return -ENOENT;
	}
	return 0;
}

/* The lock probes' owner, with the --lock-fn functions checked. */
static int new_probes(struct tracer *t)
{
	const struct fh_config *cfg = t->cfg;
	struct probes_opts po = {
		.acquire_fd = bpf_program__fd(t->skel->progs.lock_acquire),
		.acquired_fd = bpf_program__fd(t->skel->progs.lock_acquired),
		.release_fd = bpf_program__fd(t->skel->progs.lock_release),
		.hits_fd = bpf_map__fd(t->skel->maps.lock_hits),
		.max_procs = cfg->max_procs,
		.at_entry = cfg->probe_at_entry,
	};
	int n;

	t->probes = probes_new(&po);
	if (!t->probes)
		return -ENOMEM;
	for (int i = 0; i < cfg->nlock_fns; i++) {
		char spec[256];
		const char *why = NULL;

		n = probes_add_lock_fn(t->probes, cfg->lock_fns[i]);
		if (!n)
			n = check_lock_fn(cfg->lock_fns[i], &why);
		if (n) {
			term_escape(cfg->lock_fns[i], (size_t)-1, spec, sizeof(spec));
			log_error("--lock-fn %s: %s", spec, why ? why :
				  n == -EINVAL ? "expected BINARY:ACQUIRE:RELEASE[:TRY] with "
						 "BINARY a regular file" : strerror(-n));
			return n;
		}
	}
	return 0;
}

/* A downgrade, a re-arm or a restore: the daemon logs and writes it, other
 * modes print it. */
static void on_governor_event(void *ctx, const struct gov_event *ev)
{
	struct tracer *t = ctx;

	if (t->daemon)
		daemon_governor(t->daemon, ev);
	else
		output_governor(t->out, ev);
}

/*
 * What one lock probe hit costs here, for the governor: measured (~20 ms of
 * CPU time) with the skeleton's calibration program, which calibrate_prepare()
 * loaded with the others. CALIB_DEFAULT_EMULATED_NS when it cannot be.
 */
static double calibrate_trap(struct tracer *t)
{
	struct calib *c = NULL;
	double ns;
	int err = calib_open(t->skel, CALIB_BIT(CALIB_EMULATED), &c);

	ns = calibrate_emulated_hit_ns(err ? NULL : c, &err);
	calib_close(c);
	if (err)
		log_info("cannot measure what a uprobe hit costs (%s): the governor assumes %.0f ns",
			 strerror(-err), ns);
	else
		log_debug("a uprobe hit costs %.0f ns here", ns);
	return ns;
}

/* The lock probes' owner (probes.c, built here) and their policy (governor.c). */
static int attach_targets(struct tracer *t)
{
	struct forkhazard_bpf *skel = t->skel;
	struct governor_opts go = {
		.cfg = t->cfg, .procs_fd = bpf_map__fd(skel->maps.procs),
		.learned_fd = bpf_map__fd(skel->maps.learned), .watch_fd = bpf_map__fd(skel->maps.watch),
		.trap_ns = CALIB_DEFAULT_EMULATED_NS,
		.prog_fds = { bpf_program__fd(skel->progs.lock_acquire),
			      bpf_program__fd(skel->progs.lock_acquired),
			      bpf_program__fd(skel->progs.lock_release) },
		.nprogs = 3,
		.report = on_governor_event, .report_ctx = t, .placed = probe_reinit,
	};
	int n;

	if (tracks_locks(t->cfg->trace_mode) && (n = new_probes(t)))
		return n;
	if (tracks_locks(t->cfg->trace_mode)) {
		t->reinit = reinitprobe_new(bpf_program__fd(t->skel->progs.py_fork_reinit));
		if (!t->reinit)
			return -ENOMEM;
	}
	go.probes = t->probes;
	go.py = t->py;
	if (t->probes && governor_budget(t->cfg) > 0)
		go.trap_ns = calibrate_trap(t);
	t->gov = governor_new(&go);
	if (!t->gov) {
		log_error("out of memory");
		return -ENOMEM;
	}
	return governor_start(t->gov, t->has_cmd ? t->cmd.pid : 0);
}

/* ---- signals ------------------------------------------------------------- */

static sigset_t mask_before_hold;

/* What the event loop reads from its signalfd: the stops (SIGINT, SIGTERM)
 * and SIGHUP (reopen the outputs). */
static void loop_signals(sigset_t *set)
{
	sigemptyset(set);
	sigaddset(set, SIGINT);
	sigaddset(set, SIGTERM);
	sigaddset(set, SIGHUP);
}

void tracer_hold_signals(void)
{
	sigset_t set;

	loop_signals(&set);
	/* A signal ignored when we were started (a background job of a
	 * script) would never reach the signalfd: take them back first. */
	signal(SIGINT, SIG_DFL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	sigprocmask(SIG_BLOCK, &set, &mask_before_hold);
	signal(SIGPIPE, SIG_IGN);	/* a closed output is a write error, seen in the loop */
}

void tracer_release_signals(void)
{
	signal(SIGPIPE, SIG_DFL);
	sigprocmask(SIG_SETMASK, &mask_before_hold, NULL);
}

static int epoll_add(int epfd, int fd)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.fd = fd };

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev);
}

static int setup_loop(struct tracer *t)
{
	struct itimerspec its = {
		.it_interval = { .tv_nsec = TICK_MS * 1000000L },
		.it_value = { .tv_nsec = TICK_MS * 1000000L },
	};
	sigset_t mask;

	/* held since main() began: one that came meanwhile is read at once */
	loop_signals(&mask);
	t->sigfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	t->timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	t->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (t->sigfd < 0 || t->timerfd < 0 || t->epfd < 0)
		return -errno;
	if (timerfd_settime(t->timerfd, 0, &its, NULL))
		return -errno;
	if (epoll_add(t->epfd, t->sigfd) || epoll_add(t->epfd, t->timerfd) ||
	    epoll_add(t->epfd, ring_buffer__epoll_fd(t->rb)))
		return -errno;
	if (t->has_cmd && epoll_add(t->epfd, t->cmd.pidfd))
		return -errno;
	if (t->daemon && daemon_fd(t->daemon) >= 0 && epoll_add(t->epfd, daemon_fd(t->daemon)))
		return -errno;
	return 0;
}

/* ---- the loop ---------------------------------------------------------- */

static void report_lost(struct tracer *t, uint64_t lost, uint64_t now)
{
	if (lost > t->lost_reported) {
		output_lost(t->out, lost - t->lost_reported, now);
		t->lost_reported = lost;
	}
}

/* A stack map entry is never freed by the kernel: when collisions start to
 * cost stacks, start a new generation rather than let every stack be lost. */
static void maintain_stacks(struct tracer *t, const uint64_t stats[FH_STAT_MAX])
{
	int fd = bpf_map__fd(t->skel->maps.stacks);
	__u32 key, next;

	if (stats[FH_STAT_STACKS_LOST] - t->stacks_lost_at_reset < STACK_MAP_RESET_LOSSES)
		return;
	t->stacks_lost_at_reset = stats[FH_STAT_STACKS_LOST];
	t->skel->bss->stack_gen++;
	while (bpf_map_get_next_key(fd, NULL, &next) == 0) {
		key = next;
		if (bpf_map_delete_elem(fd, &key))
			break;
	}
	log_info("stack map full: emptied it (generation %u)", t->skel->bss->stack_gen);
}

/* A bounded table is full: say so once, as it happens; the summary counts. */
static void warn_full(struct tracer *t, const uint64_t stats[FH_STAT_MAX])
{
	static const struct {
		int stat;
		const char *what;
	} tables[] = {
		{ FH_STAT_CHILDREN_FULL, "the children table is full: some forked children are not "
					 "followed (raise --max-children)" },
		{ FH_STAT_PROCS_FULL, "the process table is full: some processes are not traced "
				      "(raise --max-traced)" },
		{ FH_STAT_HELD_FULL, "a thread holds more locks than can be tracked (16): its "
				     "oldest are forgotten" },
	};

	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		uint32_t bit = 1u << tables[i].stat;

		if (stats[tables[i].stat] && !(t->full_warned & bit)) {
			t->full_warned |= bit;
			log_warn("%s; counted in the summary", tables[i].what);
		}
	}
}

static void tick(struct tracer *t)
{
	uint64_t stats[FH_STAT_MAX], now = clock_mono_ns();

	correlate_tick(t->corr, now);
	if (t->py)
		pyframes_tick(t->py, now);
	read_stats(t, stats);
	report_lost(t, stats[FH_STAT_LOST], now);
	warn_full(t, stats);
	maintain_stacks(t, stats);
	if (t->daemon)
		daemon_tick(t->daemon, now);
	governor_tick(t->gov, now);
	if (t->reinit)
		reinitprobe_recheck(t->reinit, now);
	if (t->deadline_ns && now >= t->deadline_ns)
		t->stop = true;
}

static void handle_signal(struct tracer *t)
{
	struct signalfd_siginfo si;

	while (read(t->sigfd, &si, sizeof(si)) == sizeof(si)) {
		if (si.ssi_signo == SIGHUP) {
			t->reopen = true;	/* logrotate moved the files away */
			continue;
		}
		t->stop = true;
		t->stop_signal = (int)si.ssi_signo;
	}
}

/* SIGHUP: what was written went, in whole lines, to the old files; what
 * follows goes to new ones. */
static void reopen_outputs(struct tracer *t)
{
	FILE *f;

	t->reopen = false;
	log_reopen_file(t->cfg->svc.log_file);
	if (!t->daemon || !t->cfg->output)
		return;
	output_flush(t->out);
	f = outfile_open(t->cfg->output, OUTFILE_SERVICE);
	if (!f)
		return;	/* reported; the old file goes on */
	fclose(t->outf);
	t->outf = f;
	output_set_file(t->out, f);
	t->output_reopens++;
}

/* A service survives a full disk or a removed file: it says so, counts, and
 * tries again every 5 s (reopening the file), losing only what it could not
 * write meanwhile. */
static void output_failure(struct tracer *t)
{
	uint64_t now = clock_mono_ns();
	FILE *f;

	if (now < t->output_retry_ns)
		return;
	t->output_errors++;
	t->output_retry_ns = now + 5000000000ull;
	log_error("cannot write the output: %s (retrying)", strerror(errno));
	if (!t->cfg->output) {
		clearerr(stdout);
		output_set_file(t->out, stdout);
	} else if ((f = outfile_open(t->cfg->output, OUTFILE_SERVICE))) {
		fclose(t->outf);
		t->outf = f;
		output_set_file(t->out, f);
	}
}

static int run_loop(struct tracer *t)
{
	struct epoll_event evs[8];
	uint64_t expirations;

	while (!t->stop) {
		/* a program starting that may be a Python: looked at every few ms */
		bool polling = pyframes_polling(t->py);
		int n = epoll_wait(t->epfd, evs, 8, polling ? PY_POLL_MS : TICK_MS);
		bool events_ready = false;

		if (n < 0 && errno != EINTR)
			return -errno;
		if (polling)
			pyframes_tick(t->py, clock_mono_ns());
		for (int i = 0; i < n; i++) {
			int fd = evs[i].data.fd;

			if (fd == t->sigfd) {
				handle_signal(t);
			} else if (fd == t->timerfd) {
				if (read(t->timerfd, &expirations, sizeof(expirations)) > 0)
					tick(t);
			} else if (t->has_cmd && fd == t->cmd.pidfd) {
				if (command_reap(&t->cmd))
					t->stop = true;
			} else if (t->daemon && fd == daemon_fd(t->daemon)) {
				daemon_handle_fd(t->daemon);
			} else {
				events_ready = true;
			}
		}
		/* After the other descriptors: a stop signal in the same turn
		 * goes straight to the bounded drain at exit. What is left past
		 * 200 ms is read at the next turn. */
		if (events_ready && !t->stop_signal) {
			t->events.until_ns = clock_mono_ns() + 200000000ull;
			ring_buffer__consume(t->rb);
		}
		output_flush(t->out);
		if (t->reopen)
			reopen_outputs(t);
		if (output_failed(t->out) && t->daemon) {
			output_failure(t);
		} else if (output_failed(t->out)) {
			log_error("cannot write the output: %s", strerror(errno));
			return -EIO;
		}
	}
	return 0;
}

/* How long the drain at exit may take: 3 s. FORKHAZARD_TEST_DRAIN_MS is for
 * the tests only, which shorten it to find what is left after it. */
static uint64_t drain_ns(void)
{
	const char *ms = getenv("FORKHAZARD_TEST_DRAIN_MS");
	char *end;
	long v;

	if (ms && *ms) {
		errno = 0;
		v = strtol(ms, &end, 10);
		if (!errno && !*end && v >= 0 && v <= 3000)
			return (uint64_t)v * 1000000ull;
	}
	return 3000000000ull;
}

/* Every counter of the summary and the metrics (counters.h), now: the
 * kernel's, and userspace's own. */
static void collect_counts(struct tracer *t, struct fh_counts *c)
{
	uint64_t stats[FH_STAT_MAX];
	struct probes_stats ps = { 0 };
	struct ustacks_stats us = { 0 };
	struct syms_stats ss = { 0 };

	read_stats(t, stats);
	for (int i = 0; i < FH_CNT_MAX; i++)
		c->v[i] = fh_counters[i].stat >= 0 ? stats[fh_counters[i].stat] : 0;
	/* the lost ones (counted in the kernel), plus those judged by
	 * src/hazard.h as they came, plus the candidates never read */
	c->v[FH_CNT_HAZARDS] += t->events.hazards + t->events.unread_hazards;
	/* what the drain at exit left unread, counted as lost */
	c->v[FH_CNT_LOST] += t->events.unread;
	c->v[FH_CNT_LOST_FORKS] += t->events.unread_forks;
	c->v[FH_CNT_CORRELATION_EVICTED] = correlate_evicted(t->corr);
	/* what userspace settled that the kernel could not */
	c->v[FH_CNT_DEADLOCKS] += t->events.deadlocks_confirmed;
	c->v[FH_CNT_MITIGATED] = correlate_mitigated(t->corr);
	if (t->ustacks)
		ustacks_get_stats(t->ustacks, &us);
	c->v[FH_CNT_UNWINDS_SKIPPED] = us.rate_limited;
	if (t->syms)
		syms_get_stats(t->syms, &ss);
	c->v[FH_CNT_UNSYMBOLIZED_FORKS] = ss.forks_gone;
	if (t->probes)
		probes_get_stats(t->probes, &ps);
	c->v[FH_CNT_UNPROBED_PROCS] = (uint64_t)ps.procs_refused;
	c->v[FH_CNT_SUPPRESSED_BY_RULE] = t->findings ? findings_suppressed(t->findings) : 0;
}

static void finish(struct tracer *t)
{
	struct fh_counts c;
	uint64_t now;

	/* Drain, but for 3 s at most: under a flood it would never end. What
	 * is left then is counted (cheap) and reported lost, never dropped
	 * silently. */
	t->events.until_ns = clock_mono_ns() + drain_ns();
	ring_buffer__consume(t->rb);
	t->events.count_only = true;
	ring_buffer__consume(t->rb);
	now = clock_mono_ns();
	correlate_finish(t->corr, now);
	collect_counts(t, &c);
	if (t->events.unread)
		log_warn("%llu events still in the ring buffer after the drain at exit (%llu ms): "
			 "reported as lost", (unsigned long long)t->events.unread,
			 (unsigned long long)(drain_ns() / 1000000));
	report_lost(t, c.v[FH_CNT_LOST], now);
	if (t->daemon)
		daemon_finish(t->daemon, now);
	output_summary(t->out, now, &c);
	t->final = c;
	output_flush(t->out);
	if (t->events.malformed)
		log_warn("%llu malformed records from the kernel side (a bug: please report)",
			 (unsigned long long)t->events.malformed);
}

static void cleanup(struct tracer *t)
{
	ring_buffer__free(t->rb);
	governor_free(t->gov);
	probes_free(t->probes);	/* closing the links removes the uprobes */
	reinitprobe_free(t->reinit);
	otherthreads_free(t->others);
	forkhazard_bpf__destroy(t->skel);
	correlate_free(t->corr);
	output_free(t->out);
	events_free(&t->events);
	pyframes_free(t->py);
	ustacks_free(t->ustacks);
	syms_free(t->syms);
	if (t->epfd > 0)
		close(t->epfd);
	if (t->sigfd > 0)
		close(t->sigfd);
	if (t->timerfd > 0)
		close(t->timerfd);
	if (t->outf && t->outf != stdout)
		fclose(t->outf);
	daemon_free(t->daemon);
	findings_free(t->findings);
	gate_free(t->gate);
	supp_free(t->supp);
	if (t->sarif)
		fclose(t->sarif);
	containers_free(t->containers);
	log_close_file();
}

static void raise_fd_limit(void)
{
	struct rlimit rl;

	/* Two link fds per probed process and library. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* Entries of a hash map (its keys are at most 8 bytes; the buffer is generous). */
static uint64_t map_entries(const struct bpf_map *map)
{
	uint8_t key[64], next[64];
	uint32_t max = bpf_map__max_entries(map);
	int fd = bpf_map__fd(map);
	uint64_t n = 0;
	void *prev = NULL;

	while (n <= max && !bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		n++;
	}
	return n;
}

/* The daemon's metrics read the tracer's part here: the counters, its health
 * and the fill of the kernel's tables. */
static void tracer_health(void *ctx, struct exposition *e)
{
	struct tracer *t = ctx;
	const struct bpf_map *maps[] = {
		t->skel->maps.procs, t->skel->maps.children, t->skel->maps.seen_exes,
		t->skel->maps.stacks,
	};

	collect_counts(t, &e->counts);
	e->corr_pending = correlate_pending(t->corr);
	if (t->gov) {
		struct governor_stats gs;

		governor_get_stats(t->gov, &gs);
		e->governor_downgrades = gs.downgrades;
		e->governor_rearms = gs.rearms;
		e->governed = gs.governed;
	}
	e->output_errors = t->output_errors;
	e->output_reopens = t->output_reopens;
	for (size_t i = 0; i < sizeof(maps) / sizeof(maps[0]) && i < EXPOSITION_MAX_MAPS; i++)
		e->maps[e->nmaps++] = (struct exposition_map){
			bpf_map__name(maps[i]), map_entries(maps[i]), bpf_map__max_entries(maps[i]),
		};
}

/* --suppressions: every file read before anything else, so that a
 * malformed rule is a usage error (2) with its file and line. */
static int load_rules(struct tracer *t)
{
	const struct fh_gate_config *g = &t->cfg->gate;
	char err[768];

	if (!g->nsuppressions)
		return FH_EXIT_OK;
	t->supp = supp_new();
	if (!t->supp) {
		log_error("out of memory");
		return FH_EXIT_ERROR;
	}
	for (int i = 0; i < g->nsuppressions; i++) {
		if (supp_load(t->supp, g->suppressions[i], err, sizeof(err))) {
			log_error("%s", err);
			return FH_EXIT_USAGE;
		}
	}
	log_info("%zu suppression rule%s", supp_count(t->supp), supp_count(t->supp) == 1 ? "" : "s");
	return FH_EXIT_OK;
}

/* --sarif FILE: opened (as -o is) before tracing, written at the end. */
static int open_sarif(struct tracer *t)
{
	if (!t->cfg->gate.sarif)
		return 0;
	t->sarif = outfile_open(t->cfg->gate.sarif, OUTFILE_USER);
	return t->sarif ? 0 : -EPERM;
}

/* The run's end as a gate: the rules -v prints, the SARIF file, the status. */
static int end_gate(struct tracer *t, int status)
{
	const struct fh_config *cfg = t->cfg;

	if (cfg->verbose)
		gate_print_rules(t->gate, stderr);
	if (t->sarif && sarif_write(t->sarif, t->gate, cfg->gate.sarif_root)) {
		log_error("cannot write the SARIF file %s: %s", cfg->gate.sarif, strerror(errno));
		return FH_EXIT_ERROR;
	}
	return gate_exit_status(t->gate, status, t->has_cmd && status != FH_EXIT_OK,
				t->final.v[FH_CNT_LOST_FORKS]);
}

/* corr_opts.examine: the child's copies of the locks the kernel watches for
 * it (its `children` entry), read while it lives. */
static void examine_child(void *ctx, const struct fh_fork_event *ev, struct reinit_set *ri)
{
	struct tracer *t = ctx;
	__u32 key = ev->child_pid;
	struct fh_child c;

	if (!bpf_map_lookup_elem(bpf_map__fd(t->skel->maps.children), &key, &c) && c.nr_watch &&
	    c.fork_ns == ev->time_ns)
		reinit_read_words((pid_t)ev->child_pid, c.watch, c.nr_watch, ri);
}

/* events.reinit_observed */
static bool reinit_observed(void *ctx, pid_t pid)
{
	struct tracer *t = ctx;

	return t->reinit && reinitprobe_covers(t->reinit, pid);
}

/* events.child_decided: a deadlock confirmed here is the child's fate. */
static void child_decided(void *ctx, pid_t child)
{
	struct tracer *t = ctx;
	int fd = bpf_map__fd(t->skel->maps.children);
	__u32 key = (__u32)child;
	struct fh_child c;

	if (bpf_map_lookup_elem(fd, &key, &c))
		return;
	c.flags |= FH_CHILD_DECIDED;
	bpf_map_update_elem(fd, &key, &c, BPF_EXIST);
}

int tracer_run(const struct fh_config *cfg)
{
	struct tracer t = { .cfg = cfg, .epfd = -1, .sigfd = -1, .timerfd = -1 };
	struct output_opts oo;
	struct corr_opts co;
	int err, status = FH_EXIT_ERROR;

	libbpf_set_print(log_libbpf);
	if (cfg->svc.daemon && log_open_file(cfg->svc.log_file))
		return FH_EXIT_ERROR;
	if ((status = load_rules(&t)) != FH_EXIT_OK) {
		supp_free(t.supp);
		return status;
	}
	status = FH_EXIT_ERROR;
	err = preflight(cfg);
	if (err || open_output(&t) || open_sarif(&t)) {
		cleanup(&t);
		return FH_EXIT_ERROR;
	}
	raise_fd_limit();
	if (cfg->command) {
		struct command_user user;
		char name[256];

		if (cfg->user && (err = command_resolve_user(cfg->user, &user))) {
			term_escape(cfg->user, (size_t)-1, name, sizeof(name));
			log_error("-u %s: %s", name, err == -ENOENT ? "no such user" : strerror(-err));
			goto out;
		}
		term_escape(cfg->command[0], (size_t)-1, name, sizeof(name));
		err = command_spawn(cfg->command, cfg->user ? &user : NULL, &t.cmd);
		if (err) {
			log_error("cannot start %s: %s", name, strerror(-err));
			goto out;
		}
		t.has_cmd = true;
	}
	if (load_bpf(&t))
		goto out;
	t.syms = syms_new(bpf_map__fd(t.skel->maps.stacks));
	/* 256 events' stacks outlive any hold window; 200 DWARF walks a second
	 * (a few ms each, cold) keep a hazard storm from starving the loop. */
	t.ustacks = t.syms ? ustacks_new(t.syms, 256, 200) : NULL;
	t.py = pyframes_new(&(struct pyframes_opts){
		.layouts_fd = tracks_locks(cfg->trace_mode) ? bpf_map__fd(t.skel->maps.py_layouts) : -1,
		.layouts_gen = &t.skel->data->py_layouts_gen,
	});
	t.others = otherthreads_new(256, pyframes_reader(t.py));
	oo = (struct output_opts){
		.f = t.outf, .json = cfg->json, .verbose = cfg->verbose,
		.stack_depth = cfg->stack_depth, .syms = t.syms, .ustacks = t.ustacks,
		.py = t.py, .others = t.others, .mono_to_real_ns = clock_mono_to_real_ns(),
	};
	t.out = output_new(&oo);
	t.containers = containers_new();
	if (!cfg->svc.daemon)
		t.gate = gate_new(&cfg->gate);
	{
		struct findings_opts fo = {
			.syms = t.syms, .ustacks = t.ustacks, .py = t.py, .supp = t.supp,
			.gate = t.gate,
			/* JSON events say where they run (events.c); the daemon's filters
			 * and reports need it at once */
			.containers = cfg->svc.daemon ? t.containers : NULL,
		};

		t.findings = findings_new(&fo);
	}
	if (cfg->svc.daemon && t.findings && t.out) {
		struct daemon_opts dopts = {
			.cfg = cfg, .out = t.out, .findings = t.findings,
			.mono_to_real_ns = oo.mono_to_real_ns,
			.health = tracer_health, .health_ctx = &t,
		};

		t.daemon = daemon_new(&dopts);
		if (!t.daemon)
			goto out;
	}
	co = (struct corr_opts){
		.hold_ns = cfg->json ? 0 : (uint64_t)cfg->hold_ms * 1000000ull,
		.max_pending = 4096, .max_bytes = 16u << 20,
		.examine = examine_child, .examine_ctx = &t,
	};
	t.events.ctx = &t;
	t.events.probe_request = on_probe_request;
	t.events.child_decided = child_decided;
	t.events.reinit_observed = reinit_observed;
	t.events.others = t.others;
	if (t.daemon) {
		t.events.accept = daemon_accept;
		t.events.accept_ctx = t.daemon;
	}
	t.corr = t.daemon ? correlate_new(&co, &daemon_sink, t.daemon) :
			    correlate_new(&co, &events_sink, &t.events);
	t.events.corr = t.corr;
	t.events.ustacks = t.ustacks;
	t.events.out = t.out;
	t.events.py = t.py;
	t.events.findings = t.findings;
	if (cfg->gate.kill_deadlocked)
		t.events.gate = t.gate;
	if (cfg->json)	/* JSON events say where their processes run */
		t.events.containers = t.containers;
	if (!t.syms || !t.ustacks || !t.containers || !t.out || !t.corr || !t.findings || !t.py ||
	    !t.others || (!cfg->svc.daemon && !t.gate)) {
		log_error("out of memory");
		goto out;
	}
	t.rb = ring_buffer__new(bpf_map__fd(t.skel->maps.events), events_handle, &t.events, NULL);
	if (!t.rb) {
		log_error("cannot open the ring buffer: %s", strerror(errno));
		goto out;
	}
	if (attach_targets(&t))
		goto out;
	if ((err = setup_loop(&t))) {
		log_error("cannot set up the event loop: %s", strerror(-err));
		goto out;
	}
	/* Loaded and attached: what is left to do needs far less. */
	if ((err = caps_limit(caps_kept_after_attach() | caps_to_kill(cfg)))) {
		log_error("cannot drop capabilities: %s", strerror(-err));
		goto out;
	}
	if (cfg->duration > 0)
		t.deadline_ns = clock_mono_ns() + (uint64_t)(cfg->duration * 1e9);

	if (t.has_cmd) {
		char name[256];

		term_escape(cfg->command[0], (size_t)-1, name, sizeof(name));
		fprintf(stderr, "Tracing %s (PID %d) and its descendants... Hit Ctrl-C to end.\n",
			name, (int)t.cmd.pid);
		/* before it runs: what it runs until its exec is known */
		if (tracks_locks(cfg->trace_mode))
			pyframes_watch_exec(t.py, t.cmd.pid);
		if ((err = command_release(&t.cmd))) {
			log_error("cannot start %s: %s", name, strerror(-err));
			goto out;
		}
	} else if (cfg->npids) {
		fprintf(stderr, "Tracing %d process%s and descendants... Hit Ctrl-C to end.\n",
			cfg->npids, cfg->npids == 1 ? "" : "es");
	} else {
		fprintf(stderr, "Tracing fork hazards system-wide%s... Hit Ctrl-C to end.\n",
			cfg->trace_mode == FH_TRACE_LIGHT ? " (light)" :
			cfg->trace_mode == FH_TRACE_ALL ? " (all locks)" :
			" (adaptive: locks tracked in processes that fork while multithreaded)");
	}
	output_start(t.out);
	output_flush(t.out);

	if (t.daemon)
		daemon_ready(t.daemon);
	err = run_loop(&t);
	finish(&t);
	if (err)
		goto out;
	status = FH_EXIT_OK;
	if (t.has_cmd && command_reap(&t.cmd))
		status = command_exit_status(&t.cmd);
	if (t.gate)
		status = end_gate(&t, status);
out:
	if (t.has_cmd) {
		if (status == FH_EXIT_ERROR && !t.cmd.reaped && t.cmd.go_fd >= 0)
			command_abort(&t.cmd);	/* never released: it would only wait */
		command_close(&t.cmd);
	}
	cleanup(&t);
	return status;
}

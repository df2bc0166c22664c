// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "cli.h"
#include "clock.h"
#include "config.h"
#include "governor.h"
#include "log.h"
#include "probes.h"
#include "procfs.h"
#include "pyframes.h"

#define PF_KTHREAD	0x00200000

/* A process the governor measures. */
struct gov_proc {
	pid_t pid;
	struct gov_state st;
	uint64_t hits0, cpu0_ns;	/* at the window's start */
};

struct governor {
	struct governor_opts o;
	enum fh_trace_mode mode;
	struct gov_params params;	/* budget_pct 0: not governed */
	struct gov_proc *procs;
	int nprocs, max_procs;
	uint64_t ns_per_tick;		/* of /proc's CPU times */
	uint64_t downgrades, rearms;
	uint64_t bpf_checked_ns;	/* when the programs' run time was last read */
};

/* ---- the rule ---------------------------------------------------------------- */

void governor_decide(const struct gov_state *st, const struct gov_reading *r,
		     const struct gov_params *p, struct gov_verdict *v)
{
	uint64_t elapsed = r->now_ns > st->since_ns ? r->now_ns - st->since_ns : 0;
	bool over;

	memset(v, 0, sizeof(*v));
	v->overhead_pct = -1;
	if (st->phase == GOV_DOWNGRADED) {
		v->action = elapsed >= st->backoff_ns ? GOV_REARM : GOV_WAIT;
		return;
	}
	if (elapsed < (st->phase == GOV_ARMED ? GOV_WINDOW_NS : GOV_REARM_WINDOW_NS)) {
		v->action = GOV_WAIT;
		return;
	}
	v->window_ns = elapsed;
	v->cost_ns = (uint64_t)llround((double)r->hits * p->hit_ns);
	if (r->cpu_ns)
		v->overhead_pct = 100.0 * (double)v->cost_ns / (double)r->cpu_ns;
	/* Cheap in absolute terms (a thread taking a lock a hundred times a
	 * second): never over, however little CPU the process uses. Else the
	 * share of its own CPU time, which includes the traps (they are taken
	 * in its context); none measurable and a real cost: over. */
	if ((double)v->cost_ns * 1e9 < (double)GOV_FLOOR_NS_PER_S * (double)elapsed)
		over = false;
	else
		over = (double)v->cost_ns * 100.0 > p->budget_pct * (double)r->cpu_ns;
	if (!over) {
		v->action = st->phase == GOV_REARMED ? GOV_RESTORE : GOV_KEEP;
		return;
	}
	v->action = GOV_DOWNGRADE;
	v->backoff_ns = !st->backoff_ns ? GOV_BACKOFF_MIN_NS :
			st->backoff_ns >= GOV_BACKOFF_MAX_NS / 2 ? GOV_BACKOFF_MAX_NS :
			2 * st->backoff_ns;
}

/* ---- the kernel's view of a process ------------------------------------------- */

/* The procs map entry of pid: its flags (set, cleared) and, when arming,
 * armed_ns. Only if there is one: it may have exited (or exec'd) meanwhile. */
static void update_proc(struct governor *g, pid_t pid, __u32 set, __u32 clear, uint64_t armed_ns)
{
	__u32 key = (__u32)pid;
	struct fh_proc proc;

	if (bpf_map_lookup_elem(g->o.procs_fd, &key, &proc))
		return;
	proc.flags = (proc.flags & ~clear) | set;
	if (armed_ns)
		proc.armed_ns = armed_ns;
	bpf_map_update_elem(g->o.procs_fd, &key, &proc, BPF_EXIST);
}

static void new_proc_entry(struct governor *g, pid_t pid, __u32 flags)
{
	struct fh_proc proc = { .flags = flags };
	__u32 key = (__u32)pid;

	bpf_map_update_elem(g->o.procs_fd, &key, &proc, BPF_ANY);
}

/* Attach pid's lock probes (per process) and tell the kernel it has them.
 * A Python gets its layout first, so that its locks are seen with their
 * Python frames from the first one on; `again`: it may have exec'd since it
 * was last looked at. Returns what probes_attach_process() does. */
static int attach(struct governor *g, pid_t pid, bool again)
{
	/* before the links: every record they make is newer */
	uint64_t armed = clock_mono_ns();
	__u32 key = (__u32)pid;
	struct fh_proc proc;
	int n;

	/* Only the end of a governor's gap makes older records suspect. Any
	 * other attach (a new thread's or an exec's request, the probes on
	 * all along) must not set the mark: locks taken before it would be
	 * dropped as if from a gap. */
	if (bpf_map_lookup_elem(g->o.procs_fd, &key, &proc) || !(proc.flags & FH_PROC_GOVERNED))
		armed = 0;
	if (g->o.py)
		pyframes_watch(g->o.py, pid, again);
	n = probes_attach_process(g->o.probes, pid, true);

	/* Without a lock library its locks are unknown, not "none held". */
	if (n >= 0)
		update_proc(g, pid, FH_PROC_PROBED,
			    FH_PROC_REQUESTED | FH_PROC_EXECED | FH_PROC_GOVERNED, armed);
	else if (n == -ENODATA)
		update_proc(g, pid, FH_PROC_NOLIB,
			    FH_PROC_REQUESTED | FH_PROC_EXECED | FH_PROC_PROBED | FH_PROC_GOVERNED, 0);
	if (n == -ENODATA)
		log_debug("PID %d maps no C library with lock functions: locks not tracked",
			  (int)pid);
	return n;
}

static void placed(struct governor *g, pid_t pid)
{
	if (g->o.placed)
		g->o.placed(g->o.report_ctx, pid);
}

/* ---- the governed processes ----------------------------------------------------- */

static struct gov_proc *find(struct governor *g, pid_t pid)
{
	for (int i = 0; i < g->nprocs; i++)
		if (g->procs[i].pid == pid)
			return &g->procs[i];
	return NULL;
}

static void forget(struct governor *g, struct gov_proc *gp)
{
	*gp = g->procs[--g->nprocs];
}

/* pid's CPU time so far (ns) and its name. Returns 0 or -errno (gone). */
static int read_cpu(struct governor *g, pid_t pid, uint64_t *cpu_ns, char comm[FH_COMM_LEN])
{
	struct fh_proc_stat st;
	int err = procfs_read_stat(pid, 0, &st);

	if (err)
		return err;
	*cpu_ns = (st.utime + st.stime) * g->ns_per_tick;
	if (comm)
		snprintf(comm, FH_COMM_LEN, "%.*s", FH_COMM_LEN - 1, st.comm);
	return 0;
}

/* A window begins now: the counts it is measured from. Returns 0 or -errno. */
static int begin_window(struct governor *g, struct gov_proc *gp, uint64_t now)
{
	int err = probes_hits(g->o.probes, gp->pid, &gp->hits0);

	if (!err)
		err = read_cpu(g, gp->pid, &gp->cpu0_ns, NULL);
	gp->st.since_ns = now;
	return err;
}

/* A process that just got its probes: measured from now, in a first window
 * as long as any (forks soon after arming see its locks). */
static void govern(struct governor *g, pid_t pid)
{
	struct gov_proc *gp = find(g, pid);

	if (!g->params.budget_pct)
		return;
	if (!gp) {
		if (g->nprocs == g->max_procs)
			return;	/* cannot be: probes.c holds as many */
		gp = &g->procs[g->nprocs++];
	}
	/* a request for a process already known: it exec'd (a new program,
	 * a fresh start) or its PID was reused */
	memset(gp, 0, sizeof(*gp));
	gp->pid = pid;
	gp->st.phase = GOV_ARMED;
	if (begin_window(g, gp, clock_mono_ns()))
		forget(g, gp);
}

/* What one hit costs: the calibrated trap, plus the lock programs' mean run
 * time when the kernel counts it (kernel.bpf_stats_enabled; nothing to pay
 * for otherwise). Read at most once a second. */
static void update_hit_cost(struct governor *g, uint64_t now)
{
	uint64_t run_ns = 0, runs = 0;

	if (now - g->bpf_checked_ns < 1000000000ull && g->bpf_checked_ns)
		return;
	g->bpf_checked_ns = now;
	for (int i = 0; i < g->o.nprogs && i < GOV_MAX_PROGS; i++) {
		struct bpf_prog_info info;
		__u32 len = sizeof(info);

		memset(&info, 0, sizeof(info));
		if (g->o.prog_fds[i] < 0 || bpf_obj_get_info_by_fd(g->o.prog_fds[i], &info, &len))
			continue;
		run_ns += info.run_time_ns;
		runs += info.run_cnt;
	}
	g->params.hit_ns = g->o.trap_ns + (runs ? (double)run_ns / (double)runs : 0);
}

static void report(struct governor *g, const struct gov_proc *gp, enum gov_action action,
		   const struct gov_verdict *v, uint64_t hits, uint64_t cpu_ns, const char *comm,
		   uint64_t now)
{
	struct gov_event ev = {
		.action = action, .time_ns = now, .pid = gp->pid,
		.budget_pct = g->params.budget_pct, .hit_ns = g->params.hit_ns,
		.window_ns = v ? v->window_ns : GOV_REARM_WINDOW_NS,
		.hits = hits, .cost_ns = v ? v->cost_ns : 0, .cpu_ns = cpu_ns,
		.overhead_pct = v ? v->overhead_pct : -1, .backoff_ns = v ? v->backoff_ns : 0,
		.downgrades = gp->st.downgrades,
	};

	snprintf(ev.comm, sizeof(ev.comm), "%s", comm);
	if (g->o.report)
		g->o.report(g->o.report_ctx, &ev);
}

/*
 * The word watch of pid: the locks it was seen taking whose word names their
 * holder (the kernel's `learned`), at most FH_WATCH_LOCKS, for its forks to
 * read while its probes are detached. One pass over `learned` (16384 entries
 * at most, a few ms): at a downgrade only.
 */
static void set_watch(struct governor *g, pid_t pid)
{
	struct fh_learned_key key, next;
	struct fh_watch *w = calloc(1, sizeof(*w));
	__u32 tgid = (__u32)pid;
	void *prev = NULL;

	if (!w)
		return;
	while (w->n < FH_WATCH_LOCKS && !bpf_map_get_next_key(g->o.learned_fd, prev, &next)) {
		key = next;
		prev = &key;
		if (key.tgid == tgid &&
		    !bpf_map_lookup_elem(g->o.learned_fd, &key, &w->lock[w->n]))
			w->n++;
	}
	if (w->n)
		bpf_map_update_elem(g->o.watch_fd, &tgid, w, BPF_ANY);
	else
		bpf_map_delete_elem(g->o.watch_fd, &tgid);
	free(w);
}

static void downgrade(struct governor *g, struct gov_proc *gp, const struct gov_verdict *v,
		      uint64_t hits, uint64_t cpu_ns, const char *comm, uint64_t now)
{
	set_watch(g, gp->pid);
	/* the flag first: a fork from now on says why its locks are unseen */
	update_proc(g, gp->pid, FH_PROC_GOVERNED, FH_PROC_PROBED, 0);
	probes_detach_process(g->o.probes, gp->pid);
	gp->st.phase = GOV_DOWNGRADED;
	gp->st.since_ns = now;
	gp->st.backoff_ns = v->backoff_ns;
	gp->st.downgrades++;
	g->downgrades++;
	report(g, gp, GOV_DOWNGRADE, v, hits, cpu_ns, comm, now);
}

/* Returns false when the process is gone (to be forgotten). */
static bool rearm(struct governor *g, struct gov_proc *gp, uint64_t now)
{
	char comm[FH_COMM_LEN] = "";
	uint64_t cpu;
	int n;

	if (read_cpu(g, gp->pid, &cpu, comm))
		return false;
	n = attach(g, gp->pid, false);
	if (n < 0) {
		if (n == -ENOENT)
			return false;
		/* not this time (a link refused, no library any more): wait again */
		log_debug("governor: cannot re-arm PID %d: %s", (int)gp->pid, strerror(-n));
		gp->st.since_ns = now;
		return true;
	}
	gp->st.phase = GOV_REARMED;
	g->rearms++;
	if (begin_window(g, gp, clock_mono_ns()))
		return false;
	report(g, gp, GOV_REARM, NULL, 0, 0, comm, now);
	return true;
}

/* One process whose window or back-off may be over. Returns false when it
 * is gone (to be forgotten). */
static bool step(struct governor *g, struct gov_proc *gp, uint64_t now)
{
	struct gov_reading r = { .now_ns = now };
	char comm[FH_COMM_LEN] = "";
	struct gov_verdict v;
	uint64_t hits = 0, cpu = 0;

	if (gp->st.phase != GOV_DOWNGRADED) {
		uint64_t due = gp->st.phase == GOV_ARMED ? GOV_WINDOW_NS : GOV_REARM_WINDOW_NS;

		if (now - gp->st.since_ns < due)
			return true;	/* not yet: no need to read anything */
		if (probes_hits(g->o.probes, gp->pid, &hits) || read_cpu(g, gp->pid, &cpu, comm))
			return false;
		update_hit_cost(g, now);
		r.hits = hits > gp->hits0 ? hits - gp->hits0 : 0;
		r.cpu_ns = cpu > gp->cpu0_ns ? cpu - gp->cpu0_ns : 0;
	}
	governor_decide(&gp->st, &r, &g->params, &v);
	switch (v.action) {
	case GOV_WAIT:
		break;
	case GOV_KEEP:
		gp->hits0 = hits;
		gp->cpu0_ns = cpu;
		gp->st.since_ns = now;
		break;
	case GOV_RESTORE:
		gp->st.phase = GOV_ARMED;
		report(g, gp, GOV_RESTORE, &v, r.hits, r.cpu_ns, comm, now);
		gp->hits0 = hits;
		gp->cpu0_ns = cpu;
		gp->st.since_ns = now;
		break;
	case GOV_DOWNGRADE:
		downgrade(g, gp, &v, r.hits, r.cpu_ns, comm, now);
		break;
	case GOV_REARM:
		return rearm(g, gp, now);
	}
	return true;
}

static void exited(void *ctx, pid_t pid)
{
	struct governor *g = ctx;
	struct gov_proc *gp = find(g, pid);

	if (gp)
		forget(g, gp);	/* its watch went with it (the kernel, at the exit) */
}

/* Let go of the processes that exited, probes and all: a PID reused since
 * must find neither their probes nor their place in the cycle. */
static void reap_exited(struct governor *g)
{
	probes_reap_exited(g->o.probes, exited, g);
}

void governor_tick(struct governor *g, uint64_t now_ns)
{
	if (!g->o.probes)
		return;
	reap_exited(g);
	for (int i = 0; i < g->nprocs;) {
		if (!step(g, &g->procs[i], now_ns)) {
			forget(g, &g->procs[i]);
			continue;
		}
		i++;
	}
}

/* ---- who gets probes -------------------------------------------------------------- */

double governor_budget(const struct fh_config *cfg)
{
	switch (cfg->trace_mode) {
	case FH_TRACE_ADAPTIVE:
		return cfg->max_overhead;
	case FH_TRACE_TARGETS:
		return cfg->max_overhead_given ? cfg->max_overhead : 0;
	default:
		return 0;	/* no lock probes, or on every process */
	}
}

struct governor *governor_new(const struct governor_opts *o)
{
	struct governor *g = calloc(1, sizeof(*g));
	long tick = sysconf(_SC_CLK_TCK);

	if (!g)
		return NULL;
	g->o = *o;
	g->mode = o->cfg->trace_mode;
	g->params.budget_pct = o->probes ? governor_budget(o->cfg) : 0;
	g->params.hit_ns = o->trap_ns;
	g->ns_per_tick = tick > 0 ? 1000000000ull / (uint64_t)tick : 10000000ull;
	g->max_procs = o->cfg->max_procs;
	if (g->params.budget_pct > 0) {
		g->procs = calloc((size_t)g->max_procs, sizeof(*g->procs));
		if (!g->procs) {
			free(g);
			return NULL;
		}
	}
	return g;
}

void governor_free(struct governor *g)
{
	if (!g)
		return;
	free(g->procs);
	free(g);
}

void governor_probe_request(struct governor *g, pid_t pid)
{
	int n;

	log_debug("probe request for PID %d", (int)pid);
	if (!g->o.probes)
		return;	/* no lock probes in this mode: no request either */
	/* A PID recycled before the tick reaped its previous owner must not
	 * find that process's probes and be taken as probed already. */
	reap_exited(g);

	if (g->mode == FH_TRACE_ALL) {		/* its libraries, for every process */
		if (g->o.py)
			pyframes_watch(g->o.py, pid, true);
		n = probes_attach_process(g->o.probes, pid, false);
		if (n == -ENODATA)
			log_debug("PID %d maps no C library with lock functions", (int)pid);
	} else {				/* for this process only */
		n = attach(g, pid, true);
		if (n >= 0)
			govern(g, pid);
	}
	if (n < 0 && n != -ENODATA && n != -ENOENT && n != -ENOSPC)
		log_warn("cannot probe the locks of PID %d: %s", (int)pid, strerror(-n));
	placed(g, pid);
}

/* Adaptive mode, at start: the processes --comm names get their probes now
 * (those started later get them at exec, from the kernel side). */
static int attach_named(struct governor *g)
{
	const struct fh_config *cfg = g->o.cfg;
	struct dirent *de;
	DIR *d;

	if (!cfg->ncomms)
		return 0;
	d = opendir("/proc");
	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		struct fh_proc_stat st;
		pid_t pid;

		if (cli_parse_pid(de->d_name, &pid) || pid == getpid() ||
		    procfs_read_stat(pid, 0, &st) || (st.flags & PF_KTHREAD))
			continue;
		for (int i = 0; i < cfg->ncomms; i++) {
			if (strcmp(st.comm, cfg->comms[i]))
				continue;
			new_proc_entry(g, pid, FH_PROC_REQUESTED);
			if (attach(g, pid, false) >= 0)
				govern(g, pid);
			placed(g, pid);
			break;
		}
	}
	closedir(d);
	return 0;
}

/* -p PIDs and the COMMAND: traced, and (with lock tracking) probed. */
static int attach_pids(struct governor *g, pid_t command_pid)
{
	const struct fh_config *cfg = g->o.cfg;
	int n;

	for (int i = 0; i < cfg->npids + (command_pid > 0 ? 1 : 0); i++) {
		pid_t pid = i < cfg->npids ? cfg->pids[i] : command_pid;

		new_proc_entry(g, pid, FH_PROC_TRACED);
		if (!g->o.probes)
			continue;
		n = attach(g, pid, false);
		placed(g, pid);
		if (n == -ENOENT) {
			log_error("no such process: %d", (int)pid);
			return n;
		}
		if (n == -ENOTSUP) {
			log_error("this kernel cannot attach uprobe_multi links (Linux 6.6 or later needed)");
			return n;
		}
		if (n == -ENODATA && i < cfg->npids) {
			log_error("PID %d maps no C library with pthread lock functions (libc.so.6 or libpthread.so.0)",
				  (int)pid);
			return n;
		}
		if (n < 0 && n != -ENODATA) {
			log_error("cannot attach lock probes to PID %d: %s", (int)pid, strerror(-n));
			return n;
		}
		/* The COMMAND, held before exec: its static executable or musl
		 * libc gets probes before its first instruction. */
		if (i == cfg->npids && n >= 0)
			probes_attach_program(g->o.probes, pid, cfg->command[0]);
		if (n >= 0)
			govern(g, pid);
	}
	return 0;
}

int governor_start(struct governor *g, pid_t command_pid)
{
	int n;

	switch (g->mode) {
	case FH_TRACE_ADAPTIVE:
		/* this machine's C library analysed now, so that a process's
		 * first multithreaded fork arms its probes in a millisecond */
		probes_prepare(g->o.probes);
		return attach_named(g);
	case FH_TRACE_ALL:
		n = probes_attach_everywhere(g->o.probes);
		if (n == -ENOTSUP) {
			log_error("this kernel cannot attach uprobe_multi links (Linux 6.6 or later needed)");
			return n;
		}
		return n < 0 ? n : 0;
	case FH_TRACE_LIGHT:
		return 0;
	case FH_TRACE_TARGETS:
	case FH_TRACE_TARGETS_LIGHT:
		return attach_pids(g, command_pid);
	}
	return 0;
}

void governor_get_stats(const struct governor *g, struct governor_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->on = g->params.budget_pct > 0;
	st->downgrades = g->downgrades;
	st->rearms = g->rearms;
	for (int i = 0; i < g->nprocs; i++)
		st->governed += g->procs[i].st.phase != GOV_ARMED;
}

// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stddef.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <systemd/sd-daemon.h>
#include "cli.h"
#include "container.h"
#include "correlate.h"
#include "daemon.h"
#include "escape.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "procfs.h"
#include "output.h"
#include "sites.h"
#include "symbolize.h"
#include "ustacks.h"

#define CHILD_MAP	4096	/* children -> their fork's site, direct-mapped */
#define WEAK_MAP	1024	/* (exe, lock sites) -> site, for forks without a CFI stack */
#define LOG_SITES_MAX	20	/* aggregate lines per report in the log */
#define NS		1000000000ull

struct child_site {
	uint32_t pid;
	uint64_t site;
};

struct weak_site {
	uint64_t weak, site;
	bool nocfi;	/* site was made without an unwound stack */
};

struct daemon {
	struct daemon_opts o;
	const struct fh_svc_config *svc;
	struct output *out;
	struct sites *sites;
	struct metrics_http *http;
	struct metrics_addr addr;
	struct fh_frame *frames;		/* FH_STACK_DEPTH of them */
	struct child_site child[CHILD_MAP];
	struct weak_site weak[WEAK_MAP];
	/* the event being written, for daemon_decorate */
	const struct site *cur_site;
	struct fh_container cur_cont;
	bool cur_known;
	/* global rate limit */
	double tokens;
	uint64_t tokens_ns;
	/* counters */
	uint64_t hazards, deadlocks, filtered, filtered_deadlocks, sup_global, sup_site;
	uint64_t reports_fork, reports_deadlock, reports_site;
	uint64_t other_hazards, other_deadlocks;	/* sites without labels */
	/* fates of every multithreaded fork's child the daemon learns, filtered
	 * or not (as the kernel's fork counters), by enum fh_child_outcome */
	uint64_t children[FH_CHILD_ALIVE + 1];
	uint64_t metrics_writes, metrics_write_errors;
	uint64_t next_report_ns, next_metrics_ns, next_watchdog_ns, watchdog_ns;
	double start_time;	/* seconds since the epoch */
	bool metrics_file_warned;
};

/* ---- logging ---------------------------------------------------------------- */

static FILE *log_file;

static int open_log(const char *path, FILE **out)
{
	struct stat st;
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_CLOEXEC, 0640);
	FILE *f;

	if (fd < 0 || fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		int e = fd < 0 ? errno : EINVAL;

		if (fd >= 0)
			close(fd);
		return -e;
	}
	f = fdopen(fd, "a");
	if (!f) {
		int e = errno ? errno : ENOMEM;

		close(fd);
		return -e;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	*out = f;
	return 0;
}

int daemon_open_events(const char *path, FILE **out)
{
	char dir[4096], name[512];
	const char *slash = strrchr(path, '/'), *why = NULL;
	struct stat st;
	int fd, err = 0;

	snprintf(dir, sizeof(dir), "%.*s", slash ? (int)(slash - path) : 1, slash ? path : ".");
	if (!dir[0])
		snprintf(dir, sizeof(dir), "/");
	if (stat(dir, &st) == 0 && st.st_uid != 0 && st.st_uid != geteuid())
		why = "its directory belongs to another user";
	else if (stat(dir, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)) &&
		 !(st.st_mode & S_ISVTX))
		why = "its directory can be changed by another user";
	fd = why ? -1 : open(path, O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW | O_NONBLOCK |
			     O_NOCTTY | O_CLOEXEC, 0640);
	if (!why && fd < 0)
		err = -errno, why = errno == ELOOP ? "it is a symbolic link" : strerror(errno);
	else if (!why && (fstat(fd, &st) || !S_ISREG(st.st_mode)))
		why = "not a regular file";
	else if (!why && st.st_uid != 0 && st.st_uid != geteuid())
		why = "it belongs to another user";
	else if (!why && st.st_nlink != 1)
		why = "it has other hard links";
	else if (!why && fcntl(fd, F_SETFL, O_WRONLY | O_APPEND))
		why = strerror(errno);
	if (!why) {
		*out = fdopen(fd, "a");
		if (*out)
			return 0;
		why = strerror(errno);
	}
	if (fd >= 0)
		close(fd);
	term_escape(path, (size_t)-1, name, sizeof(name));
	log_error("cannot write %s: %s", name, why);
	return err ? err : -EPERM;
}

/* Is stderr the journal (JOURNAL_STREAM=dev:ino names it)? */
static bool stderr_is_journal(void)
{
	const char *js = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;

	if (!js || sscanf(js, "%llu:%llu", &dev, &ino) != 2 || fstat(STDERR_FILENO, &st))
		return false;
	return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

int daemon_log_open(const struct fh_config *cfg)
{
	int err;

	if (!cfg->svc.log_file) {
		log_journal = stderr_is_journal();
		return 0;
	}
	err = open_log(cfg->svc.log_file, &log_file);
	if (err) {
		log_error("cannot write the log file %s: %s", cfg->svc.log_file, strerror(-err));
		return err;
	}
	log_stream = log_file;
	return 0;
}

int daemon_log_reopen(const struct fh_config *cfg)
{
	FILE *f = NULL;
	int err;

	if (!cfg->svc.log_file)
		return 0;
	err = open_log(cfg->svc.log_file, &f);
	if (err) {	/* keep writing to the old one: losing diagnostics is worse */
		log_error("cannot reopen the log file %s: %s", cfg->svc.log_file, strerror(-err));
		return err;
	}
	log_stream = f;
	if (log_file)
		fclose(log_file);
	log_file = f;
	return 0;
}

void daemon_log_close(void)
{
	if (!log_file)
		return;
	log_stream = NULL;
	fclose(log_file);
	log_file = NULL;
}

/* ---- helpers --------------------------------------------------------------- */

static uint64_t now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS + (uint64_t)ts.tv_nsec;
}

static bool take_token(double *tokens, uint64_t *at_ns, double per_second, double cap,
		       uint64_t now)
{
	if (now > *at_ns) {
		*tokens += (double)(now - *at_ns) / NS * per_second;
		if (*tokens > cap)
			*tokens = cap;
	}
	*at_ns = now;
	if (*tokens < 1)
		return false;
	*tokens -= 1;
	return true;
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

/* The C library's own frames are never a fork or lock "site": every program
 * has them. */
static bool is_libc(const struct fh_frame *f)
{
	const char *b;

	if (!f->has_module)
		return false;
	b = base_name(f->module);
	return !strncmp(b, "libc.so", 7) || !strncmp(b, "libc-", 5) ||
	       !strncmp(b, "libpthread", 10) || !strncmp(b, "ld-linux", 8) ||
	       !strncmp(b, "ld-musl", 7) || !strncmp(b, "libc.musl", 9);
}

/* A frame's identity across runs (ASLR): its module (build-id, else path)
 * and its offset in the module. */
static uint64_t frame_hash(uint64_t h, const struct fh_frame *f)
{
	const char *id;
	size_t n;

	if (!f->has_module)
		return site_hash(h, "?", 1);
	id = f->build_id[0] ? f->build_id : f->module;
	n = strlen(id);
	if (!f->build_id[0] && n > 10 && !strcmp(id + n - 10, " (deleted)"))
		n -= 10;
	h = site_hash(h, id, n);
	return site_hash(h, &f->module_offset, sizeof(f->module_offset));
}

static void frame_text(const struct fh_frame *f, char *buf, size_t size)
{
	if (f->known && f->has_module)
		snprintf(buf, size, "%.96s+0x%" PRIx64 " [%.64s]", f->symbol, f->offset,
			 base_name(f->module));
	else if (f->has_module)
		snprintf(buf, size, "[%.64s+0x%" PRIx64 "]", base_name(f->module),
			 f->module_offset);
	else
		snprintf(buf, size, "0x%" PRIx64, f->addr);
}

/* An event's stack: the CFI-unwound copy when there is one (*cfi), else the
 * frame-pointer walk. */
static int event_frames(struct daemon *d, pid_t pid, uint32_t tid, uint64_t time_ns, int stack_id,
			bool *cfi)
{
	return ustacks_frames(d->o.ustacks, d->o.syms, pid, tid, time_ns, stack_id, d->frames,
			      FH_STACK_DEPTH, cfi);
}

/* The first frame outside the C library: where the program called fork, or
 * waits. NULL if the stack never leaves it. */
static const struct fh_frame *program_frame(struct daemon *d, int n)
{
	for (int i = 0; i < n; i++)
		if (d->frames[i].has_module && !is_libc(&d->frames[i]))
			return &d->frames[i];
	return NULL;
}

/*
 * The executable: its name as the kernel recorded it at the event (always
 * there: the identity sites are keyed on, so a process that exited before
 * its events were read lands on the same site), and its full path while the
 * process is still there to ask (for people and --filter-exe).
 */
static void read_exe(pid_t pid, const char *kname, const char *comm, char name[FH_EXE_NAME_LEN + 1],
		     char *path, size_t size)
{
	size_t len = strnlen(kname, FH_EXE_NAME_LEN);
	const char *base;
	char link[64];
	ssize_t n;

	if (!len) {
		kname = comm;
		len = strlen(comm);
	}
	memcpy(name, kname, len);
	name[len] = '\0';
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, path, size - 1);
	if (n > 0) {
		path[n] = '\0';
		if (n > 10 && !strcmp(path + n - 10, " (deleted)"))
			path[n - 10] = '\0';	/* replaced on disk since it started */
		base = base_name(path);
		/* not the event's program any more (it exec'd, or the PID was reused) */
		if (strncmp(base, name, len) || (len < FH_EXE_NAME_LEN - 1 && base[len]))
			n = 0;
	}
	if (n <= 0)
		snprintf(path, size, "%s", name);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static bool is_hazard(const struct fh_fork_event *ev)
{
	return ev->nr_locks > ev->nr_own || ev->locks_omitted;
}

/* What a site is, computed from one occurrence. */
struct site_desc {
	uint64_t id;
	enum site_kind kind;
	char exe[SITE_EXE_LEN];
	char comm[16];
	char fork_site[SITE_FRAME_LEN];
	char lock_sites[SITE_LOCKS_SHOWN][SITE_FRAME_LEN];
	int nlock_sites;
};

static void comm_copy(char *dst, const char *comm)
{
	size_t n = strnlen(comm, FH_COMM_LEN);

	memcpy(dst, comm, n);
	dst[n] = '\0';
}

static struct weak_site *weak_slot(struct daemon *d, uint64_t weak)
{
	return &d->weak[(weak ^ (weak >> 29)) % WEAK_MAP];
}

/*
 * The site id of an occurrence: weak identifies the executable and the lock
 * sites, pf the program's frame of the stack, known for sure only when the
 * stack was unwound with CFI (cfi). Without it the site the executable and
 * locks last had is taken; if there is none yet, a site is made that the
 * first unwound occurrence then adopts, so that one site never becomes two
 * because the first report came in a burst beyond the unwinding rate.
 */
static uint64_t resolve_weak(struct daemon *d, uint64_t weak, bool cfi, const struct fh_frame *pf)
{
	struct weak_site *ws = weak_slot(d, weak);
	uint64_t h;

	if (ws->weak == weak && ws->site && (!cfi || ws->nocfi)) {
		ws->nocfi = ws->nocfi && !cfi;
		return ws->site;
	}
	if (cfi)
		h = pf ? frame_hash(weak, pf) : site_hash(weak, "libc", 4);
	else
		h = site_hash(weak, "no-cfi", 6);
	h = h ? h : 1;
	ws->weak = weak;
	ws->site = h;
	ws->nocfi = !cfi;
	return h;
}

/*
 * A hazard fork's site: (executable, fork call site, lock acquisition
 * sites). Without a CFI stack the fork call site is not known for sure (a
 * frame-pointer walk from inside libc skips or invents frames): the site of
 * the last fully known occurrence with the same executable and locks is
 * taken, so a burst beyond the unwinding rate limit still lands on its site.
 */
static void fork_site(struct daemon *d, const struct fh_fork_event *ev, const char *name,
		      const char *exe, struct site_desc *sd)
{
	uint64_t locks[FH_EVENT_LOCKS] = { 0 }, weak;
	const struct fh_frame *pf;
	int n = 0, nl = 0;
	bool cfi;

	memset(sd, 0, sizeof(*sd));
	sd->kind = SITE_HAZARD;
	snprintf(sd->exe, sizeof(sd->exe), "%s", exe);
	comm_copy(sd->comm, ev->comm);
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		const struct fh_lock *l = &ev->locks[i];
		struct fh_frame *f = &d->frames[0];

		if (l->flags & FH_LOCK_OWN)
			continue;
		syms_resolve_return(d->o.syms, (pid_t)ev->pid, l->caller, f);
		locks[n] = frame_hash(site_hash(SITE_HASH_INIT, &l->kind, sizeof(l->kind)), f);
		/* describe the distinct ones (first occurrence order) */
		{
			bool dup = false;

			for (int k = 0; k < n; k++)
				dup |= locks[k] == locks[n];
			if (!dup) {
				if (nl < SITE_LOCKS_SHOWN)
					frame_text(f, sd->lock_sites[nl], SITE_FRAME_LEN);
				nl++;
			}
		}
		n++;
	}
	sd->nlock_sites = nl;
	qsort(locks, (size_t)n, sizeof(locks[0]), cmp_u64);
	weak = site_hash(SITE_HASH_INIT, "hazard", 6);
	weak = site_hash(weak, name, strlen(name));
	for (int i = 0; i < n; i++)
		if (i == 0 || locks[i] != locks[i - 1])
			weak = site_hash(weak, &locks[i], sizeof(locks[i]));
	if (ev->locks_omitted)
		weak = site_hash(weak, "+omitted", 8);

	n = event_frames(d, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
	pf = program_frame(d, n);
	if (pf)
		frame_text(pf, sd->fork_site, sizeof(sd->fork_site));
	sd->id = resolve_weak(d, weak, cfi, pf);
}

/*
 * A deadlock whose fork was no hazard (or was never seen): the site is the
 * executable and where the child waits (the acquisition that never returns).
 * As for forks, only a CFI-unwound stack names that place for sure; without
 * one the last such site of the executable is taken.
 */
static void deadlock_site(struct daemon *d, const struct fh_deadlock_event *ev, const char *name,
			  const char *exe, struct site_desc *sd)
{
	const struct fh_frame *pf;
	uint64_t weak;
	bool cfi;
	int n;

	memset(sd, 0, sizeof(*sd));
	sd->kind = SITE_DEADLOCK;
	snprintf(sd->exe, sizeof(sd->exe), "%s", exe);
	comm_copy(sd->comm, ev->comm);
	weak = site_hash(SITE_HASH_INIT, "deadlock", 8);
	weak = site_hash(weak, name, strlen(name));
	n = event_frames(d, (pid_t)ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
	pf = program_frame(d, n);
	if (pf) {
		frame_text(pf, sd->lock_sites[0], SITE_FRAME_LEN);
		sd->nlock_sites = 1;
	}
	sd->id = resolve_weak(d, weak, cfi, pf);
}

static struct site *site_get(struct daemon *d, const struct site_desc *sd, uint64_t ev_ns,
			     uint64_t now, bool *created)
{
	struct site *s = sites_find(d->sites, sd->id);

	*created = false;
	if (s) {
		if (!s->fork_site[0] && sd->fork_site[0])	/* adopted by an unwound stack */
			memcpy(s->fork_site, sd->fork_site, sizeof(s->fork_site));
		return s;
	}
	s = sites_add(d->sites, sd->id, ev_ns);
	if (!s)
		return NULL;
	*created = true;
	s->kind = sd->kind;
	memcpy(s->exe, sd->exe, sizeof(s->exe));
	memcpy(s->comm, sd->comm, sizeof(s->comm));
	memcpy(s->fork_site, sd->fork_site, sizeof(s->fork_site));
	memcpy(s->lock_sites, sd->lock_sites, sizeof(s->lock_sites));
	s->nlock_sites = sd->nlock_sites;
	s->tokens = d->svc->site_rate_limit;
	s->tokens_ns = now;
	return s;
}

static void id_hex(uint64_t id, char buf[17])
{
	snprintf(buf, 17, "%016" PRIx64, id);
}

static void remember_child(struct daemon *d, uint32_t child, uint64_t site)
{
	struct child_site *c = &d->child[child % CHILD_MAP];

	c->pid = child;
	c->site = site;
}

static uint64_t child_site_of(struct daemon *d, uint32_t child)
{
	struct child_site *c = &d->child[child % CHILD_MAP];

	return c->pid == child ? c->site : 0;
}

static bool filtered(struct daemon *d, const char *comm, const char *exe,
		     const struct fh_container *k, bool known)
{
	const struct fh_svc_config *s = d->svc;

	return !config_filter_match(s->filters[FH_FILTER_COMM], s->nfilters[FH_FILTER_COMM],
				    comm) ||
	       !config_filter_match(s->filters[FH_FILTER_EXE], s->nfilters[FH_FILTER_EXE],
				    exe[0] ? exe : NULL) ||
	       !config_filter_match(s->filters[FH_FILTER_CGROUP], s->nfilters[FH_FILTER_CGROUP],
				    known && k->cgroup[0] ? k->cgroup : NULL);
}

/* A full report may be written: the site's and the global budget allow it. */
static bool may_report(struct daemon *d, struct site *s, uint64_t now)
{
	if (!take_token(&s->tokens, &s->tokens_ns, d->svc->site_rate_limit / 3600.0,
			d->svc->site_rate_limit, now)) {
		d->sup_site++;
		s->suppressed++;
		return false;
	}
	if (!take_token(&d->tokens, &d->tokens_ns, d->svc->rate_limit, d->svc->rate_limit, now)) {
		d->sup_global++;
		s->suppressed++;
		return false;
	}
	return true;
}

static void safe(const char *s, char *out, size_t size)
{
	term_escape(s, (size_t)-1, out, size);
}

static void where_text(const struct fh_container *k, bool known, char *buf, size_t size)
{
	if (known && k->id[0])
		snprintf(buf, size, ", container %.12s", k->id);
	else
		buf[0] = '\0';
}

/* What every occurrence of a site records, hazard or deadlock: when, the
 * (parent) process, the container, the child whose fate counts on the site,
 * and the sum of the sites beyond the metrics' labels. */
static void site_occurred(struct daemon *d, struct site *s, uint64_t ev_ns, uint32_t pid,
			  uint32_t child, const struct fh_container *k, bool known,
			  uint64_t *unlabeled)
{
	if (ev_ns > s->last_ns)
		s->last_ns = ev_ns;
	site_note_pid(s, pid);
	if (known && k->id[0] && !s->container_id[0])
		memcpy(s->container_id, k->id, sizeof(s->container_id));
	if (!s->labeled)
		(*unlabeled)++;
	remember_child(d, child, s->id);
}

/* ---- the sink ---------------------------------------------------------------- */

/* A child's fate is decided once (correlate.c): a deadlock comes as the
 * deadlock's fate, its later exit not at all; "alive" only at the end. */
static void count_fate(struct daemon *d, uint32_t outcome)
{
	if (outcome >= FH_CHILD_EXEC && outcome <= FH_CHILD_ALIVE)
		d->children[outcome]++;
}

static void sink_fork(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		      const struct fh_deadlock_event *dl)
{
	struct daemon *d = ctx;
	char exe[SITE_EXE_LEN], comm[FH_COMM_LEN + 1], name[FH_EXE_NAME_LEN + 1];
	struct site_desc sd;
	struct fh_container k;
	uint64_t now = now_mono();
	struct site *s;
	bool known, created;

	(void)dl;
	if (fate)
		count_fate(d, fate->outcome);
	if (!is_hazard(ev))
		return;	/* counted by the kernel; only hazards make sites */
	d->hazards++;
	comm_copy(comm, ev->comm);
	known = containers_lookup(d->o.containers, (pid_t)ev->pid, ev->cgroup_id, now, &k);
	read_exe((pid_t)ev->pid, ev->exe_name, comm, name, exe, sizeof(exe));
	if (filtered(d, comm, exe, &k, known)) {
		d->filtered++;
		return;
	}
	fork_site(d, ev, name, exe, &sd);
	s = site_get(d, &sd, ev->time_ns, now, &created);
	if (!s)
		return;
	s->hazards++;
	if (!strchr(s->exe, '/') && strchr(exe, '/'))	/* the path, once it could be read */
		snprintf(s->exe, sizeof(s->exe), "%s", exe);
	site_occurred(d, s, ev->time_ns, ev->pid, ev->child_pid, &k, known, &d->other_hazards);
	if (!created || !may_report(d, s, now))
		return;
	/* the first occurrence of a site: in full */
	d->cur_site = s;
	d->cur_cont = k;
	d->cur_known = known;
	output_fork(d->out, ev, NULL, NULL);
	d->cur_site = NULL;
	d->reports_fork++;
	s->reported = true;
	{
		char id[17], e[SITE_EXE_LEN * 4], c[64], fsite[SITE_FRAME_LEN * 4];
		char lsite[SITE_FRAME_LEN * 4], where[48];
		__u32 foreign = ev->nr_locks - ev->nr_own + ev->locks_omitted;

		id_hex(s->id, id);
		safe(s->exe, e, sizeof(e));
		safe(comm, c, sizeof(c));
		safe(s->fork_site[0] ? s->fork_site : "?", fsite, sizeof(fsite));
		safe(s->nlock_sites ? s->lock_sites[0] : "?", lsite, sizeof(lsite));
		where_text(&k, known, where, sizeof(where));
		log_warn("fork hazard, new site %s: %s (%s, PID %u%s) forked at %s while %u lock%s "
			 "held by other threads, taken at %s%s", id, e, c, ev->pid, where, fsite,
			 foreign, foreign == 1 ? " was" : "s were", lsite,
			 s->nlock_sites > 1 ? " and elsewhere" : "");
	}
}

static void sink_child(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork)
{
	struct daemon *d = ctx;
	uint64_t id = child_site_of(d, ev->pid);
	struct site *s;

	(void)fork;
	count_fate(d, ev->outcome);
	/* a deadlock is counted with its deadlock event (it may come first) */
	if (!id || ev->outcome >= 5 || ev->outcome == FH_CHILD_DEADLOCK)
		return;
	s = sites_find(d->sites, id);
	if (s)
		s->outcomes[ev->outcome]++;
}

static void sink_deadlock(void *ctx, const struct fh_deadlock_event *ev, const struct fh_lock *lock,
			  const struct fh_fork_event *fork, int with_fork)
{
	struct daemon *d = ctx;
	char exe[SITE_EXE_LEN], comm[FH_COMM_LEN + 1], name[FH_EXE_NAME_LEN + 1];
	struct site_desc sd;
	struct fh_container k;
	uint64_t now = now_mono(), id;
	struct site *s = NULL;
	bool known, created = false;

	(void)with_fork;
	d->deadlocks++;
	comm_copy(comm, ev->comm);
	known = containers_lookup(d->o.containers, (pid_t)ev->pid, ev->cgroup_id, now, &k);
	read_exe((pid_t)ev->pid, ev->exe_name, comm, name, exe, sizeof(exe));
	if (filtered(d, comm, exe, &k, known)) {
		d->filtered_deadlocks++;
		return;
	}
	id = child_site_of(d, ev->pid);
	if (id)
		s = sites_find(d->sites, id);
	if (!s && fork && is_hazard(fork)) {
		char fname[FH_EXE_NAME_LEN + 1];

		snprintf(fname, sizeof(fname), "%.*s", FH_EXE_NAME_LEN, fork->exe_name[0] ?
			 fork->exe_name : name);
		fork_site(d, fork, fname, exe, &sd);
		s = site_get(d, &sd, ev->time_ns, now, &created);
	}
	if (!s) {
		deadlock_site(d, ev, name, exe, &sd);
		s = site_get(d, &sd, ev->time_ns, now, &created);
	}
	if (!s)
		return;
	s->deadlocks++;
	s->outcomes[FH_CHILD_DEADLOCK]++;
	site_occurred(d, s, ev->time_ns, ev->parent_pid, ev->pid, &k, known, &d->other_deadlocks);
	if (!may_report(d, s, now))
		return;
	d->cur_site = s;
	d->cur_cont = k;
	d->cur_known = known;
	output_deadlock(d->out, ev, lock, fork);
	d->cur_site = NULL;
	d->reports_deadlock++;
	{
		char hex[17], e[SITE_EXE_LEN * 4], c[64], where[48], owner[32] = "";

		id_hex(s->id, hex);
		safe(exe, e, sizeof(e));
		safe(comm, c, sizeof(c));
		where_text(&k, known, where, sizeof(where));
		if (ev->flags & FH_DL_OWNER_KNOWN)
			snprintf(owner, sizeof(owner), ", held by thread %u", ev->owner_tid);
		log_error("DEADLOCK at site %s: child %u of %u (%s, %s%s) blocked forever on "
			  "lock 0x%llx%s", hex, ev->pid, ev->parent_pid, c, e, where,
			  (unsigned long long)ev->futex, owner);
	}
}

static int sink_hold(void *ctx, const struct fh_fork_event *ev)
{
	(void)ctx;
	(void)ev;
	return 0;	/* reports are written at once; fates are aggregated */
}

const struct corr_sink daemon_sink = {
	.fork = sink_fork,
	.child = sink_child,
	.deadlock = sink_deadlock,
	.hold = sink_hold,
};

bool daemon_accept(void *ctx, uint32_t type, const void *data, size_t size)
{
	const struct fh_svc_config *svc = ((struct daemon *)ctx)->svc;
	struct daemon *d = ctx;
	char comm[FH_COMM_LEN + 1], path[64];
	bool counts = false;

	if (!svc->nfilters[FH_FILTER_COMM])
		return true;
	if (type == FH_EV_FORK && size >= offsetof(struct fh_fork_event, locks)) {
		const struct fh_fork_event *ev = data;

		comm_copy(comm, ev->comm);
		counts = is_hazard(ev);
	} else if (type == FH_EV_DEADLOCK && size >= sizeof(struct fh_deadlock_event)) {
		comm_copy(comm, ((const struct fh_deadlock_event *)data)->comm);
		counts = true;
	} else if (type == FH_EV_USTACK && size >= offsetof(struct fh_ustack_event, data)) {
		/* a hazard's or a deadlock's stack, just before it: not worth
		 * unwinding if its thread's name is filtered out */
		const struct fh_ustack_event *ev = data;
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%u/task/%u/comm", ev->pid, ev->tid);
		n = procfs_read_file(path, comm, sizeof(comm));
		if (n <= 0)
			return true;
		comm[strcspn(comm, "\n")] = '\0';
	} else {
		return true;
	}
	if (config_filter_match(svc->filters[FH_FILTER_COMM], svc->nfilters[FH_FILTER_COMM], comm))
		return true;
	if (counts) {	/* received, and left out */
		if (type == FH_EV_FORK) {
			d->hazards++;
			d->filtered++;
		} else {
			d->deadlocks++;
			d->filtered_deadlocks++;
			count_fate(d, FH_CHILD_DEADLOCK);	/* never reaches sink_child */
		}
	}
	return false;
}

void daemon_decorate(void *ctx, struct jw *w, const char *type, const void *ev)
{
	struct daemon *d = ctx;
	char id[17];

	if (d->cur_site) {
		id_hex(d->cur_site->id, id);
		jw_str(w, "site", id);
	}
	container_json(w, &d->cur_cont, d->cur_known);
	container_exe_json(w, type, ev);
	if (!strcmp(type, "fork")) {
		jw_uint(w, "ns_pid", ((const struct fh_fork_event *)ev)->ns_pid);
		jw_uint(w, "child_ns_pid", ((const struct fh_fork_event *)ev)->ns_child_pid);
	} else if (!strcmp(type, "deadlock")) {
		jw_uint(w, "ns_pid", ((const struct fh_deadlock_event *)ev)->ns_pid);
	}
}

/* ---- aggregates ---------------------------------------------------------------- */

static void json_time(struct daemon *d, struct jw *w, const char *key, uint64_t mono_ns)
{
	char ts[40];

	fmt_rfc3339((int64_t)mono_ns + d->o.mono_to_real_ns, ts, sizeof(ts));
	jw_str(w, key, ts);
}

static void write_site(struct daemon *d, struct site *s, const char *reason, uint64_t now)
{
	struct jw *w = output_json_begin(d->out, "site", now);
	char id[17];

	id_hex(s->id, id);
	jw_str(w, "site", id);
	jw_str(w, "reason", reason);
	jw_str(w, "kind", s->kind == SITE_HAZARD ? "hazard" : "deadlock");
	jw_str(w, "exe", s->exe);
	jw_str(w, "comm", s->comm);
	jw_str(w, "container_id", s->container_id[0] ? s->container_id : NULL);
	jw_str(w, "fork_site", s->fork_site[0] ? s->fork_site : NULL);
	jw_arr_begin(w, "lock_sites");
	for (int i = 0; i < s->nlock_sites && i < SITE_LOCKS_SHOWN; i++)
		jw_str(w, NULL, s->lock_sites[i]);
	jw_arr_end(w);
	if (s->nlock_sites > SITE_LOCKS_SHOWN)
		jw_uint(w, "lock_sites_omitted", (uint64_t)(s->nlock_sites - SITE_LOCKS_SHOWN));
	jw_uint(w, "hazards", s->hazards);
	jw_uint(w, "deadlocks", s->deadlocks);
	jw_uint(w, "new_hazards", s->hazards - s->reported_hazards);
	jw_uint(w, "new_deadlocks", s->deadlocks - s->reported_deadlocks);
	jw_obj_begin(w, "children");
	jw_uint(w, "exec", s->outcomes[FH_CHILD_EXEC]);
	jw_uint(w, "exit", s->outcomes[FH_CHILD_EXIT]);
	jw_uint(w, "deadlock", s->outcomes[FH_CHILD_DEADLOCK]);
	jw_uint(w, "alive", s->outcomes[FH_CHILD_ALIVE]);
	jw_obj_end(w);
	jw_uint(w, "processes", site_processes(s));
	if (s->pids_estimated)
		jw_bool(w, "processes_estimated", true);
	json_time(d, w, "first_seen", s->first_ns);
	json_time(d, w, "last_seen", s->last_ns);
	jw_uint(w, "suppressed", s->suppressed);
	output_json_end(d->out);
	d->reports_site++;
	s->reported_hazards = s->hazards;
	s->reported_deadlocks = s->deadlocks;
}

struct report_ctx {
	struct daemon *d;
	const char *reason;
	uint64_t now;
	bool all;
	int logged, unlogged;
};

static void log_site(struct report_ctx *r, struct site *s)
{
	char id[17], e[SITE_EXE_LEN * 4], fsite[SITE_FRAME_LEN * 4];
	bool waits;

	if (r->logged >= LOG_SITES_MAX) {
		r->unlogged++;
		return;
	}
	r->logged++;
	id_hex(s->id, id);
	safe(s->exe, e, sizeof(e));
	/* A deadlock site of a fork that was no hazard (a process's first fork
	 * in adaptive mode) is known by where the child waits. */
	waits = !s->fork_site[0] && s->kind == SITE_DEADLOCK && s->nlock_sites;
	safe(waits ? s->lock_sites[0] : s->fork_site[0] ? s->fork_site : "?", fsite,
	     sizeof(fsite));
	log_notice("site %s: %" PRIu64 " hazards (+%" PRIu64 "), %" PRIu64 " deadlocks (+%" PRIu64
		   ") in %" PRIu64 " process%s: %s, %s %s", id, s->hazards,
		   s->hazards - s->reported_hazards, s->deadlocks,
		   s->deadlocks - s->reported_deadlocks, site_processes(s),
		   site_processes(s) == 1 ? "" : "es", e, waits ? "child waits at" : "fork at",
		   fsite);
}

static void report_one(void *ctx, struct site *s)
{
	struct report_ctx *r = ctx;

	if (!r->all && s->hazards == s->reported_hazards && s->deadlocks == s->reported_deadlocks)
		return;
	log_site(r, s);
	write_site(r->d, s, r->reason, r->now);
}

static void write_table(struct daemon *d, uint64_t now)
{
	struct sites_stats st;
	struct jw *w;

	sites_get_stats(d->sites, &st);
	w = output_json_begin(d->out, "site_table", now);
	jw_uint(w, "sites", st.used);
	jw_uint(w, "max_sites", st.max);
	jw_uint(w, "created", st.created);
	jw_uint(w, "evicted", st.evicted);
	jw_uint(w, "hazards", d->hazards);
	jw_uint(w, "deadlocks", d->deadlocks);
	jw_uint(w, "filtered", d->filtered + d->filtered_deadlocks);
	jw_obj_begin(w, "suppressed");
	jw_uint(w, "rate_limit", d->sup_global);
	jw_uint(w, "site_rate_limit", d->sup_site);
	jw_obj_end(w);
	output_json_end(d->out);
}

static void report(struct daemon *d, const char *reason, bool all, uint64_t now)
{
	struct report_ctx r = { .d = d, .reason = reason, .now = now, .all = all };

	sites_foreach(d->sites, report_one, &r);
	if (r.unlogged)
		log_notice("... and %d more sites (see the events file)", r.unlogged);
	write_table(d, now);
}

/* A site about to be forgotten: its counts go out first, if the global
 * budget allows (a flood of new sites must not become a flood of lines). */
static void on_evict(void *ctx, struct site *s)
{
	struct daemon *d = ctx;
	uint64_t now = now_mono();

	if (s->hazards == s->reported_hazards && s->deadlocks == s->reported_deadlocks)
		return;
	if (!take_token(&d->tokens, &d->tokens_ns, d->svc->rate_limit, d->svc->rate_limit, now)) {
		d->sup_global++;
		return;
	}
	write_site(d, s, "evicted", now);
}

/* ---- metrics ------------------------------------------------------------------ */

static uint64_t map_entries(int fd, uint32_t max)
{
	uint8_t key[64], next[64];
	uint64_t n = 0;
	void *prev = NULL;

	/* keys of our hash maps are at most 8 bytes; the buffer is generous */
	while (n <= max && !bpf_map_get_next_key(fd, prev, next)) {
		memcpy(key, next, sizeof(key));
		prev = key;
		n++;
	}
	return n;
}

struct render_ctx {
	struct daemon *d;
	struct prom *p;
};

static void site_series(void *ctx, struct site *s)
{
	struct render_ctx *r = ctx;
	char id[17];
	const char *labels[3][2];

	if (!s->labeled)
		return;
	id_hex(s->id, id);
	labels[0][0] = "site", labels[0][1] = id;
	labels[1][0] = "exe", labels[1][1] = s->exe;
	labels[2][0] = "comm", labels[2][1] = s->comm;
	prom_sample_u64(r->p, "forkhazard_site_hazards_total", labels, 3, s->hazards);
	prom_sample_u64(r->p, "forkhazard_site_deadlocks_total", labels, 3, s->deadlocks);
}

static void counter(struct prom *p, const char *name, const char *help, uint64_t v)
{
	prom_family(p, name, "counter", help);
	prom_sample_u64(p, name, NULL, 0, v);
}

static void gauge(struct prom *p, const char *name, const char *help, double v)
{
	prom_family(p, name, "gauge", help);
	prom_sample(p, name, NULL, 0, v);
}

static void render(void *ctx, struct prom *p)
{
	struct daemon *d = ctx;
	struct daemon_health h = { 0 };
	struct sites_stats st;
	struct render_ctx rc = { .d = d, .p = p };
	const char *lab[1][2];
	struct rusage ru;
	uint64_t rss;
	static const struct {
		int stat;
		const char *what;
	} dropped[] = {
		{ FH_STAT_HELD_FULL, "untracked_locks" },
		{ FH_STAT_PROCS_FULL, "untraced_procs" },
		{ FH_STAT_CHILDREN_FULL, "unfollowed_children" },
		{ FH_STAT_STACKS_LOST, "stacks" },
	};

	if (d->o.health)
		d->o.health(d->o.health_ctx, &h);
	sites_get_stats(d->sites, &st);

	prom_family(p, "forkhazard_build_info", "gauge", "forkhazard's version.");
	lab[0][0] = "version", lab[0][1] = FH_VERSION;
	prom_sample(p, "forkhazard_build_info", lab, 1, 1);
	gauge(p, "forkhazard_start_time_seconds", "When tracing started, seconds since the epoch.",
	      d->start_time);
	counter(p, "forkhazard_forks_total", "New processes forked by traced processes.",
		h.stats[FH_STAT_FORKS]);
	counter(p, "forkhazard_multithreaded_forks_total",
		"Forks whose parent was multithreaded.", h.stats[FH_STAT_MT_FORKS]);
	counter(p, "forkhazard_hazards_total",
		"Forks while another thread of the parent held a lock (kernel count).",
		h.stats[FH_STAT_HAZARDS]);
	counter(p, "forkhazard_deadlocks_total", "Forked children confirmed deadlocked.",
		h.stats[FH_STAT_DEADLOCKS]);
	prom_family(p, "forkhazard_children_total", "counter",
		    "Children of multithreaded forks by fate, as decided (alive: at the end).");
	for (uint32_t o = FH_CHILD_EXEC; o <= FH_CHILD_ALIVE; o++) {
		lab[0][0] = "outcome", lab[0][1] = child_outcome_name(o);
		prom_sample_u64(p, "forkhazard_children_total", lab, 1, d->children[o]);
	}
	counter(p, "forkhazard_lost_events_total",
		"Events dropped because the ring buffer was full.", h.stats[FH_STAT_LOST]);
	prom_family(p, "forkhazard_dropped_total", "counter",
		    "What bounded tables could not hold, by table.");
	for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
		lab[0][0] = "what", lab[0][1] = dropped[i].what;
		prom_sample_u64(p, "forkhazard_dropped_total", lab, 1, h.stats[dropped[i].stat]);
	}
	lab[0][1] = "correlation_evicted";
	prom_sample_u64(p, "forkhazard_dropped_total", lab, 1, h.corr_evicted);

	gauge(p, "forkhazard_sites", "Hazard sites in the deduplication table.", (double)st.used);
	gauge(p, "forkhazard_sites_max", "Capacity of the deduplication table.", (double)st.max);
	counter(p, "forkhazard_sites_created_total", "Hazard sites seen for the first time.",
		st.created);
	counter(p, "forkhazard_sites_evicted_total",
		"Sites dropped from the full table (least recently seen first).", st.evicted);
	counter(p, "forkhazard_daemon_hazards_total",
		"Hazard forks the daemon received (after lost events, before filters).",
		d->hazards);
	counter(p, "forkhazard_daemon_deadlocks_total", "Deadlocks the daemon received.",
		d->deadlocks);
	prom_family(p, "forkhazard_filtered_total", "counter",
		    "Hazards and deadlocks left out by the filters, by kind.");
	lab[0][0] = "kind";
	lab[0][1] = "hazard";
	prom_sample_u64(p, "forkhazard_filtered_total", lab, 1, d->filtered);
	lab[0][1] = "deadlock";
	prom_sample_u64(p, "forkhazard_filtered_total", lab, 1, d->filtered_deadlocks);
	prom_family(p, "forkhazard_reports_total", "counter", "Lines written, by kind.");
	lab[0][0] = "kind";
	lab[0][1] = "fork";
	prom_sample_u64(p, "forkhazard_reports_total", lab, 1, d->reports_fork);
	lab[0][1] = "deadlock";
	prom_sample_u64(p, "forkhazard_reports_total", lab, 1, d->reports_deadlock);
	lab[0][1] = "site";
	prom_sample_u64(p, "forkhazard_reports_total", lab, 1, d->reports_site);
	prom_family(p, "forkhazard_reports_suppressed_total", "counter",
		    "Full reports not written, by rate limit (their sites still count them).");
	lab[0][0] = "limit";
	lab[0][1] = "global";
	prom_sample_u64(p, "forkhazard_reports_suppressed_total", lab, 1, d->sup_global);
	lab[0][1] = "site";
	prom_sample_u64(p, "forkhazard_reports_suppressed_total", lab, 1, d->sup_site);

	prom_family(p, "forkhazard_site_hazards_total", "counter",
		    "Hazard forks per site (the first --metrics-sites sites; "
		    "site=\"other\": the rest).");
	prom_family(p, "forkhazard_site_deadlocks_total", "counter",
		    "Deadlocked children per site (as forkhazard_site_hazards_total).");
	sites_foreach(d->sites, site_series, &rc);
	{
		const char *other[3][2] = { { "site", "other" }, { "exe", "" }, { "comm", "" } };

		prom_sample_u64(p, "forkhazard_site_hazards_total", other, 3, d->other_hazards);
		prom_sample_u64(p, "forkhazard_site_deadlocks_total", other, 3, d->other_deadlocks);
	}

	prom_family(p, "forkhazard_bpf_map_entries", "gauge", "Entries in the BPF maps.");
	for (int i = 0; i < d->o.nmaps; i++) {
		lab[0][0] = "map", lab[0][1] = d->o.maps[i].name;
		prom_sample_u64(p, "forkhazard_bpf_map_entries", lab, 1,
				map_entries(d->o.maps[i].fd, d->o.maps[i].max_entries));
	}
	prom_family(p, "forkhazard_bpf_map_capacity", "gauge", "Capacity of the BPF maps.");
	for (int i = 0; i < d->o.nmaps; i++) {
		lab[0][0] = "map", lab[0][1] = d->o.maps[i].name;
		prom_sample_u64(p, "forkhazard_bpf_map_capacity", lab, 1, d->o.maps[i].max_entries);
	}
	gauge(p, "forkhazard_correlation_pending", "Forks whose children are still followed.",
	      (double)h.corr_pending);
	counter(p, "forkhazard_output_errors_total", "Failed writes of the events output.",
		h.output_errors);
	counter(p, "forkhazard_output_reopens_total", "Reopenings of the outputs (SIGHUP).",
		h.output_reopens);
	counter(p, "forkhazard_metrics_file_errors_total", "Failed writes of --metrics-file.",
		d->metrics_write_errors);
	if (!getrusage(RUSAGE_SELF, &ru)) {
		prom_family(p, "forkhazard_cpu_seconds_total", "counter",
			    "CPU time forkhazard's userspace used, by mode.");
		lab[0][0] = "mode", lab[0][1] = "user";
		prom_sample(p, "forkhazard_cpu_seconds_total", lab, 1,
			    ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6);
		lab[0][1] = "system";
		prom_sample(p, "forkhazard_cpu_seconds_total", lab, 1,
			    ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
		gauge(p, "forkhazard_max_resident_memory_bytes",
		      "Peak resident memory of forkhazard's userspace.", ru.ru_maxrss * 1024.0);
	}
	if (!procfs_read_rss(getpid(), &rss))
		gauge(p, "forkhazard_resident_memory_bytes",
		      "Resident memory of forkhazard's userspace now.", (double)rss);
}

static void write_metrics_file(struct daemon *d)
{
	struct prom p;
	int err;

	if (!d->svc->metrics_file)
		return;
	prom_init(&p);
	render(d, &p);
	err = p.oom ? -ENOMEM : metrics_write_file(d->svc->metrics_file, p.buf, p.len);
	prom_free(&p);
	if (!err) {
		d->metrics_writes++;
		d->metrics_file_warned = false;
		return;
	}
	d->metrics_write_errors++;
	if (!d->metrics_file_warned)	/* once until it works again */
		log_error("cannot write the metrics file %s: %s", d->svc->metrics_file,
			  strerror(-err));
	d->metrics_file_warned = true;
}

/* ---- life cycle ------------------------------------------------------------------- */

struct daemon *daemon_new(const struct daemon_opts *opts)
{
	const struct fh_svc_config *svc = &opts->cfg->svc;
	struct daemon *d = calloc(1, sizeof(*d));
	struct timespec ts;
	uint64_t usec = 0, now = now_mono();

	if (!d) {
		log_error("out of memory");
		return NULL;
	}
	d->o = *opts;
	d->svc = svc;
	d->frames = calloc(FH_STACK_DEPTH, sizeof(*d->frames));
	d->sites = sites_new((size_t)svc->max_sites, (size_t)svc->metrics_sites, on_evict, d);
	if (!d->frames || !d->sites) {
		log_error("out of memory");
		daemon_free(d);
		return NULL;
	}
	if (svc->metrics_listen) {
		metrics_parse_listen(svc->metrics_listen, &d->addr);
		d->http = metrics_http_new(&d->addr, render, d);
		if (!d->http) {
			log_error("cannot serve metrics on %s: %s", svc->metrics_listen,
				  strerror(errno));
			daemon_free(d);
			return NULL;
		}
		if (!d->addr.loopback)
			log_info("metrics served on %s, not a loopback address",
				 svc->metrics_listen);
	}
	d->tokens = svc->rate_limit;
	d->tokens_ns = now;
	clock_gettime(CLOCK_REALTIME, &ts);
	d->start_time = (double)ts.tv_sec + ts.tv_nsec / 1e9;
	d->next_report_ns = now + (uint64_t)(svc->report_interval * NS);
	d->next_metrics_ns = now;
	if (sd_watchdog_enabled(0, &usec) > 0 && usec)
		d->watchdog_ns = usec * 1000 / 2;
	return d;
}

void daemon_set_output(struct daemon *d, struct output *out)
{
	d->out = out;
}

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	metrics_http_free(d->http);
	sites_free(d->sites);
	free(d->frames);
	free(d);
}

int daemon_fd(const struct daemon *d)
{
	return d->http ? metrics_http_fd(d->http) : -1;
}

void daemon_handle_fd(struct daemon *d)
{
	if (d->http)
		metrics_http_run(d->http);
}

void daemon_ready(struct daemon *d)
{
	(void)d;
	sd_notify(0, "READY=1\nSTATUS=Tracing fork hazards");
}

void daemon_tick(struct daemon *d, uint64_t now)
{
	if (d->http)
		metrics_http_run(d->http);	/* connection timeouts */
	if (now >= d->next_report_ns) {
		report(d, "periodic", false, now);
		d->next_report_ns = now + (uint64_t)(d->svc->report_interval * NS);
	}
	if (d->svc->metrics_file && now >= d->next_metrics_ns) {
		write_metrics_file(d);
		d->next_metrics_ns = now + (uint64_t)(d->svc->metrics_interval * NS);
	}
	if (d->watchdog_ns && now >= d->next_watchdog_ns) {
		sd_notify(0, "WATCHDOG=1");
		d->next_watchdog_ns = now + d->watchdog_ns;
	}
}

void daemon_finish(struct daemon *d, uint64_t now)
{
	sd_notify(0, "STOPPING=1");
	report(d, "final", true, now);
	write_metrics_file(d);
}

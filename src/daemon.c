// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>
#include <time.h>
#include <systemd/sd-daemon.h>
#include "clock.h"
#include "config.h"
#include "container.h"
#include "correlate.h"
#include "daemon.h"
#include "escape.h"
#include "filter.h"
#include "governor.h"
#include "finding.h"
#include "hazard.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "outfile.h"
#include "output.h"
#include "procfs.h"
#include "sites.h"

#define LOG_SITES_MAX	20	/* aggregate lines per report in the log */
#define NS		1000000000ull

struct daemon {
	struct daemon_opts o;
	const struct fh_svc_config *svc;
	struct sites *sites;
	struct findings *findings;		/* sites, executables, the rules */
	struct metrics_http *http;
	struct metrics_addr addr;
	double tokens;				/* global rate limit */
	uint64_t tokens_ns;
	struct daemon_counts n;
	uint64_t next_report_ns, next_metrics_ns, next_watchdog_ns, watchdog_ns;
	double start_time;	/* seconds since the epoch */
	bool metrics_file_warned;
};

/* ---- helpers --------------------------------------------------------------- */

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

static void id_hex(uint64_t id, char buf[17])
{
	snprintf(buf, 17, "%016" PRIx64, id);
}

static void safe(const char *s, char *out, size_t size)
{
	term_escape(s, (size_t)-1, out, size);
}

/* Is the occurrence left out by --filter-comm, --filter-exe, --filter-cgroup? */
static bool filtered(const struct daemon *d, const struct occurrence *oc)
{
	const struct fh_svc_config *s = d->svc;

	return !filter_match(s->filters[FH_FILTER_COMM], s->nfilters[FH_FILTER_COMM], oc->comm) ||
	       !filter_match(s->filters[FH_FILTER_EXE], s->nfilters[FH_FILTER_EXE],
			     oc->exe[0] ? oc->exe : NULL) ||
	       !filter_match(s->filters[FH_FILTER_CGROUP], s->nfilters[FH_FILTER_CGROUP],
			     oc->known && oc->k.cgroup[0] ? oc->k.cgroup : NULL);
}

/* The site of a description: found (and adopting an unwound fork site it
 * lacked), or added. */
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

/* A full report may be written: the site's and the global budget allow it. */
static bool may_report(struct daemon *d, struct site *s, uint64_t now)
{
	if (!take_token(&s->tokens, &s->tokens_ns, d->svc->site_rate_limit / 3600.0,
			d->svc->site_rate_limit, now)) {
		d->n.suppressed_site++;
		s->suppressed++;
		return false;
	}
	if (!take_token(&d->tokens, &d->tokens_ns, d->svc->rate_limit, d->svc->rate_limit, now)) {
		d->n.suppressed_global++;
		s->suppressed++;
		return false;
	}
	return true;
}

static void where_text(const struct occurrence *oc, char *buf, size_t size)
{
	if (oc->known && oc->k.id[0])
		snprintf(buf, size, ", container %.12s", oc->k.id);
	else
		buf[0] = '\0';
}

/* What every occurrence of a site records, hazard or deadlock: when, the
 * (parent) process, the container, the child whose fate counts on the site,
 * and the sum of the sites beyond the metrics' labels. */
static void site_occurred(struct daemon *d, struct site *s, uint64_t ev_ns, uint32_t pid,
			  uint32_t child, const struct occurrence *oc, uint64_t *unlabeled)
{
	if (ev_ns > s->last_ns)
		s->last_ns = ev_ns;
	site_note_pid(s, pid);
	if (oc->known && oc->k.id[0] && !s->container_id[0])
		memcpy(s->container_id, oc->k.id, sizeof(s->container_id));
	if (!s->labeled)
		(*unlabeled)++;
	findings_remember_child(d->findings, child, s->id, false);
}

/* The report's JSON members beyond the record: its site, where it runs,
 * the locks the rules set aside. */
static void report_meta(const struct site *s, const struct occurrence *oc,
			const struct finding *f, char id[17], struct output_meta *meta)
{
	memset(meta, 0, sizeof(*meta));
	id_hex(s->id, id);
	meta->site = id;
	meta->container = oc->known ? &oc->k : NULL;
	meta->suppressed_by = f->suppressed_by;
}

/* ---- the sink ---------------------------------------------------------------- */

static void log_new_site(const struct site *s, const struct fh_fork_event *ev,
			 const struct occurrence *oc)
{
	char id[17], e[SITE_EXE_LEN * 4], c[64], fsite[SITE_FRAME_LEN * 4];
	char lsite[SITE_FRAME_LEN * 4], where[48];
	uint32_t foreign = hazard_foreign_locks(ev);

	id_hex(s->id, id);
	safe(s->exe, e, sizeof(e));
	safe(oc->comm, c, sizeof(c));
	safe(s->fork_site[0] ? s->fork_site : "?", fsite, sizeof(fsite));
	safe(s->nlock_sites ? s->lock_sites[0] : "?", lsite, sizeof(lsite));
	where_text(oc, where, sizeof(where));
	log_warn("fork hazard, new site %s: %s (%s, PID %u%s) forked at %s while %u lock%s "
		 "held by other threads, taken at %s%s", id, e, c, ev->pid, where, fsite,
		 foreign, foreign == 1 ? " was" : "s were", lsite,
		 s->nlock_sites > 1 ? " and elsewhere" : "");
}

void daemon_governor(struct daemon *d, const struct gov_event *ev)
{
	char what[256], comm[FH_COMM_LEN * 4 + 1];

	/* Every one, whatever the filters: what it cost is the host's, and
	 * what it hides is said once per decision (back-off bounds them). */
	governor_describe(ev, what, sizeof(what));
	term_escape(ev->comm, strnlen(ev->comm, FH_COMM_LEN), comm, sizeof(comm));
	log_msg(ev->action == GOV_DOWNGRADE ? LOG_WARN : LOG_NOTICE, "governor: %s (PID %d): %s",
		comm, (int)ev->pid, what);
	output_governor(d->o.out, ev);
}

/* A child's fate is decided once (correlate.c): a deadlock comes as the
 * deadlock's fate, its later exit not at all; "alive" only at the end. */
static void count_fate(struct daemon *d, uint32_t outcome)
{
	if (outcome >= FH_CHILD_EXEC && outcome <= FH_CHILD_ALIVE)
		d->n.children[outcome]++;
}

/* A fate of a hazard fork of site s: mitigated when its child re-created
 * every foreign lock. */
static void site_fate(struct site *s, const struct fh_fork_event *fork, uint32_t outcome,
		      const struct reinit_set *ri)
{
	if (outcome < FH_CHILD_EXEC || outcome > FH_CHILD_ALIVE)
		return;
	if (outcome != FH_CHILD_DEADLOCK)	/* counted with its deadlock event */
		s->outcomes[outcome]++;
	if (fork && hazard_mitigated(fork, ri))
		s->mitigated++;
}

static void sink_fork(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		      const struct fh_deadlock_event *dl, const struct reinit_set *ri)
{
	struct daemon *d = ctx;
	struct output_meta meta;
	struct occurrence oc;
	uint64_t now = clock_mono_ns();
	struct finding f;
	struct site *s;
	bool created;
	char id[17];

	(void)dl;
	if (fate)
		count_fate(d, fate->outcome);
	if (!hazard_fork(ev))
		return;	/* counted by the kernel; only hazards make sites */
	d->n.hazards++;
	findings_observe(d->findings, ev->pid, ev->comm, ev->exe_name, ev->cgroup_id, &oc);
	if (filtered(d, &oc)) {
		d->n.filtered++;
		return;
	}
	findings_fork(d->findings, ev, ri, &oc, &f);
	if (f.suppressed)
		return;	/* accepted: counted (suppressed_by_rule), neither logged nor alerted */
	s = site_get(d, &f.key.d, ev->time_ns, now, &created);
	if (!s)
		return;
	s->hazards++;
	if (!strchr(s->exe, '/') && strchr(oc.exe, '/'))	/* the path, once it could be read */
		snprintf(s->exe, sizeof(s->exe), "%s", oc.exe);
	site_occurred(d, s, ev->time_ns, ev->pid, ev->child_pid, &oc, &d->n.other_hazards);
	if (fate)	/* held past its fate (the table was full): its fate now */
		site_fate(s, ev, fate->outcome, ri);
	if (!created || !may_report(d, s, now))
		return;
	/* the first occurrence of a site: in full */
	report_meta(s, &oc, &f, id, &meta);
	output_fork(d->o.out, ev, NULL, NULL, &meta);
	d->n.reports_fork++;
	s->reported = true;
	log_new_site(s, ev, &oc);
}

static void sink_child(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork,
		       const struct reinit_set *ri)
{
	struct daemon *d = ctx;
	uint64_t id = findings_child_site(d->findings, ev->pid);
	struct site *s;

	count_fate(d, ev->outcome);
	s = id ? sites_find(d->sites, id) : NULL;
	if (s)
		site_fate(s, fork, ev->outcome, ri);
}

static void sink_deadlock(void *ctx, const struct fh_deadlock_event *ev, const struct fh_lock *lock,
			  const struct fh_fork_event *fork, int with_fork)
{
	struct daemon *d = ctx;
	char id[17], e[SITE_EXE_LEN * 4], c[64], where[48], owner[32] = "";
	struct output_meta meta;
	struct occurrence oc;
	uint64_t now = clock_mono_ns();
	struct finding f;
	struct site *s;
	bool created;

	(void)with_fork;
	d->n.deadlocks++;
	findings_observe(d->findings, ev->pid, ev->comm, ev->exe_name, ev->cgroup_id, &oc);
	if (filtered(d, &oc)) {
		d->n.filtered_deadlocks++;
		return;
	}
	/* its fork's site, else one of its own */
	findings_deadlock(d->findings, ev, lock, fork, &oc, &f);
	if (f.suppressed)
		return;	/* accepted: counted, neither logged nor alerted */
	s = site_get(d, &f.key.d, ev->time_ns, now, &created);
	if (!s)
		return;
	s->deadlocks++;
	s->outcomes[FH_CHILD_DEADLOCK]++;
	site_occurred(d, s, ev->time_ns, ev->parent_pid, ev->pid, &oc, &d->n.other_deadlocks);
	if (!may_report(d, s, now))
		return;
	report_meta(s, &oc, &f, id, &meta);
	output_deadlock(d->o.out, ev, lock, fork, &meta);
	d->n.reports_deadlock++;
	safe(oc.exe, e, sizeof(e));
	safe(oc.comm, c, sizeof(c));
	where_text(&oc, where, sizeof(where));
	if (ev->flags & FH_DL_OWNER_KNOWN)
		snprintf(owner, sizeof(owner), ", held by thread %u", ev->owner_tid);
	log_error("DEADLOCK at site %s: child %u of %u (%s, %s%s) blocked forever on "
		  "lock 0x%llx%s", id, ev->pid, ev->parent_pid, c, e, where,
		  (unsigned long long)ev->futex, owner);
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
	struct daemon *d = ctx;
	const struct fh_svc_config *svc = d->svc;
	char comm[FH_COMM_LEN + 1], path[64];
	bool counts = false;

	(void)size;	/* checked by the caller */
	if (!svc->nfilters[FH_FILTER_COMM])
		return true;
	if (type == FH_EV_FORK) {
		const struct fh_fork_event *ev = data;

		snprintf(comm, sizeof(comm), "%.*s", FH_COMM_LEN, ev->comm);
		counts = hazard_fork(ev);
	} else if (type == FH_EV_DEADLOCK) {
		snprintf(comm, sizeof(comm), "%.*s", FH_COMM_LEN,
			 ((const struct fh_deadlock_event *)data)->comm);
		counts = true;
	} else if (type == FH_EV_USTACK) {
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
	if (filter_match(svc->filters[FH_FILTER_COMM], svc->nfilters[FH_FILTER_COMM], comm))
		return true;
	if (counts) {	/* received, and left out */
		if (type == FH_EV_FORK) {
			d->n.hazards++;
			d->n.filtered++;
		} else {
			d->n.deadlocks++;
			d->n.filtered_deadlocks++;
			count_fate(d, FH_CHILD_DEADLOCK);	/* never reaches sink_child */
		}
	}
	return false;
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
	struct jw *w = output_json_begin(d->o.out, "site", now);
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
	jw_uint(w, "mitigated", s->mitigated);
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
	output_json_end(d->o.out);
	d->n.reports_site++;
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
	w = output_json_begin(d->o.out, "site_table", now);
	jw_uint(w, "sites", st.used);
	jw_uint(w, "max_sites", st.max);
	jw_uint(w, "created", st.created);
	jw_uint(w, "evicted", st.evicted);
	jw_uint(w, "hazards", d->n.hazards);
	jw_uint(w, "deadlocks", d->n.deadlocks);
	jw_uint(w, "filtered", d->n.filtered + d->n.filtered_deadlocks);
	jw_obj_begin(w, "suppressed");
	jw_uint(w, "rate_limit", d->n.suppressed_global);
	jw_uint(w, "site_rate_limit", d->n.suppressed_site);
	jw_obj_end(w);
	output_json_end(d->o.out);
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
	uint64_t now = clock_mono_ns();

	if (s->hazards == s->reported_hazards && s->deadlocks == s->reported_deadlocks)
		return;
	if (!take_token(&d->tokens, &d->tokens_ns, d->svc->rate_limit, d->svc->rate_limit, now)) {
		d->n.suppressed_global++;
		return;
	}
	write_site(d, s, "evicted", now);
}

/* ---- metrics ------------------------------------------------------------------ */

static void render(void *ctx, struct prom *p)
{
	struct daemon *d = ctx;
	struct exposition e = { .start_time = d->start_time, .daemon = &d->n, .sites = d->sites };
	struct rusage ru;
	uint64_t rss;

	if (d->o.health)
		d->o.health(d->o.health_ctx, &e);
	e.rss_bytes = procfs_read_rss(getpid(), &rss) ? -1 : (double)rss;
	if (!getrusage(RUSAGE_SELF, &ru)) {
		e.have_usage = true;
		e.cpu_user = ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6;
		e.cpu_system = ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
		e.max_rss_bytes = ru.ru_maxrss * 1024.0;
	}
	exposition_render(&e, p);
}

static void write_metrics_file(struct daemon *d)
{
	const char *why = NULL;
	struct prom p;
	int err;

	if (!d->svc->metrics_file)
		return;
	prom_init(&p);
	render(d, &p);
	err = p.out.oom ? -ENOMEM : outfile_replace(d->svc->metrics_file, OUTFILE_SERVICE,
						     p.out.buf, p.out.len, &why);
	prom_free(&p);
	if (!err) {
		d->metrics_file_warned = false;
		return;
	}
	d->n.metrics_file_errors++;
	if (!d->metrics_file_warned)	/* once until it works again */
		log_error("cannot write the metrics file %s: %s", d->svc->metrics_file,
			  why ? why : strerror(-err));
	d->metrics_file_warned = true;
}

/* ---- life cycle ------------------------------------------------------------------- */

struct daemon *daemon_new(const struct daemon_opts *opts)
{
	const struct fh_svc_config *svc = &opts->cfg->svc;
	struct daemon *d = calloc(1, sizeof(*d));
	struct timespec ts;
	uint64_t usec = 0, now = clock_mono_ns();

	if (!d) {
		log_error("out of memory");
		return NULL;
	}
	d->o = *opts;
	d->svc = svc;
	d->findings = opts->findings;
	d->sites = sites_new((size_t)svc->max_sites, (size_t)svc->metrics_sites, on_evict, d);
	if (!d->sites || !d->findings) {
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

void daemon_free(struct daemon *d)
{
	if (!d)
		return;
	metrics_http_free(d->http);
	sites_free(d->sites);
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

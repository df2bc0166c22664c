// SPDX-License-Identifier: GPL-2.0
#include <inttypes.h>
#include <stdio.h>
#include "exposition.h"
#include "output.h"
#include "metrics.h"
#include "sites.h"

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

/* A family of counters with one label: values[i] labelled label=names[i]. */
static void labelled(struct prom *p, const char *name, const char *help, const char *label,
		     const char *const *names, const uint64_t *values, int n)
{
	const char *lab[1][2] = { { label, NULL } };

	prom_family(p, name, "counter", help);
	for (int i = 0; i < n; i++) {
		lab[0][1] = names[i];
		prom_sample_u64(p, name, lab, 1, values[i]);
	}
}

/* The counters of the summary: each its own family, the dropped ones one
 * family by what. */
static void summary_counters(struct prom *p, const struct fh_counts *c)
{
	const char *what[FH_CNT_MAX];
	uint64_t v[FH_CNT_MAX];
	int n = 0;

	for (int i = 0; i < FH_CNT_FIRST_DROPPED; i++)
		counter(p, fh_counters[i].metric, fh_counters[i].help, c->v[i]);
	for (int i = FH_CNT_FIRST_DROPPED; i < FH_CNT_MAX; i++, n++) {
		what[n] = fh_counters[i].key;
		v[n] = c->v[i];
	}
	labelled(p, fh_counters[FH_CNT_FIRST_DROPPED].metric,
		 "What bounded tables could not hold, by table.", "what", what, v, n);
}

static void site_series(void *ctx, struct site *s)
{
	struct prom *p = ctx;
	char id[17];
	const char *labels[3][2];

	if (!s->labeled)
		return;
	snprintf(id, sizeof(id), "%016" PRIx64, s->id);
	labels[0][0] = "site", labels[0][1] = id;
	labels[1][0] = "exe", labels[1][1] = s->exe;
	labels[2][0] = "comm", labels[2][1] = s->comm;
	prom_sample_u64(p, "forkhazard_site_hazards_total", labels, 3, s->hazards);
	prom_sample_u64(p, "forkhazard_site_deadlocks_total", labels, 3, s->deadlocks);
}

static void site_table(struct prom *p, const struct exposition *e)
{
	const struct daemon_counts *d = e->daemon;
	const char *other[3][2] = { { "site", "other" }, { "exe", "" }, { "comm", "" } };
	struct sites_stats st;

	sites_get_stats(e->sites, &st);
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
	labelled(p, "forkhazard_filtered_total",
		 "Hazards and deadlocks left out by the filters, by kind.", "kind",
		 (const char *const[]){ "hazard", "deadlock" },
		 (const uint64_t[]){ d->filtered, d->filtered_deadlocks }, 2);
	labelled(p, "forkhazard_reports_total", "Lines written, by kind.", "kind",
		 (const char *const[]){ "fork", "deadlock", "site" },
		 (const uint64_t[]){ d->reports_fork, d->reports_deadlock, d->reports_site }, 3);
	labelled(p, "forkhazard_reports_suppressed_total",
		 "Full reports not written, by rate limit (their sites still count them).",
		 "limit", (const char *const[]){ "global", "site" },
		 (const uint64_t[]){ d->suppressed_global, d->suppressed_site }, 2);
	prom_family(p, "forkhazard_site_hazards_total", "counter",
		    "Hazard forks per site (the first --metrics-sites sites; "
		    "site=\"other\": the rest).");
	prom_family(p, "forkhazard_site_deadlocks_total", "counter",
		    "Deadlocked children per site (as forkhazard_site_hazards_total).");
	sites_foreach(e->sites, site_series, p);
	prom_sample_u64(p, "forkhazard_site_hazards_total", other, 3, d->other_hazards);
	prom_sample_u64(p, "forkhazard_site_deadlocks_total", other, 3, d->other_deadlocks);
}

static void health(struct prom *p, const struct exposition *e)
{
	const char *lab[1][2] = { { "map", NULL } };

	prom_family(p, "forkhazard_bpf_map_entries", "gauge", "Entries in the BPF maps.");
	for (int i = 0; i < e->nmaps; i++) {
		lab[0][1] = e->maps[i].name;
		prom_sample_u64(p, "forkhazard_bpf_map_entries", lab, 1, e->maps[i].entries);
	}
	prom_family(p, "forkhazard_bpf_map_capacity", "gauge", "Capacity of the BPF maps.");
	for (int i = 0; i < e->nmaps; i++) {
		lab[0][1] = e->maps[i].name;
		prom_sample_u64(p, "forkhazard_bpf_map_capacity", lab, 1, e->maps[i].capacity);
	}
	gauge(p, "forkhazard_correlation_pending", "Forks whose children are still followed.",
	      (double)e->corr_pending);
	counter(p, "forkhazard_output_errors_total", "Failed writes of the events output.",
		e->output_errors);
	counter(p, "forkhazard_output_reopens_total", "Reopenings of the outputs (SIGHUP).",
		e->output_reopens);
	counter(p, "forkhazard_metrics_file_errors_total", "Failed writes of --metrics-file.",
		e->daemon->metrics_file_errors);
	if (e->rss_bytes >= 0)
		gauge(p, "forkhazard_resident_memory_bytes",
		      "Resident memory of forkhazard's userspace now (statm).", e->rss_bytes);
	if (!e->have_usage)
		return;
	prom_family(p, "forkhazard_cpu_seconds_total", "counter",
		    "CPU time forkhazard's userspace used, by mode.");
	lab[0][0] = "mode", lab[0][1] = "user";
	prom_sample(p, "forkhazard_cpu_seconds_total", lab, 1, e->cpu_user);
	lab[0][1] = "system";
	prom_sample(p, "forkhazard_cpu_seconds_total", lab, 1, e->cpu_system);
	gauge(p, "forkhazard_max_resident_memory_bytes",
	      "Peak resident memory of forkhazard's userspace.", e->max_rss_bytes);
}

/* What became of the children the daemon followed. */
static void children(struct prom *p, const struct exposition *e)
{
	const char *lab[1][2] = { { "outcome", NULL } };

	prom_family(p, "forkhazard_children_total", "counter",
		    "Children of multithreaded forks by fate, as decided (alive: at the end).");
	for (uint32_t o = FH_CHILD_EXEC; o <= FH_CHILD_ALIVE; o++) {
		lab[0][1] = child_outcome_name(o);
		prom_sample_u64(p, "forkhazard_children_total", lab, 1, e->daemon->children[o]);
	}
}

/* The overhead governor: lock tracking it took away, and gave back for a while. */
static void governor(struct prom *p, const struct exposition *e)
{
	counter(p, "forkhazard_governor_downgrades_total",
		"Lock probes the overhead governor detached from a process (its locks untracked).",
		e->governor_downgrades);
	counter(p, "forkhazard_governor_rearms_total",
		"Lock probes the overhead governor attached again for a window.", e->governor_rearms);
	gauge(p, "forkhazard_governed_processes",
	      "Processes whose lock probes the overhead governor detached (or re-armed on "
	      "probation) now.", (double)e->governed);
}

void exposition_render(const struct exposition *e, struct prom *p)
{
	const char *version[1][2] = { { "version", FH_VERSION } };

	prom_family(p, "forkhazard_build_info", "gauge", "forkhazard's version.");
	prom_sample(p, "forkhazard_build_info", version, 1, 1);
	gauge(p, "forkhazard_start_time_seconds", "When tracing started, seconds since the epoch.",
	      e->start_time);
	summary_counters(p, &e->counts);
	children(p, e);
	governor(p, e);
	site_table(p, e);
	health(p, e);
}

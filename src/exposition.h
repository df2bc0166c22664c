/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forkhazard's metrics: what /metrics and --metrics-file say, rendered into
 * Prometheus text (metrics.c writes the format and serves it). The counters
 * of the summary come from counters.h's table, so both say the same; the
 * rest is the daemon's own counts, its site table and the tracer's health.
 * No I/O: the caller gathers the values.
 */
#ifndef FH_EXPOSITION_H
#define FH_EXPOSITION_H

#include <stdbool.h>
#include <stdint.h>
#include "counters.h"
#include "forkhazard.h"

struct prom;
struct sites;

#define EXPOSITION_MAX_MAPS	8

/* A BPF map whose fill is exported. */
struct exposition_map {
	const char *name;
	uint64_t entries, capacity;
};

/* What the daemon counts of its own (its site_table records say them too). */
struct daemon_counts {
	uint64_t hazards, deadlocks;		/* received (after lost events, before filters) */
	uint64_t filtered, filtered_deadlocks;	/* left out by the filters */
	uint64_t suppressed_global, suppressed_site;	/* full reports held back by a limit */
	uint64_t reports_fork, reports_deadlock, reports_site;	/* lines written, by kind */
	uint64_t other_hazards, other_deadlocks;	/* of the sites without metric labels */
	uint64_t metrics_file_errors;
	/* fates of every multithreaded fork's child the daemon learns, filtered
	 * or not (as the kernel's fork counters), by enum fh_child_outcome */
	uint64_t children[FH_CHILD_ALIVE + 1];
};

struct exposition {
	double start_time;			/* seconds since the epoch */
	struct fh_counts counts;		/* the summary's counters, now */
	const struct daemon_counts *daemon;
	struct sites *sites;
	uint64_t corr_pending;			/* forks whose children are followed */
	/* the overhead governor (governor.h): since start, and now */
	uint64_t governor_downgrades, governor_rearms, governed;
	uint64_t output_errors, output_reopens;
	struct exposition_map maps[EXPOSITION_MAX_MAPS];
	int nmaps;
	bool have_usage;			/* forkhazard's own resources: */
	double cpu_user, cpu_system, max_rss_bytes;
	double rss_bytes;			/* now; < 0: not known */
};

void exposition_render(const struct exposition *e, struct prom *p);

#endif

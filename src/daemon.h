/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service mode (--daemon): a correlation sink that deduplicates hazards by
 * site (finding.c names them, sites.c keeps them), reports a site once in
 * full and then aggregates, filters and rate-limits what it writes, and
 * exposes Prometheus metrics (exposition.c renders them, metrics.c serves
 * and writes them). The tracer keeps its loop; the daemon adds a file
 * descriptor (the metrics endpoint), a tick, and work at the end.
 */
#ifndef FH_DAEMON_H
#define FH_DAEMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "exposition.h"

struct fh_config;
struct findings;
struct output;

struct daemon_opts {
	const struct fh_config *cfg;
	struct output *out;		/* where its reports go */
	/* Sites, executables, where processes run, the suppression rules:
	 * shared with the rest of the tracer. */
	struct findings *findings;
	int64_t mono_to_real_ns;
	/* The tracer's part of the metrics (counts, health, map fill), read
	 * at each render. */
	void (*health)(void *ctx, struct exposition *e);
	void *health_ctx;
};

struct daemon;

/* NULL after a one-line error (the metrics endpoint cannot listen...). */
struct daemon *daemon_new(const struct daemon_opts *opts);
void daemon_free(struct daemon *d);

/* The correlation sink; its ctx is the struct daemon. */
extern const struct corr_sink daemon_sink;
/* events.accept: --filter-comm before any work is spent on a record. */
bool daemon_accept(void *ctx, uint32_t type, const void *data, size_t size);

/* A file descriptor for the event loop (-1: none), and its handler. */
int daemon_fd(const struct daemon *d);
void daemon_handle_fd(struct daemon *d);

/* The overhead governor acted (governor.h): a line in the log (a warning
 * for a downgrade), and the "governor" event in the output. */
struct gov_event;
void daemon_governor(struct daemon *d, const struct gov_event *ev);

/* Tracing has started (tells systemd, Type=notify). */
void daemon_ready(struct daemon *d);
/* Every loop tick: aggregates, metrics file, watchdog. */
void daemon_tick(struct daemon *d, uint64_t now_ns);
/* Tracing stops: every site's aggregate, the site table, the metrics file. */
void daemon_finish(struct daemon *d, uint64_t now_ns);

#endif

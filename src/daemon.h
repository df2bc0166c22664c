/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service mode (--daemon): a correlation sink that deduplicates hazards by
 * site (sites.c), reports a site once in full and then aggregates, rate
 * limits what it writes, tags events with their cgroup and container
 * (container.c), and exposes Prometheus metrics (metrics.c). The tracer keeps
 * its loop; the daemon adds a file descriptor (the metrics endpoint), a tick,
 * and work at SIGHUP and at the end.
 */
#ifndef FH_DAEMON_H
#define FH_DAEMON_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "forkhazard.h"

struct fh_config;
struct jw;
struct output;
struct syms;
struct ustacks;
struct containers;

/* What the tracer knows of its own health, read at each metrics render. */
struct daemon_health {
	uint64_t stats[FH_STAT_MAX];	/* the kernel's counters */
	uint64_t corr_pending, corr_evicted;
	uint64_t output_errors, output_reopens;
};

#define DAEMON_MAX_MAPS 8

struct daemon_map {
	const char *name;
	int fd;
	uint32_t max_entries;
};

struct daemon_opts {
	const struct fh_config *cfg;
	struct syms *syms;
	struct ustacks *ustacks;
	struct containers *containers;
	int64_t mono_to_real_ns;
	void (*health)(void *ctx, struct daemon_health *h);
	void *health_ctx;
	struct daemon_map maps[DAEMON_MAX_MAPS];	/* hash maps whose fill is exported */
	int nmaps;
};

struct daemon;

/* Logging for a service: --log-file, or the journal's priority prefixes
 * when stderr is the journal. 0 or -errno (reported). */
int daemon_log_open(const struct fh_config *cfg);
int daemon_log_reopen(const struct fh_config *cfg);
void daemon_log_close(void);

/*
 * Open the events file for appending (service mode keeps what earlier runs
 * wrote; logrotate moves it away and sends SIGHUP). Root writes it: never
 * through a symlink, only a regular file with one link, in a directory no
 * other user can change. 0 or -errno, reported.
 */
int daemon_open_events(const char *path, FILE **out);

/* NULL after a one-line error (the metrics endpoint cannot listen...). */
struct daemon *daemon_new(const struct daemon_opts *opts);
void daemon_free(struct daemon *d);
/* The output the daemon writes its reports through (set once, after output_new). */
void daemon_set_output(struct daemon *d, struct output *out);

/* The correlation sink; its ctx is the struct daemon. */
extern const struct corr_sink daemon_sink;
/* events.accept: --filter-comm before any work is spent on a record. */
bool daemon_accept(void *ctx, uint32_t type, const void *data, size_t size);
/* output_opts.decorate: site, cgroup, container ID, namespace PID. */
void daemon_decorate(void *ctx, struct jw *w, const char *type, const void *ev);

/* A file descriptor for the event loop (-1: none), and its handler. */
int daemon_fd(const struct daemon *d);
void daemon_handle_fd(struct daemon *d);

/* Tracing has started (tells systemd, Type=notify). */
void daemon_ready(struct daemon *d);
/* Every loop tick: aggregates, metrics file, watchdog. */
void daemon_tick(struct daemon *d, uint64_t now_ns);
/* Tracing stops: every site's aggregate, the site table, the metrics file. */
void daemon_finish(struct daemon *d, uint64_t now_ns);

#endif

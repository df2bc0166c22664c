/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Service mode's options and the configuration file.
 *
 * /etc/forkhazard.conf is "key = value" lines; every key is a long option
 * (`output = /var/log/forkhazard/events.jsonl` is `--output=...`), so a
 * configuration file is only a command line kept in a file: it is turned
 * into arguments placed before the real ones, which therefore win.
 */
#ifndef FH_CONFIG_H
#define FH_CONFIG_H

#include <getopt.h>
#include <stdbool.h>

#define FH_MAX_FILTERS		8	/* patterns per filter kind */
#define FH_CONFIG_MAX_LINES	256	/* options one configuration file may set */

/* Filters on what the daemon reports: glob patterns; a leading '!' excludes. */
enum fh_filter_kind { FH_FILTER_COMM, FH_FILTER_EXE, FH_FILTER_CGROUP, FH_FILTER_KINDS };

struct fh_svc_config {
	bool daemon;			/* --daemon: service mode (daemon.c) */
	const char *config_file;	/* --config */
	const char *log_file;		/* --log-file: diagnostics here, not stderr */
	const char *metrics_file;	/* --metrics-file: node_exporter textfile */
	const char *metrics_listen;	/* --metrics-listen ADDR:PORT (HTTP /metrics) */
	double metrics_interval;	/* seconds between metrics file writes */
	double report_interval;		/* seconds between site aggregate reports */
	int max_sites;			/* hazard sites remembered (bounded table) */
	int metrics_sites;		/* sites with their own metric labels */
	int rate_limit;			/* full reports per second, all sites */
	int site_rate_limit;		/* full reports per site per hour */
	const char *filters[FH_FILTER_KINDS][FH_MAX_FILTERS];
	int nfilters[FH_FILTER_KINDS];
};

/* Option codes of the service options, for cli.c's getopt_long loop. */
enum {
	FH_SVC_OPT_FIRST = 0x200,
	FH_OPT_DAEMON = FH_SVC_OPT_FIRST,
	FH_OPT_CONFIG,
	FH_OPT_MODE,
	FH_OPT_LOG_FILE,
	FH_OPT_METRICS_FILE,
	FH_OPT_METRICS_LISTEN,
	FH_OPT_METRICS_INTERVAL,
	FH_OPT_REPORT_INTERVAL,
	FH_OPT_MAX_SITES,
	FH_OPT_METRICS_SITES,
	FH_OPT_RATE_LIMIT,
	FH_OPT_SITE_RATE_LIMIT,
	FH_OPT_FILTER_COMM,
	FH_OPT_FILTER_EXE,
	FH_OPT_FILTER_CGROUP,
	FH_SVC_OPT_LAST = FH_OPT_FILTER_CGROUP,
};

/* getopt_long entries of the service options (inserted in cli.c's table). */
#define FH_SVC_LONG_OPTS						\
	{ "daemon", no_argument, NULL, FH_OPT_DAEMON },			\
	{ "config", required_argument, NULL, FH_OPT_CONFIG },		\
	{ "mode", required_argument, NULL, FH_OPT_MODE },		\
	{ "log-file", required_argument, NULL, FH_OPT_LOG_FILE },	\
	{ "metrics-file", required_argument, NULL, FH_OPT_METRICS_FILE }, \
	{ "metrics-listen", required_argument, NULL, FH_OPT_METRICS_LISTEN }, \
	{ "metrics-interval", required_argument, NULL, FH_OPT_METRICS_INTERVAL }, \
	{ "report-interval", required_argument, NULL, FH_OPT_REPORT_INTERVAL }, \
	{ "max-sites", required_argument, NULL, FH_OPT_MAX_SITES },	\
	{ "metrics-sites", required_argument, NULL, FH_OPT_METRICS_SITES }, \
	{ "rate-limit", required_argument, NULL, FH_OPT_RATE_LIMIT },	\
	{ "site-rate-limit", required_argument, NULL, FH_OPT_SITE_RATE_LIMIT }, \
	{ "filter-comm", required_argument, NULL, FH_OPT_FILTER_COMM },	\
	{ "filter-exe", required_argument, NULL, FH_OPT_FILTER_EXE },	\
	{ "filter-cgroup", required_argument, NULL, FH_OPT_FILTER_CGROUP }

/* The service options' lines of --help. */
extern const char config_usage_text[];

struct fh_config;

/* Defaults of the service options. */
void config_defaults(struct fh_config *cfg);

/*
 * Apply one service option (code c, argument arg). Returns 0, or
 * FH_EXIT_USAGE after a one-line error on stderr.
 */
int config_apply(struct fh_config *cfg, int c, const char *arg);

/* Checks across options, after parsing. Returns 0 or FH_EXIT_USAGE. */
int config_check(const struct fh_config *cfg);

/*
 * If argv names a configuration file (--config FILE or --config=FILE before
 * any "--"), read it and return in *argv_out a new argument vector: argv[0],
 * the file's options as "--key=value", then argv[1..]. Returns 0 (with
 * *argv_out NULL when there is no --config), or FH_EXIT_USAGE after a
 * one-line error naming the file and line. opts: the option table, to tell
 * flags from options with a value.
 */
int config_expand_argv(int argc, char **argv, const struct option *opts, int *argc_out,
		       char ***argv_out);

/* Free what config_expand_argv allocated (the strings cfg points into). */
void config_free(void);

/*
 * Parse one configuration line into key and value (in place). Returns 1 for
 * an option, 0 for a blank or comment line, -1 for a malformed line.
 */
int config_parse_line(char *line, char **key, char **value);

/* Does a value satisfy a filter's patterns (NULL value: matches no pattern)? */
bool config_filter_match(const char *const *patterns, int n, const char *value);

#endif

// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "config.h"
#include "escape.h"
#include "metrics.h"

const char config_usage_text[] =
"Service mode (see forkhazard(8) and README.md \"Running as a service\"):\n"
"      --daemon           run as a service: JSON Lines events (-o FILE, reopened\n"
"                         on SIGHUP; stdout without -o), hazard sites reported\n"
"                         once in full then aggregated, SIGTERM flushes and exits\n"
"      --config=FILE      read options from FILE (key = value, one per line; every\n"
"                         key is a long option; the command line wins)\n"
"      --mode=MODE        adaptive (default), all (--track-all) or light (--light)\n"
"      --log-file=FILE    diagnostics to FILE (reopened on SIGHUP), not stderr\n"
"      --metrics-file=FILE  Prometheus text for node_exporter's textfile\n"
"                         collector, rewritten atomically every --metrics-interval\n"
"      --metrics-listen=ADDR:PORT  serve Prometheus metrics on http://ADDR:PORT/metrics\n"
"      --metrics-interval=SECONDS  (default 15)\n"
"      --report-interval=SECONDS   site aggregates every SECONDS (default 300)\n"
"      --max-sites=N      hazard sites remembered, least recent evicted (default 2048)\n"
"      --metrics-sites=N  sites with their own metric labels (default 50)\n"
"      --rate-limit=N     full event reports per second, all sites (default 20)\n"
"      --site-rate-limit=N  full reports per site and hour (default 10)\n"
"      --filter-comm=GLOB, --filter-exe=GLOB, --filter-cgroup=GLOB\n"
"                         report only matching processes; !GLOB excludes\n"
"                         (repeatable, up to 8 each)\n";

static char **expanded;		/* config_expand_argv's vector and strings */
static int nexpanded_strings;

static int usage(const char *fmt, const char *arg)
{
	fputs("forkhazard: ", stderr);
	fprintf(stderr, fmt, arg);
	fputs(" (see --help)\n", stderr);
	return FH_EXIT_USAGE;
}

void config_defaults(struct fh_config *cfg)
{
	struct fh_svc_config *s = &cfg->svc;

	memset(s, 0, sizeof(*s));
	s->metrics_interval = 15;
	s->report_interval = 300;
	s->max_sites = 2048;
	s->metrics_sites = 50;
	s->rate_limit = 20;
	s->site_rate_limit = 10;
}

static int parse_seconds(const char *s, double min, double *out)
{
	char *end;
	double d;

	errno = 0;
	d = strtod(s, &end);
	if (errno || end == s || *end || !isfinite(d) || d < min || d > 1e7)
		return -EINVAL;
	*out = d;
	return 0;
}

static int add_filter(struct fh_svc_config *s, enum fh_filter_kind k, const char *arg,
		      const char *name)
{
	const char *pat = arg[0] == '!' ? arg + 1 : arg;

	if (!*pat || strlen(arg) > 255)
		return usage(name, arg);
	if (s->nfilters[k] == FH_MAX_FILTERS)
		return usage("too many filters of one kind (at most 8): '%s'", arg);
	s->filters[k][s->nfilters[k]++] = arg;
	return 0;
}

int config_apply(struct fh_config *cfg, int c, const char *arg)
{
	struct fh_svc_config *s = &cfg->svc;
	long v;

	switch (c) {
	case FH_OPT_DAEMON:
		s->daemon = true;
		cfg->json = true;
		return 0;
	case FH_OPT_CONFIG:
		s->config_file = arg;	/* read by config_expand_argv, before parsing */
		return 0;
	case FH_OPT_MODE:
		if (!strcmp(arg, "adaptive")) {
			cfg->track_all = cfg->light = false;
		} else if (!strcmp(arg, "all")) {
			cfg->track_all = true;
			cfg->light = false;
		} else if (!strcmp(arg, "light")) {
			cfg->light = true;
			cfg->track_all = false;
		} else {
			return usage("invalid --mode '%s' (adaptive, all or light)", arg);
		}
		return 0;
	case FH_OPT_LOG_FILE:
		if (!*arg)
			return usage("empty log file name%s", "");
		s->log_file = arg;
		return 0;
	case FH_OPT_METRICS_FILE:
		if (!*arg)
			return usage("empty metrics file name%s", "");
		s->metrics_file = arg;
		return 0;
	case FH_OPT_METRICS_LISTEN: {
		struct metrics_addr a;

		if (metrics_parse_listen(arg, &a))
			return usage("invalid --metrics-listen '%s' (ADDR:PORT, e.g. "
				     "127.0.0.1:9477 or [::1]:9477)", arg);
		s->metrics_listen = arg;
		return 0;
	}
	case FH_OPT_METRICS_INTERVAL:
		if (parse_seconds(arg, 1, &s->metrics_interval))
			return usage("invalid --metrics-interval '%s' (seconds, at least 1)", arg);
		return 0;
	case FH_OPT_REPORT_INTERVAL:
		if (parse_seconds(arg, 0.1, &s->report_interval))
			return usage("invalid --report-interval '%s' (seconds, at least 0.1)", arg);
		return 0;
	case FH_OPT_MAX_SITES:
		if (cli_parse_long(arg, 16, 65536, &v))
			return usage("invalid --max-sites '%s' (16-65536)", arg);
		s->max_sites = (int)v;
		return 0;
	case FH_OPT_METRICS_SITES:
		if (cli_parse_long(arg, 0, 10000, &v))
			return usage("invalid --metrics-sites '%s' (0-10000)", arg);
		s->metrics_sites = (int)v;
		return 0;
	case FH_OPT_RATE_LIMIT:
		if (cli_parse_long(arg, 1, 1000000, &v))
			return usage("invalid --rate-limit '%s' (1-1000000 reports a second)", arg);
		s->rate_limit = (int)v;
		return 0;
	case FH_OPT_SITE_RATE_LIMIT:
		if (cli_parse_long(arg, 1, 1000000, &v))
			return usage("invalid --site-rate-limit '%s' (1-1000000 reports an hour)",
				     arg);
		s->site_rate_limit = (int)v;
		return 0;
	case FH_OPT_FILTER_COMM:
		return add_filter(s, FH_FILTER_COMM, arg, "invalid --filter-comm '%s'");
	case FH_OPT_FILTER_EXE:
		return add_filter(s, FH_FILTER_EXE, arg, "invalid --filter-exe '%s'");
	case FH_OPT_FILTER_CGROUP:
		return add_filter(s, FH_FILTER_CGROUP, arg, "invalid --filter-cgroup '%s'");
	default:
		return usage("unknown option code%s", "");
	}
}

int config_check(const struct fh_config *cfg)
{
	const struct fh_svc_config *s = &cfg->svc;
	const char *needs = s->log_file ? "--log-file" : s->metrics_file ? "--metrics-file" :
			    s->metrics_listen ? "--metrics-listen" :
			    s->nfilters[FH_FILTER_COMM] ? "--filter-comm" :
			    s->nfilters[FH_FILTER_EXE] ? "--filter-exe" :
			    s->nfilters[FH_FILTER_CGROUP] ? "--filter-cgroup" : NULL;

	if (!s->daemon && needs)
		return usage("%s is a service option: it needs --daemon", needs);
	if (s->daemon && cfg->command)
		return usage("--daemon traces the system or -p PIDs, not a COMMAND%s", "");
	return 0;
}

int config_parse_line(char *line, char **key, char **value)
{
	char *p = line, *eq, *end;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p || *p == '#' || *p == ';')
		return 0;
	eq = strchr(p, '=');
	if (!eq)
		return -1;
	end = eq;
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	if (!*p)
		return -1;
	for (char *k = p; *k; k++) {
		if (*k == '_')
			*k = '-';
		if (!islower((unsigned char)*k) && !isdigit((unsigned char)*k) && *k != '-')
			return -1;
	}
	*key = p;
	p = eq + 1;
	while (isspace((unsigned char)*p))
		p++;
	end = p + strlen(p);
	while (end > p && isspace((unsigned char)end[-1]))
		end--;
	*end = '\0';
	if (end - p >= 2 && *p == '"' && end[-1] == '"') {
		end[-1] = '\0';
		p++;
	}
	*value = p;
	return 1;
}

static int parse_bool(const char *v)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		return 1;
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		return 0;
	return -1;
}

static const struct option *find_opt(const struct option *opts, const char *name)
{
	for (; opts->name; opts++)
		if (!strcmp(opts->name, name))
			return opts;
	return NULL;
}

static int file_error(const char *path, int line, const char *what, const char *arg)
{
	char safe_path[256], safe_arg[256];

	/* the file's bytes, and its name, never raw on a terminal */
	term_escape(path, (size_t)-1, safe_path, sizeof(safe_path));
	term_escape(arg, (size_t)-1, safe_arg, sizeof(safe_arg));
	fprintf(stderr, "forkhazard: %s:%d: ", safe_path, line);
	fprintf(stderr, what, safe_arg);
	fputc('\n', stderr);
	return FH_EXIT_USAGE;
}

/* Read path's options into args (at most max), as "--key[=value]" strings. */
static int read_config(const char *path, const struct option *opts, char **args, int max, int *n)
{
	char line[4096];
	int lineno = 0, rc = 0;
	/* Never blocks on a FIFO, never reads a directory or a device. */
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	struct stat st;
	FILE *f = NULL;

	if (fd >= 0 && (fstat(fd, &st) || !S_ISREG(st.st_mode))) {
		close(fd);
		fd = -1;
		errno = EINVAL;
	}
	if (fd >= 0)
		f = fdopen(fd, "r");
	if (!f) {
		int err = errno;
		char safe[256];

		if (fd >= 0)
			close(fd);
		term_escape(path, (size_t)-1, safe, sizeof(safe));
		fprintf(stderr, "forkhazard: cannot read %s: %s\n", safe,
			err == EINVAL ? "not a regular file" : strerror(err));
		return FH_EXIT_USAGE;
	}
	while (fgets(line, sizeof(line), f)) {
		const struct option *o;
		char *key, *value;
		int b, r;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = file_error(path, lineno, "line too long%s", "");
			break;
		}
		r = config_parse_line(line, &key, &value);
		if (r == 0)
			continue;
		if (r < 0) {
			rc = file_error(path, lineno, "expected 'key = value'%s", "");
			break;
		}
		o = find_opt(opts, key);
		if (!o || !strcmp(key, "config") || !strcmp(key, "help") ||
		    !strcmp(key, "version")) {
			rc = file_error(path, lineno, "unknown key '%s'", key);
			break;
		}
		if (*n == max) {
			rc = file_error(path, lineno, "too many options (at most 256)%s", "");
			break;
		}
		if (o->has_arg == no_argument) {
			b = parse_bool(value);
			if (b < 0) {
				rc = file_error(path, lineno, "'%s' wants yes or no", key);
				break;
			}
			if (!b)
				continue;
			r = asprintf(&args[*n], "--%s", key);
		} else {
			if (!*value) {
				rc = file_error(path, lineno, "'%s' needs a value", key);
				break;
			}
			r = asprintf(&args[*n], "--%s=%s", key, value);
		}
		if (r < 0) {
			rc = file_error(path, lineno, "out of memory%s", "");
			break;
		}
		(*n)++;
	}
	fclose(f);
	return rc;
}

int config_expand_argv(int argc, char **argv, const struct option *opts, int *argc_out,
		       char ***argv_out)
{
	char *strings[FH_CONFIG_MAX_LINES];
	const char *path = NULL;
	int n = 0, rc;

	*argv_out = NULL;
	*argc_out = argc;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--") || argv[i][0] != '-')
			break;
		if (!strncmp(argv[i], "--config=", 9))
			path = argv[i] + 9;
		else if (!strcmp(argv[i], "--config") && i + 1 < argc)
			path = argv[++i];
	}
	if (!path)
		return 0;
	if (!*path)
		return usage("empty configuration file name%s", "");
	rc = read_config(path, opts, strings, FH_CONFIG_MAX_LINES, &n);
	if (rc) {
		while (n)
			free(strings[--n]);
		return rc;
	}
	config_free();
	expanded = calloc((size_t)argc + (size_t)n + 1, sizeof(*expanded));
	if (!expanded) {
		while (n)
			free(strings[--n]);
		return usage("out of memory%s", "");
	}
	expanded[0] = argv[0];
	memcpy(expanded + 1, strings, (size_t)n * sizeof(*strings));
	memcpy(expanded + 1 + n, argv + 1, (size_t)(argc - 1) * sizeof(*argv));
	nexpanded_strings = n;
	*argc_out = argc + n;
	*argv_out = expanded;
	return 0;
}

void config_free(void)
{
	if (!expanded)
		return;
	for (int i = 1; i <= nexpanded_strings; i++)
		free(expanded[i]);
	free(expanded);
	expanded = NULL;
	nexpanded_strings = 0;
}

bool config_filter_match(const char *const *patterns, int n, const char *value)
{
	bool any_include = false, included = false;

	for (int i = 0; i < n; i++) {
		const char *p = patterns[i];

		if (p[0] == '!') {
			if (value && !fnmatch(p + 1, value, 0))
				return false;
			continue;
		}
		any_include = true;
		if (value && !fnmatch(p, value, 0))
			included = true;
	}
	return !any_include || included;
}

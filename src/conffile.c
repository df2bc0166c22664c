// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "config.h"
#include "conffile.h"
#include "escape.h"

static char **expanded;		/* conffile_expand's vector and strings */
static int nexpanded_strings;

int conffile_parse_line(char *line, char **key, char **value)
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
static int read_config(const char *path, conffile_key_fn key_kind, char **args, int max, int *n)
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
		enum conffile_key kind;
		char *key, *value;
		int b, r;

		lineno++;
		if (!strchr(line, '\n') && !feof(f)) {
			rc = file_error(path, lineno, "line too long%s", "");
			break;
		}
		r = conffile_parse_line(line, &key, &value);
		if (r == 0)
			continue;
		if (r < 0) {
			rc = file_error(path, lineno, "expected 'key = value'%s", "");
			break;
		}
		kind = key_kind(key);
		if (kind == CONFFILE_KEY_UNKNOWN) {
			rc = file_error(path, lineno, "unknown key '%s'", key);
			break;
		}
		if (*n == max) {
			rc = file_error(path, lineno, "too many options (at most 256)%s", "");
			break;
		}
		if (kind == CONFFILE_KEY_FLAG) {
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

int conffile_expand(int argc, char **argv, conffile_key_fn key_kind, int *argc_out,
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
	if (!*path) {
		fputs("forkhazard: empty configuration file name (see --help)\n", stderr);
		return FH_EXIT_USAGE;
	}
	rc = read_config(path, key_kind, strings, FH_CONFIG_MAX_LINES, &n);
	if (rc) {
		while (n)
			free(strings[--n]);
		return rc;
	}
	conffile_free();
	expanded = calloc((size_t)argc + (size_t)n + 1, sizeof(*expanded));
	if (!expanded) {
		while (n)
			free(strings[--n]);
		fputs("forkhazard: out of memory\n", stderr);
		return FH_EXIT_USAGE;
	}
	expanded[0] = argv[0];
	memcpy(expanded + 1, strings, (size_t)n * sizeof(*strings));
	memcpy(expanded + 1 + n, argv + 1, (size_t)(argc - 1) * sizeof(*argv));
	nexpanded_strings = n;
	*argc_out = argc + n;
	*argv_out = expanded;
	return 0;
}

void conffile_free(void)
{
	if (!expanded)
		return;
	for (int i = 1; i <= nexpanded_strings; i++)
		free(expanded[i]);
	free(expanded);
	expanded = NULL;
	nexpanded_strings = 0;
}


// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "escape.h"
#include "log.h"
#include "outfile.h"

int log_verbosity = LOG_NOTICE;
static FILE *log_stream;	/* --log-file; NULL: stderr */
static bool log_journal;	/* stderr is the journal: "<N>" prefixes */

void log_msg(enum log_level level, const char *fmt, ...)
{
	/* syslog priorities: err, warning, notice, info, debug */
	static const char journal_prefix[][4] = { "<3>", "<4>", "<5>", "<6>", "<7>" };
	FILE *f = log_stream ? log_stream : stderr;
	va_list ap;

	if ((int)level > log_verbosity)
		return;
	if (log_journal)
		fputs(journal_prefix[level], f);
	else
		fputs("forkhazard: ", f);
	if (level == LOG_WARN)
		fputs("warning: ", f);
	va_start(ap, fmt);
	vfprintf(f, fmt, ap);
	va_end(ap);
	fputc('\n', f);
	if (log_stream)
		fflush(f);
}

int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int need = level == LIBBPF_WARN ? LOG_INFO : LOG_DEBUG;

	if (need > log_verbosity)
		return 0;
	return vfprintf(log_stream ? log_stream : stderr, fmt, ap);
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

static int open_file(const char *path, const char *what, FILE **out)
{
	const char *why;
	char name[256];
	int fd = outfile_open_fd(path, OUTFILE_SERVICE, &why);
	FILE *f = fd >= 0 ? fdopen(fd, "a") : NULL;

	if (!f) {
		int err = fd < 0 ? fd : -errno;

		if (fd >= 0)
			close(fd);
		term_escape(path, (size_t)-1, name, sizeof(name));
		log_error("cannot %s the log file %s: %s", what, name, why ? why : strerror(-err));
		return err;
	}
	setvbuf(f, NULL, _IOLBF, 0);
	*out = f;
	return 0;
}

int log_open_file(const char *path)
{
	if (!path) {
		log_journal = stderr_is_journal();
		return 0;
	}
	return open_file(path, "write", &log_stream);
}

int log_reopen_file(const char *path)
{
	FILE *f = NULL;
	int err;

	if (!path)
		return 0;
	err = open_file(path, "reopen", &f);
	if (err)	/* keep writing to the old one: losing diagnostics is worse */
		return err;
	if (log_stream)
		fclose(log_stream);
	log_stream = f;
	return 0;
}

void log_close_file(void)
{
	FILE *f = log_stream;

	if (!f)
		return;
	log_stream = NULL;
	fclose(f);
}

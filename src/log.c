// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
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

/*
 * One line (prefix, message, end) formatted and written in one write, with
 * what a terminal would act on made visible: control bytes but newlines,
 * DEL, C1 controls and invalid UTF-8 as \xNN. A message can carry what a
 * traced process chose (its executable's path in a -v line, a path libbpf
 * names), and most callers cannot know which of their strings did. Text
 * escaped already passes as it is. One write: a COMMAND shares forkhazard's
 * stderr, and its lines must not interleave with ours byte by byte.
 */
static void write_line(FILE *f, const char *prefix, const char *end, const char *fmt,
		       va_list ap)
{
	char small[1024], line_small[4096], *heap = NULL, *line_heap = NULL;
	const char *msg = small;
	char *line = line_small;
	size_t o, need, fixed = strlen(prefix) + strlen(end) + 1;
	va_list again;
	int n;

	va_copy(again, ap);
	n = vsnprintf(small, sizeof(small), fmt, ap);
	if (n >= (int)sizeof(small)) {
		heap = malloc((size_t)n + 1);
		if (heap) {
			vsnprintf(heap, (size_t)n + 1, fmt, again);
			msg = heap;
		} else {
			n = (int)sizeof(small) - 1;	/* no memory: the message cut short */
		}
	}
	va_end(again);
	if (n < 0)
		n = 0;
	need = fixed + 4 * (size_t)n;	/* at most 4 bytes (\xNN) per byte */
	if (need > sizeof(line_small)) {
		line_heap = malloc(need);
		if (line_heap)
			line = line_heap;
		else
			n = (int)((sizeof(line_small) - fixed) / 4);
	}
	o = (size_t)(stpcpy(line, prefix) - line);
	for (size_t i = 0; i < (size_t)n;) {
		const unsigned char *p = (const unsigned char *)msg + i;
		uint32_t cp;
		size_t len = utf8_valid_len(p, (size_t)n - i, &cp);

		if (len && (cp == '\n' || term_shows(cp))) {
			memcpy(line + o, p, len);
			o += len;
			i += len;
		} else {
			o += (size_t)snprintf(line + o, 5, "\\x%02x", *p);
			i++;
		}
	}
	o = (size_t)(stpcpy(line + o, end) - line);
	fwrite(line, 1, o, f);
	free(line_heap);
	free(heap);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	/* syslog priorities: err, warning, notice, info, debug */
	static const char journal_prefix[][4] = { "<3>", "<4>", "<5>", "<6>", "<7>" };
	FILE *f = log_stream ? log_stream : stderr;
	char prefix[32];
	va_list ap;

	if ((int)level > log_verbosity)
		return;
	snprintf(prefix, sizeof(prefix), "%s%s", log_journal ? journal_prefix[level] : "forkhazard: ",
		 level == LOG_WARN ? "warning: " : "");
	va_start(ap, fmt);
	write_line(f, prefix, "\n", fmt, ap);
	va_end(ap);
	if (log_stream)
		fflush(f);
}

/* libbpf's lines end in their own newline. */
int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int need = level == LIBBPF_WARN ? LOG_INFO : LOG_DEBUG;

	if (need > log_verbosity)
		return 0;
	write_line(log_stream ? log_stream : stderr, "", "", fmt, ap);
	return 0;
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

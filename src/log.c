// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <bpf/libbpf.h>
#include "log.h"

int log_verbosity = LOG_NOTICE;
FILE *log_stream;
bool log_journal;

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

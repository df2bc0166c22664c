// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <bpf/libbpf.h>
#include "log.h"

int log_verbosity = LOG_WARN;

void log_msg(enum log_level level, const char *fmt, ...)
{
	va_list ap;

	if ((int)level > log_verbosity)
		return;
	fputs("forkhazard: ", stderr);
	if (level == LOG_WARN)
		fputs("warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	int need = level == LIBBPF_WARN ? LOG_INFO : LOG_DEBUG;

	if (need > log_verbosity)
		return 0;
	return vfprintf(stderr, fmt, ap);
}

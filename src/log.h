/* SPDX-License-Identifier: GPL-2.0 */
/* Diagnostics on stderr: one line each, prefixed with the tool's name. */
#ifndef FH_LOG_H
#define FH_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <bpf/libbpf.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

extern int log_verbosity;	/* LOG_NOTICE by default; -v: INFO, -vv: DEBUG */
/* Service mode (daemon.c): where lines go (NULL: stderr), and whether they
 * carry the journal's "<N>" priority prefix instead of the tool's name. */
extern FILE *log_stream;
extern bool log_journal;

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libbpf's own messages: shown only at -vv (warnings at -v). */
int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
/* notice: what a service reports of its own accord (the sites' aggregates) */
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

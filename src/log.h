/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Diagnostics: one line each, prefixed with the tool's name, on stderr; in
 * service mode in a log file (--log-file), or with the journal's priority
 * prefixes when stderr is the journal.
 */
#ifndef FH_LOG_H
#define FH_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <bpf/libbpf.h>

enum log_level { LOG_ERROR, LOG_WARN, LOG_NOTICE, LOG_INFO, LOG_DEBUG };

extern int log_verbosity;	/* LOG_NOTICE by default; -v: INFO, -vv: DEBUG */

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* libbpf's own messages: shown only at -vv (warnings at -v). */
int log_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap);

/*
 * Service mode: lines go to path (appended, a safe service file: outfile.h),
 * or, without one, carry the journal's "<N>" priority prefix when stderr is
 * the journal. 0 or -errno (said on stderr).
 */
int log_open_file(const char *path);
/* SIGHUP: the file was rotated; on failure the old one goes on. 0 or -errno. */
int log_reopen_file(const char *path);
void log_close_file(void);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
/* notice: what a service reports of its own accord (the sites' aggregates) */
#define log_notice(...) log_msg(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

#endif

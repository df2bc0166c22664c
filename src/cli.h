/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The command line (and the configuration file, conffile.c) into the one
 * configuration the rest reads (config.h). Every option is one row of the
 * options table in cli.c: its names, its argument, the field it sets, its
 * bounds and its line of --help.
 */
#ifndef FH_CLI_H
#define FH_CLI_H

#include <sys/types.h>
#include "config.h"

/*
 * Parse argv into cfg. Returns -1 to go on, or the status to exit with at
 * once (0 after --help/--version, FH_EXIT_USAGE after a one-line error that
 * has been written to stderr).
 */
int cli_parse(int argc, char **argv, struct fh_config *cfg);

/* Free what cli_parse allocated (the configuration file's strings, which
 * cfg points into): after the last use of cfg. */
void cli_free(void);

/* "forkhazard: " fmt (its %s: arg, terminal-safe) " (see --help)" on stderr.
 * Returns FH_EXIT_USAGE. */
int cli_usage_error(const char *fmt, const char *arg);

/* Parse a decimal number in [min, max]. Returns 0 or -EINVAL. */
int cli_parse_long(const char *s, long min, long max, long *out);

/* Parse a PID argument: a decimal number in [1, 2^22]. Returns 0 or -EINVAL. */
int cli_parse_pid(const char *s, pid_t *pid);

#endif

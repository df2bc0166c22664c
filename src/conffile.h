/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The configuration file (/etc/forkhazard.conf): "key = value" lines, every
 * key a long option (`output = /var/log/forkhazard/events.jsonl` is
 * `--output=...`), so a configuration file is only a command line kept in a
 * file: it is turned into arguments placed before the real ones, which
 * therefore win. What the keys are is the caller's (cli.c's options table).
 */
#ifndef FH_CONFFILE_H
#define FH_CONFFILE_H

#define FH_CONFIG_MAX_LINES	256	/* options one configuration file may set */

/* What a key is: no option, an option without a value (a flag: yes or no
 * in the file), or one with a value. */
enum conffile_key { CONFFILE_KEY_UNKNOWN, CONFFILE_KEY_FLAG, CONFFILE_KEY_VALUE };
typedef enum conffile_key (*conffile_key_fn)(const char *key);

/*
 * If argv names a configuration file (--config FILE or --config=FILE before
 * any "--"), read it and return in *argv_out a new argument vector: argv[0],
 * the file's options as "--key=value", then argv[1..]. Returns 0 (with
 * *argv_out NULL when there is no --config), or FH_EXIT_USAGE after a
 * one-line error naming the file and line.
 */
int conffile_expand(int argc, char **argv, conffile_key_fn key_kind, int *argc_out,
		    char ***argv_out);

/* Free what conffile_expand allocated (the strings a configuration points into). */
void conffile_free(void);

/*
 * Parse one line into key and value (in place; '_' in a key becomes '-').
 * Returns 1 for an option, 0 for a blank or comment line, -1 for a
 * malformed line.
 */
int conffile_parse_line(char *line, char **key, char **value);

#endif

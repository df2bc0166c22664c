// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: bytes as the /proc files forkhazard parses (procfs.c),
 * whatever a process made of its name and its mappings: /proc/PID/stat with
 * a comm holding ")", spaces and newlines; maps lines with any path; status;
 * syscall. Each parser gets the bytes as one NUL-terminated buffer of exactly
 * their size (ASan sees any read past it), and maps gets them line by line,
 * as procfs_for_each_mapping() hands them over.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "procfs.h"

static struct fh_mapping m;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fh_proc_status status;
	struct fh_proc_stat st;
	struct fh_syscall sc;
	char *buf = malloc(size + 1);
	char *line, *next;

	if (!buf)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	procfs_parse_stat(buf, &st);
	procfs_parse_syscall(buf, &sc);
	procfs_parse_status(buf, &status);
	for (line = buf; line; line = next) {
		size_t len;
		char *copy;

		next = strchr(line, '\n');
		len = next ? (size_t)(next - line) + 1 : strlen(line);
		copy = malloc(len + 1);	/* as getline() gives it: newline kept */
		if (!copy)
			break;
		memcpy(copy, line, len);
		copy[len] = '\0';
		if (procfs_parse_maps_line(copy, &m) == 0 && m.end < m.start)
			abort();	/* the parser promises start <= end */
		free(copy);
		if (next)
			next++;
	}
	free(buf);
	return 0;
}

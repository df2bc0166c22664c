// SPDX-License-Identifier: GPL-2.0
#include <string.h>
#include "clib.h"

enum clib_file clib_file_of(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (!strncmp(base, "libc.so", 7) || !strncmp(base, "libc-2.", 7) ||
	    !strncmp(base, "libpthread.so", 13) || !strncmp(base, "libpthread-", 11))
		return CLIB_GLIBC;
	if (!strncmp(base, "ld-musl-", 8) || !strncmp(base, "libc.musl-", 10))
		return CLIB_MUSL;
	if (!strncmp(base, "ld-linux", 8))
		return CLIB_LOADER;
	return CLIB_NONE;
}

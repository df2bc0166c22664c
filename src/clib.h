/* SPDX-License-Identifier: GPL-2.0 */
/*
 * C library files, known by their names: where lock probes go (probes.c),
 * and the frames that never name a hazard site, since every program has
 * them (siteid.c). A static executable carries its C library inside: that
 * is told from its symbols, not here.
 */
#ifndef FH_CLIB_H
#define FH_CLIB_H

enum clib_file {
	CLIB_NONE,
	CLIB_GLIBC,	/* libc.so.6, libc-2.NN.so, libpthread.so.0, libpthread-2.NN.so */
	CLIB_MUSL,	/* ld-musl-ARCH.so.1 (musl's loader is its libc), libc.musl-ARCH.so.1 */
	CLIB_LOADER,	/* glibc's dynamic loader, ld-linux*.so.N: no lock functions */
};

/* What the file at path (its base name) is. */
enum clib_file clib_file_of(const char *path);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where glibc keeps a thread's thread-specific data (pthread_setspecific) and
 * its TID, relative to the thread pointer (x86-64: the fs base, which is also
 * the pthread_t): what a BPF program needs to find an interpreter's
 * per-thread state from the current task alone, and what turns a pthread_t
 * into a TID. Learnt from the very libc a process maps: its
 * pthread_getspecific is decoded (Capstone), its libthread_db descriptor
 * _thread_db_pthread_tid read. glibc on x86-64 only; musl keeps TSD behind a
 * pointer and is not covered.
 */
#ifndef FH_LIBCTHREAD_H
#define FH_LIBCTHREAD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct libc_thread {
	/* key k < tsd_keys: its value is the 8 bytes at
	 * thread pointer + tsd_offset + k * tsd_stride */
	uint32_t tsd_offset;
	uint32_t tsd_stride;
	uint32_t tsd_keys;
	int32_t tid_offset;	/* struct pthread's tid (int); -1: not known */
	/* struct pthread's start_routine (the function pthread_create was
	 * given; NULL in the main thread); -1: not known */
	int32_t start_routine_offset;
};

/*
 * Decode pthread_getspecific's code[0..len) (its whole body): the first-level
 * lookup of a key, `thread pointer + key * stride + offset`, followed along
 * the path where the key is below the first block's bound. Pure. Returns 0
 * and fills tsd_* in *t, or -ENOENT when the code does not have that shape.
 */
int libcthread_decode_getspecific(const uint8_t *code, size_t len, struct libc_thread *t);

/*
 * The same for process pid, from the libc it maps (or its own executable
 * when glibc is linked in statically). Returns 0, -ENOENT (no glibc found or
 * its code not understood), or -errno.
 */
int libcthread_of_process(pid_t pid, struct libc_thread *t);

#endif

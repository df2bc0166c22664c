// SPDX-License-Identifier: GPL-2.0
/*
 * libcthread.c: glibc's TSD slot and TID offsets, decoded from
 * pthread_getspecific's code: recorded bytes of glibc 2.36 (Debian 12), the
 * shape older releases have, code that must not be taken for it, and this
 * very process's libc, checked against what its own threads store.
 */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <unistd.h>
#include "libcthread.h"
#include "unit.h"

#define CODE(...) ((const uint8_t[]){ __VA_ARGS__ })
#define DECODE(t, ...) libcthread_decode_getspecific(CODE(__VA_ARGS__), \
						       sizeof(CODE(__VA_ARGS__)), t)

UNIT_TEST(glibc_236_recorded)
{
	struct libc_thread t;

	/* cmp $0x1f,%edi; ja; mov %edi,%eax; add $0x31,%rax; shl $4,%rax;
	 * add %fs:0x10,%rax; mov 0x8(%rax),%rdx; ... (the whole function) */
	CHECK_INT(DECODE(&t,
		0x83, 0xff, 0x1f, 0x77, 0x3b, 0x89, 0xf8, 0x48, 0x83, 0xc0, 0x31, 0x48, 0xc1, 0xe0,
		0x04, 0x64, 0x48, 0x03, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x50, 0x08,
		0x48, 0x85, 0xd2, 0x74, 0x57, 0x89, 0xff, 0x48, 0x8d, 0x0d, 0x56, 0xaf, 0x14, 0x00,
		0x48, 0x8b, 0x30, 0x48, 0xc1, 0xe7, 0x04, 0x48, 0x39, 0x34, 0x39, 0x75, 0x39, 0x48,
		0x89, 0xd0, 0xc3, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x81, 0xff, 0xff, 0x03, 0x00, 0x00,
		0x77, 0x30, 0x89, 0xfa, 0x89, 0xf8, 0x83, 0xe2, 0x1f, 0xc1, 0xe8, 0x05, 0x64, 0x48,
		0x8b, 0x04, 0xc5, 0x10, 0x05, 0x00, 0x00, 0x48, 0x85, 0xc0, 0x74, 0x18, 0x48, 0xc1,
		0xe2, 0x04, 0x48, 0x01, 0xd0, 0xeb, 0xaf, 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00,
		0x48, 0xc7, 0x40, 0x08, 0x00, 0x00, 0x00, 0x00, 0x31, 0xd2, 0xeb, 0xbb), 0);
	CHECK_INT(t.tsd_offset, 0x318);
	CHECK_INT(t.tsd_stride, 16);
	CHECK_INT(t.tsd_keys, 32);
}

UNIT_TEST(thread_pointer_loaded_first)
{
	struct libc_thread t;

	/* cmp $0x1f,%edi; ja; mov %edi,%eax; add $0x31,%rax; shl $4,%rax;
	 * mov %fs:0x10,%rdx; mov 0x8(%rdx,%rax,1),%rax; ret */
	CHECK_INT(DECODE(&t, 0x83, 0xff, 0x1f, 0x77, 0x10, 0x89, 0xf8, 0x48, 0x83, 0xc0, 0x31,
			 0x48, 0xc1, 0xe0, 0x04, 0x64, 0x48, 0x8b, 0x14, 0x25, 0x10, 0x00, 0x00,
			 0x00, 0x48, 0x8b, 0x44, 0x02, 0x08, 0xc3), 0);
	CHECK_INT(t.tsd_offset, 0x318);
	CHECK_INT(t.tsd_stride, 16);
	CHECK_INT(t.tsd_keys, 32);
}

UNIT_TEST(musl_shape_is_not_understood)
{
	struct libc_thread t;

	/* mov %fs:0,%rax; mov 0x80(%rax),%rax; mov (%rax,%rdi,8),%rax; ret:
	 * TSD behind a pointer, no bound checked */
	CHECK_INT(DECODE(&t, 0x64, 0x48, 0x8b, 0x04, 0x25, 0x00, 0x00, 0x00, 0x00, 0x48, 0x8b,
			 0x80, 0x80, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x04, 0xf8, 0xc3), -ENOENT);
}

UNIT_TEST(unbounded_or_foreign_code_is_not_understood)
{
	struct libc_thread t;

	/* the same lookup without the key's bound check */
	CHECK_INT(DECODE(&t, 0x89, 0xf8, 0x48, 0x83, 0xc0, 0x31, 0x48, 0xc1, 0xe0, 0x04, 0x64,
			 0x48, 0x03, 0x04, 0x25, 0x10, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x50, 0x08,
			 0xc3), -ENOENT);
	/* a call before any load */
	CHECK_INT(DECODE(&t, 0x83, 0xff, 0x1f, 0x77, 0x10, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc3),
		  -ENOENT);
	/* nothing, and not code */
	CHECK_INT(libcthread_decode_getspecific(NULL, 0, &t), -ENOENT);
	CHECK_INT(DECODE(&t, 0xff, 0xff, 0xff, 0xff, 0x0f, 0x0b), -ENOENT);
}

struct other {
	pthread_key_t key;
	pthread_barrier_t stored, read;
	int tid;
};

static void *store(void *arg)
{
	struct other *o = arg;

	pthread_setspecific(o->key, (void *)0x5eed);
	o->tid = gettid();
	pthread_barrier_wait(&o->stored);
	pthread_barrier_wait(&o->read);	/* alive while it is looked at */
	return NULL;
}

/* This process's own libc: what it decodes to is where its threads' values are. */
UNIT_TEST(this_process_libc)
{
	struct libc_thread t;
	pthread_key_t keys[3];
	const char *self;

	CHECK_INT(libcthread_of_process(getpid(), &t), 0);
	CHECK(t.tsd_stride >= 16 && t.tsd_keys >= 32);
	for (int i = 0; i < 3; i++) {
		CHECK_INT(pthread_key_create(&keys[i], NULL), 0);
		CHECK(keys[i] < t.tsd_keys);
		CHECK_INT(pthread_setspecific(keys[i], (void *)(uintptr_t)(0x1000 + i)), 0);
	}
	self = (const char *)(uintptr_t)pthread_self();
	for (int i = 0; i < 3; i++) {
		uint64_t v;

		memcpy(&v, self + t.tsd_offset + keys[i] * t.tsd_stride, sizeof(v));
		CHECK_INT(v, 0x1000 + i);
	}
	CHECK(t.tid_offset > 0);
	CHECK_INT(*(const int *)(self + t.tid_offset), gettid());
	for (int i = 0; i < 3; i++)
		pthread_key_delete(keys[i]);
}

/* And another, live thread's, through its pthread_t alone. */
UNIT_TEST(another_thread_by_its_pthread_t)
{
	struct libc_thread t;
	struct other o;
	void *(*start)(void *);
	pthread_t th;
	uint64_t v;
	int tid;

	CHECK_INT(libcthread_of_process(getpid(), &t), 0);
	CHECK_INT(pthread_key_create(&o.key, NULL), 0);
	pthread_barrier_init(&o.stored, NULL, 2);
	pthread_barrier_init(&o.read, NULL, 2);
	CHECK_INT(pthread_create(&th, NULL, store, &o), 0);
	pthread_barrier_wait(&o.stored);
	memcpy(&v, (const char *)(uintptr_t)th + t.tsd_offset + o.key * t.tsd_stride, sizeof(v));
	memcpy(&tid, (const char *)(uintptr_t)th + t.tid_offset, sizeof(tid));
	memcpy(&start, (const char *)(uintptr_t)th + t.start_routine_offset, sizeof(start));
	pthread_barrier_wait(&o.read);
	pthread_join(th, NULL);
	pthread_key_delete(o.key);
	pthread_barrier_destroy(&o.stored);
	pthread_barrier_destroy(&o.read);
	CHECK_INT(v, 0x5eed);
	CHECK_INT(tid, o.tid);
	/* what the thread was started with, the descriptor's start_routine
	 * (under ASan, the sanitizer's own trampoline, which calls store) */
	CHECK(t.start_routine_offset > 0);
#if defined(__SANITIZE_ADDRESS__)
	{
		Dl_info dl;

		CHECK(dladdr((void *)start, &dl) && dl.dli_fname && strstr(dl.dli_fname, "asan"));
	}
#else
	CHECK(start == (void *(*)(void *))store);
#endif
}

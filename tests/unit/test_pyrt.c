// SPDX-License-Identifier: GPL-2.0
/*
 * pyrt.c against a fake CPython: this test program poses as CPython 3.12.1
 * (it defines _PyRuntime, Py_Version and the type objects pyrt looks for, so
 * pyrt finds "an executable exporting _PyRuntime" when it reads this very
 * process) and lays out, in its own memory, interpreter, thread state,
 * frames, code objects, strings and dicts with the 3.12 offsets of the
 * generated table. Then it breaks them: cycles, lengths of 2**60, wrong
 * types, garbage and random bytes. Every read must end, bounded, without a
 * crash (ASan and valgrind run this too).
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <sys/wait.h>
#include <unistd.h>
#include "pyrt.h"
#include "pyrt_layouts.h"
#include "unit.h"

/* ---- the fake interpreter's symbols ---------------------------------------------- */

const uint32_t Py_Version = 0x030c01f0;		/* 3.12.1 final */
uint64_t _PyRuntime[512];
uint64_t PyCode_Type[64], PyUnicode_Type[64], PyBytes_Type[64], PyDict_Type[64];
uint64_t PyLong_Type[64], PyModule_Type[64], PyFrame_Type[64];

static uint8_t arena[1 << 17] __attribute__((aligned(16)));
static size_t used;
static const struct pyrt_offsets *L;

static uint64_t alloc(size_t n)
{
	uint64_t a = (uint64_t)(uintptr_t)&arena[used];

	used += (n + 15) & ~(size_t)15;
	if (used > sizeof(arena))
		abort();
	memset((void *)(uintptr_t)a, 0, n);
	return a;
}

static void put64(uint64_t obj, int32_t off, uint64_t v)
{
	memcpy((void *)(uintptr_t)(obj + (uint64_t)(int64_t)off), &v, sizeof(v));
}

static void put32(uint64_t obj, int32_t off, uint32_t v)
{
	memcpy((void *)(uintptr_t)(obj + (uint64_t)(int64_t)off), &v, sizeof(v));
}

static uint64_t get64(uint64_t obj, int32_t off)
{
	uint64_t v;

	memcpy(&v, (void *)(uintptr_t)(obj + (uint64_t)(int64_t)off), sizeof(v));
	return v;
}

#define ADDR(x) ((uint64_t)(uintptr_t)(x))

static uint64_t mk_str(const char *s)
{
	size_t len = strlen(s);
	uint64_t o = alloc((size_t)L->unicode_ascii_size + len + 1);
	uint32_t kind1 = (uint32_t)L->unicode_kind_mask & ~((uint32_t)L->unicode_kind_mask << 1);

	put64(o, L->object_type, ADDR(PyUnicode_Type));
	put64(o, L->unicode_length, len);
	put32(o, L->unicode_state, (uint32_t)L->unicode_compact_mask |
	      (uint32_t)L->unicode_ascii_mask | kind1);
	memcpy((void *)(uintptr_t)(o + (uint64_t)L->unicode_ascii_size), s, len);
	return o;
}

static uint64_t mk_bytes(const void *data, size_t len)
{
	uint64_t o = alloc((size_t)L->bytes_data + len + 1);

	put64(o, L->object_type, ADDR(PyBytes_Type));
	put64(o, L->var_size, len);
	memcpy((void *)(uintptr_t)(o + (uint64_t)L->bytes_data), data, len);
	return o;
}

/* 3.12 locations: two entries of 2 code units, lines first and first + 2 */
#define TABLE		"\xe9\x00\xe9\x04"
#define NUNITS		4

static uint64_t mk_code(const char *file, const char *qualname, int firstlineno)
{
	uint64_t o = alloc((size_t)L->code_adaptive + NUNITS * 2);

	put64(o, L->object_type, ADDR(PyCode_Type));
	put64(o, L->var_size, NUNITS);
	put64(o, L->code_filename, mk_str(file));
	put64(o, L->code_name, mk_str(qualname));
	put64(o, L->code_qualname, mk_str(qualname));
	put64(o, L->code_linetable, mk_bytes(TABLE, 4));
	put32(o, L->code_firstlineno, (uint32_t)firstlineno);
	put32(o, L->code_firsttraceable, 0);
	return o;
}

static uint64_t instr_at(uint64_t code, int unit)
{
	return code + (uint64_t)L->code_adaptive + 2 * (uint64_t)unit;
}

/* A dict of n entries (3.12 keys: 8 slots, 1-byte indices). */
static uint64_t mk_dict(int n, const uint64_t *keys, const uint64_t *values, bool unicode)
{
	int esize = unicode ? L->keys_unicode_entry_size : L->keys_entry_size;
	uint64_t k = alloc((size_t)L->keys_indices + 8 + 8 * (size_t)esize);
	uint64_t d = alloc((size_t)L->dict_values + 8);
	uint64_t ent = k + (uint64_t)L->keys_indices + 8;

	((uint8_t *)(uintptr_t)k)[L->keys_log2_size] = 3;
	((uint8_t *)(uintptr_t)k)[L->keys_log2_index_bytes] = 3;
	((uint8_t *)(uintptr_t)k)[L->keys_kind] = unicode ? 1 : (uint8_t)L->keys_kind_general;
	put64(k, L->keys_nentries, (uint64_t)n);
	for (int i = 0; i < n; i++) {
		uint64_t e = ent + (uint64_t)(i * esize);

		put64(e, unicode ? 0 : 8, keys[i]);
		put64(e, unicode ? 8 : 16, values[i]);
	}
	put64(d, L->object_type, ADDR(PyDict_Type));
	put64(d, L->dict_used, (uint64_t)n);
	put64(d, L->dict_keys, k);
	return d;
}

static uint64_t mk_int(uint64_t v)
{
	uint64_t o = alloc((size_t)L->long_digits + 12);
	int n = 0;

	put64(o, L->object_type, ADDR(PyLong_Type));
	for (; v; v >>= L->long_shift, n++)
		put32(o, L->long_digits + 4 * n, (uint32_t)(v & ((1u << L->long_shift) - 1)));
	put64(o, L->long_tag, (uint64_t)n << 3);
	return o;
}

/* A Thread object whose _name lives in 3.12 managed values (no dict). */
static uint64_t mk_thread(const char *name)
{
	uint64_t type = alloc((size_t)L->type_cached_keys + 8);
	uint64_t keys = mk_dict(1, (uint64_t[]){ mk_str("_name") }, (uint64_t[]){ 0 }, true);
	uint64_t values = alloc(16);
	uint64_t obj = alloc(64) + 32;	/* room for the pre-header */

	put64(type, L->type_flags, (uint64_t)L->tpflag_managed_dict);
	put64(type, L->type_basicsize, 16);
	put64(type, L->type_dictoffset, (uint64_t)-1);
	/* split keys: mk_dict made a dict around them, the keys are what count */
	put64(type, L->type_cached_keys, get64(keys, L->dict_keys));
	put64(values, 0, mk_str(name));
	put64(obj, L->object_type, type);
	put64(obj, L->managed_dict, values - 1);	/* PyDictOrValues: values, tagged */
	return obj;
}

static struct fake {
	uint64_t interp, tstate, cframe, f1, shim, f2, code_a, code_b, thread, active;
} F;

static void build(void)
{
	uint64_t modules, module, mdict;

	if (L)
		return;
	for (int i = 0; i < pyrt_nlayouts; i++)
		if (pyrt_layouts[i].minor == 12)
			L = &pyrt_layouts[i];
	if (!L)
		abort();
	F.interp = alloc(2048);
	F.tstate = alloc(512);
	F.cframe = alloc(64);
	F.f1 = alloc(128);
	F.shim = alloc(128);
	F.f2 = alloc(128);
	F.code_a = mk_code("/venv/lib/python3.12/site-packages/app/a.py", "Worker.step", 40);
	F.code_b = mk_code("main.py", "<module>", 1);

	put64(ADDR(_PyRuntime), L->runtime_interpreters_head, F.interp);
	put64(F.interp, L->interp_threads_head, F.tstate);
	put64(F.tstate, L->tstate_interp, F.interp);
	put64(F.tstate, L->tstate_thread_id, (uint64_t)pthread_self());
	put64(F.tstate, L->tstate_native_thread_id, (uint64_t)gettid());
	put64(F.tstate, L->tstate_frame, F.cframe);
	put64(F.cframe, L->cframe_current_frame, F.f1);
	/* f1 (a.py:42) -> a C-stack shim -> f2 (main.py:1) */
	put64(F.f1, L->frame_code, F.code_a);
	put64(F.f1, L->frame_instr, instr_at(F.code_a, 2));
	put64(F.f1, L->frame_previous, F.shim);
	((uint8_t *)(uintptr_t)F.shim)[L->frame_owner] = (uint8_t)L->frame_owner_cstack;
	put64(F.shim, L->frame_code, 0xdeadbeef);
	put64(F.shim, L->frame_previous, F.f2);
	put64(F.f2, L->frame_code, F.code_b);
	put64(F.f2, L->frame_instr, instr_at(F.code_b, 0));

	/* sys.modules["threading"]._active = {pthread_self(): Thread(name="fake-main")} */
	F.thread = mk_thread("fake-main");
	F.active = mk_dict(1, (uint64_t[]){ mk_int((uint64_t)pthread_self()) },
			   (uint64_t[]){ F.thread }, false);
	mdict = mk_dict(2, (uint64_t[]){ mk_str("_limbo"), mk_str("_active") },
			(uint64_t[]){ F.active, F.active }, true);
	module = alloc(64);
	put64(module, L->object_type, ADDR(PyModule_Type));
	put64(module, L->module_dict, mdict);
	modules = mk_dict(2, (uint64_t[]){ mk_str("sys"), mk_str("threading") },
			  (uint64_t[]){ module, module }, true);
	put64(F.interp, L->interp_modules, modules);
}

static struct pyrt *fresh(void)
{
	build();
	return pyrt_new(NULL);
}

/* ---- reading it as it is ----------------------------------------------------------- */

UNIT_TEST(fake_python_is_found)
{
	struct pyrt *r = fresh();
	struct pyrt_info info;

	CHECK_INT(pyrt_open(r, getpid(), &info), 0);
	CHECK_INT(info.minor, 12);
	CHECK_INT(info.micro, 1);
	CHECK(info.runtime == ADDR(_PyRuntime));
	CHECK(!info.debug_offsets);
	pyrt_free(r);
}

UNIT_TEST(fake_stack_skips_the_shim)
{
	struct pyrt *r = fresh();
	struct pyrt_frame f[8];

	CHECK_INT(pyrt_thread_stack(r, getpid(), gettid(), f, 8), 2);
	CHECK_STR(f[0].function, "Worker.step");
	CHECK_STR(f[0].file, "/venv/lib/python3.12/site-packages/app/a.py");
	CHECK_INT(f[0].line, 42);
	CHECK_STR(f[1].function, "<module>");
	CHECK_INT(f[1].line, 1);
	/* another TID has no thread state */
	CHECK_INT(pyrt_thread_stack(r, getpid(), 1, f, 8), -ENOENT);
	pyrt_free(r);
}

UNIT_TEST(fake_thread_name)
{
	struct pyrt *r = fresh();
	char name[64];

	CHECK_INT(pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name)), 0);
	CHECK_STR(name, "fake-main");
	CHECK_INT(pyrt_thread_name_by_ident(r, getpid(), (uint64_t)pthread_self(), name,
					    sizeof(name)), 0);
	CHECK_STR(name, "fake-main");
	CHECK_INT(pyrt_thread_name(r, getpid(), 1, name, sizeof(name)), -ENOENT);
	pyrt_free(r);
}

UNIT_TEST(fake_layout_finds_the_thread_state)
{
	struct pyrt *r = fresh();
	struct fh_py_layout l;
	pthread_key_t key;
	uint64_t ts;

	/* not initialized yet: no key */
	put32(ADDR(_PyRuntime), L->runtime_tss + L->tss_initialized, 0);
	CHECK_INT(pyrt_layout(r, getpid(), &l), -EAGAIN);
	CHECK_INT(pthread_key_create(&key, NULL), 0);
	CHECK_INT(pthread_setspecific(key, (void *)(uintptr_t)F.tstate), 0);
	put32(ADDR(_PyRuntime), L->runtime_tss + L->tss_initialized, 1);
	put32(ADDR(_PyRuntime), L->runtime_tss + L->tss_key, key);
	CHECK_INT(pyrt_layout(r, getpid(), &l), 0);
	CHECK_INT(l.version, 0x030c);
	CHECK_INT(l.tss_key, key);
	/* the kernel's first step, done here on our own thread pointer */
	memcpy(&ts, (const char *)(uintptr_t)pthread_self() + l.tsd_offset +
	       (uint64_t)l.tss_key * l.tsd_stride, sizeof(ts));
	CHECK(ts == F.tstate);
	CHECK(get64(ts, l.tstate_thread_id) == (uint64_t)pthread_self());
	CHECK_INT(l.frame_instr_size, 8);
	CHECK_INT(l.frame_owner_cstack, 3);
	pthread_key_delete(key);
	pyrt_free(r);
}

/* ---- the code cache ------------------------------------------------------------------ */

UNIT_TEST(code_cache_is_bounded_and_checked)
{
	struct pyrt_limits lim = { .max_codes = 4 };
	struct pyrt *r;
	struct pyrt_stats st;
	struct pyrt_frame f;
	uint64_t codes[10], old;

	build();
	r = pyrt_new(&lim);
	for (int i = 0; i < 10; i++) {
		char name[16];

		snprintf(name, sizeof(name), "f%d", i);
		codes[i] = mk_code("c.py", name, 10 * i + 1);
	}
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 10; i++) {
			CHECK_INT(pyrt_resolve(r, getpid(), codes[i], instr_at(codes[i], 3), &f), 0);
			CHECK_INT(f.line, 10 * i + 3);
		}
	CHECK_INT(pyrt_resolve(r, getpid(), codes[9], instr_at(codes[9], 0), &f), 0);
	pyrt_get_stats(r, &st);
	CHECK_INT(st.code_misses, 20);
	CHECK_INT(st.code_evicted, 16);
	CHECK_INT(st.code_hits, 1);
	/* another code object at the same address: read again */
	old = get64(codes[9], L->code_qualname);
	put64(codes[9], L->code_qualname, mk_str("g9"));
	CHECK_INT(pyrt_resolve(r, getpid(), codes[9], instr_at(codes[9], 0), &f), 0);
	CHECK_STR(f.function, "g9");
	pyrt_get_stats(r, &st);
	CHECK_INT(st.code_replaced, 1);
	put64(codes[9], L->code_qualname, old);
	pyrt_free(r);
}

/* ---- broken ---------------------------------------------------------------------------- */

UNIT_TEST(frame_cycle_ends)
{
	struct pyrt *r = fresh();
	struct pyrt_frame *f = calloc(PYRT_MAX_DEPTH + 8, sizeof(*f));
	int n;

	put64(F.f2, L->frame_previous, F.f1);	/* f1 -> shim -> f2 -> f1 ... */
	n = pyrt_thread_stack(r, getpid(), gettid(), f, PYRT_MAX_DEPTH + 8);
	put64(F.f2, L->frame_previous, 0);
	free(f);
	pyrt_free(r);
	CHECK(n > 2 && n <= PYRT_MAX_DEPTH);
}

UNIT_TEST(thread_state_cycle_ends)
{
	struct pyrt *r = fresh();
	struct pyrt_frame f[4];
	char name[32];

	put64(F.tstate, L->tstate_next, F.tstate);
	CHECK_INT(pyrt_thread_stack(r, getpid(), 1, f, 4), -ENOENT);
	CHECK_INT(pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name)), 0);
	put64(F.tstate, L->tstate_next, 0);
	/* a thread state of another interpreter in this one's list */
	put64(F.tstate, L->tstate_interp, F.interp + 8);
	CHECK(pyrt_thread_stack(r, getpid(), gettid(), f, 4) < 0);
	put64(F.tstate, L->tstate_interp, F.interp);
	pyrt_free(r);
}

UNIT_TEST(lengths_of_two_to_the_sixty)
{
	struct pyrt *r = fresh();
	uint64_t code = mk_code("x.py", "long", 7);
	uint64_t file = get64(code, L->code_filename), table = get64(code, L->code_linetable);
	struct pyrt_frame f;

	put64(file, L->unicode_length, 1ULL << 60);
	put64(table, L->var_size, 1ULL << 60);
	CHECK_INT(pyrt_resolve(r, getpid(), code, instr_at(code, 2), &f), 0);
	CHECK(strlen(f.file) < PYRT_FILE_LEN);
	CHECK(!strncmp(f.file, "x.py", 4));
	CHECK_INT(f.line, 0);	/* the table was not believed */
	/* a negative length */
	put64(file, L->unicode_length, (uint64_t)-5);
	pyrt_forget(r, getpid());
	CHECK(pyrt_resolve(r, getpid(), code, instr_at(code, 2), &f) < 0);
	pyrt_free(r);
}

UNIT_TEST(wrong_types_are_not_believed)
{
	struct pyrt *r = fresh();
	uint64_t code = mk_code("y.py", "typed", 3);
	struct pyrt_frame f;

	/* a code object that is not one */
	put64(code, L->object_type, ADDR(PyBytes_Type));
	CHECK_INT(pyrt_resolve(r, getpid(), code, instr_at(code, 0), &f), -EINVAL);
	put64(code, L->object_type, ADDR(PyCode_Type));
	/* its name not a str */
	put64(get64(code, L->code_qualname), L->object_type, ADDR(PyLong_Type));
	CHECK(pyrt_resolve(r, getpid(), code, instr_at(code, 0), &f) < 0);
	/* a str of a kind that does not exist */
	put64(get64(code, L->code_qualname), L->object_type, ADDR(PyUnicode_Type));
	put32(get64(code, L->code_qualname), L->unicode_state,
	      (uint32_t)L->unicode_compact_mask | (3u << __builtin_ctz((unsigned)L->unicode_kind_mask)));
	CHECK(pyrt_resolve(r, getpid(), code, instr_at(code, 0), &f) < 0);
	pyrt_free(r);
}

UNIT_TEST(garbage_addresses)
{
	static const uint64_t bad[] = { 0, 1, 8, 0xfff, 0xffffffffffffffffULL,
					0xffff888000000000ULL, 0x7ffffffffff8ULL, 0x800000000000ULL };
	struct pyrt *r = fresh();
	struct pyrt_frame f;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK(pyrt_resolve(r, getpid(), bad[i], bad[i], &f) < 0);
	CHECK(pyrt_resolve(r, getpid(), F.code_a + 1, 0, &f) < 0);	/* unaligned */
	CHECK(pyrt_resolve(r, getpid(), ADDR(&used), 0, &f) < 0);	/* not an object */
	/* an instruction outside its code: no line, the frame still named */
	CHECK_INT(pyrt_resolve(r, getpid(), F.code_a, instr_at(F.code_a, 1000), &f), 0);
	CHECK_INT(f.line, 0);
	CHECK_STR(f.function, "Worker.step");
	pyrt_free(r);
}

UNIT_TEST(broken_dicts_leave_names_unknown)
{
	struct pyrt *r = fresh();
	uint64_t keys = get64(F.active, L->dict_keys);
	uint64_t n = get64(keys, L->keys_nentries);
	char name[32];

	put64(keys, L->keys_nentries, 1ULL << 40);
	CHECK(pyrt_refresh_threads(r, getpid()) < 0);
	CHECK_INT(pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name)), -ENOENT);
	put64(keys, L->keys_nentries, (uint64_t)-1);
	CHECK(pyrt_refresh_threads(r, getpid()) < 0);
	put64(keys, L->keys_nentries, n);
	((uint8_t *)(uintptr_t)keys)[L->keys_log2_index_bytes] = 200;
	CHECK(pyrt_refresh_threads(r, getpid()) < 0);
	((uint8_t *)(uintptr_t)keys)[L->keys_log2_index_bytes] = 3;
	CHECK_INT(pyrt_refresh_threads(r, getpid()), 0);
	CHECK_INT(pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name)), 0);
	CHECK_STR(name, "fake-main");
	pyrt_free(r);
}

/* Random bytes where the frames, thread states and dicts are: many rounds,
 * each must end. */
UNIT_TEST(random_memory_fuzz)
{
	static uint8_t junk[8192] __attribute__((aligned(16)));
	struct pyrt_frame *f = calloc(16, sizeof(*f));
	unsigned int seed = 4242;
	uint64_t saved[3];
	struct pyrt *r;
	char name[32];

	build();
	r = pyrt_new(NULL);
	saved[0] = get64(F.f1, L->frame_previous);
	saved[1] = get64(F.tstate, L->tstate_next);
	saved[2] = get64(F.interp, L->interp_modules);
	for (int round = 0; round < 300; round++) {
		for (size_t i = 0; i < sizeof(junk); i++) {
			/* pointers back into the junk half of the time */
			if (i % 8 == 0 && rand_r(&seed) % 2) {
				uint64_t p = ADDR(junk) + (uint64_t)(rand_r(&seed) % (int)sizeof(junk));

				if (rand_r(&seed) % 2)
					p &= ~7ULL;
				memcpy(&junk[i], &p, 8);
				i += 7;
			} else {
				junk[i] = (uint8_t)rand_r(&seed);
			}
		}
		put64(F.f1, L->frame_previous, ADDR(junk) + (uint64_t)(rand_r(&seed) % 4096));
		put64(F.tstate, L->tstate_next, ADDR(junk) + (uint64_t)((rand_r(&seed) % 512) * 8));
		put64(F.interp, L->interp_modules, ADDR(junk) + (uint64_t)((rand_r(&seed) % 512) * 8));
		pyrt_forget(r, getpid());
		(void)pyrt_thread_stack(r, getpid(), gettid(), f, 16);
		(void)pyrt_thread_stack(r, getpid(), 1, f, 16);
		(void)pyrt_refresh_threads(r, getpid());
		(void)pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name));
		(void)pyrt_resolve(r, getpid(), ADDR(junk) + (uint64_t)(rand_r(&seed) % 4096) * 2,
				   ADDR(junk), &f[0]);
	}
	put64(F.f1, L->frame_previous, saved[0]);
	put64(F.tstate, L->tstate_next, saved[1]);
	put64(F.interp, L->interp_modules, saved[2]);
	free(f);
	/* and it all still reads right */
	pyrt_forget(r, getpid());
	CHECK_INT(pyrt_thread_name(r, getpid(), gettid(), name, sizeof(name)), 0);
	CHECK_STR(name, "fake-main");
	pyrt_free(r);
}

/* ---- processes that are not Python, or gone ------------------------------------------------ */

UNIT_TEST(not_python_and_gone)
{
	struct pyrt *r = pyrt_new(NULL);
	struct pyrt_frame f;
	pid_t child = fork();
	int status;

	if (child == 0) {
		pause();
		_exit(0);
	}
	/* the forked copy poses as Python too: exec something that does not */
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	CHECK_INT(pyrt_open(r, child, NULL), -ESRCH);
	CHECK_INT(pyrt_resolve(r, child, F.code_a, 0, &f), -ESRCH);
	child = fork();
	if (child == 0) {
		execl("/bin/sleep", "sleep", "10", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {	/* until it is sleep, not our copy */
		char exe[64] = "";
		char link[64];

		snprintf(link, sizeof(link), "/proc/%d/exe", (int)child);
		if (readlink(link, exe, sizeof(exe) - 1) > 0 && strstr(exe, "sleep"))
			break;
		usleep(5000);
	}
	pyrt_forget(r, child);
	CHECK_INT(pyrt_open(r, child, NULL), -ENOENT);
	kill(child, SIGKILL);
	waitpid(child, &status, 0);
	pyrt_free(r);
}

// SPDX-License-Identifier: GPL-2.0
/* siteid.c: which site an occurrence belongs to, from frames alone. */
#include "siteid.h"
#include "symbolize.h"
#include "unit.h"

static struct fh_frame frames[4];

/* A frame in module (build-id bid, or "" for none) at module offset off. */
static struct fh_frame *frame(struct fh_frame *f, const char *module, const char *bid,
			      uint64_t off, uint64_t load)
{
	memset(f, 0, sizeof(*f));
	f->has_module = true;
	f->known = true;
	snprintf(f->module, sizeof(f->module), "%s", module);
	snprintf(f->build_id, sizeof(f->build_id), "%s", bid);
	snprintf(f->symbol, sizeof(f->symbol), "fn_%llx", (unsigned long long)off);
	f->module_offset = off;
	f->offset = off & 0xf;
	f->addr = load + off;
	return f;
}

/* A hazard of /usr/bin/app: locks taken at lock_offs (n), fork called from
 * app at fork_off (below libc's frames), all loaded at `load` (ASLR). */
static uint64_t hazard_id(struct siteid *t, const uint64_t *lock_offs, int n, uint64_t fork_off,
			  uint64_t load, bool cfi, struct siteid_key *k)
{
	struct fh_frame f;

	siteid_begin(k, SITE_HAZARD, "app", "/usr/bin/app", "app-worker\0\0\0\0\0");
	for (int i = 0; i < n; i++)
		siteid_lock(k, 1, frame(&f, "/usr/bin/app", "abcd", lock_offs[i], load));
	frame(&frames[0], "/usr/lib/x86_64-linux-gnu/libc.so.6", "c0c0", 0x1000, 0x7f0000);
	frame(&frames[1], "/usr/bin/app", "abcd", fork_off, load);
	frame(&frames[2], "/usr/bin/app", "abcd", 0x50, load);
	siteid_finish(t, k, frames, 3, cfi);
	return k->d.id;
}

UNIT_TEST(same_site_whatever_the_load_address_and_lock_order)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	const uint64_t ab[] = { 0x100, 0x200 }, ba[] = { 0x200, 0x100, 0x200 };
	uint64_t a;

	CHECK(t);
	a = hazard_id(t, ab, 2, 0x300, 0x555500000000ull, true, &k);
	CHECK(a != 0);
	CHECK_STR(k.d.exe, "/usr/bin/app");
	CHECK_STR(k.d.comm, "app-worker");
	/* the program's frame, not libc's, names the fork site */
	CHECK_STR(k.d.fork_site, "fn_300+0x0 [app]");
	CHECK_INT(k.d.nlock_sites, 2);
	CHECK_STR(k.d.lock_sites[0], "fn_100+0x0 [app]");
	/* other addresses (ASLR), the threads walked in another order, a lock
	 * site twice: the same site */
	CHECK(hazard_id(t, ba, 3, 0x300, 0x563400000000ull, true, &k) == a);
	CHECK_INT(k.d.nlock_sites, 2);
	/* another fork call site, another lock site: other sites */
	CHECK(hazard_id(t, ab, 2, 0x310, 0x555500000000ull, true, &k) != a);
	CHECK(hazard_id(t, ab, 1, 0x300, 0x555500000000ull, true, &k) != a);
	siteid_free(t);
}

UNIT_TEST(build_id_else_path)
{
	static struct siteid_key k1, k2;
	struct siteid *t = siteid_new();
	struct fh_frame f;

	CHECK(t);
	/* the same build-id under two paths is one module */
	siteid_begin(&k1, SITE_HAZARD, "app", "/a/app", "app");
	siteid_lock(&k1, 1, frame(&f, "/a/libx.so", "beef", 0x10, 0x1000));
	frame(&frames[0], "/a/app", "", 0x20, 0x2000);
	siteid_finish(t, &k1, frames, 1, true);
	siteid_begin(&k2, SITE_HAZARD, "app", "/a/app", "app");
	siteid_lock(&k2, 1, frame(&f, "/b/libx.so", "beef", 0x10, 0x9000));
	/* no build-id: the path, " (deleted)" or not (replaced on disk) */
	frame(&frames[0], "/a/app (deleted)", "", 0x20, 0x3000);
	siteid_finish(t, &k2, frames, 1, true);
	CHECK(k1.d.id == k2.d.id);
	/* the lock's kind counts */
	siteid_begin(&k2, SITE_HAZARD, "app", "/a/app", "app");
	siteid_lock(&k2, 4, frame(&f, "/a/libx.so", "beef", 0x10, 0x1000));
	frame(&frames[0], "/a/app", "", 0x20, 0x2000);
	siteid_finish(t, &k2, frames, 1, true);
	CHECK(k1.d.id != k2.d.id);
	siteid_free(t);
}

UNIT_TEST(without_an_unwound_stack_the_last_site_is_taken)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	const uint64_t locks[] = { 0x100 };
	uint64_t first, known;

	CHECK(t);
	/* a burst beyond the unwinding rate comes first: a site is made... */
	first = hazard_id(t, locks, 1, 0x300, 0x1000, false, &k);
	CHECK(first != 0);
	CHECK(hazard_id(t, locks, 1, 0x999, 0x1000, false, &k) == first);
	/* ...which the first unwound occurrence adopts, fork site and all */
	CHECK(hazard_id(t, locks, 1, 0x300, 0x1000, true, &k) == first);
	CHECK_STR(k.d.fork_site, "fn_300+0x0 [app]");
	/* from then on, an unwound stack decides */
	known = hazard_id(t, locks, 1, 0x310, 0x1000, true, &k);
	CHECK(known != first);
	/* and a stack that is not unwound takes the last one known */
	CHECK(hazard_id(t, locks, 1, 0x300, 0x1000, false, &k) == known);
	siteid_free(t);
}

UNIT_TEST(deadlock_site_is_where_the_child_waits)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	uint64_t a;

	CHECK(t);
	siteid_begin(&k, SITE_DEADLOCK, "app", "app", "app");
	frame(&frames[0], "/usr/lib/x86_64-linux-gnu/libc.so.6", "c0c0", 0x1000, 0x7f0000);
	frame(&frames[1], "/usr/bin/app", "abcd", 0x400, 0x5000);
	siteid_finish(t, &k, frames, 2, true);
	a = k.d.id;
	CHECK(k.d.kind == SITE_DEADLOCK);
	CHECK_STR(k.d.fork_site, "");
	CHECK_INT(k.d.nlock_sites, 1);
	CHECK_STR(k.d.lock_sites[0], "fn_400+0x0 [app]");
	/* not the hazard site of the same place */
	siteid_begin(&k, SITE_HAZARD, "app", "app", "app");
	siteid_finish(t, &k, frames, 2, true);
	CHECK(k.d.id != a);
	/* a stack that never leaves the C library names no place */
	siteid_begin(&k, SITE_DEADLOCK, "other", "other", "other");
	siteid_finish(t, &k, frames, 1, true);
	CHECK_INT(k.d.nlock_sites, 0);
	CHECK(k.d.id != 0 && k.d.id != a);
	siteid_free(t);
}

UNIT_TEST(many_lock_sites_all_counted_four_described)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	struct fh_frame f;

	CHECK(t);
	siteid_begin(&k, SITE_HAZARD, "app", "app", "app");
	for (int i = 0; i < FH_EVENT_LOCKS + 5; i++)	/* more than an event holds: bounded */
		siteid_lock(&k, 1, frame(&f, "/usr/bin/app", "", 0x100 + (uint64_t)i, 0));
	siteid_locks_omitted(&k);
	siteid_finish(t, &k, frames, 0, true);
	CHECK_INT(k.nlocks, FH_EVENT_LOCKS);
	CHECK_INT(k.d.nlock_sites, FH_EVENT_LOCKS);
	CHECK_STR(k.d.lock_sites[SITE_LOCKS_SHOWN - 1], "fn_103+0x3 [app]");
	siteid_free(t);
}

UNIT_TEST(frame_text_for_people)
{
	struct fh_frame f;
	char buf[SITE_FRAME_LEN];

	frame(&f, "/usr/lib/libx.so.1", "", 0x1234, 0);
	siteid_frame_text(&f, buf, sizeof(buf));
	CHECK_STR(buf, "fn_1234+0x4 [libx.so.1]");
	f.known = false;
	siteid_frame_text(&f, buf, sizeof(buf));
	CHECK_STR(buf, "[libx.so.1+0x1234]");
	f.has_module = false;
	f.addr = 0xdead;
	siteid_frame_text(&f, buf, sizeof(buf));
	CHECK_STR(buf, "0xdead");
}

/* A hazard of a Python program: the lock taken at (lock_file, lock_line),
 * fork called at fork_line of fork_file; the native frames are the
 * interpreter's, the same for every Python call site (fork_off). */
static uint64_t python_hazard(struct siteid *t, const char *lock_file, int lock_line,
			      const char *fork_file, int fork_line, uint64_t fork_off,
			      struct siteid_key *k)
{
	siteid_begin(k, SITE_HAZARD, "python3.12", "/usr/bin/python3.12", "python3");
	siteid_lock_python(k, FH_KIND_SEM, lock_file, "Cache.refresh", lock_line);
	if (fork_file)
		siteid_python_place(k, fork_file, "spawn", fork_line);
	frame(&frames[0], "/usr/lib/x86_64-linux-gnu/libc.so.6", "c0c0", 0x1000, 0x7f0000);
	frame(&frames[1], "/usr/lib/libpython3.12.so.1.0", "py12", fork_off, 0x7f1000000000ull);
	siteid_finish(t, k, frames, 2, true);
	return k->d.id;
}

UNIT_TEST(python_sites_by_python_frames)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	const char *venv_a = "/srv/a/venv/lib/python3.12/site-packages/app/cache.py";
	const char *venv_b = "/home/ci/.venv/lib/python3.12/site-packages/app/cache.py";
	uint64_t a;

	CHECK(t);
	a = python_hazard(t, venv_a, 42, "/srv/a/main.py", 7, 0x500, &k);
	CHECK_STR(k.d.lock_sites[0], "Cache.refresh (app/cache.py:42)");
	CHECK_STR(k.d.fork_site, "spawn (/srv/a/main.py:7)");
	/* the same code in another virtual environment, another machine's
	 * interpreter (other native frames): one site */
	CHECK(python_hazard(t, venv_b, 42, "/srv/a/main.py", 7, 0x9990, &k) == a);
	/* two Python call sites that share every native frame: two sites */
	CHECK(python_hazard(t, venv_a, 43, "/srv/a/main.py", 7, 0x500, &k) != a);
	CHECK(python_hazard(t, venv_a, 42, "/srv/a/main.py", 8, 0x500, &k) != a);
	/* without the fork's Python frame: named by the native stack */
	CHECK(python_hazard(t, venv_a, 42, NULL, 0, 0x500, &k) != a);
	CHECK_STR(k.d.fork_site, "fn_500+0x0 [libpython3.12.so.1.0]");
	siteid_free(t);
}

UNIT_TEST(python_deadlock_site_is_where_the_child_waits)
{
	static struct siteid_key k;
	struct siteid *t = siteid_new();
	uint64_t a;

	CHECK(t);
	siteid_begin(&k, SITE_DEADLOCK, "python3", "/usr/bin/python3", "python3");
	siteid_python_place(&k, "/usr/lib/python3.11/logging/__init__.py", "Handler.acquire", 917);
	siteid_finish(t, &k, frames, 0, false);
	a = k.d.id;
	CHECK_INT(k.d.nlock_sites, 1);
	CHECK_STR(k.d.lock_sites[0], "Handler.acquire (python3.11/logging/__init__.py:917)");
	siteid_begin(&k, SITE_DEADLOCK, "python3", "/usr/bin/python3", "python3");
	siteid_python_place(&k, "/opt/py/lib/python3.11/logging/__init__.py", "Handler.acquire",
			    917);
	siteid_finish(t, &k, frames, 0, false);
	CHECK(k.d.id == a);
	siteid_free(t);
}

// SPDX-License-Identifier: GPL-2.0
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clib.h"
#include "pycode.h"
#include "siteid.h"
#include "symbolize.h"

#define WEAK_MAP	1024	/* (exe, lock sites) -> site, for forks without a CFI stack */

struct weak_site {
	uint64_t weak, site;
	bool nocfi;	/* site was made without an unwound stack */
};

struct siteid {
	struct weak_site weak[WEAK_MAP];
};

struct siteid *siteid_new(void)
{
	return calloc(1, sizeof(struct siteid));
}

void siteid_free(struct siteid *t)
{
	free(t);
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

/* The C library's own frames are never a fork or lock "site": every program
 * has them. */
static bool is_libc(const struct fh_frame *f)
{
	return f->has_module && clib_file_of(f->module) != CLIB_NONE;
}

/* A frame's identity across runs (ASLR): its module (build-id, else path)
 * and its offset in the module. */
static uint64_t frame_hash(uint64_t h, const struct fh_frame *f)
{
	const char *id;
	size_t n;

	if (!f->has_module)
		return site_hash(h, "?", 1);
	id = f->build_id[0] ? f->build_id : f->module;
	n = strlen(id);
	if (!f->build_id[0] && n > 10 && !strcmp(id + n - 10, " (deleted)"))
		n -= 10;
	h = site_hash(h, id, n);
	return site_hash(h, &f->module_offset, sizeof(f->module_offset));
}

void siteid_frame_text(const struct fh_frame *f, char *buf, size_t size)
{
	if (f->known && f->has_module)
		snprintf(buf, size, "%.96s+0x%" PRIx64 " [%.64s]", f->symbol, f->offset,
			 base_name(f->module));
	else if (f->has_module)
		snprintf(buf, size, "[%.64s+0x%" PRIx64 "]", base_name(f->module),
			 f->module_offset);
	else
		snprintf(buf, size, "0x%" PRIx64, f->addr);
}

/* The first frame outside the C library: where the program called fork, or
 * waits. NULL if the stack never leaves it. */
static const struct fh_frame *program_frame(const struct fh_frame *frames, int n)
{
	for (int i = 0; i < n; i++)
		if (frames[i].has_module && !is_libc(&frames[i]))
			return &frames[i];
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void siteid_begin(struct siteid_key *k, enum site_kind kind, const char *exe_name,
		  const char *exe, const char *comm)
{
	size_t n = strnlen(comm, FH_COMM_LEN);

	memset(k, 0, sizeof(*k));
	k->d.kind = kind;
	snprintf(k->d.exe, sizeof(k->d.exe), "%s", exe);
	snprintf(k->exe_name, sizeof(k->exe_name), "%s", exe_name);
	memcpy(k->d.comm, comm, n < sizeof(k->d.comm) - 1 ? n : sizeof(k->d.comm) - 1);
}

/* A Python frame's identity: its file wherever it is installed, its
 * function and line. */
static uint64_t python_hash(uint64_t h, const char *file, const char *function, int line)
{
	char site[SITE_FRAME_LEN * 2];
	size_t n = pycode_site_path(file, site, sizeof(site));

	h = site_hash(h, "py", 2);
	h = site_hash(h, site, n < sizeof(site) ? n : sizeof(site) - 1);
	h = site_hash(h, function, strlen(function) + 1);
	return site_hash(h, &line, sizeof(line));
}

/* Add lock site h (described by text) to the occurrence. */
static void add_lock_site(struct siteid_key *k, uint64_t h, const char *text)
{
	bool seen = false;

	/* describe the distinct ones (first occurrence order) */
	for (int i = 0; i < k->nlocks; i++)
		seen |= k->locks[i] == h;
	if (!seen) {
		if (k->d.nlock_sites < SITE_LOCKS_SHOWN)
			snprintf(k->d.lock_sites[k->d.nlock_sites], SITE_FRAME_LEN, "%s", text);
		k->d.nlock_sites++;
	}
	k->locks[k->nlocks++] = h;
}

void siteid_lock(struct siteid_key *k, unsigned int kind, const struct fh_frame *caller)
{
	uint16_t kind16 = (uint16_t)kind;
	char text[SITE_FRAME_LEN];

	if (k->nlocks == FH_EVENT_LOCKS)
		return;
	siteid_frame_text(caller, text, sizeof(text));
	add_lock_site(k, frame_hash(site_hash(SITE_HASH_INIT, &kind16, sizeof(kind16)), caller),
		      text);
}

void siteid_lock_python(struct siteid_key *k, unsigned int kind, const char *file,
			const char *function, int line)
{
	uint16_t kind16 = (uint16_t)kind;
	char text[SITE_FRAME_LEN];

	if (k->nlocks == FH_EVENT_LOCKS)
		return;
	pycode_frame_text(file, function, line, text, sizeof(text));
	add_lock_site(k, python_hash(site_hash(SITE_HASH_INIT, &kind16, sizeof(kind16)), file,
				     function, line), text);
}

void siteid_python_place(struct siteid_key *k, const char *file, const char *function, int line)
{
	char text[SITE_FRAME_LEN];

	k->py_place = python_hash(SITE_HASH_INIT, file, function, line);
	k->py_place |= !k->py_place;
	pycode_frame_text(file, function, line, text, sizeof(text));
	if (k->d.kind == SITE_HAZARD) {
		snprintf(k->d.fork_site, sizeof(k->d.fork_site), "%s", text);
	} else {
		snprintf(k->d.lock_sites[0], SITE_FRAME_LEN, "%s", text);
		k->d.nlock_sites = 1;
	}
}

void siteid_locks_omitted(struct siteid_key *k)
{
	k->locks_omitted = true;
}

/*
 * The site id of an occurrence: weak identifies the executable and the lock
 * sites, pf the program's frame of the stack, known for sure only when the
 * stack was unwound with CFI (cfi). Without it the site the executable and
 * locks last had is taken; if there is none yet, a site is made that the
 * first unwound occurrence then adopts, so that one site never becomes two
 * because the first report came in a burst beyond the unwinding rate.
 */
static uint64_t resolve_weak(struct siteid *t, uint64_t weak, bool cfi, const struct fh_frame *pf)
{
	struct weak_site *ws = &t->weak[(weak ^ (weak >> 29)) % WEAK_MAP];
	uint64_t h;

	if (ws->weak == weak && ws->site && (!cfi || ws->nocfi)) {
		ws->nocfi = ws->nocfi && !cfi;
		return ws->site;
	}
	if (cfi)
		h = pf ? frame_hash(weak, pf) : site_hash(weak, "libc", 4);
	else
		h = site_hash(weak, "no-cfi", 6);
	h = h ? h : 1;
	ws->weak = weak;
	ws->site = h;
	ws->nocfi = !cfi;
	return h;
}

void siteid_finish(struct siteid *t, struct siteid_key *k, const struct fh_frame *frames, int n,
		   bool cfi)
{
	const char *what = k->d.kind == SITE_HAZARD ? "hazard" : "deadlock";
	const struct fh_frame *pf = program_frame(frames, n);
	uint64_t weak;

	/* the lock sites as a set: the order the threads were walked in varies */
	qsort(k->locks, (size_t)k->nlocks, sizeof(k->locks[0]), cmp_u64);
	weak = site_hash(SITE_HASH_INIT, what, strlen(what));
	weak = site_hash(weak, k->exe_name, strlen(k->exe_name));
	for (int i = 0; i < k->nlocks; i++)
		if (i == 0 || k->locks[i] != k->locks[i - 1])
			weak = site_hash(weak, &k->locks[i], sizeof(k->locks[i]));
	if (k->locks_omitted)
		weak = site_hash(weak, "+omitted", 8);
	if (k->py_place) {	/* named for sure, whatever was unwound */
		k->d.id = site_hash(weak, &k->py_place, sizeof(k->py_place));
		k->d.id |= !k->d.id;
		return;
	}
	if (pf && k->d.kind == SITE_HAZARD) {
		siteid_frame_text(pf, k->d.fork_site, sizeof(k->d.fork_site));
	} else if (pf) {	/* a deadlock's place: where the child waits */
		siteid_frame_text(pf, k->d.lock_sites[0], SITE_FRAME_LEN);
		k->d.nlock_sites = 1;
	}
	k->d.id = resolve_weak(t, weak, cfi, pf);
}

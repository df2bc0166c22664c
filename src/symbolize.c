// SPDX-License-Identifier: GPL-2.0
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include "forkhazard.h"
#include "procfs.h"
#include "symbolize.h"
#include "symmod.h"

#define SYMS_MAX_MAPS		512	/* executable mappings kept per process */
#define SYMS_DEF_MODULES	128
#define SYMS_DEF_MODULE_BYTES	(512u << 20)
#define SYMS_DEF_SNAPSHOTS	1024

/* One executable mapping of a process, as it was when first seen. */
struct snap_map {
	uint64_t start, end, offset;
	struct symmod_ident id;
	struct symmod_ref ref;	/* the open module, while it stays cached */
	bool has_id;
	bool deleted;
	bool vdso;
	bool unopenable;	/* tried and failed: don't retry for every frame */
	char *path;
};

struct snap {
	bool used;
	bool borrowed;		/* taken from the child of a process already gone */
	pid_t pid;
	unsigned long long starttime;
	uint64_t last_use;
	int n;
	struct snap_map *maps;	/* sorted by start */
};

struct syms {
	int stack_map_fd;
	struct symmod_cache *mods;
	struct snap *snaps;
	size_t max_snaps;
	uint64_t clock;
	struct syms_stats st;
};

struct syms *syms_new_limits(int stack_map_fd, const struct syms_limits *lim)
{
	struct syms *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->stack_map_fd = stack_map_fd;
	s->max_snaps = lim && lim->max_snapshots ? lim->max_snapshots : SYMS_DEF_SNAPSHOTS;
	s->mods = symmod_cache_new(lim && lim->max_modules ? lim->max_modules : SYMS_DEF_MODULES,
				   lim && lim->max_module_bytes ? lim->max_module_bytes :
				   SYMS_DEF_MODULE_BYTES);
	s->snaps = calloc(s->max_snaps, sizeof(*s->snaps));
	if (!s->mods || !s->snaps) {
		syms_free(s);
		return NULL;
	}
	return s;
}

struct syms *syms_new(int stack_map_fd)
{
	return syms_new_limits(stack_map_fd, NULL);
}

static void snap_clear(struct snap *p)
{
	for (int i = 0; i < p->n; i++)
		free(p->maps[i].path);
	free(p->maps);
	memset(p, 0, sizeof(*p));
}

void syms_free(struct syms *s)
{
	if (!s)
		return;
	if (s->snaps)
		for (size_t i = 0; i < s->max_snaps; i++)
			snap_clear(&s->snaps[i]);
	free(s->snaps);
	symmod_cache_free(s->mods);
	free(s);
}

void syms_get_stats(const struct syms *s, struct syms_stats *st)
{
	struct symmod_cache_stats ms;

	*st = s->st;
	symmod_cache_get_stats(s->mods, &ms);
	st->modules_opened = ms.opened;
	st->module_hits = ms.hits;
	st->modules_evicted = ms.evicted;
	st->modules_refused = ms.refused;
	st->sections_disabled = ms.sections_disabled;
	st->modules_cached = ms.cached;
	st->module_bytes = ms.bytes;
	st->snapshots_cached = 0;
	for (size_t i = 0; i < s->max_snaps; i++)
		st->snapshots_cached += s->snaps[i].used;
}

/* ---- snapshots ----------------------------------------------------------- */

static struct snap *snap_find(struct syms *s, pid_t pid)
{
	for (size_t i = 0; i < s->max_snaps; i++)
		if (s->snaps[i].used && s->snaps[i].pid == pid)
			return &s->snaps[i];
	return NULL;
}

/* A slot for a new snapshot: a free one, else the least recently used. */
static struct snap *snap_slot(struct syms *s)
{
	struct snap *victim = &s->snaps[0];	/* max_snaps >= 1 */

	for (size_t i = 0; i < s->max_snaps; i++) {
		struct snap *p = &s->snaps[i];

		if (!p->used)
			return p;
		if (p->last_use < victim->last_use)
			victim = p;
	}
	snap_clear(victim);
	s->st.snapshots_evicted++;
	return victim;
}

/*
 * Open a mapped file as the process sees it: /proc/PID/map_files works for
 * deleted files and other mount namespaces alike; /proc/PID/root + path is
 * the fallback, and the path itself once the process is gone. Whatever is
 * opened must be the very file mapped (same identity, or same device and
 * inode when no identity was taken).
 */
static int open_mapped(pid_t pid, const struct snap_map *m, uint64_t maps_dev,
		       uint64_t maps_ino, struct stat *st)
{
	char path[PATH_MAX + 64];
	int fd;

	for (int how = 0; how < 3; how++) {
		if (how == 0)
			snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
				 (unsigned long long)m->start, (unsigned long long)m->end);
		else if (how == 1)
			snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, m->path);
		else if (m->deleted)
			break;
		else
			snprintf(path, sizeof(path), "%s", m->path);
		/* O_NONBLOCK: a FIFO put in the file's place must not block us. */
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
		if (fd < 0)
			continue;
		if (!fstat(fd, st) && S_ISREG(st->st_mode)) {
			struct symmod_ident id;

			symmod_ident_of(st, &id);
			if (m->has_id ? !memcmp(&id, &m->id, sizeof(id)) :
			    (id.ino == maps_ino && id.dev == maps_dev))
				return fd;
		}
		close(fd);
	}
	return -ENOENT;
}

/* Make sure the module of m is open; returns it or NULL. */
static struct symmod *map_module(struct syms *s, pid_t pid, struct snap_map *m)
{
	struct symmod *mod;
	struct stat st;
	int fd, err;

	if (m->vdso || m->unopenable)
		return NULL;
	if (m->has_id && (mod = symmod_find(s->mods, &m->id, &m->ref)))
		return mod;
	fd = open_mapped(pid, m, m->id.dev, m->id.ino, &st);
	if (fd < 0) {
		m->unopenable = true;
		return NULL;
	}
	if (!m->has_id) {
		symmod_ident_of(&st, &m->id);
		m->has_id = true;
	}
	mod = symmod_open(s->mods, fd, &m->id, m->path, &err);
	close(fd);
	if (!mod) {
		m->unopenable = err == -ENOEXEC || err == -EINVAL;
		return NULL;
	}
	symmod_get_ref(s->mods, mod, &m->ref);
	return mod;
}

struct collect {
	pid_t pid;
	int n, cap;
	uint64_t dropped;
	struct snap_map *maps;
};

static int collect_mapping(const struct fh_mapping *fm, void *ctx)
{
	struct collect *c = ctx;
	struct snap_map *m;
	char path[80];
	struct stat st;

	if (fm->perms[2] != 'x')
		return 0;
	if (fm->path[0] != '/' && strcmp(fm->path, "[vdso]"))
		return 0;	/* anonymous (JIT) code: nothing to read */
	if (c->n == SYMS_MAX_MAPS) {
		c->dropped++;
		return 0;
	}
	if (c->n == c->cap) {
		int cap = c->cap ? c->cap * 2 : 16;
		struct snap_map *maps = realloc(c->maps, (size_t)cap * sizeof(*maps));

		if (!maps)
			return -ENOMEM;
		c->maps = maps;
		c->cap = cap;
	}
	m = &c->maps[c->n];
	memset(m, 0, sizeof(*m));
	m->start = fm->start;
	m->end = fm->end;
	m->offset = fm->offset;
	m->deleted = fm->deleted;
	m->vdso = fm->path[0] != '/';
	m->path = strdup(fm->path);
	if (!m->path)
		return -ENOMEM;
	c->n++;
	if (m->vdso)
		return 0;
	/* The file's identity costs a stat; a warm module needs nothing more. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)c->pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	if (!stat(path, &st) && S_ISREG(st.st_mode)) {
		symmod_ident_of(&st, &m->id);
		m->has_id = true;
	} else {
		m->id.dev = makedev(fm->dev_major, fm->dev_minor);
		m->id.ino = fm->inode;
	}
	return 0;
}

static int cmp_map(const void *a, const void *b)
{
	const struct snap_map *x = a, *y = b;

	return x->start < y->start ? -1 : x->start > y->start;
}

/* Read pid's executable mappings (and open their modules) into p. */
static int snap_take(struct syms *s, pid_t pid, pid_t from, struct snap *p)
{
	struct collect c = { .pid = from };
	int err;

	err = procfs_for_each_mapping(from, collect_mapping, &c);
	if (!err && c.n == 0)
		err = -ESRCH;	/* a zombie: its memory is gone */
	if (err) {
		for (int i = 0; i < c.n; i++)
			free(c.maps[i].path);
		free(c.maps);
		return err == -ENOENT ? -ESRCH : err;
	}
	qsort(c.maps, (size_t)c.n, sizeof(*c.maps), cmp_map);
	s->st.mappings_dropped += c.dropped;
	p->used = true;
	p->pid = pid;
	p->maps = c.maps;
	p->n = c.n;
	p->last_use = ++s->clock;
	s->st.snapshots++;
	/* Opened now, while the files can still be reached through the process. */
	for (int i = 0; i < p->n; i++)
		map_module(s, from, &p->maps[i]);
	return 0;
}

static int note(struct syms *s, pid_t pid, struct snap **out)
{
	struct fh_proc_stat st;
	struct snap *p = snap_find(s, pid);
	int err;

	if (procfs_read_stat(pid, 0, &st)) {
		*out = p;
		return p ? 0 : -ESRCH;
	}
	if (p && p->starttime == st.starttime) {
		p->last_use = ++s->clock;
		*out = p;
		return 0;
	}
	if (p) {
		snap_clear(p);	/* the PID was reused */
		s->st.snapshots_stale++;
	} else {
		p = snap_slot(s);
	}
	err = snap_take(s, pid, pid, p);
	if (err) {
		*out = NULL;
		return err;
	}
	p->starttime = st.starttime;
	*out = p;
	return 0;
}

int syms_note_process(struct syms *s, pid_t pid)
{
	struct snap *p;

	return pid > 0 ? note(s, pid, &p) : -EINVAL;
}

int syms_note_fork(struct syms *s, pid_t pid, pid_t child, const char *comm)
{
	struct fh_proc_stat st;
	struct snap *p;
	int err = syms_note_process(s, pid);

	if (err != -ESRCH || child <= 0)
		goto out;
	/* The parent is gone; its address space lives on in the child, unless
	 * the child exec'd (a new name) or is gone too. */
	if (procfs_read_stat(child, 0, &st) || strncmp(st.comm, comm, FH_COMM_LEN)) {
		err = -ESRCH;
		goto out;
	}
	p = snap_slot(s);
	err = snap_take(s, pid, child, p);
	if (err)
		goto out;
	p->borrowed = true;
	p->starttime = 0;	/* unknown: any process later seen under pid is another */
out:
	/* A tree that ends within a millisecond of its fork can be gone
	 * before its event is read: its stacks stay addresses, counted. */
	if (err == -ESRCH)
		s->st.forks_gone++;
	return err;
}

void syms_forget(struct syms *s, pid_t pid)
{
	struct snap *p = snap_find(s, pid);

	if (p)
		snap_clear(p);
}

/* ---- resolving ------------------------------------------------------------ */

static struct snap_map *snap_lookup(struct snap *p, uint64_t addr)
{
	int lo = 0, hi = p->n - 1;

	while (lo <= hi) {
		int mid = lo + (hi - lo) / 2;
		struct snap_map *m = &p->maps[mid];

		if (addr < m->start)
			hi = mid - 1;
		else if (addr >= m->end)
			lo = mid + 1;
		else
			return m;
	}
	return NULL;
}

/* The snapshot of pid; taken now if there is none (pid must be alive). */
static struct snap *snap_get(struct syms *s, pid_t pid)
{
	struct snap *p = snap_find(s, pid);

	if (p) {
		p->last_use = ++s->clock;
		return p;
	}
	if (pid <= 0 || note(s, pid, &p))
		return NULL;
	return p;
}

/* Code mapped since the snapshot (dlopen): look once more, if pid is still
 * the process the snapshot is of. A zombie (still in /proc, its memory
 * gone) keeps the snapshot it had. */
static struct snap *snap_refresh(struct syms *s, struct snap *p)
{
	struct fh_proc_stat st;
	struct snap fresh = { 0 };
	pid_t pid = p->pid;

	if (p->borrowed || procfs_read_stat(pid, 0, &st) || st.starttime != p->starttime)
		return NULL;
	if (snap_take(s, pid, pid, &fresh))
		return p;
	snap_clear(p);
	*p = fresh;
	p->starttime = st.starttime;
	return p;
}

/* addr in p into f; `*refreshed` bounds the re-reads to one per stack. */
static void resolve_in(struct syms *s, struct snap **pp, uint64_t addr, struct fh_frame *f,
		       bool *refreshed)
{
	struct snap *p = *pp;
	struct snap_map *m;
	struct symmod *mod;
	uint64_t vaddr, off;

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	if (!p)
		return;
	m = snap_lookup(p, addr);
	if (!m && !*refreshed) {
		*refreshed = true;
		*pp = p = snap_refresh(s, p);
		m = p ? snap_lookup(p, addr) : NULL;
	}
	if (!m)
		return;
	f->has_module = true;
	snprintf(f->module, sizeof(f->module), "%s%s", m->path, m->deleted ? " (deleted)" : "");
	off = addr - m->start + m->offset;
	/* Without the file, the file offset is the best offset there is. */
	f->module_offset = m->vdso ? addr - m->start : off;
	mod = map_module(s, p->pid, m);
	if (!mod || symmod_file_to_vaddr(mod, off, &vaddr))
		return;
	f->module_offset = vaddr - symmod_base(mod);
	symmod_lookup(s->mods, mod, vaddr, f);
}

/* A return address: resolve the call before it, report the address itself. */
static void resolve_ret(struct syms *s, struct snap **pp, uint64_t ret, struct fh_frame *f,
			bool *refreshed)
{
	resolve_in(s, pp, ret - 1, f, refreshed);
	f->addr = ret;
	if (f->known)
		f->offset++;
	if (f->has_module)
		f->module_offset++;
}

bool syms_can_resolve(struct syms *s, pid_t pid)
{
	return snap_get(s, pid) != NULL;
}

void syms_resolve(struct syms *s, pid_t pid, uint64_t addr, struct fh_frame *f)
{
	struct snap *p = snap_get(s, pid);
	bool refreshed = false;

	resolve_in(s, &p, addr, f, &refreshed);
}

void syms_resolve_return(struct syms *s, pid_t pid, uint64_t ret, struct fh_frame *f)
{
	struct snap *p = snap_get(s, pid);
	bool refreshed = false;

	resolve_ret(s, &p, ret, f, &refreshed);
}

int syms_stack(struct syms *s, pid_t pid, int stack_id, int skip, uint64_t exact,
	       struct fh_frame *frames, int max)
{
	uint64_t ips[FH_STACK_DEPTH] = { 0 };
	struct snap *p;
	bool refreshed = false;
	int n = 0;

	if (max <= 0)
		return 0;
	p = snap_get(s, pid);
	if (exact)
		resolve_ret(s, &p, exact, &frames[n++], &refreshed);
	if (stack_id < 0 || s->stack_map_fd < 0 ||
	    bpf_map_lookup_elem(s->stack_map_fd, &stack_id, ips))
		return n;
	for (int i = skip; i < FH_STACK_DEPTH && ips[i] && n < max; i++) {
		if (exact && ips[i] == exact)
			continue;	/* the walk found the exact frame too */
		if (i == 0)
			resolve_in(s, &p, ips[i], &frames[n], &refreshed);
		else
			resolve_ret(s, &p, ips[i], &frames[n], &refreshed);
		frames[n].fp = i > 0;
		n++;
	}
	return n;
}

int syms_lock_stack(struct syms *s, pid_t pid, const struct fh_lock *l, struct fh_frame *frames,
		    int max)
{
	int n = syms_stack(s, pid, l->stack_id, 1, l->caller, frames, max);

	for (int i = 0; i < FH_LOCK_FP_FRAMES && l->fp[i] && n < max; i++) {
		struct fh_frame *f = &frames[n];

		syms_resolve_return(s, pid, l->fp[i], f);
		if (!f->has_module)
			break;
		f->fp = true;
		n++;
	}
	return n;
}

/* ---- unwinding captured stacks ------------------------------------------------ */

#if defined(__x86_64__)
#define UW_REG_FP	6	/* DWARF register numbers: rbp, rsp */
#define UW_REG_SP	7
#elif defined(__aarch64__)
#define UW_REG_FP	29
#define UW_REG_SP	31
#endif

struct uw {
	pid_t pid;
	uint64_t ip, sp, bp;
	const unsigned char *stack;
	size_t len;
	int n, max;
	uint64_t *pcs;
	bool *activation;
};

static pid_t uw_next_thread(Dwfl *dwfl, void *arg, void **thread_argp)
{
	struct uw *u = arg;

	(void)dwfl;
	if (*thread_argp)
		return 0;	/* one thread: the one captured */
	*thread_argp = u;
	return u->pid;
}

static bool uw_get_thread(Dwfl *dwfl, pid_t tid, void *arg, void **thread_argp)
{
	struct uw *u = arg;

	(void)dwfl;
	*thread_argp = u;
	return tid == u->pid;
}

/* Only the copy: the live process may have moved on, or be gone. */
static bool uw_memory_read(Dwfl *dwfl, Dwarf_Addr addr, Dwarf_Word *result, void *arg)
{
	struct uw *u = arg;

	(void)dwfl;
	if (addr < u->sp || addr - u->sp >= u->len || u->len - (addr - u->sp) < sizeof(*result))
		return false;
	memcpy(result, u->stack + (addr - u->sp), sizeof(*result));
	return true;
}

static bool uw_set_initial_registers(Dwfl_Thread *thread, void *arg)
{
#ifdef UW_REG_SP
	struct uw *u = arg;
	Dwarf_Word fp = u->bp, sp = u->sp;

	if (!dwfl_thread_state_registers(thread, UW_REG_FP, 1, &fp) ||
	    !dwfl_thread_state_registers(thread, UW_REG_SP, 1, &sp))
		return false;
	dwfl_thread_state_register_pc(thread, u->ip);
	return true;
#else
	(void)thread;
	(void)arg;
	return false;
#endif
}

static const Dwfl_Thread_Callbacks uw_callbacks = {
	.next_thread = uw_next_thread,
	.get_thread = uw_get_thread,
	.memory_read = uw_memory_read,
	.set_initial_registers = uw_set_initial_registers,
};

static int uw_frame(Dwfl_Frame *state, void *arg)
{
	struct uw *u = arg;
	Dwarf_Addr pc;
	bool act;

	if (!dwfl_frame_pc(state, &pc, &act) || pc == 0)
		return DWARF_CB_ABORT;
	/* A caller in no module is where unwinding went wrong (libdw falls
	 * back to frame pointers where CFI ends, and %rbp held data): the
	 * stack ends at the last frame that was code. */
	if (u->n > 0 && !dwfl_addrmodule(dwfl_thread_dwfl(dwfl_frame_thread(state)),
					 act ? pc : pc - 1))
		return DWARF_CB_ABORT;
	u->pcs[u->n] = pc;
	u->activation[u->n] = act;
	return ++u->n < u->max ? DWARF_CB_OK : DWARF_CB_ABORT;
}

/* A Dwfl of the snapshot's modules at their run-time addresses, sharing the
 * cached modules' Elf handles; refs[] hold our references to them. */
static Dwfl *uw_report(struct syms *s, struct snap *p, struct symmod_elfref *refs,
			uint64_t *starts, int *nrefs)
{
	Dwfl *dwfl = dwfl_begin(&symmod_dwfl_callbacks);
	int j;

	*nrefs = 0;
	if (!dwfl)
		return NULL;
	dwfl_report_begin(dwfl);
	for (int i = 0; i < p->n; i++) {
		struct snap_map *m = &p->maps[i];
		struct symmod *mod = map_module(s, p->pid, m);
		uint64_t vaddr, bias;
		Dwfl_Module *dm;
		const char *base;
		void **ud;

		if (!mod || symmod_file_to_vaddr(mod, m->offset, &vaddr))
			continue;
		bias = m->start - vaddr;
		for (j = 0; j < *nrefs && starts[j] != bias + symmod_base(mod); j++)
			;
		if (j < *nrefs)
			continue;	/* another mapping of a module already there */
		starts[*nrefs] = bias + symmod_base(mod);
		refs[*nrefs].elf = symmod_elf_ref(mod);
		if (!refs[*nrefs].elf)
			continue;
		refs[*nrefs].path = m->path;
		base = strrchr(m->path, '/');
		dm = dwfl_report_module(dwfl, base ? base + 1 : m->path, bias + symmod_base(mod),
					bias + symmod_end(mod));
		if (!dm) {
			elf_end(refs[*nrefs].elf);
			continue;
		}
		dwfl_module_info(dm, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
		*ud = &refs[(*nrefs)++];
	}
	if (dwfl_report_end(dwfl, NULL, NULL)) {
		dwfl_end(dwfl);
		return NULL;
	}
	return dwfl;
}

int syms_unwind(struct syms *s, pid_t pid, uint64_t ip, uint64_t sp, uint64_t bp,
		const void *stack, size_t stack_len, struct fh_frame *frames, int max)
{
	struct uw u = { .pid = pid, .ip = ip, .sp = sp, .bp = bp, .stack = stack,
			.len = stack ? stack_len : 0 };
	struct symmod_elfref *refs;
	uint64_t *starts = NULL;
	bool refreshed = false;
	struct snap *p;
	int nrefs = 0, err = 0;
	Dwfl *dwfl;

#ifndef UW_REG_SP
	return -ENOTSUP;
#endif
	if (max <= 0)
		return 0;
	p = snap_get(s, pid);
	if (!p)
		return -ESRCH;
	refs = calloc((size_t)p->n, sizeof(*refs));
	starts = calloc((size_t)p->n, sizeof(*starts));
	u.pcs = calloc((size_t)max, sizeof(*u.pcs));
	u.activation = calloc((size_t)max, sizeof(*u.activation));
	u.max = max;
	if (!refs || !starts || !u.pcs || !u.activation) {
		err = -ENOMEM;
		goto out;
	}
	dwfl = uw_report(s, p, refs, starts, &nrefs);
	if (!dwfl) {
		err = -ENOMEM;
		goto out;
	}
	/* The walk ends where CFI or the copy ends; the frames so far stand. */
	if (dwfl_attach_state(dwfl, NULL, pid, &uw_callbacks, &u))
		dwfl_getthread_frames(dwfl, pid, uw_frame, &u);
	dwfl_end(dwfl);
	if (u.n == 0) {
		/* Not even the first frame (no module with CFI): ip stands alone. */
		u.pcs[0] = ip;
		u.activation[0] = true;
		u.n = 1;
	}
	for (int i = 0; i < u.n; i++) {
		if (u.activation[i])
			resolve_in(s, &p, u.pcs[i], &frames[i], &refreshed);
		else
			resolve_ret(s, &p, u.pcs[i], &frames[i], &refreshed);
	}
out:
	for (int i = 0; i < nrefs; i++)
		elf_end(refs[i].elf);
	free(refs);
	free(starts);
	free(u.pcs);
	free(u.activation);
	return err ? err : u.n;
}

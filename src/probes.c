// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "bpf_compat.h"
#include "clib.h"
#include "elfsyms.h"
#include "forkhazard.h"
#include "lockabi.h"
#include "log.h"
#include "placement.h"
#include "probes.h"
#include "procfs.h"

/* How a probed function moves a lock. */
enum lock_op {
	OP_ACQUIRE,		/* the lock word tells at the fork whether it worked */
	OP_ACQUIRE_RET,		/* counts only if it succeeds (returns 0) */
	OP_RELEASE,
	OP_FREE,		/* a lock freed (sem_destroy): a release, on its own link */
};

/* lock_fn.how */
#define FN_POINTS	0x1	/* at its success points where it has them (placement.h) */
#define FN_MUSL		0x2	/* probed in musl only: glibc's word names the holder */

/*
 * The lock functions probed in each C library. A kind is a few rows here and
 * its lock word's meaning in bpf/fh.bpf.h (lock_word_verdict). std::mutex and
 * std::shared_mutex call the pthread functions. C11 mtx_lock calls
 * pthread_mutex_lock in glibc, but takes a free mutex itself in musl: it is
 * probed too, and the probes see one call where lock functions call each
 * other on the same lock (bpf/locks.bpf.c, nested_call).
 *
 * Releases cost a trap each, so only those the fork snapshot needs are
 * probed. A glibc mutex's and write lock's word names its holder: unlocking
 * them is not probed (musl's normal mutexes and rwlocks name nobody: it is
 * there). Read locks are released at pthread_rwlock_unlock's reader success
 * point (the writer half branches away before it). A semaphore or spinlock is
 * held by its newest acquirer (bpf/fh.bpf.h, lock_owners): sem_post and
 * pthread_spin_unlock are not probed; sem_destroy is (a semaphore freed while
 * taken: a C program's one-shot signal; a timed-out Condition waiter of
 * CPython; CPython 3.13's parking lot, whose semaphore lives on the stack of
 * each park, taken when woken, and has no Python frame to tell it by).
 * mtx_unlock calls pthread_mutex_unlock in both libraries: never probed.
 */
static const struct lock_fn {
	const char *name;
	enum fh_lock_kind kind;
	enum lock_op op;
	unsigned int flags;	/* FH_PROBE_TRY */
	unsigned int how;	/* FN_* */
} lock_fns[] = {
	{ "pthread_mutex_lock",         FH_KIND_MUTEX,        OP_ACQUIRE },
	{ "pthread_mutex_trylock",      FH_KIND_MUTEX,        OP_ACQUIRE, FH_PROBE_TRY, FN_POINTS },
	{ "pthread_mutex_timedlock",    FH_KIND_MUTEX,        OP_ACQUIRE },
	{ "pthread_mutex_clocklock",    FH_KIND_MUTEX,        OP_ACQUIRE },
	{ "pthread_mutex_unlock",       FH_KIND_MUTEX,        OP_RELEASE, 0, FN_MUSL },
	{ "mtx_lock",                   FH_KIND_MUTEX,        OP_ACQUIRE },
	{ "mtx_trylock",                FH_KIND_MUTEX,        OP_ACQUIRE, FH_PROBE_TRY, FN_POINTS },
	{ "mtx_timedlock",              FH_KIND_MUTEX,        OP_ACQUIRE },
	{ "pthread_rwlock_rdlock",      FH_KIND_RWLOCK_READ,  OP_ACQUIRE },
	{ "pthread_rwlock_tryrdlock",   FH_KIND_RWLOCK_READ,  OP_ACQUIRE, FH_PROBE_TRY, FN_POINTS },
	{ "pthread_rwlock_timedrdlock", FH_KIND_RWLOCK_READ,  OP_ACQUIRE },
	{ "pthread_rwlock_clockrdlock", FH_KIND_RWLOCK_READ,  OP_ACQUIRE },
	{ "pthread_rwlock_wrlock",      FH_KIND_RWLOCK_WRITE, OP_ACQUIRE },
	{ "pthread_rwlock_trywrlock",   FH_KIND_RWLOCK_WRITE, OP_ACQUIRE, FH_PROBE_TRY, FN_POINTS },
	{ "pthread_rwlock_timedwrlock", FH_KIND_RWLOCK_WRITE, OP_ACQUIRE },
	{ "pthread_rwlock_clockwrlock", FH_KIND_RWLOCK_WRITE, OP_ACQUIRE },
	{ "pthread_rwlock_unlock",      FH_KIND_RWLOCK_READ,  OP_RELEASE, 0, FN_POINTS },
	/* A semaphore's or spinlock's word cannot tell its holder from a
	 * waiter (a spinning one, for a spinlock): confirmed acquisitions only. */
	{ "sem_wait",                   FH_KIND_SEM,          OP_ACQUIRE_RET, 0, FN_POINTS },
	{ "sem_trywait",                FH_KIND_SEM,          OP_ACQUIRE_RET, FH_PROBE_TRY, FN_POINTS },
	{ "sem_timedwait",              FH_KIND_SEM,          OP_ACQUIRE_RET, 0, FN_POINTS },
	{ "sem_clockwait",              FH_KIND_SEM,          OP_ACQUIRE_RET, 0, FN_POINTS },
	{ "sem_destroy",                FH_KIND_SEM,          OP_FREE },
	{ "pthread_spin_lock",          FH_KIND_SPIN,         OP_ACQUIRE_RET, 0, FN_POINTS },
	{ "pthread_spin_trylock",       FH_KIND_SPIN,         OP_ACQUIRE_RET, FH_PROBE_TRY, FN_POINTS },
};
#define N_LOCK_FNS	(sizeof(lock_fns) / sizeof(lock_fns[0]))
#define N_LINK_OPS	4		/* one uprobe_multi link per lock_op */
#define MAX_FN_POINTS	4		/* success points kept per function */
#define MAX_POINTS	(N_LOCK_FNS * ELF_MAX_ALIASES * 2)

#define MAX_MODULES		64	/* distinct lock libraries on the machine */
#define MAX_MODS_PER_PROC	8
#define MAX_LOCK_FNS		8	/* --lock-fn specs */

/* A library (or static executable) resolved once, probed in any number of
 * processes. nfns == 0: resolved, and nothing to probe in it. */
struct lock_module {
	dev_t dev;
	ino_t ino;
	int npoints[N_LINK_OPS];
	unsigned long off[N_LINK_OPS][MAX_POINTS];
	__u64 cookie[N_LINK_OPS][MAX_POINTS];
	int nfns;
	int npoints_zf;		/* of the points: success points */
	int global_links[N_LINK_OPS];	/* system-wide links, -1 if none */
	bool told;		/* -v said it has no lock functions */
};

struct probed_proc {
	pid_t pid;
	int pidfd;
	unsigned int hit_slot;	/* its counter in the lock_hits map; 0: none */
	int nmods;
	struct {
		struct lock_module *mod;
		int links[N_LINK_OPS];
	} mods[MAX_MODS_PER_PROC];
};

/* --lock-fn BINARY:ACQUIRE:RELEASE[:TRY] */
struct user_lock_fn {
	char binary[256];
	char acquire[128], release[128];
	bool try_ret;
	dev_t dev;
	ino_t ino;
};

struct probes {
	int prog_fd[N_LINK_OPS];
	int hits_fd;		/* the lock_hits map, or -1 */
	bool at_entry;		/* never move probes off function entries */
	struct lock_module modules[MAX_MODULES];
	int nmodules;
	struct user_lock_fn user_fns[MAX_LOCK_FNS];
	int nuser_fns;
	struct probed_proc *procs;
	int nprocs, max_procs, refused;
	bool *slot_used;	/* lock_hits slots 1..max_procs in use */
	int links;
};

struct probes *probes_new(const struct probes_opts *o)
{
	struct probes *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->procs = calloc((size_t)o->max_procs, sizeof(*p->procs));
	p->slot_used = calloc((size_t)o->max_procs + 1, sizeof(*p->slot_used));
	if (!p->procs || !p->slot_used) {
		free(p->procs);
		free(p->slot_used);
		free(p);
		return NULL;
	}
	p->hits_fd = o->hits_fd;
	p->prog_fd[OP_ACQUIRE] = o->acquire_fd;
	p->prog_fd[OP_ACQUIRE_RET] = o->acquired_fd;
	p->prog_fd[OP_RELEASE] = o->release_fd;
	p->prog_fd[OP_FREE] = o->release_fd;
	p->max_procs = o->max_procs;
	p->at_entry = o->at_entry;
	return p;
}

int probes_add_lock_fn(struct probes *p, const char *spec)
{
	struct user_lock_fn *u;
	char buf[512], *fields[5] = { 0 }, *rest = buf, *tok;
	struct stat st;
	int n = 0;

	if (p->nuser_fns == MAX_LOCK_FNS)
		return -ENOSPC;
	if (snprintf(buf, sizeof(buf), "%s", spec) >= (int)sizeof(buf))
		return -EINVAL;
	while (n < 5 && (tok = strsep(&rest, ":")))
		fields[n++] = tok;
	if (n < 3 || n > 4 || !fields[0][0] || !fields[1][0] || !fields[2][0] ||
	    strlen(fields[0]) >= sizeof(u->binary) || strlen(fields[1]) >= sizeof(u->acquire) ||
	    strlen(fields[2]) >= sizeof(u->release))
		return -EINVAL;
	if (n == 4 && strcmp(fields[3], "TRY"))
		return -EINVAL;
	if (stat(fields[0], &st))
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	u = &p->user_fns[p->nuser_fns++];
	snprintf(u->binary, sizeof(u->binary), "%s", fields[0]);
	snprintf(u->acquire, sizeof(u->acquire), "%s", fields[1]);
	snprintf(u->release, sizeof(u->release), "%s", fields[2]);
	u->try_ret = n == 4;
	u->dev = st.st_dev;
	u->ino = st.st_ino;
	return 0;
}

static void close_links(struct probes *p, int links[N_LINK_OPS])
{
	for (int i = 0; i < N_LINK_OPS; i++) {
		if (links[i] >= 0) {
			close(links[i]);
			p->links--;
		}
		links[i] = -1;
	}
}

static void release_proc(struct probes *p, struct probed_proc *pp)
{
	for (int m = 0; m < pp->nmods; m++)
		close_links(p, pp->mods[m].links);
	if (pp->pidfd >= 0)
		close(pp->pidfd);
	p->slot_used[pp->hit_slot] = false;
	*pp = p->procs[--p->nprocs];
}

/* A free lock_hits slot for a new process, its per-CPU counters zeroed; 0
 * (counted nowhere) if the map is not there or cannot be written. */
static unsigned int take_hit_slot(struct probes *p)
{
	int ncpus = libbpf_num_possible_cpus();
	__u64 *zero;

	if (p->hits_fd < 0 || ncpus <= 0)
		return 0;
	for (int i = 1; i <= p->max_procs; i++) {
		__u32 key = (__u32)i;
		int err;

		if (p->slot_used[i])
			continue;
		zero = calloc((size_t)ncpus, sizeof(*zero));
		if (!zero)
			return 0;
		err = bpf_map_update_elem(p->hits_fd, &key, zero, BPF_ANY);
		free(zero);
		if (err)
			return 0;
		p->slot_used[i] = true;
		return (unsigned int)i;
	}
	return 0;
}

int probes_hits(const struct probes *p, pid_t pid, uint64_t *hits)
{
	int ncpus = libbpf_num_possible_cpus();

	for (int i = 0; i < p->nprocs; i++) {
		const struct probed_proc *pp = &p->procs[i];
		__u32 key = pp->hit_slot;
		__u64 *per_cpu;
		int err = 0;

		if (pp->pid != pid)
			continue;
		if (!key || ncpus <= 0)
			return -ENODATA;
		per_cpu = calloc((size_t)ncpus, sizeof(*per_cpu));
		if (!per_cpu)
			return -ENOMEM;
		if (bpf_map_lookup_elem(p->hits_fd, &key, per_cpu)) {
			err = -errno;
		} else {
			*hits = 0;
			for (int c = 0; c < ncpus; c++)
				*hits += per_cpu[c];
		}
		free(per_cpu);
		return err;
	}
	return -ENOENT;
}

void probes_free(struct probes *p)
{
	if (!p)
		return;
	while (p->nprocs)
		release_proc(p, &p->procs[0]);
	for (int i = 0; i < p->nmodules; i++)
		close_links(p, p->modules[i].global_links);
	free(p->procs);
	free(p->slot_used);
	free(p);
}

/* Is this mapping a C library whose lock functions we probe? */
static bool is_c_library(const char *path)
{
	enum clib_file k = clib_file_of(path);

	return k == CLIB_GLIBC || k == CLIB_MUSL;
}

/* Where to probe one lock function: the cheapest point every call passes
 * (placement.c), or its entry. A return probe must sit where the return
 * address is on top of the stack: the kernel replaces it there. */
static void place_probe(struct probes *p, int fd, const struct elf_func *f, int alias,
			bool need_ret_on_top, bool refire_ok, const char *path, struct probe_point *pp)
{
	unsigned char code[4096];
	size_t len = f->size[alias] && f->size[alias] < sizeof(code) ? f->size[alias] : sizeof(code);
	ssize_t n;

	memset(pp, 0, sizeof(*pp));
	snprintf(pp->insn, sizeof(pp->insn), "entry");
#if defined(__x86_64__)
	n = pread(fd, code, len, (off_t)f->file_offset[alias]);
	if (n <= 0)
		goto out;
	/* --probe-at-entry keeps the entry, unless no uprobe can sit there
	 * (pthread_spin_lock starts with a lock-prefixed instruction). */
	if (p->at_entry && placement_probeable(code, (size_t)n))
		goto out;
	if (placement_choose(code, (size_t)n, f->file_offset[alias], refire_ok ? PLACE_REFIRE_OK : 0,
			     pp) == 0 && need_ret_on_top &&
	    pp->ret_slot) {
		memset(pp, 0, sizeof(*pp));
		snprintf(pp->insn, sizeof(pp->insn), "entry");
	}
	if (!pp->offset && !placement_probeable(code, (size_t)n))
		pp->unprobeable = 1;
out:
#else
	(void)p, (void)fd, (void)code, (void)len, (void)n, (void)need_ret_on_top, (void)refire_ok;
#endif
	log_debug("%s: %s probed at +0x%llx (%s%s)", path, f->name, (unsigned long long)pp->offset,
		  pp->insn, pp->emulated ? ", emulated" : ", single-stepped");
}

static void add_point(struct lock_module *mod, enum lock_op op, unsigned long off, __u64 cookie)
{
	for (int i = 0; i < mod->npoints[op]; i++)
		if (mod->off[op][i] == off)
			return;	/* an alias of a function already probed */
	if (mod->npoints[op] < (int)MAX_POINTS) {
		mod->off[op][mod->npoints[op]] = off;
		mod->cookie[op][mod->npoints[op]++] = cookie;
	} else {
		log_warn("too many lock probe points in one library: one left out");
	}
}

/* Functions that never return: the success-point analysis ends a path at a
 * call to one (glibc's lock functions call the first two on fatal errors). */
static const char *const noreturn_names[] = {
	"__stack_chk_fail", "__libc_fatal", "__fortify_fail", "__chk_fail", "__assert_fail",
	"abort", "_exit", "exit",
};
#define N_NORETURN	(sizeof(noreturn_names) / sizeof(noreturn_names[0]))

/* A lock library's code, as placement.c reads it: file offsets throughout
 * (branches within the text segment keep their distances). */
struct module_code {
	int fd;
	uint64_t noreturn[N_NORETURN * ELF_MAX_ALIASES];
	size_t nnoreturn;
};

static size_t read_module_code(void *ctx, uint64_t off, uint8_t *buf, size_t len)
{
	const struct module_code *mc = ctx;
	ssize_t n = pread(mc->fd, buf, len, (off_t)off);

	return n > 0 ? (size_t)n : 0;
}

static void module_code_init(struct module_code *mc, int fd)
{
	struct elf_func funcs[N_NORETURN];

	memset(mc, 0, sizeof(*mc));
	mc->fd = fd;
	for (size_t i = 0; i < N_NORETURN; i++)
		funcs[i].name = noreturn_names[i];
	if (elf_find_funcs(fd, funcs, N_NORETURN))
		return;
	for (size_t i = 0; i < N_NORETURN; i++)
		for (int a = 0; a < funcs[i].n; a++)
			mc->noreturn[mc->nnoreturn++] = funcs[i].file_offset[a];
}

/*
 * Probe one function at its success points (placement.h) rather than at its
 * entry and return: one trap per successful acquisition (or read unlock)
 * instead of two or more. Returns the number of points added, or <= 0 when
 * the function has none the analysis can vouch for.
 */
static int add_success_points(struct probes *p, struct lock_module *mod,
			      const struct module_code *mc, const struct elf_func *f, int alias,
			      enum fh_lock_kind kind, enum lock_op op, unsigned int flags,
			      enum fh_layout layout, const char *path)
{
#if defined(__x86_64__)
	struct placement_code code = { read_module_code, (void *)mc, mc->noreturn,
				       mc->nnoreturn };
	struct success_point sp[MAX_FN_POINTS];
	int n;

	if (p->at_entry || !f->size[alias])
		return 0;
	n = placement_success_points(&code, f->file_offset[alias], f->size[alias],
				     /* the writer half of pthread_rwlock_unlock
				      * clears __cur_writer before releasing */
				     op == OP_RELEASE && layout == FH_LAYOUT_GLIBC ?
				     GLIBC_RWLOCK_CUR_WRITER : -1, sp, MAX_FN_POINTS);
	for (int i = 0; i < n; i++) {
		__u64 cookie = FH_COOKIE(kind, sp[i].ret_slot, layout,
					 flags | FH_PROBE_ZF_SUCCESS |
					 (sp[i].keeps_fp ? 0 : FH_PROBE_NO_FP)) |
			       ((__u64)sp[i].reg << FH_COOKIE_REG_SHIFT);

		add_point(mod, op == OP_RELEASE ? OP_RELEASE : OP_ACQUIRE, sp[i].offset, cookie);
		log_debug("%s: %s probed at a success point, file offset 0x%llx (lock in register %u)",
			  path, f->name, (unsigned long long)sp[i].offset, sp[i].reg);
	}
	if (n > 0)
		mod->npoints_zf += n;
	return n;
#else
	(void)p, (void)mod, (void)mc, (void)f, (void)alias, (void)kind, (void)op, (void)flags,
	(void)layout, (void)path;
	return 0;
#endif
}

/* Add the probe points of (name, kind, op) found in funcs[i]. */
static void add_function(struct probes *p, struct lock_module *mod, const struct module_code *mc,
			 const char *path, const struct elf_func *f, const struct lock_fn *fn,
			 enum fh_layout layout)
{
	enum lock_op op = fn->op;

	if ((fn->how & FN_MUSL) && layout != FH_LAYOUT_MUSL)
		return;
	for (int a = 0; a < f->n; a++) {
		struct probe_point pp;
		__u64 cookie;

		if ((fn->how & FN_POINTS) &&
		    add_success_points(p, mod, mc, f, a, fn->kind, op, fn->flags, layout, path) > 0) {
			mod->nfns++;
			continue;
		}
		/* A pending acquisition rewritten, a return seen twice: harmless
		 * repeats (not so for a recursive mutex's depth). */
		place_probe(p, mc->fd, f, a, op == OP_ACQUIRE_RET, op == OP_ACQUIRE_RET, path, &pp);
		if (pp.unprobeable) {
			log_info("%s: %s cannot carry a uprobe: not tracked", path, f->name);
			continue;
		}
		cookie = FH_COOKIE(fn->kind, pp.ret_slot, layout,
				   fn->flags | (op == OP_ACQUIRE_RET ? FH_PROBE_CONFIRM_RET : 0));
		if (op == OP_ACQUIRE_RET) {
			/* entry and return at the same point: one trap for both */
			add_point(mod, OP_ACQUIRE, f->file_offset[a] + pp.offset, cookie);
			add_point(mod, OP_ACQUIRE_RET, f->file_offset[a] + pp.offset, cookie);
		} else {
			add_point(mod, op, f->file_offset[a] + pp.offset, cookie);
		}
		mod->nfns++;
	}
}

/* Is this ELF file musl's? Its C library has a telling name; a static musl
 * executable has musl's start-up function in its symbol table. */
static enum fh_layout detect_layout(int fd, const char *path)
{
	struct elf_func musl = { .name = "__init_libc" };
	if (clib_file_of(path) == CLIB_MUSL)
		return FH_LAYOUT_MUSL;
	if (elf_find_funcs(fd, &musl, 1) == 0 && musl.n)
		return FH_LAYOUT_MUSL;
	return FH_LAYOUT_GLIBC;
}

static struct lock_module *find_module(struct probes *p, dev_t dev, ino_t ino)
{
	for (int i = 0; i < p->nmodules; i++)
		if (p->modules[i].dev == dev && p->modules[i].ino == ino)
			return &p->modules[i];
	return NULL;
}

/* Resolve the probe points of the ELF file open at fd (dev, ino; `name` for
 * messages): a C library, a static executable, or a binary named by
 * --lock-fn. The result is kept: each file is read once. */
static int resolve_fd(struct probes *p, int fd, dev_t dev, ino_t ino, const char *name,
		      struct lock_module **out)
{
	struct elf_func funcs[N_LOCK_FNS], user[2];
	struct lock_fn acquire = { .kind = FH_KIND_CUSTOM }, release = {
		.kind = FH_KIND_CUSTOM, .op = OP_RELEASE };
	struct module_code mc;
	struct lock_module *mod;
	enum fh_layout layout;
	int err;

	if (p->nmodules == MAX_MODULES)
		return -ENOSPC;
	for (size_t i = 0; i < N_LOCK_FNS; i++)
		funcs[i].name = lock_fns[i].name;
	err = elf_find_funcs(fd, funcs, N_LOCK_FNS);
	if (err)
		return err;

	mod = &p->modules[p->nmodules++];
	memset(mod, 0, sizeof(*mod));
	mod->dev = dev;
	mod->ino = ino;
	for (int op = 0; op < N_LINK_OPS; op++)
		mod->global_links[op] = -1;
	layout = detect_layout(fd, name);
	module_code_init(&mc, fd);
	for (size_t i = 0; i < N_LOCK_FNS; i++)
		add_function(p, mod, &mc, name, &funcs[i], &lock_fns[i], layout);
	for (int u = 0; u < p->nuser_fns; u++) {
		const struct user_lock_fn *uf = &p->user_fns[u];

		if (uf->dev != dev || uf->ino != ino)
			continue;
		user[0].name = uf->acquire;
		user[1].name = uf->release;
		if (elf_find_funcs(fd, user, 2) || !user[0].n || !user[1].n) {
			log_warn("--lock-fn: %s has no function %s or %s", uf->binary, uf->acquire,
				 uf->release);
			continue;
		}
		acquire.name = uf->acquire;
		acquire.op = uf->try_ret ? OP_ACQUIRE_RET : OP_ACQUIRE;
		release.name = uf->release;
		add_function(p, mod, &mc, name, &user[0], &acquire, layout);
		add_function(p, mod, &mc, name, &user[1], &release, layout);
	}
	if (!mod->npoints[OP_ACQUIRE] && !mod->npoints[OP_ACQUIRE_RET])
		mod->nfns = 0;
	*out = mod;
	if (!mod->nfns)
		return -ENODATA;
	log_debug("lock functions in %s (%s layout): %d acquisition points (%d of them success points), %d return, %d release points",
		  name, layout == FH_LAYOUT_MUSL ? "musl" : "glibc", mod->npoints[OP_ACQUIRE],
		  mod->npoints_zf, mod->npoints[OP_ACQUIRE_RET], mod->npoints[OP_RELEASE]);
	return 0;
}

/* Resolve the file behind one mapping of pid. */
static int resolve_module(struct probes *p, pid_t pid, const struct fh_mapping *m,
			  struct lock_module **out)
{
	dev_t dev = makedev(m->dev_major, m->dev_minor);
	struct lock_module *mod = find_module(p, dev, m->inode);
	char path[96];
	int fd, err;

	if (mod) {
		*out = mod;
		return mod->nfns ? 0 : -ENODATA;
	}
	/* map_files is the exact file mapped: right in any mount namespace,
	 * and still there if the file was deleted or replaced. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = resolve_fd(p, fd, dev, m->inode, m->path, out);
	close(fd);
	return err;
}

/* The links of one module, for one process (pid, counted in lock_hits slot
 * hit_slot) or every process (pid 0). */
static int attach_module(struct probes *p, struct lock_module *mod, const char *path,
			 pid_t pid, unsigned int hit_slot, int links[N_LINK_OPS])
{
	__u64 cookies[MAX_POINTS];

	for (int op = 0; op < N_LINK_OPS; op++)
		links[op] = -1;
	for (int op = 0; op < N_LINK_OPS; op++) {
		if (!mod->npoints[op])
			continue;
		for (int i = 0; i < mod->npoints[op]; i++)
			cookies[i] = mod->cookie[op][i] | ((__u64)hit_slot << FH_COOKIE_HIT_SLOT_SHIFT);
		links[op] = uprobe_multi_link(p->prog_fd[op], path, mod->off[op], cookies,
					      mod->npoints[op], pid, op == OP_ACQUIRE_RET);
		if (links[op] < 0) {
			int err = links[op];

			links[op] = -1;
			close_links(p, links);
			return err;
		}
		p->links++;
	}
	return 0;
}

static struct probed_proc *find_proc(struct probes *p, pid_t pid)
{
	for (int i = 0; i < p->nprocs; i++)
		if (p->procs[i].pid == pid)
			return &p->procs[i];
	return NULL;
}

struct attach_walk {
	struct probes *p;
	pid_t pid;		/* whose mappings are read */
	pid_t target;		/* whose probes they are (the link's PID filter) */
	bool per_process;
	struct probed_proc *pp;
	struct stat exe;	/* the process's executable: maybe static */
	bool loader;		/* it maps a dynamic loader */
	int found, attached, err;
};

static bool is_candidate(const struct attach_walk *w, const struct fh_mapping *m)
{
	dev_t dev = makedev(m->dev_major, m->dev_minor);

	if (m->perms[2] != 'x' || !m->path[0] || m->path[0] == '[')
		return false;
	if (is_c_library(m->path))
		return true;
	if (dev == w->exe.st_dev && m->inode == w->exe.st_ino)
		return true;	/* a static executable carries its own */
	for (int u = 0; u < w->p->nuser_fns; u++)
		if (dev == w->p->user_fns[u].dev && m->inode == w->p->user_fns[u].ino)
			return true;
	return false;
}

/* Attach the probes of a resolved module (unless it has them already), the
 * file named by link_path (a map_files entry, or a path); name for messages. */
static int attach_resolved(struct attach_walk *w, struct lock_module *mod, const char *link_path,
			   const char *name)
{
	int links[N_LINK_OPS], err;

	if (!w->per_process) {
		if (mod->global_links[OP_ACQUIRE] >= 0 || mod->global_links[OP_ACQUIRE_RET] >= 0)
			return 0;
	} else {
		for (int i = 0; i < w->pp->nmods; i++)
			if (w->pp->mods[i].mod == mod)
				return 0;
		if (w->pp->nmods == MAX_MODS_PER_PROC)
			return 0;
	}
	err = attach_module(w->p, mod, link_path, w->per_process ? w->target : 0,
			    w->per_process ? w->pp->hit_slot : 0, links);
	if (err) {
		log_warn("cannot attach lock probes to %s for PID %d: %s", name, (int)w->target,
			 strerror(-err));
		w->err = err;
		return err == -ENOTSUP ? err : 0;
	}
	if (w->per_process) {
		w->pp->mods[w->pp->nmods].mod = mod;
		memcpy(w->pp->mods[w->pp->nmods].links, links, sizeof(links));
		w->pp->nmods++;
	} else {
		memcpy(mod->global_links, links, sizeof(links));
	}
	w->attached++;
	log_info("lock probes on %s for %s", name,
		 w->per_process ? "this process only" : "every process");
	return 0;
}

static int attach_mapping(const struct fh_mapping *m, void *ctx)
{
	struct attach_walk *w = ctx;
	struct lock_module *mod = NULL;
	char path[96];
	int err;

	if (m->path[0] == '/' && clib_file_of(m->path) == CLIB_LOADER)
		w->loader = true;
	if (!is_candidate(w, m))
		return 0;
	err = resolve_module(w->p, w->pid, m, &mod);
	if (err) {
		if (err != -ENODATA)
			log_warn("cannot read %s of PID %d: %s", m->path, (int)w->pid, strerror(-err));
		return 0;
	}
	w->found++;
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)w->pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	return attach_resolved(w, mod, path, m->path);
}

/*
 * Attach the probes of a file by its path, mapped or not yet: uprobes belong
 * to the file, and the kernel places them in whatever process maps it later
 * (for per-process links, in that process only). Returns 0, -ENODATA (no
 * lock functions) or -errno.
 */
static int attach_path(struct attach_walk *w, const char *path)
{
	struct lock_module *mod;
	struct stat st;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st)) {
		err = -errno;
		close(fd);
		return err;
	}
	mod = find_module(w->p, st.st_dev, st.st_ino);
	if (mod)
		err = mod->nfns ? 0 : -ENODATA;
	else
		err = resolve_fd(w->p, fd, st.st_dev, st.st_ino, path, &mod);
	close(fd);
	if (err)
		return err;
	w->found++;
	err = attach_resolved(w, mod, path, path);
	return err ? err : w->err;
}

/* --lock-fn binaries: probed before they are mapped (a library loaded by
 * dlopen or by the loader after exec would otherwise race its first lock). */
static void attach_user_binaries(struct attach_walk *w)
{
	for (int u = 0; u < w->p->nuser_fns; u++) {
		int err = attach_path(w, w->p->user_fns[u].binary);

		if (err && err != -ENODATA && err != -ENOTSUP)
			log_warn("--lock-fn: cannot probe %s: %s", w->p->user_fns[u].binary,
				 strerror(-err));
	}
}

/* argv[0] as execvp() finds it. Returns 0 or -ENOENT. */
static int resolve_program(const char *program, char *out, size_t size)
{
	const char *path = getenv("PATH"), *p, *end;

	if (strchr(program, '/'))
		return snprintf(out, size, "%s", program) < (int)size && !access(out, X_OK) ?
		       0 : -ENOENT;
	for (p = path ? path : "/usr/local/bin:/usr/bin:/bin"; *p; p = *end ? end + 1 : end) {
		end = strchrnul(p, ':');
		if (snprintf(out, size, "%.*s/%s", (int)(end - p), end > p ? p : ".", program) <
		    (int)size && !access(out, X_OK))
			return 0;
	}
	return -ENOENT;
}

/* The PT_INTERP of an ELF executable. Returns 0, -ENODATA (none: static)
 * or -errno. */
static int elf_interpreter(const char *file, char *out, size_t size)
{
	Elf64_Ehdr eh;
	Elf64_Phdr ph;
	ssize_t n;
	int fd = open(file, O_RDONLY | O_CLOEXEC), err = -ENODATA;

	if (fd < 0)
		return -errno;
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) || memcmp(eh.e_ident, ELFMAG, SELFMAG) ||
	    eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_phentsize != sizeof(ph)) {
		close(fd);
		return -ENOEXEC;
	}
	for (int i = 0; i < eh.e_phnum && err == -ENODATA; i++) {
		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + (uint64_t)i * sizeof(ph))) !=
		    sizeof(ph)) {
			err = -ENOEXEC;
			break;
		}
		if (ph.p_type != PT_INTERP)
			continue;
		if (!ph.p_filesz || ph.p_filesz >= size) {
			err = -ENOEXEC;
			break;
		}
		n = pread(fd, out, ph.p_filesz, (off_t)ph.p_offset);
		if (n != (ssize_t)ph.p_filesz) {
			err = -ENOEXEC;
			break;
		}
		out[n] = '\0';
		err = 0;
	}
	close(fd);
	return err;
}

/* Our own C library, as a stand-in for the one a process will map. */
static int find_own_libc(const struct fh_mapping *m, void *ctx)
{
	struct attach_walk *w = ctx;

	if (m->perms[2] != 'x' || !is_c_library(m->path))
		return 0;
	return attach_mapping(m, w) ? -EIO : 1;
}

/* Resolve our own C library, as probes_prepare() wants. */
static int resolve_own_libc(const struct fh_mapping *m, void *ctx)
{
	struct lock_module *mod;

	if (m->perms[2] != 'x' || !is_c_library(m->path))
		return 0;
	resolve_module(ctx, getpid(), m, &mod);
	return 0;
}

int probes_prepare(struct probes *p)
{
	return procfs_for_each_mapping(getpid(), resolve_own_libc, p);
}

/*
 * A process caught between exec and its dynamic loader mapping the C library
 * (a --comm process, a COMMAND) has nothing to probe yet. Per-process uprobes
 * follow the file, not the mapping: probing the C library this machine's
 * programs use makes the kernel install them when the loader maps it.
 */
static int attach_default_libc(struct attach_walk *w)
{
	struct attach_walk self = *w;
	int ret;

	self.pid = getpid();	/* resolve through our own mappings... */
	ret = procfs_for_each_mapping(self.pid, find_own_libc, &self);
	if (ret == 1 && self.attached > w->attached) {
		/* ...for the traced process (self.target): the links and
		 * the modules it now has are recorded in w->pp. */
		w->attached = self.attached;
		return 0;
	}
	return -ENODATA;
}

/* -v, once per executable: a process with nothing to probe. */
static void tell_no_lock_fns(struct attach_walk *w)
{
	struct lock_module *mod = find_module(w->p, w->exe.st_dev, w->exe.st_ino);
	char link[64], exe[PATH_MAX];
	ssize_t n;

	if (!mod || mod->told)
		return;
	mod->told = true;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)w->pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	log_info("%s: no lock functions recognized (no known C library mapped, none in the executable): its locks are not tracked",
		 exe[0] ? exe : link);
}

int probes_attach_process(struct probes *p, pid_t pid, bool per_process)
{
	struct attach_walk w = { .p = p, .pid = pid, .target = pid, .per_process = per_process };
	bool new_proc = false;
	char exe[64];
	int err;

	snprintf(exe, sizeof(exe), "/proc/%d/exe", (int)pid);
	if (stat(exe, &w.exe))
		memset(&w.exe, 0, sizeof(w.exe));
	if (per_process) {
		w.pp = find_proc(p, pid);
		if (!w.pp) {
			int pidfd;

			if (p->nprocs == p->max_procs) {
				if (p->refused++ == 0)
					log_warn("more than %d processes to probe: further ones get no lock probes (raise --max-procs)",
						 p->max_procs);
				return -ENOSPC;
			}
			pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
			if (pidfd < 0)
				return errno == ESRCH ? -ENOENT : -errno;
			w.pp = &p->procs[p->nprocs++];
			memset(w.pp, 0, sizeof(*w.pp));
			w.pp->pid = pid;
			w.pp->pidfd = pidfd;
			w.pp->hit_slot = take_hit_slot(p);
			new_proc = true;
		}
	}
	err = procfs_for_each_mapping(pid, attach_mapping, &w);
	if (err == -ENOENT || err == -ESRCH)
		err = -ENOENT;
	if (!err && per_process && w.err != -ENOTSUP) {
		if (!w.found && w.loader)
			attach_default_libc(&w);
		attach_user_binaries(&w);
	}
	if (!err && w.err == -ENOTSUP)
		err = -ENOTSUP;
	if (!err && !w.found && !w.attached) {
		tell_no_lock_fns(&w);
		err = -ENODATA;
	}
	if (err && new_proc)
		release_proc(p, w.pp);
	if (err)
		return err;
	return w.attached;
}

int probes_detach_process(struct probes *p, pid_t pid)
{
	struct probed_proc *pp = find_proc(p, pid);

	if (!pp)
		return -ENOENT;
	/* Its pidfd and hit slot stay: the counters go on from where they were
	 * when probes_attach_process() gives it its links back. */
	for (int m = 0; m < pp->nmods; m++)
		close_links(p, pp->mods[m].links);
	pp->nmods = 0;
	return 0;
}

int probes_attach_everywhere(struct probes *p)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int total = 0;

	if (!d)
		return -errno;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		int n;

		if (*end || pid <= 0 || pid == getpid())
			continue;
		n = probes_attach_process(p, (pid_t)pid, false);
		if (n == -ENOTSUP) {
			closedir(d);
			return n;
		}
		if (n > 0)
			total += n;
	}
	closedir(d);
	if (p->nuser_fns) {
		struct attach_walk w = { .p = p, .pid = getpid() };

		attach_user_binaries(&w);
		if (w.err == -ENOTSUP)
			return w.err;
		total += w.attached;
	}
	return total;
}

/*
 * The program a process is about to exec (a COMMAND held before its exec):
 * probe, for that process, the C library it will run on when that can be told
 * from the file alone: the executable itself when it is static, its program
 * interpreter when that is the C library (musl's ld-musl-*.so.1 is its
 * libc). Probing only after exec would race the program's first threads.
 * Returns the number of files newly probed or -errno.
 */
int probes_attach_program(struct probes *p, pid_t pid, const char *program)
{
	struct attach_walk w = { .p = p, .pid = pid, .target = pid, .per_process = true };
	char file[PATH_MAX], interp[PATH_MAX];
	int err;

	w.pp = find_proc(p, pid);
	if (!w.pp)
		return -ENOENT;	/* probes_attach_process() first */
	if (resolve_program(program, file, sizeof(file)))
		return -ENOENT;
	err = elf_interpreter(file, interp, sizeof(interp));
	if (err == -ENODATA)
		err = attach_path(&w, file);		/* static */
	else if (!err && is_c_library(interp))
		err = attach_path(&w, interp);
	else if (!err)
		return 0;	/* glibc's loader: libc comes later, as a mapping */
	if (err && err != -ENODATA)
		return err;
	return w.attached;
}

void probes_reap_exited(struct probes *p, void (*gone)(void *ctx, pid_t pid), void *ctx)
{
	for (int i = 0; i < p->nprocs;) {
		struct pollfd pfd = { .fd = p->procs[i].pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 0) == 1) {
			pid_t pid = p->procs[i].pid;

			log_debug("PID %d exited: lock probes released", (int)pid);
			release_proc(p, &p->procs[i]);
			if (gone)
				gone(ctx, pid);
			continue;	/* the last entry moved into slot i */
		}
		i++;
	}
}

void probes_get_stats(const struct probes *p, struct probes_stats *st)
{
	st->modules = p->nmodules;
	st->procs = p->nprocs;
	st->procs_refused = p->refused;
	st->links = p->links;
}

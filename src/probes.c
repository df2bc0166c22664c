// SPDX-License-Identifier: GPL-2.0
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "elfsyms.h"
#include "forkhazard.h"
#include "log.h"
#include "placement.h"
#include "probes.h"
#include "procfs.h"

/* The lock functions probed in each C library. Adding a kind is a row here. */
static const struct lock_fn {
	const char *name;
	enum fh_lock_kind kind;
	bool release;
} lock_fns[] = {
	{ "pthread_mutex_lock",      FH_KIND_MUTEX, false },
	{ "pthread_mutex_trylock",   FH_KIND_MUTEX, false },
	{ "pthread_mutex_timedlock", FH_KIND_MUTEX, false },
	{ "pthread_mutex_clocklock", FH_KIND_MUTEX, false },
	{ "pthread_mutex_unlock",    FH_KIND_MUTEX, true },
};
#define N_LOCK_FNS (sizeof(lock_fns) / sizeof(lock_fns[0]))
#define MAX_POINTS (N_LOCK_FNS * ELF_MAX_ALIASES)

#define MAX_MODULES		64	/* distinct lock libraries on the machine */
#define MAX_MODS_PER_PROC	4

/* A C library resolved once, probed in any number of processes. */
struct lock_module {
	dev_t dev;
	ino_t ino;
	int nacq, nrel;
	unsigned long acq_off[MAX_POINTS], rel_off[MAX_POINTS];
	__u64 acq_cookie[MAX_POINTS], rel_cookie[MAX_POINTS];
	int global_links[2];	/* system-wide links, -1 if none */
};

struct probed_proc {
	pid_t pid;
	int pidfd;
	int nmods;
	struct {
		struct lock_module *mod;
		int links[2];
	} mods[MAX_MODS_PER_PROC];
};

struct probes {
	int prog_fd[2];		/* acquire, release */
	bool at_entry;		/* never move probes off function entries */
	struct lock_module modules[MAX_MODULES];
	int nmodules;
	struct probed_proc *procs;
	int nprocs, max_procs, refused;
	int links;
};

struct probes *probes_new(int acquire_prog_fd, int release_prog_fd, int max_procs, bool at_entry)
{
	struct probes *p = calloc(1, sizeof(*p));

	if (!p)
		return NULL;
	p->procs = calloc((size_t)max_procs, sizeof(*p->procs));
	if (!p->procs) {
		free(p);
		return NULL;
	}
	p->prog_fd[0] = acquire_prog_fd;
	p->prog_fd[1] = release_prog_fd;
	p->max_procs = max_procs;
	p->at_entry = at_entry;
	return p;
}

static void close_links(struct probes *p, int links[2])
{
	for (int i = 0; i < 2; i++) {
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
	*pp = p->procs[--p->nprocs];
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
	free(p);
}

/* Is this mapping a library whose lock functions we probe? */
static bool is_lock_library(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return strncmp(base, "libc.so", 7) == 0 || strncmp(base, "libc-2.", 7) == 0 ||
	       strncmp(base, "libpthread.so", 13) == 0 || strncmp(base, "libpthread-", 11) == 0;
}

/* Where to probe one lock function: the cheapest point every call passes
 * (placement.c), or its entry. */
static void place_probe(struct probes *p, int fd, const struct elf_func *f, int alias,
			const char *path, struct probe_point *pp)
{
	unsigned char code[4096];
	size_t len = f->size[alias] && f->size[alias] < sizeof(code) ? f->size[alias] : sizeof(code);
	ssize_t n;

	memset(pp, 0, sizeof(*pp));
	snprintf(pp->insn, sizeof(pp->insn), "entry");
#if defined(__x86_64__)
	if (!p->at_entry) {
		n = pread(fd, code, len, (off_t)f->file_offset[alias]);
		if (n > 0)
			placement_choose(code, (size_t)n, f->file_offset[alias], pp);
	}
#else
	(void)p, (void)fd, (void)code, (void)len, (void)n;
#endif
	log_debug("%s: %s probed at +0x%llx (%s%s)", path, f->name, (unsigned long long)pp->offset,
		  pp->insn, pp->emulated ? ", emulated" : ", single-stepped");
}

/* Resolve the probe points of the library behind one mapping of pid. */
static int resolve_module(struct probes *p, pid_t pid, const struct fh_mapping *m,
			  struct lock_module **out)
{
	struct elf_func funcs[N_LOCK_FNS];
	dev_t dev = makedev(m->dev_major, m->dev_minor);
	struct lock_module *mod;
	char path[96];
	int fd, err;

	for (int i = 0; i < p->nmodules; i++) {
		if (p->modules[i].dev == dev && p->modules[i].ino == m->inode) {
			*out = &p->modules[i];
			return 0;
		}
	}
	if (p->nmodules == MAX_MODULES)
		return -ENOSPC;

	/* map_files is the exact file mapped: right in any mount namespace,
	 * and still there if the file was deleted or replaced. */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	for (size_t i = 0; i < N_LOCK_FNS; i++)
		funcs[i].name = lock_fns[i].name;
	err = elf_find_funcs(fd, funcs, N_LOCK_FNS);
	if (err) {
		close(fd);
		return err;
	}

	mod = &p->modules[p->nmodules];
	memset(mod, 0, sizeof(*mod));
	mod->dev = dev;
	mod->ino = m->inode;
	mod->global_links[0] = mod->global_links[1] = -1;
	for (size_t i = 0; i < N_LOCK_FNS; i++) {
		for (int a = 0; a < funcs[i].n; a++) {
			struct probe_point pp;
			__u64 cookie;

			place_probe(p, fd, &funcs[i], a, m->path, &pp);
			cookie = FH_COOKIE(lock_fns[i].kind, pp.ret_slot);
			if (lock_fns[i].release) {
				mod->rel_off[mod->nrel] = funcs[i].file_offset[a] + pp.offset;
				mod->rel_cookie[mod->nrel++] = cookie;
			} else {
				mod->acq_off[mod->nacq] = funcs[i].file_offset[a] + pp.offset;
				mod->acq_cookie[mod->nacq++] = cookie;
			}
		}
	}
	close(fd);
	if (!mod->nacq || !mod->nrel) {
		log_info("%s: no lock functions found", m->path);
		return -ENODATA;
	}
	p->nmodules++;
	*out = mod;
	log_debug("lock library %s: %d acquire and %d release points", m->path, mod->nacq,
		  mod->nrel);
	return 0;
}

/*
 * BPF_LINK_CREATE for an uprobe_multi link: libbpf 1.1 predates the API, so
 * this is the syscall itself (kernel >= 6.6). The layout is that of
 * union bpf_attr's link_create member.
 */
struct link_create_uprobe_multi {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	__u64 path;
	__u64 offsets;
	__u64 ref_ctr_offsets;
	__u64 cookies;
	__u32 cnt;
	__u32 multi_flags;
	__u32 pid;
	__u32 _pad;
	__u8 rest[64];		/* zeroed tail of union bpf_attr */
};
#define FH_BPF_TRACE_UPROBE_MULTI 48

static int uprobe_multi_link(int prog_fd, const char *path, const unsigned long *offsets,
			     const __u64 *cookies, int cnt, pid_t pid)
{
	struct link_create_uprobe_multi attr;
	int fd;

	memset(&attr, 0, sizeof(attr));
	attr.prog_fd = (__u32)prog_fd;
	attr.attach_type = FH_BPF_TRACE_UPROBE_MULTI;
	attr.path = (__u64)(unsigned long)path;
	attr.offsets = (__u64)(unsigned long)offsets;
	attr.cookies = (__u64)(unsigned long)cookies;
	attr.cnt = (__u32)cnt;
	attr.pid = (__u32)pid;	/* 0: every process */
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return errno == EINVAL || errno == ENOSYS ? -ENOTSUP : -errno;
	return fd;
}

static int attach_module(struct probes *p, struct lock_module *mod, const char *path,
			 pid_t pid, int links[2])
{
	links[0] = uprobe_multi_link(p->prog_fd[0], path, mod->acq_off, mod->acq_cookie,
				     mod->nacq, pid);
	if (links[0] < 0)
		return links[0];
	links[1] = uprobe_multi_link(p->prog_fd[1], path, mod->rel_off, mod->rel_cookie,
				     mod->nrel, pid);
	if (links[1] < 0) {
		int err = links[1];

		close(links[0]);
		links[0] = links[1] = -1;
		return err;
	}
	p->links += 2;
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
	pid_t pid;
	bool per_process;
	struct probed_proc *pp;
	int found, attached, err;
};

static int attach_mapping(const struct fh_mapping *m, void *ctx)
{
	struct attach_walk *w = ctx;
	struct lock_module *mod = NULL;
	char path[96];
	int links[2], err;

	if (m->perms[2] != 'x' || !m->path[0] || !is_lock_library(m->path))
		return 0;
	err = resolve_module(w->p, w->pid, m, &mod);
	if (err) {
		if (err != -ENODATA)
			log_warn("cannot read %s of PID %d: %s", m->path, (int)w->pid, strerror(-err));
		return 0;
	}
	w->found++;
	if (!w->per_process) {
		if (mod->global_links[0] >= 0)
			return 0;
	} else {
		for (int i = 0; i < w->pp->nmods; i++)
			if (w->pp->mods[i].mod == mod)
				return 0;
		if (w->pp->nmods == MAX_MODS_PER_PROC)
			return 0;
	}
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)w->pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	err = attach_module(w->p, mod, path, w->per_process ? w->pid : 0, links);
	if (err) {
		w->err = err;
		return err == -ENOTSUP ? err : 0;
	}
	if (w->per_process) {
		w->pp->mods[w->pp->nmods].mod = mod;
		w->pp->mods[w->pp->nmods].links[0] = links[0];
		w->pp->mods[w->pp->nmods].links[1] = links[1];
		w->pp->nmods++;
	} else {
		mod->global_links[0] = links[0];
		mod->global_links[1] = links[1];
	}
	w->attached++;
	log_info("lock probes on %s for %s", m->path,
		 w->per_process ? "this process only" : "every process");
	return 0;
}

int probes_attach_process(struct probes *p, pid_t pid, bool per_process)
{
	struct attach_walk w = { .p = p, .pid = pid, .per_process = per_process };
	bool new_proc = false;
	int err;

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
			new_proc = true;
		}
	}
	err = procfs_for_each_mapping(pid, attach_mapping, &w);
	if (err == -ENOENT || err == -ESRCH)
		err = -ENOENT;
	if (!err && w.err == -ENOTSUP)
		err = -ENOTSUP;
	if (!err && !w.found)
		err = -ENODATA;
	if (err && new_proc)
		release_proc(p, w.pp);
	if (err)
		return err;
	return w.attached;
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

		if (*end || pid <= 0)
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
	return total;
}

void probes_reap_exited(struct probes *p)
{
	for (int i = 0; i < p->nprocs;) {
		struct pollfd pfd = { .fd = p->procs[i].pidfd, .events = POLLIN };

		if (poll(&pfd, 1, 0) == 1) {
			log_debug("PID %d exited: lock probes released", (int)p->procs[i].pid);
			release_proc(p, &p->procs[i]);
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

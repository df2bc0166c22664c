// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>
#include "bpf_compat.h"
#include "clock.h"
#include "elfsyms.h"
#include "log.h"
#include "procfs.h"
#include "reinitprobe.h"

#define MAX_FILES	64	/* interpreter files looked at (probed or not) */
#define COVER_SLOTS	1024	/* processes' answers, direct-mapped by PID */
#define RECHECKS	64	/* processes looked at again (just exec'd) */
#define RECHECK_NS	1000000000ull	/* ...for this long */

struct interp_file {
	dev_t dev;
	ino_t ino;
	int link;		/* the probe's link; -1: the file has no such function */
};

struct reinitprobe {
	int prog_fd;
	struct interp_file files[MAX_FILES];
	int nfiles;
	struct {
		pid_t pid;
		bool covered;
	} cover[COVER_SLOTS];
	struct {
		pid_t pid;		/* 0: a free slot */
		uint64_t until_ns;
	} recheck[RECHECKS];
};

struct reinitprobe *reinitprobe_new(int prog_fd)
{
	struct reinitprobe *rp = calloc(1, sizeof(*rp));

	if (rp)
		rp->prog_fd = prog_fd;
	return rp;
}

void reinitprobe_free(struct reinitprobe *rp)
{
	if (!rp)
		return;
	for (int i = 0; i < rp->nfiles; i++)
		if (rp->files[i].link >= 0)
			close(rp->files[i].link);
	free(rp);
}

/* libpython3.X.so..., or an executable python3.X that may link it in. */
static bool interpreter_name(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libpython3", 10) || !strncmp(base, "python3", 7);
}

/* The file's probe: made now (link >= 0), or known to be impossible. */
static const struct interp_file *probe_file(struct reinitprobe *rp, const char *map_path,
					    const char *name)
{
	struct elf_func fn = { .name = "_PyThread_at_fork_reinit" };
	struct interp_file *f;
	struct stat st;
	__u64 cookie = 0;
	int fd;

	fd = open(map_path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return NULL;
	if (fstat(fd, &st)) {
		close(fd);
		return NULL;
	}
	for (int i = 0; i < rp->nfiles; i++) {
		if (rp->files[i].dev == st.st_dev && rp->files[i].ino == st.st_ino) {
			close(fd);
			return &rp->files[i];
		}
	}
	if (rp->nfiles >= MAX_FILES) {
		close(fd);
		return NULL;
	}
	f = &rp->files[rp->nfiles++];
	f->dev = st.st_dev;
	f->ino = st.st_ino;
	f->link = -1;
	if (!elf_find_funcs(fd, &fn, 1) && fn.n) {
		unsigned long off = (unsigned long)fn.file_offset[0];

		f->link = uprobe_multi_link(rp->prog_fd, map_path, &off, &cookie, 1, 0, false);
		if (f->link < 0) {
			log_warn("cannot probe _PyThread_at_fork_reinit in %s: %s", name,
				 strerror(-f->link));
			f->link = -1;
		} else {
			log_debug("probing _PyThread_at_fork_reinit in %s", name);
		}
	}
	close(fd);
	return f;
}

struct walk {
	struct reinitprobe *rp;
	pid_t pid;
	bool covered;
};

static int look_at(const struct fh_mapping *m, void *ctx)
{
	struct walk *w = ctx;
	const struct interp_file *f;
	char path[96];

	if (m->offset || m->path[0] != '/' || !interpreter_name(m->path))
		return 0;
	/* map_files is the exact file mapped, in any mount namespace */
	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)w->pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	f = probe_file(w->rp, path, m->path);
	if (f && f->link >= 0)
		w->covered = true;
	return 0;
}

static int look_at_process(struct reinitprobe *rp, pid_t pid)
{
	struct walk w = { .rp = rp, .pid = pid };
	int err = procfs_for_each_mapping(pid, look_at, &w);

	rp->cover[pid % COVER_SLOTS].pid = pid;
	rp->cover[pid % COVER_SLOTS].covered = !err && w.covered;
	return err ? err : w.covered;
}

int reinitprobe_process(struct reinitprobe *rp, pid_t pid)
{
	int n = look_at_process(rp, pid);

	for (int i = 0; !n && i < RECHECKS; i++) {
		if (rp->recheck[i].pid && rp->recheck[i].pid != pid)
			continue;
		rp->recheck[i].pid = pid;
		rp->recheck[i].until_ns = clock_mono_ns() + RECHECK_NS;
		break;
	}
	return n;
}

void reinitprobe_recheck(struct reinitprobe *rp, uint64_t now_ns)
{
	for (int i = 0; i < RECHECKS; i++) {
		pid_t pid = rp->recheck[i].pid;

		if (!pid)
			continue;
		if (now_ns > rp->recheck[i].until_ns || look_at_process(rp, pid) != 0)
			rp->recheck[i].pid = 0;	/* covered, gone, or not a Python */
	}
}

bool reinitprobe_covers(const struct reinitprobe *rp, pid_t pid)
{
	return rp->cover[pid % COVER_SLOTS].pid == pid && rp->cover[pid % COVER_SLOTS].covered;
}

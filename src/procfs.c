// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "procfs.h"

#define PF_KTHREAD 0x00200000

int procfs_parse_maps_line(const char *line, struct fh_mapping *m)
{
	unsigned long long start, end, offset, inode;
	unsigned int maj, min;
	const char *path;
	size_t len;
	int pos = 0;

	memset(m, 0, sizeof(*m));
	if (sscanf(line, "%llx-%llx %4s %llx %x:%x %llu%n", &start, &end, m->perms, &offset,
		   &maj, &min, &inode, &pos) != 7 || pos == 0)
		return -EINVAL;
	if (end < start || strlen(m->perms) != 4)
		return -EINVAL;
	m->start = start;
	m->end = end;
	m->offset = offset;
	m->dev_major = maj;
	m->dev_minor = min;
	m->inode = inode;
	path = line + pos;
	while (*path == ' ' || *path == '\t')
		path++;
	len = strcspn(path, "\n");
	if (len >= sizeof(m->path))
		return -EINVAL;
	memcpy(m->path, path, len);
	m->path[len] = '\0';
	if (len > 10 && strcmp(m->path + len - 10, " (deleted)") == 0) {
		m->deleted = true;
		m->path[len - 10] = '\0';
	}
	return 0;
}

int procfs_for_each_mapping(pid_t pid, procfs_mapping_fn cb, void *ctx)
{
	char path[64], *line = NULL;
	struct fh_mapping *m;
	size_t cap = 0;
	int err = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return -errno;
	m = malloc(sizeof(*m));
	if (!m) {
		fclose(f);
		return -ENOMEM;
	}
	while (getline(&line, &cap, f) > 0) {
		if (procfs_parse_maps_line(line, m))
			continue;
		err = cb(m, ctx);
		if (err)
			break;
	}
	free(line);
	free(m);
	fclose(f);
	return err;
}

struct mapping_at {
	uint64_t addr;
	struct fh_mapping *out;
};

static int match_mapping(const struct fh_mapping *m, void *ctx)
{
	struct mapping_at *a = ctx;

	if (a->addr < m->start || a->addr >= m->end)
		return 0;
	*a->out = *m;
	return 1;
}

int procfs_mapping_at(pid_t pid, uint64_t addr, struct fh_mapping *m)
{
	struct mapping_at a = { .addr = addr, .out = m };
	int err = procfs_for_each_mapping(pid, match_mapping, &a);

	return err == 1 ? 0 : err ? err : -ENOENT;
}

ssize_t procfs_read_file(const char *path, char *buf, size_t size)
{
	ssize_t n, total = 0;
	int fd;

	if (size == 0)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	while ((size_t)total < size - 1) {
		n = read(fd, buf + total, size - 1 - total);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		total += n;
	}
	close(fd);
	buf[total] = '\0';
	return total;
}

int procfs_parse_stat(const char *buf, struct fh_proc_stat *st)
{
	const char *open = strchr(buf, '('), *close = strrchr(buf, ')');
	unsigned long long field;
	const char *p;
	size_t len;
	int i;

	memset(st, 0, sizeof(*st));
	/* comm may contain anything, even ")": it ends at the last ')' */
	if (!open || !close || close < open)
		return -EINVAL;
	len = (size_t)(close - open - 1);
	if (len >= sizeof(st->comm))
		len = sizeof(st->comm) - 1;
	memcpy(st->comm, open + 1, len);
	p = close + 1;
	if (sscanf(p, " %c %d", &st->state, &st->ppid) != 2)
		return -EINVAL;
	/* fields after comm, numbered from 3 (state) as in proc(5) */
	for (i = 3; i <= 22 && *p; i++) {
		while (*p == ' ')
			p++;
		if (i >= 5) {
			char *end;

			errno = 0;
			field = strtoull(p, &end, 10);
			if (end == p)
				return -EINVAL;
			if (i == 9)
				st->flags = (unsigned long)field;
			else if (i == 14)
				st->utime = field;
			else if (i == 15)
				st->stime = field;
			else if (i == 20)
				st->num_threads = (int)field;
			else if (i == 22)
				st->starttime = field;
		}
		while (*p && *p != ' ')
			p++;
	}
	return i > 22 ? 0 : -EINVAL;
}

/* /proc/PID/NAME, or /proc/PID/task/TID/NAME (tid not 0), into buf. */
static ssize_t read_task_file(pid_t pid, pid_t tid, const char *name, char *buf, size_t size)
{
	char path[64];

	if (tid)
		snprintf(path, sizeof(path), "/proc/%d/task/%d/%s", (int)pid, (int)tid, name);
	else
		snprintf(path, sizeof(path), "/proc/%d/%s", (int)pid, name);
	return procfs_read_file(path, buf, size);
}

int procfs_read_stat(pid_t pid, pid_t tid, struct fh_proc_stat *st)
{
	char buf[1024];
	ssize_t n = read_task_file(pid, tid, "stat", buf, sizeof(buf));

	return n < 0 ? (int)n : procfs_parse_stat(buf, st);
}

int procfs_parse_syscall(const char *buf, struct fh_syscall *sc)
{
	unsigned long long a[6], sp, pc;
	long nr;

	memset(sc, 0, sizeof(*sc));
	if (strncmp(buf, "running", 7) == 0) {
		sc->nr = -1;
		return 0;
	}
	if (sscanf(buf, "%ld", &nr) != 1)
		return -EINVAL;
	if (nr < 0) {	/* "-1 sp pc": blocked, but not in a syscall */
		sc->nr = -2;
		return 0;
	}
	if (sscanf(buf, "%ld %llx %llx %llx %llx %llx %llx %llx %llx", &nr, &a[0], &a[1], &a[2],
		   &a[3], &a[4], &a[5], &sp, &pc) != 9)
		return -EINVAL;
	sc->nr = nr;
	for (int i = 0; i < 6; i++)
		sc->args[i] = a[i];
	sc->sp = sp;
	sc->pc = pc;
	return 0;
}

int procfs_read_syscall(pid_t pid, pid_t tid, struct fh_syscall *sc)
{
	char buf[512];
	ssize_t n = read_task_file(pid, tid, "syscall", buf, sizeof(buf));

	return n < 0 ? (int)n : procfs_parse_syscall(buf, sc);
}

bool procfs_pid_exists(pid_t pid)
{
	char path[64];

	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d", (int)pid);
	return access(path, F_OK) == 0;
}

bool procfs_is_kernel_thread(pid_t pid)
{
	struct fh_proc_stat st;

	return procfs_read_stat(pid, 0, &st) == 0 && (st.flags & PF_KTHREAD);
}

int procfs_list_tasks(pid_t pid, pid_t *tids, int max)
{
	char path[64];
	struct dirent *de;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", (int)pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((de = readdir(d)) && n < max) {
		char *end;
		long tid = strtol(de->d_name, &end, 10);

		if (*end || tid <= 0)
			continue;
		tids[n++] = (pid_t)tid;
	}
	closedir(d);
	return n;
}

int procfs_parse_status(const char *buf, struct fh_proc_status *st)
{
	/* Name: comes first; the kernel escapes newlines in it, but skip it anyway */
	const char *rest = strchr(buf, '\n');
	const char *tgid = rest ? strstr(rest, "\nTgid:") : NULL;
	const char *tracer = rest ? strstr(rest, "\nTracerPid:") : NULL;

	memset(st, 0, sizeof(*st));
	if (!tgid || !tracer)
		return -EINVAL;
	if (sscanf(tgid + 6, "%d", &st->tgid) != 1 ||
	    sscanf(tracer + 11, "%d", &st->tracer_pid) != 1)
		return -EINVAL;
	return st->tgid > 0 ? 0 : -EINVAL;
}

int procfs_read_status(pid_t pid, pid_t tid, struct fh_proc_status *st)
{
	char buf[4096];
	ssize_t n = read_task_file(pid, tid, "status", buf, sizeof(buf));

	return n < 0 ? (int)n : procfs_parse_status(buf, st);
}

int procfs_read_wchan(pid_t pid, pid_t tid, char *buf, size_t size)
{
	ssize_t n = read_task_file(pid, tid, "wchan", buf, size);

	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\n")] = '\0';
	/* "0": running, or the address is hidden from us */
	if (!strcmp(buf, "0"))
		buf[0] = '\0';
	return 0;
}

ssize_t procfs_read_exe(pid_t pid, char *path, size_t size)
{
	char link[64];
	ssize_t n;

	if (size < 2)
		return -ENAMETOOLONG;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, path, size - 1);
	if (n < 0)
		return -errno;
	path[n] = '\0';
	if (n > 10 && !strcmp(path + n - 10, " (deleted)"))
		path[n -= 10] = '\0';
	return n;
}

int procfs_parse_statm(const char *buf, long page_size, uint64_t *rss_bytes)
{
	unsigned long long field[2];
	const char *s = buf;
	char *end;

	/* "size resident shared text lib data dt\n", in pages: whole numbers */
	for (int i = 0; i < 2; i++) {
		if (*s < '0' || *s > '9')
			return -EINVAL;
		errno = 0;
		field[i] = strtoull(s, &end, 10);
		if (errno || *end != ' ')
			return -EINVAL;
		s = end + 1;
	}
	if (page_size <= 0 || field[1] > field[0] || field[1] > UINT64_MAX / (uint64_t)page_size)
		return -EINVAL;
	*rss_bytes = (uint64_t)field[1] * (uint64_t)page_size;
	return 0;
}

int procfs_read_rss(pid_t pid, uint64_t *rss_bytes)
{
	char path[64], buf[256];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/%d/statm", (int)pid);
	n = procfs_read_file(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	return procfs_parse_statm(buf, sysconf(_SC_PAGESIZE), rss_bytes);
}

int procfs_read_pid_max(void)
{
	char buf[32];
	long v;

	if (procfs_read_file("/proc/sys/kernel/pid_max", buf, sizeof(buf)) <= 0)
		return 1 << 22;
	v = strtol(buf, NULL, 10);
	return v > 1 && v <= (1 << 22) ? (int)v : 1 << 22;
}

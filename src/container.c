// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "container.h"
#include "procfs.h"

#define PID_CACHE	1024	/* direct-mapped, by PID */
#define ID_CACHE	256	/* direct-mapped, by cgroup id */
#define PID_TTL_NS	2000000000ull	/* a PID's answer is trusted this long */
#define FILEID_KERNFS	0xfe

struct pid_entry {
	pid_t pid;
	uint64_t cgroup_id, at_ns;
	struct fh_container c;
};

struct id_entry {
	uint64_t id;
	char path[CONTAINER_PATH_LEN];
};

struct containers {
	struct pid_entry by_pid[PID_CACHE];
	struct id_entry by_id[ID_CACHE];
	int mount_fd;		/* the cgroup2 mount; -1 unknown, -2 none */
	char mount[256];
};

struct containers *containers_new(void)
{
	struct containers *c = calloc(1, sizeof(*c));

	if (c)
		c->mount_fd = -1;
	return c;
}

void containers_free(struct containers *c)
{
	if (!c)
		return;
	if (c->mount_fd >= 0)
		close(c->mount_fd);
	free(c);
}

static void copy_path(char *dst, size_t size, const char *s, size_t n)
{
	if (n >= size)
		n = size - 1;
	memcpy(dst, s, n);
	dst[n] = '\0';
}

int container_cgroup_from_text(const char *text, char *path, size_t size)
{
	const char *v2 = NULL, *v1 = NULL, *sysd = NULL;
	size_t v2len = 0, v1len = 0, sysdlen = 0;

	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n'), *end = nl ? nl : line + strlen(line);
		const char *c1 = memchr(line, ':', (size_t)(end - line));
		const char *c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;

		if (c2) {
			const char *p = c2 + 1;
			size_t plen = (size_t)(end - p);

			if (c1 - line == 1 && line[0] == '0' && c2 == c1 + 1) {
				v2 = p, v2len = plen;
			} else if (plen > 1) {
				if (!strncmp(c1 + 1, "name=systemd:", 13))
					sysd = p, sysdlen = plen;
				else if (!v1)
					v1 = p, v1len = plen;
			}
		}
		line = nl ? nl + 1 : NULL;
	}
	if (v2 && (v2len > 1 || (!sysd && !v1)))	/* v2, unless "/" on a hybrid */
		copy_path(path, size, v2, v2len);
	else if (sysd)
		copy_path(path, size, sysd, sysdlen);
	else if (v1)
		copy_path(path, size, v1, v1len);
	else
		return -ENOENT;
	return 0;
}

bool container_id_from_path(const char *path, char id[CONTAINER_ID_LEN])
{
	size_t n = strlen(path);

	id[0] = '\0';
	/* the innermost component first: a pod's cgroup holds its containers' */
	for (size_t end = n; end > 0;) {
		size_t start = end;

		while (start > 0 && path[start - 1] != '/')
			start--;
		for (size_t i = start; i < end;) {
			size_t j = i;

			while (j < end && isxdigit((unsigned char)path[j]) &&
			       !isupper((unsigned char)path[j]))
				j++;
			if (j - i == 64 && (i == start || !isalnum((unsigned char)path[i - 1])) &&
			    (j == end || !isalnum((unsigned char)path[j]))) {
				memcpy(id, path + i, 64);
				id[64] = '\0';
				return true;
			}
			i = j > i ? j : i + 1;
		}
		end = start > 0 ? start - 1 : 0;
	}
	return false;
}

static int open_cgroup2_mount(struct containers *c)
{
	char line[1024];
	FILE *f;

	if (c->mount_fd != -1)
		return c->mount_fd;
	c->mount_fd = -2;
	f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return -2;
	while (fgets(line, sizeof(line), f)) {
		char *sep = strstr(line, " - cgroup2 "), *mp;

		if (!sep)
			continue;
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT ... */
		mp = line;
		for (int field = 0; field < 4 && mp; field++) {
			mp = strchr(mp, ' ');
			if (mp)
				mp++;
		}
		if (!mp || !strchr(mp, ' ') || strchr(mp, ' ') - mp >= (long)sizeof(c->mount))
			continue;
		copy_path(c->mount, sizeof(c->mount), mp, (size_t)(strchr(mp, ' ') - mp));
		c->mount_fd = open(c->mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (c->mount_fd < 0)
			c->mount_fd = -2;
		break;
	}
	fclose(f);
	return c->mount_fd;
}

/* The cgroup v2 path of a cgroup id, through the cgroup2 mount. */
static int path_of_id(struct containers *c, uint64_t id, char *path, size_t size)
{
	struct {
		struct file_handle fh;
		uint64_t id;
	} h;
	struct id_entry *e = &c->by_id[id % ID_CACHE];
	char link[64], target[CONTAINER_PATH_LEN + 256];
	size_t mlen;
	ssize_t n;
	int fd, mfd;

	if (e->id == id && e->path[0]) {
		copy_path(path, size, e->path, strlen(e->path));
		return 0;
	}
	mfd = open_cgroup2_mount(c);
	if (mfd < 0)
		return -ENOENT;
	memset(&h, 0, sizeof(h));
	h.fh.handle_bytes = sizeof(uint64_t);
	h.fh.handle_type = FILEID_KERNFS;
	memcpy(h.fh.f_handle, &id, sizeof(id));
	fd = open_by_handle_at(mfd, &h.fh, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, target, sizeof(target) - 1);
	close(fd);
	if (n <= 0)
		return -EINVAL;
	target[n] = '\0';
	mlen = strlen(c->mount);
	if (strncmp(target, c->mount, mlen) || (target[mlen] && target[mlen] != '/'))
		return -EINVAL;	/* outside our view of the hierarchy */
	copy_path(path, size, target[mlen] ? target + mlen : "/", strlen(target[mlen] ?
		  target + mlen : "/"));
	e->id = id;
	copy_path(e->path, sizeof(e->path), path, strlen(path));
	return 0;
}

bool containers_lookup(struct containers *c, pid_t pid, uint64_t cgroup_id, uint64_t now_ns,
		       struct fh_container *out)
{
	struct pid_entry *e = &c->by_pid[(unsigned int)pid % PID_CACHE];
	char path[64], text[4096];

	memset(out, 0, sizeof(*out));
	if (pid > 0 && e->pid == pid && e->cgroup_id == cgroup_id &&
	    now_ns - e->at_ns < PID_TTL_NS) {
		*out = e->c;
		return true;
	}
	snprintf(path, sizeof(path), "/proc/%d/cgroup", (int)pid);
	/* read while the process is there, else from the id the kernel recorded */
	if ((pid <= 0 || procfs_read_file(path, text, sizeof(text)) <= 0 ||
	     container_cgroup_from_text(text, out->cgroup, sizeof(out->cgroup))) &&
	    (!cgroup_id || path_of_id(c, cgroup_id, out->cgroup, sizeof(out->cgroup))))
		return false;
	container_id_from_path(out->cgroup, out->id);
	if (pid > 0) {
		e->pid = pid;
		e->cgroup_id = cgroup_id;
		e->at_ns = now_ns;
		e->c = *out;
	}
	return true;
}

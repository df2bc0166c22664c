// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "cli.h"
#include "escape.h"
#include "log.h"
#include "outfile.h"

#define OPEN_FLAGS	(O_WRONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

/* Users whose files and directories we may write into: root and ourselves;
 * for a user's command line also the real user and the user sudo ran us for. */
static bool trusted_owner(uid_t uid, enum outfile_policy policy)
{
	const char *sudo = getenv("SUDO_UID");
	long sudo_uid;

	if (uid == 0 || uid == geteuid())
		return true;
	if (policy == OUTFILE_SERVICE)
		return false;
	if (uid == getuid())
		return true;
	return getuid() == 0 && sudo && !cli_parse_long(sudo, 0, UINT32_MAX - 1, &sudo_uid) &&
	       uid == (uid_t)sudo_uid;
}

/* The directory of path, opened; *base: the file's name in it. */
static int open_dir(const char *path, enum outfile_policy policy, const char **base,
		    const char **why)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	struct stat st;
	mode_t others_write;
	int dfd;

	if (!slash) {
		snprintf(dir, sizeof(dir), ".");
		*base = path;
	} else {
		if ((size_t)(slash - path) >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, (size_t)(slash - path));
		dir[slash - path] = '\0';
		if (!dir[0])
			snprintf(dir, sizeof(dir), "/");
		*base = slash + 1;
	}
	if (!**base || !strcmp(*base, ".") || !strcmp(*base, ".."))
		return -EISDIR;
	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	if (fstat(dfd, &st)) {
		int err = -errno;

		close(dfd);
		return err;
	}
	/* a log directory's group may write to it; for a user's file, nobody else */
	others_write = policy == OUTFILE_SERVICE ? S_IWOTH : S_IWGRP | S_IWOTH;
	if (!trusted_owner(st.st_uid, policy) && policy == OUTFILE_SERVICE) {
		*why = "its directory belongs to another user";
	} else if (!trusted_owner(st.st_uid, policy) ||
		   ((st.st_mode & others_write) && !(st.st_mode & S_ISVTX))) {
		*why = "its directory can be changed by another user";
	} else {
		return dfd;
	}
	close(dfd);
	return -EPERM;
}

/* An open file: a regular file of a trusted user, with no other hard link. */
static const char *check_file(int fd, enum outfile_policy policy)
{
	struct stat st;

	if (fstat(fd, &st) || !S_ISREG(st.st_mode))
		return "not a regular file";
	if (!trusted_owner(st.st_uid, policy))
		return "it belongs to another user";
	if (st.st_nlink != 1)
		return "it has other hard links";
	return NULL;
}

static const char *open_error(int err)
{
	if (err == -ELOOP)
		return "it is a symbolic link";
	if (err == -ENXIO)	/* a FIFO nobody reads, a device */
		return "not a regular file";
	return NULL;
}

int outfile_open_fd(const char *path, enum outfile_policy policy, const char **why)
{
	int flags = OPEN_FLAGS | (policy == OUTFILE_SERVICE ? O_APPEND : 0);
	const char *base;
	int dfd, fd;

	*why = NULL;
	dfd = open_dir(path, policy, &base, why);
	if (dfd < 0)
		return dfd;
	fd = openat(dfd, base, flags | O_CREAT | O_EXCL, policy == OUTFILE_SERVICE ? 0640 : 0644);
	if (fd < 0 && errno == EEXIST)
		fd = openat(dfd, base, flags);
	if (fd < 0) {
		fd = -errno;
		*why = open_error(fd);
		goto out;
	}
	*why = check_file(fd, policy);
	/* O_NONBLOCK was for the open (a FIFO): a regular file's writes block */
	if (!*why && policy == OUTFILE_USER && ftruncate(fd, 0))
		*why = strerror(errno);
	if (!*why && fcntl(fd, F_SETFL, flags & (O_APPEND | O_WRONLY)))
		*why = strerror(errno);
	if (*why) {
		close(fd);
		fd = -EPERM;
	}
out:
	close(dfd);
	return fd;
}

FILE *outfile_open(const char *path, enum outfile_policy policy)
{
	const char *why;
	char name[256];
	int fd = outfile_open_fd(path, policy, &why);
	FILE *f = NULL;

	if (fd >= 0) {
		f = fdopen(fd, policy == OUTFILE_SERVICE ? "a" : "w");
		if (!f) {
			int err = errno;

			close(fd);
			fd = -err;
		}
	}
	if (f)
		return f;
	term_escape(path, (size_t)-1, name, sizeof(name));
	log_error("cannot write %s: %s", name, why ? why : strerror(-fd));
	return NULL;
}

static int write_all(int fd, const void *buf, size_t len)
{
	size_t off = 0;

	while (off < len) {
		ssize_t n = write(fd, (const char *)buf + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (size_t)n;
	}
	return 0;
}

int outfile_replace(const char *path, enum outfile_policy policy, const void *buf, size_t len,
		    const char **why)
{
	char tmp[NAME_MAX + 1];
	const char *base;
	int dfd, fd, err;

	*why = NULL;
	dfd = open_dir(path, policy, &base, why);
	if (dfd < 0)
		return dfd;
	/* readers (node_exporter's textfile collector) skip this name: *.prom only */
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", base) >= (int)sizeof(tmp)) {
		close(dfd);
		return -ENAMETOOLONG;
	}
	fd = openat(dfd, tmp, OPEN_FLAGS | O_CREAT | O_EXCL, 0644);
	if (fd < 0 && errno == EEXIST) {	/* left by a run that died: ours to remove */
		unlinkat(dfd, tmp, 0);
		fd = openat(dfd, tmp, OPEN_FLAGS | O_CREAT | O_EXCL, 0644);
	}
	if (fd < 0) {
		err = -errno;
		*why = open_error(err);
		close(dfd);
		return err;
	}
	err = write_all(fd, buf, len);
	if (!err && fsync(fd))
		err = -errno;
	if (close(fd) && !err)
		err = -errno;
	if (!err && renameat(dfd, tmp, dfd, base))
		err = -errno;
	if (err)
		unlinkat(dfd, tmp, 0);
	close(dfd);
	return err;
}

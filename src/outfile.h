/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The files forkhazard writes with its privileges (root's, usually): -o FILE,
 * and the service's events, log and metrics files. One code path, so that no
 * other user can redirect any of them: the directory is opened once and the
 * file opened in it (no race between a check and the open), never through a
 * symbolic link (O_NOFOLLOW), never a FIFO or a device (O_NONBLOCK, then
 * S_ISREG), never a file with another hard link. Symbolic links in the
 * directory part are followed: that part is whoever named the file's to
 * choose. Two policies, by who names the file:
 *
 * OUTFILE_USER: -o of a command line. The directory belongs to a trusted
 *   user (root, the real user, the user sudo ran us for) and nobody else may
 *   write to it, unless it is sticky (/tmp); an existing file must belong to
 *   a trusted user. Truncated: each run writes its own.
 * OUTFILE_SERVICE: the daemon's files, named by root's configuration. The
 *   directory and an existing file belong to root (or to us); the
 *   directory's group may write to it (a log directory such as a
 *   group-writable /var/log, root:syslog 0775), others only if it is sticky.
 *   Appended to: logrotate moves the file away, the service reopens it.
 */
#ifndef FH_OUTFILE_H
#define FH_OUTFILE_H

#include <stddef.h>
#include <stdio.h>

enum outfile_policy { OUTFILE_USER, OUTFILE_SERVICE };

/*
 * Open path for writing under policy. Returns a file descriptor, or -errno
 * with *why set to what people should read (NULL: strerror says it).
 */
int outfile_open_fd(const char *path, enum outfile_policy policy, const char **why);

/* The same as a stream. NULL after a one-line error "cannot write PATH: WHY". */
FILE *outfile_open(const char *path, enum outfile_policy policy);

/*
 * Replace path's content at once: PATH.tmp is written, synced and renamed
 * over path, in a directory the policy accepts, so that a reader sees the
 * old content or the new, never a part. Returns 0, or -errno with *why as
 * outfile_open_fd's.
 */
int outfile_replace(const char *path, enum outfile_policy policy, const void *buf, size_t len,
		    const char **why);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/* /proc parsing: the only module that knows /proc's formats. */
#ifndef FH_PROCFS_H
#define FH_PROCFS_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

struct fh_mapping {
	uint64_t start, end, offset;
	unsigned int dev_major, dev_minor;
	uint64_t inode;
	char perms[5];
	bool deleted;		/* path ends in " (deleted)" (stripped) */
	char path[PATH_MAX];	/* "" for anonymous mappings */
};

/* Parse one line of /proc/PID/maps. Returns 0, or -EINVAL. */
int procfs_parse_maps_line(const char *line, struct fh_mapping *m);

/* Call cb for each mapping of pid; a non-zero return from cb stops the walk
 * and is returned. Returns -errno if the maps cannot be read. */
typedef int (*procfs_mapping_fn)(const struct fh_mapping *m, void *ctx);
int procfs_for_each_mapping(pid_t pid, procfs_mapping_fn cb, void *ctx);
/* The mapping of pid that holds addr (perms[3]: 's' shared, 'p' private).
 * Returns 0, -ENOENT (none), or -errno. */
int procfs_mapping_at(pid_t pid, uint64_t addr, struct fh_mapping *m);

/* The fields of /proc/PID/stat forkhazard uses. */
struct fh_proc_stat {
	char comm[64];		/* raw bytes between the parentheses */
	char state;
	pid_t ppid;
	unsigned long flags;	/* PF_* */
	int num_threads;
	unsigned long long starttime;
	/* CPU time of the process (every thread, the dead ones too) or the
	 * thread, in clock ticks (sysconf(_SC_CLK_TCK)): user, system */
	unsigned long long utime, stime;
};
int procfs_parse_stat(const char *buf, struct fh_proc_stat *st);
int procfs_read_stat(pid_t pid, pid_t tid, struct fh_proc_stat *st);	/* tid 0: the process */

/* One line of /proc/PID/task/TID/syscall. */
struct fh_syscall {
	long nr;		/* -1: not in a syscall ("running"); -2: unknown */
	uint64_t args[6];
	uint64_t sp, pc;
};
int procfs_parse_syscall(const char *buf, struct fh_syscall *sc);
int procfs_read_syscall(pid_t pid, pid_t tid, struct fh_syscall *sc);

/* Read a whole small /proc file into buf (NUL-terminated). Returns length or -errno. */
ssize_t procfs_read_file(const char *path, char *buf, size_t size);

bool procfs_pid_exists(pid_t pid);
bool procfs_is_kernel_thread(pid_t pid);
/* TIDs of pid's threads into tids (at most max). Returns the count or -errno. */
int procfs_list_tasks(pid_t pid, pid_t *tids, int max);

/* The fields of /proc/PID[/task/TID]/status forkhazard uses. */
struct fh_proc_status {
	pid_t tgid;		/* the process a thread belongs to */
	pid_t tracer_pid;	/* 0: not ptraced */
};
int procfs_parse_status(const char *buf, struct fh_proc_status *st);
/* pid may be any TID: /proc/TID exists for every thread, listed or not. */
int procfs_read_status(pid_t pid, pid_t tid, struct fh_proc_status *st);

/* The kernel function a thread sleeps in (/proc/PID/task/TID/wchan), "" if
 * running or hidden. Returns 0 or -errno. */
int procfs_read_wchan(pid_t pid, pid_t tid, char *buf, size_t size);

/* The path of pid's executable (/proc/PID/exe), without the " (deleted)"
 * the kernel appends to a file replaced since. Returns its length or -errno. */
ssize_t procfs_read_exe(pid_t pid, char *path, size_t size);
/* Resident memory from /proc/PID/statm (its second field, in pages). The
 * peak (getrusage's ru_maxrss) never comes down; this does. 0 or -errno. */
int procfs_parse_statm(const char *buf, long page_size, uint64_t *rss_bytes);
int procfs_read_rss(pid_t pid, uint64_t *rss_bytes);

/* /proc/sys/kernel/pid_max; 4194304 (the largest possible) if unreadable. */
int procfs_read_pid_max(void);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * uprobe_multi links (kernel >= 6.6): many uprobes in one file for one BPF
 * program, optionally for one process only. libbpf 1.1 predates them, so
 * they are made with the bpf syscall itself.
 */
#ifndef FH_UPROBE_LINK_H
#define FH_UPROBE_LINK_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

/* enum bpf_attach_type's BPF_TRACE_UPROBE_MULTI: a program attached by
 * uprobe_multi_link() must be loaded with this expected attach type. */
#define FH_BPF_TRACE_UPROBE_MULTI	48

/*
 * Attach prog_fd at offsets[0..cnt) of the file at path (file offsets, as in
 * /proc/PID/maps), with cookies[i] for offsets[i] (NULL: none); as return
 * probes if ret; for process pid only (0: every process that maps the file;
 * then the kernel never even installs the breakpoint in other processes).
 * Returns the link's fd (closing it detaches), or -errno: -ENOTSUP where the
 * kernel has no uprobe_multi links.
 */
int uprobe_multi_link(int prog_fd, const char *path, const unsigned long *offsets,
		      const __u64 *cookies, int cnt, pid_t pid, bool ret);

#endif

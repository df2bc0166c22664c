/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What libbpf 1.1 (Debian 12's) predates, done here by hand: the uprobe_multi
 * attach type (Linux 6.6) and the BPF_LINK_CREATE call that makes such a link.
 * Where libbpf is new enough, these become its bpf_program__attach_uprobe_multi()
 * and BPF_TRACE_UPROBE_MULTI; nothing else in the tree works around it.
 */
#ifndef FH_BPF_COMPAT_H
#define FH_BPF_COMPAT_H

#include <stdbool.h>
#include <sys/types.h>
#include <linux/types.h>

/* enum bpf_attach_type and the link's flags, newer than libbpf 1.1 */
#define FH_BPF_TRACE_UPROBE_MULTI	48
#define FH_BPF_F_UPROBE_MULTI_RETURN	1

/*
 * An uprobe_multi link of program prog_fd on cnt offsets of the file at path,
 * each with its cookie; for process pid only (0: every process); ret: a
 * return probe. Returns the link's file descriptor, -ENOTSUP when the kernel
 * has no uprobe_multi links, or -errno.
 */
int uprobe_multi_link(int prog_fd, const char *path, const unsigned long *offsets,
		      const __u64 *cookies, int cnt, pid_t pid, bool ret);

#endif

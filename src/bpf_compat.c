// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "bpf_compat.h"

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

int uprobe_multi_link(int prog_fd, const char *path, const unsigned long *offsets,
		      const __u64 *cookies, int cnt, pid_t pid, bool ret)
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
	attr.multi_flags = ret ? FH_BPF_F_UPROBE_MULTI_RETURN : 0;
	attr.pid = (__u32)pid;	/* 0: every process */
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &attr, sizeof(attr));
	if (fd < 0)
		return errno == EINVAL || errno == ENOSYS ? -ENOTSUP : -errno;
	return fd;
}

// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/bpf.h>
#include "uprobe_link.h"

/* union bpf_attr's link_create member as kernels >= 6.6 lay it out for
 * uprobe_multi, padded to the size of the union's largest member. */
struct uprobe_multi_attr {
	__u32 prog_fd;
	__u32 target_fd;
	__u32 attach_type;
	__u32 flags;
	__u64 path;
	__u64 offsets;
	__u64 ref_ctr_offsets;
	__u64 cookies;
	__u32 cnt;
	__u32 multi_flags;	/* BPF_F_UPROBE_MULTI_RETURN */
	__u32 pid;
	__u32 _pad;
	__u8 zero_tail[64];
};
#define UPROBE_MULTI_RETURN	1

int uprobe_multi_link(int prog_fd, const char *path, const unsigned long *offsets,
		      const __u64 *cookies, int cnt, pid_t pid, bool ret)
{
	struct uprobe_multi_attr a;
	int fd;

	memset(&a, 0, sizeof(a));
	a.prog_fd = (__u32)prog_fd;
	a.attach_type = FH_BPF_TRACE_UPROBE_MULTI;
	a.path = (__u64)(unsigned long)path;
	a.offsets = (__u64)(unsigned long)offsets;
	a.cookies = (__u64)(unsigned long)cookies;
	a.cnt = (__u32)cnt;
	a.multi_flags = ret ? UPROBE_MULTI_RETURN : 0;
	a.pid = (__u32)pid;
	fd = (int)syscall(__NR_bpf, BPF_LINK_CREATE, &a, sizeof(a));
	if (fd < 0)
		return errno == EINVAL || errno == ENOSYS ? -ENOTSUP : -errno;
	return fd;
}

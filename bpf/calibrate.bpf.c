// SPDX-License-Identifier: GPL-2.0
/*
 * forkhazard calibrate: the least a uprobe program can do, so that what a
 * hit costs is the trap itself. Not loaded unless calibrating ("?"): a
 * tracing run loads nothing more for it.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include "forkhazard.h"

/* Hits per probe: userspace checks that every call it timed was trapped. */
__u64 calib_hits[FH_CALIB_PROBES];

SEC("?uprobe")
int calib_hit(struct pt_regs *ctx)
{
	__u64 probe = bpf_get_attach_cookie(ctx);

	if (probe < FH_CALIB_PROBES)
		__sync_fetch_and_add(&calib_hits[probe], 1);
	return 0;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * A forked child re-creating a lock it inherited, seen where no probe on a
 * lock path is needed: CPython's _PyThread_at_fork_reinit(PyThread_type_lock
 * *lock), which replaces the lock at *lock with a new one. Only children run
 * it, right after fork (the interpreter's own locks, threading's, and every
 * lock an os.register_at_fork hook re-creates: logging's handler locks), so
 * userspace probes it for every process that maps the interpreter: a process
 * that does not fork never reaches it. Children of forks that are not
 * followed leave at the first test.
 */
#include "fh.bpf.h"

SEC("uprobe")
int py_fork_reinit(struct pt_regs *ctx)
{
	__u64 lockp = PT_REGS_PARM1(ctx);
	struct fh_reinit_event ev = { .type = FH_EV_REINIT };
	struct fh_child *c;
	__u32 pid = bpf_get_current_pid_tgid() >> 32;

	c = bpf_map_lookup_elem(&children, &pid);
	if (!c || (c->flags & FH_CHILD_DECIDED))
		return 0;
	if (bpf_probe_read_user(&ev.addr, sizeof(ev.addr), (void *)lockp) || !ev.addr)
		return 0;
	ev.pid = pid;
	ev.time_ns = bpf_ktime_get_ns();
	emit(&ev, sizeof(ev));
	return 0;
}

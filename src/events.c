// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stddef.h>
#include "clock.h"
#include "container.h"
#include "correlate.h"
#include "events.h"
#include "forkhazard.h"
#include "output.h"
#include "ustacks.h"

static bool over_time(struct events *e)
{
	if (!e->until_ns || ++e->since_check < 32)
		return false;
	e->since_check = 0;
	return clock_mono_ns() > e->until_ns;
}

/* Is the record as long as its type says? */
static bool well_formed(__u32 type, const void *data, size_t size)
{
	switch (type) {
	case FH_EV_FORK: {
		const struct fh_fork_event *ev = data;

		return size >= offsetof(struct fh_fork_event, locks) &&
		       ev->nr_locks <= FH_EVENT_LOCKS &&
		       size >= offsetof(struct fh_fork_event, locks) +
			       ev->nr_locks * sizeof(struct fh_lock);
	}
	case FH_EV_CHILD:
		return size >= sizeof(struct fh_child_event);
	case FH_EV_DEADLOCK:
		return size >= sizeof(struct fh_deadlock_event);
	case FH_EV_PROBE_REQUEST:
		return size >= sizeof(struct fh_probe_request);
	case FH_EV_USTACK: {
		const struct fh_ustack_event *ev = data;

		return size >= offsetof(struct fh_ustack_event, data) &&
		       ev->len <= FH_USTACK_BYTES &&
		       size >= offsetof(struct fh_ustack_event, data) + ev->len;
	}
	default:
		return false;
	}
}

int events_handle(void *ctx, void *data, size_t size)
{
	struct events *e = ctx;
	__u32 type;

	if (size < sizeof(type)) {
		e->malformed++;
		return 0;
	}
	type = *(__u32 *)data;
	if (e->count_only) {
		e->unread++;
		e->unread_forks += type == FH_EV_FORK;
		return 0;
	}
	if (!well_formed(type, data, size)) {
		e->malformed++;
		return over_time(e) ? -EAGAIN : 0;
	}
	if (e->accept && !e->accept(e->accept_ctx, type, data, size))
		return over_time(e) ? -EAGAIN : 0;
	switch (type) {
	case FH_EV_FORK: {
		const struct fh_fork_event *ev = data;

		if (e->out)	/* before the parent can be gone: its stacks print later */
			output_note_fork(e->out, (pid_t)ev->pid, (pid_t)ev->child_pid, ev->comm);
		correlate_fork(e->corr, ev, size);
		break;
	}
	case FH_EV_CHILD:
		correlate_child(e->corr, data);
		break;
	case FH_EV_DEADLOCK:
		if (e->out)
			output_note_process(e->out, (pid_t)((struct fh_deadlock_event *)data)->pid);
		correlate_deadlock(e->corr, data);
		break;
	case FH_EV_PROBE_REQUEST:
		if (e->probe_request)
			e->probe_request(e->ctx, (pid_t)((struct fh_probe_request *)data)->pid);
		/* The earliest a process is seen: after its probes, not to delay them. */
		if (e->out)
			output_note_process(e->out, (pid_t)((struct fh_probe_request *)data)->pid);
		break;
	case FH_EV_USTACK:
		if (e->ustacks)
			ustacks_add(e->ustacks, data, clock_mono_ns());
		break;
	}
	/* libbpf stops consuming at a negative return, this record consumed */
	return over_time(e) ? -EAGAIN : 0;
}

/* ---- correlation sink ---------------------------------------------------- */

/* Where process pid runs, for JSON output (NULL: unknown, or not asked). */
static const struct fh_container *where(struct events *e, __u32 pid, uint64_t cgroup_id,
					uint64_t time_ns, struct fh_container *k)
{
	if (!e->containers || !containers_lookup(e->containers, (pid_t)pid, cgroup_id, time_ns, k))
		return NULL;
	return k;
}

static void sink_fork(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		      const struct fh_deadlock_event *dl)
{
	struct events *e = ctx;
	struct fh_container k;
	struct output_meta meta = { 0 };

	if (!output_wants_fork(e->out, ev))
		return;
	meta.container = where(e, ev->pid, ev->cgroup_id, ev->time_ns, &k);
	output_fork(e->out, ev, fate, dl, &meta);
}

static void sink_child(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork)
{
	struct events *e = ctx;
	struct fh_container k;
	struct output_meta meta = { 0 };

	/* A fate is news only where its fork was (text mode hides info forks). */
	if (fork && !output_wants_fork(e->out, fork))
		return;
	/* the child's, while it is there; else its parent's, which it had */
	meta.container = where(e, ev->pid, 0, ev->time_ns, &k);
	if (!meta.container)
		meta.container = where(e, ev->parent_pid, 0, ev->time_ns, &k);
	output_child(e->out, ev, &meta);
}

static void sink_deadlock(void *ctx, const struct fh_deadlock_event *ev, const struct fh_lock *lock,
			  const struct fh_fork_event *fork, int with_fork)
{
	struct events *e = ctx;
	struct fh_container k;
	struct output_meta meta = { 0 };

	(void)with_fork;	/* the deadlock's own record carries its stack */
	meta.container = where(e, ev->pid, ev->cgroup_id, ev->time_ns, &k);
	output_deadlock(e->out, ev, lock, fork, &meta);
}

static int sink_hold(void *ctx, const struct fh_fork_event *ev)
{
	struct events *e = ctx;

	return output_wants_fork(e->out, ev);
}

const struct corr_sink events_sink = {
	.fork = sink_fork,
	.child = sink_child,
	.deadlock = sink_deadlock,
	.hold = sink_hold,
};

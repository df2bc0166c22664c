// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include "clock.h"
#include "container.h"
#include "correlate.h"
#include "events.h"
#include "finding.h"
#include "forkhazard.h"
#include "gate.h"
#include "hazard.h"
#include "otherthreads.h"
#include "output.h"
#include "procfs.h"
#include "reinit.h"
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
	case FH_EV_REINIT:
		return size >= sizeof(struct fh_reinit_event);
	case FH_EV_THREADS: {
		const struct fh_threads_event *ev = data;

		return size >= offsetof(struct fh_threads_event, other) &&
		       ev->nr <= FH_MAX_OTHER_THREADS &&
		       size >= offsetof(struct fh_threads_event, other) +
			       ev->nr * sizeof(struct fh_other_thread);
	}
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

/* Is addr in a shared mapping of pid (1), a private one (0)? -errno: cannot tell. */
static int shared_at(pid_t pid, uint64_t addr)
{
	struct fh_mapping m;
	int err = procfs_mapping_at(pid, addr, &m);

	return err ? err : m.perms[3] == 's';
}

/*
 * A fork whose locks the kernel could not place (FH_LOCK_SHARED_UNKNOWN):
 * placed here from the parent's maps, which it still has as its event
 * arrives. Returns the event to use: ev itself, or a corrected copy.
 */
static const struct fh_fork_event *place_locks(struct events *e, const struct fh_fork_event *ev,
					       size_t size)
{
	static struct fh_fork_event copy;	/* far larger than a stack frame should be */
	bool was_hazard = FH_FORK_FOREIGN_LOCKS(ev) > 0, unsure = false;

	for (__u32 i = 0; i < ev->nr_locks; i++)
		unsure |= (ev->locks[i].flags & FH_LOCK_SHARED_UNKNOWN) != 0;
	if (!unsure || size > sizeof(copy))
		return ev;
	memcpy(&copy, ev, size);
	for (__u32 i = 0; i < copy.nr_locks; i++) {
		struct fh_lock *l = &copy.locks[i];
		int shared;

		if (!(l->flags & FH_LOCK_SHARED_UNKNOWN))
			continue;
		shared = shared_at((pid_t)copy.pid, l->addr);
		if (shared < 0)
			continue;	/* the parent is gone: said with the lock */
		l->flags &= (__u16)~FH_LOCK_SHARED_UNKNOWN;
		if (!shared)
			continue;
		l->flags |= FH_LOCK_SHARED;
		if (!(l->flags & FH_LOCK_OWN))
			copy.nr_shared++;
	}
	if (was_hazard && !hazard_fork(&copy))
		e->hazards_shared++;	/* the kernel counted it */
	return &copy;
}

/*
 * A deadlock the kernel could not be sure of (FH_DL_MEMORY_UNKNOWN): a wait
 * without the private flag is forever only in private memory. The child
 * sleeps in it (or has gone, and was no deadlock): its maps say. Returns
 * the event to pass on, or NULL to drop it.
 */
static const struct fh_deadlock_event *confirm_deadlock(struct events *e,
							const struct fh_deadlock_event *ev)
{
	static struct fh_deadlock_event copy;

	if (!(ev->flags & FH_DL_MEMORY_UNKNOWN))
		return ev;
	if (shared_at((pid_t)ev->pid, ev->futex) != 0)
		return NULL;
	copy = *ev;
	copy.flags &= ~FH_DL_MEMORY_UNKNOWN;
	e->deadlocks_confirmed++;
	if (e->child_decided)
		e->child_decided(e->ctx, (pid_t)ev->pid);
	return &copy;
}

/*
 * The Python frames that took lock l of ev, innermost first: branch
 * `python` records them with each acquisition (a lock's "py_stack"); read
 * here once it is merged. Until then: none.
 */
static int lock_py_frames(struct events *e, const struct fh_fork_event *ev, const struct fh_lock *l,
			  const struct pyrt_frame **frames)
{
	(void)e;
	(void)ev;
	(void)l;
	*frames = NULL;
	return 0;
}

/* The standard library's name for the foreign lock of ev at addr, when the
 * frames that took it give one (reinit_stdlib_lock); else NULL. */
static const char *stdlib_lock_of(struct events *e, const struct fh_fork_event *ev, uint64_t addr)
{
	const struct pyrt_frame *frames;

	for (__u32 i = 0; ev && i < ev->nr_locks; i++) {
		const struct fh_lock *l = &ev->locks[i];
		int n;

		if (l->addr != addr || hazard_lock_role(ev, l) != HAZARD_LOCK_FOREIGN)
			continue;
		n = lock_py_frames(e, ev, l, &frames);
		return reinit_stdlib_lock(frames, n);
	}
	return NULL;
}

/*
 * Where the interpreter's re-creation of its locks is not seen (its
 * _PyThread_at_fork_reinit not probed: a CPython 3.13 built without
 * .symtab, 3.14's inline re-initialisation), a lock the standard library
 * re-creates in every child by its own at-fork hook counts as re-created
 * on the evidence of the frames that took it.
 */
static void stdlib_reinit(struct events *e, const struct fh_fork_event *ev)
{
	if (!hazard_fork(ev) || (e->reinit_observed && e->reinit_observed(e->ctx, (pid_t)ev->pid)))
		return;
	for (__u32 i = 0; i < ev->nr_locks; i++) {
		const char *name = stdlib_lock_of(e, ev, ev->locks[i].addr);

		if (name)
			correlate_reinit(e->corr, ev->child_pid, ev->locks[i].addr, name);
	}
}

int events_handle(void *ctx, void *data, size_t size)
{
	struct events *e = ctx;
	const void *rec = data;
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
	/* what the kernel left open is settled first: filters count verdicts */
	if (type == FH_EV_FORK)
		rec = place_locks(e, data, size);
	else if (type == FH_EV_DEADLOCK && !(rec = confirm_deadlock(e, data)))
		return over_time(e) ? -EAGAIN : 0;
	if (e->accept && !e->accept(e->accept_ctx, type, rec, size))
		return over_time(e) ? -EAGAIN : 0;
	switch (type) {
	case FH_EV_FORK: {
		const struct fh_fork_event *ev = rec;

		if (e->out)	/* before the parent can be gone: its stacks print later */
			output_note_fork(e->out, (pid_t)ev->pid, (pid_t)ev->child_pid, ev->comm);
		correlate_fork(e->corr, ev, size);
		stdlib_reinit(e, ev);
		break;
	}
	case FH_EV_CHILD:
		correlate_child(e->corr, data);
		break;
	case FH_EV_DEADLOCK: {
		const struct fh_deadlock_event *ev = rec;

		if (e->out)
			output_note_process(e->out, (pid_t)ev->pid);
		correlate_deadlock(e->corr, ev);
		break;
	}
	case FH_EV_REINIT: {
		const struct fh_reinit_event *ev = data;
		const char *name = stdlib_lock_of(e, correlate_fork_of(e->corr, ev->pid), ev->addr);

		correlate_reinit(e->corr, ev->pid, ev->addr, name ? name : REINIT_WHY_PYTHON);
		break;
	}
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
	case FH_EV_THREADS:
		/* a fork's first record: the parent is noted, and asked, now */
		if (e->out)
			output_note_process(e->out, (pid_t)((const struct fh_threads_event *)data)->pid);
		if (e->others)
			otherthreads_add(e->others, data);
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

/* A finding the rules set aside shows in JSON, and in text with -v. */
static bool shows(const struct events *e, const struct finding *f)
{
	return !f->suppressed || output_shows_suppressed(e->out);
}

static void sink_fork(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		      const struct fh_deadlock_event *dl, const struct reinit_set *ri)
{
	struct events *e = ctx;
	struct fh_container k;
	struct output_meta meta = { .ri = ri };
	struct occurrence oc;
	struct finding f;

	if (!output_wants_fork(e->out, ev))
		return;
	if (e->findings && hazard_fork(ev)) {
		findings_observe(e->findings, ev->pid, ev->comm, ev->exe_name, ev->cgroup_id, &oc);
		findings_fork(e->findings, ev, ri, &oc, &f);
		findings_remember_child(e->findings, ev->child_pid, f.key.d.id, !shows(e, &f));
		if (!shows(e, &f))
			return;
		meta.site = f.site;
		meta.suppressed_by = f.suppressed_by;
		meta.suppressed = f.suppressed;
	}
	meta.container = where(e, ev->pid, ev->cgroup_id, ev->time_ns, &k);
	output_fork(e->out, ev, fate, dl, &meta);
}

static void sink_child(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork,
		       const struct reinit_set *ri)
{
	struct events *e = ctx;
	struct fh_container k;
	struct output_meta meta = { .ri = ri };

	/* A fate is news only where its fork was (text mode hides info forks,
	 * and what the rules set aside). */
	if (fork && !output_wants_fork(e->out, fork))
		return;
	if (e->findings)	/* JSON printed the fork before the child re-created its locks */
		findings_child_recreated(e->findings, ev->pid, ri);
	if (e->findings && findings_child_hidden(e->findings, ev->pid))
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
	struct occurrence oc;
	struct finding f;
	bool show = true;

	(void)with_fork;	/* the deadlock's own record carries its stack */
	if (e->findings) {
		findings_observe(e->findings, ev->pid, ev->comm, ev->exe_name, ev->cgroup_id, &oc);
		findings_deadlock(e->findings, ev, lock, fork, &oc, &f);
		show = shows(e, &f);
		meta.site = f.site;
		meta.suppressed_by = f.suppressed_by;
		meta.suppressed = f.suppressed;
	}
	if (show) {
		meta.container = where(e, ev->pid, ev->cgroup_id, ev->time_ns, &k);
		output_deadlock(e->out, ev, lock, fork, &meta);
	}
	/* after it was read: its /proc goes with it */
	if (e->gate)
		gate_kill_deadlocked(e->gate, ev);
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

// SPDX-License-Identifier: GPL-2.0
#include <stdlib.h>
#include <string.h>
#include "correlate.h"
#include "hazard.h"

/* One fork whose child is still followed, oldest first in a list. */
struct pending {
	struct pending *prev, *next;
	struct fh_fork_event *ev;	/* copy, only the locks received */
	size_t size;
	uint64_t deadline_ns;		/* held until then; 0: already sent */
	int decided;			/* the child's fate is known */
	struct reinit_set ri;		/* its foreign locks the child re-created */
};

struct correlate {
	struct corr_opts opts;
	struct corr_sink sink;
	void *ctx;
	struct pending head;		/* circular list: head.next is oldest */
	size_t count, bytes;
	uint64_t evicted, mitigated;
};

struct correlate *correlate_new(const struct corr_opts *opts, const struct corr_sink *sink,
				void *ctx)
{
	struct correlate *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->opts = *opts;
	c->sink = *sink;
	c->ctx = ctx;
	c->head.next = c->head.prev = &c->head;
	return c;
}

static void unlink_pending(struct correlate *c, struct pending *p)
{
	p->prev->next = p->next;
	p->next->prev = p->prev;
	c->count--;
	c->bytes -= p->size;
	free(p->ev);
	free(p);
}

/* What the living child of a hazard fork shows now (sink.examine). */
static void examine(struct correlate *c, struct pending *p)
{
	if (c->opts.examine && hazard_fork(p->ev))
		c->opts.examine(c->opts.examine_ctx, p->ev, &p->ri);
}

/* A fate goes out for p: count it once if it was mitigated. */
static void fated(struct correlate *c, struct pending *p)
{
	if (!p->decided && hazard_mitigated(p->ev, &p->ri))
		c->mitigated++;
	p->decided = 1;
}

/* Send a held fork now, with whatever is known of its fate. */
static void release(struct correlate *c, struct pending *p, const struct fh_child_event *fate,
		    const struct fh_deadlock_event *dl)
{
	if (!p->deadline_ns)
		return;
	p->deadline_ns = 0;
	c->sink.fork(c->ctx, p->ev, fate, dl, &p->ri);
}

/* Is addr a foreign lock of fork ev: one whose re-creation counts? */
static bool foreign_lock(const struct fh_fork_event *ev, uint64_t addr)
{
	for (uint32_t i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++)
		if (ev->locks[i].addr == addr &&
		    hazard_lock_role(ev, &ev->locks[i]) == HAZARD_LOCK_FOREIGN)
			return true;
	return false;
}

void correlate_free(struct correlate *c)
{
	if (!c)
		return;
	while (c->head.next != &c->head)
		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): a circular list */
		unlink_pending(c, c->head.next);
	free(c);
}

static struct pending *find(struct correlate *c, uint32_t child_pid)
{
	/* Newest first: a recycled PID matches its latest fork. */
	for (struct pending *p = c->head.prev; p != &c->head; p = p->prev)
		if (p->ev->child_pid == child_pid)
			return p;
	return NULL;
}

void correlate_fork(struct correlate *c, const struct fh_fork_event *ev, size_t size)
{
	struct pending *p;

	/* Make room: the oldest entries go first, counted. An event that can
	 * never fit takes nobody's place. */
	while (c->count && size <= c->opts.max_bytes &&
	       (c->count >= c->opts.max_pending || c->bytes + size > c->opts.max_bytes)) {
		struct pending *old = c->head.next;

		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): a circular list */
		release(c, old, NULL, NULL);
		unlink_pending(c, old);
		c->evicted++;
	}
	p = calloc(1, sizeof(*p));
	if (p)
		p->ev = malloc(size);
	if (!p || !p->ev || size > c->opts.max_bytes) {
		/* Cannot follow it: still report the fork. */
		if (p)
			free(p->ev);
		free(p);
		c->evicted++;
		c->sink.fork(c->ctx, ev, NULL, NULL, NULL);
		return;
	}
	memcpy(p->ev, ev, size);
	p->size = size;
	p->prev = c->head.prev;
	p->next = &c->head;
	c->head.prev->next = p;
	c->head.prev = p;
	c->count++;
	c->bytes += size;
	examine(c, p);
	if (c->opts.hold_ns && c->sink.hold && c->sink.hold(c->ctx, ev))
		p->deadline_ns = ev->time_ns + c->opts.hold_ns;
	else
		c->sink.fork(c->ctx, ev, NULL, NULL, &p->ri);
}

void correlate_child(struct correlate *c, const struct fh_child_event *ev)
{
	struct pending *p = find(c, ev->pid);
	struct reinit_set seen = { 0 };

	if (p && p->decided) {
		/* its fate (a deadlock) is out; this exit only ends the wait for it */
		unlink_pending(c, p);
		return;
	}
	/* what the kernel read in the child's words as it exited */
	for (uint32_t i = 0; i < ev->nr_reinit && i < FH_CHILD_WATCH; i++) {
		if (!p)
			reinit_add(&seen, ev->reinit[i], REINIT_WHY_WORD);
		else if (foreign_lock(p->ev, ev->reinit[i]))
			reinit_add(&p->ri, ev->reinit[i], REINIT_WHY_WORD);
	}
	if (p)
		fated(c, p);
	if (p && p->deadline_ns) {
		release(c, p, ev, NULL);	/* printed together */
	} else {
		c->sink.child(c->ctx, ev, p ? p->ev : NULL, p ? &p->ri : &seen);
	}
	if (p)
		unlink_pending(c, p);
}

const struct fh_fork_event *correlate_fork_of(struct correlate *c, uint32_t child)
{
	struct pending *p = find(c, child);

	return p ? p->ev : NULL;
}

void correlate_reinit(struct correlate *c, uint32_t child, uint64_t addr, const char *why)
{
	struct pending *p = find(c, child);

	if (p && !p->decided && foreign_lock(p->ev, addr))
		reinit_add(&p->ri, addr, why);
}

static const struct fh_lock *matching_lock(const struct fh_fork_event *fork, uint64_t futex)
{
	for (uint32_t i = 0; i < fork->nr_locks; i++) {
		const struct fh_lock *l = &fork->locks[i];

		/* The futex word is the lock itself, or one of its words (an
		 * rwlock waits on a word inside it): within 32 bytes. */
		if (futex >= l->addr && futex < l->addr + 32 && !(l->flags & FH_LOCK_OWN))
			return l;
	}
	return NULL;
}

void correlate_deadlock(struct correlate *c, const struct fh_deadlock_event *ev)
{
	struct pending *p = find(c, ev->pid);
	struct fh_child_event fate = {
		.type = FH_EV_CHILD, .pid = ev->pid, .parent_pid = ev->parent_pid,
		.outcome = FH_CHILD_DEADLOCK, .time_ns = ev->time_ns, .fork_ns = ev->fork_ns,
	};
	const struct fh_lock *lock = NULL;

	if (p && p->decided)
		return;	/* reported already */
	if (p) {
		lock = matching_lock(p->ev, ev->futex);
		examine(c, p);
		fated(c, p);
		if (p->deadline_ns) {
			release(c, p, &fate, ev);
			c->sink.deadlock(c->ctx, ev, lock, p->ev, 1);
			return;
		}
	}
	c->sink.child(c->ctx, &fate, p ? p->ev : NULL, p ? &p->ri : NULL);
	c->sink.deadlock(c->ctx, ev, lock, p ? p->ev : NULL, 0);
}

void correlate_tick(struct correlate *c, uint64_t now_ns)
{
	for (struct pending *p = c->head.next; p != &c->head; p = p->next) {
		if (!p->deadline_ns || p->deadline_ns > now_ns)
			continue;
		examine(c, p);
		release(c, p, NULL, NULL);
	}
}

void correlate_finish(struct correlate *c, uint64_t now_ns)
{
	while (c->head.next != &c->head) {
		struct pending *p = c->head.next;

		/* NOLINTNEXTLINE(clang-analyzer-unix.Malloc): a circular list */
		if (!p->decided) {
			struct fh_child_event fate = {
				.type = FH_EV_CHILD, .pid = p->ev->child_pid,
				.parent_pid = p->ev->pid, .outcome = FH_CHILD_ALIVE,
				.time_ns = now_ns, .fork_ns = p->ev->time_ns,
			};

			examine(c, p);
			fated(c, p);
			if (p->deadline_ns)
				release(c, p, &fate, NULL);
			else
				c->sink.child(c->ctx, &fate, p->ev, &p->ri);
		}
		unlink_pending(c, p);
	}
}

size_t correlate_pending(const struct correlate *c)
{
	return c->count;
}

uint64_t correlate_evicted(const struct correlate *c)
{
	return c->evicted;
}

uint64_t correlate_mitigated(const struct correlate *c)
{
	return c->mitigated;
}

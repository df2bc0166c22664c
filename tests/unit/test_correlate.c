// SPDX-License-Identifier: GPL-2.0
/*
 * correlate.c driven by synthetic events into a recording sink: what comes
 * out, how often, in which order, and with which fork, fate and lock.
 */
#include <stddef.h>
#include "correlate.h"
#include "forkhazard.h"
#include "unit.h"

#define MS 1000000ull

/* One call into the sink, copied: the pointers it got do not outlive the call. */
struct rec {
	char kind;			/* 'F' fork, 'C' child, 'D' deadlock */
	bool has_fork, has_fate, has_dl, has_lock;
	uint32_t fork_pid, fork_child, fork_nr_locks;
	uint64_t fork_lock_sum;		/* of the addresses of the locks it carries */
	uint64_t fork_time;
	uint32_t fate_pid, fate_parent, fate_outcome;
	uint64_t fate_time, fate_fork_ns;
	int32_t fate_exit_code;
	uint32_t dl_pid, dl_owner;
	uint64_t dl_futex;
	uint64_t lock_addr;
	uint32_t lock_holder;
	char lock_comm[FH_COMM_LEN];
	int with_fork;
	bool has_ri;
	uint32_t ri_n;
	uint64_t ri_addr[REINIT_MAX];
};

struct recorder {
	struct rec r[64];
	int n;
	int overflow;
	bool hold;			/* what sink.hold answers */
};

static struct rec *next_rec(struct recorder *rc, char kind)
{
	static struct rec spare;

	if (rc->n == (int)(sizeof(rc->r) / sizeof(rc->r[0]))) {
		rc->overflow++;
		return memset(&spare, 0, sizeof(spare));
	}
	memset(&rc->r[rc->n], 0, sizeof(rc->r[0]));
	rc->r[rc->n].kind = kind;
	return &rc->r[rc->n++];
}

static void put_fork(struct rec *r, const struct fh_fork_event *ev)
{
	if (!ev)
		return;
	r->has_fork = true;
	r->fork_pid = ev->pid;
	r->fork_child = ev->child_pid;
	r->fork_time = ev->time_ns;
	r->fork_nr_locks = ev->nr_locks;
	/* read every lock it claims to carry: a short copy shows under ASan */
	for (uint32_t i = 0; i < ev->nr_locks; i++)
		r->fork_lock_sum += ev->locks[i].addr;
}

static void put_fate(struct rec *r, const struct fh_child_event *ev)
{
	if (!ev)
		return;
	r->has_fate = true;
	r->fate_pid = ev->pid;
	r->fate_parent = ev->parent_pid;
	r->fate_outcome = ev->outcome;
	r->fate_time = ev->time_ns;
	r->fate_fork_ns = ev->fork_ns;
	r->fate_exit_code = ev->exit_code;
}

static void put_dl(struct rec *r, const struct fh_deadlock_event *ev)
{
	if (!ev)
		return;
	r->has_dl = true;
	r->dl_pid = ev->pid;
	r->dl_owner = ev->owner_tid;
	r->dl_futex = ev->futex;
}

static void put_ri(struct rec *r, const struct reinit_set *ri)
{
	if (!ri)
		return;
	r->has_ri = true;
	r->ri_n = ri->n;
	memcpy(r->ri_addr, ri->addr, sizeof(r->ri_addr));
}

static void sink_fork(void *ctx, const struct fh_fork_event *ev, const struct fh_child_event *fate,
		      const struct fh_deadlock_event *dl, const struct reinit_set *ri)
{
	struct rec *r = next_rec(ctx, 'F');

	put_fork(r, ev);
	put_fate(r, fate);
	put_dl(r, dl);
	put_ri(r, ri);
}

static void sink_child(void *ctx, const struct fh_child_event *ev, const struct fh_fork_event *fork,
		       const struct reinit_set *ri)
{
	struct rec *r = next_rec(ctx, 'C');

	put_fate(r, ev);
	put_fork(r, fork);
	put_ri(r, ri);
}

static void sink_deadlock(void *ctx, const struct fh_deadlock_event *ev, const struct fh_lock *lock,
			  const struct fh_fork_event *fork, int with_fork)
{
	struct rec *r = next_rec(ctx, 'D');

	put_dl(r, ev);
	put_fork(r, fork);
	if (lock) {
		r->has_lock = true;
		r->lock_addr = lock->addr;
		r->lock_holder = lock->holder_tid;
		memcpy(r->lock_comm, lock->holder_comm, FH_COMM_LEN);
	}
	r->with_fork = with_fork;
}

static int sink_hold(void *ctx, const struct fh_fork_event *ev)
{
	struct recorder *rc = ctx;

	(void)ev;
	return rc->hold;
}

static const struct corr_sink sink = {
	.fork = sink_fork, .child = sink_child, .deadlock = sink_deadlock, .hold = sink_hold,
};

static struct correlate *new_corr(struct recorder *rc, bool hold, uint64_t hold_ns,
				  size_t max_pending, size_t max_bytes)
{
	struct corr_opts o = { .hold_ns = hold_ns, .max_pending = max_pending,
			       .max_bytes = max_bytes };

	memset(rc, 0, sizeof(*rc));
	rc->hold = hold;
	return correlate_new(&o, &sink, rc);
}

static size_t fork_size(uint32_t nr_locks)
{
	return offsetof(struct fh_fork_event, locks) + nr_locks * sizeof(struct fh_lock);
}

static void fork_ev(struct correlate *c, uint32_t pid, uint32_t child, uint64_t t)
{
	struct fh_fork_event ev = {
		.type = FH_EV_FORK, .pid = pid, .tid = pid, .child_pid = child, .time_ns = t,
		.threads = 2,
	};

	/* only the header is sent: fork_size(0) bytes, as from the ring buffer */
	correlate_fork(c, &ev, fork_size(0));
}

static void child_ev(struct correlate *c, uint32_t pid, uint32_t parent, uint32_t outcome,
		     uint64_t t)
{
	struct fh_child_event ev = {
		.type = FH_EV_CHILD, .pid = pid, .parent_pid = parent, .outcome = outcome,
		.time_ns = t, .exit_code = outcome == FH_CHILD_EXIT ? 3 << 8 : 0,
	};

	correlate_child(c, &ev);
}

static void deadlock_ev(struct correlate *c, uint32_t pid, uint32_t parent, uint64_t futex,
			uint64_t t)
{
	struct fh_deadlock_event ev = {
		.type = FH_EV_DEADLOCK, .pid = pid, .tid = pid, .parent_pid = parent,
		.time_ns = t, .futex = futex, .owner_tid = 11, .flags = FH_DL_OWNER_KNOWN,
		.syscall = 202, .comm = "child",
	};

	correlate_deadlock(c, &ev);
}

/* A fork whose parent holds: 0x1000 (tid 11, foreign), 0x2000 (own), 0x3000 (tid 12). */
static void fork_with_locks(struct correlate *c, uint32_t pid, uint32_t child, uint64_t t)
{
	static struct fh_fork_event ev;
	struct fh_lock l[3] = {
		{ .addr = 0x1000, .holder_tid = 11, .kind = FH_KIND_MUTEX,
		  .flags = FH_LOCK_CONFIRMED, .holder_comm = "worker" },
		{ .addr = 0x2000, .holder_tid = pid, .kind = FH_KIND_MUTEX, .flags = FH_LOCK_OWN },
		{ .addr = 0x3000, .holder_tid = 12, .kind = FH_KIND_RWLOCK_WRITE,
		  .holder_comm = "writer" },
	};

	memset(&ev, 0, sizeof(ev));
	ev.type = FH_EV_FORK;
	ev.pid = ev.tid = pid;
	ev.child_pid = child;
	ev.time_ns = t;
	ev.threads = 3;
	ev.nr_locks = 3;
	ev.nr_own = 1;
	memcpy(ev.locks, l, sizeof(l));
	correlate_fork(c, &ev, fork_size(3));
}

#define CHECK_NO_OVERFLOW(rc) CHECK_INT((rc).overflow, 0)

UNIT_TEST(held_fork_with_fate_in_window_comes_out_once)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 16, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);
	correlate_tick(c, 1100 * MS);
	CHECK_INT(rc.n, 0);			/* held: nothing yet */
	child_ev(c, 100, 10, FH_CHILD_EXEC, 1150 * MS);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F');
	CHECK_INT(rc.r[0].fork_child, 100);
	CHECK(rc.r[0].has_fate && !rc.r[0].has_dl);
	CHECK_INT(rc.r[0].fate_outcome, FH_CHILD_EXEC);
	CHECK_INT(rc.r[0].fate_time, 1150 * MS);
	CHECK_INT(correlate_pending(c), 0);
	/* nothing more, ever: no separate child record, no alive at the end */
	correlate_tick(c, 5000 * MS);
	correlate_finish(c, 6000 * MS);
	CHECK_INT(rc.n, 1);
	CHECK_NO_OVERFLOW(rc);
	correlate_free(c);
}

UNIT_TEST(fate_after_window_comes_out_alone)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 16, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);
	correlate_tick(c, 1200 * MS - 1);
	CHECK_INT(rc.n, 0);
	correlate_tick(c, 1200 * MS);		/* the deadline itself releases it */
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F' && !rc.r[0].has_fate);
	correlate_tick(c, 1300 * MS);		/* released once only */
	CHECK_INT(rc.n, 1);
	child_ev(c, 100, 10, FH_CHILD_EXIT, 1500 * MS);
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[1].kind == 'C');
	CHECK_INT(rc.r[1].fate_outcome, FH_CHILD_EXIT);
	CHECK_INT(rc.r[1].fate_exit_code, 3 << 8);
	CHECK(rc.r[1].has_fork);		/* with the fork it belongs to */
	CHECK_INT(rc.r[1].fork_pid, 10);
	CHECK_INT(rc.r[1].fork_time, 1000 * MS);
	CHECK_INT(correlate_pending(c), 0);
	correlate_finish(c, 2000 * MS);
	CHECK_INT(rc.n, 2);
	correlate_free(c);
}

UNIT_TEST(forks_not_held_come_out_at_once)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 200 * MS, 16, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F' && !rc.r[0].has_fate);
	child_ev(c, 100, 10, FH_CHILD_EXEC, 1001 * MS);
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[1].kind == 'C' && rc.r[1].has_fork);
	correlate_free(c);
	/* hold_ns 0 (JSON): the sink is not even asked */
	c = new_corr(&rc, true, 0, 16, 1 << 20);
	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F');
	correlate_free(c);
}

/* The lock a deadlock on `futex` is matched with; 0 for none. */
static uint64_t matched_lock(uint64_t futex, struct rec *dl_rec)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 16, 1 << 20);
	uint64_t addr = (uint64_t)-1;

	if (!c)
		return addr;
	fork_with_locks(c, 10, 100, 1000 * MS);
	deadlock_ev(c, 100, 10, futex, 1500 * MS);
	/* F at the fork, then C (the fate) and D */
	if (rc.n == 3 && rc.r[2].kind == 'D') {
		addr = rc.r[2].has_lock ? rc.r[2].lock_addr : 0;
		*dl_rec = rc.r[2];
	}
	correlate_free(c);
	return addr;
}

UNIT_TEST(deadlock_matches_the_parents_lock)
{
	static const struct { uint64_t futex, lock; } t[] = {
		{ 0x1000, 0x1000 },	/* a mutex: the lock word is the lock */
		{ 0x1008, 0x1000 },	/* rwlock words inside the lock */
		{ 0x1010, 0x1000 },
		{ 0x101f, 0x1000 },
		{ 0x1020, 0 },		/* 32 bytes on: another object */
		{ 0x0ff8, 0 },		/* before it */
		{ 0x3004, 0x3000 },
		{ 0x2000, 0 },		/* the forking thread's own lock: not the culprit */
		{ 0x2008, 0 },
		{ 0x9000, 0 },
	};
	struct rec d;

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		uint64_t got = matched_lock(t[i].futex, &d);

		if (got != t[i].lock)
			FAIL("futex 0x%llx: lock 0x%llx, want 0x%llx",
			     (unsigned long long)t[i].futex, (unsigned long long)got,
			     (unsigned long long)t[i].lock);
	}
	/* the owner: the lock's holder, and what the kernel read passes through */
	CHECK_INT(matched_lock(0x1008, &d), 0x1000);
	CHECK_INT(d.lock_holder, 11);
	CHECK_STR(d.lock_comm, "worker");
	CHECK_INT(d.dl_owner, 11);
	CHECK_INT(d.dl_futex, 0x1008);
	CHECK(d.has_fork && d.fork_pid == 10 && d.fork_nr_locks == 3);
	CHECK_INT(d.fork_lock_sum, 0x6000);	/* the copy kept every lock */
	CHECK_INT(d.with_fork, 0);
}

UNIT_TEST(deadlock_after_window)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 16, 1 << 20);

	CHECK(c);
	fork_with_locks(c, 10, 100, 1000 * MS);
	deadlock_ev(c, 100, 10, 0x1000, 1500 * MS);
	CHECK_INT(rc.n, 3);
	CHECK(rc.r[1].kind == 'C' && rc.r[1].has_fork);
	CHECK_INT(rc.r[1].fate_outcome, FH_CHILD_DEADLOCK);
	CHECK_INT(rc.r[1].fate_pid, 100);
	CHECK_INT(rc.r[1].fate_parent, 10);
	CHECK_INT(rc.r[1].fate_time, 1500 * MS);
	CHECK(rc.r[2].kind == 'D' && rc.r[2].has_lock && rc.r[2].has_fork);
	CHECK_INT(rc.r[2].with_fork, 0);
	/* a deadlocked child is decided: its exit, when killed, says nothing more */
	child_ev(c, 100, 10, FH_CHILD_EXIT, 9000 * MS);
	CHECK_INT(rc.n, 3);
	/* ... and its entry is not kept for nothing */
	CHECK_INT(correlate_pending(c), 0);
	correlate_finish(c, 9500 * MS);
	CHECK_INT(rc.n, 3);
	CHECK_INT(correlate_evicted(c), 0);
	correlate_free(c);
}

UNIT_TEST(deadlock_in_window_goes_with_its_fork)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 16, 1 << 20);

	CHECK(c);
	fork_with_locks(c, 10, 100, 1000 * MS);
	CHECK_INT(rc.n, 0);
	deadlock_ev(c, 100, 10, 0x3008, 1100 * MS);
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[0].kind == 'F' && rc.r[0].has_fate && rc.r[0].has_dl);
	CHECK_INT(rc.r[0].fate_outcome, FH_CHILD_DEADLOCK);
	CHECK_INT(rc.r[0].dl_futex, 0x3008);
	CHECK(rc.r[1].kind == 'D' && rc.r[1].has_lock);
	CHECK_INT(rc.r[1].lock_addr, 0x3000);
	CHECK_INT(rc.r[1].lock_holder, 12);
	CHECK_INT(rc.r[1].with_fork, 1);
	correlate_tick(c, 5000 * MS);		/* already out: not again */
	child_ev(c, 100, 10, FH_CHILD_EXIT, 6000 * MS);
	correlate_finish(c, 7000 * MS);
	CHECK_INT(rc.n, 2);
	correlate_free(c);
}

UNIT_TEST(events_without_a_known_fork_pass_through)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 16, 1 << 20);

	CHECK(c);
	child_ev(c, 555, 5, FH_CHILD_EXEC, 1000 * MS);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'C' && !rc.r[0].has_fork);
	CHECK_INT(rc.r[0].fate_pid, 555);
	deadlock_ev(c, 556, 5, 0x1000, 1100 * MS);
	CHECK_INT(rc.n, 3);
	CHECK(rc.r[1].kind == 'C' && !rc.r[1].has_fork);
	CHECK_INT(rc.r[1].fate_outcome, FH_CHILD_DEADLOCK);
	CHECK(rc.r[2].kind == 'D' && !rc.r[2].has_fork && !rc.r[2].has_lock);
	CHECK_INT(rc.r[2].dl_pid, 556);
	CHECK_INT(correlate_pending(c), 0);
	correlate_free(c);
}

UNIT_TEST(finish_gives_alive_to_undecided_children_only)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 200 * MS, 16, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);			/* out at once, undecided */
	fork_with_locks(c, 10, 101, 1001 * MS);		/* will deadlock */
	rc.hold = true;
	fork_ev(c, 20, 200, 1002 * MS);			/* held, undecided */
	fork_ev(c, 20, 201, 1003 * MS);			/* held, then exec'd */
	deadlock_ev(c, 101, 10, 0x1000, 1100 * MS);
	child_ev(c, 201, 20, FH_CHILD_EXEC, 1101 * MS);
	CHECK_INT(rc.n, 5);	/* F 100, F 101, C+D 101, F 201 with exec */
	CHECK_INT(correlate_pending(c), 3);	/* 100, 101 (decided), 200 */
	correlate_finish(c, 1150 * MS);
	CHECK_INT(rc.n, 7);
	/* 100: its fork is out, so a child record; oldest first */
	CHECK(rc.r[5].kind == 'C' && rc.r[5].has_fork);
	CHECK_INT(rc.r[5].fate_pid, 100);
	CHECK_INT(rc.r[5].fate_outcome, FH_CHILD_ALIVE);
	CHECK_INT(rc.r[5].fate_parent, 10);
	CHECK_INT(rc.r[5].fate_time, 1150 * MS);
	CHECK_INT(rc.r[5].fate_fork_ns, 1000 * MS);
	/* 200: still held, so its fork comes out with the fate */
	CHECK(rc.r[6].kind == 'F' && rc.r[6].has_fate);
	CHECK_INT(rc.r[6].fork_child, 200);
	CHECK_INT(rc.r[6].fate_outcome, FH_CHILD_ALIVE);
	CHECK_INT(correlate_pending(c), 0);
	correlate_finish(c, 1200 * MS);		/* twice: nothing left to say */
	CHECK_INT(rc.n, 7);
	correlate_free(c);
}

UNIT_TEST(eviction_by_count_oldest_first)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 2, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);
	fork_ev(c, 10, 101, 1001 * MS);
	CHECK_INT(rc.n, 0);
	fork_ev(c, 10, 102, 1002 * MS);
	/* the oldest made room, and its held fork was still emitted */
	CHECK_INT(correlate_evicted(c), 1);
	CHECK_INT(correlate_pending(c), 2);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F' && !rc.r[0].has_fate);
	CHECK_INT(rc.r[0].fork_child, 100);
	/* its child is no longer known; the others are */
	child_ev(c, 100, 10, FH_CHILD_EXEC, 1010 * MS);
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[1].kind == 'C' && !rc.r[1].has_fork);
	child_ev(c, 101, 10, FH_CHILD_EXEC, 1011 * MS);
	CHECK_INT(rc.n, 3);
	CHECK(rc.r[2].kind == 'F' && rc.r[2].has_fate);
	CHECK_INT(rc.r[2].fork_child, 101);
	CHECK_INT(correlate_pending(c), 1);
	correlate_free(c);	/* one still pending: freed, no leak */
}

UNIT_TEST(eviction_by_bytes)
{
	struct recorder rc;
	size_t big = fork_size(3), small = fork_size(0);
	struct correlate *c = new_corr(&rc, false, 0, 100, 2 * big + small);

	CHECK(c);
	CHECK(small < big);
	fork_with_locks(c, 10, 100, 1000 * MS);
	fork_with_locks(c, 10, 101, 1001 * MS);
	CHECK_INT(correlate_evicted(c), 0);
	fork_with_locks(c, 10, 102, 1002 * MS);
	CHECK_INT(correlate_evicted(c), 1);
	CHECK_INT(correlate_pending(c), 2);
	/* a small one still fits next to two big ones */
	fork_ev(c, 10, 103, 1003 * MS);
	CHECK_INT(correlate_evicted(c), 1);
	CHECK_INT(correlate_pending(c), 3);
	CHECK_INT(rc.n, 4);
	/* the oldest went: its child is unknown now; the others keep their locks */
	child_ev(c, 100, 10, FH_CHILD_EXIT, 1100 * MS);
	CHECK(rc.r[4].kind == 'C' && !rc.r[4].has_fork);
	deadlock_ev(c, 101, 10, 0x1000, 1100 * MS);
	CHECK(rc.r[6].kind == 'D' && rc.r[6].has_lock);
	CHECK_INT(rc.r[6].fork_child, 101);
	CHECK_INT(rc.n, 7);
	correlate_free(c);
}

UNIT_TEST(event_too_big_for_the_table_is_reported)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, true, 200 * MS, 100, fork_size(1));

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);			/* fits, held */
	CHECK_INT(correlate_pending(c), 1);
	fork_with_locks(c, 10, 101, 1001 * MS);		/* can never fit */
	CHECK_INT(correlate_evicted(c), 1);
	CHECK_INT(rc.n, 1);
	CHECK(rc.r[0].kind == 'F');
	CHECK_INT(rc.r[0].fork_child, 101);
	CHECK_INT(rc.r[0].fork_nr_locks, 3);
	/* it cost nobody else their place */
	CHECK_INT(correlate_pending(c), 1);
	child_ev(c, 100, 10, FH_CHILD_EXEC, 1010 * MS);
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[1].kind == 'F' && rc.r[1].has_fate);
	CHECK_INT(rc.r[1].fork_child, 100);
	correlate_free(c);
}

UNIT_TEST(recycled_child_pid_matches_its_latest_fork)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 16, 1 << 20);

	CHECK(c);
	fork_ev(c, 10, 100, 1000 * MS);		/* its child's end was never seen */
	fork_with_locks(c, 20, 100, 2000 * MS);	/* PID 100 again, another parent */
	deadlock_ev(c, 100, 20, 0x1000, 2100 * MS);
	CHECK_INT(rc.n, 4);
	CHECK(rc.r[2].kind == 'C' && rc.r[2].has_fork);
	CHECK_INT(rc.r[2].fork_pid, 20);
	CHECK(rc.r[3].kind == 'D' && rc.r[3].has_lock);
	CHECK_INT(rc.r[3].fork_time, 2000 * MS);
	/* the older entry is still there and ends as alive */
	correlate_finish(c, 3000 * MS);
	CHECK_INT(rc.n, 5);
	CHECK(rc.r[4].kind == 'C' && rc.r[4].has_fork);
	CHECK_INT(rc.r[4].fork_pid, 10);
	CHECK_INT(rc.r[4].fate_outcome, FH_CHILD_ALIVE);
	correlate_free(c);
}

UNIT_TEST(many_forks_stay_bounded)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 64, 1 << 20);
	uint64_t emitted = 0;

	CHECK(c);
	for (uint32_t i = 0; i < 10000; i++) {
		fork_ev(c, 10, 1000 + i, i);
		if (correlate_pending(c) > 64)
			FAIL("%zu pending after %u forks", correlate_pending(c), i + 1);
		emitted += (uint64_t)rc.n;
		rc.n = 0;	/* only the count matters here */
	}
	CHECK_INT(emitted, 10000);
	CHECK_INT(correlate_evicted(c), 10000 - 64);
	CHECK_INT(correlate_pending(c), 64);
	correlate_free(c);
	correlate_free(NULL);
}

/* ---- re-created locks: evidence, and the mitigated count ------------------------- */

static int examined;

/* corr_opts.examine: the living child shows 0x3000 re-initialised. */
static void examine_3000(void *ctx, const struct fh_fork_event *ev, struct reinit_set *ri)
{
	(void)ctx;
	(void)ev;
	examined++;
	reinit_add(ri, 0x3000, REINIT_WHY_WORD);
}

UNIT_TEST(reinit_evidence_of_foreign_locks_only)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 16, 1 << 20);
	struct fh_child_event fate = {
		.type = FH_EV_CHILD, .pid = 100, .parent_pid = 10, .outcome = FH_CHILD_EXIT,
		.time_ns = 1100 * MS, .nr_reinit = 1, .reinit = { 0x3000 },
	};

	CHECK(c);
	fork_with_locks(c, 10, 100, 1000 * MS);
	correlate_reinit(c, 100, 0x1000, REINIT_WHY_PYTHON);
	correlate_reinit(c, 100, 0x2000, REINIT_WHY_PYTHON);	/* own: not counted */
	correlate_reinit(c, 100, 0x9000, REINIT_WHY_PYTHON);	/* not a lock of the fork */
	correlate_reinit(c, 999, 0x1000, REINIT_WHY_PYTHON);	/* another child */
	correlate_child(c, &fate);	/* the kernel read 0x3000's word at exit */
	CHECK_INT(rc.n, 2);
	CHECK(rc.r[1].kind == 'C' && rc.r[1].has_ri);
	CHECK_INT(rc.r[1].ri_n, 2);
	CHECK_INT(rc.r[1].ri_addr[0], 0x1000);
	CHECK_INT(rc.r[1].ri_addr[1], 0x3000);
	/* both foreign locks re-created: mitigated, once */
	CHECK_INT(correlate_mitigated(c), 1);
	correlate_finish(c, 2000 * MS);
	CHECK_INT(correlate_mitigated(c), 1);
	correlate_free(c);
}

UNIT_TEST(not_mitigated_while_a_foreign_lock_is_left)
{
	struct recorder rc;
	struct correlate *c = new_corr(&rc, false, 0, 16, 1 << 20);

	CHECK(c);
	fork_with_locks(c, 10, 100, 1000 * MS);
	correlate_reinit(c, 100, 0x1000, REINIT_WHY_PYTHON);
	deadlock_ev(c, 100, 10, 0x3000, 1200 * MS);	/* on the other one */
	CHECK_INT(correlate_mitigated(c), 0);
	/* the same deadlock again (a second report) changes nothing */
	deadlock_ev(c, 100, 10, 0x3000, 1300 * MS);
	CHECK_INT(rc.n, 3);
	child_ev(c, 100, 10, FH_CHILD_EXIT, 1400 * MS);
	CHECK_INT(correlate_mitigated(c), 0);
	CHECK_INT(rc.n, 3);
	correlate_free(c);
}

UNIT_TEST(examine_reads_the_living_child)
{
	struct recorder rc;
	struct corr_opts o = { .hold_ns = 200 * MS, .max_pending = 16, .max_bytes = 1 << 20,
			       .examine = examine_3000 };
	struct correlate *c;

	memset(&rc, 0, sizeof(rc));
	rc.hold = true;
	c = correlate_new(&o, &sink, &rc);
	CHECK(c);
	examined = 0;
	fork_with_locks(c, 10, 100, 1000 * MS);
	CHECK_INT(examined, 1);			/* as it is first seen */
	fork_ev(c, 10, 101, 1000 * MS);		/* no hazard: not looked at */
	CHECK_INT(examined, 1);
	correlate_reinit(c, 100, 0x1000, REINIT_WHY_PYTHON);
	correlate_tick(c, 1200 * MS);		/* released without a fate: looked at again */
	CHECK_INT(examined, 2);
	CHECK(rc.r[0].kind == 'F' && rc.r[0].has_ri && !rc.r[0].has_fate);
	CHECK_INT(rc.r[0].ri_n, 2);
	correlate_finish(c, 3000 * MS);		/* alive: once more, then its fate */
	CHECK_INT(examined, 3);
	CHECK_INT(correlate_mitigated(c), 1);
	correlate_free(c);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * inspect.c's verdict on hand-made processes (every rule, and the cases that
 * must not trip it), and the /proc readers inspect added to procfs.c.
 */
#include <errno.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include "inspect.h"
#include "unit.h"

#define MAX_T 8

struct fake {
	struct inspect_proc p;
	struct inspect_thread t[MAX_T];
};

static void fake_init(struct fake *f, int n)
{
	memset(f, 0, sizeof(*f));
	f->p.pid = 100;
	f->p.ppid = 99;
	strcpy(f->p.comm, "app");
	f->p.state = 'S';
	f->p.nthreads = n;
	f->p.threads = f->t;
	for (int i = 0; i < n; i++) {
		f->t[i].tid = 100 + i;
		f->t[i].state = 'S';
		strcpy(f->t[i].comm, "app");
		/* idle in a timed sleep unless a case says otherwise */
		f->t[i].have_syscall = true;
		f->t[i].sc.nr = SYS_clock_nanosleep;
		f->t[i].wait = WAIT_SLEEP;
	}
}

/* Thread i waits on a glibc mutex at addr owned by owner (0: none). */
static void waits(struct fake *f, int i, uint64_t addr, pid_t owner, enum inspect_owner where,
		  bool timeout, bool priv)
{
	struct inspect_thread *t = &f->t[i];

	t->sc.nr = SYS_futex;
	t->wait = WAIT_FUTEX;
	t->futex.call = LW_CALL_FUTEX;
	t->futex.uaddr = addr;
	t->futex.val = 2;
	t->futex.nr_futexes = 1;
	t->futex.is_private = priv;
	t->futex.has_timeout = timeout;
	t->futex.word32 = true;
	t->lock.kind = owner ? LW_KIND_MUTEX : LW_KIND_FUTEX;
	t->lock.word_valid = true;
	t->lock.word = 2;
	t->lock.owner = owner;
	t->owner = where;
}

static enum inspect_verdict judge(struct fake *f, char *why)
{
	return inspect_judge(&f->p, why, 1024);
}

UNIT_TEST(healthy_is_ok)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 3);
	waits(&f, 2, 0x5000, 0, OWNER_NONE, true, true);	/* a cond wait with a timeout */
	CHECK(judge(&f, why) == INSPECT_OK);
	CHECK(strstr(why, "3 threads"));
}

UNIT_TEST(inherited_lock_owner_in_parent_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 1);
	waits(&f, 0, 0x55d0c8a04040, 4702, OWNER_ELSEWHERE, false, true);
	f.t[0].owner_pid = 99;
	strcpy(f.t[0].owner_comm, "parent");
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "thread 100 waits forever on mutex 0x55d0c8a04040 owned by TID 4702"));
	CHECK(strstr(why, "does not exist in this process"));
	CHECK(strstr(why, "held by another thread of the parent when it forked"));
}

UNIT_TEST(owner_gone_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 2);
	waits(&f, 1, 0x6000, 4702, OWNER_GONE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "does not exist (any more)"));
}

UNIT_TEST(timed_wait_on_dead_owner_is_not_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 1);
	waits(&f, 0, 0x6000, 4702, OWNER_GONE, true, true);
	CHECK(judge(&f, why) == INSPECT_OK);
}

UNIT_TEST(shared_lock_owned_by_other_process_is_blocked)
{
	struct fake f;
	char why[1024];

	/* a process-shared mutex: that thread may well unlock it */
	fake_init(&f, 2);
	waits(&f, 1, 0x7000, 555, OWNER_ELSEWHERE, false, false);
	f.t[1].owner_pid = 550;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "PID 550"));
}

UNIT_TEST(live_owner_is_blocked)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 3);
	waits(&f, 2, 0x7000, 101, OWNER_HERE, false, true);
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "owned by TID 101, a live thread of this process"));
	CHECK(strstr(why, "clock_nanosleep"));
}

UNIT_TEST(lock_taken_twice_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 2);
	waits(&f, 1, 0x7000, 101, OWNER_HERE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "which it holds itself"));
}

UNIT_TEST(lock_cycle_is_deadlock)
{
	struct fake f;
	char why[1024];

	/* 101 -> 102 -> 103 -> 101; 100 idles */
	fake_init(&f, 4);
	waits(&f, 1, 0xa000, 102, OWNER_HERE, false, true);
	waits(&f, 2, 0xb000, 103, OWNER_HERE, false, true);
	waits(&f, 3, 0xc000, 101, OWNER_HERE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "lock-order inversion"));
	CHECK(strstr(why, "thread 101 waits on mutex 0xa000 owned by TID 102"));
	CHECK(strstr(why, "thread 103 waits on mutex 0xc000 owned by TID 101"));
	/* one of them with a timeout breaks it */
	f.t[3].futex.has_timeout = true;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
}

UNIT_TEST(chain_without_cycle_is_blocked)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 3);
	waits(&f, 1, 0xa000, 102, OWNER_HERE, false, true);
	waits(&f, 2, 0xb000, 100, OWNER_HERE, false, true);
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "(and 1 more thread blocked)"));
}

UNIT_TEST(single_thread_private_wait_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 1);
	waits(&f, 0, 0x8000, 0, OWNER_NONE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "the only thread, 100"));
	/* shared: another process may wake it */
	f.t[0].futex.is_private = false;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
}

UNIT_TEST(all_threads_waiting_privately_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 2);
	waits(&f, 0, 0x8000, 0, OWNER_NONE, false, true);
	waits(&f, 1, 0x9000, 0, OWNER_NONE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "all 2 threads"));
	/* threads not looked at might wake them */
	f.p.omitted = 5;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	f.p.omitted = 0;
	f.t[1].futex.has_timeout = true;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
}

UNIT_TEST(zombie_threads_do_not_count)
{
	struct fake f;
	char why[1024];

	/* a zombie leader and one live thread waiting: that is the only thread */
	fake_init(&f, 2);
	f.t[0].state = 'Z';
	f.t[0].have_syscall = false;
	f.t[0].wait = WAIT_NONE;
	waits(&f, 1, 0x8000, 0, OWNER_NONE, false, true);
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "the only thread, 101"));
	fake_init(&f, 1);
	f.t[0].state = 'Z';
	CHECK(judge(&f, why) == INSPECT_OK);
	CHECK(strstr(why, "zombie"));
}

UNIT_TEST(other_blocking_states)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 2);
	f.t[1].state = 'D';
	strcpy(f.t[1].wchan, "io_schedule");
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "uninterruptible"));
	fake_init(&f, 1);
	f.t[0].sc.nr = SYS_wait4;
	f.t[0].wait = WAIT_CHILD;
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "wait4"));
	fake_init(&f, 1);
	f.t[0].state = 'T';
	CHECK(judge(&f, why) == INSPECT_BLOCKED);
	CHECK(strstr(why, "kill -CONT 100"));
	fake_init(&f, 1);
	f.t[0].sc.nr = SYS_read;
	f.t[0].wait = WAIT_OTHER;	/* waiting for input is not being stuck */
	CHECK(judge(&f, why) == INSPECT_OK);
}

UNIT_TEST(join_of_parents_thread_is_deadlock)
{
	struct fake f;
	char why[1024];

	fake_init(&f, 1);
	waits(&f, 0, 0x7f00, 4702, OWNER_ELSEWHERE, false, true);
	f.t[0].lock.kind = LW_KIND_JOIN;
	f.t[0].owner_pid = 99;
	CHECK(judge(&f, why) == INSPECT_DEADLOCK);
	CHECK(strstr(why, "waits forever to join thread 4702"));
}

UNIT_TEST(explanation_bounded)
{
	struct fake f;
	char why[40];

	fake_init(&f, 1);
	waits(&f, 0, 0x55d0c8a04040, 4702, OWNER_ELSEWHERE, false, true);
	f.t[0].owner_pid = 99;
	memset(f.t[0].owner_comm, 'x', sizeof(f.t[0].owner_comm) - 1);
	CHECK(inspect_judge(&f.p, why, sizeof(why)) == INSPECT_DEADLOCK);
	CHECK_INT(strlen(why), sizeof(why) - 1);
	CHECK_STR(inspect_verdict_name(INSPECT_DEADLOCK), "deadlock");
	CHECK_STR(inspect_verdict_name(INSPECT_BLOCKED), "blocked");
	CHECK_STR(inspect_verdict_name(INSPECT_OK), "ok");
}

/* ---- procfs readers added for inspect ------------------------------------- */

UNIT_TEST(procfs_status_fields)
{
	struct fh_proc_status st;
	/* a name with a newline is escaped by the kernel; a fake Tgid in it must not count */
	const char *buf = "Name:\tx\\nTgid:\t1\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4700\n"
			  "Ngid:\t0\nPid:\t4711\nPPid:\t1\nTracerPid:\t0\n";

	CHECK_INT(procfs_parse_status(buf, &st), 0);
	CHECK_INT(st.tgid, 4700);
	CHECK_INT(st.tracer_pid, 0);
	CHECK_INT(procfs_parse_status("Name:\tx\nTgid:\t5\n", &st), -EINVAL);
	CHECK_INT(procfs_read_status(getpid(), 0, &st), 0);
	CHECK_INT(st.tgid, getpid());
	CHECK_INT(procfs_read_status(99999999, 0, &st), -ENOENT);
}

UNIT_TEST(procfs_wchan_and_pid_max)
{
	char buf[64];
	int pid_max = procfs_read_pid_max();

	/* we are running: no wait channel */
	CHECK_INT(procfs_read_wchan(getpid(), getpid(), buf, sizeof(buf)), 0);
	CHECK_STR(buf, "");
	CHECK(procfs_read_wchan(99999999, 99999999, buf, sizeof(buf)) < 0);
	CHECK(pid_max > getpid() && pid_max <= (1 << 22));
}

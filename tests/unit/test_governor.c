// SPDX-License-Identifier: GPL-2.0
/* governor.c's rule, pure: hits, CPU time, window, a hit's cost, the budget
 * and the back-off in; keep, downgrade, re-arm or restore out. */
#include "config.h"
#include "governor.h"
#include "unit.h"

#define MS	1000000ull
#define S	1000000000ull

static const struct gov_params one_pct = { .hit_ns = 5000, .budget_pct = 1 };

static struct gov_verdict decide(enum gov_phase phase, uint64_t elapsed, uint64_t hits,
				 uint64_t cpu_ns, uint64_t backoff, const struct gov_params *p)
{
	struct gov_state st = { .phase = phase, .since_ns = 100 * S, .backoff_ns = backoff };
	struct gov_reading r = { .now_ns = 100 * S + elapsed, .hits = hits, .cpu_ns = cpu_ns };
	struct gov_verdict v;

	governor_decide(&st, &r, p, &v);
	return v;
}

UNIT_TEST(a_window_is_at_least_a_second_after_arming)
{
	/* however dear, nothing is decided before the window is over */
	CHECK_INT(decide(GOV_ARMED, GOV_WINDOW_NS - 1, 1000000, 10 * MS, 0, &one_pct).action,
		  GOV_WAIT);
	CHECK_INT(decide(GOV_ARMED, 0, 1000000, 0, 0, &one_pct).action, GOV_WAIT);
	CHECK(GOV_WINDOW_NS >= S);
	CHECK_INT(decide(GOV_ARMED, GOV_WINDOW_NS, 1000000, 10 * MS, 0, &one_pct).action,
		  GOV_DOWNGRADE);
}

UNIT_TEST(over_budget_downgrades_with_the_first_backoff)
{
	/* 1000 hits of 5 us: 5 ms of 100 ms of CPU time, 5% > 1% */
	struct gov_verdict v = decide(GOV_ARMED, S, 1000, 100 * MS, 0, &one_pct);

	CHECK_INT(v.action, GOV_DOWNGRADE);
	CHECK_INT(v.cost_ns, 5 * MS);
	CHECK_INT(v.window_ns, S);
	CHECK(v.overhead_pct > 4.999 && v.overhead_pct < 5.001);
	CHECK_INT(v.backoff_ns, GOV_BACKOFF_MIN_NS);
}

UNIT_TEST(within_budget_keeps)
{
	/* the same 5 ms against a whole CPU second: 0.5% */
	struct gov_verdict v = decide(GOV_ARMED, S, 1000, S, 0, &one_pct);
	struct gov_params ten = { .hit_ns = 5000, .budget_pct = 10 };

	CHECK_INT(v.action, GOV_KEEP);
	CHECK(v.overhead_pct > 0.499 && v.overhead_pct < 0.501);
	/* 5% of a budget of 10% */
	CHECK_INT(decide(GOV_ARMED, S, 1000, 100 * MS, 0, &ten).action, GOV_KEEP);
	/* just over and just within 1% */
	CHECK_INT(decide(GOV_ARMED, S, 1000, 499 * MS, 0, &one_pct).action, GOV_DOWNGRADE);
	CHECK_INT(decide(GOV_ARMED, S, 1000, 500 * MS, 0, &one_pct).action, GOV_KEEP);
}

UNIT_TEST(cheap_in_absolute_terms_is_never_over)
{
	/* a thread taking a lock 100 times a second: 0.5 ms a second, against
	 * no CPU time at all, or 1 ms: kept whatever the share */
	struct gov_verdict v = decide(GOV_ARMED, S, 100, 0, 0, &one_pct);

	CHECK_INT(v.action, GOV_KEEP);
	CHECK(v.overhead_pct < 0);	/* no CPU time seen: not known */
	CHECK_INT(decide(GOV_ARMED, S, 100, 1 * MS, 0, &one_pct).action, GOV_KEEP);
	/* over a longer window the floor scales: 0.9 ms/s over 3 s */
	CHECK_INT(decide(GOV_ARMED, 3 * S, 540, 0, 0, &one_pct).action, GOV_KEEP);
	/* at 1 ms a second and no CPU time of its own: the cost is real */
	v = decide(GOV_ARMED, S, 200, 0, 0, &one_pct);
	CHECK_INT(v.action, GOV_DOWNGRADE);
	CHECK(v.overhead_pct < 0);
	/* a dearer machine: the same 100 locks a second cost 1.2 ms */
	CHECK_INT(decide(GOV_ARMED, S, 100, 10 * MS,
			 0, &(struct gov_params){ .hit_ns = 12000, .budget_pct = 1 }).action,
		  GOV_DOWNGRADE);
}

UNIT_TEST(downgraded_waits_out_its_backoff_then_rearms)
{
	CHECK_INT(decide(GOV_DOWNGRADED, 10 * S - 1, 0, 0, 10 * S, &one_pct).action, GOV_WAIT);
	CHECK_INT(decide(GOV_DOWNGRADED, 10 * S, 0, 0, 10 * S, &one_pct).action, GOV_REARM);
	CHECK_INT(decide(GOV_DOWNGRADED, 40 * S, 0, 0, 40 * S, &one_pct).action, GOV_REARM);
}

UNIT_TEST(a_rearmed_window_is_short_and_ends_in_restore_or_a_longer_backoff)
{
	struct gov_verdict v;

	CHECK(GOV_REARM_WINDOW_NS < GOV_WINDOW_NS);
	CHECK_INT(decide(GOV_REARMED, GOV_REARM_WINDOW_NS - 1, 100000, MS, 10 * S,
			 &one_pct).action, GOV_WAIT);
	v = decide(GOV_REARMED, GOV_REARM_WINDOW_NS, 100000, 400 * MS, 10 * S, &one_pct);
	CHECK_INT(v.action, GOV_DOWNGRADE);
	CHECK_INT(v.backoff_ns, 20 * S);
	v = decide(GOV_REARMED, GOV_REARM_WINDOW_NS, 10, 400 * MS, 10 * S, &one_pct);
	CHECK_INT(v.action, GOV_RESTORE);
	CHECK_INT(v.window_ns, GOV_REARM_WINDOW_NS);
	/* doubling stops at the maximum */
	v = decide(GOV_REARMED, S, 100000, 400 * MS, GOV_BACKOFF_MAX_NS / 2 + S, &one_pct);
	CHECK_INT(v.backoff_ns, GOV_BACKOFF_MAX_NS);
	v = decide(GOV_REARMED, S, 100000, 400 * MS, GOV_BACKOFF_MAX_NS, &one_pct);
	CHECK_INT(v.backoff_ns, GOV_BACKOFF_MAX_NS);
	/* a process restored and over again later: the back-off goes on growing */
	v = decide(GOV_ARMED, S, 100000, 400 * MS, 40 * S, &one_pct);
	CHECK_INT(v.action, GOV_DOWNGRADE);
	CHECK_INT(v.backoff_ns, 80 * S);
}

UNIT_TEST(the_budget_applies_by_mode)
{
	struct fh_config cfg = { .max_overhead = 1 };

	cfg.trace_mode = FH_TRACE_ADAPTIVE;
	CHECK(governor_budget(&cfg) == 1);
	cfg.trace_mode = FH_TRACE_TARGETS;		/* -p, COMMAND: only when asked */
	CHECK(governor_budget(&cfg) == 0);
	cfg.max_overhead_given = true;
	CHECK(governor_budget(&cfg) == 1);
	cfg.trace_mode = FH_TRACE_ALL;			/* probes on every process */
	CHECK(governor_budget(&cfg) == 0);
	cfg.trace_mode = FH_TRACE_LIGHT;
	CHECK(governor_budget(&cfg) == 0);
	cfg.trace_mode = FH_TRACE_ADAPTIVE;
	cfg.max_overhead = 0;				/* off */
	CHECK(governor_budget(&cfg) == 0);
}

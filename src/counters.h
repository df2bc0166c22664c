/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What a run counts, named once: the summary (JSON and text) and the metrics
 * both walk this table, so a counter cannot be in one and missing from the
 * other (tests/unit/test_counters.c checks all three renderings). A new
 * counter is one enum value, one row, and where its value comes from
 * (tracer.c: the kernel's `stats` map, or userspace's own).
 */
#ifndef FH_COUNTERS_H
#define FH_COUNTERS_H

#include <stdint.h>

enum fh_counter {
	FH_CNT_FORKS,
	FH_CNT_MT_FORKS,
	FH_CNT_HAZARDS,
	FH_CNT_MITIGATED,
	FH_CNT_DEADLOCKS,
	FH_CNT_SUPPRESSED_BY_RULE,
	FH_CNT_LOST,
	FH_CNT_LOST_FORKS,
	/* What bounded tables could not hold: the summary's "dropped". */
	FH_CNT_UNTRACKED_LOCKS,
	FH_CNT_UNTRACED_PROCS,
	FH_CNT_UNFOLLOWED_CHILDREN,
	FH_CNT_STACKS_LOST,
	FH_CNT_CORRELATION_EVICTED,
	FH_CNT_UNWINDS_SKIPPED,
	FH_CNT_UNPROBED_PROCS,
	FH_CNT_UNREAD_WORDS,
	FH_CNT_UNSYMBOLIZED_FORKS,
	FH_CNT_MAX,
};
#define FH_CNT_FIRST_DROPPED	FH_CNT_UNTRACKED_LOCKS

/* fh_counter_info.flags */
#define FH_CNT_ASIDE	0x1	/* text: in parentheses after the one before, when not 0 */

struct fh_counter_info {
	const char *key;	/* the summary's member (inside "dropped" for those);
				 * for the dropped, also the metric's what= label */
	const char *metric;	/* its Prometheus counter (the dropped ones share
				 * forkhazard_dropped_total) */
	const char *help;	/* the metric's HELP: what it counts */
	const char *text;	/* the text summary's words after the number */
	int stat;		/* enum fh_stat it is read from; -1: userspace's own */
	unsigned int flags;
};

extern const struct fh_counter_info fh_counters[FH_CNT_MAX];

/* One reading of every counter. */
struct fh_counts {
	uint64_t v[FH_CNT_MAX];
};

#endif

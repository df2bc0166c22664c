// SPDX-License-Identifier: GPL-2.0
#include "counters.h"
#include "forkhazard.h"

#define DROPPED	"forkhazard_dropped_total"

const struct fh_counter_info fh_counters[FH_CNT_MAX] = {
	[FH_CNT_FORKS] = { "forks", "forkhazard_forks_total",
			   "New processes forked by traced processes.", "forks", FH_STAT_FORKS },
	[FH_CNT_MT_FORKS] = { "mt_forks", "forkhazard_multithreaded_forks_total",
			      "Forks whose parent was multithreaded.",
			      "from multithreaded processes", FH_STAT_MT_FORKS },
	/* the kernel's part: lost hazard candidates; tracer.c adds the forks
	 * userspace judged hazards (src/hazard.h) */
	[FH_CNT_HAZARDS] = { "hazards", "forkhazard_hazards_total",
			     "Forks while another thread of the parent held a lock that is not "
			     "the interpreter's own nor in shared memory.", "hazards",
			     FH_STAT_HAZARDS_LOST },
	[FH_CNT_MITIGATED] = { "mitigated", "forkhazard_mitigated_total",
			       "Hazard forks whose child re-created every lock it inherited held "
			       "(a subset of the hazards).",
			       "mitigated", -1, FH_CNT_ASIDE },
	[FH_CNT_DEADLOCKS] = { "deadlocks", "forkhazard_deadlocks_total",
			       "Forked children confirmed deadlocked.", "deadlocks",
			       FH_STAT_DEADLOCKS },
	/* not "suppressed": the daemon's reports held back by its rate limits */
	[FH_CNT_SUPPRESSED_BY_RULE] = { "suppressed_by_rule", "forkhazard_suppressed_by_rule_total",
					"Findings (hazard forks, deadlocks) that --suppressions "
					"rules set aside entirely.",
					"findings suppressed by rules", -1, FH_CNT_ASIDE },
	[FH_CNT_LOST] = { "lost", "forkhazard_lost_events_total",
			  "Events dropped because the ring buffer was full.",
			  "events lost", FH_STAT_LOST },
	[FH_CNT_LOST_FORKS] = { "lost_forks", "forkhazard_lost_fork_events_total",
				"Fork events among the lost events.", "of them forks",
				FH_STAT_FORKS_LOST, FH_CNT_ASIDE },
	[FH_CNT_UNTRACKED_LOCKS] = { "untracked_locks", DROPPED,
				     "Locks forgotten: a thread held more than 16 (the oldest made room).",
				     "locks", FH_STAT_HELD_FULL },
	[FH_CNT_UNTRACED_PROCS] = { "untraced_procs", DROPPED,
				    "Processes not traced: the process table was full.",
				    "processes", FH_STAT_PROCS_FULL },
	[FH_CNT_UNFOLLOWED_CHILDREN] = { "unfollowed_children", DROPPED,
					 "Children not followed: the children table was full.",
					 "children", FH_STAT_CHILDREN_FULL },
	[FH_CNT_STACKS_LOST] = { "stacks", DROPPED, "Stacks not recorded: the stack map was full.",
				 "stacks", FH_STAT_STACKS_LOST },
	[FH_CNT_CORRELATION_EVICTED] = { "correlation_evicted", DROPPED,
					 "Forks dropped from the correlation table.",
					 "correlations", -1 },
	[FH_CNT_UNWINDS_SKIPPED] = { "unwinds", DROPPED,
				     "Stack copies not unwound (rate limit): frame pointers instead.",
				     "stack copies not unwound", -1 },
	[FH_CNT_UNPROBED_PROCS] = { "unprobed_procs", DROPPED,
				    "Processes left without lock probes (--max-procs).",
				    "processes without lock probes", -1 },
	[FH_CNT_UNREAD_WORDS] = { "unread_words", DROPPED,
				  "Lock words a fork could not read (their page absent for longer "
				  "than a copy-on-write takes): the lock unconfirmed, or unseen "
				  "under the word watch.",
				  "lock words unread", FH_STAT_WORDS_UNREAD },
	/* symbolize.c's: stacks are read from the living process's maps */
	[FH_CNT_UNSYMBOLIZED_FORKS] = { "unsymbolized_forks", DROPPED,
					"Forks whose parent and child had both exited before "
					"userspace read their memory maps: their stacks are "
					"addresses.",
					"forks unsymbolized (gone first)", -1 },
};

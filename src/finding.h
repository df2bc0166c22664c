/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A finding, as the tracer's sinks meet it (events.c for text and JSON,
 * daemon.c for the service): a hazard fork or a confirmed deadlock. One
 * place works out, in every mode alike, what the process is (its executable,
 * where it runs), which site the finding belongs to (siteid.c, so that one
 * site has one id in every mode), which suppression rules set its locks
 * aside (suppress.c) and what is left of it (hazard.c's level). It also
 * remembers the site of each hazard fork's child, for the child's fate and
 * deadlock, which come later. A run that gates on its findings (gate.c) is
 * told of each, with the frames it keeps.
 */
#ifndef FH_FINDING_H
#define FH_FINDING_H

#include <stdbool.h>
#include <stdint.h>
#include "container.h"
#include "forkhazard.h"
#include "hazard.h"
#include "siteid.h"

struct containers;
struct gate;
struct reinit_set;
struct suppressions;
struct syms;
struct ustacks;

/*
 * An occurrence's process, as the filters, the rules and the reports see it:
 * its name, its executable (the name the kernel recorded at the event,
 * always there: the identity sites are keyed on, so a process that exited
 * before its events were read lands on the same site; and its full path
 * while the process is still there to ask, for people, --filter-exe and the
 * rules), and where it runs.
 */
struct occurrence {
	char comm[FH_COMM_LEN + 1];
	char name[FH_EXE_NAME_LEN + 1];
	char exe[SITE_EXE_LEN];
	struct fh_container k;
	bool known;		/* k is */
};

/* What the rules leave of a finding. */
struct finding {
	struct siteid_key key;		/* its site: key.d.id, what it is for people */
	char site[17];			/* key.d.id in hex */
	enum hazard_level level;	/* after the rules */
	bool suppressed;		/* a finding the rules set aside entirely */
	/* The rule ("FILE:LINE") that set each lock aside: a fork's
	 * ev->locks[i], a deadlock's [0]; NULL where none did. */
	const char *suppressed_by[FH_EVENT_LOCKS];
};

struct findings_opts {
	struct syms *syms;
	struct ustacks *ustacks;
	struct containers *containers;	/* where processes run; NULL: not looked up */
	const struct suppressions *supp;	/* NULL: no rules */
	struct gate *gate;		/* told of every finding; NULL: none */
};

struct findings;

struct findings *findings_new(const struct findings_opts *opts);
void findings_free(struct findings *fs);

/* What is known of process pid at an event (comm: FH_COMM_LEN bytes). */
void findings_observe(struct findings *fs, __u32 pid, const char *comm, const char *exe_name,
		      uint64_t cgroup_id, struct occurrence *oc);

/* A hazard fork of the process oc: its site, and the rules' verdict. A lock
 * the child re-created (ri, NULL: none known yet) is no finding either: the
 * hazard is mitigated, not suppressed. */
void findings_fork(struct findings *fs, const struct fh_fork_event *ev,
		   const struct reinit_set *ri, const struct occurrence *oc, struct finding *f);
/*
 * A confirmed deadlock of the child in oc: its site (that of its fork when
 * the fork was a hazard, else where it waits), and the rules' verdict on it.
 * lock, fork: its lock in the parent's fork event and that event, if known.
 */
void findings_deadlock(struct findings *fs, const struct fh_deadlock_event *ev,
		       const struct fh_lock *lock, const struct fh_fork_event *fork,
		       const struct occurrence *oc, struct finding *f);

/* The site of a hazard fork's child (0: none known), and whether its fate
 * is hidden with its fork (text mode, a finding the rules set aside);
 * bounded, direct-mapped. */
void findings_remember_child(struct findings *fs, uint32_t child, uint64_t site, bool hidden);
uint64_t findings_child_site(const struct findings *fs, uint32_t child);
bool findings_child_hidden(const struct findings *fs, uint32_t child);
/* A hazard fork's child re-created the locks in ri (reinit.h): a finding
 * left with none of its locks is mitigated, and the gate forgets it. */
void findings_child_recreated(struct findings *fs, uint32_t child, const struct reinit_set *ri);

/* Findings the rules set aside entirely (the summary's suppressed_by_rule). */
uint64_t findings_suppressed(const struct findings *fs);

#endif

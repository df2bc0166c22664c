/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A run as a gate in CI: what it found, and what that makes of its end.
 * finding.c tells it of every finding with what the rules left of it; it
 * keeps the worst level left, and the finding sites (bounded) with the
 * frames of their first occurrence, for SARIF (sarif.c) and for the
 * ready-to-paste rules -v prints. At the end it chooses the exit status
 * (--fail-on, --fail-exit-code; a COMMAND that failed by itself keeps its
 * own) and says why in one line. --kill-deadlocked lives here too: the one
 * deliberate exception to "never signal a traced program", on request only,
 * for a child that can never run again. Not used by the service.
 */
#ifndef FH_GATE_H
#define FH_GATE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include "config.h"
#include "forkhazard.h"
#include "hazard.h"
#include "sites.h"

struct fh_frame;
struct finding;
struct occurrence;

#define GATE_SITES_MAX		256	/* finding sites kept with their details */
#define GATE_STACK_FRAMES	16	/* frames kept per stack */
#define GATE_LOCKS		4	/* locks kept per site */
#define GATE_WHERE_LEN		320	/* a rule's "FILE:LINE" */

/* A frame as kept: its strings own one allocation (symbol). */
struct gate_frame {
	char *symbol;			/* "" when unknown; owns file and module */
	const char *file;		/* "" when the debug information does not say */
	const char *module;		/* its path, "" when in no module */
	unsigned int line;
	uint64_t addr, offset, module_offset;
	bool known, has_module;
	bool libc;			/* the C library's own: never a site's place */
};

enum gate_stack_kind { GATE_STACK_FORK, GATE_STACK_WAIT, GATE_STACKS };

struct gate_stack {
	struct gate_frame f[GATE_STACK_FRAMES];
	int n;
	bool set;
};

struct gate_lock {
	uint64_t addr;
	unsigned int kind;		/* enum fh_lock_kind */
	uint32_t holder_tid;
	char holder_comm[FH_COMM_LEN + 1];
	uint64_t held_ns;
	char suppressed_by[GATE_WHERE_LEN];	/* "" when no rule set it aside */
	struct gate_stack stack;
};

struct gate_site {
	uint64_t id;
	char hex[17];
	enum site_kind kind;		/* a hazard site, or a deadlock's own */
	enum hazard_level worst;	/* the worst finding seen, rules or not */
	enum hazard_level left;		/* the worst the rules left */
	uint64_t hazards, deadlocks;	/* findings the rules left */
	uint64_t suppressed;		/* findings they set aside */
	uint64_t mitigated;		/* hazard findings the children defused */
	char suppressed_by[GATE_WHERE_LEN];	/* the rule of the first set aside */
	char exe[SITE_EXE_LEN];
	char name[FH_EXE_NAME_LEN + 1];
	char comm[FH_COMM_LEN + 1];
	uint32_t pid;			/* of the first occurrence */
	struct gate_stack stack[GATE_STACKS];
	struct gate_lock lock[GATE_LOCKS];
	int nlocks, locks_more;
};

struct gate;

struct gate *gate_new(const struct fh_gate_config *cfg);
void gate_free(struct gate *g);

/*
 * A judged finding (finding.c). Returns its site when the site wants the
 * details of this occurrence (its first; a deadlock's wait), which the
 * caller then gives with gate_site_stack and gate_site_lock; else NULL.
 */
struct gate_site *gate_fork(struct gate *g, const struct finding *f,
			    const struct fh_fork_event *ev, const struct occurrence *oc);
struct gate_site *gate_deadlock(struct gate *g, const struct finding *f,
				const struct fh_deadlock_event *ev, const struct occurrence *oc);
/* A hazard finding of site whose child re-created every lock it hung on:
 * no longer left (finding.c). */
void gate_mitigated(struct gate *g, uint64_t site);
void gate_site_stack(struct gate_site *s, enum gate_stack_kind which,
		     const struct fh_frame *frames, int n);
void gate_site_lock(struct gate_site *s, const struct fh_fork_event *ev, const struct fh_lock *l,
		    const char *suppressed_by, const struct fh_frame *frames, int n);

/* --kill-deadlocked: SIGKILL the child of a confirmed deadlock, if it is
 * still that child, blocked where the kernel saw it. */
void gate_kill_deadlocked(struct gate *g, const struct fh_deadlock_event *ev);

/*
 * The end of the run: the status to exit with, from the tracer's (with a
 * COMMAND, its own: command_failed when not 0) and what was found; with
 * --fail-on, one closing line on stderr says why. lost_forks: fork events
 * the ring buffer lost (findings may be among them).
 */
int gate_exit_status(const struct gate *g, int status, bool command_failed,
		     uint64_t lost_forks);
/* -v: a ready-to-paste suppression rule for each finding site, to f. */
void gate_print_rules(const struct gate *g, FILE *f);

/* The finding sites kept, worst first (left, then count); *dropped: those
 * the table could not keep. Valid until the next gate call. */
int gate_sites(struct gate *g, const struct gate_site *const **out, uint64_t *dropped);
/* The frame of a stack that names its place: the first outside the C
 * library (NULL: none). */
const struct gate_frame *gate_place(const struct gate_stack *st);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * One event, two renderings: text for people (columns under 80 characters,
 * details indented below) or JSON Lines for programs (docs/json.md).
 * Never reads /proc: stacks come from symbolize.c.
 */
#ifndef FH_OUTPUT_H
#define FH_OUTPUT_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include "forkhazard.h"

struct fh_container;
struct fh_counts;
struct jw;
struct otherthreads;
struct pyframes;
struct reinit_set;
struct syms;
struct ustacks;

struct output_opts {
	FILE *f;
	bool json;
	int verbose;
	int stack_depth;
	struct syms *syms;
	struct ustacks *ustacks;	/* CFI-unwound stacks of events, or NULL */
	struct otherthreads *others;	/* what forks' other threads are, or NULL */
	struct pyframes *py;		/* Python frames and thread names, or NULL */
	int64_t mono_to_real_ns;	/* add to CLOCK_MONOTONIC to get wall time */
};

/*
 * What the caller knows of an event beyond its record, written with it
 * (docs/json.md): where the process runs, its finding's site, what the
 * suppression rules made of it (finding.c), and the inherited locks the
 * child is known to have re-created.
 */
struct output_meta {
	const char *site;			/* the site's id (16 hex digits), or NULL */
	const struct fh_container *container;	/* cgroup and container; NULL: unknown */
	/* The rule ("FILE:LINE") that set each lock aside: a fork's
	 * ev->locks[i], a deadlock's [0]; NULL (or a NULL array) where none did. */
	const char *const *suppressed_by;
	bool suppressed;			/* the rules set the whole finding aside */
	const struct reinit_set *ri;		/* re-created locks; NULL: nothing known */
};

struct output;

struct output *output_new(const struct output_opts *opts);
void output_free(struct output *o);

/* Header row (text mode). */
void output_start(struct output *o);

/*
 * A process named by an event: remember its modules now, for stacks printed
 * later, when it may be gone. A fork whose parent is already gone borrows
 * the child's address space (comm: the parent's, to tell an exec'd child).
 */
void output_note_process(struct output *o, pid_t pid);
void output_note_fork(struct output *o, pid_t pid, pid_t child, const char *comm);

/* Should a fork event be shown at all (text mode hides "info" forks without -v)? */
bool output_wants_fork(const struct output *o, const struct fh_fork_event *ev);
/* Are findings the suppression rules set aside shown (JSON, or text with -v)? */
bool output_shows_suppressed(const struct output *o);

/*
 * A fork; in text mode `fate` and `deadlock`, when known, are printed under
 * it as its verdict. meta may be NULL (nothing more is known), as below.
 */
void output_fork(struct output *o, const struct fh_fork_event *ev,
		 const struct fh_child_event *fate, const struct fh_deadlock_event *deadlock,
		 const struct output_meta *meta);
/* A child's fate on its own line (its fork was printed earlier, or lost). */
void output_child(struct output *o, const struct fh_child_event *ev,
		  const struct output_meta *meta);
/* A confirmed deadlock; `lock`/`fork` are the matching lock of the parent's
 * fork event and that event, when known. */
void output_deadlock(struct output *o, const struct fh_deadlock_event *ev,
		     const struct fh_lock *lock, const struct fh_fork_event *fork,
		     const struct output_meta *meta);
/* The overhead governor downgraded, re-armed or restored a process's lock
 * tracking (governor.h): a "governor" event, or a text line. */
struct gov_event;
void output_governor(struct output *o, const struct gov_event *ev);
/* The same in words, for a log line ("lock probes cost ..."). */
void governor_describe(const struct gov_event *ev, char *buf, size_t size);

void output_lost(struct output *o, uint64_t events, uint64_t now_ns);
/* The summary at the end: every counter of counters.h. */
void output_summary(struct output *o, uint64_t now_ns, const struct fh_counts *c);
/* Does JSON go out (else text)? */
bool output_json(const struct output *o);
void output_flush(struct output *o);
/* Write to f from now on (the file was reopened); forgets an earlier failure. */
void output_set_file(struct output *o, FILE *f);
/* A JSON line of the caller's own type: begin returns the writer with "type"
 * and "time" in it, the caller adds members, end writes the line. */
struct jw *output_json_begin(struct output *o, const char *type, uint64_t mono_ns);
void output_json_end(struct output *o);
/* Did writing fail (disk full, closed pipe)? */
bool output_failed(const struct output *o);

/* Helpers shared with inspect and the tests. */
void fmt_rfc3339(int64_t real_ns, char *buf, size_t size);
void fmt_duration(uint64_t ns, char *buf, size_t size);
const char *lock_kind_name(unsigned int kind);
const char *child_outcome_name(unsigned int outcome);

#endif

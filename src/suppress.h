/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Suppression rules (--suppressions FILE): the findings a team accepts, as
 * sanitizers have them. One rule a line, `#` starts a comment:
 *
 *	KIND [KEY=GLOB]...
 *
 * KIND is hazard, deadlock or any; every KEY=GLOB must hold for the rule to
 * match (a rule with none matches every finding of its kind):
 *
 *	site=ID    the site's id, 16 hexadecimal digits (no glob)
 *	exe=GLOB   the executable: its path, or its file name
 *	fork=GLOB  a frame of the stack that called fork (a deadlock: its parent's)
 *	lock=GLOB  a frame of the stack that took the lock
 *	wait=GLOB  a frame of where a deadlocked child waits (deadlock rules only)
 *
 * A GLOB is fnmatch(3)'s, without flags (`*` also matches `/`); a value with
 * spaces or `#` is written in double quotes ("\"" and "\\" inside). A frame
 * is matched by each of the strings it can be named by (supp_frames_add_*):
 * a native frame by its function, `FILE:LINE` and `BASENAME:LINE` where the
 * debug information tells, and `FUNCTION (FILE:LINE)`, `FUNCTION
 * (BASENAME:LINE)`; an inlined call by the same; a Python frame by
 * `FUNCTION (FILE:LINE)`, `FILE:LINE` and `FUNCTION` (and the BASENAME
 * forms). A rule suppresses a lock, not a fork: a hazard fork stays a
 * finding while one of its foreign locks matches no rule.
 *
 * Pure: parsing and matching. The caller gives a finding's facts (finding.c).
 * Unit-tested alone (tests/unit/test_suppress.c).
 */
#ifndef FH_SUPPRESS_H
#define FH_SUPPRESS_H

#include <stdbool.h>
#include <stddef.h>
#include "strbuf.h"

#define SUPP_MAX_RULES		4096	/* in all files together */
#define SUPP_LINE_MAX		4096	/* bytes of a rule's line */
#define SUPP_STRINGS_MAX	768	/* strings a stack is matched by */

/* What a rule applies to (bits). */
#define SUPP_HAZARD	0x1
#define SUPP_DEADLOCK	0x2

/* The stacks a rule can name. */
enum supp_stack { SUPP_FORK, SUPP_LOCK, SUPP_WAIT, SUPP_STACKS };

/* A stack as the strings its frames can be named by. */
struct supp_frames {
	struct strbuf text;			/* the strings, each NUL-terminated */
	size_t at[SUPP_STRINGS_MAX];		/* where each begins in text */
	int n;
};

struct fh_frame;

void supp_frames_init(struct supp_frames *l);
void supp_frames_reset(struct supp_frames *l);
void supp_frames_free(struct supp_frames *l);
/* The strings of a resolved native frame (and of the calls inlined there). */
void supp_frames_add_native(struct supp_frames *l, const struct fh_frame *f);
/* The strings of a Python frame (line 0: unknown). */
void supp_frames_add_python(struct supp_frames *l, const char *file, unsigned int line,
			    const char *function);

/* What a finding is, for the rules. A NULL stack is unknown: a rule that
 * names it does not match. */
struct supp_subject {
	unsigned int kind;		/* SUPP_HAZARD or SUPP_DEADLOCK */
	const char *site;		/* 16 hex digits, or NULL */
	const char *exe;		/* the executable's path, or NULL */
	const char *exe_name;		/* its file name, or NULL */
	const struct supp_frames *stack[SUPP_STACKS];
};

struct supp_rule;
struct suppressions;

struct suppressions *supp_new(void);
void supp_free(struct suppressions *s);

/*
 * Add the rules of file path. Returns 0, or -1 with a one-line reason in err
 * ("FILE:LINE: what is wrong", terminal-safe).
 */
int supp_load(struct suppressions *s, const char *path, char *err, size_t errsize);
/* One line of file `file` (for the tests and supp_load). 0 or -1 as above. */
int supp_parse_line(struct suppressions *s, const char *file, int line, const char *text,
		    char *err, size_t errsize);

size_t supp_count(const struct suppressions *s);
/* Does any rule name this stack (else the caller need not build it)? */
bool supp_names(const struct suppressions *s, enum supp_stack which);

/* The first rule (in file order) matching subj, or NULL. s may be NULL. */
const struct supp_rule *supp_match(const struct suppressions *s, const struct supp_subject *subj);
/* Where a rule is written: "FILE:LINE". */
const char *supp_rule_where(const struct supp_rule *r);

#endif

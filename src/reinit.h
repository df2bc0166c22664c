/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Evidence that a forked child re-created a lock it inherited held, so that
 * it never uses the parent's frozen copy: what turns a hazard into a
 * mitigated one (src/hazard.h decides). Three kinds of evidence, none of
 * which needs a probe on any lock path:
 *   - the lock's word, read in the child, no longer names the parent's
 *     holder (a glibc or musl mutex, a glibc write lock re-initialised by a
 *     pthread_atfork child handler): read by the kernel as the child exits
 *     (struct fh_child_event.reinit) or here while it lives;
 *   - the child ran CPython's _PyThread_at_fork_reinit on it (struct
 *     fh_reinit_event; reinitprobe.c places that probe);
 *   - where neither can be had (CPython 3.13 built without .symtab, 3.14),
 *     the lock was taken by code of the standard library that re-creates
 *     its locks in every child through os.register_at_fork (logging), as
 *     the Python frames of its acquisition show.
 * Pure but for reinit_read_words.
 */
#ifndef FH_REINIT_H
#define FH_REINIT_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkhazard.h"

struct pyrt_frame;

/* Re-created locks remembered per fork: more than a fork reports as foreign
 * hazards is rarely useful, and a fork with more is simply not mitigated. */
#define REINIT_MAX	16

/* How the re-creation was seen: its words for people, "the child re-created
 * it (WHY)". */
extern const char REINIT_WHY_WORD[];	/* the lock word */
extern const char REINIT_WHY_PYTHON[];	/* _PyThread_at_fork_reinit */

struct reinit_set {
	uint32_t n;
	uint64_t addr[REINIT_MAX];
	const char *why[REINIT_MAX];	/* static strings */
};

/* Add addr (once); false when the set is full. */
bool reinit_add(struct reinit_set *s, uint64_t addr, const char *why);
/* Is addr in the set? *why (may be NULL) gets how it was seen. */
bool reinit_has(const struct reinit_set *s, uint64_t addr, const char **why);

/* Does the child's copy of watched word `word` show a re-initialisation? */
bool reinit_word_changed(const struct fh_lock_watch *w, uint32_t word);

/*
 * Read child's copies of the n watched words (the kernel's children map
 * entry) and add those re-initialised to out. Never writes to the child.
 * Returns how many were read (a child that is gone has none), or -errno.
 */
int reinit_read_words(pid_t child, const struct fh_lock_watch *w, uint32_t n,
		      struct reinit_set *out);

/*
 * The standard library's lock that Python frames took, if it is one the
 * library re-creates in every child by its own at-fork hook: its name
 * ("logging handler lock"), or NULL. frames: the acquisition's Python
 * frames, innermost first, as src/pyrt.h resolves them.
 */
const char *reinit_stdlib_lock(const struct pyrt_frame *frames, int n);

#endif

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Site identity: which hazard site an occurrence belongs to, as a 64-bit id
 * that survives ASLR, restarts and other machines with the same binaries. A
 * hazard's site is (executable, fork call site, the lock acquisition sites);
 * a deadlock whose fork was no hazard is (executable, where the child
 * waits). Each code place counts by its module's build-id (else its path)
 * and its offset in the module; the C library's own frames never name a
 * place (every program has them). Where a place has a Python frame (a
 * Python thread's lock, fork call or wait), that frame names it instead:
 * its file as pycode_site_path() makes it the same in any virtual
 * environment or machine, its function and line; the native frames of
 * Python code are the interpreter's, the same for every Python call site.
 *
 * Pure: the caller resolves the frames (symbolize.c, ustacks.c) and passes
 * them in; nothing here reads /proc or prints. Unit-tested alone
 * (tests/unit/test_siteid.c).
 */
#ifndef FH_SITEID_H
#define FH_SITEID_H

#include <stdbool.h>
#include <stdint.h>
#include "forkhazard.h"
#include "sites.h"

struct fh_frame;

/* What a site is, computed from one occurrence. */
struct site_desc {
	uint64_t id;
	enum site_kind kind;
	char exe[SITE_EXE_LEN];
	char comm[FH_COMM_LEN];
	char fork_site[SITE_FRAME_LEN];	/* "" when no unwound stack named it */
	char lock_sites[SITE_LOCKS_SHOWN][SITE_FRAME_LEN];
	int nlock_sites;		/* distinct lock sites (may exceed SITE_LOCKS_SHOWN) */
};

/* An occurrence being identified: siteid_begin, siteid_lock for each
 * foreign lock of a hazard, siteid_finish. */
struct siteid_key {
	struct site_desc d;
	char exe_name[FH_EXE_NAME_LEN + 1];	/* what the identity counts (paths vary) */
	uint64_t locks[FH_EVENT_LOCKS];		/* each lock site's hash */
	int nlocks;
	bool locks_omitted;
	uint64_t py_place;			/* siteid_python_place's hash; 0: none */
};

/*
 * The identities of occurrences whose stack was not unwound (a burst beyond
 * the unwinding rate): without the fork call site for sure, they take the
 * site the same executable and locks last had, so that one site never
 * becomes two. A small direct-mapped table.
 */
struct siteid;

struct siteid *siteid_new(void);
void siteid_free(struct siteid *t);

/* exe_name: the executable's name as the kernel recorded it (the identity);
 * exe: its path when known, for people; comm: FH_COMM_LEN bytes. */
void siteid_begin(struct siteid_key *k, enum site_kind kind, const char *exe_name,
		  const char *exe, const char *comm);
/* A foreign lock of a hazard: its kind, and the frame that took it. */
void siteid_lock(struct siteid_key *k, unsigned int kind, const struct fh_frame *caller);
/* The same for a lock taken by Python code: the innermost Python frame. */
void siteid_lock_python(struct siteid_key *k, unsigned int kind, const char *file,
			const char *function, int line);
/* The kernel omitted more locks than the event holds. */
void siteid_locks_omitted(struct siteid_key *k);
/* The occurrence's place in Python (where fork was called, where the child
 * waits): its innermost Python frame, which then names it rather than the
 * native stack's. */
void siteid_python_place(struct siteid_key *k, const char *file, const char *function, int line);
/*
 * The occurrence's stack (the fork call, or where the child waits), n
 * frames, unwound with CFI (cfi) or not; sets k->d.id and the place the
 * stack (or the Python place) names (fork_site, or lock_sites[0] for a
 * deadlock).
 */
void siteid_finish(struct siteid *t, struct siteid_key *k, const struct fh_frame *frames, int n,
		   bool cfi);

/* "symbol+0x1c [module]", "[module+0x1234]" or "0x...": a place, for people. */
void siteid_frame_text(const struct fh_frame *f, char *buf, size_t size);

#endif

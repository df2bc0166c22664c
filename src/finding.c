// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "clock.h"
#include "finding.h"
#include "gate.h"
#include "procfs.h"
#include "reinit.h"
#include "suppress.h"
#include "symbolize.h"
#include "ustacks.h"

#define CHILD_MAP	4096	/* children -> their fork's site, direct-mapped */
#define CHILD_LOCKS	4	/* a hazard's locks left by the rules, kept for its child */

/*
 * A hazard fork's child: its site, and what its finding still hangs on,
 * the foreign locks no rule (nor an earlier re-creation) set aside, for a
 * child that re-creates them after its fork was judged (JSON prints a fork
 * before its fate). More than CHILD_LOCKS, or locks the kernel omitted: the
 * finding stays.
 */
struct child_site {
	uint32_t pid;
	bool hidden;
	bool finding;			/* a hazard finding the gate counts */
	bool locks_unknown;		/* lock[] does not hold them all */
	uint8_t nlocks;
	uint64_t site;
	uint64_t lock[CHILD_LOCKS];
};

struct findings {
	struct findings_opts o;
	struct siteid *ids;
	struct fh_frame *frames;		/* FH_STACK_DEPTH: an event's stack */
	struct fh_frame *lframes;		/* FH_STACK_DEPTH: a lock's */
	struct supp_frames strings[SUPP_STACKS];
	struct child_site child[CHILD_MAP];
	uint64_t suppressed;
};

struct findings *findings_new(const struct findings_opts *opts)
{
	struct findings *fs = calloc(1, sizeof(*fs));

	if (!fs)
		return NULL;
	fs->o = *opts;
	fs->ids = siteid_new();
	fs->frames = calloc(FH_STACK_DEPTH, sizeof(*fs->frames));
	fs->lframes = calloc(FH_STACK_DEPTH, sizeof(*fs->lframes));
	for (int i = 0; i < SUPP_STACKS; i++)
		supp_frames_init(&fs->strings[i]);
	if (!fs->ids || !fs->frames || !fs->lframes) {
		findings_free(fs);
		return NULL;
	}
	return fs;
}

void findings_free(struct findings *fs)
{
	if (!fs)
		return;
	siteid_free(fs->ids);
	free(fs->frames);
	free(fs->lframes);
	for (int i = 0; i < SUPP_STACKS; i++)
		supp_frames_free(&fs->strings[i]);
	free(fs);
}

uint64_t findings_suppressed(const struct findings *fs)
{
	return fs->suppressed;
}

void findings_remember_child(struct findings *fs, uint32_t child, uint64_t site, bool hidden)
{
	struct child_site *c = &fs->child[child % CHILD_MAP];

	if (c->pid != child)
		memset(c, 0, sizeof(*c));
	c->pid = child;
	c->site = site;
	c->hidden = hidden;
}

/* What a hazard finding of ev still hangs on (aside[i]: lock i is not). */
static void remember_finding(struct findings *fs, const struct fh_fork_event *ev,
			     const struct finding *f, const bool *aside, bool omitted_aside)
{
	struct child_site *c = &fs->child[ev->child_pid % CHILD_MAP];

	memset(c, 0, sizeof(*c));
	c->pid = ev->child_pid;
	c->site = f->key.d.id;
	c->finding = f->level == HAZARD_LEVEL_HAZARD;
	c->locks_unknown = ev->locks_omitted && !omitted_aside;
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		if (hazard_lock_role(ev, &ev->locks[i]) != HAZARD_LOCK_FOREIGN || aside[i])
			continue;
		if (c->nlocks == CHILD_LOCKS)
			c->locks_unknown = true;
		else
			c->lock[c->nlocks++] = ev->locks[i].addr;
	}
}

void findings_child_recreated(struct findings *fs, uint32_t child, const struct reinit_set *ri)
{
	struct child_site *c = &fs->child[child % CHILD_MAP];

	if (!ri || c->pid != child || !c->finding || c->locks_unknown)
		return;
	for (uint8_t i = 0; i < c->nlocks; i++)
		if (!reinit_has(ri, c->lock[i], NULL))
			return;
	c->finding = false;
	if (fs->o.gate)
		gate_mitigated(fs->o.gate, c->site);
}

uint64_t findings_child_site(const struct findings *fs, uint32_t child)
{
	const struct child_site *c = &fs->child[child % CHILD_MAP];

	return c->pid == child ? c->site : 0;
}

bool findings_child_hidden(const struct findings *fs, uint32_t child)
{
	const struct child_site *c = &fs->child[child % CHILD_MAP];

	return c->pid == child && c->hidden;
}

void findings_observe(struct findings *fs, __u32 pid, const char *comm, const char *exe_name,
		      uint64_t cgroup_id, struct occurrence *oc)
{
	size_t len = strnlen(comm, FH_COMM_LEN);
	const char *base;
	ssize_t n;

	memcpy(oc->comm, comm, len);
	oc->comm[len] = '\0';
	oc->known = fs->o.containers &&
		    containers_lookup(fs->o.containers, (pid_t)pid, cgroup_id, clock_mono_ns(),
				      &oc->k);
	len = strnlen(exe_name, FH_EXE_NAME_LEN);
	if (!len) {
		exe_name = oc->comm;
		len = strlen(oc->comm);
	}
	memcpy(oc->name, exe_name, len);
	oc->name[len] = '\0';
	n = procfs_read_exe((pid_t)pid, oc->exe, sizeof(oc->exe));
	if (n > 0) {
		base = strrchr(oc->exe, '/');
		base = base ? base + 1 : oc->exe;
		/* not the event's program any more (it exec'd, or the PID was reused) */
		if (strncmp(base, oc->name, len) || (len < FH_EXE_NAME_LEN - 1 && base[len]))
			n = 0;
	}
	if (n <= 0)
		snprintf(oc->exe, sizeof(oc->exe), "%s", oc->name);
}

/* An event's stack into fs->frames: the CFI-unwound copy when there is one
 * (*cfi), else the frame-pointer walk. */
static int event_frames(struct findings *fs, __u32 pid, uint32_t tid, uint64_t time_ns,
			int stack_id, bool *cfi)
{
	return ustacks_frames(fs->o.ustacks, fs->o.syms, (pid_t)pid, tid, time_ns, stack_id,
			      fs->frames, FH_STACK_DEPTH, cfi);
}

/* A stack's strings for the rules, if a rule names that stack. The one
 * place a stack becomes strings: Python frames (a "py_stack") join here,
 * with supp_frames_add_python. */
static const struct supp_frames *strings_of(struct findings *fs, enum supp_stack which,
					    const struct fh_frame *frames, int n)
{
	struct supp_frames *l = &fs->strings[which];

	if (!supp_names(fs->o.supp, which))
		return NULL;
	supp_frames_reset(l);
	for (int i = 0; i < n; i++)
		supp_frames_add_native(l, &frames[i]);
	return l;
}

/* A hazard fork's site: the executable, the lock acquisition sites (each
 * lock's exact caller), and the fork call site, whose frames are left in
 * fs->frames (*n). */
static void fork_site(struct findings *fs, const struct fh_fork_event *ev, const char *name,
		      const char *exe, struct siteid_key *key, int *n)
{
	bool cfi;

	siteid_begin(key, SITE_HAZARD, name, exe, ev->comm);
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		const struct fh_lock *l = &ev->locks[i];

		if (hazard_lock_role(ev, l) != HAZARD_LOCK_FOREIGN)
			continue;
		syms_resolve_return(fs->o.syms, (pid_t)ev->pid, l->caller, &fs->lframes[0]);
		siteid_lock(key, l->kind, &fs->lframes[0]);
	}
	if (ev->locks_omitted)
		siteid_locks_omitted(key);
	*n = event_frames(fs, ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
	siteid_finish(fs->ids, key, fs->frames, *n, cfi);
}

static void subject_of(struct supp_subject *subj, unsigned int kind, const struct finding *f,
		       const struct occurrence *oc)
{
	memset(subj, 0, sizeof(*subj));
	subj->kind = kind;
	subj->site = f->site;
	subj->exe = strchr(oc->exe, '/') ? oc->exe : NULL;
	subj->exe_name = oc->name;
}

static void set_site(struct finding *f, uint64_t id)
{
	f->key.d.id = id;
	snprintf(f->site, sizeof(f->site), "%016llx", (unsigned long long)id);
}

/* The locks of a new site's first occurrence, for gate.c. */
static void gate_locks(struct findings *fs, struct gate_site *gs, const struct fh_fork_event *ev,
		       const char *const *suppressed_by)
{
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		const struct fh_lock *l = &ev->locks[i];
		int ln;

		if (hazard_lock_role(ev, l) != HAZARD_LOCK_FOREIGN)
			continue;
		ln = syms_lock_stack(fs->o.syms, (pid_t)ev->pid, l, fs->lframes, FH_STACK_DEPTH);
		gate_site_lock(gs, ev, l, suppressed_by ? suppressed_by[i] : NULL, fs->lframes, ln);
	}
}

void findings_fork(struct findings *fs, const struct fh_fork_event *ev,
		   const struct reinit_set *ri, const struct occurrence *oc, struct finding *f)
{
	bool aside[FH_EVENT_LOCKS] = { false }, omitted_aside = false, any_aside = false;
	bool lock_rules = supp_names(fs->o.supp, SUPP_LOCK);
	const struct supp_rule *r = NULL;
	struct supp_subject subj;
	struct gate_site *gs;
	int n;

	memset(f->suppressed_by, 0, sizeof(f->suppressed_by));
	fork_site(fs, ev, oc->name, oc->exe, &f->key, &n);
	set_site(f, f->key.d.id);
	subject_of(&subj, SUPP_HAZARD, f, oc);
	subj.stack[SUPP_FORK] = strings_of(fs, SUPP_FORK, fs->frames, n);
	/* without a rule on lock stacks, one answer serves every lock */
	if (!lock_rules)
		r = supp_match(fs->o.supp, &subj);
	for (__u32 i = 0; i < ev->nr_locks && i < FH_EVENT_LOCKS; i++) {
		const struct fh_lock *l = &ev->locks[i];

		if (hazard_lock_role(ev, l) != HAZARD_LOCK_FOREIGN)
			continue;
		if (ri && reinit_has(ri, l->addr, NULL)) {	/* mitigated: no finding */
			aside[i] = true;
			continue;
		}
		if (lock_rules) {
			int ln = syms_lock_stack(fs->o.syms, (pid_t)ev->pid, l, fs->lframes,
						 FH_STACK_DEPTH);

			subj.stack[SUPP_LOCK] = strings_of(fs, SUPP_LOCK, fs->lframes, ln);
			r = supp_match(fs->o.supp, &subj);
		}
		aside[i] = r != NULL;
		any_aside |= aside[i];	/* by a rule */
		f->suppressed_by[i] = r ? supp_rule_where(r) : NULL;
	}
	if (ev->locks_omitted) {	/* unknown locks: only a rule naming no lock stack */
		subj.stack[SUPP_LOCK] = NULL;
		omitted_aside = supp_match(fs->o.supp, &subj) != NULL;
		any_aside |= omitted_aside;
	}
	f->level = hazard_fork_level(ev, aside, omitted_aside);
	f->suppressed = f->level == HAZARD_LEVEL_NONE && any_aside;
	fs->suppressed += f->suppressed;
	remember_finding(fs, ev, f, aside, omitted_aside);
	gs = fs->o.gate ? gate_fork(fs->o.gate, f, ev, oc) : NULL;
	if (gs) {	/* fs->frames: still the fork's */
		gate_site_stack(gs, GATE_STACK_FORK, fs->frames, n);
		gate_locks(fs, gs, ev, f->suppressed_by);
	}
}

/* A deadlock whose fork was no hazard (or was never seen): the executable
 * and where the child waits. */
static void deadlock_site(struct findings *fs, const struct fh_deadlock_event *ev,
			  const struct occurrence *oc, struct siteid_key *key)
{
	bool cfi;
	int n;

	siteid_begin(key, SITE_DEADLOCK, oc->name, oc->exe, ev->comm);
	n = event_frames(fs, ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
	siteid_finish(fs->ids, key, fs->frames, n, cfi);
}

void findings_deadlock(struct findings *fs, const struct fh_deadlock_event *ev,
		       const struct fh_lock *lock, const struct fh_fork_event *fork,
		       const struct occurrence *oc, struct finding *f)
{
	uint64_t known = findings_child_site(fs, ev->pid);
	bool hazard = fork && hazard_fork(fork), cfi;
	const struct supp_rule *r;
	struct supp_subject subj;
	struct gate_site *gs;
	int n = 0, ln = 0;

	memset(f->suppressed_by, 0, sizeof(f->suppressed_by));
	if (hazard) {
		char fname[FH_EXE_NAME_LEN + 1];

		snprintf(fname, sizeof(fname), "%.*s", FH_EXE_NAME_LEN, fork->exe_name[0] ?
			 fork->exe_name : oc->name);
		fork_site(fs, fork, fname, oc->exe, &f->key, &n);
	} else {
		deadlock_site(fs, ev, oc, &f->key);
	}
	set_site(f, known ? known : f->key.d.id);
	subject_of(&subj, SUPP_DEADLOCK, f, oc);
	/* the parent's fork stack (left by fork_site), the lock's, the child's wait */
	subj.stack[SUPP_FORK] = hazard ? strings_of(fs, SUPP_FORK, fs->frames, n) : NULL;
	if (lock && fork && supp_names(fs->o.supp, SUPP_LOCK)) {
		ln = syms_lock_stack(fs->o.syms, (pid_t)fork->pid, lock, fs->lframes,
				     FH_STACK_DEPTH);
		subj.stack[SUPP_LOCK] = strings_of(fs, SUPP_LOCK, fs->lframes, ln);
	}
	if (supp_names(fs->o.supp, SUPP_WAIT)) {
		n = event_frames(fs, ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
		subj.stack[SUPP_WAIT] = strings_of(fs, SUPP_WAIT, fs->frames, n);
	}
	r = supp_match(fs->o.supp, &subj);
	f->suppressed_by[0] = r ? supp_rule_where(r) : NULL;
	f->level = hazard_deadlock_level(r != NULL);
	f->suppressed = r != NULL;
	fs->suppressed += f->suppressed;
	gs = fs->o.gate ? gate_deadlock(fs->o.gate, f, ev, oc) : NULL;
	if (!gs)
		return;
	if (hazard) {	/* a site of its own: its fork and locks too */
		n = event_frames(fs, fork->pid, fork->tid, fork->time_ns, fork->stack_id, &cfi);
		gate_site_stack(gs, GATE_STACK_FORK, fs->frames, n);
		gate_locks(fs, gs, fork, NULL);
	}
	n = event_frames(fs, ev->pid, ev->tid, ev->time_ns, ev->stack_id, &cfi);
	gate_site_stack(gs, GATE_STACK_WAIT, fs->frames, n);
}

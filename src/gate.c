// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "clib.h"
#include "escape.h"
#include "finding.h"
#include "gate.h"
#include "log.h"
#include "output.h"
#include "procfs.h"
#include "symbolize.h"

struct gate {
	struct fh_gate_config cfg;
	struct gate_site *site[GATE_SITES_MAX];
	int nsites;
	uint64_t dropped;		/* finding sites beyond the table */
	uint64_t hazards, deadlocks, suppressed;	/* findings, in all */
	uint64_t mitigated;		/* hazard findings their children defused */
	uint64_t killed;		/* --kill-deadlocked */
	/* the sites' order for SARIF: an array of slots, pointers beside it */
	struct sorted {
		const struct gate_site *site;
	} sorted[GATE_SITES_MAX];
	const struct gate_site *order[GATE_SITES_MAX];
};

struct gate *gate_new(const struct fh_gate_config *cfg)
{
	struct gate *g = calloc(1, sizeof(*g));

	if (g)
		g->cfg = *cfg;
	return g;
}

static void stack_free(struct gate_stack *st)
{
	for (int i = 0; i < st->n; i++)
		free(st->f[i].symbol);
	st->n = 0;
}

void gate_free(struct gate *g)
{
	if (!g)
		return;
	for (int i = 0; i < g->nsites; i++) {
		struct gate_site *s = g->site[i];

		for (int k = 0; k < GATE_STACKS; k++)
			stack_free(&s->stack[k]);
		for (int k = 0; k < s->nlocks; k++)
			stack_free(&s->lock[k].stack);
		free(s);
	}
	free(g);
}

/* The site of id: found, or added while there is room (created). */
static struct gate_site *site_of(struct gate *g, const struct finding *f,
				 const struct occurrence *oc, bool *created)
{
	struct gate_site *s;

	*created = false;
	for (int i = 0; i < g->nsites; i++)
		if (g->site[i]->id == f->key.d.id)
			return g->site[i];
	if (g->nsites == GATE_SITES_MAX || !(s = calloc(1, sizeof(*s)))) {
		g->dropped++;
		return NULL;
	}
	*created = true;
	s->id = f->key.d.id;
	memcpy(s->hex, f->site, sizeof(s->hex));
	s->kind = f->key.d.kind;
	snprintf(s->exe, sizeof(s->exe), "%s", oc->exe);
	snprintf(s->name, sizeof(s->name), "%s", oc->name);
	snprintf(s->comm, sizeof(s->comm), "%s", oc->comm);
	g->site[g->nsites++] = s;
	return s;
}

/* What every finding counts, whichever its kind. */
static void count(struct gate *g, struct gate_site *s, const struct finding *f,
		  enum hazard_level level, const char *rule)
{
	if (f->suppressed) {
		g->suppressed++;
		if (!s)
			return;
		if (!s->suppressed++ && rule)
			snprintf(s->suppressed_by, sizeof(s->suppressed_by), "%s", rule);
	} else {
		g->hazards += level == HAZARD_LEVEL_HAZARD;
		g->deadlocks += level == HAZARD_LEVEL_DEADLOCK;
		if (!s)
			return;
		s->hazards += level == HAZARD_LEVEL_HAZARD;
		s->deadlocks += level == HAZARD_LEVEL_DEADLOCK;
	}
}

struct gate_site *gate_fork(struct gate *g, const struct finding *f,
			    const struct fh_fork_event *ev, const struct occurrence *oc)
{
	const char *rule = NULL;
	struct gate_site *s;
	bool created;

	for (int i = 0; i < FH_EVENT_LOCKS && !rule; i++)
		rule = f->suppressed_by[i];
	s = site_of(g, f, oc, &created);
	count(g, s, f, f->level, rule);	/* NONE: suppressed, or mitigated already */
	if (!s)
		return NULL;
	if (s->worst < HAZARD_LEVEL_HAZARD)
		s->worst = HAZARD_LEVEL_HAZARD;
	if (f->level > s->left)
		s->left = f->level;
	if (created)
		s->pid = ev->pid;
	return created ? s : NULL;
}

struct gate_site *gate_deadlock(struct gate *g, const struct finding *f,
				const struct fh_deadlock_event *ev, const struct occurrence *oc)
{
	struct gate_site *s = site_of(g, f, oc, &(bool){ false });

	count(g, s, f, HAZARD_LEVEL_DEADLOCK, f->suppressed_by[0]);
	if (!s)
		return NULL;
	s->worst = HAZARD_LEVEL_DEADLOCK;
	if (f->level > s->left)
		s->left = f->level;
	if (!s->pid)
		s->pid = ev->parent_pid;
	return s->stack[GATE_STACK_WAIT].set ? NULL : s;
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

static void keep_frame(struct gate_frame *g, const struct fh_frame *f)
{
	const char *sym = f->known ? f->symbol : "";
	const char *file = f->file[0] && f->line ? f->file : "";
	const char *mod = f->has_module ? f->module : "";
	size_t ns = strlen(sym) + 1, nf = strlen(file) + 1, nm = strlen(mod) + 1;
	char *buf = malloc(ns + nf + nm);

	memset(g, 0, sizeof(*g));
	if (!buf)
		return;
	memcpy(buf, sym, ns);
	memcpy(buf + ns, file, nf);
	memcpy(buf + ns + nf, mod, nm);
	g->symbol = buf;
	g->file = buf + ns;
	g->module = buf + ns + nf;
	g->line = file[0] ? f->line : 0;
	g->addr = f->addr;
	g->offset = f->offset;
	g->module_offset = f->module_offset;
	g->known = f->known;
	g->has_module = f->has_module;
	g->libc = f->has_module && clib_file_of(f->module) != CLIB_NONE;
}

static void keep_stack(struct gate_stack *st, const struct fh_frame *frames, int n)
{
	for (int i = 0; i < n && st->n < GATE_STACK_FRAMES; i++) {
		keep_frame(&st->f[st->n], &frames[i]);
		if (st->f[st->n].symbol)
			st->n++;
	}
	st->set = true;
}

void gate_site_stack(struct gate_site *s, enum gate_stack_kind which,
		     const struct fh_frame *frames, int n)
{
	if (!s->stack[which].set)
		keep_stack(&s->stack[which], frames, n);
}

void gate_site_lock(struct gate_site *s, const struct fh_fork_event *ev, const struct fh_lock *l,
		    const char *suppressed_by, const struct fh_frame *frames, int n)
{
	struct gate_lock *k;

	for (int i = 0; i < s->nlocks; i++)
		if (s->lock[i].addr == l->addr)
			return;
	if (s->nlocks == GATE_LOCKS) {
		s->locks_more++;
		return;
	}
	k = &s->lock[s->nlocks++];
	k->addr = l->addr;
	k->kind = l->kind;
	k->holder_tid = l->holder_tid;
	snprintf(k->holder_comm, sizeof(k->holder_comm), "%.*s", FH_COMM_LEN, l->holder_comm);
	k->held_ns = ev->time_ns > l->acquired_ns ? ev->time_ns - l->acquired_ns : 0;
	snprintf(k->suppressed_by, sizeof(k->suppressed_by), "%s", suppressed_by ? suppressed_by : "");
	keep_stack(&k->stack, frames, n);
}

const struct gate_frame *gate_place(const struct gate_stack *st)
{
	for (int i = 0; i < st->n; i++)
		if (st->f[i].has_module && !st->f[i].libc)
			return &st->f[i];
	return NULL;
}

/* ---- --kill-deadlocked ---------------------------------------------------------- */

/* Is pid, as pidfd now names it, still the child the kernel saw deadlocked:
 * one thread, in the same wait on the same futex? (A PID reused since then
 * is another process, and pidfd stays with whichever it named.) */
static bool still_deadlocked(const struct fh_deadlock_event *ev)
{
	struct fh_proc_stat st;
	struct fh_syscall sc;

	if (procfs_read_stat((pid_t)ev->pid, 0, &st) || st.num_threads != 1 ||
	    procfs_read_syscall((pid_t)ev->pid, (pid_t)ev->pid, &sc) || sc.nr != (long)ev->syscall)
		return false;
#ifdef SYS_futex_waitv
	if (sc.nr == SYS_futex_waitv)
		return true;	/* its first argument is the waiters' array */
#endif
	return sc.args[0] == ev->futex;
}

void gate_kill_deadlocked(struct gate *g, const struct fh_deadlock_event *ev)
{
	int fd;

	if (!g->cfg.kill_deadlocked)
		return;
	fd = (int)syscall(SYS_pidfd_open, (pid_t)ev->pid, 0);
	if (fd < 0)
		return;	/* gone already */
	if (still_deadlocked(ev) && !syscall(SYS_pidfd_send_signal, fd, SIGKILL, NULL, 0)) {
		g->killed++;
		log_notice("killed deadlocked child %u of %u (--kill-deadlocked)", ev->pid,
			   ev->parent_pid);
	}
	close(fd);
}

/* ---- the end ------------------------------------------------------------------- */

static const char *const level_names[] = { "nothing", "hazard", "deadlock" };

/* The worst level of what is left: the counts decide, since a mitigated
 * hazard leaves after it came. */
static enum hazard_level level_left(uint64_t hazards, uint64_t deadlocks)
{
	return deadlocks ? HAZARD_LEVEL_DEADLOCK : hazards ? HAZARD_LEVEL_HAZARD : HAZARD_LEVEL_NONE;
}

void gate_mitigated(struct gate *g, uint64_t site)
{
	if (!g->hazards)
		return;
	g->hazards--;
	g->mitigated++;
	for (int i = 0; i < g->nsites; i++) {
		struct gate_site *s = g->site[i];

		if (s->id != site || !s->hazards)
			continue;
		s->hazards--;
		s->mitigated++;
		s->left = level_left(s->hazards, s->deadlocks);
	}
}

int gate_exit_status(const struct gate *g, int status, bool command_failed, uint64_t lost_forks)
{
	char found[200], lost[96] = "";
	int fail_on = g->cfg.fail_on;

	if (fail_on == FH_FAIL_NONE)
		return status;
	snprintf(found, sizeof(found), "%" PRIu64 " hazard%s and %" PRIu64 " deadlock%s left, "
		 "%" PRIu64 " suppressed by rules", g->hazards, g->hazards == 1 ? "" : "s",
		 g->deadlocks, g->deadlocks == 1 ? "" : "s", g->suppressed);
	if (g->mitigated)	/* the children's re-created locks */
		snprintf(found + strlen(found), sizeof(found) - strlen(found),
			 ", %" PRIu64 " mitigated", g->mitigated);
	if (lost_forks)
		snprintf(lost, sizeof(lost), "; %" PRIu64 " fork events lost: findings may be "
			 "missing", lost_forks);
	if (command_failed) {
		log_notice("the command failed by itself: its status %d kept (--fail-on=%s: %s%s)",
			   status, level_names[fail_on], found, lost);
		return status;
	}
	if ((int)level_left(g->hazards, g->deadlocks) >= fail_on) {
		log_notice("failing with status %d (--fail-on=%s): %s%s", g->cfg.fail_exit_code,
			   level_names[fail_on], found, lost);
		return g->cfg.fail_exit_code;
	}
	log_notice("passing (--fail-on=%s): %s%s", level_names[fail_on], found, lost);
	return status;
}

static int cmp_sites(const void *a, const void *b)
{
	const struct gate_site *x = ((const struct sorted *)a)->site;
	const struct gate_site *y = ((const struct sorted *)b)->site;

	if (x->left != y->left)
		return x->left > y->left ? -1 : 1;
	if (x->worst != y->worst)
		return x->worst > y->worst ? -1 : 1;
	if (x->deadlocks + x->hazards != y->deadlocks + y->hazards)
		return x->deadlocks + x->hazards > y->deadlocks + y->hazards ? -1 : 1;
	return x->id < y->id ? -1 : x->id > y->id;
}

int gate_sites(struct gate *g, const struct gate_site *const **out, uint64_t *dropped)
{
	for (int i = 0; i < g->nsites; i++)
		g->sorted[i].site = g->site[i];
	qsort(g->sorted, (size_t)g->nsites, sizeof(*g->sorted), cmp_sites);
	for (int i = 0; i < g->nsites; i++)
		g->order[i] = g->sorted[i].site;
	*out = g->order;
	*dropped = g->dropped;
	return g->nsites;
}

/* "function (file.c:12)" or "function" or "[module+0x12]": a place, short. */
static void place_text(const struct gate_frame *f, char *buf, size_t size)
{
	if (!f)
		snprintf(buf, size, "?");
	else if (f->known && f->line)
		snprintf(buf, size, "%.160s (%.120s:%u)", f->symbol, base_name(f->file), f->line);
	else if (f->known)
		snprintf(buf, size, "%.160s", f->symbol);
	else
		snprintf(buf, size, "[%.120s+0x%" PRIx64 "]", base_name(f->module), f->module_offset);
}

/* A glob that names the same place as f by its function, for a rule that
 * outlives a rebuild (the site id changes with the binary). */
static bool function_glob(const struct gate_frame *f, char *buf, size_t size)
{
	if (!f || !f->known || !f->symbol[0] || strpbrk(f->symbol, " \"#*?[\\"))
		return false;
	snprintf(buf, size, "%s", f->symbol);
	return true;
}

void gate_print_rules(const struct gate *g, FILE *f)
{
	bool header = false;

	for (int i = 0; i < g->nsites; i++) {
		const struct gate_site *s = g->site[i];
		const struct gate_frame *fork = gate_place(&s->stack[GATE_STACK_FORK]);
		const struct gate_frame *lock = s->nlocks ? gate_place(&s->lock[0].stack) : NULL;
		const char *kind = s->worst == HAZARD_LEVEL_DEADLOCK ? "any" : "hazard";
		char fp[320], lp[320], fg[200], lg[200], exe[SITE_EXE_LEN * 4];

		if (s->left == HAZARD_LEVEL_NONE)
			continue;	/* suppressed already */
		if (!header)
			fputs("\nforkhazard: to accept a finding, put its rule in a --suppressions "
			      "file:\n", f);
		header = true;
		place_text(fork, fp, sizeof(fp));
		place_text(lock, lp, sizeof(lp));
		term_escape(s->name, (size_t)-1, exe, sizeof(exe));
		if (s->kind == SITE_DEADLOCK && !s->nlocks) {
			place_text(gate_place(&s->stack[GATE_STACK_WAIT]), lp, sizeof(lp));
			fprintf(f, "# %s: a child deadlocked, waiting at %s\n", exe, lp);
			fprintf(f, "deadlock site=%s\n", s->hex);
			continue;
		}
		fprintf(f, "# %s: fork at %s while a lock taken at %s was held%s\n", exe, fp, lp,
			s->worst == HAZARD_LEVEL_DEADLOCK ? "; a child deadlocked" : "");
		fprintf(f, "%s site=%s\n", kind, s->hex);
		if (function_glob(fork, fg, sizeof(fg)) && function_glob(lock, lg, sizeof(lg)) &&
		    !strpbrk(s->name, " \"#*?[\\") && s->name[0])
			fprintf(f, "# or, through rebuilds: %s exe=%s fork=%s lock=%s\n", kind, exe,
				fg, lg);
	}
}

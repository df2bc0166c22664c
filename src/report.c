// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include "cli.h"
#include "clib.h"
#include "escape.h"
#include "json.h"
#include "output.h"
#include "report.h"
#include "sites.h"

#define REPORT_LINE_MAX		(1 << 20)	/* bytes of one record */
#define REPORT_SITES		4096		/* sites kept by default */
#define REPORT_CHILDREN		(1 << 16)	/* children -> their site, direct-mapped */
#define REPORT_TOP		8		/* sites on the screen by default */
#define FRAME_TEXT		320
#define HOLDERS			4
#define OUTCOMES		5		/* enum fh_child_outcome */

enum format { FMT_TEXT, FMT_JSON, FMT_MARKDOWN };

static const char *const outcome_names[OUTCOMES] = { "?", "exec", "exit", "deadlock", "alive" };

/* What a site of the table has beyond struct site (sites.h): its slot's. */
struct extra {
	/* Counted two ways: the events written in full (all of them with -j,
	 * the first of a site and the deadlocks within the rate limits from
	 * the service), and the service's aggregates (new_* summed, children
	 * cumulative per run). The larger is the count. */
	uint64_t hazards_ev, deadlocks_ev, children_ev[OUTCOMES];
	uint64_t hazards_agg, deadlocks_agg, children_agg[OUTCOMES], children_run[OUTCOMES];
	uint64_t processes_agg, last_agg_hazards;
	uint64_t suppressed;
	char fork_frame[FRAME_TEXT], lock_frame[FRAME_TEXT], wait_frame[FRAME_TEXT];
	char holders[HOLDERS][FH_COMM_LEN * 4 + 1];
	int nholders;
	char *advice;
	json_object *fork_ev, *deadlock_ev;	/* --site: the first, as recorded */
};

struct child_site {
	uint32_t pid;
	uint64_t site;
};

struct report {
	enum format fmt;
	int top;
	uint64_t want;		/* --site; 0: all */
	const char *want_text;
	struct sites *sites;
	struct extra *extra;
	struct child_site *child;
	uint64_t records, malformed, other, unsited, files_read;
	uint64_t hazards, deadlocks, suppressed, lost;
	int64_t first_ns, last_ns;	/* wall clock, of every record read */
	const char *const *files;
	int nfiles;
};

/* ---- reading ------------------------------------------------------------------ */

static json_object *member(json_object *o, const char *key)
{
	json_object *v;

	return json_object_object_get_ex(o, key, &v) ? v : NULL;
}

static const char *str(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

static int64_t num(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;
}

static bool flag(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

static json_object *array(json_object *o, const char *key)
{
	json_object *v = member(o, key);

	return v && json_object_is_type(v, json_type_array) ? v : NULL;
}

/* n decimal digits at s, or -1. */
static int digits(const char *s, int n)
{
	int v = 0;

	for (int i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return v;
}

/* "2026-11-25T18:53:37.104220Z" (the contract's only form) in ns since the
 * epoch; 0 if it is not one. By hand: sscanf was a tenth of the time. */
static int64_t parse_time(const char *s)
{
	static const char shape[] = "0000-00-00T00:00:00.000000Z";
	static const int at[] = { 0, 5, 8, 11, 14, 17, 20 }, len[] = { 4, 2, 2, 2, 2, 2, 6 };
	static char last_text[20];
	static int64_t last_secs;
	int v[7];
	struct tm tm = { 0 };

	if (!s || strlen(s) != sizeof(shape) - 1)
		return 0;
	for (size_t i = 0; i < sizeof(shape) - 1; i++)
		if (shape[i] != '0' && s[i] != shape[i])
			return 0;
	for (int i = 0; i < 7; i++)
		if ((v[i] = digits(s + at[i], len[i])) < 0)
			return 0;
	/* records come in time order: the same second again is common */
	if (memcmp(s, last_text, 19)) {
		tm.tm_year = v[0] - 1900;
		tm.tm_mon = v[1] - 1;
		tm.tm_mday = v[2];
		tm.tm_hour = v[3];
		tm.tm_min = v[4];
		tm.tm_sec = v[5];
		memcpy(last_text, s, 19);
		last_secs = (int64_t)timegm(&tm);
	}
	return last_secs * 1000000000 + (int64_t)v[6] * 1000;
}

static bool parse_site(const char *s, uint64_t *id)
{
	char *end;

	if (!s || strlen(s) != 16)
		return false;
	errno = 0;
	*id = strtoull(s, &end, 16);
	return !errno && !*end && *id;
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

/* A frame of the JSON contract, for people: "fn (file.c:12) [module]",
 * "fn+0x1c [module]", "[module+0x1234]" or its address. */
static void frame_text(json_object *f, char *buf, size_t size)
{
	const char *sym = str(f, "symbol"), *file = str(f, "file"), *mod = str(f, "module");
	int64_t line = num(f, "line");

	mod = mod ? base_name(mod) : "?";
	if (sym && file && line > 0)
		snprintf(buf, size, "%.120s (%.80s:%" PRId64 ") [%.40s]", sym, base_name(file), line,
			 mod);
	else if (sym)
		snprintf(buf, size, "%.160s+0x%" PRIx64 " [%.60s]", sym, (uint64_t)num(f, "offset"),
			 mod);
	else if (str(f, "module"))
		snprintf(buf, size, "[%.120s+0x%" PRIx64 "]", mod, (uint64_t)num(f, "module_offset"));
	else
		snprintf(buf, size, "%.40s", str(f, "addr") ? str(f, "addr") : "?");
}

/* The innermost Python frame of o's "py_stack", as the text output shows
 * one. false if there is none. */
static bool py_text(json_object *o, char *buf, size_t size)
{
	json_object *py = array(o, "py_stack"), *f;
	const char *fn, *file;

	if (!py || !json_object_array_length(py))
		return false;
	f = json_object_array_get_idx(py, 0);
	fn = str(f, "function");
	file = str(f, "file");
	snprintf(buf, size, "py: %.100s (%.120s:%" PRId64 ")", fn ? fn : "?", file ? file : "?",
		 num(f, "line"));
	return true;
}

/* Where a stack names its place: its first frame outside the C library
 * (first: the first frame itself, a lock's exact caller). */
static void place_text(json_object *owner, bool first, char *buf, size_t size)
{
	json_object *st = array(owner, "stack");
	size_t n = st ? json_object_array_length(st) : 0;

	if (py_text(owner, buf, size) || !n)
		return;
	for (size_t i = 0; i < n; i++) {
		json_object *f = json_object_array_get_idx(st, i);
		const char *mod = str(f, "module");

		if (first || (mod && clib_file_of(mod) == CLIB_NONE)) {
			frame_text(f, buf, size);
			return;
		}
	}
	frame_text(json_object_array_get_idx(st, 0), buf, size);
}

static struct extra *extra_of(struct report *r, struct site *s)
{
	return &r->extra[sites_slot(r->sites, s)];
}

static void extra_clear(struct extra *x)
{
	free(x->advice);
	json_object_put(x->fork_ev);
	json_object_put(x->deadlock_ev);
	memset(x, 0, sizeof(*x));
}

static void on_evict(void *ctx, struct site *s)
{
	struct report *r = ctx;

	extra_clear(extra_of(r, s));
}

/* The site of id, found or added; NULL when --site wants another. */
static struct site *site_of(struct report *r, uint64_t id, int64_t t)
{
	struct site *s;

	if (r->want && id != r->want)
		return NULL;
	s = sites_find(r->sites, id);
	if (!s)
		s = sites_add(r->sites, id, (uint64_t)t);
	if (!s)
		return NULL;
	if (t && (!s->first_ns || (uint64_t)t < s->first_ns))
		s->first_ns = (uint64_t)t;
	if ((uint64_t)t > s->last_ns)
		s->last_ns = (uint64_t)t;
	return s;
}

static void copy(char *dst, size_t size, const char *src)
{
	if (src && !dst[0])
		snprintf(dst, size, "%s", src);
}

static void note_holder(struct extra *x, const char *comm)
{
	if (!comm)
		return;
	for (int i = 0; i < x->nholders; i++)
		if (!strcmp(x->holders[i], comm))
			return;
	if (x->nholders < HOLDERS)
		snprintf(x->holders[x->nholders++], sizeof(x->holders[0]), "%s", comm);
}

/* What the locks of a fork (or a deadlock's lock) say: holders, the place. */
static void note_locks(struct extra *x, json_object *locks, json_object *one)
{
	size_t n = locks ? json_object_array_length(locks) : 0;

	for (size_t i = 0; i < n || (one && i == 0); i++) {
		json_object *l = one ? one : json_object_array_get_idx(locks, i);

		note_holder(x, str(l, "holder_comm"));
		if (!x->lock_frame[0])
			place_text(l, true, x->lock_frame, sizeof(x->lock_frame));
		if (one)
			break;
	}
}

static void remember_child(struct report *r, int64_t pid, uint64_t site)
{
	struct child_site *c = &r->child[(uint64_t)pid % REPORT_CHILDREN];

	c->pid = (uint32_t)pid;
	c->site = site;
}

/*
 * What a finding (a hazard fork, a deadlock) counts, whichever: its site, r's
 * count (*count) or its suppressed; and the process, executable and name
 * it names. Returns the site's extra when the finding was not suppressed (the
 * caller takes its details), else NULL.
 */
static struct extra *take_finding(struct report *r, json_object *o, int64_t t, uint64_t *count,
				  const char *pid_key, struct site **sp)
{
	bool suppressed = flag(o, "suppressed");
	struct extra *x;
	struct site *s;
	uint64_t id;

	if (!parse_site(str(o, "site"), &id)) {
		r->unsited++;
		return NULL;
	}
	if (!strcmp(pid_key, "pid"))	/* a fork: its child's fate comes later */
		remember_child(r, num(o, "child_pid"), id);
	if (!(s = site_of(r, id, t)))
		return NULL;
	*count += !suppressed;
	r->suppressed += suppressed;
	x = extra_of(r, s);
	if (suppressed) {
		x->suppressed++;
		return NULL;
	}
	site_note_pid(s, (uint32_t)num(o, pid_key));
	copy(s->exe, sizeof(s->exe), str(o, "exe_name"));
	copy(s->comm, sizeof(s->comm), str(o, "comm"));
	*sp = s;
	return x;
}

static void take_fork(struct report *r, json_object *o, int64_t t)
{
	struct extra *x;
	struct site *s;

	if (strcmp(str(o, "severity") ? str(o, "severity") : "", "hazard"))
		return;	/* not a finding */
	if (!(x = take_finding(r, o, t, &r->hazards, "pid", &s)))
		return;
	x->hazards_ev++;
	copy(s->container_id, sizeof(s->container_id), str(o, "container_id"));
	if (!x->fork_frame[0])
		place_text(o, false, x->fork_frame, sizeof(x->fork_frame));
	note_locks(x, array(o, "locks"), NULL);
	if (!x->advice && str(o, "advice"))
		x->advice = strdup(str(o, "advice"));
	if (r->want && !x->fork_ev)
		x->fork_ev = json_object_get(o);
}

static void take_child(struct report *r, json_object *o)
{
	int64_t pid = num(o, "pid");
	const struct child_site *c = &r->child[(uint64_t)pid % REPORT_CHILDREN];
	const char *outcome = str(o, "outcome");
	struct site *s;

	if (c->pid != (uint32_t)pid || !c->site || !outcome)
		return;
	s = r->want && c->site != r->want ? NULL : sites_find(r->sites, c->site);
	if (!s)
		return;
	for (int i = 1; i < OUTCOMES; i++)
		if (!strcmp(outcome, outcome_names[i]))
			extra_of(r, s)->children_ev[i]++;
}

static void take_deadlock(struct report *r, json_object *o, int64_t t)
{
	json_object *lock = member(o, "lock");
	struct extra *x;
	struct site *s;

	if (!(x = take_finding(r, o, t, &r->deadlocks, "parent_pid", &s)))
		return;
	x->deadlocks_ev++;
	if (!x->wait_frame[0])
		place_text(o, false, x->wait_frame, sizeof(x->wait_frame));
	if (lock && json_object_is_type(lock, json_type_object))
		note_locks(x, NULL, lock);
	if (r->want && !x->deadlock_ev)
		x->deadlock_ev = json_object_get(o);
}

/* The service's aggregate of a site (docs/json.md, "site"). */
static void take_site(struct report *r, json_object *o)
{
	json_object *children = member(o, "children"), *locks = array(o, "lock_sites");
	uint64_t id, hazards = (uint64_t)num(o, "hazards");
	int64_t first = parse_time(str(o, "first_seen")), last = parse_time(str(o, "last_seen"));
	struct extra *x;
	struct site *s;

	if (!parse_site(str(o, "site"), &id) || !(s = site_of(r, id, first)))
		return;
	site_of(r, id, last);
	x = extra_of(r, s);
	x->hazards_agg += (uint64_t)num(o, "new_hazards");
	x->deadlocks_agg += (uint64_t)num(o, "new_deadlocks");
	/* children are counted since the service started: a count that went
	 * down is a new run (a restart), whose counts add to the last run's */
	if (hazards < x->last_agg_hazards)
		for (int i = 1; i < OUTCOMES; i++)
			x->children_agg[i] += x->children_run[i];
	x->last_agg_hazards = hazards;
	for (int i = 1; i < OUTCOMES && children; i++)
		x->children_run[i] = (uint64_t)num(children, outcome_names[i]);
	if ((uint64_t)num(o, "processes") > x->processes_agg)
		x->processes_agg = (uint64_t)num(o, "processes");
	if (!strcmp(str(o, "kind") ? str(o, "kind") : "", "deadlock"))
		s->kind = SITE_DEADLOCK;
	copy(s->exe, sizeof(s->exe), str(o, "exe"));
	copy(s->comm, sizeof(s->comm), str(o, "comm"));
	copy(s->container_id, sizeof(s->container_id), str(o, "container_id"));
	copy(x->fork_frame, sizeof(x->fork_frame), str(o, "fork_site"));
	if (locks && json_object_array_length(locks))
		copy(x->lock_frame, sizeof(x->lock_frame),
		     json_object_get_string(json_object_array_get_idx(locks, 0)));
}

static void take(struct report *r, json_object *o)
{
	const char *type = str(o, "type");
	int64_t t = parse_time(str(o, "time"));

	if (!type || !t) {
		r->other++;
		return;
	}
	if (!r->first_ns || t < r->first_ns)
		r->first_ns = t;
	if (t > r->last_ns)
		r->last_ns = t;
	if (!strcmp(type, "fork"))
		take_fork(r, o, t);
	else if (!strcmp(type, "child"))
		take_child(r, o);
	else if (!strcmp(type, "deadlock"))
		take_deadlock(r, o, t);
	else if (!strcmp(type, "site"))
		take_site(r, o);
	else if (!strcmp(type, "lost"))
		r->lost += (uint64_t)num(o, "events");
}

/* One file's records. Returns -errno when it cannot be read. */
static int read_file(struct report *r, const char *path, json_tokener *tok)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	uint64_t bad = 0, lineno = 0, first_bad = 0;
	char *line = NULL, safe[256];
	size_t cap = 0;
	ssize_t n;

	if (!f)
		return -errno;
	while ((n = getline(&line, &cap, f)) > 0) {
		json_object *o;

		lineno++;
		while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (!n)
			continue;
		json_tokener_reset(tok);
		o = n > REPORT_LINE_MAX ? NULL : json_tokener_parse_ex(tok, line, (int)n);
		/* the whole line, one object: else malformed (a truncated last line) */
		if (!o || json_tokener_get_error(tok) != json_tokener_success ||
		    json_tokener_get_parse_end(tok) != (size_t)n ||
		    !json_object_is_type(o, json_type_object)) {
			json_object_put(o);
			if (!bad++)
				first_bad = lineno;
			continue;
		}
		r->records++;
		take(r, o);
		json_object_put(o);
	}
	if (ferror(f))
		bad += 0;
	free(line);
	if (f != stdin)
		fclose(f);
	if (bad) {
		term_escape(path, (size_t)-1, safe, sizeof(safe));
		fprintf(stderr, "forkhazard: report: %s: %" PRIu64 " malformed or truncated line%s "
			"skipped (the first: line %" PRIu64 ")\n", safe, bad, bad == 1 ? "" : "s",
			first_bad);
	}
	r->malformed += bad;
	r->files_read++;
	return 0;
}

/* ---- the sites, ranked ------------------------------------------------------- */

struct ranked {
	struct site *s;
	struct extra *x;
	uint64_t hazards, deadlocks, processes, children[OUTCOMES];
};

static uint64_t max_u64(uint64_t a, uint64_t b)
{
	return a > b ? a : b;
}

struct collect {
	struct report *r;
	struct ranked *v;
	size_t n;
};

static void collect_one(void *ctx, struct site *s)
{
	struct collect *c = ctx;
	struct ranked *k = &c->v[c->n++];
	struct extra *x = extra_of(c->r, s);

	k->s = s;
	k->x = x;
	k->hazards = max_u64(x->hazards_ev, x->hazards_agg);
	k->deadlocks = max_u64(x->deadlocks_ev, x->deadlocks_agg);
	k->processes = max_u64(site_processes(s), x->processes_agg);
	for (int i = 1; i < OUTCOMES; i++)
		k->children[i] = max_u64(x->children_ev[i], x->children_agg[i] + x->children_run[i]);
	k->children[3] = max_u64(k->children[3], k->deadlocks);
}

static int cmp_ranked(const void *a, const void *b)
{
	const struct ranked *x = a, *y = b;

	if (x->deadlocks != y->deadlocks)
		return x->deadlocks > y->deadlocks ? -1 : 1;
	if (x->hazards != y->hazards)
		return x->hazards > y->hazards ? -1 : 1;
	return x->s->id < y->s->id ? -1 : x->s->id > y->s->id;
}

/* ---- text ---------------------------------------------------------------------- */

static void fmt_time(int64_t ns, char *buf, size_t size)
{
	time_t secs = (time_t)(ns / 1000000000);
	struct tm tm;

	if (!ns) {
		snprintf(buf, size, "-");
		return;
	}
	gmtime_r(&secs, &tm);
	strftime(buf, size, "%Y-%m-%d %H:%M:%S", &tm);
}

static const char *esc(const char *s, char *buf, size_t size)
{
	return term_escape(s ? s : "", (size_t)-1, buf, size);
}

static void text_children(FILE *f, const struct ranked *k)
{
	fprintf(f, "%" PRIu64 " exec, %" PRIu64 " exit, %" PRIu64 " deadlock, %" PRIu64 " alive",
		k->children[1], k->children[2], k->children[3], k->children[4]);
}

static void text_site(FILE *f, int i, const struct ranked *k)
{
	char first[32], last[32], e[SITE_EXE_LEN * 4], a[FRAME_TEXT * 4], h[HOLDERS * 70] = "";
	const struct extra *x = k->x;

	fmt_time((int64_t)k->s->first_ns, first, sizeof(first));
	fmt_time((int64_t)k->s->last_ns, last, sizeof(last));
	fprintf(f, "%2d  %016" PRIx64 " %8" PRIu64 " %9" PRIu64 " %6" PRIu64 "  %-19s  %-19s  %s\n",
		i, k->s->id, k->hazards, k->deadlocks, k->processes, first, last,
		esc(k->s->exe[0] ? k->s->exe : k->s->comm, e, sizeof(e)));
	if (x->fork_frame[0])
		fprintf(f, "    fork at:    %s\n", esc(x->fork_frame, a, sizeof(a)));
	for (int j = 0; j < x->nholders; j++) {
		char one[70];

		snprintf(h + strlen(h), sizeof(h) - strlen(h), "%s%s", j ? ", " : "",
			 esc(x->holders[j], one, sizeof(one)));
	}
	if (x->lock_frame[0])
		fprintf(f, "    lock taken: %s%s%s\n", esc(x->lock_frame, a, sizeof(a)),
			h[0] ? ", held by " : "", h);
	if (x->wait_frame[0] && (k->s->kind == SITE_DEADLOCK || !x->fork_frame[0]))
		fprintf(f, "    child waits: %s\n", esc(x->wait_frame, a, sizeof(a)));
	fputs("    children:   ", f);
	text_children(f, k);
	if (x->suppressed)
		fprintf(f, "; %" PRIu64 " suppressed by rules", x->suppressed);
	fputc('\n', f);
	if (x->advice)
		fprintf(f, "    advice:     %s\n", esc(x->advice, a, sizeof(a)));
}

static void text_stack(FILE *f, json_object *owner, const char *indent)
{
	json_object *st = array(owner, "stack"), *py = array(owner, "py_stack");
	char a[FRAME_TEXT], e[FRAME_TEXT * 4];
	size_t n = st ? json_object_array_length(st) : 0;

	for (size_t i = 0; py && i < json_object_array_length(py); i++) {
		json_object *p = json_object_array_get_idx(py, i);

		snprintf(a, sizeof(a), "py: %.100s (%.120s:%" PRId64 ")", str(p, "function") ?
			 str(p, "function") : "?", str(p, "file") ? str(p, "file") : "?",
			 num(p, "line"));
		fprintf(f, "%s%s\n", indent, esc(a, e, sizeof(e)));
	}
	for (size_t i = 0; i < n; i++) {
		frame_text(json_object_array_get_idx(st, i), a, sizeof(a));
		fprintf(f, "%s#%zu %s\n", indent, i, esc(a, e, sizeof(e)));
	}
}

static void text_lock(FILE *f, json_object *l, const char *what)
{
	char c[FH_COMM_LEN * 4 + 1], held[32], rule[400] = "";

	fmt_duration((uint64_t)num(l, "held_ns"), held, sizeof(held));
	if (str(l, "suppressed_by"))
		snprintf(rule, sizeof(rule), " (suppressed by %.300s)", str(l, "suppressed_by"));
	fprintf(f, "  %s%s %s held by %" PRId64 " (%s) for %s%s\n", what,
		str(l, "kind") ? str(l, "kind") : "lock", str(l, "addr") ? str(l, "addr") : "?",
		num(l, "holder_tid"), esc(str(l, "holder_comm"), c, sizeof(c)), held,
		esc(rule, rule, sizeof(rule)));
	text_stack(f, l, "      ");
}

/* --site: the recorded fork and deadlock of the site, in full. */
static void text_detail(FILE *f, const struct ranked *k)
{
	const struct extra *x = k->x;
	json_object *locks = x->fork_ev ? array(x->fork_ev, "locks") : NULL;
	json_object *lock = x->deadlock_ev ? member(x->deadlock_ev, "lock") : NULL;
	char c[FH_COMM_LEN * 4 + 1];

	fprintf(f, "\nprocesses:");
	for (int i = 0; i < k->s->npids && i < SITE_EXACT_PIDS; i++)
		fprintf(f, " %u", k->s->pids[i]);
	fprintf(f, "%s\n", k->processes > (uint64_t)k->s->npids ? " ..." : "");
	if (k->s->container_id[0])
		fprintf(f, "container:  %s\n", esc(k->s->container_id, c, sizeof(c)));
	if (x->fork_ev) {
		fprintf(f, "\nthe first hazard fork recorded (%s, PID %" PRId64 ", thread %" PRId64
			" %s):\n", str(x->fork_ev, "time"), num(x->fork_ev, "pid"),
			num(x->fork_ev, "tid"), esc(str(x->fork_ev, "comm"), c, sizeof(c)));
		for (size_t i = 0; locks && i < json_object_array_length(locks); i++)
			text_lock(f, json_object_array_get_idx(locks, i), "");
		fputs("  fork called from:\n", f);
		text_stack(f, x->fork_ev, "      ");
	}
	if (x->deadlock_ev) {
		fprintf(f, "\nthe first deadlock recorded (%s): child %" PRId64 " of %" PRId64
			", futex %s\n", str(x->deadlock_ev, "time"), num(x->deadlock_ev, "pid"),
			num(x->deadlock_ev, "parent_pid"), str(x->deadlock_ev, "futex") ?
			str(x->deadlock_ev, "futex") : "?");
		if (lock && json_object_is_type(lock, json_type_object))
			text_lock(f, lock, "inherited ");
		fputs("  the child waits in:\n", f);
		text_stack(f, x->deadlock_ev, "      ");
	}
	if (!x->fork_ev && !x->deadlock_ev)
		fputs("\n(no fork or deadlock of this site is recorded in full: only the "
		      "service's aggregates)\n", f);
}

static void header_counts(const struct report *r, size_t nsites, char *buf, size_t size)
{
	struct sites_stats st;

	sites_get_stats(r->sites, &st);
	snprintf(buf, size, "%zu site%s, %" PRIu64 " hazard forks and %" PRIu64
		 " deadlocks recorded in full, %" PRIu64 " suppressed by rules, %" PRIu64
		 " events lost%s", nsites, nsites == 1 ? "" : "s", r->hazards, r->deadlocks,
		 r->suppressed, r->lost, st.evicted ? "; sites over the table's bound dropped" : "");
}

static void print_text(struct report *r, struct ranked *v, size_t n, FILE *f)
{
	char first[32], last[32], counts[320];
	struct sites_stats st;
	int shown = 0;

	sites_get_stats(r->sites, &st);
	fmt_time(r->first_ns, first, sizeof(first));
	fmt_time(r->last_ns, last, sizeof(last));
	fprintf(f, "forkhazard report: %d file%s, %" PRIu64 " records (%" PRIu64
		" malformed, skipped), %s to %s UTC\n", (int)r->files_read,
		r->files_read == 1 ? "" : "s", r->records, r->malformed, first, last);
	header_counts(r, n, counts, sizeof(counts));
	fprintf(f, "%s\n", counts);
	if (st.evicted)
		fprintf(f, "%" PRIu64 " sites dropped: more than --max-sites %zu\n", st.evicted,
			st.max);
	if (r->unsited)
		fprintf(f, "%" PRIu64 " findings without a site id (recorded by an older "
			"forkhazard): not ranked\n", r->unsited);
	if (!n)
		return;
	fprintf(f, "\n #  SITE              HAZARDS DEADLOCKS  PROCS  FIRST SEEN (UTC)     "
		"LAST SEEN            EXE\n");
	for (size_t i = 0; i < n && (r->want || shown < r->top); i++, shown++)
		text_site(f, (int)i + 1, &v[i]);
	if (n > (size_t)shown)
		fprintf(f, "... and %zu more sites (--top N shows more)\n", n - (size_t)shown);
	if (r->want)
		text_detail(f, &v[0]);
	else
		fprintf(f, "\nOne site in full: forkhazard report FILE... --site SITE\n");
}

/* ---- markdown -------------------------------------------------------------------- */

/* Text for a table cell or a code span: terminal-safe, no '|' or '`'. */
static const char *md(const char *s, char *buf, size_t size)
{
	esc(s, buf, size);
	for (char *p = buf; *p; p++)
		if (*p == '|' || *p == '`')
			*p = '\'';
	return buf;
}

static void md_stack(FILE *f, json_object *owner)
{
	fputs("```\n", f);
	text_stack(f, owner, "");
	fputs("```\n", f);
}

static void print_markdown(struct report *r, struct ranked *v, size_t n, FILE *f)
{
	char first[32], last[32], counts[320], a[FRAME_TEXT * 4], e[SITE_EXE_LEN * 4];

	fmt_time(r->first_ns, first, sizeof(first));
	fmt_time(r->last_ns, last, sizeof(last));
	header_counts(r, n, counts, sizeof(counts));
	fprintf(f, "# Fork hazards%s%s\n\n", r->want ? ": site " : "", r->want ? r->want_text : "");
	fprintf(f, "Recorded %s to %s UTC: %" PRIu64 " records", first, last, r->records);
	if (r->malformed)
		fprintf(f, " (%" PRIu64 " malformed, skipped)", r->malformed);
	fprintf(f, " from");
	for (int i = 0; i < r->nfiles; i++)
		fprintf(f, "%s `%s`", i ? "," : "", md(r->files[i], a, sizeof(a)));
	fprintf(f, ". %s.\n\n", counts);
	if (!n)
		return;
	fputs("| # | site | hazards | deadlocks | processes | first seen | last seen | "
	      "executable |\n|---|---|---:|---:|---:|---|---|---|\n", f);
	for (size_t i = 0; i < n && (r->want || i < (size_t)r->top); i++) {
		char f1[32], l1[32];

		fmt_time((int64_t)v[i].s->first_ns, f1, sizeof(f1));
		fmt_time((int64_t)v[i].s->last_ns, l1, sizeof(l1));
		fprintf(f, "| %zu | `%016" PRIx64 "` | %" PRIu64 " | %" PRIu64 " | %" PRIu64
			" | %s | %s | `%s` |\n", i + 1, v[i].s->id, v[i].hazards, v[i].deadlocks,
			v[i].processes, f1, l1, md(v[i].s->exe[0] ? v[i].s->exe : v[i].s->comm, e,
						   sizeof(e)));
	}
	for (size_t i = 0; i < n && (r->want || i < (size_t)r->top); i++) {
		const struct ranked *k = &v[i];
		const struct extra *x = k->x;

		fprintf(f, "\n## Site `%016" PRIx64 "`: `%s`\n\n", k->s->id,
			md(k->s->exe[0] ? k->s->exe : k->s->comm, e, sizeof(e)));
		if (x->fork_frame[0])
			fprintf(f, "- **Fork called at:** `%s`\n", md(x->fork_frame, a, sizeof(a)));
		if (x->lock_frame[0])
			fprintf(f, "- **Lock taken at:** `%s`\n", md(x->lock_frame, a, sizeof(a)));
		for (int j = 0; j < x->nholders; j++)
			fprintf(f, "%s`%s`%s", j ? ", " : "- **Held by:** ",
				md(x->holders[j], a, sizeof(a)), j + 1 == x->nholders ? "\n" : "");
		if (x->wait_frame[0])
			fprintf(f, "- **A deadlocked child waits at:** `%s`\n",
				md(x->wait_frame, a, sizeof(a)));
		fprintf(f, "- **Children:** ");
		text_children(f, k);
		fprintf(f, "\n- **Processes:** %" PRIu64 "\n", k->processes);
		if (x->suppressed)
			fprintf(f, "- **Suppressed by rules:** %" PRIu64 "\n", x->suppressed);
		if (x->advice)
			fprintf(f, "- **Advice:** %s\n", md(x->advice, a, sizeof(a)));
		if (r->want && x->fork_ev) {
			json_object *locks = array(x->fork_ev, "locks");

			fputs("\n### Where fork was called\n\n", f);
			md_stack(f, x->fork_ev);
			for (size_t j = 0; locks && j < json_object_array_length(locks); j++) {
				json_object *l = json_object_array_get_idx(locks, j);

				fprintf(f, "\n### %s %s, held by thread %" PRId64 " (`%s`)\n\n",
					str(l, "kind") ? str(l, "kind") : "lock",
					str(l, "addr") ? str(l, "addr") : "?", num(l, "holder_tid"),
					md(str(l, "holder_comm"), a, sizeof(a)));
				md_stack(f, l);
			}
		}
		if (r->want && x->deadlock_ev) {
			fputs("\n### Where the deadlocked child waits\n\n", f);
			md_stack(f, x->deadlock_ev);
		}
	}
	fprintf(f, "\n_forkhazard report %s_\n", FH_VERSION);
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_time_ns(struct jw *w, const char *key, int64_t ns)
{
	char ts[40];

	if (!ns) {
		jw_null(w, key);
		return;
	}
	fmt_rfc3339(ns, ts, sizeof(ts));
	jw_str(w, key, ts);
}

/* A record as read, written again through json.c (strings made valid
 * UTF-8); nested deeper than the writer goes: null. */
static void json_value(struct jw *w, const char *key, json_object *o)
{
	switch (json_object_get_type(o)) {
	case json_type_object:
		if (w->depth + 1 >= JW_MAX_DEPTH) {
			jw_null(w, key);
			return;
		}
		jw_obj_begin(w, key);
		for (struct json_object_iterator it = json_object_iter_begin(o),
		     end = json_object_iter_end(o); !json_object_iter_equal(&it, &end);
		     json_object_iter_next(&it))
			json_value(w, json_object_iter_peek_name(&it), json_object_iter_peek_value(&it));
		jw_obj_end(w);
		return;
	case json_type_array:
		if (w->depth + 1 >= JW_MAX_DEPTH) {
			jw_null(w, key);
			return;
		}
		jw_arr_begin(w, key);
		for (size_t i = 0; i < json_object_array_length(o); i++)
			json_value(w, NULL, json_object_array_get_idx(o, i));
		jw_arr_end(w);
		return;
	case json_type_string:
		jw_strn(w, key, json_object_get_string(o), (size_t)json_object_get_string_len(o));
		return;
	case json_type_int:
		jw_int(w, key, (long long)json_object_get_int64(o));
		return;
	case json_type_boolean:
		jw_bool(w, key, json_object_get_boolean(o));
		return;
	case json_type_double:
		jw_raw(w, key, json_object_to_json_string_ext(o, JSON_C_TO_STRING_PLAIN));
		return;
	case json_type_null:
		break;
	}
	jw_null(w, key);
}

static void print_json(struct report *r, struct ranked *v, size_t n, FILE *f)
{
	struct sites_stats st;
	struct timespec now;
	struct jw w;

	sites_get_stats(r->sites, &st);
	clock_gettime(CLOCK_REALTIME, &now);
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "type", "report");
	json_time_ns(&w, "time", (int64_t)now.tv_sec * 1000000000 + now.tv_nsec);
	jw_arr_begin(&w, "files");
	for (int i = 0; i < r->nfiles; i++)
		jw_str(&w, NULL, r->files[i]);
	jw_arr_end(&w);
	jw_uint(&w, "records", r->records);
	jw_uint(&w, "malformed", r->malformed);
	json_time_ns(&w, "first_seen", r->first_ns);
	json_time_ns(&w, "last_seen", r->last_ns);
	jw_uint(&w, "hazards", r->hazards);
	jw_uint(&w, "deadlocks", r->deadlocks);
	jw_uint(&w, "suppressed", r->suppressed);
	jw_uint(&w, "lost", r->lost);
	jw_uint(&w, "unsited", r->unsited);
	jw_uint(&w, "sites_dropped", st.evicted);
	jw_arr_begin(&w, "sites");
	for (size_t i = 0; i < n && (r->want || i < (size_t)r->top); i++) {
		const struct ranked *k = &v[i];
		const struct extra *x = k->x;
		char id[17];

		snprintf(id, sizeof(id), "%016" PRIx64, k->s->id);
		jw_obj_begin(&w, NULL);
		jw_str(&w, "site", id);
		jw_str(&w, "kind", k->s->kind == SITE_DEADLOCK ? "deadlock" : "hazard");
		jw_str(&w, "exe", k->s->exe);
		jw_str(&w, "comm", k->s->comm);
		jw_str(&w, "container_id", k->s->container_id[0] ? k->s->container_id : NULL);
		jw_uint(&w, "hazards", k->hazards);
		jw_uint(&w, "deadlocks", k->deadlocks);
		jw_uint(&w, "suppressed", x->suppressed);
		jw_uint(&w, "processes", k->processes);
		json_time_ns(&w, "first_seen", (int64_t)k->s->first_ns);
		json_time_ns(&w, "last_seen", (int64_t)k->s->last_ns);
		jw_obj_begin(&w, "children");
		for (int j = 1; j < OUTCOMES; j++)
			jw_uint(&w, outcome_names[j], k->children[j]);
		jw_obj_end(&w);
		jw_str(&w, "fork_frame", x->fork_frame[0] ? x->fork_frame : NULL);
		jw_str(&w, "lock_frame", x->lock_frame[0] ? x->lock_frame : NULL);
		jw_str(&w, "wait_frame", x->wait_frame[0] ? x->wait_frame : NULL);
		jw_arr_begin(&w, "holders");
		for (int j = 0; j < x->nholders; j++)
			jw_str(&w, NULL, x->holders[j]);
		jw_arr_end(&w);
		jw_str(&w, "advice", x->advice);
		if (r->want) {
			json_value(&w, "fork", x->fork_ev);
			json_value(&w, "deadlock", x->deadlock_ev);
		}
		jw_obj_end(&w);
	}
	jw_arr_end(&w);
	jw_uint(&w, "sites_more", n > (size_t)r->top && !r->want ? n - (size_t)r->top : 0);
	jw_obj_end(&w);
	jw_write_line(&w, f);
	jw_free(&w);
}

/* ---- the command ----------------------------------------------------------------- */

static const char usage[] =
"Usage: forkhazard report [--json|--markdown] [--site ID] [--top N] [--max-sites N]\n"
"                         FILE.jsonl...\n"
"\n"
"What forkhazard -j -o FILE or the service (--daemon) recorded, on one screen:\n"
"the sites ranked by deadlocks and hazards, with their processes, first and\n"
"last seen, the children's fates, where they fork and where the locks were\n"
"taken, and the advice. FILE - is standard input; a rotated file and its\n"
"successor may be given together, oldest first.\n"
"\n"
"  --site ID      one site in full: its fork, locks, holders and stacks\n"
"  --json         the same as one JSON object (docs/json.md, \"report\")\n"
"  --markdown     the same as an incident ticket\n"
"  --top N        sites shown (default 8)\n"
"  --max-sites N  sites kept while reading (default 4096; more are counted)\n"
"\n"
"Malformed or truncated lines are counted, said on standard error and skipped.\n"
"Exit status: 0, 1 if nothing could be read (or no such site), 2 usage error.\n";

static int run(struct report *r, int max_sites)
{
	json_tokener *tok = json_tokener_new_ex(JSON_TOKENER_DEFAULT_DEPTH);
	struct collect c = { .r = r };
	struct sites_stats st;
	int status = 0;

	r->sites = sites_new((size_t)max_sites, 0, on_evict, r);
	r->extra = calloc((size_t)max_sites, sizeof(*r->extra));
	r->child = calloc(REPORT_CHILDREN, sizeof(*r->child));
	if (!tok || !r->sites || !r->extra || !r->child) {
		fputs("forkhazard: report: out of memory\n", stderr);
		status = 1;
		goto out;
	}
	/* not JSON_TOKENER_VALIDATE_UTF8 (a fifth of the time): forkhazard's
	 * records are valid UTF-8, and whatever a damaged file holds goes out
	 * escaped (term_escape, json.c), never as read */
	json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
	for (int i = 0; i < r->nfiles; i++) {
		int err = read_file(r, r->files[i], tok);
		char safe[256];

		if (err)
			fprintf(stderr, "forkhazard: report: cannot read %s: %s\n",
				term_escape(r->files[i], (size_t)-1, safe, sizeof(safe)),
				strerror(-err));
	}
	if (!r->records) {
		fputs("forkhazard: report: no record could be read\n", stderr);
		status = 1;
		goto out;
	}
	sites_get_stats(r->sites, &st);
	c.v = calloc(st.used ? st.used : 1, sizeof(*c.v));
	if (!c.v) {
		status = 1;
		goto out;
	}
	sites_foreach(r->sites, collect_one, &c);
	qsort(c.v, c.n, sizeof(*c.v), cmp_ranked);
	if (r->want && !c.n) {
		fprintf(stderr, "forkhazard: report: no site %s in what was read\n", r->want_text);
		status = 1;
	} else if (r->fmt == FMT_JSON) {
		print_json(r, c.v, c.n, stdout);
	} else if (r->fmt == FMT_MARKDOWN) {
		print_markdown(r, c.v, c.n, stdout);
	} else {
		print_text(r, c.v, c.n, stdout);
	}
	free(c.v);
	if (fflush(stdout) || ferror(stdout))
		status = 1;
out:
	if (r->sites && r->extra) {
		for (int i = 0; i < max_sites; i++)
			extra_clear(&r->extra[i]);
	}
	free(r->extra);
	free(r->child);
	sites_free(r->sites);
	if (tok)
		json_tokener_free(tok);
	return status;
}

/* The value v of option a (--site, --top, --max-sites) into r or
 * *max_sites. NULL, or the usage error's format (its %s: v). */
static const char *option_value(struct report *r, const char *a, const char *v, long *max_sites)
{
	long n;

	if (!v)
		return "report: %s needs a value";
	if (!strcmp(a, "--site")) {
		r->want_text = v;
		return parse_site(v, &r->want) ? NULL :
		       "report: invalid --site '%s' (16 hexadecimal digits)";
	}
	if (!strcmp(a, "--top")) {
		if (cli_parse_long(v, 1, 100000, &n))
			return "report: invalid --top '%s' (1-100000)";
		r->top = (int)n;
		return NULL;
	}
	return cli_parse_long(v, 2, 1 << 20, max_sites) ? "report: invalid --max-sites '%s' (2-1048576)" :
							   NULL;
}

int report_main(int argc, char **argv)
{
	struct report r = { .top = REPORT_TOP };
	const char **files = calloc((size_t)argc, sizeof(*files));
	long max_sites = REPORT_SITES;
	int status;

	if (!files)
		return 1;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];

		if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			fputs(usage, stdout);
			free(files);
			return 0;
		} else if (!strcmp(a, "--json") || !strcmp(a, "-j")) {
			r.fmt = FMT_JSON;
		} else if (!strcmp(a, "--markdown")) {
			r.fmt = FMT_MARKDOWN;
		} else if (!strcmp(a, "--site") || !strcmp(a, "--top") || !strcmp(a, "--max-sites")) {
			const char *v = i + 1 < argc ? argv[++i] : NULL;
			const char *why = option_value(&r, a, v, &max_sites);

			if (why) {
				free(files);
				return cli_usage_error(why, v ? v : a);
			}
		} else if (a[0] == '-' && a[1]) {
			free(files);
			return cli_usage_error("report: unknown option '%s'", a);
		} else {
			files[r.nfiles++] = a;
		}
	}
	if (!r.nfiles) {
		free(files);
		return cli_usage_error("report: which files?%s", "");
	}
	r.files = files;
	status = run(&r, (int)max_sites);
	free(files);
	return status;
}

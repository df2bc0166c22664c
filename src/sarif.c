// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"
#include "gate.h"
#include "json.h"
#include "output.h"
#include "sarif.h"

#define SCHEMA	"https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json"
#define BASE_ID	"SRCROOT"

static const struct {
	const char *id, *name, *level, *short_text, *full_text;
} rules[] = {
	{ "fork-hazard", "ForkHazard", "warning",
	  "A process forked while another of its threads held a lock.",
	  "After fork() the child holds a copy of every lock of the parent, but only the forking "
	  "thread exists in it: a lock another thread held at that moment can never be released "
	  "in the child, which hangs the first time it takes it. Fix: start new programs with "
	  "posix_spawn or subprocess (exec at once), fork before starting threads, or make the "
	  "fork wait for the lock (pthread_atfork, os.register_at_fork)." },
	{ "fork-deadlock", "ForkDeadlock", "error",
	  "A forked child deadlocked on a lock it inherited locked.",
	  "The only thread of a child forked from a multithreaded process waits forever on a "
	  "lock that another thread of the parent held at the fork: no thread exists in the "
	  "child that could release it. The child never runs again." },
};

/* An absolute path as a file: URI, or one under root as a path relative to
 * it; percent-encoded but for unreserved characters and '/'. */
static void put_uri(struct strbuf *b, const char *path)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)path; *p; p++) {
		if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
		    strchr("-._~/", *p)) {
			strbuf_put(b, (const char *)p, 1);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			strbuf_put(b, esc, 3);
		}
	}
}

struct sarif {
	struct jw w;
	const char *root;	/* without a trailing '/'; NULL: none */
	size_t root_len;
	struct strbuf uri;
	int related_id;
};

static void artifact(struct sarif *s, const char *file)
{
	bool under = s->root && !strncmp(file, s->root, s->root_len) && file[s->root_len] == '/';

	strbuf_reset(&s->uri);
	jw_obj_begin(&s->w, "artifactLocation");
	if (under) {
		put_uri(&s->uri, file + s->root_len + 1);
	} else if (file[0] == '/') {
		strbuf_puts(&s->uri, "file://");
		put_uri(&s->uri, file);
	} else {
		put_uri(&s->uri, file);	/* relative in the debug information: the build's */
	}
	jw_str(&s->w, "uri", s->uri.oom ? "" : s->uri.buf);
	if (under || (s->root && file[0] != '/'))
		jw_str(&s->w, "uriBaseId", BASE_ID);
	jw_obj_end(&s->w);
}

/* Can a review tool place the file: an absolute path, or one relative to
 * the build that stays inside it (a C library's "../sysdeps/..." does not)? */
static bool placeable(const char *file)
{
	return file[0] == '/' || (strncmp(file, "../", 3) && !strstr(file, "/../"));
}

/* "symbol+0x1c [module]", as the text output names a frame without a file. */
static void frame_text(const struct gate_frame *f, char *buf, size_t size)
{
	const char *mod = strrchr(f->module, '/');

	mod = mod ? mod + 1 : f->module;
	if (f->known)
		snprintf(buf, size, "%.200s+0x%" PRIx64 " [%.100s]", f->symbol, f->offset, mod);
	else if (f->has_module)
		snprintf(buf, size, "[%.100s+0x%" PRIx64 "]", mod, f->module_offset);
	else
		snprintf(buf, size, "0x%" PRIx64, f->addr);
}

/* A location: the frame's file and line when known, its function, and a
 * message. key: NULL inside an array. */
static void location(struct sarif *s, const char *key, const struct gate_frame *f,
		     const char *message, int id)
{
	char text[512];

	jw_obj_begin(&s->w, key);
	if (id)
		jw_int(&s->w, "id", id);
	if (f && f->line && placeable(f->file)) {
		jw_obj_begin(&s->w, "physicalLocation");
		artifact(s, f->file);
		jw_obj_begin(&s->w, "region");
		jw_uint(&s->w, "startLine", f->line);
		jw_obj_end(&s->w);
		jw_obj_end(&s->w);
	}
	if (f && f->known) {
		jw_arr_begin(&s->w, "logicalLocations");
		jw_obj_begin(&s->w, NULL);
		jw_str(&s->w, "name", f->symbol);
		jw_str(&s->w, "kind", "function");
		jw_obj_end(&s->w);
		jw_arr_end(&s->w);
	}
	if (f && (!f->line || !placeable(f->file))) {
		frame_text(f, text, sizeof(text));
		jw_obj_begin(&s->w, "message");
		jw_str(&s->w, "text", message ? message : text);
		jw_obj_end(&s->w);
		if (message) {	/* where it is, all the same */
			jw_obj_begin(&s->w, "properties");
			jw_str(&s->w, "frame", text);
			jw_obj_end(&s->w);
		}
	} else if (message) {
		jw_obj_begin(&s->w, "message");
		jw_str(&s->w, "text", message);
		jw_obj_end(&s->w);
	}
	jw_obj_end(&s->w);
}

/* A stack as a SARIF stack, and each of its frames a related location. */
static void stack(struct sarif *s, const struct gate_stack *st, const char *what)
{
	jw_obj_begin(&s->w, NULL);
	jw_obj_begin(&s->w, "message");
	jw_str(&s->w, "text", what);
	jw_obj_end(&s->w);
	jw_arr_begin(&s->w, "frames");
	for (int i = 0; i < st->n; i++) {
		const struct gate_frame *f = &st->f[i];

		jw_obj_begin(&s->w, NULL);
		location(s, "location", f, NULL, 0);
		if (f->has_module)
			jw_str(&s->w, "module", f->module);
		jw_obj_end(&s->w);
	}
	jw_arr_end(&s->w);
	jw_obj_end(&s->w);
}

static void related(struct sarif *s, const struct gate_stack *st, const char *what)
{
	char msg[448];

	for (int i = 0; i < st->n; i++) {
		snprintf(msg, sizeof(msg), "%s, frame #%d", what, i);
		location(s, NULL, &st->f[i], msg, ++s->related_id);
	}
}

static void place(const struct gate_frame *f, char *buf, size_t size)
{
	const char *b;

	if (!f) {
		snprintf(buf, size, "an unknown place");
		return;
	}
	b = strrchr(f->file, '/');
	if (f->known && f->line)
		snprintf(buf, size, "%.160s (%.120s:%u)", f->symbol, b ? b + 1 : f->file, f->line);
	else
		frame_text(f, buf, size);
}

static void message(struct sarif *s, const struct gate_site *site)
{
	char fork[320], lock[320], text[2048], comm[FH_COMM_LEN * 4 + 1];
	const struct gate_lock *l = site->nlocks ? &site->lock[0] : NULL;
	size_t n;

	place(gate_place(&site->stack[GATE_STACK_FORK]), fork, sizeof(fork));
	if (site->kind == SITE_DEADLOCK && !site->nlocks) {
		place(gate_place(&site->stack[GATE_STACK_WAIT]), lock, sizeof(lock));
		n = (size_t)snprintf(text, sizeof(text), "A child of %s deadlocked: it waits "
				     "forever at %s on a lock it inherited locked.", site->name,
				     lock);
	} else {
		place(l ? gate_place(&l->stack) : NULL, lock, sizeof(lock));
		term_escape(l ? l->holder_comm : "?", (size_t)-1, comm, sizeof(comm));
		n = (size_t)snprintf(text, sizeof(text), "%s forked at %s while thread %u (%s) "
				     "held %s 0x%" PRIx64 ", taken at %s%s: the child inherits it "
				     "locked, and no thread of the child can release it.",
				     site->name, fork, l ? l->holder_tid : 0, comm,
				     l ? lock_kind_name(l->kind) : "a lock", l ? l->addr : 0, lock,
				     site->nlocks + site->locks_more > 1 ? " (and other locks)" : "");
	}
	if (n < sizeof(text))
		snprintf(text + n, sizeof(text) - n, " %" PRIu64 " hazard fork%s, %" PRIu64
			 " deadlocked child%s%s.", site->hazards, site->hazards == 1 ? "" : "s",
			 site->deadlocks, site->deadlocks == 1 ? "" : "ren",
			 site->suppressed ? ", more set aside by rules" : "");
	jw_obj_begin(&s->w, "message");
	jw_str(&s->w, "text", text);
	jw_obj_end(&s->w);
}

static void result(struct sarif *s, const struct gate_site *site)
{
	int rule = site->worst == HAZARD_LEVEL_DEADLOCK;
	char what[400], comm[FH_COMM_LEN * 4 + 1];

	s->related_id = 0;
	jw_obj_begin(&s->w, NULL);
	jw_str(&s->w, "ruleId", rules[rule].id);
	jw_int(&s->w, "ruleIndex", rule);
	jw_str(&s->w, "level", rules[rule].level);
	message(s, site);
	jw_arr_begin(&s->w, "locations");
	if (site->stack[GATE_STACK_FORK].n)
		location(s, NULL, gate_place(&site->stack[GATE_STACK_FORK]), "fork called here", 0);
	for (int i = 0; i < site->nlocks; i++) {
		const struct gate_lock *l = &site->lock[i];

		term_escape(l->holder_comm, (size_t)-1, comm, sizeof(comm));
		snprintf(what, sizeof(what), "%s 0x%" PRIx64 " taken here by thread %u (%s), "
			 "which held it at the fork", lock_kind_name(l->kind), l->addr,
			 l->holder_tid, comm);
		location(s, NULL, gate_place(&l->stack), what, 0);
	}
	if (site->stack[GATE_STACK_WAIT].n && (!site->stack[GATE_STACK_FORK].n || !site->nlocks))
		location(s, NULL, gate_place(&site->stack[GATE_STACK_WAIT]),
			 "the deadlocked child waits here", 0);
	jw_arr_end(&s->w);
	jw_arr_begin(&s->w, "relatedLocations");
	related(s, &site->stack[GATE_STACK_FORK], "fork called from");
	for (int i = 0; i < site->nlocks; i++) {
		const struct gate_lock *l = &site->lock[i];

		term_escape(l->holder_comm, (size_t)-1, comm, sizeof(comm));
		snprintf(what, sizeof(what), "lock 0x%" PRIx64 " taken by its holder, thread %u (%s)",
			 l->addr, l->holder_tid, comm);
		related(s, &l->stack, what);
	}
	related(s, &site->stack[GATE_STACK_WAIT], "the deadlocked child waits in");
	jw_arr_end(&s->w);
	jw_arr_begin(&s->w, "stacks");
	if (site->stack[GATE_STACK_FORK].n)
		stack(s, &site->stack[GATE_STACK_FORK], "where fork was called");
	for (int i = 0; i < site->nlocks; i++) {
		const struct gate_lock *l = &site->lock[i];

		term_escape(l->holder_comm, (size_t)-1, comm, sizeof(comm));
		snprintf(what, sizeof(what), "where thread %u (%s) took %s 0x%" PRIx64,
			 l->holder_tid, comm, lock_kind_name(l->kind), l->addr);
		if (l->stack.n)
			stack(s, &l->stack, what);
	}
	if (site->stack[GATE_STACK_WAIT].n)
		stack(s, &site->stack[GATE_STACK_WAIT], "where the deadlocked child waits");
	jw_arr_end(&s->w);
	jw_obj_begin(&s->w, "partialFingerprints");
	jw_str(&s->w, "forkhazardSite/v1", site->hex);
	jw_obj_end(&s->w);
	if (site->left == HAZARD_LEVEL_NONE) {
		if (site->suppressed_by[0])
			snprintf(what, sizeof(what), "suppression rule %s", site->suppressed_by);
		else	/* no rule: every hazard of the site was mitigated */
			snprintf(what, sizeof(what), "mitigated: the child re-created every lock "
				 "it inherited held");
		jw_arr_begin(&s->w, "suppressions");
		jw_obj_begin(&s->w, NULL);
		jw_str(&s->w, "kind", "external");
		jw_str(&s->w, "justification", what);
		jw_obj_end(&s->w);
		jw_arr_end(&s->w);
	}
	jw_obj_begin(&s->w, "properties");
	jw_str(&s->w, "site", site->hex);
	jw_str(&s->w, "exe", site->exe);
	jw_uint(&s->w, "hazards", site->hazards);
	jw_uint(&s->w, "deadlocks", site->deadlocks);
	jw_uint(&s->w, "suppressed", site->suppressed);
	jw_obj_end(&s->w);
	jw_obj_end(&s->w);
}

static void driver(struct sarif *s)
{
	jw_obj_begin(&s->w, "tool");
	jw_obj_begin(&s->w, "driver");
	jw_str(&s->w, "name", "forkhazard");
	jw_str(&s->w, "version", FH_VERSION);
	jw_arr_begin(&s->w, "rules");
	for (size_t i = 0; i < sizeof(rules) / sizeof(rules[0]); i++) {
		jw_obj_begin(&s->w, NULL);
		jw_str(&s->w, "id", rules[i].id);
		jw_str(&s->w, "name", rules[i].name);
		jw_obj_begin(&s->w, "shortDescription");
		jw_str(&s->w, "text", rules[i].short_text);
		jw_obj_end(&s->w);
		jw_obj_begin(&s->w, "fullDescription");
		jw_str(&s->w, "text", rules[i].full_text);
		jw_obj_end(&s->w);
		jw_obj_begin(&s->w, "defaultConfiguration");
		jw_str(&s->w, "level", rules[i].level);
		jw_obj_end(&s->w);
		jw_obj_end(&s->w);
	}
	jw_arr_end(&s->w);
	jw_obj_end(&s->w);
	jw_obj_end(&s->w);
}

int sarif_write(FILE *f, struct gate *g, const char *root)
{
	struct sarif s = { .root = root };
	const struct gate_site *const *sites;
	uint64_t dropped;
	int n = gate_sites(g, &sites, &dropped), err;

	jw_init(&s.w);
	strbuf_init(&s.uri);
	if (root) {
		s.root_len = strlen(root);
		while (s.root_len > 1 && root[s.root_len - 1] == '/')
			s.root_len--;
	}
	jw_obj_begin(&s.w, NULL);
	jw_str(&s.w, "$schema", SCHEMA);
	jw_str(&s.w, "version", "2.1.0");
	jw_arr_begin(&s.w, "runs");
	jw_obj_begin(&s.w, NULL);
	driver(&s);
	if (root) {
		strbuf_reset(&s.uri);
		strbuf_puts(&s.uri, "file://");
		put_uri(&s.uri, root);
		if (root[strlen(root) - 1] != '/')
			strbuf_puts(&s.uri, "/");
		jw_obj_begin(&s.w, "originalUriBaseIds");
		jw_obj_begin(&s.w, BASE_ID);
		jw_str(&s.w, "uri", s.uri.oom ? "" : s.uri.buf);
		jw_obj_end(&s.w);
		jw_obj_end(&s.w);
	}
	jw_arr_begin(&s.w, "results");
	for (int i = 0; i < n; i++)
		result(&s, sites[i]);
	jw_arr_end(&s.w);
	jw_obj_begin(&s.w, "properties");
	jw_uint(&s.w, "sitesNotKept", dropped);
	jw_obj_end(&s.w);
	jw_obj_end(&s.w);
	jw_arr_end(&s.w);
	jw_obj_end(&s.w);
	err = jw_write_line(&s.w, f);
	if (!err && (fflush(f) || ferror(f)))
		err = -EIO;
	jw_free(&s.w);
	strbuf_free(&s.uri);
	return err;
}

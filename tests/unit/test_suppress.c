// SPDX-License-Identifier: GPL-2.0
/* suppress.c: the rule grammar, its errors, and matching over frame strings
 * (native frames, inlined calls, Python frames as the pipeline will name
 * them: "function (file:line)"). */
#include "suppress.h"
#include "symbolize.h"
#include "unit.h"

static struct fh_frame frame;

static const struct fh_frame *native(const char *sym, const char *file, unsigned int line)
{
	memset(&frame, 0, sizeof(frame));
	frame.known = sym != NULL;
	frame.has_module = true;
	snprintf(frame.symbol, sizeof(frame.symbol), "%s", sym ? sym : "");
	snprintf(frame.file, sizeof(frame.file), "%s", file ? file : "");
	frame.line = line;
	snprintf(frame.module, sizeof(frame.module), "/usr/bin/app");
	return &frame;
}

/* Rules from text (one per line); NULL after the first error (in err). */
static struct suppressions *rules(const char *text, char *err, size_t size)
{
	struct suppressions *s = supp_new();
	char line[512];
	int n = 0;

	while (s && *text) {
		size_t k = strcspn(text, "\n");

		snprintf(line, sizeof(line), "%.*s", (int)k, text);
		text += k + (text[k] == '\n');
		if (supp_parse_line(s, "t.supp", ++n, line, err, size)) {
			supp_free(s);
			return NULL;
		}
	}
	return s;
}

static const char *match(struct suppressions *s, const struct supp_subject *subj)
{
	const struct supp_rule *r = supp_match(s, subj);

	return r ? supp_rule_where(r) : "none";
}

UNIT_TEST(grammar_errors_name_file_and_line)
{
	static const struct {
		const char *text, *error;
	} bad[] = {
		{ "hazzard site=0123456789abcdef", "t.supp:1: unknown kind 'hazzard'" },
		{ "# ok\nhazard sight=x", "t.supp:2: unknown key in 'sight=x'" },
		{ "hazard site=123", "t.supp:1: 'site=123' is no site id" },
		{ "hazard fork=", "t.supp:1: fork= needs a value" },
		{ "hazard fork", "t.supp:1: expected KEY=GLOB, found 'fork'" },
		{ "any lock=\"a b", "t.supp:1: a quote is not closed" },
		{ "hazard wait=x", "t.supp:1: wait= is where a deadlocked child waits" },
		{ "hazard exe=\x1b[31m", NULL },	/* fine: a glob may hold anything */
	};
	char err[512];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct suppressions *s = rules(bad[i].text, err, sizeof(err));

		if (!bad[i].error) {
			CHECK(s != NULL);
			supp_free(s);
			continue;
		}
		CHECK(s == NULL);
		if (strncmp(err, bad[i].error, strlen(bad[i].error)))
			FAIL("'%s': error '%s', not '%s...'", bad[i].text, err, bad[i].error);
	}
	/* a control byte in a bad token never reaches the terminal raw */
	CHECK(!rules("hazard \x1b=x", err, sizeof(err)));
	CHECK(!strchr(err, '\x1b'));
}

UNIT_TEST(load_reads_a_file_comments_and_quotes)
{
	char path[64], err[512];
	struct suppressions *s = supp_new();
	FILE *f;

	snprintf(path, sizeof(path), "/tmp/fh-supp-%d", (int)getpid());
	f = fopen(path, "w");
	CHECK(f && s);
	fputs("# a comment\n\n   \nhazard site=0123456789ABCDEF  # trailing comment\n"
	      "any fork=\"a # b\" lock=\"say \\\"hi\\\"\"\n", f);
	fclose(f);
	CHECK_INT(supp_load(s, path, err, sizeof(err)), 0);
	CHECK_INT(supp_count(s), 2);
	CHECK(supp_names(s, SUPP_FORK) && supp_names(s, SUPP_LOCK) && !supp_names(s, SUPP_WAIT));
	f = fopen(path, "a");
	CHECK(f);
	fputs("deadlock wait\n", f);
	fclose(f);
	CHECK_INT(supp_load(s, path, err, sizeof(err)), -1);
	CHECK(strstr(err, ":6: expected KEY=GLOB"));
	unlink(path);
	CHECK_INT(supp_load(s, path, err, sizeof(err)), -1);
	CHECK(strstr(err, "cannot read the suppressions: No such file"));
	supp_free(s);
}

UNIT_TEST(site_exe_and_kind)
{
	char err[256];
	struct suppressions *s = rules("hazard site=00000000000000AB\n"
				       "deadlock exe=*/bin/worker*\n"
				       "any exe=runner\n", err, sizeof(err));
	struct supp_subject h = { .kind = SUPP_HAZARD, .site = "00000000000000ab" };

	CHECK(s);
	CHECK_STR(match(s, &h), "t.supp:1");		/* ids in any case */
	h.site = "00000000000000ac";
	CHECK_STR(match(s, &h), "none");
	/* exe: the path, or the file name when the path is not known */
	h.exe = "/usr/bin/worker-3";
	CHECK_STR(match(s, &h), "none");		/* a deadlock rule */
	h.kind = SUPP_DEADLOCK;
	CHECK_STR(match(s, &h), "t.supp:2");
	h.exe = NULL;
	h.exe_name = "runner";
	CHECK_STR(match(s, &h), "t.supp:3");
	h.kind = SUPP_HAZARD;
	CHECK_STR(match(s, &h), "t.supp:3");
	supp_free(s);
}

UNIT_TEST(native_frames_by_function_file_line_and_inlined)
{
	static struct supp_frames fork, lock;
	char err[256];
	struct suppressions *s = rules("hazard fork=spawn_* lock=\"cache_refresh (demo.c:32)\"\n"
				       "hazard lock=*/src/pool.c:1*\n"
				       "hazard lock=inlined_helper\n", err, sizeof(err));
	struct supp_subject h = { .kind = SUPP_HAZARD, .stack = { &fork, &lock } };

	CHECK(s);
	supp_frames_init(&fork);
	supp_frames_init(&lock);
	supp_frames_add_native(&fork, native("__fork", NULL, 0));
	supp_frames_add_native(&fork, native("spawn_reporter", "/w/demo/demo.c", 58));
	supp_frames_add_native(&lock, native("cache_refresh", "/w/demo/demo.c", 32));
	CHECK_STR(match(s, &h), "t.supp:1");
	/* every condition must hold: another lock site does not match rule 1 */
	supp_frames_reset(&lock);
	supp_frames_add_native(&lock, native("pool_take", "/w/src/pool.c", 120));
	CHECK_STR(match(s, &h), "t.supp:2");
	supp_frames_reset(&lock);
	supp_frames_add_native(&lock, native(NULL, NULL, 0));	/* unknown: nothing to match */
	CHECK_STR(match(s, &h), "none");
	/* an inlined call is matched by its own name */
	native("outer", "/w/a.c", 5);
	frame.n_inline = 1;
	snprintf(frame.inl[0].symbol, sizeof(frame.inl[0].symbol), "inlined_helper");
	snprintf(frame.inl[0].file, sizeof(frame.inl[0].file), "/w/a.h");
	frame.inl[0].line = 9;
	supp_frames_add_native(&lock, &frame);
	CHECK_STR(match(s, &h), "t.supp:3");
	/* an unknown stack (NULL) never matches a rule naming it */
	h.stack[SUPP_LOCK] = NULL;
	CHECK_STR(match(s, &h), "none");
	supp_frames_free(&fork);
	supp_frames_free(&lock);
	supp_free(s);
}

/* Python frames, as the pipeline will give them for a lock record's and a
 * fork's "py_stack": {"file","line","function"}. */
UNIT_TEST(python_frames_as_function_file_line)
{
	static struct supp_frames fork, lock;
	char err[256];
	struct suppressions *s = rules(
		"hazard lock=\"emit (*/logging/__init__.py:*)\"\n"
		"hazard fork=*/app/worker.py:37\n"
		"any fork=Pool._repopulate_workers\n", err, sizeof(err));
	struct supp_subject h = { .kind = SUPP_HAZARD, .stack = { &fork, &lock } };

	CHECK(s);
	supp_frames_init(&fork);
	supp_frames_init(&lock);
	supp_frames_add_native(&lock, native("PyThread_acquire_lock_timed", NULL, 0));
	supp_frames_add_python(&lock, "/usr/lib/python3.11/logging/__init__.py", 1088, "emit");
	supp_frames_add_python(&fork, "/srv/app/main.py", 12, "main");
	CHECK_STR(match(s, &h), "t.supp:1");
	supp_frames_reset(&lock);
	supp_frames_add_python(&lock, "/srv/app/cache.py", 40, "Cache.refresh");
	CHECK_STR(match(s, &h), "none");
	supp_frames_add_python(&fork, "/srv/app/worker.py", 37, "do_fork");
	CHECK_STR(match(s, &h), "t.supp:2");
	supp_frames_reset(&fork);
	supp_frames_add_python(&fork, "/usr/lib/python3.11/multiprocessing/pool.py", 0,
			       "Pool._repopulate_workers");
	CHECK_STR(match(s, &h), "t.supp:3");	/* a line not known: the function still */
	supp_frames_free(&fork);
	supp_frames_free(&lock);
	supp_free(s);
}

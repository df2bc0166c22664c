// SPDX-License-Identifier: GPL-2.0
#include <ctype.h>
#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"
#include "suppress.h"
#include "symbolize.h"

#define RULE_CONDS	16	/* KEY=GLOB per rule */
#define WHERE_LEN	320

enum supp_key { KEY_SITE, KEY_EXE, KEY_FORK, KEY_LOCK, KEY_WAIT, KEYS };

static const char *const key_names[KEYS] = { "site", "exe", "fork", "lock", "wait" };

/* The stack each frame key names. */
static const enum supp_stack key_stack[KEYS] = {
	[KEY_FORK] = SUPP_FORK, [KEY_LOCK] = SUPP_LOCK, [KEY_WAIT] = SUPP_WAIT,
};

struct supp_cond {
	enum supp_key key;
	char *value;
};

struct supp_rule {
	unsigned int kinds;
	struct supp_cond cond[RULE_CONDS];
	int nconds;
	char where[WHERE_LEN];
};

struct suppressions {
	struct supp_rule *rules;
	size_t n, cap;
	bool names[SUPP_STACKS];
};

/* ---- frames as strings ---------------------------------------------------------- */

void supp_frames_init(struct supp_frames *l)
{
	memset(l, 0, sizeof(*l));
	strbuf_init(&l->text);
}

void supp_frames_reset(struct supp_frames *l)
{
	strbuf_reset(&l->text);
	l->n = 0;
}

void supp_frames_free(struct supp_frames *l)
{
	strbuf_free(&l->text);
	l->n = 0;
}

__attribute__((format(printf, 2, 3)))
static void add(struct supp_frames *l, const char *fmt, ...)
{
	char s[2048];
	va_list ap;
	int n;

	if (l->n == SUPP_STRINGS_MAX)
		return;
	va_start(ap, fmt);
	n = vsnprintf(s, sizeof(s), fmt, ap);
	va_end(ap);
	if (n <= 0)
		return;
	l->at[l->n++] = l->text.len;
	strbuf_put(&l->text, s, strlen(s) + 1);	/* its NUL too */
}

static const char *base_name(const char *path)
{
	const char *b = strrchr(path, '/');

	return b ? b + 1 : path;
}

/* A function at a place: every form a rule may name it by. */
static void add_place(struct supp_frames *l, const char *function, const char *file,
		      unsigned int line)
{
	bool where = file && file[0] && line;

	if (function && function[0])
		add(l, "%s", function);
	if (!where)
		return;
	add(l, "%s:%u", file, line);
	if (strchr(file, '/'))
		add(l, "%s:%u", base_name(file), line);
	if (!function || !function[0])
		return;
	add(l, "%s (%s:%u)", function, file, line);
	if (strchr(file, '/'))
		add(l, "%s (%s:%u)", function, base_name(file), line);
}

void supp_frames_add_native(struct supp_frames *l, const struct fh_frame *f)
{
	add_place(l, f->known ? f->symbol : NULL, f->file, f->line);
	for (int k = 0; k < f->n_inline && k < FH_INLINE_MAX; k++)
		add_place(l, f->inl[k].symbol, f->inl[k].file, f->inl[k].line);
}

void supp_frames_add_python(struct supp_frames *l, const char *file, unsigned int line,
			    const char *function)
{
	add_place(l, function, file, line);
}

/* ---- rules -------------------------------------------------------------------------- */

struct suppressions *supp_new(void)
{
	return calloc(1, sizeof(struct suppressions));
}

void supp_free(struct suppressions *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->n; i++)
		for (int c = 0; c < s->rules[i].nconds; c++)
			free(s->rules[i].cond[c].value);
	free(s->rules);
	free(s);
}

size_t supp_count(const struct suppressions *s)
{
	return s ? s->n : 0;
}

bool supp_names(const struct suppressions *s, enum supp_stack which)
{
	return s && s->names[which];
}

const char *supp_rule_where(const struct supp_rule *r)
{
	return r->where;
}

__attribute__((format(printf, 5, 6)))
static int fail(char *err, size_t size, const char *file, int line, const char *fmt, ...)
{
	char why[512], f[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	term_escape(file, (size_t)-1, f, sizeof(f));
	if (line > 0)
		snprintf(err, size, "%s:%d: %s", f, line, why);
	else
		snprintf(err, size, "%s: %s", f, why);
	return -1;
}

/* The next token of *p: a word up to white space, with "quoted" parts
 * unquoted into out. Returns 1, 0 at the end or a comment, -1 (*why). */
static int next_token(const char **p, char *out, size_t size, const char **why)
{
	const char *s = *p;
	size_t n = 0;
	bool quoted = false;

	while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
		s++;
	if (!*s || *s == '#') {
		*p = s;
		return 0;
	}
	while (*s && (quoted || (*s != ' ' && *s != '\t' && *s != '\r' && *s != '\n'))) {
		char c = *s++;

		if (c == '"') {
			quoted = !quoted;
			continue;
		}
		if (quoted && c == '\\' && (*s == '"' || *s == '\\'))
			c = *s++;
		if (n + 1 >= size) {
			*why = "a value is too long";
			return -1;
		}
		out[n++] = c;
	}
	if (quoted) {
		*why = "a quote is not closed";
		return -1;
	}
	out[n] = '\0';
	*p = s;
	return 1;
}

static bool is_site_id(const char *v)
{
	size_t n = strlen(v);

	if (n != 16)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!isxdigit((unsigned char)v[i]))
			return false;
	return true;
}

/* One KEY=GLOB token into r. */
static int parse_cond(struct supp_rule *r, const char *tok, const char *file, int line,
		      char *err, size_t errsize)
{
	const char *eq = strchr(tok, '=');
	char key[32], safe[160];
	int k;

	term_escape(tok, (size_t)-1, safe, sizeof(safe));
	if (!eq || eq == tok || (size_t)(eq - tok) >= sizeof(key))
		return fail(err, errsize, file, line, "expected KEY=GLOB, found '%s'", safe);
	memcpy(key, tok, (size_t)(eq - tok));
	key[eq - tok] = '\0';
	for (k = 0; k < KEYS; k++)
		if (!strcmp(key, key_names[k]))
			break;
	if (k == KEYS)
		return fail(err, errsize, file, line,
			    "unknown key in '%s' (site, exe, fork, lock or wait)", safe);
	if (!eq[1])
		return fail(err, errsize, file, line, "%s= needs a value", key);
	if (k == KEY_SITE && !is_site_id(eq + 1))
		return fail(err, errsize, file, line,
			    "'%s' is no site id (16 hexadecimal digits, as in \"site\")", safe);
	if (k == KEY_WAIT && !(r->kinds & SUPP_DEADLOCK))
		return fail(err, errsize, file, line,
			    "wait= is where a deadlocked child waits: for deadlock (or any) rules");
	if (r->nconds == RULE_CONDS)
		return fail(err, errsize, file, line, "more than %d conditions", RULE_CONDS);
	r->cond[r->nconds].key = (enum supp_key)k;
	r->cond[r->nconds].value = strdup(eq + 1);
	if (!r->cond[r->nconds].value)
		return fail(err, errsize, file, line, "out of memory");
	if (k == KEY_SITE)
		for (char *c = r->cond[r->nconds].value; *c; c++)
			*c = (char)tolower((unsigned char)*c);
	r->nconds++;
	return 0;
}

static void rule_free(struct supp_rule *r)
{
	for (int c = 0; c < r->nconds; c++)
		free(r->cond[c].value);
}

int supp_parse_line(struct suppressions *s, const char *file, int line, const char *text,
		    char *err, size_t errsize)
{
	struct supp_rule r = { 0 };
	char tok[SUPP_LINE_MAX + 1], safe[160];
	const char *p = text, *why = NULL;
	int got;

	if (strlen(text) > SUPP_LINE_MAX)
		return fail(err, errsize, file, line, "line longer than %d bytes", SUPP_LINE_MAX);
	got = next_token(&p, tok, sizeof(tok), &why);
	if (got <= 0)
		return got < 0 ? fail(err, errsize, file, line, "%s", why) : 0;
	if (!strcmp(tok, "hazard"))
		r.kinds = SUPP_HAZARD;
	else if (!strcmp(tok, "deadlock"))
		r.kinds = SUPP_DEADLOCK;
	else if (!strcmp(tok, "any"))
		r.kinds = SUPP_HAZARD | SUPP_DEADLOCK;
	else
		return fail(err, errsize, file, line,
			    "unknown kind '%s' (hazard, deadlock or any, then KEY=GLOB...)",
			    term_escape(tok, (size_t)-1, safe, sizeof(safe)));
	while ((got = next_token(&p, tok, sizeof(tok), &why)) > 0) {
		if (parse_cond(&r, tok, file, line, err, errsize)) {
			rule_free(&r);
			return -1;
		}
	}
	if (got < 0) {
		rule_free(&r);
		return fail(err, errsize, file, line, "%s", why);
	}
	if (s->n == SUPP_MAX_RULES) {
		rule_free(&r);
		return fail(err, errsize, file, line, "more than %d rules", SUPP_MAX_RULES);
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 16;
		struct supp_rule *nr = realloc(s->rules, cap * sizeof(*nr));

		if (!nr) {
			rule_free(&r);
			return fail(err, errsize, file, line, "out of memory");
		}
		s->rules = nr;
		s->cap = cap;
	}
	snprintf(r.where, sizeof(r.where), "%s:%d", file, line);
	for (int c = 0; c < r.nconds; c++)
		if (r.cond[c].key >= KEY_FORK)
			s->names[key_stack[r.cond[c].key]] = true;
	s->rules[s->n++] = r;
	return 0;
}

int supp_load(struct suppressions *s, const char *path, char *err, size_t errsize)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int lineno = 0, rc = 0;

	if (!f)
		return fail(err, errsize, path, 0, "cannot read the suppressions: %s", strerror(errno));
	while ((n = getline(&line, &cap, f)) > 0) {
		lineno++;
		if (memchr(line, '\0', (size_t)n)) {
			rc = fail(err, errsize, path, lineno, "a NUL byte: not a text file");
			break;
		}
		if ((size_t)n > SUPP_LINE_MAX + 1) {
			rc = fail(err, errsize, path, lineno, "line longer than %d bytes",
				  SUPP_LINE_MAX);
			break;
		}
		rc = supp_parse_line(s, path, lineno, line, err, errsize);
		if (rc)
			break;
	}
	if (!rc && ferror(f))
		rc = fail(err, errsize, path, 0, "cannot read the suppressions: %s", strerror(errno));
	free(line);
	fclose(f);
	return rc;
}

/* ---- matching -------------------------------------------------------------------- */

static bool any_frame(const struct supp_frames *l, const char *glob)
{
	if (!l)
		return false;
	for (int i = 0; i < l->n; i++)
		if (!fnmatch(glob, l->text.buf + l->at[i], 0))
			return true;
	return false;
}

static bool cond_holds(const struct supp_cond *c, const struct supp_subject *subj)
{
	switch (c->key) {
	case KEY_SITE:
		return subj->site && !strcmp(subj->site, c->value);
	case KEY_EXE:
		return (subj->exe && !fnmatch(c->value, subj->exe, 0)) ||
		       (subj->exe_name && !fnmatch(c->value, subj->exe_name, 0));
	case KEY_FORK:
	case KEY_LOCK:
	case KEY_WAIT:
		return any_frame(subj->stack[key_stack[c->key]], c->value);
	case KEYS:
		break;
	}
	return false;
}

const struct supp_rule *supp_match(const struct suppressions *s, const struct supp_subject *subj)
{
	if (!s)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
		const struct supp_rule *r = &s->rules[i];
		int c;

		if (!(r->kinds & subj->kind))
			continue;
		for (c = 0; c < r->nconds && cond_holds(&r->cond[c], subj); c++)
			;
		if (c == r->nconds)
			return r;
	}
	return NULL;
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The unit tests' harness, header only. A case is
 *
 *	UNIT_TEST(name)
 *	{
 *		CHECK(x == 1);
 *		CHECK_STR(buf, "expected");
 *	}
 *
 * Cases register themselves (no list to forget) and run in source order;
 * each prints "PASS name" or "FAIL name: reason" on one line, the reason
 * being the first failed check with its line. A failed check ends its case,
 * so later checks never run on a state the failure already broke. A case
 * that checked nothing fails: a test that asserts nothing is a bug. SKIP
 * ends a case that cannot run here ("SKIP name: reason"): only for what
 * the machine or the user truly lacks (root, for a case that needs it). The
 * program exits 1 if any case failed. An argument runs only the cases whose
 * name contains it.
 */
#ifndef FH_UNIT_H
#define FH_UNIT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct unit_case {
	const char *name;
	void (*fn)(void);
	int line;
	struct unit_case *next;
};

static struct unit_case *unit_cases;
static bool unit_failed;	/* the running case failed */
static bool unit_skipped;	/* the running case cannot run here */
static int unit_checks;		/* checks made by the running case */
static char unit_reason[1024];

static inline void unit_register(struct unit_case *c)
{
	struct unit_case **pp = &unit_cases;

	/* constructors run in no promised order: sort by line */
	while (*pp && (*pp)->line < c->line)
		pp = &(*pp)->next;
	c->next = *pp;
	*pp = c;
}

#define UNIT_TEST(name)								\
	static void unit_fn_##name(void);					\
	static struct unit_case unit_case_##name = { #name, unit_fn_##name, __LINE__, NULL }; \
	__attribute__((constructor)) static void unit_reg_##name(void)		\
	{									\
		unit_register(&unit_case_##name);				\
	}									\
	static void unit_fn_##name(void)

__attribute__((format(printf, 2, 3)))
static inline void unit_fail(int line, const char *fmt, ...)
{
	char msg[sizeof(unit_reason) - 32];
	va_list ap;

	if (unit_failed)
		return;		/* the first failure is the one to read */
	unit_failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	/* the runner reads one line per case, and a terminal shows it */
	for (char *p = msg; *p; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	snprintf(unit_reason, sizeof(unit_reason), "line %d: %s", line, msg);
}

/* Bytes shown unambiguously inside a reason: C-like escapes, quotes around. */
static inline const char *unit_show(const char *s, size_t n, char *buf, size_t size)
{
	size_t o = 0;

	if (!s)
		return "NULL";
	if (n == (size_t)-1)
		n = strlen(s);
	buf[o++] = '"';
	for (size_t i = 0; i < n && o + 6 < size; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '"' || c == '\\')
			o += (size_t)snprintf(buf + o, size - o, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
		else
			buf[o++] = (char)c;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static inline bool unit_str_eq(int line, const char *expr, const char *got, size_t got_len,
			const char *want, size_t want_len)
{
	char g[400], w[400];

	unit_checks++;
	if (got && want && got_len == want_len && memcmp(got, want, got_len) == 0)
		return true;
	unit_fail(line, "%s: got %s, want %s", expr, unit_show(got, got_len, g, sizeof(g)),
		  unit_show(want, want_len, w, sizeof(w)));
	return false;
}

#define CHECK(cond)								\
	do {									\
		unit_checks++;							\
		if (!(cond)) {							\
			unit_fail(__LINE__, "CHECK(%s)", #cond);		\
			return;							\
		}								\
	} while (0)

/* Integers, shown on failure (as long long: fine for every value tested). */
#define CHECK_INT(got, want)							\
	do {									\
		long long unit_g_ = (long long)(got), unit_w_ = (long long)(want); \
		unit_checks++;							\
		if (unit_g_ != unit_w_) {					\
			unit_fail(__LINE__, "%s: got %lld, want %lld", #got, unit_g_, unit_w_); \
			return;							\
		}								\
	} while (0)

#define CHECK_STR(got, want)							\
	do {									\
		const char *unit_g_ = (got), *unit_w_ = (want);			\
		if (!unit_str_eq(__LINE__, #got, unit_g_, unit_g_ ? strlen(unit_g_) : 0, \
				 unit_w_, unit_w_ ? strlen(unit_w_) : 0))	\
			return;							\
	} while (0)

/* Byte strings that may hold NULs: got has got_len bytes, want is a literal. */
#define CHECK_MEM(got, got_len, want)						\
	do {									\
		if (!unit_str_eq(__LINE__, #got, (got), (got_len), (want), sizeof(want) - 1)) \
			return;							\
	} while (0)

/* The case cannot run here: say why and end it. */
#define SKIP(...)								\
	do {									\
		unit_skipped = true;						\
		snprintf(unit_reason, sizeof(unit_reason), __VA_ARGS__);	\
		return;								\
	} while (0)

/* A failure found by a helper outside CHECK: record it and end the case. */
#define FAIL(...)								\
	do {									\
		unit_checks++;							\
		unit_fail(__LINE__, __VA_ARGS__);				\
		return;								\
	} while (0)

/*
 * Redirect stdout and stderr into temporary files (the code under test
 * prints messages; the runner must see only PASS/FAIL lines) and give back
 * what was written to each.
 */
struct unit_capture {
	int saved[2];
	FILE *tmp[2];
};

static inline bool unit_capture_begin(struct unit_capture *c)
{
	int i;

	fflush(stdout);
	fflush(stderr);
	for (i = 0; i < 2; i++) {
		c->tmp[i] = tmpfile();
		c->saved[i] = dup(STDOUT_FILENO + i);
		if (!c->tmp[i] || c->saved[i] < 0 ||
		    dup2(fileno(c->tmp[i]), STDOUT_FILENO + i) < 0)
			break;
	}
	if (i == 2)
		return true;
	/* undo what was done: the harness's own output must keep working */
	for (; i >= 0; i--) {
		if (c->saved[i] >= 0) {
			dup2(c->saved[i], STDOUT_FILENO + i);
			close(c->saved[i]);
		}
		if (c->tmp[i])
			fclose(c->tmp[i]);
	}
	return false;
}

/* Restores stdout and stderr; out and err get what was written, NUL-terminated. */
static inline void unit_capture_end(struct unit_capture *c, char *out, size_t outsz, char *err,
				    size_t errsz)
{
	char *buf[2] = { out, err };
	size_t size[2] = { outsz, errsz };

	fflush(stdout);
	fflush(stderr);
	for (int i = 0; i < 2; i++) {
		size_t n;

		dup2(c->saved[i], STDOUT_FILENO + i);
		close(c->saved[i]);
		rewind(c->tmp[i]);
		n = fread(buf[i], 1, size[i] - 1, c->tmp[i]);
		buf[i][n] = '\0';
		fclose(c->tmp[i]);
	}
}

int main(int argc, char **argv)
{
	int failed = 0, ran = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	for (struct unit_case *c = unit_cases; c; c = c->next) {
		if (argc > 1 && !strstr(c->name, argv[1]))
			continue;
		unit_failed = unit_skipped = false;
		unit_checks = 0;
		unit_reason[0] = '\0';
		c->fn();
		if (!unit_failed && !unit_skipped && unit_checks == 0)
			unit_fail(c->line, "the case checked nothing");
		if (unit_skipped && !unit_failed) {
			printf("SKIP %s: %s\n", c->name, unit_reason);
		} else if (unit_failed) {
			printf("FAIL %s: %s\n", c->name, unit_reason);
			failed++;
		} else {
			printf("PASS %s\n", c->name);
		}
		ran++;
	}
	if (!ran) {
		printf("FAIL %s: no case matched\n", argc > 1 ? argv[1] : "(all)");
		return 1;
	}
	return failed ? 1 : 0;
}

#endif

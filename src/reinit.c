// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <string.h>
#include "lockabi.h"
#include "lockword.h"
#include "pyrt.h"
#include "reinit.h"

const char REINIT_WHY_WORD[] = "its lock word re-initialised";
const char REINIT_WHY_PYTHON[] = "CPython's _at_fork_reinit";

bool reinit_add(struct reinit_set *s, uint64_t addr, const char *why)
{
	if (reinit_has(s, addr, NULL))
		return true;
	if (s->n >= REINIT_MAX)
		return false;
	s->addr[s->n] = addr;
	s->why[s->n] = why;
	s->n++;
	return true;
}

bool reinit_has(const struct reinit_set *s, uint64_t addr, const char **why)
{
	for (uint32_t i = 0; i < s->n && i < REINIT_MAX; i++) {
		if (s->addr[i] != addr)
			continue;
		if (why)
			*why = s->why[i];
		return true;
	}
	return false;
}

bool reinit_word_changed(const struct fh_lock_watch *w, uint32_t word)
{
	/* the TID bits: a robust or PI word may carry FUTEX_WAITERS too */
	return (word & FUTEX_TID_MASK) != w->frozen;
}

int reinit_read_words(pid_t child, const struct fh_lock_watch *w, uint32_t n,
		      struct reinit_set *out)
{
	int read = 0;

	for (uint32_t i = 0; i < n && i < FH_CHILD_WATCH; i++) {
		uint32_t word;
		ssize_t got = lockword_read(child, w[i].addr + w[i].word, &word, sizeof(word));

		if (got == -ESRCH)
			return read;
		if (got != (ssize_t)sizeof(word))
			continue;
		read++;
		if (reinit_word_changed(&w[i], word))
			reinit_add(out, w[i].addr, REINIT_WHY_WORD);
	}
	return read;
}

/*
 * The standard library's locks re-created in every child by its own hook
 * (os.register_at_fork(after_in_child=...)) and taken by other threads, by
 * the innermost Python frame that took them. logging: Handler.acquire() took
 * a handler's lock up to 3.12, `with self.lock:` in Handler.handle() from
 * 3.13 (3.10 names functions without their class). The module's own lock is
 * no such case: its hook takes it before the fork, in the forking thread.
 */
static const struct {
	const char *file;		/* the module's file, by its path's end */
	const char *function[3];	/* qualified (3.11+) or plain names */
	const char *name;
} stdlib_locks[] = {
	{ "/logging/__init__.py", { "Handler.acquire", "Handler.handle", "acquire" },
	  "logging handler lock" },
};

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);

	return n >= k && !strcmp(s + n - k, suffix);
}

const char *reinit_stdlib_lock(const struct pyrt_frame *frames, int n)
{
	const struct pyrt_frame *f = n > 0 ? &frames[0] : NULL;

	if (!f)
		return NULL;
	for (size_t i = 0; i < sizeof(stdlib_locks) / sizeof(stdlib_locks[0]); i++) {
		if (!ends_with(f->file, stdlib_locks[i].file))
			continue;
		for (int k = 0; k < 3 && stdlib_locks[i].function[k]; k++)
			if (!strcmp(f->function, stdlib_locks[i].function[k]))
				return stdlib_locks[i].name;
	}
	return NULL;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * The verdict's pure parts: hazard.c's roles (own, foreign, shared) and its
 * mitigated rule, reinit.c's evidence (a set, a lock word's change, the
 * standard library's at-fork locks known by crafted Python frames: the
 * resolved form branch `python` records per acquisition), and every text
 * of advice.c's table.
 */
#include <pthread.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include "advice.h"
#include "forkhazard.h"
#include "hazard.h"
#include "lockabi.h"
#include "pyrt.h"
#include "reinit.h"
#include "unit.h"

static struct fh_fork_event ev;

/* A fork with a foreign lock at 0x1000, one of its own at 0x2000, and one
 * in shared memory at 0x3000. */
static void three_locks(void)
{
	memset(&ev, 0, sizeof(ev));
	ev.nr_locks = 3;
	ev.nr_own = 1;
	ev.nr_shared = 1;
	ev.locks[0] = (struct fh_lock){ .addr = 0x1000, .kind = FH_KIND_MUTEX };
	ev.locks[1] = (struct fh_lock){ .addr = 0x2000, .kind = FH_KIND_MUTEX,
					.flags = FH_LOCK_OWN | FH_LOCK_SHARED };
	ev.locks[2] = (struct fh_lock){ .addr = 0x3000, .kind = FH_KIND_SEM,
					.flags = FH_LOCK_SHARED };
}

UNIT_TEST(roles_own_foreign_shared)
{
	three_locks();
	CHECK_INT(hazard_lock_role(&ev, &ev.locks[0]), HAZARD_LOCK_FOREIGN);
	/* the forking thread's own lock stays its own, shared memory or not */
	CHECK_INT(hazard_lock_role(&ev, &ev.locks[1]), HAZARD_LOCK_OWN);
	CHECK_INT(hazard_lock_role(&ev, &ev.locks[2]), HAZARD_LOCK_SHARED);
	CHECK_INT(hazard_foreign_locks(&ev), 1);
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), 1);	/* the kernel's count agrees */
	CHECK(hazard_fork(&ev));
	/* a shared lock alone is no hazard */
	ev.locks[0].flags = FH_LOCK_SHARED;
	ev.nr_shared = 2;
	CHECK(!hazard_fork(&ev));
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), 0);
	/* a lock whose memory could not be looked up stays a hazard */
	ev.locks[0].flags = FH_LOCK_SHARED_UNKNOWN;
	ev.nr_shared = 1;
	CHECK(hazard_fork(&ev));
}

UNIT_TEST(mitigated_when_every_foreign_lock_is_re_created)
{
	struct reinit_set ri = { 0 };

	three_locks();
	CHECK(!hazard_mitigated(&ev, NULL));
	CHECK(!hazard_mitigated(&ev, &ri));
	CHECK(reinit_add(&ri, 0x2000, REINIT_WHY_PYTHON));	/* own: not enough */
	CHECK(!hazard_mitigated(&ev, &ri));
	CHECK(reinit_add(&ri, 0x1000, REINIT_WHY_WORD));
	CHECK(hazard_mitigated(&ev, &ri));
	/* locks the kernel omitted were never seen re-created */
	ev.locks_omitted = 1;
	CHECK(!hazard_mitigated(&ev, &ri));
	/* no hazard, nothing to mitigate */
	ev.locks_omitted = 0;
	ev.locks[0].flags = FH_LOCK_OWN;
	CHECK(!hazard_mitigated(&ev, &ri));
}

UNIT_TEST(reinit_set_is_bounded_and_keeps_how)
{
	struct reinit_set ri = { 0 };
	const char *why = NULL;

	for (uint64_t a = 1; a <= REINIT_MAX; a++)
		CHECK(reinit_add(&ri, a * 64, REINIT_WHY_WORD));
	CHECK(reinit_add(&ri, 64, REINIT_WHY_PYTHON));		/* known: kept as it was */
	CHECK(!reinit_add(&ri, 0x999, REINIT_WHY_WORD));	/* full */
	CHECK_INT(ri.n, REINIT_MAX);
	CHECK(reinit_has(&ri, 64, &why) && why == REINIT_WHY_WORD);
	CHECK(!reinit_has(&ri, 0x999, NULL));
}

UNIT_TEST(a_word_that_no_longer_names_the_holder)
{
	struct fh_lock_watch w = { .addr = 0x1000, .frozen = 4242, .word = GLIBC_MUTEX_OWNER };

	CHECK(!reinit_word_changed(&w, 4242));			/* the parent's copy */
	CHECK(!reinit_word_changed(&w, 4242 | FUTEX_WAITERS));	/* ...with a waiter */
	CHECK(reinit_word_changed(&w, 0));			/* initialised */
	CHECK(reinit_word_changed(&w, 777));			/* and taken by the child */
}

/* The child's copies, read as userspace reads them: a forked child of this
 * test whose handler re-initialised one of two held mutexes. */
UNIT_TEST(words_read_in_a_living_child)
{
	pthread_mutex_t *m = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
				  -1, 0);
	struct fh_lock_watch w[2];
	struct reinit_set ri = { 0 };
	int go[2];
	pid_t child;

	CHECK(m != MAP_FAILED && !pipe(go));
	pthread_mutex_init(&m[0], NULL);
	pthread_mutex_init(&m[1], NULL);
	pthread_mutex_lock(&m[0]);
	pthread_mutex_lock(&m[1]);
	for (int i = 0; i < 2; i++)
		w[i] = (struct fh_lock_watch){ .addr = (uint64_t)(uintptr_t)&m[i],
					       .frozen = (uint32_t)gettid(),
					       .word = GLIBC_MUTEX_OWNER };
	child = fork();
	if (child == 0) {
		char c;

		pthread_mutex_init(&m[1], NULL);	/* as a pthread_atfork handler does */
		close(go[1]);
		(void)!read(go[0], &c, 1);	/* until the parent has looked */
		_exit(0);
	}
	close(go[0]);
	for (int tries = 0; tries < 1000 && !ri.n; tries++) {
		CHECK_INT(reinit_read_words(child, w, 2, &ri), 2);
		if (!ri.n)
			usleep(1000);
	}
	close(go[1]);
	waitpid(child, NULL, 0);
	CHECK_INT(ri.n, 1);
	CHECK(reinit_has(&ri, w[1].addr, NULL) && !reinit_has(&ri, w[0].addr, NULL));
	/* a child that is gone shows nothing */
	CHECK_INT(reinit_read_words(child, w, 2, &ri), 0);
	pthread_mutex_unlock(&m[0]);
	pthread_mutex_unlock(&m[1]);
	munmap(m, 4096);
}

/* A crafted frame, as pyrt_resolve gives it. */
static struct pyrt_frame frame(const char *file, const char *function, int line)
{
	struct pyrt_frame f = { .line = line };

	snprintf(f.file, sizeof(f.file), "%s", file);
	snprintf(f.function, sizeof(f.function), "%s", function);
	return f;
}

UNIT_TEST(stdlib_locks_by_the_frames_that_took_them)
{
	struct pyrt_frame fr[3];

	/* 3.11, 3.12: Handler.handle -> Handler.acquire -> lock.acquire() */
	fr[0] = frame("/usr/lib/python3.11/logging/__init__.py", "Handler.acquire", 922);
	fr[1] = frame("/usr/lib/python3.11/logging/__init__.py", "Handler.handle", 974);
	fr[2] = frame("/app/main.py", "work", 12);
	CHECK_STR(reinit_stdlib_lock(fr, 3), "logging handler lock");
	/* 3.10 names functions without their class */
	fr[0] = frame("/root/.pyenv/versions/3.10.13/lib/python3.10/logging/__init__.py", "acquire",
		      917);
	CHECK_STR(reinit_stdlib_lock(fr, 3), "logging handler lock");
	/* 3.13: `with self.lock:` in Handler.handle */
	fr[0] = frame("/usr/lib/python3.13/logging/__init__.py", "Handler.handle", 1025);
	CHECK_STR(reinit_stdlib_lock(fr, 3), "logging handler lock");
	/* the same names elsewhere, or the innermost frame a program's own */
	fr[0] = frame("/app/mylogging/__init__.py", "Handler.acquire", 5);
	CHECK(!reinit_stdlib_lock(fr, 3));
	fr[0] = frame("/app/main.py", "work", 12);
	fr[1] = frame("/usr/lib/python3.11/logging/__init__.py", "Handler.acquire", 922);
	CHECK(!reinit_stdlib_lock(fr, 2));
	/* logging's module lock is taken by its own hook before the fork: never foreign */
	fr[0] = frame("/usr/lib/python3.11/logging/__init__.py", "_acquireLock", 228);
	CHECK(!reinit_stdlib_lock(fr, 1));
	CHECK(!reinit_stdlib_lock(fr, 0));
}

/* ---- advice: each text of the table, and the choice ---------------------------------- */

/* Each advice: the case that chooses it, a site, and what its text must say. */
static const struct {
	struct advice_case c;
	enum advice_id id;
	const char *site;
	const char *says[6];
} advice_cases[] = {
	{ { .python_lock = true }, ADVICE_PYTHON_LOCK, NULL,
	  { "Another thread held this Python lock, and the child's copy stays locked.",
	    "multiprocessing.get_context(\"forkserver\")", "get_context(\"spawn\")",
	    "fork before starting threads", "os.register_at_fork(before=lock.acquire",
	    "re-creates it in the child" } },
	{ { .python_process = true }, ADVICE_PYTHON_NATIVE, "ext_worker+0x10 [ext.so]",
	  { "native lock of the interpreter or of an extension module (taken at "
	    "ext_worker+0x10 [ext.so]), and the child's copy stays locked.",
	    "get_context(\"forkserver\")", "get_context(\"spawn\")",
	    "fork before starting threads", "pthread_atfork handlers of its own" } },
	{ { 0 }, ADVICE_NATIVE, "cache_refresh+0x13 [demo] (demo.c:32)",
	  { "Another thread held this lock (taken at cache_refresh+0x13 [demo] (demo.c:32)), "
	    "and the child's copy stays locked.",
	    "Exec right after fork, or use posix_spawn", "pthread_atfork prepare handler",
	    "release or re-initialise it in the child handler",
	    "no lock-taking code (malloc, stdio, logging) between fork and exec" } },
};

UNIT_TEST(advice_every_text)
{
	char buf[2048];

	CHECK_INT(sizeof(advice_cases) / sizeof(advice_cases[0]), ADVICE_MAX);
	for (size_t i = 0; i < sizeof(advice_cases) / sizeof(advice_cases[0]); i++) {
		CHECK_INT(advice_choose(&advice_cases[i].c), advice_cases[i].id);
		advice_format(advice_cases[i].id, advice_cases[i].site, buf, sizeof(buf));
		for (int k = 0; k < 6 && advice_cases[i].says[k]; k++)
			if (!strstr(buf, advice_cases[i].says[k]))
				FAIL("advice %d lacks \"%s\": %s", (int)advice_cases[i].id,
				     advice_cases[i].says[k], buf);
	}
	/* bounded */
	CHECK(strlen(advice_format(ADVICE_NATIVE, "x", buf, 40)) == 39);
}

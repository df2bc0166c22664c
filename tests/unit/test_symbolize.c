// SPDX-License-Identifier: GPL-2.0
/*
 * symbolize.c and symmod.c on real processes: snapshots that outlive their
 * process, a parent gone before it was seen, PID reuse, the cache's bounds,
 * untrusted files, and the cost of a fork storm cold and warm.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <lzma.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "procfs.h"
#include "symbolize.h"
#include "symmod.h"
#include "unit.h"

#define STORM 40

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Functions whose names the tests look for, in this very binary. */
__attribute__((noinline)) int fh_marker_one(int x)
{
	return x * 7 + 1;
}

__attribute__((noinline)) int fh_marker_two(int x)
{
	return x * 5 + 3;
}

/* A child that just waits (killed by the test, or gone after 5 s). */
static pid_t spawn_waiter(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		sleep_ms(5000);
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static bool names(struct syms *s, pid_t pid, uint64_t addr, const char *want)
{
	struct fh_frame f;

	syms_resolve(s, pid, addr, &f);
	return f.known && !strcmp(f.symbol, want);
}

/* libc's getpid is __getpid too: either alias is its name. */
static bool names_getpid(struct syms *s, pid_t pid)
{
	struct fh_frame f;

	syms_resolve(s, pid, (uint64_t)(uintptr_t)getpid, &f);
	return f.known && (!strcmp(f.symbol, "getpid") || !strcmp(f.symbol, "__getpid")) &&
	       strstr(f.module, "libc.so");
}

/* ---- snapshots ----------------------------------------------------------- */

UNIT_TEST(snapshot_outlives_its_process)
{
	struct syms *s = syms_new(-1);
	pid_t pid = spawn_waiter();
	bool ok;

	CHECK(s && pid > 0);
	CHECK_INT(syms_note_process(s, pid), 0);
	reap(pid);
	CHECK(!procfs_pid_exists(pid));
	ok = names(s, pid, (uint64_t)(uintptr_t)fh_marker_one + 2, "fh_marker_one");
	syms_free(s);
	CHECK(ok);
}

/* A zombie is still in /proc, its memory gone: an address its snapshot
 * lacks makes no new snapshot, and costs none of the old one. */
UNIT_TEST(zombie_keeps_its_snapshot)
{
	struct syms *s = syms_new(-1);
	struct fh_frame f;
	pid_t pid = spawn_waiter();
	bool ok;

	CHECK(s && pid > 0);
	CHECK_INT(syms_note_process(s, pid), 0);
	kill(pid, SIGKILL);
	while (procfs_pid_exists(pid)) {	/* a zombie until reaped: wait for its state */
		struct fh_proc_stat st;

		if (procfs_read_stat(pid, 0, &st) || st.state == 'Z')
			break;
		sleep_ms(1);
	}
	syms_resolve(s, pid, 0x1000, &f);	/* in no mapping: looks again */
	CHECK(!f.has_module);
	ok = names(s, pid, (uint64_t)(uintptr_t)fh_marker_one + 2, "fh_marker_one");
	reap(pid);
	syms_free(s);
	CHECK(ok);
}

UNIT_TEST(no_snapshot_no_name)
{
	struct syms *s = syms_new(-1);
	pid_t pid = spawn_waiter();
	struct fh_frame f;

	CHECK(s && pid > 0);
	reap(pid);
	/* Never noted, and gone: nothing can be known, and nothing is made up. */
	syms_resolve(s, pid, (uint64_t)(uintptr_t)fh_marker_one, &f);
	syms_free(s);
	CHECK(!f.known && !f.has_module);
}

/* The parent forked and exited before anything noted it: its address space
 * is still the child's, until the child execs. */
UNIT_TEST(fork_of_a_parent_gone_borrows_the_child)
{
	struct syms *s = syms_new(-1);
	struct fh_proc_stat st;
	int fds[2];
	pid_t parent, child = 0, execd = 0, kids[2];
	int got_one, got_two;

	CHECK(s && pipe(fds) == 0);
	CHECK_INT(procfs_read_stat(getpid(), 0, &st), 0);
	parent = fork();
	if (parent == 0) {
		kids[0] = fork();
		if (kids[0] == 0) {
			sleep_ms(5000);
			_exit(0);
		}
		kids[1] = fork();
		if (kids[1] == 0) {
			execl("/bin/sleep", "sleep", "5", (char *)NULL);
			_exit(127);
		}
		(void)!write(fds[1], kids, sizeof(kids));
		_exit(0);
	}
	close(fds[1]);
	if (read(fds[0], kids, sizeof(kids)) == sizeof(kids)) {
		child = kids[0];
		execd = kids[1];
	}
	close(fds[0]);
	waitpid(parent, NULL, 0);
	sleep_ms(50);	/* the exec is done */
	got_one = syms_note_fork(s, parent, child, st.comm);
	got_two = names(s, parent, (uint64_t)(uintptr_t)fh_marker_two + 1, "fh_marker_two");
	syms_forget(s, parent);
	/* A child that exec'd carries another program: no borrowing from it. */
	CHECK_INT(syms_note_fork(s, parent, execd, st.comm), -ESRCH);
	reap(child);
	reap(execd);
	syms_free(s);
	CHECK(child > 0 && execd > 0);
	CHECK_INT(got_one, 0);
	CHECK(got_two);
}

/* Fork with the PID the kernel hands out next set to want (root only). */
static pid_t fork_with_pid(pid_t want, bool exec_sleep)
{
	for (int tries = 0; tries < 50; tries++) {
		FILE *f = fopen("/proc/sys/kernel/ns_last_pid", "we");
		pid_t pid;

		if (!f)
			return -1;
		fprintf(f, "%d", (int)want - 1);
		if (fclose(f))
			return -1;
		pid = fork();
		if (pid == 0) {
			if (exec_sleep)
				execl("/bin/sleep", "sleep", "5", (char *)NULL);
			sleep_ms(5000);
			_exit(0);
		}
		if (pid == want)
			return pid;
		reap(pid);
	}
	return -1;
}

UNIT_TEST(reused_pid_is_snapshotted_anew)
{
	struct syms *s;
	struct syms_stats st;
	pid_t first, second;
	bool ok;

	if (geteuid() != 0)
		SKIP("writes /proc/sys/kernel/ns_last_pid: needs root");
	s = syms_new(-1);
	CHECK(s);
	first = fork();
	if (first == 0) {
		execl("/bin/sleep", "sleep", "5", (char *)NULL);
		_exit(127);
	}
	sleep_ms(50);
	CHECK_INT(syms_note_process(s, first), 0);
	reap(first);
	/* Same PID, another process: this program, not sleep. */
	second = fork_with_pid(first, false);
	if (second < 0) {
		syms_free(s);
		FAIL("could not get PID %d back through ns_last_pid", (int)first);
	}
	CHECK_INT(syms_note_process(s, second), 0);
	ok = names(s, second, (uint64_t)(uintptr_t)fh_marker_one + 1, "fh_marker_one");
	syms_get_stats(s, &st);
	reap(second);
	syms_free(s);
	CHECK_INT(st.snapshots_stale, 1);
	CHECK(ok);
}

UNIT_TEST(snapshots_bounded_lru)
{
	struct syms_limits lim = { .max_snapshots = 2 };
	struct syms *s = syms_new_limits(-1, &lim);
	pid_t a = spawn_waiter(), b = spawn_waiter(), c = spawn_waiter();
	struct syms_stats st;

	CHECK(s);
	CHECK_INT(syms_note_process(s, a), 0);
	CHECK_INT(syms_note_process(s, b), 0);
	CHECK_INT(syms_note_process(s, a), 0);	/* a is used again: b is the oldest */
	CHECK_INT(syms_note_process(s, c), 0);
	syms_get_stats(s, &st);
	reap(a);
	reap(b);
	reap(c);
	/* b was evicted: gone now, its stacks can no longer be named */
	bool a_ok = names(s, a, (uint64_t)(uintptr_t)fh_marker_one, "fh_marker_one");
	bool b_ok = names(s, b, (uint64_t)(uintptr_t)fh_marker_one, "fh_marker_one");

	syms_free(s);
	CHECK_INT(st.snapshots_evicted, 1);
	CHECK_INT(st.snapshots_cached, 2);
	CHECK(a_ok);
	CHECK(!b_ok);
}

/* ---- the module cache ---------------------------------------------------- */

UNIT_TEST(modules_bounded_in_count)
{
	struct syms_limits lim = { .max_modules = 2 };
	struct syms *s = syms_new_limits(-1, &lim);
	struct syms_stats st;
	bool ok;

	CHECK(s);
	/* This process maps a dozen modules: at most two stay open. */
	CHECK_INT(syms_note_process(s, getpid()), 0);
	ok = names(s, getpid(), (uint64_t)(uintptr_t)fh_marker_one, "fh_marker_one") &&
	     names_getpid(s, getpid()) &&
	     names(s, getpid(), (uint64_t)(uintptr_t)fh_marker_two, "fh_marker_two");
	syms_get_stats(s, &st);
	syms_free(s);
	CHECK(ok);
	CHECK(st.modules_cached <= 2);
	CHECK(st.modules_evicted > 0);
}

UNIT_TEST(modules_bounded_in_bytes)
{
	struct syms_limits lim = { .max_module_bytes = 1 };
	struct syms *s = syms_new_limits(-1, &lim);
	struct syms_stats st;
	bool ok;

	CHECK(s);
	ok = names(s, getpid(), (uint64_t)(uintptr_t)fh_marker_one, "fh_marker_one") &&
	     names_getpid(s, getpid());
	syms_get_stats(s, &st);
	syms_free(s);
	CHECK(ok);
	CHECK_INT(st.modules_cached, 1);	/* the one in use, however big */
	CHECK(st.module_bytes > 1);
	CHECK(st.modules_evicted > 0);
}

UNIT_TEST(refuses_what_is_no_regular_elf_file)
{
	struct symmod_cache *c = symmod_cache_new(4, 1 << 20);
	char fifo[64];
	int fd, err = 0;

	CHECK(c);
	fd = open("/proc/self/status", O_RDONLY);
	CHECK(fd >= 0);
	CHECK(symmod_open(c, fd, NULL, "/proc/self/status", &err) == NULL);
	close(fd);
	CHECK_INT(err, -ENOEXEC);
	snprintf(fifo, sizeof(fifo), "/tmp/fh-fifo-%d", (int)getpid());
	unlink(fifo);
	CHECK(mkfifo(fifo, 0600) == 0);
	/* Opened O_NONBLOCK as the symbolizer does, then refused, never read. */
	fd = open(fifo, O_RDONLY | O_NONBLOCK);
	unlink(fifo);
	CHECK(fd >= 0);
	CHECK(symmod_open(c, fd, NULL, fifo, &err) == NULL);
	close(fd);
	CHECK_INT(err, -EINVAL);
	symmod_cache_free(c);
}

static bool self_dir(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return false;
	self[n] = '\0';
	snprintf(buf, size, "%s/..", dirname(self));
	return true;
}

/* .gnu_debugdata that would inflate to 80 MiB of zeros: hidden from libdw,
 * counted, and .dynsym still names what it names. */
UNIT_TEST(minidebuginfo_bomb_is_disabled)
{
	size_t in_len = 80u << 20, out_len = 0, cap = 1 << 20;
	struct symmod_cache *c = symmod_cache_new(4, 1u << 30);
	char dir[PATH_MAX], cmd[3 * PATH_MAX], bin[PATH_MAX + 32], xz[64];
	struct symmod_cache_stats st;
	uint8_t *zeros = calloc(1, in_len), *out = malloc(cap);
	struct fh_frame f = { 0 };
	struct symmod *m;
	FILE *fp;
	int fd, err;

	CHECK(c && zeros && out && self_dir(dir, sizeof(dir)));
	CHECK(lzma_easy_buffer_encode(0, LZMA_CHECK_CRC32, NULL, zeros, in_len, out, &out_len,
				      cap) == LZMA_OK);
	free(zeros);
	snprintf(xz, sizeof(xz), "/tmp/fh-bomb-%d.xz", (int)getpid());
	snprintf(bin, sizeof(bin), "/tmp/fh-bomb-%d", (int)getpid());
	fp = fopen(xz, "we");
	CHECK(fp && fwrite(out, 1, out_len, fp) == out_len && fclose(fp) == 0);
	free(out);
	snprintf(cmd, sizeof(cmd), "objcopy --add-section .gnu_debugdata=%s %s/symprog-stripped %s",
		 xz, dir, bin);
	CHECK(system(cmd) == 0);
	unlink(xz);
	fd = open(bin, O_RDONLY);
	unlink(bin);
	CHECK(fd >= 0);
	m = symmod_open(c, fd, NULL, bin, &err);
	close(fd);
	CHECK(m);
	/* Somewhere in the text: whatever it is, the lookup must not inflate. */
	symmod_lookup(c, m, symmod_base(m) + 0x1100, &f);
	symmod_cache_get_stats(c, &st);
	symmod_cache_free(c);
	CHECK_INT(st.sections_disabled, 1);
	CHECK(st.bytes < (64u << 20));
}

UNIT_TEST(demangles_cxx_and_leaves_c_alone)
{
	char out[256];

	symmod_demangle("_ZN6fhtest8Registry13hold_the_lockEv", out, sizeof(out));
	CHECK_STR(out, "fhtest::Registry::hold_the_lock()");
	symmod_demangle("hold_the_lock", out, sizeof(out));
	CHECK_STR(out, "hold_the_lock");
	symmod_demangle("_Zgarbage", out, sizeof(out));
	CHECK_STR(out, "_Zgarbage");
}

/* ---- cost: a fork storm of one binary --------------------------------------- */

/*
 * Each event of a storm names a new process of the same binary: noting it
 * must cost a stat per mapping, never an ELF file opened again.
 */
UNIT_TEST(fork_storm_opens_each_module_once)
{
	uint64_t addrs[3] = { (uint64_t)(uintptr_t)fh_marker_one,
			      (uint64_t)(uintptr_t)fh_marker_two, (uint64_t)(uintptr_t)getpid };
	struct syms *s = syms_new(-1);
	struct syms_stats cold, warm;
	pid_t kids[STORM];
	uint64_t t0, t_cold, t_warm;
	struct fh_frame f;
	bool ok = true;

	CHECK(s);
	for (int i = 0; i < STORM; i++)
		kids[i] = spawn_waiter();
	t0 = now_ns();
	syms_note_process(s, kids[0]);
	for (int k = 0; k < 3; k++)
		syms_resolve(s, kids[0], addrs[k], &f);
	t_cold = now_ns() - t0;
	syms_get_stats(s, &cold);
	t0 = now_ns();
	for (int i = 1; i < STORM; i++) {
		syms_note_process(s, kids[i]);
		for (int k = 0; k < 3; k++) {
			syms_resolve(s, kids[i], addrs[k], &f);
			ok = ok && f.known;
		}
	}
	t_warm = (now_ns() - t0) / (STORM - 1);
	syms_get_stats(s, &warm);
	for (int i = 0; i < STORM; i++)
		reap(kids[i]);
	syms_free(s);
	CHECK(ok);
	CHECK(cold.modules_opened > 0);
	CHECK_INT(warm.modules_opened, cold.modules_opened);
	CHECK(t_warm < t_cold);
	/* Not a PASS/FAIL line: the runner skips it, a person running this sees it. */
	printf("INFO fork storm, per process noted and 3 addresses resolved: cold %.0f us, "
	       "warm %.1f us (mean of %d); %llu modules opened, none again\n", t_cold / 1e3,
	       t_warm / 1e3, STORM - 1, (unsigned long long)cold.modules_opened);
}

// SPDX-License-Identifier: GPL-2.0
/* procfs.c: the parsers on real-looking lines, and the readers on this very process. */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include "procfs.h"
#include "unit.h"

/* A pid above the largest pid_max (2^22): never a process. */
#define NO_SUCH_PID 99999999

/* ---- procfs_parse_maps_line --------------------------------------------- */

UNIT_TEST(maps_file_mapping)
{
	struct fh_mapping m;

	CHECK_INT(procfs_parse_maps_line("559a7e2a1000-559a7e2a6000 r-xp 00002000 fe:01 247134"
					 "                     /usr/bin/cat\n", &m), 0);
	CHECK(m.start == 0x559a7e2a1000ull && m.end == 0x559a7e2a6000ull);
	CHECK_STR(m.perms, "r-xp");
	CHECK_INT(m.offset, 0x2000);
	CHECK_INT(m.dev_major, 0xfe);
	CHECK_INT(m.dev_minor, 1);
	CHECK_INT(m.inode, 247134);
	CHECK_STR(m.path, "/usr/bin/cat");
	CHECK(!m.deleted);
	/* the last line of the file may lack its newline */
	CHECK_INT(procfs_parse_maps_line("7f00-8f00 r--s 00000000 08:02 12 /lib/x.so", &m), 0);
	CHECK_STR(m.path, "/lib/x.so");
	CHECK_STR(m.perms, "r--s");
}

UNIT_TEST(maps_path_with_spaces)
{
	struct fh_mapping m;

	CHECK_INT(procfs_parse_maps_line("7f2a3c000000-7f2a3c021000 r-xp 00001000 08:01 99"
					 "          /opt/my app/lib one.so\n", &m), 0);
	CHECK_STR(m.path, "/opt/my app/lib one.so");
	CHECK(!m.deleted);
}

UNIT_TEST(maps_deleted_file)
{
	struct fh_mapping m;

	CHECK_INT(procfs_parse_maps_line("7f2a3c000000-7f2a3c021000 r-xp 00000000 08:01 77"
					 "          /tmp/old lib.so (deleted)\n", &m), 0);
	CHECK_STR(m.path, "/tmp/old lib.so");
	CHECK(m.deleted);
	CHECK_INT(procfs_parse_maps_line("7f2a3c000000-7f2a3c021000 rw-s 00000000 00:01 2050"
					 "          /memfd:jit (deleted)\n", &m), 0);
	CHECK_STR(m.path, "/memfd:jit");
	CHECK(m.deleted);
	/* "(deleted)" inside a name is part of the name */
	CHECK_INT(procfs_parse_maps_line("1000-2000 r--p 00000000 08:01 5 /a (deleted)/b\n", &m),
		  0);
	CHECK_STR(m.path, "/a (deleted)/b");
	CHECK(!m.deleted);
}

UNIT_TEST(maps_anonymous_and_special)
{
	struct fh_mapping m;

	/* the kernel ends an anonymous line with "0 " */
	CHECK_INT(procfs_parse_maps_line("7fe5e6a5a000-7fe5e6b1e000 rw-p 00000000 00:00 0 \n", &m),
		  0);
	CHECK_STR(m.path, "");
	CHECK_INT(m.inode, 0);
	CHECK_INT(procfs_parse_maps_line("7fe5e6a5a000-7fe5e6b1e000 ---p 00000000 00:00 0", &m), 0);
	CHECK_STR(m.path, "");
	CHECK_STR(m.perms, "---p");
	CHECK_INT(procfs_parse_maps_line("7ffc0d1c3000-7ffc0d1e4000 rw-p 00000000 00:00 0"
					 "                          [stack]\n", &m), 0);
	CHECK_STR(m.path, "[stack]");
	CHECK_INT(procfs_parse_maps_line("7ffc0d1f6000-7ffc0d1f8000 r-xp 00000000 00:00 0"
					 "                          [vdso]\n", &m), 0);
	CHECK_STR(m.path, "[vdso]");
	CHECK(m.start == 0x7ffc0d1f6000ull && m.end == 0x7ffc0d1f8000ull);
	CHECK_INT(procfs_parse_maps_line("ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0"
					 "                  [vsyscall]\n", &m), 0);
	CHECK(m.start == 0xffffffffff600000ull);
	CHECK_STR(m.path, "[vsyscall]");
}

UNIT_TEST(maps_garbage_rejected)
{
	static const char *const bad[] = {
		"",
		"\n",
		"hello world\n",
		"7f00-",
		"zz00-8f00 r--p 00000000 08:01 12 /x\n",
		"7f00-8f00 r--p\n",				/* fields missing */
		"7f00-8f00 r--p 00000000 08:01\n",
		"7f00-8f00 r--p 00000000 0801 12 /x\n",		/* no ':' in the device */
		"7f00-8f00 rw 00000000 08:01 12 /x\n",		/* perms too short */
		"7f00-8f00 rwxps 00000000 08:01 12 /x\n",	/* perms too long */
		"8f00-7f00 r--p 00000000 08:01 12 /x\n",	/* end before start */
		"7f00 8f00 r--p 00000000 08:01 12 /x\n",
	};
	struct fh_mapping m;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = procfs_parse_maps_line(bad[i], &m);

		if (ret != -EINVAL)
			FAIL("line %zu \"%s\": %d, want -EINVAL", i, bad[i], ret);
	}
	CHECK_INT(i, 12);
}

UNIT_TEST(maps_overlong_path_rejected)
{
	const char *head = "7f00-8f00 r--p 00000000 08:01 12 /";
	size_t hl = strlen(head);
	char *line = malloc(hl + PATH_MAX + 2);
	struct fh_mapping m;
	int ret;

	CHECK(line);
	memcpy(line, head, hl);
	/* a path of PATH_MAX bytes leaves no room for its NUL */
	memset(line + hl, 'a', PATH_MAX - 1);
	strcpy(line + hl + PATH_MAX - 1, "\n");
	ret = procfs_parse_maps_line(line, &m);
	/* one byte shorter fits exactly */
	line[hl + PATH_MAX - 2] = '\n';
	line[hl + PATH_MAX - 1] = '\0';
	CHECK_INT(ret, -EINVAL);
	ret = procfs_parse_maps_line(line, &m);
	free(line);
	CHECK_INT(ret, 0);
	CHECK_INT(strlen(m.path), PATH_MAX - 1);
}

/* ---- procfs_parse_stat -------------------------------------------------- */

/* Fields 3..22 (state..starttime) and a few after, as the kernel writes them. */
#define STAT_TAIL "S 5 77 77 34816 -1 4194560 101 0 0 0 3 1 0 0 20 0 3 0 168554 3133440 362 " \
		  "18446744073709551615 94646303899648 0 0\n"

UNIT_TEST(stat_plain)
{
	struct fh_proc_stat st;

	CHECK_INT(procfs_parse_stat("77 (cat) " STAT_TAIL, &st), 0);
	CHECK_STR(st.comm, "cat");
	CHECK(st.state == 'S');
	CHECK_INT(st.ppid, 5);
	CHECK_INT(st.flags, 4194560);
	CHECK_INT(st.num_threads, 3);
	CHECK_INT(st.starttime, 168554);
	CHECK_INT(st.utime, 3);		/* field 14 */
	CHECK_INT(st.stime, 1);		/* field 15 */
}

UNIT_TEST(stat_comm_with_spaces_and_parens)
{
	struct fh_proc_stat st;

	CHECK_INT(procfs_parse_stat("77 (my (odd) name) " STAT_TAIL, &st), 0);
	CHECK_STR(st.comm, "my (odd) name");
	CHECK_INT(st.ppid, 5);
	/* a comm that fakes the fields after it: only the last ')' ends it */
	CHECK_INT(procfs_parse_stat("77 (x) R 1 (y) " STAT_TAIL, &st), 0);
	CHECK_STR(st.comm, "x) R 1 (y");
	CHECK(st.state == 'S');
	CHECK_INT(st.ppid, 5);
	CHECK_INT(st.num_threads, 3);
	CHECK_INT(procfs_parse_stat("77 ()) " STAT_TAIL, &st), 0);
	CHECK_STR(st.comm, ")");
	CHECK_INT(procfs_parse_stat("77 () " STAT_TAIL, &st), 0);
	CHECK_STR(st.comm, "");
}

UNIT_TEST(stat_other_states)
{
	struct fh_proc_stat st;

	CHECK_INT(procfs_parse_stat("9 (a b) Z 1 0 0 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 42\n",
				    &st), 0);
	CHECK(st.state == 'Z');
	CHECK_INT(st.num_threads, 1);
	CHECK_INT(st.starttime, 42);
	CHECK_INT(procfs_parse_stat("9 (a) D 1 0 0 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 42", &st), 0);
	CHECK(st.state == 'D');
}

UNIT_TEST(stat_long_comm_truncated)
{
	char line[512];
	struct fh_proc_stat st;

	/* longer than any kernel comm: cut to the buffer, never past it */
	snprintf(line, sizeof(line), "1 (%0100d) " STAT_TAIL, 0);
	CHECK_INT(procfs_parse_stat(line, &st), 0);
	CHECK_INT(strlen(st.comm), sizeof(st.comm) - 1);
	CHECK_INT(st.ppid, 5);
}

UNIT_TEST(stat_garbage_rejected)
{
	static const char *const bad[] = {
		"",
		"77 cat S 5 77\n",				/* no parentheses */
		"77 (cat S 5 77\n",				/* no ')' */
		"77 )cat( S 5 77\n",				/* reversed */
		"77 (cat)\n",					/* nothing after comm */
		"77 (cat) S\n",					/* no ppid */
		"77 (cat) S x 77\n",
		"77 (cat) S 5 77 77 34816 -1 4194560 101 0\n",	/* cut before field 22 */
		"77 (cat) S 5 77 77 34816 -1 abc 101 0 0 0 3 1 0 0 20 0 3 0 168554\n",
		"77 (cat) S 5 77 77 34816 -1 4194560 101 0 0 0 3 1 0 0 20 0 3 0 x\n",
	};
	struct fh_proc_stat st;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = procfs_parse_stat(bad[i], &st);

		if (ret != -EINVAL)
			FAIL("line %zu \"%s\": %d, want -EINVAL", i, bad[i], ret);
	}
	CHECK_INT(i, 10);
}

/* ---- procfs_parse_syscall ----------------------------------------------- */

UNIT_TEST(syscall_running)
{
	struct fh_syscall sc;

	CHECK_INT(procfs_parse_syscall("running\n", &sc), 0);
	CHECK_INT(sc.nr, -1);
}

UNIT_TEST(syscall_blocked_outside_a_syscall)
{
	struct fh_syscall sc;

	CHECK_INT(procfs_parse_syscall("-1 0x7ffc0d1e2f30 0x7f3b2c1d0e9f\n", &sc), 0);
	CHECK_INT(sc.nr, -2);
}

UNIT_TEST(syscall_futex_line)
{
	struct fh_syscall sc;

	CHECK_INT(procfs_parse_syscall("202 0x55d0c1a2e100 0x80 0x2 0x0 0x0 0x0 0x7ffc0d1e2f30 "
				       "0x7f3b2c1d0e9f\n", &sc), 0);
	CHECK_INT(sc.nr, 202);
	CHECK(sc.args[0] == 0x55d0c1a2e100ull);
	CHECK(sc.args[1] == 0x80 && sc.args[2] == 2);
	CHECK(sc.args[3] == 0 && sc.args[4] == 0 && sc.args[5] == 0);
	CHECK(sc.sp == 0x7ffc0d1e2f30ull);
	CHECK(sc.pc == 0x7f3b2c1d0e9full);
	/* full 64-bit arguments survive */
	CHECK_INT(procfs_parse_syscall("7 0xffffffffffffffff 0x1 0x2 0x3 0x4 0x5 0x6 0x7", &sc), 0);
	CHECK(sc.args[0] == UINT64_MAX && sc.args[5] == 5 && sc.sp == 6 && sc.pc == 7);
}

UNIT_TEST(syscall_garbage_rejected)
{
	static const char *const bad[] = {
		"",
		"\n",
		"garbage\n",
		"runnin\n",
		"202\n",					/* no arguments */
		"202 0x55d0c1a2e100 0x80 0x2\n",		/* cut short */
		"202 0x55d0c1a2e100 0x80 0x2 0x0 0x0 0x0 0x7ffc0d1e2f30\n",
		"202 zz 0x80 0x2 0x0 0x0 0x0 0x7ffc0d1e2f30 0x7f3b2c1d0e9f\n",
	};
	struct fh_syscall sc;
	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int ret = procfs_parse_syscall(bad[i], &sc);

		if (ret != -EINVAL)
			FAIL("line %zu \"%s\": %d, want -EINVAL", i, bad[i], ret);
	}
	CHECK_INT(i, 8);
}

/* ---- the readers, on this process --------------------------------------- */

/* This process's name, read without procfs.c (under valgrind it is not ours). */
static const char *own_comm(void)
{
	static char comm[64];
	FILE *f = fopen("/proc/self/comm", "re");

	comm[0] = '\0';
	if (f) {
		if (fgets(comm, sizeof(comm), f))
			comm[strcspn(comm, "\n")] = '\0';
		fclose(f);
	}
	return comm;
}

UNIT_TEST(read_stat_of_self)
{
	struct fh_proc_stat st;

	CHECK(own_comm()[0]);
	CHECK_INT(procfs_read_stat(getpid(), 0, &st), 0);
	CHECK_STR(st.comm, own_comm());
	CHECK(st.state == 'R');		/* it is running: reading its own stat */
	CHECK_INT(st.ppid, getppid());
	CHECK_INT(st.num_threads, 1);
	CHECK(st.starttime > 0);
	CHECK(!procfs_is_kernel_thread(getpid()));
	/* the main thread through its task directory */
	CHECK_INT(procfs_read_stat(getpid(), getpid(), &st), 0);
	CHECK_STR(st.comm, own_comm());
	CHECK_INT(procfs_read_stat(NO_SUCH_PID, 0, &st), -ENOENT);
	CHECK_INT(procfs_read_stat(getpid(), NO_SUCH_PID, &st), -ENOENT);
}

UNIT_TEST(kernel_thread_detected)
{
	struct fh_proc_stat st;

	/* PID 2 is kthreadd, the parent of every kernel thread */
	CHECK_INT(procfs_read_stat(2, 0, &st), 0);
	CHECK_STR(st.comm, "kthreadd");
	CHECK(procfs_is_kernel_thread(2));
	CHECK(!procfs_is_kernel_thread(1));
	CHECK(!procfs_is_kernel_thread(NO_SUCH_PID));
}

UNIT_TEST(pid_exists)
{
	CHECK(procfs_pid_exists(getpid()));
	CHECK(procfs_pid_exists(1));
	CHECK(!procfs_pid_exists(NO_SUCH_PID));
	CHECK(!procfs_pid_exists(0));
	CHECK(!procfs_pid_exists(-1));
}

UNIT_TEST(read_file_bounds)
{
	char buf[8], big[256], want[64];
	ssize_t n;

	CHECK_INT(procfs_read_file("/proc/self/stat", buf, 0), -EINVAL);
	CHECK_INT(procfs_read_file("/proc/self/no-such-file", buf, sizeof(buf)), -ENOENT);
	CHECK_INT(procfs_read_file("/proc/self", buf, sizeof(buf)), -EISDIR);
	/* too small: filled to size - 1 and terminated */
	snprintf(want, sizeof(want), "%s\n", own_comm());
	CHECK(strlen(want) > sizeof(buf));
	memset(buf, '#', sizeof(buf));
	CHECK_INT(procfs_read_file("/proc/self/comm", buf, sizeof(buf)), sizeof(buf) - 1);
	CHECK(memcmp(buf, want, sizeof(buf) - 1) == 0 && buf[sizeof(buf) - 1] == '\0');
	n = procfs_read_file("/proc/self/comm", big, sizeof(big));
	CHECK_INT(n, strlen(want));
	CHECK_STR(big, want);
}

/* ---- procfs_parse_statm, procfs_read_rss ---------------------------------- */

UNIT_TEST(statm_resident_in_bytes)
{
	uint64_t rss = 1;

	CHECK_INT(procfs_parse_statm("2048 431 403 5 0 123 0\n", 4096, &rss), 0);
	CHECK(rss == 431ull * 4096);
	CHECK_INT(procfs_parse_statm("1 0 0 0 0 0 0\n", 4096, &rss), 0);
	CHECK(rss == 0);
}

UNIT_TEST(statm_garbage_rejected)
{
	static const char *const bad[] = {
		"", "\n", "2048", "2048 431", "2048 431\n", "-1 5 0 0 0 0 0\n", "x 1 0\n",
		"2048 4x31 0\n", "10 20 0 0 0 0 0\n",	/* resident beyond size */
		"99999999999999999999 1 0\n",
	};
	uint64_t rss = 7;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_INT(procfs_parse_statm(bad[i], 4096, &rss), -EINVAL);
	CHECK_INT(procfs_parse_statm("2048 431 0\n", 0, &rss), -EINVAL);
	CHECK(rss == 7);	/* untouched on error */
}

UNIT_TEST(read_rss_of_self_follows_vmrss)
{
	char status[4096];
	const char *line;
	unsigned long long vmrss_kb = 0;
	uint64_t before, after;
	size_t big = 64u << 20;
	char *p;

	CHECK_INT(procfs_read_rss(getpid(), &before), 0);
	CHECK(procfs_read_file("/proc/self/status", status, sizeof(status)) > 0);
	line = strstr(status, "\nVmRSS:");
	CHECK(line && sscanf(line + 7, "%llu", &vmrss_kb) == 1);
	/* the same count (VmRSS in kB), read a moment apart */
	CHECK(before / 1024 + 256 > vmrss_kb && vmrss_kb + 256 > before / 1024);
	/* it grows with touched memory and comes down when it is returned */
	p = mmap(NULL, big, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED);
	memset(p, 1, big);
	CHECK_INT(procfs_read_rss(getpid(), &after), 0);
	CHECK(after >= before + big / 2);
	munmap(p, big);	/* not free(): sanitizers and valgrind keep freed memory */
	CHECK_INT(procfs_read_rss(getpid(), &after), 0);
	CHECK(after < before + big / 2);
	CHECK_INT(procfs_read_rss(NO_SUCH_PID, &after), -ENOENT);
}

struct blocked {
	pthread_mutex_t lock;
	_Atomic pid_t tid;
};

static void *block_on_lock(void *arg)
{
	struct blocked *b = arg;

	b->tid = (pid_t)syscall(SYS_gettid);
	pthread_mutex_lock(&b->lock);
	pthread_mutex_unlock(&b->lock);
	return NULL;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000 };

	nanosleep(&ts, NULL);
}

/* Look at a thread of this process while it waits on a real lock. */
static void check_blocked_thread(struct blocked *b)
{
	struct fh_syscall sc = { .nr = -3 };
	struct fh_proc_stat st;
	pid_t tids[8];
	int n, i, found = 0;

	for (i = 0; i < 500 && !b->tid; i++)
		sleep_ms(10);
	CHECK(b->tid > 0);
	n = procfs_list_tasks(getpid(), tids, 8);
	CHECK_INT(n, 2);
	for (i = 0; i < n; i++)
		found |= (tids[i] == getpid()) | (tids[i] == b->tid) << 1;
	CHECK_INT(found, 3);
	/* at most max: bounded whatever the thread count */
	CHECK_INT(procfs_list_tasks(getpid(), tids, 1), 1);
	CHECK_INT(procfs_read_stat(getpid(), 0, &st), 0);
	CHECK_INT(st.num_threads, 2);
	/* the waiter sleeps in futex(2) on the mutex's word (its first member) */
	for (i = 0; i < 500; i++) {
		CHECK_INT(procfs_read_syscall(getpid(), b->tid, &sc), 0);
		if (sc.nr == SYS_futex)
			break;
		sleep_ms(10);
	}
	CHECK_INT(sc.nr, SYS_futex);
	CHECK(sc.args[0] == (uint64_t)(uintptr_t)&b->lock);
	CHECK(sc.sp != 0 && sc.pc != 0);
	CHECK_INT(procfs_read_stat(getpid(), b->tid, &st), 0);
	CHECK(st.state == 'S');
	CHECK_STR(st.comm, own_comm());
	/* this thread is reading /proc, so it is in no futex wait */
	CHECK_INT(procfs_read_syscall(getpid(), getpid(), &sc), 0);
	CHECK(sc.nr != SYS_futex);
}

UNIT_TEST(tasks_and_syscall_of_a_blocked_thread)
{
	struct blocked b = { .lock = PTHREAD_MUTEX_INITIALIZER };
	pthread_t th;

	pthread_mutex_lock(&b.lock);
	CHECK_INT(pthread_create(&th, NULL, block_on_lock, &b), 0);
	check_blocked_thread(&b);
	/* whatever the checks found: release the thread, it must not outlive the case */
	pthread_mutex_unlock(&b.lock);
	CHECK_INT(pthread_join(th, NULL), 0);
	CHECK_INT(procfs_list_tasks(NO_SUCH_PID, (pid_t[1]){ 0 }, 1), -ENOENT);
}

struct find_addr {
	uintptr_t addr;
	struct fh_mapping found;
	int seen;
};

static int find_mapping(const struct fh_mapping *m, void *ctx)
{
	struct find_addr *f = ctx;

	f->seen++;
	if (f->addr >= m->start && f->addr < m->end) {
		f->found = *m;
		return 42;	/* stop here */
	}
	return 0;
}

UNIT_TEST(mappings_of_self)
{
	struct find_addr f = { .addr = (uintptr_t)&find_mapping };
	char exe[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	int ret;

	CHECK(n > 0);
	exe[n] = '\0';
	/* this function's code is in an executable mapping of this binary */
	ret = procfs_for_each_mapping(getpid(), find_mapping, &f);
	CHECK_INT(ret, 42);
	CHECK_STR(f.found.path, exe);
	CHECK(f.found.perms[2] == 'x');
	CHECK(!f.found.deleted);
	CHECK(f.found.inode != 0);
	/* an address nowhere: every mapping walked, nothing found */
	f = (struct find_addr){ .addr = 0 };
	CHECK_INT(procfs_for_each_mapping(getpid(), find_mapping, &f), 0);
	CHECK(f.seen > 5);
	CHECK_INT(procfs_for_each_mapping(NO_SUCH_PID, find_mapping, &f), -ENOENT);
}

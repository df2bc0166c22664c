// SPDX-License-Identifier: GPL-2.0
/*
 * syms_unwind on real captures: tests/progs/unwind_capture, built -O2
 * -fomit-frame-pointer, copies its registers and stack bytes in uw_capture(),
 * called through uw_level3/2/1 from main. DWARF CFI must name them in order,
 * while the program runs and after it exited (from the snapshot).
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "symbolize.h"
#include "unit.h"

#define MAX_FRAMES 16

static const char *const want[] = { "uw_capture", "uw_level3", "uw_level2", "uw_level1", "main" };
#define NWANT ((int)(sizeof(want) / sizeof(want[0])))

struct capture_hdr {
	char magic[8];
	uint64_t pid, ip, sp, bp, len;
};

struct capture {
	pid_t pid;
	int stdin_fd;		/* closing it lets the program exit */
	struct capture_hdr h;
	unsigned char stack[8192];
	char file[64];
};

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

static bool prog_path(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n <= 0)
		return false;
	self[n] = '\0';
	/* build/tests/unit/test_unwind -> build/tests/unwind_capture */
	snprintf(buf, size, "%s/../unwind_capture", dirname(self));
	return access(buf, X_OK) == 0;
}

/* Start the program and read its capture; false (and nothing running) on failure. */
static bool capture_start(struct capture *c)
{
	char path[PATH_MAX + 32];
	int fds[2], fd;
	ssize_t n;

	memset(c, 0, sizeof(*c));
	c->pid = -1;
	snprintf(c->file, sizeof(c->file), "/tmp/fh-unwind-%d", (int)getpid());
	unlink(c->file);
	if (!prog_path(path, sizeof(path)) || pipe2(fds, O_CLOEXEC))
		return false;
	c->pid = fork();
	if (c->pid == 0) {
		dup2(fds[0], 0);
		execl(path, path, c->file, (char *)NULL);
		_exit(127);
	}
	close(fds[0]);
	c->stdin_fd = fds[1];
	for (int i = 0; i < 1000 && access(c->file, F_OK); i++)
		sleep_ms(5);
	fd = open(c->file, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, &c->h, sizeof(c->h));
	if (n == sizeof(c->h) && c->h.len <= sizeof(c->stack))
		n = read(fd, c->stack, c->h.len);
	close(fd);
	unlink(c->file);
	return n == (ssize_t)c->h.len && !memcmp(c->h.magic, "FHCAPT1", 8) &&
	       c->h.pid == (uint64_t)c->pid;
}

/* Let it exit and reap it; killed if it takes more than 2 s. */
static void capture_stop(struct capture *c)
{
	if (c->stdin_fd > 0)
		close(c->stdin_fd);
	c->stdin_fd = -1;
	if (c->pid <= 0)
		return;
	for (int i = 0; i < 400; i++) {
		if (waitpid(c->pid, NULL, WNOHANG) == c->pid) {
			c->pid = -1;
			return;
		}
		sleep_ms(5);
	}
	kill(c->pid, SIGKILL);
	waitpid(c->pid, NULL, 0);
	c->pid = -1;
}

static struct capture cap;
static struct fh_frame frames[MAX_FRAMES];

/* The frames name want[] in order (the first `upto` of them at least). */
static int check_names(int n, int upto, char *why, size_t size)
{
	for (int i = 0; i < upto; i++) {
		if (i >= n) {
			snprintf(why, size, "only %d frames", n);
			return -1;
		}
		if (!frames[i].known || strcmp(frames[i].symbol, want[i])) {
			snprintf(why, size, "frame %d is %s, want %s", i,
				 frames[i].known ? frames[i].symbol : "(unknown)", want[i]);
			return -1;
		}
	}
	return 0;
}

UNIT_TEST(unwind_live_without_frame_pointers)
{
	struct syms *s = syms_new(-1);
	char why[256] = "";
	int n;

	CHECK(s);
	if (!capture_start(&cap)) {
		capture_stop(&cap);
		syms_free(s);
		FAIL("no capture from build/tests/unwind_capture (built by make test)");
	}
	CHECK_INT(syms_note_process(s, cap.pid), 0);
	n = syms_unwind(s, cap.pid, cap.h.ip, cap.h.sp, cap.h.bp, cap.stack, cap.h.len, frames,
			MAX_FRAMES);
	capture_stop(&cap);
	syms_free(s);
	if (check_names(n, NWANT, why, sizeof(why)))
		FAIL("%s", why);
	CHECK(frames[0].addr == cap.h.ip);
	CHECK(!frames[1].fp);
	/* Return addresses are shown as such, resolved at the call before them. */
	CHECK(frames[1].addr > frames[1].offset);
	CHECK(strstr(frames[1].file, "unwind_capture.c") != NULL);
	CHECK(frames[1].line > 0);
	/* main returns into libc, whose .eh_frame goes on (the copy permitting). */
	CHECK(n > NWANT);
	CHECK(strstr(frames[NWANT].module, "libc.so") != NULL);
}

/* The premise: rbp is no frame chain in this program, a frame-pointer walk
 * could not have found uw_level3. */
UNIT_TEST(unwind_capture_has_no_frame_chain)
{
	struct syms *s = syms_new(-1);
	struct fh_frame f;
	uint64_t ret;
	bool found = false;

	CHECK(s);
	if (!capture_start(&cap)) {
		capture_stop(&cap);
		syms_free(s);
		FAIL("no capture from build/tests/unwind_capture");
	}
	CHECK_INT(syms_note_process(s, cap.pid), 0);
	if (cap.h.bp >= cap.h.sp && cap.h.bp + 16 <= cap.h.sp + cap.h.len) {
		memcpy(&ret, cap.stack + (cap.h.bp - cap.h.sp) + 8, sizeof(ret));
		syms_resolve(s, cap.pid, ret - 1, &f);
		found = f.known && !strcmp(f.symbol, "uw_level3");
	}
	capture_stop(&cap);
	syms_free(s);
	CHECK(!found);
}

UNIT_TEST(unwind_after_exit_from_snapshot)
{
	struct syms *s = syms_new(-1);
	char why[256] = "";
	int n;

	CHECK(s);
	if (!capture_start(&cap)) {
		capture_stop(&cap);
		syms_free(s);
		FAIL("no capture from build/tests/unwind_capture");
	}
	CHECK_INT(syms_note_process(s, cap.pid), 0);
	pid_t pid = cap.pid;

	capture_stop(&cap);
	CHECK(kill(pid, 0) == -1 && errno == ESRCH);
	n = syms_unwind(s, pid, cap.h.ip, cap.h.sp, cap.h.bp, cap.stack, cap.h.len, frames,
			MAX_FRAMES);
	syms_free(s);
	if (check_names(n, NWANT, why, sizeof(why)))
		FAIL("%s", why);
}

/* A copy too short for the callers: the walk stops, names nothing wrong. */
UNIT_TEST(unwind_stops_at_the_end_of_the_copy)
{
	struct syms *s = syms_new(-1);
	char why[256] = "";
	int n;

	CHECK(s);
	if (!capture_start(&cap)) {
		capture_stop(&cap);
		syms_free(s);
		FAIL("no capture from build/tests/unwind_capture");
	}
	CHECK_INT(syms_note_process(s, cap.pid), 0);
	n = syms_unwind(s, cap.pid, cap.h.ip, cap.h.sp, cap.h.bp, cap.stack, 8, frames,
			MAX_FRAMES);
	capture_stop(&cap);
	syms_free(s);
	CHECK(n >= 1 && n < NWANT);
	if (check_names(n, n, why, sizeof(why)))
		FAIL("%s", why);
}

UNIT_TEST(unwind_unmapped_ip_is_one_unknown_frame)
{
	struct syms *s = syms_new(-1);
	int n;

	CHECK(s);
	n = syms_unwind(s, getpid(), 0x10, 0, 0, NULL, 0, frames, MAX_FRAMES);
	syms_free(s);
	CHECK_INT(n, 1);
	CHECK(!frames[0].known && !frames[0].has_module);
	CHECK(frames[0].addr == 0x10);
}

UNIT_TEST(unwind_unknown_process)
{
	struct syms *s = syms_new(-1);

	CHECK(s);
	CHECK_INT(syms_unwind(s, 99999999, 0x1000, 0x2000, 0, NULL, 0, frames, MAX_FRAMES),
		  -ESRCH);
	syms_free(s);
}

// SPDX-License-Identifier: GPL-2.0
/*
 * outfile.c: the files forkhazard writes with its privileges, under its two
 * policies. What another user could plant is planted here (a symlink, a
 * FIFO, a hard link, a file or directory of theirs, a directory they may
 * write to) and must be refused; what each policy must accept is accepted.
 * The cases with another user's files need root (chown).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include "outfile.h"
#include "unit.h"

#define OTHER_UID	65534	/* nobody */

static char dir[64];

static bool make_dir(void)
{
	snprintf(dir, sizeof(dir), "/tmp/fh-outfile-XXXXXX");
	return mkdtemp(dir) != NULL && chmod(dir, 0755) == 0;
}

static void remove_dir(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd))
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* dir/name; a few at once (two in one call) */
static const char *path_of(const char *name)
{
	static char p[4][PATH_MAX];
	static int next;
	char *buf = p[next++ % 4];

	snprintf(buf, PATH_MAX, "%s/%s", dir, name);
	return buf;
}

static bool write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	return f && fputs(text, f) >= 0 && fclose(f) == 0;
}

static const char *read_file(const char *path)
{
	static char buf[256];
	FILE *f = fopen(path, "r");
	size_t n;

	if (!f)
		return NULL;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

/* Open under policy and write text; the reason of a refusal in *why. */
static int put(const char *path, enum outfile_policy policy, const char *text, const char **why)
{
	int fd = outfile_open_fd(path, policy, why);

	if (fd < 0)
		return fd;
	if (write(fd, text, strlen(text)) != (ssize_t)strlen(text)) {
		close(fd);
		return -EIO;
	}
	close(fd);
	return 0;
}

UNIT_TEST(new_files_and_own_files)
{
	const char *why;

	CHECK(make_dir());
	/* a new file, under both policies */
	CHECK_INT(put(path_of("u"), OUTFILE_USER, "one\n", &why), 0);
	CHECK_INT(put(path_of("s"), OUTFILE_SERVICE, "one\n", &why), 0);
	/* again: a user's is truncated (each run its own), the service's appended */
	CHECK_INT(put(path_of("u"), OUTFILE_USER, "two\n", &why), 0);
	CHECK_STR(read_file(path_of("u")), "two\n");
	CHECK_INT(put(path_of("s"), OUTFILE_SERVICE, "two\n", &why), 0);
	CHECK_STR(read_file(path_of("s")), "one\ntwo\n");
	/* the stream form */
	{
		FILE *f = outfile_open(path_of("u"), OUTFILE_USER);

		CHECK(f);
		fputs("three\n", f);
		fclose(f);
		CHECK_STR(read_file(path_of("u")), "three\n");
	}
	remove_dir();
}

UNIT_TEST(what_another_user_could_plant_is_refused)
{
	const char *why;
	int err;

	CHECK(make_dir());
	CHECK(write_file(path_of("precious"), "precious\n"));
	for (int policy = OUTFILE_USER; policy <= OUTFILE_SERVICE; policy++) {
		/* a symlink, even to our own file */
		CHECK(!symlink(path_of("precious"), path_of("link")) || errno == EEXIST);
		err = put(path_of("link"), policy, "x", &why);
		CHECK(err < 0 && why && !strcmp(why, "it is a symbolic link"));
		/* a hard link */
		CHECK(!link(path_of("precious"), path_of("hard")) || errno == EEXIST);
		err = put(path_of("hard"), policy, "x", &why);
		CHECK(err < 0 && why && !strcmp(why, "it has other hard links"));
		/* a FIFO: refused at once, never waited on */
		CHECK(!mkfifo(path_of("fifo"), 0600) || errno == EEXIST);
		err = put(path_of("fifo"), policy, "x", &why);
		CHECK(err < 0 && why && !strcmp(why, "not a regular file"));
		/* a directory */
		CHECK(!mkdir(path_of("sub"), 0755) || errno == EEXIST);
		CHECK(put(path_of("sub"), policy, "x", &why) < 0);
		CHECK(put(path_of("sub/.."), policy, "x", &why) == -EISDIR);
	}
	CHECK_STR(read_file(path_of("precious")), "precious\n");
	remove_dir();
}

UNIT_TEST(directories_and_owners_by_policy)
{
	static const struct {
		mode_t mode;
		uid_t owner;
		bool user_ok, service_ok;
	} dirs[] = {
		{ 0755, 0, true, true },
		{ 0775, 0, false, true },	/* a log directory: its group may write */
		{ 0777, 0, false, false },	/* anybody may write: not sticky */
		{ 01777, 0, true, true },	/* sticky, as /tmp */
		{ 0755, OTHER_UID, false, false },	/* another user's */
	};
	const char *why;
	char name[32];

	if (geteuid() != 0)
		SKIP("makes files and directories of another user: needs root");
	CHECK(make_dir());
	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		snprintf(name, sizeof(name), "d%zu", i);
		CHECK(!mkdir(path_of(name), 0700));
		CHECK(!chown(path_of(name), dirs[i].owner, OTHER_UID));
		CHECK(!chmod(path_of(name), dirs[i].mode));
		snprintf(name, sizeof(name), "d%zu/out", i);
		if ((put(path_of(name), OUTFILE_USER, "x", &why) == 0) != dirs[i].user_ok)
			FAIL("directory %o of %d: user policy %s", dirs[i].mode, dirs[i].owner,
			     dirs[i].user_ok ? "refused" : "accepted");
		unlink(path_of(name));
		if ((put(path_of(name), OUTFILE_SERVICE, "x", &why) == 0) != dirs[i].service_ok)
			FAIL("directory %o of %d: service policy %s", dirs[i].mode, dirs[i].owner,
			     dirs[i].service_ok ? "refused" : "accepted");
		if (!dirs[i].service_ok && (!why || !strstr(why, "directory")))
			FAIL("directory %o of %d: the reason names the directory", dirs[i].mode,
			     dirs[i].owner);
	}
	/* another user's file: left alone */
	CHECK(write_file(path_of("theirs"), "theirs\n"));
	CHECK(!chown(path_of("theirs"), OTHER_UID, OTHER_UID));
	for (int policy = OUTFILE_USER; policy <= OUTFILE_SERVICE; policy++) {
		CHECK(put(path_of("theirs"), policy, "x", &why) == -EPERM);
		CHECK_STR(why, "it belongs to another user");
	}
	CHECK_STR(read_file(path_of("theirs")), "theirs\n");
	remove_dir();
}

UNIT_TEST(sudo_user_owns_a_users_file_not_a_services)
{
	const char *why;

	if (geteuid() != 0)
		SKIP("makes a file of another user: needs root");
	CHECK(make_dir());
	CHECK(write_file(path_of("mine"), "old\n"));
	CHECK(!chown(path_of("mine"), OTHER_UID, OTHER_UID));
	setenv("SUDO_UID", "65534", 1);
	CHECK_INT(put(path_of("mine"), OUTFILE_USER, "new\n", &why), 0);
	CHECK_STR(read_file(path_of("mine")), "new\n");
	CHECK(put(path_of("mine"), OUTFILE_SERVICE, "x", &why) == -EPERM);
	unsetenv("SUDO_UID");
	remove_dir();
}

UNIT_TEST(replace_is_atomic_and_cleans_up)
{
	const char *why;
	struct stat st;

	CHECK(make_dir());
	CHECK_INT(outfile_replace(path_of("m.prom"), OUTFILE_SERVICE, "a 1\n", 4, &why), 0);
	CHECK_STR(read_file(path_of("m.prom")), "a 1\n");
	/* a temporary file left by a run that died is replaced, not followed */
	CHECK(write_file(path_of("m.prom.tmp"), "stale"));
	CHECK_INT(outfile_replace(path_of("m.prom"), OUTFILE_SERVICE, "a 2\n", 4, &why), 0);
	CHECK_STR(read_file(path_of("m.prom")), "a 2\n");
	CHECK(stat(path_of("m.prom.tmp"), &st) != 0);
	/* the target a symlink: the link is replaced, what it named untouched */
	CHECK(write_file(path_of("precious"), "precious\n"));
	CHECK(!symlink(path_of("precious"), path_of("l.prom")));
	CHECK_INT(outfile_replace(path_of("l.prom"), OUTFILE_SERVICE, "a 3\n", 4, &why), 0);
	CHECK_STR(read_file(path_of("precious")), "precious\n");
	CHECK(lstat(path_of("l.prom"), &st) == 0 && S_ISREG(st.st_mode));
	/* a directory that refuses: nothing written, the reason said */
	CHECK(!chmod(dir, 0777));
	CHECK(outfile_replace(path_of("m.prom"), OUTFILE_SERVICE, "a 4\n", 4, &why) == -EPERM);
	CHECK(why && strstr(why, "directory"));
	CHECK(!chmod(dir, 0755));
	CHECK_STR(read_file(path_of("m.prom")), "a 2\n");
	remove_dir();
}

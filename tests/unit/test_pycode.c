// SPDX-License-Identifier: GPL-2.0
/*
 * pycode.c: line tables decoded as each CPython version encodes them (bytes
 * recorded from the real interpreters, the expected lines from their own
 * co_lines()), garbage tables that must end cleanly, and the site identity of
 * source paths.
 */
#include <stdint.h>
#include <stdlib.h>
#include "pycode.h"
#include "unit.h"

/*
 * This function's code object, compiled by each installed CPython:
 *
 *	def sample(a, b):
 *	    x = a + b
 *	    if x > 3:
 *	        y = [i
 *	             for i in range(x)]
 *	    else:
 *	        y = None
 *
 *	    try:
 *	        z = 1 / a
 *	    except ZeroDivisionError:
 *	        z = 0
 *	    return (x,
 *	            y, z)
 *
 * lines[i]: co_lines()' line for byte offset 2 * i (-1: none).
 */
struct recorded {
	int minor, firstlineno;
	const char *table;
	size_t len;
	int n;
	const int *lines;
};

static const struct recorded recorded[] = {
	/* CPython 3.10.13 */
	{ 10, 2, "\x08\x01\x08\x01\x06\x01\x06\x01\x08\xff\x04\x03\x02\x02\x0c\x01\x0c\x01\x08"
		 "\x01\x02\xff\x02\x02\x04\x01\x04\xff", 28, 43, (const int[]){
		3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 6, 6, 6, 5, 5, 5, 5, 8, 8, 10, 11, 11, 11, 11,
		11, 11, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 12, 14, 15, 15, 14, 14 } },
	/* CPython 3.11.7 */
	{ 11, 2, "\x80\x00\xd8\x08\x09\x88\x41\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x82\x75\x80"
		 "\x75\xf0\x02\x01\x0d\x20\xf0\x00\x01\x0d\x20\xdd\x16\x1b\x98\x41\x91\x68\x94"
		 "\x68\xf0\x03\x01\x0d\x20\xf1\x00\x01\x0d\x20\xf4\x00\x01\x0d\x20\x88\x01\x88"
		 "\x01\xf0\x06\x00\x0d\x11\x88\x01\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89"
		 "\x45\x88\x01\x88\x01\xf8\xdd\x0b\x1c\xf0\x00\x01\x05\x0e\xf0\x00\x01\x05\x0e"
		 "\xf0\x00\x01\x05\x0e\xd8\x0c\x0d\x88\x01\x88\x01\x88\x01\xf0\x03\x01\x05\x0e"
		 "\xf8\xf8\xf8\xe0\x0c\x0d\xd8\x0c\x0d\x88\x71\xf0\x03\x01\x0c\x12\xf0\x00\x01"
		 "\x05\x12", 135, 70, (const int[]){
		2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 5, 5, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6,
		6, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 8, 8, 10, 11, 11, 11, 11, 11, 11, -1, 12, 12,
		12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 12, -1, -1, -1, 14, 15, 15, 14, 14 } },
	/* CPython 3.12.1 */
	{ 12, 2, "\x80\x00\xd8\x08\x09\x88\x41\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x82\x75\xe4"
		 "\x16\x1b\x98\x41\x93\x68\xf6\x03\x01\x0d\x20\xd8\x11\x12\xf2\x03\x00\x0e\x0f"
		 "\xf0\x00\x01\x0d\x20\x88\x01\xf1\x00\x01\x0d\x20\xf0\x06\x00\x0d\x11\x88\x01"
		 "\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\xf0\x06\x00\x0d\x0e"
		 "\xd8\x0c\x0d\x88\x71\xf0\x03\x01\x0c\x12\xf0\x00\x01\x05\x12\xf9\xf2\x13\x01"
		 "\x0d\x20\xf8\xf4\x0e\x00\x0c\x1d\xf2\x00\x01\x05\x0e\xd8\x0c\x0d\x8a\x01\xf0"
		 "\x03\x01\x05\x0e\xfa", 119, 71, (const int[]){
		2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 5, 5,
		5, 6, 5, 5, 5, 5, 5, 5, 5, 8, 8, 10, 11, 11, 11, 11, 11, 14, 15, 15, 14, 14, -1,
		-1, 5, 5, 5, -1, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 12, -1, -1,
		-1 } },
	/* CPython 3.13.0 */
	{ 13, 2, "\x80\x00\xd8\x08\x09\x89\x05\x80\x41\xd8\x07\x08\x88\x31\x83\x75\xe4\x16\x1b"
		 "\x98\x41\x94\x68\xf3\x03\x01\x0d\x20\xd9\x16\x1e\x90\x11\xf3\x03\x00\x0e\x0f"
		 "\xd9\x16\x1e\xf0\x03\x00\x09\x0a\xf0\x00\x01\x0d\x20\x88\x01\xf0\x06\x00\x0d"
		 "\x11\x88\x01\xf0\x04\x03\x05\x0e\xd8\x0c\x0d\x90\x01\x89\x45\x88\x01\xf0\x06"
		 "\x00\x0d\x0e\xd8\x0c\x0d\xf0\x03\x01\x0c\x12\xf0\x00\x01\x05\x12\xf9\xf2\x13"
		 "\x01\x0d\x20\xf8\xf4\x0e\x00\x0c\x1d\xf3\x00\x01\x05\x0e\xd8\x0c\x0d\x8a\x01"
		 "\xf0\x03\x01\x05\x0e\xfa", 120, 73, (const int[]){
		2, 3, 3, 3, 3, 4, 4, 4, 4, 4, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 5, 5, 5, 5, 6,
		6, 6, 5, 5, 5, 5, 6, 6, 5, 5, 5, 8, 8, 10, 11, 11, 11, 11, 11, 14, 15, 14, 14,
		-1, -1, 5, 5, 5, -1, 12, 12, 12, 12, 12, 12, 12, 12, 12, 13, 13, 13, 13, 12,
		-1, -1, -1 } },
};

/* Every version's recorded table gives co_lines()' line at every offset. */
UNIT_TEST(linetables_recorded)
{
	for (size_t v = 0; v < sizeof(recorded) / sizeof(recorded[0]); v++) {
		const struct recorded *r = &recorded[v];

		for (int i = 0; i < r->n; i++) {
			int got = pycode_line(r->minor, (const uint8_t *)r->table, r->len,
					      r->firstlineno, 2 * i);

			if (got != r->lines[i])
				FAIL("3.%d, offset %d: line %d, co_lines() says %d", r->minor,
				     2 * i, got, r->lines[i]);
		}
	}
	CHECK_INT(sizeof(recorded) / sizeof(recorded[0]), 4);
}

UNIT_TEST(linetable_not_started_is_first_line)
{
	for (size_t i = 0; i < sizeof(recorded) / sizeof(recorded[0]); i++)
		CHECK_INT(pycode_line(recorded[i].minor, (const uint8_t *)recorded[i].table,
				      recorded[i].len, 7, -2), 7);
}

UNIT_TEST(linetable_past_the_end_and_cut_short)
{
	const struct recorded *r = &recorded[1];

	/* an offset past the whole table: no line */
	CHECK_INT(pycode_line(11, (const uint8_t *)r->table, r->len, 2, 4096), -1);
	CHECK_INT(pycode_line(10, (const uint8_t *)recorded[0].table, recorded[0].len, 2, 4096),
		  -1);
	/* a table that ends inside a varint */
	CHECK_INT(pycode_line(11, (const uint8_t *)"\xf0\x40", 2, 5, 0), -1);
	/* an entry that does not start with its marker bit */
	CHECK_INT(pycode_line(12, (const uint8_t *)"\x10\x10", 2, 5, 0), -1);
	/* empty tables */
	CHECK_INT(pycode_line(13, NULL, 0, 5, 0), -1);
	CHECK_INT(pycode_line(10, NULL, 0, 5, 0), -1);
	/* 3.10: a zero-length range at the end only moves the line */
	CHECK_INT(pycode_line(10, (const uint8_t *)"\x00\x05", 2, 5, 0), -1);
}

UNIT_TEST(linetable_long_varints)
{
	/* 3.11+ long form: line delta +1000 (svarint 2000: 0x50 | 0x40, 0x1f), then
	 * one code unit at that line; a continuation chain that never ends fails */
	static const uint8_t t[] = { 0xf0, 0x50, 0x1f, 0x00, 0x01, 0x01 };
	static const uint8_t endless[] = { 0xf0, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40, 0x40,
					   0x40, 0x40, 0x40 };

	CHECK_INT(pycode_line(11, t, sizeof(t), 1, 0), 1001);
	CHECK_INT(pycode_line(11, endless, sizeof(endless), 1, 0), -1);
}

/* Random tables and offsets: every call ends, inside its bounds (ASan sees
 * the reads), with a line or -1. */
UNIT_TEST(linetable_fuzz)
{
	uint8_t buf[64];
	unsigned int seed = 12345;

	for (int round = 0; round < 200000; round++) {
		size_t len = (size_t)(rand_r(&seed) % (int)sizeof(buf));
		uint8_t *t = malloc(len ? len : 1);	/* exactly len: ASan bounds it */
		int minor = 10 + rand_r(&seed) % 4, line;

		for (size_t i = 0; i < len; i++)
			buf[i] = (uint8_t)rand_r(&seed);
		memcpy(t, buf, len);
		line = pycode_line(minor, t, len, rand_r(&seed) % 1000,
				   (rand_r(&seed) % 600) - 8);
		free(t);
		if (line < -1)
			FAIL("round %d: line %d", round, line);
	}
	CHECK(true);
}

/* ---- site paths ---------------------------------------------------------------- */

static const char *site(const char *path)
{
	static char out[256];

	pycode_site_path(path, out, sizeof(out));
	return out;
}

UNIT_TEST(site_packages_of_any_environment)
{
	CHECK_STR(site("/home/a/venv/lib/python3.11/site-packages/requests/api.py"),
		  "requests/api.py");
	CHECK_STR(site("/srv/b/.venv/lib64/python3.12/site-packages/requests/api.py"),
		  "requests/api.py");
	CHECK_STR(site("/usr/lib/python3/dist-packages/gunicorn/arbiter.py"),
		  "gunicorn/arbiter.py");
	CHECK_STR(site("/usr/local/lib/python3.11/dist-packages/x.py"), "x.py");
	/* the last site-packages: a vendored tree inside a package stays whole */
	CHECK_STR(site("/v/lib/python3.11/site-packages/pip/_vendor/site-packages/y/z.py"),
		  "y/z.py");
}

UNIT_TEST(standard_library_of_any_install)
{
	CHECK_STR(site("/usr/lib/python3.11/threading.py"), "python3.11/threading.py");
	CHECK_STR(site("/root/.pyenv/versions/3.11.7/lib/python3.11/logging/__init__.py"),
		  "python3.11/logging/__init__.py");
	CHECK_STR(site("/opt/py/lib/python3.13/threading.py"), "python3.13/threading.py");
	CHECK_STR(site("/usr/lib64/python3.12/queue.py"), "python3.12/queue.py");
	/* a directory that only looks like one is not the standard library */
	CHECK_STR(site("/home/a/python3.11/app.py"), "/home/a/python3.11/app.py");
	CHECK_STR(site("/x/lib/python3/y.py"), "/x/lib/python3/y.py");
}

UNIT_TEST(other_paths_as_they_are)
{
	CHECK_STR(site("<frozen importlib._bootstrap>"), "<frozen importlib._bootstrap>");
	CHECK_STR(site("app.py"), "app.py");
	CHECK_STR(site("/srv/app//main.py"), "/srv/app/main.py");
	CHECK_STR(site("/srv/./app/././main.py"), "/srv/app/main.py");
	CHECK_STR(site(""), "");
}

UNIT_TEST(site_path_truncates_safely)
{
	char out[8];

	CHECK_INT(pycode_site_path("/usr/lib/python3.11/threading.py", out, sizeof(out)), 23);
	CHECK_STR(out, "python3");
	CHECK_INT(pycode_site_path("abc", out, 0), 3);
	CHECK_INT(pycode_site_path("abc", out, 1), 3);
	CHECK_STR(out, "");
}

UNIT_TEST(stdlib_is_below_pythonXY_and_not_its_site_packages)
{
	CHECK(pycode_stdlib("/usr/lib/python3.11/multiprocessing/popen_fork.py"));
	CHECK(pycode_stdlib("/root/.pyenv/versions/3.12.1/lib/python3.12/threading.py"));
	CHECK(pycode_stdlib("/usr/lib64/python3.9/os.py"));
	CHECK(pycode_stdlib("<frozen os>"));
	CHECK(!pycode_stdlib("/usr/lib/python3.11/site-packages/gunicorn/arbiter.py"));
	CHECK(!pycode_stdlib("/usr/lib/python3/dist-packages/gunicorn/arbiter.py"));
	CHECK(!pycode_stdlib("/srv/app/main.py"));
	CHECK(!pycode_stdlib("/srv/python3.11/app.py"));	/* not below a lib directory */
	CHECK(!pycode_stdlib("app.py"));
	CHECK(!pycode_stdlib(""));
}

// SPDX-License-Identifier: GPL-2.0
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include "pycode.h"

/*
 * 3.10 (Objects/lnotab_notes.txt of that release): pairs of an unsigned
 * byte count and a signed line delta, -128 meaning "no line" for the range
 * without changing the running line. Empty ranges only move the line.
 */
/* A running line outside any a program can have: the table is not one. */
static bool line_wild(int64_t line)
{
	return line < 0 || line > INT_MAX;
}

static int line_310(const uint8_t *t, size_t len, int64_t line, int64_t offset)
{
	int64_t start = 0, end = 0;
	int ar_line = -1;
	size_t p = 0;

	while (end <= offset) {
		do {
			int8_t delta;

			if (p + 2 > len)
				return -1;
			start = end;
			end += t[p];
			delta = (int8_t)t[p + 1];
			p += 2;
			if (delta == -128) {
				ar_line = -1;
			} else {
				line += delta;
				if (line_wild(line))
					return -1;
				ar_line = (int)line;
			}
		} while (start == end);
	}
	return ar_line;
}

/* 3.11+ varints: 6 bits a byte, least significant first, 0x40 continues. */
static bool varint(const uint8_t *t, size_t len, size_t *p, unsigned int *val)
{
	unsigned int shift = 0;

	*val = 0;
	for (;;) {
		if (*p >= len || shift > 30)
			return false;
		*val |= (unsigned int)(t[*p] & 63) << shift;
		if (!(t[(*p)++] & 64))
			return true;
		shift += 6;
	}
}

/* Location entry kinds (Objects/locations.md, 3.11 to 3.13) */
#define LOC_NO_COLUMNS	13
#define LOC_LONG	14
#define LOC_NONE	15
#define LOC_ONE_LINE0	10
#define LOC_ONE_LINE2	12

/*
 * 3.11+: entries that each start with a byte with the top bit set: 4 bits of
 * kind, 3 bits of length - 1 in code units; the kind says how the line moves
 * (a signed varint for the long and no-column forms, 0 to 2 for the one-line
 * forms, none for the short ones); "no location" leaves it where it is.
 */
static int line_311(const uint8_t *t, size_t len, int64_t line, int64_t offset)
{
	int64_t end = 0;
	int ar_line = -1;
	size_t p = 0;

	while (end <= offset) {
		unsigned int kind, uval;

		if (p >= len || !(t[p] & 0x80))
			return -1;
		kind = (t[p] >> 3) & 15;
		end += ((t[p] & 7) + 1) * 2;
		if (kind == LOC_LONG || kind == LOC_NO_COLUMNS) {
			size_t q = p + 1;

			if (!varint(t, len, &q, &uval))
				return -1;
			line += (uval & 1) ? -(int64_t)(uval >> 1) : (int64_t)(uval >> 1);
		} else if (kind >= LOC_ONE_LINE0 && kind <= LOC_ONE_LINE2) {
			line += (int64_t)kind - LOC_ONE_LINE0;
		}
		if (line_wild(line))
			return -1;
		ar_line = kind == LOC_NONE ? -1 : (int)line;
		do
			p++;
		while (p < len && !(t[p] & 0x80));
	}
	return ar_line;
}

int pycode_line(int minor, const uint8_t *table, size_t len, int firstlineno, int64_t offset)
{
	if (offset < 0)
		return firstlineno;
	return minor <= 10 ? line_310(table, len, firstlineno, offset) :
			     line_311(table, len, firstlineno, offset);
}

/* Is path[i..] a component "pythonX.Y" (followed by '/')? Returns its length. */
static size_t stdlib_dir(const char *c)
{
	size_t n = 6;

	if (strncmp(c, "python", 6) || c[n] < '0' || c[n] > '9')
		return 0;
	while (c[n] >= '0' && c[n] <= '9')
		n++;
	if (c[n++] != '.' || c[n] < '0' || c[n] > '9')
		return 0;
	while (c[n] >= '0' && c[n] <= '9')
		n++;
	return c[n] == '/' ? n : 0;
}

/* Where path's site path begins; *stdlib: there because it is the standard
 * library's. */
static const char *site_from(const char *path, bool *stdlib)
{
	static const char *const sites[] = { "/site-packages/", "/dist-packages/" };
	const char *from = path, *lib = NULL;

	*stdlib = false;
	for (size_t i = 0; i < sizeof(sites) / sizeof(sites[0]); i++)
		for (const char *s = strstr(path, sites[i]); s; s = strstr(s + 1, sites[i]))
			if (s + strlen(sites[i]) > from)
				from = s + strlen(sites[i]);
	if (from != path)
		return from;
	/* the standard library: the last "lib/pythonX.Y/" (lib64, Lib too) */
	for (const char *s = strstr(path, "/python"); s; s = strstr(s + 1, "/python"))
		if (s > path && stdlib_dir(s + 1) && (s - path >= 3) &&
		    (!strncmp(s - 3, "lib", 3) || !strncmp(s - 3, "Lib", 3) ||
		     (s - path >= 5 && !strncmp(s - 5, "lib64", 5))))
			lib = s + 1;
	*stdlib = lib != NULL;
	return lib ? lib : path;
}

bool pycode_stdlib(const char *path)
{
	bool stdlib;

	site_from(path, &stdlib);
	return stdlib || !strncmp(path, "<frozen ", 8);
}

size_t pycode_site_path(const char *path, char *out, size_t size)
{
	bool stdlib;
	const char *from = site_from(path, &stdlib);
	size_t n = 0;

	for (const char *c = from; *c;) {
		bool slash = *c == '/';

		if (n + 1 < size)
			out[n] = *c;
		n++;
		c++;
		/* collapse "//" and "/./" */
		while (slash && (*c == '/' || (c[0] == '.' && c[1] == '/')))
			c += *c == '/' ? 1 : 2;
	}
	if (size)
		out[n < size ? n : size - 1] = '\0';
	return n;
}

void pycode_frame_text(const char *file, const char *function, int line, char *out, size_t size)
{
	char site[1024];

	pycode_site_path(file, site, sizeof(site));
	if (line > 0)
		snprintf(out, size, "%s (%s:%d)", function, site, line);
	else
		snprintf(out, size, "%s (%s)", function, site);
}

// SPDX-License-Identifier: GPL-2.0
/* escape.c: UTF-8 validation and text made safe for a terminal. */
#include <stdint.h>
#include "escape.h"
#include "unit.h"

static const char *esc(const char *s, size_t n, size_t outsz)
{
	static char out[512];

	return term_escape(s, n, out, outsz);
}

UNIT_TEST(printable_ascii_kept)
{
	CHECK_STR(esc("bash -c 'ls ~/x'", (size_t)-1, 512), "bash -c 'ls ~/x'");
	CHECK_STR(esc("", (size_t)-1, 512), "");
	CHECK_STR(esc(NULL, (size_t)-1, 512), "");
}

UNIT_TEST(escape_sequences_made_inert)
{
	/* clear screen, set title (OSC ... BEL), cursor home */
	CHECK_STR(esc("\x1b[2J\x1b]0;pwned\x07\x1b[H", (size_t)-1, 512),
		  "\\x1b[2J\\x1b]0;pwned\\x07\\x1b[H");
}

UNIT_TEST(c0_controls_del_and_newline)
{
	CHECK_STR(esc("a\nb\tc\rd", (size_t)-1, 512), "a\\x0ab\\x09c\\x0dd");
	CHECK_STR(esc("\x01\x1f\x7f", (size_t)-1, 512), "\\x01\\x1f\\x7f");
}

UNIT_TEST(c1_controls_in_utf8_escaped_bytewise)
{
	/* U+0080, U+0085 (NEL), U+009B (CSI), U+009F: two bytes each */
	CHECK_STR(esc("\xc2\x80", (size_t)-1, 512), "\\xc2\\x80");
	CHECK_STR(esc("\xc2\x85", (size_t)-1, 512), "\\xc2\\x85");
	CHECK_STR(esc("\xc2\x9b" "31m", (size_t)-1, 512), "\\xc2\\x9b31m");
	CHECK_STR(esc("\xc2\x9f", (size_t)-1, 512), "\\xc2\\x9f");
	/* U+00A0 is the first character after them: kept */
	CHECK_STR(esc("\xc2\xa0", (size_t)-1, 512), "\xc2\xa0");
}

UNIT_TEST(backslash_doubled)
{
	CHECK_STR(esc("a\\b", (size_t)-1, 512), "a\\\\b");
	/* so an escaped byte and a literal "\x41" stay different */
	CHECK_STR(esc("\\x41", (size_t)-1, 512), "\\\\x41");
}

UNIT_TEST(printable_utf8_kept)
{
	CHECK_STR(esc("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", (size_t)-1, 512),
		  "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}

UNIT_TEST(invalid_utf8_as_hex_bytes)
{
	CHECK_STR(esc("a\x80z", (size_t)-1, 512), "a\\x80z");
	CHECK_STR(esc("\xe2\x82", (size_t)-1, 512), "\\xe2\\x82");
	CHECK_STR(esc("\xc0\xaf", (size_t)-1, 512), "\\xc0\\xaf");
	CHECK_STR(esc("\xed\xa0\x80", (size_t)-1, 512), "\\xed\\xa0\\x80");
	CHECK_STR(esc("\xf4\x90\x80\x80", (size_t)-1, 512), "\\xf4\\x90\\x80\\x80");
	CHECK_STR(esc("\xff\xfe", (size_t)-1, 512), "\\xff\\xfe");
	/* a bad byte does not swallow the good sequence after it */
	CHECK_STR(esc("\xe2\xc3\xa9", (size_t)-1, 512), "\\xe2\xc3\xa9");
}

UNIT_TEST(length_limits_the_read)
{
	/* a comm field is 16 bytes, not always NUL-terminated */
	char comm[4] = { 'a', 'b', 'c', 'd' };

	CHECK_STR(esc(comm, sizeof(comm), 512), "abcd");
	CHECK_STR(esc("abcdef", 2, 512), "ab");
	/* a multibyte sequence cut by n is invalid there */
	CHECK_STR(esc("\xc3\xa9", 1, 512), "\\xc3");
	/* an embedded NUL ends the text (a NUL-padded array) */
	CHECK_STR(esc("ab\0cd", 5, 512), "ab");
}

/* Output of term_escape(s) into outsz bytes; checks no byte past outsz moved. */
static bool trunc_ok(const char *s, size_t outsz, const char *want, char *why, size_t whysz)
{
	char out[64];

	memset(out, '#', sizeof(out));
	term_escape(s, (size_t)-1, out, outsz);
	for (size_t i = outsz; i < sizeof(out); i++)
		if (out[i] != '#') {
			snprintf(why, whysz, "outsz %zu: byte %zu written", outsz, i);
			return false;
		}
	if (!memchr(out, '\0', outsz) || strcmp(out, want)) {
		snprintf(why, whysz, "outsz %zu: got '%.*s', want '%s'", outsz,
			 (int)strnlen(out, outsz), out, want);
		return false;
	}
	return true;
}

UNIT_TEST(truncation_keeps_whole_sequences)
{
	/* "é" is 2 bytes, "\x1b" becomes 4, "€" is 3 */
	static const struct { size_t outsz; const char *want; } t[] = {
		{ 1, "" },
		{ 2, "a" },
		{ 3, "a" },		/* é needs 2 + NUL */
		{ 4, "a\xc3\xa9" },
		{ 5, "a\xc3\xa9" },	/* the escape needs 4 + NUL */
		{ 7, "a\xc3\xa9" },	/* stops there: € would fit, but after a gap */
		{ 8, "a\xc3\xa9\\x1b" },
		{ 10, "a\xc3\xa9\\x1b" },
		{ 11, "a\xc3\xa9\\x1b\xe2\x82\xac" },
		/* the doubled backslash needs 2 + NUL */
		{ 12, "a\xc3\xa9\\x1b\xe2\x82\xac" },
		{ 13, "a\xc3\xa9\\x1b\xe2\x82\xac\\\\" },
		{ 64, "a\xc3\xa9\\x1b\xe2\x82\xac\\\\" },
	};
	char why[160];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		if (!trunc_ok("a\xc3\xa9\x1b\xe2\x82\xac\\", t[i].outsz, t[i].want, why,
			      sizeof(why)))
			FAIL("%s", why);
	/* outsz 0: nothing written at all */
	{
		char out[2] = { '#', '#' };

		CHECK(term_escape("abc", 3, out, 0) == out);
		CHECK(out[0] == '#');
	}
}

UNIT_TEST(utf8_valid_len_accepts)
{
	uint32_t cp = 0;

	CHECK_INT(utf8_valid_len((const unsigned char *)"A", 1, &cp), 1);
	CHECK_INT(cp, 'A');
	/* NUL is a character */
	CHECK_INT(utf8_valid_len((const unsigned char *)"", 1, &cp), 1);
	CHECK_INT(cp, 0);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\x7f", 1, &cp), 1);
	CHECK_INT(cp, 0x7f);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xc2\x80", 2, &cp), 2);
	CHECK_INT(cp, 0x80);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xdf\xbf", 2, &cp), 2);
	CHECK_INT(cp, 0x7ff);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xe0\xa0\x80", 3, &cp), 3);
	CHECK_INT(cp, 0x800);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xed\x9f\xbf", 3, &cp), 3);
	CHECK_INT(cp, 0xd7ff);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xee\x80\x80", 3, &cp), 3);
	CHECK_INT(cp, 0xe000);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xef\xbf\xbf", 3, &cp), 3);
	CHECK_INT(cp, 0xffff);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xf0\x90\x80\x80", 4, &cp), 4);
	CHECK_INT(cp, 0x10000);
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xf4\x8f\xbf\xbf", 4, &cp), 4);
	CHECK_INT(cp, 0x10ffff);
	/* only the first sequence counts */
	CHECK_INT(utf8_valid_len((const unsigned char *)"\xc3\xa9xyz", 5, &cp), 2);
	CHECK_INT(cp, 0xe9);
}

UNIT_TEST(utf8_valid_len_rejects)
{
	static const struct { const char *s; size_t n; } bad[] = {
		{ "", 0 },			/* nothing */
		{ "\x80", 1 },			/* lone continuation */
		{ "\xbf", 1 },
		{ "\xc3", 1 },			/* truncated by n */
		{ "\xc3\xa9", 1 },
		{ "\xe2\x82\xac", 2 },
		{ "\xf0\x9f\x98\x80", 3 },
		{ "\xc3\x41", 2 },		/* not a continuation */
		{ "\xe2\x28\xa1", 3 },
		{ "\xf0\x9f\x98\x41", 4 },
		{ "\xc0\x80", 2 },		/* overlongs */
		{ "\xc1\xbf", 2 },
		{ "\xe0\x9f\xbf", 3 },
		{ "\xf0\x8f\xbf\xbf", 4 },
		{ "\xed\xa0\x80", 3 },		/* surrogates */
		{ "\xed\xbf\xbf", 3 },
		{ "\xf4\x90\x80\x80", 4 },	/* > U+10FFFF */
		{ "\xf7\xbf\xbf\xbf", 4 },
		{ "\xf8\x88\x80\x80\x80", 5 },	/* 5- and 6-byte forms */
		{ "\xfc\x84\x80\x80\x80\x80", 6 },
		{ "\xfe", 1 },
		{ "\xff", 1 },
	};

	size_t i;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint32_t cp = 0x12345;
		size_t len = utf8_valid_len((const unsigned char *)bad[i].s, bad[i].n, &cp);

		if (len != 0)
			FAIL("case %zu (n %zu): length %zu, want 0", i, bad[i].n, len);
	}
	CHECK_INT(i, 22);	/* every case ran */
}

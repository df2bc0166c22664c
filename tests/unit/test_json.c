// SPDX-License-Identifier: GPL-2.0
/* json.c: structure, every escape, UTF-8 repair, and random bytes in. */
#include <limits.h>
#include <stdint.h>
#include "json.h"
#include "unit.h"

/* One value written alone at the top level. */
static const char *str_json(struct jw *w, const char *s, size_t n)
{
	jw_reset(w);
	jw_strn(w, NULL, s, n);
	return w->out.buf;
}

UNIT_TEST(nested_objects_and_arrays)
{
	struct jw w;

	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "type", "fork");
	jw_arr_begin(&w, "locks");
	jw_obj_begin(&w, NULL);
	jw_uint(&w, "tid", 7);
	jw_arr_begin(&w, "stack");
	jw_arr_end(&w);
	jw_obj_end(&w);
	jw_obj_begin(&w, NULL);
	jw_obj_end(&w);
	jw_int(&w, NULL, -3);
	jw_arr_end(&w);
	jw_obj_begin(&w, "empty");
	jw_obj_end(&w);
	jw_bool(&w, "a", true);
	jw_bool(&w, "b", false);
	jw_null(&w, "c");
	jw_raw(&w, "d", "1.5");
	jw_obj_end(&w);
	CHECK(!w.out.oom);
	CHECK_INT(w.depth, 0);
	CHECK_STR(w.out.buf, "{\"type\":\"fork\",\"locks\":[{\"tid\":7,\"stack\":[]},{},-3],"
		  "\"empty\":{},\"a\":true,\"b\":false,\"c\":null,\"d\":1.5}");
	CHECK_INT(w.out.len, strlen(w.out.buf));
	jw_free(&w);
}

UNIT_TEST(reset_starts_a_new_line)
{
	struct jw w;

	jw_init(&w);
	jw_arr_begin(&w, NULL);
	jw_int(&w, NULL, 1);
	/* left open on purpose: reset must forget the depth and the commas */
	jw_reset(&w);
	jw_obj_begin(&w, NULL);
	jw_int(&w, "x", 2);
	jw_obj_end(&w);
	CHECK_STR(w.out.buf, "{\"x\":2}");
	jw_free(&w);
	CHECK(w.out.buf == NULL);
	CHECK_INT(w.out.len, 0);
}

UNIT_TEST(integers_at_their_limits)
{
	struct jw w;

	jw_init(&w);
	jw_arr_begin(&w, NULL);
	jw_int(&w, NULL, LLONG_MIN);
	jw_int(&w, NULL, LLONG_MAX);
	jw_int(&w, NULL, 0);
	jw_uint(&w, NULL, ULLONG_MAX);
	jw_arr_end(&w);
	CHECK_STR(w.out.buf, "[-9223372036854775808,9223372036854775807,0,18446744073709551615]");
	jw_free(&w);
}

UNIT_TEST(addresses_are_lowercase_hex_strings)
{
	struct jw w;

	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_addr(&w, "a", 0x7FABCDEF0123ull);
	jw_addr(&w, "b", 0);
	jw_addr(&w, "c", UINT64_MAX);
	jw_obj_end(&w);
	CHECK_STR(w.out.buf, "{\"a\":\"0x7fabcdef0123\",\"b\":\"0x0\",\"c\":\"0xffffffffffffffff\"}");
	jw_free(&w);
}

UNIT_TEST(null_string_is_null)
{
	struct jw w;

	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "comm", NULL);
	jw_str(&w, "path", "");
	jw_obj_end(&w);
	CHECK_STR(w.out.buf, "{\"comm\":null,\"path\":\"\"}");
	jw_free(&w);
}

UNIT_TEST(quote_backslash_and_named_escapes)
{
	struct jw w;

	jw_init(&w);
	CHECK_STR(str_json(&w, "a\"b\\c", 5), "\"a\\\"b\\\\c\"");
	CHECK_STR(str_json(&w, "\n\t\r", 3), "\"\\n\\t\\r\"");
	/* '/' needs no escape and gets none */
	CHECK_STR(str_json(&w, "/usr/lib", 8), "\"/usr/lib\"");
	jw_free(&w);
}

UNIT_TEST(other_control_bytes_and_del_as_u00xx)
{
	static const char *const want[0x20] = {
		"\\u0000", "\\u0001", "\\u0002", "\\u0003", "\\u0004", "\\u0005", "\\u0006",
		"\\u0007", "\\u0008", "\\t", "\\n", "\\u000b", "\\u000c", "\\r", "\\u000e",
		"\\u000f", "\\u0010", "\\u0011", "\\u0012", "\\u0013", "\\u0014", "\\u0015",
		"\\u0016", "\\u0017", "\\u0018", "\\u0019", "\\u001a", "\\u001b", "\\u001c",
		"\\u001d", "\\u001e", "\\u001f",
	};
	char expect[32];
	struct jw w;

	jw_init(&w);
	for (int c = 0; c < 0x20; c++) {
		char in[3] = { 'x', (char)c, 'y' };

		snprintf(expect, sizeof(expect), "\"x%sy\"", want[c]);
		CHECK_STR(str_json(&w, in, 3), expect);
	}
	CHECK_STR(str_json(&w, "\x7f", 1), "\"\\u007f\"");
	/* an escape sequence a terminal would act on stays inert text */
	CHECK_STR(str_json(&w, "\x1b[2J", 4), "\"\\u001b[2J\"");
	jw_free(&w);
}

UNIT_TEST(embedded_nul_bytes_with_strn)
{
	struct jw w;

	jw_init(&w);
	CHECK_STR(str_json(&w, "ab\0cd\0", 6), "\"ab\\u0000cd\\u0000\"");
	/* jw_str stops at the first NUL, as a C string does */
	jw_reset(&w);
	jw_str(&w, NULL, "ab\0cd");
	CHECK_STR(w.out.buf, "\"ab\"");
	/* n limits the read: bytes past it are never looked at */
	CHECK_STR(str_json(&w, "abcdef", 3), "\"abc\"");
	CHECK_STR(str_json(&w, "", 0), "\"\"");
	jw_free(&w);
}

UNIT_TEST(valid_multibyte_utf8_unchanged)
{
	struct jw w;

	jw_init(&w);
	/* 2 bytes (é U+00E9), 3 bytes (€ U+20AC), 4 bytes (😀 U+1F600) */
	CHECK_STR(str_json(&w, "caf\xc3\xa9", 5), "\"caf\xc3\xa9\"");
	CHECK_STR(str_json(&w, "\xe2\x82\xac", 3), "\"\xe2\x82\xac\"");
	CHECK_STR(str_json(&w, "\xf0\x9f\x98\x80", 4), "\"\xf0\x9f\x98\x80\"");
	/* the smallest and largest of each length */
	CHECK_STR(str_json(&w, "\xc2\x80\xdf\xbf", 4), "\"\xc2\x80\xdf\xbf\"");
	CHECK_STR(str_json(&w, "\xe0\xa0\x80\xef\xbf\xbf", 6), "\"\xe0\xa0\x80\xef\xbf\xbf\"");
	CHECK_STR(str_json(&w, "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", 8),
		  "\"\xf0\x90\x80\x80\xf4\x8f\xbf\xbf\"");
	/* neighbours of the surrogates are characters */
	CHECK_STR(str_json(&w, "\xed\x9f\xbf\xee\x80\x80", 6), "\"\xed\x9f\xbf\xee\x80\x80\"");
	jw_free(&w);
}

UNIT_TEST(invalid_utf8_becomes_fffd_per_byte)
{
	struct jw w;

	jw_init(&w);
	/* lone continuation byte */
	CHECK_STR(str_json(&w, "a\x80z", 3), "\"a\\ufffdz\"");
	/* truncated sequences: at the end, and cut short by ASCII */
	CHECK_STR(str_json(&w, "\xe2\x82", 2), "\"\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xf0\x9f\x98", 3), "\"\\ufffd\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xc3" "A", 2), "\"\\ufffdA\"");
	/* overlong encodings of '/' and NUL */
	CHECK_STR(str_json(&w, "\xc0\xaf", 2), "\"\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xc1\xbf", 2), "\"\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xe0\x80\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xf0\x80\x80\x80", 4), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	/* UTF-16 surrogates U+D800 and U+DFFF */
	CHECK_STR(str_json(&w, "\xed\xa0\x80", 3), "\"\\ufffd\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xed\xbf\xbf", 3), "\"\\ufffd\\ufffd\\ufffd\"");
	/* above U+10FFFF, and the bytes that can never appear */
	CHECK_STR(str_json(&w, "\xf4\x90\x80\x80", 4), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xf5\x80\x80\x80", 4), "\"\\ufffd\\ufffd\\ufffd\\ufffd\"");
	CHECK_STR(str_json(&w, "\xf8\xfe\xff", 3), "\"\\ufffd\\ufffd\\ufffd\"");
	/* a bad byte right before a good sequence does not eat it */
	CHECK_STR(str_json(&w, "\xe2\xc3\xa9", 3), "\"\\ufffd\xc3\xa9\"");
	jw_free(&w);
}

UNIT_TEST(keys_are_escaped_too)
{
	struct jw w;

	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_int(&w, "a\"\n\xff", 1);
	jw_obj_end(&w);
	CHECK_STR(w.out.buf, "{\"a\\\"\\n\\ufffd\":1}");
	jw_free(&w);
}

UNIT_TEST(long_strings_grow_the_buffer)
{
	enum { N = 100000 };
	char *in = malloc(N);
	struct jw w;

	CHECK(in);
	memset(in, 'q', N);
	in[N - 1] = '\n';
	jw_init(&w);
	str_json(&w, in, N);
	free(in);
	CHECK(!w.out.oom);
	CHECK_INT(w.out.len, N + 3);	/* quotes, and '\n' written as two bytes */
	CHECK(w.out.buf[0] == '"' && w.out.buf[1] == 'q' && w.out.buf[N - 1] == 'q');
	CHECK_STR(w.out.buf + N, "\\n\"");
	jw_free(&w);
}

UNIT_TEST(nesting_deeper_than_supported_is_refused)
{
	struct jw w;

	jw_init(&w);
	for (int i = 0; i < JW_MAX_DEPTH - 1; i++)
		jw_arr_begin(&w, NULL);
	CHECK(!w.out.oom);
	jw_arr_begin(&w, NULL);
	CHECK(w.out.oom);
	jw_free(&w);
}

/* ---- a strict validator, independent of escape.c ------------------------ */

/*
 * Decode one well-formed UTF-8 sequence at s (Unicode 15, table 3-7, spelled
 * out byte range by byte range); 0 if there is none.
 */
static size_t ref_utf8(const unsigned char *s, size_t n, uint32_t *cp)
{
	static const struct { unsigned char lo0, hi0, lo1, hi1; size_t len; } tab[] = {
		{ 0x00, 0x7f, 0, 0, 1 },
		{ 0xc2, 0xdf, 0x80, 0xbf, 2 },
		{ 0xe0, 0xe0, 0xa0, 0xbf, 3 },
		{ 0xe1, 0xec, 0x80, 0xbf, 3 },
		{ 0xed, 0xed, 0x80, 0x9f, 3 },
		{ 0xee, 0xef, 0x80, 0xbf, 3 },
		{ 0xf0, 0xf0, 0x90, 0xbf, 4 },
		{ 0xf1, 0xf3, 0x80, 0xbf, 4 },
		{ 0xf4, 0xf4, 0x80, 0x8f, 4 },
	};

	if (!n)
		return 0;
	for (size_t t = 0; t < sizeof(tab) / sizeof(tab[0]); t++) {
		size_t len = tab[t].len;
		uint32_t c;

		if (s[0] < tab[t].lo0 || s[0] > tab[t].hi0)
			continue;
		if (len == 1) {
			*cp = s[0];
			return 1;
		}
		if (n < len || s[1] < tab[t].lo1 || s[1] > tab[t].hi1)
			return 0;
		for (size_t i = 2; i < len; i++)
			if (s[i] < 0x80 || s[i] > 0xbf)
				return 0;
		c = s[0] & (0xff >> (len + 1));
		for (size_t i = 1; i < len; i++)
			c = (c << 6) | (s[i] & 0x3f);
		*cp = c;
		return len;
	}
	return 0;
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/*
 * Validate s as exactly one JSON string (RFC 8259) and decode it into cps.
 * Returns the number of code points, or -1 with *why set.
 */
static long json_string_decode(const char *str, uint32_t *cps, size_t max, const char **why)
{
	const unsigned char *s = (const unsigned char *)str;
	size_t n = strlen(str), i = 1, k = 0;

	if (n < 2 || s[0] != '"') {
		*why = "no opening quote";
		return -1;
	}
	for (;;) {
		uint32_t cp;
		size_t len;

		if (i >= n) {
			*why = "unterminated";
			return -1;
		}
		if (s[i] == '"')
			break;
		if (s[i] < 0x20) {
			*why = "raw control character";
			return -1;
		}
		if (s[i] == '\\') {
			const char *esc = "\"\\/bfnrt";
			const char *val = "\"\\/\b\f\n\r\t";
			const char *e;

			if (i + 1 >= n) {
				*why = "backslash at the end";
				return -1;
			}
			if (s[i + 1] == 'u') {
				cp = 0;
				for (int d = 0; d < 4; d++) {
					int h = i + 2 + d < n ? hexval(s[i + 2 + d]) : -1;

					if (h < 0) {
						*why = "bad \\u escape";
						return -1;
					}
					cp = cp << 4 | (uint32_t)h;
				}
				if (cp >= 0xd800 && cp <= 0xdfff) {
					*why = "escaped surrogate";
					return -1;
				}
				i += 6;
			} else if (s[i + 1] && (e = strchr(esc, s[i + 1]))) {
				cp = (unsigned char)val[e - esc];
				i += 2;
			} else {
				*why = "unknown escape";
				return -1;
			}
		} else {
			len = ref_utf8(s + i, n - i, &cp);
			if (!len) {
				*why = "invalid UTF-8";
				return -1;
			}
			i += len;
		}
		if (k == max) {
			*why = "too long";
			return -1;
		}
		cps[k++] = cp;
	}
	if (i + 1 != n) {
		*why = "bytes after the string";
		return -1;
	}
	return (long)k;
}

/* What the writer promises: every well-formed sequence kept, every other byte U+FFFD. */
static size_t expected_cps(const unsigned char *s, size_t n, uint32_t *cps)
{
	size_t i = 0, k = 0;

	while (i < n) {
		uint32_t cp;
		size_t len = ref_utf8(s + i, n - i, &cp);

		cps[k++] = len ? cp : 0xfffd;
		i += len ? len : 1;
	}
	return k;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rng(void)
{
	/* xorshift64*: fixed seed, so a failure reproduces */
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (uint32_t)((rng_state * 0x2545f4914f6cdd1dull) >> 32);
}

/* Random bytes that often look like UTF-8, so good and bad sequences both occur. */
static size_t random_bytes(unsigned char *buf, size_t max)
{
	static const unsigned char lead[] = { 0xc2, 0xdf, 0xe0, 0xe1, 0xed, 0xef, 0xf0, 0xf4,
					      0xf5, 0xc0, 0xc1, 0xff, 0x80, 0xbf };
	size_t n = rng() % (max + 1), i = 0;

	while (i < n) {
		uint32_t r = rng();

		switch (r % 8) {
		case 0:
			buf[i++] = (unsigned char)(r >> 8);		/* any byte */
			break;
		case 1:
			buf[i++] = (unsigned char)((r >> 8) % 0x20);	/* control */
			break;
		case 2:
			buf[i++] = lead[(r >> 8) % sizeof(lead)];
			break;
		case 3:
			/* a continuation byte */
			buf[i++] = (unsigned char)(0x80 | ((r >> 8) & 0x3f));
			break;
		default:
			/* printable ASCII, '"', '\\' and DEL */
			buf[i++] = (unsigned char)(0x20 + (r >> 8) % 0x60);
			break;
		}
	}
	return n;
}

UNIT_TEST(validator_rejects_what_it_must)
{
	uint32_t cps[8];
	const char *why = NULL;

	/* the validator is only worth something if it can say no */
	CHECK(json_string_decode("\"a\nb\"", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"\xff\"", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"\xed\xa0\x80\"", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"\\x41\"", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"\\u12\"", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"ab", cps, 8, &why) < 0);
	CHECK(json_string_decode("\"a\"b", cps, 8, &why) < 0);
	CHECK_INT(json_string_decode("\"a\\u00e9\\n\xe2\x82\xac\"", cps, 8, &why), 4);
	CHECK(cps[0] == 'a' && cps[1] == 0xe9 && cps[2] == '\n' && cps[3] == 0x20ac);
}

UNIT_TEST(random_bytes_always_give_valid_json)
{
	enum { CASES = 20000, MAXLEN = 96 };
	unsigned char in[MAXLEN];
	uint32_t got[MAXLEN + 1], want[MAXLEN];
	struct jw w;
	int bad_seen = 0;

	jw_init(&w);
	for (int t = 0; t < CASES; t++) {
		size_t n = random_bytes(in, MAXLEN), nwant;
		const char *why = "";
		long ngot;

		str_json(&w, (const char *)in, n);
		CHECK(!w.out.oom);
		ngot = json_string_decode(w.out.buf, got, MAXLEN + 1, &why);
		if (ngot < 0)
			FAIL("case %d: %s in %s", t, why, w.out.buf);
		nwant = expected_cps(in, n, want);
		if ((size_t)ngot != nwant || memcmp(got, want, nwant * sizeof(want[0])))
			FAIL("case %d: decodes to other characters than the input's", t);
		for (size_t i = 0; i < nwant; i++)
			bad_seen += want[i] == 0xfffd;
	}
	/* the generator did produce the inputs this test is about */
	CHECK(bad_seen > CASES);
	jw_free(&w);
}

// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "escape.h"
#include "json.h"

void jw_init(struct jw *w)
{
	memset(w, 0, sizeof(*w));
	strbuf_init(&w->out);
	w->first[0] = true;
}

void jw_free(struct jw *w)
{
	strbuf_free(&w->out);
	jw_init(w);
}

void jw_reset(struct jw *w)
{
	strbuf_reset(&w->out);
	w->depth = 0;
	w->first[0] = true;
}

int jw_write_line(struct jw *w, FILE *f)
{
	size_t n;

	strbuf_put(&w->out, "\n", 1);
	if (w->out.oom)
		return -ENOMEM;
	n = fwrite(w->out.buf, 1, w->out.len, f);
	w->out.buf[--w->out.len] = '\0';
	return n == w->out.len + 1 ? 0 : -EIO;
}

static void put(struct jw *w, const char *s, size_t n)
{
	strbuf_put(&w->out, s, n);
}

static void puts_(struct jw *w, const char *s)
{
	strbuf_puts(&w->out, s);
}

static void put_string(struct jw *w, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	put(w, "\"", 1);
	while (i < n) {
		uint32_t cp;
		size_t ulen = utf8_valid_len(p + i, n - i, &cp);
		char esc[8];

		if (ulen > 1 || (ulen == 1 && cp >= 0x20 && cp != '"' && cp != '\\' && cp != 0x7f)) {
			run += ulen;	/* copy plain runs in one go */
			i += ulen;
			continue;
		}
		put(w, (const char *)p + i - run, run);
		run = 0;
		if (ulen == 0) {
			puts_(w, "\\ufffd");
		} else if (cp == '"' || cp == '\\') {
			esc[0] = '\\';
			esc[1] = (char)cp;
			put(w, esc, 2);
		} else if (cp == '\n') {
			puts_(w, "\\n");
		} else if (cp == '\t') {
			puts_(w, "\\t");
		} else if (cp == '\r') {
			puts_(w, "\\r");
		} else {
			snprintf(esc, sizeof(esc), "\\u%04x", cp);
			put(w, esc, 6);
		}
		i++;
	}
	put(w, (const char *)p + i - run, run);
	put(w, "\"", 1);
}

static void member(struct jw *w, const char *key)
{
	if (!w->first[w->depth])
		put(w, ",", 1);
	w->first[w->depth] = false;
	if (key) {
		put_string(w, key, strlen(key));
		put(w, ":", 1);
	}
}

static void open_(struct jw *w, const char *key, const char *bracket)
{
	member(w, key);
	puts_(w, bracket);
	if (w->depth + 1 < JW_MAX_DEPTH)
		w->depth++;
	else
		w->out.oom = true;	/* deeper than any event we write: refuse */
	w->first[w->depth] = true;
}

static void close_(struct jw *w, const char *bracket)
{
	puts_(w, bracket);
	if (w->depth > 0)
		w->depth--;
}

void jw_obj_begin(struct jw *w, const char *key) { open_(w, key, "{"); }
void jw_obj_end(struct jw *w) { close_(w, "}"); }
void jw_arr_begin(struct jw *w, const char *key) { open_(w, key, "["); }
void jw_arr_end(struct jw *w) { close_(w, "]"); }

void jw_strn(struct jw *w, const char *key, const char *s, size_t n)
{
	member(w, key);
	put_string(w, s, n);
}

void jw_str(struct jw *w, const char *key, const char *s)
{
	if (!s) {
		jw_null(w, key);
		return;
	}
	jw_strn(w, key, s, strlen(s));
}

void jw_int(struct jw *w, const char *key, long long v)
{
	char num[32];

	member(w, key);
	snprintf(num, sizeof(num), "%lld", v);
	puts_(w, num);
}

void jw_uint(struct jw *w, const char *key, unsigned long long v)
{
	char num[32];

	member(w, key);
	snprintf(num, sizeof(num), "%llu", v);
	puts_(w, num);
}

void jw_num(struct jw *w, const char *key, double v, int decimals)
{
	char num[64];

	if (!isfinite(v)) {
		jw_null(w, key);	/* JSON has no NaN nor infinity */
		return;
	}
	member(w, key);
	snprintf(num, sizeof(num), "%.*f", decimals, v);
	puts_(w, num);
}

void jw_bool(struct jw *w, const char *key, bool v)
{
	member(w, key);
	puts_(w, v ? "true" : "false");
}

void jw_null(struct jw *w, const char *key)
{
	member(w, key);
	puts_(w, "null");
}

void jw_addr(struct jw *w, const char *key, uint64_t addr)
{
	char num[24];

	member(w, key);
	snprintf(num, sizeof(num), "\"0x%llx\"", (unsigned long long)addr);
	puts_(w, num);
}

void jw_raw(struct jw *w, const char *key, const char *json)
{
	member(w, key);
	puts_(w, json);
}

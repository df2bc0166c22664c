/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A small JSON writer into a growing buffer: one event becomes one line,
 * written with a single fwrite. Strings are untrusted bytes: control
 * characters are escaped and invalid UTF-8 becomes U+FFFD, so every line
 * parses whatever a process named itself. (json-c and jansson pass invalid
 * UTF-8 through unchanged, which is why this is not one of them.)
 */
#ifndef FH_JSON_H
#define FH_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "strbuf.h"

#define JW_MAX_DEPTH 16

struct jw {
	struct strbuf out;	/* the text so far; out.oom: it failed */
	int depth;
	bool first[JW_MAX_DEPTH];	/* no comma needed yet at this level */
};

void jw_init(struct jw *w);
void jw_free(struct jw *w);
void jw_reset(struct jw *w);
/* The object written so far as one line, newline included, in one fwrite.
 * Returns 0, -ENOMEM (the writer ran out of memory) or -EIO. */
int jw_write_line(struct jw *w, FILE *f);

/* `key` is the member name inside an object, NULL inside an array or at the top. */
void jw_obj_begin(struct jw *w, const char *key);
void jw_obj_end(struct jw *w);
void jw_arr_begin(struct jw *w, const char *key);
void jw_arr_end(struct jw *w);
void jw_str(struct jw *w, const char *key, const char *s);	/* NULL -> null */
void jw_strn(struct jw *w, const char *key, const char *s, size_t n);
void jw_int(struct jw *w, const char *key, long long v);
void jw_uint(struct jw *w, const char *key, unsigned long long v);
void jw_bool(struct jw *w, const char *key, bool v);
/* A number with `decimals` digits after the point; not finite: null. */
void jw_num(struct jw *w, const char *key, double v, int decimals);
void jw_null(struct jw *w, const char *key);
void jw_addr(struct jw *w, const char *key, uint64_t addr);	/* "0x..." lowercase */
/* A value already in JSON form (e.g. a number formatted by the caller). */
void jw_raw(struct jw *w, const char *key, const char *json);

#endif

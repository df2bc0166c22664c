/* SPDX-License-Identifier: GPL-2.0 */
/*
 * A growing text buffer, always NUL-terminated: what the JSON writer and the
 * Prometheus exposition build their output in. An allocation failure is
 * remembered (oom) and every later write ignored, so callers check once, at
 * the end.
 */
#ifndef FH_STRBUF_H
#define FH_STRBUF_H

#include <stdbool.h>
#include <stddef.h>

struct strbuf {
	char *buf;	/* NULL until the first write */
	size_t len, cap;
	bool oom;
};

void strbuf_init(struct strbuf *b);
void strbuf_free(struct strbuf *b);
/* Empty again (the memory is kept); forgets an earlier failure. */
void strbuf_reset(struct strbuf *b);
void strbuf_put(struct strbuf *b, const char *s, size_t n);
void strbuf_puts(struct strbuf *b, const char *s);
/* Formatted; one piece is at most 511 bytes (truncated beyond). */
void strbuf_printf(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif

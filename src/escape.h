/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Untrusted bytes (process names, paths, symbols) made safe to show.
 * Both JSON (json.c) and the terminal renderer go through utf8_valid_len().
 */
#ifndef FH_ESCAPE_H
#define FH_ESCAPE_H

#include <stddef.h>
#include <stdint.h>

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid.
 * Rejects overlongs, surrogates and code points above U+10FFFF. */
size_t utf8_valid_len(const unsigned char *s, size_t n, uint32_t *cp);

/* Does a terminal show code point cp as itself (not act on it)? Not for C0
 * controls, DEL and C1 controls. */
static inline int term_shows(uint32_t cp)
{
	return cp >= 0x20 && cp != 0x7f && !(cp >= 0x80 && cp < 0xa0);
}

/*
 * Copy s (n bytes, or up to NUL if n == (size_t)-1) into out as text safe for
 * a terminal: control bytes (C0, DEL, C1) and invalid UTF-8 become \xNN and a
 * backslash becomes \\. Always NUL-terminates; truncates on a sequence
 * boundary. Returns out.
 */
char *term_escape(const char *s, size_t n, char *out, size_t outsz);

#endif

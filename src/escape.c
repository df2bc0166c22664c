// SPDX-License-Identifier: GPL-2.0
#include <stdio.h>
#include <string.h>
#include "escape.h"

size_t utf8_valid_len(const unsigned char *s, size_t n, uint32_t *cp)
{
	uint32_t c, min;
	size_t len;

	if (n == 0)
		return 0;
	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xe0) == 0xc0) {
		len = 2, c = s[0] & 0x1f, min = 0x80;
	} else if ((s[0] & 0xf0) == 0xe0) {
		len = 3, c = s[0] & 0x0f, min = 0x800;
	} else if ((s[0] & 0xf8) == 0xf0) {
		len = 4, c = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return len;
}

char *term_escape(const char *s, size_t n, char *out, size_t outsz)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t o = 0;

	if (outsz == 0)
		return out;
	if (n == (size_t)-1)
		n = s ? strlen(s) : 0;
	for (size_t i = 0; i < n && p[i];) {
		char piece[8];
		size_t plen;
		uint32_t cp;
		size_t ulen = utf8_valid_len(p + i, n - i, &cp);

		if (ulen == 1 && term_shows(cp) && cp != '\\') {
			piece[0] = (char)cp;
			plen = 1;
		} else if (ulen == 1 && cp == '\\') {
			/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): bytes */
			memcpy(piece, "\\\\", 2);
			plen = 2;
		} else if (ulen > 1 && term_shows(cp)) {
			memcpy(piece, p + i, ulen);
			plen = ulen;
		} else {
			/* C0/C1 controls, DEL, invalid bytes: one byte at a time */
			snprintf(piece, sizeof(piece), "\\x%02x", p[i]);
			plen = 4;
			ulen = 1;
		}
		if (o + plen + 1 > outsz)
			break;
		memcpy(out + o, piece, plen);
		o += plen;
		i += ulen;
	}
	out[o] = '\0';
	return out;
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * What CPython's code-object bytes mean, pure: the line of an instruction
 * from co_linetable, in each version's format, and the identity of a source
 * path that does not depend on where Python or a virtual environment is
 * installed. The bytes are untrusted: every read is bounded by their length.
 */
#ifndef FH_PYCODE_H
#define FH_PYCODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The source line of the instruction at byte offset `offset` (code units
 * * 2) of a code object whose co_linetable is table[0..len) and
 * co_firstlineno is firstlineno, for CPython 3.`minor`: 3.10's pairs of
 * (bytes, line delta), 3.11+'s location entries. A negative offset (a frame
 * that has not started) is the first line. Returns the line, or -1 when the
 * table gives none (an instruction without a line, an offset past the table,
 * a table cut short).
 */
int pycode_line(int minor, const uint8_t *table, size_t len, int firstlineno, int64_t offset);

/*
 * The part of a source path that names the code wherever it is installed:
 * below the last site-packages or dist-packages directory ("requests/api.py"),
 * the standard library's path from its pythonX.Y directory on
 * ("python3.11/threading.py"), anything else as it is ("<frozen os>",
 * "/srv/app/main.py", "app.py"); "//" and "/./" are collapsed. Writes at most
 * size bytes (NUL included) and returns the length the whole key has.
 */
size_t pycode_site_path(const char *path, char *out, size_t size);

/*
 * Is path the standard library's (below "lib/pythonX.Y/", not in its
 * site-packages; or a frozen module, "<frozen os>")? A site, a SARIF
 * location, a report names the innermost frame that is not: the user's code
 * that called into the library (tests/unit/test_pycode.c).
 */
bool pycode_stdlib(const char *path);

/*
 * A Python frame as people read it and as a site names it:
 * "function (site path:line)", "function (site path)" when the line is not
 * known (0). Unescaped: the caller escapes it for where it goes. Writes at
 * most size bytes (NUL included).
 */
void pycode_frame_text(const char *file, const char *function, int line, char *out, size_t size);

#endif

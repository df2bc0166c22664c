// SPDX-License-Identifier: GPL-2.0
/* log.c: every diagnostic line is terminal-safe, whatever its arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "log.h"
#include "unit.h"

/* What log_msg wrote for one message, read back from a --log-file. */
static char *logged(const char *arg)
{
	char dir[] = "/tmp/fh-log-XXXXXX", path[64];
	static char got[8192];
	size_t n = 0;
	FILE *f;

	got[0] = '\0';
	if (!mkdtemp(dir))
		return got;
	snprintf(path, sizeof(path), "%s/log", dir);
	if (log_open_file(path) == 0) {
		log_error("cannot read %s", arg);
		log_close_file();
		if ((f = fopen(path, "r"))) {
			n = fread(got, 1, sizeof(got) - 1, f);
			fclose(f);
		}
	}
	got[n] = '\0';
	unlink(path);
	rmdir(dir);
	return got;
}

UNIT_TEST(a_path_a_process_chose_is_escaped)
{
	CHECK_STR(logged("/tmp/\x1b[31mred\x07\r\x7f\xc2\x9b\xff\xfe.so"),
		  "forkhazard: cannot read /tmp/\\x1b[31mred\\x07\\x0d\\x7f\\xc2\\x9b\\xff\\xfe.so\n");
}

UNIT_TEST(valid_utf8_and_escaped_text_pass_as_they_are)
{
	CHECK_STR(logged("/srv/caf\xc3\xa9/\xe2\x9c\x93 \\x1b"),
		  "forkhazard: cannot read /srv/caf\xc3\xa9/\xe2\x9c\x93 \\x1b\n");
}

UNIT_TEST(a_message_longer_than_the_buffer_is_whole_and_escaped)
{
	char arg[3000];
	const char *got;
	size_t len;

	/* past the 1024 bytes formatted on the stack: formatted again on the heap */
	memset(arg, 'x', sizeof(arg));
	memcpy(arg + sizeof(arg) - 5, "\x1b" "end", 5);
	got = logged(arg);
	len = strlen(got);
	/* the prefix, 2995 x, ESC as 4 bytes, "end\n" */
	CHECK_INT(len, strlen("forkhazard: cannot read ") + 2995 + 4 + 4);
	CHECK(len > 8 && !strcmp(got + len - 8, "\\x1bend\n"));
}

/*
 * unwind_capture: copies its own registers (ip, sp, bp) and up to 8 KiB of
 * its stack from sp at a known depth, main -> uw_level1 -> uw_level2 ->
 * uw_level3 -> uw_capture, as the BPF side will at a fork or a deadlocked
 * wait. Built -O2 -fomit-frame-pointer: only DWARF CFI can unwind it. For
 * tests/unit/test_unwind.c.
 *
 *   unwind_capture FILE   write the capture to FILE (atomically), then wait
 *                         until stdin closes (10 s at most) and exit 0
 *
 * FILE: struct capture_hdr, then hdr.len stack bytes.
 */
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CAPTURE_MAX 8192

struct capture_hdr {
	char magic[8];		/* "FHCAPT1\0" */
	uint64_t pid, ip, sp, bp, len;
};

static unsigned char copy[CAPTURE_MAX];
static const char *out_path;

/* Bytes from sp to the end of the stack mapping, at most CAPTURE_MAX. */
static size_t stack_room(uint64_t sp)
{
	unsigned long long start, end;
	char line[512];
	size_t room = 0;
	FILE *f = fopen("/proc/self/maps", "re");

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%llx-%llx", &start, &end) == 2 && sp >= start && sp < end)
			room = end - sp;
	fclose(f);
	return room < CAPTURE_MAX ? room : CAPTURE_MAX;
}

static void write_capture(uint64_t ip, uint64_t sp, uint64_t bp, size_t len)
{
	struct capture_hdr h = { .magic = "FHCAPT1", .pid = (uint64_t)getpid(), .ip = ip,
				 .sp = sp, .bp = bp, .len = len };
	char tmp[4096];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", out_path);
	f = fopen(tmp, "we");
	if (!f || fwrite(&h, sizeof(h), 1, f) != 1 || fwrite(copy, 1, len, f) != len ||
	    fclose(f) || rename(tmp, out_path)) {
		perror("unwind_capture: write");
		exit(3);
	}
}

/* noipa: no clones (.isra, .constprop) and no inlining, so the names stay. */
__attribute__((noipa)) int uw_capture(int x)
{
	uint64_t ip, sp, bp;
	size_t len;

	/* One statement: the three registers as at one instruction. */
	__asm__ volatile("lea 0(%%rip), %0\n\tmov %%rsp, %1\n\tmov %%rbp, %2"
			 : "=r"(ip), "=r"(sp), "=r"(bp));
	len = stack_room(sp);
	memcpy(copy, (const void *)(uintptr_t)sp, len);
	write_capture(ip, sp, bp, len);
	return x + 1;
}

__attribute__((noipa)) int uw_level3(int x)
{
	return uw_capture(x * 3) + 3;
}

__attribute__((noipa)) int uw_level2(int x)
{
	return uw_level3(x * 2) + 2;
}

__attribute__((noipa)) int uw_level1(int x)
{
	return uw_level2(x + 1) + 1;
}

int main(int argc, char **argv)
{
	struct pollfd p = { .fd = 0, .events = POLLIN };
	char buf[64];
	int r;

	if (argc != 2) {
		fprintf(stderr, "usage: unwind_capture FILE\n");
		return 2;
	}
	out_path = argv[1];
	r = uw_level1(argc);
	/* Stay alive for the live unwind; leave when stdin closes. */
	for (int i = 0; i < 100; i++) {
		if (poll(&p, 1, 100) > 0 && read(0, buf, sizeof(buf)) <= 0)
			break;
	}
	return r > 0 ? 0 : 1;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * libFuzzer harness: bytes as an ELF file, through the path the symbolizer
 * takes on every module it meets (symmod.c): open and sanitize, then symbol,
 * source line, inlined calls and CFI lookups at addresses in and around its
 * segments. The file sits in a memfd, as a mapped file would sit on disk.
 */
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>
#include "symmod.h"

static void probe(struct symmod_cache *c, struct symmod *m, uint64_t vaddr)
{
	static struct fh_frame f;

	memset(&f, 0, sizeof(f));
	symmod_lookup(c, m, vaddr, &f);
	symmod_has_cfi(m, vaddr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct symmod_cache *c = symmod_cache_new(4, 64u << 20);
	struct symmod *m;
	uint64_t base, end, pick = 0;
	int fd, err;

	if (!c)
		return 0;
	fd = memfd_create("fuzz-elf", MFD_CLOEXEC);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		symmod_cache_free(c);
		return 0;
	}
	m = symmod_open(c, fd, NULL, "/fuzz/module", &err);
	if (m) {
		base = symmod_base(m);
		end = symmod_end(m);
		/* Where the input says, too: its last bytes as an offset. */
		if (size >= 8)
			memcpy(&pick, data + size - 8, 8);
		probe(c, m, base);
		probe(c, m, base + 1);
		probe(c, m, end - 1);
		probe(c, m, end);
		probe(c, m, base + (end > base ? pick % (end - base) : 0));
		for (uint64_t off = 0; off < 0x4000; off += 0x40) {
			uint64_t vaddr;

			if (!symmod_file_to_vaddr(m, off, &vaddr))
				probe(c, m, vaddr);
		}
	}
	close(fd);
	symmod_cache_free(c);
	return 0;
}

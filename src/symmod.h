/* SPDX-License-Identifier: GPL-2.0 */
/*
 * ELF modules for symbolization, each opened once and cached: its own
 * single-module Dwfl at link-time addresses, so a module's symbol table,
 * DWARF and CFI are read once whatever number of processes map it. Keyed by
 * build-id, and by file identity (device, inode, size, mtime) so that a warm
 * lookup needs no open at all. Bounded in count and estimated bytes, least
 * recently used evicted.
 *
 * The files are untrusted (any user can write the ELF files a root tracer
 * reads): opened only if regular, read with pread (a file truncated under us
 * makes reads fail, where a mapping would SIGBUS), compressed sections and
 * MiniDebugInfo (.gnu_debugdata) over a size bound are hidden from libdw,
 * and separate debug files are looked for under /usr/lib/debug only.
 */
#ifndef FH_SYMMOD_H
#define FH_SYMMOD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <elfutils/libdwfl.h>
#include "symbolize.h"

/* What identifies a file without opening it: stat() of /proc/PID/map_files/.. */
struct symmod_ident {
	uint64_t dev, ino, size;
	int64_t mtime_ns;
};

struct stat;
/* A file's identity from its stat(). */
void symmod_ident_of(const struct stat *st, struct symmod_ident *id);

/* A weak reference: valid while the slot still holds the same generation. */
struct symmod_ref {
	uint32_t slot, gen;
};

/* What a find_elf callback shares: a module's userdata in any Dwfl of ours. */
struct symmod_elfref {
	Elf *elf;
	const char *path;
};

struct symmod;
struct symmod_cache;

struct symmod_cache_stats {
	uint64_t opened, hits, evicted, refused, sections_disabled;
	size_t cached, bytes;
};

struct symmod_cache *symmod_cache_new(size_t max_modules, size_t max_bytes);
void symmod_cache_free(struct symmod_cache *c);
void symmod_cache_get_stats(const struct symmod_cache *c, struct symmod_cache_stats *st);

/* The module of a file already open (ref tried first, then the identity). */
struct symmod *symmod_find(struct symmod_cache *c, const struct symmod_ident *id,
			   struct symmod_ref *ref);

/*
 * Open the ELF file at fd (not consumed: it is duplicated) as a module.
 * id: its identity (NULL: taken from fstat); path: its name, for the
 * .gnu_debuglink search and for people. Returns the module, or NULL with
 * *err = -errno (-ENOEXEC: not a usable ELF file).
 */
struct symmod *symmod_open(struct symmod_cache *c, int fd, const struct symmod_ident *id,
			   const char *path, int *err);

/* A weak reference to m, for symmod_find. */
void symmod_get_ref(struct symmod_cache *c, const struct symmod *m, struct symmod_ref *ref);

/* Link-time address of file offset off in a loaded segment. Returns 0 or -ENOENT. */
int symmod_file_to_vaddr(const struct symmod *m, uint64_t off, uint64_t *vaddr);
/* Link-time address the module's image starts at (first PT_LOAD, page-aligned). */
uint64_t symmod_base(const struct symmod *m);
/* End of its highest segment, link-time. */
uint64_t symmod_end(const struct symmod *m);

/*
 * Symbol, source line and inlined calls at link-time address vaddr into f
 * (known, symbol, offset, file, line, inl, build_id; nothing else is touched).
 * A symbol is only given if it contains vaddr (or, sizeless, starts there):
 * never the nearest name below an address it does not cover.
 */
void symmod_lookup(struct symmod_cache *c, struct symmod *m, uint64_t vaddr,
		   struct fh_frame *f);

/* A new reference to the module's Elf (release with elf_end), for another Dwfl. */
Elf *symmod_elf_ref(struct symmod *m);

/* Callbacks for any Dwfl whose modules come from this cache: find_elf reads
 * the module's userdata as the Elf to share, find_debuginfo is confined to
 * /usr/lib/debug. */
extern const Dwfl_Callbacks symmod_dwfl_callbacks;

/* Does the module have CFI for vaddr (eh_frame or debug_frame)? The unwinder's
 * path through libdw, for the fuzzer. */
bool symmod_has_cfi(struct symmod *m, uint64_t vaddr);

/* C++ names made readable; anything else copied. Bounded input. */
void symmod_demangle(const char *name, char *out, size_t size);

#endif

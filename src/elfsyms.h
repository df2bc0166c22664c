/* SPDX-License-Identifier: GPL-2.0 */
/* Finding functions in ELF files (libelf): where to put lock probes. */
#ifndef FH_ELFSYMS_H
#define FH_ELFSYMS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ELF_MAX_ALIASES 4	/* distinct addresses kept per name (symbol versions) */

struct elf_func {
	const char *name;			/* in: function name, unversioned */
	int n;					/* out: addresses found */
	uint64_t file_offset[ELF_MAX_ALIASES];	/* out: as uprobes want them */
	uint64_t size[ELF_MAX_ALIASES];
};

/*
 * Look up each funcs[i].name among the defined FUNC symbols of the ELF file
 * open at fd (.dynsym and .symtab). Returns 0 (funcs[i].n may be 0 when a name
 * is absent) or -errno for a file that is not a usable ELF object.
 */
int elf_find_funcs(int fd, struct elf_func *funcs, size_t nfuncs);

/* A symbol of any type (functions, data), by name. */
struct elf_sym {
	const char *name;	/* in: unversioned */
	bool found;		/* out: defined in .dynsym or .symtab */
	bool local;		/* out: STB_LOCAL (only in .symtab: not exported) */
	uint64_t vaddr, size;	/* out: link-time address and size */
};

/*
 * Look up each syms[i].name among the defined symbols of the ELF file open at
 * fd, a global definition before a local one. Returns 0 or -errno for a file
 * that is not a usable ELF object.
 */
int elf_find_syms(int fd, struct elf_sym *syms, size_t nsyms);

/* Link-time address and file offset of the lowest loadable segment: a
 * process maps that file offset at vaddr + its load bias. Returns 0 or -errno. */
int elf_first_load(int fd, uint64_t *vaddr, uint64_t *offset);

/* Read up to len bytes at link-time address vaddr from the file (only bytes
 * the file holds, not .bss). Returns the count or -errno (-ENOENT: not in a
 * loaded segment). */
ssize_t elf_read_vaddr(int fd, uint64_t vaddr, void *buf, size_t len);

/* Does the file need (DT_NEEDED) a library whose name starts with prefix?
 * Returns 1, 0, or -errno for a file that is not a usable ELF object. */
int elf_needs(int fd, const char *prefix);


#endif

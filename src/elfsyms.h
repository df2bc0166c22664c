/* SPDX-License-Identifier: GPL-2.0 */
/* Finding functions in ELF files (libelf): where to put lock probes. */
#ifndef FH_ELFSYMS_H
#define FH_ELFSYMS_H

#include <stddef.h>
#include <stdint.h>

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

#endif

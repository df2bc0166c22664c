// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include "elfsyms.h"

/* A symbol's address as a file offset, through the PT_LOAD that maps it. */
static int vaddr_to_offset(Elf *elf, uint64_t vaddr, uint64_t *off)
{
	size_t nphdr;

	if (elf_getphdrnum(elf, &nphdr))
		return -EINVAL;
	for (size_t i = 0; i < nphdr; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (vaddr >= ph.p_vaddr && vaddr < ph.p_vaddr + ph.p_memsz) {
			*off = vaddr - ph.p_vaddr + ph.p_offset;
			return 0;
		}
	}
	return -ENOENT;
}

static void add_alias(struct elf_func *f, uint64_t off, uint64_t size)
{
	for (int i = 0; i < f->n; i++)
		if (f->file_offset[i] == off)
			return;
	if (f->n < ELF_MAX_ALIASES) {
		f->file_offset[f->n] = off;
		f->size[f->n] = size;
		f->n++;
	}
}

static void scan_symtab(Elf *elf, Elf_Scn *scn, GElf_Shdr *sh, struct elf_func *funcs,
			size_t nfuncs)
{
	Elf_Data *data = elf_getdata(scn, NULL);
	size_t count;

	if (!data || sh->sh_entsize == 0)
		return;
	/* Never trust sh_size against the data actually there. */
	count = data->d_size / sh->sh_entsize;
	for (size_t i = 0; i < count; i++) {
		GElf_Sym sym;
		const char *name;
		uint64_t off;

		if (!gelf_getsym(data, (int)i, &sym))
			break;
		if (GELF_ST_TYPE(sym.st_info) != STT_FUNC && GELF_ST_TYPE(sym.st_info) != STT_GNU_IFUNC)
			continue;
		if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
			continue;
		name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (!name)
			continue;
		for (size_t f = 0; f < nfuncs; f++) {
			size_t len = strlen(funcs[f].name);

			/* .symtab may spell versions into names: "fn@@GLIBC_2.2.5" */
			if (strncmp(name, funcs[f].name, len) || (name[len] && name[len] != '@'))
				continue;
			if (GELF_ST_TYPE(sym.st_info) == STT_GNU_IFUNC)
				continue;	/* a resolver, not the code: never probe it */
			if (vaddr_to_offset(elf, sym.st_value, &off) == 0)
				add_alias(&funcs[f], off, sym.st_size);
		}
	}
}

static Elf *elf_open_fd(int fd)
{
	Elf *elf;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (elf && elf_kind(elf) != ELF_K_ELF) {
		elf_end(elf);
		return NULL;
	}
	return elf;
}

int elf_find_funcs(int fd, struct elf_func *funcs, size_t nfuncs)
{
	Elf_Scn *scn = NULL;
	Elf *elf = elf_open_fd(fd);

	if (!elf)
		return -EINVAL;
	for (size_t f = 0; f < nfuncs; f++)
		funcs[f].n = 0;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM)
			scan_symtab(elf, scn, &sh, funcs, nfuncs);
	}
	elf_end(elf);
	return 0;
}

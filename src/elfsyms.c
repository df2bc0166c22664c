// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <gelf.h>
#include <libelf.h>
#include <string.h>
#include <unistd.h>
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

/* Call fn for each defined symbol of the section's table, with its name. */
typedef void (*sym_fn)(Elf *elf, const GElf_Sym *sym, const char *name, void *ctx);

static void scan_symtab(Elf *elf, Elf_Scn *scn, GElf_Shdr *sh, sym_fn fn, void *ctx)
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

		if (!gelf_getsym(data, (int)i, &sym))
			break;
		if (sym.st_shndx == SHN_UNDEF || sym.st_value == 0)
			continue;
		name = elf_strptr(elf, sh->sh_link, sym.st_name);
		if (name)
			fn(elf, &sym, name, ctx);
	}
}

/* .symtab may spell versions into names: "fn@@GLIBC_2.2.5" */
static bool name_is(const char *name, const char *want)
{
	size_t len = strlen(want);

	return !strncmp(name, want, len) && (!name[len] || name[len] == '@');
}

struct funcs_ctx {
	struct elf_func *funcs;
	size_t nfuncs;
};

static void match_func(Elf *elf, const GElf_Sym *sym, const char *name, void *ctx)
{
	struct funcs_ctx *c = ctx;
	uint64_t off;

	if (GELF_ST_TYPE(sym->st_info) != STT_FUNC)
		return;		/* nor STT_GNU_IFUNC: a resolver, not the code: never probe it */
	for (size_t f = 0; f < c->nfuncs; f++)
		if (name_is(name, c->funcs[f].name) &&
		    vaddr_to_offset(elf, sym->st_value, &off) == 0)
			add_alias(&c->funcs[f], off, sym->st_size);
}

/* Every section that is a symbol table: .dynsym and .symtab. */
static void scan_all(Elf *elf, sym_fn fn, void *ctx)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;

		if (!gelf_getshdr(scn, &sh))
			continue;
		if (sh.sh_type == SHT_SYMTAB || sh.sh_type == SHT_DYNSYM)
			scan_symtab(elf, scn, &sh, fn, ctx);
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
	struct funcs_ctx c = { funcs, nfuncs };
	Elf *elf = elf_open_fd(fd);

	if (!elf)
		return -EINVAL;
	for (size_t f = 0; f < nfuncs; f++)
		funcs[f].n = 0;
	scan_all(elf, match_func, &c);
	elf_end(elf);
	return 0;
}

struct syms_ctx {
	struct elf_sym *syms;
	size_t nsyms;
};

static void match_sym(Elf *elf, const GElf_Sym *sym, const char *name, void *ctx)
{
	struct syms_ctx *c = ctx;

	(void)elf;
	for (size_t i = 0; i < c->nsyms; i++) {
		struct elf_sym *s = &c->syms[i];
		bool local = GELF_ST_BIND(sym->st_info) == STB_LOCAL;

		/* a global definition wins over a local one of the same name */
		if (!name_is(name, s->name) || (s->found && (local || !s->local)))
			continue;
		s->found = true;
		s->local = local;
		s->vaddr = sym->st_value;
		s->size = sym->st_size;
	}
}

int elf_find_syms(int fd, struct elf_sym *syms, size_t nsyms)
{
	struct syms_ctx c = { syms, nsyms };
	Elf *elf = elf_open_fd(fd);

	if (!elf)
		return -EINVAL;
	for (size_t i = 0; i < nsyms; i++) {
		syms[i].found = syms[i].local = false;
		syms[i].vaddr = syms[i].size = 0;
	}
	scan_all(elf, match_sym, &c);
	elf_end(elf);
	return 0;
}

int elf_first_load(int fd, uint64_t *vaddr, uint64_t *offset)
{
	Elf *elf = elf_open_fd(fd);
	int ret = -ENOENT;
	size_t nphdr;

	if (!elf)
		return -EINVAL;
	if (elf_getphdrnum(elf, &nphdr))
		nphdr = 0;
	for (size_t i = 0; i < nphdr; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (ret < 0 || ph.p_vaddr < *vaddr) {
			*vaddr = ph.p_vaddr;
			*offset = ph.p_offset;
			ret = 0;
		}
	}
	elf_end(elf);
	return ret;
}

ssize_t elf_read_vaddr(int fd, uint64_t vaddr, void *buf, size_t len)
{
	Elf *elf = elf_open_fd(fd);
	ssize_t ret = -ENOENT;
	size_t nphdr;

	if (!elf)
		return -EINVAL;
	if (elf_getphdrnum(elf, &nphdr))
		nphdr = 0;
	for (size_t i = 0; i < nphdr && ret == -ENOENT; i++) {
		GElf_Phdr ph;
		uint64_t in;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD ||
		    vaddr < ph.p_vaddr || vaddr - ph.p_vaddr >= ph.p_filesz)
			continue;
		/* only what the file holds: not the zero-filled rest (.bss) */
		in = ph.p_filesz - (vaddr - ph.p_vaddr);
		ret = pread(fd, buf, len < in ? len : (size_t)in,
			    (off_t)(ph.p_offset + (vaddr - ph.p_vaddr)));
		if (ret < 0)
			ret = -errno;
	}
	elf_end(elf);
	return ret;
}


int elf_needs(int fd, const char *prefix)
{
	Elf *elf = elf_open_fd(fd);
	Elf_Scn *scn = NULL;
	size_t n = strlen(prefix);
	int found = 0;

	if (!elf)
		return -EINVAL;
	while (!found && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *data;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_DYNAMIC || !sh.sh_entsize ||
		    !(data = elf_getdata(scn, NULL)))
			continue;
		for (size_t i = 0; i < data->d_size / sh.sh_entsize; i++) {
			GElf_Dyn dyn;
			const char *name;

			if (!gelf_getdyn(data, (int)i, &dyn) || dyn.d_tag == DT_NULL)
				break;
			if (dyn.d_tag != DT_NEEDED)
				continue;
			name = elf_strptr(elf, sh.sh_link, dyn.d_un.d_val);
			if (name && !strncmp(name, prefix, n)) {
				found = 1;
				break;
			}
		}
	}
	elf_end(elf);
	return found;
}

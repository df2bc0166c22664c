// SPDX-License-Identifier: GPL-2.0
#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <gelf.h>
#include <lzma.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "symmod.h"

#define SYMMOD_IDENTS		4		/* identities (hard links, copies) per module */
#define SYMMOD_LOADS		16		/* PT_LOAD segments kept per module */
#define SYMMOD_SECTION_MAX	(256ull << 20)	/* one decompressed section */
#define SYMMOD_MINIDEBUG_IN	(16u << 20)	/* compressed .gnu_debugdata */
#define SYMMOD_MINIDEBUG_MAX	(64ull << 20)	/* ... and decompressed */
#define SYMMOD_XZ_MEMLIMIT	(64ull << 20)	/* what its decoder may ask for */
#define SYMMOD_DEMANGLE_MAX	4096		/* longer mangled names are shown as they are */
#define SYMMOD_SYM_BYTES	64		/* estimated memory per symbol table entry */

struct symmod_load {
	uint64_t vaddr, offset, filesz;
};

struct symmod {
	struct symmod_elfref ref;	/* the Dwfl's userdata: keep first */
	uint32_t gen;
	bool used;
	bool accounted;		/* symbol table and debug file counted in bytes */
	uint64_t last_use;
	int nidents;
	struct symmod_ident idents[SYMMOD_IDENTS];
	int build_id_len;
	unsigned char build_id[FH_BUILD_ID_MAX];
	char build_id_hex[FH_BUILD_ID_MAX * 2 + 1];
	char *path;
	int fd;			/* the Elf reads through it (ELF_C_READ) */
	Dwfl *dwfl;
	Dwfl_Module *dm;
	int nloads;
	struct symmod_load loads[SYMMOD_LOADS];
	uint64_t base, end;
	size_t bytes;
};

/*
 * Resolved addresses, direct-mapped: a fork storm or a hot lock resolves the
 * same few addresses again and again, and a symbol plus DWARF line and scope
 * lookup costs tens of microseconds where a hit costs a copy.
 */
#define LOOKUP_CACHE	256

struct lookup_entry {
	const struct symmod *m;	/* with gen: a module since dropped never hits */
	uint32_t gen;
	uint64_t vaddr;
	struct fh_frame f;	/* only what symmod_lookup() fills is used */
};

struct symmod_cache {
	size_t max, max_bytes;
	struct symmod *slots;
	uint64_t clock;
	struct symmod_cache_stats st;
	struct lookup_entry *lookups;
};

/* ---- Dwfl callbacks ------------------------------------------------------ */

static int find_elf(Dwfl_Module *mod, void **userdata, const char *modname, Dwarf_Addr base,
		    char **file_name, Elf **elfp)
{
	const struct symmod_elfref *r = *userdata;

	(void)mod;
	(void)modname;
	(void)base;
	*elfp = NULL;
	if (!r || !r->elf)
		return -1;
	/* Another reference to the same Elf: nothing is read twice. */
	*elfp = elf_begin(-1, ELF_C_READ, r->elf);
	if (*elfp && r->path)
		*file_name = strdup(r->path);
	return -1;
}

static char *debuginfo_path = "/usr/lib/debug";

/* Is the ELF file at fd the debug file of mod: the same build-id? */
static bool debug_file_matches(Dwfl_Module *mod, int fd)
{
	const unsigned char *want;
	const void *got;
	GElf_Addr vaddr;
	bool ok = false;
	int n;
	Elf *elf;

	n = dwfl_module_build_id(mod, &want, &vaddr);
	if (n <= 0)
		return false;
	elf = elf_begin(fd, ELF_C_READ, NULL);
	if (elf && dwelf_elf_gnu_build_id(elf, &got) == n && !memcmp(got, want, (size_t)n))
		ok = true;
	elf_end(elf);
	return ok;
}

/*
 * Separate debug files, from root's /usr/lib/debug only: by build-id
 * (.build-id/xx/yyy.debug), else by .gnu_debuglink under the binary's own
 * directory there, checked by build-id. Never beside the binary, where anyone
 * may have put a FIFO (a hang) or a symlink (any file); the debuglink name
 * itself comes from that file, so a bare name only. Nor debuginfod: libdwfl's
 * standard finder loads it (and libcurl, gnutls...) for every module without
 * local debug info, and a tracer should not reach the network on its own.
 */
static int find_debuginfo(Dwfl_Module *mod, void **userdata, const char *modname,
			  GElf_Addr base, const char *file_name, const char *debuglink_file,
			  GElf_Word debuglink_crc, char **debuginfo_file_name)
{
	char path[PATH_MAX];
	const char *slash;
	struct stat st;
	int fd;

	fd = dwfl_build_id_find_debuginfo(mod, userdata, modname, base, file_name,
					  debuglink_file, debuglink_crc, debuginfo_file_name);
	if (fd >= 0)
		return fd;
	if (!debuglink_file || !debuglink_file[0] || strchr(debuglink_file, '/') ||
	    !strcmp(debuglink_file, "..") || !file_name || file_name[0] != '/')
		return -1;
	slash = strrchr(file_name, '/');
	if (snprintf(path, sizeof(path), "%s%.*s/%s", debuginfo_path, (int)(slash - file_name),
		     file_name, debuglink_file) >= (int)sizeof(path))
		return -1;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || !debug_file_matches(mod, fd)) {
		close(fd);
		return -1;
	}
	*debuginfo_file_name = strdup(path);
	return fd;
}

const Dwfl_Callbacks symmod_dwfl_callbacks = {
	.find_elf = find_elf,
	.find_debuginfo = find_debuginfo,
	.debuginfo_path = &debuginfo_path,
};

/* ---- the cache ------------------------------------------------------------ */

struct symmod_cache *symmod_cache_new(size_t max_modules, size_t max_bytes)
{
	struct symmod_cache *c;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->max = max_modules ? max_modules : 1;
	c->max_bytes = max_bytes;
	c->slots = calloc(c->max, sizeof(*c->slots));
	c->lookups = calloc(LOOKUP_CACHE, sizeof(*c->lookups));
	if (!c->slots || !c->lookups) {
		free(c->slots);
		free(c->lookups);
		free(c);
		return NULL;
	}
	for (size_t i = 0; i < c->max; i++)
		c->slots[i].gen = 1;	/* a zeroed reference is no reference */
	return c;
}

static void drop(struct symmod_cache *c, struct symmod *m)
{
	uint32_t gen = m->gen;

	if (!m->used)
		return;
	if (m->dwfl)
		dwfl_end(m->dwfl);
	if (m->ref.elf)
		elf_end(m->ref.elf);
	if (m->fd >= 0)
		close(m->fd);
	free(m->path);
	c->st.bytes -= m->bytes;
	c->st.cached--;
	memset(m, 0, sizeof(*m));
	m->gen = gen + 1;	/* weak references to it are now stale */
}

void symmod_cache_free(struct symmod_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->max; i++)
		drop(c, &c->slots[i]);
	free(c->slots);
	free(c->lookups);
	free(c);
}

void symmod_cache_get_stats(const struct symmod_cache *c, struct symmod_cache_stats *st)
{
	*st = c->st;
}

static bool evict_one(struct symmod_cache *c, const struct symmod *keep)
{
	struct symmod *victim = NULL;

	for (size_t i = 0; i < c->max; i++) {
		struct symmod *m = &c->slots[i];

		/* cppcheck-suppress nullPointerRedundantCheck ; m is never NULL */
		if (m->used && m != keep && (!victim || m->last_use < victim->last_use))
			victim = m;
	}
	if (!victim)
		return false;
	drop(c, victim);
	c->st.evicted++;
	return true;
}

static void enforce_bytes(struct symmod_cache *c, const struct symmod *keep)
{
	while (c->max_bytes && c->st.bytes > c->max_bytes && evict_one(c, keep))
		;
}

static struct symmod *free_slot(struct symmod_cache *c)
{
	for (;;) {
		for (size_t i = 0; i < c->max; i++)
			if (!c->slots[i].used)
				return &c->slots[i];
		if (!evict_one(c, NULL))
			return NULL;
	}
}

static void touch(struct symmod_cache *c, struct symmod *m)
{
	m->last_use = ++c->clock;
	c->st.hits++;
}

static bool ident_eq(const struct symmod_ident *a, const struct symmod_ident *b)
{
	return a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime_ns == b->mtime_ns;
}

static void add_ident(struct symmod *m, const struct symmod_ident *id)
{
	for (int i = 0; i < m->nidents; i++)
		if (ident_eq(&m->idents[i], id))
			return;
	if (m->nidents < SYMMOD_IDENTS)
		m->idents[m->nidents++] = *id;
	else	/* a file copied many times: the newest copies are the likely ones */
		m->idents[SYMMOD_IDENTS - 1] = *id;
}

void symmod_get_ref(struct symmod_cache *c, const struct symmod *m, struct symmod_ref *ref)
{
	ref->slot = (uint32_t)(m - c->slots);
	ref->gen = m->gen;
}

struct symmod *symmod_find(struct symmod_cache *c, const struct symmod_ident *id,
			   struct symmod_ref *ref)
{
	if (ref && ref->gen && ref->slot < c->max) {
		struct symmod *m = &c->slots[ref->slot];

		if (m->used && m->gen == ref->gen) {
			touch(c, m);
			return m;
		}
	}
	for (size_t i = 0; i < c->max; i++) {
		struct symmod *m = &c->slots[i];

		if (!m->used)
			continue;
		for (int j = 0; j < m->nidents; j++) {
			if (ident_eq(&m->idents[j], id)) {
				touch(c, m);
				if (ref)
					symmod_get_ref(c, m, ref);
				return m;
			}
		}
	}
	return NULL;
}

/* ---- opening a file -------------------------------------------------------- */

/* Read n bytes of the file at off, in full. */
static bool read_at(int fd, void *buf, size_t n, uint64_t off)
{
	ssize_t r = pread(fd, buf, n, (off_t)off);

	return r >= 0 && (size_t)r == n;
}

/* Would .gnu_debugdata (xz) decompress within the bound? Decoded here with
 * the output thrown away, exactly as libdw will (one stream), because what an
 * xz index claims is only checked at the end of the stream. */
static bool xz_within(int fd, const GElf_Shdr *sh)
{
	lzma_stream z = LZMA_STREAM_INIT;
	uint8_t out[16384], *in;
	uint64_t total = 0;
	lzma_ret ret;

	if (sh->sh_type == SHT_NOBITS || sh->sh_size == 0 || sh->sh_size > SYMMOD_MINIDEBUG_IN)
		return false;
	in = malloc(sh->sh_size);
	if (!in)
		return false;
	if (!read_at(fd, in, sh->sh_size, sh->sh_offset) ||
	    lzma_stream_decoder(&z, SYMMOD_XZ_MEMLIMIT, 0) != LZMA_OK) {
		free(in);
		return false;
	}
	z.next_in = in;
	z.avail_in = sh->sh_size;
	do {
		z.next_out = out;
		z.avail_out = sizeof(out);
		ret = lzma_code(&z, LZMA_FINISH);
		total += sizeof(out) - z.avail_out;
	} while (ret == LZMA_OK && total <= SYMMOD_MINIDEBUG_MAX);
	lzma_end(&z);
	free(in);
	return ret == LZMA_STREAM_END && total <= SYMMOD_MINIDEBUG_MAX;
}

/* Decompressed size a compressed section declares, or UINT64_MAX if unreadable. */
static uint64_t inflated_size(int fd, const GElf_Ehdr *eh, const GElf_Shdr *sh, const char *name)
{
	bool msb = eh->e_ident[EI_DATA] == ELFDATA2MSB;
	unsigned char b[24];
	uint64_t v;

	if (sh->sh_flags & SHF_COMPRESSED) {
		/* Elf32_Chdr: ch_type, ch_size (4 bytes); Elf64_Chdr: ch_type,
		 * ch_reserved, ch_size (8 bytes at 8). */
		if (eh->e_ident[EI_CLASS] == ELFCLASS32) {
			uint32_t v32;

			if (!read_at(fd, b, 12, sh->sh_offset))
				return UINT64_MAX;
			memcpy(&v32, b + 4, 4);
			return msb ? be32toh(v32) : le32toh(v32);
		}
		if (!read_at(fd, b, 24, sh->sh_offset))
			return UINT64_MAX;
		memcpy(&v, b + 8, 8);
		return msb ? be64toh(v) : le64toh(v);
	}
	if (!strncmp(name, ".zdebug", 7)) {
		/* "ZLIB" and the size, big-endian. */
		if (!read_at(fd, b, 12, sh->sh_offset) || memcmp(b, "ZLIB", 4))
			return UINT64_MAX;
		memcpy(&v, b + 4, 8);
		return be64toh(v);
	}
	return 0;
}

static bool is_dwarf_strings(const char *name)
{
	const char *n = name + (!strncmp(name, ".zdebug", 7) ? 7 : 6);

	return (!strncmp(name, ".debug", 6) || !strncmp(name, ".zdebug", 7)) &&
	       (!strncmp(n, "_str", 4) || !strncmp(n, "_line_str", 9)) &&
	       strncmp(n, "_str_offsets", 12);
}

/*
 * libdw 0.188 runs strlen() over DWARF string sections: one whose last byte
 * is no NUL is read past its end (found by fuzz/fuzz_elf). Checked on the
 * data libdw will see: a compressed one is inflated here, within the bound
 * already checked, and stays inflated for libdw.
 */
static bool strings_terminated(Elf_Scn *scn, const GElf_Shdr *sh, const char *name, int fd)
{
	Elf_Data *d;
	char last;

	if (sh->sh_type == SHT_NOBITS || sh->sh_size == 0)
		return true;
	if (!(sh->sh_flags & SHF_COMPRESSED) && strncmp(name, ".zdebug", 7))
		return read_at(fd, &last, 1, sh->sh_offset + sh->sh_size - 1) && last == '\0';
	if (sh->sh_flags & SHF_COMPRESSED ? elf_compress(scn, 0, 0) < 0 :
	    elf_compress_gnu(scn, 0, 0) < 0)
		return false;
	d = elf_getdata(scn, NULL);
	return d && d->d_buf && d->d_size > 0 && ((const char *)d->d_buf)[d->d_size - 1] == '\0';
}

/*
 * Hide from libdw the sections whose decompression would be unbounded (a few
 * KiB of a crafted file could otherwise ask for gigabytes) or that libdw
 * would read out of bounds. Renamed in our copy of the section headers only
 * (".debug_info" -> "debug_info").
 */
static void sanitize(struct symmod_cache *c, Elf *elf, int fd)
{
	size_t shstrndx;
	GElf_Ehdr eh;
	Elf_Scn *scn = NULL;

	if (!gelf_getehdr(elf, &eh) || elf_getshdrstrndx(elf, &shstrndx))
		return;
	while ((scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		const char *name;
		bool hide = false;

		if (!gelf_getshdr(scn, &sh))
			continue;
		name = elf_strptr(elf, shstrndx, sh.sh_name);
		if (!name || name[0] != '.')
			continue;
		if (!strcmp(name, ".gnu_debugdata"))
			hide = !xz_within(fd, &sh);
		else if ((sh.sh_flags & SHF_COMPRESSED) || !strncmp(name, ".zdebug", 7))
			hide = inflated_size(fd, &eh, &sh, name) > SYMMOD_SECTION_MAX;
		if (!hide && is_dwarf_strings(name))
			hide = !strings_terminated(scn, &sh, name, fd);
		if (!hide)
			continue;
		sh.sh_name++;
		if (gelf_update_shdr(scn, &sh))
			c->st.sections_disabled++;
	}
}

void symmod_ident_of(const struct stat *st, struct symmod_ident *id)
{
	id->dev = st->st_dev;
	id->ino = st->st_ino;
	id->size = (uint64_t)st->st_size;
	id->mtime_ns = (int64_t)st->st_mtim.tv_sec * 1000000000 + st->st_mtim.tv_nsec;
}

static int read_loads(Elf *elf, struct symmod *m)
{
	size_t phnum;
	GElf_Ehdr eh;
	bool first = true;

	if (!gelf_getehdr(elf, &eh) || (eh.e_type != ET_EXEC && eh.e_type != ET_DYN) ||
	    elf_getphdrnum(elf, &phnum))
		return -ENOEXEC;
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;

		if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
			continue;
		if (ph.p_vaddr + ph.p_memsz < ph.p_vaddr || ph.p_offset + ph.p_filesz < ph.p_offset)
			return -ENOEXEC;
		if (first) {
			/* As libdwfl computes a module's start: it must agree. */
			m->base = ph.p_vaddr & -ph.p_align;
			first = false;
		}
		if (ph.p_vaddr + ph.p_memsz > m->end)
			m->end = ph.p_vaddr + ph.p_memsz;
		if (m->nloads < SYMMOD_LOADS && ph.p_filesz)
			m->loads[m->nloads++] = (struct symmod_load){
				.vaddr = ph.p_vaddr, .offset = ph.p_offset, .filesz = ph.p_filesz,
			};
	}
	if (!m->nloads || m->end <= m->base)
		return -ENOEXEC;
	return 0;
}

static struct symmod *by_build_id(struct symmod_cache *c, const unsigned char *id, int len)
{
	for (size_t i = 0; i < c->max; i++) {
		struct symmod *m = &c->slots[i];

		if (m->used && len > 0 && m->build_id_len == len && !memcmp(m->build_id, id, len))
			return m;
	}
	return NULL;
}

static int refuse(struct symmod_cache *c, int err, int *errp)
{
	c->st.refused++;
	*errp = err;
	return err;
}

struct symmod *symmod_open(struct symmod_cache *c, int fd, const struct symmod_ident *id,
			   const char *path, int *err)
{
	struct symmod tmp = { .fd = -1 }, *m;
	struct symmod_ident own;
	const void *bid = NULL;
	const char *base;
	struct stat st;
	ssize_t n;
	void **ud;
	Elf *elf;
	int dfd;

	*err = 0;
	if (fstat(fd, &st)) {
		refuse(c, -errno, err);
		return NULL;
	}
	/* Never a FIFO or a device: opening or reading one could block forever. */
	if (!S_ISREG(st.st_mode)) {
		refuse(c, -EINVAL, err);
		return NULL;
	}
	symmod_ident_of(&st, &own);
	if (!id)
		id = &own;
	m = symmod_find(c, id, NULL);
	if (m)
		return m;
	dfd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (dfd < 0) {
		*err = -errno;
		return NULL;
	}
	elf = elf_begin(dfd, ELF_C_READ, NULL);
	if (!elf || elf_kind(elf) != ELF_K_ELF || read_loads(elf, &tmp)) {
		elf_end(elf);
		close(dfd);
		refuse(c, -ENOEXEC, err);
		return NULL;
	}
	n = dwelf_elf_gnu_build_id(elf, &bid);
	if (n > 0 && n <= FH_BUILD_ID_MAX) {
		tmp.build_id_len = (int)n;
		memcpy(tmp.build_id, bid, n);
		m = by_build_id(c, tmp.build_id, tmp.build_id_len);
		if (m) {
			/* The same build under another name: one module. */
			add_ident(m, id);
			touch(c, m);
			elf_end(elf);
			close(dfd);
			return m;
		}
	}
	sanitize(c, elf, dfd);

	m = free_slot(c);
	if (!m) {
		elf_end(elf);
		close(dfd);
		*err = -ENOMEM;
		return NULL;
	}
	tmp.gen = m->gen;
	*m = tmp;
	m->used = true;
	m->fd = dfd;
	m->ref.elf = elf;
	m->path = strdup(path ? path : "");
	m->ref.path = m->path;
	for (int i = 0; i < m->build_id_len; i++)
		snprintf(m->build_id_hex + 2 * i, 3, "%02x", m->build_id[i]);
	add_ident(m, id);
	m->bytes = (size_t)st.st_size;
	c->st.cached++;
	c->st.bytes += m->bytes;
	c->st.opened++;
	m->last_use = ++c->clock;

	m->dwfl = dwfl_begin(&symmod_dwfl_callbacks);
	if (!m->dwfl || !m->path)
		goto fail;
	dwfl_report_begin(m->dwfl);
	base = strrchr(m->path, '/');
	m->dm = dwfl_report_module(m->dwfl, base ? base + 1 : m->path, m->base, m->end);
	if (!m->dm || dwfl_report_end(m->dwfl, NULL, NULL))
		goto fail;
	dwfl_module_info(m->dm, &ud, NULL, NULL, NULL, NULL, NULL, NULL);
	*ud = &m->ref;
	enforce_bytes(c, m);
	return m;
fail:
	drop(c, m);
	*err = -ENOMEM;
	return NULL;
}

/* ---- lookups ------------------------------------------------------------------ */

int symmod_file_to_vaddr(const struct symmod *m, uint64_t off, uint64_t *vaddr)
{
	for (int i = 0; i < m->nloads; i++) {
		const struct symmod_load *l = &m->loads[i];

		if (off >= l->offset && off - l->offset < l->filesz) {
			*vaddr = l->vaddr + (off - l->offset);
			return 0;
		}
	}
	return -ENOENT;
}

uint64_t symmod_base(const struct symmod *m)
{
	return m->base;
}

uint64_t symmod_end(const struct symmod *m)
{
	return m->end;
}

Elf *symmod_elf_ref(struct symmod *m)
{
	return elf_begin(-1, ELF_C_READ, m->ref.elf);
}

extern char *__cxa_demangle(const char *mangled, char *buf, size_t *len, int *status);

void symmod_demangle(const char *name, char *out, size_t size)
{
	char *d = NULL;
	int status = -1;

	if (name[0] == '_' && name[1] == 'Z' && strnlen(name, SYMMOD_DEMANGLE_MAX + 1) <=
	    SYMMOD_DEMANGLE_MAX)
		d = __cxa_demangle(name, NULL, NULL, &status);
	snprintf(out, size, "%s", d && status == 0 ? d : name);
	free(d);
}

/* A function's name as people write it: its linkage name demangled (C++
 * qualifies it), else its plain DWARF name. */
static const char *die_name(Dwarf_Die *die, char *buf, size_t size)
{
	Dwarf_Attribute attr;
	const char *name;

	if ((dwarf_attr_integrate(die, DW_AT_linkage_name, &attr) ||
	     dwarf_attr_integrate(die, DW_AT_MIPS_linkage_name, &attr)) &&
	    (name = dwarf_formstring(&attr))) {
		symmod_demangle(name, buf, size);
		return buf;
	}
	name = dwarf_diename(die);
	snprintf(buf, size, "%s", name ? name : "");
	return name ? buf : NULL;
}

static unsigned int die_udata(Dwarf_Die *die, int at)
{
	Dwarf_Attribute attr;
	Dwarf_Word v;

	if (!dwarf_attr(die, at, &attr) || dwarf_formudata(&attr, &v) || v > UINT32_MAX)
		return 0;
	return (unsigned int)v;
}

/* DWARF names sources relative to the compilation directory; people and
 * tools want the path. */
static void source_path(const char *name, const char *comp_dir, char *out, size_t size)
{
	if (name[0] != '/' && comp_dir && comp_dir[0] == '/') {
		while (name[0] == '.' && name[1] == '/')
			name += 2;
		snprintf(out, size, "%s/%s", comp_dir, name);
	} else {
		snprintf(out, size, "%s", name);
	}
}

/*
 * Source line at vaddr, and the calls inlined there: DWARF's scopes at the
 * address, innermost first; each inlined subroutine's call site is where the
 * next outer function is. The frame keeps the physical function's line.
 */
static void lookup_source(struct symmod *m, uint64_t vaddr, struct fh_frame *f)
{
	char file[FH_FILE_LEN] = "", name[FH_SYM_LEN];
	Dwarf_Die *cu, *scopes = NULL;
	Dwarf_Files *files = NULL;
	const char *comp_dir = NULL;
	Dwarf_Attribute attr;
	unsigned int line = 0;
	size_t nfiles = 0;
	Dwarf_Addr bias;
	Dwfl_Line *l;
	int n, k = 0;

	cu = dwfl_module_addrdie(m->dm, vaddr, &bias);
	if (!cu)
		return;		/* no DWARF: no line either */
	if (dwarf_attr(cu, DW_AT_comp_dir, &attr))
		comp_dir = dwarf_formstring(&attr);
	l = dwfl_module_getsrc(m->dm, vaddr);
	if (l) {
		int lineno = 0;
		const char *src = dwfl_lineinfo(l, NULL, &lineno, NULL, NULL, NULL);

		if (src && lineno > 0) {
			source_path(src, comp_dir, file, sizeof(file));
			line = (unsigned int)lineno;
		}
	}
	n = dwarf_getscopes(cu, vaddr - bias, &scopes);
	if (n > 0 && dwarf_getsrcfiles(cu, &files, &nfiles))
		files = NULL;
	for (int i = 0; i < n; i++) {
		int tag = dwarf_tag(&scopes[i]);
		unsigned int call_file;
		const char *cf;

		if (tag == DW_TAG_subprogram)
			break;
		if (tag != DW_TAG_inlined_subroutine)
			continue;
		if (k < FH_INLINE_MAX) {
			struct fh_inline *in = &f->inl[k++];

			snprintf(in->symbol, sizeof(in->symbol), "%s",
				 die_name(&scopes[i], name, sizeof(name)) ?: "");
			snprintf(in->file, sizeof(in->file), "%s", file);
			in->line = line;
		}
		call_file = die_udata(&scopes[i], DW_AT_call_file);
		cf = files && call_file < nfiles ? dwarf_filesrc(files, call_file, NULL, NULL) : NULL;
		source_path(cf ? cf : "", comp_dir, file, sizeof(file));
		if (!cf)
			file[0] = '\0';
		line = die_udata(&scopes[i], DW_AT_call_line);
	}
	free(scopes);
	f->n_inline = k;
	snprintf(f->file, sizeof(f->file), "%s", file);
	f->line = line;
}

/* Count what the first lookup loaded: the symbol table and the debug file. */
static void account(struct symmod_cache *c, struct symmod *m)
{
	const char *mainfile = NULL, *debugfile = NULL;
	size_t add = 0;
	struct stat st;
	int nsyms;

	if (m->accounted)
		return;
	m->accounted = true;
	nsyms = dwfl_module_getsymtab(m->dm);
	if (nsyms > 0)
		add += (size_t)nsyms * SYMMOD_SYM_BYTES;
	dwfl_module_info(m->dm, NULL, NULL, NULL, NULL, NULL, &mainfile, &debugfile);
	if (debugfile && (!mainfile || strcmp(debugfile, mainfile)) && !stat(debugfile, &st))
		add += (size_t)st.st_size;
	m->bytes += add;
	c->st.bytes += add;
	enforce_bytes(c, m);
}

/*
 * How many bytes of name are there to read: libdwfl hands out names as
 * pointers into a string table without checking that it ends with a NUL
 * (found by fuzz/fuzz_elf), so the table holding name bounds it. 0 if no
 * string table of elf holds it (a table read from the dynamic segment).
 */
static size_t name_room(Elf *elf, const char *name)
{
	Elf_Scn *scn = NULL;

	while (elf && (scn = elf_nextscn(elf, scn))) {
		GElf_Shdr sh;
		Elf_Data *d;

		if (!gelf_getshdr(scn, &sh) || sh.sh_type != SHT_STRTAB)
			continue;
		d = elf_getdata(scn, NULL);
		if (d && d->d_buf && name >= (const char *)d->d_buf &&
		    name < (const char *)d->d_buf + d->d_size)
			return (size_t)((const char *)d->d_buf + d->d_size - name);
	}
	return 0;
}

/* What symmod_lookup() decides about an address, copied from or to the cache. */
static void copy_lookup(struct fh_frame *to, const struct fh_frame *from)
{
	memcpy(to->build_id, from->build_id, sizeof(to->build_id));
	memcpy(to->symbol, from->symbol, sizeof(to->symbol));
	to->offset = from->offset;
	to->known = from->known;
	memcpy(to->file, from->file, sizeof(to->file));
	to->line = from->line;
	to->n_inline = from->n_inline;
	memcpy(to->inl, from->inl, sizeof(to->inl));
}

static void lookup_uncached(struct symmod_cache *c, struct symmod *m, uint64_t vaddr,
			    struct fh_frame *f);

void symmod_lookup(struct symmod_cache *c, struct symmod *m, uint64_t vaddr, struct fh_frame *f)
{
	struct lookup_entry *e =
		&c->lookups[(((uintptr_t)m >> 4) ^ vaddr ^ (vaddr >> 12)) % LOOKUP_CACHE];

	m->last_use = ++c->clock;
	if (e->m == m && e->gen == m->gen && e->vaddr == vaddr) {
		copy_lookup(f, &e->f);
		return;
	}
	lookup_uncached(c, m, vaddr, f);
	e->m = m;
	e->gen = m->gen;
	e->vaddr = vaddr;
	copy_lookup(&e->f, f);
}

static void lookup_uncached(struct symmod_cache *c, struct symmod *m, uint64_t vaddr,
			    struct fh_frame *f)
{
	GElf_Off off = 0;
	GElf_Sym sym;
	const char *name;
	Elf *symelf = NULL;
	size_t room = 0, cap = 0;

	snprintf(f->build_id, sizeof(f->build_id), "%s", m->build_id_hex);
	name = dwfl_module_addrinfo(m->dm, vaddr, &off, &sym, NULL, &symelf, NULL);
	if (name) {
		cap = name_room(symelf, name);
		room = strnlen(name, cap);
	}
	/* libdwfl falls back on the nearest sizeless symbol below: a label
	 * may be anything's neighbour, so only its own address counts. An
	 * unterminated name (room reaches the table's end) is no name. */
	if (name && room > 0 && room < cap && (sym.st_size > 0 || off == 0)) {
		char plain[FH_SYM_LEN];

		/* "fgetpos64@@GLIBC_2.2.5": the version is no part of the name. */
		snprintf(plain, sizeof(plain), "%.*s", (int)strcspn(name, "@"), name);
		symmod_demangle(plain, f->symbol, sizeof(f->symbol));
		f->offset = off;
		f->known = true;
	}
	lookup_source(m, vaddr, f);
	account(c, m);
}

bool symmod_has_cfi(struct symmod *m, uint64_t vaddr)
{
	Dwarf_Frame *frame = NULL;
	Dwarf_CFI *cfi;
	Dwarf_Addr bias;

	cfi = dwfl_module_eh_cfi(m->dm, &bias);
	if (cfi && dwarf_cfi_addrframe(cfi, vaddr - bias, &frame) == 0) {
		free(frame);
		return true;
	}
	cfi = dwfl_module_dwarf_cfi(m->dm, &bias);
	if (cfi && dwarf_cfi_addrframe(cfi, vaddr - bias, &frame) == 0) {
		free(frame);
		return true;
	}
	return false;
}

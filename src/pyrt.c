// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>
#include "elfsyms.h"
#include "libcthread.h"
#include "lockword.h"
#include "log.h"
#include "procfs.h"
#include "pycode.h"
#include "pyrt.h"
#include "pyrt_layouts.h"

#define USER_TOP	(1ULL << 47)	/* x86-64: no user address at or above */
#define MAX_INTERPS	16		/* sub-interpreters walked */
#define MAX_TSTATES	4096		/* thread states walked per interpreter */
#define MAX_STR_CHARS	1024		/* characters read of any string */
#define MAX_DICT	(1 << 16)	/* entries looked at in one dict */
#define MAX_TABLE	(256 * 1024)	/* bytes of one line table */
#define DICT_CHUNK	64		/* entries read at once */
#define HDR_MAX		1024		/* bytes of an object's header read at once */
#define REUSE_CHECK_NS	100000000LL	/* a process's PID is checked for reuse this often */

enum { T_CODE, T_UNICODE, T_BYTES, T_DICT, T_LONG, T_MODULE, T_FRAME, NTYPES };

static const char *const type_syms[NTYPES] = {
	"PyCode_Type", "PyUnicode_Type", "PyBytes_Type", "PyDict_Type", "PyLong_Type",
	"PyModule_Type", "PyFrame_Type",
};

struct code_entry {
	uint64_t addr;			/* 0: a free slot */
	uint64_t filename, name, table_obj;	/* what the object pointed to when read */
	int32_t firstlineno, ncodeunits, firsttraceable;
	char *file, *function;
	uint8_t *table;
	uint32_t table_len;
	size_t bytes;
	int32_t prev, next, chain;	/* LRU (most recent first), hash chain */
};

struct code_cache {
	struct code_entry *e;
	int32_t *heads;
	uint32_t nheads;		/* a power of two */
	int32_t cap, lru_head, lru_tail, free_head;
	size_t bytes;
};

struct py_thread {
	uint64_t ident;			/* pthread_t */
	uint64_t tstate;
	uint64_t sentinel;		/* its _tstate_lock's lock (sem_t *); 0: none */
	pid_t tid;			/* 0: not known */
	bool named;
	char name[PYRT_NAME_LEN];
};

struct pyproc {
	struct pyrt *r;
	pid_t pid;
	unsigned long long starttime;
	int64_t checked_ns;		/* when starttime was last compared */
	int status;			/* 0 readable, or why not (-errno) */
	uint64_t last_used;
	struct pyrt_offsets o;		/* the table's, corrected by _Py_DebugOffsets */
	struct pyrt_info info;
	uint64_t type[NTYPES];
	struct libc_thread libc;
	bool have_libc;
	bool modules_read;		/* the above known: only the start is awaited */
	struct code_cache codes;
	struct py_thread *threads;
	int nthreads;
	bool threads_read;
};

struct pyrt {
	struct pyrt_limits lim;
	struct pyproc **procs;
	size_t nprocs;
	uint64_t clock;
	uint32_t said;			/* reasons already logged, see say_once() */
	struct pyrt_stats stats;
};

/* ---- reading the process --------------------------------------------------- */

static bool plausible(uint64_t addr, size_t len)
{
	return addr >= 0x1000 && addr < USER_TOP && len <= USER_TOP - addr;
}

/* All of len bytes at addr, or -errno. */
static int rd(struct pyproc *p, uint64_t addr, void *buf, size_t len)
{
	ssize_t n;

	if (!plausible(addr, len))
		return -EFAULT;
	p->r->stats.reads++;
	n = lockword_read(p->pid, addr, buf, len);
	if (n == (ssize_t)len)
		return 0;
	p->r->stats.read_failures++;
	return n < 0 ? (int)n : -EFAULT;
}

static uint64_t u64_at(const uint8_t *b, int32_t off)
{
	uint64_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static uint32_t u32_at(const uint8_t *b, int32_t off)
{
	uint32_t v;

	memcpy(&v, b + off, sizeof(v));
	return v;
}

static int rd_ptr(struct pyproc *p, uint64_t addr, uint64_t *v)
{
	return rd(p, addr, v, sizeof(*v));
}

/* An object's header up to `len` bytes, if its type is `type`. */
static int rd_obj(struct pyproc *p, uint64_t obj, int type, void *buf, size_t len)
{
	int err;

	if (obj & 7)
		return -EINVAL;
	err = rd(p, obj, buf, len);
	if (err)
		return err;
	return u64_at(buf, p->o.object_type) == p->type[type] ? 0 : -EINVAL;
}

static int lowest_bit(uint32_t mask)
{
	return mask ? __builtin_ctz(mask) : 0;
}

static size_t put_utf8(char *out, size_t size, size_t n, uint32_t c)
{
	char b[4];
	size_t len;

	if (c >= 0xd800 && c <= 0xdfff)
		c = 0xfffd;	/* a lone surrogate: not UTF-8 */
	if (c < 0x80) {
		b[0] = (char)c;
		len = 1;
	} else if (c < 0x800) {
		b[0] = (char)(0xc0 | (c >> 6));
		b[1] = (char)(0x80 | (c & 0x3f));
		len = 2;
	} else if (c < 0x10000) {
		b[0] = (char)(0xe0 | (c >> 12));
		b[1] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (char)(0x80 | (c & 0x3f));
		len = 3;
	} else if (c < 0x110000) {
		b[0] = (char)(0xf0 | (c >> 18));
		b[1] = (char)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (char)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (char)(0x80 | (c & 0x3f));
		len = 4;
	} else {
		return put_utf8(out, size, n, 0xfffd);
	}
	if (n + len >= size)
		return n;	/* whole characters only */
	memcpy(out + n, b, len);
	return n + len;
}

/* A str object as UTF-8 (compact strings: every one CPython makes). */
static int rd_str(struct pyproc *p, uint64_t obj, char *out, size_t size)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t hdr[HDR_MAX], data[MAX_STR_CHARS * 4];
	uint32_t state, kind;
	int64_t length;
	size_t n = 0, chars;
	int err;

	if (!size)
		return -EINVAL;
	out[0] = '\0';
	err = rd_obj(p, obj, T_UNICODE, hdr, (size_t)o->unicode_compact_size);
	if (err)
		return err;
	memcpy(&length, hdr + o->unicode_length, sizeof(length));
	state = u32_at(hdr, o->unicode_state);
	kind = (state & (uint32_t)o->unicode_kind_mask) >> lowest_bit((uint32_t)o->unicode_kind_mask);
	if (length < 0 || !(state & (uint32_t)o->unicode_compact_mask) ||
	    (kind != 1 && kind != 2 && kind != 4))
		return -EINVAL;
	chars = length < MAX_STR_CHARS ? (size_t)length : MAX_STR_CHARS;
	err = rd(p, obj + (uint64_t)((state & (uint32_t)o->unicode_ascii_mask) ?
				     o->unicode_ascii_size : o->unicode_compact_size),
		 data, chars * kind);
	if (err && chars)
		return err;
	for (size_t i = 0; i < chars; i++) {
		uint32_t c = kind == 1 ? data[i] : kind == 2 ? (uint32_t)data[2 * i] |
			     (uint32_t)data[2 * i + 1] << 8 : u32_at(data, (int32_t)(4 * i));
		size_t was = n;

		n = put_utf8(out, size, n, c);
		if (n == was)
			break;
	}
	out[n] = '\0';
	return 0;
}

/* Is obj the ASCII str `s`? One read. */
static bool str_is(struct pyproc *p, uint64_t obj, const char *s)
{
	const struct pyrt_offsets *o = &p->o;
	size_t len = strlen(s);
	uint8_t buf[HDR_MAX];
	int64_t length;
	uint32_t state;

	if ((size_t)o->unicode_ascii_size + len > sizeof(buf) ||
	    rd_obj(p, obj, T_UNICODE, buf, (size_t)o->unicode_ascii_size + len))
		return false;
	memcpy(&length, buf + o->unicode_length, sizeof(length));
	state = u32_at(buf, o->unicode_state);
	return length == (int64_t)len && (state & (uint32_t)o->unicode_ascii_mask) &&
	       (state & (uint32_t)o->unicode_compact_mask) &&
	       !memcmp(buf + o->unicode_ascii_size, s, len);
}

/* A non-negative int below 2**64. */
static int rd_long(struct pyproc *p, uint64_t obj, uint64_t *val)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t buf[64];
	int64_t ndigits;
	uint64_t v = 0;
	int err;

	if ((size_t)o->long_digits + 3 * 4 > sizeof(buf) || o->long_digit_size != 4)
		return -ENOTSUP;
	err = rd_obj(p, obj, T_LONG, buf, (size_t)o->long_digits + 3 * 4);
	if (err)
		return err;
	if (o->long_tag >= 0) {
		uint64_t tag = u64_at(buf, o->long_tag);

		if ((tag & 3) == 2)	/* negative */
			return -ERANGE;
		ndigits = (int64_t)(tag >> 3);
	} else {
		memcpy(&ndigits, buf + o->var_size, sizeof(ndigits));
	}
	if (ndigits < 0 || ndigits > 3)
		return -ERANGE;
	for (int64_t i = ndigits - 1; i >= 0; i--) {
		uint64_t d = u32_at(buf, (int32_t)(o->long_digits + 4 * i));

		if (i == 2 && d >> (64 - 2 * o->long_shift))
			return -ERANGE;
		v = (v << o->long_shift) | d;
	}
	*val = v;
	return 0;
}

/* ---- dicts ----------------------------------------------------------------- */

/* A dict's entries, as read from its keys object (and split values). */
struct dictview {
	uint64_t entries;	/* the first entry */
	int64_t n;		/* entries in use or deleted */
	int esize, key_at, value_at;
	uint64_t values;	/* split table: its values array (0: in the entries) */
};

static int keys_view(struct pyproc *p, uint64_t keys, uint64_t values, struct dictview *v)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t hdr[128];
	uint64_t index_bytes;
	int err;

	if ((size_t)o->keys_indices > sizeof(hdr) || (keys & 7))
		return -EINVAL;
	err = rd(p, keys, hdr, (size_t)o->keys_indices);
	if (err)
		return err;
	memcpy(&v->n, hdr + o->keys_nentries, sizeof(v->n));
	if (o->keys_size >= 0) {	/* 3.10: index width from the table's size */
		int64_t size;

		memcpy(&size, hdr + o->keys_size, sizeof(size));
		if (size <= 0 || size > (int64_t)MAX_DICT * 2)
			return -EINVAL;
		index_bytes = (uint64_t)size * (size <= 0xff ? 1 : size <= 0xffff ? 2 : 4);
		v->esize = o->keys_entry_size;
		v->key_at = 8;
		v->value_at = 16;
	} else {
		uint8_t log2_bytes = hdr[o->keys_log2_index_bytes];
		bool general = hdr[o->keys_kind] == o->keys_kind_general;

		if (log2_bytes > 24)
			return -EINVAL;
		index_bytes = 1ULL << log2_bytes;
		v->esize = general ? o->keys_entry_size : o->keys_unicode_entry_size;
		v->key_at = general ? 8 : 0;
		v->value_at = general ? 16 : 8;
	}
	if (v->n < 0 || v->n > MAX_DICT)
		return -EINVAL;
	v->entries = keys + (uint64_t)o->keys_indices + index_bytes;
	v->values = values ? values + (uint64_t)o->values_array : 0;
	return 0;
}

static int dict_view(struct pyproc *p, uint64_t dict, struct dictview *v)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t hdr[128];
	int err;

	err = rd_obj(p, dict, T_DICT, hdr, (size_t)o->dict_values + 8);
	if (err)
		return err;
	return keys_view(p, u64_at(hdr, o->dict_keys), u64_at(hdr, o->dict_values), v);
}

typedef int (*entry_fn)(struct pyproc *p, uint64_t key, uint64_t value, void *ctx);

/* fn for each live entry, until it returns non-zero (returned). */
static int dict_scan(struct pyproc *p, const struct dictview *v, entry_fn fn, void *ctx)
{
	uint8_t ents[DICT_CHUNK * 24];
	uint64_t vals[DICT_CHUNK];

	if (v->esize <= 0 || v->esize > 24)
		return -EINVAL;
	for (int64_t i = 0; i < v->n; i += DICT_CHUNK) {
		int64_t m = v->n - i < DICT_CHUNK ? v->n - i : DICT_CHUNK;
		int err = rd(p, v->entries + (uint64_t)(i * v->esize), ents, (size_t)(m * v->esize));

		if (!err && v->values)
			err = rd(p, v->values + (uint64_t)i * 8, vals, (size_t)m * 8);
		if (err)
			return err;
		for (int64_t j = 0; j < m; j++) {
			uint64_t key = u64_at(ents, (int32_t)(j * v->esize + v->key_at));
			uint64_t value = v->values ? vals[j] :
					 u64_at(ents, (int32_t)(j * v->esize + v->value_at));

			if (key && value && (err = fn(p, key, value, ctx)))
				return err;
		}
	}
	return 0;
}

struct find_str {
	const char *key;
	uint64_t value;
};

static int match_str(struct pyproc *p, uint64_t key, uint64_t value, void *ctx)
{
	struct find_str *f = ctx;

	if (!str_is(p, key, f->key))
		return 0;
	f->value = value;
	return 1;
}

static int view_get(struct pyproc *p, const struct dictview *v, const char *key, uint64_t *value)
{
	struct find_str f = { key, 0 };
	int err = dict_scan(p, v, match_str, &f);

	if (err < 0)
		return err;
	if (!err)
		return -ENOENT;
	*value = f.value;
	return 0;
}

static int dict_get(struct pyproc *p, uint64_t dict, const char *key, uint64_t *value)
{
	struct dictview v;
	int err = dict_view(p, dict, &v);

	return err ? err : view_get(p, &v, key, value);
}

/* An instance attribute, from wherever the version keeps instance dicts. */
static int attr_get(struct pyproc *p, uint64_t obj, const char *name, uint64_t *value)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t tp[HDR_MAX];
	uint64_t type, flags, dict = 0, values = 0;
	int64_t dictoffset, basicsize;
	struct dictview v;
	int err;

	if ((obj & 7) || rd_ptr(p, obj + (uint64_t)o->object_type, &type) ||
	    (size_t)o->type_cached_keys + 8 > sizeof(tp) || (type & 7) ||
	    rd(p, type, tp, (size_t)o->type_cached_keys + 8))
		return -EFAULT;
	flags = u64_at(tp, o->type_flags);
	memcpy(&dictoffset, tp + o->type_dictoffset, sizeof(dictoffset));
	memcpy(&basicsize, tp + o->type_basicsize, sizeof(basicsize));
	if (!o->tpflag_managed_dict || !(flags & (uint64_t)o->tpflag_managed_dict)) {
		if (dictoffset <= 0 || dictoffset > 4096)
			return -ENOTSUP;
		err = rd_ptr(p, obj + (uint64_t)dictoffset, &dict);
		return err ? err : dict ? dict_get(p, dict, name, value) : -ENOENT;
	}
	/* managed: a dict pointer before the object, or values without a dict */
	err = rd_ptr(p, obj + (uint64_t)(int64_t)o->managed_dict, &dict);
	if (err)
		return err;
	if (p->info.minor == 11) {
		if (!dict && (err = rd_ptr(p, obj + (uint64_t)(int64_t)o->managed_dict - 8, &values)))
			return err;
	} else if (p->info.minor == 12) {
		if (dict & 1) {		/* PyDictOrValues: values - 1, tagged */
			values = dict + 1;
			dict = 0;
		}
	} else if (!dict && o->tpflag_inline_values && (flags & (uint64_t)o->tpflag_inline_values)) {
		uint8_t valid = 0;

		if (basicsize <= 0 || basicsize > 4096)
			return -EINVAL;
		values = obj + (uint64_t)basicsize;
		err = rd(p, values + (uint64_t)o->values_valid, &valid, 1);
		if (err || !valid)
			return err ? err : -ENOENT;
	}
	if (dict)
		return dict_get(p, dict, name, value);
	if (!values)
		return -ENOENT;
	err = keys_view(p, u64_at(tp, o->type_cached_keys), values, &v);
	return err ? err : view_get(p, &v, name, value);
}

/* ---- opening a process ------------------------------------------------------- */

#define SAY_VERSION	0x1	/* a version without a layout */
#define SAY_FREE	0x2	/* free-threaded */
#define SAY_UNKNOWN	0x4	/* no version to be found */
#define SAY_DEBUG	0x8	/* _Py_DebugOffsets unusable */

static void say_once(struct pyrt *r, uint32_t what, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void say_once(struct pyrt *r, uint32_t what, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (r->said & what)
		return;
	r->said |= what;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_info("python: %s", msg);
}

struct find_module {
	const char *exe;
	struct fh_mapping lib, exe_map;
	bool have_lib, have_exe;
};

static bool is_libpython(const char *path)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	return !strncmp(base, "libpython3.", 11) && strstr(base, ".so");
}

/* The mapping of a file to compute its load bias from: the one of file
 * offset 0 (the first segment), else the lowest. */
static bool better_base(const struct fh_mapping *m, const struct fh_mapping *cur)
{
	if ((m->offset == 0) != (cur->offset == 0))
		return m->offset == 0;
	return m->start < cur->start;
}

static int note_module(const struct fh_mapping *m, void *ctx)
{
	struct find_module *f = ctx;

	if (!m->path[0] || m->path[0] != '/')
		return 0;
	if (is_libpython(m->path) && (!f->have_lib || !strcmp(m->path, f->lib.path))) {
		if (!f->have_lib || better_base(m, &f->lib))
			f->lib = *m;
		f->have_lib = true;
	} else if (!strcmp(m->path, f->exe) && (!f->have_exe || better_base(m, &f->exe_map))) {
		f->exe_map = *m;
		f->have_exe = true;
	}
	return 0;
}

/* "3.12" in "libpython3.12.so.1.0" or "python3.12": the minor, or -1. */
static int minor_from_name(const char *path, bool *free_threaded)
{
	const char *base = strrchr(path, '/'), *s;
	char *end;
	long minor;

	base = base ? base + 1 : path;
	s = strstr(base, "python3.");
	if (!s)
		return -1;
	minor = strtol(s + 8, &end, 10);
	*free_threaded = *end == 't';
	return end > s + 8 && minor >= 0 && minor < 100 ? (int)minor : -1;
}

/* Cross-check against the running interpreter's own offsets (3.13+). */
static int apply_debug_offsets(struct pyproc *p)
{
	struct pyrt_offsets *o = &p->o;
	uint8_t dbg[4096];
	uint64_t version, free_threaded;
	int err;

	if (o->dbg_size < 24 || (size_t)o->dbg_size > sizeof(dbg))
		return 0;
	err = rd(p, p->info.runtime, dbg, (size_t)o->dbg_size);
	if (err)
		return err;
	version = u64_at(dbg, 8);
	free_threaded = u64_at(dbg, 16);
	if (memcmp(dbg, "xdebugpy", 8) || (version >> 24) != 3 ||
	    ((version >> 16) & 0xff) != (uint64_t)p->info.minor) {
		say_once(p->r, SAY_DEBUG, "PID %d: no _Py_DebugOffsets at _PyRuntime, "
			 "using the table for 3.%d", (int)p->pid, p->info.minor);
		return 0;
	}
	if (free_threaded)
		return -ENOTSUP;
	p->info.debug_offsets = true;
	for (int i = 0; i < o->ndbg; i++) {
		int32_t *ours = (int32_t *)((char *)o + o->dbg[i].ours);
		uint64_t theirs;

		if ((size_t)o->dbg[i].theirs + 8 > (size_t)o->dbg_size)
			continue;
		theirs = u64_at(dbg, o->dbg[i].theirs);
		if (theirs > 0xffff)
			continue;	/* not an offset: keep the table's */
		if (*ours != (int32_t)theirs) {
			log_debug("python: PID %d: _Py_DebugOffsets field at %u is %" PRIu64
				  ", the 3.%d table has %d: using the interpreter's", (int)p->pid,
				  o->dbg[i].theirs, theirs, p->info.minor, *ours);
			*ours = (int32_t)theirs;
		}
	}
	return 0;
}

/*
 * The file mapped at m, as the process sees it: /proc/PID/map_files (any
 * mount namespace, deleted files too), else /proc/PID/root + its path if
 * that is the same file (a mapping split or merged since maps was read has
 * another map_files name).
 */
static int open_module(pid_t pid, const struct fh_mapping *m)
{
	char path[PATH_MAX + 64];
	struct stat st;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/map_files/%llx-%llx", (int)pid,
		 (unsigned long long)m->start, (unsigned long long)m->end);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "/proc/%d/root%s", (int)pid, m->path);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return errno == ENOENT && !procfs_pid_exists(pid) ? -ESRCH : -errno;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode) || st.st_ino != m->inode ||
	    major(st.st_dev) != m->dev_major || minor(st.st_dev) != m->dev_minor) {
		close(fd);
		return -ENOENT;
	}
	return fd;
}

/* Symbols, version and layout from the ELF file of the module at m. */
static int read_module(struct pyproc *p, const struct fh_mapping *m)
{
	struct elf_sym syms[NTYPES + 2];
	uint64_t first_vaddr = 0, first_off = 0, bias;
	bool free_threaded = false;
	int fd, err, minor = -1, micro = -1;
	uint32_t version = 0;

	fd = open_module(p->pid, m);
	if (fd < 0)
		return fd;
	memset(syms, 0, sizeof(syms));
	for (int i = 0; i < NTYPES; i++)
		syms[i].name = type_syms[i];
	syms[NTYPES].name = "_PyRuntime";
	syms[NTYPES + 1].name = "Py_Version";
	err = elf_find_syms(fd, syms, NTYPES + 2);
	if (!err && !syms[NTYPES].found)
		err = -ENOENT;		/* no interpreter in it */
	if (!err)
		err = elf_first_load(fd, &first_vaddr, &first_off);
	if (!err && syms[NTYPES + 1].found &&
	    elf_read_vaddr(fd, syms[NTYPES + 1].vaddr, &version, 4) != 4)
		version = 0;
	close(fd);
	if (err)
		return err == -EINVAL ? -ENOENT : err;
	/* the mapping of file offset 0 is where the first segment is loaded */
	bias = m->start - m->offset - (first_vaddr - first_off);
	if (version) {
		minor = (int)((version >> 16) & 0xff);
		micro = (int)((version >> 8) & 0xff);
	} else {
		minor = minor_from_name(m->path, &free_threaded);
	}
	if (free_threaded || (minor_from_name(m->path, &free_threaded) >= 0 && free_threaded)) {
		say_once(p->r, SAY_FREE, "PID %d: a free-threaded CPython 3.%d (%s) is not "
			 "readable: its objects are laid out differently", (int)p->pid, minor,
			 m->path);
		return -ENOTSUP;
	}
	p->info.major = minor < 0 ? 0 : 3;
	p->info.minor = minor < 0 ? 0 : minor;
	p->info.micro = micro;
	if (minor < 0) {
		say_once(p->r, SAY_UNKNOWN, "PID %d: %s holds a CPython whose version cannot be "
			 "told (no Py_Version, no version in its name): not readable", (int)p->pid,
			 m->path);
		return -ENOTSUP;
	}
	p->info.runtime = bias + syms[NTYPES].vaddr;
	snprintf(p->info.module, sizeof(p->info.module), "%.*s", (int)sizeof(p->info.module) - 1,
		 m->path);
	for (int i = 0; i < NTYPES; i++)
		p->type[i] = syms[i].found ? bias + syms[i].vaddr : 0;
	for (int i = 0; i < pyrt_nlayouts; i++)
		if (pyrt_layouts[i].major == 3 && pyrt_layouts[i].minor == minor)
			p->o = pyrt_layouts[i];
	if (!p->o.major) {
		say_once(p->r, SAY_VERSION, "PID %d: CPython 3.%d (%s) is not readable: no layout "
			 "for it (scripts/gen-pyoffsets.py measures one from its headers)",
			 (int)p->pid, minor, m->path);
		return -ENOTSUP;
	}
	for (int i = 0; i < NTYPES; i++)
		if (!p->type[i] && (i != T_FRAME || minor == 10))
			return -ENOTSUP;
	return 0;
}

/* Has the interpreter of p started (its first interpreter state exists)? */
static int proc_started(struct pyproc *p)
{
	uint64_t head;
	int err = rd_ptr(p, p->info.runtime + (uint64_t)p->o.runtime_interpreters_head, &head);

	if (err)
		return err == -EFAULT ? -EAGAIN : err;
	return head ? 0 : -EAGAIN;
}

static int proc_read(struct pyproc *p)
{
	struct find_module f = { 0 };
	char link[64], exe[PATH_MAX];
	struct fh_proc_stat st;
	ssize_t n;
	int err;

	/* polled every few ms while a Python starts: its ELF files once */
	if (p->modules_read)
		return proc_started(p);
	err = procfs_read_stat(p->pid, 0, &st);
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	p->starttime = st.starttime;
	snprintf(link, sizeof(link), "/proc/%d/exe", (int)p->pid);
	n = readlink(link, exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	f.exe = exe;
	err = procfs_for_each_mapping(p->pid, note_module, &f);
	if (err)
		return err == -ENOENT ? -ESRCH : err;
	/* a libpython first: the executable then only loads it */
	err = f.have_lib ? read_module(p, &f.lib) : -ENOENT;
	if (err == -ENOENT && f.have_exe)
		err = read_module(p, &f.exe_map);
	if (err)
		return err;
	err = apply_debug_offsets(p);
	if (err) {
		if (err == -ENOTSUP)
			say_once(p->r, SAY_FREE, "PID %d: a free-threaded CPython 3.%d is not "
				 "readable", (int)p->pid, p->info.minor);
		return err;
	}
	p->have_libc = !libcthread_of_process(p->pid, &p->libc);
	p->modules_read = true;
	return proc_started(p);
}

/* ---- the code cache ---------------------------------------------------------- */

static size_t hash_addr(uint64_t a, uint32_t nheads)
{
	return (size_t)((a * 0x9e3779b97f4a7c15ull) >> 32) & (nheads - 1);
}

static int cache_init(struct code_cache *c, size_t cap)
{
	c->cap = (int32_t)cap;
	for (c->nheads = 1; c->nheads < 2 * cap; c->nheads <<= 1)
		;
	c->e = calloc(cap, sizeof(*c->e));
	c->heads = malloc(c->nheads * sizeof(*c->heads));
	if (!c->e || !c->heads)
		return -ENOMEM;
	for (uint32_t i = 0; i < c->nheads; i++)
		c->heads[i] = -1;
	for (int32_t i = 0; i < c->cap; i++)
		c->e[i].next = i + 1 < c->cap ? i + 1 : -1;
	c->free_head = 0;
	c->lru_head = c->lru_tail = -1;
	return 0;
}

static void lru_unlink(struct code_cache *c, int32_t i)
{
	struct code_entry *e = &c->e[i];

	if (e->prev >= 0)
		c->e[e->prev].next = e->next;
	else
		c->lru_head = e->next;
	if (e->next >= 0)
		c->e[e->next].prev = e->prev;
	else
		c->lru_tail = e->prev;
}

static void lru_push(struct code_cache *c, int32_t i)
{
	c->e[i].prev = -1;
	c->e[i].next = c->lru_head;
	if (c->lru_head >= 0)
		c->e[c->lru_head].prev = i;
	c->lru_head = i;
	if (c->lru_tail < 0)
		c->lru_tail = i;
}

static int32_t cache_find(struct code_cache *c, uint64_t addr)
{
	if (!c->e)
		return -1;
	for (int32_t i = c->heads[hash_addr(addr, c->nheads)]; i >= 0; i = c->e[i].chain)
		if (c->e[i].addr == addr)
			return i;
	return -1;
}

static void cache_remove(struct code_cache *c, int32_t i)
{
	struct code_entry *e = &c->e[i];
	int32_t *pp = &c->heads[hash_addr(e->addr, c->nheads)];

	while (*pp != i)
		pp = &c->e[*pp].chain;
	*pp = e->chain;
	lru_unlink(c, i);
	c->bytes -= e->bytes;
	free(e->file);
	free(e->function);
	free(e->table);
	memset(e, 0, sizeof(*e));
	e->next = c->free_head;
	c->free_head = i;
}

static void cache_free(struct code_cache *c)
{
	while (c->e && c->lru_head >= 0)
		cache_remove(c, c->lru_head);
	free(c->e);
	free(c->heads);
	memset(c, 0, sizeof(*c));
}

/* Take ownership of *e (its strings and table) into the cache. */
static int32_t cache_insert(struct pyproc *p, struct code_entry *e)
{
	struct code_cache *c = &p->codes;
	int32_t i;

	if (!c->e && cache_init(c, p->r->lim.max_codes))
		return -1;
	while (c->lru_tail >= 0 &&
	       (c->free_head < 0 || c->bytes + e->bytes > p->r->lim.max_code_bytes)) {
		cache_remove(c, c->lru_tail);
		p->r->stats.code_evicted++;
	}
	if (c->free_head < 0 || e->bytes > p->r->lim.max_code_bytes)
		return -1;
	i = c->free_head;
	c->free_head = c->e[i].next;
	c->e[i] = *e;
	c->e[i].chain = c->heads[hash_addr(e->addr, c->nheads)];
	c->heads[hash_addr(e->addr, c->nheads)] = i;
	lru_push(c, i);
	c->bytes += e->bytes;
	return i;
}

/* ---- code objects ------------------------------------------------------------ */

/* The fields of a code object that say what it is, read in one go. */
static int code_header(struct pyproc *p, uint64_t code, struct code_entry *e)
{
	const struct pyrt_offsets *o = &p->o;
	uint8_t hdr[HDR_MAX];
	int32_t end = 0;
	const int32_t fields[] = { o->code_filename, o->code_name, o->code_qualname,
				   o->code_linetable, o->code_firstlineno, o->code_firsttraceable,
				   o->var_size };
	int err;

	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] + 8 > end)
			end = fields[i] + 8;
	if ((size_t)end > sizeof(hdr))
		return -EINVAL;
	err = rd_obj(p, code, T_CODE, hdr, (size_t)end);
	if (err)
		return err;
	memset(e, 0, sizeof(*e));
	e->addr = code;
	e->filename = u64_at(hdr, o->code_filename);
	e->name = u64_at(hdr, o->code_qualname >= 0 ? o->code_qualname : o->code_name);
	e->table_obj = u64_at(hdr, o->code_linetable);
	e->firstlineno = (int32_t)u32_at(hdr, o->code_firstlineno);
	e->firsttraceable = o->code_firsttraceable >= 0 ?
			    (int32_t)u32_at(hdr, o->code_firsttraceable) : 0;
	/* 3.11+: a code object's size is its count of code units */
	e->ncodeunits = o->code_adaptive >= 0 ? (int32_t)u64_at(hdr, o->var_size) : -1;
	return 0;
}

static int code_fill(struct pyproc *p, struct code_entry *e)
{
	char file[PYRT_FILE_LEN], function[PYRT_FUNC_LEN];
	uint8_t hdr[64];
	int64_t size = 0;
	int err;

	err = rd_str(p, e->filename, file, sizeof(file));
	if (!err)
		err = rd_str(p, e->name, function, sizeof(function));
	if (err)
		return err;
	/* a line table that cannot be read leaves the line unknown, not the frame */
	if (!rd_obj(p, e->table_obj, T_BYTES, hdr, (size_t)p->o.bytes_data)) {
		memcpy(&size, hdr + p->o.var_size, sizeof(size));
		if (size > 0 && size <= MAX_TABLE && (e->table = malloc((size_t)size)) &&
		    !rd(p, e->table_obj + (uint64_t)p->o.bytes_data, e->table, (size_t)size)) {
			e->table_len = (uint32_t)size;
		} else {
			free(e->table);
			e->table = NULL;
		}
	}
	e->file = strdup(file);
	e->function = strdup(function);
	if (!e->file || !e->function) {
		free(e->file);
		free(e->function);
		free(e->table);
		return -ENOMEM;
	}
	e->bytes = sizeof(*e) + strlen(file) + strlen(function) + 2 + e->table_len;
	return 0;
}

/* Byte offset of instr in the code object's instructions (negative: not started). */
static int64_t instr_offset(const struct pyproc *p, uint64_t code, uint64_t instr)
{
	if (p->o.code_adaptive < 0)	/* 3.10: f_lasti, an index in code units */
		return (int64_t)(int32_t)(uint32_t)instr * 2;
	return (int64_t)(instr - (code + (uint64_t)p->o.code_adaptive));
}

/* The cached entry of a code object, read (again) if it changed. */
static int code_lookup(struct pyproc *p, uint64_t code, const struct code_entry **out)
{
	struct code_entry fresh;
	int32_t i = cache_find(&p->codes, code);
	int err;

	err = code_header(p, code, &fresh);
	if (err == -ESRCH && i >= 0) {	/* gone: what was read while it lived */
		*out = &p->codes.e[i];
		return 0;
	}
	if (err)
		return err;
	if (i >= 0) {
		const struct code_entry *e = &p->codes.e[i];

		if (e->filename == fresh.filename && e->name == fresh.name &&
		    e->table_obj == fresh.table_obj && e->firstlineno == fresh.firstlineno) {
			lru_unlink(&p->codes, i);
			lru_push(&p->codes, i);
			p->r->stats.code_hits++;
			*out = e;
			return 0;
		}
		cache_remove(&p->codes, i);	/* another code object lives there now */
		p->r->stats.code_replaced++;
	}
	p->r->stats.code_misses++;
	err = code_fill(p, &fresh);
	if (err)
		return err;
	i = cache_insert(p, &fresh);
	if (i < 0) {
		free(fresh.file);
		free(fresh.function);
		free(fresh.table);
		return -ENOMEM;
	}
	*out = &p->codes.e[i];
	return 0;
}

static void frame_of(const struct pyproc *p, const struct code_entry *e, uint64_t code,
		     uint64_t instr, struct pyrt_frame *out)
{
	int64_t off = instr_offset(p, code, instr);
	int line = -1;

	snprintf(out->file, sizeof(out->file), "%s", e->file);
	snprintf(out->function, sizeof(out->function), "%s", e->function);
	out->firstline = e->firstlineno;
	if (e->ncodeunits < 0 || off < (int64_t)e->ncodeunits * 2)
		line = pycode_line(p->info.minor, e->table, e->table_len, e->firstlineno, off);
	out->line = line > 0 ? line : 0;
}

/* ---- processes ----------------------------------------------------------------- */

static void proc_free(struct pyproc *p)
{
	if (!p)
		return;
	cache_free(&p->codes);
	free(p->threads);
	free(p);
}

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void proc_drop(struct pyrt *r, size_t i)
{
	proc_free(r->procs[i]);
	r->procs[i] = r->procs[--r->nprocs];
}

/* pid's reader: found, or made (the least recently used one making room). */
static struct pyproc *proc_get(struct pyrt *r, pid_t pid)
{
	struct pyproc *p;
	int64_t now = now_ns();
	size_t oldest = 0;

	for (size_t i = 0; i < r->nprocs; i++) {
		struct fh_proc_stat st;

		p = r->procs[i];
		if (p->pid != pid)
			continue;
		/* a reused PID is another process (a /proc read: not on every call;
		 * what is read meanwhile is checked object by object anyway) */
		if (now - p->checked_ns >= REUSE_CHECK_NS) {
			if (!procfs_read_stat(pid, 0, &st) && st.starttime != p->starttime) {
				proc_drop(r, i);
				break;
			}
			p->checked_ns = now;
		}
		p->last_used = ++r->clock;
		return p;
	}
	if (r->nprocs == r->lim.max_procs) {
		for (size_t i = 1; i < r->nprocs; i++)
			if (r->procs[i]->last_used < r->procs[oldest]->last_used)
				oldest = i;
		proc_drop(r, oldest);
		r->stats.procs_evicted++;
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->r = r;
	p->pid = pid;
	p->last_used = ++r->clock;
	p->checked_ns = now;
	p->status = proc_read(p);
	r->procs[r->nprocs++] = p;
	r->stats.procs_opened++;
	return p;
}

struct pyrt *pyrt_new(const struct pyrt_limits *lim)
{
	struct pyrt *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	if (lim)
		r->lim = *lim;
	if (!r->lim.max_procs)
		r->lim.max_procs = 32;
	if (!r->lim.max_codes)
		r->lim.max_codes = 1024;
	if (!r->lim.max_code_bytes)
		r->lim.max_code_bytes = 1 << 20;
	if (!r->lim.max_threads)
		r->lim.max_threads = 1024;
	r->procs = calloc(r->lim.max_procs, sizeof(struct pyproc *));
	if (!r->procs) {
		free(r);
		return NULL;
	}
	return r;
}

void pyrt_free(struct pyrt *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nprocs; i++)
		proc_free(r->procs[i]);
	free(r->procs);
	free(r);
}

int pyrt_program_is_python(pid_t pid)
{
	struct elf_sym runtime = { .name = "_PyRuntime" };
	char path[64];
	int fd, err;

	snprintf(path, sizeof(path), "/proc/%d/exe", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
	if (fd < 0)
		return -errno;
	err = elf_needs(fd, "libpython3.");
	if (err == 0 && !elf_find_syms(fd, &runtime, 1))
		err = runtime.found;
	close(fd);
	return err;
}

void pyrt_forget(struct pyrt *r, pid_t pid)
{
	for (size_t i = 0; i < r->nprocs; i++) {
		if (r->procs[i]->pid == pid) {
			proc_drop(r, i);
			return;
		}
	}
}

/* A readable process, or NULL with *err. A failure other than "not yet"
 * sticks until the process is forgotten (or its PID reused). */
static struct pyproc *proc_ready(struct pyrt *r, pid_t pid, int *err)
{
	struct pyproc *p = proc_get(r, pid);

	if (!p) {
		*err = -ENOMEM;
		return NULL;
	}
	if (p->status == -EAGAIN)
		p->status = proc_read(p);
	*err = p->status;
	return p->status ? NULL : p;
}

int pyrt_open(struct pyrt *r, pid_t pid, struct pyrt_info *info)
{
	int err;
	struct pyproc *p = proc_ready(r, pid, &err);

	if (info)
		*info = p ? p->info : (struct pyrt_info){ 0 };
	/* a Python it cannot read still says which it is */
	if (info && err == -ENOTSUP && (p = proc_get(r, pid)))
		*info = p->info;
	return err;
}

int pyrt_resolve(struct pyrt *r, pid_t pid, uint64_t code, uint64_t instr,
		 struct pyrt_frame *out)
{
	const struct code_entry *e;
	struct pyproc *p;
	int err;

	p = proc_ready(r, pid, &err);
	if (!p)
		return err;
	err = code_lookup(p, code, &e);
	if (err)
		return err;
	frame_of(p, e, code, instr, out);
	return 0;
}

/* ---- threads --------------------------------------------------------------------- */

typedef int (*tstate_fn)(struct pyproc *p, uint64_t tstate, const uint8_t *ts, void *ctx);

/* fn for each thread state of each interpreter, with its first bytes. */
static int for_each_tstate(struct pyproc *p, tstate_fn fn, void *ctx)
{
	const struct pyrt_offsets *o = &p->o;
	uint64_t interp, ts_addr;
	uint8_t ts[512];
	int32_t ts_len = 0;
	int err;

	const int32_t fields[] = { o->tstate_next, o->tstate_interp, o->tstate_thread_id,
				   o->tstate_native_thread_id, o->tstate_frame };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] + 8 > ts_len)
			ts_len = fields[i] + 8;
	if ((size_t)ts_len > sizeof(ts))
		return -EINVAL;
	err = rd_ptr(p, p->info.runtime + (uint64_t)o->runtime_interpreters_head, &interp);
	for (int ni = 0; !err && interp && ni < MAX_INTERPS; ni++) {
		err = rd_ptr(p, interp + (uint64_t)o->interp_threads_head, &ts_addr);
		for (int nt = 0; !err && ts_addr && nt < MAX_TSTATES; nt++) {
			err = rd(p, ts_addr, ts, (size_t)ts_len);
			if (err)
				return err;
			if (u64_at(ts, o->tstate_interp) != interp)
				return -EINVAL;	/* not one of this interpreter's */
			err = fn(p, ts_addr, ts, ctx);
			if (err)
				return err > 0 ? 0 : err;
			ts_addr = u64_at(ts, o->tstate_next);
		}
		if (!err)
			err = rd_ptr(p, interp + (uint64_t)o->interp_next, &interp);
	}
	return err;
}

/* A thread state's TID: native_thread_id (3.11+), or glibc's struct pthread. */
static pid_t tstate_tid(struct pyproc *p, const uint8_t *ts)
{
	int32_t tid = 0;

	if (p->o.tstate_native_thread_id >= 0)
		return (pid_t)u64_at(ts, p->o.tstate_native_thread_id);
	if (p->have_libc && p->libc.tid_offset >= 0 &&
	    rd(p, u64_at(ts, p->o.tstate_thread_id) + (uint64_t)p->libc.tid_offset, &tid,
	       sizeof(tid)))
		tid = 0;
	return tid > 0 ? (pid_t)tid : 0;
}

struct find_tstate {
	pid_t tid;
	uint64_t tstate, frame;
};

static int match_tid(struct pyproc *p, uint64_t tstate, const uint8_t *ts, void *ctx)
{
	struct find_tstate *f = ctx;

	if (tstate_tid(p, ts) != f->tid)
		return 0;
	f->tstate = tstate;
	f->frame = u64_at(ts, p->o.tstate_frame);
	return 1;
}

/* The innermost frame of a thread state (its cframe's on 3.11, 3.12). */
static int first_frame(struct pyproc *p, uint64_t frame_field, uint64_t *frame)
{
	*frame = frame_field;
	if (p->o.cframe_current_frame < 0 || !frame_field)
		return 0;
	return rd_ptr(p, frame_field + (uint64_t)p->o.cframe_current_frame, frame);
}

/* Is it a frame to show? Not a C-stack shim, not one still being set up. */
static bool frame_shown(struct pyproc *p, const struct pyrt_rawframe *f, int owner)
{
	const struct code_entry *e;

	if (owner >= 0 && owner == p->o.frame_owner_cstack)
		return false;
	if (p->o.code_adaptive < 0 || owner == p->o.frame_owner_generator)
		return true;
	if (code_lookup(p, f->code, &e))
		return true;	/* resolving it will say what is wrong */
	return instr_offset(p, f->code, f->instr) >= (int64_t)e->firsttraceable * 2;
}

/* Thread tid's thread state (and its frame field) in f. */
static int thread_of(struct pyproc *p, pid_t tid, struct find_tstate *f)
{
	int err;

	*f = (struct find_tstate){ .tid = tid };
	err = for_each_tstate(p, match_tid, f);
	return err ? err : f->tstate ? 0 : -ENOENT;
}

int pyrt_thread_state(struct pyrt *r, pid_t pid, pid_t tid, uint64_t *tstate)
{
	struct find_tstate f;
	struct pyproc *p;
	int err;

	p = proc_ready(r, pid, &err);
	if (!p || (err = thread_of(p, tid, &f)))
		return err;
	*tstate = f.tstate;
	return 0;
}

int pyrt_thread_frames(struct pyrt *r, pid_t pid, pid_t tid, struct pyrt_rawframe *raw, int max)
{
	struct find_tstate f;
	const struct pyrt_offsets *o;
	uint8_t fr[256];
	int32_t fr_len = 0;
	uint64_t frame;
	struct pyproc *p;
	int n = 0, err;

	p = proc_ready(r, pid, &err);
	if (!p)
		return err;
	o = &p->o;
	const int32_t fields[] = { o->frame_previous, o->frame_code, o->frame_instr, o->frame_owner,
				   o->object_type };
	for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
		if (fields[i] + 8 > fr_len)
			fr_len = fields[i] + 8;
	if ((size_t)fr_len > sizeof(fr))
		return -EINVAL;
	err = thread_of(p, tid, &f);
	if (err)
		return err;
	err = first_frame(p, f.frame, &frame);
	for (int walked = 0; !err && frame && n < max && walked < PYRT_MAX_DEPTH; walked++) {
		struct pyrt_rawframe rf;
		int owner = -1;

		if (rd(p, frame, fr, (size_t)fr_len))
			break;	/* it moved on: what was read stands */
		/* 3.10's frames are objects: check that this is one */
		if (p->type[T_FRAME] && o->code_adaptive < 0 &&
		    u64_at(fr, o->object_type) != p->type[T_FRAME])
			break;
		rf.code = u64_at(fr, o->frame_code);
		rf.instr = o->frame_instr_size == 4 ? u32_at(fr, o->frame_instr) :
						       u64_at(fr, o->frame_instr);
		if (o->frame_owner >= 0)
			owner = fr[o->frame_owner];
		if (frame_shown(p, &rf, owner))
			raw[n++] = rf;
		frame = u64_at(fr, o->frame_previous);
	}
	return n;
}

int pyrt_thread_stack(struct pyrt *r, pid_t pid, pid_t tid, struct pyrt_frame *frames, int max)
{
	struct pyrt_rawframe *raw;
	int n, out = 0;

	if (max <= 0)
		return 0;
	raw = calloc((size_t)max, sizeof(*raw));
	if (!raw)
		return -ENOMEM;
	n = pyrt_thread_frames(r, pid, tid, raw, max);
	for (int i = 0; i < n; i++) {
		if (pyrt_resolve(r, pid, raw[i].code, raw[i].instr, &frames[out]))
			continue;	/* a frame that is not one: leave it out */
		out++;
	}
	free(raw);
	return n < 0 ? n : out;
}

static int note_tstate(struct pyproc *p, uint64_t tstate, const uint8_t *ts, void *ctx)
{
	(void)ctx;
	if ((size_t)p->nthreads >= p->r->lim.max_threads)
		return 1;
	p->threads[p->nthreads++] = (struct py_thread){
		.ident = u64_at(ts, p->o.tstate_thread_id),
		.tstate = tstate,
		.tid = tstate_tid(p, ts),
	};
	return 0;
}

/* The sem_t * of a Thread's _tstate_lock (3.10-3.12), or 0: a _thread.lock
 * object keeps its PyThread_type_lock right after its object header. */
#define LOCKOBJECT_LOCK		16

static uint64_t thread_sentinel(struct pyproc *p, uint64_t thread)
{
	static const char want[] = "_thread.lock";
	uint64_t lock, type, name, sem;
	char tp_name[sizeof(want)];

	if (attr_get(p, thread, "_tstate_lock", &lock) || (lock & 7) ||
	    rd_ptr(p, lock + (uint64_t)p->o.object_type, &type) || (type & 7) ||
	    rd_ptr(p, type + (uint64_t)p->o.type_name, &name) ||
	    rd(p, name, tp_name, sizeof(tp_name)) || memcmp(tp_name, want, sizeof(want)) ||
	    rd_ptr(p, lock + LOCKOBJECT_LOCK, &sem))
		return 0;
	return sem;
}

static int note_name(struct pyproc *p, uint64_t key, uint64_t value, void *ctx)
{
	struct py_thread *t = NULL;
	uint64_t ident, name;

	(void)ctx;
	if (rd_long(p, key, &ident))
		return 0;
	for (int i = 0; i < p->nthreads && !t; i++)
		if (p->threads[i].ident == ident)
			t = &p->threads[i];
	if (!t) {	/* a Thread without a thread state: keep its name anyway */
		if ((size_t)p->nthreads >= p->r->lim.max_threads)
			return 0;
		t = &p->threads[p->nthreads++];
		*t = (struct py_thread){ .ident = ident };
	}
	if (!attr_get(p, value, "_name", &name) && !rd_str(p, name, t->name, sizeof(t->name)))
		t->named = true;
	t->sentinel = thread_sentinel(p, value);
	return 0;
}

int pyrt_refresh_threads(struct pyrt *r, pid_t pid)
{
	uint64_t modules, threading, mdict, active;
	struct pyproc *p;
	struct dictview v;
	int err;

	p = proc_ready(r, pid, &err);
	if (!p)
		return err;
	if (!p->threads) {
		p->threads = calloc(r->lim.max_threads, sizeof(*p->threads));
		if (!p->threads)
			return -ENOMEM;
	}
	p->nthreads = 0;
	p->threads_read = true;
	err = for_each_tstate(p, note_tstate, NULL);
	if (err)
		return err;
	/* names: sys.modules["threading"]._active, {ident: Thread} */
	err = rd_ptr(p, p->info.runtime + (uint64_t)p->o.runtime_interpreters_head, &modules);
	if (!err)
		err = rd_ptr(p, modules + (uint64_t)p->o.interp_modules, &modules);
	if (!err)
		err = dict_get(p, modules, "threading", &threading);
	if (err == -ENOENT)
		return 0;	/* threading never imported: no names */
	if (!err && rd_obj(p, threading, T_MODULE, (uint8_t[64]){ 0 }, (size_t)p->o.module_dict + 8))
		err = -EINVAL;
	if (!err)
		err = rd_ptr(p, threading + (uint64_t)p->o.module_dict, &mdict);
	if (!err)
		err = dict_get(p, mdict, "_active", &active);
	if (!err)
		err = dict_view(p, active, &v);
	if (!err)
		err = dict_scan(p, &v, note_name, NULL);
	return err == -ENOENT ? 0 : err;
}

/* pid's process with its threads read, or NULL (*err). */
static struct pyproc *with_threads(struct pyrt *r, pid_t pid, int *err)
{
	struct pyproc *p = proc_ready(r, pid, err);

	if (p && !p->threads_read && (*err = pyrt_refresh_threads(r, pid)))
		return NULL;
	return p;
}

static int name_of(struct pyrt *r, pid_t pid, bool by_tid, uint64_t id, char *buf, size_t size)
{
	int err;
	struct pyproc *p = with_threads(r, pid, &err);

	if (!p)
		return err;
	for (int i = 0; i < p->nthreads; i++) {
		const struct py_thread *t = &p->threads[i];

		if ((by_tid ? (uint64_t)t->tid : t->ident) == id && t->named && (!by_tid || id)) {
			snprintf(buf, size, "%s", t->name);
			return 0;
		}
	}
	return -ENOENT;
}

int pyrt_thread_name(struct pyrt *r, pid_t pid, pid_t tid, char *buf, size_t size)
{
	return name_of(r, pid, true, (uint64_t)tid, buf, size);
}

int pyrt_thread_sentinel(struct pyrt *r, pid_t pid, pid_t tid, uint64_t *lock)
{
	int err;
	struct pyproc *p = with_threads(r, pid, &err);

	if (!p)
		return err;
	for (int i = 0; i < p->nthreads; i++) {
		if (tid && p->threads[i].tid == tid && p->threads[i].sentinel) {
			*lock = p->threads[i].sentinel;
			return 0;
		}
	}
	return -ENOENT;
}

int pyrt_thread_name_by_ident(struct pyrt *r, pid_t pid, uint64_t ident, char *buf, size_t size)
{
	return name_of(r, pid, false, ident, buf, size);
}

/* ---- the kernel's view --------------------------------------------------------- */

static uint16_t u16_or_none(int32_t v)
{
	return v >= 0 && v < FH_PY_NONE ? (uint16_t)v : FH_PY_NONE;
}

/* Bytes to read at once to have every field that ends at ends[] (n of
 * them; a field that does not exist ends before 8), rounded up to 8; 0 if
 * beyond what the kernel's walker reads at once. */
static uint16_t read_size(const int32_t *ends, int n)
{
	int32_t end = 8;

	for (int i = 0; i < n; i++)
		if (ends[i] > end)
			end = ends[i];
	end = (end + 7) & ~7;
	return end <= FH_PY_READ_MAX ? (uint16_t)end : 0;
}

int pyrt_layout(struct pyrt *r, pid_t pid, struct fh_py_layout *l)
{
	const struct pyrt_offsets *o;
	int32_t initialized = 0;
	uint32_t key = 0;
	struct pyproc *p;
	int err;

	p = proc_ready(r, pid, &err);
	if (!p)
		return err;
	o = &p->o;
	if (!p->have_libc)
		return -ENOENT;
	err = rd(p, p->info.runtime + (uint64_t)(o->runtime_tss + o->tss_initialized),
		 &initialized, sizeof(initialized));
	if (!err)
		err = rd(p, p->info.runtime + (uint64_t)(o->runtime_tss + o->tss_key), &key,
			 sizeof(key));
	if (err)
		return err;
	if (!initialized)
		return -EAGAIN;
	if (key >= p->libc.tsd_keys)
		return -ERANGE;
	*l = (struct fh_py_layout){
		.version = (uint16_t)(p->info.major << 8 | p->info.minor),
		.tsd_stride = (uint16_t)p->libc.tsd_stride,
		.tss_key = key,
		.tsd_offset = p->libc.tsd_offset,
		.tstate_thread_id = u16_or_none(o->tstate_thread_id),
		.tstate_native_thread_id = u16_or_none(o->tstate_native_thread_id),
		.tstate_frame = u16_or_none(o->tstate_frame),
		.cframe_current_frame = u16_or_none(o->cframe_current_frame),
		.frame_previous = u16_or_none(o->frame_previous),
		.frame_code = u16_or_none(o->frame_code),
		.frame_instr = u16_or_none(o->frame_instr),
		.frame_instr_size = u16_or_none(o->frame_instr_size),
		.frame_owner = u16_or_none(o->frame_owner),
		.frame_owner_cstack = u16_or_none(o->frame_owner_cstack),
		.tstate_read = read_size((int32_t[]){ o->tstate_thread_id + 8, o->tstate_frame + 8 }, 2),
		.frame_read = read_size((int32_t[]){ o->frame_previous + 8, o->frame_code + 8,
						     o->frame_instr + o->frame_instr_size,
						     o->frame_owner + 1 }, 4),
	};
	if (!l->tstate_read || !l->frame_read)
		return -ENOTSUP;
	return 0;
}

void pyrt_get_stats(const struct pyrt *r, struct pyrt_stats *st)
{
	*st = r->stats;
}

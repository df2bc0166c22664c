// SPDX-License-Identifier: GPL-2.0
#include <capstone/capstone.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include "elfsyms.h"
#include "libcthread.h"
#include "procfs.h"

#define DECODE_INSNS	24	/* the lookup is within the function's first few */
#define GETSPECIFIC_MAX	512	/* bytes of pthread_getspecific read */
/* x86-64 glibc: %fs:0x10 is tcbhead_t.self, %fs:0 its tcb: the thread pointer */
#define TCB_SELF	0x10

/*
 * A register's value as the decoder knows it: (thread pointer if tp) +
 * k * key + c, where key is pthread_getspecific's argument.
 */
struct lin {
	bool known, tp;
	int64_t k, c;
};

/* The 64-bit register a general-purpose register is part of; 0 for others. */
static x86_reg gpr64(x86_reg r)
{
	static const x86_reg map[][5] = {
		{ X86_REG_RAX, X86_REG_EAX, X86_REG_AX, X86_REG_AL, X86_REG_AH },
		{ X86_REG_RBX, X86_REG_EBX, X86_REG_BX, X86_REG_BL, X86_REG_BH },
		{ X86_REG_RCX, X86_REG_ECX, X86_REG_CX, X86_REG_CL, X86_REG_CH },
		{ X86_REG_RDX, X86_REG_EDX, X86_REG_DX, X86_REG_DL, X86_REG_DH },
		{ X86_REG_RSI, X86_REG_ESI, X86_REG_SI, X86_REG_SIL, 0 },
		{ X86_REG_RDI, X86_REG_EDI, X86_REG_DI, X86_REG_DIL, 0 },
		{ X86_REG_RBP, X86_REG_EBP, X86_REG_BP, X86_REG_BPL, 0 },
		{ X86_REG_RSP, X86_REG_ESP, X86_REG_SP, X86_REG_SPL, 0 },
		{ X86_REG_R8, X86_REG_R8D, X86_REG_R8W, X86_REG_R8B, 0 },
		{ X86_REG_R9, X86_REG_R9D, X86_REG_R9W, X86_REG_R9B, 0 },
		{ X86_REG_R10, X86_REG_R10D, X86_REG_R10W, X86_REG_R10B, 0 },
		{ X86_REG_R11, X86_REG_R11D, X86_REG_R11W, X86_REG_R11B, 0 },
		{ X86_REG_R12, X86_REG_R12D, X86_REG_R12W, X86_REG_R12B, 0 },
		{ X86_REG_R13, X86_REG_R13D, X86_REG_R13W, X86_REG_R13B, 0 },
		{ X86_REG_R14, X86_REG_R14D, X86_REG_R14W, X86_REG_R14B, 0 },
		{ X86_REG_R15, X86_REG_R15D, X86_REG_R15W, X86_REG_R15B, 0 },
	};

	for (size_t i = 0; i < sizeof(map) / sizeof(map[0]); i++)
		for (int j = 0; j < 5; j++)
			if (map[i][j] && map[i][j] == r)
				return map[i][0];
	return X86_REG_INVALID;
}

struct decoder {
	struct lin reg[X86_REG_ENDING];
	int64_t bound;		/* from `cmp key, imm`: -1 none yet */
	bool bounded;		/* the path taken is the one where key <= bound */
};

static struct lin *reg_of(struct decoder *d, x86_reg r)
{
	r = gpr64(r);
	return r == X86_REG_INVALID ? NULL : &d->reg[r];
}

static bool is_key(const struct lin *l)
{
	return l && l->known && !l->tp && l->k == 1 && l->c == 0;
}

/* An %fs:disp operand that yields the thread pointer. */
static bool tp_operand(const cs_x86_op *op)
{
	return op->type == X86_OP_MEM && op->mem.segment == X86_REG_FS &&
	       op->mem.base == X86_REG_INVALID && op->mem.index == X86_REG_INVALID &&
	       (op->mem.disp == TCB_SELF || op->mem.disp == 0);
}

/* The address a memory operand computes, in the decoder's terms. */
static struct lin address(struct decoder *d, const cs_x86_op *op)
{
	struct lin a = { .known = true, .c = op->mem.disp };
	const struct lin *b = op->mem.base != X86_REG_INVALID ? reg_of(d, op->mem.base) : NULL;
	const struct lin *x = op->mem.index != X86_REG_INVALID ? reg_of(d, op->mem.index) : NULL;

	if (op->mem.segment != X86_REG_INVALID ||
	    (op->mem.base != X86_REG_INVALID && (!b || !b->known)) ||
	    (op->mem.index != X86_REG_INVALID && (!x || !x->known || x->tp)))
		return (struct lin){ .known = false };
	if (b) {
		a.tp = b->tp;
		a.k = b->k;
		a.c += b->c;
	}
	if (x) {
		a.k += x->k * op->mem.scale;
		a.c += x->c * op->mem.scale;
	}
	return a;
}

static void forget_written(csh cs, const cs_insn *in, struct decoder *d)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return;
	for (int i = 0; i < nwr; i++) {
		struct lin *l = reg_of(d, wr[i]);

		if (l)
			l->known = false;
	}
}

/*
 * One instruction. Returns 1 with *t filled when it is the load of the key's
 * value, -1 when the path leaves what is understood, 0 to go on.
 */
static int step(csh cs, const cs_insn *in, struct decoder *d, struct libc_thread *t)
{
	const cs_x86 *x = &in->detail->x86;
	const cs_x86_op *dst = x->op_count > 0 ? &x->operands[0] : NULL;
	const cs_x86_op *src = x->op_count > 1 ? &x->operands[1] : NULL;
	struct lin *r = dst && dst->type == X86_OP_REG ? reg_of(d, dst->reg) : NULL;
	struct lin s;

	switch (in->id) {
	case X86_INS_CMP:
		if (src && src->type == X86_OP_IMM && dst->type == X86_OP_REG && is_key(r))
			d->bound = src->imm;
		return 0;
	case X86_INS_JA:	/* key > bound goes elsewhere: the fall-through is key <= bound */
		if (d->bound >= 0)
			d->bounded = true;
		return 0;
	case X86_INS_JAE:
		if (d->bound > 0) {
			d->bound--;
			d->bounded = true;
		}
		return 0;
	case X86_INS_MOV:
		if (!r || !src)
			break;
		if (src->type == X86_OP_REG) {
			const struct lin *from = reg_of(d, src->reg);

			*r = from ? *from : (struct lin){ .known = false };
			return 0;
		}
		if (src->type == X86_OP_IMM) {
			*r = (struct lin){ .known = true, .c = src->imm };
			return 0;
		}
		if (tp_operand(src)) {
			*r = (struct lin){ .known = true, .tp = true };
			return 0;
		}
		if (src->type == X86_OP_MEM) {
			s = address(d, src);
			if (s.known && s.tp && s.k > 0 && d->bounded) {
				t->tsd_offset = (uint32_t)s.c;
				t->tsd_stride = (uint32_t)s.k;
				t->tsd_keys = (uint32_t)(d->bound + 1);
				return 1;
			}
			r->known = false;
			return 0;
		}
		break;
	case X86_INS_ADD:
	case X86_INS_SUB:
		if (!r || !src || !r->known)
			break;
		if (src->type == X86_OP_IMM) {
			r->c += in->id == X86_INS_ADD ? src->imm : -src->imm;
			return 0;
		}
		if (in->id == X86_INS_ADD && tp_operand(src) && !r->tp) {
			r->tp = true;
			return 0;
		}
		if (in->id == X86_INS_ADD && src->type == X86_OP_REG) {
			const struct lin *o = reg_of(d, src->reg);

			if (o && o->known && !(o->tp && r->tp)) {
				r->tp |= o->tp;
				r->k += o->k;
				r->c += o->c;
				return 0;
			}
		}
		break;
	case X86_INS_SHL:
	case X86_INS_SAL:
		if (r && r->known && !r->tp && src && src->type == X86_OP_IMM && src->imm < 16) {
			r->k <<= src->imm;
			r->c <<= src->imm;
			return 0;
		}
		break;
	case X86_INS_LEA:
		if (r && src) {
			*r = address(d, src);
			return 0;
		}
		break;
	case X86_INS_JMP:
	case X86_INS_CALL:
	case X86_INS_RET:
		return -1;
	default:
		break;
	}
	forget_written(cs, in, d);
	return 0;
}

int libcthread_decode_getspecific(const uint8_t *code, size_t len, struct libc_thread *t)
{
	struct decoder d = { .bound = -1 };
	cs_insn *insns = NULL;
	size_t count;
	csh cs;
	int ret = -ENOENT;

	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOMEM;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	count = cs_disasm(cs, code, len, 0, DECODE_INSNS, &insns);
	d.reg[X86_REG_RDI] = (struct lin){ .known = true, .k = 1 };
	for (size_t i = 0; i < count; i++) {
		int r = step(cs, &insns[i], &d, t);

		if (r) {
			if (r > 0 && t->tsd_stride <= 64 && t->tsd_offset < 0x10000 &&
			    t->tsd_keys > 0 && t->tsd_keys <= 1024)
				ret = 0;
			break;
		}
	}
	if (count)
		cs_free(insns, count);
	cs_close(&cs);
	return ret;
}

/* ---- the libc of a process ----------------------------------------------- */

struct find_libc {
	pid_t pid;
	char path[64];		/* /proc/PID/map_files/... of the best candidate */
	int rank;		/* 3 libc, 2 libpthread, 1 the executable, 0 none */
	char exe[4096];
};

static int libc_rank(const char *path, const char *exe)
{
	const char *base = strrchr(path, '/');

	base = base ? base + 1 : path;
	if (!strncmp(base, "libc.so", 7) || (!strncmp(base, "libc-", 5) && strstr(base, ".so")))
		return 3;
	if (!strncmp(base, "libpthread", 10) && strstr(base, ".so"))
		return 2;
	return exe[0] && !strcmp(path, exe) ? 1 : 0;
}

static int note_mapping(const struct fh_mapping *m, void *ctx)
{
	struct find_libc *f = ctx;
	int rank;

	if (m->offset != 0 || !m->path[0] || m->path[0] != '/')
		return 0;
	rank = libc_rank(m->path, f->exe);
	if (rank > f->rank) {
		f->rank = rank;
		snprintf(f->path, sizeof(f->path), "/proc/%d/map_files/%llx-%llx", (int)f->pid,
			 (unsigned long long)m->start, (unsigned long long)m->end);
	}
	return 0;
}

/*
 * A field of struct pthread by libthread_db's descriptor of it, the
 * _thread_db_pthread_NAME symbol glibc exports for debuggers: its size in
 * bits, a count, its offset. -1 where the descriptor is missing or is not
 * of a field of `bits` bits.
 */
static int32_t db_field(int fd, const char *sym, uint32_t bits)
{
	struct elf_sym s = { .name = sym };
	uint32_t desc[3];

	if (!elf_find_syms(fd, &s, 1) && s.found &&
	    elf_read_vaddr(fd, s.vaddr, desc, sizeof(desc)) == (ssize_t)sizeof(desc) &&
	    desc[0] == bits && desc[2] < 0x10000)
		return (int32_t)desc[2];
	return -1;
}

static int decode_file(int fd, struct libc_thread *t)
{
	struct elf_func fn = { .name = "pthread_getspecific" };
	uint8_t code[GETSPECIFIC_MAX];
	size_t len;
	ssize_t n;
	int err;

	err = elf_find_funcs(fd, &fn, 1);
	if (err)
		return err;
	if (!fn.n || !fn.size[0])
		return -ENOENT;
	len = fn.size[0] < sizeof(code) ? (size_t)fn.size[0] : sizeof(code);
	n = pread(fd, code, len, (off_t)fn.file_offset[0]);
	if (n <= 0)
		return n < 0 ? -errno : -ENOENT;
	err = libcthread_decode_getspecific(code, (size_t)n, t);
	if (err)
		return err;
	t->tid_offset = db_field(fd, "_thread_db_pthread_tid", 32);
	t->start_routine_offset = db_field(fd, "_thread_db_pthread_start_routine", 64);
	return 0;
}

int libcthread_of_process(pid_t pid, struct libc_thread *t)
{
	struct find_libc f = { .pid = pid };
	char link[64];
	ssize_t n;
	int fd, err;

	snprintf(link, sizeof(link), "/proc/%d/exe", (int)pid);
	n = readlink(link, f.exe, sizeof(f.exe) - 1);
	f.exe[n > 0 ? n : 0] = '\0';
	err = procfs_for_each_mapping(pid, note_mapping, &f);
	if (err)
		return err;
	if (!f.rank)
		return -ENOENT;
	fd = open(f.path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = decode_file(fd, t);
	close(fd);
	return err;
}

// SPDX-License-Identifier: GPL-2.0
#include <capstone/capstone.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "placement.h"

#define SCAN_INSNS	16	/* the probe must be near the entry: scan this far */
#define MAX_TARGETS	512

/* Instructions arch/x86/kernel/uprobes.c emulates instead of single-stepping:
 * jmp rel8/rel32, jcc (short and near), call rel32, nop (with 0x66 prefixes),
 * push reg, and the 5-byte nop that kernels >= 6.16 turn into a call. */
static bool kernel_emulates(const cs_insn *in)
{
	const uint8_t *b = in->bytes;
	size_t n = in->size, i = 0;

	if (n == 5 && !memcmp(b, "\x0f\x1f\x44\x00\x00", 5))
		return true;
	while (i < n && b[i] == 0x66)
		i++;
	if (i == n - 1 && b[i] == 0x90)
		return true;
	if (i > 0)
		return false;
	switch (b[0]) {
	case 0xeb: case 0xe9: case 0xe8:
		return true;
	case 0x0f:
		return n == 6 && b[1] >= 0x80 && b[1] <= 0x8f;
	case 0x41:	/* REX.B push %r8..%r15 */
		return n == 2 && b[1] >= 0x50 && b[1] <= 0x57;
	default:
		return (n == 2 && b[0] >= 0x70 && b[0] <= 0x7f) ||
		       (n == 1 && b[0] >= 0x50 && b[0] <= 0x57);
	}
}

static bool is_control_flow(csh cs, const cs_insn *in)
{
	return cs_insn_group(cs, in, CS_GRP_JUMP) || cs_insn_group(cs, in, CS_GRP_CALL) ||
	       cs_insn_group(cs, in, CS_GRP_RET) || cs_insn_group(cs, in, CS_GRP_INT) ||
	       cs_insn_group(cs, in, CS_GRP_IRET);
}

/* x86-64 register numbers (as the hardware encodes them): the cookie of a
 * success point names the one that holds the lock's address. */
enum { R_AX, R_CX, R_DX, R_BX, R_SP, R_BP, R_SI, R_DI, R_8, R_9, R_10, R_11, R_12, R_13, R_14,
       R_15, NR_GPRS };

/* Every name of every general-purpose register: its number and width. */
static const struct {
	x86_reg reg;
	uint8_t nr, width;
} gpr_names[] = {
	{ X86_REG_RAX, R_AX, 8 }, { X86_REG_EAX, R_AX, 4 }, { X86_REG_AX, R_AX, 2 },
	{ X86_REG_AL, R_AX, 1 }, { X86_REG_AH, R_AX, 1 },
	{ X86_REG_RCX, R_CX, 8 }, { X86_REG_ECX, R_CX, 4 }, { X86_REG_CX, R_CX, 2 },
	{ X86_REG_CL, R_CX, 1 }, { X86_REG_CH, R_CX, 1 },
	{ X86_REG_RDX, R_DX, 8 }, { X86_REG_EDX, R_DX, 4 }, { X86_REG_DX, R_DX, 2 },
	{ X86_REG_DL, R_DX, 1 }, { X86_REG_DH, R_DX, 1 },
	{ X86_REG_RBX, R_BX, 8 }, { X86_REG_EBX, R_BX, 4 }, { X86_REG_BX, R_BX, 2 },
	{ X86_REG_BL, R_BX, 1 }, { X86_REG_BH, R_BX, 1 },
	{ X86_REG_RSP, R_SP, 8 }, { X86_REG_ESP, R_SP, 4 }, { X86_REG_SP, R_SP, 2 },
	{ X86_REG_SPL, R_SP, 1 },
	{ X86_REG_RBP, R_BP, 8 }, { X86_REG_EBP, R_BP, 4 }, { X86_REG_BP, R_BP, 2 },
	{ X86_REG_BPL, R_BP, 1 },
	{ X86_REG_RSI, R_SI, 8 }, { X86_REG_ESI, R_SI, 4 }, { X86_REG_SI, R_SI, 2 },
	{ X86_REG_SIL, R_SI, 1 },
	{ X86_REG_RDI, R_DI, 8 }, { X86_REG_EDI, R_DI, 4 }, { X86_REG_DI, R_DI, 2 },
	{ X86_REG_DIL, R_DI, 1 },
	{ X86_REG_R8, R_8, 8 }, { X86_REG_R8D, R_8, 4 }, { X86_REG_R8W, R_8, 2 },
	{ X86_REG_R8B, R_8, 1 },
	{ X86_REG_R9, R_9, 8 }, { X86_REG_R9D, R_9, 4 }, { X86_REG_R9W, R_9, 2 },
	{ X86_REG_R9B, R_9, 1 },
	{ X86_REG_R10, R_10, 8 }, { X86_REG_R10D, R_10, 4 }, { X86_REG_R10W, R_10, 2 },
	{ X86_REG_R10B, R_10, 1 },
	{ X86_REG_R11, R_11, 8 }, { X86_REG_R11D, R_11, 4 }, { X86_REG_R11W, R_11, 2 },
	{ X86_REG_R11B, R_11, 1 },
	{ X86_REG_R12, R_12, 8 }, { X86_REG_R12D, R_12, 4 }, { X86_REG_R12W, R_12, 2 },
	{ X86_REG_R12B, R_12, 1 },
	{ X86_REG_R13, R_13, 8 }, { X86_REG_R13D, R_13, 4 }, { X86_REG_R13W, R_13, 2 },
	{ X86_REG_R13B, R_13, 1 },
	{ X86_REG_R14, R_14, 8 }, { X86_REG_R14D, R_14, 4 }, { X86_REG_R14W, R_14, 2 },
	{ X86_REG_R14B, R_14, 1 },
	{ X86_REG_R15, R_15, 8 }, { X86_REG_R15D, R_15, 4 }, { X86_REG_R15W, R_15, 2 },
	{ X86_REG_R15B, R_15, 1 },
};

/* The register number of a general-purpose register name, or -1; *width
 * (if asked) gets its width in bytes. */
static int gpr(unsigned int reg, unsigned int *width)
{
	for (size_t i = 0; i < sizeof(gpr_names) / sizeof(gpr_names[0]); i++) {
		if (gpr_names[i].reg == reg) {
			if (width)
				*width = gpr_names[i].width;
			return gpr_names[i].nr;
		}
	}
	return -1;
}

/* The registers an instruction writes, as a mask of register numbers
 * (0xffff when Capstone cannot tell: assume the worst). */
static unsigned int written_gprs(csh cs, const cs_insn *in)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr;
	unsigned int mask = 0;

	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return 0xffff;
	for (int i = 0; i < nwr; i++) {
		int nr = gpr(wr[i], NULL);

		if (nr >= 0)
			mask |= 1u << nr;
	}
	return mask;
}

static bool writes_reg(csh cs, const cs_insn *in, int nr)
{
	return written_gprs(cs, in) & (1u << nr);
}

/* How much the instruction moves %rsp down, if it is a push or sub $imm,%rsp;
 * -1 for any other write to %rsp. */
static long stack_growth(const cs_insn *in)
{
	const cs_x86 *x = &in->detail->x86;

	if (in->id == X86_INS_PUSH)
		return 8;
	if (in->id == X86_INS_SUB && x->op_count == 2 && x->operands[0].type == X86_OP_REG &&
	    x->operands[0].reg == X86_REG_RSP && x->operands[1].type == X86_OP_IMM &&
	    x->operands[1].imm > 0 && x->operands[1].imm % 8 == 0)
		return (long)x->operands[1].imm;
	return -1;
}

static void entry(struct probe_point *pp, const char *why)
{
	memset(pp, 0, sizeof(*pp));
	snprintf(pp->insn, sizeof(pp->insn), "%s", why);
}

int placement_choose(const uint8_t *code, size_t len, uint64_t vaddr, unsigned int flags,
		     struct probe_point *pp)
{
	uint64_t targets[MAX_TARGETS];
	size_t count, decoded, ntargets = 0;
	cs_insn *insns = NULL;
	long sp_delta = 0;
	int ret = -ENOENT;
	csh cs;

	entry(pp, "entry");
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &cs) != CS_ERR_OK)
		return -ENOENT;
	cs_option(cs, CS_OPT_DETAIL, CS_OPT_ON);
	count = decoded = cs_disasm(cs, code, len, vaddr, 0, &insns);

	/* A point that some branch of the function jumps back to would fire
	 * more than once per call: collect every direct branch target. */
	for (size_t i = 0; i < count; i++) {
		const cs_x86 *x = &insns[i].detail->x86;

		if ((cs_insn_group(cs, &insns[i], CS_GRP_JUMP) ||
		     cs_insn_group(cs, &insns[i], CS_GRP_CALL)) &&
		    x->op_count == 1 && x->operands[0].type == X86_OP_IMM) {
			if (ntargets == MAX_TARGETS) {
				count = 0;	/* too big to be sure: keep the entry */
				break;
			}
			targets[ntargets++] = (uint64_t)x->operands[0].imm;
		}
	}

	for (size_t i = 0; i < count && i < SCAN_INSNS; i++) {
		const cs_insn *in = &insns[i];
		bool targeted = false;
		long grow;

		for (size_t t = 0; t < ntargets; t++)
			targeted |= targets[t] == in->address;
		if (targeted && i > 0 && !(flags & PLACE_REFIRE_OK))
			break;	/* reached by other paths: no longer "once per call" */
		if (kernel_emulates(in)) {
			pp->offset = in->address - vaddr;
			pp->ret_slot = (unsigned int)(sp_delta / 8);
			pp->emulated = 1;
			snprintf(pp->insn, sizeof(pp->insn), "%s", in->mnemonic);
			ret = 0;
			break;
		}
		if (is_control_flow(cs, in) || writes_reg(cs, in, R_DI))
			break;	/* past this, every call may not reach us with %rdi intact */
		if (writes_reg(cs, in, R_SP)) {
			grow = stack_growth(in);
			if (grow < 0)
				break;
			sp_delta += grow;
		}
	}
	if (decoded)
		cs_free(insns, decoded);
	cs_close(&cs);
	return ret;
}

bool placement_probeable(const uint8_t *code, size_t len)
{
	/* legacy prefixes come first, at most four of them */
	for (size_t i = 0; i < len && i < 4; i++) {
		switch (code[i]) {
		case 0xf0: case 0x26: case 0x2e: case 0x36: case 0x3e:
			return false;	/* arch/x86/kernel/uprobes.c: is_prefix_bad() */
		case 0x64: case 0x65: case 0x66: case 0x67: case 0xf2: case 0xf3:
			continue;
		default:
			return true;
		}
	}
	return len > 0;
}

/*
 * Success points: where a lock function's atomic instruction on the lock
 * word has just succeeded or failed, and a conditional jump on ZF says which.
 *
 * The analysis interprets the function abstractly along every path from its
 * entry (and into the code it tail-jumps to): which registers hold the lock's
 * address (the first argument), which hold known constants, how far the stack
 * pointer moved, and how many success edges the path took. A candidate is a
 * lock-prefixed cmpxchg or dec whose memory operand is exactly the lock
 * (a register holding its address, no index, no displacement), followed,
 * possibly after flag-preserving moves, by je/jne; its success edge is the
 * ZF=1 side. The function qualifies only if every path that returns 0 took
 * exactly one success edge, every path that took one returns 0, and every
 * other path returns a known non-zero value (an error): then "this call
 * succeeded" is "a success edge was taken", which is what a return probe
 * checking for 0 would have said, for one trap at the jump instead of two.
 * Calls to other functions are assumed to return (but to the functions named
 * in `noreturn`), preserve the callee-saved registers and clobber the rest.
 * Anything the analysis does not model (an indirect jump, a write to %rsp it
 * cannot follow, code it cannot decode) makes it give up.
 */
#define SP_REGIONS	4	/* the function and the code it tail-jumps to */
#define SP_MAX_TAILS	1	/* tail jumps followed on one path */
#define SP_TAIL_WINDOW	2048	/* bytes read at a tail-jump target */
#define SP_MAX_CODE	8192	/* bytes of one function analysed at most */
#define SP_MAX_ITEMS	1024	/* (address, state) pairs explored */
#define SP_HASH_SLOTS	(2 * SP_MAX_ITEMS)
#define SP_MAX_RMW	16	/* atomic instructions on the lock */
#define SP_MAX_JCC	64	/* je/jne instructions reached */
#define SP_MAX_SLOT	255	/* the cookie's return-address slot is 8 bits */
#define CALLER_SAVED	((1u << R_AX) | (1u << R_CX) | (1u << R_DX) | (1u << R_SI) | (1u << R_DI) | \
			 (1u << R_8) | (1u << R_9) | (1u << R_10) | (1u << R_11))

/* What is known at one point of one path. Compared and hashed as bytes:
 * always built by copying or from zero. Constants are kept to 32 bits: only
 * the int a function returns in %eax is ever tested. */
struct sp_state {
	uint32_t val[NR_GPRS];	/* constants, where `known` has the bit */
	uint16_t lock;		/* registers holding the lock's address */
	uint16_t known;
	uint16_t entry;		/* registers still holding their value at the entry */
	uint16_t pad16;
	int32_t sp;		/* bytes below the entry's stack pointer */
	uint8_t acquired;	/* success edges taken */
	uint8_t other_op;	/* wrote the lock at `other_op_off`: another operation */
	uint8_t tails;		/* tail jumps followed */
	uint8_t zf;		/* 1 + the index (rmw[]) of the atomic whose ZF is live */
};

struct sp_item {
	uint64_t addr;
	struct sp_state s;
};

/* Code read from the file, decoded lazily where paths go. */
struct sp_region {
	uint64_t start;
	size_t len;
	uint8_t *bytes;
	cs_insn **insn;		/* [offset]: decoded there, or NULL */
};

struct sp_rmw {
	uint64_t addr, jcc;
	int reg, slot;
	bool on_lock, off_lock;	/* reached with the base holding the lock, or not */
	bool fp_lost;		/* reached with %rbp no longer the caller's */
};

struct sp_jcc {
	uint64_t addr;
	uint32_t zf_seen;	/* bit k: reached with zf == k */
};

struct sp_analysis {
	csh cs;
	const struct placement_code *code;
	int other_op_off;
	struct sp_region region[SP_REGIONS];
	int nregions;
	struct sp_item items[SP_MAX_ITEMS];	/* every pair seen */
	size_t nitems;
	uint16_t hash[SP_HASH_SLOTS];	/* 1 + index into items[]; 0: empty */
	uint16_t work[SP_MAX_ITEMS];	/* indexes of the items to explore */
	size_t nwork;
	struct sp_rmw rmw[SP_MAX_RMW];
	int nrmw;
	struct sp_jcc jcc[SP_MAX_JCC];
	int njcc;
	bool fail;
};

static int load_region(struct sp_analysis *a, uint64_t addr, size_t len)
{
	struct sp_region *r = &a->region[a->nregions];

	if (a->nregions == SP_REGIONS || !len)
		return -1;
	if (len > SP_MAX_CODE)
		len = SP_MAX_CODE;
	r->bytes = malloc(len);
	/* NOLINTNEXTLINE(bugprone-sizeof-expression): an array of pointers */
	r->insn = calloc(len, sizeof(cs_insn *));
	if (!r->bytes || !r->insn) {
		free(r->bytes);
		free(r->insn);
		return -1;
	}
	r->start = addr;
	r->len = a->code->read(a->code->ctx, addr, r->bytes, len);
	a->nregions++;
	return r->len ? 0 : -1;
}

/* The instruction at addr, decoded on first use; NULL outside the code read
 * or where no instruction can be decoded. */
static const cs_insn *insn_at(struct sp_analysis *a, uint64_t addr)
{
	for (int i = 0; i < a->nregions; i++) {
		struct sp_region *r = &a->region[i];
		size_t off = addr - r->start, size;
		const uint8_t *code;
		uint64_t at = addr;

		if (addr < r->start || off >= r->len)
			continue;
		if (r->insn[off])
			return r->insn[off];
		r->insn[off] = cs_malloc(a->cs);
		code = r->bytes + off;
		size = r->len - off;
		if (!r->insn[off] || !cs_disasm_iter(a->cs, &code, &size, &at, r->insn[off])) {
			if (r->insn[off])
				cs_free(r->insn[off], 1);
			r->insn[off] = NULL;
			return NULL;
		}
		return r->insn[off];
	}
	return NULL;
}

static void free_regions(struct sp_analysis *a)
{
	for (int i = 0; i < a->nregions; i++) {
		for (size_t off = 0; off < a->region[i].len; off++)
			if (a->region[i].insn[off])
				cs_free(a->region[i].insn[off], 1);
		free(a->region[i].insn);
		free(a->region[i].bytes);
	}
}

static size_t item_hash(const struct sp_item *it)
{
	const uint8_t *p = (const uint8_t *)it;
	uint64_t h = 1469598103934665603ULL;	/* FNV-1a */

	for (size_t i = 0; i < sizeof(*it); i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return (size_t)h;
}

/* Explore addr in state s, unless that pair was explored already. */
static void push(struct sp_analysis *a, uint64_t addr, const struct sp_state *s)
{
	struct sp_item it;
	size_t i;

	memset(&it, 0, sizeof(it));
	it.addr = addr;
	memcpy(&it.s, s, sizeof(*s));
	for (i = item_hash(&it) % SP_HASH_SLOTS; a->hash[i]; i = (i + 1) % SP_HASH_SLOTS)
		if (!memcmp(&a->items[a->hash[i] - 1], &it, sizeof(it)))
			return;
	if (a->nitems == SP_MAX_ITEMS) {
		a->fail = true;
		return;
	}
	memcpy(&a->items[a->nitems], &it, sizeof(it));
	a->hash[i] = (uint16_t)(a->nitems + 1);
	a->work[a->nwork++] = (uint16_t)a->nitems++;
}

/* A branch to target: inside the code seen so far, or a tail jump. */
static void branch(struct sp_analysis *a, uint64_t target, const struct sp_state *s)
{
	struct sp_state t;

	if (insn_at(a, target)) {
		push(a, target, s);
		return;
	}
	/* A tail call leaves the stack as the function found it; its target
	 * gets the function's arguments and return address. */
	if (s->sp || s->tails >= SP_MAX_TAILS || load_region(a, target, SP_TAIL_WINDOW)) {
		a->fail = true;
		return;
	}
	memcpy(&t, s, sizeof(t));
	t.tails++;
	push(a, target, &t);
}

/* The lock word as the memory operand: a register holding its address, no
 * index, no displacement, no segment. Returns the register, or -1. */
static int lock_operand(const cs_x86_op *op, const struct sp_state *s, int64_t disp)
{
	unsigned int width;
	int base;

	if (op->type != X86_OP_MEM || op->mem.index != X86_REG_INVALID ||
	    op->mem.segment != X86_REG_INVALID || op->mem.disp != disp)
		return -1;
	base = gpr(op->mem.base, &width);
	return base >= 0 && width == 8 && (s->lock & (1u << base)) ? base : -1;
}

static int rmw_index(struct sp_analysis *a, uint64_t addr)
{
	for (int i = 0; i < a->nrmw; i++)
		if (a->rmw[i].addr == addr)
			return i;
	if (a->nrmw == SP_MAX_RMW) {
		a->fail = true;
		return -1;
	}
	memset(&a->rmw[a->nrmw], 0, sizeof(a->rmw[0]));
	a->rmw[a->nrmw].addr = addr;
	a->rmw[a->nrmw].reg = -1;
	a->rmw[a->nrmw].slot = -1;
	return a->nrmw++;
}

/* A lock-prefixed atomic whose ZF tells success: is it on the lock? */
static void atomic_on_lock(struct sp_analysis *a, const cs_insn *in, struct sp_state *s)
{
	const cs_x86 *x = &in->detail->x86;
	struct sp_rmw *r;
	int base = -1, k;

	for (int i = 0; i < x->op_count; i++)
		if (x->operands[i].type == X86_OP_MEM)
			base = lock_operand(&x->operands[i], s, 0);
	if (s->other_op)
		return;		/* another operation's path: not a point */
	k = rmw_index(a, in->address);
	if (k < 0)
		return;
	r = &a->rmw[k];
	if (base < 0) {
		r->off_lock = true;
		return;
	}
	r->on_lock = true;
	r->reg = base;
	s->zf = (uint8_t)(k + 1);
}

/* The effect of a non-branching instruction on the registers it writes. */
static void update_regs(struct sp_analysis *a, const cs_insn *in, struct sp_state *s)
{
	const cs_x86 *x = &in->detail->x86;
	unsigned int wr = written_gprs(a->cs, in), dw = 0, sw = 0;
	int dst = -1, src = -1;

	if (x->op_count >= 1 && x->operands[0].type == X86_OP_REG)
		dst = gpr(x->operands[0].reg, &dw);
	if (x->op_count == 2 && x->operands[1].type == X86_OP_REG)
		src = gpr(x->operands[1].reg, &sw);

	/* the stack pointer: pushes, pops and immediate adjustments only */
	if (wr & (1u << R_SP)) {
		if (in->id == X86_INS_PUSH) {
			s->sp += 8;
		} else if (in->id == X86_INS_POP) {
			s->sp -= 8;
		} else if ((in->id == X86_INS_SUB || in->id == X86_INS_ADD) && dst == R_SP &&
			   dw == 8 && x->operands[1].type == X86_OP_IMM) {
			s->sp += (int32_t)(in->id == X86_INS_SUB ? x->operands[1].imm :
						  -x->operands[1].imm);
		} else {
			a->fail = true;
			return;
		}
		if (s->sp < 0 || s->sp > SP_MAX_SLOT * 8) {
			a->fail = true;
			return;
		}
		wr &= ~(1u << R_SP);
	}
	/* another operation's mark: a write to the lock at other_op_off */
	if (a->other_op_off >= 0) {
		for (int i = 0; i < x->op_count; i++)
			if ((x->operands[i].access & CS_AC_WRITE) &&
			    lock_operand(&x->operands[i], s, a->other_op_off) >= 0)
				s->other_op = 1;
	}
	s->lock &= (uint16_t)~wr;
	s->known &= (uint16_t)~wr;
	s->entry &= (uint16_t)~wr;
	for (int i = 0; i < NR_GPRS; i++)
		if (wr & (1u << i))
			s->val[i] = 0;
	if (dst < 0 || (dw != 8 && dw != 4))
		return;		/* partial writes: unknown */
	switch (in->id) {
	case X86_INS_MOV:
	case X86_INS_MOVABS:
		if (src >= 0 && sw == dw) {
			if (dw == 8 && (s->lock & (1u << src)))
				s->lock |= (uint16_t)(1u << dst);
			if (s->known & (1u << src)) {
				s->known |= (uint16_t)(1u << dst);
				s->val[dst] = s->val[src];
			}
		} else if (x->operands[1].type == X86_OP_IMM) {
			s->known |= (uint16_t)(1u << dst);
			s->val[dst] = (uint32_t)x->operands[1].imm;
		}
		break;
	case X86_INS_XOR:
	case X86_INS_SUB:
		if (src == dst && sw == dw) {
			s->known |= (uint16_t)(1u << dst);
			s->val[dst] = 0;
		}
		break;
	case X86_INS_LEA:
		if (dw == 8 && lock_operand(&x->operands[1], s, 0) >= 0)
			s->lock |= (uint16_t)(1u << dst);
		break;
	default:
		break;
	}
}

/* A return: does this path keep the contract? */
static void at_return(struct sp_analysis *a, const struct sp_state *s)
{
	bool zero = (s->known & (1u << R_AX)) && (int32_t)s->val[R_AX] == 0;
	bool error = (s->known & (1u << R_AX)) && (int32_t)s->val[R_AX] != 0;

	bool kept;

	if (s->sp || s->acquired > 1)
		kept = false;
	else if (s->other_op)
		kept = true;	/* another operation's path: any outcome */
	else
		kept = s->acquired ? zero : error;
	if (!kept)
		a->fail = true;
}

static void note_jcc(struct sp_analysis *a, uint64_t addr, unsigned int zf)
{
	for (int i = 0; i < a->njcc; i++) {
		if (a->jcc[i].addr == addr) {
			a->jcc[i].zf_seen |= 1u << zf;
			return;
		}
	}
	if (a->njcc == SP_MAX_JCC) {
		a->fail = true;
		return;
	}
	a->jcc[a->njcc].addr = addr;
	a->jcc[a->njcc++].zf_seen = 1u << zf;
}

static bool calls_noreturn(const struct placement_code *code, uint64_t target)
{
	for (size_t i = 0; i < code->nnoreturn; i++)
		if (code->noreturn[i] == target)
			return true;
	return false;
}

/* One instruction of one path: its successors go on the work list. */
static void step(struct sp_analysis *a, const cs_insn *in, const struct sp_state *in_state)
{
	const cs_x86 *x = &in->detail->x86;
	uint64_t next = in->address + in->size, target = 0;
	bool direct = x->op_count == 1 && x->operands[0].type == X86_OP_IMM;
	struct sp_state s;

	memcpy(&s, in_state, sizeof(s));
	if (direct)
		target = (uint64_t)x->operands[0].imm;
	if (in->id == X86_INS_RET) {
		at_return(a, &s);
		return;
	}
	if (in->id == X86_INS_INT3 || in->id == X86_INS_UD2 || in->id == X86_INS_HLT)
		return;		/* traps: the path ends */
	if (in->id == X86_INS_JMP) {
		if (!direct)
			a->fail = true;
		else
			branch(a, target, &s);
		return;
	}
	if (cs_insn_group(a->cs, in, CS_GRP_JUMP)) {	/* conditional */
		struct sp_state ok;
		bool zf_jump = (in->id == X86_INS_JE || in->id == X86_INS_JNE) && s.zf;

		if (!direct) {
			a->fail = true;
			return;
		}
		if (in->id == X86_INS_JE || in->id == X86_INS_JNE)
			note_jcc(a, in->address, s.zf);
		if (zf_jump) {
			struct sp_rmw *r = &a->rmw[s.zf - 1];

			if (r->jcc && (r->jcc != in->address || r->slot != s.sp / 8))
				a->fail = true;
			r->jcc = in->address;
			r->slot = s.sp / 8;
			if (!(s.entry & (1u << R_BP)))
				r->fp_lost = true;
		}
		s.zf = 0;
		memcpy(&ok, &s, sizeof(ok));
		if (zf_jump)
			ok.acquired++;
		/* jne: falls through when ZF is set; je: jumps */
		branch(a, target, zf_jump && in->id == X86_INS_JE ? &ok : &s);
		push(a, next, zf_jump && in->id == X86_INS_JNE ? &ok : &s);
		return;
	}
	if (cs_insn_group(a->cs, in, CS_GRP_CALL)) {
		if (direct && calls_noreturn(a->code, target))
			return;
		s.lock &= (uint16_t)~CALLER_SAVED;
		s.known &= (uint16_t)~CALLER_SAVED;
		s.entry &= (uint16_t)~CALLER_SAVED;
		for (int i = 0; i < NR_GPRS; i++)
			if (CALLER_SAVED & (1u << i))
				s.val[i] = 0;
		s.zf = 0;
		push(a, next, &s);
		return;
	}
	if (is_control_flow(a->cs, in) && in->id != X86_INS_SYSCALL) {
		a->fail = true;		/* indirect or unusual control flow */
		return;
	}
	if ((x->prefix[0] == X86_PREFIX_LOCK) &&
	    (in->id == X86_INS_CMPXCHG || in->id == X86_INS_DEC)) {
		s.zf = 0;
		atomic_on_lock(a, in, &s);
		update_regs(a, in, &s);
	} else {
		switch (in->id) {
		case X86_INS_MOV: case X86_INS_MOVABS: case X86_INS_LEA: case X86_INS_NOP:
		case X86_INS_MOVZX: case X86_INS_MOVSX: case X86_INS_MOVSXD:
			break;		/* flags untouched */
		default:
			s.zf = 0;
		}
		update_regs(a, in, &s);
	}
	if (in->id == X86_INS_SYSCALL) {	/* the kernel returns in rax, clobbers rcx, r11 */
		unsigned int clobbered = (1u << R_AX) | (1u << R_CX) | (1u << R_11);

		s.lock &= (uint16_t)~clobbered;
		s.known &= (uint16_t)~clobbered;
		s.entry &= (uint16_t)~clobbered;
		s.val[R_AX] = s.val[R_CX] = s.val[R_11] = 0;
	}
	push(a, next, &s);
}

int placement_success_points(const struct placement_code *code, uint64_t addr, size_t size,
			     int other_op_off, struct success_point *out, int max)
{
	struct sp_analysis *a = calloc(1, sizeof(*a));
	struct sp_state s0;
	int n = 0, ret = -ENOENT;

	if (!a)
		return -ENOMEM;
	a->code = code;
	a->other_op_off = other_op_off;
	if (cs_open(CS_ARCH_X86, CS_MODE_64, &a->cs) != CS_ERR_OK) {
		free(a);
		return -ENOMEM;
	}
	cs_option(a->cs, CS_OPT_DETAIL, CS_OPT_ON);
	memset(&s0, 0, sizeof(s0));
	s0.lock = 1u << R_DI;	/* the first argument */
	s0.entry = 0xffff;
	if (load_region(a, addr, size))
		a->fail = true;
	else
		push(a, addr, &s0);
	while (a->nwork && !a->fail) {
		struct sp_item it;
		const cs_insn *in;

		memcpy(&it, &a->items[a->work[--a->nwork]], sizeof(it));
		in = insn_at(a, it.addr);
		if (!in) {
			a->fail = true;	/* ran off the decoded code */
			break;
		}
		step(a, in, &it.s);
	}
	for (int i = 0; i < a->nrmw && !a->fail; i++) {
		const struct sp_rmw *r = &a->rmw[i];

		if (!r->on_lock || !r->jcc)
			continue;
		if (r->off_lock || r->slot < 0) {
			a->fail = true;	/* the base is not always the lock */
			break;
		}
		/* the jump must be reached only right after its atomic */
		for (int j = 0; j < a->njcc; j++)
			if (a->jcc[j].addr == r->jcc && a->jcc[j].zf_seen != 1u << (i + 1))
				a->fail = true;
		if (n == max) {
			a->fail = true;
			break;
		}
		out[n].offset = r->jcc;
		out[n].ret_slot = (unsigned int)r->slot;
		out[n].reg = (unsigned int)r->reg;
		out[n].keeps_fp = !r->fp_lost;
		n++;
	}
	if (!a->fail && n)
		ret = n;
	free_regions(a);
	cs_close(&a->cs);
	free(a);
	return ret;
}

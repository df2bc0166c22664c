// SPDX-License-Identifier: GPL-2.0
#include <capstone/capstone.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
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

static bool writes_reg(csh cs, const cs_insn *in, x86_reg base)
{
	cs_regs rd, wr;
	uint8_t nrd, nwr;

	if (cs_regs_access(cs, in, rd, &nrd, wr, &nwr) != CS_ERR_OK)
		return true;	/* unknown: assume the worst */
	for (int i = 0; i < nwr; i++) {
		switch (wr[i]) {
		case X86_REG_RDI: case X86_REG_EDI: case X86_REG_DI: case X86_REG_DIL:
			if (base == X86_REG_RDI)
				return true;
			break;
		case X86_REG_RSP: case X86_REG_ESP: case X86_REG_SP: case X86_REG_SPL:
			if (base == X86_REG_RSP)
				return true;
			break;
		default:
			break;
		}
	}
	return false;
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
		if (is_control_flow(cs, in) || writes_reg(cs, in, X86_REG_RDI))
			break;	/* past this, every call may not reach us with %rdi intact */
		if (writes_reg(cs, in, X86_REG_RSP)) {
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

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Where in a lock function to put its uprobe.
 *
 * A uprobe on an instruction the kernel cannot emulate is single-stepped
 * out of line on every hit (~10 us here); on one it emulates (jmp, jcc, call
 * rel32, nop, push reg) it costs well under 1 us, and a 5-byte nop is even
 * optimized into a call. So the probe goes on the first emulated instruction
 * that every call executes, as long as the lock argument is still in %rdi and
 * the distance from %rsp to the return address is known. Anything else falls
 * back to the function's entry.
 */
#ifndef FH_PLACEMENT_H
#define FH_PLACEMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct probe_point {
	uint64_t offset;	/* from the function's first byte */
	unsigned int ret_slot;	/* 8-byte words from %rsp to the return address */
	char insn[32];		/* the probed instruction, for diagnostics */
	int emulated;		/* the kernel emulates it (no single-step) */
	int unprobeable;	/* no uprobe can sit there: leave the function alone */
};

/*
 * Choose the probe point of the x86-64 function whose code is code[0..len)
 * (its whole body, as far as known) loaded at vaddr. Always fills *pp; returns
 * 0 when an emulated point was found, -ENOENT when pp is the plain entry.
 */
#define PLACE_REFIRE_OK	0x1	/* the probe's program is idempotent: a point in a
				 * retry loop (cmpxchg) may fire more than once */
int placement_choose(const uint8_t *code, size_t len, uint64_t vaddr, unsigned int flags,
		     struct probe_point *pp);

/* Can a uprobe sit on the first instruction of code at all? The kernel
 * refuses instructions with a LOCK or an ES/CS/SS/DS segment prefix. */
bool placement_probeable(const uint8_t *code, size_t len);

#endif

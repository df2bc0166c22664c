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

/*
 * Where a lock function's atomic instruction on the lock word has succeeded:
 * the conditional jump (je/jne, emulated by the kernel) that follows it, and
 * the register holding the lock's address there. A probe at such a point
 * fires once per attempt on the word (more than once in a retry loop), sees
 * ZF set exactly when this attempt took the lock, and is never reached by a
 * call that gives up before trying (a failed sem_trywait). Found only when
 * the analysis (placement.c) proves that the function returns 0 exactly when
 * one success point was passed with ZF set.
 */
struct success_point {
	uint64_t offset;	/* of the jump, in the address space of `code` */
	unsigned int ret_slot;	/* 8-byte words from %rsp to the return address */
	unsigned int reg;	/* x86-64 register number (0 rax ... 7 rdi, 8-15 r8-r15) */
	bool keeps_fp;		/* %rbp is still the caller's frame pointer there */
};

/* The code around a function: how to read it, and which functions it may
 * call never return (a path that calls one ends there). */
struct placement_code {
	/* Copy up to len bytes of the code at addr; returns the bytes copied. */
	size_t (*read)(void *ctx, uint64_t addr, uint8_t *buf, size_t len);
	void *ctx;
	const uint64_t *noreturn;
	size_t nnoreturn;
};

/*
 * The success points of the x86-64 function at addr (size bytes; the code it
 * tail-jumps to is read as needed). other_op_off >= 0: a path that writes the
 * lock word at that displacement performs another operation (the writer half
 * of pthread_rwlock_unlock clears __cur_writer): it needs no success point,
 * and points only such paths reach are left out. Returns the number of points
 * written to out (at most max), -ENOENT when the function does not qualify
 * (the probe must stay where it was), or -ENOMEM.
 */
int placement_success_points(const struct placement_code *code, uint64_t addr, size_t size,
			     int other_op_off, struct success_point *out, int max);

#endif

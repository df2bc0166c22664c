// SPDX-License-Identifier: GPL-2.0
/*
 * placement.c: where a lock function's uprobe goes. The byte sequences are
 * the first instructions of glibc 2.36's lock functions on x86-64 (Debian
 * 12), and shapes that must keep the probe on the entry.
 */
#include <errno.h>
#include <stdint.h>
#include "placement.h"
#include "unit.h"

#define CODE(...) ((const uint8_t[]){ __VA_ARGS__ })
#define CHOOSE(pp, ...) placement_choose(CODE(__VA_ARGS__), sizeof(CODE(__VA_ARGS__)), 0x1000, 0, pp)

UNIT_TEST(mutex_lock_jne_after_register_setup)
{
	struct probe_point pp;

	/* mov 0x10(%rdi),%eax; mov %eax,%edx; and $0x17f,%edx; and $0x7c,%eax;
	 * jne +0xac; push %rbx */
	CHECK_INT(CHOOSE(&pp, 0x8b, 0x47, 0x10, 0x89, 0xc2, 0x81, 0xe2, 0x7f, 0x01, 0x00, 0x00,
			 0x83, 0xe0, 0x7c, 0x0f, 0x85, 0xac, 0x00, 0x00, 0x00, 0x53), 0);
	CHECK_INT(pp.offset, 14);
	CHECK_INT(pp.ret_slot, 0);
	CHECK_STR(pp.insn, "jne");
	CHECK(pp.emulated);
}

UNIT_TEST(mutex_unlock_jmp)
{
	struct probe_point pp;

	/* mov $1,%esi; jmp rel32 */
	CHECK_INT(CHOOSE(&pp, 0xbe, 0x01, 0x00, 0x00, 0x00, 0xe9, 0xf6, 0xfe, 0xff, 0xff), 0);
	CHECK_INT(pp.offset, 5);
	CHECK_STR(pp.insn, "jmp");
}

UNIT_TEST(trylock_push_at_entry_is_emulated)
{
	struct probe_point pp;

	/* push %r14; push %r13 */
	CHECK_INT(CHOOSE(&pp, 0x41, 0x56, 0x41, 0x55), 0);
	CHECK_INT(pp.offset, 0);
	CHECK_INT(pp.ret_slot, 0);
	CHECK_STR(pp.insn, "push");
}

UNIT_TEST(pushes_before_the_point_move_the_return_address)
{
	struct probe_point pp;

	/* mov %rdi,%rax; sub $0x18,%rsp; ... a push is emulated too, so:
	 * mov %rdi,%rax (not emulated) then sub $0x18,%rsp then jmp */
	CHECK_INT(CHOOSE(&pp, 0x48, 0x89, 0xf8, 0x48, 0x83, 0xec, 0x18, 0xeb, 0x00), 0);
	CHECK_INT(pp.offset, 7);
	CHECK_INT(pp.ret_slot, 3);	/* 0x18 bytes = 3 words */
}

UNIT_TEST(rdi_overwritten_keeps_entry)
{
	struct probe_point pp;

	/* mov %rsi,%rdi; jmp: the lock argument is gone by the jmp */
	CHECK_INT(CHOOSE(&pp, 0x48, 0x89, 0xf7, 0xeb, 0x00), -ENOENT);
	CHECK_INT(pp.offset, 0);
	CHECK(!pp.emulated);
}

UNIT_TEST(branch_target_is_not_once_per_call)
{
	struct probe_point pp;

	/* 0: mov (%rdi),%eax; 2: test %eax,%eax; 4: je 4 (to itself): the
	 * point would fire on every spin, so the probe stays on the entry */
	CHECK_INT(CHOOSE(&pp, 0x8b, 0x07, 0x85, 0xc0, 0x74, 0xfe), -ENOENT);
	CHECK_INT(pp.offset, 0);
}

UNIT_TEST(ret_before_any_emulated_keeps_entry)
{
	struct probe_point pp;

	/* movl $1,(%rdi); xor %eax,%eax; ret (pthread_spin_unlock) */
	CHECK_INT(CHOOSE(&pp, 0xc7, 0x07, 0x01, 0x00, 0x00, 0x00, 0x31, 0xc0, 0xc3), -ENOENT);
	CHECK_INT(pp.offset, 0);
}

UNIT_TEST(nop5_is_chosen)
{
	struct probe_point pp;

	/* mov %eax,%edx; nopl 0x0(%rax,%rax,1) (5 bytes, optimized into a call) */
	CHECK_INT(CHOOSE(&pp, 0x89, 0xc2, 0x0f, 0x1f, 0x44, 0x00, 0x00), 0);
	CHECK_INT(pp.offset, 2);
}

UNIT_TEST(other_rsp_write_stops)
{
	struct probe_point pp;

	/* mov %rdx,%rsp; jmp: where the return address is, is unknown */
	CHECK_INT(CHOOSE(&pp, 0x48, 0x89, 0xd4, 0xeb, 0x00), -ENOENT);
}

UNIT_TEST(garbage_keeps_entry)
{
	struct probe_point pp;

	CHECK_INT(CHOOSE(&pp, 0x0f, 0x0b), -ENOENT);	/* ud2 */
	CHECK_INT(placement_choose(NULL, 0, 0, 0, &pp), -ENOENT);
	CHECK_INT(pp.offset, 0);
}

UNIT_TEST(lock_prefix_cannot_carry_a_uprobe)
{
	/* lock decl (%rdi): pthread_spin_lock's first instruction */
	CHECK(!placement_probeable(CODE(0xf0, 0xff, 0x0f), 3));
	CHECK(placement_probeable(CODE(0x8b, 0x47, 0x10), 3));
	CHECK(placement_probeable(CODE(0x64, 0x8b, 0x04, 0x25, 0xd0, 0x02, 0x00, 0x00), 8));
	CHECK(!placement_probeable(CODE(0x66, 0xf0, 0x0f, 0xb1, 0x0f), 5));
}

UNIT_TEST(retry_loop_point_allowed_when_refiring_is_harmless)
{
	struct probe_point pp;
	/* sem_trywait: 0: mov (%rdi),%rax; 3: test %eax,%eax; 5: je +0x11;
	 * 7: lea -1(%rax),%rdx; b: lock cmpxchg %rdx,(%rdi); 10: jne 3 */
	const uint8_t code[] = { 0x48, 0x8b, 0x07, 0x85, 0xc0, 0x74, 0x11, 0x48, 0x8d, 0x50, 0xff,
				 0xf0, 0x48, 0x0f, 0xb1, 0x17, 0x75, 0xf1 };

	CHECK_INT(placement_choose(code, sizeof(code), 0, 0, &pp), -ENOENT);
	CHECK_INT(placement_choose(code, sizeof(code), 0, PLACE_REFIRE_OK, &pp), 0);
	CHECK_INT(pp.offset, 5);
	CHECK_STR(pp.insn, "je");
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Stacks unwound from the user-stack copies the BPF side sends with hazard
 * forks and deadlocks (struct fh_ustack_event). They are unwound when they
 * arrive, while the process is surely there, and kept as addresses until the
 * event they belong to is printed. Bounded: a small table, oldest out, and a
 * rate limit on unwinding (each costs a DWARF walk); what is skipped is
 * counted, and its event falls back to the frame-pointer stack.
 */
#ifndef FH_USTACKS_H
#define FH_USTACKS_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include "forkhazard.h"

#define USTACK_FRAMES	FH_STACK_DEPTH

struct syms;
struct ustacks;

struct ustacks_stats {
	uint64_t unwound, rate_limited, failed, evicted;
};

struct ustacks *ustacks_new(struct syms *syms, int capacity, int max_per_second);
void ustacks_free(struct ustacks *u);

/* Unwind a capture now and keep the result for (tid, time_ns). */
void ustacks_add(struct ustacks *u, const struct fh_ustack_event *ev, uint64_t now_ns);

/*
 * The unwound stack of the event (tid, time_ns): its addresses, innermost
 * first; addrs[0] is the instruction pointer, the others return addresses.
 * Returns the count, 0 if there is none.
 */
int ustacks_get(const struct ustacks *u, uint32_t tid, uint64_t time_ns, uint64_t *addrs, int max);

/*
 * The frames of an event's stack (a fork call, a deadlocked wait): unwound
 * with CFI when its copy was (*cfi set), else the kernel's frame-pointer walk
 * stack_id. u may be NULL. Returns the number of frames.
 */
struct fh_frame;
int ustacks_frames(const struct ustacks *u, struct syms *syms, pid_t pid, uint32_t tid,
		   uint64_t time_ns, int stack_id, struct fh_frame *frames, int max, bool *cfi);

void ustacks_get_stats(const struct ustacks *u, struct ustacks_stats *st);

#endif

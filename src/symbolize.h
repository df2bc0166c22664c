/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Addresses to frames: user stacks recorded by the BPF side, resolved with
 * elfutils' libdwfl against the process's modules. Never prints anything.
 */
#ifndef FH_SYMBOLIZE_H
#define FH_SYMBOLIZE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#define FH_SYM_LEN	256
#define FH_MODULE_LEN	256

struct fh_frame {
	uint64_t addr;
	bool known;		/* symbol and offset are valid */
	bool has_module;	/* module (and module_offset) are valid */
	bool fp;		/* from a frame-pointer walk: may be wrong */
	uint64_t offset;	/* from the symbol's start */
	uint64_t module_offset;	/* from the module's load address */
	char symbol[FH_SYM_LEN];
	char module[FH_MODULE_LEN];
};

struct syms;

/* stack_map_fd: the BPF stack map stack ids refer to. */
struct syms *syms_new(int stack_map_fd);
void syms_free(struct syms *s);

/*
 * The frames of one recorded user stack of process pid, at most max.
 * `exact` (if non-zero) is a return address known to be right (the caller of
 * a lock function); it becomes frame #0, the frame-pointer walk follows it.
 * skip: leading entries of the recorded stack to drop (e.g. the lock
 * function itself). Returns the number of frames (0 if nothing is known).
 */
int syms_stack(struct syms *s, pid_t pid, int stack_id, int skip, uint64_t exact,
	       struct fh_frame *frames, int max);

/* Resolve one address of pid into *f. */
void syms_resolve(struct syms *s, pid_t pid, uint64_t addr, struct fh_frame *f);

/* Forget what is cached about pid (it exited or exec'd). */
void syms_forget(struct syms *s, pid_t pid);

#endif

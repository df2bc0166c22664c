// SPDX-License-Identifier: GPL-2.0
/*
 * pyrt_check PID: reads a Python process the way the in-kernel frame walker
 * will (struct fh_py_layout alone, from each thread's fs base) and the way
 * src/pyrt.c does (its thread states), and prints both, one JSON line per
 * thread, for tests/test_pyrt.py to compare. Each thread is stopped briefly
 * (PTRACE_SEIZE + PTRACE_INTERRUPT) to read its fs base.
 *
 *   {"tid": T, "tstate_tsd": "0x..", "tstate_list": "0x..", "thread_id_is_fs": true,
 *    "walk": [["function", "file", line], ...], "stack": [...], "name": "..."}
 *
 * The first line is the process: {"python": "3.12", "layout": {...}}.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/uio.h>
#include <sys/user.h>
#include <sys/wait.h>
#include <unistd.h>
#include "json.h"
#include "procfs.h"
#include "pyrt.h"

#define MAX_THREADS	256
#define DEPTH		64

static pid_t pid;

static int rd(uint64_t addr, void *buf, size_t len)
{
	struct iovec local = { buf, len }, remote = { (void *)(uintptr_t)addr, len };

	return process_vm_readv(pid, &local, 1, &remote, 1, 0) == (ssize_t)len ? 0 : -1;
}

static uint64_t rd64(uint64_t addr)
{
	uint64_t v = 0;

	return rd(addr, &v, sizeof(v)) ? 0 : v;
}

static int fs_base_of(pid_t tid, uint64_t *fs)
{
	struct user_regs_struct regs;
	int status;

	if (ptrace(PTRACE_SEIZE, tid, NULL, NULL) || ptrace(PTRACE_INTERRUPT, tid, NULL, NULL))
		return -errno;
	if (waitpid(tid, &status, __WALL) != tid || !WIFSTOPPED(status))
		return -ESRCH;
	if (ptrace(PTRACE_GETREGS, tid, NULL, &regs)) {
		ptrace(PTRACE_DETACH, tid, NULL, NULL);
		return -errno;
	}
	*fs = regs.fs_base;
	return 0;
}

static void frames_json(struct jw *w, const char *key, const struct pyrt_frame *f, int n)
{
	jw_arr_begin(w, key);
	for (int i = 0; i < n; i++) {
		jw_arr_begin(w, NULL);
		jw_str(w, NULL, f[i].function);
		jw_str(w, NULL, f[i].file);
		jw_int(w, NULL, f[i].line);
		jw_arr_end(w);
	}
	jw_arr_end(w);
}

/* The walk struct fh_py_layout describes, step by step. */
static int walk(const struct fh_py_layout *l, uint64_t tstate, struct pyrt *r,
		struct pyrt_frame *out)
{
	uint64_t f = rd64(tstate + l->tstate_frame);
	int n = 0;

	if (l->cframe_current_frame != FH_PY_NONE && f)
		f = rd64(f + l->cframe_current_frame);
	for (int i = 0; f && i < DEPTH && n < DEPTH; i++) {
		uint64_t code = rd64(f + l->frame_code), instr;
		uint8_t owner = 0;

		if (l->frame_instr_size == 4) {
			int32_t lasti = 0;

			rd(f + l->frame_instr, &lasti, sizeof(lasti));
			instr = (uint64_t)(int64_t)lasti;
		} else {
			instr = rd64(f + l->frame_instr);
		}
		if (l->frame_owner != FH_PY_NONE)
			rd(f + l->frame_owner, &owner, 1);
		if ((l->frame_owner == FH_PY_NONE || owner != l->frame_owner_cstack) &&
		    !pyrt_resolve(r, pid, code, instr, &out[n]))
			n++;
		f = rd64(f + l->frame_previous);
	}
	return n;
}

int main(int argc, char **argv)
{
	static struct pyrt_frame walked[DEPTH], stack[DEPTH];
	struct fh_py_layout l;
	struct pyrt_info info;
	pid_t tids[MAX_THREADS];
	struct pyrt *r;
	struct jw w;
	int n, err;

	if (argc != 2) {
		fprintf(stderr, "usage: pyrt_check PID\n");
		return 2;
	}
	pid = atoi(argv[1]);
	r = pyrt_new(NULL);
	err = pyrt_open(r, pid, &info);
	if (!err)
		err = pyrt_layout(r, pid, &l);
	if (err) {
		printf("{\"error\": %d}\n", err);
		pyrt_free(r);
		return 1;
	}
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_int(&w, "minor", info.minor);
	jw_obj_begin(&w, "layout");
	jw_uint(&w, "tss_key", l.tss_key);
	jw_uint(&w, "tsd_offset", l.tsd_offset);
	jw_uint(&w, "tsd_stride", l.tsd_stride);
	jw_obj_end(&w);
	jw_obj_end(&w);
	jw_write_line(&w, stdout);
	jw_free(&w);
	n = procfs_list_tasks(pid, tids, MAX_THREADS);
	for (int i = 0; i < n; i++) {
		uint64_t fs = 0, tsd = 0, list = 0;
		char name[PYRT_NAME_LEN] = "";
		int nw = 0, ns;

		if (fs_base_of(tids[i], &fs))
			continue;
		/* step 1, as the kernel will: the thread pointer's TSD slot */
		tsd = rd64(fs + l.tsd_offset + (uint64_t)l.tss_key * l.tsd_stride);
		pyrt_thread_state(r, pid, tids[i], &list);
		if (tsd)
			nw = walk(&l, tsd, r, walked);
		ns = pyrt_thread_stack(r, pid, tids[i], stack, DEPTH);
		pyrt_thread_name(r, pid, tids[i], name, sizeof(name));
		jw_init(&w);
		jw_obj_begin(&w, NULL);
		jw_int(&w, "tid", tids[i]);
		jw_addr(&w, "fs_base", fs);
		jw_addr(&w, "tstate_tsd", tsd);
		jw_addr(&w, "tstate_list", list);
		jw_bool(&w, "thread_id_is_fs", tsd && rd64(tsd + l.tstate_thread_id) == fs);
		if (l.tstate_native_thread_id != FH_PY_NONE && tsd)
			jw_int(&w, "native_thread_id",
			       (long long)rd64(tsd + l.tstate_native_thread_id));
		frames_json(&w, "walk", walked, nw);
		frames_json(&w, "stack", stack, ns > 0 ? ns : 0);
		jw_str(&w, "name", name[0] ? name : NULL);
		jw_obj_end(&w);
		ptrace(PTRACE_DETACH, tids[i], NULL, NULL);
		jw_write_line(&w, stdout);
		jw_free(&w);
	}
	pyrt_free(r);
	return 0;
}

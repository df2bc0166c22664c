// SPDX-License-Identifier: GPL-2.0
#include <elfutils/libdwfl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <bpf/bpf.h>
#include "forkhazard.h"
#include "symbolize.h"

#define SYMS_CACHED_PROCS 32	/* Dwfl sessions kept, least recently used evicted */

struct proc_syms {
	pid_t pid;
	Dwfl *dwfl;
	unsigned long long last_use;
	bool refreshed;		/* re-reported once after a miss */
};

struct syms {
	int stack_map_fd;
	struct proc_syms procs[SYMS_CACHED_PROCS];
	unsigned long long clock;
	char *debuginfo_path;
	Dwfl_Callbacks callbacks;
};

struct syms *syms_new(int stack_map_fd)
{
	struct syms *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->stack_map_fd = stack_map_fd;
	s->callbacks.find_elf = dwfl_linux_proc_find_elf;
	s->callbacks.find_debuginfo = dwfl_standard_find_debuginfo;
	s->callbacks.debuginfo_path = &s->debuginfo_path;
	return s;
}

static void drop(struct proc_syms *p)
{
	if (p->dwfl)
		dwfl_end(p->dwfl);
	memset(p, 0, sizeof(*p));
}

void syms_free(struct syms *s)
{
	if (!s)
		return;
	for (int i = 0; i < SYMS_CACHED_PROCS; i++)
		drop(&s->procs[i]);
	free(s);
}

void syms_forget(struct syms *s, pid_t pid)
{
	for (int i = 0; i < SYMS_CACHED_PROCS; i++)
		if (s->procs[i].pid == pid && s->procs[i].dwfl)
			drop(&s->procs[i]);
}

static Dwfl *report(struct syms *s, pid_t pid)
{
	Dwfl *dwfl = dwfl_begin(&s->callbacks);

	if (!dwfl)
		return NULL;
	dwfl_report_begin(dwfl);
	if (dwfl_linux_proc_report(dwfl, pid) != 0) {
		dwfl_end(dwfl);
		return NULL;
	}
	dwfl_report_end(dwfl, NULL, NULL);
	return dwfl;
}

static struct proc_syms *get_proc(struct syms *s, pid_t pid)
{
	struct proc_syms *victim = &s->procs[0];

	for (int i = 0; i < SYMS_CACHED_PROCS; i++) {
		struct proc_syms *p = &s->procs[i];

		if (p->dwfl && p->pid == pid) {
			p->last_use = ++s->clock;
			return p;
		}
		if (!p->dwfl || p->last_use < victim->last_use)
			victim = p;
	}
	drop(victim);
	victim->dwfl = report(s, pid);
	if (!victim->dwfl)
		return NULL;
	victim->pid = pid;
	victim->last_use = ++s->clock;
	return victim;
}

void syms_resolve(struct syms *s, pid_t pid, uint64_t addr, struct fh_frame *f)
{
	struct proc_syms *p = get_proc(s, pid);
	Dwfl_Module *mod = NULL;
	const char *name, *modname;
	GElf_Addr start = 0, off = 0;
	GElf_Sym sym;

	memset(f, 0, sizeof(*f));
	f->addr = addr;
	if (!p)
		return;
	mod = dwfl_addrmodule(p->dwfl, addr);
	if (!mod && !p->refreshed) {
		/* Maybe mapped since we looked (dlopen): look once more. */
		Dwfl *fresh = report(s, pid);

		if (fresh) {
			dwfl_end(p->dwfl);
			p->dwfl = fresh;
		}
		p->refreshed = true;
		mod = dwfl_addrmodule(p->dwfl, addr);
	}
	if (!mod)
		return;
	modname = dwfl_module_info(mod, NULL, &start, NULL, NULL, NULL, NULL, NULL);
	if (modname) {
		snprintf(f->module, sizeof(f->module), "%s", modname);
		f->has_module = true;
		f->module_offset = addr - start;
	}
	name = dwfl_module_addrinfo(mod, addr, &off, &sym, NULL, NULL, NULL);
	if (name) {
		snprintf(f->symbol, sizeof(f->symbol), "%s", name);
		f->offset = off;
		f->known = true;
	}
}

int syms_stack(struct syms *s, pid_t pid, int stack_id, int skip, uint64_t exact,
	       struct fh_frame *frames, int max)
{
	uint64_t ips[FH_STACK_DEPTH] = { 0 };
	int n = 0;

	if (max <= 0)
		return 0;
	if (exact) {
		/* A return address points after the call: resolve the call itself. */
		syms_resolve(s, pid, exact - 1, &frames[n]);
		frames[n].addr = exact;
		if (frames[n].known)
			frames[n].offset++;
		if (frames[n].has_module)
			frames[n].module_offset++;
		n++;
	}
	if (stack_id < 0 || bpf_map_lookup_elem(s->stack_map_fd, &stack_id, ips))
		return n;
	for (int i = skip; i < FH_STACK_DEPTH && ips[i] && n < max; i++) {
		if (exact && ips[i] == exact)
			continue;	/* the walk found the exact frame too */
		syms_resolve(s, pid, i == 0 ? ips[i] : ips[i] - 1, &frames[n]);
		if (i > 0) {
			frames[n].addr = ips[i];
			if (frames[n].known)
				frames[n].offset++;
			if (frames[n].has_module)
				frames[n].module_offset++;
		}
		frames[n].fp = i > 0;
		n++;
	}
	return n;
}

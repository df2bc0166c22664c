// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <bpf/libbpf.h>
#include "calibrate.h"
#include "output.h"
#include "caps.h"
#include "escape.h"
#include "forkhazard.h"
#include "forkhazard.skel.h"
#include "json.h"
#include "log.h"
#include "placement.h"
#include "procfs.h"
#include "bpf_compat.h"

/* Each kind's JSON key and what the text output calls it. */
static const struct {
	const char *name, *label;
} kinds_shown[CALIB_KINDS] = {
	[CALIB_SYSCALL] = { "syscall", "system call (getppid)" },
	[CALIB_EMULATED] = { "uprobe_emulated", "uprobe, emulated" },
	[CALIB_SINGLE_STEP] = { "uprobe_single_step", "uprobe, single-stepped" },
	[CALIB_NOP5] = { "uprobe_nop5", "uprobe on a 5-byte nop" },
	[CALIB_PAIR] = { "uprobe_uretprobe_pair", "uprobe + uretprobe" },
};

const char *calibrate_kind_name(enum calib_kind k)
{
	return (unsigned int)k < CALIB_KINDS ? kinds_shown[k].name : "?";
}

#if defined(__x86_64__)

/*
 * The functions called, in assembly so that their bytes are what the names
 * say. Each probed one has the same body as calib_base (or nearly: a mov for
 * a push), so a hit's cost is the difference. They never touch memory but
 * the stack; getppid is system call 110 on x86-64.
 */
__asm__(
	".pushsection .text.fh_calib,\"ax\",@progbits\n"
	".macro fh_calib_fn name\n"
	"  .globl \\name\n"
	"  .hidden \\name\n"
	"  .type \\name, @function\n"
	"  .p2align 4\n"
	"\\name:\n"
	".endm\n"
	"fh_calib_fn fh_calib_base\n"
	"  push %rbp\n"			/* 55 */
	"  pop %rbp\n"
	"  ret\n"
	"fh_calib_fn fh_calib_emulated\n"
	"  push %rbp\n"			/* 55: emulated */
	"  pop %rbp\n"
	"  ret\n"
	"fh_calib_fn fh_calib_single_step\n"
	"  mov %rdi, %rax\n"		/* 48 89 f8: single-stepped */
	"  ret\n"
	"fh_calib_fn fh_calib_nop5\n"
	"  .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n"	/* nopl 0x0(%rax,%rax,1) */
	"  ret\n"
	"fh_calib_fn fh_calib_pair\n"
	"  push %rbp\n"
	"  pop %rbp\n"
	"  ret\n"
	"fh_calib_fn fh_calib_getppid\n"
	"  mov $110, %eax\n"
	"  syscall\n"
	"  ret\n"
	".purgem fh_calib_fn\n"
	".popsection\n");

#define CALIB_FN(name) extern void name(void) __attribute__((visibility("hidden")))
CALIB_FN(fh_calib_base);
CALIB_FN(fh_calib_emulated);
CALIB_FN(fh_calib_single_step);
CALIB_FN(fh_calib_nop5);
CALIB_FN(fh_calib_pair);
CALIB_FN(fh_calib_getppid);

typedef void (*calib_fn)(void);

static const struct calib_target {
	calib_fn fn;
	int probe;		/* enum fh_calib_probe; -1: not probed */
	const char *insn;	/* what the probe sits on */
} targets[CALIB_KINDS] = {
	[CALIB_SYSCALL] = { fh_calib_getppid, -1, "syscall" },
	[CALIB_EMULATED] = { fh_calib_emulated, FH_CALIB_EMULATED, "push %rbp" },
	[CALIB_SINGLE_STEP] = { fh_calib_single_step, FH_CALIB_SINGLE_STEP, "mov %rdi,%rax" },
	[CALIB_NOP5] = { fh_calib_nop5, FH_CALIB_NOP5, "nopl 0x0(%rax,%rax,1)" },
	[CALIB_PAIR] = { fh_calib_pair, FH_CALIB_PAIR_ENTRY, "push %rbp" },
};

#define WARMUP_CALLS	16	/* first hits: the nop's optimization, the single-step slot */
#define MIN_CALLS	16
#define MAX_CALLS	(1ul << 22)
#define MAX_BATCHES	7	/* a kind's batches with 50 ms or more of its own */
#define FEW_BATCHES	5	/* with less (the governor's 20 ms) */
#define MIN_BATCHES	3	/* on a machine too busy to do them all in time */

struct calib {
	unsigned int kinds;		/* CALIB_BIT()s with their probes attached */
	bool emulated[CALIB_KINDS];	/* placement.c's verdict, on the unprobed bytes */
	struct forkhazard_bpf *skel;	/* whose calib_hit is attached */
	struct forkhazard_bpf *own;	/* loaded here, destroyed here */
	int links[2];		/* entry probes, return probe */
	char path[64];		/* /proc/self/map_files/ of our code */
	uint64_t map_start, map_offset;
};

static uint64_t clock_ns(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ns(void)
{
	return clock_ns(CLOCK_MONOTONIC);
}

/*
 * The CPU time the calls took this thread, user and system (the traps are
 * handled in its context), not the wall-clock time: on a shared machine,
 * other processes' turns on the CPU would count (measured here under load:
 * 5x the emulated hit's cost in wall-clock time, the same in CPU time).
 * It is also the unit of the governor's budget: a process's own CPU time.
 */
static uint64_t time_calls(calib_fn fn, unsigned long n)
{
	uint64_t t0 = clock_ns(CLOCK_THREAD_CPUTIME_ID);

	for (unsigned long i = 0; i < n; i++)
		fn();
	return clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

double calibrate_median(double *v, int n)
{
	if (n <= 0)
		return 0;
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The kernel keeps a probed function's own copy of the page with the int3
 * (or the call a nop was turned into) in it: what this process reads. */
static uint8_t first_byte(calib_fn fn)
{
	return *(const volatile uint8_t *)(uintptr_t)fn;
}

/* Where placement.c would put a probe in this function: at its first
 * instruction (offset 0) in every case but the single-stepped one. */
static bool placed_emulated(calib_fn fn)
{
	struct probe_point pp;
	uint8_t code[16];

	memcpy(code, (const void *)(uintptr_t)fn, sizeof(code));
	return placement_choose(code, sizeof(code), (uintptr_t)fn, 0, &pp) == 0 &&
	       pp.offset == 0 && pp.emulated;
}

static int find_code(const struct fh_mapping *m, void *ctx)
{
	struct calib *c = ctx;
	uintptr_t at = (uintptr_t)fh_calib_base;

	if (at < m->start || at >= m->end || !m->path[0])
		return 0;
	snprintf(c->path, sizeof(c->path), "/proc/self/map_files/%llx-%llx",
		 (unsigned long long)m->start, (unsigned long long)m->end);
	c->map_start = m->start;
	c->map_offset = m->offset;
	return 1;
}

static unsigned long file_offset(const struct calib *c, calib_fn fn)
{
	return (unsigned long)((uintptr_t)fn - c->map_start + c->map_offset);
}

void calibrate_prepare(struct forkhazard_bpf *skel)
{
	bpf_program__set_autoload(skel->progs.calib_hit, true);
	bpf_program__set_expected_attach_type(skel->progs.calib_hit, FH_BPF_TRACE_UPROBE_MULTI);
}

/* A skeleton of our own with only calib_hit and the global data maps (its
 * counters are in .bss; libbpf binds .rodata to every program it loads): no
 * tracing map is created, no lock program verified. */
static int load_own(struct calib *c)
{
	struct bpf_program *prog;
	struct bpf_map *map;
	int err;

	c->own = forkhazard_bpf__open();
	if (!c->own)
		return errno ? -errno : -EINVAL;
	for (prog = bpf_object__next_program(c->own->obj, NULL); prog;
	     prog = bpf_object__next_program(c->own->obj, prog))
		bpf_program__set_autoload(prog, false);
	calibrate_prepare(c->own);
	for (map = bpf_object__next_map(c->own->obj, NULL); map;
	     map = bpf_object__next_map(c->own->obj, map))
		bpf_map__set_autocreate(map, bpf_map__is_internal(map));
	err = forkhazard_bpf__load(c->own);
	if (err < 0)
		return err;
	c->skel = c->own;
	return 0;
}

static int attach(struct calib *c, unsigned int kinds)
{
	unsigned long offs[CALIB_KINDS];
	__u64 cookies[CALIB_KINDS];
	int prog = bpf_program__fd(c->skel->progs.calib_hit), n = 0, fd;

	if (prog < 0)
		return -ENOENT;	/* not prepared before the skeleton's load */
	for (int k = 0; k < CALIB_KINDS; k++) {
		if (!(kinds & CALIB_BIT(k)) || targets[k].probe < 0)
			continue;
		offs[n] = file_offset(c, targets[k].fn);
		cookies[n++] = (__u64)targets[k].probe;
	}
	if (!n)
		return 0;
	fd = uprobe_multi_link(prog, c->path, offs, cookies, n, getpid(), false);
	if (fd < 0)
		return fd;
	c->links[0] = fd;
	if (kinds & CALIB_BIT(CALIB_PAIR)) {
		offs[0] = file_offset(c, fh_calib_pair);
		cookies[0] = FH_CALIB_PAIR_RETURN;
		fd = uprobe_multi_link(prog, c->path, offs, cookies, 1, getpid(), true);
		if (fd < 0)
			return fd;
		c->links[1] = fd;
	}
	return 0;
}

static __u64 hits(const struct calib *c, int probe)
{
	if (probe < 0 || !c->skel)
		return 0;
	return ((const volatile __u64 *)c->skel->bss->calib_hits)[probe];
}

/* One kind being measured: batches of calls of its function, each timed
 * beside as many of the unprobed one; a hit costs the difference. */
struct kind_run {
	unsigned long n;		/* calls per batch */
	__u64 hits_before, returns_before;
	double per[MAX_BATCHES];	/* ns per call, per batch */
};

/* The first hits are not what the others cost (the nop's optimization, the
 * single-step slot's allocation); the next ones size the batches. */
static void warm_up(const struct calib *c, enum calib_kind k, uint64_t budget_ns, int batches,
		    struct kind_run *run)
{
	calib_fn fn = targets[k].fn;
	double est;

	run->hits_before = hits(c, targets[k].probe);
	run->returns_before = hits(c, FH_CALIB_PAIR_RETURN);
	time_calls(fn, WARMUP_CALLS);
	est = ((double)time_calls(fn, WARMUP_CALLS) -
	       (double)time_calls(fh_calib_base, WARMUP_CALLS)) / WARMUP_CALLS;
	run->n = (unsigned long)((double)budget_ns / batches / (est > 1 ? est : 1));
	run->n = run->n < MIN_CALLS ? MIN_CALLS : run->n > MAX_CALLS ? MAX_CALLS : run->n;
}

static void batch(enum calib_kind k, struct kind_run *run, int b)
{
	uint64_t base = time_calls(fh_calib_base, run->n);

	run->per[b] = ((double)time_calls(targets[k].fn, run->n) - (double)base) / (double)run->n;
}

/* Every timed call must have been trapped (and returned through the return
 * probe): else the number is not the cost of a hit. */
static int summarize(const struct calib *c, enum calib_kind k, struct kind_run *run,
		     int batches, struct calib_cost *out)
{
	int probe = targets[k].probe;
	unsigned long expect = 2 * WARMUP_CALLS + (unsigned long)batches * run->n;

	if (probe >= 0 && (hits(c, probe) - run->hits_before != expect ||
			   (k == CALIB_PAIR &&
			    hits(c, FH_CALIB_PAIR_RETURN) - run->returns_before != expect))) {
		log_debug("calibrate: %s: %llu hits for %lu calls", kinds_shown[k].name,
			  (unsigned long long)(hits(c, probe) - run->hits_before), expect);
		return -EIO;
	}
	out->batches = batches;
	out->calls = (unsigned long)batches * run->n;
	out->min_ns = out->max_ns = run->per[0];
	for (int i = 1; i < batches; i++) {
		out->min_ns = run->per[i] < out->min_ns ? run->per[i] : out->min_ns;
		out->max_ns = run->per[i] > out->max_ns ? run->per[i] : out->max_ns;
	}
	out->ns = calibrate_median(run->per, batches);
	out->measured = true;
	return 0;
}

void calib_close(struct calib *c)
{
	if (!c)
		return;
	for (int i = 0; i < 2; i++)
		if (c->links[i] >= 0)
			close(c->links[i]);
	forkhazard_bpf__destroy(c->own);
	free(c);
}

int calib_open(struct forkhazard_bpf *skel, unsigned int kinds, struct calib **out)
{
	struct calib *c = calloc(1, sizeof(*c));
	int err = 0;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	c->skel = skel;
	c->kinds = kinds & CALIB_ALL;
	c->links[0] = c->links[1] = -1;
	/* now: once attached, this process reads the breakpoints in its code */
	for (int k = 0; k < CALIB_KINDS; k++)
		c->emulated[k] = targets[k].probe >= 0 && placed_emulated(targets[k].fn);
	if (c->kinds & ~CALIB_BIT(CALIB_SYSCALL)) {
		if (procfs_for_each_mapping(getpid(), find_code, c) != 1)
			err = -ENOENT;
		else if (skel || !(err = load_own(c)))
			err = attach(c, c->kinds);
	}
	if (err) {
		calib_close(c);
		return err;
	}
	*out = c;
	return 0;
}

int calib_measure(struct calib *c, unsigned int budget_ms, struct calib_result *r)
{
	struct kind_run runs[CALIB_KINDS];
	uint64_t t0 = now_ns(), per_kind, deadline;
	int nkinds = 0, batches, b, err = 0;

	memset(r, 0, sizeof(*r));
	for (int k = 0; k < CALIB_KINDS; k++) {
		snprintf(r->cost[k].insn, sizeof(r->cost[k].insn), "%s", targets[k].insn);
		r->cost[k].emulated = c->emulated[k];
		nkinds += !!(c->kinds & CALIB_BIT(k));
	}
	if (!nkinds)
		return 0;
	per_kind = (uint64_t)budget_ms * 1000000ull / (uint64_t)nkinds;
	batches = per_kind >= 50000000 ? MAX_BATCHES : FEW_BATCHES;
	for (int k = 0; k < CALIB_KINDS; k++)
		if (c->kinds & CALIB_BIT(k))
			warm_up(c, (enum calib_kind)k, per_kind, batches, &runs[k]);
	/* Round robin, so that a burst of other work on the machine lands on a
	 * batch of every kind rather than on all the batches of one. On a
	 * machine so busy that batches overrun: what was timed, if enough. */
	deadline = now_ns() + 3 * (uint64_t)budget_ms * 1000000ull / 2;
	for (b = 0; b < batches && (b < MIN_BATCHES || now_ns() < deadline); b++)
		for (int k = 0; k < CALIB_KINDS; k++)
			if (c->kinds & CALIB_BIT(k))
				batch((enum calib_kind)k, &runs[k], b);
	for (int k = 0; k < CALIB_KINDS; k++) {
		int e;

		if (!(c->kinds & CALIB_BIT(k)))
			continue;
		e = summarize(c, (enum calib_kind)k, &runs[k], b, &r->cost[k]);
		err = err ? err : e;
	}
	if (r->cost[CALIB_NOP5].measured)
		r->nop5_optimized = first_byte(fh_calib_nop5) == 0xe8;	/* call rel32 */
	r->elapsed_ms = (double)(now_ns() - t0) / 1e6;
	return err;
}

int calibrate_measure(struct forkhazard_bpf *skel, unsigned int kinds, unsigned int budget_ms,
		      struct calib_result *r)
{
	uint64_t t0 = now_ns();
	struct calib *c;
	int err = calib_open(skel, kinds, &c);

	if (!err)
		err = calib_measure(c, budget_ms, r);
	else
		memset(r, 0, sizeof(*r));
	calib_close(c);
	r->elapsed_ms = (double)(now_ns() - t0) / 1e6;
	return err;
}

#else	/* not x86-64: placement.c and the probed code are x86-64's */

void calibrate_prepare(struct forkhazard_bpf *skel)
{
	(void)skel;
}

int calib_open(struct forkhazard_bpf *skel, unsigned int kinds, struct calib **out)
{
	(void)skel;
	(void)kinds;
	*out = NULL;
	return -ENOTSUP;
}

int calib_measure(struct calib *c, unsigned int budget_ms, struct calib_result *r)
{
	(void)c;
	(void)budget_ms;
	memset(r, 0, sizeof(*r));
	return -ENOTSUP;
}

void calib_close(struct calib *c)
{
	(void)c;
}

int calibrate_measure(struct forkhazard_bpf *skel, unsigned int kinds, unsigned int budget_ms,
		      struct calib_result *r)
{
	(void)skel;
	(void)kinds;
	return calib_measure(NULL, budget_ms, r);
}

#endif

#define GOVERNOR_BUDGET_MS	20	/* 5 batches of ~4 ms: ~800 hits at 5 us */

double calibrate_emulated_hit_ns(struct calib *c, int *err)
{
	struct calib_result r;
	int e = c ? calib_measure(c, GOVERNOR_BUDGET_MS, &r) : -ENOENT;
	bool ok = !e && r.cost[CALIB_EMULATED].measured && r.cost[CALIB_EMULATED].ns > 0;

	if (err)
		*err = ok ? 0 : e ? e : -ERANGE;
	return ok ? r.cost[CALIB_EMULATED].ns : CALIB_DEFAULT_EMULATED_NS;
}

/* ---- forkhazard calibrate ---------------------------------------------- */

#define CLI_BUDGET_MS	500	/* CPU time of the batches; with set-up, under a second */

static const char calibrate_usage[] =
"Usage: forkhazard calibrate [--json]\n"
"\n"
"Measure what a trap costs on this machine, in this process, with uprobes on\n"
"its own code only: a system call (getppid), a uprobe hit on an instruction\n"
"the kernel emulates, on one it single-steps, on a 5-byte nop, and a uprobe +\n"
"uretprobe pair. Each is the CPU time per call over the same call unprobed,\n"
"the median of several batches; about a second in all.\n"
"\n"
"  -j, --json   one JSON object (see docs/json.md)\n"
"  -h, --help   this help\n";

static void jw_ns(struct jw *w, const char *key, double ns)
{
	char num[32];

	snprintf(num, sizeof(num), "%.1f", ns);
	jw_raw(w, key, num);
}

static void print_json(const struct calib_result *r, const char *kernel)
{
	const struct calib_cost *e = &r->cost[CALIB_EMULATED], *p = &r->cost[CALIB_PAIR];
	struct timespec now;
	struct jw w;
	char ts[40];

	clock_gettime(CLOCK_REALTIME, &now);
	fmt_rfc3339((int64_t)now.tv_sec * 1000000000 + now.tv_nsec, ts, sizeof(ts));
	jw_init(&w);
	jw_obj_begin(&w, NULL);
	jw_str(&w, "type", "calibration");
	jw_str(&w, "time", ts);
	jw_str(&w, "version", FH_VERSION);
	jw_str(&w, "kernel", kernel);
	jw_obj_begin(&w, "costs_ns");
	for (int k = 0; k < CALIB_KINDS; k++)
		if (r->cost[k].measured)
			jw_ns(&w, kinds_shown[k].name, r->cost[k].ns);
	jw_obj_end(&w);
	if (e->measured && p->measured)
		jw_ns(&w, "uretprobe_ns", p->ns - e->ns);
	if (r->cost[CALIB_NOP5].measured)
		jw_bool(&w, "nop5_optimized", r->nop5_optimized);
	jw_obj_begin(&w, "batches");
	for (int k = 0; k < CALIB_KINDS; k++) {
		const struct calib_cost *c = &r->cost[k];

		if (!c->measured)
			continue;
		jw_obj_begin(&w, kinds_shown[k].name);
		jw_int(&w, "n", c->batches);
		jw_uint(&w, "calls", c->calls);
		jw_ns(&w, "min_ns", c->min_ns);
		jw_ns(&w, "max_ns", c->max_ns);
		jw_str(&w, "insn", c->insn);
		if (k == CALIB_SYSCALL)
			jw_null(&w, "kernel_emulates");
		else
			jw_bool(&w, "kernel_emulates", c->emulated);
		jw_obj_end(&w);
	}
	jw_obj_end(&w);
	jw_ns(&w, "elapsed_ms", r->elapsed_ms);
	jw_obj_end(&w);
	jw_write_line(&w, stdout);
	jw_free(&w);
}

static void print_text(const struct calib_result *r, const char *kernel)
{
	printf("What a trap costs on this machine, in ns of CPU time per call over the\n"
	       "same call unprobed: the median of %d batches [fastest-slowest]. Kernel %s.\n\n",
	       r->cost[CALIB_EMULATED].batches, kernel);
	for (int k = 0; k < CALIB_KINDS; k++) {
		const struct calib_cost *c = &r->cost[k];
		char label[64];

		if (!c->measured)
			continue;
		if (k == CALIB_NOP5)
			snprintf(label, sizeof(label), "%s (%s)", kinds_shown[k].label,
				 r->nop5_optimized ? "optimized" : "not optimized");
		else if (k != CALIB_SYSCALL)
			snprintf(label, sizeof(label), "%s (%s)", kinds_shown[k].label, c->insn);
		else
			snprintf(label, sizeof(label), "%s", kinds_shown[k].label);
		printf("  %-40s %7.0f ns  [%.0f-%.0f]\n", label, c->ns, c->min_ns, c->max_ns);
	}
	if (r->cost[CALIB_EMULATED].measured && r->cost[CALIB_PAIR].measured)
		printf("  %-40s %7.0f ns\n", "  the uretprobe alone",
		       r->cost[CALIB_PAIR].ns - r->cost[CALIB_EMULATED].ns);
	printf("\nmeasured in %.0f ms\n", r->elapsed_ms);
}

int calibrate_main(int argc, char **argv)
{
	uint64_t needed = FH_CAPBIT(FH_CAP_BPF) | FH_CAPBIT(FH_CAP_PERFMON) |
			  FH_CAPBIT(FH_CAP_CHECKPOINT_RESTORE);
	struct calib_result r;
	struct utsname u;
	bool json = false;
	int missing, err;

	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--json") || !strcmp(argv[i], "-j")) {
			json = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			fputs(calibrate_usage, stdout);
			return 0;
		} else {
			char safe[128];

			term_escape(argv[i], (size_t)-1, safe, sizeof(safe));
			fprintf(stderr, "forkhazard: calibrate: unknown argument '%s' (see "
				"forkhazard calibrate --help)\n", safe);
			return 2;
		}
	}
	missing = caps_check(needed);
	if (missing) {
		log_error("calibrate: missing %s: run as root", caps_name(missing));
		return 1;
	}
	libbpf_set_print(log_libbpf);
	
	err = calibrate_measure(NULL, CALIB_ALL, CLI_BUDGET_MS, &r);
	if (err) {
		log_error("calibrate: cannot measure: %s", strerror(-err));
		return 1;
	}
	if (uname(&u))
		snprintf(u.release, sizeof(u.release), "?");
	if (json)
		print_json(&r, u.release);
	else
		print_text(&r, u.release);
	return 0;
}

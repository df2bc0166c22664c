// SPDX-License-Identifier: GPL-2.0
#include <stdlib.h>
#include <string.h>
#include "symbolize.h"
#include "ustacks.h"

struct ustack {
	uint32_t tid;
	uint64_t time_ns;
	int n;
	uint64_t addrs[USTACK_FRAMES];
};

struct ustacks {
	struct syms *syms;
	struct ustack *ring;		/* oldest overwritten first */
	int capacity, next;
	int max_per_second;
	uint64_t window_start_ns;
	int in_window;
	struct fh_frame *frames;	/* scratch for syms_unwind */
	struct ustacks_stats st;
};

struct ustacks *ustacks_new(struct syms *syms, int capacity, int max_per_second)
{
	struct ustacks *u = calloc(1, sizeof(*u));

	if (!u)
		return NULL;
	u->ring = calloc((size_t)capacity, sizeof(*u->ring));
	u->frames = calloc(USTACK_FRAMES, sizeof(*u->frames));
	if (!u->ring || !u->frames) {
		ustacks_free(u);
		return NULL;
	}
	u->syms = syms;
	u->capacity = capacity;
	u->max_per_second = max_per_second;
	return u;
}

void ustacks_free(struct ustacks *u)
{
	if (!u)
		return;
	free(u->ring);
	free(u->frames);
	free(u);
}

void ustacks_add(struct ustacks *u, const struct fh_ustack_event *ev, uint64_t now_ns)
{
	struct ustack *slot;
	int n;

	if (now_ns - u->window_start_ns >= 1000000000ull) {
		u->window_start_ns = now_ns;
		u->in_window = 0;
	}
	if (u->in_window >= u->max_per_second) {
		u->st.rate_limited++;
		return;
	}
	u->in_window++;
	n = syms_unwind(u->syms, (pid_t)ev->pid, ev->ip, ev->sp, ev->bp, ev->data,
			ev->len <= FH_USTACK_BYTES ? ev->len : FH_USTACK_BYTES, u->frames,
			USTACK_FRAMES);
	if (n <= 1) {
		/* One frame is only ip: the frame-pointer stack says as much. */
		u->st.failed++;
		return;
	}
	slot = &u->ring[u->next];
	if (slot->n)
		u->st.evicted++;
	u->next = (u->next + 1) % u->capacity;
	slot->tid = ev->tid;
	slot->time_ns = ev->time_ns;
	slot->n = n;
	for (int i = 0; i < n; i++)
		slot->addrs[i] = u->frames[i].addr;
	u->st.unwound++;
}

int ustacks_get(const struct ustacks *u, uint32_t tid, uint64_t time_ns, uint64_t *addrs, int max)
{
	for (int i = 0; i < u->capacity; i++) {
		const struct ustack *s = &u->ring[i];

		if (s->n && s->tid == tid && s->time_ns == time_ns) {
			int n = s->n < max ? s->n : max;

			memcpy(addrs, s->addrs, (size_t)n * sizeof(*addrs));
			return n;
		}
	}
	return 0;
}

void ustacks_get_stats(const struct ustacks *u, struct ustacks_stats *st)
{
	*st = u->st;
}

int ustacks_frames(const struct ustacks *u, struct syms *syms, pid_t pid, uint32_t tid,
		   uint64_t time_ns, int stack_id, struct fh_frame *frames, int max, bool *cfi)
{
	uint64_t addrs[USTACK_FRAMES];
	int n = u ? ustacks_get(u, tid, time_ns, addrs, max < USTACK_FRAMES ? max : USTACK_FRAMES)
		  : 0;

	*cfi = n > 0;
	if (!n)
		return syms_stack(syms, pid, stack_id, 0, 0, frames, max);
	syms_resolve(syms, pid, addrs[0], &frames[0]);
	for (int i = 1; i < n; i++)
		syms_resolve_return(syms, pid, addrs[i], &frames[i]);
	return n;
}

/* SPDX-License-Identifier: GPL-2.0 */
/* The ring buffer's records: checked, dispatched on their type tag, passed on
 * to correlation and from there to output. */
#ifndef FH_EVENTS_H
#define FH_EVENTS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct correlate;
struct output;
struct ustacks;

struct events {
	struct correlate *corr;
	struct output *out;
	struct ustacks *ustacks;	/* where user-stack copies are unwound, or NULL */
	/* A traced process asks for lock probes (fh_probe_request). */
	void (*probe_request)(void *ctx, pid_t pid);
	void *ctx;
	uint64_t malformed;	/* records too short for their type: a bug if ever > 0 */
};

/* ring_buffer__new() callback; ctx is a struct events. */
int events_handle(void *ctx, void *data, size_t size);

/* The correlation sink that renders through events->out. */
extern const struct corr_sink events_sink;

#endif

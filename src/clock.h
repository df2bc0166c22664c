/* SPDX-License-Identifier: GPL-2.0 */
/* The kernel's event clock (bpf_ktime_get_ns: CLOCK_MONOTONIC), and the wall time of its values. */
#ifndef FH_CLOCK_H
#define FH_CLOCK_H

#include <stdint.h>

/* CLOCK_MONOTONIC now, in nanoseconds: the time base of every event. */
uint64_t clock_mono_ns(void);

/* What to add to a CLOCK_MONOTONIC time to get the wall time (ns since the epoch). */
int64_t clock_mono_to_real_ns(void);

#endif

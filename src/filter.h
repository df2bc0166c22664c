/* SPDX-License-Identifier: GPL-2.0 */
/* The daemon's report filters (--filter-comm, --filter-exe, --filter-cgroup):
 * glob patterns, a leading '!' excluding. */
#ifndef FH_FILTER_H
#define FH_FILTER_H

#include <stdbool.h>

/*
 * Does value pass the n patterns? It must match none of the '!' ones and, if
 * there is any other, at least one of those. A NULL value (unknown) matches
 * no pattern. No pattern at all: everything passes.
 */
bool filter_match(const char *const *patterns, int n, const char *value);

#endif

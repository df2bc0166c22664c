// SPDX-License-Identifier: GPL-2.0
#include <fnmatch.h>
#include "filter.h"

bool filter_match(const char *const *patterns, int n, const char *value)
{
	bool any_include = false, included = false;

	for (int i = 0; i < n; i++) {
		const char *p = patterns[i];

		if (p[0] == '!') {
			if (value && !fnmatch(p + 1, value, 0))
				return false;
			continue;
		}
		any_include = true;
		if (value && !fnmatch(p, value, 0))
			included = true;
	}
	return !any_include || included;
}

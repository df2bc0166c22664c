// SPDX-License-Identifier: GPL-2.0
/* output.c's shared helpers: durations, timestamps, names. */
#include <stdint.h>
#include "forkhazard.h"
#include "output.h"
#include "unit.h"

static const char *dur(uint64_t ns)
{
	static char buf[32];

	fmt_duration(ns, buf, sizeof(buf));
	return buf;
}

UNIT_TEST(duration_nanoseconds)
{
	CHECK_STR(dur(0), "0ns");
	CHECK_STR(dur(1), "1ns");
	CHECK_STR(dur(999), "999ns");
}

UNIT_TEST(duration_microseconds)
{
	CHECK_STR(dur(1000), "1.0us");
	CHECK_STR(dur(1500), "1.5us");
	CHECK_STR(dur(12345), "12.3us");
	CHECK_STR(dur(999949), "999.9us");
}

UNIT_TEST(duration_milliseconds)
{
	/* rounds up into the next unit: one unit, never "1000.0us" */
	CHECK_STR(dur(999950), "1.0ms");
	CHECK_STR(dur(999999), "1.0ms");
	CHECK_STR(dur(1000000), "1.0ms");
	CHECK_STR(dur(1234567), "1.2ms");
	CHECK_STR(dur(200000000), "200.0ms");
	CHECK_STR(dur(999949999), "999.9ms");
}

UNIT_TEST(duration_seconds)
{
	CHECK_STR(dur(999950000), "1.00s");
	CHECK_STR(dur(999999999), "1.00s");
	CHECK_STR(dur(1000000000), "1.00s");
	CHECK_STR(dur(1234567890), "1.23s");
	CHECK_STR(dur(61000000000ull), "61.00s");
	CHECK_STR(dur(UINT64_MAX), "18446744073.71s");
}

UNIT_TEST(duration_small_buffer_terminated)
{
	char buf[4] = { '#', '#', '#', '#' };

	fmt_duration(1234567890, buf, sizeof(buf));
	CHECK_STR(buf, "1.2");
	fmt_duration(5, buf, 1);
	CHECK_STR(buf, "");
}

static const char *ts(int64_t ns)
{
	static char buf[64];

	fmt_rfc3339(ns, buf, sizeof(buf));
	return buf;
}

UNIT_TEST(rfc3339_fixed_timestamps)
{
	CHECK_STR(ts(1700000000123456789ll), "2023-11-14T22:13:20.123456Z");
	CHECK_STR(ts(0), "1970-01-01T00:00:00.000000Z");
	/* microseconds are cut, not rounded: never a 60th second */
	CHECK_STR(ts(1700000000999999999ll), "2023-11-14T22:13:20.999999Z");
	CHECK_STR(ts(951782400000000000ll), "2000-02-29T00:00:00.000000Z");
	CHECK_STR(ts(4102444799000001000ll), "2099-12-31T23:59:59.000001Z");
	/* past 2^31 seconds: no 2038 wrap */
	CHECK_STR(ts(2147483648000000000ll), "2038-01-19T03:14:08.000000Z");
}

UNIT_TEST(lock_kind_names)
{
	static const char *const want[FH_KIND_MAX] = {
		[FH_KIND_NONE] = "unknown",
		[FH_KIND_MUTEX] = "mutex",
		[FH_KIND_RWLOCK_READ] = "rwlock-read",
		[FH_KIND_RWLOCK_WRITE] = "rwlock-write",
		[FH_KIND_SEM] = "sem",
		[FH_KIND_SPIN] = "spin",
		[FH_KIND_CUSTOM] = "custom",
	};

	for (unsigned int k = 0; k < FH_KIND_MAX; k++) {
		/* a kind added without a name here shows as NULL: fail, not crash */
		if (!want[k] || strcmp(lock_kind_name(k), want[k]))
			FAIL("kind %u: '%s', want '%s'", k, lock_kind_name(k),
			     want[k] ? want[k] : "(no name in this test)");
	}
	CHECK_STR(lock_kind_name(FH_KIND_MAX), "unknown");
	CHECK_STR(lock_kind_name(0xffff), "unknown");
	CHECK_STR(lock_kind_name(~0u), "unknown");
}

UNIT_TEST(child_outcome_names)
{
	CHECK_STR(child_outcome_name(FH_CHILD_EXEC), "exec");
	CHECK_STR(child_outcome_name(FH_CHILD_EXIT), "exit");
	CHECK_STR(child_outcome_name(FH_CHILD_DEADLOCK), "deadlock");
	CHECK_STR(child_outcome_name(FH_CHILD_ALIVE), "alive");
	CHECK_STR(child_outcome_name(0), "unknown");
	CHECK_STR(child_outcome_name(FH_CHILD_ALIVE + 1), "unknown");
	CHECK_STR(child_outcome_name(~0u), "unknown");
}

// SPDX-License-Identifier: GPL-2.0
/* calibrate.c: what needs no BPF (tests/test_calibrate.py measures for real). */
#include <errno.h>
#include "calibrate.h"
#include "unit.h"

UNIT_TEST(median_of_odd_and_even_counts)
{
	double odd[] = { 9, 1, 5, 7, 3 }, even[] = { 4, 1, 3, 2 }, one[] = { 42 };

	CHECK(calibrate_median(odd, 5) == 5);
	CHECK(calibrate_median(even, 4) == 2.5);
	CHECK(calibrate_median(one, 1) == 42);
	CHECK(calibrate_median(NULL, 0) == 0);
}

UNIT_TEST(median_ignores_one_slow_batch)
{
	/* a batch that another process's burst slowed down */
	double v[] = { 5100, 5150, 48000, 5080, 5120 };

	CHECK(calibrate_median(v, 5) == 5120);
}

UNIT_TEST(governor_falls_back_to_the_default)
{
	int err = 0;

	CHECK(calibrate_emulated_hit_ns(NULL, &err) == CALIB_DEFAULT_EMULATED_NS);
	CHECK(err == -ENOENT);
	CHECK(calibrate_emulated_hit_ns(NULL, NULL) == CALIB_DEFAULT_EMULATED_NS);
}

UNIT_TEST(kind_names_are_the_json_keys)
{
	CHECK_STR(calibrate_kind_name(CALIB_SYSCALL), "syscall");
	CHECK_STR(calibrate_kind_name(CALIB_EMULATED), "uprobe_emulated");
	CHECK_STR(calibrate_kind_name(CALIB_SINGLE_STEP), "uprobe_single_step");
	CHECK_STR(calibrate_kind_name(CALIB_NOP5), "uprobe_nop5");
	CHECK_STR(calibrate_kind_name(CALIB_PAIR), "uprobe_uretprobe_pair");
	CHECK_STR(calibrate_kind_name(CALIB_KINDS), "?");
}

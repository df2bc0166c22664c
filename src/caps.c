// SPDX-License-Identifier: GPL-2.0
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>
#include "caps.h"

#define CAP_WORDS	2	/* _LINUX_CAPABILITY_U32S_3 */

static const struct {
	int cap;
	const char *name;
} cap_names[] = {
	{ FH_CAP_DAC_READ_SEARCH, "CAP_DAC_READ_SEARCH" },
	{ FH_CAP_SETGID, "CAP_SETGID" },
	{ FH_CAP_SETUID, "CAP_SETUID" },
	{ FH_CAP_SYS_PTRACE, "CAP_SYS_PTRACE" },
	{ FH_CAP_SYS_ADMIN, "CAP_SYS_ADMIN" },
	{ FH_CAP_PERFMON, "CAP_PERFMON" },
	{ FH_CAP_BPF, "CAP_BPF" },
	{ FH_CAP_CHECKPOINT_RESTORE, "CAP_CHECKPOINT_RESTORE" },
};

uint64_t caps_kept_after_attach(void)
{
	return FH_CAPBIT(FH_CAP_SYS_PTRACE) | FH_CAPBIT(FH_CAP_CHECKPOINT_RESTORE) |
	       FH_CAPBIT(FH_CAP_DAC_READ_SEARCH);
}

uint64_t caps_needed_at_start(bool setid)
{
	uint64_t need = caps_kept_after_attach() | FH_CAPBIT(FH_CAP_BPF) |
			FH_CAPBIT(FH_CAP_PERFMON);

	if (setid)
		need |= FH_CAPBIT(FH_CAP_SETUID) | FH_CAPBIT(FH_CAP_SETGID);
	return need;
}

static int caps_get(struct __user_cap_data_struct data[CAP_WORDS])
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };

	memset(data, 0, sizeof(*data) * CAP_WORDS);
	return syscall(SYS_capget, &hdr, data) ? -errno : 0;
}

uint64_t caps_effective(void)
{
	struct __user_cap_data_struct data[CAP_WORDS];

	if (caps_get(data))
		return 0;
	return (uint64_t)data[0].effective | ((uint64_t)data[1].effective << 32);
}

const char *caps_name(int cap)
{
	for (size_t i = 0; i < sizeof(cap_names) / sizeof(cap_names[0]); i++)
		if (cap_names[i].cap == cap)
			return cap_names[i].name;
	return "CAP_?";
}

int caps_check(uint64_t needed)
{
	uint64_t missing = needed & ~caps_effective();

	for (int c = 0; c < 64; c++)
		if (missing & FH_CAPBIT(c))
			return c;
	return 0;
}

int caps_limit(uint64_t keep)
{
	struct __user_cap_header_struct hdr = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[CAP_WORDS];
	int err, last = 40;
	FILE *f;

	/* The bounding set first: dropping from it needs CAP_SETPCAP, which
	 * goes next. Without CAP_SETPCAP (started with ambient capabilities)
	 * it cannot shrink; no_new_privs then keeps exec from regaining any. */
	f = fopen("/proc/sys/kernel/cap_last_cap", "re");
	if (f) {
		if (fscanf(f, "%d", &last) != 1 || last < 0 || last > 63)
			last = 40;
		fclose(f);
	}
	for (int c = 0; c <= last; c++)
		if (!(keep & FH_CAPBIT(c)))
			prctl(PR_CAPBSET_DROP, c, 0, 0, 0);
	prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
	prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
	err = caps_get(data);
	if (err)
		return err;
	for (int w = 0; w < CAP_WORDS; w++) {
		__u32 k = (__u32)(keep >> (32 * w));

		data[w].permitted &= k;
		data[w].effective &= k;
		data[w].inheritable = 0;
	}
	return syscall(SYS_capset, &hdr, data) ? -errno : 0;
}

void caps_format(uint64_t mask, char *buf, size_t size)
{
	size_t len = 0;

	if (size)
		buf[0] = '\0';
	for (int c = 0; c < 64 && len < size; c++) {
		if (!(mask & FH_CAPBIT(c)))
			continue;
		len += (size_t)snprintf(buf + len, size - len, "%s%s", len ? "," : "",
					caps_name(c));
	}
}

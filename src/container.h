/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Which cgroup, and which container, a process is in. The cgroup path is
 * read from /proc/PID/cgroup while the process is there; when it is gone,
 * the cgroup v2 id the BPF side recorded is turned into a path through the
 * cgroup2 mount (open_by_handle_at: CAP_DAC_READ_SEARCH). A container ID is
 * a run of exactly 64 hexadecimal digits in a path component: Docker,
 * containerd (Kubernetes), CRI-O and Podman all name their cgroups so.
 * Bounded caches; never blocks on anything but /proc and the cgroup mount.
 */
#ifndef FH_CONTAINER_H
#define FH_CONTAINER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define CONTAINER_PATH_LEN	512
#define CONTAINER_ID_LEN	65	/* 64 hex digits and a NUL */

struct fh_container {
	char cgroup[CONTAINER_PATH_LEN];	/* "" when unknown */
	char id[CONTAINER_ID_LEN];		/* "" when not in a container */
};

struct containers;

struct containers *containers_new(void);
void containers_free(struct containers *c);

/*
 * What is known of process pid, whose cgroup v2 id (0: none) the kernel
 * recorded at the event. now_ns: CLOCK_MONOTONIC, for the cache's ageing.
 * Returns true when out->cgroup is known.
 */
bool containers_lookup(struct containers *c, pid_t pid, uint64_t cgroup_id, uint64_t now_ns,
		       struct fh_container *out);

/* Pure helpers, for the tests. */
/* The cgroup path of a /proc/PID/cgroup text: the v2 ("0::") path unless it
 * is "/" while a v1 hierarchy has a deeper one (hybrid systems). */
int container_cgroup_from_text(const char *text, char *path, size_t size);
/* The container ID in a cgroup path, or "". Returns true when one is found. */
bool container_id_from_path(const char *path, char id[CONTAINER_ID_LEN]);

#endif

// SPDX-License-Identifier: GPL-2.0
/* Service mode's pure parts: the site table, the configuration file's lines
 * and filters, cgroup paths and container IDs, Prometheus label escaping. */
#include <errno.h>
#include "conffile.h"
#include "filter.h"
#include "container.h"
#include "metrics.h"
#include "sites.h"
#include "unit.h"

static int evicted_n;
static uint64_t evicted_ids[64];

static void on_evict(void *ctx, struct site *s)
{
	(void)ctx;
	if (evicted_n < 64)
		evicted_ids[evicted_n] = s->id;
	evicted_n++;
}

UNIT_TEST(sites_bounded_lru_eviction)
{
	struct sites *t = sites_new(4, 1, on_evict, NULL);
	struct sites_stats st;

	CHECK(t != NULL);
	evicted_n = 0;
	for (uint64_t id = 1; id <= 4; id++)
		CHECK(sites_add(t, id, id) != NULL);
	CHECK(sites_find(t, 2) != NULL);	/* 2 seen again: 3 is now the oldest unpinned */
	CHECK(sites_add(t, 5, 5) != NULL);
	CHECK(evicted_n == 1 && evicted_ids[0] == 3);
	CHECK(sites_find(t, 3) == NULL);
	CHECK(sites_find(t, 1) != NULL && sites_find(t, 1)->labeled);	/* first: pinned */
	for (uint64_t id = 100; id < 150; id++)
		CHECK(sites_add(t, id, id) != NULL);
	sites_get_stats(t, &st);
	CHECK(st.used == 4 && st.max == 4 && st.labeled == 1);
	CHECK(st.created == 55 && st.evicted == 51);
	CHECK(sites_find(t, 1) != NULL);	/* never evicted */
	sites_free(t);
}

UNIT_TEST(sites_count_distinct_processes)
{
	struct sites *t = sites_new(4, 0, NULL, NULL);
	struct site *s = sites_add(t, 7, 0);

	for (int i = 0; i < 10; i++)
		site_note_pid(s, 1000 + (i % 3));
	CHECK(site_processes(s) == 3 && !s->pids_estimated);
	for (uint32_t p = 0; p < 500; p++)
		site_note_pid(s, 20000 + p);
	CHECK(s->pids_estimated);
	/* linear counting over 1024 bits: within 10% at 503 */
	CHECK(site_processes(s) > 450 && site_processes(s) < 560);
	sites_free(t);
}

UNIT_TEST(config_lines)
{
	char l1[] = "  metrics_file = \"/var/lib/x.prom\"  \n", l2[] = "# comment\n",
	     l3[] = "no equals sign\n", l4[] = "daemon=yes", l5[] = "Bad Key = 1\n", l6[] = "   \n";
	char *k, *v;

	CHECK(conffile_parse_line(l1, &k, &v) == 1);
	CHECK_STR(k, "metrics-file");
	CHECK_STR(v, "/var/lib/x.prom");
	CHECK(conffile_parse_line(l2, &k, &v) == 0);
	CHECK(conffile_parse_line(l3, &k, &v) == -1);
	CHECK(conffile_parse_line(l4, &k, &v) == 1);
	CHECK_STR(k, "daemon");
	CHECK_STR(v, "yes");
	CHECK(conffile_parse_line(l5, &k, &v) == -1);
	CHECK(conffile_parse_line(l6, &k, &v) == 0);
}

UNIT_TEST(config_filters)
{
	const char *inc[] = { "python*", "java" }, *exc[] = { "!sshd" };
	const char *both[] = { "/usr/*", "!/usr/sbin/*" };

	CHECK(filter_match(NULL, 0, "anything"));
	CHECK(filter_match(inc, 2, "python3.11"));
	CHECK(!filter_match(inc, 2, "node"));
	CHECK(!filter_match(inc, 2, NULL));
	CHECK(filter_match(exc, 1, "bash"));
	CHECK(!filter_match(exc, 1, "sshd"));
	CHECK(filter_match(exc, 1, NULL));
	CHECK(filter_match(both, 2, "/usr/bin/python3"));
	CHECK(!filter_match(both, 2, "/usr/sbin/sshd"));
	CHECK(!filter_match(both, 2, "/opt/x"));
}

UNIT_TEST(container_cgroup_paths)
{
	char path[CONTAINER_PATH_LEN], id[CONTAINER_ID_LEN];
#define ID1 "4e2f2b1c0a9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4e3f"
#define ID2 "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	const char *v2 = "0::/system.slice/docker-" ID1 ".scope\n";
	const char *hybrid = "12:memory:/docker/" ID2 "\n1:name=systemd:/docker/" ID2 "\n0::/\n";

	CHECK(container_cgroup_from_text(v2, path, sizeof(path)) == 0);
	CHECK(container_id_from_path(path, id));
	CHECK_STR(id, ID1);
	CHECK(container_cgroup_from_text(hybrid, path, sizeof(path)) == 0);
	CHECK_STR(path, "/docker/" ID2);
	CHECK(container_id_from_path(path, id));
	/* Kubernetes (containerd): the container's, not the pod's UID */
#define LO16 "aaaaaaaaaaaaaaaa"
	CHECK(container_id_from_path("/kubepods.slice/kubepods-besteffort.slice/"
				     "kubepods-besteffort-pod0f1e2d3c_4b5a_6978_8796_a5b4c3d2e1f0"
				     ".slice/cri-containerd-" LO16 LO16 LO16 LO16 ".scope", id));
	CHECK(id[0] == 'a' && id[63] == 'a' && !id[64]);
	CHECK(!container_id_from_path("/user.slice/user-1000.slice/session-2.scope", id));
	CHECK(!container_id_from_path("/", id));
	/* 65 hex digits is no container ID, neither is upper case */
	CHECK(!container_id_from_path("/x/0" ID2, id));
#define UP16 "AAAAAAAAAAAAAAAA"
	CHECK(!container_id_from_path("/x/" UP16 UP16 UP16 UP16, id));
	CHECK(container_cgroup_from_text("garbage", path, sizeof(path)) == -ENOENT);
}

UNIT_TEST(prometheus_label_escaping)
{
	char out[64];

	prom_escape_label("a\"b\\c\nd", out, sizeof(out));
	CHECK_STR(out, "a\\\"b\\\\c\\nd");
	prom_escape_label("x\xff" "y\x01z", out, sizeof(out));
	CHECK_STR(out, "x\xef\xbf\xbdy\xef\xbf\xbdz");
	prom_escape_label("caf\xc3\xa9", out, sizeof(out));
	CHECK_STR(out, "caf\xc3\xa9");
	prom_escape_label("\"\"\"\"\"\"", out, 6);	/* truncated on an escape */
	CHECK_STR(out, "\\\"\\\"");
}

UNIT_TEST(prometheus_samples_and_listen_addresses)
{
	const char *labels[2][2] = { { "site", "00ff" }, { "exe", "/bin/\"x\"" } };
	struct metrics_addr a;
	struct prom p;

	prom_init(&p);
	prom_family(&p, "fh_total", "counter", "Things.");
	prom_sample_u64(&p, "fh_total", labels, 2, 18446744073709551615ull);
	prom_sample(&p, "fh_g", NULL, 0, 0.5);
	CHECK(!p.out.oom);
	CHECK_STR(p.out.buf, "# HELP fh_total Things.\n# TYPE fh_total counter\n"
			 "fh_total{site=\"00ff\",exe=\"/bin/\\\"x\\\"\"} 18446744073709551615\n"
			 "fh_g 0.5\n");
	prom_free(&p);
	CHECK(metrics_parse_listen("127.0.0.1:9477", &a) == 0 && a.loopback);
	CHECK(metrics_parse_listen("[::1]:9477", &a) == 0 && a.loopback);
	CHECK(metrics_parse_listen("0.0.0.0:80", &a) == 0 && !a.loopback);
	CHECK(metrics_parse_listen("localhost:1", &a) == 0 && a.loopback);
	CHECK(metrics_parse_listen("127.0.0.1", &a) == -EINVAL);
	CHECK(metrics_parse_listen("127.0.0.1:0", &a) == -EINVAL);
	CHECK(metrics_parse_listen("127.0.0.1:65536", &a) == -EINVAL);
	CHECK(metrics_parse_listen("::1:80", &a) == -EINVAL);
	CHECK(metrics_parse_listen("example.org:80", &a) == -EINVAL);
}

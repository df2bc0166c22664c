// SPDX-License-Identifier: GPL-2.0
/*
 * Every counter (counters.h) in every rendering: the JSON summary, the text
 * summary and the metrics. Each gets a value of its own, and each must be
 * found with it in all three: a counter missing from one fails here.
 */
#include <inttypes.h>
#include "counters.h"
#include "exposition.h"
#include "forkhazard.h"
#include "hazard.h"
#include "metrics.h"
#include "output.h"
#include "sites.h"
#include "unit.h"

/* A distinct value per counter, none a substring of another's rendering. */
static uint64_t value_of(int i)
{
	return 1000 + 111 * (uint64_t)i;
}

/* The summary of c rendered by output.c, as text or JSON. */
static char *summary(bool json, const struct fh_counts *c)
{
	struct output_opts oo = { .json = json };
	struct output *o;
	char *buf = NULL;
	size_t len = 0;

	oo.f = open_memstream(&buf, &len);
	if (!oo.f)
		return NULL;
	o = output_new(&oo);
	if (o) {
		output_summary(o, 0, c);
		output_flush(o);
	}
	output_free(o);
	fclose(oo.f);
	return buf;
}

UNIT_TEST(every_kernel_stat_is_a_counter_once)
{
	int seen[FH_STAT_MAX] = { 0 };

	for (int i = 0; i < FH_CNT_MAX; i++) {
		CHECK(fh_counters[i].key && fh_counters[i].metric && fh_counters[i].help &&
		      fh_counters[i].text);
		CHECK(fh_counters[i].stat < FH_STAT_MAX);
		if (fh_counters[i].stat >= 0)
			seen[fh_counters[i].stat]++;
	}
	for (int s = 0; s < FH_STAT_MAX; s++)
		if (seen[s] != 1)
			FAIL("kernel stat %d is read by %d counters, not 1", s, seen[s]);
}

UNIT_TEST(every_counter_in_summary_json_text_and_metrics)
{
	struct fh_counts c;
	struct daemon_counts dc = { 0 };
	struct exposition e = { .daemon = &dc };
	struct prom p;
	char *json, *text, want[256];

	for (int i = 0; i < FH_CNT_MAX; i++)
		c.v[i] = value_of(i);
	e.counts = c;
	e.sites = sites_new(16, 0, NULL, NULL);
	CHECK(e.sites);
	json = summary(true, &c);
	text = summary(false, &c);
	prom_init(&p);
	exposition_render(&e, &p);
	sites_free(e.sites);
	if (!json || !text || p.out.oom) {
		free(json);
		free(text);
		prom_free(&p);
		FAIL("out of memory");
	}
	for (int i = 0; i < FH_CNT_MAX; i++) {
		const struct fh_counter_info *ci = &fh_counters[i];
		const char *where = NULL;

		snprintf(want, sizeof(want), "\"%s\":%" PRIu64, ci->key, c.v[i]);
		if (!strstr(json, want))
			where = "the JSON summary";
		snprintf(want, sizeof(want), "%" PRIu64 " %s", c.v[i], ci->text);
		if (!where && !strstr(text, want))
			where = "the text summary";
		if (i < FH_CNT_FIRST_DROPPED)
			snprintf(want, sizeof(want), "\n%s %" PRIu64 "\n", ci->metric, c.v[i]);
		else
			snprintf(want, sizeof(want), "\n%s{what=\"%s\"} %" PRIu64 "\n", ci->metric,
				 ci->key, c.v[i]);
		if (!where && !strstr(p.out.buf, want))
			where = "the metrics";
		if (where) {
			free(json);
			free(text);
			prom_free(&p);
			FAIL("counter %s (%s) missing from %s", ci->key, want, where);
		}
	}
	/* the dropped ones inside "dropped", the others at the top */
	CHECK(strstr(json, "\"dropped\":{\"untracked_locks\":") != NULL);
	free(json);
	free(text);
	prom_free(&p);
}

UNIT_TEST(text_summary_says_dropped_only_when_any)
{
	struct fh_counts c = { 0 };
	char *text;

	c.v[FH_CNT_FORKS] = 3;
	text = summary(false, &c);
	CHECK(text);
	CHECK_STR(text, "\n3 forks, 0 from multithreaded processes, 0 hazards, 0 deadlocks, "
			"0 events lost\n");
	free(text);
	c.v[FH_CNT_LOST_FORKS] = 2;
	c.v[FH_CNT_UNWINDS_SKIPPED] = 7;
	text = summary(false, &c);
	CHECK(text);
	CHECK(strstr(text, "0 events lost (2 of them forks)\nnot tracked (limits reached): "
			   "0 locks") != NULL);
	CHECK(strstr(text, ", 7 stack copies not unwound, ") != NULL);
	free(text);
}

UNIT_TEST(hazard_predicate)
{
	static struct fh_fork_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.nr_locks = 2;
	ev.nr_own = 1;
	ev.locks[0].flags = FH_LOCK_OWN;
	CHECK(hazard_lock_role(&ev, &ev.locks[0]) == HAZARD_LOCK_OWN);
	CHECK(hazard_lock_role(&ev, &ev.locks[1]) == HAZARD_LOCK_FOREIGN);
	CHECK_INT(hazard_foreign_locks(&ev), 1);
	CHECK(hazard_fork(&ev));
	/* the kernel's count and ours agree */
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), hazard_foreign_locks(&ev));
	/* own locks only: no hazard */
	ev.nr_locks = 1;
	CHECK(!hazard_fork(&ev));
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), 0);
	/* locks beyond what the event holds still count */
	ev.locks_omitted = 3;
	CHECK_INT(hazard_foreign_locks(&ev), 3);
	CHECK(hazard_fork(&ev));
	CHECK_INT(FH_FORK_FOREIGN_LOCKS(&ev), 3);
}

/* SPDX-License-Identifier: GPL-2.0 */
/*
 * --sarif FILE: a run's findings as SARIF 2.1.0, for code review tools. One
 * result per finding site (gate.c keeps them), ruled fork-hazard (level
 * warning) or fork-deadlock (error, a child deadlocked there); its
 * locations are the fork call site and each lock's acquisition site, with
 * file and line where the debug information gives them, relative to
 * --sarif-root (uriBaseId SRCROOT) so that review tools place them on the
 * repository's files; the holders and the stacks are related locations and
 * SARIF stacks; the site id is the result's partial fingerprint, so a
 * result keeps its identity from run to run. A site whose every finding a
 * rule set aside is written with its suppression, as SARIF says.
 */
#ifndef FH_SARIF_H
#define FH_SARIF_H

#include <stdio.h>

struct gate;

/* Write the SARIF log of g to f; root: --sarif-root (NULL: absolute URIs).
 * Returns 0 or -errno. */
int sarif_write(FILE *f, struct gate *g, const char *root);

#endif

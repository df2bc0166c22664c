/* SPDX-License-Identifier: GPL-2.0 */
/*
 * forkhazard report FILE.jsonl...: what `-j -o` or the service recorded, for
 * an incident. Every record is read with json-c (a malformed or truncated
 * line is counted, said on stderr and skipped); fork and deadlock events and
 * the service's site aggregates are summed by site into a bounded table
 * (sites.c; a site beyond it is counted, never silently lost); then one
 * screen ranks the sites by deadlocks and hazards with their processes,
 * first and last seen, children's fates, top fork and lock frames and
 * advice, or --site ID shows one in full. --json gives the same as data
 * (docs/json.md, "report"), --markdown as an incident ticket.
 */
#ifndef FH_REPORT_H
#define FH_REPORT_H

/* argv[0] is "report". Returns the exit status: 0, 1 (nothing could be
 * read, or no such --site), 2 (bad usage, one line on stderr). */
int report_main(int argc, char **argv);

#endif

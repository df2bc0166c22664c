/* SPDX-License-Identifier: GPL-2.0 */
/* Tracing mode: load the BPF object, attach, run the event loop, report. */
#ifndef FH_TRACER_H
#define FH_TRACER_H

#include "config.h"

/* Returns the exit status (with a COMMAND: the command's). */
int tracer_run(const struct fh_config *cfg);

/*
 * Hold the signals that stop tracing (and SIGHUP), first thing in main():
 * one sent at any moment of start-up, a systemd stop while the unit is still
 * activating, is then read by the event loop as soon as it runs, and ends
 * tracing as any stop does (the summary written, status 0), where it would
 * have killed the process. A COMMAND starts with them released
 * (command.c). Release them for what does not trace (inspect).
 */
void tracer_hold_signals(void);
void tracer_release_signals(void);

#endif

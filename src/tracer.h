/* SPDX-License-Identifier: GPL-2.0 */
/* Tracing mode: load the BPF object, attach, run the event loop, report. */
#ifndef FH_TRACER_H
#define FH_TRACER_H

#include "config.h"

/* Returns the exit status (with a COMMAND: the command's). */
int tracer_run(const struct fh_config *cfg);

#endif

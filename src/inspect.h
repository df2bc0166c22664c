/* SPDX-License-Identifier: GPL-2.0 */
/* `forkhazard inspect PID`: one-shot diagnosis of a running process, no BPF. */
#ifndef FH_INSPECT_H
#define FH_INSPECT_H

#include "cli.h"

int inspect_run(const struct fh_config *cfg);

#endif

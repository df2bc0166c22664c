// SPDX-License-Identifier: GPL-2.0
#include "inspect.h"
#include "log.h"

int inspect_run(const struct fh_config *cfg)
{
	(void)cfg;
	log_error("inspect: not implemented yet");
	return FH_EXIT_ERROR;
}

// SPDX-License-Identifier: GPL-2.0
/* forkhazard: find fork hazards as they happen. */
#include <stdio.h>
#include <string.h>
#include "calibrate.h"
#include "config.h"
#include "cli.h"
#include "inspect.h"
#include "log.h"
#include "tracer.h"

int main(int argc, char **argv)
{
	struct fh_config cfg;
	int status;

	if (argc > 1 && !strcmp(argv[1], "calibrate"))
		return calibrate_main(argc - 1, argv + 1);
	status = cli_parse(argc, argv, &cfg);

	if (status >= 0) {
		config_free();
		return status;
	}
	log_verbosity = cfg.verbose >= 2 ? LOG_DEBUG : cfg.verbose == 1 ? LOG_INFO : LOG_NOTICE;
	status = cfg.mode == FH_MODE_INSPECT ? inspect_run(&cfg) : tracer_run(&cfg);
	config_free();	/* cfg's strings from --config live until here */
	return status;
}

// SPDX-License-Identifier: GPL-2.0
/* forkhazard: find fork hazards as they happen. */
#include <stdio.h>
#include <string.h>
#include "calibrate.h"
#include "cli.h"
#include "inspect.h"
#include "log.h"
#include "report.h"
#include "tracer.h"

int main(int argc, char **argv)
{
	struct fh_config cfg;
	int status;

	if (argc > 1 && !strcmp(argv[1], "calibrate"))
		return calibrate_main(argc - 1, argv + 1);
	if (argc > 1 && !strcmp(argv[1], "report"))
		return report_main(argc - 1, argv + 1);
	tracer_hold_signals();	/* before anything: see tracer.h */
	status = cli_parse(argc, argv, &cfg);
	if (status >= 0) {
		cli_free();
		return status;
	}
	log_verbosity = cfg.verbose >= 2 ? LOG_DEBUG : cfg.verbose == 1 ? LOG_INFO : LOG_NOTICE;
	if (cfg.mode == FH_MODE_INSPECT) {
		tracer_release_signals();	/* Ctrl-C ends a diagnosis at once */
		status = inspect_run(&cfg);
	} else {
		status = tracer_run(&cfg);
	}
	cli_free();	/* cfg's strings from --config live until here */
	return status;
}

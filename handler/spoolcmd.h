/*
 * spoolcmd.h: `podio-webhook spool ...`: look into the event spool, bring
 * dead letters back, process what is due (for cron), purge.
 */
#ifndef PODIO_HANDLER_SPOOLCMD_H
#define PODIO_HANDLER_SPOOLCMD_H

#include <stdio.h>

#include "podio.h"

/*
 * Runs `spool argv[0] ...` (argv[0]: status, list, show, replay, drain,
 * purge) with the configuration *cfg (drain takes it over and sets *cfg
 * to NULL) and the program's C callbacks fns (may be NULL).  Output on
 * stdout, messages on stderr.  Returns the exit status of cli.h: 0, 1
 * (no such event, the spool failed), 2 (usage or configuration).
 */
int spoolcmd_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    int argc, char **argv);

/* Prints one line per spool command (synopsis and summary) to fp. */
void spoolcmd_usage(FILE *fp);

#endif

/*
 * cli.h: the subcommands of podio-webhook (hooks, check, config, emit).
 */
#ifndef PODIO_CLI_H
#define PODIO_CLI_H

#include <stdio.h>

#include "podio.h"

/* Exit statuses of the command line. */
#define CLI_EXIT_OK        0  /* success */
#define CLI_EXIT_PODIO     1  /* Podio answered with an error */
#define CLI_EXIT_USAGE     2  /* usage or configuration error */
#define CLI_EXIT_UNREACHED 3  /* Podio could not be reached */

/* The width of the synopsis column in the program's --help. */
#define CLI_USAGE_WIDTH 41

/* The exit status for a library error. */
int cli_exit_for(enum podio_err err);

/*
 * Runs the subcommand argv[0] ("hooks", "check", "config", "emit") with
 * its arguments, using *cfg (already loaded with every source; a command
 * may take it over and set *cfg to NULL) and the program's C callbacks
 * fns (may be NULL).  Returns the exit status.  Output on stdout,
 * messages on stderr.
 */
int cli_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    int argc, char **argv);

/* Prints one line per subcommand (synopsis and summary) to fp, for the
 * program's --help. */
void cli_usage(FILE *fp);

#endif

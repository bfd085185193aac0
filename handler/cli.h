/*
 * cli.h: the subcommands of podio-webhook (hooks, check, config, emit,
 * doctor).
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

/* Where the configuration of a command came from. */
struct cli_source {
	const char *config_opt;   /* the -c argument, or NULL */
	const char *config_err;   /* why it could not be made, or NULL */
};

/*
 * Runs the subcommand argv[0] ("hooks", "check", "config", "emit",
 * "doctor", "spool") with its arguments, using *cfg (already loaded with
 * every source; a command may take it over and set *cfg to NULL) and the
 * program's C callbacks fns (may be NULL).  src says where *cfg came
 * from; *cfg is NULL only for doctor, with src->config_err saying why.
 * Returns the exit status.  Output on stdout, messages on stderr.
 */
int cli_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    const struct cli_source *src, int argc, char **argv);

/* Prints one line per subcommand (synopsis and summary) to fp, for the
 * program's --help. */
void cli_usage(FILE *fp);

#endif

/*
 * emit.h: `podio-webhook emit FILE`: a saved delivery pushed through the
 * handler's decision and flow, printing what ran.
 */
#ifndef PODIO_HANDLER_EMIT_H
#define PODIO_HANDLER_EMIT_H

#include "podio.h"

/*
 * Runs the saved delivery at path ("-": standard input) with the
 * configuration *cfg (taken over: *cfg is set to NULL) and the program's
 * C callbacks fns (may be NULL).  Prints the delivery, the item fetched,
 * one line per callback that ran and "status CODE: REASON" on stdout;
 * problems on stderr.  Returns 0 when the answer is 200 and every
 * callback succeeded, 1 otherwise, 2 for a file that cannot be read or a
 * configuration the handler cannot run with.
 */
int emit_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    const char *path);

#endif

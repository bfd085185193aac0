/*
 * emit.h: `podio-webhook emit FILE`: a saved delivery judged as a POST
 * would be, then run at once in the foreground, printing what ran.
 */
#ifndef PODIO_HANDLER_EMIT_H
#define PODIO_HANDLER_EMIT_H

#include "podio.h"

/*
 * Runs the saved delivery at path ("-": standard input) with the
 * configuration *cfg (taken over: *cfg is set to NULL) and the program's
 * C callbacks fns (may be NULL).  Prints on stdout "status CODE: REASON",
 * the answer a POST of the file would get (for an accepted event, 200
 * without storing it), then for an accepted event the delivery, the item
 * fetched, one line per callback that ran and "result: ..."; problems on
 * stderr.  Returns 0 when the answer is 200 and every callback
 * succeeded, 3 when Podio could not be reached (for the item or a
 * hook.verify), 1 for another answer than 200, a fetch Podio refused or
 * a failed callback, 2 for a file that cannot be read or a configuration
 * the handler cannot run with.
 */
int emit_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    const char *path);

#endif

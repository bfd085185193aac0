/*
 * doctor.h: `podio-webhook doctor`: every check of a setup that the
 * receiver can make by itself - the configuration file, the credentials,
 * the spool, the API and the hooks of each configured app - one line
 * each, "ok" or "FAIL" with what to do.  It changes nothing: no write to
 * the spool, no change to a hook; the API calls are at most one token
 * request (the token goes to the shared token cache, as with every
 * command) and one hook list per app.
 */
#ifndef PODIO_HANDLER_DOCTOR_H
#define PODIO_HANDLER_DOCTOR_H

#include "podio.h"

/* The age past which the oldest pending event is a failure. */
#define DOCTOR_MAX_AGE_MS (3600 * 1000)

/*
 * Runs every check and prints one line per check on stdout ("ok   NAME:
 * DETAIL" or "FAIL NAME: DETAIL; WHAT TO DO"), or with json a JSON array
 * of {"check", "ok", "detail", "fix"} objects (fix null when ok).
 * cfg: the effective configuration (borrowed), or NULL when it could not
 * be made, config_err then saying why; config_opt: the -c argument, or
 * NULL.  Nothing printed holds a secret.  Returns 0 when every check
 * passed, 1 when one failed, 2 when the configuration could not be made
 * (after its FAIL line), 3 when the API could not be reached (the checks
 * that need it are then left out).
 */
int doctor_run(const struct podio_config *cfg, const char *config_opt,
    const char *config_err, int json);

#endif

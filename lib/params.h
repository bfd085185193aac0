/*
 * params.h: the parameters of a webhook request: the query string and the
 * application/x-www-form-urlencoded body decoded as the WHATWG URL
 * standard's urlencoded parser does, merged into one set, and validated.
 *
 * The first part is public (it moves into podio.h as is); the second part
 * is internal to the library.
 */
#ifndef PODIO_PARAMS_H
#define PODIO_PARAMS_H

#include <stddef.h>

#include "podio.h"

/* The public part of this module is declared in podio.h. */

/* ------------------------------------------------------- internal: params */

/*
 * Checks the limits of urlencoded text without decoding or storing it:
 * adds the number of non-empty pieces to *count and fails with
 * PODIO_ERR_TOO_LARGE (and a static *reason) when *count exceeds
 * max_params (0 = no limit) or a decoded name would be longer than
 * PODIO_PARAMS_MAX_KEY.  Lets a caller check the query and the body
 * against their shared limit before it reports any other error.
 */
enum podio_err podio__params_check(const char *data, size_t len,
    size_t *count, size_t max_params, const char **reason);

/*
 * Decodes n bytes of one urlencoded name or value as above into out and
 * returns the decoded length.  out must hold 3 * n bytes; with out NULL
 * only the length is computed.  *has_nul (if not NULL) is set to 1 when
 * the decoded text holds a NUL byte, else 0.  No terminating NUL is
 * written.
 */
size_t podio__form_decode(const char *in, size_t n, char *out,
    int *has_nul);

#endif

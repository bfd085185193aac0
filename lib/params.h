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

/* ---------------------------------------------------------- public: params */

/*
 * The longest parameter name accepted, in bytes after decoding (percent
 * sequences decoded, invalid UTF-8 replaced).  A longer name is a limit
 * error (HTTP 413).
 */
#define PODIO_PARAMS_MAX_KEY 256

/*
 * A set of parameters: names and values, each valid UTF-8 without a NUL
 * byte.  A name appears at most once: when a name is repeated, the value
 * of its last occurrence wins (parse the query before the body, and the
 * body beats the query) and the name keeps the position of its first
 * occurrence.  Iteration by index follows those positions, so the set
 * keeps the order in which names were first seen, as a JSON object built
 * from it should.
 */
struct podio_params;

/*
 * A new empty set that accepts at most max_params name=value pieces in
 * total over all podio_params_parse() calls, repeated names included
 * (0 = no limit).  NULL on out of memory.  The caller frees the set with
 * podio_params_free().
 */
struct podio_params *podio_params_new(size_t max_params);
/* Frees the set, wiping every name and value first (a value may be a
 * secret).  Accepts NULL. */
void podio_params_free(struct podio_params *params);

/*
 * Decodes len bytes of urlencoded text (a query string without its '?',
 * or a form body; data need not be NUL-terminated) and merges the pairs
 * into params, after the pairs already there.  The text is split on '&';
 * empty pieces are skipped; a piece is split at its first '=' (no '='
 * means an empty value); '+' becomes a space and %XX the byte XX (a '%'
 * not followed by two hex digits stays literal); then invalid UTF-8
 * becomes U+FFFD, maximal subpart by maximal subpart, as the WHATWG
 * "UTF-8 decode without BOM" does (a BOM is kept).
 *
 * The limits are checked over the whole text before any decoding error:
 *   PODIO_ERR_TOO_LARGE  more pieces than max_params allows, or a name
 *                        longer than PODIO_PARAMS_MAX_KEY (HTTP 413);
 *   PODIO_ERR_INVALID    a decoded name or value holds a NUL byte, from
 *                        %00 or a raw byte (HTTP 400);
 *   PODIO_ERR_NOMEM      out of memory.
 * On failure *reason (if reason is not NULL) receives a short static
 * English phrase ("too many parameters", ...) and params is left as it
 * was before the call.  On success *reason is set to NULL.
 * Time and memory are linear in len (plus n log n for the merge).
 */
enum podio_err podio_params_parse(struct podio_params *params,
    const char *data, size_t len, const char **reason);

/* The number of distinct names. */
size_t podio_params_count(const struct podio_params *params);

/* The value of name, or NULL when absent; borrowed from params (valid
 * until the next podio_params_parse() or podio_params_free()). */
const char *podio_params_get(const struct podio_params *params,
    const char *name);

/*
 * The i-th pair in position order (see above): *name and *value (either
 * pointer may be NULL) receive borrowed strings.  Returns 1, or 0 when i
 * is past the end.
 */
int podio_params_at(const struct podio_params *params, size_t i,
    const char **name, const char **value);

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

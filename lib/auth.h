/*
 * auth.h: the token store behind struct podio_tokens (see podio.h): the
 * credentials, the current token, its expiry, the token cache file, and
 * the calls to POST /oauth/token.  Internal.
 *
 * Flow: podio__tokens_get() returns a token valid for at least the refresh
 * margin, taking it from memory, then from the cache file (when another
 * process already fetched it), then from the token endpoint (refresh grant
 * when a refresh token is held, else the app or password grant).  Only one
 * thread of the process, and one process sharing the cache file, requests
 * a token at a time; the others wait and reuse its result.
 */
#ifndef PODIO_AUTH_H
#define PODIO_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "http.h"

/* Refresh this long before the token's expiry. */
#define PODIO__TOKEN_MARGIN_MS (5 * 60 * 1000)

/*
 * Copies a valid access token of credential cred (an index below
 * podio_tokens_count(t)) into token (size tokenlen) using http for
 * any token request.  On failure err/errlen receive a one-line message
 * (never a secret) and the return value says why: PODIO_ERR_AUTH when the
 * credentials were refused, PODIO_ERR_RATE_LIMITED when the token
 * endpoint answered 420 (*retry_after set to its wait in seconds or -1),
 * transport errors as such.  retry_after may be NULL.
 */
enum podio_err podio__tokens_get(struct podio_tokens *t, size_t cred,
    struct podio__http *http, const char *api_url, char *token,
    size_t tokenlen, long *retry_after, char *err, size_t errlen);

/*
 * Reports that token of credential cred was refused with 401
 * expired_token/invalid_token.  When it is still the current token it is dropped (in memory and in the
 * cache file), so the next podio__tokens_get() refreshes; a token already
 * replaced by another thread is left alone, so concurrent failures cause
 * one refresh, not many.
 */
void podio__tokens_invalidate(struct podio_tokens *t, size_t cred,
    const char *token);

/*
 * Who credential i of this store writes as in Podio, as a revision's
 * "created_by" shows it: *type "app" (static) and *id the app id for
 * the app flow; "user" and the user's id for the password flow, known
 * from the "ref" of the token answer (or the cache entry that kept it)
 * once a token was obtained.  Returns PODIO_OK, PODIO_ERR_NOT_FOUND
 * while the user is not known yet, or PODIO_ERR_INVALID for no store or
 * no credential i.
 */
enum podio_err podio__tokens_self(struct podio_tokens *t, size_t i,
    const char **type, uint64_t *id);

/*
 * Takes the tokens out of body, a 2xx answer of the token endpoint
 * (NUL-terminated): a JSON object with a non-empty "access_token" of at
 * most 4096 bytes, and optionally "refresh_token", "expires_in"
 * (seconds, capped at 30 days; 8 hours when absent) and "ref" (a user's
 * id is kept: see podio__tokens_self()).  started is the
 * wall clock when the request was sent: the lifetime counts from there,
 * to be safe.  On success t's first credential holds the new tokens (a refresh token only
 * when the answer had one).  Returns PODIO_OK, or PODIO_ERR_BAD_JSON or
 * PODIO_ERR_NOMEM with a message in err (never a token), t unchanged.
 * The store calls it with its mutex held; anyone else only on a store no
 * other thread uses.
 */
enum podio_err podio__tokens_take_answer(struct podio_tokens *t,
    const char *body, int64_t started, char *err, size_t errlen);

#endif

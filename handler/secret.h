/*
 * secret.h: keeping secrets out of what the program prints, and the hook
 * secret in a hook's URL (webhook_secret is appended to the URL as
 * secret=, percent-encoded, and masked as secret=*** in every output).
 */
#ifndef PODIO_HANDLER_SECRET_H
#define PODIO_HANDLER_SECRET_H

#include "podio.h"

/*
 * Returns a copy of text safe to print: secret= values masked, then every
 * configured secret value of cfg (as is and percent-encoded) replaced by
 * "***", control characters by '?'.  The caller frees the result; NULL on
 * out of memory.
 */
char *secret_scrub(const struct podio_config *cfg, const char *text);

/*
 * Returns a copy of text in which the value of every "secret=" (any case)
 * is replaced by "***" and control characters by '?'.  The caller frees
 * the result; NULL on out of memory.
 */
char *secret_mask_query(const char *text);

/* Percent-encodes s (RFC 3986: all but unreserved characters).  The
 * caller frees (and wipes: it may be a secret) the result; NULL on out of
 * memory. */
char *secret_pct_encode(const char *s);

/*
 * Returns url with "secret=<percent-encoded secret>" added to its query
 * ('?' or '&' as needed, before any #fragment).  The caller wipes and
 * frees the result; NULL on out of memory.
 */
char *secret_url_with(const char *url, const char *secret);

/*
 * Returns url with "podio_app=<app_id>" (PODIO_APP_PARAM) added to its
 * query, as secret_url_with() adds the secret, so that each delivery of
 * the hook names the app whose credential its API calls use; a copy of
 * url when its query has that parameter already.  The caller frees the
 * result; NULL on out of memory.
 */
char *secret_url_with_app(const char *url, uint64_t app_id);

/* Whether the query of url (before any #fragment) has a parameter named
 * "secret". */
int secret_url_has(const char *url);

/*
 * Returns the URL of a hook as `hooks list` prints it: secret_scrub()'s
 * copy of url, in which the masked value of its secret parameter reads
 * "***(previous)" when the value (percent-decoded, the last one when
 * there are several, as a delivery takes it) is webhook_secret_previous
 * and not webhook_secret: a hook still to re-create.  The caller frees
 * the result; NULL on out of memory.
 */
char *secret_hook_url(const struct podio_config *cfg, const char *url);

/* What the secret parameter of a hook's URL holds, as a delivery of that
 * hook would carry it (the last value when there are several). */
enum secret_url_state {
	SECRET_URL_NONE,      /* no secret parameter */
	SECRET_URL_CURRENT,   /* webhook_secret */
	SECRET_URL_PREVIOUS,  /* webhook_secret_previous, not webhook_secret */
	SECRET_URL_OTHER      /* another value */
};
enum secret_url_state secret_url_state(const struct podio_config *cfg,
    const char *url);

/*
 * Returns a copy of url without its "secret" query parameters (the '?'
 * goes too when nothing is left of the query): the URL to give `hooks
 * create`, which adds webhook_secret.  The caller frees the result;
 * NULL on out of memory.
 */
char *secret_url_without(const char *url);

#endif

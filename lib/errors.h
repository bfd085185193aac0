/*
 * errors.h: turning Podio's answers into enum podio_err and a one-line
 * message.  Internal.
 */
#ifndef PODIO_ERRORS_H
#define PODIO_ERRORS_H

#include <stddef.h>
#include "podio.h"

/* The longest wait Podio may name (Retry-After, "wait N seconds"): a
 * longer one is cut to it, so that no answer can stop the calls of a
 * credential for more than an hour. */
#define PODIO__WAIT_MAX_S 3600

/* What an error answer said. Strings are owned by the struct. */
struct podio__api_error {
	enum podio_err err;
	long status;
	char *error;             /* Podio's "error", or NULL */
	char *error_description; /* Podio's "error_description", or NULL */
	long retry_after;        /* seconds to wait on 420 (at most
	                            PODIO__WAIT_MAX_S), -1 if not named */
	char message[512];       /* one line for humans, never a secret */
};

/*
 * Maps an HTTP status and body (possibly not JSON; body may be NULL) to an
 * error.  For 2xx returns PODIO_OK.  401 with error_description
 * "expired_token" or "invalid_token" (or those words in
 * www_authenticate) gives PODIO_ERR_TOKEN_EXPIRED; 400 "invalid_grant"
 * gives PODIO_ERR_AUTH; 420 and 429 give PODIO_ERR_RATE_LIMITED with
 * retry_after taken from retry_after_header (>= 0; a negative one is
 * ignored) or else from a "wait N seconds" in the description, either
 * capped at PODIO__WAIT_MAX_S.  Fills e (freed with
 * podio__api_error_clear()).
 */
enum podio_err podio__api_error_parse(long status, const char *body,
    size_t body_len, const char *www_authenticate, long retry_after_header,
    struct podio__api_error *e);
void podio__api_error_clear(struct podio__api_error *e);

#endif

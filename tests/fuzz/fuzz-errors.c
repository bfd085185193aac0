/*
 * fuzz-errors.c: Podio's error answers (lib/errors.c,
 * podio__api_error_parse()): a status, a body that need not be JSON,
 * a WWW-Authenticate header and a Retry-After already read as seconds.
 *
 * Checked: 2xx is success and anything else is not; 420 and 429 are
 * the rate limit, with a wait from -1 to the hour's cap that the header
 * decides when it names one; 401 naming an expired or invalid token in
 * the header is PODIO_ERR_TOKEN_EXPIRED; the message is one line
 * without control characters that gives the status; what is kept of
 * Podio's own strings holds no control characters either.
 *
 * Input: a first line "STATUS RETRY-AFTER WWW-AUTHENTICATE..." (the
 * header absent when nothing follows the two numbers), then the body,
 * exactly as many bytes as follow (not NUL-terminated).
 */
#include <config.h>

#include <stdio.h>

#include "podio.h"
#include "errors.h"
#include "fuzz.h"

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio__api_error e;
	const uint8_t *nl;
	char *head, *www = NULL, *body = NULL, *p, want[48];
	long status = 0, retry = -1;
	size_t hlen, blen;
	int used = 0;
	enum podio_err rc;

	if (size > 128 * 1024 || (nl = memchr(data, '\n', size)) == NULL)
		return 0;
	hlen = (size_t)(nl - data);
	head = fuzz_dup(data, hlen);
	if (sscanf(head, "%ld %ld %n", &status, &retry, &used) < 2 ||
	    used == 0) {
		free(head);
		return 0;
	}
	p = head + used;
	if (*p != '\0')
		www = p;
	/* The body in a buffer of its own size: a read past its end is
	 * seen. */
	blen = size - hlen - 1;
	if (blen > 0) {
		if ((body = malloc(blen)) == NULL)
			abort();
		memcpy(body, nl + 1, blen);
	}

	rc = podio__api_error_parse(status, body, blen, www, retry, &e);
	FUZZ_CHECK(rc == e.err && e.status == status, "result %d, e.err %d",
	    rc, e.err);
	if (status >= 200 && status <= 299) {
		FUZZ_CHECK(rc == PODIO_OK && e.error == NULL &&
		    e.error_description == NULL && e.retry_after == -1,
		    "2xx gives %d", rc);
		goto done;
	}
	FUZZ_CHECK(rc != PODIO_OK, "status %ld is success", status);
	FUZZ_CHECK(e.retry_after >= -1 && e.retry_after <= PODIO__WAIT_MAX_S,
	    "wait %ld", e.retry_after);
	FUZZ_CHECK(e.retry_after == -1 || rc == PODIO_ERR_RATE_LIMITED,
	    "a wait with %d", rc);
	if (status == 420 || status == 429) {
		FUZZ_CHECK(rc == PODIO_ERR_RATE_LIMITED, "%ld gives %d",
		    status, rc);
		if (retry >= 0)
			FUZZ_CHECK(e.retry_after == (retry < PODIO__WAIT_MAX_S ?
			    retry : PODIO__WAIT_MAX_S), "header %ld, wait %ld",
			    retry, e.retry_after);
	}
	if (status == 401 && www != NULL && (strstr(www, "expired_token") ||
	    strstr(www, "invalid_token")))
		FUZZ_CHECK(rc == PODIO_ERR_TOKEN_EXPIRED, "401 gives %d", rc);
	FUZZ_CHECK(memchr(e.message, '\0', sizeof(e.message)) != NULL &&
	    e.message[0] != '\0' && fuzz_no_control(e.message),
	    "message: %s", e.message);
	snprintf(want, sizeof(want), "(HTTP %ld", status);
	FUZZ_CHECK(strstr(e.message, want) != NULL ||
	    strlen(e.message) >= sizeof(e.message) - 2,
	    "message without the status: %s", e.message);
	FUZZ_CHECK((e.error == NULL || fuzz_no_control(e.error)) &&
	    (e.error_description == NULL ||
	    fuzz_no_control(e.error_description)), "control characters kept");
	FUZZ_CHECK(e.error != NULL || e.error_description == NULL,
	    "a description without an error");
done:
	podio__api_error_clear(&e);
	podio__api_error_clear(&e);
	free(body);
	free(head);
	return 0;
}

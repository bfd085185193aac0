/*
 * errors.c: the names of enum podio_err, and the translation of Podio's
 * error answers (status, JSON body, WWW-Authenticate, Retry-After) into an
 * enum podio_err plus a one-line message safe to show and log.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "errors.h"
#include "util.h"

/* Caps on what is kept of Podio's strings; the message must stay one
 * short line whatever Podio (or a proxy) sends. */
#define ERR_MAX_CODE 64
#define ERR_MAX_DESCRIPTION 300
/* Error bodies bigger than this are not parsed: Podio's are tiny, and
 * anything this large is a proxy's page. */
#define ERR_MAX_BODY (64 * 1024)

static const char *const err_names[] = {
	[PODIO_OK] = "success",
	[PODIO_ERR_NOMEM] = "out of memory",
	[PODIO_ERR_INVALID] = "invalid argument",
	[PODIO_ERR_CONFIG] = "configuration error",
	[PODIO_ERR_IO] = "input/output error",
	[PODIO_ERR_AUTH] = "credentials refused",
	[PODIO_ERR_TOKEN_EXPIRED] = "access token expired or invalid",
	[PODIO_ERR_UNAUTHORIZED] = "unauthorized",
	[PODIO_ERR_BAD_REQUEST] = "bad request",
	[PODIO_ERR_FORBIDDEN] = "forbidden",
	[PODIO_ERR_NOT_FOUND] = "not found",
	[PODIO_ERR_CONFLICT] = "conflict",
	[PODIO_ERR_GONE] = "gone",
	[PODIO_ERR_RATE_LIMITED] = "rate limited",
	[PODIO_ERR_SERVER] = "Podio server error",
	[PODIO_ERR_UNAVAILABLE] = "Podio unavailable",
	[PODIO_ERR_HTTP] = "unexpected HTTP status",
	[PODIO_ERR_BAD_JSON] = "unexpected answer",
	[PODIO_ERR_TOO_LARGE] = "answer too large",
	[PODIO_ERR_TRANSPORT] = "connection failed",
	[PODIO_ERR_TIMEOUT] = "timed out",
	[PODIO_ERR_TLS] = "TLS failure",
};

/* A static English description of err; never NULL. */
const char *
podio_strerror(enum podio_err err)
{
	if ((unsigned)err < sizeof(err_names) / sizeof(err_names[0]) &&
	    err_names[err] != NULL)
		return err_names[err];
	return "unknown error";
}

/* 1 when err means no answer came from Podio at all. */
int
podio_err_is_transport(enum podio_err err)
{
	return err == PODIO_ERR_TRANSPORT || err == PODIO_ERR_TIMEOUT ||
	    err == PODIO_ERR_TLS;
}

/*
 * A copy of src fit for a one-line message: control characters become
 * spaces, runs of blanks collapse, and the text is cut at max bytes (on a
 * UTF-8 character boundary, marked with "...").  Returns a string the
 * caller frees, NULL on out of memory.
 */
static char *
err_clean(const char *src, size_t max)
{
	size_t n = strlen(src), i, j = 0;
	int cut = 0;
	char *s;

	if (n > max) {
		n = max;
		/* Do not split a multi-byte character. */
		while (n > 0 && ((unsigned char)src[n] & 0xc0) == 0x80)
			n--;
		cut = 1;
	}
	if ((s = malloc(n + 4)) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		unsigned char c = (unsigned char)src[i];

		if (c < 0x20 || c == 0x7f)
			c = ' ';
		if (c == ' ' && (j == 0 || s[j - 1] == ' '))
			continue;
		s[j++] = (char)c;
	}
	while (j > 0 && s[j - 1] == ' ')
		j--;
	if (cut) {
		memcpy(s + j, "...", 3);
		j += 3;
	}
	s[j] = '\0';
	return s;
}

/* Whether haystack contains needle, ignoring case. */
static int
err_contains(const char *haystack, const char *needle)
{
	size_t n = strlen(needle);

	for (; *haystack != '\0'; haystack++)
		if (strncasecmp(haystack, needle, n) == 0)
			return 1;
	return 0;
}

/*
 * Finds "wait N second" (any case, any blanks) in text, as in Podio's
 * "Please wait 300 seconds before trying again".  Returns N, capped at
 * PODIO__WAIT_MAX_S (a longer number, of any length, gives the cap), or
 * -1.  A sign is not a digit: "wait -5 seconds" is not a wait.
 */
static long
err_wait_seconds(const char *text)
{
	const char *p, *q;
	long v;

	for (p = text; *p != '\0'; p++) {
		if (strncasecmp(p, "wait", 4) != 0)
			continue;
		q = p + 4;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q < '0' || *q > '9')
			continue;
		for (v = 0; *q >= '0' && *q <= '9'; q++)
			if (v < PODIO__WAIT_MAX_S)
				v = v * 10 + (*q - '0');
		if (v > PODIO__WAIT_MAX_S)
			v = PODIO__WAIT_MAX_S;
		while (*q == ' ' || *q == '\t')
			q++;
		if (strncasecmp(q, "sec", 3) == 0)
			return v;
	}
	return -1;
}

/* Whether s names a token Podio no longer accepts. */
static int
err_is_token_word(const char *s)
{
	return s != NULL && (strcmp(s, "expired_token") == 0 ||
	    strcmp(s, "invalid_token") == 0);
}

/* The error for an HTTP status alone (the 400 and 401 refinements are
 * made by the caller, which has the body). */
static enum podio_err
err_from_status(long status)
{
	switch (status) {
	case 400: return PODIO_ERR_BAD_REQUEST;
	case 401: return PODIO_ERR_UNAUTHORIZED;
	case 403: return PODIO_ERR_FORBIDDEN;
	case 404: return PODIO_ERR_NOT_FOUND;
	case 409: return PODIO_ERR_CONFLICT;
	case 410: return PODIO_ERR_GONE;
	case 420:
	case 429: return PODIO_ERR_RATE_LIMITED;
	case 500: return PODIO_ERR_SERVER;
	case 502:
	case 503:
	case 504: return PODIO_ERR_UNAVAILABLE;
	default:  return PODIO_ERR_HTTP;
	}
}

/*
 * Reads Podio's "error" and "error_description" out of body into e.
 * Returns 1 when body is a Podio-shaped error (a JSON object with a
 * string "error"), 0 when it is JSON of another shape, -1 when it is not
 * JSON at all (or too big to be a Podio error).
 */
static int
err_read_body(const char *body, size_t body_len, struct podio__api_error *e)
{
	cJSON *json = NULL, *v;
	const char *end = NULL;
	char *copy = NULL;
	int rc = -1;

	if (body == NULL || body_len == 0 || body_len > ERR_MAX_BODY)
		return -1;
	/* body need not be NUL-terminated; an embedded NUL is not JSON. */
	if ((copy = malloc(body_len + 1)) == NULL)
		return -1;
	memcpy(copy, body, body_len);
	copy[body_len] = '\0';
	if (strlen(copy) != body_len)
		goto fail;
	json = cJSON_ParseWithOpts(copy, &end, 1);
	if (json == NULL)
		goto fail;
	rc = 0;
	if (!cJSON_IsObject(json))
		goto fail;
	v = cJSON_GetObjectItemCaseSensitive(json, "error");
	if (!cJSON_IsString(v) || v->valuestring == NULL ||
	    v->valuestring[0] == '\0')
		goto fail;
	if ((e->error = err_clean(v->valuestring, ERR_MAX_CODE)) == NULL)
		goto fail;
	v = cJSON_GetObjectItemCaseSensitive(json, "error_description");
	if (cJSON_IsString(v) && v->valuestring != NULL)
		e->error_description = err_clean(v->valuestring,
		    ERR_MAX_DESCRIPTION);
	rc = 1;
fail:
	cJSON_Delete(json);
	free(copy);
	return rc;
}

/*
 * Maps an answer to an error and a message (see errors.h).  The message
 * names the kind of error, Podio's description and code, and the status:
 * "not found: Item not found (HTTP 404, not_found)".  It never quotes
 * the request, so no token or secret can reach it.
 */
enum podio_err
podio__api_error_parse(long status, const char *body, size_t body_len,
    const char *www_authenticate, long retry_after_header,
    struct podio__api_error *e)
{
	const char *label;
	int shape;

	memset(e, 0, sizeof(*e));
	e->status = status;
	e->retry_after = -1;
	if (status >= 200 && status <= 299) {
		e->err = PODIO_OK;
		return PODIO_OK;
	}

	shape = err_read_body(body, body_len, e);
	e->err = err_from_status(status);
	if (status == 400 && e->error != NULL &&
	    strcmp(e->error, "invalid_grant") == 0)
		e->err = PODIO_ERR_AUTH;
	if (status == 401 && (err_is_token_word(e->error) ||
	    err_is_token_word(e->error_description) ||
	    (www_authenticate != NULL &&
	    (err_contains(www_authenticate, "expired_token") ||
	    err_contains(www_authenticate, "invalid_token")))))
		e->err = PODIO_ERR_TOKEN_EXPIRED;
	if (e->err == PODIO_ERR_RATE_LIMITED) {
		/* A negative header value was not a wait (ignored); a huge
		 * one is the cap. */
		if (retry_after_header >= 0)
			e->retry_after = retry_after_header >
			    PODIO__WAIT_MAX_S ? PODIO__WAIT_MAX_S :
			    retry_after_header;
		else if (e->error_description != NULL)
			e->retry_after = err_wait_seconds(
			    e->error_description);
	}

	label = podio_strerror(e->err);
	if (shape == 1 && e->error_description != NULL &&
	    e->error_description[0] != '\0')
		snprintf(e->message, sizeof(e->message),
		    "%s: %s (HTTP %ld, %s)", label, e->error_description,
		    status, e->error);
	else if (shape == 1)
		snprintf(e->message, sizeof(e->message), "%s (HTTP %ld, %s)",
		    label, status, e->error);
	else if (shape == 0)
		snprintf(e->message, sizeof(e->message),
		    "%s: the answer is JSON but not a Podio error (HTTP %ld)",
		    label, status);
	else if (body == NULL || body_len == 0)
		snprintf(e->message, sizeof(e->message),
		    "%s: empty answer (HTTP %ld)", label, status);
	else
		snprintf(e->message, sizeof(e->message),
		    "%s: the answer is not JSON, probably from a proxy "
		    "(HTTP %ld)", label, status);
	if (e->err == PODIO_ERR_RATE_LIMITED && e->retry_after >= 0 &&
	    (e->error_description == NULL ||
	    err_wait_seconds(e->error_description) < 0)) {
		size_t n = strlen(e->message);

		snprintf(e->message + n, sizeof(e->message) - n,
		    "; retry after %ld s", e->retry_after);
	}
	return e->err;
}

/* Frees the strings of e and resets it.  Accepts NULL. */
void
podio__api_error_clear(struct podio__api_error *e)
{
	if (e == NULL)
		return;
	free(e->error);
	free(e->error_description);
	memset(e, 0, sizeof(*e));
	e->retry_after = -1;
}

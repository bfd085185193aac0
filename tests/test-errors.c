/*
 * test-errors.c: lib/errors.c, the mapping of Podio's answers (status,
 * body, WWW-Authenticate, Retry-After) to enum podio_err and a one-line
 * message, plus podio_strerror() and podio_err_is_transport().
 */
#include <config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "errors.h"
#include "podio.h"
#include "tap.h"

#define LAST_ERR PODIO_ERR_TLS

/* A Podio-shaped error body, as the API (and the simulator) sends it. */
static char *
podio_body(const char *error, const char *description)
{
	static const char fmt[] = "{\"error\": \"%s\", \"error_description\": "
	    "\"%s\", \"error_detail\": null, \"error_parameters\": {}, "
	    "\"error_propagate\": false, \"request\": {\"url\": "
	    "\"https://api.podio.com/item/1\", \"query_string\": \"\", "
	    "\"method\": \"GET\"}}";
	size_t n = sizeof(fmt) + strlen(error) + strlen(description);
	char *s = malloc(n);

	if (s == NULL)
		abort();
	snprintf(s, n, fmt, error, description);
	return s;
}

/* Maps status + body (NUL-terminated or NULL) with no headers. */
static enum podio_err
map(long status, const char *body, struct podio__api_error *e)
{
	return podio__api_error_parse(status, body, body ? strlen(body) : 0,
	    NULL, -1, e);
}

/* Maps a Podio-shaped body and clears; returns the error. */
static enum podio_err
map_podio(long status, const char *error, const char *description)
{
	struct podio__api_error e;
	enum podio_err rc;
	char *body = podio_body(error, description);

	rc = map(status, body, &e);
	podio__api_error_clear(&e);
	free(body);
	return rc;
}

/* Whether s is a single line: no byte below 0x20 and no DEL. */
static int
one_line(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	return 1;
}

/* Whether s is well-formed UTF-8 (no sequence cut in the middle). */
static int
valid_utf8(const unsigned char *s)
{
	int i, n;

	while (*s != '\0') {
		if (*s < 0x80)
			n = 0;
		else if ((*s & 0xe0) == 0xc0)
			n = 1;
		else if ((*s & 0xf0) == 0xe0)
			n = 2;
		else if ((*s & 0xf8) == 0xf0)
			n = 3;
		else
			return 0;
		for (i = 1; i <= n; i++)
			if ((s[i] & 0xc0) != 0x80)
				return 0;
		s += n + 1;
	}
	return 1;
}

static void
test_statuses(void)
{
	static const struct {
		long status;
		const char *error;
		const char *description;
		enum podio_err want;
	} cases[] = {
		{ 400, "invalid_value", "Invalid value", PODIO_ERR_BAD_REQUEST },
		{ 400, "invalid_grant", "Invalid app token", PODIO_ERR_AUTH },
		{ 401, "unauthorized", "expired_token", PODIO_ERR_TOKEN_EXPIRED },
		{ 401, "unauthorized", "invalid_token", PODIO_ERR_TOKEN_EXPIRED },
		{ 401, "invalid_token", "The token is invalid",
		    PODIO_ERR_TOKEN_EXPIRED },
		{ 401, "unauthorized", "Authentication required",
		    PODIO_ERR_UNAUTHORIZED },
		{ 403, "forbidden", "No access", PODIO_ERR_FORBIDDEN },
		{ 404, "not_found", "Item not found", PODIO_ERR_NOT_FOUND },
		{ 409, "conflict", "Conflict", PODIO_ERR_CONFLICT },
		{ 410, "gone", "Item deleted", PODIO_ERR_GONE },
		{ 420, "rate_limit", "Slow down", PODIO_ERR_RATE_LIMITED },
		{ 429, "rate_limit", "Slow down", PODIO_ERR_RATE_LIMITED },
		{ 500, "server_error", "Oops", PODIO_ERR_SERVER },
		{ 502, "bad_gateway", "Bad gateway", PODIO_ERR_UNAVAILABLE },
		{ 503, "unavailable", "Down", PODIO_ERR_UNAVAILABLE },
		{ 504, "timeout", "Gateway timeout", PODIO_ERR_UNAVAILABLE },
		{ 418, "teapot", "I am a teapot", PODIO_ERR_HTTP },
		{ 302, "moved", "Elsewhere", PODIO_ERR_HTTP },
		{ 501, "not_implemented", "No", PODIO_ERR_HTTP },
	};
	struct podio__api_error e;
	size_t i;
	enum podio_err rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = map_podio(cases[i].status, cases[i].error,
		    cases[i].description);
		tap_ok(rc == cases[i].want, "HTTP %ld %s/%s maps to %s (got %s)",
		    cases[i].status, cases[i].error, cases[i].description,
		    podio_strerror(cases[i].want), podio_strerror(rc));
	}

	tap_ok(map(200, "{\"item_id\": 1}", &e) == PODIO_OK && e.err == PODIO_OK,
	    "200 is success");
	podio__api_error_clear(&e);
	tap_ok(map(204, NULL, &e) == PODIO_OK, "204 with no body is success");
	podio__api_error_clear(&e);

	/* The statuses of podio-api.md that differ map to distinct
	 * errors (502/503/504 are one kind, 420/429 another). */
	{
		static const long st[] = { 400, 401, 403, 404, 409, 410, 420,
		    500, 503, 418 };
		enum podio_err got[sizeof(st) / sizeof(st[0])];
		size_t a, b, n = sizeof(st) / sizeof(st[0]);
		int distinct = 1;

		for (a = 0; a < n; a++)
			got[a] = map_podio(st[a], "x", "y");
		for (a = 0; a < n; a++)
			for (b = a + 1; b < n; b++)
				if (got[a] == got[b])
					distinct = 0;
		tap_ok(distinct, "each status class maps to a distinct error");
	}
}

static void
test_token_expiry(void)
{
	struct podio__api_error e;
	enum podio_err rc;
	const char *html = "<html><body>401</body></html>";

	rc = podio__api_error_parse(401, html, strlen(html),
	    "Bearer realm=\"podio\", error=\"expired_token\"", -1, &e);
	tap_ok(rc == PODIO_ERR_TOKEN_EXPIRED,
	    "401 with WWW-Authenticate error=expired_token is TOKEN_EXPIRED");
	podio__api_error_clear(&e);
	rc = podio__api_error_parse(401, NULL, 0,
	    "Bearer realm=\"podio\", error=\"invalid_token\"", -1, &e);
	tap_ok(rc == PODIO_ERR_TOKEN_EXPIRED,
	    "401 with no body, WWW-Authenticate invalid_token: TOKEN_EXPIRED");
	podio__api_error_clear(&e);
	rc = podio__api_error_parse(401, html, strlen(html),
	    "Bearer realm=\"podio\"", -1, &e);
	tap_ok(rc == PODIO_ERR_UNAUTHORIZED,
	    "401 HTML without a token error is UNAUTHORIZED");
	podio__api_error_clear(&e);
	rc = podio__api_error_parse(403, NULL, 0,
	    "Bearer error=\"expired_token\"", -1, &e);
	tap_ok(rc == PODIO_ERR_FORBIDDEN,
	    "expired_token only counts on a 401");
	podio__api_error_clear(&e);
}

static void
test_rate_limits(void)
{
	struct podio__api_error e;
	char *body;
	enum podio_err rc;

	body = podio_body("rate_limit", "You have hit the rate limit. Please "
	    "wait 300 seconds before trying again");
	rc = podio__api_error_parse(420, body, strlen(body), NULL, -1, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == 300,
	    "420: retry_after 300 from the description (got %ld)",
	    e.retry_after);
	podio__api_error_clear(&e);
	rc = podio__api_error_parse(420, body, strlen(body), NULL, 42, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == 42,
	    "420: a Retry-After header wins over the description (got %ld)",
	    e.retry_after);
	podio__api_error_clear(&e);
	free(body);

	body = podio_body("rate_limit", "Too many calls");
	rc = podio__api_error_parse(420, body, strlen(body), NULL, -1, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == -1,
	    "420 naming no wait: retry_after -1 (got %ld)", e.retry_after);
	podio__api_error_clear(&e);
	free(body);

	body = podio_body("too_many", "Please WAIT 7 second");
	rc = podio__api_error_parse(429, body, strlen(body), NULL, -1, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == 7,
	    "429: 'WAIT 7 second' read too (got %ld)", e.retry_after);
	podio__api_error_clear(&e);
	free(body);

	rc = podio__api_error_parse(429, "slow down", 9, NULL, 15, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == 15 &&
	    strstr(e.message, "15") != NULL,
	    "429 non-JSON with Retry-After: 15 s, named in the message (%s)",
	    e.message);
	podio__api_error_clear(&e);

	body = podio_body("server_error", "Please wait 300 seconds");
	rc = podio__api_error_parse(500, body, strlen(body), NULL, 30, &e);
	tap_ok(rc == PODIO_ERR_SERVER && e.retry_after == -1,
	    "retry_after stays -1 for statuses other than 420/429");
	podio__api_error_clear(&e);
	free(body);
}

/* The wait a 420 names (header hdr, or -1; description desc) comes out
 * as want. */
static void
wait_case(long hdr, const char *desc, long want, const char *what)
{
	struct podio__api_error e;
	enum podio_err rc;
	char *body = podio_body("rate_limit", desc);

	rc = podio__api_error_parse(420, body, strlen(body), NULL, hdr, &e);
	tap_ok(rc == PODIO_ERR_RATE_LIMITED && e.retry_after == want,
	    "%s: retry_after %ld (got %ld)", what, want, e.retry_after);
	podio__api_error_clear(&e);
	free(body);
}

static void
test_wait_caps(void)
{
	wait_case(3600, "Too many calls", 3600, "Retry-After 3600 (the cap)");
	wait_case(3601, "Too many calls", 3600, "Retry-After 3601 is capped");
	wait_case((long)(LONG_MAX > 99999999999LL ? 99999999999LL : LONG_MAX),
	    "Too many calls", 3600, "Retry-After 99999999999 is capped");
	wait_case(LONG_MAX, "Too many calls", 3600,
	    "Retry-After LONG_MAX is capped");
	wait_case(-5, "Too many calls", -1,
	    "a negative Retry-After is ignored");
	wait_case(-5, "Please wait 20 seconds", 20,
	    "a negative Retry-After leaves the description's wait");
	wait_case(-1, "Please wait 3600 seconds", 3600, "'wait 3600 seconds'");
	wait_case(-1, "Please wait 3601 seconds", 3600,
	    "'wait 3601 seconds' is capped");
	wait_case(-1, "Please wait 99999999999999999999999999999999 seconds",
	    3600, "a 32-digit wait is capped without overflow");
	wait_case(-1, "Please wait -300 seconds", -1,
	    "'wait -300 seconds' is no wait");
	wait_case(-1, "Please wait 1e9 seconds", -1,
	    "'wait 1e9 seconds' (garbage) is no wait");
	wait_case(-1, "Please wait soon, 300 seconds", -1,
	    "a number away from 'wait' is no wait");
	wait_case(-1, "Please wait 0 seconds", 0, "'wait 0 seconds'");
}

static void
test_messages(void)
{
	struct podio__api_error e;
	char *body, *desc;
	enum podio_err rc;
	const char *html = "<!DOCTYPE html>\n<html><head><title>502 Bad "
	    "Gateway</title></head>\n<body><h1>502 Bad Gateway</h1>"
	    "<hr>nginx</body></html>\n";
	size_t i;

	body = podio_body("not_found", "Item not found");
	rc = map(404, body, &e);
	tap_ok(rc == PODIO_ERR_NOT_FOUND && strcmp(e.message,
	    "not found: Item not found (HTTP 404, not_found)") == 0,
	    "404 message: '%s'", e.message);
	tap_ok(e.status == 404 && e.error != NULL &&
	    strcmp(e.error, "not_found") == 0 && e.error_description != NULL &&
	    strcmp(e.error_description, "Item not found") == 0,
	    "error and error_description are kept");
	podio__api_error_clear(&e);
	tap_ok(e.error == NULL && e.error_description == NULL,
	    "podio__api_error_clear() resets the strings");
	podio__api_error_clear(&e);
	free(body);

	rc = map(502, html, &e);
	tap_ok(rc == PODIO_ERR_UNAVAILABLE, "an HTML 502 from a proxy is "
	    "UNAVAILABLE");
	tap_ok(strstr(e.message, "not JSON") != NULL &&
	    strstr(e.message, "HTTP 502") != NULL && one_line(e.message) &&
	    e.error == NULL,
	    "its message says the answer is not JSON: '%s'", e.message);
	tap_ok(strstr(e.message, "<html") == NULL && strstr(e.message,
	    "nginx") == NULL, "the HTML itself is not quoted");
	podio__api_error_clear(&e);
	rc = map(404, "<html>Not Found</html>", &e);
	tap_ok(rc == PODIO_ERR_NOT_FOUND, "an HTML 404 is still NOT_FOUND");
	podio__api_error_clear(&e);
	rc = map(500, "[1, 2, 3]", &e);
	tap_ok(rc == PODIO_ERR_SERVER && strstr(e.message, "not a Podio "
	    "error") != NULL, "JSON of another shape: '%s'", e.message);
	podio__api_error_clear(&e);
	rc = map(503, NULL, &e);
	tap_ok(rc == PODIO_ERR_UNAVAILABLE && strstr(e.message, "empty") !=
	    NULL && strstr(e.message, "503") != NULL,
	    "empty 503: '%s'", e.message);
	podio__api_error_clear(&e);
	rc = map(400, "{\"error\": \"invalid_grant\"} trailing", &e);
	tap_ok(rc == PODIO_ERR_BAD_REQUEST && e.error == NULL,
	    "JSON followed by garbage is not trusted as Podio's answer");
	podio__api_error_clear(&e);

	/* Only body_len bytes count: the rest of the buffer is not read. */
	{
		const char *buf = "{\"error\":\"gone\",\"error_description\":"
		    "\"Deleted\"}XXXX";

		rc = podio__api_error_parse(410, buf, strlen(buf) - 4, NULL,
		    -1, &e);
		tap_ok(rc == PODIO_ERR_GONE && e.error_description != NULL &&
		    strcmp(e.error_description, "Deleted") == 0,
		    "a body that is not NUL-terminated is parsed by length");
		podio__api_error_clear(&e);
	}

	body = podio_body("bad\\nvalue", "line one\\nline two\\r\\n\\ttab"
	    "\\u001b[31mred\\u007f");
	rc = map(400, body, &e);
	tap_ok(rc == PODIO_ERR_BAD_REQUEST && one_line(e.message) &&
	    strstr(e.message, "line one line two tab") != NULL,
	    "control characters are removed: '%s'", e.message);
	tap_ok(one_line(e.error) && one_line(e.error_description),
	    "and from the kept error strings too");
	podio__api_error_clear(&e);
	free(body);

	if ((desc = malloc(20001)) == NULL)
		abort();
	for (i = 0; i < 20000; i++)
		desc[i] = (char)('a' + i % 26);
	desc[20000] = '\0';
	body = podio_body("not_found", desc);
	rc = map(404, body, &e);
	tap_ok(rc == PODIO_ERR_NOT_FOUND && strlen(e.message) < 512 &&
	    strstr(e.message, "(HTTP 404, not_found)") != NULL,
	    "a 20000-byte description gives a bounded message (%zu bytes) "
	    "that still ends with the status", strlen(e.message));
	tap_ok(e.error_description != NULL &&
	    strlen(e.error_description) <= 512,
	    "the kept description is bounded too");
	podio__api_error_clear(&e);
	free(body);

	/* Cut inside a run of three-byte characters ("\xe2\x82\xac",
	 * the euro sign) after 0..3 ASCII bytes: some cut points fall in
	 * the middle of a character. */
	for (i = 0; i < 4; i++) {
		size_t k;

		memset(desc, 'a', i);
		for (k = i; k + 3 < 20000; k += 3)
			memcpy(desc + k, "\xe2\x82\xac", 3);
		desc[k] = '\0';
		body = podio_body("x", desc);
		map(400, body, &e);
		if (!valid_utf8((const unsigned char *)e.message) ||
		    !valid_utf8((const unsigned char *)e.error_description))
			break;
		podio__api_error_clear(&e);
		free(body);
		body = NULL;
	}
	tap_ok(i == 4, "truncation never splits a UTF-8 character");
	podio__api_error_clear(&e);
	free(body);
	free(desc);

	/* Podio echoes the request; the message must not carry it. */
	body = strdup("{\"error\": \"forbidden\", \"error_description\": "
	    "\"No access\", \"request\": {\"url\": \"https://api.podio.com/"
	    "item/1?secret=HUSH1\", \"query_string\": \"access_token=HUSH2\""
	    ", \"method\": \"GET\"}}");
	rc = map(403, body, &e);
	tap_ok(rc == PODIO_ERR_FORBIDDEN && strstr(e.message, "HUSH") == NULL,
	    "the echoed request (and any token in it) is left out: '%s'",
	    e.message);
	podio__api_error_clear(&e);
	free(body);
}

static void
test_strerror(void)
{
	const char *names[LAST_ERR + 1];
	int i, j, ok = 1, distinct = 1;

	for (i = 0; i <= LAST_ERR; i++) {
		names[i] = podio_strerror((enum podio_err)i);
		if (names[i] == NULL || names[i][0] == '\0' ||
		    !one_line(names[i]))
			ok = 0;
	}
	tap_ok(ok, "podio_strerror() is non-NULL and one line for every "
	    "value 0..%d", LAST_ERR);
	for (i = 0; ok && i <= LAST_ERR; i++)
		for (j = i + 1; j <= LAST_ERR; j++)
			if (strcmp(names[i], names[j]) == 0) {
				tap_diag("same text for %d and %d: %s", i, j,
				    names[i]);
				distinct = 0;
			}
	tap_ok(ok && distinct, "podio_strerror() is distinct for every "
	    "value");
	tap_ok(podio_strerror((enum podio_err)(LAST_ERR + 1)) != NULL &&
	    podio_strerror((enum podio_err)-1) != NULL,
	    "podio_strerror() of an unknown value is not NULL");
}

static void
test_is_transport(void)
{
	int i, wrong = 0;

	for (i = 0; i <= LAST_ERR; i++) {
		int want = i == PODIO_ERR_TRANSPORT || i == PODIO_ERR_TIMEOUT ||
		    i == PODIO_ERR_TLS;

		if (podio_err_is_transport((enum podio_err)i) != want) {
			tap_diag("podio_err_is_transport(%s) is wrong",
			    podio_strerror((enum podio_err)i));
			wrong++;
		}
	}
	tap_ok(podio_err_is_transport(PODIO_ERR_TRANSPORT) == 1 &&
	    podio_err_is_transport(PODIO_ERR_TIMEOUT) == 1 &&
	    podio_err_is_transport(PODIO_ERR_TLS) == 1,
	    "transport, timeout and TLS errors are transport errors");
	tap_ok(wrong == 0, "no other error is a transport error");
}

int
main(void)
{
	test_statuses();
	test_token_expiry();
	test_rate_limits();
	test_wait_caps();
	test_messages();
	test_strerror();
	test_is_transport();
	return tap_done();
}

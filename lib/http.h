/*
 * http.h: one reused libcurl easy handle per client (keep-alive), with TLS
 * verification always on, the configured timeouts, a cap on response
 * size and the User-Agent podio-webhook/VERSION.  Knows HTTP, not Podio:
 * it neither adds tokens nor interprets error bodies.  Internal.
 */
#ifndef PODIO_HTTP_H
#define PODIO_HTTP_H

#include <stddef.h>
#include "podio.h"

struct podio__http;

struct podio__http_opts {
	const char *ca_file;        /* NULL: the system's CA store */
	long connect_timeout_ms;
	long timeout_ms;            /* total per request */
	size_t max_response;        /* cap on the body, bytes */
};

/* A new handle; NULL on failure.  The caller frees it with
 * podio__http_free(). */
struct podio__http *podio__http_new(const struct podio__http_opts *opts);
void podio__http_free(struct podio__http *h);

/* What came back.  Reset and filled by podio__http_request(); the caller
 * releases it with podio__http_response_free(), which leaves it empty and
 * ready for the next request.  podio__http_request() does not release
 * what r held before: pass a zeroed or released struct. */
struct podio__http_response {
	long status;                /* 0 when no HTTP answer arrived */
	char *body;                 /* NUL-terminated, never NULL on success */
	size_t body_len;
	char *content_type;         /* or NULL */
	char *www_authenticate;     /* or NULL */
	char *request_id;           /* X-Podio-Request-Id, or NULL */
	long rate_limit;            /* X-Rate-Limit-Limit, -1 if absent */
	long rate_remaining;        /* X-Rate-Limit-Remaining, -1 if absent */
	long retry_after;           /* Retry-After seconds, -1 if absent */
	char errbuf[256];           /* curl's message on a transport failure */
};
void podio__http_response_free(struct podio__http_response *r);

/*
 * Performs one request.  url is absolute.  authorization, if not NULL, is
 * the whole value of the Authorization header (e.g. "OAuth2 abc").
 * content_type and body (body_len bytes) are sent when body is not NULL.
 * Returns PODIO_OK whenever an HTTP answer arrived, whatever its status;
 * PODIO_ERR_TRANSPORT, _TIMEOUT or _TLS when none did (message in
 * r->errbuf); PODIO_ERR_TOO_LARGE when the body exceeds max_response.
 * The request body and the Authorization header are never logged.
 */
enum podio_err podio__http_request(struct podio__http *h, const char *method,
    const char *url, const char *authorization, const char *content_type,
    const char *body, size_t body_len, struct podio__http_response *r);

/*
 * Sets fn (NULL: none) to be called after every request h performs (not
 * one refused before it was sent), in the thread that made it, with the
 * method, the URL, the HTTP status (0 when no answer arrived) and the
 * rate-limit headers of r.  fn must not use h.  arg is passed as is.
 */
typedef void (*podio__http_observer_fn)(void *arg, const char *method,
    const char *url, const struct podio__http_response *r);
void podio__http_set_observer(struct podio__http *h,
    podio__http_observer_fn fn, void *arg);

/*
 * 0 when requests can be made.  Else -1 and why in msg (n bytes): only
 * in a build with --enable-lazy-libcurl, whose libcurl.so.4 cannot be
 * loaded.  Loads libcurl in that build.
 */
int podio__http_ready(char *msg, size_t n);

/* URL-encodes s (RFC 3986 unreserved characters kept) for a form body or
 * a query, without libcurl; the caller frees the result; NULL on out of
 * memory. */
char *podio__http_escape(struct podio__http *h, const char *s);

#endif

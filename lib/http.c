/*
 * http.c: one reused libcurl easy handle per client.  Every request starts
 * from curl_easy_reset(), which forgets the options of the last request
 * but keeps the live connections, so keep-alive works while no option
 * leaks from one request into the next.  TLS is always verified, only
 * http and https are spoken, redirects are not followed, and the answer
 * body is capped.  This file knows HTTP, not Podio.
 *
 * The curl handle is made by the first request, not with the handle:
 * a process that makes a client but no call (a CGI run that only stores
 * a delivery) then never needs libcurl, which a build with
 * --enable-lazy-libcurl does not load until then (curl_lazy.h).
 */
#include <config.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "curl_lazy.h"
#include "http.h"
#include "log.h"
#include "util.h"

/* Used when the caller names no cap: the configuration default. */
#define HTTP_DEFAULT_MAX_RESPONSE ((size_t)16 * 1024 * 1024)
/* Longest kept value of one captured header; longer values are cut. */
#define HTTP_MAX_HEADER_VALUE 1024
/* Longest Authorization value accepted (an OAuth2 token is ~40 bytes). */
#define HTTP_MAX_AUTHORIZATION 4096

struct podio__http {
	CURL *curl;                 /* made by the first request, or NULL */
	char *ca_file;              /* owned copy, or NULL */
	long connect_timeout_ms;
	long timeout_ms;
	size_t max_response;
	podio__http_observer_fn observer; /* or NULL */
	void *observer_arg;
};

/* State of the request in flight, shared with the curl callbacks. */
struct http_xfer {
	struct podio__buf body;
	struct podio__http_response *r;
	int too_large;              /* the write callback refused data */
};

/*
 * A new handle with a copy of opts (its curl easy handle is made by the
 * first request).  Returns NULL on out of memory.  The caller frees it
 * with podio__http_free().
 */
struct podio__http *
podio__http_new(const struct podio__http_opts *opts)
{
	struct podio__http *h = NULL;

	if (opts == NULL)
		return NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL)
		goto fail;
	if (opts->ca_file != NULL && opts->ca_file[0] != '\0' &&
	    (h->ca_file = strdup(opts->ca_file)) == NULL)
		goto fail;
	h->connect_timeout_ms = opts->connect_timeout_ms > 0 ?
	    opts->connect_timeout_ms : 10000;
	h->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	h->max_response = opts->max_response > 0 ?
	    opts->max_response : HTTP_DEFAULT_MAX_RESPONSE;
	return h;
fail:
	podio__http_free(h);
	return NULL;
}

/* Closes the connections and frees h.  Accepts NULL. */
void
podio__http_free(struct podio__http *h)
{
	if (h == NULL)
		return;
	if (h->curl != NULL)
		curl_easy_cleanup(h->curl);
	free(h->ca_file);
	free(h);
}

/* Puts r in its empty state: no strings, no status, counters at -1. */
static void
http_response_init(struct podio__http_response *r)
{
	memset(r, 0, sizeof(*r));
	r->rate_limit = -1;
	r->rate_remaining = -1;
	r->retry_after = -1;
}

/*
 * Releases what r holds (the body is wiped first: a token endpoint answer
 * carries tokens) and leaves r empty, ready for another request.
 * Accepts NULL.
 */
void
podio__http_response_free(struct podio__http_response *r)
{
	if (r == NULL)
		return;
	if (r->body != NULL)
		podio__wipe(r->body, r->body_len);
	free(r->body);
	free(r->content_type);
	free(r->www_authenticate);
	free(r->request_id);
	http_response_init(r);
}

/* Forgets every captured header of r (a new response is starting). */
static void
http_headers_reset(struct podio__http_response *r)
{
	free(r->content_type);
	free(r->www_authenticate);
	free(r->request_id);
	r->content_type = NULL;
	r->www_authenticate = NULL;
	r->request_id = NULL;
	r->rate_limit = -1;
	r->rate_remaining = -1;
	r->retry_after = -1;
}

/* A strict non-negative decimal (surrounding blanks already trimmed),
 * clamped to LONG_MAX; -1 when text is not one. */
static long
http_parse_count(const char *text)
{
	const char *p;
	long v = 0;

	if (*text == '\0')
		return -1;
	for (p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		if (v > (LONG_MAX - (*p - '0')) / 10)
			v = LONG_MAX;
		else
			v = v * 10 + (*p - '0');
	}
	return v;
}

/* Retry-After is either seconds or an HTTP date; returns seconds from now
 * (0 when the date has passed), or -1 when it is neither. */
static long
http_parse_retry_after(const char *text)
{
	time_t when, now;
	long secs;

	if ((secs = http_parse_count(text)) >= 0)
		return secs;
	if ((when = curl_getdate(text, NULL)) == (time_t)-1)
		return -1;
	now = time(NULL);
	return when > now ? (long)(when - now) : 0;
}

/* Copies n bytes of a header value, dropping control characters and
 * cutting at HTTP_MAX_HEADER_VALUE.  NULL on out of memory. */
static char *
http_header_value(const char *v, size_t n)
{
	char *s;
	size_t i, j;

	if (n > HTTP_MAX_HEADER_VALUE)
		n = HTTP_MAX_HEADER_VALUE;
	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	for (i = j = 0; i < n; i++)
		if ((unsigned char)v[i] >= 0x20 && v[i] != 0x7f)
			s[j++] = v[i];
	s[j] = '\0';
	return s;
}

/*
 * curl's header callback: called once per header line, status lines
 * included.  A status line starts a new response (an interim 1xx answer
 * or, were redirects followed, a new hop), so the captured headers are
 * forgotten there.  Returns size * nitems, as curl requires, except on
 * out of memory, which aborts the transfer.
 */
static size_t
http_header_cb(char *buf, size_t size, size_t nitems, void *userdata)
{
	struct http_xfer *x = userdata;
	struct podio__http_response *r = x->r;
	size_t len = size * nitems, nlen, vlen;
	const char *colon, *v;
	char **slot = NULL;
	char *val = NULL;

	if (len >= 5 && strncmp(buf, "HTTP/", 5) == 0) {
		http_headers_reset(r);
		return len;
	}
	if ((colon = memchr(buf, ':', len)) == NULL)
		return len;
	nlen = (size_t)(colon - buf);
	v = colon + 1;
	vlen = len - nlen - 1;
	while (vlen > 0 && (*v == ' ' || *v == '\t')) {
		v++;
		vlen--;
	}
	while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' ||
	    v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
		vlen--;

#define HTTP_IS(name) (nlen == sizeof(name) - 1 && \
	strncasecmp(buf, (name), nlen) == 0)
	if (HTTP_IS("Content-Type"))
		slot = &r->content_type;
	else if (HTTP_IS("WWW-Authenticate"))
		slot = &r->www_authenticate;
	else if (HTTP_IS("X-Podio-Request-Id"))
		slot = &r->request_id;
	else if (!HTTP_IS("X-Rate-Limit-Limit") &&
	    !HTTP_IS("X-Rate-Limit-Remaining") && !HTTP_IS("Retry-After"))
		return len;

	if ((val = http_header_value(v, vlen)) == NULL)
		return 0;
	if (slot != NULL) {
		free(*slot);
		*slot = val;
		return len;
	}
	if (HTTP_IS("X-Rate-Limit-Limit"))
		r->rate_limit = http_parse_count(val);
	else if (HTTP_IS("X-Rate-Limit-Remaining"))
		r->rate_remaining = http_parse_count(val);
	else
		r->retry_after = http_parse_retry_after(val);
#undef HTTP_IS
	free(val);
	return len;
}

/*
 * curl's write callback: appends to the capped body buffer.  Returning
 * less than asked makes curl stop with CURLE_WRITE_ERROR; too_large
 * tells that apart from out of memory.
 */
static size_t
http_write_cb(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct http_xfer *x = userdata;
	size_t len = size * nmemb;
	int rc;

	if (len == 0)
		return 0;
	if ((rc = podio__buf_append(&x->body, ptr, len)) == 0)
		return len;
	if (rc == -2)
		x->too_large = 1;
	return 0;
}

/* Translates curl's result at the library edge. */
static enum podio_err
http_map_curlcode(CURLcode cc, int too_large)
{
	switch (cc) {
	case CURLE_OK:
		return PODIO_OK;
	case CURLE_OPERATION_TIMEDOUT:
		return PODIO_ERR_TIMEOUT;
	case CURLE_WRITE_ERROR:
		return too_large ? PODIO_ERR_TOO_LARGE : PODIO_ERR_NOMEM;
	case CURLE_FILESIZE_EXCEEDED:
		return PODIO_ERR_TOO_LARGE;
	case CURLE_OUT_OF_MEMORY:
		return PODIO_ERR_NOMEM;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_ENGINE_INITFAILED:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
	case CURLE_SSL_CLIENTCERT:
	case CURLE_USE_SSL_FAILED:
		return PODIO_ERR_TLS;
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_RECV_ERROR:
	case CURLE_SEND_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	default:
		/* Anything else curl reports (a malformed answer, a
		 * protocol refused by the whitelist, HTTP/2 stream
		 * errors) also means no usable answer came back. */
		return PODIO_ERR_TRANSPORT;
	}
}

/* Logs the method and the URL without its query (a query may carry
 * values the log has no business with), never headers or bodies. */
static void
http_log_request(const char *method, const char *url, long status,
    enum podio_err err)
{
	size_t n = strcspn(url, "?#");

	if (podio_log_get_level() < PODIO_LOG_DEBUG)
		return;
	if (n > 300)
		n = 300;
	podio__debug("http: %s %.*s -> %ld (%s)", method, (int)n, url,
	    status, podio_strerror(err));
}

/* Sets the options common to every request.  Returns a CURLcode. */
static CURLcode
http_setopts(struct podio__http *h, struct http_xfer *x, const char *url,
    struct curl_slist *headers)
{
	CURL *c = h->curl;
	CURLcode cc = CURLE_OK;

#define HTTP_SET(opt, val) do { \
	if ((cc = curl_easy_setopt(c, (opt), (val))) != CURLE_OK) \
		return cc; \
} while (0)
	HTTP_SET(CURLOPT_URL, url);
	HTTP_SET(CURLOPT_NOSIGNAL, 1L);
	HTTP_SET(CURLOPT_NOPROGRESS, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
	HTTP_SET(CURLOPT_PROTOCOLS_STR, "http,https");
	HTTP_SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
	HTTP_SET(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	HTTP_SET(CURLOPT_REDIR_PROTOCOLS,
	    (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	HTTP_SET(CURLOPT_FOLLOWLOCATION, 0L);
	HTTP_SET(CURLOPT_SSL_VERIFYPEER, 1L);
	HTTP_SET(CURLOPT_SSL_VERIFYHOST, 2L);
	if (h->ca_file != NULL)
		HTTP_SET(CURLOPT_CAINFO, h->ca_file);
	HTTP_SET(CURLOPT_CONNECTTIMEOUT_MS, h->connect_timeout_ms);
	HTTP_SET(CURLOPT_TIMEOUT_MS, h->timeout_ms);
	HTTP_SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)h->max_response);
	HTTP_SET(CURLOPT_USERAGENT, "podio-webhook/" PACKAGE_VERSION);
	HTTP_SET(CURLOPT_HTTPHEADER, headers);
	HTTP_SET(CURLOPT_WRITEFUNCTION, http_write_cb);
	HTTP_SET(CURLOPT_WRITEDATA, x);
	HTTP_SET(CURLOPT_HEADERFUNCTION, http_header_cb);
	HTTP_SET(CURLOPT_HEADERDATA, x);
	HTTP_SET(CURLOPT_ERRORBUFFER, x->r->errbuf);
	HTTP_SET(CURLOPT_TCP_KEEPALIVE, 1L);
#undef HTTP_SET
	return cc;
}

/* Sets the method and body options.  Returns a CURLcode, or
 * CURLE_BAD_FUNCTION_ARGUMENT for a method this client does not speak. */
static CURLcode
http_setmethod(CURL *c, const char *method, const char *body,
    size_t body_len)
{
	CURLcode cc;
	int with_body;

	if (strcmp(method, "GET") == 0) {
		if (body != NULL)
			return CURLE_BAD_FUNCTION_ARGUMENT;
		return curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(method, "DELETE") == 0)
		with_body = body != NULL;
	else if (strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0)
		with_body = 1;
	else
		return CURLE_BAD_FUNCTION_ARGUMENT;

	if (with_body) {
		/* POSTFIELDS does not copy the body: nothing secret is
		 * left behind in curl.  An empty POST still sends
		 * Content-Length: 0, as servers expect. */
		if ((cc = curl_easy_setopt(c, CURLOPT_POST, 1L)) != CURLE_OK ||
		    (cc = curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
		    (curl_off_t)(body != NULL ? body_len : 0))) != CURLE_OK ||
		    (cc = curl_easy_setopt(c, CURLOPT_POSTFIELDS,
		    body != NULL ? body : "")) != CURLE_OK)
			return cc;
	}
	if (strcmp(method, "POST") != 0)
		return curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	return CURLE_OK;
}

/* Appends "name: value" to *list.  Returns 0, -1 on out of memory. */
static int
http_add_header(struct curl_slist **list, const char *line)
{
	struct curl_slist *n;

	if ((n = curl_slist_append(*list, line)) == NULL)
		return -1;
	*list = n;
	return 0;
}

/* Frees a header list, wiping every line first: one of them may be the
 * Authorization header. */
static void
http_free_headers(struct curl_slist *list)
{
	struct curl_slist *p;

	for (p = list; p != NULL; p = p->next)
		podio__wipe(p->data, strlen(p->data));
	curl_slist_free_all(list);
}

/*
 * Performs one request (see http.h).  r is overwritten without being
 * released first: pass a fresh struct or one released with
 * podio__http_response_free().  On PODIO_OK r->body holds the whole answer;
 * on any error r->body is NULL and r->errbuf says why in one line.
 */
enum podio_err
podio__http_request(struct podio__http *h, const char *method,
    const char *url, const char *authorization, const char *content_type,
    const char *body, size_t body_len, struct podio__http_response *r)
{
	struct http_xfer x;
	struct curl_slist *headers = NULL;
	char auth_line[sizeof("Authorization: ") + HTTP_MAX_AUTHORIZATION];
	char ct_line[256];
	enum podio_err err = PODIO_ERR_NOMEM;
	CURLcode cc;
	long status = 0;
	size_t alen;
	int performed = 0;

	memset(&x, 0, sizeof(x));
	if (r == NULL)
		return PODIO_ERR_INVALID;
	http_response_init(r);
	x.r = r;
	if (h == NULL || method == NULL || url == NULL) {
		podio__strlcpy(r->errbuf, "invalid request", sizeof(r->errbuf));
		return PODIO_ERR_INVALID;
	}
	x.body.cap = h->max_response;

	if (h->curl == NULL) {
		/* Nothing was sent: a library that cannot be loaded is, for
		 * the caller, an API that cannot be reached (retried later,
		 * reported by check). */
		if (podio__curl_load(r->errbuf, sizeof(r->errbuf)) != 0) {
			err = PODIO_ERR_TRANSPORT;
			goto fail;
		}
		if ((h->curl = curl_easy_init()) == NULL)
			goto fail;
	}
	curl_easy_reset(h->curl);

	/* An empty "Expect:" stops curl from waiting for 100-continue. */
	if (http_add_header(&headers, "Expect:") != 0 ||
	    http_add_header(&headers, "Accept: application/json") != 0)
		goto fail;
	if (authorization != NULL) {
		alen = strlen(authorization);
		if (alen > HTTP_MAX_AUTHORIZATION ||
		    strpbrk(authorization, "\r\n") != NULL) {
			err = PODIO_ERR_INVALID;
			podio__strlcpy(r->errbuf, "invalid authorization value",
			    sizeof(r->errbuf));
			goto fail;
		}
		memcpy(auth_line, "Authorization: ", 15);
		memcpy(auth_line + 15, authorization, alen + 1);
		if (http_add_header(&headers, auth_line) != 0)
			goto fail;
	}
	if (body != NULL && content_type != NULL) {
		if (strlen(content_type) > sizeof(ct_line) - 16 ||
		    strpbrk(content_type, "\r\n") != NULL) {
			err = PODIO_ERR_INVALID;
			podio__strlcpy(r->errbuf, "invalid content type",
			    sizeof(r->errbuf));
			goto fail;
		}
		snprintf(ct_line, sizeof(ct_line), "Content-Type: %s",
		    content_type);
		if (http_add_header(&headers, ct_line) != 0)
			goto fail;
	}

	if ((cc = http_setopts(h, &x, url, headers)) != CURLE_OK) {
		podio__strlcpy(r->errbuf, curl_easy_strerror(cc),
		    sizeof(r->errbuf));
		err = cc == CURLE_OUT_OF_MEMORY ? PODIO_ERR_NOMEM :
		    PODIO_ERR_INVALID;
		goto fail;
	}
	if ((cc = http_setmethod(h->curl, method, body, body_len)) !=
	    CURLE_OK) {
		podio__strlcpy(r->errbuf, cc == CURLE_BAD_FUNCTION_ARGUMENT ?
		    "unsupported method" : curl_easy_strerror(cc),
		    sizeof(r->errbuf));
		err = cc == CURLE_OUT_OF_MEMORY ? PODIO_ERR_NOMEM :
		    PODIO_ERR_INVALID;
		goto fail;
	}

	cc = curl_easy_perform(h->curl);
	performed = 1;
	curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
	r->status = status;
	err = http_map_curlcode(cc, x.too_large);
	if (err == PODIO_ERR_TOO_LARGE) {
		snprintf(r->errbuf, sizeof(r->errbuf),
		    "the answer exceeds the size limit of %zu bytes",
		    h->max_response);
	} else if (err != PODIO_OK && r->errbuf[0] == '\0') {
		podio__strlcpy(r->errbuf, curl_easy_strerror(cc),
		    sizeof(r->errbuf));
	}
	if (err != PODIO_OK)
		goto fail;

	/* steal() resets the buffer: take the length first. */
	r->body_len = x.body.len;
	if ((r->body = podio__buf_steal(&x.body)) == NULL) {
		r->body_len = 0;
		err = PODIO_ERR_NOMEM;
		goto fail;
	}
	err = PODIO_OK;
fail:
	if (err == PODIO_ERR_NOMEM && r->errbuf[0] == '\0')
		podio__strlcpy(r->errbuf, "out of memory", sizeof(r->errbuf));
	/* The error buffer belongs to r; curl must not keep a pointer to
	 * it past this call. */
	if (h->curl != NULL) {
		curl_easy_setopt(h->curl, CURLOPT_ERRORBUFFER, NULL);
		curl_easy_setopt(h->curl, CURLOPT_HTTPHEADER, NULL);
	}
	http_free_headers(headers);
	podio__wipe(auth_line, sizeof(auth_line));
	podio__buf_free(&x.body);
	http_log_request(method, url, status, err);
	if (performed && h->observer != NULL)
		h->observer(h->observer_arg, method, url, r);
	return err;
}

/* See http.h. */
void
podio__http_set_observer(struct podio__http *h, podio__http_observer_fn fn,
    void *arg)
{
	if (h == NULL)
		return;
	h->observer = fn;
	h->observer_arg = arg;
}

/* 1 when c is an unreserved character of RFC 3986 (section 2.3). */
static int
http_unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
	    (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
	    c == '~';
}

/* See http.h.  Loads libcurl (in a build that loads it lazily) and says
 * why it cannot be used. */
int
podio__http_ready(char *msg, size_t n)
{
	return podio__curl_load(msg, n);
}

/*
 * URL-encodes s for a form body or a query: every byte but the unreserved
 * ones of RFC 3986 (ALPHA DIGIT - . _ ~) becomes %XX, as
 * curl_easy_escape() does; done here so that building a URL never needs
 * libcurl.  h is not used.  The caller frees the result with free() (it
 * may hold a secret: wipe it with podio__free_secret()).  NULL on out of
 * memory.
 */
char *
podio__http_escape(struct podio__http *h, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	const unsigned char *p;
	size_t n = 0;
	char *e, *q;

	(void)h;
	if (s == NULL)
		return NULL;
	for (p = (const unsigned char *)s; *p != '\0'; p++)
		n += http_unreserved(*p) ? 1 : 3;
	if ((e = malloc(n + 1)) == NULL)
		return NULL;
	for (p = (const unsigned char *)s, q = e; *p != '\0'; p++) {
		if (http_unreserved(*p)) {
			*q++ = (char)*p;
			continue;
		}
		*q++ = '%';
		*q++ = hex[*p >> 4];
		*q++ = hex[*p & 0x0f];
	}
	*q = '\0';
	return e;
}

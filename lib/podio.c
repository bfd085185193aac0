/*
 * podio.c: the Podio API client.  A struct podio_client holds one HTTP
 * handle (one curl handle, reused), borrows the process's token store,
 * and remembers what the last call brought back (status, rate-limit
 * headers, Podio's error) for the caller to report.
 *
 * Every call takes a token from the store and sends it as
 * "Authorization: OAuth2 TOKEN".  When Podio answers 401 expired_token or
 * invalid_token, the token is reported to the store (which drops it if
 * nobody replaced it yet), a fresh one is taken and the request is sent
 * once more; a second refusal is returned to the caller.  The answers
 * themselves are read by api.c.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "curl_lazy.h"

#include "podio.h"
#include "api.h"
#include "auth.h"
#include "errors.h"
#include "http.h"
#include "log.h"
#include "util.h"

#define PODIO_DEFAULT_API_URL "https://api.podio.com"
/* Bounds on what callers may pass; Podio's own values are far shorter. */
#define CLIENT_MAX_PATH 4096
#define CLIENT_MAX_URL (CLIENT_MAX_PATH + 1024)
#define CLIENT_MAX_REF_TYPE 32
#define CLIENT_MAX_EVENT_TYPE 64
#define CLIENT_MAX_HOOK_URL 2048
#define CLIENT_MAX_CODE 1024
/* Room for an access token; Podio's are 32 to 40 characters. */
#define CLIENT_TOKEN_SIZE 1024

struct podio_client {
	struct podio__http *http;
	struct podio_tokens *tokens;  /* borrowed */
	size_t cred;                  /* the credential the calls use */
	char *api_url;                /* owned, no trailing slash */

	/* The last call, for podio_client_last() and _errmsg(). */
	long http_status;
	long rate_limit;
	long rate_remaining;
	long retry_after;
	char *error;                  /* owned copies, or NULL */
	char *error_description;
	char *request_id;
	char errmsg[512];

	/* podio_client_set_observer()'s, or NULL. */
	podio_call_observer_fn observer;
	void *observer_arg;
};

/* ------------------------------------------------------------- library */

/*
 * Calls curl_global_init() (not thread-safe: once, from main()).  Built
 * with --enable-lazy-libcurl, does nothing: curl_global_init() is then
 * called where libcurl is loaded, at the first request (curl_lazy.c).
 */
enum podio_err
podio_global_init(void)
{
#ifdef PODIO_LAZY_CURL
	return PODIO_OK;
#else
	CURLcode cc;

	cc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (cc == CURLE_OK)
		return PODIO_OK;
	return cc == CURLE_OUT_OF_MEMORY ? PODIO_ERR_NOMEM : PODIO_ERR_TLS;
#endif
}

/* curl_global_cleanup(); with --enable-lazy-libcurl only when a request
 * loaded libcurl. */
void
podio_global_cleanup(void)
{
#ifdef PODIO_LAZY_CURL
	podio__curl_global_cleanup();
#else
	curl_global_cleanup();
#endif
}

const char *
podio_version(void)
{
	return PACKAGE_VERSION;
}

/* -------------------------------------------------------- last call info */

/* Forgets everything about the previous call. */
static void
client_reset_last(struct podio_client *c)
{
	c->http_status = 0;
	c->rate_limit = -1;
	c->rate_remaining = -1;
	c->retry_after = -1;
	free(c->error);
	free(c->error_description);
	free(c->request_id);
	c->error = NULL;
	c->error_description = NULL;
	c->request_id = NULL;
	c->errmsg[0] = '\0';
}

/*
 * Sets the message of the last failure from a format (one line: control
 * characters are replaced) and returns err, so failures read
 * "return client_fail(c, PODIO_ERR_..., ...)".
 */
static enum podio_err client_fail(struct podio_client *c, enum podio_err err,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static enum podio_err
client_fail(struct podio_client *c, enum podio_err err, const char *fmt, ...)
{
	va_list ap;
	char *p;

	va_start(ap, fmt);
	vsnprintf(c->errmsg, sizeof(c->errmsg), fmt, ap);
	va_end(ap);
	for (p = c->errmsg; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = ' ';
	return err;
}

/* Keeps the headers of an HTTP answer that matter to the caller. */
static void
client_note_response(struct podio_client *c,
    const struct podio__http_response *r)
{
	c->http_status = r->status;
	c->rate_limit = r->rate_limit;
	c->rate_remaining = r->rate_remaining;
	c->retry_after = r->retry_after;
	free(c->request_id);
	c->request_id = podio__strdup(r->request_id);
}

void
podio_client_last(const struct podio_client *client,
    struct podio_call_info *info)
{
	if (info == NULL)
		return;
	memset(info, 0, sizeof(*info));
	info->rate_limit = -1;
	info->rate_remaining = -1;
	info->retry_after = -1;
	if (client == NULL)
		return;
	info->http_status = client->http_status;
	info->rate_limit = client->rate_limit;
	info->rate_remaining = client->rate_remaining;
	info->retry_after = client->retry_after;
	info->error = client->error;
	info->error_description = client->error_description;
	info->request_id = client->request_id;
}

const char *
podio_client_errmsg(const struct podio_client *client)
{
	if (client == NULL)
		return "no client";
	return client->errmsg;
}

enum podio_err
podio_client_self(const struct podio_client *client, const char **type,
    uint64_t *id)
{
	if (client == NULL || type == NULL || id == NULL)
		return PODIO_ERR_INVALID;
	return podio__tokens_self(client->tokens, client->cred, type, id);
}

/* --------------------------------------------------------------- client */

/*
 * A client for one thread, configured from cfg (api_url, ca_file,
 * timeout, connect_timeout, max_response).  tokens is borrowed and must
 * outlive the client.  *out receives a client the caller frees with
 * podio_client_free().
 */
enum podio_err
podio_client_new(const struct podio_config *cfg, struct podio_tokens *tokens,
    struct podio_client **out)
{
	struct podio_client *c = NULL;
	struct podio__http_opts opts;
	const char *url;
	size_t n;
	int64_t v;

	if (out == NULL)
		return PODIO_ERR_INVALID;
	*out = NULL;
	if (cfg == NULL || tokens == NULL)
		return PODIO_ERR_INVALID;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return PODIO_ERR_NOMEM;
	client_reset_last(c);
	c->tokens = tokens;

	url = podio_config_get(cfg, "api_url");
	if (url == NULL || *url == '\0')
		url = PODIO_DEFAULT_API_URL;
	if ((c->api_url = strdup(url)) == NULL)
		goto fail;
	n = strlen(c->api_url);
	while (n > 0 && c->api_url[n - 1] == '/')
		c->api_url[--n] = '\0';

	memset(&opts, 0, sizeof(opts));
	opts.ca_file = podio_config_get(cfg, "ca_file");
	v = podio_config_get_ms(cfg, "timeout");
	opts.timeout_ms = v > 0 && v < INT32_MAX ? (long)v : 0;
	v = podio_config_get_ms(cfg, "connect_timeout");
	opts.connect_timeout_ms = v > 0 && v < INT32_MAX ? (long)v : 0;
	v = podio_config_get_size(cfg, "max_response");
	opts.max_response = v > 0 && (uint64_t)v < SIZE_MAX / 2 ?
	    (size_t)v : 0;
	if ((c->http = podio__http_new(&opts)) == NULL)
		goto fail;
	*out = c;
	return PODIO_OK;
fail:
	podio_client_free(c);
	return PODIO_ERR_NOMEM;
}

/* See podio.h. */
int
podio_client_use(struct podio_client *client, size_t cred)
{
	if (client == NULL || cred >= podio_tokens_count(client->tokens))
		return -1;
	client->cred = cred;
	return 0;
}

/* See podio.h. */
size_t
podio_client_cred(const struct podio_client *client)
{
	return client != NULL ? client->cred : 0;
}

/* See podio.h. */
struct podio_tokens *
podio_client_tokens(const struct podio_client *client)
{
	return client != NULL ? client->tokens : NULL;
}

/* Frees the client and closes its connections.  Accepts NULL. */
void
podio_client_free(struct podio_client *client)
{
	if (client == NULL)
		return;
	client_reset_last(client);
	podio__http_free(client->http);
	free(client->api_url);
	free(client);
}

/* The HTTP handle's observer: the note of one request, its path made
 * relative to api_url (which token requests share), for the client's
 * observer. */
static void
client_observe(void *arg, const char *method, const char *url,
    const struct podio__http_response *r)
{
	struct podio_client *c = arg;
	struct podio_call_note note;
	size_t n = strlen(c->api_url);

	if (c->observer == NULL)
		return;
	note.method = method;
	note.path = strncmp(url, c->api_url, n) == 0 ? url + n : url;
	note.http_status = r->status;
	note.rate_limit = r->rate_limit;
	note.rate_remaining = r->rate_remaining;
	c->observer(&note, c->observer_arg);
}

/* See podio.h. */
void
podio_client_set_observer(struct podio_client *client,
    podio_call_observer_fn fn, void *arg)
{
	if (client == NULL)
		return;
	client->observer = fn;
	client->observer_arg = arg;
	podio__http_set_observer(client->http, fn != NULL ? client_observe :
	    NULL, client);
}

/*
 * Takes a token from the store into token (size CLIENT_TOKEN_SIZE).  On
 * failure the message and the wait the token endpoint asked for (420) are
 * kept as the last call's.
 */
static enum podio_err
client_token(struct podio_client *c, char *token)
{
	char err[256];
	long retry_after = -1;
	enum podio_err rc;

	err[0] = '\0';
	rc = podio__tokens_get(c->tokens, c->cred, c->http, c->api_url, token,
	    CLIENT_TOKEN_SIZE, &retry_after, err, sizeof(err));
	if (rc == PODIO_OK)
		return PODIO_OK;
	podio__wipe(token, CLIENT_TOKEN_SIZE);
	if (rc == PODIO_ERR_RATE_LIMITED)
		c->retry_after = retry_after;
	if (err[0] == '\0')
		return client_fail(c, rc, "%s: no access token",
		    podio_strerror(rc));
	return client_fail(c, rc, "%s", err);
}

enum podio_err
podio_authenticate(struct podio_client *client)
{
	char token[CLIENT_TOKEN_SIZE];
	enum podio_err rc;

	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	rc = client_token(client, token);
	podio__wipe(token, sizeof(token));
	return rc;
}

/* Whether path is something to append to api_url: starts with '/',
 * printable ASCII without blanks, bounded. */
static int
client_path_ok(const char *path)
{
	size_t n = 0;

	if (path == NULL || path[0] != '/')
		return 0;
	for (; path[n] != '\0'; n++)
		if ((unsigned char)path[n] <= 0x20 ||
		    (unsigned char)path[n] >= 0x7f || n >= CLIENT_MAX_PATH)
			return 0;
	return 1;
}

/*
 * The heart of podio_call(): one authenticated request, replayed once
 * after a refused token.  On success *body_out (if not NULL) receives the
 * answer text (the caller frees it) and *len_out its length.
 */
static enum podio_err
client_request(struct podio_client *c, const char *method, const char *path,
    const char *json_body, char **body_out, size_t *len_out)
{
	struct podio__http_response r;
	struct podio__api_error e;
	char token[CLIENT_TOKEN_SIZE];
	char auth[CLIENT_TOKEN_SIZE + sizeof("OAuth2 ")];
	char *url = NULL;
	enum podio_err rc;
	int attempt;

	memset(&r, 0, sizeof(r));
	memset(&e, 0, sizeof(e));
	memset(token, 0, sizeof(token));
	memset(auth, 0, sizeof(auth));
	if (body_out != NULL)
		*body_out = NULL;
	if (len_out != NULL)
		*len_out = 0;
	client_reset_last(c);
	if (method == NULL || (strcmp(method, "GET") != 0 &&
	    strcmp(method, "POST") != 0 && strcmp(method, "PUT") != 0 &&
	    strcmp(method, "DELETE") != 0))
		return client_fail(c, PODIO_ERR_INVALID,
		    "invalid argument: method must be GET, POST, PUT or "
		    "DELETE");
	if (!client_path_ok(path))
		return client_fail(c, PODIO_ERR_INVALID,
		    "invalid argument: the path must start with '/' and "
		    "hold no blanks or control characters");
	if ((url = malloc(strlen(c->api_url) + strlen(path) + 1)) == NULL)
		return client_fail(c, PODIO_ERR_NOMEM, "out of memory");
	strcpy(url, c->api_url);
	strcat(url, path);

	for (attempt = 0; attempt < 2; attempt++) {
		client_reset_last(c);
		if ((rc = client_token(c, token)) != PODIO_OK)
			goto fail;
		snprintf(auth, sizeof(auth), "OAuth2 %s", token);
		podio__http_response_free(&r);
		rc = podio__http_request(c->http, method, url, auth,
		    json_body != NULL ? "application/json" : NULL, json_body,
		    json_body != NULL ? strlen(json_body) : 0, &r);
		podio__wipe(auth, sizeof(auth));
		client_note_response(c, &r);
		if (rc != PODIO_OK) {
			rc = client_fail(c, rc, "%s: %s", podio_strerror(rc),
			    r.errbuf);
			goto fail;
		}
		podio__api_error_clear(&e);
		rc = podio__api_error_parse(r.status, r.body, r.body_len,
		    r.www_authenticate, r.retry_after, &e);
		if (rc == PODIO_OK)
			break;
		c->retry_after = e.retry_after;
		c->error = podio__strdup(e.error);
		c->error_description = podio__strdup(e.error_description);
		client_fail(c, rc, "%s", e.message);
		if (rc != PODIO_ERR_TOKEN_EXPIRED || attempt > 0)
			goto fail;
		podio__debug("podio: %s %s: token refused, refreshing and "
		    "sending again", method, path);
		podio__tokens_invalidate(c->tokens, c->cred, token);
		podio__wipe(token, sizeof(token));
	}

	if (body_out != NULL) {
		*body_out = r.body;
		r.body = NULL;
	}
	if (len_out != NULL)
		*len_out = r.body_len;
fail:
	podio__wipe(token, sizeof(token));
	podio__wipe(auth, sizeof(auth));
	podio__http_response_free(&r);
	podio__api_error_clear(&e);
	free(url);
	return rc;
}

/*
 * A raw authenticated call (see podio.h).  On success *body_out (if not
 * NULL) receives the answer text, which the caller frees.
 */
enum podio_err
podio_call(struct podio_client *client, const char *method, const char *path,
    const char *json_body, char **body_out)
{
	if (body_out != NULL)
		*body_out = NULL;
	if (client == NULL)
		return PODIO_ERR_INVALID;
	return client_request(client, method, path, json_body, body_out, NULL);
}

/* ----------------------------------------------------------------- JSON */

/*
 * Fails the call for an answer that api.h's readers refused: err and
 * their reason (why) with the HTTP status, e.g. "bad JSON: the answer is
 * not an object (HTTP 200)".
 */
static enum podio_err
client_bad_answer(struct podio_client *c, enum podio_err err, const char *why)
{
	if (err == PODIO_ERR_NOMEM)
		return client_fail(c, err, "out of memory");
	return client_fail(c, err, "%s: %s (HTTP %ld)", podio_strerror(err),
	    why, c->http_status);
}

/* Whether s is 1..max characters all from the set allowed. */
static int
client_word_ok(const char *s, size_t max, const char *allowed)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	n = strspn(s, allowed);
	return s[n] == '\0' && n <= max;
}

/* Whether s is 1..max bytes without control characters. */
static int
client_text_ok(const char *s, size_t max)
{
	size_t n;

	if (s == NULL || *s == '\0')
		return 0;
	for (n = 0; s[n] != '\0'; n++)
		if ((unsigned char)s[n] < 0x20 || s[n] == 0x7f || n >= max)
			return 0;
	return 1;
}

#define CLIENT_LOWER "abcdefghijklmnopqrstuvwxyz"

/* -------------------------------------------------------------- hooks */

/*
 * POST /hook/{ref_type}/{ref_id}/ with {"url": url, "type": type}.  The
 * body may hold a secret (the URL's secret=...) and is wiped after use.
 */
enum podio_err
podio_hook_create(struct podio_client *client, const char *ref_type,
    uint64_t ref_id, const char *url, const char *type, uint64_t *hook_id)
{
	cJSON *req = NULL;
	char *body = NULL, *text = NULL;
	char path[128], why[128];
	size_t len = 0;
	uint64_t id = 0;
	enum podio_err rc;

	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (hook_id != NULL)
		*hook_id = 0;
	if (!client_word_ok(ref_type, CLIENT_MAX_REF_TYPE, CLIENT_LOWER "_"))
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the reference type must be lower-case "
		    "letters and '_' (e.g. app, space)");
	if (ref_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the reference id must not be 0");
	if (!client_text_ok(url, CLIENT_MAX_HOOK_URL))
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the hook URL must be 1 to %d "
		    "characters without control characters",
		    CLIENT_MAX_HOOK_URL);
	if (!client_word_ok(type, CLIENT_MAX_EVENT_TYPE,
	    CLIENT_LOWER "_."))
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the event type must look like "
		    "item.create");

	rc = PODIO_ERR_NOMEM;
	if ((req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(req, "url", url) == NULL ||
	    cJSON_AddStringToObject(req, "type", type) == NULL ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		client_fail(client, rc, "out of memory");
		goto fail;
	}
	snprintf(path, sizeof(path), "/hook/%s/%" PRIu64 "/", ref_type,
	    ref_id);
	if ((rc = client_request(client, "POST", path, body, &text, &len)) !=
	    PODIO_OK)
		goto fail;
	if ((rc = podio__api_hook_id(text, len, &id, why, sizeof(why))) !=
	    PODIO_OK) {
		rc = client_bad_answer(client, rc, why);
		goto fail;
	}
	if (hook_id != NULL)
		*hook_id = id;
fail:
	cJSON_Delete(req);
	podio__free_secret(body);
	free(text);
	return rc;
}

/*
 * GET /hook/{ref_type}/{ref_id}/ (the trailing slash matters to Podio).
 * *hooks receives *n hooks the caller frees with podio_hooks_free();
 * *raw_json (if not NULL) the answer text, which the caller frees.
 */
enum podio_err
podio_hook_list(struct podio_client *client, const char *ref_type,
    uint64_t ref_id, struct podio_hook **hooks, size_t *n, char **raw_json)
{
	char *text = NULL;
	char path[128], why[128];
	size_t len = 0;
	enum podio_err rc;

	if (hooks != NULL)
		*hooks = NULL;
	if (n != NULL)
		*n = 0;
	if (raw_json != NULL)
		*raw_json = NULL;
	if (client == NULL || hooks == NULL || n == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (!client_word_ok(ref_type, CLIENT_MAX_REF_TYPE, CLIENT_LOWER "_"))
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the reference type must be lower-case "
		    "letters and '_' (e.g. app, space)");
	if (ref_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the reference id must not be 0");

	snprintf(path, sizeof(path), "/hook/%s/%" PRIu64 "/", ref_type,
	    ref_id);
	if ((rc = client_request(client, "GET", path, NULL, &text, &len)) !=
	    PODIO_OK)
		goto fail;
	if ((rc = podio__api_hooks(text, len, hooks, n, why, sizeof(why))) !=
	    PODIO_OK) {
		rc = client_bad_answer(client, rc, why);
		goto fail;
	}
	if (raw_json != NULL) {
		*raw_json = text;
		text = NULL;
	}
fail:
	free(text);
	return rc;
}

/* Frees an array from podio_hook_list().  Accepts NULL. */
void
podio_hooks_free(struct podio_hook *hooks, size_t n)
{
	size_t i;

	if (hooks == NULL)
		return;
	for (i = 0; i < n; i++) {
		free(hooks[i].status);
		free(hooks[i].type);
		free(hooks[i].url);
	}
	free(hooks);
}

/*
 * The common start of the calls on one hook: checks client and hook_id,
 * resets the last-call info and writes "/hook/{hook_id}SUFFIX" into path
 * (size n).  Returns PODIO_OK, or PODIO_ERR_INVALID (recorded on the
 * client when there is one).
 */
static enum podio_err
hook_path(struct podio_client *client, uint64_t hook_id, const char *suffix,
    char *path, size_t n)
{
	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (hook_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the hook id must not be 0");
	snprintf(path, n, "/hook/%" PRIu64 "%s", hook_id, suffix);
	return PODIO_OK;
}

/* POST /hook/{hook_id}/verify/request, no body: Podio sends hook.verify
 * to the hook's URL again. */
enum podio_err
podio_hook_verify(struct podio_client *client, uint64_t hook_id)
{
	char path[96];
	enum podio_err rc;

	if ((rc = hook_path(client, hook_id, "/verify/request", path,
	    sizeof(path))) != PODIO_OK)
		return rc;
	return client_request(client, "POST", path, NULL, NULL, NULL);
}

/* POST /hook/{hook_id}/verify/validate with the JSON {"code": code}. */
enum podio_err
podio_hook_validate(struct podio_client *client, uint64_t hook_id,
    const char *code)
{
	cJSON *req = NULL;
	char *body = NULL;
	char path[96];
	enum podio_err rc;

	if ((rc = hook_path(client, hook_id, "/verify/validate", path,
	    sizeof(path))) != PODIO_OK)
		return rc;
	if (!client_text_ok(code, CLIENT_MAX_CODE))
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the verify code must be 1 to %d "
		    "characters without control characters", CLIENT_MAX_CODE);
	if ((req = cJSON_CreateObject()) == NULL ||
	    cJSON_AddStringToObject(req, "code", code) == NULL ||
	    (body = cJSON_PrintUnformatted(req)) == NULL) {
		rc = client_fail(client, PODIO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	rc = client_request(client, "POST", path, body, NULL, NULL);
fail:
	cJSON_Delete(req);
	podio__free_secret(body);
	return rc;
}

/* DELETE /hook/{hook_id} */
enum podio_err
podio_hook_delete(struct podio_client *client, uint64_t hook_id)
{
	char path[96];
	enum podio_err rc;

	if ((rc = hook_path(client, hook_id, "", path, sizeof(path))) !=
	    PODIO_OK)
		return rc;
	return client_request(client, "DELETE", path, NULL, NULL, NULL);
}

/* -------------------------------------------------------------- items */

/*
 * GET /item/{item_id}?mark_as_viewed=0.  The answer must be a JSON object
 * (checked even when only the raw text is asked for).  On success
 * *raw_json (if not NULL) receives the text exactly as received and *item
 * (if not NULL) its parse; the caller frees them with free() and
 * cJSON_Delete().
 */
enum podio_err
podio_item_get(struct podio_client *client, uint64_t item_id,
    char **raw_json, struct cJSON **item)
{
	cJSON *ans = NULL;
	char *text = NULL;
	char path[96], why[128];
	size_t len = 0;
	enum podio_err rc;

	if (raw_json != NULL)
		*raw_json = NULL;
	if (item != NULL)
		*item = NULL;
	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (item_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the item id must not be 0");
	snprintf(path, sizeof(path), "/item/%" PRIu64 "?mark_as_viewed=0",
	    item_id);
	if ((rc = client_request(client, "GET", path, NULL, &text, &len)) !=
	    PODIO_OK)
		goto fail;
	if ((rc = podio__api_item(text, len, &ans, why, sizeof(why))) !=
	    PODIO_OK) {
		rc = client_bad_answer(client, rc, why);
		goto fail;
	}
	if (raw_json != NULL) {
		*raw_json = text;
		text = NULL;
	}
	if (item != NULL) {
		*item = ans;
		ans = NULL;
	}
	rc = PODIO_OK;
fail:
	cJSON_Delete(ans);
	free(text);
	return rc;
}

/*
 * POST /item/app/{app_id}/filter/ with {"filters": {"item_id": [ids]},
 * "limit": n}.  The request body is written by hand so that ids above
 * 2^53 go out exactly.  Each item of the answer is handed over as the
 * very bytes Podio sent (podio__api_filter()).  See podio.h.
 */
enum podio_err
podio_item_filter(struct podio_client *client, uint64_t app_id,
    const uint64_t *ids, size_t n, char **texts)
{
	struct podio__buf body = { NULL, 0, 0, 0 };
	char *text = NULL, path[96], why[160];
	size_t len = 0, i;
	int bad;
	enum podio_err rc;

	if (texts != NULL)
		for (i = 0; i < n; i++)
			texts[i] = NULL;
	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (ids == NULL || texts == NULL || n < 1 ||
	    n > PODIO_ITEM_FILTER_MAX)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: 1 to %d item ids are filtered at once",
		    PODIO_ITEM_FILTER_MAX);
	if (app_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: the app id must not be 0");
	for (i = 0; i < n; i++)
		if (ids[i] == 0)
			return client_fail(client, PODIO_ERR_INVALID,
			    "invalid argument: the item id must not be 0");

	bad = podio__buf_appendf(&body, "{\"filters\": {\"item_id\": [");
	for (i = 0; i < n && bad == 0; i++)
		bad = podio__buf_appendf(&body, "%s%" PRIu64,
		    i > 0 ? ", " : "", ids[i]);
	if (bad != 0 ||
	    podio__buf_appendf(&body, "]}, \"limit\": %zu}", n) != 0) {
		rc = client_fail(client, PODIO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	snprintf(path, sizeof(path), "/item/app/%" PRIu64 "/filter/", app_id);
	if ((rc = client_request(client, "POST", path, body.data, &text,
	    &len)) != PODIO_OK)
		goto fail;
	if ((rc = podio__api_filter(text, len, ids, n, texts, why,
	    sizeof(why))) != PODIO_OK)
		rc = client_bad_answer(client, rc, why);
fail:
	podio__buf_free(&body);
	free(text);
	return rc;
}

/* The listing of podio_item_changes(): the same filter endpoint, sorted
 * by the last edit, newest first.  See podio.h. */
enum podio_err
podio_item_changes(struct podio_client *client, uint64_t app_id,
    size_t limit, size_t offset, struct podio_item_change **out, size_t *n,
    long *total)
{
	char *text = NULL, path[96], body[160], why[160];
	size_t len = 0;
	long dummy;
	enum podio_err rc;

	*out = NULL;
	*n = 0;
	if (total == NULL)
		total = &dummy;
	*total = -1;
	if (client == NULL)
		return PODIO_ERR_INVALID;
	client_reset_last(client);
	if (limit < 1 || limit > PODIO_ITEM_FILTER_MAX || app_id == 0)
		return client_fail(client, PODIO_ERR_INVALID,
		    "invalid argument: 1 to %d items a call, of an app not 0",
		    PODIO_ITEM_FILTER_MAX);
	snprintf(body, sizeof(body), "{\"sort_by\": \"last_edit_on\", "
	    "\"sort_desc\": true, \"limit\": %zu, \"offset\": %zu}", limit,
	    offset);
	snprintf(path, sizeof(path), "/item/app/%" PRIu64 "/filter/", app_id);
	if ((rc = client_request(client, "POST", path, body, &text,
	    &len)) != PODIO_OK)
		goto fail;
	if ((rc = podio__api_changes(text, len, limit, out, n, total, why,
	    sizeof(why))) != PODIO_OK)
		rc = client_bad_answer(client, rc, why);
fail:
	free(text);
	return rc;
}

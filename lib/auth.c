/*
 * auth.c: the token store (struct podio_tokens, see podio.h and auth.h).
 *
 * One mutex guards everything.  podio__tokens_get() holds it while it
 * checks the token and, when needed, fetches a new one, so threads that
 * need a token at the same time wait for the first and reuse its result:
 * one token request per process, not one per thread.  Between processes
 * the token cache file and its lock play the same part (tokencache.c),
 * and between hosts, with a PostgreSQL spool (spool_url), the spool's
 * token table and its lock (spool.h): every host then uses the token one
 * of them asked for.
 *
 * Expiry is judged by the wall clock, since the cache file is shared by
 * processes that do not share a monotonic clock.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "auth.h"
#include "errors.h"
#include "http.h"
#include "log.h"
#include "spool.h"
#include "tokencache.h"
#include "util.h"

/* Lifetime assumed when the token answer names none (Podio: 8 hours). */
#define AUTH_DEFAULT_LIFETIME_S 28800
/* Longest lifetime believed: a bigger expires_in is capped to this. */
#define AUTH_MAX_LIFETIME_S (30L * 24 * 3600)
/* Longest token accepted from the token endpoint. */
#define AUTH_TOKEN_MAX 4096
/* Cap on the form body of a token request. */
#define AUTH_BODY_MAX (16 * 1024)
/* After the shared token store could not be opened, the next try. */
#define AUTH_SHARED_RETRY_MS 5000

enum auth_grant {
	GRANT_APP,
	GRANT_PASSWORD,
	GRANT_REFRESH
};

/* One credential and its tokens.  Each has its own mutex, cache file and
 * shared-store row, so the token requests of two apps do not wait for
 * each other. */
struct auth_cred {
	pthread_mutex_t lock;

	/* Credentials, copied from the configuration; wiped at free. */
	char *client_id;
	char *client_secret;
	int app_flow;          /* 1: app flow, 0: password flow */
	char *app_id;          /* app flow */
	uint64_t app;          /* app_id as a number */
	char *app_token;
	char *username;        /* password flow */
	char *password;

	char *cache_path;      /* NULL: no cache file */
	char *spool_url;       /* the PostgreSQL spool keeping the tokens
	                          of every host, or NULL */
	struct podio_spool *shared; /* its handle, opened on first use */
	int64_t shared_retry_ms;    /* not opened: the next try (mono) */
	long lock_timeout_ms;  /* the configured API timeout */

	/* The current token, NULL when none is held.  owner says which
	 * credential and API URL it belongs to. */
	char *access_token;
	char *refresh_token;
	int64_t refresh_from_ms;  /* the expiry of the access token that came
	                             with refresh_token: which is newer */
	char *owner;
	/* The password flow's user, as the token answer's "ref" named it
	 * (or a cache entry that kept it); 0 while unknown. */
	uint64_t self_user;
	int64_t expires_at_ms;
	int64_t refresh_at_ms;
	/* The last token reported refused, so that the cache file cannot hand
	 * it back before another process has replaced it. */
	char *refused_token;

	unsigned long requests;
	/* The last cache warning given, so a bad file is reported once per
	 * reason, not on every read. */
	char last_warning[256];
};

/* The store: every configured credential (podio_config_credential()
 * order). */
struct podio_tokens {
	struct auth_cred **creds;
	size_t n;
};

/* -------------------------------------------------------- creation, free */

/* A copy of the value of key, or NULL when unset or empty. */
static int
cfg_dup(const struct podio_config *cfg, const char *key, char **out)
{
	const char *v = podio_config_get(cfg, key);

	*out = NULL;
	if (v == NULL || v[0] == '\0')
		return 0;
	if ((*out = strdup(v)) == NULL)
		return -1;
	return 0;
}

/* Appends ", key" (or "key" first) to list when value is missing. */
static void
note_missing(char *list, size_t n, const char *key, const char *value)
{
	size_t len = strlen(list);

	if (value != NULL)
		return;
	snprintf(list + len, n - len, "%s%s", len > 0 ? ", " : "", key);
}

/* Wipes and frees one credential.  Accepts NULL. */
static void
cred_free(struct auth_cred *t)
{
	if (t == NULL)
		return;
	pthread_mutex_destroy(&t->lock);
	podio__free_secret(t->client_id);
	podio__free_secret(t->client_secret);
	podio__free_secret(t->app_id);
	podio__free_secret(t->app_token);
	podio__free_secret(t->username);
	podio__free_secret(t->password);
	free(t->cache_path);
	podio_spool_close(t->shared);
	podio__free_secret(t->spool_url);
	podio__free_secret(t->access_token);
	podio__free_secret(t->refresh_token);
	podio__free_secret(t->refused_token);
	free(t->owner);
	podio__wipe(t, sizeof(*t));
	free(t);
}

/*
 * A new credential c of cfg (the i-th: the first keeps token_cache as
 * its cache file, the others add ".app-ID" to it).  Returns NULL on out
 * of memory.
 */
static struct auth_cred *
cred_new(const struct podio_config *cfg, const struct podio_credential *c,
    size_t i)
{
	struct auth_cred *t;
	const char *v;
	char num[32];
	size_t n;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	if (pthread_mutex_init(&t->lock, NULL) != 0) {
		free(t);
		return NULL;
	}
	snprintf(num, sizeof(num), "%" PRIu64, c->app_id);
	t->app_flow = strcmp(c->flow, "app") == 0;
	t->app = c->app_id;
	if (cfg_dup(cfg, "client_id", &t->client_id) == -1 ||
	    cfg_dup(cfg, "client_secret", &t->client_secret) == -1 ||
	    (t->app_flow && ((t->app_id = strdup(num)) == NULL ||
	    (t->app_token = strdup(c->app_token)) == NULL)) ||
	    (!t->app_flow && (cfg_dup(cfg, "username", &t->username) == -1 ||
	    cfg_dup(cfg, "password", &t->password) == -1)))
		goto nomem;
	v = podio_config_get(cfg, "spool_url");
	if (v != NULL && podio_spool_is_url(v) &&
	    (t->spool_url = strdup(v)) == NULL)
		goto nomem;
	v = podio_config_get(cfg, "token_cache");
	if (v != NULL && v[0] != '\0') {
		n = strlen(v) + strlen(".app-") + strlen(num) + 1;
		if ((t->cache_path = malloc(n)) == NULL)
			goto nomem;
		if (i == 0)
			snprintf(t->cache_path, n, "%s", v);
		else
			snprintf(t->cache_path, n, "%s.app-%s", v, num);
	}
	t->lock_timeout_ms = (long)podio_config_get_ms(cfg, "timeout");
	if (t->lock_timeout_ms <= 0)
		t->lock_timeout_ms = 30000;
	return t;
nomem:
	cred_free(t);
	return NULL;
}

/*
 * Checks the credentials of cfg: client_id and client_secret, and the
 * app or password flow of the keys fully given or not at all when app
 * lines are there; no app given twice.  Returns 0, or -1 with a message
 * in err.
 */
static int
check_credentials(const struct podio_config *cfg, char *err, size_t errlen)
{
	struct podio_credential c, d;
	char miss_app[128] = "", miss_pw[128] = "", miss_key[64] = "";
	const char *id = podio_config_get(cfg, "app_id");
	const char *tok = podio_config_get(cfg, "app_token");
	const char *user = podio_config_get(cfg, "username");
	const char *pw = podio_config_get(cfg, "password");
	size_t i, k, lines = 0;

#define SET(v) ((v) != NULL && (v)[0] != '\0' ? (v) : NULL)
	note_missing(miss_key, sizeof(miss_key), "client_id",
	    SET(podio_config_get(cfg, "client_id")));
	note_missing(miss_key, sizeof(miss_key), "client_secret",
	    SET(podio_config_get(cfg, "client_secret")));
	memcpy(miss_app, miss_key, sizeof(miss_key));
	memcpy(miss_pw, miss_key, sizeof(miss_key));
	note_missing(miss_app, sizeof(miss_app), "app_id", SET(id));
	note_missing(miss_app, sizeof(miss_app), "app_token", SET(tok));
	note_missing(miss_pw, sizeof(miss_pw), "username", SET(user));
	note_missing(miss_pw, sizeof(miss_pw), "password", SET(pw));
	for (i = 0; podio_config_credential(cfg, i, &c); i++)
		lines += c.file != NULL;
	if (lines == 0) {
		if (miss_app[0] != '\0' && miss_pw[0] != '\0') {
			snprintf(err, errlen, "no complete Podio credentials: "
			    "the app flow lacks %s; the password flow lacks %s",
			    miss_app, miss_pw);
			return -1;
		}
		return 0;
	}
	if (miss_key[0] != '\0') {
		(void)podio_config_credential(cfg, i - lines, &c);
		snprintf(err, errlen, "%s:%d: app %" PRIu64 " needs %s (the "
		    "API key its token is used with)", c.file, c.line,
		    c.app_id, miss_key);
		return -1;
	}
	if ((SET(id) != NULL) != (SET(tok) != NULL) &&
	    (SET(user) == NULL || SET(pw) == NULL)) {
		snprintf(err, errlen, "app_id and app_token go together: "
		    "%s is not set", SET(id) != NULL ? "app_token" :
		    "app_id");
		return -1;
	}
	if ((SET(user) != NULL) != (SET(pw) != NULL) &&
	    (SET(id) == NULL || SET(tok) == NULL)) {
		snprintf(err, errlen, "username and password go together: "
		    "%s is not set", SET(user) != NULL ? "password" :
		    "username");
		return -1;
	}
#undef SET
	for (i = 0; podio_config_credential(cfg, i, &c); i++)
		for (k = 0; k < i && c.app_id != 0; k++)
			if (podio_config_credential(cfg, k, &d) &&
			    d.app_id == c.app_id) {
				snprintf(err, errlen, "%s:%d: app %" PRIu64 " is "
				    "given by app_id too: keep one", c.file,
				    c.line, c.app_id);
				return -1;
			}
	return 0;
}

enum podio_err
podio_tokens_new(const struct podio_config *cfg, struct podio_tokens **out,
    char *err, size_t errlen)
{
	struct podio_tokens *t = NULL;
	struct podio_credential c;
	size_t n;

	if (out == NULL || cfg == NULL) {
		snprintf(err, errlen, "podio_tokens_new: no configuration");
		return PODIO_ERR_INVALID;
	}
	*out = NULL;
	if (check_credentials(cfg, err, errlen) != 0)
		return PODIO_ERR_CONFIG;
	for (n = 0; podio_config_credential(cfg, n, &c); n++)
		;
	if ((t = calloc(1, sizeof(*t))) == NULL ||
	    (t->creds = calloc(n, sizeof(*t->creds))) == NULL)
		goto nomem;
	for (t->n = 0; t->n < n; t->n++)
		if (!podio_config_credential(cfg, t->n, &c) ||
		    (t->creds[t->n] = cred_new(cfg, &c, t->n)) == NULL)
			goto nomem;
	*out = t;
	return PODIO_OK;
nomem:
	podio_tokens_free(t);
	snprintf(err, errlen, "out of memory");
	return PODIO_ERR_NOMEM;
}

void
podio_tokens_free(struct podio_tokens *t)
{
	size_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->n; i++)
		cred_free(t->creds[i]);
	free(t->creds);
	free(t);
}

unsigned long
podio_tokens_requests(struct podio_tokens *t)
{
	unsigned long n = 0;
	size_t i;

	if (t == NULL)
		return 0;
	for (i = 0; i < t->n; i++) {
		pthread_mutex_lock(&t->creds[i]->lock);
		n += t->creds[i]->requests;
		pthread_mutex_unlock(&t->creds[i]->lock);
	}
	return n;
}

/* See podio.h. */
size_t
podio_tokens_count(const struct podio_tokens *t)
{
	return t != NULL ? t->n : 0;
}

/* See podio.h. */
int
podio_tokens_identity(const struct podio_tokens *t, size_t i,
    const char **flow, uint64_t *app_id, const char **username)
{
	if (t == NULL || i >= t->n)
		return -1;
	if (flow != NULL)
		*flow = t->creds[i]->app_flow ? "app" : "password";
	if (app_id != NULL)
		*app_id = t->creds[i]->app;
	if (username != NULL)
		*username = t->creds[i]->username;
	return 0;
}

/* See podio.h. */
long
podio_tokens_for_app(const struct podio_tokens *t, uint64_t app_id)
{
	size_t i;

	if (t == NULL)
		return -1;
	for (i = 0; i < t->n && app_id != 0; i++)
		if (t->creds[i]->app_flow && t->creds[i]->app == app_id)
			return (long)i;
	for (i = 0; i < t->n; i++)
		if (!t->creds[i]->app_flow)
			return (long)i;
	return -1;
}

/* ------------------------------------------------------------- helpers */

/*
 * The owner key of the tokens for api_url: client_id, the API URL and the
 * app or user, never a secret.  The caller frees it; NULL on out of
 * memory.
 */
static char *
owner_key(const struct auth_cred *t, const char *api_url)
{
	struct podio__buf b = { NULL, 0, 0, 4096 };

	if (podio__buf_appendf(&b, "%s %s %s:%s", t->client_id, api_url,
	    t->app_flow ? "app" : "user",
	    t->app_flow ? t->app_id : t->username) != 0) {
		podio__buf_free(&b);
		return NULL;
	}
	return podio__buf_steal(&b);
}

/* Forgets the access token (the refresh token stays). */
static void
drop_access(struct auth_cred *t)
{
	podio__free_secret(t->access_token);
	t->access_token = NULL;
	t->expires_at_ms = t->refresh_at_ms = 0;
}

/* Whether the held token belongs to owner and is not due for renewal. */
static int
token_fresh(const struct auth_cred *t, const char *owner)
{
	return t->access_token != NULL && t->owner != NULL &&
	    strcmp(t->owner, owner) == 0 &&
	    podio__wall_ms() < t->refresh_at_ms;
}

/* Makes owner the owner of the held tokens, forgetting tokens of another
 * owner (another API URL).  Returns 0 or -1 on out of memory. */
static int
set_owner(struct auth_cred *t, const char *owner)
{
	char *copy;

	if (t->owner != NULL && strcmp(t->owner, owner) == 0)
		return 0;
	if ((copy = strdup(owner)) == NULL)
		return -1;
	drop_access(t);
	podio__free_secret(t->refresh_token);
	t->refresh_token = NULL;
	t->self_user = 0;
	free(t->owner);
	t->owner = copy;
	return 0;
}

/* Wipes and frees a parsed tree holding tokens. */
static void
json_free_wiped(cJSON *j)
{
	cJSON *c;

	if (j == NULL)
		return;
	for (c = j->child; c != NULL; c = c->next)
		if (c->valuestring != NULL)
			podio__wipe(c->valuestring, strlen(c->valuestring));
	cJSON_Delete(j);
}

/* Takes c's tokens (then cleared): a refresh token, and an access token
 * that is fresh and not the one refused.  from names the store. */
static void
adopt_entry(struct auth_cred *t, struct podio__cached_token *c,
    const char *from)
{
	/* A refresh token is good once: an older one than this store's
	 * (a store that could not be written after a refresh, say while
	 * the database was away) would only be refused. */
	if (c->refresh_token != NULL && (t->refresh_token == NULL ||
	    c->expires_at_ms >= t->refresh_from_ms)) {
		podio__free_secret(t->refresh_token);
		t->refresh_token = c->refresh_token;
		c->refresh_token = NULL;
		t->refresh_from_ms = c->expires_at_ms;
	}
	if (c->access_token != NULL && c->access_token[0] != '\0' &&
	    (t->refused_token == NULL ||
	    strcmp(c->access_token, t->refused_token) != 0) &&
	    podio__wall_ms() < c->refresh_at_ms) {
		podio__free_secret(t->access_token);
		t->access_token = c->access_token;
		c->access_token = NULL;
		t->expires_at_ms = c->expires_at_ms;
		t->refresh_at_ms = c->refresh_at_ms;
		podio__debug("using the access token from %s", from);
	}
	if (c->user_id != 0)
		t->self_user = c->user_id;
	podio__cached_token_clear(c);
}

/*
 * The spool that keeps the tokens of every host, opened on first use;
 * NULL when none is configured or it cannot be opened now (warned once
 * a reason; tried again after AUTH_SHARED_RETRY_MS).  Called with the
 * mutex held.
 */
static struct podio_spool *
shared_store(struct auth_cred *t)
{
	char err[512];

	if (t->spool_url == NULL)
		return NULL;
	if (t->shared != NULL)
		return t->shared;
	if (podio__now_ms() < t->shared_retry_ms)
		return NULL;
	if (podio_spool_open(t->spool_url, &t->shared, err, sizeof(err)) ==
	    PODIO_OK && podio__spool_shares_tokens(t->shared))
		return t->shared;
	podio_spool_close(t->shared);
	t->shared = NULL;
	t->shared_retry_ms = podio__now_ms() + AUTH_SHARED_RETRY_MS;
	if (strcmp(err, t->last_warning) != 0) {
		podio__warn("the tokens shared by every host cannot be read "
		    "(%s): this process asks for its own", err);
		podio__strlcpy(t->last_warning, err, sizeof(t->last_warning));
	}
	return NULL;
}

/* Takes what the shared store holds for owner, if anything.  Called with
 * the mutex held. */
static void
adopt_shared(struct auth_cred *t, struct podio_spool *sp,
    const char *owner)
{
	struct podio__cached_token c = { NULL, NULL, 0, 0, 0 };
	char why[256], *blob = NULL;
	size_t len = 0;

	if (podio__spool_token_get(sp, owner, &blob, &len) != PODIO_OK)
		return;
	if (podio__tokencache_parse(blob, len, owner, &c, why,
	    sizeof(why)) == PODIO_OK)
		adopt_entry(t, &c, "the spool's token store");
	else
		podio__warn("the spool's token for this credential is ignored: "
		    "%s", why);
	podio__wipe(blob, len);
	free(blob);
}

/* Saves the held tokens in the shared store.  Called with the mutex
 * held. */
static void
save_shared(struct auth_cred *t, struct podio_spool *sp)
{
	struct podio__cached_token c;
	char *text;

	c.access_token = t->access_token;
	c.refresh_token = t->refresh_token;
	c.expires_at_ms = t->expires_at_ms;
	c.refresh_at_ms = t->refresh_at_ms;
	c.user_id = t->self_user;
	if ((text = podio__tokencache_text(t->owner, &c)) == NULL)
		return;
	(void)podio__spool_token_put(sp, t->owner, text, strlen(text));
	podio__wipe(text, strlen(text));
	free(text);
}

/*
 * Removes token from the shared store if it still holds it, as
 * podio__tokencache_drop() does for the file: without waiting for the
 * lock (a host holding it replaces the token anyway).
 */
static void
drop_shared(struct auth_cred *t, struct podio_spool *sp,
    const char *token)
{
	struct podio__cached_token c = { NULL, NULL, 0, 0, 0 };
	char why[256], *blob = NULL;
	size_t len = 0;

	if (podio__spool_token_lock(sp, t->owner, 0) != PODIO_OK)
		return;
	if (podio__spool_token_get(sp, t->owner, &blob, &len) == PODIO_OK &&
	    podio__tokencache_parse(blob, len, t->owner, &c, why,
	    sizeof(why)) == PODIO_OK && c.access_token != NULL &&
	    strcmp(c.access_token, token) == 0) {
		podio__free_secret(c.access_token);
		c.access_token = NULL;
		c.expires_at_ms = c.refresh_at_ms = 0;
		podio__wipe(blob, len);
		free(blob);
		blob = podio__tokencache_text(t->owner, &c);
		if (blob != NULL) {
			len = strlen(blob);
			(void)podio__spool_token_put(sp, t->owner, blob, len);
		}
	}
	if (blob != NULL) {
		podio__wipe(blob, len);
		free(blob);
	}
	podio__cached_token_clear(&c);
	podio__spool_token_unlock(sp, t->owner);
}

/*
 * Takes what the cache file holds for owner, if anything: a fresh access
 * token and/or a refresh token.  A token this process was told is
 * refused is not taken back.  Warns once per reason about an ignored
 * file.  Called with the mutex held.
 */
static void
adopt_cache(struct auth_cred *t, const char *owner)
{
	struct podio__cached_token c = { NULL, NULL, 0, 0, 0 };
	char why[256];
	enum podio_err rc;

	rc = podio__tokencache_load(t->cache_path, owner, &c, why,
	    sizeof(why));
	if (rc == PODIO_ERR_NOT_FOUND)
		return;
	if (rc != PODIO_OK) {
		if (strcmp(why, t->last_warning) != 0) {
			podio__warn("token cache %s ignored: %s", t->cache_path,
			    why);
			podio__strlcpy(t->last_warning, why,
			    sizeof(t->last_warning));
		}
		return;
	}
	adopt_entry(t, &c, t->cache_path);
}

/* Saves the held tokens in the cache file.  Called with the mutex held. */
static void
save_cache(struct auth_cred *t)
{
	struct podio__cached_token c;

	c.access_token = t->access_token;
	c.refresh_token = t->refresh_token;
	c.expires_at_ms = t->expires_at_ms;
	c.refresh_at_ms = t->refresh_at_ms;
	c.user_id = t->self_user;
	(void)podio__tokencache_write(t->cache_path, t->owner, &c);
}

/* "app 1234" or "user NAME", for messages. */
static void
who(const struct auth_cred *t, char *buf, size_t n)
{
	if (t->app_flow)
		snprintf(buf, n, "app %s", t->app_id);
	else
		snprintf(buf, n, "user %s", t->username);
}

/* --------------------------------------------------------- token request */

/* Appends "&name=escaped(value)" (no '&' when first); 0 or -1. */
static int
form_add(struct podio__buf *b, struct podio__http *http, const char *name,
    const char *value)
{
	char *esc;
	int r;

	if ((esc = podio__http_escape(http, value)) == NULL)
		return -1;
	r = podio__buf_appendf(b, "%s%s=%s", b->len > 0 ? "&" : "", name,
	    esc);
	podio__free_secret(esc);
	return r == 0 ? 0 : -1;
}

/* Builds the form body of a token request; the caller frees it with
 * podio__buf_free() (which wipes it).  0 or -1 on out of memory. */
static int
form_body(const struct auth_cred *t, struct podio__http *http,
    enum auth_grant grant, struct podio__buf *b)
{
	int r;

	r = form_add(b, http, "client_id", t->client_id) ||
	    form_add(b, http, "client_secret", t->client_secret);
	switch (grant) {
	case GRANT_APP:
		r = r || form_add(b, http, "grant_type", "app") ||
		    form_add(b, http, "app_id", t->app_id) ||
		    form_add(b, http, "app_token", t->app_token);
		break;
	case GRANT_PASSWORD:
		r = r || form_add(b, http, "grant_type", "password") ||
		    form_add(b, http, "username", t->username) ||
		    form_add(b, http, "password", t->password);
		break;
	case GRANT_REFRESH:
		r = r || form_add(b, http, "grant_type", "refresh_token") ||
		    form_add(b, http, "refresh_token", t->refresh_token);
		break;
	}
	return r ? -1 : 0;
}

/* Takes a token answer for credential t (see
 * podio__tokens_take_answer()).  Called with t's mutex held (or before
 * any thread can see t). */
static enum podio_err
cred_take_answer(struct auth_cred *t, const char *body, int64_t started,
    char *err, size_t errlen)
{
	enum podio_err rc = PODIO_ERR_BAD_JSON;
	cJSON *j = NULL;
	const cJSON *a, *r, *e, *f;
	const char *end = NULL;
	char *access = NULL, *refresh = NULL;
	uint64_t user = 0, self_user = 0;
	double life_s = AUTH_DEFAULT_LIFETIME_S;
	int64_t life_ms;

	j = cJSON_ParseWithOpts(body, &end, 1);
	a = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	if (!cJSON_IsObject(j) || !cJSON_IsString(a) ||
	    a->valuestring == NULL || a->valuestring[0] == '\0' ||
	    strlen(a->valuestring) > AUTH_TOKEN_MAX) {
		snprintf(err, errlen, "the token endpoint answered without a "
		    "usable access_token");
		goto fail;
	}
	r = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
	if (cJSON_IsString(r) && r->valuestring != NULL &&
	    r->valuestring[0] != '\0' &&
	    strlen(r->valuestring) <= AUTH_TOKEN_MAX &&
	    (refresh = strdup(r->valuestring)) == NULL)
		goto nomem;
	/* Who the tokens act as: an answer without it (a refresh, say)
	 * keeps what was known. */
	f = cJSON_GetObjectItemCaseSensitive(j, "ref");
	r = cJSON_GetObjectItemCaseSensitive(f, "type");
	if (cJSON_IsString(r) && r->valuestring != NULL &&
	    strcmp(r->valuestring, "user") == 0 &&
	    podio__api_u64(cJSON_GetObjectItemCaseSensitive(f, "id"),
	    &user) == 0 && user != 0)
		self_user = user;
	e = cJSON_GetObjectItemCaseSensitive(j, "expires_in");
	if (cJSON_IsNumber(e) && e->valuedouble >= 1)
		life_s = e->valuedouble < AUTH_MAX_LIFETIME_S ?
		    e->valuedouble : AUTH_MAX_LIFETIME_S;
	if ((access = strdup(a->valuestring)) == NULL)
		goto nomem;

	podio__free_secret(t->access_token);
	t->access_token = access;
	access = NULL;
	if (self_user != 0)
		t->self_user = self_user;
	if (refresh != NULL) {
		podio__free_secret(t->refresh_token);
		t->refresh_token = refresh;
		refresh = NULL;
	}
	life_ms = (int64_t)(life_s * 1000);
	t->expires_at_ms = started + life_ms;
	if (t->refresh_token != NULL)
		t->refresh_from_ms = t->expires_at_ms;
	t->refresh_at_ms = t->expires_at_ms -
	    (life_ms / 10 < PODIO__TOKEN_MARGIN_MS ? life_ms / 10 :
	    PODIO__TOKEN_MARGIN_MS);
	rc = PODIO_OK;
	goto fail;
nomem:
	rc = PODIO_ERR_NOMEM;
	snprintf(err, errlen, "out of memory");
fail:
	podio__free_secret(access);
	podio__free_secret(refresh);
	json_free_wiped(j);
	return rc;
}

/*
 * Sends one token request with the given grant to api_url and, on
 * success, holds the new tokens.  Returns PODIO_OK; PODIO_ERR_AUTH when
 * the credentials (or the refresh token) were refused;
 * PODIO_ERR_RATE_LIMITED with *retry_after; a transport error; or
 * another error from the answer.  Messages go to err, without secrets.
 * Called with the mutex held.
 */
static enum podio_err
token_request(struct auth_cred *t, struct podio__http *http,
    const char *api_url, enum auth_grant grant, long *retry_after,
    char *err, size_t errlen)
{
	struct podio__buf body = { NULL, 0, 0, AUTH_BODY_MAX };
	struct podio__buf url = { NULL, 0, 0, 4096 };
	struct podio__http_response r;
	struct podio__api_error e;
	enum podio_err rc;
	char whom[160];
	size_t ulen;
	int64_t started;
	int have_e = 0;

	memset(&r, 0, sizeof(r));
	memset(&e, 0, sizeof(e));
	ulen = strlen(api_url);
	while (ulen > 0 && api_url[ulen - 1] == '/')
		ulen--;
	if (podio__buf_appendf(&url, "%.*s/oauth/token", (int)ulen,
	    api_url) != 0 || form_body(t, http, grant, &body) != 0) {
		rc = PODIO_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}

	t->requests++;
	started = podio__wall_ms();
	podio__debug("requesting an access token (%s grant) from %s",
	    grant == GRANT_APP ? "app" : grant == GRANT_PASSWORD ?
	    "password" : "refresh_token", url.data);
	rc = podio__http_request(http, "POST", url.data, NULL,
	    "application/x-www-form-urlencoded", body.data, body.len, &r);
	podio__buf_free(&body);
	if (rc != PODIO_OK) {
		snprintf(err, errlen, "cannot get an access token from %s: "
		    "%s%s%s", url.data, podio_strerror(rc),
		    r.errbuf[0] != '\0' ? ": " : "", r.errbuf);
		goto fail;
	}
	if (r.status >= 200 && r.status < 300) {
		rc = cred_take_answer(t, r.body != NULL ? r.body : "",
		    started, err, errlen);
		goto fail;
	}

	rc = podio__api_error_parse(r.status, r.body, r.body_len,
	    r.www_authenticate, r.retry_after, &e);
	have_e = 1;
	who(t, whom, sizeof(whom));
	if (rc == PODIO_ERR_RATE_LIMITED) {
		if (retry_after != NULL)
			*retry_after = e.retry_after;
		snprintf(err, errlen, "the Podio token endpoint is rate "
		    "limited (HTTP %ld)%s%s", r.status,
		    e.error_description != NULL ? ": " : "",
		    e.error_description != NULL ? e.error_description : "");
	} else if (r.status == 401 || rc == PODIO_ERR_AUTH ||
	    (r.status == 400 && e.error != NULL &&
	    (strcmp(e.error, "invalid_client") == 0 ||
	    strcmp(e.error, "unauthorized_client") == 0 ||
	    strcmp(e.error, "invalid_grant") == 0))) {
		rc = PODIO_ERR_AUTH;
		if (grant == GRANT_REFRESH)
			snprintf(err, errlen, "Podio refused the refresh token "
			    "for client_id '%s' (%s): %s: %s", t->client_id,
			    whom, e.error != NULL ? e.error : "HTTP error",
			    e.error_description != NULL ?
			    e.error_description : "no description");
		else
			snprintf(err, errlen, "Podio refused the credentials "
			    "for client_id '%s' (%s): %s: %s", t->client_id,
			    whom, e.error != NULL ? e.error : "HTTP error",
			    e.error_description != NULL ?
			    e.error_description : "no description");
	} else {
		if (rc == PODIO_OK)
			rc = PODIO_ERR_HTTP;
		snprintf(err, errlen, "the Podio token endpoint answered "
		    "HTTP %ld: %s", r.status, e.message);
	}
fail:
	if (have_e)
		podio__api_error_clear(&e);
	if (r.body != NULL)
		podio__wipe(r.body, r.body_len);
	podio__http_response_free(&r);
	podio__buf_free(&body);
	podio__buf_free(&url);
	return rc;
}

/*
 * Gets new tokens from the endpoint: the refresh grant when a refresh
 * token is held, falling back once to the app or password grant when it
 * is refused; else that primary grant.  *dropped_refresh is set to 1
 * when the refresh token was refused and forgotten.  Called with the
 * mutex held.
 */
static enum podio_err
fetch(struct auth_cred *t, struct podio__http *http, const char *api_url,
    long *retry_after, int *dropped_refresh, char *err, size_t errlen)
{
	enum podio_err rc;

	if (t->refresh_token != NULL) {
		rc = token_request(t, http, api_url, GRANT_REFRESH,
		    retry_after, err, errlen);
		if (rc != PODIO_ERR_AUTH)
			return rc;
		podio__info("%s; authenticating again", err);
		podio__free_secret(t->refresh_token);
		t->refresh_token = NULL;
		*dropped_refresh = 1;
	}
	rc = token_request(t, http, api_url,
	    t->app_flow ? GRANT_APP : GRANT_PASSWORD, retry_after, err,
	    errlen);
	if (rc == PODIO_OK)
		podio__debug("obtained a new Podio access token for client_id "
		    "'%s' (%s %s)", t->client_id,
		    t->app_flow ? "app" : "user",
		    t->app_flow ? t->app_id : t->username);
	return rc;
}

/* Copies the held token out; PODIO_ERR_INVALID when it does not fit. */
static enum podio_err
copy_token(const struct auth_cred *t, char *token, size_t tokenlen,
    char *err, size_t errlen)
{
	size_t n = strlen(t->access_token);

	if (n >= tokenlen) {
		snprintf(err, errlen, "the access token (%zu bytes) does not "
		    "fit the caller's buffer", n);
		return PODIO_ERR_INVALID;
	}
	memcpy(token, t->access_token, n + 1);
	return PODIO_OK;
}

/* See auth.h. */
enum podio_err
podio__tokens_take_answer(struct podio_tokens *tokens, const char *body,
    int64_t started, char *err, size_t errlen)
{
	if (tokens == NULL || tokens->n == 0) {
		snprintf(err, errlen, "no credential");
		return PODIO_ERR_INVALID;
	}
	return cred_take_answer(tokens->creds[0], body, started, err, errlen);
}

enum podio_err
podio__tokens_get(struct podio_tokens *tokens, size_t cred,
    struct podio__http *http, const char *api_url, char *token,
    size_t tokenlen, long *retry_after, char *err, size_t errlen)
{
	struct auth_cred *t;
	enum podio_err rc;
	struct podio_spool *shared = NULL;
	char *owner = NULL;
	int lockfd = -1, dropped_refresh = 0, locked = 0;

	if (retry_after != NULL)
		*retry_after = -1;
	if (errlen > 0)
		err[0] = '\0';
	if (tokens == NULL || cred >= tokens->n || http == NULL ||
	    api_url == NULL || token == NULL || tokenlen == 0) {
		snprintf(err, errlen, "podio__tokens_get: invalid argument");
		return PODIO_ERR_INVALID;
	}
	t = tokens->creds[cred];
	pthread_mutex_lock(&t->lock);
	if ((owner = owner_key(t, api_url)) == NULL ||
	    set_owner(t, owner) == -1) {
		rc = PODIO_ERR_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (token_fresh(t, owner))
		goto done;
	drop_access(t);

	if ((shared = shared_store(t)) != NULL) {
		/* Another host may have asked for a token already, or does
		 * so while this one waits for the lock. */
		adopt_shared(t, shared, owner);
		if (token_fresh(t, owner))
			goto done;
		locked = podio__spool_token_lock(shared, owner,
		    t->lock_timeout_ms) == PODIO_OK;
		adopt_shared(t, shared, owner);
		if (token_fresh(t, owner))
			goto done;
	} else if (t->cache_path != NULL) {
		/* Another process may have fetched a token already. */
		adopt_cache(t, owner);
		if (token_fresh(t, owner))
			goto done;
		lockfd = podio__tokencache_lock(t->cache_path,
		    t->lock_timeout_ms);
		/* ... or did so while we waited for the lock. */
		adopt_cache(t, owner);
		if (token_fresh(t, owner))
			goto done;
	}

	rc = fetch(t, http, api_url, retry_after, &dropped_refresh, err,
	    errlen);
	/* Save new tokens; after a failure, still forget a refused refresh
	 * token in the file, so other processes do not try it again. */
	if (shared != NULL && (rc == PODIO_OK || dropped_refresh))
		save_shared(t, shared);
	else if (t->cache_path != NULL && (rc == PODIO_OK || dropped_refresh))
		save_cache(t);
	if (rc != PODIO_OK)
		goto fail;
done:
	rc = copy_token(t, token, tokenlen, err, errlen);
fail:
	if (locked)
		podio__spool_token_unlock(shared, owner);
	podio__tokencache_unlock(lockfd);
	pthread_mutex_unlock(&t->lock);
	free(owner);
	return rc;
}

void
podio__tokens_invalidate(struct podio_tokens *tokens, size_t cred,
    const char *token)
{
	struct auth_cred *t;

	if (tokens == NULL || cred >= tokens->n || token == NULL)
		return;
	t = tokens->creds[cred];
	pthread_mutex_lock(&t->lock);
	if (t->access_token != NULL && strcmp(t->access_token, token) == 0) {
		podio__free_secret(t->refused_token);
		t->refused_token = t->access_token;
		t->access_token = NULL;
		drop_access(t);
		if (t->owner != NULL && shared_store(t) != NULL)
			drop_shared(t, t->shared, token);
		else if (t->cache_path != NULL && t->owner != NULL)
			podio__tokencache_drop(t->cache_path, t->owner, token);
	}
	pthread_mutex_unlock(&t->lock);
}

/* See auth.h. */
enum podio_err
podio__tokens_self(struct podio_tokens *t, size_t i, const char **type,
    uint64_t *id)
{
	struct auth_cred *c;
	enum podio_err rc = PODIO_ERR_NOT_FOUND;

	if (t == NULL || i >= t->n)
		return PODIO_ERR_INVALID;
	c = t->creds[i];
	pthread_mutex_lock(&c->lock);
	if (c->app_flow) {
		if (c->app != 0) {
			*type = "app";
			*id = c->app;
			rc = PODIO_OK;
		}
	} else if (c->self_user != 0) {
		*type = "user";
		*id = c->self_user;
		rc = PODIO_OK;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/*
 * podio.h: the public interface of libpodio, the Podio API client and
 * webhook library of podio-webhook.
 *
 * Conventions:
 *  - Every function that can fail returns an enum podio_err (0 = success).
 *  - Handles are opaque; each *_new has a *_free that accepts NULL.
 *  - Ownership is stated at each declaration.  Strings returned "borrowed"
 *    stay valid until the next call on the same handle or its free.
 *  - No global mutable state besides the log level and log target: one
 *    struct podio_client per thread is safe; struct podio_tokens is shared
 *    by all clients of a process and is thread-safe.
 *  - The caller must call curl_global_init() once before any thread starts
 *    (podio_global_init() does that; built with --enable-lazy-libcurl,
 *    libcurl is loaded and initialised at the first request instead).
 */
#ifndef PODIO_H
#define PODIO_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

struct cJSON;

/* ------------------------------------------------------------------ errors */

enum podio_err {
	PODIO_OK = 0,
	PODIO_ERR_NOMEM,         /* out of memory */
	PODIO_ERR_INVALID,       /* invalid argument from the caller */
	PODIO_ERR_CONFIG,        /* configuration missing or malformed */
	PODIO_ERR_IO,            /* local file or system call failed */
	PODIO_ERR_AUTH,          /* credentials refused (400 invalid_grant,
	                            401 on the token endpoint, unknown client) */
	PODIO_ERR_TOKEN_EXPIRED, /* 401 expired_token/invalid_token even after
	                            one refresh and replay */
	PODIO_ERR_UNAUTHORIZED,  /* 401 for another reason */
	PODIO_ERR_BAD_REQUEST,   /* 400 */
	PODIO_ERR_FORBIDDEN,     /* 403 */
	PODIO_ERR_NOT_FOUND,     /* 404 */
	PODIO_ERR_CONFLICT,      /* 409 */
	PODIO_ERR_GONE,          /* 410 */
	PODIO_ERR_RATE_LIMITED,  /* 420 (or 429): see podio_client_ratelimit() */
	PODIO_ERR_SERVER,        /* 500 */
	PODIO_ERR_UNAVAILABLE,   /* 502, 503, 504 */
	PODIO_ERR_HTTP,          /* any other unexpected HTTP status */
	PODIO_ERR_BAD_JSON,      /* the answer is not the JSON we expect */
	PODIO_ERR_TOO_LARGE,     /* the answer exceeds the response size cap */
	PODIO_ERR_TRANSPORT,     /* connection refused/reset, DNS failure */
	PODIO_ERR_TIMEOUT,       /* connect or total timeout */
	PODIO_ERR_TLS            /* TLS handshake or certificate failure */
};

/* A static English description of err; never NULL. */
const char *podio_strerror(enum podio_err err);

/*
 * Whether err means Podio could not be reached at all (transport, timeout,
 * TLS), as opposed to Podio answering with an error: 1 or 0.
 */
int podio_err_is_transport(enum podio_err err);

/* Calls curl_global_init() (with --enable-lazy-libcurl: nothing, see
 * above); call once from main() before threads start. */
enum podio_err podio_global_init(void);
void podio_global_cleanup(void);

/* The library version string, "X.Y.Z"; static. */
const char *podio_version(void);

/* ------------------------------------------------------------------ logging */

enum podio_log_level {
	PODIO_LOG_ERROR = 0,
	PODIO_LOG_WARN,
	PODIO_LOG_INFO,
	PODIO_LOG_DEBUG
};

/*
 * Program-wide log settings (the one piece of global state besides signal
 * flags).  The default is PODIO_LOG_INFO to stderr.  Messages never contain
 * secrets: callers pass only non-secret data.
 */
void podio_log_set_level(enum podio_log_level level);
enum podio_log_level podio_log_get_level(void);
/* target: "stderr", "syslog" or "file:PATH".  Returns PODIO_ERR_INVALID on
 * an unknown target, PODIO_ERR_IO if the file cannot be opened. */
enum podio_err podio_log_set_target(const char *target);
/* Parses "error", "warn", "info", "debug"; -1 if unknown. */
int podio_log_level_parse(const char *name);
void podio_log(enum podio_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* ------------------------------------------------------------ configuration */

/*
 * A configuration: typed keys (see podio_config_key_name()) plus ordered
 * rule lines ("on PATTERN = COMMAND ...", "log PATTERN = FILE") kept for the
 * handler.  Sources are applied in order of precedence by the caller:
 * defaults (podio_config_new) < file < environment < command-line flags;
 * each later podio_config_set() replaces an earlier value.
 */
struct podio_config;

/* A new configuration holding the defaults; NULL on out of memory.
 * The caller frees it with podio_config_free(). */
struct podio_config *podio_config_new(void);
/* Frees cfg, wiping secret values first.  Accepts NULL. */
void podio_config_free(struct podio_config *cfg);

/*
 * Reads the file at path.  Lines are "key = value", blank, or comments
 * starting with '#' (after optional white space); a '#' inside a value is
 * part of the value.  An unknown key, a key given twice in the file, a
 * malformed line or a bad value fails with PODIO_ERR_CONFIG and a message
 * "PATH:LINE: reason" in err (never containing a secret value).  A file
 * that cannot be opened fails with PODIO_ERR_IO.
 */
enum podio_err podio_config_load_file(struct podio_config *cfg,
    const char *path, char *err, size_t errlen);

/*
 * Applies every environment variable PODIO_<KEY> (key in upper case) found
 * in envp (NULL-terminated, as environ).  Unknown PODIO_* variables are
 * ignored.  A bad value fails with PODIO_ERR_CONFIG naming the variable.
 */
enum podio_err podio_config_load_env(struct podio_config *cfg,
    char *const *envp, char *err, size_t errlen);

/* Sets one key from its text form, validating it.  source names where the
 * value came from for messages (e.g. "--timeout"). */
enum podio_err podio_config_set(struct podio_config *cfg, const char *key,
    const char *value, const char *source, char *err, size_t errlen);

/*
 * Resolves the path of the configuration file: explicit (from -c, may be
 * NULL), else $PODIO_WEBHOOK_CONFIG, else the compiled-in default.
 * *explicit_out is set to 1 when the path was named by -c or the
 * environment (then it must exist).  Returns a borrowed string.
 */
const char *podio_config_path(const char *explicit_path, int *explicit_out);

/* The value of a key as text, or NULL if unset; borrowed. */
const char *podio_config_get(const struct podio_config *cfg, const char *key);
/* Where the event spool is: spool_url when set, else spool_dir (see
 * podio_spool_open()); borrowed from cfg. */
const char *podio_config_spool(const struct podio_config *cfg);
/* Typed getters; key must be of the matching type (checked: 0 otherwise). */
int64_t podio_config_get_ms(const struct podio_config *cfg, const char *key);
int64_t podio_config_get_size(const struct podio_config *cfg, const char *key);
int64_t podio_config_get_int(const struct podio_config *cfg, const char *key);
int podio_config_get_bool(const struct podio_config *cfg, const char *key);

/* Introspection, for `podio-webhook config` and the key-list test:
 * the i-th key name (static) or NULL past the end; whether it is secret;
 * its one-line description (static). */
const char *podio_config_key_name(size_t i);
int podio_config_key_is_secret(const char *key);
const char *podio_config_key_help(const char *key);

/* Rule lines, in file order.  kind is "on" or "log"; pattern, and for "on"
 * argv (NULL-terminated, argv[0] an absolute path), for "log" path.  All
 * borrowed.  Returns 0 past the end. */
struct podio_rule {
	const char *kind;
	const char *pattern;
	char *const *argv;
	const char *path;
	const char *file;  /* configuration file and line, for messages */
	int line;
};
int podio_config_rule(const struct podio_config *cfg, size_t i,
    struct podio_rule *out);

/* Hook lines ("hook app ID = EVENT ..."), in file order: the hooks that
 * `hooks sync` keeps.  Each event type appears once per object.  All
 * borrowed.  Returns 0 past the end. */
struct podio_hook_decl {
	const char *ref_type;       /* "app" */
	uint64_t ref_id;
	const char *const *events;  /* NULL-terminated, at least one */
	const char *file;           /* configuration file and line */
	int line;
};
int podio_config_hook(const struct podio_config *cfg, size_t i,
    struct podio_hook_decl *out);

/*
 * The credentials of cfg, in order: first the one of the keys (app_id
 * and app_token when both are set, else username and password when both
 * are), then each "app ID = TOKEN" line in file order.  A credential of
 * the app flow serves the API calls made for its app; the password flow
 * serves every app its user sees.  Strings borrowed from cfg; app_token
 * is a secret.  Returns 0 past the end (out cleared).
 */
struct podio_credential {
	const char *flow;       /* "app" or "password" */
	uint64_t app_id;        /* app flow: the app, else 0 */
	const char *app_token;  /* app flow: its token, else NULL */
	const char *username;   /* password flow: the user, else NULL */
	const char *file;       /* an app line: where it was read, else */
	int line;               /* NULL and 0 (the keys) */
};
int podio_config_credential(const struct podio_config *cfg, size_t i,
    struct podio_credential *out);

/* Parsers shared with the command line: "30s", "500ms", "5m", "2h", "1d"
 * (a bare number is seconds) and "64K", "1M" (a bare number is bytes).
 * Return 0 on success, -1 on a malformed or out-of-range value. */
int podio_parse_duration_ms(const char *text, int64_t *ms);
int podio_parse_size(const char *text, int64_t *bytes);
/* Strict unsigned 64-bit decimal: digits only, no sign, no white space,
 * no leading zeros except "0", no overflow.  0 on success, -1 otherwise. */
int podio_parse_u64(const char *text, uint64_t *out);

/* ------------------------------------------------------------------ tokens */

/*
 * The token store shared by all clients of one process: credentials, the
 * current access and refresh tokens, and the cross-process token cache
 * file (config key token_cache; empty disables it).  Thread-safe: when many
 * threads need a token at once, one requests it and the others wait.
 */
struct podio_tokens;

/* Copies credentials and settings out of cfg (cfg may be freed after):
 * every credential podio_config_credential() lists, each with its own
 * tokens (the first credential's cache file is token_cache, an app
 * line's is token_cache with ".app-ID" added).  Fails with
 * PODIO_ERR_CONFIG (message in err) when neither the app flow
 * (client_id, client_secret, app_id, app_token) nor the password flow
 * (client_id, client_secret, username, password) nor an app line is
 * fully configured, when app lines lack client_id or client_secret, when
 * a flow of the keys is half given, or when an app is given twice.
 * The caller frees *out with podio_tokens_free(). */
enum podio_err podio_tokens_new(const struct podio_config *cfg,
    struct podio_tokens **out, char *err, size_t errlen);
/* Wipes and frees.  Accepts NULL. */
void podio_tokens_free(struct podio_tokens *tokens);
/* How many token requests this process has made (for tests and stats). */
unsigned long podio_tokens_requests(struct podio_tokens *tokens);
/* How many credentials the store holds (podio_config_credential()
 * order; at least one). */
size_t podio_tokens_count(const struct podio_tokens *tokens);
/* Who credential i is: *flow "app" or "password", *app_id the app (app
 * flow, else 0), *username the user (password flow, else NULL); each may
 * be NULL, strings borrowed.  Returns 0, or -1 when there is no i. */
int podio_tokens_identity(const struct podio_tokens *tokens, size_t i,
    const char **flow, uint64_t *app_id, const char **username);
/* The credential for the calls made for app app_id: the app flow
 * credential of that app, else the password flow's (which covers every
 * app its user sees); -1 when none fits. */
long podio_tokens_for_app(const struct podio_tokens *tokens,
    uint64_t app_id);

/* ------------------------------------------------------------------ client */

/*
 * One client per thread: one reused curl handle (keep-alive), TLS always
 * verified, the timeouts and size cap of cfg, User-Agent
 * podio-webhook/VERSION.  tokens is borrowed and must outlive the client.
 */
struct podio_client;

enum podio_err podio_client_new(const struct podio_config *cfg,
    struct podio_tokens *tokens, struct podio_client **out);
void podio_client_free(struct podio_client *client);
/* Makes the client's calls use credential cred of its token store (an
 * index below podio_tokens_count(); a new client uses 0).  Returns 0, or
 * -1 when there is no such credential (nothing changed). */
int podio_client_use(struct podio_client *client, size_t cred);
/* The credential the client's calls use now: the one that made its last
 * call (podio_tokens_identity() tells who it is). */
size_t podio_client_cred(const struct podio_client *client);
/* The token store of the client (borrowed). */
struct podio_tokens *podio_client_tokens(const struct podio_client *client);

/* Details of the last call on this client. */
struct podio_call_info {
	long http_status;        /* 0 if no HTTP answer */
	long rate_limit;         /* X-Rate-Limit-Limit, -1 if absent */
	long rate_remaining;     /* X-Rate-Limit-Remaining, -1 if absent */
	long retry_after;        /* seconds Podio asked to wait on 420, -1 if
	                            it named none */
	const char *error;       /* Podio's "error" (e.g. "not_found"), or NULL */
	const char *error_description; /* Podio's message, or NULL */
	const char *request_id;  /* X-Podio-Request-Id, or NULL */
};
/* Fills info from the last call; strings borrowed from the client. */
void podio_client_last(const struct podio_client *client,
    struct podio_call_info *info);
/* A one-line human message for the last failure, e.g.
 * "not found: Item not found (HTTP 404, not_found)"; borrowed, never NULL. */
const char *podio_client_errmsg(const struct podio_client *client);

/*
 * Who the client's credential writes as in Podio, as the "created_by"
 * of a revision it makes shows it: *type "app" and *id the app id with
 * app authentication; "user" and the user's id with the password flow,
 * known once a token was obtained (from the "ref" of Podio's token
 * answer).  *type is static.  Returns PODIO_OK, or PODIO_ERR_NOT_FOUND
 * while the user is not known yet (no token obtained, or only one
 * cached by an older version), PODIO_ERR_INVALID for no client.
 */
enum podio_err podio_client_self(const struct podio_client *client,
    const char **type, uint64_t *id);

/*
 * What one HTTP request of a client brought back, for the program's own
 * counters (see podio_client_set_observer()).  The strings are borrowed
 * for the duration of the observer's call.
 */
struct podio_call_note {
	const char *method;      /* "GET", "POST", "PUT" or "DELETE" */
	const char *path;        /* relative to api_url, query included:
	                            "/item/42?mark_as_viewed=0", and
	                            "/oauth/token" for a token request */
	long http_status;        /* 0 when no HTTP answer arrived (network,
	                            TLS, timeout) */
	long rate_limit;         /* X-Rate-Limit-Limit, -1 if absent */
	long rate_remaining;     /* X-Rate-Limit-Remaining, -1 if absent */
};
typedef void (*podio_call_observer_fn)(const struct podio_call_note *note,
    void *arg);

/*
 * Has fn(note, arg) called after every HTTP request client sends to the
 * API (a call sent again after a refused token counts twice), the token
 * requests it makes for the shared token store included, in the calling
 * thread before the call returns; fn NULL stops it.  The library keeps no
 * count of its own: a program that counts calls across threads gives
 * each client the same arg and makes fn thread-safe (and cheap: it runs
 * on every call).  fn must not use client.
 */
void podio_client_set_observer(struct podio_client *client,
    podio_call_observer_fn fn, void *arg);

/* Makes sure a valid token is held (from memory, the cache file, or the
 * token endpoint).  Used by `podio-webhook check`. */
enum podio_err podio_authenticate(struct podio_client *client);

/*
 * A raw authenticated API call: method "GET", "POST", "PUT" or "DELETE";
 * path starting with '/' (relative to api_url, with its query);
 * json_body NULL or a JSON text sent as application/json.  On success
 * (2xx) *body_out (if not NULL) receives the answer text, NUL-terminated,
 * which the caller frees.  Token expiry is handled as in the module text.
 */
enum podio_err podio_call(struct podio_client *client, const char *method,
    const char *path, const char *json_body, char **body_out);

/* Hooks ---------------------------------------------------------------- */

struct podio_hook {
	uint64_t hook_id;
	char *status;   /* "active" or "inactive" */
	char *type;     /* event type, e.g. "item.create" */
	char *url;
};

/* POST /hook/{ref_type}/{ref_id}/; *hook_id receives the new id. */
enum podio_err podio_hook_create(struct podio_client *client,
    const char *ref_type, uint64_t ref_id, const char *url,
    const char *type, uint64_t *hook_id);
/* GET /hook/{ref_type}/{ref_id}/.  *hooks receives an array of *n hooks
 * that the caller frees with podio_hooks_free(); *raw_json (if not NULL)
 * the answer text, caller frees. */
enum podio_err podio_hook_list(struct podio_client *client,
    const char *ref_type, uint64_t ref_id, struct podio_hook **hooks,
    size_t *n, char **raw_json);
void podio_hooks_free(struct podio_hook *hooks, size_t n);
/* POST /hook/{hook_id}/verify/request */
enum podio_err podio_hook_verify(struct podio_client *client,
    uint64_t hook_id);
/* POST /hook/{hook_id}/verify/validate with {"code": code} */
enum podio_err podio_hook_validate(struct podio_client *client,
    uint64_t hook_id, const char *code);
/* DELETE /hook/{hook_id} */
enum podio_err podio_hook_delete(struct podio_client *client,
    uint64_t hook_id);

/* Items ---------------------------------------------------------------- */

/*
 * GET /item/{item_id}?mark_as_viewed=0.  On success *raw_json (if not
 * NULL) receives the answer exactly as Podio sent it and *item (if not
 * NULL) its cJSON parse; the caller frees them with free() and
 * cJSON_Delete().
 */
enum podio_err podio_item_get(struct podio_client *client, uint64_t item_id,
    char **raw_json, struct cJSON **item);

/* The most items podio_item_filter() asks for in one call (Podio's own
 * limit for the filter). */
#define PODIO_ITEM_FILTER_MAX 500

/*
 * Fetches up to PODIO_ITEM_FILTER_MAX items of one app in one call:
 * POST /item/app/{app_id}/filter/ with
 * {"filters": {"item_id": [ids...]}, "limit": n}.  texts is the caller's
 * array of n pointers, all set to NULL first.  On PODIO_OK texts[i]
 * receives the JSON text of item ids[i] exactly as it appears in Podio's
 * answer (the bytes of that element of its "items" array: numbers are
 * never re-printed), NUL-terminated, or stays NULL when the answer does
 * not hold that item (deleted, of another app, not visible); a
 * duplicated id gets a copy in each place.  The caller frees each text
 * with free().  Items of a filter answer lack a few members of
 * GET /item/{id} ("comments", for one).
 *
 * Fails (every texts[i] NULL) with PODIO_ERR_INVALID (n not within 1 to
 * PODIO_ITEM_FILTER_MAX, an id or app_id 0, ids or texts NULL), the
 * errors of podio_call() (PODIO_ERR_BAD_REQUEST when Podio refuses the
 * item_id filter, PODIO_ERR_RATE_LIMITED: the filter is an operation
 * Podio rate-limits apart, ...), or PODIO_ERR_BAD_JSON when the answer
 * is not {"items": [...]} with an "item_id" in each item (or holds more
 * items than asked for).  Rate-limit headers show in
 * podio_client_last() as for every call.
 */
enum podio_err podio_item_filter(struct podio_client *client,
    uint64_t app_id, const uint64_t *ids, size_t n, char **texts);

/* One item of an app as podio_item_changes() lists it. */
struct podio_item_change {
	uint64_t item_id;
	int64_t revision;          /* current_revision "revision", -1 when
	                              the answer has none */
	int64_t edited_ms;         /* "last_edit_on" (else the current
	                              revision's "created_on"), in ms since
	                              the epoch (Podio's dates are UTC); 0
	                              when the answer has neither */
};

/*
 * Lists the items of app app_id last edited first: POST
 * /item/app/{app_id}/filter/ with {"sort_by": "last_edit_on",
 * "sort_desc": true, "limit": limit, "offset": offset}.  *out receives
 * *n items (at most limit) in the answer's order, an array the caller
 * frees with free() (NULL when none); *total (may be NULL) the answer's
 * "filtered" count (-1 when absent).  Fails with PODIO_ERR_INVALID
 * (limit not within 1 to PODIO_ITEM_FILTER_MAX, app_id 0), the errors
 * of podio_call() (PODIO_ERR_RATE_LIMITED: the filter is rate-limited
 * apart), or PODIO_ERR_BAD_JSON when the answer is not {"items": [...]}
 * with an "item_id" in each item, or holds more than limit.
 */
enum podio_err podio_item_changes(struct podio_client *client,
    uint64_t app_id, size_t limit, size_t offset,
    struct podio_item_change **out, size_t *n, long *total);

/* ---------------------------------------------------------- public: params */

/*
 * The longest parameter name accepted, in bytes after decoding (percent
 * sequences decoded, invalid UTF-8 replaced).  A longer name is a limit
 * error (HTTP 413).
 */
#define PODIO_PARAMS_MAX_KEY 256

/*
 * A set of parameters: names and values, each valid UTF-8 without a NUL
 * byte.  A name appears at most once: when a name is repeated, the value
 * of its last occurrence wins (parse the query before the body, and the
 * body beats the query) and the name keeps the position of its first
 * occurrence.  Iteration by index follows those positions, so the set
 * keeps the order in which names were first seen, as a JSON object built
 * from it should.
 */
struct podio_params;

/*
 * A new empty set that accepts at most max_params name=value pieces in
 * total over all podio_params_parse() calls, repeated names included
 * (0 = no limit).  NULL on out of memory.  The caller frees the set with
 * podio_params_free().
 */
struct podio_params *podio_params_new(size_t max_params);
/* Frees the set, wiping every name and value first (a value may be a
 * secret).  Accepts NULL. */
void podio_params_free(struct podio_params *params);

/*
 * Decodes len bytes of urlencoded text (a query string without its '?',
 * or a form body; data need not be NUL-terminated) and merges the pairs
 * into params, after the pairs already there.  The text is split on '&';
 * empty pieces are skipped; a piece is split at its first '=' (no '='
 * means an empty value); '+' becomes a space and %XX the byte XX (a '%'
 * not followed by two hex digits stays literal); then invalid UTF-8
 * becomes U+FFFD, maximal subpart by maximal subpart, as the WHATWG
 * "UTF-8 decode without BOM" does (a BOM is kept).
 *
 * The limits are checked over the whole text before any decoding error:
 *   PODIO_ERR_TOO_LARGE  more pieces than max_params allows, or a name
 *                        longer than PODIO_PARAMS_MAX_KEY (HTTP 413);
 *   PODIO_ERR_INVALID    a decoded name or value holds a NUL byte, from
 *                        %00 or a raw byte (HTTP 400);
 *   PODIO_ERR_NOMEM      out of memory.
 * On failure *reason (if reason is not NULL) receives a short static
 * English phrase ("too many parameters", ...) and params is left as it
 * was before the call.  On success *reason is set to NULL.
 * Time and memory are linear in len (plus n log n for the merge).
 */
enum podio_err podio_params_parse(struct podio_params *params,
    const char *data, size_t len, const char **reason);

/* The number of distinct names. */
size_t podio_params_count(const struct podio_params *params);

/* The value of name, or NULL when absent; borrowed from params (valid
 * until the next podio_params_parse() or podio_params_free()). */
const char *podio_params_get(const struct podio_params *params,
    const char *name);

/*
 * The i-th pair in position order (see above): *name and *value (either
 * pointer may be NULL) receive borrowed strings.  Returns 1, or 0 when i
 * is past the end.
 */
int podio_params_at(const struct podio_params *params, size_t i,
    const char **name, const char **value);

/* --------------------------------------------------------- public: webhook */

/* Defaults of the settings below (configuration keys max_body and
 * max_params). */
#define PODIO_WEBHOOK_MAX_BODY   (64 * 1024)
#define PODIO_WEBHOOK_MAX_PARAMS 256

/* The longest event type accepted ([a-z0-9_.-]{1,64}). */
#define PODIO_WEBHOOK_MAX_TYPE   64

/* What the handler accepts.  Every pointer is borrowed for the call. */
struct podio_webhook_settings {
	/* webhook_secret: the value every delivery must carry in its
	 * "secret" parameter.  NULL or "" means none is configured: then
	 * every delivery is refused with 403 unless allow_no_secret is set. */
	const char *secret;
	/* webhook_secret_previous: a second value accepted beside secret
	 * while hooks are re-created with the new one; NULL or "": none.
	 * Only checked when secret is set. */
	const char *previous_secret;
	int allow_no_secret;
	/* allowed_hooks: when n_allowed_hooks > 0, only these hook ids. */
	const uint64_t *allowed_hooks;
	size_t n_allowed_hooks;
	/* 0 takes the defaults above. */
	size_t max_body;
	size_t max_params;
};

/* One request as the web server described it.  Every pointer is
 * borrowed; query and body need not be NUL-terminated. */
struct podio_webhook_request {
	const char *method;        /* REQUEST_METHOD; NULL if unset */
	const char *content_type;  /* CONTENT_TYPE; NULL if unset */
	int has_content_length;    /* CONTENT_LENGTH was given (and parsed) */
	uint64_t content_length;
	const char *query;         /* QUERY_STRING without '?'; NULL = none */
	size_t query_len;
	const char *body;          /* the bytes read; NULL when body_len is 0 */
	size_t body_len;
};

/* The answer: status, one line of text/plain, one optional header. */
struct podio_webhook_answer {
	int status;          /* 200, 400, 403, 405, 411, 413, 415; 500 only
	                        when out of memory; 0 from
	                        podio_webhook_check_head() = go on */
	const char *header;  /* "Allow: POST" with 405, else NULL; static */
	char reason[160];    /* printable ASCII, no newline; it never holds
	                        the secret, and at most a short sanitized
	                        snippet of the input */
	int previous_secret; /* podio_webhook_decide(): 1 when the delivery
	                        carried previous_secret, not secret */
};

/* Bits of podio_delivery.has: which known ids the delivery carried. */
#define PODIO_HAS_HOOK_ID          (1u << 0)
#define PODIO_HAS_ITEM_ID          (1u << 1)
#define PODIO_HAS_ITEM_REVISION_ID (1u << 2)
#define PODIO_HAS_COMMENT_ID       (1u << 3)
#define PODIO_HAS_APP_ID           (1u << 4)
#define PODIO_HAS_FORM_ID          (1u << 5)
#define PODIO_HAS_TASK_ID          (1u << 6)

/*
 * An accepted delivery.  The strings are borrowed from params, which the
 * delivery owns; podio_delivery_free() frees both.  hook_id is always
 * present; an id whose bit is clear in has is 0.
 */
struct podio_delivery {
	const char *type;          /* e.g. "item.update" */
	unsigned has;              /* PODIO_HAS_* bits */
	uint64_t hook_id;
	uint64_t item_id;
	uint64_t item_revision_id;
	uint64_t comment_id;
	uint64_t app_id;
	uint64_t form_id;
	uint64_t task_id;
	const char *external_id;   /* NULL when absent */
	const char *code;          /* the "code" parameter (hook.verify);
	                              NULL when absent */
	struct podio_params *params; /* every merged parameter, "secret"
	                                included */
	const char *source;        /* NULL for a delivery of Podio; else
	                              what made the event ("backfill"),
	                              static */
	uint64_t podio_app;        /* the app of the hook, from the
	                              PODIO_APP_PARAM parameter; 0 when
	                              absent or not an id */
};

/*
 * The parameter that names the app of a hook in the hook's URL
 * ("...?podio_app=123&secret=..."), which Podio moves into the body of
 * each delivery.  No Podio event uses this name (app_id is taken by the
 * app.* and form.* events).  It picks the credential of the event's API
 * calls and stays in the event's "params" like any other parameter.
 */
#define PODIO_APP_PARAM "podio_app"

/*
 * Checks what can be checked before the body is read, in the order of
 * podio_webhook_decide(): 405 (with "Allow: POST") for a method other
 * than POST, 411 without a Content-Length, 413 when the announced length
 * or the query string exceeds max_body.  Returns 1 with ans->status 0
 * when the adapter may read exactly content_length bytes and call
 * podio_webhook_decide(); else 0 with the answer filled in.
 */
int podio_webhook_check_head(const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans);

/*
 * Decides the answer to one request, in this order, so that a client
 * without the secret learns nothing about what its body would have done:
 *   405  the method is not POST (ans->header "Allow: POST");
 *   411  no Content-Length;
 *   413  the body (announced or read) or the query string is longer than
 *        max_body; more name=value pieces in the query and a form body
 *        together than max_params; a name longer than
 *        PODIO_PARAMS_MAX_KEY (a body that is not a form has no
 *        parameters, so only its size counts here);
 *   415  the content type is not application/x-www-form-urlencoded
 *        (case-insensitive, parameters such as "; charset=UTF-8" allowed);
 *   400  the body cannot be decoded: fewer or more bytes than
 *        Content-Length, or a NUL byte in a name or value;
 *   403  a secret is configured and the "secret" parameter is missing or
 *        wrong: neither secret nor previous_secret (each compared in
 *        constant time, both always), or none is configured and
 *        allow_no_secret is off; then, with allowed_hooks, a hook_id
 *        missing or not an id gives 400 and one not in the list 403;
 *   400  a malformed delivery (see podio_delivery_new()), its reason
 *        quoting no value that holds secret or previous_secret;
 *   200  accepted: *out (if out is not NULL) receives the delivery, which
 *        the caller frees with podio_delivery_free().
 * The query string is parsed before the body, so body parameters win.
 * Whether a hook.verify is then validated with Podio (and answered 502
 * when Podio refuses) is the caller's business.
 * Returns PODIO_OK whenever an answer was decided, PODIO_ERR_NOMEM (with a
 * 500 answer) on out of memory.  *out is NULL unless the status is 200.
 */
enum podio_err podio_webhook_decide(
    const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans, struct podio_delivery **out);

/*
 * Makes a delivery out of params, taking ownership of params (freed on
 * failure too).  Malformed, failing with PODIO_ERR_INVALID and a reason
 * line in reason (size reasonlen; may be NULL): no "type", a type outside
 * [a-z0-9_.-]{1,64}, no "hook_id", a known id (hook_id, item_id,
 * item_revision_id, comment_id, app_id, form_id, task_id) present but not
 * a strict unsigned 64-bit decimal, a hook.verify without a non-empty
 * "code".  PODIO_ERR_NOMEM on out of memory.  On success *out is freed by
 * the caller with podio_delivery_free().  Used for requests and for saved
 * deliveries alike.
 */
enum podio_err podio_delivery_new(struct podio_params *params,
    struct podio_delivery **out, char *reason, size_t reasonlen);

/* Frees the delivery and its params.  Accepts NULL. */
void podio_delivery_free(struct podio_delivery *delivery);

/* ----------------------------------------------------------- public: event */

/*
 * Builds the event of a delivery as one line of JSON (no newline in it,
 * none at the end), members in this order:
 *   {"type": "item.update", "hook_id": 1001, "item_id": 42,
 *    "item_revision_id": 7, "external_id": "x", "params": {...},
 *    "item": {...}, "item_source": "get"}
 * - "type", then each known id the delivery carries (hook_id, item_id,
 *   item_revision_id, comment_id, app_id, form_id, task_id), a JSON
 *   number printed exactly from its 64-bit value;
 * - "external_id", a string, when the delivery has one;
 * - "source", a string, when the delivery's source is set: the event
 *   came from no delivery of Podio ("backfill"); absent otherwise;
 * - "params": every parameter as a string, in the delivery's order,
 *   except "secret";
 * - with item (item_len bytes, e.g. the GET /item answer as Podio sent
 *   it): "item" holding that text byte for byte (only line breaks
 *   between tokens become spaces, and white space around the value is
 *   dropped, so the event stays on one line); the text must be exactly
 *   one JSON value (RFC 8259, valid UTF-8, nesting at most 512 deep),
 *   else PODIO_ERR_BAD_JSON;
 *   with item_source too (not NULL): "item_source": item_source right
 *   after "item", naming how the item was fetched ("get" for
 *   GET /item/{id}, "filter" for the app's item filter);
 * - with item_error instead (e.g. "not_found", "gone"): "item": null and
 *   "item_error": item_error (no "item_source");
 * - with neither: no "item" member (and no "item_source").
 * The receiver adds "by_self" after them on the events it fetched an
 * item for (it knows its own credential; this function does not).
 * New members are only ever added, never renamed or removed.
 *
 * On success *out receives the NUL-terminated text, which the caller
 * frees, and *out_len (if not NULL) its length.  Fails with
 * PODIO_ERR_INVALID (no delivery or no type, both item and item_error,
 * or an item_source or source that is not [a-z_]{1,32}),
 * PODIO_ERR_BAD_JSON,
 * PODIO_ERR_TOO_LARGE (longer than cap bytes; cap 0 = no limit) or
 * PODIO_ERR_NOMEM; *out is then NULL.
 */
enum podio_err podio_event_json(const struct podio_delivery *delivery,
    const char *item, size_t item_len, const char *item_error,
    const char *item_source, size_t cap, char **out, size_t *out_len);

/* ------------------------------------------------------- public: callbacks */

/*
 * A registry of callbacks.  Each entry has a PATTERN: an exact event type
 * ("item.create"), a prefix followed by ".*" ("item.*" matches "item."
 * followed by anything, not "item" itself), or "*" (every type).
 *
 * For one event every matching entry runs, one after the other, in this
 * order: first the C functions in the order they were registered, then
 * the commands and logs in the order they were added (for
 * podio_callbacks_add_rules(): the configuration's file order).  A failing
 * entry does not stop the ones after it.
 *
 * Register everything before the first podio_callbacks_run(); after that
 * the registry is only read, and any number of threads may run events
 * through it at once.
 */
struct podio_callbacks;

/*
 * A C callback.  type is the event type, event_json the event (len bytes,
 * see podio_event_json(); NUL-terminated when the caller's text is),
 * userdata as registered.  Returns 0 on success, anything else on failure.
 */
typedef int (*podio_callback_fn)(const char *type, const char *event_json,
    size_t len, void *userdata);

/*
 * The same, with room for a reason: on failure the function may write a
 * message (NUL-terminated, at most msglen bytes with the NUL) into msg;
 * it shows in the report and in the log, cut to one line.  msg starts
 * empty.
 */
typedef int (*podio_callback_msg_fn)(const char *type, const char *event_json,
    size_t len, char *msg, size_t msglen, void *userdata);

/*
 * A new empty registry; NULL on out of memory.  It keeps LANG and TZ of
 * the environment as they are now, for the commands it starts.  The caller
 * frees it with podio_callbacks_free().
 */
struct podio_callbacks *podio_callbacks_new(void);
/* Frees reg (wiping the commands' arguments, which may carry tokens).
 * Accepts NULL. */
void podio_callbacks_free(struct podio_callbacks *reg);

/*
 * Registers fn for pattern.  pattern is copied; userdata is borrowed and
 * passed to fn as is.  Fails with PODIO_ERR_INVALID (a bad pattern, no
 * function, too many entries) or PODIO_ERR_NOMEM.
 */
enum podio_err podio_callbacks_on(struct podio_callbacks *reg,
    const char *pattern, podio_callback_fn fn, void *userdata);
enum podio_err podio_callbacks_on_msg(struct podio_callbacks *reg,
    const char *pattern, podio_callback_msg_fn fn, void *userdata);

/*
 * Adds a command: argv (NULL-terminated, argv[0] an absolute path) is
 * copied.  The command runs with execve semantics, no shell: every
 * argument reaches it as is.  Fails with PODIO_ERR_INVALID or
 * PODIO_ERR_NOMEM.
 */
enum podio_err podio_callbacks_add_command(struct podio_callbacks *reg,
    const char *pattern, char *const *argv);
/* Adds a JSON-lines log: path (absolute) is copied. */
enum podio_err podio_callbacks_add_log(struct podio_callbacks *reg,
    const char *pattern, const char *path);

/*
 * Appends every "on" and "log" rule line of cfg, in file order (copied:
 * cfg may be freed after).  On failure (PODIO_ERR_INVALID for a rule the
 * registry refuses, PODIO_ERR_NOMEM) nothing is added.
 */
enum podio_err podio_callbacks_add_rules(struct podio_callbacks *reg,
    const struct podio_config *cfg);

/* How many entries match type (0 for a NULL registry or type). */
size_t podio_callbacks_count_matching(const struct podio_callbacks *reg,
    const char *type);

/* The ids a command sees in its environment (PODIO_HOOK_ID,
 * PODIO_ITEM_ID), each only when its has_ flag is set. */
struct podio_callback_ids {
	int has_hook_id;
	uint64_t hook_id;
	int has_item_id;
	uint64_t item_id;
};

enum podio_callback_kind {
	PODIO_CALLBACK_FUNCTION,
	PODIO_CALLBACK_COMMAND,
	PODIO_CALLBACK_LOG
};

enum podio_callback_outcome {
	PODIO_CALLBACK_OK = 0,
	PODIO_CALLBACK_FAILED,       /* a function returned status != 0 */
	PODIO_CALLBACK_EXIT,         /* a command exited with status != 0 */
	PODIO_CALLBACK_SIGNAL,       /* a command was killed by signal status */
	PODIO_CALLBACK_TIMEOUT,      /* a command outlived the timeout and was
	                                killed with its process group */
	PODIO_CALLBACK_NOSTART,      /* a command could not start (status =
	                                errno) */
	PODIO_CALLBACK_WRITE_FAILED  /* a log could not be written (status =
	                                errno) */
};

/* The bytes of a command's stderr kept for its report: the last ones. */
#define PODIO_CALLBACK_TAIL 1024
/* Size of podio_callback_result.detail: the tail made one line, "..."
 * in front when it was cut, and the NUL. */
#define PODIO_CALLBACK_DETAIL_MAX (PODIO_CALLBACK_TAIL + 8)

/* What one callback did.  The strings are owned by the report. */
struct podio_callback_result {
	enum podio_callback_kind kind;
	const char *pattern;
	/* The entry's identity within its registry, the same in every run
	 * and every process built from the same configuration (the same
	 * registrations in the same order): "fn:PATTERN#N" for the Nth C
	 * function registered for PATTERN, "on:PATTERN:ARGV0#N" for the Nth
	 * command with that pattern and argv[0] (never its arguments),
	 * "log:PATTERN:PATH#N" for the Nth log of that pattern and file.
	 * Given to podio_callbacks_run_skip() to leave the entry out. */
	const char *key;
	const char *target;        /* the command (argv[0] only: arguments may
	                              carry tokens), the log file, or NULL for
	                              a function */
	const char *file;          /* configuration file and line of a rule,  */
	int line;                  /* NULL and 0 otherwise                     */
	enum podio_callback_outcome outcome;
	int status;                /* see enum podio_callback_outcome; 0 if ok */
	int64_t duration_ms;
	/* One line of printable text, possibly empty: the end of a command's
	 * stderr (on success too), a function's message, or the system's
	 * reason for NOSTART and WRITE_FAILED. */
	char detail[PODIO_CALLBACK_DETAIL_MAX];
};

/* Every callback that ran for one event, in the order they ran. */
struct podio_callback_report {
	size_t n;
	size_t failed;             /* how many did not succeed */
	struct podio_callback_result *results;
	size_t skipped;            /* matching entries left out because their
	                              key was in the skip list (not in
	                              results) */
};

/* Frees a report.  Accepts NULL. */
void podio_callback_report_free(struct podio_callback_report *report);

/*
 * Runs every entry of reg matching type for one event (event_json, len
 * bytes, one line of JSON), in the order described above.
 * - Functions are called in the calling thread.
 * - Commands get the event on stdin, stdout connected to /dev/null, stderr
 *   read (its tail kept), only fds 0-2 open, their own process group, and
 *   the environment PATH=/usr/local/bin:/usr/bin:/bin, LANG (as it was
 *   when reg was made, else C.UTF-8), TZ (if it was set), PODIO_EVENT_TYPE,
 *   and PODIO_HOOK_ID and PODIO_ITEM_ID from ids (may be NULL) - nothing
 *   else.  A command that does not read its stdin is fine.  When the
 *   command exits, whatever is left of its process group is killed; when
 *   it is still running after timeout_ms (<= 0: no limit), the whole group
 *   is killed.  Exit status 0 is success.
 * - Logs get the event plus a newline appended to their file under an
 *   exclusive flock(), opened anew for each event (rotation by rename
 *   needs no signal).
 * Each failure is logged (warn) with the detail of its result; never the
 * event or a command's arguments.
 *
 * *report (if report is not NULL) receives what ran, which the caller
 * frees with podio_callback_report_free(), also on PODIO_ERR_IO.
 * Returns PODIO_OK when every matching callback succeeded (or none
 * matched), PODIO_ERR_IO when at least one failed, PODIO_ERR_INVALID (no
 * registry, type or event) or PODIO_ERR_NOMEM; with these two nothing ran
 * and *report is NULL.
 */
enum podio_err podio_callbacks_run(const struct podio_callbacks *reg,
    const char *type, const struct podio_callback_ids *ids,
    const char *event_json, size_t len, int64_t timeout_ms,
    struct podio_callback_report **report);

/*
 * The same, except that the matching entries whose key (see struct
 * podio_callback_result) is one of the nskip strings of skip do not run
 * and are not in the report: report->skipped counts them.  Used to run
 * again, for an event retried, only the callbacks that did not succeed
 * before.  skip may hold NULL entries (ignored) and keys of no entry
 * (harmless); skip NULL with nskip 0 runs everything, as
 * podio_callbacks_run() does.  Returns as podio_callbacks_run() (also
 * PODIO_ERR_INVALID for skip NULL with nskip > 0); when every matching
 * entry was skipped, PODIO_OK with an empty report.
 */
enum podio_err podio_callbacks_run_skip(const struct podio_callbacks *reg,
    const char *type, const struct podio_callback_ids *ids,
    const char *event_json, size_t len, int64_t timeout_ms,
    const char *const *skip, size_t nskip,
    struct podio_callback_report **report);

/* "ok", "failed", "exit", "signal", "timeout", "nostart", "write failed";
 * static. */
const char *podio_callback_outcome_name(enum podio_callback_outcome outcome);

/*
 * Writes one line describing r into buf (size n, always terminated,
 * cut if needed), e.g.
 *   "on item.* /usr/local/bin/notify (/etc/podio-webhook.conf:12): exit
 *    status 3, 15 ms: cannot reach the mail server"
 * Returns buf.
 */
char *podio_callback_result_format(const struct podio_callback_result *r,
    char *buf, size_t n);

#ifdef __cplusplus
}
#endif
#endif /* PODIO_H */

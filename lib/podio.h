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
 *    (podio_global_init() does that).
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

/* Calls curl_global_init(); call once from main() before threads start. */
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

/* Copies credentials and settings out of cfg (cfg may be freed after).
 * Fails with PODIO_ERR_CONFIG (message in err) when neither the app flow
 * (client_id, client_secret, app_id, app_token) nor the password flow
 * (client_id, client_secret, username, password) is fully configured.
 * The caller frees *out with podio_tokens_free(). */
enum podio_err podio_tokens_new(const struct podio_config *cfg,
    struct podio_tokens **out, char *err, size_t errlen);
/* Wipes and frees.  Accepts NULL. */
void podio_tokens_free(struct podio_tokens *tokens);
/* How many token requests this process has made (for tests and stats). */
unsigned long podio_tokens_requests(struct podio_tokens *tokens);

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
 * "not found: Item not found (404 not_found)"; borrowed, never NULL. */
const char *podio_client_errmsg(const struct podio_client *client);

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

#ifdef __cplusplus
}
#endif
#endif /* PODIO_H */

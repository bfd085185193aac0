/*
 * hooks.h: the hooks commands (create, list, verify, validate, delete in
 * hooks.c; heal in hooks_heal.c; sync in hooks_sync.c) and what they
 * share: the URL a hook of this receiver gets, which hooks are this
 * receiver's, the apps the configuration names and the hooks its hook
 * lines declare.
 */
#ifndef PODIO_HANDLER_HOOKS_H
#define PODIO_HANDLER_HOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

struct cli_ctx;

/* Podio keeps at most this many hooks of one type on one object. */
#define HOOKS_PER_TYPE_MAX 10

/*
 * The URL a new hook of this receiver on ref_type ref_id gets: base with
 * the parameters the receiver adds to a hook's query (podio_app=ID for
 * a hook of an app, unless base names one; then secret=webhook_secret,
 * percent-encoded, when that is set; '?' or '&' as needed, before any
 * #fragment).  Every command that creates a hook
 * takes its URL from here.  Returns a string the caller frees with
 * hooks_url_free() (it holds the secret), or NULL with the reason in err
 * (size errlen): base already has such a parameter, or out of memory.
 */
char *hooks_url(const struct podio_config *cfg, const char *base,
    const char *ref_type, uint64_t ref_id, char *err, size_t errlen);

/*
 * Makes client's calls use the credential of app ref_id when ref_type is
 * "app" and the configuration has one for it (an "app ID = TOKEN" line
 * or app_id), else the first credential: the calls about an app's hooks
 * are that app's.
 */
void hooks_use_app(struct podio_client *client, const char *ref_type,
    uint64_t ref_id);

/* Wipes and frees a URL of hooks_url().  Accepts NULL. */
void hooks_url_free(char *url);

/*
 * The base of a hook's url: url without the parameters hooks_url() adds
 * (every "secret" and "podio_app" parameter; a query left empty loses
 * its '?').  Returns a string the caller frees, or NULL on out of
 * memory.
 */
char *hooks_url_base(const char *url);

/*
 * Whether the hook with url, on ref_type ref_id, points at this
 * receiver: its URL carries webhook_secret or webhook_secret_previous,
 * or is the URL hooks_url() makes of hook_url (hooks_is_current()).
 * Returns 1 or 0 (also on out of memory).
 */
int hooks_is_ours(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *url);

/*
 * Whether url is the URL hooks_url() makes of hook_url for a hook on
 * ref_type ref_id, or that URL without podio_app (a hook made before the
 * receiver added it).  0 when hook_url is not set.
 */
int hooks_is_current(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *url);

/*
 * Whether the hook with url, on ref_type ref_id, is managed through
 * hook_url: its base (hooks_url_base()) is hook_url.  0 when hook_url is
 * not set.
 */
int hooks_at_hook_url(const struct podio_config *cfg, const char *url);

/* Whether a hook line of cfg declares a hook of type on ref_type
 * ref_id. */
int hooks_declared(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *type);

/*
 * The configured apps, whose hooks heal, sync and doctor look after and
 * which a catch-up backfills: app_id when set, then the apps of the "app
 * ID = TOKEN" lines, then those of the hook lines, each once, in that
 * order.  *ids receives
 * a new array of *n ids (NULL when there is none) that the caller
 * frees.  Returns 0, or -1 on out of memory.
 */
int hooks_apps(const struct podio_config *cfg, uint64_t **ids, size_t *n);

/* Whether allowed_hooks is set, and whether it holds hook_id. */
int hooks_allowed_set(const struct podio_config *cfg);
int hooks_allowed(const struct podio_config *cfg, uint64_t hook_id);

/*
 * Writes into buf (size len) the shell command that creates a hook of
 * type on ref_type ref_id at base (a URL without the secret, in single
 * quotes) and then, unless hook_id is 0, deletes the hook hook_id it
 * replaces.
 */
void hooks_fix_command(char *buf, size_t len, const char *ref_type,
    uint64_t ref_id, const char *base, const char *type, uint64_t hook_id);

/* The commands (see the table of cli.c).  Each returns an exit status. */
int hooks_cmd_create(struct cli_ctx *ctx);
int hooks_cmd_list(struct cli_ctx *ctx);
int hooks_cmd_verify(struct cli_ctx *ctx);
int hooks_cmd_validate(struct cli_ctx *ctx);
int hooks_cmd_delete(struct cli_ctx *ctx);
int hooks_cmd_heal(struct cli_ctx *ctx);
int hooks_cmd_sync(struct cli_ctx *ctx);

struct runtime;
struct podio_spool;

/*
 * What a heal run uses besides the configuration and a client to keep,
 * per app, when its hooks of this receiver were last all active and
 * when one was seen inactive (marks of the spool), and to catch up with
 * the edits of the time a hook was inactive (catch_up; see
 * hooks_heal.c).  Every member may be NULL.
 */
struct hooks_heal_env {
	const struct runtime *rt;   /* for a catch-up (backfill_app());
	                               NULL: none, the gap is reported */
	struct podio_spool *spool;  /* NULL: the times are not kept */
	const char *spool_err;      /* why spool is NULL */
	int (*stopping)(void *arg); /* asked between the catch-up's calls */
	void *stop_arg;
};

/*
 * One run of `hooks heal` for a FastCGI server's heal thread
 * (heal_interval): what `hooks heal` prints is logged instead, one line
 * per hook or app (info; warn for a hook that stays broken, a failed
 * call, or edits of an inactive hook's time not caught up).  client is
 * the thread's own; env (may be NULL) as above.
 */
void hooks_heal_log(const struct podio_config *cfg,
    struct podio_client *client, const struct hooks_heal_env *env);

#endif

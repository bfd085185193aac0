/*
 * hooks.c: the hooks commands that act on one object or hook (create,
 * list, verify, validate, delete), and what every hooks command shares
 * (see hooks.h): the URL a hook of this receiver gets, which hooks are
 * this receiver's, the configured apps and declared hooks.
 */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "cli.h"
#include "cli_int.h"
#include "hooks.h"
#include "secret.h"

/* ------------------------------------------------------------ the URL */

/* See hooks.h.  ref_type and ref_id name the object for the parameters
 * that may name it; the secret does not. */
char *
hooks_url(const struct podio_config *cfg, const char *base,
    const char *ref_type, uint64_t ref_id, char *err, size_t errlen)
{
	const char *secret = podio_config_get(cfg, "webhook_secret");
	char *with_app = NULL, *url;

	if (secret_url_has(base)) {
		snprintf(err, errlen, "the URL already has a secret "
		    "parameter; webhook_secret adds it");
		return NULL;
	}
	/* A hook of an app names its app (podio_app), so that its events'
	 * calls use that app's credential. */
	if (strcmp(ref_type, "app") == 0) {
		if ((with_app = secret_url_with_app(base, ref_id)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return NULL;
		}
		base = with_app;
	}
	if (secret != NULL && secret[0] != '\0')
		url = secret_url_with(base, secret);
	else
		url = strdup(base);
	free(with_app);
	if (url == NULL)
		snprintf(err, errlen, "out of memory");
	return url;
}

/* See hooks.h. */
void
hooks_use_app(struct podio_client *client, const char *ref_type,
    uint64_t ref_id)
{
	long c = -1;

	if (strcmp(ref_type, "app") == 0)
		c = podio_tokens_for_app(podio_client_tokens(client), ref_id);
	(void)podio_client_use(client, c >= 0 ? (size_t)c : 0);
}

/* See hooks.h. */
void
hooks_url_free(char *url)
{
	if (url == NULL)
		return;
	explicit_bzero(url, strlen(url));
	free(url);
}

/* Whether the query parameter at p (up to its '&', '#' or end) is one
 * that hooks_url() adds. */
static int
hooks_is_added_param(const char *p)
{
	size_t n = strlen(PODIO_APP_PARAM);

	return (strncmp(p, "secret", 6) == 0 &&
	    (p[6] == '=' || p[6] == '&' || p[6] == '#' || p[6] == '\0')) ||
	    (strncmp(p, PODIO_APP_PARAM, n) == 0 && (p[n] == '=' ||
	    p[n] == '&' || p[n] == '#' || p[n] == '\0'));
}

/* See hooks.h. */
char *
hooks_url_base(const char *url)
{
	const char *q, *hash, *p, *end;
	char *out, *o;
	size_t len = strlen(url);
	int first = 1;

	if ((out = malloc(len + 1)) == NULL)
		return NULL;
	hash = strchr(url, '#');
	if (hash == NULL)
		hash = url + len;
	q = memchr(url, '?', (size_t)(hash - url));
	if (q == NULL) {
		memcpy(out, url, len + 1);
		return out;
	}
	memcpy(out, url, (size_t)(q - url));
	o = out + (q - url);
	for (p = q + 1; p < hash; p = end + 1) {
		end = memchr(p, '&', (size_t)(hash - p));
		if (end == NULL)
			end = hash;
		if (end > p && !hooks_is_added_param(p)) {
			*o++ = first ? '?' : '&';
			memcpy(o, p, (size_t)(end - p));
			o += end - p;
			first = 0;
		}
		if (end == hash)
			break;
	}
	memcpy(o, hash, strlen(hash) + 1);
	return out;
}

/* ------------------------------------------------- what is this receiver's */

/* See hooks.h. */
int
hooks_at_hook_url(const struct podio_config *cfg, const char *url)
{
	const char *hook_url = podio_config_get(cfg, "hook_url");
	char *base;
	int same;

	if (hook_url == NULL || hook_url[0] == '\0' ||
	    (base = hooks_url_base(url)) == NULL)
		return 0;
	same = strcmp(base, hook_url) == 0;
	free(base);
	return same;
}

/* See hooks.h. */
int
hooks_is_ours(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *url)
{
	enum secret_url_state which = secret_url_state(cfg, url);

	if (which == SECRET_URL_CURRENT || which == SECRET_URL_PREVIOUS)
		return 1;
	return hooks_is_current(cfg, ref_type, ref_id, url);
}

/* See hooks.h. */
int
hooks_is_current(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *url)
{
	const char *hook_url = podio_config_get(cfg, "hook_url");
	char *mine, why[128];
	int same;

	if (hook_url == NULL || hook_url[0] == '\0' || url == NULL)
		return 0;
	if ((mine = hooks_url(cfg, hook_url, ref_type, ref_id, why,
	    sizeof(why))) == NULL)
		return 0;
	same = strcmp(mine, url) == 0;
	hooks_url_free(mine);
	/* Made without podio_app (by an older version): as good, since the
	 * app of its events is found by listing each app's hooks. */
	if (!same && strcmp(ref_type, "app") == 0 && (mine = hooks_url(cfg,
	    hook_url, "", ref_id, why, sizeof(why))) != NULL) {
		same = strcmp(mine, url) == 0;
		hooks_url_free(mine);
	}
	return same;
}

/* See hooks.h. */
int
hooks_declared(const struct podio_config *cfg, const char *ref_type,
    uint64_t ref_id, const char *type)
{
	struct podio_hook_decl d;
	size_t i, j;

	for (i = 0; podio_config_hook(cfg, i, &d); i++) {
		if (d.ref_id != ref_id || strcmp(d.ref_type, ref_type) != 0)
			continue;
		for (j = 0; d.events[j] != NULL; j++)
			if (strcmp(d.events[j], type) == 0)
				return 1;
	}
	return 0;
}

/* Appends id to ids (of *n, room for max) unless it is there. */
static void
hooks_add_id(uint64_t *ids, size_t *n, size_t max, uint64_t id)
{
	size_t i;

	for (i = 0; i < *n; i++)
		if (ids[i] == id)
			return;
	if (*n < max)
		ids[(*n)++] = id;
}

/* See hooks.h.  A list of apps fits here: each is one more id. */
int
hooks_apps(const struct podio_config *cfg, uint64_t **ids, size_t *n)
{
	struct podio_hook_decl d;
	struct podio_credential c;
	uint64_t id;
	size_t max = 1, i;

	*ids = NULL;
	*n = 0;
	for (i = 0; podio_config_hook(cfg, i, &d); i++)
		max++;
	for (i = 0; podio_config_credential(cfg, i, &c); i++)
		max++;
	if ((*ids = calloc(max, sizeof(**ids))) == NULL)
		return -1;
	if (podio_parse_u64(podio_config_get(cfg, "app_id"), &id) == 0 &&
	    id != 0)
		hooks_add_id(*ids, n, max, id);
	for (i = 0; podio_config_credential(cfg, i, &c); i++)
		if (c.app_id != 0)
			hooks_add_id(*ids, n, max, c.app_id);
	for (i = 0; podio_config_hook(cfg, i, &d); i++)
		if (strcmp(d.ref_type, "app") == 0)
			hooks_add_id(*ids, n, max, d.ref_id);
	if (*n == 0) {
		free(*ids);
		*ids = NULL;
	}
	return 0;
}

/* See hooks.h. */
int
hooks_allowed_set(const struct podio_config *cfg)
{
	return cli_is_set(cfg, "allowed_hooks");
}

/* See hooks.h.  The configuration keeps the list as "1,2,3". */
int
hooks_allowed(const struct podio_config *cfg, uint64_t hook_id)
{
	const char *p = podio_config_get(cfg, "allowed_hooks");
	char item[24];
	uint64_t id;
	size_t len;

	for (; p != NULL && *p != '\0'; p += len + (p[len] == ',')) {
		len = strcspn(p, ",");
		if (len == 0 || len >= sizeof(item))
			continue;
		memcpy(item, p, len);
		item[len] = '\0';
		if (podio_parse_u64(item, &id) == 0 && id == hook_id)
			return 1;
	}
	return 0;
}

/* Appends s to buf (size len, holding used bytes) in single quotes, as
 * a shell reads it back. */
static void
hooks_shell_quote(char *buf, size_t len, const char *s)
{
	size_t used = strlen(buf);

	if (used + 1 < len)
		buf[used++] = '\'';
	for (; *s != '\0' && used + 5 < len; s++) {
		if (*s == '\'') {
			memcpy(buf + used, "'\\''", 4);
			used += 4;
		} else
			buf[used++] = *s;
	}
	if (used + 1 < len)
		buf[used++] = '\'';
	buf[used] = '\0';
}

/* See hooks.h. */
void
hooks_fix_command(char *buf, size_t len, const char *ref_type,
    uint64_t ref_id, const char *base, const char *type, uint64_t hook_id)
{
	size_t used;

	snprintf(buf, len, "podio-webhook hooks create %s %" PRIu64 " ",
	    ref_type, ref_id);
	hooks_shell_quote(buf, len, base);
	used = strlen(buf);
	snprintf(buf + used, len - used, " %s", type);
	used = strlen(buf);
	if (hook_id != 0)
		snprintf(buf + used, len - used, " && podio-webhook hooks "
		    "delete %" PRIu64, hook_id);
}

/* ------------------------------------------------ create, list and the rest */

/* hooks create REF_TYPE REF_ID URL EVENT */
int
hooks_cmd_create(struct cli_ctx *ctx)
{
	const char *ref_type = ctx->arg[0], *url = ctx->arg[2],
	    *event = ctx->arg[3];
	char *full = NULL, why[256];
	uint64_t ref_id, hook_id = 0;
	enum podio_err rc;
	int status = CLI_EXIT_USAGE;

	if (cli_parse_ref(ctx, &ref_id) != 0)
		goto fail;
	if (!cli_url_ok(url) || strlen(url) > CLI_URL_MAX) {
		cli_error(ctx, "invalid URL '%s' (expected http:// or "
		    "https://, no spaces)", url);
		goto fail;
	}
	if (!cli_is_token(event, "_.-", 64)) {
		cli_error(ctx, "invalid event type '%s' (e.g. item.create)",
		    event);
		goto fail;
	}
	if ((full = hooks_url(ctx->cfg, url, ref_type, ref_id, why,
	    sizeof(why))) == NULL) {
		cli_error(ctx, "%s", why);
		goto fail;
	}
	if ((status = cli_connect(ctx)) != 0)
		goto fail;
	hooks_use_app(ctx->client, ref_type, ref_id);
	rc = podio_hook_create(ctx->client, ref_type, ref_id, full, event,
	    &hook_id);
	if (rc != PODIO_OK) {
		status = cli_fail(ctx, rc);
		goto fail;
	}
	printf("%" PRIu64 "\n", hook_id);
	status = CLI_EXIT_OK;
fail:
	hooks_url_free(full);
	return status;
}

/* Prints hooks as a JSON array of {hook_id, status, type, url}, one
 * object per line, URLs masked (see secret_hook_url()).  Returns an exit
 * status. */
static int
hooks_print_json(const struct cli_ctx *ctx,
    const struct podio_hook *hooks, size_t n)
{
	cJSON *obj = NULL;
	char id[32], *url = NULL;
	size_t i;
	int status = CLI_EXIT_PODIO;

	printf("[");
	for (i = 0; i < n; i++) {
		if ((obj = cJSON_CreateObject()) == NULL)
			goto fail;
		/* Written as raw digits: a double would round ids past 2^53. */
		snprintf(id, sizeof(id), "%" PRIu64, hooks[i].hook_id);
		if ((url = secret_hook_url(ctx->cfg,
		    hooks[i].url ? hooks[i].url : "")) == NULL)
			goto fail;
		if (cJSON_AddRawToObject(obj, "hook_id", id) == NULL ||
		    cJSON_AddStringToObject(obj, "status",
		    hooks[i].status ? hooks[i].status : "") == NULL ||
		    cJSON_AddStringToObject(obj, "type",
		    hooks[i].type ? hooks[i].type : "") == NULL ||
		    cJSON_AddStringToObject(obj, "url", url) == NULL ||
		    cli_json_element(&obj, i) != 0)
			goto fail;
		free(url);
		url = NULL;
	}
	cli_json_end(n);
	status = CLI_EXIT_OK;
fail:
	if (status != CLI_EXIT_OK) {
		printf("\n");
		cli_error(ctx, "out of memory");
	}
	free(url);
	cJSON_Delete(obj);
	return status;
}

/* Prints hooks as a table with a header, columns aligned, URLs masked
 * (see secret_hook_url()).  Returns an exit status. */
static int
hooks_print_table(const struct cli_ctx *ctx,
    const struct podio_hook *hooks, size_t n)
{
	char id[32], *url;
	size_t i, wid = 2, wstatus = 6, wtype = 4, l;
	const char *st, *ty;

	for (i = 0; i < n; i++) {
		l = (size_t)snprintf(id, sizeof(id), "%" PRIu64,
		    hooks[i].hook_id);
		if (l > wid)
			wid = l;
		if (hooks[i].status && (l = strlen(hooks[i].status)) > wstatus)
			wstatus = l;
		if (hooks[i].type && (l = strlen(hooks[i].type)) > wtype)
			wtype = l;
	}
	/* Widths come from short fields (ids, statuses, event names); cap
	 * them so a hostile answer cannot ask printf for huge padding. */
	if (wstatus > 64)
		wstatus = 64;
	if (wtype > 64)
		wtype = 64;
	printf("%-*s  %-*s  %-*s  %s\n", (int)wid, "ID", (int)wstatus,
	    "STATUS", (int)wtype, "TYPE", "URL");
	for (i = 0; i < n; i++) {
		snprintf(id, sizeof(id), "%" PRIu64, hooks[i].hook_id);
		st = hooks[i].status ? hooks[i].status : "-";
		ty = hooks[i].type ? hooks[i].type : "-";
		if ((url = secret_hook_url(ctx->cfg,
		    hooks[i].url ? hooks[i].url : "-")) == NULL) {
			cli_error(ctx, "out of memory");
			return CLI_EXIT_PODIO;
		}
		printf("%-*s  %-*s  %-*s  %s\n", (int)wid, id, (int)wstatus,
		    st, (int)wtype, ty, url);
		free(url);
	}
	return CLI_EXIT_OK;
}

/* hooks list REF_TYPE REF_ID [--json] */
int
hooks_cmd_list(struct cli_ctx *ctx)
{
	struct podio_hook *hooks = NULL;
	size_t n = 0;
	uint64_t ref_id;
	enum podio_err rc;
	int status = CLI_EXIT_USAGE;

	if (cli_parse_ref(ctx, &ref_id) != 0)
		goto fail;
	if ((status = cli_connect(ctx)) != 0)
		goto fail;
	hooks_use_app(ctx->client, ctx->arg[0], ref_id);
	rc = podio_hook_list(ctx->client, ctx->arg[0], ref_id, &hooks, &n,
	    NULL);
	if (rc != PODIO_OK) {
		status = cli_fail(ctx, rc);
		goto fail;
	}
	if (ctx->json)
		status = hooks_print_json(ctx, hooks, n);
	else
		status = hooks_print_table(ctx, hooks, n);
fail:
	podio_hooks_free(hooks, n);
	return status;
}

/* What hooks_action() does to the hook. */
enum hooks_op {
	HOOKS_OP_VERIFY,
	HOOKS_OP_VALIDATE,
	HOOKS_OP_DELETE
};

/*
 * The commands on one hook (verify, validate, delete): parses HOOK_ID
 * (and CODE), connects, calls the library and prints "hook ID: DONE".
 * Returns the exit status.
 */
static int
hooks_action(struct cli_ctx *ctx, enum hooks_op op, const char *done)
{
	uint64_t hook_id;
	enum podio_err rc = PODIO_OK;
	size_t cred, ncreds;
	int status;

	if (cli_parse_id(ctx, "hook id", ctx->arg[0], &hook_id) != 0)
		return CLI_EXIT_USAGE;
	if (op == HOOKS_OP_VALIDATE && ctx->arg[1][0] == '\0') {
		cli_error(ctx, "empty verification code");
		return CLI_EXIT_USAGE;
	}
	if ((status = cli_connect(ctx)) != 0)
		return status;
	/* A hook id does not say its app: a 403 or 404 with one
	 * credential is tried with the next (another app's hook). */
	ncreds = podio_tokens_count(ctx->tokens);
	for (cred = 0; cred < (ncreds > 0 ? ncreds : 1); cred++) {
		(void)podio_client_use(ctx->client, cred);
		switch (op) {
		case HOOKS_OP_VERIFY:
			rc = podio_hook_verify(ctx->client, hook_id);
			break;
		case HOOKS_OP_VALIDATE:
			rc = podio_hook_validate(ctx->client, hook_id,
			    ctx->arg[1]);
			break;
		case HOOKS_OP_DELETE:
		default:
			rc = podio_hook_delete(ctx->client, hook_id);
			break;
		}
		if (rc != PODIO_ERR_FORBIDDEN && rc != PODIO_ERR_NOT_FOUND)
			break;
	}
	if (rc != PODIO_OK)
		return cli_fail(ctx, rc);
	printf("hook %" PRIu64 ": %s\n", hook_id, done);
	return CLI_EXIT_OK;
}

/* hooks verify HOOK_ID */
int
hooks_cmd_verify(struct cli_ctx *ctx)
{
	return hooks_action(ctx, HOOKS_OP_VERIFY,
	    "verification requested");
}

/* hooks validate HOOK_ID CODE */
int
hooks_cmd_validate(struct cli_ctx *ctx)
{
	return hooks_action(ctx, HOOKS_OP_VALIDATE,
	    "validated, now active");
}

/* hooks delete HOOK_ID */
int
hooks_cmd_delete(struct cli_ctx *ctx)
{
	return hooks_action(ctx, HOOKS_OP_DELETE, "deleted");
}


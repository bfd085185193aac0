/*
 * runtime.c: the handler's state made from one configuration (see
 * runtime.h).
 */
#include <config.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podio.h"
#include "../lib/config.h"
#include "deliver.h"
#include "metrics.h"
#include "runtime.h"

/* A token store shared by runtimes of the same credentials. */
struct runtime_tokens {
	struct podio_tokens *tokens;            /* owned */
	atomic_int refs;
};

/* The keys a token store is made from: a runtime may reuse the store of
 * another only when all of them are equal. */
static const char *const runtime_token_keys[] = {
	"client_id", "client_secret", "app_id", "app_token", "username",
	"password", "api_url", "token_cache", "timeout", NULL
};

/*
 * Parses allowed_hooks (its canonical text "1,2,3": the configuration
 * checked it) into a new array *ids of *n ids, which the caller frees.
 * Returns 0, or -1 on out of memory or a text that is not such a list.
 */
static int
runtime_parse_ids(const char *text, uint64_t **ids, size_t *n)
{
	char item[24];
	const char *p, *comma;
	size_t count = 1, len, i = 0;

	*ids = NULL;
	*n = 0;
	if (text == NULL || text[0] == '\0')
		return 0;
	for (p = text; *p != '\0'; p++)
		count += *p == ',';
	if ((*ids = calloc(count, sizeof(**ids))) == NULL)
		return -1;
	for (p = text; i < count; p = comma + 1) {
		comma = strchr(p, ',');
		len = comma != NULL ? (size_t)(comma - p) : strlen(p);
		if (len == 0 || len >= sizeof(item))
			goto fail;
		memcpy(item, p, len);
		item[len] = '\0';
		if (podio_parse_u64(item, &(*ids)[i++]) != 0)
			goto fail;
		if (comma == NULL)
			break;
	}
	*n = i;
	return 0;
fail:
	free(*ids);
	*ids = NULL;
	return -1;
}

static void
runtime_tokens_unref(struct runtime_tokens *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	podio_tokens_free(rt->tokens);
	free(rt);
}

/* Whether the token stores of a and b would be the same. */
static int
runtime_same_tokens(const struct podio_config *a,
    const struct podio_config *b)
{
	struct podio_credential ca, cb;
	const char *x, *y;
	size_t i;

	for (i = 0; runtime_token_keys[i] != NULL; i++) {
		x = podio_config_get(a, runtime_token_keys[i]);
		y = podio_config_get(b, runtime_token_keys[i]);
		if ((x == NULL) != (y == NULL) ||
		    (x != NULL && strcmp(x, y) != 0))
			return 0;
	}
	/* and the same app lines */
	for (i = 0; podio_config_credential(a, i, &ca); i++)
		if (!podio_config_credential(b, i, &cb) ||
		    ca.app_id != cb.app_id ||
		    (ca.app_token == NULL) != (cb.app_token == NULL) ||
		    (ca.app_token != NULL &&
		    strcmp(ca.app_token, cb.app_token) != 0))
			return 0;
	return !podio_config_credential(b, i, &cb);
}

/*
 * Makes rt->on_dead out of the on_dead key: a registry of its one
 * command, for every type; none when the key is unset.  Returns 0,
 * RUNTIME_UNCONFIGURED or RUNTIME_NOMEM with err filled.
 */
static int
runtime_on_dead(struct runtime *rt, char *err, size_t errlen)
{
	const char *cmd = podio_config_get(rt->cfg, "on_dead");
	char **argv = NULL, why[128];
	enum podio_err rc;

	if (cmd == NULL || cmd[0] == '\0')
		return 0;
	why[0] = '\0';
	if ((rc = podio__config_split(cmd, &argv, why, sizeof(why))) ==
	    PODIO_OK && (rt->on_dead = podio_callbacks_new()) == NULL)
		rc = PODIO_ERR_NOMEM;
	if (rc == PODIO_OK)
		rc = podio_callbacks_add_command(rt->on_dead, "*", argv);
	podio__config_argv_free(argv);
	if (rc == PODIO_OK)
		return 0;
	if (rc == PODIO_ERR_NOMEM) {
		snprintf(err, errlen, "out of memory");
		return RUNTIME_NOMEM;
	}
	snprintf(err, errlen, "on_dead cannot be used: %s", why[0] != '\0' ?
	    why : podio_strerror(rc));
	return RUNTIME_UNCONFIGURED;
}

/* See runtime.h. */
int
runtime_new(struct podio_config *cfg, const struct podio_callbacks *fns,
    const struct runtime *prev, struct runtime **out, char *err,
    size_t errlen)
{
	struct runtime *rt = NULL;
	const char *secret;
	enum podio_err rc;
	int status = RUNTIME_NOMEM;

	*out = NULL;
	if (errlen > 0)
		err[0] = '\0';
	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	atomic_init(&rt->refs, 1);
	rt->cfg = cfg;
	cfg = NULL;
	rt->fns = fns;

	status = RUNTIME_UNCONFIGURED;
	secret = podio_config_get(rt->cfg, "webhook_secret");
	rt->settings.allow_no_secret = podio_config_get_bool(rt->cfg,
	    "allow_no_secret");
	if ((secret == NULL || secret[0] == '\0') &&
	    !rt->settings.allow_no_secret) {
		snprintf(err, errlen, "webhook_secret is not set");
		goto fail;
	}
	rt->settings.secret = secret;
	rt->settings.previous_secret = podio_config_get(rt->cfg,
	    "webhook_secret_previous");
	if (runtime_parse_ids(podio_config_get(rt->cfg, "allowed_hooks"),
	    &rt->allowed_hooks, &rt->settings.n_allowed_hooks) != 0) {
		snprintf(err, errlen, "allowed_hooks is not a list of ids");
		goto fail;
	}
	rt->settings.allowed_hooks = rt->allowed_hooks;
	rt->settings.max_body = (size_t)podio_config_get_size(rt->cfg,
	    "max_body");
	rt->settings.max_params = (size_t)podio_config_get_int(rt->cfg,
	    "max_params");
	rt->exec_timeout_ms = podio_config_get_ms(rt->cfg, "exec_timeout");
	rt->client_timeout_ms = podio_config_get_ms(rt->cfg,
	    "client_timeout");

	if (prev != NULL && prev->tokens != NULL &&
	    runtime_same_tokens(prev->cfg, rt->cfg)) {
		rt->tokens = prev->tokens;
		atomic_fetch_add(&rt->tokens->refs, 1);
	} else {
		if ((rt->tokens = calloc(1, sizeof(*rt->tokens))) == NULL) {
			status = RUNTIME_NOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		atomic_init(&rt->tokens->refs, 1);
		rc = podio_tokens_new(rt->cfg, &rt->tokens->tokens, err,
		    errlen);
		if (rc != PODIO_OK) {
			status = rc == PODIO_ERR_NOMEM ? RUNTIME_NOMEM :
			    RUNTIME_UNCONFIGURED;
			goto fail;
		}
	}

	if ((rt->rules = podio_callbacks_new()) == NULL) {
		status = RUNTIME_NOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if ((rc = podio_callbacks_add_rules(rt->rules, rt->cfg)) != PODIO_OK) {
		status = rc == PODIO_ERR_NOMEM ? RUNTIME_NOMEM :
		    RUNTIME_UNCONFIGURED;
		snprintf(err, errlen, "the rule lines cannot be used: %s",
		    podio_strerror(rc));
		goto fail;
	}
	rt->skip_self = podio_config_get_bool(rt->cfg, "skip_self");
	if ((status = runtime_on_dead(rt, err, errlen)) != 0)
		goto fail;
	*out = rt;
	rt = NULL;
	status = 0;
fail:
	podio_config_free(cfg);
	runtime_unref(rt);
	return status;
}

/* See runtime.h. */
struct runtime *
runtime_ref(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

/* See runtime.h. */
void
runtime_unref(struct runtime *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	podio_callbacks_free(rt->rules);
	podio_callbacks_free(rt->on_dead);
	runtime_tokens_unref(rt->tokens);
	podio_config_free(rt->cfg);
	free(rt->allowed_hooks);
	free(rt);
}

/* See runtime.h. */
enum podio_err
runtime_client(const struct runtime *rt, struct podio_client **out)
{
	enum podio_err rc;

	rc = podio_client_new(rt->cfg, rt->tokens->tokens, out);
	if (rc == PODIO_OK && rt->metrics != NULL)
		podio_client_set_observer(*out, metrics_api_call, rt->metrics);
	return rc;
}

/* See runtime.h. */
void
runtime_deliver_ctx(const struct runtime *rt, struct podio_client *client,
    struct podio__deliver_ctx *ctx)
{
	memset(ctx, 0, sizeof(*ctx));
	ctx->client = client;
	ctx->regs[0] = rt->fns;
	ctx->regs[1] = rt->rules;
	ctx->exec_timeout_ms = rt->exec_timeout_ms;
	ctx->skip_self = rt->skip_self;
}

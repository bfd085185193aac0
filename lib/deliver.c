/*
 * deliver.c: what happens to an accepted delivery (see deliver.h).
 *
 * The statuses follow what a retry could change.  Podio refusing a
 * verify code is final for that delivery, but the answer must not be a
 * 200 (the hook stays inactive), so it is a 502, as is a Podio that
 * cannot be reached then.  An item that cannot be fetched for a passing
 * reason (network, rate limit, Podio's own trouble) is answered 503 so
 * that Podio may send it again; an item that is gone is not an error:
 * the callbacks learn of it through "item_error".  Callbacks are the
 * user's business: their failures are logged, never answered.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "api.h"
#include "deliver.h"
#include "event.h"
#include "log.h"

/* Fills status, err and the reason; returns the status. */
static int podio__deliver_answer(struct podio__deliver_result *res,
    int status, enum podio_err err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int
podio__deliver_answer(struct podio__deliver_result *res, int status,
    enum podio_err err, const char *fmt, ...)
{
	va_list ap;
	char *p;

	res->status = status;
	res->err = err;
	va_start(ap, fmt);
	(void)vsnprintf(res->reason, sizeof(res->reason), fmt, ap);
	va_end(ap);
	/* Podio's messages end up in here: keep the line printable. */
	for (p = res->reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return status;
}

/* Whether type names an item event whose item is fetched. */
static int
podio__deliver_fetches(const char *type)
{
	return strcmp(type, "item.create") == 0 ||
	    strcmp(type, "item.update") == 0;
}

/*
 * hook.verify: POST /hook/{hook_id}/verify/validate with the code.  A
 * code the client refuses to send (empty, too long, control
 * characters) is the sender's fault and never reaches Podio: 400.
 */
static int
podio__deliver_verify(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, struct podio__deliver_result *res)
{
	struct podio_tokens *t = podio_client_tokens(ctx->client);
	enum podio_err rc;
	long cred = podio_tokens_for_app(t, d->podio_app);
	size_t i, n = podio_tokens_count(t);

	/* With the credential of the hook's app (the delivery names it);
	 * when that is not known, a refusal (403, 404: the hook of an app
	 * the credential does not see) is tried with each other one. */
	(void)podio_client_use(ctx->client, cred >= 0 ? (size_t)cred : 0);
	rc = podio_hook_validate(ctx->client, d->hook_id, d->code);
	for (i = 1; i < n && (d->podio_app == 0 || cred < 0) &&
	    (rc == PODIO_ERR_FORBIDDEN || rc == PODIO_ERR_NOT_FOUND); i++) {
		(void)podio_client_use(ctx->client, i);
		rc = podio_hook_validate(ctx->client, d->hook_id, d->code);
	}
	if (rc == PODIO_OK)
		return podio__deliver_answer(res, 200, PODIO_OK,
		    "ok: hook %" PRIu64 " verified", d->hook_id);
	if (rc == PODIO_ERR_INVALID)
		return podio__deliver_answer(res, 400, rc,
		    "malformed delivery: %s",
		    podio_client_errmsg(ctx->client));
	if (rc == PODIO_ERR_NOMEM)
		return podio__deliver_answer(res, 500, rc, "out of memory");
	if (podio_err_is_transport(rc))
		return podio__deliver_answer(res, 502, rc,
		    "cannot reach Podio to validate hook %" PRIu64 ": %s",
		    d->hook_id, podio_client_errmsg(ctx->client));
	return podio__deliver_answer(res, 502, rc,
	    "Podio refused to validate hook %" PRIu64 ": %s", d->hook_id,
	    podio_client_errmsg(ctx->client));
}

/* See deliver.h. */
int
podio__deliver_check(const struct podio_delivery *d,
    struct podio__deliver_result *res)
{
	if (!podio__deliver_fetches(d->type))
		return 0;
	if (!(d->has & PODIO_HAS_ITEM_ID))
		return podio__deliver_answer(res, 400, PODIO_ERR_INVALID,
		    "malformed delivery: %s without an item_id", d->type);
	if (d->item_id == 0)
		return podio__deliver_answer(res, 400, PODIO_ERR_INVALID,
		    "malformed delivery: item_id 0 names no item");
	return 0;
}

/*
 * Fetches the item of an item.create/item.update into *item (the answer
 * as Podio sent it, caller frees) or sets res->item_error when the item
 * is gone.  Returns 0 to go on, or the status to answer.
 */
static int
podio__deliver_fetch(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, struct podio__deliver_result *res,
    char **item)
{
	enum podio_err rc;

	*item = NULL;
	if (podio__deliver_check(d, res) != 0)
		return res->status;
	rc = podio_item_get(ctx->client, d->item_id, item, NULL);
	switch (rc) {
	case PODIO_OK:
		res->fetched = 1;
		return 0;
	case PODIO_ERR_NOT_FOUND:
		res->item_error = "not_found";
		return 0;
	case PODIO_ERR_GONE:
		res->item_error = "gone";
		return 0;
	case PODIO_ERR_NOMEM:
		return podio__deliver_answer(res, 500, rc, "out of memory");
	default:
		return podio__deliver_answer(res, 503, rc,
		    "cannot fetch item %" PRIu64 ": %s", d->item_id,
		    podio_client_errmsg(ctx->client));
	}
}

/* Runs the event through every registry of ctx; fills the reports and
 * counts.  Returns 0, or the status to answer (500: out of memory). */
static int
podio__deliver_callbacks(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, const char *json, size_t len,
    struct podio__deliver_result *res)
{
	struct podio_callback_ids ids;
	enum podio_err rc;
	size_t i;

	memset(&ids, 0, sizeof(ids));
	ids.has_hook_id = (d->has & PODIO_HAS_HOOK_ID) != 0;
	ids.hook_id = d->hook_id;
	ids.has_item_id = (d->has & PODIO_HAS_ITEM_ID) != 0;
	ids.item_id = d->item_id;
	for (i = 0; i < PODIO__DELIVER_NREGS; i++) {
		if (ctx->regs[i] == NULL ||
		    podio_callbacks_count_matching(ctx->regs[i], d->type) == 0)
			continue;
		podio__log_flush();  /* no held line waits for a callback */
		rc = podio_callbacks_run_skip(ctx->regs[i], d->type, &ids,
		    json, len, ctx->exec_timeout_ms, ctx->skip, ctx->nskip,
		    &res->reports[i]);
		if (rc == PODIO_ERR_NOMEM || rc == PODIO_ERR_INVALID)
			return podio__deliver_answer(res, 500, rc,
			    "cannot run the callbacks: %s",
			    podio_strerror(rc));
		if (res->reports[i] != NULL) {
			res->ran += res->reports[i]->n;
			res->failed += res->reports[i]->failed;
			res->skipped += res->reports[i]->skipped;
		}
	}
	return 0;
}

/*
 * Whether item (item_len bytes, fetched for d) shows d's own revision,
 * made by the credential of ctx's client: 1 or 0 (also when any of it
 * cannot be read).  A coalesced fetch answers with the latest state, so
 * only the event of that revision can qualify.
 */
static int
podio__deliver_by_self(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, const char *item, size_t item_len)
{
	const char *self_type, *by_type, *end = NULL;
	uint64_t self_id, rev_id, by_id;
	cJSON *parsed;
	int self;

	if (!(d->has & PODIO_HAS_ITEM_REVISION_ID) ||
	    podio_client_self(ctx->client, &self_type, &self_id) != PODIO_OK)
		return 0;
	/* cJSON sets its global error pointer here; it is never read. */
	if ((parsed = cJSON_ParseWithLengthOpts(item, item_len, &end,
	    0)) == NULL)
		return 0;
	self = podio__api_revision(parsed, &rev_id, &by_type, &by_id) == 0 &&
	    rev_id == d->item_revision_id && by_id == self_id &&
	    strcmp(by_type, self_type) == 0;
	cJSON_Delete(parsed);
	return self;
}

/*
 * Builds the event of d with item (item_len bytes, or NULL), item_error
 * or neither, and item_source, and runs the callbacks (none when
 * ctx->skip_self and the event is by_self).  Returns the status, filling
 * res.
 */
static int
podio__deliver_event(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, const char *item, size_t item_len,
    const char *item_error, const char *item_source,
    struct podio__deliver_result *res)
{
	char *json = NULL;
	size_t len = 0;
	enum podio_err rc;
	int status;

	res->by_self = item != NULL ? podio__deliver_by_self(ctx, d, item,
	    item_len) : item_error != NULL ? 0 : -1;
	rc = podio__event_json(d, item, item_len, item_error, item_source,
	    res->by_self, 0, &json, &len);
	if (rc == PODIO_ERR_BAD_JSON) {
		/* Podio's answer passed the client's parser but not the
		 * strict check the event makes: Podio misbehaved. */
		status = podio__deliver_answer(res, 503, rc,
		    "cannot fetch item %" PRIu64 ": the answer is not valid "
		    "JSON", d->item_id);
		goto fail;
	}
	if (rc != PODIO_OK) {
		status = podio__deliver_answer(res, 500, rc,
		    "cannot build the event: %s", podio_strerror(rc));
		goto fail;
	}
	if (ctx->skip_self && res->by_self == 1) {
		res->self_skipped = 1;
		status = podio__deliver_answer(res, 200, PODIO_OK, "ok: made "
		    "by this receiver's own credential (by_self), settled "
		    "without callbacks (skip_self)");
		goto fail;
	}
	if ((status = podio__deliver_callbacks(ctx, d, json, len, res)) != 0)
		goto fail;
	if (res->failed > 0)
		status = podio__deliver_answer(res, 200, PODIO_OK,
		    "ok (%zu of %zu callbacks failed)", res->failed,
		    res->ran);
	else
		status = podio__deliver_answer(res, 200, PODIO_OK, "ok");
fail:
	free(json);
	return status;
}

/* See deliver.h. */
int
podio__deliver(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, struct podio__deliver_result *res)
{
	char *item = NULL;
	int status;

	memset(res, 0, sizeof(*res));
	res->by_self = -1;
	if (ctx == NULL || d == NULL || d->type == NULL) {
		status = podio__deliver_answer(res, 500, PODIO_ERR_INVALID,
		    "internal error: no delivery");
		goto fail;
	}
	if (strcmp(d->type, "hook.verify") == 0) {
		status = podio__deliver_verify(ctx, d, res);
		goto fail;
	}
	if (podio__deliver_fetches(d->type) &&
	    (status = podio__deliver_fetch(ctx, d, res, &item)) != 0)
		goto fail;
	status = podio__deliver_event(ctx, d, item,
	    item != NULL ? strlen(item) : 0,
	    item == NULL ? res->item_error : NULL,
	    item != NULL ? "get" : NULL, res);
fail:
	free(item);
	return status;
}

/* See deliver.h.  "not_found" and "gone" are kept as the static strings
 * podio__deliver() uses. */
int
podio__deliver_item(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, const char *item, size_t item_len,
    const char *item_error, const char *item_source,
    struct podio__deliver_result *res)
{
	memset(res, 0, sizeof(*res));
	res->by_self = -1;
	if (ctx == NULL || d == NULL || d->type == NULL)
		return podio__deliver_answer(res, 500, PODIO_ERR_INVALID,
		    "internal error: no delivery");
	if (strcmp(d->type, "hook.verify") == 0)
		return podio__deliver_answer(res, 500, PODIO_ERR_INVALID,
		    "internal error: a hook.verify is validated, not "
		    "delivered");
	if (item != NULL && item_error != NULL)
		return podio__deliver_answer(res, 500, PODIO_ERR_INVALID,
		    "internal error: both an item and an item error");
	if (podio__deliver_check(d, res) != 0)
		return res->status;
	if (item != NULL)
		res->fetched = 1;
	else if (item_error != NULL)
		res->item_error = strcmp(item_error, "not_found") == 0 ?
		    "not_found" : strcmp(item_error, "gone") == 0 ? "gone" :
		    item_error;
	return podio__deliver_event(ctx, d, item, item != NULL ? item_len : 0,
	    item == NULL ? item_error : NULL, item_source, res);
}

/* See deliver.h. */
void
podio__deliver_result_clear(struct podio__deliver_result *res)
{
	size_t i;

	if (res == NULL)
		return;
	for (i = 0; i < PODIO__DELIVER_NREGS; i++)
		podio_callback_report_free(res->reports[i]);
	memset(res, 0, sizeof(*res));
}

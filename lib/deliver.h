/*
 * deliver.h: what happens to an accepted delivery: a hook.verify is
 * validated with Podio; an item.create or item.update fetches its item;
 * every other type (item.delete, comment.*, file.change, types Podio adds
 * later) goes on with its parameters only; then the event JSON is built
 * and the callbacks run.  The result is the HTTP status and the one-line
 * answer the web server's client gets.
 *
 * No I/O of its own besides the Podio API and the callbacks, no global
 * state: a hook.verify request, the spool's processors (an event stored
 * by a request, see handler/process.c) and `podio-webhook emit` all go
 * through here.  Internal (podio__).
 */
#ifndef PODIO_DELIVER_H
#define PODIO_DELIVER_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/* The registries one delivery runs through, in this order. */
#define PODIO__DELIVER_NREGS 2

/* What a delivery may use.  Every pointer is borrowed for the call. */
struct podio__deliver_ctx {
	/* The calling thread's client (its token store shared). */
	struct podio_client *client;
	/* Registries run one after the other (NULL entries skipped): the
	 * embedding program's C functions, then the configuration's rule
	 * lines. */
	const struct podio_callbacks *regs[PODIO__DELIVER_NREGS];
	/* How long a command may run; <= 0: no limit. */
	int64_t exec_timeout_ms;
	/* Keys of the callbacks already done for this event (see struct
	 * podio_callback_result): they do not run again, in any registry.
	 * NULL and 0: run every matching callback. */
	const char *const *skip;
	size_t nskip;
	/* 1: an event whose "by_self" is true is settled without running
	 * any callback (the configuration's skip_self). */
	int skip_self;
};

/* What happened to one delivery. */
struct podio__deliver_result {
	/* The HTTP answer: 200 accepted; 400 malformed for this type (an
	 * item event without an item id, a verify code Podio could never
	 * accept: found before any API call); 502 Podio refused or could
	 * not be asked to validate a hook.verify; 503 the item could not be
	 * fetched (Podio may retry); 500 out of memory. */
	int status;
	/* One line of printable ASCII for the answer and the log; never the
	 * secret, the verify code, a token or the body. */
	char reason[256];
	/* The library error behind a status other than 200, else PODIO_OK. */
	enum podio_err err;
	/* 1 when the item was fetched (and embedded in the event). */
	int fetched;
	/* "not_found" or "gone" when the item no longer exists (the event
	 * then carries "item": null and this "item_error"); static or NULL
	 * (with podio__deliver_item(), another value is the caller's). */
	const char *item_error;
	/* Callbacks that ran, how many of them failed, and how many were
	 * left out because ctx->skip named them. */
	size_t ran;
	size_t failed;
	size_t skipped;
	/* The event's "by_self": 1 true, 0 false, -1 not carried (no item
	 * was fetched for its type).  self_skipped is 1 when ctx->skip_self
	 * settled it without callbacks (status 200, nothing ran). */
	int by_self;
	int self_skipped;
	/* What ran, one report per registry of the context (NULL where
	 * nothing ran); owned, freed by podio__deliver_result_clear(). */
	struct podio_callback_report *reports[PODIO__DELIVER_NREGS];
};

/*
 * Handles the accepted delivery d (from podio_webhook_decide() or
 * podio_delivery_new()) as described at the top (the item fetched with
 * GET /item/{id}: "item_source": "get"), filling *res (which the
 * caller clears with podio__deliver_result_clear(), whatever the
 * outcome).  A hook.verify is validated and never passed to callbacks.
 * A callback that fails does not change the status: the delivery was
 * received, and each failure is logged by the callbacks module.
 *
 * The loop guard: an event that carries an item (or "item": null) also
 * carries "by_self", true only when the item's current revision is the
 * event's own (its "current_revision"."item_revision_id" is the event's
 * item_revision_id) and was made by the client's own credential (its
 * "created_by" is podio_client_self()); false otherwise, and for an
 * item that is gone.  With ctx->skip_self such an event runs no
 * callback.  Returns res->status.
 */
int podio__deliver(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, struct podio__deliver_result *res);

/*
 * The same for a delivery whose item the caller already fetched (or
 * knows to be gone), e.g. once for several events of one item, or many
 * items in one filter call: no API call is made.  item (item_len bytes,
 * the item's JSON as Podio sent it) and item_source (how it was fetched:
 * "get", "filter"; may be NULL) give the event its "item" and
 * "item_source"; item_error ("not_found", "gone") instead gives
 * "item": null; neither gives no "item" (types that fetch nothing).
 * Then the callbacks run as with podio__deliver(), ctx->skip left out.
 * Statuses: 200 as podio__deliver(); 400 when podio__deliver_check()
 * finds d malformed; 503 when item is not valid JSON (Podio
 * misbehaved: a later fetch may do better); 500 for a hook.verify
 * (validated only by podio__deliver()), both item and item_error, an
 * item_source that is not [a-z_]{1,32}, or out of memory.  Fills *res
 * (cleared by the caller with podio__deliver_result_clear(), whatever
 * the outcome); item_error may be kept in res->item_error, so it must
 * outlive res.  Returns res->status.
 */
int podio__deliver_item(const struct podio__deliver_ctx *ctx,
    const struct podio_delivery *d, const char *item, size_t item_len,
    const char *item_error, const char *item_source,
    struct podio__deliver_result *res);

/*
 * What can be found wrong with d before any API call (an item.create or
 * item.update without an item id, or with item id 0): returns 0 when
 * nothing, else 400 with res's status, err and reason filled.  The
 * handler checks this before it stores an event, so that such a
 * delivery is answered 400 rather than stored and set aside later.
 */
int podio__deliver_check(const struct podio_delivery *d,
    struct podio__deliver_result *res);

/* Frees the reports of res and resets it.  Accepts a cleared result. */
void podio__deliver_result_clear(struct podio__deliver_result *res);

#endif

/*
 * runtime.h: what the handler serves with, made from one configuration:
 * the webhook settings, the callbacks (the embedding program's C
 * functions and the configuration's rule lines), the shared token store
 * and the limits.  A FastCGI server swaps in a new runtime on SIGHUP;
 * requests still running keep the one they started with (reference
 * counted).
 */
#ifndef PODIO_HANDLER_RUNTIME_H
#define PODIO_HANDLER_RUNTIME_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "deliver.h"

struct metrics;
struct runtime_tokens;

struct runtime {
	struct podio_config *cfg;               /* owned */
	/* The settings of podio_webhook_decide(); pointers into cfg. */
	struct podio_webhook_settings settings;
	uint64_t *allowed_hooks;                /* owned: settings' list */
	const struct podio_callbacks *fns;      /* borrowed, may be NULL */
	struct podio_callbacks *rules;          /* owned: on/log lines */
	struct podio_callbacks *on_dead;        /* owned: the on_dead
	                                           command, or NULL */
	int skip_self;                          /* skip_self */
	struct runtime_tokens *tokens;          /* shared with other
	                                           runtimes of the same
	                                           credentials */
	int64_t exec_timeout_ms;
	int64_t client_timeout_ms;  /* client_timeout */
	struct metrics *metrics;    /* borrowed: the server's counters, set
	                               before the runtime is in use; NULL
	                               without --metrics-listen */
	atomic_int refs;
};

/* Results of runtime_new() besides 0. */
#define RUNTIME_UNCONFIGURED (-1)  /* err says what is missing */
#define RUNTIME_NOMEM        (-2)

/*
 * Makes a runtime out of cfg, taking ownership of cfg (freed on failure
 * too), with fns (borrowed; must outlive every runtime) as the program's
 * C callbacks.  The handler refuses to run without webhook_secret unless
 * allow_no_secret is set, and without complete Podio credentials: then
 * RUNTIME_UNCONFIGURED with a short reason in err (never a value), e.g.
 * "webhook_secret is not set".  When prev (may be NULL) has the same
 * credentials, API URL and token cache, its token store is shared, so a
 * reload costs no token request.  *out has one reference, dropped with
 * runtime_unref().  Returns 0, RUNTIME_UNCONFIGURED or RUNTIME_NOMEM.
 */
int runtime_new(struct podio_config *cfg, const struct podio_callbacks *fns,
    const struct runtime *prev, struct runtime **out, char *err,
    size_t errlen);

/* Takes one more reference; returns rt. */
struct runtime *runtime_ref(struct runtime *rt);
/* Drops one reference; the last frees rt.  Accepts NULL. */
void runtime_unref(struct runtime *rt);

/* A new client over the runtime's token store (one per thread), its
 * API calls counted in rt's metrics when there are; the caller frees it
 * with podio_client_free() before its last reference to rt goes. */
enum podio_err runtime_client(const struct runtime *rt,
    struct podio_client **out);

/* Fills ctx for podio__deliver() with client and rt's callbacks. */
void runtime_deliver_ctx(const struct runtime *rt,
    struct podio_client *client, struct podio__deliver_ctx *ctx);

#endif

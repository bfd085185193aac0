/*
 * creds.h: which credential the API calls of an event use, when the
 * configuration holds several (app lines beside app_id/app_token or the
 * password flow; see podio_config_credential()).
 *
 * An event's calls use the credential of its hook's app.  The app comes
 * from the delivery (the hook's URL names it: PODIO_APP_PARAM), else
 * from the map of hooks to apps the spool keeps, which is learned from
 * the hook lists of the configured apps (GET /hook/app/ID/, each with
 * its own credential) and from the items fetched.  When the app is still
 * unknown, or no credential is configured for it, the first credential
 * is used and the credential is not "sure": a 403 or 404 is then tried
 * with the other credentials before it counts (process.c).
 */
#ifndef PODIO_HANDLER_CREDS_H
#define PODIO_HANDLER_CREDS_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "spool.h"
#include "runtime.h"

/* Lists the configured apps' hooks again at most this often (per
 * process): a hook created since is learned from its first item. */
#define CREDS_LIST_EVERY_MS (10 * 60 * 1000)

/* The number of credentials of cfg (at least 1 when it is usable). */
size_t creds_count(const struct podio_config *cfg);

/*
 * The credential of client's store for the calls made for app app_id
 * (0: unknown).  *sure is set to 1 when it is known to see the app: the
 * app's own credential, or the password flow's (which sees every app of
 * its user); else the first credential is returned and *sure is 0.
 */
size_t creds_for_app(struct podio_client *client, uint64_t app_id,
    int *sure);

/*
 * When the shared API budget of every credential of rt holds the item
 * fetches (a 420 pause, an outage, the reserve): the earliest time one
 * of them may open (ms since the epoch), with why (size whylen) saying
 * why for the first credential.  0 as soon as one credential may fetch.
 */
int64_t creds_all_held_until(const struct runtime *rt,
    struct podio_spool *spool, long reserve, char *why, size_t whylen);

/*
 * Lists the hooks of every configured app with that app's credential
 * (budget permitting: each call asks budget_gate() and tells
 * budget_note_call()) and learns the app of each hook, in the spool
 * (podio_spool_learn_app()) and through learned(hook, app).  Done at
 * most once per CREDS_LIST_EVERY_MS in a process (a call that comes
 * sooner returns 0 at once).  With one credential nothing is listed.
 * The client is left using credential 0.  Returns the number of hooks
 * learned.
 */
size_t creds_list_hooks(const struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, void (*learned)(uint64_t, uint64_t));

#endif

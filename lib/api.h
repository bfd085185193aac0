/*
 * api.h: reading the answers of the Podio API.  Each function takes the
 * body of a 2xx answer (len bytes, exactly as received, NUL-terminated
 * after them) and checks its shape before anything of it is used: pure
 * functions over bytes, shared by the client (podio.c) and the tests.
 * Internal.
 *
 * A failure returns PODIO_ERR_BAD_JSON with a short reason in why (size
 * whylen), such as "the answer is not an object", which the client puts
 * in its message beside the HTTP status; or PODIO_ERR_NOMEM with "out of
 * memory".  The outputs are then empty.  Error answers (4xx, 5xx) are
 * read by errors.h instead.
 */
#ifndef PODIO_API_H
#define PODIO_API_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/*
 * Parses an answer.  Anything but one complete JSON value (trailing
 * garbage, an embedded NUL) fails.  *out receives the parse, which the
 * caller frees with cJSON_Delete(); NULL on failure.
 */
enum podio_err podio__api_parse(const char *text, size_t len,
    struct cJSON **out, char *why, size_t whylen);

/*
 * Reads a JSON id: a non-negative integral number exactly representable
 * in a double (Podio's ids are far below 2^53), or a decimal string (see
 * podio_parse_u64()).  Returns 0 with *out set, -1 when v is no such id.
 */
int podio__api_u64(const struct cJSON *v, uint64_t *out);

/* The answer of POST /hook/{ref_type}/{ref_id}/: an object with a
 * "hook_id", stored in *hook_id (0 on failure). */
enum podio_err podio__api_hook_id(const char *text, size_t len,
    uint64_t *hook_id, char *why, size_t whylen);

/*
 * The answer of GET /hook/{ref_type}/{ref_id}/: an array of objects,
 * each with a "hook_id"; "status", "type" and "url" are copied when they
 * are strings, else "".  *hooks receives *n hooks, which the caller
 * frees with podio_hooks_free() (NULL and 0 for an empty list and on
 * failure).
 */
enum podio_err podio__api_hooks(const char *text, size_t len,
    struct podio_hook **hooks, size_t *n, char *why, size_t whylen);

/* The answer of GET /item/{item_id}: a JSON object, whose parse *item
 * receives (the caller frees it with cJSON_Delete()). */
enum podio_err podio__api_item(const char *text, size_t len,
    struct cJSON **item, char *why, size_t whylen);

/*
 * Who made the current revision of a parsed item (item, an object of
 * GET /item/{id} or of a filter answer): its "current_revision" object's
 * "item_revision_id" (the id hooks send, not the revision number) into
 * *revision_id, and its "created_by" object's "type" ("user", "app";
 * borrowed from item) and "id" (for an app, the app id) into *by_type
 * and *by_id.  Returns 0, or -1 when any of them is missing or not of
 * its kind (the outputs then undefined).
 */
int podio__api_revision(const struct cJSON *item, uint64_t *revision_id,
    const char **by_type, uint64_t *by_id);

/*
 * The answer of POST /item/app/{app_id}/filter/ for the n ids of ids
 * (1 to PODIO_ITEM_FILTER_MAX; otherwise PODIO_ERR_INVALID):
 * {"items": [...]} with at most n items, each an object with an
 * "item_id".  texts is the caller's array of n pointers; texts[i]
 * receives the bytes of the item whose id is ids[i] exactly as the
 * answer holds them, NUL-terminated (the caller frees it), or stays
 * NULL when the answer lacks it; a repeated id gets a copy in each
 * place.  On failure every texts[i] is NULL.
 */
enum podio_err podio__api_filter(const char *text, size_t len,
    const uint64_t *ids, size_t n, char **texts, char *why, size_t whylen);

/*
 * The answer of the filter podio_item_changes() makes: {"items": [...]}
 * with at most limit items, each an object with an "item_id".  *out
 * receives *n changes (the caller frees the array; NULL when none),
 * *total the "filtered" count or -1.
 */
enum podio_err podio__api_changes(const char *text, size_t len,
    size_t limit, struct podio_item_change **out, size_t *n, long *total,
    char *why, size_t whylen);

/* A Podio date "YYYY-MM-DD HH:MM:SS" (UTC) in ms since the epoch, or -1
 * when s is not one. */
int64_t podio__api_date_ms(const char *s);

#endif

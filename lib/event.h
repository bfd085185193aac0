/*
 * event.h: the event JSON, the one contract between the receiving side
 * and every callback (commands, C functions, JSON-lines logs).
 *
 * The first part is public (it moves into podio.h as is, after the
 * webhook part it uses); the second part is internal to the library.
 */
#ifndef PODIO_EVENT_H
#define PODIO_EVENT_H

#include <stddef.h>

#include "podio.h"
#include "util.h"
#include "webhook.h"

/* ----------------------------------------------------------- public: event */

/*
 * Builds the event of a delivery as one line of JSON (no newline in it,
 * none at the end), members in this order:
 *   {"type": "item.update", "hook_id": 1001, "item_id": 42,
 *    "item_revision_id": 7, "external_id": "x", "params": {...},
 *    "item": {...}}
 * - "type", then each known id the delivery carries (hook_id, item_id,
 *   item_revision_id, comment_id, app_id, form_id, task_id), a JSON
 *   number printed exactly from its 64-bit value;
 * - "external_id", a string, when the delivery has one;
 * - "params": every parameter as a string, in the delivery's order,
 *   except "secret";
 * - with item (item_len bytes, e.g. the GET /item answer as Podio sent
 *   it): "item" holding that text byte for byte (only line breaks
 *   between tokens become spaces, and white space around the value is
 *   dropped, so the event stays on one line); the text must be exactly
 *   one JSON value (RFC 8259, valid UTF-8, nesting at most 512 deep),
 *   else PODIO_ERR_BAD_JSON;
 * - with item_error instead (e.g. "not_found", "gone"): "item": null and
 *   "item_error": item_error;
 * - with neither: no "item" member.
 * New members are only ever added, never renamed or removed.
 *
 * On success *out receives the NUL-terminated text, which the caller
 * frees, and *out_len (if not NULL) its length.  Fails with
 * PODIO_ERR_INVALID (no delivery or no type, or both item and
 * item_error), PODIO_ERR_BAD_JSON, PODIO_ERR_TOO_LARGE (longer than cap
 * bytes; cap 0 = no limit) or PODIO_ERR_NOMEM; *out is then NULL.
 */
enum podio_err podio_event_json(const struct podio_delivery *delivery,
    const char *item, size_t item_len, const char *item_error, size_t cap,
    char **out, size_t *out_len);

/* ------------------------------------------------------- internal: event */

/* The deepest nesting of arrays and objects accepted in an item. */
#define PODIO__JSON_MAX_DEPTH 512

/*
 * Appends s (n bytes of valid UTF-8) to b as a JSON string with its
 * quotes: '"' and '\\' are escaped with a backslash, every byte below
 * 0x20 as \u00XX (lower-case hex); everything else is copied.  Returns
 * podio__buf_append()'s result (0, -1 out of memory, -2 over the cap).
 */
int podio__json_string(struct podio__buf *b, const char *s, size_t n);

/*
 * Whether text (len bytes) is exactly one JSON value by RFC 8259,
 * surrounded by optional white space, with valid UTF-8 in its strings
 * and nesting at most PODIO__JSON_MAX_DEPTH deep: 1 or 0.
 */
int podio__json_valid(const char *text, size_t len);

#endif

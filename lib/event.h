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

/* The public part of this module is declared in podio.h. */

/* ------------------------------------------------------- internal: event */

/* The "source" of an event that a backfill made (podio_delivery's
 * source). */
#define PODIO_EVENT_SOURCE_BACKFILL "backfill"

/* The deepest nesting of arrays and objects accepted in an item. */
#define PODIO__JSON_MAX_DEPTH 512

/*
 * podio_event_json() with one member more: with by_self >= 0 and an
 * item or item_error, "by_self": true (by_self 1) or false (0) comes
 * last, after "item_source" or "item_error": whether the item's current
 * revision is the event's own and was made by the receiver's own
 * credential (see podio__deliver()).  With by_self < 0, or neither item
 * nor item_error, there is no "by_self".  Fails as podio_event_json().
 */
enum podio_err podio__event_json(const struct podio_delivery *delivery,
    const char *item, size_t item_len, const char *item_error,
    const char *item_source, int by_self, size_t cap, char **out,
    size_t *out_len);

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

/*
 * The delivery of a stored event, rebuilt from the "params" member of
 * its JSON (json, len bytes, NUL-terminated; see podio_event_json()):
 * the parameters, "secret" aside, go through the same decoding and
 * checks as a request's (podio_params_parse(), podio_delivery_new()).
 * On success *out receives it (the caller frees it with
 * podio_delivery_free()).  Returns PODIO_OK, PODIO_ERR_NOMEM, or
 * PODIO_ERR_BAD_JSON / PODIO_ERR_INVALID for a record that cannot be
 * decoded, with the reason in why (size whylen).  The caller caps len.
 */
enum podio_err podio__event_delivery(const char *json, size_t len,
    struct podio_delivery **out, char *why, size_t whylen);

#endif

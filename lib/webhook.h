/*
 * webhook.h: the decision for one webhook request: which HTTP answer it
 * gets and, when it is accepted, the delivery it carries.  Pure functions
 * over the request's bytes; the FastCGI/CGI adapter in handler/ supplies
 * them and writes the answer.
 *
 * The first part is public (it moves into podio.h as is, after the
 * params part it uses); the second part is internal to the library.
 */
#ifndef PODIO_WEBHOOK_H
#define PODIO_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "params.h"

/* The public part of this module is declared in podio.h. */

/* ------------------------------------------------------ internal: webhook */

/*
 * The known ids in their JSON order: the i-th id's parameter name (e.g.
 * "item_id") in *name, its value in *value.  Returns 1 when delivery
 * carries it, 0 when not, -1 when i is past the end.
 */
int podio__delivery_id(const struct podio_delivery *delivery, size_t i,
    const char **name, uint64_t *value);

/*
 * Compares the given text (glen bytes) with the secret (slen bytes) in
 * time that depends on glen only: no early exit on the first difference,
 * and the secret's length does not decide how long the loop runs.
 * Returns 1 when they are equal, else 0.
 */
int podio__ct_equal(const char *given, size_t glen, const char *secret,
    size_t slen);

/* Whether a CONTENT_TYPE names application/x-www-form-urlencoded. */
int podio__is_form_type(const char *content_type);

#endif

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

/* --------------------------------------------------------- public: webhook */

/* Defaults of the settings below (configuration keys max_body and
 * max_params). */
#define PODIO_WEBHOOK_MAX_BODY   (64 * 1024)
#define PODIO_WEBHOOK_MAX_PARAMS 256

/* The longest event type accepted ([a-z0-9_.-]{1,64}). */
#define PODIO_WEBHOOK_MAX_TYPE   64

/* What the handler accepts.  Every pointer is borrowed for the call. */
struct podio_webhook_settings {
	/* webhook_secret: the value every delivery must carry in its
	 * "secret" parameter.  NULL or "" means none is configured: then
	 * every delivery is refused with 403 unless allow_no_secret is set. */
	const char *secret;
	int allow_no_secret;
	/* allowed_hooks: when n_allowed_hooks > 0, only these hook ids. */
	const uint64_t *allowed_hooks;
	size_t n_allowed_hooks;
	/* 0 takes the defaults above. */
	size_t max_body;
	size_t max_params;
};

/* One request as the web server described it.  Every pointer is
 * borrowed; query and body need not be NUL-terminated. */
struct podio_webhook_request {
	const char *method;        /* REQUEST_METHOD; NULL if unset */
	const char *content_type;  /* CONTENT_TYPE; NULL if unset */
	int has_content_length;    /* CONTENT_LENGTH was given (and parsed) */
	uint64_t content_length;
	const char *query;         /* QUERY_STRING without '?'; NULL = none */
	size_t query_len;
	const char *body;          /* the bytes read; NULL when body_len is 0 */
	size_t body_len;
};

/* The answer: status, one line of text/plain, one optional header. */
struct podio_webhook_answer {
	int status;          /* 200, 400, 403, 405, 411, 413, 415; 500 only
	                        when out of memory; 0 from
	                        podio_webhook_check_head() = go on */
	const char *header;  /* "Allow: POST" with 405, else NULL; static */
	char reason[160];    /* printable ASCII, no newline; it never holds
	                        the secret, and at most a short sanitized
	                        snippet of the input */
};

/* Bits of podio_delivery.has: which known ids the delivery carried. */
#define PODIO_HAS_HOOK_ID          (1u << 0)
#define PODIO_HAS_ITEM_ID          (1u << 1)
#define PODIO_HAS_ITEM_REVISION_ID (1u << 2)
#define PODIO_HAS_COMMENT_ID       (1u << 3)
#define PODIO_HAS_APP_ID           (1u << 4)
#define PODIO_HAS_FORM_ID          (1u << 5)
#define PODIO_HAS_TASK_ID          (1u << 6)

/*
 * An accepted delivery.  The strings are borrowed from params, which the
 * delivery owns; podio_delivery_free() frees both.  hook_id is always
 * present; an id whose bit is clear in has is 0.
 */
struct podio_delivery {
	const char *type;          /* e.g. "item.update" */
	unsigned has;              /* PODIO_HAS_* bits */
	uint64_t hook_id;
	uint64_t item_id;
	uint64_t item_revision_id;
	uint64_t comment_id;
	uint64_t app_id;
	uint64_t form_id;
	uint64_t task_id;
	const char *external_id;   /* NULL when absent */
	const char *code;          /* the "code" parameter (hook.verify);
	                              NULL when absent */
	struct podio_params *params; /* every merged parameter, "secret"
	                                included */
};

/*
 * Checks what can be checked before the body is read, in the order of
 * podio_webhook_decide(): 405 (with "Allow: POST") for a method other
 * than POST, 411 without a Content-Length, 413 when the announced length
 * or the query string exceeds max_body.  Returns 1 with ans->status 0
 * when the adapter may read exactly content_length bytes and call
 * podio_webhook_decide(); else 0 with the answer filled in.
 */
int podio_webhook_check_head(const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans);

/*
 * Decides the answer to one request, in this order, so that a client
 * without the secret learns nothing about what its body would have done:
 *   405  the method is not POST (ans->header "Allow: POST");
 *   411  no Content-Length;
 *   413  the body (announced or read) or the query string is longer than
 *        max_body; more name=value pieces in the query and a form body
 *        together than max_params; a name longer than
 *        PODIO_PARAMS_MAX_KEY (a body that is not a form has no
 *        parameters, so only its size counts here);
 *   415  the content type is not application/x-www-form-urlencoded
 *        (case-insensitive, parameters such as "; charset=UTF-8" allowed);
 *   400  the body cannot be decoded: fewer or more bytes than
 *        Content-Length, or a NUL byte in a name or value;
 *   403  a secret is configured and the "secret" parameter is missing or
 *        wrong (compared in constant time), or none is configured and
 *        allow_no_secret is off; then, with allowed_hooks, a hook_id
 *        missing or not an id gives 400 and one not in the list 403;
 *   400  a malformed delivery (see podio_delivery_new());
 *   200  accepted: *out (if out is not NULL) receives the delivery, which
 *        the caller frees with podio_delivery_free().
 * The query string is parsed before the body, so body parameters win.
 * Whether a hook.verify is then validated with Podio (and answered 502
 * when Podio refuses) is the caller's business.
 * Returns PODIO_OK whenever an answer was decided, PODIO_ERR_NOMEM (with a
 * 500 answer) on out of memory.  *out is NULL unless the status is 200.
 */
enum podio_err podio_webhook_decide(
    const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans, struct podio_delivery **out);

/*
 * Makes a delivery out of params, taking ownership of params (freed on
 * failure too).  Malformed, failing with PODIO_ERR_INVALID and a reason
 * line in reason (size reasonlen; may be NULL): no "type", a type outside
 * [a-z0-9_.-]{1,64}, no "hook_id", a known id (hook_id, item_id,
 * item_revision_id, comment_id, app_id, form_id, task_id) present but not
 * a strict unsigned 64-bit decimal, a hook.verify without a non-empty
 * "code".  PODIO_ERR_NOMEM on out of memory.  On success *out is freed by
 * the caller with podio_delivery_free().  Used for requests and for saved
 * deliveries alike.
 */
enum podio_err podio_delivery_new(struct podio_params *params,
    struct podio_delivery **out, char *reason, size_t reasonlen);

/* Frees the delivery and its params.  Accepts NULL. */
void podio_delivery_free(struct podio_delivery *delivery);

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

/*
 * webhook.c: the decision for one webhook request (see webhook.h).
 *
 * Everything here works on bytes handed in by the adapter: no I/O, no
 * global state, so every status and the order in which they are decided
 * can be tested without a socket.  The order is the contract: cheap
 * header checks, then limits, then the content type, then decoding, then
 * the secret, and only after the secret anything that depends on what
 * the parameters say, so a client without the secret learns nothing
 * about how its body would have been judged.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "podio.h"
#include "params.h"
#include "util.h"
#include "webhook.h"

/* The longest piece of input quoted in a reason, and the size of its
 * quoted form (quotes, "..." and NUL included). */
#define PODIO__SNIPPET 32
#define PODIO__QUOTED (PODIO__SNIPPET + 6)

/* The known ids, in the order the event JSON prints them. */
static const struct {
	const char *name;
	unsigned bit;
	size_t offset;
} podio__ids[] = {
	{ "hook_id", PODIO_HAS_HOOK_ID,
	    offsetof(struct podio_delivery, hook_id) },
	{ "item_id", PODIO_HAS_ITEM_ID,
	    offsetof(struct podio_delivery, item_id) },
	{ "item_revision_id", PODIO_HAS_ITEM_REVISION_ID,
	    offsetof(struct podio_delivery, item_revision_id) },
	{ "comment_id", PODIO_HAS_COMMENT_ID,
	    offsetof(struct podio_delivery, comment_id) },
	{ "app_id", PODIO_HAS_APP_ID,
	    offsetof(struct podio_delivery, app_id) },
	{ "form_id", PODIO_HAS_FORM_ID,
	    offsetof(struct podio_delivery, form_id) },
	{ "task_id", PODIO_HAS_TASK_ID,
	    offsetof(struct podio_delivery, task_id) },
};
#define PODIO__NIDS (sizeof(podio__ids) / sizeof(podio__ids[0]))

/* Fills the answer; the reason is formatted and cut to fit. */
static void podio__answer(struct podio_webhook_answer *ans, int status,
    const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void
podio__answer(struct podio_webhook_answer *ans, int status,
    const char *fmt, ...)
{
	va_list ap;

	ans->status = status;
	ans->header = status == 405 ? "Allow: POST" : NULL;
	va_start(ap, fmt);
	(void)vsnprintf(ans->reason, sizeof(ans->reason), fmt, ap);
	va_end(ap);
}

/*
 * Writes a quoted form of s into out (size n >= PODIO__QUOTED): in
 * double quotes, at most PODIO__SNIPPET bytes, each printable ASCII byte
 * other than '"' and '\\' kept and every other byte (control, non-ASCII)
 * turned into '?', then "..." when s was longer.  When s holds one of the
 * non-empty texts of hide (NULL-terminated; hide may be NULL), the
 * configured secrets, sent in the wrong parameter by a client that has
 * them, out is "(not shown)" instead: a reason is logged and answered,
 * and never holds a secret.  Reasons quote input only this way.
 */
static void
podio__snippet(const char *s, const char *const *hide, char *out, size_t n)
{
	size_t i, len;
	unsigned char c;

	for (; hide != NULL && *hide != NULL; hide++)
		if ((*hide)[0] != '\0' && strstr(s, *hide) != NULL) {
			podio__strlcpy(out, "(not shown)", n);
			return;
		}
	len = strlen(s);
	out[0] = '"';
	for (i = 0; i < len && i < PODIO__SNIPPET && i + 6 < n; i++) {
		c = (unsigned char)s[i];
		out[i + 1] = (c >= 0x20 && c < 0x7F && c != '"' &&
		    c != '\\') ? (char)c : '?';
	}
	podio__strlcpy(out + i + 1, i < len ? "...\"" : "\"", n - i - 1);
}

/* See webhook.h. */
int
podio__ct_equal(const char *given, size_t glen, const char *secret,
    size_t slen)
{
	const volatile unsigned char *g = (const unsigned char *)given;
	const volatile unsigned char *s = (const unsigned char *)secret;
	unsigned acc;
	size_t i, mask;

	if (slen == 0)
		return glen == 0;
	acc = (unsigned)(glen != slen);
	for (i = 0; i < glen; i++) {
		/* Past the secret's end compare with its first byte: the
		 * index is masked rather than branched on, and the length
		 * difference already made acc non-zero. */
		mask = (size_t)0 - (size_t)(i < slen);
		acc |= (unsigned)(g[i] ^ s[i & mask]);
	}
	return acc == 0;
}

/* See webhook.h.  "type/subtype" case-insensitive, optional white space
 * around it, then the end or ';' and parameters (charset is ignored: the
 * WHATWG parser decodes UTF-8 whatever a sender says). */
int
podio__is_form_type(const char *content_type)
{
	static const char form[] = "application/x-www-form-urlencoded";
	const char *p = content_type;

	if (p == NULL)
		return 0;
	while (*p == ' ' || *p == '\t')
		p++;
	if (strncasecmp(p, form, sizeof(form) - 1) != 0)
		return 0;
	p += sizeof(form) - 1;
	while (*p == ' ' || *p == '\t')
		p++;
	return *p == '\0' || *p == ';';
}

/* The configured limits, defaults applied. */
static size_t
podio__max_body(const struct podio_webhook_settings *s)
{
	return s->max_body != 0 ? s->max_body : PODIO_WEBHOOK_MAX_BODY;
}

static size_t
podio__max_params(const struct podio_webhook_settings *s)
{
	return s->max_params != 0 ? s->max_params : PODIO_WEBHOOK_MAX_PARAMS;
}

/* See webhook.h. */
int
podio_webhook_check_head(const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans)
{
	size_t max_body = podio__max_body(settings);

	memset(ans, 0, sizeof(*ans));
	if (req->method == NULL || strcmp(req->method, "POST") != 0) {
		podio__answer(ans, 405, "method not allowed: use POST");
		return 0;
	}
	if (!req->has_content_length) {
		podio__answer(ans, 411, "length required");
		return 0;
	}
	if (req->content_length > max_body || req->body_len > max_body) {
		podio__answer(ans, 413, "request body too large (limit %zu "
		    "bytes)", max_body);
		return 0;
	}
	if (req->query_len > max_body) {
		podio__answer(ans, 413, "query string too large (limit %zu "
		    "bytes)", max_body);
		return 0;
	}
	return 1;
}

/*
 * The check of a known id: 1 when absent, 0 when present and valid (its
 * value stored in *v), -1 when present and not a strict u64 (reason
 * filled, quoting the value unless it holds a text of hide: see
 * podio__snippet()).
 */
static int
podio__parse_id(const struct podio_params *params, const char *name,
    const char *const *hide, uint64_t *v, char *reason, size_t reasonlen)
{
	const char *text;
	char snip[PODIO__QUOTED];

	if ((text = podio_params_get(params, name)) == NULL)
		return 1;
	if (podio_parse_u64(text, v) == 0)
		return 0;
	if (reason != NULL) {
		podio__snippet(text, hide, snip, sizeof(snip));
		snprintf(reason, reasonlen, "malformed delivery: %s is not "
		    "an unsigned 64-bit integer: %s", name, snip);
	}
	return -1;
}

/* Whether type matches [a-z0-9_.-]{1,64}. */
static int
podio__type_ok(const char *type)
{
	size_t i;
	char c;

	for (i = 0; (c = type[i]) != '\0'; i++) {
		if (i >= PODIO_WEBHOOK_MAX_TYPE)
			return 0;
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return i > 0;
}

/* podio_delivery_new(), whose reasons quote no value holding a text of
 * hide (see podio__snippet()).  The checks go in the order of their
 * reasons: type, then the ids in JSON order, then what a type needs. */
static enum podio_err
podio__delivery_make(struct podio_params *params, const char *const *hide,
    struct podio_delivery **out, char *reason, size_t reasonlen)
{
	struct podio_delivery *d = NULL;
	enum podio_err err = PODIO_ERR_INVALID;
	char snip[PODIO__QUOTED];
	char dummy[1];
	size_t i;
	int rc;

	*out = NULL;
	if (reason == NULL) {
		reason = dummy;
		reasonlen = sizeof(dummy);
	}
	if ((d = calloc(1, sizeof(*d))) == NULL) {
		snprintf(reason, reasonlen, "out of memory");
		err = PODIO_ERR_NOMEM;
		goto fail;
	}
	d->params = params;
	params = NULL;
	if ((d->type = podio_params_get(d->params, "type")) == NULL) {
		snprintf(reason, reasonlen, "malformed delivery: missing type");
		goto fail;
	}
	if (!podio__type_ok(d->type)) {
		podio__snippet(d->type, hide, snip, sizeof(snip));
		snprintf(reason, reasonlen, "malformed delivery: bad type "
		    "%s (expected [a-z0-9_.-]{1,%d})", snip,
		    PODIO_WEBHOOK_MAX_TYPE);
		goto fail;
	}
	if (podio_params_get(d->params, "hook_id") == NULL) {
		snprintf(reason, reasonlen,
		    "malformed delivery: missing hook_id");
		goto fail;
	}
	for (i = 0; i < PODIO__NIDS; i++) {
		rc = podio__parse_id(d->params, podio__ids[i].name, hide,
		    (uint64_t *)(void *)((char *)d + podio__ids[i].offset),
		    reason, reasonlen);
		if (rc < 0)
			goto fail;
		if (rc == 0)
			d->has |= podio__ids[i].bit;
	}
	/* The app of the hook, as `hooks create` puts it in the hook's URL:
	 * a value that is not an id is no reason to lose the event, which
	 * then finds its credential as a hook created without it does. */
	if (podio_parse_u64(podio_params_get(d->params, PODIO_APP_PARAM),
	    &d->podio_app) != 0)
		d->podio_app = 0;
	d->external_id = podio_params_get(d->params, "external_id");
	d->code = podio_params_get(d->params, "code");
	if (strcmp(d->type, "hook.verify") == 0 &&
	    (d->code == NULL || d->code[0] == '\0')) {
		snprintf(reason, reasonlen,
		    "malformed delivery: hook.verify without code");
		goto fail;
	}
	if (reason != dummy && reasonlen > 0)
		reason[0] = '\0';
	*out = d;
	return PODIO_OK;
fail:
	podio_params_free(params);
	podio_delivery_free(d);
	return err;
}

/* See webhook.h. */
enum podio_err
podio_delivery_new(struct podio_params *params, struct podio_delivery **out,
    char *reason, size_t reasonlen)
{
	return podio__delivery_make(params, NULL, out, reason, reasonlen);
}

/* See webhook.h. */
void
podio_delivery_free(struct podio_delivery *delivery)
{
	if (delivery == NULL)
		return;
	podio_params_free(delivery->params);
	free(delivery);
}

/* See webhook.h. */
int
podio__delivery_id(const struct podio_delivery *delivery, size_t i,
    const char **name, uint64_t *value)
{
	if (i >= PODIO__NIDS)
		return -1;
	if (name != NULL)
		*name = podio__ids[i].name;
	if (value != NULL)
		*value = *(const uint64_t *)(const void *)
		    ((const char *)delivery + podio__ids[i].offset);
	return (delivery->has & podio__ids[i].bit) != 0;
}

/*
 * The 403 step: 0 when the secret check passes, else -1 with the answer
 * filled in.  The reason says only what the client sent or failed to
 * send, never anything about the configured values.  With a previous
 * secret the given value is compared with both, always both, each in
 * time that depends on the given value's length only, so the time taken
 * does not tell which one matched; ans->previous_secret says it.
 */
static int
podio__check_secret(const struct podio_webhook_settings *settings,
    const struct podio_params *params, struct podio_webhook_answer *ans)
{
	const char *given, *prev = settings->previous_secret;
	size_t glen;
	int cur_ok, prev_ok = 0;

	if (settings->secret == NULL || settings->secret[0] == '\0') {
		if (settings->allow_no_secret)
			return 0;
		podio__answer(ans, 403, "forbidden: no webhook secret is "
		    "configured");
		return -1;
	}
	if ((given = podio_params_get(params, "secret")) == NULL) {
		podio__answer(ans, 403, "forbidden: missing secret");
		return -1;
	}
	glen = strlen(given);
	cur_ok = podio__ct_equal(given, glen, settings->secret,
	    strlen(settings->secret));
	if (prev != NULL && prev[0] != '\0')
		prev_ok = podio__ct_equal(given, glen, prev, strlen(prev));
	if (!(cur_ok | prev_ok)) {
		podio__answer(ans, 403, "forbidden: wrong secret");
		return -1;
	}
	ans->previous_secret = !cur_ok;
	return 0;
}

/*
 * The allowed_hooks step, after the secret: 0 when allowed (or no list),
 * else -1 with a 400 (hook_id missing or not an id) or 403 answer.
 */
static int
podio__check_hook(const struct podio_webhook_settings *settings,
    const char *const *hide, const struct podio_params *params,
    struct podio_webhook_answer *ans)
{
	char reason[sizeof(ans->reason)];
	uint64_t id;
	size_t i;
	int rc;

	if (settings->n_allowed_hooks == 0)
		return 0;
	rc = podio__parse_id(params, "hook_id", hide, &id, reason,
	    sizeof(reason));
	if (rc > 0) {
		podio__answer(ans, 400, "malformed delivery: missing hook_id");
		return -1;
	}
	if (rc < 0) {
		podio__answer(ans, 400, "%s", reason);
		return -1;
	}
	for (i = 0; i < settings->n_allowed_hooks; i++)
		if (settings->allowed_hooks[i] == id)
			return 0;
	podio__answer(ans, 403, "forbidden: hook %llu is not in allowed_hooks",
	    (unsigned long long)id);
	return -1;
}

/* See webhook.h. */
enum podio_err
podio_webhook_decide(const struct podio_webhook_settings *settings,
    const struct podio_webhook_request *req,
    struct podio_webhook_answer *ans, struct podio_delivery **out)
{
	struct podio_params *params = NULL;
	struct podio_delivery *d = NULL;
	const char *hide[3] = { NULL, NULL, NULL };
	size_t nhide = 0;
	const char *why = NULL;
	const char *query = req->query != NULL ? req->query : "";
	const char *body = req->body != NULL ? req->body : "";
	size_t query_len = req->query != NULL ? req->query_len : 0;
	size_t body_len = req->body != NULL ? req->body_len : 0;
	size_t count = 0;
	enum podio_err err = PODIO_OK;
	int form;

	if (out != NULL)
		*out = NULL;
	/* The secrets no reason may quote, the NULL ones left out. */
	if (settings->secret != NULL)
		hide[nhide++] = settings->secret;
	if (settings->previous_secret != NULL)
		hide[nhide++] = settings->previous_secret;
	/* 405, 411, 413 on sizes */
	if (!podio_webhook_check_head(settings, req, ans))
		goto fail;

	/* 413 on the parameter limits; a body only has parameters when it
	 * is a form */
	form = podio__is_form_type(req->content_type);
	if (podio__params_check(query, query_len, &count,
	    podio__max_params(settings), &why) != PODIO_OK ||
	    (form && podio__params_check(body, body_len, &count,
	    podio__max_params(settings), &why) != PODIO_OK)) {
		podio__answer(ans, 413, "%s", why);
		goto fail;
	}

	/* 415 */
	if (!form) {
		podio__answer(ans, 415, "unsupported content type: expected "
		    "application/x-www-form-urlencoded");
		goto fail;
	}

	/* 400: the body cannot be decoded */
	if ((uint64_t)body_len != req->content_length) {
		podio__answer(ans, 400, "request body does not match "
		    "Content-Length");
		goto fail;
	}
	if ((params = podio_params_new(podio__max_params(settings))) ==
	    NULL) {
		err = PODIO_ERR_NOMEM;
		goto fail;
	}
	if ((err = podio_params_parse(params, query, query_len, &why)) ==
	    PODIO_OK)
		err = podio_params_parse(params, body, body_len, &why);
	if (err == PODIO_ERR_NOMEM)
		goto fail;
	if (err != PODIO_OK) {
		/* PODIO_ERR_INVALID (a NUL); the limits passed above */
		podio__answer(ans, err == PODIO_ERR_TOO_LARGE ? 413 : 400,
		    "%s", why);
		err = PODIO_OK;
		goto fail;
	}

	/* 403, then what allowed_hooks needs */
	if (podio__check_secret(settings, params, ans) != 0 ||
	    podio__check_hook(settings, hide, params, ans) != 0)
		goto fail;

	/* 400 malformed; no reason quotes a configured secret */
	err = podio__delivery_make(params, hide, &d, ans->reason,
	    sizeof(ans->reason));
	params = NULL;
	if (err == PODIO_ERR_NOMEM)
		goto fail;
	if (err != PODIO_OK) {
		ans->status = 400;
		ans->header = NULL;
		err = PODIO_OK;
		goto fail;
	}
	podio__answer(ans, 200, "ok");
	if (out != NULL) {
		*out = d;
		d = NULL;
	}
fail:
	/* every path ends here, the accepted one included */
	if (err == PODIO_ERR_NOMEM)
		podio__answer(ans, 500, "out of memory");
	podio_params_free(params);
	podio_delivery_free(d);
	return err;
}

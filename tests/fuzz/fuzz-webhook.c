/*
 * fuzz-webhook.c: the delivery decision (lib/webhook.c).  One request
 * goes through podio_webhook_check_head() and podio_webhook_decide();
 * an accepted delivery is made into its event (podio_event_json()) and
 * read back as the spool's processors read a stored event
 * (podio__event_delivery()).
 *
 * Checked: the status is one of those documented and check_head agrees
 * with decide; the reason is one printable line that never holds a
 * configured secret; only 405 has a header; a delivery comes exactly
 * with 200, carries a configured secret (or none is needed), a type of
 * [a-z0-9_.-]{1,64} and a hook_id from allowed_hooks when there is a
 * list; its event is valid JSON that decodes back to the same type and
 * ids, and in which cJSON reads every parameter but "secret" back byte
 * for byte; a request judged on what its parameters say (400 malformed, 403
 * hook not allowed) carried the secret.
 *
 * Input: a first line of six letters (what each means is in
 * request_head() and settings_of() below; any byte works), then the
 * query up to the next newline, then the body.
 */
#include <config.h>

#include "podio.h"
#include "event.h"
#include "webhook.h"
#include "fuzz.h"

#define SECRET "S3cret-wh-0815"
#define PREVIOUS "Old-S3cret-4711"

static const uint64_t hooks_some[] = { 1001, 1002, 42 };
static const uint64_t hooks_max[] = { UINT64_MAX };

/* c0 method, c1 content type, c2 Content-Length. */
static void
request_head(const char *c, size_t body_len, struct podio_webhook_request *r)
{
	static const char *const types[] = {
		"application/x-www-form-urlencoded",
		"Application/X-WWW-Form-Urlencoded; charset=UTF-8",
		" application/x-www-form-urlencoded ;x",
		"application/x-www-form-urlencodedx",
		"application/json",
		"text/plain",
		"",
		NULL
	};
	static const char letters[] = "fFsxjte-";
	const char *t;

	switch (c[0]) {
	case 'P': r->method = "POST"; break;
	case 'G': r->method = "GET"; break;
	case 'p': r->method = "post"; break;
	case '-': r->method = NULL; break;
	default: r->method = "PUT"; break;
	}
	/* A letter of letters names a type; another byte picks one. */
	t = c[1] != '\0' ? strchr(letters, c[1]) : NULL;
	r->content_type = types[t != NULL ? t - letters :
	    (unsigned char)c[1] % 8];
	r->has_content_length = c[2] != '-';
	switch (c[2]) {
	case '+': r->content_length = body_len + 1; break;
	case '<': r->content_length = body_len > 0 ? body_len - 1 : 0; break;
	case '0': r->content_length = 0; break;
	case 'M': r->content_length = UINT64_MAX; break;
	default: r->content_length = body_len; break;
	}
}

/* c3 secrets, c4 allowed_hooks, c5 limits. */
static void
settings_of(const char *c, struct podio_webhook_settings *s)
{
	memset(s, 0, sizeof(*s));
	switch (c[3]) {
	case 'p': s->secret = SECRET; s->previous_secret = PREVIOUS; break;
	case 'n': break;
	case 'a': s->allow_no_secret = 1; break;
	case 'e': s->secret = ""; s->previous_secret = PREVIOUS; break;
	default: s->secret = SECRET; break;
	}
	switch (c[4]) {
	case 'h':
		s->allowed_hooks = hooks_some;
		s->n_allowed_hooks = 3;
		break;
	case 'x':
		s->allowed_hooks = hooks_max;
		s->n_allowed_hooks = 1;
		break;
	default:
		break;
	}
	switch (c[5]) {
	case 's': s->max_body = 64; s->max_params = 4; break;
	case 'm': s->max_params = 1; break;
	case 'b': s->max_body = 1; break;
	default: break;
	}
}

/* The "params" of the event json, read by cJSON: every parameter of d
 * but "secret", in order, byte for byte. */
static void
check_params(const struct podio_delivery *d, const char *json)
{
	const char *end = NULL, *name, *value;
	cJSON *ev = cJSON_ParseWithOpts(json, &end, 1);
	const cJSON *p;
	size_t i = 0;

	FUZZ_CHECK(ev != NULL, "cJSON cannot read the event");
	p = cJSON_GetObjectItemCaseSensitive(ev, "params");
	FUZZ_CHECK(cJSON_IsObject(p), "the event has no params");
	for (p = p->child; podio_params_at(d->params, i, &name, &value);
	    i++) {
		if (strcmp(name, "secret") == 0)
			continue;
		FUZZ_CHECK(p != NULL && cJSON_IsString(p) &&
		    strcmp(p->string, name) == 0 &&
		    strcmp(p->valuestring, value) == 0,
		    "parameter %zu differs in the event", i);
		p = p->next;
	}
	FUZZ_CHECK(p == NULL, "the event has more params");
	cJSON_Delete(ev);
}

/* The event of d, read back: the same type and ids. */
static void
check_event(const struct podio_delivery *d)
{
	struct podio_delivery *back = NULL;
	const char *name;
	char *json = NULL, why[256];
	size_t len = 0, i;
	uint64_t a, b;
	enum podio_err rc;
	int has;

	rc = podio_event_json(d, NULL, 0, NULL, NULL, 0, &json, &len);
	FUZZ_CHECK(rc == PODIO_OK, "no event for a delivery: %d", rc);
	FUZZ_CHECK(strlen(json) == len && podio__json_valid(json, len),
	    "the event is not valid JSON");
	FUZZ_CHECK(memchr(json, '\n', len) == NULL, "the event is two lines");
	check_params(d, json);
	why[0] = '\0';
	rc = podio__event_delivery(json, len, &back, why, sizeof(why));
	FUZZ_CHECK(rc == PODIO_OK, "the event does not decode back: %s", why);
	FUZZ_CHECK(strcmp(back->type, d->type) == 0, "type changed");
	for (i = 0; (has = podio__delivery_id(d, i, &name, &a)) >= 0; i++) {
		FUZZ_CHECK(podio__delivery_id(back, i, NULL, &b) == has &&
		    a == b, "%s changed", name);
	}
	FUZZ_CHECK((d->external_id == NULL) == (back->external_id == NULL) &&
	    (d->external_id == NULL ||
	    strcmp(d->external_id, back->external_id) == 0),
	    "external_id changed");
	podio_delivery_free(back);
	free(json);
}

/* What an accepted delivery promises. */
static void
check_delivery(const struct podio_webhook_settings *s,
    const struct podio_webhook_answer *ans, const struct podio_delivery *d)
{
	const char *given, *c;
	size_t i;

	FUZZ_CHECK(d->type != NULL && d->type[0] != '\0' &&
	    strlen(d->type) <= PODIO_WEBHOOK_MAX_TYPE, "bad type length");
	for (c = d->type; *c != '\0'; c++)
		FUZZ_CHECK((*c >= 'a' && *c <= 'z') ||
		    (*c >= '0' && *c <= '9') || *c == '_' || *c == '.' ||
		    *c == '-', "bad type byte 0x%02x", (unsigned char)*c);
	FUZZ_CHECK(d->has & PODIO_HAS_HOOK_ID, "no hook_id");
	given = podio_params_get(d->params, "secret");
	if (s->secret != NULL && s->secret[0] != '\0') {
		FUZZ_CHECK(given != NULL && (strcmp(given, s->secret) == 0 ||
		    (s->previous_secret != NULL &&
		    strcmp(given, s->previous_secret) == 0)),
		    "accepted without the secret");
		FUZZ_CHECK(ans->previous_secret ==
		    (strcmp(given, s->secret) != 0), "previous_secret wrong");
	} else
		FUZZ_CHECK(s->allow_no_secret, "accepted with no secret set");
	if (s->n_allowed_hooks > 0) {
		for (i = 0; i < s->n_allowed_hooks; i++)
			if (s->allowed_hooks[i] == d->hook_id)
				break;
		FUZZ_CHECK(i < s->n_allowed_hooks, "hook not allowed");
	}
	if (strcmp(d->type, "hook.verify") == 0)
		FUZZ_CHECK(d->code != NULL && d->code[0] != '\0',
		    "hook.verify without code");
}

/*
 * A request judged on what its parameters say (a malformed delivery, a
 * hook not allowed) carried a configured secret, or none was needed: a
 * client without the secret learns nothing of how its parameters would
 * have been judged.
 */
static void
check_judged(const struct podio_webhook_settings *s,
    const struct podio_webhook_request *req,
    const struct podio_webhook_answer *ans)
{
	struct podio_params *p;
	const char *given;

	if (s->secret == NULL || s->secret[0] == '\0') {
		FUZZ_CHECK(s->allow_no_secret, "%d without a secret set: %s",
		    ans->status, ans->reason);
		return;
	}
	if ((p = podio_params_new(0)) == NULL)
		abort();
	if (podio_params_parse(p, req->query != NULL ? req->query : "",
	    req->query_len, NULL) == PODIO_OK &&
	    podio_params_parse(p, req->body != NULL ? req->body : "",
	    req->body_len, NULL) == PODIO_OK) {
		given = podio_params_get(p, "secret");
		FUZZ_CHECK(given != NULL && (strcmp(given, s->secret) == 0 ||
		    (s->previous_secret != NULL &&
		    strcmp(given, s->previous_secret) == 0)),
		    "%d without the secret: %s", ans->status, ans->reason);
	}
	podio_params_free(p);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_webhook_settings s;
	struct podio_webhook_request req;
	struct podio_webhook_answer head, ans;
	struct podio_delivery *d = NULL;
	const char *text = (const char *)data, *nl;
	char *query, *body;
	size_t len, qlen;
	enum podio_err rc;
	int go;

	if (size < 7 || data[6] != '\n')
		return 0;
	text += 7;
	len = size - 7;
	nl = memchr(text, '\n', len);
	qlen = nl != NULL ? (size_t)(nl - text) : len;
	/* Separate copies, so that ASan sees any read past either end. */
	query = fuzz_dup((const uint8_t *)text, qlen);
	body = nl != NULL ? fuzz_dup((const uint8_t *)nl + 1,
	    len - qlen - 1) : NULL;

	memset(&req, 0, sizeof(req));
	request_head((const char *)data, nl != NULL ? len - qlen - 1 : 0,
	    &req);
	settings_of((const char *)data, &s);
	req.query = data[0] == 'q' ? NULL : query;
	req.query_len = req.query != NULL ? qlen : 0;
	req.body = body;
	req.body_len = body != NULL ? len - qlen - 1 : 0;

	go = podio_webhook_check_head(&s, &req, &head);
	FUZZ_CHECK(go ? head.status == 0 : (head.status == 405 ||
	    head.status == 411 || head.status == 413),
	    "check_head: %d, status %d", go, head.status);
	rc = podio_webhook_decide(&s, &req, &ans, &d);
	FUZZ_CHECK(rc == PODIO_OK, "decide failed: %d", rc);
	FUZZ_CHECK(go || ans.status == head.status,
	    "check_head said %d, decide %d", head.status, ans.status);
	FUZZ_CHECK(ans.status == 200 || ans.status == 400 ||
	    ans.status == 403 || ans.status == 405 || ans.status == 411 ||
	    ans.status == 413 || ans.status == 415, "status %d", ans.status);
	FUZZ_CHECK(memchr(ans.reason, '\0', sizeof(ans.reason)) != NULL &&
	    ans.reason[0] != '\0' && fuzz_printable(ans.reason),
	    "reason not one printable line");
	FUZZ_CHECK((s.secret == NULL || s.secret[0] == '\0' ||
	    strstr(ans.reason, s.secret) == NULL) &&
	    (s.previous_secret == NULL || strstr(ans.reason,
	    s.previous_secret) == NULL), "reason holds a secret");
	FUZZ_CHECK((ans.header != NULL) == (ans.status == 405),
	    "header with status %d", ans.status);
	FUZZ_CHECK((d != NULL) == (ans.status == 200),
	    "delivery with status %d", ans.status);
	if ((ans.status == 400 && strncmp(ans.reason, "malformed",
	    9) == 0) || (ans.status == 403 && strstr(ans.reason,
	    "allowed_hooks") != NULL))
		check_judged(&s, &req, &ans);
	if (d != NULL) {
		check_delivery(&s, &ans, d);
		check_event(d);
	}
	podio_delivery_free(d);
	free(query);
	free(body);
	return 0;
}

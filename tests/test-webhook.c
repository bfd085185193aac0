/*
 * test-webhook.c: the decision for one request (lib/webhook.c): every
 * status, the order in which they are decided (what a client without
 * the secret can learn), the secret in the query and in the body,
 * allowed_hooks, the malformed deliveries, the parsed delivery, and the
 * constant-time comparison.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podio.h"
#include "params.h"
#include "webhook.h"
#include "tap.h"

#define SECRET "s3cr3t-Value"
#define PREVIOUS "old-s3cr3t-Value"
#define FORM "application/x-www-form-urlencoded"
/* A body literal and its length, for decide_full(). */
#define BL(s) (s), strlen(s)
#define GOOD "type=item.update&hook_id=1001&item_id=42&secret=" SECRET

static struct podio_webhook_settings settings;
static struct podio_webhook_answer ans;
static int bad_reasons;  /* answers whose reason leaked or was not a line */

static void
reset_settings(void)
{
	memset(&settings, 0, sizeof(settings));
	settings.secret = SECRET;
}

/* Whether the reason is one printable line without the secret. */
static void
check_reason(void)
{
	const char *p;

	if (strstr(ans.reason, SECRET) != NULL ||
	    strstr(ans.reason, PREVIOUS) != NULL || ans.reason[0] == '\0') {
		bad_reasons++;
		tap_diag("bad reason: %s", ans.reason);
	}
	for (p = ans.reason; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7F) {
			bad_reasons++;
			tap_diag("reason with a control byte: %s", ans.reason);
			break;
		}
}

/*
 * Decides a request; len_given -1 means no Content-Length, else the
 * Content-Length is the body's length plus len_given - 1 (so 1 = right).
 * Returns the status; *out (if not NULL) gets the delivery.
 */
static int
decide_full(const char *method, const char *ctype, int len_given,
    const char *query, const char *body, size_t body_len,
    struct podio_delivery **out)
{
	struct podio_webhook_request req;
	struct podio_delivery *d = NULL;
	enum podio_err err;

	memset(&req, 0, sizeof(req));
	req.method = method;
	req.content_type = ctype;
	req.has_content_length = len_given >= 0;
	req.content_length = len_given >= 0 ? body_len + (size_t)len_given - 1 :
	    0;
	req.query = query;
	req.query_len = query != NULL ? strlen(query) : 0;
	req.body = body;
	req.body_len = body_len;
	err = podio_webhook_decide(&settings, &req, &ans, &d);
	if (err != PODIO_OK)
		tap_diag("decide returned %d", (int)err);
	if ((ans.status == 200) != (d != NULL))
		tap_diag("delivery %p with status %d", (void *)d, ans.status);
	if ((ans.status == 405) != (ans.header != NULL))
		tap_diag("header %s with status %d",
		    ans.header ? ans.header : "(none)", ans.status);
	check_reason();
	if (out != NULL)
		*out = d;
	else
		podio_delivery_free(d);
	return ans.status;
}

static int
decide(const char *method, const char *ctype, const char *query,
    const char *body)
{
	return decide_full(method, ctype, 1, query, body,
	    body != NULL ? strlen(body) : 0, NULL);
}

/* POST, form, right length. */
static int
post(const char *query, const char *body)
{
	return decide("POST", FORM, query, body);
}

static int
reason_has(const char *s)
{
	return strstr(ans.reason, s) != NULL;
}

static void
test_statuses(void)
{
	reset_settings();
	tap_ok(post(NULL, GOOD) == 200 && strcmp(ans.reason, "ok") == 0,
	    "a good delivery: 200");
	tap_ok(decide("GET", FORM, NULL, GOOD) == 405 && ans.header != NULL &&
	    strcmp(ans.header, "Allow: POST") == 0, "GET: 405 Allow: POST");
	tap_ok(decide(NULL, FORM, NULL, GOOD) == 405, "no method: 405");
	tap_ok(decide("post", FORM, NULL, GOOD) == 405,
	    "lower-case post: 405 (methods are case-sensitive)");
	tap_ok(decide("PUT", FORM, NULL, GOOD) == 405, "PUT: 405");
	tap_ok(decide_full("POST", FORM, -1, NULL, GOOD, strlen(GOOD),
	    NULL) == 411, "no Content-Length: 411");
	settings.max_body = 16;
	tap_ok(post(NULL, GOOD) == 413 && reason_has("body too large"),
	    "body over max_body: 413");
	reset_settings();
	tap_ok(decide("POST", "application/json", NULL, "{\"type\":1}") ==
	    415, "application/json: 415");
	tap_ok(decide("POST", NULL, NULL, GOOD) == 415, "no content type: 415");
	tap_ok(decide("POST", "", NULL, GOOD) == 415,
	    "empty content type: 415");
	tap_ok(decide("POST", "multipart/form-data; boundary=x", NULL, GOOD) ==
	    415, "multipart/form-data: 415");
	tap_ok(decide("POST", FORM "x", NULL, GOOD) == 415,
	    "a longer type name: 415");
	tap_ok(decide("POST", "text/plain", NULL, GOOD) == 415,
	    "text/plain: 415");
	tap_ok(post(NULL, "type=item.update&hook_id=1001&secret=" SECRET
	    "&x=%00") == 400 && reason_has("NUL"), "%%00: 400");
	tap_ok(post(NULL, "type=item.update&hook_id=1&secret=" SECRET) == 200,
	    "the same without %%00: 200");
	tap_ok(post(NULL, "type=item.update&hook_id=1001") == 403 &&
	    reason_has("missing secret"), "no secret: 403");
	tap_ok(post(NULL, "type=item.update&hook_id=1001&secret=nope") == 403 &&
	    reason_has("wrong secret"), "wrong secret: 403");
	tap_ok(post(NULL, "hook_id=1001&secret=" SECRET) == 400 &&
	    reason_has("missing type"), "no type: 400 with the reason");
}

static void
test_order(void)
{
	static char big[80 * 1024];
	char buf[512];

	reset_settings();
	memset(big, 'a', sizeof(big) - 1);

	/* 405 before everything */
	tap_ok(decide("GET", "text/html", NULL, GOOD) == 405,
	    "GET with a bad content type: 405, not 415");
	tap_ok(decide_full("GET", "text/html", -1, NULL, big, strlen(big),
	    NULL) == 405, "GET, no length, too large, bad type: 405");
	tap_ok(decide("GET", FORM, NULL, "x=%00") == 405,
	    "GET with a NUL body: 405");

	/* 411 before 413, 415 */
	tap_ok(decide_full("POST", "text/html", -1, NULL, big, strlen(big),
	    NULL) == 411, "no length, too large, bad type: 411");

	/* 413 before 415 */
	tap_ok(decide("POST", "text/html", NULL, big) == 413,
	    "too large with a bad content type: 413, not 415");
	settings.max_params = 3;
	tap_ok(decide("POST", "text/html", "a=1&b=2&c=3&d=4", "") == 413 &&
	    reason_has("too many parameters"),
	    "too many query parameters with a bad content type: 413");
	tap_ok(decide("POST", "text/plain", NULL, "a&b&c&d&e") == 415,
	    "a body that is not a form has no parameters: 415");
	tap_ok(post("a=1&b=2", "c=3&d=4") == 413,
	    "query + body over max_params: 413");
	tap_ok(post("a=1", "b=2&type=x.y") == 403,
	    "query + body at max_params: goes on (403 without secret)");
	settings.max_params = 0;

	/* 413 before 400 decode */
	snprintf(buf, sizeof(buf), "x=%%00&%0300d=1", 0);
	tap_ok(post(NULL, buf) == 413 && reason_has("name too long"),
	    "a NUL and a 300-byte name: 413 before 400");
	{
		char q[300];

		memset(q, 'q', sizeof(q) - 3);
		memcpy(q + sizeof(q) - 3, "=1", 3);
		tap_ok(post(q, "x=%00") == 413,
		    "a long name in the query, a NUL in the body: 413");
	}

	/* 415 before 400 decode */
	tap_ok(decide("POST", "text/plain", NULL, "x=%00") == 415,
	    "a NUL with a bad content type: 415");

	/* 400 decode before 403 */
	tap_ok(post(NULL, "type=item.update&hook_id=1&x=%00") == 400 &&
	    reason_has("NUL"), "a NUL body without the secret: 400, not 403");
	tap_ok(post(NULL, "type=item.update&hook_id=1&secret=bad&x=%00") ==
	    400, "a NUL body with a wrong secret: 400, not 403");
	tap_ok(decide_full("POST", FORM, 1, NULL, "a=b\0c", 5, NULL) == 400,
	    "a raw NUL byte: 400");
	tap_ok(decide_full("POST", FORM, 2, NULL, GOOD, strlen(GOOD), NULL) ==
	    400 && reason_has("Content-Length"),
	    "a body shorter than Content-Length: 400");
	tap_ok(decide_full("POST", FORM, 0, NULL, GOOD, strlen(GOOD), NULL) ==
	    400, "a body longer than Content-Length: 400");
	tap_ok(post("x=%00", "type=item.update&hook_id=1&secret=" SECRET) ==
	    400, "a NUL in the query: 400");

	/* 403 before 400 malformed */
	tap_ok(post(NULL, "secret=bad") == 403,
	    "a wrong secret with no type, no hook_id: 403, not 400");
	tap_ok(post(NULL, "type=BAD TYPE&hook_id=x&item_id=-1&secret=bad") ==
	    403, "a wrong secret with a malformed body: 403");
	tap_ok(post(NULL, "type=hook.verify&hook_id=1") == 403,
	    "hook.verify without code and without secret: 403");
	tap_ok(post(NULL, "") == 403, "an empty body: 403");
	tap_ok(post(NULL, "secret=" SECRET) == 400,
	    "the same with the secret: 400");
}

static void
test_secret(void)
{
	reset_settings();
	tap_ok(post("secret=" SECRET, "type=item.create&hook_id=5") == 200,
	    "secret in the query: 200");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" SECRET) == 200,
	    "secret in the body: 200");
	tap_ok(post("secret=" SECRET, "type=item.create&hook_id=5&secret=x") ==
	    403, "the body's wrong secret beats the query's right one");
	tap_ok(post("secret=x", "type=item.create&hook_id=5&secret=" SECRET) ==
	    200, "the body's right secret beats the query's wrong one");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" SECRET
	    "&secret=x") == 403, "the last secret in the body wins");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=s3cr3t-Valu") ==
	    403, "a prefix of the secret: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" SECRET "x") ==
	    403, "the secret plus a byte: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=") == 403 &&
	    reason_has("wrong secret"), "an empty secret: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=S3CR3T-VALUE") ==
	    403, "the secret in other case: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret") == 403,
	    "secret without =: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&sec%72et=" SECRET) ==
	    200, "a percent-encoded name \"secret\": 200");

	settings.secret = "a+b&c=%d";
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=a%2Bb%26c%3D%25d")
	    == 200, "a secret with + & = %% arrives percent-encoded: 200");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=a+b&c=%d") ==
	    403, "the same unencoded does not match: 403");

	/* No secret configured. */
	settings.secret = NULL;
	tap_ok(post(NULL, "type=item.create&hook_id=5") == 403 &&
	    reason_has("no webhook secret"),
	    "no secret configured: refused with 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=x") == 403,
	    "no secret configured, one sent: 403");
	settings.secret = "";
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=") == 403,
	    "an empty secret configured is none: 403");
	settings.allow_no_secret = 1;
	tap_ok(post(NULL, "type=item.create&hook_id=5") == 200,
	    "allow_no_secret: accepted without a secret");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=any") == 200,
	    "allow_no_secret: any secret sent is ignored");
	tap_ok(post(NULL, "hook_id=5") == 400,
	    "allow_no_secret: malformed is 400");
	settings.secret = SECRET;
	tap_ok(post(NULL, "type=item.create&hook_id=5") == 403,
	    "allow_no_secret does not waive a configured secret");
}

/* webhook_secret_previous: accepted beside the secret, and said so. */
static void
test_previous_secret(void)
{
	reset_settings();
	settings.previous_secret = PREVIOUS;
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" SECRET) == 200 &&
	    !ans.previous_secret,
	    "with a previous secret: the current one is accepted, not marked");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" PREVIOUS) ==
	    200 && ans.previous_secret,
	    "the previous secret is accepted and marked as previous");
	tap_ok(post("secret=" PREVIOUS, "type=item.create&hook_id=5") == 200 &&
	    ans.previous_secret, "the previous secret in the query: 200");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=nope") == 403 &&
	    reason_has("wrong secret") && !ans.previous_secret,
	    "neither secret: 403, not marked");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" PREVIOUS "x") ==
	    403, "the previous secret plus a byte: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=old-s3cr3t") ==
	    403, "a prefix of the previous secret: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5") == 403 &&
	    reason_has("missing secret"), "no secret sent: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=") == 403,
	    "an empty secret sent: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" PREVIOUS) ==
	    200 && post(NULL, "type=item.create&hook_id=5&secret=" SECRET) ==
	    200 && !ans.previous_secret,
	    "the mark does not stay for the next request");
	tap_ok(post(NULL, "hook_id=5&secret=" PREVIOUS) == 400,
	    "malformed with the previous secret: 400");

	settings.previous_secret = "";
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=") == 403,
	    "an empty previous secret is none: an empty one sent gets 403");
	settings.previous_secret = NULL;
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" PREVIOUS) ==
	    403, "the previous secret removed: 403");

	/* Without webhook_secret the previous one alone accepts nothing. */
	settings.secret = NULL;
	settings.previous_secret = PREVIOUS;
	tap_ok(post(NULL, "type=item.create&hook_id=5&secret=" PREVIOUS) ==
	    403 && reason_has("no webhook secret"),
	    "a previous secret without a secret: 403");
	settings.allow_no_secret = 1;
	tap_ok(post(NULL, "type=item.create&hook_id=5") == 200 &&
	    !ans.previous_secret,
	    "allow_no_secret with only a previous secret: accepted, not "
	    "marked");
	reset_settings();
}

static void
test_allowed_hooks(void)
{
	static const uint64_t hooks[] = { 1001, 18446744073709551615ULL };

	reset_settings();
	settings.allowed_hooks = hooks;
	settings.n_allowed_hooks = 2;
	tap_ok(post(NULL, GOOD) == 200, "allowed hook 1001: 200");
	tap_ok(post(NULL, "type=item.create&hook_id=18446744073709551615&"
	    "secret=" SECRET) == 200, "allowed hook 2^64-1: 200");
	tap_ok(post(NULL, "type=item.create&hook_id=1002&secret=" SECRET) ==
	    403 && reason_has("allowed_hooks"), "hook 1002 not allowed: 403");
	tap_ok(post(NULL, "type=item.create&hook_id=1002&secret=bad") == 403 &&
	    reason_has("wrong secret"),
	    "not allowed and wrong secret: the secret's 403");
	tap_ok(post(NULL, "type=item.create&hook_id=x1&secret=" SECRET) ==
	    400 && reason_has("hook_id"), "an unparsable hook_id: 400");
	tap_ok(post(NULL, "type=item.create&hook_id=x1&secret=bad") == 403,
	    "an unparsable hook_id without the secret: 403");
	tap_ok(post(NULL, "type=item.create&secret=" SECRET) == 400 &&
	    reason_has("missing hook_id"), "no hook_id with a list: 400");
	tap_ok(post(NULL, "type=item.create&secret=bad") == 403,
	    "no hook_id without the secret: 403");
	tap_ok(post(NULL, "hook_id=1002&secret=" SECRET) == 403,
	    "a hook not allowed is 403 before a missing type");
	tap_ok(post(NULL, "type=item.create&hook_id=01001&secret=" SECRET) ==
	    400, "hook_id 01001 is not an id: 400");
}

static void
test_malformed(void)
{
	char buf[512], type[80];

	reset_settings();
#define S "&secret=" SECRET
	tap_ok(post(NULL, "hook_id=1" S) == 400 && reason_has("missing type"),
	    "no type");
	tap_ok(post(NULL, "type=item.create" S) == 400 &&
	    reason_has("missing hook_id"), "no hook_id");
	tap_ok(post(NULL, "type=item.create&hook_id=" S) == 400,
	    "empty hook_id");
	tap_ok(post(NULL, "type=&hook_id=1" S) == 400 &&
	    reason_has("bad type"), "empty type");
	tap_ok(post(NULL, "type=Item.Update&hook_id=1" S) == 400,
	    "upper-case type");
	tap_ok(post(NULL, "type=item+update&hook_id=1" S) == 400,
	    "type with a space");
	tap_ok(post(NULL, "type=item%2Fupdate&hook_id=1" S) == 400,
	    "type with a slash");
	tap_ok(post(NULL, "type=%C3%A9&hook_id=1" S) == 400 &&
	    reason_has("\"??\""), "non-ASCII type, quoted as ??");
	memset(type, 'a', 64);
	type[64] = '\0';
	snprintf(buf, sizeof(buf), "type=%s&hook_id=1" S, type);
	tap_ok(post(NULL, buf) == 200, "a 64-byte type is fine");
	snprintf(buf, sizeof(buf), "type=%sa&hook_id=1" S, type);
	tap_ok(post(NULL, buf) == 400 && reason_has("...") &&
	    !reason_has(type), "a 65-byte type: 400, not echoed whole");
	tap_ok(post(NULL, "type=my_type-2.x&hook_id=1" S) == 200,
	    "a type with _ - . and digits is fine");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=abc" S) == 400 &&
	    reason_has("item_id is not an unsigned 64-bit integer: \"abc\""),
	    "item_id=abc, quoted");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=" S) == 400,
	    "empty item_id");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=-1" S) == 400,
	    "item_id=-1");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=+1" S) == 400,
	    "item_id=+1 (a space after decoding)");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=042" S) == 400,
	    "item_id=042");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=1.0" S) == 400,
	    "item_id=1.0");
	tap_ok(post(NULL, "type=item.create&hook_id=1&"
	    "item_revision_id=18446744073709551616" S) == 400 &&
	    reason_has("item_revision_id"), "item_revision_id = 2^64");
	tap_ok(post(NULL, "type=comment.create&hook_id=1&comment_id=x" S) ==
	    400, "comment_id=x");
	tap_ok(post(NULL, "type=app.update&hook_id=1&app_id=x" S) == 400,
	    "app_id=x");
	tap_ok(post(NULL, "type=form.update&hook_id=1&form_id=x" S) == 400,
	    "form_id=x");
	tap_ok(post(NULL, "type=task.create&hook_id=1&task_id=x" S) == 400,
	    "task_id=x");
	tap_ok(post(NULL, "type=hook.verify&hook_id=1" S) == 400 &&
	    reason_has("without code"), "hook.verify without code");
	tap_ok(post(NULL, "type=hook.verify&hook_id=1&code=" S) == 400,
	    "hook.verify with an empty code");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=%3Cscript%3E%0A"
	    "alert(1)%22%5C0123456789012345678901234567890" S) == 400 &&
	    reason_has("\"<script>?alert(1)??0123456789012...\"") && !reason_has("\\"),
	    "the quoted snippet is cut and sanitized");

	/* A client that has the secret and sends a secret in the wrong
	 * parameter gets no echo of it: reasons are logged. */
	settings.previous_secret = PREVIOUS;
	tap_ok(post(NULL, "type=x" PREVIOUS "&hook_id=1" S) == 400 &&
	    reason_has("bad type (not shown)"),
	    "a type holding the previous secret is not quoted");
	tap_ok(post(NULL, "type=item.create&hook_id=1&item_id=1" SECRET S) ==
	    400 && reason_has("item_id is not an unsigned 64-bit integer: "
	    "(not shown)"), "an id holding the secret is not quoted");
	settings.allowed_hooks = (const uint64_t[]){ 1 };
	settings.n_allowed_hooks = 1;
	tap_ok(post(NULL, "type=item.create&hook_id=" SECRET S) == 400 &&
	    reason_has("hook_id is not an unsigned 64-bit integer: "
	    "(not shown)"), "with allowed_hooks, a hook_id holding the "
	    "secret is not quoted");
	reset_settings();
#undef S
}

static void
test_content_types(void)
{
	static const char *const ok[] = {
		FORM,
		"Application/X-WWW-Form-Urlencoded",
		"APPLICATION/X-WWW-FORM-URLENCODED; charset=UTF-8",
		FORM "; charset=utf-8",
		FORM ";charset=ISO-8859-1",
		" " FORM " ; charset=UTF-8",
		"\t" FORM "\t",
	};
	static const char *const bad[] = {
		"application/x-www-form-urlencode",
		"application/x-www-form-urlencodedx",
		"application/x-www-form-urlencoded,text/plain",
		"application/ x-www-form-urlencoded",
		"x-www-form-urlencoded",
		"application/json; x=application/x-www-form-urlencoded",
	};
	size_t i;

	for (i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		tap_ok(podio__is_form_type(ok[i]), "form type: \"%s\"", ok[i]);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tap_ok(!podio__is_form_type(bad[i]), "not a form type: \"%s\"",
		    bad[i]);
	tap_ok(!podio__is_form_type(NULL), "not a form type: NULL");
	reset_settings();
	tap_ok(decide("POST", "application/x-www-form-urlencoded; "
	    "charset=UTF-8", NULL, GOOD) == 200, "charset parameter: 200");
}

static void
test_delivery(void)
{
	struct podio_delivery *d = NULL;
	const char *name;
	uint64_t v;
	int has;

	reset_settings();
	decide_full("POST", FORM, 1, "secret=" SECRET "&x=q",
	    BL("item_id=18446744073709551615&item_revision_id=26&type=item.update"
	    "&hook_id=224688&external_id=ext+1&x=b"), &d);
	tap_ok(ans.status == 200 && d != NULL, "a full delivery: 200");
	if (d == NULL) {
		tap_skip("no delivery", "delivery fields");
		return;
	}
	tap_ok(strcmp(d->type, "item.update") == 0, "type");
	tap_ok(d->hook_id == 224688 && (d->has & PODIO_HAS_HOOK_ID), "hook_id");
	tap_ok(d->item_id == 18446744073709551615ULL &&
	    (d->has & PODIO_HAS_ITEM_ID), "item_id 2^64-1 exact");
	tap_ok(d->item_revision_id == 26 &&
	    (d->has & PODIO_HAS_ITEM_REVISION_ID), "item_revision_id");
	tap_ok(d->has == (PODIO_HAS_HOOK_ID | PODIO_HAS_ITEM_ID |
	    PODIO_HAS_ITEM_REVISION_ID) && d->comment_id == 0 &&
	    d->app_id == 0 && d->task_id == 0, "only the ids present");
	tap_ok(d->external_id != NULL && strcmp(d->external_id, "ext 1") == 0,
	    "external_id decoded");
	tap_ok(d->code == NULL, "no code");
	tap_ok(podio_params_count(d->params) == 7 &&
	    strcmp(podio_params_get(d->params, "x"), "b") == 0 &&
	    podio_params_at(d->params, 0, &name, NULL) &&
	    strcmp(name, "secret") == 0,
	    "params: query first, body wins, secret kept for the caller");
	has = podio__delivery_id(d, 2, &name, &v);
	tap_ok(has == 1 && strcmp(name, "item_revision_id") == 0 && v == 26,
	    "delivery_id(2)");
	has = podio__delivery_id(d, 3, &name, &v);
	tap_ok(has == 0 && strcmp(name, "comment_id") == 0,
	    "delivery_id(3) absent");
	tap_ok(podio__delivery_id(d, 7, &name, &v) == -1,
	    "delivery_id past the end");
	podio_delivery_free(d);

	decide_full("POST", FORM, 1, NULL, BL("type=hook.verify&hook_id=9&"
	    "code=abc123&secret=" SECRET), &d);
	tap_ok(ans.status == 200 && d != NULL && d->code != NULL &&
	    strcmp(d->code, "abc123") == 0 && d->hook_id == 9,
	    "hook.verify: code");
	podio_delivery_free(d);

	decide_full("POST", FORM, 1, NULL, BL("type=task.create&hook_id=3&"
	    "task_id=77&app_id=0&comment_id=5&form_id=6&secret=" SECRET), &d);
	tap_ok(ans.status == 200 && d != NULL && d->task_id == 77 &&
	    d->app_id == 0 && (d->has & PODIO_HAS_APP_ID) &&
	    d->comment_id == 5 && d->form_id == 6 &&
	    !(d->has & PODIO_HAS_ITEM_ID),
	    "other types and ids are passed on");
	podio_delivery_free(d);

	/* podio_delivery_new() straight from saved parameters. */
	{
		struct podio_params *p = podio_params_new(0);
		char reason[160];

		(void)podio_params_parse(p, BL("type=item.delete&hook_id=4&"
		    "item_id=8"), NULL);
		tap_ok(podio_delivery_new(p, &d, reason, sizeof(reason)) ==
		    PODIO_OK && d->item_id == 8 && reason[0] == '\0',
		    "delivery_new from saved parameters");
		podio_delivery_free(d);
		p = podio_params_new(0);
		(void)podio_params_parse(p, BL("type=item.delete"), NULL);
		tap_ok(podio_delivery_new(p, &d, reason, sizeof(reason)) ==
		    PODIO_ERR_INVALID && d == NULL &&
		    strstr(reason, "hook_id") != NULL,
		    "delivery_new refuses a malformed one (and frees it)");
		p = podio_params_new(0);
		tap_ok(podio_delivery_new(p, &d, NULL, 0) == PODIO_ERR_INVALID,
		    "delivery_new without a reason buffer");
	}

	/* The hook's app, as `hooks create` puts it in the URL's query. */
	decide_full("POST", FORM, 1, "podio_app=777&secret=" SECRET,
	    BL("type=item.update&hook_id=5&item_id=9&item_revision_id=1"), &d);
	tap_ok(ans.status == 200 && d != NULL && d->podio_app == 777 &&
	    d->app_id == 0 && !(d->has & PODIO_HAS_APP_ID) &&
	    strcmp(podio_params_get(d->params, "podio_app"), "777") == 0,
	    "podio_app: the hook's app, kept as a parameter, not an app_id");
	podio_delivery_free(d);
	decide_full("POST", FORM, 1, NULL, BL("type=app.update&hook_id=5&"
	    "app_id=12&podio_app=x1&secret=" SECRET), &d);
	tap_ok(ans.status == 200 && d != NULL && d->podio_app == 0 &&
	    d->app_id == 12,
	    "a podio_app that is not an id is ignored, not refused");
	podio_delivery_free(d);
	podio_delivery_free(NULL);
}

static void
test_head(void)
{
	struct podio_webhook_request req;

	reset_settings();
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.has_content_length = 1;
	req.content_length = 65536;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 1 &&
	    ans.status == 0, "head: 64 KiB announced, POST: go on");
	req.content_length = 65537;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 0 &&
	    ans.status == 413, "head: 64 KiB + 1 announced: 413 unread");
	req.content_length = 18446744073709551615ULL;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 0 &&
	    ans.status == 413, "head: 2^64-1 announced: 413");
	req.method = "HEAD";
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 0 &&
	    ans.status == 405, "head: HEAD: 405");
	req.method = "POST";
	req.has_content_length = 0;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 0 &&
	    ans.status == 411, "head: no length: 411");
	req.has_content_length = 1;
	req.content_length = 0;
	req.query = "x";
	req.query_len = 65537;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 0 &&
	    ans.status == 413 && strstr(ans.reason, "query") != NULL,
	    "head: a query string over max_body: 413");
	settings.max_body = 100;
	req.query_len = 100;
	tap_ok(podio_webhook_check_head(&settings, &req, &ans) == 1,
	    "head: max_body applies to the query string too, at the limit");
}

static void
test_ct_equal(void)
{
	tap_ok(podio__ct_equal("abc", 3, "abc", 3) == 1, "ct_equal: equal");
	tap_ok(podio__ct_equal("abd", 3, "abc", 3) == 0, "ct_equal: last byte");
	tap_ok(podio__ct_equal("xbc", 3, "abc", 3) == 0, "ct_equal: first byte");
	tap_ok(podio__ct_equal("ab", 2, "abc", 3) == 0, "ct_equal: prefix");
	tap_ok(podio__ct_equal("abcd", 4, "abc", 3) == 0, "ct_equal: longer");
	tap_ok(podio__ct_equal("aaaa", 4, "a", 1) == 0,
	    "ct_equal: repeats of the first byte");
	tap_ok(podio__ct_equal("", 0, "abc", 3) == 0, "ct_equal: empty given");
	tap_ok(podio__ct_equal("", 0, "", 0) == 1, "ct_equal: both empty");
	tap_ok(podio__ct_equal("a", 1, "", 0) == 0, "ct_equal: empty secret");
	tap_ok(podio__ct_equal("a\xFF", 2, "a\x7F", 2) == 0,
	    "ct_equal: high bit");
}

int
main(void)
{
	test_statuses();
	test_order();
	test_secret();
	test_previous_secret();
	test_allowed_hooks();
	test_malformed();
	test_content_types();
	test_delivery();
	test_head();
	test_ct_equal();
	tap_ok(bad_reasons == 0, "every reason is one printable line without "
	    "the secret");
	return tap_done();
}

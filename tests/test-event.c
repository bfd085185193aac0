/*
 * test-event.c: the event JSON (lib/event.c): the exact text for several
 * deliveries, ids printed exactly up to 2^64-1, "secret" left out, the
 * item embedded byte for byte (numbers a double would round included),
 * item null with item_error, string escaping, one line, the strict check
 * of the item text, the size cap; every event must parse with cJSON.
 * Also "item_source", and podio__deliver_item() (lib/deliver.c), which
 * builds the event of an item fetched by the caller and runs the
 * callbacks, leaving out those already done; its "by_self" and
 * skip_self.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef HAVE_CJSON_CJSON_H
#include <cjson/cJSON.h>
#else
#include <cJSON.h>
#endif

#include "podio.h"
#include "deliver.h"
#include "event.h"
#include "params.h"
#include "util.h"
#include "webhook.h"
#include "tap.h"

/* A delivery from a form body (NULL if malformed); caller frees. */
static struct podio_delivery *
mk(const char *body)
{
	struct podio_params *p = podio_params_new(0);
	struct podio_delivery *d = NULL;

	if (podio_params_parse(p, body, strlen(body), NULL) != PODIO_OK) {
		podio_params_free(p);
		return NULL;
	}
	if (podio_delivery_new(p, &d, NULL, 0) != PODIO_OK)
		return NULL;
	return d;
}

/* Whether text is one JSON document for cJSON, with nothing after it. */
static int
cjson_parses(const char *text)
{
	const char *end = NULL;
	cJSON *j;

	j = cJSON_ParseWithOpts(text, &end, 1);
	cJSON_Delete(j);
	return j != NULL;
}

/*
 * Builds the event of body (with item or item_error) and compares it
 * with want; also checks it is one line and parses with cJSON.
 */
static void
expect(const char *what, const char *body, const char *item,
    const char *item_error, const char *want)
{
	struct podio_delivery *d = mk(body);
	enum podio_err err;
	char *out = NULL;
	size_t len = 0;
	int ok;

	err = podio_event_json(d, item, item != NULL ? strlen(item) : 0,
	    item_error, NULL, 0, &out, &len);
	ok = err == PODIO_OK && out != NULL && strcmp(out, want) == 0 &&
	    len == strlen(out);
	tap_ok(ok, "event: %s", what);
	if (!ok) {
		tap_diag("got:  %s (err %d)", out ? out : "(null)", (int)err);
		tap_diag("want: %s", want);
	}
	tap_ok(out != NULL && strchr(out, '\n') == NULL &&
	    strchr(out, '\r') == NULL && cjson_parses(out),
	    "event: %s: one line, parses with cJSON", what);
	free(out);
	podio_delivery_free(d);
}

static void
test_exact(void)
{
	expect("item.update without item",
	    "type=item.update&hook_id=1001&item_id=42&item_revision_id=7&"
	    "external_id=x&secret=hunter2", NULL, NULL,
	    "{\"type\": \"item.update\", \"hook_id\": 1001, \"item_id\": 42, "
	    "\"item_revision_id\": 7, \"external_id\": \"x\", \"params\": "
	    "{\"type\": \"item.update\", \"hook_id\": \"1001\", \"item_id\": "
	    "\"42\", \"item_revision_id\": \"7\", \"external_id\": \"x\"}}");
	expect("item.create with item",
	    "secret=hunter2&item_id=42&type=item.create&hook_id=1001",
	    "{\"item_id\":42,\"title\":\"Hi\"}", NULL,
	    "{\"type\": \"item.create\", \"hook_id\": 1001, \"item_id\": 42, "
	    "\"params\": {\"item_id\": \"42\", \"type\": \"item.create\", "
	    "\"hook_id\": \"1001\"}, \"item\": {\"item_id\":42,"
	    "\"title\":\"Hi\"}}");
	expect("hook.verify, code in params",
	    "type=hook.verify&hook_id=5&code=c0de", NULL, NULL,
	    "{\"type\": \"hook.verify\", \"hook_id\": 5, \"params\": "
	    "{\"type\": \"hook.verify\", \"hook_id\": \"5\", \"code\": "
	    "\"c0de\"}}");
	expect("every known id, in order",
	    "task_id=7&form_id=6&app_id=5&comment_id=4&item_revision_id=3&"
	    "item_id=2&hook_id=1&type=x", NULL, NULL,
	    "{\"type\": \"x\", \"hook_id\": 1, \"item_id\": 2, "
	    "\"item_revision_id\": 3, \"comment_id\": 4, \"app_id\": 5, "
	    "\"form_id\": 6, \"task_id\": 7, \"params\": {\"task_id\": \"7\", "
	    "\"form_id\": \"6\", \"app_id\": \"5\", \"comment_id\": \"4\", "
	    "\"item_revision_id\": \"3\", \"item_id\": \"2\", \"hook_id\": "
	    "\"1\", \"type\": \"x\"}}");
	expect("ids up to 2^64-1, exact",
	    "type=item.delete&hook_id=18446744073709551615&"
	    "item_id=9007199254740993&item_revision_id=0", NULL, NULL,
	    "{\"type\": \"item.delete\", \"hook_id\": 18446744073709551615, "
	    "\"item_id\": 9007199254740993, \"item_revision_id\": 0, "
	    "\"params\": {\"type\": \"item.delete\", \"hook_id\": "
	    "\"18446744073709551615\", \"item_id\": \"9007199254740993\", "
	    "\"item_revision_id\": \"0\"}}");
	expect("item not found",
	    "type=item.update&hook_id=1&item_id=2", NULL, "not_found",
	    "{\"type\": \"item.update\", \"hook_id\": 1, \"item_id\": 2, "
	    "\"params\": {\"type\": \"item.update\", \"hook_id\": \"1\", "
	    "\"item_id\": \"2\"}, \"item\": null, \"item_error\": "
	    "\"not_found\"}");
	expect("item gone",
	    "type=item.update&hook_id=1&item_id=2", NULL, "gone",
	    "{\"type\": \"item.update\", \"hook_id\": 1, \"item_id\": 2, "
	    "\"params\": {\"type\": \"item.update\", \"hook_id\": \"1\", "
	    "\"item_id\": \"2\"}, \"item\": null, \"item_error\": \"gone\"}");
	expect("empty external_id is a string",
	    "type=item.create&hook_id=1&external_id=", NULL, NULL,
	    "{\"type\": \"item.create\", \"hook_id\": 1, \"external_id\": \"\", "
	    "\"params\": {\"type\": \"item.create\", \"hook_id\": \"1\", "
	    "\"external_id\": \"\"}}");
	expect("secret left out, look-alikes kept",
	    "type=a&hook_id=1&secret=s&Secret=S&secretx=t&%73ecret=u", NULL,
	    NULL,
	    "{\"type\": \"a\", \"hook_id\": 1, \"params\": {\"type\": \"a\", "
	    "\"hook_id\": \"1\", \"Secret\": \"S\", \"secretx\": \"t\"}}");
	expect("escaping",
	    "type=a&hook_id=1&q=%22quoted%22&b=back%5Cslash&n=line%0Abreak%0D"
	    "&c=%01%1F%09%7F&u=%C3%A9%E2%80%A8&%22k%0A=v&external_id=%22x%0A",
	    NULL, NULL,
	    "{\"type\": \"a\", \"hook_id\": 1, \"external_id\": "
	    "\"\\\"x\\u000a\", \"params\": {\"type\": \"a\", "
	    "\"hook_id\": \"1\", \"q\": \"\\\"quoted\\\"\", \"b\": "
	    "\"back\\\\slash\", \"n\": \"line\\u000abreak\\u000d\", \"c\": "
	    "\"\\u0001\\u001f\\u0009\x7F\", \"u\": \"\xC3\xA9\xE2\x80\xA8\", "
	    "\"\\\"k\\u000a\": \"v\", \"external_id\": \"\\\"x\\u000a\"}}");
	expect("U+FFFD from broken input is a plain character",
	    "type=a&hook_id=1&v=%FF", NULL, NULL,
	    "{\"type\": \"a\", \"hook_id\": 1, \"params\": {\"type\": \"a\", "
	    "\"hook_id\": \"1\", \"v\": \"\xEF\xBF\xBD\"}}");
}

/* The item text appears in the event byte for byte. */
static void
test_item_embedded(void)
{
	static const char item[] =
	    "{\"item_id\": 42, \"big\": 12345678901234567890123, "
	    "\"neg\": -1.5e-300, \"s\": \"\\u00e9\\n\\\"\", \"u\": \"\xC3\xA9\","
	    " \"a\": [1, 2.50, {}, [], null, true, false], \"id\": "
	    "18446744073709551615}";
	struct podio_delivery *d = mk("type=item.update&hook_id=1&item_id=42");
	char *out = NULL;
	const char *at;
	cJSON *j, *it;

	tap_ok(podio_event_json(d, item, strlen(item), NULL, NULL, 0, &out,
	    NULL) == PODIO_OK && out != NULL, "event with an item");
	at = out != NULL ? strstr(out, "\"item\": ") : NULL;
	tap_ok(at != NULL && strncmp(at + 8, item, strlen(item)) == 0 &&
	    strcmp(at + 8 + strlen(item), "}") == 0,
	    "the item is embedded byte for byte, last");
	tap_ok(out != NULL && strstr(out, "12345678901234567890123") != NULL &&
	    strstr(out, "2.50") != NULL,
	    "12345678901234567890123 and 2.50 are not re-printed");
	j = out != NULL ? cJSON_ParseWithOpts(out, NULL, 1) : NULL;
	it = cJSON_GetObjectItemCaseSensitive(j, "item");
	tap_ok(cJSON_IsObject(it) && cJSON_IsNumber(
	    cJSON_GetObjectItemCaseSensitive(it, "item_id")) &&
	    cJSON_GetObjectItemCaseSensitive(it, "item_id")->valueint == 42,
	    "cJSON reads the embedded item");
	cJSON_Delete(j);
	free(out);

	/* Line breaks between tokens become spaces; white space around the
	 * value goes; line breaks escaped inside strings stay as they are. */
	out = NULL;
	tap_ok(podio_event_json(d, " \r\n{\n\t\"a\": \"x\\ny\",\r\n\"b\":"
	    "\"\\r\"\n}\n\n ", 33, NULL, NULL, 0, &out, NULL) == PODIO_OK &&
	    out != NULL && strstr(out, "\"item\": { \t\"a\": \"x\\ny\",  "
	    "\"b\":\"\\r\" }}") != NULL && strchr(out, '\n') == NULL,
	    "a pretty-printed item is put on one line");
	free(out);

	out = NULL;
	tap_ok(podio_event_json(d, "12345678901234567890123", 23, NULL, NULL,
	    0, &out, NULL) == PODIO_OK && out != NULL &&
	    strstr(out, "\"item\": 12345678901234567890123}") != NULL,
	    "a bare number as the item");
	free(out);
	podio_delivery_free(d);
}

static void
test_item_invalid(void)
{
	static const char *const bad[] = {
		"", " ", "{", "}", "{}x", "{} {}", "[1,]", "{\"a\":1,}",
		"{\"a\" 1}", "{a:1}", "{1:1}", "01", "-01", "+1", "1.", ".5",
		"1e", "1e+", "-", "0x10", "NaN", "Infinity", "'a'", "nul",
		"tru", "True", "\"abc", "\"raw\nnewline\"", "\"tab\there\"",
		"\"\\x\"", "\"\\u12\"", "\"\\u12g4\"", "\"\xC3\"",
		"\"\xED\xA0\x80\"", "\"\xFF\"", "\"\xC0\xAF\"", "[1 2]",
		"[,1]", "{\"a\":}", "\"\\\"",
	};
	struct podio_delivery *d = mk("type=item.update&hook_id=1");
	char *out, deep[2000];
	size_t i;
	int ok;

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = (char *)"x";
		ok = podio_event_json(d, bad[i], strlen(bad[i]), NULL, NULL,
		    0, &out, NULL) == PODIO_ERR_BAD_JSON && out == NULL;
		tap_ok(ok, "item refused: case %zu", i);
		if (!ok)
			tap_diag("case %zu", i);
	}
	out = NULL;
	tap_ok(podio_event_json(d, "{}\0", 3, NULL, NULL, 0, &out, NULL) ==
	    PODIO_ERR_BAD_JSON, "item with a NUL after it refused");

	/* Nesting: 512 deep is fine, 513 is refused. */
	memset(deep, '[', 512);
	memset(deep + 512, ']', 512);
	tap_ok(podio_event_json(d, deep, 1024, NULL, NULL, 0, &out, NULL) ==
	    PODIO_OK, "an item nested 512 deep");
	free(out);
	out = NULL;
	memset(deep, '[', 513);
	memset(deep + 513, ']', 513);
	tap_ok(podio_event_json(d, deep, 1026, NULL, NULL, 0, &out, NULL) ==
	    PODIO_ERR_BAD_JSON, "an item nested 513 deep is refused");
	podio_delivery_free(d);

	tap_ok(podio__json_valid("{\"a\":[1,-0.5e+10,\"\\u00E9\\/\"],\"b\":"
	    "{\"c\":null}}", 44), "json_valid: a mixed document");
	tap_ok(podio__json_valid("\"\xF4\x8F\xBF\xBF\"", 6),
	    "json_valid: U+10FFFF in a string");
	tap_ok(!podio__json_valid("\"\xF4\x90\x80\x80\"", 6),
	    "json_valid: above U+10FFFF refused");
	tap_ok(podio__json_valid("-0", 2) && podio__json_valid("0.0e0", 5) &&
	    podio__json_valid("1E-2", 4), "json_valid: numbers");
}

static void
test_errors_and_cap(void)
{
	struct podio_delivery *d = mk("type=item.update&hook_id=1&item_id=2");
	char *out = NULL;
	size_t len = 0, full;

	tap_ok(podio_event_json(NULL, NULL, 0, NULL, NULL, 0, &out, NULL) ==
	    PODIO_ERR_INVALID && out == NULL, "no delivery: invalid");
	tap_ok(podio_event_json(d, "{}", 2, "gone", NULL, 0, &out, NULL) ==
	    PODIO_ERR_INVALID && out == NULL, "item and item_error: invalid");

	tap_ok(podio_event_json(d, "{}", 2, NULL, NULL, 0, &out, &len) ==
	    PODIO_OK, "event without a cap");
	full = len;
	free(out);
	out = NULL;
	tap_ok(podio_event_json(d, "{}", 2, NULL, NULL, full, &out, &len) ==
	    PODIO_OK && len == full, "event with cap = its length");
	free(out);
	out = NULL;
	tap_ok(podio_event_json(d, "{}", 2, NULL, NULL, full - 1, &out,
	    &len) == PODIO_ERR_TOO_LARGE && out == NULL && len == 0,
	    "event with cap = its length - 1: too large");
	tap_ok(podio_event_json(d, "{}", 2, NULL, NULL, 10, &out, &len) ==
	    PODIO_ERR_TOO_LARGE && out == NULL, "a tiny cap: too large");
	podio_delivery_free(d);
}

/* A 1 MiB parameter value goes through and reads back the same. */
static void
test_big(void)
{
	const size_t n = 1024 * 1024;
	char *body = malloc(n + 64), *out = NULL;
	struct podio_delivery *d;
	cJSON *j, *v;
	size_t i;

	strcpy(body, "type=a&hook_id=1&big=");
	for (i = 0; i < n; i++)
		body[21 + i] = (char)('a' + i % 26);
	body[21 + n] = '\0';
	d = mk(body);
	tap_ok(d != NULL && podio_event_json(d, NULL, 0, NULL, NULL, 0, &out,
	    NULL) == PODIO_OK, "event with a 1 MiB parameter");
	j = out != NULL ? cJSON_ParseWithOpts(out, NULL, 1) : NULL;
	v = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(j, "params"), "big");
	tap_ok(cJSON_IsString(v) && strcmp(v->valuestring, body + 21) == 0,
	    "the 1 MiB value reads back the same");
	cJSON_Delete(j);
	free(out);
	podio_delivery_free(d);
	free(body);
}

/* Builds the event of body with the given item, item_error and
 * item_source; returns the text (caller frees) or NULL, *err the
 * result. */
static char *
build(const char *body, const char *item, const char *item_error,
    const char *item_source, enum podio_err *err)
{
	struct podio_delivery *d = mk(body);
	char *out = NULL;

	*err = podio_event_json(d, item, item != NULL ? strlen(item) : 0,
	    item_error, item_source, 0, &out, NULL);
	podio_delivery_free(d);
	return out;
}

/* "item_source" follows "item", only when there is an item. */
static void
test_item_source(void)
{
	static const char body[] = "type=item.update&hook_id=1&item_id=2";
	static const char *const bad[] = {
		"", "Get", "get ", "get-1", "g\"et", "x\n", "filter1",
		"abcdefghijklmnopqrstuvwxyzabcdefg",
	};
	enum podio_err err;
	char *out;
	size_t i;
	int ok;

	out = build(body, "{\"item_id\": 2}", NULL, "filter", &err);
	ok = err == PODIO_OK && out != NULL && strcmp(out, "{\"type\": "
	    "\"item.update\", \"hook_id\": 1, \"item_id\": 2, \"params\": "
	    "{\"type\": \"item.update\", \"hook_id\": \"1\", \"item_id\": "
	    "\"2\"}, \"item\": {\"item_id\": 2}, \"item_source\": "
	    "\"filter\"}") == 0;
	tap_ok(ok, "item_source: right after \"item\", last");
	if (!ok)
		tap_diag("got: %s (err %d)", out ? out : "(null)", (int)err);
	tap_ok(out != NULL && cjson_parses(out),
	    "item_source: the event parses with cJSON");
	free(out);

	out = build(body, "[1]", NULL, "get", &err);
	tap_ok(err == PODIO_OK && out != NULL &&
	    strstr(out, ", \"item\": [1], \"item_source\": \"get\"}") != NULL,
	    "item_source \"get\"");
	free(out);

	out = build(body, "{}", NULL, "abcdefghijklmnopqrstuvwxyz_abcde",
	    &err);
	tap_ok(err == PODIO_OK && out != NULL && strstr(out,
	    "\"item_source\": \"abcdefghijklmnopqrstuvwxyz_abcde\"}") != NULL,
	    "item_source of 32 characters");
	free(out);

	out = build(body, "{}", NULL, NULL, &err);
	tap_ok(err == PODIO_OK && out != NULL &&
	    strstr(out, "item_source") == NULL,
	    "no item_source: no member");
	free(out);

	out = build(body, NULL, "not_found", "get", &err);
	tap_ok(err == PODIO_OK && out != NULL &&
	    strstr(out, "item_source") == NULL && strstr(out,
	    ", \"item\": null, \"item_error\": \"not_found\"}") != NULL,
	    "with item_error: no item_source");
	free(out);

	out = build(body, NULL, NULL, "filter", &err);
	tap_ok(err == PODIO_OK && out != NULL &&
	    strstr(out, "item_source") == NULL && strstr(out, "\"item\"") ==
	    NULL, "without an item: no item_source");
	free(out);

	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		out = build(body, "{}", NULL, bad[i], &err);
		tap_ok(err == PODIO_ERR_INVALID && out == NULL,
		    "item_source refused: case %zu", i);
		free(out);
	}
	out = build(body, NULL, "gone", "Bad Source", &err);
	tap_ok(err == PODIO_ERR_INVALID && out == NULL,
	    "an invalid item_source is refused with item_error too");
	free(out);
}

/* "source" marks an event no delivery brought, and survives the spool:
 * the stored event rebuilds a delivery with it. */
static void
test_source(void)
{
	static const char body[] = "type=item.update&hook_id=0&item_id=2";
	static const char other[] = "{\"source\": \"other\", \"params\": "
	    "{\"type\": \"item.update\", \"hook_id\": \"1\"}}";
	struct podio_delivery *d = mk(body), *back = NULL;
	char *out = NULL, *again = NULL, why[128] = "";
	enum podio_err err;
	size_t len = 0;

	err = podio_event_json(d, NULL, 0, NULL, NULL, 0, &out, &len);
	tap_ok(err == PODIO_OK && out != NULL && strstr(out, "source") ==
	    NULL, "source: a delivery of Podio has none");
	free(out);
	out = NULL;
	if (d != NULL)
		d->source = PODIO_EVENT_SOURCE_BACKFILL;
	err = podio_event_json(d, NULL, 0, NULL, NULL, 0, &out, &len);
	tap_ok(err == PODIO_OK && out != NULL && strcmp(out, "{\"type\": "
	    "\"item.update\", \"hook_id\": 0, \"item_id\": 2, \"source\": "
	    "\"backfill\", \"params\": {\"type\": \"item.update\", "
	    "\"hook_id\": \"0\", \"item_id\": \"2\"}}") == 0,
	    "source: after the ids, before params (%s)", out ? out : "");
	err = podio__event_delivery(out, len, &back, why, sizeof(why));
	tap_ok(err == PODIO_OK && back != NULL && back->source != NULL &&
	    strcmp(back->source, "backfill") == 0 && back->hook_id == 0,
	    "source: the stored event gives it back (%s)", why);
	podio_delivery_free(back);
	back = NULL;
	free(out);
	out = NULL;
	err = podio__event_delivery(other, strlen(other), &back, why,
	    sizeof(why));
	tap_ok(err == PODIO_OK && back != NULL && back->source == NULL,
	    "source: an unknown one is not kept");
	podio_delivery_free(back);
	if (d != NULL)
		d->source = "Bad";
	err = podio_event_json(d, NULL, 0, NULL, NULL, 0, &again, &len);
	tap_ok(err == PODIO_ERR_INVALID && again == NULL,
	    "source: an invalid one is refused");
	podio_delivery_free(d);
}

/* What the capturing callback saw: the last event and how many. */
struct seen {
	char json[4096];
	int calls;
};

static int
fn_capture(const char *type, const char *json, size_t len, void *ud)
{
	struct seen *s = ud;

	(void)type;
	snprintf(s->json, sizeof(s->json), "%.*s", (int)len, json);
	s->calls++;
	return 0;
}

static int
fn_fails(const char *type, const char *json, size_t len, void *ud)
{
	(void)type;
	(void)json;
	(void)len;
	((struct seen *)ud)->calls++;
	return 1;
}

/* podio__deliver_item(): no API call (the context has no client). */
static void
test_deliver_item(void)
{
	struct podio_callbacks *reg = podio_callbacks_new();
	struct podio__deliver_ctx ctx;
	struct podio__deliver_result res;
	struct podio_delivery *d = mk("type=item.update&hook_id=1&item_id=2");
	struct podio_delivery *c = mk("type=comment.create&hook_id=1&"
	    "comment_id=3");
	struct podio_delivery *v = mk("type=hook.verify&hook_id=1&code=x");
	struct podio_delivery *bad = mk("type=item.create&hook_id=1");
	struct seen one, two;
	const char *skip[1];
	int status;

	memset(&one, 0, sizeof(one));
	memset(&two, 0, sizeof(two));
	memset(&ctx, 0, sizeof(ctx));
	memset(&res, 0, sizeof(res));
	if (!tap_ok(reg != NULL && d != NULL && c != NULL && v != NULL &&
	    bad != NULL && podio_callbacks_on(reg, "*", fn_capture, &one) ==
	    PODIO_OK && podio_callbacks_on(reg, "item.*", fn_fails, &two) ==
	    PODIO_OK, "deliver_item: set up"))
		goto done;
	ctx.regs[1] = reg;

	status = podio__deliver_item(&ctx, d, "{\"item_id\": 2}", 14, NULL,
	    "filter", &res);
	tap_ok(status == 200 && res.status == 200 && res.fetched &&
	    res.ran == 2 && res.failed == 1 && res.skipped == 0 &&
	    one.calls == 1 && two.calls == 1 &&
	    strstr(one.json, ", \"item\": {\"item_id\": 2}, \"item_source\": "
	    "\"filter\", \"by_self\": false}") != NULL, "deliver_item: the "
	    "event carries the item, \"item_source\" and \"by_self\" (false "
	    "without a client); both callbacks ran (%s)", one.json);
	tap_ok(res.reports[1] != NULL && res.reports[1]->n == 2 &&
	    strcmp(res.reports[1]->results[1].key, "fn:item.*#1") == 0,
	    "deliver_item: the report names each callback's key");
	podio__deliver_result_clear(&res);

	/* the retry: the callback that succeeded is skipped */
	skip[0] = "fn:*#1";
	ctx.skip = skip;
	ctx.nskip = 1;
	one.calls = two.calls = 0;
	status = podio__deliver_item(&ctx, d, "{\"item_id\": 2}", 14, NULL,
	    "get", &res);
	tap_ok(status == 200 && res.ran == 1 && res.failed == 1 &&
	    res.skipped == 1 && one.calls == 0 && two.calls == 1,
	    "deliver_item: ctx->skip leaves out callbacks already done");
	podio__deliver_result_clear(&res);
	ctx.skip = NULL;
	ctx.nskip = 0;

	status = podio__deliver_item(&ctx, d, NULL, 0, "gone", NULL, &res);
	tap_ok(status == 200 && !res.fetched && res.item_error != NULL &&
	    strcmp(res.item_error, "gone") == 0 && strstr(one.json,
	    ", \"item\": null, \"item_error\": \"gone\", \"by_self\": "
	    "false}") != NULL &&
	    strstr(one.json, "item_source") == NULL,
	    "deliver_item: item_error gives \"item\": null (%s)", one.json);
	podio__deliver_result_clear(&res);

	status = podio__deliver_item(&ctx, c, NULL, 0, NULL, NULL, &res);
	tap_ok(status == 200 && res.ran == 1 && strstr(one.json, "\"item") ==
	    NULL, "deliver_item: a type without item: no \"item\"");
	podio__deliver_result_clear(&res);

	one.calls = 0;
	status = podio__deliver_item(&ctx, d, "{\"item_id\": 2,}", 15, NULL,
	    "filter", &res);
	tap_ok(status == 503 && res.err == PODIO_ERR_BAD_JSON &&
	    one.calls == 0, "deliver_item: an item that is not JSON: 503, "
	    "nothing ran");
	podio__deliver_result_clear(&res);

	status = podio__deliver_item(&ctx, bad, "{}", 2, NULL, "get", &res);
	tap_ok(status == 400 && one.calls == 0,
	    "deliver_item: an item.create without item_id: 400");
	podio__deliver_result_clear(&res);

	status = podio__deliver_item(&ctx, v, NULL, 0, NULL, NULL, &res);
	tap_ok(status == 500 && res.err == PODIO_ERR_INVALID &&
	    one.calls == 0, "deliver_item: a hook.verify is refused (500)");
	podio__deliver_result_clear(&res);

	status = podio__deliver_item(&ctx, d, "{}", 2, "gone", NULL, &res);
	tap_ok(status == 500 && one.calls == 0,
	    "deliver_item: both an item and an item error: 500");
	podio__deliver_result_clear(&res);

	status = podio__deliver_item(&ctx, d, "{}", 2, NULL, "Filter", &res);
	tap_ok(status == 500 && res.err == PODIO_ERR_INVALID &&
	    one.calls == 0, "deliver_item: a bad item_source: 500");
	podio__deliver_result_clear(&res);

	skip[0] = NULL;
	ctx.skip = NULL;
	ctx.nskip = 1;
	status = podio__deliver_item(&ctx, d, "{}", 2, NULL, "get", &res);
	tap_ok(status == 500 && one.calls == 0,
	    "deliver_item: skip NULL with nskip 1: 500, nothing ran");
	podio__deliver_result_clear(&res);
done:
	podio_delivery_free(d);
	podio_delivery_free(c);
	podio_delivery_free(v);
	podio_delivery_free(bad);
	podio_callbacks_free(reg);
}

static void
test_json_string(void)
{
	struct podio__buf b = { NULL, 0, 0, 0 };

	tap_ok(podio__json_string(&b, "a\"b\\c\x01\x1f \x7f/", 10) == 0 &&
	    strcmp(b.data, "\"a\\\"b\\\\c\\u0001\\u001f \x7f/\"") == 0,
	    "json_string escapes \" \\ and control bytes only");
	podio__buf_free(&b);
	tap_ok(podio__json_string(&b, "", 0) == 0 && strcmp(b.data, "\"\"") == 0,
	    "json_string of an empty string");
	podio__buf_free(&b);
	tap_ok(podio__json_string(&b, "a\0b", 3) == 0 &&
	    strcmp(b.data, "\"a\\u0000b\"") == 0,
	    "json_string escapes a NUL too");
	podio__buf_free(&b);
	b.cap = 4;
	tap_ok(podio__json_string(&b, "abcdef", 6) == -2,
	    "json_string over the cap: -2");
	podio__buf_free(&b);
}

/*
 * "by_self" (lib/deliver.c): true only when the item's current revision
 * is the event's own and was made by the client's credential, here the
 * app 77 (app authentication: known without any API call).  With
 * skip_self such an event runs no callback.
 */
static void
test_by_self(void)
{
	static const char item[] = "{\"item_id\": 2, \"current_revision\": "
	    "{\"revision\": 3, \"item_revision_id\": 9, \"created_by\": "
	    "{\"type\": \"app\", \"id\": 77, \"user_id\": -1}}}";
	static const struct {
		const char *body;
		const char *item;
		int self;
	} cases[] = {
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=9",
		  item, 1 },
		{ "type=item.create&hook_id=1&item_id=2&item_revision_id=9",
		  item, 1 },
		/* an older event of a coalesced fetch */
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=8",
		  item, 0 },
		{ "type=item.update&hook_id=1&item_id=2", item, 0 },
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=9",
		  "{\"current_revision\": {\"item_revision_id\": 9, "
		  "\"created_by\": {\"type\": \"app\", \"id\": 78}}}", 0 },
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=9",
		  "{\"current_revision\": {\"item_revision_id\": 9, "
		  "\"created_by\": {\"type\": \"user\", \"id\": 77}}}", 0 },
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=9",
		  "{\"current_revision\": {\"revision\": 9, "
		  "\"created_by\": {\"type\": \"app\", \"id\": 77}}}", 0 },
		{ "type=item.update&hook_id=1&item_id=2&item_revision_id=9",
		  "{\"current_revision\": {\"item_revision_id\": \"9\", "
		  "\"created_by\": {\"type\": \"app\", \"id\": 77}}}", 1 },
	};
	struct podio_config *cfg = podio_config_new();
	struct podio_tokens *tokens = NULL;
	struct podio_client *client = NULL;
	struct podio_callbacks *reg = podio_callbacks_new();
	struct podio__deliver_ctx ctx;
	struct podio__deliver_result res;
	struct podio_delivery *d = NULL;
	struct seen one;
	const char *type = NULL;
	uint64_t id = 0;
	char err[256];
	size_t i;
	int status;

	memset(&one, 0, sizeof(one));
	memset(&ctx, 0, sizeof(ctx));
	memset(&res, 0, sizeof(res));
	if (!tap_ok(cfg != NULL && reg != NULL &&
	    podio_config_set(cfg, "client_id", "c", "test", err,
	    sizeof(err)) == PODIO_OK &&
	    podio_config_set(cfg, "client_secret", "s", "test", err,
	    sizeof(err)) == PODIO_OK &&
	    podio_config_set(cfg, "app_id", "77", "test", err,
	    sizeof(err)) == PODIO_OK &&
	    podio_config_set(cfg, "app_token", "t", "test", err,
	    sizeof(err)) == PODIO_OK &&
	    podio_config_set(cfg, "token_cache", "", "test", err,
	    sizeof(err)) == PODIO_OK &&
	    podio_tokens_new(cfg, &tokens, err, sizeof(err)) == PODIO_OK &&
	    podio_client_new(cfg, tokens, &client) == PODIO_OK &&
	    podio_callbacks_on(reg, "*", fn_capture, &one) == PODIO_OK,
	    "by_self: set up"))
		goto done;
	tap_ok(podio_client_self(client, &type, &id) == PODIO_OK &&
	    strcmp(type, "app") == 0 && id == 77,
	    "podio_client_self: the app of app authentication");
	ctx.client = client;
	ctx.regs[1] = reg;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		d = mk(cases[i].body);
		status = podio__deliver_item(&ctx, d, cases[i].item,
		    strlen(cases[i].item), NULL, "get", &res);
		tap_ok(status == 200 && res.by_self == cases[i].self &&
		    strstr(one.json, cases[i].self ? "\"item_source\": "
		    "\"get\", \"by_self\": true}" : "\"item_source\": "
		    "\"get\", \"by_self\": false}") != NULL,
		    "by_self case %zu: %s (%s)", i, cases[i].self ? "true" :
		    "false", one.json);
		podio__deliver_result_clear(&res);
		podio_delivery_free(d);
	}

	/* skip_self: the by_self event settles without callbacks */
	ctx.skip_self = 1;
	one.calls = 0;
	d = mk(cases[0].body);
	status = podio__deliver_item(&ctx, d, item, strlen(item), NULL, "get",
	    &res);
	tap_ok(status == 200 && res.self_skipped && res.ran == 0 &&
	    one.calls == 0, "skip_self: a by_self event runs no callback");
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	d = mk(cases[2].body);
	status = podio__deliver_item(&ctx, d, item, strlen(item), NULL, "get",
	    &res);
	tap_ok(status == 200 && !res.self_skipped && res.ran == 1 &&
	    one.calls == 1, "skip_self: another event runs its callbacks");
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	d = mk("type=comment.create&hook_id=1&item_id=2&comment_id=4");
	status = podio__deliver_item(&ctx, d, NULL, 0, NULL, NULL, &res);
	tap_ok(status == 200 && res.by_self == -1 && one.calls == 2 &&
	    strstr(one.json, "by_self") == NULL,
	    "a type that fetches nothing carries no \"by_self\"");
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
done:
	podio_client_free(client);
	podio_tokens_free(tokens);
	podio_callbacks_free(reg);
	podio_config_free(cfg);
}

int
main(void)
{
	test_exact();
	test_item_embedded();
	test_item_invalid();
	test_errors_and_cap();
	test_item_source();
	test_source();
	test_deliver_item();
	test_by_self();
	test_big();
	test_json_string();
	return tap_done();
}

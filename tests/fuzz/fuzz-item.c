/*
 * fuzz-item.c: the item answer (lib/api.c, podio__api_item()) and its
 * way into the event (lib/event.c, podio_event_json() with its strict
 * validator podio__json_valid()): what GET /item/{id} answered with
 * 2xx, as a processor embeds it into the event the callbacks get.
 *
 * Checked: the answer is taken exactly when cJSON reads one object from
 * it; the event is then built exactly when the strict validator accepts
 * the text, is one line of valid JSON that cJSON reads too, and holds
 * the item as cJSON read it from the answer.
 */
#include <config.h>

#include "podio.h"
#include "api.h"
#include "event.h"
#include "fuzz.h"

/* An item.update delivery (the caller frees it). */
static struct podio_delivery *
delivery(void)
{
	static const char form[] = "type=item.update&hook_id=1001&"
	    "item_id=42&item_revision_id=7";
	struct podio_params *p;
	struct podio_delivery *d = NULL;

	if ((p = podio_params_new(0)) == NULL ||
	    podio_params_parse(p, form, sizeof(form) - 1, NULL) != PODIO_OK ||
	    podio_delivery_new(p, &d, NULL, 0) != PODIO_OK)
		abort();
	return d;
}

/* The event of d with item (len bytes), checked. */
static void
check_event(const struct podio_delivery *d, const char *text, size_t len,
    const cJSON *item)
{
	const char *end = NULL;
	char *json = NULL;
	size_t jlen = 0;
	cJSON *ev;
	enum podio_err rc;
	int valid = podio__json_valid(text, len);

	rc = podio_event_json(d, text, len, NULL, "get", 0, &json, &jlen);
	FUZZ_CHECK(rc == (valid ? PODIO_OK : PODIO_ERR_BAD_JSON),
	    "event: %d, valid %d", rc, valid);
	if (rc != PODIO_OK)
		return;
	FUZZ_CHECK(strlen(json) == jlen && podio__json_valid(json, jlen),
	    "the event is not valid JSON");
	FUZZ_CHECK(memchr(json, '\n', jlen) == NULL &&
	    memchr(json, '\r', jlen) == NULL, "the event is not one line");
	ev = cJSON_ParseWithOpts(json, &end, 1);
	FUZZ_CHECK(ev != NULL, "cJSON cannot read the event");
	FUZZ_CHECK(fuzz_same_json(cJSON_GetObjectItemCaseSensitive(ev, "item"),
	    item), "the event's item differs from the answer");
	cJSON_Delete(ev);
	free(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_delivery *d;
	const char *end = NULL;
	char *text, why[256], *json = NULL;
	cJSON *item = NULL, *ref;
	enum podio_err rc;
	int want;

	if (size > 256 * 1024)
		return 0;
	text = fuzz_dup(data, size);
	ref = strlen(text) == size ? cJSON_ParseWithOpts(text, &end, 1) : NULL;
	want = cJSON_IsObject(ref);
	why[0] = '\0';
	rc = podio__api_item(text, size, &item, why, sizeof(why));
	FUZZ_CHECK(rc == (want ? PODIO_OK : PODIO_ERR_BAD_JSON),
	    "item: %d, expected %d", rc, want);
	FUZZ_CHECK((item != NULL) == want, "item parse with %d", rc);
	if (rc != PODIO_OK)
		FUZZ_CHECK(why[0] != '\0' && fuzz_printable(why),
		    "reason: %s", why);
	d = delivery();
	if (item != NULL)
		check_event(d, text, size, item);
	/* A gone item: the event says so without one. */
	FUZZ_CHECK(podio_event_json(d, NULL, 0, "not_found", NULL, 0, &json,
	    NULL) == PODIO_OK && podio__json_valid(json, strlen(json)),
	    "event without an item");
	free(json);
	podio_delivery_free(d);
	cJSON_Delete(item);
	cJSON_Delete(ref);
	free(text);
	return 0;
}

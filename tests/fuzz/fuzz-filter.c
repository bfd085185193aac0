/*
 * fuzz-filter.c: the filter answer (lib/api.c, podio__api_filter()):
 * what POST /item/app/{app_id}/filter/ answered for a list of item ids,
 * each item handed on as the very bytes of the answer.
 *
 * Checked: an answer cJSON cannot read, or that is not an object with
 * an "items" array of objects with ids, or that has more items than
 * ids asked for, is refused, every output NULL, the reason one
 * printable line; a taken answer gives, for each id asked for, the
 * bytes of the first item with that id (read by cJSON as that very
 * item), and NULL for an id the answer lacks.
 *
 * Input: a first line of item ids separated by blanks (at most 16; a
 * line without one asks for item 1), then the answer.
 */
#include <config.h>

#include "podio.h"
#include "api.h"
#include "fuzz.h"

#define IDS_MAX 16

/* The first item of items (cJSON's reading) with id, or NULL. */
static const cJSON *
item_with(const cJSON *items, uint64_t id)
{
	const cJSON *el, *v;
	double d;

	cJSON_ArrayForEach(el, items) {
		v = cJSON_GetObjectItemCaseSensitive(el, "item_id");
		if (cJSON_IsNumber(v)) {
			d = v->valuedouble;
			if (d >= 0 && d <= 9007199254740992.0 &&
			    d == (double)(uint64_t)d && (uint64_t)d == id)
				return el;
		} else if (cJSON_IsString(v)) {
			uint64_t n;

			if (podio_parse_u64(v->valuestring, &n) == 0 &&
			    n == id)
				return el;
		}
	}
	return NULL;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t ids[IDS_MAX];
	char *texts[IDS_MAX], *head, *text, *p, *q, why[256];
	const uint8_t *nl;
	const char *end = NULL;
	const cJSON *items, *want;
	cJSON *ref, *got;
	size_t n = 0, i, hlen, len;
	enum podio_err rc;

	if (size > 256 * 1024 || (nl = memchr(data, '\n', size)) == NULL)
		return 0;
	hlen = (size_t)(nl - data);
	head = fuzz_dup(data, hlen);
	for (p = head; n < IDS_MAX; p = q) {
		ids[n] = strtoull(p, &q, 10);
		if (q == p)
			break;
		if (ids[n] != 0)
			n++;
	}
	free(head);
	if (n == 0)
		ids[n++] = 1;
	len = size - hlen - 1;
	text = fuzz_dup(nl + 1, len);

	why[0] = '\0';
	rc = podio__api_filter(text, len, ids, n, texts, why, sizeof(why));
	if (rc != PODIO_OK) {
		FUZZ_CHECK(rc == PODIO_ERR_BAD_JSON, "filter: %d", rc);
		for (i = 0; i < n; i++)
			FUZZ_CHECK(texts[i] == NULL, "text %zu on failure", i);
		FUZZ_CHECK(why[0] != '\0' && fuzz_printable(why),
		    "reason: %s", why);
		free(text);
		return 0;
	}
	ref = cJSON_ParseWithOpts(text, &end, 1);
	items = cJSON_GetObjectItemCaseSensitive(ref, "items");
	FUZZ_CHECK(strlen(text) == len && cJSON_IsObject(ref) &&
	    cJSON_IsArray(items) && (size_t)cJSON_GetArraySize(items) <= n,
	    "an answer taken that is not {\"items\": [...]} of at most %zu",
	    n);
	for (i = 0; i < n; i++) {
		want = item_with(items, ids[i]);
		FUZZ_CHECK((texts[i] != NULL) == (want != NULL),
		    "id %llu: text %d, item %d", (unsigned long long)ids[i],
		    texts[i] != NULL, want != NULL);
		if (texts[i] == NULL)
			continue;
		got = cJSON_ParseWithOpts(texts[i], &end, 1);
		FUZZ_CHECK(fuzz_same_json(got, want),
		    "id %llu: the bytes handed on are not its item",
		    (unsigned long long)ids[i]);
		cJSON_Delete(got);
		free(texts[i]);
	}
	cJSON_Delete(ref);
	free(text);
	return 0;
}

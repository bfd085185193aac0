/*
 * fuzz-hooks.c: the hook answers (lib/api.c): podio__api_hooks() (the
 * list, GET /hook/{ref_type}/{ref_id}/) and podio__api_hook_id() (a new
 * hook, POST /hook/{ref_type}/{ref_id}/), both over the same text.
 *
 * Checked against a reading written here with cJSON alone: the list is
 * taken exactly when it is an array of objects that each have an id, a
 * non-negative integer up to 2^53 or a decimal string of a 64-bit
 * number, with each hook's id, status, type and URL as that reading
 * says (a member that is not a string gives ""); the same for the one
 * object of a new hook.  A refusal says why in one printable line.
 */
#include <config.h>

#include "podio.h"
#include "api.h"
#include "fuzz.h"

/* The id of v as this harness reads it: 0 with *out, or -1. */
static int
id_of(const cJSON *v, uint64_t *out)
{
	const char *s;
	uint64_t n = 0;
	double d;

	if (cJSON_IsNumber(v)) {
		d = v->valuedouble;
		if (!(d >= 0 && d <= 9007199254740992.0) || d != (double)
		    (uint64_t)d)
			return -1;
		*out = (uint64_t)d;
		return 0;
	}
	if (!cJSON_IsString(v) || (s = v->valuestring)[0] == '\0' ||
	    (s[0] == '0' && s[1] != '\0'))
		return -1;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' ||
		    n > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -1;
		n = n * 10 + (uint64_t)(*s - '0');
	}
	*out = n;
	return 0;
}

/* A string member as the list gives it: its text, or "". */
static const char *
str_of(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

static void
check_list(const char *text, size_t len, const cJSON *ref)
{
	struct podio_hook *hooks = NULL;
	const cJSON *list = cJSON_IsArray(ref) ? ref : NULL, *el;
	char why[256];
	size_t n = 99, i = 0;
	uint64_t id;
	int want = list != NULL;
	enum podio_err rc;

	cJSON_ArrayForEach(el, list)
		if (!cJSON_IsObject(el) || id_of(
		    cJSON_GetObjectItemCaseSensitive(el, "hook_id"), &id) != 0)
			want = 0;
	why[0] = '\0';
	rc = podio__api_hooks(text, len, &hooks, &n, why, sizeof(why));
	FUZZ_CHECK(rc == (want ? PODIO_OK : PODIO_ERR_BAD_JSON),
	    "list: %d, expected %d", rc, want);
	if (rc != PODIO_OK) {
		FUZZ_CHECK(hooks == NULL && n == 0, "output on failure");
		FUZZ_CHECK(why[0] != '\0' && fuzz_printable(why),
		    "reason: %s", why);
		return;
	}
	FUZZ_CHECK(n == (size_t)cJSON_GetArraySize(ref) &&
	    (n == 0) == (hooks == NULL), "%zu hooks", n);
	cJSON_ArrayForEach(el, ref) {
		(void)id_of(cJSON_GetObjectItemCaseSensitive(el, "hook_id"),
		    &id);
		FUZZ_CHECK(hooks[i].hook_id == id &&
		    strcmp(hooks[i].status, str_of(el, "status")) == 0 &&
		    strcmp(hooks[i].type, str_of(el, "type")) == 0 &&
		    strcmp(hooks[i].url, str_of(el, "url")) == 0,
		    "hook %zu differs", i);
		i++;
	}
	podio_hooks_free(hooks, n);
}

static void
check_created(const char *text, size_t len, const cJSON *ref)
{
	char why[256];
	uint64_t got = 7, id = 0;
	int want;
	enum podio_err rc;

	want = cJSON_IsObject(ref) && id_of(
	    cJSON_GetObjectItemCaseSensitive(ref, "hook_id"), &id) == 0;
	why[0] = '\0';
	rc = podio__api_hook_id(text, len, &got, why, sizeof(why));
	FUZZ_CHECK(rc == (want ? PODIO_OK : PODIO_ERR_BAD_JSON),
	    "hook_id: %d, expected %d", rc, want);
	FUZZ_CHECK(got == (want ? id : 0), "hook_id %llu",
	    (unsigned long long)got);
	if (rc != PODIO_OK)
		FUZZ_CHECK(why[0] != '\0' && fuzz_printable(why),
		    "reason: %s", why);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *end = NULL;
	char *text;
	cJSON *ref;

	if (size > 256 * 1024)
		return 0;
	text = fuzz_dup(data, size);
	ref = strlen(text) == size ? cJSON_ParseWithOpts(text, &end, 1) : NULL;
	check_list(text, size, ref);
	check_created(text, size, ref);
	cJSON_Delete(ref);
	free(text);
	return 0;
}

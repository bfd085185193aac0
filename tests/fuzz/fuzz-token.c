/*
 * fuzz-token.c: the token answer (lib/auth.c,
 * podio__tokens_take_answer()): what POST /oauth/token answered with
 * 2xx, taken into a token store of the app flow, twice (the second
 * answer replaces the tokens of the first).
 *
 * Checked: the answer is taken exactly when it is a JSON object with a
 * non-empty "access_token" string of at most 4096 bytes; a refusal says
 * why in one printable line.
 */
#include <config.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "auth.h"
#include "fuzz.h"

static struct podio_tokens *
store(void)
{
	static const char *const set[][2] = {
		{ "client_id", "fuzz-client" },
		{ "client_secret", "fuzz-client-secret" },
		{ "app_id", "1234" },
		{ "app_token", "fuzz-app-token" },
		{ "token_cache", "" },
	};
	struct podio_config *cfg;
	struct podio_tokens *t = NULL;
	char err[256];
	size_t i;

	if ((cfg = podio_config_new()) == NULL)
		abort();
	for (i = 0; i < sizeof(set) / sizeof(set[0]); i++)
		if (podio_config_set(cfg, set[i][0], set[i][1], NULL, err,
		    sizeof(err)) != PODIO_OK)
			abort();
	if (podio_tokens_new(cfg, &t, err, sizeof(err)) != PODIO_OK)
		abort();
	podio_config_free(cfg);
	return t;
}

/* Whether body is what the store must take, read with cJSON alone. */
static int
acceptable(const char *body)
{
	const char *end = NULL;
	cJSON *j = cJSON_ParseWithOpts(body, &end, 1);
	const cJSON *a = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	int ok;

	ok = cJSON_IsObject(j) && cJSON_IsString(a) &&
	    a->valuestring != NULL && a->valuestring[0] != '\0' &&
	    strlen(a->valuestring) <= 4096;
	cJSON_Delete(j);
	return ok;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_tokens *t;
	char *body, err[512];
	enum podio_err rc;
	int round, want;

	if (size > 64 * 1024)
		return 0;
	body = fuzz_dup(data, size);
	want = acceptable(body);
	t = store();
	for (round = 0; round < 2; round++) {
		err[0] = '\0';
		rc = podio__tokens_take_answer(t, body, 1700000000000LL, err,
		    sizeof(err));
		FUZZ_CHECK(rc == (want ? PODIO_OK : PODIO_ERR_BAD_JSON),
		    "taken %d, expected %d", rc, want);
		if (rc != PODIO_OK)
			FUZZ_CHECK(err[0] != '\0' && fuzz_printable(err),
			    "message: %s", err);
	}
	podio_tokens_free(t);
	free(body);
	return 0;
}

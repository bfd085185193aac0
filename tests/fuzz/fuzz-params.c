/*
 * fuzz-params.c: parameter decoding (lib/params.c).  podio_params_parse()
 * over any bytes as a query and then a body merged into one set, checked
 * against a plain model of the merge (each name at its first position
 * with the value of its last occurrence), and podio__form_decode() whose
 * counting pass must agree with its writing pass.
 *
 * Input: one byte choosing max_params (its value modulo 16; 0 = no
 * limit), then the query up to the first newline, then the body.
 */
#include <config.h>

#include "podio.h"
#include "params.h"
#include "fuzz.h"

/* The pieces a model keeps (a longer input is checked without it). */
#define MODEL_MAX 64

struct model {
	char *name[MODEL_MAX];
	char *value[MODEL_MAX];
	size_t n;
	int off;           /* more pieces than MODEL_MAX: no model */
};

/* A decoded copy of n bytes (podio__form_decode() as the library
 * uses it; *nul set when the text holds a NUL). */
static char *
decode(const char *in, size_t n, int *nul)
{
	size_t len = podio__form_decode(in, n, NULL, nul);
	char *s = malloc(len + 1);
	int nul2 = 0;

	if (s == NULL)
		abort();
	FUZZ_CHECK(podio__form_decode(in, n, s, &nul2) == len,
	    "the counting and writing passes disagree on %zu bytes", n);
	FUZZ_CHECK(nul2 == *nul, "the passes disagree on NUL");
	s[len] = '\0';
	FUZZ_CHECK(fuzz_utf8(s, len), "decoded text is not UTF-8");
	return s;
}

/* Adds the pieces of text to the model: a name already there takes the
 * new value, a new name goes last. */
static void
model_add(struct model *m, const char *text, size_t len)
{
	const char *p = text, *end = text + len, *amp, *eq;
	size_t piece, key, i;
	char *name, *value;
	int nul;

	while (len > 0 && !m->off) {
		amp = memchr(p, '&', (size_t)(end - p));
		piece = amp != NULL ? (size_t)(amp - p) : (size_t)(end - p);
		if (piece > 0) {
			eq = memchr(p, '=', piece);
			key = eq != NULL ? (size_t)(eq - p) : piece;
			name = decode(p, key, &nul);
			value = eq != NULL ? decode(eq + 1, piece - key - 1,
			    &nul) : strdup("");
			for (i = 0; i < m->n; i++)
				if (strcmp(m->name[i], name) == 0)
					break;
			if (i < m->n) {
				free(name);
				free(m->value[i]);
				m->value[i] = value;
			} else if (m->n == MODEL_MAX) {
				free(name);
				free(value);
				m->off = 1;
			} else {
				m->name[m->n] = name;
				m->value[m->n++] = value;
			}
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
}

static void
model_free(struct model *m)
{
	size_t i;

	for (i = 0; i < m->n; i++) {
		free(m->name[i]);
		free(m->value[i]);
	}
	memset(m, 0, sizeof(*m));
}

/* The set agrees with itself (names distinct, found by the index, valid
 * UTF-8 within the limits) and with the model. */
static void
check_set(const struct podio_params *set, const struct model *m)
{
	const char *name, *value;
	size_t i, n = podio_params_count(set);

	for (i = 0; podio_params_at(set, i, &name, &value); i++) {
		FUZZ_CHECK(strlen(name) <= PODIO_PARAMS_MAX_KEY,
		    "name of %zu bytes", strlen(name));
		FUZZ_CHECK(fuzz_utf8(name, strlen(name)) &&
		    fuzz_utf8(value, strlen(value)), "stored text not UTF-8");
		FUZZ_CHECK(podio_params_get(set, name) == value,
		    "the index does not find parameter %zu", i);
	}
	FUZZ_CHECK(i == n, "count %zu, %zu reachable", n, i);
	if (m->off)
		return;
	FUZZ_CHECK(n == m->n, "%zu names, the model has %zu", n, m->n);
	for (i = 0; i < n; i++) {
		(void)podio_params_at(set, i, &name, &value);
		FUZZ_CHECK(strcmp(name, m->name[i]) == 0 &&
		    strcmp(value, m->value[i]) == 0,
		    "parameter %zu differs from the model", i);
	}
}

/* One podio_params_parse(): a failure leaves the set as it was and says
 * why in a static phrase; a success matches the model. */
static int
parse(struct podio_params *set, struct model *m, const char *text,
    size_t len)
{
	const char *reason = "unset";
	size_t before = podio_params_count(set);
	enum podio_err rc;

	rc = podio_params_parse(set, text, len, &reason);
	if (rc != PODIO_OK) {
		FUZZ_CHECK(rc == PODIO_ERR_TOO_LARGE ||
		    rc == PODIO_ERR_INVALID, "unexpected error %d", rc);
		FUZZ_CHECK(reason != NULL && fuzz_printable(reason),
		    "no reason for error %d", rc);
		FUZZ_CHECK(podio_params_count(set) == before,
		    "a failed parse changed the set");
		return -1;
	}
	FUZZ_CHECK(reason == NULL, "a reason on success");
	model_add(m, text, len);
	check_set(set, m);
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_params *set;
	struct model m;
	const char *text, *nl;
	size_t len, qlen;

	if (size < 1)
		return 0;
	memset(&m, 0, sizeof(m));
	text = (const char *)data + 1;
	len = size - 1;
	nl = memchr(text, '\n', len);
	qlen = nl != NULL ? (size_t)(nl - text) : len;
	if ((set = podio_params_new(data[0] % 16)) == NULL)
		abort();
	if (parse(set, &m, text, qlen) == 0 && nl != NULL)
		(void)parse(set, &m, nl + 1, len - qlen - 1);
	podio_params_free(set);
	model_free(&m);
	return 0;
}

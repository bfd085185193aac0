/*
 * test-params.c: urlencoded parameters (lib/params.c): the WHATWG
 * decoding on a table of inputs (each compared with the exact result the
 * URL standard's parser gives), NUL refusal, merging of the query and
 * the body, the limits, and large inputs.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podio.h"
#include "params.h"
#include "tap.h"

#define R "\xEF\xBF\xBD"  /* U+FFFD REPLACEMENT CHARACTER */

struct pcase {
	const char *what;
	const char *in;
	size_t len;             /* 0: strlen(in) */
	enum podio_err err;
	const char *pairs[12];  /* name, value, ..., NULL, in set order */
};

static const struct pcase cases[] = {
	{ "empty string", "", 0, PODIO_OK, { NULL } },
	{ "only separators", "&&&", 0, PODIO_OK, { NULL } },
	{ "name without =", "a", 0, PODIO_OK, { "a", "", NULL } },
	{ "empty value", "a=", 0, PODIO_OK, { "a", "", NULL } },
	{ "empty name", "=b", 0, PODIO_OK, { "", "b", NULL } },
	{ "lone =", "=", 0, PODIO_OK, { "", "", NULL } },
	{ "= in value", "a=b=c", 0, PODIO_OK, { "a", "b=c", NULL } },
	{ "empty pieces skipped", "&a=1&&b=2&", 0, PODIO_OK,
	    { "a", "1", "b", "2", NULL } },
	{ "; is not a separator", "a=b;c=d", 0, PODIO_OK,
	    { "a", "b;c=d", NULL } },
	{ "% at the end of a name", "%", 0, PODIO_OK, { "%", "", NULL } },
	{ "% at the end of a value", "a=%", 0, PODIO_OK, { "a", "%", NULL } },
	{ "%4 truncated", "a=%4", 0, PODIO_OK, { "a", "%4", NULL } },
	{ "%zz", "a=%zz", 0, PODIO_OK, { "a", "%zz", NULL } },
	{ "%4g", "a=%4g", 0, PODIO_OK, { "a", "%4g", NULL } },
	{ "%% then %41", "a=%%41", 0, PODIO_OK, { "a", "%A", NULL } },
	{ "% then +", "a=%+41", 0, PODIO_OK, { "a", "% 41", NULL } },
	{ "decoded once only", "a=%2541", 0, PODIO_OK, { "a", "%41", NULL } },
	{ "+ alone", "+", 0, PODIO_OK, { " ", "", NULL } },
	{ "+ in name and value", "a+b=c+d", 0, PODIO_OK,
	    { "a b", "c d", NULL } },
	{ "%2B is a plus", "a=%2B", 0, PODIO_OK, { "a", "+", NULL } },
	{ "%20 is a space", "a=%20x", 0, PODIO_OK, { "a", " x", NULL } },
	{ "percent-encoded name", "%61%62=1", 0, PODIO_OK, { "ab", "1", NULL } },
	{ "encoded & and =", "a=%26%3D", 0, PODIO_OK, { "a", "&=", NULL } },
	{ "UTF-8 %C3%A9", "a=%C3%A9", 0, PODIO_OK, { "a", "\xC3\xA9", NULL } },
	{ "UTF-8 lower-case hex", "a=%c3%a9", 0, PODIO_OK,
	    { "a", "\xC3\xA9", NULL } },
	{ "UTF-8 4 bytes", "a=%F0%9F%98%80", 0, PODIO_OK,
	    { "a", "\xF0\x9F\x98\x80", NULL } },
	{ "UTF-8 U+10FFFF", "a=%F4%8F%BF%BF", 0, PODIO_OK,
	    { "a", "\xF4\x8F\xBF\xBF", NULL } },
	{ "BOM kept", "a=%EF%BB%BFx", 0, PODIO_OK,
	    { "a", "\xEF\xBB\xBFx", NULL } },
	{ "truncated 2-byte %C3", "a=%C3", 0, PODIO_OK, { "a", R, NULL } },
	{ "%C3 then ASCII", "a=%C3(", 0, PODIO_OK, { "a", R "(", NULL } },
	{ "%FF", "a=%FF", 0, PODIO_OK, { "a", R, NULL } },
	{ "%FE%FF", "a=%FE%FF", 0, PODIO_OK, { "a", R R, NULL } },
	{ "stray continuation", "a=%80x", 0, PODIO_OK, { "a", R "x", NULL } },
	{ "overlong %C0%AF", "a=%C0%AF", 0, PODIO_OK, { "a", R R, NULL } },
	{ "overlong %E0%80%AF", "a=%E0%80%AF", 0, PODIO_OK,
	    { "a", R R R, NULL } },
	{ "overlong %F0%80%80%AF", "a=%F0%80%80%AF", 0, PODIO_OK,
	    { "a", R R R R, NULL } },
	{ "surrogate %ED%A0%80", "a=%ED%A0%80", 0, PODIO_OK,
	    { "a", R R R, NULL } },
	{ "last before surrogates %ED%9F%BF", "a=%ED%9F%BF", 0, PODIO_OK,
	    { "a", "\xED\x9F\xBF", NULL } },
	{ "above U+10FFFF %F4%90%80%80", "a=%F4%90%80%80", 0, PODIO_OK,
	    { "a", R R R R, NULL } },
	{ "truncated 4-byte %F0%9F%98", "a=%F0%9F%98", 0, PODIO_OK,
	    { "a", R, NULL } },
	{ "truncated 4-byte then ASCII", "a=%F0%9F%98x", 0, PODIO_OK,
	    { "a", R "x", NULL } },
	{ "truncated 4-byte then lead", "a=%F0%9F%C3%A9", 0, PODIO_OK,
	    { "a", R "\xC3\xA9", NULL } },
	{ "truncated 3-byte %E2%82", "a=%E2%82", 0, PODIO_OK,
	    { "a", R, NULL } },
	{ "5-byte form %F8%88%80%80%80", "a=%F8%88%80%80%80", 0, PODIO_OK,
	    { "a", R R R R R, NULL } },
	{ "broken UTF-8 in a name", "%C3=1", 0, PODIO_OK, { R, "1", NULL } },
	{ "raw UTF-8 bytes", "a=\xC3\xA9", 0, PODIO_OK,
	    { "a", "\xC3\xA9", NULL } },
	{ "raw Latin-1 bytes", "\xE9t\xE9=\xFF", 0, PODIO_OK,
	    { R "t" R, R, NULL } },
	{ "raw and encoded halves", "a=\xC3%A9", 0, PODIO_OK,
	    { "a", "\xC3\xA9", NULL } },
	{ "%00 in a value", "a=%00", 0, PODIO_ERR_INVALID, { NULL } },
	{ "%00 in a name", "%00=a", 0, PODIO_ERR_INVALID, { NULL } },
	{ "%00 after good pairs", "a=1&b=2&c=x%00y", 0, PODIO_ERR_INVALID,
	    { NULL } },
	{ "raw NUL in a value", "a=b\0c", 5, PODIO_ERR_INVALID, { NULL } },
	{ "raw NUL alone", "\0", 1, PODIO_ERR_INVALID, { NULL } },
	{ "%2500 is not a NUL", "a=%2500", 0, PODIO_OK,
	    { "a", "%00", NULL } },
	{ "repeated key, last wins", "a=1&a=2", 0, PODIO_OK,
	    { "a", "2", NULL } },
	{ "repeated key keeps its first place", "a=1&b=2&a=3", 0, PODIO_OK,
	    { "a", "3", "b", "2", NULL } },
	{ "repeat by another spelling", "a b=1&a+b=2&a%20b=3", 0, PODIO_OK,
	    { "a b", "3", NULL } },
	{ "a captured Podio body",
	    "item_id=177635048&item_revision_id=26&type=item.update&"
	    "hook_id=224688", 0, PODIO_OK,
	    { "item_id", "177635048", "item_revision_id", "26",
	      "type", "item.update", "hook_id", "224688", NULL } },
};

/* Whether params holds exactly pairs, in order, and get() finds each. */
static int
same_pairs(const struct podio_params *p, const char *const *pairs,
    char *why, size_t whylen)
{
	const char *name, *value, *got;
	size_t i, n = 0;

	while (pairs[2 * n] != NULL)
		n++;
	if (podio_params_count(p) != n) {
		snprintf(why, whylen, "count %zu, expected %zu",
		    podio_params_count(p), n);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (!podio_params_at(p, i, &name, &value) ||
		    strcmp(name, pairs[2 * i]) != 0 ||
		    strcmp(value, pairs[2 * i + 1]) != 0) {
			snprintf(why, whylen, "pair %zu differs", i);
			return 0;
		}
		got = podio_params_get(p, pairs[2 * i]);
		if (got == NULL || strcmp(got, pairs[2 * i + 1]) != 0) {
			snprintf(why, whylen, "get(pair %zu) differs", i);
			return 0;
		}
	}
	if (podio_params_at(p, n, &name, &value)) {
		snprintf(why, whylen, "a pair past the end");
		return 0;
	}
	return 1;
}

static void
run_table(void)
{
	struct podio_params *p;
	const struct pcase *c;
	const char *reason;
	enum podio_err err;
	char why[128];
	size_t i;
	int ok;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		c = &cases[i];
		p = podio_params_new(0);
		err = podio_params_parse(p, c->in,
		    c->len != 0 ? c->len : strlen(c->in), &reason);
		why[0] = '\0';
		if (err != c->err)
			snprintf(why, sizeof(why), "error %d, expected %d",
			    (int)err, (int)c->err);
		ok = err == c->err && same_pairs(p, c->pairs, why, sizeof(why));
		if (ok && err != PODIO_OK)
			ok = reason != NULL &&
			    strcmp(reason, "NUL byte in a parameter") == 0;
		if (ok && err == PODIO_OK)
			ok = reason == NULL;
		tap_ok(ok, "decode: %s", c->what);
		if (!ok)
			tap_diag("%s", why);
		podio_params_free(p);
	}
}

/* An independent UTF-8 validity check (Unicode Table 3-7). */
static int
valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0, k, need;
	unsigned char lo, hi;

	while (i < n) {
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		lo = 0x80;
		hi = 0xBF;
		if (s[i] >= 0xC2 && s[i] <= 0xDF)
			need = 1;
		else if (s[i] == 0xE0) {
			need = 2;
			lo = 0xA0;
		} else if (s[i] == 0xED) {
			need = 2;
			hi = 0x9F;
		} else if (s[i] >= 0xE1 && s[i] <= 0xEF)
			need = 2;
		else if (s[i] == 0xF0) {
			need = 3;
			lo = 0x90;
		} else if (s[i] >= 0xF1 && s[i] <= 0xF3)
			need = 3;
		else if (s[i] == 0xF4) {
			need = 3;
			hi = 0x8F;
		} else
			return 0;
		if (n - i <= need)
			return 0;
		for (k = 1; k <= need; k++) {
			if (s[i + k] < lo || s[i + k] > hi)
				return 0;
			lo = 0x80;
			hi = 0xBF;
		}
		i += need + 1;
	}
	return 1;
}

static unsigned long rng = 12345;

static unsigned
next_rand(void)
{
	rng = rng * 1103515245UL + 12345UL;
	return (unsigned)(rng >> 16) & 0x7FFF;
}

/* Random bytes in, valid UTF-8 out; valid UTF-8 in, the same out. */
static void
test_random_utf8(void)
{
	unsigned char in[64];
	char out[3 * sizeof(in)];
	size_t n, len, i, round;
	int nul, all_valid = 1, identity = 1, bound = 1;

	for (round = 0; round < 20000; round++) {
		n = next_rand() % sizeof(in);
		for (i = 0; i < n; i++) {
			/* Mostly bytes >= 0x80, never '%' or '+' (so the
			 * percent step is the identity) and never NUL. */
			in[i] = (unsigned char)(0x80 + next_rand() % 0x80);
			if (next_rand() % 4 == 0)
				in[i] = (unsigned char)('a' + next_rand() % 26);
		}
		len = podio__form_decode((const char *)in, n, out, &nul);
		if (len > 3 * n || len != podio__form_decode(
		    (const char *)in, n, NULL, NULL))
			bound = 0;
		if (!valid_utf8((const unsigned char *)out, len))
			all_valid = 0;
		if (valid_utf8(in, n) && (len != n || memcmp(in, out, n) != 0))
			identity = 0;
	}
	tap_ok(all_valid, "20000 random byte strings decode to valid UTF-8");
	tap_ok(identity, "valid UTF-8 decodes to itself");
	tap_ok(bound, "decoded length <= 3 * input, counting agrees");
}

static void
test_form_decode(void)
{
	char out[64];
	size_t len;
	int nul = -1;

	len = podio__form_decode("a%00b", 5, out, &nul);
	tap_ok(len == 3 && nul == 1 && memcmp(out, "a\0b", 3) == 0,
	    "form_decode reports a NUL");
	len = podio__form_decode("%FF", 3, NULL, &nul);
	tap_ok(len == 3 && nul == 0, "form_decode counts without output");
	len = podio__form_decode("%41%4", 5, out, NULL);
	tap_ok(len == 3 && memcmp(out, "A%4", 3) == 0,
	    "form_decode: %%41 then a truncated %%4");
}

static void
test_merge(void)
{
	struct podio_params *p;
	const char *reason = "x";
	const char *name;

	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, "a=1&secret=q&b=2", 16, &reason) ==
	    PODIO_OK && reason == NULL, "query parsed");
	tap_ok(podio_params_parse(p, "b=3&secret=s&c=4", 16, &reason) ==
	    PODIO_OK, "body parsed");
	{
		static const char *const want[] = { "a", "1", "secret", "s",
		    "b", "3", "c", "4", NULL };
		char why[128];
		int ok = same_pairs(p, want, why, sizeof(why));

		tap_ok(ok, "body beats the query; first position kept");
		if (!ok)
			tap_diag("%s", why);
	}
	tap_ok(podio_params_get(p, "d") == NULL, "absent name gives NULL");
	tap_ok(podio_params_get(p, "") == NULL, "absent empty name gives NULL");

	/* A failed parse leaves the set as it was. */
	tap_ok(podio_params_parse(p, "a=9&y=2&z=%00", 13, &reason) ==
	    PODIO_ERR_INVALID && reason != NULL, "NUL in a later parse");
	tap_ok(podio_params_count(p) == 4 && podio_params_get(p, "y") ==
	    NULL && strcmp(podio_params_get(p, "a"), "1") == 0,
	    "failed parse leaves the set unchanged");
	tap_ok(podio_params_parse(p, "d=5&a=6", 7, NULL) == PODIO_OK &&
	    podio_params_count(p) == 5 && podio_params_at(p, 4, &name, NULL) &&
	    strcmp(name, "d") == 0 && strcmp(podio_params_get(p, "a"),
	    "6") == 0, "a third parse merges again");
	podio_params_free(p);

	/* The same name 10,000 times. */
	{
		char *buf = malloc(10000 * 12);
		size_t len = 0;
		int i;

		for (i = 0; i < 10000; i++)
			len += (size_t)sprintf(buf + len, "%sa=%d",
			    i ? "&" : "", i);
		p = podio_params_new(10000);
		tap_ok(podio_params_parse(p, buf, len, NULL) == PODIO_OK &&
		    podio_params_count(p) == 1 &&
		    strcmp(podio_params_get(p, "a"), "9999") == 0,
		    "10,000 repeats of one name: one pair, last value");
		podio_params_free(p);
		free(buf);
	}
	podio_params_free(NULL);
	tap_ok(1, "podio_params_free(NULL)");
}

/* "k0=v0&k1=v1&..." with n pairs from index first; caller frees. */
static char *
make_pairs(int first, int n, size_t *len)
{
	char *buf = malloc((size_t)n * 24 + 1);
	int i;

	*len = 0;
	buf[0] = '\0';
	for (i = first; i < first + n; i++)
		*len += (size_t)sprintf(buf + *len, "%sk%d=v%d",
		    i > first ? "&" : "", i, i);
	return buf;
}

static void
test_count_limits(void)
{
	struct podio_params *p;
	const char *reason = NULL, *name, *value;
	char *buf, *buf2;
	size_t len, len2, count;
	int ok;

	buf = make_pairs(0, 10000, &len);
	p = podio_params_new(10000);
	tap_ok(podio_params_parse(p, buf, len, &reason) == PODIO_OK,
	    "10,000 parameters with max_params 10000");
	ok = podio_params_count(p) == 10000 &&
	    strcmp(podio_params_get(p, "k9999"), "v9999") == 0 &&
	    strcmp(podio_params_get(p, "k0"), "v0") == 0 &&
	    strcmp(podio_params_get(p, "k5000"), "v5000") == 0 &&
	    podio_params_at(p, 9999, &name, &value) &&
	    strcmp(name, "k9999") == 0 && podio_params_at(p, 1234, &name,
	    &value) && strcmp(name, "k1234") == 0 && strcmp(value,
	    "v1234") == 0;
	tap_ok(ok, "10,000 parameters: all there, in order");
	podio_params_free(p);

	p = podio_params_new(256);
	tap_ok(podio_params_parse(p, buf, len, &reason) ==
	    PODIO_ERR_TOO_LARGE && reason != NULL &&
	    strcmp(reason, "too many parameters") == 0,
	    "10,000 parameters with max_params 256: too large");
	tap_ok(podio_params_count(p) == 0, "nothing kept after the refusal");
	podio_params_free(p);
	free(buf);

	/* The count runs over the query and the body together. */
	buf = make_pairs(0, 5000, &len);
	buf2 = make_pairs(5000, 5001, &len2);
	p = podio_params_new(10000);
	tap_ok(podio_params_parse(p, buf, len, NULL) == PODIO_OK &&
	    podio_params_parse(p, buf2, len2, NULL) == PODIO_ERR_TOO_LARGE,
	    "5,000 + 5,001 parameters over two parses: too large");
	tap_ok(podio_params_count(p) == 5000, "the first parse is kept");
	podio_params_free(p);
	free(buf);
	free(buf2);

	/* Exactly the limit, repeats counted, empty pieces not. */
	p = podio_params_new(3);
	tap_ok(podio_params_parse(p, "a=1&&a=2&&b=3&", 14, NULL) == PODIO_OK,
	    "3 pieces with max_params 3 (empty pieces free)");
	tap_ok(podio_params_parse(p, "c", 1, NULL) == PODIO_ERR_TOO_LARGE,
	    "a 4th piece is refused even though a name repeated");
	podio_params_free(p);

	/* Limits are found before a NUL anywhere in the text. */
	buf = make_pairs(0, 300, &len);
	buf2 = malloc(len + 16);
	memcpy(buf2, "z=%00&", 6);
	memcpy(buf2 + 6, buf, len);
	p = podio_params_new(256);
	tap_ok(podio_params_parse(p, buf2, len + 6, &reason) ==
	    PODIO_ERR_TOO_LARGE, "too many parameters wins over a NUL");
	podio_params_free(p);
	free(buf);
	free(buf2);

	count = 7;
	tap_ok(podio__params_check("a&b=&&c=1", 9, &count, 0, &reason) ==
	    PODIO_OK && count == 10, "params_check adds the pieces");
	count = 0;
	tap_ok(podio__params_check("a&b&c", 5, &count, 2, &reason) ==
	    PODIO_ERR_TOO_LARGE && strcmp(reason, "too many parameters") == 0,
	    "params_check refuses the third of max 2");
	count = 0;
	tap_ok(podio__params_check(NULL, 0, &count, 1, &reason) == PODIO_OK &&
	    count == 0, "params_check of nothing");
}

static void
test_key_limit(void)
{
	char buf[4096];
	struct podio_params *p;
	const char *reason = NULL, *name;
	size_t i, n;

	memset(buf, 'k', PODIO_PARAMS_MAX_KEY);
	memcpy(buf + PODIO_PARAMS_MAX_KEY, "=v", 3);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, strlen(buf), &reason) == PODIO_OK &&
	    podio_params_count(p) == 1, "a %d-byte name is accepted",
	    PODIO_PARAMS_MAX_KEY);
	podio_params_free(p);

	memset(buf, 'k', PODIO_PARAMS_MAX_KEY + 1);
	memcpy(buf + PODIO_PARAMS_MAX_KEY + 1, "=v", 3);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, strlen(buf), &reason) ==
	    PODIO_ERR_TOO_LARGE && strcmp(reason,
	    "parameter name too long") == 0, "a %d-byte name is refused",
	    PODIO_PARAMS_MAX_KEY + 1);
	podio_params_free(p);

	/* Without '=' the whole piece is the name. */
	memset(buf, 'k', 1000);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, 1000, &reason) ==
	    PODIO_ERR_TOO_LARGE, "a 1000-byte name without = is refused");
	podio_params_free(p);

	/* The limit is on the decoded name: 256 "%41" (768 bytes) decode to
	 * 256 bytes; 257 do not fit. */
	for (n = 0, i = 0; i < PODIO_PARAMS_MAX_KEY; i++)
		n += (size_t)sprintf(buf + n, "%%41");
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, n, &reason) == PODIO_OK,
	    "a name of 256 %%41 (768 raw bytes) is accepted");
	podio_params_free(p);
	n += (size_t)sprintf(buf + n, "%%41");
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, n, &reason) == PODIO_ERR_TOO_LARGE,
	    "a name of 257 %%41 is refused");
	podio_params_free(p);

	/* A raw 0xFF becomes 3 bytes: 85 fit (255), 86 do not (258). */
	memset(buf, 0xFF, 86);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, 85, &reason) == PODIO_OK &&
	    podio_params_at(p, 0, &name, NULL) && strlen(name) == 255,
	    "85 raw 0xFF bytes in a name decode to 255 bytes: accepted");
	podio_params_free(p);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, 86, &reason) == PODIO_ERR_TOO_LARGE,
	    "86 raw 0xFF bytes in a name decode to 258 bytes: refused");
	podio_params_free(p);

	/* A long value is no problem. */
	buf[0] = 'k';
	buf[1] = '=';
	memset(buf + 2, 'v', 3000);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, buf, 3002, &reason) == PODIO_OK &&
	    strlen(podio_params_get(p, "k")) == 3000,
	    "a 3000-byte value is not a name");
	podio_params_free(p);
}

/* A 1 MiB value of every byte class, encoded, round-trips. */
static void
test_big_value(void)
{
	const size_t n = 1024 * 1024;
	unsigned char *want = malloc(n);
	char *enc = malloc(3 * n + 16);
	struct podio_params *p;
	const char *got;
	size_t i, len;

	memcpy(enc, "big=", 4);
	len = 4;
	for (i = 0; i < n; i++) {
		unsigned r = next_rand() % 4;

		if (r == 0) {
			/* plain */
			want[i] = (unsigned char)('a' + next_rand() % 26);
			enc[len++] = (char)want[i];
		} else if (r == 1) {
			want[i] = ' ';
			enc[len++] = '+';
		} else {
			/* any printable ASCII byte, percent-encoded */
			want[i] = (unsigned char)(0x20 + next_rand() % 0x5F);
			len += (size_t)sprintf(enc + len, "%%%02X", want[i]);
		}
	}
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, enc, len, NULL) == PODIO_OK,
	    "a 1 MiB value (%zu bytes encoded) parses", len);
	got = podio_params_get(p, "big");
	tap_ok(got != NULL && strlen(got) == n && memcmp(got, want, n) == 0,
	    "the 1 MiB value round-trips exactly");
	podio_params_free(p);

	/* 1 MiB of 0xE9 (Latin-1 e-acute) becomes 3 MiB of U+FFFD. */
	memset(enc + 4, 0xE9, n);
	p = podio_params_new(0);
	tap_ok(podio_params_parse(p, enc, 4 + n, NULL) == PODIO_OK &&
	    (got = podio_params_get(p, "big")) != NULL &&
	    strlen(got) == 3 * n && memcmp(got, R R R, 9) == 0 &&
	    memcmp(got + 3 * n - 3, R, 3) == 0,
	    "1 MiB of invalid bytes becomes 3 MiB of U+FFFD");
	podio_params_free(p);
	free(want);
	free(enc);
}

/* Many distinct names sharing a 250-byte prefix still merge right. */
static void
test_similar_names(void)
{
	char *buf = malloc(2000 * 270);
	struct podio_params *p;
	char name[300];
	size_t len = 0;
	int i, ok = 1;

	for (i = 0; i < 2000; i++) {
		buf[len++] = i ? '&' : 'x';
		if (i == 0)
			len--;
		memset(buf + len, 'p', 250);
		len += 250;
		len += (size_t)sprintf(buf + len, "%04d=%d", 1999 - i, i);
	}
	p = podio_params_new(0);
	ok = podio_params_parse(p, buf, len, NULL) == PODIO_OK &&
	    podio_params_count(p) == 2000;
	memset(name, 'p', 250);
	for (i = 0; ok && i < 2000; i++) {
		const char *v;
		char want[16];

		sprintf(name + 250, "%04d", 1999 - i);
		sprintf(want, "%d", i);
		v = podio_params_get(p, name);
		ok = v != NULL && strcmp(v, want) == 0;
	}
	tap_ok(ok, "2000 names with a common 250-byte prefix");
	podio_params_free(p);
	free(buf);
}

int
main(void)
{
	run_table();
	test_form_decode();
	test_random_utf8();
	test_merge();
	test_count_limits();
	test_key_limit();
	test_big_value();
	test_similar_names();
	return tap_done();
}

/*
 * fuzz.h: what the libFuzzer harnesses (tests/fuzz/fuzz-*.c) share: a
 * check that stops the run with a message (libFuzzer then keeps the
 * input as a crash), a NUL-terminated copy of the input, and the checks
 * on text the library promises: one printable line, valid UTF-8; and a
 * comparison of JSON trees.
 *
 * A harness is one file defining LLVMFuzzerTestOneInput(); it runs no
 * network, leaves no file behind, frees what it made, and gives the same
 * result for the same input.  tests/fuzz/run.sh builds and runs them.
 */
#ifndef PODIO_FUZZ_H
#define PODIO_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Stops the run when cond is false: the library broke a promise. */
#define FUZZ_CHECK(cond, ...) do {					\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,	\
		    __LINE__, #cond);					\
		fprintf(stderr, __VA_ARGS__);				\
		fputc('\n', stderr);					\
		abort();						\
	}								\
} while (0)

/* A copy of the input with a NUL after it (the caller frees it); stops
 * the run when out of memory, which libFuzzer's limits make rare. */
static char *fuzz_dup(const uint8_t *data, size_t size)
	__attribute__((unused));
static char *
fuzz_dup(const uint8_t *data, size_t size)
{
	char *s;

	if ((s = malloc(size + 1)) == NULL)
		abort();
	if (size > 0)
		memcpy(s, data, size);
	s[size] = '\0';
	return s;
}

/* Whether s is one line of printable ASCII (what messages and reasons
 * promise: nothing that could forge a log line). */
static int fuzz_printable(const char *s) __attribute__((unused));
static int
fuzz_printable(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s >= 0x7f)
			return 0;
	return 1;
}

/* Whether s holds no control character (UTF-8 above 0x7f allowed). */
static int fuzz_no_control(const char *s) __attribute__((unused));
static int
fuzz_no_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || (unsigned char)*s == 0x7f)
			return 0;
	return 1;
}

/* Whether s[0..n) is valid UTF-8: no overlong forms, no surrogates,
 * nothing above U+10FFFF (written apart from the library's decoders,
 * so that it checks them). */
static int fuzz_utf8(const char *s, size_t n) __attribute__((unused));
static int
fuzz_utf8(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, k, need;
	uint32_t cp;

	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		if ((p[i] & 0xe0) == 0xc0) {
			need = 1;
			cp = p[i] & 0x1f;
		} else if ((p[i] & 0xf0) == 0xe0) {
			need = 2;
			cp = p[i] & 0x0f;
		} else if ((p[i] & 0xf8) == 0xf0) {
			need = 3;
			cp = p[i] & 0x07;
		} else
			return 0;
		if (n - i <= need)
			return 0;
		for (k = 1; k <= need; k++) {
			if ((p[i + k] & 0xc0) != 0x80)
				return 0;
			cp = cp << 6 | (p[i + k] & 0x3f);
		}
		if ((need == 1 && cp < 0x80) || (need == 2 && cp < 0x800) ||
		    (need == 3 && cp < 0x10000) || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return 0;
		i += need + 1;
	}
	return 1;
}

/* Whether a and b are the same tree, members in the same order
 * (cJSON_Compare() looks members up by name, which a repeated name
 * defeats).  The names of a and b themselves are not compared. */
static int fuzz_same_json(const cJSON *a, const cJSON *b)
	__attribute__((unused));
static int
fuzz_same_json(const cJSON *a, const cJSON *b)
{
	const cJSON *x, *y;

	if (a == NULL || b == NULL)
		return a == b;
	if ((a->type & 0xff) != (b->type & 0xff))
		return 0;
	if (cJSON_IsNumber(a))
		return a->valuedouble == b->valuedouble;
	if (cJSON_IsString(a))
		return strcmp(a->valuestring, b->valuestring) == 0;
	for (x = a->child, y = b->child; x != NULL && y != NULL;
	    x = x->next, y = y->next)
		if ((x->string == NULL) != (y->string == NULL) ||
		    (x->string != NULL && strcmp(x->string, y->string) != 0) ||
		    !fuzz_same_json(x, y))
			return 0;
	return x == NULL && y == NULL;
}

#endif

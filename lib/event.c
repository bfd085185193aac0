/*
 * event.c: the event JSON (see event.h).
 *
 * The event is written by hand into a capped podio__buf rather than
 * built as a cJSON tree: ids must come out exactly from their 64-bit
 * values (cJSON keeps numbers as double, which rounds above 2^53), and
 * the item must be embedded as the text Podio sent, not re-printed.  So
 * that the embedded text is still sure to be JSON every consumer reads,
 * it is checked by the strict validator below (cJSON's parser accepts
 * "01", "+1", raw control characters in strings and invalid UTF-8).
 */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "event.h"
#include "util.h"
#include "webhook.h"

/* The longest "item_source" accepted. */
#define PODIO__EVENT_SOURCE_MAX 32

/* Appends a string literal. */
#define PODIO__LIT(b, s) podio__buf_append((b), (s), sizeof(s) - 1)

/* ------------------------------------------------------------- strings */

/* See event.h.  Bytes that need no escape are appended in runs. */
int
podio__json_string(struct podio__buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	char esc[6];
	size_t i, run;
	unsigned char c;
	int rc;

	if ((rc = podio__buf_append(b, "\"", 1)) != 0)
		return rc;
	for (i = 0, run = 0; i < n; i++) {
		c = (unsigned char)s[i];
		if (c >= 0x20 && c != '"' && c != '\\')
			continue;
		if ((rc = podio__buf_append(b, s + run, i - run)) != 0)
			return rc;
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			rc = podio__buf_append(b, esc, 2);
		} else {
			memcpy(esc, "\\u00", 4);
			esc[4] = hex[c >> 4];
			esc[5] = hex[c & 0xF];
			rc = podio__buf_append(b, esc, 6);
		}
		if (rc != 0)
			return rc;
		run = i + 1;
	}
	if ((rc = podio__buf_append(b, s + run, n - run)) != 0)
		return rc;
	return podio__buf_append(b, "\"", 1);
}

/* ------------------------------------------------------------ validator */

/* A strict RFC 8259 reader that only says yes or no. */
struct podio__json {
	const unsigned char *s;
	size_t n;
	size_t i;
	int depth;
};

static int podio__json_value(struct podio__json *j);

static void
podio__json_ws(struct podio__json *j)
{
	while (j->i < j->n && (j->s[j->i] == ' ' || j->s[j->i] == '\t' ||
	    j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

/* Whether the next byte is c; consumes it if so. */
static int
podio__json_eat(struct podio__json *j, unsigned char c)
{
	if (j->i < j->n && j->s[j->i] == c) {
		j->i++;
		return 1;
	}
	return 0;
}

static int
podio__json_digits(struct podio__json *j)
{
	size_t start = j->i;

	while (j->i < j->n && j->s[j->i] >= '0' && j->s[j->i] <= '9')
		j->i++;
	return j->i > start;
}

/* -? (0 | [1-9][0-9]*) (. [0-9]+)? ([eE] [+-]? [0-9]+)? */
static int
podio__json_number(struct podio__json *j)
{
	(void)podio__json_eat(j, '-');
	if (!podio__json_eat(j, '0') && (j->i >= j->n || j->s[j->i] < '1' ||
	    j->s[j->i] > '9' || !podio__json_digits(j)))
		return 0;
	if (podio__json_eat(j, '.') && !podio__json_digits(j))
		return 0;
	if (podio__json_eat(j, 'e') || podio__json_eat(j, 'E')) {
		if (!podio__json_eat(j, '+'))
			(void)podio__json_eat(j, '-');
		if (!podio__json_digits(j))
			return 0;
	}
	return 1;
}

/*
 * The length of the valid UTF-8 sequence at s[0..n) (n >= 1, s[0] >=
 * 0x80), or 0 when it is not one: no overlong forms, no surrogates,
 * nothing above U+10FFFF.
 */
static size_t
podio__utf8_len(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xBF;
	size_t need, k;

	if (s[0] >= 0xC2 && s[0] <= 0xDF)
		need = 1;
	else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
		need = 2;
		if (s[0] == 0xE0)
			lo = 0xA0;
		else if (s[0] == 0xED)
			hi = 0x9F;
	} else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
		need = 3;
		if (s[0] == 0xF0)
			lo = 0x90;
		else if (s[0] == 0xF4)
			hi = 0x8F;
	} else
		return 0;
	if (n <= need)
		return 0;
	for (k = 1; k <= need; k++) {
		if (s[k] < lo || s[k] > hi)
			return 0;
		lo = 0x80;
		hi = 0xBF;
	}
	return need + 1;
}

static int
podio__json_str(struct podio__json *j)
{
	unsigned char c;
	size_t k, len;

	if (!podio__json_eat(j, '"'))
		return 0;
	while (j->i < j->n) {
		c = j->s[j->i];
		if (c == '"') {
			j->i++;
			return 1;
		}
		if (c < 0x20)
			return 0;
		if (c == '\\') {
			if (++j->i >= j->n)
				return 0;
			c = j->s[j->i++];
			if (c == 'u') {
				if (j->n - j->i < 4)
					return 0;
				for (k = 0; k < 4; k++, j->i++) {
					c = j->s[j->i];
					if (!((c >= '0' && c <= '9') ||
					    (c >= 'a' && c <= 'f') ||
					    (c >= 'A' && c <= 'F')))
						return 0;
				}
			} else if (strchr("\"\\/bfnrt", c) == NULL || c == '\0')
				return 0;
		} else if (c >= 0x80) {
			if ((len = podio__utf8_len(j->s + j->i,
			    j->n - j->i)) == 0)
				return 0;
			j->i += len;
		} else
			j->i++;
	}
	return 0;
}

/* '[' or '{' already seen: the members up to the closing bracket. */
static int
podio__json_container(struct podio__json *j, unsigned char close)
{
	if (++j->depth > PODIO__JSON_MAX_DEPTH)
		return 0;
	podio__json_ws(j);
	if (podio__json_eat(j, close)) {
		j->depth--;
		return 1;
	}
	for (;;) {
		if (close == '}') {
			if (!podio__json_str(j))
				return 0;
			podio__json_ws(j);
			if (!podio__json_eat(j, ':'))
				return 0;
		}
		if (!podio__json_value(j))
			return 0;
		podio__json_ws(j);
		if (podio__json_eat(j, close)) {
			j->depth--;
			return 1;
		}
		if (!podio__json_eat(j, ','))
			return 0;
		podio__json_ws(j);
	}
}

/* White space, one value, white space. */
static int
podio__json_value(struct podio__json *j)
{
	static const char *const lit[] = { "true", "false", "null" };
	size_t k, len;
	unsigned char c;
	int ok;

	podio__json_ws(j);
	if (j->i >= j->n)
		return 0;
	c = j->s[j->i];
	if (c == '{' || c == '[') {
		j->i++;
		ok = podio__json_container(j, c == '{' ? '}' : ']');
	} else if (c == '"')
		ok = podio__json_str(j);
	else if (c == '-' || (c >= '0' && c <= '9'))
		ok = podio__json_number(j);
	else {
		ok = 0;
		for (k = 0; k < 3; k++) {
			len = strlen(lit[k]);
			if (j->n - j->i >= len &&
			    memcmp(j->s + j->i, lit[k], len) == 0) {
				j->i += len;
				ok = 1;
				break;
			}
		}
	}
	if (ok)
		podio__json_ws(j);
	return ok;
}

/* See event.h.  The recursion is bounded by PODIO__JSON_MAX_DEPTH. */
int
podio__json_valid(const char *text, size_t len)
{
	struct podio__json j;

	j.s = (const unsigned char *)text;
	j.n = len;
	j.i = 0;
	j.depth = 0;
	return text != NULL && podio__json_value(&j) && j.i == j.n;
}

/*
 * Appends a valid JSON value (len bytes) without the white space around
 * it and with CR and LF between tokens turned into spaces; inside strings
 * they cannot occur (the validator refuses raw control characters), so
 * everything else is copied byte for byte.  Returns as
 * podio__buf_append().
 */
static int
podio__json_append_oneline(struct podio__buf *b, const char *text,
    size_t len)
{
	size_t start = 0, end = len, i, run;
	int in_str = 0, rc;
	char c;

	while (start < end && strchr(" \t\r\n", text[start]) != NULL)
		start++;
	while (end > start && strchr(" \t\r\n", text[end - 1]) != NULL)
		end--;
	if (memchr(text + start, '\n', end - start) == NULL &&
	    memchr(text + start, '\r', end - start) == NULL)
		return podio__buf_append(b, text + start, end - start);
	for (i = start, run = start; i < end; i++) {
		c = text[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"')
				in_str = 0;
		} else if (c == '"')
			in_str = 1;
		else if (c == '\n' || c == '\r') {
			if ((rc = podio__buf_append(b, text + run,
			    i - run)) != 0 ||
			    (rc = podio__buf_append(b, " ", 1)) != 0)
				return rc;
			run = i + 1;
		}
	}
	return podio__buf_append(b, text + run, end - run);
}

/* ---------------------------------------------------------------- event */

/* Whether s names where an item came from: [a-z_]{1,32}. */
static int
podio__event_source_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz_");

	return n >= 1 && n <= PODIO__EVENT_SOURCE_MAX && s[n] == '\0';
}

/* See podio.h: the event without "by_self". */
enum podio_err
podio_event_json(const struct podio_delivery *delivery, const char *item,
    size_t item_len, const char *item_error, const char *item_source,
    size_t cap, char **out, size_t *out_len)
{
	return podio__event_json(delivery, item, item_len, item_error,
	    item_source, -1, cap, out, out_len);
}

/* See event.h.  Every append goes through rc; the first failure ends the
 * build and picks the error. */
enum podio_err
podio__event_json(const struct podio_delivery *delivery, const char *item,
    size_t item_len, const char *item_error, const char *item_source,
    int by_self, size_t cap, char **out, size_t *out_len)
{
	struct podio__buf b = { NULL, 0, 0, cap };
	enum podio_err err = PODIO_ERR_INVALID;
	const char *name, *value;
	uint64_t id;
	size_t i, n;
	int rc = 0, has;

	*out = NULL;
	if (out_len != NULL)
		*out_len = 0;
	if (delivery == NULL || delivery->type == NULL ||
	    (item != NULL && item_error != NULL) ||
	    (item_source != NULL && !podio__event_source_ok(item_source)))
		goto fail;
	if (item != NULL && !podio__json_valid(item, item_len)) {
		err = PODIO_ERR_BAD_JSON;
		goto fail;
	}

	if ((rc = PODIO__LIT(&b, "{\"type\": ")) != 0 ||
	    (rc = podio__json_string(&b, delivery->type,
	    strlen(delivery->type))) != 0)
		goto fail;
	for (i = 0; (has = podio__delivery_id(delivery, i, &name, &id)) >= 0;
	    i++) {
		if (has && (rc = podio__buf_appendf(&b, ", \"%s\": %" PRIu64,
		    name, id)) != 0)
			goto fail;
	}
	if (delivery->external_id != NULL &&
	    ((rc = PODIO__LIT(&b, ", \"external_id\": ")) != 0 ||
	    (rc = podio__json_string(&b, delivery->external_id,
	    strlen(delivery->external_id))) != 0))
		goto fail;

	if (delivery->source != NULL &&
	    (!podio__event_source_ok(delivery->source) ||
	    (rc = PODIO__LIT(&b, ", \"source\": ")) != 0 ||
	    (rc = podio__json_string(&b, delivery->source,
	    strlen(delivery->source))) != 0))
		goto fail;
	if ((rc = PODIO__LIT(&b, ", \"params\": {")) != 0)
		goto fail;
	n = 0;
	for (i = 0; delivery->params != NULL &&
	    podio_params_at(delivery->params, i, &name, &value); i++) {
		if (strcmp(name, "secret") == 0)
			continue;
		if ((n++ > 0 && (rc = PODIO__LIT(&b, ", ")) != 0) ||
		    (rc = podio__json_string(&b, name, strlen(name))) != 0 ||
		    (rc = PODIO__LIT(&b, ": ")) != 0 ||
		    (rc = podio__json_string(&b, value, strlen(value))) != 0)
			goto fail;
	}
	if ((rc = PODIO__LIT(&b, "}")) != 0)
		goto fail;

	if (item != NULL) {
		if ((rc = PODIO__LIT(&b, ", \"item\": ")) != 0 ||
		    (rc = podio__json_append_oneline(&b, item, item_len)) != 0)
			goto fail;
		if (item_source != NULL &&
		    ((rc = PODIO__LIT(&b, ", \"item_source\": ")) != 0 ||
		    (rc = podio__json_string(&b, item_source,
		    strlen(item_source))) != 0))
			goto fail;
	} else if (item_error != NULL) {
		if ((rc = PODIO__LIT(&b, ", \"item\": null, "
		    "\"item_error\": ")) != 0 ||
		    (rc = podio__json_string(&b, item_error,
		    strlen(item_error))) != 0)
			goto fail;
	}
	if ((item != NULL || item_error != NULL) && by_self >= 0 &&
	    (rc = by_self ? PODIO__LIT(&b, ", \"by_self\": true") :
	    PODIO__LIT(&b, ", \"by_self\": false")) != 0)
		goto fail;
	if ((rc = PODIO__LIT(&b, "}")) != 0)
		goto fail;

	n = b.len;
	if ((*out = podio__buf_steal(&b)) == NULL) {
		rc = -1;
		goto fail;
	}
	if (out_len != NULL)
		*out_len = n;
	return PODIO_OK;
fail:
	if (rc == -1)
		err = PODIO_ERR_NOMEM;
	else if (rc == -2)
		err = PODIO_ERR_TOO_LARGE;
	podio__buf_free(&b);
	return err;
}

/* ------------------------------------------------------ stored events */

/* Appends the percent-encoding of s to buf (capacity cap, used *len);
 * returns -1 when it does not fit. */
static int
podio__event_encode(char *buf, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			if (*len + 1 >= cap)
				return -1;
			buf[(*len)++] = (char)c;
		} else {
			if (*len + 3 >= cap)
				return -1;
			buf[(*len)++] = '%';
			buf[(*len)++] = hex[c >> 4];
			buf[(*len)++] = hex[c & 15];
		}
	}
	buf[*len] = '\0';
	return 0;
}

/* See event.h.  The parameters are encoded again as a form body and
 * go through the very parser and checks of a request. */
enum podio_err
podio__event_delivery(const char *json, size_t len,
    struct podio_delivery **out, char *why, size_t whylen)
{
	cJSON *root = NULL, *params, *p;
	struct podio_params *set = NULL;
	const char *end = NULL, *reason = NULL;
	char *body = NULL;
	size_t cap = 0, used = 0;
	enum podio_err rc = PODIO_ERR_BAD_JSON;

	*out = NULL;
	if (json == NULL) {
		snprintf(why, whylen, "the stored event is missing");
		goto fail;
	}
	/* cJSON sets its global error pointer here; it is never read. */
	root = cJSON_ParseWithOpts(json, &end, 1);
	params = root != NULL ? cJSON_GetObjectItemCaseSensitive(root,
	    "params") : NULL;
	if (!cJSON_IsObject(params)) {
		snprintf(why, whylen, "the stored event has no parameters");
		goto fail;
	}
	/* Each byte becomes at most 3, plus '=' and '&' per pair. */
	cap = 3 * len + 16;
	rc = PODIO_ERR_NOMEM;
	if ((body = malloc(cap)) == NULL)
		goto fail;
	body[0] = '\0';
	rc = PODIO_ERR_BAD_JSON;
	cJSON_ArrayForEach(p, params) {
		if (!cJSON_IsString(p) || p->string == NULL) {
			snprintf(why, whylen, "a stored parameter is not a "
			    "string");
			goto fail;
		}
		/* The separators go in bare; names and values encoded. */
		if (used > 0 && used + 1 < cap)
			body[used++] = '&';
		if (podio__event_encode(body, cap, &used, p->string) != 0 ||
		    used + 1 >= cap)
			break;
		body[used++] = '=';
		body[used] = '\0';
		if (podio__event_encode(body, cap, &used, p->valuestring) != 0)
			break;
	}
	if (p != NULL) {
		/* Cannot happen with the cap above; said all the same. */
		snprintf(why, whylen, "the stored parameters do not fit");
		goto fail;
	}
	rc = PODIO_ERR_NOMEM;
	if ((set = podio_params_new(0)) == NULL)
		goto fail;
	rc = podio_params_parse(set, body, used, &reason);
	if (rc != PODIO_OK) {
		snprintf(why, whylen, "the stored parameters cannot be "
		    "decoded: %s", reason != NULL ? reason : podio_strerror(rc));
		goto fail;
	}
	rc = podio_delivery_new(set, out, why, whylen);
	set = NULL;
	/* What made an event that no delivery brought (see
	 * podio_event_json()); any other value is not kept. */
	p = cJSON_GetObjectItemCaseSensitive(root, "source");
	if (rc == PODIO_OK && cJSON_IsString(p) &&
	    strcmp(p->valuestring, PODIO_EVENT_SOURCE_BACKFILL) == 0)
		(*out)->source = PODIO_EVENT_SOURCE_BACKFILL;
fail:
	podio_params_free(set);
	if (body != NULL) {
		podio__wipe(body, cap);
		free(body);
	}
	cJSON_Delete(root);
	return rc;
}

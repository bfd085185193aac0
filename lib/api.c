/*
 * api.c: reading the answers of the Podio API (see api.h).
 *
 * cJSON parses every answer whole before anything is taken from it.
 * The filter's items are the exception to "take it from the parse": each
 * is handed on as the very bytes Podio sent (numbers are never printed
 * again), found by a small scanner over the text that cJSON has already
 * accepted.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "api.h"

/* Writes a reason into why (either may be NULL/0) and returns err. */
static enum podio_err api_fail(char *why, size_t whylen, enum podio_err err,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum podio_err
api_fail(char *why, size_t whylen, enum podio_err err, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* See api.h. */
enum podio_err
podio__api_parse(const char *text, size_t len, cJSON **out, char *why,
    size_t whylen)
{
	const char *end = NULL;

	*out = NULL;
	if (text == NULL || strlen(text) != len)
		return api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the answer holds a NUL byte");
	/* cJSON sets its global error pointer here; it is never read. */
	if ((*out = cJSON_ParseWithOpts(text, &end, 1)) == NULL)
		return api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "malformed JSON at byte %zu",
		    end != NULL && end >= text ? (size_t)(end - text) : 0);
	return PODIO_OK;
}

/* See api.h. */
int
podio__api_u64(const cJSON *v, uint64_t *out)
{
	double d;

	if (cJSON_IsString(v) && v->valuestring != NULL)
		return podio_parse_u64(v->valuestring, out);
	if (!cJSON_IsNumber(v))
		return -1;
	d = v->valuedouble;
	if (!(d >= 0.0 && d <= 9007199254740992.0) || d != (double)(uint64_t)d)
		return -1;
	*out = (uint64_t)d;
	return 0;
}

/* A copy of a string member, "" when absent or not a string; NULL on
 * out of memory. */
static char *
api_str(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (cJSON_IsString(v) && v->valuestring != NULL)
		return strdup(v->valuestring);
	return strdup("");
}

/* -------------------------------------------------------------- hooks */

/* See api.h. */
enum podio_err
podio__api_hook_id(const char *text, size_t len, uint64_t *hook_id,
    char *why, size_t whylen)
{
	cJSON *ans = NULL;
	enum podio_err rc;

	*hook_id = 0;
	if ((rc = podio__api_parse(text, len, &ans, why, whylen)) != PODIO_OK)
		goto fail;
	if (!cJSON_IsObject(ans)) {
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the answer is not an object");
		goto fail;
	}
	if (podio__api_u64(cJSON_GetObjectItemCaseSensitive(ans, "hook_id"),
	    hook_id) != 0) {
		*hook_id = 0;
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the answer has no hook_id");
		goto fail;
	}
	rc = PODIO_OK;
fail:
	cJSON_Delete(ans);
	return rc;
}

/* See api.h. */
enum podio_err
podio__api_hooks(const char *text, size_t len, struct podio_hook **hooks,
    size_t *n, char *why, size_t whylen)
{
	struct podio_hook *list = NULL;
	cJSON *ans = NULL, *el;
	size_t count, i = 0;
	enum podio_err rc;

	*hooks = NULL;
	*n = 0;
	if ((rc = podio__api_parse(text, len, &ans, why, whylen)) != PODIO_OK)
		goto fail;
	if (!cJSON_IsArray(ans)) {
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the hook list is not an array");
		goto fail;
	}
	count = (size_t)cJSON_GetArraySize(ans);
	if (count > 0 && (list = calloc(count, sizeof(*list))) == NULL) {
		rc = api_fail(why, whylen, PODIO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	cJSON_ArrayForEach(el, ans) {
		if (i >= count)
			break;
		if (!cJSON_IsObject(el) || podio__api_u64(
		    cJSON_GetObjectItemCaseSensitive(el, "hook_id"),
		    &list[i].hook_id) != 0) {
			rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
			    "a hook in the list has no hook_id");
			goto fail;
		}
		list[i].status = api_str(el, "status");
		list[i].type = api_str(el, "type");
		list[i].url = api_str(el, "url");
		i++;
		if (list[i - 1].status == NULL || list[i - 1].type == NULL ||
		    list[i - 1].url == NULL) {
			rc = api_fail(why, whylen, PODIO_ERR_NOMEM,
			    "out of memory");
			goto fail;
		}
	}
	*hooks = list;
	*n = i;
	list = NULL;
	rc = PODIO_OK;
fail:
	podio_hooks_free(list, i);
	cJSON_Delete(ans);
	return rc;
}

/* -------------------------------------------------------------- items */

/* See api.h. */
enum podio_err
podio__api_item(const char *text, size_t len, cJSON **item, char *why,
    size_t whylen)
{
	cJSON *ans = NULL;
	enum podio_err rc;

	*item = NULL;
	if ((rc = podio__api_parse(text, len, &ans, why, whylen)) != PODIO_OK)
		return rc;
	if (!cJSON_IsObject(ans)) {
		cJSON_Delete(ans);
		return api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the item is not an object");
	}
	*item = ans;
	return PODIO_OK;
}

/* See api.h. */
int
podio__api_revision(const cJSON *item, uint64_t *revision_id,
    const char **by_type, uint64_t *by_id)
{
	const cJSON *rev, *by, *type;

	rev = cJSON_GetObjectItemCaseSensitive(item, "current_revision");
	by = cJSON_GetObjectItemCaseSensitive(rev, "created_by");
	type = cJSON_GetObjectItemCaseSensitive(by, "type");
	if (!cJSON_IsObject(rev) || !cJSON_IsObject(by) ||
	    !cJSON_IsString(type) || type->valuestring == NULL ||
	    podio__api_u64(cJSON_GetObjectItemCaseSensitive(rev,
	    "item_revision_id"), revision_id) != 0 ||
	    podio__api_u64(cJSON_GetObjectItemCaseSensitive(by, "id"),
	    by_id) != 0)
		return -1;
	*by_type = type->valuestring;
	return 0;
}

/* White space as cJSON reads it: every byte from 1 to 32, not only
 * JSON's four.  Counted the same here, or an item that follows such a
 * byte is cut where cJSON does not end it. */
#define FILTER_WS(c) ((unsigned char)(c) != 0 && (unsigned char)(c) <= 32)

/*
 * The end of the JSON value starting at text[i] (white space already
 * skipped), for an answer cJSON has already parsed whole: strings are
 * skipped with their escapes, arrays and objects by counting brackets
 * outside strings (no recursion, so any depth is fine), anything else
 * runs up to the next delimiter.  Returns the index just after the
 * value, or len when the text ends first.
 */
static size_t
filter_skip_value(const char *text, size_t len, size_t i)
{
	size_t depth = 0;
	int in_str = 0;

	if (i >= len)
		return len;
	if (text[i] != '{' && text[i] != '[' && text[i] != '"') {
		while (i < len && !FILTER_WS(text[i]) &&
		    strchr(",]}", text[i]) == NULL)
			i++;
		return i;
	}
	for (; i < len; i++) {
		if (in_str) {
			if (text[i] == '\\')
				i++;
			else if (text[i] == '"') {
				in_str = 0;
				if (depth == 0)
					return i + 1;
			}
		} else if (text[i] == '"')
			in_str = 1;
		else if (text[i] == '{' || text[i] == '[')
			depth++;
		else if (text[i] == '}' || text[i] == ']') {
			if (depth == 0 || --depth == 0)
				return i + 1;
		}
	}
	return len;
}

/* The index of the first byte at or after i that is not white space
 * as cJSON reads it (len when none). */
static size_t
filter_skip_ws(const char *text, size_t len, size_t i)
{
	while (i < len && FILTER_WS(text[i]))
		i++;
	return i;
}

/*
 * Finds in the answer text (len bytes, already parsed whole by cJSON,
 * the top value an object) the elements of the first member named
 * "items": start[k] and end[k] receive the bounds of element k, for at
 * most max elements.  Returns how many elements the array has, or -1
 * when there is no such member holding an array, or more than max
 * elements.  Member names are compared as written, so a name with an
 * escape in it (which cJSON decodes: "\u0069tems" is "items" to it)
 * refuses the answer rather than let the two disagree on which member
 * holds the items; Podio writes none.
 */
static long
filter_item_slices(const char *text, size_t len, size_t *start,
    size_t *end, size_t max)
{
	size_t i, k, key;
	long n = 0;

	i = filter_skip_ws(text, len, 0);
	if (i >= len || text[i] != '{')
		return -1;
	i = filter_skip_ws(text, len, i + 1);
	while (i < len && text[i] == '"') {
		key = i;
		i = filter_skip_value(text, len, i);
		k = i;
		if (memchr(text + key, '\\', k - key) != NULL)
			return -1;
		i = filter_skip_ws(text, len, i);
		if (i >= len || text[i] != ':')
			return -1;
		i = filter_skip_ws(text, len, i + 1);
		if (k - key == sizeof("\"items\"") - 1 &&
		    memcmp(text + key, "\"items\"", k - key) == 0) {
			if (i >= len || text[i] != '[')
				return -1;
			i = filter_skip_ws(text, len, i + 1);
			if (i < len && text[i] == ']')
				return 0;
			while (i < len) {
				if ((size_t)n >= max)
					return -1;
				start[n] = i;
				i = filter_skip_value(text, len, i);
				end[n++] = i;
				i = filter_skip_ws(text, len, i);
				if (i < len && text[i] == ']')
					return n;
				if (i >= len || text[i] != ',')
					return -1;
				i = filter_skip_ws(text, len, i + 1);
			}
			return -1;
		}
		i = filter_skip_ws(text, len, filter_skip_value(text, len,
		    i));
		if (i < len && text[i] == ',')
			i = filter_skip_ws(text, len, i + 1);
	}
	return -1;
}

/* See api.h.  cJSON's parse checks the whole answer and reads each
 * item's id; filter_item_slices() finds each item's bytes. */
enum podio_err
podio__api_filter(const char *text, size_t len, const uint64_t *ids,
    size_t n, char **texts, char *why, size_t whylen)
{
	cJSON *ans = NULL, *items, *el;
	size_t *start = NULL, *end = NULL, i, k;
	uint64_t id;
	long count;
	enum podio_err rc;

	if (ids == NULL || texts == NULL || n < 1 ||
	    n > PODIO_ITEM_FILTER_MAX)
		return api_fail(why, whylen, PODIO_ERR_INVALID,
		    "1 to %d item ids are filtered at once",
		    PODIO_ITEM_FILTER_MAX);
	for (i = 0; i < n; i++)
		texts[i] = NULL;
	if ((start = calloc(n, sizeof(*start))) == NULL ||
	    (end = calloc(n, sizeof(*end))) == NULL) {
		rc = api_fail(why, whylen, PODIO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	if ((rc = podio__api_parse(text, len, &ans, why, whylen)) != PODIO_OK)
		goto fail;
	items = cJSON_GetObjectItemCaseSensitive(ans, "items");
	if (!cJSON_IsObject(ans) || !cJSON_IsArray(items)) {
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the answer has no \"items\" array");
		goto fail;
	}
	/* An answer never holds more items than were asked for; one that
	 * does is not trusted. */
	count = filter_item_slices(text, len, start, end, n);
	if (count < 0 || count != (long)cJSON_GetArraySize(items)) {
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
		    "the \"items\" array cannot be read or holds more items "
		    "than asked for");
		goto fail;
	}
	k = 0;
	cJSON_ArrayForEach(el, items) {
		if (!cJSON_IsObject(el) || podio__api_u64(
		    cJSON_GetObjectItemCaseSensitive(el, "item_id"),
		    &id) != 0) {
			rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
			    "an item in the answer has no item_id");
			goto fail;
		}
		for (i = 0; i < n; i++) {
			if (ids[i] != id || texts[i] != NULL)
				continue;
			if ((texts[i] = strndup(text + start[k],
			    end[k] - start[k])) == NULL) {
				rc = api_fail(why, whylen, PODIO_ERR_NOMEM,
				    "out of memory");
				goto fail;
			}
		}
		k++;
	}
	rc = PODIO_OK;
fail:
	if (rc != PODIO_OK)
		for (i = 0; i < n; i++) {
			free(texts[i]);
			texts[i] = NULL;
		}
	cJSON_Delete(ans);
	free(start);
	free(end);
	return rc;
}

/* See api.h. */
int64_t
podio__api_date_ms(const char *s)
{
	struct tm tm;
	int y, mo, d, h, mi, sec, used = 0;
	time_t t;

	if (s == NULL || sscanf(s, "%4d-%2d-%2d %2d:%2d:%2d%n", &y, &mo, &d,
	    &h, &mi, &sec, &used) != 6 || used != 19 || s[used] != '\0' ||
	    y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 ||
	    mi > 59 || sec > 60 || h < 0 || mi < 0 || sec < 0)
		return -1;
	memset(&tm, 0, sizeof(tm));
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	if ((t = timegm(&tm)) == (time_t)-1)
		return -1;
	return (int64_t)t * 1000;
}

/* The edit time of item el: "last_edit_on", else the current revision's
 * "created_on"; 0 when neither is a date. */
static int64_t
api_edited_ms(const cJSON *el)
{
	const cJSON *v, *rev;
	int64_t ms;

	v = cJSON_GetObjectItemCaseSensitive(el, "last_edit_on");
	if (cJSON_IsString(v) && (ms = podio__api_date_ms(v->valuestring)) >= 0)
		return ms;
	rev = cJSON_GetObjectItemCaseSensitive(el, "current_revision");
	v = cJSON_GetObjectItemCaseSensitive(rev, "created_on");
	if (cJSON_IsString(v) && (ms = podio__api_date_ms(v->valuestring)) >= 0)
		return ms;
	return 0;
}

/* See api.h. */
enum podio_err
podio__api_changes(const char *text, size_t len, size_t limit,
    struct podio_item_change **out, size_t *n, long *total, char *why,
    size_t whylen)
{
	cJSON *ans = NULL, *items, *el;
	const cJSON *rev, *v;
	struct podio_item_change *ch = NULL;
	size_t k = 0;
	enum podio_err rc;
	int count;

	*out = NULL;
	*n = 0;
	*total = -1;
	if ((rc = podio__api_parse(text, len, &ans, why, whylen)) != PODIO_OK)
		goto fail;
	items = cJSON_GetObjectItemCaseSensitive(ans, "items");
	if (!cJSON_IsObject(ans) || !cJSON_IsArray(items) ||
	    (count = cJSON_GetArraySize(items)) < 0 ||
	    (size_t)count > limit) {
		rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON, "the answer has "
		    "no \"items\" array, or more items than asked for");
		goto fail;
	}
	v = cJSON_GetObjectItemCaseSensitive(ans, "filtered");
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
	    v->valuedouble < 2e9)
		*total = (long)v->valuedouble;
	if (count > 0 && (ch = calloc((size_t)count, sizeof(*ch))) == NULL) {
		rc = api_fail(why, whylen, PODIO_ERR_NOMEM, "out of memory");
		goto fail;
	}
	cJSON_ArrayForEach(el, items) {
		if (!cJSON_IsObject(el) || podio__api_u64(
		    cJSON_GetObjectItemCaseSensitive(el, "item_id"),
		    &ch[k].item_id) != 0 || ch[k].item_id == 0) {
			rc = api_fail(why, whylen, PODIO_ERR_BAD_JSON,
			    "an item in the answer has no item_id");
			goto fail;
		}
		rev = cJSON_GetObjectItemCaseSensitive(el, "current_revision");
		v = cJSON_GetObjectItemCaseSensitive(rev, "revision");
		ch[k].revision = cJSON_IsNumber(v) && v->valuedouble >= 0 &&
		    v->valuedouble < 9007199254740992.0 ?
		    (int64_t)v->valuedouble : -1;
		ch[k].edited_ms = api_edited_ms(el);
		k++;
	}
	*out = ch;
	*n = k;
	ch = NULL;
	rc = PODIO_OK;
fail:
	free(ch);
	cJSON_Delete(ans);
	return rc;
}

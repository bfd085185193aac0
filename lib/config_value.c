/*
 * config_value.c: the typed values of configuration keys (see config.h
 * and podio.h): durations, sizes, unsigned 64-bit ids, integers,
 * booleans and id lists, parsed strictly, and the canonical text the
 * configuration keeps of each.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "podio.h"
#include "config.h"
#include "util.h"

/*
 * Reads the leading decimal digits of text into *n (no sign, at least
 * one digit) and sets *end after them.  Returns 0, or -1 when there is no
 * digit or the number exceeds INT64_MAX.
 */
static int
podio__cfg_digits(const char *text, int64_t *n, const char **end)
{
	int64_t v = 0;
	const char *p;

	for (p = text; *p >= '0' && *p <= '9'; p++) {
		if (v > (INT64_MAX - (*p - '0')) / 10)
			return -1;
		v = v * 10 + (*p - '0');
	}
	if (p == text)
		return -1;
	*n = v;
	*end = p;
	return 0;
}

/* See podio.h.  Suffixes are lower case: ms, s, m, h, d. */
int
podio_parse_duration_ms(const char *text, int64_t *ms)
{
	static const struct {
		const char *suffix;
		int64_t mult;
	} units[] = {
		{ "", 1000 }, { "ms", 1 }, { "s", 1000 }, { "m", 60000 },
		{ "h", 3600000 }, { "d", 86400000 }
	};
	const char *end;
	int64_t n;
	size_t i;

	if (text == NULL || podio__cfg_digits(text, &n, &end) != 0)
		return -1;
	for (i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
		if (strcmp(end, units[i].suffix) != 0)
			continue;
		if (n > INT64_MAX / units[i].mult)
			return -1;
		*ms = n * units[i].mult;
		return 0;
	}
	return -1;
}

/* See podio.h.  K = 1024, M = 1048576, either case. */
int
podio_parse_size(const char *text, int64_t *bytes)
{
	const char *end;
	int64_t n, mult;

	if (text == NULL || podio__cfg_digits(text, &n, &end) != 0)
		return -1;
	if (*end == '\0')
		mult = 1;
	else if ((*end == 'K' || *end == 'k') && end[1] == '\0')
		mult = 1024;
	else if ((*end == 'M' || *end == 'm') && end[1] == '\0')
		mult = 1024 * 1024;
	else
		return -1;
	if (n > INT64_MAX / mult)
		return -1;
	*bytes = n * mult;
	return 0;
}

/* See podio.h. */
int
podio_parse_u64(const char *text, uint64_t *out)
{
	uint64_t v = 0;
	const char *p;
	unsigned d;

	if (text == NULL || text[0] == '\0')
		return -1;
	if (text[0] == '0' && text[1] != '\0')
		return -1;
	for (p = text; *p != '\0'; p++) {
		if (*p < '0' || *p > '9')
			return -1;
		d = (unsigned)(*p - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

/* See config.h. */
int
podio__cfg_parse_int(const char *text, int64_t *out)
{
	const char *end;
	int64_t n;
	int neg = text[0] == '-';

	/* INT64_MIN itself is not accepted; no key needs it. */
	if (podio__cfg_digits(text + neg, &n, &end) != 0 || *end != '\0')
		return -1;
	*out = neg ? -n : n;
	return 0;
}

/* See config.h. */
int
podio__cfg_parse_bool(const char *text, int64_t *out)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (strcasecmp(text, yes[i]) == 0) {
			*out = 1;
			return 0;
		}
		if (strcasecmp(text, no[i]) == 0) {
			*out = 0;
			return 0;
		}
	}
	return -1;
}

/* See config.h. */
enum podio_err
podio__cfg_parse_ids(const char *text, uint64_t **ids, size_t *n,
    char **canon)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	uint64_t *v = NULL;
	char item[24];
	const char *p = text, *q;
	size_t count = 0, len;
	enum podio_err rc = PODIO_ERR_CONFIG;

	*ids = NULL;
	*n = 0;
	*canon = NULL;
	if ((v = calloc(PODIO__CFG_IDS_MAX, sizeof(*v))) == NULL) {
		rc = PODIO_ERR_NOMEM;
		goto fail;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		for (q = p; *q != '\0' && *q != ',' && *q != ' ' &&
		    *q != '\t'; q++)
			;
		len = (size_t)(q - p);
		if (len == 0 || len >= sizeof(item) ||
		    count == PODIO__CFG_IDS_MAX)
			goto fail;
		memcpy(item, p, len);
		item[len] = '\0';
		if (podio_parse_u64(item, &v[count]) != 0)
			goto fail;
		if (podio__buf_appendf(&b, "%s%" PRIu64, count ? "," : "",
		    v[count]) != 0) {
			rc = PODIO_ERR_NOMEM;
			goto fail;
		}
		count++;
		while (*q == ' ' || *q == '\t')
			q++;
		if (*q == '\0')
			break;
		if (*q != ',')
			goto fail;
		p = q + 1;
	}
	if ((*canon = podio__buf_steal(&b)) == NULL) {
		rc = PODIO_ERR_NOMEM;
		goto fail;
	}
	*ids = v;
	*n = count;
	return PODIO_OK;
fail:
	podio__buf_free(&b);
	free(v);
	return rc;
}

/* See config.h. */
void
podio__cfg_fmt_duration(int64_t ms, char *out, size_t outlen)
{
	if (ms == 0)
		snprintf(out, outlen, "0s");
	else if (ms % 86400000 == 0)
		snprintf(out, outlen, "%" PRId64 "d", ms / 86400000);
	else if (ms % 3600000 == 0)
		snprintf(out, outlen, "%" PRId64 "h", ms / 3600000);
	else if (ms % 60000 == 0)
		snprintf(out, outlen, "%" PRId64 "m", ms / 60000);
	else if (ms % 1000 == 0)
		snprintf(out, outlen, "%" PRId64 "s", ms / 1000);
	else
		snprintf(out, outlen, "%" PRId64 "ms", ms);
}

/* See config.h. */
void
podio__cfg_fmt_size(int64_t bytes, char *out, size_t outlen)
{
	if (bytes != 0 && bytes % (1024 * 1024) == 0)
		snprintf(out, outlen, "%" PRId64 "M", bytes / (1024 * 1024));
	else if (bytes != 0 && bytes % 1024 == 0)
		snprintf(out, outlen, "%" PRId64 "K", bytes / 1024);
	else
		snprintf(out, outlen, "%" PRId64, bytes);
}

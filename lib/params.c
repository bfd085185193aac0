/*
 * params.c: urlencoded parameters (see params.h).
 *
 * Decoding follows the WHATWG URL standard's application/x-www-form-
 * urlencoded parser byte for byte: '+' to space, percent-decoding that
 * keeps a bad '%' sequence literal, then the Encoding standard's UTF-8
 * decoder, which replaces each maximal subpart of an invalid sequence by
 * one U+FFFD.  Every stored name and value is therefore valid UTF-8; NUL
 * bytes are then refused, so they are also plain C strings.
 *
 * The set keeps its distinct names in position order plus an index sorted
 * by name.  Each podio_params_parse() decodes its pieces after the
 * existing ones and merges them with one sort (by name, then position):
 * O(n log n) however the names collide, where a hash table keyed by
 * names a client chooses could be driven to O(n^2).
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "params.h"
#include "util.h"

struct podio__param {
	char *name;
	char *value;
};

struct podio_params {
	struct podio__param *v;  /* distinct names, in position order */
	size_t n;
	size_t alloc;
	size_t *sorted;          /* indexes into v, sorted by name */
	size_t pieces;           /* pieces accepted so far, repeats included */
	size_t max_params;       /* 0 = no limit */
};

/* ------------------------------------------------------------- decoding */

static const unsigned char podio__fffd[3] = { 0xEF, 0xBF, 0xBD };

/* The state of the WHATWG UTF-8 decoder plus where its output goes. */
struct podio__u8 {
	unsigned char pend[4];  /* the bytes of the sequence so far */
	unsigned npend;
	unsigned need;          /* continuation bytes the sequence needs */
	unsigned char lo, hi;   /* the range the next continuation must be in */
	char *out;              /* NULL: only count */
	size_t len;
	int nul;
};

static void
podio__u8_emit(struct podio__u8 *d, const unsigned char *p, size_t n)
{
	if (d->out != NULL)
		memcpy(d->out + d->len, p, n);
	d->len += n;
}

/*
 * Feeds one byte to the decoder (the Encoding standard, "UTF-8 decoder").
 * A byte that breaks a sequence ends it with one U+FFFD and is then
 * decoded again on its own, which is what makes the replacement go by
 * maximal subparts: "\xED\xA0\x80" (a surrogate) gives three U+FFFD,
 * "\xF0\x9F\x98" then "a" gives one U+FFFD and "a".
 */
static void
podio__u8_feed(struct podio__u8 *d, unsigned char b)
{
	for (;;) {
		if (d->need == 0) {
			if (b < 0x80) {
				if (b == 0)
					d->nul = 1;
				podio__u8_emit(d, &b, 1);
				return;
			}
			if (b >= 0xC2 && b <= 0xDF)
				d->need = 1;
			else if (b >= 0xE0 && b <= 0xEF) {
				d->need = 2;
				if (b == 0xE0)
					d->lo = 0xA0;     /* no overlong forms */
				else if (b == 0xED)
					d->hi = 0x9F;     /* no surrogates */
			} else if (b >= 0xF0 && b <= 0xF4) {
				d->need = 3;
				if (b == 0xF0)
					d->lo = 0x90;     /* no overlong forms */
				else if (b == 0xF4)
					d->hi = 0x8F;     /* nothing past U+10FFFF */
			} else {
				/* 0x80-0xC1 (stray continuation, overlong
				 * two-byte lead) and 0xF5-0xFF */
				podio__u8_emit(d, podio__fffd, 3);
				return;
			}
			d->pend[0] = b;
			d->npend = 1;
			return;
		}
		if (b < d->lo || b > d->hi) {
			d->need = 0;
			d->npend = 0;
			d->lo = 0x80;
			d->hi = 0xBF;
			podio__u8_emit(d, podio__fffd, 3);
			continue;  /* decode b again, from the start state */
		}
		d->lo = 0x80;
		d->hi = 0xBF;
		d->pend[d->npend++] = b;
		if (d->npend == d->need + 1) {
			podio__u8_emit(d, d->pend, d->npend);
			d->need = 0;
			d->npend = 0;
		}
		return;
	}
}

/* The value of a hex digit, or -1. */
static int
podio__hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* See params.h.  One pass: '+' and %XX feed the UTF-8 decoder. */
size_t
podio__form_decode(const char *in, size_t n, char *out, int *has_nul)
{
	const unsigned char *s = (const unsigned char *)in;
	struct podio__u8 d;
	size_t i;
	int hi, lo;
	unsigned char c;

	memset(&d, 0, sizeof(d));
	d.lo = 0x80;
	d.hi = 0xBF;
	d.out = out;
	for (i = 0; i < n; i++) {
		c = s[i];
		if (c == '+')
			c = ' ';
		else if (c == '%' && n - i > 2 &&
		    (hi = podio__hexval(s[i + 1])) >= 0 &&
		    (lo = podio__hexval(s[i + 2])) >= 0) {
			c = (unsigned char)(hi << 4 | lo);
			i += 2;
		}
		podio__u8_feed(&d, c);
	}
	if (d.need != 0)
		podio__u8_emit(&d, podio__fffd, 3);  /* truncated at the end */
	if (has_nul != NULL)
		*has_nul = d.nul;
	return d.len;
}

/*
 * Decodes n bytes into a new NUL-terminated string (*out, the caller
 * frees it).  Returns 0, -1 on out of memory, or 1 when the text holds a
 * NUL byte (*out is then NULL).  The length is computed first so the
 * string is allocated exactly: a 1 MiB value costs 1 MiB, not 3.
 */
static int
podio__decode_dup(const char *in, size_t n, char **out, size_t *outlen)
{
	size_t len;
	int nul;
	char *s;

	*out = NULL;
	len = podio__form_decode(in, n, NULL, &nul);
	if (nul)
		return 1;
	if ((s = malloc(len + 1)) == NULL)
		return -1;
	(void)podio__form_decode(in, n, s, NULL);
	s[len] = '\0';
	*out = s;
	if (outlen != NULL)
		*outlen = len;
	return 0;
}

/* ---------------------------------------------------------------- limits */

/* See params.h.  A name longer than 3 * PODIO_PARAMS_MAX_KEY raw bytes
 * cannot decode short enough (a "%XX" gives one byte, the UTF-8 step
 * never shrinks), so it is refused without being decoded; a shorter one
 * is decoded (counting only), since a raw byte such as 0xFF grows to
 * three. */
enum podio_err
podio__params_check(const char *data, size_t len, size_t *count,
    size_t max_params, const char **reason)
{
	const char *p, *end, *amp, *eq;
	size_t piece, key;

	if (reason != NULL)
		*reason = NULL;
	p = data;
	end = data + len;
	while (len > 0 && p <= end) {
		amp = memchr(p, '&', (size_t)(end - p));
		piece = amp != NULL ? (size_t)(amp - p) : (size_t)(end - p);
		if (piece > 0) {
			(*count)++;
			if (max_params != 0 && *count > max_params) {
				if (reason != NULL)
					*reason = "too many parameters";
				return PODIO_ERR_TOO_LARGE;
			}
			eq = memchr(p, '=', piece);
			key = eq != NULL ? (size_t)(eq - p) : piece;
			if (key > 3 * (size_t)PODIO_PARAMS_MAX_KEY ||
			    podio__form_decode(p, key, NULL, NULL) >
			    PODIO_PARAMS_MAX_KEY) {
				if (reason != NULL)
					*reason = "parameter name too long";
				return PODIO_ERR_TOO_LARGE;
			}
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	return PODIO_OK;
}

/* ------------------------------------------------------------------ set */

/* See params.h. */
struct podio_params *
podio_params_new(size_t max_params)
{
	struct podio_params *params;

	if ((params = calloc(1, sizeof(*params))) == NULL)
		return NULL;
	params->max_params = max_params;
	return params;
}

/* See params.h. */
void
podio_params_free(struct podio_params *params)
{
	size_t i;

	if (params == NULL)
		return;
	for (i = 0; i < params->n; i++) {
		podio__free_secret(params->v[i].name);
		podio__free_secret(params->v[i].value);
	}
	free(params->v);
	free(params->sorted);
	free(params);
}

/* A sort key of the merge: a name and its position. */
struct podio__sortkey {
	const char *name;
	size_t pos;
};

static int
podio__sortkey_cmp(const void *a, const void *b)
{
	const struct podio__sortkey *x = a, *y = b;
	int c;

	if ((c = strcmp(x->name, y->name)) != 0)
		return c;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/*
 * Merges v[0..n) (the old distinct names, then the new pieces) into
 * distinct names: each name keeps its first position and takes the value
 * of its last occurrence.  Rebuilds the sorted index.  Returns 0, or -1
 * on out of memory with the set unchanged (the caller drops the new
 * pieces).
 */
static int
podio__params_merge(struct podio_params *params, size_t n)
{
	struct podio__sortkey *keys = NULL;
	size_t *newpos = NULL, *sorted = NULL;
	size_t i, j, k, ngroups, last;
	int rc = -1;

	if (n == 0) {
		rc = 0;
		goto fail;
	}
	if ((keys = calloc(n, sizeof(*keys))) == NULL ||
	    (newpos = calloc(n, sizeof(*newpos))) == NULL ||
	    (sorted = calloc(n, sizeof(*sorted))) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		keys[i].name = params->v[i].name;
		keys[i].pos = i;
	}
	qsort(keys, n, sizeof(*keys), podio__sortkey_cmp);

	/* In each run of equal names the first keeps its place and takes
	 * the last value; the others are freed and marked NULL.  Nothing
	 * can fail from here on. */
	ngroups = 0;
	for (i = 0; i < n; i = j) {
		for (j = i + 1; j < n && strcmp(keys[j].name,
		    keys[i].name) == 0; j++)
			;
		if (j - i > 1) {
			last = keys[j - 1].pos;
			podio__free_secret(params->v[keys[i].pos].value);
			params->v[keys[i].pos].value = params->v[last].value;
			params->v[last].value = NULL;
			for (k = i + 1; k < j; k++) {
				struct podio__param *dup = &params->v[keys[k].pos];

				podio__free_secret(dup->name);
				podio__free_secret(dup->value);
				dup->name = NULL;
				dup->value = NULL;
			}
		}
		sorted[ngroups++] = keys[i].pos;
	}

	/* Compact in position order, then map the sorted index. */
	for (i = 0, k = 0; i < n; i++) {
		if (params->v[i].name == NULL)
			continue;
		newpos[i] = k;
		params->v[k++] = params->v[i];
	}
	for (i = 0; i < ngroups; i++)
		sorted[i] = newpos[sorted[i]];
	params->n = k;
	free(params->sorted);
	params->sorted = sorted;
	sorted = NULL;
	rc = 0;
fail:
	free(keys);
	free(newpos);
	free(sorted);
	return rc;
}

/* See params.h.  The new pieces go after params->n and only become part
 * of the set when all of them decoded and the merge could allocate. */
enum podio_err
podio_params_parse(struct podio_params *params, const char *data,
    size_t len, const char **reason)
{
	struct podio__param *nv;
	const char *p, *end, *amp, *eq;
	const char *why = NULL;
	enum podio_err err;
	size_t count, piece, key, old, i;
	int rc;

	old = params->n;
	count = params->pieces;
	if ((err = podio__params_check(data, len, &count, params->max_params,
	    &why)) != PODIO_OK)
		goto fail;
	err = PODIO_ERR_NOMEM;
	why = "out of memory";
	if (count - params->pieces > params->alloc - params->n) {
		size_t want = params->n + (count - params->pieces);

		if (want > SIZE_MAX / sizeof(*nv) ||
		    (nv = realloc(params->v, want * sizeof(*nv))) == NULL)
			goto fail;
		params->v = nv;
		params->alloc = want;
	}

	p = data;
	end = data + len;
	while (len > 0) {
		amp = memchr(p, '&', (size_t)(end - p));
		piece = amp != NULL ? (size_t)(amp - p) : (size_t)(end - p);
		if (piece > 0) {
			struct podio__param *pp = &params->v[params->n];

			eq = memchr(p, '=', piece);
			key = eq != NULL ? (size_t)(eq - p) : piece;
			pp->value = NULL;
			if ((rc = podio__decode_dup(p, key, &pp->name,
			    NULL)) == 0) {
				if (eq != NULL)
					rc = podio__decode_dup(eq + 1,
					    piece - key - 1, &pp->value, NULL);
				else if ((pp->value = strdup("")) == NULL)
					rc = -1;
				if (rc != 0)
					podio__free_secret(pp->name);
			}
			if (rc != 0) {
				if (rc > 0) {
					err = PODIO_ERR_INVALID;
					why = "NUL byte in a parameter";
				}
				goto fail;
			}
			params->n++;
		}
		if (amp == NULL)
			break;
		p = amp + 1;
	}
	if (podio__params_merge(params, params->n) != 0)
		goto fail;
	params->pieces = count;
	if (reason != NULL)
		*reason = NULL;
	return PODIO_OK;
fail:
	for (i = old; i < params->n; i++) {
		podio__free_secret(params->v[i].name);
		podio__free_secret(params->v[i].value);
	}
	params->n = old;
	if (reason != NULL)
		*reason = why;
	return err;
}

/* See params.h. */
size_t
podio_params_count(const struct podio_params *params)
{
	return params->n;
}

/* See params.h.  Binary search in the sorted index. */
const char *
podio_params_get(const struct podio_params *params, const char *name)
{
	size_t lo = 0, hi = params->n, mid;
	int c;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = strcmp(name, params->v[params->sorted[mid]].name);
		if (c == 0)
			return params->v[params->sorted[mid]].value;
		if (c < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}

/* See params.h. */
int
podio_params_at(const struct podio_params *params, size_t i,
    const char **name, const char **value)
{
	if (i >= params->n)
		return 0;
	if (name != NULL)
		*name = params->v[i].name;
	if (value != NULL)
		*value = params->v[i].value;
	return 1;
}

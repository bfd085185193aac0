/*
 * secret.c: keeping secrets out of what the program prints (see
 * secret.h), and the hook secret in a hook's URL.
 */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "params.h"
#include "podio.h"
#include "secret.h"
#include "spool.h"

/* Whether c may appear in the value of a URL query parameter. */
static int
secret_is_value_char(char c)
{
	return c != '\0' && c != '&' && c != '#' && c != ';' &&
	    (unsigned char)c > ' ' && c != '"' && c != '\'' && c != '<' &&
	    c != '>' && (unsigned char)c != 0x7f;
}

/* See secret.h. */
char *
secret_mask_query(const char *text)
{
	static const char key[] = "secret=";
	const size_t klen = sizeof(key) - 1;
	char *out;
	size_t len = strlen(text), o = 0, i = 0;

	/* "***" is at most 3 bytes longer than the value it replaces and
	 * each replacement needs a key of klen bytes before it. */
	if ((out = malloc(len + (len / klen + 1) * 3 + 1)) == NULL)
		return NULL;
	while (i < len) {
		if (strncasecmp(text + i, key, klen) == 0) {
			memcpy(out + o, text + i, klen);
			o += klen;
			i += klen;
			if (secret_is_value_char(text[i])) {
				while (secret_is_value_char(text[i]))
					i++;
				memcpy(out + o, "***", 3);
				o += 3;
			}
			continue;
		}
		/* Control characters from an answer must not reach a
		 * terminal. */
		out[o++] = (unsigned char)text[i] < ' ' ||
		    text[i] == 0x7f ? '?' : text[i];
		i++;
	}
	out[o] = '\0';
	return out;
}

/*
 * Replaces, in place, every occurrence of needle in s (of length *len)
 * by "***".  Needles of 3 bytes or less are left alone, so the text only
 * shrinks.
 */
static void
secret_replace_all(char *s, size_t *len, const char *needle)
{
	size_t nlen = strlen(needle);
	char *p = s;

	if (nlen <= 3)
		return;
	while ((p = strstr(p, needle)) != NULL) {
		memcpy(p, "***", 3);
		memmove(p + 3, p + nlen, *len - (size_t)(p - s) - nlen + 1);
		*len -= nlen - 3;
		p += 3;
	}
}

/* See secret.h. */
char *
secret_pct_encode(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t len = strlen(s), i, o = 0;
	unsigned char c;
	char *out;

	if (len > SIZE_MAX / 3 - 1 || (out = malloc(len * 3 + 1)) == NULL)
		return NULL;
	for (i = 0; i < len; i++) {
		c = (unsigned char)s[i];
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '.' ||
		    c == '_' || c == '~') {
			out[o++] = (char)c;
		} else {
			out[o++] = '%';
			out[o++] = hex[c >> 4];
			out[o++] = hex[c & 0x0f];
		}
	}
	out[o] = '\0';
	return out;
}

/*
 * Replaces in out the passwords of spool_url: the one after "user:" in
 * its user part and the values of its password= parameters, as they are
 * written there (percent-encoded or not).
 */
static void
secret_scrub_url(char *out, size_t *len, const char *url)
{
	const char *p, *at, *colon, *end;
	char pw[256];
	size_t n;

	if (url == NULL || !podio_spool_is_url(url))
		return;
	p = strstr(url, "://") + 3;
	end = p + strcspn(p, "/?");
	at = memchr(p, '@', (size_t)(end - p));
	colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon != NULL && (n = (size_t)(at - colon - 1)) < sizeof(pw)) {
		memcpy(pw, colon + 1, n);
		pw[n] = '\0';
		secret_replace_all(out, len, pw);
	}
	for (p = url; (p = strstr(p, "password=")) != NULL; p += 9) {
		if (p[-1] != '?' && p[-1] != '&')
			continue;
		n = strcspn(p + 9, "&");
		if (n < sizeof(pw)) {
			memcpy(pw, p + 9, n);
			pw[n] = '\0';
			secret_replace_all(out, len, pw);
		}
	}
	explicit_bzero(pw, sizeof(pw));
}

/* See secret.h.  Secrets shorter than 4 bytes are not searched for (they
 * would garble ordinary words and are not worth hiding). */
char *
secret_scrub(const struct podio_config *cfg, const char *text)
{
	struct podio_credential c;
	const char *key, *val;
	char *out, *enc;
	size_t i, len;

	if ((out = secret_mask_query(text)) == NULL)
		return NULL;
	len = strlen(out);
	for (i = 0; (key = podio_config_key_name(i)) != NULL; i++) {
		if (!podio_config_key_is_secret(key))
			continue;
		val = podio_config_get(cfg, key);
		if (val == NULL || strlen(val) < 4)
			continue;
		secret_replace_all(out, &len, val);
		if ((enc = secret_pct_encode(val)) != NULL) {
			secret_replace_all(out, &len, enc);
			explicit_bzero(enc, strlen(enc));
			free(enc);
		}
	}
	for (i = 0; podio_config_credential(cfg, i, &c); i++) {
		if (c.file == NULL || strlen(c.app_token) < 4)
			continue;
		secret_replace_all(out, &len, c.app_token);
		if ((enc = secret_pct_encode(c.app_token)) != NULL) {
			secret_replace_all(out, &len, enc);
			explicit_bzero(enc, strlen(enc));
			free(enc);
		}
	}
	secret_scrub_url(out, &len, podio_config_get(cfg, "spool_url"));
	return out;
}

/* See secret.h. */
char *
secret_url_with(const char *url, const char *secret)
{
	const char *hash, *query, *sep;
	char *enc = NULL, *out = NULL;
	size_t base, need;

	hash = strchr(url, '#');
	base = hash != NULL ? (size_t)(hash - url) : strlen(url);
	query = memchr(url, '?', base);
	if (query == NULL)
		sep = "?";
	else if (url[base - 1] == '?' || url[base - 1] == '&')
		sep = "";
	else
		sep = "&";
	if ((enc = secret_pct_encode(secret)) == NULL)
		goto fail;
	need = strlen(url) + strlen(sep) + strlen("secret=") + strlen(enc) +
	    1;
	if ((out = malloc(need)) == NULL)
		goto fail;
	snprintf(out, need, "%.*s%ssecret=%s%s", (int)base, url, sep, enc,
	    hash != NULL ? hash : "");
fail:
	if (enc != NULL) {
		explicit_bzero(enc, strlen(enc));
		free(enc);
	}
	return out;
}

/* See secret.h. */
char *
secret_url_with_app(const char *url, uint64_t app_id)
{
	const char *hash, *query, *sep, *p;
	char *out;
	size_t base, need;

	hash = strchr(url, '#');
	base = hash != NULL ? (size_t)(hash - url) : strlen(url);
	query = memchr(url, '?', base);
	for (p = query; p != NULL && p < url + base; p = strchr(p, '&')) {
		p++;
		if (strncmp(p, PODIO_APP_PARAM "=",
		    sizeof(PODIO_APP_PARAM)) == 0)
			return strdup(url);
	}
	if (query == NULL)
		sep = "?";
	else if (url[base - 1] == '?' || url[base - 1] == '&')
		sep = "";
	else
		sep = "&";
	need = strlen(url) + strlen(sep) + sizeof(PODIO_APP_PARAM) + 21 + 1;
	if ((out = malloc(need)) == NULL)
		return NULL;
	snprintf(out, need, "%.*s%s%s=%" PRIu64 "%s", (int)base, url, sep,
	    PODIO_APP_PARAM, app_id, hash != NULL ? hash : "");
	return out;
}

/* See secret.h. */
int
secret_url_has(const char *url)
{
	const char *p, *hash;

	hash = strchr(url, '#');
	p = strchr(url, '?');
	if (p == NULL || (hash != NULL && p > hash))
		return 0;
	while (p != NULL && (hash == NULL || p < hash)) {
		p++;
		if (strncmp(p, "secret", 6) == 0 &&
		    (p[6] == '=' || p[6] == '&' || p[6] == '#' ||
		    p[6] == '\0'))
			return 1;
		p = strchr(p, '&');
	}
	return 0;
}

/*
 * The value of the last "secret" parameter in the query of url (before
 * any #fragment), decoded as a form decodes it (podio__form_decode).
 * Returns a string the caller wipes and frees, or NULL when there is none
 * or on out of memory.
 */
static char *
secret_url_value(const char *url)
{
	const char *p, *end, *val = NULL, *vend = NULL;
	char *out;
	size_t n;

	end = strchr(url, '#');
	if (end == NULL)
		end = url + strlen(url);
	if ((p = memchr(url, '?', (size_t)(end - url))) == NULL)
		return NULL;
	while (p != NULL && p < end) {
		p++;
		if ((size_t)(end - p) >= 7 && strncmp(p, "secret=", 7) == 0) {
			val = p + 7;
			vend = memchr(val, '&', (size_t)(end - val));
			if (vend == NULL)
				vend = end;
		}
		p = memchr(p, '&', (size_t)(end - p));
	}
	if (val == NULL)
		return NULL;
	/* Decoded as the handler decodes the delivery's parameters. */
	n = (size_t)(vend - val);
	if ((out = malloc(3 * n + 1)) == NULL)
		return NULL;
	out[podio__form_decode(val, n, out, NULL)] = '\0';
	return out;
}

/* See secret.h. */
char *
secret_hook_url(const struct podio_config *cfg, const char *url)
{
	static const char mark[] = "(previous)";
	const char *prev, *cur, *hash;
	char *out = NULL, *given = NULL, *marked = NULL, *at = NULL, *p;
	size_t len;

	if ((out = secret_scrub(cfg, url)) == NULL)
		return NULL;
	prev = podio_config_get(cfg, "webhook_secret_previous");
	cur = podio_config_get(cfg, "webhook_secret");
	if (prev == NULL || prev[0] == '\0' ||
	    (given = secret_url_value(url)) == NULL ||
	    strcmp(given, prev) != 0 ||
	    (cur != NULL && strcmp(given, cur) == 0))
		goto done;
	/* The masked value of the last secret parameter in out's query. */
	hash = strchr(out, '#');
	for (p = strchr(out, '?'); p != NULL && (hash == NULL || p < hash);
	    p = strpbrk(p + 1, "&#"))
		if (strncmp(p + 1, "secret=***", 10) == 0)
			at = p + 11;
	if (at == NULL)
		goto done;
	len = strlen(out);
	if ((marked = malloc(len + sizeof(mark))) == NULL) {
		free(out);
		out = NULL;
		goto done;
	}
	memcpy(marked, out, (size_t)(at - out));
	memcpy(marked + (at - out), mark, sizeof(mark) - 1);
	memcpy(marked + (at - out) + sizeof(mark) - 1, at,
	    len - (size_t)(at - out) + 1);
	free(out);
	out = marked;
done:
	if (given != NULL) {
		explicit_bzero(given, strlen(given));
		free(given);
	}
	return out;
}

/* See secret.h. */
enum secret_url_state
secret_url_state(const struct podio_config *cfg, const char *url)
{
	const char *cur, *prev;
	char *given;
	enum secret_url_state st;

	if (!secret_url_has(url))
		return SECRET_URL_NONE;
	/* A bare "secret" without '=' is a parameter with no value. */
	if ((given = secret_url_value(url)) == NULL)
		return SECRET_URL_OTHER;
	cur = podio_config_get(cfg, "webhook_secret");
	prev = podio_config_get(cfg, "webhook_secret_previous");
	if (cur != NULL && cur[0] != '\0' && strcmp(given, cur) == 0)
		st = SECRET_URL_CURRENT;
	else if (prev != NULL && prev[0] != '\0' && strcmp(given, prev) == 0)
		st = SECRET_URL_PREVIOUS;
	else
		st = SECRET_URL_OTHER;
	explicit_bzero(given, strlen(given));
	free(given);
	return st;
}

/* See secret.h. */
char *
secret_url_without(const char *url)
{
	const char *end, *query, *p, *next;
	char *out;
	size_t o, n;
	int first = 1;

	if ((out = malloc(strlen(url) + 1)) == NULL)
		return NULL;
	end = strchr(url, '#');
	if (end == NULL)
		end = url + strlen(url);
	query = memchr(url, '?', (size_t)(end - url));
	if (query == NULL) {
		memcpy(out, url, strlen(url) + 1);
		return out;
	}
	o = (size_t)(query - url);
	memcpy(out, url, o);
	for (p = query + 1; p < end; p = next + 1) {
		next = memchr(p, '&', (size_t)(end - p));
		if (next == NULL)
			next = end;
		n = (size_t)(next - p);
		if (n == 0 || (n >= 6 && strncmp(p, "secret", 6) == 0 &&
		    (n == 6 || p[6] == '=')))
			continue;
		out[o++] = first ? '?' : '&';
		first = 0;
		memcpy(out + o, p, n);
		o += n;
	}
	memcpy(out + o, end, strlen(end) + 1);
	return out;
}

/*
 * util.c: small helpers shared by the library modules (see util.h): a
 * growable byte buffer with a cap, secret wiping, string helpers and
 * clocks.
 */
#include <config.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

/* The smallest allocation of a buffer, so short appends do not realloc. */
#define PODIO__BUF_MIN 64

/*
 * Makes room for need bytes of data plus the terminating NUL.  Growth
 * copies into a fresh block and wipes the old one instead of calling
 * realloc(), because buffers carry secrets (token answers) and realloc
 * may leave a copy behind in freed memory.  Returns 0 or -1 on out of
 * memory or size overflow; the buffer is unchanged on failure.
 */
static int
podio__buf_reserve(struct podio__buf *b, size_t need)
{
	size_t nalloc;
	char *p;

	if (need == SIZE_MAX)
		return -1;
	if (b->data != NULL && need + 1 <= b->alloc)
		return 0;
	nalloc = b->alloc > PODIO__BUF_MIN ? b->alloc : PODIO__BUF_MIN;
	while (nalloc < need + 1) {
		if (nalloc > SIZE_MAX / 2) {
			nalloc = need + 1;
			break;
		}
		nalloc *= 2;
	}
	if ((p = malloc(nalloc)) == NULL)
		return -1;
	if (b->data != NULL) {
		memcpy(p, b->data, b->len + 1);
		podio__wipe(b->data, b->alloc);
		free(b->data);
	} else
		p[0] = '\0';
	b->data = p;
	b->alloc = nalloc;
	return 0;
}

/* See util.h.  Appending 0 bytes to an empty buffer allocates nothing. */
int
podio__buf_append(struct podio__buf *b, const void *p, size_t n)
{
	if (n == 0)
		return 0;
	if (n > SIZE_MAX - 1 - b->len)
		return -1;
	if (b->cap != 0 && b->len + n > b->cap)
		return -2;
	if (podio__buf_reserve(b, b->len + n) != 0)
		return -1;
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = '\0';
	return 0;
}

/*
 * See util.h.  Formats into a small stack buffer first (the common
 * case), else a second time straight into the grown buffer.  The cap is
 * checked before anything is written, so a refused append leaves the
 * buffer exactly as it was.  Returns -1 also on a formatting error.
 */
int
podio__buf_appendf(struct podio__buf *b, const char *fmt, ...)
{
	char small[256];
	va_list ap;
	size_t n;
	int len, rc;

	va_start(ap, fmt);
	len = vsnprintf(small, sizeof(small), fmt, ap);
	va_end(ap);
	if (len < 0)
		return -1;
	n = (size_t)len;
	if (n < sizeof(small)) {
		rc = podio__buf_append(b, small, n);
		podio__wipe(small, n);
		return rc;
	}
	podio__wipe(small, sizeof(small));
	if (n > SIZE_MAX - 1 - b->len)
		return -1;
	if (b->cap != 0 && b->len + n > b->cap)
		return -2;
	if (podio__buf_reserve(b, b->len + n) != 0)
		return -1;
	va_start(ap, fmt);
	len = vsnprintf(b->data + b->len, n + 1, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len != n) {
		/* The arguments changed under us (cannot happen with sane
		 * callers); drop whatever was written. */
		b->data[b->len] = '\0';
		return -1;
	}
	b->len += n;
	return 0;
}

/* See util.h.  The cap is kept, so the buffer can be reused as is. */
char *
podio__buf_steal(struct podio__buf *b)
{
	char *p;

	if (b->data == NULL)
		return strdup("");
	p = b->data;
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
	return p;
}

/* See util.h.  The cap is kept. */
void
podio__buf_free(struct podio__buf *b)
{
	if (b->data != NULL) {
		podio__wipe(b->data, b->alloc);
		free(b->data);
	}
	b->data = NULL;
	b->len = 0;
	b->alloc = 0;
}

/* See util.h.  explicit_bzero() is never optimised away, unlike a
 * memset() before free(). */
void
podio__wipe(void *p, size_t n)
{
	if (p != NULL && n > 0)
		explicit_bzero(p, n);
}

/* See util.h. */
void
podio__free_secret(char *s)
{
	if (s == NULL)
		return;
	podio__wipe(s, strlen(s));
	free(s);
}

/* See util.h. */
char *
podio__strdup(const char *s)
{
	return s == NULL ? NULL : strdup(s);
}

/* See util.h.  A size of 0 leaves dst untouched. */
char *
podio__strlcpy(char *dst, const char *src, size_t n)
{
	size_t len;

	if (n == 0)
		return dst;
	len = strnlen(src, n - 1);
	memcpy(dst, src, len);
	dst[len] = '\0';
	return dst;
}

/* Milliseconds of clock id, or 0 if the clock cannot be read. */
static int64_t
podio__clock_ms(clockid_t id)
{
	struct timespec ts;

	if (clock_gettime(id, &ts) != 0)
		return 0;
	return (int64_t)ts.tv_sec * 1000 + (int64_t)(ts.tv_nsec / 1000000);
}

/* See util.h: for intervals and deadlines. */
int64_t
podio__now_ms(void)
{
	return podio__clock_ms(CLOCK_MONOTONIC);
}

/* See util.h: for expiry times stored in files. */
int64_t
podio__wall_ms(void)
{
	return podio__clock_ms(CLOCK_REALTIME);
}

/*
 * util.h: small helpers shared by the library modules: a growable byte
 * buffer with a cap, secret wiping, string helpers.  Internal (podio__).
 */
#ifndef PODIO_UTIL_H
#define PODIO_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* A growable buffer, always NUL-terminated when data != NULL.  cap is the
 * largest len allowed (0 = no cap). */
struct podio__buf {
	char *data;
	size_t len;
	size_t alloc;
	size_t cap;
};

/* Appends n bytes; returns 0, or -1 on out of memory, or -2 when len would
 * exceed cap (the buffer is left unchanged). */
int podio__buf_append(struct podio__buf *b, const void *p, size_t n);
int podio__buf_appendf(struct podio__buf *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Hands the data to the caller (who frees it) and resets the buffer.
 * Returns an empty string (allocated) if nothing was appended; NULL on
 * out of memory. */
char *podio__buf_steal(struct podio__buf *b);
/* Frees the data (wiping it first) and resets the buffer. */
void podio__buf_free(struct podio__buf *b);

/* Overwrites n bytes at p with zeros in a way the compiler keeps. */
void podio__wipe(void *p, size_t n);
/* Wipes a NUL-terminated string and frees it.  Accepts NULL. */
void podio__free_secret(char *s);

/* strdup that accepts NULL (returns NULL) */
char *podio__strdup(const char *s);

/* Copies src into dst of size n, always terminating, truncating; returns
 * dst. */
char *podio__strlcpy(char *dst, const char *src, size_t n);

/* Monotonic and wall clocks in milliseconds. */
int64_t podio__now_ms(void);
int64_t podio__wall_ms(void);

#endif

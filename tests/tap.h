/*
 * tap.h: a minimal Test Anything Protocol emitter for the C unit tests.
 * Each test program prints "ok N - name" / "not ok N - name" lines and a
 * plan at the end; automake's tap-driver counts every line.
 */
#ifndef PODIO_TAP_H
#define PODIO_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n;
static int tap_failed;

static int tap_ok(int cond, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), unused));
static int
tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	if (!cond)
		tap_failed++;
	return cond;
}

static void tap_skip(const char *why, const char *fmt, ...)
	__attribute__((format(printf, 2, 3), unused));
static void
tap_skip(const char *why, const char *fmt, ...)
{
	va_list ap;

	tap_n++;
	printf("ok %d - ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf(" # SKIP %s\n", why);
	fflush(stdout);
}

static void tap_diag(const char *fmt, ...)
	__attribute__((format(printf, 1, 2), unused));
static void
tap_diag(const char *fmt, ...)
{
	va_list ap;

	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Prints the plan and returns the exit status for main(). */
static int __attribute__((unused))
tap_done(void)
{
	printf("1..%d\n", tap_n);
	return tap_failed ? 1 : 0;
}

#define TAP_OK(cond) tap_ok((cond), "%s (%s:%d)", #cond, __FILE__, __LINE__)

#endif

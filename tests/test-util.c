/*
 * test-util.c: the helpers of lib/util.c (the capped buffer, appendf,
 * steal, wiping, strlcpy, the clocks) and the log of lib/log.c (levels,
 * targets, the line format, truncation, whole lines under threads, held
 * lines).
 */
#include <config.h>

#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podio.h"
#include "log.h"
#include "util.h"
#include "tap.h"

static void
test_buf_basic(void)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	char *s;

	TAP_OK(podio__buf_append(&b, "abc", 3) == 0);
	TAP_OK(podio__buf_append(&b, "def", 3) == 0);
	tap_ok(b.len == 6 && strcmp(b.data, "abcdef") == 0,
	    "append concatenates and NUL-terminates");
	TAP_OK(podio__buf_append(&b, "", 0) == 0 && b.len == 6);
	s = podio__buf_steal(&b);
	tap_ok(s != NULL && strcmp(s, "abcdef") == 0, "steal hands the data");
	tap_ok(b.data == NULL && b.len == 0 && b.alloc == 0,
	    "steal resets the buffer");
	free(s);
	s = podio__buf_steal(&b);
	tap_ok(s != NULL && s[0] == '\0', "steal of an empty buffer gives \"\"");
	free(s);
	podio__buf_free(&b);
}

static void
test_buf_cap(void)
{
	struct podio__buf b = { NULL, 0, 0, 10 };
	int rc;

	TAP_OK(podio__buf_append(&b, "12345678", 8) == 0);
	rc = podio__buf_append(&b, "abc", 3);
	tap_ok(rc == -2, "append past the cap gives -2 (got %d)", rc);
	tap_ok(b.len == 8 && strcmp(b.data, "12345678") == 0,
	    "a refused append leaves the buffer unchanged");
	TAP_OK(podio__buf_append(&b, "90", 2) == 0 && b.len == 10);
	TAP_OK(podio__buf_append(&b, "x", 1) == -2);
	rc = podio__buf_appendf(&b, "%d", 7);
	tap_ok(rc == -2 && b.len == 10, "appendf past the cap gives -2");
	podio__buf_free(&b);
	tap_ok(b.data == NULL && b.len == 0 && b.cap == 10,
	    "free resets data but keeps the cap");
}

static void
test_buf_appendf(void)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	char big[1000];
	size_t i;
	int ok = 1;

	TAP_OK(podio__buf_appendf(&b, "%s=%d", "n", 42) == 0);
	tap_ok(b.data != NULL && strcmp(b.data, "n=42") == 0,
	    "appendf formats");
	/* longer than the stack buffer used for short formats */
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	TAP_OK(podio__buf_appendf(&b, "[%s]", big) == 0);
	tap_ok(b.len == 4 + 2 + sizeof(big) - 1, "long appendf has the "
	    "right length (%zu)", b.len);
	for (i = 0; i < sizeof(big) - 1; i++)
		ok &= b.data[5 + i] == 'x';
	tap_ok(ok && b.data[4] == '[' && b.data[b.len - 1] == ']' &&
	    b.data[b.len] == '\0', "long appendf has the right content");
	podio__buf_free(&b);

	/* a long appendf refused by the cap changes nothing */
	b.cap = 100;
	TAP_OK(podio__buf_appendf(&b, "ab") == 0);
	tap_ok(podio__buf_appendf(&b, "%s", big) == -2 && b.len == 2 &&
	    strcmp(b.data, "ab") == 0, "long appendf past the cap: -2, "
	    "unchanged");
	podio__buf_free(&b);
}

static void
test_buf_grow(void)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	size_t i;
	int ok = 1;

	for (i = 0; i < 10000 && ok; i++)
		ok = podio__buf_append(&b, &"0123456789"[i % 10], 1) == 0;
	for (i = 0; i < 10000 && ok; i++)
		ok = b.data[i] == (char)('0' + i % 10);
	tap_ok(ok && b.len == 10000 && b.data[10000] == '\0' &&
	    b.alloc > b.len, "10000 one-byte appends keep every byte");
	podio__buf_free(&b);
}

static void
test_wipe(void)
{
	char s[16] = "top-secret";
	char *h;
	size_t i;
	int zero = 1;

	podio__wipe(s, sizeof(s));
	for (i = 0; i < sizeof(s); i++)
		zero &= s[i] == 0;
	tap_ok(zero, "wipe zeroes every byte");
	podio__wipe(NULL, 5);  /* must not crash */
	podio__free_secret(NULL);
	h = strdup("another-secret");
	podio__free_secret(h);
	tap_ok(1, "wipe(NULL) and free_secret(NULL) are no-ops");
}

static void
test_strings(void)
{
	char dst[8];
	char *d;

	memset(dst, 'z', sizeof(dst));
	podio__strlcpy(dst, "abcdefghij", sizeof(dst));
	tap_ok(strcmp(dst, "abcdefg") == 0, "strlcpy truncates to size-1 "
	    "(got '%s')", dst);
	podio__strlcpy(dst, "abc", sizeof(dst));
	TAP_OK(strcmp(dst, "abc") == 0);
	podio__strlcpy(dst, "1234567", sizeof(dst));
	TAP_OK(strcmp(dst, "1234567") == 0);
	dst[0] = 'q';
	podio__strlcpy(dst, "abc", 0);
	tap_ok(dst[0] == 'q', "strlcpy with size 0 writes nothing");
	podio__strlcpy(dst, "abc", 1);
	TAP_OK(dst[0] == '\0');

	TAP_OK(podio__strdup(NULL) == NULL);
	d = podio__strdup("dup");
	tap_ok(d != NULL && strcmp(d, "dup") == 0, "strdup copies");
	free(d);
}

static void
test_clocks(void)
{
	int64_t a, b;

	a = podio__now_ms();
	b = podio__now_ms();
	tap_ok(a > 0 && b >= a, "monotonic clock does not go back");
	/* 2020-01-01 in ms: a sanity floor, not a timing assertion */
	tap_ok(podio__wall_ms() > INT64_C(1577836800000),
	    "wall clock is in ms since the epoch");
}

/* ----------------------------------------------------------------- log */

static char logdir[256];

/* Reads a whole file into a new string (caller frees), or NULL. */
static char *
slurp(const char *path)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	char chunk[4096];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		if (podio__buf_append(&b, chunk, n) != 0)
			break;
	fclose(f);
	return podio__buf_steal(&b);
}

static void
test_log_levels(void)
{
	tap_ok(podio_log_get_level() == PODIO_LOG_INFO, "log level "
	    "defaults to info");
	TAP_OK(podio_log_level_parse("error") == PODIO_LOG_ERROR);
	TAP_OK(podio_log_level_parse("warn") == PODIO_LOG_WARN);
	TAP_OK(podio_log_level_parse("info") == PODIO_LOG_INFO);
	TAP_OK(podio_log_level_parse("debug") == PODIO_LOG_DEBUG);
	TAP_OK(podio_log_level_parse("Debug") == -1);
	TAP_OK(podio_log_level_parse("verbose") == -1);
	TAP_OK(podio_log_level_parse("") == -1);
	TAP_OK(podio_log_level_parse(NULL) == -1);
	podio_log_set_level(PODIO_LOG_DEBUG);
	TAP_OK(podio_log_get_level() == PODIO_LOG_DEBUG);
	podio_log_set_level(PODIO_LOG_INFO);
}

static void
test_log_targets(void)
{
	char target[512];

	TAP_OK(podio_log_set_target("bogus") == PODIO_ERR_INVALID);
	TAP_OK(podio_log_set_target("file:") == PODIO_ERR_INVALID);
	TAP_OK(podio_log_set_target(NULL) == PODIO_ERR_INVALID);
	snprintf(target, sizeof(target), "file:%s/no/such/dir/log", logdir);
	TAP_OK(podio_log_set_target(target) == PODIO_ERR_IO);
	tap_ok(podio_log_set_target("syslog") == PODIO_OK &&
	    podio_log_set_target("stderr") == PODIO_OK,
	    "syslog and stderr targets accepted");
}

static void
test_log_format(void)
{
	char path[512], target[600], want[256], *text = NULL, *msg = NULL;
	char *line2, *line3, *line4, *end;
	size_t i;
	int saved;

	snprintf(path, sizeof(path), "%s/format.log", logdir);
	snprintf(target, sizeof(target), "file:%s", path);
	if (!tap_ok(podio_log_set_target(target) == PODIO_OK, "file target"))
		return;
	podio_log(PODIO_LOG_INFO, "hello %s\nsecond\tline\r\n", "there");
	podio_log(PODIO_LOG_DEBUG, "hidden at level info");
	podio_log_set_level(PODIO_LOG_DEBUG);
	errno = EACCES;
	podio_log(PODIO_LOG_DEBUG, "shown at level debug");
	saved = errno;
	podio_log_set_level(PODIO_LOG_INFO);
	/* longer than the cap, ending in two-byte UTF-8 characters */
	msg = malloc(6000);
	memset(msg, 'a', 2040);
	for (i = 0; i < 1000; i++)
		memcpy(msg + 2040 + 2 * i, "\xc3\xa9", 2);
	msg[4040] = '\0';
	podio_log(PODIO_LOG_WARN, "%s", msg);
	podio_log(PODIO_LOG_ERROR, "%s", "");
	TAP_OK(podio_log_set_target("stderr") == PODIO_OK);
	tap_ok(saved == EACCES, "podio_log keeps errno");

	text = slurp(path);
	if (!tap_ok(text != NULL, "read the log file"))
		goto done;
	snprintf(want, sizeof(want), "podio-webhook[%ld]: info: hello there "
	    "second line\n", (long)getpid());
	tap_ok(strncmp(text, want, strlen(want)) == 0, "first line: prefix, "
	    "level, control characters made spaces, one line");
	line2 = text + strlen(want);
	snprintf(want, sizeof(want), "podio-webhook[%ld]: debug: shown at "
	    "level debug\n", (long)getpid());
	tap_ok(strncmp(line2, want, strlen(want)) == 0, "debug hidden at "
	    "info, shown at debug");
	line3 = line2 + strlen(want);
	end = strchr(line3, '\n');
	snprintf(want, sizeof(want), "podio-webhook[%ld]: warn: aaaa",
	    (long)getpid());
	tap_ok(end != NULL && strncmp(line3, want, strlen(want)) == 0 &&
	    end - line3 < 2200 && end - line3 > 2000, "a long message is cut "
	    "near 2 KiB (%ld bytes)", end != NULL ? (long)(end - line3) : -1L);
	tap_ok(end != NULL && end - line3 > 8 &&
	    memcmp(end - 5, "\xc3\xa9...", 5) == 0, "... at a character "
	    "boundary, marked with ...");
	line4 = end != NULL ? end + 1 : line3;
	snprintf(want, sizeof(want), "podio-webhook[%ld]: error:\n",
	    (long)getpid());
	tap_ok(strcmp(line4, want) == 0, "an empty message, and nothing else "
	    "in the file");
done:
	free(msg);
	free(text);
	unlink(path);
}

#define LOG_THREADS 6
#define LOG_EACH 400

static char target_a[600], target_b[600];

static void *
log_worker(void *arg)
{
	int id = (int)(intptr_t)arg, i;

	/* Odd workers hold their lines ten at a time, flushing now and
	 * then (podio__log_hold()). */
	for (i = 0; i < LOG_EACH; i++) {
		if (id % 2 && i % 10 == 0)
			podio__log_hold();
		podio_log(PODIO_LOG_INFO, "worker %d message %d %s", id, i,
		    "-------------------------------------------------------"
		    "-------------------------------------------------------");
		if (id % 2 && i % 25 == 0)
			podio__log_flush();
		if (id % 2 && i % 10 == 9)
			podio__log_release();
	}
	podio__log_release();
	return NULL;
}

static void *
log_switcher(void *arg)
{
	int i;

	(void)arg;
	for (i = 0; i < 200; i++)
		podio_log_set_target(i % 2 ? target_a : target_b);
	return NULL;
}

/* Counts the well-formed worker lines of text into seen[]; returns the
 * number of malformed lines. */
static int
count_lines(const char *text, int seen[LOG_THREADS][LOG_EACH])
{
	char prefix[64];
	const char *p, *nl;
	int id, i, n, bad = 0;
	size_t plen;

	snprintf(prefix, sizeof(prefix), "podio-webhook[%ld]: info: worker ",
	    (long)getpid());
	plen = strlen(prefix);
	for (p = text; p != NULL && *p != '\0'; p = nl + 1) {
		if ((nl = strchr(p, '\n')) == NULL) {
			bad++;
			break;
		}
		n = 0;
		if (strncmp(p, prefix, plen) != 0 ||
		    sscanf(p + plen, "%d message %d %n", &id, &i, &n) != 2 ||
		    id < 0 || id >= LOG_THREADS || i < 0 || i >= LOG_EACH ||
		    nl - (p + plen + n) != 110) {
			bad++;
			continue;
		}
		seen[id][i]++;
	}
	return bad;
}

/* Many threads log, some holding their lines, while another switches
 * the target back and forth: every message lands whole, once, in one of
 * the two files. */
static void
test_log_threads(void)
{
	static int seen[LOG_THREADS][LOG_EACH];
	pthread_t th[LOG_THREADS + 1];
	char path_a[512], path_b[512], *a = NULL, *b = NULL;
	int i, j, bad, once = 1;

	snprintf(path_a, sizeof(path_a), "%s/a.log", logdir);
	snprintf(path_b, sizeof(path_b), "%s/b.log", logdir);
	snprintf(target_a, sizeof(target_a), "file:%s", path_a);
	snprintf(target_b, sizeof(target_b), "file:%s", path_b);
	if (!tap_ok(podio_log_set_target(target_a) == PODIO_OK,
	    "target for the thread test"))
		return;
	for (i = 0; i < LOG_THREADS; i++)
		pthread_create(&th[i], NULL, log_worker, (void *)(intptr_t)i);
	pthread_create(&th[LOG_THREADS], NULL, log_switcher, NULL);
	for (i = 0; i <= LOG_THREADS; i++)
		pthread_join(th[i], NULL);
	podio_log_set_target("stderr");

	a = slurp(path_a);
	b = slurp(path_b);
	bad = count_lines(a, seen) + count_lines(b, seen);
	tap_ok(a != NULL && b != NULL && bad == 0, "every line whole (%d "
	    "malformed)", bad);
	for (i = 0; i < LOG_THREADS; i++)
		for (j = 0; j < LOG_EACH; j++)
			once &= seen[i][j] == 1;
	tap_ok(once, "each of %d messages logged exactly once",
	    LOG_THREADS * LOG_EACH);
	free(a);
	free(b);
	unlink(path_a);
	unlink(path_b);
}

/* The size of path, or -1. */
static long long
file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

/* Held lines wait for podio__log_flush(), a full buffer or
 * podio__log_release(), and come out whole and in order. */
static void
test_log_hold(void)
{
	char path[512], target[600], *text;
	long long before, held, flushed, full;
	int i, n = 0, order = 1, prev = -1, k;
	const char *p;

	snprintf(path, sizeof(path), "%s/hold.log", logdir);
	snprintf(target, sizeof(target), "file:%s", path);
	if (!tap_ok(podio_log_set_target(target) == PODIO_OK,
	    "target for the hold test"))
		return;
	podio_log(PODIO_LOG_INFO, "line 0");
	before = file_size(path);
	podio__log_hold();
	podio_log(PODIO_LOG_INFO, "line 1");
	podio_log(PODIO_LOG_INFO, "line 2");
	held = file_size(path);
	podio__log_flush();
	flushed = file_size(path);
	podio_log(PODIO_LOG_INFO, "line 3");
	tap_ok(before > 0 && held == before && flushed > held &&
	    file_size(path) == flushed, "held lines are written by the "
	    "flush, not before (%lld, %lld, %lld bytes)", before, held,
	    flushed);
	/* 40 lines of about 150 bytes: more than the buffer holds. */
	for (i = 4; i < 44; i++)
		podio_log(PODIO_LOG_INFO, "line %d %0130d", i, 0);
	full = file_size(path);
	podio__log_release();
	podio_log(PODIO_LOG_INFO, "line 44");
	tap_ok(full > flushed && file_size(path) > full, "a full buffer is "
	    "written while holding; the release writes the rest, and later "
	    "lines go out at once");
	podio_log_set_target("stderr");
	text = slurp(path);
	for (p = text; p != NULL && (p = strstr(p, "info: line ")) != NULL;
	    p++) {
		if (sscanf(p + 11, "%d", &k) != 1 || k != prev + 1)
			order = 0;
		prev = k;
		n++;
	}
	tap_ok(text != NULL && n == 45 && order, "all 45 lines, in order "
	    "(%d)", n);
	free(text);
	unlink(path);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	test_log_levels();  /* first: it checks the default level */
	test_buf_basic();
	test_buf_cap();
	test_buf_appendf();
	test_buf_grow();
	test_wipe();
	test_strings();
	test_clocks();

	snprintf(logdir, sizeof(logdir), "%s/test-util.XXXXXX",
	    t != NULL && t[0] != '\0' ? t : "/tmp");
	if (mkdtemp(logdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_log_targets();
	test_log_format();
	test_log_threads();
	test_log_hold();
	rmdir(logdir);
	return tap_done();
}

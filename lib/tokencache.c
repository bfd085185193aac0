/*
 * tokencache.c: the token cache file shared by the processes that use one
 * credential (see tokencache.h for the format and the contract).
 *
 * The file holds live tokens, so it is trusted only when it is a regular
 * file (not a symbolic link), owned by the effective user and closed to
 * group and others; anything else is ignored with a warning and replaced
 * by the next write.  Writes go to a temp file in the same directory that
 * is renamed over the old one, so a reader sees the old or the new file,
 * never half of one.
 */
#include <config.h>

#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "api.h"
#include "log.h"
#include "tokencache.h"
#include "util.h"

#define TOKENCACHE_VERSION 1
/* Longest path handled (the lock and temp names add a suffix). */
#define TOKENCACHE_PATH_MAX 4000
/* Largest time accepted in the file, in ms: about the year 2255. */
#define TOKENCACHE_MS_MAX 9000000000000.0
/* Polling the lock: first and longest pause, in ms. */
#define TOKENCACHE_POLL_MIN_MS 2
#define TOKENCACHE_POLL_MAX_MS 50

void
podio__cached_token_clear(struct podio__cached_token *tok)
{
	if (tok == NULL)
		return;
	podio__free_secret(tok->access_token);
	podio__free_secret(tok->refresh_token);
	tok->access_token = NULL;
	tok->refresh_token = NULL;
	tok->expires_at_ms = 0;
	tok->refresh_at_ms = 0;
}

/* Overwrites every string in the tree j (tokens among them).  The depth is
 * bounded by cJSON's nesting limit. */
static void
json_wipe(cJSON *j)
{
	for (; j != NULL; j = j->next) {
		if (j->valuestring != NULL)
			podio__wipe(j->valuestring, strlen(j->valuestring));
		json_wipe(j->child);
	}
}

/* Wipes and frees a parsed or built tree; accepts NULL. */
static void
json_free_wiped(cJSON *j)
{
	if (j == NULL)
		return;
	json_wipe(j->child);
	cJSON_Delete(j);
}

/* Sleeps ms milliseconds (restarting after signals). */
static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Reads a numeric member of o that holds a wall-clock time in ms into
 * *out.  Returns 0, or -1 if it is missing, not a number or out of range.
 */
static int
json_ms(const cJSON *o, const char *name, int64_t *out)
{
	const cJSON *n = cJSON_GetObjectItemCaseSensitive(o, name);

	if (!cJSON_IsNumber(n) || !isfinite(n->valuedouble) ||
	    n->valuedouble < 0 || n->valuedouble > TOKENCACHE_MS_MAX)
		return -1;
	*out = (int64_t)n->valuedouble;
	return 0;
}

/*
 * Reads at most max bytes of fd into a new NUL-terminated buffer the caller
 * frees (with podio__free_secret: it holds tokens).  Returns 0; -1 on a read
 * error (errno set); -2 when the file holds more than max bytes.
 */
static int
read_capped(int fd, size_t max, char **out, size_t *len_out)
{
	char *buf;
	size_t len = 0;
	ssize_t n;

	*out = NULL;
	if ((buf = malloc(max + 2)) == NULL)
		return -1;
	for (;;) {
		n = read(fd, buf + len, max + 1 - len);
		if (n == -1 && errno == EINTR)
			continue;
		if (n == -1) {
			podio__wipe(buf, len);
			free(buf);
			return -1;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > max) {
			podio__wipe(buf, len);
			free(buf);
			return -2;
		}
	}
	buf[len] = '\0';
	*out = buf;
	*len_out = len;
	return 0;
}

/*
 * Checks the parsed file j against owner and fills tok.  Returns PODIO_OK,
 * or PODIO_ERR_INVALID with the reason in why.  tok is filled only on
 * success.
 */
static enum podio_err
parse_entry(const cJSON *j, const char *owner,
    struct podio__cached_token *tok, char *why, size_t whylen)
{
	const cJSON *v, *o, *a, *r;
	struct podio__cached_token t = { NULL, NULL, 0, 0, 0 };

	if (!cJSON_IsObject(j)) {
		snprintf(why, whylen, "it is not a JSON object");
		return PODIO_ERR_INVALID;
	}
	v = cJSON_GetObjectItemCaseSensitive(j, "version");
	if (!cJSON_IsNumber(v) || v->valuedouble != TOKENCACHE_VERSION) {
		snprintf(why, whylen, "its \"version\" is missing or not %d",
		    TOKENCACHE_VERSION);
		return PODIO_ERR_INVALID;
	}
	o = cJSON_GetObjectItemCaseSensitive(j, "owner");
	if (!cJSON_IsString(o) || o->valuestring == NULL) {
		snprintf(why, whylen, "its \"owner\" is missing or not a string");
		return PODIO_ERR_INVALID;
	}
	if (strcmp(o->valuestring, owner) != 0) {
		snprintf(why, whylen, "it holds tokens of another client, "
		    "account or API URL (give each credential its own "
		    "token_cache)");
		return PODIO_ERR_INVALID;
	}
	a = cJSON_GetObjectItemCaseSensitive(j, "access_token");
	if (!cJSON_IsString(a) || a->valuestring == NULL) {
		snprintf(why, whylen,
		    "its \"access_token\" is missing or not a string");
		return PODIO_ERR_INVALID;
	}
	r = cJSON_GetObjectItemCaseSensitive(j, "refresh_token");
	if (r != NULL && !cJSON_IsNull(r) &&
	    (!cJSON_IsString(r) || r->valuestring == NULL)) {
		snprintf(why, whylen,
		    "its \"refresh_token\" is neither a string nor null");
		return PODIO_ERR_INVALID;
	}
	if (json_ms(j, "expires_at", &t.expires_at_ms) == -1) {
		snprintf(why, whylen, "its \"expires_at\" is missing or not "
		    "a time in milliseconds");
		return PODIO_ERR_INVALID;
	}
	if (json_ms(j, "refresh_at", &t.refresh_at_ms) == -1) {
		snprintf(why, whylen, "its \"refresh_at\" is missing or not "
		    "a time in milliseconds");
		return PODIO_ERR_INVALID;
	}
	if (t.refresh_at_ms > t.expires_at_ms)
		t.refresh_at_ms = t.expires_at_ms;
	/* Written by later versions only; what is not an id is unknown. */
	if (podio__api_u64(cJSON_GetObjectItemCaseSensitive(j, "user_id"),
	    &t.user_id) != 0)
		t.user_id = 0;
	if ((t.access_token = strdup(a->valuestring)) == NULL)
		goto nomem;
	if (cJSON_IsString(r) && r->valuestring[0] != '\0' &&
	    (t.refresh_token = strdup(r->valuestring)) == NULL)
		goto nomem;
	*tok = t;
	return PODIO_OK;
nomem:
	podio__cached_token_clear(&t);
	snprintf(why, whylen, "out of memory");
	return PODIO_ERR_NOMEM;
}

enum podio_err
podio__tokencache_load(const char *path, const char *owner,
    struct podio__cached_token *tok, char *why, size_t whylen)
{
	enum podio_err rc = PODIO_ERR_INVALID;
	int fd = -1;
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	const char *end = NULL;
	cJSON *j = NULL;
	int r;

	tok->access_token = tok->refresh_token = NULL;
	tok->expires_at_ms = tok->refresh_at_ms = 0;
	if (whylen > 0)
		why[0] = '\0';

	/* O_NONBLOCK: a FIFO planted at path must not hang the open. */
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd == -1) {
		if (errno == ENOENT) {
			rc = PODIO_ERR_NOT_FOUND;
		} else if (errno == ELOOP) {
			snprintf(why, whylen, "it is a symbolic link");
		} else {
			snprintf(why, whylen, "it cannot be opened: %s",
			    strerror(errno));
		}
		goto fail;
	}
	if (fstat(fd, &st) == -1) {
		snprintf(why, whylen, "fstat failed: %s", strerror(errno));
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "it is not a regular file");
		goto fail;
	}
	if (st.st_uid != geteuid()) {
		snprintf(why, whylen, "it is owned by uid %lu, not by uid %lu "
		    "that runs this program", (unsigned long)st.st_uid,
		    (unsigned long)geteuid());
		goto fail;
	}
	if ((st.st_mode & 077) != 0) {
		snprintf(why, whylen, "its mode %04o lets group or others "
		    "read or write it (it must be 0600)",
		    (unsigned)(st.st_mode & 07777));
		goto fail;
	}
	if (st.st_size > PODIO__TOKENCACHE_MAX) {
		snprintf(why, whylen, "it is larger than %d bytes",
		    PODIO__TOKENCACHE_MAX);
		goto fail;
	}
	r = read_capped(fd, PODIO__TOKENCACHE_MAX, &buf, &len);
	if (r == -2) {
		snprintf(why, whylen, "it is larger than %d bytes",
		    PODIO__TOKENCACHE_MAX);
		goto fail;
	}
	if (r == -1) {
		snprintf(why, whylen, "it cannot be read: %s",
		    errno == ENOMEM ? "out of memory" : strerror(errno));
		goto fail;
	}
	if (len == 0) {
		snprintf(why, whylen, "it is empty");
		goto fail;
	}
	/* cJSON also records the error position in a static that is never
	 * read here; the end pointer tells us where parsing stopped. */
	j = cJSON_ParseWithOpts(buf, &end, 1);
	if (j == NULL || memchr(buf, '\0', len) != NULL) {
		snprintf(why, whylen, "it is not valid JSON (truncated or "
		    "corrupt near byte %ld)",
		    end != NULL && end >= buf ? (long)(end - buf) : 0L);
		goto fail;
	}
	rc = parse_entry(j, owner, tok, why, whylen);
fail:
	json_free_wiped(j);
	if (buf != NULL) {
		podio__wipe(buf, len);
		free(buf);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

enum podio_err
podio__tokencache_parse(const char *text, size_t len, const char *owner,
    struct podio__cached_token *tok, char *why, size_t whylen)
{
	enum podio_err rc;
	cJSON *j;

	tok->access_token = tok->refresh_token = NULL;
	tok->expires_at_ms = tok->refresh_at_ms = 0;
	if (whylen > 0)
		why[0] = '\0';
	if (len == 0 || len > PODIO__TOKENCACHE_MAX ||
	    memchr(text, '\0', len) != NULL ||
	    (j = cJSON_ParseWithLength(text, len)) == NULL) {
		snprintf(why, whylen, "it is not valid JSON");
		return PODIO_ERR_INVALID;
	}
	rc = parse_entry(j, owner, tok, why, whylen);
	json_free_wiped(j);
	return rc;
}

enum podio_err
podio__tokencache_read(const char *path, const char *owner,
    struct podio__cached_token *tok)
{
	char why[256];
	enum podio_err rc;

	rc = podio__tokencache_load(path, owner, tok, why, sizeof(why));
	if (rc == PODIO_ERR_INVALID || rc == PODIO_ERR_NOMEM)
		podio__warn("token cache %s ignored: %s", path, why);
	return rc;
}

/* Writes all n bytes of p to fd; 0 or -1 (errno set). */
static int
write_all(int fd, const char *p, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = write(fd, p, n);
		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			return -1;
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

/*
 * Opens the directory holding path and fsyncs it, so that a rename into
 * it is durable.  Errors are ignored: some file systems refuse to fsync a
 * directory, and the file itself is already safe.
 */
static void
fsync_dir_of(const char *path)
{
	char dir[TOKENCACHE_PATH_MAX + 1];
	char *slash;
	int fd;

	podio__strlcpy(dir, path, sizeof(dir));
	if ((slash = strrchr(dir, '/')) == NULL)
		podio__strlcpy(dir, ".", sizeof(dir));
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd == -1)
		return;
	(void)fsync(fd);
	close(fd);
}

/* Builds the file's text for tok; the caller wipes and frees it.  NULL on
 * out of memory. */
static char *
entry_text(const char *owner, const struct podio__cached_token *tok)
{
	cJSON *j;
	char *text = NULL;
	int ok;

	if ((j = cJSON_CreateObject()) == NULL)
		return NULL;
	ok = cJSON_AddNumberToObject(j, "version", TOKENCACHE_VERSION) &&
	    cJSON_AddStringToObject(j, "owner", owner) &&
	    cJSON_AddStringToObject(j, "access_token",
		tok->access_token != NULL ? tok->access_token : "") &&
	    (tok->refresh_token != NULL ?
		cJSON_AddStringToObject(j, "refresh_token",
		    tok->refresh_token) != NULL :
		cJSON_AddNullToObject(j, "refresh_token") != NULL) &&
	    cJSON_AddNumberToObject(j, "expires_at",
		(double)tok->expires_at_ms) &&
	    cJSON_AddNumberToObject(j, "refresh_at",
		(double)tok->refresh_at_ms) &&
	    (tok->user_id == 0 || cJSON_AddNumberToObject(j, "user_id",
		(double)tok->user_id) != NULL);
	if (ok)
		text = cJSON_PrintUnformatted(j);
	json_free_wiped(j);
	return text;
}

char *
podio__tokencache_text(const char *owner,
    const struct podio__cached_token *tok)
{
	return entry_text(owner, tok);
}

enum podio_err
podio__tokencache_write(const char *path, const char *owner,
    const struct podio__cached_token *tok)
{
	enum podio_err rc = PODIO_ERR_IO;
	char tmp[TOKENCACHE_PATH_MAX + 16];
	char *text = NULL;
	const char *what = "cannot build it";
	int fd = -1, saved = 0, have_tmp = 0;

	if (strlen(path) > TOKENCACHE_PATH_MAX) {
		podio__warn("token cache %.64s...: path too long", path);
		return PODIO_ERR_IO;
	}
	if ((text = entry_text(owner, tok)) == NULL) {
		saved = ENOMEM;
		goto fail;
	}
	/* mkostemp opens with O_EXCL and mode 0600; the fchmod makes the mode
	 * independent of how the C library does that. */
	snprintf(tmp, sizeof(tmp), "%s.XXXXXX", path);
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		what = "cannot create a temp file beside it";
		saved = errno;
		goto fail;
	}
	have_tmp = 1;
	if (fchmod(fd, 0600) == -1) {
		what = "fchmod failed";
		saved = errno;
		goto fail;
	}
	if (write_all(fd, text, strlen(text)) == -1 ||
	    write_all(fd, "\n", 1) == -1) {
		what = "write failed";
		saved = errno;
		goto fail;
	}
	if (fsync(fd) == -1) {
		what = "fsync failed";
		saved = errno;
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		what = "close failed";
		saved = errno;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1) {
		what = "rename failed";
		saved = errno;
		goto fail;
	}
	have_tmp = 0;
	fsync_dir_of(path);
	rc = PODIO_OK;
fail:
	if (rc != PODIO_OK)
		podio__warn("cannot write the token cache %s: %s: %s", path,
		    what, strerror(saved));
	if (fd != -1)
		close(fd);
	if (have_tmp)
		(void)unlink(tmp);
	podio__free_secret(text);
	return rc;
}

/*
 * Opens PATH.lock and takes its flock, polling with LOCK_NB for at most
 * timeout_ms (0: one try), so a holder that never lets go cannot stall us
 * for longer.  No signals or alarms are used, which keeps this safe in
 * threaded programs.  quiet: do not warn when the wait times out.
 * Returns the fd or -1.
 */
static int
lock_path(const char *path, long timeout_ms, int quiet)
{
	char lpath[TOKENCACHE_PATH_MAX + 8];
	struct stat st;
	int64_t deadline, now;
	long pause = TOKENCACHE_POLL_MIN_MS;
	int fd;

	if (strlen(path) > TOKENCACHE_PATH_MAX) {
		podio__warn("token cache %.64s...: path too long", path);
		return -1;
	}
	snprintf(lpath, sizeof(lpath), "%s.lock", path);
	fd = open(lpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0600);
	if (fd == -1) {
		podio__warn("cannot open the token cache lock %s: %s", lpath,
		    strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) == -1 || !S_ISREG(st.st_mode)) {
		podio__warn("token cache lock %s is not a regular file", lpath);
		close(fd);
		return -1;
	}
	if (timeout_ms < 0)
		timeout_ms = 0;
	deadline = podio__now_ms() + timeout_ms;
	for (;;) {
		if (flock(fd, LOCK_EX | LOCK_NB) == 0)
			return fd;
		if (errno == EINTR)
			continue;
		if (errno != EWOULDBLOCK) {
			podio__warn("cannot lock %s: %s", lpath,
			    strerror(errno));
			break;
		}
		now = podio__now_ms();
		if (now >= deadline) {
			if (!quiet)
				podio__warn("gave up waiting %ld ms for the "
				    "token cache lock %s; going on without it",
				    timeout_ms, lpath);
			break;
		}
		sleep_ms(pause < deadline - now ? pause :
		    (long)(deadline - now));
		if (pause < TOKENCACHE_POLL_MAX_MS)
			pause *= 2;
		if (pause > TOKENCACHE_POLL_MAX_MS)
			pause = TOKENCACHE_POLL_MAX_MS;
	}
	close(fd);
	return -1;
}

int
podio__tokencache_lock(const char *path, long timeout_ms)
{
	return lock_path(path, timeout_ms, 0);
}

void
podio__tokencache_unlock(int fd)
{
	if (fd < 0)
		return;
	(void)flock(fd, LOCK_UN);
	close(fd);
}

void
podio__tokencache_drop(const char *path, const char *owner,
    const char *access_token)
{
	struct podio__cached_token tok = { NULL, NULL, 0, 0, 0 };
	char why[256];
	int fd;

	if (access_token == NULL || access_token[0] == '\0')
		return;
	if ((fd = lock_path(path, 0, 1)) == -1)
		return;
	if (podio__tokencache_load(path, owner, &tok, why, sizeof(why)) !=
	    PODIO_OK)
		goto fail;
	if (tok.access_token == NULL ||
	    strcmp(tok.access_token, access_token) != 0)
		goto fail;
	podio__free_secret(tok.access_token);
	tok.access_token = NULL;
	tok.expires_at_ms = 0;
	tok.refresh_at_ms = 0;
	(void)podio__tokencache_write(path, owner, &tok);
fail:
	podio__cached_token_clear(&tok);
	podio__tokencache_unlock(fd);
}

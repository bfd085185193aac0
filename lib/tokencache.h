/*
 * tokencache.h: the token cache file shared by processes (CGI runs one
 * process per request).  JSON with the owner key (client_id and app id or
 * username, never a secret), access_token, refresh_token and expiry.
 * Written atomically (temp file in the same directory, fsync, rename,
 * mode 0600).  A lock file beside it (PATH.lock, flock) serialises token
 * requests between processes; the kernel drops a flock when its holder
 * dies, so a killed holder never stalls the others.  Internal.
 *
 * The file:
 *   {"version":1,"owner":"...","access_token":"...","refresh_token":"...",
 *    "expires_at":MS,"refresh_at":MS,"user_id":N}
 * refresh_token may be null; user_id (the password flow's user, as the
 * token answer named it) is left out when unknown; access_token is "" (with expires_at 0) once
 * the token was dropped, so the refresh token stays available.
 */
#ifndef PODIO_TOKENCACHE_H
#define PODIO_TOKENCACHE_H

#include <stddef.h>
#include <stdint.h>
#include "podio.h"

/* The largest cache file read; a bigger one is ignored. */
#define PODIO__TOKENCACHE_MAX (16 * 1024)

struct podio__cached_token {
	char *access_token;
	char *refresh_token;   /* may be NULL */
	int64_t expires_at_ms; /* wall clock, ms since the epoch */
	int64_t refresh_at_ms; /* wall clock: renew from this time on */
	uint64_t user_id;      /* the user the tokens act as (the token
	                          answer's "ref"), 0 when unknown */
};
/* Wipes and frees the strings.  Accepts NULL. */
void podio__cached_token_clear(struct podio__cached_token *tok);

/*
 * Reads the cache at path for owner.  Returns PODIO_OK and fills tok when a
 * usable entry is there; PODIO_ERR_NOT_FOUND when there is no file;
 * PODIO_ERR_INVALID when the file is ignored: another owner, truncated or
 * corrupt, owned by another user, or readable or writable by group or
 * others.  Every ignored file is reported once with a warning naming the
 * path and the reason.
 */
enum podio_err podio__tokencache_read(const char *path, const char *owner,
    struct podio__cached_token *tok);

/*
 * As podio__tokencache_read() but silent: when the file is ignored
 * (PODIO_ERR_INVALID) why (size whylen) receives the reason, one line
 * without the path and never a token, so the caller can warn once per
 * reason.  tok is left empty unless PODIO_OK is returned; the caller
 * clears it with podio__cached_token_clear().
 */
enum podio_err podio__tokencache_load(const char *path, const char *owner,
    struct podio__cached_token *tok, char *why, size_t whylen);

/*
 * The same entry as text, for a store other than a file (the PostgreSQL
 * spool's tokens): _text builds it (the caller wipes and frees it; NULL
 * on out of memory), _parse reads len bytes of it for owner as
 * podio__tokencache_load() reads a file.
 */
char *podio__tokencache_text(const char *owner,
    const struct podio__cached_token *tok);
enum podio_err podio__tokencache_parse(const char *text, size_t len,
    const char *owner, struct podio__cached_token *tok, char *why,
    size_t whylen);

/* Writes tok for owner atomically with mode 0600.  PODIO_ERR_IO on
 * failure (warned, not fatal for callers). */
enum podio_err podio__tokencache_write(const char *path, const char *owner,
    const struct podio__cached_token *tok);

/*
 * Removes the entry if it still holds access_token (for invalidation):
 * rewrites the file with an empty access token, keeping the refresh
 * token.  Takes the lock itself without waiting; when another process
 * holds it, that process is fetching a new token and will replace the
 * entry anyway, so nothing is done.  The caller must not hold the lock.
 */
void podio__tokencache_drop(const char *path, const char *owner,
    const char *access_token);

/*
 * Takes the exclusive lock for path (opening or creating PATH.lock, mode
 * 0600), waiting at most timeout_ms.  Returns the lock fd (>= 0), or -1 if
 * the lock could not be had (the caller proceeds without it, warned).
 */
int podio__tokencache_lock(const char *path, long timeout_ms);
void podio__tokencache_unlock(int fd);

#endif

/*
 * tokencache.h: the token cache file shared by processes (CGI runs one
 * process per request).  JSON with the owner key (client_id and app id or
 * username, never a secret), access_token, refresh_token and expiry.
 * Written atomically (temp file in the same directory, fsync, rename,
 * mode 0600).  A lock file beside it (PATH.lock, flock) serialises token
 * requests between processes; the kernel drops a flock when its holder
 * dies, so a killed holder never stalls the others.  Internal.
 */
#ifndef PODIO_TOKENCACHE_H
#define PODIO_TOKENCACHE_H

#include <stdint.h>
#include "podio.h"

struct podio__cached_token {
	char *access_token;
	char *refresh_token;   /* may be NULL */
	int64_t expires_at_ms; /* wall clock, ms since the epoch */
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

/* Writes tok for owner atomically with mode 0600.  PODIO_ERR_IO on
 * failure (warned, not fatal for callers). */
enum podio_err podio__tokencache_write(const char *path, const char *owner,
    const struct podio__cached_token *tok);

/* Removes the entry if it still holds access_token (for invalidation). */
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

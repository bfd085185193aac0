/*
 * log.h: internal logging shortcuts over podio_log() (see podio.h).
 */
#ifndef PODIO_LOG_H
#define PODIO_LOG_H

#include "podio.h"

#define podio__err(...)   podio_log(PODIO_LOG_ERROR, __VA_ARGS__)
#define podio__warn(...)  podio_log(PODIO_LOG_WARN, __VA_ARGS__)
#define podio__info(...)  podio_log(PODIO_LOG_INFO, __VA_ARGS__)
#define podio__debug(...) podio_log(PODIO_LOG_DEBUG, __VA_ARGS__)

/*
 * Lines logged by this thread between podio__log_hold() and
 * podio__log_release() are kept and written together (in writes of at
 * most PIPE_BUF bytes, each whole lines) when the buffer is full and at
 * the release; syslog gets its messages at once.  For a thread that logs
 * many lines in a burst, such as one per request it finishes.
 * podio__log_flush() writes what is held now and goes on holding: before
 * work that may take long (a callback), so that no line waits for it.
 */
void podio__log_hold(void);
void podio__log_flush(void);
void podio__log_release(void);

/*
 * Opens the file of a "file:PATH" target again by its path, so that the
 * lines after a rotation (the file renamed away) go to a new file at
 * PATH; the old descriptor is closed once the new one is in place.  Does
 * nothing for stderr and syslog.  Returns PODIO_OK, or PODIO_ERR_IO with
 * errno set when the file cannot be opened (the old one stays in use).
 */
enum podio_err podio__log_reopen(void);

#endif

/*
 * callback.h: running the user's callbacks for one event: C functions
 * registered by an embedding program, and the configuration's rule lines
 * "on PATTERN = COMMAND [ARG...]" (run a command) and
 * "log PATTERN = FILE" (append the event as one JSON line).
 *
 * The first part is public (it moves into podio.h as is); the second part
 * is internal to the library.
 */
#ifndef PODIO_CALLBACK_H
#define PODIO_CALLBACK_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/* The public part of this module is declared in podio.h. */

/* ----------------------------------------------------- internal: callbacks */

/* Whether pattern (as described above) matches type: 1 or 0. */
int podio__callback_match(const char *pattern, const char *type);

/* Whether pattern is acceptable: "*", or [a-z0-9_.-]{1,64} optionally
 * followed by ".*".  1 or 0. */
int podio__callback_pattern_ok(const char *pattern);

/*
 * Makes in (n bytes, any content) one line of printable text in out (size
 * outlen, always terminated): valid UTF-8 is kept, control characters and
 * runs of white space become one space, other bytes '?', and white space
 * at both ends goes; continuation bytes at the start (of a tail cut in the
 * middle of a character) are dropped; "..." is put in front when cut is
 * set.  Returns out.
 */
char *podio__callback_oneline(const char *in, size_t n, int cut, char *out,
    size_t outlen);

#endif

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

/* ------------------------------------------------------- public: callbacks */

/*
 * A registry of callbacks.  Each entry has a PATTERN: an exact event type
 * ("item.create"), a prefix followed by ".*" ("item.*" matches "item."
 * followed by anything, not "item" itself), or "*" (every type).
 *
 * For one event every matching entry runs, one after the other, in this
 * order: first the C functions in the order they were registered, then
 * the commands and logs in the order they were added (for
 * podio_callbacks_add_rules(): the configuration's file order).  A failing
 * entry does not stop the ones after it.
 *
 * Register everything before the first podio_callbacks_run(); after that
 * the registry is only read, and any number of threads may run events
 * through it at once.
 */
struct podio_callbacks;

/*
 * A C callback.  type is the event type, event_json the event (len bytes,
 * see podio_event_json(); NUL-terminated when the caller's text is),
 * userdata as registered.  Returns 0 on success, anything else on failure.
 */
typedef int (*podio_callback_fn)(const char *type, const char *event_json,
    size_t len, void *userdata);

/*
 * The same, with room for a reason: on failure the function may write a
 * message (NUL-terminated, at most msglen bytes with the NUL) into msg;
 * it shows in the report and in the log, cut to one line.  msg starts
 * empty.
 */
typedef int (*podio_callback_msg_fn)(const char *type, const char *event_json,
    size_t len, char *msg, size_t msglen, void *userdata);

/*
 * A new empty registry; NULL on out of memory.  It keeps LANG and TZ of
 * the environment as they are now, for the commands it starts.  The caller
 * frees it with podio_callbacks_free().
 */
struct podio_callbacks *podio_callbacks_new(void);
/* Frees reg (wiping the commands' arguments, which may carry tokens).
 * Accepts NULL. */
void podio_callbacks_free(struct podio_callbacks *reg);

/*
 * Registers fn for pattern.  pattern is copied; userdata is borrowed and
 * passed to fn as is.  Fails with PODIO_ERR_INVALID (a bad pattern, no
 * function, too many entries) or PODIO_ERR_NOMEM.
 */
enum podio_err podio_callbacks_on(struct podio_callbacks *reg,
    const char *pattern, podio_callback_fn fn, void *userdata);
enum podio_err podio_callbacks_on_msg(struct podio_callbacks *reg,
    const char *pattern, podio_callback_msg_fn fn, void *userdata);

/*
 * Adds a command: argv (NULL-terminated, argv[0] an absolute path) is
 * copied.  The command runs with execve semantics, no shell: every
 * argument reaches it as is.  Fails with PODIO_ERR_INVALID or
 * PODIO_ERR_NOMEM.
 */
enum podio_err podio_callbacks_add_command(struct podio_callbacks *reg,
    const char *pattern, char *const *argv);
/* Adds a JSON-lines log: path (absolute) is copied. */
enum podio_err podio_callbacks_add_log(struct podio_callbacks *reg,
    const char *pattern, const char *path);

/*
 * Appends every "on" and "log" rule line of cfg, in file order (copied:
 * cfg may be freed after).  On failure (PODIO_ERR_INVALID for a rule the
 * registry refuses, PODIO_ERR_NOMEM) nothing is added.
 */
enum podio_err podio_callbacks_add_rules(struct podio_callbacks *reg,
    const struct podio_config *cfg);

/* How many entries match type (0 for a NULL registry or type). */
size_t podio_callbacks_count_matching(const struct podio_callbacks *reg,
    const char *type);

/* The ids a command sees in its environment (PODIO_HOOK_ID,
 * PODIO_ITEM_ID), each only when its has_ flag is set. */
struct podio_callback_ids {
	int has_hook_id;
	uint64_t hook_id;
	int has_item_id;
	uint64_t item_id;
};

enum podio_callback_kind {
	PODIO_CALLBACK_FUNCTION,
	PODIO_CALLBACK_COMMAND,
	PODIO_CALLBACK_LOG
};

enum podio_callback_outcome {
	PODIO_CALLBACK_OK = 0,
	PODIO_CALLBACK_FAILED,       /* a function returned status != 0 */
	PODIO_CALLBACK_EXIT,         /* a command exited with status != 0 */
	PODIO_CALLBACK_SIGNAL,       /* a command was killed by signal status */
	PODIO_CALLBACK_TIMEOUT,      /* a command outlived the timeout and was
	                                killed with its process group */
	PODIO_CALLBACK_NOSTART,      /* a command could not start (status =
	                                errno) */
	PODIO_CALLBACK_WRITE_FAILED  /* a log could not be written (status =
	                                errno) */
};

/* The bytes of a command's stderr kept for its report: the last ones. */
#define PODIO_CALLBACK_TAIL 1024
/* Size of podio_callback_result.detail: the tail made one line, "..."
 * in front when it was cut, and the NUL. */
#define PODIO_CALLBACK_DETAIL_MAX (PODIO_CALLBACK_TAIL + 8)

/* What one callback did.  The strings are owned by the report. */
struct podio_callback_result {
	enum podio_callback_kind kind;
	const char *pattern;
	const char *target;        /* the command (argv[0] only: arguments may
	                              carry tokens), the log file, or NULL for
	                              a function */
	const char *file;          /* configuration file and line of a rule,  */
	int line;                  /* NULL and 0 otherwise                     */
	enum podio_callback_outcome outcome;
	int status;                /* see enum podio_callback_outcome; 0 if ok */
	int64_t duration_ms;
	/* One line of printable text, possibly empty: the end of a command's
	 * stderr (on success too), a function's message, or the system's
	 * reason for NOSTART and WRITE_FAILED. */
	char detail[PODIO_CALLBACK_DETAIL_MAX];
};

/* Every callback that ran for one event, in the order they ran. */
struct podio_callback_report {
	size_t n;
	size_t failed;             /* how many did not succeed */
	struct podio_callback_result *results;
};

/* Frees a report.  Accepts NULL. */
void podio_callback_report_free(struct podio_callback_report *report);

/*
 * Runs every entry of reg matching type for one event (event_json, len
 * bytes, one line of JSON), in the order described above.
 * - Functions are called in the calling thread.
 * - Commands get the event on stdin, stdout connected to /dev/null, stderr
 *   read (its tail kept), only fds 0-2 open, their own process group, and
 *   the environment PATH=/usr/local/bin:/usr/bin:/bin, LANG (as it was
 *   when reg was made, else C.UTF-8), TZ (if it was set), PODIO_EVENT_TYPE,
 *   and PODIO_HOOK_ID and PODIO_ITEM_ID from ids (may be NULL) - nothing
 *   else.  A command that does not read its stdin is fine.  When the
 *   command exits, whatever is left of its process group is killed; when
 *   it is still running after timeout_ms (<= 0: no limit), the whole group
 *   is killed.  Exit status 0 is success.
 * - Logs get the event plus a newline appended to their file under an
 *   exclusive flock(), opened anew for each event (rotation by rename
 *   needs no signal).
 * Each failure is logged (warn) with the detail of its result; never the
 * event or a command's arguments.
 *
 * *report (if report is not NULL) receives what ran, which the caller
 * frees with podio_callback_report_free(), also on PODIO_ERR_IO.
 * Returns PODIO_OK when every matching callback succeeded (or none
 * matched), PODIO_ERR_IO when at least one failed, PODIO_ERR_INVALID (no
 * registry, type or event) or PODIO_ERR_NOMEM; with these two nothing ran
 * and *report is NULL.
 */
enum podio_err podio_callbacks_run(const struct podio_callbacks *reg,
    const char *type, const struct podio_callback_ids *ids,
    const char *event_json, size_t len, int64_t timeout_ms,
    struct podio_callback_report **report);

/* "ok", "failed", "exit", "signal", "timeout", "nostart", "write failed";
 * static. */
const char *podio_callback_outcome_name(enum podio_callback_outcome outcome);

/*
 * Writes one line describing r into buf (size n, always terminated,
 * cut if needed), e.g.
 *   "on item.* /usr/local/bin/notify (/etc/podio-webhook.conf:12): exit
 *    status 3, 15 ms: cannot reach the mail server"
 * Returns buf.
 */
char *podio_callback_result_format(const struct podio_callback_result *r,
    char *buf, size_t n);

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

/*
 * process.h: events out of the spool.  The request path only stores an
 * accepted event (lib/spool_append.c) and answers; everything after
 * that - the item fetch, the event JSON with the item, the callbacks -
 * happens here, apart from the request: in the FastCGI server's
 * processor threads, in a CGI process after it answered, and in
 * `podio-webhook spool drain`.
 *
 * An event that succeeds is removed.  One whose callbacks fail is tried
 * again later with exponential backoff and jitter, and after retry_max
 * tries it is set aside as a dead letter with the reason.  Podio being
 * unreachable, rate limited (420: the wait it names) or failing with 5xx
 * is not the event's fault: such an event is retried without using up
 * its tries; a retry runs only the callbacks that failed.
 *
 * The API budget is shared through the spool by every process using it:
 * a 420 pauses the calls of the credential and rate class (the filter
 * endpoint has its own) for the wait Podio names, and when Podio's
 * X-Rate-Limit-Remaining falls to rate_reserve no background fetch is
 * made (hook.verify and the command line keep the reserve).  The events
 * of one item wait for coalesce_window without a new one (at most
 * coalesce_max), then one fetch serves them all; two or more items of
 * an app due together are fetched with one filter call.
 */
#ifndef PODIO_HANDLER_PROCESS_H
#define PODIO_HANDLER_PROCESS_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "spool.h"
#include "process_spool.h"
#include "runtime.h"

/* What process_one() did. */
enum process_outcome {
	PROCESS_IDLE = 0,   /* nothing was due */
	PROCESS_DONE,       /* an event succeeded and was removed */
	PROCESS_RETRY,      /* an event failed and waits for another try */
	PROCESS_DEAD,       /* an event was set aside as a dead letter */
	PROCESS_ERROR       /* the spool failed (logged) */
};

/* How many events a drain handled, by outcome. */
struct process_counts {
	size_t full_takes;  /* takes that got as many units as allowed */
	size_t done;
	size_t retry;
	size_t dead;
	size_t errors;
	size_t self_skipped; /* of done: settled without callbacks, by_self
	                        with skip_self */
};

/*
 * Takes the next due work of spool - the due events of one item, with
 * the other due items of its app when they can share a fetch, or one
 * event without an item - and handles it with rt and client (the calling
 * thread's): the fetch, the callbacks, then done, fail or dead as
 * described at the top.  Logs one line per event and adds each event's
 * outcome to counts (may be NULL).  Returns PROCESS_IDLE when nothing
 * was due, PROCESS_ERROR when the spool failed, else the outcome of most
 * weight.
 */
enum process_outcome process_one(struct runtime *rt,
    struct podio_client *client, struct podio_spool *spool,
    struct process_counts *counts);

/* How long after it is stored delivery d's event may become due at the
 * earliest (ms): its settle window for an item event, else 0. */
int64_t process_due_after(const struct runtime *rt,
    const struct podio_delivery *d);

/* When something of spool becomes due for rt's settle window (ms since
 * the epoch; a past time means now), 0 when nothing waits, -1 when the
 * spool cannot be read. */
int64_t process_next_due(const struct runtime *rt, struct podio_spool *spool);

/*
 * Handles due events until none is due, deadline_ms (wall clock, ms since
 * the epoch; 0: none) has passed (one take is made whatever the
 * deadline), or ps (may be NULL) is stopping.  With
 * a deadline (a CGI process's budget), items in their settle window are
 * waited for when it ends before the deadline, else taken at once;
 * without one (`spool drain`), everything pending is taken at once,
 * settled or not.
 * Adds what happened to *counts.  Returns 0, or -1 when the spool failed.
 */
int process_drain(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int64_t deadline_ms,
    struct process_spool *ps, struct process_counts *counts);

/* Milliseconds since the epoch (the spool's clock). */
int64_t process_now_ms(void);

#endif

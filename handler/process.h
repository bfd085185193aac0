/*
 * process.h: events out of the spool.  The request path only stores an
 * accepted event (lib/spool.c) and answers; everything after that - the
 * item fetch, the event JSON with the item, the callbacks - happens here,
 * apart from the request: in the FastCGI server's processor threads, in a
 * CGI process after it answered, and in `podio-webhook spool drain`.
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
#include "runtime.h"

/*
 * The spool of one process: one handle shared by its threads (opened on
 * first use, so a spool that cannot be opened now may be later), and
 * the wake-up of the processor threads when this process stored an
 * event.  Thread-safe.
 */
struct process_spool;

/* A new, unopened spool holder; NULL on out of memory.  The caller frees
 * it with process_spool_free(). */
struct process_spool *process_spool_new(void);

/* Closes the spool and frees ps.  No thread may still use it.  Accepts
 * NULL. */
void process_spool_free(struct process_spool *ps);

/*
 * The spool handle, opened on dir the first time (later calls return the
 * same handle whatever dir they name: a new spool_dir takes a restart).
 * Borrowed from ps.  NULL when it cannot be opened, with the reason in
 * err (size errlen).
 */
struct podio_spool *process_spool_get(struct process_spool *ps,
    const char *dir, char *err, size_t errlen);

/* Tells the processors waiting in process_spool_wait() that an event was
 * stored: one of them is woken, unless one already was and has not
 * taken events yet. */
void process_spool_notify(struct process_spool *ps);
/* The count of notifications so far: read it before looking for work,
 * and pass it to process_spool_wait(), so that a notification in between
 * is never missed. */
uint64_t process_spool_generation(struct process_spool *ps);
/* Why process_spool_wait() returned. */
enum process_wake {
	PROCESS_WAKE_TIMEOUT = 0,  /* ms passed */
	PROCESS_WAKE_STOP,         /* process_spool_stop() */
	PROCESS_WAKE_NEWS,         /* a notification after gen: the caller
	                              counts as woken for news until it calls
	                              process_spool_taking() */
	PROCESS_WAKE_MORE          /* process_spool_help() */
};
/* Waits until a notification after generation gen, a call of
 * process_spool_help(), process_spool_stop(), or ms milliseconds. */
enum process_wake process_spool_wait(struct process_spool *ps, uint64_t gen,
    int64_t ms);
/* Waits ms milliseconds (notifications do not end it) unless stopping,
 * so that a burst of events is taken together.  Returns 1 when
 * stopping, else 0. */
int process_spool_gather(struct process_spool *ps, int64_t ms);
/* Said by a processor woken for news right before it takes events. */
void process_spool_taking(struct process_spool *ps);
/* Wakes one more waiting processor: the caller took as many events as
 * one take may, so more are likely due. */
void process_spool_help(struct process_spool *ps);
/* Tells every waiter and processor to stop after the event in hand. */
void process_spool_stop(struct process_spool *ps);

/* Whether process_spool_stop() was called. */
int process_spool_stopping(struct process_spool *ps);

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

/* When something of spool becomes due for rt's settle window (ms since
 * the epoch; a past time means now), 0 when nothing waits, -1 when the
 * spool cannot be read. */
int64_t process_next_due(const struct runtime *rt, struct podio_spool *spool);

/* Records in spool (may be NULL) what client's last call - a hook.verify
 * answered in a request, rc its result - tells of the API budget. */
void process_note_verify(const struct runtime *rt, struct podio_spool *spool,
    struct podio_client *client, enum podio_err rc);

/*
 * Handles due events until none is due, deadline_ms (wall clock, ms since
 * the epoch; 0: none) has passed, or ps (may be NULL) is stopping.  With
 * a deadline (a CGI process's budget), items in their settle window are
 * waited for when it ends before the deadline, else taken at once;
 * without one (`spool drain`), everything pending is taken at once,
 * settled or not.
 * Adds what happened to *counts.  Returns 0, or -1 when the spool failed.
 */
int process_drain(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int64_t deadline_ms,
    struct process_spool *ps, struct process_counts *counts);

/* The API budget as the processors using spool see it for cfg's
 * credentials, for `spool status`. */
struct process_budget {
	int64_t paused_until_ms;   /* end of a 420 pause, 0 when none */
	long remaining;            /* X-Rate-Limit-Remaining seen within the
	                              hour, -1 when none */
	long limit;                /* X-Rate-Limit-Limit with it, or -1 */
	int64_t seen_ms;           /* when it was seen, 0 when not */
};
/* Fills *b for the general rate class, or the filter's (filter 1). */
void process_budget(const struct podio_config *cfg, struct podio_spool *spool,
    int filter, struct process_budget *b);

/* Milliseconds since the epoch (the spool's clock). */
int64_t process_now_ms(void);

#endif

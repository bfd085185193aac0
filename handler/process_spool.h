/*
 * process_spool.h: the spool of one process, shared by its threads, and
 * the wake-up of the processor threads (see process.h) when a request of
 * this process stored an event.
 */
#ifndef PODIO_HANDLER_PROCESS_SPOOL_H
#define PODIO_HANDLER_PROCESS_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "spool.h"

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
 * Makes ps a one-shot process's (a CGI run's): its appends go to the
 * spool's intake (podio_spool_open_intake()), which a process of one
 * request opens at a small part of the spool's cost.  Call before the
 * first process_spool_append_handle().
 */
void process_spool_set_oneshot(struct process_spool *ps);

/*
 * The handle to append to: process_spool_get()'s, or for a one-shot
 * process (process_spool_set_oneshot()) the intake's, opened on dir the
 * first time.  Borrowed from ps; NULL when it cannot be opened, with the
 * reason in err (size errlen).
 */
struct podio_spool *process_spool_append_handle(struct process_spool *ps,
    const char *dir, char *err, size_t errlen);

/*
 * The spool handle, opened on dir the first time (later calls return the
 * same handle whatever dir they name: a new spool_dir takes a restart).
 * Borrowed from ps.  NULL when it cannot be opened, with the reason in
 * err (size errlen).
 */
struct podio_spool *process_spool_get(struct process_spool *ps,
    const char *dir, char *err, size_t errlen);

/*
 * Tells the processors waiting in process_spool_wait() that an event was
 * stored, due later_ms from now at the earliest (0: at once; an item
 * event waits for its settle window).  An event due at once wakes one of
 * them, unless one already was and has not taken events yet; an event
 * due later wakes nobody before its time.
 */
void process_spool_notify(struct process_spool *ps, int64_t later_ms);
/* The count of notifications so far and when it was read (the monotonic
 * clock): read it before looking for work, and pass it to
 * process_spool_wait(), so that a notification in between is never
 * missed. */
struct process_gen {
	uint64_t gen;
	int64_t at_ms;
};
struct process_gen process_spool_generation(struct process_spool *ps);
/* Why process_spool_wait() returned. */
enum process_wake {
	PROCESS_WAKE_TIMEOUT = 0,  /* ms passed, nothing was stored */
	PROCESS_WAKE_STOP,         /* process_spool_stop() */
	PROCESS_WAKE_NEWS,         /* an event stored after g is due (or
	                              may be): the caller counts as woken
	                              for news until it calls
	                              process_spool_taking() */
	PROCESS_WAKE_MORE          /* process_spool_help() */
};
/* Waits until an event stored after g is due (at once, or at the
 * earliest moment it may be), a call of process_spool_help(),
 * process_spool_stop(), or ms milliseconds. */
enum process_wake process_spool_wait(struct process_spool *ps,
    struct process_gen g, int64_t ms);
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

#endif

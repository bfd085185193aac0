/*
 * metrics.h: the counters of a FastCGI server, for `serve
 * --metrics-listen` (metrics_http.h serves them), and the page of the
 * Prometheus text format (version 0.0.4) made of them and of what the
 * spool shows at that moment.
 *
 * The counters belong to one process and are counted where the thing
 * happens, one call each: a request answered (request.c, the reader), an
 * event stored, a processor's outcomes (server.c), an API call (the
 * observer every client of the runtime gets, runtime.c).  They are C11
 * atomics with relaxed order: a few nanoseconds on the request path, no
 * lock.  The spool's state (the events by state, the age of the oldest,
 * the API pauses and the outage, the rate limit left) is read from the
 * spool when the page is made, so it is what every process sharing the
 * spool sees.
 *
 * Every function accepts a NULL struct metrics and then does nothing:
 * a process without metrics (CGI, the command line) counts nothing.
 */
#ifndef PODIO_HANDLER_METRICS_H
#define PODIO_HANDLER_METRICS_H

#include <stddef.h>

#include "podio.h"

struct metrics;
struct process_counts;
struct runtime;

/* New counters, all 0; NULL on out of memory.  Freed with
 * metrics_free(). */
struct metrics *metrics_new(void);
/* Frees m and closes its spool handle.  Accepts NULL. */
void metrics_free(struct metrics *m);

/*
 * A webhook request answered with HTTP status (or dropped: 408).  type
 * is the accepted delivery's type, or NULL when the request was refused
 * before a delivery was made of it (its type unknown or not trusted).
 * Types outside the list Podio documents count as "other", so that no
 * sender can make the label set grow.
 */
void metrics_delivery(struct metrics *m, const char *type, int status);

/* An event made durable in the spool and acknowledged: a new one, or a
 * duplicate of one stored before (duplicate 1). */
void metrics_acked(struct metrics *m, int duplicate);

/* What a processor's run of events did: counts->done, retry and dead
 * are added to the events processed, retried and dead. */
void metrics_processed(struct metrics *m,
    const struct process_counts *counts);

/* The observer of every client (podio_client_set_observer(), arg the
 * struct metrics): counts the call by endpoint class and status. */
void metrics_api_call(const struct podio_call_note *note, void *arg);

/*
 * The page: every counter, and the spool's state read now through m's
 * own handle on rt's spool (opened on first use and again when the
 * spool named changed; a spool that cannot be read gives
 * podio_webhook_spool_up 0 and none of its series).  *out receives the
 * text (the caller frees it) and *len its length.  Only one thread may
 * make pages (the metrics thread).  Returns 0, or -1 on out of memory.
 */
int metrics_render(struct metrics *m, const struct runtime *rt, char **out,
    size_t *len);

#endif

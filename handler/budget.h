/*
 * budget.h: the API budget, shared through the spool by every process
 * using it.  A 420 pauses the calls of the credential and rate class (the
 * filter endpoint has its own) for the wait Podio names; the last
 * X-Rate-Limit-Remaining seen is kept, and background calls stop while
 * it is at or below the reserve (rate_reserve).  The processors ask
 * budget_gate() before each call and tell budget_note_call() its result;
 * a hook.verify answered in a request counts too (budget_note_verify()).
 */
#ifndef PODIO_HANDLER_BUDGET_H
#define PODIO_HANDLER_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"
#include "spool.h"
#include "runtime.h"

/* The rate classes: every call but the filter, and the filter (an
 * operation Podio limits to a quarter of the others). */
#define BUDGET_CLASS           "default"
#define BUDGET_FILTER_CLASS    "filter"
/* The wait after a 420 that names none. */
#define BUDGET_RATE_WAIT_MS    (300 * 1000)
/* Podio's rate-limit window, whose reset time it does not tell. */
#define BUDGET_HOUR_MS         (3600 * 1000)
/* The longest pause a wait Podio names sets (whatever it names). */
#define BUDGET_WAIT_MAX_MS     BUDGET_HOUR_MS

/*
 * The credential the rate limits of cfg's calls belong to: client id,
 * API URL, and app or user (never a secret), into buf (size n; cut to
 * the spool's key size, PODIO_SPOOL_MAX_KEY).
 */
void budget_cred(const struct podio_config *cfg, char *buf, size_t n);

/*
 * Whether background calls of rate class cls may be made now.  Returns 0
 * when they may, else the time (ms since the epoch) until which they
 * wait, with why (size whylen) saying so: a 420 pause set by any process
 * sharing the spool, or the last X-Rate-Limit-Remaining seen within the
 * hour at or below reserve (0: no reserve).  The limit window of Podio is
 * an hour whose reset time is not exposed, so a low count counts for an
 * hour at most (the time returned); each call seen since (a hook.verify,
 * another process) replaces it, so callers look again now and then.
 * A spool that cannot be read lets the call go: the API's own 420 still
 * stops it.
 */
int64_t budget_gate(struct podio_spool *spool, const char *cred,
    const char *cls, long reserve, char *why, size_t whylen);

/* Records in spool what the last call of client (rate class cls, library
 * result rc) tells of the budget: the remaining count, and a 420's
 * pause. */
void budget_note_call(struct podio_spool *spool, struct podio_client *client,
    const char *cred, const char *cls, enum podio_err rc);

/* Records in spool (may be NULL) what client's last call - a hook.verify
 * answered in a request, rc its result - tells of the API budget. */
void budget_note_verify(const struct runtime *rt, struct podio_spool *spool,
    struct podio_client *client, enum podio_err rc);

/* The API budget as the processors using spool see it for cfg's
 * credentials, for `spool status`. */
struct budget {
	int64_t paused_until_ms;   /* end of a 420 pause, 0 when none */
	long remaining;            /* X-Rate-Limit-Remaining seen within the
	                              hour, -1 when none */
	long limit;                /* X-Rate-Limit-Limit with it, or -1 */
	int64_t seen_ms;           /* when it was seen, 0 when not */
};
/* Fills *b for the general rate class, or the filter's (filter 1). */
void budget_read(const struct podio_config *cfg, struct podio_spool *spool,
    int filter, struct budget *b);

#endif

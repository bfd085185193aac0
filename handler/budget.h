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
/* The first interval between the probes of an outage, and the longest
 * (each failed probe doubles it; jitter lengthens it by 0-20%). */
#define BUDGET_PROBE_BASE_MS   (2 * 1000)
#define BUDGET_PROBE_MAX_MS    (120 * 1000)

/*
 * The credential the rate limits of cfg's calls belong to: client id,
 * API URL, and app or user (never a secret), into buf (size n; cut to
 * the spool's key size, PODIO_SPOOL_MAX_KEY).
 */
void budget_cred(const struct podio_config *cfg, char *buf, size_t n);
/*
 * The same for the i-th credential of cfg (podio_config_credential()
 * order; 0 is budget_cred()'s): every credential has its own 420 pauses,
 * outage and reserve, since Podio counts its limits per user (or app)
 * per API key.
 */
void budget_cred_at(const struct podio_config *cfg, size_t i, char *buf,
    size_t n);

/*
 * Whether err, a call's result, says the API is unavailable: 5xx, a
 * timeout, a connection that failed.  Such a call starts or continues
 * the credential's outage (budget_note_call()).
 */
int budget_outage_err(enum podio_err err);

/*
 * Whether background calls of rate class cls may be made now.  Returns 0
 * when they may, else the time (ms since the epoch) until which they
 * wait, with why (size whylen) saying so: a 420 pause set by any process
 * sharing the spool, an outage of the API (until its next probe; the
 * caller that claimed the probe, probing 1, passes when it is due), or
 * the last X-Rate-Limit-Remaining seen within the
 * hour at or below reserve (0: no reserve).  The limit window of Podio is
 * an hour whose reset time is not exposed, so a low count counts for an
 * hour at most (the time returned); each call seen since (a hook.verify,
 * another process) replaces it, so callers look again now and then.
 * A spool that cannot be read lets the call go: the API's own 420 still
 * stops it.
 */
int64_t budget_gate(struct podio_spool *spool, const char *cred,
    const char *cls, long reserve, int probing, char *why, size_t whylen);

/*
 * Claims the probe of cred's outage, when one is due and no caller of any
 * process sharing the spool holds it, for lease_ms.  Returns 1 when the
 * caller got it (*claim then identifies the claim: the caller's next call
 * is the probe, and budget_note_call() ends the claim with its result),
 * else 0.  budget_release_probe() gives back a claim not used.
 */
int budget_claim_probe(struct podio_spool *spool, const char *cred,
    int64_t lease_ms, int64_t *claim);
void budget_release_probe(struct podio_spool *spool, const char *cred,
    int64_t claim);

/* Records in spool what the last call of client (rate class cls, library
 * result rc) tells of the budget: the remaining count, a 420's pause,
 * the start of an outage or a failed probe (the next probe then waits
 * twice as long, at most BUDGET_PROBE_MAX_MS), the end of an outage (any
 * answer of Podio that budget_outage_err() does not call unavailable). */
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
	int64_t outage_since_ms;   /* start of an outage, 0 when none */
	int64_t next_probe_ms;     /* its next probe */
};
/* Fills *b for the general rate class, or the filter's (filter 1), of
 * the first credential. */
void budget_read(const struct podio_config *cfg, struct podio_spool *spool,
    int filter, struct budget *b);
/* The same for the i-th credential of cfg (budget_cred_at()). */
void budget_read_at(const struct podio_config *cfg, struct podio_spool *spool,
    size_t i, int filter, struct budget *b);
/*
 * A short name of the i-th credential of cfg for reports and metric
 * labels, never a secret nor an address: "app:ID" for an app's, "user"
 * for the password flow's; into buf (size n).
 */
void budget_cred_label(const struct podio_config *cfg, size_t i, char *buf,
    size_t n);

#endif

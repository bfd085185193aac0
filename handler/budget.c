/*
 * budget.c: the API budget shared through the spool (see budget.h).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "budget.h"
#include "log.h"
#include "process.h"
#include "spool.h"

/* See budget.h. */
void
budget_cred(const struct podio_config *cfg, char *buf, size_t n)
{
	const char *client = podio_config_get(cfg, "client_id");
	const char *url = podio_config_get(cfg, "api_url");
	const char *app = podio_config_get(cfg, "app_id");
	const char *user = podio_config_get(cfg, "username");

	snprintf(buf, n, "%s %s %s:%s", client != NULL ? client : "",
	    url != NULL ? url : "", app != NULL && app[0] != '\0' ? "app" :
	    "user", app != NULL && app[0] != '\0' ? app :
	    user != NULL ? user : "");
}

/* See budget.h. */
void
budget_cred_at(const struct podio_config *cfg, size_t i, char *buf,
    size_t n)
{
	struct podio_credential c;
	const char *client = podio_config_get(cfg, "client_id");
	const char *url = podio_config_get(cfg, "api_url");

	if (i == 0 || !podio_config_credential(cfg, i, &c)) {
		budget_cred(cfg, buf, n);
		return;
	}
	snprintf(buf, n, "%s %s app:%" PRIu64, client != NULL ? client : "",
	    url != NULL ? url : "", c.app_id);
}

/*
 * The first probe interval of an outage (the longest is 60 times it).
 * Test seam: PODIO_TEST_PROBE_MS (milliseconds, 1 to 2000) replaces
 * BUDGET_PROBE_BASE_MS, so that a test sees an hour of probes in a few
 * seconds.  Not a configuration key.
 */
static int64_t
budget_probe_base_ms(void)
{
	const char *env = getenv("PODIO_TEST_PROBE_MS");
	char *end;
	long v;

	if (env != NULL && env[0] != '\0') {
		v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 1 && v <= BUDGET_PROBE_BASE_MS)
			return v;
	}
	return BUDGET_PROBE_BASE_MS;
}

/* interval lengthened by 0-20%: probes of spools that failed together
 * do not all come back at the same moment.  The jitter only needs to
 * differ between processes and moments, so it mixes the clock with the
 * PID (splitmix64's finaliser) instead of keeping a generator's state. */
static int64_t
budget_jitter(int64_t interval)
{
	struct timespec ts;
	uint64_t x;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	x = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
	    ((uint64_t)getpid() << 17);
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	x ^= x >> 31;
	return interval + (int64_t)(x % (uint64_t)(interval / 5 + 1));
}

/* See budget.h. */
int
budget_outage_err(enum podio_err err)
{
	return err == PODIO_ERR_SERVER || err == PODIO_ERR_UNAVAILABLE ||
	    err == PODIO_ERR_TRANSPORT || err == PODIO_ERR_TIMEOUT;
}

/* A failed call (rc: budget_outage_err()) of cred: starts the outage, or,
 * after a failed probe, makes the next one wait twice as long.  A call
 * that failed apart from the probe (made before the outage was seen)
 * changes nothing. */
static void
budget_outage_failed(struct podio_spool *spool, const char *cred,
    struct podio_client *client)
{
	struct podio_spool_outage o;
	int64_t now = process_now_ms(), base, cap, interval, next;

	if (podio_spool_get_outage(spool, cred, &o) != PODIO_OK)
		return;
	base = budget_probe_base_ms();
	if (o.since_ms > 0 && o.claimed_until_ms <= now)
		return;
	cap = base * (BUDGET_PROBE_MAX_MS / BUDGET_PROBE_BASE_MS);
	interval = o.since_ms == 0 || o.interval_ms < base ? base :
	    o.interval_ms * 2;
	if (interval > cap)
		interval = cap;
	next = now + budget_jitter(interval);
	if (podio_spool_set_outage(spool, cred, next, interval) != PODIO_OK)
		return;
	if (o.since_ms == 0)
		podio_log(PODIO_LOG_WARN, "Podio is unavailable (%s): the API "
		    "calls of every process sharing the spool wait, one probe "
		    "in %" PRId64 " ms", podio_client_errmsg(client),
		    next - now);
	else
		podio_log(PODIO_LOG_INFO, "Podio is still unavailable (%s), "
		    "%" PRId64 " s since the outage began: next probe in %"
		    PRId64 " ms", podio_client_errmsg(client),
		    (now - o.since_ms) / 1000, next - now);
}

/* An answer of Podio for cred: ends an outage. */
static void
budget_outage_over(struct podio_spool *spool, const char *cred)
{
	struct podio_spool_outage o;
	int ended = 0;

	if (podio_spool_get_outage(spool, cred, &o) != PODIO_OK ||
	    o.since_ms == 0)
		return;
	if (podio_spool_end_outage(spool, cred, &ended) == PODIO_OK && ended)
		podio_log(PODIO_LOG_WARN, "Podio answers again after %" PRId64
		    " s of outage: the API calls go", (process_now_ms() -
		    o.since_ms) / 1000);
}

/* See budget.h. */
int
budget_claim_probe(struct podio_spool *spool, const char *cred,
    int64_t lease_ms, int64_t *claim)
{
	int claimed = 0;

	*claim = process_now_ms() + lease_ms;
	if (podio_spool_claim_probe(spool, cred, *claim, &claimed) !=
	    PODIO_OK)
		return 0;
	return claimed;
}

/* See budget.h. */
void
budget_release_probe(struct podio_spool *spool, const char *cred,
    int64_t claim)
{
	(void)podio_spool_release_probe(spool, cred, claim);
}

/* See budget.h. */
void
budget_read(const struct podio_config *cfg, struct podio_spool *spool,
    int filter, struct budget *b)
{
	budget_read_at(cfg, spool, 0, filter, b);
}

/* See budget.h. */
void
budget_cred_label(const struct podio_config *cfg, size_t i, char *buf,
    size_t n)
{
	struct podio_credential c;

	if (podio_config_credential(cfg, i, &c) && c.app_id != 0)
		snprintf(buf, n, "app:%" PRIu64, c.app_id);
	else
		snprintf(buf, n, "user");
}

/* See budget.h. */
void
budget_read_at(const struct podio_config *cfg, struct podio_spool *spool,
    size_t i, int filter, struct budget *b)
{
	char cred[PODIO_SPOOL_MAX_KEY];
	const char *cls = filter ? BUDGET_FILTER_CLASS : BUDGET_CLASS;
	struct podio_spool_outage o;

	memset(b, 0, sizeof(*b));
	b->remaining = b->limit = -1;
	budget_cred_at(cfg, i, cred, sizeof(cred));
	if (podio_spool_get_pause(spool, cred, cls, &b->paused_until_ms) !=
	    PODIO_OK || b->paused_until_ms <= process_now_ms())
		b->paused_until_ms = 0;
	if (podio_spool_get_remaining(spool, cred, cls, &b->remaining,
	    &b->limit, &b->seen_ms) != PODIO_OK ||
	    b->seen_ms + BUDGET_HOUR_MS <= process_now_ms()) {
		b->remaining = b->limit = -1;
		b->seen_ms = 0;
	}
	if (podio_spool_get_outage(spool, cred, &o) == PODIO_OK) {
		b->outage_since_ms = o.since_ms;
		b->next_probe_ms = o.next_probe_ms;
	}
}

/* See budget.h. */
int64_t
budget_gate(struct podio_spool *spool, const char *cred, const char *cls,
    long reserve, int probing, char *why, size_t whylen)
{
	struct podio_spool_outage o;
	int64_t now = process_now_ms(), until = 0, at = 0;
	long remaining = -1, limit = -1;

	if (podio_spool_get_pause(spool, cred, cls, &until) == PODIO_OK &&
	    until > now) {
		snprintf(why, whylen, "Podio rate limit (%s): no call for "
		    "%" PRId64 " s", cls, (until - now + 999) / 1000);
		return until;
	}
	if (podio_spool_get_outage(spool, cred, &o) == PODIO_OK &&
	    o.since_ms > 0) {
		if (o.next_probe_ms > now)
			until = o.next_probe_ms;
		else if (o.claimed_until_ms > now)
			until = probing ? 0 : o.claimed_until_ms;
		else
			/* Due, unclaimed: the next look claims it. */
			until = now + 1;
		if (until != 0) {
			snprintf(why, whylen, "Podio is unavailable (since %"
			    PRId64 " s): only one probe at a time, the next "
			    "in %" PRId64 " ms", (now - o.since_ms) / 1000,
			    o.next_probe_ms > now ? o.next_probe_ms - now :
			    0);
			return until;
		}
	}
	if (reserve > 0 && podio_spool_get_remaining(spool, cred, cls,
	    &remaining, &limit, &at) == PODIO_OK && remaining >= 0 &&
	    remaining <= reserve && at + BUDGET_HOUR_MS > now) {
		snprintf(why, whylen, "keeping the reserve of %ld API calls "
		    "(%ld of the hour's calls left)", reserve, remaining);
		/* At most: a later call may show more left sooner. */
		return at + BUDGET_HOUR_MS;
	}
	return 0;
}

/* See budget.h. */
void
budget_note_call(struct podio_spool *spool, struct podio_client *client,
    const char *cred, const char *cls, enum podio_err rc)
{
	struct podio_call_info info;
	int64_t wait;

	podio_client_last(client, &info);
	if (budget_outage_err(rc))
		budget_outage_failed(spool, cred, client);
	else if (info.http_status > 0)
		budget_outage_over(spool, cred);
	if (info.rate_remaining >= 0)
		(void)podio_spool_record_remaining(spool, cred, cls,
		    info.rate_remaining, info.rate_limit);
	if (rc == PODIO_ERR_RATE_LIMITED) {
		/* The library caps the wait Podio names; capped again here,
		 * before the multiplication, as the pause is shared. */
		wait = info.retry_after <= 0 ? BUDGET_RATE_WAIT_MS :
		    info.retry_after >= BUDGET_WAIT_MAX_MS / 1000 ?
		    BUDGET_WAIT_MAX_MS : (int64_t)info.retry_after * 1000;
		(void)podio_spool_set_pause(spool, cred, cls,
		    process_now_ms() + wait);
		podio_log(PODIO_LOG_WARN, "Podio rate limit (%s): API calls "
		    "of every process sharing the spool pause for %" PRId64
		    " s", cls, wait / 1000);
	}
}

/* See budget.h. */
void
budget_note_verify(const struct runtime *rt, struct podio_spool *spool,
    struct podio_client *client, enum podio_err rc)
{
	char cred[PODIO_SPOOL_MAX_KEY];

	if (spool == NULL || client == NULL)
		return;
	/* The credential that made the call (the hook's app's). */
	budget_cred_at(rt->cfg, podio_client_cred(client), cred,
	    sizeof(cred));
	budget_note_call(spool, client, cred, BUDGET_CLASS, rc);
}

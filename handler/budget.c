/*
 * budget.c: the API budget shared through the spool (see budget.h).
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

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
budget_read(const struct podio_config *cfg, struct podio_spool *spool,
    int filter, struct budget *b)
{
	char cred[PODIO_SPOOL_MAX_KEY];
	const char *cls = filter ? BUDGET_FILTER_CLASS : BUDGET_CLASS;

	memset(b, 0, sizeof(*b));
	b->remaining = b->limit = -1;
	budget_cred(cfg, cred, sizeof(cred));
	if (podio_spool_get_pause(spool, cred, cls, &b->paused_until_ms) !=
	    PODIO_OK || b->paused_until_ms <= process_now_ms())
		b->paused_until_ms = 0;
	if (podio_spool_get_remaining(spool, cred, cls, &b->remaining,
	    &b->limit, &b->seen_ms) != PODIO_OK ||
	    b->seen_ms + BUDGET_HOUR_MS <= process_now_ms()) {
		b->remaining = b->limit = -1;
		b->seen_ms = 0;
	}
}

/* See budget.h. */
int64_t
budget_gate(struct podio_spool *spool, const char *cred, const char *cls,
    long reserve, char *why, size_t whylen)
{
	int64_t now = process_now_ms(), until = 0, at = 0;
	long remaining = -1, limit = -1;

	if (podio_spool_get_pause(spool, cred, cls, &until) == PODIO_OK &&
	    until > now) {
		snprintf(why, whylen, "Podio rate limit (%s): no call for "
		    "%" PRId64 " s", cls, (until - now + 999) / 1000);
		return until;
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
	budget_cred(rt->cfg, cred, sizeof(cred));
	budget_note_call(spool, client, cred, BUDGET_CLASS, rc);
}

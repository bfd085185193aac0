/*
 * process.c: events out of the spool (see process.h).
 *
 * A stored event is the event JSON without its item.  Its "params"
 * member holds every delivered parameter but the secret, so the delivery
 * is rebuilt from it with podio_delivery_new() and goes through the same
 * flow as before the spool existed (podio__deliver(): the fetch of an
 * item event, the event JSON, the callbacks): the callbacks see exactly
 * the event they saw then.
 *
 * The spool hands out the events of one item together, in arrival order,
 * and never to two workers at once; the item is fetched once for all of
 * them (see process.h).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "alert.h"
#include "deliver.h"
#include "budget.h"
#include "creds.h"
#include "event.h"
#include "log.h"
#include "process.h"
#include "runtime.h"
#include "spool.h"

/* First retry delay, and the longest one.  With retry_max 12 the tries
 * of an event whose callbacks keep failing span about a day (1, 2, 4 ...
 * 256 minutes, then 8 hours twice, each +-25%). */
#define PROCESS_BACKOFF_BASE_MS (60 * 1000)
#define PROCESS_BACKOFF_MAX_MS  (8 * 3600 * 1000)
/* The filter has a budget of its own (a quarter of the general one):
 * one filter call instead of two GETs saves general calls, which
 * hook.verify and the command line need too, while filter calls are
 * left (PROCESS_FILTER_RESERVE kept for the command line). */
#define PROCESS_FILTER_MIN      2
/* Filter calls kept back for the command line. */
#define PROCESS_FILTER_RESERVE  5
/* The most events of one item run together, and the most units (items,
 * events without one) taken in one transaction. */
#define PROCESS_MAX_EVENTS      100
#define PROCESS_MAX_UNITS       64
/* The most filter pages (of PODIO_ITEM_FILTER_MAX items) one take of an
 * app's due items fills. */
#define PROCESS_FILTER_PAGES    4
/* How often processors holding events for the shared API budget (a 420
 * pause, the reserve) look at it again: a call of another process or a
 * `spool resume` may have opened it. */
#define PROCESS_HOLD_RECHECK_MS 1000
/* The longest a thread waits for another's learning or filter call. */
#define PROCESS_BULK_WAIT_MS    3000
/* The shortest sleep of a drain waiting for a settle window. */
#define PROCESS_DRAIN_MIN_SLEEP_MS 20
/* The shortest lease of a taken event. */
#define PROCESS_LEASE_MIN_MS    (5 * 60 * 1000)
/* The longest stored event decoded (the spool's own cap). */
#define PROCESS_EVENT_MAX       PODIO_SPOOL_MAX_EVENT

/*
 * What the processor threads of this process share to spend fewer calls:
 * the apps learned for hooks, and one lock held while an app is learned
 * (a GET) or a filter call is made, so that threads that took items of
 * the same burst at the same moment wait for that one answer instead of
 * each making its own.  The wait is bounded (PROCESS_BULK_WAIT_MS): a
 * held call never holds up the others for long.
 */
#define PROCESS_HOOK_APPS 64
static pthread_mutex_t process_bulk_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t process_apps_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	uint64_t hook_id;
	uint64_t app_id;
} process_apps[PROCESS_HOOK_APPS];
static size_t process_apps_next;
/* Whether this process last found the item fetches held by the shared
 * API budget: the start and the end of a hold are logged once, not once
 * per event or look. */
static pthread_mutex_t process_hold_lock = PTHREAD_MUTEX_INITIALIZER;
static int process_holding;

/* The app learned for hook_id in this process, or 0. */
static uint64_t
process_app_of(uint64_t hook_id)
{
	uint64_t app = 0;
	size_t i;

	pthread_mutex_lock(&process_apps_lock);
	for (i = 0; i < PROCESS_HOOK_APPS; i++)
		if (process_apps[i].hook_id == hook_id &&
		    process_apps[i].app_id != 0) {
			app = process_apps[i].app_id;
			break;
		}
	pthread_mutex_unlock(&process_apps_lock);
	return app;
}

/* Remembers app for hook_id (the oldest entry makes room). */
static void
process_app_learned(uint64_t hook_id, uint64_t app_id)
{
	size_t i;

	pthread_mutex_lock(&process_apps_lock);
	for (i = 0; i < PROCESS_HOOK_APPS; i++)
		if (process_apps[i].hook_id == hook_id)
			break;
	if (i == PROCESS_HOOK_APPS) {
		i = process_apps_next;
		process_apps_next = (process_apps_next + 1) %
		    PROCESS_HOOK_APPS;
	}
	process_apps[i].hook_id = hook_id;
	process_apps[i].app_id = app_id;
	pthread_mutex_unlock(&process_apps_lock);
}

/* Notes that the item fetches are held for why (NULL: that they may go),
 * logging a change. */
static void
process_note_hold(const char *why)
{
	pthread_mutex_lock(&process_hold_lock);
	if (why != NULL && !process_holding)
		podio_log(PODIO_LOG_WARN, "item fetches wait, the events "
		    "with them: %s", why);
	else if (why == NULL && process_holding)
		podio_log(PODIO_LOG_INFO, "item fetches go again");
	process_holding = why != NULL;
	pthread_mutex_unlock(&process_hold_lock);
}

/* Takes the bulk lock, waiting at most PROCESS_BULK_WAIT_MS.  Returns 1
 * when it is held (the caller unlocks), 0 when the wait ran out. */
static int
process_bulk_enter(void)
{
	struct timespec until;

	clock_gettime(CLOCK_REALTIME, &until);
	until.tv_sec += PROCESS_BULK_WAIT_MS / 1000;
	return pthread_mutex_timedlock(&process_bulk_lock, &until) == 0;
}

/* See process.h. */
int64_t
process_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ retries */

/* A well-mixed 64-bit value (splitmix64's finaliser). */
static uint64_t
process_mix(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/*
 * The delay before try number k + 1 (k failures so far): the base
 * doubled k times, capped, then spread by +-25% so that events that
 * failed together do not all come back at the same moment.  The jitter
 * only needs to differ between events and moments, not to be
 * unpredictable, so it mixes the clock with the event id instead of
 * keeping a generator's state.
 *
 * Test seam: PODIO_TEST_BACKOFF_MS (milliseconds, 1 to 60000) replaces
 * the base (and scales the cap with it), so tests see retries and dead
 * letters in a second instead of a day.  Not a configuration key.
 */
static int64_t
process_backoff_ms(long k, int64_t id)
{
	struct timespec ts;
	const char *env;
	int64_t base = PROCESS_BACKOFF_BASE_MS, cap = PROCESS_BACKOFF_MAX_MS;
	int64_t delay;
	uint64_t r;
	char *end;
	long v;

	env = getenv("PODIO_TEST_BACKOFF_MS");
	if (env != NULL && env[0] != '\0') {
		v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 1 && v <= 60000) {
			base = v;
			cap = base * (PROCESS_BACKOFF_MAX_MS /
			    PROCESS_BACKOFF_BASE_MS);
		}
	}
	delay = base;
	while (k-- > 0 && delay < cap)
		delay *= 2;
	if (delay > cap)
		delay = cap;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	r = process_mix((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32) ^
	    process_mix((uint64_t)id));
	/* delay * [0.75, 1.25) */
	return delay * 3 / 4 + (int64_t)(r % (uint64_t)(delay / 2 + 1));
}

/* ------------------------------------------------------------ one event */

/*
 * Rebuilds the delivery of a stored event (json, len bytes) with
 * podio__event_delivery(), refusing a missing or oversized record first.
 * On success *out receives it (the caller frees it with
 * podio_delivery_free()).  Returns PODIO_OK, PODIO_ERR_NOMEM, or
 * PODIO_ERR_BAD_JSON / PODIO_ERR_INVALID for a record that cannot be
 * decoded (why, size whylen, says what).
 */
static enum podio_err
process_delivery(const char *json, size_t len, struct podio_delivery **out,
    char *why, size_t whylen)
{
	*out = NULL;
	if (json == NULL || len > PROCESS_EVENT_MAX) {
		snprintf(why, whylen, "the stored event is missing or too "
		    "large");
		return PODIO_ERR_BAD_JSON;
	}
	return podio__event_delivery(json, len, out, why, whylen);
}

/*
 * Whether a failed fetch (err, the library error behind a 503 of
 * podio__deliver()) is Podio's passing trouble rather than the event's:
 * unreachable, timed out, rate limited, 5xx, tokens it refused.  Those
 * are retried without using up the event's tries.
 */
static int
process_outage(enum podio_err err)
{
	switch (err) {
	case PODIO_ERR_RATE_LIMITED:
	case PODIO_ERR_SERVER:
	case PODIO_ERR_UNAVAILABLE:
	case PODIO_ERR_TRANSPORT:
	case PODIO_ERR_TIMEOUT:
	case PODIO_ERR_TLS:
	case PODIO_ERR_AUTH:
	case PODIO_ERR_TOKEN_EXPIRED:
	case PODIO_ERR_IO:
	case PODIO_ERR_NOMEM:
		return 1;
	default:
		return 0;
	}
}

/* The reason of a delivery whose callbacks failed: the first failure and
 * the count, into buf (size n). */
static void
process_callback_reason(const struct podio__deliver_result *res, char *buf,
    size_t n)
{
	char line[PODIO_CALLBACK_DETAIL_MAX + 512];
	const struct podio_callback_report *rep;
	size_t i, k, used, len;

	snprintf(buf, n, "%zu of %zu callbacks failed", res->failed,
	    res->ran);
	for (i = 0; i < PODIO__DELIVER_NREGS; i++) {
		if ((rep = res->reports[i]) == NULL)
			continue;
		for (k = 0; k < rep->n; k++) {
			if (rep->results[k].outcome == PODIO_CALLBACK_OK)
				continue;
			podio_callback_result_format(&rep->results[k], line,
			    sizeof(line));
			/* The reason is cut to fit: copied, not formatted. */
			used = (size_t)snprintf(buf, n, "%zu of %zu callbacks "
			    "failed; ", res->failed, res->ran);
			if (used + 1 < n) {
				len = strlen(line);
				if (len > n - used - 1)
					len = n - used - 1;
				memcpy(buf + used, line, len);
				buf[used + len] = '\0';
			}
			return;
		}
	}
}

/* The configuration accepts durations up to the limit of int64_t; a
 * lease computed from them is kept far below it (a week each), so that
 * no sum or product here overflows. */
#define PROCESS_TIME_CAP_MS ((int64_t)7 * 24 * 3600 * 1000)

static int64_t
process_capped(int64_t ms)
{
	return ms < PROCESS_TIME_CAP_MS ? ms : PROCESS_TIME_CAP_MS;
}

/* How long the claim of an outage's probe lasts: the probe's call, a
 * token call before it, and a margin. */
static int64_t
process_probe_lease_ms(const struct runtime *rt)
{
	int64_t api = process_capped(podio_config_get_ms(rt->cfg, "timeout"));

	return 2 * (api > 0 ? api : 30 * 1000) + 5000;
}

/* The lease of a taken event: long enough for its fetch and callbacks. */
static int64_t
process_lease_ms(const struct runtime *rt)
{
	int64_t ms, api;

	api = process_capped(podio_config_get_ms(rt->cfg, "timeout"));
	ms = 2 * process_capped(rt->exec_timeout_ms > 0 ?
	    rt->exec_timeout_ms : 0) + 2 * (api > 0 ? api : 0) + 60 * 1000;
	return ms > PROCESS_LEASE_MIN_MS ? ms : PROCESS_LEASE_MIN_MS;
}

/* Logs the outcome of event ev. */
static void
process_log(enum podio_log_level level, const struct podio_spool_event *ev,
    const char *what)
{
	char item[32];

	snprintf(item, sizeof(item), "-");
	if (ev->has & PODIO_HAS_ITEM_ID)
		snprintf(item, sizeof(item), "%" PRIu64, ev->item_id);
	podio_log(level, "event id=%" PRId64 " type=%s hook_id=%" PRIu64
	    " item_id=%s: %s", ev->id, ev->type != NULL ? ev->type : "-",
	    ev->hook_id, item, what);
}

/*
 * Records a failure of ev: counted (the event's own fault: a callback
 * failed) or not (an outage; retry_ms then is the time Podio named, or 0
 * for the backoff).  A counted failure that uses up retry_max makes the
 * event dead.  Returns the outcome.
 */
static enum process_outcome
process_failed(const struct runtime *rt, struct podio_spool *spool,
    const struct podio_spool_event *ev, int counted, int64_t retry_ms,
    const char *reason)
{
	char line[PODIO_SPOOL_MAX_REASON + 128];
	long attempts = 0, retry_max;
	int64_t delay;
	enum podio_err rc;

	retry_max = (long)podio_config_get_int(rt->cfg, "retry_max");
	if (retry_max < 1)
		retry_max = 1;
	if (counted && ev->attempts + 1 >= retry_max) {
		/* dead (not fail, then dead: fail gives the lease back) */
		attempts = ev->attempts + 1;
		rc = podio_spool_dead(spool, ev->id, reason);
		if (rc != PODIO_OK) {
			snprintf(line, sizeof(line), "cannot set it aside: %s "
			    "(it failed: %s)", podio_strerror(rc), reason);
			process_log(PODIO_LOG_ERROR, ev, line);
			return PROCESS_ERROR;
		}
		snprintf(line, sizeof(line), "dead after %ld tr%s: %s",
		    attempts, attempts == 1 ? "y" : "ies", reason);
		process_log(PODIO_LOG_ERROR, ev, line);
		alert_dead(rt, ev, reason, attempts);
		return PROCESS_DEAD;
	}
	if (retry_ms > 0)
		delay = retry_ms;
	else
		delay = process_backoff_ms(counted ? ev->attempts :
		    ev->failures - ev->attempts, ev->id);
	rc = podio_spool_fail(spool, ev->id, reason,
	    process_now_ms() + delay, counted, &attempts);
	if (rc != PODIO_OK) {
		snprintf(line, sizeof(line), "cannot record the failure: %s "
		    "(it failed: %s)", podio_strerror(rc), reason);
		process_log(PODIO_LOG_ERROR, ev, line);
		return PROCESS_ERROR;
	}
	if (counted)
		snprintf(line, sizeof(line), "try %ld of %ld failed, next in "
		    "%" PRId64 " ms: %s", attempts, retry_max, delay, reason);
	else
		snprintf(line, sizeof(line), "waits %" PRId64 " ms (not "
		    "counted as a try): %s", delay, reason);
	process_log(PODIO_LOG_WARN, ev, line);
	return PROCESS_RETRY;
}


/* ------------------------------------------------------------ one item */

/* The state of one taken unit: a batch (the events of an item, or one
 * event without an item) and what its fetch gave. */
struct process_unit {
	struct podio_spool_batch batch;
	int need;                  /* 1 when an event needs the item */
	int have;                  /* 1 when the fetch is over: text or
	                              item_error (or neither: not needed) */
	char *text;                /* the item as Podio sent it, or NULL */
	const char *source;        /* "get", "filter" */
	const char *item_error;    /* "not_found", "gone", or NULL */
	uint64_t learned;          /* the app the GET answer named, or 0 */
	/* The credential of the unit's calls (creds.h), and whether it is
	 * known to see the item's app: when not, a 403 or 404 is tried with
	 * the other credentials before it counts. */
	size_t cred;
	int cred_sure;
	/* The fetch did not happen: the events wait until defer_ms (0: the
	 * backoff), counted as a try only when defer_counted (the item's
	 * own trouble, not Podio's), for defer_why. */
	int defer;
	int defer_counted;
	/* The shared API budget says to wait (a 420 pause, the reserve):
	 * the events are given back untouched, with no delay of their own,
	 * and go when it opens. */
	int hold;
	int64_t defer_ms;
	char defer_why[256];
};

/* Whether type is an item event whose item is fetched. */
static int
process_fetches(const char *type)
{
	return type != NULL && (strcmp(type, "item.create") == 0 ||
	    strcmp(type, "item.update") == 0);
}

/* Sets u to wait until until_ms (0: the backoff) for why. */
static void
process_defer(struct process_unit *u, int64_t until_ms, const char *why)
{
	u->defer = 1;
	u->defer_ms = until_ms;
	snprintf(u->defer_why, sizeof(u->defer_why), "%s", why);
}

/* The app of a fetched item (its "app"."app_id"), or 0. */
static uint64_t
process_item_app(const cJSON *item)
{
	const cJSON *app, *id;

	app = cJSON_GetObjectItemCaseSensitive(item, "app");
	id = cJSON_GetObjectItemCaseSensitive(app, "app_id");
	if (!cJSON_IsNumber(id) || id->valuedouble < 1 ||
	    id->valuedouble > 9007199254740991.0)
		return 0;
	return (uint64_t)id->valuedouble;
}

/* Remembers that the hooks of batch b's events belong to app (each hook
 * once), so that their later items can be fetched in bulk. */
static void
process_learn(struct podio_spool *spool, const struct podio_spool_batch *b,
    uint64_t app)
{
	size_t i, k;

	for (i = 0; i < b->n; i++) {
		for (k = 0; k < i; k++)
			if (b->events[k].hook_id == b->events[i].hook_id)
				break;
		if (k == i)
			(void)podio_spool_learn_app(spool,
			    b->events[i].hook_id, app);
	}
}

/*
 * Fetches u's item with GET, with the unit's credential, unless its
 * budget gate says to wait (probing: this caller holds the probe of that
 * credential's outage; with several credentials a due probe of the
 * unit's credential is claimed here).  When the credential is not sure
 * to see the item's app (u->cred_sure), a 403 or 404 is tried with each
 * other credential in turn before it counts: the answer of another app's
 * credential says nothing of the item.  Learns the app of the events'
 * hooks from the answer.  Returns -1 when the call was not made, was
 * rate limited or found the API unavailable (the caller stops calling
 * with that credential), else 0.
 */
static int
process_get(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int probing, struct process_unit *u)
{
	char why[256], key[PODIO_SPOOL_MAX_KEY];
	cJSON *item = NULL;
	enum podio_err rc;
	uint64_t app;
	int64_t claim = 0;
	size_t tried = 1, ncreds;
	int claimed;
	long reserve = (long)podio_config_get_int(rt->cfg, "rate_reserve");

	ncreds = podio_tokens_count(podio_client_tokens(client));
	for (;;) {
		claimed = 0;
		budget_cred_at(rt->cfg, u->cred, key, sizeof(key));
		if (budget_gate(spool, key, BUDGET_CLASS, reserve, probing,
		    why, sizeof(why)) != 0) {
			if (ncreds < 2 || probing ||
			    !budget_claim_probe(spool, key,
			    process_probe_lease_ms(rt), &claim)) {
				u->hold = 1;
				return -1;
			}
			claimed = 1;
		}
		(void)podio_client_use(client, u->cred);
		rc = podio_item_get(client, u->batch.item_id, &u->text, &item);
		budget_note_call(spool, client, key, BUDGET_CLASS, rc);
		if (claimed)
			budget_release_probe(spool, key, claim);
		if ((rc != PODIO_ERR_NOT_FOUND && rc != PODIO_ERR_FORBIDDEN) ||
		    u->cred_sure || tried == ncreds)
			break;
		podio_log(PODIO_LOG_DEBUG, "item %" PRIu64 ": %s with "
		    "credential %zu, which may not see its app: trying the "
		    "next", u->batch.item_id, podio_client_errmsg(client),
		    u->cred);
		u->cred = (u->cred + 1) % ncreds;
		tried++;
	}
	switch (rc) {
	case PODIO_OK:
		u->have = 1;
		u->source = "get";
		if ((app = process_item_app(item)) != 0 &&
		    app != u->batch.app_id)
			process_learn(spool, &u->batch, app);
		u->learned = app;
		break;
	case PODIO_ERR_NOT_FOUND:
		u->have = 1;
		u->item_error = "not_found";
		break;
	case PODIO_ERR_GONE:
		u->have = 1;
		u->item_error = "gone";
		break;
	case PODIO_ERR_RATE_LIMITED:
		/* budget_note_call() set the shared pause: the events go
		 * when it ends. */
		u->hold = 1;
		cJSON_Delete(item);
		return -1;
	case PODIO_ERR_SERVER:
	case PODIO_ERR_UNAVAILABLE:
	case PODIO_ERR_TRANSPORT:
	case PODIO_ERR_TIMEOUT:
		/* budget_note_call() started or continued the shared outage:
		 * the events go back untouched (no try, no delay of their
		 * own) and go when a probe finds Podio answering. */
		u->hold = 1;
		cJSON_Delete(item);
		return -1;
	default:
		/* Podio's passing trouble waits without using up tries; a
		 * refusal (403, a bad answer) counts, so it ends as a dead
		 * letter rather than being tried forever. */
		snprintf(why, sizeof(why), "cannot fetch item %" PRIu64 ": %s",
		    u->batch.item_id, podio_client_errmsg(client));
		process_defer(u, 0, why);
		u->defer_counted = !process_outage(rc);
		break;
	}
	cJSON_Delete(item);
	return 0;
}

/*
 * Fetches the items of units[0..n) that need one with filter calls for
 * app, in pages of at most PODIO_ITEM_FILTER_MAX ids (arrival order),
 * when it pays and the filter may be used; what they cannot give is left
 * for GET.  Each page asks the budget first (probing: see
 * process_get()).  A filter Podio refuses (400, 403) is not tried again
 * for that app for an hour (in the spool: every process learns it); an
 * unavailable API holds the rest (the outage); another failure leaves
 * the rest for GET.
 */
static void
process_filter(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, const char *cred, int probing, uint64_t app,
    struct process_unit *units, size_t n)
{
	char cls[64], why[256];
	uint64_t *ids = NULL;
	char **texts = NULL;
	size_t *at = NULL;
	size_t i, k = 0, page, off, got;
	enum podio_err rc;
	long reserve = (long)podio_config_get_int(rt->cfg, "rate_reserve");

#define PROCESS_WANTS(u) ((u).need && !(u).have && !(u).defer && \
	!(u).hold && (u).batch.app_id == app)
	for (i = 0; i < n; i++)
		if (PROCESS_WANTS(units[i]))
			k++;
	if (k < PROCESS_FILTER_MIN || app == 0)
		return;
	snprintf(cls, sizeof(cls), "filter-refused:%" PRIu64, app);
	if ((ids = calloc(k, sizeof(*ids))) == NULL ||
	    (texts = calloc(PODIO_ITEM_FILTER_MAX, sizeof(*texts))) == NULL ||
	    (at = calloc(k, sizeof(*at))) == NULL)
		goto fail;
	for (i = 0, k = 0; i < n; i++)
		if (PROCESS_WANTS(units[i])) {
			at[k] = i;
			ids[k++] = units[i].batch.item_id;
		}
	for (off = 0; off < k; off += page) {
		page = k - off < PODIO_ITEM_FILTER_MAX ? k - off :
		    PODIO_ITEM_FILTER_MAX;
		/* A last page of one item is one call either way. */
		if (page < PROCESS_FILTER_MIN && off > 0)
			break;
		if (budget_gate(spool, cred, cls, 0, probing, why,
		    sizeof(why)) != 0 ||
		    budget_gate(spool, cred, BUDGET_FILTER_CLASS,
		    PROCESS_FILTER_RESERVE, probing, why, sizeof(why)) != 0 ||
		    budget_gate(spool, cred, BUDGET_CLASS, reserve, probing,
		    why, sizeof(why)) != 0)
			break;
		memset(texts, 0, PODIO_ITEM_FILTER_MAX * sizeof(*texts));
		rc = podio_item_filter(client, app, ids + off, page, texts);
		budget_note_call(spool, client, cred, BUDGET_FILTER_CLASS, rc);
		if (rc == PODIO_ERR_BAD_REQUEST || rc == PODIO_ERR_FORBIDDEN) {
			podio_log(PODIO_LOG_WARN, "Podio refused to filter the "
			    "items of app %" PRIu64 " (%s): fetching them one "
			    "by one, the filter is not tried again for an "
			    "hour", app, podio_client_errmsg(client));
			(void)podio_spool_set_pause(spool, cred, cls,
			    process_now_ms() + BUDGET_HOUR_MS);
			break;
		}
		/* The outage holds the rest (budget_note_call()). */
		if (budget_outage_err(rc))
			break;
		if (rc != PODIO_OK) {
			podio_log(PODIO_LOG_WARN, "cannot filter the items of "
			    "app %" PRIu64 ", fetching them one by one: %s",
			    app, podio_client_errmsg(client));
			break;
		}
		for (i = 0, got = 0; i < page; i++) {
			if (texts[i] == NULL)
				continue;
			units[at[off + i]].text = texts[i];
			texts[i] = NULL;
			units[at[off + i]].have = 1;
			units[at[off + i]].source = "filter";
			got++;
		}
		podio_log(PODIO_LOG_DEBUG, "fetched %zu of %zu items of app %"
		    PRIu64 " with one filter call", got, page, app);
	}
fail:
	if (texts != NULL)
		for (i = 0; i < PODIO_ITEM_FILTER_MAX; i++)
			free(texts[i]);
	free(texts);
	free(ids);
	free(at);
#undef PROCESS_WANTS
}

/* The keys of the callbacks that succeeded for ev before (its progress:
 * a JSON array of strings), as a cJSON array (caller frees), or NULL. */
static cJSON *
process_progress(const struct podio_spool_event *ev)
{
	cJSON *arr, *k;
	const char *end = NULL;

	if (ev->progress == NULL)
		return NULL;
	arr = cJSON_ParseWithOpts(ev->progress, &end, 1);
	if (!cJSON_IsArray(arr)) {
		cJSON_Delete(arr);
		return NULL;
	}
	cJSON_ArrayForEach(k, arr) {
		if (!cJSON_IsString(k)) {
			cJSON_Delete(arr);
			return NULL;
		}
	}
	return arr;
}

/*
 * Stores the progress of ev after a run that failed: the keys of before
 * (may be NULL) plus those of the callbacks of res that succeeded, so
 * that the retry runs only the others.
 */
static void
process_save_progress(struct podio_spool *spool,
    const struct podio_spool_event *ev, cJSON *before,
    const struct podio__deliver_result *res)
{
	const struct podio_callback_report *rep;
	cJSON *arr;
	char *text;
	size_t i, k;

	arr = before != NULL ? cJSON_Duplicate(before, 1) :
	    cJSON_CreateArray();
	if (arr == NULL)
		return;
	for (i = 0; i < PODIO__DELIVER_NREGS; i++) {
		if ((rep = res->reports[i]) == NULL)
			continue;
		for (k = 0; k < rep->n; k++)
			if (rep->results[k].outcome == PODIO_CALLBACK_OK &&
			    rep->results[k].key != NULL)
				cJSON_AddItemToArray(arr, cJSON_CreateString(
				    rep->results[k].key));
	}
	if ((text = cJSON_PrintUnformatted(arr)) != NULL &&
	    strlen(text) < PODIO_SPOOL_MAX_PROGRESS)
		(void)podio_spool_progress(spool, ev->id, text);
	free(text);
	cJSON_Delete(arr);
}

/*
 * Runs event ev of unit u through the callbacks (with the unit's item
 * when ev fetches one), skipping those its progress says succeeded.
 * *done is set to 1 when ev is finished and may be removed, *self to 1
 * when it was settled without callbacks as by_self (skip_self).
 * Returns the outcome; PROCESS_RETRY also when the item's later events
 * must wait.
 */
static enum process_outcome
process_run_event(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, const struct process_unit *u,
    const struct podio_spool_event *ev, int *done, int *self)
{
	struct podio__deliver_ctx ctx;
	struct podio__deliver_result res;
	struct podio_delivery *d = NULL;
	const char **skip = NULL;
	cJSON *before = NULL, *k;
	char why[512], reason[PODIO_SPOOL_MAX_REASON];
	enum process_outcome out = PROCESS_ERROR;
	enum podio_err rc;
	size_t nskip = 0;
	int fetch;

	*done = 0;
	*self = 0;
	memset(&res, 0, sizeof(res));
	why[0] = '\0';
	rc = process_delivery(ev->event_json, ev->event_len, &d, why,
	    sizeof(why));
	if (rc == PODIO_ERR_NOMEM) {
		out = process_failed(rt, spool, ev, 0, 0, "out of memory");
		goto fail;
	}
	if (rc != PODIO_OK) {
		snprintf(reason, sizeof(reason), "cannot decode the stored "
		    "event: %s", why[0] != '\0' ? why : podio_strerror(rc));
		out = podio_spool_dead(spool, ev->id, reason) == PODIO_OK ?
		    PROCESS_DEAD : PROCESS_ERROR;
		process_log(PODIO_LOG_ERROR, ev, reason);
		if (out == PROCESS_DEAD)
			alert_dead(rt, ev, reason, ev->attempts);
		goto fail;
	}
	if ((before = process_progress(ev)) != NULL &&
	    (nskip = (size_t)cJSON_GetArraySize(before)) > 0) {
		if ((skip = calloc(nskip, sizeof(*skip))) == NULL) {
			out = process_failed(rt, spool, ev, 0, 0,
			    "out of memory");
			goto fail;
		}
		nskip = 0;
		cJSON_ArrayForEach(k, before)
			skip[nskip++] = k->valuestring;
	}
	runtime_deliver_ctx(rt, client, &ctx);
	ctx.skip = skip;
	ctx.nskip = nskip;
	fetch = process_fetches(d->type);
	(void)podio__deliver_item(&ctx, d, fetch ? u->text : NULL,
	    fetch && u->text != NULL ? strlen(u->text) : 0,
	    fetch && u->text == NULL ? u->item_error : NULL,
	    fetch && u->text != NULL ? u->source : NULL, &res);
	if (res.status == 200 && res.self_skipped) {
		/* A write-back of this receiver's own (skip_self): said
		 * once, in the event's one line. */
		*done = 1;
		*self = 1;
		snprintf(reason, sizeof(reason), "done: %s", res.reason);
		process_log(PODIO_LOG_INFO, ev, reason);
		out = PROCESS_DONE;
	} else if (res.status == 200 && res.failed == 0) {
		*done = 1;
		snprintf(reason, sizeof(reason), "done: %s (%zu callback%s%s)",
		    res.reason, res.ran, res.ran == 1 ? "" : "s",
		    nskip > 0 ? " run again" : "");
		process_log(PODIO_LOG_INFO, ev, reason);
		out = PROCESS_DONE;
	} else if (res.status == 200) {
		process_save_progress(spool, ev, before, &res);
		process_callback_reason(&res, reason, sizeof(reason));
		out = process_failed(rt, spool, ev, 1, 0, reason);
	} else if (res.status == 400) {
		/* Malformed for its type (podio__deliver_check()): no try
		 * can change that. */
		out = podio_spool_dead(spool, ev->id, res.reason) ==
		    PODIO_OK ? PROCESS_DEAD : PROCESS_ERROR;
		process_log(PODIO_LOG_ERROR, ev, res.reason);
		if (out == PROCESS_DEAD)
			alert_dead(rt, ev, res.reason, ev->attempts);
	} else {
		out = process_failed(rt, spool, ev, !process_outage(res.err),
		    0, res.reason);
	}
fail:
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	free(skip);
	cJSON_Delete(before);
	return out;
}

/* Adds outcome out to counts (may be NULL). */
static void
process_count(struct process_counts *counts, enum process_outcome out)
{
	if (counts == NULL)
		return;
	switch (out) {
	case PROCESS_DONE:
		counts->done++;
		break;
	case PROCESS_RETRY:
		counts->retry++;
		break;
	case PROCESS_DEAD:
		counts->dead++;
		break;
	case PROCESS_ERROR:
		counts->errors++;
		break;
	default:
		break;
	}
}

/*
 * Units taken together run one after the other: before one starts, its
 * lease is renewed when less than half of it is left, so that a long
 * run of earlier units never lets it run out (another worker would then
 * take it too).  Returns 0 to go on, -1 when the unit is no longer this
 * worker's (its lease ran out and it was taken again, or it is gone).
 */
static int
process_keep_lease(const struct runtime *rt, struct podio_spool *spool,
    struct process_unit *u)
{
	int64_t lease = process_lease_ms(rt);
	enum podio_err rc;
	size_t i;

	if (process_now_ms() < u->batch.lease_until_ms - lease / 2)
		return 0;
	for (i = 0; i < u->batch.n; i++) {
		rc = podio_spool_extend(spool, u->batch.events[i].id, lease);
		if (rc == PODIO_ERR_CONFLICT || rc == PODIO_ERR_NOT_FOUND) {
			process_log(PODIO_LOG_WARN, &u->batch.events[i],
			    "its lease ran out before its turn; left to the "
			    "worker that has it now");
			return -1;
		}
	}
	u->batch.lease_until_ms = process_now_ms() + lease;
	return 0;
}

static int process_release_batch(struct podio_spool *,
    const struct podio_spool_batch *);

/*
 * Finishes unit u: a held fetch gives its events back untouched; a
 * deferred fetch makes every event wait; else the
 * events run in arrival order, and the first that fails makes the later
 * ones wait for it (they are given back).  The ids of the finished ones
 * are added to done (room for every event, *ndone used), for the caller
 * to remove together (one flush).  Returns the outcome of most weight
 * (error, retry, dead, done).
 */
static enum process_outcome
process_unit_run(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, struct process_unit *u, int64_t *done_ids,
    size_t *ndone, struct process_counts *counts)
{
	enum process_outcome out = PROCESS_IDLE, o;
	int64_t delay;
	size_t i;
	int done, self, stop = 0;

	if (u->batch.n == 0)
		return PROCESS_IDLE;
	if (process_keep_lease(rt, spool, u) != 0)
		return PROCESS_IDLE;
	/* The events run with the credential that fetched their item
	 * (podio_client_cred() tells which). */
	(void)podio_client_use(client, u->cred);
	if (u->hold) {
		/* Not a failure and no delay of its own: the processors look
		 * at the shared budget again (process_next_due()). */
		(void)process_release_batch(spool, &u->batch);
		return PROCESS_IDLE;
	}
	if (u->defer) {
		for (i = 0; i < u->batch.n; i++) {
			delay = u->defer_ms > 0 ? u->defer_ms -
			    process_now_ms() : 0;
			o = process_failed(rt, spool, &u->batch.events[i],
			    u->defer_counted, delay > 0 ? delay : 0,
			    u->defer_why);
			process_count(counts, o);
			if (o == PROCESS_ERROR || out == PROCESS_IDLE)
				out = o;
		}
		return out;
	}
	for (i = 0; i < u->batch.n; i++) {
		if (stop) {
			(void)podio_spool_release(spool,
			    u->batch.events[i].id);
			continue;
		}
		o = process_run_event(rt, client, spool, u,
		    &u->batch.events[i], &done, &self);
		if (done)
			done_ids[(*ndone)++] = u->batch.events[i].id;
		else
			process_count(counts, o);
		if (self && counts != NULL)
			counts->self_skipped++;
		if (o == PROCESS_RETRY || o == PROCESS_ERROR)
			stop = 1;
		if (out == PROCESS_IDLE || o == PROCESS_ERROR ||
		    (o == PROCESS_RETRY && out != PROCESS_ERROR))
			out = o;
		else if (o == PROCESS_DEAD && out == PROCESS_DONE)
			out = o;
	}
	return out;
}

/* Whether any event of batch b fetches its item. */
static int
process_batch_needs(const struct podio_spool_batch *b)
{
	size_t i;

	if (!b->has_item)
		return 0;
	for (i = 0; i < b->n; i++)
		if (process_fetches(b->events[i].type))
			return 1;
	return 0;
}

/* Gives every event of b back untouched.  Returns 0, or -1 when one
 * could not be given back (its lease then runs out by itself). */
static int
process_release_batch(struct podio_spool *spool,
    const struct podio_spool_batch *b)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < b->n; i++)
		if (podio_spool_release(spool, b->events[i].id) != PODIO_OK)
			rc = -1;
	return rc;
}

/* The take options of rt: the lease, batches, the settle window (none
 * unless settle). */
static void
process_take_opts(const struct runtime *rt, int settle,
    struct podio_spool_take_opts *opts)
{
	int64_t window, max;

	memset(opts, 0, sizeof(*opts));
	opts->lease_ms = process_lease_ms(rt);
	opts->max_events = PROCESS_MAX_EVENTS;
	window = podio_config_get_ms(rt->cfg, "coalesce_window");
	max = podio_config_get_ms(rt->cfg, "coalesce_max");
	if (!settle)
		return;
	opts->settle_ms = window > 0 ? window : 0;
	/* 0: no cap (the spool's own meaning of 0) */
	opts->settle_max_ms = max > 0 ? max : 0;
}

/* See process.h.  An item event waits for its item to settle: at least
 * coalesce_window, or coalesce_max when that is shorter. */
int64_t
process_due_after(const struct runtime *rt, const struct podio_delivery *d)
{
	int64_t window, max;

	if (d == NULL || !(d->has & PODIO_HAS_ITEM_ID))
		return 0;
	window = podio_config_get_ms(rt->cfg, "coalesce_window");
	max = podio_config_get_ms(rt->cfg, "coalesce_max");
	if (window <= 0)
		return 0;
	return max > 0 && max < window ? max : window;
}

/* Adds the batches more[0..nmore) (moved) to units (*n used); *units
 * grows.  Batches that find no room are given back.  Returns 0 or -1. */
static int
process_add_units(struct podio_spool *spool, struct process_unit **units,
    size_t *n, struct podio_spool_batch *more, size_t nmore)
{
	struct process_unit *grown;
	size_t i;

	if (nmore == 0)
		return 0;
	grown = realloc(*units, (*n + nmore) * sizeof(**units));
	if (grown == NULL) {
		for (i = 0; i < nmore; i++)
			(void)process_release_batch(spool, &more[i]);
		return -1;
	}
	*units = grown;
	memset(grown + *n, 0, nmore * sizeof(*grown));
	for (i = 0; i < nmore; i++) {
		grown[*n + i].batch = more[i];
		memset(&more[i], 0, sizeof(more[i]));
		grown[*n + i].need = process_batch_needs(&grown[*n + i].batch);
	}
	*n += nmore;
	return 0;
}

/* Whether units[i] still wants its item and is the first such unit of
 * its (known) app among units[0..i]: each app is handled once. */
static int
process_app_first(const struct process_unit *units, size_t i)
{
	uint64_t app = units[i].batch.app_id;
	size_t k;

	if (!units[i].need || units[i].have || app == 0)
		return 0;
	for (k = 0; k < i; k++)
		if (units[k].need && units[k].batch.app_id == app)
			return 0;
	return 1;
}

/* The current revision number of an item's JSON text, or -1. */
static int64_t
process_revision_of(const char *text)
{
	const char *end = NULL;
	cJSON *item, *v;
	int64_t rev = -1;

	/* cJSON sets its global error pointer here; it is never read. */
	if ((item = cJSON_ParseWithOpts(text, &end, 1)) == NULL)
		return -1;
	v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(
	    item, "current_revision"), "revision");
	if (cJSON_IsNumber(v) && v->valuedouble >= 0 &&
	    v->valuedouble < 9007199254740992.0)
		rev = (int64_t)v->valuedouble;
	cJSON_Delete(item);
	return rev;
}

/*
 * Notes in the spool the revision of each item units[0..n) fetched, so
 * that a backfill skips an item whose current state the callbacks saw
 * (podio_spool_note_revisions()).  Best effort: a failure only means a
 * backfill sends the item again.
 */
static void
process_note_revisions(struct podio_spool *spool,
    const struct process_unit *units, size_t n)
{
	uint64_t ids[64];
	int64_t revs[64];
	size_t i, k = 0;

	for (i = 0; i < n; i++) {
		if (!units[i].have || units[i].text == NULL ||
		    (revs[k] = process_revision_of(units[i].text)) < 0)
			continue;
		ids[k++] = units[i].batch.item_id;
		if (k == sizeof(ids) / sizeof(ids[0])) {
			(void)podio_spool_note_revisions(spool, ids, revs, k);
			k = 0;
		}
	}
	if (k > 0)
		(void)podio_spool_note_revisions(spool, ids, revs, k);
}

/* The credential of each unit that needs its item, from the app it
 * belongs to (creds.h). */
static void
process_pick_creds(struct podio_client *client, struct process_unit *units,
    size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (units[i].need && !units[i].have)
			units[i].cred = creds_for_app(client,
			    units[i].batch.app_id, &units[i].cred_sure);
}

/*
 * With several credentials: the units held for their credential's budget
 * (a 420 pause, an outage, the reserve) wait until it may open, without
 * a try counted, while the other credentials' units go on.  (With one
 * credential the processors stop taking such units instead:
 * process_held_until().)
 */
static void
process_defer_held(const struct runtime *rt, struct podio_spool *spool,
    struct process_unit *units, size_t n)
{
	char key[PODIO_SPOOL_MAX_KEY], why[256];
	int64_t until;
	size_t i;
	long reserve = (long)podio_config_get_int(rt->cfg, "rate_reserve");

	for (i = 0; i < n; i++) {
		if (!units[i].hold)
			continue;
		budget_cred_at(rt->cfg, units[i].cred, key, sizeof(key));
		why[0] = '\0';
		until = budget_gate(spool, key, BUDGET_CLASS, reserve, 0, why,
		    sizeof(why));
		if (until == 0)
			until = process_now_ms() + PROCESS_HOLD_RECHECK_MS;
		units[i].hold = 0;
		process_defer(&units[i], until, why[0] != '\0' ? why :
		    "the API budget of its credential waits");
		units[i].defer_counted = 0;
	}
}

/*
 * Fetches the items the units need: the due items of the apps of those
 * units join in (one filter call may serve them all), filter calls per
 * app where they pay, then GET for the rest, each with the credential of
 * the unit's app; when the budget says to wait, or a call is rate
 * limited or finds the API unavailable, the rest of that credential's
 * units waits as long.  probe_cred: the credential whose outage probe
 * this caller holds (its first call is the probe), or -1.
 */
static void
process_fetch_all(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, const struct podio_spool_take_opts *opts,
    long probe_cred, struct process_unit **units, size_t *n, int *locked)
{
	struct podio_spool_take_opts now;
	struct podio_spool_batch *more = NULL;
	char cred[PODIO_SPOOL_MAX_KEY], why[256];
	size_t i, k, nmore = 0, have, ncreds;
	uint64_t app, hook;
	unsigned char *stopped = NULL;
	int rc = 0, multi;

#define PROCESS_PROBING(u) (probe_cred >= 0 && (u).cred == (size_t)probe_cred)
	for (i = 0; i < *n && !(*units)[i].need; i++)
		;
	if (i == *n)
		return;
	ncreds = podio_tokens_count(podio_client_tokens(client));
	multi = ncreds > 1;
	if (multi && (stopped = calloc(ncreds, 1)) == NULL) {
		for (i = 0; i < *n; i++)
			if ((*units)[i].need)
				(*units)[i].hold = 1;
		process_defer_held(rt, spool, *units, *n);
		return;
	}
	budget_cred(rt->cfg, cred, sizeof(cred));
	if (!multi && budget_gate(spool, cred, BUDGET_CLASS,
	    (long)podio_config_get_int(rt->cfg, "rate_reserve"),
	    probe_cred == 0, why, sizeof(why)) != 0) {
		process_note_hold(why);
		for (i = 0; i < *n; i++)
			if ((*units)[i].need)
				(*units)[i].hold = 1;
		return;
	}
	process_note_hold(NULL);
	/* With several credentials, the app of a hook not known yet comes
	 * from the configured apps' hook lists first. */
	for (i = 0; multi && i < *n; i++)
		if ((*units)[i].need && (*units)[i].batch.app_id == 0 &&
		    (*units)[i].batch.n > 0 && process_app_of(
		    (*units)[i].batch.events[0].hook_id) == 0) {
			(void)creds_list_hooks(rt, client, spool,
			    process_app_learned);
			break;
		}
	/* An app not known yet is learned from the first item of its hook
	 * (one GET); the units of the same hook then know it too. */
	for (i = 0; i < *n; i++) {
		if (!(*units)[i].need || (*units)[i].have ||
		    (*units)[i].defer || (*units)[i].hold ||
		    (*units)[i].batch.app_id != 0 || (*units)[i].batch.n == 0)
			continue;
		hook = (*units)[i].batch.events[0].hook_id;
		if ((app = process_app_of(hook)) == 0) {
			process_pick_creds(client, &(*units)[i], 1);
			if (multi && stopped[(*units)[i].cred]) {
				(*units)[i].hold = 1;
				continue;
			}
			rc = process_get(rt, client, spool,
			    PROCESS_PROBING((*units)[i]), &(*units)[i]);
			if ((app = (*units)[i].learned) != 0)
				process_app_learned(hook, app);
			if (rc != 0 && !multi)
				break;
			if (rc != 0)
				stopped[(*units)[i].cred] = 1;
		} else {
			(*units)[i].batch.app_id = app;
		}
		for (k = i + 1; app != 0 && k < *n; k++)
			if ((*units)[k].batch.app_id == 0 &&
			    (*units)[k].batch.n > 0 &&
			    (*units)[k].batch.events[0].hook_id ==
			    (*units)[i].batch.events[0].hook_id)
				(*units)[k].batch.app_id = app;
	}
	/* The other items of those apps join in, settled or nearly (quiet
	 * for half the window: a burst's items settle together, give or
	 * take the time its last round took to arrive). */
	memcpy(&now, opts, sizeof(now));
	now.settle_ms = opts->settle_ms / 2;
	for (i = 0; i < *n; i++) {
		if (!process_app_first(*units, i))
			continue;
		app = (*units)[i].batch.app_id;
		more = NULL;
		nmore = 0;
		/* Up to PROCESS_FILTER_PAGES full pages of the app. */
		for (k = 0, have = 0; k < *n; k++)
			if ((*units)[k].need && (*units)[k].batch.app_id == app)
				have++;
		/* (A take of the spool claims a bounded number of units:
		 * taken again until the pages are full or nothing is left.) */
		while (have < PROCESS_FILTER_PAGES * PODIO_ITEM_FILTER_MAX) {
			more = NULL;
			nmore = 0;
			if (podio_spool_take_app(spool, app, &now,
			    PROCESS_FILTER_PAGES * PODIO_ITEM_FILTER_MAX - have,
			    &more, &nmore) != PODIO_OK || nmore == 0 ||
			    process_add_units(spool, units, n, more,
			    nmore) != 0) {
				podio_spool_batches_free(more, nmore);
				break;
			}
			podio_spool_batches_free(more, nmore);
			have += nmore;
		}
	}
	process_pick_creds(client, *units, *n);
	/* One filter call per app whose units are many enough, with the
	 * app's credential. */
	for (i = 0; i < *n; i++) {
		if (!process_app_first(*units, i) ||
		    (multi && stopped[(*units)[i].cred]))
			continue;
		budget_cred_at(rt->cfg, (*units)[i].cred, cred, sizeof(cred));
		(void)podio_client_use(client, (*units)[i].cred);
		process_filter(rt, client, spool, cred,
		    PROCESS_PROBING((*units)[i]), (*units)[i].batch.app_id,
		    *units, *n);
	}
	if (*locked) {
		pthread_mutex_unlock(&process_bulk_lock);
		*locked = 0;
	}
	for (i = 0; i < *n; i++) {
		if (!(*units)[i].need || (*units)[i].have ||
		    (*units)[i].defer || (*units)[i].hold)
			continue;
		if (multi && stopped[(*units)[i].cred]) {
			(*units)[i].hold = 1;
			continue;
		}
		if (process_get(rt, client, spool,
		    PROCESS_PROBING((*units)[i]), &(*units)[i]) == 0)
			continue;
		if (multi) {
			/* The other credentials' units go on. */
			stopped[(*units)[i].cred] = 1;
			continue;
		}
		/* No call now: the rest waits for the budget too. */
		for (k = i + 1; k < *n; k++)
			if ((*units)[k].need && !(*units)[k].have &&
			    !(*units)[k].defer)
				(*units)[k].hold = 1;
		break;
	}
	if (multi)
		process_defer_held(rt, spool, *units, *n);
	process_note_revisions(spool, *units, *n);
	free(stopped);
#undef PROCESS_PROBING
}

static int64_t process_held_until(const struct runtime *,
    struct podio_spool *);

/* process_one(), with the settle window when settle is 1. */
static enum process_outcome
process_take_run(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int settle, struct process_counts *counts)
{
	struct podio_spool_take_opts opts;
	struct podio_spool_batch *taken = NULL;
	struct process_unit *units = NULL;
	enum process_outcome out = PROCESS_IDLE, o;
	enum podio_err rc;
	int64_t *done_ids = NULL, claim = 0;
	size_t i, n = 0, ntaken = 0, nevents = 0, ndone = 0, held = 0;
	char cred[PODIO_SPOOL_MAX_KEY];
	int locked, probing = 0;
	long probe_cred = -1;
	size_t c, ncreds;

	process_take_opts(rt, settle, &opts);
	/* While the shared budget holds the item fetches, the items that
	 * need one stay in the spool untouched, and the events that need
	 * none (comments, deletes, ...) behind them are taken.  In an
	 * outage, the one caller that claims its due probe takes them: its
	 * first call is the probe. */
	budget_cred(rt->cfg, cred, sizeof(cred));
	ncreds = creds_count(rt->cfg);
	if ((opts.no_fetch = process_held_until(rt, spool) != 0))
		for (c = 0; c < (ncreds > 0 ? ncreds : 1); c++) {
			budget_cred_at(rt->cfg, c, cred, sizeof(cred));
			if ((probing = budget_claim_probe(spool, cred,
			    process_probe_lease_ms(rt), &claim)) != 0) {
				opts.no_fetch = 0;
				probe_cred = (long)c;
				break;
			}
		}
	/* Takes, learning apps and bulk calls happen one thread at a time
	 * in this process: the first thread that takes items of a burst
	 * takes the due items of their apps with them, in full filter
	 * pages, and the threads after it take what is left. */
	locked = process_bulk_enter();
	rc = podio_spool_take_many(spool, &opts, PROCESS_MAX_UNITS, &taken,
	    &ntaken);
	if (rc != PODIO_OK && locked)
		pthread_mutex_unlock(&process_bulk_lock);
	if (rc != PODIO_OK && probing)
		budget_release_probe(spool, cred, claim);
	if (rc == PODIO_ERR_NOT_FOUND)
		return PROCESS_IDLE;
	if (rc != PODIO_OK)
		return PROCESS_ERROR;
	if (process_add_units(spool, &units, &n, taken, ntaken) != 0) {
		podio_spool_batches_free(taken, ntaken);
		if (locked)
			pthread_mutex_unlock(&process_bulk_lock);
		if (probing)
			budget_release_probe(spool, cred, claim);
		return PROCESS_ERROR;
	}
	podio_spool_batches_free(taken, ntaken);
	process_fetch_all(rt, client, spool, &opts, probe_cred, &units, &n,
	    &locked);
	if (locked)
		pthread_mutex_unlock(&process_bulk_lock);
	/* A claim whose probe was not made (nothing to fetch) goes back;
	 * after a probe it is over already. */
	if (probing)
		budget_release_probe(spool, cred, claim);
	for (i = 0; i < n; i++) {
		nevents += units[i].batch.n;
		held += units[i].hold;
	}
	if ((done_ids = calloc(nevents > 0 ? nevents : 1,
	    sizeof(*done_ids))) == NULL) {
		for (i = 0; i < n; i++)
			(void)process_release_batch(spool, &units[i].batch);
		out = PROCESS_ERROR;
		goto fail;
	}
	/* The log lines of the events that need no callback are written
	 * together (podio__deliver flushes them before a callback runs). */
	podio__log_hold();
	for (i = 0; i < n; i++) {
		o = process_unit_run(rt, client, spool, &units[i], done_ids,
		    &ndone, counts);
		if (out == PROCESS_IDLE || o == PROCESS_ERROR)
			out = o;
	}
	podio__log_release();
	if (ndone > 0) {
		rc = podio_spool_done_many(spool, done_ids, ndone);
		if (rc != PODIO_OK && rc != PODIO_ERR_NOT_FOUND) {
			podio_log(PODIO_LOG_ERROR, "%zu events ran, but cannot "
			    "be removed from the spool: %s", ndone,
			    podio_strerror(rc));
			out = PROCESS_ERROR;
		} else if (counts != NULL) {
			counts->done += ndone;
		}
	}
fail:
	for (i = 0; i < n; i++) {
		podio_spool_batch_clear(&units[i].batch);
		free(units[i].text);
	}
	free(units);
	free(done_ids);
	/* Nothing ran, everything waits for the budget: idle. */
	if (out == PROCESS_IDLE && held > 0 && held == n)
		return PROCESS_IDLE;
	if (counts != NULL && ntaken >= PROCESS_MAX_UNITS)
		counts->full_takes++;
	return out == PROCESS_IDLE ? PROCESS_DONE : out;
}

/* See process.h. */
enum process_outcome
process_one(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, struct process_counts *counts)
{
	return process_take_run(rt, client, spool, 1, counts);
}

/* When something becomes due, with or without the settle window (see
 * process_next_due()). */
static int64_t
process_due(const struct runtime *rt, struct podio_spool *spool, int settle)
{
	struct podio_spool_take_opts opts;
	int64_t when = 0;

	process_take_opts(rt, settle, &opts);
	if (podio_spool_next_due(spool, &opts, &when) != PODIO_OK)
		return -1;
	return when;
}

/*
 * When the shared API budget of rt's credential lets the processors
 * fetch again (ms since the epoch), 0 when it does now: the end of a 420
 * pause, or the next look while the reserve is kept.
 */
static int64_t
process_held_until(const struct runtime *rt, struct podio_spool *spool)
{
	char why[256];
	int64_t until, next;

	/* With several credentials, while one may fetch the others' units
	 * wait by themselves (process_defer_held()). */
	until = creds_all_held_until(rt, spool,
	    (long)podio_config_get_int(rt->cfg, "rate_reserve"), why,
	    sizeof(why));
	if (until == 0)
		return 0;
	next = process_now_ms() + PROCESS_HOLD_RECHECK_MS;
	return until < next ? until : next;
}

/* See process.h.  While the shared budget holds the fetches, the events
 * it holds are due (they have no delay of their own): the processors
 * look again when it may have opened, new events waking them sooner;
 * meanwhile only what needs no fetch is looked at (an indexed query that
 * reads none of the held events, however many wait). */
int64_t
process_next_due(const struct runtime *rt, struct podio_spool *spool)
{
	struct podio_spool_take_opts opts;
	int64_t when = 0, held;

	if ((held = process_held_until(rt, spool)) == 0)
		return process_due(rt, spool, 1);
	process_take_opts(rt, 1, &opts);
	opts.no_fetch = 1;
	if (podio_spool_next_due(spool, &opts, &when) != PODIO_OK)
		return -1;
	return when > 0 && when < held ? when : held;
}

/*
 * How long a drain with a deadline waits before it looks again: only
 * while events are held by their settle window alone (due without it),
 * until the window ends; -1 when nothing is held so (retries due later
 * are left for later).
 */
static int64_t
process_drain_wait(const struct runtime *rt, struct podio_spool *spool)
{
	int64_t plain, when, now;

	plain = process_due(rt, spool, 0);
	now = process_now_ms();
	if (plain <= 0 || plain > now)
		return -1;
	if ((when = process_due(rt, spool, 1)) <= 0)
		return -1;
	return when > now ? when - now : 0;
}

/* See process.h. */
int
process_drain(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int64_t deadline_ms, struct process_spool *ps,
    struct process_counts *counts)
{
	struct timespec ts;
	int64_t ms;
	int settle = deadline_ms > 0, first = 1;

	for (;;) {
		if (ps != NULL && process_spool_stopping(ps))
			return 0;
		/* One take at least: a process whose budget ran out while
		 * it started (a busy machine) still moves the spool on, and
		 * so can hand over to a successor. */
		if (!first && deadline_ms > 0 && process_now_ms() >= deadline_ms)
			return 0;
		first = 0;
		switch (process_take_run(rt, client, spool, settle, counts)) {
		case PROCESS_IDLE:
			/* What the budget holds is left for later (the next
			 * worker, cron). */
			if (!settle || process_held_until(rt, spool) != 0 ||
			    (ms = process_drain_wait(rt, spool)) < 0)
				return 0;
			if (process_now_ms() + ms >= deadline_ms) {
				/* The window ends after the budget: what
				 * waits for it is taken now instead. */
				settle = 0;
				break;
			}
			if (ms < PROCESS_DRAIN_MIN_SLEEP_MS)
				ms = PROCESS_DRAIN_MIN_SLEEP_MS;
			ts.tv_sec = (time_t)(ms / 1000);
			ts.tv_nsec = (long)(ms % 1000) * 1000000L;
			(void)nanosleep(&ts, NULL);
			break;
		case PROCESS_ERROR:
			return -1;
		default:
			break;
		}
	}
}

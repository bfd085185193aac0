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
 * Events are taken one at a time (max_events 1): the spool hands out the
 * events of one item in arrival order and never two of them at once, and
 * a processor told to stop has only the event in hand to finish.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "deliver.h"
#include "process.h"
#include "runtime.h"
#include "spool.h"

/* First retry delay, and the longest one.  With retry_max 12 the tries
 * of an event whose callbacks keep failing span about a day (1, 2, 4 ...
 * 256 minutes, then 8 hours twice, each +-25%). */
#define PROCESS_BACKOFF_BASE_MS (60 * 1000)
#define PROCESS_BACKOFF_MAX_MS  (8 * 3600 * 1000)
/* The wait after a 420 that names none. */
#define PROCESS_RATE_WAIT_MS    (300 * 1000)
/* The shortest lease of a taken event. */
#define PROCESS_LEASE_MIN_MS    (5 * 60 * 1000)
/* The longest stored event decoded (the spool's own cap). */
#define PROCESS_EVENT_MAX       PODIO_SPOOL_MAX_EVENT

struct process_spool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct podio_spool *spool;     /* owned, NULL until opened */
	uint64_t gen;                  /* notifications so far */
	int stopping;
};

/* See process.h. */
int64_t
process_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------ the holder */

/* See process.h. */
struct process_spool *
process_spool_new(void)
{
	struct process_spool *ps;
	pthread_condattr_t attr;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return NULL;
	if (pthread_mutex_init(&ps->lock, NULL) != 0) {
		free(ps);
		return NULL;
	}
	/* Timed waits on the monotonic clock: a clock step must not make
	 * a processor sleep for hours. */
	if (pthread_condattr_init(&attr) != 0 ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&ps->cond, &attr) != 0) {
		pthread_mutex_destroy(&ps->lock);
		free(ps);
		return NULL;
	}
	pthread_condattr_destroy(&attr);
	return ps;
}

/* See process.h. */
void
process_spool_free(struct process_spool *ps)
{
	if (ps == NULL)
		return;
	podio_spool_close(ps->spool);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

/*
 * Test seam: PODIO_TEST_SPOOL_MAX_PAGES (a page count, 1 to 2^31) caps
 * the spool database of this process as a full disk would
 * (podio__spool_set_max_pages()), for tests on machines where a small
 * file system cannot be mounted.  Not a configuration key.
 */
static void
process_spool_test_cap(struct podio_spool *spool)
{
	const char *env;
	char *end;
	long v;

	env = getenv("PODIO_TEST_SPOOL_MAX_PAGES");
	if (env == NULL || env[0] == '\0')
		return;
	v = strtol(env, &end, 10);
	if (*end == '\0' && v >= 1 && v <= 2147483647L &&
	    podio__spool_set_max_pages(spool, v) < 0)
		podio_log(PODIO_LOG_WARN, "cannot cap the spool at %ld pages",
		    v);
}

/* See process.h.  The open happens under the lock, so two threads never
 * open two handles. */
struct podio_spool *
process_spool_get(struct process_spool *ps, const char *dir, char *err,
    size_t errlen)
{
	struct podio_spool *spool;
	enum podio_err rc;

	pthread_mutex_lock(&ps->lock);
	if (ps->spool == NULL) {
		if (dir == NULL || dir[0] == '\0') {
			snprintf(err, errlen, "spool_dir is not set");
		} else if ((rc = podio_spool_open(dir, &ps->spool, err,
		    errlen)) != PODIO_OK) {
			ps->spool = NULL;
			if (errlen > 0 && err[0] == '\0')
				snprintf(err, errlen, "%s: %s", dir,
				    podio_strerror(rc));
		} else {
			process_spool_test_cap(ps->spool);
		}
	}
	spool = ps->spool;
	pthread_mutex_unlock(&ps->lock);
	return spool;
}

/* See process.h. */
void
process_spool_notify(struct process_spool *ps)
{
	pthread_mutex_lock(&ps->lock);
	ps->gen++;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->lock);
}

/* See process.h. */
uint64_t
process_spool_generation(struct process_spool *ps)
{
	uint64_t gen;

	pthread_mutex_lock(&ps->lock);
	gen = ps->gen;
	pthread_mutex_unlock(&ps->lock);
	return gen;
}

/* See process.h. */
int
process_spool_wait(struct process_spool *ps, uint64_t gen, int64_t ms)
{
	struct timespec until;
	int stopping, rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &until);
	if (ms < 0)
		ms = 0;
	until.tv_sec += (time_t)(ms / 1000);
	until.tv_nsec += (long)(ms % 1000) * 1000000L;
	if (until.tv_nsec >= 1000000000L) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&ps->lock);
	while (!ps->stopping && ps->gen == gen && rc == 0)
		rc = pthread_cond_timedwait(&ps->cond, &ps->lock, &until);
	stopping = ps->stopping;
	pthread_mutex_unlock(&ps->lock);
	return stopping;
}

/* See process.h. */
void
process_spool_stop(struct process_spool *ps)
{
	pthread_mutex_lock(&ps->lock);
	ps->stopping = 1;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->lock);
}

/* See process.h. */
int
process_spool_stopping(struct process_spool *ps)
{
	int stopping;

	pthread_mutex_lock(&ps->lock);
	stopping = ps->stopping;
	pthread_mutex_unlock(&ps->lock);
	return stopping;
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

/* Appends the percent-encoding of s to buf (capacity cap, used *len);
 * returns -1 when it does not fit. */
static int
process_encode(char *buf, size_t cap, size_t *len, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	unsigned char c;

	for (; *s != '\0'; s++) {
		c = (unsigned char)*s;
		if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
		    (c >= '0' && c <= '9') || c == '-' || c == '_' ||
		    c == '.' || c == '~') {
			if (*len + 1 >= cap)
				return -1;
			buf[(*len)++] = (char)c;
		} else {
			if (*len + 3 >= cap)
				return -1;
			buf[(*len)++] = '%';
			buf[(*len)++] = hex[c >> 4];
			buf[(*len)++] = hex[c & 15];
		}
	}
	buf[*len] = '\0';
	return 0;
}

/*
 * Rebuilds the delivery of a stored event from the "params" member of
 * its JSON (json, len bytes).  On success *out receives it (the caller
 * frees it with podio_delivery_free()).  Returns PODIO_OK,
 * PODIO_ERR_NOMEM, or PODIO_ERR_BAD_JSON / PODIO_ERR_INVALID for a
 * record that cannot be decoded (why, size whylen, says what).
 */
static enum podio_err
process_delivery(const char *json, size_t len, struct podio_delivery **out,
    char *why, size_t whylen)
{
	cJSON *root = NULL, *params, *p;
	struct podio_params *set = NULL;
	const char *end = NULL, *reason = NULL;
	char *body = NULL;
	size_t cap, used = 0;
	enum podio_err rc = PODIO_ERR_BAD_JSON;

	*out = NULL;
	if (json == NULL || len > PROCESS_EVENT_MAX) {
		snprintf(why, whylen, "the stored event is missing or too "
		    "large");
		goto fail;
	}
	/* cJSON sets its global error pointer here; it is never read. */
	root = cJSON_ParseWithOpts(json, &end, 1);
	params = root != NULL ? cJSON_GetObjectItemCaseSensitive(root,
	    "params") : NULL;
	if (!cJSON_IsObject(params)) {
		snprintf(why, whylen, "the stored event has no parameters");
		goto fail;
	}
	/* Each byte becomes at most 3, plus '=' and '&' per pair. */
	cap = 3 * len + 16;
	rc = PODIO_ERR_NOMEM;
	if ((body = malloc(cap)) == NULL)
		goto fail;
	body[0] = '\0';
	rc = PODIO_ERR_BAD_JSON;
	cJSON_ArrayForEach(p, params) {
		if (!cJSON_IsString(p) || p->string == NULL) {
			snprintf(why, whylen, "a stored parameter is not a "
			    "string");
			goto fail;
		}
		/* The separators go in bare; names and values encoded. */
		if (used > 0 && used + 1 < cap)
			body[used++] = '&';
		if (process_encode(body, cap, &used, p->string) != 0 ||
		    used + 1 >= cap)
			goto fail;
		body[used++] = '=';
		body[used] = '\0';
		if (process_encode(body, cap, &used, p->valuestring) != 0)
			goto fail;
	}
	rc = PODIO_ERR_NOMEM;
	if ((set = podio_params_new(0)) == NULL)
		goto fail;
	rc = podio_params_parse(set, body, used, &reason);
	if (rc != PODIO_OK) {
		snprintf(why, whylen, "the stored parameters cannot be "
		    "decoded: %s", reason != NULL ? reason : podio_strerror(rc));
		goto fail;
	}
	rc = podio_delivery_new(set, out, why, whylen);
	set = NULL;
fail:
	podio_params_free(set);
	if (body != NULL) {
		explicit_bzero(body, cap);
		free(body);
	}
	cJSON_Delete(root);
	return rc;
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

/* The lease of a taken event: long enough for its fetch and callbacks. */
static int64_t
process_lease_ms(const struct runtime *rt)
{
	int64_t ms, api;

	api = podio_config_get_ms(rt->cfg, "timeout");
	ms = 2 * (rt->exec_timeout_ms > 0 ? rt->exec_timeout_ms : 0) +
	    2 * (api > 0 ? api : 0) + 60 * 1000;
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
		snprintf(line, sizeof(line), "Podio unavailable, retry in "
		    "%" PRId64 " ms (not counted as a try): %s", delay,
		    reason);
	process_log(PODIO_LOG_WARN, ev, line);
	return PROCESS_RETRY;
}

/* Handles the taken event ev (see process_one()). */
static enum process_outcome
process_event(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, const struct podio_spool_event *ev)
{
	struct podio__deliver_ctx ctx;
	struct podio__deliver_result res;
	struct podio_call_info info;
	struct podio_delivery *d = NULL;
	char why[512], reason[PODIO_SPOOL_MAX_REASON];
	enum process_outcome out;
	enum podio_err rc;
	int64_t wait;

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
		goto fail;
	}
	runtime_deliver_ctx(rt, client, &ctx);
	(void)podio__deliver(&ctx, d, &res);
	if (res.status == 200 && res.failed == 0) {
		rc = podio_spool_done(spool, ev->id);
		if (rc != PODIO_OK && rc != PODIO_ERR_NOT_FOUND) {
			snprintf(reason, sizeof(reason), "ran, but cannot be "
			    "removed from the spool: %s", podio_strerror(rc));
			process_log(PODIO_LOG_ERROR, ev, reason);
			out = PROCESS_ERROR;
			goto fail;
		}
		snprintf(reason, sizeof(reason), "done: %s (%zu callback%s)",
		    res.reason, res.ran, res.ran == 1 ? "" : "s");
		process_log(PODIO_LOG_INFO, ev, reason);
		out = PROCESS_DONE;
	} else if (res.status == 200) {
		process_callback_reason(&res, reason, sizeof(reason));
		out = process_failed(rt, spool, ev, 1, 0, reason);
	} else if (res.status == 400) {
		/* Malformed for its type: no try can change that. */
		out = podio_spool_dead(spool, ev->id, res.reason) ==
		    PODIO_OK ? PROCESS_DEAD : PROCESS_ERROR;
		process_log(PODIO_LOG_ERROR, ev, res.reason);
	} else {
		wait = 0;
		if (res.err == PODIO_ERR_RATE_LIMITED) {
			podio_client_last(client, &info);
			wait = info.retry_after > 0 ?
			    (int64_t)info.retry_after * 1000 :
			    PROCESS_RATE_WAIT_MS;
		}
		out = process_failed(rt, spool, ev, !process_outage(res.err),
		    wait, res.reason);
	}
fail:
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	return out;
}

/* See process.h. */
enum process_outcome
process_one(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool)
{
	struct podio_spool_take_opts opts;
	struct podio_spool_batch batch;
	enum process_outcome out;
	enum podio_err rc;

	memset(&opts, 0, sizeof(opts));
	memset(&batch, 0, sizeof(batch));
	opts.lease_ms = process_lease_ms(rt);
	opts.max_events = 1;
	rc = podio_spool_take(spool, &opts, &batch);
	if (rc == PODIO_ERR_NOT_FOUND)
		return PROCESS_IDLE;
	if (rc != PODIO_OK)
		return PROCESS_ERROR;
	out = batch.n > 0 ? process_event(rt, client, spool,
	    &batch.events[0]) : PROCESS_IDLE;
	podio_spool_batch_clear(&batch);
	return out;
}

/* See process.h. */
int
process_drain(struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, int64_t deadline_ms, struct process_spool *ps,
    struct process_counts *counts)
{
	for (;;) {
		if (ps != NULL && process_spool_stopping(ps))
			return 0;
		if (deadline_ms > 0 && process_now_ms() >= deadline_ms)
			return 0;
		switch (process_one(rt, client, spool)) {
		case PROCESS_IDLE:
			return 0;
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
			return -1;
		}
	}
}

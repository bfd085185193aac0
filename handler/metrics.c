/*
 * metrics.c: the counters of a server and their page (see metrics.h).
 *
 * Counters by label are arrays of atomics indexed by a small fixed set
 * (the event types Podio documents, the endpoint classes) and by HTTP
 * status (100 to 599, plus "error" for API calls that got no answer), so
 * counting is one relaxed atomic add and no sender can add labels.  The
 * page lists the non-zero ones.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podio.h"
#include "budget.h"
#include "creds.h"
#include "log.h"
#include "metrics.h"
#include "process.h"
#include "runtime.h"
#include "spool.h"
#include "util.h"

/* The statuses counted: 100 to 599, and slot 0 for "no answer". */
#define METRICS_STATUS_MIN   100
#define METRICS_STATUS_MAX   599
#define METRICS_STATUSES     (METRICS_STATUS_MAX - METRICS_STATUS_MIN + 2)
/* The largest page made (a few KiB in practice). */
#define METRICS_PAGE_MAX     (1024 * 1024)
/* The most credentials whose API state a page shows (the first ones). */
#define METRICS_CREDS_MAX    64

/* The event types of the label "type": those Podio documents, then
 * "other" (an accepted type not listed) and "none" (refused before a
 * delivery was made). */
static const char *const metrics_types[] = {
	"hook.verify",
	"item.create", "item.update", "item.delete",
	"comment.create", "comment.delete",
	"file.change",
	"app.create", "app.update", "app.delete",
	"form.create", "form.update", "form.delete",
	"task.create", "task.update", "task.delete",
	"member.add", "member.remove",
	"status.create", "status.update", "status.delete",
	"tag.add", "tag.delete",
	"other", "none"
};
#define METRICS_NTYPES (sizeof(metrics_types) / sizeof(metrics_types[0]))
#define METRICS_TYPE_OTHER (METRICS_NTYPES - 2)
#define METRICS_TYPE_NONE  (METRICS_NTYPES - 1)

/* The endpoint classes of the label "endpoint". */
enum metrics_endpoint {
	METRICS_EP_TOKEN = 0,   /* POST /oauth/token */
	METRICS_EP_ITEM,        /* /item/{id} and the like */
	METRICS_EP_FILTER,      /* POST /item/app/{id}/filter/ */
	METRICS_EP_HOOK,        /* /hook/... */
	METRICS_EP_OTHER,
	METRICS_NENDPOINTS
};
static const char *const metrics_endpoints[METRICS_NENDPOINTS] = {
	"token", "item", "filter", "hook", "other"
};

struct metrics {
	atomic_ullong deliveries[METRICS_NTYPES][METRICS_STATUSES];
	atomic_ullong api_calls[METRICS_NENDPOINTS][METRICS_STATUSES];
	atomic_ullong acked;
	atomic_ullong duplicates;
	atomic_ullong processed;
	atomic_ullong retried;
	atomic_ullong dead;
	/* The page's own spool handle: only the thread making pages uses
	 * it. */
	struct podio_spool *spool;
	char *spool_where;
	int spool_warned;
};

/* See metrics.h. */
struct metrics *
metrics_new(void)
{
	/* calloc's zeros are valid atomics of 0 (the same representation
	 * on every platform with lock-free 64-bit atomics). */
	return calloc(1, sizeof(struct metrics));
}

/* See metrics.h. */
void
metrics_free(struct metrics *m)
{
	if (m == NULL)
		return;
	podio_spool_close(m->spool);
	free(m->spool_where);
	free(m);
}

/* The slot of an HTTP status, 0 for none or one out of range. */
static size_t
metrics_status_slot(long status)
{
	if (status < METRICS_STATUS_MIN || status > METRICS_STATUS_MAX)
		return 0;
	return (size_t)(status - METRICS_STATUS_MIN) + 1;
}

static void
metrics_add(atomic_ullong *c, unsigned long long n)
{
	if (n > 0)
		atomic_fetch_add_explicit(c, n, memory_order_relaxed);
}

/* See metrics.h. */
void
metrics_delivery(struct metrics *m, const char *type, int status)
{
	size_t i = METRICS_TYPE_NONE, slot;

	if (m == NULL || (slot = metrics_status_slot(status)) == 0)
		return;
	if (type != NULL) {
		for (i = 0; i < METRICS_TYPE_OTHER; i++)
			if (strcmp(type, metrics_types[i]) == 0)
				break;
	}
	metrics_add(&m->deliveries[i][slot], 1);
}

/* See metrics.h. */
void
metrics_acked(struct metrics *m, int duplicate)
{
	if (m != NULL)
		metrics_add(duplicate ? &m->duplicates : &m->acked, 1);
}

/* See metrics.h. */
void
metrics_processed(struct metrics *m, const struct process_counts *counts)
{
	if (m == NULL || counts == NULL)
		return;
	metrics_add(&m->processed, counts->done);
	metrics_add(&m->retried, counts->retry);
	metrics_add(&m->dead, counts->dead);
}

/* The endpoint class of an API path (relative to api_url). */
static enum metrics_endpoint
metrics_endpoint_of(const char *path)
{
	if (strncmp(path, "/oauth/token", 12) == 0)
		return METRICS_EP_TOKEN;
	if (strncmp(path, "/item/app/", 10) == 0 &&
	    strstr(path, "/filter") != NULL)
		return METRICS_EP_FILTER;
	if (strncmp(path, "/item/", 6) == 0)
		return METRICS_EP_ITEM;
	if (strncmp(path, "/hook/", 6) == 0)
		return METRICS_EP_HOOK;
	return METRICS_EP_OTHER;
}

/* See metrics.h. */
void
metrics_api_call(const struct podio_call_note *note, void *arg)
{
	struct metrics *m = arg;

	if (m == NULL || note == NULL || note->path == NULL)
		return;
	metrics_add(&m->api_calls[metrics_endpoint_of(note->path)]
	    [metrics_status_slot(note->http_status)], 1);
}

/* ------------------------------------------------------------ the page */

/* The page being made: the text, and whether anything failed. */
struct metrics_page {
	struct podio__buf b;
	int failed;
};

static void metrics_put(struct metrics_page *p, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
metrics_put(struct metrics_page *p, const char *fmt, ...)
{
	char line[512];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line) ||
	    podio__buf_append(&p->b, line, (size_t)n) != 0)
		p->failed = 1;
}

/* A label value, quoted with the text format's escapes (backslash,
 * double quote, line feed), into out (size n; cut when longer). */
static const char *
metrics_quote(const char *value, char *out, size_t n)
{
	size_t o = 0;

	if (n < 3)
		return "\"\"";
	out[o++] = '"';
	for (; *value != '\0' && o + 3 < n; value++) {
		if (*value == '\\' || *value == '"') {
			out[o++] = '\\';
			out[o++] = *value;
		} else if (*value == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else
			out[o++] = *value;
	}
	out[o++] = '"';
	out[o] = '\0';
	return out;
}

/* The HELP and TYPE lines of a metric. */
static void
metrics_head(struct metrics_page *p, const char *name, const char *type,
    const char *help)
{
	metrics_put(p, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A time in ms since the epoch as seconds with 3 decimals. */
static void
metrics_time(struct metrics_page *p, const char *name, const char *labels,
    int64_t ms)
{
	metrics_put(p, "%s%s %" PRId64 ".%03d\n", name, labels, ms / 1000,
	    (int)(ms % 1000));
}

/* A counter without labels. */
static void
metrics_counter(struct metrics_page *p, const char *name, const char *help,
    atomic_ullong *c)
{
	metrics_head(p, name, "counter", help);
	metrics_put(p, "%s %llu\n", name, (unsigned long long)
	    atomic_load_explicit(c, memory_order_relaxed));
}

/* One series of a counter by label and status: {LABEL="value",status=} */
static void
metrics_by_status(struct metrics_page *p, const char *name,
    const char *label, const char *value, atomic_ullong *slots)
{
	char q[160], status[8];
	unsigned long long v;
	size_t s;

	metrics_quote(value, q, sizeof(q));
	for (s = 0; s < METRICS_STATUSES; s++) {
		v = atomic_load_explicit(&slots[s], memory_order_relaxed);
		if (v == 0)
			continue;
		if (s == 0)
			snprintf(status, sizeof(status), "error");
		else
			snprintf(status, sizeof(status), "%zu",
			    s - 1 + METRICS_STATUS_MIN);
		metrics_put(p, "%s{%s=%s,status=\"%s\"} %llu\n", name, label,
		    q, status, v);
	}
}

/* The counters of this process. */
static void
metrics_counters(struct metrics *m, struct metrics_page *p)
{
	unsigned long long tokens = 0;
	size_t i;

	metrics_head(p, "podio_webhook_deliveries_total", "counter",
	    "Webhook requests answered by this process, by event type "
	    "(none: refused before the delivery was read; other: a type "
	    "not in Podio's list) and HTTP status (408: dropped, the "
	    "request did not arrive within client_timeout).");
	for (i = 0; i < METRICS_NTYPES; i++)
		metrics_by_status(p, "podio_webhook_deliveries_total", "type",
		    metrics_types[i], m->deliveries[i]);
	metrics_counter(p, "podio_webhook_events_acknowledged_total",
	    "Events stored durably in the spool and answered 200.",
	    &m->acked);
	metrics_counter(p, "podio_webhook_events_duplicate_total",
	    "Deliveries answered 200 as duplicates of an event stored "
	    "before (stored once).", &m->duplicates);
	metrics_counter(p, "podio_webhook_events_processed_total",
	    "Events whose callbacks all succeeded, removed from the spool.",
	    &m->processed);
	metrics_counter(p, "podio_webhook_events_retried_total",
	    "Event runs that failed and left the event for a later try "
	    "(callbacks failed, or Podio unavailable).", &m->retried);
	metrics_counter(p, "podio_webhook_events_dead_total",
	    "Events set aside as dead letters.", &m->dead);
	metrics_head(p, "podio_webhook_api_calls_total", "counter",
	    "Podio API calls made by this process, by endpoint class "
	    "(token, item, filter, hook, other) and HTTP status (error: "
	    "no answer, for a network, TLS or timeout failure).");
	for (i = 0; i < METRICS_NENDPOINTS; i++)
		metrics_by_status(p, "podio_webhook_api_calls_total",
		    "endpoint", metrics_endpoints[i], m->api_calls[i]);
	for (i = 0; i < METRICS_STATUSES; i++)
		tokens += atomic_load_explicit(
		    &m->api_calls[METRICS_EP_TOKEN][i], memory_order_relaxed);
	metrics_head(p, "podio_webhook_token_requests_total", "counter",
	    "Access token requests made by this process (answered or "
	    "not).");
	metrics_put(p, "podio_webhook_token_requests_total %llu\n", tokens);
}

/* The spool handle for where: m's own, opened again when where changed.
 * NULL (warned once) when it cannot be opened. */
static struct podio_spool *
metrics_spool(struct metrics *m, const char *where)
{
	char err[512];

	if (where == NULL || where[0] == '\0')
		return NULL;
	if (m->spool != NULL && strcmp(m->spool_where, where) == 0)
		return m->spool;
	podio_spool_close(m->spool);
	m->spool = NULL;
	free(m->spool_where);
	if ((m->spool_where = strdup(where)) == NULL)
		return NULL;
	err[0] = '\0';
	if (podio_spool_open(where, &m->spool, err, sizeof(err)) !=
	    PODIO_OK) {
		m->spool = NULL;
		if (!m->spool_warned)
			podio_log(PODIO_LOG_WARN, "metrics: the spool cannot "
			    "be read: %s", err);
		m->spool_warned = 1;
		free(m->spool_where);
		m->spool_where = NULL;
		return NULL;
	}
	m->spool_warned = 0;
	return m->spool;
}

/* The API state of one rate class as every process sharing the spool
 * sees it (budget.h). */
static void
metrics_budget_class(struct metrics_page *p, const char *cred,
    const char *cls, const struct budget *b, int part)
{
	char labels[96];

	snprintf(labels, sizeof(labels), "{credential=\"%.31s\","
	    "class=\"%.15s\"}", cred, cls);
	switch (part) {
	case 0:
		metrics_put(p, "podio_webhook_api_paused%s %d\n", labels,
		    b->paused_until_ms > 0);
		break;
	case 1:
		if (b->paused_until_ms > 0)
			metrics_time(p, "podio_webhook_api_pause_end_"
			    "timestamp_seconds", labels, b->paused_until_ms);
		break;
	default:
		if (b->remaining >= 0)
			metrics_put(p, "podio_webhook_api_rate_limit_remaining"
			    "%s %ld\n", labels, b->remaining);
		break;
	}
}

/* The spool's state and the API's, read now. */
static void
metrics_shared(struct metrics *m, const struct runtime *rt,
    struct metrics_page *p)
{
	struct podio_spool_status st;
	struct podio_spool *spool;
	struct budget b[METRICS_CREDS_MAX][2];
	static const char *const cls[2] = { BUDGET_CLASS, BUDGET_FILTER_CLASS };
	char names[METRICS_CREDS_MAX][32], labels[64];
	size_t c, ncreds;
	int up = 0, part, i;

	spool = metrics_spool(m, podio_config_spool(rt->cfg));
	if (spool != NULL && podio_spool_status(spool, &st) == PODIO_OK)
		up = 1;
	metrics_head(p, "podio_webhook_spool_up", "gauge",
	    "Whether the spool could be read for this page (1) or not (0); "
	    "without it, no series of the spool and the API state.");
	metrics_put(p, "podio_webhook_spool_up %d\n", up);
	if (!up)
		return;
	metrics_head(p, "podio_webhook_spool_events", "gauge",
	    "Events in the spool by state, for every process sharing it.");
	metrics_put(p, "podio_webhook_spool_events{state=\"pending\"} %zu\n"
	    "podio_webhook_spool_events{state=\"retrying\"} %zu\n"
	    "podio_webhook_spool_events{state=\"in_flight\"} %zu\n"
	    "podio_webhook_spool_events{state=\"dead\"} %zu\n"
	    "podio_webhook_spool_events{state=\"bad\"} %zu\n",
	    st.pending, st.retrying, st.in_flight, st.dead, st.bad);
	metrics_head(p, "podio_webhook_spool_oldest_age_seconds", "gauge",
	    "Age of the oldest event not finished yet (pending, retrying "
	    "or in flight); 0 when there is none.");
	metrics_put(p, "podio_webhook_spool_oldest_age_seconds %" PRId64
	    ".%03d\n", st.oldest_age_ms / 1000, (int)(st.oldest_age_ms %
	    1000));

	/* Every credential has its own pauses, outage and count. */
	ncreds = creds_count(rt->cfg);
	if (ncreds == 0)
		ncreds = 1;
	if (ncreds > METRICS_CREDS_MAX)
		ncreds = METRICS_CREDS_MAX;
	for (c = 0; c < ncreds; c++) {
		budget_cred_label(rt->cfg, c, names[c], sizeof(names[c]));
		for (i = 0; i < 2; i++)
			budget_read_at(rt->cfg, spool, c, i, &b[c][i]);
	}
	for (part = 0; part < 3; part++) {
		if (part == 0)
			metrics_head(p, "podio_webhook_api_paused", "gauge",
			    "Whether API calls of the rate class are paused "
			    "by a 420 of Podio (1) or not (0).");
		else if (part == 1)
			metrics_head(p, "podio_webhook_api_pause_end_"
			    "timestamp_seconds", "gauge", "When the pause "
			    "of the rate class ends, while there is one.");
		else
			metrics_head(p, "podio_webhook_api_rate_limit_"
			    "remaining", "gauge", "The last "
			    "X-Rate-Limit-Remaining seen within the hour, "
			    "by rate class.");
		for (c = 0; c < ncreds; c++)
			for (i = 0; i < 2; i++)
				metrics_budget_class(p, names[c], cls[i],
				    &b[c][i], part);
	}
	metrics_head(p, "podio_webhook_api_outage", "gauge",
	    "Whether Podio is taken as unavailable for the credential (1: "
	    "its calls wait for the outage's probes) or not (0).");
	for (c = 0; c < ncreds; c++)
		metrics_put(p, "podio_webhook_api_outage{credential=\"%s\"} "
		    "%d\n", names[c], b[c][0].outage_since_ms > 0);
	metrics_head(p, "podio_webhook_api_outage_start_timestamp_seconds",
	    "gauge", "When the outage began, while there is one.");
	for (c = 0; c < ncreds; c++) {
		snprintf(labels, sizeof(labels), "{credential=\"%.31s\"}",
		    names[c]);
		if (b[c][0].outage_since_ms > 0)
			metrics_time(p, "podio_webhook_api_outage_start_"
			    "timestamp_seconds", labels,
			    b[c][0].outage_since_ms);
	}
	metrics_head(p, "podio_webhook_api_next_probe_timestamp_seconds",
	    "gauge", "When the outage's next probe is due, while there is "
	    "one.");
	for (c = 0; c < ncreds; c++) {
		snprintf(labels, sizeof(labels), "{credential=\"%.31s\"}",
		    names[c]);
		if (b[c][0].outage_since_ms > 0)
			metrics_time(p, "podio_webhook_api_next_probe_"
			    "timestamp_seconds", labels, b[c][0].next_probe_ms);
	}
}

/* See metrics.h. */
int
metrics_render(struct metrics *m, const struct runtime *rt, char **out,
    size_t *len)
{
	struct metrics_page p;

	*out = NULL;
	*len = 0;
	memset(&p, 0, sizeof(p));
	p.b.cap = METRICS_PAGE_MAX;
	if (m == NULL)
		return -1;
	metrics_counters(m, &p);
	if (rt != NULL)
		metrics_shared(m, rt, &p);
	if (p.failed) {
		podio__buf_free(&p.b);
		return -1;
	}
	*len = p.b.len;
	if ((*out = podio__buf_steal(&p.b)) == NULL) {
		*len = 0;
		return -1;
	}
	return 0;
}

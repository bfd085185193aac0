/*
 * backfill.c: catching up with the changes Podio did not deliver (see
 * backfill.h), and the command `backfill`.
 */
#include <config.h>

#include <ctype.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "podio.h"
#include "api.h"
#include "backfill.h"
#include "budget.h"
#include "cli.h"
#include "event.h"
#include "log.h"
#include "params.h"
#include "process.h"
#include "runtime.h"
#include "spool.h"
#include "util.h"

#define PROG "podio-webhook"

/*
 * The items one filter call asks for: Podio's most.  Test seam:
 * PODIO_TEST_BACKFILL_PAGE (1 to PODIO_ITEM_FILTER_MAX) makes pages
 * smaller, so that a test pages with a few items.  Not a configuration
 * key.
 */
static size_t
backfill_page(void)
{
	const char *env = getenv("PODIO_TEST_BACKFILL_PAGE");
	char *end;
	long v;

	if (env != NULL && env[0] != '\0') {
		v = strtol(env, &end, 10);
		if (*end == '\0' && v >= 1 && v <= PODIO_ITEM_FILTER_MAX)
			return (size_t)v;
	}
	return PODIO_ITEM_FILTER_MAX;
}

/* See backfill.h. */
const char *
backfill_action_name(enum backfill_action a)
{
	switch (a) {
	case BACKFILL_QUEUED:
		return "queued";
	case BACKFILL_DUPLICATE:
		return "duplicate";
	case BACKFILL_CURRENT:
		return "current";
	case BACKFILL_PENDING:
		return "pending";
	case BACKFILL_WOULD:
		return "would queue";
	}
	return "?";
}

static int
backfill_cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The sorted ids of the items of app that have events waiting in the
 * spool (pending, retrying or in flight) into *ids (caller frees), *n
 * of them.  Returns PODIO_OK or the spool's error.
 */
static enum podio_err
backfill_waiting(struct podio_spool *spool, uint64_t app, uint64_t **ids,
    size_t *n)
{
	struct podio_spool_item *items = NULL;
	size_t i, k = 0;
	enum podio_err e;

	*ids = NULL;
	*n = 0;
	if ((e = podio_spool_pending_items(spool, app, 0, &items, &k)) !=
	    PODIO_OK)
		return e;
	if (k > 0 && (*ids = calloc(k, sizeof(**ids))) == NULL) {
		free(items);
		return PODIO_ERR_NOMEM;
	}
	for (i = 0; i < k; i++)
		(*ids)[i] = items[i].item_id;
	free(items);
	if (k > 1)
		qsort(*ids, k, sizeof(**ids), backfill_cmp_u64);
	*n = k;
	return PODIO_OK;
}

/*
 * Appends the item.update event of item change->item_id of app: hook_id
 * BACKFILL_HOOK_ID, "source": "backfill", the app in the record (so the
 * processors fetch such items in bulk) and, when the revision is known,
 * a dedup key of that revision (two backfills at once append it once).
 * *duplicate is set when it was appended before.
 */
static enum podio_err
backfill_append(struct podio_spool *spool, uint64_t app,
    const struct podio_item_change *change, int *duplicate, char *err,
    size_t errlen)
{
	struct podio_params *params = NULL;
	struct podio_delivery *d = NULL;
	struct podio_spool_record rec;
	struct podio_spool_ack ack;
	char body[128], *json = NULL;
	size_t len = 0;
	enum podio_err e = PODIO_ERR_NOMEM;

	*duplicate = 0;
	snprintf(body, sizeof(body), "type=item.update&hook_id=%d&item_id=%"
	    PRIu64, BACKFILL_HOOK_ID, change->item_id);
	if ((params = podio_params_new(0)) == NULL)
		goto fail;
	if ((e = podio_params_parse(params, body, strlen(body), NULL)) !=
	    PODIO_OK)
		goto fail;
	e = podio_delivery_new(params, &d, err, errlen);
	params = NULL;
	if (e != PODIO_OK)
		goto fail;
	d->source = PODIO_EVENT_SOURCE_BACKFILL;
	if ((e = podio_event_json(d, NULL, 0, NULL, NULL,
	    PODIO_SPOOL_MAX_EVENT, &json, &len)) != PODIO_OK)
		goto fail;
	memset(&rec, 0, sizeof(rec));
	rec.type = d->type;
	rec.has = PODIO_HAS_HOOK_ID | PODIO_HAS_ITEM_ID | PODIO_HAS_APP_ID;
	rec.hook_id = BACKFILL_HOOK_ID;
	rec.item_id = change->item_id;
	rec.app_id = app;
	if (change->revision >= 0) {
		/* The key only: the event itself carries no
		 * item_revision_id (the revision number is not one). */
		rec.has |= PODIO_HAS_ITEM_REVISION_ID;
		rec.item_revision_id = (uint64_t)change->revision;
	}
	rec.event_json = json;
	rec.event_len = len;
	if ((e = podio_spool_append(spool, &rec, &ack, err, errlen)) ==
	    PODIO_OK)
		*duplicate = ack.duplicate;
fail:
	free(json);
	podio_delivery_free(d);
	podio_params_free(params);
	return e;
}

/* Whether rc says Podio could not be reached (an outage). */
static int
backfill_unreached(enum podio_err rc)
{
	return budget_outage_err(rc);
}

/*
 * One page of changes (n of them) against the time since, the kept
 * revisions and the waiting items: each item edited since gets its
 * action.  Returns 1 when an item edited before since was seen (the
 * walk is over), 0 to go on, -1 on a spool failure (res->why set).
 */
static int
backfill_page_run(struct podio_spool *spool, uint64_t app, int64_t since,
    const struct backfill_opts *o, const struct podio_item_change *ch,
    size_t n, const uint64_t *waiting, size_t nwaiting, backfill_item_fn fn,
    void *arg, struct backfill_result *res)
{
	uint64_t ids[PODIO_ITEM_FILTER_MAX];
	int64_t kept[PODIO_ITEM_FILTER_MAX];
	enum backfill_action a;
	enum podio_err e;
	char err[160];
	size_t i, k;
	int dup, over = 0;

	/* An item without a date cannot be placed: it counts as changed. */
	for (k = 0; k < n; k++) {
		if (ch[k].edited_ms > 0 && ch[k].edited_ms < since) {
			over = 1;
			break;
		}
		ids[k] = ch[k].item_id;
	}
	if (k > 0 && (e = podio_spool_fetched_revisions(spool, ids, k,
	    kept)) != PODIO_OK) {
		res->err = e;
		snprintf(res->why, sizeof(res->why), "cannot read the "
		    "spool: %s", podio_strerror(e));
		return -1;
	}
	for (i = 0; i < k; i++) {
		res->listed++;
		if (nwaiting > 0 && bsearch(&ch[i].item_id, waiting, nwaiting,
		    sizeof(*waiting), backfill_cmp_u64) != NULL) {
			a = BACKFILL_PENDING;
			res->pending++;
		} else if (ch[i].revision >= 0 && kept[i] >= ch[i].revision) {
			a = BACKFILL_CURRENT;
			res->current++;
		} else if (o->dry_run) {
			a = BACKFILL_WOULD;
		} else {
			err[0] = '\0';
			if ((e = backfill_append(spool, app, &ch[i], &dup, err,
			    sizeof(err))) != PODIO_OK) {
				res->err = e;
				snprintf(res->why, sizeof(res->why), "cannot "
				    "store the event of item %" PRIu64 ": %s",
				    ch[i].item_id, err[0] != '\0' ? err :
				    podio_strerror(e));
				return -1;
			}
			a = dup ? BACKFILL_DUPLICATE : BACKFILL_QUEUED;
			if (dup)
				res->duplicates++;
			else
				res->queued++;
		}
		if (fn != NULL)
			fn(arg, &ch[i], a);
	}
	return over;
}

/* See backfill.h. */
int
backfill_app(const struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, uint64_t app_id, int64_t since_ms,
    const struct backfill_opts *opts, backfill_item_fn fn, void *arg,
    struct backfill_result *res)
{
	static const struct backfill_opts none;
	const struct backfill_opts *o = opts != NULL ? opts : &none;
	struct podio_item_change *ch = NULL;
	uint64_t *waiting = NULL;
	size_t nwaiting = 0, n = 0, offset = 0, page = backfill_page();
	char cred[PODIO_SPOOL_MAX_KEY], why[200];
	long reserve = (long)podio_config_get_int(rt->cfg, "rate_reserve");
	enum podio_err rc;
	int status = CLI_EXIT_PODIO, over;
	long c;

	memset(res, 0, sizeof(*res));
	/* The app's own credential (or the password flow's). */
	c = podio_tokens_for_app(podio_client_tokens(client), app_id);
	(void)podio_client_use(client, c >= 0 ? (size_t)c : 0);
	budget_cred_at(rt->cfg, podio_client_cred(client), cred,
	    sizeof(cred));
	if ((rc = backfill_waiting(spool, app_id, &waiting, &nwaiting)) !=
	    PODIO_OK) {
		res->err = rc;
		snprintf(res->why, sizeof(res->why), "cannot read the spool: "
		    "%s", podio_strerror(rc));
		return CLI_EXIT_PODIO;
	}
	for (;;) {
		if (o->stopping != NULL && o->stopping(o->stop_arg)) {
			res->err = PODIO_ERR_INVALID;
			snprintf(res->why, sizeof(res->why), "stopped: the "
			    "program stops");
			break;
		}
		if (budget_gate(spool, cred, BUDGET_FILTER_CLASS,
		    o->filter_reserve, 0, why, sizeof(why)) != 0 ||
		    budget_gate(spool, cred, BUDGET_CLASS, reserve, 0, why,
		    sizeof(why)) != 0) {
			res->err = PODIO_ERR_RATE_LIMITED;
			snprintf(res->why, sizeof(res->why), "stopped: %s",
			    why);
			status = strstr(why, "unavailable") != NULL ?
			    CLI_EXIT_UNREACHED : CLI_EXIT_PODIO;
			break;
		}
		rc = podio_item_changes(client, app_id, page, offset, &ch, &n,
		    NULL);
		budget_note_call(spool, client, cred, BUDGET_FILTER_CLASS, rc);
		res->calls++;
		if (rc != PODIO_OK) {
			res->err = rc;
			snprintf(res->why, sizeof(res->why), "%s%s",
			    rc == PODIO_ERR_RATE_LIMITED ? "stopped: Podio "
			    "rate limit: " : "", podio_client_errmsg(client));
			status = backfill_unreached(rc) ? CLI_EXIT_UNREACHED :
			    CLI_EXIT_PODIO;
			break;
		}
		over = backfill_page_run(spool, app_id, since_ms, o, ch, n,
		    waiting, nwaiting, fn, arg, res);
		free(ch);
		ch = NULL;
		if (over == -1)
			break;
		if (over == 1 || n < page) {
			res->complete = 1;
			status = CLI_EXIT_OK;
			break;
		}
		offset += n;
	}
	free(ch);
	free(waiting);
	return status;
}

/* See backfill.h. */
int
backfill_background(const struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, uint64_t app_id, int64_t since_ms,
    const char *what, int (*stopping)(void *), void *arg)
{
	struct backfill_opts opts;
	struct backfill_result res;
	time_t t = (time_t)(since_ms / 1000);
	struct tm tm;
	char since[32], iso[32];
	int status;

	memset(&opts, 0, sizeof(opts));
	opts.filter_reserve = BACKFILL_FILTER_RESERVE;
	opts.stopping = stopping;
	opts.stop_arg = arg;
	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(since, sizeof(since), "%Y-%m-%d %H:%M:%S", &tm) == 0 ||
	    strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
		snprintf(since, sizeof(since), "?");
		snprintf(iso, sizeof(iso), "?");
	}
	status = backfill_app(rt, client, spool, app_id, since_ms, &opts,
	    NULL, NULL, &res);
	if (res.complete)
		podio_log(PODIO_LOG_INFO, "%s: app %" PRIu64 ": %zu item%s "
		    "edited since %s UTC: %zu queued, %zu current, %zu "
		    "pending, %zu duplicate; %zu filter call%s", what, app_id,
		    res.listed, res.listed == 1 ? "" : "s", since, res.queued,
		    res.current, res.pending, res.duplicates, res.calls,
		    res.calls == 1 ? "" : "s");
	else
		podio_log(PODIO_LOG_WARN, "%s: app %" PRIu64 " since %s UTC "
		    "not complete (%zu queued): %s; the rest can be caught up "
		    "with: podio-webhook backfill --app %" PRIu64 " --since "
		    "%s", what, app_id, since, res.queued, res.why, app_id,
		    iso);
	return status;
}

/* See backfill.h. */
int
backfill_parse_since(const char *text, int64_t now_ms, int64_t *ms)
{
	char buf[32];
	size_t len;
	int64_t v;

	if (text == NULL || (len = strlen(text)) == 0 || len >= sizeof(buf))
		return -1;
	if (len >= 10 && isdigit((unsigned char)text[0]) && text[4] == '-') {
		memcpy(buf, text, len + 1);
		if (len > 19 && buf[len - 1] == 'Z')
			buf[--len] = '\0';
		if (len == 10)
			snprintf(buf + 10, sizeof(buf) - 10, " 00:00:00");
		else if (len == 19 && (buf[10] == 'T' || buf[10] == ' '))
			buf[10] = ' ';
		else
			return -1;
		if ((v = podio__api_date_ms(buf)) < 0)
			return -1;
		*ms = v;
		return 0;
	}
	if (podio_parse_duration_ms(text, &v) != 0 || v > now_ms)
		return -1;
	*ms = now_ms - v;
	return 0;
}

/* ---------------------------------------------------------- the command */

/* A time as Podio writes it ("YYYY-MM-DD HH:MM:SS", UTC) into buf. */
static void
backfill_fmt_time(int64_t ms, char *buf, size_t n)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "-");
}

/* What the command prints of each item. */
struct backfill_print {
	int json;
	size_t shown;
};

static void
backfill_print_item(void *arg, const struct podio_item_change *c,
    enum backfill_action a)
{
	struct backfill_print *p = arg;
	char when[32];

	backfill_fmt_time(c->edited_ms, when, sizeof(when));
	if (p->json)
		printf("%s\n    {\"item_id\": %" PRIu64 ", \"revision\": %"
		    PRId64 ", \"last_edit_on\": \"%s\", \"action\": \"%s\"}",
		    p->shown > 0 ? "," : "", c->item_id, c->revision, when,
		    backfill_action_name(a));
	else
		printf("%s item %" PRIu64 " revision %" PRId64 " edited %s\n",
		    backfill_action_name(a), c->item_id, c->revision, when);
	p->shown++;
}

/* The usage of the command. */
#define BACKFILL_SYNOPSIS "backfill --app ID --since TIME [--dry-run] [--json]"

/* See backfill.h. */
void
backfill_usage(FILE *fp)
{
	fprintf(fp, "  %-*s %s\n", CLI_USAGE_WIDTH,
	    "backfill --app ID --since TIME ...",
	    "queue the items changed since TIME");
}

static void
backfill_command_usage(FILE *fp)
{
	fprintf(fp, "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... "
	    BACKFILL_SYNOPSIS "\n"
	    "  Queue an item.update event (\"source\": \"backfill\") for each "
	    "item of app ID\n"
	    "  edited since TIME whose current revision was not fetched yet "
	    "and that has\n"
	    "  no event waiting, and print one line per item.  TIME: a UTC "
	    "date or date\n"
	    "  and time (2024-05-01, 2024-05-01T12:00:00Z) or a duration ago "
	    "(30m, 2h, 1d).\n"
	    "  Spends filter calls (one per 500 items) within the API "
	    "budget; stops when\n"
	    "  it is paused.  Deleted items and comments are not recovered.\n"
	    "  --dry-run   list, queue nothing\n"
	    "  --json      print one JSON object\n");
}

static int
backfill_usage_error(const char *msg)
{
	fprintf(stderr, PROG ": backfill: %s\n", msg);
	backfill_command_usage(stderr);
	return CLI_EXIT_USAGE;
}

/* See backfill.h. */
int
backfill_cmd(struct podio_config **cfg, const struct podio_callbacks *fns,
    int argc, char **argv)
{
	struct backfill_opts opts;
	struct backfill_result res;
	struct backfill_print pr;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool = NULL;
	const char *app_text = NULL, *since_text = NULL, *dir;
	char err[512], since_buf[32], *shown;
	uint64_t app = 0;
	int64_t since = 0;
	int i, json = 0, rc, status = CLI_EXIT_PODIO;

	memset(&opts, 0, sizeof(opts));
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			backfill_command_usage(stdout);
			return CLI_EXIT_OK;
		}
	}
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			json = 1;
		else if (strcmp(argv[i], "--dry-run") == 0)
			opts.dry_run = 1;
		else if (strcmp(argv[i], "--app") == 0 && i + 1 < argc)
			app_text = argv[++i];
		else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc)
			since_text = argv[++i];
		else
			return backfill_usage_error("unknown or incomplete "
			    "option");
	}
	if (app_text == NULL || podio_parse_u64(app_text, &app) != 0 ||
	    app == 0)
		return backfill_usage_error("--app wants an app id");
	if (since_text == NULL || backfill_parse_since(since_text,
	    podio__wall_ms(), &since) != 0)
		return backfill_usage_error("--since wants a UTC date and time "
		    "(2024-05-01T12:00:00Z) or a duration ago (2h)");

	rc = runtime_new(*cfg, fns, NULL, &rt, err, sizeof(err));
	*cfg = NULL;
	if (rc != 0) {
		fprintf(stderr, PROG ": backfill: %s\n", err);
		return rc == RUNTIME_NOMEM ? CLI_EXIT_PODIO : CLI_EXIT_USAGE;
	}
	dir = podio_config_spool(rt->cfg);
	if (dir == NULL || dir[0] == '\0') {
		fprintf(stderr, PROG ": backfill: spool_dir is not set: the "
		    "events go through the spool\n");
		status = CLI_EXIT_USAGE;
		goto done;
	}
	err[0] = '\0';
	if (podio_spool_open(dir, &spool, err, sizeof(err)) != PODIO_OK) {
		shown = podio_spool_mask(dir);
		fprintf(stderr, PROG ": backfill: cannot open the spool: %s\n",
		    err[0] != '\0' ? err : shown != NULL ? shown :
		    "(out of memory)");
		free(shown);
		goto done;
	}
	if (runtime_client(rt, &client) != PODIO_OK) {
		fprintf(stderr, PROG ": backfill: out of memory\n");
		goto done;
	}
	memset(&pr, 0, sizeof(pr));
	pr.json = json;
	backfill_fmt_time(since, since_buf, sizeof(since_buf));
	if (json)
		printf("{\"app_id\": %" PRIu64 ", \"since\": \"%s\", "
		    "\"dry_run\": %s, \"items\": [", app, since_buf,
		    opts.dry_run ? "true" : "false");
	status = backfill_app(rt, client, spool, app, since, &opts,
	    backfill_print_item, &pr, &res);
	if (json) {
		printf("%s], \"listed\": %zu, \"queued\": %zu, "
		    "\"duplicates\": %zu, \"current\": %zu, \"pending\": %zu, "
		    "\"filter_calls\": %zu, \"complete\": %s, \"stopped\": ",
		    pr.shown > 0 ? "\n  " : "", res.listed, res.queued,
		    res.duplicates, res.current, res.pending, res.calls,
		    res.complete ? "true" : "false");
		if (res.complete)
			printf("null}\n");
		else {
			printf("\"");
			for (i = 0; res.why[i] != '\0'; i++)
				if (res.why[i] == '"' || res.why[i] == '\\')
					printf("\\%c", res.why[i]);
				else if ((unsigned char)res.why[i] >= 0x20)
					putchar(res.why[i]);
			printf("\"}\n");
		}
	} else {
		printf("app %" PRIu64 ": %zu item%s edited since %s: %zu "
		    "%s, %zu duplicate, %zu current, %zu pending; %zu "
		    "filter call%s\n", app, res.listed, res.listed == 1 ?
		    "" : "s", since_buf, opts.dry_run ? res.listed -
		    res.current - res.pending : res.queued, opts.dry_run ?
		    "to queue" : "queued", res.duplicates, res.current,
		    res.pending, res.calls, res.calls == 1 ? "" : "s");
	}
	if (!res.complete)
		fprintf(stderr, PROG ": backfill: app %" PRIu64 ": %s; the "
		    "events queued so far stay, run it again to go on\n", app,
		    res.why);
done:
	podio_client_free(client);
	podio_spool_close(spool);
	runtime_unref(rt);
	return status;
}

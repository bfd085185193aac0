/*
 * doctor_api.c: the checks of doctor that talk to Podio (see
 * doctor_int.h): the API answers, the credential gets or reuses a token,
 * the rate limit's count; what the processors keep in the spool of the
 * API (a 420 pause, an outage); the hooks of every configured app.
 *
 * The calls: podio_authenticate() (a token held by the process, the token
 * cache or the spool's token store, else one token request), then one
 * list of hooks per app - the first one also proves the token and brings
 * the rate limit's count - or GET /user/status when no app is
 * configured.  Nothing is written: no hook changes, and what the answers
 * say of the budget is not recorded in the spool.
 */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "podio.h"
#include "budget.h"
#include "doctor_int.h"
#include "hooks.h"
#include "http.h"
#include "secret.h"
#include "spool.h"

#define PROG "podio-webhook"

/* ------------------------------------------------------------ the API */

/* Who the credential is, for messages: "app 1234 (client X)". */
static void
doctor_whom(const struct doctor *d, char *buf, size_t n)
{
	if (doctor_app_flow(d->cfg))
		snprintf(buf, n, "app %s (client %s)",
		    podio_config_get(d->cfg, "app_id"),
		    podio_config_get(d->cfg, "client_id"));
	else
		snprintf(buf, n, "user %s (client %s)",
		    podio_config_get(d->cfg, "username"),
		    podio_config_get(d->cfg, "client_id"));
}

/*
 * The credentials after the first ("app ID = TOKEN" lines): one
 * credential line each, a token granted or the shared one working, or
 * what Podio refused.  The client uses the first credential again
 * after.
 */
static void
doctor_more_credentials(struct doctor *d)
{
	const char *flow = NULL;
	uint64_t app = 0;
	size_t i, n = podio_tokens_count(d->tokens);
	unsigned long before;
	enum podio_err rc;

	for (i = 1; i < n; i++) {
		if (podio_tokens_identity(d->tokens, i, &flow, &app, NULL) != 0)
			continue;
		(void)podio_client_use(d->client, i);
		before = podio_tokens_requests(d->tokens);
		rc = podio_authenticate(d->client);
		if (rc == PODIO_OK)
			doctor_line(d, 1, "credential", NULL, "app %" PRIu64
			    " (an app line): %s", app,
			    podio_tokens_requests(d->tokens) > before ?
			    "Podio granted a token" : "the shared token works");
		else
			doctor_line(d, 0, "credential", "check the app's token "
			    "in its app line (the app's Developer settings)",
			    "app %" PRIu64 " (an app line): %s", app,
			    podio_client_errmsg(d->client));
	}
	(void)podio_client_use(d->client, 0);
}

/* The wait a 420 of the client's last call named, as " (Podio names a
 * wait of N s)", or "". */
static void
doctor_wait(const struct podio_client *client, char *buf, size_t n)
{
	struct podio_call_info info;

	podio_client_last(client, &info);
	if (info.retry_after >= 0)
		snprintf(buf, n, " (Podio names a wait of %ld s)",
		    info.retry_after);
	else
		buf[0] = '\0';
}

/*
 * The answer of rc, a call that failed, when it says the API is not
 * there (unreachable, timing out, 5xx): the api line's failure, and 1.
 * Else 0 and nothing printed.
 */
static int
doctor_api_down(struct doctor *d, enum podio_err rc, const char *url,
    const char *msg)
{
	if (!podio_err_is_transport(rc) && !budget_outage_err(rc))
		return 0;
	d->unreached = 1;
	doctor_line(d, 0, "api", podio_err_is_transport(rc) ? "check api_url "
	    "and the way from this host to it (DNS, firewall, proxy); the "
	    "events wait in the spool meanwhile" : "Podio seems down: try "
	    "again later; the events wait in the spool meanwhile",
	    "%s cannot be used: %s", url, msg);
	return 1;
}

/*
 * api, credential and rate-limit: authenticates (a token held by the
 * token cache or the spool's token store, else one token request), then
 * makes one call that needs the token - the list of the first app's
 * hooks, kept for doctor_hooks(), or GET /user/status when no app is
 * configured - whose answer also carries the rate limit's count.
 */
static void
doctor_api_first(struct doctor *d)
{
	struct podio_call_info info;
	const char *url = podio_config_get(d->cfg, "api_url");
	char whom[300], wait[96], fix[DOCTOR_MSG_MAX], why[256];
	unsigned long before;
	enum podio_err rc;
	long reserve;
	int requested;

	if (d->tokens == NULL)
		return;
	if (url == NULL)
		url = "the API";
	/* A build that loads libcurl at its first use finds out here
	 * whether it can. */
	if (podio__http_ready(why, sizeof(why)) != 0) {
		doctor_line(d, 0, "api", "install libcurl (Debian and Ubuntu: "
		    "libcurl4; RHEL and its kin: libcurl), or keep the lib "
		    "directory the program came with beside its bin",
		    "%s cannot be used: %s", url, why);
		return;
	}
	if ((rc = podio_client_new(d->cfg, d->tokens, &d->client)) !=
	    PODIO_OK) {
		doctor_line(d, 0, "api", "check api_url, ca_file and timeout",
		    "cannot make a client for %s: %s", url,
		    podio_strerror(rc));
		return;
	}
	doctor_whom(d, whom, sizeof(whom));
	before = podio_tokens_requests(d->tokens);
	rc = podio_authenticate(d->client);
	requested = podio_tokens_requests(d->tokens) > before;
	if (rc != PODIO_OK) {
		if (doctor_api_down(d, rc, url,
		    podio_client_errmsg(d->client)))
			return;
		doctor_line(d, 1, "api", NULL, "%s answers", url);
		if (rc == PODIO_ERR_RATE_LIMITED) {
			doctor_wait(d->client, wait, sizeof(wait));
			doctor_line(d, 0, "credential", "wait, then run doctor "
			    "again; every process shares one token through "
			    "the token cache, so this is rare", "%s: Podio's "
			    "token endpoint answers 420%s", whom, wait);
		} else
			doctor_line(d, 0, "credential", doctor_app_flow(d->cfg) ?
			    "check client_id and client_secret "
			    "(https://podio.com/settings/api) and app_id and "
			    "app_token (the app's Developer settings)" :
			    "check client_id and client_secret "
			    "(https://podio.com/settings/api), username and "
			    "password", "%s: %s", whom,
			    podio_client_errmsg(d->client));
		return;
	}

	if (d->napps > 0) {
		hooks_use_app(d->client, "app", d->apps[0]);
		rc = podio_hook_list(d->client, "app", d->apps[0], &d->hooks,
		    &d->nhooks, NULL);
		(void)podio_client_use(d->client, 0);
		d->listed = 1;
		d->list_rc = rc;
		snprintf(d->list_msg, sizeof(d->list_msg), "%s",
		    rc != PODIO_OK ? podio_client_errmsg(d->client) : "");
		d->list_wait = -1;
		if (rc == PODIO_ERR_RATE_LIMITED) {
			podio_client_last(d->client, &info);
			d->list_wait = info.retry_after;
		}
	} else
		rc = podio_call(d->client, "GET", "/user/status", NULL, NULL);
	requested = requested || podio_tokens_requests(d->tokens) > before;
	if (rc != PODIO_OK && doctor_api_down(d, rc, url,
	    podio_client_errmsg(d->client)))
		return;
	doctor_line(d, 1, "api", NULL, "%s answers", url);
	if (rc == PODIO_ERR_AUTH || rc == PODIO_ERR_TOKEN_EXPIRED ||
	    rc == PODIO_ERR_UNAUTHORIZED) {
		doctor_line(d, 0, "credential", doctor_app_flow(d->cfg) ?
		    "check client_id, client_secret, app_id and app_token" :
		    "check client_id, client_secret, username and password",
		    "%s: Podio refuses its token: %s", whom,
		    podio_client_errmsg(d->client));
		return;
	}
	d->api_ok = 1;
	/* A token of the cache was granted earlier: the secrets are tried
	 * again only when it is renewed, which doctor does not force (it
	 * would cost a token request of every run). */
	doctor_line(d, 1, "credential", NULL, "%s: %s", whom, requested ?
	    "Podio granted a token" : "the shared token works (the secrets "
	    "are tried again when it is renewed)");

	if (rc == PODIO_ERR_RATE_LIMITED) {
		doctor_wait(d->client, wait, sizeof(wait));
		doctor_line(d, 0, "rate-limit", "wait: the processors hold the "
		    "item fetches meanwhile and lose nothing", "Podio answers "
		    "420 for %s%s", whom, wait);
		return;
	}
	podio_client_last(d->client, &info);
	reserve = (long)podio_config_get_int(d->cfg, "rate_reserve");
	if (info.rate_remaining < 0) {
		doctor_line(d, 1, "rate-limit", NULL, "Podio's answer named no "
		    "count (X-Rate-Limit-Remaining)");
		return;
	}
	if (info.rate_remaining <= reserve) {
		snprintf(fix, sizeof(fix), "wait for Podio's hour to end (the "
		    "events wait in the spool); fewer calls: a longer "
		    "coalesce_window");
		doctor_line(d, 0, "rate-limit", fix, "%ld of %ld calls left "
		    "this hour, at or below rate_reserve (%ld): the "
		    "processors fetch no item until the hour ends",
		    info.rate_remaining, info.rate_limit, reserve);
		return;
	}
	doctor_line(d, 1, "rate-limit", NULL, "%ld of %ld calls left this hour",
	    info.rate_remaining, info.rate_limit);
}

/*
 * api, credential and rate-limit of the first credential (see
 * doctor_api_first()), then a credential line for each app line's.
 */
void
doctor_api(struct doctor *d)
{
	doctor_api_first(d);
	if (d->api_ok)
		doctor_more_credentials(d);
}

/*
 * pause and outage: what the processors sharing the spool keep of the
 * API for this credential (a 420's pause, of either rate class; an
 * outage they probe).  Read only; nothing when no spool is open.
 */
void
doctor_pause(struct doctor *d)
{
	struct budget api, filter;
	char when[32] = "", left[32], fix[DOCTOR_MSG_MAX];
	int64_t now = doctor_now_ms(), until;
	struct tm tm;
	time_t t;

	if (d->spool == NULL)
		return;
	budget_read(d->cfg, d->spool, 0, &api);
	budget_read(d->cfg, d->spool, 1, &filter);
	snprintf(fix, sizeof(fix), "the processors go on by themselves when "
	    "it ends; %s spool resume ends it now", d->prog);
	if (api.paused_until_ms > 0 || filter.paused_until_ms > 0) {
		until = api.paused_until_ms > filter.paused_until_ms ?
		    api.paused_until_ms : filter.paused_until_ms;
		doctor_age(until - now + 999, left, sizeof(left));
		doctor_line(d, 0, "pause", fix, "a rate limit (420) holds the "
		    "processors' %s for %s more",
		    api.paused_until_ms > 0 && filter.paused_until_ms > 0 ?
		    "calls and filters" : api.paused_until_ms > 0 ? "calls" :
		    "filter calls", left);
	} else
		doctor_line(d, 1, "pause", NULL, "no rate-limit pause in force");

	if (api.outage_since_ms > 0) {
		t = (time_t)(api.outage_since_ms / 1000);
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
			    &tm);
		doctor_age(api.next_probe_ms > now ? api.next_probe_ms - now :
		    0, left, sizeof(left));
		snprintf(fix, sizeof(fix), "the processors probe the API and "
		    "go on by themselves once it answers; %s spool resume "
		    "makes them try now", d->prog);
		doctor_line(d, 0, "outage", fix, "the processors have found "
		    "the API unavailable since %s; next probe in %s", when,
		    left);
	} else
		doctor_line(d, 1, "outage", NULL, "no API outage in force");
}

/* ------------------------------------------------------------ the hooks */

/* The command that brings the inactive hook hook_id back, into buf: the
 * one place that names it. */
static void
doctor_fix_inactive(const struct doctor *d, uint64_t hook_id, char *buf,
    size_t n)
{
	snprintf(buf, n, "%s hooks heal (asks Podio to verify hook %" PRIu64
	    " again, and re-creates it when a hook line declares it; the "
	    "receiver must be reachable at its URL)", d->prog, hook_id);
}

/* Whether allowed_hooks lets deliveries of hook_id in: unset, or naming
 * it (the configuration keeps the list as "1,2,3"). */
static int
doctor_hook_allowed(const struct doctor *d, uint64_t hook_id)
{
	const char *p = podio_config_get(d->cfg, "allowed_hooks");
	char item[24];
	uint64_t id;
	size_t len;

	if (p == NULL || p[0] == '\0')
		return 1;
	while (*p != '\0') {
		len = strcspn(p, ",");
		if (len < sizeof(item)) {
			memcpy(item, p, len);
			item[len] = '\0';
			if (podio_parse_u64(item, &id) == 0 && id == hook_id)
				return 1;
		}
		p += len;
		if (*p == ',')
			p++;
	}
	return 0;
}

/* One hook line: id, status, type, URL (secret masked); a failure when
 * it is inactive or its URL lacks webhook_secret. */
static void
doctor_hook(struct doctor *d, uint64_t app, const struct podio_hook *h)
{
	const char *status = h->status != NULL ? h->status : "-";
	const char *type = h->type != NULL ? h->type : "-";
	char *shown = NULL, *bare = NULL, fix[DOCTOR_MSG_MAX],
	    qurl[DOCTOR_MSG_MAX / 2], qtype[160];
	const char *why = NULL;
	int active = strcmp(status, "active") == 0;

	if ((shown = secret_hook_url(d->cfg, h->url != NULL ? h->url : "-")) ==
	    NULL)
		goto nomem;
	/* With hook_url set, a hook that neither is at it nor carries this
	 * receiver's secret belongs to another service: left alone. */
	if (doctor_is_set(d->cfg, "hook_url") && h->url != NULL &&
	    !hooks_is_ours(d->cfg, "app", app, h->url) &&
	    !hooks_at_hook_url(d->cfg, h->url)) {
		doctor_line(d, 1, "hook", NULL, "%" PRIu64 " %s %s %s (not this "
		    "receiver's: its URL is not hook_url; left alone)",
		    h->hook_id, status, type, shown);
		goto done;
	}
	if (doctor_is_set(d->cfg, "webhook_secret") && h->url != NULL) {
		switch (secret_url_state(d->cfg, h->url)) {
		case SECRET_URL_NONE:
			why = "its URL has no secret: its deliveries are "
			    "refused with 403";
			break;
		case SECRET_URL_PREVIOUS:
			why = "its URL carries webhook_secret_previous, "
			    "refused once that key is removed";
			break;
		case SECRET_URL_OTHER:
			why = "its URL's secret is not webhook_secret: its "
			    "deliveries are refused with 403";
			break;
		case SECRET_URL_CURRENT:
		default:
			break;
		}
	}
	if (why == NULL && !doctor_hook_allowed(d, h->hook_id)) {
		snprintf(fix, sizeof(fix), "add %" PRIu64 " to allowed_hooks "
		    "(or delete the hook: %s hooks delete %" PRIu64 ")",
		    h->hook_id, d->prog, h->hook_id);
		doctor_line(d, 0, "hook", fix, "%" PRIu64 " %s %s %s (not in "
		    "allowed_hooks: its deliveries are refused with 403%s)",
		    h->hook_id, status, type, shown, active ? "" :
		    "; inactive too");
	} else if (why != NULL) {
		/* hooks create adds the secret: give it the URL without. */
		if ((bare = secret_url_without(h->url)) == NULL)
			goto nomem;
		doctor_quote(bare, qurl, sizeof(qurl));
		doctor_quote(type, qtype, sizeof(qtype));
		snprintf(fix, sizeof(fix), "replace it: %s hooks delete %"
		    PRIu64 " && %s hooks create app %" PRIu64 " %s %s",
		    d->prog, h->hook_id, d->prog, app, qurl, qtype);
		doctor_line(d, 0, "hook", fix, "%" PRIu64 " %s %s %s (%s%s)",
		    h->hook_id, status, type, shown, why, active ? "" :
		    "; inactive too");
	} else if (!active) {
		doctor_fix_inactive(d, h->hook_id, fix, sizeof(fix));
		doctor_line(d, 0, "hook", fix, "%" PRIu64 " %s %s %s (Podio "
		    "sends an inactive hook nothing)", h->hook_id, status, type,
		    shown);
	} else
		doctor_line(d, 1, "hook", NULL, "%" PRIu64 " %s %s %s",
		    h->hook_id, status, type, shown);
	goto done;
nomem:
	d->failed++;
	fprintf(stderr, PROG ": doctor: hook %" PRIu64 ": out of memory\n",
	    h->hook_id);
done:
	free(shown);
	if (bare != NULL) {
		explicit_bzero(bare, strlen(bare));
		free(bare);
	}
}

/*
 * hooks: the hooks of every configured app, a line for the app and one
 * per hook.  Not run when the API or the credential failed (said above).
 */
void
doctor_hooks(struct doctor *d)
{
	struct podio_call_info info;
	struct podio_hook *hooks = NULL;
	char fix[DOCTOR_MSG_MAX], msg[512];
	enum podio_err rc;
	size_t i, j, n = 0;
	long wait = -1;

	if (d->napps == 0) {
		doctor_line(d, 1, "hooks", NULL, "not checked: no app is "
		    "configured (app_id), and a user's password covers every "
		    "app the user sees; to see an app's hooks: %s hooks list "
		    "app ID", d->prog);
		return;
	}
	if (!d->api_ok)
		return;
	for (i = 0; i < d->napps; i++) {
		if (i == 0 && d->listed) {
			rc = d->list_rc;
			hooks = d->hooks;
			n = d->nhooks;
			d->hooks = NULL;
			d->nhooks = 0;
			snprintf(msg, sizeof(msg), "%s", d->list_msg);
			wait = d->list_wait;
		} else {
			hooks_use_app(d->client, "app", d->apps[i]);
			rc = podio_hook_list(d->client, "app", d->apps[i],
			    &hooks, &n, NULL);
			(void)podio_client_use(d->client, 0);
			snprintf(msg, sizeof(msg), "%s", rc != PODIO_OK ?
			    podio_client_errmsg(d->client) : "");
			podio_client_last(d->client, &info);
			wait = rc == PODIO_ERR_RATE_LIMITED ?
			    info.retry_after : -1;
		}
		if (rc != PODIO_OK) {
			if (rc == PODIO_ERR_RATE_LIMITED && wait >= 0)
				snprintf(fix, sizeof(fix), "wait %ld s, then "
				    "run doctor again", wait);
			else if (rc == PODIO_ERR_RATE_LIMITED)
				snprintf(fix, sizeof(fix), "wait, then run "
				    "doctor again");
			else if (rc == PODIO_ERR_FORBIDDEN ||
			    rc == PODIO_ERR_NOT_FOUND)
				snprintf(fix, sizeof(fix), "check app_id: the "
				    "credential must see the app's hooks (that "
				    "app's token, or a user who administers "
				    "it)");
			else
				snprintf(fix, sizeof(fix), "see Podio's "
				    "message, then run doctor again");
			doctor_line(d, 0, "hooks", fix, "app %" PRIu64 ": the "
			    "hooks cannot be listed: %s", d->apps[i], msg);
		} else if (n == 0) {
			snprintf(fix, sizeof(fix), "create one per event type: "
			    "%s hooks create app %" PRIu64 " "
			    "https://YOUR-HOST/podio-hook item.create",
			    d->prog, d->apps[i]);
			doctor_line(d, 0, "hooks", fix, "app %" PRIu64 " has no "
			    "hook: Podio sends nothing", d->apps[i]);
		} else {
			doctor_line(d, 1, "hooks", NULL, "app %" PRIu64 ": %zu "
			    "hook%s", d->apps[i], n, n == 1 ? "" : "s");
			for (j = 0; j < n; j++)
				doctor_hook(d, d->apps[i], &hooks[j]);
		}
		podio_hooks_free(hooks, n);
		hooks = NULL;
		n = 0;
	}
}

/*
 * config.c: the configuration (see podio.h): the table of keys, the
 * configuration file, PODIO_* environment variables, single settings and
 * the rule lines kept for the handler.
 *
 * File syntax, one setting per line:
 *
 *	# a comment: '#' as the first non-blank character of a line
 *	key = value
 *	key = "  value with the spaces around it kept  "
 *	token_cache =
 *	on PATTERN = /absolute/command arg "an arg with spaces"
 *	log PATTERN = /absolute/file
 *	hook app 123 = item.create item.update
 *
 * White space around the key and the value is dropped.  The value is
 * everything after the first '=', so it may hold '=', '#' and spaces.  A
 * value wrapped in double quotes loses the two quotes and keeps what is
 * between them literally (no escapes), which is the way to keep leading
 * or trailing spaces.  Lines are at most 4096 bytes; CRLF line ends and a
 * UTF-8 byte order mark are accepted.  A key may appear once per file;
 * rule lines may repeat and keep their order.  Hook lines declare the
 * hooks `hooks sync` keeps on Podio: an app and the event types of its
 * hooks, each type once per app.
 *
 * Every source is parsed and checked as a whole into a staging area and
 * applied only when all of it is valid, so a failed load leaves the
 * configuration as it was.
 *
 * Error messages name the source, the line and the key, and may quote a
 * bad value for readability, but never the value of a secret key.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "podio.h"
#include "config.h"
#include "spool.h"
#include "util.h"

/* Normally set by the build; these keep the file compilable alone. */
#ifndef PODIO_CONFIG_PATH
#define PODIO_CONFIG_PATH "/etc/podio-webhook.conf"
#endif
#ifndef PODIO_STATEDIR
#define PODIO_STATEDIR "/var/lib/podio-webhook"
#endif

#define PODIO__CFG_LINE_MAX  4096            /* bytes per line */
#define PODIO__CFG_FILE_MAX  (1024 * 1024)   /* bytes per file */
#define PODIO__CFG_RULES_MAX 1024            /* rule lines in all */
#define PODIO__CFG_APPS_MAX  256             /* app lines in all */
#define PODIO__CFG_ARGS_MAX  256             /* words of one command */
#define PODIO__CFG_PATTERN_MAX 64            /* bytes of a rule pattern */
#define PODIO__CFG_QUOTE_MAX 64              /* bytes of a quoted value */
#define PODIO__CFG_WHY_MAX   256             /* one reason */
#define PODIO__CFG_HOOKS_MAX 1024            /* hook lines in all */

/* Row flags. */
#define PODIO__CFG_F_NONEMPTY 0x1  /* an empty value is an error */
#define PODIO__CFG_F_KEEPEMPTY 0x2 /* an empty value is kept as "" (it means
                                      something) instead of unsetting */

/* A parsed value.  text is the canonical text, NULL when unset. */
struct podio__cfg_value {
	char *text;
	int64_t num;    /* DURATION: ms, SIZE: bytes, INT, BOOL: 0 or 1 */
	uint64_t *ids;  /* U64LIST */
	size_t nids;
};

/*
 * One row of the key table.  check, when not NULL, runs after the value
 * parsed by type: it may rewrite v->text in place (shortening it) and
 * returns 0, or -1 with a reason in why (which must not quote the value
 * of a secret key).
 */
struct podio__cfg_key {
	const char *name;
	enum podio__cfg_type type;
	const char *def;     /* default text, NULL: unset */
	unsigned flags;
	int (*check)(struct podio__cfg_value *v, char *why, size_t whylen);
	const char *help;
};

static int podio__cfg_check_u64(struct podio__cfg_value *, char *, size_t);
static int podio__cfg_check_url(struct podio__cfg_value *, char *, size_t);
static int podio__cfg_check_level(struct podio__cfg_value *, char *, size_t);
static int podio__cfg_check_target(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_catch_up_max(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_max_body(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_max_params(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_rate_reserve(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_client_timeout(struct podio__cfg_value *,
    char *, size_t);
static int podio__cfg_check_spool_url(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_command(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_hook_url(struct podio__cfg_value *, char *,
    size_t);
static int podio__cfg_check_heal_interval(struct podio__cfg_value *, char *,
    size_t);

/*
 * The keys.  A new key is one new row; the environment variable
 * PODIO_<NAME>, the sample file test and `podio-webhook config` follow
 * from it.  (No key may be named "webhook_config": PODIO_WEBHOOK_CONFIG
 * names the file.)
 */
static const struct podio__cfg_key podio__cfg_keys[] = {
	{ "client_id", PODIO__CFG_STRING, NULL, 0, NULL,
	  "The client id of the Podio API key (podio.com/settings/api). The "
	  "handler and every command that talks to Podio need it, with "
	  "`client_secret` and either `app_id` and `app_token` or `username` "
	  "and `password`." },
	{ "client_secret", PODIO__CFG_SECRET, NULL, 0, NULL,
	  "The client secret of that API key." },
	{ "app_id", PODIO__CFG_STRING, NULL, 0, podio__cfg_check_u64,
	  "The id of the app to authenticate as (app authentication, the one "
	  "to use for webhooks), digits only; with `app_token`." },
	{ "app_token", PODIO__CFG_SECRET, NULL, 0, NULL,
	  "The app's token, shown with its id in the app's Developer "
	  "settings; with `app_id`." },
	{ "username", PODIO__CFG_STRING, NULL, 0, NULL,
	  "The Podio user (e-mail address) to authenticate as (password "
	  "authentication), with `password`: used when `app_id` and "
	  "`app_token` are not both set." },
	{ "password", PODIO__CFG_SECRET, NULL, 0, NULL,
	  "The password of `username` (password authentication)." },
	{ "api_url", PODIO__CFG_STRING, "https://api.podio.com",
	  PODIO__CFG_F_NONEMPTY, podio__cfg_check_url,
	  "The base URL of the Podio API: `http://` or `https://` and a "
	  "host; trailing slashes are dropped." },
	{ "ca_file", PODIO__CFG_STRING, NULL, 0, NULL,
	  "A file of CA certificates (PEM) to verify the API's TLS "
	  "certificate with, instead of the system's. TLS is always "
	  "verified." },
	{ "token_cache", PODIO__CFG_STRING, PODIO_STATEDIR "/token-cache.json",
	  PODIO__CFG_F_KEEPEMPTY, NULL,
	  "The file in which processes share their access tokens, so that "
	  "CGI runs and commands do not each ask Podio for one (Podio "
	  "rate-limits its token endpoint). Written with mode 0600 beside a "
	  "lock file, in a directory the program's user can write; an empty "
	  "value turns the cache off." },
	{ "timeout", PODIO__CFG_DURATION, "30s", 0, NULL,
	  "The longest one API request may take in all; one that takes "
	  "longer fails as if Podio could not be reached." },
	{ "connect_timeout", PODIO__CFG_DURATION, "10s", 0, NULL,
	  "The longest connecting to the API may take." },
	{ "max_response", PODIO__CFG_SIZE, "16M", 0, NULL,
	  "The largest API response body accepted; a call with a larger "
	  "answer fails." },
	{ "webhook_secret", PODIO__CFG_SECRET, NULL, 0, NULL,
	  "A secret that `hooks create` adds to each hook's URL as "
	  "`secret=...` and that every delivery must carry (compared in "
	  "constant time); deliveries without it get 403. The handler does "
	  "not start without it (as CGI it answers 503) unless "
	  "`allow_no_secret` is set. Use a long random string, e.g. from "
	  "`openssl rand -hex 24`; hooks keep the value they were created "
	  "with." },
	{ "webhook_secret_previous", PODIO__CFG_SECRET, NULL, 0, NULL,
	  "The previous `webhook_secret`, still accepted on deliveries while "
	  "the hooks move to the new one: `hooks create` always uses "
	  "`webhook_secret`, `hooks list` shows the hooks whose URL still "
	  "carries this one as `secret=***(previous)`, and each delivery "
	  "accepted with it logs a warning with its hook id. Remove it once "
	  "every hook was re-created." },
	{ "allow_no_secret", PODIO__CFG_BOOL, "no", 0, NULL,
	  "`yes` lets the handler run without `webhook_secret` and accept "
	  "every delivery: anyone who can reach its URL can then post "
	  "events, each item event costing an API call. Not recommended." },
	{ "allowed_hooks", PODIO__CFG_U64LIST, NULL, 0, NULL,
	  "The hook ids whose deliveries are accepted, comma-separated (at "
	  "most 1024); deliveries of other hooks get 403, after the secret "
	  "was checked. Unset: any hook. A hook that `hooks sync` or `hooks "
	  "heal` would create gets a new id, which this list refuses: with "
	  "it set, they create no hook and say so." },
	{ "hook_url", PODIO__CFG_STRING, NULL, 0, podio__cfg_check_hook_url,
	  "The public URL of this receiver, as Podio reaches it (`https://` "
	  "and a host; Podio delivers only to ports 80 and 443), without the "
	  "secret: the URL of the hooks that `hook` lines declare. `hooks "
	  "sync` creates them with `webhook_secret` added to its query, as "
	  "`hooks create` does, and deletes the hooks with this URL that are "
	  "no longer declared; `hooks heal` knows the hooks of this receiver "
	  "by it, or by the secret in their URL." },
	{ "heal_interval", PODIO__CFG_DURATION, "0", 0,
	  podio__cfg_check_heal_interval,
	  "How often a FastCGI server (`serve`, or on an inherited socket) "
	  "runs `hooks heal` in a thread of its own, the first time as it "
	  "starts, logging what it did; at least `1m`. `0`: never (run "
	  "`hooks heal` from cron instead, as under mod_fcgid, whose every "
	  "process would run its own)." },
	{ "max_body", PODIO__CFG_SIZE, "64K", 0, podio__cfg_check_max_body,
	  "The largest request body accepted, at most `1024M`; the query "
	  "string has the same limit. A larger request gets 413 before its "
	  "body is read. A FastCGI server also bounds the variables of one "
	  "request (the query string and the headers the web server passes) "
	  "to 256K, or `max_body` + 64K when that is more: more get 431 and "
	  "the connection is closed." },
	{ "max_params", PODIO__CFG_INT, "256", 0, podio__cfg_check_max_params,
	  "The most parameters in one delivery, query string and body "
	  "together, 1 to 1000000; more get 413." },
	{ "client_timeout", PODIO__CFG_DURATION, "10s", 0,
	  podio__cfg_check_client_timeout,
	  "The longest a FastCGI server (`serve`, or on an inherited "
	  "socket) waits for the whole of a request, its head and body, "
	  "and for the next request on a connection the web server keeps; "
	  "then it closes the connection (logged as `status=408`). 1s to "
	  "1h." },
	{ "exec_timeout", PODIO__CFG_DURATION, "30s", 0, NULL,
	  "The longest an `on` command (and the `on_dead` command) may run; "
	  "then it and every process of its group are killed, and the "
	  "callback has failed. `0`: no limit." },
	{ "skip_self", PODIO__CFG_BOOL, "no", 0, NULL,
	  "`yes`: an item event whose `by_self` is true (the item's current "
	  "revision is the event's own and was made by this receiver's own "
	  "credential: a write-back of its own callbacks) is settled "
	  "without running any callback, logged once. For callbacks that "
	  "cannot write back with `hook=false`, which fires no hook at "
	  "all." },
	{ "spool_dir", PODIO__CFG_STRING, PODIO_STATEDIR "/spool",
	  PODIO__CFG_F_NONEMPTY, NULL,
	  "The directory of the event spool, an SQLite database: every "
	  "accepted event but `hook.verify` is stored there before it is "
	  "answered 200, then processed apart from the request. Keep it "
	  "outside the web root. It must belong to the user the handler "
	  "runs as and be writable by nobody else (created 0700 when "
	  "missing), and its files must not be symbolic links: whoever can "
	  "write there could plant events. Otherwise the server does not "
	  "start and a CGI run answers 503, saying what to fix. Run the "
	  "`spool` commands as that user too." },
	{ "spool_url", PODIO__CFG_STRING, NULL, 0, podio__cfg_check_spool_url,
	  "A PostgreSQL database for the event spool instead of the SQLite "
	  "one in `spool_dir`, as a libpq connection URI: "
	  "`postgresql://USER@HOST:PORT/DB?sslmode=verify-full`. Every host "
	  "whose handler names the same database shares one queue (a host "
	  "that dies leaves its events to the others), one access token and "
	  "one API budget. Give the password in `~/.pgpass` or the file "
	  "`PGPASSFILE` names rather than in the URI; one given in the URI "
	  "is masked wherever the configuration is printed or logged. "
	  "`spool_dir` still holds what stays on the host (the CGI worker's "
	  "lock). The program must be built with libpq." },
	{ "retry_max", PODIO__CFG_INT, "12", 0, NULL,
	  "How often an event whose callbacks fail is tried before it is set "
	  "aside as dead (see `podio-webhook spool`): retries wait 1 minute, "
	  "then 2, 4 ... up to 8 hours (each give or take 25%), so 12 tries "
	  "span about a day. Podio being unreachable or rate limited does "
	  "not count as a try." },
	{ "on_dead", PODIO__CFG_STRING, NULL, 0, podio__cfg_check_command,
	  "A command run once each time an event becomes a dead letter "
	  "(its tries used up, or an event that can never run), wherever "
	  "that happens: `serve`'s processors, the CGI worker or `spool "
	  "drain`. Written as the command of an `on` line (an absolute "
	  "path and its arguments, double quotes grouping; no shell), it "
	  "gets one line of JSON on its standard input, `{\"event_id\": N, "
	  "\"reason\": \"...\", \"attempts\": N, \"event\": {...}}` (the "
	  "event as stored, without its item), and the environment of an "
	  "`on` command. It may run for `exec_timeout`; a failure is logged "
	  "and never retried. `podio-webhook config` shows it: keep secrets "
	  "out of its arguments." },
	{ "cgi_budget", PODIO__CFG_DURATION, "20s", 0, NULL,
	  "As CGI, how long the spool's one detached worker works through "
	  "the spool: a CGI run whose answer went out starts it when none "
	  "is running, and one still finding due events when this ends "
	  "hands them to a successor; `0`: no worker (the events wait for "
	  "`spool drain`). Hosts may kill such processes: run "
	  "`podio-webhook spool drain` from cron as well." },
	{ "rate_reserve", PODIO__CFG_INT, "50", 0,
	  podio__cfg_check_rate_reserve,
	  "Calls of Podio's hourly rate limit kept for `hook.verify` "
	  "(answered at once) and the command line: fetching items for "
	  "events is background work and stops while Podio's "
	  "`X-Rate-Limit-Remaining` is at or below this number (the events "
	  "wait). `0`: no reserve." },
	{ "coalesce_window", PODIO__CFG_DURATION, "2s", 0, NULL,
	  "How long the events of one item must be quiet before its item is "
	  "fetched, once for all of them (each event still reaches the "
	  "callbacks, in arrival order). `0`: fetch at once, event by "
	  "event." },
	{ "coalesce_max", PODIO__CFG_DURATION, "30s", 0, NULL,
	  "The longest the oldest event of an item waits for "
	  "`coalesce_window`: an item edited without pause is still fetched "
	  "this often." },
	{ "catch_up", PODIO__CFG_BOOL, "no", 0, NULL,
	  "`yes`: the receiver catches up by itself with the edits Podio did "
	  "not deliver. While it was down: `serve` keeps in the spool until "
	  "when it ran (noted every minute and when it stops) and, when it "
	  "starts, backfills the items of every configured app (`app_id`, "
	  "`app` lines, `hook` lines) edited since then (see "
	  "`podio-webhook backfill`), in a thread of its own that only logs "
	  "what it did. While a hook of this receiver was inactive: `hooks "
	  "heal` (from cron, or `serve` every `heal_interval`) keeps in the "
	  "spool when it last found each app's hooks all active and, once an "
	  "inactive one is active again, backfills the app since then; "
	  "without `catch_up` it names the `backfill` command instead. Either "
	  "goes at most `catch_up_max` back, spends filter calls within the "
	  "API budget and stops when it is paused. Deleted items, comments "
	  "and other events are not recovered." },
	{ "catch_up_max", PODIO__CFG_DURATION, "24h", 0,
	  podio__cfg_check_catch_up_max,
	  "The furthest back a catch-up (`catch_up`) goes, 1m to 7d: the "
	  "edits of a longer outage before that are left to a `backfill` "
	  "by hand. The spool keeps the revisions fetched for a week." },
	{ "log_level", PODIO__CFG_STRING, "info", PODIO__CFG_F_NONEMPTY,
	  podio__cfg_check_level,
	  "The least severe messages logged: `error`, `warn`, `info` (one "
	  "line per request and per event processed) or `debug`." },
	{ "log_target", PODIO__CFG_STRING, "stderr", PODIO__CFG_F_NONEMPTY,
	  podio__cfg_check_target,
	  "Where messages go: `stderr` (under a web server, its error log), "
	  "`syslog` (facility daemon), or `file:PATH` (appended to, one line "
	  "per message; a FastCGI server opens it again on `SIGHUP`, after "
	  "a log rotation)." },
};
#define PODIO__CFG_NKEYS (sizeof(podio__cfg_keys) / sizeof(podio__cfg_keys[0]))

/* A rule line.  All strings owned. */
struct podio__cfg_rule {
	const char *kind;  /* "on" or "log", static */
	char *pattern;
	char **argv;       /* "on": NULL-terminated; "log": NULL */
	char *path;        /* "log": the file; "on": NULL */
	char *file;        /* where it was read */
	int line;
};

/* A hook line: "hook app ID = EVENT...".  All strings owned. */
struct podio__cfg_hook {
	const char *ref_type; /* "app", static */
	uint64_t ref_id;
	char **events;        /* NULL-terminated */
	char *file;           /* where it was read */
	int line;
};

struct podio_config {
	struct podio__cfg_value vals[PODIO__CFG_NKEYS];
	struct podio__cfg_rule *rules;
	size_t nrules;
	struct podio__cfg_hook *hooks;
	size_t nhooks;
	/* "app ID = TOKEN" lines, as rules of kind "app": pattern holds the
	 * id, path the token (a secret). */
	struct podio__cfg_rule *apps;
	size_t napps;
};

/* What one source (a file, the environment) gives before it is applied. */
struct podio__cfg_stage {
	struct podio__cfg_value vals[PODIO__CFG_NKEYS];
	int given[PODIO__CFG_NKEYS];  /* line (or 1) where given, 0 if not */
	struct podio__cfg_rule *rules;
	size_t nrules, arules;
	struct podio__cfg_hook *hooks;
	size_t nhooks, ahooks;
	struct podio__cfg_rule *apps;
	size_t napps, aapps;
};

/* -------------------------------------------------------------- helpers */

/* Formats into err (if there is one), never overflowing. */
static void podio__cfg_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void
podio__cfg_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The row of key, or -1. */
static int
podio__cfg_find(const char *key)
{
	size_t i;

	if (key == NULL)
		return -1;
	for (i = 0; i < PODIO__CFG_NKEYS; i++)
		if (strcmp(podio__cfg_keys[i].name, key) == 0)
			return (int)i;
	return -1;
}

/*
 * Whether name looks like a key ([A-Za-z0-9_.-], at most 64 bytes) and
 * may thus be quoted in a message: anything else on the left of '=' may
 * be a misplaced value, perhaps a secret.
 */
static int
podio__cfg_quotable_key(const char *name)
{
	size_t i;

	for (i = 0; name[i] != '\0'; i++)
		if (i >= 64 || !(isalnum((unsigned char)name[i]) ||
		    name[i] == '_' || name[i] == '.' || name[i] == '-'))
			return 0;
	return i > 0;
}

/* Copies at most PODIO__CFG_QUOTE_MAX bytes of a non-secret value into
 * out (size outlen) for a message, marking a cut with "..." and showing
 * control characters as '?'. */
static void
podio__cfg_quote(const char *value, char *out, size_t outlen)
{
	size_t n = strlen(value), i;

	if (n <= PODIO__CFG_QUOTE_MAX)
		podio__strlcpy(out, value, outlen);
	else
		snprintf(out, outlen, "%.*s...", PODIO__CFG_QUOTE_MAX, value);
	for (i = 0; out[i] != '\0'; i++)
		if ((unsigned char)out[i] < 0x20 || out[i] == 0x7f)
			out[i] = '?';
}

/* Frees the strings of v (wiping them: they may be secrets) and resets it. */
static void
podio__cfg_value_clear(struct podio__cfg_value *v)
{
	podio__free_secret(v->text);
	free(v->ids);
	memset(v, 0, sizeof(*v));
}

/* Frees the strings of r, wiping them: arguments may carry tokens. */
static void
podio__cfg_rule_clear(struct podio__cfg_rule *r)
{
	size_t i;

	podio__free_secret(r->pattern);
	if (r->argv != NULL)
		for (i = 0; r->argv[i] != NULL; i++)
			podio__free_secret(r->argv[i]);
	free(r->argv);
	podio__free_secret(r->path);
	free(r->file);
	memset(r, 0, sizeof(*r));
}

/* Frees the strings of h. */
static void
podio__cfg_hook_clear(struct podio__cfg_hook *h)
{
	size_t i;

	if (h->events != NULL)
		for (i = 0; h->events[i] != NULL; i++)
			free(h->events[i]);
	free(h->events);
	free(h->file);
	memset(h, 0, sizeof(*h));
}

static void
podio__cfg_stage_clear(struct podio__cfg_stage *st)
{
	size_t i;

	for (i = 0; i < PODIO__CFG_NKEYS; i++)
		podio__cfg_value_clear(&st->vals[i]);
	for (i = 0; i < st->nrules; i++)
		podio__cfg_rule_clear(&st->rules[i]);
	free(st->rules);
	for (i = 0; i < st->nhooks; i++)
		podio__cfg_hook_clear(&st->hooks[i]);
	free(st->hooks);
	for (i = 0; i < st->napps; i++)
		podio__cfg_rule_clear(&st->apps[i]);
	free(st->apps);
	memset(st, 0, sizeof(*st));
}

/* ---------------------------------------------------------- key checks */

static int
podio__cfg_check_u64(struct podio__cfg_value *v, char *why, size_t whylen)
{
	uint64_t id;
	char q[PODIO__CFG_QUOTE_MAX + 4];

	if (podio_parse_u64(v->text, &id) == 0)
		return 0;
	podio__cfg_quote(v->text, q, sizeof(q));
	podio__cfg_errf(why, whylen, "bad id '%s' (want digits only)", q);
	return -1;
}

/* http:// or https://, a host, no white space; trailing slashes dropped. */
static int
podio__cfg_check_url(struct podio__cfg_value *v, char *why, size_t whylen)
{
	char q[PODIO__CFG_QUOTE_MAX + 4];
	char *s = v->text;
	size_t n, skip;

	if (strncasecmp(s, "https://", 8) == 0)
		skip = 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		skip = 7;
	else
		skip = 0;
	podio__cfg_quote(s, q, sizeof(q));
	n = strlen(s);
	while (n > skip && s[n - 1] == '/')
		s[--n] = '\0';
	if (skip == 0 || n == skip || strpbrk(s, " \t") != NULL) {
		podio__cfg_errf(why, whylen, "bad URL '%s' (want http:// or "
		    "https:// and a host)", q);
		return -1;
	}
	return 0;
}

static int
podio__cfg_check_level(struct podio__cfg_value *v, char *why, size_t whylen)
{
	char q[PODIO__CFG_QUOTE_MAX + 4];

	if (podio_log_level_parse(v->text) >= 0)
		return 0;
	podio__cfg_quote(v->text, q, sizeof(q));
	podio__cfg_errf(why, whylen, "unknown level '%s' (want error, warn, "
	    "info or debug)", q);
	return -1;
}

static int
podio__cfg_check_target(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	char q[PODIO__CFG_QUOTE_MAX + 4];
	const char *s = v->text;

	if (strcmp(s, "stderr") == 0 || strcmp(s, "syslog") == 0 ||
	    (strncmp(s, "file:", 5) == 0 && s[5] != '\0'))
		return 0;
	podio__cfg_quote(s, q, sizeof(q));
	podio__cfg_errf(why, whylen, "unknown target '%s' (want stderr, "
	    "syslog or file:PATH)", q);
	return -1;
}

/* The delivery size limit: 1 byte to 1 GiB (a body is held in memory). */
static int
podio__cfg_check_max_body(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num >= 1 && v->num <= 1024 * 1024 * 1024)
		return 0;
	podio__cfg_errf(why, whylen, "out of range '%s' (want 1 to 1024M)",
	    v->text);
	return -1;
}

/* A PostgreSQL connection URI, or empty (unset).  The value is never
 * quoted: it may hold a password. */
static int
podio__cfg_check_spool_url(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->text[0] == '\0' || podio_spool_is_url(v->text))
		return 0;
	podio__cfg_errf(why, whylen, "not a PostgreSQL connection URI (want "
	    "postgresql://USER@HOST:PORT/DB)");
	return -1;
}

/* A command as in an "on" line (on_dead), or empty (unset).  The value
 * is never quoted: its arguments may carry tokens. */
static int
podio__cfg_check_command(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	char **argv = NULL;
	enum podio_err rc;

	if (v->text[0] == '\0')
		return 0;
	rc = podio__config_split(v->text, &argv, why, whylen);
	podio__config_argv_free(argv);
	if (rc == PODIO_ERR_NOMEM)
		podio__cfg_errf(why, whylen, "out of memory");
	return rc == PODIO_OK ? 0 : -1;
}

/*
 * hook_url: http:// or https://, a host, no white space or control
 * character, no #fragment (Podio would not send it), and no secret
 * parameter (webhook_secret is added to it).  Unlike api_url, a trailing
 * slash is kept: it is part of the path the web server matches.
 */
static int
podio__cfg_check_hook_url(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	char q[PODIO__CFG_QUOTE_MAX + 4];
	const char *s = v->text, *host, *p;
	size_t i;

	podio__cfg_quote(s, q, sizeof(q));
	if (strncasecmp(s, "https://", 8) == 0)
		host = s + 8;
	else if (strncasecmp(s, "http://", 7) == 0)
		host = s + 7;
	else
		host = NULL;
	for (i = 0; host != NULL && s[i] != '\0'; i++)
		if ((unsigned char)s[i] <= ' ' || s[i] == 0x7f)
			host = NULL;
	if (host == NULL || host[0] == '\0' || strchr("/?#", host[0])) {
		podio__cfg_errf(why, whylen, "bad URL '%s' (want http:// or "
		    "https:// and a host)", q);
		return -1;
	}
	if (strchr(s, '#') != NULL) {
		podio__cfg_errf(why, whylen, "bad URL '%s' (a #fragment is "
		    "never sent)", q);
		return -1;
	}
	for (p = strchr(s, '?'); p != NULL; p = strchr(p + 1, '&'))
		if (strncmp(p + 1, "secret", 6) == 0 &&
		    (p[7] == '=' || p[7] == '&' || p[7] == '\0')) {
			podio__cfg_errf(why, whylen, "the URL has a secret "
			    "parameter; webhook_secret adds it");
			return -1;
		}
	return 0;
}

/* heal_interval: 0 (never), or at least a minute: each run lists the
 * hooks of every configured app. */
static int
podio__cfg_check_heal_interval(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num == 0 || v->num >= 60 * 1000)
		return 0;
	podio__cfg_errf(why, whylen, "too short '%s' (want 0 or at least 1m)",
	    v->text);
	return -1;
}

/* The parameter limit: 1 to 1000000. */
static int
podio__cfg_check_max_params(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num >= 1 && v->num <= 1000000)
		return 0;
	podio__cfg_errf(why, whylen, "out of range '%s' (want 1 to 1000000)",
	    v->text);
	return -1;
}

/* client_timeout: 1 s to 1 h. */
static int
podio__cfg_check_client_timeout(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num >= 1000 && v->num <= 3600 * 1000)
		return 0;
	podio__cfg_errf(why, whylen, "out of range '%s' (want 1s to 1h)",
	    v->text);
	return -1;
}

/* catch_up_max: a minute to the week the spool keeps revisions. */
static int
podio__cfg_check_catch_up_max(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num >= 60 * 1000 && v->num <= 7 * 24 * 3600 * 1000LL)
		return 0;
	podio__cfg_errf(why, whylen, "out of range '%s' (want 1m to 7d)",
	    v->text);
	return -1;
}

/* rate_reserve: 0 (no reserve) up to far above any hourly limit. */
static int
podio__cfg_check_rate_reserve(struct podio__cfg_value *v, char *why,
    size_t whylen)
{
	if (v->num >= 0 && v->num <= 1000000)
		return 0;
	podio__cfg_errf(why, whylen, "out of range '%s' (want 0 to 1000000)",
	    v->text);
	return -1;
}

/*
 * Parses value for the key of row k into out (cleared first; the caller
 * frees it with podio__cfg_value_clear()).  An empty value unsets a
 * string, secret or list key, is kept as "" for a KEEPEMPTY key and is an
 * error for the others.  Returns PODIO_OK, PODIO_ERR_NOMEM, or
 * PODIO_ERR_CONFIG with the reason in why (without the key name; never
 * the value of a secret).
 */
static enum podio_err
podio__cfg_parse(const struct podio__cfg_key *k, const char *value,
    struct podio__cfg_value *out, char *why, size_t whylen)
{
	char q[PODIO__CFG_QUOTE_MAX + 4], canon[32];
	const char *p, *what = NULL, *hint = NULL;
	int bad = 0;

	memset(out, 0, sizeof(*out));
	for (p = value; *p != '\0'; p++)
		if (((unsigned char)*p < 0x20 && *p != '\t') || *p == 0x7f) {
			podio__cfg_errf(why, whylen,
			    "value contains a control character");
			return PODIO_ERR_CONFIG;
		}
	if (value[0] == '\0') {
		if (k->flags & PODIO__CFG_F_KEEPEMPTY)
			goto copy;
		if (!(k->flags & PODIO__CFG_F_NONEMPTY) &&
		    (k->type == PODIO__CFG_STRING ||
		    k->type == PODIO__CFG_SECRET ||
		    k->type == PODIO__CFG_U64LIST))
			return PODIO_OK;
		podio__cfg_errf(why, whylen, "empty value");
		return PODIO_ERR_CONFIG;
	}

	switch (k->type) {
	case PODIO__CFG_STRING:
	case PODIO__CFG_SECRET:
		goto copy;
	case PODIO__CFG_DURATION:
		bad = podio_parse_duration_ms(value, &out->num) != 0;
		what = "duration";
		hint = "500ms, 30s, 5m, 2h, 1d";
		if (!bad)
			podio__cfg_fmt_duration(out->num, canon, sizeof(canon));
		break;
	case PODIO__CFG_SIZE:
		bad = podio_parse_size(value, &out->num) != 0;
		what = "size";
		hint = "65536, 64K, 16M";
		if (!bad)
			podio__cfg_fmt_size(out->num, canon, sizeof(canon));
		break;
	case PODIO__CFG_INT:
		bad = podio__cfg_parse_int(value, &out->num) != 0;
		what = "integer";
		hint = "-1, 0, 42";
		if (!bad)
			snprintf(canon, sizeof(canon), "%" PRId64, out->num);
		break;
	case PODIO__CFG_BOOL:
		bad = podio__cfg_parse_bool(value, &out->num) != 0;
		what = "boolean";
		hint = "yes, no";
		if (!bad)
			podio__strlcpy(canon, out->num ? "yes" : "no",
			    sizeof(canon));
		break;
	case PODIO__CFG_U64LIST:
		switch (podio__cfg_parse_ids(value, &out->ids, &out->nids,
		    &out->text)) {
		case PODIO_OK:
			goto check;
		case PODIO_ERR_NOMEM:
			return PODIO_ERR_NOMEM;
		default:
			bad = 1;
			what = "id list";
			hint = "12, 34";
			break;
		}
		break;
	}
	if (bad) {
		podio__cfg_quote(value, q, sizeof(q));
		podio__cfg_errf(why, whylen, "bad %s '%s' (want e.g. %s)", what,
		    q, hint);
		return PODIO_ERR_CONFIG;
	}
	value = canon;
copy:
	if ((out->text = strdup(value)) == NULL)
		return PODIO_ERR_NOMEM;
check:
	if (k->check != NULL && k->check(out, why, whylen) != 0) {
		podio__cfg_value_clear(out);
		return PODIO_ERR_CONFIG;
	}
	return PODIO_OK;
}

/* ----------------------------------------------------------- rule lines */

/*
 * Whether pattern is "*", an event type ([a-z0-9_.-]{1,64}) or
 * "prefix.*" where prefix is dot-separated [a-z0-9_-]+ words.
 */
static int
podio__cfg_pattern_ok(const char *pattern)
{
	size_t n = strlen(pattern), i, stem;
	int wild;

	if (strcmp(pattern, "*") == 0)
		return 1;
	if (n == 0 || n > PODIO__CFG_PATTERN_MAX)
		return 0;
	wild = n >= 3 && strcmp(pattern + n - 2, ".*") == 0;
	stem = wild ? n - 2 : n;
	for (i = 0; i < stem; i++) {
		if ((pattern[i] >= 'a' && pattern[i] <= 'z') ||
		    (pattern[i] >= '0' && pattern[i] <= '9') ||
		    pattern[i] == '_' || pattern[i] == '-')
			continue;
		if (pattern[i] != '.')
			return 0;
		/* in a prefix, dots only separate non-empty words */
		if (wild && (i == 0 || pattern[i - 1] == '.' ||
		    i + 1 == stem))
			return 0;
	}
	return 1;
}

/*
 * See config.h: the command of an "on" line, and on_dead.  Nothing but
 * the quotes and their escapes is interpreted.
 */
enum podio_err
podio__config_split(const char *cmd, char ***argv_out, char *why,
    size_t whylen)
{
	char **argv = NULL, *word = NULL, *w;
	size_t argc = 0, i;
	const char *p = cmd;
	int quoted;
	enum podio_err rc = PODIO_ERR_CONFIG;

	*argv_out = NULL;
	if ((argv = calloc(PODIO__CFG_ARGS_MAX + 1, sizeof(*argv))) == NULL ||
	    (word = malloc(strlen(cmd) + 1)) == NULL) {
		rc = PODIO_ERR_NOMEM;
		goto fail;
	}
	for (;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		if (argc == PODIO__CFG_ARGS_MAX) {
			podio__cfg_errf(why, whylen, "more than %d words in "
			    "the command", PODIO__CFG_ARGS_MAX);
			goto fail;
		}
		quoted = 0;
		for (w = word; *p != '\0'; p++) {
			if (!quoted && (*p == ' ' || *p == '\t'))
				break;
			if (*p == '"')
				quoted = !quoted;
			else if (quoted && *p == '\\' &&
			    (p[1] == '"' || p[1] == '\\'))
				*w++ = *++p;
			else
				*w++ = *p;
		}
		if (quoted) {
			podio__cfg_errf(why, whylen, "unterminated quote in "
			    "the command");
			goto fail;
		}
		if ((argv[argc] = strndup(word, (size_t)(w - word))) == NULL) {
			rc = PODIO_ERR_NOMEM;
			goto fail;
		}
		argc++;
	}
	if (argc == 0) {
		podio__cfg_errf(why, whylen, "missing command");
		goto fail;
	}
	if (argv[0][0] != '/') {
		podio__cfg_errf(why, whylen, "the command must be an absolute "
		    "path");
		goto fail;
	}
	*argv_out = argv;
	argv = NULL;
	rc = PODIO_OK;
fail:
	if (argv != NULL) {
		for (i = 0; i < argc; i++)
			podio__free_secret(argv[i]);
		free(argv);
	}
	if (word != NULL) {
		podio__wipe(word, strlen(cmd) + 1);
		free(word);
	}
	return rc;
}

/* See config.h. */
void
podio__config_argv_free(char **argv)
{
	size_t i;

	if (argv == NULL)
		return;
	for (i = 0; argv[i] != NULL; i++)
		podio__free_secret(argv[i]);
	free(argv);
}

/*
 * Adds the rule "kind pattern = value" read at file:line to st.
 * Returns PODIO_OK, PODIO_ERR_NOMEM, or PODIO_ERR_CONFIG with a reason in
 * why.  Rule values are never quoted in messages: commands may carry
 * tokens.
 */
static enum podio_err
podio__cfg_add_rule(struct podio__cfg_stage *st, const char *kind,
    const char *pattern, const char *value, const char *file, int line,
    char *why, size_t whylen)
{
	struct podio__cfg_rule r, *nr;
	char q[PODIO__CFG_QUOTE_MAX + 4];
	size_t n, na;
	enum podio_err rc;

	memset(&r, 0, sizeof(r));
	r.kind = strcmp(kind, "on") == 0 ? "on" : "log";
	r.line = line;
	if (!podio__cfg_pattern_ok(pattern)) {
		podio__cfg_quote(pattern, q, sizeof(q));
		podio__cfg_errf(why, whylen, "%s: bad pattern '%s' (want an "
		    "event type, a prefix followed by .*, or *)", r.kind, q);
		return PODIO_ERR_CONFIG;
	}
	if (st->nrules == PODIO__CFG_RULES_MAX) {
		podio__cfg_errf(why, whylen, "more than %d rule lines",
		    PODIO__CFG_RULES_MAX);
		return PODIO_ERR_CONFIG;
	}
	if (r.kind[0] == 'o') {
		rc = podio__config_split(value, &r.argv, why, whylen);
		if (rc != PODIO_OK) {
			/* prefix the reason with the rule */
			char reason[PODIO__CFG_WHY_MAX];

			podio__strlcpy(reason, why, sizeof(reason));
			podio__cfg_errf(why, whylen, "on %s: %s", pattern,
			    reason);
			return rc;
		}
	} else {
		n = strlen(value);
		if (n >= 2 && value[0] == '"' && value[n - 1] == '"')
			r.path = strndup(value + 1, n - 2);
		else
			r.path = strdup(value);
		if (r.path == NULL)
			return PODIO_ERR_NOMEM;
		if (r.path[0] != '/') {
			podio__cfg_errf(why, whylen, "log %s: the file must be "
			    "an absolute path", pattern);
			rc = PODIO_ERR_CONFIG;
			goto fail;
		}
	}
	rc = PODIO_ERR_NOMEM;
	if ((r.pattern = strdup(pattern)) == NULL ||
	    (r.file = strdup(file)) == NULL)
		goto fail;
	if (st->nrules == st->arules) {
		na = st->arules ? st->arules * 2 : 8;
		if ((nr = reallocarray(st->rules, na, sizeof(*nr))) == NULL)
			goto fail;
		st->rules = nr;
		st->arules = na;
	}
	st->rules[st->nrules++] = r;
	return PODIO_OK;
fail:
	podio__cfg_rule_clear(&r);
	return rc;
}

/*
 * The event types a hook on an app may have, as Podio documents them
 * (developers.podio.com, the hooks' reference): the item, comment, file,
 * app and form events.
 */
static const char *const podio__cfg_app_events[] = {
	"item.create", "item.update", "item.delete", "comment.create",
	"comment.delete", "file.change", "app.update", "app.delete",
	"form.create", "form.update", "form.delete", NULL
};

/* Whether event is one of podio__cfg_app_events. */
static int
podio__cfg_app_event_ok(const char *event)
{
	size_t i;

	for (i = 0; podio__cfg_app_events[i] != NULL; i++)
		if (strcmp(podio__cfg_app_events[i], event) == 0)
			return 1;
	return 0;
}

/*
 * Adds the hook line "hook object = value" read at file:line to st:
 * object is "app ID", value the event types separated by blanks, each
 * documented for hooks on apps and declared once per app (in this line
 * and the lines of st before it).  Returns PODIO_OK, PODIO_ERR_NOMEM, or
 * PODIO_ERR_CONFIG with a reason in why.
 */
static enum podio_err
podio__cfg_add_hook(struct podio__cfg_stage *st, const char *object,
    const char *value, const char *file, int line, char *why,
    size_t whylen)
{
	struct podio__cfg_hook h, *nh;
	char q[PODIO__CFG_QUOTE_MAX + 4], word[PODIO__CFG_PATTERN_MAX + 1];
	const char *p, *id;
	size_t n, na, nev = 0, i, j;
	enum podio_err rc = PODIO_ERR_CONFIG;

	memset(&h, 0, sizeof(h));
	h.ref_type = "app";
	h.line = line;
	n = strcspn(object, " \t");
	id = object + n;
	while (*id == ' ' || *id == '\t')
		id++;
	if (n != 3 || strncmp(object, "app", 3) != 0) {
		podio__cfg_quote(object, q, sizeof(q));
		podio__cfg_errf(why, whylen, "hook: bad object '%s' (want 'hook "
		    "app ID': hooks are declared on apps)", q);
		return PODIO_ERR_CONFIG;
	}
	if (podio_parse_u64(id, &h.ref_id) != 0 || h.ref_id == 0) {
		podio__cfg_quote(id, q, sizeof(q));
		podio__cfg_errf(why, whylen, "hook app: bad id '%s' (want a "
		    "positive decimal number)", q);
		return PODIO_ERR_CONFIG;
	}
	if (st->nhooks == PODIO__CFG_HOOKS_MAX) {
		podio__cfg_errf(why, whylen, "more than %d hook lines",
		    PODIO__CFG_HOOKS_MAX);
		return PODIO_ERR_CONFIG;
	}
	/* At most one of each documented type. */
	if ((h.events = calloc(sizeof(podio__cfg_app_events) /
	    sizeof(podio__cfg_app_events[0]), sizeof(*h.events))) == NULL)
		return PODIO_ERR_NOMEM;
	for (p = value;;) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (*p == '\0')
			break;
		n = strcspn(p, " \t");
		if (n < sizeof(word)) {
			memcpy(word, p, n);
			word[n] = '\0';
			podio__cfg_quote(word, q, sizeof(q));
		} else
			podio__cfg_quote(p, q, sizeof(q));
		if (n >= sizeof(word) || !podio__cfg_app_event_ok(word)) {
			podio__cfg_errf(why, whylen, "hook app %" PRIu64 ": "
			    "unknown event type '%s' (want item.create, "
			    "item.update, item.delete, comment.create, "
			    "comment.delete, file.change, app.update, "
			    "app.delete, form.create, form.update or "
			    "form.delete)", h.ref_id, q);
			goto fail;
		}
		for (i = 0; i < nev; i++)
			if (strcmp(h.events[i], word) == 0) {
				podio__cfg_errf(why, whylen, "hook app %" PRIu64
				    ": %s given twice", h.ref_id, word);
				goto fail;
			}
		for (i = 0; i < st->nhooks; i++)
			for (j = 0; st->hooks[i].ref_id == h.ref_id &&
			    st->hooks[i].events[j] != NULL; j++)
				if (strcmp(st->hooks[i].events[j], word) == 0) {
					podio__cfg_errf(why, whylen, "hook app %"
					    PRIu64 ": %s already declared on "
					    "line %d", h.ref_id, word,
					    st->hooks[i].line);
					goto fail;
				}
		if ((h.events[nev] = strdup(word)) == NULL) {
			rc = PODIO_ERR_NOMEM;
			goto fail;
		}
		nev++;
		p += n;
	}
	if (nev == 0) {
		podio__cfg_errf(why, whylen, "hook app %" PRIu64 ": missing "
		    "event types (e.g. item.create item.update)", h.ref_id);
		goto fail;
	}
	rc = PODIO_ERR_NOMEM;
	if ((h.file = strdup(file)) == NULL)
		goto fail;
	if (st->nhooks == st->ahooks) {
		na = st->ahooks ? st->ahooks * 2 : 4;
		if ((nh = reallocarray(st->hooks, na, sizeof(*nh))) == NULL)
			goto fail;
		st->hooks = nh;
		st->ahooks = na;
	}
	st->hooks[st->nhooks++] = h;
	return PODIO_OK;
fail:
	podio__cfg_hook_clear(&h);
	return rc;
}

/*
 * Adds the app credential "app id = token" read at file:line to st.
 * Returns PODIO_OK, PODIO_ERR_NOMEM, or PODIO_ERR_CONFIG with a reason in
 * why (never quoting the token).
 */
static enum podio_err
podio__cfg_add_app(struct podio__cfg_stage *st, const char *id,
    const char *token, const char *file, int line, char *why,
    size_t whylen)
{
	struct podio__cfg_rule r, *nr;
	char q[PODIO__CFG_QUOTE_MAX + 4];
	uint64_t v;
	size_t i, n, na;

	memset(&r, 0, sizeof(r));
	if (podio_parse_u64(id, &v) != 0 || v == 0) {
		podio__cfg_quote(id, q, sizeof(q));
		podio__cfg_errf(why, whylen, "app: bad app id '%s' (want "
		    "'app ID = TOKEN', ID digits only)", q);
		return PODIO_ERR_CONFIG;
	}
	n = strlen(token);
	if (n >= 2 && token[0] == '"' && token[n - 1] == '"') {
		token++;
		n -= 2;
	}
	if (n == 0) {
		podio__cfg_errf(why, whylen, "app %s: missing app token", id);
		return PODIO_ERR_CONFIG;
	}
	for (i = 0; i < st->napps; i++)
		if (strcmp(st->apps[i].pattern, id) == 0) {
			podio__cfg_errf(why, whylen, "app %s given twice (first "
			    "on line %d)", id, st->apps[i].line);
			return PODIO_ERR_CONFIG;
		}
	if (st->napps == PODIO__CFG_APPS_MAX) {
		podio__cfg_errf(why, whylen, "more than %d app lines",
		    PODIO__CFG_APPS_MAX);
		return PODIO_ERR_CONFIG;
	}
	r.kind = "app";
	r.line = line;
	if ((r.pattern = strdup(id)) == NULL ||
	    (r.path = strndup(token, n)) == NULL ||
	    (r.file = strdup(file)) == NULL)
		goto nomem;
	if (st->napps == st->aapps) {
		na = st->aapps ? st->aapps * 2 : 4;
		if ((nr = reallocarray(st->apps, na, sizeof(*nr))) == NULL)
			goto nomem;
		st->apps = nr;
		st->aapps = na;
	}
	st->apps[st->napps++] = r;
	return PODIO_OK;
nomem:
	podio__cfg_rule_clear(&r);
	return PODIO_ERR_NOMEM;
}

/* --------------------------------------------------------------- stages */

/*
 * Applies st to cfg, taking its values, rules and hook lines; st is left
 * empty.  Returns PODIO_OK, PODIO_ERR_NOMEM, or PODIO_ERR_CONFIG when cfg
 * would hold more than PODIO__CFG_RULES_MAX rules or
 * PODIO__CFG_HOOKS_MAX hook lines; on failure cfg is unchanged.
 */
static enum podio_err
podio__cfg_commit(struct podio_config *cfg, struct podio__cfg_stage *st)
{
	struct podio__cfg_rule *nr;
	struct podio__cfg_hook *nh;
	size_t i, k;

	if (cfg->nrules + st->nrules > PODIO__CFG_RULES_MAX ||
	    cfg->nhooks + st->nhooks > PODIO__CFG_HOOKS_MAX)
		return PODIO_ERR_CONFIG;
	/* Both arrays are grown first, so that nothing is taken from st
	 * when either fails. */
	if (st->nhooks > 0) {
		nh = reallocarray(cfg->hooks, cfg->nhooks + st->nhooks,
		    sizeof(*nh));
		if (nh == NULL)
			return PODIO_ERR_NOMEM;
		cfg->hooks = nh;
	}
	if (st->nrules > 0) {
		nr = reallocarray(cfg->rules, cfg->nrules + st->nrules,
		    sizeof(*nr));
		if (nr == NULL)
			return PODIO_ERR_NOMEM;
		cfg->rules = nr;
		memcpy(cfg->rules + cfg->nrules, st->rules,
		    st->nrules * sizeof(*nr));
		cfg->nrules += st->nrules;
		st->nrules = 0;
	}
	if (st->nhooks > 0) {
		memcpy(cfg->hooks + cfg->nhooks, st->hooks,
		    st->nhooks * sizeof(*nh));
		cfg->nhooks += st->nhooks;
		st->nhooks = 0;
	}
	for (i = 0; i < st->napps; i++) {
		for (k = 0; k < cfg->napps; k++)
			if (strcmp(cfg->apps[k].pattern,
			    st->apps[i].pattern) == 0)
				break;
		if (k == cfg->napps) {
			if (cfg->napps == PODIO__CFG_APPS_MAX)
				return PODIO_ERR_CONFIG;
			nr = reallocarray(cfg->apps, cfg->napps + 1,
			    sizeof(*nr));
			if (nr == NULL)
				return PODIO_ERR_NOMEM;
			cfg->apps = nr;
			cfg->napps++;
		} else {
			podio__cfg_rule_clear(&cfg->apps[k]);
		}
		cfg->apps[k] = st->apps[i];
		memset(&st->apps[i], 0, sizeof(st->apps[i]));
	}
	st->napps = 0;
	for (i = 0; i < PODIO__CFG_NKEYS; i++) {
		if (!st->given[i])
			continue;
		podio__cfg_value_clear(&cfg->vals[i]);
		cfg->vals[i] = st->vals[i];
		memset(&st->vals[i], 0, sizeof(st->vals[i]));
		st->given[i] = 0;
	}
	return PODIO_OK;
}

/* ----------------------------------------------------------- the file */

/* Drops spaces and tabs at both ends of s, in place; returns s. */
static char *
podio__cfg_trim(char *s)
{
	size_t n;

	while (*s == ' ' || *s == '\t')
		s++;
	n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/*
 * Reads one line of a file (NUL-terminated, line end removed, modified in
 * place) into st.  Returns PODIO_OK, PODIO_ERR_NOMEM, or PODIO_ERR_CONFIG
 * with the reason in why.
 */
static enum podio_err
podio__cfg_line(struct podio__cfg_stage *st, const char *path, int lineno,
    char *line, char *why, size_t whylen)
{
	char *key, *value, *eq, *pattern, reason[PODIO__CFG_WHY_MAX];
	size_t n;
	int i;
	enum podio_err rc;

	key = podio__cfg_trim(line);
	if (key[0] == '\0' || key[0] == '#')
		return PODIO_OK;
	if ((eq = strchr(key, '=')) == NULL) {
		podio__cfg_errf(why, whylen, "expected 'key = value'");
		return PODIO_ERR_CONFIG;
	}
	*eq = '\0';
	key = podio__cfg_trim(key);
	value = podio__cfg_trim(eq + 1);
	if (key[0] == '\0') {
		podio__cfg_errf(why, whylen, "missing key before '='");
		return PODIO_ERR_CONFIG;
	}

	/* rule lines: "on PATTERN" or "log PATTERN" on the left; hook
	 * lines: "hook app ID"; app credentials: "app ID" */
	if (strcmp(key, "on") == 0 || strcmp(key, "log") == 0) {
		podio__cfg_errf(why, whylen, "%s: missing pattern", key);
		return PODIO_ERR_CONFIG;
	}
	if (strcmp(key, "hook") == 0) {
		podio__cfg_errf(why, whylen, "hook: missing object (want "
		    "'hook app ID')");
		return PODIO_ERR_CONFIG;
	}
	if (strcmp(key, "app") == 0) {
		podio__cfg_errf(why, whylen, "app: missing app id (want "
		    "'app ID = TOKEN')");
		return PODIO_ERR_CONFIG;
	}
	n = strcspn(key, " \t");
	if (key[n] != '\0') {
		key[n] = '\0';
		pattern = podio__cfg_trim(key + n + 1);
		if (strcmp(key, "on") == 0 || strcmp(key, "log") == 0)
			return podio__cfg_add_rule(st, key, pattern, value,
			    path, lineno, why, whylen);
		if (strcmp(key, "hook") == 0)
			return podio__cfg_add_hook(st, pattern, value, path,
			    lineno, why, whylen);
		if (strcmp(key, "app") == 0)
			return podio__cfg_add_app(st, pattern, value, path,
			    lineno, why, whylen);
		podio__cfg_errf(why, whylen, "bad key name (want one word, "
		    "or 'on PATTERN', 'log PATTERN', 'hook app ID' or "
		    "'app ID')");
		return PODIO_ERR_CONFIG;
	}

	if ((i = podio__cfg_find(key)) < 0) {
		if (podio__cfg_quotable_key(key))
			podio__cfg_errf(why, whylen, "unknown key '%s'", key);
		else
			podio__cfg_errf(why, whylen, "bad key name");
		return PODIO_ERR_CONFIG;
	}
	if (st->given[i]) {
		podio__cfg_errf(why, whylen, "key '%s' given twice (first on "
		    "line %d)", key, st->given[i]);
		return PODIO_ERR_CONFIG;
	}
	n = strlen(value);
	if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
		value[n - 1] = '\0';
		value++;
	}
	rc = podio__cfg_parse(&podio__cfg_keys[i], value, &st->vals[i],
	    reason, sizeof(reason));
	if (rc == PODIO_ERR_CONFIG)
		podio__cfg_errf(why, whylen, "%s: %s", key, reason);
	if (rc == PODIO_OK)
		st->given[i] = lineno;
	return rc;
}

/*
 * Reads at most PODIO__CFG_FILE_MAX bytes of fd into a new buffer *data
 * of *len bytes plus a NUL (the caller wipes and frees it).  Returns 0,
 * -1 with errno set on a read error or out of memory, or 1 when the file
 * is larger than the cap.
 */
static int
podio__cfg_slurp(int fd, char **data, size_t *len)
{
	char *buf;
	size_t n = 0;
	ssize_t r;

	*data = NULL;
	*len = 0;
	if ((buf = malloc(PODIO__CFG_FILE_MAX + 2)) == NULL)
		return -1;
	for (;;) {
		r = read(fd, buf + n, PODIO__CFG_FILE_MAX + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			podio__wipe(buf, n);
			free(buf);
			return -1;
		}
		if (r == 0)
			break;
		n += (size_t)r;
		if (n > PODIO__CFG_FILE_MAX) {
			podio__wipe(buf, n);
			free(buf);
			return 1;
		}
	}
	buf[n] = '\0';
	*data = buf;
	*len = n;
	return 0;
}

/* See config.h and the top of this file. */
enum podio_err
podio__config_load_text(struct podio_config *cfg, const char *name,
    char *text, size_t len, char *err, size_t errlen)
{
	struct podio__cfg_stage st;
	char why[PODIO__CFG_WHY_MAX * 2];
	char *line, *nl, *end;
	size_t n;
	int lineno = 0;
	enum podio_err rc = PODIO_ERR_INVALID;

	memset(&st, 0, sizeof(st));
	podio__cfg_errf(err, errlen, "%s", "");
	if (cfg == NULL || name == NULL || text == NULL)
		goto fail;

	line = text;
	end = text + len;
	if (len >= 3 && memcmp(text, "\xef\xbb\xbf", 3) == 0)
		line += 3;
	while (line < end) {
		lineno++;
		if ((nl = memchr(line, '\n', (size_t)(end - line))) == NULL)
			nl = end;
		n = (size_t)(nl - line);
		if (n > 0 && line[n - 1] == '\r')
			n--;
		line[n] = '\0';
		why[0] = '\0';
		if (n > PODIO__CFG_LINE_MAX) {
			rc = PODIO_ERR_CONFIG;
			podio__cfg_errf(why, sizeof(why), "line longer than %d "
			    "bytes", PODIO__CFG_LINE_MAX);
		} else if (strlen(line) != n) {
			rc = PODIO_ERR_CONFIG;
			podio__cfg_errf(why, sizeof(why), "NUL byte in line");
		} else
			rc = podio__cfg_line(&st, name, lineno, line, why,
			    sizeof(why));
		if (rc == PODIO_ERR_CONFIG) {
			podio__cfg_errf(err, errlen, "%s:%d: %s", name, lineno,
			    why);
			goto fail;
		}
		if (rc != PODIO_OK) {
			podio__cfg_errf(err, errlen, "%s: out of memory", name);
			goto fail;
		}
		line = nl + 1;
	}
	rc = podio__cfg_commit(cfg, &st);
	if (rc == PODIO_ERR_CONFIG)
		podio__cfg_errf(err, errlen, "%s: more than %d rule lines or "
		    "%d hook lines in all", name, PODIO__CFG_RULES_MAX,
		    PODIO__CFG_HOOKS_MAX);
	else if (rc != PODIO_OK)
		podio__cfg_errf(err, errlen, "%s: out of memory", name);
fail:
	podio__cfg_stage_clear(&st);
	return rc;
}

/* See podio.h: the file's bytes, then podio__config_load_text(). */
enum podio_err
podio_config_load_file(struct podio_config *cfg, const char *path,
    char *err, size_t errlen)
{
	char *data = NULL;
	size_t len = 0;
	int fd = -1, r = 0, saved;
	enum podio_err rc = PODIO_ERR_INVALID;

	podio__cfg_errf(err, errlen, "%s", "");
	if (cfg == NULL || path == NULL)
		goto fail;
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY)) == -1 ||
	    (r = podio__cfg_slurp(fd, &data, &len)) < 0) {
		saved = errno;
		rc = saved == ENOMEM ? PODIO_ERR_NOMEM : PODIO_ERR_IO;
		podio__cfg_errf(err, errlen, "%s: %s", path, strerror(saved));
		errno = saved;
		goto fail;
	}
	if (r > 0) {
		rc = PODIO_ERR_CONFIG;
		podio__cfg_errf(err, errlen, "%s: file larger than %d bytes",
		    path, PODIO__CFG_FILE_MAX);
		goto fail;
	}
	rc = podio__config_load_text(cfg, path, data, len, err, errlen);
fail:
	if (data != NULL) {
		podio__wipe(data, len);
		free(data);
	}
	if (fd != -1)
		close(fd);
	return rc;
}

/* --------------------------------------------------------- environment */

/* Writes "PODIO_" and the upper-case key into out (size outlen). */
static void
podio__cfg_env_name(const char *key, char *out, size_t outlen)
{
	size_t i;

	snprintf(out, outlen, "PODIO_%s", key);
	for (i = 6; out[i] != '\0'; i++)
		out[i] = (char)toupper((unsigned char)out[i]);
}

/*
 * See podio.h.  When a variable appears more than once in envp the first
 * counts, as with getenv().  Values are taken literally: no trimming, no
 * quotes.
 */
enum podio_err
podio_config_load_env(struct podio_config *cfg, char *const *envp,
    char *err, size_t errlen)
{
	struct podio__cfg_stage st;
	char name[80], why[PODIO__CFG_WHY_MAX];
	size_t i, j, n;
	enum podio_err rc = PODIO_ERR_INVALID;

	memset(&st, 0, sizeof(st));
	podio__cfg_errf(err, errlen, "%s", "");
	if (cfg == NULL)
		goto fail;
	rc = PODIO_OK;
	for (i = 0; envp != NULL && i < PODIO__CFG_NKEYS; i++) {
		podio__cfg_env_name(podio__cfg_keys[i].name, name,
		    sizeof(name));
		n = strlen(name);
		for (j = 0; envp[j] != NULL; j++)
			if (strncmp(envp[j], name, n) == 0 &&
			    envp[j][n] == '=')
				break;
		if (envp[j] == NULL)
			continue;
		rc = podio__cfg_parse(&podio__cfg_keys[i], envp[j] + n + 1,
		    &st.vals[i], why, sizeof(why));
		if (rc == PODIO_ERR_CONFIG)
			podio__cfg_errf(err, errlen, "%s: %s", name, why);
		else if (rc != PODIO_OK)
			podio__cfg_errf(err, errlen, "%s: out of memory", name);
		if (rc != PODIO_OK)
			goto fail;
		st.given[i] = 1;
	}
	rc = podio__cfg_commit(cfg, &st);
fail:
	podio__cfg_stage_clear(&st);
	return rc;
}

/* ------------------------------------------------------ the public rest */

/* See podio.h.  Defaults go through the same parser as any value. */
struct podio_config *
podio_config_new(void)
{
	struct podio_config *cfg;
	char why[PODIO__CFG_WHY_MAX];
	size_t i;

	if ((cfg = calloc(1, sizeof(*cfg))) == NULL)
		return NULL;
	for (i = 0; i < PODIO__CFG_NKEYS; i++) {
		if (podio__cfg_keys[i].def == NULL)
			continue;
		if (podio__cfg_parse(&podio__cfg_keys[i],
		    podio__cfg_keys[i].def, &cfg->vals[i], why,
		    sizeof(why)) != PODIO_OK) {
			podio_config_free(cfg);
			return NULL;
		}
	}
	return cfg;
}

/* See podio.h.  Every string is wiped, not only secrets: rule commands
 * may carry tokens too. */
void
podio_config_free(struct podio_config *cfg)
{
	size_t i;

	if (cfg == NULL)
		return;
	for (i = 0; i < PODIO__CFG_NKEYS; i++)
		podio__cfg_value_clear(&cfg->vals[i]);
	for (i = 0; i < cfg->nrules; i++)
		podio__cfg_rule_clear(&cfg->rules[i]);
	free(cfg->rules);
	for (i = 0; i < cfg->nhooks; i++)
		podio__cfg_hook_clear(&cfg->hooks[i]);
	free(cfg->hooks);
	for (i = 0; i < cfg->napps; i++)
		podio__cfg_rule_clear(&cfg->apps[i]);
	free(cfg->apps);
	free(cfg);
}

/*
 * See podio.h.  Messages read "SOURCE: KEY: reason" (no "SOURCE: " when
 * source is NULL).  On failure the previous value stays.
 */
enum podio_err
podio_config_set(struct podio_config *cfg, const char *key,
    const char *value, const char *source, char *err, size_t errlen)
{
	struct podio__cfg_value v;
	char why[PODIO__CFG_WHY_MAX];
	const char *src = source != NULL ? source : "";
	const char *sep = source != NULL ? ": " : "";
	int i;
	enum podio_err rc;

	podio__cfg_errf(err, errlen, "%s", "");
	if (cfg == NULL || key == NULL || value == NULL) {
		podio__cfg_errf(err, errlen, "%s%smissing key or value", src,
		    sep);
		return PODIO_ERR_INVALID;
	}
	if ((i = podio__cfg_find(key)) < 0) {
		if (podio__cfg_quotable_key(key))
			podio__cfg_errf(err, errlen, "%s%sunknown key '%s'",
			    src, sep, key);
		else
			podio__cfg_errf(err, errlen, "%s%sbad key name", src,
			    sep);
		return PODIO_ERR_CONFIG;
	}
	rc = podio__cfg_parse(&podio__cfg_keys[i], value, &v, why,
	    sizeof(why));
	if (rc == PODIO_ERR_CONFIG)
		podio__cfg_errf(err, errlen, "%s%s%s: %s", src, sep, key, why);
	else if (rc != PODIO_OK)
		podio__cfg_errf(err, errlen, "%s%s%s: out of memory", src, sep,
		    key);
	if (rc != PODIO_OK)
		return rc;
	podio__cfg_value_clear(&cfg->vals[i]);
	cfg->vals[i] = v;
	return PODIO_OK;
}

/* See podio.h.  An empty $PODIO_WEBHOOK_CONFIG counts as unset. */
const char *
podio_config_path(const char *explicit_path, int *explicit_out)
{
	const char *env;
	int is_explicit = 1;
	const char *path;

	if (explicit_path != NULL)
		path = explicit_path;
	else if ((env = getenv("PODIO_WEBHOOK_CONFIG")) != NULL &&
	    env[0] != '\0')
		path = env;
	else {
		path = PODIO_CONFIG_PATH;
		is_explicit = 0;
	}
	if (explicit_out != NULL)
		*explicit_out = is_explicit;
	return path;
}

/* See podio.h. */
const char *
podio_config_get(const struct podio_config *cfg, const char *key)
{
	int i = podio__cfg_find(key);

	return cfg == NULL || i < 0 ? NULL : cfg->vals[i].text;
}

/* See podio.h. */
const char *
podio_config_spool(const struct podio_config *cfg)
{
	const char *url = podio_config_get(cfg, "spool_url");

	if (url != NULL && url[0] != '\0')
		return url;
	return podio_config_get(cfg, "spool_dir");
}

/* The number held by key when it has type t and a value, else 0. */
static int64_t
podio__cfg_get_num(const struct podio_config *cfg, const char *key,
    enum podio__cfg_type t)
{
	int i = podio__cfg_find(key);

	if (cfg == NULL || i < 0 || podio__cfg_keys[i].type != t ||
	    cfg->vals[i].text == NULL)
		return 0;
	return cfg->vals[i].num;
}

int64_t
podio_config_get_ms(const struct podio_config *cfg, const char *key)
{
	return podio__cfg_get_num(cfg, key, PODIO__CFG_DURATION);
}

int64_t
podio_config_get_size(const struct podio_config *cfg, const char *key)
{
	return podio__cfg_get_num(cfg, key, PODIO__CFG_SIZE);
}

int64_t
podio_config_get_int(const struct podio_config *cfg, const char *key)
{
	return podio__cfg_get_num(cfg, key, PODIO__CFG_INT);
}

int
podio_config_get_bool(const struct podio_config *cfg, const char *key)
{
	return podio__cfg_get_num(cfg, key, PODIO__CFG_BOOL) != 0;
}

/* See config.h. */
int
podio__config_get_ids(const struct podio_config *cfg, const char *key,
    const uint64_t **ids, size_t *n)
{
	int i = podio__cfg_find(key);

	*ids = NULL;
	*n = 0;
	if (cfg == NULL || i < 0 || podio__cfg_keys[i].type !=
	    PODIO__CFG_U64LIST)
		return -1;
	*ids = cfg->vals[i].ids;
	*n = cfg->vals[i].nids;
	return 0;
}

/* See podio.h. */
const char *
podio_config_key_name(size_t i)
{
	return i < PODIO__CFG_NKEYS ? podio__cfg_keys[i].name : NULL;
}

int
podio_config_key_is_secret(const char *key)
{
	int i = podio__cfg_find(key);

	return i >= 0 && podio__cfg_keys[i].type == PODIO__CFG_SECRET;
}

const char *
podio_config_key_help(const char *key)
{
	int i = podio__cfg_find(key);

	return i >= 0 ? podio__cfg_keys[i].help : NULL;
}

/* See config.h. */
int
podio__config_key_info(size_t i, struct podio__cfg_key_info *out)
{
	memset(out, 0, sizeof(*out));
	if (i >= PODIO__CFG_NKEYS)
		return -1;
	out->name = podio__cfg_keys[i].name;
	out->type = podio__cfg_keys[i].type;
	out->def = podio__cfg_keys[i].def;
	out->help = podio__cfg_keys[i].help;
	out->keep_empty = (podio__cfg_keys[i].flags &
	    PODIO__CFG_F_KEEPEMPTY) != 0;
	return 0;
}

/* See podio.h.  out is cleared past the end. */
int
podio_config_rule(const struct podio_config *cfg, size_t i,
    struct podio_rule *out)
{
	const struct podio__cfg_rule *r;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL || i >= cfg->nrules)
		return 0;
	r = &cfg->rules[i];
	out->kind = r->kind;
	out->pattern = r->pattern;
	out->argv = r->argv;
	out->path = r->path;
	out->file = r->file;
	out->line = r->line;
	return 1;
}

/* See podio.h.  out is cleared past the end. */
int
podio_config_hook(const struct podio_config *cfg, size_t i,
    struct podio_hook_decl *out)
{
	const struct podio__cfg_hook *h;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL || i >= cfg->nhooks)
		return 0;
	h = &cfg->hooks[i];
	out->ref_type = h->ref_type;
	out->ref_id = h->ref_id;
	out->events = (const char *const *)h->events;
	out->file = h->file;
	out->line = h->line;
	return 1;
}

/* Whether key has a non-empty value in cfg. */
static int
podio__cfg_is_set(const struct podio_config *cfg, const char *key)
{
	const char *v = podio_config_get(cfg, key);

	return v != NULL && v[0] != '\0';
}

/* See podio.h.  The credential of the keys comes first: app_id and
 * app_token when both are set, else username and password when both
 * are; then the app lines in file order. */
int
podio_config_credential(const struct podio_config *cfg, size_t i,
    struct podio_credential *out)
{
	const struct podio__cfg_rule *a;
	size_t first = 0;

	memset(out, 0, sizeof(*out));
	if (cfg == NULL)
		return 0;
	if (podio__cfg_is_set(cfg, "app_id") &&
	    podio__cfg_is_set(cfg, "app_token")) {
		first = 1;
		if (i == 0) {
			out->flow = "app";
			(void)podio_parse_u64(podio_config_get(cfg, "app_id"),
			    &out->app_id);
			out->app_token = podio_config_get(cfg, "app_token");
			return 1;
		}
	} else if (podio__cfg_is_set(cfg, "username") &&
	    podio__cfg_is_set(cfg, "password")) {
		first = 1;
		if (i == 0) {
			out->flow = "password";
			out->username = podio_config_get(cfg, "username");
			return 1;
		}
	}
	if (i - first >= cfg->napps)
		return 0;
	a = &cfg->apps[i - first];
	out->flow = "app";
	(void)podio_parse_u64(a->pattern, &out->app_id);
	out->app_token = a->path;
	out->file = a->file;
	out->line = a->line;
	return 1;
}

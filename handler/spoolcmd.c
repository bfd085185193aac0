/*
 * spoolcmd.c: the spool commands (see spoolcmd.h).
 *
 *   spool status [--json] [--max-age DURATION] [--max-dead N]
 *                              pending, retrying, in flight, dead, bad
 *                              and the age of the oldest event; exit 1
 *                              when a threshold is passed (cron)
 *   spool list [--json]        one line per stored event
 *   spool show ID              one event with its JSON
 *   spool replay ID|--dead     dead letters back to pending
 *   spool drain                process everything due now (for cron)
 *   spool purge --dead --older-than DURATION
 *   spool resume [--json]      end the API pauses stored in the spool
 *
 * Every text that comes out of the spool (reasons hold the tail of a
 * command's stderr) is scrubbed of the configured secrets first.
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
#include "creds.h"
#include "cli.h"
#include "process.h"
#include "runtime.h"
#include "secret.h"
#include "spool.h"
#include "spoolcmd.h"

#define PROG "podio-webhook"

/* The spool commands: name, synopsis, summary (for the program's
 * --help) and what `spool COMMAND --help` adds. */
struct spoolcmd_info {
	const char *name;
	const char *synopsis;
	const char *summary;
	const char *detail;
};

static const struct spoolcmd_info spoolcmd_info[] = {
	{ "status", "spool status [--json] ...", "count the events by state",
	    "  Pending, retrying, in flight, dead and undecodable events, the "
	    "age of the\n  oldest, and the API budget the processors see "
	    "(an outage: since when, and\n  when the next probe is due).\n"
	    "  --json              print one JSON object\n"
	    "  --max-age DURATION  exit 1 when the oldest event not yet done "
	    "is older\n"
	    "  --max-dead N        exit 1 when more than N events are set "
	    "aside (dead\n"
	    "                      or undecodable)\n"
	    "  One line per threshold passed (in --json: \"alerts\"); for "
	    "cron.\n" },
	{ "list", "spool list [--json]", "list the stored events",
	    "  One line per event: id, state, type, hook, item, tries, age, "
	    "last error.\n"
	    "  --json   print a JSON array\n" },
	{ "show", "spool show ID", "show one stored event",
	    "  The event's state, tries, last error and JSON (ID from "
	    "'spool list').\n" },
	{ "replay", "spool replay ID|--dead", "try a dead event (or all) again",
	    "  Put the dead event ID, or with --dead every dead event, back "
	    "to pending,\n  its tries reset.\n" },
	{ "drain", "spool drain", "process the events due now (cron)",
	    "  Give back the events of processes that ended without "
	    "finishing them, run\n  every event due now through the "
	    "callbacks, then print the counts.  Run it\n  from cron where "
	    "CGI processes may be killed (shared hosting).\n" },
	{ "purge", "spool purge --dead --older-than DURATION",
	    "remove old dead events",
	    "  Remove the dead events set aside at least DURATION ago "
	    "(30s, 12h, 7d).\n" },
	{ "resume", "spool resume [--json]", "end the API pauses now",
	    "  End every pause of the API calls stored in the spool (a "
	    "rate limit's wait,\n  at most an hour; a filter Podio refused; "
	    "an outage: its next probe), for\n  every process sharing it, "
	    "and print what was resumed.  Exit 0 when\n  something was "
	    "resumed, 1 when nothing was paused.\n"
	    "  --json   print one JSON object\n" },
};
#define SPOOLCMD_N (sizeof(spoolcmd_info) / sizeof(spoolcmd_info[0]))

/* See spoolcmd.h. */
void
spoolcmd_usage(FILE *fp)
{
	size_t i;

	for (i = 0; i < SPOOLCMD_N; i++)
		fprintf(fp, "  %-*s %s\n", CLI_USAGE_WIDTH,
		    spoolcmd_info[i].synopsis, spoolcmd_info[i].summary);
}

/* The usage of the whole group, "Usage: ... spool COMMAND [ARG]...". */
static void
spoolcmd_group_usage(FILE *fp)
{
	fprintf(fp, "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... spool "
	    "COMMAND [ARG]...\n");
	spoolcmd_usage(fp);
}

/* The spool command name, or NULL. */
static const struct spoolcmd_info *
spoolcmd_find(const char *name)
{
	size_t i;

	for (i = 0; i < SPOOLCMD_N; i++)
		if (strcmp(spoolcmd_info[i].name, name) == 0)
			return &spoolcmd_info[i];
	return NULL;
}

/* The usage of one spool command, for `spool COMMAND --help`. */
static void
spoolcmd_command_usage(const struct spoolcmd_info *info, FILE *fp)
{
	fprintf(fp, "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... %s\n  %s\n"
	    "%s", info->synopsis, info->summary, info->detail);
}

/* A usage error: the message, the usage of the command (of the group
 * when what is NULL or unknown) on stderr; returns 2. */
static int
spoolcmd_usage_error(const char *what, const char *msg)
{
	const struct spoolcmd_info *info = what != NULL ?
	    spoolcmd_find(what) : NULL;

	fprintf(stderr, PROG ": spool%s%s: %s\n", what != NULL ? " " : "",
	    what != NULL ? what : "", msg);
	if (info != NULL)
		spoolcmd_command_usage(info, stderr);
	else
		spoolcmd_group_usage(stderr);
	return CLI_EXIT_USAGE;
}

/* Prints text scrubbed of cfg's secrets (or a placeholder). */
static void
spoolcmd_print_safe(const struct podio_config *cfg, const char *text)
{
	char *safe;

	if (text == NULL) {
		fputs("-", stdout);
		return;
	}
	safe = secret_scrub(cfg, text);
	fputs(safe != NULL ? safe : "(withheld: out of memory)", stdout);
	free(safe);
}

/* Prints s as a JSON string (s: valid UTF-8, as the spool stores). */
static void
spoolcmd_json_string(const char *s)
{
	const unsigned char *p;

	putchar('"');
	for (p = (const unsigned char *)s; *p != '\0'; p++) {
		if (*p == '"' || *p == '\\')
			printf("\\%c", *p);
		else if (*p < 0x20)
			printf("\\u%04x", *p);
		else
			putchar(*p);
	}
	putchar('"');
}

/* Opens the spool of cfg, or prints why not. */
static struct podio_spool *
spoolcmd_open(const struct podio_config *cfg, const char *what)
{
	struct podio_spool *spool = NULL;
	const char *dir = podio_config_spool(cfg);
	char err[512], *shown;

	err[0] = '\0';
	if (dir == NULL || dir[0] == '\0') {
		fprintf(stderr, PROG ": spool %s: spool_dir is not set\n",
		    what);
		return NULL;
	}
	if (podio_spool_open(dir, &spool, err, sizeof(err)) != PODIO_OK) {
		shown = podio_spool_mask(dir);
		fprintf(stderr, PROG ": spool %s: cannot open the spool: %s\n",
		    what, err[0] != '\0' ? err : shown != NULL ? shown :
		    "(out of memory)");
		free(shown);
		return NULL;
	}
	return spool;
}

/* Parses a positive event id. */
static int
spoolcmd_parse_id(const char *text, int64_t *id)
{
	uint64_t v;

	if (podio_parse_u64(text, &v) != 0 || v == 0 || v > INT64_MAX)
		return -1;
	*id = (int64_t)v;
	return 0;
}

/* The exit status and message for a failed spool call. */
static int
spoolcmd_fail(const char *what, enum podio_err rc)
{
	fprintf(stderr, PROG ": spool %s: %s\n", what, podio_strerror(rc));
	return rc == PODIO_ERR_INVALID ? CLI_EXIT_USAGE : CLI_EXIT_PODIO;
}

/* The API budget lines of `spool status`: one rate class. */
static void
spoolcmd_budget(const char *name, const struct budget *b, int json)
{
	int64_t now = process_now_ms();

	if (json) {
		printf(", \"%s_paused_s\": %" PRId64 ", \"%s_remaining\": ",
		    name, b->paused_until_ms > 0 ? (b->paused_until_ms - now +
		    999) / 1000 : 0, name);
		if (b->remaining >= 0)
			printf("%ld", b->remaining);
		else
			printf("null");
		return;
	}
	if (b->paused_until_ms > 0)
		printf("%-10s paused for %" PRId64 " s more (Podio's rate "
		    "limit)\n", name, (b->paused_until_ms - now + 999) / 1000);
	else if (b->remaining >= 0)
		printf("%-10s %ld calls left of %ld (seen %" PRId64 " s ago)\n",
		    name, b->remaining, b->limit, (now - b->seen_ms) / 1000);
	else
		printf("%-10s -\n", name);
}

/* The outage line of `spool status` (nothing when none), or its JSON
 * members: api_unavailable_since (ISO 8601 UTC, null when none) and
 * api_next_probe_s. */
static void
spoolcmd_outage(const struct budget *b, int json)
{
	int64_t now = process_now_ms(), next = 0;
	char when[32] = "";
	struct tm tm;
	time_t t;

	if (b->outage_since_ms > 0) {
		t = (time_t)(b->outage_since_ms / 1000);
		if (gmtime_r(&t, &tm) != NULL)
			strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ",
			    &tm);
		next = b->next_probe_ms > now ? (b->next_probe_ms - now +
		    999) / 1000 : 0;
	}
	if (json) {
		if (b->outage_since_ms > 0)
			printf(", \"api_unavailable_since\": \"%s\", "
			    "\"api_next_probe_s\": %" PRId64, when, next);
		else
			printf(", \"api_unavailable_since\": null, "
			    "\"api_next_probe_s\": null");
		return;
	}
	if (b->outage_since_ms > 0)
		printf("%-10s unavailable since %s, next probe in %" PRId64
		    " s\n", "api:", when, next);
}

/* The thresholds of `spool status`: -1 when not given.  The texts are
 * the user's arguments, to say back. */
struct spoolcmd_limits {
	int64_t max_age_ms;
	const char *max_age;
	int64_t max_dead;
	const char *max_dead_text;
};

/* Parses the options of `spool status` (argv[0..argc), after the
 * command).  Returns 0, or the exit status of a usage error. */
static int
spoolcmd_status_args(int argc, char **argv, int *json,
    struct spoolcmd_limits *lim)
{
	uint64_t n;
	int i;

	*json = 0;
	lim->max_age_ms = lim->max_dead = -1;
	lim->max_age = lim->max_dead_text = NULL;
	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--json") == 0)
			*json = 1;
		else if (strcmp(argv[i], "--max-age") == 0 && i + 1 < argc) {
			lim->max_age = argv[++i];
			if (podio_parse_duration_ms(lim->max_age,
			    &lim->max_age_ms) != 0)
				return spoolcmd_usage_error("status",
				    "--max-age wants a duration (30s, 1h)");
		} else if (strcmp(argv[i], "--max-dead") == 0 &&
		    i + 1 < argc) {
			lim->max_dead_text = argv[++i];
			if (podio_parse_u64(lim->max_dead_text, &n) != 0 ||
			    n > INT64_MAX)
				return spoolcmd_usage_error("status",
				    "--max-dead wants a count (0, 5)");
			lim->max_dead = (int64_t)n;
		} else
			return spoolcmd_usage_error("status", "expected "
			    "--json, --max-age DURATION or --max-dead N");
	}
	return 0;
}

/*
 * The thresholds of lim that st passes, one line each into lines (room
 * for 2, of size 160).  Returns how many.
 */
static int
spoolcmd_passed(const struct podio_spool_status *st,
    const struct spoolcmd_limits *lim, char lines[2][160])
{
	size_t dead = st->dead + st->bad;
	int n = 0;

	if (lim->max_age_ms >= 0 && st->oldest_received_ms > 0 &&
	    st->oldest_age_ms > lim->max_age_ms)
		snprintf(lines[n++], 160, "over --max-age %.32s: the oldest "
		    "event not yet done is %" PRId64 " s old", lim->max_age,
		    st->oldest_age_ms / 1000);
	if (lim->max_dead >= 0 && (uint64_t)dead > (uint64_t)lim->max_dead)
		snprintf(lines[n++], 160, "over --max-dead %.24s: %zu dead "
		    "letter%s", lim->max_dead_text, dead, dead == 1 ? "" :
		    "s");
	return n;
}

/*
 * The API state of the credentials after the first (app lines), one
 * block each: "app:ID" lines as the first's, or in JSON a member
 * "credentials": [{"credential", api_..., filter_...}].  Nothing with
 * one credential.
 */
static void
spoolcmd_more_credentials(const struct podio_config *cfg,
    struct podio_spool *spool, int json)
{
	struct budget api, filter;
	char name[32], label[48];
	size_t i, n = creds_count(cfg);

	if (json && n > 1)
		printf(", \"credentials\": [");
	for (i = 1; i < n; i++) {
		budget_cred_label(cfg, i, name, sizeof(name));
		budget_read_at(cfg, spool, i, 0, &api);
		budget_read_at(cfg, spool, i, 1, &filter);
		if (json) {
			printf("%s{\"credential\": ", i > 1 ? ", " : "");
			spoolcmd_json_string(name);
			/* The members of the first credential's, after a
			 * first one: each begins with ", ". */
			spoolcmd_budget("api", &api, 1);
			spoolcmd_budget("filter", &filter, 1);
			spoolcmd_outage(&api, 1);
			printf("}");
			continue;
		}
		printf("%s\n", name);
		snprintf(label, sizeof(label), "  api:");
		spoolcmd_outage(&api, 0);
		if (api.outage_since_ms == 0)
			spoolcmd_budget(label, &api, 0);
		spoolcmd_budget("  filter:", &filter, 0);
	}
	if (json && n > 1)
		printf("]");
}

/* spool status [--json] [--max-age DURATION] [--max-dead N] */
static int
spoolcmd_status(const struct podio_config *cfg, struct podio_spool *spool,
    int json, const struct spoolcmd_limits *lim)
{
	struct podio_spool_status st;
	struct budget api, filter;
	enum podio_err rc;
	char lines[2][160];
	int i, n;

	if ((rc = podio_spool_status(spool, &st)) != PODIO_OK)
		return spoolcmd_fail("status", rc);
	budget_read(cfg, spool, 0, &api);
	budget_read(cfg, spool, 1, &filter);
	n = spoolcmd_passed(&st, lim, lines);
	if (json) {
		printf("{\"pending\": %zu, \"retrying\": %zu, \"in_flight\": "
		    "%zu, \"dead\": %zu, \"bad\": %zu, \"intake\": %zu, "
		    "\"oldest_age_s\": %" PRId64, st.pending, st.retrying,
		    st.in_flight, st.dead, st.bad, st.intake,
		    st.oldest_age_ms / 1000);
		spoolcmd_budget("api", &api, 1);
		spoolcmd_budget("filter", &filter, 1);
		spoolcmd_outage(&api, 1);
		spoolcmd_more_credentials(cfg, spool, 1);
		if (lim->max_age_ms >= 0 || lim->max_dead >= 0) {
			printf(", \"alerts\": [");
			for (i = 0; i < n; i++) {
				printf("%s", i > 0 ? ", " : "");
				spoolcmd_json_string(lines[i]);
			}
			printf("]");
		}
		printf("}\n");
		return n > 0 ? CLI_EXIT_PODIO : CLI_EXIT_OK;
	}
	printf("pending:   %zu\nretrying:  %zu\nin flight: %zu\n"
	    "dead:      %zu\n", st.pending, st.retrying, st.in_flight,
	    st.dead);
	if (st.bad > 0)
		printf("bad:       %zu\n", st.bad);
	if (st.intake > 0)
		printf("intake:    %zu (stored by CGI runs, not yet moved "
		    "into the spool: see the log)\n", st.intake);
	if (st.oldest_received_ms > 0)
		printf("oldest:    %" PRId64 " s\n", st.oldest_age_ms / 1000);
	else
		printf("oldest:    -\n");
	spoolcmd_outage(&api, 0);
	if (api.outage_since_ms == 0)
		spoolcmd_budget("api:", &api, 0);
	spoolcmd_budget("filter:", &filter, 0);
	spoolcmd_more_credentials(cfg, spool, 0);
	for (i = 0; i < n; i++)
		printf("%s\n", lines[i]);
	return n > 0 ? CLI_EXIT_PODIO : CLI_EXIT_OK;
}

/* spool list [--json] */
static int
spoolcmd_list(const struct podio_config *cfg, struct podio_spool *spool,
    int json)
{
	struct podio_spool_event *ev = NULL;
	enum podio_err rc;
	size_t n = 0, i;
	int64_t now = process_now_ms();

	rc = podio_spool_list(spool, PODIO_SPOOL_ALL, 0, 0, &ev, &n);
	if (rc != PODIO_OK)
		return spoolcmd_fail("list", rc);
	if (json)
		putchar('[');
	else
		printf("%-8s %-9s %-16s %-12s %-12s %5s %7s  %s\n", "ID",
		    "STATE", "TYPE", "HOOK", "ITEM", "TRIES", "AGE",
		    "LAST ERROR");
	for (i = 0; i < n; i++) {
		if (json) {
			printf("%s{\"id\": %" PRId64 ", \"state\": ",
			    i > 0 ? ", " : "", ev[i].id);
			spoolcmd_json_string(podio_spool_state_name(
			    ev[i].state));
			printf(", \"type\": ");
			spoolcmd_json_string(ev[i].type != NULL ?
			    ev[i].type : "");
			printf(", \"hook_id\": %" PRIu64, ev[i].hook_id);
			if (ev[i].has & PODIO_HAS_ITEM_ID)
				printf(", \"item_id\": %" PRIu64,
				    ev[i].item_id);
			printf(", \"attempts\": %ld, \"failures\": %ld, "
			    "\"received_ms\": %" PRId64 ", \"next_ms\": %"
			    PRId64 "}", ev[i].attempts, ev[i].failures,
			    ev[i].received_ms, ev[i].next_ms);
			continue;
		}
		printf("%-8" PRId64 " %-9s %-16s %-12" PRIu64 " ", ev[i].id,
		    podio_spool_state_name(ev[i].state),
		    ev[i].type != NULL ? ev[i].type : "-", ev[i].hook_id);
		if (ev[i].has & PODIO_HAS_ITEM_ID)
			printf("%-12" PRIu64 " ", ev[i].item_id);
		else
			printf("%-12s ", "-");
		printf("%5ld %6" PRId64 "s  ", ev[i].attempts,
		    (now - ev[i].received_ms) / 1000);
		spoolcmd_print_safe(cfg, ev[i].last_error);
		putchar('\n');
	}
	if (json)
		printf("]\n");
	podio_spool_events_free(ev, n);
	return CLI_EXIT_OK;
}

/* spool show ID */
static int
spoolcmd_show(const struct podio_config *cfg, struct podio_spool *spool,
    const char *arg)
{
	struct podio_spool_event *ev = NULL;
	enum podio_err rc;
	int64_t id;

	if (spoolcmd_parse_id(arg, &id) != 0)
		return spoolcmd_usage_error("show", "ID must be an event id "
		    "(see 'spool list')");
	if ((rc = podio_spool_show(spool, id, &ev)) != PODIO_OK) {
		if (rc == PODIO_ERR_NOT_FOUND) {
			fprintf(stderr, PROG ": spool show: no event %" PRId64
			    "\n", id);
			return CLI_EXIT_PODIO;
		}
		return spoolcmd_fail("show", rc);
	}
	printf("id:          %" PRId64 "\nstate:       %s\ntype:        %s\n"
	    "hook_id:     %" PRIu64 "\n", ev->id,
	    podio_spool_state_name(ev->state), ev->type, ev->hook_id);
	if (ev->has & PODIO_HAS_ITEM_ID)
		printf("item_id:     %" PRIu64 "\n", ev->item_id);
	printf("attempts:    %ld\nfailures:    %ld\nreceived_ms: %" PRId64
	    "\nnext_ms:     %" PRId64 "\n", ev->attempts, ev->failures,
	    ev->received_ms, ev->next_ms);
	if (ev->dead_ms > 0)
		printf("dead_ms:     %" PRId64 "\n", ev->dead_ms);
	printf("last error:  ");
	spoolcmd_print_safe(cfg, ev->last_error);
	printf("\nevent:       ");
	spoolcmd_print_safe(cfg, ev->event_json);
	putchar('\n');
	podio_spool_events_free(ev, 1);
	return CLI_EXIT_OK;
}

/* spool replay ID|--dead */
static int
spoolcmd_replay(struct podio_spool *spool, const char *arg)
{
	enum podio_err rc;
	size_t n = 0;
	int64_t id;

	if (strcmp(arg, "--dead") == 0) {
		if ((rc = podio_spool_replay_dead(spool, &n)) != PODIO_OK)
			return spoolcmd_fail("replay", rc);
		printf("%zu event%s back to pending\n", n, n == 1 ? "" : "s");
		return CLI_EXIT_OK;
	}
	if (spoolcmd_parse_id(arg, &id) != 0)
		return spoolcmd_usage_error("replay", "expected an event id "
		    "or --dead");
	rc = podio_spool_replay(spool, id);
	if (rc == PODIO_ERR_NOT_FOUND) {
		fprintf(stderr, PROG ": spool replay: no event %" PRId64 "\n",
		    id);
		return CLI_EXIT_PODIO;
	}
	if (rc == PODIO_ERR_INVALID) {
		fprintf(stderr, PROG ": spool replay: event %" PRId64 " is not "
		    "dead\n", id);
		return CLI_EXIT_PODIO;
	}
	if (rc != PODIO_OK)
		return spoolcmd_fail("replay", rc);
	printf("event %" PRId64 " back to pending\n", id);
	return CLI_EXIT_OK;
}

/* spool purge --dead --older-than DURATION */
static int
spoolcmd_purge(struct podio_spool *spool, int argc, char **argv)
{
	enum podio_err rc;
	int64_t ms = -1;
	size_t n = 0;
	int i, dead = 0;

	for (i = 0; i < argc; i++) {
		if (strcmp(argv[i], "--dead") == 0)
			dead = 1;
		else if (strcmp(argv[i], "--older-than") == 0 &&
		    i + 1 < argc) {
			if (podio_parse_duration_ms(argv[++i], &ms) != 0)
				return spoolcmd_usage_error("purge",
				    "--older-than wants a duration (30s, 7d)");
		} else
			return spoolcmd_usage_error("purge", "expected "
			    "--dead --older-than DURATION");
	}
	if (!dead || ms < 0)
		return spoolcmd_usage_error("purge", "expected --dead "
		    "--older-than DURATION");
	rc = podio_spool_purge(spool, PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD), ms,
	    &n);
	if (rc != PODIO_OK)
		return spoolcmd_fail("purge", rc);
	printf("%zu dead event%s removed\n", n, n == 1 ? "" : "s");
	return CLI_EXIT_OK;
}

/* spool resume [--json] */
static int
spoolcmd_resume(const struct podio_config *cfg, struct podio_spool *spool,
    int json)
{
	struct podio_spool_pause *p = NULL;
	int64_t now = process_now_ms(), left;
	enum podio_err rc;
	size_t i, n = 0;

	if ((rc = podio_spool_resume(spool, &p, &n)) != PODIO_OK)
		return spoolcmd_fail("resume", rc);
	if (json)
		printf("{\"resumed\": [");
	for (i = 0; i < n; i++) {
		left = p[i].until_ms > now ? (p[i].until_ms - now + 999) /
		    1000 : 0;
		if (json) {
			printf("%s{\"class\": ", i > 0 ? ", " : "");
			spoolcmd_json_string(p[i].rate_class);
			printf(", \"credential\": ");
			spoolcmd_json_string(p[i].cred);
			printf(", \"left_s\": %" PRId64 "}", left);
			continue;
		}
		printf("resumed %s (%" PRId64 " s were left) for ",
		    p[i].rate_class, left);
		spoolcmd_print_safe(cfg, p[i].cred);
		printf("\n");
	}
	if (json)
		printf("]}\n");
	else if (n == 0)
		printf("nothing was paused\n");
	free(p);
	return n > 0 ? CLI_EXIT_OK : CLI_EXIT_PODIO;
}

/*
 * spool drain: every event due now, with the configuration's callbacks,
 * then the counts.  Retries not yet due stay for a later run.  Exit 0
 * when the spool could be worked through (failed events are retried
 * later and show in `spool status`), 1 when the spool failed.
 */
static int
spoolcmd_drain(struct podio_config **cfg, const struct podio_callbacks *fns)
{
	struct process_counts counts;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool = NULL;
	char err[512];
	int rc, status = CLI_EXIT_PODIO;

	rc = runtime_new(*cfg, fns, NULL, &rt, err, sizeof(err));
	*cfg = NULL;
	if (rc != 0) {
		fprintf(stderr, PROG ": spool drain: %s\n", err);
		status = rc == RUNTIME_NOMEM ? CLI_EXIT_PODIO : CLI_EXIT_USAGE;
		goto fail;
	}
	if ((spool = spoolcmd_open(rt->cfg, "drain")) == NULL)
		goto fail;
	if (runtime_client(rt, &client) != PODIO_OK) {
		fprintf(stderr, PROG ": spool drain: out of memory\n");
		goto fail;
	}
	memset(&counts, 0, sizeof(counts));
	/* Events a killed process left leased are worked through now too. */
	(void)podio_spool_reclaim(spool, NULL);
	if (process_drain(rt, client, spool, 0, NULL, &counts) == 0)
		status = CLI_EXIT_OK;
	if (counts.self_skipped > 0)
		printf("%zu done (%zu by_self, settled without callbacks), "
		    "%zu to retry, %zu dead\n", counts.done,
		    counts.self_skipped, counts.retry, counts.dead);
	else
		printf("%zu done, %zu to retry, %zu dead\n", counts.done,
		    counts.retry, counts.dead);
fail:
	podio_client_free(client);
	podio_spool_close(spool);
	runtime_unref(rt);
	return status;
}

/* See spoolcmd.h. */
int
spoolcmd_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    int argc, char **argv)
{
	const struct spoolcmd_info *info;
	struct spoolcmd_limits limits;
	struct podio_spool *spool = NULL;
	const char *cmd;
	char msg[128];
	int status = CLI_EXIT_PODIO, json = 0, i;

	memset(&limits, 0, sizeof(limits));
	if (argc < 1)
		return spoolcmd_usage_error(NULL, "missing command");
	cmd = argv[0];
	if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0) {
		spoolcmd_group_usage(stdout);
		return CLI_EXIT_OK;
	}
	if ((info = spoolcmd_find(cmd)) == NULL) {
		/* The name is the user's own argument, not a secret. */
		snprintf(msg, sizeof(msg), "unknown command '%.64s'", cmd);
		return spoolcmd_usage_error(NULL, msg);
	}
	/* --help anywhere after the command asks for its usage, as with
	 * the other commands; nothing else runs. */
	for (i = 1; i < argc; i++)
		if (strcmp(argv[i], "--help") == 0 ||
		    strcmp(argv[i], "-h") == 0) {
			spoolcmd_command_usage(info, stdout);
			return CLI_EXIT_OK;
		}
	if (strcmp(cmd, "drain") == 0) {
		if (argc != 1)
			return spoolcmd_usage_error(cmd, "takes no argument");
		return spoolcmd_drain(cfg, fns);
	}
	if (strcmp(cmd, "status") == 0) {
		if ((status = spoolcmd_status_args(argc - 1, argv + 1, &json,
		    &limits)) != 0)
			return status;
	} else if (strcmp(cmd, "list") == 0 || strcmp(cmd, "resume") == 0) {
		if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
			return spoolcmd_usage_error(cmd, "the only option is "
			    "--json");
		json = argc == 2;
	} else if (strcmp(cmd, "show") == 0 || strcmp(cmd, "replay") == 0) {
		if (argc != 2)
			return spoolcmd_usage_error(cmd, "expected one "
			    "argument");
	}
	if ((spool = spoolcmd_open(*cfg, cmd)) == NULL)
		return CLI_EXIT_PODIO;
	if (strcmp(cmd, "status") == 0)
		status = spoolcmd_status(*cfg, spool, json, &limits);
	else if (strcmp(cmd, "list") == 0)
		status = spoolcmd_list(*cfg, spool, json);
	else if (strcmp(cmd, "show") == 0)
		status = spoolcmd_show(*cfg, spool, argv[1]);
	else if (strcmp(cmd, "replay") == 0)
		status = spoolcmd_replay(spool, argv[1]);
	else if (strcmp(cmd, "resume") == 0)
		status = spoolcmd_resume(*cfg, spool, json);
	else
		status = spoolcmd_purge(spool, argc - 1, argv + 1);
	podio_spool_close(spool);
	return status;
}

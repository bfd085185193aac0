/*
 * backfill.h: catching up with the changes Podio did not deliver.
 *
 * Podio does not deliver again what a receiver missed (it was down, a
 * hook was inactive).  A backfill lists the items of an app last edited
 * first with the filter endpoint ({"sort_by": "last_edit_on",
 * "sort_desc": true}), in pages, until the first item last edited
 * before a time, and appends an item.update event marked "source":
 * "backfill" for each item changed since its last fetch: one whose
 * current revision the processors have not fetched (the revisions the
 * spool keeps, podio_spool_note_revisions()) and that has no event
 * waiting in the spool.  The events then go the usual way: the
 * processors fetch the items (in bulk) and run the callbacks.
 *
 * The filter calls are spent from the same budget as the processors':
 * each page asks budget_gate() first (a 420 pause, an outage, the
 * reserve) and reports its result to budget_note_call(); a backfill that
 * may not call stops there and says so.
 */
#ifndef PODIO_HANDLER_BACKFILL_H
#define PODIO_HANDLER_BACKFILL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "podio.h"
#include "runtime.h"
#include "spool.h"

/* The hook_id of a backfill's events: no hook of Podio has it, so their
 * dedup keys never meet a delivery's. */
#define BACKFILL_HOOK_ID 0
/* Filter calls a backfill in the background leaves to the command line
 * (the processors keep as many). */
#define BACKFILL_FILTER_RESERVE 5

/* What a backfill did with one item. */
enum backfill_action {
	BACKFILL_QUEUED,     /* an event was appended */
	BACKFILL_DUPLICATE,  /* an event of this revision was appended
	                        before (the spool's dedup key) */
	BACKFILL_CURRENT,    /* its current revision was fetched already */
	BACKFILL_PENDING,    /* an event of it waits in the spool */
	BACKFILL_WOULD       /* dry run: an event would be appended */
};

/* "queued", "duplicate", "current", "pending", "would queue"; static. */
const char *backfill_action_name(enum backfill_action a);

/* Called for each item changed since the time, in Podio's order. */
typedef void (*backfill_item_fn)(void *arg,
    const struct podio_item_change *change, enum backfill_action action);

/* The outcome of backfill_app(). */
struct backfill_result {
	size_t listed;       /* items edited since the time */
	size_t queued, duplicates, current, pending;
	size_t calls;        /* filter calls made */
	int complete;        /* 1: it reached an item edited before the time,
	                        or the app's last item */
	enum podio_err err;  /* what stopped it, or PODIO_OK */
	char why[320];       /* what stopped it, for messages; "" */
};

/* Options of backfill_app(); zero means the default. */
struct backfill_opts {
	int dry_run;          /* list only, append nothing */
	long filter_reserve;  /* filter calls left to others (see budget.h) */
	/* Asked before each page (NULL: never): non-zero stops the walk
	 * there, as a pause would. */
	int (*stopping)(void *arg);
	void *stop_arg;
};

/*
 * Backfills app app_id since since_ms (ms since the epoch): see above.
 * client and spool are the caller's (one thread's own client); rt gives
 * the credential and the reserve (rate_reserve).  fn (may be NULL) sees
 * each item.  Fills *res and returns the exit status of the command
 * line: 0 when complete, 1 when Podio refused a call or the budget (a
 * 420 pause, the reserve) stopped it, 3 when Podio could not be reached
 * (an outage, kept in the spool), with the reason in res->why.  Events
 * appended before a stop stay: a later run goes on where it stopped.
 */
int backfill_app(const struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, uint64_t app_id, int64_t since_ms,
    const struct backfill_opts *opts, backfill_item_fn fn, void *arg,
    struct backfill_result *res);

/*
 * A backfill in the background: app_id since since_ms with
 * BACKFILL_FILTER_RESERVE filter calls left to the command line,
 * stopping between pages when stopping(arg) says so (stopping may be
 * NULL), its outcome logged in one line that what begins ("catch-up").
 * This is how serve catches up after it was down (catch_up); code that
 * brings an inactive hook back can call it with the time the hook went
 * inactive.  Returns backfill_app()'s status.
 */
int backfill_background(const struct runtime *rt,
    struct podio_client *client, struct podio_spool *spool, uint64_t app_id,
    int64_t since_ms, const char *what, int (*stopping)(void *), void *arg);

/*
 * Parses the TIME of --since: an ISO 8601 date or date and time in UTC
 * ("2024-05-01", "2024-05-01T12:00:00Z", "2024-05-01 12:00:00"), or a
 * duration ago ("30m", "2h", "1d"; see podio_parse_duration_ms()), with
 * now_ms the present.  0 and *ms on success, -1 on anything else.
 */
int backfill_parse_since(const char *text, int64_t now_ms, int64_t *ms);

/*
 * The command `backfill --app ID --since TIME [--dry-run] [--json]`,
 * with its arguments after the name; takes over *cfg.  Returns the exit
 * status.
 */
int backfill_cmd(struct podio_config **cfg, const struct podio_callbacks *fns,
    int argc, char **argv);

/* The command's line for the program's --help. */
void backfill_usage(FILE *fp);

#endif

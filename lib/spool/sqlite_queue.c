/*
 * sqlite_queue.c: the queue side of the SQLite spool (see spool.h): decoding
 * stored records, setting aside the ones that cannot be decoded, taking
 * due events with a lease (per item, in arrival order), and what a worker
 * reports back (done, fail, dead, release, extend, progress).
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "event.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "sqlite_int.h"
#include "util.h"

/* Most undecodable records set aside by one sweep. */
#define SPOOL_SWEEP_MAX 1000
/* Most events removed, or units claimed, in one write transaction: a
 * large batch is written in several, so that no processor holds the
 * spool's write lock (and the appends waiting for it) for long. */
#define SPOOL_WRITE_CHUNK 128
#define SPOOL_CLAIM_CHUNK 32

/* ------------------------------------------------------------ decoding */

int
podio__sqlite_col_is(sqlite3_stmt *st, int i, int type)
{
	return sqlite3_column_type(st, i) == type;
}

static int
col_int_or_null(sqlite3_stmt *st, int i)
{
	return podio__sqlite_col_is(st, i, SQLITE_INTEGER) ||
	    podio__sqlite_col_is(st, i, SQLITE_NULL);
}

/* Copies text column i into *out (NULL for SQL NULL).  -1 on out of
 * memory. */
static int
col_dup(sqlite3_stmt *st, int i, char **out, size_t *len_out)
{
	const unsigned char *t;
	int len;

	*out = NULL;
	if (podio__sqlite_col_is(st, i, SQLITE_NULL))
		return 0;
	if ((t = sqlite3_column_text(st, i)) == NULL)
		return -1;
	len = sqlite3_column_bytes(st, i);
	if ((*out = malloc((size_t)len + 1)) == NULL)
		return -1;
	memcpy(*out, t, (size_t)len);
	(*out)[len] = '\0';
	if (len_out != NULL)
		*len_out = (size_t)len;
	return 0;
}

/*
 * Reads the current row of st (SPOOL_COLS, then the event JSON or NULL)
 * into ev, as far as it can be read.  Returns 0 when the record is sound;
 * 1 when it cannot be decoded, with the reason in why (ev still filled
 * as far as possible, state PODIO_SPOOL_BAD); -1 on out of memory (ev
 * cleared).  with_body: the event JSON is read and checked.
 */
int
podio__sqlite_read_row(sqlite3_stmt *st, int64_t now, int with_body,
    struct podio_spool_event *ev, char *why, size_t whylen)
{
	const char *state;
	const char *bad = NULL;

	memset(ev, 0, sizeof(*ev));
	ev->id = sqlite3_column_int64(st, C_ID);
	ev->hook_id = (uint64_t)sqlite3_column_int64(st, C_HOOK);
	ev->has = PODIO_HAS_HOOK_ID;
	if (!podio__sqlite_col_is(st, C_ITEM, SQLITE_NULL)) {
		ev->has |= PODIO_HAS_ITEM_ID;
		ev->item_id = (uint64_t)sqlite3_column_int64(st, C_ITEM);
	}
	if (!podio__sqlite_col_is(st, C_REV, SQLITE_NULL)) {
		ev->has |= PODIO_HAS_ITEM_REVISION_ID;
		ev->item_revision_id =
		    (uint64_t)sqlite3_column_int64(st, C_REV);
	}
	if (!podio__sqlite_col_is(st, C_APP, SQLITE_NULL)) {
		ev->has |= PODIO_HAS_APP_ID;
		ev->app_id = (uint64_t)sqlite3_column_int64(st, C_APP);
	}
	ev->received_ms = sqlite3_column_int64(st, C_RECEIVED);
	ev->attempts = (long)sqlite3_column_int64(st, C_ATTEMPTS);
	ev->failures = (long)sqlite3_column_int64(st, C_FAILURES);
	ev->leases = (long)sqlite3_column_int64(st, C_LEASES);
	ev->next_ms = sqlite3_column_int64(st, C_NEXT);
	ev->lease_until_ms = sqlite3_column_int64(st, C_LEASE);
	ev->failed_ms = sqlite3_column_int64(st, C_FAILED);
	ev->dead_ms = sqlite3_column_int64(st, C_DEAD);
	if (col_dup(st, C_TYPE, &ev->type, NULL) == -1 ||
	    col_dup(st, C_ERROR, &ev->last_error, NULL) == -1 ||
	    col_dup(st, C_PROGRESS, &ev->progress, NULL) == -1 ||
	    (with_body && col_dup(st, C_EVENT, &ev->event_json,
	    &ev->event_len) == -1)) {
		podio__spool_event_clear(ev);
		return -1;
	}

	state = podio__sqlite_col_is(st, C_STATE, SQLITE_TEXT) ?
	    (const char *)sqlite3_column_text(st, C_STATE) : NULL;
	ev->state = podio__spool_state_of(state, ev, now, &bad);

	if (bad != NULL)
		;
	else if (!podio__sqlite_col_is(st, C_TYPE, SQLITE_TEXT) ||
	    !podio__spool_valid_type(ev->type, strlen(ev->type)))
		bad = "bad type";
	else if (!podio__sqlite_col_is(st, C_HOOK, SQLITE_INTEGER) ||
	    !col_int_or_null(st, C_ITEM) || !col_int_or_null(st, C_REV) ||
	    !col_int_or_null(st, C_APP))
		bad = "bad ids";
	else if (!podio__sqlite_col_is(st, C_RECEIVED, SQLITE_INTEGER) ||
	    !podio__sqlite_col_is(st, C_NEXT, SQLITE_INTEGER) ||
	    !col_int_or_null(st, C_LEASE) ||
	    !podio__sqlite_col_is(st, C_ATTEMPTS, SQLITE_INTEGER) ||
	    !podio__sqlite_col_is(st, C_FAILURES, SQLITE_INTEGER))
		bad = "bad times or counters";
	else if (!podio__sqlite_col_is(st, C_PROGRESS, SQLITE_NULL) &&
	    !podio__sqlite_col_is(st, C_PROGRESS, SQLITE_TEXT))
		bad = "bad progress";
	else if (with_body && (!podio__sqlite_col_is(st, C_EVENT, SQLITE_TEXT) ||
	    ev->event_json == NULL ||
	    !podio__json_valid(ev->event_json, ev->event_len)))
		bad = "the event is not valid JSON";
	if (bad == NULL)
		return 0;
	ev->state = PODIO_SPOOL_BAD;
	snprintf(why, whylen, "%s", bad);
	return 1;
}

/* Sets event id aside as bad, with reason, under a write transaction. */
static int
set_bad(struct spool_sqlite *s, int64_t id, const char *reason, int64_t now)
{
	sqlite3_stmt *st = NULL;
	char msg[128];
	int rc;

	podio__warn("spool %s: event %lld cannot be decoded (%s): set aside "
	    "as bad", s->base.path, (long long)id, reason);
	snprintf(msg, sizeof(msg), "cannot be decoded: %s", reason);
	if ((rc = podio__sqlite_prep(s, "UPDATE events SET state = 'bad',"
	    " last_error = ?1, dead_at = ?2, lease_owner = NULL,"
	    " lease_until = NULL"
	    " WHERE id = ?3", &st)) != SQLITE_OK)
		return rc;
	podio__sqlite_bind_text(st, 1, msg);
	sqlite3_bind_int64(st, 2, now);
	sqlite3_bind_int64(st, 3, id);
	rc = sqlite3_step(st);
	podio__sqlite_fin(s, st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * Sets aside every record whose state or column types are unusable (such
 * a record would never be taken, or could block its item), once per
 * handle, under db_lock.  Returns an SQLite code.
 */
int
podio__sqlite_sweep(struct spool_sqlite *s)
{
	static const char sql[] =
	    "SELECT id, CASE WHEN typeof(state) != 'text' OR state NOT IN"
	    " ('pending', 'dead', 'bad') THEN 'unknown state'"
	    " ELSE 'bad times, ids or type' END FROM events"
	    " WHERE typeof(state) != 'text'"
	    " OR state NOT IN ('pending', 'dead', 'bad')"
	    " OR (state != 'bad' AND (typeof(type) != 'text'"
	    "  OR typeof(hook_id) != 'integer'"
	    "  OR typeof(received_at) != 'integer'"
	    "  OR typeof(next_at) != 'integer'"
	    "  OR typeof(item_id) NOT IN ('integer', 'null')"
	    "  OR typeof(lease_until) NOT IN ('integer', 'null')))"
	    " LIMIT ?1";
	sqlite3_stmt *st = NULL;
	int64_t ids[64];
	char reasons[64][32];
	size_t n, i, total = 0;
	int rc;

	if (s->swept)
		return SQLITE_OK;
	do {
		n = 0;
		if ((rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
			return rc;
		sqlite3_bind_int(st, 1, 64);
		while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < 64) {
			ids[n] = sqlite3_column_int64(st, 0);
			podio__strlcpy(reasons[n], (const char *)
			    sqlite3_column_text(st, 1), sizeof(reasons[n]));
			n++;
		}
		podio__sqlite_fin(s, st);
		if (rc != SQLITE_DONE)
			return rc;
		if (n == 0)
			break;
		if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK)
			return rc;
		for (i = 0; i < n; i++)
			if ((rc = set_bad(s, ids[i], reasons[i],
			    podio__spool_now(&s->base))) != SQLITE_OK) {
				podio__sqlite_abort(s);
				return rc;
			}
		if ((rc = podio__sqlite_commit(s)) != SQLITE_OK) {
			podio__sqlite_abort(s);
			return rc;
		}
		total += n;
	} while (n == 64 && total < SPOOL_SWEEP_MAX);
	s->swept = 1;
	return SQLITE_OK;
}

/* ---------------------------------------------------------------- taking */

/* The app of event e: its own, else the one learned for its hook. */
#define APP_OF(e) "coalesce(" e ".app_id, (SELECT ha.app_id FROM" \
	" hook_apps ha WHERE ha.hook_id = " e ".hook_id))"

/*
 * The heads of the units a take may claim, oldest first, after id ?5 and
 * up to id ?7; ?1 now, ?2 settle, ?3 settle cap, ?4 item or app.
 *
 * An event of no item is its own unit: pending, due, not in flight
 * (read from the partial index of such events, events_noitem).
 *
 * An item's unit starts at its oldest pending event, read from items (one
 * row per item with pending events, kept by triggers: see spool.c): due,
 * not in flight, and settled (its newest event is ?2 old, or its oldest
 * ?3 old).  A unit is claimed from the head on, so an item with an event
 * in flight has its head in flight; the claim checks all of them again
 * (item_busy()).  With no_fetch, of an item none of whose
 * pending events needs the item fetched (the partial index
 * items_nofetch): a look while the fetches are held reads none of the
 * held items.  The items are looked at in the order of their heads, each
 * once, whatever number of events it holds.
 */
#define PLAIN_SQL(filter) \
	"SELECT e.id FROM events e INDEXED BY events_noitem" \
	" WHERE e.state = 'pending' AND e.item_id IS NULL" \
	" AND e.id > ?5 AND e.id <= ?7 AND e.next_at <= ?1" \
	" AND coalesce(e.lease_until, 0) <= ?1" filter \
	" ORDER BY e.id LIMIT 1"
#define ITEM_SQL(index, filter) \
	"SELECT i.head FROM items i" index " CROSS JOIN events h" \
	" ON h.id = i.head" \
	" WHERE i.head > ?5 AND i.head <= ?7" \
	" AND (?2 <= 0 OR i.first_at <= ?1 - ?3 OR i.last_at <= ?1 - ?2)" \
	filter \
	" AND h.state = 'pending' AND h.next_at <= ?1" \
	" AND coalesce(h.lease_until, 0) <= ?1" \
	" ORDER BY i.head LIMIT 1"

#define NOFETCH_SQL " AND e.type NOT IN ('item.create', 'item.update')"
#define ITEMS_ALL " INDEXED BY items_head"
#define ITEMS_NOFETCH " INDEXED BY items_nofetch"

static const char *const plain_sql[2] = {
	PLAIN_SQL(""),
	PLAIN_SQL(NOFETCH_SQL),
};

static const char *const item_sql[2][3] = {
	{
		ITEM_SQL(ITEMS_ALL, ""),
		ITEM_SQL("", " AND i.item_id = ?4"),
		ITEM_SQL(ITEMS_ALL, " AND " APP_OF("h") " = ?4"),
	}, {
		ITEM_SQL(ITEMS_NOFETCH, " AND i.fetch = 0"),
		ITEM_SQL("", " AND i.item_id = ?4 AND i.fetch = 0"),
		ITEM_SQL(ITEMS_NOFETCH, " AND i.fetch = 0 AND " APP_OF("h")
		    " = ?4"),
	},
};

/* Finds the next head after id after, up to id upto, of an item unit
 * (has_item 1) or of an event of no item: *id 0 when there is none.  A
 * take of an item or an app looks at items only. */
static int
find_head(struct spool_sqlite *s, const struct spool_take *p, int has_item,
    int64_t after, int64_t upto, int64_t *id)
{
	sqlite3_stmt *st = NULL;
	int rc;

	*id = 0;
	if (!has_item && p->mode != SPOOL_TAKE_ANY)
		return SQLITE_OK;
	if ((rc = podio__sqlite_prep(s, has_item ?
	    item_sql[p->no_fetch != 0][p->mode] : plain_sql[p->no_fetch != 0],
	    &st)) != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, p->now);
	sqlite3_bind_int64(st, 5, after);
	sqlite3_bind_int64(st, 7, upto);
	if (has_item) {
		sqlite3_bind_int64(st, 2, p->settle_ms);
		sqlite3_bind_int64(st, 3, p->settle_max_ms);
		if (p->mode != SPOOL_TAKE_ANY)
			podio__sqlite_bind_u64(st, 4, p->key);
	}
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		rc = SQLITE_OK;
	} else if (rc == SQLITE_DONE)
		rc = SQLITE_OK;
	podio__sqlite_fin(s, st);
	return rc;
}

/* Whether an event of head's item is in flight at now: 1, 0, or -1 with
 * *rc set on error. */
static int
item_busy(struct spool_sqlite *s, int64_t head, int64_t now, int *rc)
{
	sqlite3_stmt *st = NULL;
	int busy;

	if ((*rc = podio__sqlite_prep(s, "SELECT 1 FROM events p"
	    " WHERE p.item_id = (SELECT item_id FROM events WHERE id = ?1)"
	    " AND p.state = 'pending' AND coalesce(p.lease_until, 0) > ?2"
	    " LIMIT 1", &st)) != SQLITE_OK)
		return -1;
	sqlite3_bind_int64(st, 1, head);
	sqlite3_bind_int64(st, 2, now);
	*rc = sqlite3_step(st);
	busy = *rc == SQLITE_ROW;
	podio__sqlite_fin(s, st);
	if (*rc != SQLITE_ROW && *rc != SQLITE_DONE)
		return -1;
	*rc = SQLITE_OK;
	return busy;
}

/*
 * Claims the unit whose head is head (in a write transaction): the head
 * alone, or the head and the due events of its item after it, setting
 * aside the undecodable ones.  Fills b (empty when every event was bad).
 * Returns an SQLite code, or SQLITE_NOMEM.
 */
static int
claim_unit(struct spool_sqlite *s, int64_t head, int has_item,
    const struct spool_take *p, struct podio_spool_batch *b)
{
	sqlite3_stmt *st = NULL, *up = NULL;
	struct podio_spool_event ev;
	char why[64];
	struct {
		int64_t id;
		char why[64];
	} bad[SPOOL_MAX_EVENTS + 1];
	size_t nbad = 0, i, limit = p->max_events;
	int rc, r;

	memset(b, 0, sizeof(*b));
	if (has_item)
		rc = podio__sqlite_prep(s, "SELECT " SPOOL_COLS ", event"
		    " FROM events WHERE item_id ="
		    " (SELECT item_id FROM events WHERE id = ?1)"
		    " AND state = 'pending' AND id >= ?1 ORDER BY id"
		    " LIMIT ?2", &st);
	else
		rc = podio__sqlite_prep(s, "SELECT " SPOOL_COLS ", event"
		    " FROM events WHERE id = ?1 LIMIT ?2", &st);
	if (rc != SQLITE_OK)
		return rc;
	sqlite3_bind_int64(st, 1, head);
	sqlite3_bind_int64(st, 2, (sqlite3_int64)limit +
	    SPOOL_MAX_EVENTS);
	while (b->n < limit && (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if ((r = podio__sqlite_read_row(st, p->now, 1, &ev, why,
		    sizeof(why))) == -1) {
			rc = SQLITE_NOMEM;
			goto fail;
		}
		if (r == 1) {
			/* Set aside after the scan, below. */
			if (nbad < sizeof(bad) / sizeof(bad[0])) {
				bad[nbad].id = ev.id;
				podio__strlcpy(bad[nbad].why, why,
				    sizeof(bad[nbad].why));
				nbad++;
			}
			podio__spool_event_clear(&ev);
			continue;
		}
		if (ev.next_ms > p->now) {
			/* Later events wait for this one: order per item. */
			podio__spool_event_clear(&ev);
			break;
		}
		if (podio__spool_batch_push(b, &ev) == -1) {
			podio__spool_event_clear(&ev);
			rc = SQLITE_NOMEM;
			goto fail;
		}
	}
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	st = NULL;
	for (i = 0; i < nbad; i++)
		if ((rc = set_bad(s, bad[i].id, bad[i].why, p->now)) !=
		    SQLITE_OK)
			goto fail;
	if (b->n == 0)
		/* Only bad events: the caller looks for the next head.  No
		 * bad event either cannot happen under the write lock (the
		 * head is due); SQLITE_DONE stops the search then. */
		return nbad > 0 ? SQLITE_OK : SQLITE_DONE;
	if ((rc = podio__sqlite_prep(s, "UPDATE events SET lease_owner = ?1,"
	    " lease_until = ?2, leases = leases + 1 WHERE id = ?3", &up)) !=
	    SQLITE_OK)
		goto fail;
	b->lease_until_ms = p->now + p->lease_ms;
	for (i = 0; i < b->n; i++) {
		sqlite3_reset(up);
		podio__sqlite_bind_text(up, 1, s->base.owner);
		sqlite3_bind_int64(up, 2, b->lease_until_ms);
		sqlite3_bind_int64(up, 3, b->events[i].id);
		if ((rc = sqlite3_step(up)) != SQLITE_DONE)
			goto fail;
		b->events[i].state = PODIO_SPOOL_IN_FLIGHT;
		b->events[i].lease_until_ms = b->lease_until_ms;
		b->events[i].leases++;
	}
	podio__sqlite_fin(s, up);
	up = NULL;

	b->has_item = has_item;
	b->item_id = b->events[0].item_id;
	b->first_received_ms = b->events[0].received_ms;
	b->last_received_ms = b->events[b->n - 1].received_ms;
	/* The item's app and its newest pending event, in the batch or not. */
	rc = podio__sqlite_prep(s, "SELECT (SELECT max(received_at) FROM events"
	    " WHERE item_id = e.item_id AND state = 'pending'), "
	    APP_OF("e") " FROM events e WHERE e.id = ?1", &st);
	if (rc != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, b->events[0].id);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		goto fail;
	if (has_item && sqlite3_column_int64(st, 0) > b->last_received_ms)
		b->last_received_ms = sqlite3_column_int64(st, 0);
	b->app_id = (uint64_t)sqlite3_column_int64(st, 1);
	podio__sqlite_fin(s, st);
	return SQLITE_OK;
fail:
	podio__sqlite_fin(s, st);
	podio__sqlite_fin(s, up);
	podio_spool_batch_clear(b);
	return rc;
}

/*
 * Claims up to max units in one transaction; the common body of the take
 * functions.  *out receives *n batches (freed by the caller).  Returns
 * PODIO_ERR_NOT_FOUND when nothing is due.
 *
 * The heads are looked for before the write transaction, in one pass
 * over the pending events (a read, which holds up no append of this or
 * another process however many events wait); inside it, each is checked
 * again on its own (one row) and claimed.  A head another take claimed
 * meanwhile is left out; events stored meanwhile wait for the next take.
 */
enum podio_err
podio__sqlite_take(struct podio_spool *sp, const struct spool_take *t,
    size_t max, struct podio_spool_batch **out, size_t *n)
{
	struct spool_sqlite *s = SQ(sp);
	struct podio_spool_batch *bs = NULL, b;
	struct spool_take p = *t;
	enum podio_err e = PODIO_ERR_NOT_FOUND;
	struct {
		int64_t id;
		int has_item;
	} *heads = NULL;
	int64_t head, next[2];
	size_t nheads = 0, i, committed = 0;
	int rc, has_item, busy;

	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_sweep(s)) != SQLITE_OK)
		goto fail;
	/* The next head of each kind; the older one is taken first. */
	if ((rc = find_head(s, &p, 1, 0, INT64_MAX, &next[1])) !=
	    SQLITE_OK ||
	    (rc = find_head(s, &p, 0, 0, INT64_MAX, &next[0])) !=
	    SQLITE_OK)
		goto fail;
	while (nheads < max && (next[0] != 0 || next[1] != 0)) {
		has_item = next[0] == 0 || (next[1] != 0 && next[1] < next[0]);
		if (heads == NULL && (heads = calloc(max, sizeof(*heads))) ==
		    NULL) {
			rc = SQLITE_NOMEM;
			goto fail;
		}
		heads[nheads].id = next[has_item];
		heads[nheads].has_item = has_item;
		nheads++;
		if ((rc = find_head(s, &p, has_item, next[has_item],
		    INT64_MAX, &next[has_item])) != SQLITE_OK)
			goto fail;
	}
	if (nheads == 0) {
		pthread_mutex_unlock(&s->db_lock);
		return PODIO_ERR_NOT_FOUND;
	}
	if ((bs = calloc(nheads, sizeof(*bs))) == NULL) {
		rc = SQLITE_NOMEM;
		goto fail;
	}
	if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK)
		goto fail;
	p.now = podio__spool_now(&s->base);
	for (i = 0; i < nheads; i++) {
		has_item = heads[i].has_item;
		if ((rc = find_head(s, &p, has_item,
		    heads[i].id - 1, heads[i].id, &head)) != SQLITE_OK)
			goto fail;
		if (head != heads[i].id)
			continue;       /* claimed by another, or not due now */
		if (has_item && (busy = item_busy(s, head, p.now, &rc)) != 0) {
			if (busy < 0)
				goto fail;
			continue;
		}
		if ((rc = claim_unit(s, head, has_item, &p, &b)) == SQLITE_DONE)
			continue;
		if (rc != SQLITE_OK)
			goto fail;
		if (b.n == 0)
			continue;
		bs[(*n)++] = b;
		/* What is claimed is committed; the rest goes on in a new
		 * transaction. */
		if ((*n % SPOOL_CLAIM_CHUNK == 0 ||
		    podio__sqlite_yield_due(s)) && i + 1 < nheads) {
			if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
				goto fail;
			podio__sqlite_yield_wait(s);
			committed = *n;
			if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK)
				goto fail;
			p.now = podio__spool_now(&s->base);
		}
	}
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	free(heads);
	if (*n == 0) {
		free(bs);
		return PODIO_ERR_NOT_FOUND;
	}
	*out = bs;
	return PODIO_OK;
fail:
	e = podio__sqlite_failed(s, "take", rc, e);
	pthread_mutex_unlock(&s->db_lock);
	free(heads);
	if (committed > 0) {
		/* The units of the chunks committed are claimed: the caller
		 * runs them; those of the chunk rolled back are not. */
		for (i = committed; i < *n; i++)
			podio_spool_batch_clear(&bs[i]);
		*n = committed;
		*out = bs;
		return PODIO_OK;
	}
	podio_spool_batches_free(bs, *n);
	*n = 0;
	return e;
}

enum podio_err
podio__sqlite_pending_items(struct podio_spool *sp, uint64_t app_id,
    size_t max, struct podio_spool_item **items, size_t *n)
{
	struct spool_sqlite *s = SQ(sp);
	static const char sql[] =
	    "SELECT g.item_id, g.n, g.first, g.last, h.next_at, g.busy FROM"
	    " (SELECT e.item_id AS item_id, count(*) AS n,"
	    "  min(e.received_at) AS first, max(e.received_at) AS last,"
	    "  min(e.id) AS head,"
	    "  max(coalesce(e.lease_until, 0) > ?1) AS busy"
	    "  FROM events e WHERE e.state = 'pending'"
	    "  AND e.item_id IS NOT NULL AND " APP_OF("e") " = ?2"
	    "  GROUP BY e.item_id) g"
	    " JOIN events h ON h.id = g.head ORDER BY g.head LIMIT ?3";
	struct podio_spool_item *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_ERR_NOMEM;
	size_t alloc = 0;
	int rc;

	*items = NULL;
	*n = 0;
	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, podio__spool_now(&s->base));
	podio__sqlite_bind_u64(st, 2, app_id);
	sqlite3_bind_int64(st, 3, max > 0 && max < INT32_MAX ?
	    (sqlite3_int64)max : -1);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			if ((nv = realloc(v, alloc * sizeof(*v))) == NULL) {
				rc = SQLITE_OK;
				goto fail;
			}
			v = nv;
		}
		v[*n].item_id = (uint64_t)sqlite3_column_int64(st, 0);
		v[*n].events = (size_t)sqlite3_column_int64(st, 1);
		v[*n].first_received_ms = sqlite3_column_int64(st, 2);
		v[*n].last_received_ms = sqlite3_column_int64(st, 3);
		v[*n].next_ms = sqlite3_column_int64(st, 4);
		v[*n].in_flight = sqlite3_column_int(st, 5) != 0;
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	pthread_mutex_unlock(&s->db_lock);
	*items = v;
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, "list pending items", rc, e);
	pthread_mutex_unlock(&s->db_lock);
	free(v);
	*n = 0;
	return e;
}

enum podio_err
podio__sqlite_next_due(struct podio_spool *sp, const struct spool_take *t,
    int64_t *when_ms)
{
	struct spool_sqlite *s = SQ(sp);
	/* The first moment each unit may be taken: an event of no item
	 * when it is due and not in flight; an item when its head is due,
	 * none of its events is in flight, and it settled.  With no_fetch,
	 * of the units a take with no_fetch may claim, read from the
	 * partial indexes: while the fetches are held, the look reads none
	 * of the held events or items. */
#define NEXT_DUE_SQL(plain, items, itemfilter) \
	"SELECT min(t) FROM (" \
	" SELECT CASE WHEN coalesce(e.lease_until, 0) > ?1" \
	"  THEN e.lease_until ELSE e.next_at END AS t" \
	"  FROM events e INDEXED BY events_noitem" \
	"  WHERE e.state = 'pending' AND e.item_id IS NULL" plain \
	" UNION ALL" \
	" SELECT max(h.next_at, coalesce(h.lease_until, 0), CASE WHEN ?2 > 0" \
	"  THEN min(i.last_at + ?2, i.first_at + ?3) ELSE 0 END)" \
	"  FROM items i" items " CROSS JOIN events h ON h.id = i.head" \
	"  WHERE h.state = 'pending'" itemfilter ")"
	static const char sql[] = NEXT_DUE_SQL("", "", "");
	static const char sql_nofetch[] = NEXT_DUE_SQL(NOFETCH_SQL,
	    ITEMS_NOFETCH, " AND i.fetch = 0");
	sqlite3_stmt *st = NULL;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_prep(s, t->no_fetch ? sql_nofetch : sql,
	    &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, t->now);
	sqlite3_bind_int64(st, 2, t->settle_ms);
	sqlite3_bind_int64(st, 3, t->settle_max_ms);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		goto fail;
	*when_ms = sqlite3_column_int64(st, 0);
	podio__sqlite_fin(s, st);
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	{
		enum podio_err e = podio__sqlite_failed(s, "next due", rc,
		    PODIO_ERR_IO);

		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
}

/* ------------------------------------------------------------- outcomes */

/*
 * Runs one UPDATE on event id in a write transaction after checking the
 * event exists (PODIO_ERR_NOT_FOUND) and, when need_lease, that it is
 * pending and this handle's lease (PODIO_ERR_CONFLICT).  The statement
 * binds ?1 = id, ?2 = now, ?3.. as the caller's bind() sets them.
 * *attempts (may be NULL) receives the attempts after the update.
 */
static enum podio_err
update_event(struct spool_sqlite *s, const char *what, int64_t id,
    int need_lease, const char *sql,
    void (*bind)(sqlite3_stmt *, const void *), const void *arg,
    long *attempts)
{
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_OK;
	int64_t now = podio__spool_now(&s->base);
	int rc;

	pthread_mutex_lock(&s->db_lock);
	if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK)
		goto fail;
	if ((rc = podio__sqlite_prep(s, "SELECT state = 'pending'"
	    " AND lease_owner = ?2 FROM events WHERE id = ?1", &st)) !=
	    SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	podio__sqlite_bind_text(st, 2, s->base.owner);
	if ((rc = sqlite3_step(st)) == SQLITE_DONE) {
		e = PODIO_ERR_NOT_FOUND;
		goto fail;
	}
	if (rc != SQLITE_ROW)
		goto fail;
	if (need_lease && sqlite3_column_int(st, 0) != 1) {
		e = PODIO_ERR_CONFLICT;
		goto fail;
	}
	podio__sqlite_fin(s, st);
	if ((rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, id);
	sqlite3_bind_int64(st, 2, now);
	if (bind != NULL)
		bind(st, arg);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	st = NULL;
	if (attempts != NULL) {
		if ((rc = podio__sqlite_prep(s, "SELECT attempts FROM events"
		    " WHERE id = ?1", &st)) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(st, 1, id);
		if ((rc = sqlite3_step(st)) != SQLITE_ROW)
			goto fail;
		*attempts = (long)sqlite3_column_int64(st, 0);
		podio__sqlite_fin(s, st);
		st = NULL;
	}
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, what, rc, e);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/* Deletes the pending events of ids, SPOOL_WRITE_CHUNK to a transaction
 * at most, and fewer when an append of this process waits (see
 * podio__sqlite_yield_due()), so that the appends of every process commit
 * in between. */
enum podio_err
podio__sqlite_done_many(struct podio_spool *sp, const int64_t *ids, size_t n)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_OK;
	size_t i, chunk = 0;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	for (i = 0; i < n || i == 0; i++) {
		if (chunk == 0 && (rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK)
			goto fail;
		if (i < n) {
			if ((rc = podio__sqlite_prep(s, "DELETE FROM events"
			    " WHERE id = ?1 AND state = 'pending'", &st)) !=
			    SQLITE_OK)
				goto fail;
			sqlite3_bind_int64(st, 1, ids[i]);
			if ((rc = sqlite3_step(st)) != SQLITE_DONE)
				goto fail;
			if (sqlite3_changes(s->db) == 0)
				e = PODIO_ERR_NOT_FOUND;
			podio__sqlite_fin(s, st);
			st = NULL;
		}
		if (i + 1 >= n || ++chunk == SPOOL_WRITE_CHUNK ||
		    podio__sqlite_yield_due(s)) {
			if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
				goto fail;
			chunk = 0;
			if (i + 1 < n)
				podio__sqlite_yield_wait(s);
		}
		if (n == 0)
			break;
	}
	pthread_mutex_unlock(&s->db_lock);
	return e;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, "done", rc, e);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

static void
bind_change(sqlite3_stmt *st, const void *arg)
{
	const struct spool_change *c = arg;

	switch (c->op) {
	case SPOOL_FAIL:
		sqlite3_bind_text(st, 3, c->reason, (int)c->reason_len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, c->retry_ms);
		sqlite3_bind_int(st, 5, c->counts);
		break;
	case SPOOL_DEAD:
		sqlite3_bind_text(st, 3, c->reason, (int)c->reason_len,
		    SQLITE_STATIC);
		break;
	case SPOOL_EXTEND:
		sqlite3_bind_int64(st, 3, c->lease_ms);
		break;
	case SPOOL_PROGRESS:
		podio__sqlite_bind_text(st, 3, c->progress);
		break;
	case SPOOL_RELEASE:
		break;
	}
}

enum podio_err
podio__sqlite_change(struct podio_spool *sp, int64_t id,
    const struct spool_change *c, long *attempts)
{
	static const char *const sql[] = {
		[SPOOL_FAIL] = "UPDATE events SET"
		    " attempts = attempts + ?5, failures = failures + 1,"
		    " next_at = ?4, last_error = ?3, failed_at = ?2,"
		    " lease_owner = NULL, lease_until = NULL WHERE id = ?1",
		[SPOOL_DEAD] = "UPDATE events SET"
		    " state = 'dead', dead_at = ?2, last_error = ?3,"
		    " lease_owner = NULL, lease_until = NULL WHERE id = ?1",
		[SPOOL_RELEASE] = "UPDATE events SET"
		    " lease_owner = NULL, lease_until = NULL WHERE id = ?1",
		[SPOOL_EXTEND] = "UPDATE events SET"
		    " lease_until = ?2 + ?3 WHERE id = ?1",
		[SPOOL_PROGRESS] = "UPDATE events SET"
		    " progress = ?3 WHERE id = ?1",
	};
	static const char *const what[] = {
		[SPOOL_FAIL] = "fail", [SPOOL_DEAD] = "dead",
		[SPOOL_RELEASE] = "release", [SPOOL_EXTEND] = "extend",
		[SPOOL_PROGRESS] = "progress",
	};

	return update_event(SQ(sp), what[c->op], id, 1, sql[c->op],
	    bind_change, c, c->op == SPOOL_FAIL ? attempts : NULL);
}

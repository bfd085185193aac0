/*
 * pg_queue.c: the queue side of the PostgreSQL spool (see spool.h):
 * taking due events with a lease (per item, in arrival order) while the
 * processes of several hosts share the table, when something becomes
 * due, and what a worker reports back (done, fail, dead, release,
 * extend, progress).
 *
 * Takers never wait for one another.  A take locks the heads of the
 * units it claims with SELECT ... FOR UPDATE SKIP LOCKED, so no two
 * takers claim one head, and a head another take holds is passed over,
 * not waited for.  Before it claims an item it also takes the item's
 * transaction lock (pg_try_advisory_xact_lock(), see item_lock()) and
 * passes the item over when another take holds it: two appends that
 * commit out of order can give two takers two different heads of one
 * item, and the lock keeps them from claiming events of one item at
 * once.  Once it holds that lock, a take reads the item afresh (each
 * statement of a READ COMMITTED transaction sees what committed before
 * it), so it sees every claim made before.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "pg_int.h"
#include "spool.h"
#include "spool_int.h"

/* Events removed by one statement of podio__pg_done_many(). */
#define PG_DONE_CHUNK 256
/* Times a take looks for more heads after heads it could not claim
 * (undecodable events, an item another take holds). */
#define PG_TAKE_ROUNDS 8
/* Rows read past max_events for a unit, to make up for undecodable
 * ones set aside on the way. */
#define PG_UNIT_SLACK 8
/* The first key of the items' transaction locks (two-key advisory
 * locks, which never meet the one-key session locks of the leases). */
#define PG_ITEM_LOCK_CLASS 0x506f6449  /* "PoDI" */

/* The columns after PG_COLS and the event in a unit's rows. */
enum { U_LAST = 18, U_APP, U_BUSY };

/* The app of event e: its own, else the one learned for its hook. */
#define APP_OF(e) "coalesce(" e ".app_id, (SELECT ha.app_id FROM" \
	" podio_hook_apps ha WHERE ha.hook_id = " e ".hook_id))"

/* The types of the events that need their item fetched. */
#define FETCH_TYPES "('item.create', 'item.update')"

/*
 * The heads of the units a take may claim after id $5, oldest first, at
 * most $4, locked (and those another take holds passed over); $1 now,
 * $2 settle, $3 settle cap, $6 the item or the app.  Each row: the
 * head's id, whether it has an item, the item.
 *
 * An event of no item is its own unit: pending, due, not in flight.
 *
 * An item's unit starts at its oldest pending event, the head: due, no
 * event of the item in flight, and settled (its newest pending event is
 * $2 old, or its head $3 old).  With no_fetch, an item with a pending
 * event that needs the item fetched is passed over, and so is such an
 * event of no item.
 */
#define HEADS_SQL(plain, item, p_fetch) \
	"SELECT e.id, (e.item_id IS NOT NULL)::integer::bigint, e.item_id" \
	" FROM podio_events e" \
	" WHERE e.state = 'pending' AND e.id > $5::bigint" \
	" AND e.next_at <= $1::bigint" \
	" AND coalesce(e.lease_until, 0) <= $1::bigint" \
	" AND (" plain " OR (e.item_id IS NOT NULL" item \
	"  AND NOT EXISTS (SELECT 1 FROM podio_events p" \
	"   WHERE p.item_id = e.item_id AND p.state = 'pending'" \
	"   AND (p.id < e.id OR coalesce(p.lease_until, 0) > $1::bigint" \
	p_fetch "))" \
	"  AND ($2::bigint <= 0 OR e.received_at <= $1::bigint - $3::bigint" \
	"   OR (SELECT max(p.received_at) FROM podio_events p" \
	"    WHERE p.item_id = e.item_id AND p.state = 'pending')" \
	"    <= $1::bigint - $2::bigint)))" \
	" ORDER BY e.id LIMIT $4::bigint FOR UPDATE OF e SKIP LOCKED"

#define PLAIN_ALL "(e.item_id IS NULL)"
#define PLAIN_NOFETCH "(e.item_id IS NULL AND e.type NOT IN " FETCH_TYPES ")"
#define P_NOFETCH " OR p.type IN " FETCH_TYPES
#define ITEM_ONE " AND e.item_id = $6::bigint"
#define ITEM_APP " AND " APP_OF("e") " = $6::bigint"

/* By no_fetch and mode (enum spool_take_mode). */
static const char *const heads_sql[2][3] = {
	{
		HEADS_SQL(PLAIN_ALL, "", ""),
		HEADS_SQL("false", ITEM_ONE, ""),
		HEADS_SQL("false", ITEM_APP, ""),
	}, {
		HEADS_SQL(PLAIN_NOFETCH, "", P_NOFETCH),
		HEADS_SQL("false", ITEM_ONE, P_NOFETCH),
		HEADS_SQL("false", ITEM_APP, P_NOFETCH),
	},
};

/* ---------------------------------------------------------------- taking */

/*
 * Takes the transaction lock of item (see the top of this file) without
 * waiting: 1 when this transaction holds it (also when it did before),
 * 0 when another does, -1 on failure.
 */
static int
item_lock(struct spool_pg *s, int64_t item)
{
	static const char sql[] = "SELECT pg_try_advisory_xact_lock("
	    "$1::integer, $2::integer)::integer::bigint";
	struct pg_params pa;
	PGresult *r;
	uint64_t u = (uint64_t)item;
	int got;

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, PG_ITEM_LOCK_CLASS);
	podio__pg_i64(&pa, (int64_t)((u ^ (u >> 32)) & 0x7fffffff));
	if ((r = podio__pg_run(s, sql, &pa)) == NULL)
		return -1;
	got = PQntuples(r) == 1 && podio__pg_int(r, 0, 0) == 1;
	PQclear(r);
	return got;
}

/*
 * Writes "{id,id,...}" of the n ids (taken from events when ids is
 * NULL) into a new string the caller frees: an array parameter bound
 * as text.  NULL on out of memory.
 */
static char *
id_array(const int64_t *ids, const struct podio_spool_event *events,
    size_t n)
{
	char *a, *p;
	size_t i;

	if ((a = malloc(n * 22 + 3)) == NULL)
		return NULL;
	p = a;
	*p++ = '{';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%lld", i > 0 ? "," : "", (long long)
		    (ids != NULL ? ids[i] : events[i].id));
	*p++ = '}';
	*p = '\0';
	return a;
}

/*
 * Claims the unit whose head is head (locked by this transaction): the
 * head alone, or the head and the due events of its item after it, in
 * id order, up to max_events, stopping at the first one not due and
 * setting aside the undecodable ones.  Returns 0 with b filled, 1 when
 * nothing was claimed (the item is busy, another take holds it, an
 * older event of it committed late), 2 when every event read was set
 * aside, -1 on failure (*e set).
 */
static int
claim_unit(struct spool_pg *s, int64_t head, int has_item, int64_t item,
    const struct spool_take *p, struct podio_spool_batch *b,
    enum podio_err *e)
{
	static const char item_sql[] = "SELECT " PG_COLS ", event,"
	    " (SELECT max(p.received_at) FROM podio_events p"
	    "  WHERE p.item_id = $1::bigint AND p.state = 'pending'),"
	    " " APP_OF("e") ","
	    " (SELECT count(*) FROM podio_events p"
	    "  WHERE p.item_id = $1::bigint AND p.state = 'pending'"
	    "  AND (p.id < $2::bigint"
	    "  OR coalesce(p.lease_until, 0) > $3::bigint))"
	    " FROM podio_events e"
	    " WHERE e.item_id = $1::bigint AND e.state = 'pending'"
	    " AND e.id >= $2::bigint ORDER BY e.id LIMIT $4::bigint"
	    " FOR UPDATE OF e";
	static const char plain_sql[] = "SELECT " PG_COLS ", event,"
	    " NULL::bigint, " APP_OF("e") ", 0::bigint"
	    " FROM podio_events e WHERE e.id = $1::bigint"
	    " AND e.state = 'pending'";
	static const char lease_sql[] = "UPDATE podio_events SET"
	    " lease_owner = $1::text, lease_key = $2::bigint,"
	    " lease_until = $3::bigint, leases = leases + 1"
	    " WHERE id = ANY ($4::text::bigint[])";
	struct podio_spool_event ev;
	struct pg_params pa;
	PGresult *r = NULL;
	char why[64], *ids = NULL;
	size_t i, limit = p->max_events, nbad = 0, changed = 0;
	int rows, row, first = -1, got;

	memset(b, 0, sizeof(*b));
	*e = PODIO_ERR_IO;
	memset(&pa, 0, sizeof(pa));
	if (has_item) {
		if ((got = item_lock(s, item)) != 1)
			return got == 0 ? 1 : -1;
		podio__pg_i64(&pa, item);
		podio__pg_i64(&pa, head);
		podio__pg_i64(&pa, p->now);
		podio__pg_i64(&pa, limit < INT64_MAX - PG_UNIT_SLACK ?
		    (int64_t)(limit + PG_UNIT_SLACK) : INT64_MAX);
		r = podio__pg_run(s, item_sql, &pa);
	} else {
		podio__pg_i64(&pa, head);
		r = podio__pg_run(s, plain_sql, &pa);
	}
	if (r == NULL)
		return -1;
	rows = PQntuples(r);
	if (rows == 0 || podio__pg_int(r, 0, U_BUSY) > 0) {
		PQclear(r);
		return 1;
	}
	for (row = 0; row < rows && b->n < limit; row++) {
		if ((got = podio__pg_read_row(r, row, p->now, 1, &ev, why,
		    sizeof(why))) == -1) {
			*e = PODIO_ERR_NOMEM;
			goto fail;
		}
		if (got == 1) {
			podio__spool_event_clear(&ev);
			if (podio__pg_set_bad(s, podio__pg_int(r, row, 0), why,
			    p->now) == -1)
				goto fail;
			nbad++;
			continue;
		}
		if (ev.next_ms > p->now) {
			/* Later events wait for this one: order per item. */
			podio__spool_event_clear(&ev);
			break;
		}
		if (podio__spool_batch_push(b, &ev) == -1) {
			podio__spool_event_clear(&ev);
			*e = PODIO_ERR_NOMEM;
			goto fail;
		}
		if (first < 0)
			first = row;
	}
	if (b->n == 0) {
		PQclear(r);
		return nbad > 0 ? 2 : 1;
	}

	if ((ids = id_array(NULL, b->events, b->n)) == NULL) {
		*e = PODIO_ERR_NOMEM;
		goto fail;
	}
	b->lease_until_ms = p->now + p->lease_ms;
	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, s->base.owner);
	podio__pg_i64(&pa, s->lock_key);
	podio__pg_i64(&pa, b->lease_until_ms);
	podio__pg_str(&pa, ids);
	if (podio__pg_do(s, lease_sql, &pa, &changed) == -1)
		goto fail;
	if (changed != b->n) {
		/* Cannot happen: this transaction holds every row. */
		snprintf(s->down_msg, sizeof(s->down_msg), "%zu of %zu "
		    "events claimed", changed, b->n);
		goto fail;
	}
	free(ids);
	ids = NULL;
	for (i = 0; i < b->n; i++) {
		b->events[i].state = PODIO_SPOOL_IN_FLIGHT;
		b->events[i].lease_until_ms = b->lease_until_ms;
		b->events[i].leases++;
	}
	b->has_item = has_item;
	b->item_id = b->events[0].item_id;
	b->first_received_ms = b->events[0].received_ms;
	b->last_received_ms = b->events[b->n - 1].received_ms;
	/* The item's newest pending event, in the batch or not. */
	if (has_item && podio__pg_int(r, first, U_LAST) > b->last_received_ms)
		b->last_received_ms = podio__pg_int(r, first, U_LAST);
	b->app_id = (uint64_t)podio__pg_int(r, first, U_APP);
	PQclear(r);
	return 0;
fail:
	PQclear(r);
	free(ids);
	podio_spool_batch_clear(b);
	return -1;
}

/*
 * Claims up to max units in one transaction; the common body of the take
 * functions.  *out receives *n batches (freed by the caller).  Returns
 * PODIO_ERR_NOT_FOUND when nothing is due.
 *
 * Leases of sessions that ended are given back first (at most once a
 * second, podio__pg_reclaim_due()).  Then one statement finds and locks
 * the heads, oldest first, and each is claimed with the due events of
 * its item.  When some could not be claimed (their events were set
 * aside as undecodable, another take holds the item), the search goes
 * on with the heads after them.
 */
enum podio_err
podio__pg_take(struct podio_spool *sp, const struct spool_take *t,
    size_t max, struct podio_spool_batch **out, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	struct podio_spool_batch *bs = NULL, b;
	struct spool_take p = *t;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int64_t after = 0, limit;
	size_t rounds;
	int rows, row, got, missed;

	*out = NULL;
	*n = 0;
	if ((bs = calloc(max, sizeof(*bs))) == NULL)
		return PODIO_ERR_NOMEM;
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin_lazy(s) == -1)
		goto fail;
	p.now = podio__spool_now(&s->base);
	if (podio__pg_reclaim_due(s, p.now) == -1)
		goto fail;
	for (rounds = 0; rounds < PG_TAKE_ROUNDS && *n < max; rounds++) {
		limit = (int64_t)(max - *n);
		memset(&pa, 0, sizeof(pa));
		podio__pg_i64(&pa, p.now);
		podio__pg_i64(&pa, p.settle_ms);
		podio__pg_i64(&pa, p.settle_max_ms);
		podio__pg_i64(&pa, limit);
		podio__pg_i64(&pa, after);
		if (p.mode != SPOOL_TAKE_ANY)
			podio__pg_u64(&pa, p.key);
		if ((r = podio__pg_run(s, heads_sql[p.no_fetch != 0][p.mode],
		    &pa)) == NULL)
			goto fail;
		rows = PQntuples(r);
		missed = 0;
		for (row = 0; row < rows; row++) {
			after = podio__pg_int(r, row, 0);
			got = claim_unit(s, after,
			    podio__pg_int(r, row, 1) != 0,
			    podio__pg_int(r, row, 2), &p, &b, &e);
			if (got == -1)
				goto fail;
			if (got == 0)
				bs[(*n)++] = b;
			else
				missed++;
		}
		PQclear(r);
		r = NULL;
		/* Every head claimed, or no more of them. */
		if (missed == 0 || rows < limit)
			break;
	}
	if (podio__pg_commit(s) == -1) {
		e = PODIO_ERR_IO;
		goto fail;
	}
	pthread_mutex_unlock(&s->db_lock);
	if (*n == 0) {
		free(bs);
		return PODIO_ERR_NOT_FOUND;
	}
	*out = bs;
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, "take", e);
	pthread_mutex_unlock(&s->db_lock);
	podio_spool_batches_free(bs, *n);
	*n = 0;
	return e;
}

enum podio_err
podio__pg_pending_items(struct podio_spool *sp, uint64_t app_id,
    size_t max, struct podio_spool_item **items, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] =
	    "SELECT g.item_id, g.n, g.first, g.last, h.next_at, g.busy FROM"
	    " (SELECT e.item_id AS item_id, count(*) AS n,"
	    "  min(e.received_at) AS first, max(e.received_at) AS last,"
	    "  min(e.id) AS head,"
	    "  max(CASE WHEN coalesce(e.lease_until, 0) > $1::bigint"
	    "  THEN 1 ELSE 0 END)::bigint AS busy"
	    "  FROM podio_events e WHERE e.state = 'pending'"
	    "  AND e.item_id IS NOT NULL AND " APP_OF("e") " = $2::bigint"
	    "  GROUP BY e.item_id) g"
	    " JOIN podio_events h ON h.id = g.head ORDER BY g.head"
	    " LIMIT $3::bigint";
	struct podio_spool_item *v = NULL;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int rows, i;

	*items = NULL;
	*n = 0;
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_u64(&pa, app_id);
	if (max > 0 && max < INT64_MAX)
		podio__pg_i64(&pa, (int64_t)max);
	else
		podio__pg_null(&pa);    /* no limit */
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1 || (r = podio__pg_run(s, sql, &pa)) ==
	    NULL)
		goto fail;
	rows = PQntuples(r);
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
		e = PODIO_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < rows; i++) {
		v[i].item_id = (uint64_t)podio__pg_int(r, i, 0);
		v[i].events = (size_t)podio__pg_int(r, i, 1);
		v[i].first_received_ms = podio__pg_int(r, i, 2);
		v[i].last_received_ms = podio__pg_int(r, i, 3);
		v[i].next_ms = podio__pg_int(r, i, 4);
		v[i].in_flight = podio__pg_int(r, i, 5) != 0;
	}
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	*items = v;
	*n = (size_t)rows;
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, "list pending items", e);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

enum podio_err
podio__pg_next_due(struct podio_spool *sp, const struct spool_take *t,
    int64_t *when_ms)
{
	struct spool_pg *s = PGS(sp);
	/* The first moment each unit may be taken: an event of no item
	 * when it is due and not in flight; an item when its head is due
	 * and not in flight, and it settled.  With no_fetch, of the units a
	 * take with no_fetch may claim. */
#define NEXT_DUE_SQL(plain, fetch, itemfilter) \
	"SELECT min(u.t)::bigint FROM (" \
	" SELECT CASE WHEN coalesce(e.lease_until, 0) > $1::bigint" \
	"  THEN e.lease_until ELSE e.next_at END AS t" \
	"  FROM podio_events e" \
	"  WHERE e.state = 'pending' AND e.item_id IS NULL" plain \
	" UNION ALL" \
	" SELECT greatest(h.next_at, coalesce(h.lease_until, 0)," \
	"  CASE WHEN $2::bigint > 0 THEN least(g.last_at + $2::bigint," \
	"  h.received_at + $3::bigint) ELSE 0 END)" \
	"  FROM (SELECT i.item_id, min(i.id) AS head," \
	"   max(i.received_at) AS last_at" fetch \
	"   FROM podio_events i" \
	"   WHERE i.state = 'pending' AND i.item_id IS NOT NULL" \
	"   GROUP BY i.item_id) g" \
	"  JOIN podio_events h ON h.id = g.head" itemfilter ") u"
	static const char sql[] = NEXT_DUE_SQL("", "", "");
	static const char sql_nofetch[] = NEXT_DUE_SQL(
	    " AND e.type NOT IN " FETCH_TYPES,
	    ", count(*) FILTER (WHERE i.type IN " FETCH_TYPES ") AS fetch",
	    " WHERE g.fetch = 0");
#undef NEXT_DUE_SQL
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e;

	*when_ms = 0;
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, t->now);
	podio__pg_i64(&pa, t->settle_ms);
	podio__pg_i64(&pa, t->settle_max_ms);
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1 || (r = podio__pg_run(s, t->no_fetch ?
	    sql_nofetch : sql, &pa)) == NULL) {
		e = podio__pg_failed(s, "next due", PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
	if (PQntuples(r) == 1)
		*when_ms = podio__pg_int(r, 0, 0);
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
}

/* ------------------------------------------------------------- outcomes */

/*
 * Removes the pending events of ids (whoever holds them), in one
 * transaction, PG_DONE_CHUNK to a statement.  PODIO_ERR_NOT_FOUND when
 * one of them was gone (the others are removed all the same).
 */
enum podio_err
podio__pg_done_many(struct podio_spool *sp, const int64_t *ids, size_t n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "DELETE FROM podio_events"
	    " WHERE id = ANY ($1::text::bigint[]) AND state = 'pending'";
	struct pg_params pa;
	enum podio_err e = PODIO_OK;
	size_t i, k, changed;
	char *a;

	if (n == 0)
		return PODIO_OK;
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin_lazy(s) == -1)
		goto fail;
	for (i = 0; i < n; i += k) {
		k = n - i < PG_DONE_CHUNK ? n - i : PG_DONE_CHUNK;
		if ((a = id_array(ids + i, NULL, k)) == NULL) {
			e = PODIO_ERR_NOMEM;
			goto fail;
		}
		memset(&pa, 0, sizeof(pa));
		podio__pg_str(&pa, a);
		changed = 0;
		if (podio__pg_do(s, sql, &pa, &changed) == -1) {
			free(a);
			goto fail;
		}
		free(a);
		/* Fewer rows than ids: one was gone (or named twice). */
		if (changed < k)
			e = PODIO_ERR_NOT_FOUND;
	}
	if (podio__pg_commit(s) == -1)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return e;
fail:
	e = podio__pg_failed(s, "done", e == PODIO_ERR_NOT_FOUND ?
	    PODIO_ERR_IO : e);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/*
 * Checks that event id exists (PODIO_ERR_NOT_FOUND) and is pending under
 * this handle's lease (PODIO_ERR_CONFLICT), locking its row, then makes
 * the change c asks for, in one transaction.  *attempts (may be NULL)
 * receives the attempts after a fail.
 */
enum podio_err
podio__pg_change(struct podio_spool *sp, int64_t id,
    const struct spool_change *c, long *attempts)
{
	struct spool_pg *s = PGS(sp);
	static const char check_sql[] = "SELECT coalesce(state = 'pending'"
	    " AND lease_owner = $2::text, false)::integer::bigint"
	    " FROM podio_events WHERE id = $1::bigint FOR UPDATE";
	static const char *const sql[] = {
		[SPOOL_FAIL] = "UPDATE podio_events SET"
		    " attempts = attempts + $5::bigint,"
		    " failures = failures + 1, next_at = $4::bigint,"
		    " last_error = $3::bytea, failed_at = $2::bigint,"
		    " lease_owner = NULL, lease_key = NULL,"
		    " lease_until = NULL WHERE id = $1::bigint"
		    " RETURNING attempts",
		[SPOOL_DEAD] = "UPDATE podio_events SET"
		    " state = 'dead', dead_at = $2::bigint,"
		    " last_error = $3::bytea, lease_owner = NULL,"
		    " lease_key = NULL, lease_until = NULL"
		    " WHERE id = $1::bigint",
		[SPOOL_RELEASE] = "UPDATE podio_events SET"
		    " lease_owner = NULL, lease_key = NULL,"
		    " lease_until = NULL WHERE id = $1::bigint",
		[SPOOL_EXTEND] = "UPDATE podio_events SET"
		    " lease_until = $2::bigint + $3::bigint"
		    " WHERE id = $1::bigint",
		[SPOOL_PROGRESS] = "UPDATE podio_events SET"
		    " progress = $2::bytea WHERE id = $1::bigint",
	};
	static const char *const what[] = {
		[SPOOL_FAIL] = "fail", [SPOOL_DEAD] = "dead",
		[SPOOL_RELEASE] = "release", [SPOOL_EXTEND] = "extend",
		[SPOOL_PROGRESS] = "progress",
	};
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int64_t now = podio__spool_now(&s->base);

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, id);
	podio__pg_str(&pa, s->base.owner);
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin_lazy(s) == -1 ||
	    (r = podio__pg_run(s, check_sql, &pa)) == NULL)
		goto fail;
	if (PQntuples(r) == 0)
		e = PODIO_ERR_NOT_FOUND;
	else if (podio__pg_int(r, 0, 0) != 1)
		e = PODIO_ERR_CONFLICT;
	PQclear(r);
	r = NULL;
	if (e != PODIO_ERR_IO) {
		/* Not a failure of the store: nothing to log. */
		podio__pg_abort(s);
		pthread_mutex_unlock(&s->db_lock);
		return e;
	}

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, id);
	switch (c->op) {
	case SPOOL_FAIL:
		podio__pg_i64(&pa, now);
		podio__pg_text(&pa, c->reason, c->reason_len);
		podio__pg_i64(&pa, c->retry_ms);
		podio__pg_i64(&pa, c->counts);
		break;
	case SPOOL_DEAD:
		podio__pg_i64(&pa, now);
		podio__pg_text(&pa, c->reason, c->reason_len);
		break;
	case SPOOL_EXTEND:
		podio__pg_i64(&pa, now);
		podio__pg_i64(&pa, c->lease_ms);
		break;
	case SPOOL_PROGRESS:
		podio__pg_str(&pa, c->progress);
		break;
	case SPOOL_RELEASE:
		break;
	}
	if ((r = podio__pg_run(s, sql[c->op], &pa)) == NULL)
		goto fail;
	if (c->op == SPOOL_FAIL && attempts != NULL && PQntuples(r) == 1)
		*attempts = (long)podio__pg_int(r, 0, 0);
	PQclear(r);
	r = NULL;
	if (podio__pg_commit(s) == -1)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, what[c->op], PODIO_ERR_IO);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

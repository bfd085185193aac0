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
 * transaction lock (pg_try_advisory_xact_lock(), see lock_items()) and
 * passes the item over when another take holds it: two appends that
 * commit out of order can give two takers two different heads of one
 * item, and the lock keeps them from claiming events of one item at
 * once.  Once it holds that lock, a take reads the item afresh (each
 * statement of a READ COMMITTED transaction sees what committed before
 * it), so it sees every claim made before.
 *
 * A take works in rounds of heads, and a round costs the same few
 * statements however many units it claims (take_round()): one finds and
 * locks the heads, one takes the locks of all their items, one reads
 * the rows of every unit it may claim (each item's locked FOR UPDATE,
 * in a LATERAL subquery per unit), and one leases all that was claimed.
 * The locks and the read must stay two statements: the read's snapshot
 * is taken when it starts, after the locks are held, which is what makes
 * it see every claim made before.
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

/* Events removed by one transaction of podio__pg_done_many(). */
#define PG_DONE_CHUNK 64
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
enum { U_LAST = 18, U_APP, U_BUSY, U_UNIT };

/* The app of event e: its own, else the one learned for its hook. */
#define APP_OF(e) "coalesce(" e ".app_id, (SELECT ha.app_id FROM" \
	" podio_hook_apps ha WHERE ha.hook_id = " e ".hook_id))"

/*
 * The heads of the units a take may claim after id $5, oldest first, at
 * most $4, locked (and those another take holds passed over); $1 now,
 * $2 settle, $3 settle cap, $6 the item or the app.  Each row: the
 * head's id, whether it has an item, the item.
 *
 * An event of no item is its own unit: pending, due, not in flight.
 *
 * An item's unit starts at its oldest pending event, the head, read
 * from podio_items (pg.c: one row per item, so that a take looks at each
 * item once, not at each of its events): due, no event of the item in
 * flight, and settled (its newest pending event is $2 old, or its head
 * $3 old).  The settling is read off the item's row, before any event of
 * it is.  With no_fetch (ifilter i.fetches = 0, read from the partial
 * index podio_items_nofetch, and top for the events of no item), an item
 * with a pending event that needs the item fetched is passed over, and
 * so is such an event of no item: the held items and events are not
 * read, however many wait.
 *
 * The candidates come in id order from the two indexes (podio_items_head
 * and podio_events_noitem), and each one's event is read and locked in
 * a LATERAL subquery of its own, until $4 are found: PostgreSQL cannot
 * pick a plan that reads every pending event first, as it may for a
 * join when its statistics lag behind a table that changes fast.
 */
#define HEADS_SQL(ifilter, plain, item) \
	"SELECT x.id, x.has_item, x.item_id" \
	" FROM (SELECT i.head AS id FROM podio_items i" \
	"  WHERE i.head > $5::bigint" ifilter \
	"  AND ($2::bigint <= 0 OR i.first_at <= $1::bigint - $3::bigint" \
	"   OR i.last_at <= $1::bigint - $2::bigint)" plain ") c" \
	" CROSS JOIN LATERAL (SELECT e.id," \
	"  (e.item_id IS NOT NULL)::integer::bigint AS has_item, e.item_id" \
	"  FROM podio_events e WHERE e.id = c.id" \
	"  AND e.state = 'pending' AND e.next_at <= $1::bigint" \
	"  AND coalesce(e.lease_until, 0) <= $1::bigint" item \
	"  AND (e.item_id IS NULL OR NOT EXISTS (SELECT 1" \
	"   FROM podio_events p WHERE p.item_id = e.item_id" \
	"   AND p.state = 'pending'" \
	"   AND (p.id < e.id OR coalesce(p.lease_until, 0) > $1::bigint)))" \
	"  FOR UPDATE OF e SKIP LOCKED) x" \
	" ORDER BY c.id LIMIT $4::bigint"

#define PLAIN_ALL(top) " UNION ALL SELECT n.id FROM podio_events n" \
	" WHERE n.state = 'pending' AND n.item_id IS NULL" \
	" AND n.id > $5::bigint" top
#define ITEM_ONE " AND i.item_id = $6::bigint"
#define ITEM_APP " AND " APP_OF("e") " = $6::bigint"
#define I_NOFETCH " AND i.fetches = 0"

#define TOP_NOFETCH " AND n.type NOT IN " PG_FETCH_TYPES

/* By no_fetch and mode (enum spool_take_mode). */
static const char *const heads_sql[2][3] = {
	{
		HEADS_SQL("", PLAIN_ALL(""), ""),
		HEADS_SQL(ITEM_ONE, "", ""),
		HEADS_SQL("", "", ITEM_APP),
	}, {
		HEADS_SQL(I_NOFETCH, PLAIN_ALL(TOP_NOFETCH), ""),
		HEADS_SQL(I_NOFETCH ITEM_ONE, "", ""),
		HEADS_SQL(I_NOFETCH, "", ITEM_APP),
	},
};

/* ---------------------------------------------------------------- taking */

/* A head of a round of a take, and where its unit's rows are. */
struct take_head {
	int64_t id;                 /* the head event */
	int64_t item;               /* its item, when has_item */
	int has_item;
	int locked;                 /* has_item: this transaction holds the
	                               item's lock */
	int row, rows;              /* its rows in read_units()'s result */
};

/*
 * Binds the n numbers of v as an array parameter of pa; *a receives the
 * text, which the caller frees once the statement ran.  0, or -1 on out
 * of memory.
 */
static int
bind_array(struct pg_params *pa, char **a, const int64_t *v, size_t n)
{
	if ((*a = podio__pg_id_array(v, n)) == NULL)
		return -1;
	podio__pg_str(pa, *a);
	return 0;
}

/*
 * Takes the transaction locks of the items of the n heads of hs (see
 * the top of this file) without waiting, in one statement, and sets
 * each head's locked: 1 when this transaction holds its item's lock
 * (also when it did before, or when another item of the round has the
 * same key), 0 when another transaction does.  Returns 0, or -1 on
 * failure (*e set).
 */
static int
lock_items(struct spool_pg *s, struct take_head *hs, size_t n,
    enum podio_err *e)
{
	/* Row k of the result is the k-th key: pg_try_advisory_xact_lock()
	 * runs once for each, and a key named twice is held twice. */
	static const char sql[] = "SELECT pg_try_advisory_xact_lock("
	    "$1::integer, u.k::integer)::integer::bigint"
	    " FROM unnest($2::text::bigint[]) WITH ORDINALITY AS u(k, i)"
	    " ORDER BY u.i";
	struct pg_params pa;
	PGresult *r = NULL;
	int64_t *keys = NULL;
	char *a = NULL;
	size_t i, k = 0;
	uint64_t u;
	int rc = -1;

	for (i = 0; i < n; i++)
		k += hs[i].has_item != 0;
	if (k == 0)
		return 0;
	*e = PODIO_ERR_NOMEM;
	if ((keys = calloc(k, sizeof(*keys))) == NULL)
		goto fail;
	for (i = k = 0; i < n; i++)
		if (hs[i].has_item) {
			/* 31 bits of the item: two items may share a key. */
			u = (uint64_t)hs[i].item;
			keys[k++] = (int64_t)((u ^ (u >> 32)) & 0x7fffffff);
		}
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, PG_ITEM_LOCK_CLASS);
	if (bind_array(&pa, &a, keys, k) == -1)
		goto fail;
	*e = PODIO_ERR_IO;
	if ((r = podio__pg_run(s, sql, &pa)) == NULL)
		goto fail;
	if ((size_t)PQntuples(r) != k) {
		snprintf(s->down_msg, sizeof(s->down_msg), "%d results of %zu "
		    "item locks", PQntuples(r), k);
		goto fail;
	}
	for (i = k = 0; i < n; i++)
		if (hs[i].has_item)
			hs[i].locked = podio__pg_int(r, (int)k++, 0) == 1;
	rc = 0;
fail:
	PQclear(r);
	free(a);
	free(keys);
	return rc;
}

/*
 * Reads the rows of the units of the n heads of hs that may be claimed
 * (the heads of no item, and those whose item this transaction locked)
 * in one statement, ordered by unit and id, and sets each head's row and
 * rows (0 rows for the others).  The rows of an item's unit are locked
 * (FOR UPDATE, waiting: no other take claims the item while this one
 * holds its lock).  Returns the result (the caller PQclear()s it), or
 * NULL on failure (*e set); *r is NULL as well when no unit could be
 * read (then *e is PODIO_OK).
 *
 * The rows of a unit are those claim_unit() walks: PG_COLS, the event,
 * then U_LAST, U_APP, U_BUSY (see there) and U_UNIT, the unit's index in
 * hs.  The LATERAL subquery of an item's unit is the statement one unit
 * alone would run: PostgreSQL runs it once for each unit, locking its
 * rows before the LIMIT counts them, as in a statement of its own.
 */
static int
read_units(struct spool_pg *s, const struct spool_take *p,
    struct take_head *hs, size_t n, PGresult **res, enum podio_err *e)
{
	static const char sql[] = "SELECT x.* FROM unnest($1::text::bigint[],"
	    " $2::text::bigint[], $3::text::bigint[]) AS u(unit, item, head)"
	    " CROSS JOIN LATERAL (SELECT " PG_COLS ", event,"
	    "  (SELECT max(p.received_at) FROM podio_events p"
	    "   WHERE p.item_id = u.item AND p.state = 'pending'),"
	    "  " APP_OF("e") ","
	    "  (SELECT count(*) FROM podio_events p"
	    "   WHERE p.item_id = u.item AND p.state = 'pending'"
	    "   AND (p.id < u.head"
	    "   OR coalesce(p.lease_until, 0) > $6::bigint)),"
	    "  u.unit AS unit"
	    "  FROM podio_events e"
	    "  WHERE e.item_id = u.item AND e.state = 'pending'"
	    "  AND e.id >= u.head ORDER BY e.id LIMIT $7::bigint"
	    "  FOR UPDATE OF e) x"
	    " UNION ALL SELECT " PG_COLS ", event, NULL::bigint,"
	    " " APP_OF("e") ", 0::bigint, u.unit"
	    " FROM unnest($4::text::bigint[], $5::text::bigint[])"
	    " AS u(unit, head)"
	    " JOIN podio_events e ON e.id = u.head AND e.state = 'pending'"
	    " ORDER BY unit, id";
	struct pg_params pa;
	PGresult *r = NULL;
	int64_t *v = NULL, *iu, *ii, *ih, *pu, *ph;
	char *a[5] = { NULL, NULL, NULL, NULL, NULL };
	size_t i, ni = 0, np = 0, limit = p->max_events;
	int rows, row, rc = -1;
	int64_t u;

	*res = NULL;
	*e = PODIO_ERR_NOMEM;
	/* The units of items, then the others: 5 arrays of n. */
	if ((v = calloc(5 * n, sizeof(*v))) == NULL)
		goto fail;
	iu = v;
	ii = v + n;
	ih = v + 2 * n;
	pu = v + 3 * n;
	ph = v + 4 * n;
	for (i = 0; i < n; i++) {
		hs[i].row = hs[i].rows = 0;
		if (!hs[i].has_item) {
			pu[np] = (int64_t)i;
			ph[np++] = hs[i].id;
		} else if (hs[i].locked) {
			iu[ni] = (int64_t)i;
			ii[ni] = hs[i].item;
			ih[ni++] = hs[i].id;
		}
	}
	if (ni + np == 0) {
		*e = PODIO_OK;
		rc = 0;
		goto fail;
	}
	memset(&pa, 0, sizeof(pa));
	if (bind_array(&pa, &a[0], iu, ni) == -1 ||
	    bind_array(&pa, &a[1], ii, ni) == -1 ||
	    bind_array(&pa, &a[2], ih, ni) == -1 ||
	    bind_array(&pa, &a[3], pu, np) == -1 ||
	    bind_array(&pa, &a[4], ph, np) == -1)
		goto fail;
	podio__pg_i64(&pa, p->now);
	podio__pg_i64(&pa, limit < INT64_MAX - PG_UNIT_SLACK ?
	    (int64_t)(limit + PG_UNIT_SLACK) : INT64_MAX);
	*e = PODIO_ERR_IO;
	if ((r = podio__pg_run(s, sql, &pa)) == NULL)
		goto fail;
	rows = PQntuples(r);
	for (row = 0; row < rows; row++) {
		u = podio__pg_int(r, row, U_UNIT);
		if (u < 0 || (size_t)u >= n || (hs[u].rows > 0 &&
		    hs[u].row + hs[u].rows != row)) {
			/* Cannot happen: the statement names only these. */
			snprintf(s->down_msg, sizeof(s->down_msg), "a row of "
			    "unit %lld of %zu", (long long)u, n);
			goto fail;
		}
		if (hs[u].rows++ == 0)
			hs[u].row = row;
	}
	*res = r;
	r = NULL;
	rc = 0;
fail:
	PQclear(r);
	for (i = 0; i < 5; i++)
		free(a[i]);
	free(v);
	return rc;
}

/*
 * Claims the unit of the head h, whose rows read_units() read into r:
 * the head alone, or the head and the due events of its item after it,
 * in id order, up to max_events, stopping at the first one not due and
 * setting aside the undecodable ones.  The lease is left to
 * lease_units().  Returns 0 with b filled, 1 when nothing was claimed
 * (the item is busy, another take holds it, an older event of it
 * committed late), 2 when every event read was set aside, -1 on failure
 * (*e set).
 */
static int
claim_unit(struct spool_pg *s, const PGresult *r, const struct take_head *h,
    const struct spool_take *p, struct podio_spool_batch *b,
    enum podio_err *e)
{
	struct podio_spool_event ev;
	char why[64];
	size_t limit = p->max_events, nbad = 0;
	int row, end = h->row + h->rows, first = -1, got;

	memset(b, 0, sizeof(*b));
	*e = PODIO_ERR_IO;
	if (h->has_item && !h->locked)
		return 1;
	if (h->rows == 0 || podio__pg_int(r, h->row, U_BUSY) > 0)
		return 1;
	for (row = h->row; row < end && b->n < limit; row++) {
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
	if (b->n == 0)
		return nbad > 0 ? 2 : 1;
	b->has_item = h->has_item;
	b->item_id = b->events[0].item_id;
	b->first_received_ms = b->events[0].received_ms;
	b->last_received_ms = b->events[b->n - 1].received_ms;
	/* The item's newest pending event, in the batch or not. */
	if (h->has_item && podio__pg_int(r, first, U_LAST) >
	    b->last_received_ms)
		b->last_received_ms = podio__pg_int(r, first, U_LAST);
	b->app_id = (uint64_t)podio__pg_int(r, first, U_APP);
	return 0;
fail:
	podio_spool_batch_clear(b);
	return -1;
}

/*
 * Leases every event of the n batches of bs (claimed by this
 * transaction) to this handle until now + lease_ms, in one statement,
 * and marks them in flight.  Returns 0, or -1 on failure (*e set).
 */
static int
lease_units(struct spool_pg *s, const struct spool_take *p,
    struct podio_spool_batch *bs, size_t n, enum podio_err *e)
{
	static const char sql[] = "UPDATE podio_events SET"
	    " lease_owner = $1::text, lease_key = $2::bigint,"
	    " lease_until = $3::bigint, leases = leases + 1"
	    " WHERE id = ANY ($4::text::bigint[])";
	struct pg_params pa;
	int64_t *ids = NULL, until = p->now + p->lease_ms;
	char *a = NULL;
	size_t i, j, k, total = 0, changed = 0;
	int rc = -1;

	for (i = 0; i < n; i++)
		total += bs[i].n;
	if (total == 0)
		return 0;
	*e = PODIO_ERR_NOMEM;
	if ((ids = calloc(total, sizeof(*ids))) == NULL)
		goto fail;
	for (i = k = 0; i < n; i++)
		for (j = 0; j < bs[i].n; j++)
			ids[k++] = bs[i].events[j].id;
	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, s->base.owner);
	podio__pg_i64(&pa, s->lock_key);
	podio__pg_i64(&pa, until);
	if (bind_array(&pa, &a, ids, total) == -1)
		goto fail;
	*e = PODIO_ERR_IO;
	if (podio__pg_do(s, sql, &pa, &changed) == -1)
		goto fail;
	if (changed != total) {
		/* Cannot happen: this transaction holds every row. */
		snprintf(s->down_msg, sizeof(s->down_msg), "%zu of %zu "
		    "events claimed", changed, total);
		goto fail;
	}
	for (i = 0; i < n; i++) {
		bs[i].lease_until_ms = until;
		for (j = 0; j < bs[i].n; j++) {
			bs[i].events[j].state = PODIO_SPOOL_IN_FLIGHT;
			bs[i].events[j].lease_until_ms = until;
			bs[i].events[j].leases++;
		}
	}
	rc = 0;
fail:
	free(a);
	free(ids);
	return rc;
}

/*
 * Claims the units of the n heads of hs (a round of a take, oldest
 * first) in a fixed number of statements, however many they are: one
 * takes the items' locks, one reads the units, one leases what was
 * claimed (and one per undecodable event sets it aside).  The batches
 * go to bs[*nb], bs[*nb + 1], ..., in the order of hs; *nb counts them
 * (the caller frees them, also on failure).  Returns the number of heads
 * whose unit could not be claimed, or -1 on failure (*e set).
 *
 * The units are read before any is leased, but no unit sees another's
 * claim: a round has one head per item (the heads statement takes only
 * an item's oldest pending event), and should two heads of one item
 * ever meet in a round, the newer one is busy (the older is pending).
 */
static int
take_round(struct spool_pg *s, const struct spool_take *p,
    struct take_head *hs, size_t n, struct podio_spool_batch *bs,
    size_t *nb, enum podio_err *e)
{
	PGresult *r = NULL;
	size_t i, first = *nb;
	int got, missed = 0;

	if (lock_items(s, hs, n, e) == -1 ||
	    read_units(s, p, hs, n, &r, e) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (r == NULL)
			got = 1;
		else if ((got = claim_unit(s, r, &hs[i], p, &bs[*nb], e)) ==
		    -1)
			goto fail;
		if (got == 0)
			(*nb)++;
		else
			missed++;
	}
	PQclear(r);
	r = NULL;
	if (lease_units(s, p, bs + first, *nb - first, e) == -1)
		goto fail;
	return missed;
fail:
	PQclear(r);
	return -1;
}

/*
 * Claims up to max units in one transaction; the common body of the take
 * functions.  *out receives *n batches (freed by the caller).  Returns
 * PODIO_ERR_NOT_FOUND when nothing is due.
 *
 * Leases of sessions that ended are given back first (at most once a
 * second, podio__pg_reclaim_due()).  Then one statement finds and locks
 * the heads, oldest first, and take_round() claims each with the due
 * events of its item.  When some could not be claimed (their events
 * were set aside as undecodable, another take holds the item), the
 * search goes on with the heads after them.
 */
enum podio_err
podio__pg_take(struct podio_spool *sp, const struct spool_take *t,
    size_t max, struct podio_spool_batch **out, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	struct podio_spool_batch *bs = NULL;
	struct take_head *hs = NULL;
	struct spool_take p = *t;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int64_t after = 0, limit;
	size_t rounds;
	int rows, row, missed;

	*out = NULL;
	*n = 0;
	if ((bs = calloc(max, sizeof(*bs))) == NULL ||
	    (hs = calloc(max, sizeof(*hs))) == NULL) {
		free(bs);
		return PODIO_ERR_NOMEM;
	}
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
		for (row = 0; row < rows && row < limit; row++) {
			memset(&hs[row], 0, sizeof(hs[row]));
			hs[row].id = podio__pg_int(r, row, 0);
			hs[row].has_item = podio__pg_int(r, row, 1) != 0;
			hs[row].item = podio__pg_int(r, row, 2);
			after = hs[row].id;
		}
		PQclear(r);
		r = NULL;
		if ((missed = take_round(s, &p, hs, (size_t)row, bs, n,
		    &e)) == -1)
			goto fail;
		/* Every head claimed, or no more of them. */
		if (missed == 0 || rows < limit)
			break;
	}
	if (podio__pg_commit(s) == -1) {
		e = PODIO_ERR_IO;
		goto fail;
	}
	pthread_mutex_unlock(&s->db_lock);
	free(hs);
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
	free(hs);
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
#define NEXT_DUE_SQL(top, nofetch) \
	"SELECT least((SELECT min(CASE WHEN coalesce(n.lease_until, 0)" \
	"  > $1::bigint THEN n.lease_until ELSE n.next_at END)" \
	"  FROM podio_events n" \
	"  WHERE n.state = 'pending' AND n.item_id IS NULL" top ")," \
	" podio_items_next_due($2::bigint, $3::bigint, " nofetch "))::bigint"
	static const char sql[] = NEXT_DUE_SQL("", "false");
	/* With no_fetch only the items with no event needing a fetch count,
	 * and the events of no item that need none: the held events are not
	 * read, however many wait. */
	static const char sql_nofetch[] = NEXT_DUE_SQL(TOP_NOFETCH, "true");
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
 * Removes the pending events of ids (whoever holds them), a transaction
 * and a statement per PG_DONE_CHUNK, each committed without waiting for
 * its flush (as all of the processors' bookkeeping): a transaction holds
 * the locks of its items' rows of podio_items (pg.c) until it commits,
 * and an append of one of those items waits for it.  PODIO_ERR_NOT_FOUND
 * when one of them was gone (the others are removed all the same).
 */
enum podio_err
podio__pg_done_many(struct podio_spool *sp, const int64_t *ids, size_t n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "DELETE FROM podio_events"
	    " WHERE id = ANY ($1::text::bigint[]) AND state = 'pending'";
	/* The locks of their items first, in order (see pg.c, items_sql):
	 * the removals would take them one by one. */
	static const char lock_sql[] = "SELECT podio_items_lock(array("
	    "SELECT item_id FROM podio_events"
	    " WHERE id = ANY ($1::text::bigint[]) AND state = 'pending'))";
	struct pg_params pa;
	enum podio_err e = PODIO_OK;
	size_t i, k, changed;
	char *a = NULL;

	pthread_mutex_lock(&s->db_lock);
	for (i = 0; i < n; i += k) {
		k = n - i < PG_DONE_CHUNK ? n - i : PG_DONE_CHUNK;
		if ((a = podio__pg_id_array(ids + i, k)) == NULL) {
			e = PODIO_ERR_NOMEM;
			goto fail;
		}
		memset(&pa, 0, sizeof(pa));
		podio__pg_str(&pa, a);
		changed = 0;
		if (podio__pg_begin_lazy(s) == -1 ||
		    podio__pg_do(s, lock_sql, &pa, NULL) == -1 ||
		    podio__pg_do(s, sql, &pa, &changed) == -1 ||
		    podio__pg_commit(s) == -1)
			goto fail;
		free(a);
		a = NULL;
		/* Fewer rows than ids: one was gone (or named twice). */
		if (changed < k)
			e = PODIO_ERR_NOT_FOUND;
	}
	pthread_mutex_unlock(&s->db_lock);
	return e;
fail:
	free(a);
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

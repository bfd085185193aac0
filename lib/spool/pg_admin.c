/*
 * pg_admin.c: the spool commands' data on PostgreSQL (status, list,
 * show, replay, purge, forget), giving back the leases of sessions that
 * ended, the hook-to-app map used for bulk fetches, the rate-limit
 * and outage state shared by every process of every host using the
 * spool, the item revisions fetched and the named times (see
 * spool.h).  Each does what the SQLite backend does (sqlite_admin.c), on
 * the tables of pg.c.
 */
#include <config.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "log.h"
#include "pg_int.h"
#include "spool.h"
#include "spool_int.h"
#include "util.h"

/* Rows one statement of a list reads. */
#define PG_LIST_PAGE 256

/* A state that is neither pending nor dead: bad, or one this build does
 * not know (the SQLite backend sets such records aside as bad). */
#define BAD_STATE "state NOT IN ('pending', 'dead')"

/* ------------------------------------------------------------- commands */

enum podio_err
podio__pg_status(struct podio_spool *sp, struct podio_spool_status *out)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT"
	    " count(*) FILTER (WHERE state = 'pending'"
	    "  AND coalesce(lease_until, 0) <= $1::bigint AND failures = 0),"
	    " count(*) FILTER (WHERE state = 'pending'"
	    "  AND coalesce(lease_until, 0) <= $1::bigint AND failures > 0),"
	    " count(*) FILTER (WHERE state = 'pending'"
	    "  AND coalesce(lease_until, 0) > $1::bigint),"
	    " count(*) FILTER (WHERE state = 'dead'),"
	    " count(*) FILTER (WHERE " BAD_STATE "),"
	    " min(received_at) FILTER (WHERE state = 'pending')"
	    " FROM podio_events";
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e;
	int64_t now = podio__spool_now(&s->base);

	memset(out, 0, sizeof(*out));
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, now);
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1 ||
	    (r = podio__pg_run(s, sql, &pa)) == NULL) {
		e = podio__pg_failed(s, "status", PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
	if (PQntuples(r) == 1) {
		out->pending = (size_t)podio__pg_int(r, 0, 0);
		out->retrying = (size_t)podio__pg_int(r, 0, 1);
		out->in_flight = (size_t)podio__pg_int(r, 0, 2);
		out->dead = (size_t)podio__pg_int(r, 0, 3);
		out->bad = (size_t)podio__pg_int(r, 0, 4);
		out->oldest_received_ms = podio__pg_int(r, 0, 5);
	}
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	if (out->oldest_received_ms > 0)
		out->oldest_age_ms = now > out->oldest_received_ms ?
		    now - out->oldest_received_ms : 0;
	return PODIO_OK;
}

/*
 * Lists the events after after_id whose state is in mask, a page at a
 * time (each page its own read): the rows whose stored state cannot be
 * in mask are left out by the database, and the decoded state decides
 * (a pending record that cannot be decoded is bad).  A mask with bad
 * reads every row, since any record may turn out bad.
 */
enum podio_err
podio__pg_list(struct podio_spool *sp, unsigned mask, int64_t after_id,
    size_t max, struct podio_spool_event **events, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	/* $2: the mask, PODIO_SPOOL_MASK() bits: 1 pending, 2 retrying,
	 * 4 in flight, 8 dead, 16 bad. */
	static const char sql[] = "SELECT " PG_COLS ", NULL::bytea"
	    " FROM podio_events WHERE id > $1::bigint"
	    " AND (($2::bigint & 16) <> 0"
	    " OR (($2::bigint & 1) <> 0 AND state = 'pending'"
	    "  AND coalesce(lease_until, 0) <= $3::bigint AND failures = 0)"
	    " OR (($2::bigint & 2) <> 0 AND state = 'pending'"
	    "  AND coalesce(lease_until, 0) <= $3::bigint AND failures > 0)"
	    " OR (($2::bigint & 4) <> 0 AND state = 'pending'"
	    "  AND coalesce(lease_until, 0) > $3::bigint)"
	    " OR (($2::bigint & 8) <> 0 AND state = 'dead'))"
	    " ORDER BY id LIMIT $4::bigint";
	struct podio_spool_event *v = NULL, *nv, ev;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int64_t now = podio__spool_now(&s->base), after = after_id;
	size_t alloc = 0;
	char why[64];
	int rows, row;

	*events = NULL;
	*n = 0;
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1)
		goto fail;
	do {
		memset(&pa, 0, sizeof(pa));
		podio__pg_i64(&pa, after);
		podio__pg_i64(&pa, (int64_t)(mask & PODIO_SPOOL_ALL));
		podio__pg_i64(&pa, now);
		podio__pg_i64(&pa, PG_LIST_PAGE);
		if ((r = podio__pg_run(s, sql, &pa)) == NULL)
			goto fail;
		rows = PQntuples(r);
		for (row = 0; row < rows && (max == 0 || *n < max); row++) {
			if (podio__pg_read_row(r, row, now, 0, &ev, why,
			    sizeof(why)) == -1) {
				e = PODIO_ERR_NOMEM;
				goto fail;
			}
			after = ev.id;
			if (!(mask & PODIO_SPOOL_MASK(ev.state))) {
				podio__spool_event_clear(&ev);
				continue;
			}
			if (*n == alloc) {
				alloc = alloc ? alloc * 2 : 16;
				if ((nv = realloc(v, alloc * sizeof(*v))) ==
				    NULL) {
					podio__spool_event_clear(&ev);
					e = PODIO_ERR_NOMEM;
					goto fail;
				}
				v = nv;
			}
			v[(*n)++] = ev;
		}
		PQclear(r);
		r = NULL;
	} while (rows == PG_LIST_PAGE && (max == 0 || *n < max));
	pthread_mutex_unlock(&s->db_lock);
	*events = v;
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, "list", e);
	pthread_mutex_unlock(&s->db_lock);
	podio_spool_events_free(v, *n);
	*n = 0;
	return e;
}

enum podio_err
podio__pg_show(struct podio_spool *sp, int64_t id,
    struct podio_spool_event **event)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT " PG_COLS ", event"
	    " FROM podio_events WHERE id = $1::bigint";
	struct podio_spool_event *ev = NULL;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	char why[64];

	*event = NULL;
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, id);
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1 ||
	    (r = podio__pg_run(s, sql, &pa)) == NULL)
		goto fail;
	if (PQntuples(r) == 0) {
		PQclear(r);
		pthread_mutex_unlock(&s->db_lock);
		return PODIO_ERR_NOT_FOUND;
	}
	if ((ev = calloc(1, sizeof(*ev))) == NULL ||
	    podio__pg_read_row(r, 0, podio__spool_now(&s->base), 1, ev, why,
	    sizeof(why)) == -1) {
		e = PODIO_ERR_NOMEM;
		goto fail;
	}
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	*event = ev;
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, "show", e);
	pthread_mutex_unlock(&s->db_lock);
	free(ev);
	return e;
}

/* Runs one write statement with pa in its own durable transaction; *n
 * (may be NULL) receives the rows changed. */
static enum podio_err
write_one(struct spool_pg *s, const char *what, const char *sql,
    const struct pg_params *pa, size_t *n)
{
	size_t changed = 0;
	enum podio_err e;

	if (n != NULL)
		*n = 0;
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin(s) == -1 ||
	    podio__pg_do(s, sql, pa, &changed) == -1 ||
	    podio__pg_commit(s) == -1) {
		e = podio__pg_failed(s, what, PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
	pthread_mutex_unlock(&s->db_lock);
	if (n != NULL)
		*n = changed;
	return PODIO_OK;
}

#define REPLAY_SET "state = 'pending', attempts = 0, failures = 0," \
	" next_at = $1::bigint, lease_owner = NULL, lease_key = NULL," \
	" lease_until = NULL, dead_at = NULL"

/* Puts back to pending event id when it is dead or bad, or every dead
 * event when id is 0. */
enum podio_err
podio__pg_replay(struct podio_spool *sp, int64_t id, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	/* The locks of the items first, in order (see pg.c, items_sql):
	 * the rows would take them one by one. */
	static const char all_sql[] = "WITH l AS (SELECT podio_items_lock("
	    "array(SELECT item_id FROM podio_events WHERE state = 'dead')))"
	    " UPDATE podio_events SET " REPLAY_SET
	    " FROM l WHERE state = 'dead'";
	static const char one_sql[] = "UPDATE podio_events SET " REPLAY_SET
	    " WHERE id = $2::bigint AND state <> 'pending'";
	struct pg_params pa;

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	if (id == 0)
		return write_one(s, "replay", all_sql, &pa, n);
	podio__pg_i64(&pa, id);
	return write_one(s, "replay", one_sql, &pa, n);
}

enum podio_err
podio__pg_purge(struct podio_spool *sp, unsigned mask,
    int64_t older_than_ms, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "DELETE FROM podio_events"
	    " WHERE ((($3::bigint & 8) <> 0 AND state = 'dead')"
	    " OR (($3::bigint & 16) <> 0 AND " BAD_STATE "))"
	    " AND coalesce(dead_at, 0) <= $1::bigint - $2::bigint";
	struct pg_params pa;

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_i64(&pa, older_than_ms);
	podio__pg_i64(&pa, (int64_t)mask);
	return write_one(s, "purge", sql, &pa, n);
}

enum podio_err
podio__pg_forget(struct podio_spool *sp, int64_t older_than_ms, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "DELETE FROM podio_seen"
	    " WHERE seen_at <= $1::bigint - $2::bigint";
	static const char revs_sql[] = "DELETE FROM podio_revisions"
	    " WHERE fetched_at <= $1::bigint - $2::bigint";
	struct pg_params pa;
	size_t keys = 0, revs = 0;
	enum podio_err e;

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_i64(&pa, older_than_ms);
	if ((e = write_one(s, "forget", sql, &pa, &keys)) != PODIO_OK)
		return e;
	e = write_one(s, "forget", revs_sql, &pa, &revs);
	*n = keys + revs;
	return e;
}

enum podio_err
podio__pg_learn_app(struct podio_spool *sp, uint64_t hook_id,
    uint64_t app_id)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "INSERT INTO podio_hook_apps"
	    " (hook_id, app_id, learned_at)"
	    " VALUES ($2::bigint, $3::bigint, $1::bigint)"
	    " ON CONFLICT (hook_id) DO UPDATE SET app_id = excluded.app_id,"
	    " learned_at = excluded.learned_at";
	struct pg_params pa;

	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_u64(&pa, hook_id);
	podio__pg_u64(&pa, app_id);
	return write_one(s, "learn app", sql, &pa, NULL);
}

/* ------------------------------------------------------- giving back */

/*
 * Gives back, inside the caller's transaction, every lease running at
 * now whose key no session of this database holds: its owner's
 * connection ended (the process was killed, crashed, or lost the
 * database), so nobody runs the event.  Each handle's key is a
 * session-level advisory lock on one bigint (objsubid 1), held as long
 * as its connection lives.  Rows another transaction holds (another
 * take giving them back too) are left to it, not waited for.  *n
 * receives how many events were given back.  Returns 0 or -1.
 */
static int
give_back(struct spool_pg *s, int64_t now, size_t *n)
{
	/*
	 * Two steps, each through the index of the leases,
	 * podio_events_leased (on lease_key, of the rows with a lease),
	 * whatever the planner knows of the table: the keys that hold
	 * leases, one index lookup each (min() of the keys past the last,
	 * a loose index scan), those of them no session holds, then the
	 * leases of those keys (= ANY of an array: few rows).  Searched by
	 * lease_until > $1 alone, the plan of the prepared statement went
	 * through the table or the index of every pending event, and a
	 * look every second per handle read every held event.
	 */
	static const char sql[] = "UPDATE podio_events SET"
	    " lease_owner = NULL, lease_key = NULL, lease_until = NULL"
	    " WHERE state = 'pending' AND id IN (SELECT id FROM podio_events"
	    "  WHERE lease_until > $1::bigint AND lease_key = ANY (ARRAY("
	    "   WITH RECURSIVE k(k) AS ("
	    "    SELECT min(lease_key) FROM podio_events"
	    "    WHERE lease_until IS NOT NULL"
	    "    UNION ALL SELECT (SELECT min(e.lease_key) FROM podio_events e"
	    "     WHERE e.lease_until IS NOT NULL AND e.lease_key > k.k)"
	    "    FROM k WHERE k.k IS NOT NULL)"
	    "   SELECT k.k FROM k WHERE k.k IS NOT NULL"
	    "   AND NOT (k.k = ANY (ARRAY("
	    "    SELECT (l.classid::bigint << 32) | l.objid::bigint"
	    "    FROM pg_locks l WHERE l.locktype = 'advisory'"
	    "    AND l.objsubid = 1 AND l.granted AND l.database ="
	    "    (SELECT oid FROM pg_database"
	    "     WHERE datname = current_database()))))))"
	    "  FOR UPDATE SKIP LOCKED)";
	struct pg_params pa;

	*n = 0;
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, now);
	if (podio__pg_do(s, sql, &pa, n) == -1)
		return -1;
	if (*n > 0)
		podio__warn("spool %s: %zu event%s taken by sessions that "
		    "ended without finishing them given back", s->base.path,
		    *n, *n == 1 ? "" : "s");
	return 0;
}

/*
 * See spool.h.  On PostgreSQL a lease is tied to its owner's connection
 * rather than to a PID, so leases of every host are given back, as soon
 * as the owner's session is gone.
 */
enum podio_err
podio__pg_reclaim(struct podio_spool *sp, size_t *n)
{
	struct spool_pg *s = PGS(sp);
	enum podio_err e;
	size_t got = 0;

	*n = 0;
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin_lazy(s) == -1 ||
	    give_back(s, podio__spool_now(&s->base), &got) == -1 ||
	    podio__pg_commit(s) == -1) {
		e = podio__pg_failed(s, "reclaim leases", PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
	s->reclaim_at_ms = podio__now_ms() + 1000;
	pthread_mutex_unlock(&s->db_lock);
	*n = got;
	return PODIO_OK;
}

/* See pg_int.h: under db_lock, in the caller's transaction. */
int
podio__pg_reclaim_due(struct spool_pg *s, int64_t now)
{
	int64_t mono = podio__now_ms();
	size_t n;

	if (mono < s->reclaim_at_ms)
		return 0;
	if (give_back(s, now, &n) == -1)
		return -1;
	/* Set after it ran: a transaction rolled back tries again. */
	s->reclaim_at_ms = mono + 1000;
	return 0;
}

/* ----------------------------------------------------------- rate limits */

/*
 * Runs a rate-limit statement with pa, a write in its own transaction
 * (not waiting for the flush, as the SQLite backend).  A read fills
 * row[0..ncols-1] from its first row (NULL -> -1) and returns
 * PODIO_ERR_NOT_FOUND when there is none; *changed (may be NULL)
 * receives the rows a write changed.
 */
static enum podio_err
rate_op(struct spool_pg *s, const char *what, const char *sql,
    const struct pg_params *pa, int write, int64_t *row, int ncols,
    size_t *changed)
{
	PGresult *r = NULL;
	enum podio_err e;
	int i;

	pthread_mutex_lock(&s->db_lock);
	if (write) {
		if (podio__pg_begin_lazy(s) == -1 ||
		    podio__pg_do(s, sql, pa, changed) == -1 ||
		    podio__pg_commit(s) == -1)
			goto fail;
		pthread_mutex_unlock(&s->db_lock);
		return PODIO_OK;
	}
	if (podio__pg_ready(s) == -1 ||
	    (r = podio__pg_run(s, sql, pa)) == NULL)
		goto fail;
	if (PQntuples(r) == 0) {
		PQclear(r);
		pthread_mutex_unlock(&s->db_lock);
		return PODIO_ERR_NOT_FOUND;
	}
	for (i = 0; i < ncols; i++)
		row[i] = i >= PQnfields(r) || podio__pg_isnull(r, 0, i) ? -1 :
		    podio__pg_int(r, 0, i);
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, what, PODIO_ERR_IO);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/* Parameters cred, then class (NULL: none), then the numbers. */
static void
rate_params(struct pg_params *pa, const char *cred, const char *rate_class)
{
	memset(pa, 0, sizeof(*pa));
	podio__pg_str(pa, cred);
	if (rate_class != NULL)
		podio__pg_str(pa, rate_class);
}

/*
 * The outage of a credential is a row of podio_ratelimit with the class
 * PODIO_SPOOL_OUTAGE_CLASS, as on SQLite: paused_until holds the next
 * probe, remaining the probe interval, lim the end of the claim of the
 * probe (0: unclaimed), seen_at the start of the outage.
 */
#define OUTAGE "'" PODIO_SPOOL_OUTAGE_CLASS "'"

enum podio_err
podio__pg_get_outage(struct podio_spool *sp, const char *cred,
    struct podio_spool_outage *o)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT paused_until, remaining, lim,"
	    " seen_at FROM podio_ratelimit WHERE cred = $1::text"
	    " AND class = " OUTAGE " AND seen_at > 0";
	struct pg_params pa;
	int64_t row[4];
	enum podio_err e;

	memset(o, 0, sizeof(*o));
	rate_params(&pa, cred, NULL);
	e = rate_op(s, "get outage", sql, &pa, 0, row, 4, NULL);
	if (e == PODIO_ERR_NOT_FOUND)
		return PODIO_OK;
	if (e != PODIO_OK)
		return e;
	podio__spool_outage_of(row, o);
	return PODIO_OK;
}

enum podio_err
podio__pg_set_outage(struct podio_spool *sp, const char *cred,
    int64_t next_probe_ms, int64_t interval_ms)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "INSERT INTO podio_ratelimit"
	    " (cred, class, paused_until, remaining, lim, seen_at)"
	    " VALUES ($1::text, " OUTAGE ", $3::bigint, $4::bigint, 0,"
	    " $2::bigint)"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " paused_until = excluded.paused_until,"
	    " remaining = excluded.remaining, lim = 0,"
	    " seen_at = CASE WHEN podio_ratelimit.seen_at > 0"
	    " THEN podio_ratelimit.seen_at ELSE excluded.seen_at END";
	struct pg_params pa;

	rate_params(&pa, cred, NULL);
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_i64(&pa, next_probe_ms);
	podio__pg_i64(&pa, interval_ms);
	return rate_op(s, "set outage", sql, &pa, 1, NULL, 0, NULL);
}

enum podio_err
podio__pg_claim_probe(struct podio_spool *sp, const char *cred,
    int64_t until_ms, int *claimed)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "UPDATE podio_ratelimit SET lim = $3::bigint"
	    " WHERE cred = $1::text AND class = " OUTAGE " AND seen_at > 0"
	    " AND paused_until <= $2::bigint"
	    " AND (lim IS NULL OR lim <= $2::bigint)";
	struct pg_params pa;
	enum podio_err e;
	size_t changed = 0;

	*claimed = 0;
	rate_params(&pa, cred, NULL);
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_i64(&pa, until_ms);
	e = rate_op(s, "claim probe", sql, &pa, 1, NULL, 0, &changed);
	if (e == PODIO_OK)
		*claimed = changed > 0;
	return e;
}

enum podio_err
podio__pg_release_probe(struct podio_spool *sp, const char *cred,
    int64_t until_ms)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "UPDATE podio_ratelimit SET lim = 0"
	    " WHERE cred = $1::text AND class = " OUTAGE
	    " AND lim = $2::bigint";
	struct pg_params pa;

	rate_params(&pa, cred, NULL);
	podio__pg_i64(&pa, until_ms);
	return rate_op(s, "release probe", sql, &pa, 1, NULL, 0, NULL);
}

enum podio_err
podio__pg_end_outage(struct podio_spool *sp, const char *cred, int *ended)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "DELETE FROM podio_ratelimit"
	    " WHERE cred = $1::text AND class = " OUTAGE;
	struct pg_params pa;
	enum podio_err e;
	size_t changed = 0;

	*ended = 0;
	rate_params(&pa, cred, NULL);
	e = rate_op(s, "end outage", sql, &pa, 1, NULL, 0, &changed);
	if (e == PODIO_OK)
		*ended = changed > 0;
	return e;
}

enum podio_err
podio__pg_set_pause(struct podio_spool *sp, const char *cred,
    const char *rate_class, int64_t until_ms)
{
	struct spool_pg *s = PGS(sp);
	/* Never further than PODIO_SPOOL_MAX_PAUSE_MS from now ($4), nor
	 * kept so by a longer one stored before. */
	static const char sql[] = "INSERT INTO podio_ratelimit"
	    " (cred, class, paused_until)"
	    " VALUES ($1::text, $2::text, least($3::bigint, $4::bigint))"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " paused_until = least(greatest(podio_ratelimit.paused_until,"
	    " excluded.paused_until), $4::bigint)";
	struct pg_params pa;

	rate_params(&pa, cred, rate_class);
	podio__pg_i64(&pa, until_ms);
	podio__pg_i64(&pa, podio__spool_now(&s->base) +
	    PODIO_SPOOL_MAX_PAUSE_MS);
	return rate_op(s, "set pause", sql, &pa, 1, NULL, 0, NULL);
}

enum podio_err
podio__pg_get_pause(struct podio_spool *sp, const char *cred,
    const char *rate_class, int64_t *until_ms)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT paused_until FROM podio_ratelimit"
	    " WHERE cred = $1::text AND class = $2::text";
	struct pg_params pa;
	int64_t row[1];
	enum podio_err e;

	*until_ms = 0;
	rate_params(&pa, cred, rate_class);
	e = rate_op(s, "get pause", sql, &pa, 0, row, 1, NULL);
	if (e == PODIO_ERR_NOT_FOUND)
		return PODIO_OK;
	if (e == PODIO_OK)
		*until_ms = row[0] > 0 ? row[0] : 0;
	return e;
}

enum podio_err
podio__pg_record_remaining(struct podio_spool *sp, const char *cred,
    const char *rate_class, long remaining, long limit)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "INSERT INTO podio_ratelimit"
	    " (cred, class, remaining, lim, seen_at)"
	    " VALUES ($1::text, $2::text, $4::bigint, $5::bigint, $3::bigint)"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " remaining = excluded.remaining, lim = excluded.lim,"
	    " seen_at = excluded.seen_at";
	struct pg_params pa;

	rate_params(&pa, cred, rate_class);
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	podio__pg_i64(&pa, remaining < 0 ? -1 : remaining);
	podio__pg_i64(&pa, limit < 0 ? -1 : limit);
	return rate_op(s, "record remaining", sql, &pa, 1, NULL, 0, NULL);
}

enum podio_err
podio__pg_get_remaining(struct podio_spool *sp, const char *cred,
    const char *rate_class, long *remaining, long *limit, int64_t *at_ms)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT remaining, lim, seen_at"
	    " FROM podio_ratelimit WHERE cred = $1::text AND class = $2::text"
	    " AND seen_at IS NOT NULL";
	struct pg_params pa;
	int64_t row[3];
	enum podio_err e;

	*remaining = -1;
	*limit = -1;
	*at_ms = 0;
	rate_params(&pa, cred, rate_class);
	if ((e = rate_op(s, "get remaining", sql, &pa, 0, row, 3, NULL)) !=
	    PODIO_OK)
		return e;
	*remaining = (long)row[0];
	*limit = (long)row[1];
	*at_ms = row[2];
	return PODIO_OK;
}

/* Copies text value (row, col) of r into dst (size n), cut to fit. */
static void
copy_text(const PGresult *r, int row, int col, char *dst, size_t n)
{
	size_t len = (size_t)PQgetlength(r, row, col);

	if (len >= n)
		len = n - 1;
	memcpy(dst, PQgetvalue(r, row, col), len);
	dst[len] = '\0';
}

/*
 * Ends every pause that has not ended yet and every outage, in one
 * durable transaction.  The pauses come in the order of their keys
 * compared byte by byte, as on SQLite.
 */
enum podio_err
podio__pg_resume(struct podio_spool *sp, struct podio_spool_pause **out,
    size_t *n)
{
	struct spool_pg *s = PGS(sp);
	/* Outages (next probe in paused_until) end too: their rows go. */
	static const char sel[] = "SELECT cred, class, paused_until"
	    " FROM podio_ratelimit WHERE paused_until > $1::bigint"
	    " OR (class = " OUTAGE " AND seen_at > 0)"
	    " ORDER BY cred COLLATE \"C\", class COLLATE \"C\""
	    " FOR UPDATE";
	static const char upd[] = "UPDATE podio_ratelimit SET paused_until = 0"
	    " WHERE paused_until > $1::bigint AND class <> " OUTAGE;
	static const char del[] = "DELETE FROM podio_ratelimit"
	    " WHERE class = " OUTAGE;
	struct podio_spool_pause *v = NULL;
	struct pg_params pa;
	PGresult *r = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int rows, i;

	*out = NULL;
	*n = 0;
	memset(&pa, 0, sizeof(pa));
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_begin(s) == -1 ||
	    (r = podio__pg_run(s, sel, &pa)) == NULL)
		goto fail;
	rows = PQntuples(r);
	if (rows > 0 && (v = calloc((size_t)rows, sizeof(*v))) == NULL) {
		e = PODIO_ERR_NOMEM;
		goto fail;
	}
	for (i = 0; i < rows; i++) {
		copy_text(r, i, 0, v[i].cred, sizeof(v[i].cred));
		copy_text(r, i, 1, v[i].rate_class, sizeof(v[i].rate_class));
		v[i].until_ms = podio__pg_int(r, i, 2);
	}
	PQclear(r);
	r = NULL;
	if (podio__pg_do(s, upd, &pa, NULL) == -1 ||
	    podio__pg_do(s, del, NULL, NULL) == -1 ||
	    podio__pg_commit(s) == -1)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	*out = v;
	*n = (size_t)rows;
	return PODIO_OK;
fail:
	PQclear(r);
	e = podio__pg_failed(s, "resume", e);
	pthread_mutex_unlock(&s->db_lock);
	free(v);
	return e;
}

/* ------------------------------------------------------------ revisions */

/* See spool.h: one statement for the n revisions (an item given twice
 * keeps its highest), committed as the processors' bookkeeping. */
enum podio_err
podio__pg_note_revisions(struct podio_spool *sp, const uint64_t *item_ids,
    const int64_t *revisions, size_t n)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "INSERT INTO podio_revisions"
	    " (item_id, revision, fetched_at)"
	    " SELECT DISTINCT ON (i) i, r, $3::bigint"
	    " FROM unnest($1::text::bigint[], $2::text::bigint[]) AS u(i, r)"
	    " ORDER BY i, r DESC"
	    " ON CONFLICT (item_id) DO UPDATE SET"
	    " revision = greatest(podio_revisions.revision, excluded.revision),"
	    " fetched_at = excluded.fetched_at";
	struct pg_params pa;
	char *ids = NULL, *revs = NULL;
	enum podio_err e = PODIO_ERR_NOMEM;

	/* uint64_t read as int64_t: the ids are below 2^63. */
	if ((ids = podio__pg_id_array((const int64_t *)item_ids, n)) ==
	    NULL || (revs = podio__pg_id_array(revisions, n)) == NULL)
		goto done;
	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, ids);
	podio__pg_str(&pa, revs);
	podio__pg_i64(&pa, podio__spool_now(&s->base));
	e = rate_op(s, "note revisions", sql, &pa, 1, NULL, 0, NULL);
done:
	free(ids);
	free(revs);
	return e;
}

enum podio_err
podio__pg_fetched_revisions(struct podio_spool *sp, const uint64_t *item_ids,
    size_t n, int64_t *revisions)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT item_id, revision"
	    " FROM podio_revisions WHERE item_id = ANY ($1::text::bigint[])";
	struct pg_params pa;
	PGresult *r = NULL;
	char *ids;
	enum podio_err e;
	int64_t id;
	size_t i;
	int row;

	if ((ids = podio__pg_id_array((const int64_t *)item_ids, n)) == NULL)
		return PODIO_ERR_NOMEM;
	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, ids);
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1 ||
	    (r = podio__pg_run(s, sql, &pa)) == NULL) {
		e = podio__pg_failed(s, "read revisions", PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		free(ids);
		return e;
	}
	for (row = 0; row < PQntuples(r); row++) {
		id = podio__pg_int(r, row, 0);
		for (i = 0; i < n; i++)
			if ((int64_t)item_ids[i] == id)
				revisions[i] = podio__pg_int(r, row, 1);
	}
	PQclear(r);
	pthread_mutex_unlock(&s->db_lock);
	free(ids);
	return PODIO_OK;
}

/* ----------------------------------------------------------------- marks */

/* A mark is the row "mark:NAME" of podio_meta, beside the schema
 * version. */
enum podio_err
podio__pg_set_mark(struct podio_spool *sp, const char *name, int64_t value)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "INSERT INTO podio_meta (name, value)"
	    " VALUES ('mark:' || $1::text, $2::bigint)"
	    " ON CONFLICT (name) DO UPDATE SET"
	    " value = greatest(podio_meta.value, excluded.value)";
	struct pg_params pa;

	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, name);
	podio__pg_i64(&pa, value);
	return rate_op(s, "set mark", sql, &pa, 1, NULL, 0, NULL);
}

enum podio_err
podio__pg_get_mark(struct podio_spool *sp, const char *name, int64_t *value)
{
	struct spool_pg *s = PGS(sp);
	static const char sql[] = "SELECT value FROM podio_meta"
	    " WHERE name = 'mark:' || $1::text";
	struct pg_params pa;
	int64_t row[1];
	enum podio_err e;

	memset(&pa, 0, sizeof(pa));
	podio__pg_str(&pa, name);
	if ((e = rate_op(s, "get mark", sql, &pa, 0, row, 1, NULL)) ==
	    PODIO_OK)
		*value = row[0];
	return e;
}

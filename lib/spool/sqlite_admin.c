/*
 * sqlite_admin.c: the spool commands' data (status, list, show, replay,
 * purge, forget), giving back the leases of processes that are gone, the
 * hook-to-app map used for bulk fetches, the rate-limit state shared
 * by every process using the spool, the item revisions fetched and the
 * named times (see spool.h).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "sqlite_int.h"
#include "util.h"

/* The most lease holders (live or gone) one podio_spool_reclaim()
 * looks at. */
#define SPOOL_RECLAIM_MAX 32

/* ------------------------------------------------------------- commands */

enum podio_err
podio__sqlite_status(struct podio_spool *sp, struct podio_spool_status *out)
{
	struct spool_sqlite *s = SQ(sp);
	static const char sql[] =
	    "SELECT"
	    " sum(state = 'pending' AND coalesce(lease_until, 0) <= ?1"
	    "  AND failures = 0),"
	    " sum(state = 'pending' AND coalesce(lease_until, 0) <= ?1"
	    "  AND failures > 0),"
	    " sum(state = 'pending' AND coalesce(lease_until, 0) > ?1),"
	    " sum(state = 'dead'), sum(state = 'bad'),"
	    " min(CASE WHEN state = 'pending' THEN received_at END)"
	    " FROM events";
	sqlite3_stmt *st = NULL;
	int64_t now = podio__spool_now(&s->base);
	int rc;

	memset(out, 0, sizeof(*out));
	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_sweep(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	if ((rc = sqlite3_step(st)) != SQLITE_ROW)
		goto fail;
	out->pending = (size_t)sqlite3_column_int64(st, 0);
	out->retrying = (size_t)sqlite3_column_int64(st, 1);
	out->in_flight = (size_t)sqlite3_column_int64(st, 2);
	out->dead = (size_t)sqlite3_column_int64(st, 3);
	out->bad = (size_t)sqlite3_column_int64(st, 4);
	out->oldest_received_ms = sqlite3_column_int64(st, 5);
	podio__sqlite_fin(s, st);
	st = NULL;
	/* What the move above left in the intake: it failed. */
	if (s->in != NULL && podio__sqlite_prep(s->in, "SELECT count(*),"
	    " min(received_at) FROM intake WHERE id > ?1", &st) == SQLITE_OK) {
		sqlite3_bind_int64(st, 1, s->in_mark > 0 ? s->in_mark : 0);
		if (sqlite3_step(st) == SQLITE_ROW &&
		    sqlite3_column_int64(st, 0) > 0) {
			out->intake = (size_t)sqlite3_column_int64(st, 0);
			if (out->oldest_received_ms == 0 ||
			    sqlite3_column_int64(st, 1) <
			    out->oldest_received_ms)
				out->oldest_received_ms =
				    sqlite3_column_int64(st, 1);
		}
		podio__sqlite_fin(s->in, st);
	}
	if (out->oldest_received_ms > 0)
		out->oldest_age_ms = now > out->oldest_received_ms ?
		    now - out->oldest_received_ms : 0;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	{
		enum podio_err e = podio__sqlite_failed(s, "status", rc,
		    PODIO_ERR_IO);

		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
}

/*
 * Reads events of sql (SPOOL_COLS then the event or NULL; ?1 bound to arg)
 * into an array, keeping those whose state is in mask, at most max
 * (0: no limit).  Undecodable rows are returned as they are (state bad).
 */
static enum podio_err
read_events(struct spool_sqlite *s, const char *what, const char *sql,
    int64_t arg, unsigned mask, size_t max, int with_body,
    struct podio_spool_event **out, size_t *n)
{
	struct podio_spool_event *v = NULL, *nv, ev;
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_ERR_NOMEM;
	int64_t now = podio__spool_now(&s->base);
	size_t alloc = 0;
	char why[64];
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_sweep(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, arg);
	while ((max == 0 || *n < max) &&
	    (rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (podio__sqlite_read_row(st, now, with_body, &ev, why,
		    sizeof(why)) == -1) {
			rc = SQLITE_OK;
			goto fail;
		}
		if (!(mask & PODIO_SPOOL_MASK(ev.state))) {
			podio__spool_event_clear(&ev);
			continue;
		}
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 16;
			if ((nv = realloc(v, alloc * sizeof(*v))) == NULL) {
				podio__spool_event_clear(&ev);
				rc = SQLITE_OK;
				goto fail;
			}
			v = nv;
		}
		v[(*n)++] = ev;
	}
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		goto fail;
	podio__sqlite_fin(s, st);
	pthread_mutex_unlock(&s->db_lock);
	*out = v;
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, what, rc, e);
	pthread_mutex_unlock(&s->db_lock);
	podio_spool_events_free(v, *n);
	*n = 0;
	return e;
}

enum podio_err
podio__sqlite_list(struct podio_spool *sp, unsigned mask, int64_t after_id,
    size_t max, struct podio_spool_event **events, size_t *n)
{
	struct spool_sqlite *s = SQ(sp);

	return read_events(s, "list", "SELECT " SPOOL_COLS ", NULL FROM events"
	    " WHERE id > ?1 ORDER BY id", after_id, mask, max, 0, events, n);
}

enum podio_err
podio__sqlite_show(struct podio_spool *sp, int64_t id,
    struct podio_spool_event **event)
{
	struct spool_sqlite *s = SQ(sp);
	enum podio_err e;
	size_t n = 0;

	e = read_events(s, "show", "SELECT " SPOOL_COLS ", event FROM events"
	    " WHERE id = ?1", id, PODIO_SPOOL_ALL, 1, 1, event, &n);
	if (e == PODIO_OK && n == 0) {
		free(*event);
		*event = NULL;
		return PODIO_ERR_NOT_FOUND;
	}
	return e;
}

/* Runs one write statement (?1 = now, ?2 = a, ?3 = b) in its own
 * transaction; *n (may be NULL) receives the rows changed. */
static enum podio_err
write_one(struct spool_sqlite *s, const char *what, const char *sql,
    int64_t a, int64_t b, size_t *n)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if (n != NULL)
		*n = 0;
	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	if ((rc = podio__sqlite_begin(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, podio__spool_now(&s->base));
	sqlite3_bind_int64(st, 2, a);
	sqlite3_bind_int64(st, 3, b);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	if (n != NULL)
		*n = (size_t)sqlite3_changes(s->db);
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	{
		enum podio_err e = podio__sqlite_failed(s, what, rc,
		    PODIO_ERR_IO);

		pthread_mutex_unlock(&s->db_lock);
		if (n != NULL)
			*n = 0;
		return e;
	}
}

#define REPLAY_SET "state = 'pending', attempts = 0, failures = 0," \
	" next_at = ?1, lease_owner = NULL, lease_until = NULL," \
	" dead_at = NULL"

enum podio_err
podio__sqlite_replay(struct podio_spool *sp, int64_t id, size_t *n)
{
	if (id == 0)
		return write_one(SQ(sp), "replay", "UPDATE events SET "
		    REPLAY_SET " WHERE state = 'dead'", 0, 0, n);
	return write_one(SQ(sp), "replay", "UPDATE events SET " REPLAY_SET
	    " WHERE id = ?2 AND state IN ('dead', 'bad')", id, 0, n);
}

enum podio_err
podio__sqlite_purge(struct podio_spool *sp, unsigned mask,
    int64_t older_than_ms, size_t *n)
{
	struct spool_sqlite *s = SQ(sp);
	const char *sql;

	if (mask == PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD))
		sql = "DELETE FROM events WHERE state = 'dead'"
		    " AND coalesce(dead_at, 0) <= ?1 - ?2";
	else if (mask == PODIO_SPOOL_MASK(PODIO_SPOOL_BAD))
		sql = "DELETE FROM events WHERE state = 'bad'"
		    " AND coalesce(dead_at, 0) <= ?1 - ?2";
	else
		sql = "DELETE FROM events WHERE state IN ('dead', 'bad')"
		    " AND coalesce(dead_at, 0) <= ?1 - ?2";
	return write_one(s, "purge", sql, older_than_ms, 0, n);
}

enum podio_err
podio__sqlite_forget(struct podio_spool *sp, int64_t older_than_ms,
    size_t *n)
{
	struct spool_sqlite *s = SQ(sp);

	size_t keys = 0, revs = 0;
	enum podio_err e;

	if ((e = write_one(s, "forget", "DELETE FROM seen"
	    " WHERE seen_at <= ?1 - ?2", older_than_ms, 0, &keys)) !=
	    PODIO_OK)
		return e;
	e = write_one(s, "forget", "DELETE FROM revisions"
	    " WHERE fetched_at <= ?1 - ?2", older_than_ms, 0, &revs);
	*n = keys + revs;
	return e;
}

enum podio_err
podio__sqlite_learn_app(struct podio_spool *sp, uint64_t hook_id,
    uint64_t app_id)
{
	struct spool_sqlite *s = SQ(sp);

	return write_one(s, "learn app", "INSERT INTO hook_apps"
	    " (hook_id, app_id, learned_at) VALUES (?2, ?3, ?1)"
	    " ON CONFLICT (hook_id) DO UPDATE SET app_id = excluded.app_id,"
	    " learned_at = excluded.learned_at", (int64_t)hook_id,
	    (int64_t)app_id, NULL);
}

/* See spool.h: one transaction for the n revisions, committed as the
 * processors' bookkeeping. */
enum podio_err
podio__sqlite_note_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, const int64_t *revisions, size_t n)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *st = NULL;
	int64_t now = podio__spool_now(&s->base);
	size_t i;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, "INSERT INTO revisions"
	    " (item_id, revision, fetched_at) VALUES (?1, ?2, ?3)"
	    " ON CONFLICT (item_id) DO UPDATE SET"
	    " revision = max(revision, excluded.revision),"
	    " fetched_at = excluded.fetched_at", &st)) != SQLITE_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (int64_t)item_ids[i]);
		sqlite3_bind_int64(st, 2, revisions[i]);
		sqlite3_bind_int64(st, 3, now);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			goto fail;
	}
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	{
		enum podio_err e = podio__sqlite_failed(s, "note revisions",
		    rc, PODIO_ERR_IO);

		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
}

/* See spool.h: a read of each item, without the write lock. */
enum podio_err
podio__sqlite_fetched_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, size_t n, int64_t *revisions)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *st = NULL;
	size_t i;
	int rc;

	pthread_mutex_lock(&s->db_lock);
	if ((rc = podio__sqlite_prep(s, "SELECT revision FROM revisions"
	    " WHERE item_id = ?1", &st)) != SQLITE_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		sqlite3_reset(st);
		sqlite3_bind_int64(st, 1, (int64_t)item_ids[i]);
		rc = sqlite3_step(st);
		if (rc == SQLITE_ROW)
			revisions[i] = sqlite3_column_int64(st, 0);
		else if (rc != SQLITE_DONE)
			goto fail;
	}
	podio__sqlite_fin(s, st);
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	{
		enum podio_err e = podio__sqlite_failed(s, "read revisions",
		    rc, PODIO_ERR_IO);

		pthread_mutex_unlock(&s->db_lock);
		return e;
	}
}

/*
 * See spool.h.  An owner is "PID-RANDOM-PIDNS"; only owners in this
 * process's pid namespace are looked up (WAL needs every user of the
 * database on one host, but containers sharing a directory may see other
 * PIDs), and a PID that exists (even reused by another program) keeps
 * its lease.  The owners are found without the write lock; the leases
 * are given back in one write.
 */
enum podio_err
podio__sqlite_reclaim(struct podio_spool *sp, size_t *n_events)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *st = NULL;
	char owners[SPOOL_RECLAIM_MAX][SPOOL_OWNER_MAX], *end;
	unsigned long long ns, mine = podio__spool_pidns();
	size_t n = 0, i, total = 0;
	enum podio_err e;
	int64_t now;
	long pid;
	int rc;

	if (n_events != NULL)
		*n_events = 0;
	if (s == NULL)
		return PODIO_ERR_INVALID;
	if (mine == 0)
		return PODIO_OK;
	pthread_mutex_lock(&s->db_lock);
	now = podio__spool_now(&s->base);
	if ((rc = podio__sqlite_prep(s, "SELECT DISTINCT lease_owner FROM"
	    " events WHERE state = 'pending' AND lease_until > ?1"
	    " AND typeof(lease_owner) = 'text' LIMIT ?2", &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	sqlite3_bind_int(st, 2, SPOOL_RECLAIM_MAX);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW && n < SPOOL_RECLAIM_MAX) {
		const char *o = (const char *)sqlite3_column_text(st, 0);

		if (o == NULL || strlen(o) >= sizeof(owners[0]))
			continue;
		/* PID-RANDOM-PIDNS, this namespace, not this process */
		pid = strtol(o, &end, 10);
		if (pid <= 0 || *end != '-' || (end = strchr(end + 1, '-')) ==
		    NULL)
			continue;
		ns = strtoull(end + 1, &end, 10);
		if (*end != '\0' || ns != mine || pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		podio__strlcpy(owners[n++], o, sizeof(owners[0]));
	}
	podio__sqlite_fin(s, st);
	st = NULL;
	if (rc != SQLITE_DONE && rc != SQLITE_ROW)
		goto fail;
	if (n == 0) {
		pthread_mutex_unlock(&s->db_lock);
		return PODIO_OK;
	}
	if ((rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, "UPDATE events SET lease_owner = NULL,"
	    " lease_until = NULL WHERE lease_owner = ?1 AND state = 'pending'",
	    &st)) != SQLITE_OK)
		goto fail;
	for (i = 0; i < n; i++) {
		sqlite3_reset(st);
		podio__sqlite_bind_text(st, 1, owners[i]);
		if ((rc = sqlite3_step(st)) != SQLITE_DONE)
			goto fail;
		total += (size_t)sqlite3_changes(s->db);
	}
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	if (total > 0)
		podio__warn("spool %s: %zu event%s taken by %zu process%s that "
		    "ended without finishing them given back", s->dir, total,
		    total == 1 ? "" : "s", n, n == 1 ? "" : "es");
	if (n_events != NULL)
		*n_events = total;
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, "reclaim leases", rc, PODIO_ERR_IO);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/* ----------------------------------------------------------- rate limits */

/* Runs a rate-limit statement binding ?1 cred, ?2 class, ?3 now, ?4 and
 * ?5 numbers; a SELECT fills row (up to 4 integers; NULL -> -1) and
 * returns PODIO_ERR_NOT_FOUND when it yields nothing. */
static enum podio_err
rate_op_n(struct spool_sqlite *s, const char *what, const char *sql,
    const char *cred, const char *rate_class, int64_t a, int64_t b,
    int write, int64_t row[4], int *changed)
{
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_OK;
	int rc, i;

	pthread_mutex_lock(&s->db_lock);
	if ((write && (rc = podio__sqlite_begin_lazy(s)) != SQLITE_OK) ||
	    (rc = podio__sqlite_prep(s, sql, &st)) != SQLITE_OK)
		goto fail;
	podio__sqlite_bind_text(st, 1, cred);
	podio__sqlite_bind_text(st, 2, rate_class);
	sqlite3_bind_int64(st, 3, podio__spool_now(&s->base));
	sqlite3_bind_int64(st, 4, a);
	sqlite3_bind_int64(st, 5, b);
	rc = sqlite3_step(st);
	if (row != NULL && rc == SQLITE_ROW) {
		for (i = 0; i < 4; i++)
			row[i] = i >= sqlite3_column_count(st) ||
			    podio__sqlite_col_is(st, i, SQLITE_NULL) ? -1 :
			    sqlite3_column_int64(st, i);
		rc = SQLITE_DONE;
	} else if (row != NULL && rc == SQLITE_DONE) {
		e = PODIO_ERR_NOT_FOUND;
		goto fail;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	if (changed != NULL)
		*changed = sqlite3_changes(s->db);
	podio__sqlite_fin(s, st);
	st = NULL;
	if (write && (rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, what, rc, e);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/* rate_op_n() without the count of rows changed. */
static enum podio_err
rate_op(struct spool_sqlite *s, const char *what, const char *sql,
    const char *cred, const char *rate_class, int64_t a, int64_t b,
    int write, int64_t row[4])
{
	return rate_op_n(s, what, sql, cred, rate_class, a, b, write, row,
	    NULL);
}

/*
 * The outage of a credential is a row of the rate-limit table with the
 * class PODIO_SPOOL_OUTAGE_CLASS: paused_until holds the next probe,
 * remaining the probe interval, lim the end of the claim of the probe (0:
 * unclaimed), seen_at the start of the outage.
 */
enum podio_err
podio__sqlite_get_outage(struct podio_spool *sp, const char *cred,
    struct podio_spool_outage *o)
{
	struct spool_sqlite *s = SQ(sp);
	int64_t row[4];
	enum podio_err e;

	memset(o, 0, sizeof(*o));
	e = rate_op(s, "get outage", "SELECT paused_until, remaining, lim,"
	    " seen_at FROM ratelimit WHERE cred = ?1 AND class = ?2"
	    " AND seen_at > 0", cred, PODIO_SPOOL_OUTAGE_CLASS, 0, 0, 0, row);
	if (e == PODIO_ERR_NOT_FOUND)
		return PODIO_OK;
	if (e != PODIO_OK)
		return e;
	podio__spool_outage_of(row, o);
	return PODIO_OK;
}

enum podio_err
podio__sqlite_set_outage(struct podio_spool *sp, const char *cred,
    int64_t next_probe_ms, int64_t interval_ms)
{
	struct spool_sqlite *s = SQ(sp);

	return rate_op(s, "set outage", "INSERT INTO ratelimit"
	    " (cred, class, paused_until, remaining, lim, seen_at)"
	    " VALUES (?1, ?2, ?4, ?5, 0, ?3)"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " paused_until = excluded.paused_until,"
	    " remaining = excluded.remaining, lim = 0,"
	    " seen_at = CASE WHEN seen_at > 0 THEN seen_at"
	    " ELSE excluded.seen_at END", cred, PODIO_SPOOL_OUTAGE_CLASS,
	    next_probe_ms, interval_ms, 1, NULL);
}

enum podio_err
podio__sqlite_claim_probe(struct podio_spool *sp, const char *cred,
    int64_t until_ms, int *claimed)
{
	struct spool_sqlite *s = SQ(sp);
	*claimed = 0;
	return rate_op_n(s, "claim probe", "UPDATE ratelimit SET lim = ?4"
	    " WHERE cred = ?1 AND class = ?2 AND seen_at > 0"
	    " AND paused_until <= ?3 AND (lim IS NULL OR lim <= ?3)",
	    cred, PODIO_SPOOL_OUTAGE_CLASS, until_ms, 0, 1, NULL, claimed);
}

enum podio_err
podio__sqlite_release_probe(struct podio_spool *sp, const char *cred,
    int64_t until_ms)
{
	struct spool_sqlite *s = SQ(sp);

	return rate_op(s, "release probe", "UPDATE ratelimit SET lim = 0"
	    " WHERE cred = ?1 AND class = ?2 AND lim = ?4", cred,
	    PODIO_SPOOL_OUTAGE_CLASS, until_ms, 0, 1, NULL);
}

enum podio_err
podio__sqlite_end_outage(struct podio_spool *sp, const char *cred, int *ended)
{
	struct spool_sqlite *s = SQ(sp);
	*ended = 0;
	return rate_op_n(s, "end outage", "DELETE FROM ratelimit"
	    " WHERE cred = ?1 AND class = ?2", cred,
	    PODIO_SPOOL_OUTAGE_CLASS, 0, 0, 1, NULL, ended);
}

enum podio_err
podio__sqlite_set_pause(struct podio_spool *sp, const char *cred,
    const char *rate_class, int64_t until_ms)
{
	struct spool_sqlite *s = SQ(sp);
	/* Never further than PODIO_SPOOL_MAX_PAUSE_MS from now, nor kept
	 * so by a longer one stored before the cap existed. */
	return rate_op(s, "set pause", "INSERT INTO ratelimit"
	    " (cred, class, paused_until) VALUES (?1, ?2, min(?4, ?3 + ?5))"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " paused_until = min(max(paused_until, excluded.paused_until),"
	    " ?3 + ?5)",
	    cred, rate_class, until_ms, PODIO_SPOOL_MAX_PAUSE_MS, 1,
	    NULL);
}

enum podio_err
podio__sqlite_get_pause(struct podio_spool *sp, const char *cred,
    const char *rate_class, int64_t *until_ms)
{
	struct spool_sqlite *s = SQ(sp);
	int64_t row[4];
	enum podio_err e;

	*until_ms = 0;
	e = rate_op(s, "get pause", "SELECT paused_until, 0, 0"
	    " FROM ratelimit WHERE cred = ?1 AND class = ?2", cred,
	    rate_class, 0, 0, 0, row);
	if (e == PODIO_ERR_NOT_FOUND)
		return PODIO_OK;
	if (e == PODIO_OK)
		*until_ms = row[0] > 0 ? row[0] : 0;
	return e;
}

enum podio_err
podio__sqlite_record_remaining(struct podio_spool *sp, const char *cred,
    const char *rate_class, long remaining, long limit)
{
	struct spool_sqlite *s = SQ(sp);

	return rate_op(s, "record remaining", "INSERT INTO ratelimit"
	    " (cred, class, remaining, lim, seen_at)"
	    " VALUES (?1, ?2, ?4, ?5, ?3)"
	    " ON CONFLICT (cred, class) DO UPDATE SET"
	    " remaining = excluded.remaining, lim = excluded.lim,"
	    " seen_at = excluded.seen_at", cred, rate_class,
	    remaining < 0 ? -1 : remaining, limit < 0 ? -1 : limit, 1, NULL);
}

enum podio_err
podio__sqlite_get_remaining(struct podio_spool *sp, const char *cred,
    const char *rate_class, long *remaining, long *limit, int64_t *at_ms)
{
	struct spool_sqlite *s = SQ(sp);
	int64_t row[4];
	enum podio_err e;

	*remaining = -1;
	*limit = -1;
	*at_ms = 0;
	e = rate_op(s, "get remaining", "SELECT remaining, lim, seen_at"
	    " FROM ratelimit WHERE cred = ?1 AND class = ?2"
	    " AND seen_at IS NOT NULL", cred,
	    rate_class, 0, 0, 0, row);
	if (e != PODIO_OK)
		return e;
	*remaining = (long)row[0];
	*limit = (long)row[1];
	*at_ms = row[2];
	return PODIO_OK;
}

enum podio_err
podio__sqlite_resume(struct podio_spool *sp, struct podio_spool_pause **out,
    size_t *n)
{
	struct spool_sqlite *s = SQ(sp);
	/* Outages (next probe in paused_until) end too: their rows go. */
	static const char sel[] = "SELECT cred, class, paused_until"
	    " FROM ratelimit WHERE paused_until > ?1"
	    " OR (class = '" PODIO_SPOOL_OUTAGE_CLASS "' AND seen_at > 0)"
	    " ORDER BY cred, class";
	static const char upd[] = "UPDATE ratelimit SET paused_until = 0"
	    " WHERE paused_until > ?1 AND class <> '"
	    PODIO_SPOOL_OUTAGE_CLASS "'";
	static const char del[] = "DELETE FROM ratelimit WHERE class = '"
	    PODIO_SPOOL_OUTAGE_CLASS "'";
	struct podio_spool_pause *v = NULL, *nv;
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_ERR_IO;
	int64_t now = podio__spool_now(&s->base);
	const unsigned char *txt;
	size_t alloc = 0;
	int rc;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&s->db_lock);
	if ((rc = podio__sqlite_begin(s)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(s, sel, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (*n == alloc) {
			alloc = alloc ? alloc * 2 : 4;
			if ((nv = realloc(v, alloc * sizeof(*v))) == NULL) {
				e = PODIO_ERR_NOMEM;
				rc = SQLITE_OK;
				goto fail;
			}
			v = nv;
		}
		memset(&v[*n], 0, sizeof(v[*n]));
		if ((txt = sqlite3_column_text(st, 0)) != NULL)
			snprintf(v[*n].cred, sizeof(v[*n].cred), "%s",
			    (const char *)txt);
		if ((txt = sqlite3_column_text(st, 1)) != NULL)
			snprintf(v[*n].rate_class, sizeof(v[*n].rate_class),
			    "%s", (const char *)txt);
		v[*n].until_ms = sqlite3_column_int64(st, 2);
		(*n)++;
	}
	if (rc != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_prep(s, upd, &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, now);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_prep(s, del, &st)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(s, st);
	st = NULL;
	if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	*out = v;
	return PODIO_OK;
fail:
	podio__sqlite_fin(s, st);
	e = podio__sqlite_failed(s, "resume", rc, e);
	pthread_mutex_unlock(&s->db_lock);
	free(v);
	*n = 0;
	return e;
}

/* ----------------------------------------------------------------- marks */

enum podio_err
podio__sqlite_set_mark(struct podio_spool *sp, const char *name,
    int64_t value)
{
	struct spool_sqlite *s = SQ(sp);

	return rate_op(s, "set mark", "INSERT INTO marks (name, value)"
	    " VALUES (?1, ?4) ON CONFLICT (name) DO UPDATE SET"
	    " value = max(value, excluded.value)", name, "", value, 0, 1,
	    NULL);
}

enum podio_err
podio__sqlite_get_mark(struct podio_spool *sp, const char *name,
    int64_t *value)
{
	struct spool_sqlite *s = SQ(sp);
	int64_t row[4];
	enum podio_err e;

	e = rate_op(s, "get mark", "SELECT value FROM marks WHERE name = ?1",
	    name, "", 0, 0, 0, row);
	if (e == PODIO_OK)
		*value = row[0];
	return e;
}

/*
 * pg.c: the spool's PostgreSQL backend (spool_int.h; spool.h for the
 * contract): connecting and connecting again, the schema, transactions,
 * statements and their results, decoding rows, and appending.
 *
 * Several hosts share one database: every process holds one connection
 * per handle, and the database's own locks order them.  An append
 * commits with synchronous_commit on (never lower than the server's
 * setting when that is stricter, as with synchronous standbys), so an
 * acknowledged event is on the database's stable storage, or its
 * standbys', before the 200.  While the database cannot be reached,
 * every operation fails at once with PODIO_ERR_IO (deliveries get 503)
 * and the handle connects again by itself, no sooner than its backoff
 * allows.
 */
#include <config.h>

#include <sys/random.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "event.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "pg_int.h"
#include "util.h"

/* Backoff between tries to connect again: from the first to the last. */
#define PG_BACKOFF_FIRST_MS 500
#define PG_BACKOFF_MAX_MS 5000
/* Longest URI accepted. */
#define PG_URL_MAX 4000
/* The transaction-level advisory lock that serialises creating the
 * schema ("podio-sc"). */
#define PG_SCHEMA_LOCK 0x706f64696f2d7363LL

/* ---------------------------------------------------------- parameters */

static int
param_slot(struct pg_params *p)
{
	if (p->n >= PG_PARAMS_MAX)
		abort();        /* a statement of this file with too many */
	return p->n++;
}

void
podio__pg_i64(struct pg_params *p, int64_t v)
{
	int i = param_slot(p);

	snprintf(p->num[i], sizeof(p->num[i]), "%" PRId64, v);
	p->v[i] = p->num[i];
	p->len[i] = 0;
	p->fmt[i] = 0;
}

void
podio__pg_u64(struct pg_params *p, uint64_t v)
{
	podio__pg_i64(p, (int64_t)v);
}

void
podio__pg_text(struct pg_params *p, const char *text, size_t len)
{
	int i = param_slot(p);

	p->v[i] = text;
	p->len[i] = text != NULL ? (int)len : 0;
	p->fmt[i] = 1;
}

void
podio__pg_str(struct pg_params *p, const char *text)
{
	podio__pg_text(p, text, text != NULL ? strlen(text) : 0);
}

void
podio__pg_null(struct pg_params *p)
{
	int i = param_slot(p);

	p->v[i] = NULL;
	p->len[i] = 0;
	p->fmt[i] = 0;
}

/* ------------------------------------------------------------ results */

int64_t
podio__pg_int(const PGresult *r, int row, int col)
{
	const unsigned char *b;
	uint64_t v = 0;
	int len, i;

	if (PQgetisnull(r, row, col))
		return 0;
	b = (const unsigned char *)PQgetvalue(r, row, col);
	len = PQgetlength(r, row, col);
	if (len != 2 && len != 4 && len != 8)
		return 0;
	for (i = 0; i < len; i++)
		v = v << 8 | b[i];
	if (len == 2)
		return (int16_t)v;
	if (len == 4)
		return (int32_t)v;
	return (int64_t)v;
}

int
podio__pg_isnull(const PGresult *r, int row, int col)
{
	return PQgetisnull(r, row, col);
}

char *
podio__pg_id_array(const int64_t *ids, size_t n)
{
	char *a, *p;
	size_t i;

	if ((a = malloc(n * 22 + 3)) == NULL)
		return NULL;
	p = a;
	*p++ = '{';
	for (i = 0; i < n; i++)
		p += sprintf(p, "%s%lld", i > 0 ? "," : "", (long long)ids[i]);
	*p++ = '}';
	*p = '\0';
	return a;
}

char *
podio__pg_dup(const PGresult *r, int row, int col, size_t *len, int *oom)
{
	size_t n;
	char *p;

	if (len != NULL)
		*len = 0;
	if (PQgetisnull(r, row, col))
		return NULL;
	n = (size_t)PQgetlength(r, row, col);
	if ((p = malloc(n + 1)) == NULL) {
		*oom = -1;
		return NULL;
	}
	memcpy(p, PQgetvalue(r, row, col), n);
	p[n] = '\0';
	if (len != NULL)
		*len = n;
	return p;
}

/* --------------------------------------------------------- connection */

/* Notes why the connection failed or a statement did, from conn. */
static void
note_error(struct spool_pg *s, const char *msg, const PGresult *r)
{
	const char *state = r != NULL ?
	    PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
	size_t n;

	snprintf(s->down_msg, sizeof(s->down_msg), "%s",
	    msg != NULL && msg[0] != '\0' ? msg : "unknown error");
	/* libpq's messages end with a newline; the log's lines do not. */
	n = strlen(s->down_msg);
	while (n > 0 && (s->down_msg[n - 1] == '\n' ||
	    s->down_msg[n - 1] == ' '))
		s->down_msg[--n] = '\0';
	snprintf(s->sqlstate, sizeof(s->sqlstate), "%s",
	    state != NULL ? state : "");
}

/* Drops a lost connection: the next operation connects again, after the
 * backoff. */
static void
drop_conn(struct spool_pg *s)
{
	if (s->conn != NULL) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	s->in_tx = 0;
	s->listening = 0;
	s->nstmts = 0;
	s->retry_at_ms = podio__now_ms() + s->backoff_ms;
	s->backoff_ms = s->backoff_ms * 2 > PG_BACKOFF_MAX_MS ?
	    PG_BACKOFF_MAX_MS : s->backoff_ms * 2;
	if (!s->down_logged) {
		podio__warn("spool %s: the database cannot be reached (%s): "
		    "deliveries are refused with 503 until it is back",
		    s->base.path, s->down_msg);
		s->down_logged = 1;
	}
}

/* Whether the connection is gone (after a failed statement). */
static int
conn_lost(struct spool_pg *s)
{
	return s->conn == NULL || PQstatus(s->conn) != CONNECTION_OK;
}

static int connect_db(struct spool_pg *s);

/*
 * After a statement found the connection lost: when no transaction was
 * open (an idle connection the database closed, say while it restarted,
 * found dead at its next use), connects again at once and returns 1:
 * the caller runs the statement again, once.  Otherwise, or when that
 * fails, drops the connection (backoff) and returns 0.
 */
static int
lost_idle(struct spool_pg *s)
{
	if (s->in_tx || s->reconnecting) {
		drop_conn(s);
		return 0;
	}
	PQfinish(s->conn);
	s->conn = NULL;
	s->reconnecting = 1;
	if (connect_db(s) == 0) {
		s->reconnecting = 0;
		podio__debug("spool %s: connected again (%s)", s->base.path,
		    s->down_msg);
		return 1;
	}
	s->reconnecting = 0;
	drop_conn(s);
	return 0;
}

/* Runs sql with the simple protocol (several statements allowed, no
 * parameters): 0, or -1 with the error noted. */
static int
simple(struct spool_pg *s, const char *sql)
{
	PGresult *r;
	int ok, again;

	do {
		if (s->conn == NULL)
			return -1;
		r = PQexec(s->conn, sql);
		ok = r != NULL && (PQresultStatus(r) == PGRES_COMMAND_OK ||
		    PQresultStatus(r) == PGRES_TUPLES_OK);
		again = 0;
		if (!ok) {
			note_error(s, r != NULL ? PQresultErrorMessage(r) :
			    PQerrorMessage(s->conn), r);
			if (conn_lost(s))
				again = lost_idle(s);
		}
		PQclear(r);
	} while (again);
	return ok ? 0 : -1;
}

/* The schema of version 1; see HACKING.md for what each part is for. */
static const char schema_sql[] =
	"CREATE TABLE podio_meta ("
	" name text PRIMARY KEY,"
	" value bigint NOT NULL);"
	"CREATE TABLE podio_events ("
	" id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
	" type text NOT NULL,"
	" hook_id bigint NOT NULL,"
	" item_id bigint,"
	" item_revision_id bigint,"
	" app_id bigint,"
	" event bytea NOT NULL,"
	" received_at bigint NOT NULL,"
	" state text NOT NULL DEFAULT 'pending',"
	" attempts bigint NOT NULL DEFAULT 0,"
	" failures bigint NOT NULL DEFAULT 0,"
	" leases bigint NOT NULL DEFAULT 0,"
	" next_at bigint NOT NULL,"
	" lease_owner text,"
	" lease_key bigint,"
	" lease_until bigint,"
	" last_error bytea,"
	" failed_at bigint,"
	" dead_at bigint,"
	" progress bytea);"
	"CREATE INDEX podio_events_pending ON podio_events (id)"
	" WHERE state = 'pending';"
	"CREATE INDEX podio_events_item ON podio_events (item_id, id)"
	" WHERE state = 'pending' AND item_id IS NOT NULL;"
	"CREATE INDEX podio_events_leased ON podio_events (lease_key)"
	" WHERE lease_until IS NOT NULL;"
	"CREATE TABLE podio_seen ("
	" type text NOT NULL,"
	" hook_id bigint NOT NULL,"
	" item_id bigint NOT NULL,"
	" item_revision_id bigint NOT NULL,"
	" event_id bigint NOT NULL,"
	" seen_at bigint NOT NULL,"
	" PRIMARY KEY (type, hook_id, item_id, item_revision_id));"
	"CREATE INDEX podio_seen_at ON podio_seen (seen_at);"
	"CREATE TABLE podio_hook_apps ("
	" hook_id bigint PRIMARY KEY,"
	" app_id bigint NOT NULL,"
	" learned_at bigint NOT NULL);"
	"CREATE TABLE podio_ratelimit ("
	" cred text NOT NULL,"
	" class text NOT NULL,"
	" paused_until bigint NOT NULL DEFAULT 0,"
	" remaining bigint,"
	" lim bigint,"
	" seen_at bigint,"
	" PRIMARY KEY (cred, class));"
	"CREATE TABLE podio_tokens ("
	" cred text PRIMARY KEY,"
	" token bytea,"
	" expires_at bigint NOT NULL DEFAULT 0,"
	" refreshing_until bigint NOT NULL DEFAULT 0,"
	" updated_at bigint NOT NULL DEFAULT 0);";

/* Added within version 1 (an older build leaves them alone): the
 * revision of each item last fetched (pg_admin.c); the pending events
 * that need no fetch, which is all that the takes and the next due time
 * of processors held by the API budget look at (pg_queue.c): without it
 * they would read every held event each time they look. */
static const char added_sql[] =
	"CREATE TABLE IF NOT EXISTS podio_revisions ("
	" item_id bigint PRIMARY KEY,"
	" revision bigint NOT NULL,"
	" fetched_at bigint NOT NULL);"
	"CREATE INDEX IF NOT EXISTS podio_revisions_at"
	" ON podio_revisions (fetched_at);"
	"CREATE INDEX IF NOT EXISTS podio_events_nofetch ON podio_events (id)"
	" WHERE state = 'pending' AND type NOT IN " PG_FETCH_TYPES ";";

/*
 * Added within version 1 too: one row per item with pending events, so
 * that the takes and the next due time (pg_queue.c) look at each item
 * once instead of at each of its events (SQLite's items table, kept the
 * same way).  head is the item's oldest pending event, first_at when it
 * was received, last_at when the newest one was (or one since removed:
 * this only makes the item look less settled), fetches how many of
 * them need the item fetched.  Triggers keep it in step with podio_events in
 * the transaction of each change, so an older build that writes events
 * keeps it right too: an insert and a removal touch the item's row and
 * read its next event only.
 *
 * Writers of several sessions meet on an item's row.  Each change takes
 * the item's transaction advisory lock (class PG_ITEMS_LOCK_CLASS) before
 * it reads anything, and reads in statements of its own after that, so
 * it sees every change of the item made before (a READ COMMITTED
 * statement sees what committed before it began, and whoever changed
 * the item held the lock until its commit).  A transaction that changes
 * several items takes their locks in the order of their keys (an
 * append sends its inserts in that order, sort_appends(); the removal
 * of done events and the replay take them first, podio_items_lock()),
 * so that two of them never wait for each other in a circle.
 *
 * The table, its functions and triggers are created together and filled
 * from the pending events while podio_events is locked against writers,
 * once (create_items()); triggers of an earlier try that lost its table
 * are replaced.
 */
#define ITEM_KEY(x) "((" x " # (" x " >> 32)) & 2147483647)::integer"
#define ITEM_LOCK(x) "pg_advisory_xact_lock(" PG_ITEMS_LOCK_CLASS_SQL ", " \
	ITEM_KEY(x) ")"
#define IS_FETCH(e) "(" e ".type IN " PG_FETCH_TYPES ")::integer"
/* podio_items_next_due()'s walk over the items of filter: a loop of its
 * own for each filter, so that the one of no_fetch reads the partial
 * index podio_items_nofetch. */
#define NEXT_DUE_LOOP(filter) \
	"  FOR r IN SELECT s.at, greatest(h.next_at, h.lease_until, s.at) AS d" \
	"   FROM (SELECT i.head, least(i.last_at + settle, i.first_at + cap)" \
	"    AS at FROM podio_items i" filter " ORDER BY 2) s" \
	"   CROSS JOIN LATERAL (SELECT e.next_at," \
	"    coalesce(e.lease_until, 0) AS lease_until FROM podio_events e" \
	"    WHERE e.id = s.head OFFSET 0) h" \
	"   ORDER BY s.at LOOP" \
	"   EXIT WHEN r.at >= best;" \
	"   best := least(best, r.d);" \
	"  END LOOP;"
static const char items_sql[] =
	"LOCK TABLE podio_events IN SHARE ROW EXCLUSIVE MODE;"
	"CREATE TABLE podio_items ("
	" item_id bigint PRIMARY KEY,"
	" head bigint NOT NULL,"
	" first_at bigint NOT NULL,"
	" last_at bigint NOT NULL,"
	" fetches bigint NOT NULL);"
	"CREATE INDEX podio_items_head ON podio_items (head);"
	"CREATE INDEX podio_items_nofetch ON podio_items (head)"
	" WHERE fetches = 0;"
	"CREATE INDEX IF NOT EXISTS podio_events_noitem ON podio_events (id)"
	" WHERE state = 'pending' AND item_id IS NULL;"
	/* The locks of the items named, in the order of their keys (the
	 * aggregate reads the sorted rows in order). */
	"CREATE OR REPLACE FUNCTION podio_items_lock(items bigint[])"
	" RETURNS void LANGUAGE sql AS $f$"
	" SELECT count(pg_advisory_xact_lock(" PG_ITEMS_LOCK_CLASS_SQL ","
	"  k.k)) FROM (SELECT DISTINCT " ITEM_KEY("u.x") " AS k"
	"  FROM unnest(items) AS u(x) WHERE u.x IS NOT NULL ORDER BY 1) k"
	" $f$;"
	/*
	 * An event of an item pending no more (dead, bad: OLD), then one
	 * pending now (inserted, replayed: NEW).  Each statement
	 * takes the item's lock before its row's: the lock of the lock
	 * function's order, the row's for the change.  Once the row is
	 * held, a statement of its own reads the item's next head.
	 */
	"CREATE OR REPLACE FUNCTION podio_items_trigger() RETURNS trigger"
	" LANGUAGE plpgsql AS $f$"
	" DECLARE h bigint; nh bigint; nat bigint;"
	" BEGIN"
	"  IF TG_OP = 'UPDATE' AND OLD.state = 'pending'"
	"   AND OLD.item_id IS NOT NULL THEN"
	"   UPDATE podio_items i SET fetches = i.fetches - " IS_FETCH("OLD")
	"    FROM (SELECT " ITEM_LOCK("OLD.item_id") ") l"
	"    WHERE i.item_id = OLD.item_id RETURNING i.head INTO h;"
	"   IF h = OLD.id THEN"
	"    SELECT e.id, e.received_at INTO nh, nat FROM podio_events e"
	"     WHERE e.item_id = OLD.item_id AND e.state = 'pending'"
	"     ORDER BY e.id LIMIT 1;"
	"    IF nh IS NULL THEN"
	"     DELETE FROM podio_items WHERE item_id = OLD.item_id;"
	"    ELSE"
	"     UPDATE podio_items SET head = nh, first_at = nat"
	"      WHERE item_id = OLD.item_id;"
	"    END IF;"
	"   END IF;"
	"  END IF;"
	"  IF NEW.state = 'pending'"
	"   AND NEW.item_id IS NOT NULL THEN"
	"   INSERT INTO podio_items AS i (item_id, head, first_at, last_at,"
	"    fetches) SELECT NEW.item_id, NEW.id, NEW.received_at,"
	"    NEW.received_at, " IS_FETCH("NEW")
	"    FROM (SELECT " ITEM_LOCK("NEW.item_id") ") l"
	"   ON CONFLICT (item_id) DO UPDATE SET"
	"    first_at = CASE WHEN excluded.head < i.head"
	"     THEN excluded.first_at ELSE i.first_at END,"
	"    head = least(i.head, excluded.head),"
	"    last_at = greatest(i.last_at, excluded.last_at),"
	"    fetches = i.fetches + excluded.fetches;"
	"  END IF;"
	"  RETURN NULL;"
	" END $f$;"
	/*
	 * The events a statement removed (done, purged): their items' locks
	 * in order, then the counts of the items, their next heads, and the
	 * rows of those left with none, a statement each for all of them.
	 */
	"CREATE OR REPLACE FUNCTION podio_items_gone() RETURNS trigger"
	" LANGUAGE plpgsql AS $f$"
	" BEGIN"
	"  PERFORM podio_items_lock(array(SELECT g.item_id FROM gone g"
	"   WHERE g.state = 'pending'));"
	"  UPDATE podio_items i SET fetches = i.fetches - c.n"
	"   FROM (SELECT g.item_id, count(*) AS n FROM gone g"
	"    WHERE g.state = 'pending' AND g.item_id IS NOT NULL"
	"    AND g.type IN " PG_FETCH_TYPES " GROUP BY g.item_id) c"
	"   WHERE i.item_id = c.item_id;"
	"  UPDATE podio_items i SET head = n.id, first_at = n.received_at"
	"   FROM (SELECT d.item_id, e.id, e.received_at"
	"    FROM (SELECT DISTINCT g.item_id FROM gone g"
	"     WHERE g.state = 'pending' AND g.item_id IS NOT NULL) d"
	"    CROSS JOIN LATERAL (SELECT e.id, e.received_at"
	"     FROM podio_events e WHERE e.item_id = d.item_id"
	"     AND e.state = 'pending' ORDER BY e.id LIMIT 1) e) n"
	"   WHERE i.item_id = n.item_id AND i.head IN (SELECT g.id FROM gone g"
	"    WHERE g.item_id = n.item_id AND g.state = 'pending');"
	"  DELETE FROM podio_items i USING gone g"
	"   WHERE i.item_id = g.item_id AND i.head = g.id"
	"   AND g.state = 'pending';"
	"  RETURN NULL;"
	" END $f$;"
	/*
	 * The first moment an item may be taken (see pg_queue.c): its head
	 * due and not in flight, and the item settled.  The items are read
	 * in the order of when they settle, each with its head (OFFSET 0
	 * keeps the head a lookup per item, never a read of every event),
	 * until the next settles no sooner than the earliest found: past
	 * the items in flight or waiting for a retry, up to the first that
	 * is free, instead of every item.
	 */
	"CREATE OR REPLACE FUNCTION podio_items_next_due(settle bigint,"
	" cap bigint, nofetch boolean) RETURNS bigint LANGUAGE plpgsql"
	" STABLE AS $f$"
	" DECLARE best bigint; r record;"
	" BEGIN"
	"  IF settle <= 0 THEN"
	"   RETURN (SELECT min(greatest(h.next_at, coalesce(h.lease_until, 0)))"
	"    FROM podio_items i JOIN podio_events h ON h.id = i.head"
	"    WHERE NOT nofetch OR i.fetches = 0);"
	"  END IF;"
	"  IF nofetch THEN"
	NEXT_DUE_LOOP(" WHERE i.fetches = 0")
	"  ELSE"
	NEXT_DUE_LOOP("")
	"  END IF;"
	"  RETURN best;"
	" END $f$;"
	"DROP TRIGGER IF EXISTS podio_items_insert ON podio_events;"
	"CREATE TRIGGER podio_items_insert AFTER INSERT ON podio_events"
	" FOR EACH ROW WHEN (NEW.state = 'pending' AND NEW.item_id IS NOT NULL)"
	" EXECUTE FUNCTION podio_items_trigger();"
	"DROP TRIGGER IF EXISTS podio_items_delete ON podio_events;"
	"CREATE TRIGGER podio_items_delete AFTER DELETE ON podio_events"
	" REFERENCING OLD TABLE AS gone FOR EACH STATEMENT"
	" EXECUTE FUNCTION podio_items_gone();"
	"DROP TRIGGER IF EXISTS podio_items_update ON podio_events;"
	"CREATE TRIGGER podio_items_update AFTER UPDATE OF state, item_id,"
	" received_at, type ON podio_events FOR EACH ROW"
	" WHEN ((OLD.state = 'pending' AND OLD.item_id IS NOT NULL)"
	"  OR (NEW.state = 'pending' AND NEW.item_id IS NOT NULL))"
	" EXECUTE FUNCTION podio_items_trigger();"
	"INSERT INTO podio_items (item_id, head, first_at, last_at, fetches)"
	" SELECT g.item_id, g.head, h.received_at, g.last_at, g.fetches FROM"
	" (SELECT item_id, min(id) AS head, max(received_at) AS last_at,"
	"  count(*) FILTER (WHERE type IN " PG_FETCH_TYPES ") AS fetches"
	"  FROM podio_events WHERE state = 'pending' AND item_id IS NOT NULL"
	"  GROUP BY item_id) g JOIN podio_events h ON h.id = g.head;";
#undef NEXT_DUE_LOOP
#undef IS_FETCH
#undef ITEM_LOCK
#undef ITEM_KEY

/* Whether sql, a query of one boolean, answers true: 1, 0, or -1 with
 * the error noted. */
static int
query_true(struct spool_pg *s, const char *sql)
{
	PGresult *r;
	int yes;

	if ((r = podio__pg_run(s, sql, NULL)) == NULL)
		return -1;
	yes = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
	PQclear(r);
	return yes;
}

/* Whether the tables and indexes added within version 1 exist: 1, 0,
 * or -1 with the error noted. */
static int
schema_complete(struct spool_pg *s)
{
	return query_true(s, "SELECT to_regclass('podio_revisions')"
	    " IS NOT NULL AND to_regclass('podio_events_nofetch') IS NOT NULL"
	    " AND to_regclass('podio_items') IS NOT NULL");
}

/*
 * Reads the schema version: -1 when there is no schema yet, 0 when the
 * table has no version.  Returns 0, or -1 with the error noted.
 */
static int
schema_version(struct spool_pg *s, int64_t *version)
{
	PGresult *r;
	int have;

	*version = -1;
	if ((have = query_true(s, "SELECT to_regclass('podio_meta')"
	    " IS NOT NULL")) != 1)
		return have;
	/* Not prepared: the table may not have existed when a statement
	 * naming it would have been. */
	r = PQexecParams(s->conn, "SELECT value FROM podio_meta"
	    " WHERE name = 'schema_version'", 0, NULL, NULL, NULL, NULL, 1);
	if (r == NULL || PQresultStatus(r) != PGRES_TUPLES_OK) {
		note_error(s, r != NULL ? PQresultErrorMessage(r) :
		    PQerrorMessage(s->conn), r);
		PQclear(r);
		if (conn_lost(s))
			drop_conn(s);
		return -1;
	}
	*version = PQntuples(r) == 1 ? podio__pg_int(r, 0, 0) : 0;
	PQclear(r);
	return 0;
}

/*
 * Creates the schema when the database has none, or checks its version,
 * holding an advisory lock so that hosts starting at once do not race:
 * the lock is taken before the transaction that looks and creates
 * begins, so that it sees what a host that held the lock before
 * committed.  Returns 0; 1 when the schema is newer than this build
 * knows; -1 with the error noted.
 */
static int create_schema(struct spool_pg *s);

static int
ensure_schema(struct spool_pg *s)
{
	int64_t version;
	char lock[64], unlock[64];
	int rc = -1;

	if (schema_version(s, &version) == -1)
		return -1;
	if (version == PG_SCHEMA_VERSION && (rc = schema_complete(s)) != 0)
		return rc == 1 ? 0 : -1;
	if (version > PG_SCHEMA_VERSION)
		return 1;
	snprintf(lock, sizeof(lock), "SELECT pg_advisory_lock(%lld)",
	    (long long)PG_SCHEMA_LOCK);
	snprintf(unlock, sizeof(unlock), "SELECT pg_advisory_unlock(%lld)",
	    (long long)PG_SCHEMA_LOCK);
	if (simple(s, lock) == -1)
		return -1;
	rc = create_schema(s);
	if (s->conn != NULL)
		(void)simple(s, unlock);
	return rc;
}

/* Creates podio_items and what keeps it (items_sql) unless it exists, in
 * create_schema()'s transaction: 0, or -1 with the error noted. */
static int
create_items(struct spool_pg *s)
{
	int have;

	if ((have = query_true(s, "SELECT to_regclass('podio_items')"
	    " IS NOT NULL")) == -1)
		return -1;
	return have ? 0 : simple(s, items_sql);
}

/* ensure_schema()'s transaction, under its lock: 0, 1 or -1 as it. */
static int
create_schema(struct spool_pg *s)
{
	int64_t version;
	char sql[64];

	if (simple(s, "BEGIN") == -1)
		return -1;
	s->in_tx = 1;
	if (schema_version(s, &version) == -1)
		goto fail;
	if (version == -1) {
		if (simple(s, schema_sql) == -1)
			goto fail;
		snprintf(sql, sizeof(sql), "INSERT INTO podio_meta VALUES"
		    " ('schema_version', %d)", PG_SCHEMA_VERSION);
		if (simple(s, sql) == -1)
			goto fail;
		version = PG_SCHEMA_VERSION;
	}
	if (version > PG_SCHEMA_VERSION) {
		podio__pg_abort(s);
		return 1;
	}
	if (version != PG_SCHEMA_VERSION) {
		snprintf(s->down_msg, sizeof(s->down_msg), "the table "
		    "podio_meta has no schema version: not a spool's");
		goto fail;
	}
	if (simple(s, added_sql) == -1 || create_items(s) == -1)
		goto fail;
	if (podio__pg_commit(s) == -1)
		goto fail;
	return 0;
fail:
	podio__pg_abort(s);
	return -1;
}

/* The database's notices and warnings (its shutdown, say) go to the log
 * instead of libpq's default, stderr without our prefix. */
static void
notice(void *arg, const char *message)
{
	const struct spool_pg *s = arg;
	char line[512];
	size_t n;

	snprintf(line, sizeof(line), "%s", message);
	n = strlen(line);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
		line[--n] = '\0';
	podio__info("spool %s: the database says: %s", s->base.path, line);
}

/*
 * Connects: the URI's own settings win over the defaults given here
 * (time limits, so that a database that is gone, or a network that is,
 * fails an operation in seconds instead of minutes).  Then this handle's
 * advisory lock, durable commits and the schema.  Returns 0, 1 (a newer
 * schema) or -1 with the reason in s->down_msg.
 */
static int
connect_db(struct spool_pg *s)
{
	static const char *const keys[] = {
		"connect_timeout", "keepalives", "keepalives_idle",
		"keepalives_interval", "keepalives_count", "tcp_user_timeout",
		"application_name", "dbname", NULL
	};
	const char *vals[] = {
		"5", "1", "10", "5", "3", "15000", "podio-webhook", s->url,
		NULL
	};
	PGresult *r;
	struct pg_params p;
	int rc;

	s->conn = PQconnectdbParams(keys, vals, 1);
	if (s->conn == NULL) {
		snprintf(s->down_msg, sizeof(s->down_msg), "out of memory");
		return -1;
	}
	if (PQstatus(s->conn) != CONNECTION_OK) {
		note_error(s, PQerrorMessage(s->conn), NULL);
		PQfinish(s->conn);
		s->conn = NULL;
		return -1;
	}
	(void)PQsetNoticeProcessor(s->conn, notice, s);
	s->nstmts = 0;
	s->in_tx = 0;
	s->listening = 0;
	/* Never less durable than the server is set up to be; "off" (the
	 * only setting that acknowledges before the flush) is raised. */
	if (simple(s, "SET synchronous_commit = DEFAULT") == -1)
		goto fail;
	if ((r = podio__pg_run(s, "SELECT current_setting("
	    "'synchronous_commit') = 'off'", NULL)) == NULL)
		goto fail;
	rc = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
	PQclear(r);
	if (rc && simple(s, "SET synchronous_commit = on") == -1)
		goto fail;
	memset(&p, 0, sizeof(p));
	podio__pg_i64(&p, s->lock_key);
	if ((r = podio__pg_run(s, "SELECT pg_try_advisory_lock($1)",
	    &p)) == NULL)
		goto fail;
	rc = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
	PQclear(r);
	if (!rc)
		/* Another handle holds this key (a chance of 1 in 2^61):
		 * its leases and this one's look alive together. */
		podio__warn("spool %s: the lease lock %lld is held by another "
		    "session", s->base.path, (long long)s->lock_key);
	if ((rc = ensure_schema(s)) != 0) {
		if (rc == 1) {
			PQfinish(s->conn);
			s->conn = NULL;
			return 1;
		}
		goto fail;
	}
	return 0;
fail:
	if (s->conn != NULL) {
		PQfinish(s->conn);
		s->conn = NULL;
	}
	return -1;
}

int
podio__pg_ready(struct spool_pg *s)
{
	int rc;

	if (s->conn != NULL) {
		/* Reading what waits shows a connection the database
		 * closed while it was idle (it restarted, say): connected
		 * again at once, before a statement is lost on it. */
		if (!s->in_tx && !s->reconnecting)
			(void)PQconsumeInput(s->conn);
		if (PQstatus(s->conn) == CONNECTION_OK)
			return 0;
		note_error(s, PQerrorMessage(s->conn), NULL);
		if (!s->in_tx)
			return lost_idle(s) ? 0 : -1;
		drop_conn(s);
	}
	if (podio__now_ms() < s->retry_at_ms)
		return -1;
	if ((rc = connect_db(s)) == 0) {
		if (s->down_logged)
			podio__info("spool %s: the database is back",
			    s->base.path);
		s->down_logged = 0;
		s->backoff_ms = PG_BACKOFF_FIRST_MS;
		return 0;
	}
	if (rc == 1)
		snprintf(s->down_msg, sizeof(s->down_msg), "the spool's "
		    "schema was made by a newer version of podio-webhook");
	s->sqlstate[0] = '\0';
	drop_conn(s);
	return -1;
}

/* ------------------------------------------------------ transactions */

int
podio__pg_begin(struct spool_pg *s)
{
	if (podio__pg_ready(s) == -1 || simple(s, "BEGIN") == -1)
		return -1;
	s->in_tx = 1;
	return 0;
}

int
podio__pg_begin_lazy(struct spool_pg *s)
{
	if (podio__pg_ready(s) == -1 ||
	    simple(s, "BEGIN; SET LOCAL synchronous_commit = off") == -1)
		return -1;
	s->in_tx = 1;
	return 0;
}

int
podio__pg_commit(struct spool_pg *s)
{
	if (simple(s, "COMMIT") == -1)
		return -1;
	s->in_tx = 0;
	return 0;
}

void
podio__pg_abort(struct spool_pg *s)
{
	char msg[sizeof(s->down_msg)];
	char state[sizeof(s->sqlstate)];

	if (!s->in_tx || s->conn == NULL) {
		s->in_tx = 0;
		return;
	}
	/* Keep the error that led here, not the rollback's. */
	memcpy(msg, s->down_msg, sizeof(msg));
	memcpy(state, s->sqlstate, sizeof(state));
	(void)simple(s, "ROLLBACK");
	memcpy(s->down_msg, msg, sizeof(msg));
	memcpy(s->sqlstate, state, sizeof(state));
	s->in_tx = 0;
}

enum podio_err
podio__pg_failed(struct spool_pg *s, const char *what, enum podio_err e)
{
	if (e == PODIO_OK)
		e = PODIO_ERR_IO;
	/* While the database is down the loss is logged once, not each
	 * operation that fails for it. */
	if (e == PODIO_ERR_IO && s->conn != NULL)
		podio__warn("spool %s: %s: %s", s->base.path, what,
		    s->down_msg);
	podio__pg_abort(s);
	return e;
}

const char *
podio__pg_sqlstate(const struct spool_pg *s)
{
	return s->sqlstate;
}

/* ---------------------------------------------------------- statements */

/* The name of sql's prepared statement on this connection ("sN"),
 * preparing it on first use; NULL on failure (error noted, and the
 * connection, when it was lost, left for the caller: see lost_idle()). */
static const char *
stmt_name(struct spool_pg *s, const char *sql, char *name, size_t len)
{
	PGresult *r;
	int i;

	for (i = 0; i < s->nstmts; i++)
		if (s->stmts[i] == sql) {
			snprintf(name, len, "s%d", i);
			return name;
		}
	if (s->nstmts == PG_STMTS_MAX) {
		/* Not expected: the backend has fewer statements.  Run it
		 * unnamed (parsed each time). */
		snprintf(name, len, "%s", "");
		r = PQprepare(s->conn, "", sql, 0, NULL);
	} else {
		snprintf(name, len, "s%d", s->nstmts);
		r = PQprepare(s->conn, name, sql, 0, NULL);
	}
	if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
		note_error(s, r != NULL ? PQresultErrorMessage(r) :
		    PQerrorMessage(s->conn), r);
		PQclear(r);
		return NULL;
	}
	PQclear(r);
	if (s->nstmts < PG_STMTS_MAX)
		s->stmts[s->nstmts++] = sql;
	return name;
}

/* stmt_name(), connecting again once when an idle connection was found
 * lost. */
static const char *
stmt_ready(struct spool_pg *s, const char *sql, char *name, size_t len)
{
	const char *n;
	int retried = 0;

	for (;;) {
		if ((n = stmt_name(s, sql, name, len)) != NULL)
			return n;
		if (!conn_lost(s) || retried++ > 0 || !lost_idle(s))
			return NULL;
	}
}

PGresult *
podio__pg_run(struct spool_pg *s, const char *sql, const struct pg_params *p)
{
	PGresult *r;
	char name[16];
	ExecStatusType st;
	int retried = 0;

	for (;;) {
		if (s->conn == NULL && (s->in_tx || podio__pg_ready(s) == -1))
			return NULL;
		if (stmt_ready(s, sql, name, sizeof(name)) == NULL)
			return NULL;
		r = PQexecPrepared(s->conn, name, p != NULL ? p->n : 0,
		    p != NULL ? p->v : NULL, p != NULL ? p->len : NULL,
		    p != NULL ? p->fmt : NULL, 1);
		st = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;
		if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK)
			return r;
		note_error(s, r != NULL ? PQresultErrorMessage(r) :
		    PQerrorMessage(s->conn), r);
		PQclear(r);
		if (!conn_lost(s))
			return NULL;
		if (retried++ > 0 || !lost_idle(s))
			return NULL;
	}
}

int
podio__pg_do(struct spool_pg *s, const char *sql, const struct pg_params *p,
    size_t *changed)
{
	PGresult *r;
	const char *n;

	if (changed != NULL)
		*changed = 0;
	if ((r = podio__pg_run(s, sql, p)) == NULL)
		return -1;
	if (changed != NULL && (n = PQcmdTuples(r)) != NULL && n[0] != '\0')
		*changed = (size_t)strtoull(n, NULL, 10);
	PQclear(r);
	return 0;
}

/* -------------------------------------------------------------- rows */

enum {
	C_ID, C_TYPE, C_HOOK, C_ITEM, C_REV, C_APP, C_RECEIVED, C_STATE,
	C_ATTEMPTS, C_FAILURES, C_LEASES, C_NEXT, C_LEASE, C_ERROR,
	C_FAILED, C_DEAD, C_PROGRESS, C_EVENT
};

int
podio__pg_read_row(const PGresult *r, int row, int64_t now, int with_body,
    struct podio_spool_event *ev, char *why, size_t whylen)
{
	const char *bad = NULL, *state;
	int oom = 0;

	memset(ev, 0, sizeof(*ev));
	ev->id = podio__pg_int(r, row, C_ID);
	ev->hook_id = (uint64_t)podio__pg_int(r, row, C_HOOK);
	ev->has = PODIO_HAS_HOOK_ID;
	if (!PQgetisnull(r, row, C_ITEM)) {
		ev->has |= PODIO_HAS_ITEM_ID;
		ev->item_id = (uint64_t)podio__pg_int(r, row, C_ITEM);
	}
	if (!PQgetisnull(r, row, C_REV)) {
		ev->has |= PODIO_HAS_ITEM_REVISION_ID;
		ev->item_revision_id = (uint64_t)podio__pg_int(r, row, C_REV);
	}
	if (!PQgetisnull(r, row, C_APP)) {
		ev->has |= PODIO_HAS_APP_ID;
		ev->app_id = (uint64_t)podio__pg_int(r, row, C_APP);
	}
	ev->received_ms = podio__pg_int(r, row, C_RECEIVED);
	ev->attempts = (long)podio__pg_int(r, row, C_ATTEMPTS);
	ev->failures = (long)podio__pg_int(r, row, C_FAILURES);
	ev->leases = (long)podio__pg_int(r, row, C_LEASES);
	ev->next_ms = podio__pg_int(r, row, C_NEXT);
	ev->lease_until_ms = podio__pg_int(r, row, C_LEASE);
	ev->failed_ms = podio__pg_int(r, row, C_FAILED);
	ev->dead_ms = podio__pg_int(r, row, C_DEAD);
	ev->type = podio__pg_dup(r, row, C_TYPE, NULL, &oom);
	ev->last_error = podio__pg_dup(r, row, C_ERROR, NULL, &oom);
	ev->progress = podio__pg_dup(r, row, C_PROGRESS, NULL, &oom);
	if (with_body)
		ev->event_json = podio__pg_dup(r, row, C_EVENT,
		    &ev->event_len, &oom);
	if (oom) {
		podio__spool_event_clear(ev);
		return -1;
	}
	state = PQgetisnull(r, row, C_STATE) ? NULL :
	    PQgetvalue(r, row, C_STATE);
	ev->state = podio__spool_state_of(state, ev, now, &bad);
	if (bad != NULL)
		;
	else if (ev->type == NULL ||
	    strlen(ev->type) != (size_t)PQgetlength(r, row, C_TYPE) ||
	    !podio__spool_valid_type(ev->type, strlen(ev->type)))
		bad = "bad type";
	else if (ev->progress != NULL &&
	    strlen(ev->progress) != (size_t)PQgetlength(r, row, C_PROGRESS))
		bad = "bad progress";
	else if (with_body && (ev->event_json == NULL ||
	    !podio__json_valid(ev->event_json, ev->event_len)))
		bad = "the event is not valid JSON";
	if (bad == NULL)
		return 0;
	ev->state = PODIO_SPOOL_BAD;
	snprintf(why, whylen, "%s", bad);
	return 1;
}

int
podio__pg_set_bad(struct spool_pg *s, int64_t id, const char *why,
    int64_t now)
{
	static const char sql[] = "UPDATE podio_events SET state = 'bad',"
	    " last_error = $1, dead_at = $2, lease_owner = NULL,"
	    " lease_key = NULL, lease_until = NULL WHERE id = $3";
	struct pg_params p;
	char msg[128];

	podio__warn("spool %s: event %lld cannot be decoded (%s): set aside "
	    "as bad", s->base.path, (long long)id, why);
	snprintf(msg, sizeof(msg), "cannot be decoded: %s", why);
	memset(&p, 0, sizeof(p));
	podio__pg_str(&p, msg);
	podio__pg_i64(&p, now);
	podio__pg_i64(&p, id);
	return podio__pg_do(s, sql, &p, NULL);
}

/* ---------------------------------------------------------- appending */

/*
 * This process's tag, the payload of its notifications: a listener of
 * the same process (which its own workers woke already) skips them.
 * The PID makes a child after fork() another process.
 */
static unsigned proc_salt;

static void
proc_salt_init(void)
{
	if (getrandom(&proc_salt, sizeof(proc_salt), GRND_NONBLOCK) !=
	    (ssize_t)sizeof(proc_salt))
		proc_salt = (unsigned)podio__now_ms();
}

static void
proc_tag(char *buf, size_t n)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	(void)pthread_once(&once, proc_salt_init);
	snprintf(buf, n, "p%ld-%08x", (long)getpid(), proc_salt);
}

/* The parameters of an event's insert: $1 type .. $7 received. */
static void
insert_params(struct pg_params *p, const struct spool_req *r)
{
	const struct podio_spool_record *rec = r->rec;

	memset(p, 0, sizeof(*p));
	podio__pg_str(p, rec->type);
	podio__pg_u64(p, rec->hook_id);
	if (rec->has & PODIO_HAS_ITEM_ID)
		podio__pg_u64(p, rec->item_id);
	else
		podio__pg_null(p);
	if (rec->has & PODIO_HAS_ITEM_REVISION_ID)
		podio__pg_u64(p, rec->item_revision_id);
	else
		podio__pg_null(p);
	if (rec->has & PODIO_HAS_APP_ID)
		podio__pg_u64(p, rec->app_id);
	else
		podio__pg_null(p);
	podio__pg_text(p, rec->event_json, rec->event_len);
	podio__pg_i64(p, r->received_ms);
}

/* The inserts of an append: an event of no dedup key; an item event
 * with its key, in one statement: the key takes the event's id from the
 * sequence, and the event is stored only when the key was new (a
 * redelivery, stored before or by a transaction that committed while
 * this one waited for its key, stores nothing and gets the first copy's
 * id, when this statement's snapshot shows it). */
static const char sql_ins[] = "INSERT INTO podio_events (type, hook_id,"
    " item_id, item_revision_id, app_id, event, received_at, next_at)"
    " VALUES ($1::text, $2::bigint, $3::bigint, $4::bigint, $5::bigint,"
    " $6::bytea, $7::bigint, $7::bigint) RETURNING id, NULL::bigint";
/* Every parameter's type is given: PostgreSQL would take coalesce($3, 0)
 * for an integer. */
static const char sql_ins_key[] = "WITH k AS (INSERT INTO podio_seen"
    " (type, hook_id, item_id, item_revision_id, event_id, seen_at)"
    " VALUES ($1::text, $2::bigint, coalesce($3::bigint, 0), $4::bigint,"
    " nextval(pg_get_serial_sequence('podio_events', 'id')), $7::bigint)"
    " ON CONFLICT DO NOTHING RETURNING event_id),"
    " e AS (INSERT INTO podio_events (id, type, hook_id, item_id,"
    " item_revision_id, app_id, event, received_at, next_at)"
    " OVERRIDING SYSTEM VALUE"
    " SELECT k.event_id, $1::text, $2::bigint, $3::bigint, $4::bigint,"
    " $5::bigint, $6::bytea, $7::bigint, $7::bigint FROM k"
    " RETURNING id)"
    " SELECT (SELECT id FROM e), (SELECT event_id FROM podio_seen"
    " WHERE type = $1::text AND hook_id = $2::bigint"
    " AND item_id = coalesce($3::bigint, 0)"
    " AND item_revision_id = $4::bigint)";
static const char sql_first[] = "SELECT event_id FROM podio_seen"
    " WHERE type = $1::text AND hook_id = $2::bigint"
    " AND item_id = $3::bigint AND item_revision_id = $4::bigint";

/* Appends sent in one round trip, at most: the results of a chunk stay
 * small, so neither side waits for the other to read. */
#define PG_PIPE_CHUNK 64

/* Reads the results of one statement of the pipeline: 0 when it went as
 * expected (*res, when res is not NULL, receives its rows, to clear);
 * -1 with the error noted. */
static int
pipe_result(struct spool_pg *s, PGresult **res)
{
	PGresult *r, *keep = NULL;
	ExecStatusType st;
	int ok = 1;

	if (res != NULL)
		*res = NULL;
	while ((r = PQgetResult(s->conn)) != NULL) {
		st = PQresultStatus(r);
		if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
			if (ok)
				note_error(s, st == PGRES_PIPELINE_ABORTED ?
				    "an earlier statement failed" :
				    PQresultErrorMessage(r), r);
			ok = 0;
		}
		PQclear(keep);
		keep = r;
		if (st == PGRES_PIPELINE_ABORTED || conn_lost(s))
			break;
	}
	if (ok && res != NULL)
		*res = keep;
	else
		PQclear(keep);
	return ok ? 0 : -1;
}

/* Reads up to the end of a pipeline's chunk (PGRES_PIPELINE_SYNC):
 * 0, or -1 with the error noted. */
static int
pipe_sync(struct spool_pg *s)
{
	PGresult *r;
	int ok = 1, nulls = 0;

	for (;;) {
		if ((r = PQgetResult(s->conn)) == NULL) {
			/* Between statements' results; twice in a row and a
			 * lost connection: the end will not come. */
			if (++nulls > 1 && conn_lost(s)) {
				note_error(s, PQerrorMessage(s->conn), NULL);
				return -1;
			}
			continue;
		}
		nulls = 0;
		if (PQresultStatus(r) == PGRES_PIPELINE_SYNC) {
			PQclear(r);
			return ok ? 0 : -1;
		}
		if (PQresultStatus(r) != PGRES_COMMAND_OK &&
		    PQresultStatus(r) != PGRES_TUPLES_OK &&
		    PQresultStatus(r) != PGRES_PIPELINE_ABORTED && ok) {
			note_error(s, PQresultErrorMessage(r), r);
			ok = 0;
		}
		PQclear(r);
	}
}

/* Sends a statement without parameters into the pipeline: 0 or -1. */
static int
pipe_plain(struct spool_pg *s, const char *sql)
{
	if (PQsendQueryParams(s->conn, sql, 0, NULL, NULL, NULL, NULL, 1))
		return 0;
	note_error(s, PQerrorMessage(s->conn), NULL);
	return -1;
}

/* An append and its place in the list, for sort_appends(). */
struct append_at {
	struct spool_req *r;
	int64_t key;                /* its item's lock key, -1: no item */
	size_t at;
};

/* By the key of the item's lock, then by arrival. */
static int
append_cmp(const void *a, const void *b)
{
	const struct append_at *x = a, *y = b;

	if (x->key != y->key)
		return x->key < y->key ? -1 : 1;
	return x->at < y->at ? -1 : x->at > y->at;
}

/*
 * The n appends of list, in the order their inserts go out: by the key
 * of their item's lock (see items_sql: each insert takes its item's
 * lock, and every transaction that takes several takes them in this
 * order), in arrival order within an item.  Returns a new array the
 * caller frees, or NULL on out of memory.
 */
static struct spool_req **
sort_appends(struct spool_req *list, size_t *n)
{
	struct append_at *v;
	struct spool_req **out = NULL, *r;
	size_t i, k = 0;
	uint64_t u;

	for (r = list; r != NULL; r = r->next)
		k++;
	*n = k;
	if ((v = calloc(k > 0 ? k : 1, sizeof(*v))) == NULL)
		return NULL;
	for (r = list, i = 0; r != NULL; r = r->next, i++) {
		v[i].r = r;
		v[i].at = i;
		v[i].key = -1;
		if (r->rec->has & PODIO_HAS_ITEM_ID) {
			/* ITEM_KEY() of items_sql */
			u = r->rec->item_id;
			v[i].key = (int64_t)((u ^ (u >> 32)) & 0x7fffffff);
		}
	}
	qsort(v, k, sizeof(*v), append_cmp);
	if ((out = calloc(k > 0 ? k : 1, sizeof(*out))) != NULL)
		for (i = 0; i < k; i++)
			out[i] = v[i].r;
	free(v);
	return out;
}

/*
 * Writes the appends of list in one transaction, pipelined: the
 * statements of a chunk go out together and their results come back
 * together, so a batch costs a round trip per PG_PIPE_CHUNK appends and
 * the commit's flush, not one per append.  The commit notifies the
 * listeners (notify).  0, or -1 with the error noted and the
 * transaction rolled back or the connection dropped.
 */
static int
append_pipelined(struct spool_pg *s, struct spool_req *list,
    const char *notify)
{
	char n_ins[16], n_key[16];
	struct spool_req **v, *r;
	struct pg_params p;
	PGresult *res;
	size_t n, i, at, end;
	int rc = -1;

	if (list == NULL)
		return 0;
	if ((v = sort_appends(list, &n)) == NULL) {
		snprintf(s->down_msg, sizeof(s->down_msg), "out of memory");
		return -1;
	}
	/* Prepared before the pipeline: preparing waits for its answer. */
	if (podio__pg_ready(s) == -1 ||
	    stmt_ready(s, sql_ins, n_ins, sizeof(n_ins)) == NULL ||
	    stmt_ready(s, sql_ins_key, n_key, sizeof(n_key)) == NULL) {
		free(v);
		return -1;
	}
	if (!PQenterPipelineMode(s->conn)) {
		note_error(s, PQerrorMessage(s->conn), NULL);
		free(v);
		return -1;
	}
	s->in_tx = 1;
	if (pipe_plain(s, "BEGIN") == -1)
		goto out;
	for (at = 0; at < n; at = end) {
		end = n - at < PG_PIPE_CHUNK ? n : at + PG_PIPE_CHUNK;
		for (i = at; i < end; i++) {
			insert_params(&p, v[i]);
			if (!PQsendQueryPrepared(s->conn, v[i]->has_key ?
			    n_key : n_ins, p.n, p.v, p.len, p.fmt, 1)) {
				note_error(s, PQerrorMessage(s->conn), NULL);
				goto out;
			}
		}
		if (end == n && (pipe_plain(s, notify) == -1 ||
		    pipe_plain(s, "COMMIT") == -1))
			goto out;
		if (!PQpipelineSync(s->conn)) {
			note_error(s, PQerrorMessage(s->conn), NULL);
			goto out;
		}
		if (at == 0 && pipe_result(s, NULL) == -1)
			goto sync;      /* BEGIN */
		for (i = at; i < end; i++) {
			r = v[i];
			if (pipe_result(s, &res) == -1)
				goto sync;
			r->duplicate = PQntuples(res) != 1 ||
			    PQgetisnull(res, 0, 0);
			r->id = PQntuples(res) != 1 ? 0 :
			    podio__pg_int(res, 0, r->duplicate ? 1 : 0);
			PQclear(res);
		}
		/* NOTIFY, COMMIT */
		if (end == n && (pipe_result(s, NULL) == -1 ||
		    pipe_result(s, NULL) == -1))
			goto sync;
		if (pipe_sync(s) == -1)
			goto out;
	}
	s->in_tx = 0;
	rc = 0;
	goto out;
sync:
	(void)pipe_sync(s);
out:
	free(v);
	/* Results left unread make the connection unusable: dropped. */
	if (s->conn != NULL && (!PQexitPipelineMode(s->conn) || conn_lost(s)))
		drop_conn(s);
	return rc;
}

/* The id of the first copy of a duplicate whose statement could not see
 * it (stored by a transaction that committed while it waited): read
 * now, after the commit.  Leaves 0 when it is gone. */
static void
first_copy(struct spool_pg *s, struct spool_req *r)
{
	struct pg_params p;
	PGresult *res;

	memset(&p, 0, sizeof(p));
	podio__pg_str(&p, r->rec->type);
	podio__pg_u64(&p, r->rec->hook_id);
	podio__pg_u64(&p, r->rec->has & PODIO_HAS_ITEM_ID ?
	    r->rec->item_id : 0);
	podio__pg_u64(&p, r->rec->item_revision_id);
	if ((res = podio__pg_run(s, sql_first, &p)) == NULL)
		return;
	if (PQntuples(res) == 1)
		r->id = podio__pg_int(res, 0, 0);
	PQclear(res);
}

/*
 * See spool_int.h.  One transaction for the batch; its commit notifies
 * the processors listening on every host (NOTIFY is delivered when the
 * transaction commits, and only then).
 */
void
podio__pg_append(struct podio_spool *sp, struct spool_req *list)
{
	struct spool_pg *s = PGS(sp);
	struct spool_req *r;
	char notify[64], tag[32];

	proc_tag(tag, sizeof(tag));
	snprintf(notify, sizeof(notify), "NOTIFY " PG_CHANNEL ", '%s'", tag);
	pthread_mutex_lock(&s->db_lock);
	if (append_pipelined(s, list, notify) == -1)
		goto fail;
	for (r = list; r != NULL; r = r->next) {
		if (r->duplicate && r->id == 0)
			first_copy(s, r);
		r->result = PODIO_OK;
	}
	pthread_mutex_unlock(&s->db_lock);
	return;
fail:
	for (r = list; r != NULL; r = r->next) {
		r->result = PODIO_ERR_IO;
		r->id = 0;
		r->duplicate = 0;
		snprintf(r->msg, sizeof(r->msg), "spool %.100s: cannot store "
		    "the event: %.120s", s->base.path, s->down_msg);
	}
	podio__pg_abort(s);
	pthread_mutex_unlock(&s->db_lock);
}

/* -------------------------------------------------------------- tokens */

/* The advisory lock of cred's token requests: "token " and cred hashed
 * (FNV-1a) into a 62-bit key with the top bit of the 63 set, apart from
 * the lease keys. */
static int64_t
token_key(const char *cred)
{
	uint64_t h = 14695981039346656037ULL;
	const char *p;

	for (p = "token "; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (p = cred; *p != '\0'; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return (int64_t)((h & 0x3fffffffffffffffULL) | 0x4000000000000000ULL);
}

static enum podio_err
pg_token_get(struct podio_spool *sp, const char *cred, char **blob,
    size_t *len)
{
	static const char sql[] = "SELECT token FROM podio_tokens"
	    " WHERE cred = $1 AND token IS NOT NULL";
	struct spool_pg *s = PGS(sp);
	struct pg_params p;
	enum podio_err e = PODIO_OK;
	PGresult *r;
	int oom = 0;

	memset(&p, 0, sizeof(p));
	podio__pg_str(&p, cred);
	pthread_mutex_lock(&s->db_lock);
	if ((r = podio__pg_run(s, sql, &p)) == NULL) {
		e = podio__pg_failed(s, "read the token", PODIO_ERR_IO);
		goto out;
	}
	if (PQntuples(r) != 1)
		e = PODIO_ERR_NOT_FOUND;
	else if ((*blob = podio__pg_dup(r, 0, 0, len, &oom)) == NULL)
		e = oom ? PODIO_ERR_NOMEM : PODIO_ERR_NOT_FOUND;
	if (PQntuples(r) == 1)
		podio__wipe(PQgetvalue(r, 0, 0), (size_t)PQgetlength(r, 0, 0));
	PQclear(r);
out:
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

static enum podio_err
pg_token_put(struct podio_spool *sp, const char *cred, const char *blob,
    size_t len)
{
	static const char sql[] = "INSERT INTO podio_tokens (cred, token,"
	    " updated_at) VALUES ($1, $2, $3) ON CONFLICT (cred) DO UPDATE"
	    " SET token = excluded.token, updated_at = excluded.updated_at";
	struct spool_pg *s = PGS(sp);
	struct pg_params p;
	enum podio_err e = PODIO_OK;

	memset(&p, 0, sizeof(p));
	podio__pg_str(&p, cred);
	podio__pg_text(&p, blob, len);
	podio__pg_i64(&p, podio__spool_now(sp));
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_do(s, sql, &p, NULL) == -1)
		e = podio__pg_failed(s, "store the token", PODIO_ERR_IO);
	pthread_mutex_unlock(&s->db_lock);
	return e;
}

/* Tries cred's lock once: 1 got it, 0 held by another, -1 failed. */
static int
token_try(struct spool_pg *s, const char *cred)
{
	struct pg_params p;
	PGresult *r;
	int got;

	memset(&p, 0, sizeof(p));
	podio__pg_i64(&p, token_key(cred));
	if ((r = podio__pg_run(s, "SELECT pg_try_advisory_lock($1)",
	    &p)) == NULL)
		return -1;
	got = PQntuples(r) == 1 && PQgetvalue(r, 0, 0)[0] == 1;
	PQclear(r);
	return got;
}

/*
 * The lock is tried every 20 ms up to the timeout, letting db_lock go in
 * between (the other users of the handle go on); a session-level lock,
 * so it outlives transactions and goes with the connection.
 */
static enum podio_err
pg_token_lock(struct podio_spool *sp, const char *cred, long timeout_ms)
{
	struct spool_pg *s = PGS(sp);
	struct timespec ts = { 0, 20 * 1000 * 1000 };
	int64_t until = podio__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	enum podio_err e;
	int got;

	for (;;) {
		pthread_mutex_lock(&s->db_lock);
		got = token_try(s, cred);
		if (got == -1)
			e = podio__pg_failed(s, "lock the token", PODIO_ERR_IO);
		pthread_mutex_unlock(&s->db_lock);
		if (got == 1)
			return PODIO_OK;
		if (got == -1)
			return e;
		if (podio__now_ms() >= until)
			return PODIO_ERR_TIMEOUT;
		nanosleep(&ts, NULL);
	}
}

static void
pg_token_unlock(struct podio_spool *sp, const char *cred)
{
	struct spool_pg *s = PGS(sp);
	struct pg_params p;

	memset(&p, 0, sizeof(p));
	podio__pg_i64(&p, token_key(cred));
	pthread_mutex_lock(&s->db_lock);
	/* A lost connection let it go already. */
	if (s->conn != NULL)
		(void)podio__pg_do(s, "SELECT pg_advisory_unlock($1)", &p,
		    NULL);
	pthread_mutex_unlock(&s->db_lock);
}

/* ------------------------------------------------------------- waiting */

/*
 * See spool.h (podio_spool_wait()).  LISTEN runs once per connection;
 * the notifications of appends committed meanwhile are read off the
 * socket.
 */
static int
pg_wait(struct podio_spool *sp, int64_t timeout_ms)
{
	struct spool_pg *s = PGS(sp);
	struct pollfd pfd;
	PGnotify *n;
	char tag[32];
	int64_t end, left;
	int got = 0, fd, rc;

	proc_tag(tag, sizeof(tag));
	pthread_mutex_lock(&s->db_lock);
	if (podio__pg_ready(s) == -1)
		goto out;
	if (!s->listening) {
		if (simple(s, "LISTEN " PG_CHANNEL) == -1)
			goto out;
		s->listening = 1;
	}
	if ((fd = PQsocket(s->conn)) < 0)
		goto out;
	end = podio__now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
	for (;;) {
		if (PQconsumeInput(s->conn) == 0) {
			note_error(s, PQerrorMessage(s->conn), NULL);
			drop_conn(s);
			goto out;
		}
		/* A notification of this process's own appends (whose
		 * workers woke its processors already) is no news. */
		while ((n = PQnotifies(s->conn)) != NULL) {
			if (n->extra == NULL || strcmp(n->extra, tag) != 0)
				got = 1;
			PQfreemem(n);
		}
		if (got || (left = end - podio__now_ms()) <= 0)
			break;
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		rc = poll(&pfd, 1, left > 60000 ? 60000 : (int)left);
		if (rc < 0 && errno != EINTR)
			break;
	}
out:
	pthread_mutex_unlock(&s->db_lock);
	return got;
}

/* -------------------------------------------------------- open, close */

/* A 62-bit positive key from owner (FNV-1a). */
static int64_t
owner_key(const char *owner)
{
	uint64_t h = 14695981039346656037ULL;

	for (; *owner != '\0'; owner++) {
		h ^= (unsigned char)*owner;
		h *= 1099511628211ULL;
	}
	h &= 0x3fffffffffffffffULL;
	return h == 0 ? 1 : (int64_t)h;
}

static void
pg_close(struct podio_spool *sp)
{
	struct spool_pg *s = PGS(sp);

	if (s == NULL)
		return;
	if (s->conn != NULL)
		PQfinish(s->conn);
	podio__spool_base_end(&s->base);
	pthread_mutex_destroy(&s->db_lock);
	if (s->url != NULL) {
		explicit_bzero(s->url, strlen(s->url));
		free(s->url);
	}
	free(s);
}

static const struct spool_ops pg_ops = {
	.name = "postgresql",
	.close = pg_close,
	.append = podio__pg_append,
	.take = podio__pg_take,
	.next_due = podio__pg_next_due,
	.pending_items = podio__pg_pending_items,
	.learn_app = podio__pg_learn_app,
	.note_revisions = podio__pg_note_revisions,
	.fetched_revisions = podio__pg_fetched_revisions,
	.set_mark = podio__pg_set_mark,
	.get_mark = podio__pg_get_mark,
	.done_many = podio__pg_done_many,
	.change = podio__pg_change,
	.status = podio__pg_status,
	.list = podio__pg_list,
	.show = podio__pg_show,
	.replay = podio__pg_replay,
	.purge = podio__pg_purge,
	.forget = podio__pg_forget,
	.reclaim = podio__pg_reclaim,
	.set_pause = podio__pg_set_pause,
	.get_pause = podio__pg_get_pause,
	.record_remaining = podio__pg_record_remaining,
	.get_remaining = podio__pg_get_remaining,
	.get_outage = podio__pg_get_outage,
	.set_outage = podio__pg_set_outage,
	.claim_probe = podio__pg_claim_probe,
	.release_probe = podio__pg_release_probe,
	.end_outage = podio__pg_end_outage,
	.resume = podio__pg_resume,
	.token_get = pg_token_get,
	.token_put = pg_token_put,
	.token_lock = pg_token_lock,
	.token_unlock = pg_token_unlock,
	.tidy_oneshot = NULL,        /* the server keeps its own log */
	.wait = pg_wait,
	.set_max_pages = NULL,
};

/*
 * See spool_int.h.  The first connection is made here, so that a wrong
 * URI, password or grant is reported when the spool is opened; a
 * database that cannot be reached is too (the caller retries, as it
 * would for a spool directory it cannot open).
 */
enum podio_err
podio__pg_open(const char *url, struct podio_spool **out, char *err,
    size_t errlen)
{
	struct spool_pg *s;
	int rc;

	if (strlen(url) > PG_URL_MAX) {
		podio__spool_set_err(err, errlen, "spool: the connection URI "
		    "is too long");
		return PODIO_ERR_INVALID;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	pthread_mutex_init(&s->db_lock, NULL);
	podio__spool_base_init(&s->base, &pg_ops);
	s->lock_key = owner_key(s->base.owner);
	s->backoff_ms = PG_BACKOFF_FIRST_MS;
	if ((s->url = podio__strdup(url)) == NULL ||
	    (s->base.path = podio_spool_mask(url)) == NULL)
		goto nomem;
	pthread_mutex_lock(&s->db_lock);
	rc = connect_db(s);
	pthread_mutex_unlock(&s->db_lock);
	if (rc == 1) {
		podio__spool_set_err(err, errlen, "spool %s: made by a newer "
		    "version of podio-webhook (schema newer than %d)",
		    s->base.path, PG_SCHEMA_VERSION);
		pg_close(&s->base);
		return PODIO_ERR_IO;
	}
	if (rc == -1) {
		podio__spool_set_err(err, errlen, "spool %s: %s",
		    s->base.path, s->down_msg);
		pg_close(&s->base);
		return PODIO_ERR_IO;
	}
	*out = &s->base;
	return PODIO_OK;
nomem:
	podio__spool_set_err(err, errlen, "spool: out of memory");
	if (s != NULL)
		pg_close(&s->base);
	return PODIO_ERR_NOMEM;
}

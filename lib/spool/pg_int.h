/*
 * pg_int.h: what the files of the PostgreSQL backend of the spool share
 * (pg.c: connecting, the schema, transactions, statements, decoding rows
 * and appending; pg_queue.c: taking and the outcomes of taken events;
 * pg_admin.c: the spool commands, giving back leases and the rate-limit
 * state).  The backend's interface is struct spool_ops (spool_int.h).
 *
 * One connection per handle, used under db_lock.  Every statement is
 * prepared once per connection (podio__pg_run()); parameters go as text
 * (numbers) or as raw bytes (strings); results come back binary.  Ids
 * (hook, item, revision, app) are stored as bigint, the two's complement
 * of their 64-bit value: only equality matters.  Times are bigint
 * milliseconds, as on SQLite.
 *
 * In flight, as on SQLite, is a pending event whose lease_until is in the
 * future; lease_key is its owner's session-level advisory lock, held by
 * the owner's connection as long as it lives, so a lease whose key no
 * session holds is free at once (podio__pg_reclaim()).
 */
#ifndef PODIO_SPOOL_PG_H
#define PODIO_SPOOL_PG_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <libpq-fe.h>

#include "spool.h"
#include "spool_int.h"

/* The schema version this build writes and reads. */
#define PG_SCHEMA_VERSION 1

/* Statements prepared per connection, at most. */
#define PG_STMTS_MAX 96

/* A handle of this backend: base.path is the URI with its password
 * masked. */
struct spool_pg {
	struct podio_spool base;
	char *url;                  /* as configured: never printed */
	int64_t lock_key;           /* this handle's advisory lock, the
	                               lease_key of what it takes */

	pthread_mutex_t db_lock;    /* guards the fields below */
	PGconn *conn;               /* NULL while down */
	int64_t retry_at_ms;        /* down: no new try before (monotonic) */
	int64_t backoff_ms;         /* the wait after the next failure */
	char down_msg[256];         /* the last failure's message */
	char sqlstate[6];           /* and its SQLSTATE, or "" */
	int down_logged;            /* the loss of the connection is
	                               logged (once until it is back) */
	int in_tx;                  /* a transaction is open */
	int reconnecting;           /* connecting again after a loss */
	int listening;              /* LISTEN ran on this connection */
	int64_t reclaim_at_ms;      /* no reclaim by a take before */
	const char *stmts[PG_STMTS_MAX]; /* the SQL prepared as "sN" */
	int nstmts;
};

/* The handle of this backend behind a spool handle. */
#define PGS(p) ((struct spool_pg *)(p))

/* The channel appends notify and podio_spool_wait() listens on. */
#define PG_CHANNEL "podio_spool"

/* The types of the events that need their item fetched: a take with
 * no_fetch (the API budget holds the fetches) passes them over.  The
 * partial index podio_events_nofetch (pg.c) names the same list, word
 * for word, so that those takes can use it. */
#define PG_FETCH_TYPES "('item.create', 'item.update')"

/* The first key of the transaction advisory locks of podio_items's
 * rows (pg.c), as SQL ("PoDM"): two-key locks, which never meet the
 * one-key locks of the leases, and a class of their own, which never
 * meets the takes' (pg_queue.c). */
#define PG_ITEMS_LOCK_CLASS_SQL "1349477453"

/* Parameters of one statement: numbers as text, strings as raw bytes. */
#define PG_PARAMS_MAX 12
struct pg_params {
	int n;
	const char *v[PG_PARAMS_MAX];
	int len[PG_PARAMS_MAX];
	int fmt[PG_PARAMS_MAX];
	char num[PG_PARAMS_MAX][24];
};
void podio__pg_i64(struct pg_params *p, int64_t v);
/* A 64-bit id as its two's complement bigint. */
void podio__pg_u64(struct pg_params *p, uint64_t v);
/* text (len bytes; NULL binds NULL); borrowed until the statement ran. */
void podio__pg_text(struct pg_params *p, const char *text, size_t len);
/* NUL-terminated text, or NULL. */
void podio__pg_str(struct pg_params *p, const char *text);
void podio__pg_null(struct pg_params *p);

/*
 * Makes sure the handle is connected, under db_lock: connects again when
 * the connection was lost, no sooner than the backoff allows (1 s, then
 * doubling to 30 s).  Returns 0, or -1 with the reason in s->down_msg
 * (logged once per outage by the caller's podio__pg_failed()).
 */
int podio__pg_ready(struct spool_pg *s);

/*
 * Transactions, under db_lock: begin connects when needed; begin_lazy
 * is for the processors' bookkeeping, committed without waiting for the
 * flush (synchronous_commit off for that transaction: a database that
 * crashes may lose the last of it, and an event then runs again, as on
 * SQLite); appends and the commands use begin, durable when commit
 * returns.  abort rolls back whatever is open.  Return 0 or -1.
 */
int podio__pg_begin(struct spool_pg *s);
int podio__pg_begin_lazy(struct spool_pg *s);
int podio__pg_commit(struct spool_pg *s);
void podio__pg_abort(struct spool_pg *s);

/*
 * Runs sql (its text identifies the prepared statement: pass the same
 * static string each time) with p (may be NULL) on the connection, under
 * db_lock, results binary.  Returns the result when it is
 * PGRES_COMMAND_OK or PGRES_TUPLES_OK (the caller PQclear()s it), else
 * NULL with the error kept for podio__pg_failed() (and the connection
 * marked down when it was lost).
 */
PGresult *podio__pg_run(struct spool_pg *s, const char *sql,
    const struct pg_params *p);
/* podio__pg_run() for a statement whose rows are not needed: 0 or -1;
 * *changed (may be NULL) receives the rows it changed. */
int podio__pg_do(struct spool_pg *s, const char *sql,
    const struct pg_params *p, size_t *changed);

/* The SQLSTATE of the last failed statement ("" when none). */
const char *podio__pg_sqlstate(const struct spool_pg *s);

/*
 * Ends a failed operation under db_lock: logs what failed (what names
 * the operation) with the database's message, rolls back, and returns
 * e when it is not PODIO_OK, else PODIO_ERR_IO.
 */
enum podio_err podio__pg_failed(struct spool_pg *s, const char *what,
    enum podio_err e);

/* Binary result values: a bigint, integer or smallint (0 when NULL);
 * whether the value is NULL; a copy of a text or bytea value (NULL when
 * NULL; *len may be NULL), -1 in *oom on out of memory. */
int64_t podio__pg_int(const PGresult *r, int row, int col);
int podio__pg_isnull(const PGresult *r, int row, int col);
/* "{id,id,...}" of the n numbers, in a new string the caller frees: an
 * array parameter bound as text (ids of items, events, revisions).  NULL
 * on out of memory. */
char *podio__pg_id_array(const int64_t *ids, size_t n);
char *podio__pg_dup(const PGresult *r, int row, int col, size_t *len,
    int *oom);

/* The columns read into a struct podio_spool_event, event last. */
#define PG_COLS "id, type, hook_id, item_id, item_revision_id, app_id," \
	" received_at, state, attempts, failures, leases, next_at," \
	" lease_until, last_error, failed_at, dead_at, progress"
/*
 * Reads row `row` of r (PG_COLS, then the event or NULL) into ev.
 * Returns 0 when the record is sound; 1 when it cannot be decoded (a bad
 * type or state, an event that is not one JSON value), with the reason
 * in why (ev filled as far as possible, state PODIO_SPOOL_BAD); -1 on out
 * of memory (ev cleared).  with_body: the event is read and checked.
 */
int podio__pg_read_row(const PGresult *r, int row, int64_t now,
    int with_body, struct podio_spool_event *ev, char *why, size_t whylen);

/* Sets event id aside as bad with reason why, inside a transaction.
 * Returns 0 or -1. */
int podio__pg_set_bad(struct spool_pg *s, int64_t id, const char *why,
    int64_t now);

/* The operations, in the files of this backend. */
void podio__pg_append(struct podio_spool *sp, struct spool_req *list);
enum podio_err podio__pg_take(struct podio_spool *sp,
    const struct spool_take *t, size_t max, struct podio_spool_batch **out,
    size_t *n);
enum podio_err podio__pg_next_due(struct podio_spool *sp,
    const struct spool_take *t, int64_t *when_ms);
enum podio_err podio__pg_pending_items(struct podio_spool *sp,
    uint64_t app_id, size_t max, struct podio_spool_item **items,
    size_t *n);
enum podio_err podio__pg_learn_app(struct podio_spool *sp,
    uint64_t hook_id, uint64_t app_id);
enum podio_err podio__pg_note_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, const int64_t *revisions, size_t n);
enum podio_err podio__pg_fetched_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, size_t n, int64_t *revisions);
enum podio_err podio__pg_set_mark(struct podio_spool *sp,
    const char *name, int64_t value);
enum podio_err podio__pg_get_mark(struct podio_spool *sp,
    const char *name, int64_t *value);
enum podio_err podio__pg_done_many(struct podio_spool *sp,
    const int64_t *ids, size_t n);
enum podio_err podio__pg_change(struct podio_spool *sp, int64_t id,
    const struct spool_change *c, long *attempts);
enum podio_err podio__pg_status(struct podio_spool *sp,
    struct podio_spool_status *out);
enum podio_err podio__pg_list(struct podio_spool *sp, unsigned mask,
    int64_t after_id, size_t max, struct podio_spool_event **events,
    size_t *n);
enum podio_err podio__pg_show(struct podio_spool *sp, int64_t id,
    struct podio_spool_event **event);
enum podio_err podio__pg_replay(struct podio_spool *sp, int64_t id,
    size_t *n);
enum podio_err podio__pg_purge(struct podio_spool *sp, unsigned mask,
    int64_t older_than_ms, size_t *n);
enum podio_err podio__pg_forget(struct podio_spool *sp,
    int64_t older_than_ms, size_t *n);
/* Gives back the leases whose key no session holds. */
enum podio_err podio__pg_reclaim(struct podio_spool *sp, size_t *n);
/* The same inside a take's transaction, at most once a second per
 * handle: 0 or -1. */
int podio__pg_reclaim_due(struct spool_pg *s, int64_t now);
enum podio_err podio__pg_set_pause(struct podio_spool *sp,
    const char *cred, const char *rate_class, int64_t until_ms);
enum podio_err podio__pg_get_pause(struct podio_spool *sp,
    const char *cred, const char *rate_class, int64_t *until_ms);
enum podio_err podio__pg_record_remaining(struct podio_spool *sp,
    const char *cred, const char *rate_class, long remaining, long limit);
enum podio_err podio__pg_get_remaining(struct podio_spool *sp,
    const char *cred, const char *rate_class, long *remaining, long *limit,
    int64_t *at_ms);
enum podio_err podio__pg_get_outage(struct podio_spool *sp,
    const char *cred, struct podio_spool_outage *o);
enum podio_err podio__pg_set_outage(struct podio_spool *sp,
    const char *cred, int64_t next_probe_ms, int64_t interval_ms);
enum podio_err podio__pg_claim_probe(struct podio_spool *sp,
    const char *cred, int64_t until_ms, int *claimed);
enum podio_err podio__pg_release_probe(struct podio_spool *sp,
    const char *cred, int64_t until_ms);
enum podio_err podio__pg_end_outage(struct podio_spool *sp,
    const char *cred, int *ended);
enum podio_err podio__pg_resume(struct podio_spool *sp,
    struct podio_spool_pause **out, size_t *n);

#endif

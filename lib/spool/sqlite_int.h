/*
 * sqlite_int.h: what the files of the SQLite backend of the spool share
 * (sqlite.c: opening, the transactions and appending; sqlite_queue.c:
 * decoding, taking and the outcomes of taken events; sqlite_admin.c: the
 * spool commands, giving back leases and the rate-limit state).  The
 * backend's interface is struct spool_ops (spool_int.h).
 */
#ifndef PODIO_SPOOL_SQLITE_H
#define PODIO_SPOOL_SQLITE_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <sqlite3.h>

#include "spool.h"
#include "spool_int.h"

/* A prepared statement of the handle's cache (see podio__sqlite_prep()). */
struct spool_stmt {
	char *sql;
	sqlite3_stmt *st;
	int in_use;
};

/* A processor's write transaction makes way for a waiting append of its
 * process once it has run this long (ns); see podio__sqlite_yield_due(). */
#define SPOOL_YIELD_AFTER_NS 300000

/* A handle of this backend: path is DIR/spool.db. */
struct spool_sqlite {
	struct podio_spool base;
	char *dir;
	pthread_mutex_t db_lock;    /* guards db and the 5 below */
	sqlite3 *db;
	int swept;                  /* the bad-record sweep ran */
	int lock_fd;                /* DIR/spool.lock, or -1 */
	int locked;                 /* this handle holds its flock */
	int64_t lazy_ns;            /* when this handle's lazy transaction
	                               began, or 0 */
	_Atomic int *appends_waiting; /* append leaders of this process
	                               waiting for the write lock of this
	                               spool, on any handle (see
	                               podio__sqlite_yield_due()) */
	_Atomic int own_waiting;    /* the count when no shared one */
	int appending;              /* the commit under way is appends' */
	int sync_full;              /* synchronous is FULL (1), NORMAL (0)
	                               or not set yet (-1) */
	int wal_pages;              /* WAL size after the last commit */
	int ckpt_pages;             /* WAL size at this handle's last
	                               checkpoint */
	struct spool_stmt *stmts;   /* prepared statements kept for reuse */
	size_t nstmts;
	int intake;                 /* a handle of DIR/intake.db */
	/* A spool's handle of its intake, opened when DIR/intake.db
	 * exists (see podio__sqlite_import()), under db_lock: */
	struct spool_sqlite *in;
	dev_t in_dev;               /* the file it opened */
	ino_t in_ino;
	int64_t in_gen;             /* the intake's generation */
	int64_t in_mark;            /* the last intake event moved, or -1
	                               (not known yet) */
	int64_t in_warned_ms;       /* when it last warned of the intake */
};

/* The handle of this backend behind a spool handle. */
#define SQ(p) ((struct spool_sqlite *)(p))

/* The columns read into a struct podio_spool_event, event JSON last. */
#define SPOOL_COLS "id, type, hook_id, item_id, item_revision_id, app_id, " \
	"received_at, state, attempts, failures, leases, next_at, " \
	"lease_until, last_error, failed_at, dead_at, progress"
enum {
	C_ID, C_TYPE, C_HOOK, C_ITEM, C_REV, C_APP, C_RECEIVED, C_STATE,
	C_ATTEMPTS, C_FAILURES, C_LEASES, C_NEXT, C_LEASE, C_ERROR,
	C_FAILED, C_DEAD, C_PROGRESS, C_EVENT
};

/* Maps an SQLite result code to the library's errors: everything that is
 * not memory is the store failing (disk full, I/O, read-only, locked too
 * long, corrupt), which the handler answers with 503. */
enum podio_err podio__sqlite_map_rc(int rc);

/*
 * Write transactions, always under db_lock: begin takes the cross-process
 * queue lock and SQLite's write lock (BEGIN IMMEDIATE); commit keeps the
 * transaction open on failure, for abort, which rolls back whatever is
 * open and drops the locks.  Both return SQLite codes.
 */
int podio__sqlite_begin(struct spool_sqlite *s);
/*
 * podio__sqlite_begin() for the processors' bookkeeping (taking, leases,
 * retries, removing what ran, the API budget): its commit is not synced
 * at once (SQLite's synchronous=NORMAL), only with the next synced commit
 * of any handle or the next checkpoint.  A process killed at any moment
 * loses none of it (the kernel keeps what was written); a power loss may
 * lose the last of it, and an event may then run again, as if it had
 * been in flight.  Appends and the commands' changes use
 * podio__sqlite_begin(): durable when they return.
 */
int podio__sqlite_begin_lazy(struct spool_sqlite *s);
int podio__sqlite_commit(struct spool_sqlite *s);
void podio__sqlite_abort(struct spool_sqlite *s);
/*
 * Inside a processor's write transaction (podio__sqlite_begin_lazy()),
 * between two changes: whether to commit now and begin anew, because an
 * append of this process waits for the spool's write lock (on any
 * handle) and this transaction has run for SPOOL_YIELD_AFTER_NS.  The
 * appends of `serve`, whose processors have handles of their own, then
 * wait a fraction of a millisecond instead of the whole of a long
 * removal or take.  (Appends of other processes queue on the lock file,
 * which tells nobody they wait; they get in between chunks,
 * SPOOL_WRITE_CHUNK and SPOOL_CLAIM_CHUNK.)
 */
int podio__sqlite_yield_due(struct spool_sqlite *s);
/* After a commit that podio__sqlite_yield_due() asked for, with db_lock
 * held: lets db_lock go and gives the waiting appends a moment (at most
 * 2 ms) to take the write lock, then takes db_lock again.  The
 * caller holds no prepared statement and verifies anew what it read
 * before. */
void podio__sqlite_yield_wait(struct spool_sqlite *s);

/* Ends a failed operation under db_lock: an SQLite failure rc is logged
 * (what names the operation) and mapped; other failures keep e.  Rolls
 * back.  Returns the error. */
enum podio_err podio__sqlite_failed(struct spool_sqlite *s, const char *what,
    int rc, enum podio_err e);

/* sqlite3_exec on the handle's connection. */
int podio__sqlite_exec(struct spool_sqlite *s, const char *sql);
/*
 * A prepared statement for sql, under db_lock: the handle keeps the
 * statements it made (by their text) and hands one out again instead of
 * parsing its SQL each time.  Give it back with podio__sqlite_fin(),
 * never sqlite3_finalize().  Returns an SQLite code.
 */
int podio__sqlite_prep(struct spool_sqlite *s, const char *sql,
    sqlite3_stmt **st);
/* Gives back st (may be NULL): reset with no values bound when kept,
 * else finalized. */
void podio__sqlite_fin(struct spool_sqlite *s, sqlite3_stmt *st);

/* Binds a 64-bit id (kept as its two's complement bit pattern: only
 * equality matters) or a text (NULL binds NULL; the text is borrowed
 * until the statement is reset). */
int podio__sqlite_bind_u64(sqlite3_stmt *st, int i, uint64_t v);
int podio__sqlite_bind_text(sqlite3_stmt *st, int i, const char *text);

/* Whether column i of the current row has SQLite type type. */
int podio__sqlite_col_is(sqlite3_stmt *st, int i, int type);

/*
 * Reads the current row of st (SPOOL_COLS, then the event JSON or NULL)
 * into ev, as far as it can be read.  Returns 0 when the record is sound;
 * 1 when it cannot be decoded, with the reason in why (ev filled as far as
 * possible, state PODIO_SPOOL_BAD); -1 on out of memory (ev cleared).
 * with_body: the event JSON is read and checked.
 */
int podio__sqlite_read_row(sqlite3_stmt *st, int64_t now, int with_body,
    struct podio_spool_event *ev, char *why, size_t whylen);

/* Sets aside every record whose state or column types are unusable, once
 * per handle, under db_lock.  Returns an SQLite code. */
int podio__sqlite_sweep(struct spool_sqlite *s);

/*
 * Moves the events of the spool's intake (podio_spool_open_intake()), if
 * it has any, into the spool, under db_lock and outside a transaction:
 * in their order, each as an append (dedup included), with the last one
 * moved kept as a mark of the intake's generation in the same synced
 * commit; only then are they deleted from the intake.  So a process
 * killed in between moves nothing twice, and an intake made anew (a new
 * generation) starts from its first event.  A failure is logged; the
 * events wait in the intake for the next try.  Returns an SQLite code.
 */
int podio__sqlite_import(struct spool_sqlite *s);

/* The operations, in the files of this backend. */
void podio__sqlite_append(struct podio_spool *sp, struct spool_req *list);
enum podio_err podio__sqlite_take(struct podio_spool *sp,
    const struct spool_take *t, size_t max, struct podio_spool_batch **out,
    size_t *n);
enum podio_err podio__sqlite_next_due(struct podio_spool *sp,
    const struct spool_take *t, int64_t *when_ms);
enum podio_err podio__sqlite_pending_items(struct podio_spool *sp,
    uint64_t app_id, size_t max, struct podio_spool_item **items,
    size_t *n);
enum podio_err podio__sqlite_learn_app(struct podio_spool *sp,
    uint64_t hook_id, uint64_t app_id);
enum podio_err podio__sqlite_note_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, const int64_t *revisions, size_t n);
enum podio_err podio__sqlite_fetched_revisions(struct podio_spool *sp,
    const uint64_t *item_ids, size_t n, int64_t *revisions);
enum podio_err podio__sqlite_set_mark(struct podio_spool *sp,
    const char *name, int64_t value);
enum podio_err podio__sqlite_get_mark(struct podio_spool *sp,
    const char *name, int64_t *value);
enum podio_err podio__sqlite_done_many(struct podio_spool *sp,
    const int64_t *ids, size_t n);
enum podio_err podio__sqlite_change(struct podio_spool *sp, int64_t id,
    const struct spool_change *c, long *attempts);
enum podio_err podio__sqlite_status(struct podio_spool *sp,
    struct podio_spool_status *out);
enum podio_err podio__sqlite_list(struct podio_spool *sp, unsigned mask,
    int64_t after_id, size_t max, struct podio_spool_event **events,
    size_t *n);
enum podio_err podio__sqlite_show(struct podio_spool *sp, int64_t id,
    struct podio_spool_event **event);
enum podio_err podio__sqlite_replay(struct podio_spool *sp, int64_t id,
    size_t *n);
enum podio_err podio__sqlite_purge(struct podio_spool *sp, unsigned mask,
    int64_t older_than_ms, size_t *n);
enum podio_err podio__sqlite_forget(struct podio_spool *sp,
    int64_t older_than_ms, size_t *n);
enum podio_err podio__sqlite_reclaim(struct podio_spool *sp, size_t *n);
enum podio_err podio__sqlite_set_pause(struct podio_spool *sp,
    const char *cred, const char *rate_class, int64_t until_ms);
enum podio_err podio__sqlite_get_pause(struct podio_spool *sp,
    const char *cred, const char *rate_class, int64_t *until_ms);
enum podio_err podio__sqlite_record_remaining(struct podio_spool *sp,
    const char *cred, const char *rate_class, long remaining, long limit);
enum podio_err podio__sqlite_get_remaining(struct podio_spool *sp,
    const char *cred, const char *rate_class, long *remaining, long *limit,
    int64_t *at_ms);
enum podio_err podio__sqlite_get_outage(struct podio_spool *sp,
    const char *cred, struct podio_spool_outage *o);
enum podio_err podio__sqlite_set_outage(struct podio_spool *sp,
    const char *cred, int64_t next_probe_ms, int64_t interval_ms);
enum podio_err podio__sqlite_claim_probe(struct podio_spool *sp,
    const char *cred, int64_t until_ms, int *claimed);
enum podio_err podio__sqlite_release_probe(struct podio_spool *sp,
    const char *cred, int64_t until_ms);
enum podio_err podio__sqlite_end_outage(struct podio_spool *sp,
    const char *cred, int *ended);
enum podio_err podio__sqlite_resume(struct podio_spool *sp,
    struct podio_spool_pause **out, size_t *n);

#endif

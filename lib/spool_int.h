/*
 * spool_int.h: what the files of the spool module share (lib/spool.c:
 * opening and the transactions; lib/spool_append.c: appending with group
 * commit; lib/spool_queue.c: decoding, taking and the outcomes of taken
 * events; lib/spool_admin.c: the spool commands, giving back leases and
 * the rate-limit state).  Internal to those files; the module's interface
 * is spool.h.
 */
#ifndef PODIO_SPOOL_INT_H
#define PODIO_SPOOL_INT_H

#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "spool.h"

/* Defaults of struct podio_spool_take_opts. */
#define SPOOL_LEASE_MS (5 * 60 * 1000)
#define SPOOL_MAX_EVENTS 100

struct spool_req;

/* A prepared statement of the handle's cache (see podio__spool_prep()). */
struct spool_stmt {
	char *sql;
	sqlite3_stmt *st;
	int in_use;
};

/* Room for a lease owner, "PID-RANDOM-PIDNS", and its NUL. */
#define SPOOL_OWNER_MAX 96
/* A processor's write transaction makes way for a waiting append of its
 * process once it has run this long (ns); see podio__spool_yield_due(). */
#define SPOOL_YIELD_AFTER_NS 300000

struct podio_spool {
	char *dir;
	char *path;
	char owner[SPOOL_OWNER_MAX]; /* "PID-RANDOM-PIDNS": whose leases */
	int64_t skew_ms;            /* tests only */

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
	                               podio__spool_yield_due()) */
	_Atomic int own_waiting;    /* the count when no shared one */
	int appending;              /* the commit under way is appends' */
	int sync_full;              /* synchronous is FULL (1), NORMAL (0)
	                               or not set yet (-1) */
	int wal_pages;              /* WAL size after the last commit */
	int ckpt_pages;             /* WAL size at this handle's last
	                               checkpoint */
	struct spool_stmt *stmts;   /* prepared statements kept for reuse */
	size_t nstmts;

	pthread_mutex_t q_lock;     /* guards the fields below */
	struct spool_req *q_head;
	struct spool_req **q_tail;
	int committing;             /* a leader is writing a batch */
	struct podio_spool_stats stats;
};

/*
 * One append waiting for its commit.  A waiting append lives on its
 * thread's stack, and the thread sleeps on wake until the leader of its
 * batch posts it, either with done set (result, id, duplicate and msg
 * filled) or with lead set (it leads the next batch); after the post
 * nobody else touches it.  An append with done_fn (see
 * podio_spool_append_delivery_async()) is on the heap, owned by the
 * queue: the leader of its batch calls done_fn and frees it.
 */
struct spool_req {
	const struct podio_spool_record *rec;
	int64_t received_ms;
	int has_key;                /* dedup key present */
	enum podio_err result;
	int64_t id;
	int duplicate;
	int done;
	int lead;
	sem_t wake;
	char msg[256];
	podio_spool_done_fn done_fn;
	void *done_arg;
	struct podio_spool_record own;  /* the record of a heap append */
	char *own_json;                 /* its event JSON, owned */
	struct spool_req *next;
};

/* The columns read into a struct podio_spool_event, event JSON last. */
#define SPOOL_COLS "id, type, hook_id, item_id, item_revision_id, app_id, " \
	"received_at, state, attempts, failures, leases, next_at, " \
	"lease_until, last_error, failed_at, dead_at, progress"
enum {
	C_ID, C_TYPE, C_HOOK, C_ITEM, C_REV, C_APP, C_RECEIVED, C_STATE,
	C_ATTEMPTS, C_FAILURES, C_LEASES, C_NEXT, C_LEASE, C_ERROR,
	C_FAILED, C_DEAD, C_PROGRESS, C_EVENT
};

/* Writes the message to err (size errlen; either may be 0/NULL). */
void podio__spool_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Maps an SQLite result code to the library's errors: everything that is
 * not memory is the store failing (disk full, I/O, read-only, locked too
 * long, corrupt), which the handler answers with 503. */
enum podio_err podio__spool_map_rc(int rc);

/* The handle's clock: wall-clock ms plus the test skew. */
int64_t podio__spool_now(const struct podio_spool *s);

/*
 * Write transactions, always under db_lock: begin takes the cross-process
 * queue lock and SQLite's write lock (BEGIN IMMEDIATE); commit keeps the
 * transaction open on failure, for abort, which rolls back whatever is
 * open and drops the locks.  Both return SQLite codes.
 */
int podio__spool_begin(struct podio_spool *s);
/*
 * podio__spool_begin() for the processors' bookkeeping (taking, leases,
 * retries, removing what ran, the API budget): its commit is not synced
 * at once (SQLite's synchronous=NORMAL), only with the next synced commit
 * of any handle or the next checkpoint.  A process killed at any moment
 * loses none of it (the kernel keeps what was written); a power loss may
 * lose the last of it, and an event may then run again, as if it had
 * been in flight.  Appends and the commands' changes use
 * podio__spool_begin(): durable when they return.
 */
int podio__spool_begin_lazy(struct podio_spool *s);
int podio__spool_commit(struct podio_spool *s);
void podio__spool_abort(struct podio_spool *s);
/*
 * Inside a processor's write transaction (podio__spool_begin_lazy()),
 * between two changes: whether to commit now and begin anew, because an
 * append of this process waits for the spool's write lock (on any
 * handle) and this transaction has run for SPOOL_YIELD_AFTER_NS.  The
 * appends of `serve`, whose processors have handles of their own, then
 * wait a fraction of a millisecond instead of the whole of a long
 * removal or take.  (Appends of other processes queue on the lock file,
 * which tells nobody they wait; they get in between chunks,
 * SPOOL_WRITE_CHUNK and SPOOL_CLAIM_CHUNK.)
 */
int podio__spool_yield_due(struct podio_spool *s);
/* After a commit that podio__spool_yield_due() asked for, with db_lock
 * held: lets db_lock go and gives the waiting appends a moment (at most
 * 2 ms) to take the write lock, then takes db_lock again.  The
 * caller holds no prepared statement and verifies anew what it read
 * before. */
void podio__spool_yield_wait(struct podio_spool *s);

/* Ends a failed operation under db_lock: an SQLite failure rc is logged
 * (what names the operation) and mapped; other failures keep e.  Rolls
 * back.  Returns the error. */
enum podio_err podio__spool_failed(struct podio_spool *s, const char *what,
    int rc, enum podio_err e);

/* sqlite3_exec on the handle's connection. */
int podio__spool_exec(struct podio_spool *s, const char *sql);
/*
 * A prepared statement for sql, under db_lock: the handle keeps the
 * statements it made (by their text) and hands one out again instead of
 * parsing its SQL each time.  Give it back with podio__spool_fin(),
 * never sqlite3_finalize().  Returns an SQLite code.
 */
int podio__spool_prep(struct podio_spool *s, const char *sql,
    sqlite3_stmt **st);
/* Gives back st (may be NULL): reset with no values bound when kept,
 * else finalized. */
void podio__spool_fin(struct podio_spool *s, sqlite3_stmt *st);

/* Binds a 64-bit id (kept as its two's complement bit pattern: only
 * equality matters) or a text (NULL binds NULL; the text is borrowed
 * until the statement is reset). */
int podio__spool_bind_u64(sqlite3_stmt *st, int i, uint64_t v);
int podio__spool_bind_text(sqlite3_stmt *st, int i, const char *text);

/* Whether t (len bytes) is an event type: [a-z0-9_.-]{1,64}. */
int podio__spool_valid_type(const char *t, size_t len);

/* Whether column i of the current row has SQLite type type. */
int podio__spool_col_is(sqlite3_stmt *st, int i, int type);

/*
 * Reads the current row of st (SPOOL_COLS, then the event JSON or NULL)
 * into ev, as far as it can be read.  Returns 0 when the record is sound;
 * 1 when it cannot be decoded, with the reason in why (ev filled as far as
 * possible, state PODIO_SPOOL_BAD); -1 on out of memory (ev cleared).
 * with_body: the event JSON is read and checked.
 */
int podio__spool_read_row(sqlite3_stmt *st, int64_t now, int with_body,
    struct podio_spool_event *ev, char *why, size_t whylen);

/* Frees the strings of ev and zeroes it. */
void podio__spool_event_clear(struct podio_spool_event *ev);

/* The inode of this process's pid namespace (0 when unknown): a lease
 * owner's PID means something here only in the same namespace. */
unsigned long long podio__spool_pidns(void);

/* Sets aside every record whose state or column types are unusable, once
 * per handle, under db_lock.  Returns an SQLite code. */
int podio__spool_sweep(struct podio_spool *s);

#endif

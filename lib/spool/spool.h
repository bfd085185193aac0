/*
 * spool.h: the durable event spool.  Every accepted delivery (except
 * hook.verify) is stored here before its 200 goes out; workers take
 * events from here, run them, and remove them, retry them later or set
 * them aside as dead letters.  The first backend is an SQLite database
 * (DIR/spool.db) in WAL mode with synchronous=FULL, so every commit is on
 * stable storage before it returns, and any number of processes and
 * threads may use one spool at once.  The same database holds the
 * rate-limit state that every process using a credential must share.
 *
 * The first part is public (it moves into podio.h as is); the second part
 * is internal to the library and its tests.
 *
 * Times are wall-clock milliseconds since the epoch (every process sharing
 * the spool must agree on them).  Event ids are positive, grow in arrival
 * order and are never reused.
 */
#ifndef PODIO_SPOOL_H
#define PODIO_SPOOL_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/* ----------------------------------------------------------- public: spool */

/*
 * An open spool: one SQLite connection and the group-commit queue of one
 * process.  Thread-safe: the threads of a process that append share one
 * handle, which is what lets concurrent appends share commits.  Workers
 * are best given a handle of their own: their writes also copy the log
 * into the database now and then (a checkpoint), which then never holds
 * up an append.  A handle must not be used in a child after fork(); the
 * child opens its own.
 */
struct podio_spool;

/* The largest event JSON stored, in bytes. */
#define PODIO_SPOOL_MAX_EVENT (1024 * 1024)
/* The longest reason, progress text, credential key or rate class kept;
 * longer reasons are cut, longer progress texts and keys refused. */
#define PODIO_SPOOL_MAX_REASON   1024
#define PODIO_SPOOL_MAX_PROGRESS (64 * 1024)
#define PODIO_SPOOL_MAX_KEY      256

/*
 * Opens the spool at where: a PostgreSQL connection URI
 * (postgresql://USER@HOST:PORT/DB?..., see podio_spool_is_url()), whose
 * database receives the spool's tables on first use (schema version
 * checked, several hosts may start at once); or a directory dir.  For a
 * directory: creates dir (mode 0700, parents too), the
 * database DIR/spool.db (mode 0600, with its -wal and -shm files) and the
 * lock file DIR/spool.lock when missing, and giving an empty database the
 * current schema.  Records whose state or columns cannot be decoded are
 * set aside (state "bad", with a warning naming each id) the first time
 * the handle takes events or reads the status or a list.  On success
 * *out receives the handle, which the caller closes with
 * podio_spool_close().  Fails with PODIO_ERR_IO (the directory or the
 * database cannot be created, opened or read, a schema from a newer
 * version), PODIO_ERR_CONFIG (a directory podio_spool_check() refuses),
 * PODIO_ERR_INVALID (no dir) or PODIO_ERR_NOMEM, with a
 * one-line message in err (size errlen; err may be NULL).
 */
/*
 * Checks that an existing spool directory dir may be trusted, as
 * podio_spool_open() does before it opens anything: a directory owned by
 * the user running the program, not writable by group or others, and the
 * spool's files in it regular files of that user (not symbolic links).
 * PODIO_OK when it passes, or when dir is NULL, empty, does not exist
 * yet (podio_spool_open() creates it so) or is not a directory (which
 * podio_spool_open() fails on); PODIO_ERR_CONFIG with a message in err
 * that says what to fix.
 */
enum podio_err podio_spool_check(const char *dir, char *err, size_t errlen);

enum podio_err podio_spool_open(const char *where, struct podio_spool **out,
    char *err, size_t errlen);

/*
 * A handle for a process that only appends, once, and exits: a CGI run.
 * For a spool directory it opens the spool's intake (DIR/intake.db, one
 * table and nothing else), which costs a small part of opening the spool:
 * an append there is as durable as one in the spool, and every process
 * that opens the spool itself moves the intake's events into it, in
 * their order, before it takes events, looks for the next due one, or
 * reads the status, a list or an event (dedup then applies as for an
 * append).  Such a handle supports podio_spool_append() and its kin,
 * podio_spool_tidy_oneshot() and podio_spool_close() only.  For a
 * PostgreSQL URI it is podio_spool_open().  Errors as there.
 */
enum podio_err podio_spool_open_intake(const char *where,
    struct podio_spool **out, char *err, size_t errlen);

/* Whether where is a PostgreSQL connection URI ("postgresql://" or
 * "postgres://") rather than a directory. */
int podio_spool_is_url(const char *where);

/* A copy of where fit to print (the caller frees it): a URI's password,
 * in its user part or a password= parameter, shows as "***".  NULL on
 * out of memory. */
char *podio_spool_mask(const char *where);

/* Closes the handle.  No call may be running on it.  Accepts NULL. */
void podio_spool_close(struct podio_spool *spool);

/* What podio_spool_append() stores.  Every pointer is borrowed. */
struct podio_spool_record {
	const char *type;          /* event type, [a-z0-9_.-]{1,64} */
	unsigned has;              /* PODIO_HAS_* bits of the ids present;
	                              PODIO_HAS_HOOK_ID is required */
	uint64_t hook_id;
	uint64_t item_id;
	uint64_t item_revision_id;
	uint64_t app_id;
	const char *event_json;    /* the event without "item" (see
	                              podio_event_json()): one JSON value */
	size_t event_len;
	int64_t received_ms;       /* when it arrived; 0 = now */
};

/* The outcome of a successful append. */
struct podio_spool_ack {
	int64_t id;                /* the stored event; for a duplicate the
	                              event stored first (it may be gone by
	                              now, processed) */
	int duplicate;             /* 1 when the same delivery was stored
	                              before, and nothing new was stored */
	int intake;                /* 1 when id is the event's number in
	                              the intake (podio_spool_open_intake()):
	                              it gets its own in the spool when it is
	                              moved there */
};

/*
 * Stores one event and returns only after it is durable: on PODIO_OK the
 * record (or the earlier copy of a duplicate) is committed to stable
 * storage.  An item event (one with item_revision_id) is a duplicate when
 * an event with the same type, hook_id, item_id and item_revision_id was
 * appended before and not yet forgotten (podio_spool_forget()); a
 * duplicate is acknowledged but stored only once.
 *
 * Appends running at the same time in several threads of one process
 * share one transaction and one flush (group commit): the first thread to
 * arrive commits what is queued while the others wait, and the next one
 * commits whatever queued meanwhile.  No thread sleeps to gather others.
 * Appends that do not wait (podio_spool_append_delivery_async()) join
 * the same commits.
 *
 * Fails with PODIO_ERR_INVALID (no type, a malformed type, no hook_id,
 * an event that is not one JSON value), PODIO_ERR_TOO_LARGE (an event
 * longer than PODIO_SPOOL_MAX_EVENT), PODIO_ERR_IO (the database could
 * not be written: disk full, read-only, removed, locked too long) or
 * PODIO_ERR_NOMEM, with a one-line message in err (size errlen; may be
 * NULL).  On failure nothing of this record is stored: the caller must
 * not acknowledge the delivery (answer 503).  ack may be NULL.
 */
enum podio_err podio_spool_append(struct podio_spool *spool,
    const struct podio_spool_record *rec, struct podio_spool_ack *ack,
    char *err, size_t errlen);

/*
 * Builds the event of delivery d without an item (podio_event_json())
 * and appends it as above, with d's type and ids and received_ms now.
 * A hook.verify is refused with PODIO_ERR_INVALID: it is never spooled.
 */
enum podio_err podio_spool_append_delivery(struct podio_spool *spool,
    const struct podio_delivery *d, struct podio_spool_ack *ack,
    char *err, size_t errlen);

/* How an append without waiting ends: e is PODIO_OK with ack filled, or
 * the error of podio_spool_append() with its message in err. */
typedef void (*podio_spool_done_fn)(void *arg, enum podio_err e,
    const struct podio_spool_ack *ack, const char *err);

/*
 * podio_spool_append_delivery() for a caller that does not wait for the
 * flush: done(arg, ...) is called exactly once when the commit holding
 * the event is over, with the outcome an append would return.  When no
 * commit is running, the calling thread writes this event and whatever
 * queues meanwhile (calling done for each, its own included) and returns
 * only then; else it returns at once and the thread leading the commit
 * calls done.  done runs with no lock of the spool held.  d must stay
 * valid until done is called.
 *
 * Returns PODIO_OK when done will be (or was) called; else the error,
 * with err filled as for podio_spool_append_delivery(), and done is never
 * called.
 */
enum podio_err podio_spool_append_delivery_async(struct podio_spool *spool,
    const struct podio_delivery *d, podio_spool_done_fn done, void *arg,
    char *err, size_t errlen);

/* Where an event is, as podio_spool_list() and the commands show it. */
enum podio_spool_state {
	PODIO_SPOOL_PENDING = 0,   /* waiting for its first try */
	PODIO_SPOOL_RETRYING,      /* failed at least once, waiting */
	PODIO_SPOOL_IN_FLIGHT,     /* taken, its lease not expired */
	PODIO_SPOOL_DEAD,          /* set aside after its last try */
	PODIO_SPOOL_BAD            /* could not be decoded, set aside */
};
/* Bit of a state in a mask of states. */
#define PODIO_SPOOL_MASK(state) (1u << (state))
#define PODIO_SPOOL_ALL 0x1fu

/* "pending", "retrying", "in flight", "dead", "bad"; static. */
const char *podio_spool_state_name(enum podio_spool_state state);

/* One stored event.  Strings are owned by the array or batch that holds
 * the event. */
struct podio_spool_event {
	int64_t id;
	enum podio_spool_state state;
	char *type;
	unsigned has;              /* PODIO_HAS_* bits of the ids stored */
	uint64_t hook_id;
	uint64_t item_id;
	uint64_t item_revision_id;
	uint64_t app_id;           /* as delivered, else the hook's app the
	                              delivery named (PODIO_APP_PARAM) */
	char *event_json;          /* NUL-terminated; NULL in a list */
	size_t event_len;
	char *progress;            /* podio_spool_progress() text, or NULL */
	char *last_error;          /* the last reason given, or NULL */
	long attempts;             /* failures counted against the limit */
	long failures;             /* every failure, outages included */
	long leases;               /* times it was taken */
	int64_t received_ms;
	int64_t next_ms;           /* not taken before this time */
	int64_t lease_until_ms;    /* 0 when not taken */
	int64_t failed_ms;         /* time of the last failure, or 0 */
	int64_t dead_ms;           /* time it became dead, or 0 */
};

/* Frees n events and the array.  Accepts NULL. */
void podio_spool_events_free(struct podio_spool_event *events, size_t n);

/* How podio_spool_take() and its kin claim events.  A NULL pointer or a
 * zero member means the default. */
struct podio_spool_take_opts {
	/* How long the claim lasts (default 5 minutes).  When it expires
	 * (the worker died) the events can be taken again. */
	int64_t lease_ms;
	/* The most events of one item returned together (default 100). */
	size_t max_events;
	/* Settle window: an item is due only when its newest pending event
	 * is at least settle_ms old, or its oldest one settle_max_ms old
	 * (0: no cap).  0 = take items at once.  Events without an item are
	 * never held back. */
	int64_t settle_ms;
	int64_t settle_max_ms;
	/* 1: an item with a pending item.create or item.update event is not
	 * taken (the item fetches are held by the API budget, so it could
	 * only be given back); events without an item and items whose
	 * pending events need no fetch are taken as usual. */
	int no_fetch;
};

/*
 * What one take claims: the due events of one item, oldest first, or one
 * event without an item.  The lease covers every event of the batch.
 */
struct podio_spool_batch {
	int has_item;
	uint64_t item_id;
	uint64_t app_id;           /* the app of the item: the events' own, or
	                              learned with podio_spool_learn_app();
	                              0 when unknown */
	int64_t first_received_ms; /* arrival of the batch's oldest event */
	int64_t last_received_ms;  /* arrival of the newest pending event of the
	                              item (in the batch or not) */
	int64_t lease_until_ms;
	size_t n;
	struct podio_spool_event *events; /* owned by the batch */
};

/* Frees the events of batch and empties it.  Accepts an empty batch. */
void podio_spool_batch_clear(struct podio_spool_batch *batch);
/* Clears n batches and frees the array.  Accepts NULL. */
void podio_spool_batches_free(struct podio_spool_batch *batches, size_t n);

/*
 * Claims the next due work: the oldest due event not in flight, with
 * every due event of its item after it (up to max_events, stopping at
 * the first one not due).  Per item, events are taken in arrival order:
 * an item is not taken while any of its events is in flight, and its
 * later events wait for its oldest pending one (a failed event delays its
 * item until its next try).  An event whose record cannot be decoded is
 * set aside (state "bad", warned with its id) and the search goes on.
 * Returns PODIO_OK with the batch filled (the caller clears it with
 * podio_spool_batch_clear()), PODIO_ERR_NOT_FOUND when nothing is due
 * (the batch empty), or PODIO_ERR_IO / PODIO_ERR_NOMEM (logged).
 */
enum podio_err podio_spool_take(struct podio_spool *spool,
    const struct podio_spool_take_opts *opts,
    struct podio_spool_batch *batch);

/*
 * The same for up to max_units units at once, in one transaction (the
 * units in the order podio_spool_take() would hand them out): workers
 * that take many small units share flushes as appends do.  *batches
 * receives *n batches, which the caller frees with
 * podio_spool_batches_free(); PODIO_ERR_NOT_FOUND when none is due.
 */
enum podio_err podio_spool_take_many(struct podio_spool *spool,
    const struct podio_spool_take_opts *opts, size_t max_units,
    struct podio_spool_batch **batches, size_t *n);

/* The same for one item only (PODIO_ERR_NOT_FOUND when it has nothing
 * due or is in flight). */
enum podio_err podio_spool_take_item(struct podio_spool *spool,
    uint64_t item_id, const struct podio_spool_take_opts *opts,
    struct podio_spool_batch *batch);

/*
 * Claims up to max_items due items of app app_id at once (by the events'
 * app id or the one learned for their hook), oldest first, for one bulk
 * fetch.  *batches receives *n batches (one per item), which the caller
 * frees with podio_spool_batches_free(); PODIO_ERR_NOT_FOUND when none is
 * due.
 */
enum podio_err podio_spool_take_app(struct podio_spool *spool,
    uint64_t app_id, const struct podio_spool_take_opts *opts,
    size_t max_items, struct podio_spool_batch **batches, size_t *n);

/* A pending item, as podio_spool_pending_items() lists it. */
struct podio_spool_item {
	uint64_t item_id;
	size_t events;             /* pending events of the item */
	int64_t first_received_ms; /* its oldest pending event */
	int64_t last_received_ms;  /* its newest pending event */
	int64_t next_ms;           /* when its oldest pending event is due */
	int in_flight;             /* 1 when one of its events is taken */
};

/*
 * Lists the items of app app_id that have pending events (by the events'
 * app id or the one learned for their hook), oldest first, at most max.
 * *items (caller frees with free()) receives *n entries; none is fine.
 */
enum podio_err podio_spool_pending_items(struct podio_spool *spool,
    uint64_t app_id, size_t max, struct podio_spool_item **items,
    size_t *n);

/* Remembers that hook hook_id belongs to app app_id (learned from a
 * fetched item), so its item events can be fetched in bulk. */
enum podio_err podio_spool_learn_app(struct podio_spool *spool,
    uint64_t hook_id, uint64_t app_id);

/*
 * The revision of each item last fetched, kept after its events left the
 * spool (finished events are removed), so that a backfill can tell an
 * item changed since its last fetch from one whose current state the
 * callbacks already saw.  revision is the item's current_revision
 * "revision" number (not the item_revision_id a hook sends).
 *  - note_revisions: records revisions[i] for item_ids[i], i < n, in one
 *    transaction, with now as the time of the fetch; a lower revision
 *    than the one kept never replaces it.  Committed like the
 *    processors' bookkeeping: a power loss may lose the last ones (a
 *    backfill then sends those items again).
 *  - fetched_revisions: revisions[i] receives the kept revision of
 *    item_ids[i], or -1 when none is kept.
 * podio_spool_forget() drops the revisions fetched before its age, so a
 * backfill further back than that finds none and sends every item.
 */
enum podio_err podio_spool_note_revisions(struct podio_spool *spool,
    const uint64_t *item_ids, const int64_t *revisions, size_t n);
enum podio_err podio_spool_fetched_revisions(struct podio_spool *spool,
    const uint64_t *item_ids, size_t n, int64_t *revisions);
/* The most items of one call of either. */
#define PODIO_SPOOL_MAX_REVISIONS 1000

/*
 * Named times shared by every process using the spool (name: 1 to 64
 * characters of [a-z0-9_], the first not a digit), e.g.
 * PODIO_SPOOL_MARK_ALIVE, until when a receiver was known to run.
 *  - set_mark: stores value; a lower value than the one kept never
 *    replaces it (several receivers may share the spool).
 *  - get_mark: *value receives it; PODIO_ERR_NOT_FOUND (*value 0) when
 *    none was set.
 */
#define PODIO_SPOOL_MARK_ALIVE "alive_until"
enum podio_err podio_spool_set_mark(struct podio_spool *spool,
    const char *name, int64_t value);
enum podio_err podio_spool_get_mark(struct podio_spool *spool,
    const char *name, int64_t *value);

/*
 * The earliest time at which something may become due with these opts
 * (a retry time, a settle window, a lease running out): *when_ms receives
 * it, or 0 when the spool holds nothing pending (with no_fetch: nothing
 * that a take with no_fetch may claim).  A time in the past means now.
 */
enum podio_err podio_spool_next_due(struct podio_spool *spool,
    const struct podio_spool_take_opts *opts, int64_t *when_ms);

/*
 * The outcome of one taken event.  done removes it (whoever holds it:
 * the work is done).  The others need the caller's lease and fail with
 * PODIO_ERR_CONFLICT when it ran out and another worker took the event;
 * all fail with PODIO_ERR_NOT_FOUND when the event is gone.
 *  - fail: keeps it for another try at retry_ms, with reason (cut to
 *    PODIO_SPOOL_MAX_REASON); attempts grows only when counts_as_attempt
 *    (a Podio outage is not the event's fault).  *attempts (may be NULL)
 *    receives the new count.
 *  - dead: sets it aside as a dead letter with reason and the time.
 *  - release: gives it back untouched (not run: e.g. an earlier event of
 *    its item failed), due again at once.
 *  - extend: pushes its lease to now + lease_ms.
 *  - progress: stores text (e.g. a JSON list of the callbacks that
 *    succeeded, so a retry re-runs only the others; at most
 *    PODIO_SPOOL_MAX_PROGRESS bytes, NULL clears it).  Kept by fail,
 *    dead and replay.
 */
enum podio_err podio_spool_done(struct podio_spool *spool, int64_t id);
/* done for n events in one transaction: one flush for a whole batch
 * (PostgreSQL: a transaction per 64, whose commits wait for no flush). */
enum podio_err podio_spool_done_many(struct podio_spool *spool,
    const int64_t *ids, size_t n);
enum podio_err podio_spool_fail(struct podio_spool *spool, int64_t id,
    const char *reason, int64_t retry_ms, int counts_as_attempt,
    long *attempts);
enum podio_err podio_spool_dead(struct podio_spool *spool, int64_t id,
    const char *reason);
enum podio_err podio_spool_release(struct podio_spool *spool, int64_t id);
enum podio_err podio_spool_extend(struct podio_spool *spool, int64_t id,
    int64_t lease_ms);
enum podio_err podio_spool_progress(struct podio_spool *spool, int64_t id,
    const char *progress);

/* For `spool status`. */
struct podio_spool_status {
	size_t pending;
	size_t retrying;
	size_t in_flight;
	size_t dead;
	size_t bad;
	size_t intake;              /* events of CGI runs still in the
	                               intake (podio_spool_open_intake()):
	                               their move into the spool failed */
	int64_t oldest_received_ms; /* oldest pending, retrying or in-flight
	                               event, or event in the intake; 0 when
	                               there is none */
	int64_t oldest_age_ms;      /* now minus that; 0 when there is none */
};
enum podio_err podio_spool_status(struct podio_spool *spool,
    struct podio_spool_status *st);

/*
 * Lists events whose state is in mask (PODIO_SPOOL_MASK bits;
 * PODIO_SPOOL_ALL), with id > after_id, in id order, at most max (0: no
 * limit), without their event JSON.  *events receives *n events, which
 * the caller frees with podio_spool_events_free().
 */
enum podio_err podio_spool_list(struct podio_spool *spool, unsigned mask,
    int64_t after_id, size_t max, struct podio_spool_event **events,
    size_t *n);

/* One event with its JSON and progress; *event (one, caller frees with
 * podio_spool_events_free(*event, 1)).  PODIO_ERR_NOT_FOUND if none. */
enum podio_err podio_spool_show(struct podio_spool *spool, int64_t id,
    struct podio_spool_event **event);

/*
 * Puts a dead (or bad) event back to pending, due now, attempts and
 * failures reset (its last error and progress kept).  PODIO_ERR_NOT_FOUND
 * when there is no such event, PODIO_ERR_INVALID when it is not dead or
 * bad.
 */
enum podio_err podio_spool_replay(struct podio_spool *spool, int64_t id);
/* The same for every dead event; *n (may be NULL) receives how many. */
enum podio_err podio_spool_replay_dead(struct podio_spool *spool,
    size_t *n);

/*
 * Removes the events whose state is in mask (only PODIO_SPOOL_DEAD and
 * PODIO_SPOOL_BAD are allowed, else PODIO_ERR_INVALID) that were set
 * aside at least older_than_ms ago; *n (may be NULL) receives how many.
 */
enum podio_err podio_spool_purge(struct podio_spool *spool, unsigned mask,
    int64_t older_than_ms, size_t *n);

/* Forgets the dedup keys of deliveries appended at least older_than_ms
 * ago; a later copy of such a delivery is stored again.  The keys are
 * kept until then, also after their events were processed: a worker
 * calls this now and then (e.g. with a week) to bound the table.  The
 * item revisions fetched that long ago (podio_spool_note_revisions())
 * go too; *n counts the keys and revisions dropped. */
enum podio_err podio_spool_forget(struct podio_spool *spool,
    int64_t older_than_ms, size_t *n);

/*
 * Gives back the events leased by processes of this host that ended
 * without finishing them (killed, crashed): they become takeable at once
 * instead of when their lease runs out (minutes).  A process is looked up
 * by its PID, only in the PID namespace of the caller; one that exists
 * keeps its leases, so a PID reused since only delays the give-back
 * until the lease runs out.  Looks at up to 32 processes holding leases a
 * call (live ones among them).
 * *n (may be NULL) receives how many events were given back.  A worker
 * calls this when it starts and now and then; it costs one read when
 * nothing is to be given back.
 */
enum podio_err podio_spool_reclaim(struct podio_spool *spool, size_t *n);

/*
 * Rate-limit state shared by every process using the spool, per
 * credential key (who is limited: e.g. client id and app id or user;
 * never a secret) and rate class (e.g. "default", "filter"), each at most
 * PODIO_SPOOL_MAX_KEY bytes.
 *  - set_pause: no API call of that key and class before until_ms; an
 *    earlier time never shortens a pause already set.  No pause ends
 *    later than PODIO_SPOOL_MAX_PAUSE_MS from now (a later until_ms is
 *    cut, and so is a longer pause stored before).
 *  - get_pause: *until_ms receives the end of the pause, 0 if none was set
 *    (a past time means the pause is over).
 *  - record_remaining: the last X-Rate-Limit-Remaining and -Limit seen
 *    (-1 = absent) and when.
 *  - get_remaining: what was recorded last; PODIO_ERR_NOT_FOUND if
 *    nothing (*remaining and *limit then -1, *at_ms 0).
 */
enum podio_err podio_spool_set_pause(struct podio_spool *spool,
    const char *cred, const char *rate_class, int64_t until_ms);
enum podio_err podio_spool_get_pause(struct podio_spool *spool,
    const char *cred, const char *rate_class, int64_t *until_ms);
enum podio_err podio_spool_record_remaining(struct podio_spool *spool,
    const char *cred, const char *rate_class, long remaining, long limit);
enum podio_err podio_spool_get_remaining(struct podio_spool *spool,
    const char *cred, const char *rate_class, long *remaining, long *limit,
    int64_t *at_ms);

/*
 * The outage of a credential's API, shared like its pauses: Podio
 * unreachable, timing out or answering 5xx.  While it lasts, one caller at
 * a time (across processes) probes the API, when the next probe is due.
 *  - get_outage: fills *o; o->since_ms is 0 when there is none.
 *  - set_outage: starts the outage (since now) or goes on with it: the
 *    next probe at next_probe_ms, the interval that led to it; any claim
 *    of the probe ends.
 *  - claim_probe: *claimed is 1 when the caller got the probe (an outage
 *    whose probe is due and unclaimed), claimed until until_ms, which
 *    identifies the claim; 0 otherwise.
 *  - release_probe: gives back the claim until_ms when no probe was made.
 *  - end_outage: ends it (*ended 1 when there was one).
 * `spool resume` (podio_spool_resume) ends outages too; their class is
 * PODIO_SPOOL_OUTAGE_CLASS there.
 */
#define PODIO_SPOOL_OUTAGE_CLASS "outage"
struct podio_spool_outage {
	int64_t since_ms;          /* start, 0 when there is no outage */
	int64_t next_probe_ms;     /* when the next probe is due */
	int64_t interval_ms;       /* the interval before that probe */
	int64_t claimed_until_ms;  /* end of a claim of the probe, 0: none */
};
enum podio_err podio_spool_get_outage(struct podio_spool *spool,
    const char *cred, struct podio_spool_outage *o);
enum podio_err podio_spool_set_outage(struct podio_spool *spool,
    const char *cred, int64_t next_probe_ms, int64_t interval_ms);
enum podio_err podio_spool_claim_probe(struct podio_spool *spool,
    const char *cred, int64_t until_ms, int *claimed);
enum podio_err podio_spool_release_probe(struct podio_spool *spool,
    const char *cred, int64_t until_ms);
enum podio_err podio_spool_end_outage(struct podio_spool *spool,
    const char *cred, int *ended);

/* The longest pause set_pause stores: an hour. */
#define PODIO_SPOOL_MAX_PAUSE_MS (3600 * 1000)

/* A pause that `spool resume` ended. */
struct podio_spool_pause {
	char cred[PODIO_SPOOL_MAX_KEY + 1];
	char rate_class[PODIO_SPOOL_MAX_KEY + 1];
	int64_t until_ms;          /* when it would have ended */
};

/*
 * Ends every pause of every key and class that has not ended yet, and
 * every outage (its until_ms: the next probe), in
 * one durable transaction: the processors of every process sharing the
 * spool may call the API again at once.  *out receives the *n pauses
 * ended (NULL when none), an array the caller frees with free().
 */
enum podio_err podio_spool_resume(struct podio_spool *spool,
    struct podio_spool_pause **out, size_t *n);

/* Counters of this handle since it was opened. */
struct podio_spool_stats {
	uint64_t appends;          /* appends acknowledged (duplicates too) */
	uint64_t stored;           /* records written */
	uint64_t duplicates;       /* appends found to be duplicates */
	uint64_t failed;           /* appends that failed */
	uint64_t commits;          /* append transactions committed: one
	                              flush each */
	uint64_t max_batch;        /* most appends in one commit */
};
void podio_spool_stats(struct podio_spool *spool,
    struct podio_spool_stats *stats);

/* Where the spool is, for messages: the database file's path, or the
 * connection URI with any password masked; borrowed from the handle. */
const char *podio_spool_path(const struct podio_spool *spool);

/*
 * Waits up to timeout_ms for news of events stored through other
 * handles (other processes or hosts): 1 when some were stored since the
 * handle last looked (the first call only starts listening, and may
 * return 0 at once), 0 when the time passed without any, -1 at once when
 * the backend cannot tell (SQLite: the caller looks at the spool now and
 * then instead).  A handle that waits should be one thread's own: the
 * wait holds it.
 */
int podio_spool_wait(struct podio_spool *spool, int64_t timeout_ms);

/*
 * For a process that opened the spool for one append and is about to
 * exit (a CGI request), once its answer is out and no worker holds the
 * spool: keeps what the next such process reads on opening bounded.  The
 * SQLite spool's next process, opening alone, reads every frame of the
 * log that the commits left since it last started over; past a few MiB
 * this copies the log into the database and starts it over, within a
 * few tens of milliseconds, or does nothing when another process writes
 * meanwhile.  Nothing to do for PostgreSQL.  Never fails: what it could
 * not do waits for the next call or a processor.
 */
void podio_spool_tidy_oneshot(struct podio_spool *spool);

/* The backend: "sqlite" or "postgresql"; static. */
const char *podio_spool_backend(const struct podio_spool *spool);

/* --------------------------------------------------------- internal: spool */

/*
 * The access tokens a PostgreSQL spool keeps for every host, per
 * credential key (cred: who the token is for, never a secret; at most
 * PODIO_SPOOL_MAX_KEY bytes), as an opaque blob (the token cache's
 * entry, tokencache.h).  The SQLite spool keeps none: its processes
 * share the token cache file.  Here cred may be as long as
 * PODIO_SPOOL_MAX_TOKEN_KEY.
 *  - shares_tokens: 1 when the backend keeps them.
 *  - token_get: *blob (caller wipes and frees) receives the blob of
 *    *len bytes; PODIO_ERR_NOT_FOUND when there is none.
 *  - token_put: stores the blob, durable when it returns.
 *  - token_lock: waits up to timeout_ms (0: not at all) for the lock of
 *    cred's token requests, held by this handle's connection (a host
 *    that dies lets it go); PODIO_ERR_TIMEOUT when another holds it still.
 *  - token_unlock: lets it go.
 */
#define PODIO_SPOOL_MAX_TOKEN_KEY 4096
int podio__spool_shares_tokens(const struct podio_spool *spool);
enum podio_err podio__spool_token_get(struct podio_spool *spool,
    const char *cred, char **blob, size_t *len);
enum podio_err podio__spool_token_put(struct podio_spool *spool,
    const char *cred, const char *blob, size_t len);
enum podio_err podio__spool_token_lock(struct podio_spool *spool,
    const char *cred, long timeout_ms);
void podio__spool_token_unlock(struct podio_spool *spool, const char *cred);

/* Adds skew_ms to this handle's clock (tests: lease expiry and retry
 * times without waiting). */
void podio__spool_set_clock_skew(struct podio_spool *spool, int64_t skew_ms);

/*
 * Fault-injection seam: caps the database at max_pages pages on this
 * handle's connection (PRAGMA max_page_count), so writes that need more
 * fail as on a full disk (SQLITE_FULL); 0 restores the default.  Returns
 * the cap in force, or -1 on failure.
 */
long podio__spool_set_max_pages(struct podio_spool *spool, long max_pages);

#endif

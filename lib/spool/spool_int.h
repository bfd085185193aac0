/*
 * spool_int.h: the spool's interface to its backends.
 *
 * lib/spool/spool.c is the spool every caller sees (spool.h): it checks
 * and completes the arguments (records, reasons, keys, the defaults of
 * the take options, the cap of a pause), runs the group commit of the
 * appends and the counters, and hands every read and write of the store
 * to the backend that opened the spool, through struct spool_ops.  A
 * backend is a few files of its own:
 *
 *   sqlite*.c   one SQLite database in a directory (the default)
 *   pg*.c       a PostgreSQL database shared by several hosts
 *
 * A backend's handle starts with struct podio_spool, and its functions
 * take that and look at their own part.  Internal to lib/spool/.
 */
#ifndef PODIO_SPOOL_INTERFACE_H
#define PODIO_SPOOL_INTERFACE_H

#include <pthread.h>
#include <semaphore.h>
#include <stddef.h>
#include <stdint.h>

#include "spool.h"

/* Defaults of struct podio_spool_take_opts. */
#define SPOOL_LEASE_MS (5 * 60 * 1000)
#define SPOOL_MAX_EVENTS 100
/* A settle cap that never comes. */
#define SPOOL_FOREVER_MS 1000000000000000LL
/* Most units one take claims. */
#define SPOOL_TAKE_TRIES 1000
/* Most appends written in one transaction. */
#define SPOOL_BATCH_MAX 512

/* Room for a lease owner, "PID-RANDOM-PIDNS", and its NUL. */
#define SPOOL_OWNER_MAX 96

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
	const struct podio_spool_record *rec;  /* checked */
	int64_t received_ms;        /* set */
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

/* What a take claims, its options completed. */
enum spool_take_mode { SPOOL_TAKE_ANY, SPOOL_TAKE_ITEM, SPOOL_TAKE_APP };
struct spool_take {
	enum spool_take_mode mode;
	uint64_t key;               /* the item or the app */
	int64_t now, lease_ms, settle_ms, settle_max_ms;
	size_t max_events;
	int no_fetch;
};

/* The outcome of one taken event (podio_spool_fail() and its kin). */
enum spool_change_op {
	SPOOL_FAIL, SPOOL_DEAD, SPOOL_RELEASE, SPOOL_EXTEND, SPOOL_PROGRESS
};
struct spool_change {
	enum spool_change_op op;
	const char *reason;         /* fail, dead: cut, never NULL */
	size_t reason_len;
	int64_t retry_ms;           /* fail */
	int counts;                 /* fail: 1 when it counts as an attempt */
	int64_t lease_ms;           /* extend: from now */
	const char *progress;       /* progress: NULL clears it */
};

/*
 * A backend.  Every function gets a handle this backend opened and
 * arguments spool.c checked; each reads its own clock
 * (podio__spool_now()).  They return the errors spool.h gives for the
 * operation, logging failures of the store.
 */
struct spool_ops {
	const char *name;           /* "sqlite", "postgresql" */
	void (*close)(struct podio_spool *s);
	/* Writes the appends of list in one transaction, durable when it
	 * returns, filling each one's result, id, duplicate and, on
	 * failure, msg. */
	void (*append)(struct podio_spool *s, struct spool_req *list);
	enum podio_err (*take)(struct podio_spool *s,
	    const struct spool_take *t, size_t max_units,
	    struct podio_spool_batch **out, size_t *n);
	enum podio_err (*next_due)(struct podio_spool *s,
	    const struct spool_take *t, int64_t *when_ms);
	enum podio_err (*pending_items)(struct podio_spool *s,
	    uint64_t app_id, size_t max, struct podio_spool_item **items,
	    size_t *n);
	enum podio_err (*learn_app)(struct podio_spool *s, uint64_t hook_id,
	    uint64_t app_id);
	enum podio_err (*note_revisions)(struct podio_spool *s,
	    const uint64_t *item_ids, const int64_t *revisions, size_t n);
	enum podio_err (*fetched_revisions)(struct podio_spool *s,
	    const uint64_t *item_ids, size_t n, int64_t *revisions);
	/* name checked: [a-z_]{1,64}. */
	enum podio_err (*set_mark)(struct podio_spool *s, const char *name,
	    int64_t value);
	enum podio_err (*get_mark)(struct podio_spool *s, const char *name,
	    int64_t *value);
	enum podio_err (*done_many)(struct podio_spool *s,
	    const int64_t *ids, size_t n);
	/* *attempts (may be NULL) receives the attempts after a fail. */
	enum podio_err (*change)(struct podio_spool *s, int64_t id,
	    const struct spool_change *c, long *attempts);
	enum podio_err (*status)(struct podio_spool *s,
	    struct podio_spool_status *st);
	enum podio_err (*list)(struct podio_spool *s, unsigned mask,
	    int64_t after_id, size_t max, struct podio_spool_event **events,
	    size_t *n);
	enum podio_err (*show)(struct podio_spool *s, int64_t id,
	    struct podio_spool_event **event);
	/* Puts back to pending event id when it is dead or bad, or every
	 * dead event when id is 0; *n receives how many. */
	enum podio_err (*replay)(struct podio_spool *s, int64_t id,
	    size_t *n);
	enum podio_err (*purge)(struct podio_spool *s, unsigned mask,
	    int64_t older_than_ms, size_t *n);
	enum podio_err (*forget)(struct podio_spool *s, int64_t older_than_ms,
	    size_t *n);
	enum podio_err (*reclaim)(struct podio_spool *s, size_t *n);

	/* The rate-limit and outage state (spool.h); keys checked. */
	enum podio_err (*set_pause)(struct podio_spool *s, const char *cred,
	    const char *rate_class, int64_t until_ms);
	enum podio_err (*get_pause)(struct podio_spool *s, const char *cred,
	    const char *rate_class, int64_t *until_ms);
	enum podio_err (*record_remaining)(struct podio_spool *s,
	    const char *cred, const char *rate_class, long remaining,
	    long limit);
	enum podio_err (*get_remaining)(struct podio_spool *s,
	    const char *cred, const char *rate_class, long *remaining,
	    long *limit, int64_t *at_ms);
	enum podio_err (*get_outage)(struct podio_spool *s, const char *cred,
	    struct podio_spool_outage *o);
	enum podio_err (*set_outage)(struct podio_spool *s, const char *cred,
	    int64_t next_probe_ms, int64_t interval_ms);
	enum podio_err (*claim_probe)(struct podio_spool *s,
	    const char *cred, int64_t until_ms, int *claimed);
	enum podio_err (*release_probe)(struct podio_spool *s,
	    const char *cred, int64_t until_ms);
	enum podio_err (*end_outage)(struct podio_spool *s, const char *cred,
	    int *ended);
	enum podio_err (*resume)(struct podio_spool *s,
	    struct podio_spool_pause **out, size_t *n);

	/* The shared access tokens (podio__spool_token_get() and its
	 * kin, spool.h); NULL when the backend keeps none. */
	enum podio_err (*token_get)(struct podio_spool *s, const char *cred,
	    char **blob, size_t *len);
	enum podio_err (*token_put)(struct podio_spool *s, const char *cred,
	    const char *blob, size_t len);
	enum podio_err (*token_lock)(struct podio_spool *s, const char *cred,
	    long timeout_ms);
	void (*token_unlock)(struct podio_spool *s, const char *cred);

	/* podio_spool_tidy_oneshot(); NULL when there is nothing to do. */
	void (*tidy_oneshot)(struct podio_spool *s);

	/* podio_spool_wait(); NULL when the backend cannot tell. */
	int (*wait)(struct podio_spool *s, int64_t timeout_ms);

	/* Tests only; NULL when the backend has no such seam. */
	long (*set_max_pages)(struct podio_spool *s, long max_pages);
};

/* The part of a handle every backend shares; a backend's handle starts
 * with it. */
struct podio_spool {
	const struct spool_ops *ops;
	char *path;                 /* what podio_spool_path() returns */
	char owner[SPOOL_OWNER_MAX]; /* "PID-RANDOM-PIDNS": whose leases */
	int64_t skew_ms;            /* tests only */
	int intake;                 /* podio_spool_open_intake()'s: appends
	                               only */

	pthread_mutex_t q_lock;     /* guards the fields below */
	struct spool_req *q_head;
	struct spool_req **q_tail;
	int committing;             /* a leader is writing a batch */
	struct podio_spool_stats stats;
};

/* Sets up the shared part of a backend's new handle (ops, owner, the
 * queue); podio__spool_base_end() undoes it. */
void podio__spool_base_init(struct podio_spool *s,
    const struct spool_ops *ops);
void podio__spool_base_end(struct podio_spool *s);

/* The backends' openers: *out receives the handle; err as for
 * podio_spool_open(). */
enum podio_err podio__sqlite_open(const char *dir, struct podio_spool **out,
    char *err, size_t errlen);
enum podio_err podio__sqlite_open_intake(const char *dir,
    struct podio_spool **out, char *err, size_t errlen);
enum podio_err podio__pg_open(const char *url, struct podio_spool **out,
    char *err, size_t errlen);

/* Writes the message to err (size errlen; either may be 0/NULL). */
void podio__spool_set_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The handle's clock: wall-clock ms plus the test skew. */
int64_t podio__spool_now(const struct podio_spool *s);

/* Whether t (len bytes) is an event type: [a-z0-9_.-]{1,64}. */
int podio__spool_valid_type(const char *t, size_t len);

/* Frees the strings of ev and zeroes it. */
void podio__spool_event_clear(struct podio_spool_event *ev);

/*
 * The state of an event whose state column holds stored (NULL when it
 * is not text): "pending" is in flight while its lease runs (ev's
 * lease_until_ms past now), retrying once it failed (ev's failures),
 * else pending; "dead"; "bad".  Anything else is bad too, with *bad set
 * to the reason.
 */
enum podio_spool_state podio__spool_state_of(const char *stored,
    const struct podio_spool_event *ev, int64_t now, const char **bad);

/* The outage that a credential's row of class PODIO_SPOOL_OUTAGE_CLASS
 * holds, read as (next probe, interval, end of the probe's claim, start)
 * in row; the backends store it so. */
void podio__spool_outage_of(const int64_t row[4],
    struct podio_spool_outage *o);

/* Appends ev (moved) to the batch's events.  -1 on out of memory. */
int podio__spool_batch_push(struct podio_spool_batch *b,
    struct podio_spool_event *ev);

/* The inode of this process's pid namespace (0 when unknown): a lease
 * owner's PID means something here only in the same namespace. */
unsigned long long podio__spool_pidns(void);

#endif

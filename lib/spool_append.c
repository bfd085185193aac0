/*
 * spool_append.c: appending events to the spool with group commit (see
 * spool.h).
 *
 * Inside one process, one connection serves every thread under db_lock.
 * Appends go through a queue (q_lock): the first appender to find no
 * commit running becomes the leader, takes everything queued, writes it
 * in one transaction and one flush, and wakes the others, each by its own
 * semaphore; appends that arrive meanwhile queue up, and the first of
 * them leads the next commit.  So a lone append costs one flush and a
 * crowd of them shares flushes, without any sleep.  An append that does
 * not wait (the FastCGI server's: its worker goes on to the next request)
 * is ended by the leader with a callback, and when such an append is
 * first in the queue the leader goes on with the next commit itself.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "event.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "util.h"

/* Most appends written in one transaction. */
#define SPOOL_BATCH_MAX 512

/*
 * Writes the queued appends of list in one transaction, filling each
 * request's result, id and duplicate flag (done is set by the caller).
 * Called by the leader without q_lock; the requests are not touched by
 * their threads until they are posted.
 */
static void
commit_batch(struct podio_spool *s, struct spool_req *list)
{
	static const char sql_seen[] =
	    "SELECT event_id FROM seen WHERE type = ?1 AND hook_id = ?2"
	    " AND item_id = ?3 AND item_revision_id = ?4";
	static const char sql_insert[] =
	    "INSERT INTO events (type, hook_id, item_id, item_revision_id,"
	    " app_id, event, received_at, next_at)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)";
	static const char sql_key[] =
	    "INSERT INTO seen (type, hook_id, item_id, item_revision_id,"
	    " event_id, seen_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
	sqlite3_stmt *seen = NULL, *ins = NULL, *key = NULL;
	struct spool_req *r;
	const struct podio_spool_record *rec;
	enum podio_err e;
	int rc;

	/* Counted while waiting for the write lock, so that a processor's
	 * long transaction makes way (podio__spool_yield_due()). */
	atomic_fetch_add(s->appends_waiting, 1);
	pthread_mutex_lock(&s->db_lock);
	rc = podio__spool_begin(s);
	atomic_fetch_sub(s->appends_waiting, 1);
	if (rc != SQLITE_OK ||
	    (rc = podio__spool_prep(s, sql_seen, &seen)) != SQLITE_OK ||
	    (rc = podio__spool_prep(s, sql_insert, &ins)) != SQLITE_OK ||
	    (rc = podio__spool_prep(s, sql_key, &key)) != SQLITE_OK)
		goto fail;
	for (r = list; r != NULL; r = r->next) {
		rec = r->rec;
		r->duplicate = 0;
		if (r->has_key) {
			sqlite3_reset(seen);
			podio__spool_bind_text(seen, 1, rec->type);
			podio__spool_bind_u64(seen, 2, rec->hook_id);
			podio__spool_bind_u64(seen, 3, rec->item_id);
			podio__spool_bind_u64(seen, 4, rec->item_revision_id);
			if ((rc = sqlite3_step(seen)) == SQLITE_ROW) {
				r->id = sqlite3_column_int64(seen, 0);
				r->duplicate = 1;
				continue;
			}
			if (rc != SQLITE_DONE)
				goto fail;
		}
		sqlite3_reset(ins);
		sqlite3_clear_bindings(ins);
		podio__spool_bind_text(ins, 1, rec->type);
		podio__spool_bind_u64(ins, 2, rec->hook_id);
		if (rec->has & PODIO_HAS_ITEM_ID)
			podio__spool_bind_u64(ins, 3, rec->item_id);
		if (rec->has & PODIO_HAS_ITEM_REVISION_ID)
			podio__spool_bind_u64(ins, 4, rec->item_revision_id);
		if (rec->has & PODIO_HAS_APP_ID)
			podio__spool_bind_u64(ins, 5, rec->app_id);
		sqlite3_bind_text(ins, 6, rec->event_json, (int)rec->event_len,
		    SQLITE_STATIC);
		sqlite3_bind_int64(ins, 7, r->received_ms);
		if ((rc = sqlite3_step(ins)) != SQLITE_DONE)
			goto fail;
		r->id = sqlite3_last_insert_rowid(s->db);
		if (r->has_key) {
			sqlite3_reset(key);
			podio__spool_bind_text(key, 1, rec->type);
			podio__spool_bind_u64(key, 2, rec->hook_id);
			podio__spool_bind_u64(key, 3, rec->item_id);
			podio__spool_bind_u64(key, 4, rec->item_revision_id);
			sqlite3_bind_int64(key, 5, r->id);
			sqlite3_bind_int64(key, 6, r->received_ms);
			if ((rc = sqlite3_step(key)) != SQLITE_DONE)
				goto fail;
		}
	}
	podio__spool_fin(s, seen);
	podio__spool_fin(s, ins);
	podio__spool_fin(s, key);
	seen = ins = key = NULL;
	s->appending = 1;
	rc = podio__spool_commit(s);
	s->appending = 0;
	if (rc != SQLITE_OK)
		goto fail;
	pthread_mutex_unlock(&s->db_lock);
	for (r = list; r != NULL; r = r->next)
		r->result = PODIO_OK;
	return;
fail:
	e = podio__spool_map_rc(rc);
	for (r = list; r != NULL; r = r->next) {
		r->result = e;
		r->id = 0;
		r->duplicate = 0;
		snprintf(r->msg, sizeof(r->msg), "spool %s: cannot store the "
		    "event: %s", s->path, sqlite3_errmsg(s->db));
	}
	podio__spool_fin(s, seen);
	podio__spool_fin(s, ins);
	podio__spool_fin(s, key);
	podio__spool_abort(s);
	pthread_mutex_unlock(&s->db_lock);
}

/*
 * The leader's work, entered with q_lock held and committing set: takes
 * up to SPOOL_BATCH_MAX queued appends (its own, self, among them when it
 * waits), writes them in one transaction and ends each: a waiting append
 * is posted (not self), a heap append has its done_fn called and is
 * freed.  When appends queued meanwhile, the first of them leads next if
 * it waits (it is posted with lead set, committing stays set); if it is a
 * heap append, nobody waits to lead, and this thread goes on with the
 * next batch.  Returns with q_lock released.
 *
 * Each waiting thread is woken exactly once, by its own semaphore: when
 * its batch is written, or to lead the next one.  The threads of a batch
 * do not contend for q_lock on the way out.
 */
static void
lead_batch(struct podio_spool *s, struct spool_req *self)
{
	struct spool_req *batch, *r, *next, *heir, **tail;
	struct podio_spool_ack ack;
	size_t n;
	int go_on;

	for (;;) {
		batch = s->q_head;
		tail = &s->q_head;
		for (n = 0; *tail != NULL && n < SPOOL_BATCH_MAX; n++)
			tail = &(*tail)->next;
		s->q_head = *tail;
		*tail = NULL;
		if (s->q_head == NULL)
			s->q_tail = &s->q_head;
		pthread_mutex_unlock(&s->q_lock);

		commit_batch(s, batch);

		pthread_mutex_lock(&s->q_lock);
		if (batch->result == PODIO_OK) {
			s->stats.commits++;
			if (n > s->stats.max_batch)
				s->stats.max_batch = n;
		}
		for (r = batch; r != NULL; r = r->next) {
			if (r->result == PODIO_OK) {
				s->stats.appends++;
				if (r->duplicate)
					s->stats.duplicates++;
				else
					s->stats.stored++;
			} else
				s->stats.failed++;
			r->done = 1;
		}
		heir = s->q_head;
		go_on = heir != NULL && heir->done_fn != NULL;
		if (heir == NULL)
			s->committing = 0;
		else if (!go_on)
			heir->lead = 1;  /* committing stays set for it */
		pthread_mutex_unlock(&s->q_lock);

		/* Once posted, a request may be gone: read next first. */
		if (heir != NULL && !go_on)
			sem_post(&heir->wake);
		for (r = batch; r != NULL; r = next) {
			next = r->next;
			if (r->done_fn != NULL) {
				ack.id = r->id;
				ack.duplicate = r->duplicate;
				r->done_fn(r->done_arg, r->result, &ack,
				    r->msg);
				free(r->own_json);
				free(r);
			} else if (r != self)
				sem_post(&r->wake);
		}
		if (!go_on)
			return;
		pthread_mutex_lock(&s->q_lock);
	}
}

/* Whether rec can be appended; fills err when not. */
static enum podio_err
append_check(const struct podio_spool_record *rec, char *err, size_t errlen)
{
	if (rec == NULL || rec->type == NULL ||
	    !podio__spool_valid_type(rec->type, strlen(rec->type)) ||
	    !(rec->has & PODIO_HAS_HOOK_ID) || rec->event_json == NULL) {
		podio__spool_set_err(err, errlen, "spool: not an event: no type, a bad "
		    "type or no hook_id");
		return PODIO_ERR_INVALID;
	}
	if (rec->event_len > PODIO_SPOOL_MAX_EVENT) {
		podio__spool_set_err(err, errlen, "spool: the event is longer than %d "
		    "bytes", PODIO_SPOOL_MAX_EVENT);
		return PODIO_ERR_TOO_LARGE;
	}
	if (!podio__json_valid(rec->event_json, rec->event_len)) {
		podio__spool_set_err(err, errlen, "spool: the event is not one JSON value");
		return PODIO_ERR_INVALID;
	}
	return PODIO_OK;
}

/* Queues r; leads when no commit is running (see lead_batch()). */
static void
append_queue(struct podio_spool *s, struct spool_req *r)
{
	r->received_ms = r->rec->received_ms > 0 ? r->rec->received_ms :
	    podio__spool_now(s);
	r->has_key = (r->rec->has & PODIO_HAS_ITEM_REVISION_ID) != 0;
	pthread_mutex_lock(&s->q_lock);
	*s->q_tail = r;
	s->q_tail = &r->next;
	if (!s->committing) {
		s->committing = 1;
		lead_batch(s, r->done_fn == NULL ? r : NULL);
	} else
		pthread_mutex_unlock(&s->q_lock);
}

/* See spool.h. */
enum podio_err
podio_spool_append(struct podio_spool *s, const struct podio_spool_record
    *rec, struct podio_spool_ack *ack, char *err, size_t errlen)
{
	struct spool_req req;
	enum podio_err e;

	if (ack != NULL) {
		ack->id = 0;
		ack->duplicate = 0;
	}
	if (s == NULL) {
		podio__spool_set_err(err, errlen, "spool: no spool");
		return PODIO_ERR_INVALID;
	}
	if ((e = append_check(rec, err, errlen)) != PODIO_OK)
		return e;
	memset(&req, 0, sizeof(req));
	req.rec = rec;
	if (sem_init(&req.wake, 0, 0) != 0) {
		podio__spool_set_err(err, errlen, "spool: sem_init: %s", strerror(errno));
		return PODIO_ERR_NOMEM;
	}
	append_queue(s, &req);
	while (!req.done) {
		while (sem_wait(&req.wake) != 0 && errno == EINTR)
			;
		/* Posted: done, or the lead of the next batch (whose
		 * flags were set under q_lock before the post). */
		if (req.lead && !req.done) {
			pthread_mutex_lock(&s->q_lock);
			lead_batch(s, &req);
		}
	}
	sem_destroy(&req.wake);

	if (req.result != PODIO_OK) {
		podio__spool_set_err(err, errlen, "%s", req.msg);
		return req.result;
	}
	if (ack != NULL) {
		ack->id = req.id;
		ack->duplicate = req.duplicate;
	}
	return PODIO_OK;
}

/*
 * Fills rec with delivery d's type and ids and *json (caller frees) with
 * its event without an item.  Returns PODIO_OK, else the error with err
 * filled.
 */
static enum podio_err
delivery_record(const struct podio_delivery *d,
    struct podio_spool_record *rec, char **json, char *err, size_t errlen)
{
	enum podio_err e;
	size_t len = 0;

	*json = NULL;
	if (d == NULL || d->type == NULL ||
	    strcmp(d->type, "hook.verify") == 0) {
		podio__spool_set_err(err, errlen, "spool: hook.verify is never spooled");
		return PODIO_ERR_INVALID;
	}
	e = podio_event_json(d, NULL, 0, NULL, NULL, PODIO_SPOOL_MAX_EVENT,
	    json, &len);
	if (e != PODIO_OK) {
		podio__spool_set_err(err, errlen, "spool: cannot build the event: %s",
		    podio_strerror(e));
		return e;
	}
	memset(rec, 0, sizeof(*rec));
	rec->type = d->type;
	rec->has = d->has & (PODIO_HAS_HOOK_ID | PODIO_HAS_ITEM_ID |
	    PODIO_HAS_ITEM_REVISION_ID | PODIO_HAS_APP_ID);
	rec->hook_id = d->hook_id;
	rec->item_id = d->item_id;
	rec->item_revision_id = d->item_revision_id;
	rec->app_id = d->app_id;
	rec->event_json = *json;
	rec->event_len = len;
	return PODIO_OK;
}

/* See spool.h. */
enum podio_err
podio_spool_append_delivery(struct podio_spool *s,
    const struct podio_delivery *d, struct podio_spool_ack *ack, char *err,
    size_t errlen)
{
	struct podio_spool_record rec;
	enum podio_err e;
	char *json = NULL;

	if ((e = delivery_record(d, &rec, &json, err, errlen)) == PODIO_OK)
		e = podio_spool_append(s, &rec, ack, err, errlen);
	free(json);
	return e;
}

/* See spool.h. */
enum podio_err
podio_spool_append_delivery_async(struct podio_spool *s,
    const struct podio_delivery *d, podio_spool_done_fn done, void *arg,
    char *err, size_t errlen)
{
	struct spool_req *r;
	enum podio_err e;

	if (s == NULL || done == NULL) {
		podio__spool_set_err(err, errlen, "spool: no spool or no completion");
		return PODIO_ERR_INVALID;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		podio__spool_set_err(err, errlen, "spool: out of memory");
		return PODIO_ERR_NOMEM;
	}
	if ((e = delivery_record(d, &r->own, &r->own_json, err, errlen)) !=
	    PODIO_OK || (e = append_check(&r->own, err, errlen)) !=
	    PODIO_OK) {
		free(r->own_json);
		free(r);
		return e;
	}
	r->rec = &r->own;
	r->done_fn = done;
	r->done_arg = arg;
	append_queue(s, r);
	return PODIO_OK;
}

void
podio_spool_stats(struct podio_spool *s, struct podio_spool_stats *stats)
{
	pthread_mutex_lock(&s->q_lock);
	*stats = s->stats;
	pthread_mutex_unlock(&s->q_lock);
}

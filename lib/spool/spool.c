/*
 * spool.c: the spool every caller sees (spool.h), above its backends
 * (spool_int.h): opening the backend a location names, the checks and
 * defaults of every operation, the group commit of appends, and the
 * memory of events and batches.
 *
 * Appends go through a queue (q_lock): the first appender to find no
 * commit running becomes the leader, takes everything queued, has the
 * backend write it in one transaction and one flush, and wakes the
 * others, each by its own semaphore; appends that arrive meanwhile queue
 * up, and the first of them leads the next commit.  So a lone append
 * costs one flush and a crowd of them shares flushes, without any sleep.
 * An append that does not wait (the FastCGI server's: its worker goes on
 * to the next request) is ended by the leader with a callback, and when
 * such an append is first in the queue the leader goes on with the next
 * commit itself.
 */
#include <config.h>

#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "event.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "util.h"

/* ---------------------------------------------------------------- shared */

int64_t
podio__spool_now(const struct podio_spool *s)
{
	return podio__wall_ms() + s->skew_ms;
}

/* See spool_int.h. */
void
podio__spool_set_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Whether type matches [a-z0-9_.-]{1,PODIO_WEBHOOK_MAX_TYPE}. */
int
podio__spool_valid_type(const char *t, size_t len)
{
	size_t i;

	if (len == 0 || len > PODIO_WEBHOOK_MAX_TYPE)
		return 0;
	for (i = 0; i < len; i++)
		if (!((t[i] >= 'a' && t[i] <= 'z') || (t[i] >= '0' &&
		    t[i] <= '9') || t[i] == '_' || t[i] == '.' || t[i] == '-'))
			return 0;
	return 1;
}

/* See spool_int.h. */
unsigned long long
podio__spool_pidns(void)
{
	struct stat st;

	if (stat("/proc/self/ns/pid", &st) != 0)
		return 0;
	return (unsigned long long)st.st_ino;
}

/* Fills owner with "PID-RANDOM-PIDNS": leases of this handle; the pid
 * namespace tells whether another process can look the PID up. */
static void
make_owner(char *owner, size_t n)
{
	unsigned long long r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != (ssize_t)sizeof(r))
		r = (unsigned long long)podio__now_ms() ^
		    (unsigned long long)(uintptr_t)owner;
	snprintf(owner, n, "%ld-%016llx-%llu", (long)getpid(), r,
	    podio__spool_pidns());
}

void
podio__spool_base_init(struct podio_spool *s, const struct spool_ops *ops)
{
	s->ops = ops;
	pthread_mutex_init(&s->q_lock, NULL);
	s->q_tail = &s->q_head;
	make_owner(s->owner, sizeof(s->owner));
}

void
podio__spool_base_end(struct podio_spool *s)
{
	pthread_mutex_destroy(&s->q_lock);
	free(s->path);
	s->path = NULL;
}

const char *
podio_spool_state_name(enum podio_spool_state state)
{
	switch (state) {
	case PODIO_SPOOL_PENDING:
		return "pending";
	case PODIO_SPOOL_RETRYING:
		return "retrying";
	case PODIO_SPOOL_IN_FLIGHT:
		return "in flight";
	case PODIO_SPOOL_DEAD:
		return "dead";
	case PODIO_SPOOL_BAD:
		return "bad";
	}
	return "unknown";
}

void
podio__spool_event_clear(struct podio_spool_event *ev)
{
	free(ev->type);
	free(ev->event_json);
	free(ev->progress);
	free(ev->last_error);
	memset(ev, 0, sizeof(*ev));
}

void
podio_spool_events_free(struct podio_spool_event *events, size_t n)
{
	size_t i;

	if (events == NULL)
		return;
	for (i = 0; i < n; i++)
		podio__spool_event_clear(&events[i]);
	free(events);
}

void
podio_spool_batch_clear(struct podio_spool_batch *b)
{
	if (b == NULL)
		return;
	podio_spool_events_free(b->events, b->n);
	memset(b, 0, sizeof(*b));
}

void
podio_spool_batches_free(struct podio_spool_batch *batches, size_t n)
{
	size_t i;

	if (batches == NULL)
		return;
	for (i = 0; i < n; i++)
		podio_spool_batch_clear(&batches[i]);
	free(batches);
}

/* See spool_int.h. */
enum podio_spool_state
podio__spool_state_of(const char *stored, const struct podio_spool_event *ev,
    int64_t now, const char **bad)
{
	if (stored != NULL && strcmp(stored, "dead") == 0)
		return PODIO_SPOOL_DEAD;
	if (stored != NULL && strcmp(stored, "pending") == 0)
		return ev->lease_until_ms > now ? PODIO_SPOOL_IN_FLIGHT :
		    ev->failures > 0 ? PODIO_SPOOL_RETRYING :
		    PODIO_SPOOL_PENDING;
	if (stored == NULL || strcmp(stored, "bad") != 0)
		*bad = "unknown state";
	return PODIO_SPOOL_BAD;
}

/* See spool_int.h. */
void
podio__spool_outage_of(const int64_t row[4], struct podio_spool_outage *o)
{
	o->next_probe_ms = row[0] > 0 ? row[0] : 0;
	o->interval_ms = row[1] > 0 ? row[1] : 0;
	o->claimed_until_ms = row[2] > 0 ? row[2] : 0;
	o->since_ms = row[3];
}

int
podio__spool_batch_push(struct podio_spool_batch *b,
    struct podio_spool_event *ev)
{
	struct podio_spool_event *n;

	n = realloc(b->events, (b->n + 1) * sizeof(*n));
	if (n == NULL)
		return -1;
	b->events = n;
	b->events[b->n++] = *ev;
	memset(ev, 0, sizeof(*ev));
	return 0;
}

/* ---------------------------------------------------------- open, close */

/* Whether where names a PostgreSQL database (a libpq connection URI)
 * rather than a directory. */
int
podio_spool_is_url(const char *where)
{
	return where != NULL && (strncmp(where, "postgresql://", 13) == 0 ||
	    strncmp(where, "postgres://", 11) == 0);
}

#ifndef HAVE_POSTGRESQL
enum podio_err
podio__pg_open(const char *url, struct podio_spool **out, char *err,
    size_t errlen)
{
	(void)url;
	*out = NULL;
	podio__spool_set_err(err, errlen, "spool: this build of podio-webhook "
	    "has no PostgreSQL support (it was configured without libpq): "
	    "install libpq-dev and build again, or use spool_dir");
	return PODIO_ERR_CONFIG;
}
#endif

/* See spool.h: the URI with its password masked (user:***@,
 * password=***). */
char *
podio_spool_mask(const char *url)
{
	const char *p, *at, *slash, *colon;
	char *out, *q;
	size_t n = strlen(url);

	if (!podio_spool_is_url(url))
		return podio__strdup(url);
	/* Each "***" is at most 3 bytes more than what it hides: one in
	 * the user part, one per "password=" (9 bytes) at most. */
	if ((out = malloc(n + 3 * (n / 9 + 2) + 1)) == NULL)
		return NULL;
	q = out;
	p = strstr(url, "://");
	p = p != NULL ? p + 3 : url;
	slash = p + strcspn(p, "/?");
	at = memchr(p, '@', (size_t)(slash - p));
	colon = at != NULL ? memchr(p, ':', (size_t)(at - p)) : NULL;
	if (colon != NULL) {
		memcpy(q, url, (size_t)(colon + 1 - url));
		q += colon + 1 - url;
		memcpy(q, "***", 3);
		q += 3;
		p = at;
	} else
		p = url;
	while (*p != '\0') {
		if ((p == url || p[-1] == '?' || p[-1] == '&') &&
		    strncmp(p, "password=", 9) == 0) {
			memcpy(q, "password=***", 12);
			q += 12;
			p += 9 + strcspn(p + 9, "&");
			continue;
		}
		*q++ = *p++;
	}
	*q = '\0';
	return out;
}

/* See spool.h. */
enum podio_err
podio_spool_open(const char *where, struct podio_spool **out, char *err,
    size_t errlen)
{
	if (out != NULL)
		*out = NULL;
	if (where == NULL || where[0] == '\0' || out == NULL) {
		podio__spool_set_err(err, errlen, "spool: no directory given");
		return PODIO_ERR_INVALID;
	}
	if (podio_spool_is_url(where))
		return podio__pg_open(where, out, err, errlen);
	return podio__sqlite_open(where, out, err, errlen);
}

/* See spool.h. */
enum podio_err
podio_spool_open_intake(const char *where, struct podio_spool **out,
    char *err, size_t errlen)
{
	if (where == NULL || where[0] == '\0' || out == NULL ||
	    podio_spool_is_url(where))
		return podio_spool_open(where, out, err, errlen);
	*out = NULL;
	return podio__sqlite_open_intake(where, out, err, errlen);
}

/* See spool.h. */
void
podio_spool_close(struct podio_spool *s)
{
	if (s != NULL)
		s->ops->close(s);
}

const char *
podio_spool_path(const struct podio_spool *s)
{
	return s->path;
}

const char *
podio_spool_backend(const struct podio_spool *s)
{
	return s->ops->name;
}

void
podio__spool_set_clock_skew(struct podio_spool *s, int64_t skew_ms)
{
	s->skew_ms = skew_ms;
}

int
podio_spool_wait(struct podio_spool *s, int64_t timeout_ms)
{
	if (s->ops->wait == NULL)
		return -1;
	return s->ops->wait(s, timeout_ms);
}

/* See spool.h. */
void
podio_spool_tidy_oneshot(struct podio_spool *s)
{
	if (s != NULL && s->ops->tidy_oneshot != NULL)
		s->ops->tidy_oneshot(s);
}

long
podio__spool_set_max_pages(struct podio_spool *s, long max_pages)
{
	if (s->ops->set_max_pages == NULL)
		return -1;
	return s->ops->set_max_pages(s, max_pages);
}

/* ------------------------------------------------------------ appending */

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

		s->ops->append(s, batch);

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
				ack.intake = s->intake;
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
		ack->intake = 0;
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
		ack->intake = s->intake;
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
	/* The app of the hook when the delivery names none of its own:
	 * the app of an item event's item, which its fetch then uses. */
	rec->app_id = d->app_id != 0 ? d->app_id : d->podio_app;
	if (rec->app_id != 0)
		rec->has |= PODIO_HAS_APP_ID;
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

/* --------------------------------------------------------------- taking */

/* Completes the options of a take (spool.h gives the defaults). */
static void
take_init(const struct podio_spool *s, enum spool_take_mode mode,
    uint64_t key, const struct podio_spool_take_opts *o,
    struct spool_take *t)
{
	t->mode = mode;
	t->key = key;
	t->now = podio__spool_now(s);
	t->lease_ms = o != NULL && o->lease_ms > 0 ? o->lease_ms :
	    SPOOL_LEASE_MS;
	t->max_events = o != NULL && o->max_events > 0 ? o->max_events :
	    SPOOL_MAX_EVENTS;
	t->settle_ms = o != NULL && o->settle_ms > 0 ? o->settle_ms : 0;
	t->settle_max_ms = o != NULL && o->settle_max_ms > 0 ?
	    o->settle_max_ms : SPOOL_FOREVER_MS;
	t->no_fetch = o != NULL && o->no_fetch;
}

static enum podio_err
take_units(struct podio_spool *s, enum spool_take_mode mode, uint64_t key,
    const struct podio_spool_take_opts *opts, size_t max,
    struct podio_spool_batch **out, size_t *n)
{
	struct spool_take t;

	*out = NULL;
	*n = 0;
	if (s == NULL || max == 0)
		return PODIO_ERR_INVALID;
	if (max > SPOOL_TAKE_TRIES)
		max = SPOOL_TAKE_TRIES;
	take_init(s, mode, key, opts, &t);
	return s->ops->take(s, &t, max, out, n);
}

/* Moves the one batch of a take into *batch. */
static enum podio_err
take_one(struct podio_spool *s, enum spool_take_mode mode, uint64_t key,
    const struct podio_spool_take_opts *opts,
    struct podio_spool_batch *batch)
{
	struct podio_spool_batch *bs = NULL;
	enum podio_err e;
	size_t n = 0;

	memset(batch, 0, sizeof(*batch));
	if ((e = take_units(s, mode, key, opts, 1, &bs, &n)) != PODIO_OK)
		return e;
	*batch = bs[0];
	free(bs);
	return PODIO_OK;
}

enum podio_err
podio_spool_take(struct podio_spool *s,
    const struct podio_spool_take_opts *opts, struct podio_spool_batch *batch)
{
	return take_one(s, SPOOL_TAKE_ANY, 0, opts, batch);
}

enum podio_err
podio_spool_take_many(struct podio_spool *s,
    const struct podio_spool_take_opts *opts, size_t max_units,
    struct podio_spool_batch **batches, size_t *n)
{
	return take_units(s, SPOOL_TAKE_ANY, 0, opts, max_units, batches, n);
}

enum podio_err
podio_spool_take_item(struct podio_spool *s, uint64_t item_id,
    const struct podio_spool_take_opts *opts, struct podio_spool_batch *batch)
{
	return take_one(s, SPOOL_TAKE_ITEM, item_id, opts, batch);
}

enum podio_err
podio_spool_take_app(struct podio_spool *s, uint64_t app_id,
    const struct podio_spool_take_opts *opts, size_t max_items,
    struct podio_spool_batch **batches, size_t *n)
{
	return take_units(s, SPOOL_TAKE_APP, app_id, opts, max_items,
	    batches, n);
}

enum podio_err
podio_spool_next_due(struct podio_spool *s,
    const struct podio_spool_take_opts *opts, int64_t *when_ms)
{
	struct spool_take t;

	*when_ms = 0;
	take_init(s, SPOOL_TAKE_ANY, 0, opts, &t);
	return s->ops->next_due(s, &t, when_ms);
}

enum podio_err
podio_spool_pending_items(struct podio_spool *s, uint64_t app_id,
    size_t max, struct podio_spool_item **items, size_t *n)
{
	*items = NULL;
	*n = 0;
	return s->ops->pending_items(s, app_id, max, items, n);
}

enum podio_err
podio_spool_learn_app(struct podio_spool *s, uint64_t hook_id,
    uint64_t app_id)
{
	return s->ops->learn_app(s, hook_id, app_id);
}

/* ------------------------------------------------- revisions and marks */

enum podio_err
podio_spool_note_revisions(struct podio_spool *s, const uint64_t *item_ids,
    const int64_t *revisions, size_t n)
{
	if (s == NULL || n > PODIO_SPOOL_MAX_REVISIONS ||
	    (n > 0 && (item_ids == NULL || revisions == NULL)))
		return PODIO_ERR_INVALID;
	if (n == 0)
		return PODIO_OK;
	return s->ops->note_revisions(s, item_ids, revisions, n);
}

enum podio_err
podio_spool_fetched_revisions(struct podio_spool *s,
    const uint64_t *item_ids, size_t n, int64_t *revisions)
{
	size_t i;

	if (s == NULL || n > PODIO_SPOOL_MAX_REVISIONS ||
	    (n > 0 && (item_ids == NULL || revisions == NULL)))
		return PODIO_ERR_INVALID;
	for (i = 0; i < n; i++)
		revisions[i] = -1;
	if (n == 0)
		return PODIO_OK;
	return s->ops->fetched_revisions(s, item_ids, n, revisions);
}

/* Whether name names a mark: [a-z_][a-z0-9_]{0,63} (an app id may
 * end it, as in "hooks_active_1234"). */
static int
mark_name_ok(const char *name)
{
	size_t n;

	if (name == NULL)
		return 0;
	if (strspn(name, "abcdefghijklmnopqrstuvwxyz_") == 0)
		return 0;
	n = strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789_");
	return n <= 64 && name[n] == '\0';
}

enum podio_err
podio_spool_set_mark(struct podio_spool *s, const char *name, int64_t value)
{
	if (s == NULL || !mark_name_ok(name))
		return PODIO_ERR_INVALID;
	return s->ops->set_mark(s, name, value);
}

enum podio_err
podio_spool_get_mark(struct podio_spool *s, const char *name, int64_t *value)
{
	*value = 0;
	if (s == NULL || !mark_name_ok(name))
		return PODIO_ERR_INVALID;
	return s->ops->get_mark(s, name, value);
}

/* ------------------------------------------------------------- outcomes */

enum podio_err
podio_spool_done_many(struct podio_spool *s, const int64_t *ids, size_t n)
{
	if (s == NULL || (ids == NULL && n > 0))
		return PODIO_ERR_INVALID;
	return s->ops->done_many(s, ids, n);
}

enum podio_err
podio_spool_done(struct podio_spool *s, int64_t id)
{
	return podio_spool_done_many(s, &id, 1);
}

/* The length of reason cut to PODIO_SPOOL_MAX_REASON bytes, never inside
 * a UTF-8 sequence. */
static size_t
reason_len(const char *r)
{
	size_t n = strnlen(r, PODIO_SPOOL_MAX_REASON + 1);

	if (n > PODIO_SPOOL_MAX_REASON) {
		n = PODIO_SPOOL_MAX_REASON;
		while (n > 0 && ((unsigned char)r[n] & 0xc0) == 0x80)
			n--;
	}
	return n;
}

static enum podio_err
change(struct podio_spool *s, int64_t id, struct spool_change *c,
    long *attempts)
{
	if (s == NULL)
		return PODIO_ERR_INVALID;
	if (c->reason != NULL)
		c->reason_len = reason_len(c->reason);
	return s->ops->change(s, id, c, attempts);
}

enum podio_err
podio_spool_fail(struct podio_spool *s, int64_t id, const char *reason,
    int64_t retry_ms, int counts_as_attempt, long *attempts)
{
	struct spool_change c = { .op = SPOOL_FAIL };

	c.reason = reason != NULL ? reason : "failed";
	c.retry_ms = retry_ms;
	c.counts = counts_as_attempt ? 1 : 0;
	return change(s, id, &c, attempts);
}

enum podio_err
podio_spool_dead(struct podio_spool *s, int64_t id, const char *reason)
{
	struct spool_change c = { .op = SPOOL_DEAD };

	c.reason = reason != NULL ? reason : "dead";
	return change(s, id, &c, NULL);
}

enum podio_err
podio_spool_release(struct podio_spool *s, int64_t id)
{
	struct spool_change c = { .op = SPOOL_RELEASE };

	return change(s, id, &c, NULL);
}

enum podio_err
podio_spool_extend(struct podio_spool *s, int64_t id, int64_t lease_ms)
{
	struct spool_change c = { .op = SPOOL_EXTEND };

	c.lease_ms = lease_ms > 0 ? lease_ms : SPOOL_LEASE_MS;
	return change(s, id, &c, NULL);
}

enum podio_err
podio_spool_progress(struct podio_spool *s, int64_t id,
    const char *progress)
{
	struct spool_change c = { .op = SPOOL_PROGRESS };

	if (progress != NULL && strlen(progress) > PODIO_SPOOL_MAX_PROGRESS)
		return PODIO_ERR_TOO_LARGE;
	c.progress = progress;
	return change(s, id, &c, NULL);
}

/* ------------------------------------------------------------- commands */

enum podio_err
podio_spool_status(struct podio_spool *s, struct podio_spool_status *st)
{
	memset(st, 0, sizeof(*st));
	return s->ops->status(s, st);
}

enum podio_err
podio_spool_list(struct podio_spool *s, unsigned mask, int64_t after_id,
    size_t max, struct podio_spool_event **events, size_t *n)
{
	*events = NULL;
	*n = 0;
	return s->ops->list(s, mask, after_id, max, events, n);
}

enum podio_err
podio_spool_show(struct podio_spool *s, int64_t id,
    struct podio_spool_event **event)
{
	*event = NULL;
	return s->ops->show(s, id, event);
}

enum podio_err
podio_spool_replay(struct podio_spool *s, int64_t id)
{
	struct podio_spool_event *ev = NULL;
	enum podio_err e;
	size_t n = 0;
	int set_aside;

	if (id <= 0)
		return PODIO_ERR_NOT_FOUND;
	if ((e = podio_spool_show(s, id, &ev)) != PODIO_OK)
		return e;
	set_aside = ev->state == PODIO_SPOOL_DEAD ||
	    ev->state == PODIO_SPOOL_BAD;
	podio_spool_events_free(ev, 1);
	if (!set_aside)
		return PODIO_ERR_INVALID;
	e = s->ops->replay(s, id, &n);
	if (e == PODIO_OK && n == 0)
		return PODIO_ERR_INVALID;
	return e;
}

enum podio_err
podio_spool_replay_dead(struct podio_spool *s, size_t *n)
{
	size_t got = 0;
	enum podio_err e;

	e = s->ops->replay(s, 0, &got);
	if (n != NULL)
		*n = e == PODIO_OK ? got : 0;
	return e;
}

enum podio_err
podio_spool_purge(struct podio_spool *s, unsigned mask,
    int64_t older_than_ms, size_t *n)
{
	size_t got = 0;
	enum podio_err e;

	if (n != NULL)
		*n = 0;
	if (mask == 0 || (mask & ~(PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD) |
	    PODIO_SPOOL_MASK(PODIO_SPOOL_BAD))) != 0 || older_than_ms < 0)
		return PODIO_ERR_INVALID;
	e = s->ops->purge(s, mask, older_than_ms, &got);
	if (n != NULL && e == PODIO_OK)
		*n = got;
	return e;
}

enum podio_err
podio_spool_forget(struct podio_spool *s, int64_t older_than_ms,
    size_t *n)
{
	size_t got = 0;
	enum podio_err e;

	if (n != NULL)
		*n = 0;
	if (older_than_ms < 0)
		return PODIO_ERR_INVALID;
	e = s->ops->forget(s, older_than_ms, &got);
	if (n != NULL && e == PODIO_OK)
		*n = got;
	return e;
}

enum podio_err
podio_spool_reclaim(struct podio_spool *s, size_t *n)
{
	size_t got = 0;
	enum podio_err e;

	if (n != NULL)
		*n = 0;
	if (s == NULL)
		return PODIO_ERR_INVALID;
	e = s->ops->reclaim(s, &got);
	if (n != NULL)
		*n = got;
	return e;
}

/* ---------------------------------------------------------- rate limits */

/* Whether key is a usable credential key or rate class. */
static int
valid_key(const char *key)
{
	return key != NULL && key[0] != '\0' &&
	    strlen(key) <= PODIO_SPOOL_MAX_KEY;
}

enum podio_err
podio_spool_set_pause(struct podio_spool *s, const char *cred,
    const char *rate_class, int64_t until_ms)
{
	if (!valid_key(cred) || !valid_key(rate_class))
		return PODIO_ERR_INVALID;
	return s->ops->set_pause(s, cred, rate_class, until_ms);
}

enum podio_err
podio_spool_get_pause(struct podio_spool *s, const char *cred,
    const char *rate_class, int64_t *until_ms)
{
	*until_ms = 0;
	if (!valid_key(cred) || !valid_key(rate_class))
		return PODIO_ERR_INVALID;
	return s->ops->get_pause(s, cred, rate_class, until_ms);
}

enum podio_err
podio_spool_record_remaining(struct podio_spool *s, const char *cred,
    const char *rate_class, long remaining, long limit)
{
	if (!valid_key(cred) || !valid_key(rate_class))
		return PODIO_ERR_INVALID;
	return s->ops->record_remaining(s, cred, rate_class,
	    remaining < 0 ? -1 : remaining, limit < 0 ? -1 : limit);
}

enum podio_err
podio_spool_get_remaining(struct podio_spool *s, const char *cred,
    const char *rate_class, long *remaining, long *limit, int64_t *at_ms)
{
	*remaining = -1;
	*limit = -1;
	*at_ms = 0;
	if (!valid_key(cred) || !valid_key(rate_class))
		return PODIO_ERR_INVALID;
	return s->ops->get_remaining(s, cred, rate_class, remaining, limit,
	    at_ms);
}

enum podio_err
podio_spool_get_outage(struct podio_spool *s, const char *cred,
    struct podio_spool_outage *o)
{
	memset(o, 0, sizeof(*o));
	if (!valid_key(cred))
		return PODIO_ERR_INVALID;
	return s->ops->get_outage(s, cred, o);
}

enum podio_err
podio_spool_set_outage(struct podio_spool *s, const char *cred,
    int64_t next_probe_ms, int64_t interval_ms)
{
	if (!valid_key(cred))
		return PODIO_ERR_INVALID;
	return s->ops->set_outage(s, cred, next_probe_ms, interval_ms);
}

enum podio_err
podio_spool_claim_probe(struct podio_spool *s, const char *cred,
    int64_t until_ms, int *claimed)
{
	*claimed = 0;
	if (!valid_key(cred))
		return PODIO_ERR_INVALID;
	return s->ops->claim_probe(s, cred, until_ms, claimed);
}

enum podio_err
podio_spool_release_probe(struct podio_spool *s, const char *cred,
    int64_t until_ms)
{
	if (!valid_key(cred))
		return PODIO_ERR_INVALID;
	return s->ops->release_probe(s, cred, until_ms);
}

enum podio_err
podio_spool_end_outage(struct podio_spool *s, const char *cred, int *ended)
{
	*ended = 0;
	if (!valid_key(cred))
		return PODIO_ERR_INVALID;
	return s->ops->end_outage(s, cred, ended);
}

/* Whether cred is a usable credential key of a token: the token store's
 * owner key, which holds the API URL too. */
static int
valid_cred(const char *cred)
{
	return cred != NULL && cred[0] != '\0' &&
	    strlen(cred) <= PODIO_SPOOL_MAX_TOKEN_KEY;
}

int
podio__spool_shares_tokens(const struct podio_spool *s)
{
	return s != NULL && s->ops->token_get != NULL;
}

enum podio_err
podio__spool_token_get(struct podio_spool *s, const char *cred, char **blob,
    size_t *len)
{
	*blob = NULL;
	*len = 0;
	if (!podio__spool_shares_tokens(s) || !valid_cred(cred))
		return PODIO_ERR_INVALID;
	return s->ops->token_get(s, cred, blob, len);
}

enum podio_err
podio__spool_token_put(struct podio_spool *s, const char *cred,
    const char *blob, size_t len)
{
	if (!podio__spool_shares_tokens(s) || !valid_cred(cred) ||
	    blob == NULL)
		return PODIO_ERR_INVALID;
	return s->ops->token_put(s, cred, blob, len);
}

enum podio_err
podio__spool_token_lock(struct podio_spool *s, const char *cred,
    long timeout_ms)
{
	if (!podio__spool_shares_tokens(s) || !valid_cred(cred))
		return PODIO_ERR_INVALID;
	return s->ops->token_lock(s, cred, timeout_ms);
}

void
podio__spool_token_unlock(struct podio_spool *s, const char *cred)
{
	if (podio__spool_shares_tokens(s) && valid_cred(cred))
		s->ops->token_unlock(s, cred);
}

enum podio_err
podio_spool_resume(struct podio_spool *s, struct podio_spool_pause **out,
    size_t *n)
{
	*out = NULL;
	*n = 0;
	return s->ops->resume(s, out, n);
}

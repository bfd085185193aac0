/*
 * process_spool.c: the spool of one process and the wake-ups of its
 * processor threads (see process_spool.h).
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "podio.h"
#include "log.h"
#include "process_spool.h"
#include "spool.h"

/* A processor in process_spool_wait(), on its stack. */
struct process_waiter {
	struct process_waiter *next;
	int64_t until_ms;              /* monotonic; shortened by news */
};

struct process_spool {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct podio_spool *spool;     /* owned, NULL until opened */
	struct podio_spool *intake;    /* a one-shot process's, likewise */
	int oneshot;
	uint64_t gen;                  /* notifications so far */
	uint64_t now_gen;              /* the last one of an event due at
	                                  once (0: none yet) */
	int64_t later_min_ms;          /* the shortest delay of those of
	                                  events due later (-1: none yet) */
	struct process_waiter *waiters;
	int waiting;                   /* processors in process_spool_wait() */
	int looking;                   /* processors woken for news that
	                                  have not taken yet */
	int kicks;                     /* wake-ups for more of a backlog */
	int stopping;
};

/* See process_spool.h. */
struct process_spool *
process_spool_new(void)
{
	struct process_spool *ps;
	pthread_condattr_t attr;

	if ((ps = calloc(1, sizeof(*ps))) == NULL)
		return NULL;
	ps->later_min_ms = -1;
	if (pthread_mutex_init(&ps->lock, NULL) != 0) {
		free(ps);
		return NULL;
	}
	/* Timed waits on the monotonic clock: a clock step must not make
	 * a processor sleep for hours. */
	if (pthread_condattr_init(&attr) != 0 ||
	    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&ps->cond, &attr) != 0) {
		pthread_mutex_destroy(&ps->lock);
		free(ps);
		return NULL;
	}
	pthread_condattr_destroy(&attr);
	return ps;
}

/* See process_spool.h. */
void
process_spool_free(struct process_spool *ps)
{
	if (ps == NULL)
		return;
	podio_spool_close(ps->spool);
	podio_spool_close(ps->intake);
	pthread_cond_destroy(&ps->cond);
	pthread_mutex_destroy(&ps->lock);
	free(ps);
}

/*
 * Test seam: PODIO_TEST_SPOOL_MAX_PAGES (a page count, 1 to 2^31) caps
 * the spool database of this process as a full disk would
 * (podio__spool_set_max_pages()), for tests on machines where a small
 * file system cannot be mounted.  Not a configuration key.
 */
static void
process_spool_test_cap(struct podio_spool *spool)
{
	const char *env;
	char *end;
	long v;

	env = getenv("PODIO_TEST_SPOOL_MAX_PAGES");
	if (env == NULL || env[0] == '\0')
		return;
	v = strtol(env, &end, 10);
	if (*end == '\0' && v >= 1 && v <= 2147483647L &&
	    podio__spool_set_max_pages(spool, v) < 0)
		podio_log(PODIO_LOG_WARN, "cannot cap the spool at %ld pages",
		    v);
}

/* Opens *slot on dir (the intake when intake) unless open, under
 * ps->lock, so two threads never open two handles.  Returns *slot. */
static struct podio_spool *
process_spool_open(struct process_spool *ps, struct podio_spool **slot,
    int intake, const char *dir, char *err, size_t errlen)
{
	struct podio_spool *spool;
	enum podio_err rc;

	pthread_mutex_lock(&ps->lock);
	if (*slot == NULL) {
		if (dir == NULL || dir[0] == '\0') {
			snprintf(err, errlen, "spool_dir is not set");
		} else if ((rc = (intake ? podio_spool_open_intake :
		    podio_spool_open)(dir, slot, err, errlen)) != PODIO_OK) {
			*slot = NULL;
			if (errlen > 0 && err[0] == '\0') {
				char *shown = podio_spool_mask(dir);

				snprintf(err, errlen, "%s: %s", shown != NULL ?
				    shown : "spool", podio_strerror(rc));
				free(shown);
			}
		} else {
			process_spool_test_cap(*slot);
		}
	}
	spool = *slot;
	pthread_mutex_unlock(&ps->lock);
	return spool;
}

/* See process_spool.h. */
struct podio_spool *
process_spool_get(struct process_spool *ps, const char *dir, char *err,
    size_t errlen)
{
	return process_spool_open(ps, &ps->spool, 0, dir, err, errlen);
}

/* See process_spool.h. */
void
process_spool_set_oneshot(struct process_spool *ps)
{
	ps->oneshot = 1;
}

/* See process_spool.h. */
struct podio_spool *
process_spool_append_handle(struct process_spool *ps, const char *dir,
    char *err, size_t errlen)
{
	if (!ps->oneshot)
		return process_spool_get(ps, dir, err, errlen);
	return process_spool_open(ps, &ps->intake, 1, dir, err, errlen);
}

/* The monotonic clock in ms. */
static int64_t
process_mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * See process_spool.h.  An event due at once wakes one waiting processor,
 * and only when no other processor was woken for news and has yet to
 * take: that one will see this event too.  A processor that is running
 * events looks again before it waits (the generation moved), so it never
 * misses one.  An event due later_ms from now wakes nobody: the waiters
 * that would sleep past its time wake at that time instead, and a
 * processor that was running events meanwhile waits no longer than
 * later_ms past the moment it last looked (process_spool_wait()).  Under
 * a stream of item events within their settle window, the processors
 * then look when something can be due, not once per event.
 */
void
process_spool_notify(struct process_spool *ps, int64_t later_ms)
{
	struct process_waiter *w;
	int64_t due;
	int shortened = 0;

	pthread_mutex_lock(&ps->lock);
	ps->gen++;
	if (later_ms <= 0) {
		ps->now_gen = ps->gen;
		if (ps->waiting > 0 && ps->looking == 0)
			pthread_cond_signal(&ps->cond);
	} else {
		if (ps->later_min_ms < 0 || later_ms < ps->later_min_ms)
			ps->later_min_ms = later_ms;
		due = process_mono_ms() + later_ms;
		for (w = ps->waiters; w != NULL; w = w->next)
			if (w->until_ms > due) {
				w->until_ms = due;
				shortened = 1;
			}
		if (shortened)
			pthread_cond_broadcast(&ps->cond);
	}
	pthread_mutex_unlock(&ps->lock);
}

/* See process_spool.h. */
struct process_gen
process_spool_generation(struct process_spool *ps)
{
	struct process_gen g;

	/* The time first: an event notified after it is due later_min_ms
	 * after it at the earliest. */
	g.at_ms = process_mono_ms();
	pthread_mutex_lock(&ps->lock);
	g.gen = ps->gen;
	pthread_mutex_unlock(&ps->lock);
	return g;
}

/* The monotonic time at ms (a monotonic ms value). */
static struct timespec
process_deadline(int64_t at_ms)
{
	struct timespec until;

	if (at_ms < 0)
		at_ms = 0;
	until.tv_sec = (time_t)(at_ms / 1000);
	until.tv_nsec = (long)(at_ms % 1000) * 1000000L;
	return until;
}

/* See process_spool.h. */
enum process_wake
process_spool_wait(struct process_spool *ps, struct process_gen g, int64_t ms)
{
	struct process_waiter self, **pp;
	struct timespec until;
	enum process_wake w = PROCESS_WAKE_TIMEOUT;
	int rc = 0;

	pthread_mutex_lock(&ps->lock);
	self.until_ms = process_mono_ms() + (ms > 0 ? ms : 0);
	/* Events due later, stored since g: the first of them is due
	 * later_min_ms after g at the earliest. */
	if (ps->gen != g.gen && ps->later_min_ms >= 0 &&
	    g.at_ms + ps->later_min_ms < self.until_ms)
		self.until_ms = g.at_ms + ps->later_min_ms;
	self.next = ps->waiters;
	ps->waiters = &self;
	ps->waiting++;
	while (!ps->stopping && ps->now_gen <= g.gen && ps->kicks == 0 &&
	    rc != ETIMEDOUT) {
		until = process_deadline(self.until_ms);
		rc = pthread_cond_timedwait(&ps->cond, &ps->lock, &until);
	}
	ps->waiting--;
	for (pp = &ps->waiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == &self) {
			*pp = self.next;
			break;
		}
	if (ps->stopping)
		w = PROCESS_WAKE_STOP;
	else if (ps->gen != g.gen) {
		w = PROCESS_WAKE_NEWS;
		ps->looking++;
	} else if (ps->kicks > 0) {
		w = PROCESS_WAKE_MORE;
		ps->kicks--;
	}
	pthread_mutex_unlock(&ps->lock);
	return w;
}

/* See process_spool.h.  A plain sleep: it is short, and a stop waits for it. */
int
process_spool_gather(struct process_spool *ps, int64_t ms)
{
	struct timespec ts;

	if (ms > 0) {
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
			;
	}
	return process_spool_stopping(ps);
}

/* See process_spool.h. */
void
process_spool_taking(struct process_spool *ps)
{
	pthread_mutex_lock(&ps->lock);
	if (ps->looking > 0)
		ps->looking--;
	pthread_mutex_unlock(&ps->lock);
}

/* See process_spool.h. */
void
process_spool_help(struct process_spool *ps)
{
	pthread_mutex_lock(&ps->lock);
	if (ps->waiting > ps->kicks) {
		ps->kicks++;
		pthread_cond_signal(&ps->cond);
	}
	pthread_mutex_unlock(&ps->lock);
}

/* See process_spool.h. */
void
process_spool_stop(struct process_spool *ps)
{
	pthread_mutex_lock(&ps->lock);
	ps->stopping = 1;
	pthread_cond_broadcast(&ps->cond);
	pthread_mutex_unlock(&ps->lock);
}

/* See process_spool.h. */
int
process_spool_stopping(struct process_spool *ps)
{
	int stopping;

	pthread_mutex_lock(&ps->lock);
	stopping = ps->stopping;
	pthread_mutex_unlock(&ps->lock);
	return stopping;
}

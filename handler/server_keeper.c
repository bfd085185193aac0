/*
 * server_keeper.c: the keeper thread of serve (see server_int.h).
 *
 * It notes in the spool until when a receiver ran (the mark
 * PODIO_SPOOL_MARK_ALIVE: when it starts, every SERVER_ALIVE_EVERY_MS and
 * when it stops), and with catch_up = yes, when it starts, backfills the
 * configured apps (hooks_apps()) for the time since the mark it found (the receiver was
 * down), at most catch_up_max back (backfill.h).  It never takes a
 * worker or a processor: a long catch-up holds up no request and no
 * event, and the events it queues go to the processors.  It only logs.
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "podio.h"
#include "backfill.h"
#include "hooks.h"
#include "log.h"
#include "process.h"
#include "runtime.h"
#include "server_int.h"
#include "spool.h"
#include "util.h"

/* How often the mark is noted while the server runs, and how often the
 * thread looks whether the server stops. */
#define SERVER_ALIVE_EVERY_MS ((int64_t)60 * 1000)
#define SERVER_KEEPER_LOOK_MS 200
/* Edits of the last moments before a stop may have missed their
 * delivery: the catch-up starts this long before the mark (beside the
 * interval of the mark itself). */
#define SERVER_CATCH_UP_SLACK_MS ((int64_t)10 * 1000)

static int
server_keeper_stopping(void *arg)
{
	struct server *srv = arg;

	return process_spool_stopping(srv->ps);
}

/* Sleeps up to ms, or less when the server stops. */
static void
server_keeper_nap(struct server *srv, int64_t ms)
{
	struct timespec ts;
	int64_t end = podio__now_ms() + ms, left;

	while (!process_spool_stopping(srv->ps) &&
	    (left = end - podio__now_ms()) > 0) {
		if (left > SERVER_KEEPER_LOOK_MS)
			left = SERVER_KEEPER_LOOK_MS;
		ts.tv_sec = (time_t)(left / 1000);
		ts.tv_nsec = (long)(left % 1000) * 1000000L;
		(void)nanosleep(&ts, NULL);
	}
}

/*
 * The catch-up of a start: every configured app (hooks_apps()) since the
 * mark last (0 when the spool knew none), at most catch_up_max back.
 */
static void
server_catch_up(struct server *srv, const struct runtime *rt,
    struct podio_client *client, struct podio_spool *spool, int64_t last)
{
	int64_t now = podio__wall_ms(), since, floor;
	uint64_t *apps = NULL;
	size_t napps = 0, i;

	if (hooks_apps(rt->cfg, &apps, &napps) != 0) {
		podio_log(PODIO_LOG_ERROR, "catch-up: out of memory");
		return;
	}
	if (napps == 0) {
		podio_log(PODIO_LOG_WARN, "catch-up: no app is configured "
		    "(app_id, app lines or hook lines): nothing to catch up");
		return;
	}
	if (last <= 0) {
		podio_log(PODIO_LOG_INFO, "catch-up: the spool knows no "
		    "earlier run: nothing to catch up");
		free(apps);
		return;
	}
	since = last - SERVER_ALIVE_EVERY_MS - SERVER_CATCH_UP_SLACK_MS;
	floor = now - podio_config_get_ms(rt->cfg, "catch_up_max");
	if (since < floor) {
		podio_log(PODIO_LOG_WARN, "catch-up: the receiver was down "
		    "since %" PRId64 " s ago, longer than catch_up_max: the "
		    "edits before that are not caught up", (now - last) /
		    1000);
		since = floor;
	}
	for (i = 0; i < napps && !server_keeper_stopping(srv); i++)
		(void)backfill_background(rt, client, spool, apps[i], since,
		    "catch-up", server_keeper_stopping, srv);
	free(apps);
}

/* See server_int.h. */
void *
server_keeper(void *arg)
{
	struct server *srv = arg;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool = NULL, *own = NULL;
	char err[512], *own_dir = NULL;
	int64_t last = 0;
	int started = 0, warned = 0;

	while (!process_spool_stopping(srv->ps)) {
		err[0] = '\0';
		if (server_take_runtime(srv, &rt, &client) != 0 ||
		    (spool = server_own_spool(&own, &own_dir,
		    podio_config_spool(rt->cfg), err, sizeof(err))) == NULL) {
			if (!warned && err[0] != '\0')
				podio_log(PODIO_LOG_WARN, "cannot open the "
				    "spool to note the receiver runs: %s",
				    err);
			warned = 1;
			server_keeper_nap(srv, SERVER_ALIVE_EVERY_MS);
			continue;
		}
		warned = 0;
		if (!started) {
			/* The mark of the last run is read before this run
			 * writes its own. */
			started = 1;
			if (podio_spool_get_mark(spool, PODIO_SPOOL_MARK_ALIVE,
			    &last) != PODIO_OK)
				last = 0;
			(void)podio_spool_set_mark(spool,
			    PODIO_SPOOL_MARK_ALIVE, podio__wall_ms());
			if (podio_config_get_bool(rt->cfg, "catch_up"))
				server_catch_up(srv, rt, client, spool, last);
		}
		(void)podio_spool_set_mark(spool, PODIO_SPOOL_MARK_ALIVE,
		    podio__wall_ms());
		server_keeper_nap(srv, SERVER_ALIVE_EVERY_MS);
	}
	/* The stop is the end of the time this receiver ran. */
	if (spool != NULL && own != NULL)
		(void)podio_spool_set_mark(own, PODIO_SPOOL_MARK_ALIVE,
		    podio__wall_ms());
	podio_client_free(client);
	runtime_unref(rt);
	podio_spool_close(own);
	free(own_dir);
	return NULL;
}

/*
 * server_heal.c: the heal thread of the FastCGI server (server.c): with
 * heal_interval set, it runs `hooks heal` (hooks_heal_log()) as the
 * server starts and then every heal_interval, with an API client of its
 * own and a spool handle of its own (for the marks of inactive hooks
 * and, with catch_up, the backfill of their time), never in a worker or
 * a processor; what it does is logged.  A
 * reload that changes heal_interval is followed: set from 0, a run
 * follows at once; made shorter, the next run comes no later than the
 * new interval.  A stop waits for a run in progress (a few API calls,
 * each bounded by the API timeout).
 */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>

#include "podio.h"
#include "hooks.h"
#include "process_spool.h"
#include "runtime.h"
#include "server_int.h"
#include "spool.h"
#include "util.h"

/* The longest one sleep of the thread: a stop is seen within it. */
#define SERVER_HEAL_NAP_MS 500

static int
server_heal_stopping(void *arg)
{
	struct server *srv = arg;

	return process_spool_stopping(srv->ps);
}

/* See server_int.h. */
void *
server_healer(void *arg)
{
	struct server *srv = arg;
	struct hooks_heal_env env;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *own = NULL;
	char err[512], *own_dir = NULL;
	int64_t next = 0, every, now;

	while (!process_spool_stopping(srv->ps)) {
		if (server_take_runtime(srv, &rt, &client) != 0) {
			(void)process_spool_gather(srv->ps,
			    SERVER_HEAL_NAP_MS);
			continue;
		}
		every = podio_config_get_ms(rt->cfg, "heal_interval");
		now = podio__now_ms();
		if (every <= 0) {
			next = 0;
			(void)process_spool_gather(srv->ps,
			    SERVER_HEAL_NAP_MS);
			continue;
		}
		if (next == 0)
			next = now;
		else if (next > now + every)
			next = now + every;
		if (now < next) {
			(void)process_spool_gather(srv->ps,
			    next - now < SERVER_HEAL_NAP_MS ? next - now :
			    SERVER_HEAL_NAP_MS);
			continue;
		}
		err[0] = '\0';
		env.rt = rt;
		env.spool = server_own_spool(&own, &own_dir,
		    podio_config_spool(rt->cfg), err, sizeof(err));
		env.spool_err = env.spool == NULL ? err : NULL;
		env.stopping = server_heal_stopping;
		env.stop_arg = srv;
		hooks_heal_log(rt->cfg, client, &env);
		next = podio__now_ms() + every;
	}
	podio_client_free(client);
	runtime_unref(rt);
	podio_spool_close(own);
	free(own_dir);
	return NULL;
}

/*
 * creds.c: the credential of an event's API calls (see creds.h).
 */
#include <config.h>

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "podio.h"
#include "budget.h"
#include "creds.h"
#include "log.h"
#include "process.h"

/* When this process last listed the configured apps' hooks (0: never). */
static pthread_mutex_t creds_list_lock = PTHREAD_MUTEX_INITIALIZER;
static int64_t creds_listed_ms;

/* See creds.h. */
size_t
creds_count(const struct podio_config *cfg)
{
	struct podio_credential c;
	size_t n;

	for (n = 0; podio_config_credential(cfg, n, &c); n++)
		;
	return n;
}

/* See creds.h. */
size_t
creds_for_app(struct podio_client *client, uint64_t app_id, int *sure)
{
	struct podio_tokens *t = podio_client_tokens(client);
	const char *flow = NULL;
	long i;

	*sure = 0;
	if (app_id == 0) {
		/* The password flow sees every app; an app credential alone
		 * is the only one there is. */
		if (podio_tokens_identity(t, 0, &flow, NULL, NULL) == 0 &&
		    (strcmp(flow, "password") == 0 ||
		    podio_tokens_count(t) == 1))
			*sure = 1;
		return 0;
	}
	/* The app's own credential, or the password flow's. */
	if ((i = podio_tokens_for_app(t, app_id)) < 0)
		return 0;
	*sure = 1;
	return (size_t)i;
}

/* See creds.h. */
int64_t
creds_all_held_until(const struct runtime *rt, struct podio_spool *spool,
    long reserve, char *why, size_t whylen)
{
	char key[PODIO_SPOOL_MAX_KEY], other[256];
	int64_t until, first = 0;
	size_t i, n = creds_count(rt->cfg);

	if (n == 0)
		n = 1;
	for (i = 0; i < n; i++) {
		budget_cred_at(rt->cfg, i, key, sizeof(key));
		until = budget_gate(spool, key, BUDGET_CLASS, reserve, 0,
		    i == 0 ? why : other, i == 0 ? whylen : sizeof(other));
		if (until == 0)
			return 0;
		if (first == 0 || until < first)
			first = until;
	}
	return first;
}

/* See creds.h. */
size_t
creds_list_hooks(const struct runtime *rt, struct podio_client *client,
    struct podio_spool *spool, void (*learned)(uint64_t, uint64_t))
{
	struct podio_tokens *t = podio_client_tokens(client);
	struct podio_hook *hooks = NULL;
	char key[PODIO_SPOOL_MAX_KEY], why[256];
	const char *flow;
	uint64_t app;
	size_t i, k, nh = 0, got = 0;
	long reserve = (long)podio_config_get_int(rt->cfg, "rate_reserve");
	int64_t now = process_now_ms();
	enum podio_err rc;

	if (podio_tokens_count(t) < 2)
		return 0;
	pthread_mutex_lock(&creds_list_lock);
	if (creds_listed_ms != 0 && now - creds_listed_ms <
	    CREDS_LIST_EVERY_MS) {
		pthread_mutex_unlock(&creds_list_lock);
		return 0;
	}
	creds_listed_ms = now;
	pthread_mutex_unlock(&creds_list_lock);

	for (i = 0; i < podio_tokens_count(t); i++) {
		if (podio_tokens_identity(t, i, &flow, &app, NULL) != 0 ||
		    strcmp(flow, "app") != 0)
			continue;
		budget_cred_at(rt->cfg, i, key, sizeof(key));
		if (budget_gate(spool, key, BUDGET_CLASS, reserve, 0, why,
		    sizeof(why)) != 0)
			continue;
		(void)podio_client_use(client, i);
		rc = podio_hook_list(client, "app", app, &hooks, &nh, NULL);
		budget_note_call(spool, client, key, BUDGET_CLASS, rc);
		if (rc != PODIO_OK) {
			podio_log(PODIO_LOG_WARN, "cannot list the hooks of app "
			    "%" PRIu64 " to learn their app: %s", app,
			    podio_client_errmsg(client));
			continue;
		}
		for (k = 0; k < nh; k++) {
			(void)podio_spool_learn_app(spool, hooks[k].hook_id,
			    app);
			learned(hooks[k].hook_id, app);
			got++;
		}
		podio_hooks_free(hooks, nh);
		hooks = NULL;
		nh = 0;
	}
	(void)podio_client_use(client, 0);
	podio_log(PODIO_LOG_DEBUG, "learned the app of %zu hooks from the "
	    "configured apps' hook lists", got);
	return got;
}

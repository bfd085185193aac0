/*
 * hooks_sync.c: `podio-webhook hooks sync [--dry-run] [--json]`: makes
 * the hooks on Podio what the hook lines declare.
 *
 * The hooks of every configured app (hooks_apps()) are listed first;
 * the ones whose URL without its secret is hook_url are sync's, every
 * other hook is left alone.  The plan, one step per hook or declared
 * type:
 *
 *  - keep: a declared type that has a hook at hook_url with the URL
 *    hooks_url() makes (an active one preferred);
 *  - create: a declared type without one; its hooks at hook_url with
 *    another secret (none, the previous one, another) are replaced:
 *    deleted once the new hook exists;
 *  - delete: a hook at hook_url whose type is not declared (any more),
 *    and the duplicates of a kept hook.
 *
 * Before any change the plan is refused as a whole when it would leave
 * an app with more than HOOKS_PER_TYPE_MAX hooks of a type (counting
 * every hook of that type, whatever its URL) at any moment, or when it
 * creates hooks while allowed_hooks is set (the new ids would be
 * refused: a plan of deletions alone still goes on).  Then the
 * deletions of undeclared hooks and duplicates run, then the creations,
 * then the deletions of the replaced hooks whose successor exists; the
 * first failed call stops the run.  A second run finds every declared
 * hook in place and changes nothing.
 */
#include <config.h>

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "cli.h"
#include "cli_int.h"
#include "hooks.h"
#include "secret.h"
#include "util.h"

/* What a step does. */
enum sync_op {
	SYNC_KEEP,
	SYNC_CREATE,
	SYNC_DELETE
};

static const char *const sync_op_names[] = { "keep", "create", "delete" };

/* Where a step is. */
enum sync_result {
	SYNC_PLANNED,
	SYNC_DONE,
	SYNC_FAILED,
	SYNC_SKIPPED      /* refused, or after a failure */
};

static const char *const sync_result_names[] = {
	"planned", "done", "failed", "skipped"
};

/* One step of the plan. */
struct sync_step {
	enum sync_op op;
	uint64_t ref_id;          /* the app */
	char type[65];
	uint64_t hook_id;         /* keep, delete: the hook; create: the new
	                             one, once made */
	uint64_t replaces;        /* create: a hook to delete after it */
	int after_create;         /* delete: a replaced hook (its successor
	                             is the step successor) */
	size_t successor;
	char status[16];          /* keep, delete: the hook's status */
	char why[160];            /* a reason, or "" */
	enum sync_result result;
	char error[CLI_MSG_MAX];  /* SYNC_FAILED: Podio's message */
};

/* The listed hooks of one app. */
struct sync_app {
	uint64_t id;
	struct podio_hook *hooks;
	size_t n;
};

struct sync_plan {
	struct sync_app *apps;
	size_t napps;
	struct sync_step *steps;
	size_t n, cap;
};

/* A new step (zeroed) of op on app app_id, type type; NULL on out of
 * memory. */
static struct sync_step *
sync_step_new(struct sync_plan *p, enum sync_op op, uint64_t app_id,
    const char *type)
{
	struct sync_step *s;
	size_t cap;

	if (p->n == p->cap) {
		cap = p->cap ? p->cap * 2 : 16;
		if ((s = reallocarray(p->steps, cap, sizeof(*s))) == NULL)
			return NULL;
		p->steps = s;
		p->cap = cap;
	}
	s = &p->steps[p->n++];
	memset(s, 0, sizeof(*s));
	s->op = op;
	s->ref_id = app_id;
	podio__strlcpy(s->type, type, sizeof(s->type));
	return s;
}

/* A keep or delete step of hook h. */
static struct sync_step *
sync_step_hook(struct sync_plan *p, enum sync_op op, uint64_t app_id,
    const struct podio_hook *h)
{
	struct sync_step *s;

	s = sync_step_new(p, op, app_id, h->type != NULL ? h->type : "");
	if (s != NULL) {
		s->hook_id = h->hook_id;
		podio__strlcpy(s->status, h->status != NULL ? h->status : "",
		    sizeof(s->status));
	}
	return s;
}

/* Why a hook at hook_url, not the one hooks_url() makes, is replaced. */
static const char *
sync_replace_why(const struct podio_config *cfg, const char *url)
{
	switch (secret_url_state(cfg, url)) {
	case SECRET_URL_NONE:
		return "its URL has no secret";
	case SECRET_URL_PREVIOUS:
		return "its URL carries webhook_secret_previous";
	case SECRET_URL_OTHER:
		return cli_is_set(cfg, "webhook_secret") ?
		    "its URL carries another secret" :
		    "its URL carries a secret";
	default:
		return "its URL differs";
	}
}

/*
 * The steps of the declared type on app a: keep the best hook at exactly
 * url (an active one first) and delete its duplicates, or create one
 * and delete the hooks at hook_url of that type after it.  Returns 0,
 * or -1 on out of memory.
 */
static int
sync_plan_type(const struct podio_config *cfg, struct sync_plan *p,
    const struct sync_app *a, const char *type, const char *url)
{
	const struct podio_hook *h, *keep = NULL;
	struct sync_step *s;
	size_t i, succ;

	for (i = 0; i < a->n; i++) {
		h = &a->hooks[i];
		if (h->type == NULL || strcmp(h->type, type) != 0 ||
		    h->url == NULL || (strcmp(h->url, url) != 0 &&
		    !hooks_is_current(cfg, "app", a->id, h->url)))
			continue;
		if (keep == NULL || (h->status != NULL &&
		    strcmp(h->status, "active") == 0 &&
		    (keep->status == NULL ||
		    strcmp(keep->status, "active") != 0)))
			keep = h;
	}
	if (keep != NULL) {
		if ((s = sync_step_hook(p, SYNC_KEEP, a->id, keep)) == NULL)
			return -1;
		if (strcmp(s->status, "active") != 0)
			snprintf(s->why, sizeof(s->why), "%s: see hooks heal",
			    s->status[0] != '\0' ? s->status : "not active");
	} else if (sync_step_new(p, SYNC_CREATE, a->id, type) == NULL)
		return -1;
	succ = p->n - 1;
	for (i = 0; i < a->n; i++) {
		h = &a->hooks[i];
		if (h == keep || h->type == NULL || strcmp(h->type, type) != 0 ||
		    h->url == NULL || !hooks_at_hook_url(cfg, h->url))
			continue;
		if ((s = sync_step_hook(p, SYNC_DELETE, a->id, h)) == NULL)
			return -1;
		if (keep != NULL) {
			snprintf(s->why, sizeof(s->why), "a duplicate of hook %"
			    PRIu64, keep->hook_id);
			continue;
		}
		s->after_create = 1;
		s->successor = succ;
		snprintf(s->why, sizeof(s->why), "replaced: %s",
		    sync_replace_why(cfg, h->url));
		if (p->steps[succ].replaces == 0) {
			p->steps[succ].replaces = h->hook_id;
			snprintf(p->steps[succ].why,
			    sizeof(p->steps[succ].why), "replaces hook %"
			    PRIu64 " (%s)", h->hook_id,
			    sync_replace_why(cfg, h->url));
		}
	}
	return 0;
}

/*
 * Makes the plan of p from its listed apps.  Returns 0, or -1 with the
 * reason in err.
 */
static int
sync_make_plan(const struct podio_config *cfg, struct sync_plan *p,
    char *err, size_t errlen)
{
	struct podio_hook_decl d;
	const struct sync_app *a;
	const struct podio_hook *h;
	struct sync_step *s;
	char *url;
	size_t i, j, k;

	for (i = 0; i < p->napps; i++) {
		a = &p->apps[i];
		url = hooks_url(cfg, podio_config_get(cfg, "hook_url"), "app",
		    a->id, err, errlen);
		if (url == NULL)
			return -1;
		for (j = 0; podio_config_hook(cfg, j, &d); j++) {
			if (strcmp(d.ref_type, "app") != 0 || d.ref_id != a->id)
				continue;
			for (k = 0; d.events[k] != NULL; k++)
				if (sync_plan_type(cfg, p, a, d.events[k],
				    url) != 0) {
					hooks_url_free(url);
					goto nomem;
				}
		}
		hooks_url_free(url);
		for (j = 0; j < a->n; j++) {
			h = &a->hooks[j];
			if (h->url == NULL || !hooks_at_hook_url(cfg, h->url) ||
			    (h->type != NULL && hooks_declared(cfg, "app",
			    a->id, h->type)))
				continue;
			if ((s = sync_step_hook(p, SYNC_DELETE, a->id, h)) ==
			    NULL)
				goto nomem;
			podio__strlcpy(s->why, "not declared", sizeof(s->why));
		}
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	return -1;
}

/*
 * Checks that no app would hold more than HOOKS_PER_TYPE_MAX hooks of a
 * type at any moment of the plan: its hooks of that type, less the
 * deletions that run before the creations, plus the creations.  Writes
 * the first excess into err and returns -1, else 0.
 */
static int
sync_check_limit(const struct sync_plan *p, char *err, size_t errlen)
{
	const struct sync_app *a;
	const struct sync_step *s;
	const char *type;
	size_t i, j, k;
	long count;

	for (i = 0; i < p->n; i++) {
		if (p->steps[i].op != SYNC_CREATE)
			continue;
		type = p->steps[i].type;
		for (a = NULL, j = 0; j < p->napps; j++)
			if (p->apps[j].id == p->steps[i].ref_id)
				a = &p->apps[j];
		count = 0;
		for (k = 0; a != NULL && k < a->n; k++)
			count += a->hooks[k].type != NULL &&
			    strcmp(a->hooks[k].type, type) == 0;
		for (k = 0; k < p->n; k++) {
			s = &p->steps[k];
			if (s->ref_id != p->steps[i].ref_id ||
			    strcmp(s->type, type) != 0)
				continue;
			if (s->op == SYNC_CREATE)
				count++;
			else if (s->op == SYNC_DELETE && !s->after_create)
				count--;
		}
		if (count > HOOKS_PER_TYPE_MAX) {
			snprintf(err, errlen, "app %" PRIu64 " would have %ld "
			    "%s hooks, and Podio allows %d of a type on an "
			    "object: delete some of its other hooks (hooks "
			    "list app %" PRIu64 "); nothing changed",
			    p->steps[i].ref_id, count, type,
			    HOOKS_PER_TYPE_MAX, p->steps[i].ref_id);
			return -1;
		}
	}
	return 0;
}

/* Writes step s as a plan line into buf (size len). */
static void
sync_format_step(const struct sync_step *s, char *buf, size_t len)
{
	size_t used;

	snprintf(buf, len, "%-6s app %" PRIu64 " %s", sync_op_names[s->op],
	    s->ref_id, s->type);
	used = strlen(buf);
	if (s->op != SYNC_CREATE && used < len)
		snprintf(buf + used, len - used, " hook %" PRIu64, s->hook_id);
	used = strlen(buf);
	if (s->why[0] != '\0' && used < len)
		snprintf(buf + used, len - used, ": %s", s->why);
}

/*
 * Runs the steps of phase (0: the deletions of undeclared hooks and
 * duplicates, 1: the creations, 2: the deletions of replaced hooks whose
 * successor was made), printing one line per change unless json.
 * Returns PODIO_OK, or the first failure (the step says it).
 */
static enum podio_err
sync_run_phase(struct cli_ctx *ctx, struct sync_plan *p, int phase)
{
	struct sync_step *s;
	char *url;
	size_t i;
	enum podio_err rc;

	for (i = 0; i < p->n; i++) {
		s = &p->steps[i];
		if (s->result != SYNC_PLANNED)
			continue;
		hooks_use_app(ctx->client, "app", s->ref_id);
		if (phase == 1 && s->op == SYNC_CREATE) {
			url = hooks_url(ctx->cfg, podio_config_get(ctx->cfg,
			    "hook_url"), "app", s->ref_id, s->error,
			    sizeof(s->error));
			rc = url == NULL ? PODIO_ERR_NOMEM :
			    podio_hook_create(ctx->client, "app", s->ref_id,
			    url, s->type, &s->hook_id);
			hooks_url_free(url);
			if (rc != PODIO_OK)
				goto failed;
			s->result = SYNC_DONE;
			if (!ctx->json)
				printf("created hook %" PRIu64 " (app %" PRIu64
				    ", %s)\n", s->hook_id, s->ref_id, s->type);
		} else if (s->op == SYNC_DELETE && ((phase == 0 &&
		    !s->after_create) || (phase == 2 && s->after_create &&
		    p->steps[s->successor].result == SYNC_DONE))) {
			if ((rc = podio_hook_delete(ctx->client, s->hook_id)) !=
			    PODIO_OK)
				goto failed;
			s->result = SYNC_DONE;
			if (!ctx->json)
				printf("deleted hook %" PRIu64 " (app %" PRIu64
				    ", %s)\n", s->hook_id, s->ref_id, s->type);
		}
	}
	return PODIO_OK;
failed:
	s->result = SYNC_FAILED;
	if (rc != PODIO_ERR_NOMEM || s->error[0] == '\0')
		podio__strlcpy(s->error, rc == PODIO_ERR_NOMEM ?
		    "out of memory" : podio_client_errmsg(ctx->client),
		    sizeof(s->error));
	return rc;
}

/* Prints the plan as a JSON array, one object per step.  Returns 0, or
 * -1 on out of memory. */
static int
sync_print_json(const struct podio_config *cfg, const struct sync_plan *p)
{
	const struct sync_step *s;
	char id[32], *safe = NULL;
	cJSON *obj = NULL;
	size_t i;
	int rc = -1;

	printf("[");
	for (i = 0; i < p->n; i++) {
		s = &p->steps[i];
		if ((obj = cJSON_CreateObject()) == NULL ||
		    cJSON_AddStringToObject(obj, "action",
		    sync_op_names[s->op]) == NULL ||
		    cJSON_AddStringToObject(obj, "ref_type", "app") == NULL)
			goto done;
		/* Ids as raw digits: a double would round ids past 2^53. */
		snprintf(id, sizeof(id), "%" PRIu64, s->ref_id);
		if (cJSON_AddRawToObject(obj, "ref_id", id) == NULL ||
		    cJSON_AddStringToObject(obj, "type", s->type) == NULL)
			goto done;
		if (s->hook_id != 0) {
			snprintf(id, sizeof(id), "%" PRIu64, s->hook_id);
			if (cJSON_AddRawToObject(obj, "hook_id", id) == NULL)
				goto done;
		}
		if (s->status[0] != '\0' && cJSON_AddStringToObject(obj,
		    "status", s->status) == NULL)
			goto done;
		if (s->replaces != 0) {
			snprintf(id, sizeof(id), "%" PRIu64, s->replaces);
			if (cJSON_AddRawToObject(obj, "replaces", id) == NULL)
				goto done;
		}
		if (s->why[0] != '\0' && cJSON_AddStringToObject(obj,
		    "reason", s->why) == NULL)
			goto done;
		if (cJSON_AddStringToObject(obj, "result",
		    s->op == SYNC_KEEP ? "kept" :
		    sync_result_names[s->result]) == NULL)
			goto done;
		if (s->result == SYNC_FAILED) {
			if ((safe = secret_scrub(cfg, s->error)) == NULL ||
			    cJSON_AddStringToObject(obj, "error", safe) ==
			    NULL)
				goto done;
			free(safe);
			safe = NULL;
		}
		if (cli_json_element(&obj, i) != 0)
			goto done;
	}
	cli_json_end(p->n);
	rc = 0;
done:
	if (rc != 0)
		printf("\n");
	free(safe);
	cJSON_Delete(obj);
	return rc;
}

/* Marks every step still planned (but keep) as skipped. */
static void
sync_skip_rest(struct sync_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->steps[i].result == SYNC_PLANNED &&
		    p->steps[i].op != SYNC_KEEP)
			p->steps[i].result = SYNC_SKIPPED;
}

/* Whether the plan creates a hook. */
static int
sync_creates(const struct sync_plan *p)
{
	size_t i;

	for (i = 0; i < p->n; i++)
		if (p->steps[i].op == SYNC_CREATE)
			return 1;
	return 0;
}

/* hooks sync [--dry-run] [--json] */
int
hooks_cmd_sync(struct cli_ctx *ctx)
{
	struct sync_plan p;
	char err[CLI_MSG_MAX], line[512];
	uint64_t *ids = NULL;
	size_t i;
	enum podio_err rc = PODIO_OK;
	int status = CLI_EXIT_USAGE, refused = 0;

	memset(&p, 0, sizeof(p));
	if (!cli_is_set(ctx->cfg, "hook_url")) {
		cli_error(ctx, "hook_url is not set: it is the URL of the "
		    "hooks that hook lines declare");
		goto done;
	}
	if (hooks_apps(ctx->cfg, &ids, &p.napps) != 0) {
		cli_error(ctx, "out of memory");
		status = CLI_EXIT_PODIO;
		goto done;
	}
	if (p.napps == 0) {
		cli_error(ctx, "no app is configured: set app_id, or declare "
		    "hooks with hook lines");
		goto done;
	}
	if ((p.apps = calloc(p.napps, sizeof(*p.apps))) == NULL) {
		cli_error(ctx, "out of memory");
		status = CLI_EXIT_PODIO;
		goto done;
	}
	if ((status = cli_connect(ctx)) != 0)
		goto done;
	for (i = 0; i < p.napps; i++) {
		p.apps[i].id = ids[i];
		hooks_use_app(ctx->client, "app", ids[i]);
		rc = podio_hook_list(ctx->client, "app", ids[i],
		    &p.apps[i].hooks, &p.apps[i].n, NULL);
		if (rc != PODIO_OK) {
			status = cli_fail(ctx, rc);
			goto done;
		}
	}
	if (sync_make_plan(ctx->cfg, &p, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		status = strcmp(err, "out of memory") == 0 ? CLI_EXIT_PODIO :
		    CLI_EXIT_USAGE;
		goto done;
	}
	if (!ctx->json)
		for (i = 0; i < p.n; i++) {
			sync_format_step(&p.steps[i], line, sizeof(line));
			printf("%s\n", line);
		}
	status = CLI_EXIT_OK;
	if (sync_check_limit(&p, err, sizeof(err)) != 0) {
		refused = 1;
		status = CLI_EXIT_PODIO;
	} else if (sync_creates(&p) && hooks_allowed_set(ctx->cfg)) {
		snprintf(err, sizeof(err), "allowed_hooks is set, and the "
		    "hooks this plan creates would get new ids that it "
		    "refuses: create them with hooks create and add their ids "
		    "to allowed_hooks, or unset allowed_hooks; nothing "
		    "changed");
		refused = 1;
		status = CLI_EXIT_USAGE;
	}
	if (refused || ctx->dry_run) {
		if (refused)
			sync_skip_rest(&p);
	} else {
		if ((rc = sync_run_phase(ctx, &p, 0)) == PODIO_OK &&
		    (rc = sync_run_phase(ctx, &p, 1)) == PODIO_OK)
			rc = sync_run_phase(ctx, &p, 2);
		if (rc != PODIO_OK) {
			sync_skip_rest(&p);
			status = cli_exit_for(rc);
		}
	}
	if (ctx->json && sync_print_json(ctx->cfg, &p) != 0) {
		cli_error(ctx, "out of memory");
		status = CLI_EXIT_PODIO;
	}
	if (refused)
		cli_error(ctx, "%s", err);
	for (i = 0; i < p.n; i++) {
		if (p.steps[i].result != SYNC_FAILED)
			continue;
		if (p.steps[i].op == SYNC_CREATE)
			cli_error(ctx, "creating a hook (app %" PRIu64 ", %s) "
			    "failed: %s", p.steps[i].ref_id, p.steps[i].type,
			    p.steps[i].error);
		else
			cli_error(ctx, "deleting hook %" PRIu64 " (app %" PRIu64
			    ", %s) failed: %s", p.steps[i].hook_id,
			    p.steps[i].ref_id, p.steps[i].type,
			    p.steps[i].error);
	}
done:
	for (i = 0; p.apps != NULL && i < p.napps; i++)
		podio_hooks_free(p.apps[i].hooks, p.apps[i].n);
	free(p.apps);
	free(p.steps);
	free(ids);
	return status;
}

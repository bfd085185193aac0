/*
 * hooks_heal.c: `podio-webhook hooks heal`, and the same run for a
 * FastCGI server's heal thread (see hooks.h).
 *
 * Podio turns a hook "inactive" when it gives up on it, and then sends
 * nothing more.  A run lists the hooks of every configured app (see
 * hooks_apps()) and, for each inactive hook of this receiver (see
 * hooks_is_ours()):
 *
 *  - asks Podio to send hook.verify again (POST /hook/ID/verify/request),
 *    at most once an hour per hook; the handler's answer to that
 *    hook.verify validates the hook, which makes it active;
 *  - when the hook is still inactive at a later run, at least
 *    HEAL_SETTLE_MS after that request (Podio sends hook.verify at once,
 *    and the handler validates it within its request), re-creates it if
 *    a hook line declares it at hook_url (the new hook first, then the
 *    old one deleted), or else reports it with the command that
 *    re-creates it by hand;
 *  - a hook it re-created and that is still inactive is reported until
 *    the hour is over; then it is asked for again.
 *
 * So each hook costs at most one request and one re-creation an hour.
 * When heal last asked for each hook is kept in a small file of the
 * spool directory, HEAL_STATE_NAME, which every process of this host
 * shares under an exclusive lock held for a whole run (a cron run and a
 * server's heal thread never act on a hook at once).  Hosts sharing a
 * PostgreSQL spool keep a file each: each may ask once an hour.
 *
 * The file holds one line per hook, "HOOK_ID verify|created MS" (the
 * wall clock in milliseconds); lines an hour old or more are dropped
 * when it is written, lines that cannot be read are ignored.
 *
 * Podio sends an inactive hook nothing and never delivers it again, so
 * a run also follows, per app, the time its hooks of this receiver were
 * not all active, with two marks of the spool (shared by every process
 * and host using it; a mark never moves back): A, "hooks_active_APP",
 * the last listing that found them all active, and I,
 * "hooks_inactive_APP", the listing that first found one inactive since.
 * A listing with one inactive sets I when I <= A (a new episode); one
 * with all active (at least one) sets A when I <= A, and else ends an
 * episode: with catch_up the app is backfilled since A (less
 * HEAL_GAP_SLACK_MS; with A unknown, or further back than catch_up_max,
 * since catch_up_max ago), and A set only once that backfill is
 * complete, so one cut short (a 420, the reserve, a stop) goes on at the
 * next run; without catch_up, A is set and the gap reported with the
 * `backfill` command that recovers it.  Two hosts listing at the same
 * moment may both backfill the same gap: the spool's dedup keys and the
 * revisions fetched keep every item to one event.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "backfill.h"
#include "cli.h"
#include "cli_int.h"
#include "hooks.h"
#include "runtime.h"
#include "secret.h"
#include "spool.h"
#include "util.h"

#define HEAL_STATE_NAME  "hooks-heal.state"
/* The most bytes of the state file read, and records kept. */
#define HEAL_STATE_BYTES (256 * 1024)
#define HEAL_STATE_MAX   4096
/* At most one request a hook an hour. */
#define HEAL_HOUR_MS     ((int64_t)3600 * 1000)
/* How long after a request a hook still inactive counts as not healed
 * by it. */
#define HEAL_SETTLE_MS   ((int64_t)60 * 1000)
/* A hook's failed deliveries come before Podio turns it inactive, and
 * an edit's delivery may have been under way at a listing: a catch-up
 * starts this long before the last listing that found all active. */
#define HEAL_GAP_SLACK_MS ((int64_t)60 * 1000)

/* ------------------------------------------------------------ the state */

/* When heal last acted on one hook. */
struct heal_rec {
	uint64_t hook_id;
	int created;      /* 1: heal created it; 0: asked for hook.verify */
	int64_t at_ms;    /* the wall clock */
};

/* The state file, locked while it is open. */
struct heal_state {
	int fd;
	struct heal_rec *recs;
	size_t n;
	int dirty;        /* to be written back */
};

/* Fills err (errlen bytes) from a format; the path a message names may
 * be long, and is cut. */
static void
heal_errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void
heal_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* Parses the text of the state file (NUL-terminated) into st->recs. */
static int
heal_state_parse(struct heal_state *st, char *text)
{
	char *line, *next, kind[16];
	uint64_t id;
	int64_t at;

	if ((st->recs = calloc(HEAL_STATE_MAX, sizeof(*st->recs))) == NULL)
		return -1;
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (st->n == HEAL_STATE_MAX || line[0] == '#' ||
		    sscanf(line, "%" SCNu64 " %15s %" SCNd64, &id, kind,
		    &at) != 3 || id == 0 || (strcmp(kind, "verify") != 0 &&
		    strcmp(kind, "created") != 0))
			continue;
		st->recs[st->n].hook_id = id;
		st->recs[st->n].created = kind[0] == 'c';
		st->recs[st->n].at_ms = at;
		st->n++;
	}
	return 0;
}

/*
 * Opens and locks SPOOL_DIR/HEAL_STATE_NAME (the directory checked as
 * the spool's, and made 0700 when missing; the file made 0600, never
 * through a symbolic link) and reads it into st.  Waits for another run
 * holding it.  Returns 0, or -1 with the reason in err.
 */
static int
heal_state_open(const struct podio_config *cfg, struct heal_state *st,
    char *err, size_t errlen)
{
	const char *dir = podio_config_get(cfg, "spool_dir");
	char path[4096], *text = NULL;
	struct stat sb;
	size_t len = 0;
	ssize_t r;
	int n;

	memset(st, 0, sizeof(*st));
	st->fd = -1;
	if (dir == NULL || dir[0] == '\0') {
		heal_errf(err, errlen, "spool_dir is not set: it keeps when "
		    "each hook was last asked for");
		return -1;
	}
	if (podio_spool_check(dir, err, errlen) != PODIO_OK)
		return -1;
	n = snprintf(path, sizeof(path), "%s/" HEAL_STATE_NAME, dir);
	if (n < 0 || (size_t)n >= sizeof(path)) {
		heal_errf(err, errlen, "spool_dir is too long");
		return -1;
	}
	while ((st->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
	    O_NOFOLLOW, 0600)) < 0 && errno == EINTR)
		;
	if (st->fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		st->fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
	if (st->fd < 0) {
		heal_errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (fstat(st->fd, &sb) != 0 || !S_ISREG(sb.st_mode) ||
	    sb.st_uid != geteuid()) {
		heal_errf(err, errlen, "%s: not a regular file of uid %lu that "
		    "runs this program: remove it", path,
		    (unsigned long)geteuid());
		goto fail;
	}
	while (flock(st->fd, LOCK_EX) != 0)
		if (errno != EINTR) {
			heal_errf(err, errlen, "%s: cannot lock it: %s", path,
			    strerror(errno));
			goto fail;
		}
	if ((text = malloc(HEAL_STATE_BYTES + 1)) == NULL)
		goto nomem;
	while (len < HEAL_STATE_BYTES && (r = read(st->fd, text + len,
	    HEAL_STATE_BYTES - len)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			heal_errf(err, errlen, "%s: %s", path, strerror(errno));
			goto fail;
		}
		len += (size_t)r;
	}
	text[len] = '\0';
	if (heal_state_parse(st, text) != 0)
		goto nomem;
	free(text);
	return 0;
nomem:
	heal_errf(err, errlen, "out of memory");
fail:
	free(text);
	free(st->recs);
	st->recs = NULL;
	close(st->fd);
	st->fd = -1;
	return -1;
}

/* The record of hook_id, or NULL. */
static struct heal_rec *
heal_state_find(struct heal_state *st, uint64_t hook_id)
{
	size_t i;

	for (i = 0; i < st->n; i++)
		if (st->recs[i].hook_id == hook_id)
			return &st->recs[i];
	return NULL;
}

/* Records that heal acted on hook_id now (created: made it). */
static void
heal_state_set(struct heal_state *st, uint64_t hook_id, int created,
    int64_t now)
{
	struct heal_rec *r = heal_state_find(st, hook_id);

	if (r == NULL) {
		if (st->n == HEAL_STATE_MAX) {
			/* Full of hooks acted on within the hour: the
			 * oldest record goes. */
			memmove(st->recs, st->recs + 1,
			    (st->n - 1) * sizeof(*st->recs));
			st->n--;
		}
		r = &st->recs[st->n++];
	}
	r->hook_id = hook_id;
	r->created = created;
	r->at_ms = now;
	st->dirty = 1;
}

/* Forgets hook_id (active again, or deleted). */
static void
heal_state_drop(struct heal_state *st, uint64_t hook_id)
{
	struct heal_rec *r = heal_state_find(st, hook_id);

	if (r == NULL)
		return;
	*r = st->recs[--st->n];
	st->dirty = 1;
}

/*
 * Writes the records younger than an hour back when something changed,
 * flushed, and lets the file and its lock go.  Returns 0, or -1 with the
 * reason in err (the requests made stand; at worst a hook is asked for
 * again before the hour is over).
 */
static int
heal_state_close(struct heal_state *st, int64_t now, char *err,
    size_t errlen)
{
	char *text = NULL;
	size_t i, len = 0, cap;
	ssize_t w;
	int rc = 0;

	if (st->fd < 0)
		return 0;
	if (st->dirty) {
		cap = 64 + st->n * 48;
		if ((text = malloc(cap)) == NULL) {
			heal_errf(err, errlen, "out of memory");
			rc = -1;
			goto done;
		}
		len = (size_t)snprintf(text, cap, "# podio-webhook hooks heal:"
		    " HOOK_ID verify|created MS\n");
		for (i = 0; i < st->n; i++)
			if (now - st->recs[i].at_ms < HEAL_HOUR_MS)
				len += (size_t)snprintf(text + len, cap - len,
				    "%" PRIu64 " %s %" PRId64 "\n",
				    st->recs[i].hook_id, st->recs[i].created ?
				    "created" : "verify", st->recs[i].at_ms);
		if (lseek(st->fd, 0, SEEK_SET) != 0 ||
		    ftruncate(st->fd, 0) != 0)
			goto ioerr;
		for (i = 0; i < len; i += (size_t)w)
			if ((w = write(st->fd, text + i, len - i)) < 0) {
				if (errno == EINTR) {
					w = 0;
					continue;
				}
				goto ioerr;
			}
		if (fdatasync(st->fd) != 0)
			goto ioerr;
	}
	goto done;
ioerr:
	heal_errf(err, errlen, "the state file " HEAL_STATE_NAME " cannot be "
	    "written: %s", strerror(errno));
	rc = -1;
done:
	free(text);
	free(st->recs);
	st->recs = NULL;
	close(st->fd);
	st->fd = -1;
	return rc;
}

/* ------------------------------------------------------------ the run */

/* What a run did about one hook (or app). */
enum heal_kind {
	HEAL_REQUESTED,   /* hook.verify asked for */
	HEAL_WAITING,     /* asked for (or created) a moment ago */
	HEAL_RECREATED,   /* re-created: new_id */
	HEAL_BROKEN,      /* stays inactive: fix says what to do */
	HEAL_FAILED,      /* a call failed (err) */
	HEAL_CAUGHT_UP,   /* the app: its hooks' inactive time backfilled */
	HEAL_CATCH_UP_STOPPED, /* that backfill stopped: goes on next run */
	HEAL_NOT_CAUGHT_UP /* the gap left (no catch_up): fix recovers it */
};

static const char *const heal_kind_names[] = {
	"verify_requested", "waiting", "recreated", "broken", "failed",
	"caught_up", "catch_up_stopped", "not_caught_up"
};

/* One line of the report. */
struct heal_line {
	enum heal_kind kind;
	uint64_t ref_id;          /* the app */
	uint64_t hook_id;         /* 0: the line is about the app */
	uint64_t new_id;          /* HEAL_RECREATED */
	char type[65];
	char text[CLI_MSG_MAX];
	char fix[CLI_URL_MAX + 256]; /* a command that fixes it, or "" */
	enum podio_err err;       /* HEAL_FAILED: the failure */
	int unreached;            /* Podio could not be reached */
	int64_t since_ms;         /* a gap's backfill: since when, or 0 */
	long queued;              /* a catch-up: the events queued */
};

struct heal_report {
	struct heal_line *lines;
	size_t n, cap;
};

/* A new line of rep (zeroed), or NULL on out of memory. */
static struct heal_line *
heal_line_new(struct heal_report *rep, enum heal_kind kind, uint64_t ref_id,
    const struct podio_hook *h)
{
	struct heal_line *l;
	size_t cap;

	if (rep->n == rep->cap) {
		cap = rep->cap ? rep->cap * 2 : 8;
		if ((l = reallocarray(rep->lines, cap, sizeof(*l))) == NULL)
			return NULL;
		rep->lines = l;
		rep->cap = cap;
	}
	l = &rep->lines[rep->n++];
	memset(l, 0, sizeof(*l));
	l->kind = kind;
	l->ref_id = ref_id;
	if (h != NULL) {
		l->hook_id = h->hook_id;
		podio__strlcpy(l->type, h->type != NULL ? h->type : "",
		    sizeof(l->type));
	}
	return l;
}

/* Sets l's text. */
static void heal_say(struct heal_line *l, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void
heal_say(struct heal_line *l, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(l->text, sizeof(l->text), fmt, ap);
	va_end(ap);
}

/* How many hooks of hooks[0..n-1] have type. */
static size_t
heal_count_type(const struct podio_hook *hooks, size_t n, const char *type)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (hooks[i].type != NULL && strcmp(hooks[i].type, type) == 0)
			c++;
	return c;
}

/*
 * Re-creates the hook h of app app_id at hook_url (the new one first,
 * the old one deleted after; the other way round when Podio's limit of
 * hooks of its type is reached) and records the new one.  ntype: the
 * hooks of its type on the app.  Fills l.  Returns 0, or -1 on out of
 * memory.
 */
static int
heal_recreate(const struct podio_config *cfg, struct podio_client *client,
    struct heal_state *st, uint64_t app_id, const struct podio_hook *h,
    size_t ntype, struct heal_line *l, int64_t now)
{
	char *url, why[256];
	uint64_t new_id = 0;
	enum podio_err rc;
	int deleted = 0;

	url = hooks_url(cfg, podio_config_get(cfg, "hook_url"), "app", app_id,
	    why, sizeof(why));
	if (url == NULL) {
		l->kind = HEAL_FAILED;
		heal_say(l, "cannot re-create it: %s", why);
		return 0;
	}
	if (ntype >= HOOKS_PER_TYPE_MAX) {
		if ((rc = podio_hook_delete(client, h->hook_id)) != PODIO_OK) {
			hooks_url_free(url);
			goto failed_delete;
		}
		heal_state_drop(st, h->hook_id);
		deleted = 1;
	}
	rc = podio_hook_create(client, "app", app_id, url, h->type, &new_id);
	hooks_url_free(url);
	if (rc != PODIO_OK) {
		l->kind = HEAL_FAILED;
		l->err = rc;
		heal_say(l, "still inactive; %s, but creating its successor "
		    "failed: %s", deleted ? "deleted to make room" :
		    "re-creating it", podio_client_errmsg(client));
		hooks_fix_command(l->fix, sizeof(l->fix), "app", app_id,
		    podio_config_get(cfg, "hook_url"), h->type,
		    deleted ? 0 : h->hook_id);
		return 0;
	}
	heal_state_set(st, new_id, 1, now);
	l->new_id = new_id;
	if (!deleted) {
		if ((rc = podio_hook_delete(client, h->hook_id)) != PODIO_OK)
			goto failed_delete;
		heal_state_drop(st, h->hook_id);
	}
	l->kind = HEAL_RECREATED;
	heal_say(l, "still inactive after verification was requested: "
	    "re-created as hook %" PRIu64 ", the old one deleted", new_id);
	return 0;
failed_delete:
	l->kind = HEAL_FAILED;
	l->err = rc;
	if (new_id != 0)
		heal_say(l, "still inactive: re-created as hook %" PRIu64
		    ", but deleting the old one failed: %s", new_id,
		    podio_client_errmsg(client));
	else
		heal_say(l, "still inactive, and Podio's limit of %d hooks "
		    "of its type is reached: deleting it to make room "
		    "failed: %s", HOOKS_PER_TYPE_MAX,
		    podio_client_errmsg(client));
	snprintf(l->fix, sizeof(l->fix), "podio-webhook hooks delete %"
	    PRIu64, h->hook_id);
	return 0;
}

/*
 * Decides about one inactive hook h of this receiver on app app_id
 * (hooks: all of the app's, n of them) and acts.  Returns 0, or -1 on
 * out of memory.
 */
static int
heal_hook(const struct podio_config *cfg, struct podio_client *client,
    struct heal_state *st, uint64_t app_id, const struct podio_hook *h,
    const struct podio_hook *hooks, size_t n, struct heal_report *rep,
    int64_t now)
{
	struct heal_rec *r = heal_state_find(st, h->hook_id);
	struct heal_line *l;
	const char *type = h->type != NULL ? h->type : "";
	char *base = NULL;
	int64_t age = r != NULL ? now - r->at_ms : 0;
	int declared;
	enum podio_err rc;

	if ((l = heal_line_new(rep, HEAL_BROKEN, app_id, h)) == NULL)
		return -1;
	if ((base = hooks_url_base(h->url)) == NULL)
		return -1;
	declared = hooks_declared(cfg, "app", app_id, type) &&
	    hooks_at_hook_url(cfg, h->url);
	if (r != NULL && age < 0)
		age = 0;
	if (r != NULL && age < HEAL_SETTLE_MS) {
		l->kind = HEAL_WAITING;
		heal_say(l, "inactive, %s %" PRId64 " s ago: waiting for its "
		    "hook.verify", r->created ? "created" :
		    "verification requested", age / 1000);
	} else if (r != NULL && age < HEAL_HOUR_MS && r->created) {
		heal_say(l, "still inactive %" PRId64 " min after it was "
		    "re-created: does the receiver answer at hook_url? Asked "
		    "for again once the hour is over; by hand", age / 60000);
		snprintf(l->fix, sizeof(l->fix), "podio-webhook hooks verify %"
		    PRIu64, h->hook_id);
	} else if (r != NULL && age < HEAL_HOUR_MS && declared &&
	    !hooks_allowed_set(cfg)) {
		if (heal_recreate(cfg, client, st, app_id, h,
		    heal_count_type(hooks, n, type), l, now) != 0)
			goto nomem;
	} else if (r != NULL && age < HEAL_HOUR_MS) {
		heal_say(l, "still inactive after verification was requested; "
		    "%s; re-create it", declared ? "not re-created: "
		    "allowed_hooks is set and would refuse the new hook (add "
		    "its id to allowed_hooks)" : "not re-created: no hook line "
		    "declares it at hook_url");
		hooks_fix_command(l->fix, sizeof(l->fix), "app", app_id, base,
		    type, h->hook_id);
	} else if (hooks_allowed_set(cfg) && !hooks_allowed(cfg,
	    h->hook_id)) {
		heal_say(l, "inactive, and not in allowed_hooks: its hook.verify "
		    "would be refused; add %" PRIu64 " to allowed_hooks, then",
		    h->hook_id);
		snprintf(l->fix, sizeof(l->fix), "podio-webhook hooks verify %"
		    PRIu64, h->hook_id);
	} else if ((rc = podio_hook_verify(client, h->hook_id)) != PODIO_OK) {
		l->kind = HEAL_FAILED;
		l->err = rc;
		heal_say(l, "inactive; requesting verification failed: %s",
		    podio_client_errmsg(client));
	} else {
		heal_state_set(st, h->hook_id, 0, now);
		l->kind = HEAL_REQUESTED;
		heal_say(l, "inactive: verification requested");
	}
	free(base);
	return 0;
nomem:
	free(base);
	return -1;
}

/* ------------------------------------------------------------ the gap */

/* A time as "YYYY-MM-DDTHH:MM:SSZ" (iso) or "YYYY-MM-DD HH:MM:SS" into
 * buf; "?" when it cannot be written. */
static void
heal_time(int64_t ms, int iso, char *buf, size_t len)
{
	time_t t = (time_t)(ms / 1000);
	struct tm tm;

	if (ms <= 0 || gmtime_r(&t, &tm) == NULL || strftime(buf, len, iso ?
	    "%Y-%m-%dT%H:%M:%SZ" : "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "?");
}

/* Sets mark NAME_APP of spool to value; a failure becomes a line of rep.
 * Returns 0, or -1 on out of memory. */
static int
heal_set_mark(struct podio_spool *spool, const char *name, uint64_t app,
    int64_t value, struct heal_report *rep)
{
	struct heal_line *l;
	char mark[80];
	enum podio_err e;

	snprintf(mark, sizeof(mark), "%s_%" PRIu64, name, app);
	if ((e = podio_spool_set_mark(spool, mark, value)) == PODIO_OK)
		return 0;
	if ((l = heal_line_new(rep, HEAL_FAILED, app, NULL)) == NULL)
		return -1;
	l->err = e;
	heal_say(l, "cannot note the time %s in the spool: %s", mark,
	    podio_strerror(e));
	return 0;
}

/*
 * The end of a time some hook of this receiver on app was inactive
 * (see the top of this file): seen first at inactive, all active last
 * at active (0: unknown); listed: when this run listed them all active.
 * Backfills with catch_up, or reports the gap.  Returns 0, or -1 on out
 * of memory.
 */
static int
heal_gap_end(const struct podio_config *cfg, struct podio_client *client,
    const struct hooks_heal_env *env, uint64_t app, int64_t active,
    int64_t inactive, int64_t listed, struct heal_report *rep)
{
	struct backfill_opts opts;
	struct backfill_result res;
	struct heal_line *l;
	char seen[32], from[32], iso[32], capped[128];
	int64_t floor, since;
	int status;

	floor = listed - podio_config_get_ms(cfg, "catch_up_max");
	since = active > 0 ? active - HEAL_GAP_SLACK_MS : floor;
	capped[0] = '\0';
	if (active <= 0)
		snprintf(capped, sizeof(capped), " (when they were last all "
		    "active is unknown: catch_up_max back)");
	else if (since < floor)
		snprintf(capped, sizeof(capped), " (catch_up_max back: the "
		    "edits before that are left out)");
	if (since < floor)
		since = floor;
	heal_time(inactive, 0, seen, sizeof(seen));
	heal_time(since, 0, from, sizeof(from));
	heal_time(since, 1, iso, sizeof(iso));
	if (env->rt == NULL || !podio_config_get_bool(cfg, "catch_up")) {
		if ((l = heal_line_new(rep, HEAL_NOT_CAUGHT_UP, app, NULL)) ==
		    NULL)
			return -1;
		l->since_ms = since;
		heal_say(l, "a hook was inactive (found so at %s UTC): Podio did not "
		    "deliver the edits of that time, and catch_up is off; to "
		    "catch up since %s UTC%s", seen, from, capped);
		snprintf(l->fix, sizeof(l->fix), "podio-webhook backfill "
		    "--app %" PRIu64 " --since %s", app, iso);
		return heal_set_mark(env->spool, "hooks_active", app, listed,
		    rep);
	}
	memset(&opts, 0, sizeof(opts));
	opts.filter_reserve = BACKFILL_FILTER_RESERVE;
	opts.stopping = env->stopping;
	opts.stop_arg = env->stop_arg;
	status = backfill_app(env->rt, client, env->spool, app, since, &opts,
	    NULL, NULL, &res);
	if ((l = heal_line_new(rep, res.complete ? HEAL_CAUGHT_UP :
	    HEAL_CATCH_UP_STOPPED, app, NULL)) == NULL)
		return -1;
	l->since_ms = since;
	l->queued = (long)res.queued;
	if (!res.complete) {
		l->err = res.err;
		l->unreached = status == CLI_EXIT_UNREACHED;
		heal_say(l, "a hook was inactive (found so at %s UTC): the catch-up "
		    "since %s UTC%s stopped with %zu event%s queued: %s; the "
		    "next run goes on, or", seen, from, capped, res.queued,
		    res.queued == 1 ? "" : "s", res.why);
		snprintf(l->fix, sizeof(l->fix), "podio-webhook backfill "
		    "--app %" PRIu64 " --since %s", app, iso);
		return 0;
	}
	heal_say(l, "a hook was inactive (found so at %s UTC): caught up since %s "
	    "UTC%s: %zu item%s edited, %zu queued, %zu current, %zu pending, "
	    "%zu duplicate; %zu filter call%s", seen, from, capped,
	    res.listed, res.listed == 1 ? "" : "s", res.queued, res.current,
	    res.pending, res.duplicates, res.calls, res.calls == 1 ? "" : "s");
	return heal_set_mark(env->spool, "hooks_active", app, listed, rep);
}

/*
 * Follows the hooks of this receiver on app (hooks: all of the app's, n
 * of them, listed at listed) with the marks of the spool (see the top
 * of this file).  Returns 0, or -1 on out of memory.
 */
static int
heal_gap(const struct podio_config *cfg, struct podio_client *client,
    const struct hooks_heal_env *env, uint64_t app,
    const struct podio_hook *hooks, size_t n, int64_t listed,
    struct heal_report *rep)
{
	struct heal_line *l;
	char mark[80];
	int64_t active = 0, inactive = 0;
	size_t i, ours = 0, off = 0;
	enum podio_err e;

	for (i = 0; i < n; i++) {
		if (hooks[i].url == NULL || !hooks_is_ours(cfg, "app", app,
		    hooks[i].url))
			continue;
		ours++;
		if (hooks[i].status == NULL ||
		    strcmp(hooks[i].status, "active") != 0)
			off++;
	}
	if (ours == 0 || env == NULL || env->spool == NULL)
		return 0;
	snprintf(mark, sizeof(mark), "hooks_active_%" PRIu64, app);
	if ((e = podio_spool_get_mark(env->spool, mark, &active)) ==
	    PODIO_OK || e == PODIO_ERR_NOT_FOUND) {
		snprintf(mark, sizeof(mark), "hooks_inactive_%" PRIu64, app);
		e = podio_spool_get_mark(env->spool, mark, &inactive);
	}
	if (e != PODIO_OK && e != PODIO_ERR_NOT_FOUND) {
		if ((l = heal_line_new(rep, HEAL_FAILED, app, NULL)) == NULL)
			return -1;
		l->err = e;
		heal_say(l, "cannot read in the spool when its hooks were "
		    "active: %s", podio_strerror(e));
		return 0;
	}
	if (off > 0)
		return inactive <= active ? heal_set_mark(env->spool,
		    "hooks_inactive", app, listed, rep) : 0;
	if (inactive <= active)
		return heal_set_mark(env->spool, "hooks_active", app, listed,
		    rep);
	return heal_gap_end(cfg, client, env, app, active, inactive, listed,
	    rep);
}

/*
 * One run (see the top of this file): rep receives one line per hook
 * acted on or reported, per app whose hooks could not be listed, and
 * per app whose inactive time ended (env: the spool of the marks and the
 * runtime of a catch-up; NULL keeps no marks).
 * Returns 0, or -1 with the reason in err when the run could not start
 * (nothing to look after, the state file) or ran out of memory.
 */
static int
heal_run(const struct podio_config *cfg, struct podio_client *client,
    const struct hooks_heal_env *env, struct heal_report *rep, char *err,
    size_t errlen)
{
	struct heal_state st;
	struct podio_hook *hooks = NULL;
	struct heal_line *l;
	char cerr[256];
	uint64_t *apps = NULL;
	size_t napps = 0, n = 0, i, j;
	int64_t now, listed;
	enum podio_err rc;
	int status = -1;

	memset(&st, 0, sizeof(st));
	st.fd = -1;
	if (hooks_apps(cfg, &apps, &napps) != 0) {
		heal_errf(err, errlen, "out of memory");
		return -1;
	}
	if (napps == 0) {
		heal_errf(err, errlen, "no app is configured: set app_id, or "
		    "declare hooks with hook lines");
		goto done;
	}
	if (!cli_is_set(cfg, "hook_url") && !cli_is_set(cfg,
	    "webhook_secret")) {
		heal_errf(err, errlen, "this receiver's hooks cannot be told "
		    "from others: set hook_url or webhook_secret");
		goto done;
	}
	if (heal_state_open(cfg, &st, err, errlen) != 0)
		goto done;
	if (env != NULL && env->spool == NULL && env->spool_err != NULL) {
		if ((l = heal_line_new(rep, HEAL_FAILED, 0, NULL)) == NULL)
			goto nomem;
		heal_say(l, "when hooks were inactive is not kept: cannot open "
		    "the spool: %s", env->spool_err);
	}
	for (i = 0; i < napps; i++) {
		listed = podio__wall_ms();
		hooks_use_app(client, "app", apps[i]);
		rc = podio_hook_list(client, "app", apps[i], &hooks, &n, NULL);
		if (rc != PODIO_OK) {
			if ((l = heal_line_new(rep, HEAL_FAILED, apps[i],
			    NULL)) == NULL)
				goto nomem;
			l->err = rc;
			heal_say(l, "cannot list its hooks: %s",
			    podio_client_errmsg(client));
			continue;
		}
		now = podio__wall_ms();
		for (j = 0; j < n; j++) {
			if (hooks[j].url == NULL || !hooks_is_ours(cfg, "app",
			    apps[i], hooks[j].url))
				continue;
			if (hooks[j].status != NULL &&
			    strcmp(hooks[j].status, "active") == 0) {
				heal_state_drop(&st, hooks[j].hook_id);
				continue;
			}
			if (heal_hook(cfg, client, &st, apps[i], &hooks[j],
			    hooks, n, rep, now) != 0)
				goto nomem;
		}
		if (heal_gap(cfg, client, env, apps[i], hooks, n, listed,
		    rep) != 0)
			goto nomem;
		podio_hooks_free(hooks, n);
		hooks = NULL;
		n = 0;
	}
	status = 0;
	goto done;
nomem:
	heal_errf(err, errlen, "out of memory");
done:
	podio_hooks_free(hooks, n);
	if (heal_state_close(&st, podio__wall_ms(), cerr, sizeof(cerr)) != 0 &&
	    status == 0 && (l = heal_line_new(rep, HEAL_FAILED, 0, NULL)) !=
	    NULL)
		podio__strlcpy(l->text, cerr, sizeof(l->text));
	free(apps);
	return status;
}

/* Frees the lines of rep. */
static void
heal_report_free(struct heal_report *rep)
{
	free(rep->lines);
	memset(rep, 0, sizeof(*rep));
}

/* Whether a line of kind k needs a look: a hook that stays broken, a
 * failed call, edits of an inactive hook's time not (all) caught up. */
static int
heal_kind_bad(enum heal_kind k)
{
	return k == HEAL_BROKEN || k == HEAL_FAILED ||
	    k == HEAL_CATCH_UP_STOPPED || k == HEAL_NOT_CAUGHT_UP;
}

/* The exit status for rep: 3 when a call could not reach Podio, 1 when
 * a hook stays broken, a call failed or an inactive hook's edits were
 * not caught up, else 0. */
static int
heal_status(const struct heal_report *rep)
{
	size_t i;
	int status = CLI_EXIT_OK;

	for (i = 0; i < rep->n; i++) {
		if (heal_kind_bad(rep->lines[i].kind) &&
		    (rep->lines[i].unreached ||
		    podio_err_is_transport(rep->lines[i].err)))
			return CLI_EXIT_UNREACHED;
		if (heal_kind_bad(rep->lines[i].kind))
			status = CLI_EXIT_PODIO;
	}
	return status;
}

/*
 * Writes line l as text into buf (size len): "hook ID (app ID, TYPE):
 * TEXT" or "app ID: TEXT", and the command after ": " when there is
 * one.  Not yet scrubbed.
 */
static void
heal_format(const struct heal_line *l, char *buf, size_t len)
{
	size_t used;

	if (l->hook_id != 0)
		snprintf(buf, len, "hook %" PRIu64 " (app %" PRIu64 ", %s): %s",
		    l->hook_id, l->ref_id, l->type, l->text);
	else if (l->ref_id != 0)
		snprintf(buf, len, "app %" PRIu64 ": %s", l->ref_id, l->text);
	else
		snprintf(buf, len, "%s", l->text);
	used = strlen(buf);
	if (l->fix[0] != '\0' && used < len)
		snprintf(buf + used, len - used, ": %s", l->fix);
}

/* Prints rep as a JSON array, one object per line, every text scrubbed.
 * Returns 0, or -1 on out of memory. */
static int
heal_print_json(const struct podio_config *cfg, const struct heal_report *rep)
{
	const struct heal_line *l;
	char id[32], line[CLI_MSG_MAX + sizeof(l->fix) + 128];
	char *safe = NULL;
	cJSON *obj = NULL;
	size_t i;
	int rc = -1;

	printf("[");
	for (i = 0; i < rep->n; i++) {
		l = &rep->lines[i];
		if ((obj = cJSON_CreateObject()) == NULL)
			goto done;
		/* Ids as raw digits: a double would round ids past 2^53. */
		if (l->ref_id != 0) {
			snprintf(id, sizeof(id), "%" PRIu64, l->ref_id);
			if (cJSON_AddStringToObject(obj, "ref_type", "app") ==
			    NULL || cJSON_AddRawToObject(obj, "ref_id", id) ==
			    NULL)
				goto done;
		}
		if (l->hook_id != 0) {
			snprintf(id, sizeof(id), "%" PRIu64, l->hook_id);
			if (cJSON_AddRawToObject(obj, "hook_id", id) == NULL ||
			    cJSON_AddStringToObject(obj, "type", l->type) ==
			    NULL)
				goto done;
		}
		if (cJSON_AddStringToObject(obj, "action",
		    heal_kind_names[l->kind]) == NULL)
			goto done;
		if (l->new_id != 0) {
			snprintf(id, sizeof(id), "%" PRIu64, l->new_id);
			if (cJSON_AddRawToObject(obj, "new_hook_id", id) ==
			    NULL)
				goto done;
		}
		if (l->since_ms > 0) {
			heal_time(l->since_ms, 1, id, sizeof(id));
			if (cJSON_AddStringToObject(obj, "since", id) == NULL)
				goto done;
		}
		if (l->kind == HEAL_CAUGHT_UP ||
		    l->kind == HEAL_CATCH_UP_STOPPED) {
			if (cJSON_AddNumberToObject(obj, "queued",
			    (double)l->queued) == NULL)
				goto done;
		}
		if (l->fix[0] != '\0') {
			if ((safe = secret_scrub(cfg, l->fix)) == NULL ||
			    cJSON_AddStringToObject(obj, "command", safe) ==
			    NULL)
				goto done;
			free(safe);
			safe = NULL;
		}
		heal_format(l, line, sizeof(line));
		if ((safe = secret_scrub(cfg, line)) == NULL ||
		    cJSON_AddStringToObject(obj, "message", safe) == NULL ||
		    cli_json_element(&obj, i) != 0)
			goto done;
		free(safe);
		safe = NULL;
	}
	cli_json_end(rep->n);
	rc = 0;
done:
	if (rc != 0)
		printf("\n");
	free(safe);
	cJSON_Delete(obj);
	return rc;
}

/*
 * The client, the spool and, with catch_up, the runtime of `hooks heal`
 * into env, *rt and *client (the caller frees them, the client before
 * the runtime).  A runtime takes over the configuration: ctx->cfg is
 * then rt's.  Returns 0, or an exit status after printing the reason.
 * A spool that cannot be opened is not fatal: the run goes on, and
 * says so.
 */
static int
heal_cmd_open(struct cli_ctx *ctx, struct hooks_heal_env *env,
    struct runtime **rt, struct podio_client **client, char *err,
    size_t errlen)
{
	const char *dir;
	int rc;

	if (!podio_config_get_bool(ctx->cfg, "catch_up")) {
		if ((rc = cli_connect(ctx)) != 0)
			return rc;
		*client = ctx->client;
		ctx->client = NULL;
	} else {
		/* A catch-up runs the backfill of the handler, with its
		 * credentials, budget and spool. */
		rc = runtime_new(*ctx->cfg_owner, ctx->fns, NULL, rt, err,
		    errlen);
		*ctx->cfg_owner = NULL;
		ctx->cfg = NULL;
		if (rc != 0) {
			fprintf(stderr, "podio-webhook: %s: catch_up is set, "
			    "and the handler cannot run: %s\n", ctx->what,
			    err);
			return rc == RUNTIME_NOMEM ? CLI_EXIT_PODIO :
			    CLI_EXIT_USAGE;
		}
		ctx->cfg = (*rt)->cfg;
		if (runtime_client(*rt, client) != PODIO_OK) {
			cli_error(ctx, "out of memory");
			return CLI_EXIT_PODIO;
		}
	}
	env->rt = *rt;
	dir = podio_config_spool(ctx->cfg);
	err[0] = '\0';
	if (dir != NULL && dir[0] != '\0' && podio_spool_open(dir,
	    &env->spool, err, errlen) != PODIO_OK) {
		env->spool = NULL;
		if (err[0] == '\0')
			snprintf(err, errlen, "%s", podio_strerror(PODIO_ERR_IO));
		env->spool_err = err;
	}
	return 0;
}

/* hooks heal [--json] */
int
hooks_cmd_heal(struct cli_ctx *ctx)
{
	struct hooks_heal_env env;
	struct heal_report rep;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	char err[512], serr[512];
	char line[CLI_MSG_MAX + CLI_URL_MAX + 384], *safe;
	size_t i;
	int status;

	memset(&rep, 0, sizeof(rep));
	memset(&env, 0, sizeof(env));
	err[0] = '\0';
	if ((status = heal_cmd_open(ctx, &env, &rt, &client, serr,
	    sizeof(serr))) != 0)
		goto done;
	if (heal_run(ctx->cfg, client, &env, &rep, err, sizeof(err)) != 0) {
		cli_error(ctx, "%s", err);
		status = strcmp(err, "out of memory") == 0 ? CLI_EXIT_PODIO :
		    CLI_EXIT_USAGE;
		goto done;
	}
	status = heal_status(&rep);
	if (ctx->json) {
		if (heal_print_json(ctx->cfg, &rep) != 0) {
			cli_error(ctx, "out of memory");
			status = CLI_EXIT_PODIO;
		}
		goto done;
	}
	for (i = 0; i < rep.n; i++) {
		heal_format(&rep.lines[i], line, sizeof(line));
		if ((safe = secret_scrub(ctx->cfg, line)) == NULL) {
			cli_error(ctx, "out of memory");
			status = CLI_EXIT_PODIO;
			goto done;
		}
		printf("%s\n", safe);
		free(safe);
	}
done:
	heal_report_free(&rep);
	podio_spool_close(env.spool);
	podio_client_free(client);
	if (rt != NULL)
		ctx->cfg = NULL;
	runtime_unref(rt);
	return status;
}

/* See hooks.h. */
void
hooks_heal_log(const struct podio_config *cfg, struct podio_client *client,
    const struct hooks_heal_env *env)
{
	struct heal_report rep;
	char err[512], line[CLI_MSG_MAX + CLI_URL_MAX + 384], *safe;
	enum heal_kind k;
	size_t i;

	memset(&rep, 0, sizeof(rep));
	err[0] = '\0';
	if (heal_run(cfg, client, env, &rep, err, sizeof(err)) != 0) {
		safe = secret_scrub(cfg, err);
		podio_log(PODIO_LOG_ERROR, "hooks heal: %s",
		    safe != NULL ? safe : "out of memory");
		free(safe);
	}
	for (i = 0; i < rep.n; i++) {
		k = rep.lines[i].kind;
		heal_format(&rep.lines[i], line, sizeof(line));
		safe = secret_scrub(cfg, line);
		podio_log(heal_kind_bad(k) ? PODIO_LOG_WARN : PODIO_LOG_INFO,
		    "hooks heal: %s",
		    safe != NULL ? safe : "(withheld: out of memory)");
		free(safe);
	}
	heal_report_free(&rep);
}

/*
 * doctor.c: `podio-webhook doctor` (see doctor.h): the output, the checks
 * of this host (the configuration, its file, the credentials, the
 * webhook secret, the spool) and the run.  The checks that talk to Podio
 * are in doctor_api.c.
 *
 * The checks run in the order they depend on each other, each printing
 * its line as soon as it is known: the configuration, the spool (its
 * directory, what it holds), the API (reachable, the credential, the
 * rate limit, a pause or an outage the processors keep in the spool),
 * then the hooks of every configured app.
 *
 * Nothing is changed: the spool is opened only when its database exists
 * (opening creates what is missing) and is only read.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "cli.h"
#include "doctor.h"
#include "doctor_int.h"
#include "hooks.h"
#include "secret.h"
#include "spool.h"

#define PROG "podio-webhook"
/* The spool's database in a spool directory (lib/spool/sqlite.c). */
#define DOCTOR_SPOOL_DB "spool.db"

/* ------------------------------------------------------------ output */

/* See doctor_int.h. */
void
doctor_line(struct doctor *d, int ok, const char *check, const char *fix,
    const char *fmt, ...)
{
	char detail[DOCTOR_MSG_MAX], name[64], *sd = NULL, *sf = NULL,
	    *text = NULL;
	cJSON *obj = NULL;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof(detail), fmt, ap);
	va_end(ap);
	if (d->cfg != NULL) {
		sd = secret_scrub(d->cfg, detail);
		sf = fix != NULL ? secret_scrub(d->cfg, fix) : NULL;
	} else {
		sd = secret_mask_query(detail);
		sf = fix != NULL ? secret_mask_query(fix) : NULL;
	}
	explicit_bzero(detail, sizeof(detail));
	if (sd == NULL || (fix != NULL && sf == NULL))
		goto nomem;
	if (!ok)
		d->failed++;
	if (d->json) {
		if ((obj = cJSON_CreateObject()) == NULL ||
		    cJSON_AddStringToObject(obj, "check", check) == NULL ||
		    cJSON_AddBoolToObject(obj, "ok", ok) == NULL ||
		    cJSON_AddStringToObject(obj, "detail", sd) == NULL ||
		    (sf != NULL ? cJSON_AddStringToObject(obj, "fix", sf) :
		    cJSON_AddNullToObject(obj, "fix")) == NULL ||
		    (text = cJSON_PrintUnformatted(obj)) == NULL)
			goto nomem;
		printf("%s\n  %s", d->lines > 0 ? "," : "[", text);
	} else {
		snprintf(name, sizeof(name), "%s:", check);
		printf("%-4s %-*s %s%s%s\n", ok ? "ok" : "FAIL",
		    DOCTOR_NAME_WIDTH, name, sd, sf != NULL ? "; " : "",
		    sf != NULL ? sf : "");
	}
	d->lines++;
	fflush(stdout);
	goto done;
nomem:
	d->failed++;
	fprintf(stderr, PROG ": doctor: %s: out of memory\n", check);
done:
	free(text);
	cJSON_Delete(obj);
	free(sd);
	free(sf);
}

/* Ends the output (the JSON array's end). */
static void
doctor_end(struct doctor *d)
{
	if (d->json)
		printf("%s]\n", d->lines > 0 ? "\n" : "[");
	fflush(stdout);
}

/* ------------------------------------------------------------ helpers */

/* See doctor_int.h. */
void
doctor_quote(const char *s, char *buf, size_t n)
{
	size_t i, o = 0;

	if (s[0] != '\0' && strspn(s, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:=@%+,-") ==
	    strlen(s)) {
		snprintf(buf, n, "%s", s);
		return;
	}
	if (n < 3) {
		buf[0] = '\0';
		return;
	}
	buf[o++] = '\'';
	for (i = 0; s[i] != '\0' && o + 6 < n; i++) {
		if (s[i] == '\'') {
			memcpy(buf + o, "'\\''", 4);
			o += 4;
		} else
			buf[o++] = s[i];
	}
	buf[o++] = '\'';
	buf[o] = '\0';
}

/* The name of user uid into buf, or "uid N". */
static void
doctor_user(uid_t uid, char *buf, size_t n)
{
	struct passwd pw, *res = NULL;
	char tmp[1024];

	if (getpwuid_r(uid, &pw, tmp, sizeof(tmp), &res) == 0 &&
	    res != NULL && res->pw_name != NULL)
		snprintf(buf, n, "%s", res->pw_name);
	else
		snprintf(buf, n, "uid %lu", (unsigned long)uid);
}

/* See doctor_int.h. */
void
doctor_age(int64_t ms, char *buf, size_t n)
{
	int64_t s = ms > 0 ? ms / 1000 : 0;

	if (s < 120)
		snprintf(buf, n, "%" PRId64 " s", s);
	else if (s < 120 * 60 && s % 3600 != 0)
		snprintf(buf, n, "%" PRId64 " min", s / 60);
	else if (s < 48 * 3600)
		snprintf(buf, n, "%" PRId64 " h", s / 3600);
	else
		snprintf(buf, n, "%" PRId64 " d", s / 86400);
}

/* See doctor_int.h. */
int64_t
doctor_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* See doctor_int.h. */
int
doctor_is_set(const struct podio_config *cfg, const char *key)
{
	const char *v = podio_config_get(cfg, key);

	return v != NULL && v[0] != '\0';
}

/* See doctor_int.h. */
int
doctor_app_flow(const struct podio_config *cfg)
{
	return doctor_is_set(cfg, "app_id") && doctor_is_set(cfg, "app_token");
}

/*
 * The apps whose hooks are checked: app_id (an app of the app flow, or
 * one the password flow's user sees) and the apps of the hook lines
 * (hooks_apps()), at most DOCTOR_APPS_MAX of them.
 */
static void
doctor_find_apps(struct doctor *d)
{
	uint64_t *ids = NULL;
	size_t i, n = 0;

	d->napps = 0;
	if (hooks_apps(d->cfg, &ids, &n) != 0) {
		fprintf(stderr, PROG ": doctor: out of memory\n");
		return;
	}
	for (i = 0; i < n && d->napps < DOCTOR_APPS_MAX; i++)
		d->apps[d->napps++] = ids[i];
	free(ids);
}

/* ------------------------------------------------------------ the configuration */

/*
 * Whether the file at path sets a secret: a secret key, or a spool_url
 * with a password.  Read apart from the effective configuration, which
 * the environment and -o add to.  A file that cannot be read again
 * counts as holding secrets.  The names go to buf.
 */
static int
doctor_file_secrets(const char *path, char *buf, size_t n)
{
	struct podio_config *own = NULL;
	const char *key, *val;
	char err[512], *masked;
	size_t i, used = 0;
	int has_pw;

	buf[0] = '\0';
	if ((own = podio_config_new()) == NULL ||
	    podio_config_load_file(own, path, err, sizeof(err)) != PODIO_OK) {
		podio_config_free(own);
		snprintf(buf, n, "it could not be read again");
		return 1;
	}
	for (i = 0; (key = podio_config_key_name(i)) != NULL; i++) {
		val = podio_config_get(own, key);
		if (val == NULL || val[0] == '\0')
			continue;
		if (!podio_config_key_is_secret(key)) {
			/* A URI's password (spool_url) is a secret too. */
			if (!podio_spool_is_url(val) ||
			    (masked = podio_spool_mask(val)) == NULL)
				continue;
			has_pw = strcmp(masked, val) != 0;
			free(masked);
			if (!has_pw)
				continue;
		}
		used += (size_t)snprintf(buf + used, used < n ? n - used : 0,
		    "%s%s", used > 0 ? ", " : "", key);
		if (used >= n)
			used = n;
	}
	podio_config_free(own);
	return buf[0] != '\0';
}

/*
 * config-file: the file belongs to the running user or root, nobody else
 * may write in it or in its directory (an `on` line runs any command),
 * and a file holding secrets is readable by its owner alone.
 */
static void
doctor_config_file(struct doctor *d, const char *path)
{
	struct stat st, dst;
	char owner[64], downer[64], secrets[256], problem[DOCTOR_MSG_MAX],
	    fix[DOCTOR_MSG_MAX], q[1100], dir[1100], qd[1100], *slash;
	unsigned mode;
	int has_secrets;

	if (stat(path, &st) != 0) {
		doctor_line(d, 0, "config-file", "check the path",
		    "%s: %s", path, strerror(errno));
		return;
	}
	doctor_quote(path, q, sizeof(q));
	doctor_user(st.st_uid, owner, sizeof(owner));
	mode = (unsigned)(st.st_mode & 07777);
	has_secrets = doctor_file_secrets(path, secrets, sizeof(secrets));
	problem[0] = fix[0] = '\0';
	if (st.st_uid != d->uid && st.st_uid != 0) {
		snprintf(problem, sizeof(problem), "%s belongs to %s, not to "
		    "%s (who runs this)%s: its owner can change what runs as "
		    "%s", path, owner, d->me, d->uid != 0 ? " or root" : "",
		    d->me);
		snprintf(fix, sizeof(fix), "chown %s %s (or run doctor as "
		    "the user the handler runs as)", d->me, q);
	} else if (has_secrets && (mode & 077) != 0) {
		snprintf(problem, sizeof(problem), "%s is mode %04o and holds "
		    "secrets (%s): group or others can read them", path, mode,
		    secrets);
		snprintf(fix, sizeof(fix), "chmod 0600 %s", q);
	} else if ((mode & 022) != 0) {
		snprintf(problem, sizeof(problem), "%s is mode %04o: group or "
		    "others can change it, and so what it runs", path, mode);
		snprintf(fix, sizeof(fix), "chmod go-w %s", q);
	}
	/* Whoever may replace the file in its directory may change it. */
	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	doctor_quote(dir, qd, sizeof(qd));
	if (problem[0] == '\0' && stat(dir, &dst) == 0) {
		if (dst.st_uid != d->uid && dst.st_uid != 0) {
			doctor_user(dst.st_uid, downer, sizeof(downer));
			snprintf(problem, sizeof(problem), "its directory %s "
			    "belongs to %s, who can replace the file", dir,
			    downer);
			snprintf(fix, sizeof(fix), "move the file to a "
			    "directory of %s or root", d->me);
		} else if ((dst.st_mode & (S_IWGRP | S_IWOTH)) != 0 &&
		    (dst.st_mode & S_ISVTX) == 0) {
			snprintf(problem, sizeof(problem), "its directory %s "
			    "is mode %04o: group or others can replace the "
			    "file", dir, (unsigned)(dst.st_mode & 07777));
			snprintf(fix, sizeof(fix), "chmod go-w %s", qd);
		}
	}
	if (problem[0] != '\0') {
		doctor_line(d, 0, "config-file", fix, "%s", problem);
		return;
	}
	doctor_line(d, 1, "config-file", NULL, "owner %s, mode %04o%s", owner,
	    mode, has_secrets ? "" : ", no secret in it");
}

/*
 * config: whether the configuration loaded (else its FAIL line, and 2
 * is returned: nothing else can be checked), then its file's owner and
 * mode.  Returns 0 to go on.
 */
static int
doctor_config(struct doctor *d, const char *config_opt,
    const char *config_err)
{
	const char *path;
	struct stat st;
	int is_explicit = 0;

	path = podio_config_path(config_opt, &is_explicit);
	if (config_err != NULL) {
		doctor_line(d, 0, "config", "correct it, then run doctor "
		    "again", "%s", config_err);
		return CLI_EXIT_USAGE;
	}
	if (path == NULL || path[0] == '\0' ||
	    (stat(path, &st) != 0 && errno == ENOENT && !is_explicit)) {
		doctor_line(d, 1, "config", NULL, "no file at %s: the keys come "
		    "from PODIO_* variables and -o", path != NULL ? path : "");
		return 0;
	}
	doctor_line(d, 1, "config", NULL, "%s loads", path);
	doctor_config_file(d, path);
	return 0;
}

/* credentials: a complete flow (the token store is kept for the API
 * checks); webhook-secret: set, or knowingly left out. */
static void
doctor_credentials(struct doctor *d)
{
	char err[512];
	enum podio_err rc;

	err[0] = '\0';
	rc = podio_tokens_new(d->cfg, &d->tokens, err, sizeof(err));
	if (rc != PODIO_OK)
		doctor_line(d, 0, "credentials", "set them in the configuration "
		    "file (or as PODIO_<KEY>): the API key from "
		    "https://podio.com/settings/api, the app's id and token "
		    "from its Developer settings", "%s",
		    err[0] != '\0' ? err : podio_strerror(rc));
	else if (doctor_app_flow(d->cfg))
		doctor_line(d, 1, "credentials", NULL, "app %s, client %s",
		    podio_config_get(d->cfg, "app_id"),
		    podio_config_get(d->cfg, "client_id"));
	else
		doctor_line(d, 1, "credentials", NULL, "user %s, client %s",
		    podio_config_get(d->cfg, "username"),
		    podio_config_get(d->cfg, "client_id"));

	if (doctor_is_set(d->cfg, "webhook_secret"))
		doctor_line(d, 1, "webhook-secret", NULL, "set%s",
		    doctor_is_set(d->cfg, "webhook_secret_previous") ?
		    " (webhook_secret_previous still accepted too)" : "");
	else if (podio_config_get_bool(d->cfg, "allow_no_secret"))
		doctor_line(d, 1, "webhook-secret", NULL, "not set: "
		    "allow_no_secret = yes accepts deliveries without one");
	else
		doctor_line(d, 0, "webhook-secret", "set webhook_secret to a "
		    "long random string (openssl rand -hex 24), then create "
		    "the hooks again so that their URLs carry it",
		    "not set: the handler answers every delivery 503");
}

/* ------------------------------------------------------------ the spool */

/*
 * spool, for a spool directory: it exists, belongs to the running user,
 * nobody else may write in it (the trust podio_spool_open() demands),
 * and it is writable.  Opens it when its database exists.
 */
static void
doctor_spool_dir(struct doctor *d, const char *dir)
{
	struct stat st;
	char owner[64], q[1100], fix[DOCTOR_MSG_MAX], err[1024],
	    db[1100];
	static const char *const dbs[] = { DOCTOR_SPOOL_DB, "intake.db" };
	unsigned mode;
	size_t i;
	int saved, have_db;

	doctor_quote(dir, q, sizeof(q));
	if (stat(dir, &st) != 0) {
		saved = errno;
		if (saved == ENOENT) {
			snprintf(fix, sizeof(fix), "create it as the user "
			    "the handler runs as: mkdir -p -m 0700 %s", q);
			doctor_line(d, 0, "spool", fix, "%s does not exist",
			    dir);
		} else
			doctor_line(d, 0, "spool", "check spool_dir and the "
			    "rights on the directories above it", "%s: %s",
			    dir, strerror(saved));
		return;
	}
	if (!S_ISDIR(st.st_mode)) {
		doctor_line(d, 0, "spool", "set spool_dir to a directory",
		    "%s is not a directory", dir);
		return;
	}
	doctor_user(st.st_uid, owner, sizeof(owner));
	mode = (unsigned)(st.st_mode & 07777);
	if (st.st_uid != d->uid) {
		snprintf(fix, sizeof(fix), "run doctor as the user the handler "
		    "runs as (runuser -u %s -- %s doctor), or give it the "
		    "directory: chown -R %s %s", owner, d->prog, d->me, q);
		doctor_line(d, 0, "spool", fix, "%s belongs to %s, not to %s "
		    "who runs this: the spool is refused", dir, owner, d->me);
		return;
	}
	if ((mode & (S_IWGRP | S_IWOTH)) != 0) {
		snprintf(fix, sizeof(fix), "chmod 0700 %s", q);
		doctor_line(d, 0, "spool", fix, "%s is mode %04o: group or "
		    "others can write in it and plant events, so the spool "
		    "is refused", dir, mode);
		return;
	}
	if (access(dir, R_OK | W_OK | X_OK) != 0) {
		saved = errno;
		snprintf(fix, sizeof(fix), saved == EROFS ? "mount its file "
		    "system read-write, or set spool_dir elsewhere" :
		    "chmod 0700 %s", q);
		doctor_line(d, 0, "spool", fix, "%s (mode %04o) is not "
		    "writable by %s: %s; deliveries are answered 503", dir,
		    mode, d->me, strerror(saved));
		return;
	}
	err[0] = '\0';
	if (podio_spool_check(dir, err, sizeof(err)) != PODIO_OK) {
		doctor_line(d, 0, "spool", "until then the spool is refused",
		    "%s", err);
		return;
	}
	/* The spool's database, and the intake of CGI runs (whose events
	 * the open moves in). */
	have_db = 0;
	for (i = 0; i < sizeof(dbs) / sizeof(dbs[0]); i++) {
		snprintf(db, sizeof(db), "%s/%s", dir, dbs[i]);
		if (access(db, F_OK) != 0)
			continue;
		have_db = 1;
		if (access(db, R_OK | W_OK) != 0) {
			saved = errno;
			doctor_quote(db, q, sizeof(q));
			snprintf(fix, sizeof(fix), "chmod 0600 %s", q);
			doctor_line(d, 0, "spool", fix, "%s is not writable "
			    "by %s: %s", db, d->me, strerror(saved));
			return;
		}
	}
	if (have_db && podio_spool_open(dir, &d->spool, err, sizeof(err)) !=
	    PODIO_OK) {
		d->spool = NULL;
		doctor_line(d, 0, "spool", "correct what the message names",
		    "%s", err);
		return;
	}
	doctor_line(d, 1, "spool", NULL, "%s: owner %s, mode %04o, writable%s",
	    dir, owner, mode, have_db ? "" : "; empty (its database is made "
	    "at the first delivery)");
}

/* spool, for a PostgreSQL spool: it opens. */
static void
doctor_spool_url(struct doctor *d, const char *url)
{
	char err[1024], *shown;
	enum podio_err rc;

	shown = podio_spool_mask(url);
	err[0] = '\0';
	rc = podio_spool_open(url, &d->spool, err, sizeof(err));
	if (rc != PODIO_OK) {
		d->spool = NULL;
		doctor_line(d, 0, "spool", rc == PODIO_ERR_CONFIG ? "build "
		    "podio-webhook with libpq (libpq-dev), or use spool_dir" :
		    "check that the database runs and that spool_url names "
		    "it with a user allowed in", "%s", err[0] != '\0' ? err :
		    podio_strerror(rc));
	} else
		doctor_line(d, 1, "spool", NULL, "%s: PostgreSQL, opens",
		    shown != NULL ? shown : "spool_url");
	free(shown);
}

/*
 * pending: how many events wait and how old the oldest pending one is
 * (past DOCTOR_MAX_AGE_MS nothing seems to process them); dead: the dead
 * letters (and undecodable records).  Read only.
 */
static void
doctor_spool_events(struct doctor *d)
{
	struct podio_spool_status st;
	struct podio_spool_event *ev = NULL;
	char age[32], max[32], fix[DOCTOR_MSG_MAX];
	size_t n = 0;
	int64_t oldest = 0;
	enum podio_err rc;

	if (d->spool == NULL)
		return;
	if ((rc = podio_spool_status(d->spool, &st)) != PODIO_OK) {
		doctor_line(d, 0, "pending", "see `" PROG " spool status`",
		    "the spool cannot be read: %s", podio_strerror(rc));
		return;
	}
	/* Ids grow in arrival order: the first pending one is the oldest. */
	if (podio_spool_list(d->spool, PODIO_SPOOL_MASK(PODIO_SPOOL_PENDING),
	    0, 1, &ev, &n) == PODIO_OK && n > 0)
		oldest = ev[0].received_ms;
	podio_spool_events_free(ev, n);
	if (oldest == 0)
		doctor_line(d, 1, "pending", NULL, "%zu pending, %zu retrying, "
		    "%zu in flight", st.pending, st.retrying, st.in_flight);
	else if (doctor_now_ms() - oldest <= DOCTOR_MAX_AGE_MS) {
		doctor_age(doctor_now_ms() - oldest, age, sizeof(age));
		doctor_line(d, 1, "pending", NULL, "%zu pending, %zu retrying, "
		    "%zu in flight; the oldest pending event arrived %s ago",
		    st.pending, st.retrying, st.in_flight, age);
	} else {
		doctor_age(doctor_now_ms() - oldest, age, sizeof(age));
		doctor_age(DOCTOR_MAX_AGE_MS, max, sizeof(max));
		snprintf(fix, sizeof(fix), "is the receiver running (serve, "
		    "the FastCGI server, or spool drain from cron under "
		    "CGI)? To process what is due now: %s spool drain",
		    d->prog);
		doctor_line(d, 0, "pending", fix, "%zu pending, %zu retrying, "
		    "%zu in flight; the oldest pending event arrived %s ago, "
		    "more than %s", st.pending, st.retrying, st.in_flight,
		    age, max);
	}

	if (st.dead == 0 && st.bad == 0) {
		doctor_line(d, 1, "dead", NULL, "no dead letters");
		return;
	}
	snprintf(fix, sizeof(fix), "see why with %s spool list; once the "
	    "cause is fixed, run them again: %s spool replay --dead (or "
	    "drop them: %s spool purge --dead --older-than 30d)", d->prog,
	    d->prog, d->prog);
	doctor_line(d, 0, "dead", fix, "%zu dead letter%s (callbacks that "
	    "failed every try)%s", st.dead, st.dead == 1 ? "" : "s",
	    st.bad > 0 ? " and undecodable records set aside" : "");
}

/* The spool checks: where it is decides which. */
static void
doctor_spool(struct doctor *d)
{
	const char *where = podio_config_spool(d->cfg);

	if (where == NULL || where[0] == '\0') {
		doctor_line(d, 0, "spool", "set spool_dir (or spool_url)",
		    "neither spool_dir nor spool_url is set: deliveries "
		    "cannot be stored");
		return;
	}
	if (podio_spool_is_url(where))
		doctor_spool_url(d, where);
	else
		doctor_spool_dir(d, where);
	doctor_spool_events(d);
}

/* ------------------------------------------------------------ the run */

/* See doctor.h. */
int
doctor_run(const struct podio_config *cfg, const char *config_opt,
    const char *config_err, int json)
{
	struct doctor d;
	char q[1100];
	int status;

	memset(&d, 0, sizeof(d));
	d.cfg = cfg;
	d.json = json;
	d.uid = geteuid();
	doctor_user(d.uid, d.me, sizeof(d.me));
	if (config_opt != NULL) {
		doctor_quote(config_opt, q, sizeof(q));
		snprintf(d.prog, sizeof(d.prog), PROG " -c %s", q);
	} else
		snprintf(d.prog, sizeof(d.prog), PROG);

	if ((status = doctor_config(&d, config_opt, config_err)) != 0 ||
	    cfg == NULL) {
		doctor_end(&d);
		return status != 0 ? status : CLI_EXIT_USAGE;
	}
	doctor_find_apps(&d);
	doctor_credentials(&d);
	doctor_spool(&d);
	doctor_api(&d);
	doctor_pause(&d);
	doctor_hooks(&d);
	doctor_end(&d);

	podio_hooks_free(d.hooks, d.nhooks);
	podio_client_free(d.client);
	podio_tokens_free(d.tokens);
	podio_spool_close(d.spool);
	if (d.unreached)
		return CLI_EXIT_UNREACHED;
	return d.failed > 0 ? CLI_EXIT_PODIO : CLI_EXIT_OK;
}

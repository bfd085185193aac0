/*
 * test-spool.c: the durable event spool (lib/spool*.c): append, take
 * and done; durability across a re-open; dedup; group commit with 16
 * threads; several processes appending and taking at once (each event
 * taken exactly once); lease expiry after a taker is killed, and leases
 * of processes that are gone given back; per-item order and
 * batches; retries with and without counting attempts; dead letters,
 * replay and purge; status; the settle window and bulk take by app; the
 * rate-limit state shared between processes; records that cannot be
 * decoded; a full database; and processes killed with SIGKILL in the
 * middle of appends (seed printed, PODIO_TEST_SEED repeats a run).
 *
 * With PODIO_TEST_SPOOL_PG set to the connection URI of a database the
 * test may empty (tests/test-spool-pg.py starts a private server), the
 * same tests run on the PostgreSQL backend: each spool the tests would
 * create in a new directory is that database with the spool's tables
 * dropped first.  What belongs to the SQLite backend's files (directory
 * checks, file modes, the WAL, integrity_check, the page-cap seam of a
 * full disk, the items table) is reported skipped there, with the
 * reason.
 */
#include <config.h>

#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#ifdef HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif

#include "podio.h"
#include "spool.h"
#include "util.h"
#include "tap.h"

static char tmpdir[256];
static char logpath[512];
static int dir_seq;
/* PODIO_TEST_SPOOL_PG: the database every spool is in; NULL on SQLite. */
static const char *pg_url;

/* The spool's tables, dropped before each test on PostgreSQL. */
#define PG_DROP "DROP TABLE IF EXISTS podio_events, podio_seen, " \
	"podio_hook_apps, podio_ratelimit, podio_tokens, podio_revisions, " \
	"podio_items, podio_meta CASCADE"

/* The items whose row of podio_items disagrees with their pending events
 * (the head, when it was received, the events that need a fetch; its
 * newest may only be later, after a removal), or has none, or has one
 * without pending events. */
#define PG_ITEMS_WRONG "SELECT count(*) FROM" \
	" (SELECT g.item_id, g.head, h.received_at AS first_at, g.last_at," \
	"  g.fetches FROM (SELECT item_id, min(id) AS head," \
	"  max(received_at) AS last_at, count(*) FILTER (WHERE type IN" \
	"  ('item.create', 'item.update')) AS fetches FROM podio_events" \
	"  WHERE state = 'pending' AND item_id IS NOT NULL GROUP BY item_id) g" \
	"  JOIN podio_events h ON h.id = g.head) a" \
	" FULL JOIN podio_items i USING (item_id)" \
	" WHERE a.head IS DISTINCT FROM i.head" \
	" OR a.first_at IS DISTINCT FROM i.first_at" \
	" OR a.fetches IS DISTINCT FROM i.fetches" \
	" OR NOT coalesce(i.last_at >= a.last_at, false)"

/* Where a spool is, for messages: never the URI, which holds a
 * password. */
static const char *
where_name(const char *dir)
{
	return podio_spool_is_url(dir) ? "the PostgreSQL database" : dir;
}

/* Reports the check name skipped on PostgreSQL, where it has no meaning
 * (why: what of SQLite it is about), and returns 1; 0 on SQLite. */
static int
sqlite_only(const char *why, const char *name)
{
	if (pg_url == NULL)
		return 0;
	tap_skip(why, "%s", name);
	return 1;
}

#define SQLITE_ONLY(what) "sqlite only: " what

#ifdef HAVE_POSTGRESQL
/* A connection of the test's own to the database (superuser or owner
 * rights), with notices kept off stderr; bails out when it fails. */
static PGconn *
pg_connect(void)
{
	PGconn *c = PQconnectdb(pg_url);
	PGresult *r;

	if (c == NULL || PQstatus(c) != CONNECTION_OK) {
		printf("Bail out! connecting to PODIO_TEST_SPOOL_PG: %s",
		    c != NULL ? PQerrorMessage(c) : "out of memory\n");
		exit(1);
	}
	r = PQexec(c, "SET client_min_messages = warning;"
	    " SET lock_timeout = '30s'");
	PQclear(r);
	return c;
}

/* Runs sql (one or more statements) on connection c, or on a new one
 * when c is NULL.  Returns 0, or -1 with a diag. */
static int
pg_exec(PGconn *c, const char *sql)
{
	PGconn *own = c == NULL ? pg_connect() : NULL;
	PGresult *r = PQexec(c != NULL ? c : own, sql);
	int ok = PQresultStatus(r) == PGRES_COMMAND_OK ||
	    PQresultStatus(r) == PGRES_TUPLES_OK;

	if (!ok)
		tap_diag("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(own);
	return ok ? 0 : -1;
}

/* The first column of the first row of sql as a number (on a new
 * connection when c is NULL); -1 when it fails or is NULL. */
static long long
pg_value(PGconn *c, const char *sql)
{
	PGconn *own = c == NULL ? pg_connect() : NULL;
	PGresult *r = PQexec(c != NULL ? c : own, sql);
	long long v = -1;

	if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0 &&
	    !PQgetisnull(r, 0, 0))
		v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
	else if (PQresultStatus(r) != PGRES_TUPLES_OK)
		tap_diag("%s: %s", sql, PQresultErrorMessage(r));
	PQclear(r);
	PQfinish(own);
	return v;
}
#endif

/*
 * A fresh spool location: on SQLite a new directory name under tmpdir
 * (not created); on PostgreSQL the test's database, emptied of the
 * spool's tables (the next open creates them).
 */
static const char *
newdir(char *buf, size_t n, const char *what)
{
	++dir_seq;
#ifdef HAVE_POSTGRESQL
	if (pg_url != NULL) {
		/* What the tests before did kept podio_items right. */
		if (pg_value(NULL, "SELECT (to_regclass('podio_items')"
		    " IS NOT NULL AND to_regclass('podio_events')"
		    " IS NOT NULL)::integer") == 1)
			tap_ok(pg_value(NULL, PG_ITEMS_WRONG) == 0,
			    "podio_items agrees with the pending events "
			    "before the spool of test %d", dir_seq);
		if (pg_exec(NULL, PG_DROP) == -1) {
			printf("Bail out! cannot drop the spool's tables\n");
			exit(1);
		}
		snprintf(buf, n, "%s", pg_url);
		return buf;
	}
#endif
	snprintf(buf, n, "%s/%s-%d", tmpdir, what, dir_seq);
	return buf;
}

static struct podio_spool *
open_or_bail(const char *dir)
{
	struct podio_spool *s = NULL;
	char err[512] = "";

	if (podio_spool_open(dir, &s, err, sizeof(err)) != PODIO_OK) {
		printf("Bail out! open %s: %s\n", where_name(dir), err);
		exit(1);
	}
	return s;
}

static void
sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/* A record of an event; buf (size n) holds its JSON. */
static void
mkrec(struct podio_spool_record *r, char *buf, size_t n, const char *type,
    uint64_t hook, uint64_t item, uint64_t rev)
{
	memset(r, 0, sizeof(*r));
	r->type = type;
	r->has = PODIO_HAS_HOOK_ID;
	r->hook_id = hook;
	if (item != 0) {
		r->has |= PODIO_HAS_ITEM_ID;
		r->item_id = item;
	}
	if (rev != 0) {
		r->has |= PODIO_HAS_ITEM_REVISION_ID;
		r->item_revision_id = rev;
	}
	snprintf(buf, n, "{\"type\":\"%s\",\"hook_id\":%llu,\"item_id\":%llu,"
	    "\"item_revision_id\":%llu}", type, (unsigned long long)hook,
	    (unsigned long long)item, (unsigned long long)rev);
	r->event_json = buf;
	r->event_len = strlen(buf);
}

/* Appends one event; returns its id, or -1 (with a diag) on failure. */
static int64_t
add(struct podio_spool *s, const char *type, uint64_t hook, uint64_t item,
    uint64_t rev, int64_t received_ms)
{
	struct podio_spool_record r;
	struct podio_spool_ack ack;
	char buf[256], err[256] = "";
	enum podio_err e;

	mkrec(&r, buf, sizeof(buf), type, hook, item, rev);
	r.received_ms = received_ms;
	if ((e = podio_spool_append(s, &r, &ack, err, sizeof(err))) !=
	    PODIO_OK) {
		tap_diag("append: %s: %s", podio_strerror(e), err);
		return -1;
	}
	return ack.id;
}

/* The number of events in states of mask. */
static size_t
count(struct podio_spool *s, unsigned mask)
{
	struct podio_spool_event *ev = NULL;
	size_t n = 0;

	if (podio_spool_list(s, mask, 0, 0, &ev, &n) != PODIO_OK)
		return (size_t)-1;
	podio_spool_events_free(ev, n);
	return n;
}

static int
file_contains(const char *path, const char *needle)
{
	static char buf[65536];
	size_t n;
	FILE *f;

	if ((f = fopen(path, "r")) == NULL)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	return strstr(buf, needle) != NULL;
}

/* Runs sql on the database of dir (SQLite, or the PostgreSQL one) with
 * a raw connection (to damage records as a crash or a hand edit could).
 * Returns 0 or -1. */
static int
raw_sql(const char *dir, const char *sql)
{
	char path[600];
	sqlite3 *db = NULL;
	int rc;

#ifdef HAVE_POSTGRESQL
	if (podio_spool_is_url(dir))
		return pg_exec(NULL, sql);
#endif
	snprintf(path, sizeof(path), "%s/spool.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) !=
	    SQLITE_OK) {
		sqlite3_close(db);
		return -1;
	}
	sqlite3_busy_timeout(db, 5000);
	rc = sqlite3_exec(db, sql, NULL, NULL, NULL);
	sqlite3_close(db);
	return rc == SQLITE_OK ? 0 : -1;
}

/* PRAGMA integrity_check on the database of dir: 1 when "ok". */
static int
integrity_ok(const char *dir)
{
	char path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	int ok = 0;

	snprintf(path, sizeof(path), "%s/spool.db", dir);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1,
	    &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		ok = t != NULL && strcmp((const char *)t, "ok") == 0;
		if (!ok)
			tap_diag("integrity_check: %s", t != NULL ?
			    (const char *)t : "(null)");
	}
	sqlite3_finalize(st);
	sqlite3_close(db);
	return ok;
}

/* Reads int64 values from fd until EOF into v (room for max); returns how
 * many. */
static size_t
read_ids(int fd, int64_t *v, size_t max)
{
	size_t n = 0, got = 0;
	char *p = (char *)v;
	ssize_t r;

	while (got < max * sizeof(*v)) {
		r = read(fd, p + got, max * sizeof(*v) - got);
		if (r == -1 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		got += (size_t)r;
	}
	n = got / sizeof(*v);
	return n;
}

static int
cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? -1 : x > y;
}

/* ------------------------------------------------------------------ tests */

#ifdef HAVE_POSTGRESQL
/* The password of a URI postgresql://USER:PASSWORD@HOST/...: copied
 * into buf (size n); 0 when it has none. */
static int
url_password(const char *url, char *buf, size_t n)
{
	const char *p = strstr(url, "://"), *end, *at, *colon;

	p = p != NULL ? p + 3 : url;
	end = p + strcspn(p, "/?");
	if ((at = memchr(p, '@', (size_t)(end - p))) == NULL ||
	    (colon = memchr(p, ':', (size_t)(at - p))) == NULL ||
	    colon + 1 == at)
		return 0;
	snprintf(buf, n, "%.*s", (int)(at - colon - 1), colon + 1);
	return 1;
}

/*
 * Opening a PostgreSQL spool: the tables created on first use, the
 * schema version checked, the password never shown, a wrong password and
 * a database that cannot be reached reported at once.
 */
static void
test_open_pg(void)
{
	static const char wrong[] = "not-the-password-4711";
	char url[512], bad[1100], pw[256], err[512] = "";
	struct podio_spool *s = NULL;
	enum podio_err e;
	int havepw;

	newdir(url, sizeof(url), "open");
	havepw = url_password(url, pw, sizeof(pw));
	e = podio_spool_open(url, &s, err, sizeof(err));
	tap_ok(e == PODIO_OK && s != NULL &&
	    strcmp(podio_spool_backend(s), "postgresql") == 0,
	    "a postgresql:// URI opens a PostgreSQL spool (%s)", err);
	tap_ok(pg_value(NULL, "SELECT count(*) FROM pg_class WHERE relkind ="
	    " 'r' AND pg_table_is_visible(oid) AND relname IN ('podio_events',"
	    " 'podio_seen', 'podio_hook_apps', 'podio_ratelimit',"
	    " 'podio_tokens', 'podio_revisions', 'podio_items',"
	    " 'podio_meta')") == 8,
	    "open creates the spool's eight tables");
	if (havepw)
		tap_ok(s != NULL && strstr(podio_spool_path(s), pw) == NULL &&
		    strstr(podio_spool_path(s), "***") != NULL,
		    "podio_spool_path names the database, its password masked "
		    "(%s)", s != NULL ? podio_spool_path(s) : "");
	else
		tap_skip("no password in PODIO_TEST_SPOOL_PG",
		    "podio_spool_path masks the password");
	podio_spool_close(s);
	s = NULL;
	tap_ok(podio_spool_open(url, &s, err, sizeof(err)) == PODIO_OK,
	    "opened again: the schema is there, of this version (%s)", err);
	podio_spool_close(s);
	s = NULL;
	pg_exec(NULL, "DROP TABLE podio_revisions");
	tap_ok(podio_spool_open(url, &s, err, sizeof(err)) == PODIO_OK &&
	    pg_value(NULL, "SELECT count(*) FROM pg_class WHERE relname ="
	    " 'podio_revisions'") == 1,
	    "a spool of version 1 without the revisions gets them (%s)", err);
	podio_spool_close(s);
	s = NULL;
	pg_exec(NULL, "DROP INDEX podio_events_nofetch");
	tap_ok(podio_spool_open(url, &s, err, sizeof(err)) == PODIO_OK &&
	    pg_value(NULL, "SELECT count(*) FROM pg_indexes WHERE indexname ="
	    " 'podio_events_nofetch' AND indexdef LIKE '%WHERE%pending%'") ==
	    1, "a spool of version 1 without the index of the events that "
	    "need no fetch gets it (%s)", err);
	/* An older build's spool with events pending: podio_items is made
	 * from them. */
	tap_ok(s != NULL && add(s, "item.update", 1, 71, 1, 1000) > 0 &&
	    add(s, "item.create", 1, 72, 1, 1001) > 0 &&
	    add(s, "item.update", 1, 71, 2, 1002) > 0 &&
	    add(s, "comment.create", 1, 71, 0, 1003) > 0 &&
	    add(s, "comment.create", 1, 0, 0, 1004) > 0,
	    "events appended");
	podio_spool_close(s);
	s = NULL;
	pg_exec(NULL, "DROP TRIGGER podio_items_insert ON podio_events;"
	    " DROP TABLE podio_items");
	tap_ok(podio_spool_open(url, &s, err, sizeof(err)) == PODIO_OK &&
	    pg_value(NULL, "SELECT count(*) FROM podio_items") == 2 &&
	    pg_value(NULL, "SELECT fetches FROM podio_items"
	    " WHERE item_id = 71") == 2 &&
	    pg_value(NULL, PG_ITEMS_WRONG) == 0,
	    "a spool of version 1 without podio_items gets it, made from the "
	    "pending events (%s)", err);
	podio_spool_close(s);
	s = NULL;

	pg_exec(NULL, "UPDATE podio_meta SET value = value + 1"
	    " WHERE name = 'schema_version'");
	err[0] = '\0';
	e = podio_spool_open(url, &s, err, sizeof(err));
	tap_ok(e == PODIO_ERR_IO && s == NULL && strstr(err, "newer") != NULL,
	    "a schema of a newer version: PODIO_ERR_IO, saying so (%s)", err);
	podio_spool_close(s);
	s = NULL;
	pg_exec(NULL, "UPDATE podio_meta SET value = value - 1"
	    " WHERE name = 'schema_version'");

	if (havepw) {
		const char *at = strstr(url, pw);

		snprintf(bad, sizeof(bad), "%.*s%s%s", (int)(at - url), url,
		    wrong, at + strlen(pw));
		err[0] = '\0';
		e = podio_spool_open(bad, &s, err, sizeof(err));
		tap_ok(e == PODIO_ERR_IO && s == NULL && err[0] != '\0' &&
		    strstr(err, wrong) == NULL, "a wrong password: "
		    "PODIO_ERR_IO at open, the password not shown (%s)", err);
		podio_spool_close(s);
		s = NULL;
	} else
		tap_skip("no password in PODIO_TEST_SPOOL_PG",
		    "a wrong password: PODIO_ERR_IO at open");
	err[0] = '\0';
	e = podio_spool_open("postgresql://podio@127.0.0.1:1/podio", &s, err,
	    sizeof(err));
	tap_ok(e == PODIO_ERR_IO && s == NULL && err[0] != '\0',
	    "a database that cannot be reached: PODIO_ERR_IO at open (%s)",
	    err);
	podio_spool_close(s);
	s = NULL;
	tap_ok(podio_spool_open("", &s, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "no directory: PODIO_ERR_INVALID");
	tap_skip(SQLITE_ONLY("a spool directory and its database file"),
	    "open creates missing directories (0700) and the database "
	    "(0600); a file in the way");
}
#endif

static void
test_open(void)
{
	char dir[512], path[600], err[256] = "";
	struct podio_spool *s = NULL;
	struct stat sb;
	enum podio_err e;
	int fd;

#ifdef HAVE_POSTGRESQL
	if (pg_url != NULL) {
		test_open_pg();
		return;
	}
#else
	/* A build without libpq says so, and never takes the URI for a
	 * directory. */
	e = podio_spool_open("postgresql://podio:pw@127.0.0.1:1/podio", &s,
	    err, sizeof(err));
	tap_ok(e == PODIO_ERR_CONFIG && s == NULL &&
	    strstr(err, "no PostgreSQL support") != NULL &&
	    strstr(err, ":pw@") == NULL,
	    "without libpq a postgresql:// spool is refused, saying why (%s)",
	    err);
	err[0] = '\0';
#endif
	snprintf(dir, sizeof(dir), "%s/a/b/spool", tmpdir);
	e = podio_spool_open(dir, &s, err, sizeof(err));
	tap_ok(e == PODIO_OK, "open creates missing directories (%s)", err);
	tap_ok(stat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) &&
	    (sb.st_mode & 0777) == 0700, "the spool directory is mode 0700");
	snprintf(path, sizeof(path), "%s/spool.db", dir);
	tap_ok(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600,
	    "the database is mode 0600");
	tap_ok(s != NULL && strcmp(podio_spool_path(s), path) == 0,
	    "podio_spool_path names the database");
	podio_spool_close(s);
	s = NULL;

	snprintf(path, sizeof(path), "%s/plainfile", tmpdir);
	fd = open(path, O_WRONLY | O_CREAT, 0600);
	if (fd != -1)
		close(fd);
	err[0] = '\0';
	e = podio_spool_open(path, &s, err, sizeof(err));
	tap_ok(e == PODIO_ERR_IO && s == NULL && strstr(err, path) != NULL,
	    "a file in the way: PODIO_ERR_IO naming it (%s)", err);
	tap_ok(podio_spool_open("", &s, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "no directory: PODIO_ERR_INVALID");
}

/* Opens dir, expecting a refusal that names what to fix (needle). */
static void
refused(const char *dir, const char *needle, const char *what)
{
	struct podio_spool *s = NULL;
	char err[512] = "", err2[512] = "";
	enum podio_err e, c;

	e = podio_spool_open(dir, &s, err, sizeof(err));
	c = podio_spool_check(dir, err2, sizeof(err2));
	tap_ok(e == PODIO_ERR_CONFIG && s == NULL && c == PODIO_ERR_CONFIG &&
	    strstr(err, needle) != NULL && strcmp(err, err2) == 0,
	    "%s: refused, saying so (%s)", what, err);
	podio_spool_close(s);
}

/* The spool directory is trusted only when nobody else can write in it. */
static void
test_dir_checks(void)
{
	char dir[512], path[600], victim[600], other[512], err[256] = "";
	struct podio_spool *s;
	struct stat sb;
	int fd;

	if (pg_url != NULL) {
		tap_ok(podio_spool_check(pg_url, err, sizeof(err)) == PODIO_OK,
		    "podio_spool_check passes a connection URI (%s)", err);
		sqlite_only(SQLITE_ONLY("the trust checks of a spool "
		    "directory"), "a spool directory or file of another user, "
		    "writable by others, or a link: refused");
		return;
	}
	newdir(dir, sizeof(dir), "trust");
	podio_spool_close(open_or_bail(dir));
	tap_ok(podio_spool_check(dir, err, sizeof(err)) == PODIO_OK &&
	    podio_spool_check(tmpdir, err, sizeof(err)) == PODIO_OK,
	    "a spool directory of this user, mode 0700 or 0755: accepted");
	snprintf(path, sizeof(path), "%s/not-yet", dir);
	tap_ok(podio_spool_check(path, err, sizeof(err)) == PODIO_OK &&
	    podio_spool_check("", err, sizeof(err)) == PODIO_OK,
	    "a spool directory that does not exist yet passes the check "
	    "(the open creates it, 0700)");
	chmod(dir, 0770);
	refused(dir, "chmod go-w", "a group-writable spool directory");
	chmod(dir, 0703);
	refused(dir, "chmod go-w", "a spool directory others can write in");
	chmod(dir, 0700);
	podio_spool_close(open_or_bail(dir));

	/* A database swapped for a link to another file: never followed. */
	newdir(dir, sizeof(dir), "link");
	mkdir(dir, 0700);
	snprintf(victim, sizeof(victim), "%s/victim-%d", tmpdir, dir_seq);
	fd = open(victim, O_WRONLY | O_CREAT, 0600);
	if (fd != -1)
		close(fd);
	snprintf(path, sizeof(path), "%s/spool.db", dir);
	(void)!symlink(victim, path);
	refused(dir, "symbolic link", "spool.db a symbolic link");
	tap_ok(stat(victim, &sb) == 0 && sb.st_size == 0,
	    "the file the link names is left untouched");
	unlink(path);
	podio_spool_close(open_or_bail(dir));
	snprintf(path, sizeof(path), "%s/spool.db-wal", dir);
	unlink(path);
	(void)!symlink(victim, path);
	refused(dir, "symbolic link", "spool.db-wal a symbolic link");
	unlink(path);

	/* The spool directory itself may be a link (to another disk). */
	snprintf(other, sizeof(other), "%s/trust-link-%d", tmpdir, dir_seq);
	(void)!symlink(dir, other);
	s = NULL;
	tap_ok(podio_spool_open(other, &s, err, sizeof(err)) == PODIO_OK,
	    "a spool directory reached through a symbolic link: accepted "
	    "(%s)", err);
	podio_spool_close(s);

	if (geteuid() != 0) {
		tap_skip("not root: cannot give the spool to another user",
		    "a spool directory of another user");
		tap_skip("not root: cannot give the spool to another user",
		    "a spool file of another user");
		return;
	}
	(void)!chown(dir, 65534, 65534);
	refused(dir, "owned by uid 65534", "a spool directory of another "
	    "user");
	(void)!chown(dir, 0, 0);
	snprintf(path, sizeof(path), "%s/spool.lock", dir);
	(void)!chown(path, 65534, 65534);
	refused(dir, "owned by uid 65534", "a spool file of another user");
	(void)!chown(path, 0, 0);
}

static void
test_invalid(struct podio_spool *s)
{
	struct podio_spool_record r;
	char buf[256], err[256];
	char *big;

	mkrec(&r, buf, sizeof(buf), "item.create", 1, 2, 3);
	r.type = NULL;
	tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "append without a type: invalid");
	r.type = "Item Create";
	tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "append with a malformed type: invalid");
	r.type = "item.create";
	r.has = 0;
	tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "append without hook_id: invalid");
	mkrec(&r, buf, sizeof(buf), "item.create", 1, 2, 3);
	r.event_json = "{\"type\":";
	r.event_len = strlen(r.event_json);
	tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) ==
	    PODIO_ERR_INVALID, "append of an event that is not JSON: invalid");
	big = malloc(PODIO_SPOOL_MAX_EVENT + 2);
	if (big != NULL) {
		memset(big, ' ', PODIO_SPOOL_MAX_EVENT + 1);
		big[0] = '1';
		big[PODIO_SPOOL_MAX_EVENT + 1] = '\0';
		r.event_json = big;
		r.event_len = PODIO_SPOOL_MAX_EVENT + 1;
		tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) ==
		    PODIO_ERR_TOO_LARGE, "an event over the cap: too large");
		free(big);
	}
	tap_ok(count(s, PODIO_SPOOL_ALL) == 0, "nothing refused was stored");
}

static void
test_basic(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_event *ev = NULL;
	struct podio_spool_status st;
	int64_t id1, id2, id3;
	size_t n = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "basic"));
	test_invalid(s);
	id1 = add(s, "comment.create", 7, 0, 0, 0);
	id2 = add(s, "app.update", 7, 0, 0, 0);
	id3 = add(s, "comment.delete", 7, 0, 0, 0);
	tap_ok(id1 > 0 && id2 > id1 && id3 > id2,
	    "ids grow in arrival order (%lld %lld %lld)", (long long)id1,
	    (long long)id2, (long long)id3);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 1 &&
	    b.events[0].id == id1 && !b.has_item &&
	    strcmp(b.events[0].type, "comment.create") == 0 &&
	    strstr(b.events[0].event_json, "\"hook_id\":7") != NULL &&
	    b.events[0].leases == 1 &&
	    b.events[0].state == PODIO_SPOOL_IN_FLIGHT,
	    "take returns the oldest event with its JSON");
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.pending == 2 &&
	    st.in_flight == 1 && st.retrying == 0,
	    "status: 2 pending, 1 in flight");
	tap_ok(podio_spool_done(s, b.n ? b.events[0].id : 0) == PODIO_OK,
	    "done");
	tap_ok(podio_spool_done(s, id1) == PODIO_ERR_NOT_FOUND,
	    "done twice: not found");
	podio_spool_batch_clear(&b);
	tap_ok(count(s, PODIO_SPOOL_ALL) == 2, "done removed the event");
	podio_spool_close(s);

	/* Durability: another handle sees what was committed. */
	s = open_or_bail(dir);
	tap_ok(podio_spool_list(s, PODIO_SPOOL_ALL, 0, 0, &ev, &n) ==
	    PODIO_OK && n == 2 && ev[0].id == id2 && ev[1].id == id3 &&
	    ev[0].event_json == NULL && ev[1].state == PODIO_SPOOL_PENDING,
	    "re-opened: the two events are there, in order");
	podio_spool_events_free(ev, n);
	ev = NULL;
	tap_ok(podio_spool_list(s, PODIO_SPOOL_ALL, id2, 0, &ev, &n) ==
	    PODIO_OK && n == 1 && ev[0].id == id3, "list after an id");
	podio_spool_events_free(ev, n);
	ev = NULL;
	tap_ok(podio_spool_show(s, id3, &ev) == PODIO_OK && ev != NULL &&
	    strstr(ev->event_json, "comment.delete") != NULL &&
	    ev->event_len == strlen(ev->event_json),
	    "show returns the event JSON");
	podio_spool_events_free(ev, 1);
	ev = NULL;
	tap_ok(podio_spool_show(s, id1, &ev) == PODIO_ERR_NOT_FOUND &&
	    ev == NULL, "show of a removed event: not found");
	podio_spool_close(s);
}

static void
test_dedup(void)
{
	char dir[512], buf[256], err[256];
	struct podio_spool *s;
	struct podio_spool_record r;
	struct podio_spool_ack a1, a2, a3;
	struct podio_spool_stats stats;
	int64_t id;
	size_t n = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "dedup"));
	mkrec(&r, buf, sizeof(buf), "item.update", 5, 42, 7);
	tap_ok(podio_spool_append(s, &r, &a1, err, sizeof(err)) ==
	    PODIO_OK && !a1.duplicate, "first delivery stored");
	tap_ok(podio_spool_append(s, &r, &a2, err, sizeof(err)) ==
	    PODIO_OK && a2.duplicate && a2.id == a1.id,
	    "the same delivery again: acknowledged as a duplicate of %lld",
	    (long long)a1.id);
	tap_ok(count(s, PODIO_SPOOL_ALL) == 1, "stored once");
	id = add(s, "item.update", 5, 42, 8, 0);
	tap_ok(id > a1.id, "another revision is another event");
	tap_ok(add(s, "item.update", 6, 42, 7, 0) > id,
	    "the same revision from another hook is another event");
	podio_spool_done(s, a1.id);
	tap_ok(podio_spool_append(s, &r, &a3, err, sizeof(err)) ==
	    PODIO_OK && a3.duplicate && count(s, PODIO_SPOOL_ALL) == 2,
	    "a redelivery after processing is still a duplicate");
	tap_ok(podio_spool_forget(s, 0, &n) == PODIO_OK && n == 3,
	    "forget drops the dedup keys (%zu)", n);
	tap_ok(podio_spool_append(s, &r, &a3, err, sizeof(err)) ==
	    PODIO_OK && !a3.duplicate && a3.id > id,
	    "after forget the delivery is stored again");
	podio_spool_stats(s, &stats);
	tap_ok(stats.appends == 6 && stats.duplicates == 2 &&
	    stats.stored == 4, "stats count appends, duplicates, stores");
	podio_spool_close(s);
}

/* The number sql (one row, one column) reads from DIR/file, opened read
 * only; -1 with a diag when it cannot be read. */
static long
raw_count(const char *dir, const char *file, const char *sql)
{
	char path[600];
	sqlite3 *db = NULL;
	sqlite3_stmt *st = NULL;
	long n = -1;

	snprintf(path, sizeof(path), "%s/%s", dir, file);
	if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) ==
	    SQLITE_OK && sqlite3_prepare_v2(db, sql, -1, &st, NULL) ==
	    SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		n = (long)sqlite3_column_int64(st, 0);
	else
		tap_diag("%s: %s", path, sqlite3_errmsg(db));
	sqlite3_finalize(st);
	sqlite3_close(db);
	return n;
}

/* The rows of the table of DIR/intake.db, or -1. */
static long
intake_rows(const char *dir)
{
	return raw_count(dir, "intake.db", "SELECT count(*) FROM intake");
}

/* Appends to an intake handle; the ack's id, or -1. */
static int64_t
intake_add(struct podio_spool *in, const char *type, uint64_t item,
    uint64_t rev, int64_t received_ms, int *intake)
{
	struct podio_spool_record r;
	struct podio_spool_ack ack;
	char buf[256], err[256] = "";

	mkrec(&r, buf, sizeof(buf), type, 9, item, rev);
	r.received_ms = received_ms;
	if (podio_spool_append(in, &r, &ack, err, sizeof(err)) != PODIO_OK) {
		tap_diag("intake append: %s", err);
		return -1;
	}
	*intake = ack.intake;
	return ack.id;
}

/*
 * The intake of one-shot appends (podio_spool_open_intake()): its events
 * reach the spool in their order, with their times and dedup, when a
 * spool handle next reads; a move cut short between its commit and the
 * intake's delete (PODIO_TEST_INTAKE_KEEP) moves nothing twice; an
 * intake made anew starts from its first event.  On PostgreSQL an intake
 * is the spool itself.
 */
static void
test_intake(void)
{
	char dir[512], path[600], err[256] = "";
	struct podio_spool *in = NULL, *s, *s2;
	struct podio_spool_event *ev = NULL;
	struct podio_spool_status st;
	const char *sfx[] = { "", "-wal", "-shm" };
	int64_t base = podio__wall_ms() - 60000, id[4];
	size_t n = 0, i;
	int flag[4];

	memset(&st, 0, sizeof(st));
	newdir(dir, sizeof(dir), "intake");
	tap_ok(podio_spool_open_intake(dir, &in, err, sizeof(err)) ==
	    PODIO_OK, "an intake opens %s", err);
	if (in == NULL)
		return;
	if (pg_url != NULL) {
		id[0] = intake_add(in, "item.update", 42, 7, 0, &flag[0]);
		tap_ok(id[0] > 0 && flag[0] == 0 && count(in, PODIO_SPOOL_ALL)
		    == 1, "on PostgreSQL the intake is the spool: stored "
		    "there, not in an intake");
		podio_spool_close(in);
		return;
	}
	s = open_or_bail(dir);
	id[0] = intake_add(in, "item.update", 42, 7, base, &flag[0]);
	id[1] = intake_add(in, "comment.create", 0, 0, base + 1, &flag[1]);
	id[2] = intake_add(in, "item.update", 42, 7, base + 2, &flag[2]);
	id[3] = intake_add(in, "item.delete", 42, 0, base + 3, &flag[3]);
	tap_ok(id[0] == 1 && id[1] == 2 && id[2] == 3 && id[3] == 4 &&
	    flag[0] && flag[1] && flag[2] && flag[3],
	    "an intake's acks number its own events (%lld %lld %lld %lld)",
	    (long long)id[0], (long long)id[1], (long long)id[2],
	    (long long)id[3]);
	tap_ok(intake_rows(dir) == 4, "the intake holds them");
	tap_ok(podio_spool_list(s, PODIO_SPOOL_ALL, 0, 0, &ev, &n) ==
	    PODIO_OK && n == 3 && strcmp(ev[0].type, "item.update") == 0 &&
	    strcmp(ev[1].type, "comment.create") == 0 &&
	    strcmp(ev[2].type, "item.delete") == 0 &&
	    ev[0].received_ms == base && ev[1].received_ms == base + 1 &&
	    ev[2].received_ms == base + 3 && ev[0].id < ev[1].id &&
	    ev[1].id < ev[2].id && ev[2].item_id == 42 &&
	    !(ev[1].has & PODIO_HAS_ITEM_ID),
	    "a spool handle already open moves them in, in their order, "
	    "with their times and ids, the duplicate once (%zu)", n);
	podio_spool_events_free(ev, n);
	tap_ok(intake_rows(dir) == 0, "and the intake lets them go");

	setenv("PODIO_TEST_INTAKE_KEEP", "1", 1);
	id[0] = intake_add(in, "task.create", 0, 0, 0, &flag[0]);
	tap_ok(id[0] == 5 && count(s, PODIO_SPOOL_ALL) == 4 &&
	    intake_rows(dir) == 1, "a move whose intake delete did not "
	    "happen (as when killed in between) leaves the event there too");
	unsetenv("PODIO_TEST_INTAKE_KEEP");
	s2 = open_or_bail(dir);
	tap_ok(count(s2, PODIO_SPOOL_ALL) == 4 && count(s, PODIO_SPOOL_ALL)
	    == 4 && intake_rows(dir) == 0, "another handle does not move it "
	    "twice, and deletes it");
	podio_spool_close(s2);

	podio_spool_close(in);
	for (i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(path, sizeof(path), "%s/intake.db%s", dir, sfx[i]);
		(void)unlink(path);
	}
	tap_ok(podio_spool_open_intake(dir, &in, err, sizeof(err)) ==
	    PODIO_OK, "an intake made anew %s", err);
	id[0] = intake_add(in, "task.update", 0, 0, 0, &flag[0]);
	tap_ok(id[0] == 1 && count(s, PODIO_SPOOL_ALL) == 5,
	    "its first event is moved in, though its number is below the "
	    "old intake's mark");

	/* A spool that cannot grow (a full disk): the events wait in the
	 * intake, and the status says so. */
	(void)podio__spool_set_max_pages(s, 1);
	for (i = 0; i < 200; i++)
		if (intake_add(in, "task.update", 0, 0, base - 1000,
		    &flag[0]) < 0)
			break;
	tap_ok(i == 200 && podio_spool_status(s, &st) == PODIO_OK &&
	    st.intake == 200 && st.oldest_received_ms == base - 1000 &&
	    count(s, PODIO_SPOOL_ALL) == 5 && intake_rows(dir) == 200,
	    "a spool full: 200 events wait in the intake, and its status "
	    "counts them (%zu) with their age", st.intake);
	(void)podio__spool_set_max_pages(s, 0);
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.intake == 0 &&
	    st.pending == 205 && intake_rows(dir) == 0,
	    "once it can grow they are moved in (%zu pending)", st.pending);
	podio_spool_close(in);
	podio_spool_close(s);
}

/* Ids past 32 bits and past 63 (Podio's are 64-bit unsigned): stored,
 * deduplicated, taken per item and learned for an app as they are. */
static void
test_large_ids(void)
{
	static const uint64_t ids[] = {
		50200000030ULL, 0x7fffffffffffffffULL, 0x8000000000000001ULL,
		UINT64_MAX
	};
	char dir[512], buf[256], err[256];
	struct podio_spool *s;
	struct podio_spool_record r;
	struct podio_spool_ack a1, a2;
	struct podio_spool_batch b;
	size_t i;
	int ok_store = 1, ok_dup = 1, ok_take = 1;

	s = open_or_bail(newdir(dir, sizeof(dir), "large-ids"));
	for (i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		mkrec(&r, buf, sizeof(buf), "item.update", ids[i], ids[i],
		    ids[i]);
		r.has |= PODIO_HAS_APP_ID;
		r.app_id = ids[i];
		err[0] = '\0';
		if (podio_spool_append(s, &r, &a1, err, sizeof(err)) !=
		    PODIO_OK || a1.duplicate) {
			tap_diag("id %llu: %s", (unsigned long long)ids[i], err);
			ok_store = 0;
			continue;
		}
		if (podio_spool_append(s, &r, &a2, err, sizeof(err)) !=
		    PODIO_OK || !a2.duplicate || a2.id != a1.id)
			ok_dup = 0;
		memset(&b, 0, sizeof(b));
		if (podio_spool_take_item(s, ids[i], NULL, &b) != PODIO_OK ||
		    b.n != 1 || b.item_id != ids[i] || b.app_id != ids[i] ||
		    b.events[0].hook_id != ids[i] ||
		    b.events[0].item_revision_id != ids[i] ||
		    b.events[0].id != a1.id) {
			tap_diag("id %llu: taken %zu", (unsigned long long)ids[i],
			    b.n);
			ok_take = 0;
		} else
			(void)podio_spool_done(s, b.events[0].id);
		podio_spool_batch_clear(&b);
	}
	tap_ok(ok_store, "ids past 32 and 63 bits are stored");
	tap_ok(ok_dup, "and a redelivery of each is a duplicate");
	tap_ok(ok_take, "and each is taken by its item with its ids intact");
	podio_spool_close(s);
}

/*
 * podio_spool_wait(): on PostgreSQL, news of events another process
 * stored (LISTEN/NOTIFY), none of this process's own; SQLite cannot
 * tell, at once.
 */
/* The parent's handle, kept where a child's leak check finds it (the
 * child must not close it: it would end the parent's session). */
static struct podio_spool *volatile wait_spool;

static void
test_wait(void)
{
	char dir[512];
	struct podio_spool *s, *c;
	pid_t pid;
	int status = -1, got;

	s = wait_spool = open_or_bail(newdir(dir, sizeof(dir), "wait"));
	if (pg_url == NULL) {
		tap_ok(podio_spool_wait(s, 5000) == -1,
		    "SQLite: podio_spool_wait says at once it cannot tell");
		podio_spool_close(s);
		return;
	}
	tap_ok(podio_spool_wait(s, 0) == 0, "the first wait listens");
	add(s, "item.delete", 1, 900, 0, 0);
	tap_ok(podio_spool_wait(s, 300) == 0,
	    "an event this process stored is no news to it");
	fflush(stdout);
	if ((pid = fork()) == 0) {
		sleep_ms(200);
		if ((c = open_or_bail(dir)) == NULL ||
		    add(c, "item.delete", 1, 901, 0, 0) <= 0)
			_exit(1);
		podio_spool_close(c);
		_exit(0);
	}
	got = podio_spool_wait(s, 10000);
	if (pid > 0)
		waitpid(pid, &status, 0);
	tap_ok(pid > 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 &&
	    got == 1, "an event another process stored wakes the wait (%d)",
	    got);
	tap_ok(podio_spool_wait(s, 100) == 0, "then there is no news");
	podio_spool_close(s);
	wait_spool = NULL;
}

static void
test_delivery(void)
{
	static const char body[] = "type=item.update&hook_id=5&item_id=42"
	    "&item_revision_id=9&secret=s3cr3t";
	char dir[512], err[256], reason[128];
	struct podio_spool *s;
	struct podio_params *p;
	struct podio_delivery *d = NULL;
	struct podio_spool_ack ack;
	struct podio_spool_event *ev = NULL;
	char *json = NULL;
	size_t len = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "delivery"));
	p = podio_params_new(0);
	podio_params_parse(p, body, strlen(body), NULL);
	if (podio_delivery_new(p, &d, reason, sizeof(reason)) != PODIO_OK) {
		tap_ok(0, "delivery: %s", reason);
		podio_spool_close(s);
		return;
	}
	podio_event_json(d, NULL, 0, NULL, NULL, 0, &json, &len);
	tap_ok(podio_spool_append_delivery(s, d, &ack, err, sizeof(err)) ==
	    PODIO_OK && ack.id > 0, "append a delivery");
	tap_ok(podio_spool_show(s, ack.id, &ev) == PODIO_OK && json != NULL &&
	    strcmp(ev->event_json, json) == 0 && ev->item_id == 42 &&
	    ev->item_revision_id == 9 && ev->hook_id == 5 &&
	    strstr(ev->event_json, "s3cr3t") == NULL,
	    "stored: the event JSON without item or secret, and its ids");
	podio_spool_events_free(ev, 1);
	podio_delivery_free(d);
	d = NULL;
	p = podio_params_new(0);
	podio_params_parse(p, "type=hook.verify&hook_id=5&code=abc", 35, NULL);
	podio_delivery_new(p, &d, reason, sizeof(reason));
	tap_ok(d != NULL && podio_spool_append_delivery(s, d, NULL, err,
	    sizeof(err)) == PODIO_ERR_INVALID, "hook.verify is never spooled");
	podio_delivery_free(d);
	free(json);
	podio_spool_close(s);
}

static void
test_order(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_take_opts o;
	int64_t e1, e2, e3, e4, f1, g1, t0 = podio__wall_ms();

	s = open_or_bail(newdir(dir, sizeof(dir), "order"));
	e1 = add(s, "item.create", 1, 100, 1, t0 - 5000);
	f1 = add(s, "item.create", 1, 200, 1, t0 - 4000);
	e2 = add(s, "item.update", 1, 100, 2, t0 - 3000);
	g1 = add(s, "app.update", 1, 0, 0, t0 - 2000);
	e3 = add(s, "comment.create", 1, 100, 0, t0 - 1000);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.has_item &&
	    b.item_id == 100 && b.n == 3 && b.events[0].id == e1 &&
	    b.events[1].id == e2 && b.events[2].id == e3,
	    "take returns every due event of the item, in arrival order");
	tap_ok(b.first_received_ms == t0 - 5000 &&
	    b.last_received_ms == t0 - 1000, "the batch's first and last "
	    "arrival times");
	e4 = add(s, "item.update", 1, 100, 3, 0);
	{
		struct podio_spool_batch c, d2;

		tap_ok(podio_spool_take(s, NULL, &c) == PODIO_OK &&
		    c.item_id == 200 && c.n == 1 && c.events[0].id == f1,
		    "next: the other item");
		tap_ok(podio_spool_take(s, NULL, &d2) == PODIO_OK &&
		    !d2.has_item && d2.events[0].id == g1,
		    "next: the event without an item");
		podio_spool_done(s, c.events[0].id);
		podio_spool_done(s, d2.events[0].id);
		podio_spool_batch_clear(&c);
		podio_spool_batch_clear(&d2);
		tap_ok(podio_spool_take(s, NULL, &c) == PODIO_ERR_NOT_FOUND &&
		    c.n == 0, "an item in flight is not taken again, even "
		    "with a new event");
		tap_ok(podio_spool_take_item(s, 100, NULL, &c) ==
		    PODIO_ERR_NOT_FOUND, "nor by take_item");
	}
	{
		int64_t ids[3] = { e1, e2, e3 };

		tap_ok(podio_spool_done_many(s, ids, 3) == PODIO_OK,
		    "done_many for the batch");
	}
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take_item(s, 100, NULL, &b) == PODIO_OK &&
	    b.n == 1 && b.events[0].id == e4, "then the new event of the "
	    "item");
	podio_spool_done(s, e4);
	podio_spool_batch_clear(&b);

	/* max_events bounds a batch. */
	e1 = add(s, "item.update", 1, 300, 1, 0);
	add(s, "item.update", 1, 300, 2, 0);
	add(s, "item.update", 1, 300, 3, 0);
	memset(&o, 0, sizeof(o));
	o.max_events = 2;
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.n == 2 &&
	    b.events[0].id == e1, "max_events caps a batch");
	podio_spool_batch_clear(&b);
	podio_spool_close(s);
}

static void
test_retry(void)
{
	char dir[512];
	struct podio_spool *s, *other;
	struct podio_spool_batch b, c;
	struct podio_spool_status st;
	struct podio_spool_event *ev = NULL;
	int64_t id, later, now = podio__wall_ms();
	long attempts = -1;

	s = open_or_bail(newdir(dir, sizeof(dir), "retry"));
	other = open_or_bail(dir);
	id = add(s, "item.update", 1, 500, 1, 0);
	later = add(s, "item.update", 1, 500, 2, 0);
	podio_spool_take(s, NULL, &b);
	tap_ok(b.n == 2, "took both events of the item");
	tap_ok(podio_spool_fail(other, id, "x", now, 1, NULL) ==
	    PODIO_ERR_CONFLICT, "fail by another handle: conflict (lease)");
	tap_ok(podio_spool_progress(s, id, "[\"cb1\"]") == PODIO_OK,
	    "progress stored");
	tap_ok(podio_spool_fail(s, id, "callback exit 3", now + 60000, 1,
	    &attempts) == PODIO_OK && attempts == 1,
	    "fail counting an attempt: attempts 1");
	tap_ok(podio_spool_release(s, later) == PODIO_OK,
	    "release the later event, not run");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.retrying == 1 &&
	    st.pending == 1 && st.in_flight == 0,
	    "status: 1 retrying, 1 pending");
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_ERR_NOT_FOUND,
	    "a failed event delays its item until its next try");
	podio__spool_set_clock_skew(s, 61000);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 2 &&
	    b.events[0].id == id && b.events[0].attempts == 1 &&
	    b.events[0].failures == 1 && b.events[0].progress != NULL &&
	    strcmp(b.events[0].progress, "[\"cb1\"]") == 0 &&
	    b.events[0].last_error != NULL &&
	    strcmp(b.events[0].last_error, "callback exit 3") == 0,
	    "due again: taken with its attempts, error and progress");
	tap_ok(podio_spool_fail(s, id, "podio 503", now + 61000, 0,
	    &attempts) == PODIO_OK && attempts == 1,
	    "fail not counting (outage): attempts stay 1");
	podio_spool_show(s, id, &ev);
	tap_ok(ev != NULL && ev->failures == 2 && ev->attempts == 1 &&
	    ev->state == PODIO_SPOOL_RETRYING && ev->next_ms == now + 61000,
	    "failures 2, attempts 1, next try recorded");
	podio_spool_events_free(ev, 1);
	tap_ok(podio_spool_extend(s, later, 1000) == PODIO_OK,
	    "extend the lease");
	podio_spool_release(s, later);
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_extend(s, later, 1000) == PODIO_ERR_CONFLICT,
	    "extend without a lease: conflict");
	tap_ok(podio_spool_fail(s, 999999, "x", now, 1, NULL) ==
	    PODIO_ERR_NOT_FOUND, "fail of an unknown id: not found");
	(void)c;
	podio_spool_close(other);
	podio_spool_close(s);
}

static void
test_dead(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_status st;
	struct podio_spool_event *ev = NULL;
	int64_t id, id2;
	size_t n = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "dead"));
	id = add(s, "item.delete", 1, 600, 1, podio__wall_ms() - 120000);
	id2 = add(s, "item.delete", 1, 601, 1, 0);
	podio_spool_take(s, NULL, &b);
	tap_ok(podio_spool_dead(s, id, "12 tries: exit 1") == PODIO_OK,
	    "dead");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.dead == 1 &&
	    st.pending == 1, "status counts the dead letter");
	tap_ok(podio_spool_list(s, PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD), 0, 0,
	    &ev, &n) == PODIO_OK && n == 1 && ev[0].id == id &&
	    ev[0].dead_ms > 0 && strcmp(ev[0].last_error, "12 tries: exit 1")
	    == 0, "list of dead letters with reason and time");
	podio_spool_events_free(ev, n);
	ev = NULL;
	tap_ok(podio_spool_replay(s, id2) == PODIO_ERR_INVALID,
	    "replay of a pending event: invalid");
	tap_ok(podio_spool_replay(s, id) == PODIO_OK, "replay");
	podio_spool_show(s, id, &ev);
	tap_ok(ev != NULL && ev->state == PODIO_SPOOL_PENDING &&
	    ev->attempts == 0, "replayed: pending, attempts reset");
	podio_spool_events_free(ev, 1);
	ev = NULL;
	podio_spool_take_item(s, 600, NULL, &b);
	podio_spool_dead(s, id, "again");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_replay_dead(s, &n) == PODIO_OK && n == 1 &&
	    count(s, PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD)) == 0,
	    "replay --dead puts every dead letter back");
	podio_spool_take_item(s, 600, NULL, &b);
	podio_spool_dead(s, id, "again");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_purge(s, PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD),
	    3600000, &n) == PODIO_OK && n == 0,
	    "purge older than an hour: a fresh dead letter stays");
	tap_ok(podio_spool_purge(s, PODIO_SPOOL_MASK(PODIO_SPOOL_PENDING),
	    0, &n) == PODIO_ERR_INVALID, "purge of pending events: refused");
	podio__spool_set_clock_skew(s, 3600001);
	tap_ok(podio_spool_purge(s, PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD),
	    3600000, &n) == PODIO_OK && n == 1 &&
	    podio_spool_show(s, id, &ev) == PODIO_ERR_NOT_FOUND &&
	    count(s, PODIO_SPOOL_ALL) == 1,
	    "an hour later it is purged, the pending event kept");
	podio_spool_close(s);
}

static void
test_status_age(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_status st;
	int64_t now = podio__wall_ms();

	s = open_or_bail(newdir(dir, sizeof(dir), "status"));
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.pending == 0 &&
	    st.oldest_received_ms == 0 && st.oldest_age_ms == 0,
	    "empty spool: no oldest");
	add(s, "item.create", 1, 1, 1, now - 90000);
	add(s, "item.create", 1, 2, 1, now - 30000);
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.pending == 2 &&
	    st.oldest_received_ms == now - 90000 &&
	    st.oldest_age_ms >= 90000, "oldest pending and its age (%lld ms)",
	    (long long)st.oldest_age_ms);
	podio_spool_close(s);
}

static void
test_settle(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_take_opts o;
	int64_t now = podio__wall_ms(), when = 0, batch_in_flight;

	s = open_or_bail(newdir(dir, sizeof(dir), "settle"));
	/* The times below count from after the open, which a slow run
	 * (valgrind, a new PostgreSQL schema) makes long. */
	now = podio__wall_ms();
	memset(&o, 0, sizeof(o));
	o.settle_ms = 2000;
	o.settle_max_ms = 30000;
	add(s, "item.update", 1, 700, 1, now - 1000);
	add(s, "item.update", 1, 700, 2, now);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_ERR_NOT_FOUND,
	    "settle window: a busy item waits");
	tap_ok(podio_spool_next_due(s, &o, &when) == PODIO_OK &&
	    when == now + 2000, "next due: when the window closes");
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 2,
	    "without a window it is taken");
	podio_spool_release(s, b.events[0].id);
	podio_spool_release(s, b.events[1].id);
	podio_spool_batch_clear(&b);
	podio__spool_set_clock_skew(s, 2001);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.n == 2,
	    "quiet for the window: taken");
	podio_spool_batch_clear(&b);

	/* settle_max caps the wait of an item that never goes quiet. */
	podio__spool_set_clock_skew(s, 0);
	add(s, "item.update", 1, 701, 1, now - 31000);
	add(s, "item.update", 1, 701, 2, now);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.item_id == 701,
	    "settle_max reached: taken though events keep coming");
	podio_spool_batch_clear(&b);
	podio_spool_close(s);

	/* The next due time passes over the items that settled first but
	 * cannot be taken: one in flight, one waiting for its retry. */
	s = open_or_bail(newdir(dir, sizeof(dir), "settle-due"));
	add(s, "item.update", 1, 710, 1, now - 5000);
	add(s, "item.update", 1, 712, 1, now - 4000);
	add(s, "item.update", 1, 711, 1, now - 500);
	o.lease_ms = 60000;
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.item_id == 710,
	    "the item that settled first is taken");
	batch_in_flight = b.events[0].id;
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.item_id == 712 &&
	    podio_spool_fail(s, b.events[0].id, "podio 503", now + 10000, 1,
	    NULL) == PODIO_OK, "the next one fails, to be retried in 10 s");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_next_due(s, &o, &when) == PODIO_OK &&
	    when == now + 1500, "next due: when the third item settles, past "
	    "the one in flight and the one waiting for its retry (%lld ms "
	    "from now)", (long long)(when - now));
	tap_ok(podio_spool_release(s, batch_in_flight) == PODIO_OK &&
	    podio_spool_next_due(s, &o, &when) == PODIO_OK && when <= now,
	    "the item given back is due at once");
	podio_spool_close(s);
}

/* With no_fetch (the item fetches held by the API budget), the items
 * that need a fetch stay, and what needs none behind them is taken. */
static void
test_no_fetch(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_take_opts o;
	int64_t now = podio__wall_ms(), upd, del, com, later, when = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "nofetch"));
	memset(&o, 0, sizeof(o));
	o.no_fetch = 1;
	upd = add(s, "item.update", 1, 800, 1, now - 3000);
	later = add(s, "item.delete", 1, 800, 2, now - 2500);
	del = add(s, "item.delete", 1, 801, 1, now - 2000);
	com = add(s, "comment.create", 1, 0, 0, now - 1000);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.n == 1 &&
	    b.events[0].id == del, "no fetch: an item of deletes only is "
	    "taken past an item that needs a fetch");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.n == 1 &&
	    !b.has_item && b.events[0].id == com,
	    "no fetch: an event without an item is taken");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_ERR_NOT_FOUND,
	    "no fetch: the item with an item.update (and its later delete) "
	    "stays in the spool");
	tap_ok(count(s, PODIO_SPOOL_MASK(PODIO_SPOOL_PENDING)) == 2,
	    "no fetch: its two events are still pending, untouched");
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 2 &&
	    b.events[0].id == upd && b.events[1].id == later,
	    "without no_fetch the item is taken, in arrival order");
	podio_spool_batch_clear(&b);
	podio_spool_close(s);

	/* The next due time with no_fetch counts only what such a take
	 * may claim: held items alone leave nothing to look at. */
	s = open_or_bail(newdir(dir, sizeof(dir), "nofetch-due"));
	add(s, "item.update", 1, 900, 1, now - 1000);
	add(s, "item.delete", 1, 900, 2, now - 900);
	tap_ok(podio_spool_next_due(s, &o, &when) == PODIO_OK && when == 0,
	    "no fetch: held items alone: nothing due");
	tap_ok(podio_spool_next_due(s, NULL, &when) == PODIO_OK && when > 0,
	    "without no_fetch they are due");
	add(s, "comment.create", 1, 0, 0, now - 500);
	tap_ok(podio_spool_next_due(s, &o, &when) == PODIO_OK && when > 0 &&
	    when <= now, "no fetch: an event without an item is due now");
	podio_spool_close(s);

	/* With a settle window: an item of deletes only is due when its
	 * window closes; one whose older head needs no fetch but whose
	 * newer event does is held all the same. */
	s = open_or_bail(newdir(dir, sizeof(dir), "nofetch-window"));
	/* A window long enough for a slow run (valgrind) to look before it
	 * closes, counted from after the open. */
	now = podio__wall_ms();
	o.settle_ms = 20000;
	o.settle_max_ms = 300000;
	add(s, "item.update", 1, 904, 1, now - 5000);
	add(s, "item.delete", 1, 905, 1, now - 10000);
	add(s, "item.update", 1, 905, 2, now - 100);
	del = add(s, "item.delete", 1, 903, 1, now - 300);
	later = add(s, "item.delete", 1, 903, 2, now - 200);
	tap_ok(podio_spool_next_due(s, &o, &when) == PODIO_OK &&
	    when == now - 200 + 20000, "no fetch, settle window: the item of "
	    "deletes only is due when its window closes, the held ones not "
	    "at all");
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_ERR_NOT_FOUND,
	    "no fetch, settle window: nothing is taken before");
	podio__spool_set_clock_skew(s, 19801);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_OK && b.n == 2 &&
	    b.item_id == 903 && b.events[0].id == del &&
	    b.events[1].id == later, "no fetch, settle window: then the item "
	    "of deletes only is taken, and nothing held");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take(s, &o, &b) == PODIO_ERR_NOT_FOUND,
	    "no fetch, settle window: the held items stay");
	podio_spool_close(s);
}

/*
 * The rows of items that differ from what the pending events say (an
 * item's head, when it was received and how many of its events need a
 * fetch; last_at at least its newest), plus the rows of items with no
 * pending event: 0 when the table is in step.  -1 when it cannot be read.
 */
static long
items_out_of_step(const char *dir)
{
	static const char sql[] =
	    "WITH g AS (SELECT item_id, min(id) AS head,"
	    "  max(received_at) AS last,"
	    "  sum(type IN ('item.create', 'item.update')) AS fetch"
	    "  FROM events WHERE state = 'pending'"
	    "  AND typeof(item_id) = 'integer' GROUP BY item_id),"
	    " e AS (SELECT g.item_id, g.head, h.received_at AS first_at,"
	    "  g.fetch, g.last FROM g JOIN events h ON h.id = g.head)"
	    " SELECT (SELECT count(*) FROM e LEFT JOIN items i"
	    "  ON i.item_id = e.item_id WHERE i.item_id IS NULL"
	    "  OR i.head != e.head OR i.first_at != e.first_at"
	    "  OR i.fetch != e.fetch OR i.last_at < e.last)"
	    " + (SELECT count(*) FROM items WHERE item_id NOT IN"
	    "  (SELECT item_id FROM e))";

	return raw_count(dir, "spool.db", sql);
}

/*
 * The items table that takes read (one row per item with pending events,
 * kept by triggers) stays in step with the events through a random mix of
 * appends, takes, removals, retries, dead letters, releases, replays and
 * purges; and a spool written before it existed gets it, filled, when
 * opened.
 */
static void
test_items_table(void)
{
	static const char *const types[] = { "item.update", "item.create",
	    "item.delete", "comment.create" };
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_batch *bs = NULL;
	size_t nb = 0, i, k;
	unsigned seed = 4711;
	int64_t now = podio__wall_ms(), ids[512];
	long bad = 0, worst = 0, n;
	enum podio_err e;
	int step, j, taken = 0, refused = 0;
	uint64_t rev = 1;

	s = open_or_bail(newdir(dir, sizeof(dir), "items"));
	for (step = 0; step < 200; step++) {
		for (j = rand_r(&seed) % 8; j > 0; j--) {
			const char *t = types[rand_r(&seed) % 4];

			if (add(s, t, 1, t[0] == 'c' ? 0 :
			    100 + rand_r(&seed) % 12, rev++,
			    now - 10000 + step) <= 0)
				refused++;
		}
		if (podio_spool_take_many(s, NULL, 1 + rand_r(&seed) % 6, &bs,
		    &nb) == PODIO_OK) {
			for (i = 0; i < nb; i++) {
				k = 0;
				for (j = 0; j < (int)bs[i].n; j++) {
					int64_t id = bs[i].events[j].id;

					switch (rand_r(&seed) % 6) {
					case 0:
						(void)podio_spool_fail(s, id,
						    "test", 1, 1, NULL);
						break;
					case 1:
						(void)podio_spool_dead(s, id,
						    "test");
						break;
					case 2:
						(void)podio_spool_release(s,
						    id);
						break;
					default:
						ids[k++] = id;
					}
				}
				(void)podio_spool_done_many(s, ids, k);
				taken += (int)bs[i].n;
			}
			podio_spool_batches_free(bs, nb);
			bs = NULL;
		}
		if (step % 40 == 39)
			(void)podio_spool_replay_dead(s, NULL);
		if (step % 50 == 49)
			(void)podio_spool_purge(s,
			    PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD), 0, NULL);
		if (pg_url == NULL && (n = items_out_of_step(dir)) != 0) {
			bad++;
			if (n > worst || n < 0)
				worst = n;
		}
	}
	if (pg_url != NULL) {
		size_t left;

		/* No items table to compare: every event the mix left
		 * behind is due once its retry time has passed, and a
		 * worker taking until nothing is due finishes them all. */
		podio__spool_set_clock_skew(s, 3600000);
		/* At most 4 units of at most 100 events: room in ids. */
		while ((e = podio_spool_take_many(s, NULL, 4, &bs, &nb)) ==
		    PODIO_OK) {
			for (i = k = 0; i < nb; i++)
				for (j = 0; j < (int)bs[i].n && k < 512; j++)
					ids[k++] = bs[i].events[j].id;
			if (podio_spool_done_many(s, ids, k) != PODIO_OK)
				bad++;
			podio_spool_batches_free(bs, nb);
			bs = NULL;
		}
		left = count(s, PODIO_SPOOL_ALL &
		    ~PODIO_SPOOL_MASK(PODIO_SPOOL_DEAD));
		tap_ok(e == PODIO_ERR_NOT_FOUND && bad == 0 && left == 0 &&
		    taken > 100 && refused == 0, "items: after 200 random "
		    "steps (%d events taken, %d appends refused) a worker "
		    "finishes every event left, none stuck (%zu left)", taken,
		    refused, left);
		podio_spool_close(s);
		sqlite_only(SQLITE_ONLY("the items table and its triggers "
		    "are the SQLite schema's"), "items: created and filled "
		    "when a spool of an older version is opened");
		return;
	}
	tap_ok(bad == 0 && taken > 100 && refused == 0, "items: in step with "
	    "the events after each of 200 random steps (%d events taken, %d "
	    "appends refused; %ld steps out of step, at worst %ld rows)",
	    taken, refused, bad, worst);
	podio_spool_close(s);

	/* A spool of an older version: no items table, triggers or index
	 * of events of no item, pending events of several items. */
	s = open_or_bail(newdir(dir, sizeof(dir), "items-old"));
	for (j = 0; j < 30; j++)
		add(s, types[j % 4], 1, j % 4 == 3 ? 0 : 200 + j % 5, rev++,
		    now - 5000 + j);
	podio_spool_close(s);
	tap_ok(raw_sql(dir, "DROP TRIGGER items_insert;"
	    "DROP TRIGGER items_delete; DROP TRIGGER items_update;"
	    "DROP TABLE items; DROP INDEX events_noitem;") == 0,
	    "items: the table, its triggers and index dropped, as in a spool "
	    "of an older version");
	s = open_or_bail(dir);
	tap_ok(items_out_of_step(dir) == 0, "items: created and filled from "
	    "the pending events when that spool is opened");
	e = podio_spool_take_many(s, NULL, 64, &bs, &nb);
	tap_ok(e == PODIO_OK && nb == 5 + 7, "items: a take then finds the 5 "
	    "items and the 7 events of no item (%zu units)", nb);
	podio_spool_batches_free(bs, nb);
	podio_spool_close(s);
}

static void
test_app(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_item *items = NULL;
	struct podio_spool_batch *bs = NULL;
	size_t n = 0, nb = 0, i;
	uint64_t item;
	int ok;

	s = open_or_bail(newdir(dir, sizeof(dir), "app"));
	for (item = 801; item <= 805; item++) {
		add(s, "item.update", 900, item, 1, 0);
		add(s, "item.update", 900, item, 2, 0);
	}
	add(s, "item.update", 901, 806, 1, 0);
	tap_ok(podio_spool_pending_items(s, 55, 0, &items, &n) == PODIO_OK &&
	    n == 0, "no app known for the hook: nothing listed");
	free(items);
	items = NULL;
	podio_spool_learn_app(s, 900, 55);
	tap_ok(podio_spool_pending_items(s, 55, 0, &items, &n) == PODIO_OK &&
	    n == 5 && items[0].item_id == 801 && items[0].events == 2 &&
	    items[4].item_id == 805 && !items[0].in_flight,
	    "learned app: its five items listed, oldest first");
	free(items);
	items = NULL;
	tap_ok(podio_spool_take_app(s, 55, NULL, 3, &bs, &nb) == PODIO_OK &&
	    nb == 3, "take_app claims three items at once");
	ok = nb == 3;
	for (i = 0; i < nb; i++)
		ok = ok && bs[i].item_id == 801 + i && bs[i].n == 2 &&
		    bs[i].app_id == 55;
	tap_ok(ok, "each batch holds one item's events and the app");
	podio_spool_batches_free(bs, nb);
	tap_ok(podio_spool_pending_items(s, 55, 0, &items, &n) == PODIO_OK &&
	    n == 5 && items[0].in_flight && !items[3].in_flight,
	    "the claimed items show as in flight");
	free(items);
	podio_spool_close(s);
}

/* The revisions fetched outlive the events, keep the highest, and go
 * with podio_spool_forget(); the marks never go back. */
static void
test_revisions(void)
{
	char dir[512];
	struct podio_spool *s;
	uint64_t ids[4] = { 11, 12, 13, UINT64_C(18446744073709551000) };
	int64_t revs[4] = { 3, 7, 1, 9 }, got[4];
	uint64_t again[2] = { 11, 11 };
	int64_t lower[2] = { 2, 5 }, v = -1;
	int64_t id;
	size_t n = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "revisions"));
	tap_ok(podio_spool_fetched_revisions(s, ids, 4, got) == PODIO_OK &&
	    got[0] == -1 && got[3] == -1, "no revision kept at first");
	id = add(s, "item.update", 900, 11, 77, 0);
	tap_ok(podio_spool_note_revisions(s, ids, revs, 3) == PODIO_OK,
	    "three revisions noted in one call");
	tap_ok(podio_spool_done(s, id) == PODIO_OK, "the event is done");
	tap_ok(podio_spool_fetched_revisions(s, ids, 4, got) == PODIO_OK &&
	    got[0] == 3 && got[1] == 7 && got[2] == 1 && got[3] == -1,
	    "they outlive the event, the unknown item has none");
	tap_ok(podio_spool_note_revisions(s, again, lower, 2) == PODIO_OK &&
	    podio_spool_note_revisions(s, ids + 3, revs + 3, 1) == PODIO_OK &&
	    podio_spool_fetched_revisions(s, ids, 4, got) == PODIO_OK &&
	    got[0] == 5 && got[3] == 9,
	    "the highest revision wins, a 64-bit id is kept");
	tap_ok(podio_spool_forget(s, 3600 * 1000, &n) == PODIO_OK && n == 0 &&
	    podio_spool_fetched_revisions(s, ids, 1, got) == PODIO_OK &&
	    got[0] == 5, "revisions fetched within the age are kept");
	podio__spool_set_clock_skew(s, 2 * 3600 * 1000);
	tap_ok(podio_spool_forget(s, 3600 * 1000, &n) == PODIO_OK && n == 5 &&
	    podio_spool_fetched_revisions(s, ids, 4, got) == PODIO_OK &&
	    got[0] == -1 && got[1] == -1 && got[3] == -1,
	    "forget drops older revisions with the dedup key");
	podio__spool_set_clock_skew(s, 0);
	tap_ok(podio_spool_note_revisions(s, NULL, NULL, 1) ==
	    PODIO_ERR_INVALID && podio_spool_fetched_revisions(s, ids,
	    PODIO_SPOOL_MAX_REVISIONS + 1, got) == PODIO_ERR_INVALID,
	    "no ids or too many ids refused");

	tap_ok(podio_spool_get_mark(s, PODIO_SPOOL_MARK_ALIVE, &v) ==
	    PODIO_ERR_NOT_FOUND && v == 0, "no mark at first");
	tap_ok(podio_spool_set_mark(s, PODIO_SPOOL_MARK_ALIVE, 5000) ==
	    PODIO_OK && podio_spool_set_mark(s, PODIO_SPOOL_MARK_ALIVE,
	    4000) == PODIO_OK && podio_spool_get_mark(s,
	    PODIO_SPOOL_MARK_ALIVE, &v) == PODIO_OK && v == 5000,
	    "a mark never goes back");
	tap_ok(podio_spool_set_mark(s, PODIO_SPOOL_MARK_ALIVE, 6000) ==
	    PODIO_OK && podio_spool_get_mark(s, PODIO_SPOOL_MARK_ALIVE,
	    &v) == PODIO_OK && v == 6000, "it moves on");
	tap_ok(podio_spool_set_mark(s, "Bad-name", 1) == PODIO_ERR_INVALID &&
	    podio_spool_set_mark(s, "schema_version", 1) == PODIO_OK &&
	    podio_spool_get_mark(s, "other", &v) == PODIO_ERR_NOT_FOUND,
	    "names checked, marks kept apart from each other");
	tap_ok(podio_spool_set_mark(s, "1abc", 1) == PODIO_ERR_INVALID &&
	    podio_spool_set_mark(s, "abc-1", 1) == PODIO_ERR_INVALID &&
	    podio_spool_set_mark(s, "a234567890123456789012345678901234567890"
	    "123456789012345678901234", 1) == PODIO_OK &&
	    podio_spool_set_mark(s, "a234567890123456789012345678901234567890"
	    "1234567890123456789012345", 1) == PODIO_ERR_INVALID,
	    "a name starts with a letter or _, digits may follow, 64 at most");
	tap_ok(podio_spool_set_mark(s, "hooks_active_1234", 7000) ==
	    PODIO_OK && podio_spool_set_mark(s, "hooks_active_12345", 8000) ==
	    PODIO_OK && podio_spool_get_mark(s, "hooks_active_1234", &v) ==
	    PODIO_OK && v == 7000 && podio_spool_get_mark(s,
	    "hooks_active_12345", &v) == PODIO_OK && v == 8000,
	    "names with digits, each its own mark");
	podio_spool_close(s);
	s = open_or_bail(dir);
	tap_ok(podio_spool_get_mark(s, PODIO_SPOOL_MARK_ALIVE, &v) ==
	    PODIO_OK && v == 6000, "the mark is durable");
	podio_spool_close(s);
	if (sqlite_only(SQLITE_ONLY("a database made before the revisions"),
	    "a database without the revisions and marks gets them"))
		return;
	tap_ok(raw_sql(dir, "DROP TABLE revisions; DROP TABLE marks;") == 0,
	    "the revisions and marks dropped, as before they existed");
	s = open_or_bail(dir);
	tap_ok(podio_spool_note_revisions(s, ids, revs, 1) == PODIO_OK &&
	    podio_spool_set_mark(s, PODIO_SPOOL_MARK_ALIVE, 1) == PODIO_OK,
	    "a database without the revisions and marks gets them");
	podio_spool_close(s);
}

static void
test_bad(void)
{
	char dir[512], needle[64];
	struct podio_spool *s;
	struct podio_spool_batch b;
	struct podio_spool_status st;
	int64_t good, bad_json, bad_state;

	s = open_or_bail(newdir(dir, sizeof(dir), "bad"));
	bad_json = add(s, "item.update", 1, 1000, 1, 0);
	good = add(s, "item.update", 1, 1000, 2, 0);
	bad_state = add(s, "item.update", 1, 1001, 1, 0);
	add(s, "item.update", 1, 1001, 2, 0);
	podio_spool_close(s);
	{
		char sql[300];

		if (pg_url != NULL)
			snprintf(sql, sizeof(sql), "UPDATE podio_events SET "
			    "event = convert_to('{\"type\": tru', 'UTF8') "
			    "WHERE id = %lld; UPDATE podio_events SET state = "
			    "'weird' WHERE id = %lld;", (long long)bad_json,
			    (long long)bad_state);
		else
			snprintf(sql, sizeof(sql), "UPDATE events SET event = "
			    "'{\"type\": tru' WHERE id = %lld;"
			    "UPDATE events SET state = 'weird' "
			    "WHERE id = %lld;", (long long)bad_json,
			    (long long)bad_state);
		tap_ok(raw_sql(dir, sql) == 0, "damage two records");
	}
	s = open_or_bail(dir);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 1 &&
	    b.events[0].id == good, "a record with bad JSON is set aside "
	    "and its item goes on");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 1 &&
	    b.item_id == 1001, "a record with a bad state blocks nothing");
	podio_spool_batch_clear(&b);
	tap_ok(podio_spool_status(s, &st) == PODIO_OK && st.bad == 2,
	    "status counts both as bad");
	snprintf(needle, sizeof(needle), "event %lld cannot be decoded",
	    (long long)bad_json);
	tap_ok(file_contains(logpath, needle), "a warning names the id");
	tap_ok(podio_spool_purge(s, PODIO_SPOOL_MASK(PODIO_SPOOL_BAD), 0,
	    NULL) == PODIO_OK && count(s, PODIO_SPOOL_MASK(PODIO_SPOOL_BAD))
	    == 0, "bad records can be purged");
	podio_spool_close(s);
}

/*
 * A take of many units of one event each (the processors' common case,
 * which PostgreSQL claims a round at a time): every unit claimed, oldest
 * first, each event with its batch's lease (on PostgreSQL the one lease
 * of the take), stored as taken; an undecodable event
 * among them set aside; two items whose transaction locks share a key
 * both claimed.
 */
static void
test_take_many(void)
{
	enum { UNITS = 64, BAD = 10, LEASE_MS = 120000 };
	char dir[512], sql[300];
	struct podio_spool *s;
	struct podio_spool_batch *bs = NULL;
	struct podio_spool_take_opts o;
	struct podio_spool_event *ev = NULL;
	int64_t ids[UNITS], t0, t1, until = 0, now = podio__wall_ms();
	uint64_t items[UNITS];
	size_t nb = 0, nev = 0, i, k, order = 0, lease = 0, stored = 0;
	enum podio_err e;

	s = open_or_bail(newdir(dir, sizeof(dir), "take-many"));
	for (i = 0; i < UNITS; i++) {
		/* Items 5000 and 5000 + 2^31 share a lock key. */
		items[i] = i % 3 == 2 ? 0 : i == 1 ? 5000 + (1ULL << 31) :
		    5000 + i;
		ids[i] = add(s, items[i] != 0 ? "item.update" : "app.update",
		    1, items[i], items[i] != 0 ? 1 : 0, now - 10000 +
		    (int64_t)i);
	}
	podio_spool_close(s);
	if (pg_url != NULL)
		snprintf(sql, sizeof(sql), "UPDATE podio_events SET event = "
		    "convert_to('{\"type\": tru', 'UTF8') WHERE id = %lld",
		    (long long)ids[BAD]);
	else
		snprintf(sql, sizeof(sql), "UPDATE events SET event = "
		    "'{\"type\": tru' WHERE id = %lld", (long long)ids[BAD]);
	tap_ok(raw_sql(dir, sql) == 0, "take many: %d units of one event, "
	    "one of them damaged", UNITS);
	s = open_or_bail(dir);

	memset(&o, 0, sizeof(o));
	o.lease_ms = LEASE_MS;
	t0 = podio__wall_ms();
	e = podio_spool_take_many(s, &o, UNITS, &bs, &nb);
	t1 = podio__wall_ms();
	tap_ok(e == PODIO_OK && nb == UNITS - 1, "take many: one take "
	    "claims every unit but the damaged one (%s, %zu units)",
	    podio_strerror(e), nb);
	if (e == PODIO_OK && nb > 0)
		until = bs[0].lease_until_ms;
	for (i = k = 0; e == PODIO_OK && i < nb; i++, k++) {
		if (k == BAD)
			k++;
		if (k < UNITS && bs[i].n == 1 && bs[i].events[0].id ==
		    ids[k] && bs[i].has_item == (items[k] != 0) &&
		    (items[k] == 0 || bs[i].item_id == items[k]))
			order++;
		/* SQLite commits a long take in parts, each with its
		 * own lease; PostgreSQL in one transaction. */
		if ((pg_url == NULL || bs[i].lease_until_ms == until) &&
		    bs[i].lease_until_ms >= t0 + LEASE_MS &&
		    bs[i].lease_until_ms <= t1 + LEASE_MS && bs[i].n == 1 &&
		    bs[i].events[0].state == PODIO_SPOOL_IN_FLIGHT &&
		    bs[i].events[0].lease_until_ms == bs[i].lease_until_ms &&
		    bs[i].events[0].leases == 1)
			lease++;
	}
	tap_ok(order == UNITS - 1, "take many: the units in arrival order, "
	    "each its own event (%zu of %d)", order, UNITS - 1);
	tap_ok(lease == UNITS - 1, "take many: each event in flight, taken "
	    "once, with the lease of the take (%zu of %d)", lease, UNITS - 1);
	if (podio_spool_list(s, PODIO_SPOOL_MASK(PODIO_SPOOL_IN_FLIGHT), 0,
	    0, &ev, &nev) == PODIO_OK)
		for (i = 0; i < nev && i < nb; i++)
			if (ev[i].id == bs[i].events[0].id && ev[i].leases == 1 &&
			    ev[i].lease_until_ms == bs[i].lease_until_ms)
				stored++;
	tap_ok(nev == UNITS - 1 && stored == nev, "take many: the spool "
	    "holds them so (%zu of %zu in flight)", stored, nev);
	podio_spool_events_free(ev, nev);
	podio_spool_batches_free(bs, nb);
	bs = NULL;
	nb = 0;
	tap_ok(count(s, PODIO_SPOOL_MASK(PODIO_SPOOL_BAD)) == 1 &&
	    podio_spool_take_many(s, &o, UNITS, &bs, &nb) ==
	    PODIO_ERR_NOT_FOUND && nb == 0, "take many: the damaged event "
	    "set aside, and nothing left to take");
	podio_spool_batches_free(bs, nb);
	podio_spool_close(s);
}

/* ------------------------------------------------------- processes */

static void
test_pause_procs(void)
{
	char dir[512];
	struct podio_spool *s;
	int64_t until = 0, at = 0, t = podio__wall_ms() + 300000;
	long rem = 0, lim = 0;
	pid_t pid;
	int status = -1;

	newdir(dir, sizeof(dir), "pause");
	s = open_or_bail(dir);
	tap_ok(podio_spool_get_pause(s, "client:1", "default", &until) ==
	    PODIO_OK && until == 0, "no pause at first");
	tap_ok(podio_spool_get_remaining(s, "client:1", "default", &rem,
	    &lim, &at) == PODIO_ERR_NOT_FOUND && rem == -1,
	    "no remaining count at first");
	/* No handle may cross a fork (SQLite's rule). */
	podio_spool_close(s);
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct podio_spool *c = NULL;
		int ok;

		if (podio_spool_open(dir, &c, NULL, 0) != PODIO_OK)
			_exit(2);
		ok = podio_spool_set_pause(c, "client:1", "default", t) ==
		    PODIO_OK && podio_spool_record_remaining(c, "client:1",
		    "filter", 17, 250) == PODIO_OK;
		podio_spool_close(c);
		_exit(ok ? 0 : 1);
	}
	waitpid(pid, &status, 0);
	s = open_or_bail(dir);
	tap_ok(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "another process records a pause and a remaining count");
	tap_ok(podio_spool_get_pause(s, "client:1", "default", &until) ==
	    PODIO_OK && until == t, "this process sees the pause");
	tap_ok(podio_spool_get_remaining(s, "client:1", "filter", &rem, &lim,
	    &at) == PODIO_OK && rem == 17 && lim == 250 && at > 0,
	    "and the remaining count of the filter class");
	podio_spool_set_pause(s, "client:1", "default", t - 1000);
	podio_spool_get_pause(s, "client:1", "default", &until);
	tap_ok(until == t, "a shorter pause does not shorten it");
	podio_spool_get_pause(s, "client:2", "default", &until);
	tap_ok(until == 0, "pauses are per credential");
	tap_ok(podio_spool_set_pause(s, "", "default", t) ==
	    PODIO_ERR_INVALID, "an empty credential key is refused");
	podio_spool_close(s);
}

static void
test_pause_cap_resume(void)
{
	char dir[512];
	struct podio_spool *s;
	struct podio_spool_pause *p = NULL;
	int64_t until = 0, now = podio__wall_ms();
	size_t n = 99;

	newdir(dir, sizeof(dir), "resume");
	s = open_or_bail(dir);
	tap_ok(podio_spool_resume(s, &p, &n) == PODIO_OK && n == 0 &&
	    p == NULL, "resume with nothing paused: none");
	podio_spool_set_pause(s, "client:1", "default", INT64_MAX);
	podio_spool_get_pause(s, "client:1", "default", &until);
	tap_ok(until >= now + PODIO_SPOOL_MAX_PAUSE_MS - 60000 &&
	    until <= podio__wall_ms() + PODIO_SPOOL_MAX_PAUSE_MS,
	    "a pause to the end of time ends within an hour (%" PRId64
	    " ms)", until - now);
	podio_spool_set_pause(s, "client:1", "filter", now + 60000);
	podio_spool_set_pause(s, "client:2", "default", now - 1000);
	tap_ok(podio_spool_resume(s, &p, &n) == PODIO_OK && n == 2 &&
	    p != NULL && strcmp(p[0].cred, "client:1") == 0 &&
	    strcmp(p[0].rate_class, "default") == 0 && p[0].until_ms == until &&
	    strcmp(p[1].rate_class, "filter") == 0,
	    "resume ends the two pauses running, not the one over");
	free(p);
	p = NULL;
	podio_spool_get_pause(s, "client:1", "default", &until);
	tap_ok(until == 0, "after resume no pause is left");
	tap_ok(podio_spool_resume(s, &p, &n) == PODIO_OK && n == 0,
	    "resume again: nothing to resume");
	podio_spool_set_pause(s, "client:1", "default", now + 5000);
	podio_spool_get_pause(s, "client:1", "default", &until);
	tap_ok(until == now + 5000, "a pause after resume is kept as set");
	podio_spool_close(s);
}

/* The outage state: started and kept, one claim of its probe at a time
 * (across handles), a failed probe goes on with it, resume ends it. */
static void
test_outage(void)
{
	char dir[512];
	struct podio_spool *s, *s2;
	struct podio_spool_outage o;
	struct podio_spool_pause *p = NULL;
	int64_t now = podio__wall_ms(), since;
	size_t n = 0;
	int claimed = -1, ended = -1;

	newdir(dir, sizeof(dir), "outage");
	s = open_or_bail(dir);
	s2 = open_or_bail(dir);
	tap_ok(podio_spool_get_outage(s, "client:1", &o) == PODIO_OK &&
	    o.since_ms == 0, "no outage at first");
	tap_ok(podio_spool_claim_probe(s, "client:1", now + 9000, &claimed) ==
	    PODIO_OK && claimed == 0, "no probe to claim without an outage");
	tap_ok(podio_spool_set_outage(s, "client:1", now + 60000, 2000) ==
	    PODIO_OK && podio_spool_get_outage(s2, "client:1", &o) ==
	    PODIO_OK && o.since_ms >= now && o.next_probe_ms == now + 60000 &&
	    o.interval_ms == 2000 && o.claimed_until_ms == 0,
	    "an outage started is seen by another handle");
	since = o.since_ms;
	tap_ok(podio_spool_claim_probe(s, "client:1", now + 9000, &claimed) ==
	    PODIO_OK && claimed == 0, "a probe not due cannot be claimed");
	podio_spool_set_outage(s, "client:1", now - 1, 4000);
	tap_ok(podio_spool_claim_probe(s, "client:1", now + 9000, &claimed) ==
	    PODIO_OK && claimed == 1, "a due probe is claimed");
	tap_ok(podio_spool_claim_probe(s2, "client:1", now + 9001, &claimed) ==
	    PODIO_OK && claimed == 0, "a claimed probe cannot be claimed by "
	    "another handle");
	tap_ok(podio_spool_release_probe(s, "client:1", now + 9000) ==
	    PODIO_OK && podio_spool_claim_probe(s2, "client:1", now + 9001,
	    &claimed) == PODIO_OK && claimed == 1, "a claim given back can "
	    "be claimed again");
	podio_spool_set_outage(s2, "client:1", now + 8000, 8000);
	tap_ok(podio_spool_get_outage(s, "client:1", &o) == PODIO_OK &&
	    o.since_ms == since && o.interval_ms == 8000 &&
	    o.claimed_until_ms == 0, "a failed probe keeps the start, ends "
	    "the claim");
	tap_ok(podio_spool_get_outage(s, "client:2", &o) == PODIO_OK &&
	    o.since_ms == 0, "another credential has no outage");
	tap_ok(podio_spool_resume(s, &p, &n) == PODIO_OK && n == 1 &&
	    p != NULL && strcmp(p[0].rate_class, PODIO_SPOOL_OUTAGE_CLASS) ==
	    0 && p[0].until_ms == now + 8000, "resume ends the outage");
	free(p);
	tap_ok(podio_spool_get_outage(s2, "client:1", &o) == PODIO_OK &&
	    o.since_ms == 0, "after resume no outage is left");
	podio_spool_set_outage(s, "client:1", now + 1000, 2000);
	tap_ok(podio_spool_end_outage(s2, "client:1", &ended) == PODIO_OK &&
	    ended == 1 && podio_spool_get_outage(s, "client:1", &o) ==
	    PODIO_OK && o.since_ms == 0, "an outage ends");
	tap_ok(podio_spool_end_outage(s2, "client:1", &ended) == PODIO_OK &&
	    ended == 0, "ending no outage ends nothing");
	podio_spool_close(s2);
	podio_spool_close(s);
}

static void
test_lease_expiry(void)
{
	char dir[512];
	struct podio_spool *s, *s2;
	struct podio_spool_batch b;
	char sql[512];
	int64_t id, got = 0;
	size_t n = 99;
	int fds[2];
	pid_t pid;

	newdir(dir, sizeof(dir), "lease");
	s = open_or_bail(dir);
	id = add(s, "item.update", 1, 1100, 1, 0);
	podio_spool_close(s);
	if (pipe(fds) == -1) {
		tap_ok(0, "pipe");
		return;
	}
	fflush(stdout);
	if ((pid = fork()) == 0) {
		struct podio_spool *c = NULL;
		struct podio_spool_batch cb;
		struct podio_spool_take_opts o;

		close(fds[0]);
		memset(&o, 0, sizeof(o));
		o.lease_ms = 60000;
		if (podio_spool_open(dir, &c, NULL, 0) != PODIO_OK ||
		    podio_spool_take(c, &o, &cb) != PODIO_OK)
			_exit(1);
		if (write(fds[1], &cb.events[0].id, sizeof(int64_t)) < 0)
			_exit(1);
		for (;;)
			pause();
	}
	close(fds[1]);
	tap_ok(read(fds[0], &got, sizeof(got)) == (ssize_t)sizeof(got) &&
	    got == id, "a worker took the event");
	s = open_or_bail(dir);
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_ERR_NOT_FOUND,
	    "a live worker's lease holds the event");
	podio_spool_close(s);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	close(fds[0]);
#ifdef HAVE_POSTGRESQL
	if (pg_url != NULL) {
		/* A lease is alive while a session holds its key.  Another
		 * session takes the killed worker's key (waiting for its
		 * session to end): a worker of another host, alive. */
		PGconn *other = pg_connect();
		int held;

		snprintf(sql, sizeof(sql), "SELECT pg_advisory_lock(lease_key)"
		    " FROM podio_events WHERE id = %lld AND lease_key IS NOT"
		    " NULL", (long long)id);
		held = pg_value(other, sql) == 0;
		s = open_or_bail(dir);
		tap_ok(held && podio_spool_reclaim(s, &n) == PODIO_OK &&
		    n == 0 && podio_spool_take(s, NULL, &b) ==
		    PODIO_ERR_NOT_FOUND, "a lease whose key another session "
		    "holds (a worker of another host) is not given back");
		pg_exec(other, "SELECT pg_advisory_unlock_all()");
		PQfinish(other);
		sqlite_only(SQLITE_ONLY("leases name their owner's PID and "
		    "PID namespace; PostgreSQL's are session locks"),
		    "a lease of another PID namespace is not given back");
	} else
#endif
	{
		s = open_or_bail(dir);
		tap_ok(podio_spool_take(s, NULL, &b) == PODIO_ERR_NOT_FOUND,
		    "killed worker: its lease still holds the event");
		/* The same dead PID named in another PID namespace (the real
		 * owner kept aside in last_error): not looked up, the lease
		 * holds. */
		snprintf(sql, sizeof(sql), "UPDATE events SET last_error = "
		    "lease_owner, lease_owner = '%ld-0000000000000000-1' WHERE "
		    "id = %lld", (long)pid, (long long)id);
		tap_ok(raw_sql(dir, sql) == 0 && podio_spool_reclaim(s, &n) ==
		    PODIO_OK && n == 0 && podio_spool_take(s, NULL, &b) ==
		    PODIO_ERR_NOT_FOUND, "a lease of another PID namespace is "
		    "not given back");
		snprintf(sql, sizeof(sql), "UPDATE events SET lease_owner = "
		    "last_error, last_error = NULL WHERE id = %lld",
		    (long long)id);
		tap_ok(raw_sql(dir, sql) == 0, "the killed worker's lease "
		    "again");
	}
	/* A worker that is gone: its events are given back. */
	tap_ok(podio_spool_reclaim(s, &n) == PODIO_OK && n == 1,
	    "the killed worker's event is given back");
	tap_ok(podio_spool_take(s, NULL, &b) == PODIO_OK && b.n == 1 &&
	    b.events[0].id == id && b.events[0].leases == 2,
	    "the next take gets it at once");
	podio_spool_batch_clear(&b);
	/* A live holder (this process, stuck): only the lease running out
	 * lets another handle take it. */
	s2 = open_or_bail(dir);
	tap_ok(podio_spool_reclaim(s2, &n) == PODIO_OK && n == 0 &&
	    podio_spool_take(s2, NULL, &b) == PODIO_ERR_NOT_FOUND,
	    "a live holder's lease is not given back and holds the event");
	podio__spool_set_clock_skew(s2, 5 * 60 * 1000 + 1);
	tap_ok(podio_spool_take(s2, NULL, &b) == PODIO_OK && b.n == 1 &&
	    b.events[0].id == id && b.events[0].leases == 3,
	    "after the lease ran out another worker takes it");
	podio_spool_batch_clear(&b);
	podio_spool_close(s2);
	podio_spool_close(s);
}

#define MP_APPENDERS 4
#define MP_TAKERS 4
#define MP_EACH 100

static void
test_multiprocess(void)
{
	char dir[512], flag[600];
	int64_t acked[MP_APPENDERS * MP_EACH], taken[MP_APPENDERS * MP_EACH *
	    2];
	size_t nacked = 0, ntaken = 0, i, dups = 0;
	int afd[MP_APPENDERS][2], tfd[MP_TAKERS][2];
	pid_t apid[MP_APPENDERS], tpid[MP_TAKERS];
	int k, status, fails = 0, ok;
	struct podio_spool *s;

	newdir(dir, sizeof(dir), "procs");
	snprintf(flag, sizeof(flag), "%s/procs-%d.done", tmpdir, dir_seq);
	s = open_or_bail(dir);       /* created before the race */
	podio_spool_close(s);
	fflush(stdout);
	for (k = 0; k < MP_TAKERS; k++) {
		if (pipe(tfd[k]) == -1)
			return;
		if ((tpid[k] = fork()) == 0) {
			struct podio_spool *c = NULL;
			struct podio_spool_batch b;
			int64_t ids[128];
			size_t j;
			int fin;

			close(tfd[k][0]);
			if (podio_spool_open(dir, &c, NULL, 0) != PODIO_OK)
				_exit(2);
			for (;;) {
				enum podio_err e;

				fin = access(flag, F_OK) == 0;
				e = podio_spool_take(c, NULL, &b);
				if (e == PODIO_ERR_NOT_FOUND) {
					if (fin)
						break;
					sleep_ms(1);
					continue;
				}
				if (e != PODIO_OK)
					_exit(3);
				for (j = 0; j < b.n && j < 128; j++)
					ids[j] = b.events[j].id;
				if (write(tfd[k][1], ids, j * sizeof(int64_t))
				    < 0 || podio_spool_done_many(c, ids, j) !=
				    PODIO_OK)
					_exit(4);
				podio_spool_batch_clear(&b);
			}
			podio_spool_close(c);
			_exit(0);
		}
		close(tfd[k][1]);
	}
	for (k = 0; k < MP_APPENDERS; k++) {
		if (pipe(afd[k]) == -1)
			return;
		if ((apid[k] = fork()) == 0) {
			struct podio_spool *c = NULL;
			int j;

			close(afd[k][0]);
			if (podio_spool_open(dir, &c, NULL, 0) != PODIO_OK)
				_exit(2);
			for (j = 0; j < MP_EACH; j++) {
				/* Items shared between processes. */
				int64_t id = add(c, "item.update", 10 + k,
				    2000 + j % 10, 1 + j, 0);

				if (id <= 0 || write(afd[k][1], &id,
				    sizeof(id)) < 0)
					_exit(3);
			}
			podio_spool_close(c);
			_exit(0);
		}
		close(afd[k][1]);
	}
	for (k = 0; k < MP_APPENDERS; k++) {
		waitpid(apid[k], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fails++;
		nacked += read_ids(afd[k][0], acked + nacked,
		    MP_APPENDERS * MP_EACH - nacked);
		close(afd[k][0]);
	}
	k = open(flag, O_WRONLY | O_CREAT, 0600);
	if (k != -1)
		close(k);
	for (k = 0; k < MP_TAKERS; k++) {
		ntaken += read_ids(tfd[k][0], taken + ntaken,
		    sizeof(taken) / sizeof(taken[0]) - ntaken);
		waitpid(tpid[k], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fails++;
		close(tfd[k][0]);
	}
	tap_ok(fails == 0 && nacked == MP_APPENDERS * MP_EACH,
	    "%d processes appended %zu events while %d took them",
	    MP_APPENDERS, nacked, MP_TAKERS);
	qsort(acked, nacked, sizeof(acked[0]), cmp_i64);
	qsort(taken, ntaken, sizeof(taken[0]), cmp_i64);
	for (i = 1; i < ntaken; i++)
		if (taken[i] == taken[i - 1])
			dups++;
	ok = ntaken == nacked;
	for (i = 0; ok && i < nacked; i++)
		ok = acked[i] == taken[i];
	tap_ok(dups == 0, "no event was taken twice (%zu twice)", dups);
	tap_ok(ok, "every acknowledged event was taken once (%zu of %zu)",
	    ntaken, nacked);
	s = open_or_bail(dir);
	tap_ok(count(s, PODIO_SPOOL_ALL) == 0, "the spool is empty after");
	podio_spool_close(s);
}

/* Many processes open a new spool at the same moment. */
static void
test_concurrent_create(void)
{
	char dir[512];
	pid_t pids[8];
	int k, status, fails = 0;
	struct podio_spool *s;

	newdir(dir, sizeof(dir), "create");
	fflush(stdout);
	for (k = 0; k < 8; k++)
		if ((pids[k] = fork()) == 0) {
			struct podio_spool *c = NULL;
			char err[256];

			if (podio_spool_open(dir, &c, err, sizeof(err)) !=
			    PODIO_OK) {
				fprintf(stderr, "child open: %s\n", err);
				_exit(2);
			}
			k = add(c, "app.update", 1, 0, 0, 0) > 0 ? 0 : 3;
			podio_spool_close(c);
			_exit(k);
		}
	for (k = 0; k < 8; k++) {
		waitpid(pids[k], &status, 0);
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			fails++;
	}
	s = open_or_bail(dir);
	tap_ok(fails == 0 && count(s, PODIO_SPOOL_ALL) == 8,
	    "8 processes create and append to a new spool at once");
	podio_spool_close(s);
}

#define KILL_ROUNDS 10
#define KILL_CHILDREN 3
#define KILL_MAX 20000

static void
test_kill9(unsigned seed)
{
	static int64_t acked[KILL_MAX];
	char dir[512];
	int round;

	tap_diag("kill -9 test: seed %u (PODIO_TEST_SEED=%u repeats it)",
	    seed, seed);
	srand(seed);
	newdir(dir, sizeof(dir), "kill");
	for (round = 0; round < KILL_ROUNDS; round++) {
		pid_t pids[KILL_CHILDREN];
		int fds[KILL_CHILDREN][2], k, delay, missing = 0, opened;
		size_t n = 0, i;
		struct podio_spool *s = NULL;
		struct podio_spool_event *ev;

		delay = rand() % 100;
		fflush(stdout);
		for (k = 0; k < KILL_CHILDREN; k++) {
			if (pipe(fds[k]) == -1)
				return;
			if ((pids[k] = fork()) == 0) {
				struct podio_spool *c = NULL;
				int j;

				close(fds[k][0]);
				if (podio_spool_open(dir, &c, NULL, 0) !=
				    PODIO_OK)
					_exit(2);
				for (j = 0;; j++) {
					int64_t id = add(c, j % 2 ?
					    "item.update" : "comment.create",
					    round, 5000 + k, j % 2 ? 1 + j : 0,
					    0);

					if (id <= 0 || write(fds[k][1], &id,
					    sizeof(id)) < 0)
						_exit(3);
				}
			}
			close(fds[k][1]);
		}
		/* Wait until every child has appended once, so that the
		 * kill lands in the middle of the stream. */
		for (k = 0; k < KILL_CHILDREN; k++)
			n += read_ids(fds[k][0], acked + n, 1);
		sleep_ms(delay);
		for (k = 0; k < KILL_CHILDREN; k++)
			kill(pids[k], SIGKILL);
		for (k = 0; k < KILL_CHILDREN; k++) {
			waitpid(pids[k], NULL, 0);
			n += read_ids(fds[k][0], acked + n, KILL_MAX - n);
			close(fds[k][0]);
		}
		opened = podio_spool_open(dir, &s, NULL, 0) == PODIO_OK;
		for (i = 0; opened && i < n; i++) {
			ev = NULL;
			if (podio_spool_show(s, acked[i], &ev) != PODIO_OK)
				missing++;
			podio_spool_events_free(ev, 1);
		}
		podio_spool_close(s);
		/* On PostgreSQL the server keeps its own files sound: the
		 * spool opening and reading its events is what is left. */
		tap_ok(opened && (pg_url != NULL || integrity_ok(dir)),
		    "round %d (kill after %d ms): the spool opens%s",
		    round + 1, delay, pg_url != NULL ? "" :
		    " and passes integrity_check");
		tap_ok(opened && missing == 0, "round %d: all %zu "
		    "acknowledged appends are there (%d missing)", round + 1,
		    n, missing);
	}
}

/* ------------------------------------------------------------ threads */

#define GC_THREADS 16
#define GC_EACH 200

struct gc_arg {
	struct podio_spool *s;
	int t;
	int64_t ids[GC_EACH];
	int fails;
};

static void *
gc_thread(void *p)
{
	struct gc_arg *a = p;
	int i;

	for (i = 0; i < GC_EACH; i++) {
		a->ids[i] = add(a->s, "item.update", 1, 7000 + a->t, 1 + i, 0);
		if (a->ids[i] <= 0)
			a->fails++;
	}
	return NULL;
}

static void
test_group_commit(void)
{
	static struct gc_arg args[GC_THREADS];
	static int64_t all[GC_THREADS * GC_EACH];
	pthread_t th[GC_THREADS];
	struct podio_spool_stats st;
	struct podio_spool *s;
	char dir[512];
	int t, fails = 0;
	size_t i, n = 0, dups = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "group"));
	for (t = 0; t < GC_THREADS; t++) {
		args[t].s = s;
		args[t].t = t;
		args[t].fails = 0;
		pthread_create(&th[t], NULL, gc_thread, &args[t]);
	}
	for (t = 0; t < GC_THREADS; t++) {
		pthread_join(th[t], NULL);
		fails += args[t].fails;
		for (i = 0; i < GC_EACH; i++)
			all[n++] = args[t].ids[i];
	}
	qsort(all, n, sizeof(all[0]), cmp_i64);
	for (i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			dups++;
	tap_ok(fails == 0 && dups == 0, "%d threads x %d appends: all "
	    "acknowledged with distinct ids", GC_THREADS, GC_EACH);
	tap_ok(count(s, PODIO_SPOOL_ALL) == GC_THREADS * GC_EACH,
	    "all %d are stored", GC_THREADS * GC_EACH);
	podio_spool_stats(s, &st);
	tap_diag("group commit: %llu appends in %llu commits: %.3f commits "
	    "(flushes) per append, largest commit %llu",
	    (unsigned long long)st.appends, (unsigned long long)st.commits,
	    st.appends ? (double)st.commits / (double)st.appends : 0.0,
	    (unsigned long long)st.max_batch);
	tap_ok(st.appends == GC_THREADS * GC_EACH && st.commits > 0 &&
	    st.commits < st.appends, "appends shared commits (%llu < %llu)",
	    (unsigned long long)st.commits, (unsigned long long)st.appends);

	podio_spool_close(s);
	if (sqlite_only(SQLITE_ONLY("checkpoints of SQLite's log (WAL)"),
	    "the appends' log is copied into the database by a worker's "
	    "write, not by an append"))
		return;

	/* Appends leave checkpoints to the worker's writes: 400 appends,
	 * each a commit of its own, write a log longer than a worker's
	 * threshold (1,000 pages) and shorter than the appends' (8,000). */
	s = open_or_bail(newdir(dir, sizeof(dir), "group-ckpt"));
	for (i = 0; i < 400; i++)
		add(s, "item.update", 1, 5000 + i, 1, 0);
	{
		struct podio_spool_batch b;
		struct stat sb;
		char path[600];
		off_t before = -1, after = -1;

		snprintf(path, sizeof(path), "%s/spool.db", dir);
		if (stat(path, &sb) == 0)
			before = sb.st_size;
		if (podio_spool_take(s, NULL, &b) == PODIO_OK)
			podio_spool_done(s, b.events[0].id);
		podio_spool_batch_clear(&b);
		if (stat(path, &sb) == 0)
			after = sb.st_size;
		tap_ok(before >= 0 && after > before * 4, "the appends' log "
		    "is copied into the database by a worker's write, not by "
		    "an append (%lld -> %lld bytes)", (long long)before,
		    (long long)after);
	}
	podio_spool_close(s);
}

struct tk_arg {
	struct podio_spool *s;
	int64_t ids[400];
	size_t n;
	int fails;
};

static void *
tk_thread(void *p)
{
	struct tk_arg *a = p;
	struct podio_spool_batch b;
	enum podio_err e;
	size_t j;

	while ((e = podio_spool_take(a->s, NULL, &b)) == PODIO_OK) {
		for (j = 0; j < b.n && a->n < 400; j++) {
			a->ids[a->n++] = b.events[j].id;
			if (podio_spool_done(a->s, b.events[j].id) != PODIO_OK)
				a->fails++;
		}
		podio_spool_batch_clear(&b);
	}
	if (e != PODIO_ERR_NOT_FOUND)
		a->fails++;
	return NULL;
}

/* Threads of one process sharing a handle take each event once. */
static void
test_thread_take(void)
{
	static struct tk_arg args[4];
	static int64_t all[1600];
	pthread_t th[4];
	struct podio_spool *s;
	char dir[512];
	size_t i, n = 0, dups = 0;
	int t, fails = 0;

	s = open_or_bail(newdir(dir, sizeof(dir), "ttake"));
	for (i = 0; i < 300; i++)
		add(s, i % 3 ? "item.update" : "app.update", 1,
		    i % 3 ? 9000 + i % 17 : 0, i % 3 ? 1 + i : 0, 0);
	for (t = 0; t < 4; t++) {
		args[t].s = s;
		pthread_create(&th[t], NULL, tk_thread, &args[t]);
	}
	for (t = 0; t < 4; t++) {
		pthread_join(th[t], NULL);
		fails += args[t].fails;
		for (i = 0; i < args[t].n; i++)
			all[n++] = args[t].ids[i];
	}
	qsort(all, n, sizeof(all[0]), cmp_i64);
	for (i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			dups++;
	tap_ok(fails == 0 && n == 300 && dups == 0,
	    "4 threads sharing a handle take 300 events once each (%zu)", n);
	podio_spool_close(s);
}

/* -------------------------------------------------------------- full */

struct full_arg {
	struct podio_spool *s;
	int t;
	int acked;
	int io;
};

static void *
full_thread(void *p)
{
	struct full_arg *a = p;
	struct podio_spool_record r;
	char *big = malloc(20000), err[256];
	enum podio_err e;
	int i;

	if (big == NULL)
		return NULL;
	for (i = 0; i < 5; i++) {
		memset(&r, 0, sizeof(r));
		memset(big, 'x', 19990);
		big[0] = '"';
		big[19990] = '"';
		big[19991] = '\0';
		r.type = "item.update";
		r.has = PODIO_HAS_HOOK_ID;
		r.hook_id = (uint64_t)(a->t * 100 + i);
		r.event_json = big;
		r.event_len = strlen(big);
		e = podio_spool_append(a->s, &r, NULL, err, sizeof(err));
		if (e == PODIO_OK)
			a->acked++;
		else if (e == PODIO_ERR_IO)
			a->io++;
	}
	free(big);
	return NULL;
}

static void
test_full(void)
{
	char dir[512], err[256] = "", *big;
	struct podio_spool *s;
	struct podio_spool_record r;
	struct full_arg args[8];
	pthread_t th[8];
	enum podio_err e = PODIO_OK;
	size_t before;
	long cap;
	int i, acked = 0, io = 0;

	if (pg_url != NULL) {
		s = open_or_bail(newdir(dir, sizeof(dir), "full"));
		tap_ok(podio__spool_set_max_pages(s, 1) == -1, "fault seam: "
		    "no page cap on PostgreSQL (-1)");
		podio_spool_close(s);
		sqlite_only(SQLITE_ONLY("a full disk is made with the page cap "
		    "of SQLite's database file"), "disk full: appends refused "
		    "with PODIO_ERR_IO (from 8 threads too), none stored, "
		    "appends work again when space is back");
		return;
	}
	s = open_or_bail(newdir(dir, sizeof(dir), "full"));
	add(s, "app.update", 1, 0, 0, 0);
	cap = podio__spool_set_max_pages(s, 1);
	tap_ok(cap > 0, "fault seam: the database is capped at its size "
	    "(%ld pages)", cap);
	big = malloc(20000);
	memset(big, 'x', 19990);
	big[0] = '"';
	big[19990] = '"';
	big[19991] = '\0';
	memset(&r, 0, sizeof(r));
	r.type = "app.update";
	r.has = PODIO_HAS_HOOK_ID;
	r.hook_id = 2;
	r.event_json = big;
	r.event_len = strlen(big);
	before = count(s, PODIO_SPOOL_ALL);
	for (i = 0; i < 10 && e == PODIO_OK; i++)
		e = podio_spool_append(s, &r, NULL, err, sizeof(err));
	tap_ok(e == PODIO_ERR_IO && err[0] != '\0', "disk full: "
	    "PODIO_ERR_IO with a message (%s)", err);
	tap_ok(count(s, PODIO_SPOOL_ALL) == before + (size_t)i - 1,
	    "the refused append is not stored");
	for (i = 0; i < 8; i++) {
		args[i].s = s;
		args[i].t = i;
		args[i].acked = args[i].io = 0;
		pthread_create(&th[i], NULL, full_thread, &args[i]);
	}
	for (i = 0; i < 8; i++) {
		pthread_join(th[i], NULL);
		acked += args[i].acked;
		io += args[i].io;
	}
	tap_ok(acked == 0 && io == 40, "disk full with 8 threads: every "
	    "append refused, none acknowledged (%d refused)", io);
	podio__spool_set_max_pages(s, 0);
	err[0] = '\0';
	tap_ok(podio_spool_append(s, &r, NULL, err, sizeof(err)) == PODIO_OK,
	    "space back: appends work again (%s)", err);
	free(big);
	podio_spool_close(s);
	tap_ok(integrity_ok(dir), "the database is sound after");
}

/* ------------------------------------------------------------ async */

#define AS_THREADS 8
#define AS_EACH 100
#define AS_SYNC_THREADS 4

/* One append without waiting: what its done callback saw. */
struct as_req {
	struct podio_delivery *d;
	int calls;
	enum podio_err e;
	int64_t id;
	char msg[128];
};

struct as_arg {
	struct podio_spool *s;
	struct as_req *reqs;
	int n;
	int refused;      /* appends that failed at once */
	int64_t sync_ids[AS_EACH];
	int sync_fails;
};

static pthread_mutex_t as_lock = PTHREAD_MUTEX_INITIALIZER;

static void
as_done(void *arg, enum podio_err e, const struct podio_spool_ack *ack,
    const char *err)
{
	struct as_req *r = arg;

	pthread_mutex_lock(&as_lock);
	r->calls++;
	r->e = e;
	r->id = e == PODIO_OK ? ack->id : 0;
	snprintf(r->msg, sizeof(r->msg), "%s", err != NULL ? err : "");
	pthread_mutex_unlock(&as_lock);
}

/* A comment.create delivery with comment id cid; NULL on failure. */
static struct podio_delivery *
as_delivery(uint64_t cid)
{
	struct podio_params *p = podio_params_new(0);
	struct podio_delivery *d = NULL;
	char body[128], reason[128];

	if (p == NULL)
		return NULL;
	snprintf(body, sizeof(body), "type=comment.create&hook_id=9"
	    "&comment_id=%llu&secret=x", (unsigned long long)cid);
	podio_params_parse(p, body, strlen(body), NULL);
	if (podio_delivery_new(p, &d, reason, sizeof(reason)) != PODIO_OK)
		return NULL;
	return d;
}

static void *
as_thread(void *p)
{
	struct as_arg *a = p;
	char err[256];
	int i;

	for (i = 0; i < a->n; i++)
		if (a->reqs[i].d == NULL || podio_spool_append_delivery_async(
		    a->s, a->reqs[i].d, as_done, &a->reqs[i], err,
		    sizeof(err)) != PODIO_OK)
			a->refused++;
	return NULL;
}

static void *
as_sync_thread(void *p)
{
	struct as_arg *a = p;
	int i;

	for (i = 0; i < AS_EACH; i++) {
		a->sync_ids[i] = add(a->s, "app.update", 77, 0, 0, 0);
		if (a->sync_ids[i] <= 0)
			a->sync_fails++;
	}
	return NULL;
}

/*
 * Appends that do not wait, from several threads and beside appends that
 * do: each done callback runs exactly once, every event is stored with
 * an id of its own, and they share commits; a refused one never calls
 * back; a full disk is reported to the callback.
 */
static void
test_async(void)
{
	static struct as_req reqs[AS_THREADS * AS_EACH];
	static int64_t all[(AS_THREADS + AS_SYNC_THREADS) * AS_EACH];
	struct as_arg args[AS_THREADS + AS_SYNC_THREADS];
	pthread_t th[AS_THREADS + AS_SYNC_THREADS];
	struct podio_spool_stats st;
	struct podio_spool *s;
	struct podio_delivery *v;
	struct as_req one;
	char dir[512], err[256];
	size_t i, n = 0, dups = 0, total = AS_THREADS * AS_EACH;
	int t, once = 1, ok = 1, refused = 0, sync_fails = 0, io = 0;
	long cap;

	s = open_or_bail(newdir(dir, sizeof(dir), "async"));
	for (i = 0; i < total; i++) {
		memset(&reqs[i], 0, sizeof(reqs[i]));
		reqs[i].d = as_delivery(5000000 + i);
	}
	memset(args, 0, sizeof(args));
	for (t = 0; t < AS_THREADS + AS_SYNC_THREADS; t++) {
		args[t].s = s;
		args[t].reqs = t < AS_THREADS ? &reqs[t * AS_EACH] : NULL;
		args[t].n = t < AS_THREADS ? AS_EACH : 0;
		pthread_create(&th[t], NULL, t < AS_THREADS ? as_thread :
		    as_sync_thread, &args[t]);
	}
	for (t = 0; t < AS_THREADS + AS_SYNC_THREADS; t++) {
		pthread_join(th[t], NULL);
		refused += args[t].refused;
		sync_fails += args[t].sync_fails;
		if (t >= AS_THREADS)
			for (i = 0; i < AS_EACH; i++)
				all[n++] = args[t].sync_ids[i];
	}
	/* Every thread is back: the last leader ended every append. */
	for (i = 0; i < total; i++) {
		if (reqs[i].calls != 1)
			once = 0;
		if (reqs[i].e != PODIO_OK || reqs[i].id <= 0)
			ok = 0;
		all[n++] = reqs[i].id;
	}
	tap_ok(refused == 0 && sync_fails == 0 && once, "%d threads x %d "
	    "appends without waiting beside %d threads waiting: each done "
	    "callback ran exactly once (%d refused)", AS_THREADS, AS_EACH,
	    AS_SYNC_THREADS, refused);
	qsort(all, n, sizeof(all[0]), cmp_i64);
	for (i = 1; i < n; i++)
		if (all[i] == all[i - 1])
			dups++;
	tap_ok(ok && dups == 0 && count(s, PODIO_SPOOL_ALL) == n,
	    "all %zu acknowledged with distinct ids and stored", n);
	podio_spool_stats(s, &st);
	tap_ok(st.appends == n && st.commits < st.appends, "they shared "
	    "commits (%llu for %llu appends)",
	    (unsigned long long)st.commits, (unsigned long long)st.appends);

	memset(&one, 0, sizeof(one));
	v = NULL;
	{
		struct podio_params *p = podio_params_new(0);
		char reason[128];

		podio_params_parse(p, "type=hook.verify&hook_id=5&code=a", 33,
		    NULL);
		podio_delivery_new(p, &v, reason, sizeof(reason));
	}
	tap_ok(v != NULL && podio_spool_append_delivery_async(s, v, as_done,
	    &one, err, sizeof(err)) == PODIO_ERR_INVALID && one.calls == 0,
	    "a refused append fails at once and never calls back");
	podio_delivery_free(v);

	/* Full disk: the callbacks say so. */
	for (i = 0; i < total; i++) {
		podio_delivery_free(reqs[i].d);
		memset(&reqs[i], 0, sizeof(reqs[i]));
	}
	if (pg_url != NULL) {
		podio_spool_close(s);
		sqlite_only(SQLITE_ONLY("a full disk is made with the page cap "
		    "of SQLite's database file"), "disk full: the done "
		    "callbacks report PODIO_ERR_IO with a message; "
		    "integrity_check after");
		return;
	}
	cap = podio__spool_set_max_pages(s, 1);
	for (i = 0; i < 200; i++) {
		reqs[i].d = as_delivery(7000000 + i);
		if (reqs[i].d == NULL || podio_spool_append_delivery_async(s,
		    reqs[i].d, as_done, &reqs[i], err, sizeof(err)) !=
		    PODIO_OK)
			reqs[i].calls = -100;
	}
	once = 1;
	for (i = 0; i < 200; i++) {
		if (reqs[i].calls != 1)
			once = 0;
		if (reqs[i].e == PODIO_ERR_IO && reqs[i].msg[0] != '\0')
			io++;
	}
	tap_ok(cap > 0 && once && io > 0, "disk full: the done callbacks "
	    "report PODIO_ERR_IO with a message (%d of 200)", io);
	podio__spool_set_max_pages(s, 0);
	for (i = 0; i < 200; i++)
		podio_delivery_free(reqs[i].d);
	podio_spool_close(s);
	tap_ok(integrity_ok(dir), "the database is sound after");
}

/* ------------------------------------------------ the log stays short */

#define WB_THREADS 4
#define WB_EACH 2500

struct wb_arg {
	struct podio_spool *s;
	int t, fails;
};

static volatile int wb_appending;

static void *
wb_append_thread(void *p)
{
	struct wb_arg *a = p;
	int i;

	for (i = 0; i < WB_EACH; i++)
		if (add(a->s, "app.update", 100 + a->t, 0, 0, 0) <= 0)
			a->fails++;
	return NULL;
}

/* Takes and finishes whatever is due until the appenders are done and
 * the spool is empty; a->t counts the events finished. */
static void *
wb_process_thread(void *p)
{
	struct wb_arg *a = p;
	struct podio_spool_batch *b;
	int64_t ids[64 * 4];
	size_t n, i, j, k;
	enum podio_err e;

	for (;;) {
		int appending = __atomic_load_n(&wb_appending,
		    __ATOMIC_ACQUIRE);

		b = NULL;
		n = 0;
		e = podio_spool_take_many(a->s, NULL, 64, &b, &n);
		if (e == PODIO_ERR_NOT_FOUND) {
			struct timespec ts = { 0, 1000000 };

			if (!appending)
				return NULL;
			nanosleep(&ts, NULL);
			continue;
		}
		if (e != PODIO_OK) {
			a->fails++;
			return NULL;
		}
		for (i = k = 0; i < n; i++)
			for (j = 0; j < b[i].n && k < 64 * 4; j++)
				ids[k++] = b[i].events[j].id;
		if (podio_spool_done_many(a->s, ids, k) != PODIO_OK)
			a->fails++;
		a->t += (int)k;
		podio_spool_batches_free(b, n);
	}
}

/*
 * Under a steady stream of appends, with a worker taking and finishing
 * events on a handle of its own, the WAL restarts after the worker's
 * checkpoints instead of growing with every commit: the file stays
 * within twice the threshold of a full copy (4,000 pages of 4 KiB: a
 * reader on an old snapshot may make one copy restart nothing), where a
 * log that never restarts grows past 60 MiB here.  (A log that only
 * grows makes every fdatasync also write the file's new size.)
 */
static void
test_wal_bounded(void)
{
	struct wb_arg ap[WB_THREADS], pr;
	pthread_t th[WB_THREADS], pt;
	struct podio_spool *sa, *sp;
	struct stat sb;
	char dir[512], wal[600];
	int t, fails = 0;
	long long wal_bytes = -1;

	sa = open_or_bail(newdir(dir, sizeof(dir), "walsize"));
	sp = open_or_bail(dir);
	__atomic_store_n(&wb_appending, 1, __ATOMIC_RELEASE);
	memset(&pr, 0, sizeof(pr));
	pr.s = sp;
	pthread_create(&pt, NULL, wb_process_thread, &pr);
	for (t = 0; t < WB_THREADS; t++) {
		memset(&ap[t], 0, sizeof(ap[t]));
		ap[t].s = sa;
		ap[t].t = t;
		pthread_create(&th[t], NULL, wb_append_thread, &ap[t]);
	}
	for (t = 0; t < WB_THREADS; t++) {
		pthread_join(th[t], NULL);
		fails += ap[t].fails;
	}
	__atomic_store_n(&wb_appending, 0, __ATOMIC_RELEASE);
	pthread_join(pt, NULL);
	fails += pr.fails;
	snprintf(wal, sizeof(wal), "%s/spool.db-wal", dir);
	if (stat(wal, &sb) == 0)
		wal_bytes = (long long)sb.st_size;
	tap_ok(fails == 0 && pr.t == WB_THREADS * WB_EACH &&
	    count(sa, PODIO_SPOOL_ALL) == 0, "%d appends beside a worker "
	    "finishing them: all taken and finished once (%d)",
	    WB_THREADS * WB_EACH, pr.t);
	if (pg_url != NULL) {
		podio_spool_close(sp);
		podio_spool_close(sa);
		sqlite_only(SQLITE_ONLY("the size of SQLite's log (WAL) and "
		    "integrity_check"), "the WAL restarts under a steady load; "
		    "the database is sound after");
		return;
	}
	tap_ok(wal_bytes > 0 && wal_bytes < 32 * 1024 * 1024, "the WAL "
	    "restarts under a steady load: %lld bytes after them",
	    wal_bytes);
	podio_spool_close(sp);
	podio_spool_close(sa);
	tap_ok(integrity_ok(dir), "the database is sound after");
}

/* ---------------------------------------------------------------- main */

static void
cleanup(void)
{
	char cmd[400];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
#ifdef HAVE_POSTGRESQL
	/* The database is left as it was given: without the spool. */
	if (pg_url != NULL)
		(void)pg_exec(NULL, PG_DROP);
#endif
}

int
main(void)
{
	const char *t = getenv("TMPDIR"), *seedtext = getenv("PODIO_TEST_SEED");
	unsigned seed = seedtext != NULL ? (unsigned)strtoul(seedtext, NULL,
	    10) : (unsigned)time(NULL) ^ (unsigned)getpid();
	const char *pg = getenv("PODIO_TEST_SPOOL_PG");
	char target[600];

	if (pg != NULL && pg[0] != '\0') {
#ifdef HAVE_POSTGRESQL
		/* The tests keep a spool's location in 512 bytes. */
		if (strlen(pg) >= 500) {
			printf("Bail out! PODIO_TEST_SPOOL_PG is too long\n");
			return 1;
		}
		pg_url = pg;
		tap_diag("every spool in the PostgreSQL database of "
		    "PODIO_TEST_SPOOL_PG");
#else
		printf("1..0 # SKIP built without PostgreSQL (libpq)\n");
		return 0;
#endif
	}
	signal(SIGPIPE, SIG_IGN);
	snprintf(tmpdir, sizeof(tmpdir), "%s/podio-spool-XXXXXX",
	    t != NULL && t[0] == '/' ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		tap_ok(0, "temporary directory: %s", strerror(errno));
		return tap_done();
	}
	snprintf(logpath, sizeof(logpath), "%s/podio.log", tmpdir);
	snprintf(target, sizeof(target), "file:%s", logpath);
	tap_ok(podio_log_set_target(target) == PODIO_OK,
	    "log to a file of the test");

	test_open();
	test_dir_checks();
	test_basic();
	test_dedup();
	test_intake();
	test_large_ids();
	test_wait();
	test_delivery();
	test_order();
	test_retry();
	test_dead();
	test_status_age();
	test_settle();
	test_no_fetch();
	test_app();
	test_revisions();
	test_items_table();
	test_bad();
	test_take_many();
	test_full();
	test_group_commit();
	test_async();
	test_wal_bounded();
	test_thread_take();
	test_pause_procs();
	test_pause_cap_resume();
	test_outage();
	test_lease_expiry();
	test_concurrent_create();
	test_multiprocess();
	test_kill9(seed);

	cleanup();
	return tap_done();
}

/*
 * sqlite.c: the spool's SQLite backend (spool_int.h; spool.h for the
 * contract): opening, the transaction helpers shared with
 * sqlite_queue.c and sqlite_admin.c, and appending.
 *
 * Durability and crash safety are SQLite's: WAL mode with synchronous=FULL
 * syncs the log before a commit returns, and a process killed at any
 * moment leaves either the old or the new state of every transaction.
 * SQLite's own file locks serialise the processes sharing the spool; every
 * write runs in BEGIN IMMEDIATE so that it waits for the write lock (busy
 * timeout) up front instead of failing half-way, after queueing on a
 * lock file so that writers of several processes take turns fairly.
 *
 * Inside one process, one connection serves every thread under db_lock;
 * appends share commits (the queue of spool.c; a batch is written here).
 *
 * The events table holds pending (taken or not), dead and bad events; an
 * event is "in flight" while its lease has not expired.  Dedup keys of
 * item events live in their own table so that a redelivery is recognised
 * after the first copy was processed and removed.
 */
#include <config.h>

#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "event.h"
#include "log.h"
#include "spool.h"
#include "spool_int.h"
#include "sqlite_int.h"
#include "util.h"

#define SPOOL_SCHEMA_VERSION 1
#define SPOOL_DB_NAME "spool.db"
#define SPOOL_LOCK_NAME "spool.lock"
/* The intake of one-shot appends (podio_spool_open_intake()): its own
 * database, format version and lock file. */
#define INTAKE_DB_NAME "intake.db"
#define INTAKE_LOCK_NAME "intake.lock"
#define INTAKE_SCHEMA_VERSION 1
/* Most intake events moved into the spool in one transaction. */
#define INTAKE_IMPORT_CHUNK 256
/* Longest spool directory accepted. */
#define SPOOL_DIR_MAX 4000
/* How long a write waits for another process's write lock. */
#define SPOOL_BUSY_MS 5000
/* WAL pages (of 4 KiB) after which a commit checkpoints: other writes,
 * and appends (see podio__sqlite_commit()). */
#define SPOOL_CKPT_PAGES 1000
#define SPOOL_CKPT_APPEND_PAGES 8000
/* WAL pages past which a processor's commit copies the whole log with
 * the lock file held, so that it restarts (see podio__sqlite_commit()). */
#define SPOOL_CKPT_FULL_PAGES 4000
/* How long a checkpoint that holds the writers waits for old readers. */
#define SPOOL_CKPT_BUSY_MS 20
/* WAL pages past which a one-shot process starts the log over after its
 * append (see sqlite_tidy_oneshot()): 2 MiB, some 50 deliveries. */
#define SPOOL_CKPT_ONESHOT_PAGES 512

/* See spool_int.h. */
enum podio_err
podio__sqlite_map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_NOMEM:
		return PODIO_ERR_NOMEM;
	case SQLITE_TOOBIG:
		return PODIO_ERR_TOO_LARGE;
	default:
		return PODIO_ERR_IO;
	}
}

int
podio__sqlite_exec(struct spool_sqlite *s, const char *sql)
{
	return sqlite3_exec(s->db, sql, NULL, NULL, NULL);
}

/*
 * Write transactions, under db_lock.  Writers of every process first
 * queue on an flock() of DIR/spool.lock and only then ask SQLite for its
 * write lock: SQLite's busy handler polls with sleeps of up to 100 ms and
 * lets a busy writer starve another process for seconds, while the kernel
 * wakes a waiter on flock() as soon as the lock is free.  The kernel drops
 * the lock of a killed process.  Without a lock file (it could not be
 * opened) SQLite's locking alone still keeps the store correct.
 */
/* Sets synchronous to FULL (full 1) or NORMAL for the next commits;
 * outside a transaction.  Returns an SQLite code. */
static int
spool_set_sync(struct spool_sqlite *s, int full)
{
	int rc;

	if (s->sync_full == full)
		return SQLITE_OK;
	rc = podio__sqlite_exec(s, full ? "PRAGMA synchronous = FULL" :
	    "PRAGMA synchronous = NORMAL");
	if (rc == SQLITE_OK)
		s->sync_full = full;
	return rc;
}

static int64_t
spool_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Whether an append of this process waits for the write lock now. */
static int
spool_append_waits(struct spool_sqlite *s)
{
	return atomic_load(s->appends_waiting) > 0;
}

/*
 * The counts of waiting appends, one per spool (its lock file's device
 * and inode) that this process opened, shared by its handles; entries
 * stay for the life of the process.  A process with more spools than
 * entries gives the others a count per handle.
 */
#define SPOOL_WAITS_MAX 16
static struct {
	dev_t dev;
	ino_t ino;
	_Atomic int n;
} spool_waits[SPOOL_WAITS_MAX];
static size_t spool_nwaits;
static pthread_mutex_t spool_waits_lock = PTHREAD_MUTEX_INITIALIZER;

/* Points s->appends_waiting at the count of its spool. */
static void
spool_find_waits(struct spool_sqlite *s)
{
	struct stat st;
	size_t i;

	s->appends_waiting = &s->own_waiting;
	if (s->lock_fd < 0 || fstat(s->lock_fd, &st) != 0)
		return;
	pthread_mutex_lock(&spool_waits_lock);
	for (i = 0; i < spool_nwaits; i++)
		if (spool_waits[i].dev == st.st_dev &&
		    spool_waits[i].ino == st.st_ino)
			break;
	if (i == spool_nwaits && i < SPOOL_WAITS_MAX) {
		spool_waits[i].dev = st.st_dev;
		spool_waits[i].ino = st.st_ino;
		spool_nwaits++;
	}
	if (i < spool_nwaits)
		s->appends_waiting = &spool_waits[i].n;
	pthread_mutex_unlock(&spool_waits_lock);
}

int
podio__sqlite_yield_due(struct spool_sqlite *s)
{
	int64_t now;

	if (s->lazy_ns == 0)
		return 0;
	now = spool_mono_ns();
	return now - s->lazy_ns >= SPOOL_YIELD_AFTER_NS &&
	    spool_append_waits(s);
}

void
podio__sqlite_yield_wait(struct spool_sqlite *s)
{
	int64_t until = spool_mono_ns() + 2000000;
	struct timespec nap = { 0, 50000 };

	pthread_mutex_unlock(&s->db_lock);
	while (spool_append_waits(s) && spool_mono_ns() < until)
		nanosleep(&nap, NULL);
	pthread_mutex_lock(&s->db_lock);
}

/* The write transaction of podio__sqlite_begin(),
 * podio__sqlite_begin_lazy() and the appends (synchronous FULL when
 * full; lazy: a processor's, which makes way for waiting appends). */
static int
spool_begin(struct spool_sqlite *s, int full, int lazy)
{
	int rc;

	if ((rc = spool_set_sync(s, full)) != SQLITE_OK)
		return rc;
	if (s->lock_fd >= 0 && !s->locked) {
		while (flock(s->lock_fd, LOCK_EX) == -1 && errno == EINTR)
			;
		s->locked = 1;
	}
	s->lazy_ns = lazy ? spool_mono_ns() : 0;
	if ((rc = podio__sqlite_exec(s, "BEGIN IMMEDIATE")) != SQLITE_OK &&
	    s->locked) {
		flock(s->lock_fd, LOCK_UN);
		s->locked = 0;
	}
	return rc;
}

int
podio__sqlite_begin(struct spool_sqlite *s)
{
	return spool_begin(s, 1, 0);
}

int
podio__sqlite_begin_lazy(struct spool_sqlite *s)
{
	return spool_begin(s, 0, 1);
}

/*
 * Makes the appends' commit durable: a sync of the WAL file, after the
 * commit wrote its frames (synchronous NORMAL) and the write lock was let
 * go, so that other writers go on meanwhile and the syncs of several
 * processes overlap.  The sync covers every frame written before it, by
 * any process.  The log only starts over once a checkpoint copied all of
 * it into the database and synced that (at synchronous NORMAL or FULL,
 * which every connection of the spool uses), so frames overwritten
 * before this sync were durable already.  It runs also when every
 * request was a duplicate: the event found may be another process's,
 * committed but not yet synced.  Returns an SQLite code.
 */
static int
spool_sync_wal(struct spool_sqlite *s)
{
	sqlite3_file *wal = NULL;
	int rc;

	rc = sqlite3_file_control(s->db, "main", SQLITE_FCNTL_JOURNAL_POINTER,
	    &wal);
	if (rc != SQLITE_OK)
		return rc;
	if (wal == NULL || wal->pMethods == NULL)
		return SQLITE_IOERR_FSYNC;
	return wal->pMethods->xSync(wal, SQLITE_SYNC_FULL);
}

/*
 * Called by SQLite after each commit with the number of pages in the WAL.
 * It replaces SQLite's automatic checkpoint, which would copy the log
 * into the database inside the commit of whichever append crossed the
 * threshold (and, here, with the lock file still held).
 */
static int
wal_hook(void *arg, sqlite3 *db, const char *name, int pages)
{
	struct spool_sqlite *s = arg;

	(void)db;
	(void)name;
	s->wal_pages = pages;
	return SQLITE_OK;
}

/*
 * Copies the whole WAL into the database while this handle holds the lock
 * file, so that no writer appends meanwhile: the next write then starts
 * the log over at its beginning.  A log that only grows makes each
 * commit's fdatasync also commit the file system's journal for the new
 * size, which takes twice as long as overwriting blocks already there.
 * Readers on an older snapshot are waited for briefly; if one stays, the
 * checkpoint copies what it can and the log restarts another time.
 */
static void
spool_checkpoint_full(struct spool_sqlite *s)
{
	sqlite3_busy_timeout(s->db, SPOOL_CKPT_BUSY_MS);
	(void)sqlite3_wal_checkpoint_v2(s->db, "main",
	    SQLITE_CHECKPOINT_FULL, NULL, NULL);
	sqlite3_busy_timeout(s->db, SPOOL_BUSY_MS);
}

/*
 * Commits; on failure the transaction stays open for
 * podio__sqlite_abort().  After the commit, a WAL that grew by the
 * threshold since this handle's last checkpoint is checkpointed (the
 * threshold is counted from the last checkpoint so that not every commit
 * copies): PASSIVE-ly, after releasing the lock file, so that appends of
 * every process go on meanwhile (a log copied in full restarts at the
 * next write that finds no reader on it).  The processors' handles copy
 * at a lower threshold than appends, which pay for a checkpoint only
 * when nothing else runs them.  A log that grew past
 * SPOOL_CKPT_FULL_PAGES all the same (passive copies seldom catch up
 * under a steady load) is copied in full by the next processor's commit
 * with the lock
 * file still held (spool_checkpoint_full()), which holds up the appends
 * for a few milliseconds.
 */
int
podio__sqlite_commit(struct spool_sqlite *s)
{
	int rc, every, due, full;

	if ((rc = podio__sqlite_exec(s, "COMMIT")) != SQLITE_OK)
		return rc;
	every = s->appending ? SPOOL_CKPT_APPEND_PAGES : SPOOL_CKPT_PAGES;
	if (s->wal_pages < s->ckpt_pages)
		s->ckpt_pages = 0;       /* the log restarted */
	due = s->wal_pages >= s->ckpt_pages + every;
	if (due)
		s->ckpt_pages = s->wal_pages;
	full = !s->appending && s->wal_pages >= SPOOL_CKPT_FULL_PAGES;
	if (full)
		spool_checkpoint_full(s);
	if (s->locked) {
		flock(s->lock_fd, LOCK_UN);
		s->locked = 0;
	}
	if (due && !full)
		(void)sqlite3_wal_checkpoint_v2(s->db, "main",
		    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	return SQLITE_OK;
}

/* Sets the mark name (the marks table) to value, inside the caller's
 * write transaction.  Returns an SQLite code. */
static int
mark_put(struct spool_sqlite *s, const char *name, int64_t value)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = podio__sqlite_prep(s, "INSERT INTO marks (name, value)"
	    " VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE SET"
	    " value = excluded.value", &st)) != SQLITE_OK)
		return rc;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, value);
	rc = sqlite3_step(st);
	podio__sqlite_fin(s, st);
	return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/*
 * podio_spool_tidy_oneshot().  A process that opens the spool while no
 * other has it open rebuilds SQLite's WAL index by reading the log from
 * its header to the last valid frame, and that index starts with no frame
 * copied into the database: whatever an earlier process copied, the new
 * one's first write appends to the log rather than start it over, so a
 * log that only one-shot processes write keeps every frame valid and is
 * read whole by each of them.  Checkpointing alone does not help; what
 * helps is starting the log over: a write whose first frame finds the
 * whole log copied writes a new header with new salts, and the recovery
 * of the next process stops at the first frame of the old ones.
 *
 * So, when the last commit left more than SPOOL_CKPT_ONESHOT_PAGES: a
 * PASSIVE checkpoint copies the log without holding up anybody; then,
 * only if the lock file is free at once (else another process writes and
 * this one leaves), RESTART copies what came meanwhile and waits at most
 * SPOOL_CKPT_BUSY_MS for readers of the old frames, and a one-row synced
 * write (the mark "wal_restarted") starts the log over.  The file keeps
 * its size: the appends that follow overwrite blocks already there, as
 * with SQLITE_FCNTL_PERSIST_WAL.  Every event was durable before, and
 * stays so: SQLite starts the log over only once a checkpoint copied all
 * of it into the database and synced that.
 */
static void
sqlite_tidy_oneshot(struct podio_spool *sp)
{
	struct spool_sqlite *s = SQ(sp);
	int rc, log = -1, copied = -1;

	pthread_mutex_lock(&s->db_lock);
	if (s->wal_pages < SPOOL_CKPT_ONESHOT_PAGES ||
	    !sqlite3_get_autocommit(s->db)) {
		/* Small, or a transaction of the caller's is open: not ours
		 * to end. */
		pthread_mutex_unlock(&s->db_lock);
		return;
	}
	sqlite3_busy_timeout(s->db, SPOOL_CKPT_BUSY_MS);
	(void)sqlite3_wal_checkpoint_v2(s->db, "main",
	    SQLITE_CHECKPOINT_PASSIVE, NULL, NULL);
	if (s->lock_fd >= 0) {
		while ((rc = flock(s->lock_fd, LOCK_EX | LOCK_NB)) == -1 &&
		    errno == EINTR)
			;
		if (rc == -1)
			goto done;
		s->locked = 1;
	}
	rc = sqlite3_wal_checkpoint_v2(s->db, "main",
	    SQLITE_CHECKPOINT_RESTART, &log, &copied);
	if (rc != SQLITE_OK || log != copied)
		goto done;
	if ((rc = podio__sqlite_begin(s)) != SQLITE_OK)
		goto done;
	if (mark_put(s, "wal_restarted", podio__spool_now(sp)) == SQLITE_OK &&
	    podio__sqlite_commit(s) == SQLITE_OK)
		podio__debug("spool %s: the log of %d pages was copied "
		    "and starts over", s->base.path, log);
done:
	podio__sqlite_abort(s);
	sqlite3_busy_timeout(s->db, SPOOL_BUSY_MS);
	pthread_mutex_unlock(&s->db_lock);
}

/* Rolls back an open transaction (if any) and drops the lock. */
void
podio__sqlite_abort(struct spool_sqlite *s)
{
	if (!sqlite3_get_autocommit(s->db))
		podio__sqlite_exec(s, "ROLLBACK");
	if (s->locked) {
		flock(s->lock_fd, LOCK_UN);
		s->locked = 0;
	}
}

/*
 * Ends a failed operation under db_lock: turns an SQLite failure rc into
 * a logged error (what names the operation) or keeps e for other
 * failures, and rolls back an open transaction.  Returns the error.
 */
enum podio_err
podio__sqlite_failed(struct spool_sqlite *s, const char *what, int rc,
    enum podio_err e)
{
	if (rc != SQLITE_OK && rc != SQLITE_ROW && rc != SQLITE_DONE) {
		e = podio__sqlite_map_rc(rc);
		podio__err("spool %s: %s: %s (%s)", s->base.path, what,
		    sqlite3_errmsg(s->db), sqlite3_errstr(rc));
	}
	podio__sqlite_abort(s);
	return e;
}

/* Most statements a handle keeps prepared (the spool uses about 30). */
#define SPOOL_STMTS_MAX 64

int
podio__sqlite_prep(struct spool_sqlite *s, const char *sql, sqlite3_stmt **st)
{
	struct spool_stmt *c;
	size_t i;
	int rc;

	*st = NULL;
	for (i = 0; i < s->nstmts; i++) {
		c = &s->stmts[i];
		if (!c->in_use && strcmp(c->sql, sql) == 0) {
			c->in_use = 1;
			*st = c->st;
			return SQLITE_OK;
		}
	}
	if (s->stmts == NULL && (s->stmts = calloc(SPOOL_STMTS_MAX,
	    sizeof(*s->stmts))) == NULL)
		return sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	if (s->nstmts == SPOOL_STMTS_MAX)
		return sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	c = &s->stmts[s->nstmts];
	if ((c->sql = podio__strdup(sql)) == NULL)
		return sqlite3_prepare_v2(s->db, sql, -1, st, NULL);
	rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
	    &c->st, NULL);
	if (rc != SQLITE_OK || c->st == NULL) {
		/* A failed or empty statement is not kept. */
		sqlite3_finalize(c->st);
		c->st = NULL;
		free(c->sql);
		c->sql = NULL;
		return rc;
	}
	c->in_use = 1;
	s->nstmts++;
	*st = c->st;
	return SQLITE_OK;
}

void
podio__sqlite_fin(struct spool_sqlite *s, sqlite3_stmt *st)
{
	size_t i;

	if (st == NULL)
		return;
	for (i = 0; i < s->nstmts; i++)
		if (s->stmts[i].st == st) {
			sqlite3_reset(st);
			sqlite3_clear_bindings(st);
			s->stmts[i].in_use = 0;
			return;
		}
	sqlite3_finalize(st);
}

/* Binds a 64-bit id: SQLite integers are signed, so ids above INT64_MAX
 * are kept as their two's complement bit pattern (only equality matters). */
int
podio__sqlite_bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
	return sqlite3_bind_int64(st, i, (sqlite3_int64)v);
}

int
podio__sqlite_bind_text(sqlite3_stmt *st, int i, const char *text)
{
	if (text == NULL)
		return sqlite3_bind_null(st, i);
	return sqlite3_bind_text(st, i, text, -1, SQLITE_STATIC);
}

/* ------------------------------------------------------------ open/close */

/*
 * Creates dir and its missing parents with mode 0700 and syncs the parent
 * of each directory made, so the path survives a crash.  Returns 0, or -1
 * with errno set.
 */
static int
mkdir_p(const char *dir)
{
	char buf[SPOOL_DIR_MAX + 1];
	struct stat sb;
	size_t i, len = strlen(dir);
	int fd;

	if (len > SPOOL_DIR_MAX) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(buf, dir, len + 1);
	for (i = 1; i <= len; i++) {
		if (buf[i] != '/' && buf[i] != '\0')
			continue;
		buf[i] = '\0';
		if (mkdir(buf, 0700) == 0) {
			/* Sync the parent that now holds the new entry. */
			char *slash = strrchr(buf, '/');
			const char *parent = "/";
			char save = 0;

			if (slash != NULL && slash != buf) {
				save = *slash;
				*slash = '\0';
				parent = buf;
			} else if (slash == NULL)
				parent = ".";
			if ((fd = open(parent, O_RDONLY | O_DIRECTORY |
			    O_CLOEXEC)) != -1) {
				(void)fsync(fd);
				close(fd);
			}
			if (save != 0)
				*slash = save;
		} else if (errno != EEXIST)
			return -1;
		buf[i] = dir[i];
	}
	if (stat(dir, &sb) == -1)
		return -1;
	if (!S_ISDIR(sb.st_mode)) {
		errno = ENOTDIR;
		return -1;
	}
	return 0;
}

/*
 * Whether the spool directory dir may be trusted: whoever can write in it
 * can plant events that run the callbacks without the secret, or swap the
 * database for a link to another file.  It must be a directory owned by
 * the user running this program, not writable by group or others, and
 * the spool's files in it, where they exist, regular files of that user
 * (a symbolic link is refused, never followed).  Once the directory
 * passes, nobody else can put a link there before SQLite opens the
 * files.  The directory itself may be reached through a link (a spool
 * moved to another disk).  Returns 0, or -1 with err saying what to fix.
 */
static int
spool_check_dir(const char *dir, char *err, size_t errlen)
{
	static const char *const names[] = {
		SPOOL_DB_NAME, SPOOL_DB_NAME "-wal", SPOOL_DB_NAME "-shm",
		SPOOL_LOCK_NAME, "cgi-worker.lock", INTAKE_DB_NAME,
		INTAKE_DB_NAME "-wal", INTAKE_DB_NAME "-shm", INTAKE_LOCK_NAME
	};
	char path[SPOOL_DIR_MAX + 32];
	struct stat st;
	uid_t me = geteuid();
	size_t i;

	if (stat(dir, &st) != 0) {
		podio__spool_set_err(err, errlen, "spool %s: %s", dir,
		    strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		podio__spool_set_err(err, errlen, "spool %s: not a directory",
		    dir);
		return -1;
	}
	if (st.st_uid != me) {
		podio__spool_set_err(err, errlen, "spool %s: the directory is "
		    "owned by uid %lu, not by uid %lu that runs this program: "
		    "run podio-webhook as the user that owns it (runuser -u "
		    "USER -- podio-webhook ...), or give the directory to "
		    "this user (chown)", dir, (unsigned long)st.st_uid,
		    (unsigned long)me);
		return -1;
	}
	if ((st.st_mode & (S_IWGRP | S_IWOTH)) != 0) {
		podio__spool_set_err(err, errlen, "spool %s: the directory's "
		    "mode %04o lets group or others write in it, and so plant "
		    "events: chmod go-w %s (0700 is best)", dir,
		    (unsigned)(st.st_mode & 07777), dir);
		return -1;
	}
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		if (lstat(path, &st) != 0) {
			if (errno == ENOENT)
				continue;
			podio__spool_set_err(err, errlen, "spool %s: %s",
			    path, strerror(errno));
			return -1;
		}
		if (S_ISLNK(st.st_mode) || !S_ISREG(st.st_mode)) {
			podio__spool_set_err(err, errlen, "spool %s: %s, not a "
			    "regular file: remove it", path,
			    S_ISLNK(st.st_mode) ? "a symbolic link" :
			    "something else");
			return -1;
		}
		if (st.st_uid != me) {
			podio__spool_set_err(err, errlen, "spool %s: owned by "
			    "uid %lu, not by uid %lu that runs this program: "
			    "run podio-webhook as the owner of the spool, or "
			    "chown the directory and its files", path,
			    (unsigned long)st.st_uid, (unsigned long)me);
			return -1;
		}
	}
	return 0;
}

/* See spool.h. */
enum podio_err
podio_spool_check(const char *dir, char *err, size_t errlen)
{
	struct stat st;

	if (err != NULL && errlen > 0)
		err[0] = '\0';
	/* What is not a directory (yet) is for podio_spool_open() to create
	 * or to fail on, as an I/O error. */
	if (dir == NULL || dir[0] == '\0' || stat(dir, &st) != 0 ||
	    !S_ISDIR(st.st_mode))
		return PODIO_OK;
	return spool_check_dir(dir, err, errlen) == 0 ? PODIO_OK :
	    PODIO_ERR_CONFIG;
}

/*
 * Creates the database file with mode 0600 when it does not exist (SQLite
 * would make it 0644, and gives its -wal and -shm files the mode of the
 * database), then syncs the directory so the new name is durable.
 * Returns 0, or -1 with errno set.
 */
static int
create_db_file(const char *dir, const char *path)
{
	int fd;

	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd == -1)
		return errno == EEXIST ? 0 : -1;
	close(fd);
	if ((fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return -1;
	if (fsync(fd) == -1) {
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static const char *const schema_sql =
	"CREATE TABLE events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type TEXT NOT NULL,"
	" hook_id INTEGER NOT NULL,"
	" item_id INTEGER,"
	" item_revision_id INTEGER,"
	" app_id INTEGER,"
	" event TEXT NOT NULL,"
	" received_at INTEGER NOT NULL,"
	" state TEXT NOT NULL DEFAULT 'pending',"
	" attempts INTEGER NOT NULL DEFAULT 0,"
	" failures INTEGER NOT NULL DEFAULT 0,"
	" leases INTEGER NOT NULL DEFAULT 0,"
	" next_at INTEGER NOT NULL,"
	" lease_owner TEXT,"
	" lease_until INTEGER,"
	" last_error TEXT,"
	" failed_at INTEGER,"
	" dead_at INTEGER,"
	" progress TEXT);"
	"CREATE INDEX events_state ON events(state, id);"
	"CREATE INDEX events_item ON events(item_id, id)"
	" WHERE item_id IS NOT NULL;"
	"CREATE TABLE seen ("
	" type TEXT NOT NULL,"
	" hook_id INTEGER NOT NULL,"
	" item_id INTEGER NOT NULL,"
	" item_revision_id INTEGER NOT NULL,"
	" event_id INTEGER NOT NULL,"
	" seen_at INTEGER NOT NULL,"
	" PRIMARY KEY (type, hook_id, item_id, item_revision_id))"
	" WITHOUT ROWID;"
	"CREATE INDEX seen_at ON seen(seen_at);"
	"CREATE TABLE hook_apps ("
	" hook_id INTEGER PRIMARY KEY,"
	" app_id INTEGER NOT NULL,"
	" learned_at INTEGER NOT NULL);"
	"CREATE TABLE ratelimit ("
	" cred TEXT NOT NULL,"
	" class TEXT NOT NULL,"
	" paused_until INTEGER NOT NULL DEFAULT 0,"
	" remaining INTEGER,"
	" lim INTEGER,"
	" seen_at INTEGER,"
	" PRIMARY KEY (cred, class)) WITHOUT ROWID;"
	"PRAGMA user_version = 1;";

/* The pending events of the items where says as rows of items (none for
 * an item with none); ITEMS_REFRESH(x) does so for item x alone, in the
 * triggers below. */
#define ITEMS_FILL(where) \
	" INSERT INTO items (item_id, head, first_at, last_at, fetch)" \
	" SELECT g.item_id, g.head, h.received_at, g.last, g.fetch FROM" \
	" (SELECT item_id, min(id) AS head, max(received_at) AS last," \
	"  sum(type IN ('item.create', 'item.update')) AS fetch" \
	"  FROM events WHERE " where \
	"  AND typeof(item_id) = 'integer' GROUP BY item_id) g" \
	" JOIN events h ON h.id = g.head;"
#define ITEMS_REFRESH(x) \
	" DELETE FROM items WHERE item_id = " x ";" \
	ITEMS_FILL("item_id = " x " AND +state = 'pending'")

/*
 * Added within version 1 (an older binary keeps it up to date, the
 * triggers being part of the database): one row per item with pending
 * events, for the takes (spool_queue.c), which then look at each item
 * once instead of at each of its events.  head is its oldest pending
 * event, first_at when that was received, last_at when the newest was
 * (or one since removed: a unit leaves from its head, so this is rare and
 * only makes the item look less settled), fetch how many of them need the
 * item fetched.  The triggers keep it in step with events in the same
 * transaction as each change: an insert and the removal of an event (the
 * hot paths) touch the item's row and its next event only, a change of
 * state counts the item's events again.  It is filled from the events
 * when it is created.  Also the partial index of the pending events of no
 * item.  Returns an SQLite code.
 */
static int
ensure_items(struct spool_sqlite *s)
{
	static const char ddl[] =
	    "CREATE TABLE items ("
	    " item_id INTEGER PRIMARY KEY,"
	    " head INTEGER NOT NULL,"
	    " first_at INTEGER NOT NULL,"
	    " last_at INTEGER NOT NULL,"
	    " fetch INTEGER NOT NULL);"
	    "CREATE INDEX items_head ON items(head, first_at, last_at, fetch);"
	    "CREATE INDEX items_nofetch ON items(head, first_at, last_at)"
	    " WHERE fetch = 0;"
	    "CREATE INDEX events_noitem ON events(id)"
	    " WHERE state = 'pending' AND item_id IS NULL;"
	    ITEMS_FILL("state = 'pending'")
	    "CREATE TRIGGER items_insert AFTER INSERT ON events"
	    " WHEN NEW.state = 'pending' AND typeof(NEW.item_id) = 'integer'"
	    " BEGIN"
	    " INSERT INTO items (item_id, head, first_at, last_at, fetch)"
	    " VALUES (NEW.item_id, NEW.id, NEW.received_at, NEW.received_at,"
	    "  NEW.type IN ('item.create', 'item.update'))"
	    " ON CONFLICT (item_id) DO UPDATE SET"
	    "  head = min(head, excluded.head),"
	    "  first_at = CASE WHEN excluded.head < head"
	    "   THEN excluded.first_at ELSE first_at END,"
	    "  last_at = max(last_at, excluded.last_at),"
	    "  fetch = fetch + excluded.fetch;"
	    " END;"
	    "CREATE TRIGGER items_delete AFTER DELETE ON events"
	    " WHEN OLD.state = 'pending' AND typeof(OLD.item_id) = 'integer'"
	    " BEGIN"
	    " UPDATE items SET fetch = fetch -"
	    "  (OLD.type IN ('item.create', 'item.update'))"
	    " WHERE item_id = OLD.item_id;"
	    " UPDATE items SET"
	    "  head = coalesce((SELECT id FROM events WHERE item_id ="
	    "   OLD.item_id AND +state = 'pending' ORDER BY id LIMIT 1), 0),"
	    "  first_at = coalesce((SELECT received_at FROM events WHERE"
	    "   item_id = OLD.item_id AND +state = 'pending' ORDER BY id"
	    "   LIMIT 1), 0)"
	    " WHERE item_id = OLD.item_id AND head = OLD.id;"
	    " DELETE FROM items WHERE item_id = OLD.item_id AND head = 0;"
	    " END;"
	    "CREATE TRIGGER items_update AFTER UPDATE OF state, item_id,"
	    " received_at, type ON events"
	    " WHEN (OLD.state = 'pending' AND typeof(OLD.item_id) = 'integer')"
	    " OR (NEW.state = 'pending' AND typeof(NEW.item_id) = 'integer')"
	    " BEGIN" ITEMS_REFRESH("OLD.item_id") ITEMS_REFRESH("NEW.item_id")
	    " END;";
	sqlite3_stmt *st = NULL;
	int rc, have;

	if ((rc = podio__sqlite_prep(s, "SELECT count(*) FROM sqlite_master"
	    " WHERE type = 'table' AND name = 'items'", &st)) != SQLITE_OK)
		return rc;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		podio__sqlite_fin(s, st);
		return rc;
	}
	have = sqlite3_column_int(st, 0) > 0;
	podio__sqlite_fin(s, st);
	return have ? SQLITE_OK : podio__sqlite_exec(s, ddl);
}

/*
 * Creates the schema in an empty database, or checks the version of an
 * existing one, in one write transaction (several processes may open a
 * new spool at once).  Returns an SQLite code; *newer is set when the
 * database comes from a newer version.
 */
/* The database's user_version (the schema's version) into *version.
 * Returns an SQLite code. */
static int
read_version(struct spool_sqlite *s, int *version)
{
	sqlite3_stmt *st = NULL;
	int rc;

	if ((rc = podio__sqlite_prep(s, "PRAGMA user_version", &st)) !=
	    SQLITE_OK)
		return rc;
	if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		*version = sqlite3_column_int(st, 0);
		rc = SQLITE_OK;
	}
	podio__sqlite_fin(s, st);
	return rc;
}

static int
ensure_schema(struct spool_sqlite *s, int *newer)
{
	sqlite3_stmt *st = NULL;
	int rc, version;

	*newer = 0;
	/* The common case, a spool this version made: seen with a read,
	 * without queueing for the write lock (a CGI run opens the spool
	 * for each delivery). */
	if ((rc = podio__sqlite_prep(s, "SELECT (SELECT user_version FROM"
	    " pragma_user_version), (SELECT count(*) FROM sqlite_master"
	    " WHERE name IN ('events_nofetch', 'items', 'items_head',"
	    " 'items_nofetch', 'events_noitem', 'items_insert',"
	    " 'items_delete', 'items_update', 'revisions', 'revisions_at',"
	    " 'marks'))", &st)) != SQLITE_OK)
		return rc;
	if ((rc = sqlite3_step(st)) != SQLITE_ROW) {
		podio__sqlite_fin(s, st);
		return rc;
	}
	version = sqlite3_column_int(st, 0);
	rc = sqlite3_column_int(st, 1);
	podio__sqlite_fin(s, st);
	st = NULL;
	if (version == SPOOL_SCHEMA_VERSION && rc == 11)
		return SQLITE_OK;
	if ((rc = podio__sqlite_begin(s)) != SQLITE_OK)
		return rc;
	if ((rc = read_version(s, &version)) != SQLITE_OK)
		goto fail;
	if (version > SPOOL_SCHEMA_VERSION) {
		*newer = 1;
		rc = SQLITE_OK;
		goto fail;
	}
	if (version == 0 &&
	    (rc = podio__sqlite_exec(s, schema_sql)) != SQLITE_OK)
		goto fail;
	/* Added within version 1 (an older binary keeps it up to date like
	 * any index): the events that need no item fetch, for the takes
	 * while the fetches are held (spool_queue.c). */
	if ((rc = podio__sqlite_exec(s, "CREATE INDEX IF NOT EXISTS"
	    " events_nofetch ON events(id) WHERE state = 'pending'"
	    " AND type NOT IN ('item.create', 'item.update')")) != SQLITE_OK)
		goto fail;
	if ((rc = ensure_items(s)) != SQLITE_OK)
		goto fail;
	/* Added within version 1 (an older binary leaves them alone): the
	 * revision of each item last fetched and the named times
	 * (sqlite_admin.c). */
	if ((rc = podio__sqlite_exec(s, "CREATE TABLE IF NOT EXISTS"
	    " revisions (item_id INTEGER PRIMARY KEY,"
	    " revision INTEGER NOT NULL, fetched_at INTEGER NOT NULL);"
	    "CREATE INDEX IF NOT EXISTS revisions_at"
	    " ON revisions(fetched_at);"
	    "CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY,"
	    " value INTEGER NOT NULL) WITHOUT ROWID;")) != SQLITE_OK)
		goto fail;
	return podio__sqlite_commit(s);
fail:
	podio__sqlite_fin(s, st);
	podio__sqlite_abort(s);
	return rc;
}

/*
 * The intake's schema: the events of one-shot appends in their order
 * (AUTOINCREMENT: an id is never given twice, so a mark of the last one
 * moved stays right after the intake was emptied), and in marks the
 * intake's generation, a random number drawn when it is created, by
 * which the spool knows an intake made anew.
 */
static const char *const intake_sql =
	"CREATE TABLE IF NOT EXISTS intake ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" type TEXT NOT NULL, hook_id INTEGER NOT NULL, item_id INTEGER,"
	" item_revision_id INTEGER, app_id INTEGER, event TEXT NOT NULL,"
	" received_at INTEGER NOT NULL);"
	"CREATE TABLE IF NOT EXISTS marks (name TEXT PRIMARY KEY,"
	" value INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO marks (name, value) VALUES ('generation', random())"
	" ON CONFLICT (name) DO NOTHING;"
	"PRAGMA user_version = 1;";

/* ensure_schema() for an intake: its version read, the schema made when
 * missing. */
static int
ensure_intake(struct spool_sqlite *s, int *newer)
{
	int rc, version, pass;

	*newer = 0;
	for (pass = 0; pass < 2; pass++) {
		if (pass == 1 && (rc = podio__sqlite_begin(s)) != SQLITE_OK)
			return rc;
		if ((rc = read_version(s, &version)) != SQLITE_OK)
			goto fail;
		if (version > INTAKE_SCHEMA_VERSION) {
			*newer = 1;
			goto fail;
		}
		if (version == INTAKE_SCHEMA_VERSION) {
			podio__sqlite_abort(s);
			return SQLITE_OK;
		}
	}
	if ((rc = podio__sqlite_exec(s, intake_sql)) != SQLITE_OK)
		goto fail;
	return podio__sqlite_commit(s);
fail:
	podio__sqlite_abort(s);
	return rc;
}

static void sqlite_close(struct podio_spool *sp);
static long sqlite_set_max_pages(struct podio_spool *sp, long max_pages);
static void sqlite_tidy_oneshot(struct podio_spool *sp);

/* A handle of the intake appends, and nothing else. */
static const struct spool_ops sqlite_intake_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.append = podio__sqlite_append,
	.tidy_oneshot = sqlite_tidy_oneshot,
	.set_max_pages = sqlite_set_max_pages,
};

static const struct spool_ops sqlite_ops = {
	.name = "sqlite",
	.close = sqlite_close,
	.append = podio__sqlite_append,
	.take = podio__sqlite_take,
	.next_due = podio__sqlite_next_due,
	.pending_items = podio__sqlite_pending_items,
	.learn_app = podio__sqlite_learn_app,
	.note_revisions = podio__sqlite_note_revisions,
	.fetched_revisions = podio__sqlite_fetched_revisions,
	.set_mark = podio__sqlite_set_mark,
	.get_mark = podio__sqlite_get_mark,
	.done_many = podio__sqlite_done_many,
	.change = podio__sqlite_change,
	.status = podio__sqlite_status,
	.list = podio__sqlite_list,
	.show = podio__sqlite_show,
	.replay = podio__sqlite_replay,
	.purge = podio__sqlite_purge,
	.forget = podio__sqlite_forget,
	.reclaim = podio__sqlite_reclaim,
	.set_pause = podio__sqlite_set_pause,
	.get_pause = podio__sqlite_get_pause,
	.record_remaining = podio__sqlite_record_remaining,
	.get_remaining = podio__sqlite_get_remaining,
	.get_outage = podio__sqlite_get_outage,
	.set_outage = podio__sqlite_set_outage,
	.claim_probe = podio__sqlite_claim_probe,
	.release_probe = podio__sqlite_release_probe,
	.end_outage = podio__sqlite_end_outage,
	.resume = podio__sqlite_resume,
	.tidy_oneshot = sqlite_tidy_oneshot,
	.set_max_pages = sqlite_set_max_pages,
};

/*
 * Opens DIR/spool.db, or DIR/intake.db when intake, creating the
 * directory, the file and the schema as needed; *out receives the handle.
 * err as for podio_spool_open().
 */
static enum podio_err
sqlite_open_file(const char *dir, int intake, struct spool_sqlite **out,
    char *err, size_t errlen)
{
	struct spool_sqlite *s = NULL;
	sqlite3_stmt *st = NULL;
	enum podio_err e = PODIO_ERR_IO;
	const char *name = intake ? INTAKE_DB_NAME : SPOOL_DB_NAME;
	size_t dlen;
	int rc, newer, one = 1;

	*out = NULL;
	if ((dlen = strlen(dir)) > SPOOL_DIR_MAX) {
		podio__spool_set_err(err, errlen, "spool: directory name too long");
		return PODIO_ERR_INVALID;
	}
	if ((s = calloc(1, sizeof(*s))) == NULL)
		goto nomem;
	s->lock_fd = -1;
	s->appends_waiting = &s->own_waiting;
	s->intake = intake;
	s->in_mark = -1;
	pthread_mutex_init(&s->db_lock, NULL);
	podio__spool_base_init(&s->base, intake ? &sqlite_intake_ops :
	    &sqlite_ops);
	s->base.intake = intake;
	if ((s->dir = podio__strdup(dir)) == NULL ||
	    (s->base.path = malloc(dlen + 2 + strlen(name))) == NULL)
		goto nomem;
	snprintf(s->base.path, dlen + 2 + strlen(name), "%s/%s", dir, name);

	if (mkdir_p(dir) == -1) {
		podio__spool_set_err(err, errlen, "spool %s: cannot create the directory: "
		    "%s", dir, strerror(errno));
		goto fail;
	}
	if (spool_check_dir(dir, err, errlen) != 0) {
		e = PODIO_ERR_CONFIG;
		goto fail;
	}
	{
		char lpath[SPOOL_DIR_MAX + sizeof("/" INTAKE_LOCK_NAME)];

		snprintf(lpath, sizeof(lpath), "%s/%s", dir, intake ?
		    INTAKE_LOCK_NAME : SPOOL_LOCK_NAME);
		s->lock_fd = open(lpath, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600);
		if (s->lock_fd == -1)
			podio__warn("spool %s: cannot open the lock file (%s): "
			    "writers of several processes may wait longer",
			    lpath, strerror(errno));
		if (!intake)
			spool_find_waits(s);
	}
	if (create_db_file(dir, s->base.path) == -1) {
		podio__spool_set_err(err, errlen, "spool %s: cannot create the database: "
		    "%s", s->base.path, strerror(errno));
		goto fail;
	}
	rc = sqlite3_open_v2(s->base.path, &s->db, SQLITE_OPEN_READWRITE |
	    SQLITE_OPEN_FULLMUTEX, NULL);
	if (rc != SQLITE_OK)
		goto dberr;
	sqlite3_extended_result_codes(s->db, 1);
	sqlite3_busy_timeout(s->db, SPOOL_BUSY_MS);
	/* Keep the WAL file and skip the checkpoint when the last
	 * connection closes: a CGI process per request would otherwise
	 * checkpoint, delete and re-create the log every time. */
	sqlite3_file_control(s->db, "main", SQLITE_FCNTL_PERSIST_WAL, &one);
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, NULL);
	sqlite3_wal_hook(s->db, wal_hook, s);

	/* journal_mode answers with the mode in force. */
	if ((rc = podio__sqlite_prep(s, "PRAGMA journal_mode = WAL", &st)) !=
	    SQLITE_OK)
		goto dberr;
	{
		int64_t until = podio__now_ms() + SPOOL_BUSY_MS;
		struct timespec ts = { 0, 2000000 };

		while (((rc = sqlite3_step(st)) & 0xff) == SQLITE_BUSY &&
		    podio__now_ms() < until) {
			sqlite3_reset(st);
			nanosleep(&ts, NULL);
		}
	}
	if (rc != SQLITE_ROW)
		goto dberr;
	if (sqlite3_column_text(st, 0) == NULL ||
	    strcmp((const char *)sqlite3_column_text(st, 0), "wal") != 0) {
		podio__spool_set_err(err, errlen, "spool %s: the database cannot use WAL "
		    "mode (journal mode %s)", s->base.path,
		    sqlite3_column_text(st, 0) != NULL ?
		    (const char *)sqlite3_column_text(st, 0) : "unknown");
		goto fail;
	}
	podio__sqlite_fin(s, st);
	st = NULL;
	/* journal_size_limit: a WAL that grew in a burst is cut back to
	 * 64 MiB when it restarts after a checkpoint. */
	s->sync_full = -1;
	if ((rc = podio__sqlite_exec(s, "PRAGMA foreign_keys = ON;"
	    "PRAGMA journal_size_limit = 67108864;")) != SQLITE_OK)
		goto dberr;
	if ((rc = intake ? ensure_intake(s, &newer) :
	    ensure_schema(s, &newer)) != SQLITE_OK)
		goto dberr;
	if (newer) {
		podio__spool_set_err(err, errlen, "spool %s: made by a newer version of "
		    "podio-webhook (schema newer than %d)", s->base.path,
		    intake ? INTAKE_SCHEMA_VERSION : SPOOL_SCHEMA_VERSION);
		goto fail;
	}
	*out = s;
	return PODIO_OK;

dberr:
	e = podio__sqlite_map_rc(rc);
	podio__spool_set_err(err, errlen, "spool %s: %s", s->base.path, s->db != NULL ?
	    sqlite3_errmsg(s->db) : sqlite3_errstr(rc));
	goto fail;
nomem:
	e = PODIO_ERR_NOMEM;
	podio__spool_set_err(err, errlen, "spool: out of memory");
fail:
	podio__sqlite_fin(s, st);
	if (s != NULL)
		sqlite_close(&s->base);
	return e;
}

/* See spool_int.h.  Events a CGI run left in the intake are moved in
 * at once. */
enum podio_err
podio__sqlite_open(const char *dir, struct podio_spool **out, char *err,
    size_t errlen)
{
	struct spool_sqlite *s;
	enum podio_err e;

	if ((e = sqlite_open_file(dir, 0, &s, err, errlen)) != PODIO_OK)
		return e;
	pthread_mutex_lock(&s->db_lock);
	(void)podio__sqlite_import(s);
	pthread_mutex_unlock(&s->db_lock);
	*out = &s->base;
	return PODIO_OK;
}

/* See spool_int.h. */
enum podio_err
podio__sqlite_open_intake(const char *dir, struct podio_spool **out,
    char *err, size_t errlen)
{
	struct spool_sqlite *s;
	enum podio_err e;

	if ((e = sqlite_open_file(dir, 1, &s, err, errlen)) == PODIO_OK)
		*out = &s->base;
	return e;
}

/* Closes the spool's handle of its intake, if open. */
static void
intake_let_go(struct spool_sqlite *s)
{
	if (s->in != NULL)
		sqlite_close(&s->in->base);
	s->in = NULL;
	s->in_mark = -1;
}

static void
sqlite_close(struct podio_spool *sp)
{
	struct spool_sqlite *s = SQ(sp);
	size_t i;

	if (s == NULL)
		return;
	intake_let_go(s);
	for (i = 0; i < s->nstmts; i++) {
		sqlite3_finalize(s->stmts[i].st);
		free(s->stmts[i].sql);
	}
	free(s->stmts);
	if (s->db != NULL)
		sqlite3_close(s->db);
	if (s->lock_fd >= 0)
		close(s->lock_fd);
	podio__spool_base_end(&s->base);
	pthread_mutex_destroy(&s->db_lock);
	free(s->dir);
	free(s);
}

/* See spool.h.  A cap below the current size is raised to that size by
 * SQLite; a huge one is lowered to SQLite's maximum. */
static long
sqlite_set_max_pages(struct podio_spool *sp, long max_pages)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *st = NULL;
	char sql[64];
	long got = -1;

	snprintf(sql, sizeof(sql), "PRAGMA max_page_count = %ld",
	    max_pages > 0 ? max_pages : 2147483647L);
	pthread_mutex_lock(&s->db_lock);
	if (podio__sqlite_prep(s, sql, &st) == SQLITE_OK &&
	    sqlite3_step(st) == SQLITE_ROW)
		got = (long)sqlite3_column_int64(st, 0);
	podio__sqlite_fin(s, st);
	pthread_mutex_unlock(&s->db_lock);
	return got;
}

/* ------------------------------------------------------------ appending */

/* Fails every request of list: rc's error, the message "spool PATH:
 * cannot WHAT: DETAIL". */
static void
append_failed(struct spool_sqlite *s, struct spool_req *list, int rc,
    const char *what, const char *detail)
{
	enum podio_err e = podio__sqlite_map_rc(rc);
	struct spool_req *r;

	for (r = list; r != NULL; r = r->next) {
		r->result = e;
		r->id = 0;
		r->duplicate = 0;
		snprintf(r->msg, sizeof(r->msg), "spool %s: cannot %s: %s",
		    s->base.path, what, detail);
	}
}

/* The statements of an append. */
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
/* An intake's append: the same values, no dedup. */
static const char sql_intake_insert[] =
    "INSERT INTO intake (type, hook_id, item_id, item_revision_id,"
    " app_id, event, received_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)";

/*
 * Stores rec, received at received_ms, inside the caller's transaction
 * with the statements of an append (seen and key NULL for an intake's,
 * which has no dedup): *id is the new event, or with *duplicate set the
 * one stored first.  Returns an SQLite code.
 */
static int
append_one(struct spool_sqlite *s, sqlite3_stmt *seen, sqlite3_stmt *ins,
    sqlite3_stmt *key, const struct podio_spool_record *rec,
    int64_t received_ms, int64_t *id, int *duplicate)
{
	int rc, has_key = seen != NULL &&
	    (rec->has & PODIO_HAS_ITEM_REVISION_ID) != 0;

	*duplicate = 0;
	if (has_key) {
		sqlite3_reset(seen);
		podio__sqlite_bind_text(seen, 1, rec->type);
		podio__sqlite_bind_u64(seen, 2, rec->hook_id);
		podio__sqlite_bind_u64(seen, 3, rec->item_id);
		podio__sqlite_bind_u64(seen, 4, rec->item_revision_id);
		if ((rc = sqlite3_step(seen)) == SQLITE_ROW) {
			*id = sqlite3_column_int64(seen, 0);
			*duplicate = 1;
			sqlite3_reset(seen);
			return SQLITE_OK;
		}
		if (rc != SQLITE_DONE)
			return rc;
	}
	sqlite3_reset(ins);
	sqlite3_clear_bindings(ins);
	podio__sqlite_bind_text(ins, 1, rec->type);
	podio__sqlite_bind_u64(ins, 2, rec->hook_id);
	if (rec->has & PODIO_HAS_ITEM_ID)
		podio__sqlite_bind_u64(ins, 3, rec->item_id);
	if (rec->has & PODIO_HAS_ITEM_REVISION_ID)
		podio__sqlite_bind_u64(ins, 4, rec->item_revision_id);
	if (rec->has & PODIO_HAS_APP_ID)
		podio__sqlite_bind_u64(ins, 5, rec->app_id);
	sqlite3_bind_text(ins, 6, rec->event_json, (int)rec->event_len,
	    SQLITE_STATIC);
	sqlite3_bind_int64(ins, 7, received_ms);
	if ((rc = sqlite3_step(ins)) != SQLITE_DONE)
		return rc;
	*id = sqlite3_last_insert_rowid(s->db);
	if (has_key) {
		sqlite3_reset(key);
		podio__sqlite_bind_text(key, 1, rec->type);
		podio__sqlite_bind_u64(key, 2, rec->hook_id);
		podio__sqlite_bind_u64(key, 3, rec->item_id);
		podio__sqlite_bind_u64(key, 4, rec->item_revision_id);
		sqlite3_bind_int64(key, 5, *id);
		sqlite3_bind_int64(key, 6, received_ms);
		if ((rc = sqlite3_step(key)) != SQLITE_DONE)
			return rc;
	}
	return SQLITE_OK;
}

/*
 * Writes the queued appends of list in one transaction, filling each
 * request's result, id and duplicate flag (done is set by the caller).
 * Called by the leader of spool.c's queue without q_lock; the requests
 * are not touched by their threads until they are posted.
 */
void
podio__sqlite_append(struct podio_spool *sp, struct spool_req *list)
{
	struct spool_sqlite *s = SQ(sp);
	sqlite3_stmt *seen = NULL, *ins = NULL, *key = NULL;
	struct spool_req *r;
	int rc;

	/* Counted while waiting for the write lock, so that a processor's
	 * long transaction makes way (podio__sqlite_yield_due()).  The
	 * statements are prepared before (a process that appends once, a
	 * CGI run, would otherwise compile them and the trigger they fire
	 * while every other writer waits); a schema changed meanwhile makes
	 * SQLite prepare them again. */
	atomic_fetch_add(s->appends_waiting, 1);
	pthread_mutex_lock(&s->db_lock);
	if (s->intake)
		rc = podio__sqlite_prep(s, sql_intake_insert, &ins);
	else if ((rc = podio__sqlite_prep(s, sql_seen, &seen)) == SQLITE_OK &&
	    (rc = podio__sqlite_prep(s, sql_insert, &ins)) == SQLITE_OK)
		rc = podio__sqlite_prep(s, sql_key, &key);
	if (rc != SQLITE_OK) {
		atomic_fetch_sub(s->appends_waiting, 1);
		goto fail;
	}
	/* Synchronous NORMAL: the commit writes the frames, and they are
	 * synced once the write lock is free (spool_sync_wal()), so that
	 * the appends of several processes sync at once instead of one
	 * after the other. */
	rc = spool_begin(s, 0, 0);
	atomic_fetch_sub(s->appends_waiting, 1);
	if (rc != SQLITE_OK)
		goto fail;
	for (r = list; r != NULL; r = r->next)
		if ((rc = append_one(s, seen, ins, key, r->rec, r->received_ms,
		    &r->id, &r->duplicate)) != SQLITE_OK)
			goto fail;
	podio__sqlite_fin(s, seen);
	podio__sqlite_fin(s, ins);
	podio__sqlite_fin(s, key);
	seen = ins = key = NULL;
	s->appending = 1;
	rc = podio__sqlite_commit(s);
	s->appending = 0;
	if (rc != SQLITE_OK)
		goto fail;
	if ((rc = spool_sync_wal(s)) != SQLITE_OK) {
		append_failed(s, list, rc, "sync the stored event",
		    sqlite3_errstr(rc));
		pthread_mutex_unlock(&s->db_lock);
		return;
	}
	pthread_mutex_unlock(&s->db_lock);
	for (r = list; r != NULL; r = r->next)
		r->result = PODIO_OK;
	return;
fail:
	append_failed(s, list, rc, "store the event", sqlite3_errmsg(s->db));
	podio__sqlite_fin(s, seen);
	podio__sqlite_fin(s, ins);
	podio__sqlite_fin(s, key);
	podio__sqlite_abort(s);
	pthread_mutex_unlock(&s->db_lock);
}

/* --------------------------------------------------------------- intake */

/* A handle warns of a failing intake at most this often (ms): the CGI
 * worker looks every 25 ms. */
#define INTAKE_WARN_EVERY_MS 60000

/* Whether the handle may warn of its intake now (and then not again for
 * INTAKE_WARN_EVERY_MS). */
static int
intake_may_warn(struct spool_sqlite *s)
{
	int64_t now = podio__now_ms();

	if (s->in_warned_ms != 0 && now - s->in_warned_ms <
	    INTAKE_WARN_EVERY_MS)
		return 0;
	s->in_warned_ms = now;
	return 1;
}

/*
 * Opens the intake of spool s when DIR/intake.db exists and s has none
 * open, or the file was made anew since: 1 with s->in ready, 0 when
 * there is no intake, -1 when it cannot be opened (logged).
 */
static int
intake_open(struct spool_sqlite *s)
{
	char path[SPOOL_DIR_MAX + sizeof("/" INTAKE_DB_NAME)], err[512];
	struct spool_sqlite *in = NULL;
	sqlite3_stmt *st = NULL;
	struct stat before, after;
	int rc;

	snprintf(path, sizeof(path), "%s/" INTAKE_DB_NAME, s->dir);
	if (stat(path, &before) != 0) {
		intake_let_go(s);
		return 0;
	}
	if (s->in != NULL && s->in_dev == before.st_dev &&
	    s->in_ino == before.st_ino)
		return 1;
	intake_let_go(s);
	if (sqlite_open_file(s->dir, 1, &in, err, sizeof(err)) != PODIO_OK) {
		if (intake_may_warn(s))
			podio__warn("%s: cannot open the intake; its events "
			    "wait there: %s", s->base.path, err);
		return -1;
	}
	if ((rc = podio__sqlite_prep(in, "SELECT value FROM marks"
	    " WHERE name = 'generation'", &st)) != SQLITE_OK ||
	    (rc = sqlite3_step(st)) != SQLITE_ROW ||
	    stat(path, &after) != 0 || after.st_dev != before.st_dev ||
	    after.st_ino != before.st_ino) {
		if (intake_may_warn(s))
			podio__warn("%s: cannot read the intake's generation; "
			    "its events wait there: %s", s->base.path,
			    sqlite3_errmsg(in->db));
		podio__sqlite_fin(in, st);
		sqlite_close(&in->base);
		return -1;
	}
	s->in_gen = sqlite3_column_int64(st, 0);
	podio__sqlite_fin(in, st);
	s->in = in;
	s->in_dev = before.st_dev;
	s->in_ino = before.st_ino;
	s->in_mark = -1;
	return 1;
}

/* Deletes the intake's events up to mark, moved into the spool already
 * (a failure leaves them for the next move, which skips them). */
static void
intake_forget(struct spool_sqlite *s, int64_t mark)
{
	struct spool_sqlite *in = s->in;
	sqlite3_stmt *st = NULL;
	int rc;

	/* Test seam: a process killed between the move and this. */
	if (getenv("PODIO_TEST_INTAKE_KEEP") != NULL)
		return;
	if ((rc = podio__sqlite_begin_lazy(in)) != SQLITE_OK ||
	    (rc = podio__sqlite_prep(in, "DELETE FROM intake WHERE id <= ?1",
	    &st)) != SQLITE_OK)
		goto fail;
	sqlite3_bind_int64(st, 1, mark);
	if ((rc = sqlite3_step(st)) != SQLITE_DONE)
		goto fail;
	podio__sqlite_fin(in, st);
	st = NULL;
	if ((rc = podio__sqlite_commit(in)) == SQLITE_OK)
		return;
fail:
	podio__sqlite_fin(in, st);
	podio__debug("%s: cannot delete moved events: %s", in->base.path,
	    sqlite3_errstr(rc));
	podio__sqlite_abort(in);
}

/* The intake's last id (0 when it is empty), or -1 on error. */
static int64_t
intake_top(struct spool_sqlite *in)
{
	sqlite3_stmt *st = NULL;
	int64_t top = -1;

	if (podio__sqlite_prep(in, "SELECT coalesce(max(id), 0) FROM intake",
	    &st) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
		top = sqlite3_column_int64(st, 0);
	podio__sqlite_fin(in, st);
	return top;
}

/* See sqlite_int.h. */
int
podio__sqlite_import(struct spool_sqlite *s)
{
	static const char sql_rows[] =
	    "SELECT id, type, hook_id, item_id, item_revision_id, app_id,"
	    " event, received_at FROM intake WHERE id > ?1 ORDER BY id"
	    " LIMIT ?2";
	static const char sql_mark_get[] =
	    "SELECT value FROM marks WHERE name = ?1";
	struct podio_spool_record rec;
	sqlite3_stmt *rows = NULL, *seen = NULL, *ins = NULL, *key = NULL;
	sqlite3_stmt *st = NULL;
	char name[48];
	int64_t top, mark, id;
	int rc, dup, got;

	if (s->intake || (rc = intake_open(s)) == 0)
		return SQLITE_OK;
	if (rc < 0)
		return SQLITE_CANTOPEN;
	snprintf(name, sizeof(name), "intake:%" PRId64, s->in_gen);
	for (;;) {
		if ((top = intake_top(s->in)) < 0) {
			rc = SQLITE_ERROR;
			if (intake_may_warn(s))
				podio__warn("%s: cannot read the intake; its "
				    "events wait there: %s", s->base.path,
				    sqlite3_errmsg(s->in->db));
			return rc;
		}
		if (top == 0)
			return SQLITE_OK;
		if (s->in_mark >= 0 && top <= s->in_mark) {
			/* Moved, by this handle: only left to delete. */
			intake_forget(s, s->in_mark);
			return SQLITE_OK;
		}
		if ((rc = podio__sqlite_begin(s)) != SQLITE_OK ||
		    (rc = podio__sqlite_prep(s, sql_mark_get, &st)) !=
		    SQLITE_OK)
			goto fail;
		sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
		mark = 0;
		if ((rc = sqlite3_step(st)) == SQLITE_ROW)
			mark = sqlite3_column_int64(st, 0);
		else if (rc != SQLITE_DONE)
			goto fail;
		podio__sqlite_fin(s, st);
		st = NULL;
		if ((rc = podio__sqlite_prep(s->in, sql_rows, &rows)) !=
		    SQLITE_OK || (rc = podio__sqlite_prep(s, sql_seen,
		    &seen)) != SQLITE_OK || (rc = podio__sqlite_prep(s,
		    sql_insert, &ins)) != SQLITE_OK || (rc =
		    podio__sqlite_prep(s, sql_key, &key)) != SQLITE_OK)
			goto fail;
		sqlite3_bind_int64(rows, 1, mark);
		sqlite3_bind_int(rows, 2, INTAKE_IMPORT_CHUNK);
		got = 0;
		while ((rc = sqlite3_step(rows)) == SQLITE_ROW) {
			memset(&rec, 0, sizeof(rec));
			rec.type = (const char *)sqlite3_column_text(rows, 1);
			rec.has = PODIO_HAS_HOOK_ID;
			rec.hook_id = (uint64_t)sqlite3_column_int64(rows, 2);
			if (sqlite3_column_type(rows, 3) != SQLITE_NULL) {
				rec.has |= PODIO_HAS_ITEM_ID;
				rec.item_id =
				    (uint64_t)sqlite3_column_int64(rows, 3);
			}
			if (sqlite3_column_type(rows, 4) != SQLITE_NULL) {
				rec.has |= PODIO_HAS_ITEM_REVISION_ID;
				rec.item_revision_id =
				    (uint64_t)sqlite3_column_int64(rows, 4);
			}
			if (sqlite3_column_type(rows, 5) != SQLITE_NULL) {
				rec.has |= PODIO_HAS_APP_ID;
				rec.app_id =
				    (uint64_t)sqlite3_column_int64(rows, 5);
			}
			rec.event_json =
			    (const char *)sqlite3_column_text(rows, 6);
			rec.event_len = (size_t)sqlite3_column_bytes(rows, 6);
			if (rec.type == NULL || rec.event_json == NULL) {
				rc = SQLITE_NOMEM;
				goto fail;
			}
			if ((rc = append_one(s, seen, ins, key, &rec,
			    sqlite3_column_int64(rows, 7), &id, &dup)) !=
			    SQLITE_OK)
				goto fail;
			mark = sqlite3_column_int64(rows, 0);
			got++;
		}
		if (rc != SQLITE_DONE)
			goto fail;
		podio__sqlite_fin(s->in, rows);
		podio__sqlite_fin(s, seen);
		podio__sqlite_fin(s, ins);
		podio__sqlite_fin(s, key);
		rows = seen = ins = key = NULL;
		if (got > 0 && (rc = mark_put(s, name, mark)) != SQLITE_OK)
			goto fail;
		/* Synchronous FULL (podio__sqlite_begin()): durable here,
		 * before the intake lets them go. */
		if ((rc = podio__sqlite_commit(s)) != SQLITE_OK)
			goto fail;
		if (got > 0)
			podio__debug("%s: %d events moved in from the intake",
			    s->base.path, got);
		s->in_mark = mark;
		intake_forget(s, mark);
		if (got < INTAKE_IMPORT_CHUNK)
			return SQLITE_OK;
	}
fail:
	if (intake_may_warn(s))
		podio__warn("%s: cannot move the intake's events in; they "
		    "wait there: %s (%s)", s->base.path, sqlite3_errstr(rc),
		    sqlite3_errmsg(s->db));
	podio__sqlite_fin(s->in, rows);
	podio__sqlite_fin(s, seen);
	podio__sqlite_fin(s, ins);
	podio__sqlite_fin(s, key);
	podio__sqlite_fin(s, st);
	podio__sqlite_abort(s);
	return rc;
}

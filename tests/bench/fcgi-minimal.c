/*
 * fcgi-minimal.c: the references of the acknowledgement benchmark
 * (tests/bench/ack).  A FastCGI responder that reads the request body and
 * answers 200 with a short plain-text body, nothing else: no parsing, no
 * storage.  It serves with as many threads as podio-webhook serve is
 * given workers, so that both are measured with the same concurrency.
 *
 * Given a SYNC_FILE, it is the flushing reference instead: each body is
 * written to that file (one write under a mutex) and the 200 waits for
 * an fdatasync that began after the write.  One thread at a time flushes
 * and the writes that queued meanwhile share its next flush (group
 * commit at its simplest: no parsing, no database, no record format).
 * The file is a ring of MINIMAL_RING bytes, written with zeros and
 * flushed at the start, so that a flush only writes data blocks and
 * never the file's size or new extents.  A failed write or flush
 * answers 503.
 *
 * Given a postgresql:// URI instead of SYNC_FILE (a build with libpq),
 * it is the PostgreSQL reference: each thread has a connection of its
 * own, and each body is one INSERT into a table minimal_bodies, committed
 * on its own with synchronous_commit on before the 200: what storing a
 * delivery in that PostgreSQL costs, nothing else (the server shares
 * the flush of commits that come together).  A failed insert answers
 * 503.
 *
 * Usage: fcgi-minimal unix:PATH [THREADS [SYNC_FILE | URI]]
 * The socket is created with mode 0666 (the benchmark's web server runs
 * as another user); a stale file at PATH is replaced.  SIGTERM or SIGINT
 * removes the socket and exits 0 at once (requests in flight are cut).
 */
#include <config.h>

#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>
#ifdef HAVE_POSTGRESQL
#include <libpq-fe.h>
#endif

#define MINIMAL_THREADS_DEFAULT 16
#define MINIMAL_THREADS_MAX     256
#define MINIMAL_BACKLOG         128
/* Most of a body the flushing reference stores (the benchmark's are
 * about 100 bytes); the rest is read and dropped. */
#define MINIMAL_BODY_MAX        4096
/* The flushing reference's ring file. */
#define MINIMAL_RING            (16 * 1024 * 1024)

static const char minimal_unavailable[] =
    "Status: 503 Service Unavailable\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 12\r\n"
    "Cache-Control: no-store\r\n"
    "\r\n"
    "not stored\n";

/* The flushing reference's file and group commit: writes are numbered;
 * flushed is the number of the last write a flush covered.  After a
 * failed write or flush nothing is acknowledged any more (broken): a
 * failed fdatasync may have dropped the dirty pages it reported. */
static struct {
	int fd;                    /* -1: the plain reference */
	pthread_mutex_t lock;
	pthread_cond_t done;
	unsigned long long written, flushed;
	off_t at;                  /* where the next body goes */
	int flushing, broken;
} minimal_sync = {
	.fd = -1,
	.lock = PTHREAD_MUTEX_INITIALIZER,
	.done = PTHREAD_COND_INITIALIZER,
};

/*
 * Appends body (len bytes) to the sync file and returns once an
 * fdatasync that began after the write has returned: 0, or -1 when the
 * write or that flush failed.
 */
static int
minimal_store(const char *body, size_t len)
{
	unsigned long long mine, upto;
	int failed, rc;

	pthread_mutex_lock(&minimal_sync.lock);
	if (minimal_sync.at + (off_t)len > MINIMAL_RING)
		minimal_sync.at = 0;
	if (minimal_sync.broken || pwrite(minimal_sync.fd, body, len,
	    minimal_sync.at) != (ssize_t)len) {
		minimal_sync.broken = 1;
		pthread_mutex_unlock(&minimal_sync.lock);
		return -1;
	}
	minimal_sync.at += (off_t)len;
	mine = ++minimal_sync.written;
	while (minimal_sync.flushed < mine) {
		if (minimal_sync.flushing) {
			pthread_cond_wait(&minimal_sync.done,
			    &minimal_sync.lock);
			continue;
		}
		/* Lead: flush everything written so far. */
		minimal_sync.flushing = 1;
		upto = minimal_sync.written;
		pthread_mutex_unlock(&minimal_sync.lock);
		failed = fdatasync(minimal_sync.fd) != 0;
		pthread_mutex_lock(&minimal_sync.lock);
		minimal_sync.flushing = 0;
		minimal_sync.flushed = upto;
		if (failed)
			minimal_sync.broken = 1;
		pthread_cond_broadcast(&minimal_sync.done);
	}
	rc = minimal_sync.broken ? -1 : 0;
	pthread_mutex_unlock(&minimal_sync.lock);
	return rc;
}

/* Creates the ring file at path, written with zeros and flushed;
 * returns 0, or -1 with the reason on stderr. */
static int
minimal_ring(const char *path)
{
	static const char zeros[65536];
	off_t at;

	if ((minimal_sync.fd = open(path, O_RDWR | O_CREAT | O_TRUNC |
	    O_CLOEXEC, 0600)) < 0)
		goto fail;
	for (at = 0; at < MINIMAL_RING; at += (off_t)sizeof(zeros))
		if (pwrite(minimal_sync.fd, zeros, sizeof(zeros), at) !=
		    (ssize_t)sizeof(zeros))
			goto fail;
	if (fsync(minimal_sync.fd) != 0)
		goto fail;
	return 0;
fail:
	fprintf(stderr, "fcgi-minimal: %s: %s\n", path, strerror(errno));
	return -1;
}

/* The PostgreSQL reference's URI, or NULL. */
static const char *minimal_pg;

#ifdef HAVE_POSTGRESQL
/* Makes the reference's table (once, from main): 0, or -1 with the
 * reason on stderr. */
static int
minimal_pg_table(const char *url)
{
	PGconn *c = PQconnectdb(url);
	PGresult *r = NULL;
	int ok;

	ok = PQstatus(c) == CONNECTION_OK && (r = PQexec(c,
	    "CREATE TABLE IF NOT EXISTS minimal_bodies (id bigint GENERATED"
	    " ALWAYS AS IDENTITY PRIMARY KEY, body bytea NOT NULL)")) != NULL &&
	    PQresultStatus(r) == PGRES_COMMAND_OK;
	if (!ok)
		fprintf(stderr, "fcgi-minimal: %s", PQerrorMessage(c));
	PQclear(r);
	PQfinish(c);
	return ok ? 0 : -1;
}

/* Inserts body on conn (connecting it first): 0, or -1. */
static int
minimal_pg_store(PGconn **conn, const char *body, size_t len)
{
	const char *v[1] = { body };
	int l[1] = { (int)len }, f[1] = { 1 };
	PGresult *r;
	int ok;

	if (*conn == NULL || PQstatus(*conn) != CONNECTION_OK) {
		PQfinish(*conn);
		if ((*conn = PQconnectdb(minimal_pg)) == NULL ||
		    PQstatus(*conn) != CONNECTION_OK)
			return -1;
	}
	r = PQexecParams(*conn, "INSERT INTO minimal_bodies (body)"
	    " VALUES ($1::bytea)", 1, NULL, v, l, f, 0);
	ok = r != NULL && PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	return ok ? 0 : -1;
}
#endif

static const char minimal_answer[] =
    "Status: 200 OK\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Length: 3\r\n"
    "Cache-Control: no-store\r\n"
    "\r\n"
    "ok\n";

/*
 * One responder thread: accepts requests on the listening socket *arg
 * (an int) and answers each with minimal_answer once its body is read
 * to the end.  Returns only if accepting fails.
 */
static void *
minimal_serve(void *arg)
{
	FCGX_Request req;
	char body[MINIMAL_BODY_MAX], drop[4096];
	int fd = *(int *)arg, len, got, stored;
#ifdef HAVE_POSTGRESQL
	PGconn *conn = NULL;
#endif

	if (FCGX_InitRequest(&req, fd, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&req) >= 0) {
		/* Read the whole body, as a real receiver must. */
		len = 0;
		while (len < (int)sizeof(body) && (got = FCGX_GetStr(body +
		    len, (int)sizeof(body) - len, req.in)) > 0)
			len += got;
		while (FCGX_GetStr(drop, (int)sizeof(drop), req.in) > 0)
			;
		stored = minimal_sync.fd < 0 ||
		    minimal_store(body, (size_t)len) == 0;
#ifdef HAVE_POSTGRESQL
		if (minimal_pg != NULL)
			stored = minimal_pg_store(&conn, body,
			    (size_t)len) == 0;
#endif
		if (stored)
			(void)FCGX_PutStr(minimal_answer,
			    (int)(sizeof(minimal_answer) - 1), req.out);
		else
			(void)FCGX_PutStr(minimal_unavailable,
			    (int)(sizeof(minimal_unavailable) - 1), req.out);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
#ifdef HAVE_POSTGRESQL
	PQfinish(conn);
#endif
	return NULL;
}

/*
 * Opens the socket, starts the threads and waits for SIGTERM or SIGINT
 * (blocked in every thread; libfcgi's own SIGTERM handler would only end
 * the threads at their next request).  Exits 0 on the signal, 2 on a
 * usage error, 1 when the socket or the threads cannot be made.
 */
int
main(int argc, char **argv)
{
	pthread_t threads[MINIMAL_THREADS_MAX];
	unsigned long n = MINIMAL_THREADS_DEFAULT;
	unsigned long i, started = 0;
	const char *path;
	char *end = NULL;
	sigset_t stop;
	int fd = -1, rc, sig, status = 1;

	if (argc < 2 || argc > 4 || strncmp(argv[1], "unix:", 5) != 0 ||
	    argv[1][5] == '\0') {
		fprintf(stderr, "usage: fcgi-minimal unix:PATH [THREADS "
		    "[SYNC_FILE | URI]]\n");
		return 2;
	}
	if (argc >= 3) {
		errno = 0;
		n = strtoul(argv[2], &end, 10);
		if (errno != 0 || end == argv[2] || *end != '\0' || n == 0 ||
		    n > MINIMAL_THREADS_MAX) {
			fprintf(stderr, "fcgi-minimal: THREADS must be 1 to "
			    "%d\n", MINIMAL_THREADS_MAX);
			return 2;
		}
	}
	path = argv[1] + 5;
	if (argc == 4 && strncmp(argv[3], "postgresql://", 13) == 0) {
#ifdef HAVE_POSTGRESQL
		minimal_pg = argv[3];
		if (minimal_pg_table(minimal_pg) != 0)
			return 1;
#else
		fprintf(stderr, "fcgi-minimal: built without libpq\n");
		return 2;
#endif
	} else if (argc == 4 && minimal_ring(argv[3]) != 0)
		return 1;
	sigemptyset(&stop);
	sigaddset(&stop, SIGTERM);
	sigaddset(&stop, SIGINT);
	if ((rc = pthread_sigmask(SIG_BLOCK, &stop, NULL)) != 0) {
		fprintf(stderr, "fcgi-minimal: sigmask: %s\n", strerror(rc));
		goto fail;
	}
	if (FCGX_Init() != 0) {
		fprintf(stderr, "fcgi-minimal: FCGX_Init failed\n");
		goto fail;
	}
	(void)unlink(path);
	if ((fd = FCGX_OpenSocket(path, MINIMAL_BACKLOG)) < 0) {
		fprintf(stderr, "fcgi-minimal: cannot listen on %s\n", path);
		goto fail;
	}
	if (chmod(path, 0666) != 0) {
		fprintf(stderr, "fcgi-minimal: chmod %s: %s\n", path,
		    strerror(errno));
		goto fail;
	}
	for (i = 0; i < n; i++) {
		if ((rc = pthread_create(&threads[i], NULL, minimal_serve,
		    &fd)) != 0) {
			fprintf(stderr, "fcgi-minimal: thread %lu: %s\n", i,
			    strerror(rc));
			break;
		}
		started++;
	}
	if (started == 0)
		goto fail;
	fprintf(stderr, "fcgi-minimal: serving on %s with %lu threads%s%s\n",
	    path, started, minimal_sync.fd >= 0 ? ", flushing to " :
	    minimal_pg != NULL ? ", storing in PostgreSQL" : "",
	    minimal_sync.fd >= 0 ? argv[3] : "");
	while ((rc = sigwait(&stop, &sig)) != 0 && rc == EINTR)
		;
	status = 0;
fail:
	/* The threads are not joined: they wait in accept(), and the
	 * process ends with them. */
	if (fd >= 0)
		(void)unlink(path);
	return status;
}

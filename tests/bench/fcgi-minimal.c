/*
 * fcgi-minimal.c: the reference of the acknowledgement benchmark
 * (tests/bench/ack).  A FastCGI responder that reads the request body and
 * answers 200 with a short plain-text body, nothing else: no parsing, no
 * storage.  It serves with as many threads as podio-webhook serve is
 * given workers, so that both are measured with the same concurrency.
 *
 * Usage: fcgi-minimal unix:PATH [THREADS]
 * The socket is created with mode 0666 (the benchmark's web server runs
 * as another user); a stale file at PATH is replaced.  SIGTERM or SIGINT
 * removes the socket and exits 0 at once (requests in flight are cut).
 */
#include <config.h>

#include <sys/stat.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#define MINIMAL_THREADS_DEFAULT 16
#define MINIMAL_THREADS_MAX     256
#define MINIMAL_BACKLOG         128

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
	char buf[4096];
	int fd = *(int *)arg;

	if (FCGX_InitRequest(&req, fd, 0) != 0)
		return NULL;
	while (FCGX_Accept_r(&req) >= 0) {
		/* Read the whole body, as a real receiver must. */
		while (FCGX_GetStr(buf, (int)sizeof(buf), req.in) > 0)
			;
		(void)FCGX_PutStr(minimal_answer,
		    (int)(sizeof(minimal_answer) - 1), req.out);
		FCGX_Finish_r(&req);
	}
	FCGX_Free(&req, 1);
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

	if (argc < 2 || argc > 3 || strncmp(argv[1], "unix:", 5) != 0 ||
	    argv[1][5] == '\0') {
		fprintf(stderr, "usage: fcgi-minimal unix:PATH [THREADS]\n");
		return 2;
	}
	if (argc == 3) {
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
	fprintf(stderr, "fcgi-minimal: serving on %s with %lu threads\n",
	    path, started);
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

/*
 * fcgi_io.c: the FastCGI adapter over libfcgi (see fcgi_io.h).
 *
 * libfcgi reads and writes the FastCGI records; it does not accept
 * connections here.  Its own accept() blocks with no way to wake it but
 * a signal or shutting the listening socket down, and a socket inherited
 * on fd 0 may be shared with sibling processes (spawn-fcgi -F), where a
 * shutdown() would stop them too.  So the server accepts (handler/
 * server.c: epoll on the socket and a wake-up pipe) and hands each
 * connection to libfcgi through FCGX_Request's ipcFd, the way
 * FCGX_Accept_r() keeps a connection the web server asked to keep
 * (keepConnection): with a connection open, FCGX_Accept_r() reads the
 * next request from it instead of accepting.  The request's listen_sock
 * is -1, so that if libfcgi ever falls back to accepting (after a broken
 * head) it fails at once instead of blocking.
 */
#include <config.h>

#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcgiapp.h>

#include "fcgi_io.h"
#include "request.h"

/* The most of a request's unread body read away so that its connection
 * can carry the next request; with more left the connection is closed. */
#define FCGI_IO_DRAIN_MAX (1024 * 1024)

struct fcgi_io_conn {
	FCGX_Request req;
	int active;          /* a request was read and is not finished */
};

/* See fcgi_io.h. */
int
fcgi_io_init(void)
{
	return FCGX_Init() == 0 ? 0 : -1;
}

/* See fcgi_io.h. */
struct fcgi_io_conn *
fcgi_io_conn_new(void)
{
	struct fcgi_io_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	if (FCGX_InitRequest(&c->req, -1, 0) != 0) {
		free(c);
		return NULL;
	}
	return c;
}

/* See fcgi_io.h. */
void
fcgi_io_conn_free(struct fcgi_io_conn *c)
{
	if (c == NULL)
		return;
	fcgi_io_conn_close(c);
	free(c);
}

/* See fcgi_io.h. */
int
fcgi_io_conn_fd(const struct fcgi_io_conn *c)
{
	return c->req.ipcFd;
}

/* See fcgi_io.h.  The request's head sets keepConnection as the web
 * server wants. */
int
fcgi_io_conn_kept(const struct fcgi_io_conn *c)
{
	return c->req.keepConnection != 0;
}

/* See fcgi_io.h.  keepConnection is set so that the FCGX_Finish_r() at
 * the start of FCGX_Accept_r() leaves the new connection open; the
 * request's head then sets it as the web server wants. */
void
fcgi_io_conn_attach(struct fcgi_io_conn *c, int fd)
{
	c->req.ipcFd = fd;
	c->req.keepConnection = 1;
}

static const char *
fcgi_io_param(void *ctx, const char *name)
{
	struct fcgi_io_conn *c = ctx;

	return FCGX_GetParam(name, c->req.envp);
}

static ssize_t
fcgi_io_read(void *ctx, char *buf, size_t n)
{
	struct fcgi_io_conn *c = ctx;
	int r;

	if (n > INT_MAX)
		n = INT_MAX;
	r = FCGX_GetStr(buf, (int)n, c->req.in);
	if (r <= 0 && FCGX_GetError(c->req.in) != 0)
		return -1;
	return r;
}

/* Buffers the answer in libfcgi's stream: fcgi_io_conn_finish() sends it
 * with the end of the request in one write. */
static int
fcgi_io_write(void *ctx, const char *buf, size_t n)
{
	struct fcgi_io_conn *c = ctx;

	if (n > INT_MAX)
		return -1;
	return FCGX_PutStr(buf, (int)n, c->req.out) == (int)n ? 0 : -1;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_next(struct fcgi_io_conn *c, struct request_io *io)
{
	if (c->req.ipcFd < 0)
		return -1;
	if (FCGX_Accept_r(&c->req) != 0) {
		/* libfcgi closed a connection whose head it could not
		 * read; make sure nothing is left open. */
		fcgi_io_conn_close(c);
		return -1;
	}
	c->active = 1;
	io->param = fcgi_io_param;
	io->read = fcgi_io_read;
	io->write = fcgi_io_write;
	io->input_done = NULL;
	io->ctx = c;
	return 0;
}

/*
 * See fcgi_io.h.  The answer goes out first: a refusal is answered
 * before anything of its body is read.
 *
 * A connection the web server keeps carries the next request right
 * after this one's body, so whatever the handler left unread (a body
 * refused with 405 or 413) must be read away before the connection can
 * be used again, or libfcgi would take its records for the next
 * request's head.  That read blocks (the caller bounds it with its
 * deadline); a rest over FCGI_IO_DRAIN_MAX is not worth reading, and the
 * connection is closed instead, which the web server sees before it
 * reuses it.  A connection that is not kept is only read as far as what
 * has arrived already, without waiting, then closed: finishing it never
 * waits for a client (the finisher thread ends many in turn).
 *
 * A connection is closed here, not by libfcgi: libfcgi would first shut
 * its sending side and wait for the web server to close, which holds the
 * thread and costs a wake-up per request.  That is done by telling
 * libfcgi to keep the connection and closing it after.
 */
void
fcgi_io_conn_finish(struct fcgi_io_conn *c)
{
	char buf[8192];
	size_t drained = 0;
	int r, keep, read_all = 0, fd = c->req.ipcFd, fl;

	if (!c->active)
		return;
	c->active = 0;
	keep = c->req.keepConnection;
	if (c->req.in != NULL && !FCGX_HasSeenEOF(c->req.in)) {
		(void)FCGX_FFlush(c->req.out);
		/* Not kept: closed below whatever the reads find, so its
		 * flags need no restoring. */
		if (!keep && fd >= 0 && (fl = fcntl(fd, F_GETFL)) >= 0)
			(void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
		while (drained < FCGI_IO_DRAIN_MAX &&
		    (r = FCGX_GetStr(buf, sizeof(buf), c->req.in)) > 0)
			drained += (size_t)r;
	}
	/* A failed read (EAGAIN above, or the deadline) also marks the
	 * stream ended. */
	if (c->req.in != NULL)
		read_all = FCGX_HasSeenEOF(c->req.in) != 0 &&
		    FCGX_GetError(c->req.in) == 0;
	/* libfcgi keeps the connection (a failed write still makes it
	 * close it); it is closed here unless kept and read to its end. */
	c->req.keepConnection = 1;
	FCGX_Finish_r(&c->req);
	if ((!keep || !read_all) && c->req.ipcFd >= 0) {
		close(c->req.ipcFd);
		c->req.ipcFd = -1;
	}
}

/* See fcgi_io.h. */
void
fcgi_io_conn_close(struct fcgi_io_conn *c)
{
	c->active = 0;
	FCGX_Free(&c->req, 1);
	if (c->req.ipcFd >= 0) {
		close(c->req.ipcFd);
		c->req.ipcFd = -1;
	}
}

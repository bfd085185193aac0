/*
 * fcgi_io.h: the FastCGI adapter, the only part of the program that
 * knows libfcgi.  A worker thread owns one connection object: the server
 * accepts a socket and attaches it, fcgi_io_conn_next() reads a
 * request's head from it and gives the request as a struct request_io,
 * fcgi_io_conn_finish() ends the request (the connection stays open when
 * the web server asked to keep it).  A request whose answer waits for the
 * spool takes its connection object along, and the worker goes on with
 * another (see server.c); one object is used by one thread at a time.
 */
#ifndef PODIO_HANDLER_FCGI_IO_H
#define PODIO_HANDLER_FCGI_IO_H

#include "request.h"

struct fcgi_io_conn;

/* Initialises libfcgi; call once before worker threads start.
 * Returns 0, or -1. */
int fcgi_io_init(void);

/* A connection object without a connection; NULL on out of memory.
 * Freed (its connection closed) with fcgi_io_conn_free(). */
struct fcgi_io_conn *fcgi_io_conn_new(void);
void fcgi_io_conn_free(struct fcgi_io_conn *c);

/* The socket of the open connection, or -1 when there is none. */
int fcgi_io_conn_fd(const struct fcgi_io_conn *c);

/* Whether the web server asked to keep the connection of the request
 * read last (FCGI_KEEP_CONN): it then carries its next request. */
int fcgi_io_conn_kept(const struct fcgi_io_conn *c);

/* Takes fd, a socket just accepted, as the connection of c (closed by
 * c).  c must have no connection. */
void fcgi_io_conn_attach(struct fcgi_io_conn *c, int fd);

/*
 * Reads the next request's head (role and variables) from the
 * connection.  Returns 0 with io set up for the request (valid until
 * fcgi_io_conn_finish()), or -1 when the connection ended or broke: it
 * is then closed.  Blocks until the web server sends the head.
 */
int fcgi_io_conn_next(struct fcgi_io_conn *c, struct request_io *io);

/* Ends the current request: the answer is flushed and the request
 * closed; the connection too, unless the web server keeps it.  A body
 * left unread is read away (after the answer) only on a kept
 * connection, which blocks until its end: the caller bounds that with
 * a deadline.  Else it never waits for the client. */
void fcgi_io_conn_finish(struct fcgi_io_conn *c);

/* Closes the connection, if any. */
void fcgi_io_conn_close(struct fcgi_io_conn *c);

#endif

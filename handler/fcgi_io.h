/*
 * fcgi_io.h: one FastCGI connection of the server, over the record
 * format of fcgi_proto.h.  The server's reader thread feeds it what a
 * non-blocking read gave until a request has arrived (its head, and its
 * body or a head that is refused whatever the body), then a worker
 * handles that request through a struct request_io over the connection's
 * memory, and fcgi_io_conn_answer() sends the answer without waiting.  A
 * connection the web server keeps goes back to the reader for its next
 * request.  One thread uses a connection at a time.
 */
#ifndef PODIO_HANDLER_FCGI_IO_H
#define PODIO_HANDLER_FCGI_IO_H

#include <stddef.h>
#include <stdint.h>

#include "request.h"

struct fcgi_io_conn;

/* Where a connection is in its request. */
enum fcgi_io_state {
	FCGI_IO_IDLE,     /* between requests (or none yet) */
	FCGI_IO_HEAD,     /* a request began; its variables are coming */
	FCGI_IO_BODY,     /* its variables are in; its body is coming */
	FCGI_IO_READY,    /* it has arrived: a worker may handle it */
	FCGI_IO_DRAIN     /* answered; the rest of its body is coming, read
	                     away on a kept connection */
};

/* What fcgi_io_conn_input() found. */
enum fcgi_io_verdict {
	FCGI_IO_MORE,     /* nothing to do but read on */
	FCGI_IO_GO,       /* a request has arrived (state FCGI_IO_READY) */
	FCGI_IO_REFUSE,   /* a request that cannot be handled: its answer
	                     (and log line) is to be made with
	                     fcgi_io_conn_refuse(), then it is closed */
	FCGI_IO_CLOSE     /* the connection is over (the web server closed
	                     it, broke the protocol, or aborted its request):
	                     close it */
};

/*
 * How the reader judges a request's head: head(ctx, io) returns 1 when
 * the head alone decides the answer (a refusal, answered without the
 * body), else 0 with *need set to the number of body bytes to wait for
 * (at most max_body).  params_max bounds the variables of one request.
 */
struct fcgi_io_rules {
	int (*head)(void *ctx, const struct request_io *io, uint64_t *need);
	void *ctx;
	size_t params_max;
};

/* A connection over fd (non-blocking; closed by fcgi_io_conn_free()), or
 * NULL on out of memory. */
struct fcgi_io_conn *fcgi_io_conn_new(int fd);

/* Closes the connection and frees it; NULL is fine. */
void fcgi_io_conn_free(struct fcgi_io_conn *c);

int fcgi_io_conn_fd(const struct fcgi_io_conn *c);
enum fcgi_io_state fcgi_io_conn_state(const struct fcgi_io_conn *c);

/* Whether the web server keeps the connection (FCGI_KEEP_CONN) after the
 * current request. */
int fcgi_io_conn_kept(const struct fcgi_io_conn *c);

/* How many requests the connection carried so far. */
unsigned fcgi_io_conn_served(const struct fcgi_io_conn *c);

/* Whether part of a record or request was read and not finished: a
 * connection idle between requests holds nothing. */
int fcgi_io_conn_partial(const struct fcgi_io_conn *c);

/* The bytes of request input the connection holds (variables and body),
 * for the server's bound on them. */
size_t fcgi_io_conn_held(const struct fcgi_io_conn *c);

/*
 * Feeds buf[0..n-1], read from the connection (n 0: only the bytes kept
 * from an earlier call, see below).  Answers the management records
 * (FCGI_GET_VALUES, unknown types) and refuses a second request on the
 * connection (FCGI_CANT_MPX_CONN) or another role (FCGI_UNKNOWN_ROLE) by
 * itself, without waiting: an answer that cannot be sent at once ends
 * the connection.  Stops at the end of a request's input: bytes after it
 * are kept for the next call once that request was answered.
 */
enum fcgi_io_verdict fcgi_io_conn_input(struct fcgi_io_conn *c,
    const unsigned char *buf, size_t n, const struct fcgi_io_rules *rules);

/* Whether bytes of a later request are kept (see fcgi_io_conn_input()). */
int fcgi_io_conn_has_rest(const struct fcgi_io_conn *c);

/* Fills io for the request that arrived (FCGI_IO_READY): its variables
 * and body from memory, its answer into the connection's memory until
 * fcgi_io_conn_answer().  io is valid until then. */
void fcgi_io_conn_request(struct fcgi_io_conn *c, struct request_io *io);

/* After FCGI_IO_REFUSE: answers and logs the refusal (431 or 400) of the
 * request read, on the connection at once.  Returns the status. */
int fcgi_io_conn_refuse(struct fcgi_io_conn *c);

/*
 * Sends the answer of the request (what io's write gathered) and ends
 * it, without waiting: returns 0, or -1 when it cannot be sent at once
 * (the web server does not read, or is gone): the connection is then to
 * be closed.  On success a kept connection is ready for the reader again
 * (state FCGI_IO_IDLE, or FCGI_IO_DRAIN while the rest of the request's
 * body is still to come); the request's memory is freed.
 */
int fcgi_io_conn_answer(struct fcgi_io_conn *c);

/* Before a connection that is not kept is closed: reads away, without
 * waiting, what has arrived of it (a socket closed with unread input may
 * be reset, and the web server lose the answer). */
void fcgi_io_conn_discard_input(struct fcgi_io_conn *c);

#endif

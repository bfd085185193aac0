/*
 * request.h: one webhook request, from the web server's variables and
 * body to the answer and the log line, over a small I/O interface that
 * CGI (environment, stdin, stdout) and FastCGI (handler/fcgi_io.c) both
 * provide.
 */
#ifndef PODIO_HANDLER_REQUEST_H
#define PODIO_HANDLER_REQUEST_H

#include <stddef.h>
#include <sys/types.h>

#include "podio.h"
#include "runtime.h"

/* How a request is read and answered. */
struct request_io {
	/* The value of a CGI variable (REQUEST_METHOD, CONTENT_LENGTH, ...),
	 * or NULL when unset; borrowed until the request ends. */
	const char *(*param)(void *ctx, const char *name);
	/* Reads up to n bytes of the body into buf: the count, 0 at the end,
	 * -1 on error. */
	ssize_t (*read)(void *ctx, char *buf, size_t n);
	/* Writes n bytes of the answer: 0, or -1 on error. */
	int (*write)(void *ctx, const char *buf, size_t n);
	/* Optional (NULL: none): called once the request's input is over,
	 * its body read or left unread for a refusal, before the answer;
	 * returns nonzero when a deadline cut the input short (the
	 * connection is gone: nothing is answered, status 408 logged). */
	int (*input_done)(void *ctx);
	void *ctx;
};

struct process_spool;

/*
 * A request whose answer may be sent later by another thread: the spool
 * acknowledges it once the commit holding its event is flushed, and the
 * thread that led that commit writes the answer and the log line, then
 * calls done(ctx), which must finish the connection (it owns io's
 * context from then on).  The thread that read the request is free for
 * the next one meanwhile.
 */
struct request_defer {
	void (*done)(void *ctx);
	/* Runs fn(arg) soon on another thread, so that the thread leading
	 * the commits goes on with the next one instead of writing answers
	 * (the answer, the log line and done then happen there).  May be
	 * NULL: they happen in the leading thread. */
	void (*hand)(void *ctx, void (*fn)(void *), void *arg);
	void *ctx;
};

/* request_handle()'s answer when the request was deferred. */
#define REQUEST_DEFERRED 0

/*
 * Handles one request with rt and client (the calling thread's): reads
 * CONTENT_LENGTH strictly (absent or empty: 411; not an unsigned decimal:
 * 400), lets podio_webhook_check_head() judge before the body is read,
 * reads exactly CONTENT_LENGTH bytes, decides (podio_webhook_decide()),
 * validates a hook.verify at once (podio__deliver()) and stores any other
 * accepted delivery in the spool of ps (200 once it is durable, 503 when
 * it cannot be stored; *queued, if not NULL, is set to 1 when an event
 * was stored, else 0; the processing happens later, see process.h),
 * writes the answer as a CGI response (Status, Content-Type text/plain, one line of body; Allow
 * with 405) and logs one line: method, type, hook_id, item_id, status,
 * duration, callbacks, reason - never the secret, the code, a token or
 * the body.  Returns the status answered.
 *
 * With defer (may be NULL), an event to store is handed to the spool
 * without waiting for its flush (see struct request_defer): the return is
 * then REQUEST_DEFERRED, and neither io nor its context may be used by
 * the caller any more (the answer may even be written already).
 */
int request_handle(const struct request_io *io, struct runtime *rt,
    struct podio_client *client, struct process_spool *ps, int *queued,
    const struct request_defer *defer);

/*
 * Judges the head of the request io (its variables; the body has not
 * arrived) as request_handle() first does: returns 1 when the head alone
 * decides the answer (a refusal that request_handle() makes without
 * reading the body), else 0 with *need set to the body's length,
 * CONTENT_LENGTH (at most rt's max_body).
 */
int request_head_decides(const struct request_io *io,
    const struct runtime *rt, uint64_t *need);

/* The reason logged for a request cut off by client_timeout. */
#define REQUEST_LATE_REASON "the request did not arrive within " \
	"client_timeout; connection closed"

/* Logs, as request_handle() would, a request whose head did not arrive
 * within client_timeout (ms after its start): status 408, nothing
 * answered. */
void request_log_late(int64_t ms);

/* Answers status with the one-line body reason without reading the
 * request (e.g. 500 when no client could be made), and logs it. */
void request_answer_error(const struct request_io *io, int status,
    const char *reason);

/*
 * Answers 503 with the body "podio-webhook is not configured: REASON"
 * (reason: one line without values, e.g. "webhook_secret is not set"),
 * for a CGI started without a usable configuration, and logs it.
 */
void request_answer_unconfigured(const struct request_io *io,
    const char *reason);

/* Fills io for CGI: the environment, stdin and stdout. */
void request_cgi_io(struct request_io *io);

/*
 * After a CGI run's answer: reads and drops what is left of the request
 * body on stdin (CONTENT_LENGTH less what the run read), at most
 * REQUEST_CGI_DRAIN_MAX bytes and for at most REQUEST_CGI_DRAIN_MS.  A
 * refusal is answered before the body is read; but under mod_cgid stdin
 * and stdout are one socket, and a process that exits with bytes unread
 * on it makes the web server's read of the answer fail (ECONNRESET), so
 * that the client gets no answer at all.
 */
void request_cgi_drain(void);

#endif

/*
 * metrics_http.h: the HTTP side of `serve --metrics-listen`: one thread
 * of its own that answers GET /metrics on a TCP socket, apart from the
 * FastCGI reader and workers, so that no client of this port, however
 * slow or hostile, delays a webhook.
 *
 * It speaks just enough HTTP/1.x for a scraper: one request per
 * connection, answered with Content-Length and Connection: close.  A
 * request head is at most METRICS_HTTP_HEAD_MAX bytes and must arrive
 * within METRICS_HTTP_READ_MS of the connection; at most
 * METRICS_HTTP_CONNS connections are open at once (more wait in the
 * kernel's queue).  GET or HEAD of /metrics (any query) is 200 with the
 * page; another path 404; another method 405 with Allow: GET, HEAD; a
 * head too long 431; a malformed one 400.
 */
#ifndef PODIO_HANDLER_METRICS_HTTP_H
#define PODIO_HANDLER_METRICS_HTTP_H

#include <stddef.h>

#define METRICS_HTTP_HEAD_MAX 8192
#define METRICS_HTTP_READ_MS  3000
/* How long an answer (or the rest of a request read away after it) may
 * take to go. */
#define METRICS_HTTP_WRITE_MS 10000
#define METRICS_HTTP_CONNS    8

struct metrics_http;

/* Makes the page: *out (the caller frees it) and *len, or -1 (answered
 * 500).  Called in the metrics thread only. */
typedef int (*metrics_http_page_fn)(void *arg, char **out, size_t *len);

/*
 * Starts the thread serving the listening socket fd (taken over: closed
 * by metrics_http_stop()) with page(arg) for /metrics.  The caller
 * blocks the signals the thread must not take before.  Returns 0 with
 * *out set, or -1 with errno set (fd is then closed).
 */
int metrics_http_start(int fd, metrics_http_page_fn page, void *arg,
    struct metrics_http **out);

/* Stops the thread (the connections open are closed), closes the socket
 * and frees h.  Accepts NULL. */
void metrics_http_stop(struct metrics_http *h);

#endif

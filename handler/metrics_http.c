/*
 * metrics_http.c: the metrics thread (see metrics_http.h).
 *
 * One thread polls the listening socket, an eventfd that stops it, and
 * at most METRICS_HTTP_CONNS connections, all non-blocking.  A
 * connection is read until its head is whole (or too long, or late),
 * answered, and then, once the answer is written, its sending side is
 * shut and whatever the client still sends is read away until it
 * closes: closing a socket with unread bytes would reset the connection
 * and could lose the answer on the way.  Every phase has a deadline.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "log.h"
#include "metrics_http.h"

/* The most bytes read away after an answer. */
#define METRICS_HTTP_LINGER_MAX (64 * 1024)
/* How long accepting pauses when the system is out of descriptors. */
#define METRICS_HTTP_BACKOFF_MS 100

enum metrics_conn_state {
	METRICS_CONN_FREE = 0,
	METRICS_CONN_READ,       /* the head is coming */
	METRICS_CONN_WRITE,      /* the answer is going */
	METRICS_CONN_LINGER      /* answered: reading away until EOF */
};

struct metrics_conn {
	enum metrics_conn_state state;
	int fd;
	int64_t deadline;        /* monotonic ms */
	char head[METRICS_HTTP_HEAD_MAX];
	size_t hlen;
	char *out;               /* the answer, owned */
	size_t out_len, off;
	size_t lingered;
};

struct metrics_http {
	int fd;                  /* the listening socket */
	int evfd;                /* written by metrics_http_stop() */
	metrics_http_page_fn page;
	void *arg;
	pthread_t thread;
	int64_t accept_at;       /* no accept before (out of descriptors) */
	struct metrics_conn conns[METRICS_HTTP_CONNS];
};

static int64_t
metrics_http_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void
metrics_conn_close(struct metrics_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	c->state = METRICS_CONN_FREE;
}

/* The reason phrase of the statuses answered. */
static const char *
metrics_http_reason(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 431: return "Request Header Fields Too Large";
	default:  return "Internal Server Error";
	}
}

/*
 * Makes c's answer: status with body (len bytes; sent only when
 * with_body), or for an error a one-line body of its reason.  On out of
 * memory the connection is closed.
 */
static void
metrics_conn_answer(struct metrics_conn *c, int status, const char *body,
    size_t len, int with_body, int64_t now)
{
	char head[512], line[64];
	const char *type = "text/plain; charset=utf-8";
	int n;

	if (body == NULL) {
		n = snprintf(line, sizeof(line), "%s\n",
		    metrics_http_reason(status));
		body = line;
		len = (size_t)n;
	} else
		type = "text/plain; version=0.0.4; charset=utf-8";
	n = snprintf(head, sizeof(head), "HTTP/1.1 %d %s\r\n"
	    "Content-Type: %s\r\n"
	    "Content-Length: %zu\r\n"
	    "%s"
	    "Cache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n", status, metrics_http_reason(status),
	    type, len, status == 405 ? "Allow: GET, HEAD\r\n" : "");
	if (!with_body)
		len = 0;
	if ((c->out = malloc((size_t)n + len)) == NULL) {
		metrics_conn_close(c);
		return;
	}
	memcpy(c->out, head, (size_t)n);
	if (len > 0)
		memcpy(c->out + n, body, len);
	c->out_len = (size_t)n + len;
	c->off = 0;
	c->state = METRICS_CONN_WRITE;
	c->deadline = now + METRICS_HTTP_WRITE_MS;
}

/* Whether the n bytes at s are an HTTP token (a method). */
static int
metrics_http_token(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 0;
	for (i = 0; i < n; i++)
		if (s[i] <= ' ' || s[i] >= 0x7f || strchr("()<>@,;:\\\"/[]?={}",
		    s[i]) != NULL)
			return 0;
	return 1;
}

/* Answers the request whose head (its request line first) has arrived
 * on c. */
static void
metrics_http_serve(struct metrics_http *h, struct metrics_conn *c,
    int64_t now)
{
	const char *line = c->head, *sp1, *sp2, *end, *q;
	char *page = NULL;
	size_t mlen, tlen, plen = 0;
	int head_only;

	end = memchr(line, '\n', c->hlen);
	sp1 = end != NULL ? memchr(line, ' ', (size_t)(end - line)) : NULL;
	sp2 = sp1 != NULL ? memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1)) :
	    NULL;
	if (sp2 == NULL || !metrics_http_token(line, (size_t)(sp1 - line)) ||
	    (size_t)(end - sp2 - 1) < 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0) {
		metrics_conn_answer(c, 400, NULL, 0, 1, now);
		return;
	}
	mlen = (size_t)(sp1 - line);
	head_only = mlen == 4 && memcmp(line, "HEAD", 4) == 0;
	if (!head_only && !(mlen == 3 && memcmp(line, "GET", 3) == 0)) {
		metrics_conn_answer(c, 405, NULL, 0, 1, now);
		return;
	}
	q = memchr(sp1 + 1, '?', (size_t)(sp2 - sp1 - 1));
	tlen = (size_t)((q != NULL ? q : sp2) - sp1 - 1);
	if (tlen != 8 || memcmp(sp1 + 1, "/metrics", 8) != 0) {
		metrics_conn_answer(c, 404, NULL, 0, !head_only, now);
		return;
	}
	if (h->page(h->arg, &page, &plen) != 0) {
		metrics_conn_answer(c, 500, NULL, 0, !head_only, now);
		return;
	}
	/* The page took its time: the answer's deadline counts from now. */
	metrics_conn_answer(c, 200, page, plen, !head_only,
	    metrics_http_now());
	free(page);
}

/* Reads what c has; answers once its head is whole. */
static void
metrics_conn_read(struct metrics_http *h, struct metrics_conn *c,
    int64_t now)
{
	char sink[4096];
	ssize_t r;
	size_t from;

	if (c->state == METRICS_CONN_LINGER) {
		r = recv(c->fd, sink, sizeof(sink), 0);
		if (r > 0)
			c->lingered += (size_t)r;
		if (r == 0 || (r < 0 && errno != EAGAIN && errno != EINTR) ||
		    c->lingered > METRICS_HTTP_LINGER_MAX)
			metrics_conn_close(c);
		return;
	}
	r = recv(c->fd, c->head + c->hlen, sizeof(c->head) - c->hlen, 0);
	if (r < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (r <= 0) {
		metrics_conn_close(c);
		return;
	}
	/* The end of the head may straddle two reads. */
	from = c->hlen >= 3 ? c->hlen - 3 : 0;
	c->hlen += (size_t)r;
	for (; from + 1 < c->hlen; from++) {
		if (c->head[from] != '\n')
			continue;
		if (c->head[from + 1] == '\n' || (from + 2 < c->hlen &&
		    c->head[from + 1] == '\r' && c->head[from + 2] == '\n')) {
			metrics_http_serve(h, c, now);
			return;
		}
	}
	if (c->hlen == sizeof(c->head))
		metrics_conn_answer(c, 431, NULL, 0, 1, now);
}

/* Sends what c's answer has left; once sent, lingers. */
static void
metrics_conn_write(struct metrics_conn *c, int64_t now)
{
	ssize_t r;

	while (c->off < c->out_len) {
		r = send(c->fd, c->out + c->off, c->out_len - c->off,
		    MSG_NOSIGNAL | MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (r <= 0) {
			metrics_conn_close(c);
			return;
		}
		c->off += (size_t)r;
	}
	free(c->out);
	c->out = NULL;
	(void)shutdown(c->fd, SHUT_WR);
	c->state = METRICS_CONN_LINGER;
	c->deadline = now + METRICS_HTTP_WRITE_MS;
}

/* Accepts what the listening socket holds, while there is room. */
static void
metrics_http_accept(struct metrics_http *h, int64_t now)
{
	struct metrics_conn *c;
	size_t i;
	int fd;

	for (i = 0; i < METRICS_HTTP_CONNS; i++) {
		c = &h->conns[i];
		if (c->state != METRICS_CONN_FREE)
			continue;
		fd = accept4(h->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE ||
			    errno == ENOBUFS || errno == ENOMEM)
				h->accept_at = now + METRICS_HTTP_BACKOFF_MS;
			return;
		}
		c->fd = fd;
		c->state = METRICS_CONN_READ;
		c->deadline = now + METRICS_HTTP_READ_MS;
	}
}

/* The thread: polls until the eventfd is written. */
static void *
metrics_http_run(void *arg)
{
	struct metrics_http *h = arg;
	struct pollfd p[METRICS_HTTP_CONNS + 2];
	struct metrics_conn *c;
	int64_t now, next;
	size_t i, n, at[METRICS_HTTP_CONNS + 2];
	int room, timeout;

	for (;;) {
		now = metrics_http_now();
		next = INT64_MAX;
		n = 0;
		p[n].fd = h->evfd;
		p[n++].events = POLLIN;
		room = 0;
		for (i = 0; i < METRICS_HTTP_CONNS; i++) {
			c = &h->conns[i];
			if (c->state == METRICS_CONN_FREE) {
				room = 1;
				continue;
			}
			if (c->deadline < next)
				next = c->deadline;
			p[n].fd = c->fd;
			p[n].events = c->state == METRICS_CONN_WRITE ?
			    POLLOUT : POLLIN;
			at[n++] = i;
		}
		if (room && h->accept_at <= now) {
			p[n].fd = h->fd;
			p[n].events = POLLIN;
			at[n++] = SIZE_MAX;
		} else if (room && h->accept_at < next)
			next = h->accept_at;
		timeout = next == INT64_MAX ? -1 : next <= now ? 0 :
		    next - now > 60000 ? 60000 : (int)(next - now);
		for (i = 0; i < n; i++)
			p[i].revents = 0;
		if (poll(p, n, timeout) < 0 && errno != EINTR) {
			podio_log(PODIO_LOG_ERROR, "metrics: poll: %s",
			    strerror(errno));
			break;
		}
		if (p[0].revents != 0)
			break;
		now = metrics_http_now();
		for (i = 1; i < n; i++) {
			if (p[i].revents == 0)
				continue;
			if (at[i] == SIZE_MAX) {
				metrics_http_accept(h, now);
				continue;
			}
			c = &h->conns[at[i]];
			if (c->state == METRICS_CONN_WRITE)
				metrics_conn_write(c, now);
			else
				metrics_conn_read(h, c, now);
			/* An answer made now goes at once when it can. */
			if (c->state == METRICS_CONN_WRITE && c->off == 0)
				metrics_conn_write(c, metrics_http_now());
		}
		now = metrics_http_now();
		for (i = 0; i < METRICS_HTTP_CONNS; i++) {
			c = &h->conns[i];
			if (c->state != METRICS_CONN_FREE && c->deadline <= now)
				metrics_conn_close(c);
		}
	}
	for (i = 0; i < METRICS_HTTP_CONNS; i++)
		if (h->conns[i].state != METRICS_CONN_FREE)
			metrics_conn_close(&h->conns[i]);
	return NULL;
}

/* See metrics_http.h. */
int
metrics_http_start(int fd, metrics_http_page_fn page, void *arg,
    struct metrics_http **out)
{
	struct metrics_http *h;
	size_t i;
	int rc, saved, flags;

	*out = NULL;
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		saved = errno;
		close(fd);
		errno = saved;
		return -1;
	}
	h->fd = fd;
	h->evfd = -1;
	h->page = page;
	h->arg = arg;
	for (i = 0; i < METRICS_HTTP_CONNS; i++)
		h->conns[i].fd = -1;
	if ((flags = fcntl(fd, F_GETFL)) < 0 ||
	    fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0 ||
	    (h->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		goto fail;
	if ((rc = pthread_create(&h->thread, NULL, metrics_http_run, h)) !=
	    0) {
		errno = rc;
		goto fail;
	}
	(void)pthread_setname_np(h->thread, "pw-metrics");
	*out = h;
	return 0;
fail:
	saved = errno;
	if (h->evfd >= 0)
		close(h->evfd);
	close(fd);
	free(h);
	errno = saved;
	return -1;
}

/* See metrics_http.h. */
void
metrics_http_stop(struct metrics_http *h)
{
	uint64_t one = 1;
	ssize_t r;

	if (h == NULL)
		return;
	do
		r = write(h->evfd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
	pthread_join(h->thread, NULL);
	close(h->evfd);
	close(h->fd);
	free(h);
}

/*
 * server_reader.c: the FastCGI server's reader thread (see
 * server_int.h).
 *
 * One thread and one epoll set hold the listening socket and every
 * connection whose request is coming, or that the web server keeps idle
 * between requests: each is read as its bytes arrive (fcgi_io.c), and
 * only a request that has arrived goes to a worker.  So a slow client, a
 * stalled connection or an idle kept one holds a few hundred bytes and
 * no thread, and the workers serve whoever is ready.
 *
 * Deadlines: a request must arrive within client_timeout of its first
 * byte (of the connection, for the first); past it the connection is
 * closed and the request logged once with status 408.  A kept connection
 * idle for client_timeout is closed without a word, and so is one still
 * reading away the rest of an answered request's body.  The deadlines
 * are looked at when the earliest one known may have passed: a scan of
 * every connection then finds those due and the next earliest.
 *
 * Bounds: at most conns_max connections are open (what the descriptor
 * limit leaves); at the bound the listening socket is left alone (the
 * kernel's queue holds new connections) until some close.  The request
 * bytes held in memory are bounded too: past the bound, connections are
 * not read until workers free some.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include "podio.h"
#include "fcgi_io.h"
#include "log.h"
#include "metrics.h"
#include "request.h"
#include "runtime.h"
#include "server_int.h"
#include "util.h"

/* How much one read takes. */
#define READER_CHUNK (64 * 1024)
/* Most connections accepted in one turn, and events taken at once. */
#define READER_ACCEPT_BURST 64
#define READER_EVENTS 64
/* How long accepting pauses when the system is out of descriptors. */
#define READER_BACKOFF_MS 100
/* The variables of one request: at least this, else max_body (the query
 * string may be that long) and this much for the rest. */
#define READER_PARAMS_MIN (256 * 1024)
#define READER_PARAMS_MORE (64 * 1024)
/* The request bytes held at once: at least this, else two of the
 * largest bodies. */
#define READER_HELD_MIN ((long long)8 * 1024 * 1024)

/* The epoll marks of the listening socket and the eventfd. */
static char reader_listen_mark, reader_wake_mark;

/* The reader's own state. */
struct reader {
	struct server *srv;
	struct runtime *rt;            /* a reference, for judging heads */
	struct fcgi_io_rules rules;
	struct server_conn *list;      /* the connections in its care */
	unsigned char *buf;            /* READER_CHUNK bytes */
	int accepting;                 /* the listening socket is in ep */
	int64_t accept_at;             /* when to try accepting again after
	                                  running out of descriptors */
	int room_logged;               /* the bound was logged */
	int64_t next_check;            /* when a deadline may have passed */
	int stop_seen;
	long long held_max;
};

/* See server_int.h. */
void
server_reader_wake(struct server *srv)
{
	uint64_t one = 1;
	ssize_t r;

	do
		r = write(srv->evfd, &one, sizeof(one));
	while (r < 0 && errno == EINTR);
}

/* See server_int.h. */
void
server_queue_put(struct server *srv, struct server_conn *c)
{
	c->qnext = NULL;
	pthread_mutex_lock(&srv->q_lock);
	*srv->q_tail = c;
	srv->q_tail = &c->qnext;
	pthread_cond_signal(&srv->q_cond);
	pthread_mutex_unlock(&srv->q_lock);
}

/* See server_int.h. */
void
server_conn_unhold(struct server *srv, struct server_conn *c)
{
	if (c->held == 0)
		return;
	atomic_fetch_sub(&srv->held, (long long)c->held);
	c->held = 0;
	if (atomic_load(&srv->paused) > 0)
		server_reader_wake(srv);
}

/* See server_int.h. */
void
server_conn_close(struct server *srv, struct server_conn *c)
{
	server_conn_unhold(srv, c);
	fcgi_io_conn_free(c->io);
	free(c);
	atomic_fetch_sub(&srv->conns, 1);
	/* The reader waits for room to accept again, or for the last
	 * connection to close at the stop. */
	if (atomic_load(&srv->room_wanted) || atomic_load(&srv->stopping))
		server_reader_wake(srv);
}

/* See server_int.h. */
void
server_conn_back(struct server *srv, struct server_conn *c)
{
	pthread_mutex_lock(&srv->back_lock);
	c->qnext = srv->back_head;
	srv->back_head = c;
	pthread_mutex_unlock(&srv->back_lock);
	server_reader_wake(srv);
}

/* ------------------------------------------------------------ the list */

static void
reader_link(struct reader *rd, struct server_conn *c)
{
	c->prev = NULL;
	c->next = rd->list;
	if (rd->list != NULL)
		rd->list->prev = c;
	rd->list = c;
	if (c->deadline < rd->next_check)
		rd->next_check = c->deadline;
}

static void
reader_unlink(struct reader *rd, struct server_conn *c)
{
	if (c->prev != NULL)
		c->prev->next = c->next;
	else
		rd->list = c->next;
	if (c->next != NULL)
		c->next->prev = c->prev;
	c->prev = c->next = NULL;
}

/* Closes a connection in the reader's care (one left unread for the
 * bound on held bytes no longer counts as such). */
static void
reader_close(struct reader *rd, struct server_conn *c)
{
	if (c->paused) {
		c->paused = 0;
		atomic_fetch_sub(&rd->srv->paused, 1);
	}
	reader_unlink(rd, c);
	server_conn_close(rd->srv, c);
}

/* Whether c is a kept connection idle between requests: it carried one
 * and holds nothing of the next. */
static int
reader_idle(const struct server_conn *c)
{
	return !fcgi_io_conn_partial(c->io) && fcgi_io_conn_served(c->io) > 0;
}

/* Sets c's deadline: client_timeout from now. */
static void
reader_deadline(struct reader *rd, struct server_conn *c, int64_t now)
{
	c->deadline = now + atomic_load(&rd->srv->client_timeout_ms);
	if (c->deadline < rd->next_check)
		rd->next_check = c->deadline;
}

/* Lets the socket of c report its next bytes (once: EPOLLONESHOT, so
 * that a connection out with a worker is never reported).  Returns 0,
 * or -1 (the connection cannot be watched: close it). */
static int
reader_arm(struct reader *rd, struct server_conn *c)
{
	struct epoll_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLONESHOT;
	ev.data.ptr = c;
	if (epoll_ctl(rd->srv->ep, c->registered ? EPOLL_CTL_MOD :
	    EPOLL_CTL_ADD, fcgi_io_conn_fd(c->io), &ev) != 0)
		return -1;
	c->registered = 1;
	return 0;
}

/* ------------------------------------------------------------- reading */

/* The rules' head(): judged with the reader's runtime. */
static int
reader_head(void *ctx, const struct request_io *io, uint64_t *need)
{
	const struct runtime *rt = ctx;

	return request_head_decides(io, rt, need);
}

/* Takes the current runtime when it changed (a reload): the limits of
 * the requests read from now on. */
static void
reader_runtime(struct reader *rd)
{
	struct server *srv = rd->srv;
	struct runtime *cur = NULL;
	size_t max_body;

	pthread_mutex_lock(&srv->lock);
	if (srv->rt != rd->rt)
		cur = runtime_ref(srv->rt);
	pthread_mutex_unlock(&srv->lock);
	if (cur == NULL)
		return;
	runtime_unref(rd->rt);
	rd->rt = cur;
	max_body = cur->settings.max_body > 0 ? cur->settings.max_body :
	    PODIO_WEBHOOK_MAX_BODY;
	rd->rules.head = reader_head;
	rd->rules.ctx = cur;
	rd->rules.params_max = max_body + READER_PARAMS_MORE;
	if (rd->rules.params_max < READER_PARAMS_MIN)
		rd->rules.params_max = READER_PARAMS_MIN;
	rd->held_max = 2 * (long long)max_body;
	if (rd->held_max < READER_HELD_MIN)
		rd->held_max = READER_HELD_MIN;
}

/* Counts what c's request holds now in srv->held. */
static void
reader_hold(struct reader *rd, struct server_conn *c)
{
	size_t now = fcgi_io_conn_held(c->io);

	if (now > c->held)
		atomic_fetch_add(&rd->srv->held, (long long)(now - c->held));
	else if (now < c->held)
		atomic_fetch_sub(&rd->srv->held, (long long)(c->held - now));
	c->held = now;
}

/*
 * Acts on what fcgi_io_conn_input() found on c: a request that arrived
 * leaves the reader's care for the workers' queue; a refusal is answered
 * and the connection closed; more to read re-arms it.
 */
static void
reader_verdict(struct reader *rd, struct server_conn *c,
    enum fcgi_io_verdict v)
{
	reader_hold(rd, c);
	switch (v) {
	case FCGI_IO_GO:
		reader_unlink(rd, c);
		atomic_fetch_add(&rd->srv->busy, 1);
		server_queue_put(rd->srv, c);
		return;
	case FCGI_IO_REFUSE:
		metrics_delivery(rd->srv->metrics, NULL,
		    fcgi_io_conn_refuse(c->io));
		reader_close(rd, c);
		return;
	case FCGI_IO_CLOSE:
		reader_close(rd, c);
		return;
	case FCGI_IO_MORE:
		break;
	}
	if (reader_arm(rd, c) != 0)
		reader_close(rd, c);
}

/*
 * Reads what c's socket has (it was reported readable, or was just
 * accepted) and feeds it on.  Past the bound on held bytes, a
 * connection whose request is coming is left unread (paused) until
 * workers free some.
 */
static void
reader_read(struct reader *rd, struct server_conn *c)
{
	struct server *srv = rd->srv;
	enum fcgi_io_state st = fcgi_io_conn_state(c->io);
	int64_t now;
	ssize_t r;

	if (st != FCGI_IO_DRAIN && atomic_load(&srv->held) >= rd->held_max) {
		if (!c->paused) {
			c->paused = 1;
			atomic_fetch_add(&srv->paused, 1);
		}
		return;
	}
	do
		r = recv(fcgi_io_conn_fd(c->io), rd->buf, READER_CHUNK,
		    MSG_DONTWAIT);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
		if (reader_arm(rd, c) != 0)
			reader_close(rd, c);
		return;
	}
	if (r <= 0) {
		/* The web server closed the connection (or it broke):
		 * a request it had not finished sending is not
		 * acknowledged, so nothing is lost. */
		reader_close(rd, c);
		return;
	}
	if (reader_idle(c)) {
		/* The first byte of the next request on a kept
		 * connection: its deadline starts now. */
		now = podio__now_ms();
		c->t0 = now;
		reader_deadline(rd, c, now);
	}
	reader_verdict(rd, c, fcgi_io_conn_input(c->io, rd->buf, (size_t)r,
	    &rd->rules));
}

/* Reads the connections paused for the bound on held bytes again, once
 * there is room. */
static void
reader_resume(struct reader *rd)
{
	struct server_conn *c, *next;

	if (atomic_load(&rd->srv->paused) == 0 ||
	    atomic_load(&rd->srv->held) >= rd->held_max)
		return;
	for (c = rd->list; c != NULL; c = next) {
		next = c->next;
		if (!c->paused)
			continue;
		c->paused = 0;
		atomic_fetch_sub(&rd->srv->paused, 1);
		if (reader_arm(rd, c) != 0)
			reader_close(rd, c);
	}
}

/* A kept connection back from its answer: it waits for its next request
 * (or reads away the rest of the last one's body), with the bytes of a
 * next request read already handled first. */
static void
reader_take_back(struct reader *rd, struct server_conn *c)
{
	int64_t now = podio__now_ms();

	if (rd->stop_seen && reader_idle(c)) {
		server_conn_close(rd->srv, c);
		return;
	}
	c->t0 = now;
	reader_deadline(rd, c, now);
	reader_link(rd, c);
	if (fcgi_io_conn_has_rest(c->io)) {
		reader_verdict(rd, c, fcgi_io_conn_input(c->io, NULL, 0,
		    &rd->rules));
		return;
	}
	if (reader_arm(rd, c) != 0)
		reader_close(rd, c);
}

/* Takes the connections handed back since the last turn. */
static void
reader_backs(struct reader *rd)
{
	struct server *srv = rd->srv;
	struct server_conn *c, *next;

	pthread_mutex_lock(&srv->back_lock);
	c = srv->back_head;
	srv->back_head = NULL;
	pthread_mutex_unlock(&srv->back_lock);
	for (; c != NULL; c = next) {
		next = c->qnext;
		reader_take_back(rd, c);
	}
}

/*
 * Closes the connections whose deadline passed and finds the next
 * deadline.  A request that did not arrive in time is logged (status
 * 408, once); an idle kept connection, or one reading away an answered
 * body, goes without a word.
 */
static void
reader_deadlines(struct reader *rd, int64_t now)
{
	struct server_conn *c, *next;
	int64_t earliest = INT64_MAX;

	for (c = rd->list; c != NULL; c = next) {
		next = c->next;
		if (c->deadline > now) {
			if (c->deadline < earliest)
				earliest = c->deadline;
			continue;
		}
		if (fcgi_io_conn_state(c->io) != FCGI_IO_DRAIN &&
		    !reader_idle(c)) {
			request_log_late(now - c->t0);
			metrics_delivery(rd->srv->metrics, NULL, 408);
		}
		reader_close(rd, c);
	}
	rd->next_check = earliest;
}

/* ----------------------------------------------------------- accepting */

/* Whether the peer of a TCP connection is in FCGI_WEB_SERVER_ADDRS (the
 * list libfcgi honours, comma-separated addresses), when it is set. */
static int
reader_peer_allowed(const struct server *srv,
    const struct sockaddr_storage *ss)
{
	char addr[INET6_ADDRSTRLEN];
	const char *p, *end;
	size_t alen;

	if (srv->allowed_addrs == NULL)
		return 1;
	if (ss->ss_family == AF_INET)
		inet_ntop(AF_INET, &((const struct sockaddr_in *)
		    (const void *)ss)->sin_addr, addr, sizeof(addr));
	else if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)
		    (const void *)ss)->sin6_addr, addr, sizeof(addr));
	else
		return 1;
	alen = strlen(addr);
	for (p = srv->allowed_addrs; *p != '\0'; p = *end ? end + 1 : end) {
		while (*p == ' ')
			p++;
		end = strchr(p, ',');
		if (end == NULL)
			end = p + strlen(p);
		if ((size_t)(end - p) == alen && strncmp(p, addr, alen) == 0)
			return 1;
	}
	podio_log(PODIO_LOG_WARN, "refused a connection from %s: not in "
	    "FCGI_WEB_SERVER_ADDRS", addr);
	return 0;
}

/* Puts the listening socket in the epoll set (on 1) or takes it out. */
static void
reader_listen(struct reader *rd, int on)
{
	struct epoll_event ev;

	if (rd->accepting == on)
		return;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &reader_listen_mark;
	if (epoll_ctl(rd->srv->ep, on ? EPOLL_CTL_ADD : EPOLL_CTL_DEL,
	    rd->srv->sc->listen_fd, &ev) == 0 || !on)
		rd->accepting = on;
}

/* Tells the main thread that the listening socket failed for good. */
static void
reader_fail(struct server *srv)
{
	ssize_t r;

	do
		r = write(srv->fail[1], "x", 1);
	while (r < 0 && errno == EINTR);
}

/* Takes a connection just accepted: read at once (the web server
 * usually sent its request already), else watched. */
static void
reader_new_conn(struct reader *rd, int fd, int64_t now)
{
	struct server *srv = rd->srv;
	struct server_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL ||
	    (c->io = fcgi_io_conn_new(fd)) == NULL) {
		podio_log(PODIO_LOG_WARN, "cannot take a connection: out of "
		    "memory");
		free(c);
		close(fd);
		return;
	}
	atomic_fetch_add(&srv->conns, 1);
	c->t0 = now;
	reader_deadline(rd, c, now);
	reader_link(rd, c);
	reader_read(rd, c);
}

/*
 * Accepts the connections waiting, up to READER_ACCEPT_BURST, while
 * fewer than conns_max are open: at the bound the listening socket
 * leaves the epoll set until connections close (logged once each time).
 */
static void
reader_accept(struct reader *rd)
{
	struct server *srv = rd->srv;
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, n;

	for (n = 0; n < READER_ACCEPT_BURST; n++) {
		if (atomic_load(&srv->conns) >= srv->conns_max) {
			atomic_store(&srv->room_wanted, 1);
			reader_listen(rd, 0);
			if (!rd->room_logged)
				podio_log(PODIO_LOG_WARN, "%d connections are "
				    "open (being read or waiting for their "
				    "answer), the most this process keeps: "
				    "new connections wait until some close",
				    srv->conns_max);
			rd->room_logged = 1;
			return;
		}
		len = sizeof(ss);
		fd = accept4(srv->sc->listen_fd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd >= 0) {
			if (!reader_peer_allowed(srv, &ss)) {
				close(fd);
				continue;
			}
			if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
			reader_new_conn(rd, fd, podio__now_ms());
			continue;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
			return;
		case EINTR:
		case ECONNABORTED:
		case EPROTO:
		case ENETDOWN:
		case ENOPROTOOPT:
		case EHOSTDOWN:
		case ENONET:
		case EHOSTUNREACH:
		case EOPNOTSUPP:
		case ENETUNREACH:
		case EPERM:
			continue;
		case EMFILE:
		case ENFILE:
		case ENOBUFS:
		case ENOMEM:
			podio_log(PODIO_LOG_WARN, "cannot accept a connection: "
			    "%s", strerror(errno));
			reader_listen(rd, 0);
			rd->accept_at = podio__now_ms() + READER_BACKOFF_MS;
			return;
		default:
			if (atomic_load(&srv->stopping))
				return;
			podio_log(PODIO_LOG_ERROR, "the listening socket "
			    "failed: %s", strerror(errno));
			reader_listen(rd, 0);
			rd->accept_at = INT64_MAX;
			reader_fail(srv);
			return;
		}
	}
}

/* The stop: no more connections are taken, and kept connections idle
 * between requests are closed; requests coming are still read (within
 * their deadlines) and answered. */
static void
reader_stop(struct reader *rd)
{
	struct server_conn *c, *next;

	rd->stop_seen = 1;
	reader_listen(rd, 0);
	for (c = rd->list; c != NULL; c = next) {
		next = c->next;
		if (reader_idle(c))
			reader_close(rd, c);
	}
}

/* Closes the workers' queue: they end once it is empty. */
static void
reader_close_queue(struct server *srv)
{
	pthread_mutex_lock(&srv->q_lock);
	srv->q_closed = 1;
	pthread_cond_broadcast(&srv->q_cond);
	pthread_mutex_unlock(&srv->q_lock);
}

/* See server_int.h. */
void *
server_reader(void *arg)
{
	struct reader rd;
	struct server *srv = arg;
	struct epoll_event evs[READER_EVENTS];
	struct server_conn *c;
	uint64_t count;
	int64_t now, wait;
	int i, n;

	memset(&rd, 0, sizeof(rd));
	rd.srv = srv;
	rd.next_check = INT64_MAX;
	reader_runtime(&rd);
	if ((rd.buf = malloc(READER_CHUNK)) == NULL) {
		podio_log(PODIO_LOG_ERROR, "the reader could not start: out "
		    "of memory");
		reader_fail(srv);
		goto out;
	}
	reader_listen(&rd, 1);
	if (!rd.accepting) {
		podio_log(PODIO_LOG_ERROR, "cannot watch the listening socket: "
		    "%s", strerror(errno));
		reader_fail(srv);
	}
	for (;;) {
		if (atomic_load(&srv->stopping) && !rd.stop_seen)
			reader_stop(&rd);
		reader_backs(&rd);
		if (rd.stop_seen && rd.list == NULL &&
		    atomic_load(&srv->conns) == 0)
			break;
		reader_runtime(&rd);
		reader_resume(&rd);
		now = podio__now_ms();
		if (!rd.accepting && !rd.stop_seen &&
		    rd.accept_at != INT64_MAX && now >= rd.accept_at &&
		    atomic_load(&srv->conns) < srv->conns_max) {
			atomic_store(&srv->room_wanted, 0);
			rd.room_logged = 0;
			reader_listen(&rd, 1);
		}
		if (now >= rd.next_check)
			reader_deadlines(&rd, now);
		wait = rd.next_check == INT64_MAX ? -1 : rd.next_check - now;
		if (!rd.accepting && rd.accept_at > now &&
		    rd.accept_at != INT64_MAX &&
		    (wait < 0 || rd.accept_at - now < wait))
			wait = rd.accept_at - now;
		if (wait > 60000)
			wait = 60000;
		n = epoll_wait(srv->ep, evs, READER_EVENTS, (int)wait);
		if (n < 0) {
			if (errno != EINTR) {
				podio_log(PODIO_LOG_ERROR, "epoll_wait: %s",
				    strerror(errno));
				reader_fail(srv);
				break;
			}
			continue;
		}
		for (i = 0; i < n; i++) {
			if (evs[i].data.ptr == &reader_wake_mark) {
				if (read(srv->evfd, &count, sizeof(count)) < 0)
					continue;
			} else if (evs[i].data.ptr == &reader_listen_mark) {
				if (!rd.stop_seen)
					reader_accept(&rd);
			} else {
				c = evs[i].data.ptr;
				reader_read(&rd, c);
			}
		}
	}
	/* Connections still in hand when the reader fails. */
	while (rd.list != NULL)
		reader_close(&rd, rd.list);
out:
	reader_close_queue(srv);
	free(rd.buf);
	runtime_unref(rd.rt);
	return NULL;
}

/* See server_int.h: the eventfd's place in the epoll set. */
int
server_reader_setup(struct server *srv)
{
	struct epoll_event ev;

	if ((srv->ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
		return -1;
	if ((srv->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK)) < 0)
		return -1;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.ptr = &reader_wake_mark;
	return epoll_ctl(srv->ep, EPOLL_CTL_ADD, srv->evfd, &ev);
}

/*
 * server.c: the FastCGI server (see server.h).
 *
 * Threads: the calling thread handles signals (through a signalfd: every
 * thread blocks SIGTERM, SIGINT and SIGHUP, so they wait in the kernel
 * until it reads them) and reloads; each worker accepts its own
 * connections and serves them one request at a time, so a slow request
 * holds only its own worker.
 *
 * Waking workers: an idle worker waits in an epoll set of its own on the
 * listening socket (EPOLLEXCLUSIVE: the kernel wakes one idle worker per
 * connection; where epoll cannot be used, one worker at a time polls)
 * and on the read end of a pipe that is written once when the server
 * stops and never drained, so every worker sees it, whenever it next
 * looks.  The listening socket is non-blocking, so a worker that loses
 * the race for a connection to another worker (or to a sibling process
 * sharing an inherited socket) goes back to waiting instead of hanging
 * in accept().
 *
 * A stored event's answer waits for the flush of its commit, but not in
 * the worker: the request is handed over with its connection (see
 * server_handle()), the worker goes on, and a finisher thread writes the
 * answers of each flushed commit and closes their connections.
 *
 * The runtime (configuration, callbacks, token store) is swapped under a
 * mutex on SIGHUP; each worker takes a reference at the start of a
 * request and keeps its Podio client for as long as the runtime stays
 * the same.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "fcgi_io.h"
#include "log.h"
#include "process.h"
#include "request.h"
#include "runtime.h"
#include "server.h"
#include "util.h"

/* Descriptors kept for everything but the connections: the spool's
 * handles, the processors' API connections, logs, pipes, callbacks. */
#define SERVER_FD_RESERVE 64
/* How long a worker pauses when the system is out of descriptors. */
#define SERVER_BACKOFF_MS 100
/* Longest FCGI_WEB_SERVER_ADDRS kept. */
#define SERVER_ADDRS_MAX 4096
/* Most processor threads, and how often an idle one looks at the spool
 * for events stored by other processes and retries that came due. */
#define SERVER_PROCESSORS_MAX 4
#define SERVER_POLL_MS 1000
/* How long a processor woken by a new event lets more arrive before it
 * takes them: a burst is then taken, leased and removed with a few
 * commits instead of two per event. */
#define SERVER_GATHER_MS 20
/* How long a processor that took events (but not a full take) waits
 * before it looks again, without asking the spool when the next event is
 * due: under a stream of item events something comes due all the time,
 * and that question reads a row for every item with pending events. */
#define SERVER_STREAM_MS 250
/* How often one processor lets the spool forget old dedup keys (the
 * first time at the start), and how old they must be. */
#define SERVER_FORGET_EVERY_MS ((int64_t)3600 * 1000)
#define SERVER_FORGET_AGE_MS   ((int64_t)7 * 24 * 3600 * 1000)
/* How often one processor gives back the events of processes that ended
 * without finishing them (a server killed before this one started, a
 * sibling under mod_fcgid, a CGI worker); the first time at the start. */
#define SERVER_RECLAIM_EVERY_MS ((int64_t)60 * 1000)

struct server_deferred;

/*
 * The deadline of the request a worker reads (client_timeout from its
 * first byte): the watcher shuts a connection down when its deadline
 * passes, which ends any read libfcgi blocks in.  fd is a duplicate of
 * the connection's descriptor, so that the watcher never touches a
 * descriptor number libfcgi closed and another connection got.
 */
struct server_watch {
	pthread_mutex_t m;
	int fd;                        /* the duplicate, or -1 */
	int64_t until_ms;              /* the deadline (kept after disarming:
	                                  a kept connection's unread body is
	                                  read away within it) */
	int fired;                     /* the deadline passed: shut down */
};

struct server {
	const struct server_config *sc;
	pthread_mutex_t lock;          /* guards rt */
	pthread_mutex_t accept_lock;   /* held by the one worker waiting
	                                  on the listening socket */
	struct runtime *rt;            /* the current runtime */
	int wake[2];                   /* written once at stop, never read */
	int fail[2];                   /* written by a worker whose socket
	                                  failed for good */
	atomic_int stopping;
	atomic_int busy;               /* requests in flight */
	/* When a processor next forgets old dedup keys, and next gives
	 * back the leases of ended processes (see server_turn()). */
	atomic_llong forget_at;
	atomic_llong reclaim_at;
	struct process_spool *ps;      /* the spool and the processors'
	                                  wake-up; owned */
	/* The finisher: answers deferred requests (see server_hand()).
	 * fin_up is set before the workers start and stays. */
	pthread_mutex_t fin_lock;      /* guards the queue, fin_waiting
	                                  and fin_stop */
	pthread_cond_t fin_cond;
	struct server_deferred *fin_head, **fin_tail;
	int fin_waiting;               /* the finisher sleeps on fin_cond */
	int fin_stop;
	int fin_up;                    /* the finisher runs */
	/* The deadlines of the requests being read, one slot per worker
	 * (see server_watcher()); watch_lock guards watch_idle and
	 * watch_stop, each slot has its own lock. */
	struct server_watch *watch;
	atomic_uint watch_next;        /* the next slot a worker takes */
	pthread_t watcher;
	pthread_mutex_t watch_lock;
	pthread_cond_t watch_cond;     /* on CLOCK_MONOTONIC */
	int watch_idle;                /* the watcher sleeps without end */
	int watch_stop;
	int watch_up;                  /* the watcher runs */
	atomic_llong client_timeout_ms; /* of the current runtime */
	/* The connections handed to the finisher that wait for their
	 * answer, and the most that may (see server_room()). */
	atomic_int waiting;
	int waiting_max;
	pthread_mutex_t room_lock;     /* guards room_full */
	pthread_cond_t room_cond;
	int room_full;                 /* logged; workers wait for room */
	char *allowed_addrs;           /* FCGI_WEB_SERVER_ADDRS, or NULL */
	struct stat sock_st;           /* the unix socket file we made */
	int sock_st_ok;
};

/* ------------------------------------------------------------ workers */

/* Whether the peer of a TCP connection is in FCGI_WEB_SERVER_ADDRS (the
 * list libfcgi honours, comma-separated addresses), when it is set. */
static int
server_peer_allowed(const struct server *srv,
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

/* Waits up to ms for the stop; returns 1 when stopping. */
static int
server_pause(struct server *srv, int ms)
{
	struct pollfd p = { srv->wake[0], POLLIN, 0 };

	(void)poll(&p, 1, ms);
	return atomic_load(&srv->stopping);
}

/* Tells the main thread that the socket failed for good. */
static void
server_fail(struct server *srv)
{
	ssize_t r;

	do
		r = write(srv->fail[1], "x", 1);
	while (r < 0 && errno == EINTR);
}

/*
 * The worker's wait for a connection: an epoll set of its own holding
 * the listening socket with EPOLLEXCLUSIVE (the kernel wakes one idle
 * worker per connection, where poll() would wake them all) and the stop
 * pipe.  Returns the epoll descriptor, or -1 when epoll cannot be used;
 * the worker then polls under accept_lock instead.
 */
static int
server_accept_set(struct server *srv)
{
	struct epoll_event ev;
	int ep;

	if ((ep = epoll_create1(EPOLL_CLOEXEC)) == -1)
		return -1;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLEXCLUSIVE;
	ev.data.fd = srv->sc->listen_fd;
	if (epoll_ctl(ep, EPOLL_CTL_ADD, srv->sc->listen_fd, &ev) == -1)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN;
	ev.data.fd = srv->wake[0];
	if (epoll_ctl(ep, EPOLL_CTL_ADD, srv->wake[0], &ev) == -1)
		goto fail;
	return ep;
fail:
	close(ep);
	return -1;
}

/*
 * Waits until the listening socket may have a connection (1) or the
 * server stops (0); -1 with errno set when waiting failed.  With ep < 0,
 * poll() (the caller holds accept_lock).
 */
static int
server_accept_wait(struct server *srv, int ep)
{
	struct epoll_event ev[2];
	struct pollfd p[2];
	int i, n, ready = 0;

	if (ep >= 0) {
		if ((n = epoll_wait(ep, ev, 2, -1)) < 0)
			return -1;
		for (i = 0; i < n; i++) {
			if (ev[i].data.fd == srv->wake[0])
				return 0;
			ready = 1;
		}
		return ready;
	}
	p[0].fd = srv->sc->listen_fd;
	p[0].events = POLLIN;
	p[1].fd = srv->wake[0];
	p[1].events = POLLIN;
	p[0].revents = p[1].revents = 0;
	if (poll(p, 2, -1) < 0)
		return -1;
	if (p[1].revents != 0)
		return 0;
	return p[0].revents != 0;
}

/*
 * Waits for and accepts the next connection, waiting with the epoll set
 * ep (see server_accept_set(); -1 for poll()).  Returns its socket
 * (blocking, close-on-exec), or -1 when the server stops (or the
 * listening socket failed for good; then the main thread is told).
 */
static int
server_accept(struct server *srv, int ep)
{
	struct sockaddr_storage ss;
	socklen_t len;
	int fd, one = 1, w;

	for (;;) {
		if (atomic_load(&srv->stopping))
			return -1;
		if ((w = server_accept_wait(srv, ep)) < 0) {
			if (errno != EINTR && server_pause(srv,
			    SERVER_BACKOFF_MS))
				return -1;
			continue;
		}
		if (w == 0) {
			if (atomic_load(&srv->stopping))
				return -1;
			continue;
		}
		len = sizeof(ss);
		fd = accept4(srv->sc->listen_fd, (struct sockaddr *)&ss, &len,
		    SOCK_CLOEXEC);
		if (fd >= 0) {
			if (!server_peer_allowed(srv, &ss)) {
				close(fd);
				continue;
			}
			if (ss.ss_family == AF_INET || ss.ss_family == AF_INET6)
				(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY,
				    &one, sizeof(one));
			return fd;
		}
		switch (errno) {
		case EAGAIN:
#if EWOULDBLOCK != EAGAIN
		case EWOULDBLOCK:
#endif
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
			if (server_pause(srv, SERVER_BACKOFF_MS))
				return -1;
			continue;
		default:
			if (atomic_load(&srv->stopping))
				return -1;
			podio_log(PODIO_LOG_ERROR, "the listening socket "
			    "failed: %s", strerror(errno));
			server_fail(srv);
			return -1;
		}
	}
}

/* Waits until the kept connection fd has something (a request or its
 * end), the server stops, or the connection has been idle for
 * idle_ms.  Returns 0 for the connection, 1 when it is idle too long,
 * -1 to stop. */
static int
server_wait_conn(struct server *srv, int fd, int64_t idle_ms)
{
	struct pollfd p[2];
	int64_t until = podio__now_ms() + idle_ms, left;
	int n;

	for (;;) {
		p[0].fd = fd;
		p[0].events = POLLIN;
		p[1].fd = srv->wake[0];
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		left = until - podio__now_ms();
		if (left <= 0)
			return 1;
		if ((n = poll(p, 2, left > INT_MAX ? INT_MAX : (int)left)) < 0) {
			if (errno == EINTR)
				continue;
			return 0;
		}
		if (n == 0)
			continue;
		if (p[1].revents != 0)
			return -1;
		if (p[0].revents != 0)
			return 0;
	}
}

/*
 * Makes *rt the current runtime, with *client a client over it: when
 * the runtime changed since the worker's last request, the old client
 * and reference are let go (in that order: the client uses the old
 * token store).  Returns 0, or -1 when no client could be made.
 */
static int
server_take_runtime(struct server *srv, struct runtime **rt,
    struct podio_client **client)
{
	struct runtime *cur;

	pthread_mutex_lock(&srv->lock);
	cur = srv->rt;
	if (cur != *rt)
		cur = runtime_ref(cur);
	else
		cur = NULL;
	pthread_mutex_unlock(&srv->lock);
	if (cur != NULL) {
		podio_client_free(*client);
		*client = NULL;
		runtime_unref(*rt);
		*rt = cur;
	}
	if (*client == NULL && runtime_client(*rt, client) != PODIO_OK) {
		*client = NULL;
		return -1;
	}
	return 0;
}

/* A connection whose request waits for the flush of its event. */
struct server_deferred {
	struct server *srv;
	struct fcgi_io_conn *conn;     /* owned */
	void (*fn)(void *);            /* its end, handed to the finisher */
	void *arg;
	struct server_deferred *next;  /* in the finisher's queue */
};

/*
 * struct request_defer's hand: queues fn(arg) for the finisher thread,
 * waking it when it sleeps (once per commit's worth of answers).  Without
 * a finisher, fn runs here.
 */
static void
server_hand(void *ctx, void (*fn)(void *), void *arg)
{
	struct server_deferred *dc = ctx;
	struct server *srv = dc->srv;

	if (!srv->fin_up) {
		fn(arg);
		return;
	}
	dc->fn = fn;
	dc->arg = arg;
	dc->next = NULL;
	pthread_mutex_lock(&srv->fin_lock);
	*srv->fin_tail = dc;
	srv->fin_tail = &dc->next;
	if (srv->fin_waiting)
		pthread_cond_signal(&srv->fin_cond);
	pthread_mutex_unlock(&srv->fin_lock);
}

/* In the finisher thread, while it runs a batch: the requests whose
 * connections wait to be finished until the batch's log lines are
 * written (so a client that has its answer finds its log line). */
static _Thread_local struct server_deferred **server_fin_tail;

/* Finishes (closes) and frees the connection of an answered deferred
 * request, which then no longer counts as busy. */
static void
server_deferred_end(struct server_deferred *dc)
{
	struct server *srv = dc->srv;

	fcgi_io_conn_finish(dc->conn);
	fcgi_io_conn_free(dc->conn);
	atomic_fetch_sub(&srv->busy, 1);
	if (atomic_fetch_sub(&srv->waiting, 1) == srv->waiting_max) {
		pthread_mutex_lock(&srv->room_lock);
		pthread_cond_broadcast(&srv->room_cond);
		pthread_mutex_unlock(&srv->room_lock);
	}
	free(dc);
}

/*
 * The finisher thread: writes the answers and log lines of deferred
 * requests and closes their connections, beside the thread leading the
 * spool's commits.  At the stop it ends what is queued, then returns.
 */
static void *
server_finisher(void *arg)
{
	struct server *srv = arg;
	struct server_deferred *list, *dc, *next, *ended;

	pthread_mutex_lock(&srv->fin_lock);
	for (;;) {
		while (srv->fin_head == NULL && !srv->fin_stop) {
			srv->fin_waiting = 1;
			pthread_cond_wait(&srv->fin_cond, &srv->fin_lock);
			srv->fin_waiting = 0;
		}
		if (srv->fin_head == NULL)
			break;
		list = srv->fin_head;
		srv->fin_head = NULL;
		srv->fin_tail = &srv->fin_head;
		pthread_mutex_unlock(&srv->fin_lock);
		/* The answers and log lines of the whole batch, the lines
		 * in one write, then the connections. */
		ended = NULL;
		server_fin_tail = &ended;
		podio__log_hold();
		for (dc = list; dc != NULL; dc = next) {
			/* fn hands dc to server_deferred_done(). */
			next = dc->next;
			dc->fn(dc->arg);
		}
		podio__log_release();
		server_fin_tail = NULL;
		for (dc = ended; dc != NULL; dc = next) {
			next = dc->next;
			server_deferred_end(dc);
		}
		pthread_mutex_lock(&srv->fin_lock);
	}
	pthread_mutex_unlock(&srv->fin_lock);
	return NULL;
}

/* struct request_defer's done: the answer was written; the connection
 * is finished (closed) and freed, and the request no longer counts. */
static void
server_deferred_done(void *ctx)
{
	struct server_deferred *dc = ctx;

	if (server_fin_tail != NULL) {
		dc->next = NULL;
		*server_fin_tail = dc;
		server_fin_tail = &dc->next;
		return;
	}
	server_deferred_end(dc);
}

/*
 * Handles the request read on *conn.  On a connection the web server
 * does not keep, an event to store does not hold the worker until its
 * flush (see struct request_defer): the connection goes with the request,
 * *conn becomes the spare connection object (made first, so that running
 * short of memory only means waiting), and 1 is returned.  Else 0: the
 * request was answered, and the caller finishes *conn.
 */
static int
server_handle(struct server *srv, struct fcgi_io_conn **conn,
    struct fcgi_io_conn **spare, const struct request_io *io,
    struct runtime *rt, struct podio_client *client)
{
	struct request_defer defer;
	struct server_deferred *dc = NULL;

	if (fcgi_io_conn_kept(*conn) || (*spare == NULL &&
	    (*spare = fcgi_io_conn_new()) == NULL) ||
	    (dc = malloc(sizeof(*dc))) == NULL) {
		(void)request_handle(io, rt, client, srv->ps, NULL, NULL);
		return 0;
	}
	memset(dc, 0, sizeof(*dc));
	dc->srv = srv;
	dc->conn = *conn;
	defer.done = server_deferred_done;
	defer.hand = server_hand;
	defer.ctx = dc;
	if (request_handle(io, rt, client, srv->ps, NULL, &defer) !=
	    REQUEST_DEFERRED) {
		free(dc);
		return 0;
	}
	/* The request owns the connection now; it may be gone already
	 * (and counted out again: the count may dip below 0 meanwhile). */
	atomic_fetch_add(&srv->waiting, 1);
	*conn = *spare;
	*spare = NULL;
	return 1;
}

/* Watches the connection fd until until_ms (see struct server_watch);
 * without a duplicate descriptor (none left) it goes unwatched. */
static void
server_watch_arm(struct server *srv, struct server_watch *w, int fd,
    int64_t until_ms)
{
	if (w == NULL)
		return;
	pthread_mutex_lock(&w->m);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	w->until_ms = until_ms;
	w->fired = 0;
	pthread_mutex_unlock(&w->m);
	pthread_mutex_lock(&srv->watch_lock);
	if (srv->watch_idle)
		pthread_cond_signal(&srv->watch_cond);
	pthread_mutex_unlock(&srv->watch_lock);
}

/* Stops watching; returns whether the deadline had passed (the
 * connection was shut down). */
static int
server_watch_end(struct server_watch *w)
{
	int fired;

	if (w == NULL)
		return 0;
	pthread_mutex_lock(&w->m);
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	fired = w->fired;
	pthread_mutex_unlock(&w->m);
	return fired;
}

/*
 * The watcher thread: shuts down each connection whose deadline passed
 * (shutdown() wakes a read blocked on it, which then fails), sleeping
 * until the next deadline, or until a worker arms one when none is.
 */
static void *
server_watcher(void *arg)
{
	struct server *srv = arg;
	struct server_watch *w;
	struct timespec ts;
	int64_t now, next;
	unsigned i, n = srv->sc->workers;

	pthread_mutex_lock(&srv->watch_lock);
	while (!srv->watch_stop) {
		now = podio__now_ms();
		next = INT64_MAX;
		for (i = 0; i < n; i++) {
			w = &srv->watch[i];
			pthread_mutex_lock(&w->m);
			if (w->fd >= 0 && !w->fired) {
				if (w->until_ms <= now) {
					(void)shutdown(w->fd, SHUT_RDWR);
					w->fired = 1;
				} else if (w->until_ms < next)
					next = w->until_ms;
			}
			pthread_mutex_unlock(&w->m);
		}
		if (next == INT64_MAX) {
			srv->watch_idle = 1;
			pthread_cond_wait(&srv->watch_cond, &srv->watch_lock);
			srv->watch_idle = 0;
			continue;
		}
		ts.tv_sec = (time_t)(next / 1000);
		ts.tv_nsec = (long)(next % 1000) * 1000000L;
		(void)pthread_cond_timedwait(&srv->watch_cond, &srv->watch_lock,
		    &ts);
	}
	pthread_mutex_unlock(&srv->watch_lock);
	return NULL;
}

/* The calling worker's slot, for server_input_done(). */
static _Thread_local struct server_watch *server_my_watch;

/* struct request_io's input_done: the request was read (or is refused
 * unread); its deadline no longer runs. */
static int
server_input_done(void *ctx)
{
	(void)ctx;
	return server_watch_end(server_my_watch);
}

/*
 * Waits, before a worker accepts a connection, while waiting_max
 * connections wait for their answer (their events' flush): beyond that
 * no new connection is taken (the kernel's listen queue holds them), so
 * that descriptors never run out while the disk is slow.  Returns 0, or
 * -1 when the server stops.
 */
static int
server_room(struct server *srv)
{
	if (atomic_load(&srv->waiting) < srv->waiting_max)
		return 0;
	pthread_mutex_lock(&srv->room_lock);
	if (!srv->room_full && atomic_load(&srv->waiting) >=
	    srv->waiting_max) {
		srv->room_full = 1;
		podio_log(PODIO_LOG_WARN, "%d connections wait for their "
		    "answer, the most this process keeps open: new "
		    "connections wait until some are answered",
		    srv->waiting_max);
	}
	while (atomic_load(&srv->waiting) >= srv->waiting_max &&
	    !atomic_load(&srv->stopping))
		pthread_cond_wait(&srv->room_cond, &srv->room_lock);
	srv->room_full = 0;
	pthread_mutex_unlock(&srv->room_lock);
	return atomic_load(&srv->stopping) ? -1 : 0;
}

/* One worker thread: accept, serve the connection's requests, repeat. */
static void *
server_worker(void *arg)
{
	struct server *srv = arg;
	struct fcgi_io_conn *conn, *spare = NULL;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct request_io io;
	struct server_watch *w = NULL;
	unsigned slot;
	int64_t t0, timeout;
	int fd, ep, rc;

	if ((conn = fcgi_io_conn_new()) == NULL) {
		podio_log(PODIO_LOG_ERROR, "a worker could not start: out of "
		    "memory");
		return NULL;
	}
	slot = atomic_fetch_add(&srv->watch_next, 1);
	if (srv->watch_up && slot < srv->sc->workers)
		w = &srv->watch[slot];
	server_my_watch = w;
	ep = server_accept_set(srv);
	for (;;) {
		timeout = atomic_load(&srv->client_timeout_ms);
		if ((fd = fcgi_io_conn_fd(conn)) < 0) {
			/* Without epoll, one worker at a time polls the
			 * listening socket: poll() would wake every idle
			 * worker for each connection. */
			if (server_room(srv) != 0)
				break;
			if (ep < 0)
				pthread_mutex_lock(&srv->accept_lock);
			fd = server_accept(srv, ep);
			if (ep < 0)
				pthread_mutex_unlock(&srv->accept_lock);
			if (fd < 0)
				break;
			fcgi_io_conn_attach(conn, fd);
		} else if ((rc = server_wait_conn(srv, fd, timeout)) != 0) {
			if (rc < 0)
				break;
			/* A kept connection idle for client_timeout. */
			fcgi_io_conn_close(conn);
			continue;
		}
		/* The whole request, head and body, within client_timeout
		 * of its first byte (or of the connection). */
		t0 = podio__now_ms();
		server_watch_arm(srv, w, fd, t0 + timeout);
		if (fcgi_io_conn_next(conn, &io) != 0) {
			if (server_watch_end(w))
				request_log_late(podio__now_ms() - t0);
			continue;
		}
		io.input_done = w != NULL ? server_input_done : NULL;
		atomic_fetch_add(&srv->busy, 1);
		if (server_take_runtime(srv, &rt, &client) != 0)
			request_answer_error(&io, 500, "out of memory");
		else if (server_handle(srv, &conn, &spare, &io, rt, client)) {
			(void)server_watch_end(w);
			continue;  /* answered when its event is flushed */
		}
		/* A body left unread on a kept connection is read away
		 * within what is left of the request's deadline. */
		if (w != NULL && fcgi_io_conn_kept(conn) &&
		    (fd = fcgi_io_conn_fd(conn)) >= 0)
			server_watch_arm(srv, w, fd, w->until_ms);
		fcgi_io_conn_finish(conn);
		(void)server_watch_end(w);
		atomic_fetch_sub(&srv->busy, 1);
	}
	fcgi_io_conn_free(conn);
	fcgi_io_conn_free(spare);
	if (ep >= 0)
		close(ep);
	podio_client_free(client);
	runtime_unref(rt);
	return NULL;
}

/* ------------------------------------------------------------ processors */

/*
 * How long an idle processor may wait: until the next retry or lease
 * expiry the spool knows of, at most SERVER_POLL_MS (other processes
 * sharing the spool store events this one is not told about).
 */
static int64_t
server_idle_ms(const struct runtime *rt, struct podio_spool *spool)
{
	int64_t when, ms;

	if ((when = process_next_due(rt, spool)) <= 0)
		return SERVER_POLL_MS;
	ms = when - process_now_ms();
	if (ms < 10)
		ms = 10;
	return ms < SERVER_POLL_MS ? ms : SERVER_POLL_MS;
}

/*
 * The spool handle of one processor thread: its own, so that its
 * transactions (taking, finishing, checkpoints) never hold up the
 * appends of the request workers on theirs.  Opened on first use and
 * again when spool_dir changed with a reload.  Returns the handle, or
 * NULL with err filled.
 */
static struct podio_spool *
server_own_spool(struct podio_spool **own, char **own_dir, const char *dir,
    char *err, size_t errlen)
{
	char *copy;

	if (dir == NULL || dir[0] == '\0') {
		snprintf(err, errlen, "spool_dir is not set");
		return NULL;
	}
	if (*own != NULL && *own_dir != NULL && strcmp(*own_dir, dir) == 0)
		return *own;
	podio_spool_close(*own);
	*own = NULL;
	free(*own_dir);
	*own_dir = NULL;
	if ((copy = strdup(dir)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (podio_spool_open(dir, own, err, errlen) != PODIO_OK) {
		*own = NULL;
		free(copy);
		return NULL;
	}
	*own_dir = copy;
	return *own;
}

/* Whether the calling processor does a chore of the spool now: the
 * first one to find *at passed does it and sets the next time every ms
 * later, so one processor of the process does it each time, the first
 * time at the start. */
static int
server_turn(atomic_llong *at, int64_t every)
{
	long long when = atomic_load(at);
	long long now = (long long)process_now_ms();

	return now >= when && atomic_compare_exchange_strong(at, &when,
	    now + every);
}

/*
 * One processor thread: takes events from the spool and runs them (see
 * process.h) until the server stops; the event in hand is finished
 * first.  Woken when a worker of this process stored an event.
 */
static void *
server_processor(void *arg)
{
	struct server *srv = arg;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool, *own = NULL;
	char err[512], *own_dir = NULL;
	struct process_counts counts;
	struct process_gen gen;
	int warned = 0, woken = 0;
	enum process_outcome out;

	while (!process_spool_stopping(srv->ps)) {
		gen = process_spool_generation(srv->ps);
		if (server_take_runtime(srv, &rt, &client) != 0) {
			(void)process_spool_wait(srv->ps, gen, SERVER_POLL_MS);
			continue;
		}
		err[0] = '\0';
		spool = server_own_spool(&own, &own_dir,
		    podio_config_get(rt->cfg, "spool_dir"), err, sizeof(err));
		if (spool == NULL) {
			if (!warned)
				podio_log(PODIO_LOG_ERROR, "cannot open the "
				    "spool (events wait): %s", err);
			warned = 1;
			(void)process_spool_wait(srv->ps, gen, SERVER_POLL_MS);
			continue;
		}
		warned = 0;
		if (server_turn(&srv->forget_at, SERVER_FORGET_EVERY_MS))
			(void)podio_spool_forget(spool, SERVER_FORGET_AGE_MS,
			    NULL);
		if (server_turn(&srv->reclaim_at, SERVER_RECLAIM_EVERY_MS))
			(void)podio_spool_reclaim(spool, NULL);
		if (woken) {
			process_spool_taking(srv->ps);
			woken = 0;
		}
		memset(&counts, 0, sizeof(counts));
		out = process_one(rt, client, spool, &counts);
		if (out == PROCESS_ERROR) {
			(void)process_spool_wait(srv->ps, gen, SERVER_POLL_MS);
			continue;
		}
		if (out != PROCESS_IDLE && counts.full_takes > 0) {
			/* A backlog: go on, and let one more help. */
			process_spool_help(srv->ps);
			continue;
		}
		/* Everything due was taken: wait for news, then let more
		 * gather so that one take serves a burst. */
		switch (process_spool_wait(srv->ps, gen, out == PROCESS_IDLE ?
		    server_idle_ms(rt, spool) : SERVER_STREAM_MS)) {
		case PROCESS_WAKE_NEWS:
			woken = 1;
			(void)process_spool_gather(srv->ps, SERVER_GATHER_MS);
			break;
		default:
			break;
		}
	}
	if (woken)
		process_spool_taking(srv->ps);
	podio_client_free(client);
	runtime_unref(rt);
	podio_spool_close(own);
	free(own_dir);
	return NULL;
}

/* ------------------------------------------------------------ control */

/*
 * SIGHUP: the log file (a "file:" log_target) opened again, so that a
 * rotation that renamed it is followed even when the configuration
 * cannot be read now; then a new runtime from the configuration's
 * sources (whose log_target is opened anew too), or the old one kept
 * with the reason logged.
 */
static void
server_reload(struct server *srv)
{
	struct runtime *next = NULL, *old;
	char err[1024];

	if (podio__log_reopen() != PODIO_OK)
		podio_log(PODIO_LOG_ERROR, "the log file cannot be opened "
		    "again, the old one stays in use: %s", strerror(errno));
	err[0] = '\0';
	if (srv->sc->reload == NULL ||
	    srv->sc->reload(srv->sc->reload_arg, srv->rt, &next, err,
	    sizeof(err)) != 0) {
		podio_log(PODIO_LOG_ERROR, "configuration not reloaded, the "
		    "previous one stays in use: %s",
		    err[0] != '\0' ? err : "no way to reload");
		return;
	}
	pthread_mutex_lock(&srv->lock);
	old = srv->rt;
	srv->rt = next;
	atomic_store(&srv->client_timeout_ms, next->client_timeout_ms);
	pthread_mutex_unlock(&srv->lock);
	runtime_unref(old);
	podio_log(PODIO_LOG_INFO, "configuration reloaded");
}

/* Removes the unix socket file, if it is still the one we made. */
static void
server_remove_socket(struct server *srv)
{
	struct stat st;

	if (srv->sc->unix_path == NULL || !srv->sock_st_ok)
		return;
	srv->sock_st_ok = 0;
	if (lstat(srv->sc->unix_path, &st) == 0 &&
	    st.st_dev == srv->sock_st.st_dev &&
	    st.st_ino == srv->sock_st.st_ino)
		(void)unlink(srv->sc->unix_path);
}

/* Waits for signals (and a failed socket).  Returns the exit status. */
static int
server_wait(struct server *srv, int sfd)
{
	struct signalfd_siginfo si;
	struct pollfd p[2];
	ssize_t r;

	for (;;) {
		p[0].fd = sfd;
		p[0].events = POLLIN;
		p[1].fd = srv->fail[0];
		p[1].events = POLLIN;
		p[0].revents = p[1].revents = 0;
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			podio_log(PODIO_LOG_ERROR, "poll: %s", strerror(errno));
			return 1;
		}
		if (p[1].revents != 0)
			return 1;
		if (p[0].revents == 0)
			continue;
		r = read(sfd, &si, sizeof(si));
		if (r != (ssize_t)sizeof(si))
			continue;
		if (si.ssi_signo == SIGHUP) {
			server_reload(srv);
			continue;
		}
		podio_log(PODIO_LOG_INFO, "%s: stopping; %d request%s in "
		    "flight", si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM",
		    atomic_load(&srv->busy),
		    atomic_load(&srv->busy) == 1 ? "" : "s");
		return 0;
	}
}

/* Takes every signal of set still pending, without waiting. */
static void
server_drain_signals(const sigset_t *set)
{
	static const struct timespec zero = { 0, 0 };

	while (sigtimedwait(set, NULL, &zero) > 0)
		;
}

/*
 * The most connections that may wait for their answer: what the
 * descriptor limit leaves once SERVER_FD_RESERVE and four per worker
 * (its connection, its duplicate for the watcher, its epoll set, its API
 * connection) are set aside; at least one per worker.
 */
static int
server_waiting_max(unsigned workers)
{
	struct rlimit rl;
	rlim_t left, reserve = SERVER_FD_RESERVE + 4 * (rlim_t)workers;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY)
		return INT_MAX;
	left = rl.rlim_cur > reserve ? rl.rlim_cur - reserve : 0;
	if (left < workers)
		left = workers;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/*
 * Starts the watcher with a slot per worker (see struct server_watch).
 * Without it (no memory, no thread) requests are read without a
 * deadline, as is logged.
 */
static void
server_watch_start(struct server *srv)
{
	pthread_condattr_t ca;
	unsigned i, n = srv->sc->workers;

	if ((srv->watch = calloc(n, sizeof(*srv->watch))) == NULL)
		goto fail;
	for (i = 0; i < n; i++) {
		pthread_mutex_init(&srv->watch[i].m, NULL);
		srv->watch[i].fd = -1;
	}
	pthread_mutex_init(&srv->watch_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->watch_cond, &ca);
	pthread_condattr_destroy(&ca);
	if (pthread_create(&srv->watcher, NULL, server_watcher, srv) != 0) {
		pthread_cond_destroy(&srv->watch_cond);
		pthread_mutex_destroy(&srv->watch_lock);
		for (i = 0; i < n; i++)
			pthread_mutex_destroy(&srv->watch[i].m);
		free(srv->watch);
		srv->watch = NULL;
		goto fail;
	}
	(void)pthread_setname_np(srv->watcher, "pw-watcher");
	srv->watch_up = 1;
	return;
fail:
	podio_log(PODIO_LOG_WARN, "cannot start the request deadlines: "
	    "requests are read without client_timeout");
}

/* Stops the watcher (the workers are gone). */
static void
server_watch_stop(struct server *srv)
{
	unsigned i;

	if (!srv->watch_up)
		return;
	pthread_mutex_lock(&srv->watch_lock);
	srv->watch_stop = 1;
	pthread_cond_signal(&srv->watch_cond);
	pthread_mutex_unlock(&srv->watch_lock);
	pthread_join(srv->watcher, NULL);
	srv->watch_up = 0;
	for (i = 0; i < srv->sc->workers; i++) {
		if (srv->watch[i].fd >= 0)
			close(srv->watch[i].fd);
		pthread_mutex_destroy(&srv->watch[i].m);
	}
	pthread_cond_destroy(&srv->watch_cond);
	pthread_mutex_destroy(&srv->watch_lock);
	free(srv->watch);
	srv->watch = NULL;
}

/* See server.h. */
int
server_run(const struct server_config *sc, struct runtime *rt)
{
	struct server srv;
	sigset_t set, old;
	pthread_t *threads = NULL, procs[SERVER_PROCESSORS_MAX], finisher;
	const char *addrs;
	unsigned i, started = 0, nprocs = 0, want;
	int sfd = -1, flags, status = 1, masked = 0, locked = 0, rc;
	ssize_t w;

	memset(&srv, 0, sizeof(srv));
	srv.sc = sc;
	srv.rt = rt;
	srv.wake[0] = srv.wake[1] = srv.fail[0] = srv.fail[1] = -1;
	atomic_init(&srv.stopping, 0);
	atomic_init(&srv.busy, 0);
	if (pthread_mutex_init(&srv.lock, NULL) != 0) {
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_mutex_init");
		goto fail;
	}
	if (pthread_mutex_init(&srv.accept_lock, NULL) != 0) {
		pthread_mutex_destroy(&srv.lock);
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_mutex_init");
		goto fail;
	}
	if (pthread_mutex_init(&srv.fin_lock, NULL) != 0) {
		pthread_mutex_destroy(&srv.accept_lock);
		pthread_mutex_destroy(&srv.lock);
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_mutex_init");
		goto fail;
	}
	if (pthread_cond_init(&srv.fin_cond, NULL) != 0) {
		pthread_mutex_destroy(&srv.fin_lock);
		pthread_mutex_destroy(&srv.accept_lock);
		pthread_mutex_destroy(&srv.lock);
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_cond_init");
		goto fail;
	}
	srv.fin_tail = &srv.fin_head;
	locked = 1;
	atomic_init(&srv.client_timeout_ms, rt->client_timeout_ms);
	atomic_init(&srv.watch_next, 0);
	atomic_init(&srv.waiting, 0);
	srv.waiting_max = server_waiting_max(sc->workers);
	pthread_mutex_init(&srv.room_lock, NULL);
	pthread_cond_init(&srv.room_cond, NULL);
	if (sc->unix_path != NULL &&
	    lstat(sc->unix_path, &srv.sock_st) == 0)
		srv.sock_st_ok = 1;
	addrs = getenv("FCGI_WEB_SERVER_ADDRS");
	if (addrs != NULL && addrs[0] != '\0' &&
	    (srv.allowed_addrs = strndup(addrs, SERVER_ADDRS_MAX)) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	if (pthread_sigmask(SIG_BLOCK, &set, &old) != 0) {
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_sigmask");
		goto fail;
	}
	masked = 1;
	if ((sfd = signalfd(-1, &set, SFD_CLOEXEC)) < 0 ||
	    pipe2(srv.wake, O_CLOEXEC) != 0 ||
	    pipe2(srv.fail, O_CLOEXEC | O_NONBLOCK) != 0) {
		podio_log(PODIO_LOG_ERROR, "cannot start: %s", strerror(errno));
		goto fail;
	}
	flags = fcntl(sc->listen_fd, F_GETFL);
	if (flags < 0 || fcntl(sc->listen_fd, F_SETFL, flags | O_NONBLOCK) <
	    0) {
		podio_log(PODIO_LOG_ERROR, "cannot start: the listening "
		    "socket: %s", strerror(errno));
		goto fail;
	}
	if (fcgi_io_init() != 0) {
		podio_log(PODIO_LOG_ERROR, "cannot start: FastCGI library "
		    "initialisation failed");
		goto fail;
	}

	if ((srv.ps = process_spool_new()) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}
	if ((threads = calloc(sc->workers, sizeof(*threads))) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}
	/* Started with the signals blocked, like every thread here. */
	server_watch_start(&srv);
	/* Without the finisher, the answers are written by the thread
	 * leading the commits. */
	if (pthread_create(&finisher, NULL, server_finisher, &srv) == 0) {
		srv.fin_up = 1;
		(void)pthread_setname_np(finisher, "pw-finisher");
	}
	for (i = 0; i < sc->workers; i++) {
		if ((rc = pthread_create(&threads[i], NULL, server_worker,
		    &srv)) != 0) {
			podio_log(PODIO_LOG_WARN, "could start only %u of %u "
			    "workers: %s", i, sc->workers, strerror(rc));
			break;
		}
		/* The names show in top -H and ps -L, and the benchmark
		 * splits the server's CPU by them. */
		(void)pthread_setname_np(threads[i], "pw-worker");
		started++;
	}
	if (started == 0)
		goto fail;
	want = started < SERVER_PROCESSORS_MAX ? started :
	    SERVER_PROCESSORS_MAX;
	for (i = 0; i < want; i++) {
		if ((rc = pthread_create(&procs[i], NULL, server_processor,
		    &srv)) != 0) {
			podio_log(PODIO_LOG_WARN, "could start only %u of %u "
			    "spool processors: %s", i, want, strerror(rc));
			break;
		}
		(void)pthread_setname_np(procs[i], "pw-processor");
		nprocs++;
	}
	podio_log(PODIO_LOG_INFO, "serving FastCGI on %s with %u worker%s "
	    "and %u spool processor%s", sc->what, started,
	    started == 1 ? "" : "s", nprocs, nprocs == 1 ? "" : "s");

	status = server_wait(&srv, sfd);

	/* Stop accepting: new connections are refused at once (a socket
	 * inherited from fd 0 may be shared, so it is only left alone);
	 * workers finish what they are doing and see the pipe. */
	atomic_store(&srv.stopping, 1);
	process_spool_stop(srv.ps);
	server_remove_socket(&srv);
	if (sc->own_socket)
		(void)shutdown(sc->listen_fd, SHUT_RDWR);
	do
		w = write(srv.wake[1], "x", 1);
	while (w < 0 && errno == EINTR);
fail:
	if (started > 0 && !atomic_load(&srv.stopping)) {
		atomic_store(&srv.stopping, 1);
		do
			w = write(srv.wake[1], "x", 1);
		while (w < 0 && errno == EINTR);
	}
	/* Workers waiting for room see the stop. */
	if (locked) {
		pthread_mutex_lock(&srv.room_lock);
		pthread_cond_broadcast(&srv.room_cond);
		pthread_mutex_unlock(&srv.room_lock);
	}
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	server_watch_stop(&srv);
	/* The workers are back, so every commit is over: the finisher ends
	 * the answers still queued and stops. */
	if (srv.fin_up) {
		pthread_mutex_lock(&srv.fin_lock);
		srv.fin_stop = 1;
		pthread_cond_signal(&srv.fin_cond);
		pthread_mutex_unlock(&srv.fin_lock);
		pthread_join(finisher, NULL);
	}
	/* The processors finish the event in hand (done, or given back
	 * for a later try) and stop. */
	if (srv.ps != NULL)
		process_spool_stop(srv.ps);
	for (i = 0; i < nprocs; i++)
		pthread_join(procs[i], NULL);
	process_spool_free(srv.ps);
	if (started > 0)
		podio_log(PODIO_LOG_INFO, "stopped");
	free(threads);
	server_remove_socket(&srv);
	if (sfd >= 0)
		close(sfd);
	for (i = 0; i < 2; i++) {
		if (srv.wake[i] >= 0)
			close(srv.wake[i]);
		if (srv.fail[i] >= 0)
			close(srv.fail[i]);
	}
	if (masked) {
		/* Signals that came while the requests drained are consumed
		 * here: the server is gone, and a SIGHUP or a second SIGTERM
		 * must not kill the process once they are unblocked. */
		server_drain_signals(&set);
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	runtime_unref(srv.rt);
	free(srv.allowed_addrs);
	if (locked) {
		pthread_cond_destroy(&srv.room_cond);
		pthread_mutex_destroy(&srv.room_lock);
		pthread_cond_destroy(&srv.fin_cond);
		pthread_mutex_destroy(&srv.fin_lock);
		pthread_mutex_destroy(&srv.accept_lock);
		pthread_mutex_destroy(&srv.lock);
	}
	return status;
}

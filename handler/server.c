/*
 * server.c: the FastCGI server (see server.h).
 *
 * Threads: the calling thread handles signals (through a signalfd: every
 * thread blocks SIGTERM, SIGINT and SIGHUP, so they wait in the kernel
 * until it reads them) and reloads; one reader thread accepts the
 * connections and reads their requests as they come (server_reader.c);
 * the workers take the requests that have arrived from a queue and
 * handle them one at a time, so no client, however slow, holds a worker
 * while it sends; a few processor threads run the stored events; a heal
 * thread runs `hooks heal` every heal_interval (server_heal.c).
 *
 * A stored event's answer waits for the flush of its commit, but not in
 * the worker: the request is handed over with its connection (see
 * server_handle()), the worker goes on, and a finisher thread sends the
 * answers of each flushed commit.  Answers are sent without waiting, so
 * no connection delays another's.
 *
 * The runtime (configuration, callbacks, token store) is swapped under a
 * mutex on SIGHUP; each worker takes a reference at the start of a
 * request and keeps its Podio client for as long as the runtime stays
 * the same.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "fcgi_io.h"
#include "log.h"
#include "metrics.h"
#include "metrics_http.h"
#include "process.h"
#include "request.h"
#include "runtime.h"
#include "server.h"
#include "server_int.h"
#include "util.h"

/* Descriptors kept for everything but the connections: the spool's
 * handles, the processors' API connections, logs, pipes, callbacks. */
#define SERVER_FD_RESERVE 64
/* Longest FCGI_WEB_SERVER_ADDRS kept. */
#define SERVER_ADDRS_MAX 4096
/* Most processor threads, and how often an idle one looks at the spool
 * for events stored by other processes and retries that came due. */
#define SERVER_PROCESSORS_MAX 4
#define SERVER_POLL_MS 1000
/* The longest one wait of the listener thread for the spool's news. */
#define SERVER_LISTEN_MS 500
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

/* ------------------------------------------------------------ workers */

/*
 * See server_int.h.  When the runtime changed since the thread's last
 * turn, the old client and reference are let go (in that order: the
 * client uses the old token store).
 */
int
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
	struct server_conn *conn;      /* owned */
	void (*fn)(void *);            /* its end, handed to the finisher */
	void *arg;
	struct server_deferred *next;  /* in the finisher's queue */
};

/*
 * The end of a request whose answer io's write gathered: the answer is
 * sent at once (never waiting for the web server: one that does not
 * read it loses its connection), then the connection is closed, or
 * handed back to the reader when the web server keeps it.  The request
 * no longer counts as busy.
 */
static void
server_conn_done(struct server *srv, struct server_conn *c)
{
	server_conn_unhold(srv, c);
	atomic_fetch_sub(&srv->busy, 1);
	if (fcgi_io_conn_answer(c->io) != 0) {
		podio_log(PODIO_LOG_WARN, "could not send an answer at once: "
		    "the web server does not read it, or is gone; its "
		    "connection is closed");
		server_conn_close(srv, c);
		return;
	}
	/* The rest of a body left unread (a refusal, or a body longer
	 * than announced) is read away by the reader, on any connection:
	 * a web server whose sending fails may show an error instead of
	 * the answer.  It holds no worker. */
	if (fcgi_io_conn_state(c->io) != FCGI_IO_DRAIN &&
	    (!fcgi_io_conn_kept(c->io) || atomic_load(&srv->stopping))) {
		fcgi_io_conn_discard_input(c->io);
		server_conn_close(srv, c);
		return;
	}
	server_conn_back(srv, c);
}

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

/* Sends the answer of a deferred request and frees it. */
static void
server_deferred_end(struct server_deferred *dc)
{
	server_conn_done(dc->srv, dc->conn);
	free(dc);
}

/*
 * The finisher thread: writes the answers and log lines of deferred
 * requests and sends them, beside the thread leading the spool's
 * commits.  No answer waits for a web server, so none holds up another.
 * At the stop it ends what is queued, then returns.
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

/* struct request_defer's done: the answer was gathered; it is sent and
 * the connection finished (see server_conn_done()). */
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
 * Handles the request that arrived on c.  An event to store does not
 * hold the worker until its flush (see struct request_defer): the
 * connection goes with the request and 1 is returned.  Else 0: the
 * answer is gathered, and the caller ends c with server_conn_done().
 */
static int
server_handle(struct server *srv, struct server_conn *c,
    const struct request_io *io, struct runtime *rt,
    struct podio_client *client)
{
	struct request_defer defer;
	struct server_deferred *dc;

	if ((dc = calloc(1, sizeof(*dc))) == NULL) {
		(void)request_handle(io, rt, client, srv->ps, NULL, NULL);
		return 0;
	}
	dc->srv = srv;
	dc->conn = c;
	defer.done = server_deferred_done;
	defer.hand = server_hand;
	defer.ctx = dc;
	if (request_handle(io, rt, client, srv->ps, NULL, &defer) !=
	    REQUEST_DEFERRED) {
		free(dc);
		return 0;
	}
	/* The request owns the connection now; it may be gone already. */
	return 1;
}

/* The next request that arrived, waiting for one; NULL once the reader
 * closed the queue and it is empty. */
static struct server_conn *
server_queue_take(struct server *srv)
{
	struct server_conn *c;

	pthread_mutex_lock(&srv->q_lock);
	while (srv->q_head == NULL && !srv->q_closed)
		pthread_cond_wait(&srv->q_cond, &srv->q_lock);
	c = srv->q_head;
	if (c != NULL) {
		srv->q_head = c->qnext;
		if (srv->q_head == NULL)
			srv->q_tail = &srv->q_head;
		c->qnext = NULL;
	}
	pthread_mutex_unlock(&srv->q_lock);
	return c;
}

/* One worker thread: handles the requests that arrived, one at a time. */
static void *
server_worker(void *arg)
{
	struct server *srv = arg;
	struct server_conn *c;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct request_io io;

	while ((c = server_queue_take(srv)) != NULL) {
		fcgi_io_conn_request(c->io, &io);
		if (server_take_runtime(srv, &rt, &client) != 0)
			request_answer_error(&io, 500, "out of memory");
		else if (server_handle(srv, c, &io, rt, client))
			continue;  /* answered when its event is flushed */
		server_conn_done(srv, c);
	}
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
 * again when spool_url or spool_dir changed with a reload.  Returns the
 * handle, or NULL with err filled.
 */
struct podio_spool *
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
		    podio_config_spool(rt->cfg), err, sizeof(err));
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
		metrics_processed(rt->metrics, &counts);
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

/*
 * The listener thread, started when the spool tells of events other
 * hosts stored (PostgreSQL's LISTEN/NOTIFY): it waits for that news on a
 * handle of its own and wakes a processor, so that an event another
 * host acknowledged is taken at once instead of at the next poll.  It
 * ends when a reload names a spool that cannot tell (SQLite: the
 * processors poll as before).  It never waits with the processors
 * (process_spool_wait()): a wake-up meant for one must reach one.
 */
static void *
server_listener(void *arg)
{
	struct server *srv = arg;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool, *own = NULL;
	char err[512], *own_dir = NULL;
	const char *where;
	int warned = 0;

	while (!process_spool_stopping(srv->ps)) {
		if (server_take_runtime(srv, &rt, &client) != 0) {
			(void)process_spool_gather(srv->ps, SERVER_LISTEN_MS);
			continue;
		}
		if ((where = podio_config_spool(rt->cfg)) == NULL ||
		    !podio_spool_is_url(where))
			break;
		err[0] = '\0';
		if ((spool = server_own_spool(&own, &own_dir, where, err,
		    sizeof(err))) == NULL) {
			if (!warned)
				podio_log(PODIO_LOG_WARN, "the spool's news "
				    "cannot be listened to (polled instead): "
				    "%s", err);
			warned = 1;
			(void)process_spool_gather(srv->ps, SERVER_LISTEN_MS);
			continue;
		}
		warned = 0;
		/* Short waits: the stop is seen within one. */
		switch (podio_spool_wait(spool, SERVER_LISTEN_MS)) {
		case 1:
			process_spool_notify(srv->ps, 0);
			break;
		case 0:
			break;
		default:
			/* Down: the handle connects again after its
			 * backoff. */
			(void)process_spool_gather(srv->ps, SERVER_LISTEN_MS);
			break;
		}
	}
	podio_client_free(client);
	runtime_unref(rt);
	podio_spool_close(own);
	free(own_dir);
	return NULL;
}

/* Whether the spool of the server's runtime tells of other hosts' events
 * (a PostgreSQL spool): then a listener thread runs. */
static int
server_spool_tells(struct server *srv)
{
	const char *where;
	int tells;

	pthread_mutex_lock(&srv->lock);
	where = podio_config_spool(srv->rt->cfg);
	tells = where != NULL && podio_spool_is_url(where);
	pthread_mutex_unlock(&srv->lock);
	return tells;
}

/* ------------------------------------------------------------ metrics */

/* The page of /metrics (metrics_http_page_fn), in the metrics thread:
 * the counters and the state of the current runtime's spool. */
static int
server_metrics_page(void *arg, char **out, size_t *len)
{
	struct server *srv = arg;
	struct runtime *rt;
	int rc;

	pthread_mutex_lock(&srv->lock);
	rt = runtime_ref(srv->rt);
	pthread_mutex_unlock(&srv->lock);
	rc = metrics_render(srv->metrics, rt, out, len);
	runtime_unref(rt);
	return rc;
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
	next->metrics = srv->metrics;
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
 * The most connections that may be open: what the descriptor limit
 * leaves once SERVER_FD_RESERVE and four per worker (its API
 * connections, the spool's handles it may open) are set aside; at least
 * one per worker.
 */
static int
server_conns_max(unsigned workers)
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

/* Closes the connections handed back to a reader that is gone. */
static void
server_close_backs(struct server *srv)
{
	struct server_conn *c, *next;

	for (c = srv->back_head; c != NULL; c = next) {
		next = c->qnext;
		server_conn_close(srv, c);
	}
	srv->back_head = NULL;
}

/* See server.h. */
int
server_run(const struct server_config *sc, struct runtime *rt)
{
	struct server srv;
	sigset_t set, old;
	pthread_t *threads = NULL, procs[SERVER_PROCESSORS_MAX], finisher;
	pthread_t reader, listener, keeper, healer;
	struct metrics_http *mh = NULL;
	const char *addrs;
	char mwhere[80];
	int mfd = sc->metrics_fd;
	unsigned i, started = 0, nprocs = 0, want;
	int sfd = -1, flags, status = 1, masked = 0, locked = 0, rc;
	int reader_up = 0, listener_up = 0, keeper_up = 0, healer_up = 0;

	memset(&srv, 0, sizeof(srv));
	srv.sc = sc;
	srv.rt = rt;
	srv.fail[0] = srv.fail[1] = srv.ep = srv.evfd = -1;
	atomic_init(&srv.stopping, 0);
	atomic_init(&srv.busy, 0);
	atomic_init(&srv.conns, 0);
	atomic_init(&srv.room_wanted, 0);
	atomic_init(&srv.held, 0);
	atomic_init(&srv.paused, 0);
	atomic_init(&srv.client_timeout_ms, rt->client_timeout_ms);
	if (pthread_mutex_init(&srv.lock, NULL) != 0 ||
	    pthread_mutex_init(&srv.fin_lock, NULL) != 0 ||
	    pthread_cond_init(&srv.fin_cond, NULL) != 0 ||
	    pthread_mutex_init(&srv.q_lock, NULL) != 0 ||
	    pthread_cond_init(&srv.q_cond, NULL) != 0 ||
	    pthread_mutex_init(&srv.back_lock, NULL) != 0) {
		/* These fail only for want of memory, which glibc's
		 * mutexes and condition variables never need. */
		podio_log(PODIO_LOG_ERROR, "cannot start: pthread_mutex_init");
		if (mfd >= 0)
			close(mfd);
		return 1;
	}
	locked = 1;
	srv.fin_tail = &srv.fin_head;
	srv.q_tail = &srv.q_head;
	srv.conns_max = server_conns_max(sc->workers);
	if (sc->unix_path != NULL &&
	    lstat(sc->unix_path, &srv.sock_st) == 0)
		srv.sock_st_ok = 1;
	/* The counters are in place before any thread counts. */
	if (mfd >= 0 && (srv.metrics = metrics_new()) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}
	rt->metrics = srv.metrics;
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
	    pipe2(srv.fail, O_CLOEXEC | O_NONBLOCK) != 0 ||
	    server_reader_setup(&srv) != 0) {
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

	if ((srv.ps = process_spool_new()) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}
	if ((threads = calloc(sc->workers, sizeof(*threads))) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot start: out of memory");
		goto fail;
	}
	/* Started with the signals blocked, like every thread here.
	 * Without the finisher, the answers are sent by the thread leading
	 * the commits. */
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
	if ((rc = pthread_create(&reader, NULL, server_reader, &srv)) != 0) {
		podio_log(PODIO_LOG_ERROR, "cannot start the reader: %s",
		    strerror(rc));
		goto fail;
	}
	(void)pthread_setname_np(reader, "pw-reader");
	reader_up = 1;
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
	if (nprocs > 0 && server_spool_tells(&srv) &&
	    pthread_create(&listener, NULL, server_listener, &srv) == 0) {
		(void)pthread_setname_np(listener, "pw-listener");
		listener_up = 1;
	}
	if (mfd >= 0) {
		server_sock_name(mfd, mwhere, sizeof(mwhere));
		rc = metrics_http_start(mfd, server_metrics_page, &srv, &mh);
		mfd = -1;
		if (rc != 0) {
			podio_log(PODIO_LOG_ERROR, "cannot start the metrics "
			    "thread: %s", strerror(errno));
			goto fail;
		}
		podio_log(PODIO_LOG_INFO, "serving metrics on http://%s/"
		    "metrics", mwhere);
	}
	if (nprocs > 0 &&
	    pthread_create(&keeper, NULL, server_keeper, &srv) == 0) {
		(void)pthread_setname_np(keeper, "pw-keeper");
		keeper_up = 1;
	}
	if (pthread_create(&healer, NULL, server_healer, &srv) == 0) {
		(void)pthread_setname_np(healer, "pw-healer");
		healer_up = 1;
	}
	podio_log(PODIO_LOG_INFO, "serving FastCGI on %s with %u worker%s "
	    "and %u spool processor%s", sc->what, started,
	    started == 1 ? "" : "s", nprocs, nprocs == 1 ? "" : "s");

	status = server_wait(&srv, sfd);

	/* Stop accepting: new connections are refused at once (a socket
	 * inherited from fd 0 may be shared, so it is only left alone); the
	 * requests coming and in hand are finished. */
	process_spool_stop(srv.ps);
	server_remove_socket(&srv);
	if (sc->own_socket)
		(void)shutdown(sc->listen_fd, SHUT_RDWR);
fail:
	atomic_store(&srv.stopping, 1);
	/* The metrics thread first: it reads the runtime and the spool,
	 * never a connection of the webhooks. */
	metrics_http_stop(mh);
	if (mfd >= 0)
		close(mfd);
	/* The reader ends once every connection is closed, then closes
	 * the workers' queue; without it, the queue is closed here. */
	if (reader_up) {
		server_reader_wake(&srv);
		pthread_join(reader, NULL);
	} else if (locked) {
		pthread_mutex_lock(&srv.q_lock);
		srv.q_closed = 1;
		pthread_cond_broadcast(&srv.q_cond);
		pthread_mutex_unlock(&srv.q_lock);
	}
	for (i = 0; i < started; i++)
		pthread_join(threads[i], NULL);
	/* The workers are back, so every commit is over: the finisher ends
	 * the answers still queued and stops. */
	if (srv.fin_up) {
		pthread_mutex_lock(&srv.fin_lock);
		srv.fin_stop = 1;
		pthread_cond_signal(&srv.fin_cond);
		pthread_mutex_unlock(&srv.fin_lock);
		pthread_join(finisher, NULL);
	}
	server_close_backs(&srv);
	/* The processors finish the event in hand (done, or given back
	 * for a later try) and stop. */
	if (srv.ps != NULL)
		process_spool_stop(srv.ps);
	for (i = 0; i < nprocs; i++)
		pthread_join(procs[i], NULL);
	if (listener_up)
		pthread_join(listener, NULL);
	if (keeper_up)
		pthread_join(keeper, NULL);
	if (healer_up)
		pthread_join(healer, NULL);
	process_spool_free(srv.ps);
	if (started > 0)
		podio_log(PODIO_LOG_INFO, "stopped");
	free(threads);
	server_remove_socket(&srv);
	if (sfd >= 0)
		close(sfd);
	for (i = 0; i < 2; i++)
		if (srv.fail[i] >= 0)
			close(srv.fail[i]);
	if (srv.ep >= 0)
		close(srv.ep);
	if (srv.evfd >= 0)
		close(srv.evfd);
	if (masked) {
		/* Signals that came while the requests drained are consumed
		 * here: the server is gone, and a SIGHUP or a second SIGTERM
		 * must not kill the process once they are unblocked. */
		server_drain_signals(&set);
		(void)pthread_sigmask(SIG_SETMASK, &old, NULL);
	}
	runtime_unref(srv.rt);
	metrics_free(srv.metrics);
	free(srv.allowed_addrs);
	if (locked) {
		pthread_mutex_destroy(&srv.back_lock);
		pthread_cond_destroy(&srv.q_cond);
		pthread_mutex_destroy(&srv.q_lock);
		pthread_cond_destroy(&srv.fin_cond);
		pthread_mutex_destroy(&srv.fin_lock);
		pthread_mutex_destroy(&srv.lock);
	}
	return status;
}

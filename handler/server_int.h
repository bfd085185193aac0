/*
 * server_int.h: the parts of the FastCGI server (server.c) that its
 * reader thread (server_reader.c) shares.  Not for other modules.
 *
 * A connection's life: the reader accepts it and reads its request as
 * the bytes come, with a deadline; once the request has arrived it goes
 * to the workers' queue (server_queue_put()), and a worker handles it.
 * Its answer is sent at once (server_conn_done()), by the worker or, for
 * an event whose answer waits for the spool's flush, by the finisher;
 * then the connection is closed, or, when the web server keeps it, goes
 * back to the reader (server_conn_back()) for its next request.
 */
#ifndef PODIO_HANDLER_SERVER_INT_H
#define PODIO_HANDLER_SERVER_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/stat.h>

#include "fcgi_io.h"
#include "runtime.h"
#include "server.h"
#include "spool.h"

struct metrics;
struct process_spool;
struct server_deferred;

/* One connection. */
struct server_conn {
	struct fcgi_io_conn *io;       /* owned */
	int64_t t0;                    /* when the request being read
	                                  began (its first byte, or the
	                                  connection) */
	int64_t deadline;              /* when the reader gives up on it */
	size_t held;                   /* bytes counted in srv->held */
	int registered;                /* its socket is in the reader's
	                                  epoll set */
	int paused;                    /* not read: srv->held is full */
	struct server_conn *prev, *next; /* the reader's list */
	struct server_conn *qnext;     /* in a queue (workers', or back to
	                                  the reader) */
};

struct server {
	const struct server_config *sc;
	pthread_mutex_t lock;          /* guards rt */
	struct runtime *rt;            /* the current runtime */
	int fail[2];                   /* written by the reader when the
	                                  socket failed for good */
	atomic_int stopping;
	atomic_int busy;               /* requests handed to workers and
	                                  not answered yet */
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
	/* The workers' queue of requests that arrived. */
	pthread_mutex_t q_lock;        /* guards q_head, q_tail, q_closed */
	pthread_cond_t q_cond;
	struct server_conn *q_head, **q_tail;
	int q_closed;                  /* the reader is done: workers end */
	/* The reader (server_reader.c). */
	int ep;                        /* its epoll set */
	int evfd;                      /* an eventfd that wakes it */
	pthread_mutex_t back_lock;     /* guards back_head */
	struct server_conn *back_head; /* connections handed back to it */
	atomic_int conns;              /* open connections, everywhere */
	int conns_max;                 /* the most that may be open */
	atomic_int room_wanted;        /* the reader stopped accepting at
	                                  conns_max: wake it below */
	atomic_llong held;             /* bytes of requests held in memory
	                                  (variables and bodies) */
	atomic_int paused;             /* connections not read for it */
	atomic_llong client_timeout_ms; /* of the current runtime */
	char *allowed_addrs;           /* FCGI_WEB_SERVER_ADDRS, or NULL */
	struct stat sock_st;           /* the unix socket file we made */
	int sock_st_ok;
	struct metrics *metrics;       /* --metrics-listen's counters, owned;
	                                  NULL without */
};

/* The reader thread (server_reader.c): accepts connections and reads
 * their requests until the server stops and every connection is
 * closed; then it closes the workers' queue. */
void *server_reader(void *arg);

/* The runtime of the server for a thread that keeps one (*rt, with its
 * client *client): taken anew after a reload.  0, or -1 when no client
 * could be made (server.c). */
int server_take_runtime(struct server *srv, struct runtime **rt,
    struct podio_client **client);
/* A thread's own spool handle for dir (*own, opened again when dir
 * changed, *own_dir its location), or NULL with err filled (server.c). */
struct podio_spool *server_own_spool(struct podio_spool **own,
    char **own_dir, const char *dir, char *err, size_t errlen);

/* The keeper thread (server_keeper.c): notes until when the receiver
 * ran, and catches up after it was down (catch_up).  Ends when the
 * processors stop. */
void *server_keeper(void *arg);

/* The heal thread (server_heal.c): runs `hooks heal` every
 * heal_interval until the server stops. */
void *server_healer(void *arg);

/* Makes the reader's epoll set and eventfd (srv->ep, srv->evfd, both
 * -1 before).  Returns 0, or -1 with errno set. */
int server_reader_setup(struct server *srv);

/* Wakes the reader (its eventfd). */
void server_reader_wake(struct server *srv);

/* Puts a connection whose request arrived on the workers' queue. */
void server_queue_put(struct server *srv, struct server_conn *c);

/* Closes and frees a connection (any thread). */
void server_conn_close(struct server *srv, struct server_conn *c);

/* Hands a kept connection back to the reader after its answer. */
void server_conn_back(struct server *srv, struct server_conn *c);

/* Gives back the count of c's request bytes in srv->held (its request's
 * memory is freed, or about to be). */
void server_conn_unhold(struct server *srv, struct server_conn *c);

#endif

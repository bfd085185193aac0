/*
 * server.h: the FastCGI server: `podio-webhook serve` (its own socket)
 * and a listening socket inherited on fd 0 (spawn-fcgi, mod_fcgid,
 * systemd StandardInput=socket).  Worker threads serve requests at once,
 * each with its own Podio client over the runtime's shared token store,
 * and store accepted events in the spool; a few processor threads (at
 * most 4) take them from there and run them (handler/process.c);
 * SIGTERM and SIGINT stop it gracefully, SIGHUP reloads the
 * configuration.
 */
#ifndef PODIO_HANDLER_SERVER_H
#define PODIO_HANDLER_SERVER_H

#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>

#include "runtime.h"

/* Default and highest number of worker threads. */
#define SERVER_WORKERS_DEFAULT 16
#define SERVER_WORKERS_MAX     1024
/* Default permissions of a unix socket made by serve. */
#define SERVER_SOCKET_MODE     0660

/* The options of `serve` (and of a server on fd 0). */
struct server_args {
	const char *listen;       /* --listen SPEC, or NULL */
	const char *metrics_listen; /* --metrics-listen [HOST:]PORT, or
	                               NULL */
	unsigned workers;         /* --workers N */
	mode_t socket_mode;       /* --socket-mode MODE */
	int socket_mode_given;
	int help;                 /* --help was asked for */
};

/*
 * Parses the arguments after "serve" (argv[0..argc-1]) into *args.
 * With fd0 set (a socket was inherited on fd 0) --listen and
 * --socket-mode are refused: the socket exists already.  Returns 0, or
 * 2 (usage error) after a message on stderr.
 */
int server_parse_args(int argc, char **argv, int fd0,
    struct server_args *args);

/* Prints the usage of serve to fp. */
void server_usage(FILE *fp);

/*
 * Opens the listening socket of spec: "unix:PATH" (a stale socket file
 * of a server no longer running is removed first; a live one, or a file
 * that is not a socket, is an error; the new socket gets mode) or
 * "HOST:PORT" (bound to exactly that address, SO_REUSEADDR; an IPv6
 * host in brackets).  On success *fd receives the socket and *path (for
 * a unix socket, else NULL) a copy of its path the caller frees.
 * Returns 0, or -1 with the reason in err.
 */
int server_listen(const char *spec, mode_t mode, int *fd, char **path,
    char *err, size_t errlen);

/*
 * Opens the listening socket of --metrics-listen: "[HOST:]PORT", the
 * host 127.0.0.1 when none is given (an IPv6 host in brackets).  Returns
 * 0 with *fd set, or -1 with the reason in err.
 */
int server_listen_metrics(const char *spec, int *fd, char *err,
    size_t errlen);

/* The address a TCP socket is bound to, "HOST:PORT" ("[HOST]:PORT" for
 * IPv6), into buf (size n); "?" when it cannot be read. */
void server_sock_name(int fd, char *buf, size_t n);

/* Rebuilds the runtime for SIGHUP from the configuration's sources:
 * returns 0 with *out set, or -1 with the reason (e.g. "FILE:LINE:
 * reason") in err. */
typedef int (*server_reload_fn)(void *arg, const struct runtime *prev,
    struct runtime **out, char *err, size_t errlen);

struct server_config {
	int listen_fd;             /* a listening socket */
	int own_socket;            /* 1: made by serve (shut down and closed
	                              at the end); 0: inherited, left open */
	const char *unix_path;     /* socket file removed at the end, or
	                              NULL */
	const char *what;          /* "unix:/run/x.sock", "fd 0": for logs */
	unsigned workers;
	int metrics_fd;            /* the socket of --metrics-listen (taken
	                              over), or -1 */
	const char *metrics_what;  /* its address, for the log */
	server_reload_fn reload;
	void *reload_arg;
};

/*
 * Serves FastCGI requests on sc->listen_fd with sc->workers threads and
 * rt (taken over) until SIGTERM or SIGINT, and with sc->metrics_fd (taken
 * over too) a thread answering GET /metrics (metrics_http.h): then it stops accepting (a
 * unix socket file is removed at once), lets the requests in flight
 * finish, and returns 0.  SIGHUP builds a new runtime with sc->reload;
 * requests started before keep the old one; a failure keeps the old one
 * and is logged.  Returns 1 when the server cannot start or the socket
 * fails for good.  The caller should ignore SIGPIPE first.
 */
int server_run(const struct server_config *sc, struct runtime *rt);

#endif

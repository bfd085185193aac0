/*
 * server_listen.c: the command line of `serve` and its listening socket
 * (see server.h): a unix socket file, made with the mode asked for after
 * a stale one is cleared, or a TCP address.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "podio.h"
#include "log.h"
#include "server.h"

#define PROG "podio-webhook"

/* ------------------------------------------------------------ arguments */

/* See server.h. */
void
server_usage(FILE *fp)
{
	fprintf(fp,
	    "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... serve --listen SPEC\n"
	    "           [--workers N] [--socket-mode MODE]\n"
	    "           [--metrics-listen [HOST:]PORT]\n"
	    "  Serve webhooks over FastCGI (nginx fastcgi_pass, Apache "
	    "mod_proxy_fcgi).\n"
	    "  --listen unix:PATH   a unix socket (a stale socket file is "
	    "replaced)\n"
	    "  --listen HOST:PORT   a TCP socket bound to that address only\n"
	    "                       ([::1]:9000 for IPv6)\n"
	    "  --workers N          requests served at once (default %d)\n"
	    "  --socket-mode MODE   octal permissions of a unix socket "
	    "(default %04o)\n"
	    "  --metrics-listen [HOST:]PORT\n"
	    "                       answer GET /metrics (Prometheus) over "
	    "HTTP there\n"
	    "                       (HOST 127.0.0.1 when none is given)\n"
	    "  SIGTERM: finish the requests in flight and exit.  SIGHUP: "
	    "reload the\n"
	    "  configuration.\n",
	    SERVER_WORKERS_DEFAULT, SERVER_SOCKET_MODE);
}

/* "podio-webhook: serve: MESSAGE" and the hint, on stderr. */
static void server_usage_error(const char *fmt, ...)
	__attribute__((format(printf, 1, 2)));
static void
server_usage_error(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, PROG ": serve: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nTry '" PROG " serve --help' for more "
	    "information.\n");
}

/* Parses a decimal number in [min, max] (no sign, no spaces). */
static int
server_parse_uint(const char *text, unsigned long min, unsigned long max,
    unsigned long *out)
{
	uint64_t v;

	if (podio_parse_u64(text, &v) != 0 || v < min || v > max)
		return -1;
	*out = (unsigned long)v;
	return 0;
}

/* Parses an octal mode of at most 4 digits ("660", "0660"). */
static int
server_parse_mode(const char *text, mode_t *out)
{
	unsigned v = 0;
	size_t i;

	if (text[0] == '\0' || strlen(text) > 4)
		return -1;
	for (i = 0; text[i] != '\0'; i++) {
		if (text[i] < '0' || text[i] > '7')
			return -1;
		v = v * 8 + (unsigned)(text[i] - '0');
	}
	*out = (mode_t)v;
	return 0;
}

/* See server.h. */
int
server_parse_args(int argc, char **argv, int fd0, struct server_args *args)
{
	const char *name, *value, *eq;
	unsigned long n;
	size_t nlen;
	int i;

	memset(args, 0, sizeof(*args));
	args->workers = SERVER_WORKERS_DEFAULT;
	args->socket_mode = SERVER_SOCKET_MODE;
	for (i = 0; i < argc; i++) {
		name = argv[i];
		if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
			args->help = 1;
			return 0;
		}
		if (strncmp(name, "--", 2) != 0) {
			server_usage_error("unexpected argument '%s'", name);
			return 2;
		}
		eq = strchr(name, '=');
		nlen = eq != NULL ? (size_t)(eq - name) : strlen(name);
		if (eq != NULL)
			value = eq + 1;
		else if (i + 1 < argc)
			value = argv[++i];
		else {
			server_usage_error("option '%s' needs a value", name);
			return 2;
		}
		if (nlen == 8 && strncmp(name, "--listen", nlen) == 0) {
			if (fd0) {
				server_usage_error("--listen cannot be used "
				    "when started on a listening socket");
				return 2;
			}
			args->listen = value;
		} else if (nlen == 9 && strncmp(name, "--workers", nlen) == 0) {
			if (server_parse_uint(value, 1, SERVER_WORKERS_MAX,
			    &n) != 0) {
				server_usage_error("--workers wants a number "
				    "from 1 to %d", SERVER_WORKERS_MAX);
				return 2;
			}
			args->workers = (unsigned)n;
		} else if (nlen == 13 &&
		    strncmp(name, "--socket-mode", nlen) == 0) {
			if (fd0) {
				server_usage_error("--socket-mode cannot be "
				    "used when started on a listening socket");
				return 2;
			}
			if (server_parse_mode(value, &args->socket_mode) !=
			    0) {
				server_usage_error("--socket-mode wants an "
				    "octal mode such as 0660");
				return 2;
			}
			args->socket_mode_given = 1;
		} else if (nlen == 16 &&
		    strncmp(name, "--metrics-listen", nlen) == 0) {
			if (value[0] == '\0' ||
			    strncmp(value, "unix:", 5) == 0) {
				server_usage_error("--metrics-listen wants "
				    "[HOST:]PORT (e.g. 9464 or "
				    "127.0.0.1:9464)");
				return 2;
			}
			args->metrics_listen = value;
		} else {
			server_usage_error("unknown option '%.*s'", (int)nlen,
			    name);
			return 2;
		}
	}
	if (!fd0 && args->listen == NULL) {
		server_usage_error("--listen is required");
		return 2;
	}
	return 0;
}

/* ------------------------------------------------------------ sockets */

/*
 * Makes room for a unix socket at path: nothing there is fine; a socket
 * file nobody listens on (a server that died) is removed; a live socket
 * or any other file is an error.  Returns 0 or -1 with err set.
 */
static int
server_clear_unix(const char *path, const struct sockaddr_un *sun,
    char *err, size_t errlen)
{
	struct stat st;
	int fd, rc, saved;

	if (lstat(path, &st) != 0) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (!S_ISSOCK(st.st_mode)) {
		snprintf(err, errlen, "%s exists and is not a socket", path);
		return -1;
	}
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	saved = errno;
	close(fd);
	if (rc == 0) {
		snprintf(err, errlen, "another server is listening on %s",
		    path);
		return -1;
	}
	if (saved != ECONNREFUSED) {
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return -1;
	}
	if (unlink(path) != 0 && errno != ENOENT) {
		snprintf(err, errlen, "cannot remove the stale socket %s: %s",
		    path, strerror(errno));
		return -1;
	}
	return 0;
}

/*
 * The name a unix socket is bound to before it listens: ".pw-PID.sock" in
 * the directory of path, so that the rename to path stays on one file
 * system.  Returns 0, or -1 when it would not fit in a socket address.
 */
static int
server_temp_name(const char *path, char *buf, size_t cap)
{
	const char *slash = strrchr(path, '/');
	int dlen = slash != NULL ? (int)(slash - path) + 1 : 0;
	int n;

	n = snprintf(buf, cap, "%.*s.pw-%ld.sock", dlen, path, (long)getpid());
	return n > 0 && (size_t)n < cap ? 0 : -1;
}

/*
 * The unix-socket half of server_listen().  The socket is bound under a
 * temporary name, given its mode, made to listen, and only then renamed
 * to path: a web server that finds the path connects at once, never to a
 * socket that does not listen yet.
 */
static int
server_listen_unix(const char *path, mode_t mode, int *out, char *err,
    size_t errlen)
{
	struct sockaddr_un sun, tmp;
	mode_t old;
	int fd = -1, rc, saved;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (path[0] == '\0' || strlen(path) >= sizeof(sun.sun_path)) {
		snprintf(err, errlen, "unix socket path must be 1 to %zu "
		    "bytes", sizeof(sun.sun_path) - 1);
		goto fail;
	}
	memcpy(sun.sun_path, path, strlen(path));
	tmp = sun;
	if (server_temp_name(path, tmp.sun_path, sizeof(tmp.sun_path)) != 0) {
		snprintf(err, errlen, "unix socket path %s: its directory "
		    "must leave room for a temporary name in a socket "
		    "address (%zu bytes)", path, sizeof(sun.sun_path) - 1);
		goto fail;
	}
	if (server_clear_unix(path, &sun, err, errlen) != 0)
		goto fail;
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		goto fail;
	}
	/* A temporary name left by a killed server of this PID. */
	(void)unlink(tmp.sun_path);
	/* Owner-only until chmod() below sets the mode asked for: nobody
	 * else may connect in between.  (umask is process-wide; the server
	 * starts before its threads.) */
	old = umask(0177);
	rc = bind(fd, (const struct sockaddr *)&tmp, sizeof(tmp));
	saved = errno;
	umask(old);
	if (rc != 0) {
		snprintf(err, errlen, "cannot bind %s: %s", tmp.sun_path,
		    strerror(saved));
		goto fail;
	}
	if (chmod(tmp.sun_path, mode) != 0 || listen(fd, SOMAXCONN) != 0 ||
	    rename(tmp.sun_path, path) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		unlink(tmp.sun_path);
		goto fail;
	}
	*out = fd;
	return 0;
fail:
	if (fd >= 0)
		close(fd);
	return -1;
}

/* The TCP half of server_listen(): spec is "HOST:PORT"; opt names the
 * option in messages. */
static int
server_listen_tcp(const char *spec, const char *opt, int *out, char *err,
    size_t errlen)
{
	struct addrinfo hints, *res = NULL, *ai;
	const char *colon;
	char host[256], port[8];
	unsigned long n;
	size_t hlen;
	int fd = -1, one = 1, rc, saved = 0;

	colon = strrchr(spec, ':');
	if (colon == NULL || colon == spec) {
		snprintf(err, errlen, "%s wants %s", opt,
		    strcmp(opt, "--listen") == 0 ? "unix:PATH or HOST:PORT "
		    "(e.g. 127.0.0.1:9000)" : "[HOST:]PORT (e.g. 9464 or "
		    "127.0.0.1:9464)");
		goto fail;
	}
	hlen = (size_t)(colon - spec);
	if (spec[0] == '[' && hlen >= 2 && spec[hlen - 1] == ']') {
		spec++;
		hlen -= 2;
	}
	if (hlen == 0 || hlen >= sizeof(host) ||
	    server_parse_uint(colon + 1, 1, 65535, &n) != 0) {
		snprintf(err, errlen, "%s wants HOST:PORT with a port "
		    "from 1 to 65535", opt);
		goto fail;
	}
	memcpy(host, spec, hlen);
	host[hlen] = '\0';
	snprintf(port, sizeof(port), "%lu", n);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((rc = getaddrinfo(host, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "cannot resolve %s: %s", host,
		    gai_strerror(rc));
		goto fail;
	}
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol);
		if (fd < 0) {
			saved = errno;
			continue;
		}
		(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one,
		    sizeof(one));
		/* [::] means IPv6 only: bind only what was asked for. */
		if (ai->ai_family == AF_INET6)
			(void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
			    sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
		    listen(fd, SOMAXCONN) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		snprintf(err, errlen, "cannot listen on %s:%s: %s", host, port,
		    strerror(saved != 0 ? saved : EADDRNOTAVAIL));
		goto fail;
	}
	*out = fd;
	fd = -1;
fail:
	if (res != NULL)
		freeaddrinfo(res);
	if (fd >= 0)
		close(fd);
	return *out >= 0 ? 0 : -1;
}

/* See server.h. */
int
server_listen(const char *spec, mode_t mode, int *fd, char **path,
    char *err, size_t errlen)
{
	*fd = -1;
	*path = NULL;
	if (strncmp(spec, "unix:", 5) == 0) {
		if ((*path = strdup(spec + 5)) == NULL) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
		if (server_listen_unix(*path, mode, fd, err, errlen) != 0) {
			free(*path);
			*path = NULL;
			return -1;
		}
		return 0;
	}
	return server_listen_tcp(spec, "--listen", fd, err, errlen);
}

/* See server.h. */
void
server_sock_name(int fd, char *buf, size_t n)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	const void *addr;
	int port;

	snprintf(buf, n, "?");
	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET) {
		addr = &((struct sockaddr_in *)&ss)->sin_addr;
		port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	} else if (ss.ss_family == AF_INET6) {
		addr = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		port = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	} else
		return;
	if (inet_ntop(ss.ss_family, addr, host, sizeof(host)) == NULL)
		return;
	snprintf(buf, n, ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d",
	    host, port);
}

/* See server.h. */
int
server_listen_metrics(const char *spec, int *fd, char *err, size_t errlen)
{
	char full[300];

	*fd = -1;
	/* A bare port: loopback.  (An IPv6 host has brackets, so a colon
	 * always follows a host.) */
	if (strchr(spec, ':') == NULL) {
		if ((size_t)snprintf(full, sizeof(full), "127.0.0.1:%s",
		    spec) >= sizeof(full)) {
			snprintf(err, errlen, "--metrics-listen wants "
			    "[HOST:]PORT with a port from 1 to 65535");
			return -1;
		}
		spec = full;
	}
	return server_listen_tcp(spec, "--metrics-listen", fd, err, errlen);
}

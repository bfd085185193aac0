/*
 * run.c: podio_webhook_main(), the whole program (see podio-webhook.h):
 * mode detection, global options, the configuration from its sources in
 * order of precedence (defaults < file < environment < -o flags), the
 * log settings, then one of:
 *
 *  - FastCGI on fd 0, when fd 0 is a listening socket (spawn-fcgi,
 *    mod_fcgid, systemd StandardInput=socket);
 *  - CGI, when GATEWAY_INTERFACE is set: one request, argv ignored (a
 *    web server makes argv out of a query string without '=', so no
 *    argument may ever choose what runs or where the configuration
 *    comes from), but for the configuration named on the first line of
 *    a script the program is the interpreter of, checked to be that;
 *  - the command line: serve, emit and the commands of cli.c (doctor
 *    also when the configuration cannot be made, to report it).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "podio.h"
#include "podio-webhook.h"
#include "cgi_worker.h"
#include "cli.h"
#include "process.h"
#include "request.h"
#include "runtime.h"
#include "server.h"
#include "spool.h"

#define PROG "podio-webhook"

/* Longest configuration message kept. */
#define RUN_ERR_MAX 1024

extern char **environ;

/* What the global options asked for.  set[] points into argv. */
struct run_opts {
	const char *config_path; /* -c FILE, or NULL */
	char **set;              /* the -o KEY=VALUE arguments, in order */
	size_t nset;
	int help;
	int version;
};

/* What a reload needs: the sources again, and the C callbacks. */
struct run_ctx {
	const struct run_opts *opts;
	const struct podio_callbacks *fns;
};

static const struct option run_longopts[] = {
	{ "config",  required_argument, NULL, 'c' },
	{ "set",     required_argument, NULL, 'o' },
	{ "help",    no_argument,       NULL, 'h' },
	{ "version", no_argument,       NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/* ------------------------------------------------------------------ usage */

/* Prints the full usage (every command and global option) to fp. */
static void
run_usage(FILE *fp)
{
	fprintf(fp,
	    "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... COMMAND [ARG]...\n"
	    "\n"
	    "Receive Podio webhooks (FastCGI or CGI), manage the webhooks of "
	    "an object\n"
	    "and check the setup.\n"
	    "\n"
	    "Commands:\n");
	cli_usage(fp);
	fprintf(fp,
	    "\n"
	    "Global options:\n"
	    "  -c, --config FILE     read FILE instead of the default "
	    "configuration file\n"
	    "  -o, --set KEY=VALUE   set a configuration key; repeatable, "
	    "overrides the file\n"
	    "                        and the environment\n"
	    "  -h, --help            print this help and exit\n"
	    "  -V, --version         print the version and exit\n"
	    "\n"
	    "Started with a listening socket as standard input, it serves "
	    "FastCGI on it;\n"
	    "started as a CGI program (GATEWAY_INTERFACE set), it answers one "
	    "request and\n"
	    "ignores its arguments, except a script's first line\n"
	    "\"#!PROGRAM --cgi-config=FILE\" naming the configuration.\n"
	    "\n"
	    "Configuration: -c FILE, else $PODIO_WEBHOOK_CONFIG, else %s.\n"
	    "Every key KEY can also be set as environment variable "
	    "PODIO_KEY.\n"
	    "Run '" PROG " COMMAND --help' for the usage of a command.\n"
	    "\n"
	    "Exit status: 0 success, 1 Podio answered with an error, "
	    "2 usage or\n"
	    "configuration error, 3 Podio could not be reached.\n",
	    PODIO_CONFIG_PATH);
}

/* The one-line pointer to --help that follows every usage error. */
static void
run_usage_hint(void)
{
	fprintf(stderr, "Try '" PROG " --help' for more information.\n");
}

/*
 * Parses the global options of argv into *opts, stopping at the first
 * non-option (the subcommand); *next receives the index of that argument.
 * opts->set is allocated here and freed by the caller.  Returns 0, or
 * CLI_EXIT_USAGE after printing a message (an option value is never
 * echoed: it may be a secret).
 */
static int
run_parse_options(int argc, char **argv, struct run_opts *opts, int *next)
{
	int c;

	memset(opts, 0, sizeof(*opts));
	opts->set = calloc((size_t)argc + 1, sizeof(*opts->set));
	if (opts->set == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		return CLI_EXIT_USAGE;
	}
	opterr = 0;
	optind = 1;
	while ((c = getopt_long(argc, argv, "+:c:o:hV", run_longopts,
	    NULL)) != -1) {
		switch (c) {
		case 'c':
			opts->config_path = optarg;
			break;
		case 'o':
			if (strchr(optarg, '=') == NULL ||
			    optarg[0] == '=') {
				fprintf(stderr, PROG ": option -o needs "
				    "KEY=VALUE\n");
				run_usage_hint();
				return CLI_EXIT_USAGE;
			}
			opts->set[opts->nset++] = optarg;
			break;
		case 'h':
			opts->help = 1;
			break;
		case 'V':
			opts->version = 1;
			break;
		case ':':
			fprintf(stderr, PROG ": option '%s' needs a value\n",
			    argv[optind - 1]);
			run_usage_hint();
			return CLI_EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, PROG ": unknown option "
				    "'-%c'\n", optopt);
			else
				fprintf(stderr, PROG ": unknown option "
				    "'%s'\n", argv[optind - 1]);
			run_usage_hint();
			return CLI_EXIT_USAGE;
		}
	}
	*next = optind;
	return 0;
}

/* ------------------------------------------------------- configuration */

/*
 * Reads the configuration file into cfg.  A file named by -c or
 * $PODIO_WEBHOOK_CONFIG must exist; a missing default file is fine (the
 * environment and -o may supply everything).  Returns 0, or -1 with the
 * reason in err ("FILE:LINE: reason" for a bad line).
 */
static int
run_load_file(struct podio_config *cfg, const char *config_opt, char *err,
    size_t errlen)
{
	const char *path;
	struct stat st;
	enum podio_err rc;
	int is_explicit = 0, saved;

	path = podio_config_path(config_opt, &is_explicit);
	if (path == NULL || path[0] == '\0') {
		if (!is_explicit)
			return 0;
		snprintf(err, errlen, "empty configuration file name");
		return -1;
	}
	if (stat(path, &st) == -1) {
		saved = errno;
		if (!is_explicit && saved == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
		return -1;
	}
	err[0] = '\0';
	errno = 0;
	rc = podio_config_load_file(cfg, path, err, errlen);
	saved = errno;
	if (rc == PODIO_OK)
		return 0;
	if (err[0] != '\0')
		return -1;
	if (rc == PODIO_ERR_IO && saved != 0)
		snprintf(err, errlen, "%s: %s", path, strerror(saved));
	else
		snprintf(err, errlen, "%s: %s", path, podio_strerror(rc));
	return -1;
}

/*
 * Builds the effective configuration: defaults, the file, the
 * environment, then each -o in order.  *out receives it (caller frees).
 * Returns 0, or -1 with the reason in err.
 */
static int
run_build_config(const struct run_opts *opts, struct podio_config **out,
    char *err, size_t errlen)
{
	struct podio_config *cfg = NULL;
	char *key = NULL;
	const char *eq;
	size_t i;
	int status = -1;

	*out = NULL;
	err[0] = '\0';
	if ((cfg = podio_config_new()) == NULL) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	if (run_load_file(cfg, opts->config_path, err, errlen) != 0)
		goto fail;
	if (podio_config_load_env(cfg, environ, err, errlen) != PODIO_OK) {
		if (err[0] == '\0')
			snprintf(err, errlen, "bad PODIO_* environment "
			    "variable");
		goto fail;
	}
	for (i = 0; i < opts->nset; i++) {
		eq = strchr(opts->set[i], '=');
		key = strndup(opts->set[i], (size_t)(eq - opts->set[i]));
		if (key == NULL) {
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		err[0] = '\0';
		if (podio_config_set(cfg, key, eq + 1, "-o", err, errlen) !=
		    PODIO_OK) {
			if (err[0] == '\0')
				snprintf(err, errlen, "bad -o value");
			goto fail;
		}
		free(key);
		key = NULL;
	}
	*out = cfg;
	cfg = NULL;
	status = 0;
fail:
	free(key);
	podio_config_free(cfg);
	return status;
}

/* Applies log_level and log_target.  Returns 0, or -1 with the reason
 * in err. */
static int
run_apply_log(const struct podio_config *cfg, char *err, size_t errlen)
{
	const char *level, *target;
	enum podio_err rc;
	int n, saved;

	level = podio_config_get(cfg, "log_level");
	if (level != NULL && level[0] != '\0') {
		if ((n = podio_log_level_parse(level)) < 0) {
			snprintf(err, errlen, "log_level: unknown level '%s'",
			    level);
			return -1;
		}
		podio_log_set_level((enum podio_log_level)n);
	}
	target = podio_config_get(cfg, "log_target");
	if (target != NULL && target[0] != '\0') {
		errno = 0;
		if ((rc = podio_log_set_target(target)) != PODIO_OK) {
			saved = errno;
			snprintf(err, errlen, "log_target '%s': %s", target,
			    rc == PODIO_ERR_IO && saved != 0 ?
			    strerror(saved) : podio_strerror(rc));
			return -1;
		}
	}
	return 0;
}

/* The hint printed after a runtime that cannot be made. */
static const char *
run_unconfigured_hint(const char *err)
{
	if (strncmp(err, "webhook_secret", 14) == 0)
		return " (set it, or set allow_no_secret = yes to accept "
		    "deliveries without a secret)";
	return "";
}

/*
 * Everything a server or emit needs from the sources of opts: the
 * configuration, the log settings and a runtime with fns (prev: the
 * runtime replaced on a reload, or NULL).  The log settings change only
 * when the rest succeeded.  Returns 0 with *out set, or -1 with the
 * reason in err.
 */
static int
run_make_runtime(const struct run_opts *opts,
    const struct podio_callbacks *fns, const struct runtime *prev,
    struct runtime **out, char *err, size_t errlen)
{
	struct podio_config *cfg = NULL;
	struct runtime *rt = NULL;
	int rc;

	*out = NULL;
	if (run_build_config(opts, &cfg, err, errlen) != 0)
		return -1;
	rc = runtime_new(cfg, fns, prev, &rt, err, errlen);
	if (rc != 0) {
		if (rc == RUNTIME_UNCONFIGURED) {
			size_t used = strlen(err);

			snprintf(err + used, errlen - used, "%s",
			    run_unconfigured_hint(err));
		}
		return -1;
	}
	if (run_apply_log(rt->cfg, err, errlen) != 0) {
		runtime_unref(rt);
		return -1;
	}
	*out = rt;
	return 0;
}

/* The reload of a server (server_reload_fn). */
static int
run_reload(void *arg, const struct runtime *prev, struct runtime **out,
    char *err, size_t errlen)
{
	const struct run_ctx *ctx = arg;

	return run_make_runtime(ctx->opts, ctx->fns, prev, out, err, errlen);
}

/* ------------------------------------------------------------------ modes */

/* Whether fd 0 is a listening socket (SO_ACCEPTCONN): a connected socket
 * (mod_cgid's CGI stdin), a pipe or a file is not. */
static int
run_fd0_listens(void)
{
	int v = 0;
	socklen_t len = sizeof(v);

	return getsockopt(0, SOL_SOCKET, SO_ACCEPTCONN, &v, &len) == 0 &&
	    v == 1;
}

/*
 * Whether the spool of rt can be opened by this build: 0, or -1 with the
 * reason in err when spool_url names PostgreSQL and the build has no
 * libpq.  A database that cannot be reached now is fine (warned).
 */
static int
run_spool_usable(const struct runtime *rt, char *err, size_t errlen)
{
	const char *where = podio_config_spool(rt->cfg);
	struct podio_spool *spool = NULL;
	enum podio_err e;

	if (where == NULL || !podio_spool_is_url(where))
		return 0;
	err[0] = '\0';
	e = podio_spool_open(where, &spool, err, errlen);
	podio_spool_close(spool);
	if (e == PODIO_ERR_CONFIG)
		return -1;
	if (e != PODIO_OK)
		podio_log(PODIO_LOG_WARN, "the spool cannot be opened now "
		    "(deliveries get 503 until it can): %s", err);
	return 0;
}

/*
 * A FastCGI server: on the inherited socket fd 0 (listen_spec NULL) or on
 * the socket of listen_spec.  Returns the exit status.
 */
static int
run_server(const struct run_opts *opts, const struct podio_callbacks *fns,
    const struct server_args *args)
{
	struct server_config sc;
	struct run_ctx ctx;
	struct runtime *rt = NULL;
	char err[RUN_ERR_MAX], what[300], *path = NULL;
	int fd = -1, mfd = -1, status = CLI_EXIT_USAGE;

	if (run_make_runtime(opts, fns, NULL, &rt, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": %s\n", err);
		goto fail;
	}
	/* A spool directory others could write in is refused before the
	 * server listens, not at the first delivery. */
	if (podio_spool_check(podio_config_get(rt->cfg, "spool_dir"), err,
	    sizeof(err)) != PODIO_OK) {
		fprintf(stderr, PROG ": cannot start: %s\n", err);
		goto fail;
	}
	/* So is a PostgreSQL spool that this build cannot use.  One it
	 * cannot reach now is not: the handles connect when it is back. */
	if (run_spool_usable(rt, err, sizeof(err)) != 0) {
		fprintf(stderr, PROG ": cannot start: %s\n", err);
		goto fail;
	}
	memset(&sc, 0, sizeof(sc));
	/* The metrics socket first: a failure leaves no socket file of
	 * --listen behind. */
	if (args->metrics_listen != NULL &&
	    server_listen_metrics(args->metrics_listen, &mfd, err,
	    sizeof(err)) != 0) {
		fprintf(stderr, PROG ": serve: %s\n", err);
		goto fail;
	}
	if (args->listen != NULL) {
		if (server_listen(args->listen, args->socket_mode, &fd, &path,
		    err, sizeof(err)) != 0) {
			fprintf(stderr, PROG ": serve: %s\n", err);
			goto fail;
		}
		sc.own_socket = 1;
		snprintf(what, sizeof(what), "%s", args->listen);
	} else {
		fd = 0;
		snprintf(what, sizeof(what), "the socket on fd 0");
	}
	sc.listen_fd = fd;
	sc.unix_path = path;
	sc.what = what;
	sc.workers = args->workers;
	sc.metrics_fd = mfd;
	sc.metrics_what = args->metrics_listen;
	mfd = -1;
	ctx.opts = opts;
	ctx.fns = fns;
	sc.reload = run_reload;
	sc.reload_arg = &ctx;
	status = server_run(&sc, rt);
	rt = NULL;
fail:
	runtime_unref(rt);
	if (fd > 0)
		close(fd);
	if (mfd >= 0)
		close(mfd);
	free(path);
	return status;
}

/*
 * FastCGI on fd 0.  argv may hold global options and, after them,
 * "serve" with --workers and --metrics-listen; nothing else runs here.
 */
static int
run_fastcgi_fd0(int argc, char **argv, const struct podio_callbacks *fns)
{
	struct run_opts opts;
	struct server_args args;
	int next = 0, status;

	if ((status = run_parse_options(argc, argv, &opts, &next)) != 0)
		goto fail;
	if (opts.help || opts.version) {
		if (opts.help)
			run_usage(stdout);
		else
			printf(PROG " %s\n", PACKAGE_VERSION);
		goto fail;
	}
	if (next < argc && strcmp(argv[next], "serve") != 0) {
		fprintf(stderr, PROG ": started on a listening socket (fd 0): "
		    "only 'serve' with --workers and --metrics-listen may "
		    "follow the options, not '%s'\n", argv[next]);
		status = CLI_EXIT_USAGE;
		goto fail;
	}
	if (next < argc) {
		status = server_parse_args(argc - next - 1, argv + next + 1, 1,
		    &args);
		if (status != 0)
			goto fail;
		if (args.help) {
			server_usage(stdout);
			goto fail;
		}
	} else {
		(void)server_parse_args(0, NULL, 1, &args);
	}
	status = run_server(&opts, fns, &args);
fail:
	free(opts.set);
	return status;
}

/*
 * Ends the CGI request for the web server while this process goes on:
 * the answer is flushed and stdin, stdout and stderr are let go (to
 * /dev/null), so that the server sees the response complete.  Apache
 * waits until the script's output is closed, then sends SIGTERM (and
 * SIGKILL 3 s later): SIGTERM is ignored from here on, and what follows
 * must be short.  What is logged to stderr afterwards is lost.
 */
static void
run_cgi_let_go(void)
{
	int fd;

	signal(SIGTERM, SIG_IGN);
	(void)fflush(stdout);
	(void)fflush(stderr);
	if ((fd = open("/dev/null", O_RDWR | O_CLOEXEC)) >= 0) {
		(void)dup2(fd, STDIN_FILENO);
		(void)dup2(fd, STDOUT_FILENO);
		(void)dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
}

/*
 * After a CGI request that stored an event when no worker will process
 * the spool (a cgi_budget of 0): the log of the spool's intake (where a
 * CGI run stores) grows by every such request until `spool drain`, and
 * each new process reads all of it on opening.  Once the answer is out
 * (run_cgi_let_go()), the intake keeps that bounded
 * (podio_spool_tidy_oneshot(): a few tens of milliseconds now and then,
 * nothing when another process writes).
 */
static void
run_cgi_tidy(struct runtime *rt, struct process_spool *ps)
{
	struct podio_spool *spool;
	char err[RUN_ERR_MAX];

	if (podio_config_get_ms(rt->cfg, "cgi_budget") > 0)
		return;
	if ((spool = process_spool_append_handle(ps,
	    podio_config_spool(rt->cfg), err, sizeof(err))) == NULL)
		return;
	run_cgi_let_go();
	podio_spool_tidy_oneshot(spool);
}

/*
 * The rest of a CGI request that stored an event, apart from the web
 * server.  When a worker already holds the spool (cgi_worker.h), it
 * takes the event and this process just exits.  Otherwise the request
 * is ended for the web server (run_cgi_let_go()).  Then the process
 * forks: the parent returns at once (the request is over for the web
 * server); the child starts a session of its own, closes every
 * descriptor it inherited, and becomes the spool's worker for at most
 * cgi_budget, logging to log_target (stderr is gone: "stderr" logs
 * nowhere).  Events left over wait for the next request or `spool
 * drain`.  With a cgi_budget of 0 nothing detaches (the events wait
 * likewise).  The caller has closed its spool handle and client
 * (neither may cross a fork).  Returns 1 in the child, 0 in the parent.
 */
static int
run_cgi_detach(struct runtime *rt)
{
	char err[RUN_ERR_MAX];
	int64_t budget;
	pid_t pid;
	int fd;

	if ((budget = podio_config_get_ms(rt->cfg, "cgi_budget")) <= 0)
		return 0;
	if (cgi_worker_busy(podio_config_get(rt->cfg, "spool_dir")))
		return 0;
	/* This process must live until the worker is forked. */
	run_cgi_let_go();
	/* Two forks: the first child starts a session and forks the
	 * worker, then exits; the parent waits for it, so that the worker
	 * has left the web server's process group before the parent's exit
	 * ends the request (a server may then signal the whole group). */
	if ((pid = fork()) < 0) {
		podio_log(PODIO_LOG_WARN, "cannot fork to process the spool: "
		    "%s; the event waits for the next request or 'spool "
		    "drain'", strerror(errno));
		return 0;
	}
	if (pid > 0) {
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		return 0;
	}
	(void)setsid();
	if ((pid = fork()) != 0)
		_exit(pid < 0 ? 1 : 0);
	signal(SIGTERM, SIG_DFL);
	/* The log file (if any) is let go before its descriptor is closed
	 * with the rest, and opened anew after. */
	(void)podio_log_set_target("stderr");
	if (close_range(STDERR_FILENO + 1, ~0U, 0) != 0) {
		long max = sysconf(_SC_OPEN_MAX);

		for (fd = STDERR_FILENO + 1; fd < (max > 0 ? max : 1024); fd++)
			(void)close(fd);
	}
	if (run_apply_log(rt->cfg, err, sizeof(err)) == 0) {
		podio_log(PODIO_LOG_DEBUG, "detached to process the spool");
		cgi_worker_run(rt, budget);
	}
	return 1;
}

/* The argument of a CGI script's first line naming the configuration. */
#define RUN_CGI_CONFIG_OPT "--cgi-config="
/* The bytes of a script's first line the kernel reads (Linux 5.1 on). */
#define RUN_SCRIPT_LINE_MAX 256

/*
 * A CGI script may name the program as its interpreter, the way the
 * bundle's install.sh writes podio-webhook.cgi into the web directory:
 *
 *	#!/home/USER/podio-webhook/bin/podio-webhook --cgi-config=FILE
 *
 * The web server then starts the program itself, without a shell in
 * between, and the kernel passes the program as written there in
 * argv[0], "--cgi-config=FILE" in argv[1] and the script in argv[2].
 * Since a web server also makes arguments out of a query string without
 * '=', the argument counts only when argv[2] is the file the server ran
 * ($SCRIPT_FILENAME, compared by device and inode: suexec passes a name
 * relative to the script's directory) and that file's first line is
 * "#!", argv[0], blanks and argv[1]: a query can choose neither.
 * Returns FILE (within argv[1]), or NULL when there is no such argument
 * or it does not count (then ignored like any argument, with a warning).
 */
static const char *
run_cgi_script_config(int argc, char **argv)
{
	char line[RUN_SCRIPT_LINE_MAX + 1];
	const char *script, *conf;
	struct stat ran, named;
	ssize_t n;
	size_t len;
	char *p, *end;
	int fd = -1;

	if (argc < 3 || strncmp(argv[1], RUN_CGI_CONFIG_OPT,
	    sizeof(RUN_CGI_CONFIG_OPT) - 1) != 0)
		return NULL;
	conf = argv[1] + sizeof(RUN_CGI_CONFIG_OPT) - 1;
	script = getenv("SCRIPT_FILENAME");
	/* The file compared is the one read: fstat() of the open file. */
	if (conf[0] == '\0' || script == NULL || stat(script, &ran) == -1 ||
	    (fd = open(argv[2], O_RDONLY | O_CLOEXEC)) == -1 ||
	    fstat(fd, &named) == -1 || ran.st_dev != named.st_dev ||
	    ran.st_ino != named.st_ino)
		goto ignored;
	n = read(fd, line, RUN_SCRIPT_LINE_MAX);
	(void)close(fd);
	fd = -1;
	if (n <= 2 || (end = memchr(line, '\n', (size_t)n)) == NULL)
		goto ignored;
	/* The kernel drops the blanks that end the line. */
	while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
		end--;
	*end = '\0';
	len = strlen(argv[0]);
	p = line + 2 + strspn(line + 2, " \t");
	if (memcmp(line, "#!", 2) != 0 || strncmp(p, argv[0], len) != 0 ||
	    (p[len] != ' ' && p[len] != '\t'))
		goto ignored;
	p += len + strspn(p + len, " \t");
	if (strcmp(p, argv[1]) != 0)
		goto ignored;
	return conf;
ignored:
	if (fd != -1)
		(void)close(fd);
	podio_log(PODIO_LOG_WARN, "CGI: the argument " RUN_CGI_CONFIG_OPT
	    "... is ignored: it is not on the first line of the script that "
	    "was run ($SCRIPT_FILENAME) after this program's name");
	return NULL;
}

/*
 * CGI: one request.  The configuration comes from the script's first
 * line (run_cgi_script_config()), else $PODIO_WEBHOOK_CONFIG or the
 * compiled-in path, and the environment; no other argument is looked
 * at.  A stored event is then processed by a detached child
 * (run_cgi_detach()).  A configuration that cannot be used is answered
 * 503 and logged.  Returns 0 once an answer was given.
 */
static int
run_cgi(int argc, char **argv, const struct podio_callbacks *fns)
{
	struct run_opts opts;
	struct request_io io;
	struct podio_config *cfg = NULL;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	struct process_spool *ps = NULL;
	char err[RUN_ERR_MAX];
	int rc, queued = 0;

	memset(&opts, 0, sizeof(opts));
	opts.config_path = run_cgi_script_config(argc, argv);
	request_cgi_io(&io);
	if (run_build_config(&opts, &cfg, err, sizeof(err)) != 0) {
		podio_log(PODIO_LOG_ERROR, "%s", err);
		request_answer_unconfigured(&io, "the configuration has an "
		    "error (see the server's error log)");
		goto fail;
	}
	rc = runtime_new(cfg, fns, NULL, &rt, err, sizeof(err));
	cfg = NULL;
	if (rc == RUNTIME_UNCONFIGURED) {
		podio_log(PODIO_LOG_ERROR, "%s%s", err,
		    run_unconfigured_hint(err));
		request_answer_unconfigured(&io, err);
		goto fail;
	}
	if (rc != 0) {
		request_answer_error(&io, 500, "out of memory");
		goto fail;
	}
	if (run_apply_log(rt->cfg, err, sizeof(err)) != 0) {
		podio_log(PODIO_LOG_ERROR, "%s", err);
		request_answer_unconfigured(&io, "the configuration has an "
		    "error (see the server's error log)");
		goto fail;
	}
	if (runtime_client(rt, &client) != PODIO_OK ||
	    (ps = process_spool_new()) == NULL) {
		request_answer_error(&io, 500, "cannot initialise");
		goto fail;
	}
	/* One request: its event goes to the spool's intake, which the
	 * worker (or `spool drain`) moves into the spool. */
	process_spool_set_oneshot(ps);
	(void)request_handle(&io, rt, client, ps, &queued, NULL);
	request_cgi_drain();
	if (queued) {
		podio_client_free(client);
		client = NULL;
		run_cgi_tidy(rt, ps);
		process_spool_free(ps);
		ps = NULL;
		(void)run_cgi_detach(rt);
	}
	goto done;
fail:
	/* An answer of a configuration that cannot be used, its body
	 * unread. */
	request_cgi_drain();
done:
	process_spool_free(ps);
	podio_client_free(client);
	runtime_unref(rt);
	return 0;
}

/*
 * The command line: serve, or a command of cli.c.  Returns the exit
 * status.
 */
static int
run_command_line(int argc, char **argv, const struct podio_callbacks *fns)
{
	struct run_opts opts;
	struct server_args args;
	struct cli_source src;
	struct podio_config *cfg = NULL;
	char err[RUN_ERR_MAX];
	int status, next = 0;

	status = run_parse_options(argc, argv, &opts, &next);
	if (status != 0)
		goto fail;
	if (opts.help) {
		run_usage(stdout);
		goto fail;
	}
	if (opts.version) {
		printf(PROG " %s\n", PACKAGE_VERSION);
		goto fail;
	}
	if (next >= argc) {
		fprintf(stderr, PROG ": no command given\n");
		run_usage(stderr);
		status = CLI_EXIT_USAGE;
		goto fail;
	}

	if (strcmp(argv[next], "serve") == 0) {
		status = server_parse_args(argc - next - 1, argv + next + 1, 0,
		    &args);
		if (status != 0)
			goto fail;
		if (args.help) {
			server_usage(stdout);
			goto fail;
		}
		status = run_server(&opts, fns, &args);
		goto fail;
	}

	src.config_opt = opts.config_path;
	src.config_err = NULL;
	if (run_build_config(&opts, &cfg, err, sizeof(err)) != 0 ||
	    run_apply_log(cfg, err, sizeof(err)) != 0) {
		/* doctor reports it as its first finding. */
		if (strcmp(argv[next], "doctor") != 0) {
			fprintf(stderr, PROG ": %s\n", err);
			status = CLI_EXIT_USAGE;
			goto fail;
		}
		podio_config_free(cfg);
		cfg = NULL;
		src.config_err = err;
	}
	status = cli_run(&cfg, fns, &src, argc - next, argv + next);
fail:
	podio_config_free(cfg);
	free(opts.set);
	fflush(stdout);
	if (ferror(stdout) && status == 0) {
		fprintf(stderr, PROG ": error writing output\n");
		status = 1;
	}
	return status;
}

/* See podio-webhook.h. */
int
podio_webhook_main(int argc, char **argv, const struct podio_callbacks *reg)
{
	enum podio_err rc;
	int status;

	/* A web server or a callback going away must not kill the process:
	 * writes then fail with EPIPE, which every writer handles. */
	signal(SIGPIPE, SIG_IGN);
	if ((rc = podio_global_init()) != PODIO_OK) {
		fprintf(stderr, PROG ": cannot initialise: %s\n",
		    podio_strerror(rc));
		return cli_exit_for(rc);
	}
	if (run_fd0_listens())
		status = run_fastcgi_fd0(argc, argv, reg);
	else if (getenv("GATEWAY_INTERFACE") != NULL)
		status = run_cgi(argc, argv, reg);
	else
		status = run_command_line(argc, argv, reg);
	podio_global_cleanup();
	return status;
}

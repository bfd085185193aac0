/*
 * main.c: the entry point of podio-webhook.
 *
 * Parses the global options, builds the configuration from its sources in
 * order of precedence (defaults < file < environment < -o flags), applies
 * the log settings, then chooses what to run.  Today that is always a
 * subcommand (handler/cli.c); the mode-detection step in run_program() is
 * where the server modes (FastCGI on fd 0, CGI) will be recognised.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "podio.h"
#include "cli.h"

#define PROG "podio-webhook"

extern char **environ;

/* What the global options asked for.  set[] points into argv. */
struct main_opts {
	const char *config_path; /* -c FILE, or NULL */
	char **set;              /* the -o KEY=VALUE arguments, in order */
	size_t nset;
	int help;
	int version;
};

/* What the program runs after the options. */
enum main_mode {
	MAIN_MODE_NONE,    /* nothing to run: usage error */
	MAIN_MODE_COMMAND  /* a subcommand: podio-webhook COMMAND ... */
};

static const struct option main_longopts[] = {
	{ "config",  required_argument, NULL, 'c' },
	{ "set",     required_argument, NULL, 'o' },
	{ "help",    no_argument,       NULL, 'h' },
	{ "version", no_argument,       NULL, 'V' },
	{ NULL, 0, NULL, 0 }
};

/* Prints the full usage (every command and global option) to fp. */
static void
main_usage(FILE *fp)
{
	fprintf(fp,
	    "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... COMMAND [ARG]...\n"
	    "\n"
	    "Manage the Podio webhooks of an object and check the setup.\n"
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
main_usage_hint(void)
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
main_parse_options(int argc, char **argv, struct main_opts *opts, int *next)
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
	while ((c = getopt_long(argc, argv, "+:c:o:hV", main_longopts,
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
				main_usage_hint();
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
			main_usage_hint();
			return CLI_EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, PROG ": unknown option "
				    "'-%c'\n", optopt);
			else
				fprintf(stderr, PROG ": unknown option "
				    "'%s'\n", argv[optind - 1]);
			main_usage_hint();
			return CLI_EXIT_USAGE;
		}
	}
	*next = optind;
	return 0;
}

/*
 * Reads the configuration file into cfg.  A file named by -c or
 * $PODIO_WEBHOOK_CONFIG must exist; a missing default file is fine (the
 * environment and -o may supply everything).  Returns 0 or
 * CLI_EXIT_USAGE after printing the reason.
 */
static int
main_load_file(struct podio_config *cfg, const char *config_opt)
{
	char err[512];
	const char *path;
	struct stat st;
	enum podio_err rc;
	int is_explicit = 0, saved;

	path = podio_config_path(config_opt, &is_explicit);
	if (path == NULL || path[0] == '\0') {
		if (!is_explicit)
			return 0;
		fprintf(stderr, PROG ": empty configuration file name\n");
		return CLI_EXIT_USAGE;
	}
	if (stat(path, &st) == -1) {
		saved = errno;
		if (!is_explicit && saved == ENOENT)
			return 0;
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(saved));
		return CLI_EXIT_USAGE;
	}
	err[0] = '\0';
	errno = 0;
	rc = podio_config_load_file(cfg, path, err, sizeof(err));
	saved = errno;
	if (rc == PODIO_OK)
		return 0;
	if (err[0] != '\0')
		fprintf(stderr, PROG ": %s\n", err);
	else if (rc == PODIO_ERR_IO && saved != 0)
		fprintf(stderr, PROG ": %s: %s\n", path, strerror(saved));
	else
		fprintf(stderr, PROG ": %s: %s\n", path, podio_strerror(rc));
	return CLI_EXIT_USAGE;
}

/*
 * Builds the effective configuration: defaults, the file, the
 * environment, then each -o in order.  *out receives it (caller frees).
 * Returns 0 or CLI_EXIT_USAGE after printing the reason.
 */
static int
main_build_config(const struct main_opts *opts, struct podio_config **out)
{
	struct podio_config *cfg = NULL;
	char err[512], *key = NULL;
	const char *eq;
	size_t i;
	int status = CLI_EXIT_USAGE;

	*out = NULL;
	if ((cfg = podio_config_new()) == NULL) {
		fprintf(stderr, PROG ": out of memory\n");
		goto fail;
	}
	if (main_load_file(cfg, opts->config_path) != 0)
		goto fail;
	err[0] = '\0';
	if (podio_config_load_env(cfg, environ, err, sizeof(err)) !=
	    PODIO_OK) {
		fprintf(stderr, PROG ": %s\n",
		    err[0] != '\0' ? err : "bad PODIO_* environment variable");
		goto fail;
	}
	for (i = 0; i < opts->nset; i++) {
		eq = strchr(opts->set[i], '=');
		key = strndup(opts->set[i], (size_t)(eq - opts->set[i]));
		if (key == NULL) {
			fprintf(stderr, PROG ": out of memory\n");
			goto fail;
		}
		err[0] = '\0';
		if (podio_config_set(cfg, key, eq + 1, "-o", err,
		    sizeof(err)) != PODIO_OK) {
			fprintf(stderr, PROG ": %s\n", err[0] != '\0' ? err :
			    "bad -o value");
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

/* Applies log_level and log_target.  Returns 0 or CLI_EXIT_USAGE. */
static int
main_apply_log(const struct podio_config *cfg)
{
	const char *level, *target;
	enum podio_err rc;
	int n, saved;

	level = podio_config_get(cfg, "log_level");
	if (level != NULL && level[0] != '\0') {
		if ((n = podio_log_level_parse(level)) < 0) {
			fprintf(stderr, PROG ": log_level: unknown level "
			    "'%s'\n", level);
			return CLI_EXIT_USAGE;
		}
		podio_log_set_level((enum podio_log_level)n);
	}
	target = podio_config_get(cfg, "log_target");
	if (target != NULL && target[0] != '\0') {
		errno = 0;
		if ((rc = podio_log_set_target(target)) != PODIO_OK) {
			saved = errno;
			fprintf(stderr, PROG ": log_target '%s': %s\n",
			    target, rc == PODIO_ERR_IO && saved != 0 ?
			    strerror(saved) : podio_strerror(rc));
			return CLI_EXIT_USAGE;
		}
	}
	return 0;
}

/*
 * Decides what to run once the options are parsed; next is the index of
 * the first argument after them.  The server modes (FastCGI when fd 0 is
 * a listening socket, CGI when GATEWAY_INTERFACE is set) will be detected
 * here, before the "no command" usage error.
 */
static enum main_mode
main_detect_mode(int argc, int next)
{
	if (next < argc)
		return MAIN_MODE_COMMAND;
	return MAIN_MODE_NONE;
}

/*
 * The whole program: options, configuration, mode, dispatch.  Returns the
 * exit status; everything it allocated is freed.
 */
static int
run_program(int argc, char **argv)
{
	struct main_opts opts;
	struct podio_config *cfg = NULL;
	enum main_mode mode;
	enum podio_err rc;
	int status, next = 0, global = 0;

	status = main_parse_options(argc, argv, &opts, &next);
	if (status != 0)
		goto fail;
	if (opts.help) {
		main_usage(stdout);
		goto fail;
	}
	if (opts.version) {
		printf(PROG " %s\n", PACKAGE_VERSION);
		goto fail;
	}

	mode = main_detect_mode(argc, next);
	if (mode == MAIN_MODE_NONE) {
		fprintf(stderr, PROG ": no command given\n");
		main_usage(stderr);
		status = CLI_EXIT_USAGE;
		goto fail;
	}

	if ((status = main_build_config(&opts, &cfg)) != 0)
		goto fail;
	if ((status = main_apply_log(cfg)) != 0)
		goto fail;
	if ((rc = podio_global_init()) != PODIO_OK) {
		fprintf(stderr, PROG ": cannot initialise: %s\n",
		    podio_strerror(rc));
		status = cli_exit_for(rc);
		goto fail;
	}
	global = 1;

	switch (mode) {
	case MAIN_MODE_COMMAND:
		status = cli_run(cfg, argc - next, argv + next);
		break;
	case MAIN_MODE_NONE:
	default:
		status = CLI_EXIT_USAGE;
		break;
	}
fail:
	if (global)
		podio_global_cleanup();
	podio_config_free(cfg);
	free(opts.set);
	fflush(stdout);
	if (ferror(stdout) && status == 0) {
		fprintf(stderr, PROG ": error writing output\n");
		status = 1;
	}
	return status;
}

int
main(int argc, char **argv)
{
	return run_program(argc, argv);
}

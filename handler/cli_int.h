/*
 * cli_int.h: what the command line (cli.c) shares with the modules that
 * hold some of its commands (hooks.c, hooks_heal.c, hooks_sync.c): one
 * run of one command, and the helpers that parse arguments, connect to
 * Podio and report failures the same way for every command.  Not for
 * other modules.
 */
#ifndef PODIO_HANDLER_CLI_INT_H
#define PODIO_HANDLER_CLI_INT_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/* The most positional arguments any command takes. */
#define CLI_MAX_ARGS 4
/* Longest message line built here (Podio's text is cut to fit). */
#define CLI_MSG_MAX 1024
/* The longest URL accepted for a hook. */
#define CLI_URL_MAX 2048

/* Options a command accepts besides --help. */
#define CLI_OPT_JSON 0x1
#define CLI_OPT_KEYS 0x2
/* --reference=man|md: the keys' reference for the build (not in --help;
 * see reference.c). */
#define CLI_OPT_REFERENCE 0x4
#define CLI_OPT_DRY_RUN 0x8

struct cli_command;
struct cli_source;
struct cJSON;

/*
 * Prints *obj as element i of a JSON array written one object per line
 * (the caller prints "[" first), then deletes it and sets *obj to NULL.
 * Returns 0, or -1 on out of memory (*obj left to the caller).
 */
int cli_json_element(struct cJSON **obj, size_t i);

/* Ends an array of n elements written by cli_json_element(). */
void cli_json_end(size_t n);

/* One run of one command.  tokens and client are set by cli_connect(). */
struct cli_ctx {
	struct podio_config *cfg;        /* borrowed from *cfg_owner */
	struct podio_config **cfg_owner; /* where the caller keeps it */
	const struct podio_callbacks *fns; /* the program's C callbacks */
	const struct cli_command *cmd;
	const struct cli_source *src;    /* where cfg came from */
	char what[32];                   /* "hooks create", for messages */
	char *arg[CLI_MAX_ARGS];         /* borrowed from argv */
	size_t nargs;
	int json;
	int keys;
	int dry_run;
	const char *reference;           /* the format, or NULL */
	struct podio_tokens *tokens;     /* owned */
	struct podio_client *client;     /* owned */
};

/* Prints "podio-webhook: WHAT: MESSAGE" on stderr, the message scrubbed
 * of secrets. */
void cli_error(const struct cli_ctx *ctx, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/*
 * Reports a failed library call of this command on stderr, in one line,
 * and returns the exit status for it.  Podio's own message comes from
 * podio_client_errmsg(); a rate limit adds the wait when Podio named one.
 */
int cli_fail(const struct cli_ctx *ctx, enum podio_err err);

/* Whether key has a non-empty value in cfg. */
int cli_is_set(const struct podio_config *cfg, const char *key);

/*
 * Makes ctx->tokens and ctx->client from the configuration.  Returns 0,
 * or an exit status after printing the reason (incomplete credentials
 * name the missing keys).
 */
int cli_connect(struct cli_ctx *ctx);

/* Parses an object or hook id argument; prints the reason on failure.
 * Returns 0 or -1. */
int cli_parse_id(const struct cli_ctx *ctx, const char *what,
    const char *text, uint64_t *out);

/* Parses REF_TYPE and REF_ID (the first two arguments of hooks create and
 * list); prints the reason on failure.  Returns 0 or -1. */
int cli_parse_ref(const struct cli_ctx *ctx, uint64_t *ref_id);

/* Whether s is non-empty, at most maxlen bytes, and made only of
 * lower-case letters, digits and characters of set. */
int cli_is_token(const char *s, const char *set, size_t maxlen);

/* Whether url is an http(s) URL with a host and no white space or
 * control characters. */
int cli_url_ok(const char *url);

#endif

/*
 * cli.c: the subcommands of podio-webhook: the table of commands, check,
 * config and emit, and the dispatch of every command (the hooks
 * commands are in hooks.c, hooks_heal.c and hooks_sync.c, the spool
 * commands in spoolcmd.c, doctor in doctor.c).
 *
 * Each command parses its arguments, talks to Podio through libpodio and
 * prints its result on stdout; a failure is one line on stderr,
 * "podio-webhook: COMMAND: MESSAGE", and an exit status from
 * cli_exit_for().  Nothing printed ever holds a secret: secret keys show
 * as "(set)", the value of a secret= query parameter as "***", and every
 * message is scrubbed of the configured secret values before it is
 * printed.
 */
#include <config.h>

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "backfill.h"
#include "cli.h"
#include "doctor.h"
#include "cli_int.h"
#include "emit.h"
#include "hooks.h"
#include "reference.h"
#include "secret.h"
#include "spool.h"
#include "spoolcmd.h"

#define PROG "podio-webhook"

struct cli_command {
	const char *group;    /* "hooks", or NULL for a top-level command */
	const char *name;
	const char *args;     /* the synopsis of the arguments */
	size_t nargs;
	int opts;             /* CLI_OPT_* */
	const char *summary;
	int (*run)(struct cli_ctx *ctx);
};

static int cli_check(struct cli_ctx *);
static int cli_config(struct cli_ctx *);
static int cli_emit(struct cli_ctx *);
static int cli_doctor(struct cli_ctx *);

static const struct cli_command cli_commands[] = {
	{ "hooks", "create", "REF_TYPE REF_ID URL EVENT", 4, 0,
	    "register a webhook; prints its id", hooks_cmd_create },
	{ "hooks", "list", "REF_TYPE REF_ID [--json]", 2, CLI_OPT_JSON,
	    "list the webhooks of an object", hooks_cmd_list },
	{ "hooks", "verify", "HOOK_ID", 1, 0,
	    "ask Podio to send hook.verify again", hooks_cmd_verify },
	{ "hooks", "validate", "HOOK_ID CODE", 2, 0,
	    "activate a hook with its verify code", hooks_cmd_validate },
	{ "hooks", "delete", "HOOK_ID", 1, 0,
	    "delete a webhook", hooks_cmd_delete },
	{ "hooks", "sync", "[--dry-run] [--json]", 0,
	    CLI_OPT_DRY_RUN | CLI_OPT_JSON,
	    "make the hooks what hook lines say", hooks_cmd_sync },
	{ "hooks", "heal", "[--json]", 0, CLI_OPT_JSON,
	    "verify or re-create inactive hooks", hooks_cmd_heal },
	{ NULL, "check", "", 0, 0,
	    "check the credentials and API access", cli_check },
	{ NULL, "config", "[--keys]", 0, CLI_OPT_KEYS | CLI_OPT_REFERENCE,
	    "print the effective configuration", cli_config },
	{ NULL, "emit", "FILE", 1, 0,
	    "try a saved delivery (- for stdin)", cli_emit },
	{ NULL, "doctor", "[--json]", 0, CLI_OPT_JSON,
	    "check the setup and say what to fix", cli_doctor },
};
#define CLI_NCOMMANDS (sizeof(cli_commands) / sizeof(cli_commands[0]))

/* ------------------------------------------------------------------ usage */

/* The synopsis of cmd without the program name, into buf. */
static void
cli_synopsis(const struct cli_command *cmd, char *buf, size_t len)
{
	snprintf(buf, len, "%s%s%s%s%s", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name, cmd->args[0] ? " " : "",
	    cmd->args);
}

/* One line per command of group (every command if group is NULL). */
static void
cli_list(FILE *fp, const char *group)
{
	char syn[128];
	size_t i;

	for (i = 0; i < CLI_NCOMMANDS; i++) {
		if (group != NULL && (cli_commands[i].group == NULL ||
		    strcmp(cli_commands[i].group, group) != 0))
			continue;
		cli_synopsis(&cli_commands[i], syn, sizeof(syn));
		fprintf(fp, "  %-*s %s\n", CLI_USAGE_WIDTH, syn,
		    cli_commands[i].summary);
	}
}

void
cli_usage(FILE *fp)
{
	/* serve has options of its own (handler/server_listen.c). */
	fprintf(fp, "  %-*s %s\n", CLI_USAGE_WIDTH,
	    "serve --listen SPEC [--workers N] ...",
	    "serve webhooks over FastCGI");
	cli_list(fp, NULL);
	backfill_usage(fp);
	spoolcmd_usage(fp);
}

/* The usage of one command: "Usage: podio-webhook hooks list ..." */
static void
cli_command_usage(const struct cli_command *cmd, FILE *fp)
{
	char syn[128];

	cli_synopsis(cmd, syn, sizeof(syn));
	fprintf(fp, "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... %s\n"
	    "  %s\n", syn, cmd->summary);
	if (cmd->opts & CLI_OPT_JSON)
		fprintf(fp, "  --json   print a JSON array instead of a "
		    "table\n");
	if (cmd->opts & CLI_OPT_KEYS)
		fprintf(fp, "  --keys   print the key names only, one per "
		    "line\n");
	if (cmd->opts & CLI_OPT_DRY_RUN)
		fprintf(fp, "  --dry-run  print the plan, change nothing\n");
}

/* The usage of every command of group (e.g. "hooks"). */
static void
cli_group_usage(const char *group, FILE *fp)
{
	fprintf(fp, "Usage: " PROG " [-c FILE] [-o KEY=VALUE]... %s "
	    "COMMAND [ARG]...\n", group);
	cli_list(fp, group);
}

static void
cli_usage_hint(const char *what)
{
	fprintf(stderr, "Try '" PROG " %s --help' for more information.\n",
	    what);
}

/* See cli_int.h. */
void
cli_error(const struct cli_ctx *ctx, const char *fmt, ...)
{
	char msg[CLI_MSG_MAX], *safe;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	safe = secret_scrub(ctx->cfg, msg);
	fprintf(stderr, PROG ": %s: %s\n", ctx->what,
	    safe != NULL ? safe : "(message withheld: out of memory)");
	free(safe);
	explicit_bzero(msg, sizeof(msg));
}

/* ------------------------------------------------------------ errors */

int
cli_exit_for(enum podio_err err)
{
	if (err == PODIO_OK)
		return CLI_EXIT_OK;
	if (err == PODIO_ERR_CONFIG || err == PODIO_ERR_INVALID)
		return CLI_EXIT_USAGE;
	if (podio_err_is_transport(err))
		return CLI_EXIT_UNREACHED;
	return CLI_EXIT_PODIO;
}

/* See cli_int.h. */
int
cli_fail(const struct cli_ctx *ctx, enum podio_err err)
{
	struct podio_call_info info;
	const char *msg, *api_url;
	char wait[64];

	msg = ctx->client != NULL ? podio_client_errmsg(ctx->client) : NULL;
	if (msg == NULL || msg[0] == '\0')
		msg = podio_strerror(err);
	wait[0] = '\0';
	if (err == PODIO_ERR_RATE_LIMITED && ctx->client != NULL) {
		podio_client_last(ctx->client, &info);
		if (info.retry_after >= 0)
			snprintf(wait, sizeof(wait), ", retry in %ld s",
			    info.retry_after);
	}
	api_url = podio_config_get(ctx->cfg, "api_url");
	if (api_url == NULL)
		api_url = "the API";
	/* The library's messages often say this already; say it once. */
	if (err == PODIO_ERR_AUTH && strstr(msg, "refused") == NULL)
		cli_error(ctx, "Podio refused the credentials: %s", msg);
	else if (podio_err_is_transport(err) && strstr(msg, api_url) == NULL)
		cli_error(ctx, "cannot reach %s: %s", api_url, msg);
	else
		cli_error(ctx, "%s%s", msg,
		    strstr(msg, "retry after") == NULL ? wait : "");
	return cli_exit_for(err);
}

/* ------------------------------------------------------ argument checks */

/* See cli_int.h. */
int
cli_is_set(const struct podio_config *cfg, const char *key)
{
	const char *v = podio_config_get(cfg, key);

	return v != NULL && v[0] != '\0';
}

/* Appends key to the comma-separated list in buf. */
static void
cli_list_add(char *buf, size_t len, const char *key)
{
	size_t used = strlen(buf);

	snprintf(buf + used, len - used, "%s%s", used ? ", " : "", key);
}

/*
 * Names the credential keys still missing for a complete app flow
 * (client_id, client_secret, app_id, app_token) or password flow
 * (client_id, client_secret, username, password) into buf.  The flow the
 * configuration started on decides which keys are named.  Returns 1 if
 * something is missing, 0 if a flow is complete.
 */
static int
cli_missing_credentials(const struct podio_config *cfg, char *buf,
    size_t len)
{
	struct podio_credential c;
	int app_full, user_full, app_any, user_any;

	buf[0] = '\0';
	/* With app lines, the keys' flow may be left out. */
	if (podio_config_credential(cfg, 0, &c) && c.file != NULL) {
		if (!cli_is_set(cfg, "client_id"))
			cli_list_add(buf, len, "client_id");
		if (!cli_is_set(cfg, "client_secret"))
			cli_list_add(buf, len, "client_secret");
		return buf[0] != '\0';
	}
	app_full = cli_is_set(cfg, "app_id") && cli_is_set(cfg, "app_token");
	user_full = cli_is_set(cfg, "username") &&
	    cli_is_set(cfg, "password");
	app_any = cli_is_set(cfg, "app_id") || cli_is_set(cfg, "app_token");
	user_any = cli_is_set(cfg, "username") ||
	    cli_is_set(cfg, "password");

	if (!cli_is_set(cfg, "client_id"))
		cli_list_add(buf, len, "client_id");
	if (!cli_is_set(cfg, "client_secret"))
		cli_list_add(buf, len, "client_secret");
	if (!app_full && !user_full) {
		if (app_any || !user_any) {
			if (!cli_is_set(cfg, "app_id"))
				cli_list_add(buf, len, "app_id");
			if (!cli_is_set(cfg, "app_token"))
				cli_list_add(buf, len, "app_token");
		}
		if (user_any && !app_any) {
			if (!cli_is_set(cfg, "username"))
				cli_list_add(buf, len, "username");
			if (!cli_is_set(cfg, "password"))
				cli_list_add(buf, len, "password");
		}
		if (!app_any && !user_any) {
			size_t used = strlen(buf);

			snprintf(buf + used, len - used,
			    " (or username, password)");
		}
	}
	return buf[0] != '\0';
}

/* See cli_int.h. */
int
cli_connect(struct cli_ctx *ctx)
{
	char err[512], missing[256];
	enum podio_err rc;

	if (cli_missing_credentials(ctx->cfg, missing, sizeof(missing))) {
		cli_error(ctx, "incomplete credentials: missing %s; set them "
		    "in the configuration file, as PODIO_<KEY> or with -o",
		    missing);
		return CLI_EXIT_USAGE;
	}
	err[0] = '\0';
	rc = podio_tokens_new(ctx->cfg, &ctx->tokens, err, sizeof(err));
	if (rc != PODIO_OK) {
		cli_error(ctx, "%s", err[0] ? err : podio_strerror(rc));
		return cli_exit_for(rc);
	}
	rc = podio_client_new(ctx->cfg, ctx->tokens, &ctx->client);
	if (rc != PODIO_OK) {
		cli_error(ctx, "%s", podio_strerror(rc));
		return cli_exit_for(rc);
	}
	return 0;
}

/* See cli_int.h. */
int
cli_parse_id(const struct cli_ctx *ctx, const char *what, const char *text,
    uint64_t *out)
{
	if (podio_parse_u64(text, out) == 0 && *out != 0)
		return 0;
	cli_error(ctx, "invalid %s '%s' (expected a positive decimal number)",
	    what, text);
	return -1;
}

/* See cli_int.h. */
int
cli_is_token(const char *s, const char *set, size_t maxlen)
{
	size_t i;

	if (s[0] == '\0' || strlen(s) > maxlen)
		return 0;
	for (i = 0; s[i] != '\0'; i++) {
		if ((s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || strchr(set, s[i]))
			continue;
		return 0;
	}
	return 1;
}

/* See cli_int.h. */
int
cli_parse_ref(const struct cli_ctx *ctx, uint64_t *ref_id)
{
	if (!cli_is_token(ctx->arg[0], "_", 64)) {
		cli_error(ctx, "invalid reference type '%s' (e.g. app, "
		    "app_field, space)", ctx->arg[0]);
		return -1;
	}
	return cli_parse_id(ctx, "reference id", ctx->arg[1], ref_id);
}

/* See cli_int.h. */
int
cli_url_ok(const char *url)
{
	const char *host;
	size_t i;

	if (strncmp(url, "https://", 8) == 0)
		host = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		host = url + 7;
	else
		return 0;
	if (host[0] == '\0' || host[0] == '/' || host[0] == '?' ||
	    host[0] == '#')
		return 0;
	for (i = 0; url[i] != '\0'; i++)
		if ((unsigned char)url[i] <= ' ' ||
		    (unsigned char)url[i] == 0x7f)
			return 0;
	return 1;
}

/* ------------------------------------------------------ check, config */

/*
 * check: the credentials are complete, api_url is an http(s) URL with a
 * host, and Podio grants a token.  One line on stdout on success; on
 * failure one line on stderr.
 */
static int
cli_check(struct cli_ctx *ctx)
{
	const char *api_url, *client_id, *flow, *user;
	enum podio_err rc;
	uint64_t app;
	size_t i;
	int status;

	api_url = podio_config_get(ctx->cfg, "api_url");
	if (api_url == NULL || !cli_url_ok(api_url) ||
	    strpbrk(api_url, "?#") != NULL) {
		cli_error(ctx, "api_url '%s' is not an http:// or https:// "
		    "URL with a host", api_url != NULL ? api_url : "");
		return CLI_EXIT_USAGE;
	}
	if ((status = cli_connect(ctx)) != 0)
		return status;
	client_id = podio_config_get(ctx->cfg, "client_id");
	/* Each credential in turn: one line each, the first failure ends. */
	for (i = 0; podio_client_use(ctx->client, i) == 0; i++) {
		if ((rc = podio_authenticate(ctx->client)) != PODIO_OK)
			return cli_fail(ctx, rc);
		(void)podio_tokens_identity(ctx->tokens, i, &flow, &app,
		    &user);
		if (strcmp(flow, "app") == 0)
			printf("ok: authenticated to %s as app %" PRIu64
			    " (client %s)\n", api_url, app, client_id);
		else
			printf("ok: authenticated to %s as user %s (client "
			    "%s)\n", api_url, user, client_id);
	}
	(void)podio_client_use(ctx->client, 0);
	return CLI_EXIT_OK;
}

/* The app lines of the configuration, their tokens as "(set)". */
static void
cli_config_apps(const struct cli_ctx *ctx)
{
	struct podio_credential c;
	size_t i;

	if (ctx->keys)
		return;
	for (i = 0; podio_config_credential(ctx->cfg, i, &c); i++)
		if (c.file != NULL)
			printf("app %" PRIu64 " = (set)\n", c.app_id);
}

/*
 * config [--keys]: every key in table order, secrets as "(set)", then the
 * app lines ("app ID = (set)").  With
 * --reference=man or md, the reference of the keys instead (reference.c).
 */
static int
cli_config(struct cli_ctx *ctx)
{
	const char *key, *val;
	char *shown;
	size_t i;

	if (ctx->reference != NULL) {
		if (reference_print(stdout, ctx->reference) == 0)
			return CLI_EXIT_OK;
		cli_error(ctx, "unknown reference format '%.16s' (man or md)",
		    ctx->reference);
		return CLI_EXIT_USAGE;
	}

	for (i = 0; (key = podio_config_key_name(i)) != NULL; i++) {
		if (ctx->keys) {
			printf("%s\n", key);
			continue;
		}
		val = podio_config_get(ctx->cfg, key);
		if (val == NULL)
			val = "";
		else if (podio_config_key_is_secret(key) && val[0] != '\0')
			val = "(set)";
		if (podio_spool_is_url(val)) {
			/* A password in the URI shows as "***". */
			shown = podio_spool_mask(val);
			printf("%s = %s\n", key, shown != NULL ? shown : "");
			free(shown);
			continue;
		}
		printf("%s = %s\n", key, val);
	}
	cli_config_apps(ctx);
	return CLI_EXIT_OK;
}

/* ------------------------------------------------------------ emit */

/* emit FILE: see emit.c.  The configuration goes over to it. */
static int
cli_emit(struct cli_ctx *ctx)
{
	int status;

	status = emit_run(ctx->cfg_owner, ctx->fns, ctx->arg[0]);
	ctx->cfg = NULL;
	return status;
}

/* ------------------------------------------------------------ JSON */

/* See cli_int.h. */
int
cli_json_element(cJSON **obj, size_t i)
{
	char *text;

	if ((text = cJSON_PrintUnformatted(*obj)) == NULL)
		return -1;
	printf("%s\n  %s", i > 0 ? "," : "", text);
	free(text);
	cJSON_Delete(*obj);
	*obj = NULL;
	return 0;
}

/* See cli_int.h. */
void
cli_json_end(size_t n)
{
	printf("%s]\n", n > 0 ? "\n" : "");
}

/* ------------------------------------------------------------ doctor */

/* doctor [--json]: see doctor.c.  Runs also when the configuration
 * could not be made (ctx->cfg NULL), to report it. */
static int
cli_doctor(struct cli_ctx *ctx)
{
	return doctor_run(ctx->cfg, ctx->src->config_opt,
	    ctx->src->config_err, ctx->json);
}

/* ------------------------------------------------------------ dispatch */

/*
 * Parses the arguments of ctx->cmd (argv[0..argc-1], after the command
 * name): options --help/-h and those in cmd->opts anywhere, "--" ending
 * them, and exactly cmd->nargs positional arguments.  Returns 0 to run
 * the command, -1 when the usage was printed for --help, or
 * CLI_EXIT_USAGE after a message.
 */
static int
cli_parse_args(struct cli_ctx *ctx, int argc, char **argv)
{
	const struct cli_command *cmd = ctx->cmd;
	size_t count = 0;
	int i, opts_done = 0;

	for (i = 0; i < argc; i++) {
		if (!opts_done && argv[i][0] == '-' && argv[i][1] != '\0') {
			if (strcmp(argv[i], "--") == 0) {
				opts_done = 1;
			} else if (strcmp(argv[i], "--help") == 0 ||
			    strcmp(argv[i], "-h") == 0) {
				cli_command_usage(cmd, stdout);
				return -1;
			} else if ((cmd->opts & CLI_OPT_JSON) &&
			    strcmp(argv[i], "--json") == 0) {
				ctx->json = 1;
			} else if ((cmd->opts & CLI_OPT_KEYS) &&
			    strcmp(argv[i], "--keys") == 0) {
				ctx->keys = 1;
			} else if ((cmd->opts & CLI_OPT_DRY_RUN) &&
			    strcmp(argv[i], "--dry-run") == 0) {
				ctx->dry_run = 1;
			} else if ((cmd->opts & CLI_OPT_REFERENCE) &&
			    strncmp(argv[i], "--reference=", 12) == 0) {
				ctx->reference = argv[i] + 12;
			} else {
				cli_error(ctx, "unknown option '%s'",
				    argv[i]);
				cli_usage_hint(ctx->what);
				return CLI_EXIT_USAGE;
			}
			continue;
		}
		if (count < CLI_MAX_ARGS)
			ctx->arg[count] = argv[i];
		count++;
	}
	if (count != cmd->nargs) {
		cli_error(ctx, "expected %zu argument%s, got %zu", cmd->nargs,
		    cmd->nargs == 1 ? "" : "s", count);
		cli_command_usage(cmd, stderr);
		return CLI_EXIT_USAGE;
	}
	ctx->nargs = count;
	return 0;
}

/* Finds the command group/name; NULL if unknown. */
static const struct cli_command *
cli_find(const char *group, const char *name)
{
	size_t i;

	for (i = 0; i < CLI_NCOMMANDS; i++) {
		if ((group == NULL) != (cli_commands[i].group == NULL))
			continue;
		if (group != NULL && strcmp(group, cli_commands[i].group) != 0)
			continue;
		if (strcmp(name, cli_commands[i].name) == 0)
			return &cli_commands[i];
	}
	return NULL;
}

/* Whether some command belongs to group. */
static int
cli_is_group(const char *name)
{
	size_t i;

	for (i = 0; i < CLI_NCOMMANDS; i++)
		if (cli_commands[i].group != NULL &&
		    strcmp(cli_commands[i].group, name) == 0)
			return 1;
	return 0;
}

int
cli_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    const struct cli_source *src, int argc, char **argv)
{
	struct cli_ctx ctx;
	const char *group = NULL;
	int status, first = 1;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = *cfg;
	ctx.cfg_owner = cfg;
	ctx.fns = fns;
	ctx.src = src;
	if (argc < 1)
		return CLI_EXIT_USAGE;
	/* The spool commands parse their own arguments (spoolcmd.c). */
	if (strcmp(argv[0], "spool") == 0)
		return spoolcmd_run(cfg, fns, argc - 1, argv + 1);
	/* So does backfill, with its options (backfill.c). */
	if (strcmp(argv[0], "backfill") == 0)
		return backfill_cmd(cfg, fns, argc - 1, argv + 1);

	if (cli_is_group(argv[0])) {
		group = argv[0];
		if (argc < 2) {
			fprintf(stderr, PROG ": %s: missing command\n",
			    group);
			cli_group_usage(group, stderr);
			return CLI_EXIT_USAGE;
		}
		if (strcmp(argv[1], "--help") == 0 ||
		    strcmp(argv[1], "-h") == 0) {
			cli_group_usage(group, stdout);
			return CLI_EXIT_OK;
		}
		ctx.cmd = cli_find(group, argv[1]);
		if (ctx.cmd == NULL) {
			fprintf(stderr, PROG ": %s: unknown command '%s'\n",
			    group, argv[1]);
			cli_group_usage(group, stderr);
			return CLI_EXIT_USAGE;
		}
		first = 2;
	} else {
		ctx.cmd = cli_find(NULL, argv[0]);
		if (ctx.cmd == NULL) {
			fprintf(stderr, PROG ": unknown command '%s'\n",
			    argv[0]);
			fprintf(stderr, "Try '" PROG " --help' for more "
			    "information.\n");
			return CLI_EXIT_USAGE;
		}
	}
	snprintf(ctx.what, sizeof(ctx.what), "%s%s%s", group ? group : "",
	    group ? " " : "", ctx.cmd->name);

	status = cli_parse_args(&ctx, argc - first, argv + first);
	if (status == -1)
		return CLI_EXIT_OK;
	if (status != 0)
		return status;
	status = ctx.cmd->run(&ctx);
	podio_client_free(ctx.client);
	podio_tokens_free(ctx.tokens);
	return status;
}

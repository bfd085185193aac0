/*
 * emit.c: `podio-webhook emit FILE` (see emit.h): how users try their
 * callbacks before going live.  The delivery is judged by the code that
 * judges a request - podio_webhook_decide() on a POST of the file's bytes
 * with the form content type, then podio__deliver_check() - so the
 * answers 413, 400 and 403 are those Podio's POST would get, and a
 * hook.verify is validated with Podio as in a request.
 *
 * Where it differs from a POST, on purpose: an accepted event is not
 * stored in the spool (a POST's "ok: queued as event N"); emit runs it at
 * once in the foreground instead - the item fetched without waiting for
 * coalesce_window, then the callbacks - and prints what each did.  A
 * try-out thus never leaves an event behind for a server to run a second
 * time, needs no write access to the spool (run as root, it would leave
 * files there the server's user cannot open), and is never answered 503
 * for a spool that cannot be written, nor told "a duplicate of event N".
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "podio.h"
#include "cli.h"
#include "deliver.h"
#include "emit.h"
#include "runtime.h"
#include "secret.h"

#define PROG "podio-webhook"

/*
 * Reads the saved delivery at path ("-": standard input) into a new
 * buffer *out (caller wipes and frees: it holds the secret): at most
 * cap + 1 bytes, so that a file over the limit is still refused as too
 * large rather than cut.  Returns 0, or an exit status after a message.
 */
static int
emit_read(const char *path, size_t cap, char **out, size_t *len)
{
	char *buf = NULL;
	size_t n = 0;
	ssize_t r;
	int fd = -1, status = CLI_EXIT_USAGE;

	*out = NULL;
	*len = 0;
	if (strcmp(path, "-") == 0)
		fd = STDIN_FILENO;
	else if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
		fprintf(stderr, PROG ": emit: %s: %s\n", path,
		    strerror(errno));
		goto fail;
	}
	if ((buf = malloc(cap + 2)) == NULL) {
		fprintf(stderr, PROG ": emit: out of memory\n");
		goto fail;
	}
	while (n < cap + 1) {
		r = read(fd, buf + n, cap + 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			fprintf(stderr, PROG ": emit: %s: %s\n", path,
			    strerror(errno));
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*len = n;
	buf = NULL;
	status = 0;
fail:
	if (fd > STDIN_FILENO)
		close(fd);
	if (buf != NULL) {
		explicit_bzero(buf, cap + 2);
		free(buf);
	}
	return status;
}

/* Prints one line on stdout, scrubbed of the configured secrets. */
static void
emit_line(const struct podio_config *cfg, const char *line)
{
	char *safe = secret_scrub(cfg, line);

	printf("%s\n", safe != NULL ? safe : "(line withheld: out of memory)");
	free(safe);
}

/* Prints "status CODE: REASON", the answer a POST would get. */
static void
emit_status(const struct podio_config *cfg, int status, const char *reason)
{
	char line[512];

	snprintf(line, sizeof(line), "status %d: %s", status, reason);
	emit_line(cfg, line);
}

/* Prints "delivery: TYPE, hook ID[, item ID]". */
static void
emit_delivery(const struct podio_config *cfg, const struct podio_delivery *d)
{
	char line[512];

	snprintf(line, sizeof(line), "delivery: %s, hook %" PRIu64, d->type,
	    d->hook_id);
	if (d->has & PODIO_HAS_ITEM_ID)
		snprintf(line + strlen(line), sizeof(line) - strlen(line),
		    ", item %" PRIu64, d->item_id);
	emit_line(cfg, line);
}

/*
 * Prints what ran for an accepted event, then the "result: ..." line,
 * and returns the exit status: 0 when every callback succeeded, 3 when
 * Podio could not be reached for the item (the server would keep the
 * event and try again, not counting it as a try), 1 when Podio refused
 * the fetch or a callback failed (tried again later, counted).
 */
static int
emit_report(const struct podio_config *cfg, const struct podio_delivery *d,
    const struct podio__deliver_result *res)
{
	char line[PODIO_CALLBACK_DETAIL_MAX + 512];
	size_t i, k;

	if (res->fetched)
		printf("item %" PRIu64 " fetched\n", d->item_id);
	else if (res->item_error != NULL)
		printf("item %" PRIu64 " not fetched (%s): the event has "
		    "\"item\": null\n", d->item_id, res->item_error);
	for (i = 0; i < PODIO__DELIVER_NREGS; i++) {
		if (res->reports[i] == NULL)
			continue;
		for (k = 0; k < res->reports[i]->n; k++)
			emit_line(cfg, podio_callback_result_format(
			    &res->reports[i]->results[k], line,
			    sizeof(line)));
	}
	if (res->status != 200) {
		/* The fetch failed: no callback ran. */
		snprintf(line, sizeof(line), "result: %s; the server would "
		    "keep the event and try again later", res->reason);
		emit_line(cfg, line);
		if (podio_err_is_transport(res->err))
			return CLI_EXIT_UNREACHED;
		return CLI_EXIT_PODIO;
	}
	if (res->self_skipped) {
		printf("result: ok, by_self: the item's revision is this "
		    "receiver's own write-back; skip_self runs no callback\n");
		return CLI_EXIT_OK;
	}
	if (res->ran == 0) {
		printf("result: ok, no callback matches %s\n", d->type);
		return CLI_EXIT_OK;
	}
	if (res->failed > 0) {
		printf("result: %zu of %zu callback%s failed; the server would "
		    "try the event again later\n", res->failed, res->ran,
		    res->ran == 1 ? "" : "s");
		return CLI_EXIT_PODIO;
	}
	printf("result: ok, %zu callback%s succeeded\n", res->ran,
	    res->ran == 1 ? "" : "s");
	return CLI_EXIT_OK;
}

/* See emit.h.  A final line break of the file is not part of the body:
 * no form body ends in one, and an editor adds it. */
int
emit_run(struct podio_config **cfg, const struct podio_callbacks *fns,
    const char *path)
{
	struct podio_webhook_request req;
	struct podio_webhook_answer ans;
	struct podio__deliver_ctx dctx;
	struct podio__deliver_result res;
	struct podio_delivery *d = NULL;
	struct runtime *rt = NULL;
	struct podio_client *client = NULL;
	char *body = NULL, err[512];
	size_t len = 0, got = 0;
	int64_t max_body;
	int status, rc;

	memset(&res, 0, sizeof(res));
	max_body = podio_config_get_size(*cfg, "max_body");
	if (max_body <= 0)
		max_body = PODIO_WEBHOOK_MAX_BODY;
	if ((status = emit_read(path, (size_t)max_body, &body, &got)) != 0)
		goto fail;
	len = got;
	if (len > 0 && body[len - 1] == '\n') {
		len--;
		if (len > 0 && body[len - 1] == '\r')
			len--;
	}

	rc = runtime_new(*cfg, fns, NULL, &rt, err, sizeof(err));
	*cfg = NULL;
	if (rc != 0) {
		fprintf(stderr, PROG ": emit: %s%s\n", err,
		    strncmp(err, "webhook_secret", 14) == 0 ? " (set it, or "
		    "set allow_no_secret = yes)" : "");
		status = rc == RUNTIME_NOMEM ? CLI_EXIT_PODIO : CLI_EXIT_USAGE;
		goto fail;
	}
	if (runtime_client(rt, &client) != PODIO_OK) {
		fprintf(stderr, PROG ": emit: out of memory\n");
		status = CLI_EXIT_PODIO;
		goto fail;
	}

	/* The checks of a request, in its order (request_handle()). */
	memset(&req, 0, sizeof(req));
	req.method = "POST";
	req.content_type = "application/x-www-form-urlencoded";
	req.has_content_length = 1;
	req.content_length = len;
	req.body = len > 0 ? body : NULL;
	req.body_len = len;
	(void)podio_webhook_decide(&rt->settings, &req, &ans, &d);
	if (ans.status != 200 || d == NULL) {
		emit_status(rt->cfg, ans.status, ans.reason);
		status = CLI_EXIT_PODIO;
		goto fail;
	}
	runtime_deliver_ctx(rt, client, &dctx);
	if (strcmp(d->type, "hook.verify") == 0) {
		/* Validated in the request, as for Podio's POST; no callback
		 * sees it. */
		emit_delivery(rt->cfg, d);
		(void)podio__deliver(&dctx, d, &res);
		emit_status(rt->cfg, res.status, res.reason);
		status = res.status == 200 ? CLI_EXIT_OK :
		    podio_err_is_transport(res.err) ? CLI_EXIT_UNREACHED :
		    CLI_EXIT_PODIO;
		goto fail;
	}
	if (podio__deliver_check(d, &res) != 0) {
		emit_status(rt->cfg, res.status, res.reason);
		status = CLI_EXIT_PODIO;
		goto fail;
	}
	emit_status(rt->cfg, 200, "ok: accepted (a POST is queued; emit "
	    "runs the event now)");
	emit_delivery(rt->cfg, d);
	(void)podio__deliver(&dctx, d, &res);
	status = emit_report(rt->cfg, d, &res);
fail:
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	podio_client_free(client);
	runtime_unref(rt);
	if (body != NULL) {
		explicit_bzero(body, got);
		free(body);
	}
	return status;
}

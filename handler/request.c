/*
 * request.c: one webhook request (see request.h).
 *
 * The order of the checks is the library's (lib/webhook.c); this file
 * only adds what needs the transport: reading CONTENT_LENGTH, reading
 * the body after the head was judged, writing the answer, timing and the
 * log line.  Nothing here reads the body before podio_webhook_check_head()
 * allowed it, so an oversized body costs nothing but its refusal.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "budget.h"
#include "deliver.h"
#include "metrics.h"
#include "process.h"
#include "request.h"
#include "runtime.h"
#include "spool.h"

/* The longest method name logged as is. */
#define REQUEST_METHOD_MAX 16

/* The reason phrase of each status the handler answers. */
static const char *
request_status_text(int status)
{
	switch (status) {
	case 200: return "OK";
	case 400: return "Bad Request";
	case 403: return "Forbidden";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 415: return "Unsupported Media Type";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	default:  return "Unknown";
	}
}

/* Milliseconds of the monotonic clock. */
static int64_t
request_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/*
 * Writes the CGI response: the status line as a Status header, header
 * (one "Name: value" line, or NULL), a plain-text body of reason and a
 * newline.  A failed write is only logged: the client is gone.
 */
static void
request_write_answer(const struct request_io *io, int status,
    const char *header, const char *reason)
{
	char buf[1024];
	int n;

	n = snprintf(buf, sizeof(buf),
	    "Status: %d %s\r\n"
	    "%s%s"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Length: %zu\r\n"
	    "Cache-Control: no-store\r\n"
	    "\r\n"
	    "%s\n",
	    status, request_status_text(status),
	    header != NULL ? header : "", header != NULL ? "\r\n" : "",
	    strlen(reason) + 1, reason);
	if (n < 0 || (size_t)n >= sizeof(buf) ||
	    io->write(io->ctx, buf, (size_t)n) != 0)
		podio_log(PODIO_LOG_WARN, "could not write the %d answer: "
		    "the client went away", status);
}

/* Copies the method for the log: up to REQUEST_METHOD_MAX upper-case
 * letters and '-', else "?"; "-" when unset. */
static void
request_method_name(const char *method, char *out, size_t outlen)
{
	size_t i;

	if (method == NULL || method[0] == '\0') {
		snprintf(out, outlen, "-");
		return;
	}
	for (i = 0; method[i] != '\0'; i++)
		if (i >= REQUEST_METHOD_MAX || !((method[i] >= 'A' &&
		    method[i] <= 'Z') || method[i] == '-')) {
			snprintf(out, outlen, "?");
			return;
		}
	snprintf(out, outlen, "%s", method);
}

/*
 * Logs the line of one request.  d may be NULL (not accepted).  The
 * reason says what happened at intake ("ok: queued as event N", "ok: a
 * duplicate of event N", the verify's outcome, or why it was refused):
 * callbacks never run in a request (a hook.verify reaches none, every
 * other event is stored and run by a processor, which logs its own
 * "event id=N ..." line with the callbacks' outcome).
 */
static void
request_log(const char *method, const struct podio_delivery *d, int status,
    int64_t ms, const char *reason)
{
	char m[REQUEST_METHOD_MAX + 1], hook[24], item[24];
	enum podio_log_level level;

	request_method_name(method, m, sizeof(m));
	snprintf(hook, sizeof(hook), "-");
	snprintf(item, sizeof(item), "-");
	if (d != NULL && (d->has & PODIO_HAS_HOOK_ID))
		snprintf(hook, sizeof(hook), "%" PRIu64, d->hook_id);
	if (d != NULL && (d->has & PODIO_HAS_ITEM_ID))
		snprintf(item, sizeof(item), "%" PRIu64, d->item_id);
	level = status >= 500 ? PODIO_LOG_ERROR : status >= 400 ?
	    PODIO_LOG_WARN : PODIO_LOG_INFO;
	podio_log(level, "request method=%s type=%s hook_id=%s item_id=%s "
	    "status=%d ms=%" PRId64 ": %s", m, d != NULL ? d->type : "-", hook,
	    item, status, ms, reason);
}

/*
 * Reads up to want bytes of the body into a new buffer *out (caller
 * wipes and frees), stopping early at the end of the input or on an
 * error; *got receives the count.  Returns 0, or -1 on out of memory.
 */
static int
request_read_body(const struct request_io *io, size_t want, char **out,
    size_t *got)
{
	char *buf;
	size_t n = 0;
	ssize_t r;

	*out = NULL;
	*got = 0;
	if ((buf = malloc(want + 1)) == NULL)
		return -1;
	while (n < want) {
		r = io->read(io->ctx, buf + n, want - n);
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	buf[n] = '\0';
	*out = buf;
	*got = n;
	return 0;
}

/*
 * The answer to an append's outcome e (ack filled on success, err its
 * message or empty): 200 once the event is durable, with this process's
 * processors woken; 413 for an event too large to store; else 503 (the
 * sender may try again), logged.  Fills reason (size n); returns the
 * status.
 */
static int
request_spool_answer(struct process_spool *ps, enum podio_err e,
    const struct podio_spool_ack *ack, int64_t later_ms, const char *err,
    char *reason, size_t n)
{
	if (e == PODIO_OK) {
		/* A duplicate is no new work. */
		if (!ack->duplicate)
			process_spool_notify(ps, later_ms);
		snprintf(reason, n, "ok: %s event %" PRId64, ack->duplicate ?
		    "a duplicate of" : ack->intake ? "queued as intake" :
		    "queued as", ack->id);
		return 200;
	}
	podio_log(PODIO_LOG_ERROR, "cannot store the event: %s",
	    err != NULL && err[0] != '\0' ? err : podio_strerror(e));
	if (e == PODIO_ERR_TOO_LARGE) {
		snprintf(reason, n, "the event is too large to store");
		return 413;
	}
	snprintf(reason, n, "cannot store the event now; try again later");
	return 503;
}

/* The spool of ps for rt's spool_url or spool_dir; NULL when it cannot be
 * opened, with res filled (503) and the reason logged. */
static struct podio_spool *
request_spool_open(const struct runtime *rt, struct process_spool *ps,
    struct podio__deliver_result *res)
{
	struct podio_spool *spool;
	char err[512];

	err[0] = '\0';
	spool = process_spool_append_handle(ps, podio_config_spool(rt->cfg),
	    err, sizeof(err));
	if (spool == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot open the spool: %s", err);
		res->status = 503;
		snprintf(res->reason, sizeof(res->reason), "cannot store the "
		    "event now; try again later");
	}
	return spool;
}

/*
 * Stores the accepted delivery d (not a hook.verify) in the spool of ps
 * and answers as request_spool_answer() says: 200 only once the event is
 * durable; when the spool cannot be opened or written, 503 and nothing
 * is acknowledged.  Fills res's status and reason; *queued is set to 1
 * when stored.  Returns the status.
 */
static int
request_spool(const struct runtime *rt, struct process_spool *ps,
    const struct podio_delivery *d, struct podio__deliver_result *res,
    int *queued)
{
	struct podio_spool_ack ack;
	struct podio_spool *spool;
	char err[512];
	enum podio_err rc;

	if ((spool = request_spool_open(rt, ps, res)) == NULL)
		return res->status;
	memset(&ack, 0, sizeof(ack));
	err[0] = '\0';
	rc = podio_spool_append_delivery(spool, d, &ack, err, sizeof(err));
	if (rc != PODIO_OK)
		res->err = rc;
	else {
		*queued = 1;
		metrics_acked(rt->metrics, ack.duplicate);
	}
	res->status = request_spool_answer(ps, rc, &ack,
	    process_due_after(rt, d), err, res->reason, sizeof(res->reason));
	return res->status;
}

/* A request waiting for the flush of its event (see struct
 * request_defer). */
struct request_pending {
	struct request_io io;
	struct request_defer defer;
	struct process_spool *ps;
	struct metrics *metrics;       /* the runtime's, or NULL */
	struct podio_delivery *d;      /* owned */
	char method[REQUEST_METHOD_MAX + 1];
	int64_t t0;
	int64_t later_ms;              /* when the event may be due */
	enum podio_err e;              /* the outcome of the append */
	struct podio_spool_ack ack;
	char err[256];
};

/*
 * The end of a deferred request, once its event's commit is over: the
 * answer of request_spool(), the log line, then the connection is handed
 * back with defer.done and p freed.
 */
static void
request_finish_pending(void *arg)
{
	struct request_pending *p = arg;
	char reason[256];
	int status;

	status = request_spool_answer(p->ps, p->e, &p->ack, p->later_ms,
	    p->err, reason, sizeof(reason));
	if (p->e == PODIO_OK)
		metrics_acked(p->metrics, p->ack.duplicate);
	metrics_delivery(p->metrics, p->d->type, status);
	request_write_answer(&p->io, status, NULL, reason);
	request_log(p->method, p->d, status, request_now_ms() - p->t0,
	    reason);
	podio_delivery_free(p->d);
	p->defer.done(p->defer.ctx);
	free(p);
}

/* The spool's podio_spool_done_fn of a deferred request: keeps the
 * outcome and lets request_finish_pending() run (see defer.hand). */
static void
request_spooled(void *arg, enum podio_err e, const struct podio_spool_ack *ack,
    const char *err)
{
	struct request_pending *p = arg;

	p->e = e;
	if (ack != NULL)
		p->ack = *ack;
	snprintf(p->err, sizeof(p->err), "%s", err != NULL ? err : "");
	if (p->defer.hand != NULL)
		p->defer.hand(p->defer.ctx, request_finish_pending, p);
	else
		request_finish_pending(p);
}

/*
 * Hands the accepted delivery *dp to the spool of ps without waiting (see
 * struct request_defer); on success *dp belongs to the pending request
 * (set to NULL) and REQUEST_DEFERRED is returned.  When the spool cannot
 * take it, res is filled as request_spool() does and its status returned.
 */
static int
request_spool_deferred(const struct runtime *rt, struct process_spool *ps,
    const struct request_io *io, const struct request_defer *defer,
    const char *method, int64_t t0, struct podio_delivery **dp,
    struct podio__deliver_result *res)
{
	struct request_pending *p;
	struct podio_spool *spool;
	char err[512];
	enum podio_err rc;

	if ((spool = request_spool_open(rt, ps, res)) == NULL)
		return res->status;
	if ((p = calloc(1, sizeof(*p))) == NULL) {
		res->status = 500;
		snprintf(res->reason, sizeof(res->reason), "out of memory");
		return res->status;
	}
	p->io = *io;
	p->defer = *defer;
	p->ps = ps;
	p->metrics = rt->metrics;
	p->d = *dp;
	p->t0 = t0;
	p->later_ms = process_due_after(rt, p->d);
	request_method_name(method, p->method, sizeof(p->method));
	err[0] = '\0';
	rc = podio_spool_append_delivery_async(spool, p->d, request_spooled, p,
	    err, sizeof(err));
	if (rc != PODIO_OK) {
		free(p);
		res->err = rc;
		res->status = request_spool_answer(ps, rc, NULL, 0, err,
		    res->reason, sizeof(res->reason));
		return res->status;
	}
	*dp = NULL;
	return REQUEST_DEFERRED;
}

/* Fills req (zeroed first) with the head of the request io: method,
 * content type, query string and CONTENT_LENGTH, read strictly.  Returns
 * 1 when CONTENT_LENGTH is set but not an unsigned decimal, else 0. */
static int
request_head(const struct request_io *io, struct podio_webhook_request *req)
{
	const char *cl;
	uint64_t length;

	memset(req, 0, sizeof(*req));
	req->method = io->param(io->ctx, "REQUEST_METHOD");
	req->content_type = io->param(io->ctx, "CONTENT_TYPE");
	req->query = io->param(io->ctx, "QUERY_STRING");
	req->query_len = req->query != NULL ? strlen(req->query) : 0;
	/* nginx passes an empty CONTENT_LENGTH when the request had none. */
	cl = io->param(io->ctx, "CONTENT_LENGTH");
	if (cl == NULL || cl[0] == '\0')
		return 0;
	if (podio_parse_u64(cl, &length) != 0)
		return 1;
	req->has_content_length = 1;
	req->content_length = length;
	return 0;
}

/* See request.h.  The same checks as request_handle() makes first. */
int
request_head_decides(const struct request_io *io, const struct runtime *rt,
    uint64_t *need)
{
	struct podio_webhook_request req;
	struct podio_webhook_answer ans;
	int bad_length;

	*need = 0;
	bad_length = request_head(io, &req);
	if (req.method != NULL && strcmp(req.method, "POST") == 0 &&
	    bad_length)
		return 1;
	memset(&ans, 0, sizeof(ans));
	if (!podio_webhook_check_head(&rt->settings, &req, &ans))
		return 1;
	*need = req.content_length;
	return 0;
}

/* See request.h. */
int
request_handle(const struct request_io *io, struct runtime *rt,
    struct podio_client *client, struct process_spool *ps, int *queued,
    const struct request_defer *defer)
{
	struct podio_webhook_request req;
	struct podio_webhook_answer ans;
	struct podio__deliver_result res;
	struct podio__deliver_ctx ctx;
	struct podio_delivery *d = NULL;
	const char *header = NULL, *reason;
	char *body = NULL, spool_err[256];
	size_t body_len = 0;
	uint64_t length = 0;
	int64_t t0 = request_now_ms();
	int status, bad_length = 0, stored = 0, verified = 0;
	int late = 0, input_over = 0;

	memset(&ans, 0, sizeof(ans));
	memset(&res, 0, sizeof(res));
	bad_length = request_head(io, &req);
	length = req.content_length;

	if (req.method != NULL && strcmp(req.method, "POST") == 0 &&
	    bad_length) {
		status = 400;
		reason = "malformed Content-Length";
		goto fail;
	}
	if (!podio_webhook_check_head(&rt->settings, &req, &ans)) {
		status = ans.status;
		header = ans.header;
		reason = ans.reason;
		goto fail;
	}
	/* check_head() bounded the length by max_body. */
	if (request_read_body(io, (size_t)length, &body, &body_len) != 0) {
		status = 500;
		reason = "out of memory";
		goto fail;
	}
	if (io->input_done != NULL) {
		late = io->input_done(io->ctx);
		input_over = 1;
		if (late) {
			status = 408;
			reason = REQUEST_LATE_REASON;
			goto fail;
		}
	}
	req.body = body_len > 0 ? body : NULL;
	req.body_len = body_len;
	(void)podio_webhook_decide(&rt->settings, &req, &ans, &d);
	if (ans.status != 200 || d == NULL) {
		status = ans.status;
		header = ans.header;
		reason = ans.reason;
		goto fail;
	}
	if (ans.previous_secret)
		/* The hook's URL still carries the old secret: a hook left
		 * to re-create before webhook_secret_previous goes. */
		podio_log(PODIO_LOG_WARN, "hook_id=%" PRIu64 ": delivery "
		    "accepted with webhook_secret_previous; re-create this "
		    "hook with the current webhook_secret", d->hook_id);
	if (strcmp(d->type, "hook.verify") == 0) {
		/* The handshake stays synchronous: Podio activates the hook
		 * only once it was validated. */
		runtime_deliver_ctx(rt, client, &ctx);
		status = podio__deliver(&ctx, d, &res);
		verified = 1;
	} else if ((status = podio__deliver_check(d, &res)) == 0) {
		if (defer != NULL && ps != NULL) {
			status = request_spool_deferred(rt, ps, io, defer,
			    req.method, t0, &d, &res);
			stored = status == REQUEST_DEFERRED;
		} else
			status = request_spool(rt, ps, d, &res, &stored);
	}
	reason = res.reason;
fail:
	/* every path ends here, the accepted one included; a deferred
	 * request is answered and logged when its event is flushed */
	if (status != REQUEST_DEFERRED) {
		/* A refusal is answered at once, its body left unread. */
		if (io->input_done != NULL && !input_over)
			late = io->input_done(io->ctx);
		if (!late)
			request_write_answer(io, status, header, reason);
		request_log(req.method, d, status, request_now_ms() - t0,
		    reason);
		metrics_delivery(rt->metrics, d != NULL ? d->type : NULL,
		    status);
	}
	if (verified && ps != NULL)
		/* What Podio's answer says of the API budget, for the
		 * processors (when the spool can be opened). */
		budget_note_verify(rt, process_spool_get(ps,
		    podio_config_spool(rt->cfg), spool_err,
		    sizeof(spool_err)), client, res.err);
	podio__deliver_result_clear(&res);
	podio_delivery_free(d);
	if (queued != NULL)
		*queued = stored;
	if (body != NULL) {
		explicit_bzero(body, body_len);
		free(body);
	}
	return status;
}

/* See request.h. */
void
request_log_late(int64_t ms)
{
	request_log(NULL, NULL, 408, ms, REQUEST_LATE_REASON);
}

/* See request.h. */
void
request_answer_error(const struct request_io *io, int status,
    const char *reason)
{
	request_write_answer(io, status, NULL, reason);
	request_log(io->param(io->ctx, "REQUEST_METHOD"), NULL, status, 0,
	    reason);
}

/* See request.h. */
void
request_answer_unconfigured(const struct request_io *io, const char *reason)
{
	char line[512];

	snprintf(line, sizeof(line), "podio-webhook is not configured: %s",
	    reason);
	request_answer_error(io, 503, line);
}

/* ------------------------------------------------------------- CGI */

static const char *
request_cgi_param(void *ctx, const char *name)
{
	(void)ctx;
	return getenv(name);
}

/* The bytes of the request body a CGI run read from stdin. */
static uint64_t request_cgi_got;

static ssize_t
request_cgi_read(void *ctx, char *buf, size_t n)
{
	ssize_t r;

	(void)ctx;
	do
		r = read(STDIN_FILENO, buf, n);
	while (r < 0 && errno == EINTR);
	if (r > 0)
		request_cgi_got += (uint64_t)r;
	return r;
}

/* The most request_cgi_drain() reads, and for how long. */
#define REQUEST_CGI_DRAIN_MAX (16u << 20)
#define REQUEST_CGI_DRAIN_MS  3000

/* See request.h. */
void
request_cgi_drain(void)
{
	const char *cl = getenv("CONTENT_LENGTH");
	struct pollfd pfd = { STDIN_FILENO, POLLIN, 0 };
	char buf[16384], *end;
	uint64_t want, left;
	int64_t until = request_now_ms() + REQUEST_CGI_DRAIN_MS, now;
	ssize_t r;

	if (cl == NULL || cl[0] < '0' || cl[0] > '9')
		return;
	errno = 0;
	want = strtoull(cl, &end, 10);
	if (errno != 0 || *end != '\0' || want <= request_cgi_got ||
	    want - request_cgi_got > REQUEST_CGI_DRAIN_MAX)
		return;
	left = want - request_cgi_got;
	while (left > 0 && (now = request_now_ms()) < until) {
		if (poll(&pfd, 1, (int)(until - now)) <= 0)
			return;
		r = request_cgi_read(NULL, buf, left < sizeof(buf) ?
		    (size_t)left : sizeof(buf));
		if (r <= 0)
			return;
		left -= (uint64_t)r;
	}
}

/* The answer is written in one piece and flushed at once. */
static int
request_cgi_write(void *ctx, const char *buf, size_t n)
{
	(void)ctx;
	if (fwrite(buf, 1, n, stdout) != n || fflush(stdout) != 0)
		return -1;
	return 0;
}

/* See request.h. */
void
request_cgi_io(struct request_io *io)
{
	io->param = request_cgi_param;
	io->read = request_cgi_read;
	io->write = request_cgi_write;
	io->input_done = NULL;
	io->ctx = NULL;
}

/*
 * podio-test-client.c: drives libpodio's client for the Python
 * integration tests.  One token store shared by N threads, each with its
 * own struct podio_client, each making M calls.
 *
 * podio-test-client [-c FILE] [--threads N] [--calls M]
 *     [--op auth|item|filter|hooklist|call|hookcreate|verify|validate|
 *     delete] [--item ID] [--app ID] [--ids ID,ID,...] [--path P]
 *     [--method M] [--body JSON]
 *     [--ref-type T] [--ref-id ID] [--url URL] [--event TYPE]
 *     [--hook ID] [--code CODE] [--interval MS] [--barrier] [--print]
 *     [--observe]
 * podio-test-client --version
 *
 * Configuration: FILE (optional), then the environment (PODIO_*).
 * Output: "call failed: ERRNAME: message" per failed call, then
 * "ok=N failed=N token_requests=N" and
 * "last: http_status=S rate_limit=L rate_remaining=R retry_after=W
 * error=E request_id=I" for the call that finished last; with --print
 * the last answer's text after that (ops item, call and hooklist) or
 * "hook_id=N" (hookcreate); for filter (podio_item_filter() of --ids in
 * app --app), one line per id in order: "filter ID TEXT" or
 * "filter ID missing".  With --observe every client has an observer
 * (podio_client_set_observer()), and a line "observed: calls=N token=N
 * no_answer=N last=METHOD PATH STATUS" follows "last:".
 * Exit 0 when every call succeeded, 1 otherwise, 2 on usage or
 * configuration errors.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"

extern char **environ;

enum op {
	OP_AUTH, OP_ITEM, OP_FILTER, OP_HOOKLIST, OP_CALL, OP_HOOKCREATE,
	OP_VERIFY, OP_VALIDATE, OP_DELETE
};

struct opts {
	const char *config_file;
	long threads;
	long calls;
	enum op op;
	uint64_t item_id;
	uint64_t app_id;
	uint64_t ids[PODIO_ITEM_FILTER_MAX + 1];
	size_t nids;
	const char *path;
	const char *method;
	const char *body;
	const char *ref_type;
	uint64_t ref_id;
	const char *url;
	const char *event;
	uint64_t hook_id;
	const char *code;
	long interval_ms;
	int barrier;
	int print;
	int observe;
};

/* Shared by the threads; every field after `lock` is guarded by it. */
struct shared {
	const struct opts *o;
	const struct podio_config *cfg;
	struct podio_tokens *tokens;
	pthread_barrier_t barrier;
	pthread_mutex_t lock;
	unsigned long ok;
	unsigned long failed;
	struct {
		long http_status, rate_limit, rate_remaining, retry_after;
		char error[128];
		char request_id[128];
	} last;
	char *last_text;
	/* What the observers saw (--observe). */
	unsigned long obs_calls, obs_token, obs_none;
	char obs_last[300];
};

/* The enum's own name, as the tests match it. */
static const char *
err_name(enum podio_err err)
{
	static const char *const names[] = {
		"OK", "NOMEM", "INVALID", "CONFIG", "IO", "AUTH",
		"TOKEN_EXPIRED", "UNAUTHORIZED", "BAD_REQUEST", "FORBIDDEN",
		"NOT_FOUND", "CONFLICT", "GONE", "RATE_LIMITED", "SERVER",
		"UNAVAILABLE", "HTTP", "BAD_JSON", "TOO_LARGE", "TRANSPORT",
		"TIMEOUT", "TLS",
	};

	if ((unsigned)err < sizeof(names) / sizeof(names[0]))
		return names[err];
	return "UNKNOWN";
}

static void
usage(void)
{
	fprintf(stderr, "usage: podio-test-client [-c FILE] [--threads N] "
	    "[--calls M] [--op auth|item|filter|hooklist|call|hookcreate|"
	    "verify|validate|delete] [--item ID] [--app ID] [--ids ID,...] "
	    "[--path P] [--method M] "
	    "[--body JSON] [--ref-type T] [--ref-id ID] [--url URL] "
	    "[--event TYPE] [--hook ID] [--code CODE] [--interval MS] "
	    "[--barrier] [--print] [--observe]\n"
	    "       podio-test-client --version\n");
}

/* A whole decimal number in [min, max]; -1 when text is not one. */
static long
parse_long(const char *text, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(text, &end, 10);
	if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
		return -1;
	return v;
}

/* Parses a comma-separated list of ids into o->ids (at most one more
 * than podio_item_filter() accepts, to test its limit).  0 or -1. */
static int
parse_ids(const char *text, struct opts *o)
{
	char buf[32];
	size_t n;

	o->nids = 0;
	while (*text != '\0') {
		n = strcspn(text, ",");
		if (n == 0 || n >= sizeof(buf) ||
		    o->nids >= sizeof(o->ids) / sizeof(o->ids[0]))
			return -1;
		memcpy(buf, text, n);
		buf[n] = '\0';
		if (podio_parse_u64(buf, &o->ids[o->nids++]) != 0)
			return -1;
		text += n;
		if (*text == ',')
			text++;
	}
	return 0;
}

/* Parses argv into o.  Returns 0, or -1 after printing why. */
static int
parse_args(int argc, char **argv, struct opts *o)
{
	int i;

	memset(o, 0, sizeof(*o));
	o->threads = 1;
	o->calls = 1;
	o->op = OP_ITEM;
	o->item_id = 1;
	o->app_id = 1234;
	o->path = "/item/1?mark_as_viewed=0";
	o->method = "GET";
	o->ref_type = "app";
	o->ref_id = 1234;
	o->url = "http://127.0.0.1:9/hook";
	o->event = "item.create";
	o->hook_id = 1;
	o->code = "code";
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char *v = i + 1 < argc ? argv[i + 1] : NULL;

#define NEEDV do { if (v == NULL) goto missing; i++; } while (0)
		if (strcmp(a, "-c") == 0) {
			NEEDV;
			o->config_file = v;
		} else if (strcmp(a, "--threads") == 0) {
			NEEDV;
			if ((o->threads = parse_long(v, 1, 256)) < 0)
				goto bad;
		} else if (strcmp(a, "--calls") == 0) {
			NEEDV;
			if ((o->calls = parse_long(v, 0, 1000000)) < 0)
				goto bad;
		} else if (strcmp(a, "--op") == 0) {
			NEEDV;
			if (strcmp(v, "auth") == 0)
				o->op = OP_AUTH;
			else if (strcmp(v, "item") == 0)
				o->op = OP_ITEM;
			else if (strcmp(v, "filter") == 0)
				o->op = OP_FILTER;
			else if (strcmp(v, "hooklist") == 0)
				o->op = OP_HOOKLIST;
			else if (strcmp(v, "call") == 0)
				o->op = OP_CALL;
			else if (strcmp(v, "hookcreate") == 0)
				o->op = OP_HOOKCREATE;
			else if (strcmp(v, "verify") == 0)
				o->op = OP_VERIFY;
			else if (strcmp(v, "validate") == 0)
				o->op = OP_VALIDATE;
			else if (strcmp(v, "delete") == 0)
				o->op = OP_DELETE;
			else
				goto bad;
		} else if (strcmp(a, "--item") == 0) {
			NEEDV;
			if (podio_parse_u64(v, &o->item_id) != 0)
				goto bad;
		} else if (strcmp(a, "--app") == 0) {
			NEEDV;
			if (podio_parse_u64(v, &o->app_id) != 0)
				goto bad;
		} else if (strcmp(a, "--ids") == 0) {
			NEEDV;
			if (parse_ids(v, o) != 0)
				goto bad;
		} else if (strcmp(a, "--path") == 0) {
			NEEDV;
			o->path = v;
		} else if (strcmp(a, "--method") == 0) {
			NEEDV;
			o->method = v;
		} else if (strcmp(a, "--body") == 0) {
			NEEDV;
			o->body = v;
		} else if (strcmp(a, "--ref-type") == 0) {
			NEEDV;
			o->ref_type = v;
		} else if (strcmp(a, "--ref-id") == 0) {
			NEEDV;
			if (podio_parse_u64(v, &o->ref_id) != 0)
				goto bad;
		} else if (strcmp(a, "--url") == 0) {
			NEEDV;
			o->url = v;
		} else if (strcmp(a, "--event") == 0) {
			NEEDV;
			o->event = v;
		} else if (strcmp(a, "--hook") == 0) {
			NEEDV;
			if (podio_parse_u64(v, &o->hook_id) != 0)
				goto bad;
		} else if (strcmp(a, "--code") == 0) {
			NEEDV;
			o->code = v;
		} else if (strcmp(a, "--interval") == 0) {
			NEEDV;
			if ((o->interval_ms = parse_long(v, 0, 3600000)) < 0)
				goto bad;
		} else if (strcmp(a, "--barrier") == 0) {
			o->barrier = 1;
		} else if (strcmp(a, "--print") == 0) {
			o->print = 1;
		} else if (strcmp(a, "--observe") == 0) {
			o->observe = 1;
		} else {
			fprintf(stderr, "podio-test-client: unknown option "
			    "%s\n", a);
			return -1;
		}
#undef NEEDV
		continue;
missing:
		fprintf(stderr, "podio-test-client: %s needs a value\n", a);
		return -1;
bad:
		fprintf(stderr, "podio-test-client: bad value for %s: %s\n",
		    a, v);
		return -1;
	}
	return 0;
}

/* podio_item_filter() of o->ids; *text receives one line per id. */
static enum podio_err
filter_call(struct podio_client *c, const struct opts *o, char **text)
{
	char *texts[PODIO_ITEM_FILTER_MAX + 1], *out = NULL, *p;
	size_t i, len = 1;
	enum podio_err rc;

	rc = podio_item_filter(c, o->app_id, o->ids, o->nids, texts);
	if (rc != PODIO_OK)
		return rc;
	for (i = 0; i < o->nids; i++)
		len += 48 + (texts[i] != NULL ? strlen(texts[i]) : 8);
	if ((out = malloc(len)) != NULL) {
		p = out;
		*p = '\0';
		for (i = 0; i < o->nids; i++)
			p += sprintf(p, "%sfilter %" PRIu64 " %s",
			    i > 0 ? "\n" : "", o->ids[i],
			    texts[i] != NULL ? texts[i] : "missing");
	}
	for (i = 0; i < o->nids; i++)
		free(texts[i]);
	*text = out;
	return out != NULL ? PODIO_OK : PODIO_ERR_NOMEM;
}

/* Performs one call of the chosen kind.  *text receives what --print
 * shows (caller frees). */
static enum podio_err
one_call(struct podio_client *c, const struct opts *o, char **text)
{
	struct podio_hook *hooks = NULL;
	size_t n = 0;
	uint64_t id = 0;
	char buf[64];
	enum podio_err rc;

	*text = NULL;
	switch (o->op) {
	case OP_AUTH:
		return podio_authenticate(c);
	case OP_ITEM:
		return podio_item_get(c, o->item_id, text, NULL);
	case OP_FILTER:
		return filter_call(c, o, text);
	case OP_HOOKLIST:
		rc = podio_hook_list(c, o->ref_type, o->ref_id, &hooks, &n,
		    text);
		podio_hooks_free(hooks, n);
		return rc;
	case OP_CALL:
		return podio_call(c, o->method, o->path, o->body, text);
	case OP_HOOKCREATE:
		rc = podio_hook_create(c, o->ref_type, o->ref_id, o->url,
		    o->event, &id);
		if (rc == PODIO_OK) {
			snprintf(buf, sizeof(buf), "hook_id=%" PRIu64, id);
			*text = strdup(buf);
		}
		return rc;
	case OP_VERIFY:
		return podio_hook_verify(c, o->hook_id);
	case OP_VALIDATE:
		return podio_hook_validate(c, o->hook_id, o->code);
	case OP_DELETE:
		return podio_hook_delete(c, o->hook_id);
	}
	return PODIO_ERR_INVALID;
}

static void
sleep_ms(long ms)
{
	struct timespec ts;

	ts.tv_sec = ms / 1000;
	ts.tv_nsec = (ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* The observer of --observe: tallies every request in s. */
static void
observe(const struct podio_call_note *note, void *arg)
{
	struct shared *s = arg;

	pthread_mutex_lock(&s->lock);
	s->obs_calls++;
	if (strcmp(note->path, "/oauth/token") == 0)
		s->obs_token++;
	if (note->http_status == 0)
		s->obs_none++;
	snprintf(s->obs_last, sizeof(s->obs_last), "%s %.200s %ld",
	    note->method, note->path, note->http_status);
	pthread_mutex_unlock(&s->lock);
}

/* One thread: its own client, o->calls calls, tallied in s. */
static void *
worker(void *arg)
{
	struct shared *s = arg;
	const struct opts *o = s->o;
	struct podio_client *c = NULL;
	struct podio_call_info info;
	char *text = NULL;
	enum podio_err rc;
	long i;

	rc = podio_client_new(s->cfg, s->tokens, &c);
	if (rc == PODIO_OK && o->observe)
		podio_client_set_observer(c, observe, s);
	if (s->o->barrier)
		pthread_barrier_wait(&s->barrier);
	if (rc != PODIO_OK) {
		pthread_mutex_lock(&s->lock);
		printf("call failed: %s: cannot create a client\n",
		    err_name(rc));
		s->failed += (unsigned long)o->calls;
		pthread_mutex_unlock(&s->lock);
		return NULL;
	}
	for (i = 0; i < o->calls; i++) {
		if (i > 0 && o->interval_ms > 0)
			sleep_ms(o->interval_ms);
		rc = one_call(c, o, &text);
		podio_client_last(c, &info);
		pthread_mutex_lock(&s->lock);
		if (rc == PODIO_OK)
			s->ok++;
		else {
			s->failed++;
			printf("call failed: %s: %s\n", err_name(rc),
			    podio_client_errmsg(c));
		}
		s->last.http_status = info.http_status;
		s->last.rate_limit = info.rate_limit;
		s->last.rate_remaining = info.rate_remaining;
		s->last.retry_after = info.retry_after;
		snprintf(s->last.error, sizeof(s->last.error), "%s",
		    info.error != NULL ? info.error : "-");
		snprintf(s->last.request_id, sizeof(s->last.request_id), "%s",
		    info.request_id != NULL ? info.request_id : "-");
		if (text != NULL) {
			free(s->last_text);
			s->last_text = text;
			text = NULL;
		}
		fflush(stdout);
		pthread_mutex_unlock(&s->lock);
		free(text);
		text = NULL;
	}
	podio_client_free(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	struct opts o;
	struct shared s;
	struct podio_config *cfg = NULL;
	struct podio_tokens *tokens = NULL;
	pthread_t *th = NULL;
	const char *level;
	char err[512];
	long i, started = 0;
	int rc = 2, lvl, barrier_made = 0;

	memset(&s, 0, sizeof(s));
	pthread_mutex_init(&s.lock, NULL);
	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("%s\n", podio_version());
		return 0;
	}
	if (parse_args(argc, argv, &o) != 0) {
		usage();
		return 2;
	}
	if (podio_global_init() != PODIO_OK) {
		fprintf(stderr, "podio-test-client: podio_global_init "
		    "failed\n");
		return 2;
	}
	err[0] = '\0';
	if ((cfg = podio_config_new()) == NULL) {
		fprintf(stderr, "podio-test-client: out of memory\n");
		goto fail;
	}
	if (o.config_file != NULL && podio_config_load_file(cfg,
	    o.config_file, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "podio-test-client: %s\n", err[0] ? err :
		    "cannot read the configuration file");
		goto fail;
	}
	if (podio_config_load_env(cfg, environ, err, sizeof(err)) !=
	    PODIO_OK) {
		fprintf(stderr, "podio-test-client: %s\n", err);
		goto fail;
	}
	level = podio_config_get(cfg, "log_level");
	if (level != NULL && (lvl = podio_log_level_parse(level)) >= 0)
		podio_log_set_level((enum podio_log_level)lvl);
	if (podio_tokens_new(cfg, &tokens, err, sizeof(err)) != PODIO_OK) {
		fprintf(stderr, "podio-test-client: %s\n", err);
		goto fail;
	}

	s.o = &o;
	s.cfg = cfg;
	s.tokens = tokens;
	s.last.http_status = 0;
	s.last.rate_limit = s.last.rate_remaining = s.last.retry_after = -1;
	snprintf(s.last.error, sizeof(s.last.error), "-");
	snprintf(s.last.request_id, sizeof(s.last.request_id), "-");
	if (o.barrier) {
		pthread_barrier_init(&s.barrier, NULL, (unsigned)o.threads);
		barrier_made = 1;
	}
	if ((th = calloc((size_t)o.threads, sizeof(*th))) == NULL) {
		fprintf(stderr, "podio-test-client: out of memory\n");
		goto fail;
	}
	for (i = 0; i < o.threads; i++) {
		if (pthread_create(&th[i], NULL, worker, &s) != 0) {
			/* A barrier waiting for this thread would never
			 * open: give up at once. */
			fprintf(stderr, "podio-test-client: cannot start "
			    "thread %ld\n", i);
			if (o.barrier)
				_exit(2);
			break;
		}
		started++;
	}
	for (i = 0; i < started; i++)
		pthread_join(th[i], NULL);

	printf("ok=%lu failed=%lu token_requests=%lu\n", s.ok, s.failed,
	    podio_tokens_requests(tokens));
	printf("last: http_status=%ld rate_limit=%ld rate_remaining=%ld "
	    "retry_after=%ld error=%s request_id=%s\n", s.last.http_status,
	    s.last.rate_limit, s.last.rate_remaining, s.last.retry_after,
	    s.last.error, s.last.request_id);
	if (o.observe)
		printf("observed: calls=%lu token=%lu no_answer=%lu last=%s\n",
		    s.obs_calls, s.obs_token, s.obs_none,
		    s.obs_last[0] != '\0' ? s.obs_last : "-");
	if (o.print && s.last_text != NULL)
		printf("%s\n", s.last_text);
	fflush(stdout);
	rc = started == o.threads && s.failed == 0 ? 0 : 1;
fail:
	if (barrier_made)
		pthread_barrier_destroy(&s.barrier);
	pthread_mutex_destroy(&s.lock);
	free(th);
	free(s.last_text);
	podio_tokens_free(tokens);
	podio_config_free(cfg);
	podio_global_cleanup();
	return rc;
}

/*
 * callback.c: running the user's callbacks for one event (see
 * callback.h): the registry of C functions, commands from "on" lines and
 * JSON-lines logs from "log" lines, matching patterns, and running what
 * matches in order (the commands and logs themselves: callback_exec.c).
 *
 * The registry is read-only once events run, and nothing here keeps
 * global state, so many threads may run events at once.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "podio.h"
#include "callback.h"
#include "callback_int.h"
#include "log.h"
#include "util.h"

/* Entries of each kind (functions, rules) in one registry. */
#define PODIO__CB_ENTRIES_MAX 4096
/* Words of one command. */
#define PODIO__CB_ARGS_MAX 1024
/* Longest pattern: a 64-byte type and ".*". */
#define PODIO__CB_PATTERN_MAX 66

/* ------------------------------------------------------------- patterns */

/* See callback.h. */
int
podio__callback_pattern_ok(const char *pattern)
{
	size_t n, stem, i;
	char c;

	if (pattern == NULL)
		return 0;
	if (strcmp(pattern, "*") == 0)
		return 1;
	n = strlen(pattern);
	stem = n >= 3 && strcmp(pattern + n - 2, ".*") == 0 ? n - 2 : n;
	if (stem == 0 || stem > 64)
		return 0;
	for (i = 0; i < stem; i++) {
		c = pattern[i];
		if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '_' || c == '.' || c == '-'))
			return 0;
	}
	return 1;
}

/* See callback.h.  "prefix.*" compares the type with "prefix." and lets
 * anything follow. */
int
podio__callback_match(const char *pattern, const char *type)
{
	size_t n;

	if (pattern == NULL || type == NULL)
		return 0;
	if (strcmp(pattern, "*") == 0)
		return 1;
	n = strlen(pattern);
	if (n >= 2 && pattern[n - 1] == '*' && pattern[n - 2] == '.')
		return strncmp(pattern, type, n - 1) == 0;
	return strcmp(pattern, type) == 0;
}

/* ------------------------------------------------------------- registry */

/* Frees what e owns (wiping command arguments) and clears it. */
static void
podio__cb_entry_clear(struct podio__cb_entry *e)
{
	size_t i;

	free(e->pattern);
	if (e->argv != NULL) {
		for (i = 0; e->argv[i] != NULL; i++)
			podio__free_secret(e->argv[i]);
		free(e->argv);
	}
	free(e->path);
	free(e->file);
	free(e->key);
	memset(e, 0, sizeof(*e));
}

/* See callback_int.h. */
int
podio__cb_pidfd(pid_t pid)
{
#ifdef SYS_pidfd_open
	return (int)syscall(SYS_pidfd_open, pid, 0);
#else
	(void)pid;
	return -1;
#endif
}

/* See callback.h.  LANG and TZ are copied now so that running events
 * never reads the environment another thread might be changing.  Whether
 * pidfds work is found out once here, not with a failing system call
 * for every command. */
struct podio_callbacks *
podio_callbacks_new(void)
{
	struct podio_callbacks *reg;
	const char *lang, *tz;
	int fd;

	if ((reg = calloc(1, sizeof(*reg))) == NULL)
		return NULL;
	if ((fd = podio__cb_pidfd(getpid())) >= 0) {
		reg->use_pidfd = 1;
		close(fd);
	}
	lang = getenv("LANG");
	tz = getenv("TZ");
	if ((lang != NULL && lang[0] != '\0' &&
	    (reg->lang = strdup(lang)) == NULL) ||
	    (tz != NULL && (reg->tz = strdup(tz)) == NULL)) {
		podio_callbacks_free(reg);
		return NULL;
	}
	return reg;
}

/* See callback.h. */
void
podio_callbacks_free(struct podio_callbacks *reg)
{
	size_t i;

	if (reg == NULL)
		return;
	for (i = 0; i < reg->nfns; i++)
		podio__cb_entry_clear(&reg->fns[i]);
	for (i = 0; i < reg->nrules; i++)
		podio__cb_entry_clear(&reg->rules[i]);
	free(reg->fns);
	free(reg->rules);
	free(reg->lang);
	free(reg->tz);
	free(reg);
}

/* What an entry acts on, for its key: argv[0] of a command (never the
 * arguments: they may carry tokens), the file of a log, "" for a
 * function. */
static const char *
podio__cb_target(const struct podio__cb_entry *e)
{
	if (e->kind == PODIO_CALLBACK_COMMAND)
		return e->argv[0];
	if (e->kind == PODIO_CALLBACK_LOG)
		return e->path;
	return "";
}

/*
 * Sets e->key, the identity of e among the n entries of arr that come
 * before it: "fn:PATTERN#N" for a function, "on:PATTERN:ARGV0#N" for a
 * command, "log:PATTERN:PATH#N" for a log, where N (from 1) counts the
 * entries of the same kind, pattern and target up to e.  Registries
 * built in the same order from the same configuration give the same
 * keys, in any process, so a key may be stored to remember that a
 * callback already ran.  Returns PODIO_OK or PODIO_ERR_NOMEM.
 */
static enum podio_err
podio__cb_key(const struct podio__cb_entry *arr, size_t n,
    struct podio__cb_entry *e)
{
	struct podio__buf b = { NULL, 0, 0, 0 };
	const char *target = podio__cb_target(e);
	size_t i, same = 1;
	int rc;

	for (i = 0; i < n; i++)
		if (arr[i].kind == e->kind &&
		    strcmp(arr[i].pattern, e->pattern) == 0 &&
		    strcmp(podio__cb_target(&arr[i]), target) == 0)
			same++;
	if (e->kind == PODIO_CALLBACK_FUNCTION)
		rc = podio__buf_appendf(&b, "fn:%s#%zu", e->pattern, same);
	else
		rc = podio__buf_appendf(&b, "%s:%s:%s#%zu",
		    e->kind == PODIO_CALLBACK_COMMAND ? "on" : "log",
		    e->pattern, target, same);
	free(e->key);
	e->key = rc == 0 ? podio__buf_steal(&b) : NULL;
	podio__buf_free(&b);
	return e->key != NULL ? PODIO_OK : PODIO_ERR_NOMEM;
}

/*
 * Appends e to the array *arr (*n used, *a allocated), taking what e
 * owns, and gives it its key.  Returns PODIO_OK, PODIO_ERR_INVALID past
 * PODIO__CB_ENTRIES_MAX or PODIO_ERR_NOMEM; on failure e is left to the
 * caller.
 */
static enum podio_err
podio__cb_push(struct podio__cb_entry **arr, size_t *n, size_t *a,
    struct podio__cb_entry *e)
{
	struct podio__cb_entry *na;
	size_t nalloc;

	if (*n >= PODIO__CB_ENTRIES_MAX)
		return PODIO_ERR_INVALID;
	if (podio__cb_key(*arr, *n, e) != PODIO_OK)
		return PODIO_ERR_NOMEM;
	if (*n == *a) {
		nalloc = *a ? *a * 2 : 8;
		if ((na = reallocarray(*arr, nalloc, sizeof(*na))) == NULL)
			return PODIO_ERR_NOMEM;
		*arr = na;
		*a = nalloc;
	}
	(*arr)[(*n)++] = *e;
	memset(e, 0, sizeof(*e));
	return PODIO_OK;
}

/* Registers a function entry: one of fn, msg_fn is set. */
static enum podio_err
podio__cb_on(struct podio_callbacks *reg, const char *pattern,
    podio_callback_fn fn, podio_callback_msg_fn msg_fn, void *userdata)
{
	struct podio__cb_entry e;
	enum podio_err rc;

	if (reg == NULL || (fn == NULL && msg_fn == NULL) ||
	    !podio__callback_pattern_ok(pattern))
		return PODIO_ERR_INVALID;
	memset(&e, 0, sizeof(e));
	e.kind = PODIO_CALLBACK_FUNCTION;
	e.fn = fn;
	e.msg_fn = msg_fn;
	e.userdata = userdata;
	if ((e.pattern = strdup(pattern)) == NULL)
		return PODIO_ERR_NOMEM;
	rc = podio__cb_push(&reg->fns, &reg->nfns, &reg->afns, &e);
	podio__cb_entry_clear(&e);
	return rc;
}

/* See callback.h. */
enum podio_err
podio_callbacks_on(struct podio_callbacks *reg, const char *pattern,
    podio_callback_fn fn, void *userdata)
{
	return podio__cb_on(reg, pattern, fn, NULL, userdata);
}

/* See callback.h. */
enum podio_err
podio_callbacks_on_msg(struct podio_callbacks *reg, const char *pattern,
    podio_callback_msg_fn fn, void *userdata)
{
	return podio__cb_on(reg, pattern, NULL, fn, userdata);
}

/*
 * Fills e (cleared first) with a copy of a command (argv set) or a log
 * (path set) rule; file (may be NULL) and line say where it was
 * configured.  Returns PODIO_OK, PODIO_ERR_INVALID or PODIO_ERR_NOMEM;
 * on failure e owns nothing.
 */
static enum podio_err
podio__cb_rule_make(struct podio__cb_entry *e, const char *pattern,
    char *const *argv, const char *path, const char *file, int line)
{
	size_t argc, i;

	memset(e, 0, sizeof(*e));
	if (!podio__callback_pattern_ok(pattern))
		return PODIO_ERR_INVALID;
	if (argv != NULL) {
		for (argc = 0; argv[argc] != NULL; argc++)
			if (argc == PODIO__CB_ARGS_MAX)
				return PODIO_ERR_INVALID;
		if (argc == 0 || argv[0][0] != '/')
			return PODIO_ERR_INVALID;
		e->kind = PODIO_CALLBACK_COMMAND;
		if ((e->argv = calloc(argc + 1, sizeof(*e->argv))) == NULL)
			goto nomem;
		for (i = 0; i < argc; i++)
			if ((e->argv[i] = strdup(argv[i])) == NULL)
				goto nomem;
	} else {
		if (path == NULL || path[0] != '/')
			return PODIO_ERR_INVALID;
		e->kind = PODIO_CALLBACK_LOG;
		if ((e->path = strdup(path)) == NULL)
			goto nomem;
	}
	if ((e->pattern = strdup(pattern)) == NULL ||
	    (file != NULL && (e->file = strdup(file)) == NULL))
		goto nomem;
	e->line = line;
	return PODIO_OK;
nomem:
	podio__cb_entry_clear(e);
	return PODIO_ERR_NOMEM;
}

/* Adds one rule to reg; see podio__cb_rule_make(). */
static enum podio_err
podio__cb_add_rule(struct podio_callbacks *reg, const char *pattern,
    char *const *argv, const char *path, const char *file, int line)
{
	struct podio__cb_entry e;
	enum podio_err rc;

	if (reg == NULL)
		return PODIO_ERR_INVALID;
	rc = podio__cb_rule_make(&e, pattern, argv, path, file, line);
	if (rc == PODIO_OK)
		rc = podio__cb_push(&reg->rules, &reg->nrules, &reg->arules,
		    &e);
	podio__cb_entry_clear(&e);
	return rc;
}

/* See callback.h. */
enum podio_err
podio_callbacks_add_command(struct podio_callbacks *reg, const char *pattern,
    char *const *argv)
{
	if (argv == NULL)
		return PODIO_ERR_INVALID;
	return podio__cb_add_rule(reg, pattern, argv, NULL, NULL, 0);
}

/* See callback.h. */
enum podio_err
podio_callbacks_add_log(struct podio_callbacks *reg, const char *pattern,
    const char *path)
{
	if (path == NULL)
		return PODIO_ERR_INVALID;
	return podio__cb_add_rule(reg, pattern, NULL, path, NULL, 0);
}

/* See callback.h.  The rules are added one by one and, on a failure,
 * the ones added by this call are taken off again. */
enum podio_err
podio_callbacks_add_rules(struct podio_callbacks *reg,
    const struct podio_config *cfg)
{
	struct podio_rule r;
	size_t i, before;
	enum podio_err rc = PODIO_OK;

	if (reg == NULL || cfg == NULL)
		return PODIO_ERR_INVALID;
	before = reg->nrules;
	for (i = 0; podio_config_rule(cfg, i, &r); i++) {
		if (r.kind != NULL && strcmp(r.kind, "on") == 0)
			rc = r.argv != NULL ? podio__cb_add_rule(reg,
			    r.pattern, r.argv, NULL, r.file, r.line) :
			    PODIO_ERR_INVALID;
		else if (r.kind != NULL && strcmp(r.kind, "log") == 0)
			rc = r.path != NULL ? podio__cb_add_rule(reg,
			    r.pattern, NULL, r.path, r.file, r.line) :
			    PODIO_ERR_INVALID;
		else
			rc = PODIO_ERR_INVALID;
		if (rc != PODIO_OK)
			break;
	}
	if (rc != PODIO_OK)
		while (reg->nrules > before)
			podio__cb_entry_clear(&reg->rules[--reg->nrules]);
	return rc;
}

/* The i-th entry in run order (functions, then rules), or NULL. */
static const struct podio__cb_entry *
podio__cb_nth(const struct podio_callbacks *reg, size_t i)
{
	if (i < reg->nfns)
		return &reg->fns[i];
	i -= reg->nfns;
	return i < reg->nrules ? &reg->rules[i] : NULL;
}

/* See callback.h. */
size_t
podio_callbacks_count_matching(const struct podio_callbacks *reg,
    const char *type)
{
	const struct podio__cb_entry *e;
	size_t i, n = 0;

	if (reg == NULL || type == NULL)
		return 0;
	for (i = 0; (e = podio__cb_nth(reg, i)) != NULL; i++)
		if (podio__callback_match(e->pattern, type))
			n++;
	return n;
}

/* ------------------------------------------------------------- one line */

/*
 * The length of the valid UTF-8 sequence at s (n bytes available), 0 if
 * there is none (bad lead byte, missing or bad continuation, overlong
 * form, surrogate, beyond U+10FFFF).
 */
static size_t
podio__cb_utf8_len(const unsigned char *s, size_t n)
{
	size_t len, i;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2;
		cp = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3;
		cp = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4;
		cp = s[0] & 0x07;
	} else
		return 0;
	if (n < len)
		return 0;
	for (i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
		return 0;
	return len;
}

/* See callback.h.  C1 controls (U+0080-U+009F) count as controls. */
char *
podio__callback_oneline(const char *in, size_t n, int cut, char *out,
    size_t outlen)
{
	const unsigned char *s = (const unsigned char *)in;
	const char *piece;
	size_t i = 0, o = 0, len, need;
	int space = 0, first = 1;

	if (outlen == 0)
		return out;
	out[0] = '\0';
	if (in == NULL)
		return out;
	if (cut)
		while (i < n && (s[i] & 0xc0) == 0x80)
			i++;
	while (i < n) {
		if (s[i] <= 0x20 || s[i] == 0x7f ||
		    (s[i] == 0xc2 && i + 1 < n && s[i + 1] >= 0x80 &&
		    s[i + 1] <= 0x9f)) {
			i += s[i] == 0xc2 ? 2 : 1;
			space = !first;
			continue;
		}
		if ((len = podio__cb_utf8_len(s + i, n - i)) == 0) {
			piece = "?";
			len = 1;
		} else
			piece = (const char *)s + i;
		need = (first && cut ? 3 : 0) + (space ? 1 : 0) + len;
		if (o + need >= outlen)
			break;
		if (first && cut) {
			memcpy(out + o, "...", 3);
			o += 3;
		}
		if (space)
			out[o++] = ' ';
		memcpy(out + o, piece, len);
		o += len;
		i += len;
		space = 0;
		first = 0;
	}
	out[o] = '\0';
	return out;
}

/* ------------------------------------------------------------- running */

/* Calls the function of e; fills res. */
static void
podio__cb_run_function(const struct podio__cb_entry *e, const char *type,
    const char *json, size_t len, struct podio_callback_result *res)
{
	char msg[PODIO_CALLBACK_DETAIL_MAX];
	int rc;

	msg[0] = '\0';
	if (e->msg_fn != NULL) {
		rc = e->msg_fn(type, json, len, msg, sizeof(msg),
		    e->userdata);
		msg[sizeof(msg) - 1] = '\0';
		podio__callback_oneline(msg, strlen(msg), 0, res->detail,
		    sizeof(res->detail));
	} else
		rc = e->fn(type, json, len, e->userdata);
	if (rc != 0) {
		res->outcome = PODIO_CALLBACK_FAILED;
		res->status = rc;
	}
}

/* See callback.h. */
const char *
podio_callback_outcome_name(enum podio_callback_outcome outcome)
{
	switch (outcome) {
	case PODIO_CALLBACK_OK:
		return "ok";
	case PODIO_CALLBACK_FAILED:
		return "failed";
	case PODIO_CALLBACK_EXIT:
		return "exit";
	case PODIO_CALLBACK_SIGNAL:
		return "signal";
	case PODIO_CALLBACK_TIMEOUT:
		return "timeout";
	case PODIO_CALLBACK_NOSTART:
		return "nostart";
	case PODIO_CALLBACK_WRITE_FAILED:
		return "write failed";
	}
	return "unknown";
}

/* See callback.h. */
char *
podio_callback_result_format(const struct podio_callback_result *r,
    char *buf, size_t n)
{
	char what[96], where[300];
	const char *kind, *sig;

	if (n == 0)
		return buf;
	switch (r->outcome) {
	case PODIO_CALLBACK_OK:
		podio__strlcpy(what, "ok", sizeof(what));
		break;
	case PODIO_CALLBACK_FAILED:
		snprintf(what, sizeof(what), "failed (returned %d)",
		    r->status);
		break;
	case PODIO_CALLBACK_EXIT:
		snprintf(what, sizeof(what), "exit status %d", r->status);
		break;
	case PODIO_CALLBACK_SIGNAL:
		sig = sigabbrev_np(r->status);
		snprintf(what, sizeof(what), "killed by signal %d%s%s%s",
		    r->status, sig != NULL ? " (SIG" : "",
		    sig != NULL ? sig : "", sig != NULL ? ")" : "");
		break;
	case PODIO_CALLBACK_TIMEOUT:
		podio__strlcpy(what, "timed out", sizeof(what));
		break;
	case PODIO_CALLBACK_NOSTART:
		podio__strlcpy(what, "could not start", sizeof(what));
		break;
	case PODIO_CALLBACK_WRITE_FAILED:
		podio__strlcpy(what, "write failed", sizeof(what));
		break;
	default:
		podio__strlcpy(what, "unknown outcome", sizeof(what));
		break;
	}
	kind = r->kind == PODIO_CALLBACK_FUNCTION ? "function" :
	    r->kind == PODIO_CALLBACK_COMMAND ? "on" : "log";
	where[0] = '\0';
	if (r->file != NULL)
		snprintf(where, sizeof(where), " (%s:%d)", r->file, r->line);
	snprintf(buf, n, "%s %s%s%s%s: %s, %" PRId64 " ms%s%s", kind,
	    r->pattern != NULL ? r->pattern : "",
	    r->target != NULL ? " " : "", r->target != NULL ? r->target : "",
	    where, what, r->duration_ms, r->detail[0] != '\0' ? ": " : "",
	    r->detail);
	return buf;
}

/* See callback.h. */
void
podio_callback_report_free(struct podio_callback_report *report)
{
	struct podio_callback_result *r;
	size_t i;

	if (report == NULL)
		return;
	for (i = 0; i < report->n; i++) {
		r = &report->results[i];
		/* the strings are the report's own copies */
		free((void *)(uintptr_t)r->pattern);
		free((void *)(uintptr_t)r->target);
		free((void *)(uintptr_t)r->file);
		free((void *)(uintptr_t)r->key);
	}
	free(report->results);
	free(report);
}

/* Sets up res for e (copies of its names), before anything runs.
 * Returns 0 or -1 on out of memory. */
static int
podio__cb_result_init(struct podio_callback_result *res,
    const struct podio__cb_entry *e)
{
	const char *target;

	memset(res, 0, sizeof(*res));
	res->kind = e->kind;
	target = e->kind == PODIO_CALLBACK_COMMAND ? e->argv[0] :
	    e->kind == PODIO_CALLBACK_LOG ? e->path : NULL;
	res->line = e->line;
	if ((res->pattern = strdup(e->pattern)) == NULL ||
	    (res->key = strdup(e->key)) == NULL ||
	    (target != NULL && (res->target = strdup(target)) == NULL) ||
	    (e->file != NULL && (res->file = strdup(e->file)) == NULL))
		return -1;
	return 0;
}

/* Whether e runs for type: it matches and its key is not in skip. */
static int
podio__cb_runs(const struct podio__cb_entry *e, const char *type,
    const char *const *skip, size_t nskip)
{
	size_t i;

	if (!podio__callback_match(e->pattern, type))
		return 0;
	for (i = 0; i < nskip; i++)
		if (skip[i] != NULL && strcmp(skip[i], e->key) == 0)
			return 0;
	return 1;
}

/* See podio.h: the case of podio_callbacks_run_skip() skipping none. */
enum podio_err
podio_callbacks_run(const struct podio_callbacks *reg, const char *type,
    const struct podio_callback_ids *ids, const char *event_json, size_t len,
    int64_t timeout_ms, struct podio_callback_report **report)
{
	return podio_callbacks_run_skip(reg, type, ids, event_json, len,
	    timeout_ms, NULL, 0, report);
}

/* See podio.h.  The report is fully allocated before the first callback
 * runs, so running never stops half-way for lack of memory. */
enum podio_err
podio_callbacks_run_skip(const struct podio_callbacks *reg, const char *type,
    const struct podio_callback_ids *ids, const char *event_json, size_t len,
    int64_t timeout_ms, const char *const *skip, size_t nskip,
    struct podio_callback_report **report)
{
	struct podio_callback_report *rep = NULL;
	struct podio_callback_result *res;
	const struct podio__cb_entry *e;
	char line[PODIO_CALLBACK_DETAIL_MAX + 512];
	size_t n, i, k;
	int64_t t0;
	enum podio_err rc;

	if (report != NULL)
		*report = NULL;
	if (reg == NULL || type == NULL || (event_json == NULL && len > 0) ||
	    (skip == NULL && nskip > 0))
		return PODIO_ERR_INVALID;
	if (event_json == NULL)
		event_json = "";
	n = podio_callbacks_count_matching(reg, type);
	rc = PODIO_ERR_NOMEM;
	if ((rep = calloc(1, sizeof(*rep))) == NULL)
		goto fail;
	if (n > 0 &&
	    (rep->results = calloc(n, sizeof(*rep->results))) == NULL)
		goto fail;
	for (i = 0; (e = podio__cb_nth(reg, i)) != NULL; i++) {
		if (!podio__callback_match(e->pattern, type))
			continue;
		if (!podio__cb_runs(e, type, skip, nskip)) {
			rep->skipped++;
			continue;
		}
		res = &rep->results[rep->n++];
		if (podio__cb_result_init(res, e) != 0)
			goto fail;
	}

	for (i = 0, k = 0; (e = podio__cb_nth(reg, i)) != NULL; i++) {
		if (!podio__cb_runs(e, type, skip, nskip))
			continue;
		res = &rep->results[k++];
		t0 = podio__now_ms();
		switch (e->kind) {
		case PODIO_CALLBACK_FUNCTION:
			podio__cb_run_function(e, type, event_json, len, res);
			break;
		case PODIO_CALLBACK_COMMAND:
			podio__cb_run_command(reg, e, type, ids, event_json,
			    len, timeout_ms, res);
			break;
		case PODIO_CALLBACK_LOG:
			podio__cb_run_log(e, event_json, len, res);
			break;
		}
		res->duration_ms = podio__now_ms() - t0;
		if (res->outcome != PODIO_CALLBACK_OK) {
			rep->failed++;
			podio__warn("callback for %s failed: %s", type,
			    podio_callback_result_format(res, line,
			    sizeof(line)));
		}
	}
	rc = rep->failed > 0 ? PODIO_ERR_IO : PODIO_OK;
	if (report != NULL) {
		*report = rep;
		rep = NULL;
	}
fail:
	podio_callback_report_free(rep);
	return rc;
}

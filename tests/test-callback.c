/*
 * test-callback.c: lib/callback.c and lib/callback_exec.c: patterns and run order (C functions,
 * then rule lines in file order, from a real configuration file), the
 * commands' stdin, argv, environment, fds, process group, stdout, stderr
 * tail, exit statuses, timeout and leftover children, the JSON-lines logs
 * with many concurrent writer processes and a rotation, and many threads
 * running events at once.
 *
 * The commands are the shell scripts in tests/data/callback/.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "callback.h"
#include "tap.h"

/* Strings that must never reach the log. */
#define EVENT_MARKER "Ev3nt-marker-5521"
#define ARG_MARKER "Arg-t0ken-marker-9043"
#define SECRET_MARKER "Cl1ent-s3cret-marker-1187"

static char tmpdir[256];
static char scripts[1024];
static char logpath[512];

/* ------------------------------------------------------------- helpers */

static int
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

/* A path in tmpdir (static buffer per slot, 8 slots in rotation). */
static const char *
tmp(const char *name)
{
	static char bufs[8][512];
	static int slot;
	char *p = bufs[slot++ % 8];

	snprintf(p, 512, "%s/%s", tmpdir, name);
	return p;
}

/* A script of tests/data/callback (same rotation). */
static const char *
script(const char *name)
{
	static char bufs[8][1200];
	static int slot;
	char *p = bufs[slot++ % 8];

	snprintf(p, 1200, "%s/%s", scripts, name);
	return p;
}

/* The whole file at path, NUL-terminated (caller frees), *len its size;
 * NULL if it cannot be read. */
static char *
slurp(const char *path, size_t *len)
{
	FILE *f;
	char *buf = NULL;
	size_t n = 0, a = 0, r;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	for (;;) {
		if (n + 4096 + 1 > a) {
			char *nb;

			a = a ? a * 2 : 8192;
			if ((nb = realloc(buf, a)) == NULL) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, 4096, f);
		n += r;
		if (r < 4096)
			break;
	}
	fclose(f);
	buf[n] = '\0';
	if (len != NULL)
		*len = n;
	return buf;
}

static int
write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");

	if (f == NULL)
		return -1;
	fputs(text, f);
	return fclose(f);
}

static int
exists(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0;
}

/* s with line breaks shown as '|' (in place), for test names. */
static char *
flat(char *s)
{
	char *p;

	if (s == NULL)
		return (char *)"(none)";
	for (p = s; *p != '\0'; p++)
		if (*p == '\n')
			*p = '|';
	return s;
}

/* Lines of a file (0 if it cannot be read). */
static size_t
count_lines(const char *path)
{
	char *s = slurp(path, NULL), *p;
	size_t n = 0;

	if (s == NULL)
		return 0;
	for (p = s; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	free(s);
	return n;
}

/*
 * Whether process pid is gone: no /proc entry, or a zombie waiting for
 * whoever adopted it.  Looks for up to 10 s, as a SIGKILL takes effect
 * asynchronously.
 */
static int
pid_gone(long pid)
{
	char path[64], *s, *rp;
	int i;

	if (pid <= 1)
		return 0;
	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	for (i = 0; i < 1000; i++) {
		if ((s = slurp(path, NULL)) == NULL)
			return 1;
		rp = strrchr(s, ')');
		if (rp != NULL && rp[1] == ' ' && (rp[2] == 'Z' ||
		    rp[2] == 'X')) {
			free(s);
			return 1;
		}
		free(s);
		usleep(10000);
	}
	return 0;
}

/* Runs one event through reg; returns the report (caller frees) and
 * *rc the result. */
static struct podio_callback_report *
run(const struct podio_callbacks *reg, const char *type,
    const struct podio_callback_ids *ids, const char *json, size_t len,
    int64_t timeout_ms, enum podio_err *rc)
{
	struct podio_callback_report *rep = NULL;
	enum podio_err r;

	r = podio_callbacks_run(reg, type, ids, json, len, timeout_ms, &rep);
	if (rc != NULL)
		*rc = r;
	return rep;
}

/* A registry holding only the command argv for pattern "*". */
static struct podio_callbacks *
one_command(char *const *argv)
{
	struct podio_callbacks *reg = podio_callbacks_new();

	if (reg != NULL && podio_callbacks_add_command(reg, "*", argv) !=
	    PODIO_OK) {
		podio_callbacks_free(reg);
		return NULL;
	}
	return reg;
}

/* Runs argv for "item.create" with a small event; the one result is
 * copied to *out.  Returns the run's result. */
static enum podio_err
run_command(char *const *argv, const char *json, size_t len,
    int64_t timeout_ms, struct podio_callback_result *out)
{
	struct podio_callbacks *reg = one_command(argv);
	struct podio_callback_report *rep;
	enum podio_err rc = PODIO_ERR_NOMEM;

	memset(out, 0, sizeof(*out));
	out->outcome = -1;
	if (reg == NULL)
		return rc;
	rep = run(reg, "item.create", NULL, json, len, timeout_ms, &rc);
	if (rep != NULL && rep->n == 1) {
		*out = rep->results[0];
		out->pattern = out->target = out->file = NULL;
	}
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
	return rc;
}

/* --------------------------------------------------------- C functions */

struct calls {
	char names[16][16];
	size_t n;
	char type[32];
	const char *json;
	size_t len;
};

static void
note(struct calls *c, const char *name, const char *type, const char *json,
    size_t len)
{
	if (c->n < 16)
		snprintf(c->names[c->n++], sizeof(c->names[0]), "%s", name);
	snprintf(c->type, sizeof(c->type), "%s", type);
	c->json = json;
	c->len = len;
}

static struct calls calls;

static int
fn_a(const char *type, const char *json, size_t len, void *ud)
{
	note(ud, "A", type, json, len);
	return 0;
}

static int
fn_b(const char *type, const char *json, size_t len, void *ud)
{
	note(ud, "B", type, json, len);
	return 0;
}

static int
fn_c(const char *type, const char *json, size_t len, void *ud)
{
	note(ud, "C", type, json, len);
	return 0;
}

static int
fn_d(const char *type, const char *json, size_t len, void *ud)
{
	note(ud, "D", type, json, len);
	return 0;
}

static int
fn_e(const char *type, const char *json, size_t len, char *msg,
    size_t msglen, void *ud)
{
	note(ud, "E", type, json, len);
	snprintf(msg, msglen, "cannot\nreach\tthe  server \x01 (fn_e)");
	return 7;
}

/* The names called so far, joined: "ABC". */
static const char *
called(void)
{
	static char s[64];
	size_t i;

	s[0] = '\0';
	for (i = 0; i < calls.n; i++)
		strcat(s, calls.names[i]);
	calls.n = 0;
	return s;
}

static void
test_patterns(void)
{
	static const struct {
		const char *pattern, *type;
		int match;
	} cases[] = {
		{ "item.create", "item.create", 1 },
		{ "item.create", "item.created", 0 },
		{ "item.create", "item", 0 },
		{ "item.*", "item.create", 1 },
		{ "item.*", "item.", 1 },
		{ "item.*", "item", 0 },
		{ "item.*", "items.create", 0 },
		{ "item.*", "comment.create", 0 },
		{ "app.field.*", "app.field.create", 1 },
		{ "app.field.*", "app.create", 0 },
		{ "*", "anything.at.all", 1 },
		{ "*", "", 1 },
	};
	static const char *const bad[] = {
		"", "Item.create", "item.**", "*.create", "item .create",
		"item.*x", ".*", "item/create",
		"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	};
	struct podio_callbacks *reg;
	size_t i, nbad = 0, nok = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		if (podio__callback_match(cases[i].pattern, cases[i].type) ==
		    cases[i].match)
			nok++;
		else
			tap_diag("match('%s', '%s') != %d", cases[i].pattern,
			    cases[i].type, cases[i].match);
	tap_ok(nok == sizeof(cases) / sizeof(cases[0]),
	    "pattern matching: exact, prefix.* and * (%zu cases)", nok);

	reg = podio_callbacks_new();
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (podio_callbacks_on(reg, bad[i], fn_a, NULL) ==
		    PODIO_ERR_INVALID)
			nbad++;
		else
			tap_diag("pattern '%s' accepted", bad[i]);
	tap_ok(nbad == sizeof(bad) / sizeof(bad[0]) &&
	    podio_callbacks_on(reg, "*", NULL, NULL) == PODIO_ERR_INVALID &&
	    podio_callbacks_on(reg, NULL, fn_a, NULL) == PODIO_ERR_INVALID &&
	    podio_callbacks_count_matching(reg, "item.create") == 0,
	    "bad patterns and a missing function are refused");
	tap_ok(podio_callbacks_add_command(reg, "*", (char *[]){ (char *)"sh",
	    NULL }) == PODIO_ERR_INVALID &&
	    podio_callbacks_add_log(reg, "*", "relative.log") ==
	    PODIO_ERR_INVALID &&
	    podio_callbacks_count_matching(reg, "x") == 0,
	    "a relative command or log path is refused");
	podio_callbacks_free(reg);
}

static void
test_oneline(void)
{
	static const struct {
		const char *in;
		int cut;
		const char *out;
	} cases[] = {
		{ "plain", 0, "plain" },
		{ "line one\nline two\n", 0, "line one line two" },
		{ "\n\n  tabs\t\tand\r\nCR  ", 0, "tabs and CR" },
		{ "bell\x07" "esc\x1b[31m", 0, "bell esc [31m" },
		{ "caf\xc3\xa9 \xe2\x82\xac", 0, "caf\xc3\xa9 \xe2\x82\xac" },
		{ "bad \xff\xfe utf8 \xc0\xaf", 0, "bad ?? utf8 ??" },
		{ "surrogate \xed\xa0\x80", 0, "surrogate ???" },
		{ "c1\xc2\x85next", 0, "c1 next" },
		{ "\xa9\x82rest of tail", 1, "...rest of tail" },
		{ "   ", 1, "" },
		{ "", 0, "" },
	};
	char out[64], small[8];
	size_t i, nok = 0;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		podio__callback_oneline(cases[i].in, strlen(cases[i].in),
		    cases[i].cut, out, sizeof(out));
		if (streq(out, cases[i].out))
			nok++;
		else
			tap_diag("oneline case %zu gave '%s'", i, out);
	}
	tap_ok(nok == sizeof(cases) / sizeof(cases[0]),
	    "stderr tails become one printable line (%zu cases)", nok);
	podio__callback_oneline("abcdefghijkl", 12, 0, small, sizeof(small));
	tap_ok(streq(small, "abcdefg"), "a long line is cut to the buffer");
	podio__callback_oneline("ab \xe2\x82\xac", 6, 0, small, 6);
	tap_ok(streq(small, "ab"), "never half a character");
}

static void
test_functions(void)
{
	struct podio_callbacks *reg;
	struct podio_callback_report *rep;
	static const char ev[] = "{\"type\":\"item.create\",\"item_id\":42}";
	char line[2048];
	enum podio_err rc;
	int ok;

	reg = podio_callbacks_new();
	ok = reg != NULL &&
	    podio_callbacks_on(reg, "item.create", fn_a, &calls) == 0 &&
	    podio_callbacks_on(reg, "item.*", fn_b, &calls) == 0 &&
	    podio_callbacks_on(reg, "*", fn_c, &calls) == 0 &&
	    podio_callbacks_on(reg, "comment.create", fn_d, &calls) == 0 &&
	    podio_callbacks_on_msg(reg, "item.update", fn_e, &calls) == 0;
	tap_ok(ok, "functions registered");
	if (!ok) {
		podio_callbacks_free(reg);
		return;
	}
	tap_ok(podio_callbacks_count_matching(reg, "item.create") == 3 &&
	    podio_callbacks_count_matching(reg, "item.update") == 3 &&
	    podio_callbacks_count_matching(reg, "comment.create") == 2 &&
	    podio_callbacks_count_matching(reg, "item") == 1 &&
	    podio_callbacks_count_matching(NULL, "item") == 0,
	    "count_matching");

	rep = run(reg, "item.create", NULL, ev, sizeof(ev) - 1, 0, &rc);
	tap_ok(rc == PODIO_OK && rep != NULL && rep->n == 3 &&
	    rep->failed == 0, "item.create: three functions ran, all ok");
	tap_ok(streq(called(), "ABC"), "item.create: exact, prefix, * in "
	    "registration order");
	tap_ok(streq(calls.type, "item.create") && calls.json == ev &&
	    calls.len == sizeof(ev) - 1, "a function gets type, event and "
	    "length");
	tap_ok(rep != NULL && rep->n == 3 &&
	    rep->results[0].kind == PODIO_CALLBACK_FUNCTION &&
	    streq(rep->results[1].pattern, "item.*") &&
	    rep->results[2].target == NULL && rep->results[2].file == NULL,
	    "the report names each function's pattern");
	podio_callback_report_free(rep);

	rep = run(reg, "item.update", NULL, ev, sizeof(ev) - 1, 0, &rc);
	tap_ok(rc == PODIO_ERR_IO && rep != NULL && rep->n == 3 &&
	    rep->failed == 1, "a failing function fails the run, the others "
	    "still run");
	tap_ok(streq(called(), "BCE"), "item.update: B, C, E");
	if (rep != NULL && rep->n == 3) {
		struct podio_callback_result *r = &rep->results[2];

		tap_ok(r->outcome == PODIO_CALLBACK_FAILED &&
		    r->status == 7 && streq(r->detail,
		    "cannot reach the server (fn_e)"),
		    "its status and message (one line) are reported: '%s'",
		    r->detail);
		podio_callback_result_format(r, line, sizeof(line));
		tap_ok(strstr(line, "function item.update: failed "
		    "(returned 7)") == line, "formatted: %s", line);
	} else {
		tap_ok(0, "its status and message are reported");
		tap_ok(0, "formatted");
	}
	podio_callback_report_free(rep);

	rep = run(reg, "comment.create", NULL, ev, sizeof(ev) - 1, 0, &rc);
	tap_ok(rc == PODIO_OK && streq(called(), "CD"), "comment.create: "
	    "C, D");
	podio_callback_report_free(rep);
	rep = run(reg, "item", NULL, ev, sizeof(ev) - 1, 0, &rc);
	tap_ok(rc == PODIO_OK && streq(called(), "C"), "item: only *");
	podio_callback_report_free(rep);

	tap_ok(podio_callbacks_run(NULL, "x", NULL, ev, 1, 0, &rep) ==
	    PODIO_ERR_INVALID && rep == NULL &&
	    podio_callbacks_run(reg, NULL, NULL, ev, 1, 0, &rep) ==
	    PODIO_ERR_INVALID && rep == NULL &&
	    podio_callbacks_run(reg, "x", NULL, NULL, 1, 0, NULL) ==
	    PODIO_ERR_INVALID, "run refuses a missing registry, type or "
	    "event");
	podio_callbacks_free(reg);

	reg = podio_callbacks_new();
	rep = run(reg, "item.create", NULL, ev, sizeof(ev) - 1, 0, &rc);
	tap_ok(rc == PODIO_OK && rep != NULL && rep->n == 0 &&
	    rep->failed == 0, "nothing matching: ok, empty report");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
}

/* ------------------------------------------------------------- commands */

static void
test_stdin(void)
{
	static const char ev[] = "{\"type\":\"item.create\",\"item_id\":42,"
	    "\"params\":{\"x\":\"caf\xc3\xa9 $(date) ; \\\"q\\\"\"}}";
	struct podio_callback_result r;
	char *big, *got;
	size_t n, glen;
	enum podio_err rc;

	rc = run_command((char *[]){ (char *)script("copy-stdin.sh"),
	    (char *)tmp("stdin.out"), NULL }, ev, sizeof(ev) - 1, 30000, &r);
	got = slurp(tmp("stdin.out"), &glen);
	tap_ok(rc == PODIO_OK && r.outcome == PODIO_CALLBACK_OK,
	    "a command reading stdin succeeds");
	tap_ok(got != NULL && glen == sizeof(ev) - 1 &&
	    memcmp(got, ev, glen) == 0, "it received the exact event on "
	    "stdin");
	free(got);

	/* 1 MiB, read in full */
	n = 1024 * 1024;
	big = malloc(n);
	memset(big, 'x', n);
	memcpy(big, "{\"type\":\"item.create\",\"pad\":\"", 30);
	memcpy(big + n - 2, "\"}", 2);
	rc = run_command((char *[]){ (char *)script("copy-stdin.sh"),
	    (char *)tmp("stdin-big.out"), NULL }, big, n, 30000, &r);
	got = slurp(tmp("stdin-big.out"), &glen);
	tap_ok(rc == PODIO_OK && got != NULL && glen == n &&
	    memcmp(got, big, n) == 0, "a 1 MiB event arrives whole");
	free(got);

	/* 1 MiB to commands that never read it */
	rc = run_command((char *[]){ (char *)script("no-stdin.sh"), NULL },
	    big, n, 30000, &r);
	tap_ok(rc == PODIO_OK && r.outcome == PODIO_CALLBACK_OK &&
	    streq(r.detail, "no-stdin: did not read"),
	    "1 MiB to a command that never reads stdin and exits: success "
	    "(and we are alive: no SIGPIPE)");
	rc = run_command((char *[]){ (char *)script("no-stdin-slow.sh"),
	    NULL }, big, n, 30000, &r);
	tap_ok(rc == PODIO_OK && r.outcome == PODIO_CALLBACK_OK,
	    "1 MiB to a command that never reads stdin and exits later: "
	    "success");
	free(big);
}

/* Compares the NUL-separated strings of file path with want[0..n). */
static int
nul_list_is(const char *path, const char *const *want, size_t n)
{
	char *s;
	size_t len, off = 0, i;
	int ok = 1;

	if ((s = slurp(path, &len)) == NULL)
		return 0;
	for (i = 0; i < n && ok; i++) {
		if (off >= len || strcmp(s + off, want[i]) != 0) {
			tap_diag("entry %zu: got '%s', want '%s'", i,
			    off < len ? s + off : "(end)", want[i]);
			ok = 0;
			break;
		}
		off += strlen(want[i]) + 1;
	}
	if (ok && off != len) {
		tap_diag("more entries than expected: '%s'", s + off);
		ok = 0;
	}
	free(s);
	return ok;
}


static void
test_argv(void)
{
	char touch1[600], touch2[600], touch3[600];
	const char *args[8];
	char *argv[11];
	struct podio_callback_result r;
	enum podio_err rc;
	size_t i;

	snprintf(touch1, sizeof(touch1), "$(touch %s)", tmp("pwned1"));
	snprintf(touch2, sizeof(touch2), "x; touch %s", tmp("pwned2"));
	snprintf(touch3, sizeof(touch3), "`touch %s`\ntouch %s",
	    tmp("pwned3"), tmp("pwned3"));
	args[0] = touch1;
	args[1] = touch2;
	args[2] = touch3;
	args[3] = ";";
	args[4] = "line1\nline2";
	args[5] = "";
	args[6] = "  spaced *  ";
	args[7] = "$HOME";
	argv[0] = (char *)script("args.sh");
	argv[1] = (char *)tmp("args.out");
	for (i = 0; i < 8; i++)
		argv[i + 2] = (char *)args[i];
	argv[10] = NULL;
	rc = run_command(argv, "{}", 2, 30000, &r);
	tap_ok(rc == PODIO_OK && r.outcome == PODIO_CALLBACK_OK,
	    "argv command ran");
	tap_ok(nul_list_is(tmp("args.out"), args, 8), "every argument "
	    "arrived literally: $(...), ;, backquotes, newlines, empty, "
	    "spaces, $HOME");
	tap_ok(!exists(tmp("pwned1")) && !exists(tmp("pwned2")) &&
	    !exists(tmp("pwned3")), "no shell ran them: nothing was "
	    "touched");
}

/* Sorts and compares the NUL-separated environment in path with want. */
static int
env_is(const char *path, const char **want, size_t n)
{
	char *s, *p, *got[64];
	size_t len, ng = 0, i;
	int ok;

	if ((s = slurp(path, &len)) == NULL)
		return 0;
	for (p = s; p < s + len && ng < 64; p += strlen(p) + 1)
		got[ng++] = p;
	ok = ng == n;
	for (i = 0; i < ng; i++) {
		size_t j;
		int found = 0;

		for (j = 0; j < n; j++)
			found |= streq(got[i], want[j]);
		if (!found) {
			tap_diag("unexpected variable: %s", got[i]);
			ok = 0;
		}
	}
	if (ng != n)
		tap_diag("%zu variables, want %zu", ng, n);
	free(s);
	return ok;
}

static void
test_env(void)
{
	struct podio_callbacks *reg;
	struct podio_callback_report *rep;
	struct podio_callback_ids ids = { 1, UINT64_MAX, 1, 42 };
	const char *want1[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=xx_YY.UTF-8",
		"TZ=Europe/Oslo", "PODIO_EVENT_TYPE=item.update",
		"PODIO_HOOK_ID=18446744073709551615", "PODIO_ITEM_ID=42",
	};
	const char *want2[] = {
		"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8",
		"PODIO_EVENT_TYPE=comment.create", "PODIO_HOOK_ID=7",
	};
	enum podio_err rc;

	setenv("PODIO_CLIENT_SECRET", SECRET_MARKER, 1);
	setenv("PODIO_APP_TOKEN", SECRET_MARKER, 1);
	setenv("HOME", "/nonexistent-home", 1);
	setenv("LD_PRELOAD", "", 1);
	setenv("LANG", "xx_YY.UTF-8", 1);
	setenv("TZ", "Europe/Oslo", 1);
	reg = one_command((char *[]){ (char *)script("env.sh"),
	    (char *)tmp("env1.out"), NULL });
	rep = run(reg, "item.update", &ids, "{}", 2, 30000, &rc);
	tap_ok(rc == PODIO_OK, "env command ran");
	tap_ok(env_is(tmp("env1.out"), want1, 6), "environment exactly PATH, "
	    "LANG, TZ, PODIO_EVENT_TYPE, PODIO_HOOK_ID, PODIO_ITEM_ID (no "
	    "PODIO_CLIENT_SECRET, HOME...)");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);

	unsetenv("LANG");
	unsetenv("TZ");
	ids.has_item_id = 0;
	ids.hook_id = 7;
	reg = one_command((char *[]){ (char *)script("env.sh"),
	    (char *)tmp("env2.out"), NULL });
	rep = run(reg, "comment.create", &ids, "{}", 2, 30000, &rc);
	tap_ok(rc == PODIO_OK && env_is(tmp("env2.out"), want2, 4),
	    "without LANG and TZ: LANG=C.UTF-8, no TZ; no item id, no "
	    "PODIO_ITEM_ID");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
	unsetenv("LD_PRELOAD");
}

static void
test_fds(void)
{
	struct podio_callback_result r;
	int extra, pipefd[2] = { -1, -1 }, high = -1, ok;
	char *s;
	enum podio_err rc;

	/* descriptors without close-on-exec, as a careless program has */
	extra = open("/dev/null", O_RDONLY);
	if (pipe(pipefd) != 0)
		pipefd[0] = pipefd[1] = -1;
	if (extra >= 0)
		high = dup2(extra, 57);
	tap_ok(extra > 2 && pipefd[0] > 2 && high == 57 &&
	    !(fcntl(57, F_GETFD) & FD_CLOEXEC), "extra fds open without "
	    "close-on-exec (%d, %d, %d, 57)", extra, pipefd[0], pipefd[1]);
	rc = run_command((char *[]){ (char *)script("fds.sh"),
	    (char *)tmp("fds.out"), NULL }, "{}", 2, 30000, &r);
	s = slurp(tmp("fds.out"), NULL);
	ok = rc == PODIO_OK && s != NULL && streq(s, "0\n1\n2\n3\n");
	tap_ok(ok, "only fds 0-2 reach the command (3 is ls's own): %s",
	    flat(s));
	free(s);
	if (extra >= 0)
		close(extra);
	if (high >= 0)
		close(high);
	if (pipefd[0] >= 0) {
		close(pipefd[0]);
		close(pipefd[1]);
	}
}

static void
test_pgrp(void)
{
	struct podio_callback_result r;
	long pid = 0, ppid = 0, pgrp = 0;
	char state = 0, *s, *rp;
	enum podio_err rc;

	rc = run_command((char *[]){ (char *)script("pgrp.sh"),
	    (char *)tmp("pgrp.out"), NULL }, "{}", 2, 30000, &r);
	s = slurp(tmp("pgrp.out"), NULL);
	if (s != NULL && (rp = strrchr(s, ')')) != NULL) {
		pid = strtol(s, NULL, 10);
		if (sscanf(rp + 1, " %c %ld %ld", &state, &ppid, &pgrp) != 3)
			pgrp = 0;
	}
	tap_ok(rc == PODIO_OK && pid > 0 && pgrp == pid &&
	    (pid_t)pgrp != getpgrp() && (pid_t)ppid == getpid(),
	    "the command leads its own process group (pid %ld, pgrp %ld, "
	    "ours %ld)", pid, pgrp, (long)getpgrp());
	free(s);
}

static void
test_stdout(void)
{
	struct podio_callback_result r;
	int saved, fd;
	size_t len = 1;
	char *s;
	enum podio_err rc;

	fflush(stdout);
	saved = dup(1);
	fd = open(tmp("stdout.out"), O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (saved < 0 || fd < 0 || dup2(fd, 1) < 0) {
		tap_ok(0, "stdout redirected for the test");
		return;
	}
	rc = run_command((char *[]){ (char *)script("stdout.sh"), NULL },
	    "{}", 2, 30000, &r);
	dup2(saved, 1);
	close(saved);
	close(fd);
	s = slurp(tmp("stdout.out"), &len);
	tap_ok(rc == PODIO_OK && s != NULL && len == 0, "a command's stdout "
	    "never reaches ours (%zu bytes did)", len);
	free(s);

	rc = run_command((char *[]){ (char *)script("noisy.sh"), NULL },
	    "{}", 2, 30000, &r);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_EXIT &&
	    r.status == 1, "300 KB on stdout and 200 KB on stderr: no "
	    "deadlock, exit status 1");
	tap_ok(strncmp(r.detail, "...", 3) == 0 &&
	    strlen(r.detail) >= PODIO_CALLBACK_TAIL - 16 &&
	    strlen(r.detail) < PODIO_CALLBACK_DETAIL_MAX &&
	    strstr(r.detail, "xxxx noisy: THE END") != NULL &&
	    strcmp(r.detail + strlen(r.detail) - 14, "noisy: THE END") == 0,
	    "the stderr tail is its last KiB, on one line, marked as cut");
}

static void
test_failures(void)
{
	struct podio_callbacks *reg;
	struct podio_callback_report *rep;
	struct podio_callback_result r;
	char line[2048], *path;
	enum podio_err rc;

	rc = run_command((char *[]){ (char *)script("fail.sh"), (char *)"3", NULL },
	    "{}", 2, 30000, &r);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_EXIT &&
	    r.status == 3, "non-zero exit: exit status 3");
	tap_ok(streq(r.detail, "fail: first line fail: exiting with 3"),
	    "with its stderr tail: '%s'", r.detail);

	reg = one_command((char *[]){ (char *)script("fail.sh"),
	    (char *)"4", (char *)ARG_MARKER, NULL });
	rep = run(reg, "item.create", NULL, "{\"m\":\"" EVENT_MARKER "\"}",
	    sizeof("{\"m\":\"" EVENT_MARKER "\"}") - 1, 30000, &rc);
	if (rep != NULL && rep->n == 1) {
		podio_callback_result_format(&rep->results[0], line,
		    sizeof(line));
		tap_ok(strstr(line, "on * ") == line &&
		    strstr(line, "/fail.sh: exit status 4, ") != NULL &&
		    strstr(line, "ms: fail: first line fail: exiting with "
		    "4") != NULL && strstr(line, ARG_MARKER) == NULL &&
		    streq(rep->results[0].target, script("fail.sh")),
		    "formatted with the command path, never its arguments: "
		    "%s", line);
	} else
		tap_ok(0, "formatted result");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);

	rc = run_command((char *[]){ (char *)script("killself.sh"), NULL },
	    "{}", 2, 30000, &r);
	r.pattern = "*";
	podio_callback_result_format(&r, line, sizeof(line));
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_SIGNAL &&
	    r.status == SIGTERM && strstr(line, "killed by signal 15 "
	    "(SIGTERM)") != NULL, "killed by a signal: %s", line);

	rc = run_command((char *[]){ (char *)"/nonexistent-dir/podio-missing",
	    NULL }, "{}", 2, 30000, &r);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_NOSTART &&
	    r.status == ENOENT && strstr(r.detail, "No such file") != NULL,
	    "a missing command: could not start (%s)", r.detail);

	path = (char *)tmp("not-executable.sh");
	write_file(path, "#!/bin/sh\nexit 0\n");
	chmod(path, 0644);
	rc = run_command((char *[]){ path, NULL }, "{}", 2, 30000, &r);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_NOSTART &&
	    r.status == EACCES, "a command that is not executable: could not "
	    "start (%s)", r.detail);
}

static void
test_sigchld_ignored(void)
{
	struct podio_callback_result r;
	struct sigaction sa, old;
	enum podio_err rc;

	/* a program that ignores SIGCHLD has its children reaped by the
	 * kernel: the status is gone, which must not pass for success */
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_IGN;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGCHLD, &sa, &old);
	rc = run_command((char *[]){ (char *)script("fail.sh"), (char *)"0",
	    NULL }, "{}", 2, 30000, &r);
	sigaction(SIGCHLD, &old, NULL);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_EXIT &&
	    r.status == -1 && strstr(r.detail, "lost") != NULL,
	    "with SIGCHLD ignored the run ends, reporting the status as "
	    "lost: %s", r.detail);
}

static void
test_grandchild(void)
{
	struct podio_callback_result r;
	char *s;
	long gpid = 0;
	enum podio_err rc;

	/* If the run waited for the end of the pipes the sleeper holds, it
	 * would end as timed out after 20 s instead of ok. */
	rc = run_command((char *[]){ (char *)script("grandchild.sh"),
	    (char *)tmp("grandchild.pid"), NULL }, "{}", 2, 20000, &r);
	tap_ok(rc == PODIO_OK && r.outcome == PODIO_CALLBACK_OK,
	    "a command leaving a sleeping grandchild returns ok, not waiting "
	    "for it (outcome %d)", (int)r.outcome);
	tap_ok(strncmp(r.detail, "grandchild: left ", 17) == 0,
	    "what it wrote to stderr before exiting is kept: %s", r.detail);
	if ((s = slurp(tmp("grandchild.pid"), NULL)) != NULL)
		gpid = strtol(s, NULL, 10);
	free(s);
	tap_ok(gpid > 1 && pid_gone(gpid), "the grandchild (pid %ld) was "
	    "killed with the process group", gpid);
}

static void
test_timeout(void)
{
	struct podio_callback_result r;
	char *s, line[2048];
	long spid = 0, gpid = 0;
	enum podio_err rc;

	rc = run_command((char *[]){ (char *)script("slow.sh"),
	    (char *)tmp("slow.pid"), NULL }, "{}", 2, 3000, &r);
	tap_ok(rc == PODIO_ERR_IO && r.outcome == PODIO_CALLBACK_TIMEOUT,
	    "a command sleeping past the timeout is reported as timed out");
	tap_ok(streq(r.detail, "slow: started, now sleeping"),
	    "with its stderr tail: %s", r.detail);
	r.pattern = "*";
	podio_callback_result_format(&r, line, sizeof(line));
	tap_ok(strstr(line, ": timed out, ") != NULL, "formatted: %s", line);
	if ((s = slurp(tmp("slow.pid"), NULL)) != NULL)
		sscanf(s, "%ld %ld", &spid, &gpid);
	free(s);
	tap_ok(spid > 1 && gpid > 1 && pid_gone(spid) && pid_gone(gpid),
	    "it was killed with its children (pids %ld, %ld)", spid, gpid);
}

/* ------------------------------------------------------------- logs */

/* An event line of about 3 KB naming its writer and number. */
static size_t
make_event(char *buf, size_t n, int proc, int i)
{
	int len;

	len = snprintf(buf, n, "{\"type\":\"item.create\",\"proc\":%d,"
	    "\"n\":%d,\"pad\":\"%03000d\"}", proc, i, 0);
	return len > 0 ? (size_t)len : 0;
}

/*
 * Checks the lines of the log files paths[0..npaths): every line parses
 * (cJSON, exact end), names a proc < nproc and n < nev, and each pair
 * shows once in all.  *lines receives the count per file.  Returns 1 when
 * every line is good and the total is nproc * nev.
 */
static int
check_log_lines(const char *const *paths, size_t npaths, int nproc, int nev,
    size_t *lines)
{
	char *s, *p, *nl;
	unsigned char *seen;
	size_t f, total = 0;
	int ok = 1;

	seen = calloc((size_t)nproc * (size_t)nev, 1);
	for (f = 0; f < npaths; f++) {
		lines[f] = 0;
		if ((s = slurp(paths[f], NULL)) == NULL)
			continue;
		for (p = s; *p != '\0'; p = nl + 1) {
			const char *end = NULL;
			cJSON *j, *jp, *jn;

			if ((nl = strchr(p, '\n')) == NULL) {
				tap_diag("%s: last line not terminated",
				    paths[f]);
				ok = 0;
				break;
			}
			*nl = '\0';
			lines[f]++;
			j = cJSON_ParseWithOpts(p, &end, 1);
			jp = cJSON_GetObjectItemCaseSensitive(j, "proc");
			jn = cJSON_GetObjectItemCaseSensitive(j, "n");
			if (j == NULL || end != nl || !cJSON_IsNumber(jp) ||
			    !cJSON_IsNumber(jn) || jp->valueint < 0 ||
			    jp->valueint >= nproc || jn->valueint < 0 ||
			    jn->valueint >= nev ||
			    seen[jp->valueint * nev + jn->valueint]++) {
				if (ok)
					tap_diag("%s: bad or repeated line "
					    "%zu", paths[f], lines[f]);
				ok = 0;
			}
			cJSON_Delete(j);
		}
		total += lines[f];
		free(s);
	}
	free(seen);
	return ok && total == (size_t)nproc * (size_t)nev;
}

static void
test_log_basic(void)
{
	struct podio_callbacks *reg;
	struct podio_callback_report *rep;
	static const char ev[] = "{\"type\": \"item.create\",\n\"item_id\":\r\n1}";
	struct stat st;
	char *s;
	enum podio_err rc;

	reg = podio_callbacks_new();
	podio_callbacks_add_log(reg, "item.*", tmp("basic.jsonl"));
	rep = run(reg, "item.create", NULL, ev, sizeof(ev) - 1, 0, &rc);
	podio_callback_report_free(rep);
	rep = run(reg, "item.create", NULL, "{}", 2, 0, &rc);
	s = slurp(tmp("basic.jsonl"), NULL);
	tap_ok(rc == PODIO_OK && rep != NULL && rep->n == 1 &&
	    rep->results[0].kind == PODIO_CALLBACK_LOG &&
	    streq(rep->results[0].target, tmp("basic.jsonl")),
	    "a log rule runs and is reported with its file");
	tap_ok(streq(s, "{\"type\": \"item.create\", \"item_id\":  1}\n{}\n"),
	    "each event is one line (line breaks between tokens become "
	    "spaces)");
	if (stat(tmp("basic.jsonl"), &st) != 0)
		st.st_mode = 0;
	tap_ok((st.st_mode & 0777) == 0640, "the log is created 0640 (umask "
	    "022): %o", (unsigned)(st.st_mode & 0777));
	free(s);
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);

	reg = podio_callbacks_new();
	podio_callbacks_add_log(reg, "*", "/nonexistent-dir/podio.jsonl");
	rep = run(reg, "item.create", NULL, "{}", 2, 0, &rc);
	tap_ok(rc == PODIO_ERR_IO && rep != NULL && rep->n == 1 &&
	    rep->results[0].outcome == PODIO_CALLBACK_WRITE_FAILED &&
	    rep->results[0].status == ENOENT &&
	    strstr(rep->results[0].detail, "No such file") != NULL,
	    "a log that cannot be opened is a failure with the reason");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
}

/*
 * Forks nproc writers that each run nev events through reg; with gate
 * pipes (not NULL) each writer stops after half, writes a byte to
 * ready[1] and waits for go[0] to close.  Returns how many writers
 * failed.
 */
static int
writers(struct podio_callbacks *reg, int nproc, int nev, int *ready,
    int *go)
{
	pid_t pids[64];
	int p, i, status, bad = 0;
	char buf[4096], c;

	fflush(stdout);
	for (p = 0; p < nproc; p++) {
		if ((pids[p] = fork()) < 0) {
			bad++;
			continue;
		}
		if (pids[p] > 0)
			continue;
		/* the writer */
		if (ready != NULL) {
			close(ready[0]);
			close(go[1]);
		}
		for (i = 0; i < nev; i++) {
			size_t len = make_event(buf, sizeof(buf), p, i);

			if (ready != NULL && i == nev / 2) {
				if (write(ready[1], "r", 1) != 1 ||
				    read(go[0], &c, 1) != 0)
					_exit(3);
			}
			if (podio_callbacks_run(reg, "item.create", NULL, buf,
			    len, 0, NULL) != PODIO_OK)
				_exit(1);
		}
		_exit(0);
	}
	if (ready != NULL) {
		close(ready[1]);
		close(go[0]);
		/* every writer is half-way: rotate, then let them go on */
		for (p = 0; p < nproc; p++)
			if (read(ready[0], &c, 1) != 1)
				bad++;
		if (rename(tmp("rot.jsonl"), tmp("rot.jsonl.1")) != 0)
			bad++;
		close(go[1]);
		close(ready[0]);
	}
	for (p = 0; p < nproc; p++)
		if (pids[p] > 0 && (waitpid(pids[p], &status, 0) != pids[p] ||
		    !WIFEXITED(status) || WEXITSTATUS(status) != 0))
			bad++;
	return bad;
}

static void
test_log_concurrent(void)
{
	struct podio_callbacks *reg;
	const char *paths[2];
	size_t lines[2];
	int bad, good, ready[2], go[2];

	reg = podio_callbacks_new();
	podio_callbacks_add_log(reg, "item.*", tmp("many.jsonl"));
	bad = writers(reg, 20, 50, NULL, NULL);
	paths[0] = tmp("many.jsonl");
	tap_ok(bad == 0, "20 writer processes x 50 events all succeeded");
	good = check_log_lines(paths, 1, 20, 50, lines);
	tap_ok(good && lines[0] == 1000, "exactly 1000 lines, each parses, "
	    "each event once (%zu)", lines[0]);
	podio_callbacks_free(reg);

	reg = podio_callbacks_new();
	podio_callbacks_add_log(reg, "*", tmp("rot.jsonl"));
	if (pipe(ready) != 0 || pipe(go) != 0) {
		tap_ok(0, "pipes for the rotation test");
		podio_callbacks_free(reg);
		return;
	}
	bad = writers(reg, 20, 50, ready, go);
	paths[0] = tmp("rot.jsonl.1");
	paths[1] = tmp("rot.jsonl");
	tap_ok(bad == 0, "20 writers with a rotation half-way all "
	    "succeeded");
	good = check_log_lines(paths, 2, 20, 50, lines);
	tap_ok(good, "across both files exactly 1000 good lines, each event "
	    "once");
	tap_ok(lines[0] == 500 && lines[1] == 500, "500 lines before the "
	    "rename in the old file, the 500 after it in a new file (%zu, "
	    "%zu)", lines[0], lines[1]);
	podio_callbacks_free(reg);
}

/* ------------------------------------------------------------- order */

/* Appends word and a newline to the file at path; 0 or -1. */
static int
append_word(const char *path, const char *word)
{
	FILE *f = fopen(path, "a");

	if (f == NULL)
		return -1;
	fprintf(f, "%s\n", word);
	return fclose(f) != 0 ? -1 : 0;
}

static int
fn_order1(const char *type, const char *json, size_t len, void *ud)
{
	(void)type;
	(void)json;
	(void)len;
	return append_word(ud, "fn1");
}

static int
fn_order2(const char *type, const char *json, size_t len, void *ud)
{
	(void)type;
	(void)json;
	(void)len;
	return append_word(ud, "fn2");
}

static void
test_config_order(void)
{
	struct podio_config *cfg;
	struct podio_callbacks *reg;
	struct podio_callback_report *rep;
	char conf[8192], err[256], *s;
	const char *order = tmp("order.txt");
	static const char *const kinds = "FFLCCLC";
	static const char *const pats[] = { "item.create", "*", "item.*",
		"item.create", "*", "*", "item.create" };
	static const int lines[] = { 0, 0, 2, 3, 5, 6, 7 };
	size_t i;
	int ok;
	enum podio_err rc;

	snprintf(conf, sizeof(conf),
	    "# every matching rule runs, in file order\n"
	    "log item.* = \"%s\"\n"
	    "on item.create = \"%s\" \"%s\" rule1\n"
	    "on comment.* = \"%s\" \"%s\" never\n"
	    "on * = \"%s\" \"%s\" rule2\n"
	    "log * = \"%s\"\n"
	    "on item.create = \"%s\" \"%s\" rule3\n"
	    "on item.delete = \"%s\" \"%s\" never\n",
	    tmp("order-a.jsonl"), script("append.sh"), order,
	    script("append.sh"), order, script("append.sh"), order,
	    tmp("order-b.jsonl"), script("append.sh"), order,
	    script("append.sh"), order);
	write_file(tmp("order.conf"), conf);
	cfg = podio_config_new();
	rc = podio_config_load_file(cfg, tmp("order.conf"), err, sizeof(err));
	tap_ok(rc == PODIO_OK, "configuration with rule lines loaded (%s)",
	    rc == PODIO_OK ? "ok" : err);
	reg = podio_callbacks_new();
	tap_ok(podio_callbacks_add_rules(reg, cfg) == PODIO_OK,
	    "rules added");
	podio_config_free(cfg);
	/* functions registered after the rules still run first */
	podio_callbacks_on(reg, "item.create", fn_order1, (void *)order);
	podio_callbacks_on(reg, "*", fn_order2, (void *)order);
	tap_ok(podio_callbacks_count_matching(reg, "item.create") == 7 &&
	    podio_callbacks_count_matching(reg, "comment.create") == 4 &&
	    podio_callbacks_count_matching(reg, "item") == 3,
	    "count_matching over functions and rules");

	rep = run(reg, "item.create", NULL, "{\"type\":\"item.create\"}", 22,
	    30000, &rc);
	s = slurp(order, NULL);
	ok = rc == PODIO_OK && streq(s, "fn1\nfn2\nrule1\nrule2\nrule3\n");
	tap_ok(ok, "functions first, then every matching rule in file order: "
	    "%s", flat(s));
	free(s);
	ok = rep != NULL && rep->n == 7;
	for (i = 0; ok && i < 7; i++) {
		const struct podio_callback_result *r = &rep->results[i];
		char k = r->kind == PODIO_CALLBACK_FUNCTION ? 'F' :
		    r->kind == PODIO_CALLBACK_COMMAND ? 'C' : 'L';

		if (k != kinds[i] || !streq(r->pattern, pats[i]) ||
		    r->line != lines[i] || (lines[i] != 0 &&
		    !streq(r->file, tmp("order.conf"))) ||
		    r->outcome != PODIO_CALLBACK_OK) {
			tap_diag("result %zu: %c %s line %d", i, k,
			    r->pattern, r->line);
			ok = 0;
		}
	}
	tap_ok(ok, "the report lists them in run order with file:line");
	tap_ok(count_lines(tmp("order-a.jsonl")) == 1 &&
	    count_lines(tmp("order-b.jsonl")) == 1, "both logs got the "
	    "event");
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
}

/* ------------------------------------------------------------- threads */

struct thread_arg {
	const struct podio_callbacks *reg;
	int failures;
};

static int
fn_count(const char *type, const char *json, size_t len, void *ud)
{
	(void)type;
	(void)json;
	(void)len;
	atomic_fetch_add((atomic_int *)ud, 1);
	return 0;
}

static void *
thread_main(void *p)
{
	struct thread_arg *a = p;
	struct podio_callback_report *rep;
	int i;

	for (i = 0; i < 10; i++) {
		rep = NULL;
		if (podio_callbacks_run(a->reg, "item.update", NULL, "{}", 2,
		    30000, &rep) != PODIO_OK || rep == NULL || rep->n != 3)
			a->failures++;
		podio_callback_report_free(rep);
	}
	return NULL;
}

static void
test_threads(void)
{
	struct podio_callbacks *reg;
	struct thread_arg args[4];
	pthread_t th[4];
	atomic_int count = 0;
	int i, started = 0, failures = 0;

	reg = podio_callbacks_new();
	podio_callbacks_on(reg, "item.*", fn_count, &count);
	podio_callbacks_add_command(reg, "*", (char *[]){
	    (char *)script("append.sh"), (char *)tmp("threads.txt"), (char *)"t",
	    NULL });
	podio_callbacks_add_log(reg, "*", tmp("threads.jsonl"));
	for (i = 0; i < 4; i++) {
		args[i].reg = reg;
		args[i].failures = 0;
		if (pthread_create(&th[i], NULL, thread_main, &args[i]) == 0)
			started++;
	}
	for (i = 0; i < started; i++) {
		pthread_join(th[i], NULL);
		failures += args[i].failures;
	}
	tap_ok(started == 4 && failures == 0, "4 threads x 10 events at "
	    "once, all ok");
	tap_ok(atomic_load(&count) == 40 &&
	    count_lines(tmp("threads.txt")) == 40 &&
	    count_lines(tmp("threads.jsonl")) == 40, "every function, command "
	    "and log ran 40 times");
	podio_callbacks_free(reg);
}

/* ------------------------------------------------------------- main */

/* ------------------------------------------------------- keys, skipping */

static int
fn_fail(const char *type, const char *json, size_t len, void *ud)
{
	(void)type;
	(void)json;
	(void)len;
	atomic_fetch_add((atomic_int *)ud, 100);
	return 9;
}

/*
 * A registry of every kind, some entries alike: two functions and one
 * failing function for "item.*", one for "*"; commands appending to
 * order ("item.create" twice, with arguments holding a token, "*" once);
 * logs ("item.*" twice to one file, once to another).  NULL on failure.
 */
static struct podio_callbacks *
keys_registry(atomic_int *count, const char *order)
{
	struct podio_callbacks *reg = podio_callbacks_new();
	char *a1[] = { (char *)script("append.sh"), (char *)order,
		(char *)"tok-51f2e9-secret", NULL };
	char *a2[] = { (char *)script("append.sh"), (char *)order,
		(char *)"two", NULL };
	char *a3[] = { (char *)script("append.sh"), (char *)order,
		(char *)"star", NULL };

	if (reg == NULL ||
	    podio_callbacks_on(reg, "item.*", fn_count, count) != 0 ||
	    podio_callbacks_on(reg, "item.*", fn_count, count) != 0 ||
	    podio_callbacks_on(reg, "*", fn_count, count) != 0 ||
	    podio_callbacks_on(reg, "item.*", fn_fail, count) != 0 ||
	    podio_callbacks_add_command(reg, "item.create", a1) != 0 ||
	    podio_callbacks_add_log(reg, "item.*", tmp("keys-a.jsonl")) != 0 ||
	    podio_callbacks_add_command(reg, "item.create", a2) != 0 ||
	    podio_callbacks_add_command(reg, "*", a3) != 0 ||
	    podio_callbacks_add_log(reg, "item.*", tmp("keys-a.jsonl")) != 0 ||
	    podio_callbacks_add_log(reg, "item.*", tmp("keys-b.jsonl")) != 0) {
		podio_callbacks_free(reg);
		return NULL;
	}
	return reg;
}

static void
test_keys_skip(void)
{
	struct podio_callbacks *reg = NULL, *again = NULL;
	struct podio_callback_report *rep = NULL, *rep2 = NULL;
	char order[600], want[10][1400];
	const char *skip[4];
	atomic_int count = 0;
	enum podio_err rc;
	size_t i, k;
	char *s;
	int ok;

	/* tmp() reuses its buffers: keep a copy */
	snprintf(order, sizeof(order), "%s", tmp("keys-order.txt"));
	unlink(order);
	unlink(tmp("keys-a.jsonl"));
	unlink(tmp("keys-b.jsonl"));
	reg = keys_registry(&count, order);
	again = keys_registry(&count, order);
	tap_ok(reg != NULL && again != NULL, "keys: registries made");
	if (reg == NULL || again == NULL)
		goto done;
	snprintf(want[0], sizeof(want[0]), "fn:item.*#1");
	snprintf(want[1], sizeof(want[1]), "fn:item.*#2");
	snprintf(want[2], sizeof(want[2]), "fn:*#1");
	snprintf(want[3], sizeof(want[3]), "fn:item.*#3");
	snprintf(want[4], sizeof(want[4]), "on:item.create:%s#1",
	    script("append.sh"));
	snprintf(want[5], sizeof(want[5]), "log:item.*:%s#1",
	    tmp("keys-a.jsonl"));
	snprintf(want[6], sizeof(want[6]), "on:item.create:%s#2",
	    script("append.sh"));
	snprintf(want[7], sizeof(want[7]), "on:*:%s#1", script("append.sh"));
	snprintf(want[8], sizeof(want[8]), "log:item.*:%s#2",
	    tmp("keys-a.jsonl"));
	snprintf(want[9], sizeof(want[9]), "log:item.*:%s#1",
	    tmp("keys-b.jsonl"));

	rep = run(reg, "item.create", NULL, "{}", 2, 30000, &rc);
	ok = rc == PODIO_ERR_IO && rep != NULL && rep->n == 10 &&
	    rep->failed == 1 && rep->skipped == 0;
	tap_ok(ok, "keys: all ten ran, one failed, none skipped");
	for (i = 0; ok && i < 10; i++)
		if (!streq(rep->results[i].key, want[i])) {
			tap_diag("key %zu: %s, want %s", i,
			    rep->results[i].key ? rep->results[i].key :
			    "(null)", want[i]);
			ok = 0;
		}
	tap_ok(ok, "keys: fn:PATTERN#N, on:PATTERN:ARGV0#N, "
	    "log:PATTERN:PATH#N, N counting alike entries");
	ok = rep != NULL;
	for (i = 0; ok && i < rep->n; i++)
		if (rep->results[i].key == NULL ||
		    strstr(rep->results[i].key, "tok-51f2e9") != NULL)
			ok = 0;
	tap_ok(ok, "keys: no command argument in any key");
	ok = rep != NULL;
	for (i = 0; ok && i < rep->n; i++)
		for (k = i + 1; k < rep->n; k++)
			if (streq(rep->results[i].key, rep->results[k].key))
				ok = 0;
	tap_ok(ok, "keys: unique within the registry");

	rep2 = run(again, "item.create", NULL, "{}", 2, 30000, &rc);
	ok = rep != NULL && rep2 != NULL && rep2->n == rep->n;
	for (i = 0; ok && i < rep->n; i++)
		if (!streq(rep->results[i].key, rep2->results[i].key))
			ok = 0;
	tap_ok(ok, "keys: the same in a registry built the same way");
	podio_callback_report_free(rep2);
	rep2 = NULL;

	/* a narrower type: the keys do not depend on what matched */
	rep2 = run(reg, "item.update", NULL, "{}", 2, 30000, &rc);
	ok = rep2 != NULL && rep2->n == 8 &&
	    streq(rep2->results[3].key, want[3]) &&
	    streq(rep2->results[4].key, want[5]) &&
	    streq(rep2->results[5].key, want[7]) &&
	    streq(rep2->results[6].key, want[8]) &&
	    streq(rep2->results[7].key, want[9]);
	tap_ok(ok, "keys: the same whatever the event type");
	podio_callback_report_free(rep2);
	rep2 = NULL;

	/* skip the failing function, the second function and the first
	 * item.create command, plus an unknown key and a NULL */
	unlink(order);
	atomic_store(&count, 0);
	skip[0] = rep->results[3].key;
	skip[1] = "on:item.create:/nowhere#1";
	skip[2] = NULL;
	skip[3] = rep->results[4].key;
	rc = podio_callbacks_run_skip(reg, "item.create", NULL, "{}", 2,
	    30000, skip, 4, &rep2);
	tap_ok(rc == PODIO_OK && rep2 != NULL && rep2->n == 8 &&
	    rep2->skipped == 2 && rep2->failed == 0,
	    "skip: two left out (unknown and NULL keys ignored), the rest ok "
	    "(n %zu, skipped %zu)", rep2 ? rep2->n : 0,
	    rep2 ? rep2->skipped : 0);
	ok = rep2 != NULL && rep2->n == 8;
	for (i = 0, k = 0; ok && i < 10; i++) {
		if (i == 3 || i == 4)
			continue;
		if (!streq(rep2->results[k++].key, want[i]))
			ok = 0;
	}
	tap_ok(ok, "skip: the report holds the others, in run order");
	s = slurp(order, NULL);
	ok = atomic_load(&count) == 3 && streq(s, "two\nstar\n");
	tap_ok(ok, "skip: skipped entries did not run (count %d, commands: "
	    "%s)", atomic_load(&count), flat(s));
	free(s);
	podio_callback_report_free(rep2);
	rep2 = NULL;

	/* skip everything that matches */
	unlink(order);
	atomic_store(&count, 0);
	{
		const char *all[10];

		for (i = 0; i < 10; i++)
			all[i] = want[i];
		rc = podio_callbacks_run_skip(reg, "item.create", NULL, "{}",
		    2, 30000, all, 10, &rep2);
	}
	tap_ok(rc == PODIO_OK && rep2 != NULL && rep2->n == 0 &&
	    rep2->skipped == 10 && atomic_load(&count) == 0 &&
	    access(order, F_OK) != 0,
	    "skip: every entry skipped: ok, empty report, nothing ran");
	podio_callback_report_free(rep2);
	rep2 = NULL;

	rc = podio_callbacks_run_skip(reg, "item.create", NULL, "{}", 2,
	    30000, NULL, 0, &rep2);
	tap_ok(rc == PODIO_ERR_IO && rep2 != NULL && rep2->n == 10 &&
	    rep2->skipped == 0, "skip NULL, 0: everything runs");
	podio_callback_report_free(rep2);
	rep2 = (struct podio_callback_report *)1;
	tap_ok(podio_callbacks_run_skip(reg, "item.create", NULL, "{}", 2,
	    30000, NULL, 1, &rep2) == PODIO_ERR_INVALID && rep2 == NULL,
	    "skip NULL with nskip 1: invalid, nothing ran");
done:
	podio_callback_report_free(rep);
	podio_callbacks_free(reg);
	podio_callbacks_free(again);
}

static void
test_log_privacy(void)
{
	char *s;

	podio_log_set_target("stderr");
	s = slurp(logpath, NULL);
	tap_ok(s != NULL && strstr(s, "fail: exiting with 4") != NULL &&
	    strstr(s, "/fail.sh: exit status 4") != NULL, "failures are "
	    "logged with the command and its stderr tail");
	tap_ok(s != NULL && strstr(s, EVENT_MARKER) == NULL &&
	    strstr(s, ARG_MARKER) == NULL && strstr(s, SECRET_MARKER) == NULL,
	    "the log never holds the event, a command's arguments or a "
	    "secret");
	free(s);
}

/* The scripts: $top_srcdir/tests/data/callback (make check sets
 * top_srcdir), else from the current directory; made absolute, as rule
 * commands must be. */
static void
find_scripts(void)
{
	const char *env = getenv("top_srcdir");
	char cwd[512];

	if (env == NULL || env[0] == '\0')
		env = "..";
	if (env[0] == '/' || getcwd(cwd, sizeof(cwd)) == NULL)
		snprintf(scripts, sizeof(scripts), "%.900s/tests/data/callback",
		    env);
	else
		snprintf(scripts, sizeof(scripts), "%.500s/%.400s/tests/data/"
		    "callback", cwd, env);
}

/* Removes the files of the temporary directory, then the directory. */
static void
cleanup(void)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	if (tmpdir[0] == '/' && strchr(tmpdir, '\'') == NULL &&
	    system(cmd) != 0)
		tap_diag("could not remove %s", tmpdir);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	umask(022);
	snprintf(tmpdir, sizeof(tmpdir), "%s/podio-cb-XXXXXX",
	    t != NULL && t[0] == '/' ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		tap_ok(0, "temporary directory: %s", strerror(errno));
		return tap_done();
	}
	find_scripts();
	tap_diag("scripts in %s", scripts);
	snprintf(logpath, sizeof(logpath), "%s/podio.log", tmpdir);
	{
		char target[600];

		snprintf(target, sizeof(target), "file:%s", logpath);
		tap_ok(podio_log_set_target(target) == PODIO_OK,
		    "log to a file of the test");
	}

	test_patterns();
	test_oneline();
	test_functions();
	test_stdin();
	test_argv();
	test_env();
	test_fds();
	test_pgrp();
	test_stdout();
	test_failures();
	test_sigchld_ignored();
	test_grandchild();
	test_timeout();
	test_log_basic();
	test_log_concurrent();
	test_config_order();
	test_threads();
	test_log_privacy();
	test_keys_skip();

	cleanup();
	return tap_done();
}

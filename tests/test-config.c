/*
 * test-config.c: lib/config.c and lib/config_value.c: defaults, the key
 * table, the parsers, the file syntax (data-driven: tests/data/config/
 * good/ and bad/, see the README there), the environment, precedence,
 * rule lines, secrets kept out of messages, podio_config_path() and the
 * sample configuration in deploy/.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "podio.h"
#include "tap.h"

#ifndef PODIO_STATEDIR
#error "PODIO_STATEDIR comes from the build"
#endif
#ifndef PODIO_CONFIG_PATH
#error "PODIO_CONFIG_PATH comes from the build"
#endif

/* A string that must never show in a message. */
#define SECRET "Zq9-s3cr3t-marker-7731"

static char tmpdir[256];
static char srcdir[1024];
static int tmpn;

/* ------------------------------------------------------------- helpers */

static int
streq(const char *a, const char *b)
{
	if (a == NULL || b == NULL)
		return a == b;
	return strcmp(a, b) == 0;
}

static const char *
show(const char *s)
{
	return s != NULL ? s : "(null)";
}

/* Writes len bytes to a new file in tmpdir; returns its path (static,
 * overwritten by the next call). */
static const char *
write_tmp(const char *data, size_t len)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/f%d.conf", tmpdir, ++tmpn);
	if ((f = fopen(path, "wb")) == NULL) {
		tap_diag("cannot write %s: %s", path, strerror(errno));
		return path;
	}
	fwrite(data, 1, len, f);
	fclose(f);
	return path;
}

static const char *
write_tmps(const char *text)
{
	return write_tmp(text, strlen(text));
}

/* Loads text as a file into a fresh configuration; *cfgp receives it. */
static enum podio_err
load_text(const char *text, struct podio_config **cfgp, char *err,
    size_t errlen)
{
	*cfgp = podio_config_new();
	if (*cfgp == NULL)
		return PODIO_ERR_NOMEM;
	return podio_config_load_file(*cfgp, write_tmps(text), err, errlen);
}

/* Reads a whole file into a new string (caller frees), or NULL. */
static char *
slurp(const char *path)
{
	FILE *f;
	char *buf;
	long n;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	if (n < 0 || (buf = calloc(1, (size_t)n + 1)) == NULL) {
		fclose(f);
		return NULL;
	}
	if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
		free(buf);
		buf = NULL;
	}
	fclose(f);
	return buf;
}

/* Whether every string of cfg is at its default and no rule is kept:
 * what a failed load must leave. */
static int
is_pristine(const struct podio_config *cfg)
{
	struct podio_config *def = podio_config_new();
	struct podio_rule r;
	const char *k;
	size_t i;
	int same = def != NULL;

	for (i = 0; same && (k = podio_config_key_name(i)) != NULL; i++)
		same = streq(podio_config_get(cfg, k), podio_config_get(def, k));
	podio_config_free(def);
	return same && podio_config_rule(cfg, 0, &r) == 0;
}

/* ------------------------------------------------- defaults and the table */

static void
test_defaults(void)
{
	struct podio_config *cfg = podio_config_new();
	const char *unset[] = { "client_id", "client_secret", "app_id",
	    "app_token", "username", "password", "ca_file", "webhook_secret",
	    "webhook_secret_previous" };
	size_t i;
	int ok = 1;

	if (!tap_ok(cfg != NULL, "podio_config_new"))
		return;
	TAP_OK(streq(podio_config_get(cfg, "api_url"), "https://api.podio.com"));
	TAP_OK(streq(podio_config_get(cfg, "token_cache"),
	    PODIO_STATEDIR "/token-cache.json"));
	TAP_OK(podio_config_get_ms(cfg, "timeout") == 30000);
	TAP_OK(streq(podio_config_get(cfg, "timeout"), "30s"));
	TAP_OK(podio_config_get_ms(cfg, "connect_timeout") == 10000);
	TAP_OK(podio_config_get_size(cfg, "max_response") == 16 * 1048576);
	TAP_OK(streq(podio_config_get(cfg, "max_response"), "16M"));
	TAP_OK(streq(podio_config_get(cfg, "log_level"), "info"));
	TAP_OK(streq(podio_config_get(cfg, "log_target"), "stderr"));
	for (i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
		if (podio_config_get(cfg, unset[i]) != NULL) {
			tap_diag("%s is set by default", unset[i]);
			ok = 0;
		}
	tap_ok(ok, "credentials, ca_file and the webhook secrets unset by "
	    "default");
	/* typed getters check the type */
	TAP_OK(podio_config_get_ms(cfg, "max_response") == 0);
	TAP_OK(podio_config_get_size(cfg, "timeout") == 0);
	TAP_OK(podio_config_get_ms(cfg, "no_such_key") == 0);
	TAP_OK(podio_config_get_int(cfg, "timeout") == 0);
	TAP_OK(podio_config_get_bool(cfg, "log_level") == 0);
	TAP_OK(podio_config_get(cfg, "no_such_key") == NULL);
	TAP_OK(podio_config_get(NULL, "timeout") == NULL);
	podio_config_free(cfg);
	podio_config_free(NULL);
}

static void
test_key_table(void)
{
	static const char *const expect[] = { "client_id", "client_secret",
	    "app_id", "app_token", "username", "password", "api_url",
	    "ca_file", "token_cache", "timeout", "connect_timeout",
	    "max_response", "webhook_secret", "webhook_secret_previous",
	    "log_level", "log_target" };
	static const char *const secrets[] = { "client_secret", "app_token",
	    "password", "webhook_secret", "webhook_secret_previous" };
	const char *k, *h;
	size_t i, j, n = 0, nsecret = 0;
	int ok = 1, found;

	for (i = 0; (k = podio_config_key_name(i)) != NULL; i++) {
		n++;
		for (j = 0; j < i; j++)
			if (streq(k, podio_config_key_name(j))) {
				tap_diag("key %s listed twice", k);
				ok = 0;
			}
		h = podio_config_key_help(k);
		if (h == NULL || h[0] == '\0' || strchr(h, '\n') != NULL) {
			tap_diag("key %s has no one-line help", k);
			ok = 0;
		}
		nsecret += (size_t)podio_config_key_is_secret(k);
	}
	tap_ok(ok, "key names unique, each with a one-line help");
	tap_ok(n >= sizeof(expect) / sizeof(expect[0]), "at least %zu keys "
	    "(got %zu)", sizeof(expect) / sizeof(expect[0]), n);
	for (i = 0, found = 1; i < sizeof(expect) / sizeof(expect[0]); i++)
		if (podio_config_key_help(expect[i]) == NULL) {
			tap_diag("key %s missing", expect[i]);
			found = 0;
		}
	tap_ok(found, "every documented key is in the table");
	for (i = 0, found = 1; i < sizeof(secrets) / sizeof(secrets[0]); i++)
		found &= podio_config_key_is_secret(secrets[i]);
	tap_ok(found && nsecret == sizeof(secrets) / sizeof(secrets[0]),
	    "exactly the credentials and the webhook secrets are secret (%zu)",
	    nsecret);
	TAP_OK(!podio_config_key_is_secret("client_id"));
	TAP_OK(!podio_config_key_is_secret("no_such_key"));
	TAP_OK(podio_config_key_help("no_such_key") == NULL);
	TAP_OK(podio_config_key_name(n) == NULL);
}

/* Every key accepts a valid value, and reads back its canonical text. */
static void
test_every_key_set(void)
{
	static const struct {
		const char *key, *in, *out;
	} cases[] = {
		{ "client_id", "abc", "abc" },
		{ "client_secret", "s e c r e t", "s e c r e t" },
		{ "app_id", "0", "0" },
		{ "app_id", "18446744073709551615", "18446744073709551615" },
		{ "app_token", "tok", "tok" },
		{ "username", "u@example.com", "u@example.com" },
		{ "password", "  pw with spaces ", "  pw with spaces " },
		{ "api_url", "https://api.podio.com/", "https://api.podio.com" },
		{ "api_url", "http://127.0.0.1:1234", "http://127.0.0.1:1234" },
		{ "ca_file", "/etc/ca.pem", "/etc/ca.pem" },
		{ "token_cache", "", "" },
		{ "token_cache", "/run/t.json", "/run/t.json" },
		{ "timeout", "90", "90s" },
		{ "timeout", "120s", "2m" },
		{ "timeout", "2000ms", "2s" },
		{ "timeout", "0", "0s" },
		{ "connect_timeout", "1500ms", "1500ms" },
		{ "connect_timeout", "48h", "2d" },
		{ "max_response", "1048576", "1M" },
		{ "max_response", "1000", "1000" },
		{ "max_response", "2048", "2K" },
		{ "max_response", "1m", "1M" },
		{ "webhook_secret", "w#s=1", "w#s=1" },
		{ "log_level", "error", "error" },
		{ "log_level", "warn", "warn" },
		{ "log_level", "debug", "debug" },
		{ "log_target", "syslog", "syslog" },
		{ "log_target", "file:/var/log/p.log", "file:/var/log/p.log" },
	};
	struct podio_config *cfg = podio_config_new();
	char err[256];
	size_t i;
	enum podio_err rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		rc = podio_config_set(cfg, cases[i].key, cases[i].in, "test",
		    err, sizeof(err));
		tap_ok(rc == PODIO_OK && streq(podio_config_get(cfg,
		    cases[i].key), cases[i].out), "set %s '%s' reads '%s' "
		    "(got %d '%s' %s)", cases[i].key, cases[i].in, cases[i].out,
		    rc, show(podio_config_get(cfg, cases[i].key)), err);
	}
	/* typed values agree with the text */
	podio_config_set(cfg, "timeout", "5m", NULL, err, sizeof(err));
	TAP_OK(podio_config_get_ms(cfg, "timeout") == 300000);
	podio_config_set(cfg, "max_response", "64K", NULL, err, sizeof(err));
	TAP_OK(podio_config_get_size(cfg, "max_response") == 65536);
	podio_config_free(cfg);
}

static void
test_set_errors(void)
{
	struct podio_config *cfg = podio_config_new();
	char err[256];
	enum podio_err rc;

	rc = podio_config_set(cfg, "timeout", "3x", "-o", err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, "-o: timeout: bad "
	    "duration '3x'") == err,
	    "set names source, key and the bad value: %s", err);
	TAP_OK(podio_config_get_ms(cfg, "timeout") == 30000);
	rc = podio_config_set(cfg, "no_such", "1", "-o", err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && streq(err, "-o: unknown key "
	    "'no_such'"), "set of an unknown key: %s", err);
	rc = podio_config_set(cfg, "on", "/bin/true", "-o", err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG, "rules cannot be set as keys");
	rc = podio_config_set(cfg, "api_url", "", NULL, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && streq(err, "api_url: empty value") &&
	    streq(podio_config_get(cfg, "api_url"), "https://api.podio.com"),
	    "empty api_url refused, old value kept: %s", err);
	rc = podio_config_set(cfg, "client_id", "x", NULL, err, sizeof(err));
	rc |= podio_config_set(cfg, "client_id", "", NULL, err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get(cfg, "client_id") == NULL,
	    "an empty value unsets a string key");
	rc = podio_config_set(cfg, "username", "a\nb", NULL, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, "control") != NULL,
	    "control characters refused: %s", err);
	rc = podio_config_set(NULL, "timeout", "1s", NULL, err, sizeof(err));
	TAP_OK(rc == PODIO_ERR_INVALID);
	/* a tiny error buffer is never overrun */
	rc = podio_config_set(cfg, "timeout", "3x", "-o", err, 4);
	tap_ok(rc == PODIO_ERR_CONFIG && strlen(err) == 3,
	    "a short error buffer is truncated");
	TAP_OK(podio_config_set(cfg, "timeout", "3x", "-o", NULL, 0) ==
	    PODIO_ERR_CONFIG);
	podio_config_free(cfg);
}

/* -------------------------------------------------------------- parsers */

static void
test_parse_duration(void)
{
	static const struct {
		const char *in;
		int ok;
		int64_t ms;
	} cases[] = {
		{ "500ms", 1, 500 }, { "30s", 1, 30000 }, { "5m", 1, 300000 },
		{ "2h", 1, 7200000 }, { "1d", 1, 86400000 }, { "45", 1, 45000 },
		{ "0", 1, 0 }, { "0ms", 1, 0 }, { "007s", 1, 7000 },
		{ "9223372036854775807ms", 1, INT64_MAX },
		{ "106751991167d", 1, INT64_C(106751991167) * 86400000 },
		{ "", 0, 0 }, { "-1", 0, 0 }, { "+1", 0, 0 }, { "-5s", 0, 0 },
		{ "1.5s", 0, 0 }, { "30 s", 0, 0 }, { " 30s", 0, 0 },
		{ "30s ", 0, 0 }, { "3x", 0, 0 }, { "s", 0, 0 }, { "ms", 0, 0 },
		{ "30S", 0, 0 }, { "1m1s", 0, 0 }, { "10sec", 0, 0 },
		{ "9223372036854775807", 0, 0 },
		{ "9223372036854775808ms", 0, 0 },
		{ "106751991168d", 0, 0 },
		{ "99999999999999999999999", 0, 0 },
	};
	size_t i;
	int64_t ms;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ms = -42;
		rc = podio_parse_duration_ms(cases[i].in, &ms);
		if (cases[i].ok)
			tap_ok(rc == 0 && ms == cases[i].ms, "duration '%s' = "
			    "%" PRId64 " (got %d, %" PRId64 ")", cases[i].in,
			    cases[i].ms, rc, ms);
		else
			tap_ok(rc == -1 && ms == -42, "duration '%s' refused",
			    cases[i].in);
	}
	TAP_OK(podio_parse_duration_ms(NULL, &ms) == -1);
}

static void
test_parse_size(void)
{
	static const struct {
		const char *in;
		int ok;
		int64_t bytes;
	} cases[] = {
		{ "64K", 1, 65536 }, { "1M", 1, 1048576 }, { "64k", 1, 65536 },
		{ "1m", 1, 1048576 }, { "100", 1, 100 }, { "0", 1, 0 },
		{ "8796093022207M", 1, INT64_C(8796093022207) * 1048576 },
		{ "", 0, 0 }, { "1G", 0, 0 }, { "1KB", 0, 0 }, { "1KiB", 0, 0 },
		{ "-1", 0, 0 }, { "1.5M", 0, 0 }, { " 1K", 0, 0 },
		{ "1 K", 0, 0 }, { "K", 0, 0 }, { "8796093022208M", 0, 0 },
	};
	size_t i;
	int64_t b;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		b = -42;
		rc = podio_parse_size(cases[i].in, &b);
		if (cases[i].ok)
			tap_ok(rc == 0 && b == cases[i].bytes, "size '%s' = "
			    "%" PRId64 " (got %d, %" PRId64 ")", cases[i].in,
			    cases[i].bytes, rc, b);
		else
			tap_ok(rc == -1 && b == -42, "size '%s' refused",
			    cases[i].in);
	}
}

static void
test_parse_u64(void)
{
	static const struct {
		const char *in;
		int ok;
		uint64_t v;
	} cases[] = {
		{ "0", 1, 0 }, { "1", 1, 1 }, { "1234", 1, 1234 },
		{ "18446744073709551615", 1, UINT64_MAX },
		{ "18446744073709551616", 0, 0 },
		{ "99999999999999999999", 0, 0 },
		{ "007", 0, 0 }, { "00", 0, 0 }, { "-1", 0, 0 }, { "+1", 0, 0 },
		{ " 1", 0, 0 }, { "1 ", 0, 0 }, { "", 0, 0 }, { "1a", 0, 0 },
		{ "0x10", 0, 0 }, { "1,2", 0, 0 },
	};
	size_t i;
	uint64_t v;
	int rc;

	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		v = 42;
		rc = podio_parse_u64(cases[i].in, &v);
		if (cases[i].ok)
			tap_ok(rc == 0 && v == cases[i].v, "u64 '%s' = %" PRIu64
			    " (got %d, %" PRIu64 ")", cases[i].in, cases[i].v,
			    rc, v);
		else
			tap_ok(rc == -1 && v == 42, "u64 '%s' refused",
			    cases[i].in);
	}
	TAP_OK(podio_parse_u64(NULL, &v) == -1);
}

/* ------------------------------------------------ data-driven file cases */

static int
conf_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	return n > 5 && strcmp(d->d_name + n - 5, ".conf") == 0;
}

/* Strips the optional <...> around an expected value, in place. */
static char *
unwrap(char *s)
{
	size_t n = strlen(s);

	if (n >= 2 && s[0] == '<' && s[n - 1] == '>') {
		s[n - 1] = '\0';
		return s + 1;
	}
	return s;
}

/*
 * Whether hook line i of cfg is "REF_TYPE REF_ID LINE EVENT..." (want,
 * cut in place) read from path.
 */
static int
check_hook_line(const struct podio_config *cfg, size_t i, char *want,
    const char *path)
{
	struct podio_hook_decl d;
	char *words[32], *save = NULL, *w;
	size_t n = 0, j;
	uint64_t id;

	for (w = strtok_r(want, " ", &save); w != NULL && n < 32;
	    w = strtok_r(NULL, " ", &save))
		words[n++] = w;
	if (n < 4 || podio_config_hook(cfg, i, &d) != 1 ||
	    !streq(d.ref_type, words[0]) ||
	    podio_parse_u64(words[1], &id) != 0 || d.ref_id != id ||
	    d.line != atoi(words[2]) || !streq(d.file, path))
		return 0;
	for (j = 3; j < n; j++)
		if (d.events[j - 3] == NULL || !streq(d.events[j - 3],
		    words[j]))
			return 0;
	return d.events[n - 3] == NULL;
}

/*
 * Checks a good file against its "#=" lines:
 *   #= KEY=VALUE       podio_config_get(KEY) is VALUE (<...> strips)
 *   #= KEY             KEY is unset
 *   #= rules N         N rules in all
 *   #= rule KIND PATTERN LINE   the next rule; then its words:
 *   #= arg WORD        (on; when given, all of them)
 *   #= path FILE       (log)
 *   #= hooks N         N hook lines in all
 *   #= hook REF_TYPE REF_ID LINE EVENT...   the next hook line
 */
static void
check_good(const char *path, const char *name)
{
	struct podio_config *cfg = podio_config_new();
	struct podio_rule r, tmp;
	struct podio_hook_decl hd;
	char err[512], *text, *line, *next, *eq, *v;
	char kind[16], pat[128];
	size_t nrule = 0, narg = 0, nhook = 0, n;
	int lno, failures = 0, checks = 0;
	enum podio_err rc;

	memset(&r, 0, sizeof(r));
	rc = podio_config_load_file(cfg, path, err, sizeof(err));
	if (!tap_ok(rc == PODIO_OK, "good/%s loads (%s)", name, err) ||
	    (text = slurp(path)) == NULL) {
		podio_config_free(cfg);
		return;
	}
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if (strncmp(line, "#= ", 3) != 0)
			continue;
		line += 3;
		checks++;
		if (sscanf(line, "hooks %zu", &n) == 1) {
			if (podio_config_hook(cfg, n, &hd) != 0 ||
			    (n > 0 && podio_config_hook(cfg, n - 1, &hd) != 1)) {
				tap_diag("%s: not %zu hook lines", name, n);
				failures++;
			}
		} else if (strncmp(line, "hook ", 5) == 0) {
			snprintf(pat, sizeof(pat), "%s", line + 5);
			if (!check_hook_line(cfg, nhook++, line + 5, path)) {
				tap_diag("%s: hook line %zu is not %s", name,
				    nhook - 1, pat);
				failures++;
			}
		} else if (sscanf(line, "rules %zu", &n) == 1) {
			if (podio_config_rule(cfg, n, &tmp) != 0 ||
			    (n > 0 && podio_config_rule(cfg, n - 1, &tmp) != 1)) {
				tap_diag("%s: not %zu rules", name, n);
				failures++;
			}
		} else if (sscanf(line, "rule %15s %127s %d", kind, pat,
		    &lno) == 3) {
			if (narg > 0 && r.argv[narg] != NULL) {
				tap_diag("%s: rule %zu has more words", name,
				    nrule - 1);
				failures++;
			}
			narg = 0;
			if (podio_config_rule(cfg, nrule++, &r) != 1 ||
			    !streq(r.kind, kind) || !streq(r.pattern, pat) ||
			    r.line != lno || !streq(r.file, path) ||
			    (streq(kind, "on") != (r.argv != NULL)) ||
			    (streq(kind, "log") != (r.path != NULL))) {
				tap_diag("%s: rule %zu is not %s %s %d (got %s "
				    "%s %d)", name, nrule - 1, kind, pat, lno,
				    show(r.kind), show(r.pattern), r.line);
				failures++;
			}
		} else if (strncmp(line, "arg ", 4) == 0) {
			v = unwrap(line + 4);
			if (r.argv == NULL || !streq(r.argv[narg], v)) {
				tap_diag("%s: word %zu of rule %zu is not '%s' "
				    "(got '%s')", name, narg, nrule - 1, v,
				    r.argv != NULL ? show(r.argv[narg]) : "");
				failures++;
			} else
				narg++;
		} else if (strncmp(line, "path ", 5) == 0) {
			v = unwrap(line + 5);
			if (!streq(r.path, v)) {
				tap_diag("%s: path is not '%s' (got '%s')",
				    name, v, show(r.path));
				failures++;
			}
		} else if ((eq = strchr(line, '=')) != NULL) {
			*eq = '\0';
			v = unwrap(eq + 1);
			if (!streq(podio_config_get(cfg, line), v)) {
				tap_diag("%s: %s is not '%s' (got '%s')", name,
				    line, v, show(podio_config_get(cfg, line)));
				failures++;
			}
		} else if (podio_config_get(cfg, line) != NULL) {
			tap_diag("%s: %s is set ('%s')", name, line,
			    podio_config_get(cfg, line));
			failures++;
		}
	}
	if (narg > 0 && r.argv[narg] != NULL) {
		tap_diag("%s: last rule has more words", name);
		failures++;
	}
	tap_ok(failures == 0 && checks > 0, "good/%s: %d expectations hold",
	    name, checks);
	free(text);
	podio_config_free(cfg);
}

/*
 * Checks a bad file whose first line is "# expect LINE: MESSAGE": the
 * load fails with PODIO_ERR_CONFIG and exactly "PATH:LINE: MESSAGE..."
 * (MESSAGE a prefix of the reason), no "s3cr3t" in the message, and the
 * configuration untouched.
 */
static void
check_bad(const char *path, const char *name)
{
	struct podio_config *cfg = podio_config_new();
	char err[512], want[600], msg[256], *text;
	int lno;
	enum podio_err rc;

	text = slurp(path);
	if (text == NULL || sscanf(text, "# expect %d: %255[^\n]", &lno,
	    msg) != 2) {
		tap_ok(0, "bad/%s has an expect line", name);
		free(text);
		podio_config_free(cfg);
		return;
	}
	snprintf(want, sizeof(want), "%s:%d: %s", path, lno, msg);
	rc = podio_config_load_file(cfg, path, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strncmp(err, want, strlen(want)) ==
	    0, "bad/%s: %s", name, err);
	if (strstr(text, "s3cr3t") != NULL)
		tap_ok(strstr(err, "s3cr3t") == NULL, "bad/%s: no secret in "
		    "the message", name);
	tap_ok(is_pristine(cfg), "bad/%s: the configuration is unchanged",
	    name);
	free(text);
	podio_config_free(cfg);
}

static void
test_data_dir(const char *sub, void (*check)(const char *, const char *))
{
	char dir[1100], path[1400];
	struct dirent **names = NULL;
	int i, n;

	snprintf(dir, sizeof(dir), "%s/tests/data/config/%s", srcdir, sub);
	n = scandir(dir, &names, conf_filter, alphasort);
	if (!tap_ok(n > 0, "cases in tests/data/config/%s", sub))
		tap_diag("%s: %s", dir, n < 0 ? strerror(errno) : "empty");
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]->d_name);
		check(path, names[i]->d_name);
		free(names[i]);
	}
	free(names);
}

/* ------------------------------------------------ file syntax in C */

static void
test_file_bytes(void)
{
	struct podio_config *cfg = NULL;
	char err[512], *big;
	const char *path;
	enum podio_err rc;
	size_t i;

	/* CRLF line ends */
	rc = load_text("# crlf\r\nclient_id = crlf\r\ntimeout = 5s\r\n"
	    "username = \"quoted\"\r\n", &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK && streq(podio_config_get(cfg, "client_id"),
	    "crlf") && podio_config_get_ms(cfg, "timeout") == 5000 &&
	    streq(podio_config_get(cfg, "username"), "quoted"),
	    "CRLF line ends (%s)", err);
	podio_config_free(cfg);

	/* a UTF-8 byte order mark before the first key */
	rc = load_text("\xef\xbb\xbf" "client_id = bom\n", &cfg, err,
	    sizeof(err));
	tap_ok(rc == PODIO_OK && streq(podio_config_get(cfg, "client_id"),
	    "bom"), "UTF-8 BOM skipped (%s)", err);
	podio_config_free(cfg);

	/* ... only at the start */
	rc = load_text("client_id = a\n\xef\xbb\xbfusername = b\n", &cfg, err,
	    sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, ":2: bad key name") !=
	    NULL, "a BOM elsewhere is an error: %s", err);
	podio_config_free(cfg);

	/* no newline at the end; UTF-8 in a value */
	rc = load_text("username = J\xc3\xb8rgen", &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK && streq(podio_config_get(cfg, "username"),
	    "J\xc3\xb8rgen"), "last line without newline, UTF-8 value");
	podio_config_free(cfg);

	/* empty file: defaults */
	rc = load_text("", &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK && is_pristine(cfg), "an empty file changes "
	    "nothing");
	podio_config_free(cfg);

	/* 4096 bytes per line, not one more */
	big = malloc(4200);
	memcpy(big, "ca_file = /", 11);
	for (i = 11; i < 4096; i++)
		big[i] = 'x';
	memcpy(big + 4096, "\n", 2);
	rc = load_text(big, &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK && strlen(show(podio_config_get(cfg,
	    "ca_file"))) == 4096 - 10, "a 4096-byte line is fine (%s)", err);
	podio_config_free(cfg);
	memcpy(big + 4096, "x\r\n", 4);
	rc = load_text(big, &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, ":1: line longer than "
	    "4096 bytes") != NULL, "a 4097-byte line is refused: %s", err);
	podio_config_free(cfg);
	/* a long secret line: the message does not carry the secret */
	snprintf(big, 4200, "client_secret = %s", SECRET);
	i = strlen(big);
	memset(big + i, 'y', 4150 - i);
	big[4150] = '\0';
	rc = load_text(big, &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, SECRET) == NULL,
	    "a too long secret line is not quoted: %s", err);
	podio_config_free(cfg);
	free(big);

	/* a NUL byte */
	path = write_tmp("client_id = a\0b\n", 16);
	cfg = podio_config_new();
	rc = podio_config_load_file(cfg, path, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, ":1: NUL byte") != NULL,
	    "a NUL byte is refused: %s", err);
	podio_config_free(cfg);

	/* a control character in a secret value */
	rc = load_text("password = " SECRET "\x01\n", &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, ":1: password: value "
	    "contains a control character") != NULL && strstr(err, SECRET) ==
	    NULL, "control character in a secret, not quoted: %s", err);
	podio_config_free(cfg);
}

static void
test_file_errors(void)
{
	struct podio_config *cfg = podio_config_new();
	char err[512], path[600];
	enum podio_err rc;

	snprintf(path, sizeof(path), "%s/no-such-file.conf", tmpdir);
	rc = podio_config_load_file(cfg, path, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_IO && strstr(err, path) == err &&
	    strstr(err, strerror(ENOENT)) != NULL, "missing file: %s", err);
	rc = podio_config_load_file(cfg, tmpdir, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_IO && strstr(err, strerror(EISDIR)) != NULL,
	    "a directory: %s", err);
	TAP_OK(podio_config_load_file(cfg, NULL, err, sizeof(err)) ==
	    PODIO_ERR_INVALID);
	podio_config_free(cfg);
}

/* Two files: the second overrides; repeating a key across files is fine;
 * rules accumulate in order. */
static void
test_two_files(void)
{
	struct podio_config *cfg = podio_config_new();
	struct podio_rule r;
	char err[512];
	enum podio_err rc;

	rc = podio_config_load_file(cfg, write_tmps("timeout = 5s\n"
	    "client_id = first\non a.b = /bin/a\n"), err, sizeof(err));
	rc |= podio_config_load_file(cfg, write_tmps("timeout = 6s\n"
	    "on c.d = /bin/c\n"), err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_ms(cfg, "timeout") == 6000 &&
	    streq(podio_config_get(cfg, "client_id"), "first"),
	    "a second file overrides, keeps the rest (%s)", err);
	tap_ok(podio_config_rule(cfg, 0, &r) == 1 &&
	    streq(r.pattern, "a.b") && podio_config_rule(cfg, 1, &r) == 1 &&
	    streq(r.pattern, "c.d") && podio_config_rule(cfg, 2, &r) == 0,
	    "rules of both files, in order");

	/* a failing file changes nothing, even its valid first lines */
	rc = podio_config_load_file(cfg, write_tmps("timeout = 9s\n"
	    "on e.f = /bin/e\nclient_id = x\nbogus = 1\n"), err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && podio_config_get_ms(cfg, "timeout") ==
	    6000 && streq(podio_config_get(cfg, "client_id"), "first") &&
	    podio_config_rule(cfg, 2, &r) == 0, "a failed load is all or "
	    "nothing");
	podio_config_free(cfg);
}

/* --------------------------------------------------------- environment */

/* A NULL-terminated copy of list, as environ is (caller frees with
 * free_env()). */
static char **
make_env(const char *const *list)
{
	char **env;
	size_t n, i;

	for (n = 0; list[n] != NULL; n++)
		;
	if ((env = calloc(n + 1, sizeof(*env))) == NULL)
		abort();
	for (i = 0; i < n; i++)
		if ((env[i] = strdup(list[i])) == NULL)
			abort();
	return env;
}

static void
free_env(char **env)
{
	size_t i;

	for (i = 0; env[i] != NULL; i++)
		free(env[i]);
	free(env);
}

/* Loads list as the environment into cfg. */
static enum podio_err
load_env(struct podio_config *cfg, const char *const *list, char *err,
    size_t errlen)
{
	char **env = make_env(list);
	enum podio_err rc;

	rc = podio_config_load_env(cfg, env, err, errlen);
	free_env(env);
	return rc;
}

static void
test_env(void)
{
	struct podio_config *cfg = podio_config_new();
	char err[512];
	enum podio_err rc;
	const char *env1[] = {
		"HOME=/root", "PODIO_TIMEOUT=7s", "PODIO_CLIENT_ID=env-id",
		"PODIO_FOO=bar", "PODIO_WEBHOOK_CONFIG=/nonexistent",
		"podio_username=lower", "PODIO_USERNAMEX=prefix",
		"PODIO_TOKEN_CACHE=", "PODIO_MAX_RESPONSE=2M",
		"PODIO_TIMEOUT=8s", NULL
	};
	const char *env_bad[] = { "PODIO_CLIENT_SECRET=" SECRET,
	    "PODIO_TIMEOUT=3x", NULL };
	const char *env_badsecret[] = { "PODIO_APP_TOKEN=" SECRET "\n", NULL };
	const char *env_empty[] = { "PODIO_CLIENT_ID=", NULL };

	rc = load_env(cfg, env1, err, sizeof(err));
	tap_ok(rc == PODIO_OK, "env loads, unknown PODIO_* ignored (%s)", err);
	tap_ok(podio_config_get_ms(cfg, "timeout") == 7000,
	    "PODIO_TIMEOUT applied; the first of two counts, as getenv()");
	TAP_OK(streq(podio_config_get(cfg, "client_id"), "env-id"));
	TAP_OK(podio_config_get(cfg, "username") == NULL);
	tap_ok(streq(podio_config_get(cfg, "token_cache"), ""),
	    "empty PODIO_TOKEN_CACHE disables the cache");
	TAP_OK(podio_config_get_size(cfg, "max_response") == 2097152);

	rc = load_env(cfg, env_bad, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && streq(err, "PODIO_TIMEOUT: bad "
	    "duration '3x' (want e.g. 500ms, 30s, 5m, 2h, 1d)"),
	    "bad env value names the variable: %s", err);
	tap_ok(strstr(err, SECRET) == NULL && podio_config_get(cfg,
	    "client_secret") == NULL, "... no secret in it, nothing applied");
	rc = load_env(cfg, env_badsecret, err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, "PODIO_APP_TOKEN: ") ==
	    err && strstr(err, SECRET) == NULL, "bad secret env value is not "
	    "quoted: %s", err);
	rc = load_env(cfg, env_empty, err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get(cfg, "client_id") == NULL,
	    "an empty PODIO_CLIENT_ID unsets it");
	TAP_OK(podio_config_load_env(cfg, NULL, err, sizeof(err)) == PODIO_OK);
	podio_config_free(cfg);
}

/* The keys of API budgeting and item coalescing. */
static void
test_rate_coalesce_keys(void)
{
	struct podio_config *cfg = podio_config_new();
	char err[512];
	enum podio_err rc;
	const char *env[] = { "PODIO_RATE_RESERVE=0",
	    "PODIO_COALESCE_WINDOW=0", "PODIO_COALESCE_MAX=2m", NULL };

	if (!tap_ok(cfg != NULL, "rate/coalesce: podio_config_new"))
		return;
	tap_ok(podio_config_get_int(cfg, "rate_reserve") == 50 &&
	    streq(podio_config_get(cfg, "rate_reserve"), "50"),
	    "rate_reserve defaults to 50");
	tap_ok(podio_config_get_ms(cfg, "coalesce_window") == 2000 &&
	    streq(podio_config_get(cfg, "coalesce_window"), "2s"),
	    "coalesce_window defaults to 2s");
	tap_ok(podio_config_get_ms(cfg, "coalesce_max") == 30000 &&
	    streq(podio_config_get(cfg, "coalesce_max"), "30s"),
	    "coalesce_max defaults to 30s");
	tap_ok(podio_config_key_help("rate_reserve") != NULL &&
	    podio_config_key_help("coalesce_window") != NULL &&
	    podio_config_key_help("coalesce_max") != NULL &&
	    !podio_config_key_is_secret("rate_reserve"),
	    "the three keys have help and are not secret");

	rc = podio_config_set(cfg, "rate_reserve", "120", NULL, err,
	    sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_int(cfg, "rate_reserve") ==
	    120, "rate_reserve = 120");
	rc = podio_config_set(cfg, "rate_reserve", "-1", "-o", err,
	    sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, "rate_reserve") !=
	    NULL && podio_config_get_int(cfg, "rate_reserve") == 120,
	    "rate_reserve = -1 refused, old value kept: %s", err);
	rc = podio_config_set(cfg, "rate_reserve", "1000001", "-o", err,
	    sizeof(err));
	TAP_OK(rc == PODIO_ERR_CONFIG);
	rc = podio_config_set(cfg, "rate_reserve", "lots", "-o", err,
	    sizeof(err));
	TAP_OK(rc == PODIO_ERR_CONFIG);
	rc = podio_config_set(cfg, "coalesce_window", "500ms", NULL, err,
	    sizeof(err));
	tap_ok(rc == PODIO_OK &&
	    podio_config_get_ms(cfg, "coalesce_window") == 500,
	    "coalesce_window = 500ms");
	rc = podio_config_set(cfg, "coalesce_max", "soon", "-o", err,
	    sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG &&
	    podio_config_get_ms(cfg, "coalesce_max") == 30000,
	    "coalesce_max = soon refused: %s", err);

	rc = load_env(cfg, env, err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_int(cfg, "rate_reserve") ==
	    0 && podio_config_get_ms(cfg, "coalesce_window") == 0 &&
	    podio_config_get_ms(cfg, "coalesce_max") == 120000,
	    "PODIO_RATE_RESERVE=0, PODIO_COALESCE_WINDOW=0, "
	    "PODIO_COALESCE_MAX=2m");
	podio_config_free(cfg);
}

/* defaults < file < environment < set */
static void
test_precedence(void)
{
	struct podio_config *cfg = podio_config_new();
	char err[512];
	const char *env[] = { "PODIO_TIMEOUT=6s", "PODIO_USERNAME=env",
	    NULL };
	enum podio_err rc;

	rc = podio_config_load_file(cfg, write_tmps("timeout = 5s\n"
	    "username = file\nclient_id = file\n"), err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_ms(cfg, "timeout") == 5000 &&
	    podio_config_get_ms(cfg, "connect_timeout") == 10000,
	    "file over defaults, defaults kept elsewhere");
	rc = load_env(cfg, env, err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_ms(cfg, "timeout") == 6000 &&
	    streq(podio_config_get(cfg, "username"), "env") &&
	    streq(podio_config_get(cfg, "client_id"), "file"),
	    "environment over file");
	rc = podio_config_set(cfg, "timeout", "7s", "-o", err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_get_ms(cfg, "timeout") == 7000 &&
	    streq(podio_config_get(cfg, "username"), "env"), "set over "
	    "environment");
	podio_config_free(cfg);
}

/* ------------------------------------------------------------- secrets */

/* No message of any failing source quotes a secret value. */
static void
test_secret_messages(void)
{
	static const char *const texts[] = {
		"client_secret " SECRET "\n",
		SECRET "\n",
		"client_secret = " SECRET "\nclient_secret = " SECRET "\n",
		"app_token = a\nwebhook_secret = " SECRET "\x7f\n",
		"password = " SECRET "\ntimeout = 3x\n",
		"password = \"" SECRET "\" x\nlog_level = loud\n",
		"client secret = " SECRET "\n",
		"on item.* = ./" SECRET "\n",
		"on item.* = /bin/echo \"" SECRET "\n",
		"log item.* = " SECRET "\n",
		"= " SECRET "\n",
	};
	struct podio_config *cfg;
	char err[512];
	size_t i;
	enum podio_err rc;
	int leaks = 0, failed = 0;

	for (i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		err[0] = '\0';
		rc = load_text(texts[i], &cfg, err, sizeof(err));
		failed += rc == PODIO_ERR_CONFIG;
		if (strstr(err, SECRET) != NULL) {
			tap_diag("case %zu leaks: %s", i, err);
			leaks++;
		}
		podio_config_free(cfg);
	}
	tap_ok(failed == (int)(sizeof(texts) / sizeof(texts[0])),
	    "every bad secret line fails (%d)", failed);
	tap_ok(leaks == 0, "no message quotes the secret");

	cfg = podio_config_new();
	rc = podio_config_set(cfg, "webhook_secret", SECRET "\t\x02", "-o",
	    err, sizeof(err));
	tap_ok(rc == PODIO_ERR_CONFIG && strstr(err, SECRET) == NULL &&
	    strstr(err, "-o: webhook_secret: ") == err,
	    "set of a bad secret: %s", err);
	podio_config_free(cfg);
}

/* --------------------------------------------------------------- rules */

static void
test_rules_api(void)
{
	struct podio_config *cfg = NULL;
	struct podio_rule r;
	char err[512];
	enum podio_err rc;

	rc = load_text("on item.create = /bin/x a\n", &cfg, err, sizeof(err));
	TAP_OK(rc == PODIO_OK);
	tap_ok(podio_config_rule(cfg, 0, &r) == 1 && streq(r.kind, "on") &&
	    r.argv != NULL && streq(r.argv[0], "/bin/x") &&
	    streq(r.argv[1], "a") && r.argv[2] == NULL && r.path == NULL &&
	    r.line == 1, "an on rule: argv NULL-terminated, no path");
	tap_ok(podio_config_rule(cfg, 1, &r) == 0 && r.pattern == NULL,
	    "past the end: 0, out cleared");
	TAP_OK(podio_config_rule(NULL, 0, &r) == 0);
	podio_config_free(cfg);
}

/* ------------------------------------------------------- credentials */

static void
test_credentials(void)
{
	struct podio_config *cfg = NULL;
	struct podio_credential c;
	struct podio_rule r;
	char err[512];
	enum podio_err rc;

	rc = load_text("app_id = 5\napp_token = tok5\n"
	    "app 42 = \"tok42\"\napp 7 = tok7\non * = /bin/x\n", &cfg, err,
	    sizeof(err));
	TAP_OK(rc == PODIO_OK);
	tap_ok(podio_config_credential(cfg, 0, &c) == 1 &&
	    streq(c.flow, "app") && c.app_id == 5 &&
	    streq(c.app_token, "tok5") && c.file == NULL,
	    "credential 0: app_id and app_token");
	tap_ok(podio_config_credential(cfg, 1, &c) == 1 && c.app_id == 42 &&
	    streq(c.app_token, "tok42") && c.line == 3,
	    "credential 1: the first app line, quotes dropped");
	tap_ok(podio_config_credential(cfg, 2, &c) == 1 && c.app_id == 7 &&
	    podio_config_credential(cfg, 3, &c) == 0 && c.flow == NULL,
	    "then the second app line; past the end 0, out cleared");
	tap_ok(podio_config_rule(cfg, 0, &r) == 1 && streq(r.kind, "on") &&
	    podio_config_rule(cfg, 1, &r) == 0,
	    "app lines are not rule lines");
	podio_config_free(cfg);
	cfg = NULL;

	rc = load_text("username = u\npassword = p\n", &cfg, err,
	    sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_credential(cfg, 0, &c) == 1 &&
	    streq(c.flow, "password") && streq(c.username, "u") &&
	    c.app_id == 0 && podio_config_credential(cfg, 1, &c) == 0,
	    "the password flow is one credential");
	podio_config_free(cfg);
	cfg = NULL;
	rc = load_text("app 9 = t9\n", &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK && podio_config_credential(cfg, 0, &c) == 1 &&
	    c.app_id == 9 && podio_config_credential(cfg, 1, &c) == 0,
	    "app lines alone");
	podio_config_free(cfg);
}

/* ------------------------------------------------------ the config path */

static void
test_config_path(void)
{
	const char *p;
	int is_explicit = -1;

	setenv("PODIO_WEBHOOK_CONFIG", "/from/env.conf", 1);
	p = podio_config_path("/explicit.conf", &is_explicit);
	tap_ok(streq(p, "/explicit.conf") && is_explicit == 1,
	    "-c wins over the environment");
	is_explicit = -1;
	p = podio_config_path(NULL, &is_explicit);
	tap_ok(streq(p, "/from/env.conf") && is_explicit == 1,
	    "PODIO_WEBHOOK_CONFIG next");
	setenv("PODIO_WEBHOOK_CONFIG", "", 1);
	is_explicit = -1;
	p = podio_config_path(NULL, &is_explicit);
	tap_ok(streq(p, PODIO_CONFIG_PATH) && is_explicit == 0,
	    "an empty PODIO_WEBHOOK_CONFIG counts as unset");
	unsetenv("PODIO_WEBHOOK_CONFIG");
	is_explicit = -1;
	p = podio_config_path(NULL, &is_explicit);
	tap_ok(streq(p, PODIO_CONFIG_PATH) && is_explicit == 0,
	    "else the compiled-in default %s", PODIO_CONFIG_PATH);
	TAP_OK(streq(podio_config_path(NULL, NULL), PODIO_CONFIG_PATH));
}

/* ---------------------------------------------------- the sample file */

/* The key of a line "#key = ..." or "key = ..." (regex ^#?([a-z_]+) = ),
 * copied into key; 0 if the line is not one. */
static int
sample_key(const char *line, char *key, size_t keylen)
{
	size_t n = 0;

	if (*line == '#')
		line++;
	while ((line[n] >= 'a' && line[n] <= 'z') || line[n] == '_')
		n++;
	if (n == 0 || n >= keylen || strncmp(line + n, " = ", 3) != 0)
		return 0;
	memcpy(key, line, n);
	key[n] = '\0';
	return 1;
}

/*
 * deploy/podio-webhook.conf lists every key exactly once as "#key = ...";
 * with those lines uncommented it loads, and shows each default as the
 * built-in one (token_cache and spool_dir aside: their directory is
 * chosen at build time).
 */
static void
test_sample(void)
{
	char path[1100], key[64], err[512];
	char *text, *line, *next;
	struct podio_config *cfg = NULL, *def = NULL;
	const char *k;
	size_t nkeys, i;
	int *seen = NULL, ok = 1;
	enum podio_err rc;

	snprintf(path, sizeof(path), "%s/deploy/podio-webhook.conf", srcdir);
	if (!tap_ok((text = slurp(path)) != NULL, "read the sample "
	    "configuration"))
		return;
	for (nkeys = 0; podio_config_key_name(nkeys) != NULL; nkeys++)
		;
	seen = calloc(nkeys, sizeof(*seen));
	for (line = text; line != NULL && *line != '\0'; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			next++;
		if (!sample_key(line, key, sizeof(key)))
			continue;
		for (i = 0; i < nkeys; i++)
			if (streq(key, podio_config_key_name(i)))
				break;
		if (i == nkeys) {
			tap_diag("sample names an unknown key %s", key);
			ok = 0;
		} else if (seen[i]++) {
			tap_diag("sample names %s twice", key);
			ok = 0;
		}
		if (line[0] != '#') {
			tap_diag("sample sets %s (should be commented)", key);
			ok = 0;
		}
		line[0] = ' ';  /* uncomment it for the load below */
	}
	for (i = 0; i < nkeys; i++)
		if (!seen[i]) {
			tap_diag("sample lacks %s", podio_config_key_name(i));
			ok = 0;
		}
	tap_ok(ok, "the sample lists each of the %zu keys once", nkeys);

	rc = load_text(text, &cfg, err, sizeof(err));
	tap_ok(rc == PODIO_OK, "the sample with every key uncommented loads "
	    "(%s)", err);
	def = podio_config_new();
	for (i = 0, ok = rc == PODIO_OK; (k = podio_config_key_name(i)) !=
	    NULL; i++)
		if (podio_config_get(def, k) != NULL && !streq(k,
		    "token_cache") && !streq(k, "spool_dir") &&
		    !streq(podio_config_get(def, k),
		    podio_config_get(cfg, k))) {
			tap_diag("sample shows %s = %s, default is %s", k,
			    show(podio_config_get(cfg, k)),
			    podio_config_get(def, k));
			ok = 0;
		}
	tap_ok(ok, "the sample shows the built-in defaults");
	podio_config_free(def);
	podio_config_free(cfg);
	free(seen);
	free(text);
}

/* ------------------------------------------------------------------ */

/* The source tree: $top_srcdir (set by make check), else found from
 * this file's name. */
static void
find_srcdir(void)
{
	const char *env = getenv("top_srcdir");
	char here[1024], *d;

	if (env != NULL && env[0] != '\0') {
		snprintf(srcdir, sizeof(srcdir), "%s", env);
		return;
	}
	snprintf(here, sizeof(here), "%s", __FILE__);
	d = dirname(here);         /* .../tests */
	snprintf(srcdir, sizeof(srcdir), "%s/..", d);
}

static void
rm_tmpdir(void)
{
	char path[512];
	int i;

	for (i = 1; i <= tmpn; i++) {
		snprintf(path, sizeof(path), "%s/f%d.conf", tmpdir, i);
		unlink(path);
	}
	rmdir(tmpdir);
}

int
main(void)
{
	const char *t = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test-config.XXXXXX",
	    t != NULL && t[0] != '\0' ? t : "/tmp");
	if (mkdtemp(tmpdir) == NULL) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	unsetenv("PODIO_WEBHOOK_CONFIG");
	find_srcdir();

	test_defaults();
	test_key_table();
	test_every_key_set();
	test_set_errors();
	test_parse_duration();
	test_parse_size();
	test_parse_u64();
	test_data_dir("good", check_good);
	test_data_dir("bad", check_bad);
	test_file_bytes();
	test_file_errors();
	test_two_files();
	test_env();
	test_rate_coalesce_keys();
	test_precedence();
	test_secret_messages();
	test_rules_api();
	test_credentials();
	test_config_path();
	test_sample();

	rm_tmpdir();
	return tap_done();
}

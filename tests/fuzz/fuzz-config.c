/*
 * fuzz-config.c: the configuration parser (lib/config.c,
 * lib/config_value.c).  The input is a configuration file, read by
 * podio__config_load_text() (podio_config_load_file() without the file),
 * and its lines are also an environment for podio_config_load_env().
 *
 * Checked: a failure leaves the configuration as it was and says where
 * in one line without control characters, never quoting the value of a
 * secret key; a success gives values whose canonical text reads back to
 * itself with podio_config_set(), and rules with a valid pattern, an
 * absolute command or file, and the line they came from.
 */
#include <config.h>

#include "podio.h"
#include "config.h"
#include "fuzz.h"

#define NAME "fuzz.conf"

/* How often needle occurs in hay[0..n). */
static size_t
occurrences(const char *hay, size_t n, const char *needle)
{
	size_t k = strlen(needle), count = 0, i;

	for (i = 0; k > 0 && i + k <= n; i++)
		if (memcmp(hay + i, needle, k) == 0)
			count++;
	return count;
}

/*
 * Whether the text of value in err comes from the message's own words
 * (a value such as "= value" against "expected 'key = value'") rather
 * than from the input: the input read again with that value's bytes
 * turned into '~' still gives a message holding it.
 */
static int
message_words(const char *input, size_t size, const char *value)
{
	struct podio_config *cfg;
	char *text, err[1024];
	size_t k = strlen(value), i;
	int words;

	text = fuzz_dup((const uint8_t *)input, size);
	for (i = 0; i + k <= size; i++)
		if (memcmp(text + i, value, k) == 0) {
			memset(text + i, '~', k);
			break;
		}
	if ((cfg = podio_config_new()) == NULL)
		abort();
	err[0] = '\0';
	(void)podio__config_load_text(cfg, NAME, text, size, err, sizeof(err));
	words = strstr(err, value) != NULL;
	podio_config_free(cfg);
	free(text);
	return words;
}

/*
 * The file parser's secret promise: for each line "KEY = VALUE" of a
 * secret key whose value (6 bytes or more) occurs nowhere else in the
 * input, the message must not hold it (unless those are the message's
 * own words, message_words()).
 */
static void
check_no_secret(const char *input, size_t size, const char *err)
{
	char *copy = fuzz_dup((const uint8_t *)input, size), *line, *next;
	char *key, *value, *eq, *e;
	size_t n;

	for (line = copy; line != NULL; line = next) {
		if ((next = strchr(line, '\n')) != NULL)
			*next++ = '\0';
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq = '\0';
		for (key = line; *key == ' ' || *key == '\t'; key++)
			;
		for (e = key + strlen(key); e > key && (e[-1] == ' ' ||
		    e[-1] == '\t'); e--)
			e[-1] = '\0';
		if (!podio_config_key_is_secret(key))
			continue;
		for (value = eq + 1; *value == ' ' || *value == '\t'; value++)
			;
		for (e = value + strlen(value); e > value && (e[-1] == ' ' ||
		    e[-1] == '\t' || e[-1] == '\r'); e--)
			e[-1] = '\0';
		n = strlen(value);
		if (n >= 2 && value[0] == '"' && value[n - 1] == '"') {
			value[n - 1] = '\0';
			value++;
		}
		if (strlen(value) < 6 || occurrences(input, size, value) != 1)
			continue;
		FUZZ_CHECK(strstr(err, value) == NULL ||
		    message_words(input, size, value),
		    "the message quotes the value of %s", key);
	}
	free(copy);
}

/* Whether a and b hold the same text (both may be NULL). */
static int
same(const char *a, const char *b)
{
	return a == b || (a != NULL && b != NULL && strcmp(a, b) == 0);
}

static void
check_loaded(const struct podio_config *cfg)
{
	struct podio_config *again;
	struct podio_rule r;
	struct podio_hook_decl h;
	const char *key, *text;
	char err[512];
	size_t i;

	if ((again = podio_config_new()) == NULL)
		abort();
	for (i = 0; (key = podio_config_key_name(i)) != NULL; i++) {
		if ((text = podio_config_get(cfg, key)) == NULL)
			continue;
		FUZZ_CHECK(podio_config_set(again, key, text, "again", err,
		    sizeof(err)) == PODIO_OK, "%s: its text does not read "
		    "back: %s", key, err);
		FUZZ_CHECK(same(podio_config_get(again, key), text),
		    "%s: its text is not canonical", key);
	}
	for (i = 0; podio_config_rule(cfg, i, &r); i++) {
		FUZZ_CHECK(r.pattern != NULL && r.pattern[0] != '\0',
		    "rule %zu without pattern", i);
		FUZZ_CHECK(strcmp(r.file, NAME) == 0 && r.line >= 1,
		    "rule %zu from %s:%d", i, r.file, r.line);
		if (strcmp(r.kind, "on") == 0)
			FUZZ_CHECK(r.argv != NULL && r.argv[0] != NULL &&
			    r.argv[0][0] == '/', "rule %zu: bad command", i);
		else
			FUZZ_CHECK(strcmp(r.kind, "log") == 0 &&
			    r.path != NULL && r.path[0] == '/',
			    "rule %zu: bad log", i);
	}
	for (i = 0; podio_config_hook(cfg, i, &h); i++) {
		FUZZ_CHECK(strcmp(h.ref_type, "app") == 0 && h.ref_id != 0 &&
		    h.events != NULL && h.events[0] != NULL,
		    "hook line %zu: no app or no event", i);
		FUZZ_CHECK(strcmp(h.file, NAME) == 0 && h.line >= 1,
		    "hook line %zu from %s:%d", i, h.file, h.line);
	}
	podio_config_free(again);
}

/* cfg still holds the defaults only. */
static void
check_untouched(const struct podio_config *cfg)
{
	struct podio_config *fresh;
	struct podio_rule r;
	struct podio_hook_decl h;
	const char *key;
	size_t i;

	if ((fresh = podio_config_new()) == NULL)
		abort();
	for (i = 0; (key = podio_config_key_name(i)) != NULL; i++)
		FUZZ_CHECK(same(podio_config_get(cfg, key),
		    podio_config_get(fresh, key)),
		    "a failed load changed %s", key);
	FUZZ_CHECK(!podio_config_rule(cfg, 0, &r), "a failed load kept rules");
	FUZZ_CHECK(!podio_config_hook(cfg, 0, &h),
	    "a failed load kept hook lines");
	podio_config_free(fresh);
}

/* The input's lines as an environment. */
static void
load_env(const uint8_t *data, size_t size)
{
	struct podio_config *cfg;
	char *copy = fuzz_dup(data, size), *p, **envp;
	char err[512];
	size_t n = 1, i = 0;
	enum podio_err rc;

	for (p = copy; (p = strchr(p, '\n')) != NULL; p++)
		n++;
	if ((envp = calloc(n + 1, sizeof(*envp))) == NULL ||
	    (cfg = podio_config_new()) == NULL)
		abort();
	for (p = copy; p != NULL && i < n; i++) {
		envp[i] = p;
		if ((p = strchr(p, '\n')) != NULL)
			*p++ = '\0';
	}
	err[0] = '\0';
	rc = podio_config_load_env(cfg, envp, err, sizeof(err));
	FUZZ_CHECK(rc == PODIO_OK || rc == PODIO_ERR_CONFIG,
	    "load_env: %d", rc);
	if (rc == PODIO_OK)
		check_loaded(cfg);
	else {
		FUZZ_CHECK(strncmp(err, "PODIO_", 6) == 0 &&
		    fuzz_no_control(err), "load_env message: %s", err);
		check_untouched(cfg);
	}
	podio_config_free(cfg);
	free(envp);
	free(copy);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_config *cfg;
	char *text, err[1024];
	enum podio_err rc;

	/* The file reader's cap, so that a run stays quick. */
	if (size > 64 * 1024)
		return 0;
	if ((cfg = podio_config_new()) == NULL)
		abort();
	text = fuzz_dup(data, size);
	err[0] = '\0';
	rc = podio__config_load_text(cfg, NAME, text, size, err, sizeof(err));
	free(text);
	FUZZ_CHECK(rc == PODIO_OK || rc == PODIO_ERR_CONFIG, "load: %d", rc);
	if (rc == PODIO_OK) {
		FUZZ_CHECK(err[0] == '\0', "a message on success: %s", err);
		check_loaded(cfg);
	} else {
		FUZZ_CHECK(strncmp(err, NAME ":", sizeof(NAME)) == 0 &&
		    fuzz_no_control(err), "message: %s", err);
		check_no_secret((const char *)data, size, err);
		check_untouched(cfg);
	}
	podio_config_free(cfg);
	load_env(data, size);
	return 0;
}

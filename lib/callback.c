/*
 * callback.c: running the user's callbacks for one event (see
 * callback.h): C functions, commands from "on" lines and JSON-lines logs
 * from "log" lines.
 *
 * Commands are started with posix_spawn() (no shell; the server is
 * multi-threaded, and glibc's posix_spawn() does nothing between its
 * vfork-like clone and the exec but the file actions and attributes set
 * up beforehand).  Every descriptor this module makes is close-on-exec,
 * so a command started by another thread at the same moment never holds
 * one of our pipes; the child's own fds above 2 are closed by the
 * closefrom file action, whoever opened them.
 *
 * The end of a command is its exit, not the end of its output: a
 * grandchild it left running in the background may hold its stdin or
 * stderr for ever, so we watch the process itself (a pidfd, else a short
 * poll of waitid()), and once it has exited we kill what is left of its
 * process group and read only what is already in the stderr pipe.  A
 * grandchild that left the group (setsid) is beyond our reach and is not
 * waited for either.
 *
 * The registry is read-only once events run, and nothing here keeps
 * global state, so many threads may run events at once.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "callback.h"
#include "log.h"
#include "util.h"

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 34)
#error "posix_spawn_file_actions_addclosefrom_np() (glibc 2.34) is needed"
#endif

/* Entries of each kind (functions, rules) in one registry. */
#define PODIO__CB_ENTRIES_MAX 4096
/* Words of one command. */
#define PODIO__CB_ARGS_MAX 1024
/* Longest pattern: a 64-byte type and ".*". */
#define PODIO__CB_PATTERN_MAX 66
/* Variables of a command's environment. */
#define PODIO__CB_ENV_MAX 6
#define PODIO__CB_PATH "PATH=/usr/local/bin:/usr/bin:/bin"
#define PODIO__CB_LANG_DEFAULT "C.UTF-8"
/* Without a pidfd, how often waitid() looks whether a command exited. */
#define PODIO__CB_POLL_SLICE_MS 10
/* After a command exited, at most this much is still read from its
 * stderr pipe (a grandchild outside the group may keep writing). */
#define PODIO__CB_DRAIN_MAX (1024 * 1024)
/* Attempts at opening a log file that is being renamed away. */
#define PODIO__CB_LOG_TRIES 4

/* One registry entry.  All strings owned. */
struct podio__cb_entry {
	enum podio_callback_kind kind;
	char *pattern;
	podio_callback_fn fn;          /* function: one of fn, msg_fn */
	podio_callback_msg_fn msg_fn;
	void *userdata;
	char **argv;                   /* command: NULL-terminated */
	char *path;                    /* log */
	char *file;                    /* rule: configuration file, or NULL */
	int line;
	char *key;                     /* stable identity, see podio__cb_key */
};

struct podio_callbacks {
	struct podio__cb_entry *fns;   /* functions, in registration order */
	size_t nfns, afns;
	struct podio__cb_entry *rules; /* commands and logs, in order added */
	size_t nrules, arules;
	char *lang;                    /* LANG when made; NULL = unset */
	char *tz;                      /* TZ when made; NULL = unset */
	int use_pidfd;                 /* the kernel gives pidfds */
};

/* The end of a command's stderr. */
struct podio__cb_tail {
	char buf[PODIO_CALLBACK_TAIL];
	size_t len;
	int cut;                       /* bytes were dropped in front */
};

/* A running command, as seen from here. */
struct podio__cb_proc {
	pid_t pid;
	int in_fd;                     /* our end of its stdin (nonblocking) */
	int err_fd;                    /* our end of its stderr (nonblocking) */
	int pidfd;                     /* readable once it exits; -1 = none */
};

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

/* A pidfd for pid (close-on-exec), or -1 where the kernel (or a tool
 * running us) has none; then exits are found by polling waitid(). */
static int
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

/* Keeps the last PODIO_CALLBACK_TAIL bytes of everything added. */
static void
podio__cb_tail_add(struct podio__cb_tail *t, const char *p, size_t n)
{
	size_t drop;

	if (n >= sizeof(t->buf)) {
		t->cut = t->cut || n > sizeof(t->buf) || t->len > 0;
		memcpy(t->buf, p + n - sizeof(t->buf), sizeof(t->buf));
		t->len = sizeof(t->buf);
		return;
	}
	if (t->len + n > sizeof(t->buf)) {
		drop = t->len + n - sizeof(t->buf);
		memmove(t->buf, t->buf + drop, t->len - drop);
		t->len -= drop;
		t->cut = 1;
	}
	memcpy(t->buf + t->len, p, n);
	t->len += n;
}

/* ------------------------------------------------------------- commands */

/* A new string "name=value" (value may be NULL: ""); NULL on out of
 * memory. */
static char *
podio__cb_envvar(const char *name, const char *value)
{
	size_t a, b;
	char *s;

	if (value == NULL)
		value = "";
	a = strlen(name);
	b = strlen(value);
	if ((s = malloc(a + 1 + b + 1)) == NULL)
		return NULL;
	memcpy(s, name, a);
	s[a] = '=';
	memcpy(s + a + 1, value, b + 1);
	return s;
}

/*
 * Fills envp (PODIO__CB_ENV_MAX + 1 slots, NULL-terminated) with the
 * environment of a command: PATH, LANG, TZ, PODIO_EVENT_TYPE and the ids.
 * Returns 0 or ENOMEM; the caller frees the strings either way.
 */
static int
podio__cb_env(const struct podio_callbacks *reg, const char *type,
    const struct podio_callback_ids *ids, char **envp)
{
	char num[32];
	size_t n = 0;

	memset(envp, 0, (PODIO__CB_ENV_MAX + 1) * sizeof(*envp));
	if ((envp[n++] = strdup(PODIO__CB_PATH)) == NULL)
		return ENOMEM;
	if ((envp[n++] = podio__cb_envvar("LANG", reg->lang != NULL ?
	    reg->lang : PODIO__CB_LANG_DEFAULT)) == NULL)
		return ENOMEM;
	if (reg->tz != NULL &&
	    (envp[n++] = podio__cb_envvar("TZ", reg->tz)) == NULL)
		return ENOMEM;
	if ((envp[n++] = podio__cb_envvar("PODIO_EVENT_TYPE", type)) == NULL)
		return ENOMEM;
	if (ids != NULL && ids->has_hook_id) {
		snprintf(num, sizeof(num), "%" PRIu64, ids->hook_id);
		if ((envp[n++] = podio__cb_envvar("PODIO_HOOK_ID", num)) ==
		    NULL)
			return ENOMEM;
	}
	if (ids != NULL && ids->has_item_id) {
		snprintf(num, sizeof(num), "%" PRIu64, ids->item_id);
		if ((envp[n++] = podio__cb_envvar("PODIO_ITEM_ID", num)) ==
		    NULL)
			return ENOMEM;
	}
	return 0;
}

/*
 * Moves *fd to a number above 2 (keeping close-on-exec), so that the
 * child's dup2() onto 0-2 never meets one of its own sources.  Returns 0
 * or errno.
 */
static int
podio__cb_fd_above2(int *fd)
{
	int nfd;

	if (*fd > 2)
		return 0;
	if ((nfd = fcntl(*fd, F_DUPFD_CLOEXEC, 3)) < 0)
		return errno;
	close(*fd);
	*fd = nfd;
	return 0;
}

static int
podio__cb_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
		return errno;
	return 0;
}

/*
 * Starts the command of e: stdin a pipe whose write end pr->in_fd we keep,
 * stdout /dev/null, stderr a pipe whose read end pr->err_fd we keep, only
 * fds 0-2 open, its own process group, default signal handling and an
 * empty signal mask, and the minimal environment.  Returns 0 (pr filled)
 * or an errno value (nothing left open or running).
 */
static int
podio__cb_spawn(const struct podio_callbacks *reg,
    const struct podio__cb_entry *e, const char *type,
    const struct podio_callback_ids *ids, struct podio__cb_proc *pr)
{
	char *envp[PODIO__CB_ENV_MAX + 1];
	int inp[2] = { -1, -1 }, errp[2] = { -1, -1 }, null_fd = -1;
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	int fa_ok = 0, attr_ok = 0, rc;
	sigset_t none, all;
	size_t i;

	pr->pid = -1;
	pr->in_fd = pr->err_fd = pr->pidfd = -1;
	memset(envp, 0, sizeof(envp));
	/* posix_spawn() reports a failed exec too, but only when the clone
	 * shares memory with us (not under every debugging tool): look
	 * first, for a clear answer in the common cases. */
	if (faccessat(AT_FDCWD, e->argv[0], X_OK, AT_EACCESS) != 0) {
		rc = errno;
		goto fail;
	}
	if ((rc = podio__cb_env(reg, type, ids, envp)) != 0)
		goto fail;
	if (pipe2(inp, O_CLOEXEC) != 0 || pipe2(errp, O_CLOEXEC) != 0 ||
	    (null_fd = open("/dev/null", O_WRONLY | O_CLOEXEC)) < 0) {
		rc = errno;
		goto fail;
	}
	if ((rc = podio__cb_fd_above2(&inp[0])) != 0 ||
	    (rc = podio__cb_fd_above2(&errp[1])) != 0 ||
	    (rc = podio__cb_fd_above2(&null_fd)) != 0)
		goto fail;

	if ((rc = posix_spawn_file_actions_init(&fa)) != 0)
		goto fail;
	fa_ok = 1;
	if ((rc = posix_spawn_file_actions_adddup2(&fa, inp[0], 0)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, null_fd, 1)) != 0 ||
	    (rc = posix_spawn_file_actions_adddup2(&fa, errp[1], 2)) != 0 ||
	    (rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3)) != 0)
		goto fail;
	if ((rc = posix_spawnattr_init(&attr)) != 0)
		goto fail;
	attr_ok = 1;
	sigemptyset(&none);
	sigfillset(&all);
	if ((rc = posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETPGROUP |
	    POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF)) != 0 ||
	    (rc = posix_spawnattr_setpgroup(&attr, 0)) != 0 ||
	    (rc = posix_spawnattr_setsigmask(&attr, &none)) != 0 ||
	    (rc = posix_spawnattr_setsigdefault(&attr, &all)) != 0)
		goto fail;

	rc = posix_spawn(&pr->pid, e->argv[0], &fa, &attr, e->argv, envp);
	if (rc != 0) {
		pr->pid = -1;
		goto fail;
	}
	/* The child made its own group before its exec; this repeats it for
	 * a spawn that returns earlier (a plain fork under some tools) and
	 * fails harmlessly once the child has exec'd. */
	(void)setpgid(pr->pid, pr->pid);

	pr->in_fd = inp[1];
	inp[1] = -1;
	pr->err_fd = errp[0];
	errp[0] = -1;
	/* Neither can fail on a fresh pipe; if it did, a blocking write
	 * would still end when the group is killed at the timeout. */
	(void)podio__cb_nonblock(pr->in_fd);
	(void)podio__cb_nonblock(pr->err_fd);
	pr->pidfd = reg->use_pidfd ? podio__cb_pidfd(pr->pid) : -1;
	rc = 0;
fail:
	if (fa_ok)
		posix_spawn_file_actions_destroy(&fa);
	if (attr_ok)
		posix_spawnattr_destroy(&attr);
	for (i = 0; i < 2; i++) {
		if (inp[i] >= 0)
			close(inp[i]);
		if (errp[i] >= 0)
			close(errp[i]);
	}
	if (null_fd >= 0)
		close(null_fd);
	for (i = 0; envp[i] != NULL; i++)
		free(envp[i]);
	return rc;
}

/*
 * write() to a pipe whose reader may be gone, without SIGPIPE reaching
 * the process and without touching process-wide signal state: the
 * SIGPIPE of a failed write goes to the writing thread, so it is blocked
 * in this thread only and, when the write raised it, taken back with
 * sigtimedwait() before the mask is restored.  A SIGPIPE that was already
 * pending is left alone.  Returns write()'s result, errno kept.
 */
static ssize_t
podio__cb_write_nosigpipe(int fd, const void *p, size_t n)
{
	static const struct timespec zero = { 0, 0 };
	sigset_t pipeset, oldset, pending;
	ssize_t r;
	int saved, was_pending;

	sigemptyset(&pipeset);
	sigaddset(&pipeset, SIGPIPE);
	if ((saved = pthread_sigmask(SIG_BLOCK, &pipeset, &oldset)) != 0) {
		errno = saved;
		return -1;
	}
	sigemptyset(&pending);
	was_pending = sigpending(&pending) == 0 &&
	    sigismember(&pending, SIGPIPE) == 1;
	r = write(fd, p, n);
	saved = errno;
	if (r < 0 && saved == EPIPE && !was_pending)
		while (sigtimedwait(&pipeset, NULL, &zero) < 0 &&
		    errno == EINTR)
			continue;
	pthread_sigmask(SIG_SETMASK, &oldset, NULL);
	errno = saved;
	return r;
}

/*
 * Reads what the stderr pipe holds into t: at most max bytes, stopping
 * when it would block.  Returns 1 at end of file or on an error (the fd
 * should be closed), else 0.
 */
static int
podio__cb_read_err(int fd, struct podio__cb_tail *t, size_t max)
{
	char chunk[4096];
	size_t got = 0;
	ssize_t r;

	while (got < max) {
		r = read(fd, chunk, sizeof(chunk));
		if (r > 0) {
			podio__cb_tail_add(t, chunk, (size_t)r);
			got += (size_t)r;
			continue;
		}
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		return 1;
	}
	return 0;
}

/*
 * Whether pid has exited, without reaping it: the zombie keeps its pid
 * and process group id, so killing the group afterwards can never hit a
 * stranger.  Returns 0 (running), 1 (exited) or 2 (gone: reaped by
 * someone else, as when the program sets SIGCHLD to SIG_IGN).
 */
static int
podio__cb_exited(pid_t pid)
{
	siginfo_t si;

	memset(&si, 0, sizeof(si));
	if (waitid(P_PID, (id_t)pid, &si, WEXITED | WNOHANG | WNOWAIT) != 0)
		return errno == ECHILD ? 2 : 0;
	return si.si_pid == pid;
}

/*
 * Feeds the event to a started command and watches it until it exits or
 * the deadline (deadline_ms on podio__now_ms(), < 0: none) passes, then
 * kills its process group, reaps it and fills res.  Closes pr's fds.
 */
static void
podio__cb_supervise(struct podio__cb_proc *pr, const char *json, size_t len,
    int64_t deadline_ms, struct podio_callback_result *res)
{
	struct podio__cb_tail tail;
	struct pollfd pfd[3];
	char ebuf[128];
	size_t off = 0, chunk;
	int64_t now, wait_ms;
	ssize_t w;
	int nfds, i_in, i_err, status = 0, timed_out = 0, lost = 0;
	int poll_err = 0, exited;
	pid_t r;

	memset(&tail, 0, sizeof(tail));
	if (len == 0) {
		close(pr->in_fd);
		pr->in_fd = -1;
	}
	while ((exited = podio__cb_exited(pr->pid)) == 0) {
		now = podio__now_ms();
		if (deadline_ms >= 0 && now >= deadline_ms) {
			timed_out = 1;
			break;
		}
		wait_ms = deadline_ms >= 0 ? deadline_ms - now : -1;
		if (pr->pidfd < 0 && (wait_ms < 0 ||
		    wait_ms > PODIO__CB_POLL_SLICE_MS))
			wait_ms = PODIO__CB_POLL_SLICE_MS;
		if (wait_ms > INT_MAX)
			wait_ms = INT_MAX;
		nfds = 0;
		i_in = i_err = -1;
		if (pr->in_fd >= 0) {
			pfd[nfds].fd = pr->in_fd;
			pfd[nfds].events = POLLOUT;
			i_in = nfds++;
		}
		if (pr->err_fd >= 0) {
			pfd[nfds].fd = pr->err_fd;
			pfd[nfds].events = POLLIN;
			i_err = nfds++;
		}
		if (pr->pidfd >= 0) {
			pfd[nfds].fd = pr->pidfd;
			pfd[nfds].events = POLLIN;
			nfds++;
		}
		if (poll(pfd, (nfds_t)nfds, (int)wait_ms) < 0) {
			if (errno == EINTR)
				continue;
			poll_err = errno;
			break;
		}
		if (i_in >= 0 && pfd[i_in].revents != 0) {
			chunk = len - off;
			if (chunk > 65536)
				chunk = 65536;
			w = podio__cb_write_nosigpipe(pr->in_fd, json + off,
			    chunk);
			if (w > 0)
				off += (size_t)w;
			/* A command may close its stdin early or never
			 * read it: stop feeding it, that is all. */
			if (off == len || (w < 0 && errno != EAGAIN &&
			    errno != EWOULDBLOCK && errno != EINTR)) {
				close(pr->in_fd);
				pr->in_fd = -1;
			}
		}
		if (i_err >= 0 && pfd[i_err].revents != 0 &&
		    podio__cb_read_err(pr->err_fd, &tail, 65536)) {
			close(pr->err_fd);
			pr->err_fd = -1;
		}
	}

	/* Exited (a zombie still holding its group id) or overdue: kill
	 * the group; the child itself too, in case it left the group.  A
	 * child already reaped elsewhere no longer holds its id, which
	 * could now name a stranger's group: leave it. */
	if (exited != 2)
		kill(-pr->pid, SIGKILL);
	if (timed_out || poll_err)
		kill(pr->pid, SIGKILL);
	if (pr->err_fd >= 0)
		(void)podio__cb_read_err(pr->err_fd, &tail,
		    PODIO__CB_DRAIN_MAX);
	while ((r = waitpid(pr->pid, &status, 0)) < 0 && errno == EINTR)
		continue;
	if (r < 0)
		lost = 1;

	if (pr->in_fd >= 0)
		close(pr->in_fd);
	if (pr->err_fd >= 0)
		close(pr->err_fd);
	if (pr->pidfd >= 0)
		close(pr->pidfd);
	pr->in_fd = pr->err_fd = pr->pidfd = -1;

	podio__callback_oneline(tail.buf, tail.len, tail.cut, res->detail,
	    sizeof(res->detail));
	if (timed_out) {
		res->outcome = PODIO_CALLBACK_TIMEOUT;
	} else if (poll_err) {
		res->outcome = PODIO_CALLBACK_SIGNAL;
		res->status = SIGKILL;
		snprintf(res->detail, sizeof(res->detail), "killed after "
		    "poll() failed: %s", strerror_r(poll_err, ebuf,
		    sizeof(ebuf)));
	} else if (lost) {
		/* SIGCHLD set to SIG_IGN in the program reaps children
		 * behind our back: the status is gone. */
		res->outcome = PODIO_CALLBACK_EXIT;
		res->status = -1;
		podio__strlcpy(res->detail, "exit status lost (is SIGCHLD "
		    "ignored?)", sizeof(res->detail));
	} else if (WIFEXITED(status)) {
		res->status = WEXITSTATUS(status);
		res->outcome = res->status == 0 ? PODIO_CALLBACK_OK :
		    PODIO_CALLBACK_EXIT;
	} else if (WIFSIGNALED(status)) {
		res->outcome = PODIO_CALLBACK_SIGNAL;
		res->status = WTERMSIG(status);
	} else {
		res->outcome = PODIO_CALLBACK_EXIT;
		res->status = -1;
	}
}

/* Runs the command of e for one event; fills res. */
static void
podio__cb_run_command(const struct podio_callbacks *reg,
    const struct podio__cb_entry *e, const char *type,
    const struct podio_callback_ids *ids, const char *json, size_t len,
    int64_t timeout_ms, struct podio_callback_result *res)
{
	struct podio__cb_proc pr;
	char ebuf[128];
	int64_t deadline;
	int rc;

	/* a limit beyond any lifetime is none (and cannot overflow) */
	deadline = timeout_ms > 0 && timeout_ms < INT64_MAX / 4 ?
	    podio__now_ms() + timeout_ms : -1;
	if ((rc = podio__cb_spawn(reg, e, type, ids, &pr)) != 0) {
		res->outcome = PODIO_CALLBACK_NOSTART;
		res->status = rc;
		podio__strlcpy(res->detail, strerror_r(rc, ebuf,
		    sizeof(ebuf)), sizeof(res->detail));
		return;
	}
	podio__cb_supervise(&pr, json, len, deadline, res);
}

/* ------------------------------------------------------------- logs */

/*
 * Appends line (len bytes) and a newline to the file at path: opened
 * anew (O_APPEND, created 0640), locked with flock(LOCK_EX) so writers in
 * any process that lock too never interleave, written in one loop, and
 * closed.  A file renamed away between our open and our lock is opened
 * again by name, so once a rotation renamed it every later line goes to
 * the new file.  A failed write is cut off again (the lock is still
 * held), so the file never keeps half a line.  Returns 0 or errno.
 */
static int
podio__cb_log_append(const char *path, const char *line, size_t len)
{
	struct stat fst, pst;
	struct iovec iov[2];
	int fd = -1, tries, rc, niov;
	ssize_t w;

	for (tries = 1;; tries++) {
		fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC |
		    O_NOCTTY, 0640);
		if (fd < 0)
			return errno;
		while (flock(fd, LOCK_EX) != 0)
			if (errno != EINTR) {
				rc = errno;
				goto fail;
			}
		if (fstat(fd, &fst) != 0) {
			rc = errno;
			goto fail;
		}
		if (tries == PODIO__CB_LOG_TRIES || (stat(path, &pst) == 0 &&
		    pst.st_dev == fst.st_dev && pst.st_ino == fst.st_ino))
			break;
		close(fd);
		fd = -1;
	}

	iov[0].iov_base = (void *)(uintptr_t)line;
	iov[0].iov_len = len;
	iov[1].iov_base = (void *)(uintptr_t)"\n";
	iov[1].iov_len = 1;
	niov = 2;
	while (niov > 0) {
		w = writev(fd, iov + 2 - niov, niov);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			rc = w < 0 ? errno : EIO;
			if (ftruncate(fd, fst.st_size) != 0) {
				/* nothing more can be done: the reason
				 * reported is the write's */
			}
			goto fail;
		}
		while (niov > 0 && (size_t)w >= iov[2 - niov].iov_len) {
			w -= (ssize_t)iov[2 - niov].iov_len;
			niov--;
		}
		if (niov > 0) {
			iov[2 - niov].iov_base =
			    (char *)iov[2 - niov].iov_base + w;
			iov[2 - niov].iov_len -= (size_t)w;
		}
	}
	rc = 0;
	/* close() may be where a network file system reports the write */
	if (close(fd) != 0 && errno != EINTR)
		rc = errno;
	return rc;
fail:
	if (fd >= 0)
		close(fd);
	return rc;
}

/* Runs the log of e for one event; fills res.  Line breaks in the event
 * (only possible as white space between JSON tokens) become spaces, so
 * it stays one line. */
static void
podio__cb_run_log(const struct podio__cb_entry *e, const char *json,
    size_t len, struct podio_callback_result *res)
{
	char *copy = NULL, ebuf[128];
	const char *line = json;
	size_t i;
	int rc;

	if (memchr(json, '\n', len) != NULL ||
	    memchr(json, '\r', len) != NULL) {
		if ((copy = malloc(len)) == NULL) {
			rc = ENOMEM;
			goto done;
		}
		for (i = 0; i < len; i++)
			copy[i] = json[i] == '\n' || json[i] == '\r' ?
			    ' ' : json[i];
		line = copy;
	}
	rc = podio__cb_log_append(e->path, line, len);
done:
	free(copy);
	if (rc != 0) {
		res->outcome = PODIO_CALLBACK_WRITE_FAILED;
		res->status = rc;
		podio__strlcpy(res->detail, strerror_r(rc, ebuf,
		    sizeof(ebuf)), sizeof(res->detail));
	}
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

/*
 * log.c: the program-wide log (see podio.h): a level and a target,
 * stderr, syslog or an append-only file.
 *
 * The level and the target are the library's only global state.  The
 * level is an atomic int, read without a lock on every call; the target
 * is switched under the write side of a read-write lock and used under
 * its read side, so a thread never writes to a file descriptor another
 * thread has just closed.
 *
 * Every message becomes one line, written with a single write() of at
 * most PODIO__LOG_LINE bytes: lines from concurrent threads and processes
 * (CGI runs one process per request) appending to the same file or pipe
 * never interleave, as writes of up to PIPE_BUF bytes to a pipe and
 * O_APPEND writes to a local file are atomic.  A thread may hold its
 * lines (podio__log_hold()) and write several whole lines in one write of
 * at most PIPE_BUF bytes.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "podio.h"
#include "log.h"
#include "util.h"

/* Longest message text kept; longer messages are cut and end in "...". */
#define PODIO__LOG_MSG 2048
/* The whole line: prefix, message, "...", newline. */
#define PODIO__LOG_LINE (PODIO__LOG_MSG + 128)
#define PODIO__LOG_IDENT "podio-webhook"

enum podio__log_kind {
	PODIO__LOG_STDERR,
	PODIO__LOG_SYSLOG,
	PODIO__LOG_FILE
};

static atomic_int podio__log_level = PODIO_LOG_INFO;

/* The target, guarded by podio__log_lock: lines are written under its
 * read lock (threads write at once: the kernel keeps their lines whole),
 * and the target changes under its write lock. */
static pthread_rwlock_t podio__log_lock = PTHREAD_RWLOCK_INITIALIZER;
static enum podio__log_kind podio__log_kind = PODIO__LOG_STDERR;
static int podio__log_fd = -1;  /* the file of PODIO__LOG_FILE */
/* Its path, for podio__log_reopen(); NULL unless PODIO__LOG_FILE.  The
 * generation counts the changes of target, so that a reopen never
 * replaces a target set meanwhile. */
static char *podio__log_path;
static unsigned long podio__log_gen;

/* The process id of the line prefix, looked up once per process (a
 * forked child looks it up again): getpid() is a system call. */
static atomic_long podio__log_pid;
static pthread_once_t podio__log_once = PTHREAD_ONCE_INIT;

static void
podio__log_forked(void)
{
	atomic_store(&podio__log_pid, 0);
}

static void
podio__log_init_pid(void)
{
	(void)pthread_atfork(NULL, NULL, podio__log_forked);
}

static long
podio__log_getpid(void)
{
	long pid;

	pthread_once(&podio__log_once, podio__log_init_pid);
	if ((pid = atomic_load(&podio__log_pid)) == 0) {
		pid = (long)getpid();
		atomic_store(&podio__log_pid, pid);
	}
	return pid;
}

static const char *const podio__log_names[] = {
	"error", "warn", "info", "debug"
};

/* See podio.h.  Out-of-range levels are clamped. */
void
podio_log_set_level(enum podio_log_level level)
{
	int n = (int)level;

	if (n < PODIO_LOG_ERROR)
		n = PODIO_LOG_ERROR;
	if (n > PODIO_LOG_DEBUG)
		n = PODIO_LOG_DEBUG;
	atomic_store(&podio__log_level, n);
}

/* See podio.h. */
enum podio_log_level
podio_log_get_level(void)
{
	return (enum podio_log_level)atomic_load(&podio__log_level);
}

/* See podio.h.  Names are matched exactly (lower case). */
int
podio_log_level_parse(const char *name)
{
	size_t i;

	if (name == NULL)
		return -1;
	for (i = 0; i < sizeof(podio__log_names) / sizeof(podio__log_names[0]);
	    i++)
		if (strcmp(name, podio__log_names[i]) == 0)
			return (int)i;
	return -1;
}

/* Opens the log file at path for appending (created 0640 if missing).
 * Returns the descriptor, or -1 with errno set. */
static int
podio__log_open(const char *path)
{
	return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC |
	    O_NOCTTY, 0640);
}

/*
 * See podio.h.  A new file is opened before the old target is let go, so
 * a failure leaves the previous target in place.  The file is created
 * with mode 0640 if missing and always appended to.
 */
enum podio_err
podio_log_set_target(const char *target)
{
	enum podio__log_kind kind, old_kind;
	char *path = NULL, *old_path;
	int fd = -1, old_fd;

	if (target == NULL)
		return PODIO_ERR_INVALID;
	if (strcmp(target, "stderr") == 0)
		kind = PODIO__LOG_STDERR;
	else if (strcmp(target, "syslog") == 0)
		kind = PODIO__LOG_SYSLOG;
	else if (strncmp(target, "file:", 5) == 0 && target[5] != '\0') {
		kind = PODIO__LOG_FILE;
		if ((path = strdup(target + 5)) == NULL)
			return PODIO_ERR_NOMEM;
		fd = podio__log_open(path);
		if (fd == -1) {
			free(path);
			return PODIO_ERR_IO;
		}
	} else
		return PODIO_ERR_INVALID;

	pthread_rwlock_wrlock(&podio__log_lock);
	old_kind = podio__log_kind;
	old_fd = podio__log_fd;
	old_path = podio__log_path;
	if (kind == PODIO__LOG_SYSLOG && old_kind != PODIO__LOG_SYSLOG)
		openlog(PODIO__LOG_IDENT, LOG_PID, LOG_DAEMON);
	else if (kind != PODIO__LOG_SYSLOG && old_kind == PODIO__LOG_SYSLOG)
		closelog();
	podio__log_kind = kind;
	podio__log_fd = fd;
	podio__log_path = path;
	podio__log_gen++;
	pthread_rwlock_unlock(&podio__log_lock);

	if (old_fd != -1)
		close(old_fd);
	free(old_path);
	return PODIO_OK;
}

/*
 * See log.h.  The path is opened anew before the old descriptor is let
 * go: lines written meanwhile go to the old file (renamed by a rotation),
 * later ones to the new, none is lost.  The file is opened outside the
 * write lock, so logging threads never wait for the open; should the
 * target change meanwhile, the new descriptor is dropped.
 */
enum podio_err
podio__log_reopen(void)
{
	unsigned long gen;
	int fd = -1, old_fd = -1, saved;

	pthread_rwlock_rdlock(&podio__log_lock);
	gen = podio__log_gen;
	if (podio__log_kind == PODIO__LOG_FILE && podio__log_path != NULL)
		fd = podio__log_open(podio__log_path);
	else {
		pthread_rwlock_unlock(&podio__log_lock);
		return PODIO_OK;  /* no file: nothing to reopen */
	}
	saved = errno;
	pthread_rwlock_unlock(&podio__log_lock);
	if (fd == -1) {
		errno = saved;
		return PODIO_ERR_IO;
	}

	pthread_rwlock_wrlock(&podio__log_lock);
	if (podio__log_gen == gen) {
		old_fd = podio__log_fd;
		podio__log_fd = fd;
		fd = -1;
	}
	pthread_rwlock_unlock(&podio__log_lock);
	if (fd != -1)
		close(fd);
	if (old_fd != -1)
		close(old_fd);
	return PODIO_OK;
}

/*
 * Makes text (len bytes) one printable line in place: control characters
 * become spaces and trailing white space is dropped.  Returns the new
 * length.
 */
static size_t
podio__log_flatten(char *text, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if ((unsigned char)text[i] < 0x20 || text[i] == 0x7f)
			text[i] = ' ';
	while (len > 0 && text[len - 1] == ' ')
		len--;
	return len;
}

/*
 * Cuts text of len bytes to at most max bytes without splitting a UTF-8
 * sequence.  Returns the new length.
 */
static size_t
podio__log_cut(const char *text, size_t len, size_t max)
{
	if (len <= max)
		return len;
	len = max;
	/* Step back over continuation bytes to the start of a sequence,
	 * and drop that incomplete sequence too. */
	while (len > 0 && ((unsigned char)text[len] & 0xc0) == 0x80)
		len--;
	return len;
}

/*
 * The lines a thread holds (podio__log_hold()), written together in one
 * write() of at most PIPE_BUF bytes, which keeps them whole beside the
 * lines of other threads and processes.
 */
static _Thread_local struct {
	int on;
	size_t len;
	char buf[PIPE_BUF];
} podio__log_held;

_Static_assert(PIPE_BUF >= PODIO__LOG_LINE,
    "a held buffer takes at least one whole line");

/* The descriptor of the stderr or file target; under podio__log_lock. */
static int
podio__log_target(void)
{
	return podio__log_kind == PODIO__LOG_FILE ? podio__log_fd :
	    STDERR_FILENO;
}

static void podio__log_write(int fd, const char *line, size_t len);

/* Writes the held lines to the target and empties the buffer; under
 * podio__log_lock.  Should the target have become syslog meanwhile,
 * each line goes there as a message of its own. */
static void
podio__log_put_held(void)
{
	char *p, *nl, *end = podio__log_held.buf + podio__log_held.len;

	if (podio__log_kind != PODIO__LOG_SYSLOG)
		podio__log_write(podio__log_target(), podio__log_held.buf,
		    podio__log_held.len);
	else
		for (p = podio__log_held.buf; p < end; p = nl + 1) {
			nl = memchr(p, '\n', (size_t)(end - p));
			if (nl == NULL)
				break;
			syslog(LOG_INFO, "%.*s", (int)(nl - p), p);
		}
	podio__log_held.len = 0;
}

/* Writes line (len bytes) to fd, normally in a single write(). */
static void
podio__log_write(int fd, const char *line, size_t len)
{
	ssize_t n;

	while (len > 0) {
		n = write(fd, line, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return;  /* nowhere left to report it */
		}
		line += n;
		len -= (size_t)n;
	}
}

/*
 * See podio.h.  Formats "podio-webhook[PID]: LEVEL: message\n" on the
 * stack (no allocation, so logging works when memory is short) and
 * writes it to the current target; syslog gets the message alone, as it
 * adds the ident and pid itself.  errno is preserved, so callers may log
 * before reporting errno.
 */
void
podio_log(enum podio_log_level level, const char *fmt, ...)
{
	static const int prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	char line[PODIO__LOG_LINE];
	char msg[PODIO__LOG_MSG + 1];
	va_list ap;
	size_t mlen, plen;
	int n, saved = errno, lv = (int)level;

	if (lv < PODIO_LOG_ERROR || lv > PODIO_LOG_DEBUG)
		lv = PODIO_LOG_ERROR;
	if (lv > atomic_load(&podio__log_level))
		return;

	va_start(ap, fmt);
	n = vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (n < 0) {
		podio__strlcpy(msg, "(unprintable log message)", sizeof(msg));
		n = (int)strlen(msg);
	}
	mlen = (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1;
	if ((size_t)n > PODIO__LOG_MSG - 3) {
		mlen = podio__log_cut(msg, mlen, PODIO__LOG_MSG - 3);
		memcpy(msg + mlen, "...", 4);
		mlen += 3;
	}
	mlen = podio__log_flatten(msg, mlen);
	msg[mlen] = '\0';

	pthread_rwlock_rdlock(&podio__log_lock);
	if (podio__log_kind == PODIO__LOG_SYSLOG)
		syslog(prio[lv], "%s", msg);
	else {
		n = snprintf(line, sizeof(line), "%s[%ld]: %s: ",
		    PODIO__LOG_IDENT, podio__log_getpid(),
		    podio__log_names[lv]);
		plen = n > 0 ? (size_t)n : 0;
		if (mlen == 0 && plen > 0)
			plen--;  /* no trailing blank after "LEVEL:" */
		/* line has room for the prefix, the message and "\n" */
		memcpy(line + plen, msg, mlen);
		line[plen + mlen] = '\n';
		if (podio__log_held.on) {
			if (podio__log_held.len + plen + mlen + 1 >
			    sizeof(podio__log_held.buf))
				podio__log_put_held();
			memcpy(podio__log_held.buf + podio__log_held.len,
			    line, plen + mlen + 1);
			podio__log_held.len += plen + mlen + 1;
		} else
			podio__log_write(podio__log_target(), line,
			    plen + mlen + 1);
	}
	pthread_rwlock_unlock(&podio__log_lock);
	errno = saved;
}

/* See log.h. */
void
podio__log_hold(void)
{
	podio__log_held.on = 1;
}

void
podio__log_flush(void)
{
	int saved = errno;

	if (podio__log_held.len == 0)
		return;
	pthread_rwlock_rdlock(&podio__log_lock);
	podio__log_put_held();
	pthread_rwlock_unlock(&podio__log_lock);
	errno = saved;
}

void
podio__log_release(void)
{
	podio__log_held.on = 0;
	podio__log_flush();
}

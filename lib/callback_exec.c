/*
 * callback_exec.c: the commands of "on" lines and the JSON-lines logs of
 * "log" lines, run for one event (see callback_int.h).
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
 * Nothing here keeps global state: many threads run commands at once.
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
#include "callback_int.h"
#include "log.h"
#include "util.h"

#if !defined(__GLIBC__) || !__GLIBC_PREREQ(2, 34)
#error "posix_spawn_file_actions_addclosefrom_np() (glibc 2.34) is needed"
#endif

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

/* See callback_int.h. */
void
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

/* See callback_int.h.  Line breaks in the event (only possible as white
 * space between JSON tokens) become spaces, so it stays one line. */
void
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

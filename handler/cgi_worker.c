/*
 * cgi_worker.c: the one detached worker per spool that CGI runs start
 * (see cgi_worker.h).
 *
 * The hand-over between a CGI run and a worker that is about to end:
 *  - a run stores its event first, then looks at the lock; when it is
 *    free the run starts a worker, which takes the lock for real (when
 *    that fails, whoever holds it took it after the event was stored,
 *    and a worker looks at the spool after taking the lock);
 *  - when the lock is held, the holder lets it go after the run's look,
 *    so after the event was stored; the holder looks for due events
 *    only after letting it go, finds the event, and takes the lock
 *    again (or, failing, leaves the event to the one that took it).
 * So an event stored while a worker ends is never left for cron alone.
 */

#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "podio.h"
#include "cgi_worker.h"
#include "process.h"
#include "process_spool.h"
#include "spool.h"

#define CGI_WORKER_LOCK_NAME "cgi-worker.lock"
/* How long a worker that caught up waits for more, and how often it
 * looks meanwhile (one indexed query). */
#define CGI_WORKER_LINGER_MS 1000
#define CGI_WORKER_POLL_MS   25

/* Opens DIR/cgi-worker.lock (created 0600 when missing, and DIR 0700:
 * with a PostgreSQL spool nothing else makes it); -1 on error. */
static int
cgi_worker_open(const char *dir)
{
	char path[4096];
	int fd, n;

	n = snprintf(path, sizeof(path), "%s/" CGI_WORKER_LOCK_NAME, dir);
	if (n < 0 || (size_t)n >= sizeof(path))
		return -1;
	while ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW,
	    0600)) < 0 && errno == EINTR)
		;
	if (fd < 0 && errno == ENOENT && mkdir(dir, 0700) == 0)
		while ((fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC |
		    O_NOFOLLOW, 0600)) < 0 && errno == EINTR)
			;
	return fd;
}

/*
 * Tries the flock op (LOCK_EX or LOCK_SH) of dir's worker lock without
 * waiting: 1 with *fd the descriptor that holds it (close it to let it
 * go), 0 when another holds it, -1 when it cannot be opened or locked.
 */
static int
cgi_worker_try(const char *dir, int op, int *fd)
{
	int rc;

	*fd = -1;
	if ((*fd = cgi_worker_open(dir)) < 0)
		return -1;
	while ((rc = flock(*fd, op | LOCK_NB)) != 0 && errno == EINTR)
		;
	if (rc == 0)
		return 1;
	rc = errno == EWOULDBLOCK ? 0 : -1;
	close(*fd);
	*fd = -1;
	return rc;
}

/* See cgi_worker.h. */
int
cgi_worker_busy(const char *dir)
{
	int fd, rc;

	/* A shared lock: runs looking at once do not see each other as a
	 * worker.  A worker trying the lock meanwhile fails and leaves the
	 * spool to the worker this run then starts. */
	rc = cgi_worker_try(dir, LOCK_SH, &fd);
	if (fd >= 0)
		close(fd);
	return rc == 0;
}

/* Whether spool holds an event due now, settle window or not (an event
 * in its window is waited for by the next turn, within the budget). */
static int
cgi_worker_due(struct podio_spool *spool)
{
	int64_t when = 0;

	if (podio_spool_next_due(spool, NULL, &when) != PODIO_OK)
		return 0;
	return when > 0 && when <= process_now_ms();
}

/* What a worker's turns have handled so far. */
static size_t
cgi_worker_handled(const struct process_counts *c)
{
	return c->done + c->retry + c->dead + c->errors;
}

/*
 * Waits, holding the lock, for an event to become due, for at most
 * CGI_WORKER_LINGER_MS and not past deadline: 1 when one did, else 0.
 * A burst of CGI runs then finds the worker still there instead of
 * starting one each time the worker has caught up.
 */
static int
cgi_worker_linger(struct podio_spool *spool, int64_t deadline)
{
	struct timespec ts;
	int64_t now, end, ms;

	now = process_now_ms();
	end = now + CGI_WORKER_LINGER_MS;
	if (end > deadline)
		end = deadline;
	while (now < end) {
		ms = end - now < CGI_WORKER_POLL_MS ? end - now :
		    CGI_WORKER_POLL_MS;
		ts.tv_sec = (time_t)(ms / 1000);
		ts.tv_nsec = (long)(ms % 1000) * 1000000L;
		(void)nanosleep(&ts, NULL);
		if (cgi_worker_due(spool))
			return 1;
		now = process_now_ms();
	}
	return 0;
}

/*
 * One worker process: takes the lock and works turn after turn (see the
 * top of this file) until nothing is due, its lock is taken by another,
 * or its budget is spent.  Returns 1 when events are due past the budget
 * (a successor should go on), else 0.
 */
static int
cgi_worker_turns(struct runtime *rt, int64_t budget_ms)
{
	struct process_counts counts;
	struct process_spool *ps = NULL;
	struct podio_client *client = NULL;
	struct podio_spool *spool;
	const char *dir = podio_config_get(rt->cfg, "spool_dir");
	char err[256];
	int64_t deadline = 0;
	size_t before;
	int fd = -1, looked = 0, stuck = 0, successor = 0;
	long pid = (long)getpid();

	if (cgi_worker_try(dir, LOCK_EX, &fd) != 1)
		return 0;
	memset(&counts, 0, sizeof(counts));
	err[0] = '\0';
	if ((ps = process_spool_new()) == NULL ||
	    runtime_client(rt, &client) != PODIO_OK) {
		podio_log(PODIO_LOG_ERROR, "cannot process the spool: out of "
		    "memory");
		goto fail;
	}
	if ((spool = process_spool_get(ps, podio_config_spool(rt->cfg), err,
	    sizeof(err))) == NULL) {
		podio_log(PODIO_LOG_ERROR, "cannot open the spool: %s", err);
		goto fail;
	}
	/* The budget is for work: it starts once the spool is open. */
	deadline = process_now_ms() + budget_ms;
	for (;;) {
		podio_log(PODIO_LOG_INFO, "cgi worker pid=%ld started", pid);
		for (;;) {
			before = cgi_worker_handled(&counts);
			(void)process_drain(rt, client, spool, deadline, NULL,
			    &counts);
			/* Due events a look found, but none taken: they
			 * cannot be taken now (another process holds them,
			 * or the API is paused), and looking again would
			 * only spin.  Unless the budget ran out first (a
			 * look just before the deadline): then a successor
			 * takes them. */
			if (looked && cgi_worker_handled(&counts) == before) {
				if (process_now_ms() < deadline)
					stuck = 1;
				break;
			}
			if (!(looked = cgi_worker_linger(spool, deadline)))
				break;
		}
		podio_log(PODIO_LOG_INFO, "cgi worker pid=%ld ended: %zu done, "
		    "%zu to retry, %zu dead", pid, counts.done, counts.retry,
		    counts.dead);
		close(fd);
		fd = -1;
		/* A run that saw the lock held before it went stored its
		 * event before: the look after letting go finds it. */
		if (stuck || !(looked = cgi_worker_due(spool)))
			break;
		if (process_now_ms() >= deadline) {
			/* A successor only after progress: a budget too
			 * short for one event would fork for ever. */
			if (cgi_worker_handled(&counts) > 0)
				successor = 1;
			else
				podio_log(PODIO_LOG_WARN, "cgi_budget %lld ms "
				    "ended before one event was handled; due "
				    "events wait for the next request or "
				    "'spool drain'", (long long)budget_ms);
			break;
		}
		if (cgi_worker_try(dir, LOCK_EX, &fd) != 1)
			break;
	}
fail:
	if (fd >= 0)
		close(fd);
	podio_client_free(client);
	process_spool_free(ps);
	return successor;
}

/* See cgi_worker.h. */
void
cgi_worker_run(struct runtime *rt, int64_t budget_ms)
{
	pid_t pid;

	while (cgi_worker_turns(rt, budget_ms)) {
		/* The spool and the client were closed: neither may cross a
		 * fork.  The successor is the parent's only child and is
		 * left to init when the parent exits. */
		if ((pid = fork()) < 0) {
			podio_log(PODIO_LOG_WARN, "cannot fork to go on with "
			    "the spool: %s; due events wait for the next "
			    "request or 'spool drain'", strerror(errno));
			return;
		}
		if (pid > 0)
			return;
	}
}

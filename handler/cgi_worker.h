/*
 * cgi_worker.h: the one detached worker per spool that CGI runs start.
 *
 * A CGI run that stored an event answers and then, unless a worker
 * already holds the spool's worker lock (DIR/cgi-worker.lock, an
 * flock), starts one.  The worker takes the lock, works through the
 * spool for at most cgi_budget, lets the lock go, and then looks once
 * more: an event stored by a run that saw the lock held is due by then,
 * and the worker takes the lock again for it (or, past its budget,
 * starts a successor).  The kernel drops the lock of a killed worker.
 */
#ifndef PODIO_HANDLER_CGI_WORKER_H
#define PODIO_HANDLER_CGI_WORKER_H

#include <stdint.h>

#include "runtime.h"

/*
 * Whether a worker holds the worker lock of spool directory dir now: 1
 * when one does, 0 when it is free or cannot be told (the worker started
 * then finds out for itself).  Cheap: one open and one flock, no fork.
 */
int cgi_worker_busy(const char *dir);

/*
 * The worker: runs in a detached process with rt's configuration (its
 * log already set up).  Takes the worker lock of spool_dir, or returns
 * at once when another worker holds it; works through the spool for at
 * most budget_ms (see the top of this file), logging each time it takes
 * and lets go the lock with its PID, at info level.  When events are due
 * past the budget, it forks a successor, which goes on with a budget of
 * its own.  Returns when the calling process has nothing left to do (in
 * the successor too, once it is done): the caller then exits.
 */
void cgi_worker_run(struct runtime *rt, int64_t budget_ms);

#endif

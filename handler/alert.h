/*
 * alert.h: the on_dead command, run once each time an event becomes a
 * dead letter (by a processor of `serve` or of a FastCGI server, the
 * CGI worker, or `spool drain`: all of them set events aside in
 * process.c).
 */
#ifndef PODIO_HANDLER_ALERT_H
#define PODIO_HANDLER_ALERT_H

#include "spool.h"
#include "runtime.h"

/*
 * Runs rt's on_dead command (nothing when it has none) for ev, just set
 * aside as a dead letter for reason after attempts counted tries.  The
 * command gets one line of JSON on its standard input:
 *   {"event_id": N, "reason": "...", "attempts": N, "event": {...}}
 * "event" is the stored event (the event JSON without its item; null
 * when the record is not JSON), the reason is scrubbed of the
 * configured secrets; its environment is an `on` command's
 * (PODIO_EVENT_TYPE, PODIO_HOOK_ID, PODIO_ITEM_ID).  It runs in the
 * calling thread, for at most exec_timeout.  The outcome is logged
 * (info when it succeeded, warn when it failed); a failure changes
 * nothing else and the command is never run again for this death.
 */
void alert_dead(const struct runtime *rt, const struct podio_spool_event *ev,
    const char *reason, long attempts);

#endif

/*
 * alert.c: the on_dead command (see alert.h).
 *
 * It goes through the callbacks module like an `on` line (no shell, the
 * same environment, standard input and timeout), from a registry of its
 * own (runtime.c) so that it never runs for a live event.
 */
#include <config.h>

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "podio.h"
#include "alert.h"
#include "event.h"
#include "log.h"
#include "secret.h"
#include "util.h"

/* The longest stored event passed on (the spool's own cap), plus room
 * for the reason. */
#define ALERT_MAX (PODIO_SPOOL_MAX_EVENT + 4 * PODIO_SPOOL_MAX_REASON + 256)

/*
 * The JSON line of ev's death (see alert.h) into a new string *out
 * (caller frees) of *len bytes.  Returns 0, or -1 on out of memory.
 */
static int
alert_json(const struct runtime *rt, const struct podio_spool_event *ev,
    const char *reason, long attempts, char **out, size_t *len)
{
	struct podio__buf b = { NULL, 0, 0, ALERT_MAX };
	char *safe = NULL;
	int rc;

	*out = NULL;
	if ((safe = secret_scrub(rt->cfg, reason != NULL ? reason : "")) ==
	    NULL)
		return -1;
	rc = podio__buf_appendf(&b, "{\"event_id\": %" PRId64 ", \"reason\": ",
	    ev->id);
	if (rc == 0)
		rc = podio__json_string(&b, safe, strlen(safe));
	if (rc == 0)
		rc = podio__buf_appendf(&b, ", \"attempts\": %ld, \"event\": ",
		    attempts);
	if (rc == 0 && ev->event_json != NULL &&
	    podio__json_valid(ev->event_json, ev->event_len))
		rc = podio__buf_append(&b, ev->event_json, ev->event_len);
	else if (rc == 0)
		rc = podio__buf_append(&b, "null", 4);
	if (rc == 0)
		rc = podio__buf_append(&b, "}", 1);
	free(safe);
	if (rc != 0) {
		podio__buf_free(&b);
		return -1;
	}
	*len = b.len;
	if ((*out = podio__buf_steal(&b)) == NULL)
		return -1;
	return 0;
}

/* See alert.h. */
void
alert_dead(const struct runtime *rt, const struct podio_spool_event *ev,
    const char *reason, long attempts)
{
	struct podio_callback_report *rep = NULL;
	struct podio_callback_ids ids;
	char item[32], line[PODIO_CALLBACK_DETAIL_MAX + 512], *json = NULL;
	const char *type;
	size_t len = 0;
	enum podio_err rc;

	if (rt->on_dead == NULL)
		return;
	snprintf(item, sizeof(item), "-");
	if (ev->has & PODIO_HAS_ITEM_ID)
		snprintf(item, sizeof(item), "%" PRIu64, ev->item_id);
	type = ev->type != NULL && ev->type[0] != '\0' ? ev->type : "unknown";
	if (alert_json(rt, ev, reason, attempts, &json, &len) != 0) {
		podio_log(PODIO_LOG_ERROR, "event id=%" PRId64 " type=%s "
		    "hook_id=%" PRIu64 " item_id=%s: on_dead not run: out of "
		    "memory", ev->id, type, ev->hook_id, item);
		return;
	}
	memset(&ids, 0, sizeof(ids));
	ids.has_hook_id = 1;
	ids.hook_id = ev->hook_id;
	ids.has_item_id = (ev->has & PODIO_HAS_ITEM_ID) != 0;
	ids.item_id = ev->item_id;
	podio__log_flush();  /* no held line waits for the command */
	rc = podio_callbacks_run(rt->on_dead, type, &ids, json, len,
	    rt->exec_timeout_ms, &rep);
	if (rep != NULL && rep->n == 1)
		podio_callback_result_format(&rep->results[0], line,
		    sizeof(line));
	else
		snprintf(line, sizeof(line), "%s", podio_strerror(rc));
	podio_log(rc == PODIO_OK ? PODIO_LOG_INFO : PODIO_LOG_WARN,
	    "event id=%" PRId64 " type=%s hook_id=%" PRIu64 " item_id=%s: "
	    "on_dead %s: %s", ev->id, type, ev->hook_id, item,
	    rc == PODIO_OK ? "ran" : "failed", line);
	podio_callback_report_free(rep);
	free(json);
}

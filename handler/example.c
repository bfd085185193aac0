/*
 * example.c: a program with its own C callbacks that does everything
 * podio-webhook does (see podio-webhook.h).  Build it next to the
 * handler, then use it wherever podio-webhook would go: behind nginx
 * with `podio-webhook-example serve --listen unix:/run/x.sock`, as a CGI
 * program, or to try a saved delivery with `podio-webhook-example emit
 * FILE`.
 *
 * Each event arrives as one line of JSON (the same text "on" commands
 * read on stdin):
 *
 *	{"type": "item.update", "hook_id": 1001, "item_id": 42,
 *	 "item_revision_id": 7, "params": {...}, "item": {...}}
 *
 * "item" is Podio's GET /item answer, present for item.create and
 * item.update.  Ids are printed exactly from 64-bit integers; a JSON
 * parser that keeps numbers as doubles (cJSON does) rounds those above
 * 2^53, so this example reads ids from "params", where they are strings.
 *
 * The functions log through podio_log(), which goes where log_target
 * says (stderr: the web server's error log).  They never print to
 * stdout: under CGI, stdout is the HTTP answer.  In the FastCGI modes
 * many events run at once in different threads, so callbacks must be
 * thread-safe: these keep no state but an atomic counter.
 */
#include <config.h>

#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "podio.h"
#include "podio-webhook.h"

/* How many item events this process has seen. */
static atomic_ulong example_events;

/*
 * Parses the event.  podio-webhook always hands a NUL-terminated text;
 * the end pointer is asked for so that cJSON's global error pointer is
 * never needed.  The caller frees the result with cJSON_Delete().
 */
static cJSON *
example_parse(const char *event_json)
{
	const char *end = NULL;

	return cJSON_ParseWithOpts(event_json, &end, 0);
}

/* The string member name of obj, or def. */
static const char *
example_string(const cJSON *obj, const char *name, const char *def)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : def;
}

/* item.create: log the new item's id and title. */
static int
example_item_created(const char *type, const char *event_json, size_t len,
    void *userdata)
{
	cJSON *ev;
	const cJSON *params, *item;

	(void)len;
	(void)userdata;
	if ((ev = example_parse(event_json)) == NULL)
		return 1;
	params = cJSON_GetObjectItemCaseSensitive(ev, "params");
	item = cJSON_GetObjectItemCaseSensitive(ev, "item");
	podio_log(PODIO_LOG_INFO, "example: %s: new item %s titled \"%s\"",
	    type, example_string(params, "item_id", "?"),
	    example_string(item, "title", "(no title)"));
	cJSON_Delete(ev);
	return 0;
}

/* item.update: log the item's id, title and revision. */
static int
example_item_updated(const char *type, const char *event_json, size_t len,
    void *userdata)
{
	cJSON *ev;
	const cJSON *params, *item, *rev;

	(void)len;
	(void)userdata;
	if ((ev = example_parse(event_json)) == NULL)
		return 1;
	params = cJSON_GetObjectItemCaseSensitive(ev, "params");
	item = cJSON_GetObjectItemCaseSensitive(ev, "item");
	rev = cJSON_GetObjectItemCaseSensitive(
	    cJSON_GetObjectItemCaseSensitive(item, "current_revision"),
	    "revision");
	podio_log(PODIO_LOG_INFO, "example: %s: item %s titled \"%s\" is now "
	    "at revision %d", type, example_string(params, "item_id", "?"),
	    example_string(item, "title", "(no title)"),
	    cJSON_IsNumber(rev) ? rev->valueint : -1);
	cJSON_Delete(ev);
	return 0;
}

/*
 * Every item event (item.create, item.update, item.delete): count it.
 * This one uses the _msg form: on failure it says why, and the reason
 * shows in the log and in `emit`'s report.  An item.create or
 * item.update whose item is gone by the time it was fetched carries
 * "item_error" instead of an item: reported as a failure here.
 */
static int
example_item_any(const char *type, const char *event_json, size_t len,
    char *msg, size_t msglen, void *userdata)
{
	cJSON *ev;
	const char *item_error;
	unsigned long n;
	int rc = 0;

	(void)len;
	(void)userdata;
	n = atomic_fetch_add(&example_events, 1) + 1;
	if ((ev = example_parse(event_json)) == NULL) {
		snprintf(msg, msglen, "the event is not JSON");
		return 1;
	}
	item_error = example_string(ev, "item_error", NULL);
	if (item_error != NULL) {
		snprintf(msg, msglen, "%s: the item is gone (%s)", type,
		    item_error);
		rc = 1;
	} else if (strcmp(type, "item.delete") == 0) {
		podio_log(PODIO_LOG_INFO, "example: item %s was deleted",
		    example_string(cJSON_GetObjectItemCaseSensitive(ev,
		    "params"), "item_id", "?"));
	}
	podio_log(PODIO_LOG_DEBUG, "example: %lu item events so far", n);
	cJSON_Delete(ev);
	return rc;
}

int
main(int argc, char **argv)
{
	struct podio_callbacks *reg;
	int status;

	if ((reg = podio_callbacks_new()) == NULL) {
		fprintf(stderr, "podio-webhook-example: out of memory\n");
		return 1;
	}
	/* Register everything before podio_webhook_main(): the registry is
	 * only read once events run. */
	if (podio_callbacks_on(reg, "item.create", example_item_created,
	    NULL) != PODIO_OK ||
	    podio_callbacks_on(reg, "item.update", example_item_updated,
	    NULL) != PODIO_OK ||
	    podio_callbacks_on_msg(reg, "item.*", example_item_any, NULL) !=
	    PODIO_OK) {
		fprintf(stderr, "podio-webhook-example: cannot register the "
		    "callbacks\n");
		podio_callbacks_free(reg);
		return 1;
	}
	status = podio_webhook_main(argc, argv, reg);
	podio_callbacks_free(reg);
	return status;
}

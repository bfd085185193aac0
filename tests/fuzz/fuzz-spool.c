/*
 * fuzz-spool.c: the spool's stored-event decoder: podio__sqlite_read_row()
 * (lib/spool_queue.c) over a row of any column types and values, as a
 * spool file damaged or written by something else may hold, then
 * podio__event_delivery() (lib/event.c) over its event JSON, as the
 * processors rebuild the delivery before running the callbacks.
 *
 * The row comes from an SQLite database in memory (SELECT of bound
 * values), so nothing is written to disk.
 *
 * Checked: a row is either sound (a known state, "bad" included for a
 * record set aside before, a valid type, an event that is valid JSON) or
 * set aside as bad with a reason in one printable line, and never taken
 * for out of memory; a delivery rebuilt from the
 * event has a valid type and a hook_id, and its own event decodes back
 * to the same type and ids; a refusal says why in one printable line.
 *
 * Input: 18 bytes giving the columns of SPOOL_COLS in order and then
 * the kind of the event column (see column() and the list below), then
 * the event's bytes.  A shorter input is an event JSON alone, in a
 * sound pending row.
 */
#include <config.h>

#include <sqlite3.h>

#include "podio.h"
#include "event.h"
#include "sqlite_int.h"
#include "webhook.h"
#include "fuzz.h"

#define NCOLS 18
#define NOW 1700000000000LL
/* A pending item.update of hook 1001, item 42, received a while ago. */
#define SOUND "1d453-9a0009-----t"

static const int64_t ints[] = {
	0, 1, -1, 2, 1001, 42, 1800000000000LL, INT64_MAX, INT64_MIN,
	1699999999000LL
};

static const struct {
	const char *s;
	int len;
} texts[] = {
	{ "pending", 7 }, { "dead", 4 }, { "bad", 3 }, { "item.update", 11 },
	{ "item.create", 11 }, { "hook.verify", 11 }, { "", 0 },
	{ "[\"fn:*#1\",\"log:*:/var/log/podio.jsonl#1\"]", 41 },
	{ "Item.Create", 11 }, { "x\xff", 2 }, { "connection refused", 18 },
	{ "item.update\0x", 13 }, { "12", 2 }, { "pending ", 8 },
	{ "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	  65 }, { "\xef\xbf\xbd", 3 },
};
#define NTEXTS (sizeof(texts) / sizeof(texts[0]))

/*
 * Binds column i from c: '-' NULL, '0'-'9' an integer of ints[], 'a'-'z'
 * a text of texts[], 'A'-'Z' the same as a blob, '.' a real, any other
 * byte an integer made of it.
 */
static int
column(sqlite3_stmt *st, int i, unsigned char c)
{
	if (c == '-')
		return sqlite3_bind_null(st, i);
	if (c >= '0' && c <= '9')
		return sqlite3_bind_int64(st, i, ints[c - '0']);
	if (c >= 'a' && c <= 'z')
		return sqlite3_bind_text(st, i, texts[(c - 'a') % NTEXTS].s,
		    texts[(c - 'a') % NTEXTS].len, SQLITE_STATIC);
	if (c >= 'A' && c <= 'Z')
		return sqlite3_bind_blob(st, i, texts[(c - 'A') % NTEXTS].s,
		    texts[(c - 'A') % NTEXTS].len, SQLITE_STATIC);
	if (c == '.')
		return sqlite3_bind_double(st, i, 1.5);
	return sqlite3_bind_int64(st, i, (int64_t)c * 1000003 - 100000000);
}

/* The event column: '-' NULL, 'b' a blob, 'n' an integer, else text. */
static int
event_column(sqlite3_stmt *st, unsigned char c, const char *ev, size_t n)
{
	switch (c) {
	case '-':
		return sqlite3_bind_null(st, NCOLS);
	case 'b':
		return sqlite3_bind_blob(st, NCOLS, ev, (int)n,
		    SQLITE_TRANSIENT);
	case 'n':
		return sqlite3_bind_int64(st, NCOLS, 42);
	default:
		return sqlite3_bind_text(st, NCOLS, ev, (int)n,
		    SQLITE_TRANSIENT);
	}
}

/* A statement giving one row of NCOLS bound values, kept for the run. */
static sqlite3_stmt *
statement(void)
{
	static sqlite3 *db;
	static sqlite3_stmt *st;
	char sql[256];
	size_t len;
	int i;

	if (st != NULL) {
		sqlite3_reset(st);
		sqlite3_clear_bindings(st);
		return st;
	}
	len = (size_t)snprintf(sql, sizeof(sql), "SELECT ?1");
	for (i = 2; i <= NCOLS; i++)
		len += (size_t)snprintf(sql + len, sizeof(sql) - len, ", ?%d",
		    i);
	if (sqlite3_open(":memory:", &db) != SQLITE_OK ||
	    sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		abort();
	return st;
}

/* A delivery rebuilt from a stored event: what podio_delivery_new()
 * promises, and its own event decodes back the same. */
static void
check_delivery(const struct podio_delivery *d)
{
	struct podio_delivery *back = NULL;
	char *json = NULL, why[256];
	size_t len = 0, i;
	uint64_t a, b;
	int has;

	FUZZ_CHECK(podio__spool_valid_type(d->type, strlen(d->type)) &&
	    (d->has & PODIO_HAS_HOOK_ID), "a delivery without type or hook");
	FUZZ_CHECK(podio_event_json(d, NULL, 0, NULL, NULL, 0, &json, &len) ==
	    PODIO_OK, "no event for a rebuilt delivery");
	why[0] = '\0';
	FUZZ_CHECK(podio__event_delivery(json, len, &back, why,
	    sizeof(why)) == PODIO_OK, "its event does not decode: %s", why);
	FUZZ_CHECK(strcmp(back->type, d->type) == 0, "type changed");
	for (i = 0; (has = podio__delivery_id(d, i, NULL, &a)) >= 0; i++)
		FUZZ_CHECK(podio__delivery_id(back, i, NULL, &b) == has &&
		    a == b, "id %zu changed", i);
	podio_delivery_free(back);
	free(json);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct podio_spool_event ev;
	struct podio_delivery *d = NULL;
	const unsigned char *head = (const unsigned char *)SOUND;
	const char *body = (const char *)data;
	sqlite3_stmt *st;
	char why[256];
	size_t n = size;
	int i, r;
	enum podio_err rc;

	if (size > 256 * 1024)
		return 0;
	if (size >= NCOLS) {
		head = data;
		body += NCOLS;
		n -= NCOLS;
	}
	st = statement();
	for (i = 0; i < NCOLS - 1; i++)
		if (column(st, i + 1, head[i]) != SQLITE_OK)
			abort();
	if (event_column(st, head[NCOLS - 1], body, n) != SQLITE_OK ||
	    sqlite3_step(st) != SQLITE_ROW)
		abort();

	why[0] = '\0';
	r = podio__sqlite_read_row(st, NOW, 1, &ev, why, sizeof(why));
	FUZZ_CHECK(r == 0 || r == 1, "read_row: %d", r);
	if (r == 0) {
		/* BAD too: a record set aside before reads back as such. */
		FUZZ_CHECK(ev.state == PODIO_SPOOL_PENDING ||
		    ev.state == PODIO_SPOOL_RETRYING ||
		    ev.state == PODIO_SPOOL_IN_FLIGHT ||
		    ev.state == PODIO_SPOOL_DEAD ||
		    ev.state == PODIO_SPOOL_BAD, "state %d", ev.state);
		FUZZ_CHECK(ev.type != NULL &&
		    podio__spool_valid_type(ev.type, strlen(ev.type)),
		    "a sound row with a bad type");
		FUZZ_CHECK(ev.event_json != NULL &&
		    podio__json_valid(ev.event_json, ev.event_len),
		    "a sound row with a bad event");
	} else
		FUZZ_CHECK(ev.state == PODIO_SPOOL_BAD && why[0] != '\0' &&
		    fuzz_printable(why), "bad row: state %d, reason %s",
		    ev.state, why);

	if (ev.event_json != NULL) {
		why[0] = '\0';
		rc = podio__event_delivery(ev.event_json, ev.event_len, &d,
		    why, sizeof(why));
		FUZZ_CHECK((rc == PODIO_OK) == (d != NULL), "delivery %d", rc);
		if (rc == PODIO_OK)
			check_delivery(d);
		else
			FUZZ_CHECK((rc == PODIO_ERR_BAD_JSON ||
			    rc == PODIO_ERR_INVALID ||
			    rc == PODIO_ERR_TOO_LARGE) && why[0] != '\0' &&
			    fuzz_printable(why), "refused %d: %s", rc, why);
		podio_delivery_free(d);
	}
	podio__spool_event_clear(&ev);
	return 0;
}

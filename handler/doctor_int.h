/*
 * doctor_int.h: what the two halves of doctor share: doctor.c (the
 * output, the configuration, the spool, the run) and doctor_api.c (the
 * API and the hooks).
 */
#ifndef PODIO_HANDLER_DOCTOR_INT_H
#define PODIO_HANDLER_DOCTOR_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "podio.h"
#include "spool.h"

/* The longest detail or fix text; longer ones are cut. */
#define DOCTOR_MSG_MAX 8192
/* The width of the "NAME:" column. */
#define DOCTOR_NAME_WIDTH 15
/* The most apps whose hooks are listed. */
#define DOCTOR_APPS_MAX 64

/* One run of doctor. */
struct doctor {
	const struct podio_config *cfg;   /* borrowed; NULL when it did not
	                                     load */
	int json;
	size_t lines;                     /* lines (objects) printed */
	size_t failed;
	int unreached;                    /* the API could not be used */
	char prog[1200];                  /* "podio-webhook [-c FILE]", for
	                                     the commands a fix names */
	char me[64];                      /* the running user's name */
	uid_t uid;

	struct podio_tokens *tokens;      /* owned; NULL: no complete
	                                     credentials */
	struct podio_client *client;      /* owned */
	int api_ok;                       /* the credential was accepted */

	struct podio_spool *spool;        /* owned; NULL when not opened */

	uint64_t apps[DOCTOR_APPS_MAX];   /* the apps whose hooks to check */
	size_t napps;
	/* The first app's hooks, listed by doctor_api() (listed 1). */
	int listed;
	enum podio_err list_rc;
	char list_msg[512];               /* the failure's message */
	long list_wait;                   /* a 420's wait, or -1 */
	struct podio_hook *hooks;         /* owned */
	size_t nhooks;
};

/*
 * Prints one check: ok or not, its name, the detail (fmt), and for a
 * failure what to do (fix, may be NULL): "ok   NAME: DETAIL", "FAIL
 * NAME: DETAIL; FIX", or a JSON object.  Both texts are scrubbed of the
 * configured secrets (of secret= values when there is no configuration)
 * and cut to DOCTOR_MSG_MAX.  A failure counts in d->failed.
 */
void doctor_line(struct doctor *d, int ok, const char *check,
    const char *fix, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* s as one word of a shell command, into buf (size n): as is when it has
 * nothing a shell would read, else in single quotes. */
void doctor_quote(const char *s, char *buf, size_t n);
/* A duration for people into buf: "42 s", "5 min", "3 h", "2 d". */
void doctor_age(int64_t ms, char *buf, size_t n);
/* The wall clock in ms since the epoch (what the spool keeps). */
int64_t doctor_now_ms(void);
/* Whether key has a non-empty value. */
int doctor_is_set(const struct podio_config *cfg, const char *key);
/* Whether the credentials are the app flow's (the flow
 * podio_tokens_new() prefers when both are complete). */
int doctor_app_flow(const struct podio_config *cfg);

/*
 * The checks of doctor_api.c, run in this order after those of the
 * configuration and the spool: api, credential and rate-limit
 * (doctor_api()); pause and outage, from the spool (doctor_pause());
 * hooks and one hook line per hook (doctor_hooks()).
 */
void doctor_api(struct doctor *d);
void doctor_pause(struct doctor *d);
void doctor_hooks(struct doctor *d);

#endif

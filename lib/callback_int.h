/*
 * callback_int.h: what callback.c (the registry, matching, running in
 * order) and callback_exec.c (commands and log files) share.  Internal.
 */
#ifndef PODIO_CALLBACK_INT_H
#define PODIO_CALLBACK_INT_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "podio.h"
#include "callback.h"

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

/* A pidfd for pid (close-on-exec), or -1 where the kernel (or a tool
 * running us) has none; then exits are found by polling waitid(). */
int podio__cb_pidfd(pid_t pid);

/* Runs the command of e (reg's environment) for one event of type with
 * ids, its JSON (len bytes) on the command's stdin, killed with its
 * process group after timeout_ms (0: no limit); fills res. */
void podio__cb_run_command(const struct podio_callbacks *reg,
    const struct podio__cb_entry *e, const char *type,
    const struct podio_callback_ids *ids, const char *json, size_t len,
    int64_t timeout_ms, struct podio_callback_result *res);

/* Appends the event JSON (len bytes) as one line to the log of e; fills
 * res. */
void podio__cb_run_log(const struct podio__cb_entry *e, const char *json,
    size_t len, struct podio_callback_result *res);

#endif

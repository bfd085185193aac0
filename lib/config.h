/*
 * config.h: internal view of struct podio_config (see podio.h).
 */
#ifndef PODIO_CONFIG_H
#define PODIO_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "podio.h"

/* Value types of keys. */
enum podio__cfg_type {
	PODIO__CFG_STRING,
	PODIO__CFG_SECRET,   /* a string never printed or logged */
	PODIO__CFG_DURATION, /* stored as ms */
	PODIO__CFG_SIZE,     /* bytes */
	PODIO__CFG_INT,
	PODIO__CFG_BOOL,     /* yes/no, true/false, on/off, 1/0 */
	PODIO__CFG_U64LIST   /* comma-separated unsigned 64-bit ids */
};

/* Most ids of one PODIO__CFG_U64LIST value. */
#define PODIO__CFG_IDS_MAX   1024

/* A signed decimal integer: optional '-', digits, nothing else.  Returns
 * 0 with *out set, or -1. */
int podio__cfg_parse_int(const char *text, int64_t *out);

/* yes/no, true/false, on/off, 1/0 (any case) as 1 or 0 in *out.  Returns
 * 0, or -1 for anything else. */
int podio__cfg_parse_bool(const char *text, int64_t *out);

/*
 * Parses "1, 2,3" into a new array *ids of *n ids (caller frees) and
 * writes the canonical text ("1,2,3") into a new string *canon (caller
 * frees).  Returns PODIO_OK, PODIO_ERR_NOMEM, or PODIO_ERR_CONFIG on a
 * malformed list or more than PODIO__CFG_IDS_MAX ids.
 */
enum podio_err podio__cfg_parse_ids(const char *text, uint64_t **ids,
    size_t *n, char **canon);

/* The canonical text of a duration (ms) into out (size outlen): the
 * largest unit that divides it. */
void podio__cfg_fmt_duration(int64_t ms, char *out, size_t outlen);

/* The canonical text of a size (bytes) into out (size outlen): M or K
 * when exact, else bytes. */
void podio__cfg_fmt_size(int64_t bytes, char *out, size_t outlen);

/*
 * The ids of a PODIO__CFG_U64LIST key: *ids (borrowed from cfg, valid
 * until the key is set again or cfg is freed) and their count *n.
 * Returns 0, or -1 when key is not a list key (then *ids = NULL, *n = 0).
 * An unset list gives 0 ids.
 */
int podio__config_get_ids(const struct podio_config *cfg, const char *key,
    const uint64_t **ids, size_t *n);

/*
 * The parser of podio_config_load_file() (see podio.h) over text in
 * memory: len bytes, followed by a NUL byte (text[len] == '\0'), which
 * it cuts into lines in place; the caller still owns the text, and wipes
 * it (it may hold secrets) and frees it.  name stands for the file in
 * messages ("NAME:LINE: reason") and in the rules' file:line.  Returns
 * as podio_config_load_file() does, without its PODIO_ERR_IO and its
 * size cap (the reader's business); on failure cfg is unchanged.
 */
enum podio_err podio__config_load_text(struct podio_config *cfg,
    const char *name, char *text, size_t len, char *err, size_t errlen);

/*
 * Splits a command written as in an "on" line (the value of on_dead)
 * into a new NULL-terminated argv: words separated by spaces and tabs,
 * double quotes group, and inside them a backslash escapes '"' or '\\';
 * argv[0] must be an absolute path.  The caller frees it with
 * podio__config_argv_free().  Returns PODIO_OK, PODIO_ERR_NOMEM or
 * PODIO_ERR_CONFIG with a reason in why that never quotes the command.
 */
enum podio_err podio__config_split(const char *cmd, char ***argv, char *why,
    size_t whylen);
/* Wipes (arguments may carry tokens) and frees such an argv.  Accepts
 * NULL. */
void podio__config_argv_free(char **argv);

/* One row of the key table, as the reference of the keys shows it
 * (podio-webhook.conf(5), CONFIGURATION.md).  Strings are static. */
struct podio__cfg_key_info {
	const char *name;
	enum podio__cfg_type type;
	const char *def;   /* the default's text; NULL: unset by default */
	const char *help;  /* one or two sentences; `...` marks literal text */
	int keep_empty;    /* an empty value means something (not "unset") */
};

/* Fills *out with row i of the key table (in the order of
 * podio_config_key_name()).  Returns 0, or -1 past the last row. */
int podio__config_key_info(size_t i, struct podio__cfg_key_info *out);

#endif

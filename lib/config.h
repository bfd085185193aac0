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

/*
 * The ids of a PODIO__CFG_U64LIST key: *ids (borrowed from cfg, valid
 * until the key is set again or cfg is freed) and their count *n.
 * Returns 0, or -1 when key is not a list key (then *ids = NULL, *n = 0).
 * An unset list gives 0 ids.
 */
int podio__config_get_ids(const struct podio_config *cfg, const char *key,
    const uint64_t **ids, size_t *n);

#endif

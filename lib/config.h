/*
 * config.h: internal view of struct podio_config (see podio.h).
 */
#ifndef PODIO_CONFIG_H
#define PODIO_CONFIG_H

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

#endif

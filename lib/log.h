/*
 * log.h: internal logging shortcuts over podio_log() (see podio.h).
 */
#ifndef PODIO_LOG_H
#define PODIO_LOG_H

#include "podio.h"

#define podio__err(...)   podio_log(PODIO_LOG_ERROR, __VA_ARGS__)
#define podio__warn(...)  podio_log(PODIO_LOG_WARN, __VA_ARGS__)
#define podio__info(...)  podio_log(PODIO_LOG_INFO, __VA_ARGS__)
#define podio__debug(...) podio_log(PODIO_LOG_DEBUG, __VA_ARGS__)

#endif

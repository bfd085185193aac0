/*
 * reference.h: the reference of the configuration keys, printed from
 * the program's own key table for podio-webhook.conf(5) and
 * CONFIGURATION.md (`podio-webhook config --reference=man|md`).
 */
#ifndef PODIO_HANDLER_REFERENCE_H
#define PODIO_HANDLER_REFERENCE_H

#include <stdio.h>

/*
 * Prints every key of the table, in its order, to fp: its name, type,
 * default, environment variable and description, as roff lines for the
 * KEYS section of the manual (format "man") or as Markdown (format
 * "md").  A default under the compiled-in state directory is printed
 * with "@podio_statedir@" in its place, for the build to substitute.
 * Returns 0, or -1 for an unknown format (nothing printed).
 */
int reference_print(FILE *fp, const char *format);

#endif

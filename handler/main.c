/*
 * main.c: the entry point of podio-webhook: the run function of
 * podio-webhook.h without C callbacks, so events reach only the
 * configuration's "on" and "log" lines.  Programs with their own C
 * callbacks call podio_webhook_main() the same way (handler/example.c).
 */
#include <config.h>

#include "podio-webhook.h"

int
main(int argc, char **argv)
{
	return podio_webhook_main(argc, argv, NULL);
}

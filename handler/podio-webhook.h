/*
 * podio-webhook.h: run podio-webhook from your own program, with your
 * own C callbacks.
 *
 * The C counterpart of the `switch (request["type"])` of Podio's webhook
 * examples: register a function per event type or pattern in a
 * struct podio_callbacks (see podio.h), then hand argc, argv and the
 * registry to podio_webhook_main() from main().  Your program then does
 * everything podio-webhook does - FastCGI on a socket inherited on fd 0,
 * CGI, `serve`, `emit` and the other commands - and every event also
 * reaches your functions:
 *
 *	static int
 *	on_item(const char *type, const char *event_json, size_t len,
 *	    void *userdata)
 *	{
 *		... parse event_json, do the work ...
 *		return 0;            (anything else counts as a failure)
 *	}
 *
 *	int
 *	main(int argc, char **argv)
 *	{
 *		struct podio_callbacks *reg = podio_callbacks_new();
 *		int status;
 *
 *		podio_callbacks_on(reg, "item.*", on_item, NULL);
 *		status = podio_webhook_main(argc, argv, reg);
 *		podio_callbacks_free(reg);
 *		return status;
 *	}
 *
 * For each event your functions run first, in the order registered, then
 * the commands and logs of the configuration's "on" and "log" lines.  In
 * the FastCGI modes many events run at once in different threads, so a
 * function must be thread-safe.  hook.verify is answered by the handler
 * and reaches no callback.  See handler/example.c.
 */
#ifndef PODIO_WEBHOOK_MAIN_H
#define PODIO_WEBHOOK_MAIN_H

#include "podio.h"

#ifdef __cplusplus
extern "C" {
#endif

/*
 * Runs podio-webhook with the command line argc/argv and the C callbacks
 * of reg (borrowed; may be NULL; register everything before the call and
 * leave it alone until the call returns).  Chooses the mode as
 * podio-webhook does: a listening socket on fd 0 makes a FastCGI server
 * (global options and "serve --workers N" allowed in argv); else
 * GATEWAY_INTERFACE in the environment makes a CGI request, and then argv
 * is ignored entirely; else argv is the command line.  It sets SIGPIPE
 * to be ignored.  Returns the exit status (0 success, 1 failure or Podio
 * answered with an error, 2 usage or configuration error, 3 Podio could
 * not be reached).
 */
int podio_webhook_main(int argc, char **argv,
    const struct podio_callbacks *reg);

#ifdef __cplusplus
}
#endif
#endif /* PODIO_WEBHOOK_MAIN_H */

/*
 * fuzz-fcgi.c: the FastCGI record reader of the server, as its reader
 * thread drives it: the input (after its first byte, which sets how it
 * is cut into reads) is what a peer sends on a connection; each request
 * that arrives is read and answered as a worker would, a refusal as the
 * reader does, and the kept bytes of a next request are fed on.
 *
 * Checked: the reader never holds more than the variables' bound and
 * the body it waits for, a request handed on has its whole declared
 * body or a stream that ended, and it never reads or writes out of
 * bounds (the sanitizers).  The connection is one end of a socket pair
 * whose other end is emptied after each step.
 */
#include <config.h>

#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

#include "../../handler/fcgi_proto.c"
#include "../../handler/fcgi_io.c"

/* The variables' bound and the largest body, small so that the fuzzer
 * reaches them. */
#define FUZZ_PARAMS_MAX 2048
#define FUZZ_BODY_MAX   4096

/* What request.c does for a refusal: one answer, through io. */
void
request_answer_error(const struct request_io *io, int status,
    const char *reason)
{
	char line[256];
	int n;

	n = snprintf(line, sizeof(line), "Status: %d\r\n\r\n%s\n", status,
	    reason);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)io->write(io->ctx, line, (size_t)n);
}

/* The rules' head(): a POST waits for its CONTENT_LENGTH (at most
 * FUZZ_BODY_MAX); anything else is decided on its head. */
static int
fuzz_head(void *ctx, const struct request_io *io, uint64_t *need)
{
	const char *m = io->param(io->ctx, "REQUEST_METHOD");
	const char *cl = io->param(io->ctx, "CONTENT_LENGTH");
	char *end;
	unsigned long v;

	(void)ctx;
	*need = 0;
	if (m == NULL || strcmp(m, "POST") != 0 || cl == NULL)
		return 1;
	v = strtoul(cl, &end, 10);
	if (*end != '\0' || v > FUZZ_BODY_MAX)
		return 1;
	*need = v;
	return 0;
}

/* Empties the peer's end of the pair. */
static void
fuzz_drain(int fd)
{
	char buf[4096];

	while (recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
		;
}

/* A request that arrived, handled as a worker would: every byte of its
 * body read, an answer written and sent.  Returns 0, or -1 when the
 * connection is to be closed. */
static int
fuzz_serve(struct fcgi_io_conn *c, int peer)
{
	struct request_io io;
	char buf[512];
	size_t total = 0;
	ssize_t r;
	static const char answer[] = "Status: 200 OK\r\n\r\nok\n";

	FUZZ_CHECK(fcgi_io_conn_state(c) == FCGI_IO_READY, "state %d",
	    (int)fcgi_io_conn_state(c));
	fcgi_io_conn_request(c, &io);
	(void)io.param(io.ctx, "CONTENT_TYPE");
	(void)io.param(io.ctx, "QUERY_STRING");
	while ((r = io.read(io.ctx, buf, sizeof(buf))) > 0)
		total += (size_t)r;
	FUZZ_CHECK(r == 0 && total <= FUZZ_BODY_MAX, "read %zu", total);
	FUZZ_CHECK(io.write(io.ctx, answer, sizeof(answer) - 1) == 0,
	    "write");
	r = fcgi_io_conn_answer(c);
	fuzz_drain(peer);
	if (r != 0 || !fcgi_io_conn_kept(c))
		return -1;
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fcgi_io_rules rules = { fuzz_head, NULL, FUZZ_PARAMS_MAX };
	struct fcgi_io_conn *c;
	enum fcgi_io_verdict v;
	size_t i = 1, step, cut;
	int sv[2], done = 0;

	if (size < 1)
		return 0;
	cut = 1 + data[0] % 97;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		return 0;
	if ((c = fcgi_io_conn_new(sv[0])) == NULL)
		abort();
	while (!done && i < size) {
		step = size - i < cut ? size - i : cut;
		v = fcgi_io_conn_input(c, data + i, step, &rules);
		i += step;
		for (;;) {
			FUZZ_CHECK(fcgi_io_conn_held(c) <= FUZZ_PARAMS_MAX +
			    FUZZ_BODY_MAX, "held %zu", fcgi_io_conn_held(c));
			fuzz_drain(sv[1]);
			if (v == FCGI_IO_MORE)
				break;
			if (v == FCGI_IO_CLOSE) {
				done = 1;
				break;
			}
			if (v == FCGI_IO_REFUSE) {
				fcgi_io_conn_refuse(c);
				done = 1;
				break;
			}
			if (fuzz_serve(c, sv[1]) != 0) {
				done = 1;
				break;
			}
			if (!fcgi_io_conn_has_rest(c))
				break;
			v = fcgi_io_conn_input(c, NULL, 0, &rules);
		}
	}
	fuzz_drain(sv[1]);
	fcgi_io_conn_free(c);
	close(sv[1]);
	return 0;
}

/*
 * cgi-minimal.c: the first reference of the CGI benchmark
 * (tests/bench/cgi).  A CGI program that reads CONTENT_LENGTH bytes of
 * the request body from standard input and answers 200 with a short
 * plain-text body, nothing else: no parsing, no storage, no library
 * beyond libc.  What Apache's mod_cgid costs per request, with the
 * cheapest program it can start.
 *
 * A body longer than MINIMAL_BODY_MAX, or a CONTENT_LENGTH that is not a
 * number, is answered 413 or 400 (its body unread), as a real program
 * would refuse it.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MINIMAL_BODY_MAX (1024 * 1024)

/*
 * Reads and drops len bytes of standard input.  Returns 0 when they were
 * all read, -1 on an early end of input or a read error.
 */
static int
minimal_drain(unsigned long len)
{
	char buf[8192];

	while (len > 0) {
		size_t want = len < sizeof(buf) ? (size_t)len : sizeof(buf);
		ssize_t got = read(STDIN_FILENO, buf, want);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		len -= (unsigned long)got;
	}
	return 0;
}

static void
minimal_answer(const char *status, const char *text)
{
	printf("Status: %s\r\nContent-Type: text/plain\r\n"
	    "Content-Length: %zu\r\n\r\n%s", status, strlen(text), text);
}

int
main(void)
{
	const char *cl = getenv("CONTENT_LENGTH");
	unsigned long len = 0;
	char *end = NULL;

	if (cl != NULL && *cl != '\0') {
		errno = 0;
		len = strtoul(cl, &end, 10);
		if (errno != 0 || *end != '\0' || *cl == '-') {
			minimal_answer("400 Bad Request", "bad length\n");
			return 0;
		}
	}
	if (len > MINIMAL_BODY_MAX) {
		minimal_answer("413 Payload Too Large", "too large\n");
		return 0;
	}
	if (minimal_drain(len) != 0) {
		minimal_answer("400 Bad Request", "short body\n");
		return 0;
	}
	minimal_answer("200 OK", "ok\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

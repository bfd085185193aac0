/*
 * cgi-minimal.c: the references of the CGI benchmark (tests/bench/cgi).
 * A CGI program that reads CONTENT_LENGTH bytes of the request body from
 * standard input and answers 200 with a short plain-text body, nothing
 * else: no parsing, no storage, no library beyond libc.  What Apache's
 * mod_cgid costs per request, with the cheapest program it can start.
 *
 * Given MINIMAL_SYNC_FILE in its environment (a path), it is the durable
 * reference instead: the body, and a newline, is appended to that file
 * (opened with O_APPEND, created 0600 when missing) in one write, and the
 * 200 comes only after fdatasync() of the file returned: what any CGI
 * program that answers only once a delivery is on disk costs on this
 * machine, with no parsing, no database and no record format.  Each
 * append moves the end of the file, so each flush writes the file's size
 * too, as a log that grows does.  A failed open, write or flush is
 * answered 503.
 *
 * A body longer than MINIMAL_BODY_MAX, or a CONTENT_LENGTH that is not a
 * number, is answered 413 or 400 (its body unread), as a real program
 * would refuse it.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MINIMAL_BODY_MAX (1024 * 1024)

/*
 * Reads len bytes of standard input into buf (len bytes, or NULL to drop
 * them).  Returns 0 when they were all read, -1 on an early end of input
 * or a read error.
 */
static int
minimal_read(char *buf, unsigned long len)
{
	char drop[8192];

	while (len > 0) {
		char *to = buf != NULL ? buf : drop;
		size_t want = buf != NULL || len < sizeof(drop) ?
		    (size_t)len : sizeof(drop);
		ssize_t got = read(STDIN_FILENO, to, want);

		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return -1;
		len -= (unsigned long)got;
		if (buf != NULL)
			buf += got;
	}
	return 0;
}

/*
 * Appends body (len bytes, with room for one more) and a newline to path
 * in one write and flushes it with fdatasync().  Returns 0 once the
 * flush returned, -1 on any failure.
 */
static int
minimal_store(const char *path, char *body, unsigned long len)
{
	ssize_t put;
	int fd, rc = -1;

	while ((fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
	    0600)) < 0 && errno == EINTR)
		;
	if (fd < 0)
		return -1;
	body[len] = '\n';
	while ((put = write(fd, body, (size_t)len + 1)) < 0 && errno == EINTR)
		;
	if (put == (ssize_t)len + 1 && fdatasync(fd) == 0)
		rc = 0;
	if (close(fd) != 0)
		rc = -1;
	return rc;
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
	const char *sync_file = getenv("MINIMAL_SYNC_FILE");
	unsigned long len = 0;
	char *end = NULL, *body = NULL;

	if (sync_file != NULL && *sync_file == '\0')
		sync_file = NULL;
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
	if (sync_file != NULL && (body = malloc(len + 1)) == NULL) {
		minimal_answer("503 Service Unavailable", "out of memory\n");
		return 0;
	}
	if (minimal_read(body, len) != 0) {
		minimal_answer("400 Bad Request", "short body\n");
		free(body);
		return 0;
	}
	if (sync_file != NULL && minimal_store(sync_file, body, len) != 0) {
		minimal_answer("503 Service Unavailable", "not stored\n");
		free(body);
		return 0;
	}
	free(body);
	minimal_answer("200 OK", "ok\n");
	return fflush(stdout) == 0 ? 0 : 1;
}

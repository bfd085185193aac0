/*
 * fcgi_io.c: one FastCGI connection of the server (see fcgi_io.h).
 *
 * Why the server reads the records itself instead of through libfcgi:
 * libfcgi reads a request with blocking calls, in the thread that then
 * handles it, so every connection that is slow to send its request (a
 * client trickling its body through the web server, a kept connection
 * left idle, a hostile peer on the socket) holds a worker for as long as
 * it likes, and a deadline can only be had by shutting the socket down
 * under it.  Here one reader thread gathers the requests of every
 * connection as their bytes come (fcgi_proto.c parses them without
 * holding whole records), and a worker only ever gets a request that
 * has arrived.  The answer, a few hundred bytes, is sent with one
 * non-blocking write.
 */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fcgi_io.h"
#include "fcgi_proto.h"
#include "request.h"

/* The most of a request's body read away after its answer so that a
 * kept connection can carry the next request; with more, it is closed. */
#define FCGI_IO_DRAIN_MAX (1024 * 1024)
/* The longest answer (the handler's are a few hundred bytes). */
#define FCGI_IO_OUT_MAX   (64 * 1024)
/* The most read away, without waiting, before a connection is closed. */
#define FCGI_IO_DISCARD_MAX (256 * 1024)

struct fcgi_io_pair {
	const char *name, *value;
};

struct fcgi_io_conn {
	int fd;
	struct fcgi_parser parser;
	enum fcgi_io_state state;
	unsigned id;                  /* the current request's id */
	int keep;                     /* FCGI_KEEP_CONN of the last request
	                                 begun */
	unsigned served;
	int refuse_status;            /* for FCGI_IO_REFUSE */
	const char *refuse_reason;
	/* The variables as they came, then decoded (strings holds the
	 * NUL-terminated names and values the pairs point into). */
	unsigned char *params;
	size_t params_len, params_cap;
	struct fcgi_io_pair *pairs;
	size_t npairs;
	char *strings;
	size_t strings_len;
	/* The body: need bytes are waited for. */
	unsigned char *body;
	size_t body_len, need, read_pos;
	int stdin_done;               /* the empty FCGI_STDIN came */
	size_t drained;               /* body bytes read away */
	/* The answer gathered by io's write. */
	unsigned char *out;
	size_t out_len;
	/* Bytes read after the end of a request's input. */
	unsigned char *rest;
	size_t rest_len;
	/* During fcgi_io_conn_input(). */
	const struct fcgi_io_rules *rules;
	enum fcgi_io_verdict verdict;
};

/* See fcgi_io.h. */
struct fcgi_io_conn *
fcgi_io_conn_new(int fd)
{
	struct fcgi_io_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->fd = fd;
	fcgi_parser_init(&c->parser);
	return c;
}

/* Frees the memory of the current request; the connection goes on. */
static void
fcgi_io_clear(struct fcgi_io_conn *c)
{
	if (c->body != NULL) {
		/* The body holds the secret. */
		explicit_bzero(c->body, c->body_len);
		free(c->body);
	}
	if (c->params != NULL) {
		explicit_bzero(c->params, c->params_len);
		free(c->params);
	}
	free(c->pairs);
	free(c->strings);
	free(c->out);
	c->body = c->params = c->out = NULL;
	c->pairs = NULL;
	c->strings = NULL;
	c->params_len = c->params_cap = c->npairs = c->strings_len = 0;
	c->body_len = c->need = c->read_pos = c->out_len = 0;
}

/* Ends the current request: the connection waits for the next one. */
static void
fcgi_io_reset(struct fcgi_io_conn *c)
{
	fcgi_io_clear(c);
	c->state = FCGI_IO_IDLE;
	c->id = 0;
	c->stdin_done = 0;
	c->drained = 0;
}

/* See fcgi_io.h. */
void
fcgi_io_conn_free(struct fcgi_io_conn *c)
{
	if (c == NULL)
		return;
	fcgi_io_clear(c);
	free(c->rest);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

/* See fcgi_io.h. */
int
fcgi_io_conn_fd(const struct fcgi_io_conn *c)
{
	return c->fd;
}

/* See fcgi_io.h. */
enum fcgi_io_state
fcgi_io_conn_state(const struct fcgi_io_conn *c)
{
	return c->state;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_kept(const struct fcgi_io_conn *c)
{
	return c->keep;
}

/* See fcgi_io.h. */
unsigned
fcgi_io_conn_served(const struct fcgi_io_conn *c)
{
	return c->served;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_partial(const struct fcgi_io_conn *c)
{
	return c->state != FCGI_IO_IDLE || c->rest_len > 0 ||
	    !fcgi_parser_at_boundary(&c->parser);
}

/* See fcgi_io.h. */
size_t
fcgi_io_conn_held(const struct fcgi_io_conn *c)
{
	return c->params_len + c->body_len;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_has_rest(const struct fcgi_io_conn *c)
{
	return c->rest_len > 0;
}

/* Sends buf whole without waiting; returns 0, or -1 (nothing or only
 * part of it could be sent: the stream is spoilt, the connection must
 * be closed). */
static int
fcgi_io_send(struct fcgi_io_conn *c, const unsigned char *buf, size_t n)
{
	ssize_t w;

	while (n > 0) {
		w = send(c->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		buf += w;
		n -= (size_t)w;
	}
	return 0;
}

/* Answers request id with FCGI_END_REQUEST of protocol status proto at
 * once; a failure ends the connection. */
static int
fcgi_io_end_other(struct fcgi_io_conn *c, unsigned id, unsigned proto)
{
	unsigned char rec[FCGI_END_LEN];

	fcgi_encode_end(rec, id, 0, proto);
	return fcgi_io_send(c, rec, sizeof(rec));
}

/* Sets the verdict that stops the parse. */
static int
fcgi_io_stop(struct fcgi_io_conn *c, enum fcgi_io_verdict v)
{
	c->verdict = v;
	return 1;
}

/* Refuses the request read with status and reason (see
 * fcgi_io_conn_refuse()). */
static int
fcgi_io_refuse_with(struct fcgi_io_conn *c, int status, const char *reason)
{
	c->refuse_status = status;
	c->refuse_reason = reason;
	return fcgi_io_stop(c, FCGI_IO_REFUSE);
}

/* fcgi_params_decode()'s callback of the counting pass. */
static int
fcgi_io_count_pair(void *ctx, const unsigned char *name, size_t name_len,
    const unsigned char *value, size_t value_len)
{
	size_t *n = ctx;

	(void)name;
	(void)value;
	(void)name_len;
	(void)value_len;
	n[0]++;
	return 0;
}

/* fcgi_params_decode()'s callback of the copying pass: each name and
 * value copied into strings with a NUL after it. */
static int
fcgi_io_copy_pair(void *ctx, const unsigned char *name, size_t name_len,
    const unsigned char *value, size_t value_len)
{
	struct fcgi_io_conn *c = ctx;
	char *p = c->strings + c->strings_len;

	memcpy(p, name, name_len);
	p[name_len] = '\0';
	memcpy(p + name_len + 1, value, value_len);
	p[name_len + 1 + value_len] = '\0';
	c->pairs[c->npairs].name = p;
	c->pairs[c->npairs].value = p + name_len + 1;
	c->npairs++;
	c->strings_len += name_len + value_len + 2;
	return 0;
}

/*
 * Decodes the variables gathered: pairs of NUL-terminated strings in one
 * block (each name and value copied, a NUL after each).  Returns 0, -1
 * when the stream is malformed or memory runs out.
 */
static int
fcgi_io_decode_params(struct fcgi_io_conn *c)
{
	size_t n = 0;

	if (fcgi_params_decode(c->params, c->params_len, fcgi_io_count_pair,
	    &n) != 0)
		return -1;
	/* The pairs take at most what their encoding took, plus two NULs
	 * each (the lengths they lose are at least two bytes). */
	if ((c->pairs = calloc(n + 1, sizeof(*c->pairs))) == NULL ||
	    (c->strings = malloc(c->params_len + 1)) == NULL)
		return -1;
	return fcgi_params_decode(c->params, c->params_len,
	    fcgi_io_copy_pair, c) == 0 ? 0 : -1;
}

/* The variables of the current request are all in: decoded, then judged
 * by the rules: the request goes at once, or waits for its body. */
static int
fcgi_io_head_done(struct fcgi_io_conn *c)
{
	struct request_io io;
	uint64_t need = 0;

	if (fcgi_io_decode_params(c) != 0)
		return fcgi_io_refuse_with(c, 400, "malformed FastCGI "
		    "parameters");
	fcgi_io_conn_request(c, &io);
	if (c->rules->head(c->rules->ctx, &io, &need) || need == 0) {
		c->state = FCGI_IO_READY;
		return fcgi_io_stop(c, FCGI_IO_GO);
	}
	c->need = (size_t)need;
	c->state = FCGI_IO_BODY;
	return 0;
}

/* Adds a piece of the variables; over params_max the request is
 * refused. */
static int
fcgi_io_add_params(struct fcgi_io_conn *c, const unsigned char *data,
    size_t len)
{
	size_t cap;
	unsigned char *p;

	if (len > c->rules->params_max - c->params_len)
		return fcgi_io_refuse_with(c, 431, "the request's variables "
		    "are too large");
	if (c->params_len + len > c->params_cap) {
		cap = c->params_cap > 0 ? c->params_cap * 2 : 4096;
		while (cap < c->params_len + len)
			cap *= 2;
		if (cap > c->rules->params_max)
			cap = c->rules->params_max;
		if ((p = realloc(c->params, cap)) == NULL)
			return fcgi_io_refuse_with(c, 431, "out of memory for "
			    "the request's variables");
		c->params = p;
		c->params_cap = cap;
	}
	memcpy(c->params + c->params_len, data, len);
	c->params_len += len;
	return 0;
}

/* Adds a piece of the body: up to need bytes are kept (the rest read
 * away); the request goes once they are in. */
static int
fcgi_io_add_body(struct fcgi_io_conn *c, const unsigned char *data,
    size_t len)
{
	size_t take;

	if (c->body == NULL && (c->body = malloc(c->need + 1)) == NULL)
		return fcgi_io_stop(c, FCGI_IO_CLOSE);
	take = c->need - c->body_len < len ? c->need - c->body_len : len;
	memcpy(c->body + c->body_len, data, take);
	c->body_len += take;
	c->drained += len - take;
	if (c->body_len < c->need)
		return 0;
	c->state = FCGI_IO_READY;
	return fcgi_io_stop(c, FCGI_IO_GO);
}

/* fcgi_parse()'s callback: the connection's side of the protocol. */
static int
fcgi_io_event(void *ctx, const struct fcgi_event *ev)
{
	struct fcgi_io_conn *c = ctx;
	unsigned char rec[16];

	switch (ev->kind) {
	case FCGI_EV_GET_VALUES:
		fcgi_encode_get_values_result(rec);
		if (fcgi_io_send(c, rec, FCGI_HEADER_LEN) != 0)
			return fcgi_io_stop(c, FCGI_IO_CLOSE);
		return 0;
	case FCGI_EV_UNKNOWN:
		fcgi_encode_unknown_type(rec, ev->type);
		if (fcgi_io_send(c, rec, 16) != 0)
			return fcgi_io_stop(c, FCGI_IO_CLOSE);
		return 0;
	case FCGI_EV_IGNORED:
		return 0;
	case FCGI_EV_BEGIN:
		if (ev->id == 0 || (c->state != FCGI_IO_IDLE &&
		    ev->id == c->id))
			/* Request 0 is the management one; a request
			 * begun twice: the stream makes no sense. */
			return fcgi_io_stop(c, FCGI_IO_CLOSE);
		if (c->state == FCGI_IO_DRAIN)
			/* The web server moved on from the request
			 * answered: the rest of its body will not come. */
			fcgi_io_reset(c);
		if (c->state != FCGI_IO_IDLE) {
			/* One request at a time on a connection. */
			if (fcgi_io_end_other(c, ev->id, FCGI_CANT_MPX_CONN)
			    != 0)
				return fcgi_io_stop(c, FCGI_IO_CLOSE);
			return 0;
		}
		if (ev->role != FCGI_RESPONDER) {
			if (fcgi_io_end_other(c, ev->id, FCGI_UNKNOWN_ROLE)
			    != 0 || !(ev->flags & FCGI_KEEP_CONN))
				return fcgi_io_stop(c, FCGI_IO_CLOSE);
			return 0;
		}
		c->id = ev->id;
		c->keep = (ev->flags & FCGI_KEEP_CONN) != 0;
		c->state = FCGI_IO_HEAD;
		return 0;
	case FCGI_EV_ABORT:
		/* The web server gave the request up (its client went
		 * away): nothing was acknowledged, the connection ends. */
		if (c->state != FCGI_IO_IDLE && ev->id == c->id)
			return fcgi_io_stop(c, FCGI_IO_CLOSE);
		return 0;
	case FCGI_EV_PARAMS:
		if (c->state != FCGI_IO_HEAD || ev->id != c->id)
			return 0;
		if (ev->end)
			return fcgi_io_head_done(c);
		return fcgi_io_add_params(c, ev->data, ev->len);
	case FCGI_EV_STDIN:
		if (ev->id != c->id || c->state == FCGI_IO_IDLE)
			return 0;
		if (c->state == FCGI_IO_HEAD)
			/* A body before the end of the variables. */
			return fcgi_io_stop(c, FCGI_IO_CLOSE);
		if (ev->end) {
			c->stdin_done = 1;
			if (c->state == FCGI_IO_DRAIN) {
				/* Read to its end: a connection the web
				 * server does not keep is done. */
				if (!c->keep)
					return fcgi_io_stop(c, FCGI_IO_CLOSE);
				fcgi_io_reset(c);
				return 0;
			}
			/* A body shorter than announced: the handler
			 * answers it. */
			c->state = FCGI_IO_READY;
			return fcgi_io_stop(c, FCGI_IO_GO);
		}
		if (c->state == FCGI_IO_DRAIN) {
			c->drained += ev->len;
			if (c->drained > FCGI_IO_DRAIN_MAX)
				return fcgi_io_stop(c, FCGI_IO_CLOSE);
			return 0;
		}
		return fcgi_io_add_body(c, ev->data, ev->len);
	}
	return 0;
}

/*
 * A body that reached its announced length stops the parse before the
 * empty FCGI_STDIN that ends it, which web servers send right after:
 * when it is there (buf, the bytes after the stop), it is taken too, so
 * that the connection needs no more reading once answered.  Returns the
 * bytes taken.
 */
static size_t
fcgi_io_stdin_end(struct fcgi_io_conn *c, const unsigned char *buf,
    size_t n)
{
	size_t len;

	if (c->stdin_done || !fcgi_parser_at_boundary(&c->parser) ||
	    n < FCGI_HEADER_LEN || buf[0] != 1 || buf[1] != FCGI_STDIN ||
	    (((unsigned)buf[2] << 8) | buf[3]) != c->id || buf[4] != 0 ||
	    buf[5] != 0)
		return 0;
	len = FCGI_HEADER_LEN + buf[6];
	if (n < len)
		return 0;
	c->stdin_done = 1;
	return len;
}

/* See fcgi_io.h. */
enum fcgi_io_verdict
fcgi_io_conn_input(struct fcgi_io_conn *c, const unsigned char *buf,
    size_t n, const struct fcgi_io_rules *rules)
{
	unsigned char *rest = NULL;
	size_t rest_len = 0;
	long used;

	if (c->rest_len > 0) {
		/* What is kept comes first; buf is only ever given when
		 * nothing is (the reader reads once the kept bytes are
		 * used up). */
		rest = c->rest;
		rest_len = c->rest_len;
		c->rest = NULL;
		c->rest_len = 0;
		buf = rest;
		n = rest_len;
	}
	c->rules = rules;
	c->verdict = FCGI_IO_MORE;
	used = fcgi_parse(&c->parser, buf, n, fcgi_io_event, c);
	if (used >= 0 && c->verdict == FCGI_IO_GO)
		used += (long)fcgi_io_stdin_end(c, buf + used, n - (size_t)used);
	if (used < 0)
		c->verdict = FCGI_IO_CLOSE;
	else if ((size_t)used < n && c->verdict == FCGI_IO_GO) {
		if (rest != NULL && used == 0) {
			c->rest = rest;
			c->rest_len = rest_len;
			rest = NULL;
		} else if ((c->rest = malloc(n - (size_t)used)) != NULL) {
			memcpy(c->rest, buf + used, n - (size_t)used);
			c->rest_len = n - (size_t)used;
		} else
			c->verdict = FCGI_IO_CLOSE;
	}
	free(rest);
	c->rules = NULL;
	return c->verdict;
}

/* ------------------------------------------------------------ requests */

static const char *
fcgi_io_param(void *ctx, const char *name)
{
	struct fcgi_io_conn *c = ctx;
	size_t i;

	/* The first of a name wins, as in the environment of a CGI. */
	for (i = 0; i < c->npairs; i++)
		if (strcmp(c->pairs[i].name, name) == 0)
			return c->pairs[i].value;
	return NULL;
}

static ssize_t
fcgi_io_read(void *ctx, char *buf, size_t n)
{
	struct fcgi_io_conn *c = ctx;
	size_t left = c->body_len - c->read_pos;

	if (n > left)
		n = left;
	if (n == 0)
		return 0;
	memcpy(buf, c->body + c->read_pos, n);
	c->read_pos += n;
	return (ssize_t)n;
}

static int
fcgi_io_write(void *ctx, const char *buf, size_t n)
{
	struct fcgi_io_conn *c = ctx;
	unsigned char *p;

	if (n > FCGI_IO_OUT_MAX - c->out_len)
		return -1;
	if ((p = realloc(c->out, c->out_len + n)) == NULL)
		return -1;
	memcpy(p + c->out_len, buf, n);
	c->out = p;
	c->out_len += n;
	return 0;
}

/* See fcgi_io.h. */
void
fcgi_io_conn_request(struct fcgi_io_conn *c, struct request_io *io)
{
	io->param = fcgi_io_param;
	io->read = fcgi_io_read;
	io->write = fcgi_io_write;
	io->input_done = NULL;
	io->ctx = c;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_refuse(struct fcgi_io_conn *c)
{
	struct request_io io;

	fcgi_io_conn_request(c, &io);
	request_answer_error(&io, c->refuse_status, c->refuse_reason);
	(void)fcgi_io_conn_answer(c);
	return c->refuse_status;
}

/* See fcgi_io.h. */
int
fcgi_io_conn_answer(struct fcgi_io_conn *c)
{
	unsigned char small[2048], *buf = small;
	size_t need;
	int rc;

	need = fcgi_encode_answer(buf, sizeof(small), c->id, c->out,
	    c->out_len, 0, FCGI_REQUEST_COMPLETE);
	if (need > sizeof(small)) {
		if ((buf = malloc(need)) == NULL)
			return -1;
		(void)fcgi_encode_answer(buf, need, c->id, c->out, c->out_len,
		    0, FCGI_REQUEST_COMPLETE);
	}
	rc = fcgi_io_send(c, buf, need);
	if (buf != small)
		free(buf);
	c->served++;
	if (rc != 0)
		return -1;
	fcgi_io_clear(c);
	if (c->stdin_done)
		fcgi_io_reset(c);
	else
		c->state = FCGI_IO_DRAIN;
	return 0;
}

/* See fcgi_io.h. */
void
fcgi_io_conn_discard_input(struct fcgi_io_conn *c)
{
	char buf[16384];
	size_t total = 0;
	ssize_t r;

	while (total < FCGI_IO_DISCARD_MAX) {
		r = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		total += (size_t)r;
	}
}

/*
 * fcgi_proto.h: the FastCGI record format (version 1), without any I/O:
 * an incremental parser fed whatever bytes a non-blocking read gave, the
 * decoder of the name-value pairs of FCGI_PARAMS, and the encoder of the
 * records an application sends.  The server's connections (fcgi_io.c)
 * are built on it; the fuzzer drives it straight.
 */
#ifndef PODIO_HANDLER_FCGI_PROTO_H
#define PODIO_HANDLER_FCGI_PROTO_H

#include <stddef.h>
#include <stdint.h>

/* Record types. */
#define FCGI_BEGIN_REQUEST       1
#define FCGI_ABORT_REQUEST       2
#define FCGI_END_REQUEST         3
#define FCGI_PARAMS              4
#define FCGI_STDIN               5
#define FCGI_STDOUT              6
#define FCGI_STDERR              7
#define FCGI_DATA                8
#define FCGI_GET_VALUES          9
#define FCGI_GET_VALUES_RESULT  10
#define FCGI_UNKNOWN_TYPE       11

/* Roles, the flag of FCGI_BEGIN_REQUEST, and the protocol statuses of
 * FCGI_END_REQUEST. */
#define FCGI_RESPONDER           1
#define FCGI_KEEP_CONN           1
#define FCGI_REQUEST_COMPLETE    0
#define FCGI_CANT_MPX_CONN       1
#define FCGI_UNKNOWN_ROLE        3

/* A record's header and the most content one record carries. */
#define FCGI_HEADER_LEN          8
#define FCGI_CONTENT_MAX         65535

/* What the parser found. */
enum fcgi_event_kind {
	FCGI_EV_BEGIN,        /* id, role, flags */
	FCGI_EV_ABORT,        /* id */
	FCGI_EV_PARAMS,       /* id, a piece of the stream (data, len), or
	                         its end (end set, len 0) */
	FCGI_EV_STDIN,        /* the same for the body */
	FCGI_EV_GET_VALUES,   /* a management query (its content ignored) */
	FCGI_EV_UNKNOWN,      /* a management record of an unknown type:
	                         type; answered with FCGI_UNKNOWN_TYPE */
	FCGI_EV_IGNORED       /* an application record of no use here
	                         (FCGI_DATA, or a type an application never
	                         receives): skipped */
};

struct fcgi_event {
	enum fcgi_event_kind kind;
	unsigned type;              /* the record's type */
	unsigned id;                /* the record's request id */
	unsigned role, flags;       /* FCGI_EV_BEGIN */
	const unsigned char *data;  /* a piece of content: borrowed for the
	                               callback */
	size_t len;
	int end;                    /* an empty PARAMS or STDIN record */
};

/*
 * The parser's state between reads: the bytes of a header not complete
 * yet, and how much of the current record's content and padding is
 * left.  Zero it (or call fcgi_parser_init()) before the first byte of a
 * connection.
 */
struct fcgi_parser {
	unsigned char hdr[FCGI_HEADER_LEN];
	unsigned hdr_got;           /* bytes of hdr held */
	unsigned char begin[8];     /* FCGI_BEGIN_REQUEST's body */
	unsigned begin_got;
	unsigned type, id;          /* of the current record */
	size_t left;                /* content bytes still to come */
	size_t pad;                 /* padding bytes still to come */
	int in_record;              /* a header was read: content or
	                               padding follows */
};

void fcgi_parser_init(struct fcgi_parser *p);

/* Whether the parser is between records (no part of one held). */
int fcgi_parser_at_boundary(const struct fcgi_parser *p);

/*
 * Parses buf[0..n-1], calling cb(ctx, ev) for each event, in order.
 * PARAMS and STDIN content is given piece by piece as it arrives (a
 * record may come in many reads); the other records only once whole.
 * When cb returns nonzero, parsing stops right after that event.
 * Returns the number of bytes consumed (n unless cb stopped it), or -1
 * on a protocol error (a version other than 1, or an FCGI_BEGIN_REQUEST
 * whose body is not 8 bytes): the connection cannot go on.
 */
long fcgi_parse(struct fcgi_parser *p, const unsigned char *buf, size_t n,
    int (*cb)(void *ctx, const struct fcgi_event *ev), void *ctx);

/*
 * Decodes the name-value pairs of a whole FCGI_PARAMS stream, calling
 * cb(ctx, name, name_len, value, value_len) for each in order (neither
 * is NUL-terminated); a nonzero return from cb stops it and is
 * returned.  Returns 0, -1 when the stream is malformed (a length that
 * runs past its end).
 */
int fcgi_params_decode(const unsigned char *buf, size_t len,
    int (*cb)(void *ctx, const unsigned char *name, size_t name_len,
    const unsigned char *value, size_t value_len), void *ctx);

/* Writes the header of a record (content_len at most FCGI_CONTENT_MAX)
 * into out[0..FCGI_HEADER_LEN-1]. */
void fcgi_put_header(unsigned char *out, unsigned type, unsigned id,
    size_t content_len, unsigned pad);

/*
 * The bytes of the records that answer request id with the output
 * body[0..len-1]: FCGI_STDOUT records of at most FCGI_CONTENT_MAX, an
 * empty one, and FCGI_END_REQUEST with app_status and protocol status
 * proto.  Writes them to out (capacity cap) and returns their length,
 * or the length needed when cap is too small (nothing written then).
 */
size_t fcgi_encode_answer(unsigned char *out, size_t cap, unsigned id,
    const unsigned char *body, size_t len, uint32_t app_status,
    unsigned proto);

/* The length of an FCGI_END_REQUEST record, and its bytes for request
 * id, into out. */
#define FCGI_END_LEN (FCGI_HEADER_LEN + 8)
void fcgi_encode_end(unsigned char *out, unsigned id, uint32_t app_status,
    unsigned proto);

/* The 16 bytes of FCGI_UNKNOWN_TYPE for type, into out. */
void fcgi_encode_unknown_type(unsigned char *out, unsigned type);

/* The 8 bytes of an empty FCGI_GET_VALUES_RESULT (no value offered: the
 * web server keeps its defaults), into out. */
void fcgi_encode_get_values_result(unsigned char *out);

#endif

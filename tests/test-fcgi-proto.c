/*
 * test-fcgi-proto.c: the FastCGI record parser, the name-value decoder
 * and the answer encoder of handler/fcgi_proto.c.  A request stream is
 * parsed whole, byte by byte and cut at every place in two, and must
 * give the same events each time.
 */
#include <config.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../handler/fcgi_proto.h"
#include "tap.h"

/* What the events of a parse add up to. */
struct seen {
	char kinds[64];                /* one letter per whole event */
	size_t nkinds;
	unsigned char params[4096];
	size_t params_len;
	unsigned char body[131072];
	size_t body_len;
	unsigned role, flags, id;
	int stop_after;                /* stop after this many events */
	int events;
};

static int
seen_cb(void *ctx, const struct fcgi_event *ev)
{
	struct seen *s = ctx;
	char k = '?';

	switch (ev->kind) {
	case FCGI_EV_BEGIN:
		k = 'B';
		s->role = ev->role;
		s->flags = ev->flags;
		s->id = ev->id;
		break;
	case FCGI_EV_ABORT:
		k = 'A';
		break;
	case FCGI_EV_PARAMS:
		if (ev->end)
			k = 'P';
		else {
			memcpy(s->params + s->params_len, ev->data, ev->len);
			s->params_len += ev->len;
			k = 0;
		}
		break;
	case FCGI_EV_STDIN:
		if (ev->end)
			k = 'S';
		else {
			memcpy(s->body + s->body_len, ev->data, ev->len);
			s->body_len += ev->len;
			k = 0;
		}
		break;
	case FCGI_EV_GET_VALUES:
		k = 'G';
		break;
	case FCGI_EV_UNKNOWN:
		k = 'U';
		break;
	case FCGI_EV_IGNORED:
		k = 'I';
		break;
	}
	if (k != 0 && s->nkinds + 1 < sizeof(s->kinds))
		s->kinds[s->nkinds++] = k;
	s->events++;
	return s->stop_after > 0 && s->events == s->stop_after;
}

/* Appends a record (with pad bytes of padding) to buf at *n. */
static void
put_record(unsigned char *buf, size_t *n, unsigned type, unsigned id,
    const void *content, size_t len, unsigned pad)
{
	fcgi_put_header(buf + *n, type, id, len, pad);
	*n += FCGI_HEADER_LEN;
	if (len > 0)
		memcpy(buf + *n, content, len);
	*n += len;
	memset(buf + *n, 0xee, pad);
	*n += pad;
}

/* The test stream: a kept request 7 with a long value, padding, a
 * management query, an unknown management record, an FCGI_DATA record
 * and a body in two records. */
static size_t
make_stream(unsigned char *buf, unsigned char *params, size_t *params_len,
    unsigned char *body, size_t *body_len)
{
	static const unsigned char begin[8] = { 0, 1, 1, 0, 0, 0, 0, 0 };
	size_t n = 0, p = 0, i;

	/* REQUEST_METHOD=POST (short lengths), then X=<300 bytes> (a
	 * 4-byte value length). */
	params[p++] = 14;
	params[p++] = 4;
	memcpy(params + p, "REQUEST_METHODPOST", 18);
	p += 18;
	params[p++] = 1;
	params[p++] = 0x80;
	params[p++] = 0;
	params[p++] = 1;
	params[p++] = 44;
	params[p++] = 'X';
	for (i = 0; i < 300; i++)
		params[p++] = (unsigned char)('a' + i % 26);
	*params_len = p;
	for (i = 0; i < 70000; i++)
		body[i] = (unsigned char)(i * 7);
	*body_len = 70000;

	put_record(buf, &n, FCGI_GET_VALUES, 0, NULL, 0, 0);
	put_record(buf, &n, FCGI_BEGIN_REQUEST, 7, begin, 8, 3);
	put_record(buf, &n, FCGI_PARAMS, 7, params, 100, 5);
	put_record(buf, &n, 42, 0, "zz", 2, 1);
	put_record(buf, &n, FCGI_PARAMS, 7, params + 100, p - 100, 0);
	put_record(buf, &n, FCGI_PARAMS, 7, NULL, 0, 2);
	put_record(buf, &n, FCGI_DATA, 7, "d", 1, 0);
	put_record(buf, &n, FCGI_STDIN, 7, body, 65535, 1);
	put_record(buf, &n, FCGI_STDIN, 7, body + 65535, 70000 - 65535, 0);
	put_record(buf, &n, FCGI_STDIN, 7, NULL, 0, 0);
	return n;
}

static int
seen_matches(const struct seen *s, const unsigned char *params,
    size_t params_len, const unsigned char *body, size_t body_len)
{
	return s->nkinds == 6 && memcmp(s->kinds, "GBUPIS", 6) == 0 &&
	    s->role == 1 &&
	    s->flags == 1 && s->id == 7 && s->params_len == params_len &&
	    memcmp(s->params, params, params_len) == 0 &&
	    s->body_len == body_len && memcmp(s->body, body, body_len) == 0;
}

/* Pairs decoded into "name=value;" text. */
struct pairs_text {
	char text[1024];
	size_t len;
	int n;
};

static int
pairs_cb(void *ctx, const unsigned char *name, size_t name_len,
    const unsigned char *value, size_t value_len)
{
	struct pairs_text *pt = ctx;

	if (pt->len + name_len + value_len + 2 >= sizeof(pt->text))
		return 7;
	memcpy(pt->text + pt->len, name, name_len);
	pt->len += name_len;
	pt->text[pt->len++] = '=';
	memcpy(pt->text + pt->len, value, value_len > 3 ? 3 : value_len);
	pt->len += value_len > 3 ? 3 : value_len;
	pt->text[pt->len++] = ';';
	pt->text[pt->len] = '\0';
	pt->n++;
	return 0;
}

int
main(void)
{
	static unsigned char stream[140000], params[1024], body[70000];
	static struct seen s;
	static unsigned char out[200000];
	struct fcgi_parser p;
	struct pairs_text pt;
	size_t n, params_len, body_len, i, cut, bad_cuts = 0, o, records;
	long r;
	int ok;

	n = make_stream(stream, params, &params_len, body, &body_len);

	/* Whole. */
	memset(&s, 0, sizeof(s));
	fcgi_parser_init(&p);
	r = fcgi_parse(&p, stream, n, seen_cb, &s);
	tap_ok(r == (long)n && seen_matches(&s, params, params_len, body,
	    body_len) && fcgi_parser_at_boundary(&p),
	    "a request stream parsed whole: management records, padding, "
	    "a 4-byte length, a body over one record");

	/* Byte by byte. */
	memset(&s, 0, sizeof(s));
	fcgi_parser_init(&p);
	ok = 1;
	for (i = 0; i < n; i++)
		if (fcgi_parse(&p, stream + i, 1, seen_cb, &s) != 1)
			ok = 0;
	tap_ok(ok && seen_matches(&s, params, params_len, body, body_len),
	    "the same stream fed one byte at a time gives the same events");

	/* Cut in two at every place of the head and around the body's
	 * records. */
	for (cut = 1; cut < n; cut += cut < 600 || cut > n - 600 ? 1 : 997) {
		memset(&s, 0, sizeof(s));
		fcgi_parser_init(&p);
		if (fcgi_parse(&p, stream, cut, seen_cb, &s) != (long)cut ||
		    fcgi_parse(&p, stream + cut, n - cut, seen_cb, &s) !=
		    (long)(n - cut) ||
		    !seen_matches(&s, params, params_len, body, body_len))
			bad_cuts++;
	}
	tap_ok(bad_cuts == 0, "the stream cut in two anywhere gives the same "
	    "events (%zu bad cuts)", bad_cuts);

	/* A callback that stops the parse: the count consumed ends right
	 * after that event, and the rest goes on from there. */
	memset(&s, 0, sizeof(s));
	s.stop_after = 2;
	fcgi_parser_init(&p);
	r = fcgi_parse(&p, stream, n, seen_cb, &s);
	ok = r == FCGI_HEADER_LEN * 2 + 8 + 3 && s.nkinds == 2 &&
	    s.kinds[1] == 'B';
	s.stop_after = 0;
	ok = ok && fcgi_parse(&p, stream + r, n - (size_t)r, seen_cb, &s) ==
	    (long)(n - (size_t)r);
	tap_ok(ok && seen_matches(&s, params, params_len, body, body_len),
	    "a callback stops the parse right after its event, and it "
	    "resumes there");

	/* Protocol errors. */
	fcgi_parser_init(&p);
	memset(&s, 0, sizeof(s));
	memcpy(out, stream, 8);
	out[0] = 2;
	tap_ok(fcgi_parse(&p, out, 8, seen_cb, &s) == -1,
	    "a record of version 2 is a protocol error");
	fcgi_parser_init(&p);
	o = 0;
	put_record(out, &o, FCGI_BEGIN_REQUEST, 1, "1234567", 7, 0);
	tap_ok(fcgi_parse(&p, out, o, seen_cb, &s) == -1,
	    "an FCGI_BEGIN_REQUEST of 7 bytes is a protocol error");
	fcgi_parser_init(&p);
	memset(&s, 0, sizeof(s));
	o = 0;
	put_record(out, &o, 99, 3, "x", 1, 0);
	put_record(out, &o, FCGI_ABORT_REQUEST, 3, NULL, 0, 0);
	put_record(out, &o, FCGI_STDOUT, 3, "y", 1, 7);
	tap_ok(fcgi_parse(&p, out, o, seen_cb, &s) == (long)o &&
	    s.nkinds == 3 && memcmp(s.kinds, "IAI", 3) == 0,
	    "an unknown type on a request is skipped, an abort is given");

	/* Name-value pairs. */
	memset(&pt, 0, sizeof(pt));
	tap_ok(fcgi_params_decode(params, params_len, pairs_cb, &pt) == 0 &&
	    pt.n == 2 && strcmp(pt.text, "REQUEST_METHOD=POS;X=abc;") == 0,
	    "pairs with 1- and 4-byte lengths decode: %s", pt.text);
	memset(&pt, 0, sizeof(pt));
	tap_ok(fcgi_params_decode(params, params_len - 1, pairs_cb, &pt) ==
	    -1, "a value running past the end is malformed");
	memset(&pt, 0, sizeof(pt));
	tap_ok(fcgi_params_decode(params + 20, 4, pairs_cb, &pt) == -1,
	    "a 4-byte length cut short is malformed");
	memset(&pt, 0, sizeof(pt));
	tap_ok(fcgi_params_decode(params, 0, pairs_cb, &pt) == 0 &&
	    pt.n == 0, "no pairs decode to none");
	memset(&pt, 0, sizeof(pt));
	tap_ok(fcgi_params_decode((const unsigned char *)"\x01\x00z", 3,
	    pairs_cb, &pt) == 0 && strcmp(pt.text, "z=;") == 0,
	    "an empty value decodes");

	/* The answer. */
	tap_ok(fcgi_encode_answer(out, 10, 9, body, 70000, 0, 0) ==
	    70000 + 3 * FCGI_HEADER_LEN + FCGI_END_LEN,
	    "too small a buffer: the length needed is returned");
	o = fcgi_encode_answer(out, sizeof(out), 9, body, 70000, 5,
	    FCGI_REQUEST_COMPLETE);
	records = 0;
	ok = 1;
	for (i = 0; i + FCGI_HEADER_LEN <= o; records++) {
		size_t clen = ((size_t)out[i + 4] << 8) | out[i + 5];

		if (out[i] != 1 || ((out[i + 2] << 8) | out[i + 3]) != 9)
			ok = 0;
		if (records < 2 && (out[i + 1] != FCGI_STDOUT ||
		    memcmp(out + i + 8, body + records * 65535, clen) != 0))
			ok = 0;
		if (records == 2 && (out[i + 1] != FCGI_STDOUT || clen != 0))
			ok = 0;
		if (records == 3 && (out[i + 1] != FCGI_END_REQUEST ||
		    clen != 8 || out[i + 11] != 5 || out[i + 12] != 0))
			ok = 0;
		i += FCGI_HEADER_LEN + clen + out[i + 6];
	}
	tap_ok(ok && records == 4 && i == o, "an answer of 70000 bytes: two "
	    "FCGI_STDOUT records, an empty one, FCGI_END_REQUEST");
	fcgi_encode_unknown_type(out, 42);
	tap_ok(out[1] == FCGI_UNKNOWN_TYPE && out[5] == 8 && out[8] == 42,
	    "FCGI_UNKNOWN_TYPE names the type");

	printf("1..%d\n", tap_n);
	return tap_failed != 0;
}

/*
 * fcgi_proto.c: the FastCGI record format (see fcgi_proto.h).
 *
 * The parser keeps no record in memory: a header is gathered (it may be
 * split across reads), then the content is handed on as it comes, and
 * the padding skipped.  Only FCGI_BEGIN_REQUEST's 8-byte body is held
 * until whole.  So a connection costs a few dozen bytes of state between
 * reads, whatever its records' lengths.
 */
#include <config.h>

#include <string.h>

#include "fcgi_proto.h"

/* See fcgi_proto.h. */
void
fcgi_parser_init(struct fcgi_parser *p)
{
	memset(p, 0, sizeof(*p));
}

/* See fcgi_proto.h. */
int
fcgi_parser_at_boundary(const struct fcgi_parser *p)
{
	return !p->in_record && p->hdr_got == 0;
}

/* The kind of event a record of type on request id makes. */
static enum fcgi_event_kind
fcgi_kind(unsigned type, unsigned id)
{
	switch (type) {
	case FCGI_BEGIN_REQUEST:
		return FCGI_EV_BEGIN;
	case FCGI_ABORT_REQUEST:
		return FCGI_EV_ABORT;
	case FCGI_PARAMS:
		return FCGI_EV_PARAMS;
	case FCGI_STDIN:
		return FCGI_EV_STDIN;
	case FCGI_GET_VALUES:
		return id == 0 ? FCGI_EV_GET_VALUES : FCGI_EV_IGNORED;
	default:
		/* Management records (id 0) of a type not known here get
		 * FCGI_UNKNOWN_TYPE; application records of other types
		 * (FCGI_DATA, or ones sent only by applications) are
		 * skipped. */
		return id == 0 && type != FCGI_DATA ? FCGI_EV_UNKNOWN :
		    FCGI_EV_IGNORED;
	}
}

/* Gives a whole-record event (every kind but PARAMS and STDIN pieces). */
static int
fcgi_emit(const struct fcgi_parser *p, int (*cb)(void *,
    const struct fcgi_event *), void *ctx)
{
	struct fcgi_event ev;

	memset(&ev, 0, sizeof(ev));
	ev.kind = fcgi_kind(p->type, p->id);
	ev.type = p->type;
	ev.id = p->id;
	if (ev.kind == FCGI_EV_BEGIN) {
		ev.role = ((unsigned)p->begin[0] << 8) | p->begin[1];
		ev.flags = p->begin[2];
	}
	return cb(ctx, &ev);
}

/* See fcgi_proto.h. */
long
fcgi_parse(struct fcgi_parser *p, const unsigned char *buf, size_t n,
    int (*cb)(void *ctx, const struct fcgi_event *ev), void *ctx)
{
	struct fcgi_event ev;
	size_t i = 0, take;
	enum fcgi_event_kind kind;

	while (i < n) {
		if (!p->in_record) {
			take = FCGI_HEADER_LEN - p->hdr_got;
			if (take > n - i)
				take = n - i;
			memcpy(p->hdr + p->hdr_got, buf + i, take);
			p->hdr_got += (unsigned)take;
			i += take;
			if (p->hdr_got < FCGI_HEADER_LEN)
				break;
			if (p->hdr[0] != 1)
				return -1;
			p->type = p->hdr[1];
			p->id = ((unsigned)p->hdr[2] << 8) | p->hdr[3];
			p->left = ((size_t)p->hdr[4] << 8) | p->hdr[5];
			p->pad = p->hdr[6];
			p->hdr_got = 0;
			p->begin_got = 0;
			p->in_record = 1;
			kind = fcgi_kind(p->type, p->id);
			if (kind == FCGI_EV_BEGIN && p->left != 8)
				return -1;
			if ((kind == FCGI_EV_PARAMS || kind == FCGI_EV_STDIN) &&
			    p->left == 0) {
				/* The end of the stream: given now, the
				 * padding is skipped after. */
				memset(&ev, 0, sizeof(ev));
				ev.kind = kind;
				ev.type = p->type;
				ev.id = p->id;
				ev.end = 1;
				if (p->pad == 0)
					p->in_record = 0;
				if (cb(ctx, &ev) != 0)
					return (long)i;
				continue;
			}
		}
		kind = fcgi_kind(p->type, p->id);
		if (i == n && (p->left > 0 || p->pad > 0))
			break;
		if (p->left > 0) {
			take = p->left < n - i ? p->left : n - i;
			if (kind == FCGI_EV_PARAMS || kind == FCGI_EV_STDIN) {
				memset(&ev, 0, sizeof(ev));
				ev.kind = kind;
				ev.type = p->type;
				ev.id = p->id;
				ev.data = buf + i;
				ev.len = take;
				p->left -= take;
				i += take;
				if (p->left == 0 && p->pad == 0)
					p->in_record = 0;
				if (cb(ctx, &ev) != 0)
					return (long)i;
				continue;
			}
			if (kind == FCGI_EV_BEGIN) {
				memcpy(p->begin + p->begin_got, buf + i, take);
				p->begin_got += (unsigned)take;
			}
			p->left -= take;
			i += take;
			if (p->left > 0)
				break;
			if (p->pad == 0) {
				p->in_record = 0;
				if (fcgi_emit(p, cb, ctx) != 0)
					return (long)i;
				continue;
			}
		}
		if (p->pad > 0) {
			take = p->pad < n - i ? p->pad : n - i;
			p->pad -= take;
			i += take;
			if (p->pad > 0)
				break;
		}
		p->in_record = 0;
		/* A whole record other than PARAMS or STDIN (whose pieces
		 * and end were given above) is given once its padding is
		 * read. */
		if (kind != FCGI_EV_PARAMS && kind != FCGI_EV_STDIN &&
		    fcgi_emit(p, cb, ctx) != 0)
			return (long)i;
	}
	return (long)i;
}

/* Reads one length of a name-value pair at *i: 1 byte below 128, else
 * 4 bytes with the top bit set.  Returns 0, or -1 past the end. */
static int
fcgi_pair_len(const unsigned char *buf, size_t len, size_t *i, size_t *out)
{
	if (*i >= len)
		return -1;
	if (buf[*i] < 0x80) {
		*out = buf[(*i)++];
		return 0;
	}
	if (len - *i < 4)
		return -1;
	*out = ((size_t)(buf[*i] & 0x7f) << 24) | ((size_t)buf[*i + 1] << 16) |
	    ((size_t)buf[*i + 2] << 8) | buf[*i + 3];
	*i += 4;
	return 0;
}

/* See fcgi_proto.h. */
int
fcgi_params_decode(const unsigned char *buf, size_t len,
    int (*cb)(void *ctx, const unsigned char *name, size_t name_len,
    const unsigned char *value, size_t value_len), void *ctx)
{
	size_t i = 0, nl, vl;
	int r;

	while (i < len) {
		if (fcgi_pair_len(buf, len, &i, &nl) != 0 ||
		    fcgi_pair_len(buf, len, &i, &vl) != 0)
			return -1;
		if (nl > len - i || vl > len - i - nl)
			return -1;
		if ((r = cb(ctx, buf + i, nl, buf + i + nl, vl)) != 0)
			return r;
		i += nl + vl;
	}
	return 0;
}

/* See fcgi_proto.h. */
void
fcgi_put_header(unsigned char *out, unsigned type, unsigned id,
    size_t content_len, unsigned pad)
{
	out[0] = 1;
	out[1] = (unsigned char)type;
	out[2] = (unsigned char)(id >> 8);
	out[3] = (unsigned char)id;
	out[4] = (unsigned char)(content_len >> 8);
	out[5] = (unsigned char)content_len;
	out[6] = (unsigned char)pad;
	out[7] = 0;
}

/* See fcgi_proto.h.  The output goes without padding: the records need
 * none, and the web servers accept any content length. */
size_t
fcgi_encode_answer(unsigned char *out, size_t cap, unsigned id,
    const unsigned char *body, size_t len, uint32_t app_status,
    unsigned proto)
{
	size_t records = (len + FCGI_CONTENT_MAX - 1) / FCGI_CONTENT_MAX;
	size_t need = len + (records + 1) * FCGI_HEADER_LEN + FCGI_END_LEN,
	    o = 0, piece;

	if (cap < need)
		return need;
	while (len > 0) {
		piece = len < FCGI_CONTENT_MAX ? len : FCGI_CONTENT_MAX;
		fcgi_put_header(out + o, FCGI_STDOUT, id, piece, 0);
		memcpy(out + o + FCGI_HEADER_LEN, body, piece);
		o += FCGI_HEADER_LEN + piece;
		body += piece;
		len -= piece;
	}
	fcgi_put_header(out + o, FCGI_STDOUT, id, 0, 0);
	o += FCGI_HEADER_LEN;
	fcgi_encode_end(out + o, id, app_status, proto);
	return o + FCGI_END_LEN;
}

/* See fcgi_proto.h. */
void
fcgi_encode_end(unsigned char *out, unsigned id, uint32_t app_status,
    unsigned proto)
{
	fcgi_put_header(out, FCGI_END_REQUEST, id, 8, 0);
	out[8] = (unsigned char)(app_status >> 24);
	out[9] = (unsigned char)(app_status >> 16);
	out[10] = (unsigned char)(app_status >> 8);
	out[11] = (unsigned char)app_status;
	out[12] = (unsigned char)proto;
	memset(out + 13, 0, 3);
}

/* See fcgi_proto.h. */
void
fcgi_encode_unknown_type(unsigned char *out, unsigned type)
{
	fcgi_put_header(out, FCGI_UNKNOWN_TYPE, 0, 8, 0);
	out[FCGI_HEADER_LEN] = (unsigned char)type;
	memset(out + FCGI_HEADER_LEN + 1, 0, 7);
}

/* See fcgi_proto.h. */
void
fcgi_encode_get_values_result(unsigned char *out)
{
	fcgi_put_header(out, FCGI_GET_VALUES_RESULT, 0, 0, 0);
}

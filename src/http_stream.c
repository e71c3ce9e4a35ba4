/*
 * Large bodies (a message's source, a decoded part) go out in chunks read
 * from the store: one chunk is queued, the next is read once libevent has
 * written it (evhttp_send_reply_chunk_with_cb), so a slow reader of a
 * 30 MB message costs one chunk, not the message.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "mailsnare/mime_decode.h"
#include "mailsnare/server.h"
#include "http_internal.h"

#define HTTP_STREAM_CHUNK (128 * 1024)

struct http_stream {
	int64_t id;
	uint64_t off, end;
	bool decode;
	struct mime_decoder dec;
	struct evbuffer *buf;
	char out[MIME_DECODE_OUT_MAX(HTTP_STREAM_CHUNK)];
};

static int stream_sink(void *arg, const void *data, size_t len)
{
	struct http_stream *s = arg;

	if (!s->decode)
		return evbuffer_add(s->buf, data, len);
	return evbuffer_add(s->buf, s->out, mime_decoder_feed(&s->dec, data, len, s->out));
}

static void stream_end(struct http_req *r)
{
	struct evhttp_request *req = r->req;

	http_req_done(r);
	r->req = NULL;
	if (req != NULL)
		evhttp_send_reply_end(req);
	http_req_free(r);
}

/* Queues the next chunk, or ends the reply. A store error mid-way can
 * only cut the reply short (the status line is out). */
static void stream_next(struct evhttp_connection *evcon, void *arg)
{
	struct http_req *r = arg;
	struct http_stream *s = r->stream;
	uint64_t n;

	if (s->off >= s->end) {
		if (s->decode)
			evbuffer_add(s->buf, s->out, mime_decoder_finish(&s->dec, s->out));
		if (evbuffer_get_length(s->buf) > 0)
			evhttp_send_reply_chunk(r->req, s->buf);
		stream_end(r);
		return;
	}
	n = s->end - s->off < HTTP_STREAM_CHUNK ? s->end - s->off : HTTP_STREAM_CHUNK;
	if (store_message_read_range(r->srv->store, s->id, s->off, n, stream_sink, s) != STORE_OK) {
		stream_end(r);
		return;
	}
	s->off += n;
	if (evbuffer_get_length(s->buf) == 0) {
		/* Nothing decoded from this chunk: go on without a write. */
		stream_next(evcon, r);
		return;
	}
	evhttp_send_reply_chunk_with_cb(r->req, s->buf, stream_next, r);
}

enum http_rc http_stream_message(struct http_req *r, int64_t id, uint64_t off, uint64_t len,
    const char *enc, bool length_known)
{
	struct http_stream *s;
	char clen[32];

	if ((s = calloc(1, sizeof(*s))) == NULL || (s->buf = evbuffer_new()) == NULL) {
		free(s);
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	s->id = id;
	s->off = off;
	s->end = off + len;
	s->decode = enc != NULL && mime_encoding_from_name(enc) != MIME_ENC_IDENTITY;
	if (s->decode)
		mime_decoder_init(&s->dec, mime_encoding_from_name(enc));
	r->stream = s;
	http_reply_common_headers(r);
	if (length_known && !s->decode) {
		snprintf(clen, sizeof(clen), "%llu", (unsigned long long)len);
		http_add_header(r, "Content-Length", clen);
	}
	if (r->method == EVHTTP_REQ_HEAD) {
		/* libevent sends no body for HEAD, and so no chunk callback. */
		evhttp_send_reply(r->req, 200, "OK", NULL);
		r->req = NULL;
		return HTTP_DONE;
	}
	http_req_defer(r);
	evhttp_send_reply_start(r->req, 200, "OK");
	stream_next(NULL, r);
	return HTTP_DEFERRED;
}

void http_stream_free(struct http_req *r)
{
	struct http_stream *s = r->stream;

	if (s == NULL)
		return;
	if (s->buf)
		evbuffer_free(s->buf);
	free(s);
	r->stream = NULL;
}

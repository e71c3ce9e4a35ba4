/*
 * Replies: every one goes through http_reply_buffer, which adds Date and
 * the CORS headers and gzips the body when the client accepts it.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <zlib.h>

#include "http_internal.h"

/* Bodies shorter than this go as they are: gzip would only add bytes. */
#define HTTP_GZIP_MIN 256

const char *http_reason(int code)
{
	switch (code) {
	case 200: return "OK";
	case 204: return "No Content";
	case 304: return "Not Modified";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 417: return "Expectation Failed";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 503: return "Service Unavailable";
	default: return "Unknown";
	}
}

void http_add_header(struct http_req *r, const char *name, const char *value)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);

	evhttp_remove_header(h, name);
	evhttp_add_header(h, name, value);
}

void http_date(char *buf, size_t len)
{
	time_t now = time(NULL);
	struct tm tm;

	gmtime_r(&now, &tm);
	if (strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0 && len > 0)
		buf[0] = '\0';
}

void http_reply_common_headers(struct http_req *r)
{
	char date[64];

	http_date(date, sizeof(date));
	http_add_header(r, "Date", date);
	if (r->origin != NULL) {
		http_add_header(r, "Access-Control-Allow-Origin", r->origin);
		http_add_header(r, "Vary", "Origin");
	}
}

/* gzip (RFC 1952) of the whole of in into out. 0, or -1. */
static int gzip_buffer(struct evbuffer *in, struct evbuffer *out)
{
	unsigned char *src = evbuffer_pullup(in, -1);
	size_t len = evbuffer_get_length(in);
	struct evbuffer_iovec v;
	z_stream z;
	int zrc = Z_OK;

	memset(&z, 0, sizeof(z));
	if (deflateInit2(&z, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8,
	    Z_DEFAULT_STRATEGY) != Z_OK)
		return -1;
	z.next_in = src;
	z.avail_in = (uInt)len;
	while (zrc != Z_STREAM_END) {
		if (evbuffer_reserve_space(out, 16384, &v, 1) < 1)
			break;
		z.next_out = v.iov_base;
		z.avail_out = (uInt)v.iov_len;
		zrc = deflate(&z, Z_FINISH);
		v.iov_len -= z.avail_out;
		evbuffer_commit_space(out, &v, 1);
		if (zrc != Z_OK && zrc != Z_STREAM_END && zrc != Z_BUF_ERROR)
			break;
	}
	deflateEnd(&z);
	return zrc == Z_STREAM_END ? 0 : -1;
}

void http_reply_buffer(struct http_req *r, int code, const char *ctype, struct evbuffer *body)
{
	struct evbuffer *gz = NULL;

	if (r->req == NULL)
		return;
	http_reply_common_headers(r);
	if (ctype != NULL)
		http_add_header(r, "Content-Type", ctype);
	if (body != NULL && r->gzip && evbuffer_get_length(body) >= HTTP_GZIP_MIN &&
	    (gz = evbuffer_new()) != NULL) {
		if (gzip_buffer(body, gz) == 0) {
			http_add_header(r, "Content-Encoding", "gzip");
			body = gz;
		}
		http_add_header(r, "Vary", r->origin ? "Origin, Accept-Encoding" :
		    "Accept-Encoding");
	}
	evhttp_send_reply(r->req, code, http_reason(code), body);
	r->req = NULL;
	if (gz != NULL)
		evbuffer_free(gz);
}

void http_reply_data(struct http_req *r, int code, const char *ctype, const void *data,
    size_t len)
{
	struct evbuffer *b = evbuffer_new();

	if (b != NULL && len > 0)
		evbuffer_add(b, data, len);
	http_reply_buffer(r, code, ctype, b);
	if (b != NULL)
		evbuffer_free(b);
}

void http_reply_text(struct http_req *r, int code, const char *text)
{
	http_reply_data(r, code, "text/plain; charset=utf-8", text, strlen(text));
}

void http_reply_json(struct http_req *r, int code, json_t *json)
{
	char *text;

	if (json == NULL) {
		http_reply_text(r, 500, "out of memory");
		return;
	}
	text = json_dumps(json, JSON_COMPACT);
	json_decref(json);
	if (text == NULL) {
		http_reply_text(r, 500, "out of memory");
		return;
	}
	http_reply_data(r, code, "application/json", text, strlen(text));
	free(text);
}

void http_reply_error(struct http_req *r, const char *msg)
{
	http_reply_text(r, 400, msg);
}

void http_reply_404(struct http_req *r)
{
	http_reply_text(r, 404, "404 page not found");
}

void http_reply_ok(struct http_req *r)
{
	http_reply_text(r, 200, "ok");
}

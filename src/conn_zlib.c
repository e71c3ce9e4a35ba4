/*
 * COMPRESS=DEFLATE (RFC 4978): a bufferevent filter that stacks raw
 * deflate both ways over a connection, plain or TLS.
 */
#include <stdlib.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#define ZLIB_CONST
#include <zlib.h>

#include "mailsnare/log.h"
#include "conn_internal.h"

/* Output is compressed as it is queued once this much waits (smaller
 * replies when the session flushes), in steps of CONN_ZLIB_CHUNK. */
#define CONN_ZLIB_BATCH (16 * 1024)
#define CONN_ZLIB_CHUNK (16 * 1024)
#define CONN_ZLIB_LEVEL 6

/* COMPRESS=DEFLATE (RFC 4978): raw deflate both ways, the filter's
 * context. Freed by the filter bufferevent, which may outlive its conn
 * (c is cleared then). */
struct conn_zlib {
	struct conn *c;
	z_stream in, out;
	bool in_ready, out_ready;
	bool in_ended;                /* the client ended its deflate stream */
	bool unflushed;               /* deflate holds output not yet flushed */
	bool failed;
	struct bufferevent *under;    /* the layer below (socket or TLS) */
	struct evbuffer_cb_entry *sent_cb;
};

/* Any zlib failure ends the connection; what is queued is dropped, as it
 * could not be compressed (conn_try_finish_close). */
static void conn_zlib_fail(struct conn_zlib *z, const char *what)
{
	struct conn *c = z->c;

	z->failed = true;
	if (c == NULL)
		return;
	log_info("%s: %s: deflate: %s; closing", c->proto->name, c->peer, what);
	conn_close(c);
}

/* Deflates len bytes (and flushes with Z_SYNC_FLUSH) into dst. */
static int conn_zlib_deflate(struct conn_zlib *z, struct evbuffer *dst, const void *data,
    size_t len, int flush)
{
	struct evbuffer_iovec v;
	int rc;

	z->out.next_in = data;
	z->out.avail_in = (uInt)len;
	do {
		if (evbuffer_reserve_space(dst, CONN_ZLIB_CHUNK, &v, 1) < 1)
			return -1;
		if (v.iov_len > CONN_ZLIB_CHUNK * 4)
			v.iov_len = CONN_ZLIB_CHUNK * 4;
		z->out.next_out = v.iov_base;
		z->out.avail_out = (uInt)v.iov_len;
		rc = deflate(&z->out, flush);
		v.iov_len -= z->out.avail_out;
		if (evbuffer_commit_space(dst, &v, 1) < 0 || rc == Z_STREAM_ERROR)
			return -1;
	} while (z->out.avail_out == 0);
	/* With room left over, deflate has taken all of its input. */
	return 0;
}

/*
 * Output filter. Queued output is compressed once CONN_ZLIB_BATCH bytes
 * wait (a streamed body), the rest when the session's output is flushed
 * (conn_flush: BEV_FLUSH), which ends with Z_SYNC_FLUSH so that the client
 * can decode every reply at once. Many small writes make one flush.
 */
static enum bufferevent_filter_result conn_zlib_out(struct evbuffer *src,
    struct evbuffer *dst, ev_ssize_t limit, enum bufferevent_flush_mode mode, void *arg)
{
	struct conn_zlib *z = arg;
	size_t left = evbuffer_get_length(src), n;
	bool flush = mode != BEV_NORMAL;
	const unsigned char *p;

	if (z->failed) {
		evbuffer_drain(src, left);
		return BEV_ERROR;
	}
	if ((!flush && left < CONN_ZLIB_BATCH) || (left == 0 && !z->unflushed))
		return BEV_NEED_MORE;
	do {
		n = left < CONN_ZLIB_CHUNK ? left : CONN_ZLIB_CHUNK;
		p = n ? evbuffer_pullup(src, (ev_ssize_t)n) : NULL;
		if ((n && p == NULL) || conn_zlib_deflate(z, dst, p, n,
		    flush && n == left ? Z_SYNC_FLUSH : Z_NO_FLUSH) < 0) {
			conn_zlib_fail(z, "compression failed");
			evbuffer_drain(src, left);
			return BEV_ERROR;
		}
		evbuffer_drain(src, n);
		left -= n;
	} while (left > 0);
	z->unflushed = !flush;
	return BEV_OK;
}

/*
 * Input filter. Inflates while the session's input buffer is below
 * CONN_READ_HIGHWATER (whatever the mode: a small compressed input cannot
 * grow without bound); the rest waits in the layer below, itself bounded
 * by its read watermark, for conn_zlib_pull.
 */
static enum bufferevent_filter_result conn_zlib_in(struct evbuffer *src,
    struct evbuffer *dst, ev_ssize_t limit, enum bufferevent_flush_mode mode, void *arg)
{
	struct conn_zlib *z = arg;
	bool progress = false;

	if (z->failed) {
		evbuffer_drain(src, evbuffer_get_length(src));
		return BEV_ERROR;
	}
	for (;;) {
		size_t have = evbuffer_get_length(dst), n = evbuffer_get_length(src), room, used;
		struct evbuffer_iovec v;
		unsigned char *p;
		int rc;

		if (n == 0 || have >= CONN_READ_HIGHWATER)
			break;
		if (z->in_ended) {
			conn_zlib_fail(z, "data after the end of the client's stream");
			return BEV_ERROR;
		}
		room = CONN_READ_HIGHWATER - have;
		if (room > CONN_ZLIB_CHUNK)
			room = CONN_ZLIB_CHUNK;
		if (n > CONN_ZLIB_CHUNK)
			n = CONN_ZLIB_CHUNK;
		if ((p = evbuffer_pullup(src, (ev_ssize_t)n)) == NULL ||
		    evbuffer_reserve_space(dst, (ev_ssize_t)room, &v, 1) < 1) {
			conn_zlib_fail(z, "out of memory");
			return BEV_ERROR;
		}
		z->in.next_in = p;
		z->in.avail_in = (uInt)n;
		z->in.next_out = v.iov_base;
		z->in.avail_out = (uInt)room;
		rc = inflate(&z->in, Z_SYNC_FLUSH);
		used = n - z->in.avail_in;
		v.iov_len = room - z->in.avail_out;
		evbuffer_commit_space(dst, &v, 1);
		evbuffer_drain(src, used);
		if (rc == Z_STREAM_END) {
			z->in_ended = true;
		} else if (rc != Z_OK && rc != Z_BUF_ERROR) {
			conn_zlib_fail(z, z->in.msg ? z->in.msg : "invalid compressed data");
			return BEV_ERROR;
		}
		if (used == 0 && v.iov_len == 0)
			break;
		progress = true;
	}
	return progress ? BEV_OK : BEV_NEED_MORE;
}

static void conn_zlib_free(void *arg)
{
	struct conn_zlib *z = arg;

	if (z->in_ready)
		inflateEnd(&z->in);
	if (z->out_ready)
		deflateEnd(&z->out);
	free(z);
}

void conn_zlib_flush(struct conn *c)
{
	bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
}

/* Inflates compressed input left below the filter; true if the session
 * has new input. */
bool conn_zlib_pull(struct conn *c)
{
	struct evbuffer *in;
	size_t before;

	if (c->z == NULL || c->closing || c->paused ||
	    evbuffer_get_length(bufferevent_get_input(c->z->under)) == 0)
		return false;
	in = bufferevent_get_input(c->bev);
	before = evbuffer_get_length(in);
	if (before >= CONN_READ_HIGHWATER)
		return false;
	bufferevent_flush(c->bev, EV_READ, BEV_FLUSH);
	return evbuffer_get_length(in) > before && !c->closing;
}

/* The layer below sent some of its output: the filter does not report
 * that upwards, so a session waiting for the drain (or a closing
 * connection) is told here. */
static void conn_zlib_sent(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct conn *c = arg;

	if (info->n_deleted == 0 || !(c->want_drain || c->closing))
		return;
	if (conn_output_pending(c) <= (c->closing ? 0 : CONN_WRITE_LOWWATER))
		bufferevent_trigger(c->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

int conn_compress(struct conn *c)
{
	struct bufferevent *under = c->bev, *filter;
	struct conn_zlib *z;

	if (c->z || c->closing || (z = calloc(1, sizeof(*z))) == NULL)
		return -1;
	/* Raw deflate (no zlib header), 32 KiB window: RFC 4978 §3. */
	z->in_ready = inflateInit2(&z->in, -15) == Z_OK;
	z->out_ready = z->in_ready && deflateInit2(&z->out, CONN_ZLIB_LEVEL, Z_DEFLATED, -15, 8,
	    Z_DEFAULT_STRATEGY) == Z_OK;
	if (!z->out_ready) {
		conn_zlib_free(z);
		return -1;
	}
	z->c = c;
	z->under = under;
	/* The reply that announced compression goes out as it is, ahead of
	 * anything compressed. Input is not touched: what the client sent
	 * after the command is compressed already. */
	conn_flush(c);
	filter = bufferevent_filter_new(under, conn_zlib_in, conn_zlib_out,
	    BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS, conn_zlib_free, z);
	if (filter == NULL) {
		conn_zlib_free(z);
		return -1;
	}
	z->sent_cb = evbuffer_add_cb(bufferevent_get_output(under), conn_zlib_sent, c);
	/* The filter keeps the idle timeout from now on. */
	bufferevent_set_timeouts(under, NULL, NULL);
	c->bev = filter;
	c->z = z;
	conn_setup_bev(c);
	return 0;
}

bool conn_is_compressed(struct conn *c)
{
	return c->z != NULL;
}

bool conn_zlib_failed(const struct conn *c)
{
	return c->z != NULL && c->z->failed;
}

void conn_zlib_detach(struct conn *c)
{
	if (c->z == NULL)
		return;
	if (c->z->sent_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(c->z->under), c->z->sent_cb);
	c->z->c = NULL;
}

/*
 * Listeners and connections on one event_base.
 *
 * A connection is a bufferevent (a socket, or an OpenSSL filter or socket
 * bufferevent for TLS, with a deflate filter on top once COMPRESS is on)
 * plus one protocol session. All bufferevent
 * callbacks are deferred, so a session never sees its connection freed
 * under its feet: the only place that frees is conn_free(), reached from
 * event callbacks (EOF, error, flushed close, wake-up).
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/listener.h>
#include <openssl/err.h>
#define ZLIB_CONST
#include <zlib.h>

#include "mailsnare/log.h"
#include "mailsnare/server.h"

/* Input is read ahead at most this far while a session is not consuming
 * it (back-pressure on pipelining clients). */
#define CONN_READ_HIGHWATER (256 * 1024)
/* A closing connection whose client does not read its last reply is
 * dropped after this long. */
#define CONN_CLOSE_GRACE_SEC 10
/* How long shutdown waits for sessions to finish. */
#define SERVER_STOP_GRACE_SEC 10
/* Deflate: output is compressed as it is queued once this much waits
 * (smaller replies when the session flushes), in steps of CONN_ZLIB_CHUNK. */
#define CONN_ZLIB_BATCH (16 * 1024)
#define CONN_ZLIB_CHUNK (16 * 1024)
#define CONN_ZLIB_LEVEL 6

struct listener {
	struct server *srv;
	const struct proto *proto;
	struct evconnlistener *evl;
	bool implicit_tls;
	struct listener *next;
};

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

struct conn {
	struct server *srv;
	const struct proto *proto;
	void *sess;
	struct bufferevent *bev;
	struct conn_zlib *z;          /* COMPRESS is on */
	struct event *ev_wake;        /* resume input, or finish closing */
	struct conn *prev, *next;
	unsigned timeout;
	bool tls;
	bool paused;
	bool closing;
	bool eof;                     /* the client shut down its side */
	bool skipping;                /* discarding the rest of a too-long line */
	bool want_drain;              /* call proto->drained at the low-water mark */
	bool throttled;               /* input stopped: too much output queued */
	bool handshaking;             /* a TLS handshake is running: login-timeout */
	struct evbuffer_cb_entry *bottom_cb;  /* drains of the socket-level output */
	char peer[INET6_ADDRSTRLEN];
	struct timeval close_started;
};

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
static void conn_zlib_flush(struct conn *c);
static bool conn_zlib_pull(struct conn *c);
static struct bufferevent *conn_bottom(struct conn *c);

/* Output passes through a filter (TLS, deflate) before the socket. */
static bool conn_layered(const struct conn *c)
{
	return c->tls || c->z != NULL;
}

/*
 * Plain connections write their replies directly once a session is done
 * with its input (conn_flush) and ask for EV_WRITE only when the socket
 * is full: a reply costs one write, not two epoll_ctl calls around it.
 * TLS and deflate bufferevents keep EV_WRITE, as their filters write
 * through OpenSSL or zlib.
 */
static void conn_setup_bev(struct conn *c)
{
	unsigned login = c->srv->cfg->login_timeout;
	struct timeval tv = { c->handshaking && (c->timeout == 0 || login < c->timeout) ?
	    login : c->timeout, 0 };

	bufferevent_setcb(c->bev, conn_readcb, conn_writecb, conn_eventcb, c);
	bufferevent_setwatermark(c->bev, EV_READ, 0, CONN_READ_HIGHWATER);
	bufferevent_setwatermark(c->bev, EV_WRITE, CONN_WRITE_LOWWATER, 0);
	bufferevent_set_timeouts(c->bev, tv.tv_sec ? &tv : NULL, NULL);
	if (!c->closing)
		bufferevent_enable(c->bev, EV_READ);
	if (conn_layered(c) || c->closing)
		bufferevent_enable(c->bev, EV_WRITE);
	else
		bufferevent_disable(c->bev, EV_WRITE);  /* on by default */
}

void conn_flush(struct conn *c)
{
	struct evbuffer *out = bufferevent_get_output(c->bev);

	if (c->z) {
		conn_zlib_flush(c);
		return;
	}
	if (c->tls || evbuffer_get_length(out) == 0)
		return;
	/* The bufferevent keeps the front of its output frozen against
	 * others draining it; thaw it for this one write. Errors other than
	 * a full socket surface through the bufferevent's own write. */
	evbuffer_unfreeze(out, 1);
	(void)evbuffer_write(out, bufferevent_getfd(c->bev));
	evbuffer_freeze(out, 1);
	if (evbuffer_get_length(out) > 0)
		bufferevent_enable(c->bev, EV_WRITE);
}

static void conn_free(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->sess)
		c->proto->free(c->sess);
	if (c->bottom_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(conn_bottom(c)), c->bottom_cb);
	if (c->z) {
		/* The filter frees the zlib state, perhaps later. */
		if (c->z->sent_cb)
			evbuffer_remove_cb_entry(bufferevent_get_output(c->z->under),
			    c->z->sent_cb);
		c->z->c = NULL;
	}
	if (c->bev)
		bufferevent_free(c->bev);
	event_free(c->ev_wake);
	if (c->prev)
		c->prev->next = c->next;
	else
		srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	srv->nconns--;
	log_info("%s: %s: connection closed", c->proto->name, c->peer);
	free(c);
	if (srv->stopping && srv->nconns == 0)
		event_base_loopexit(srv->base, NULL);
}

/* Counts every layer: deflate filter, TLS filter, socket. */
size_t conn_output_pending(struct conn *c)
{
	struct bufferevent *b;
	size_t n = 0;

	for (b = c->bev; b != NULL; b = bufferevent_get_underlying(b))
		n += evbuffer_get_length(bufferevent_get_output(b));
	return n;
}

/*
 * Output back-pressure. A session stops taking commands while more than
 * CONN_OUTPUT_MAX is queued on all layers (conn_readline says there is no
 * line; the IMAP reader asks conn_output_full), so a client that pipelines
 * and never reads costs that much and no more: its input waits in the
 * input buffer, bounded by the read watermark, and then in the kernel.
 * When the socket-level output is down to CONN_WRITE_LOWWATER the input
 * goes on, from the event loop.
 */
static struct bufferevent *conn_bottom(struct conn *c)
{
	struct bufferevent *b = c->bev, *under;

	while ((under = bufferevent_get_underlying(b)) != NULL)
		b = under;
	return b;
}

static void conn_unthrottle(struct conn *c)
{
	if (!c->throttled || c->closing || conn_output_pending(c) > CONN_WRITE_LOWWATER)
		return;
	c->throttled = false;
	event_active(c->ev_wake, EV_TIMEOUT, 0);
}

static void conn_bottom_sent(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	(void)buf;
	if (info->n_deleted > 0)
		conn_unthrottle(arg);
}

bool conn_output_full(struct conn *c)
{
	if (conn_output_pending(c) < CONN_OUTPUT_MAX)
		return false;
	c->throttled = true;
	return true;
}

/* Whether a session waiting for the drain may queue more: with deflate,
 * the filter's own output is compressed at once, and what bounds memory is
 * the compressed output below it. */
static bool conn_output_low(struct conn *c)
{
	return c->z == NULL || conn_output_pending(c) <= CONN_WRITE_LOWWATER;
}

/* Frees a closing connection once its output is out, or gives up after
 * the grace period; polls while a TLS filter's lower layer drains, since
 * the filter owns that layer's callbacks. */
static void conn_try_finish_close(struct conn *c)
{
	struct timeval now, poll = { 0, 20000 };

	if (c->z)
		conn_zlib_flush(c);
	if (conn_output_pending(c) == 0 || (c->z && c->z->failed)) {
		conn_free(c);
		return;
	}
	gettimeofday(&now, NULL);
	if (now.tv_sec - c->close_started.tv_sec > CONN_CLOSE_GRACE_SEC) {
		conn_free(c);
		return;
	}
	event_add(c->ev_wake, &poll);
}

static void conn_run_input(struct conn *c)
{
	if (!c->closing && !c->paused) {
		/* With deflate, compressed input may wait below the filter
		 * once its input buffer was full: inflate it as room is made. */
		do
			c->proto->input(c->sess);
		while (conn_zlib_pull(c));
		/* A client that half-closed after pipelining its last commands
		 * gets its replies; then the connection ends. */
		if (c->eof && !c->paused && !c->closing && !c->throttled)
			conn_close(c);
	}
	conn_flush(c);
	/* The kernel may have taken it all at once. */
	conn_unthrottle(c);
}

static void conn_wakecb(evutil_socket_t fd, short what, void *arg)
{
	struct conn *c = arg;

	if (c->closing)
		conn_try_finish_close(c);
	else
		conn_run_input(c);
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	conn_run_input(arg);
}

static void conn_writecb(struct bufferevent *bev, void *arg)
{
	struct conn *c = arg;

	if (c->closing) {
		conn_try_finish_close(c);
		return;
	}
	if (c->want_drain && c->proto->drained && conn_output_low(c)) {
		c->want_drain = false;
		c->proto->drained(c->sess);
		conn_flush(c);
	}
	if (!conn_layered(c) && !c->want_drain && !c->closing &&
	    evbuffer_get_length(bufferevent_get_output(c->bev)) == 0)
		bufferevent_disable(c->bev, EV_WRITE);
}

static void conn_log_tls_error(struct conn *c)
{
	struct bufferevent *b;
	unsigned long e;
	char buf[256];

	/* The TLS layer may sit below the deflate filter. */
	for (b = c->bev; b != NULL; b = bufferevent_get_underlying(b)) {
		while ((e = bufferevent_get_openssl_error(b)) != 0) {
			ERR_error_string_n(e, buf, sizeof(buf));
			log_debug("%s: %s: TLS: %s", c->proto->name, c->peer, buf);
		}
	}
}

static void conn_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct conn *c = arg;

	if (what & BEV_EVENT_CONNECTED) {
		/* TLS handshake done: the protocol's own timeout from now on. */
		c->handshaking = false;
		conn_set_timeout(c, c->timeout);
		return;
	}
	if (what & BEV_EVENT_TIMEOUT) {
		if (c->handshaking) {
			/* Nothing was said over it: nothing to flush. */
			log_info("%s: %s: TLS handshake timeout", c->proto->name, c->peer);
			conn_free(c);
			return;
		}
		if (!c->closing) {
			log_info("%s: %s: idle timeout", c->proto->name, c->peer);
			c->proto->timeout(c->sess);
			conn_close(c);
		}
		return;
	}
	if (c->tls)
		conn_log_tls_error(c);
	if ((what & BEV_EVENT_EOF) && !(what & BEV_EVENT_ERROR) && !c->closing) {
		c->eof = true;
		bufferevent_disable(c->bev, EV_READ);
		conn_run_input(c);
		return;
	}
	conn_free(c);
}

struct server *conn_server(struct conn *c) { return c->srv; }
const char *conn_peer(struct conn *c) { return c->peer; }
bool conn_is_tls(struct conn *c) { return c->tls; }
bool conn_tls_available(struct conn *c) { return c->srv->ssl_ctx != NULL; }
struct evbuffer *conn_input(struct conn *c) { return bufferevent_get_input(c->bev); }

void conn_set_timeout(struct conn *c, unsigned seconds)
{
	unsigned login = c->srv->cfg->login_timeout;
	struct timeval tv = { seconds, 0 };

	c->timeout = seconds;
	if (c->handshaking && (seconds == 0 || login < seconds))
		tv.tv_sec = login;
	bufferevent_set_timeouts(c->bev, tv.tv_sec ? &tv : NULL, NULL);
}

void conn_write(struct conn *c, const void *buf, size_t len)
{
	bufferevent_write(c->bev, buf, len);
}

void conn_wait_drain(struct conn *c)
{
	c->want_drain = true;
	bufferevent_enable(c->bev, EV_WRITE);
}

void conn_printf(struct conn *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	evbuffer_add_vprintf(bufferevent_get_output(c->bev), fmt, ap);
	va_end(ap);
}

enum conn_line conn_readline(struct conn *c, char *buf, size_t bufsize, size_t *len)
{
	struct evbuffer *in = bufferevent_get_input(c->bev);
	size_t eol_len = 0, avail;
	struct evbuffer_ptr eol;

	if (conn_output_full(c))
		return CONN_LINE_NONE;
	for (;;) {
		eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
		avail = evbuffer_get_length(in);
		if (c->skipping) {
			if (eol.pos < 0) {
				evbuffer_drain(in, avail);
				return CONN_LINE_NONE;
			}
			evbuffer_drain(in, eol.pos + eol_len);
			c->skipping = false;
			continue;
		}
		if (eol.pos < 0) {
			if (avail < bufsize)
				return CONN_LINE_NONE;
			evbuffer_drain(in, avail);
			c->skipping = true;
			return CONN_LINE_TOOLONG;
		}
		if ((size_t)eol.pos >= bufsize) {
			evbuffer_drain(in, eol.pos + eol_len);
			return CONN_LINE_TOOLONG;
		}
		evbuffer_remove(in, buf, eol.pos);
		evbuffer_drain(in, eol_len);
		buf[eol.pos] = '\0';
		*len = eol.pos;
		return CONN_LINE_OK;
	}
}

/* Pausing only stops consuming: reading goes on up to the high-water
 * mark, which bounds the buffer, and the epoll set is not touched twice
 * for every message that waits for its commit. */
void conn_pause(struct conn *c)
{
	c->paused = true;
}

void conn_resume(struct conn *c)
{
	if (!c->paused || c->closing)
		return;
	c->paused = false;
	event_active(c->ev_wake, EV_TIMEOUT, 0);
}

void conn_close(struct conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	gettimeofday(&c->close_started, NULL);
	bufferevent_disable(c->bev, EV_READ);
	bufferevent_enable(c->bev, EV_WRITE);
	bufferevent_set_timeouts(c->bev, NULL, NULL);
	event_active(c->ev_wake, EV_TIMEOUT, 0);
}

static SSL *conn_new_ssl(struct conn *c)
{
	SSL *ssl = SSL_new(c->srv->ssl_ctx);

	if (ssl == NULL)
		log_warn("%s: %s: SSL_new failed", c->proto->name, c->peer);
	return ssl;
}

int conn_starttls(struct conn *c)
{
	struct bufferevent *filter;
	SSL *ssl;

	if (c->srv->ssl_ctx == NULL || c->tls || c->z)
		return -1;
	if ((ssl = conn_new_ssl(c)) == NULL)
		return -1;
	/* Anything pipelined after STARTTLS was sent in clear text and must
	 * not be taken as if it came over TLS (RFC 3207 §4.2, CVE-2011-0411). */
	evbuffer_drain(bufferevent_get_input(c->bev),
	    evbuffer_get_length(bufferevent_get_input(c->bev)));
	c->skipping = false;
	filter = bufferevent_openssl_filter_new(c->srv->base, c->bev, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
	if (filter == NULL) {
		SSL_free(ssl);
		return -1;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(filter, 1);
	c->bev = filter;
	c->tls = true;
	c->handshaking = true;
	conn_setup_bev(c);
	return 0;
}

/* ---- COMPRESS=DEFLATE ---------------------------------------------------- */

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

static void conn_zlib_flush(struct conn *c)
{
	bufferevent_flush(c->bev, EV_WRITE, BEV_FLUSH);
}

/* Inflates compressed input left below the filter; true if the session
 * has new input. */
static bool conn_zlib_pull(struct conn *c)
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

static struct bufferevent *conn_make_bev(struct server *srv, evutil_socket_t fd,
    bool tls, struct conn *c)
{
	const int opts = BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS;
	struct bufferevent *bev;
	SSL *ssl;

	if (!tls)
		return bufferevent_socket_new(srv->base, fd, opts);
	if ((ssl = conn_new_ssl(c)) == NULL)
		return NULL;
	bev = bufferevent_openssl_socket_new(srv->base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, opts);
	if (bev == NULL) {
		SSL_free(ssl);
		return NULL;
	}
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return bev;
}

static void sockaddr_to_text(const struct sockaddr *sa, char *host, size_t hostlen,
    unsigned *port)
{
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *s6 = (const void *)sa;
		inet_ntop(AF_INET6, &s6->sin6_addr, host, hostlen);
		*port = ntohs(s6->sin6_port);
	} else {
		const struct sockaddr_in *s4 = (const void *)sa;
		inet_ntop(AF_INET, &s4->sin_addr, host, hostlen);
		*port = ntohs(s4->sin_port);
	}
}

static void listener_refuse(struct listener *l, evutil_socket_t fd)
{
	const char *reply = l->proto->busy_reply;

	/* Best effort: a full server does not wait on a client. */
	if (reply && !l->implicit_tls)
		(void)send(fd, reply, strlen(reply), MSG_NOSIGNAL | MSG_DONTWAIT);
	evutil_closesocket(fd);
}

static void listener_acceptcb(struct evconnlistener *evl, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct listener *l = arg;
	struct server *srv = l->srv;
	struct conn *c;
	unsigned port;
	int one = 1;

	if (srv->stopping || srv->nconns >= srv->cfg->max_clients) {
		log_warn("%s: refusing connection: %u clients (max-clients)",
		    l->proto->name, srv->nconns);
		listener_refuse(l, fd);
		return;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = srv;
	c->proto = l->proto;
	c->tls = l->implicit_tls;
	c->handshaking = c->tls;
	sockaddr_to_text(sa, c->peer, sizeof(c->peer), &port);
	c->ev_wake = event_new(srv->base, -1, 0, conn_wakecb, c);
	c->bev = c->ev_wake ? conn_make_bev(srv, fd, c->tls, c) : NULL;
	if (c->bev == NULL) {
		if (c->ev_wake)
			event_free(c->ev_wake);
		evutil_closesocket(fd);
		free(c);
		return;
	}
	c->next = srv->conns;
	if (srv->conns)
		srv->conns->prev = c;
	srv->conns = c;
	srv->nconns++;
	conn_setup_bev(c);
	/* The socket-level layer stays the bottom whatever is stacked on it
	 * later (STARTTLS, COMPRESS). */
	c->bottom_cb = evbuffer_add_cb(bufferevent_get_output(c->bev), conn_bottom_sent, c);
	log_info("%s: %s: connection from port %u%s", c->proto->name, c->peer, port,
	    c->tls ? " (TLS)" : "");
	if ((c->sess = c->proto->open(c)) == NULL)
		conn_close(c);
	conn_flush(c);
}

static int listener_bind(const char *addr, struct sockaddr_storage *ss, socklen_t *sslen,
    char *err, size_t errlen)
{
	char host[CONFIG_ADDR_MAX], port[16];
	struct addrinfo hints = { 0 }, *res;
	int rc;

	if (config_split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "invalid address '%s'", addr);
		return -1;
	}
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res)) != 0) {
		snprintf(err, errlen, "%s: %s", addr, gai_strerror(rc));
		return -1;
	}
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*sslen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static void format_bound(evutil_socket_t fd, char *bound, size_t boundlen)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char host[INET6_ADDRSTRLEN];
	unsigned port;

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		snprintf(bound, boundlen, "?");
		return;
	}
	sockaddr_to_text((struct sockaddr *)&ss, host, sizeof(host), &port);
	if (ss.ss_family == AF_INET6)
		snprintf(bound, boundlen, "[%s]:%u", host, port);
	else
		snprintf(bound, boundlen, "%s:%u", host, port);
}

int server_listen(struct server *srv, const struct proto *proto, const char *addr,
    bool implicit_tls, char *bound, size_t boundlen, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	socklen_t sslen;
	struct listener *l;

	if (implicit_tls && srv->ssl_ctx == NULL) {
		snprintf(err, errlen, "TLS is not available");
		return -1;
	}
	if (listener_bind(addr, &ss, &sslen, err, errlen) < 0)
		return -1;
	if ((l = calloc(1, sizeof(*l))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	l->srv = srv;
	l->proto = proto;
	l->implicit_tls = implicit_tls;
	l->evl = evconnlistener_new_bind(srv->base, listener_acceptcb, l,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_EXEC, 4096,
	    (struct sockaddr *)&ss, sslen);
	if (l->evl == NULL) {
		snprintf(err, errlen, "cannot listen on %s: %s", addr, strerror(errno));
		free(l);
		return -1;
	}
	format_bound(evconnlistener_get_fd(l->evl), bound, boundlen);
	l->next = srv->listeners;
	srv->listeners = l;
	return 0;
}

static void server_grace_expired(evutil_socket_t fd, short what, void *arg)
{
	struct server *srv = arg;

	log_warn("shutdown: %u connection(s) did not finish in time", srv->nconns);
	event_base_loopexit(srv->base, NULL);
}

void server_stop(struct server *srv)
{
	struct timeval grace = { SERVER_STOP_GRACE_SEC, 0 };
	struct listener *l;
	struct conn *c, *next;

	if (srv->stopping)
		return;
	srv->stopping = true;
	for (l = srv->listeners; l; l = l->next)
		evconnlistener_disable(l->evl);
	/* Acknowledge what is already written before telling anyone goodbye. */
	if (srv->deliver)
		deliver_flush(srv->deliver);
	for (c = srv->conns; c; c = next) {
		next = c->next;
		if (!c->closing)
			c->proto->shutdown(c->sess);
	}
	if (srv->nconns == 0)
		event_base_loopexit(srv->base, NULL);
	else
		event_base_once(srv->base, -1, EV_TIMEOUT, server_grace_expired, srv, &grace);
}

void server_free_listeners(struct server *srv)
{
	struct listener *l;

	while ((l = srv->listeners) != NULL) {
		srv->listeners = l->next;
		evconnlistener_free(l->evl);
		free(l);
	}
	/* Connections still open after the grace period are dropped now. */
	while (srv->conns)
		conn_free(srv->conns);
}

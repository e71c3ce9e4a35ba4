/*
 * Connections on one event_base.
 *
 * A connection is a bufferevent (a socket, or an OpenSSL filter or socket
 * bufferevent for TLS, with a deflate filter on top once COMPRESS is on)
 * plus one protocol session. All bufferevent
 * callbacks are deferred, so a session never sees its connection freed
 * under its feet: the only place that frees is conn_free(), reached from
 * event callbacks (EOF, error, flushed close, wake-up).
 */
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "mailsnare/config.h"
#include "mailsnare/log.h"
#include "mailsnare/metrics.h"
#include "mailsnare/server.h"
#include "conn_internal.h"

/* A closing connection whose client does not read its last reply is
 * dropped after this long. */
#define CONN_CLOSE_GRACE_SEC 10

static void conn_readcb(struct bufferevent *bev, void *arg);
static void conn_writecb(struct bufferevent *bev, void *arg);
static void conn_eventcb(struct bufferevent *bev, short what, void *arg);
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
void conn_setup_bev(struct conn *c)
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
	/* This write may have taken what the bufferevent's own would have
	 * written: then its completion, the drain callback, must come all the
	 * same (a FETCH waiting for it hung; the IMAP stress test). */
	if (c->want_drain && evbuffer_get_length(out) <= CONN_WRITE_LOWWATER)
		bufferevent_trigger(c->bev, EV_WRITE,
		    BEV_TRIG_IGNORE_WATERMARKS | BEV_TRIG_DEFER_CALLBACKS);
}

void conn_free(struct conn *c)
{
	struct server *srv = c->srv;

	if (c->sess)
		c->proto->free(c->sess);
	if (c->bottom_cb)
		evbuffer_remove_cb_entry(bufferevent_get_output(conn_bottom(c)), c->bottom_cb);
	conn_zlib_detach(c);
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
	metrics_conn_close(c->proto->name);
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
	if (conn_output_pending(c) == 0 || conn_zlib_failed(c)) {
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

/*
 * libevent 2.1's bufferevent_openssl on a socket does not look at what
 * OpenSSL has already decrypted when reading resumes after the input
 * high-water mark: with no new bytes on the socket nothing wakes it, and
 * the client's last commands waited there until a timeout (a 3.5 MB
 * CAPABILITY flood over IMAPS lost its last 141 replies now and then).
 * Pulls such bytes into the input, as a read would have. (A filter, as
 * STARTTLS makes, reads them itself when enabled.)
 */
static bool conn_tls_pull(struct conn *c)
{
	struct bufferevent *b;
	char buf[16384];
	SSL *ssl;
	int n;

	if (!c->tls)
		return false;
	for (b = c->bev; b != NULL; b = bufferevent_get_underlying(b)) {
		if ((ssl = bufferevent_openssl_get_ssl(b)) == NULL)
			continue;
		if (bufferevent_get_underlying(b) != NULL || SSL_pending(ssl) <= 0 ||
		    evbuffer_get_length(bufferevent_get_input(b)) >= CONN_READ_HIGHWATER)
			return false;
		if ((n = SSL_read(ssl, buf, sizeof(buf))) <= 0)
			return false;
		evbuffer_add(bufferevent_get_input(b), buf, (size_t)n);
		return true;
	}
	return false;
}

static void conn_run_input(struct conn *c)
{
	if (!c->closing && !c->paused) {
		/* With deflate, compressed input may wait below the filter
		 * once its input buffer was full: inflate it as room is made;
		 * and decrypted input may wait inside OpenSSL. */
		do
			c->proto->input(c->sess);
		while (conn_zlib_pull(c) || conn_tls_pull(c));
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

/* Linux delays its ACKs, and a client that writes a command or a message
 * in several small writes with Nagle on (Ruby's net-smtp and net-imap,
 * Perl's Net::SMTP, PHPMailer) holds each later write until the first is
 * ACKed: about 40 ms per command. Dovecot re-arms TCP_QUICKACK after every
 * read (the kernel clears it again); so do we, under TLS and deflate too. */
static void conn_quickack(struct conn *c)
{
#ifdef TCP_QUICKACK
	evutil_socket_t fd = bufferevent_getfd(conn_bottom(c));
	int one = 1;

	if (fd >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
#else
	(void)c;
#endif
}

static void conn_readcb(struct bufferevent *bev, void *arg)
{
	(void)bev;
	conn_quickack(arg);
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
size_t conn_input_length(struct conn *c)
{
	return evbuffer_get_length(bufferevent_get_input(c->bev));
}

size_t conn_peek(struct conn *c, const char **data)
{
	struct evbuffer_iovec v;

	if (evbuffer_peek(bufferevent_get_input(c->bev), -1, NULL, &v, 1) < 1) {
		*data = NULL;
		return 0;
	}
	*data = v.iov_base;
	return v.iov_len;
}

void conn_consume(struct conn *c, size_t n)
{
	evbuffer_drain(bufferevent_get_input(c->bev), n);
}

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

void conn_input_later(struct conn *c)
{
	static const struct timeval now = { 0, 0 };

	/* A timer, not event_active: the other sockets get their turn first
	 * (an event made active from a callback runs in the same pass). */
	if (!c->closing)
		event_add(c->ev_wake, &now);
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

void conn_accept(struct server *srv, const struct proto *proto, evutil_socket_t fd,
    bool tls, const char *peer, unsigned port)
{
	struct conn *c;
	int one = 1;

	if ((c = calloc(1, sizeof(*c))) == NULL) {
		evutil_closesocket(fd);
		return;
	}
	(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	c->srv = srv;
	c->proto = proto;
	c->tls = tls;
	c->handshaking = c->tls;
	snprintf(c->peer, sizeof(c->peer), "%s", peer);
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
	metrics_conn_open(c->proto->name);
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

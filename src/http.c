/*
 * The HTTP server: evhttp on the server's event_base, one per listener
 * (plain and TLS), the route table, who the client is (HTTP Basic,
 * http-admin, http-require-auth) and CORS.
 *
 * max-clients: evhttp (libevent 2.1) has no hook for a new connection,
 * but every connection's bufferevent comes from our bevcb, and each one
 * gets a close callback right after (struct http_conn). A pass-through
 * bufferevent filter (whose free hook would have done the same) lost
 * replies on libevent 2.1.12.
 *
 * Limits: see "limits" below for the 414, 431 and 413 replies, which
 * evhttp 2.1 would have sent as HTML 400s and 413s.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/ssl.h>

#include "mailsnare/auth.h"
#include "mailsnare/config.h"
#include "mailsnare/log.h"
#include "mailsnare/metrics.h"
#include "mailsnare/server.h"
#include "http_internal.h"

/* The delay before a wrong password is answered (as the mail protocols'
 * first failure), on top of the per-address budget of auth.c. */
#define HTTP_AUTH_DELAY_MS 1000

#define M_GET EVHTTP_REQ_GET
#define M_HEAD EVHTTP_REQ_HEAD
#define M_PUT EVHTTP_REQ_PUT
#define M_POST EVHTTP_REQ_POST
#define M_DELETE EVHTTP_REQ_DELETE
#define M_OPTIONS EVHTTP_REQ_OPTIONS

enum {
	ROUTE_OPEN = 1 << 0,     /* no credentials needed (health checks) */
	/* The handler searches (parked while the index has a backlog):
	 * always, with a non-empty ?query=, with a "Search" in the body. */
	ROUTE_SEARCH = 1 << 1,
	ROUTE_SEARCH_QUERY = 1 << 2,
	ROUTE_SEARCH_BODY = 1 << 3,
	/* The message ID may be "latest" (latest?query=: http_pool.c). */
	ROUTE_LATEST = 1 << 4,
	ROUTE_ID = ROUTE_SEARCH_QUERY | ROUTE_LATEST,
};

struct http_route {
	unsigned methods;
	const char *pattern;     /* "{}" matches one segment, "{}.html" a suffix */
	http_handler fn;
	unsigned flags;
};

/* Mailpit's paths (server/apiv1); GET also answers HEAD. */
static const struct http_route http_routes[] = {
	{ M_GET, "/api/v1/messages", http_api_messages_get, 0 },
	{ M_PUT, "/api/v1/messages", http_api_messages_put, ROUTE_SEARCH_BODY },
	{ M_DELETE, "/api/v1/messages", http_api_messages_delete, 0 },
	{ M_GET, "/api/v1/search", http_api_search_get, ROUTE_SEARCH_QUERY },
	{ M_DELETE, "/api/v1/search", http_api_search_delete, ROUTE_SEARCH_QUERY },
	{ M_GET, "/api/v1/message/{}", http_api_message_get, ROUTE_ID },
	{ M_GET, "/api/v1/message/{}/headers", http_api_message_headers, ROUTE_ID },
	{ M_GET, "/api/v1/message/{}/raw", http_api_message_raw, ROUTE_ID },
	{ M_GET, "/api/v1/message/{}/part/{}", http_api_message_part, ROUTE_ID },
	{ M_GET, "/api/v1/message/{}/part/{}/thumb", http_api_message_thumb, 0 },
	{ M_POST, "/api/v1/message/{}/release", http_api_message_release, 0 },
	{ M_GET, "/api/v1/tags", http_api_tags_get, 0 },
	{ M_PUT, "/api/v1/tags", http_api_tags_put, 0 },
	{ M_PUT, "/api/v1/tags/{}", http_api_tag_rename, ROUTE_SEARCH },
	{ M_DELETE, "/api/v1/tags/{}", http_api_tag_delete, ROUTE_SEARCH },
	{ M_POST, "/api/v1/send", http_api_send, 0 },
	{ M_GET, "/api/v1/info", http_api_info, 0 },
	{ M_GET, "/api/v1/webui", http_api_webui, 0 },
	{ M_GET, "/api/v1/swagger.json", http_api_swagger, 0 },
	{ M_GET, "/view/{}.html", http_api_view_html, ROUTE_ID },
	{ M_GET, "/view/{}.txt", http_api_view_txt, ROUTE_ID },
	{ M_GET, "/view/latest", http_api_view_html, ROUTE_ID },
	{ M_GET, "/api/v1/events", http_api_events_sse, 0 },
	{ M_GET, "/api/events", http_api_events_ws, 0 },
	{ M_GET, "/api/v1/wait", http_api_wait, ROUTE_SEARCH_QUERY },
	{ M_GET, "/api/v1/inboxes", http_api_inboxes_get, 0 },
	{ M_POST, "/api/v1/inboxes", http_api_inboxes_post, 0 },
	{ M_DELETE, "/api/v1/inboxes/{}", http_api_inboxes_delete, 0 },
	{ M_GET, "/livez", http_api_livez, ROUTE_OPEN },
	{ M_GET, "/readyz", http_api_readyz, ROUTE_OPEN },
	{ M_GET, "/api/v1/message/{}/structure", http_api_message_structure, ROUTE_ID },
	{ M_GET, "/", http_web_page, ROUTE_OPEN },
	{ M_GET, "/web/{}", http_web_file, ROUTE_OPEN },
	{ M_GET, "/api/v1/chaos", http_api_chaos_get, 0 },
	{ M_PUT, "/api/v1/chaos", http_api_chaos_put, 0 },
	{ M_GET, "/metrics", http_api_metrics, 0 },
};
#define N_ROUTES (sizeof(http_routes) / sizeof(http_routes[0]))

/* --- connections ------------------------------------------------------ */

/*
 * One accepted connection, from our bevcb to evhttp's close callback. The
 * evhttp_connection does not exist yet when bevcb runs; it is the
 * bufferevent's callback argument right after. An event of the highest
 * priority, made active in bevcb, runs before any I/O callback of the new
 * connection, and sets the close callback there.
 */
struct http_conn {
	struct server *srv;
	struct http_server *hs;
	struct bufferevent *bev;
	struct evhttp_connection *evcon;   /* NULL until adopted */
	struct http_req *pending;          /* a reply that comes later */
	bool counted, refused;
	/* Between a request's dispatch and its reply's end: its handler
	 * (or a stream) owns the connection, and the input is capped. */
	bool busy;
	bool line_pending;                 /* the next request line is unread */
	/* The head of the request on its way, counted as it arrives
	 * (http_head_scan): until its empty line, the bytes of the request
	 * line and of the whole head, and where the last byte stands. */
	bool head_pending, line_done;
	unsigned char eol;                 /* HEAD_MID, HEAD_BOL, HEAD_BOL_CR */
	size_t line_len, head_len;
	/* The error the connection ends with (http_conn_refuse), or 0; the
	 * event that writes it (the highest priority: it runs before the
	 * write event that would have sent evhttp's own page). */
	int refuse;
	struct event *ev_refuse;
	struct event *ev_slow;             /* a request arriving too slowly */
	struct event *ev_handshake;        /* https: the TLS handshake's deadline */
	struct evbuffer_cb_entry *in_cb, *out_cb;
	uint64_t in_bytes, mark;           /* bytes read; at the last check */
	struct http_conn *prev, *next;     /* hs->conns */
};

static void http_conn_unlink(struct http_conn *hc)
{
	struct http_server *hs = hc->hs;

	if (hc->prev)
		hc->prev->next = hc->next;
	else
		hs->conns = hc->next;
	if (hc->next)
		hc->next->prev = hc->prev;
}

static void http_pending_gone(struct http_req *r);

static void http_conn_closecb(struct evhttp_connection *evcon, void *arg)
{
	struct http_conn *hc = arg;
	struct server *srv = hc->srv;

	if (hc->pending != NULL)
		http_pending_gone(hc->pending);
	http_conn_unlink(hc);
	evbuffer_remove_cb_entry(bufferevent_get_input(hc->bev), hc->in_cb);
	evbuffer_remove_cb_entry(bufferevent_get_output(hc->bev), hc->out_cb);
	event_free(hc->ev_slow);
	if (hc->ev_refuse)
		event_free(hc->ev_refuse);
	if (hc->ev_handshake)
		event_free(hc->ev_handshake);
	if (hc->counted) {
		srv->nconns--;
		metrics_conn_close("http");
		if (srv->stopping && srv->nconns == 0)
			event_base_loopexit(srv->base, NULL);
	}
	free(hc);
}

/* Adopts every connection accepted since the last call. */
static void http_conn_adopt(evutil_socket_t fd, short what, void *arg)
{
	struct http_server *hs = arg;
	struct http_conn *hc, *next;
	struct timeval handshake = { (time_t)hs->srv->cfg->login_timeout, 0 };
	void *cbarg = NULL;
	evutil_socket_t sfd;
	int one = 1;

	for (hc = hs->conns; hc != NULL; hc = next) {
		next = hc->next;
		if (hc->evcon != NULL)
			continue;
		bufferevent_getcb(hc->bev, NULL, NULL, NULL, &cbarg);
		hc->evcon = cbarg;
		if (hc->evcon == NULL) {    /* cannot happen with evhttp 2.1 */
			http_conn_unlink(hc);
			free(hc);
			continue;
		}
		evhttp_connection_set_closecb(hc->evcon, http_conn_closecb, hc);
		if (hc->refused) {
			evhttp_connection_free(hc->evcon);
			continue;
		}
		/* evhttp writes a reply in 16 KiB pieces: with Nagle on, every
		 * piece after the first waited for the client's delayed ACK
		 * (48 ms for a page of 50 summaries; 1.8 ms without), as the
		 * mail protocols' connections have it off too (conn.c). */
		if ((sfd = bufferevent_getfd(hc->bev)) >= 0)
			(void)setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (hc->ev_handshake != NULL)
			(void)evtimer_add(hc->ev_handshake, &handshake);
	}
}

/* A TLS handshake is bounded as the mail protocols' are (login-timeout):
 * evhttp's timeout is one of inactivity, which a handshake trickled a
 * byte at a time never reaches, and the slow-request rule counts only
 * the bytes of requests, which come after it. */
static void http_handshake_check(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	SSL *ssl = bufferevent_openssl_get_ssl(hc->bev);

	(void)fd;
	(void)what;
	if (hc->evcon == NULL || ssl == NULL || SSL_is_init_finished(ssl))
		return;
	log_info("http: TLS handshake timeout");
	evhttp_connection_free(hc->evcon);     /* frees hc (http_conn_closecb) */
}

static struct http_conn *http_conn_of(struct http_server *hs, struct evhttp_connection *evcon)
{
	struct http_conn *hc;

	for (hc = hs->conns; hc != NULL; hc = hc->next)
		if (hc->evcon == evcon)
			return hc;
	return NULL;
}

/*
 * Slow requests (slowloris): evhttp's timeout is one of inactivity, so a
 * client sending a byte a second kept its connection, and a max-clients
 * slot, for ever. From the first byte of a request to its dispatch, every
 * HTTP_SLOW_S seconds must bring HTTP_MIN_RATE bytes a second, or the
 * connection is closed. An idle keep-alive connection (no byte of a next
 * request) is left to the idle timeout.
 */
static void http_slow_arm(struct http_conn *hc)
{
	struct timeval tv = { HTTP_SLOW_S, 0 };

	hc->mark = hc->in_bytes;
	(void)evtimer_add(hc->ev_slow, &tv);
}

static void http_slow_check(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;

	(void)fd;
	(void)what;
	if (hc->refuse != 0) {                 /* the end of its linger */
		evhttp_connection_free(hc->evcon);
		return;
	}
	if (hc->busy || hc->evcon == NULL)
		return;
	if (hc->in_bytes - hc->mark >= (uint64_t)HTTP_MIN_RATE * HTTP_SLOW_S) {
		http_slow_arm(hc);
		return;
	}
	log_info("http: closing a connection whose request came at under %d bytes/s",
	    HTTP_MIN_RATE);
	evhttp_connection_free(hc->evcon);     /* frees hc (http_conn_closecb) */
}

/*
 * evhttp has one body limit per connection, and the send API's is the
 * message size as base64 (38 MB by default): every route let a client,
 * before any credentials were looked at, make the server hold that much.
 * The request line is looked at as it arrives (before evhttp takes it):
 * only a POST to a path ending in /send (the send API, and its
 * /api/v1/inboxes/NAME/ form) gets the large limit, every other
 * request HTTP_BODY_MAX (413 from evhttp beyond it).
 */
static void http_conn_classify(struct http_conn *hc)
{
	static const char send_path[] = "/send";     /* and /api/v1/inboxes/NAME/send */
	struct evbuffer *in = bufferevent_get_input(hc->bev);
	char line[512];
	size_t n = evbuffer_copyout(in, line, sizeof(line) - 1), end;
	bool big = false;
	char *p;

	if (hc->evcon == NULL)
		return;
	line[n] = '\0';
	if ((p = memchr(line, '\n', n)) == NULL && n < sizeof(line) - 1)
		return;                        /* the rest of the line to come */
	hc->line_pending = false;
	if (strncmp(line, "POST ", 5) == 0) {
		end = strcspn(line + 5, " ?#\r\n");
		big = end >= sizeof(send_path) - 1 &&
		    memcmp(line + 5 + end - (sizeof(send_path) - 1), send_path,
		    sizeof(send_path) - 1) == 0;
	}
	evhttp_connection_set_max_body_size(hc->evcon, big ? (ev_ssize_t)hc->hs->send_body_max :
	    HTTP_BODY_MAX);
}

/* --- limits ----------------------------------------------------------- */

/*
 * evhttp (libevent 2.1.12, http.c) answers the bounds it enforces with
 * pages of its own: a request line or header section over
 * max_headers_size fails in evhttp_read_firstline / evhttp_read_header
 * with EVREQ_HTTP_INVALID_HEADER, a body over max_body_size with
 * EVREQ_HTTP_DATA_TOO_LONG, and evhttp_connection_incoming_fail hands
 * the request, without its URI, to evhttp_handle_request, which calls
 * evhttp_send_error: "400 Bad Request" or "413" as text/html, and so for
 * a malformed request line (400), an unknown method (501) or Expect
 * (417). No callback of ours sees any of it: evhttp_set_errorcb came in
 * 2.2, and a request's error_cb is called for outgoing requests only.
 * Two things of our connection layer stand around evhttp instead:
 *  - The head of each request is counted as it arrives, in the input
 *    buffer's callback, which runs before evhttp's read callback: a
 *    request line over HTTP_LINE_MAX is refused with 414, a head (line
 *    and headers) over HTTP_HEADERS_MAX with 431. Only line ends are
 *    looked at (evhttp's: LF or CRLF), not the headers: evhttp parses.
 *  - A reply that evhttp writes by itself (none of ours is being written:
 *    the connection is not busy), 100 Continue aside, is one of its error
 *    pages. It is in the output buffer, not yet on the socket (a
 *    bufferevent writes on its write event), when the refusal's event
 *    replaces it with ours, the same status in plain text.
 * Then the connection is ours, its callbacks replaced: the reply, with
 * Connection: close, a half-close once it is written, and what the
 * client still sends (a body not waited for) is read and dropped for
 * HTTP_LINGER_S at most; evhttp_connection_free ends it.
 */
enum { HEAD_MID, HEAD_BOL, HEAD_BOL_CR };

static void http_head_reset(struct http_conn *hc)
{
	hc->head_pending = true;
	hc->line_done = false;
	hc->eol = HEAD_BOL;
	hc->line_len = hc->head_len = 0;
}

/* n more bytes of the head: 0, or the status to refuse it with. An empty
 * line after the request line ends the head. */
static int http_head_scan_bytes(struct http_conn *hc, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n && hc->head_pending; i++) {
		hc->head_len++;
		if (!hc->line_done)
			hc->line_len++;
		if (p[i] == '\n') {
			if (hc->line_done && hc->eol != HEAD_MID)
				hc->head_pending = false;
			hc->line_done = true;
			hc->eol = HEAD_BOL;
		} else
			hc->eol = p[i] == '\r' && hc->eol == HEAD_BOL ? HEAD_BOL_CR : HEAD_MID;
		if (hc->line_len > HTTP_LINE_MAX)
			return 414;
		if (hc->head_len > HTTP_HEADERS_MAX)
			return 431;
	}
	return 0;
}

/* The input from offset from to its end, while the head lasts. */
static int http_head_scan(struct http_conn *hc, size_t from)
{
	struct evbuffer *in = bufferevent_get_input(hc->bev);
	size_t len = evbuffer_get_length(in), n;
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v;
	int code = 0;

	while (code == 0 && hc->head_pending && from < len) {
		if (evbuffer_ptr_set(in, &pos, from, EVBUFFER_PTR_SET) < 0 ||
		    evbuffer_peek(in, (ev_ssize_t)(len - from), &pos, &v, 1) < 1 ||
		    v.iov_len == 0)
			break;
		n = v.iov_len < len - from ? v.iov_len : len - from;
		code = http_head_scan_bytes(hc, v.iov_base, n);
		from += n;
	}
	return code;
}

static const char *http_refuse_text(int code)
{
	switch (code) {
	case 413: return "request body too large";
	case 414: return "URI too long: the request line is limited to 16 KiB";
	case 431: return "request header fields too large: the request line and headers "
	    "are limited to 64 KiB";
	default: return http_reason(code);
	}
}

static void http_refuse_readcb(struct bufferevent *bev, void *arg)
{
	struct evbuffer *in = bufferevent_get_input(bev);

	(void)arg;
	evbuffer_drain(in, evbuffer_get_length(in));
}

/* The reply is out: the client reads it, then the end of the stream. */
static void http_refuse_writecb(struct bufferevent *bev, void *arg)
{
	evutil_socket_t fd = bufferevent_getfd(bev);

	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0 && fd >= 0)
		(void)shutdown(fd, SHUT_WR);
}

/* The client closed (or the connection failed): nothing more to drop. */
static void http_refuse_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct http_conn *hc = arg;

	(void)bev;
	(void)what;
	evhttp_connection_free(hc->evcon);     /* frees hc (http_conn_closecb) */
}

/* The refusal's event: the connection's callbacks become ours (evhttp
 * may have set its own since http_conn_refuse), evhttp's page, if it
 * wrote one, and the unread input are dropped, and our reply goes. */
static void http_refuse_send(evutil_socket_t fd, short what, void *arg)
{
	struct http_conn *hc = arg;
	struct bufferevent *bev = hc->bev;
	struct evbuffer *in = bufferevent_get_input(bev), *out = bufferevent_get_output(bev);
	struct timeval linger = { HTTP_LINGER_S, 0 };
	const char *text = http_refuse_text(hc->refuse);
	char date[64];

	(void)fd;
	(void)what;
	bufferevent_setcb(bev, http_refuse_readcb, http_refuse_writecb, http_refuse_eventcb, hc);
	bufferevent_set_timeouts(bev, NULL, NULL);
	evbuffer_drain(in, evbuffer_get_length(in));
	/* A socket bufferevent keeps the front of its output frozen after its
	 * first write (against others draining it): thawed for this drain. */
	if (evbuffer_drain(out, evbuffer_get_length(out)) < 0) {
		evbuffer_unfreeze(out, 1);
		evbuffer_drain(out, evbuffer_get_length(out));
		evbuffer_freeze(out, 1);
	}
	http_date(date, sizeof(date));
	evbuffer_add_printf(out, "HTTP/1.1 %d %s\r\nDate: %s\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\nContent-Length: %zu\r\n"
	    "Connection: close\r\n\r\n%s", hc->refuse, http_reason(hc->refuse), date,
	    strlen(text), text);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	(void)evtimer_add(hc->ev_slow, &linger);    /* http_slow_check ends it */
	log_info("http: %d %s, closing the connection", hc->refuse, http_reason(hc->refuse));
}

/*
 * Ends the connection with code. Called from evbuffer callbacks, within
 * evhttp's calls or the bufferevent's: the reply waits for an event of
 * its own. The read callback is replaced now, so that evhttp does not
 * read what made the head too large.
 */
static void http_conn_refuse(struct http_conn *hc, int code)
{
	if (hc->refuse != 0 || hc->evcon == NULL)
		return;
	if (hc->ev_refuse == NULL) {
		hc->ev_refuse = event_new(bufferevent_get_base(hc->bev), -1, 0, http_refuse_send, hc);
		if (hc->ev_refuse == NULL)
			return;                /* out of memory: evhttp's answer stands */
		(void)event_priority_set(hc->ev_refuse, 0);
	}
	hc->refuse = code;
	evtimer_del(hc->ev_slow);
	bufferevent_setcb(hc->bev, http_refuse_readcb, NULL, http_refuse_eventcb, hc);
	event_active(hc->ev_refuse, EV_TIMEOUT, 0);
}

/* What evhttp writes while no request of ours is being answered: a
 * status line at the start of a write is its error page, or 100
 * Continue. */
static void http_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_conn *hc = arg;
	size_t len = evbuffer_get_length(buf), n = 0, k;
	struct evbuffer_ptr pos;
	struct evbuffer_iovec v[2];
	char line[16];
	int i, nv, code;

	if (info->n_added == 0 || hc->busy || hc->refuse != 0 || info->n_added > len)
		return;
	/* evbuffer_peek, not evbuffer_copyout_from, which fails on the
	 * frozen front of a socket bufferevent's output (http_refuse_send). */
	if (evbuffer_ptr_set(buf, &pos, len - info->n_added, EVBUFFER_PTR_SET) < 0 ||
	    (nv = evbuffer_peek(buf, sizeof(line) - 1, &pos, v, 2)) < 1)
		return;
	for (i = 0; i < nv && i < 2 && n < sizeof(line) - 1; i++) {
		k = v[i].iov_len < sizeof(line) - 1 - n ? v[i].iov_len : sizeof(line) - 1 - n;
		memcpy(line + n, v[i].iov_base, k);
		n += k;
	}
	line[n] = '\0';
	if (sscanf(line, "HTTP/%*d.%*d %3d", &code) == 1 && code >= 400 && code <= 599)
		http_conn_refuse(hc, code);
}

static void http_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_conn *hc = arg;
	size_t len = evbuffer_get_length(buf);
	int code;

	if (info->n_added == 0)
		return;
	hc->in_bytes += info->n_added;
	if (hc->busy || hc->refuse != 0)
		return;
	if (hc->head_pending &&
	    (code = http_head_scan(hc, len > info->n_added ? len - info->n_added : 0)) != 0) {
		http_conn_refuse(hc, code);
		return;
	}
	if (hc->line_pending)
		http_conn_classify(hc);
	if (!evtimer_pending(hc->ev_slow, NULL))
		http_slow_arm(hc);
}

/*
 * While a request is in its handler evhttp reads on (to see the client
 * go) without parsing: 30 MB of pipelined GETs never read were all held.
 * A read watermark caps the input then; it is lifted when the reply is
 * done, since evhttp keeps a Content-Length body in the input until it is
 * complete (a cap then would stall any body larger than it).
 */
static void http_conn_busy(struct http_conn *hc, bool busy)
{
	int code;

	hc->busy = busy;
	bufferevent_setwatermark(hc->bev, EV_READ, 0, busy ? HTTP_INPUT_MAX : 0);
	if (busy) {
		evtimer_del(hc->ev_slow);
		return;
	}
	hc->line_pending = true;
	http_head_reset(hc);
	if (evbuffer_get_length(bufferevent_get_input(hc->bev)) > 0) {
		/* a pipelined request is there */
		if ((code = http_head_scan(hc, 0)) != 0) {
			http_conn_refuse(hc, code);
			return;
		}
		http_conn_classify(hc);
		http_slow_arm(hc);
	}
}

static void http_req_complete(struct evhttp_request *req, void *arg)
{
	(void)req;
	http_conn_busy(arg, false);
}

/* A request reaches the route table: its connection is busy until the
 * reply's end (evhttp_send_done calls http_req_complete). */
static void http_conn_dispatch(struct http_server *hs, struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct http_conn *hc = evcon ? http_conn_of(hs, evcon) : NULL;

	if (hc == NULL)
		return;
	http_conn_busy(hc, true);
	evhttp_request_set_on_complete_cb(req, http_req_complete, hc);
}

static struct bufferevent *http_bevcb(struct event_base *base, void *arg, bool tls)
{
	struct http_server *hs = arg;
	struct server *srv = hs->srv;
	struct bufferevent *bev;
	struct http_conn *hc;
	SSL *ssl;

	if ((hc = calloc(1, sizeof(*hc))) == NULL)
		return NULL;
	hc->srv = srv;
	hc->hs = hs;
	hc->line_pending = true;
	http_head_reset(hc);
	if (tls) {
		if ((ssl = SSL_new(srv->ssl_ctx)) == NULL) {
			free(hc);
			return NULL;
		}
		bev = bufferevent_openssl_socket_new(base, -1, ssl, BUFFEREVENT_SSL_ACCEPTING,
		    BEV_OPT_CLOSE_ON_FREE);
	} else
		bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		free(hc);
		return NULL;
	}
	hc->bev = bev;
	if ((tls && (hc->ev_handshake = evtimer_new(base, http_handshake_check, hc)) == NULL) ||
	    (hc->ev_slow = evtimer_new(base, http_slow_check, hc)) == NULL ||
	    (hc->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), http_input_cb, hc)) == NULL ||
	    (hc->out_cb = evbuffer_add_cb(bufferevent_get_output(bev), http_output_cb, hc)) == NULL) {
		if (hc->ev_slow)
			event_free(hc->ev_slow);
		if (hc->ev_handshake)
			event_free(hc->ev_handshake);
		bufferevent_free(bev);
		free(hc);
		return NULL;
	}
	if (srv->stopping || srv->nconns >= srv->cfg->max_clients) {
		log_warn("http: refusing connection: %u clients (max-clients)", srv->nconns);
		hc->refused = true;
	} else {
		hc->counted = true;
		srv->nconns++;
		metrics_conn_open("http");
	}
	hc->next = hs->conns;
	if (hs->conns)
		hs->conns->prev = hc;
	hs->conns = hc;
	event_active(hs->ev_adopt, EV_TIMEOUT, 0);
	return bev;
}

static struct bufferevent *http_bevcb_plain(struct event_base *base, void *arg)
{
	return http_bevcb(base, arg, false);
}

static struct bufferevent *http_bevcb_tls(struct event_base *base, void *arg)
{
	return http_bevcb(base, arg, true);
}

/* --- requests ---------------------------------------------------------- */

const char *http_query(struct http_req *r, const char *name)
{
	const struct evhttp_uri *uri;
	const char *q;

	if (!r->query_parsed) {
		r->query_parsed = true;
		TAILQ_INIT(&r->query);
		uri = evhttp_request_get_evhttp_uri(r->req);
		q = uri ? evhttp_uri_get_query(uri) : NULL;
		if (q != NULL)
			(void)evhttp_parse_query_str(q, &r->query);
	}
	return evhttp_find_header(&r->query, name);
}

const char *http_header(struct http_req *r, const char *name)
{
	return evhttp_find_header(evhttp_request_get_input_headers(r->req), name);
}

char *http_body(struct http_req *r, size_t *len)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	size_t n = evbuffer_get_length(in);
	char *p;

	if ((p = malloc(n + 1)) == NULL)
		return NULL;
	evbuffer_copyout(in, p, n);
	p[n] = '\0';
	*len = n;
	return p;
}

void http_req_free(struct http_req *r)
{
	if (r->cleanup != NULL)
		r->cleanup(r);
	http_events_req_gone(r);
	http_stream_free(r);
	if (r->ev_timer)
		event_free(r->ev_timer);
	if (r->query_parsed)
		evhttp_clear_headers(&r->query);
	free(r);
}

/* The connection goes while a reply is pending: libevent frees a request
 * still on it right after this; one it detached (the client closed) is
 * ours to free. Either way nothing of r is left. */
static void http_pending_gone(struct http_req *r)
{
	if (r->req != NULL && evhttp_request_get_connection(r->req) == NULL)
		evhttp_request_free(r->req);
	r->req = NULL;
	r->hc = NULL;
	http_req_free(r);
}

void http_req_defer(struct http_req *r)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);

	r->deferred = true;
	if (evcon != NULL && (r->hc = http_conn_of(r->hs, evcon)) != NULL)
		r->hc->pending = r;
}

/* Called before the last reply call: that call may free the connection. */
void http_req_done(struct http_req *r)
{
	if (r->hc != NULL)
		r->hc->pending = NULL;
	r->hc = NULL;
}

static void http_req_finish(struct http_req *r, enum http_rc rc)
{
	if (rc == HTTP_DONE)
		http_req_free(r);
}

/* --- routing ------------------------------------------------------------ */

/* Matches one pattern segment against one path segment. */
static bool segment_match(struct http_req *r, const char *pat, size_t plen,
    const char *seg, size_t slen)
{
	size_t suffix;

	if (plen < 2 || pat[0] != '{' || pat[1] != '}')
		return plen == slen && memcmp(pat, seg, slen) == 0;
	suffix = plen - 2;
	if (slen <= suffix || memcmp(seg + slen - suffix, pat + 2, suffix) != 0 ||
	    r->nargs >= HTTP_ARGS_MAX || slen - suffix >= HTTP_ARG_MAX)
		return false;
	memcpy(r->args[r->nargs], seg, slen - suffix);
	r->args[r->nargs][slen - suffix] = '\0';
	r->nargs++;
	return true;
}

static bool route_match(struct http_req *r, const char *pattern)
{
	const char *p = pattern, *s = r->path;

	r->nargs = 0;
	while (*p == '/' && *s == '/') {
		const char *pe = strchrnul(p + 1, '/'), *se = strchrnul(s + 1, '/');
		if (!segment_match(r, p + 1, (size_t)(pe - p - 1), s + 1, (size_t)(se - s - 1)))
			return false;
		p = pe;
		s = se;
	}
	return *p == '\0' && *s == '\0';
}

/* The route for the path, and whether the method is one it takes. */
static const struct http_route *route_find(struct http_req *r, bool *path_known)
{
	unsigned m = r->method == M_HEAD ? M_GET : (unsigned)r->method;
	size_t i;

	*path_known = false;
	for (i = 0; i < N_ROUTES; i++) {
		if (!route_match(r, http_routes[i].pattern))
			continue;
		*path_known = true;
		if (http_routes[i].methods & m)
			return &http_routes[i];
	}
	return NULL;
}

/* Whether the handler will run a query with terms, which indexes the
 * backlog first (store_message_query). A wrong yes costs a wait for the
 * index slices, never a wrong answer. */
static bool route_searches(struct http_req *r, const struct http_route *rt)
{
	const char *q;

	if (rt->flags & ROUTE_SEARCH)
		return true;
	if ((rt->flags & ROUTE_SEARCH_QUERY) && (q = http_query(r, "query")) != NULL &&
	    q[0] != '\0')
		return true;
	return (rt->flags & ROUTE_SEARCH_BODY) &&
	    evbuffer_search(evhttp_request_get_input_buffer(r->req), "\"Search\"", 8,
	    NULL).pos >= 0;
}

static void route_allow(struct http_req *r, char *buf, size_t len)
{
	static const struct { unsigned m; const char *name; } names[] = {
		{ M_GET, "GET" }, { M_PUT, "PUT" }, { M_POST, "POST" }, { M_DELETE, "DELETE" },
	};
	unsigned methods = 0;
	size_t i, n = 0;

	for (i = 0; i < N_ROUTES; i++)
		if (route_match(r, http_routes[i].pattern))
			methods |= http_routes[i].methods;
	buf[0] = '\0';
	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (methods & names[i].m)
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s",
			    n ? ", " : "", names[i].name);
	if (n < len)
		snprintf(buf + n, len - n, "%sOPTIONS", n ? ", " : "");
}

/* --- CORS ---------------------------------------------------------------- */

static void cors_check(struct http_req *r)
{
	const char *origin = http_header(r, "Origin");
	size_t i;

	r->origin = NULL;
	if (origin == NULL)
		return;
	if (r->hs->cors_any) {
		r->origin = origin;
		return;
	}
	for (i = 0; i < r->hs->ncors; i++)
		if (strcasecmp(r->hs->cors[i], origin) == 0)
			r->origin = origin;
}

static void cors_preflight(struct http_req *r)
{
	const char *want = http_header(r, "Access-Control-Request-Headers");
	char allow[128];

	if (r->origin == NULL) {
		http_reply_text(r, 403, "CORS: origin not allowed");
		return;
	}
	route_allow(r, allow, sizeof(allow));
	http_add_header(r, "Access-Control-Allow-Methods", allow);
	http_add_header(r, "Access-Control-Allow-Headers",
	    want ? want : "Authorization, Content-Type");
	http_add_header(r, "Access-Control-Max-Age", "600");
	http_reply_data(r, 204, NULL, NULL, 0);
}

/* --- who asks -------------------------------------------------------------- */

static void http_unauthorized(struct http_req *r)
{
	/* The web page asks for credentials itself: a browser that saw the
	 * challenge would open its own prompt over the page (or, headless,
	 * stall the request). */
	if (http_header(r, "X-Requested-With") == NULL)
		http_add_header(r, "WWW-Authenticate", "Basic realm=\"mailsnare\"");
	http_reply_text(r, 401, "Unauthorized");
}

static void http_auth_delay_done(evutil_socket_t fd, short what, void *arg)
{
	struct http_req *r = arg;

	http_req_done(r);
	http_unauthorized(r);
	http_req_free(r);
}

uint64_t http_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Wrong credentials: 401 after the delay every protocol applies, charged
 * to the client address's budget. */
static enum http_rc http_auth_fail(struct http_req *r, const char *peer)
{
	unsigned ms = auth_budget_charge(&r->srv->auth.budget, peer, http_now_ms(),
	    HTTP_AUTH_DELAY_MS);
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };

	log_info("http: %s: authentication failed", peer);
	metrics_auth_failure("http");
	r->ev_timer = evtimer_new(r->srv->base, http_auth_delay_done, r);
	if (r->ev_timer == NULL || evtimer_add(r->ev_timer, &tv) < 0) {
		http_unauthorized(r);
		return HTTP_DONE;
	}
	http_req_defer(r);
	return HTTP_DEFERRED;
}

/* HTTP_DONE with a reply sent if the request may not go on; otherwise sets
 * the scope and returns HTTP_DEFERRED's opposite through *go. */
static enum http_rc http_authenticate(struct http_req *r, const struct http_route *rt,
    bool *go)
{
	const char *authz = http_header(r, "Authorization");
	char user[HTTP_AUTH_USER_MAX], pass[HTTP_AUTH_PASS_MAX], *peer = NULL;
	struct store_inbox in;
	ev_uint16_t port;
	int rc;

	*go = false;
	evhttp_connection_get_peer(evhttp_request_get_connection(r->req), &peer, &port);
	if (authz == NULL) {
		if (r->srv->cfg->http_require_auth && !(rt->flags & ROUTE_OPEN)) {
			http_unauthorized(r);
			return HTTP_DONE;
		}
		*go = true;
		return HTTP_DONE;
	}
	if (http_auth_parse_basic(authz, user, sizeof(user), pass, sizeof(pass)) < 0)
		return http_auth_fail(r, peer ? peer : "?");
	if (r->hs->admin_set && strcmp(user, r->hs->admin_user) == 0 &&
	    sasl_streq_ct(pass, r->hs->admin_pass)) {
		r->who = HTTP_WHO_ADMIN;
		*go = true;
		return HTTP_DONE;
	}
	rc = auth_check_password(r->srv->store, &r->srv->auth, user, pass, &in);
	if (rc == STORE_NOTFOUND)
		return http_auth_fail(r, peer ? peer : "?");
	if (rc != STORE_OK) {
		http_reply_text(r, 503, "store unavailable");
		return HTTP_DONE;
	}
	r->who = HTTP_WHO_INBOX;
	r->inbox_id = in.id;
	snprintf(r->inbox, sizeof(r->inbox), "%s", in.name);
	*go = true;
	return HTTP_DONE;
}

static bool http_accepts_gzip(struct http_req *r)
{
	const char *ae = http_header(r, "Accept-Encoding");

	return ae != NULL && strcasestr(ae, "gzip") != NULL;
}

static int http_req_init(struct http_req *r, struct http_server *hs, struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri ? evhttp_uri_get_path(uri) : NULL;
	char *dec;
	size_t n;

	r->hs = hs;
	r->srv = hs->srv;
	r->req = req;
	r->method = evhttp_request_get_command(req);
	if (path == NULL || path[0] != '/')
		return -1;
	if ((dec = evhttp_uridecode(path, 0, &n)) == NULL)
		return -1;
	if (n >= sizeof(r->path) || memchr(dec, '\0', n) != NULL) {
		free(dec);
		return -1;
	}
	memcpy(r->path, dec, n + 1);
	free(dec);
	r->gzip = http_accepts_gzip(r);
	cors_check(r);
	return 0;
}

static void http_gencb(struct evhttp_request *req, void *arg)
{
	struct http_server *hs = arg;
	const struct http_route *rt;
	struct http_req *r;
	char allow[128];
	bool known, go;
	enum http_rc rc;

	http_conn_dispatch(hs, req);
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		evhttp_send_error(req, 503, NULL);
		return;
	}
	if (http_req_init(r, hs, req) < 0) {
		r->method = M_GET;
		http_reply_text(r, 400, "Bad Request");
		http_req_free(r);
		return;
	}
	if (http_inbox_prefix(r) < 0) {
		http_reply_404(r);
		http_req_free(r);
		return;
	}
	rt = route_find(r, &known);
	if (r->method == M_OPTIONS && known) {
		cors_preflight(r);
		http_req_free(r);
		return;
	}
	if (rt == NULL) {
		if (known) {
			route_allow(r, allow, sizeof(allow));
			http_add_header(r, "Allow", allow);
			http_reply_text(r, 405, "Method Not Allowed");
		} else
			http_reply_404(r);
		http_req_free(r);
		return;
	}
	rc = http_authenticate(r, rt, &go);
	if (go && http_inbox_scope(r))
		rc = route_searches(r, rt) && http_park(r, rt->fn, rt->flags & ROUTE_LATEST) ?
		    HTTP_DEFERRED : http_route_run(r, rt->fn, rt->flags & ROUTE_LATEST);
	http_req_finish(r, rc);
}

/* --- the server ------------------------------------------------------------- */

static int http_parse_cors(struct http_server *hs, const char *list, char *err, size_t errlen)
{
	const char *p = list, *e;
	size_t n;

	while (*p != '\0') {
		e = strchrnul(p, ',');
		n = (size_t)(e - p);
		if (n == 1 && *p == '*')
			hs->cors_any = true;
		else if (n == 0 || n >= HTTP_ORIGIN_MAX || hs->ncors >= HTTP_CORS_MAX) {
			snprintf(err, errlen, "http-cors: invalid origin list '%s' (want up to %d "
			    "origins such as http://localhost:3000, comma-separated)", list,
			    HTTP_CORS_MAX);
			return -1;
		} else {
			memcpy(hs->cors[hs->ncors], p, n);
			hs->cors[hs->ncors++][n] = '\0';
		}
		p = *e ? e + 1 : e;
	}
	return 0;
}

struct http_server *http_server_new(struct server *srv, char *err, size_t errlen)
{
	const struct config *cfg = srv->cfg;
	struct http_server *hs;

	if ((hs = calloc(1, sizeof(*hs))) == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	hs->srv = srv;
	hs->started = time(NULL);
	if ((hs->ev_adopt = event_new(srv->base, -1, 0, http_conn_adopt, hs)) == NULL ||
	    event_priority_set(hs->ev_adopt, 0) < 0) {
		snprintf(err, errlen, "out of memory");
		if (hs->ev_adopt)
			event_free(hs->ev_adopt);
		free(hs);
		return NULL;
	}
	if (cfg->http_admin[0] != '\0') {
		if (http_auth_split(cfg->http_admin, strlen(cfg->http_admin), hs->admin_user,
		    sizeof(hs->admin_user), hs->admin_pass, sizeof(hs->admin_pass)) < 0) {
			snprintf(err, errlen, "http-admin: invalid value (want user:password)");
			event_free(hs->ev_adopt);
			free(hs);
			return NULL;
		}
		hs->admin_set = true;
	}
	if (http_parse_cors(hs, cfg->http_cors, err, errlen) < 0) {
		event_free(hs->ev_adopt);
		free(hs);
		return NULL;
	}
	if ((hs->events = http_events_new(hs)) == NULL ||
	    (hs->park = http_park_new(hs)) == NULL) {
		snprintf(err, errlen, "out of memory");
		http_events_free(hs->events);
		event_free(hs->ev_adopt);
		free(hs);
		return NULL;
	}
	return hs;
}

static struct evhttp *http_evhttp_new(struct http_server *hs, bool tls)
{
	struct server *srv = hs->srv;
	struct evhttp *h = evhttp_new(srv->base);
	uint64_t send_max;

	if (h == NULL)
		return NULL;
	/* The send API takes a message of max-message-size as base64 JSON;
	 * every other request is held to HTTP_BODY_MAX (http_conn_classify). */
	send_max = srv->cfg->max_message_size / 3 * 4 + 1024 * 1024;
	hs->send_body_max = send_max > HTTP_BODY_MAX ? send_max : HTTP_BODY_MAX;
	evhttp_set_max_body_size(h, (ev_ssize_t)hs->send_body_max);
	/* No EVHTTP_SERVER_LINGERING_CLOSE: with it evhttp read a body over
	 * the limit to its end (any Content-Length) before the 413. The 413
	 * comes after the head, and the rest is dropped for a while (limits). */
	evhttp_set_max_headers_size(h, HTTP_HEADERS_MAX);
	evhttp_set_timeout(h, HTTP_IDLE_TIMEOUT);
	evhttp_set_allowed_methods(h, M_GET | M_HEAD | M_PUT | M_POST | M_DELETE | M_OPTIONS);
	evhttp_set_default_content_type(h, "text/plain; charset=utf-8");
	evhttp_set_bevcb(h, tls ? http_bevcb_tls : http_bevcb_plain, hs);
	evhttp_set_gencb(h, http_gencb, hs);
	return h;
}

int http_server_listen(struct http_server *hs, const char *addr, bool tls, char *bound,
    size_t boundlen, char *err, size_t errlen)
{
	struct evhttp **slot = tls ? &hs->tls : &hs->plain;
	struct evhttp_bound_socket *bs;
	char host[CONFIG_ADDR_MAX], port[16];
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	char text[64];

	if (tls && hs->srv->ssl_ctx == NULL) {
		snprintf(err, errlen, "TLS is not available");
		return -1;
	}
	if (config_split_hostport(addr, host, sizeof(host), port, sizeof(port)) < 0) {
		snprintf(err, errlen, "invalid address '%s'", addr);
		return -1;
	}
	if (*slot == NULL && (*slot = http_evhttp_new(hs, tls)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	bs = evhttp_bind_socket_with_handle(*slot, host[0] ? host : "0.0.0.0",
	    (ev_uint16_t)atoi(port));
	if (bs == NULL) {
		snprintf(err, errlen, "cannot listen on %s", addr);
		return -1;
	}
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &len) < 0) {
		snprintf(bound, boundlen, "%s", addr);
		return 0;
	}
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
		evutil_inet_ntop(AF_INET6, &s6->sin6_addr, text, sizeof(text));
		snprintf(bound, boundlen, "[%s]:%u", text, ntohs(s6->sin6_port));
	} else {
		struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
		evutil_inet_ntop(AF_INET, &s4->sin_addr, text, sizeof(text));
		snprintf(bound, boundlen, "%s:%u", text, ntohs(s4->sin_port));
	}
	return 0;
}

void http_server_ready(struct http_server *hs)
{
	if (hs != NULL)
		hs->ready = true;
}

/* Freeing an evhttp closes its connections: each one's close callback
 * leaves srv->nconns (and ends the loop with the last one). */
void http_server_stop(struct http_server *hs)
{
	if (hs == NULL || hs->stopping)
		return;
	hs->stopping = true;
	http_conn_adopt(-1, 0, hs);
	if (hs->plain)
		evhttp_free(hs->plain);
	if (hs->tls)
		evhttp_free(hs->tls);
	hs->plain = hs->tls = NULL;
}

void http_server_free(struct http_server *hs)
{
	if (hs == NULL)
		return;
	http_server_stop(hs);
	http_send_pool_free(hs->send_pool);
	http_park_free(hs->park);
	http_events_free(hs->events);
	event_free(hs->ev_adopt);
	free(hs);
}

void http_server_index_slice(struct http_server *hs, bool caught_up)
{
	if (hs != NULL)
		http_park_slice(hs->park, caught_up);
}

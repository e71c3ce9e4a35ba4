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
	struct event *ev_slow;             /* a request arriving too slowly */
	struct event *ev_handshake;        /* https: the TLS handshake's deadline */
	struct evbuffer_cb_entry *in_cb;
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
	event_free(hc->ev_slow);
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

static void http_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct http_conn *hc = arg;

	(void)buf;
	if (info->n_added == 0)
		return;
	hc->in_bytes += info->n_added;
	if (hc->busy)
		return;
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
	hc->busy = busy;
	bufferevent_setwatermark(hc->bev, EV_READ, 0, busy ? HTTP_INPUT_MAX : 0);
	if (busy) {
		evtimer_del(hc->ev_slow);
		return;
	}
	hc->line_pending = true;
	if (evbuffer_get_length(bufferevent_get_input(hc->bev)) > 0) {
		http_conn_classify(hc);       /* a pipelined request is there */
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
	    (hc->in_cb = evbuffer_add_cb(bufferevent_get_input(bev), http_input_cb, hc)) == NULL) {
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
	/* A body over the limit is read and dropped before the 413, so that
	 * a client still sending it reads the reply (not a reset). */
	(void)evhttp_set_flags(h, EVHTTP_SERVER_LINGERING_CLOSE);
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

/*
 * Shared by the HTTP modules (http*.c) only: the server, one request in
 * progress, the route handlers and the reply helpers.
 */
#ifndef MAILSNARE_HTTP_INTERNAL_H
#define MAILSNARE_HTTP_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>

#include "mailsnare/http.h"
#include "mailsnare/http_auth.h"
#include "mailsnare/store.h"

struct evbuffer;
struct event;
struct mime_part;
struct http_conn;
struct http_park;
struct send_pool;

#define HTTP_CORS_MAX 16
#define HTTP_ORIGIN_MAX 256

struct http_server {
	struct server *srv;
	struct evhttp *plain, *tls;        /* NULL: that listener is off */
	struct http_conn *conns;           /* every open connection */
	struct event *ev_adopt;            /* sets up the ones just accepted */
	bool ready, stopping;
	bool admin_set;
	char admin_user[HTTP_AUTH_USER_MAX], admin_pass[HTTP_AUTH_PASS_MAX];
	char cors[HTTP_CORS_MAX][HTTP_ORIGIN_MAX];
	size_t ncors;
	bool cors_any;                     /* "*" */
	time_t started;
	struct http_events *events;        /* http_events.c */
	struct http_park *park;            /* http_park.c */
	struct send_pool *send_pool;       /* http_api_send.c, made on first use */
	uint64_t send_body_max;            /* the send API's body limit */
};

#define HTTP_ARGS_MAX 2
#define HTTP_ARG_MAX 256

/* One request from arrival to its reply (which may come from a later
 * loop pass: a failure delay, a streamed body). */
struct http_req {
	struct http_server *hs;
	struct server *srv;
	struct evhttp_request *req;        /* NULL once libevent freed it */
	enum evhttp_cmd_type method;
	char path[1024];                   /* decoded, without the query */
	struct evkeyvalq query;
	bool query_parsed;
	char args[HTTP_ARGS_MAX][HTTP_ARG_MAX];  /* the route's {} segments */
	size_t nargs;
	/* Who asks: inbox_id 0 sees every inbox. */
	enum http_who { HTTP_WHO_ANON, HTTP_WHO_ADMIN, HTTP_WHO_INBOX } who;
	int64_t inbox_id;
	char inbox[STORE_NAME_MAX];
	char scope[STORE_NAME_MAX];        /* from /api/v1/inboxes/{Name}/..., or "" */
	bool gzip;                         /* the client accepts gzip */
	const char *origin;                /* an allowed CORS origin, or NULL */
	bool deferred;                     /* replied to from a later loop pass */
	struct event *ev_timer;            /* the failure delay */
	void *stream;                      /* http_stream.c's state */
	struct http_conn *hc;              /* its connection while deferred */
	/* Frees what a deferred handler holds (http_req_free calls it). */
	void (*cleanup)(struct http_req *r);
	void *cleanup_arg;
	struct http_sub *sub;              /* http_events.c's, or NULL */
	/* latest?query= already found on the search pool (http_latest.c):
	 * the id, 0 if none matches. */
	bool latest_known;
	int64_t latest_id;
	/* Parked for the search index (http_park.c): the handler to run. */
	enum http_rc (*park_fn)(struct http_req *r);
	bool park_latest;                  /* ... through http_route_run's latest */
	uint64_t park_until;               /* monotonic ms: goes on anyway */
	struct http_req *park_prev, *park_next;
};

/* What a handler returns. */
enum http_rc { HTTP_DONE, HTTP_DEFERRED };
typedef enum http_rc (*http_handler)(struct http_req *r);

/* http.c */
const char *http_query(struct http_req *r, const char *name);   /* NULL if absent */
const char *http_header(struct http_req *r, const char *name);
/* The request body (NUL-terminated copy), or NULL; *len its length. */
char *http_body(struct http_req *r, size_t *len);
/* CLOCK_MONOTONIC in milliseconds. */
uint64_t http_now_ms(void);
/* A reply is going to be sent later: keeps r until http_req_done. */
void http_req_defer(struct http_req *r);
/* Frees r (after its reply). */
void http_req_free(struct http_req *r);
/* The reply has been handed to libevent (or the client is gone). */
void http_req_done(struct http_req *r);

/* http_pool.c: a request's search on the search pool. */
union http_pool_then {
	unsigned start;                    /* a listing's start= */
	http_handler fn;                   /* latest?query=: the route's handler */
};
/* Called on the loop with r no longer deferred (the callback replies and
 * frees it); search is the query's parse, res the pool's result (see
 * search_done_cb), both gone after the return. */
typedef void (*http_pool_cb)(struct http_req *r, int rc, const struct store_search_part *res,
    const struct msg_search *search, union http_pool_then then);
/* q's search on the pool, r deferred: false if it runs on the loop
 * instead (no pool, the index behind, the pool full); *search is then
 * still the caller's, else NULL (the job's). */
bool http_pool_search(struct http_req *r, const struct store_query *q,
    struct msg_search **search, http_pool_cb cb, union http_pool_then then);
/* Runs fn, a route's handler; for a route whose ID may be "latest"
 * (latest true) with ?query=, once the pool found that id (HTTP_DEFERRED
 * then, fn's own result otherwise). */
enum http_rc http_route_run(struct http_req *r, http_handler fn, bool latest);

/* http_park.c: a request whose handler will search, parked while the
 * search index has a backlog and dispatched to fn once it caught up
 * (true: r is the park's now); false: run fn now. */
struct http_park *http_park_new(struct http_server *hs);
void http_park_free(struct http_park *p);
bool http_park(struct http_req *r, http_handler fn, bool latest);
void http_park_slice(struct http_park *p, bool caught_up);

/* http_reply.c: every reply goes through these; they set Date, CORS and
 * compress when the client accepts gzip. */
void http_reply_buffer(struct http_req *r, int code, const char *ctype, struct evbuffer *body);
void http_reply_data(struct http_req *r, int code, const char *ctype, const void *data,
    size_t len);
void http_reply_json(struct http_req *r, int code, json_t *json);   /* steals json */
void http_reply_text(struct http_req *r, int code, const char *text);
/* The request body as a JSON object (empty: {}); NULL with a 400/413
 * reply sent when it is not one (http_api_messages.c). */
json_t *http_json_body(struct http_req *r);
/* Mailpit's plain-text 400, and its "404 page not found". */
void http_reply_error(struct http_req *r, const char *msg);
void http_reply_404(struct http_req *r);
void http_reply_ok(struct http_req *r);
const char *http_reason(int code);
void http_add_header(struct http_req *r, const char *name, const char *value);
/* Date and CORS, for replies started with evhttp_send_reply_start. */
void http_reply_common_headers(struct http_req *r);
/* The current time as an HTTP Date header's value (IMF-fixdate). */
void http_date(char *buf, size_t len);

/* http_stream.c: streams bytes [off, off + len) of a message, or its
 * decoded part (enc: a Content-Transfer-Encoding name or NULL), in
 * chunks with back-pressure, after the headers already added. */
enum http_rc http_stream_message(struct http_req *r, int64_t id, uint64_t off, uint64_t len,
    const char *enc, bool length_known);
void http_stream_free(struct http_req *r);

/* Handlers (http_api_*.c). */
enum http_rc http_api_messages_get(struct http_req *r);
enum http_rc http_api_messages_put(struct http_req *r);
enum http_rc http_api_messages_delete(struct http_req *r);
enum http_rc http_api_search_get(struct http_req *r);
enum http_rc http_api_search_delete(struct http_req *r);
enum http_rc http_api_message_get(struct http_req *r);
enum http_rc http_api_message_headers(struct http_req *r);
enum http_rc http_api_message_raw(struct http_req *r);
enum http_rc http_api_message_part(struct http_req *r);
enum http_rc http_api_message_thumb(struct http_req *r);
enum http_rc http_api_message_release(struct http_req *r);
enum http_rc http_api_view_html(struct http_req *r);
enum http_rc http_api_view_txt(struct http_req *r);
enum http_rc http_api_tags_get(struct http_req *r);
enum http_rc http_api_tags_put(struct http_req *r);
enum http_rc http_api_tag_rename(struct http_req *r);
enum http_rc http_api_tag_delete(struct http_req *r);
enum http_rc http_api_info(struct http_req *r);
enum http_rc http_api_send(struct http_req *r);
/* Waits for the send API's building threads (http_server_free). */
void http_send_pool_free(struct send_pool *p);
/* An IMAP keyword (atom) that can be a tag. */
bool http_tag_valid(const char *t);
enum http_rc http_api_webui(struct http_req *r);
enum http_rc http_api_swagger(struct http_req *r);
enum http_rc http_api_livez(struct http_req *r);
enum http_rc http_api_events_sse(struct http_req *r);
enum http_rc http_api_events_ws(struct http_req *r);
enum http_rc http_api_wait(struct http_req *r);
enum http_rc http_api_inboxes_get(struct http_req *r);
enum http_rc http_api_inboxes_post(struct http_req *r);
enum http_rc http_api_inboxes_delete(struct http_req *r);

/* http_events.c: the hub behind the event endpoints and wait. */
struct http_events *http_events_new(struct http_server *hs);
void http_events_free(struct http_events *ev);
/* r is being freed: ends its subscription if it has one. */
void http_events_req_gone(struct http_req *r);

/* http_api_inboxes.c: the /api/v1/inboxes/{Name}/ prefix. Before routing,
 * moves the name into r->scope and leaves the rest as the path (-1: a
 * malformed prefix, answered 404); after authentication, scopes r to that
 * inbox (false with a 404 sent when the caller may not see it). */
int http_inbox_prefix(struct http_req *r);
bool http_inbox_scope(struct http_req *r);
enum http_rc http_api_readyz(struct http_req *r);
/* The web page (http_web.c) and its MIME tab (http_web_structure.c). */
enum http_rc http_web_page(struct http_req *r);
enum http_rc http_web_file(struct http_req *r);
enum http_rc http_api_message_structure(struct http_req *r);
/* http_api_chaos.c: GET/PUT /api/v1/chaos; http_api_metrics.c: /metrics. */
enum http_rc http_api_chaos_get(struct http_req *r);
enum http_rc http_api_chaos_put(struct http_req *r);
enum http_rc http_api_metrics(struct http_req *r);

/* A message as the API shows it (http_msg.c): its row, keywords, MIME
 * tree and which parts are the text, the HTML, attachments and inline. */
#define HTTP_SECTION_MAX 64
struct http_part {
	const struct mime_part *p;
	char section[HTTP_SECTION_MAX];    /* IMAP section number: the PartID */
	bool is_inline;
};

struct http_msg {
	int64_t id, inbox_id, mailbox_id;
	char inbox[STORE_NAME_MAX];
	unsigned flags;
	char *keywords;                    /* space-separated, "" if none */
	uint64_t size;
	int64_t internal_date;
	char *mail_from, *rcpts, *auth_user;
	char *client_addr;                 /* the SMTP client's address, "" if none */
	struct mime_part *root;
	const struct mime_part *text, *html;
	char text_section[HTTP_SECTION_MAX], html_section[HTTP_SECTION_MAX];
	struct http_part *parts;           /* attachments and inline parts */
	size_t nparts;
};

/* STORE_OK, STORE_NOTFOUND (also a message of another inbox than
 * inbox_id when it is not 0), or an error. */
int http_msg_load(struct store *st, int64_t id, int64_t inbox_id, struct http_msg *m);
void http_msg_free(struct http_msg *m);
/* The text of a text part, decoded and in UTF-8, at most max bytes of the
 * stored body read; malloc'd. */
char *http_msg_text(struct store *st, const struct http_msg *m, const struct mime_part *p,
    uint64_t max, size_t *len);
/* The part with this PartID, or NULL. */
const struct mime_part *http_msg_part(const struct http_msg *m, const char *section);
/* The message's top header, at most max bytes of it (malloc'd and
 * NUL-terminated, *len its length), or NULL. */
char *http_msg_header(struct store *st, const struct http_msg *m, size_t max, size_t *len);
/* A part's file name, decoded to UTF-8 (malloc'd, "" if none). */
char *http_part_filename(const struct mime_part *p);

/* The message id of the request's {ID} argument ("latest" is the newest in
 * scope). STORE_OK, or STORE_NOTFOUND when there is none. */
int http_resolve_id(struct http_req *r, const char *arg, int64_t *id);

/* http_bulk.c: read state or deletes of many messages, a slice per loop
 * pass, "ok" after the last (HTTP_DEFERRED, or HTTP_DONE with an error
 * sent). By a listing's filters (search is the query's, taken over) or
 * by an array of ID strings (those not in scope are skipped). */
enum http_bulk_op { HTTP_BULK_READ, HTTP_BULK_UNREAD, HTTP_BULK_DELETE };
enum http_rc http_bulk_query(struct http_req *r, const struct store_query *q,
    struct msg_search *search, enum http_bulk_op op);
enum http_rc http_bulk_ids(struct http_req *r, json_t *ids, enum http_bulk_op op);

/* http_api_messages.c: every tag (keyword) in the request's scope, sorted. */
json_t *http_scope_tags(struct http_req *r);

/* http_json.c */
json_t *http_json_address_list(const char *value);       /* [] for NULL */
json_t *http_json_address(const char *value);            /* first, or null */
json_t *http_json_tags(const char *keywords);
json_t *http_json_time(int64_t unix_time);
json_t *http_json_summary(struct store *st, const struct http_msg *m);
json_t *http_json_message(struct store *st, const struct http_msg *m);
json_t *http_json_headers(const char *hdr, size_t len);
/* The decoded header value (RFC 2047), or "" (malloc'd). */
char *http_header_text(const char *value);

#endif

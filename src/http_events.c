/*
 * Live events over HTTP, fed by the store's change notifications:
 *   GET /api/v1/events   Server-Sent Events (`id:`, `event:`, `data:`),
 *                        resumed from Last-Event-ID out of a ring of the
 *                        last HTTP_EVENTS_RING events
 *   GET /api/events      the same as a websocket (RFC 6455) with Mailpit's
 *                        {"Type": ..., "Data": ...} frames
 *   GET /api/v1/wait     one message that matches a search: one already
 *                        there after `after`, or the next committed
 * Mailpit's types: `new` (the summary), `update` ({ID, Read, Tags}),
 * `delete` ({ID}), and ours, `prune` ({ID}: max-messages or max-age removed it),
 * `stats` ({Total, Unread, Version}, coalesced over
 * HTTP_EVENTS_STATS_MS). Each subscriber sees its own scope (all inboxes,
 * or one). Nothing is polled: the store's notifications are queued and
 * handled a slice per loop pass, each event turned into JSON and into
 * its wire text once, and shared by reference by every stream.
 *
 * A subscriber that does not read is not buffered for without bound: past
 * HTTP_EVENTS_OUT_MAX of unsent output its stream ends (an EventSource
 * reconnects with Last-Event-ID; Mailpit's hub drops such clients too).
 *
 * evhttp (libevent 2.1) has no upgrade: the websocket takes the
 * connection's bufferevent over after writing the 101 itself, and gives it
 * back to evhttp only to be freed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <sys/socket.h>
#include <sys/uio.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include "mailsnare/config.h"
#include "mailsnare/fanout.h"
#include "mailsnare/log.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/server.h"
#include "mailsnare/ws.h"
#include "http_internal.h"

#ifndef PACKAGE_VERSION
#define PACKAGE_VERSION "0.0.0"
#endif

#define HTTP_EVENTS_RING 1024
#define HTTP_EVENTS_OUT_MAX (1024 * 1024)
/* The kernel's send buffer of a stream: without it Linux grows it to
 * tcp_wmem's 4 MB for a client that does not read, beyond our bound. */
#define HTTP_EVENTS_SNDBUF (64 * 1024)
#define HTTP_EVENTS_SLICE 256           /* changes turned into events per pass */
/* Streams written per pass: a write is 5-7 us of CPU on loopback (the
 * kernel's TCP path, the reader's wake-up; measured on 2 vCPUs), so a
 * pass of 1,024 is 5-7 ms; beyond, the rest go in the next pass, after
 * the other clients' callbacks. */
#define HTTP_EVENTS_FANOUT 1024
#define HTTP_EVENTS_QUEUE_MAX 100000    /* beyond: only a stats event */
#define HTTP_EVENTS_STATS_MS 250
#define HTTP_EVENTS_KEEPALIVE_S 25
#define HTTP_EVENTS_LINGER_S 300
#define HTTP_WAITERS_MAX 1024
#define HTTP_WAIT_DEFAULT_S 30
#define HTTP_WAIT_MAX_S 3600
#define HTTP_WS_PAYLOAD_MAX 65536       /* client frames: we read none but close/ping */
/* Messages whose `new` was dropped (gone before their turn came): their
 * `delete` is already in the queue behind, and is dropped too. */
#define HTTP_EVENTS_UNANNOUNCED 256

enum sub_kind { SUB_SSE, SUB_WS, SUB_WAIT };

struct http_sub {
	struct http_events *ev;
	struct http_req *r;
	enum sub_kind kind;
	int64_t inbox_id;                  /* 0: every inbox */
	struct msg_search *search;         /* wait: NULL matches anything */
	char *query;                       /* wait: its text, NULL with no search */
	int64_t after;                     /* wait: only ids above */
	int64_t woken;                     /* wait: the message to answer with */
	struct event *timer;               /* wait: the timeout */
	long timeout;                      /* wait: its seconds, from the first look */
	struct bufferevent *bev;           /* ws: the connection, ours now */
	struct bufferevent *conn_bev;      /* the connection's (SSE: evhttp's) */
	bool chunked;                      /* SSE: chunked encoding (HTTP/1.1) */
	bool direct;                       /* a plain socket: written at once */
	bool stats_sent;                   /* in this round of stats */
	bool batched;                      /* in the pass's writes, not made yet */
	struct http_sub *prev, *next;
};

struct change {
	enum store_change what;
	int64_t inbox_id, id;
};

struct past_event {
	uint64_t seq;
	int64_t inbox_id;
	const char *type;
	char *data;                        /* JSON text, NULL: slot unused */
};

/*
 * An event as it goes on the wire, made once for all the subscribers of
 * a kind (the SSE text; the websocket frame, whose header is the same
 * for every client since a server does not mask). Each stream's socket
 * gets it in one write (sub_write); what a full socket does not take
 * waits in the stream's output by reference: a thousand streams cost one
 * copy of the event, not a thousand. Freed with the last reference.
 */
struct wire_text {
	unsigned refs;
	size_t len;
	char p[];
};

struct wire {
	const struct past_event *e;
	struct wire_text *sse, *ws;        /* built on first use */
};

/* A stream's write in the pass's batch (struct fanout_write has its fd
 * and iovecs): what to queue what the write leaves into. */
struct batch_entry {
	struct http_sub *s;
	struct wire_text *t;               /* the event text, iovec 1 */
	char head[24];                     /* iovec 0: the chunk header */
};

struct http_events {
	struct http_server *hs;
	struct store *st;
	struct http_sub *subs;
	unsigned nwaiters;
	struct change *queue;
	size_t nqueue, qhead, qcap;
	bool overflow;
	struct event *ev_work, *ev_stats, *ev_keepalive;
	/* Waiters woken (their sub's woken) are answered WAKE_PER_PASS a
	 * pass; wake_json is the message JSON of wake_id, shared by them. */
	struct event *ev_wake;
	int64_t wake_id;
	json_t *wake_json;
	struct past_event ring[HTTP_EVENTS_RING];
	uint64_t seq;                      /* of the last event */
	time_t last_sub;                   /* when the last subscriber left */
	int64_t unannounced[HTTP_EVENTS_UNANNOUNCED];  /* a ring; 0: free */
	unsigned unannounced_next;
	/* The event being written to every stream (fan_busy): the streams
	 * from fan_next on have not had it yet. */
	bool fan_busy;
	struct http_sub *fan_next;
	struct wire fan_w;
	/* The direct writes collected in a pass (sub_write), made together,
	 * on the loop and the writer threads, by batch_flush. */
	struct fanout *fan;
	size_t nbatch;
	struct fanout_write bw[HTTP_EVENTS_FANOUT];
	struct batch_entry be[HTTP_EVENTS_FANOUT];
};

/* --- subscribers ---------------------------------------------------------- */

static void batch_flush(struct http_events *ev);

static void sub_unlink(struct http_sub *s)
{
	struct http_events *ev = s->ev;

	if (s->prev)
		s->prev->next = s->next;
	else
		ev->subs = s->next;
	if (s->next)
		s->next->prev = s->prev;
	if (ev->fan_next == s)
		ev->fan_next = s->next;
	if (s->kind == SUB_WAIT)
		ev->nwaiters--;
}

static struct http_sub *sub_new(struct http_req *r, enum sub_kind kind)
{
	struct http_events *ev = r->hs->events;
	struct http_sub *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return NULL;
	s->ev = ev;
	s->r = r;
	s->kind = kind;
	s->inbox_id = r->inbox_id;
	s->next = ev->subs;
	if (ev->subs)
		ev->subs->prev = s;
	ev->subs = s;
	if (kind == SUB_WAIT)
		ev->nwaiters++;
	r->sub = s;
	return s;
}

/* r is being freed (its reply ended, or its connection went). */
void http_events_req_gone(struct http_req *r)
{
	struct http_sub *s = r->sub;

	if (s == NULL)
		return;
	if (s->batched)
		batch_flush(s->ev);             /* its write, before it goes */
	sub_unlink(s);
	if (s->ev->subs == NULL)
		s->ev->last_sub = time(NULL);
	if (s->timer)
		event_free(s->timer);
	msg_search_free(s->search);
	free(s->query);
	free(s);
	r->sub = NULL;
}

static size_t sub_unsent(struct http_sub *s)
{
	return s->conn_bev ? evbuffer_get_length(bufferevent_get_output(s->conn_bev)) : 0;
}

/* The stream's connection: plain sockets are written at once (sub_write),
 * TLS goes through its bufferevent. */
static void sub_set_bev(struct http_sub *s, struct bufferevent *bev)
{
	evutil_socket_t fd = bev ? bufferevent_getfd(bev) : -1;
	int sndbuf = HTTP_EVENTS_SNDBUF;

	s->conn_bev = bev;
	s->direct = fd >= 0 && bufferevent_openssl_get_ssl(bev) == NULL;
	if (fd >= 0)
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
}

/* Ends a subscriber's reply; s and its request are freed. */
static void sub_end(struct http_sub *s)
{
	struct http_req *r = s->r;
	struct evhttp_request *req = r->req;
	struct evhttp_connection *evcon;

	if (s->kind == SUB_WS) {
		/* evhttp frees the bufferevent, the request and r (closecb). */
		evcon = req ? evhttp_request_get_connection(req) : NULL;
		if (evcon != NULL) {
			evhttp_connection_free(evcon);
			return;
		}
	}
	http_req_done(r);
	r->req = NULL;
	if (req != NULL)
		evhttp_send_reply_end(req);
	http_req_free(r);
}

/* --- event text ------------------------------------------------------------ */

static void sse_send(struct http_sub *s, uint64_t seq, const char *type, const char *data)
{
	struct evbuffer *b = evbuffer_new();

	if (b == NULL)
		return;
	if (type != NULL)
		evbuffer_add_printf(b, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)seq,
		    type, data);
	else
		evbuffer_add_printf(b, ": %s\n\n", data);
	evhttp_send_reply_chunk(s->r->req, b);
	evbuffer_free(b);
}

/* A frame of up to three pieces (the event's head, data and tail). */
static void ws_send(struct http_sub *s, uint8_t opcode, const void *a, size_t la,
    const char *b, const char *c)
{
	uint8_t h[WS_HEADER_MAX];
	size_t lb = b ? strlen(b) : 0, lc = c ? strlen(c) : 0;
	struct evbuffer *out = bufferevent_get_output(s->bev);

	evbuffer_add(out, h, ws_frame_header(opcode, la + lb + lc, h));
	evbuffer_add(out, a, la);
	if (lb)
		evbuffer_add(out, b, lb);
	if (lc)
		evbuffer_add(out, c, lc);
}

static bool sub_sees(const struct http_sub *s, int64_t inbox_id)
{
	return s->inbox_id == 0 || inbox_id == 0 || s->inbox_id == inbox_id;
}

static void wire_unref(const void *data, size_t len, void *arg)
{
	struct wire_text *t = arg;

	(void)data;
	(void)len;
	if (--t->refs == 0)
		free(t);
}

static struct wire_text *wire_new(size_t cap)
{
	struct wire_text *t = malloc(sizeof(*t) + cap);

	if (t != NULL) {
		t->refs = 1;                   /* the builder's, until wire_done */
		t->len = 0;
	}
	return t;
}

static struct wire_text *wire_sse(const struct past_event *e)
{
	size_t cap = strlen(e->type) + strlen(e->data) + 48;
	struct wire_text *t = wire_new(cap);
	int n;

	if (t == NULL)
		return NULL;
	n = snprintf(t->p, cap, "id: %llu\nevent: %s\ndata: %s\n\n", (unsigned long long)e->seq,
	    e->type, e->data);
	t->len = n > 0 && (size_t)n < cap ? (size_t)n : 0;
	return t;
}

static struct wire_text *wire_ws(const struct past_event *e)
{
	/* {"Type":"T","Data":D} */
	size_t ld = strlen(e->data), lt = strlen(e->type), plen = 9 + lt + 9 + ld + 1, hl;
	uint8_t h[WS_HEADER_MAX];
	struct wire_text *t = wire_new(WS_HEADER_MAX + plen);

	if (t == NULL)
		return NULL;
	hl = ws_frame_header(WS_OP_TEXT, plen, h);
	memcpy(t->p, h, hl);
	memcpy(t->p + hl, "{\"Type\":\"", 9);
	memcpy(t->p + hl + 9, e->type, lt);
	memcpy(t->p + hl + 9 + lt, "\",\"Data\":", 9);
	memcpy(t->p + hl + 18 + lt, e->data, ld);
	t->p[hl + 18 + lt + ld] = '}';
	t->len = hl + plen;
	return t;
}

static void wire_done(struct wire *w)
{
	if (w->sse != NULL)
		wire_unref(NULL, 0, w->sse);
	if (w->ws != NULL)
		wire_unref(NULL, 0, w->ws);
}

/* Adds a reference to t's bytes from off to out; false if it could not. */
static bool wire_add(struct evbuffer *out, struct wire_text *t, size_t off)
{
	t->refs++;
	if (evbuffer_add_reference(out, t->p + off, t->len - off, wire_unref, t) == 0)
		return true;
	t->refs--;
	return false;
}

/* Queues what a write left of one piece: a copy of head or tail, a
 * reference to the event text. */
static void sub_queue_rest(struct evbuffer *out, const struct iovec *v, size_t done,
    struct wire_text *t)
{
	if (done >= v->iov_len)
		return;
	if (t != NULL)
		(void)wire_add(out, t, (size_t)((char *)v->iov_base - t->p) + done);
	else
		evbuffer_add(out, (char *)v->iov_base + done, v->iov_len - done);
}

/* Queues what a write of n bytes left of v (head, t, tail) into the
 * stream's output; the bufferevent writes it when the socket takes it.
 * A write error leaves it all there too: the bufferevent's own write then
 * meets the error and ends the connection. */
static void sub_queue(struct http_sub *s, const struct iovec v[3], size_t n, struct wire_text *t)
{
	struct evbuffer *out = bufferevent_get_output(s->conn_bev);

	for (int i = 0; i < 3; i++) {
		sub_queue_rest(out, &v[i], n, i == 1 ? t : NULL);
		n = n > v[i].iov_len ? n - v[i].iov_len : 0;
	}
	/* As evhttp_send_reply_chunk would: the rest goes when it can. */
	bufferevent_enable(s->conn_bev, EV_WRITE);
}

/* Makes the pass's direct writes (on the loop and the writer threads, all
 * done when fanout_run returns: no callback ran meanwhile, so every
 * stream in the batch is still there), then queues what each left, in
 * the stream's output, on the loop. */
static void batch_flush(struct http_events *ev)
{
	size_t total;

	fanout_run(ev->fan, ev->bw, ev->nbatch);
	for (size_t i = 0; i < ev->nbatch; i++) {
		struct fanout_write *w = &ev->bw[i];

		ev->be[i].s->batched = false;
		total = w->v[0].iov_len + w->v[1].iov_len + w->v[2].iov_len;
		if ((size_t)w->n != total)
			sub_queue(ev->be[i].s, w->v, (size_t)w->n, ev->be[i].t);
	}
	ev->nbatch = 0;
}

/*
 * Writes head, t and tail to the stream. With nothing waiting in its
 * output, a plain socket is written in this pass, in one writev: the
 * write joins the pass's batch (batch_flush, which the caller runs before
 * it returns to the loop), and the bufferevent's write event (two
 * epoll_ctl and a later pass per stream) is needed only for what the
 * socket did not take. A stream is in a batch once at most: its writes
 * stay in order (two in one batch could go on two threads).
 */
static void sub_write(struct http_sub *s, const char *head, size_t lh, struct wire_text *t,
    const char *tail, size_t lt)
{
	struct http_events *ev = s->ev;
	struct iovec v[3] = { { (void *)head, lh }, { t->p, t->len }, { (void *)tail, lt } };
	struct batch_entry *b;
	struct fanout_write *w;

	if (s->batched || ev->nbatch == HTTP_EVENTS_FANOUT)
		batch_flush(ev);
	if (!s->direct || evbuffer_get_length(bufferevent_get_output(s->conn_bev)) != 0 ||
	    lh >= sizeof(b->head)) {
		sub_queue(s, v, 0, t);
		return;
	}
	b = &ev->be[ev->nbatch];
	w = &ev->bw[ev->nbatch++];
	b->s = s;
	b->t = t;
	memcpy(b->head, head, lh);
	*w = (struct fanout_write){ .fd = bufferevent_getfd(s->conn_bev), .niov = 3,
		.v = { { b->head, lh }, v[1], v[2] } };
	s->batched = true;
}

/* One event to one live subscriber (SSE or websocket). */
static void sub_deliver(struct http_sub *s, struct wire *w)
{
	char head[24];
	int lh;

	if (s->batched)
		batch_flush(s->ev);             /* not ended, nor written twice, in a batch */
	if (sub_unsent(s) > HTTP_EVENTS_OUT_MAX) {
		log_info("http: events: ending a stream whose client does not read");
		sub_end(s);
		return;
	}
	if (s->kind == SUB_WS) {
		if (w->ws == NULL)
			w->ws = wire_ws(w->e);
		if (w->ws != NULL && w->ws->len > 0)
			sub_write(s, "", 0, w->ws, "", 0);
		return;
	}
	if (w->sse == NULL)
		w->sse = wire_sse(w->e);
	if (w->sse == NULL || w->sse->len == 0 || s->conn_bev == NULL)
		return;
	/* evhttp's chunk framing, written here instead of by
	 * evhttp_send_reply_chunk (whose EV_WRITE it does not need). */
	if (!s->chunked)
		sub_write(s, "", 0, w->sse, "", 0);
	else if ((lh = snprintf(head, sizeof(head), "%zx\r\n", w->sse->len)) > 0)
		sub_write(s, head, (size_t)lh, w->sse, "\r\n", 2);
}

/* Writes the event in hand to the streams not yet written, at most
 * HTTP_EVENTS_FANOUT of them: false if some are left for the next pass.
 * sub_deliver may end a stream; sub_unlink moves fan_next past it. */
static bool events_fanout(struct http_events *ev)
{
	bool timed = log_get_level() <= LOGL_DEBUG;
	struct timespec t0 = { 0, 0 }, t1;
	struct http_sub *s;
	size_t n = 0;

	if (timed)
		clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((s = ev->fan_next) != NULL && n < HTTP_EVENTS_FANOUT) {
		ev->fan_next = s->next;
		if (s->kind != SUB_WAIT && sub_sees(s, ev->fan_w.e->inbox_id)) {
			sub_deliver(s, &ev->fan_w);
			n++;
		}
	}
	batch_flush(ev);
	if (timed) {
		/* The server's side of the fan-out's latency (bench/http.sh). */
		clock_gettime(CLOCK_MONOTONIC, &t1);
		log_debug("http: events: %s %llu written to %zu streams in %.2f ms%s",
		    ev->fan_w.e->type, (unsigned long long)ev->fan_w.e->seq, n,
		    (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6,
		    s != NULL ? " (more next pass)" : "");
	}
	if (s != NULL)
		return false;
	wire_done(&ev->fan_w);
	ev->fan_busy = false;
	return true;
}

static void events_emit(struct http_events *ev, int64_t inbox_id, const char *type, json_t *data)
{
	struct past_event *e = &ev->ring[(ev->seq + 1) % HTTP_EVENTS_RING];
	char *text = json_dumps(data, JSON_COMPACT | JSON_ENCODE_ANY);

	json_decref(data);
	if (text == NULL)
		return;
	free(e->data);
	e->seq = ++ev->seq;
	e->inbox_id = inbox_id;
	e->type = type;
	e->data = text;
	/* The ring slot stays until HTTP_EVENTS_RING more events: the
	 * fan-out ends before the next event is made (events_work). */
	ev->fan_w = (struct wire){ .e = e };
	ev->fan_next = ev->subs;
	ev->fan_busy = true;
	(void)events_fanout(ev);
}

/* --- from store changes to events -------------------------------------------- */

static bool wait_answer(struct http_sub *s, int64_t id, json_t *j);

/*
 * What the waiters of one new message share: a thousand fixtures waiting
 * with the same query cost one evaluation of it and one message JSON,
 * not a thousand (1,000 waiters held the loop for 0.7-1.3 s when each
 * evaluated its query and built the message itself).
 */
#define WAKE_QUERIES 8

struct wake {
	int64_t id;
	unsigned nq;
	char *query[WAKE_QUERIES];         /* queries evaluated, and their */
	int match[WAKE_QUERIES];           /* results */
};

static int wake_matches(struct http_events *ev, struct wake *w, const struct http_sub *s)
{
	int r;

	if (s->search == NULL)
		return 1;
	for (unsigned i = 0; i < w->nq; i++)
		if (strcmp(w->query[i], s->query) == 0)
			return w->match[i];
	r = store_message_matches(ev->st, w->id, s->search);
	if (w->nq < WAKE_QUERIES && (w->query[w->nq] = strdup(s->query)) != NULL)
		w->match[w->nq++] = r;
	return r;
}

/* The message JSON a woken waiter is answered with: the same for every
 * waiter of that message (sub_sees said it is in each one's scope), made
 * once; NULL if the message is gone. */
static json_t *wake_msg(struct http_events *ev, int64_t id)
{
	struct http_msg m;

	if (ev->wake_id == id)
		return ev->wake_json;
	json_decref(ev->wake_json);
	ev->wake_json = NULL;
	ev->wake_id = id;
	if (http_msg_load(ev->st, id, 0, &m) == STORE_OK) {
		ev->wake_json = http_json_message(ev->st, &m);
		http_msg_free(&m);
	}
	return ev->wake_json;
}

/* Answers up to WAKE_PER_PASS woken waiters, and goes on in the next
 * pass while more are woken: each answer is a JSON text and a write,
 * and a thousand fixtures waiting for one message are a thousand. */
#define WAKE_PER_PASS 64

static void events_answer(evutil_socket_t fd, short what, void *arg)
{
	struct http_events *ev = arg;
	struct http_sub *s, *next;
	unsigned n = 0;
	json_t *j;

	(void)fd;
	(void)what;
	for (s = ev->subs; s != NULL; s = next) {
		next = s->next;
		if (s->kind != SUB_WAIT || s->woken == 0)
			continue;
		if (n++ == WAKE_PER_PASS) {
			event_add(ev->ev_wake, &(struct timeval){ 0, 0 });
			return;
		}
		if ((j = wake_msg(ev, s->woken)) == NULL || !wait_answer(s, s->woken, j))
			s->woken = 0;           /* gone again: it goes on waiting */
	}
	json_decref(ev->wake_json);
	ev->wake_json = NULL;
	ev->wake_id = 0;
}

static void events_wake(struct http_events *ev, const struct change *c)
{
	struct wake w = { .id = c->id };
	bool any = false;

	for (struct http_sub *s = ev->subs; s != NULL; s = s->next)
		if (s->kind == SUB_WAIT && s->woken == 0 && sub_sees(s, c->inbox_id) &&
		    c->id > s->after && wake_matches(ev, &w, s) == 1) {
			s->woken = c->id;
			any = true;
		}
	for (unsigned i = 0; i < w.nq; i++)
		free(w.query[i]);
	if (any)
		events_answer(-1, 0, ev);
}

static void events_new(struct http_events *ev, const struct change *c)
{
	struct http_msg m;
	json_t *j;

	events_wake(ev, c);
	if (http_msg_load(ev->st, c->id, 0, &m) != STORE_OK) {
		/* Gone again already: expunged, or moved and expunged, before
		 * this change's turn. */
		ev->unannounced[ev->unannounced_next++ % HTTP_EVENTS_UNANNOUNCED] = c->id;
		return;
	}
	j = http_json_summary(ev->st, &m);
	http_msg_free(&m);
	if (j != NULL)
		events_emit(ev, c->inbox_id, "new", j);
}

static void events_update(struct http_events *ev, const struct change *c)
{
	char kw[4096];
	unsigned flags;
	uint64_t modseq;
	json_t *j;

	if (store_message_state(ev->st, c->id, &flags, kw, sizeof(kw), &modseq) != STORE_OK)
		return;
	j = json_object();
	json_object_set_new(j, "ID", json_sprintf("%lld", (long long)c->id));
	json_object_set_new(j, "Read", json_boolean(flags & STORE_FLAG_SEEN));
	json_object_set_new(j, "Tags", http_json_tags(kw));
	events_emit(ev, c->inbox_id, "update", j);
}

/* Whether id's `new` was dropped; forgotten then, since its one
 * `delete` is this one. A stream never hears of the message at all,
 * rather than of a delete of what it never had (or had deleted already:
 * a MOVE is a delete and a new of the same ID, and an EXPUNGE right after
 * it left the new nothing to show). */
static bool events_unannounced(struct http_events *ev, int64_t id)
{
	for (unsigned i = 0; i < HTTP_EVENTS_UNANNOUNCED; i++)
		if (ev->unannounced[i] == id) {
			ev->unannounced[i] = 0;
			return true;
		}
	return false;
}

static void events_change(struct http_events *ev, const struct change *c)
{
	switch (c->what) {
	case STORE_CHANGE_NEW:
		events_new(ev, c);
		break;
	case STORE_CHANGE_FLAGS:
		events_update(ev, c);
		break;
	case STORE_CHANGE_EXPUNGE:
	case STORE_CHANGE_PRUNE:
		if (events_unannounced(ev, c->id))
			break;
		/* A message max-messages or max-age removed is a `prune`. */
		events_emit(ev, c->inbox_id, c->what == STORE_CHANGE_PRUNE ? "prune" : "delete",
		    json_pack("{s:o}", "ID", json_sprintf("%lld", (long long)c->id)));
		break;
	case STORE_CHANGE_EXTERNAL:
		break;                          /* only stats can tell */
	}
}

static bool events_live(const struct http_events *ev)
{
	for (const struct http_sub *s = ev->subs; s != NULL; s = s->next)
		if (s->kind != SUB_WAIT)
			return true;
	return false;
}

static void events_work(evutil_socket_t fd, short what, void *arg)
{
	struct http_events *ev = arg;
	struct timeval tv = { 0, HTTP_EVENTS_STATS_MS * 1000 };
	size_t n = 0;

	(void)fd;
	(void)what;
	if (!ev->fan_busy || events_fanout(ev))
		while (ev->qhead < ev->nqueue && n++ < HTTP_EVENTS_SLICE && !ev->fan_busy)
			events_change(ev, &ev->queue[ev->qhead++]);
	if (ev->qhead < ev->nqueue || ev->fan_busy) {
		/* On the next loop pass, after the sockets: an event_active
		 * from its own callback would run it again at once. */
		event_add(ev->ev_work, &(struct timeval){ 0, 0 });
	} else {
		ev->qhead = ev->nqueue = 0;
		ev->overflow = false;
	}
	if (events_live(ev) && !evtimer_pending(ev->ev_stats, NULL))
		evtimer_add(ev->ev_stats, &tv);
}

static void events_store_cb(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct http_events *ev = arg;
	struct change *q;
	size_t cap;

	(void)mailbox_id;
	/* /api/v1/info's MessagesDeleted: an expunge whose message is gone
	 * (a moved one keeps its id), and every prune. */
	if (what == STORE_CHANGE_PRUNE || (what == STORE_CHANGE_EXPUNGE &&
	    store_message_state(ev->st, message_id, NULL, NULL, 0, NULL) == STORE_NOTFOUND))
		ev->hs->srv->stats.messages_deleted++;
	/* Without subscribers nothing is built, but for a while after the
	 * last one left: an EventSource reconnects and asks for what it
	 * missed (Last-Event-ID). */
	if (ev->subs == NULL && time(NULL) > ev->last_sub + HTTP_EVENTS_LINGER_S)
		return;
	if (ev->nqueue == ev->qcap) {
		cap = ev->qcap ? ev->qcap * 2 : 64;
		if (cap > HTTP_EVENTS_QUEUE_MAX || (q = realloc(ev->queue, cap * sizeof(*q))) == NULL) {
			ev->overflow = true;
			what = STORE_CHANGE_EXTERNAL;
			goto wake;
		}
		ev->queue = q;
		ev->qcap = cap;
	}
	ev->queue[ev->nqueue++] = (struct change){ what, inbox_id, message_id };
wake:
	/* A zero timer, not event_active: this runs inside the commit (the
	 * group commit's pass), before the submitters' 250s are written; a
	 * timer expires in the next pass after the SMTP connections' own
	 * events made active now, so the 250 is written first and the
	 * event follows at once, in the same pass. */
	if (!event_pending(ev->ev_work, EV_TIMEOUT, NULL))
		event_add(ev->ev_work, &(struct timeval){ 0, 0 });
}

/* --- stats, keepalive ----------------------------------------------------------- */

static json_t *stats_json(struct http_events *ev, int64_t inbox_id)
{
	uint64_t total = 0, nunread = 0;

	if (store_scope_counts(ev->st, inbox_id, &total, &nunread) < 0)
		return NULL;
	return json_pack("{s:I,s:I,s:s}", "Total", (json_int_t)total, "Unread",
	    (json_int_t)nunread, "Version", PACKAGE_VERSION);
}

/* Stats are per scope: each scope's figures are computed once a round. */
static void events_stats(evutil_socket_t fd, short what, void *arg)
{
	struct http_events *ev = arg;
	struct http_sub *s, *t, *next;
	struct past_event e = { .type = "stats" };
	struct wire w;
	int64_t scope;
	json_t *j;

	(void)fd;
	(void)what;
	if (ev->fan_busy) {
		/* Not ahead of an event some streams have not had yet. */
		static const struct timeval soon = { 0, 10000 };
		evtimer_add(ev->ev_stats, &soon);
		return;
	}
	for (s = ev->subs; s != NULL; s = s->next)
		s->stats_sent = s->kind == SUB_WAIT;
	/* Each pass sends one scope's figures; sub_deliver may end a
	 * subscriber, so every pass starts from the head. */
	for (;;) {
		for (s = ev->subs; s != NULL && s->stats_sent; s = s->next)
			;
		if (s == NULL)
			return;
		scope = s->inbox_id;
		if ((j = stats_json(ev, scope)) == NULL ||
		    (e.data = json_dumps(j, JSON_COMPACT)) == NULL) {
			json_decref(j);
			return;
		}
		json_decref(j);
		e.seq = ev->seq;
		w = (struct wire){ .e = &e };
		for (t = ev->subs; t != NULL; t = next) {
			next = t->next;
			if (!t->stats_sent && t->inbox_id == scope) {
				t->stats_sent = true;
				sub_deliver(t, &w);
			}
		}
		batch_flush(ev);
		wire_done(&w);
		free(e.data);
	}
}

static void events_keepalive(evutil_socket_t fd, short what, void *arg)
{
	struct http_events *ev = arg;
	struct http_sub *s, *next;

	(void)fd;
	(void)what;
	for (s = ev->subs; s != NULL; s = next) {
		next = s->next;
		if (s->kind == SUB_SSE)
			sse_send(s, 0, NULL, "keepalive");
		else if (s->kind == SUB_WS)
			ws_send(s, WS_OP_PING, "", 0, NULL, NULL);
	}
}

/* --- the hub ---------------------------------------------------------------------- */

struct http_events *http_events_new(struct http_server *hs)
{
	struct http_events *ev = calloc(1, sizeof(*ev));
	struct event_base *base = hs->srv->base;
	struct timeval ka = { HTTP_EVENTS_KEEPALIVE_S, 0 };

	if (ev == NULL)
		return NULL;
	ev->hs = hs;
	ev->st = hs->srv->store;
	ev->ev_work = event_new(base, -1, 0, events_work, ev);
	ev->ev_stats = evtimer_new(base, events_stats, ev);
	ev->ev_keepalive = event_new(base, -1, EV_PERSIST, events_keepalive, ev);
	ev->ev_wake = evtimer_new(base, events_answer, ev);
	/* NULL on one core: the loop writes alone. */
	ev->fan = fanout_new(fanout_default_helpers());
	if (ev->ev_work == NULL || ev->ev_stats == NULL || ev->ev_keepalive == NULL ||
	    ev->ev_wake == NULL ||
	    event_add(ev->ev_keepalive, &ka) < 0 ||
	    store_subscribe(ev->st, events_store_cb, ev) < 0) {
		http_events_free(ev);
		return NULL;
	}
	return ev;
}

void http_events_free(struct http_events *ev)
{
	if (ev == NULL)
		return;
	store_unsubscribe(ev->st, events_store_cb, ev);
	fanout_free(ev->fan);
	/* Subscribers went with their connections (http_server_stop). */
	if (ev->fan_busy)
		wire_done(&ev->fan_w);
	if (ev->ev_work)
		event_free(ev->ev_work);
	if (ev->ev_stats)
		event_free(ev->ev_stats);
	if (ev->ev_keepalive)
		event_free(ev->ev_keepalive);
	if (ev->ev_wake)
		event_free(ev->ev_wake);
	json_decref(ev->wake_json);
	for (size_t i = 0; i < HTTP_EVENTS_RING; i++)
		free(ev->ring[i].data);
	free(ev->queue);
	free(ev);
}

/* --- the endpoints -------------------------------------------------------------- */

/* A browser sends Origin on a websocket and on a cross-origin EventSource:
 * only the page's own origin and http-cors's may open one (a page from
 * anywhere else must not read the mail through the user's browser). */
static bool events_origin_ok(struct http_req *r)
{
	const char *origin = http_header(r, "Origin"), *host = http_header(r, "Host"), *p;

	if (origin == NULL || r->origin != NULL)
		return true;
	if (host == NULL)
		return false;
	if (strncmp(origin, "http://", 7) == 0)
		p = origin + 7;
	else if (strncmp(origin, "https://", 8) == 0)
		p = origin + 8;
	else
		return false;
	return strcasecmp(p, host) == 0;
}

/* Replays what a reconnecting EventSource missed, if the ring still has it. */
static void sse_replay(struct http_sub *s, uint64_t last)
{
	struct http_events *ev = s->ev;
	uint64_t first = ev->seq > HTTP_EVENTS_RING ? ev->seq - HTTP_EVENTS_RING + 1 : 1;

	for (uint64_t q = last + 1 > first ? last + 1 : first; q <= ev->seq; q++) {
		const struct past_event *e = &ev->ring[q % HTTP_EVENTS_RING];
		if (e->data != NULL && e->seq == q && sub_sees(s, e->inbox_id))
			sse_send(s, e->seq, e->type, e->data);
	}
}

enum http_rc http_api_events_sse(struct http_req *r)
{
	const char *last = http_header(r, "Last-Event-ID"), *te;
	struct evhttp_connection *evcon;
	struct http_sub *s;
	char *end;
	unsigned long long id;

	if (!events_origin_ok(r)) {
		http_reply_text(r, 403, "cross-origin event stream not allowed (http-cors)");
		return HTTP_DONE;
	}
	if (r->method == EVHTTP_REQ_HEAD) {
		http_reply_data(r, 200, "text/event-stream", "", 0);
		return HTTP_DONE;
	}
	if ((s = sub_new(r, SUB_SSE)) == NULL) {
		http_reply_text(r, 503, "out of memory");
		return HTTP_DONE;
	}
	http_reply_common_headers(r);
	http_add_header(r, "Content-Type", "text/event-stream");
	http_add_header(r, "Cache-Control", "no-cache");
	http_add_header(r, "X-Accel-Buffering", "no");
	http_req_defer(r);
	evhttp_send_reply_start(r->req, 200, "OK");
	/* evhttp chose chunked for an HTTP/1.1 client (no Content-Length). */
	te = evhttp_find_header(evhttp_request_get_output_headers(r->req), "Transfer-Encoding");
	s->chunked = te != NULL && strcasecmp(te, "chunked") == 0;
	evcon = evhttp_request_get_connection(r->req);
	sub_set_bev(s, evcon ? evhttp_connection_get_bufferevent(evcon) : NULL);
	sse_send(s, 0, NULL, "mailsnare events");
	if (last != NULL) {
		id = strtoull(last, &end, 10);
		if (end != last && *end == '\0')
			sse_replay(s, id);
	}
	return HTTP_DEFERRED;
}

/* --- websocket ----------------------------------------------------------------- */

static void ws_eventcb(struct bufferevent *bev, short what, void *arg)
{
	(void)bev;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		sub_end(arg);
}

static void ws_closing_writecb(struct bufferevent *bev, void *arg)
{
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		sub_end(arg);
}

static void ws_readcb(struct bufferevent *bev, void *arg)
{
	struct http_sub *s = arg;
	struct evbuffer *in = bufferevent_get_input(bev);
	uint8_t hdr[WS_HEADER_MAX], payload[125];
	struct ws_frame f;
	size_t have;

	for (;;) {
		have = evbuffer_copyout(in, hdr, sizeof(hdr));
		switch (ws_parse_header(hdr, have, HTTP_WS_PAYLOAD_MAX, &f)) {
		case WS_PARSE_MORE:
			return;
		case WS_PARSE_OK:
			break;
		default:
			sub_end(s);                 /* 1002/1009: the peer broke the protocol */
			return;
		}
		if (evbuffer_get_length(in) < f.header_len + f.len)
			return;
		evbuffer_drain(in, f.header_len);
		if (f.opcode == WS_OP_PING) {
			/* A ping flood never reading its pongs made the server
			 * hold them all (60 MB for 65 MB of pings): the same
			 * bound as for events. */
			if (sub_unsent(s) > HTTP_EVENTS_OUT_MAX) {
				log_info("http: websocket: ending a client that does not read its pongs");
				sub_end(s);
				return;
			}
			/* Control frames are at most 125 bytes (ws_parse_header). */
			evbuffer_remove(in, payload, (size_t)f.len);
			ws_unmask(payload, (size_t)f.len, f.mask, 0);
			ws_send(s, WS_OP_PONG, payload, (size_t)f.len, NULL, NULL);
		} else if (f.opcode == WS_OP_CLOSE) {
			/* Our close (1000) goes out before the connection does. */
			ws_send(s, WS_OP_CLOSE, "\x03\xe8", 2, NULL, NULL);
			bufferevent_setcb(bev, NULL, ws_closing_writecb, ws_eventcb, s);
			return;
		} else {
			evbuffer_drain(in, (size_t)f.len);  /* this stream is one-way */
		}
	}
}

enum http_rc http_api_events_ws(struct http_req *r)
{
	const char *upgrade = http_header(r, "Upgrade"), *key = http_header(r, "Sec-WebSocket-Key");
	const char *version = http_header(r, "Sec-WebSocket-Version");
	struct evhttp_connection *evcon = evhttp_request_get_connection(r->req);
	char accept[WS_ACCEPT_SIZE];
	struct http_sub *s;

	if (upgrade == NULL || strcasecmp(upgrade, "websocket") != 0) {
		http_reply_text(r, 400, "websocket upgrade expected");
		return HTTP_DONE;
	}
	if (!events_origin_ok(r)) {
		http_reply_text(r, 403, "cross-origin websocket not allowed (http-cors)");
		return HTTP_DONE;
	}
	if (key == NULL || ws_accept_key(key, accept) < 0 || version == NULL ||
	    strcmp(version, "13") != 0) {
		http_add_header(r, "Sec-WebSocket-Version", "13");
		http_reply_text(r, 400, "bad websocket handshake");
		return HTTP_DONE;
	}
	if (evcon == NULL || (s = sub_new(r, SUB_WS)) == NULL) {
		http_reply_text(r, 503, "out of memory");
		return HTTP_DONE;
	}
	http_req_defer(r);
	s->bev = evhttp_connection_get_bufferevent(evcon);
	sub_set_bev(s, s->bev);
	bufferevent_set_timeouts(s->bev, NULL, NULL);
	bufferevent_setcb(s->bev, ws_readcb, NULL, ws_eventcb, s);
	bufferevent_enable(s->bev, EV_READ | EV_WRITE);
	evbuffer_add_printf(bufferevent_get_output(s->bev),
	    "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
	    "Connection: Upgrade\r\nSec-WebSocket-Accept: %s\r\n\r\n", accept);
	return HTTP_DEFERRED;
}

/* --- wait ---------------------------------------------------------------------- */

/* Answers the waiting request with message id (and frees it), its JSON
 * j when given (a reference is taken); false if the message is gone
 * meanwhile, and the request goes on waiting. */
static bool wait_answer(struct http_sub *s, int64_t id, json_t *j)
{
	struct http_req *r = s->r;
	struct http_msg m;

	if (j != NULL)
		json_incref(j);
	else if (http_msg_load(s->ev->st, id, s->inbox_id, &m) != STORE_OK)
		return false;
	else {
		j = http_json_message(s->ev->st, &m);
		http_msg_free(&m);
		if (j == NULL)
			return false;
	}
	http_req_done(r);
	http_reply_json(r, 200, j);
	http_req_free(r);
	return true;
}

static void wait_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct http_sub *s = arg;
	struct http_req *r = s->r;

	(void)fd;
	(void)what;
	/* Woken but not answered yet (events_answer's passes go 64 waiters
	 * at a time): its message came within the timeout. */
	if (s->woken != 0 && wait_answer(s, s->woken, wake_msg(s->ev, s->woken)))
		return;
	http_req_done(r);
	http_reply_json(r, 408, json_pack("{s:s}", "Error", "timeout: no matching message"));
	http_req_free(r);
}

static int first_cb(const struct store_message_info *m, void *arg)
{
	*(int64_t *)arg = m->id;
	return 1;
}

static int wait_params(struct http_req *r, struct http_sub *s, long *timeout)
{
	const char *q = http_query(r, "query"), *t = http_query(r, "timeout");
	const char *a = http_query(r, "after"), *tz = http_query(r, "tz");
	char err[256], *end;

	*timeout = HTTP_WAIT_DEFAULT_S;
	if (t != NULL && ((*timeout = strtol(t, &end, 10)) < 0 || end == t || *end != '\0' ||
	    *timeout > HTTP_WAIT_MAX_S)) {
		snprintf(err, sizeof(err), "timeout: want 0..%d seconds", HTTP_WAIT_MAX_S);
		http_reply_error(r, err);
		return -1;
	}
	if (a != NULL && ((s->after = strtoll(a, &end, 10)) < 0 || end == a || *end != '\0')) {
		http_reply_error(r, "after: want a message ID");
		return -1;
	}
	if (q != NULL && *q != '\0' &&
	    msg_search_parse(q, tz ? tz : "", &s->search, err, sizeof(err)) < 0) {
		http_reply_error(r, err);
		return -1;
	}
	/* The same text with another tz is another query. */
	if (s->search != NULL && asprintf(&s->query, "%s\n%s", tz ? tz : "", q) < 0) {
		s->query = NULL;
		http_reply_text(r, 503, "out of memory");
		return -1;
	}
	return 0;
}

/* The wait's first look on the search pool: the oldest few matches above
 * `after` (or the newest few without it), each checked again on the loop
 * (read state, tags: the pool's snapshot is older). */
#define WAIT_CANDIDATES 8

static bool wait_first(struct http_req *r, struct http_sub *s);
static void wait_arm(struct http_req *r, struct http_sub *s);

static void wait_pool_done(struct http_req *r, int rc, const struct store_search_part *res,
    const struct msg_search *search, union http_pool_then then)
{
	struct http_sub *s = r->sub;
	struct http_msg m;
	size_t i, k;
	bool holds;

	(void)then;
	http_req_defer(r);                  /* waiting again, unless answered */
	if (rc != STORE_OK) {
		http_req_done(r);
		http_reply_text(r, 500, "store error");
		http_req_free(r);
		return;
	}
	for (k = 0; k < res->nids; k++) {
		i = s->after != 0 ? res->nids - 1 - k : k;   /* the oldest first */
		if (http_msg_load(s->ev->st, res->ids[i], s->inbox_id, &m) != STORE_OK)
			continue;
		holds = msg_search_state_holds(search, (m.flags & STORE_FLAG_SEEN) != 0,
		    m.keywords);
		http_msg_free(&m);
		if (holds && wait_answer(s, res->ids[i], NULL))
			return;                 /* answered, r freed */
	}
	/* Every candidate changed meanwhile: more may match beyond them, and
	 * the loop looks itself (rare: as without a pool). */
	if (res->nids < WAIT_CANDIDATES || wait_first(r, s))
		wait_arm(r, s);
}

/* The first look for a match already there, on the loop: false once
 * answered (r freed). */
static bool wait_first(struct http_req *r, struct http_sub *s)
{
	struct store_query q = { .inbox_id = r->inbox_id, .limit = 1, .after_id = s->after,
	    .search = s->search };
	int64_t found = 0;

	if (store_message_query(s->ev->st, &q, first_cb, &found, NULL) < 0) {
		http_req_done(r);
		http_reply_text(r, 500, "store error");
		http_req_free(r);
		return false;
	}
	return !(found != 0 && wait_answer(s, found, NULL));
}

/* Nothing there yet: the timeout runs from now (timeout=0 is "is one
 * there already?"). r is deferred. */
static void wait_arm(struct http_req *r, struct http_sub *s)
{
	struct timeval tv = { s->timeout, 0 };

	if ((s->timer = evtimer_new(r->srv->base, wait_timeout, s)) == NULL ||
	    evtimer_add(s->timer, &tv) < 0) {
		http_req_done(r);
		http_reply_text(r, 503, "out of memory");
		http_req_free(r);
	}
}

/* The first look on the pool: false if it cannot go there (no pool, no
 * search: nothing to gain). */
static bool wait_first_pooled(struct http_req *r, struct http_sub *s)
{
	struct store_query q = { .inbox_id = r->inbox_id, .limit = WAIT_CANDIDATES,
	    .after_id = s->after };
	const char *tz = http_query(r, "tz");
	struct msg_search *copy = NULL;
	char err[256];

	if (r->srv->search == NULL || s->search == NULL ||
	    msg_search_parse(http_query(r, "query"), tz ? tz : "", &copy, err, sizeof(err)) < 0)
		return false;
	q.search = copy;
	if (http_pool_search(r, &q, &copy, wait_pool_done, (union http_pool_then){ 0 }))
		return true;
	msg_search_free(copy);
	return false;
}

enum http_rc http_api_wait(struct http_req *r)
{
	struct http_events *ev = r->hs->events;
	struct http_sub *s;

	if (ev->nwaiters >= HTTP_WAITERS_MAX) {
		http_reply_text(r, 503, "too many waiting requests");
		return HTTP_DONE;
	}
	if ((s = sub_new(r, SUB_WAIT)) == NULL) {
		http_reply_text(r, 503, "out of memory");
		return HTTP_DONE;
	}
	if (wait_params(r, s, &s->timeout) < 0)
		return HTTP_DONE;               /* http_req_free frees s */
	/* A subscriber from here on: a message committed while the first
	 * look runs on the pool wakes it as any new one does. */
	if (wait_first_pooled(r, s))
		return HTTP_DEFERRED;
	http_req_defer(r);
	if (wait_first(r, s))
		wait_arm(r, s);
	return HTTP_DEFERRED;
}

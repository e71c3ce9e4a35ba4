/*
 * POST /api/v1/send: Mailpit's send request (From, To, Cc, Bcc, ReplyTo,
 * Subject, Text, HTML, Headers, Tags, Attachments) built into a MIME
 * message (msg_build.c) and stored through the delivery path SMTP uses
 * (group commit, MIME structure, search index), into the request's inbox
 * or `dev`. The reply, {"ID": "N"}, comes after the commit.
 */
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include <openssl/rand.h>

#include "mailsnare/base64.h"
#include "mailsnare/config.h"
#include "mailsnare/deliver.h"
#include "mailsnare/ingest.h"
#include "mailsnare/mime.h"
#include "mailsnare/msg_build.h"
#include "mailsnare/server.h"
#include "mailsnare/smtp.h"
#include "http_internal.h"

#define SEND_ATTS_MAX 100
#define SEND_HEADERS_MAX 100
#define SEND_TAGS_MAX 100
/* Bytes of a built message kept in memory before the spool file. */
#define SEND_SPOOL_MEM (256 * 1024)
/* Bodies from this size on are built in a thread (below, a few ms). */
#define SEND_THREAD_MIN (256 * 1024)
#define SEND_THREADS_MAX 4

/* A send in flight: everything the store_new_message points to. */
struct http_send {
	struct store_new_message msg;
	struct ingest *in;               /* Received: + the built message */
	char **rcpts;
	size_t nrcpts;
	char from[256], client[64];
	json_t *tags;
	struct deliver_req *dreq;
};

static void send_free(struct http_send *s)
{
	size_t i;

	if (s == NULL)
		return;
	for (i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	if (s->in != NULL)
		ingest_free(s->in);
	json_decref(s->tags);
	free(s);
}

/* http_req_free: the client went before the commit. */
static void send_cleanup(struct http_req *r)
{
	struct http_send *s = r->cleanup_arg;

	if (s->dreq != NULL)
		deliver_cancel(s->dreq);
	send_free(s);
	r->cleanup = NULL;
}

/* --- the request ------------------------------------------------------ */

struct send_input {
	struct msg_build b;
	struct msg_build_addr to[MSG_BUILD_ADDRS_MAX], cc[MSG_BUILD_ADDRS_MAX];
	struct msg_build_addr reply_to[MSG_BUILD_ADDRS_MAX];
	const char *bcc[MSG_BUILD_ADDRS_MAX];
	size_t nbcc;
	struct msg_build_header headers[SEND_HEADERS_MAX];
	const char *tags[SEND_TAGS_MAX];
	struct msg_build_att atts[SEND_ATTS_MAX];
	char err[256];
};

static const char *str_field(json_t *o, const char *name)
{
	json_t *v = json_object_get(o, name);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

static int addr_list(struct send_input *in, json_t *body, const char *field,
    struct msg_build_addr *out, size_t *n)
{
	json_t *arr = json_object_get(body, field), *v;
	size_t i;

	*n = 0;
	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > MSG_BUILD_ADDRS_MAX)
		goto bad;
	json_array_foreach(arr, i, v) {
		if (!json_is_object(v) || str_field(v, "Email") == NULL)
			goto bad;
		out[*n].email = str_field(v, "Email");
		out[*n].name = str_field(v, "Name");
		(*n)++;
	}
	return 0;
bad:
	snprintf(in->err, sizeof(in->err), "%s: want an array of {\"Email\", \"Name\"}", field);
	return -1;
}

static int bcc_list(struct send_input *in, json_t *body)
{
	json_t *arr = json_object_get(body, "Bcc"), *v;
	size_t i;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > MSG_BUILD_ADDRS_MAX)
		goto bad;
	json_array_foreach(arr, i, v) {
		if (!json_is_string(v))
			goto bad;
		if (!msg_build_email_valid(json_string_value(v))) {
			snprintf(in->err, sizeof(in->err), "Invalid 'Bcc' email address: %s",
			    json_string_value(v));
			return -1;
		}
		in->bcc[in->nbcc++] = json_string_value(v);
	}
	return 0;
bad:
	snprintf(in->err, sizeof(in->err), "Bcc: want an array of email addresses");
	return -1;
}

static int headers_tags(struct send_input *in, json_t *body)
{
	json_t *h = json_object_get(body, "Headers"), *t = json_object_get(body, "Tags"), *v;
	const char *k;
	size_t i;

	if (h != NULL && !json_is_null(h)) {
		if (!json_is_object(h) || json_object_size(h) > SEND_HEADERS_MAX)
			goto bad_headers;
		json_object_foreach(h, k, v) {
			if (!json_is_string(v))
				goto bad_headers;
			in->headers[in->b.nheaders].name = k;
			in->headers[in->b.nheaders++].value = json_string_value(v);
		}
	}
	if (t != NULL && !json_is_null(t)) {
		if (!json_is_array(t) || json_array_size(t) > SEND_TAGS_MAX)
			goto bad_tags;
		json_array_foreach(t, i, v) {
			if (!json_is_string(v) || !http_tag_valid(json_string_value(v)))
				goto bad_tags;
			in->tags[in->b.ntags++] = json_string_value(v);
		}
	}
	return 0;
bad_headers:
	snprintf(in->err, sizeof(in->err), "Headers: want an object of strings");
	return -1;
bad_tags:
	snprintf(in->err, sizeof(in->err), "Tags: want an array of tag names (IMAP keywords: "
	    "no spaces)");
	return -1;
}

/* Decodes the attachments' base64; the data is freed by the caller. */
static int attachments(struct send_input *in, json_t *body)
{
	json_t *arr = json_object_get(body, "Attachments"), *v;
	const char *content;
	size_t i, n;
	ssize_t got;
	void *data;

	if (arr == NULL || json_is_null(arr))
		return 0;
	if (!json_is_array(arr) || json_array_size(arr) > SEND_ATTS_MAX) {
		snprintf(in->err, sizeof(in->err), "Attachments: want an array (at most %d)",
		    SEND_ATTS_MAX);
		return -1;
	}
	json_array_foreach(arr, i, v) {
		if (!json_is_object(v) || (content = str_field(v, "Content")) == NULL) {
			snprintf(in->err, sizeof(in->err), "Attachments[%zu]: no Content", i);
			return -1;
		}
		n = strlen(content);
		if ((data = malloc(n / 4 * 3 + 3)) == NULL ||
		    (got = base64_decode(content, n, data, n / 4 * 3 + 3)) < 0) {
			free(data);
			snprintf(in->err, sizeof(in->err), "Attachments[%zu]: Content is not base64", i);
			return -1;
		}
		in->atts[i].data = data;
		in->atts[i].len = (size_t)got;
		in->atts[i].filename = str_field(v, "Filename");
		in->atts[i].content_type = str_field(v, "ContentType");
		in->atts[i].content_id = str_field(v, "ContentID");
		in->b.natts = i + 1;
	}
	return 0;
}

static int parse_input(struct send_input *in, json_t *body)
{
	json_t *from = json_object_get(body, "From");
	struct msg_build *b = &in->b;

	if (!json_is_object(from) || str_field(from, "Email") == NULL) {
		snprintf(in->err, sizeof(in->err), "No valid sender address found");
		return -1;
	}
	b->from.email = str_field(from, "Email");
	b->from.name = str_field(from, "Name");
	b->to = in->to;
	b->cc = in->cc;
	b->reply_to = in->reply_to;
	b->headers = in->headers;
	b->tags = in->tags;
	b->atts = in->atts;
	if (addr_list(in, body, "To", in->to, &b->nto) < 0 ||
	    addr_list(in, body, "Cc", in->cc, &b->ncc) < 0 ||
	    addr_list(in, body, "ReplyTo", in->reply_to, &b->nreply_to) < 0 ||
	    bcc_list(in, body) < 0 || headers_tags(in, body) < 0 || attachments(in, body) < 0)
		return -1;
	if (b->nto + b->ncc + in->nbcc == 0) {
		snprintf(in->err, sizeof(in->err), "No valid recipient addresses found");
		return -1;
	}
	b->subject = str_field(body, "Subject");
	b->text = str_field(body, "Text");
	b->html = str_field(body, "HTML");
	return 0;
}

/* --- delivery ------------------------------------------------------------ */

static int add_rcpt(struct http_send *s, const char *email)
{
	if ((s->rcpts[s->nrcpts] = strdup(email)) == NULL)
		return -1;
	s->nrcpts++;
	return 0;
}

static int envelope(struct http_send *s, const struct send_input *in)
{
	size_t i, n = in->b.nto + in->b.ncc + in->nbcc;

	if ((s->rcpts = calloc(n, sizeof(*s->rcpts))) == NULL)
		return -1;
	for (i = 0; i < in->b.nto; i++)
		if (add_rcpt(s, in->to[i].email) < 0)
			return -1;
	for (i = 0; i < in->b.ncc; i++)
		if (add_rcpt(s, in->cc[i].email) < 0)
			return -1;
	for (i = 0; i < in->nbcc; i++)
		if (add_rcpt(s, in->bcc[i]) < 0)
			return -1;
	snprintf(s->from, sizeof(s->from), "%s", in->b.from.email);
	return 0;
}

static void send_done(void *arg, int rc, int64_t id)
{
	struct http_req *r = arg;
	struct http_send *s = r->cleanup_arg;
	const char *kw[SEND_TAGS_MAX];
	uint64_t modseq;
	char text[32];
	size_t i, n = 0;
	json_t *v;

	s->dreq = NULL;
	http_req_done(r);
	if (rc != STORE_OK) {
		http_reply_text(r, rc == STORE_FULL ? 507 : 500, "could not store the message");
		http_req_free(r);
		return;
	}
	json_array_foreach(s->tags, i, v)
		kw[n++] = json_string_value(v);
	if (n > 0)
		(void)store_message_store(r->srv->store, id, STORE_FLAGS_ADD, 0, kw, n, 0, &modseq);
	snprintf(text, sizeof(text), "%lld", (long long)id);
	http_reply_json(r, 200, json_pack("{s:s}", "ID", text));
	http_req_free(r);
}

static void rfc5322_date(time_t t, char *buf, size_t len)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%a, %d %b %Y %H:%M:%S +0000", &tm);
}

/* What building needs of the request and the config: copied, so that a
 * thread can build while the loop goes on. */
struct send_ctx {
	uint64_t max_size;
	char hostname[256], peer[64];
};

/* Received: + the message, its structure and header columns. */
static int prepare(const struct send_ctx *ctx, struct http_send *s, struct send_input *in)
{
	char date[64], mid[96], received[512], *built;
	unsigned char rnd[16];
	unsigned long long tail;
	size_t blen;
	int n;

	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		return -1;
	memcpy(&in->b.seed, rnd, sizeof(in->b.seed));
	rfc5322_date(time(NULL), date, sizeof(date));
	memcpy(&tail, rnd + 8, sizeof(tail));
	snprintf(mid, sizeof(mid), "%016llx.%016llx@mailsnare",
	    (unsigned long long)in->b.seed, tail);
	in->b.date = date;
	in->b.message_id = mid;
	if (msg_build(&in->b, &built, &blen, in->err, sizeof(in->err)) < 0)
		return 1;
	if (blen > ctx->max_size) {
		free(built);
		snprintf(in->err, sizeof(in->err), "message too large (max-message-size %llu)",
		    (unsigned long long)ctx->max_size);
		return 1;
	}
	snprintf(s->client, sizeof(s->client), "%s", ctx->peer);
	n = snprintf(received, sizeof(received),
	    "Received: from %s\r\n\tby %s (mailsnare) with HTTP; %s\r\n",
	    ctx->peer[0] ? ctx->peer : "unknown", ctx->hostname, date);
	/* The same preparation as SMTP's: spool, MIME scan, list columns. */
	if ((s->in = ingest_new(&(struct ingest_options){ .mem_limit = SEND_SPOOL_MEM })) == NULL) {
		free(built);
		return -1;
	}
	ingest_write(s->in, received, n > 0 && (size_t)n < sizeof(received) ? (size_t)n : 0);
	ingest_write(s->in, built, blen);
	free(built);
	if (ingest_status(s->in) != INGEST_OK || ingest_finish(s->in, &s->msg) != 0)
		return -1;
	/* The X-Tags header is msg_build's, from Tags: those are set as
	 * given (send_done), not cleaned as a message's own X-Tags are. */
	s->msg.keywords = NULL;
	return 0;
}

static int target_inbox(struct http_req *r, int64_t *id)
{
	struct store_inbox in;
	int rc;

	if (r->inbox_id != 0) {
		*id = r->inbox_id;
		return STORE_OK;
	}
	rc = store_inbox_get(r->srv->store, SMTP_DEFAULT_INBOX, &in);
	*id = in.id;
	return rc;
}

static void free_atts(struct send_input *in)
{
	size_t i;

	for (i = 0; i < in->b.natts; i++)
		free((void *)in->atts[i].data);
	in->b.natts = 0;
}

/*
 * The request's JSON to a prepared message in s (no loop state: it runs
 * in a thread for large bodies). 0; 1 with in->err (a 400); -1 (a 500).
 * The JSON and the decoded attachments are freed before it returns.
 */
static int send_build(const struct send_ctx *ctx, const char *text, size_t len,
    struct send_input *in, struct http_send *s)
{
	json_error_t e;
	json_t *body;
	int rc;

	if ((body = json_loadb(text, len, 0, &e)) == NULL || !json_is_object(body)) {
		snprintf(in->err, sizeof(in->err), "invalid JSON: %s", body ? "want an object" :
		    e.text);
		json_decref(body);
		return 1;
	}
	if (parse_input(in, body) < 0)
		rc = 1;
	else if ((rc = prepare(ctx, s, in)) == 0 && (rc = envelope(s, in)) == 0)
		s->tags = json_incref(json_object_get(body, "Tags"));
	free_atts(in);
	json_decref(body);
	return rc;
}

/* Hands the prepared message to the delivery path; the reply comes from
 * send_done, after the commit. */
static enum http_rc send_submit(struct http_req *r, struct http_send *s)
{
	if (target_inbox(r, &s->msg.inbox_id) != STORE_OK) {
		send_free(s);
		http_reply_text(r, 500, "could not store the message");
		return HTTP_DONE;
	}
	s->msg.mail_from = s->from;
	s->msg.rcpts = (const char *const *)s->rcpts;
	s->msg.n_rcpts = s->nrcpts;
	s->msg.auth_user = r->inbox_id ? r->inbox : NULL;
	s->msg.client_addr = s->client;
	s->msg.internal_date = time(NULL);
	r->cleanup = send_cleanup;
	r->cleanup_arg = s;
	http_req_defer(r);
	if ((s->dreq = deliver_submit(r->srv->deliver, &s->msg, send_done, r)) == NULL) {
		http_req_done(r);
		http_reply_text(r, 500, "could not store the message");
		return HTTP_DONE;    /* http_req_free frees s (send_cleanup) */
	}
	return HTTP_DEFERRED;
}

static void send_ctx_of(struct http_req *r, struct send_ctx *ctx)
{
	char *peer = NULL;
	ev_uint16_t port;

	ctx->max_size = r->srv->cfg->max_message_size;
	snprintf(ctx->hostname, sizeof(ctx->hostname), "%s", r->srv->cfg->hostname);
	evhttp_connection_get_peer(evhttp_request_get_connection(r->req), &peer, &port);
	snprintf(ctx->peer, sizeof(ctx->peer), "%s", peer ? peer : "");
}

/* The reply for a build that failed (rc 1: the client's error). */
static void send_fail(struct http_req *r, int rc, const struct send_input *in)
{
	if (rc > 0)
		http_reply_error(r, in->err);
	else
		http_reply_text(r, 500, "out of memory");
}

/* --- large bodies: built in a thread ------------------------------------- */

/*
 * A 28 MB message as base64 JSON took the loop 2.5 s to parse, decode,
 * build and scan (every other client waiting). A body of SEND_THREAD_MIN
 * or more is built by a thread of its own, at most SEND_THREADS_MAX at
 * once (the others queue); the thread touches nothing of the loop's, and
 * hands the job back over a pipe, as relay.c's releases do. The delivery
 * itself is the loop's, in slices as SMTP's.
 */
struct send_job {
	struct send_pool *pool;
	struct http_req *r;              /* NULL once the client went */
	struct evbuffer *body;
	struct send_ctx ctx;
	struct send_input *in;
	struct http_send *s;
	int rc;                          /* send_build's */
	pthread_t thread;
	struct send_job *next;           /* the queue, or the running list */
};

struct send_pool {
	int pipe[2];
	struct event *ev_done;
	struct send_job *queue, **queue_tail, *running;
	unsigned nrunning;
};

static void job_free(struct send_job *j)
{
	if (j->body != NULL)
		evbuffer_free(j->body);
	send_free(j->s);
	free(j->in);
	free(j);
}

static void *job_thread(void *arg)
{
	struct send_job *j = arg;
	size_t len = evbuffer_get_length(j->body);
	const char *text = (const char *)evbuffer_pullup(j->body, -1);

	j->rc = text == NULL ? -1 : send_build(&j->ctx, text, len, j->in, j->s);
	evbuffer_free(j->body);
	j->body = NULL;
	/* A pointer is below PIPE_BUF: one write, never torn. */
	if (write(j->pool->pipe[1], &j, sizeof(j)) != (ssize_t)sizeof(j))
		abort();                     /* the loop would wait for ever */
	return NULL;
}

static void job_unlink_running(struct send_pool *p, struct send_job *j)
{
	struct send_job **pp;

	for (pp = &p->running; *pp != NULL; pp = &(*pp)->next)
		if (*pp == j) {
			*pp = j->next;
			break;
		}
	p->nrunning--;
}

/* Starts queued jobs while threads are free (a job whose client went is
 * dropped). */
static void pool_start(struct send_pool *p)
{
	struct send_job *j;

	while (p->nrunning < SEND_THREADS_MAX && (j = p->queue) != NULL) {
		if ((p->queue = j->next) == NULL)
			p->queue_tail = &p->queue;
		if (j->r == NULL) {
			job_free(j);
			continue;
		}
		j->next = p->running;
		p->running = j;
		p->nrunning++;
		if (pthread_create(&j->thread, NULL, job_thread, j) != 0) {
			job_unlink_running(p, j);
			j->rc = -1;
			if (j->r != NULL) {
				struct http_req *r = j->r;
				r->cleanup = NULL;
				http_req_done(r);
				http_reply_text(r, 503, "could not start building the message");
				http_req_free(r);
			}
			job_free(j);
		}
	}
}

/* A thread is done: its job goes on to the delivery on the loop. */
static void job_done(struct send_job *j)
{
	struct http_req *r = j->r;
	struct http_send *s = j->s;

	pthread_join(j->thread, NULL);
	job_unlink_running(j->pool, j);
	if (r == NULL) {
		job_free(j);
		return;
	}
	r->cleanup = NULL;
	if (j->rc != 0) {
		http_req_done(r);
		send_fail(r, j->rc, j->in);
		http_req_free(r);
		job_free(j);
		return;
	}
	j->s = NULL;
	job_free(j);
	http_req_done(r);
	if (send_submit(r, s) == HTTP_DONE)
		http_req_free(r);
}

static void pool_readcb(evutil_socket_t fd, short what, void *arg)
{
	struct send_pool *p = arg;
	struct send_job *j;

	(void)what;
	while (read(fd, &j, sizeof(j)) == (ssize_t)sizeof(j))
		job_done(j);
	pool_start(p);
}

static struct send_pool *pool_get(struct http_server *hs)
{
	struct send_pool *p = hs->send_pool;

	if (p != NULL)
		return p;
	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->queue_tail = &p->queue;
	if (pipe2(p->pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		free(p);
		return NULL;
	}
	(void)fcntl(p->pipe[1], F_SETFL, 0);   /* the thread's write blocks, never fails */
	p->ev_done = event_new(hs->srv->base, p->pipe[0], EV_READ | EV_PERSIST, pool_readcb, p);
	if (p->ev_done == NULL || event_add(p->ev_done, NULL) < 0) {
		if (p->ev_done)
			event_free(p->ev_done);
		close(p->pipe[0]);
		close(p->pipe[1]);
		free(p);
		return NULL;
	}
	hs->send_pool = p;
	return p;
}

/* The server stops: running builds are waited for (they end by
 * themselves), queued ones dropped. Their requests are gone already. */
void http_send_pool_free(struct send_pool *p)
{
	struct send_job *j;

	if (p == NULL)
		return;
	while ((j = p->running) != NULL) {
		pthread_join(j->thread, NULL);
		p->running = j->next;
		job_free(j);
	}
	while ((j = p->queue) != NULL) {
		p->queue = j->next;
		job_free(j);
	}
	event_free(p->ev_done);
	close(p->pipe[0]);
	close(p->pipe[1]);
	free(p);
}

/* http_req_free while the job is queued or building: it goes on alone. */
static void job_cleanup(struct http_req *r)
{
	struct send_job *j = r->cleanup_arg;

	j->r = NULL;
	r->cleanup = NULL;
}

static enum http_rc http_send_job(struct http_req *r)
{
	struct send_pool *p = pool_get(r->hs);
	struct send_job *j = calloc(1, sizeof(*j));

	if (p == NULL || j == NULL || (j->in = calloc(1, sizeof(*j->in))) == NULL ||
	    (j->s = calloc(1, sizeof(*j->s))) == NULL || (j->body = evbuffer_new()) == NULL ||
	    evbuffer_add_buffer(j->body, evhttp_request_get_input_buffer(r->req)) < 0) {
		if (j != NULL)
			job_free(j);
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	j->pool = p;
	j->r = r;
	send_ctx_of(r, &j->ctx);
	r->cleanup = job_cleanup;
	r->cleanup_arg = j;
	http_req_defer(r);
	*p->queue_tail = j;
	p->queue_tail = &j->next;
	pool_start(p);
	return HTTP_DEFERRED;
}

enum http_rc http_api_send(struct http_req *r)
{
	struct send_input *in;
	struct http_send *s;
	struct send_ctx ctx;
	size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(r->req));
	char *text;
	int rc;

	if (len >= SEND_THREAD_MIN)
		return http_send_job(r);
	in = calloc(1, sizeof(*in));
	s = calloc(1, sizeof(*s));
	if (in == NULL || s == NULL || (text = http_body(r, &len)) == NULL) {
		free(in);
		free(s);
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	send_ctx_of(r, &ctx);
	rc = send_build(&ctx, text, len, in, s);
	free(text);
	if (rc != 0) {
		send_fail(r, rc, in);
		send_free(s);
		free(in);
		return HTTP_DONE;
	}
	free(in);
	return send_submit(r, s);
}

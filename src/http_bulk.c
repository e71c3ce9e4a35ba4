/*
 * Changes to many messages at once (PUT /api/v1/messages read state,
 * DELETE /api/v1/messages, DELETE /api/v1/search) done in slices: each
 * loop pass changes at most HTTP_BULK_SLICE messages in one transaction
 * and lets every other client have its turn before the next, so a
 * request over 100,000 messages never holds the reactor for more than a
 * few milliseconds. The reply ("ok") goes after the last slice; a client
 * that leaves meanwhile ends the job where it is (what was done stays
 * done: the same as Mailpit, whose bulk changes are not one transaction
 * either).
 *
 * The messages come from a listing (store_query: the scope, a search, a
 * flag filter), paged by id downwards, or from the request's IDs array.
 */
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mailsnare/msg_search.h"
#include "mailsnare/server.h"
#include "http_internal.h"

/* Messages changed per loop pass: a delete costs tens of microseconds
 * (its triggers, the search index), a flag change less. */
#define HTTP_BULK_SLICE 128

struct http_bulk {
	struct http_req *r;
	struct event *ev;
	enum http_bulk_op op;
	struct store_query q;        /* a listing: q.before_id steps down */
	struct msg_search *search;   /* q's, owned */
	json_t *ids;                 /* or an array of ID strings */
	size_t next;                 /* ids: the next one */
};

static void bulk_free(struct http_bulk *b)
{
	if (b->ev != NULL)
		event_free(b->ev);
	msg_search_free(b->search);
	json_decref(b->ids);
	free(b);
}

/* The request goes (replied to, or its client left): the job with it. */
static void bulk_cleanup(struct http_req *r)
{
	struct http_bulk *b = r->cleanup_arg;

	r->cleanup = NULL;
	r->cleanup_arg = NULL;
	if (b != NULL)
		bulk_free(b);
}

static int bulk_apply(struct http_req *r, enum http_bulk_op op, int64_t id)
{
	switch (op) {
	case HTTP_BULK_READ:
		return store_message_set_flags(r->srv->store, id, STORE_FLAG_SEEN, 0);
	case HTTP_BULK_UNREAD:
		return store_message_set_flags(r->srv->store, id, 0, STORE_FLAG_SEEN);
	case HTTP_BULK_DELETE:
		return store_message_del(r->srv->store, id);
	}
	return STORE_ERR;
}

/* The message of an ID string, if in scope ("latest" is not an ID here). */
static bool id_in_scope(struct http_req *r, const char *text, int64_t *id)
{
	struct http_msg m;

	if (text == NULL || strcmp(text, "latest") == 0 ||
	    http_resolve_id(r, text, id) != STORE_OK)
		return false;
	if (r->inbox_id == 0)
		return true;
	if (http_msg_load(r->srv->store, *id, r->inbox_id, &m) != STORE_OK)
		return false;
	http_msg_free(&m);
	return true;
}

struct slice {
	int64_t id[HTTP_BULK_SLICE];
	size_t n;
};

static int slice_cb(const struct store_message_info *i, void *arg)
{
	struct slice *s = arg;

	if (s->n < HTTP_BULK_SLICE)
		s->id[s->n++] = i->id;
	return 0;
}

/* The next slice's ids; false when there are no more after it. */
static bool bulk_take(struct http_bulk *b, struct slice *s, int *rc)
{
	int64_t id;

	s->n = 0;
	if (b->ids != NULL) {
		while (s->n < HTTP_BULK_SLICE && b->next < json_array_size(b->ids))
			if (id_in_scope(b->r, json_string_value(json_array_get(b->ids, b->next++)),
			    &id))
				s->id[s->n++] = id;
		return b->next < json_array_size(b->ids);
	}
	b->q.limit = HTTP_BULK_SLICE;
	*rc = store_message_query(b->r->srv->store, &b->q, slice_cb, s, NULL);
	if (*rc != STORE_OK || s->n < HTTP_BULK_SLICE)
		return false;
	b->q.before_id = s->id[s->n - 1];
	return true;
}

static void bulk_reply(struct http_bulk *b, int rc)
{
	struct http_req *r = b->r;

	http_req_done(r);
	if (rc < 0)
		http_reply_text(r, 500, "store error");
	else
		http_reply_ok(r);
	http_req_free(r);            /* and the job, by bulk_cleanup */
}

/* One slice in one transaction (a change of a message already gone is
 * no error: another client may be deleting too). */
static void bulk_slice(evutil_socket_t fd, short what, void *arg)
{
	struct http_bulk *b = arg;
	struct store *st = b->r->srv->store;
	struct timeval now = { 0, 0 };
	struct slice s;
	bool more, tx;
	int rc = STORE_OK;
	size_t i;

	(void)fd;
	(void)what;
	more = bulk_take(b, &s, &rc);
	tx = rc == STORE_OK && s.n > 1 && store_begin(st) == STORE_OK;
	for (i = 0; rc == STORE_OK && i < s.n; i++)
		if ((rc = bulk_apply(b->r, b->op, s.id[i])) == STORE_NOTFOUND)
			rc = STORE_OK;
	if (tx && (rc != STORE_OK || store_commit(st) != STORE_OK)) {
		store_rollback(st);
		rc = rc != STORE_OK ? rc : STORE_ERR;
	}
	if (rc != STORE_OK || !more)
		bulk_reply(b, rc);
	else
		evtimer_add(b->ev, &now);   /* a timer: the sockets get their turn first */
}

static enum http_rc bulk_start(struct http_req *r, struct http_bulk *b)
{
	struct timeval now = { 0, 0 };

	b->r = r;
	if ((b->ev = evtimer_new(r->srv->base, bulk_slice, b)) == NULL) {
		bulk_free(b);
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	r->cleanup = bulk_cleanup;
	r->cleanup_arg = b;
	http_req_defer(r);
	/* Even the first slice from the loop: the handler returns first. */
	evtimer_add(b->ev, &now);
	return HTTP_DEFERRED;
}

enum http_rc http_bulk_query(struct http_req *r, const struct store_query *q,
    struct msg_search *search, enum http_bulk_op op)
{
	struct http_bulk *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		msg_search_free(search);
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	b->op = op;
	b->q = *q;
	b->q.search = b->search = search;
	return bulk_start(r, b);
}

enum http_rc http_bulk_ids(struct http_req *r, json_t *ids, enum http_bulk_op op)
{
	struct http_bulk *b = calloc(1, sizeof(*b));

	if (b == NULL) {
		http_reply_text(r, 500, "out of memory");
		return HTTP_DONE;
	}
	b->op = op;
	b->ids = json_incref(ids);
	return bulk_start(r, b);
}

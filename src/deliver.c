/*
 * Group commit of deliveries. Submissions made while the event loop runs
 * its normal callbacks are collected; an event of the lowest priority runs
 * once they are all done and writes the whole batch in one transaction.
 * Only after COMMIT are the submitters called back (and send their 250).
 */
#include <stdlib.h>
#include <string.h>

#include "mailsnare/deliver.h"
#include "mailsnare/log.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_header.h"

/* serve.c initialises the base with this many priorities; the commit runs
 * at the lowest, after every connection callback of the pass. */
#define DELIVER_PRIORITY 2
/* One pass writes messages of at most this many bytes together (at least
 * one message): the rest wait for the next pass, so that 20 large messages
 * finishing at once do not hold every other client up while all their
 * bodies are copied into the store. */
#define DELIVER_BATCH_BYTES (8u * 1024 * 1024)

struct deliver_req {
	struct deliver *d;
	const struct store_new_message *msg;
	deliver_done_cb cb;
	void *arg;
	int rc;
	int64_t id;
	struct deliver_req *next;
};

/* Inboxes with more to prune than one step removes (max-messages lowered
 * below what they hold): the rest goes a step per loop pass. Beyond this
 * many, the next delivery to an inbox goes on with it. */
#define DELIVER_PRUNE_PENDING 64

struct deliver {
	struct store *st;
	uint64_t max_messages;
	struct event *ev;
	struct deliver_req *head, **tail;
	struct event *ev_prune;
	int64_t prune[DELIVER_PRUNE_PENDING];
	size_t nprune;
};

static void deliver_run(struct deliver *d);

static void deliver_evcb(evutil_socket_t fd, short what, void *arg)
{
	deliver_run(arg);
}

static const struct timeval prune_now = { 0, 0 };

static void prune_later(struct deliver *d, int64_t inbox_id)
{
	for (size_t i = 0; i < d->nprune; i++)
		if (d->prune[i] == inbox_id)
			return;
	if (d->nprune == DELIVER_PRUNE_PENDING)
		return;
	d->prune[d->nprune++] = inbox_id;
	/* A timer, not event_active: the sockets get their turn first. */
	evtimer_add(d->ev_prune, &prune_now);
}

static void prune(struct deliver *d, int64_t inbox_id)
{
	if (store_inbox_prune(d->st, inbox_id, d->max_messages) == STORE_MORE)
		prune_later(d, inbox_id);
}

/* One step of the first inbox waiting; it goes to the back if more is left. */
static void prune_evcb(evutil_socket_t fd, short what, void *arg)
{
	struct deliver *d = arg;
	int64_t inbox_id;

	if (d->nprune == 0)
		return;
	inbox_id = d->prune[0];
	memmove(d->prune, d->prune + 1, --d->nprune * sizeof(d->prune[0]));
	prune(d, inbox_id);
	if (d->nprune > 0)
		evtimer_add(d->ev_prune, &prune_now);
}

struct deliver *deliver_new(struct event_base *base, struct store *st, uint64_t max_messages)
{
	struct deliver *d = calloc(1, sizeof(*d));

	if (d == NULL)
		return NULL;
	d->st = st;
	d->max_messages = max_messages;
	d->tail = &d->head;
	d->ev = event_new(base, -1, 0, deliver_evcb, d);
	d->ev_prune = evtimer_new(base, prune_evcb, d);
	if (d->ev == NULL || d->ev_prune == NULL) {
		if (d->ev != NULL)
			event_free(d->ev);
		free(d);
		return NULL;
	}
	/* Fails only if the base has fewer priorities; then it runs at the
	 * default one, which is still correct, only batches less. */
	(void)event_priority_set(d->ev, DELIVER_PRIORITY);
	(void)event_priority_set(d->ev_prune, DELIVER_PRIORITY);
	return d;
}

void deliver_free(struct deliver *d)
{
	if (d == NULL)
		return;
	deliver_flush(d);
	event_free(d->ev);
	event_free(d->ev_prune);
	free(d);
}

struct deliver_req *deliver_submit(struct deliver *d, const struct store_new_message *msg,
    deliver_done_cb cb, void *arg)
{
	struct deliver_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->d = d;
	r->msg = msg;
	r->cb = cb;
	r->arg = arg;
	if (d->head == NULL)
		event_active(d->ev, EV_TIMEOUT, 0);
	*d->tail = r;
	d->tail = &r->next;
	return r;
}

void deliver_cancel(struct deliver_req *req)
{
	struct deliver *d = req->d;
	struct deliver_req **pp;

	for (pp = &d->head; *pp; pp = &(*pp)->next) {
		if (*pp == req) {
			*pp = req->next;
			if (d->tail == &req->next)
				d->tail = pp;
			free(req);
			return;
		}
	}
}

void deliver_flush(struct deliver *d)
{
	while (d->head != NULL)
		deliver_run(d);
}

/* A part sent as an attachment (Content-Disposition: attachment) or named
 * as a file (filename=, or Content-Type's older name=): what a mail client
 * shows a paper clip for. */
static bool part_is_attachment(const struct mime_part *p)
{
	uint32_t i;

	if (p->disposition != NULL && strcmp(p->disposition, "attachment") == 0)
		return true;
	for (i = 0; i < p->ndisp_params; i++)
		if (strcmp(p->disp_params[i].name, "filename") == 0)
			return true;
	return !(p->flags & MIME_PART_MULTIPART) && mime_part_param(p, "name") != NULL;
}

static bool tree_has_attachment(const struct mime_part *p)
{
	const struct mime_part *c;

	for (c = p->children; c != NULL; c = c->next)
		if (part_is_attachment(c) || tree_has_attachment(c))
			return true;
	return false;
}

/* The store's listing filters on it; the structure the session scanned
 * says (no structure: taken as without). */
static bool has_attachment(const struct store_new_message *msg)
{
	struct mime_part *root;
	bool yes;

	if (msg->has_attachment || msg->structure == NULL)
		return msg->has_attachment;
	if ((root = mime_tree_parse(msg->structure, msg->structure_len)) == NULL)
		return false;
	yes = tree_has_attachment(root);
	mime_part_free(root);
	return yes;
}

/* Writes the batch; sets each request's rc. A message whose own write
 * fails does not spoil the others (store_message_add uses a savepoint);
 * a failed COMMIT fails them all. */
static void deliver_write(struct deliver *d, struct deliver_req *batch)
{
	struct deliver_req *r;
	int rc = store_begin(d->st);

	for (r = batch; r; r = r->next)
		r->rc = rc;
	if (rc != STORE_OK)
		return;
	for (r = batch; r; r = r->next) {
		struct store_new_message m = *r->msg;

		m.has_attachment = has_attachment(r->msg);
		r->rc = store_message_add(d->st, &m, &r->id);
		if (r->rc == STORE_OK && d->max_messages > 0)
			prune(d, r->msg->inbox_id);
	}
	if ((rc = store_commit(d->st)) != STORE_OK) {
		store_rollback(d->st);
		for (r = batch; r; r = r->next)
			r->rc = rc;
	}
}

/* Takes the next batch off the queue: requests up to DELIVER_BATCH_BYTES,
 * at least one; what is left runs in a later pass. */
static struct deliver_req *deliver_take(struct deliver *d)
{
	struct deliver_req *batch = d->head, **pp = &d->head;
	uint64_t bytes = 0;

	while (*pp != NULL && (bytes == 0 || bytes + (*pp)->msg->src.size <= DELIVER_BATCH_BYTES)) {
		bytes += (*pp)->msg->src.size + 1;
		pp = &(*pp)->next;
	}
	d->head = *pp;
	*pp = NULL;
	if (d->head == NULL)
		d->tail = &d->head;
	else
		event_active(d->ev, EV_TIMEOUT, 0);
	return batch;
}

static void deliver_run(struct deliver *d)
{
	struct deliver_req *batch, *r;

	if (d->head == NULL)
		return;
	batch = deliver_take(d);
	deliver_write(d, batch);
	while ((r = batch) != NULL) {
		batch = r->next;
		if (r->rc != STORE_OK)
			log_warn("store: delivery failed (%d): %s", r->rc, store_errmsg(d->st));
		r->cb(r->arg, r->rc, r->id);
		free(r);
	}
}

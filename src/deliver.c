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

/* serve.c initialises the base with this many priorities; the commit runs
 * at the lowest, after every connection callback of the pass. */
#define DELIVER_PRIORITY 2
/* One pass writes messages of at most this many bytes together (at least
 * one message): the rest wait for the next pass, so that 20 large messages
 * finishing at once do not hold every other client up while all their
 * bodies are copied into the store. */
#define DELIVER_BATCH_BYTES (8u * 1024 * 1024)

/* One submission: a single message (cb) or a group (group_cb, all or
 * nothing, with UIDs). */
struct deliver_req {
	struct deliver *d;
	const struct store_new_message *const *msgs;
	size_t n;
	uint64_t bytes;
	const struct store_new_message *one;    /* msgs of a single message */
	deliver_done_cb cb;
	deliver_group_cb group_cb;
	void *arg;
	int rc;
	struct deliver_result *res;             /* n results */
	struct deliver_result res_one;
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

static struct deliver_req *req_queue(struct deliver *d, struct deliver_req *r)
{
	size_t i;

	r->d = d;
	for (i = 0; i < r->n; i++)
		r->bytes += r->msgs[i]->src.size + 1;
	if (d->head == NULL)
		event_active(d->ev, EV_TIMEOUT, 0);
	*d->tail = r;
	d->tail = &r->next;
	return r;
}

struct deliver_req *deliver_submit(struct deliver *d, const struct store_new_message *msg,
    deliver_done_cb cb, void *arg)
{
	struct deliver_req *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	r->one = msg;
	r->msgs = &r->one;
	r->n = 1;
	r->res = &r->res_one;
	r->cb = cb;
	r->arg = arg;
	return req_queue(d, r);
}

struct deliver_req *deliver_submit_group(struct deliver *d,
    const struct store_new_message *const *msgs, size_t n, deliver_group_cb cb, void *arg)
{
	struct deliver_req *r = calloc(1, sizeof(*r));

	if (r == NULL || n == 0 || (r->res = calloc(n, sizeof(*r->res))) == NULL) {
		free(r);
		return NULL;
	}
	r->msgs = msgs;
	r->n = n;
	r->group_cb = cb;
	r->arg = arg;
	return req_queue(d, r);
}

static void req_free(struct deliver_req *r)
{
	if (r->res != &r->res_one)
		free(r->res);
	free(r);
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
			req_free(req);
			return;
		}
	}
}

void deliver_flush(struct deliver *d)
{
	while (d->head != NULL)
		deliver_run(d);
}

static int uid_of(const struct store_message_info *m, void *arg)
{
	*(uint32_t *)arg = m->uid;
	return 0;
}

/* Stores the messages of one request; the first failure ends it. A
 * delivery to an INBOX (no mailbox named) prunes it. */
static int req_write(struct deliver *d, struct deliver_req *r)
{
	const struct store_new_message *m;
	int rc = STORE_OK;
	size_t i;

	for (i = 0; i < r->n && rc == STORE_OK; i++) {
		m = r->msgs[i];
		rc = store_message_add(d->st, m, &r->res[i].id);
		/* Only groups report UIDs: SMTP does not pay for the query. */
		if (rc == STORE_OK && r->group_cb != NULL)
			rc = store_message_get_info(d->st, r->res[i].id, uid_of, &r->res[i].uid);
		if (rc == STORE_OK && m->mailbox_id == 0 && d->max_messages > 0)
			prune(d, m->inbox_id);
	}
	return rc;
}

/*
 * Writes the batch; sets each request's rc. A single message whose write
 * fails does not spoil the others (store_message_add uses a savepoint);
 * a group of several is written alone (deliver_take), so that its
 * failure rolls back all of it; a failed COMMIT fails them all.
 */
static void deliver_write(struct deliver *d, struct deliver_req *batch)
{
	struct deliver_req *r;
	int rc = store_begin(d->st);
	bool group = batch->n > 1;

	for (r = batch; r; r = r->next)
		r->rc = rc;
	if (rc != STORE_OK)
		return;
	for (r = batch; r; r = r->next)
		r->rc = req_write(d, r);
	if (group && batch->rc != STORE_OK) {
		store_rollback(d->st);
		return;
	}
	if ((rc = store_commit(d->st)) != STORE_OK) {
		store_rollback(d->st);
		for (r = batch; r; r = r->next)
			r->rc = rc;
	}
}

/* Takes the next batch off the queue: requests up to DELIVER_BATCH_BYTES,
 * at least one; a group of several messages alone. What is left runs in a
 * later pass. */
static struct deliver_req *deliver_take(struct deliver *d)
{
	struct deliver_req *batch = d->head, **pp = &d->head;
	uint64_t bytes = 0;

	if (batch->n > 1) {
		pp = &batch->next;
	} else {
		while (*pp != NULL && (*pp)->n == 1 &&
		    (bytes == 0 || bytes + (*pp)->bytes <= DELIVER_BATCH_BYTES)) {
			bytes += (*pp)->bytes;
			pp = &(*pp)->next;
		}
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
		if (r->group_cb != NULL)
			r->group_cb(r->arg, r->rc, r->res, r->n);
		else
			r->cb(r->arg, r->rc, r->res[0].id);
		req_free(r);
	}
}

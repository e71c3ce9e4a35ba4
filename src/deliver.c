/*
 * Group commit of deliveries. Submissions made while the event loop runs
 * its normal callbacks are collected; an event of the lowest priority runs
 * once they are all done and writes the whole batch in one transaction.
 * Only after COMMIT are the submitters called back (and send their 250).
 * A large body is first staged, a bounded step per pass (store_body_stage):
 * its message joins a batch once the body is in, and smaller messages do
 * not wait for it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailsnare/deliver.h"
#include "mailsnare/log.h"
#include "mailsnare/metrics.h"

/* serve.c initialises the base with this many priorities; the commit runs
 * at the lowest, after every connection callback of the pass. */
#define DELIVER_PRIORITY 2
/* One pass writes messages of at most this many bytes together (at least
 * one message): the rest wait for the next pass, so that many messages
 * finishing at once do not hold every other client up while all their
 * bodies are copied into the store. */
#define DELIVER_BATCH_BYTES (1024u * 1024)
/* A body of this size or more is staged: copied into the store ahead of
 * its message, DELIVER_STAGE_BYTES per pass, each step its own short
 * transaction (store_body_stage); the message is written with the next
 * batch once all its bodies are in. One 28 MB body written in one go was
 * 100-130 ms of one pass; staged, small messages go ahead of it. */
#define DELIVER_STAGE_MIN (256u * 1024)
#define DELIVER_STAGE_BYTES (1024u * 1024)

/* One submission: a single message (cb) or a group (group_cb, all or
 * nothing, with UIDs). */
struct deliver_req {
	struct deliver *d;
	struct store_new_message *msgs;         /* the submitter's, copied */
	size_t n;
	uint64_t bytes;                         /* of the bodies not staged */
	struct store_body_stage *stage;         /* n: bodies written ahead */
	size_t staging;                         /* the next message to stage */
	bool ready;                             /* staging done (or failed: rc) */
	struct store_new_message one;           /* msgs of a single message */
	struct store_body_stage one_stage;
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
	/* Bodies staged by a server that stopped before storing their
	 * messages: nothing was acknowledged for them. */
	if (store_body_gc(st) != STORE_OK)
		log_warn("store: staged bodies not removed: %s", store_errmsg(st));
	/* The server's commits are these: no checkpoint inside them. */
	if (store_checkpoint_thread(st) != STORE_OK)
		log_warn("store: %s", store_errmsg(st));
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

/* Counts what the batch writes itself and marks whether anything is to
 * be staged first. */
static struct deliver_req *req_queue(struct deliver *d, struct deliver_req *r)
{
	size_t i;

	r->d = d;
	r->ready = true;
	for (i = 0; i < r->n; i++) {
		if (r->msgs[i].src.size >= DELIVER_STAGE_MIN)
			r->ready = false;
		else
			r->bytes += r->msgs[i].src.size + 1;
	}
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
	r->one = *msg;
	r->msgs = &r->one;
	r->stage = &r->one_stage;
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
	size_t i;

	if (r == NULL || n == 0 || (r->res = calloc(n, sizeof(*r->res))) == NULL ||
	    (r->msgs = calloc(n, sizeof(*r->msgs))) == NULL ||
	    (r->stage = calloc(n, sizeof(*r->stage))) == NULL) {
		if (r != NULL) {
			free(r->res);
			free(r->msgs);
		}
		free(r);
		return NULL;
	}
	for (i = 0; i < n; i++)
		r->msgs[i] = *msgs[i];
	r->n = n;
	r->group_cb = cb;
	r->arg = arg;
	return req_queue(d, r);
}

/* Removes the bodies staged for r that no stored message took. */
static void req_unstage(struct deliver_req *r)
{
	size_t i;

	for (i = 0; i < r->n; i++)
		if (r->stage[i].body_id != 0 && store_body_discard(r->d->st, &r->stage[i]) != STORE_OK)
			log_warn("store: a staged body stays until the next start: %s",
			    store_errmsg(r->d->st));
}

static void req_free(struct deliver_req *r)
{
	if (r->res != &r->res_one) {
		free(r->res);
		free(r->msgs);
		free(r->stage);
	}
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
			req_unstage(req);
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
		m = &r->msgs[i];
		rc = store_message_add(d->st, m, &r->res[i].id);
		/* Only groups report UIDs: SMTP does not pay for the query. */
		if (rc == STORE_OK && r->group_cb != NULL)
			rc = store_message_get_info(d->st, r->res[i].id, uid_of, &r->res[i].uid);
		if (rc == STORE_OK && m->mailbox_id == 0 && d->max_messages > 0)
			prune(d, m->inbox_id);
	}
	return rc;
}

/* For the commit latency of /metrics. */
static uint64_t deliver_now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + (uint64_t)ts.tv_nsec / 1000;
}

/*
 * Writes the batch; sets each request's rc. A single message whose write
 * fails does not spoil the others (store_message_add uses a savepoint);
 * a group of several is written alone (deliver_take), so that its
 * failure rolls back all of it; a failed COMMIT fails them all.
 */
static void deliver_write(struct deliver *d, struct deliver_req *batch)
{
	uint64_t t0 = deliver_now_us();
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
		return;
	}
	metrics_commit(deliver_now_us() - t0);
}

/*
 * One step of staging for the first request that needs it: at most
 * DELIVER_STAGE_BYTES of one of its large bodies. A request is ready
 * when all are in; a failure makes it ready too, with its rc set, to be
 * answered with the next batch. False if staging waits for a checkpoint.
 */
static bool deliver_stage(struct deliver *d)
{
	struct deliver_req *r;
	struct store_new_message *m;
	int rc;

	for (r = d->head; r != NULL && r->ready; r = r->next)
		;
	if (r == NULL)
		return true;
	if (store_checkpoint_behind(d->st))
		return false;
	while (r->staging < r->n && r->msgs[r->staging].src.size < DELIVER_STAGE_MIN)
		r->staging++;
	if (r->staging < r->n) {
		m = &r->msgs[r->staging];
		rc = store_body_stage(d->st, &r->stage[r->staging], &m->src, DELIVER_STAGE_BYTES);
		if (rc == STORE_MORE)
			return true;
		if (rc != STORE_OK) {
			r->rc = rc;
			r->ready = true;
			return true;
		}
		m->body_id = r->stage[r->staging++].body_id;
	}
	while (r->staging < r->n && r->msgs[r->staging].src.size < DELIVER_STAGE_MIN)
		r->staging++;
	r->ready = r->staging == r->n;
	return true;
}

/*
 * Takes the next batch off the queue: the ready requests, in order, up to
 * DELIVER_BATCH_BYTES of bodies not staged (at least one request); a
 * group of several messages alone. What is left runs in a later pass.
 */
static struct deliver_req *deliver_take(struct deliver *d)
{
	struct deliver_req *batch = NULL, **bt = &batch, **pp = &d->head, *r;
	uint64_t bytes = 0;

	while ((r = *pp) != NULL) {
		if (!r->ready || (batch != NULL && (r->n > 1 || batch->n > 1 ||
		    bytes + r->bytes > DELIVER_BATCH_BYTES))) {
			pp = &r->next;
			continue;
		}
		*pp = r->next;
		if (d->tail == &r->next)
			d->tail = pp;
		r->next = NULL;
		*bt = r;
		bt = &r->next;
		bytes += r->bytes;
	}
	return batch;
}

/* A request that failed while staging is answered without being written. */
static void deliver_answer(struct deliver *d, struct deliver_req *batch)
{
	struct deliver_req *r;

	while ((r = batch) != NULL) {
		batch = r->next;
		if (r->rc != STORE_OK) {
			log_warn("store: delivery failed (%d): %s", r->rc, store_errmsg(d->st));
			req_unstage(r);
		}
		if (r->group_cb != NULL)
			r->group_cb(r->arg, r->rc, r->res, r->n);
		else
			r->cb(r->arg, r->rc, r->res[0].id);
		req_free(r);
	}
}

/* One pass: a step of staging, then a batch of what is ready. */
static void deliver_run(struct deliver *d)
{
	static const struct timeval ckpt_wait = { 0, 2000 }, deliver_now = { 0, 0 };
	struct deliver_req *batch, **pp, *r;
	bool staged;

	if (d->head == NULL)
		return;
	staged = deliver_stage(d);
	batch = deliver_take(d);
	/* The rest in a later pass: a timer, since an event made active
	 * again from its own callback runs again in the same pass, before
	 * any socket (libevent runs a priority's queue until it is empty);
	 * a short one while a checkpoint catches up. */
	if (d->head != NULL)
		event_add(d->ev, !staged && batch == NULL ? &ckpt_wait : &deliver_now);
	if (batch == NULL)
		return;
	/* Those that failed staging go with their error, unwritten. */
	for (pp = &batch; (r = *pp) != NULL;) {
		if (r->rc != STORE_OK) {
			*pp = r->next;
			r->next = NULL;
			deliver_answer(d, r);
		} else {
			pp = &r->next;
		}
	}
	if (batch != NULL)
		deliver_write(d, batch);
	deliver_answer(d, batch);
}

/*
 * Searches parked while the search index has a backlog. A query with
 * terms indexes every message the server has not indexed yet before it
 * runs (store_message_query): right after a burst of thousands that is
 * seconds of the loop, every client stalled. An HTTP request whose
 * handler will search (http.c's route flags) is parked here instead,
 * serve.c's index slices run back to back (a few milliseconds each, other
 * clients served between them), and the request is dispatched to its
 * handler once the backlog is gone (http_server_index_slice).
 *
 * Parking is only an optimisation: beyond HTTP_PARK_MAX requests, or
 * without the slices (no server loop), the handler runs at once and its
 * query indexes synchronously, as every other caller's does. A client
 * that goes away while parked is dropped through the connection's close
 * callback (http_req_defer, r->cleanup). Mail that keeps coming faster
 * than it is indexed never empties the backlog: a request parked for
 * HTTP_PARK_WAIT_MS goes on anyway, and its own query indexes the rest.
 */
#include <stdlib.h>

#include <event2/event.h>

#include "mailsnare/serve.h"
#include "mailsnare/server.h"
#include "mailsnare/store.h"
#include "http_internal.h"

/* Parked at once, at most: each holds a request (and its body). */
#define HTTP_PARK_MAX 1024
/* Resumed per loop pass: each runs its search (the index caught up). */
#define HTTP_PARK_BATCH 8
/* Parked at most this long, caught up or not. */
#define HTTP_PARK_WAIT_MS 5000

struct http_park {
	struct http_server *hs;
	struct event *ev_wake;
	struct http_req *head, *tail;      /* oldest first */
	unsigned n;
	bool caught_up;                    /* every parked one may go on */
};

/* From the next loop pass on, after its I/O (not event_active: that
 * would run again before any other client's callback). */
static void park_schedule(struct http_park *p)
{
	struct timeval now = { 0, 0 };

	(void)event_add(p->ev_wake, &now);
}

/* The oldest parked request, if it may go on now. */
static struct http_req *park_ready(struct http_park *p, uint64_t now)
{
	if (p->head == NULL || (!p->caught_up && p->head->park_until > now))
		return NULL;
	return p->head;
}

static void park_unlink(struct http_park *p, struct http_req *r)
{
	if (r->park_prev)
		r->park_prev->park_next = r->park_next;
	else
		p->head = r->park_next;
	if (r->park_next)
		r->park_next->park_prev = r->park_prev;
	else
		p->tail = r->park_prev;
	r->park_prev = r->park_next = NULL;
	p->n--;
}

/* r is freed while parked (its client went away, or shutdown). */
static void park_cleanup(struct http_req *r)
{
	park_unlink(r->cleanup_arg, r);
	r->cleanup = NULL;
	r->cleanup_arg = NULL;
}

static void park_resume(struct http_park *p, struct http_req *r)
{
	http_handler fn = r->park_fn;
	bool latest = r->park_latest;

	park_unlink(p, r);
	r->cleanup = NULL;
	r->cleanup_arg = NULL;
	r->park_fn = NULL;
	http_req_done(r);
	if (http_route_run(r, fn, latest) == HTTP_DONE)
		http_req_free(r);
}

/* A batch per pass, oldest first: a thousand woken searches do not hold
 * the loop either. */
static void park_wake(evutil_socket_t fd, short what, void *arg)
{
	struct http_park *p = arg;
	uint64_t now = http_now_ms();
	struct http_req *r;
	unsigned i;

	(void)fd;
	(void)what;
	for (i = 0; i < HTTP_PARK_BATCH && (r = park_ready(p, now)) != NULL; i++)
		park_resume(p, r);
	if (park_ready(p, now) != NULL)
		park_schedule(p);
	else if (p->head == NULL)
		p->caught_up = false;
}

struct http_park *http_park_new(struct http_server *hs)
{
	struct http_park *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->hs = hs;
	if ((p->ev_wake = event_new(hs->srv->base, -1, 0, park_wake, p)) == NULL) {
		free(p);
		return NULL;
	}
	return p;
}

/* After http_server_stop: the close callbacks freed every parked one. */
void http_park_free(struct http_park *p)
{
	if (p == NULL)
		return;
	while (p->head != NULL)
		park_cleanup(p->head);
	event_free(p->ev_wake);
	free(p);
}

bool http_park(struct http_req *r, http_handler fn, bool latest)
{
	struct http_park *p = r->hs->park;

	if (p == NULL || p->n >= HTTP_PARK_MAX || !store_index_backlog(r->srv->store))
		return false;
	http_req_defer(r);
	if (r->hc == NULL || !serve_index_hurry(r->srv)) {
		/* Nothing would free it on a close, or nothing would wake it. */
		http_req_done(r);
		r->deferred = false;
		return false;
	}
	r->park_fn = fn;
	r->park_latest = latest;
	r->park_until = http_now_ms() + HTTP_PARK_WAIT_MS;
	p->caught_up = false;
	r->park_prev = p->tail;
	r->park_next = NULL;
	if (p->tail)
		p->tail->park_next = r;
	else
		p->head = r;
	p->tail = r;
	p->n++;
	r->cleanup = park_cleanup;
	r->cleanup_arg = p;
	return true;
}

void http_park_slice(struct http_park *p, bool caught_up)
{
	if (p == NULL)
		return;
	if (caught_up)
		p->caught_up = true;
	if (park_ready(p, http_now_ms()) != NULL)
		park_schedule(p);
}

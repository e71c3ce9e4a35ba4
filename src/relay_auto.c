/*
 * relay-auto (relay.h): each message committed that matches the search is
 * released to its envelope recipients, those the rules allow. The store's
 * notification only queues the id; matching and starting the release run
 * from the loop, a few per pass. Bounded: past ID_QUEUE_MAX waiting
 * messages new ones are not released (and logged), and no more than
 * RELAY_JOBS_MAX releases run at once (the rest wait their turn).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "mailsnare/id_queue.h"
#include "mailsnare/log.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/relay.h"
#include "mailsnare/store.h"

#define RELAY_AUTO_SLICE 16             /* messages looked at per pass */
#define RELAY_AUTO_RETRY_MS 200         /* every release slot taken: again then */

struct relay_auto {
	struct relay *r;
	struct store *st;
	struct msg_search *search;
	struct event *ev;
	struct id_queue queue;
	uint64_t dropped;
	char rcpts[8192];                  /* of the message at hand */
	char list[RELAY_RCPTS_MAX][RELAY_ADDR_MAX];
};

/* The envelope recipients ("a@b, c@d") that the rules allow, into
 * list[0..*n); refused ones are logged. */
static void auto_rcpts(struct relay_auto *a, int64_t id, const char *rcpts,
    char list[][RELAY_ADDR_MAX], size_t *n)
{
	char one[RELAY_ADDR_MAX], err[RELAY_ERR_MAX];
	const char *p = rcpts, *e;

	*n = 0;
	while (*p != '\0' && *n < RELAY_RCPTS_MAX) {
		e = strchrnul(p, ',');
		if ((size_t)(e - p) < sizeof(one)) {
			memcpy(one, p, (size_t)(e - p));
			one[e - p] = '\0';
			if (relay_address(one, list[*n]) == 0) {
				if (relay_check_rcpt(a->r, list[*n], err, sizeof(err)) == RELAY_OK)
					++*n;
				else
					log_info("relay-auto: message %lld: %s", (long long)id, err);
			}
		}
		p = *e ? e + 1 : e;
	}
}

static int rcpts_cb(const struct store_message_info *m, void *arg)
{
	struct relay_auto *a = arg;

	snprintf(a->rcpts, sizeof(a->rcpts), "%s", m->rcpts ? m->rcpts : "");
	return 0;
}

/* false: every release slot is taken, try this one again later. */
static bool auto_one(struct relay_auto *a, int64_t id)
{
	const char *ptrs[RELAY_RCPTS_MAX];
	char err[RELAY_ERR_MAX];
	enum relay_status st;
	size_t n;

	if (store_message_matches(a->st, id, a->search) != 1)
		return true;
	a->rcpts[0] = '\0';
	if (store_message_get_info(a->st, id, rcpts_cb, a) != STORE_OK)
		return true;
	auto_rcpts(a, id, a->rcpts, a->list, &n);
	if (n == 0) {
		log_info("relay-auto: message %lld: no recipient to release to", (long long)id);
		return true;
	}
	for (size_t i = 0; i < n; i++)
		ptrs[i] = a->list[i];
	/* No callback: relay.c logs how each release ended. */
	if (relay_start(a->r, a->st, id, ptrs, n, NULL, NULL, &st, err, sizeof(err)) != NULL)
		return true;
	if (st == RELAY_BUSY)
		return false;
	if (st != RELAY_NOTFOUND)
		log_warn("relay-auto: message %lld: %s", (long long)id, err);
	return true;
}

static void auto_work(evutil_socket_t fd, short what, void *arg)
{
	struct relay_auto *a = arg;
	struct timeval retry = { 0, RELAY_AUTO_RETRY_MS * 1000 };
	size_t done = 0;
	int64_t id;

	(void)fd;
	(void)what;
	while (done++ < RELAY_AUTO_SLICE && id_queue_peek(&a->queue, &id)) {
		if (!auto_one(a, id)) {
			event_add(a->ev, &retry);
			return;
		}
		id_queue_pop(&a->queue);
	}
	/* The next slice on the next loop pass, after the sockets: an
	 * event_active from its own callback would run it again at once. */
	if (a->queue.n > 0)
		event_add(a->ev, &(struct timeval){ 0, 0 });
}

static void auto_store_cb(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct relay_auto *a = arg;

	(void)inbox_id;
	(void)mailbox_id;
	if (what != STORE_CHANGE_NEW || !id_queue_first_sight(&a->queue, message_id))
		return;
	if (!id_queue_push(&a->queue, message_id)) {
		if (a->dropped++ % 1000 == 0)
			log_warn("relay-auto: %d messages waiting: message %lld (and later ones) "
			    "not released", ID_QUEUE_MAX, (long long)message_id);
		return;
	}
	if (!event_pending(a->ev, EV_TIMEOUT, NULL))
		event_active(a->ev, EV_TIMEOUT, 0);
}

struct relay_auto *relay_auto_new(struct event_base *base, struct relay *r, struct store *st,
    const char *query, char *err, size_t errlen)
{
	struct relay_auto *a = calloc(1, sizeof(*a));
	char why[256];

	if (a == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	a->r = r;
	a->st = st;
	if (msg_search_parse(query, "", &a->search, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "relay-auto: %s", why);
		free(a);
		return NULL;
	}
	if ((a->ev = event_new(base, -1, 0, auto_work, a)) == NULL ||
	    store_subscribe(st, auto_store_cb, a) < 0) {
		snprintf(err, errlen, "out of memory");
		relay_auto_free(a);
		return NULL;
	}
	return a;
}

void relay_auto_free(struct relay_auto *a)
{
	if (a == NULL)
		return;
	store_unsubscribe(a->st, auto_store_cb, a);
	if (a->ev)
		event_free(a->ev);
	msg_search_free(a->search);
	free(a);
}

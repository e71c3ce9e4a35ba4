/*
 * Deleted large bodies removed a step per loop pass. See body_purge.h.
 */
#include <stdlib.h>

#include "mailsnare/body_purge.h"
#include "mailsnare/log.h"

struct body_purge {
	struct event *ev;
	struct store *st;
};

static const struct timeval purge_now = { 0, 0 };
static const struct timeval purge_idle = { 0, BODY_PURGE_IDLE_MS * 1000 };

/* One step; the next at once while bodies wait (a timer, so that the
 * sockets get their turn in between), else after the idle time. */
static void purge_evcb(evutil_socket_t fd, short what, void *arg)
{
	struct body_purge *p = arg;
	int rc = store_body_purge(p->st, BODY_PURGE_STEP);

	(void)fd;
	(void)what;
	if (rc != STORE_OK && rc != STORE_MORE)
		log_warn("purging deleted bodies: %s", store_errmsg(p->st));
	evtimer_add(p->ev, rc == STORE_MORE ? &purge_now : &purge_idle);
}

struct body_purge *body_purge_new(struct event_base *base, struct store *st)
{
	struct body_purge *p = calloc(1, sizeof(*p));

	if (p == NULL)
		return NULL;
	p->st = st;
	if ((p->ev = evtimer_new(base, purge_evcb, p)) == NULL) {
		free(p);
		return NULL;
	}
	evtimer_add(p->ev, &purge_now);
	return p;
}

void body_purge_free(struct body_purge *p)
{
	if (p == NULL)
		return;
	event_free(p->ev);
	free(p);
}

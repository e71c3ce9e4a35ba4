/*
 * Large spool files closed a slice at a time. See spool_reap.h.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mailsnare/spool.h"
#include "mailsnare/spool_reap.h"

/* Files waiting; beyond this many spool_free closes a file itself. */
#define SPOOL_REAP_MAX 256

struct spool_file {
	int fd;
	uint64_t len;
};

struct spool_reap {
	struct event *ev;
	struct spool_file q[SPOOL_REAP_MAX];
	size_t n;
};

static const struct timeval reap_now = { 0, 0 };

/* One step: the first file shrinks by a step, or is closed. */
static void reap_evcb(evutil_socket_t fd, short what, void *arg)
{
	struct spool_reap *r = arg;
	struct spool_file *f = &r->q[0];

	if (r->n == 0)
		return;
	if (f->len > SPOOL_REAP_STEP) {
		f->len -= SPOOL_REAP_STEP;
		/* If it fails, close() frees the rest. */
		if (ftruncate(f->fd, (off_t)f->len) == 0) {
			evtimer_add(r->ev, &reap_now);
			return;
		}
	}
	close(f->fd);
	memmove(r->q, r->q + 1, --r->n * sizeof(r->q[0]));
	if (r->n > 0)
		evtimer_add(r->ev, &reap_now);
}

static bool reap_take(void *arg, int fd, uint64_t len)
{
	struct spool_reap *r = arg;

	if (len <= SPOOL_REAP_STEP || r->n == SPOOL_REAP_MAX)
		return false;
	r->q[r->n].fd = fd;
	r->q[r->n].len = len;
	r->n++;
	/* A timer, not event_active: the sockets get their turn first. */
	evtimer_add(r->ev, &reap_now);
	return true;
}

struct spool_reap *spool_reap_new(struct event_base *base)
{
	struct spool_reap *r = calloc(1, sizeof(*r));

	if (r == NULL)
		return NULL;
	if ((r->ev = evtimer_new(base, reap_evcb, r)) == NULL) {
		free(r);
		return NULL;
	}
	spool_set_closer(reap_take, r);
	return r;
}

void spool_reap_free(struct spool_reap *r)
{
	size_t i;

	if (r == NULL)
		return;
	spool_set_closer(NULL, NULL);
	for (i = 0; i < r->n; i++)
		close(r->q[i].fd);
	event_free(r->ev);
	free(r);
}

/*
 * The max-age timer (retention.h). A run is a chain of slices, one per
 * loop pass at the lowest priority so that every connection's callbacks
 * come first: prune steps until no INBOX starts with an old message, then
 * vacuum steps until no free page is left, then the timer again.
 */
#include "mailsnare/retention.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#include <event2/event.h>

#include "mailsnare/log.h"
#include "mailsnare/metrics.h"
#include "mailsnare/store.h"

struct retention {
	struct store *st;
	uint64_t max_age;
	struct event *ev;
	struct timeval period;
	bool vacuuming;
	uint64_t pruned;          /* in this run */
	bool incremental;
};

static void retention_next(struct retention *r, bool now)
{
	static const struct timeval zero = { 0, 0 };

	evtimer_add(r->ev, now ? &zero : &r->period);
}

/* One vacuum step; false when nothing is left to give back. */
static bool retention_vacuum(struct retention *r)
{
	struct store_space sp;

	if (!r->incremental || store_space(r->st, &sp) != STORE_OK || sp.free_pages == 0)
		return false;
	if (store_vacuum_step(r->st, RETENTION_VACUUM_STEP) != STORE_OK) {
		log_warn("retention: incremental vacuum: %s", store_errmsg(r->st));
		return false;
	}
	return sp.free_pages > RETENTION_VACUUM_STEP;
}

static void retention_slice(evutil_socket_t fd, short what, void *arg)
{
	struct retention *r = arg;
	int64_t before = (int64_t)time(NULL) - (int64_t)r->max_age;
	uint64_t n = 0;
	int rc;

	(void)fd;
	(void)what;
	if (!r->vacuuming) {
		rc = store_prune_older(r->st, before, &n);
		r->pruned += n;
		metrics.pruned_age += n;
		if (rc == STORE_MORE) {
			retention_next(r, true);
			return;
		}
		if (rc != STORE_OK)
			log_warn("retention: %s", store_errmsg(r->st));
		if (r->pruned > 0)
			log_info("retention: pruned %" PRIu64 " message(s) older than %" PRIu64 " s",
			    r->pruned, r->max_age);
		r->pruned = 0;
		r->vacuuming = true;
	}
	if (retention_vacuum(r)) {
		retention_next(r, true);
		return;
	}
	r->vacuuming = false;
	retention_next(r, false);
}

/* A file made before auto_vacuum was set cannot give pages back; a small
 * one is rewritten now, before any client is served. */
static void retention_check_file(struct retention *r)
{
	struct store_space sp;

	if (store_space(r->st, &sp) != STORE_OK)
		return;
	r->incremental = sp.incremental;
	if (sp.incremental)
		return;
	if ((uint64_t)(sp.pages * sp.page_size) > RETENTION_CONVERT_MAX) {
		log_warn("retention: this database does not give freed space back (it predates "
		    "auto_vacuum); with mailsnare stopped, run: sqlite3 DB "
		    "'PRAGMA auto_vacuum = INCREMENTAL; VACUUM'");
		return;
	}
	log_info("retention: converting the database to incremental vacuum");
	if (store_make_incremental(r->st) == STORE_OK)
		r->incremental = true;
	else
		log_warn("retention: VACUUM: %s", store_errmsg(r->st));
}

struct retention *retention_new(struct event_base *base, struct store *st, uint64_t max_age,
    int priority, int *err)
{
	struct retention *r;
	uint64_t p = max_age / 10;

	*err = 0;
	if (max_age == 0)
		return NULL;
	if ((r = calloc(1, sizeof(*r))) == NULL || (r->ev = evtimer_new(base, retention_slice, r))
	    == NULL) {
		free(r);
		*err = 1;
		return NULL;
	}
	r->st = st;
	r->max_age = max_age;
	if (p < RETENTION_PERIOD_MIN_S)
		p = RETENTION_PERIOD_MIN_S;
	if (p > RETENTION_PERIOD_MAX_S)
		p = RETENTION_PERIOD_MAX_S;
	r->period.tv_sec = (time_t)p;
	(void)event_priority_set(r->ev, priority);
	retention_check_file(r);
	retention_next(r, true);
	return r;
}

void retention_free(struct retention *r)
{
	if (r == NULL)
		return;
	event_free(r->ev);
	free(r);
}

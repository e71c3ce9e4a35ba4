/*
 * HTTP requests that wait for the search pool (search_pool.h): the
 * request is deferred while its search runs on the pool's threads, and
 * answered on the loop when the counts and ids come back. Two kinds use
 * it: a listing's search (GET /api/v1/search, /messages?before=) and
 * latest?query=, which every per-message route takes for its ID: a
 * search that over a large store held the loop as long as a listing's
 * (~70 ms for a phrase over 100,000 messages). Its id is found on the
 * pool first, and the route's handler runs once it is known
 * (http_resolve_id answers "latest" with it).
 *
 * The ids come from the threads' snapshot and the rows are read later on
 * the loop: the callers check each row's state again
 * (msg_search_state_holds).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/msg_search.h"
#include "mailsnare/search_pool.h"
#include "mailsnare/server.h"
#include "mailsnare/store.h"
#include "http_internal.h"

/* Newest matches latest?query= asks for: the first whose state (read,
 * tags) still matches on the loop is the one; if none does, the loop
 * searches again itself. */
#define LATEST_CANDIDATES 8

struct pool_wait {
	struct http_req *r;
	struct search_job *job;
	const struct msg_search *search;   /* the job's, until its callback returns */
	http_pool_cb cb;
	union http_pool_then then;
};

static void pool_wait_cleanup(struct http_req *r)
{
	struct pool_wait *w = r->cleanup_arg;

	if (w != NULL) {
		search_job_cancel(w->job);  /* its client went away: dropped */
		free(w);
	}
	r->cleanup = NULL;
	r->cleanup_arg = NULL;
}

static void pool_wait_done(void *arg, int rc, const struct store_search_part *res)
{
	struct pool_wait *w = arg;
	struct http_req *r = w->r;
	http_pool_cb cb = w->cb;
	union http_pool_then then = w->then;
	const struct msg_search *search = w->search;

	free(w);
	r->cleanup = NULL;
	r->cleanup_arg = NULL;
	http_req_done(r);
	cb(r, rc, res, search, then);
}

bool http_pool_search(struct http_req *r, const struct store_query *q,
    struct msg_search **search, http_pool_cb cb, union http_pool_then then)
{
	struct search_pool *pool = r->srv->search;
	struct pool_wait *w;
	int64_t body_max = 0;

	if (pool == NULL || store_index_backlog(r->srv->store) ||
	    store_body_id_max(r->srv->store, &body_max) != STORE_OK ||
	    (w = calloc(1, sizeof(*w))) == NULL)
		return false;
	w->r = r;
	w->search = *search;
	w->cb = cb;
	w->then = then;
	if ((w->job = search_pool_submit(pool, q, *search, body_max, pool_wait_done,
	    w)) == NULL) {
		free(w);
		return false;
	}
	*search = NULL;
	r->cleanup = pool_wait_cleanup;
	r->cleanup_arg = w;
	http_req_defer(r);
	return true;
}

/* --- latest?query= ------------------------------------------------------------- */

/* The first of the ids whose read state and tags still match now. */
static int64_t latest_pick(struct http_req *r, const struct msg_search *s,
    const struct store_search_part *res)
{
	struct http_msg m;
	size_t i;
	bool holds;

	for (i = 0; i < res->nids; i++) {
		if (http_msg_load(r->srv->store, res->ids[i], r->inbox_id, &m) != STORE_OK)
			continue;               /* deleted meanwhile */
		holds = msg_search_state_holds(s, (m.flags & STORE_FLAG_SEEN) != 0,
		    m.keywords);
		http_msg_free(&m);
		if (holds)
			return res->ids[i];
	}
	return 0;
}

static void latest_done(struct http_req *r, int rc, const struct store_search_part *res,
    const struct msg_search *search, union http_pool_then then)
{
	int64_t id = rc == STORE_OK ? latest_pick(r, search, res) : 0;

	/* Matches that all changed meanwhile (or an error): the loop's own
	 * search decides, as without a pool. */
	if (id > 0 || (rc == STORE_OK && res->nids == 0)) {
		r->latest_known = true;
		r->latest_id = id;
	}
	if (then.fn(r) == HTTP_DONE)
		http_req_free(r);
}

/* latest?query= on the pool: false if there is none to make (no
 * "latest", no query, the query does not parse: the handler answers
 * that) or it cannot be handed over. */
static bool latest_defer(struct http_req *r, http_handler fn)
{
	const char *text = http_query(r, "query");
	struct store_query q = { .inbox_id = r->inbox_id, .limit = LATEST_CANDIDATES };
	struct msg_search *s = NULL;
	char err[256];

	if (r->srv->search == NULL || (r->nargs > 0 && strcmp(r->args[0], "latest") != 0) ||
	    text == NULL || text[strspn(text, " \t")] == '\0' ||
	    msg_search_parse(text, http_query(r, "tz"), &s, err, sizeof(err)) < 0)
		return false;
	q.search = s;
	if (http_pool_search(r, &q, &s, latest_done, (union http_pool_then){ .fn = fn }))
		return true;
	msg_search_free(s);
	return false;
}

enum http_rc http_route_run(struct http_req *r, http_handler fn, bool latest)
{
	if (latest && !r->latest_known && latest_defer(r, fn))
		return HTTP_DEFERRED;
	return fn(r);
}

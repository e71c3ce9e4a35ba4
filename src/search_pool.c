/*
 * The search pool (search_pool.h). Each thread keeps one reader
 * connection for the server's life. A job is split into parts (body id
 * ranges); the threads take parts from one queue, and the thread that
 * finishes a job's last part writes the job's address down the done
 * pipe; the loop reads it, merges the parts and calls the owner back.
 * The threads touch nothing of the loop's: only their part and the
 * queue, under the pool's mutex.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "mailsnare/config.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/search_pool.h"

#define SEARCH_THREADS_MAX 64

struct search_part_task {
	struct search_job *job;
	int64_t lo, hi;                  /* hi 0: every body */
	int rc;
	struct store_search_part res;
	struct search_part_task *next;   /* in the pool's queue */
};

struct search_job {
	struct search_pool *pool;
	struct store_query q;
	struct msg_search *search;
	search_done_cb cb;               /* NULL: cancelled */
	void *arg;
	size_t nparts, pending;          /* pending: under the pool's mutex */
	uint64_t ids_max;                /* the ids its parts may keep */
	struct search_part_task *parts;
	struct search_job *prev, *next;  /* the pool's jobs (the loop's list) */
};

struct search_worker {
	struct search_pool *pool;
	struct store *st;
	pthread_t thread;
	bool started;
};

struct search_pool {
	struct event *ev_done;
	int done_pipe[2];
	pthread_mutex_t mu;
	pthread_cond_t cv;
	bool stopping;                           /* under mu */
	struct search_part_task *head, **tail;   /* under mu */
	struct search_worker *w;
	unsigned nthreads;
	int64_t split_min;
	struct search_job *jobs;                 /* the loop's */
	unsigned njobs;
	uint64_t nids;                           /* the jobs' ids_max, summed */
};

static int cmp_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

int search_parts_merge(const struct store_search_part *parts, size_t n, size_t k,
    bool oldest, struct store_search_part *out)
{
	size_t i, all = 0;

	memset(out, 0, sizeof(*out));
	for (i = 0; i < n; i++)
		all += parts[i].nids;
	if (all > 0 && (out->ids = malloc(all * sizeof(*out->ids))) == NULL)
		return STORE_FULL;
	for (i = 0; i < n; i++) {
		out->n += parts[i].n;
		out->seen += parts[i].seen;
		if (parts[i].nids > 0)
			memcpy(out->ids + out->nids, parts[i].ids, parts[i].nids * sizeof(*out->ids));
		out->nids += parts[i].nids;
	}
	/* At most threads * k ids: a sort costs what a heap merge would. */
	if (out->nids > 1)
		qsort(out->ids, out->nids, sizeof(*out->ids), cmp_desc);
	if (out->nids > k) {
		if (oldest)
			memmove(out->ids, out->ids + (out->nids - k), k * sizeof(*out->ids));
		out->nids = k;
	}
	return STORE_OK;
}

static void job_free(struct search_job *j)
{
	size_t i;

	for (i = 0; i < j->nparts; i++)
		store_search_part_free(&j->parts[i].res);
	free(j->parts);
	msg_search_free(j->search);
	free(j);
}

static void *worker_main(void *arg)
{
	struct search_worker *w = arg;
	struct search_pool *p = w->pool;
	struct search_part_task *t;
	struct search_job *j;
	bool last;
	ssize_t n;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		while (!p->stopping && p->head == NULL)
			pthread_cond_wait(&p->cv, &p->mu);
		if (p->stopping) {
			pthread_mutex_unlock(&p->mu);
			return NULL;
		}
		t = p->head;
		if ((p->head = t->next) == NULL)
			p->tail = &p->head;
		pthread_mutex_unlock(&p->mu);
		j = t->job;
		t->rc = store_message_search_part(w->st, &j->q, t->lo, t->hi, &t->res);
		pthread_mutex_lock(&p->mu);
		last = --j->pending == 0;
		pthread_mutex_unlock(&p->mu);
		if (!last)
			continue;
		do
			n = write(p->done_pipe[1], &j, sizeof(j));
		while (n < 0 && errno == EINTR);
	}
}

static void job_unlink(struct search_job *j)
{
	struct search_pool *p = j->pool;

	if (j->prev)
		j->prev->next = j->next;
	else
		p->jobs = j->next;
	if (j->next)
		j->next->prev = j->prev;
	p->njobs--;
	p->nids -= j->ids_max;
}

/* On the loop: the jobs whose parts are all done. */
static void pool_done(evutil_socket_t fd, short what, void *arg)
{
	struct store_search_part res;
	struct search_job *j;
	size_t i;
	int rc;

	(void)what;
	(void)arg;
	while (read(fd, &j, sizeof(j)) == (ssize_t)sizeof(j)) {
		job_unlink(j);
		rc = STORE_OK;
		for (i = 0; i < j->nparts && rc == STORE_OK; i++)
			rc = j->parts[i].rc;
		memset(&res, 0, sizeof(res));
		if (j->cb != NULL && rc == STORE_OK) {
			struct store_search_part parts[SEARCH_THREADS_MAX];

			for (i = 0; i < j->nparts; i++)
				parts[i] = j->parts[i].res;
			rc = search_parts_merge(parts, j->nparts,
			    (size_t)j->q.offset + j->q.limit, j->q.after_id != 0, &res);
		}
		if (j->cb != NULL)
			j->cb(j->arg, rc, &res);
		store_search_part_free(&res);
		job_free(j);
	}
}

static int pool_threads(struct search_pool *p, const struct config *cfg, char *err,
    size_t errlen)
{
	unsigned i;

	for (i = 0; i < p->nthreads; i++) {
		struct search_worker *w = &p->w[i];

		w->pool = p;
		w->st = store_open(&(struct store_options){ .path = cfg->db,
		    .durability = cfg->durability, .reader = true, .err = err,
		    .errlen = errlen, .limits = { cfg->max_mailboxes,
		    cfg->max_subscriptions, cfg->max_keywords } });
		if (w->st == NULL)
			return -1;
		if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
			snprintf(err, errlen, "cannot start a search thread");
			return -1;
		}
		w->started = true;
	}
	return 0;
}

int search_pool_new(struct event_base *base, const struct config *cfg, unsigned threads,
    struct search_pool **out, char *err, size_t errlen)
{
	struct search_pool *p;

	*out = NULL;
	if (threads == 0)
		return 0;
	if (threads > SEARCH_THREADS_MAX)
		threads = SEARCH_THREADS_MAX;
	if ((p = calloc(1, sizeof(*p))) == NULL ||
	    (p->w = calloc(threads, sizeof(*p->w))) == NULL) {
		free(p);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	p->nthreads = threads;
	p->tail = &p->head;
	p->split_min = cfg->search_split_min;
	pthread_mutex_init(&p->mu, NULL);
	pthread_cond_init(&p->cv, NULL);
	if (pipe2(p->done_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
		p->done_pipe[0] = p->done_pipe[1] = -1;
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		search_pool_free(p);
		return -1;
	}
	/* The threads' end blocks: a job's address is never half written. */
	(void)fcntl(p->done_pipe[1], F_SETFL, 0);
	p->ev_done = event_new(base, p->done_pipe[0], EV_READ | EV_PERSIST, pool_done, p);
	if (p->ev_done == NULL || event_add(p->ev_done, NULL) < 0) {
		snprintf(err, errlen, "cannot watch the search pool");
		search_pool_free(p);
		return -1;
	}
	if (pool_threads(p, cfg, err, errlen) < 0) {
		search_pool_free(p);
		return -1;
	}
	*out = p;
	return 0;
}

void search_pool_free(struct search_pool *p)
{
	struct search_job *j;
	unsigned i;

	if (p == NULL)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	for (i = 0; i < p->nthreads; i++) {
		if (p->w[i].started)
			pthread_join(p->w[i].thread, NULL);
		if (p->w[i].st != NULL)
			store_close(p->w[i].st);
	}
	/* Every thread is gone: what is still out (queued, or done and not
	 * read yet) is freed here. */
	while ((j = p->jobs) != NULL) {
		job_unlink(j);
		job_free(j);
	}
	if (p->ev_done)
		event_free(p->ev_done);
	if (p->done_pipe[0] >= 0) {
		close(p->done_pipe[0]);
		close(p->done_pipe[1]);
	}
	pthread_cond_destroy(&p->cv);
	pthread_mutex_destroy(&p->mu);
	free(p->w);
	free(p);
}

/* Equal ranges of body ids, the last one open. */
static void job_split(struct search_job *j, int64_t body_max)
{
	int64_t span = body_max / (int64_t)j->nparts + 1;
	size_t i;

	for (i = 0; i < j->nparts; i++) {
		j->parts[i].job = j;
		j->parts[i].lo = (int64_t)i * span;
		j->parts[i].hi = i + 1 == j->nparts ? INT64_MAX : (int64_t)(i + 1) * span;
	}
	if (j->nparts == 1)
		j->parts[0].hi = 0;
}

struct search_job *search_pool_submit(struct search_pool *p, const struct store_query *q,
    struct msg_search *search, int64_t body_max, search_done_cb cb, void *arg)
{
	size_t i, nparts = body_max >= p->split_min ? p->nthreads : 1;
	uint64_t ids = (uint64_t)nparts * ((uint64_t)q->offset + q->limit);
	struct search_job *j;

	if (p->njobs >= SEARCH_POOL_JOBS_MAX || p->nids + ids > SEARCH_POOL_IDS_MAX ||
	    (j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->pool = p;
	j->q = *q;
	j->q.search = j->search = search;
	j->cb = cb;
	j->arg = arg;
	j->nparts = nparts;
	j->ids_max = ids;
	if ((j->parts = calloc(j->nparts, sizeof(*j->parts))) == NULL) {
		j->search = NULL;           /* still the caller's */
		job_free(j);
		return NULL;
	}
	job_split(j, body_max);
	j->pending = j->nparts;
	j->next = p->jobs;
	if (p->jobs)
		p->jobs->prev = j;
	p->jobs = j;
	p->njobs++;
	p->nids += ids;
	pthread_mutex_lock(&p->mu);
	for (i = 0; i < j->nparts; i++) {
		*p->tail = &j->parts[i];
		p->tail = &j->parts[i].next;
	}
	pthread_cond_broadcast(&p->cv);
	pthread_mutex_unlock(&p->mu);
	return j;
}

void search_job_cancel(struct search_job *j)
{
	j->cb = NULL;
}

/*
 * The search pool: searches of the HTTP API run off the loop, on reader
 * threads with their own store connections (store_options.reader), a
 * large store's search split into parts by body id, one per thread, and
 * merged on the loop (issue 12: a phrase search held every client ~80 ms).
 */
#ifndef MAILSNARE_SEARCH_POOL_H
#define MAILSNARE_SEARCH_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mailsnare/store.h"

struct event_base;
struct config;
struct msg_search;
struct search_pool;
struct search_job;

/* Searches waiting or running at most, and the ids their parts may keep
 * (offset + limit each: 64 MB; a deep page of a large store keeps many);
 * beyond, the caller runs its search on the loop as without a pool. The
 * searches in flight are bounded by the HTTP connections (one request at
 * a time each), so the jobs' bound is max-clients' default. */
#define SEARCH_POOL_JOBS_MAX 1024
#define SEARCH_POOL_IDS_MAX (8u << 20)
/* threads reader connections to cfg->db, opened now; a search of
 * cfg->search_split_min bodies or more is split into one part a thread. 0, or -1 with a
 * message in err. */
int search_pool_new(struct event_base *base, const struct config *cfg, unsigned threads,
    struct search_pool **out, char *err, size_t errlen);
/* Joins the threads; the jobs still out are dropped (cancel them first:
 * their callbacks are not called). */
void search_pool_free(struct search_pool *p);

/* rc: STORE_OK or a STORE_* error; res: the merged counts and the newest
 * offset + limit ids (with q->after_id the limit oldest above it), newest
 * first (the caller skips the offset). The
 * callback owns nothing of res past its return. */
typedef void (*search_done_cb)(void *arg, int rc, const struct store_search_part *res);
/* Runs q (copied; the job owns and frees `search`, q->search's parse)
 * over the bodies up to body_max, split when they are many. NULL if the
 * pool is full or out of memory (search then still the caller's). */
struct search_job *search_pool_submit(struct search_pool *p, const struct store_query *q,
    struct msg_search *search, int64_t body_max, search_done_cb cb, void *arg);
/* The callback will not be called (its client went away); the job is
 * freed when its threads are done with it. */
void search_job_cancel(struct search_job *j);

/* The parts' results as one (sums; the k newest ids of all, or with
 * oldest the k oldest, newest first): every part's ids newest first and
 * at most k. */
int search_parts_merge(const struct store_search_part *parts, size_t n, size_t k,
    bool oldest, struct store_search_part *out);

#endif

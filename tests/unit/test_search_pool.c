/* The merge of a split search's parts (search_parts_merge): sums, the k
 * newest ids of all parts newest first, nothing lost or doubled. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <event2/event.h>

#include "mailsnare/config.h"
#include "mailsnare/search_pool.h"

static struct store_search_part part(uint64_t n, uint64_t seen, int64_t *ids, size_t nids)
{
	return (struct store_search_part){ .n = n, .seen = seen, .ids = ids, .nids = nids };
}

Test(search_pool, merge_interleaved)
{
	int64_t a[] = { 90, 70, 12, 5 }, b[] = { 95, 71, 69, 3 };
	struct store_search_part parts[2] = { part(10, 4, a, 4), part(7, 1, b, 4) }, out;
	int64_t want[] = { 95, 90, 71, 70, 69 };
	size_t i;

	cr_assert_eq(search_parts_merge(parts, 2, 5, false, &out), STORE_OK);
	cr_assert_eq(out.n, 17);
	cr_assert_eq(out.seen, 5);
	cr_assert_eq(out.nids, 5);
	for (i = 0; i < 5; i++)
		cr_assert_eq(out.ids[i], want[i], "at %zu", i);
	store_search_part_free(&out);
}

Test(search_pool, merge_fewer_than_k_and_empty_parts)
{
	int64_t a[] = { 4, 2 };
	struct store_search_part parts[3] = { part(0, 0, NULL, 0), part(2, 2, a, 2),
	    part(0, 0, NULL, 0) }, out;

	cr_assert_eq(search_parts_merge(parts, 3, 50, false, &out), STORE_OK);
	cr_assert_eq(out.n, 2);
	cr_assert_eq(out.nids, 2);
	cr_assert_eq(out.ids[0], 4);
	cr_assert_eq(out.ids[1], 2);
	store_search_part_free(&out);
	cr_assert_eq(search_parts_merge(parts, 1, 50, false, &out), STORE_OK);
	cr_assert_eq(out.nids, 0);
	cr_assert_null(out.ids);
}

/* The offset is the caller's: k = offset + limit keeps what it skips. */
Test(search_pool, merge_keeps_the_offset)
{
	int64_t a[] = { 9, 7, 5, 3, 1 }, b[] = { 8, 6, 4, 2 };
	struct store_search_part parts[2] = { part(5, 0, a, 5), part(4, 0, b, 4) }, out;

	cr_assert_eq(search_parts_merge(parts, 2, 6, false, &out), STORE_OK);
	cr_assert_eq(out.nids, 6);
	cr_assert_eq(out.ids[4], 5);
	cr_assert_eq(out.ids[5], 4);
	store_search_part_free(&out);
}

/* With after_id each part gives its oldest ids above it (still newest
 * first): the merge keeps the k oldest of all. */
Test(search_pool, merge_oldest)
{
	int64_t a[] = { 40, 21, 12 }, b[] = { 30, 22, 11 };
	struct store_search_part parts[2] = { part(9, 0, a, 3), part(9, 0, b, 3) }, out;
	int64_t want[] = { 22, 21, 12, 11 };
	size_t i;

	cr_assert_eq(search_parts_merge(parts, 2, 4, true, &out), STORE_OK);
	cr_assert_eq(out.n, 18);
	cr_assert_eq(out.nids, 4);
	for (i = 0; i < 4; i++)
		cr_assert_eq(out.ids[i], want[i], "at %zu", i);
	store_search_part_free(&out);
}

static void count_done(void *arg, int rc, const struct store_search_part *res)
{
	(void)res;
	cr_assert_eq(rc, STORE_OK);
	++*(int *)arg;
}

/* Deep pages keep offset + limit ids a part: the pool takes jobs up to
 * its budget of ids and refuses the next (its caller then searches on
 * the loop), whatever their number. Nothing is read from the done pipe
 * until the loop runs, so the jobs stay counted until then. */
Test(search_pool, ids_budget)
{
	char dir[] = "/tmp/mailsnare-pool-XXXXXX", err[256];
	struct config cfg = { .search_split_min = 10000 };
	struct store_query deep = { .offset = 1000000, .limit = 5000 }, shallow = { .limit = 50 };
	struct event_base *base = event_base_new();
	struct search_pool *p = NULL;
	struct store *st;
	int done = 0, i;

	cr_assert_not_null(mkdtemp(dir));
	snprintf(cfg.db, sizeof(cfg.db), "%s/m.db", dir);
	st = store_open(&(struct store_options){ .path = cfg.db, .err = err, .errlen = sizeof(err) });
	cr_assert_not_null(st, "%s", err);
	cr_assert_eq(search_pool_new(base, &cfg, 2, &p, err, sizeof(err)), 0, "%s", err);
	/* 1,005,000 ids each on an unsplit store: eight fit in 8 Mi. */
	for (i = 0; i < 8; i++)
		cr_assert_not_null(search_pool_submit(p, &deep, NULL, 0, count_done, &done), "%d", i);
	cr_assert_null(search_pool_submit(p, &deep, NULL, 0, count_done, &done));
	cr_assert_not_null(search_pool_submit(p, &shallow, NULL, 0, count_done, &done));
	while (done < 9)
		cr_assert_geq(event_base_loop(base, EVLOOP_ONCE), 0);
	/* Answered and forgotten: the budget is free again. */
	cr_assert_not_null(search_pool_submit(p, &deep, NULL, 0, count_done, &done));
	while (done < 10)
		cr_assert_geq(event_base_loop(base, EVLOOP_ONCE), 0);
	search_pool_free(p);
	store_close(st);
	event_base_free(base);
	(void)unlink(cfg.db);
	snprintf(err, sizeof(err), "rm -rf %s", dir);
	cr_assert_eq(system(err), 0);
}

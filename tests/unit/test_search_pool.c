/* The merge of a split search's parts (search_parts_merge): sums, the k
 * newest ids of all parts newest first, nothing lost or doubled. */
#include <criterion/criterion.h>
#include <stdlib.h>

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

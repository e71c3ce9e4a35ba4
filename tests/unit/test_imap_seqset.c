/* IMAP sequence sets: parsing, evaluation, normalisation, iteration. */
#include <criterion/criterion.h>
#include <string.h>

#include "mailsnare/imap_seqset.h"

static enum imap_seq_rc eval_str(const char *s, enum imap_seq_mode mode, uint32_t max,
    const struct imap_seqset *saved, char *buf, size_t size)
{
	struct imap_seqset in, out;
	enum imap_seq_rc rc;

	imap_seqset_init(&in);
	imap_seqset_init(&out);
	cr_assert_eq(imap_seqset_parse(s, strlen(s), 100, &in), IMAP_SEQ_OK, "%s", s);
	rc = imap_seqset_eval(&in, mode, max, saved, &out);
	imap_seqset_format(&out, buf, size);
	imap_seqset_free(&in);
	imap_seqset_free(&out);
	return rc;
}

static void expect(const char *s, enum imap_seq_mode mode, uint32_t max, enum imap_seq_rc rc,
    const char *want)
{
	char buf[256];

	cr_assert_eq(eval_str(s, mode, max, NULL, buf, sizeof(buf)), rc, "%s max %u", s, max);
	cr_assert_str_eq(buf, want, "%s max %u", s, max);
}

Test(imap_seqset, parse_forms)
{
	struct imap_seqset set;

	imap_seqset_init(&set);
	cr_assert_eq(imap_seqset_parse("2,4:7,9", 7, 100, &set), IMAP_SEQ_OK);
	cr_assert_eq(set.count, 3);
	cr_assert_eq(set.ranges[1].lo, 4);
	cr_assert_eq(set.ranges[1].hi, 7);
	cr_assert_eq(imap_seqset_parse("*:4", 3, 100, &set), IMAP_SEQ_OK);
	cr_assert_eq(set.ranges[0].lo, IMAP_SEQ_STAR);
	cr_assert_eq(set.ranges[0].hi, 4);
	cr_assert_eq(imap_seqset_parse("4294967295", 10, 100, &set), IMAP_SEQ_OK);
	cr_assert_eq(set.ranges[0].lo, 4294967295u);
	cr_assert_neq(set.ranges[0].lo, IMAP_SEQ_STAR);
	cr_assert_eq(imap_seqset_parse("$", 1, 100, &set), IMAP_SEQ_OK);
	cr_assert(set.saved);
	cr_assert_eq(imap_seqset_parse("1", 1, 100, &set), IMAP_SEQ_OK);
	cr_assert_not(set.saved);
	imap_seqset_free(&set);
}

Test(imap_seqset, parse_rejects)
{
	static const char *const bad[] = {
		"", "0", "0:5", "5:0", "1,", ",1", "1,,2", "1:", ":1", "1::2", "01", "a", "1a",
		"**", "*:*:*", "4294967296", "$,1", "1,$", "$$", "1 2", "-1", "1.2", "%",
	};
	struct imap_seqset set;

	imap_seqset_init(&set);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(imap_seqset_parse(bad[i], strlen(bad[i]), 100, &set),
		    IMAP_SEQ_ERR_SYNTAX, "%s", bad[i]);
	cr_assert_eq(imap_seqset_parse("1,2,3,4", 7, 3, &set), IMAP_SEQ_ERR_TOO_MANY);
	imap_seqset_free(&set);
}

Test(imap_seqset, eval_msn)
{
	expect("1", IMAP_SEQ_MSN, 5, IMAP_SEQ_OK, "1");
	expect("1:*", IMAP_SEQ_MSN, 5, IMAP_SEQ_OK, "1:5");
	expect("*:4", IMAP_SEQ_MSN, 10, IMAP_SEQ_OK, "4:10");
	expect("*", IMAP_SEQ_MSN, 7, IMAP_SEQ_OK, "7");
	expect("2,4:7,9", IMAP_SEQ_MSN, 10, IMAP_SEQ_OK, "2,4:7,9");
	expect("9,7:4,2,3,8", IMAP_SEQ_MSN, 10, IMAP_SEQ_OK, "2:9");
	expect("5:3,4:6,1", IMAP_SEQ_MSN, 10, IMAP_SEQ_OK, "1,3:6");
	/* beyond the mailbox: an error, with the clamped set for leniency */
	expect("3:9", IMAP_SEQ_MSN, 5, IMAP_SEQ_ERR_RANGE, "3:5");
	expect("8", IMAP_SEQ_MSN, 5, IMAP_SEQ_ERR_RANGE, "");
	/* empty mailbox: '*' and numbers have nothing to name */
	expect("*", IMAP_SEQ_MSN, 0, IMAP_SEQ_ERR_EMPTY, "");
	expect("1:*", IMAP_SEQ_MSN, 0, IMAP_SEQ_ERR_EMPTY, "");
	expect("1", IMAP_SEQ_MSN, 0, IMAP_SEQ_ERR_EMPTY, "");
}

Test(imap_seqset, eval_uid)
{
	expect("1:*", IMAP_SEQ_UID, 300, IMAP_SEQ_OK, "1:300");
	expect("559:*", IMAP_SEQ_UID, 300, IMAP_SEQ_OK, "300");
	expect("*:559", IMAP_SEQ_UID, 300, IMAP_SEQ_OK, "300");
	expect("100:200,400:500", IMAP_SEQ_UID, 300, IMAP_SEQ_OK, "100:200");
	expect("400:500", IMAP_SEQ_UID, 300, IMAP_SEQ_OK, "");
	expect("*", IMAP_SEQ_UID, 0, IMAP_SEQ_OK, "");
	expect("1:*", IMAP_SEQ_UID, 0, IMAP_SEQ_OK, "");
	expect("4294967295", IMAP_SEQ_UID, 4294967295u, IMAP_SEQ_OK, "4294967295");
	expect("1:*", IMAP_SEQ_UID, 4294967295u, IMAP_SEQ_OK, "1:4294967295");
}

Test(imap_seqset, saved_result)
{
	struct imap_seqset saved;
	char buf[64];

	imap_seqset_init(&saved);
	imap_seqset_add(&saved, 3, 5);
	imap_seqset_add(&saved, 9, 9);
	imap_seqset_normalize(&saved);
	cr_assert_eq(eval_str("$", IMAP_SEQ_UID, 100, &saved, buf, sizeof(buf)), IMAP_SEQ_OK);
	cr_assert_str_eq(buf, "3:5,9");
	cr_assert_eq(eval_str("$", IMAP_SEQ_MSN, 4, &saved, buf, sizeof(buf)), IMAP_SEQ_OK);
	cr_assert_str_eq(buf, "3:4", "saved numbers past the end are dropped");
	cr_assert_eq(eval_str("$", IMAP_SEQ_MSN, 4, NULL, buf, sizeof(buf)), IMAP_SEQ_OK);
	cr_assert_str_eq(buf, "", "nothing saved is the empty set");
	imap_seqset_free(&saved);
}

Test(imap_seqset, normalize_contains_count_iterate)
{
	struct imap_seqset set;
	struct imap_seq_iter it;
	uint32_t n, got[16];
	size_t k = 0;
	char buf[8];

	imap_seqset_init(&set);
	imap_seqset_add(&set, 10, 12);
	imap_seqset_add(&set, 1, 1);
	imap_seqset_add(&set, 3, 2);
	imap_seqset_add(&set, 11, 13);
	imap_seqset_add(&set, 14, 14);
	imap_seqset_normalize(&set);
	cr_assert_eq(set.count, 2);
	cr_assert_eq(imap_seqset_count(&set), 8);
	cr_assert(imap_seqset_contains(&set, 1));
	cr_assert(imap_seqset_contains(&set, 14));
	cr_assert_not(imap_seqset_contains(&set, 4));
	cr_assert_not(imap_seqset_contains(&set, 15));
	imap_seq_iter_init(&it, &set);
	while (imap_seq_iter_next(&it, &n))
		got[k++] = n;
	cr_assert_eq(k, 8);
	cr_assert_eq(got[0], 1);
	cr_assert_eq(got[3], 10);
	cr_assert_eq(got[7], 14);
	cr_assert_eq(imap_seqset_format(&set, buf, sizeof(buf)), 9, "needs \"1:3,10:14\"");
	cr_assert_str_eq(buf, "1:3", "only whole ranges are written");
	imap_seqset_clear(&set);
	imap_seq_iter_init(&it, &set);
	cr_assert_not(imap_seq_iter_next(&it, &n));
	imap_seqset_free(&set);
}

Test(imap_seqset, iterate_to_uint32_max)
{
	struct imap_seqset set;
	struct imap_seq_iter it;
	uint32_t n, last = 0;
	unsigned k = 0;

	imap_seqset_init(&set);
	imap_seqset_add(&set, 4294967293u, 4294967295u);
	imap_seq_iter_init(&it, &set);
	while (imap_seq_iter_next(&it, &n) && k < 10) {
		last = n;
		k++;
	}
	cr_assert_eq(k, 3);
	cr_assert_eq(last, 4294967295u);
	imap_seqset_free(&set);
}

/*
 * Sequence sets: parse, evaluate as MSN and UID against a maximum taken
 * from the input, and check the result against the ranges as sent:
 * normalised (sorted, disjoint, not adjacent, within 1..max), membership
 * as a naive check says, count, iteration, and format -> parse -> eval
 * giving the same set. Input: 4 bytes max, then the set.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/imap_seqset.h"
#include "fuzz.h"

static uint64_t resolve(uint64_t v, uint32_t max)
{
	return v == IMAP_SEQ_STAR ? max : v;
}

/* Naive membership of n in the set as sent (UID: only up to max). */
static bool naive_has(const struct imap_seqset *in, uint32_t max, uint32_t n)
{
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < in->count; i++) {
		uint64_t a = resolve(in->ranges[i].lo, max), b = resolve(in->ranges[i].hi, max);
		if (a > b) {
			uint64_t t = a;
			a = b;
			b = t;
		}
		if (n >= a && n <= b)
			return true;
	}
	return false;
}

static void check_normal(const struct imap_seqset *s, uint32_t max)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->count; i++) {
		FUZZ_CHECK(s->ranges[i].lo >= 1 && s->ranges[i].lo <= s->ranges[i].hi);
		FUZZ_CHECK(s->ranges[i].hi <= max);
		if (i > 0)
			FUZZ_CHECK(s->ranges[i].lo > s->ranges[i - 1].hi + 1);
		total += s->ranges[i].hi - s->ranges[i].lo + 1;
	}
	FUZZ_CHECK(imap_seqset_count(s) == total);
}

static void probe(const struct imap_seqset *in, const struct imap_seqset *out, uint32_t max,
    uint64_t v)
{
	for (int d = -1; d <= 1; d++) {
		uint64_t n = resolve(v, max) + (uint64_t)(int64_t)d;
		if (n == 0 || n > UINT32_MAX)
			continue;
		FUZZ_CHECK(imap_seqset_contains(out, (uint32_t)n) == naive_has(in, max, (uint32_t)n));
	}
}

static void check_eval(const struct imap_seqset *in, enum imap_seq_mode mode, uint32_t max)
{
	struct imap_seqset out, again, back;
	enum imap_seq_rc rc;
	char buf[256];
	size_t need;

	imap_seqset_init(&out);
	rc = imap_seqset_eval(in, mode, max, NULL, &out);
	if (rc != IMAP_SEQ_OK && rc != IMAP_SEQ_ERR_RANGE) {
		imap_seqset_free(&out);
		return;
	}
	check_normal(&out, max);
	if (rc == IMAP_SEQ_OK && !in->saved) {
		probe(in, &out, max, 1);
		probe(in, &out, max, max);
		for (size_t i = 0; i < in->count && i < 64; i++) {
			probe(in, &out, max, in->ranges[i].lo);
			probe(in, &out, max, in->ranges[i].hi);
		}
	}
	/* Iteration yields the members in order (bounded). */
	if (imap_seqset_count(&out) <= 20000) {
		struct imap_seq_iter it;
		uint32_t n, prev = 0;
		uint64_t k = 0;
		imap_seq_iter_init(&it, &out);
		while (imap_seq_iter_next(&it, &n)) {
			FUZZ_CHECK(n > prev && imap_seqset_contains(&out, n));
			prev = n;
			k++;
		}
		FUZZ_CHECK(k == imap_seqset_count(&out));
	}
	/* Format and back. */
	need = imap_seqset_format(&out, buf, sizeof(buf));
	if (need < sizeof(buf) && out.count > 0) {
		FUZZ_CHECK(strlen(buf) == need);
		imap_seqset_init(&again);
		imap_seqset_init(&back);
		FUZZ_CHECK(imap_seqset_parse(buf, need, 100000, &again) == IMAP_SEQ_OK);
		FUZZ_CHECK(imap_seqset_eval(&again, mode, max, NULL, &back) == IMAP_SEQ_OK);
		FUZZ_CHECK(back.count == out.count);
		FUZZ_CHECK(memcmp(back.ranges, out.ranges, out.count * sizeof(*out.ranges)) == 0);
		imap_seqset_free(&again);
		imap_seqset_free(&back);
	}
	imap_seqset_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_seqset in;
	uint32_t max;

	if (size < 4)
		return 0;
	max = (uint32_t)data[0] | (uint32_t)data[1] << 8 | (uint32_t)data[2] << 16 |
	    (uint32_t)data[3] << 24;
	/* Mostly small mailboxes, sometimes anything. */
	if (!(max & 0x80000000u))
		max &= 0xffff;
	data += 4;
	size -= 4;
	imap_seqset_init(&in);
	if (imap_seqset_parse((const char *)data, size, 1000, &in) == IMAP_SEQ_OK) {
		FUZZ_CHECK(in.count <= 1000);
		check_eval(&in, IMAP_SEQ_MSN, max);
		check_eval(&in, IMAP_SEQ_UID, max);
	}
	imap_seqset_free(&in);
	return 0;
}

/* IMAP sequence sets: see imap_seqset.h. */
#include "mailsnare/imap_seqset.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void imap_seqset_init(struct imap_seqset *set)
{
	memset(set, 0, sizeof(*set));
}

void imap_seqset_free(struct imap_seqset *set)
{
	free(set->ranges);
	imap_seqset_init(set);
}

void imap_seqset_clear(struct imap_seqset *set)
{
	set->count = 0;
	set->saved = false;
}

enum imap_seq_rc imap_seqset_add(struct imap_seqset *set, uint64_t lo, uint64_t hi)
{
	if (set->count == set->cap) {
		size_t ncap = set->cap ? set->cap * 2 : 8;
		struct imap_seq_range *n = realloc(set->ranges, ncap * sizeof(*n));

		if (n == NULL)
			return IMAP_SEQ_ERR_NOMEM;
		set->ranges = n;
		set->cap = ncap;
	}
	set->ranges[set->count].lo = lo < hi ? lo : hi;
	set->ranges[set->count].hi = lo < hi ? hi : lo;
	set->count++;
	return IMAP_SEQ_OK;
}

/* seq-number = nz-number / "*" */
static bool parse_number(const char **p, const char *end, uint64_t *out)
{
	uint64_t v = 0;
	const char *s = *p;

	if (s < end && *s == '*') {
		*out = IMAP_SEQ_STAR;
		*p = s + 1;
		return true;
	}
	if (s >= end || *s < '1' || *s > '9')
		return false;
	for (; s < end && *s >= '0' && *s <= '9'; s++) {
		v = v * 10 + (uint64_t)(*s - '0');
		if (v > UINT32_MAX)
			return false;
	}
	*out = v;
	*p = s;
	return true;
}

enum imap_seq_rc imap_seqset_parse(const char *s, size_t len, size_t max_ranges,
    struct imap_seqset *out)
{
	const char *p = s, *end = s + len;

	imap_seqset_clear(out);
	if (len == 1 && *s == '$') {
		out->saved = true;
		return IMAP_SEQ_OK;
	}
	for (;;) {
		uint64_t lo, hi;
		enum imap_seq_rc rc;

		if (!parse_number(&p, end, &lo))
			return IMAP_SEQ_ERR_SYNTAX;
		hi = lo;
		if (p < end && *p == ':') {
			p++;
			if (!parse_number(&p, end, &hi))
				return IMAP_SEQ_ERR_SYNTAX;
		}
		if (out->count >= max_ranges)
			return IMAP_SEQ_ERR_TOO_MANY;
		/* keep the order as sent; evaluation orders it */
		if ((rc = imap_seqset_add(out, lo, hi)) != IMAP_SEQ_OK)
			return rc;
		out->ranges[out->count - 1].lo = lo;
		out->ranges[out->count - 1].hi = hi;
		if (p == end)
			return IMAP_SEQ_OK;
		if (*p++ != ',')
			return IMAP_SEQ_ERR_SYNTAX;
	}
}

static int cmp_range(const void *a, const void *b)
{
	const struct imap_seq_range *x = a, *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

void imap_seqset_normalize(struct imap_seqset *set)
{
	size_t o = 0;

	if (set->count == 0)
		return;
	qsort(set->ranges, set->count, sizeof(*set->ranges), cmp_range);
	for (size_t i = 1; i < set->count; i++) {
		struct imap_seq_range *cur = &set->ranges[o];

		if (set->ranges[i].lo <= cur->hi + 1) {
			if (set->ranges[i].hi > cur->hi)
				cur->hi = set->ranges[i].hi;
		} else {
			set->ranges[++o] = set->ranges[i];
		}
	}
	set->count = o + 1;
}

/* One range with '*' resolved; false when it selects nothing. */
static bool resolve(const struct imap_seq_range *in, enum imap_seq_mode mode, uint32_t max,
    uint64_t *lo, uint64_t *hi, bool *beyond)
{
	uint64_t a = in->lo == IMAP_SEQ_STAR ? max : in->lo;
	uint64_t b = in->hi == IMAP_SEQ_STAR ? max : in->hi;
	bool star = in->lo == IMAP_SEQ_STAR || in->hi == IMAP_SEQ_STAR;

	*lo = a < b ? a : b;
	*hi = a < b ? b : a;
	if (*hi > max) {
		*beyond = true;
		*hi = max;
	}
	if (*lo == 0)
		*lo = 1;
	if (mode == IMAP_SEQ_UID && star && max > 0 && *lo > max)
		*lo = max;   /* "559:*" holds the last UID even past it */
	return max > 0 && *lo <= *hi;
}

enum imap_seq_rc imap_seqset_eval(const struct imap_seqset *in, enum imap_seq_mode mode,
    uint32_t max, const struct imap_seqset *saved, struct imap_seqset *out)
{
	const struct imap_seqset *src = in->saved ? saved : in;
	bool beyond = false;

	imap_seqset_clear(out);
	if (src == NULL)
		return IMAP_SEQ_OK;
	for (size_t i = 0; i < src->count; i++) {
		uint64_t lo, hi;

		if (resolve(&src->ranges[i], mode, max, &lo, &hi, &beyond) &&
		    imap_seqset_add(out, lo, hi) != IMAP_SEQ_OK)
			return IMAP_SEQ_ERR_NOMEM;
	}
	imap_seqset_normalize(out);
	if (mode == IMAP_SEQ_UID || in->saved)
		return IMAP_SEQ_OK;
	if (max == 0 && src->count > 0)
		return IMAP_SEQ_ERR_EMPTY;
	return beyond ? IMAP_SEQ_ERR_RANGE : IMAP_SEQ_OK;
}

bool imap_seqset_contains(const struct imap_seqset *set, uint32_t n)
{
	size_t lo = 0, hi = set->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;

		if (n < set->ranges[mid].lo)
			hi = mid;
		else if (n > set->ranges[mid].hi)
			lo = mid + 1;
		else
			return true;
	}
	return false;
}

uint64_t imap_seqset_count(const struct imap_seqset *set)
{
	uint64_t n = 0;

	for (size_t i = 0; i < set->count; i++)
		n += set->ranges[i].hi - set->ranges[i].lo + 1;
	return n;
}

size_t imap_seqset_format(const struct imap_seqset *set, char *buf, size_t size)
{
	size_t len = 0;

	if (size > 0)
		buf[0] = '\0';
	for (size_t i = 0; i < set->count; i++) {
		const struct imap_seq_range *r = &set->ranges[i];
		char one[32];
		int n;

		if (r->lo == r->hi)
			n = snprintf(one, sizeof(one), "%s%llu", i ? "," : "",
			    (unsigned long long)r->lo);
		else
			n = snprintf(one, sizeof(one), "%s%llu:%llu", i ? "," : "",
			    (unsigned long long)r->lo, (unsigned long long)r->hi);
		if (len + (size_t)n < size)
			memcpy(buf + len, one, (size_t)n + 1);
		len += (size_t)n;
	}
	return len;
}

void imap_seq_iter_init(struct imap_seq_iter *it, const struct imap_seqset *set)
{
	it->set = set;
	it->i = 0;
	it->next = set->count > 0 ? set->ranges[0].lo : 0;
}

bool imap_seq_iter_next(struct imap_seq_iter *it, uint32_t *n)
{
	while (it->i < it->set->count) {
		const struct imap_seq_range *r = &it->set->ranges[it->i];

		if (it->next <= r->hi) {
			*n = (uint32_t)it->next++;
			return true;
		}
		if (++it->i < it->set->count)
			it->next = it->set->ranges[it->i].lo;
	}
	return false;
}

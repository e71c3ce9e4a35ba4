/*
 * bench/sort_steps: what one slice of SORT's ordering and THREAD's
 * threading costs (issue 11), in memory, without a server: the keys made
 * as imap_cmd_sort.c makes them, then the ordering (or threading and its
 * text) stepped with IMAP_SLICE_STEPS units a call as the loop does, each
 * call timed (thread CPU time), against the same work in one go.
 *
 *   bench/sort_steps [N ...]      (default: 20000 100000)
 *
 * Workloads: "sort": SORT (SUBJECT) over the subjects of bench/hostile.py
 * ("s%06d" of i * 7919 mod n); "thread": THREAD REFERENCES over the same
 * (every message its own thread, as in bench/hostile.py); "thread-refs":
 * threads of 20 replies each, References naming up to 10 ancestors;
 * "thread-chain": each message In-Reply-To the one before (the deepest
 * tree). Prints the number of slices, the median and the worst slice, and
 * the one-go time.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailsnare/imap_sort.h"
#include "../src/imap_session.h"

static double cpu_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int dbl_cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

struct slices {
	double *ms;
	size_t n;
};

static void slice_add(struct slices *s, double ms)
{
	if ((s->n & (s->n - 1)) == 0) {
		s->ms = realloc(s->ms, (s->n ? s->n * 2 : 1) * sizeof(*s->ms));
		if (s->ms == NULL)
			abort();
	}
	s->ms[s->n++] = ms;
}

static void report(const char *what, size_t n, struct slices *s, double one_go)
{
	qsort(s->ms, s->n, sizeof(*s->ms), dbl_cmp);
	printf("%-13s %7zu %7zu %9.3f %9.3f %9.1f\n", what, n, s->n, s->ms[s->n / 2],
	    s->ms[s->n - 1], one_go);
	free(s->ms);
	s->ms = NULL;
	s->n = 0;
}

/* "<m%zu@example.test>", or "%s%06zu" with the prefix p (subjects). */
static char *fmt_id(size_t i)
{
	char *s;

	if (asprintf(&s, "<m%zu@example.test>", i) < 0)
		abort();
	return s;
}

static char *fmt_subject(const char *p, size_t v)
{
	char *s;

	if (asprintf(&s, "%s%06zu", p, v) < 0)
		abort();
	return s;
}

static void bench_sort(size_t n)
{
	struct imap_sort_msg *m = calloc(n, sizeof(*m)), *copy = calloc(n, sizeof(*m));
	struct imap_sort_crit crit = { IMAP_SORT_SUBJECT, false };
	struct slices s = { 0 };
	struct imap_sort_order *o;
	double t0, one;
	bool done = false;

	for (size_t i = 0; i < n; i++) {
		char *subj = fmt_subject("s", i * 7919 % n);
		m[i].seq = m[i].id = (uint32_t)(i + 1);
		m[i].keys[IMAP_SORT_SUBJECT] = imap_sort_base_subject(subj, NULL);
		free(subj);
	}
	memcpy(copy, m, n * sizeof(*m));
	t0 = cpu_ms();
	imap_sort_msgs(copy, n, &crit, 1);
	one = cpu_ms() - t0;
	o = imap_sort_order_begin(m, n, &crit, 1);
	while (!done) {
		uint64_t budget = IMAP_SLICE_STEPS;
		t0 = cpu_ms();
		done = imap_sort_order_step(o, &budget) != NULL;
		slice_add(&s, cpu_ms() - t0);
	}
	report("sort", n, &s, one);
	imap_sort_order_end(o);
	for (size_t i = 0; i < n; i++)
		free((char *)m[i].keys[IMAP_SORT_SUBJECT]);
	free(m);
	free(copy);
}

enum shape { FLAT, REFS, CHAIN };

static void bench_thread(const char *what, size_t n, enum shape shape)
{
	struct imap_thread_msg *m = calloc(n, sizeof(*m));
	struct slices s = { 0 };
	struct imap_thread t;
	struct imap_thread_job *j;
	double t0, one;
	size_t len;
	int r = 0;

	for (size_t i = 0; i < n; i++) {
		char *subj = shape == FLAT ? fmt_subject("s", i * 7919 % n)
		    : fmt_subject("Re: t", i / 20);
		m[i].id = (uint32_t)(i + 1);
		m[i].date = (int64_t)i;
		m[i].subject = imap_sort_base_subject(subj, &m[i].reply);
		m[i].message_id = fmt_id(i);
		free(subj);
		if (shape == CHAIN && i > 0) {
			m[i].in_reply_to = fmt_id(i - 1);
		} else if (shape == REFS && i % 20 > 0) {
			char *refs = strdup("");
			for (size_t k = i - i % 20 + (i % 20 > 10 ? i % 20 - 10 : 0); k < i; k++) {
				char *more;
				if (asprintf(&more, "%s <m%zu@example.test>", refs, k) < 0)
					abort();
				free(refs);
				refs = more;
			}
			m[i].references = refs;
		}
	}
	t0 = cpu_ms();
	if (!imap_thread_build(m, n, IMAP_THREAD_REFERENCES, &t))
		abort();
	free(imap_thread_format(&t, m));
	imap_thread_free(&t);
	one = cpu_ms() - t0;
	j = imap_thread_begin(m, n, IMAP_THREAD_REFERENCES);
	while (r == 0) {
		uint64_t budget = IMAP_SLICE_STEPS;
		t0 = cpu_ms();
		r = imap_thread_step(j, &budget);
		slice_add(&s, cpu_ms() - t0);
	}
	if (r != 1)
		abort();
	free(imap_thread_take_text(j, &len));
	imap_thread_end(j);
	report(what, n, &s, one);
	for (size_t i = 0; i < n; i++) {
		free((char *)m[i].subject);
		free((char *)m[i].message_id);
		free((char *)m[i].references);
		free((char *)m[i].in_reply_to);
	}
	free(m);
}

int main(int argc, char **argv)
{
	size_t sizes[16] = { 20000, 100000 }, nsizes = 2;

	if (argc > 1) {
		nsizes = 0;
		for (int i = 1; i < argc && nsizes < 16; i++)
			sizes[nsizes++] = strtoul(argv[i], NULL, 10);
	}
	printf("%-13s %7s %7s %9s %9s %9s   (CPU ms, %u units a slice)\n", "workload", "msgs",
	    "slices", "p50", "worst", "one go", IMAP_SLICE_STEPS);
	for (size_t i = 0; i < nsizes; i++) {
		bench_sort(sizes[i]);
		bench_thread("thread", sizes[i], FLAT);
		bench_thread("thread-refs", sizes[i], REFS);
		bench_thread("thread-chain", sizes[i], CHAIN);
	}
	return 0;
}

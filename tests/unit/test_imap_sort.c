/* SORT keys and THREAD algorithms (RFC 5256, RFC 5957), with the RFC's
 * examples. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap_sort.h"

static void base(const char *subject, const char *want, bool want_reply)
{
	bool reply = !want_reply;
	char *got = imap_sort_base_subject(subject, &reply);

	cr_assert_not_null(got);
	cr_assert_str_eq(got, want, "%s", subject ? subject : "(null)");
	cr_assert_eq(reply, want_reply, "%s: reply", subject ? subject : "(null)");
	free(got);
}

Test(imap_sort, base_subject_leaders)
{
	base("Re: hello", "HELLO", true);
	base("RE: Re: re: hello", "HELLO", true);
	base("Fwd: hello", "HELLO", true);
	base("Fw: hello", "HELLO", true);
	base("FWD : hello", "HELLO", true);
	base("Re[2]: hello", "HELLO", true);
	base("Re [2]: hello", "HELLO", true);
	base("[list] Re: hello", "HELLO", true);
	base("[a][b] Re: [c] Fwd: x", "X", true);
	base("Reply to you", "REPLY TO YOU", false);
	base("Re: ", "", true);
	base("Re:", "", true);
	base(NULL, "", false);
	base("", "", false);
}

Test(imap_sort, base_subject_blobs_trailers_fwd)
{
	base("[blob] hello", "HELLO", false);
	base("[blob]", "[BLOB]", false);
	base("[blob] [blob2]", "[BLOB2]", false);
	base("hello (fwd)", "HELLO", true);
	base("hello (fwd) (FWD)  ", "HELLO", true);
	base("[fwd: hello]", "HELLO", true);
	base("Re: [Fwd: Re: hello] (fwd)", "HELLO", true);
	base("[fwd: [fwd: x]]", "X", true);
	base("  hello   world\t x  ", "HELLO WORLD X", false);
	base("a (fwd) b", "A (FWD) B", false);
}

Test(imap_sort, base_subject_encoded_and_folded)
{
	char *a = imap_sort_base_subject("=?UTF-8?Q?Re:_=C3=84pfel?=", NULL);
	char *b = imap_sort_base_subject("\xc3\xa4PFEL", NULL);
	char *c = imap_sort_base_subject("=?ISO-8859-1?Q?=C4pfel?= und =?UTF-8?B?QmlybmVu?=", NULL);

	cr_assert_str_eq(a, b);
	cr_assert_str_eq(c, "\xc3\xa4PFEL UND BIRNEN");
	free(a);
	free(b);
	free(c);
}

static void date(const char *value, bool ok, int64_t want)
{
	int64_t t = -1;

	cr_assert_eq(imap_sort_parse_date(value, &t), ok, "%s", value ? value : "(null)");
	if (ok)
		cr_assert_eq(t, want, "%s: %lld", value, (long long)t);
}

Test(imap_sort, sent_dates)
{
	date("Tue, 1 Jul 2003 10:52:37 +0200", true, 1057049557);
	date("1 Jul 2003 10:52:37 +0200", true, 1057049557);
	date("Tue, 01 Jul 2003 08:52:37 GMT", true, 1057049557);
	date("(day) Tue, 1 (month) Jul 2003 10:52 UT", true, 1057056720);
	date("Tue, 1 Jul 03 10:52:37 EDT", true, 1057071157);
	date("1-Jul-2003 08:52:37 +0000", true, 1057049557);
	date("Sat, 1 Jan 2000 00:00:00 +0100", true, 946681200);
	date("Fri, 31 Dec 99 23:00:00 Z", true, 946681200);
	date("garbage", false, 0);
	date("", false, 0);
	date(NULL, false, 0);
	date("Mon, 32 Jan 2003 10:00:00 +0000", false, 0);
	date("Mon, 3 Foo 2003 10:00:00 +0000", false, 0);
	date("Mon, 3 Jan 2003", false, 0);
	date("Mon, 3 Jan 2003 25:00:00 +0000", false, 0);
}

static void addr(const char *value, bool display, const char *want)
{
	char *got = imap_sort_address_key(value, display);

	cr_assert_not_null(got);
	cr_assert_str_eq(got, want, "%s", value ? value : "(null)");
	free(got);
}

Test(imap_sort, address_keys)
{
	addr("Zed <zed@example.test>", false, "ZED");
	addr("Zed <zed@example.test>", true, "ZED");
	addr("\"Bob Smith\" <bob@x.test>, c@d.test", false, "BOB");
	addr("\"Bob Smith\" <bob@x.test>, c@d.test", true, "BOB SMITH");
	addr("amy@example.test", true, "AMY@EXAMPLE.TEST");
	addr("=?UTF-8?Q?J=C3=BCrgen?= <j@x.test>", true, "J\xc3\xbcRGEN");
	addr("undisclosed-recipients:;", false, "UNDISCLOSED-RECIPIENTS");
	addr(NULL, false, "");
	addr("", true, "");
}

Test(imap_sort, compare_and_sort)
{
	struct imap_sort_msg m[4] = {
		{ .seq = 1, .id = 11, .arrival = 30, .date = 5, .size = 10,
		  .keys = { [IMAP_SORT_SUBJECT] = "B", [IMAP_SORT_FROM] = "X" } },
		{ .seq = 2, .id = 12, .arrival = 10, .date = 5, .size = 30,
		  .keys = { [IMAP_SORT_SUBJECT] = "A" } },
		{ .seq = 3, .id = 13, .arrival = 20, .date = 1, .size = 10,
		  .keys = { [IMAP_SORT_SUBJECT] = "B", [IMAP_SORT_FROM] = "A" } },
		{ .seq = 4, .id = 14, .arrival = 20, .date = 9, .size = 20,
		  .keys = { [IMAP_SORT_SUBJECT] = "A", [IMAP_SORT_FROM] = "" } },
	};
	struct imap_sort_crit subj_rdate[] = { { IMAP_SORT_SUBJECT, false }, { IMAP_SORT_DATE, true } };
	struct imap_sort_crit rarrival[] = { { IMAP_SORT_ARRIVAL, true } };
	struct imap_sort_crit from[] = { { IMAP_SORT_FROM, false } };
	struct imap_sort_crit size[] = { { IMAP_SORT_SIZE, false } };

	imap_sort_msgs(m, 4, subj_rdate, 2);
	cr_assert_eq(m[0].id, 14);
	cr_assert_eq(m[1].id, 12);
	cr_assert_eq(m[2].id, 11);
	cr_assert_eq(m[3].id, 13);
	/* ties: sequence numbers ascending, also under REVERSE */
	imap_sort_msgs(m, 4, rarrival, 1);
	cr_assert_eq(m[0].id, 11);
	cr_assert_eq(m[1].id, 13);
	cr_assert_eq(m[2].id, 14);
	cr_assert_eq(m[3].id, 12);
	/* a missing key is the empty string */
	imap_sort_msgs(m, 4, from, 1);
	cr_assert_eq(m[0].id, 12);
	cr_assert_eq(m[1].id, 14);
	cr_assert_eq(m[2].id, 13);
	cr_assert_eq(m[3].id, 11);
	imap_sort_msgs(m, 4, size, 1);
	cr_assert_eq(m[0].id, 11);
	cr_assert_eq(m[1].id, 13);
	cr_assert_lt(imap_sort_compare(&m[0], &m[1], size, 1), 0);
	cr_assert_eq(imap_sort_compare(&m[0], &m[0], size, 1), 0);
}

Test(imap_sort, message_ids)
{
	const char *v = "junk <a b> <x@y> (comment) <> <p@q>", *id;
	size_t pos = 0, len;

	cr_assert(imap_sort_next_msgid(v, &pos, &id, &len));
	cr_assert_eq(len, 5);
	cr_assert_eq(strncmp(id, "<x@y>", len), 0);
	cr_assert(imap_sort_next_msgid(v, &pos, &id, &len));
	cr_assert_eq(strncmp(id, "<p@q>", len), 0);
	cr_assert_not(imap_sort_next_msgid(v, &pos, &id, &len));
	pos = 0;
	cr_assert_not(imap_sort_next_msgid(NULL, &pos, &id, &len));
}

/* A message for threading: id, date, subject (raw), Message-ID, References. */
struct tm_spec {
	uint32_t id;
	int64_t date;
	const char *subject, *msgid, *refs, *irt;
};

static void thread(const struct tm_spec *spec, size_t n, enum imap_thread_alg alg,
    const char *want)
{
	struct imap_thread_msg *m = calloc(n ? n : 1, sizeof(*m));
	struct imap_thread t;
	char *got;

	for (size_t i = 0; i < n; i++) {
		m[i].id = spec[i].id;
		m[i].date = spec[i].date;
		m[i].subject = imap_sort_base_subject(spec[i].subject, &m[i].reply);
		m[i].message_id = spec[i].msgid;
		m[i].references = spec[i].refs;
		m[i].in_reply_to = spec[i].irt;
	}
	cr_assert(imap_thread_build(m, n, alg, &t));
	got = imap_thread_format(&t, m);
	cr_assert_not_null(got);
	cr_assert_str_eq(got, want);
	free(got);
	imap_thread_free(&t);
	for (size_t i = 0; i < n; i++)
		free((char *)m[i].subject);
	free(m);
}

Test(imap_sort, references_rfc_example)
{
	/* RFC 5256 §4: (2)(3 6 (4 23)(44 7 96)) */
	static const struct tm_spec s[] = {
		{ 2, 1, "two", "<m2@x>", NULL, NULL },
		{ 3, 2, "three", "<m3@x>", NULL, NULL },
		{ 4, 4, "Re: three", "<m4@x>", "<m3@x> <m6@x>", NULL },
		{ 6, 3, "Re: three", "<m6@x>", NULL, "<m3@x>" },
		{ 7, 7, "Re: three", "<m7@x>", "<m3@x> <m6@x> <m44@x>", NULL },
		{ 23, 5, "Re: three", "<m23@x>", "<m3@x> <m6@x> <m4@x>", NULL },
		{ 44, 6, "Re: three", "<m44@x>", "<m3@x> <m6@x>", NULL },
		{ 96, 8, "Re: three", "<m96@x>", "<m3@x> <m6@x> <m44@x> <m7@x>", NULL },
	};

	thread(s, 8, IMAP_THREAD_REFERENCES, "(2)(3 6 (4 23)(44 7 96))");
}

Test(imap_sort, references_dummies)
{
	/* RFC 5256 §4: a parent that is not there: ((3)(5)) */
	static const struct tm_spec two[] = {
		{ 3, 1, "a", "<m3@x>", "<gone@x>", NULL },
		{ 5, 2, "b", "<m5@x>", "<gone@x>", NULL },
	};
	/* one child of a missing parent takes its place; a dummy in the
	 * middle of a chain goes */
	static const struct tm_spec chain[] = {
		{ 1, 1, "a", "<m1@x>", NULL, NULL },
		{ 2, 3, "Re: a", "<m2@x>", "<m1@x> <gone@x>", NULL },
		{ 3, 2, "Re: a", "<m3@x>", "<m1@x> <gone@x>", NULL },
		{ 4, 4, "c", "<m4@x>", "<gone2@x>", NULL },
	};

	thread(two, 2, IMAP_THREAD_REFERENCES, "((3)(5))");
	thread(chain, 4, IMAP_THREAD_REFERENCES, "(1 (3)(2))(4)");
}

Test(imap_sort, references_subjects)
{
	/* same subject, no references: merged under a dummy; a reply goes
	 * under the original; an empty subject merges nothing */
	static const struct tm_spec s[] = {
		{ 1, 1, "same", "<m1@x>", NULL, NULL },
		{ 2, 2, "[list] same", "<m2@x>", NULL, NULL },
		{ 3, 3, "other", "<m3@x>", NULL, NULL },
		{ 4, 4, "Re: other", "<m4@x>", NULL, NULL },
		{ 5, 5, "", "<m5@x>", NULL, NULL },
		{ 6, 6, NULL, "<m6@x>", NULL, NULL },
		{ 7, 0, "Re: same", "<m7@x>", NULL, NULL },
	};
	/* the reply came first: the original is still the parent */
	static const struct tm_spec r[] = {
		{ 1, 1, "Re: topic", "<m1@x>", NULL, NULL },
		{ 2, 2, "topic", "<m2@x>", NULL, NULL },
	};

	thread(s, 7, IMAP_THREAD_REFERENCES, "((1 7)(2))(3 4)(5)(6)");
	thread(r, 2, IMAP_THREAD_REFERENCES, "(2 1)");
}

Test(imap_sort, references_loops_and_duplicates)
{
	static const struct tm_spec loop[] = {
		{ 1, 1, "a", "<m1@x>", "<m2@x>", NULL },
		{ 2, 1, "b", "<m2@x>", "<m1@x>", NULL },
	};
	static const struct tm_spec self[] = {
		{ 1, 1, "a", "<m1@x>", "<m1@x> <m1@x>", NULL },
	};
	/* a second message with the same id cannot be referred to */
	static const struct tm_spec dup[] = {
		{ 1, 1, "a", "<d@x>", NULL, NULL },
		{ 2, 2, "b", "<d@x>", NULL, NULL },
		{ 3, 3, "c", "<m3@x>", NULL, "<d@x> <m2@x>" },
	};
	/* a later message without references loses the parent an earlier
	 * one's References gave it (step 1.B) */
	static const struct tm_spec late[] = {
		{ 1, 1, "x", "<m1@x>", "<p@x> <m2@x>", NULL },
		{ 2, 2, "y", "<m2@x>", NULL, NULL },
		{ 3, 3, "z", "<p@x>", NULL, NULL },
	};

	thread(loop, 2, IMAP_THREAD_REFERENCES, "(2 1)");
	thread(self, 1, IMAP_THREAD_REFERENCES, "(1)");
	thread(dup, 3, IMAP_THREAD_REFERENCES, "(1 3)(2)");
	thread(late, 3, IMAP_THREAD_REFERENCES, "(2 1)(3)");
	thread(NULL, 0, IMAP_THREAD_REFERENCES, "");
}

Test(imap_sort, orderedsubject)
{
	static const struct tm_spec s[] = {
		{ 1, 5, "Re: b", NULL, NULL, NULL },
		{ 2, 1, "a", NULL, NULL, NULL },
		{ 3, 3, "b", NULL, NULL, NULL },
		{ 4, 2, "Fwd: a", NULL, NULL, NULL },
		{ 5, 3, "[x] b (fwd)", NULL, NULL, NULL },
		{ 6, 9, "c", NULL, NULL, NULL },
		{ 7, 4, "A", NULL, NULL, NULL },
	};

	thread(s, 7, IMAP_THREAD_ORDEREDSUBJECT, "(2 (4)(7))(3 (5)(1))(6)");
	thread(s, 1, IMAP_THREAD_ORDEREDSUBJECT, "(1)");
	thread(s + 1, 2, IMAP_THREAD_ORDEREDSUBJECT, "(2)(3)");
	thread(NULL, 0, IMAP_THREAD_ORDEREDSUBJECT, "");
}

/* ---- in steps: a tiny budget gives what an unbounded one does ----------- */

/* Random thread inputs: ids from a small pool (duplicates, dangling and
 * self references, cycles), subjects from a small pool with reply
 * leaders, dates with ties. */
struct gen {
	struct imap_thread_msg *m;
	char **strs;
	size_t n, nstrs;
};

static unsigned rnd(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

static char *keep(struct gen *g, char *s)
{
	g->strs[g->nstrs++] = s;
	return s;
}

static char *ids(struct gen *g, unsigned *seed, size_t pool, unsigned count)
{
	char *s = malloc(count * 24 + 8);
	size_t len = 0;

	s[0] = '\0';
	for (unsigned i = 0; i < count; i++) {
		unsigned r = rnd(seed) % 16;
		if (r == 0)
			len += (size_t)sprintf(s + len, " junk ");
		else if (r == 1)
			len += (size_t)sprintf(s + len, "<broken");
		else
			len += (size_t)sprintf(s + len, "%s<m%u@x>", i ? " " : "",
			    (unsigned)(rnd(seed) % pool));
	}
	return keep(g, s);
}

static void gen_make(struct gen *g, unsigned seed, size_t n)
{
	static const char *subj[] = { "a", "Re: a", "b", "Fwd: b", "[x] c", "c (fwd)", "",
	    "Re: Re: d", "d", NULL, "e", "RE: e" };
	size_t pool = n + n / 3 + 1;

	g->n = n;
	g->nstrs = 0;
	g->m = calloc(n ? n : 1, sizeof(*g->m));
	g->strs = calloc(3 * n + 1, sizeof(*g->strs));
	for (size_t i = 0; i < n; i++) {
		struct imap_thread_msg *m = &g->m[i];
		unsigned r = rnd(&seed) % 10;

		m->id = (uint32_t)(i + 1);
		m->date = rnd(&seed) % 8;
		m->subject = imap_sort_base_subject(subj[rnd(&seed) % 12], &m->reply);
		if (r > 0)
			m->message_id = ids(g, &seed, r < 8 ? pool : n / 2 + 1, 1);
		r = rnd(&seed) % 4;
		if (r > 0)
			m->references = ids(g, &seed, pool, rnd(&seed) % 6);
		if (rnd(&seed) % 3 == 0)
			m->in_reply_to = ids(g, &seed, pool, 1 + rnd(&seed) % 2);
	}
}

static void gen_free(struct gen *g)
{
	for (size_t i = 0; i < g->n; i++)
		free((char *)g->m[i].subject);
	for (size_t i = 0; i < g->nstrs; i++)
		free(g->strs[i]);
	free(g->m);
	free(g->strs);
}

/* Threads g with a budget of 1 to 9 units a call until done. */
static char *thread_stepped(const struct gen *g, enum imap_thread_alg alg, unsigned *seed,
    uint64_t most)
{
	struct imap_thread_job *j = imap_thread_begin(g->m, g->n, alg);
	size_t len, calls = 0;
	char *text;
	int r;

	cr_assert_not_null(j);
	do {
		uint64_t budget = most == UINT64_MAX ? most : 1 + rnd(seed) % most;
		r = imap_thread_step(j, &budget);
		calls++;
	} while (r == 0);
	cr_assert_eq(r, 1);
	text = imap_thread_take_text(j, &len);
	cr_assert_not_null(text);
	cr_assert_eq(len, strlen(text));
	cr_assert(most == UINT64_MAX || g->n < 2 || calls > g->n / most, "%zu calls", calls);
	imap_thread_end(j);
	return text;
}

Test(imap_sort, thread_in_steps_random)
{
	unsigned seed = 11;

	for (unsigned it = 0; it < 600; it++) {
		struct gen g;
		size_t n = it % 100 == 0 ? 3000 : it % 150;

		gen_make(&g, it * 7 + 1, n);
		for (int a = 0; a < 2; a++) {
			enum imap_thread_alg alg = a ? IMAP_THREAD_REFERENCES : IMAP_THREAD_ORDEREDSUBJECT;
			struct imap_thread t;
			char *one, *all, *tiny;

			cr_assert(imap_thread_build(g.m, g.n, alg, &t));
			one = imap_thread_format(&t, g.m);
			imap_thread_free(&t);
			all = thread_stepped(&g, alg, &seed, UINT64_MAX);
			tiny = thread_stepped(&g, alg, &seed, 9);
			cr_assert_str_eq(all, one, "iteration %u, n %zu", it, n);
			cr_assert_str_eq(tiny, one, "iteration %u, n %zu", it, n);
			free(one);
			free(all);
			free(tiny);
		}
		gen_free(&g);
	}
}

/* A job given up half-way frees what it holds (the sanitizers check). */
Test(imap_sort, thread_in_steps_abandoned)
{
	struct gen g;

	gen_make(&g, 3, 500);
	for (uint64_t stop = 1; stop < 20000; stop = stop * 3 + 1) {
		for (int a = 0; a < 2; a++) {
			struct imap_thread_job *j = imap_thread_begin(g.m, g.n, a ? IMAP_THREAD_REFERENCES
			    : IMAP_THREAD_ORDEREDSUBJECT);
			uint64_t budget = stop;

			cr_assert_neq(imap_thread_step(j, &budget), -1);
			imap_thread_end(j);
		}
	}
	gen_free(&g);
}

static int ikey_cmp(size_t a, size_t b, void *arg)
{
	const unsigned *key = arg;

	return key[a] < key[b] ? -1 : key[a] > key[b];
}

Test(imap_sort, msort_stable_in_steps)
{
	unsigned seed = 5;

	for (unsigned it = 0; it < 400; it++) {
		size_t n = it == 0 ? 0 : it % 100 == 0 ? 5000 + it : rnd(&seed) % 300;
		unsigned *key = malloc((n + 1) * sizeof(*key)), range = 1 + rnd(&seed) % 50;
		size_t *v = malloc((n + 1) * sizeof(*v)), *tmp = malloc((n + 1) * sizeof(*tmp));
		struct imap_msort ms;
		uint64_t budget;

		for (size_t i = 0; i < n; i++) {
			key[i] = rnd(&seed) % range;
			v[i] = i;
		}
		imap_msort_init(&ms, v, tmp, n, ikey_cmp, key);
		do
			budget = 1 + rnd(&seed) % 7;
		while (!imap_msort_step(&ms, &budget));
		/* ordered by key, equal keys in their first order; a permutation */
		for (size_t i = 1; i < n; i++)
			cr_assert(key[v[i - 1]] < key[v[i]] || (key[v[i - 1]] == key[v[i]] &&
			    v[i - 1] < v[i]), "iteration %u at %zu", it, i);
		memset(tmp, 0, (n + 1) * sizeof(*tmp));
		for (size_t i = 0; i < n; i++)
			tmp[v[i]]++;
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(tmp[i], 1);
		free(key);
		free(v);
		free(tmp);
	}
}

Test(imap_sort, sort_order_in_steps_random)
{
	static const char *pool[] = { "", "A", "B", "AB", "BA", "\xc3\xa4", NULL };
	static const struct imap_sort_crit crits[][3] = {
		{ { IMAP_SORT_SUBJECT, false } },
		{ { IMAP_SORT_SUBJECT, true }, { IMAP_SORT_DATE, false } },
		{ { IMAP_SORT_FROM, false }, { IMAP_SORT_SIZE, true }, { IMAP_SORT_ARRIVAL, false } },
		{ { IMAP_SORT_ARRIVAL, true } },
		{ { IMAP_SORT_DISPLAYTO, false }, { IMAP_SORT_CC, true } },
	};
	static const size_t ncrits[] = { 1, 2, 3, 1, 2 };
	unsigned seed = 9;

	for (unsigned it = 0; it < 300; it++) {
		size_t n = it % 50 == 0 ? 4000 : rnd(&seed) % 200, c = it % 5;
		struct imap_sort_msg *m = calloc(n + 1, sizeof(*m)), *want = calloc(n + 1, sizeof(*m));
		struct imap_sort_order *o;
		const size_t *got;
		uint64_t budget;

		for (size_t i = 0; i < n; i++) {
			m[i].seq = (uint32_t)(i + 1);
			m[i].id = (uint32_t)(1000 + i);
			m[i].arrival = rnd(&seed) % 5;
			m[i].date = rnd(&seed) % 5;
			m[i].size = rnd(&seed) % 3;
			for (int k = IMAP_SORT_CC; k <= IMAP_SORT_DISPLAYTO; k++)
				m[i].keys[k] = pool[rnd(&seed) % 7];
		}
		memcpy(want, m, n * sizeof(*m));
		imap_sort_msgs(want, n, crits[c], ncrits[c]);
		cr_assert_not_null(o = imap_sort_order_begin(m, n, crits[c], ncrits[c]));
		do
			budget = 1 + rnd(&seed) % 5;
		while ((got = imap_sort_order_step(o, &budget)) == NULL);
		for (size_t i = 0; i < n; i++)
			cr_assert_eq(m[got[i]].seq, want[i].seq, "iteration %u at %zu", it, i);
		imap_sort_order_end(o);
		free(m);
		free(want);
	}
}

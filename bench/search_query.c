/*
 * search_query: the store side of bench/search.sh.
 *
 *   search_query fill DB N      stores N messages of mixed sizes and
 *                               content in inbox "dev" (as SMTP stores
 *                               them: MIME structure scanned, From, To,
 *                               Subject extracted; so indexed too, unless
 *                               built with -DMAILSNARE_NO_SEARCH_INDEX),
 *                               500 per transaction
 *   search_query time DB Q...   runs each search (Mailpit's syntax) as the
 *                               API's first page does: 50 rows newest first,
 *                               the total and the unread among it; prints the median and the
 *                               95th percentile of 21 runs (wall clock),
 *                               after one warm-up, and the median CPU time
 *                               (what a loaded machine does not inflate)
 *   search_query split DB P Q...
 *                               the same split by body id into P parts, each
 *                               on its own thread and reader connection, as
 *                               the server's search pool (search_pool.c)
 *                               does, merged, the page read on the main
 *                               connection: wall, CPU of the whole and the
 *                               CPU of the busiest thread (medians)
 *
 * A message is a function of its number: subject "Order N confirmation"
 * or "Weekly report N" or "Password reset for userN", To user(N % 1000)
 * @example.test, a body of words from a small vocabulary plus the rare
 * word "zanzibarN%5000" (so a bare-word search finds ~20 of 100,000),
 * 60% about 1.5 KB, 35% about 8 KB, 5% about 60 KB with a base64
 * attachment.
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailsnare/ingest.h"
#include "mailsnare/search_pool.h"
#include "mailsnare/mime.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/store.h"

static const char *const vocab[] = {
	"the", "quarterly", "numbers", "look", "good", "please", "review", "attached",
	"invoice", "shipment", "delayed", "meeting", "tomorrow", "account", "balance",
	"customer", "support", "ticket", "resolved", "thanks", "regards", "team",
};
#define NVOCAB (sizeof(vocab) / sizeof(vocab[0]))

struct buf {
	char *p;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		while (b->len + n + 1 > b->cap)
			b->cap = b->cap ? b->cap * 2 : 65536;
		if ((b->p = realloc(b->p, b->cap)) == NULL)
			abort();
	}
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s)
{
	put(b, s, strlen(s));
}

static uint32_t rnd(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

static void make_message(long n, struct buf *b)
{
	char line[256];
	uint32_t seed = (uint32_t)n * 2654435761u;
	unsigned kind = n % 20;
	size_t target = kind < 12 ? 1200 : kind < 19 ? 8000 : 20000;
	size_t i, col = 0;

	b->len = 0;
	snprintf(line, sizeof(line), "From: Shop %ld <shop%ld@sender.test>\r\n"
	    "To: User %ld <user%ld@example.test>\r\n", n % 50, n % 50, n % 1000, n % 1000);
	puts_(b, line);
	if (n % 3 == 0)
		snprintf(line, sizeof(line), "Subject: Order %ld confirmation\r\n", n);
	else if (n % 3 == 1)
		snprintf(line, sizeof(line), "Subject: Weekly report %ld\r\n", n);
	else
		snprintf(line, sizeof(line), "Subject: Password reset for user%ld\r\n", n % 1000);
	puts_(b, line);
	snprintf(line, sizeof(line), "Message-ID: <m%ld@sender.test>\r\nMIME-Version: 1.0\r\n", n);
	puts_(b, line);
	if (kind == 19)
		puts_(b, "Content-Type: multipart/mixed; boundary=\"bb\"\r\n\r\n--bb\r\n"
		    "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	else
		puts_(b, "Content-Type: text/plain; charset=utf-8\r\n\r\n");
	snprintf(line, sizeof(line), "Hello user%ld, zanzibar%ld ", n % 1000, n % 5000);
	puts_(b, line);
	while (b->len < (kind == 19 ? target / 3 : target)) {
		const char *w = vocab[rnd(&seed) % NVOCAB];

		puts_(b, w);
		col += strlen(w) + 1;
		if (col > 70) {
			puts_(b, "\r\n");
			col = 0;
		} else
			puts_(b, " ");
	}
	puts_(b, "\r\n");
	if (kind == 19) {
		puts_(b, "--bb\r\nContent-Type: application/octet-stream\r\n"
		    "Content-Disposition: attachment; filename=\"data.bin\"\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n");
		for (i = 0; b->len < target * 3; i++)
			puts_(b, "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWZnaGlqa2xtbm9wcXJzdHV2\r\n");
		puts_(b, "--bb--\r\n");
	}
}

static struct store *open_db(const char *path)
{
	char err[256] = "";
	struct store_options o = { .path = path, .durability = DURABILITY_NORMAL,
	    .err = err, .errlen = sizeof(err) };
	struct store *st = store_open(&o);

	if (st == NULL) {
		fprintf(stderr, "search_query: %s\n", err);
		exit(1);
	}
	return st;
}

static int fill(const char *path, long count)
{
	struct store *st = open_db(path);
	struct store_inbox in;
	struct buf b = { NULL, 0, 0 };
	static const char *const rcpt[] = { "user@example.test" };
	long n;

	if (store_inbox_ensure(st, "dev", "dev", &in) != STORE_OK)
		return 1;
	for (n = 0; n < count; n++) {
		struct ingest *ing;
		int64_t id;
		struct store_new_message m = { 0 };

		if (n % 500 == 0 && store_begin(st) != STORE_OK)
			return 1;
		make_message(n, &b);
		/* The server's own preparation (ingest.h): structure and columns. */
		if ((ing = ingest_new(&(struct ingest_options){ .mem_limit = 1 << 20 })) == NULL)
			return 1;
		ingest_write(ing, b.p, b.len);
		if (ingest_finish(ing, &m) < 0)
			return 1;
		m.inbox_id = in.id;
		m.mail_from = "shop@sender.test";
		m.rcpts = rcpt;
		m.n_rcpts = 1;
		m.client_addr = "127.0.0.1";
		m.internal_date = 1700000000 + n * 60;
		if (store_message_add(st, &m, &id) != STORE_OK) {
			fprintf(stderr, "search_query: add: %s\n", store_errmsg(st));
			return 1;
		}
		ingest_free(ing);
		if ((n % 500 == 499 || n == count - 1) && store_commit(st) != STORE_OK)
			return 1;
	}
	free(b.p);
	store_close(st);
	return 0;
}

static int count_row(const struct store_message_info *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 0;
}

static double now_ms(clockid_t clock)
{
	struct timespec ts;

	clock_gettime(clock, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

#define RUNS 21

static int time_query(struct store *st, const char *q)
{
	struct msg_search *s;
	char err[256];
	double t[RUNS], c[RUNS];
	uint64_t total = 0, unseen = 0;
	int i, rows = 0;

	if (msg_search_parse(q, "", &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "search_query: %s: %s\n", q, err);
		return 1;
	}
	for (i = -1; i < RUNS; i++) {
		struct store_query sq = { .limit = 50, .search = s };
		double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);

		rows = 0;
		if (store_message_query_counted(st, &sq, count_row, &rows, &total, &unseen) !=
		    STORE_OK) {
			fprintf(stderr, "search_query: %s: %s\n", q, store_errmsg(st));
			return 1;
		}
		if (i >= 0) {
			t[i] = now_ms(CLOCK_MONOTONIC) - t0;
			c[i] = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
		}
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_d);
	qsort(c, RUNS, sizeof(c[0]), cmp_d);
	printf("| `%s` | %llu | %d | %.2f | %.2f | %.2f |\n", q, (unsigned long long)total, rows,
	    t[RUNS / 2], t[RUNS * 95 / 100], c[RUNS / 2]);
	msg_search_free(s);
	return 0;
}

#define PARTS_MAX 16

struct split_part {
	struct store *st;
	const struct store_query *q;
	int64_t lo, hi;
	int rc;
	double cpu;
	struct store_search_part res;
	pthread_t th;
};

static void *split_run(void *arg)
{
	struct split_part *p = arg;
	double c0 = now_ms(CLOCK_THREAD_CPUTIME_ID);

	p->rc = store_message_search_part(p->st, p->q, p->lo, p->hi, &p->res);
	p->cpu = now_ms(CLOCK_THREAD_CPUTIME_ID) - c0;
	return NULL;
}

/* One run of q in np parts: 0, or -1. *busiest: the most CPU a thread took. */
static int split_once(struct store *st, struct split_part *parts, int np,
    const struct store_query *q, uint64_t *total, int *rows, double *busiest)
{
	struct store_search_part res[PARTS_MAX], m;
	int64_t max = 0, span;
	int i, rc = 0;

	if (store_body_id_max(st, &max) != STORE_OK)
		return -1;
	span = max / np + 1;
	for (i = 0; i < np; i++) {
		parts[i].q = q;
		parts[i].lo = (int64_t)i * span;
		parts[i].hi = i + 1 == np ? INT64_MAX : (int64_t)(i + 1) * span;
		if (pthread_create(&parts[i].th, NULL, split_run, &parts[i]) != 0)
			return -1;
	}
	*busiest = 0;
	for (i = 0; i < np; i++) {
		pthread_join(parts[i].th, NULL);
		if (parts[i].rc != STORE_OK)
			rc = -1;
		if (parts[i].cpu > *busiest)
			*busiest = parts[i].cpu;
		res[i] = parts[i].res;
	}
	if (rc == 0 && search_parts_merge(res, np, q->offset + q->limit, false, &m) == STORE_OK) {
		*total = m.n;
		*rows = 0;
		if (store_message_rows(st, m.ids, m.nids, count_row, rows) != STORE_OK)
			rc = -1;
		store_search_part_free(&m);
	}
	for (i = 0; i < np; i++)
		store_search_part_free(&parts[i].res);
	return rc;
}

static int time_split(struct store *st, struct split_part *parts, int np, const char *q)
{
	struct msg_search *s;
	char err[256];
	double t[RUNS], c[RUNS], b[RUNS], busiest;
	uint64_t total = 0;
	int i, rows = 0;

	if (msg_search_parse(q, "", &s, err, sizeof(err)) != 0) {
		fprintf(stderr, "search_query: %s: %s\n", q, err);
		return 1;
	}
	for (i = -1; i < RUNS; i++) {
		struct store_query sq = { .limit = 50, .search = s };
		double t0 = now_ms(CLOCK_MONOTONIC), c0 = now_ms(CLOCK_PROCESS_CPUTIME_ID);

		if (split_once(st, parts, np, &sq, &total, &rows, &busiest) < 0) {
			fprintf(stderr, "search_query: %s: a part failed\n", q);
			return 1;
		}
		if (i >= 0) {
			t[i] = now_ms(CLOCK_MONOTONIC) - t0;
			c[i] = now_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
			b[i] = busiest;
		}
	}
	qsort(t, RUNS, sizeof(t[0]), cmp_d);
	qsort(c, RUNS, sizeof(c[0]), cmp_d);
	qsort(b, RUNS, sizeof(b[0]), cmp_d);
	printf("| `%s` | %d | %llu | %d | %.2f | %.2f | %.2f | %.2f |\n", q, np,
	    (unsigned long long)total, rows, t[RUNS / 2], t[RUNS * 95 / 100], c[RUNS / 2],
	    b[RUNS / 2]);
	msg_search_free(s);
	return 0;
}

static int split_main(int argc, char **argv)
{
	struct split_part parts[PARTS_MAX] = { { 0 } };
	int np = atoi(argv[3]), i, rc = 0;
	struct store *st = open_db(argv[2]);

	if (np < 1 || np > PARTS_MAX) {
		fprintf(stderr, "search_query: 1 to %d parts\n", PARTS_MAX);
		return 2;
	}
	for (i = 0; i < np; i++) {
		char err[256] = "";

		parts[i].st = store_open(&(struct store_options){ .path = argv[2],
		    .durability = DURABILITY_NORMAL, .reader = true, .err = err,
		    .errlen = sizeof(err) });
		if (parts[i].st == NULL) {
			fprintf(stderr, "search_query: %s\n", err);
			return 1;
		}
	}
	printf("| query | parts | matches | rows | p50 ms | p95 ms | CPU p50 ms |"
	    " busiest thread CPU p50 ms |\n|---|---|---|---|---|---|---|---|\n");
	for (i = 4; i < argc && rc == 0; i++)
		rc = time_split(st, parts, np, argv[i]);
	for (i = 0; i < np; i++)
		store_close(parts[i].st);
	store_close(st);
	return rc;
}

int main(int argc, char **argv)
{
	struct store *st;
	int i, rc = 0;

	if (argc >= 4 && strcmp(argv[1], "fill") == 0)
		return fill(argv[2], atol(argv[3]));
	if (argc >= 5 && strcmp(argv[1], "split") == 0)
		return split_main(argc, argv);
	if (argc < 4 || strcmp(argv[1], "time") != 0) {
		fprintf(stderr, "usage: search_query fill DB N | time DB QUERY... |"
		    " split DB PARTS QUERY...\n");
		return 2;
	}
	st = open_db(argv[2]);
	printf("| query | matches | rows | p50 ms | p95 ms | CPU p50 ms |\n"
	    "|---|---|---|---|---|---|\n");
	for (i = 3; i < argc && rc == 0; i++)
		rc = time_query(st, argv[i]);
	store_close(st);
	return rc;
}

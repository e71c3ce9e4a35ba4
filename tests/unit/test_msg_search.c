/*
 * Mailpit's search syntax: the parser (msg_search_parse, the folding
 * helpers) and its evaluation by the store against a temp SQLite store
 * (store_message_query with .search, store_message_matches,
 * store_index_pending), with real MIME messages stored as SMTP stores
 * them (structure scanned, headers extracted).
 */
#include <criterion/criterion.h>

#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mailsnare/ingest.h"
#include "mailsnare/mime.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/store.h"

/* ---- the parser --------------------------------------------------------- */

static struct msg_search *parse_ok(const char *q, const char *tz)
{
	struct msg_search *s = NULL;
	char err[256] = "";

	cr_assert_eq(msg_search_parse(q, tz, &s, err, sizeof(err)), 0, "%s: %s", q, err);
	cr_assert_not_null(s);
	return s;
}

static void parse_fails(const char *q, const char *tz, const char *msg)
{
	struct msg_search *s = (struct msg_search *)1;
	char err[256] = "";

	cr_assert_eq(msg_search_parse(q, tz, &s, err, sizeof(err)), -1, "%s", q);
	cr_assert_null(s);
	cr_assert_str_eq(err, msg, "%s", q);
}

static const struct msg_search_term *term(const struct msg_search *s, size_t i)
{
	const struct msg_search_term *t = msg_search_term(s, i);

	cr_assert_not_null(t, "term %zu", i);
	return t;
}

Test(msg_search, fields_negation_and_quotes)
{
	struct msg_search *s = parse_ok("Hello  to:Bob@X.test -subject:\"Two Words\""
	    " !from:a@b \"a Phrase\" reply-to:r addressed:q message-id:<ID@x> cc:c bcc:d"
	    " rcpt:E@x inbox:Dev tag:Urgent", "");

	cr_assert_eq(msg_search_nterms(s), 13);
	cr_assert_eq(term(s, 0)->field, MSG_SEARCH_TEXT);
	cr_assert_str_eq(term(s, 0)->text, "hello");
	cr_assert_not(term(s, 0)->phrase);
	cr_assert_eq(term(s, 1)->field, MSG_SEARCH_TO);
	cr_assert_str_eq(term(s, 1)->text, "bob@x.test");
	cr_assert_eq(term(s, 2)->field, MSG_SEARCH_SUBJECT);
	cr_assert(term(s, 2)->negated);
	cr_assert_str_eq(term(s, 2)->text, "two words");
	cr_assert_eq(term(s, 3)->field, MSG_SEARCH_FROM);
	cr_assert(term(s, 3)->negated);
	cr_assert_eq(term(s, 4)->field, MSG_SEARCH_TEXT);
	cr_assert(term(s, 4)->phrase);
	cr_assert_str_eq(term(s, 4)->text, "a phrase");
	cr_assert_eq(term(s, 5)->field, MSG_SEARCH_REPLY_TO);
	cr_assert_eq(term(s, 6)->field, MSG_SEARCH_ADDRESSED);
	cr_assert_eq(term(s, 7)->field, MSG_SEARCH_MESSAGE_ID);
	cr_assert_str_eq(term(s, 7)->text, "<id@x>");
	cr_assert_eq(term(s, 8)->field, MSG_SEARCH_CC);
	cr_assert_eq(term(s, 9)->field, MSG_SEARCH_BCC);
	cr_assert_eq(term(s, 10)->field, MSG_SEARCH_RCPT);
	cr_assert_str_eq(term(s, 10)->text, "e@x");
	cr_assert_eq(term(s, 11)->field, MSG_SEARCH_INBOX);
	cr_assert_str_eq(term(s, 11)->text, "Dev", "inbox names are exact");
	cr_assert_eq(term(s, 12)->field, MSG_SEARCH_TAG);
	cr_assert_str_eq(term(s, 12)->text, "urgent");
	cr_assert_null(msg_search_term(s, 13));
	msg_search_free(s);
}

Test(msg_search, flags_and_prefix_case)
{
	struct msg_search *s = parse_ok("is:read IS:UNREAD -is:unread is:tagged"
	    " has:attachment has:Attachments has:inline has:inlines SUBJECT:x is:other", "");

	cr_assert_eq(msg_search_nterms(s), 10);
	cr_assert_eq(term(s, 0)->field, MSG_SEARCH_READ);
	cr_assert_not(term(s, 0)->negated);
	cr_assert_eq(term(s, 1)->field, MSG_SEARCH_READ);
	cr_assert(term(s, 1)->negated, "is:unread is not is:read");
	cr_assert_not(term(s, 2)->negated, "-is:unread is is:read");
	cr_assert_eq(term(s, 3)->field, MSG_SEARCH_TAGGED);
	cr_assert_eq(term(s, 4)->field, MSG_SEARCH_ATTACHMENT);
	cr_assert_eq(term(s, 5)->field, MSG_SEARCH_ATTACHMENT);
	cr_assert_eq(term(s, 6)->field, MSG_SEARCH_INLINE);
	cr_assert_eq(term(s, 7)->field, MSG_SEARCH_INLINE);
	cr_assert_eq(term(s, 8)->field, MSG_SEARCH_SUBJECT);
	/* Unknown is:/has: values are words, as Mailpit takes them. */
	cr_assert_eq(term(s, 9)->field, MSG_SEARCH_TEXT);
	cr_assert_str_eq(term(s, 9)->text, "is:other");
	msg_search_free(s);
}

/* What Mailpit skips: empty values, arguments without a letter or digit,
 * an empty query; a lone "-" is not a negation. */
Test(msg_search, skipped)
{
	struct msg_search *s = parse_ok("   to: \"\" - ... -- !! subject:\"  \"  ", "");

	cr_assert_eq(msg_search_nterms(s), 0);
	msg_search_free(s);
	s = parse_ok("", "");
	cr_assert_eq(msg_search_nterms(s), 0);
	msg_search_free(s);
	s = parse_ok("-x", "");
	cr_assert(term(s, 0)->negated);
	cr_assert_str_eq(term(s, 0)->text, "x");
	msg_search_free(s);
}

Test(msg_search, sizes)
{
	struct msg_search *s;

	parse_fails("larger:7b", "", "bad size \"7b\" (use 100, 10kb, 2mb)");
	s = parse_ok("larger:100 smaller:10kb larger:2M smaller:1.5m larger:\"3 KB\"", "");
	cr_assert_eq(term(s, 0)->field, MSG_SEARCH_LARGER);
	cr_assert_eq(term(s, 0)->number, 100);
	cr_assert_eq(term(s, 1)->field, MSG_SEARCH_SMALLER);
	cr_assert_eq(term(s, 1)->number, 10240);
	cr_assert_eq(term(s, 2)->number, 2097152);
	cr_assert_eq(term(s, 3)->number, 1572864);
	cr_assert_eq(term(s, 4)->number, 3072);
	msg_search_free(s);
	parse_fails("smaller:abc", "", "bad size \"abc\" (use 100, 10kb, 2mb)");
	parse_fails("larger:5gb", "", "bad size \"5gb\" (use 100, 10kb, 2mb)");
}

Test(msg_search, dates_and_zones)
{
	struct msg_search *s = parse_ok("before:2024-05-01 after:\"2024-05-01 13:30\""
	    " after:2024/05/01T13:30:15Z before:2024-05-01T15:30:15+02:00"
	    " after:2024-02-29T00:00:00-0130", "");

	cr_assert_eq(term(s, 0)->field, MSG_SEARCH_BEFORE);
	cr_assert_eq(term(s, 0)->number, 1714521600);
	cr_assert_eq(term(s, 1)->field, MSG_SEARCH_AFTER);
	cr_assert_eq(term(s, 1)->number, 1714521600 + 13 * 3600 + 30 * 60);
	cr_assert_eq(term(s, 2)->number, 1714521600 + 13 * 3600 + 30 * 60 + 15);
	cr_assert_eq(term(s, 3)->number, 1714521600 + 13 * 3600 + 30 * 60 + 15);
	cr_assert_eq(term(s, 4)->number, 1709164800 + 5400);
	msg_search_free(s);
	/* A zone's offset at that date: summer and winter time. */
	s = parse_ok("after:2024-07-01 after:2024-01-01 after:2024-01-01T00:00Z", "Europe/Berlin");
	cr_assert_eq(term(s, 0)->number, 1719792000 - 7200);
	cr_assert_eq(term(s, 1)->number, 1704067200 - 3600);
	cr_assert_eq(term(s, 2)->number, 1704067200, "an explicit zone wins");
	msg_search_free(s);
	parse_fails("before:2024-13-01", "",
	    "bad date \"2024-13-01\" (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)");
	parse_fails("before:2023-02-29", "",
	    "bad date \"2023-02-29\" (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)");
	parse_fails("after:yesterday", "",
	    "bad date \"yesterday\" (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)");
	parse_fails("x", "Mars/Olympus", "unknown time zone \"Mars/Olympus\"");
	parse_fails("x", "../../etc/passwd", "unknown time zone \"../../etc/passwd\"");
	parse_fails("x", "/etc/localtime", "unknown time zone \"/etc/localtime\"");
}

Test(msg_search, bounds)
{
	char q[MSG_SEARCH_MAX_QUERY + 2];
	char err[256];
	struct msg_search *s;
	size_t i;

	memset(q, 'a', sizeof(q) - 1);
	q[sizeof(q) - 1] = '\0';
	parse_fails(q, "", "query longer than 4096 bytes");
	for (i = 0; i < 2 * (MSG_SEARCH_MAX_TERMS + 1); i += 2) {
		q[i] = 'w';
		q[i + 1] = ' ';
	}
	q[i] = '\0';
	parse_fails(q, "", "more than 32 search terms");
	q[i - 2] = '\0';
	cr_assert_eq(msg_search_parse(q, "", &s, err, sizeof(err)), 0);
	cr_assert_eq(msg_search_nterms(s), MSG_SEARCH_MAX_TERMS);
	msg_search_free(s);
	msg_search_free(NULL);
	cr_assert_eq(msg_search_nterms(NULL), 0);
}

/* Case folding beyond ASCII, and what never is a character. */
Test(msg_search, fold_unicode)
{
	char out[64];

	cr_assert_eq(msg_search_fold("ÀÉÎõÜ", strlen("ÀÉÎõÜ"), out, sizeof(out)), 10);
	cr_assert_str_eq(out, "àéîõü");
	msg_search_fold("ΣΑΣ ς ПРИВЕТ Ǆ ẞ K Ａ", strlen("ΣΑΣ ς ПРИВЕТ Ǆ ẞ K Ａ"), out,
	    sizeof(out));
	cr_assert_str_eq(out, "σασ σ привет ǆ ß k ａ");
	/* Ⱥ (2 bytes) folds to ⱥ (3 bytes). */
	cr_assert_eq(msg_search_fold("Ⱥ", 2, out, sizeof(out)), 3);
	cr_assert_str_eq(out, "ⱥ");
	/* Invalid bytes as they are; never half a character at the end. */
	cr_assert_eq(msg_search_fold("A\xff\xc3", 3, out, sizeof(out)), 3);
	cr_assert_eq(memcmp(out, "a\xff\xc3", 4), 0);
	cr_assert_eq(msg_search_fold("ÀÀ", 4, out, 4), 2);
	cr_assert_str_eq(out, "à");
	cr_assert_eq(msg_search_fold("x", 1, out, 0), 0);
}

Test(msg_search, contains)
{
	cr_assert(msg_search_contains("Re: ÜBER Straße", strlen("Re: ÜBER Straße"), "über", 5));
	cr_assert(msg_search_contains("ПРИВЕТ мир", strlen("ПРИВЕТ мир"), "привет", 12));
	cr_assert(msg_search_contains("x", 1, "", 0));
	cr_assert_not(msg_search_contains("uber", 4, "über", 5));
	cr_assert_not(msg_search_contains("ab", 2, "abc", 3));
	/* Not from the middle of a character: "\x80" alone is no match for
	 * the tail of "À" (C3 80) folded. */
	cr_assert_not(msg_search_contains("\xc3\x80", 2, "\x80", 1));
}

/* ---- evaluation by the store ------------------------------------------- */

static char tmpdir[64];
static char dbpath[PATH_MAX];
static struct store *st;
static int64_t inbox_dev, inbox_qa;

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb; (void)type; (void)ftw;
	return remove(path);
}

/* defer: as the server opens it (new mail indexed in the background, a
 * search indexes only what arrived since the open). */
static struct store *open_db_as(bool defer)
{
	char err[256] = "";
	struct store_options o = { .path = dbpath, .durability = DURABILITY_NORMAL,
	    .defer_index = defer, .err = err, .errlen = sizeof(err) };
	struct store *s = store_open(&o);

	cr_assert_not_null(s, "%s", err);
	return s;
}

static struct store *open_db(void)
{
	return open_db_as(false);
}

static void setup(void)
{
	struct store_inbox in;

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mailsnare-search-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/mail.db", tmpdir);
	st = open_db();
	cr_assert_eq(store_inbox_add(st, "dev", "pw", &in), STORE_OK);
	inbox_dev = in.id;
	cr_assert_eq(store_inbox_add(st, "qa", "pw", &in), STORE_OK);
	inbox_qa = in.id;
}

static void teardown(void)
{
	if (st != NULL)
		store_close(st);
	st = NULL;
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Stores raw as SMTP does (ingest.h: the MIME structure scanned, From,
 * To, Subject, Date and has_attachment from it); envelope recipients
 * rcpts. */
static int64_t deliver(int64_t inbox, const char *raw, const char *const *rcpts, size_t nrcpts,
    int64_t date)
{
	struct ingest *in = ingest_new(&(struct ingest_options){ .mem_limit = 1 << 20 });
	struct store_new_message m = { 0 };
	int64_t id = 0;

	cr_assert_not_null(in);
	ingest_write(in, raw, strlen(raw));
	cr_assert_eq(ingest_finish(in, &m), 0);
	m.inbox_id = inbox;
	m.mail_from = "app@sender.test";
	m.rcpts = rcpts;
	m.n_rcpts = nrcpts;
	m.client_addr = "127.0.0.1";
	m.internal_date = date;
	cr_assert_eq(store_message_add(st, &m, &id), STORE_OK, "%s", store_errmsg(st));
	ingest_free(in);
	return id;
}

static const char *const one_rcpt[] = { "bob@example.test" };

static const char msg_plain[] =
    "From: Alice Sender <alice@example.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Cc: Carol <carol@cc.test>\r\n"
    "Reply-To: replies@example.test\r\n"
    "Message-ID: <plain-1@example.test>\r\n"
    "Subject: Your invoice 42\r\n"
    "\r\n"
    "Hello Bob, the quarterly report is attached. Café tomorrow?\r\n";

static const char msg_cyrillic[] =
    "From: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.test>\r\n"
    "To: Bob <bob@example.test>\r\n"
    "Subject: =?UTF-8?B?0J/QoNCY0JLQldCiINC80LjRgA==?=\r\n"
    "Content-Type: text/plain; charset=koi8-r\r\n"
    "Content-Transfer-Encoding: quoted-printable\r\n"
    "\r\n"
    "=F0=F2=E9=F7=E5=F4 =CD=C9=D2 ZEBRA\r\n";

static const char msg_mixed[] =
    "From: Build Bot <bot@ci.test>\r\n"
    "To: team@example.test\r\n"
    "Subject: Nightly build\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: multipart/related; boundary=\"b2\"\r\n"
    "\r\n"
    "--b2\r\n"
    "Content-Type: text/html; charset=utf-8\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "PGh0bWw+PHN0eWxlPi5oaWRkZW53b3JkIHt9PC9zdHlsZT48Yj5CdWlsZDwvYj4gcGFzc2VkICZhbXA7IGdyZWVuPC9odG1sPg==\r\n"
    "--b2\r\n"
    "Content-Type: image/png\r\n"
    "Content-ID: <logo@ci>\r\n"
    "Content-Transfer-Encoding: base64\r\n"
    "\r\n"
    "iVBORw0KGgo=\r\n"
    "--b2--\r\n"
    "--b1\r\n"
    "Content-Type: text/plain; name=\"log.txt\"\r\n"
    "Content-Disposition: attachment; filename=\"log.txt\"\r\n"
    "\r\n"
    "secretattachmentword\r\n"
    "--b1--\r\n";

struct hits {
	int64_t id[64];
	int n;
};

static int hit(const struct store_message_info *m, void *arg)
{
	struct hits *h = arg;

	cr_assert_lt(h->n, 64);
	h->id[h->n++] = m->id;
	return 0;
}

/* The API's way (store_message_query_counted: a page, its total and its
 * unread, the body sets' pass for body terms) gives what the listing's
 * plain SQL (no limit: the count, then the rows) gives, for one page
 * (start, limit) of query q. */
static void expect_counted(const char *q, uint64_t start, uint64_t limit)
{
	struct msg_search *s = parse_ok(q, "");
	struct store_query all = { .search = s }, unread = { .search = s,
	    .flags_clear = STORE_FLAG_SEEN }, page = { .search = s, .offset = start, .limit = limit };
	struct hits h = { .n = 0 }, p = { .n = 0 }, u = { .n = 0 };
	uint64_t total = 0, n_unread = 0, ptotal = 999, punread = 999;
	int i;

	cr_assert_eq(store_message_query(st, &all, hit, &h, &total), STORE_OK);
	cr_assert_eq(store_message_query(st, &unread, hit, &u, &n_unread), STORE_OK);
	cr_assert_eq(store_message_query_counted(st, &page, hit, &p, &ptotal, &punread), STORE_OK,
	    "%s: %s", q, store_errmsg(st));
	cr_assert_eq(ptotal, total, "%s: total %llu, want %llu", q, (unsigned long long)ptotal,
	    (unsigned long long)total);
	cr_assert_eq(punread, n_unread, "%s: unread", q);
	for (i = 0; i < p.n; i++)
		cr_assert_eq(p.id[i], h.id[start + (uint64_t)i], "%s: row %d", q, i);
	cr_assert_eq((uint64_t)p.n, total <= start ? 0 : total - start < limit ? total - start :
	    limit, "%s: %d rows", q, p.n);
	msg_search_free(s);
}

/* Runs query q and checks the result is exactly ids (newest first), and
 * that the API's counted page agrees. */
static void expect(const char *q, const int64_t *ids, int n)
{
	struct msg_search *s = parse_ok(q, "");
	struct store_query sq = { .search = s };
	struct hits h = { .n = 0 };
	uint64_t total = 999;
	int i;

	cr_assert_eq(store_message_query(st, &sq, hit, &h, &total), STORE_OK, "%s: %s", q,
	    store_errmsg(st));
	cr_assert_eq(h.n, n, "%s: %d rows, want %d", q, h.n, n);
	cr_assert_eq(total, (uint64_t)n, "%s: total", q);
	for (i = 0; i < n; i++)
		cr_assert_eq(h.id[i], ids[i], "%s: row %d is %lld, want %lld", q, i,
		    (long long)h.id[i], (long long)ids[i]);
	msg_search_free(s);
	expect_counted(q, 0, 16);
	expect_counted(q, 1, 1);
}

#define EXPECT(q, ...) do { \
	const int64_t want_[] = { __VA_ARGS__ }; \
	expect(q, want_ + 1, (int)(sizeof(want_) / sizeof(want_[0])) - 1); \
} while (0)

TestSuite(store_search, .init = setup, .fini = teardown);

Test(store_search, fields)
{
	const char *const two[] = { "bob@example.test", "hidden@bcc.test" };
	int64_t a = deliver(inbox_dev, msg_plain, two, 2, 1714000000);
	int64_t b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	int64_t c = deliver(inbox_qa, msg_mixed, one_rcpt, 1, 1714200000);

	EXPECT("", 0, c, b, a);
	EXPECT("to:bob@EXAMPLE.test", 0, b, a);
	EXPECT("to:team", 0, c);
	EXPECT("-to:bob", 0, c);
	EXPECT("from:alice", 0, a);
	EXPECT("from:иван", 0, b);           /* decoded, folded: Иван */
	EXPECT("from:ИВАН", 0, b);
	EXPECT("subject:\"invoice 42\"", 0, a);
	EXPECT("subject:привет", 0, b);     /* ПРИВЕТ мир, decoded */
	EXPECT("subject:NIGHTLY", 0, c);
	EXPECT("cc:carol@cc", 0, a);
	EXPECT("reply-to:replies@", 0, a);
	EXPECT("message-id:plain-1@", 0, a);
	EXPECT("bcc:hidden@bcc.test", 0, a); /* an envelope recipient not in To/Cc */
	EXPECT("bcc:bob", 0, c);             /* c's To does not name its recipient */
	EXPECT("addressed:carol", 0, a);
	EXPECT("addressed:bot@ci", 0, c);
	EXPECT("rcpt:HIDDEN@", 0, a);
	EXPECT("inbox:qa", 0, c);
	EXPECT("-inbox:qa", 0, b, a);
	EXPECT("inbox:QA", 0);
	EXPECT("has:attachment", 0, c);
	EXPECT("has:inline", 0, c);
	EXPECT("-has:inline to:bob", 0, b, a);
	EXPECT("larger:600", 0, c);
	EXPECT("smaller:600", 0, b, a);
	EXPECT("after:2024-04-26T00:00:00Z", 0, c, b); /* 1714089600 */
	EXPECT("before:2024-04-26", 0, a);
}

Test(store_search, words)
{
	int64_t a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	int64_t b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	int64_t c = deliver(inbox_qa, msg_mixed, one_rcpt, 1, 1714200000);

	EXPECT("quarterly", 0, a);            /* the body */
	EXPECT("QUART", 0, a);                /* a prefix */
	EXPECT("cafe", 0, a);                 /* without its accent */
	EXPECT("\"report is attached\"", 0, a);
	EXPECT("\"attached report\"", 0);
	EXPECT("invoice", 0, a);              /* the subject */
	EXPECT("carol", 0, a);                /* an address */
	EXPECT("привет", 0, b);               /* KOI8-R, quoted-printable, folded */
	EXPECT("ПРИВЕТ zebra", 0, b);
	EXPECT("green passed", 0, c);         /* base64 HTML, tags dropped */
	EXPECT("hiddenword", 0);              /* in <style> */
	EXPECT("secretattachmentword", 0);    /* an attachment is not text */
	EXPECT("-bob", 0);                    /* c: bob is its Bcc (an envelope recipient) */
	EXPECT("bob -invoice", 0, c, b);
	EXPECT("-zebra", 0, c, a);
	EXPECT("nosuchword", 0);
	EXPECT("\"quote\"\"d\" x\"y", 0);     /* quotes inside: no FTS syntax error */
	EXPECT("...", 0, c, b, a);            /* no letter or digit: skipped, as Mailpit */
	EXPECT("«—»", 0);                     /* no word for the tokenizer: nothing */
}

Test(store_search, flags_tags_paging_and_matches)
{
	int64_t a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	int64_t b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	int64_t c = deliver(inbox_dev, msg_mixed, one_rcpt, 1, 1714200000);
	const char *kw[] = { "Urgent" };
	struct msg_search *s = parse_ok("to:bob", "");
	struct store_query q = { .search = s, .limit = 1 };
	struct hits h = { .n = 0 };
	uint64_t total = 0;

	cr_assert_eq(store_message_set_flags(st, b, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(store_message_store(st, c, STORE_FLAGS_ADD, 0, kw, 1, 0, NULL), STORE_OK);
	EXPECT("is:read", 0, b);
	EXPECT("is:unread", 0, c, a);
	EXPECT("is:tagged", 0, c);
	EXPECT("-is:tagged", 0, b, a);
	EXPECT("tag:urgent", 0, c);
	EXPECT("tag:URGENT is:unread", 0, c);
	EXPECT("tag:urgen", 0);
	/* Paged, with the total of all matches. */
	cr_assert_eq(store_message_query(st, &q, hit, &h, &total), STORE_OK);
	cr_assert_eq(total, 2);
	cr_assert_eq(h.n, 1);
	cr_assert_eq(h.id[0], b);
	cr_assert_eq(store_message_matches(st, a, s), 1);
	cr_assert_eq(store_message_matches(st, c, s), 0);
	cr_assert_eq(store_message_matches(st, 9999, s), 0);
	cr_assert_eq(store_message_matches(st, a, NULL), 1);
	msg_search_free(s);
	/* Deleting the message drops its index rows with its body. */
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	EXPECT("quarterly", 0);
}

/* A COPY shares the body, and so its index. */
Test(store_search, copy_shares_index)
{
	int64_t a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000), copy = 0;
	struct store_mailbox mb;
	uint32_t uid;

	cr_assert_eq(store_mailbox_get(st, inbox_dev, "Sent", &mb), STORE_OK);
	cr_assert_eq(store_message_copy(st, a, mb.id, &copy, &uid), STORE_OK);
	EXPECT("quarterly subject:invoice", 0, copy, a);
	EXPECT("subject:invoice -quarterly", 0);
}

static void raw_exec(const char *sql);

/* Issue 12's pass over many messages: a term that few bodies match (each
 * looked up) and one that most do (every message scanned), negations,
 * pages further on, read messages and bodies shared by a COPY, always as
 * the plain SQL answers. */
Test(store_search, counted_pass_modes)
{
	static const char *const subj[] = { "Weekly report", "Order confirmation",
	    "Password reset" };
	struct store_mailbox mb;
	int64_t id[40], copy;
	uint32_t uid;
	char raw[512];
	int i;

	cr_assert_eq(store_mailbox_get(st, inbox_dev, "Sent", &mb), STORE_OK);
	for (i = 0; i < 40; i++) {
		snprintf(raw, sizeof(raw), "From: Shop <shop%d@sender.test>\r\n"
		    "To: user%d@example.test\r\nSubject: %s %d\r\n\r\n%s word%d\r\n",
		    i % 4, i, subj[i % 3], i, i % 2 ? "quarterly numbers look" : "numbers",
		    i);
		id[i] = deliver(i % 5 ? inbox_dev : inbox_qa, raw, one_rcpt, 1,
		    1714000000 + i);
		if (i % 3 == 0)
			cr_assert_eq(store_message_set_flags(st, id[i], STORE_FLAG_SEEN, 0),
			    STORE_OK);
	}
	for (i = 0; i < 40; i += 7)
		cr_assert_eq(store_message_copy(st, id[i], mb.id, &copy, &uid), STORE_OK);
	static const char *const qs[] = { "subject:report", "subject:\"report 7\"",
	    "to:user7@", "to:user1", "from:shop3@", "word17", "quarterly", "\"numbers look\"",
	    "quarterly -subject:report", "subject:report -quarterly", "numbers -word3",
	    "subject:order is:unread", "quarterly inbox:qa", "subject:reset -inbox:qa",
	    "addressed:shop2", "quarterly subject:report to:user1", "subject:zz", "to:u",
	    "subject:report larger:10", "quarterly -numbers", "nosuchword", "-quarterly",
	    "", "is:unread", "-subject:report -word3", "-to:user1 is:read", "larger:10",
	    "-inbox:qa -quarterly" };
	for (i = 0; i < (int)(sizeof(qs) / sizeof(qs[0])); i++) {
		expect_counted(qs[i], 0, 16);
		expect_counted(qs[i], 3, 5);
		expect_counted(qs[i], 14, 16);
		expect_counted(qs[i], 100, 16);
	}
	/* The trigram index agrees with the rows it was built from. */
	cr_assert_eq(store_message_del(st, id[7]), STORE_OK);
	cr_assert_eq(store_message_del(st, copy), STORE_OK);
	expect_counted("subject:report", 0, 16);
	raw_exec("INSERT INTO body_tri (body_tri) VALUES ('integrity-check')");
}

/* A field term of three characters or more goes through the trigram
 * index, a shorter one through instr(): both are substring tests of the
 * folded header, as msg_search_contains (the evaluator of one message)
 * is, for all of Unicode. */
Test(store_search, trigram_unicode_case)
{
	static const char *const subj[] = { "Re: ÜBER Straße", "ПРИВЕТ мир", "ΣΊΣΥΦΟΣ и ΟΔΥΣΣΕΥΣ",
	    "İstanbul ǅemal", "ﬁle Ǆ", "plain ascii REPORT", "say \"quoted\" x" };
	static const char *const qs[] = { "über", "ÜBER", "STRASSE", "straße", "ss", "привет мир",
	    "ПРИВЕТ", "σίσυφος", "ΣΊΣ", "οδυσσευς", "i̇stanbul", "İST", "ǆem", "ǅ", "file", "FI",
	    "ǆ", "report", "Rep", "re", "\"\"quoted\"\"", "t s" };
	int64_t id[7];
	char raw[256], q[128];
	size_t i, j;

	for (i = 0; i < 7; i++) {
		snprintf(raw, sizeof(raw), "From: a@b.test\r\nTo: c@d.test\r\nSubject: %s\r\n"
		    "\r\nx\r\n", subj[i]);
		id[i] = deliver(inbox_dev, raw, one_rcpt, 1, 1714000000 + (int64_t)i);
	}
	for (j = 0; j < sizeof(qs) / sizeof(qs[0]); j++) {
		struct msg_search *s;
		const struct msg_search_term *t;
		int64_t want[8];
		int n = 0;

		snprintf(q, sizeof(q), "subject:\"%s\"", qs[j]);
		s = parse_ok(q, "");
		cr_assert_eq(msg_search_nterms(s), 1, "%s", q);
		t = msg_search_term(s, 0);
		for (i = 7; i-- > 0;)
			if (msg_search_contains(subj[i], strlen(subj[i]), t->text, t->len))
				want[n++] = id[i];
		msg_search_free(s);
		expect(q, want, n);
	}
}

static int64_t raw_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW);
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const char *sql)
{
	sqlite3 *db;
	char *err = NULL;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, &err), SQLITE_OK, "%s", err);
	sqlite3_close(db);
}

/* A version 5 db (before the index) upgrades; its messages are indexed
 * lazily by store_index_pending, oldest first, a slice at a time. */
/* The store closed and turned back into a version 5 file: without schema
 * 7's counts and 6's index, and one message without its structure
 * (scanned from its bytes then). */
static void make_v5(void)
{
	store_close(st);
	st = NULL;
	raw_exec("DROP TRIGGER body_tri_gc; DROP TABLE body_tri; DROP INDEX message_search;"
	    " CREATE INDEX message_body ON message(body_id);"
	    " DROP TABLE body_purge; DROP TRIGGER message_body_gc;"
	    " CREATE TRIGGER message_body_gc AFTER DELETE ON message BEGIN"
	    " DELETE FROM body WHERE id = OLD.body_id"
	    " AND NOT EXISTS (SELECT 1 FROM message WHERE body_id = OLD.body_id); END;"
	    " DROP TRIGGER body_more_gc; DROP TABLE body_more;"
	    " DROP TRIGGER message_count_add; DROP TRIGGER message_count_del;"
	    " DROP TRIGGER message_count_upd; DROP TRIGGER keyword_count_add;"
	    " DROP TRIGGER keyword_count_del; DROP TABLE keyword_count;"
	    " ALTER TABLE mailbox DROP COLUMN n_messages; ALTER TABLE mailbox DROP COLUMN n_unseen;"
	    " DROP TRIGGER body_search_gc; DROP TABLE body_fts; DROP TABLE body_search;"
	    " PRAGMA user_version = 5");
	raw_exec("UPDATE message SET structure = NULL");
}

/* The server's view: the old messages wait for the back-fill. */
Test(store_search, migration_and_backfill)
{
	int64_t a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	int64_t b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	unsigned done = 99;
	bool more = false;

	make_v5();
	st = open_db_as(true);
	cr_assert_eq(raw_int("PRAGMA user_version"), 10);
	EXPECT("quarterly", 0);
	EXPECT("to:bob", 0);
	EXPECT("larger:1", 0, b, a);          /* what the message row answers still works */
	cr_assert_eq(store_index_pending(st, 1, &done, &more), STORE_OK);
	cr_assert_eq(done, 1);
	cr_assert(more);
	EXPECT("to:bob", 0, a);
	cr_assert_eq(store_index_pending(st, 64, &done, &more), STORE_OK);
	cr_assert_eq(done, 1);
	cr_assert_not(more);
	EXPECT("to:bob", 0, b, a);
	EXPECT("привет", 0, b);
	cr_assert_eq(store_index_pending(st, 64, &done, &more), STORE_OK);
	cr_assert_eq(done, 0);
	cr_assert_not(more);
	cr_assert_eq(store_integrity_check(st), STORE_OK);
}

/* The server defers new mail: a search indexes it first; the CLI's view
 * (not deferred) indexes whatever it finds unindexed. */
Test(store_search, deferred_and_cli_catch_up)
{
	int64_t a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000), b;
	unsigned done = 99;
	bool more = true;

	make_v5();
	st = open_db_as(true);
	b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_search"), 0);
	EXPECT("привет", 0, b);               /* new since the open: indexed first */
	EXPECT("quarterly", 0);               /* old: waits for the back-fill */
	store_close(st);
	st = open_db_as(false);
	EXPECT("quarterly", 0, a);
	cr_assert_eq(store_index_pending(st, 64, &done, &more), STORE_OK);
	cr_assert_eq(done, 0);
	cr_assert_not(more);
}

/* store_index_backlog: what the server's slices (or a search) have not
 * reached of the mail stored since the open; never with the CLI's view,
 * whose searches index everything themselves. */
Test(store_search, index_backlog)
{
	int64_t a, b, c;
	unsigned done = 0;
	bool more = true;

	a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	cr_assert_not(store_index_backlog(st));
	store_close(st);
	st = open_db_as(true);
	cr_assert_not(store_index_backlog(st));        /* old mail is the back-fill's */
	b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714100000);
	cr_assert(store_index_backlog(st));
	cr_assert_eq(store_index_pending(st, 64, &done, &more), STORE_OK);
	cr_assert_eq(done, 1);
	cr_assert_not(store_index_backlog(st));
	c = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714200000);
	cr_assert(store_index_backlog(st));
	EXPECT("zebra", 0, b);                         /* a search catches up itself */
	cr_assert_not(store_index_backlog(st));
	EXPECT("quarterly", 0, c, a);
}

/* Index rows wait for the commit: a rollback leaves none, a message
 * deleted before they are written gets none, and a search sees every
 * committed message at once. */
Test(store_search, deferred_rows)
{
	int64_t a, b;

	cr_assert_eq(store_begin(st), STORE_OK);
	a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	store_rollback(st);
	EXPECT("quarterly", 0);
	EXPECT("", 0);
	cr_assert_eq(store_begin(st), STORE_OK);
	a = deliver(inbox_dev, msg_plain, one_rcpt, 1, 1714000000);
	b = deliver(inbox_dev, msg_cyrillic, one_rcpt, 1, 1714000000);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	EXPECT("quarterly", 0);
	EXPECT("zebra", 0, b);
	store_close(st);
	st = NULL;
	cr_assert_eq(raw_int("SELECT count(*) FROM body_fts"), 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_search"), 1);
	st = open_db();
}

/* What the fuzzer found: a needle after a stray continuation byte, and
 * control characters echoed into the one-line error. */
Test(msg_search, fuzz_findings)
{
	char f[16];
	size_t n = msg_search_fold("\x9e" "Ab", 3, f, sizeof(f));

	cr_assert(msg_search_contains("\x9e" "Ab", 3, f, n));
	cr_assert(msg_search_contains("x\x9e" "AB", 4, "\x9e" "ab", 3));
	parse_fails("before:\"2024\n01\"", "",
	    "bad date \"2024?01\" (use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS)");
}

/* The re-check of the search pool's rows: read state and keywords as
 * they are now decide; the terms a message cannot change are left to the
 * store (they held when it found the row). */
Test(msg_search, state_holds)
{
	struct msg_search *s = parse_ok("is:unread tag:Hot quarterly", "");

	cr_assert(msg_search_state_holds(s, false, "hot"));
	cr_assert(msg_search_state_holds(s, false, "$Forwarded HOT"));
	cr_assert_not(msg_search_state_holds(s, true, "hot"));
	cr_assert_not(msg_search_state_holds(s, false, "hotter"));
	cr_assert_not(msg_search_state_holds(s, false, ""));
	msg_search_free(s);
	s = parse_ok("-is:tagged is:read", "");
	cr_assert(msg_search_state_holds(s, true, ""));
	cr_assert_not(msg_search_state_holds(s, true, "x"));
	cr_assert_not(msg_search_state_holds(s, false, ""));
	msg_search_free(s);
	/* Unicode folding both ways; a keyword far longer than the tag. */
	s = parse_ok("tag:straße -tag:\xe2\x84\xaa" "elvin", "");
	cr_assert(msg_search_state_holds(s, false, "STRAẞE"));
	cr_assert_not(msg_search_state_holds(s, false, "STRAẞE kelvin"));
	cr_assert(msg_search_state_holds(s, false,
	    "straße kelvinkelvinkelvinkelvinkelvinkelvinkelvinkelvinkelvinkelvinkelvinkelvin"));
	msg_search_free(s);
	s = parse_ok("subject:x has:attachment", "");
	cr_assert(msg_search_state_holds(s, true, "anything"));
	msg_search_free(s);
}

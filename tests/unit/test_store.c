/*
 * The store's conformance suite, and the SQLite backend's own tests.
 *
 * Every CONFORMANCE test runs once for each backend in backend_cases and
 * goes through the public API only (include/mailsnare/store.h): a new
 * backend is one more entry there, and is done when the suite passes.
 * What the API cannot show (bytes kept after their last message went,
 * tombstones of deleted mailboxes) a backend may count for the suite
 * through its entry's `count`; NULL skips those checks. "Another process"
 * is a second store opened on the same database.
 *
 * The SQLite part at the end (suite store_sqlite) checks what only that
 * backend has: the schema version and its migration, WAL, file modes,
 * disk full and a lock held by another connection, through a raw SQLite
 * connection to the test's file.
 *
 * Each test works in its own directory under /tmp (made by setup, removed
 * by teardown).
 */
#include <criterion/criterion.h>
#include <criterion/parameterized.h>

#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mailsnare/store.h"

static char tmpdir[64];
static char dbpath[PATH_MAX];

static int rm_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb; (void)type; (void)ftw;
	return remove(path);
}

static void setup(void)
{
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/mailsnare-store-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(dbpath, sizeof(dbpath), "%s/mail.db", tmpdir);
}

static void teardown(void)
{
	nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(store, .init = setup, .fini = teardown);

/* ---- the SQLite backend, seen from beside it --------------------------- */

/* A value of one row from a raw connection to the test's db. */
static int64_t raw_int(const char *sql)
{
	sqlite3 *db;
	sqlite3_stmt *s;
	int64_t v;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_prepare_v2(db, sql, -1, &s, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	cr_assert_eq(sqlite3_step(s), SQLITE_ROW, "%s", sqlite3_errmsg(db));
	v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	sqlite3_close(db);
	return v;
}

static void raw_exec(const char *sql)
{
	sqlite3 *db;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	sqlite3_busy_timeout(db, 5000);
	cr_assert_eq(sqlite3_exec(db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK, "%s", sqlite3_errmsg(db));
	sqlite3_close(db);
}

/* What the API has no word for, counted by a backend for the suite. */
enum stored { STORED_BODIES, STORED_RCPTS, STORED_ORPHAN_TOMBSTONES };

static int64_t sqlite_count(enum stored what)
{
	switch (what) {
	case STORED_BODIES:
		return raw_int("SELECT count(*) FROM body");
	case STORED_RCPTS:
		return raw_int("SELECT count(*) FROM message_rcpt");
	case STORED_ORPHAN_TOMBSTONES:
		return raw_int("SELECT count(*) FROM expunged WHERE mailbox_id NOT IN"
		    " (SELECT id FROM mailbox)");
	}
	return -1;
}

/* ---- the backends the suite runs on ------------------------------------ */

struct backend_case {
	const char *name;                  /* store_options.backend */
	int64_t (*count)(enum stored what);   /* NULL: those checks skipped */
};

static struct backend_case backend_cases[] = {
	{ "sqlite", sqlite_count },
};
#define N_BACKEND_CASES (sizeof(backend_cases) / sizeof(backend_cases[0]))

static const struct backend_case *backend = &backend_cases[0];

/* The SQLite part runs on that backend only. */
static void sqlite_setup(void)
{
	size_t i;

	setup();
	for (i = 0; i < N_BACKEND_CASES; i++)
		if (strcmp(backend_cases[i].name, "sqlite") == 0)
			backend = &backend_cases[i];
	cr_assert_str_eq(backend->name, "sqlite");
}

TestSuite(store_sqlite, .init = sqlite_setup, .fini = teardown);

/* The parameter of each run: an index into backend_cases (Criterion
 * copies parameters into the test's process, where pointers of the
 * runner's would not hold). */
static int case_index[N_BACKEND_CASES];

static struct criterion_test_params backend_params(void)
{
	size_t i;

	for (i = 0; i < N_BACKEND_CASES; i++)
		case_index[i] = (int)i;
	return cr_make_param_array(int, case_index, N_BACKEND_CASES);
}

/* A test run once per backend (Criterion's parameterized tests): the
 * body sees the backend of this run in `backend`. */
#define CONFORMANCE(name, ...) \
	static void conformance_##name(void); \
	ParameterizedTestParameters(store, name) \
	{ \
		return backend_params(); \
	} \
	ParameterizedTest(int *bc, store, name, ##__VA_ARGS__) \
	{ \
		backend = &backend_cases[*bc]; \
		conformance_##name(); \
	} \
	static void conformance_##name(void)

static void expect_stored(enum stored what, int64_t n)
{
	int64_t got;

	if (backend->count == NULL)
		return;
	got = backend->count(what);
	cr_assert_eq(got, n, "stored (%d): %" PRId64 ", expected %" PRId64, (int)what, got, n);
}

/* ---- helpers ----------------------------------------------------------- */

struct names {
	char name[16][300];
	int n;
};

static int collect_mailbox(const struct store_mailbox *mb, void *arg)
{
	struct names *l = arg;

	cr_assert_lt(l->n, 16);
	snprintf(l->name[l->n++], sizeof(l->name[0]), "%s%s%s", mb->name, mb->special_use[0] ? " " : "",
	    mb->special_use);
	return 0;
}

static struct store *open_store_at(const char *path, enum durability durability,
    char *err, size_t errlen)
{
	return store_open(&(struct store_options){ .backend = backend->name, .path = path,
	    .durability = durability, .err = err, .errlen = errlen });
}

static struct store *open_store(void)
{
	char err[512] = "";
	struct store *st = open_store_at(dbpath, DURABILITY_NORMAL, err, sizeof(err));

	cr_assert_not_null(st, "store_open: %s", err);
	return st;
}

static struct store_inbox make_inbox(struct store *st, const char *name)
{
	struct store_inbox in;

	cr_assert_eq(store_inbox_add(st, name, "pw", &in), STORE_OK, "%s", store_errmsg(st));
	return in;
}

/* A source over memory; `step` bounds each read (0: as much as asked),
 * `fail_at` makes the read at that offset fail (SIZE_MAX: never). */
struct memsrc {
	const unsigned char *p;
	size_t len, off, step, fail_at;
};

static ssize_t mem_read(void *arg, void *buf, size_t len)
{
	struct memsrc *m = arg;
	size_t n = m->len - m->off;

	if (m->off >= m->fail_at)
		return -1;
	if (n > len)
		n = len;
	if (m->step != 0 && n > m->step)
		n = m->step;
	memcpy(buf, m->p + m->off, n);
	m->off += n;
	return (ssize_t)n;
}

static const char *const rcpts3[] = { "a@x.test", "b@y.test", "c@z.test" };

static struct store_new_message new_msg(int64_t inbox, struct memsrc *m, uint64_t size)
{
	struct store_new_message msg = {
		.inbox_id = inbox,
		.mail_from = "sender@app.test",
		.rcpts = rcpts3,
		.n_rcpts = 3,
		.auth_user = NULL,
		.client_addr = "127.0.0.1",
		.internal_date = 1700000000,
		.hdr_from = "App <sender@app.test>",
		.hdr_to = "a@x.test",
		.hdr_subject = "Hello",
		.hdr_date = NULL,
		.src = { .size = size, .read = mem_read, .arg = m },
	};
	return msg;
}

static int add_bytes(struct store *st, int64_t inbox, const void *p, size_t len, int64_t *id)
{
	struct memsrc m = { p, len, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(inbox, &m, len);

	return store_message_add(st, &msg, id);
}

static int64_t add_text(struct store *st, int64_t inbox, const char *text)
{
	int64_t id = 0;

	cr_assert_eq(add_bytes(st, inbox, text, strlen(text), &id), STORE_OK,
	    "%s", store_errmsg(st));
	cr_assert_gt(id, 0);
	return id;
}

struct buf {
	unsigned char *p;
	size_t len, cap, max_chunk;
};

static int buf_sink(void *arg, const void *data, size_t len)
{
	struct buf *b = arg;

	if (len > b->max_chunk)
		b->max_chunk = len;
	if (b->len + len > b->cap) {
		b->cap = (b->len + len) * 2;
		b->p = realloc(b->p, b->cap);
		cr_assert_not_null(b->p);
	}
	memcpy(b->p + b->len, data, len);
	b->len += len;
	return 0;
}

/* Collected message infos (strings copied: they live only in the callback). */
struct seen {
	int n;
	int64_t id[16];
	uint32_t uid[16];
	char inbox[16][64];
	char rcpts[16][128];
	char from[16][64];
	char auth[16][64];
	char date[16][64];
	uint64_t size[16];
};

static int collect(const struct store_message_info *m, void *arg)
{
	struct seen *s = arg;

	cr_assert_lt(s->n, 16);
	s->id[s->n] = m->id;
	s->uid[s->n] = m->uid;
	s->size[s->n] = m->size;
	snprintf(s->inbox[s->n], sizeof(s->inbox[0]), "%s", m->inbox);
	snprintf(s->rcpts[s->n], sizeof(s->rcpts[0]), "%s", m->rcpts);
	snprintf(s->from[s->n], sizeof(s->from[0]), "%s", m->mail_from);
	snprintf(s->auth[s->n], sizeof(s->auth[0]), "%s", m->auth_user);
	snprintf(s->date[s->n], sizeof(s->date[0]), "%s", m->hdr_date);
	s->n++;
	return 0;
}

static int count_all(struct store *st, const char *inbox)
{
	struct seen s = { 0 };

	cr_assert_eq(store_message_foreach(st, inbox, collect, &s), STORE_OK);
	return s.n;
}

static uint32_t uid_of(struct store *st, int64_t id)
{
	struct seen s = { 0 };

	cr_assert_eq(store_message_get_info(st, id, collect, &s), STORE_OK);
	return s.uid[0];
}

/* ---- inboxes ----------------------------------------------------------- */

CONFORMANCE(inbox_add_get_dup_del)
{
	struct store *st = open_store();
	struct store_inbox in, got;
	int64_t now = (int64_t)time(NULL);

	cr_assert_eq(store_inbox_add(st, "ci", "secret", &in), STORE_OK);
	cr_assert_gt(in.id, 0);
	cr_assert_str_eq(in.name, "ci");
	cr_assert_str_eq(in.password, "secret");
	cr_assert(in.created >= now - 5 && in.created <= now + 5);
	cr_assert_eq(in.messages, 0);

	cr_assert_eq(store_inbox_get(st, "ci", &got), STORE_OK);
	cr_assert_eq(got.id, in.id);
	cr_assert_str_eq(got.password, "secret");
	cr_assert_eq(got.created, in.created);

	cr_assert_eq(store_inbox_add(st, "ci", "other", NULL), STORE_EXISTS);
	cr_assert_eq(store_inbox_get(st, "nope", &got), STORE_NOTFOUND);

	cr_assert_eq(store_inbox_del(st, "ci"), STORE_OK);
	cr_assert_eq(store_inbox_get(st, "ci", &got), STORE_NOTFOUND);
	cr_assert_eq(store_inbox_del(st, "ci"), STORE_NOTFOUND);
	store_close(st);
}

CONFORMANCE(inbox_ensure_and_set_password)
{
	struct store *st = open_store();
	struct store_inbox a, b;

	cr_assert_eq(store_inbox_ensure(st, "fixture", "p1", &a), STORE_OK);
	cr_assert_str_eq(a.password, "p1");
	/* Existing: returned as is, password untouched. */
	cr_assert_eq(store_inbox_ensure(st, "fixture", "p2", &b), STORE_OK);
	cr_assert_eq(b.id, a.id);
	cr_assert_str_eq(b.password, "p1");

	cr_assert_eq(store_inbox_set_password(st, "fixture", "p3"), STORE_OK);
	cr_assert_eq(store_inbox_get(st, "fixture", &b), STORE_OK);
	cr_assert_str_eq(b.password, "p3");
	cr_assert_eq(store_inbox_set_password(st, "missing", "x"), STORE_NOTFOUND);

	char longpw[STORE_PASS_MAX + 1];
	memset(longpw, 'x', sizeof(longpw) - 1);
	longpw[sizeof(longpw) - 1] = '\0';
	cr_assert_eq(store_inbox_set_password(st, "fixture", longpw), STORE_ERR);
	store_close(st);
}

struct inbox_list {
	int n;
	char name[8][64];
	int64_t messages[8];
};

static int list_inbox(const struct store_inbox *in, void *arg)
{
	struct inbox_list *l = arg;

	cr_assert_lt(l->n, 8);
	snprintf(l->name[l->n], sizeof(l->name[0]), "%s", in->name);
	l->messages[l->n++] = in->messages;
	return 0;
}

static int stop_at_first(const struct store_inbox *in, void *arg)
{
	(*(int *)arg)++;
	return 7;
}

CONFORMANCE(inbox_foreach_by_name_with_counts)
{
	struct store *st = open_store();
	struct store_inbox zeta = make_inbox(st, "zeta"), ci = make_inbox(st, "ci");
	struct inbox_list l = { 0 };
	struct store_inbox got;
	struct store_mailbox mb;
	int calls = 0;

	make_inbox(st, "alpha");
	add_text(st, ci.id, "one\r\n");
	add_text(st, ci.id, "two\r\n");
	add_text(st, zeta.id, "three\r\n");

	cr_assert_eq(store_inbox_foreach(st, list_inbox, &l), STORE_OK);
	cr_assert_eq(l.n, 3);
	cr_assert_str_eq(l.name[0], "alpha");
	cr_assert_str_eq(l.name[1], "ci");
	cr_assert_str_eq(l.name[2], "zeta");
	cr_assert_eq(l.messages[0], 0);
	cr_assert_eq(l.messages[1], 2);
	cr_assert_eq(l.messages[2], 1);

	cr_assert_eq(store_inbox_get(st, "ci", &got), STORE_OK);
	cr_assert_eq(got.id, ci.id);
	cr_assert_eq(store_mailbox_get(st, ci.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(mb.messages, 2);

	cr_assert_eq(store_inbox_foreach(st, stop_at_first, &calls), 7);
	cr_assert_eq(calls, 1);
	store_close(st);
}

CONFORMANCE(inbox_name_validation)
{
	char name63[64], name64[65];

	memset(name63, 'a', 63);
	name63[63] = '\0';
	memset(name64, 'a', 64);
	name64[64] = '\0';
	cr_assert(store_inbox_name_valid("dev"));
	cr_assert(store_inbox_name_valid("a"));
	cr_assert(store_inbox_name_valid("ci-1234_x.y@z"));
	cr_assert(store_inbox_name_valid("b\xc3\xa4r"));   /* UTF-8 */
	cr_assert(store_inbox_name_valid(name63));
	cr_assert_not(store_inbox_name_valid(name64));
	cr_assert_not(store_inbox_name_valid(""));
	cr_assert_not(store_inbox_name_valid(NULL));
	cr_assert_not(store_inbox_name_valid("a/b"));
	cr_assert_not(store_inbox_name_valid(".hidden"));
	cr_assert_not(store_inbox_name_valid("tab\there"));
	cr_assert_not(store_inbox_name_valid("nl\n"));
	cr_assert_not(store_inbox_name_valid("del\x7f"));

	struct store *st = open_store();
	cr_assert_eq(store_inbox_add(st, "a/b", "pw", NULL), STORE_ERR);
	cr_assert_eq(store_inbox_add(st, name64, "pw", NULL), STORE_ERR);
	store_close(st);
}

/* ---- messages ---------------------------------------------------------- */

CONFORMANCE(message_roundtrip_small)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	const char *text = "Subject: Hello\r\n\r\nbody\r\n";
	struct buf b = { 0 };
	int64_t id = add_text(st, in.id, text);

	cr_assert_eq(store_message_read(st, id, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, strlen(text));
	cr_assert_eq(memcmp(b.p, text, b.len), 0);
	free(b.p);
	store_close(st);
}

CONFORMANCE(message_empty)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct buf b = { 0 };
	int64_t id = 0;

	cr_assert_eq(add_bytes(st, in.id, "", 0, &id), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_message_read(st, id, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 0);
	free(b.p);
	store_close(st);
}

CONFORMANCE(message_roundtrip_5mib_binary)
{
	const size_t len = 5 * 1024 * 1024 + 123;
	unsigned char *data = malloc(len);
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	uint32_t x = 12345;
	struct buf b = { 0 };
	int64_t id = 0;
	size_t i;

	cr_assert_not_null(data);
	for (i = 0; i < len; i++) {
		x = x * 1103515245u + 12345u;
		data[i] = (unsigned char)(x >> 16);
	}
	memcpy(data, "Subject: \xc3\xbc\xe2\x82\xac\r\n\r\n\0\0", 19);   /* UTF-8 and NULs */
	data[len - 1] = '\0';

	/* An odd read size: chunks from the source do not line up with 64 KiB. */
	struct memsrc m = { data, len, 0, 7777, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, len);
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK, "%s", store_errmsg(st));

	cr_assert_eq(store_message_read(st, id, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, len);
	cr_assert_eq(memcmp(b.p, data, len), 0);
	cr_assert_leq(b.max_chunk, 64 * 1024, "sink got %zu bytes at once", b.max_chunk);

	struct seen s = { 0 };
	cr_assert_eq(store_message_get_info(st, id, collect, &s), STORE_OK);
	cr_assert_eq(s.size[0], len);
	free(b.p);
	free(data);
	store_close(st);
}

static int stop_sink(void *arg, const void *data, size_t len)
{
	(*(int *)arg)++;
	return 42;
}

CONFORMANCE(message_read_sink_stops)
{
	static unsigned char big[200000];
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t id = 0;
	int calls = 0;

	cr_assert_eq(add_bytes(st, in.id, big, sizeof(big), &id), STORE_OK);
	cr_assert_eq(store_message_read(st, id, stop_sink, &calls), 42);
	cr_assert_eq(calls, 1);
	store_close(st);
}

/* A failed add leaves no message, body or recipient, and no UID used. */
static void assert_nothing_stored(struct store *st)
{
	struct store_inbox in;
	struct store_mailbox mb;

	cr_assert_eq(count_all(st, NULL), 0);
	expect_stored(STORED_BODIES, 0);
	expect_stored(STORED_RCPTS, 0);
	cr_assert_eq(store_inbox_get(st, "dev", &in), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(mb.uidnext, 1);
}

CONFORMANCE(source_shorter_than_announced)
{
	static unsigned char data[100000];
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct memsrc m = { data, 70000, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, sizeof(data));
	int64_t id = 0;

	cr_assert_eq(store_message_add(st, &msg, &id), STORE_ERR);
	cr_assert_eq(id, 0);
	assert_nothing_stored(st);
	/* The store goes on working: the next message gets UID 1. */
	id = add_text(st, in.id, "ok\r\n");
	cr_assert_eq(uid_of(st, id), 1);
	store_close(st);
}

CONFORMANCE(source_longer_than_announced)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct memsrc m = { (const unsigned char *)"0123456789", 10, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, 5);

	cr_assert_eq(store_message_add(st, &msg, NULL), STORE_ERR);
	assert_nothing_stored(st);
	store_close(st);
}

CONFORMANCE(source_read_error)
{
	static unsigned char data[300000];
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct memsrc m = { data, sizeof(data), 0, 0, 150000 };
	struct store_new_message msg = new_msg(in.id, &m, sizeof(data));

	cr_assert_eq(store_message_add(st, &msg, NULL), STORE_ERR);
	assert_nothing_stored(st);
	store_close(st);
}

CONFORMANCE(failed_add_inside_transaction_keeps_the_others)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct memsrc m = { (const unsigned char *)"short", 5, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, 50);
	int64_t a, b;

	cr_assert_eq(store_begin(st), STORE_OK);
	a = add_text(st, in.id, "first\r\n");
	cr_assert_eq(store_message_add(st, &msg, NULL), STORE_ERR);
	b = add_text(st, in.id, "second\r\n");
	cr_assert_eq(store_commit(st), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(count_all(st, NULL), 2);
	cr_assert_eq(uid_of(st, a), 1);
	cr_assert_eq(uid_of(st, b), 2);
	expect_stored(STORED_BODIES, 2);
	store_close(st);
}

CONFORMANCE(add_to_missing_inbox)
{
	struct store *st = open_store();
	int64_t id = 0;

	cr_assert_eq(add_bytes(st, 999, "x", 1, &id), STORE_NOTFOUND);
	expect_stored(STORED_BODIES, 0);
	store_close(st);
}

CONFORMANCE(uids_ascending_never_reused)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t a = add_text(st, in.id, "1"), b = add_text(st, in.id, "2");
	int64_t c = add_text(st, in.id, "3"), d;
	struct store_mailbox mb;
	unsigned flags = 99;
	uint64_t modseq;

	cr_assert_eq(uid_of(st, a), 1);
	cr_assert_eq(uid_of(st, b), 2);
	cr_assert_eq(uid_of(st, c), 3);
	cr_assert_lt(a, b);
	cr_assert_lt(b, c);
	/* Delete the newest: neither its UID nor its id comes back. */
	cr_assert_eq(store_message_del(st, c), STORE_OK);
	cr_assert_eq(store_message_del(st, c), STORE_NOTFOUND);
	d = add_text(st, in.id, "4");
	cr_assert_eq(uid_of(st, d), 4);
	cr_assert_gt(d, c);
	/* Four additions and the delete each took a modseq (from 1). */
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(mb.highestmodseq, 6);
	cr_assert_neq(mb.uidvalidity, 0);
	cr_assert_eq(store_message_state(st, a, &flags, NULL, 0, &modseq), STORE_OK);
	cr_assert_eq(flags, 0);
	store_close(st);
}

CONFORMANCE(message_foreach_envelope)
{
	struct store *st = open_store();
	struct store_inbox ci = make_inbox(st, "ci"), dev = make_inbox(st, "dev");
	struct memsrc m = { (const unsigned char *)"hello", 5, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(ci.id, &m, 5);
	struct seen s = { 0 };
	int64_t a = 0, b, c;

	msg.auth_user = "ci";
	cr_assert_eq(store_message_add(st, &msg, &a), STORE_OK);
	b = add_text(st, dev.id, "two");
	c = add_text(st, ci.id, "three");

	cr_assert_eq(store_message_foreach(st, NULL, collect, &s), STORE_OK);
	cr_assert_eq(s.n, 3);
	cr_assert_eq(s.id[0], a);
	cr_assert_eq(s.id[1], b);
	cr_assert_eq(s.id[2], c);
	cr_assert_str_eq(s.inbox[1], "dev");

	memset(&s, 0, sizeof(s));
	cr_assert_eq(store_message_foreach(st, "ci", collect, &s), STORE_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.id[0], a);
	cr_assert_eq(s.id[1], c);
	cr_assert_str_eq(s.inbox[0], "ci");
	cr_assert_str_eq(s.rcpts[0], "a@x.test, b@y.test, c@z.test");
	cr_assert_str_eq(s.from[0], "sender@app.test");
	cr_assert_str_eq(s.auth[0], "ci");
	cr_assert_str_eq(s.auth[1], "");     /* no AUTH */
	cr_assert_str_eq(s.date[0], "");     /* header absent */
	cr_assert_eq(s.size[0], 5);

	cr_assert_eq(store_message_foreach(st, "nope", collect, &s), STORE_NOTFOUND);
	store_close(st);
}

static int check_info(const struct store_message_info *m, void *arg)
{
	cr_assert_str_eq(m->inbox, "dev");
	cr_assert_str_eq(m->mailbox, "INBOX");
	cr_assert_eq(m->uid, 1);
	cr_assert_eq(m->flags, 0);
	cr_assert_eq(m->internal_date, 1700000000);
	cr_assert_str_eq(m->client_addr, "127.0.0.1");
	cr_assert_str_eq(m->hdr_from, "App <sender@app.test>");
	cr_assert_str_eq(m->hdr_to, "a@x.test");
	cr_assert_str_eq(m->hdr_subject, "Hello");
	cr_assert_str_eq(m->hdr_date, "");
	cr_assert_str_eq(m->rcpts, "");
	(*(int *)arg)++;
	return 0;
}

CONFORMANCE(get_info_fields_and_missing)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct memsrc m = { (const unsigned char *)"x", 1, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, 1);
	struct buf b = { 0 };
	int64_t id = 0;
	int calls = 0;

	msg.n_rcpts = 0;
	msg.rcpts = NULL;
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK);
	cr_assert_eq(store_message_get_info(st, id, check_info, &calls), STORE_OK);
	cr_assert_eq(calls, 1);

	cr_assert_eq(store_message_get_info(st, id + 100, check_info, &calls), STORE_NOTFOUND);
	cr_assert_eq(store_message_read(st, id + 100, buf_sink, &b), STORE_NOTFOUND);
	cr_assert_eq(store_message_del(st, id + 100), STORE_NOTFOUND);
	cr_assert_eq(calls, 1);
	store_close(st);
}

/* A callback may use the store, even the query it is called from. */
struct nested {
	struct store *st;
	int inner;
	size_t bytes;
};

static int nested_cb(const struct store_message_info *m, void *arg)
{
	struct nested *n = arg;
	struct buf b = { 0 };
	struct seen s = { 0 };

	cr_assert_eq(store_message_foreach(n->st, NULL, collect, &s), STORE_OK);
	n->inner += s.n;
	cr_assert_eq(store_message_read(n->st, m->id, buf_sink, &b), STORE_OK);
	n->bytes += b.len;
	free(b.p);
	return 0;
}

CONFORMANCE(callbacks_may_reenter)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct nested n = { st, 0, 0 };

	add_text(st, in.id, "abc");
	add_text(st, in.id, "defg");
	cr_assert_eq(store_message_foreach(st, "dev", nested_cb, &n), STORE_OK);
	cr_assert_eq(n.inner, 4);
	cr_assert_eq(n.bytes, 7);
	store_close(st);
}

CONFORMANCE(prune_keeps_newest)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev"), other = make_inbox(st, "other");
	struct seen s = { 0 };
	int i;

	for (i = 0; i < 5; i++)
		add_text(st, in.id, "m");
	add_text(st, other.id, "o");
	cr_assert_eq(store_inbox_prune(st, in.id, 10), STORE_OK);
	cr_assert_eq(count_all(st, "dev"), 5);
	cr_assert_eq(store_inbox_prune(st, in.id, 2), STORE_OK);
	cr_assert_eq(store_message_foreach(st, "dev", collect, &s), STORE_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.uid[0], 4);
	cr_assert_eq(s.uid[1], 5);
	cr_assert_eq(count_all(st, "other"), 1);
	expect_stored(STORED_BODIES, 3);
	store_close(st);
}

/* A large excess goes STORE_PRUNE_STEP at a time, oldest first. */
CONFORMANCE(prune_in_steps)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct seen s = { 0 };
	int i;

	cr_assert_eq(store_begin(st), STORE_OK);
	for (i = 0; i < STORE_PRUNE_STEP + 12; i++)
		add_text(st, in.id, "m");
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_inbox_prune(st, in.id, 2), STORE_MORE);
	cr_assert_eq(count_all(st, "dev"), 12);
	cr_assert_eq(store_inbox_prune(st, in.id, 2), STORE_OK);
	cr_assert_eq(store_inbox_prune(st, in.id, 2), STORE_OK);
	cr_assert_eq(store_message_foreach(st, "dev", collect, &s), STORE_OK);
	cr_assert_eq(s.n, 2);
	cr_assert_eq(s.uid[0], STORE_PRUNE_STEP + 11);
	cr_assert_eq(s.uid[1], STORE_PRUNE_STEP + 12);
	store_close(st);
}

CONFORMANCE(del_inbox_messages)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t n = -1;

	add_text(st, in.id, "a");
	add_text(st, in.id, "b");
	cr_assert_eq(store_message_del_inbox(st, "dev", &n), STORE_OK);
	cr_assert_eq(n, 2);
	cr_assert_eq(count_all(st, "dev"), 0);
	expect_stored(STORED_BODIES, 0);
	cr_assert_eq(store_message_del_inbox(st, "nope", &n), STORE_NOTFOUND);
	/* UIDs go on after the mailbox was emptied. */
	cr_assert_eq(uid_of(st, add_text(st, in.id, "c")), 3);
	store_close(st);
}

CONFORMANCE(inbox_del_cascades)
{
	struct store *st = open_store();
	struct store_inbox ci = make_inbox(st, "ci"), dev = make_inbox(st, "dev");
	struct names ml = { .n = 0 };

	add_text(st, ci.id, "a");
	add_text(st, ci.id, "b");
	add_text(st, dev.id, "c");
	expect_stored(STORED_RCPTS, 9);
	cr_assert_eq(store_inbox_del(st, "ci"), STORE_OK);
	cr_assert_eq(store_mailbox_list(st, ci.id, collect_mailbox, &ml), STORE_OK);
	cr_assert_eq(ml.n, 0, "the inbox's mailboxes went with it");
	cr_assert_eq(store_mailbox_list(st, dev.id, collect_mailbox, &ml), STORE_OK);
	cr_assert_eq(ml.n, 5);
	cr_assert_eq(count_all(st, NULL), 1);
	expect_stored(STORED_BODIES, 1);
	expect_stored(STORED_RCPTS, 3);
	cr_assert_eq(count_all(st, "dev"), 1);
	store_close(st);
}


/* ---- notifications ----------------------------------------------------- */

struct events {
	int n;
	int64_t inbox[8], mailbox[8], message[8];
};

static void on_change(void *arg, enum store_change what, int64_t inbox_id, int64_t mailbox_id,
    int64_t message_id)
{
	struct events *e = arg;

	cr_assert_eq(what, STORE_CHANGE_NEW);
	cr_assert_lt(e->n, 8);
	e->inbox[e->n] = inbox_id;
	e->mailbox[e->n] = mailbox_id;
	e->message[e->n++] = message_id;
}

CONFORMANCE(notifications_after_commit_only)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct events e1 = { 0 }, e2 = { 0 };
	int64_t a, b, c, d;
	struct store_mailbox mb;
	int64_t mbox;

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	mbox = mb.id;
	cr_assert_eq(store_subscribe(st, on_change, &e1), STORE_OK);
	cr_assert_eq(store_subscribe(st, on_change, &e2), STORE_OK);

	cr_assert_eq(store_begin(st), STORE_OK);
	a = add_text(st, in.id, "a");
	b = add_text(st, in.id, "b");
	cr_assert_eq(e1.n, 0);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(e1.n, 2);
	cr_assert_eq(e2.n, 2);
	cr_assert_eq(e1.message[0], a);
	cr_assert_eq(e1.message[1], b);
	cr_assert_eq(e1.mailbox[0], mbox);
	cr_assert_eq(e1.inbox[0], in.id);

	cr_assert_eq(store_begin(st), STORE_OK);
	c = add_text(st, in.id, "c");
	store_rollback(st);
	cr_assert_eq(e1.n, 2);
	cr_assert_eq(store_message_get_info(st, c, collect, &(struct seen){ 0 }), STORE_NOTFOUND);
	cr_assert_eq(store_commit(st), STORE_ERR);       /* none open */
	cr_assert_eq(e1.n, 2);

	/* Autocommit: right away. */
	d = add_text(st, in.id, "d");
	cr_assert_eq(e1.n, 3);
	cr_assert_eq(e1.message[2], d);

	store_unsubscribe(st, on_change, &e1);
	add_text(st, in.id, "e");
	cr_assert_eq(e1.n, 3);
	cr_assert_eq(e2.n, 4);
	store_close(st);
}

CONFORMANCE(nested_begin_refused)
{
	struct store *st = open_store();

	cr_assert_eq(store_begin(st), STORE_OK);
	cr_assert_eq(store_begin(st), STORE_ERR);
	cr_assert_eq(store_commit(st), STORE_OK);
	store_close(st);
}

/* ---- files, persistence, errors ---------------------------------------- */


CONFORMANCE(persists_across_reopen)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev"), got;
	struct store_mailbox mb;
	struct buf b = { 0 };
	int64_t id = add_text(st, in.id, "persist me\r\n");

	cr_assert_eq(store_integrity_check(st), 0);
	store_close(st);

	st = open_store();
	cr_assert_eq(store_inbox_get(st, "dev", &got), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, got.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(mb.messages, 1);
	cr_assert_eq(store_message_read(st, id, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 12);
	cr_assert_eq(memcmp(b.p, "persist me\r\n", 12), 0);
	/* UIDs continue. */
	cr_assert_eq(uid_of(st, add_text(st, in.id, "2")), 2);
	free(b.p);
	store_close(st);
}






/* ---- mailbox state for POP3 and IMAP ----------------------------------- */

struct msgs {
	struct store_msg m[8];
	char kw[8][64];       /* m[i].keywords points here after the callback */
	int n;
};

static int collect_msg(const struct store_msg *m, void *arg)
{
	struct msgs *l = arg;

	cr_assert_lt(l->n, 8);
	snprintf(l->kw[l->n], sizeof(l->kw[0]), "%s", m->keywords);
	l->m[l->n] = *m;
	l->m[l->n].keywords = l->kw[l->n];
	l->n++;
	return 0;
}

struct kinds {
	enum store_change what[8];
	int64_t inbox[8], mailbox[8], message[8];
	int n;
};

static void on_any_change(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct kinds *k = arg;

	cr_assert_lt(k->n, 8);
	k->what[k->n] = what;
	k->inbox[k->n] = inbox_id;
	k->mailbox[k->n] = mailbox_id;
	k->message[k->n++] = message_id;
}

/* ---- retention (max-age) and space --------------------------------------- */

static int64_t add_dated(struct store *st, int64_t inbox, int64_t mailbox, int64_t date,
    size_t size)
{
	static unsigned char body[256 * 1024];
	struct memsrc m = { body, size, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(inbox, &m, size);
	int64_t id = 0;

	cr_assert_leq(size, sizeof(body));
	memset(body, 'x', size);
	msg.mailbox_id = mailbox;
	msg.internal_date = date;
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK, "%s", store_errmsg(st));
	return id;
}

/* Older than `before` goes, from every INBOX and only there, each as a
 * STORE_CHANGE_PRUNE; STORE_MORE while a step removed some. */
CONFORMANCE(prune_older_by_internal_date)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev"), other = make_inbox(st, "other");
	struct store_mailbox keep;
	struct kinds k = { .n = 0 };
	uint64_t n = 0, total = 0;
	int rc, steps = 0;

	cr_assert_eq(store_mailbox_create(st, in.id, "Keep", &keep), STORE_OK);
	add_dated(st, in.id, 0, 100, 10);
	add_dated(st, in.id, 0, 200, 10);
	add_dated(st, in.id, 0, 300, 10);
	add_dated(st, other.id, 0, 100, 10);
	add_dated(st, in.id, keep.id, 1, 10);
	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	while ((rc = store_prune_older(st, 250, &n)) == STORE_MORE) {
		cr_assert_gt(n, 0);
		total += n;
		cr_assert_lt(++steps, 10);
	}
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(n, 0);
	cr_assert_eq(total, 3);
	cr_assert_eq(k.n, 3);
	for (int i = 0; i < k.n; i++)
		cr_assert_eq(k.what[i], STORE_CHANGE_PRUNE);
	cr_assert_eq(count_all(st, "dev"), 2);       /* 300 in INBOX, 1 in Keep */
	cr_assert_eq(count_all(st, "other"), 0);
	store_unsubscribe(st, on_any_change, &k);
	store_close(st);
}

/* A step looks at STORE_PRUNE_STEP messages at most. */
CONFORMANCE(prune_older_in_steps)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	uint64_t n = 0;

	cr_assert_eq(store_begin(st), STORE_OK);
	for (int i = 0; i < STORE_PRUNE_STEP + 5; i++)
		add_dated(st, in.id, 0, 10, 1);
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_prune_older(st, 20, &n), STORE_MORE);
	cr_assert_eq(n, STORE_PRUNE_STEP);
	cr_assert_eq(store_prune_older(st, 20, &n), STORE_MORE);
	cr_assert_eq(n, 5);
	cr_assert_eq(store_prune_older(st, 20, &n), STORE_OK);
	cr_assert_eq(count_all(st, "dev"), 0);
	store_close(st);
}

/* max-messages' pruning is a prune too (HTTP's `prune` events). */
CONFORMANCE(prune_by_count_is_a_prune)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct kinds k = { .n = 0 };

	add_text(st, in.id, "a");
	add_text(st, in.id, "b");
	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	cr_assert_eq(store_inbox_prune(st, in.id, 1), STORE_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_eq(k.what[0], STORE_CHANGE_PRUNE);
	store_unsubscribe(st, on_any_change, &k);
	store_close(st);
}

struct counts {
	int n;
	char name[4][64];
	int64_t messages[4], unread[4];
};

static int on_count(const char *name, int64_t messages, int64_t unread, void *arg)
{
	struct counts *c = arg;

	cr_assert_lt(c->n, 4);
	snprintf(c->name[c->n], sizeof(c->name[0]), "%s", name);
	c->messages[c->n] = messages;
	c->unread[c->n++] = unread;
	return 0;
}

CONFORMANCE(inbox_counts)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox keep;
	struct counts c = { 0 };
	int64_t id;

	make_inbox(st, "empty");
	cr_assert_eq(store_mailbox_create(st, in.id, "Keep", &keep), STORE_OK);
	id = add_text(st, in.id, "a");
	add_text(st, in.id, "b");
	add_dated(st, in.id, keep.id, 5, 3);
	cr_assert_eq(store_message_set_flags(st, id, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(store_inbox_counts(st, on_count, &c), STORE_OK);
	cr_assert_eq(c.n, 2);
	cr_assert_str_eq(c.name[0], "dev");
	cr_assert_eq(c.messages[0], 3);
	cr_assert_eq(c.unread[0], 2);
	cr_assert_str_eq(c.name[1], "empty");
	cr_assert_eq(c.messages[1], 0);
	cr_assert_eq(c.unread[1], 0);
	store_close(st);
}

/* A new file gives pages back: deleting leaves free pages, vacuum steps
 * return them to the file system, a bounded number each. */
CONFORMANCE(space_and_incremental_vacuum)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_space before, mid, after;
	int64_t ids[8];
	int steps = 0;

	for (int i = 0; i < 8; i++)
		ids[i] = add_dated(st, in.id, 0, 100, 200 * 1024);
	cr_assert_eq(store_space(st, &before), STORE_OK);
	cr_assert(before.incremental);
	cr_assert_gt(before.page_size, 0);
	for (int i = 0; i < 8; i++)
		cr_assert_eq(store_message_del(st, ids[i]), STORE_OK);
	cr_assert_eq(store_space(st, &mid), STORE_OK);
	cr_assert_gt(mid.free_pages, 8 * 200 * 1024 / mid.page_size / 2);
	cr_assert_eq(store_vacuum_step(st, 16), STORE_OK);
	cr_assert_eq(store_space(st, &after), STORE_OK);
	cr_assert_eq(after.free_pages, mid.free_pages - 16);
	while (after.free_pages > 0) {
		cr_assert_eq(store_vacuum_step(st, 64), STORE_OK);
		cr_assert_eq(store_space(st, &after), STORE_OK);
		cr_assert_lt(++steps, 1000);
	}
	cr_assert_lt(after.pages, before.pages - 8 * 200 * 1024 / before.page_size / 2);
	store_close(st);
}

CONFORMANCE(mailbox_get_and_foreach)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox mb;
	struct msgs l = { .n = 0 };
	int64_t a = add_text(st, in.id, "first\r\n"), b = add_text(st, in.id, "second!\r\n");

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_str_eq(mb.name, "INBOX");
	cr_assert_eq(mb.inbox_id, in.id);
	cr_assert_neq(mb.uidvalidity, 0);
	cr_assert_eq(mb.uidnext, 3);
	cr_assert_eq(mb.messages, 2);
	cr_assert_eq(store_mailbox_get(st, in.id, "Nope", &mb), STORE_NOTFOUND);
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_mailbox_foreach(st, mb.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(l.m[0].id, a);
	cr_assert_eq(l.m[0].uid, 1);
	cr_assert_eq(l.m[0].size, 7);
	cr_assert_eq(l.m[1].id, b);
	cr_assert_eq(l.m[1].uid, 2);
	cr_assert_eq(l.m[1].size, 9);
	cr_assert_gt(l.m[1].modseq, l.m[0].modseq);
	store_close(st);
}

CONFORMANCE(set_flags_bumps_modseq_and_notifies)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox before, after;
	struct msgs l = { .n = 0 };
	struct kinds k = { .n = 0 };
	int64_t id = add_text(st, in.id, "x\r\n");

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &before), STORE_OK);
	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	cr_assert_eq(store_message_set_flags(st, id, STORE_FLAG_SEEN | STORE_FLAG_FLAGGED, 0),
	    STORE_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_eq(k.what[0], STORE_CHANGE_FLAGS);
	cr_assert_eq(k.message[0], id);
	cr_assert_eq(store_message_set_flags(st, id, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(k.n, 1, "no change, no notification");
	cr_assert_eq(store_message_set_flags(st, id, 0, STORE_FLAG_FLAGGED), STORE_OK);
	cr_assert_eq(k.n, 2);
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &after), STORE_OK);
	cr_assert_eq(after.highestmodseq, before.highestmodseq + 2);
	cr_assert_eq(store_mailbox_foreach(st, after.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.m[0].flags, STORE_FLAG_SEEN);
	cr_assert_eq(l.m[0].modseq, after.highestmodseq);
	/* A message another session removed: nothing to do, no error. */
	cr_assert_eq(store_message_set_flags(st, id + 100, STORE_FLAG_SEEN, 0), STORE_OK);
	store_close(st);
}

CONFORMANCE(deletes_notify_expunge)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct kinds k = { .n = 0 };
	int64_t a = add_text(st, in.id, "a"), b = add_text(st, in.id, "b");
	int64_t n = 0;

	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	cr_assert_eq(k.n, 1);
	cr_assert_eq(k.what[0], STORE_CHANGE_EXPUNGE);
	cr_assert_eq(k.message[0], a);
	cr_assert_eq(store_message_del_inbox(st, "dev", &n), STORE_OK);
	cr_assert_eq(n, 1);
	cr_assert_eq(k.n, 2);
	cr_assert_eq(k.message[1], b);
	store_close(st);
}

CONFORMANCE(read_range_clips)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct buf b = { 0 };
	int64_t id = add_text(st, in.id, "0123456789");

	cr_assert_eq(store_message_read_range(st, id, 3, 4, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 4);
	cr_assert_arr_eq(b.p, "3456", 4);
	b.len = 0;
	cr_assert_eq(store_message_read_range(st, id, 8, 100, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 2);
	cr_assert_arr_eq(b.p, "89", 2);
	b.len = 0;
	cr_assert_eq(store_message_read_range(st, id, 50, 10, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 0);
	cr_assert_eq(store_message_read_range(st, id + 1, 0, 1, buf_sink, &b), STORE_NOTFOUND);
	free(b.p);
	store_close(st);
}

/* ---- IMAP mailboxes and message state ---------------------------------- */

static int collect_name(const char *name, void *arg)
{
	struct names *l = arg;

	cr_assert_lt(l->n, 16);
	snprintf(l->name[l->n++], sizeof(l->name[0]), "%s", name);
	return 0;
}

CONFORMANCE(new_inbox_has_special_use_mailboxes)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct names l = { .n = 0 }, subs = { .n = 0 };

	cr_assert_eq(store_mailbox_list(st, in.id, collect_mailbox, &l), STORE_OK);
	cr_assert_eq(l.n, 5);
	cr_assert_str_eq(l.name[0], "Drafts \\Drafts");
	cr_assert_str_eq(l.name[1], "INBOX");
	cr_assert_str_eq(l.name[2], "Junk \\Junk");
	cr_assert_str_eq(l.name[3], "Sent \\Sent");
	cr_assert_str_eq(l.name[4], "Trash \\Trash");
	cr_assert_eq(store_subscription_list(st, in.id, collect_name, &subs), STORE_OK);
	cr_assert_eq(subs.n, 5);
	store_close(st);
}

CONFORMANCE(mailbox_create_rename_delete)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox a, b, child;
	struct names l = { .n = 0 };

	cr_assert_eq(store_mailbox_create(st, in.id, "Work", &a), STORE_OK);
	cr_assert_eq(store_mailbox_create(st, in.id, "Work/Q1", &child), STORE_OK);
	cr_assert_eq(store_mailbox_create(st, in.id, "Work", NULL), STORE_EXISTS);
	cr_assert_neq(a.uidvalidity, child.uidvalidity);
	cr_assert_eq(store_subscription_set(st, in.id, "Work/Q1", true), STORE_OK);
	cr_assert_eq(store_mailbox_rename(st, in.id, "Work", "Jobs"), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "Jobs/Q1", &b), STORE_OK);
	cr_assert_eq(b.id, child.id);
	cr_assert_eq(store_mailbox_get(st, in.id, "Work", &b), STORE_NOTFOUND);
	cr_assert_eq(store_subscription_list(st, in.id, collect_name, &l), STORE_OK);
	cr_assert_str_eq(l.name[l.n - 1], "Work/Q1", "subscriptions are not renamed");
	cr_assert_eq(store_mailbox_rename(st, in.id, "Jobs", "Sent"), STORE_EXISTS);
	cr_assert_eq(store_mailbox_rename(st, in.id, "Nope", "Other"), STORE_NOTFOUND);
	cr_assert_eq(store_mailbox_delete(st, child.id), STORE_OK);
	cr_assert_eq(store_mailbox_get_by_id(st, child.id, &b), STORE_NOTFOUND);
	store_close(st);
}

CONFORMANCE(rename_inbox_moves_messages)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox inbox, old;
	struct msgs l = { .n = 0 };
	struct kinds k = { .n = 0 };
	int64_t a = add_text(st, in.id, "a");

	add_text(st, in.id, "b");
	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	cr_assert_eq(store_mailbox_rename(st, in.id, "INBOX", "Old"), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &inbox), STORE_OK);
	cr_assert_eq(inbox.messages, 0);
	cr_assert_eq(store_mailbox_get(st, in.id, "Old", &old), STORE_OK);
	cr_assert_eq(old.messages, 2);
	cr_assert_eq(old.uidnext, 3, "counters go along, so UIDs stay valid there");
	cr_assert_eq(store_mailbox_foreach(st, old.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.m[0].id, a);
	cr_assert_eq(k.n, 4);
	cr_assert_eq(k.what[0], STORE_CHANGE_EXPUNGE);
	cr_assert_eq(k.what[1], STORE_CHANGE_NEW);
	/* New mail still goes to INBOX. */
	add_text(st, in.id, "c");
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &inbox), STORE_OK);
	cr_assert_eq(inbox.messages, 1);
	store_close(st);
}

CONFORMANCE(status_and_recent)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox mb;
	struct store_mailbox_status ms;
	uint32_t above = 99;
	int64_t a = add_text(st, in.id, "12345");

	add_text(st, in.id, "123");
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_message_set_flags(st, a, STORE_FLAG_SEEN | STORE_FLAG_DELETED, 0),
	    STORE_OK);
	cr_assert_eq(store_mailbox_status(st, mb.id, &ms), STORE_OK);
	cr_assert_eq(ms.messages, 2);
	cr_assert_eq(ms.unseen, 1);
	cr_assert_eq(ms.deleted, 1);
	cr_assert_eq(ms.size, 8);
	cr_assert_eq(ms.uidnext, 3);
	cr_assert_eq(store_mailbox_claim_recent(st, mb.id, &above), STORE_OK);
	cr_assert_eq(above, 0, "both are recent for the first claimer");
	cr_assert_eq(store_mailbox_claim_recent(st, mb.id, &above), STORE_OK);
	cr_assert_eq(above, 2, "none for the next");
	add_text(st, in.id, "new");
	cr_assert_eq(store_mailbox_claim_recent(st, mb.id, &above), STORE_OK);
	cr_assert_eq(above, 2, "uid 3 is recent");
	store_close(st);
}

CONFORMANCE(copy_and_move)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox inbox, trash;
	struct msgs l = { .n = 0 };
	struct buf b = { 0 };
	const char *kw[] = { "$Label1" };
	int64_t a = add_text(st, in.id, "copy me\r\n"), copy = 0;
	uint32_t uid = 0;

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &inbox), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "Trash", &trash), STORE_OK);
	cr_assert_eq(store_message_store(st, a, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, kw, 1, 0,
	    NULL), STORE_OK);
	cr_assert_eq(store_message_copy(st, a, trash.id, &copy, &uid), STORE_OK);
	cr_assert_eq(uid, 1);
	cr_assert_neq(copy, a);
	cr_assert_eq(store_mailbox_foreach(st, trash.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 1);
	cr_assert_eq(l.m[0].flags, STORE_FLAG_FLAGGED);
	cr_assert_str_eq(l.m[0].keywords, "$Label1");
	cr_assert_eq(store_message_read(st, copy, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, 9);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	b.len = 0;
	cr_assert_eq(store_message_read(st, copy, buf_sink, &b), STORE_OK, "the body is shared");
	cr_assert_eq(b.len, 9);
	cr_assert_eq(store_message_move(st, copy, inbox.id, &uid), STORE_OK);
	cr_assert_eq(uid, 2, "a new UID in the destination");
	cr_assert_eq(store_mailbox_status(st, trash.id, &(struct store_mailbox_status){ 0 }),
	    STORE_OK);
	cr_assert_eq(store_message_copy(st, a, trash.id, NULL, NULL), STORE_NOTFOUND);
	free(b.p);
	store_close(st);
}

CONFORMANCE(store_flags_keywords_unchangedsince)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	const char *kw[] = { "$Junk", "todo" }, *rm[] = { "todo" };
	char kwbuf[64];
	unsigned flags = 0;
	uint64_t ms1 = 0, ms2 = 0, now = 0;
	int64_t a = add_text(st, in.id, "x");

	cr_assert_eq(store_message_store(st, a, STORE_FLAGS_SET, STORE_FLAG_SEEN, kw, 2, 0, &ms1),
	    STORE_OK);
	cr_assert_eq(store_message_state(st, a, &flags, kwbuf, sizeof(kwbuf), &now), STORE_OK);
	cr_assert_eq(flags, STORE_FLAG_SEEN);
	cr_assert_str_eq(kwbuf, "$Junk todo");
	cr_assert_eq(now, ms1);
	cr_assert_eq(store_message_store(st, a, STORE_FLAGS_REMOVE, 0, rm, 1, 0, &ms2), STORE_OK);
	cr_assert_gt(ms2, ms1);
	cr_assert_eq(store_message_state(st, a, &flags, kwbuf, sizeof(kwbuf), NULL), STORE_OK);
	cr_assert_str_eq(kwbuf, "$Junk");
	/* Unchanged since an older modseq: refused, nothing changes. */
	cr_assert_eq(store_message_store(st, a, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0, ms1,
	    &now), STORE_MODIFIED);
	cr_assert_eq(now, ms2);
	cr_assert_eq(store_message_state(st, a, &flags, NULL, 0, NULL), STORE_OK);
	cr_assert_eq(flags, STORE_FLAG_SEEN);
	cr_assert_eq(store_message_store(st, a, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, NULL, 0, ms2,
	    &now), STORE_OK);
	cr_assert_eq(store_message_store(st, a + 9, STORE_FLAGS_ADD, 1, NULL, 0, 0, NULL),
	    STORE_NOTFOUND);
	store_close(st);
}

CONFORMANCE(structure_blob)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t a = add_text(st, in.id, "x");
	void *blob = (void *)1;
	size_t len = 7;

	cr_assert_eq(store_message_structure(st, a, &blob, &len), STORE_OK);
	cr_assert_null(blob);
	cr_assert_eq(len, 0);
	cr_assert_eq(store_message_set_structure(st, a, "\x01\x02\x00\x03", 4), STORE_OK);
	cr_assert_eq(store_message_structure(st, a, &blob, &len), STORE_OK);
	cr_assert_eq(len, 4);
	cr_assert_arr_eq(blob, "\x01\x02\x00\x03", 4);
	free(blob);
	cr_assert_eq(store_message_structure(st, a + 1, &blob, &len), STORE_NOTFOUND);
	store_close(st);
}

struct uids {
	uint32_t uid[8];
	int n;
};

static int collect_uid(uint32_t uid, void *arg)
{
	struct uids *u = arg;

	cr_assert_lt(u->n, 8);
	u->uid[u->n++] = uid;
	return 0;
}

CONFORMANCE(vanished_after_delete_and_move)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox inbox, trash, after;
	struct uids u = { .n = 0 };
	int64_t a = add_text(st, in.id, "a"), b = add_text(st, in.id, "b");

	add_text(st, in.id, "c");
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &inbox), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "Trash", &trash), STORE_OK);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	cr_assert_eq(store_message_move(st, b, trash.id, NULL), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &after), STORE_OK);
	cr_assert_eq(after.highestmodseq, inbox.highestmodseq + 2, "each removal takes a modseq");
	cr_assert_eq(store_mailbox_vanished(st, inbox.id, inbox.highestmodseq, collect_uid, &u),
	    STORE_OK);
	cr_assert_eq(u.n, 2);
	cr_assert_eq(u.uid[0], 1);
	cr_assert_eq(u.uid[1], 2);
	u.n = 0;
	cr_assert_eq(store_mailbox_vanished(st, inbox.id, after.highestmodseq - 1, collect_uid, &u),
	    STORE_OK);
	cr_assert_eq(u.n, 1, "only the move is newer");
	cr_assert_eq(u.uid[0], 2);
	u.n = 0;
	cr_assert_eq(store_mailbox_vanished(st, trash.id, 0, collect_uid, &u), STORE_OK);
	cr_assert_eq(u.n, 0);
	cr_assert_eq(store_mailbox_delete(st, trash.id), STORE_OK);
	expect_stored(STORED_ORPHAN_TOMBSTONES, 0);
	store_close(st);
}

CONFORMANCE(changes_since_modseq)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox mb;
	struct msgs l = { .n = 0 };
	struct store_mailbox_state state;
	uint64_t mark, now;
	uint32_t recent;
	int64_t a = add_text(st, in.id, "a\r\n");

	add_text(st, in.id, "b\r\n");
	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_mailbox_state(st, mb.id, &state), STORE_OK);
	mark = state.highestmodseq;
	recent = state.recent_above;
	cr_assert_eq(mark, mb.highestmodseq);
	cr_assert_eq(state.uidvalidity, mb.uidvalidity);
	cr_assert_eq(recent, 0, "nobody claimed \\Recent yet");
	cr_assert_eq(store_mailbox_changes(st, mb.id, mark, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 0, "nothing since the mark");
	cr_assert_eq(store_message_set_flags(st, a, STORE_FLAG_SEEN, 0), STORE_OK);
	int64_t c = add_text(st, in.id, "c\r\n");
	cr_assert_eq(store_mailbox_changes(st, mb.id, mark, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 2, "the flag change and the new message, not the untouched one");
	cr_assert_eq(l.m[0].id, a);
	cr_assert_eq(l.m[0].flags, STORE_FLAG_SEEN);
	cr_assert_eq(l.m[1].id, c);
	cr_assert_eq(l.m[1].uid, 3);
	cr_assert_eq(store_mailbox_state(st, mb.id, &state), STORE_OK);
	now = state.highestmodseq;
	cr_assert_eq(now, mark + 2);
	cr_assert_eq(store_mailbox_claim_recent(st, mb.id, &recent), STORE_OK);
	cr_assert_eq(store_mailbox_state(st, mb.id, &state), STORE_OK);
	cr_assert_eq(state.recent_above, 3, "the watermark moved to the last UID");
	struct store_mailbox scratch;
	cr_assert_eq(store_mailbox_create(st, in.id, "Scratch", &scratch), STORE_OK);
	cr_assert_eq(store_mailbox_state(st, scratch.id, &state), STORE_OK);
	cr_assert_eq(store_mailbox_delete(st, scratch.id), STORE_OK);
	cr_assert_eq(store_mailbox_state(st, scratch.id, &state), STORE_NOTFOUND,
	    "a deleted mailbox: the view must drop everything");
	store_close(st);
}

CONFORMANCE(poll_sees_other_connections_only)
{
	struct store *st = open_store(), *other;
	struct store_inbox in = make_inbox(st, "dev");
	struct kinds k = { .n = 0 };
	int64_t id;

	cr_assert_eq(store_subscribe(st, on_any_change, &k), STORE_OK);
	cr_assert_eq(store_poll_external(st), false, "nothing yet");
	id = add_text(st, in.id, "own\r\n");
	k.n = 0;
	cr_assert_eq(store_poll_external(st), false, "its own commits are notified already");
	other = open_store();     /* the CLI, from its own process */
	cr_assert_eq(store_message_set_flags(other, id, STORE_FLAG_SEEN, 0), STORE_OK);
	store_close(other);
	cr_assert_eq(store_poll_external(st), true, "another process committed");
	cr_assert_eq(k.n, 1);
	cr_assert_eq(k.what[0], STORE_CHANGE_EXTERNAL);
	cr_assert_eq(k.inbox[0], 0);
	cr_assert_eq(k.mailbox[0], 0);
	cr_assert_eq(k.message[0], 0);
	cr_assert_eq(store_poll_external(st), false, "once per change");
	store_close(st);
}

/* store_mailbox_foreach answers from a cached copy after the first read:
 * it must follow every kind of change, also another process's. */
CONFORMANCE(cached_list_follows_changes)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox mb;
	struct msgs l = { .n = 0 };
	const char *kw[] = { "$Label1" };
	int64_t a = add_text(st, in.id, "a\r\n"), b = add_text(st, in.id, "b\r\n");
	int64_t c = add_text(st, in.id, "c\r\n"), d;
	struct store *other;

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_mailbox_foreach(st, mb.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 3);
	cr_assert_eq(store_message_store(st, c, STORE_FLAGS_ADD, STORE_FLAG_FLAGGED, kw, 1, 0, NULL),
	    STORE_OK);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	other = open_store();     /* the CLI, from its own process */
	cr_assert_eq(store_message_del(other, b), STORE_OK);
	store_close(other);
	d = add_text(st, in.id, "d\r\n");
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, mb.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 2);
	cr_assert_eq(l.m[0].id, c);
	cr_assert_eq(l.m[0].flags, STORE_FLAG_FLAGGED);
	cr_assert_str_eq(l.m[0].keywords, "$Label1");
	cr_assert_eq(l.m[1].id, d);
	cr_assert_eq(l.m[1].uid, 4);
	/* A write undone: its row must not stay in the copy. */
	cr_assert_eq(store_begin(st), STORE_OK);
	add_text(st, in.id, "rolled back\r\n");
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, mb.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 3, "the open transaction's row is visible to its connection");
	store_rollback(st);
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, mb.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 2);
	/* A deleted mailbox lists nothing. */
	struct store_mailbox scratch;
	cr_assert_eq(store_mailbox_create(st, in.id, "Scratch", &scratch), STORE_OK);
	cr_assert_eq(store_message_copy(st, c, scratch.id, NULL, NULL), STORE_OK);
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, scratch.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 1);
	cr_assert_str_eq(l.m[0].keywords, "$Label1", "keywords are copied");
	cr_assert_eq(store_mailbox_delete(st, scratch.id), STORE_OK);
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, scratch.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 0);
	/* Created again, perhaps under the same id: a list of its own. */
	struct store_mailbox again;
	cr_assert_eq(store_mailbox_create(st, in.id, "Scratch", &again), STORE_OK);
	cr_assert_neq(again.uidvalidity, scratch.uidvalidity);
	l.n = 0;
	cr_assert_eq(store_mailbox_foreach(st, again.id, collect_msg, &l), STORE_OK);
	cr_assert_eq(l.n, 0, "nothing of the deleted mailbox");
	store_close(st);
}
/* ---- the message listing (store_message_query) ------------------------- */

struct spec {
	const char *from, *to, *subject;   /* headers; NULL: absent */
	const char *mail_from, *rcpt;      /* envelope; NULL: defaults */
	size_t size;                       /* bytes of the message */
	int64_t date;                      /* arrival; 0: 1700000000 */
	bool attachment;
	unsigned flags;                    /* set after the add */
};

static int64_t add_spec(struct store *st, int64_t inbox, const struct spec *sp)
{
	static unsigned char body[4096];
	size_t len = sp->size != 0 ? sp->size : 10;
	struct memsrc m = { body, len, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(inbox, &m, len);
	const char *rcpt[1] = { sp->rcpt };
	int64_t id = 0;

	cr_assert_leq(len, sizeof(body));
	memset(body, 'x', len);
	msg.hdr_from = sp->from;
	msg.hdr_to = sp->to;
	msg.hdr_subject = sp->subject;
	if (sp->mail_from != NULL)
		msg.mail_from = sp->mail_from;
	if (sp->rcpt != NULL) {
		msg.rcpts = rcpt;
		msg.n_rcpts = 1;
	}
	if (sp->date != 0)
		msg.internal_date = sp->date;
	msg.has_attachment = sp->attachment;
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK, "%s", store_errmsg(st));
	if (sp->flags != 0)
		cr_assert_eq(store_message_set_flags(st, id, sp->flags, 0), STORE_OK);
	return id;
}

struct rows {
	int64_t id[32], inbox[32], mailbox[32];
	bool attachment[32];
	int n;
};

static int collect_row(const struct store_message_info *m, void *arg)
{
	struct rows *r = arg;

	cr_assert_lt(r->n, 32);
	r->inbox[r->n] = m->inbox_id;
	r->mailbox[r->n] = m->mailbox_id;
	r->attachment[r->n] = m->has_attachment;
	r->id[r->n++] = m->id;
	return 0;
}

static int count_rows(const struct store_message_info *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 0;
}

/* Runs q; checks the rows are `want` (n ids, in that order) and the total. */
static void expect_query(struct store *st, const struct store_query *q, uint64_t total,
    const int64_t *want, int n)
{
	struct rows r = { .n = 0 };
	uint64_t got = 12345;
	int i;

	cr_assert_eq(store_message_query(st, q, collect_row, &r, &got), STORE_OK, "%s",
	    store_errmsg(st));
	cr_assert_eq(got, total, "total %" PRIu64 ", expected %" PRIu64, got, total);
	cr_assert_eq(r.n, n, "%d rows, expected %d", r.n, n);
	for (i = 0; i < n; i++)
		cr_assert_eq(r.id[i], want[i], "row %d: id %" PRId64 ", expected %" PRId64, i,
		    r.id[i], want[i]);
}

#define EXPECT_QUERY(st, q, total, ...) do { \
	const int64_t want_[] = { __VA_ARGS__ }; \
	expect_query((st), (q), (total), want_, (int)(sizeof(want_) / sizeof(want_[0]))); \
} while (0)

CONFORMANCE(query_pages_newest_first)
{
	struct store *st = open_store();
	struct store_inbox a = make_inbox(st, "a"), b = make_inbox(st, "b");
	struct store_mailbox trash;
	struct store_query q = { .inbox_id = a.id, .limit = 3 };
	struct rows r = { .n = 0 };
	int64_t x[8], y[2];
	uint64_t total = 0;
	int i;

	for (i = 0; i < 7; i++) {
		x[i + 1] = add_text(st, a.id, "a\r\n");
		if (i == 2 || i == 4)
			y[i / 4] = add_text(st, b.id, "b\r\n");
	}
	/* A message moved to another mailbox of the inbox is still its. */
	cr_assert_eq(store_mailbox_get(st, a.id, "Trash", &trash), STORE_OK);
	cr_assert_eq(store_message_move(st, x[3], trash.id, NULL), STORE_OK);

	EXPECT_QUERY(st, &q, 7, x[7], x[6], x[5]);
	q.before_id = x[5];
	EXPECT_QUERY(st, &q, 7, x[4], x[3], x[2]);
	q.before_id = x[2];
	EXPECT_QUERY(st, &q, 7, x[1]);
	q.before_id = x[1];
	expect_query(st, &q, 7, NULL, 0);
	/* after: the messages just above it, still newest first. */
	q.before_id = 0;
	q.after_id = x[1];
	EXPECT_QUERY(st, &q, 7, x[4], x[3], x[2]);
	q.after_id = x[4];
	q.limit = 0;
	EXPECT_QUERY(st, &q, 7, x[7], x[6], x[5]);
	q.after_id = x[2];
	q.before_id = x[6];
	EXPECT_QUERY(st, &q, 7, x[5], x[4], x[3]);
	/* Every inbox. */
	q = (struct store_query){ .limit = 0 };
	EXPECT_QUERY(st, &q, 9, x[7], x[6], y[1], x[5], x[4], y[0], x[3], x[2], x[1]);
	q.limit = 2;
	q.before_id = y[1];
	EXPECT_QUERY(st, &q, 9, x[5], x[4]);
	/* Rows say where they are; the total may be left out. */
	q = (struct store_query){ .inbox_id = b.id };
	cr_assert_eq(store_message_query(st, &q, collect_row, &r, NULL), STORE_OK);
	cr_assert_eq(r.n, 2);
	cr_assert_eq(r.id[0], y[1]);
	cr_assert_eq(r.inbox[0], b.id);
	q.inbox_id = a.id;
	q.limit = 1;
	q.before_id = x[4];
	r.n = 0;
	cr_assert_eq(store_message_query(st, &q, collect_row, &r, &total), STORE_OK);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.id[0], x[3]);
	cr_assert_eq(r.inbox[0], a.id);
	cr_assert_eq(r.mailbox[0], trash.id);
	/* A missing inbox has nothing; the callback's non-zero return stops. */
	q = (struct store_query){ .inbox_id = 999 };
	expect_query(st, &q, 0, NULL, 0);
	store_close(st);
}

static int stop_row(const struct store_message_info *m, void *arg)
{
	(void)m;
	(*(int *)arg)++;
	return 7;
}

CONFORMANCE(query_filters)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev"), other = make_inbox(st, "other");
	struct store_query q = { .inbox_id = in.id };
	int64_t m1, m2, m3, m4, m5;
	int calls = 0;

	m1 = add_spec(st, in.id, &(struct spec){ .from = "Alice <alice@app.test>",
	    .to = "bob@x.test", .subject = "Welcome aboard", .size = 100, .date = 1000,
	    .flags = STORE_FLAG_SEEN });
	m2 = add_spec(st, in.id, &(struct spec){ .from = "Carol <carol@app.test>",
	    .to = "Dave <dave@y.test>", .subject = "Invoice 100%", .size = 2000, .date = 2000,
	    .attachment = true, .flags = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED });
	m3 = add_spec(st, in.id, &(struct spec){ .from = NULL, .to = NULL,
	    .subject = "Invoice 1000", .mail_from = "bounce@alice.test",
	    .rcpt = "hidden@z.test", .size = 3000, .date = 3000 });
	m4 = add_spec(st, in.id, &(struct spec){ .from = "ALICE@APP.TEST", .to = "eve@x.test",
	    .subject = NULL, .size = 4000, .date = 4000, .attachment = true,
	    .flags = STORE_FLAG_ANSWERED });
	m5 = add_spec(st, other.id, &(struct spec){ .from = "alice@app.test",
	    .subject = "Welcome aboard", .size = 100, .date = 1000 });

	EXPECT_QUERY(st, &q, 4, m4, m3, m2, m1);
	/* Read state and flags. */
	q.flags_clear = STORE_FLAG_SEEN;
	EXPECT_QUERY(st, &q, 2, m4, m3);
	q.flags_clear = 0;
	q.flags_set = STORE_FLAG_SEEN;
	EXPECT_QUERY(st, &q, 2, m2, m1);
	q.flags_set = STORE_FLAG_SEEN | STORE_FLAG_FLAGGED;
	EXPECT_QUERY(st, &q, 1, m2);
	q.flags_set = STORE_FLAG_SEEN;
	q.flags_clear = STORE_FLAG_FLAGGED;
	EXPECT_QUERY(st, &q, 1, m1);
	q = (struct store_query){ .inbox_id = in.id, .flags_set = STORE_FLAG_DELETED };
	expect_query(st, &q, 0, NULL, 0);
	/* From: the header or the envelope sender, any case. */
	q = (struct store_query){ .inbox_id = in.id, .from = "alice" };
	EXPECT_QUERY(st, &q, 3, m4, m3, m1);
	q.from = "Alice@App";
	EXPECT_QUERY(st, &q, 2, m4, m1);
	q.from = "bounce@";
	EXPECT_QUERY(st, &q, 1, m3);
	q.from = "nobody";
	expect_query(st, &q, 0, NULL, 0);
	/* To: the header or an envelope recipient. */
	q = (struct store_query){ .inbox_id = in.id, .to = "@x.test" };
	EXPECT_QUERY(st, &q, 3, m4, m2, m1);       /* m2: an envelope recipient a@x.test */
	q.to = "DAVE";
	EXPECT_QUERY(st, &q, 1, m2);
	q.to = "hidden@z";
	EXPECT_QUERY(st, &q, 1, m3);
	/* Subject: a substring, no wildcards. */
	q = (struct store_query){ .inbox_id = in.id, .subject = "invoice" };
	EXPECT_QUERY(st, &q, 2, m3, m2);
	q.subject = "100%";
	EXPECT_QUERY(st, &q, 1, m2);
	q.subject = "1_0";
	expect_query(st, &q, 0, NULL, 0);
	q.subject = "";
	EXPECT_QUERY(st, &q, 4, m4, m3, m2, m1);   /* "": no filter */
	/* Size and date ranges, inclusive. */
	q = (struct store_query){ .inbox_id = in.id, .size_min = 2000 };
	EXPECT_QUERY(st, &q, 3, m4, m3, m2);
	q.size_max = 3000;
	EXPECT_QUERY(st, &q, 2, m3, m2);
	q = (struct store_query){ .inbox_id = in.id, .size_max = 100 };
	EXPECT_QUERY(st, &q, 1, m1);
	q = (struct store_query){ .inbox_id = in.id, .date_min = 2000, .date_max = 3000 };
	EXPECT_QUERY(st, &q, 2, m3, m2);
	q = (struct store_query){ .inbox_id = in.id, .date_max = 1999 };
	EXPECT_QUERY(st, &q, 1, m1);
	q = (struct store_query){ .inbox_id = in.id, .date_min = 4001 };
	expect_query(st, &q, 0, NULL, 0);
	/* Attachments. */
	q = (struct store_query){ .inbox_id = in.id, .has_attachment = 1 };
	EXPECT_QUERY(st, &q, 2, m4, m2);
	q.has_attachment = -1;
	EXPECT_QUERY(st, &q, 2, m3, m1);
	/* Filters together, over every inbox, paged. */
	q = (struct store_query){ .from = "alice", .flags_clear = STORE_FLAG_FLAGGED,
	    .size_max = 3000, .limit = 2 };
	EXPECT_QUERY(st, &q, 3, m5, m3);
	q.before_id = m3;
	EXPECT_QUERY(st, &q, 3, m1);
	/* A copy keeps what the listing filters on. */
	struct store_mailbox trash;
	cr_assert_eq(store_mailbox_get(st, other.id, "Trash", &trash), STORE_OK);
	int64_t copy = 0;
	cr_assert_eq(store_message_copy(st, m2, trash.id, &copy, NULL), STORE_OK);
	q = (struct store_query){ .inbox_id = other.id, .has_attachment = 1, .subject = "100%" };
	EXPECT_QUERY(st, &q, 1, copy);
	/* The callback stops the listing. */
	q = (struct store_query){ .inbox_id = in.id };
	cr_assert_eq(store_message_query(st, &q, stop_row, &calls, NULL), 7);
	cr_assert_eq(calls, 1);
	store_close(st);
}

CONFORMANCE(info_says_where_and_attachment)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_mailbox mb;
	struct rows r = { .n = 0 };
	int64_t id = add_spec(st, in.id, &(struct spec){ .attachment = true });

	cr_assert_eq(store_mailbox_get(st, in.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_message_get_info(st, id, collect_row, &r), STORE_OK);
	cr_assert_eq(r.n, 1);
	cr_assert_eq(r.inbox[0], in.id);
	cr_assert_eq(r.mailbox[0], mb.id);
	cr_assert_eq(r.attachment[0], true);
	store_close(st);
}

/* ---- notifications per inbox ------------------------------------------- */

CONFORMANCE(subscribe_one_inbox)
{
	struct store *st = open_store(), *other;
	struct store_inbox a = make_inbox(st, "a"), b = make_inbox(st, "b");
	struct store_mailbox trash;
	struct kinds all = { .n = 0 }, only_b = { .n = 0 };
	int64_t x = add_text(st, a.id, "x\r\n"), y;

	cr_assert_eq(store_subscribe(st, on_any_change, &all), STORE_OK);
	cr_assert_eq(store_subscribe_inbox(st, b.id, on_any_change, &only_b), STORE_OK);
	cr_assert_neq(store_subscribe_inbox(st, 0, on_any_change, &only_b), STORE_OK);
	y = add_text(st, b.id, "y\r\n");
	cr_assert_eq(store_message_set_flags(st, x, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(store_mailbox_get(st, b.id, "Trash", &trash), STORE_OK);
	cr_assert_eq(store_message_move(st, y, trash.id, NULL), STORE_OK);
	cr_assert_eq(store_message_del(st, x), STORE_OK);
	cr_assert_eq(all.n, 5);
	cr_assert_eq(all.what[0], STORE_CHANGE_NEW);
	cr_assert_eq(all.inbox[0], b.id);
	cr_assert_eq(all.what[1], STORE_CHANGE_FLAGS);
	cr_assert_eq(all.inbox[1], a.id);
	cr_assert_eq(all.what[4], STORE_CHANGE_EXPUNGE);
	cr_assert_eq(all.inbox[4], a.id);
	cr_assert_eq(all.message[4], x);
	cr_assert_eq(only_b.n, 3, "only b's: the new one and the move out and in");
	cr_assert_eq(only_b.what[0], STORE_CHANGE_NEW);
	cr_assert_eq(only_b.what[1], STORE_CHANGE_EXPUNGE);
	cr_assert_eq(only_b.what[2], STORE_CHANGE_NEW);
	cr_assert_eq(only_b.mailbox[2], trash.id);
	cr_assert_eq(only_b.inbox[1], b.id);
	cr_assert_eq(only_b.inbox[2], b.id);
	/* Everyone hears that anything may have changed. */
	other = open_store();
	add_text(other, a.id, "from elsewhere\r\n");
	store_close(other);
	cr_assert_eq(store_poll_external(st), true);
	cr_assert_eq(only_b.n, 4);
	cr_assert_eq(only_b.what[3], STORE_CHANGE_EXTERNAL);
	cr_assert_eq(only_b.inbox[3], 0);
	store_unsubscribe(st, on_any_change, &only_b);
	add_text(st, b.id, "z\r\n");
	cr_assert_eq(only_b.n, 4);
	cr_assert_eq(all.n, 7);
	store_close(st);
}

CONFORMANCE(backend_is_listed)
{
	const char *const *names = store_backends();
	bool found = false;
	char err[128] = "";
	size_t i;

	cr_assert_not_null(names[0]);
	for (i = 0; names[i] != NULL; i++)
		found = found || strcmp(names[i], backend->name) == 0;
	cr_assert(found, "backend %s not in store_backends()", backend->name);
	cr_assert_null(store_open(&(struct store_options){ .backend = "nope", .path = dbpath,
	    .err = err, .errlen = sizeof(err) }));
	cr_assert_str_eq(err, "no store backend 'nope'");
}

/* What one client can make is bounded per inbox: LIST over them stays cheap. */
CONFORMANCE(mailbox_and_subscription_limits)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev"), other = make_inbox(st, "other");
	char name[32];
	uint32_t i;

	cr_assert_eq(store_begin(st), STORE_OK);
	/* An inbox starts with INBOX and four special-use mailboxes, each
	 * subscribed. */
	for (i = 5; i < STORE_MAX_MAILBOXES; i++) {
		snprintf(name, sizeof(name), "m%u", i);
		cr_assert_eq(store_mailbox_create(st, in.id, name, NULL), STORE_OK, "%s", name);
	}
	for (i = 5; i < STORE_MAX_SUBSCRIPTIONS; i++) {
		snprintf(name, sizeof(name), "s%u", i);
		cr_assert_eq(store_subscription_set(st, in.id, name, true), STORE_OK, "%s", name);
	}
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(store_mailbox_create(st, in.id, "one-more", NULL), STORE_LIMIT);
	cr_assert_eq(store_subscription_set(st, in.id, "one-more", true), STORE_LIMIT);
	/* Unsubscribing still works at the limit, and makes room. */
	cr_assert_eq(store_subscription_set(st, in.id, "s5", false), STORE_OK);
	cr_assert_eq(store_subscription_set(st, in.id, "one-more", true), STORE_OK);
	/* The bound is per inbox. */
	cr_assert_eq(store_mailbox_create(st, other.id, "fine", NULL), STORE_OK);
	cr_assert_eq(store_subscription_set(st, other.id, "fine", true), STORE_OK);
	store_close(st);
}

/* ==== the SQLite backend's own tests ==================================== */

/* The schema's version, and WAL (readers never wait for the writer). */
Test(store_sqlite, schema_version_and_wal)
{
	struct store *st = open_store();

	make_inbox(st, "dev");
	store_close(st);
	cr_assert_eq(raw_int("PRAGMA user_version"), 10);
	cr_assert_eq(raw_int("SELECT count(*) FROM pragma_journal_mode WHERE journal_mode = 'wal'"), 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM sqlite_master WHERE type = 'index'"
	    " AND name = 'message_mailbox_id'"), 1);
}

/* What schema 7 added: its triggers, columns and table. */
/* What migration 9 -> 10 makes (the search's covering index and trigram
 * index), and schema 9's index back. */
#define DROP_SCHEMA_10 "DROP TRIGGER body_tri_gc; DROP TABLE body_tri; DROP INDEX message_search;" \
	" CREATE INDEX message_body ON message(body_id);"
/* What migration 8 -> 9 makes (bodies purged in steps), and schema 8's
 * trigger back. */
#define DROP_SCHEMA_9 "DROP TABLE body_purge; DROP TRIGGER message_body_gc;" \
	" CREATE TRIGGER message_body_gc AFTER DELETE ON message BEGIN" \
	" DELETE FROM body WHERE id = OLD.body_id" \
	" AND NOT EXISTS (SELECT 1 FROM message WHERE body_id = OLD.body_id); END;"
/* What migration 7 -> 8 makes (staged bodies). */
#define DROP_SCHEMA_8 "DROP TRIGGER body_more_gc; DROP TABLE body_more;"
#define DROP_SCHEMA_7 \
	"DROP TRIGGER message_count_add; DROP TRIGGER message_count_del;" \
	" DROP TRIGGER message_count_upd; DROP TRIGGER keyword_count_add;" \
	" DROP TRIGGER keyword_count_del; DROP TABLE keyword_count;" \
	" ALTER TABLE mailbox DROP COLUMN n_messages; ALTER TABLE mailbox DROP COLUMN n_unseen;"

static int collect_keyword(const char *name, uint64_t count, void *arg)
{
	char *out = arg;
	size_t len = strlen(out);

	snprintf(out + len, 256 - len, "%s%s=%" PRIu64, len ? " " : "", name, count);
	return 0;
}

/* store_scope_counts and store_keyword_counts agree with a count of the
 * rows themselves. */
static void assert_counts(struct store *st, int64_t inbox_id, uint64_t messages,
    uint64_t unseen, const char *keywords)
{
	uint64_t m = 99, u = 99;
	char kw[256] = "";

	cr_assert_eq(store_scope_counts(st, inbox_id, &m, &u), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(m, messages, "messages %" PRIu64 ", expected %" PRIu64, m, messages);
	cr_assert_eq(u, unseen, "unseen %" PRIu64 ", expected %" PRIu64, u, unseen);
	cr_assert_eq(store_keyword_counts(st, collect_keyword, kw), STORE_OK);
	cr_assert_str_eq(kw, keywords);
}

/* The kept counts follow every change: delivery, flags, keywords, copy,
 * move, delete, a mailbox's and an inbox's deletion. */
Test(store_sqlite, kept_counts)
{
	struct store *st = open_store();
	struct store_inbox a = make_inbox(st, "a"), b = make_inbox(st, "b");
	const char *kw[] = { "red", "blue" };
	struct store_mailbox mb;
	int64_t id1 = add_text(st, a.id, "1\r\n"), id2 = add_text(st, a.id, "2\r\n");
	int64_t id3 = add_text(st, b.id, "3\r\n"), copy = 0;
	uint32_t uid;

	assert_counts(st, 0, 3, 3, "");
	assert_counts(st, a.id, 2, 2, "");
	cr_assert_eq(store_message_set_flags(st, id1, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(store_message_set_flags(st, id1, STORE_FLAG_FLAGGED, 0), STORE_OK);
	assert_counts(st, a.id, 2, 1, "");
	cr_assert_eq(store_message_store(st, id2, STORE_FLAGS_ADD, 0, kw, 2, 0, NULL), STORE_OK);
	cr_assert_eq(store_message_store(st, id3, STORE_FLAGS_ADD, 0, kw, 1, 0, NULL), STORE_OK);
	assert_counts(st, 0, 3, 2, "blue=1 red=2");
	cr_assert_eq(store_mailbox_create(st, a.id, "Archive", &mb), STORE_OK);
	cr_assert_eq(store_message_copy(st, id2, mb.id, &copy, &uid), STORE_OK);
	assert_counts(st, a.id, 3, 2, "blue=2 red=3");
	cr_assert_eq(store_message_move(st, id1, mb.id, &uid), STORE_OK);
	assert_counts(st, a.id, 3, 2, "blue=2 red=3");
	cr_assert_eq(store_message_store(st, id2, STORE_FLAGS_REMOVE, STORE_FLAG_SEEN, kw, 1,
	    0, NULL), STORE_OK);
	assert_counts(st, 0, 4, 3, "blue=2 red=2");
	cr_assert_eq(store_message_del(st, id3), STORE_OK);
	assert_counts(st, 0, 3, 2, "blue=2 red=1");
	cr_assert_eq(store_mailbox_delete(st, mb.id), STORE_OK);
	assert_counts(st, a.id, 1, 1, "blue=1");
	cr_assert_eq(store_inbox_del(st, "a"), STORE_OK);
	assert_counts(st, 0, 0, 0, "");
	assert_counts(st, b.id, 0, 0, "");
	store_close(st);
}

/* LIST's pages: by name after the last one, at most the limit, each name
 * once even when one is renamed between pages; STATUS from the kept
 * counts agrees with the counted ones; a child is found by its prefix
 * only ("a/..." under "a", not "a-b" nor "ab"). */
Test(store_sqlite, list_pages_counts_children)
{
	struct store *st = open_store();
	struct store_inbox a = make_inbox(st, "a");
	struct store_mailbox_status full, kept;
	struct store_mailbox mb;
	struct names l = { .n = 0 }, subs = { .n = 0 };
	unsigned rows = 0;
	bool yes = true;
	int64_t id = add_text(st, a.id, "1\r\n");

	cr_assert_eq(store_mailbox_page(st, a.id, "", 2, collect_mailbox, &l, &rows), STORE_OK);
	cr_assert_eq(rows, 2);
	cr_assert_str_eq(l.name[1], "INBOX");
	cr_assert_eq(store_mailbox_rename(st, a.id, "Drafts", "Zed"), STORE_OK);
	cr_assert_eq(store_mailbox_page(st, a.id, "INBOX", 10, collect_mailbox, &l, &rows),
	    STORE_OK);
	cr_assert_eq(rows, 4);
	cr_assert_str_eq(l.name[2], "Junk \\Junk");
	cr_assert_str_eq(l.name[5], "Zed \\Drafts");
	cr_assert_eq(store_subscription_page(st, a.id, "Junk", 10, collect_name, &subs, &rows),
	    STORE_OK);
	cr_assert_eq(rows, 2);
	cr_assert_str_eq(subs.name[0], "Sent");
	cr_assert_eq(store_message_set_flags(st, id, STORE_FLAG_SEEN, 0), STORE_OK);
	add_text(st, a.id, "2\r\n");
	cr_assert_eq(store_mailbox_get(st, a.id, "INBOX", &mb), STORE_OK);
	cr_assert_eq(store_mailbox_status(st, mb.id, &full), STORE_OK);
	cr_assert_eq(store_mailbox_counts(st, mb.id, &kept), STORE_OK);
	cr_assert_eq(kept.messages, 2);
	cr_assert_eq(kept.unseen, 1);
	cr_assert_eq(kept.messages, full.messages);
	cr_assert_eq(kept.unseen, full.unseen);
	cr_assert_eq(kept.uidnext, full.uidnext);
	cr_assert_eq(kept.uidvalidity, full.uidvalidity);
	cr_assert_eq(kept.highestmodseq, full.highestmodseq);
	cr_assert_eq(store_mailbox_counts(st, 999999, &kept), STORE_NOTFOUND);
	cr_assert_eq(store_mailbox_create(st, a.id, "a-b", NULL), STORE_OK);
	cr_assert_eq(store_mailbox_create(st, a.id, "ab", NULL), STORE_OK);
	cr_assert_eq(store_mailbox_create(st, a.id, "a", NULL), STORE_OK);
	cr_assert_eq(store_mailbox_has_children(st, a.id, "a", &yes), STORE_OK);
	cr_assert(!yes);
	cr_assert_eq(store_mailbox_create(st, a.id, "a/b/c", NULL), STORE_OK);
	cr_assert_eq(store_mailbox_has_children(st, a.id, "a", &yes), STORE_OK);
	cr_assert(yes);
	cr_assert_eq(store_mailbox_has_children(st, a.id, "a/b", &yes), STORE_OK);
	cr_assert(yes);
	cr_assert_eq(store_mailbox_has_children(st, a.id, "a/b/c", &yes), STORE_OK);
	cr_assert(!yes);
	store_close(st);
}

/* Keywords a delivery brings (X-Tags) stay within max-keywords: one new
 * to a full mailbox is left out, one the mailbox has already is kept,
 * and another inbox's keywords do not count against this one. */
Test(store_sqlite, delivery_keywords_within_max_keywords)
{
	struct store *st = store_open(&(struct store_options){ .backend = backend->name,
	    .path = dbpath, .limits = { .keywords = 2 } });
	struct store_inbox a, b;
	struct memsrc m1 = { (const unsigned char *)"1\r\n", 3, 0, 0, SIZE_MAX }, m2 = m1, m3 = m1, m4 = m1;
	struct store_new_message msg;
	int64_t id;

	cr_assert_not_null(st);
	a = make_inbox(st, "a");
	b = make_inbox(st, "b");
	msg = new_msg(b.id, &m1, 3);
	msg.keywords = "x y";
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK);
	msg = new_msg(a.id, &m2, 3);
	msg.keywords = "red blue green";
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK);
	msg = new_msg(a.id, &m3, 3);
	msg.keywords = "green blue";
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK);
	assert_counts(st, 0, 3, 3, "blue=2 red=1 x=1 y=1");
	msg = new_msg(b.id, &m4, 3);
	msg.keywords = "y z";
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK);
	assert_counts(st, 0, 4, 4, "blue=2 red=1 x=1 y=2");
	store_close(st);
}

/* A version 6 file gets its counts from the rows it has. */
Test(store_sqlite, migration_6_to_7)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	const char *kw[] = { "red" };
	int64_t id = add_text(st, in.id, "1\r\n");

	(void)add_text(st, in.id, "2\r\n");
	cr_assert_eq(store_message_set_flags(st, id, STORE_FLAG_SEEN, 0), STORE_OK);
	cr_assert_eq(store_message_store(st, id, STORE_FLAGS_ADD, 0, kw, 1, 0, NULL), STORE_OK);
	store_close(st);
	raw_exec(DROP_SCHEMA_10 DROP_SCHEMA_9 DROP_SCHEMA_8 DROP_SCHEMA_7 "PRAGMA user_version = 6");
	st = open_store();
	cr_assert_eq(raw_int("PRAGMA user_version"), 10);
	assert_counts(st, in.id, 2, 1, "red=1");
	(void)add_text(st, in.id, "3\r\n");
	assert_counts(st, 0, 3, 2, "red=1");
	store_close(st);
}

/* A version 4 file (before the listing's column and index) is migrated
 * on open, its messages kept and taken as without attachments. */
Test(store_sqlite, migration_4_to_5)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_query q = { .has_attachment = -1 };
	uint64_t total = 0;
	int64_t id = add_text(st, in.id, "old\r\n");

	store_close(st);
	raw_exec(DROP_SCHEMA_10 DROP_SCHEMA_9 DROP_SCHEMA_8 DROP_SCHEMA_7 "DROP TRIGGER body_search_gc; DROP TABLE body_fts;"
	    " DROP TABLE body_search;"
	    " DROP INDEX message_mailbox_id; ALTER TABLE message DROP COLUMN has_attachment;"
	    " PRAGMA user_version = 4");
	st = open_store();
	cr_assert_eq(raw_int("PRAGMA user_version"), 10);
	cr_assert_eq(store_message_query(st, &q, count_rows, &(int){ 0 }, &total), STORE_OK);
	cr_assert_eq(total, 1);
	cr_assert_eq(uid_of(st, id), 1);
	cr_assert_eq(store_integrity_check(st), STORE_OK);
	store_close(st);
}

/*
 * Disk full, simulated with RLIMIT_FSIZE (which binds root too, unlike a
 * read-only file mode): writes past the limit fail with EFBIG, SQLite
 * reports an I/O error, the store says STORE_FULL, and nothing is half
 * stored. Criterion runs each test in its own process, so the limit stays
 * here.
 */
static void limit_file_size(rlim_t bytes)
{
	struct rlimit rl;

	cr_assert_eq(getrlimit(RLIMIT_FSIZE, &rl), 0);
	rl.rlim_cur = bytes;
	cr_assert_eq(setrlimit(RLIMIT_FSIZE, &rl), 0);
}

Test(store_sqlite, file_modes)
{
	char err[256];
	struct stat sb;
	struct store *st;

	snprintf(dbpath, sizeof(dbpath), "%s/a/b/mail.db", tmpdir);
	st = open_store_at(dbpath, DURABILITY_FULL, err, sizeof(err));
	cr_assert_not_null(st, "%s", err);
	make_inbox(st, "dev");
	cr_assert_eq(stat(dbpath, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0600, "db mode %o", sb.st_mode & 07777);
	char wal[PATH_MAX + 8];
	snprintf(wal, sizeof(wal), "%s-wal", dbpath);
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0600, "wal mode %o", sb.st_mode & 07777);
	snprintf(wal, sizeof(wal), "%s/a", tmpdir);
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0700);
	snprintf(wal, sizeof(wal), "%s/a/b", tmpdir);
	cr_assert_eq(stat(wal, &sb), 0);
	cr_assert_eq(sb.st_mode & 07777, 0700);
	store_close(st);
}

Test(store_sqlite, newer_schema_refused)
{
	char err[256] = "";

	store_close(open_store());
	raw_exec("PRAGMA user_version = 99");
	cr_assert_null(open_store_at(dbpath, DURABILITY_NORMAL, err, sizeof(err)));
	cr_assert_not_null(strstr(err, "newer"), "%s", err);
}

Test(store_sqlite, open_fails_cleanly)
{
	char err[256] = "";
	char path[PATH_MAX];

	/* The parent "directory" is a file. */
	snprintf(path, sizeof(path), "%s/file", tmpdir);
	fclose(fopen(path, "w"));
	snprintf(path, sizeof(path), "%s/file/mail.db", tmpdir);
	cr_assert_null(open_store_at(path, DURABILITY_NORMAL, err, sizeof(err)));
	cr_assert_neq(err[0], '\0');
	cr_assert_null(open_store_at("", DURABILITY_NORMAL, err, sizeof(err)));
}

Test(store_sqlite, disk_full_autocommit)
{
	const size_t len = 4 * 1024 * 1024;
	unsigned char *data = calloc(1, len);
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t id = 0;

	signal(SIGXFSZ, SIG_IGN);
	limit_file_size(512 * 1024);
	cr_assert_eq(add_bytes(st, in.id, data, len, &id), STORE_FULL, "%s", store_errmsg(st));
	limit_file_size(RLIM_INFINITY);
	cr_assert_eq(count_all(st, NULL), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	/* Space again: the store works on. */
	cr_assert_eq(add_bytes(st, in.id, data, len, &id), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(uid_of(st, id), 1);
	cr_assert_eq(store_integrity_check(st), 0);
	free(data);
	store_close(st);
}

Test(store_sqlite, disk_full_in_transaction)
{
	const size_t len = 4 * 1024 * 1024;
	unsigned char *data = calloc(1, len);
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct events e = { 0 };
	int rc_add, rc_commit;

	cr_assert_eq(store_subscribe(st, on_change, &e), STORE_OK);
	signal(SIGXFSZ, SIG_IGN);
	limit_file_size(512 * 1024);
	cr_assert_eq(store_begin(st), STORE_OK);
	add_text(st, in.id, "small one\r\n");
	rc_add = add_bytes(st, in.id, data, len, NULL);
	rc_commit = store_commit(st);
	limit_file_size(RLIM_INFINITY);
	/* Whether the spill of the cache or the commit hit the limit, the
	 * whole group failed and nobody was told of a new message. */
	cr_assert(rc_add == STORE_FULL || rc_commit == STORE_FULL,
	    "add %d commit %d: %s", rc_add, rc_commit, store_errmsg(st));
	cr_assert_neq(rc_commit, STORE_OK);
	cr_assert_eq(e.n, 0);
	cr_assert_eq(count_all(st, NULL), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);

	cr_assert_eq(store_begin(st), STORE_OK);
	add_text(st, in.id, "after\r\n");
	cr_assert_eq(store_commit(st), STORE_OK);
	cr_assert_eq(e.n, 1);
	free(data);
	store_close(st);
}

/* The CLI holding the write lock beyond the busy timeout: STORE_BUSY. */
Test(store_sqlite, busy_beyond_timeout, .timeout = 30)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	sqlite3 *db;
	time_t t0;

	cr_assert_eq(sqlite3_open(dbpath, &db), SQLITE_OK);
	cr_assert_eq(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
	t0 = time(NULL);
	cr_assert_eq(add_bytes(st, in.id, "x", 1, NULL), STORE_BUSY);
	cr_assert_geq(time(NULL) - t0, 4);
	sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
	sqlite3_close(db);
	add_text(st, in.id, "now it works");
	store_close(st);
}

/* A body shared by two messages (as IMAP COPY will do) goes with the last. */
Test(store_sqlite, shared_body_goes_with_last_message)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	int64_t a = add_text(st, in.id, "shared");

	raw_exec("INSERT INTO message (mailbox_id, body_id, uid, modseq, internal_date,"
	    " size, mail_from, client_addr) SELECT mailbox_id, body_id, 99, 99, 0, size,"
	    " '', '' FROM message");
	cr_assert_eq(count_all(st, NULL), 2);
	cr_assert_eq(store_message_del(st, a), STORE_OK);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 1);
	raw_exec("DELETE FROM message");
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	store_close(st);
}

/* ---- bodies staged ahead of their message (store_body.c) --------------- */

/* A body of a few segments (256 KiB each) and an odd tail. */
#define STAGED_LEN (3 * 256 * 1024 + 1001)

static unsigned char *staged_bytes(void)
{
	unsigned char *p = malloc(STAGED_LEN);
	size_t i;

	cr_assert_not_null(p);
	for (i = 0; i < STAGED_LEN; i++)
		p[i] = (unsigned char)(i * 7 + i / 251);
	return p;
}

/* Stages msg from its source's start in steps of about max_bytes, from
 * a zeroed stage; the last step's rc, and how many steps it took. */
static int stage_from_start(struct store *st, struct store_body_stage *bs,
    struct store_new_message *msg, struct memsrc *m, uint64_t max_bytes, int *steps)
{
	int rc;

	m->off = 0;
	memset(bs, 0, sizeof(*bs));
	for (*steps = 1; (rc = store_body_stage(st, bs, &msg->src, max_bytes)) == STORE_MORE;)
		(*steps)++;
	return rc;
}

/* store_body_purge in steps of max_bytes until nothing waits; the steps
 * that returned STORE_MORE. */
static int purge_all(struct store *st, uint64_t max_bytes)
{
	int rc, steps = 0;

	while ((rc = store_body_purge(st, max_bytes)) == STORE_MORE)
		cr_assert_lt(++steps, 1000);
	cr_assert_eq(rc, STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(raw_int("SELECT count(*) FROM body_purge"), 0);
	return steps;
}

static int stage_all(struct store *st, struct store_body_stage *bs, struct store_new_message *msg,
    struct memsrc *m, uint64_t max_bytes)
{
	int steps = 0;

	cr_assert_eq(stage_from_start(st, bs, msg, m, max_bytes, &steps), STORE_OK, "%s",
	    store_errmsg(st));
	return steps;
}

/* Staged in steps, stored with its message, read back whole and in
 * ranges across the segments' edges, and gone with the message. */
Test(store_sqlite, staged_body_reads_back)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	unsigned char *p = staged_bytes();
	struct memsrc m = { p, STAGED_LEN, 0, 4000, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, STAGED_LEN);
	struct store_body_stage bs = { 0 };
	static const uint64_t ranges[][2] = { { 0, STAGED_LEN }, { 262140, 10 },
	    { 262144, 262144 }, { 700000, 200000 }, { STAGED_LEN - 1, 5 }, { STAGED_LEN, 5 } };
	struct buf b = { 0 };
	int64_t id = 0;
	size_t i, want;

	cr_assert_eq(stage_all(st, &bs, &msg, &m, 512 * 1024), 2);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_more"), 3);
	cr_assert_eq(count_all(st, NULL), 0);
	msg.body_id = bs.body_id;
	cr_assert_eq(store_message_add(st, &msg, &id), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_message_read(st, id, buf_sink, &b), STORE_OK);
	cr_assert_eq(b.len, STAGED_LEN);
	cr_assert(memcmp(b.p, p, STAGED_LEN) == 0);
	for (i = 0; i < sizeof(ranges) / sizeof(ranges[0]); i++) {
		b.len = 0;
		cr_assert_eq(store_message_read_range(st, id, ranges[i][0], ranges[i][1], buf_sink,
		    &b), STORE_OK);
		want = ranges[i][0] >= STAGED_LEN ? 0 : STAGED_LEN - ranges[i][0];
		if (want > ranges[i][1])
			want = ranges[i][1];
		cr_assert_eq(b.len, want, "range %zu: %zu bytes", i, b.len);
		cr_assert(want == 0 || memcmp(b.p, p + ranges[i][0], want) == 0, "range %zu", i);
	}
	/* The body survives a restart's clean-up, since a message has it. */
	cr_assert_eq(store_body_gc(st), STORE_OK);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_more"), 3);
	/* Deleting the message leaves the segments to the purge, which takes
	 * the last ones first and the body row at the end, never more than
	 * asked (one segment here) per step. */
	cr_assert_eq(store_message_del(st, id), STORE_OK);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_purge"), 1);
	cr_assert_eq(store_body_gc(st), STORE_OK);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 1);
	cr_assert_eq(store_body_purge(st, 1), STORE_MORE);
	cr_assert_eq(raw_int("SELECT sum(seq) FROM body_more"), 1 + 2);
	cr_assert_eq(store_body_purge(st, 256 * 1024), STORE_MORE);
	cr_assert_eq(raw_int("SELECT max(seq) FROM body_more"), 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 1);
	cr_assert_eq(purge_all(st, 1), 2);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_more"), 0);
	cr_assert_eq(store_integrity_check(st), STORE_OK);
	store_close(st);
	free(b.p);
	free(p);
}

/* A staged body no message took goes: discarded, or at the next start. */
Test(store_sqlite, staged_body_discarded)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	unsigned char *p = staged_bytes();
	struct memsrc m = { p, STAGED_LEN, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, STAGED_LEN);
	struct store_body_stage bs = { 0 };

	cr_assert_eq(store_body_stage(st, &bs, &msg.src, 1), STORE_MORE);
	cr_assert_gt(bs.body_id, 0);
	cr_assert_eq(store_body_discard(st, &bs), STORE_OK);
	cr_assert_eq(bs.body_id, 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	cr_assert_eq(stage_all(st, &bs, &msg, &m, 1), 4);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 1);
	store_close(st);
	st = open_store();
	cr_assert_eq(store_body_gc(st), STORE_OK);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_more"), 0);
	store_close(st);
	free(p);
}

/* A source that ends early, runs on, or fails leaves nothing behind. */
Test(store_sqlite, staged_body_bad_source)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	unsigned char *p = staged_bytes();
	struct memsrc m = { p, STAGED_LEN, 0, 0, SIZE_MAX };
	struct store_new_message msg = new_msg(in.id, &m, STAGED_LEN + 1);
	struct store_body_stage bs = { 0 };
	int steps;

	cr_assert_eq(stage_from_start(st, &bs, &msg, &m, 1, &steps), STORE_ERR);
	cr_assert_gt(purge_all(st, 1), 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	msg.src.size = STAGED_LEN - 1;
	cr_assert_eq(stage_from_start(st, &bs, &msg, &m, 1, &steps), STORE_ERR);
	cr_assert_str_eq(store_errmsg(st), "message longer than its announced 787432 bytes");
	m.fail_at = 300000;
	msg.src.size = STAGED_LEN;
	cr_assert_eq(stage_from_start(st, &bs, &msg, &m, 1, &steps), STORE_ERR);
	purge_all(st, 1);
	cr_assert_eq(raw_int("SELECT count(*) FROM body"), 0);
	cr_assert_eq(raw_int("SELECT count(*) FROM body_more"), 0);
	store_close(st);
	free(p);
}

/* A file from before auto_vacuum (NONE) is made incremental by VACUUM,
 * its mail kept. */
Test(store_sqlite, make_incremental)
{
	struct store *st = open_store();
	struct store_inbox in = make_inbox(st, "dev");
	struct store_space sp;

	add_text(st, in.id, "kept");
	store_close(st);
	raw_exec("PRAGMA auto_vacuum = NONE; VACUUM");
	cr_assert_eq(raw_int("PRAGMA auto_vacuum"), 0);
	st = open_store();
	cr_assert_eq(store_space(st, &sp), STORE_OK);
	cr_assert(!sp.incremental);
	cr_assert_eq(store_make_incremental(st), STORE_OK, "%s", store_errmsg(st));
	cr_assert_eq(store_space(st, &sp), STORE_OK);
	cr_assert(sp.incremental);
	cr_assert_eq(count_all(st, "dev"), 1);
	store_close(st);
	cr_assert_eq(raw_int("PRAGMA auto_vacuum"), 2);
}

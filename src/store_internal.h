/*
 * What store.c and store_imap.c share: the store struct, the statement
 * cache and the write-transaction helpers. Not a public API.
 */
#ifndef MAILSNARE_STORE_INTERNAL_H
#define MAILSNARE_STORE_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>
#include <sqlite3.h>

#include "mailsnare/store.h"

#define STORE_CHUNK (64 * 1024)          /* blob I/O unit */
#define STORE_ERR_MAX 256

#define MAILBOX_COLS \
	"SELECT b.id, b.inbox_id, b.name, b.uidvalidity, b.uidnext, b.highestmodseq," \
	" (SELECT count(*) FROM message m WHERE m.mailbox_id = b.id), b.special_use" \
	" FROM mailbox b "

/* Statements of store.c; store_imap.c's follow from Q_COUNT on. */
enum query {
	Q_BEGIN, Q_COMMIT, Q_ROLLBACK, Q_SAVEPOINT, Q_RELEASE, Q_ROLLBACK_TO,
	Q_INBOX_GET, Q_INBOX_LIST, Q_INBOX_ID, Q_INBOX_ADD, Q_MAILBOX_ADD,
	Q_INBOX_SET_PASSWORD, Q_INBOX_DEL,
	Q_MAILBOX_NEXT, Q_BODY_ADD, Q_BODY_ADD_DATA, Q_MSG_ADD, Q_RCPT_ADD,
	Q_MSG_LIST_ALL, Q_MSG_LIST_INBOX, Q_MSG_INFO, Q_RCPT_LIST, Q_MSG_BODY,
	Q_MSG_DEL, Q_MSG_DEL_INBOX, Q_PRUNE, Q_INTEGRITY,
	Q_MAILBOX_GET, Q_MAILBOX_MSGS, Q_MSG_FLAGS, Q_MAILBOX_MODSEQ, Q_MAILBOX_CHANGES,
	Q_MAILBOX_STATE,
	Q_COUNT
};

enum query_imap {
	QI_FIRST = Q_COUNT,
	QI_MAILBOX_LIST = QI_FIRST, QI_MAILBOX_BY_ID, QI_MAILBOX_DEL, QI_MSG_DEL_MAILBOX,
	QI_MAILBOX_RENAME, QI_MSG_REHOME, QI_MAILBOX_COPY_COUNTERS,
	QI_MAILBOX_STATUS, QI_MAILBOX_RECENT_GET, QI_MAILBOX_RECENT_SET, QI_MAILBOX_UIDNEXT,
	QI_MAILBOX_MODSEQ_NEXT, QI_MAILBOX_KEYWORDS, QI_SUB_ADD, QI_SUB_DEL, QI_SUB_LIST,
	QI_MSG_COPY, QI_RCPT_COPY, QI_KW_COPY, QI_MSG_MOVE, QI_MSG_STATE,
	QI_KW_ADD, QI_KW_DEL, QI_KW_CLEAR, QI_MSG_SET_FLAGS, QI_MSG_STRUCTURE,
	QI_MSG_SET_STRUCTURE, QI_VANISHED,
	QI_END
};
#define STORE_NQUERIES QI_END

extern const char *const store_imap_sql[QI_END - QI_FIRST];
const char *store_query_sql(int q);

struct store_sub {
	store_change_cb cb;        /* NULL: unsubscribed while dispatching */
	void *arg;
};

struct store_event {
	enum store_change what;
	int64_t mailbox_id;
	int64_t message_id;
};

/* store_cache.c: the last few mailboxes read whole, in memory. */
#define STORE_CACHE_SLOTS 4
#define STORE_CACHE_MAX_ROWS (1u << 20)   /* larger: read from SQLite each time */
struct store_cache_entry;

struct store {
	sqlite3 *db;
	sqlite3_stmt *stmts[STORE_NQUERIES];
	bool in_tx;                /* between store_begin and commit/rollback */
	int tx_rc;                 /* SQLite rolled the open transaction back */
	struct store_event *pending;   /* new messages not yet committed */
	size_t n_pending, cap_pending;
	struct store_sub *subs;
	size_t n_subs, cap_subs;
	unsigned dispatching;
	int64_t data_version;       /* PRAGMA data_version when last polled */
	struct store_cache_entry *cache;   /* STORE_CACHE_SLOTS entries */
	uint64_t cache_tick;
	uint32_t last_uidvalidity;
	unsigned char *chunk;      /* STORE_CHUNK bytes for writing bodies */
	char err[STORE_ERR_MAX];
};

/* A write: its own transaction in autocommit mode, a savepoint inside
 * store_begin's transaction. */
struct wtx {
	bool savepoint;
};

int store_sql_fail(struct store *st, int rc);
int store_set_err(struct store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
sqlite3_stmt *store_stmt_get(struct store *st, int q, int *rc);
void store_stmt_put(struct store *st, int q, sqlite3_stmt *s);
int store_stmt_done(struct store *st, sqlite3_stmt *s);
int store_run(struct store *st, int q);
void store_bind_str(sqlite3_stmt *s, int i, const char *v);
const char *store_col_str(sqlite3_stmt *s, int i);
int store_wtx_begin(struct store *st, struct wtx *w);
int store_wtx_end(struct store *st, struct wtx *w, int rc);
int store_queue_event(struct store *st, enum store_change what, int64_t mailbox_id,
    int64_t message_id);
void store_notify_pending(struct store *st);
uint32_t store_next_uidvalidity(struct store *st);
int store_message_body_id(struct store *st, int64_t id, int64_t *body);
/* store_imap.c, for store.c: */
int store_insert_mailbox(struct store *st, int64_t inbox, const char *name,
    const char *special_use, int64_t *id);
int store_inbox_mailboxes(struct store *st, int64_t inbox);
int store_mailbox_take_uid(struct store *st, int64_t mailbox, int64_t *uid, int64_t *modseq);
int store_keywords_add(struct store *st, int64_t id, const char *keywords);
/* The mailbox's rows from SQLite, by UID (store_mailbox_foreach serves
 * them from the cache). */
int store_mailbox_read_all(struct store *st, int64_t mailbox_id, store_msg_cb cb, void *arg);
/* store_cache.c: allocate the slots, and forget every cached list (after
 * an undone write; at close). */
int store_cache_init(struct store *st);
void store_cache_drop(struct store *st);

#endif

/*
 * Behind the store API: the table of operations every backend fills
 * (struct store_backend), what every backend's store begins with (struct
 * store: its table and the change subscribers), and what the SQLite
 * backend's files (store.c, store_imap.c, store_cache.c) share: its store
 * struct, the statement cache and the write-transaction helpers. Not a
 * public API.
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
	" b.n_messages, b.special_use" \
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
	Q_MAILBOX_STATE, Q_SCOPE_COUNTS, Q_KEYWORD_COUNTS,
	Q_BODY_MORE_ADD, Q_BODY_MORE_GET, Q_BODY_DISCARD, Q_BODY_ORPHANS,
	Q_BODY_PURGE_ADD, Q_BODY_PURGE_NEXT, Q_BODY_PURGE_SEGS, Q_BODY_PURGE_BODY, Q_BODY_PURGE_DROP,
	Q_COUNT
};

enum query_imap {
	QI_FIRST = Q_COUNT,
	QI_MAILBOX_LIST = QI_FIRST, QI_MAILBOX_BY_ID, QI_MAILBOX_DEL, QI_MSG_DEL_MAILBOX,
	QI_MAILBOX_RENAME, QI_MSG_REHOME, QI_MAILBOX_COPY_COUNTERS,
	QI_MAILBOX_STATUS, QI_MAILBOX_RECENT_GET, QI_MAILBOX_RECENT_SET, QI_MAILBOX_UIDNEXT,
	QI_MAILBOX_MODSEQ_NEXT, QI_MAILBOX_KEYWORDS, QI_SUB_ADD, QI_SUB_DEL, QI_SUB_LIST, QI_SUB_COUNT, QI_MAILBOX_COUNT,
	QI_MSG_COPY, QI_RCPT_COPY, QI_KW_COPY, QI_MSG_MOVE, QI_MSG_STATE,
	QI_KW_ADD, QI_KW_DEL, QI_KW_CLEAR, QI_MSG_SET_FLAGS, QI_MSG_STRUCTURE,
	QI_MSG_SET_STRUCTURE, QI_VANISHED, QI_MAILBOX_INBOX, QI_KW_ROOM,
	QI_MAILBOX_PAGE, QI_SUB_PAGE, QI_MAILBOX_COUNTS, QI_MAILBOX_CHILD,
	QI_END
};
#define STORE_NQUERIES QI_END

extern const char *const store_imap_sql[QI_END - QI_FIRST];
const char *store_query_sql(int q);

/* ---- every backend ------------------------------------------------------ */

/*
 * A backend's operations: one per public store_* function that takes a
 * store, with the same arguments and meaning (include/mailsnare/store.h),
 * as OpenSMTPD's queue_backend. store_api.c dispatches to them. open
 * returns the backend's own struct, which begins with a struct store.
 */
struct store_backend {
	const char *name;
	struct store *(*open)(const struct store_options *opts);
	void (*close)(struct store *st);
	const char *(*errmsg)(struct store *st);
	int (*inbox_add)(struct store *st, const char *name, const char *password,
	    struct store_inbox *out);
	int (*inbox_get)(struct store *st, const char *name, struct store_inbox *out);
	int (*inbox_ensure)(struct store *st, const char *name, const char *password,
	    struct store_inbox *out);
	int (*inbox_set_password)(struct store *st, const char *name, const char *password);
	int (*inbox_del)(struct store *st, const char *name);
	int (*inbox_foreach)(struct store *st, store_inbox_cb cb, void *arg);
	int (*begin)(struct store *st);
	int (*commit)(struct store *st);
	void (*rollback)(struct store *st);
	int (*message_add)(struct store *st, const struct store_new_message *msg,
	    int64_t *id);
	int (*inbox_prune)(struct store *st, int64_t inbox_id, uint64_t keep);
	int (*prune_older)(struct store *st, int64_t before, uint64_t *pruned);
	int (*space)(struct store *st, struct store_space *out);
	int (*vacuum_step)(struct store *st, unsigned pages);
	int (*make_incremental)(struct store *st);
	int (*inbox_counts)(struct store *st, store_inbox_count_cb cb, void *arg);
	int (*message_foreach)(struct store *st, const char *inbox, store_message_cb cb,
	    void *arg);
	int (*message_get_info)(struct store *st, int64_t id, store_message_cb cb,
	    void *arg);
	int (*message_query)(struct store *st, const struct store_query *q,
	    store_message_cb cb, void *arg, uint64_t *total, uint64_t *unseen);
	int (*message_read)(struct store *st, int64_t id, store_sink sink, void *arg);
	int (*message_del)(struct store *st, int64_t id);
	int (*message_del_inbox)(struct store *st, const char *inbox, int64_t *count);
	int (*mailbox_get)(struct store *st, int64_t inbox_id, const char *name,
	    struct store_mailbox *out);
	int (*mailbox_get_by_id)(struct store *st, int64_t id, struct store_mailbox *out);
	int (*mailbox_list)(struct store *st, int64_t inbox_id, store_mailbox_cb cb,
	    void *arg);
	int (*mailbox_create)(struct store *st, int64_t inbox_id, const char *name,
	    struct store_mailbox *out);
	int (*mailbox_delete)(struct store *st, int64_t mailbox_id);
	int (*mailbox_rename)(struct store *st, int64_t inbox_id, const char *from,
	    const char *to);
	int (*mailbox_status)(struct store *st, int64_t mailbox_id,
	    struct store_mailbox_status *out);
	int (*mailbox_claim_recent)(struct store *st, int64_t mailbox_id, uint32_t *above);
	int (*mailbox_keywords)(struct store *st, int64_t mailbox_id, store_name_cb cb,
	    void *arg);
	int (*mailbox_vanished)(struct store *st, int64_t mailbox_id, uint64_t since,
	    store_uid_cb cb, void *arg);
	int (*subscription_set)(struct store *st, int64_t inbox_id, const char *name,
	    bool on);
	int (*subscription_list)(struct store *st, int64_t inbox_id, store_name_cb cb,
	    void *arg);
	int (*mailbox_foreach)(struct store *st, int64_t mailbox_id, store_msg_cb cb,
	    void *arg);
	int (*mailbox_changes)(struct store *st, int64_t mailbox_id, uint64_t since,
	    store_msg_cb cb, void *arg);
	int (*mailbox_state)(struct store *st, int64_t mailbox_id,
	    struct store_mailbox_state *out);
	int (*message_set_flags)(struct store *st, int64_t id, unsigned add,
	    unsigned remove);
	int (*message_copy)(struct store *st, int64_t id, int64_t dest_mailbox,
	    int64_t *new_id, uint32_t *new_uid);
	int (*message_move)(struct store *st, int64_t id, int64_t dest_mailbox,
	    uint32_t *new_uid);
	int (*message_store)(struct store *st, int64_t id, enum store_flags_op op,
	    unsigned flags, const char *const *keywords, size_t n_keywords,
	    uint64_t unchangedsince, uint64_t *modseq);
	int (*message_state)(struct store *st, int64_t id, unsigned *flags, char *kw,
	    size_t kwsize, uint64_t *modseq);
	int (*message_structure)(struct store *st, int64_t id, void **blob, size_t *len);
	int (*message_set_structure)(struct store *st, int64_t id, const void *blob,
	    size_t len);
	int (*message_read_range)(struct store *st, int64_t id, uint64_t offset,
	    uint64_t len, store_sink sink, void *arg);
	bool (*poll_external)(struct store *st);
	int (*integrity_check)(struct store *st);
	int (*scope_counts)(struct store *st, int64_t inbox_id, uint64_t *messages,
	    uint64_t *unseen);
	int (*keyword_counts)(struct store *st, store_keyword_cb cb, void *arg);
};

struct store_sub {
	store_change_cb cb;        /* NULL: unsubscribed while dispatching */
	void *arg;
	int64_t inbox_id;          /* 0: every inbox */
};

/* What every backend's store begins with. */
struct store {
	const struct store_backend *be;
	struct store_limits limits;    /* set by store_open, defaults filled in */
	struct store_sub *subs;
	size_t n_subs, cap_subs;
	unsigned dispatching;
};

struct store_event {
	enum store_change what;
	int64_t inbox_id;
	int64_t mailbox_id;
	int64_t message_id;
};

/* store_api.c: hands committed events to the subscribers, in order. A
 * subscriber may call the store, subscribe or unsubscribe meanwhile. */
void store_dispatch(struct store *st, const struct store_event *ev, size_t n);

/* ---- the SQLite backend ------------------------------------------------- */

extern const struct store_backend store_sqlite_backend;

/* store_cache.c: the last few mailboxes read whole, in memory. */
#define STORE_CACHE_SLOTS 4
#define STORE_CACHE_MAX_ROWS (1u << 20)   /* larger: read from SQLite each time */
struct store_cache_entry;

struct sqlite_store {
	struct store base;         /* first: a struct store * points here too */
	sqlite3 *db;
	sqlite3_stmt *stmts[STORE_NQUERIES];
	bool in_tx;                /* between store_begin and commit/rollback */
	int tx_rc;                 /* SQLite rolled the open transaction back */
	struct store_event *pending;   /* new messages not yet committed */
	size_t n_pending, cap_pending;
	int64_t data_version;       /* PRAGMA data_version when last polled */
	struct store_cache_entry *cache;   /* STORE_CACHE_SLOTS entries */
	uint64_t cache_tick;
	uint32_t last_uidvalidity;
	unsigned char *chunk;      /* STORE_CHUNK bytes for writing bodies */
	sqlite3_stmt *fts_stmts[12];    /* store_fts.c's own statements */
	int64_t fts_cursor;        /* the back-fill looked at ids up to this, */
	int64_t fts_high;          /* ... which ends here: the last id at open */
	int64_t fts_live;          /* deferred indexing looked at ids up to this */
	bool defer_index;          /* store_options.defer_index */
	bool reader;               /* store_options.reader */
	struct fts_row *fts_queue, **fts_tail;   /* index rows to write */
	struct fts_row *fts_txq, **fts_txtail;   /* ... once this transaction commits */
	size_t fts_queued, fts_queued_docs;      /* fts_queue's bytes and rows */
	struct store_ckpt *ckpt;   /* store_ckpt.c's thread, if started */
	char err[STORE_ERR_MAX];
};

/* store_ckpt.c: stops the checkpoint thread (before the close). */
void store_ckpt_stop(struct sqlite_store *st);

/* store_body.c: bytes [offset, offset+len) of a body, all its segments,
 * in pieces of at most STORE_CHUNK. */
int store_body_drain(struct sqlite_store *st, int64_t body, uint64_t offset, uint64_t len,
    store_sink sink, void *arg);

static inline struct sqlite_store *sqlite_store_of(struct store *st)
{
	return (struct sqlite_store *)st;
}

/* The operations (store_backend's fields), named sq_ and the field. */
struct store *sq_open(const struct store_options *opts);
void sq_close(struct store *st);
const char *sq_errmsg(struct store *st);
int sq_inbox_add(struct store *st, const char *name, const char *password,
    struct store_inbox *out);
int sq_inbox_get(struct store *st, const char *name, struct store_inbox *out);
int sq_inbox_ensure(struct store *st, const char *name, const char *password,
    struct store_inbox *out);
int sq_inbox_set_password(struct store *st, const char *name, const char *password);
int sq_inbox_del(struct store *st, const char *name);
int sq_inbox_foreach(struct store *st, store_inbox_cb cb, void *arg);
int sq_begin(struct store *st);
int sq_commit(struct store *st);
void sq_rollback(struct store *st);
int sq_message_add(struct store *st, const struct store_new_message *msg, int64_t *id);
int sq_inbox_prune(struct store *st, int64_t inbox_id, uint64_t keep);
/* store_retention.c */
int sq_prune_older(struct store *st, int64_t before, uint64_t *pruned);
int sq_space(struct store *st, struct store_space *out);
int sq_vacuum_step(struct store *st, unsigned pages);
int sq_make_incremental(struct store *st);
int sq_inbox_counts(struct store *st, store_inbox_count_cb cb, void *arg);
int sq_message_foreach(struct store *st, const char *inbox, store_message_cb cb, void *arg);
int sq_message_get_info(struct store *st, int64_t id, store_message_cb cb, void *arg);
int sq_message_query(struct store *st, const struct store_query *q, store_message_cb cb,
    void *arg, uint64_t *total, uint64_t *unseen);
int sq_message_read(struct store *st, int64_t id, store_sink sink, void *arg);
int sq_message_del(struct store *st, int64_t id);
int sq_message_del_inbox(struct store *st, const char *inbox, int64_t *count);
int sq_mailbox_get(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out);
int sq_mailbox_get_by_id(struct store *st, int64_t id, struct store_mailbox *out);
int sq_mailbox_list(struct store *st, int64_t inbox_id, store_mailbox_cb cb, void *arg);
int sq_mailbox_create(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out);
int sq_mailbox_delete(struct store *st, int64_t mailbox_id);
int sq_mailbox_rename(struct store *st, int64_t inbox_id, const char *from, const char *to);
int sq_mailbox_status(struct store *st, int64_t mailbox_id,
    struct store_mailbox_status *out);
int sq_mailbox_claim_recent(struct store *st, int64_t mailbox_id, uint32_t *above);
int sq_mailbox_keywords(struct store *st, int64_t mailbox_id, store_name_cb cb, void *arg);
int sq_mailbox_vanished(struct store *st, int64_t mailbox_id, uint64_t since,
    store_uid_cb cb, void *arg);
int sq_subscription_set(struct store *st, int64_t inbox_id, const char *name, bool on);
int sq_subscription_list(struct store *st, int64_t inbox_id, store_name_cb cb, void *arg);
int sq_mailbox_foreach(struct store *st, int64_t mailbox_id, store_msg_cb cb, void *arg);
int sq_mailbox_changes(struct store *st, int64_t mailbox_id, uint64_t since,
    store_msg_cb cb, void *arg);
int sq_mailbox_state(struct store *st, int64_t mailbox_id, struct store_mailbox_state *out);
int sq_message_set_flags(struct store *st, int64_t id, unsigned add, unsigned remove);
int sq_message_copy(struct store *st, int64_t id, int64_t dest_mailbox, int64_t *new_id,
    uint32_t *new_uid);
int sq_message_move(struct store *st, int64_t id, int64_t dest_mailbox, uint32_t *new_uid);
int sq_message_store(struct store *st, int64_t id, enum store_flags_op op, unsigned flags,
    const char *const *keywords, size_t n_keywords, uint64_t unchangedsince,
    uint64_t *modseq);
int sq_message_state(struct store *st, int64_t id, unsigned *flags, char *kw, size_t kwsize,
    uint64_t *modseq);
int sq_message_structure(struct store *st, int64_t id, void **blob, size_t *len);
int sq_message_set_structure(struct store *st, int64_t id, const void *blob, size_t len);
int sq_message_read_range(struct store *st, int64_t id, uint64_t offset, uint64_t len,
    store_sink sink, void *arg);
bool sq_poll_external(struct store *st);
int sq_integrity_check(struct store *st);
int sq_scope_counts(struct store *st, int64_t inbox_id, uint64_t *messages, uint64_t *unseen);
int sq_keyword_counts(struct store *st, store_keyword_cb cb, void *arg);

/* A write: its own transaction in autocommit mode, a savepoint inside
 * store_begin's transaction. */
struct wtx {
	bool savepoint;
};

int store_sql_fail(struct sqlite_store *st, int rc);
/* Steps s for its one row: STORE_OK with the row to read, STORE_NOTFOUND
 * with fmt's message when there is none, or the SQL error. */
int store_step_row(struct sqlite_store *st, sqlite3_stmt *s, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int store_set_err(struct sqlite_store *st, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
sqlite3_stmt *store_stmt_get(struct sqlite_store *st, int q, int *rc);
void store_stmt_put(struct sqlite_store *st, int q, sqlite3_stmt *s);
int store_stmt_done(struct sqlite_store *st, sqlite3_stmt *s);
int store_run(struct sqlite_store *st, int q);
void store_bind_str(sqlite3_stmt *s, int i, const char *v);
const char *store_col_str(sqlite3_stmt *s, int i);
int store_wtx_begin(struct sqlite_store *st, struct wtx *w);
int store_wtx_end(struct sqlite_store *st, struct wtx *w, int rc);
/* A statement's parameters: ?k+1 is t[k] when that is non-NULL, else
 * i[k]. */
struct store_qargs {
	int64_t i[4];
	const char *t[4];
	int n;
};
void store_bind_qargs(sqlite3_stmt *s, const struct store_qargs *a);
/* store_stmt_get, then a's parameters bound; NULL (and *rc) on failure. */
sqlite3_stmt *store_stmt_bound(struct sqlite_store *st, int q, const struct store_qargs *a,
    int *rc);
/* Runs q, which returns no rows, with a's parameters; *changes (if not
 * NULL) gets the rows it changed. */
int store_exec(struct sqlite_store *st, int q, const struct store_qargs *a, int64_t *changes);
/* Ends a write that queued change events (st->n_pending was `queued`
 * before it): on failure they go with it; on success they are delivered,
 * unless an outer store_begin holds them until its commit. */
int store_wtx_finish(struct sqlite_store *st, struct wtx *w, int rc, size_t queued);
int store_queue_event(struct sqlite_store *st, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id);
void store_notify_pending(struct sqlite_store *st);
uint32_t store_next_uidvalidity(struct sqlite_store *st);
int store_message_body_id(struct sqlite_store *st, int64_t id, int64_t *body);
/* store_imap.c, for store.c: */
int store_insert_mailbox(struct sqlite_store *st, int64_t inbox, const char *name,
    const char *special_use, int64_t *id);
int store_inbox_mailboxes(struct sqlite_store *st, int64_t inbox);
/* A new UID and modseq in the mailbox; *inbox is the mailbox's. */
int store_mailbox_take_uid(struct sqlite_store *st, int64_t mailbox, int64_t *uid,
    int64_t *modseq, int64_t *inbox);
int store_keywords_add(struct sqlite_store *st, int64_t id, int64_t mailbox,
    const char *keywords);
/* The mailbox's rows from SQLite, by UID (store_mailbox_foreach serves
 * them from the cache). */
int store_mailbox_read_all(struct sqlite_store *st, int64_t mailbox_id, store_msg_cb cb,
    void *arg);
/* store_fts.c: the search's side of the SQLite backend. init registers
 * the SQL function ms_fold(text) (msg_search_fold) on the connection;
 * cond writes the SQL condition of one term, its value in parameter
 * `param`; bind binds every term's value from `first` on. */
#define STORE_SEARCH_COND_MAX 256
int store_fts_init(struct sqlite_store *st);
void store_fts_close(struct sqlite_store *st);
/* The index of a message just added (sq_message_add); its rows wait in
 * memory and are written later, several messages' at once (store_fts.c):
 * flush writes what is committed; commit (just before COMMIT) moves the
 * transaction's rows to the queue, writing it if past its bounds;
 * rollback forgets the transaction's rows. */
int store_fts_index_new(struct sqlite_store *st, int64_t id, const struct store_new_message *msg);
int store_fts_flush(struct sqlite_store *st);
/* Before a query that reads the index: indexes the messages deferred
 * indexing has not reached yet, and writes every queued row. */
int store_fts_catch_up(struct sqlite_store *st);
/* At open: where the back-fill ends and deferred indexing starts. */
int store_fts_open(struct sqlite_store *st, bool defer);
int store_fts_commit(struct sqlite_store *st);
void store_fts_committed(struct sqlite_store *st);
void store_fts_rollback(struct sqlite_store *st);
struct msg_search_term;
void store_search_cond(const struct msg_search_term *t, int param, char *out, size_t outlen);
int store_search_bind(sqlite3_stmt *s, const struct msg_search *search, int first);
/* Body sets: the terms that test the body's index rows (fields, words,
 * has:inline) evaluated once into a bitmap of body ids, for store.c's
 * search pass. body_set fails with STORE_LIMIT past the bitmap's bound. */
struct store_bodyset {
	uint64_t *w;                /* bit b of w[b / 64]: body b */
	size_t nw;                  /* words */
	size_t n;                   /* members */
};
bool store_search_body_term(const struct msg_search_term *t);
int store_search_body_set(struct sqlite_store *st, const struct msg_search_term *t,
    struct store_bodyset *set);
/* The same on the bodies in [lo, hi) only (hi 0: all), a part of a split
 * search (store_message_search_part). */
int store_search_body_set_range(struct sqlite_store *st, const struct msg_search_term *t,
    int64_t lo, int64_t hi, struct store_bodyset *set);
void store_bodyset_free(struct store_bodyset *set);
void store_bodyset_and(struct store_bodyset *set, const struct store_bodyset *other,
    bool invert);
int store_bodyset_or(struct store_bodyset *set, const struct store_bodyset *other);
static inline bool store_bodyset_has(const struct store_bodyset *set, int64_t id)
{
	return id >= 0 && (size_t)id / 64 < set->nw &&
	    (set->w[(size_t)id / 64] >> (id % 64) & 1) != 0;
}
/* store_cache.c: allocate the slots, and forget every cached list (after
 * an undone write; at close). */
int store_cache_init(struct sqlite_store *st);
void store_cache_drop(struct sqlite_store *st);

#endif

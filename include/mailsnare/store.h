/*
 * The mailstore: inboxes, their IMAP mailboxes and the trapped messages.
 * Protocols, the CLI and (next) the HTTP API see only this API; what keeps
 * the data is a backend behind it (see "Backends" below), so another one
 * can take the first one's place. The first backend keeps everything in
 * one local database file; its schema is described in src/store.c.
 *
 * Deleting an inbox deletes its mailboxes and messages; the bytes of a
 * message go with the last message that refers to them (COPY shares them).
 *
 * Backends. Every store_* function that takes a store dispatches through
 * the store's table of operations (struct store_backend, as OpenSMTPD's
 * queue_backend; src/store_internal.h); store_open picks the table by
 * name. The API is synchronous, which suits an embedded database on a
 * local disk: a call costs microseconds and the reactor waits for it.
 * A networked backend (PostgreSQL) must not make the reactor wait for a
 * round trip. Either it runs its connection on a worker thread fed by a
 * queue (requests in, results posted back to the event loop through a
 * pipe or event_active), or it uses the client library's asynchronous API
 * (libpq's PQsendQuery/PQconsumeInput/PQisBusy) with the connection's
 * socket registered on the event loop. Either way an answer arrives on a
 * later loop pass, so callers that must not wait (deliveries, IMAP
 * commands, HTTP requests) get a variant of each call that takes a
 * completion callback, as deliver_submit already is for deliveries; the
 * synchronous calls stay for the CLI and for start-up. Change
 * notifications come from the backend too (PostgreSQL's LISTEN/NOTIFY
 * replaces store_poll_external).
 */
#ifndef MAILSNARE_STORE_H
#define MAILSNARE_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mailsnare/config.h"

struct msg_search;                      /* mailsnare/msg_search.h */

/* Results. Negative values are failures. */
enum {
	STORE_OK = 0,
	STORE_NOTFOUND = 1,
	STORE_EXISTS = 2,
	STORE_ERR = -1,       /* anything else: corrupt db, bug, I/O error */
	STORE_FULL = -2,      /* disk full, db read-only, quota: temporary (452 4.3.1) */
	STORE_BUSY = -3       /* locked by another process beyond the busy timeout */
};
/* A conditional store found the message changed since (RFC 7162). */
#define STORE_MODIFIED 3
/* A bound of struct store_limits was reached. */
#define STORE_LIMIT 4
/* The defaults of struct store_limits (keys max-mailboxes,
 * max-subscriptions, max-keywords): each is far beyond what a mail trap's
 * client makes, and keeps what one client can make every LIST, SELECT and
 * FLAGS line cost bounded. */
#define STORE_MAX_MAILBOXES 10000
#define STORE_MAX_SUBSCRIPTIONS 10000
#define STORE_MAX_KEYWORDS 200

/* Message flags (IMAP system flags). */
enum {
	STORE_FLAG_SEEN = 1 << 0,
	STORE_FLAG_ANSWERED = 1 << 1,
	STORE_FLAG_FLAGGED = 1 << 2,
	STORE_FLAG_DELETED = 1 << 3,
	STORE_FLAG_DRAFT = 1 << 4
};

#define STORE_NAME_MAX 64
#define STORE_PASS_MAX 128

struct store;

struct store_inbox {
	int64_t id;
	char name[STORE_NAME_MAX];
	char password[STORE_PASS_MAX];
	int64_t created;       /* unix time */
	int64_t messages;      /* messages in all its mailboxes (filled by foreach only) */
};

/* Bounds on what one inbox may hold besides messages; 0 means the
 * default (STORE_MAX_*). */
struct store_limits {
	unsigned mailboxes;          /* per inbox, INBOX and the special ones included */
	unsigned subscriptions;      /* per inbox */
	unsigned keywords;           /* distinct keywords in use per mailbox */
};

/* What store_open needs. */
struct store_options {
	const char *backend;         /* a name from store_backends(); NULL: the first */
	const char *path;            /* the database: a file, created if needed */
	enum durability durability;  /* what a commit waits for (config.h) */
	struct store_limits limits;
	/* The server: new messages are indexed for search in background
	 * slices (store_index_pending), not in their delivery's commit; a
	 * query with search terms indexes what is still waiting first. */
	bool defer_index;
	/* A reader beside the server's own connection (the search pool,
	 * src/search_pool.c): no migration (the server did it), and its
	 * searches never index (the server caught the index up first). */
	bool reader;
	char *err;                   /* NULL, or where to say why open failed */
	size_t errlen;
};

/* Opens (creating if needed, file mode 0600, parent directories 0700)
 * and brings the data's layout up to this program's version. NULL with a
 * message in opts->err on failure. */
struct store *store_open(const struct store_options *opts);
void store_close(struct store *st);
/* The names of the backends built in, NULL-terminated; the first is the
 * default. */
const char *const *store_backends(void);
/* The last error message, for logs. */
const char *store_errmsg(struct store *st);

/* The limits in effect (the options' with defaults filled in). */
const struct store_limits *store_get_limits(const struct store *st);

/* Inboxes. Names: valid UTF-8 of 1..STORE_NAME_MAX - 1 bytes, without
 * control characters (C0, DEL, C1), '/', a leading '.' or a leading or
 * trailing space. Every way of making an inbox (config, CLI, logins with
 * auth-accept-any, the HTTP API) goes through store_inbox_add, which
 * refuses other names. */
bool store_inbox_name_valid(const char *name);
/* The same for len bytes (a name inside a longer string): NULL if valid,
 * else what is wrong ("not valid UTF-8", ...), for an error message. */
const char *store_inbox_name_check(const char *name, size_t len);
int store_inbox_add(struct store *st, const char *name, const char *password,
    struct store_inbox *out);                 /* STORE_EXISTS if taken */
int store_inbox_get(struct store *st, const char *name, struct store_inbox *out);
/* Gets, or creates with `password` if missing (auth-accept-any, config). */
int store_inbox_ensure(struct store *st, const char *name, const char *password,
    struct store_inbox *out);
/* Updates the password of an existing inbox (config declares it). */
int store_inbox_set_password(struct store *st, const char *name, const char *password);
int store_inbox_del(struct store *st, const char *name);
typedef int (*store_inbox_cb)(const struct store_inbox *inbox, void *arg);
/* Calls cb for each inbox by name; a non-zero return from cb stops and is
 * returned. */
int store_inbox_foreach(struct store *st, store_inbox_cb cb, void *arg);

/* Transactions, so that many deliveries share one commit (group commit).
 * Without store_begin every call commits on its own. */
int store_begin(struct store *st);
int store_commit(struct store *st);
void store_rollback(struct store *st);

/* The bytes of a new message come from a reader: read(arg, buf, len)
 * returns bytes read (exactly `size` in all before it returns 0), or -1. */
struct store_source {
	uint64_t size;
	ssize_t (*read)(void *arg, void *buf, size_t len);
	void *arg;
};

struct store_new_message {
	int64_t inbox_id;            /* delivered to this inbox's INBOX ... */
	int64_t mailbox_id;          /* ... or to this mailbox if not 0 (APPEND) */
	unsigned flags;              /* STORE_FLAG_* (APPEND) */
	const char *keywords;        /* space-separated (APPEND); NULL if none */
	const void *structure;       /* mime_tree_serialize() output, or NULL */
	size_t structure_len;
	const char *mail_from;       /* envelope sender, "" for <> */
	const char *const *rcpts;    /* envelope recipients */
	size_t n_rcpts;
	const char *auth_user;       /* NULL if the session did not AUTH */
	const char *client_addr;     /* "127.0.0.1" */
	int64_t internal_date;       /* unix time of arrival */
	const char *hdr_from, *hdr_to, *hdr_subject, *hdr_date; /* NULL if absent */
	bool has_attachment;         /* the caller's MIME scan found one */
	struct store_source src;
	int64_t body_id;             /* its body staged (store_body_stage) or 0 */
};

/* Stores a message in INBOX of msg->inbox_id with a new UID and no flags.
 * The body is copied in chunks (incremental blob I/O). Sets *id. */
int store_message_add(struct store *st, const struct store_new_message *msg, int64_t *id);

/*
 * A large message's body written ahead of the message, a step at a time,
 * each step a transaction of its own (outside store_begin), so that no
 * one call copies more than about max_bytes: STORE_MORE while some of src
 * is left, STORE_OK when all of it is in (then store the message with
 * body_id = bs->body_id, which reads src no more). Start from a zeroed
 * stage. On an error what was staged is gone already. A staged body that
 * no message took is removed by store_body_discard, or by store_body_gc
 * (at the server's start: one left by a crash).
 */
struct store_body_stage {
	int64_t body_id;             /* 0 until the first step */
	uint64_t done;               /* bytes of src written */
	int64_t seq;                 /* the next segment */
};
int store_body_stage(struct store *st, struct store_body_stage *bs,
    const struct store_source *src, uint64_t max_bytes);
int store_body_discard(struct store *st, struct store_body_stage *bs);
int store_body_gc(struct store *st);

/* A body in segments whose last message went (or that was discarded)
 * waits in body_purge; one call removes about max_bytes of its segments
 * (at least one) in a transaction of its own, the body row with the last:
 * STORE_MORE while some body waits, STORE_OK when none does. */
int store_body_purge(struct store *st, uint64_t max_bytes);

/* WAL checkpoints in a thread of their own from now on, not inside the
 * commits of the caller's loop (the server's; store_ckpt.c). If it cannot
 * be started, SQLite's own go on. */
int store_checkpoint_thread(struct store *st);
/* Whether the WAL is large and a checkpoint is copying it: a writer that
 * can wait (staging, store_body_stage) lets it catch up. */
bool store_checkpoint_behind(struct store *st);

/* Deletes the oldest messages of the inbox's INBOX beyond `keep`, at most
 * STORE_PRUNE_STEP of them in one call (a few milliseconds, whatever the
 * excess after max-messages was lowered): STORE_MORE when it removed that
 * many, and another call may find more; STORE_OK when it is done. */
#define STORE_PRUNE_STEP 64
#define STORE_MORE 5
int store_inbox_prune(struct store *st, int64_t inbox_id, uint64_t keep);

/* Retention (max-age): deletes messages of one INBOX that arrived before
 * `before` (INTERNALDATE, unix time) among its STORE_PRUNE_STEP lowest
 * UIDs, in the first INBOX whose oldest message is that old. *pruned is
 * how many went: STORE_MORE when some did (call again), STORE_OK when no
 * INBOX starts with one that old. Delivery order is UID order, so the
 * oldest are always at the front. */
int store_prune_older(struct store *st, int64_t before, uint64_t *pruned);

/* The file's pages: how many, how many are free, and whether SQLite can
 * give free ones back (auto_vacuum = INCREMENTAL). */
struct store_space {
	int64_t page_size, pages, free_pages;
	bool incremental;
};
int store_space(struct store *st, struct store_space *out);
/* Gives back at most `pages` free pages to the file system (SQLite's
 * incremental vacuum): a bounded step. */
int store_vacuum_step(struct store *st, unsigned pages);
/* Makes a database from before auto_vacuum incremental: VACUUM, which
 * rewrites the whole file (at start, before any client is served). */
int store_make_incremental(struct store *st);

/* Messages and unread messages of every inbox, in all its mailboxes
 * (the counts the store keeps per mailbox, for /metrics). */
typedef int (*store_inbox_count_cb)(const char *name, int64_t messages, int64_t unread,
    void *arg);
int store_inbox_counts(struct store *st, store_inbox_count_cb cb, void *arg);

struct store_message_info {
	int64_t id;
	const char *inbox;
	const char *mailbox;
	uint32_t uid;
	unsigned flags;
	int64_t internal_date;
	uint64_t size;
	const char *mail_from;
	const char *rcpts;           /* envelope recipients joined with ", " */
	const char *auth_user;       /* "" if none */
	const char *client_addr;
	const char *hdr_from, *hdr_to, *hdr_subject, *hdr_date; /* "" if absent */
	int64_t inbox_id, mailbox_id;
	bool has_attachment;
};
typedef int (*store_message_cb)(const struct store_message_info *m, void *arg);
/* All messages (inbox NULL) or those of one inbox, by id ascending.
 * STORE_NOTFOUND if the inbox does not exist. */
int store_message_foreach(struct store *st, const char *inbox, store_message_cb cb, void *arg);
int store_message_get_info(struct store *st, int64_t id, store_message_cb cb, void *arg);

/*
 * A page of a message listing (the HTTP API), newest (highest id) first.
 * Every filter that is set must hold; text filters (NULL or "": not set)
 * are substrings, ASCII case-insensitive, without wildcards. Paging:
 * before_id gives the page after one that ended at before_id; after_id
 * the `limit` messages just above after_id (the page before one that
 * began there, or what is new since), still newest first. An inbox's
 * messages are those of all its mailboxes.
 */
struct store_query {
	int64_t inbox_id;            /* 0: every inbox */
	int64_t before_id;           /* only ids below this; 0: no bound */
	int64_t after_id;            /* only ids above this; 0: no bound */
	uint32_t limit;              /* rows at most; 0: all */
	uint32_t offset;             /* rows of the order skipped before the page */
	unsigned flags_set;          /* STORE_FLAG_*s that must all be set ... */
	unsigned flags_clear;        /* ... and all clear (unread: STORE_FLAG_SEEN) */
	const char *from;            /* in the From header or the envelope sender */
	const char *to;              /* in the To header or an envelope recipient */
	const char *subject;
	uint64_t size_min, size_max; /* bytes, inclusive; size_max 0: no bound */
	int64_t date_min, date_max;  /* arrival, unix time, inclusive; 0: no bound */
	int has_attachment;          /* 0: either, 1: with, -1: without */
	const struct msg_search *search;        /* NULL: no search terms */
};
/* Calls cb for each row of the page; sets *total (may be NULL) to the
 * number of messages the filters match, without paging. A non-zero return
 * from cb stops and is returned. */
int store_message_query(struct store *st, const struct store_query *q,
    store_message_cb cb, void *arg, uint64_t *total);
/* The same, and *unseen (may be NULL) the messages among *total without
 * STORE_FLAG_SEEN: counted in the same pass over the matches. */
int store_message_query_counted(struct store *st, const struct store_query *q,
    store_message_cb cb, void *arg, uint64_t *total, uint64_t *unseen);
/*
 * A search's matches with body ids in [body_lo, body_hi) (body_hi 0: no
 * bound), what store_message_query_counted counts and pages, without
 * reading the page's rows: the search pool runs it on its own connection
 * (a part of the bodies per thread) and the loop merges the parts and
 * reads the page (store_message_rows). Only for a query with limit > 0;
 * with after_id (the ids are then the limit just above it, still newest
 * first) only without offset or before_id; the SQLite backend only
 * (STORE_ERR otherwise).
 */
struct store_search_part {
	uint64_t n, seen;            /* matches, and the seen among them */
	int64_t *ids;                /* the newest offset + limit (with after_id:
	                              * the oldest above it), newest first */
	size_t nids;
};
int store_message_search_part(struct store *st, const struct store_query *q,
    int64_t body_lo, int64_t body_hi, struct store_search_part *out);
void store_search_part_free(struct store_search_part *p);
/* The highest body id (0: none), to split the bodies into parts. */
int store_body_id_max(struct store *st, int64_t *max);
/* cb for each of the n messages, in the order given (gone ones skipped). */
int store_message_rows(struct store *st, const int64_t *ids, size_t n,
    store_message_cb cb, void *arg);
/* The messages of one inbox (0: every inbox) and how many of them are
 * unseen, from counts the store keeps up to date on every change: a few
 * rows read, however many messages there are. */
int store_scope_counts(struct store *st, int64_t inbox_id, uint64_t *messages, uint64_t *unseen);
/* Every keyword any message carries, by name, with how many messages
 * carry it (kept up to date as store_scope_counts). A non-zero return
 * from cb stops and is returned. */
typedef int (*store_keyword_cb)(const char *name, uint64_t count, void *arg);
int store_keyword_counts(struct store *st, store_keyword_cb cb, void *arg);
/* Whether message id matches every term of s (the wait endpoint's test of
 * one new message): 1 or 0, or a negative STORE_* error (STORE_NOTFOUND
 * is not an error: 0). */
int store_message_matches(struct store *st, int64_t id, const struct msg_search *s);

/* The search index (src/store_fts.c): the decoded header fields and
 * text of message id, from its stored MIME structure and bytes, for
 * store_query.search. Delivery calls it inside its transaction, so a
 * message is searchable from its commit on; a body already indexed (a
 * COPY) costs one lookup. */
int store_message_index(struct store *st, int64_t id);
/* The indexing, a slice at a time: first messages stored since the
 * store was opened (with defer_index), then the back-fill of those stored
 * before the index existed (or whose indexing failed), oldest first. A
 * call indexes up to max (at most 64) messages and about
 * STORE_INDEX_SLICE_BYTES of their text; *done says how many, *more
 * whether to call again. The server runs it at its lowest priority, from
 * start-up and after each delivery. A message not reached yet by the
 * back-fill matches no term that reads the index (bare words, to:, cc:,
 * subject:, has:inline, ...); one reached by neither is indexed by the
 * first query that needs it. */
#define STORE_INDEX_SLICE_BYTES (32 * 1024)
int store_index_pending(struct store *st, unsigned max, unsigned *done, bool *more);
/* Whether messages stored since the store was opened wait for the index
 * (defer_index): a query with terms would index them first
 * (store_message_query), all at once. One probe of the primary key;
 * false on an error (the query's own catch-up reports it). */
bool store_index_backlog(struct store *st);

/* Streams the stored bytes of message id to sink in chunks; a non-zero
 * return from sink stops and is returned. */
typedef int (*store_sink)(void *arg, const void *buf, size_t len);
int store_message_read(struct store *st, int64_t id, store_sink sink, void *arg);

int store_message_del(struct store *st, int64_t id);
/* Deletes every message of an inbox; sets *count (may be NULL). */
int store_message_del_inbox(struct store *st, const char *inbox, int64_t *count);

/* A mailbox and its state, as POP3 and IMAP see it. Names are UTF-8 with
 * '/' as the hierarchy delimiter; "INBOX" is the inbox's own. */
#define STORE_MAILBOX_NAME_MAX 256
struct store_mailbox {
	int64_t id;
	int64_t inbox_id;
	char name[STORE_MAILBOX_NAME_MAX];
	char special_use[16];        /* "\Sent", ... or "" (RFC 6154) */
	uint32_t uidvalidity;
	uint32_t uidnext;
	uint64_t highestmodseq;
	uint32_t messages;
};
int store_mailbox_get(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out);
int store_mailbox_get_by_id(struct store *st, int64_t id, struct store_mailbox *out);
typedef int (*store_mailbox_cb)(const struct store_mailbox *mb, void *arg);
/* Every mailbox of an inbox, by name (messages not counted: 0). */
int store_mailbox_list(struct store *st, int64_t inbox_id, store_mailbox_cb cb, void *arg);
/* STORE_EXISTS if taken; parents are not created (the IMAP layer does). */
int store_mailbox_create(struct store *st, int64_t inbox_id, const char *name,
    struct store_mailbox *out);
/* Removes the mailbox and its messages (notified as expunged). */
int store_mailbox_delete(struct store *st, int64_t mailbox_id);
/* Renames `from` and its children ("from/..."); subscriptions are names
 * of their own and stay as they are. Renaming INBOX moves its
 * messages into a new mailbox `to` and leaves INBOX empty (RFC 3501
 * §6.3.5). STORE_NOTFOUND / STORE_EXISTS. */
int store_mailbox_rename(struct store *st, int64_t inbox_id, const char *from, const char *to);

struct store_mailbox_status {
	uint32_t messages, unseen, deleted, recent, uidnext, uidvalidity;
	uint64_t highestmodseq, size;
};
int store_mailbox_status(struct store *st, int64_t mailbox_id, struct store_mailbox_status *out);
/* \Recent (RFC 3501 §2.3.2): messages above the returned UID are recent
 * for the caller, who is the only one to get them; the watermark moves to
 * the mailbox's last UID. */
int store_mailbox_claim_recent(struct store *st, int64_t mailbox_id, uint32_t *above);
/* Keywords in use by messages of the mailbox, each once. */
typedef int (*store_name_cb)(const char *name, void *arg);
int store_mailbox_keywords(struct store *st, int64_t mailbox_id, store_name_cb cb, void *arg);
/* STORE_OK if adding the n keywords kw to messages of the mailbox keeps
 * its distinct keywords within limits.keywords; STORE_LIMIT if not. *in_use
 * (may be NULL) gets how many the mailbox has now. */
int store_mailbox_keywords_room(struct store *st, int64_t mailbox_id, const char *const *kw,
    size_t n, unsigned *in_use);

/* UIDs removed from the mailbox (deleted, expunged, moved out) with a
 * modseq above `since`, ascending (QRESYNC VANISHED, RFC 7162). Removals
 * also raise the mailbox's HIGHESTMODSEQ. */
typedef int (*store_uid_cb)(uint32_t uid, void *arg);
int store_mailbox_vanished(struct store *st, int64_t mailbox_id, uint64_t since,
    store_uid_cb cb, void *arg);

/* Subscriptions (LSUB): names, existing or not. */
int store_subscription_set(struct store *st, int64_t inbox_id, const char *name, bool on);
int store_subscription_list(struct store *st, int64_t inbox_id, store_name_cb cb, void *arg);

/* LIST a page at a time (IMAP LIST in slices): the mailboxes, or the
 * subscribed names, that sort after `after` ("" for the first), by name
 * (bytewise), at most `limit`; *rows says how many came. Each name comes
 * at most once over the pages, whatever is created or renamed between
 * them. */
int store_mailbox_page(struct store *st, int64_t inbox_id, const char *after, unsigned limit,
    store_mailbox_cb cb, void *arg, unsigned *rows);
int store_subscription_page(struct store *st, int64_t inbox_id, const char *after,
    unsigned limit, store_name_cb cb, void *arg, unsigned *rows);
/* The STATUS items the store keeps counted (MESSAGES, UNSEEN, UIDNEXT,
 * UIDVALIDITY, HIGHESTMODSEQ) in one row; deleted, recent and size are
 * left 0 (store_mailbox_status counts them over the messages). */
int store_mailbox_counts(struct store *st, int64_t mailbox_id, struct store_mailbox_status *out);
/* Whether a mailbox exists below name (a name starting with name + "/"). */
int store_mailbox_has_children(struct store *st, int64_t inbox_id, const char *name, bool *yes);

/* One message of a mailbox, by UID ascending. */
struct store_msg {
	int64_t id;
	uint32_t uid;
	unsigned flags;
	uint64_t size;
	int64_t internal_date;
	uint64_t modseq;
	const char *keywords;        /* space-separated, "" if none; valid in the callback */
};
typedef int (*store_msg_cb)(const struct store_msg *m, void *arg);
/* A non-zero return from cb stops and is returned. */
int store_mailbox_foreach(struct store *st, int64_t mailbox_id, store_msg_cb cb, void *arg);
/* The messages of the mailbox whose modseq is above `since` (new ones and
 * those whose flags changed), by UID ascending: what an IMAP view needs
 * to catch up, at the cost of what changed (indexed by modseq). */
int store_mailbox_changes(struct store *st, int64_t mailbox_id, uint64_t since,
    store_msg_cb cb, void *arg);
/* What says whether a copy of a mailbox's list is current: its
 * HIGHESTMODSEQ (every change raises it), its \Recent watermark (UIDs
 * above it are recent, not yet claimed) and its UIDVALIDITY (a mailbox
 * deleted and created again may get the same id, never the same
 * UIDVALIDITY). STORE_NOTFOUND once the mailbox is deleted. */
struct store_mailbox_state {
	uint64_t highestmodseq;
	uint32_t recent_above;
	uint32_t uidvalidity;
};
int store_mailbox_state(struct store *st, int64_t mailbox_id, struct store_mailbox_state *out);
/* flags = (flags & ~remove) | add; a change takes a new modseq and is
 * notified (STORE_CHANGE_FLAGS). STORE_OK also when nothing changed or
 * the message is gone (another session expunged it). */
int store_message_set_flags(struct store *st, int64_t id, unsigned add, unsigned remove);

/* Copies a message into another mailbox (a new UID, the same body, flags
 * and keywords); notified as new. */
int store_message_copy(struct store *st, int64_t id, int64_t dest_mailbox,
    int64_t *new_id, uint32_t *new_uid);
/* Moves it (RFC 6851): one step, a new UID in dest; notified as expunged
 * from the source and new in dest. The id stays. */
int store_message_move(struct store *st, int64_t id, int64_t dest_mailbox, uint32_t *new_uid);

/* IMAP STORE: replace, add or remove system flags and keywords at once.
 * unchangedsince (0 = unconditional): STORE_MODIFIED if the message's
 * modseq is higher (RFC 7162). Sets *modseq to the message's modseq
 * after the call. STORE_NOTFOUND if the message is gone. */
enum store_flags_op { STORE_FLAGS_SET, STORE_FLAGS_ADD, STORE_FLAGS_REMOVE };
int store_message_store(struct store *st, int64_t id, enum store_flags_op op, unsigned flags,
    const char *const *keywords, size_t n_keywords, uint64_t unchangedsince,
    uint64_t *modseq);
/* Current flags, keywords (space-separated, into kw) and modseq. */
int store_message_state(struct store *st, int64_t id, unsigned *flags, char *kw, size_t kwsize,
    uint64_t *modseq);

/* The MIME structure kept with a message: *blob is malloc'd (free it), or
 * NULL when it was never computed (then compute and set it). */
int store_message_structure(struct store *st, int64_t id, void **blob, size_t *len);
int store_message_set_structure(struct store *st, int64_t id, const void *blob, size_t len);

/* Streams bytes [offset, offset + len) of message id, clipped to its
 * size, to sink in chunks. */
int store_message_read_range(struct store *st, int64_t id, uint64_t offset, uint64_t len,
    store_sink sink, void *arg);

/* Change notifications, delivered after the commit that made them (at
 * once in autocommit mode): a new message (delivery), new flags, or a
 * message removed (delete, prune, expunge), with its inbox, mailbox and
 * id. */
enum store_change { STORE_CHANGE_NEW, STORE_CHANGE_FLAGS, STORE_CHANGE_EXPUNGE,
	STORE_CHANGE_EXTERNAL,
	STORE_CHANGE_PRUNE      /* an expunge by max-messages or max-age */
};
typedef void (*store_change_cb)(void *arg, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id);
int store_subscribe(struct store *st, store_change_cb cb, void *arg);
/* The changes of one inbox only, and every STORE_CHANGE_EXTERNAL.
 * store_unsubscribe ends either kind. */
int store_subscribe_inbox(struct store *st, int64_t inbox_id, store_change_cb cb, void *arg);
/* Another process (the CLI) may change the store while the server runs;
 * it has no way to notify. The server calls this now and then: if anyone
 * else committed since the last call, subscribers get one
 * STORE_CHANGE_EXTERNAL with inbox, mailbox and message 0 ("anything may
 * have changed"). Returns true if so. */
bool store_poll_external(struct store *st);
void store_unsubscribe(struct store *st, store_change_cb cb, void *arg);

/* Checks that the stored data is consistent (the backend's own check of
 * its files): STORE_OK if so, STORE_ERR with the finding in store_errmsg. */
int store_integrity_check(struct store *st);

#endif

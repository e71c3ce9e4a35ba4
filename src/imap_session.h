/*
 * What the IMAP command files share: the session, the selected mailbox's
 * view (message sequence numbers), and the response helpers. Not a public
 * API: include/mailsnare/imap.h is.
 */
#ifndef MAILSNARE_IMAP_SESSION_H
#define MAILSNARE_IMAP_SESSION_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/time.h>
#include <event2/event.h>

#include "mailsnare/imap.h"
#include "mailsnare/imap_parse.h"
#include "mailsnare/imap_seqset.h"
#include "mailsnare/sasl.h"
#include "mailsnare/store.h"

/* Session-local flag: \Recent is not stored per message (RFC 3501 §2.3.2). */
#define IMAP_FLAG_RECENT (1u << 8)
#define IMAP_SYSTEM_FLAGS "\\Answered \\Flagged \\Deleted \\Seen \\Draft"

enum imap_state { IMAP_NOTAUTH, IMAP_AUTH, IMAP_SELECTED, IMAP_LOGOUT };
#define IMAP_IN(st) (1u << (st))

/* What the next input is. */
enum imap_mode {
	IMAP_M_COMMAND,
	IMAP_M_AUTHENTICATE,   /* a SASL response line */
	IMAP_M_IDLE,           /* waiting for DONE */
	IMAP_M_WAIT,           /* auth-failure delay */
	IMAP_M_DONE
};

struct imap_msg {
	int64_t id;
	uint32_t uid;
	unsigned flags;        /* STORE_FLAG_* | IMAP_FLAG_RECENT */
	uint64_t modseq;
	uint64_t size;
	int64_t internal_date;
	char *keywords;        /* space-separated, NULL if none */
	bool gone;             /* expunged elsewhere, not yet announced */
};

struct imap_view {
	struct store_mailbox mb;
	bool readonly;
	struct imap_msg *msgs;
	size_t n, cap;
	uint64_t synced_modseq; /* the mailbox's HIGHESTMODSEQ when last synced */
	size_t gone;            /* messages marked gone, not yet announced */
	size_t recent;          /* messages with IMAP_FLAG_RECENT */
	bool deleted;           /* the mailbox is gone: no more syncing from the store */
	char *flags_sent;       /* keywords named in the last FLAGS response */
};

/*
 * A command that is not finished when its handler returns (as Dovecot's
 * command functions that return "not yet"): it waits for the client to
 * read its output (IMAP_CONT_OUTPUT: FETCH streaming bodies) or gives the
 * other clients a turn between slices of its work (IMAP_CONT_YIELD: SEARCH
 * over large bodies). run is called again then, until it returns
 * IMAP_CONT_DONE with its tagged reply sent; meanwhile the session reads no
 * input, so the view stays as the command found it. The pending command
 * owns its command and state.
 */
/* IMAP_CONT_WAIT: for something outside the session (APPEND: the group
 * commit), which calls imap_pending_wake when it is done. */
enum imap_cont { IMAP_CONT_DONE, IMAP_CONT_OUTPUT, IMAP_CONT_YIELD, IMAP_CONT_WAIT };
struct imap_session;
struct imap_pending {
	struct imap_command *cmd;
	enum imap_cont (*run)(struct imap_session *s, void *state);
	void (*free)(void *state);
	void *state;
	enum imap_cont waiting;
};

/* The message literals of the APPEND being read, streamed to ingests by
 * the reader's sink (imap_cmd_append.c), in order. */
struct ingest;
struct imap_append_spool {
	struct ingest **in;
	size_t n, cap;
};

struct imap_session {
	struct conn *conn;
	struct server *srv;
	enum imap_state state;
	enum imap_mode mode;
	struct imap_reader *reader;
	struct imap_limits limits;
	struct store_inbox inbox;
	struct imap_view *view;
	bool dirty;              /* the store changed: sync the view */
	bool utf8;               /* ENABLE UTF8=ACCEPT */
	bool condstore;          /* CONDSTORE enabled: MODSEQ in flag reports */
	bool qresync;            /* QRESYNC enabled: VANISHED instead of EXPUNGE */
	bool rev2;               /* ENABLE IMAP4rev2: RFC 9051 rules */
	bool authed_limits;      /* the limits and timeout of a logged-in client */
	char pending_tag[IMAP_TAG_MAX + 1];  /* AUTHENTICATE, a failed login, or IDLE */
	unsigned bad_commands;
	struct auth_session auth;            /* LOGIN, AUTHENTICATE (imap_cmd_auth.c) */
	struct event *ev_delay;              /* armed by auth.c after a failure */
	struct event *ev_sync;   /* reports changes to an idling client */
	struct timeval idle_synced;  /* when it last did */
	struct imap_pending pending;   /* a command not finished yet (cmd != NULL) */
	struct event *ev_resume;       /* its next slice (IMAP_CONT_YIELD) */
	struct imap_seqset search_saved; /* SEARCHRES "$": UIDs (imap_cmd_search.c) */
	/* "*" as the client knew the view when the command came, before the
	 * sync that precedes the command announced new messages: its set
	 * refers to that view (RFC 9051 §6.4.7, as Dovecot, which announces
	 * them after the command). Set by imap_dispatch. */
	struct {
		const struct imap_view *view;
		uint32_t msn, uid;
	} star;
	struct imap_append_spool append_spool;
};

/* A command: verb, the states where it runs, and what it does. */
#define IMAP_CMD_NO_EXPUNGE 0x1u   /* FETCH/STORE/SEARCH: no EXPUNGE before the reply */
#define IMAP_CMD_NO_SYNC 0x2u      /* SELECT/EXAMINE: nothing of the mailbox they leave */
struct imap_cmd {
	const char *verb;
	unsigned states;
	unsigned flags;
	void (*run)(struct imap_session *s, const struct imap_command *cmd);
};

/* Responses. */
void imap_printf(struct imap_session *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void imap_tagged(struct imap_session *s, const char *tag, const char *status,
    const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A string as quoted if it can be, else as a literal; NIL for NULL. */
void imap_write_string(struct imap_session *s, const char *str, size_t len);
/* A mailbox name from the store (UTF-8), as the client wants it. */
void imap_write_mailbox(struct imap_session *s, const char *name);
/* "(\Seen $Label)" of a view message. */
void imap_write_flags(struct imap_session *s, unsigned flags, const char *keywords);
void imap_send_capability(struct imap_session *s);
void imap_capability_string(struct imap_session *s, char *buf, size_t size);

/* Arguments. */
/* A mailbox name argument to its store form (UTF-8, INBOX normalised). */
bool imap_arg_mailbox(struct imap_session *s, const struct imap_arg *a, char *out,
    size_t outsize);
/* A flag list or single flag into system flags and keywords; false (and a
 * BAD sent) on invalid flags. kw gets pointers into the argument tree. */
bool imap_arg_flags(struct imap_session *s, const char *tag, const struct imap_arg *a,
    unsigned *flags, const char **kw, size_t *nkw, size_t kwmax);

/* The selected view. */
#define IMAP_IDLE_COALESCE_MS 10
/* A change for a client in IDLE: reported now or with the next ones. */
void imap_idle_notify(struct imap_session *s);
void imap_view_free(struct imap_view *v);
/* Brings the view in line with the store and reports the differences:
 * EXPUNGE (when allowed), EXISTS, RECENT, FETCH FLAGS. */
void imap_view_sync(struct imap_session *s, bool expunges);
/* The EXPUNGEs (or VANISHED) of the view's gone messages reported and
 * the messages dropped, max of the view looked at per call (after a sync
 * without expunges): true once all are. Between calls the view is half
 * compacted: nothing but this may read it (its session takes no command
 * meanwhile), though it may be freed. VANISHED goes out at the end. */
struct imap_expunge_cursor {
	size_t at, kept;
	struct imap_seqset vanished;
};
void imap_expunge_cursor_init(struct imap_expunge_cursor *c);
bool imap_view_expunge_step(struct imap_session *s, struct imap_expunge_cursor *c, size_t max);
/* "* FLAGS (...)" and "* OK [PERMANENTFLAGS (...)]" with these keywords
 * (space-separated), remembered as what the client knows. */
void imap_view_send_flags(struct imap_session *s, const char *keywords);
/* The same again with any of kw[] the client does not know yet, before a
 * FETCH shows them (RFC 3501 §7.2.6); nothing if it knows them all. */
void imap_view_announce_keywords(struct imap_session *s, const char *const *kw, size_t n);
/* true if every keyword of kw was in the last FLAGS sent (so none is new
 * to the mailbox, as far as this session knows). */
bool imap_view_keywords_known(const struct imap_session *s, const char *const *kw, size_t n);
/* A CONDSTORE enabling command (RFC 7162 §3.1) turns CONDSTORE on; with a
 * mailbox selected the first one also reports "* OK [HIGHESTMODSEQ n]". */
void imap_condstore_enable(struct imap_session *s);
/* The value of "*" in a message set (MSN or UID) of the command running:
 * the last message of the view as the client knew it at its start. */
uint32_t imap_view_star(struct imap_session *s, bool uid);
/* Evaluates a sequence set (MSN or UID) into view indexes; false after a
 * tagged BAD/NO was sent. */
bool imap_view_select(struct imap_session *s, const char *tag, const char *set, bool uid,
    struct imap_seqset *out);
/* "* n FETCH (UID u FLAGS (..) [MODSEQ (m)])" for view message i. */
void imap_report_flags(struct imap_session *s, size_t i, bool uid);
/* "* VANISHED [(EARLIER) ]set" of a normalised UID set, if not empty. */
void imap_send_vanished(struct imap_session *s, const struct imap_seqset *uids, bool earlier);
/* Index of a UID in the view, or -1. */
long imap_view_find_uid(const struct imap_view *v, uint32_t uid);
void imap_view_set_state(struct imap_msg *m, unsigned flags, const char *keywords,
    uint64_t modseq);

/* Message contents (imap_message.c). */
struct mime_part;
/* The MIME structure, from the store or computed once and kept there.
 * NULL on failure. Free with mime_part_free. */
struct mime_part *imap_msg_tree(struct imap_session *s, const struct imap_msg *m);
/* Bytes [off, off+len) of a message, malloc'd; NULL on failure. */
char *imap_msg_read(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len);
/* Streams bytes [off, off+len) of a message to the client. */
int imap_msg_send(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len);
/* The same bytes appended to b instead; b is as before on failure. */
struct imap_buf;
int imap_msg_copy(struct imap_session *s, const struct imap_msg *m, uint64_t off,
    uint64_t len, struct imap_buf *b);

/* Command handlers, by file. */
/* imap_cmd_session.c */
void imap_cmd_capability(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_noop(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_logout(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_id(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_namespace(struct imap_session *s, const struct imap_command *cmd);
/* imap_cmd_auth.c */
void imap_cmd_starttls(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_login(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_authenticate(struct imap_session *s, const struct imap_command *cmd);
void imap_auth_line(struct imap_session *s, const char *line);
void imap_auth_delay_cb(evutil_socket_t fd, short what, void *arg);
/* imap_cmd_enable.c, imap_cmd_idle.c, imap_cmd_compress.c */
void imap_cmd_enable(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_idle(struct imap_session *s, const struct imap_command *cmd);
void imap_idle_line(struct imap_session *s, const char *line);
void imap_cmd_compress(struct imap_session *s, const struct imap_command *cmd);

void imap_cmd_select(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_create(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_delete(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_rename(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_subscribe(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_list(struct imap_session *s, const struct imap_command *cmd);
bool imap_mailbox_has_children(struct imap_session *s, const char *name);
/* STATUS items: all known, then "* STATUS name (...)" for one mailbox. */
bool imap_status_items_valid(const struct imap_arg *items);
int imap_status_write(struct imap_session *s, const struct store_mailbox *mb,
    const struct imap_arg *items);
/* The same line from counts already read (LIST-STATUS: store_mailbox_counts). */
void imap_status_reply(struct imap_session *s, const struct store_mailbox *mb,
    const struct imap_arg *items, const struct store_mailbox_status *st);
void imap_cmd_status(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_append(struct imap_session *s, const struct imap_command *cmd);
/* APPEND's literals: the reader streams them (set once per session); what
 * a command did not take is dropped after it (or its error). */
void imap_append_sink_init(struct imap_session *s);
void imap_append_spool_drop(struct imap_session *s);
/* One mailbox-name argument; false after a BAD or NO was sent. */
bool imap_mailbox_arg(struct imap_session *s, const struct imap_command *cmd, size_t i,
    char *out);

/* imap_cmd_expunge.c */
void imap_cmd_check(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_close(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_expunge(struct imap_session *s, const struct imap_command *cmd);
/* imap_cmd_message.c, imap_fetch.c */
void imap_cmd_store(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_copy(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd);
/* Suspends cmd (see struct imap_pending); how is OUTPUT, YIELD or WAIT. */
void imap_pending_start(struct imap_session *s, const struct imap_command *cmd,
    enum imap_cont how, enum imap_cont (*run)(struct imap_session *, void *),
    void (*free_state)(void *), void *state);
/* What a command in IMAP_CONT_WAIT waited for is done: it runs again from
 * the loop (never from inside this call). */
void imap_pending_wake(struct imap_session *s);
void imap_cmd_search(struct imap_session *s, const struct imap_command *cmd);
/*
 * Long commands work in slices (struct imap_pending, IMAP_CONT_YIELD):
 * one slice reads about IMAP_SLICE_BYTES of headers and bodies, counting
 * each message as IMAP_SLICE_MSG_COST bytes more, and one whose MIME
 * structure had to be loaded as IMAP_SLICE_TREE_COST more (what loading it
 * costs against reading bytes: a few microseconds). A slice is then a few
 * milliseconds at most; output goes out in pieces of IMAP_SLICE_OUTPUT,
 * waiting (IMAP_CONT_OUTPUT) while more than that is queued.
 */
#define IMAP_SLICE_BYTES (4u * 1024 * 1024)
#define IMAP_SLICE_MSG_COST 256u
#define IMAP_SLICE_TREE_COST 8192u
#define IMAP_SLICE_OUTPUT (64u * 1024)
/* In-memory work per slice (SORT's ordering, THREAD's threading and its
 * text): IMAP_SLICE_STEPS work units of imap_sort.h (a comparison, a node
 * or reference visited, a number written). bench/sort_steps measures a
 * slice at 0.1-0.8 ms (median) and 0.5-2 ms (worst) of CPU on the
 * project's VM under load, for 20,000 as for 100,000 messages. */
#define IMAP_SLICE_STEPS 30000u

/* A parsed program evaluated over the view in slices: the matching
 * messages as view indexes in ascending order. imap_search_resolve first
 * (resolves its sets in place; false on an invalid set or no memory), then
 * imap_search_step until it returns 1 (0: the budget is spent, call again
 * in a later pass; -1: no memory). Free it->idx. */
struct imap_search;
struct imap_text_scan;
struct imap_search_iter {
	size_t next;
	size_t *idx, n, cap;
	struct imap_text_scan *scan;    /* BODY/TEXT of message `next` ... */
	enum { IMAP_SCAN_NONE, IMAP_SCAN_BEGUN, IMAP_SCAN_DONE } scan_state;
};
/* Frees idx and what a step left. */
void imap_search_iter_free(struct imap_search_iter *it);
bool imap_search_resolve(struct imap_session *s, struct imap_search *q);
int imap_search_step(struct imap_session *s, struct imap_search *q, struct imap_search_iter *it,
    uint64_t budget);
/* imap_search_text.c: the BODY and TEXT keys of a program matched over
 * one message's decoded text in steps (imap_text_scan_step: 1 when done,
 * 0 when budget was spent first, -1 on no memory; adds what it read to
 * *cost), then asked per key node. Reset before each message. */
struct imap_search_node;
struct imap_text_scan *imap_text_scan_new(const struct imap_search_node *root);
void imap_text_scan_reset(struct imap_text_scan *ts);
int imap_text_scan_step(struct imap_session *s, struct imap_text_scan *ts,
    const struct imap_msg *m, uint64_t budget, uint64_t *cost);
bool imap_text_scan_found(const struct imap_text_scan *ts, const struct imap_search_node *n);
void imap_text_scan_free(struct imap_text_scan *ts);
/* The tagged NO/BAD for a program that failed to parse. */
void imap_search_reply_error(struct imap_session *s, const char *tag,
    const struct imap_error *err, const char *what);
/* SEARCHRES: empties the saved result (SELECT, EXAMINE, CLOSE, UNSELECT,
 * and the session's end); the saved result as UIDs or message numbers of
 * the view, for "$" in a sequence set. */
void imap_search_saved_reset(struct imap_session *s);
enum imap_seq_rc imap_search_saved_set(struct imap_session *s, bool uid, struct imap_seqset *out);
/* imap_cmd_sort.c */
void imap_cmd_sort(struct imap_session *s, const struct imap_command *cmd);
void imap_cmd_thread(struct imap_session *s, const struct imap_command *cmd);

#endif

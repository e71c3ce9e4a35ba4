/*
 * The SQLite backend of the mailstore (the API: include/mailsnare/store.h;
 * the table of operations: store_sqlite_backend at the end), in one
 * database file in WAL mode.
 *
 * Schema (PRAGMA user_version, migrated step by step; the base tables):
 *   inbox(id, name UNIQUE, password, created)
 *   mailbox(id, inbox_id, name, uidvalidity, uidnext, highestmodseq)
 *   body(id, data BLOB)                 raw bytes as stored
 *   message(id, mailbox_id, body_id, uid, flags, modseq, internal_date,
 *           size, mail_from, auth_user, client_addr,
 *           hdr_from, hdr_to, hdr_subject, hdr_date)
 *   message_rcpt(message_id, seq, addr) the SMTP envelope's RCPT TO list
 * and what the migrations add (IMAP state, tombstones, the listing's
 * columns, body_more: the rest of a large body, store_body.c). Deleting an
 * inbox deletes its mailboxes and messages; a body
 * goes with the last message that refers to it.
 *
 * Every statement is prepared once and kept in st->stmts; a statement that
 * is still stepping when a callback re-enters the store is not touched, a
 * private copy is prepared instead (stmt_get/stmt_put). Every write runs
 * in its own transaction in autocommit mode and in a savepoint inside
 * store_begin's transaction (struct wtx), so a failed write never leaves
 * half a message behind and never spoils the writes grouped with it.
 */
#include "mailsnare/store.h"
#include "store_internal.h"
#include "mailsnare/msg_search.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#define STORE_BUSY_TIMEOUT_MS 5000

/* ---- schema ------------------------------------------------------------ */

/*
 * migrations[i] takes the schema from user_version i to i + 1. A new
 * version is one more entry; existing entries never change.
 */
static const char *const migrations[] = {
	/* 0 -> 1 */
	"CREATE TABLE inbox ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"   /* ids never reused */
	"  name TEXT NOT NULL UNIQUE,"
	"  password TEXT NOT NULL,"
	"  created INTEGER NOT NULL);"
	"CREATE TABLE mailbox ("
	"  id INTEGER PRIMARY KEY,"
	"  inbox_id INTEGER NOT NULL REFERENCES inbox(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  uidvalidity INTEGER NOT NULL,"
	"  uidnext INTEGER NOT NULL DEFAULT 1,"
	"  highestmodseq INTEGER NOT NULL DEFAULT 1,"
	"  UNIQUE (inbox_id, name));"
	"CREATE TABLE body ("
	"  id INTEGER PRIMARY KEY,"
	"  data BLOB NOT NULL);"
	/* AUTOINCREMENT: a message id named by the CLI or HTTP API never
	 * comes back as another message after a delete. */
	"CREATE TABLE message ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  mailbox_id INTEGER NOT NULL REFERENCES mailbox(id) ON DELETE CASCADE,"
	"  body_id INTEGER NOT NULL REFERENCES body(id),"
	"  uid INTEGER NOT NULL,"
	"  flags INTEGER NOT NULL DEFAULT 0,"
	"  modseq INTEGER NOT NULL,"
	"  internal_date INTEGER NOT NULL,"
	"  size INTEGER NOT NULL,"
	"  mail_from TEXT NOT NULL,"
	"  auth_user TEXT,"
	"  client_addr TEXT NOT NULL,"
	"  hdr_from TEXT, hdr_to TEXT, hdr_subject TEXT, hdr_date TEXT);"
	"CREATE UNIQUE INDEX message_mailbox_uid ON message(mailbox_id, uid);"
	"CREATE INDEX message_body ON message(body_id);"
	/* The primary key is the index on message_id (a clustered one). */
	"CREATE TABLE message_rcpt ("
	"  message_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
	"  seq INTEGER NOT NULL,"
	"  addr TEXT NOT NULL,"
	"  PRIMARY KEY (message_id, seq)) WITHOUT ROWID;"
	/* A body may be shared (IMAP COPY); it goes with its last message.
	 * Also fires for messages removed by the mailbox/inbox cascade. */
	"CREATE TRIGGER message_body_gc AFTER DELETE ON message BEGIN"
	"  DELETE FROM body WHERE id = OLD.body_id"
	"    AND NOT EXISTS (SELECT 1 FROM message WHERE body_id = OLD.body_id);"
	"END;",
	/* 1 -> 2: IMAP. Keywords, subscriptions, the MIME structure kept
	 * with each message, the \Recent watermark, and the special-use
	 * mailboxes (RFC 6154) of every inbox. */
	"ALTER TABLE mailbox ADD COLUMN special_use TEXT;"
	"ALTER TABLE mailbox ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE message ADD COLUMN structure BLOB;"
	"CREATE TABLE message_keyword ("
	"  message_id INTEGER NOT NULL REFERENCES message(id) ON DELETE CASCADE,"
	"  keyword TEXT NOT NULL,"
	"  PRIMARY KEY (message_id, keyword)) WITHOUT ROWID;"
	"CREATE TABLE subscription ("
	"  inbox_id INTEGER NOT NULL REFERENCES inbox(id) ON DELETE CASCADE,"
	"  name TEXT NOT NULL,"
	"  PRIMARY KEY (inbox_id, name)) WITHOUT ROWID;"
	"WITH s(name, use, n) AS (VALUES ('Drafts', '\\Drafts', 1), ('Junk', '\\Junk', 2),"
	"  ('Sent', '\\Sent', 3), ('Trash', '\\Trash', 4))"
	" INSERT INTO mailbox (inbox_id, name, uidvalidity, special_use)"
	" SELECT i.id, s.name, CAST(strftime('%s', 'now') AS INTEGER) + s.n, s.use"
	" FROM inbox i, s WHERE NOT EXISTS"
	"  (SELECT 1 FROM mailbox b WHERE b.inbox_id = i.id AND b.name = s.name);"
	"INSERT OR IGNORE INTO subscription (inbox_id, name) SELECT inbox_id, name FROM mailbox;",
	/* 2 -> 3: QRESYNC (RFC 7162) needs the UIDs expunged since a modseq.
	 * Every removal of a message from a mailbox (delete, prune, expunge,
	 * the move out of it) takes the mailbox's next modseq and leaves a
	 * tombstone; triggers catch every path, the CLI's too. */
	"CREATE TABLE expunged ("
	"  mailbox_id INTEGER NOT NULL,"
	"  uid INTEGER NOT NULL,"
	"  modseq INTEGER NOT NULL,"
	"  PRIMARY KEY (mailbox_id, uid)) WITHOUT ROWID;"
	"CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);"
	"CREATE TRIGGER message_expunged AFTER DELETE ON message BEGIN"
	"  UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = OLD.mailbox_id;"
	"  INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
	"    SELECT OLD.mailbox_id, OLD.uid, highestmodseq FROM mailbox WHERE id = OLD.mailbox_id;"
	"END;"
	"CREATE TRIGGER message_moved AFTER UPDATE OF mailbox_id ON message"
	"  WHEN OLD.mailbox_id != NEW.mailbox_id BEGIN"
	"  UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = OLD.mailbox_id;"
	"  INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
	"    SELECT OLD.mailbox_id, OLD.uid, highestmodseq FROM mailbox WHERE id = OLD.mailbox_id;"
	"END;"
	"CREATE TRIGGER mailbox_expunged_gc AFTER DELETE ON mailbox BEGIN"
	"  DELETE FROM expunged WHERE mailbox_id = OLD.id;"
	"END;",
	/* 3 -> 4: an IMAP view syncs from what changed since its modseq
	 * (flags, new messages) instead of re-reading the mailbox; SELECT
	 * reads the view's columns from one covering index, with the
	 * keywords kept beside the flags by triggers (a subquery per message
	 * cost more than the rest of the row). */
	"ALTER TABLE message ADD COLUMN keywords TEXT;"
	"UPDATE message SET keywords = (SELECT group_concat(keyword, ' ') FROM message_keyword"
	"  WHERE message_id = message.id) WHERE id IN (SELECT message_id FROM message_keyword);"
	"CREATE TRIGGER message_keyword_added AFTER INSERT ON message_keyword BEGIN"
	"  UPDATE message SET keywords = (SELECT group_concat(keyword, ' ') FROM message_keyword"
	"    WHERE message_id = NEW.message_id) WHERE id = NEW.message_id;"
	"END;"
	"CREATE TRIGGER message_keyword_removed AFTER DELETE ON message_keyword BEGIN"
	"  UPDATE message SET keywords = (SELECT group_concat(keyword, ' ') FROM message_keyword"
	"    WHERE message_id = OLD.message_id) WHERE id = OLD.message_id;"
	"END;"
	"CREATE INDEX message_view ON message(mailbox_id, uid, flags, modseq, size,"
	"  internal_date, keywords);"
	"CREATE INDEX message_modseq ON message(mailbox_id, modseq);"
	/* A MOVE into the mailbox it is in changes only the UID: that is a
	 * removal of the old UID too (RFC 6851 §3.3). */
	"DROP TRIGGER message_moved;"
	"CREATE TRIGGER message_moved AFTER UPDATE OF mailbox_id, uid ON message"
	"  WHEN OLD.mailbox_id != NEW.mailbox_id OR OLD.uid != NEW.uid BEGIN"
	"  UPDATE mailbox SET highestmodseq = highestmodseq + 1 WHERE id = OLD.mailbox_id;"
	"  INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq)"
	"    SELECT OLD.mailbox_id, OLD.uid, highestmodseq FROM mailbox WHERE id = OLD.mailbox_id;"
	"END;",
	/* 4 -> 5: the message listing of the HTTP API (store_message_query)
	 * pages an inbox's messages newest first by id, and filters on
	 * whether a message has an attachment (the delivering side's MIME
	 * scan says so; messages stored before are taken as without). */
	"ALTER TABLE message ADD COLUMN has_attachment INTEGER NOT NULL DEFAULT 0;"
	"CREATE INDEX message_mailbox_id ON message(mailbox_id, id);",
	/* 5 -> 6: search (include/mailsnare/msg_search.h). What a search
	 * tests beyond the listing's columns, kept per body (a COPY shares
	 * it): the header fields decoded and case-folded (store_fts.c), so
	 * that a substring test is a plain instr() that is right for all of
	 * Unicode, and the words of subject, addresses and decoded text in a
	 * full-text index. Messages stored before have no row until
	 * store_index_pending reaches them (indexed lazily, oldest first). */
	"CREATE TABLE body_search ("
	"  body_id INTEGER PRIMARY KEY,"
	"  subject TEXT NOT NULL, hdr_from TEXT NOT NULL, hdr_to TEXT NOT NULL,"
	"  cc TEXT NOT NULL, bcc TEXT NOT NULL, reply_to TEXT NOT NULL,"
	"  message_id TEXT NOT NULL, has_inline INTEGER NOT NULL);"
	/* remove_diacritics 2: "cafe" finds "café", as Mailpit's users
	 * expect of a search box (Mailpit folds case only; a word typed
	 * without its accent finding nothing is the worse surprise). */
	"CREATE VIRTUAL TABLE body_fts USING fts5(subject, addrs, text,"
	"  tokenize = 'unicode61 remove_diacritics 2');"
	"CREATE TRIGGER body_search_gc AFTER DELETE ON body BEGIN"
	"  DELETE FROM body_search WHERE body_id = OLD.id;"
	"  DELETE FROM body_fts WHERE rowid = OLD.id;"
	"END;",
	/* 6 -> 7: counts kept by triggers, so that a listing's envelope
	 * (total, unread, tags) and /api/v1/info cost a few rows however
	 * large the store: each mailbox's messages and unseen ones, and how
	 * many messages carry each keyword. The triggers catch every path
	 * (the CLI, cascades from a mailbox or an inbox). Unseen is flag bit
	 * 1 (STORE_FLAG_SEEN). */
	"ALTER TABLE mailbox ADD COLUMN n_messages INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE mailbox ADD COLUMN n_unseen INTEGER NOT NULL DEFAULT 0;"
	"UPDATE mailbox SET"
	"  n_messages = (SELECT count(*) FROM message WHERE mailbox_id = mailbox.id),"
	"  n_unseen = (SELECT count(*) FROM message WHERE mailbox_id = mailbox.id"
	"    AND (flags & 1) = 0);"
	"CREATE TRIGGER message_count_add AFTER INSERT ON message BEGIN"
	"  UPDATE mailbox SET n_messages = n_messages + 1,"
	"    n_unseen = n_unseen + ((NEW.flags & 1) = 0) WHERE id = NEW.mailbox_id;"
	"END;"
	"CREATE TRIGGER message_count_del AFTER DELETE ON message BEGIN"
	"  UPDATE mailbox SET n_messages = n_messages - 1,"
	"    n_unseen = n_unseen - ((OLD.flags & 1) = 0) WHERE id = OLD.mailbox_id;"
	"END;"
	"CREATE TRIGGER message_count_upd AFTER UPDATE OF flags, mailbox_id ON message"
	"  WHEN (OLD.flags & 1) != (NEW.flags & 1) OR OLD.mailbox_id != NEW.mailbox_id BEGIN"
	"  UPDATE mailbox SET n_messages = n_messages - 1,"
	"    n_unseen = n_unseen - ((OLD.flags & 1) = 0) WHERE id = OLD.mailbox_id;"
	"  UPDATE mailbox SET n_messages = n_messages + 1,"
	"    n_unseen = n_unseen + ((NEW.flags & 1) = 0) WHERE id = NEW.mailbox_id;"
	"END;"
	"CREATE TABLE keyword_count ("
	"  keyword TEXT PRIMARY KEY,"
	"  n INTEGER NOT NULL) WITHOUT ROWID;"
	"INSERT INTO keyword_count (keyword, n)"
	"  SELECT keyword, count(*) FROM message_keyword GROUP BY keyword;"
	"CREATE TRIGGER keyword_count_add AFTER INSERT ON message_keyword BEGIN"
	"  INSERT INTO keyword_count (keyword, n) VALUES (NEW.keyword, 1)"
	"    ON CONFLICT (keyword) DO UPDATE SET n = n + 1;"
	"END;"
	"CREATE TRIGGER keyword_count_del AFTER DELETE ON message_keyword BEGIN"
	"  UPDATE keyword_count SET n = n - 1 WHERE keyword = OLD.keyword;"
	"  DELETE FROM keyword_count WHERE keyword = OLD.keyword AND n <= 0;"
	"END;",
	/* 7 -> 8: a large body is written over several loop passes, a
	 * segment at a time, each pass a short transaction (store_body.c):
	 * body.data has its first bytes, body_more the rest in order. */
	"CREATE TABLE body_more ("
	"  id INTEGER PRIMARY KEY,"
	"  body_id INTEGER NOT NULL,"
	"  seq INTEGER NOT NULL,"
	"  data BLOB NOT NULL);"
	"CREATE UNIQUE INDEX body_more_seq ON body_more(body_id, seq);"
	"CREATE TRIGGER body_more_gc AFTER DELETE ON body BEGIN"
	"  DELETE FROM body_more WHERE body_id = OLD.id;"
	"END;",
	/* 8 -> 9: deleting a 28 MB body in one statement held the loop for
	 * some 80 ms. A body in segments that loses its last message goes to
	 * body_purge instead, and store_body_purge removes it a few segments
	 * per step; its body row goes last, so its id is not taken again
	 * before then. No message refers to it meanwhile: no reader sees it. */
	"CREATE TABLE body_purge (body_id INTEGER PRIMARY KEY);"
	"DROP TRIGGER message_body_gc;"
	"CREATE TRIGGER message_body_gc AFTER DELETE ON message"
	"  WHEN NOT EXISTS (SELECT 1 FROM message WHERE body_id = OLD.body_id) BEGIN"
	"  INSERT OR IGNORE INTO body_purge (body_id) SELECT OLD.body_id"
	"    WHERE EXISTS (SELECT 1 FROM body_more WHERE body_id = OLD.body_id);"
	"  DELETE FROM body WHERE id = OLD.body_id"
	"    AND NOT EXISTS (SELECT 1 FROM body_more WHERE body_id = OLD.body_id);"
	"END;",
	/* 9 -> 10: a search's pass (store_message_query) reads each
	 * message's body, flags and mailbox from this index alone, 100,000
	 * entries in some 400 pages, instead of the message rows (31 MB with
	 * their MIME structure). It replaces message_body (body_id first,
	 * so it serves the same lookups); built here, at the first start:
	 * about 0.1 s for 100,000 messages. */
	"DROP INDEX message_body;"
	"CREATE INDEX message_search ON message(body_id, flags, mailbox_id);"
	/* And a field term of three characters or more (subject:, to:, ...)
	 * finds its bodies in a trigram index of body_search's folded fields
	 * (store_fts.c) instead of testing all 100,000 rows with instr():
	 * case-sensitive, as both sides are folded already. Built from
	 * body_search here, at the first start: about 2 s for 100,000
	 * messages; rows written with body_search's, removed with them. */
	"CREATE VIRTUAL TABLE body_tri USING fts5(subject, hdr_from, hdr_to, cc, bcc,"
	"  reply_to, message_id, content = 'body_search', content_rowid = 'body_id',"
	"  tokenize = 'trigram case_sensitive 1');"
	"INSERT INTO body_tri (body_tri) VALUES ('rebuild');"
	"CREATE TRIGGER body_tri_gc AFTER DELETE ON body_search BEGIN"
	"  INSERT INTO body_tri (body_tri, rowid, subject, hdr_from, hdr_to, cc, bcc,"
	"    reply_to, message_id) VALUES ('delete', OLD.body_id, OLD.subject, OLD.hdr_from,"
	"    OLD.hdr_to, OLD.cc, OLD.bcc, OLD.reply_to, OLD.message_id);"
	"END;",
};
#define SCHEMA_VERSION ((int)(sizeof(migrations) / sizeof(migrations[0])))

/* ---- prepared statements ----------------------------------------------- */


#define INBOX_COLS \
	"SELECT i.id, i.name, i.password, i.created," \
	" (SELECT coalesce(sum(b.n_messages), 0) FROM mailbox b WHERE b.inbox_id = i.id) FROM inbox i "

#define MSG_COLS \
	"SELECT m.id, i.name, b.name, m.uid, m.flags, m.internal_date, m.size," \
	" m.mail_from, m.auth_user, m.client_addr," \
	" m.hdr_from, m.hdr_to, m.hdr_subject, m.hdr_date," \
	" b.inbox_id, m.mailbox_id, m.has_attachment" \
	" FROM message m JOIN mailbox b ON b.id = m.mailbox_id" \
	" JOIN inbox i ON i.id = b.inbox_id "

static const char *const query_sql[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_SAVEPOINT] = "SAVEPOINT store_write",
	[Q_RELEASE] = "RELEASE store_write",
	[Q_ROLLBACK_TO] = "ROLLBACK TO store_write",
	/* Without the message count: it is read on every login and MAIL. */
	[Q_INBOX_GET] = "SELECT id, name, password, created, 0 FROM inbox WHERE name = ?1",
	[Q_INBOX_LIST] = INBOX_COLS "ORDER BY i.name",
	[Q_INBOX_ID] = "SELECT id FROM inbox WHERE name = ?1",
	[Q_INBOX_ADD] = "INSERT INTO inbox (name, password, created) VALUES (?1, ?2, ?3)",
	[Q_MAILBOX_ADD] = "INSERT INTO mailbox (inbox_id, name, uidvalidity, uidnext,"
	    " highestmodseq, special_use) VALUES (?1, ?3, ?2, 1, 1, ?4)",
	[Q_INBOX_SET_PASSWORD] = "UPDATE inbox SET password = ?2 WHERE name = ?1",
	[Q_INBOX_DEL] = "DELETE FROM inbox WHERE name = ?1",
	/* One step allocates the UID and the modseq of a new message. */
	[Q_MAILBOX_NEXT] = "UPDATE mailbox SET uidnext = uidnext + 1,"
	    " highestmodseq = highestmodseq + 1"
	    " WHERE inbox_id = ?1 AND name = 'INBOX'"
	    " RETURNING id, uidnext - 1, highestmodseq",
	[Q_BODY_ADD] = "INSERT INTO body (data) VALUES (zeroblob(?1))",
	[Q_BODY_ADD_DATA] = "INSERT INTO body (data) VALUES (?1)",
	[Q_MSG_ADD] = "INSERT INTO message (mailbox_id, body_id, uid, flags, modseq,"
	    " internal_date, size, mail_from, auth_user, client_addr,"
	    " hdr_from, hdr_to, hdr_subject, hdr_date, structure, has_attachment)"
	    " VALUES (?1, ?2, ?3, ?14, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?15, ?16)",
	[Q_RCPT_ADD] = "INSERT INTO message_rcpt (message_id, seq, addr) VALUES (?1, ?2, ?3)",
	[Q_MSG_LIST_ALL] = MSG_COLS "ORDER BY m.id",
	[Q_MSG_LIST_INBOX] = MSG_COLS "WHERE b.inbox_id = ?1 ORDER BY m.id",
	[Q_MSG_INFO] = MSG_COLS "WHERE m.id = ?1",
	[Q_RCPT_LIST] = "SELECT addr FROM message_rcpt WHERE message_id = ?1 ORDER BY seq",
	[Q_MSG_BODY] = "SELECT body_id, size FROM message WHERE id = ?1",
	/* Deletes return what they removed, for the change notifications. */
	[Q_MSG_DEL] = "DELETE FROM message WHERE id = ?1 RETURNING mailbox_id, id,"
	    " (SELECT inbox_id FROM mailbox b WHERE b.id = message.mailbox_id)",
	[Q_MSG_DEL_INBOX] = "DELETE FROM message WHERE mailbox_id IN"
	    " (SELECT id FROM mailbox WHERE inbox_id = ?1) RETURNING mailbox_id, id, ?1",
	/* The oldest ?3 of those at or below the newest UID beyond `keep`
	 * (LIMIT 1 OFFSET keep from the top): a bounded step. */
	[Q_PRUNE] = "DELETE FROM message WHERE id IN (SELECT id FROM message"
	    " WHERE mailbox_id = (SELECT id FROM mailbox WHERE inbox_id = ?1 AND name = 'INBOX')"
	    " AND uid <= (SELECT uid FROM message WHERE mailbox_id ="
	    "  (SELECT id FROM mailbox WHERE inbox_id = ?1 AND name = 'INBOX')"
	    "  ORDER BY uid DESC LIMIT 1 OFFSET ?2)"
	    " ORDER BY uid LIMIT ?3) RETURNING mailbox_id, id, ?1",
	[Q_INTEGRITY] = "PRAGMA integrity_check",
	[Q_MAILBOX_GET] = MAILBOX_COLS "WHERE b.inbox_id = ?1 AND b.name = ?2",
	[Q_MAILBOX_MSGS] = "SELECT m.id, m.uid, m.flags, m.size, m.internal_date, m.modseq,"
	    " m.keywords FROM message m INDEXED BY message_view"
	    " WHERE m.mailbox_id = ?1 ORDER BY m.uid",
	/* What changed costs what changed: the modseq index, never a scan
	 * of the covering one that the planner would take to save the sort. */
	[Q_MAILBOX_CHANGES] = "SELECT m.id, m.uid, m.flags, m.size, m.internal_date, m.modseq,"
	    " m.keywords FROM message m INDEXED BY message_modseq"
	    " WHERE m.mailbox_id = ?1 AND m.modseq > ?2 ORDER BY m.uid",
	[Q_MAILBOX_STATE] = "SELECT highestmodseq, recent_uid, uidvalidity FROM mailbox WHERE id = ?1",
	/* The counts the triggers of schema 7 keep. */
	[Q_SCOPE_COUNTS] = "SELECT coalesce(sum(n_messages), 0), coalesce(sum(n_unseen), 0)"
	    " FROM mailbox WHERE ?1 = 0 OR inbox_id = ?1",
	[Q_KEYWORD_COUNTS] = "SELECT keyword, n FROM keyword_count ORDER BY keyword",
	/* A flag change takes the mailbox's next modseq (RFC 7162). */
	[Q_MSG_FLAGS] = "UPDATE message SET flags = (flags & ~?3) | ?2,"
	    " modseq = (SELECT highestmodseq + 1 FROM mailbox WHERE id = message.mailbox_id)"
	    " WHERE id = ?1 AND flags != ((flags & ~?3) | ?2)"
	    " RETURNING mailbox_id, flags, modseq,"
	    " (SELECT inbox_id FROM mailbox b WHERE b.id = message.mailbox_id)",
	[Q_MAILBOX_MODSEQ] = "UPDATE mailbox SET highestmodseq = ?2 WHERE id = ?1",
	/* store_body.c: bodies in segments, and staged ones no message took. */
	[Q_BODY_MORE_ADD] = "INSERT INTO body_more (body_id, seq, data) VALUES (?1, ?2, ?3)",
	[Q_BODY_MORE_GET] = "SELECT id, length(data) FROM body_more WHERE body_id = ?1 AND seq = ?2",
	[Q_BODY_DISCARD] = "DELETE FROM body WHERE id = ?1"
	    " AND NOT EXISTS (SELECT 1 FROM message WHERE body_id = ?1)"
	    " AND NOT EXISTS (SELECT 1 FROM body_purge WHERE body_id = ?1)",
	[Q_BODY_ORPHANS] = "DELETE FROM body WHERE NOT EXISTS"
	    " (SELECT 1 FROM message m WHERE m.body_id = body.id)"
	    " AND NOT EXISTS (SELECT 1 FROM body_purge p WHERE p.body_id = body.id)",
	[Q_BODY_PURGE_ADD] = "INSERT OR IGNORE INTO body_purge (body_id) SELECT ?1"
	    " WHERE NOT EXISTS (SELECT 1 FROM message WHERE body_id = ?1)"
	    " AND EXISTS (SELECT 1 FROM body_more WHERE body_id = ?1)",
	[Q_BODY_PURGE_NEXT] = "SELECT body_id FROM body_purge LIMIT 1",
	[Q_BODY_PURGE_SEGS] = "DELETE FROM body_more WHERE id IN (SELECT id FROM body_more"
	    " WHERE body_id = ?1 ORDER BY seq DESC LIMIT ?2)",
	[Q_BODY_PURGE_BODY] = "DELETE FROM body WHERE id = ?1",
	[Q_BODY_PURGE_DROP] = "DELETE FROM body_purge WHERE body_id = ?1",
};

/* ---- the store --------------------------------------------------------- */

const char *store_query_sql(int q)
{
	return q < Q_COUNT ? query_sql[q] : store_imap_sql[q - Q_COUNT];
}

/* ---- errors ------------------------------------------------------------ */

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_FULL:
	case SQLITE_READONLY:
	case SQLITE_IOERR:
	case SQLITE_CANTOPEN:
	case SQLITE_NOMEM:
		return STORE_FULL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return STORE_BUSY;
	default:
		return STORE_ERR;
	}
}

/* Keeps a copy: a later rollback would replace sqlite3_errmsg. */
int store_sql_fail(struct sqlite_store *st, int rc)
{
	snprintf(st->err, sizeof(st->err), "%s", sqlite3_errmsg(st->db));
	return map_rc(rc);
}

int store_step_row(struct sqlite_store *st, sqlite3_stmt *s, const char *fmt, ...)
{
	va_list ap;
	int r = sqlite3_step(s);

	if (r == SQLITE_ROW)
		return STORE_OK;
	if (r != SQLITE_DONE)
		return store_sql_fail(st, r);
	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return STORE_NOTFOUND;
}

int store_set_err(struct sqlite_store *st, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(st->err, sizeof(st->err), fmt, ap);
	va_end(ap);
	return code;
}

const char *sq_errmsg(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return st->err[0] != '\0' ? st->err : sqlite3_errmsg(st->db);
}

/* ---- statements -------------------------------------------------------- */

sqlite3_stmt *store_stmt_get(struct sqlite_store *st, int q, int *rc)
{
	sqlite3_stmt *s = st->stmts[q];
	int r;

	if (s != NULL && !sqlite3_stmt_busy(s))
		return s;
	if (s == NULL) {
		r = sqlite3_prepare_v3(st->db, store_query_sql(q), -1,
		    SQLITE_PREPARE_PERSISTENT, &st->stmts[q], NULL);
		s = st->stmts[q];
	} else {
		/* Still stepping further up the stack (a callback re-entered
		 * the store): use a private copy, finalized by stmt_put. */
		r = sqlite3_prepare_v2(st->db, store_query_sql(q), -1, &s, NULL);
	}
	if (r != SQLITE_OK) {
		*rc = store_sql_fail(st, r);
		return NULL;
	}
	return s;
}

void store_stmt_put(struct sqlite_store *st, int q, sqlite3_stmt *s)
{
	if (s == NULL)
		return;
	if (s == st->stmts[q]) {
		sqlite3_reset(s);
		sqlite3_clear_bindings(s);
	} else {
		sqlite3_finalize(s);
	}
}

/* Steps s to completion (a statement without result rows). */
int store_stmt_done(struct sqlite_store *st, sqlite3_stmt *s)
{
	int r = sqlite3_step(s);

	if (r == SQLITE_DONE)
		return STORE_OK;
	return store_sql_fail(st, r);
}

/* Runs a statement without parameters or rows (transaction control). */
int store_run(struct sqlite_store *st, int q)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	rc = store_stmt_done(st, s);
	store_stmt_put(st, q, s);
	return rc;
}

void store_bind_str(sqlite3_stmt *s, int i, const char *v)
{
	if (v == NULL)
		sqlite3_bind_null(s, i);
	else
		sqlite3_bind_text(s, i, v, -1, SQLITE_STATIC);
}

const char *store_col_str(sqlite3_stmt *s, int i)
{
	const unsigned char *v = sqlite3_column_text(s, i);

	return v != NULL ? (const char *)v : "";
}

/* ---- write transactions ------------------------------------------------ */

/*
 * In autocommit mode a write opens BEGIN IMMEDIATE: the write lock is taken
 * up front, under the busy timeout, instead of a read lock that may fail to
 * upgrade (SQLITE_BUSY_SNAPSHOT) when another process wrote meanwhile.
 * Inside store_begin's transaction it is a savepoint.
 */
int store_wtx_begin(struct sqlite_store *st, struct wtx *w)
{
	w->savepoint = st->in_tx;
	if (!st->in_tx)
		return store_run(st, Q_BEGIN);
	if (st->tx_rc != STORE_OK || sqlite3_get_autocommit(st->db))
		return store_set_err(st, st->tx_rc != STORE_OK ? st->tx_rc : STORE_ERR,
		    "transaction was rolled back after an earlier error");
	return store_run(st, Q_SAVEPOINT);
}

static void wtx_undo(struct sqlite_store *st, struct wtx *w, int rc)
{
	store_cache_drop(st);
	if (sqlite3_get_autocommit(st->db)) {
		/* SQLite already rolled everything back (I/O error, disk
		 * full, ...): store_begin's transaction is gone with it, and
		 * store_commit must report that instead of committing. */
		if (w->savepoint && st->tx_rc == STORE_OK)
			st->tx_rc = rc < 0 ? rc : STORE_ERR;
		return;
	}
	if (w->savepoint) {
		store_run(st, Q_ROLLBACK_TO);
		store_run(st, Q_RELEASE);
	} else {
		store_run(st, Q_ROLLBACK);
	}
}

/* Ends the write: keeps it if rc is STORE_OK, else undoes it. */
int store_wtx_end(struct sqlite_store *st, struct wtx *w, int rc)
{
	if (rc == STORE_OK) {
		rc = store_run(st, w->savepoint ? Q_RELEASE : Q_COMMIT);
		if (rc == STORE_OK)
			return STORE_OK;
	}
	wtx_undo(st, w, rc);
	return rc;
}

void store_bind_qargs(sqlite3_stmt *s, const struct store_qargs *a)
{
	for (int k = 0; k < a->n; k++) {
		if (a->t[k] != NULL)
			store_bind_str(s, k + 1, a->t[k]);
		else
			sqlite3_bind_int64(s, k + 1, a->i[k]);
	}
}

sqlite3_stmt *store_stmt_bound(struct sqlite_store *st, int q, const struct store_qargs *a,
    int *rc)
{
	sqlite3_stmt *s = store_stmt_get(st, q, rc);

	if (s != NULL)
		store_bind_qargs(s, a);
	return s;
}

int store_exec(struct sqlite_store *st, int q, const struct store_qargs *a, int64_t *changes)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_bound(st, q, a, &rc);

	if (s == NULL)
		return rc;
	rc = store_stmt_done(st, s);
	if (rc == STORE_OK && changes != NULL)
		*changes = sqlite3_changes64(st->db);
	store_stmt_put(st, q, s);
	return rc;
}

int store_wtx_finish(struct sqlite_store *st, struct wtx *w, int rc, size_t queued)
{
	if ((rc = store_wtx_end(st, w, rc)) != STORE_OK) {
		st->n_pending = queued;
		return rc;
	}
	if (!st->in_tx)
		store_notify_pending(st);
	return STORE_OK;
}

/* ---- open, migrate, close ---------------------------------------------- */

/* mkdir -p of the directory part of path, new directories 0700. */
static int make_parents(const char *path, char *err, size_t errlen)
{
	char dir[PATH_MAX];
	char *p;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir)) {
		snprintf(err, errlen, "%s: path too long", path);
		return -1;
	}
	for (p = dir + 1; (p = strchr(p, '/')) != NULL; p++) {
		*p = '\0';
		if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
			snprintf(err, errlen, "%s: %s", dir, strerror(errno));
			return -1;
		}
		*p = '/';
	}
	return 0;
}

/* Creates the file 0600 before SQLite does (it would use 0644 & ~umask);
 * the WAL and shm files take their mode from it. */
static int create_db_file(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);

	if (fd < 0 && errno == EEXIST)
		return 0;
	if (fd < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	/* Exactly 0600 whatever the umask. */
	if (fchmod(fd, 0600) != 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

static int exec(struct sqlite_store *st, const char *sql)
{
	int r = sqlite3_exec(st->db, sql, NULL, NULL, NULL);

	return r == SQLITE_OK ? STORE_OK : store_sql_fail(st, r);
}

static int pragma_int(struct sqlite_store *st, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int r = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL);

	if (r != SQLITE_OK)
		return store_sql_fail(st, r);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? STORE_OK : store_sql_fail(st, r);
}

static int configure(struct sqlite_store *st, enum durability durability)
{
	sqlite3_stmt *s;
	int r, wal;

	sqlite3_extended_result_codes(st->db, 1);
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	/* Before WAL and the first table, or it cannot take effect: a new
	 * file can then give freed pages back (retention, max-age). On an
	 * older file it changes nothing until a VACUUM. */
	if (exec(st, "PRAGMA auto_vacuum = INCREMENTAL") != STORE_OK ||
	    exec(st, "PRAGMA foreign_keys = ON") != STORE_OK)
		return STORE_ERR;
	/* journal_mode answers with the mode in effect: check it is WAL. */
	r = sqlite3_prepare_v2(st->db, "PRAGMA journal_mode = WAL", -1, &s, NULL);
	if (r != SQLITE_OK)
		return store_sql_fail(st, r);
	r = sqlite3_step(s);
	wal = r == SQLITE_ROW && strcmp(store_col_str(s, 0), "wal") == 0;
	if (r != SQLITE_ROW)
		store_sql_fail(st, r);
	else if (!wal)
		store_set_err(st, STORE_ERR, "cannot enable WAL (journal mode %s)", store_col_str(s, 0));
	sqlite3_finalize(s);
	if (!wal)
		return STORE_ERR;
	return exec(st, durability == DURABILITY_FULL ?
	    "PRAGMA synchronous = FULL" : "PRAGMA synchronous = NORMAL");
}

/* The database header's application_id (SQLite's file format, offset 68):
 * "MSNR". Files made before it was set have 0 and our tables. */
#define STORE_APPLICATION_ID 0x4d534e52

/* Refuses a database some other program made (a wrong --db would
 * otherwise get our tables added to it, and be switched to WAL): ours has
 * our application_id, or is empty (new), or is one of ours from before
 * the id (0, a user_version and an inbox table). Reads only: called
 * before anything is written. */
static int check_ours(struct sqlite_store *st)
{
	int64_t app = 0, version = 0, tables = 0, inbox = 0;
	int rc;

	if ((rc = pragma_int(st, "PRAGMA application_id", &app)) != STORE_OK)
		return rc;
	if (app == STORE_APPLICATION_ID)
		return STORE_OK;
	if (app != 0)
		return store_set_err(st, STORE_ERR, "not a mailsnare database"
		    " (application_id %" PRId64 ")", app);
	if ((rc = pragma_int(st, "PRAGMA user_version", &version)) != STORE_OK ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_master", &tables)) != STORE_OK ||
	    (rc = pragma_int(st, "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
	    " AND name = 'inbox'", &inbox)) != STORE_OK)
		return rc;
	if (tables > 0 && (version == 0 || inbox == 0))
		return store_set_err(st, STORE_ERR, "not a mailsnare database"
		    " (it has tables of another program)");
	return STORE_OK;
}

static int migrate_steps(struct sqlite_store *st)
{
	char sql[64];
	int64_t v = 0, app = 0;
	int rc;

	rc = pragma_int(st, "PRAGMA user_version", &v);
	if (rc == STORE_OK)
		rc = pragma_int(st, "PRAGMA application_id", &app);
	if (rc != STORE_OK)
		return rc;
	if (v > SCHEMA_VERSION)
		return store_set_err(st, STORE_ERR, "database schema version %" PRId64
		    " is newer than this program's (%d)", v, SCHEMA_VERSION);
	/* Marks a new file, or one of ours from before the id, as ours
	 * (check_ours has let it through). */
	if (app != STORE_APPLICATION_ID) {
		snprintf(sql, sizeof(sql), "PRAGMA application_id = %d", STORE_APPLICATION_ID);
		if ((rc = exec(st, sql)) != STORE_OK)
			return rc;
	}
	if (v == SCHEMA_VERSION)
		return STORE_OK;
	for (; v < SCHEMA_VERSION; v++) {
		rc = exec(st, migrations[v]);
		if (rc != STORE_OK)
			return rc;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", SCHEMA_VERSION);
	return exec(st, sql);
}

/* One transaction, so a second process opening the same new file waits
 * instead of creating the tables twice. */
static int migrate(struct sqlite_store *st)
{
	struct wtx w;
	int rc = store_wtx_begin(st, &w);

	if (rc != STORE_OK)
		return rc;
	return store_wtx_end(st, &w, migrate_steps(st));
}

struct store *sq_open(const struct store_options *opts)
{
	const char *path = opts->path;
	char scratch[STORE_ERR_MAX];
	char *err = opts->err != NULL ? opts->err : scratch;
	size_t errlen = opts->err != NULL ? opts->errlen : sizeof(scratch);
	struct sqlite_store *st;
	int r;

	if (path == NULL || path[0] == '\0') {
		snprintf(err, errlen, "empty database path");
		return NULL;
	}
	if (make_parents(path, err, errlen) != 0 || create_db_file(path, err, errlen) != 0)
		return NULL;
	st = calloc(1, sizeof(*st));
	if (st == NULL) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	st->base.be = &store_sqlite_backend;
	st->fts_tail = &st->fts_queue;
	st->fts_txtail = &st->fts_txq;
	/* One thread uses the connection: SQLite's own mutexes only cost. */
	r = sqlite3_open_v2(path, &st->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
	    SQLITE_OPEN_NOMUTEX, NULL);
	if (r != SQLITE_OK) {
		snprintf(err, errlen, "%s: %s", path,
		    st->db != NULL ? sqlite3_errmsg(st->db) : sqlite3_errstr(r));
		sq_close(&st->base);
		return NULL;
	}
	/* Other processes may hold the file (a server recovering its WAL
	 * after kill -9, CLI calls in parallel): wait for them from the first
	 * read on, check_ours's included. */
	sqlite3_busy_timeout(st->db, STORE_BUSY_TIMEOUT_MS);
	st->reader = opts->reader;
	if (check_ours(st) != STORE_OK || configure(st, opts->durability) != STORE_OK ||
	    (!st->reader && migrate(st) != STORE_OK)) {
		snprintf(err, errlen, "%s: %s", path, sq_errmsg(&st->base));
		sq_close(&st->base);
		return NULL;
	}
	(void)pragma_int(st, "PRAGMA data_version", &st->data_version);
	if (store_fts_init(st) != STORE_OK || store_fts_open(st, opts->defer_index) != STORE_OK) {
		snprintf(err, errlen, "%s: %s", path, sq_errmsg(&st->base));
		sq_close(&st->base);
		return NULL;
	}
	if (store_cache_init(st) != STORE_OK) {
		snprintf(err, errlen, "out of memory");
		sq_close(&st->base);
		return NULL;
	}
	return &st->base;
}

void sq_close(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t i;

	store_ckpt_stop(st);
	if (st->db != NULL && !sqlite3_get_autocommit(st->db))
		sqlite3_exec(st->db, "ROLLBACK", NULL, NULL, NULL);
	store_fts_close(st);
	for (i = 0; i < STORE_NQUERIES; i++)
		sqlite3_finalize(st->stmts[i]);
	sqlite3_close(st->db);
	store_cache_drop(st);
	free(st->cache);
	free(st->chunk);
	free(st->pending);
	free(st->base.subs);
	free(st);
}

/* ---- notifications ----------------------------------------------------- */

int store_queue_event(struct sqlite_store *st, enum store_change what, int64_t inbox_id,
    int64_t mailbox_id, int64_t message_id)
{
	struct store_event *p;
	size_t cap;

	if (st->n_pending == st->cap_pending) {
		cap = st->cap_pending ? st->cap_pending * 2 : 16;
		p = realloc(st->pending, cap * sizeof(*p));
		if (p == NULL)
			return store_set_err(st, STORE_FULL, "out of memory");
		st->pending = p;
		st->cap_pending = cap;
	}
	p = &st->pending[st->n_pending++];
	p->what = what;
	p->inbox_id = inbox_id;
	p->mailbox_id = mailbox_id;
	p->message_id = message_id;
	return STORE_OK;
}

static void drop_events(struct sqlite_store *st)
{
	store_cache_drop(st);
	st->n_pending = 0;
}

/* Takes the queue first: a subscriber may add messages itself. */
void store_notify_pending(struct sqlite_store *st)
{
	struct store_event *ev = st->pending;
	size_t n = st->n_pending;

	if (n == 0)
		return;
	st->pending = NULL;
	st->n_pending = st->cap_pending = 0;
	store_dispatch(&st->base, ev, n);
	free(ev);
}

bool sq_poll_external(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t v = 0;

	/* The server calls this twice a second: the search index's words
	 * wait no longer than that (store_fts.c). */
	(void)store_fts_flush(st);
	/* data_version moves only for commits of other connections. */
	if (pragma_int(st, "PRAGMA data_version", &v) != STORE_OK || v == st->data_version)
		return false;
	st->data_version = v;
	if (store_queue_event(st, STORE_CHANGE_EXTERNAL, 0, 0, 0) != STORE_OK)
		return false;
	if (!st->in_tx)
		store_notify_pending(st);
	return true;
}

/* ---- transactions ------------------------------------------------------ */

int sq_begin(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc;

	if (st->in_tx)
		return store_set_err(st, STORE_ERR, "transaction already open");
	rc = store_run(st, Q_BEGIN);
	if (rc != STORE_OK)
		return rc;
	st->in_tx = true;
	st->tx_rc = STORE_OK;
	drop_events(st);
	return STORE_OK;
}

int sq_commit(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc;

	if (!st->in_tx)
		return store_set_err(st, STORE_ERR, "no transaction open");
	st->in_tx = false;
	rc = st->tx_rc;
	st->tx_rc = STORE_OK;
	if (rc == STORE_OK)
		rc = store_fts_commit(st);
	if (rc == STORE_OK)
		rc = store_run(st, Q_COMMIT);
	if (rc != STORE_OK) {
		/* A failed COMMIT may leave the transaction open: end it, so
		 * that none of its messages count as acknowledged. */
		if (!sqlite3_get_autocommit(st->db))
			store_run(st, Q_ROLLBACK);
		drop_events(st);
		store_fts_rollback(st);
		return rc;
	}
	store_fts_committed(st);
	store_notify_pending(st);
	return STORE_OK;
}

void sq_rollback(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);

	if (!st->in_tx)
		return;
	st->in_tx = false;
	st->tx_rc = STORE_OK;
	if (!sqlite3_get_autocommit(st->db))
		store_run(st, Q_ROLLBACK);
	drop_events(st);
	store_fts_rollback(st);
}

/* ---- inboxes ----------------------------------------------------------- */

static void inbox_from_row(sqlite3_stmt *s, struct store_inbox *out)
{
	out->id = sqlite3_column_int64(s, 0);
	snprintf(out->name, sizeof(out->name), "%s", store_col_str(s, 1));
	snprintf(out->password, sizeof(out->password), "%s", store_col_str(s, 2));
	out->created = sqlite3_column_int64(s, 3);
	out->messages = sqlite3_column_int64(s, 4);
}

int sq_inbox_get(struct store *base, const char *name, struct store_inbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_INBOX_GET, &rc);

	if (s == NULL)
		return rc;
	store_bind_str(s, 1, name);
	if ((rc = store_step_row(st, s, "no inbox '%s'", name)) == STORE_OK && out != NULL)
		inbox_from_row(s, out);
	store_stmt_put(st, Q_INBOX_GET, s);
	return rc;
}

/* The id of inbox `name`, or STORE_NOTFOUND. */
static int inbox_id(struct sqlite_store *st, const char *name, int64_t *id)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_INBOX_ID, &rc);

	if (s == NULL)
		return rc;
	store_bind_str(s, 1, name);
	if ((rc = store_step_row(st, s, "no inbox '%s'", name)) == STORE_OK)
		*id = sqlite3_column_int64(s, 0);
	store_stmt_put(st, Q_INBOX_ID, s);
	return rc;
}

/* Time-based and increasing within this process, so an inbox deleted and
 * made again in the same second still gets a new UIDVALIDITY (RFC 3501
 * 2.3.1.1: clients must drop UIDs cached under the old one); and above
 * every mailbox's, so that another process (the CLI) making mailboxes in
 * the same second does not hand out the same one. Called inside the write
 * that inserts the mailbox, so the maximum cannot move meanwhile. */
uint32_t store_next_uidvalidity(struct sqlite_store *st)
{
	uint32_t v = (uint32_t)time(NULL);
	sqlite3_stmt *s = NULL;

	if (sqlite3_prepare_v2(st->db, "SELECT MAX(uidvalidity) FROM mailbox", -1, &s,
	    NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
		int64_t max = sqlite3_column_int64(s, 0);
		if (max >= 0 && max < UINT32_MAX && (uint32_t)max > st->last_uidvalidity)
			st->last_uidvalidity = (uint32_t)max;
	}
	sqlite3_finalize(s);
	if (v <= st->last_uidvalidity)
		v = st->last_uidvalidity + 1;
	if (v == 0)
		v = 1;
	st->last_uidvalidity = v;
	return v;
}

static int insert_inbox(struct sqlite_store *st, const char *name, const char *password,
    int64_t created, int64_t *id)
{
	struct store_qargs a = { .t = { name, password }, .i = { 0, 0, created }, .n = 3 };
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_bound(st, Q_INBOX_ADD, &a, &rc);

	if (s == NULL)
		return rc;
	r = sqlite3_step(s);
	if (r == SQLITE_DONE)
		*id = sqlite3_last_insert_rowid(st->db);
	else if (r == SQLITE_CONSTRAINT_UNIQUE)
		rc = store_set_err(st, STORE_EXISTS, "inbox '%s' exists", name);
	else
		rc = store_sql_fail(st, r);
	store_stmt_put(st, Q_INBOX_ADD, s);
	return rc;
}

int store_insert_mailbox(struct sqlite_store *st, int64_t inbox, const char *name,
    const char *special_use, int64_t *id)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, Q_MAILBOX_ADD, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, inbox);
	sqlite3_bind_int64(s, 2, store_next_uidvalidity(st));
	store_bind_str(s, 3, name);
	store_bind_str(s, 4, special_use);
	r = sqlite3_step(s);
	if (r == SQLITE_DONE) {
		if (id != NULL)
			*id = sqlite3_last_insert_rowid(st->db);
	} else if (r == SQLITE_CONSTRAINT_UNIQUE) {
		rc = store_set_err(st, STORE_EXISTS, "mailbox '%s' exists", name);
	} else {
		rc = store_sql_fail(st, r);
	}
	store_stmt_put(st, Q_MAILBOX_ADD, s);
	return rc;
}

static int check_password(struct sqlite_store *st, const char *password)
{
	if (strlen(password) >= STORE_PASS_MAX)
		return store_set_err(st, STORE_ERR, "password longer than %d bytes",
		    STORE_PASS_MAX - 1);
	return STORE_OK;
}

int sq_inbox_add(struct store *base, const char *name, const char *password,
    struct store_inbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t id = 0, now = (int64_t)time(NULL);
	const char *why = name != NULL ? store_inbox_name_check(name, strlen(name)) : "empty";
	struct wtx w;
	int rc;

	if (why != NULL)
		return store_set_err(st, STORE_ERR, "invalid inbox name: %s", why);
	if (password == NULL)
		password = "";
	if ((rc = check_password(st, password)) != STORE_OK)
		return rc;
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = insert_inbox(st, name, password, now, &id);
	if (rc == STORE_OK)
		rc = store_inbox_mailboxes(st, id);
	rc = store_wtx_end(st, &w, rc);
	if (rc == STORE_OK && out != NULL) {
		memset(out, 0, sizeof(*out));
		out->id = id;
		snprintf(out->name, sizeof(out->name), "%s", name);
		snprintf(out->password, sizeof(out->password), "%s", password);
		out->created = now;
	}
	return rc;
}

int sq_inbox_ensure(struct store *base, const char *name, const char *password,
    struct store_inbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = sq_inbox_get(&st->base, name, out);

	if (rc != STORE_NOTFOUND)
		return rc;
	rc = sq_inbox_add(&st->base, name, password, out);
	/* Another process (the CLI) made it between the two calls. */
	if (rc == STORE_EXISTS)
		rc = sq_inbox_get(&st->base, name, out);
	return rc;
}

/* Runs a one-statement write bound to a name; STORE_NOTFOUND if it
 * changed no row. */
static int write_by_name(struct sqlite_store *st, enum query q, const char *name,
    const char *value)
{
	struct store_qargs a = { .t = { name, value }, .n = value != NULL ? 2 : 1 };
	int64_t changes = 0;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = store_exec(st, q, &a, &changes);
	if (rc == STORE_OK && changes == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no inbox '%s'", name);
	return store_wtx_end(st, &w, rc);
}

int sq_inbox_set_password(struct store *base, const char *name, const char *password)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc;

	if (password == NULL)
		password = "";
	if ((rc = check_password(st, password)) != STORE_OK)
		return rc;
	return write_by_name(st, Q_INBOX_SET_PASSWORD, name, password);
}

/* Mailboxes, messages, recipients and bodies follow by the schema's
 * cascades and trigger. */
int sq_inbox_del(struct store *base, const char *name)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return write_by_name(st, Q_INBOX_DEL, name, NULL);
}

int sq_inbox_foreach(struct store *base, store_inbox_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_inbox in;
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, Q_INBOX_LIST, &rc);

	if (s == NULL)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		inbox_from_row(s, &in);
		rc = cb(&in, arg);
		if (rc != 0)
			break;
	}
	if (rc == 0 && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, Q_INBOX_LIST, s);
	return rc;
}

/* ---- adding messages --------------------------------------------------- */

/* Takes the next UID and modseq of the inbox's INBOX. */
static int mailbox_next(struct sqlite_store *st, int64_t inbox, int64_t *mailbox,
    int64_t *uid, int64_t *modseq)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, Q_MAILBOX_NEXT, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, inbox);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*mailbox = sqlite3_column_int64(s, 0);
		*uid = sqlite3_column_int64(s, 1);
		*modseq = sqlite3_column_int64(s, 2);
		r = sqlite3_step(s);
	}
	if (r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	else if (*mailbox == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no inbox with id %" PRId64, inbox);
	else if (*uid > UINT32_MAX)
		rc = store_set_err(st, STORE_ERR, "UIDs of inbox %" PRId64 " exhausted", inbox);
	store_stmt_put(st, Q_MAILBOX_NEXT, s);
	return rc;
}

/* Fills buf with exactly want bytes from src; fewer only at its end. */
static int read_full(struct sqlite_store *st, const struct store_source *src,
    unsigned char *buf, size_t want, size_t *got)
{
	ssize_t n;

	*got = 0;
	while (*got < want) {
		n = src->read(src->arg, buf + *got, want - *got);
		if (n < 0)
			return store_set_err(st, STORE_ERR, "reading the message failed");
		if (n == 0)
			break;
		if ((size_t)n > want - *got)
			return store_set_err(st, STORE_ERR, "message source overran its buffer");
		*got += (size_t)n;
	}
	return STORE_OK;
}

/* Copies src into the zero-filled blob, chunk by chunk, then makes sure
 * the source has nothing beyond its announced size. */
static int blob_fill(struct sqlite_store *st, sqlite3_blob *blob,
    const struct store_source *src, unsigned char *buf)
{
	uint64_t off = 0;
	size_t want, got;
	int rc, r;

	while (off < src->size) {
		want = src->size - off < STORE_CHUNK ? (size_t)(src->size - off) : STORE_CHUNK;
		if ((rc = read_full(st, src, buf, want, &got)) != STORE_OK)
			return rc;
		if (got < want)
			return store_set_err(st, STORE_ERR, "message ended after %" PRIu64
			    " of %" PRIu64 " bytes", off + got, src->size);
		r = sqlite3_blob_write(blob, buf, (int)want, (int)off);
		if (r != SQLITE_OK)
			return store_sql_fail(st, r);
		off += want;
	}
	if ((rc = read_full(st, src, buf, 1, &got)) != STORE_OK)
		return rc;
	if (got != 0)
		return store_set_err(st, STORE_ERR, "message longer than its announced %"
		    PRIu64 " bytes", src->size);
	return STORE_OK;
}

/* A body that fits one chunk is bound as a value: one statement, no
 * incremental-blob handle (which compiles a statement of its own). */
static int insert_small_body(struct sqlite_store *st, const struct store_source *src, int64_t *body)
{
	size_t got;
	int rc = read_full(st, src, st->chunk, (size_t)src->size + 1, &got);
	sqlite3_stmt *s;

	if (rc != STORE_OK)
		return rc;
	if (got != src->size)
		return store_set_err(st, STORE_ERR, "message of %zu bytes announced as %" PRIu64,
		    got, src->size);
	if ((s = store_stmt_get(st, Q_BODY_ADD_DATA, &rc)) == NULL)
		return rc;
	sqlite3_bind_blob(s, 1, st->chunk, (int)got, SQLITE_STATIC);
	rc = store_stmt_done(st, s);
	store_stmt_put(st, Q_BODY_ADD_DATA, s);
	if (rc == STORE_OK)
		*body = sqlite3_last_insert_rowid(st->db);
	return rc;
}

static int insert_body(struct sqlite_store *st, const struct store_source *src, int64_t *body)
{
	sqlite3_blob *blob = NULL;
	int rc = STORE_OK, r;
	sqlite3_stmt *s;

	if (st->chunk == NULL && (st->chunk = malloc(STORE_CHUNK + 1)) == NULL)
		return store_set_err(st, STORE_FULL, "out of memory");
	if (src->size < STORE_CHUNK)
		return insert_small_body(st, src, body);
	if ((s = store_stmt_get(st, Q_BODY_ADD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, (sqlite3_int64)src->size);
	rc = store_stmt_done(st, s);
	store_stmt_put(st, Q_BODY_ADD, s);
	if (rc != STORE_OK)
		return rc;
	*body = sqlite3_last_insert_rowid(st->db);
	r = sqlite3_blob_open(st->db, "main", "body", "data", *body, 1, &blob);
	if (r != SQLITE_OK)
		rc = store_sql_fail(st, r);
	else
		rc = blob_fill(st, blob, src, st->chunk);
	/* Closed here, before the savepoint or transaction ends. */
	r = sqlite3_blob_close(blob);
	if (rc == STORE_OK && r != SQLITE_OK)
		rc = store_sql_fail(st, r);
	return rc;
}

static int insert_message(struct sqlite_store *st, const struct store_new_message *msg,
    int64_t mailbox, int64_t body, int64_t uid, int64_t modseq, int64_t *id)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_MSG_ADD, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, mailbox);
	sqlite3_bind_int64(s, 2, body);
	sqlite3_bind_int64(s, 3, uid);
	sqlite3_bind_int64(s, 4, modseq);
	sqlite3_bind_int64(s, 5, msg->internal_date);
	sqlite3_bind_int64(s, 6, (sqlite3_int64)msg->src.size);
	store_bind_str(s, 7, msg->mail_from != NULL ? msg->mail_from : "");
	store_bind_str(s, 8, msg->auth_user);
	store_bind_str(s, 9, msg->client_addr != NULL ? msg->client_addr : "");
	store_bind_str(s, 10, msg->hdr_from);
	store_bind_str(s, 11, msg->hdr_to);
	store_bind_str(s, 12, msg->hdr_subject);
	store_bind_str(s, 13, msg->hdr_date);
	sqlite3_bind_int64(s, 14, msg->flags);
	if (msg->structure != NULL)
		sqlite3_bind_blob(s, 15, msg->structure, (int)msg->structure_len, SQLITE_STATIC);
	sqlite3_bind_int(s, 16, msg->has_attachment);
	rc = store_stmt_done(st, s);
	if (rc == STORE_OK)
		*id = sqlite3_last_insert_rowid(st->db);
	store_stmt_put(st, Q_MSG_ADD, s);
	return rc;
}

static int insert_rcpts(struct sqlite_store *st, int64_t id, const char *const *rcpts, size_t n)
{
	size_t i;
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_RCPT_ADD, &rc);

	if (s == NULL)
		return rc;
	for (i = 0; i < n && rc == STORE_OK; i++) {
		sqlite3_bind_int64(s, 1, id);
		sqlite3_bind_int64(s, 2, (sqlite3_int64)i);
		store_bind_str(s, 3, rcpts[i] != NULL ? rcpts[i] : "");
		rc = store_stmt_done(st, s);
		sqlite3_reset(s);
	}
	store_stmt_put(st, Q_RCPT_ADD, s);
	return rc;
}

static int add_rows(struct sqlite_store *st, const struct store_new_message *msg,
    int64_t *inbox, int64_t *mailbox, int64_t *id)
{
	int64_t uid = 0, modseq = 0, body = 0;
	int rc;

	if (msg->mailbox_id != 0) {
		*mailbox = msg->mailbox_id;
		rc = store_mailbox_take_uid(st, *mailbox, &uid, &modseq, inbox);
	} else {
		*inbox = msg->inbox_id;
		rc = mailbox_next(st, msg->inbox_id, mailbox, &uid, &modseq);
	}
	if (rc == STORE_OK && msg->body_id != 0)
		body = msg->body_id;
	else if (rc == STORE_OK)
		rc = insert_body(st, &msg->src, &body);
	if (rc == STORE_OK)
		rc = insert_message(st, msg, *mailbox, body, uid, modseq, id);
	if (rc == STORE_OK)
		rc = insert_rcpts(st, *id, msg->rcpts, msg->n_rcpts);
	if (rc == STORE_OK && msg->keywords != NULL && msg->keywords[0] != '\0')
		rc = store_keywords_add(st, *id, *mailbox, msg->keywords);
	return rc;
}

int sq_message_add(struct store *base, const struct store_new_message *msg, int64_t *id)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t inbox = 0, mailbox = 0, mid = 0;
	struct wtx w;
	int rc;

	if (msg == NULL || msg->src.read == NULL)
		return store_set_err(st, STORE_ERR, "no message source");
	if (msg->src.size > INT_MAX)   /* blob offsets are ints */
		return store_set_err(st, STORE_ERR, "message too large for the store");
	if (msg->n_rcpts > 0 && msg->rcpts == NULL)
		return store_set_err(st, STORE_ERR, "recipient list missing");
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = add_rows(st, msg, &inbox, &mailbox, &mid);
	/* Queued inside the write, so running out of memory undoes it. */
	if (rc == STORE_OK)
		rc = store_queue_event(st, STORE_CHANGE_NEW, inbox, mailbox, mid);
	if ((rc = store_wtx_end(st, &w, rc)) != STORE_OK) {
		if (mid != 0 && st->n_pending > 0 &&
		    st->pending[st->n_pending - 1].message_id == mid)
			st->n_pending--;
		return rc;
	}
	if (id != NULL)
		*id = mid;
#ifndef MAILSNARE_NO_SEARCH_INDEX
	/* Here, so every path that adds a message (SMTP, APPEND, the API's
	 * send, the CLI) indexes it, in the same transaction; a failure
	 * leaves the message stored and store_index_pending retries it. The
	 * server defers it instead (defer_index): indexing cost SMTP ingest
	 * 3x-11x its CPU, and none of it has to come before the 250.
	 * (Built with -DMAILSNARE_NO_SEARCH_INDEX only by bench/search.sh, to
	 * measure what the index costs an SMTP delivery.) */
	if (!st->defer_index)
		(void)store_fts_index_new(st, mid, msg);
#endif
	if (!st->in_tx)
		store_notify_pending(st);
	return STORE_OK;
}

/* ---- deleting messages ------------------------------------------------- */

/* Runs a message DELETE ... RETURNING mailbox_id, id, inbox, queueing an
 * expunge notification for each row. */
static int delete_rows(struct sqlite_store *st, sqlite3_stmt *s, enum store_change what,
    int64_t *changes)
{
	int rc = STORE_OK, r;

	*changes = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		(*changes)++;
		rc = store_queue_event(st, what, sqlite3_column_int64(s, 2),
		    sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
		if (rc != STORE_OK)
			return rc;
	}
	return r == SQLITE_DONE ? STORE_OK : store_sql_fail(st, r);
}

static int delete_by_id(struct sqlite_store *st, enum query q, int64_t id, int64_t arg2,
    int64_t *changes)
{
	struct store_qargs a = { .i = { id, arg2, STORE_PRUNE_STEP }, .n = q == Q_PRUNE ? 3 : 1 };
	size_t queued = st->n_pending;
	int rc = STORE_OK;
	struct wtx w;
	sqlite3_stmt *s;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	if ((s = store_stmt_get(st, q, &rc)) != NULL) {
		store_bind_qargs(s, &a);
		rc = delete_rows(st, s, q == Q_PRUNE ? STORE_CHANGE_PRUNE : STORE_CHANGE_EXPUNGE,
		    changes);
		store_stmt_put(st, q, s);
	}
	return store_wtx_finish(st, &w, rc, queued);
}

int sq_inbox_prune(struct store *base, int64_t inbox_id, uint64_t keep)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t n = 0;
	int rc = delete_by_id(st, Q_PRUNE, inbox_id,
	    keep > INT64_MAX ? INT64_MAX : (int64_t)keep, &n);

	return rc == STORE_OK && n >= STORE_PRUNE_STEP ? STORE_MORE : rc;
}

int sq_message_del(struct store *base, int64_t id)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t n = 0;
	int rc = delete_by_id(st, Q_MSG_DEL, id, 0, &n);

	if (rc == STORE_OK && n == 0)
		return store_set_err(st, STORE_NOTFOUND, "no message %" PRId64, id);
	return rc;
}

int sq_message_del_inbox(struct store *base, const char *inbox, int64_t *count)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t iid = 0, n = 0;
	int rc = inbox_id(st, inbox, &iid);

	if (rc == STORE_OK)
		rc = delete_by_id(st, Q_MSG_DEL_INBOX, iid, 0, &n);
	if (count != NULL)
		*count = rc == STORE_OK ? n : 0;
	return rc;
}

/* ---- reading messages -------------------------------------------------- */

struct strbuf {
	char *p;
	size_t len, cap;
};

static int strbuf_add(struct strbuf *b, const char *s)
{
	size_t n = strlen(s), cap;
	char *p;

	if (b->len + n + 1 > b->cap) {
		cap = b->cap ? b->cap : 256;
		while (cap < b->len + n + 1)
			cap *= 2;
		p = realloc(b->p, cap);
		if (p == NULL)
			return -1;
		b->p = p;
		b->cap = cap;
	}
	memcpy(b->p + b->len, s, n + 1);
	b->len += n;
	return 0;
}

/* The envelope recipients of message id, joined with ", ", into b. */
static int join_rcpts(struct sqlite_store *st, int64_t id, struct strbuf *b)
{
	int rc = STORE_OK, r = SQLITE_DONE;
	sqlite3_stmt *s = store_stmt_get(st, Q_RCPT_LIST, &rc);

	if (s == NULL)
		return rc;
	b->len = 0;
	if (strbuf_add(b, "") != 0)
		rc = store_set_err(st, STORE_FULL, "out of memory");
	sqlite3_bind_int64(s, 1, id);
	while (rc == STORE_OK && (r = sqlite3_step(s)) == SQLITE_ROW) {
		if ((b->len > 0 && strbuf_add(b, ", ") != 0) ||
		    strbuf_add(b, store_col_str(s, 0)) != 0)
			rc = store_set_err(st, STORE_FULL, "out of memory");
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, Q_RCPT_LIST, s);
	return rc;
}

static void info_from_row(sqlite3_stmt *s, const char *rcpts,
    struct store_message_info *m)
{
	m->id = sqlite3_column_int64(s, 0);
	m->inbox = store_col_str(s, 1);
	m->mailbox = store_col_str(s, 2);
	m->uid = (uint32_t)sqlite3_column_int64(s, 3);
	m->flags = (unsigned)sqlite3_column_int64(s, 4);
	m->internal_date = sqlite3_column_int64(s, 5);
	m->size = (uint64_t)sqlite3_column_int64(s, 6);
	m->mail_from = store_col_str(s, 7);
	m->auth_user = store_col_str(s, 8);
	m->client_addr = store_col_str(s, 9);
	m->hdr_from = store_col_str(s, 10);
	m->hdr_to = store_col_str(s, 11);
	m->hdr_subject = store_col_str(s, 12);
	m->hdr_date = store_col_str(s, 13);
	m->inbox_id = sqlite3_column_int64(s, 14);
	m->mailbox_id = sqlite3_column_int64(s, 15);
	m->has_attachment = sqlite3_column_int(s, 16) != 0;
	m->rcpts = rcpts;
}

/* Steps a message query (parameter 1 already bound), calling cb per row.
 * *rows counts the rows seen. */
static int message_rows(struct sqlite_store *st, sqlite3_stmt *s, store_message_cb cb,
    void *arg, int *rows)
{
	struct store_message_info m;
	struct strbuf rcpts = { NULL, 0, 0 };
	int rc = STORE_OK, r;

	*rows = 0;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		(*rows)++;
		rc = join_rcpts(st, sqlite3_column_int64(s, 0), &rcpts);
		if (rc != STORE_OK)
			break;
		info_from_row(s, rcpts.p, &m);
		if ((rc = cb(&m, arg)) != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	free(rcpts.p);
	return rc;
}

int sq_message_foreach(struct store *base, const char *inbox, store_message_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	enum query q = inbox != NULL ? Q_MSG_LIST_INBOX : Q_MSG_LIST_ALL;
	int64_t iid = 0;
	int rc = STORE_OK, rows;
	sqlite3_stmt *s;

	if (inbox != NULL && (rc = inbox_id(st, inbox, &iid)) != STORE_OK)
		return rc;
	if ((s = store_stmt_get(st, q, &rc)) == NULL)
		return rc;
	if (inbox != NULL)
		sqlite3_bind_int64(s, 1, iid);
	rc = message_rows(st, s, cb, arg, &rows);
	store_stmt_put(st, q, s);
	return rc;
}

int sq_message_get_info(struct store *base, int64_t id, store_message_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK, rows;
	sqlite3_stmt *s = store_stmt_get(st, Q_MSG_INFO, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	rc = message_rows(st, s, cb, arg, &rows);
	store_stmt_put(st, Q_MSG_INFO, s);
	if (rc == STORE_OK && rows == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no message %" PRId64, id);
	return rc;
}

/* ---- the message listing ------------------------------------------------ */

/*
 * Built per call from the filters that are set. Each filter has its own
 * parameter number, so binding does not depend on which are present (a
 * number the text does not use is refused by SQLite, and ignored here).
 */
enum {
	QP_INBOX = 1, QP_BEFORE, QP_AFTER, QP_FLAGS_SET, QP_FLAGS_CLEAR, QP_FROM, QP_TO,
	QP_SUBJECT, QP_SIZE_MIN, QP_SIZE_MAX, QP_DATE_MIN, QP_DATE_MAX, QP_ATTACHMENT,
	QP_LIMIT, QP_OFFSET,
	QP_SEARCH = 16              /* the search's terms: one each from here on */
};

/* The filters and up to MSG_SEARCH_MAX_TERMS search terms. */
#define QUERY_SQL_MAX 8192

struct sqlbuf {
	char s[QUERY_SQL_MAX];
	size_t len;
	bool where;
};

static void sql_add(struct sqlbuf *b, const char *text)
{
	size_t n = strlen(text);

	if (b->len + n < sizeof(b->s)) {
		memcpy(b->s + b->len, text, n + 1);
		b->len += n;
	}
}

static void sql_cond(struct sqlbuf *b, bool on, const char *cond)
{
	if (!on)
		return;
	sql_add(b, b->where ? " AND " : " WHERE ");
	sql_add(b, cond);
	b->where = true;
}

static bool set(const char *text)
{
	return text != NULL && text[0] != '\0';
}

/* Each term of the search, ANDed (store_fts.c writes the conditions);
 * without the body terms when the caller answers them from body sets. */
static void query_search(struct sqlbuf *b, const struct msg_search *search, bool body_terms)
{
	char cond[STORE_SEARCH_COND_MAX];
	size_t i, n = msg_search_nterms(search);

	for (i = 0; i < n; i++) {
		if (!body_terms && store_search_body_term(msg_search_term(search, i)))
			continue;
		store_search_cond(msg_search_term(search, i), QP_SEARCH + (int)i, cond,
		    sizeof(cond));
		sql_cond(b, true, cond);
	}
}

/* The filters (not the paging): the same for the page and its total. */
static void query_filters_x(struct sqlbuf *b, const struct store_query *q, bool body_terms)
{
	sql_cond(b, q->inbox_id != 0,
	    "m.mailbox_id IN (SELECT id FROM mailbox WHERE inbox_id = ?1)");
	sql_cond(b, q->flags_set != 0, "(m.flags & ?4) = ?4");
	sql_cond(b, q->flags_clear != 0, "(m.flags & ?5) = 0");
	sql_cond(b, set(q->from), "(instr(lower(m.hdr_from), lower(?6)) > 0"
	    " OR instr(lower(m.mail_from), lower(?6)) > 0)");
	sql_cond(b, set(q->to), "(instr(lower(m.hdr_to), lower(?7)) > 0"
	    " OR EXISTS (SELECT 1 FROM message_rcpt r WHERE r.message_id = m.id"
	    "  AND instr(lower(r.addr), lower(?7)) > 0))");
	sql_cond(b, set(q->subject), "instr(lower(m.hdr_subject), lower(?8)) > 0");
	sql_cond(b, q->size_min != 0, "m.size >= ?9");
	sql_cond(b, q->size_max != 0, "m.size <= ?10");
	sql_cond(b, q->date_min != 0, "m.internal_date >= ?11");
	sql_cond(b, q->date_max != 0, "m.internal_date <= ?12");
	sql_cond(b, q->has_attachment != 0, "m.has_attachment = ?13");
	query_search(b, q->search, body_terms);
}

static void query_filters(struct sqlbuf *b, const struct store_query *q)
{
	query_filters_x(b, q, true);
}

static int64_t clamp_u64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int query_bind(sqlite3_stmt *s, const struct store_query *q)
{
	sqlite3_bind_int64(s, QP_INBOX, q->inbox_id);
	sqlite3_bind_int64(s, QP_BEFORE, q->before_id);
	sqlite3_bind_int64(s, QP_AFTER, q->after_id);
	sqlite3_bind_int64(s, QP_FLAGS_SET, q->flags_set);
	sqlite3_bind_int64(s, QP_FLAGS_CLEAR, q->flags_clear);
	store_bind_str(s, QP_FROM, q->from);
	store_bind_str(s, QP_TO, q->to);
	store_bind_str(s, QP_SUBJECT, q->subject);
	sqlite3_bind_int64(s, QP_SIZE_MIN, clamp_u64(q->size_min));
	sqlite3_bind_int64(s, QP_SIZE_MAX, clamp_u64(q->size_max));
	sqlite3_bind_int64(s, QP_DATE_MIN, q->date_min);
	sqlite3_bind_int64(s, QP_DATE_MAX, q->date_max);
	sqlite3_bind_int(s, QP_ATTACHMENT, q->has_attachment > 0);
	sqlite3_bind_int64(s, QP_LIMIT, q->limit != 0 ? (int64_t)q->limit : -1);
	sqlite3_bind_int64(s, QP_OFFSET, q->offset);
	return store_search_bind(s, q->search, QP_SEARCH);
}

/* Prepares the query built in b with q's parameters bound. */
static int query_prepare(struct sqlite_store *st, const struct sqlbuf *b,
    const struct store_query *q, sqlite3_stmt **out)
{
	int r;

	if (b->len + 1 >= sizeof(b->s))
		return store_set_err(st, STORE_ERR, "message query too long");
	if ((r = sqlite3_prepare_v2(st->db, b->s, -1, out, NULL)) != SQLITE_OK)
		return store_sql_fail(st, r);
	if ((r = query_bind(*out, q)) != SQLITE_OK) {
		sqlite3_finalize(*out);
		return store_sql_fail(st, r);
	}
	return STORE_OK;
}

static int query_total(struct sqlite_store *st, const struct store_query *q, uint64_t *total)
{
	struct sqlbuf b = { .len = 0 };
	sqlite3_stmt *s;
	int r;

	sql_add(&b, "SELECT count(*) FROM message m");
	query_filters(&b, q);
	if ((r = query_prepare(st, &b, q, &s)) != STORE_OK)
		return r;
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*total = (uint64_t)sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	return r == SQLITE_ROW ? STORE_OK : store_sql_fail(st, r);
}

/*
 * The page's ids first, then their rows: the inner query finds and orders
 * ids from what answers the filters (the primary key, or the covering
 * index on body_id for a search term: no message row is read for a match
 * that is not on the page), and only the page's rows are read whole.
 * Only after_id: the `limit` ids just above it, so taken ascending and
 * turned round.
 */
static void query_page_sql(struct sqlbuf *b, const struct store_query *q)
{
	bool up = q->after_id != 0 && q->before_id == 0;

	sql_add(b, MSG_COLS);
	sql_add(b, "WHERE m.id IN (SELECT m.id FROM message m");
	query_filters(b, q);
	sql_cond(b, q->before_id != 0, "m.id < ?2");
	sql_cond(b, q->after_id != 0, "m.id > ?3");
	sql_add(b, up ? " ORDER BY m.id LIMIT ?14 OFFSET ?15)" :
	    " ORDER BY m.id DESC LIMIT ?14 OFFSET ?15)");
	sql_add(b, " ORDER BY m.id DESC");
}

/* The page's rows by id, in the order given (one gone meanwhile is left
 * out). */
static int rows_by_id(struct sqlite_store *st, const int64_t *ids, size_t n,
    store_message_cb cb, void *arg)
{
	int rc = STORE_OK, rows;
	sqlite3_stmt *s;
	size_t i;

	for (i = 0; i < n && rc == STORE_OK; i++) {
		if ((s = store_stmt_get(st, Q_MSG_INFO, &rc)) == NULL)
			break;
		sqlite3_bind_int64(s, 1, ids[i]);
		rc = message_rows(st, s, cb, arg, &rows);
		store_stmt_put(st, Q_MSG_INFO, s);
	}
	return rc;
}

/*
 * The same pass for a search, fast on terms that match most of the
 * store too (issue 12): each body term (fields, words, has:inline) is
 * evaluated once into a bitmap of body ids (store_bodyset, one step per
 * matching index row), positive ones ANDed and negated ones taken out
 * (or, with no positive one, ORed and excluded), and the pass reads
 * (body_id, id, flags) from the covering index message_search (schema
 * 10), testing a bit per row; the other terms and filters stay SQL. A
 * few matching bodies are looked up (their ids given as a JSON list)
 * instead of scanning every message; the page is a heap of the offset +
 * limit newest ids, so the rows need no order. Before this, SQLite built
 * a temporary b-tree of body ids per term, read each match's message row
 * for its flags and sorted the matches: about 1 us a match, 88 ms for a
 * word every message has.
 */
#define QP_BODY (QP_SEARCH + MSG_SEARCH_MAX_TERMS)

struct top {                    /* the k largest ids: a min-heap */
	int64_t *h;
	size_t n, cap, k;
};

static int top_add(struct top *t, int64_t id)
{
	size_t i, c;

	if (t->n < t->k) {
		if (t->n == t->cap) {
			size_t cap = t->cap ? t->cap * 2 : 64;
			int64_t *p;

			if (cap > t->k)
				cap = t->k;
			if ((p = realloc(t->h, cap * sizeof(*p))) == NULL)
				return STORE_FULL;
			t->h = p;
			t->cap = cap;
		}
		for (i = t->n++; i > 0 && t->h[(i - 1) / 2] > id; i = (i - 1) / 2)
			t->h[i] = t->h[(i - 1) / 2];
		t->h[i] = id;
		return STORE_OK;
	}
	if (t->k == 0 || id <= t->h[0])
		return STORE_OK;
	for (i = 0; (c = 2 * i + 1) < t->n; i = c) {
		if (c + 1 < t->n && t->h[c + 1] < t->h[c])
			c++;
		if (t->h[c] >= id)
			break;
		t->h[i] = t->h[c];
	}
	t->h[i] = id;
	return STORE_OK;
}

static int cmp_id_desc(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return x < y ? 1 : x > y ? -1 : 0;
}

struct set_pass {
	const struct store_query *q;
	bool any;                   /* a positive body term: the body must be in `in` */
	struct store_bodyset in;    /* the positive terms' bodies, less the negated ones' */
	struct store_bodyset out;   /* without one: the negated terms' bodies */
	uint64_t n, seen;
	struct top top;
	bool oldest;                /* after_id: the k smallest ids, kept negated */
};

static bool pass_body(const struct set_pass *p, int64_t body)
{
	return p->any ? store_bodyset_has(&p->in, body) : !store_bodyset_has(&p->out, body);
}

/* The bodies of the body terms of the search (see struct set_pass). */
static int pass_sets(struct sqlite_store *st, struct set_pass *p, int64_t lo, int64_t hi)
{
	const struct msg_search *search = p->q->search;
	size_t i, n = msg_search_nterms(search);
	struct store_bodyset one;
	int rc = STORE_OK;

	/* Once the set is empty, the other terms cannot add to it. */
	for (i = 0; i < n && rc == STORE_OK && !(p->any && p->in.n == 0); i++) {
		const struct msg_search_term *t = msg_search_term(search, i);

		if (t->negated || !store_search_body_term(t))
			continue;
		if ((rc = store_search_body_set_range(st, t, lo, hi,
		    p->any ? &one : &p->in)) != STORE_OK)
			break;
		if (p->any) {
			store_bodyset_and(&p->in, &one, false);
			store_bodyset_free(&one);
		}
		p->any = true;
	}
	for (i = 0; i < n && rc == STORE_OK && !(p->any && p->in.n == 0); i++) {
		const struct msg_search_term *t = msg_search_term(search, i);

		if (!t->negated || !store_search_body_term(t))
			continue;
		if ((rc = store_search_body_set_range(st, t, lo, hi, &one)) != STORE_OK)
			break;
		if (p->any)
			store_bodyset_and(&p->in, &one, true);
		else
			rc = store_bodyset_or(&p->out, &one);
		store_bodyset_free(&one);
	}
	return rc;
}

/* A matching message: counted (and its seen flag), its id kept if it is
 * within the paging bounds. */
static int pass_count(struct set_pass *p, int64_t id, int64_t flags)
{
	const struct store_query *q = p->q;

	p->n++;
	if (flags & STORE_FLAG_SEEN)
		p->seen++;
	if ((q->before_id != 0 && id >= q->before_id) ||
	    (q->after_id != 0 && id <= q->after_id))
		return STORE_OK;
	return top_add(&p->top, p->oldest ? -id : id);
}

/* The rows s yields: counted, and the ids within the paging bounds kept. */
static int pass_rows(struct sqlite_store *st, struct set_pass *p, sqlite3_stmt *s)
{
	int r, rc = STORE_OK;

	while (rc == STORE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
		if (pass_body(p, sqlite3_column_int64(s, 0)))
			rc = pass_count(p, sqlite3_column_int64(s, 1), sqlite3_column_int64(s, 2));
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	return rc;
}

/* Only the bodies in [lo, hi) (a part of a search, search_pool.c). */
static void body_range(struct sqlbuf *b, int64_t lo, int64_t hi)
{
	char cond[80];

	if (hi <= 0)
		return;
	snprintf(cond, sizeof(cond), "m.body_id >= %" PRId64 " AND m.body_id < %" PRId64, lo, hi);
	sql_cond(b, true, cond);
}

/* The set's ids as a JSON array, for json_each: SQLite then looks each
 * up in its own loop, twice as fast as a reset, bind and step per id. */
static char *set_json(const struct store_bodyset *set)
{
	char *j = malloc(set->n * 21 + 3), *o = j;
	size_t w;

	if (j == NULL)
		return NULL;
	*o++ = '[';
	for (w = 0; w < set->nw; w++) {
		uint64_t bits = set->w[w];

		for (; bits != 0; bits &= bits - 1)
			o += sprintf(o, "%s%" PRId64, o > j + 1 ? "," : "",
			    (int64_t)(w * 64) + __builtin_ctzll(bits));
	}
	*o++ = ']';
	*o = '\0';
	return j;
}

/* Every message (scan: the covering index, or what the planner picks
 * for the other filters) or only the set's bodies, looked up, when they
 * are fewer than an eighth of the store (a lookup costs about what
 * reading eight index entries in a row does). */
static int pass_messages(struct sqlite_store *st, struct set_pass *p, int64_t lo,
    int64_t hi)
{
	struct sqlbuf b = { .len = 0 };
	uint64_t all = 0, unseen = 0;
	bool seek = p->any && sq_scope_counts(&st->base, 0, &all, &unseen) == STORE_OK &&
	    p->in.n < all / 8;
	char *ids = NULL;
	sqlite3_stmt *s;
	int rc;

	sql_add(&b, "SELECT m.body_id, m.id, m.flags FROM message m");
	query_filters_x(&b, p->q, false);
	body_range(&b, lo, hi);
	_Static_assert(QP_BODY == 48, "the parameter in the text");
	sql_cond(&b, seek, "m.body_id IN (SELECT value FROM json_each(?48))");
	if (seek && (ids = set_json(&p->in)) == NULL)
		return store_set_err(st, STORE_FULL, "out of memory");
	if ((rc = query_prepare(st, &b, p->q, &s)) != STORE_OK) {
		free(ids);
		return rc;
	}
	if (seek)
		sqlite3_bind_text(s, QP_BODY, ids, -1, free);
	rc = pass_rows(st, p, s);
	sqlite3_finalize(s);
	return rc;
}

/*
 * A filtered page and its totals in one pass: the matching ids newest
 * first, counted (and the unseen among them) as they go by, the page's
 * kept; then only the page's rows are read whole. A count and then the
 * page evaluated every search term twice, and the unseen count a third
 * time.
 */
static int query_counted(struct sqlite_store *st, const struct store_query *q,
    int64_t lo, int64_t hi, struct set_pass *p)
{
	struct sqlbuf b = { .len = 0 };
	sqlite3_stmt *s;
	int rc, r = SQLITE_DONE;

	/* The paging bounds are applied here: the totals are without them. */
	sql_add(&b, "SELECT m.id, m.flags FROM message m");
	query_filters(&b, q);
	body_range(&b, lo, hi);
	if ((rc = query_prepare(st, &b, q, &s)) != STORE_OK)
		return rc;
	while (rc == STORE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = pass_count(p, sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	sqlite3_finalize(s);
	return rc;
}

/* A search's counts and newest ids on the bodies in [lo, hi) (hi 0:
 * all). The sets' pass when it can (see struct set_pass); a search it
 * does not answer (STORE_LIMIT from a set) is all SQL (query_counted).
 * Without a positive body term (is:unread, -quarterly, a date) every
 * term is SQL, and the pass still needs no order: it reads the covering
 * index instead of every message row in id order. */
static int counted_part(struct sqlite_store *st, const struct store_query *q, int64_t lo,
    int64_t hi, struct store_search_part *out)
{
	struct set_pass p = { .q = q, .top.k = (size_t)q->offset + q->limit,
	    .oldest = q->after_id != 0 };
	int rc = pass_sets(st, &p, lo, hi);
	size_t i;

	if (rc == STORE_OK && (!p.any || p.in.n > 0))
		rc = pass_messages(st, &p, lo, hi);
	if (rc == STORE_LIMIT) {
		p.n = p.seen = 0;
		p.top.n = 0;
		rc = query_counted(st, q, lo, hi, &p);
	}
	store_bodyset_free(&p.in);
	store_bodyset_free(&p.out);
	if (rc != STORE_OK) {
		free(p.top.h);
		return rc;
	}
	for (i = 0; p.oldest && i < p.top.n; i++)
		p.top.h[i] = -p.top.h[i];
	if (p.top.n > 0)
		qsort(p.top.h, p.top.n, sizeof(*p.top.h), cmp_id_desc);
	out->n = p.n;
	out->seen = p.seen;
	out->ids = p.top.h;
	out->nids = p.top.n;
	return STORE_OK;
}

int store_message_search_part(struct store *base, const struct store_query *q,
    int64_t body_lo, int64_t body_hi, struct store_search_part *out)
{
	struct sqlite_store *st;
	int rc;

	memset(out, 0, sizeof(*out));
	if (base->be != &store_sqlite_backend || q->limit == 0 ||
	    (q->after_id != 0 && (q->offset != 0 || q->before_id != 0)))
		return STORE_ERR;
	st = sqlite_store_of(base);
	if (!st->reader && msg_search_nterms(q->search) > 0 &&
	    (rc = store_fts_catch_up(st)) != STORE_OK)
		return rc;
	return counted_part(st, q, body_lo, body_hi, out);
}

void store_search_part_free(struct store_search_part *p)
{
	free(p->ids);
	p->ids = NULL;
	p->nids = 0;
}

int store_body_id_max(struct store *base, int64_t *max)
{
	if (base->be != &store_sqlite_backend)
		return STORE_ERR;
	*max = 0;
	return pragma_int(sqlite_store_of(base), "SELECT coalesce(max(body_id), 0) FROM message",
	    max);
}

int store_message_rows(struct store *base, const int64_t *ids, size_t n,
    store_message_cb cb, void *arg)
{
	if (base->be != &store_sqlite_backend)
		return STORE_ERR;
	return rows_by_id(sqlite_store_of(base), ids, n, cb, arg);
}

int sq_message_query(struct store *base, const struct store_query *q,
    store_message_cb cb, void *arg, uint64_t *total, uint64_t *unseen)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct sqlbuf b = { .len = 0 };
	sqlite3_stmt *s;
	int rc, rows;

	/* A search sees every committed message's words. */
	if (!st->reader && msg_search_nterms(q->search) > 0 && (rc = store_fts_catch_up(st)) != STORE_OK)
		return rc;
	if (total != NULL && q->limit > 0 && (q->before_id != 0 || q->after_id == 0)) {
		struct store_search_part part;

		if ((rc = counted_part(st, q, 0, 0, &part)) != STORE_OK)
			return rc;
		if (part.nids > q->offset)
			rc = rows_by_id(st, part.ids + q->offset, part.nids - q->offset, cb, arg);
		*total = part.n;
		if (unseen != NULL)
			*unseen = part.n - part.seen;
		store_search_part_free(&part);
		return rc;
	}
	if (total != NULL && (rc = query_total(st, q, total)) != STORE_OK)
		return rc;
	if (total != NULL && unseen != NULL) {
		struct store_query u = *q;

		u.flags_clear |= STORE_FLAG_SEEN;
		if ((rc = query_total(st, &u, unseen)) != STORE_OK)
			return rc;
	}
	query_page_sql(&b, q);
	if ((rc = query_prepare(st, &b, q, &s)) != STORE_OK)
		return rc;
	rc = message_rows(st, s, cb, arg, &rows);
	sqlite3_finalize(s);
	return rc;
}

int sq_scope_counts(struct store *base, int64_t inbox_id, uint64_t *messages, uint64_t *unseen)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_SCOPE_COUNTS, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, inbox_id);
	if ((rc = store_step_row(st, s, "no counts")) == STORE_OK) {
		*messages = (uint64_t)sqlite3_column_int64(s, 0);
		*unseen = (uint64_t)sqlite3_column_int64(s, 1);
	}
	store_stmt_put(st, Q_SCOPE_COUNTS, s);
	return rc;
}

int sq_keyword_counts(struct store *base, store_keyword_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, Q_KEYWORD_COUNTS, &rc);

	if (s == NULL)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = cb(store_col_str(s, 0), (uint64_t)sqlite3_column_int64(s, 1), arg)) != 0)
			break;
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, Q_KEYWORD_COUNTS, s);
	return rc;
}

int store_message_body_id(struct sqlite_store *st, int64_t id, int64_t *body)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_MSG_BODY, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	if ((rc = store_step_row(st, s, "no message %" PRId64, id)) == STORE_OK)
		*body = sqlite3_column_int64(s, 0);
	store_stmt_put(st, Q_MSG_BODY, s);
	return rc;
}

int sq_message_read(struct store *base, int64_t id, store_sink sink, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t body = 0;
	int rc;

	if ((rc = store_message_body_id(st, id, &body)) != STORE_OK)
		return rc;
	return store_body_drain(st, body, 0, UINT64_MAX, sink, arg);
}

/* ---- mailboxes and message state (POP3, IMAP) -------------------------- */

/* Applies the UPDATE; *changed is false when the flags were already so. */
static int flags_update(struct sqlite_store *st, int64_t id, unsigned add, unsigned remove,
    int64_t *inbox, int64_t *mailbox, int64_t *modseq, bool *changed)
{
	struct store_qargs a = { .i = { id, add, remove }, .n = 3 };
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_bound(st, Q_MSG_FLAGS, &a, &rc);

	if (s == NULL)
		return rc;
	*changed = false;
	if ((r = sqlite3_step(s)) == SQLITE_ROW) {
		*changed = true;
		*mailbox = sqlite3_column_int64(s, 0);
		*modseq = sqlite3_column_int64(s, 2);
		*inbox = sqlite3_column_int64(s, 3);
		r = sqlite3_step(s);
	}
	if (r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, Q_MSG_FLAGS, s);
	if (rc != STORE_OK || !*changed)
		return rc;
	if ((s = store_stmt_get(st, Q_MAILBOX_MODSEQ, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, *mailbox);
	sqlite3_bind_int64(s, 2, *modseq);
	rc = store_stmt_done(st, s);
	store_stmt_put(st, Q_MAILBOX_MODSEQ, s);
	return rc;
}

int sq_message_set_flags(struct store *base, int64_t id, unsigned add, unsigned remove)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t inbox = 0, mailbox = 0, modseq = 0;
	size_t queued = st->n_pending;
	bool changed = false;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = flags_update(st, id, add, remove, &inbox, &mailbox, &modseq, &changed);
	if (rc == STORE_OK && changed)
		rc = store_queue_event(st, STORE_CHANGE_FLAGS, inbox, mailbox, id);
	return store_wtx_finish(st, &w, rc, queued);
}

/* Streams bytes [offset, offset+len) of a message (clipped to its size). */
int sq_message_read_range(struct store *base, int64_t id, uint64_t offset, uint64_t len,
    store_sink sink, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t body = 0;
	int rc;

	if ((rc = store_message_body_id(st, id, &body)) != STORE_OK)
		return rc;
	return store_body_drain(st, body, offset, len, sink, arg);
}

/* ---- maintenance ------------------------------------------------------- */

int sq_integrity_check(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, Q_INTEGRITY, &rc);

	if (s == NULL)
		return rc;
	r = sqlite3_step(s);
	if (r != SQLITE_ROW)
		rc = store_sql_fail(st, r);
	else if (strcmp(store_col_str(s, 0), "ok") != 0)
		rc = store_set_err(st, STORE_ERR, "integrity check: %s", store_col_str(s, 0));
	store_stmt_put(st, Q_INTEGRITY, s);
	return rc;
}

/* ---- the backend ------------------------------------------------------- */

const struct store_backend store_sqlite_backend = {
	.name = "sqlite",
	.open = sq_open,
	.close = sq_close,
	.errmsg = sq_errmsg,
	.inbox_add = sq_inbox_add,
	.inbox_get = sq_inbox_get,
	.inbox_ensure = sq_inbox_ensure,
	.inbox_set_password = sq_inbox_set_password,
	.inbox_del = sq_inbox_del,
	.inbox_foreach = sq_inbox_foreach,
	.begin = sq_begin,
	.commit = sq_commit,
	.rollback = sq_rollback,
	.message_add = sq_message_add,
	.inbox_prune = sq_inbox_prune,
	.prune_older = sq_prune_older,
	.space = sq_space,
	.vacuum_step = sq_vacuum_step,
	.make_incremental = sq_make_incremental,
	.inbox_counts = sq_inbox_counts,
	.message_foreach = sq_message_foreach,
	.message_get_info = sq_message_get_info,
	.message_query = sq_message_query,
	.message_read = sq_message_read,
	.message_del = sq_message_del,
	.message_del_inbox = sq_message_del_inbox,
	.mailbox_get = sq_mailbox_get,
	.mailbox_get_by_id = sq_mailbox_get_by_id,
	.mailbox_list = sq_mailbox_list,
	.mailbox_create = sq_mailbox_create,
	.mailbox_delete = sq_mailbox_delete,
	.mailbox_rename = sq_mailbox_rename,
	.mailbox_status = sq_mailbox_status,
	.mailbox_claim_recent = sq_mailbox_claim_recent,
	.mailbox_keywords = sq_mailbox_keywords,
	.mailbox_vanished = sq_mailbox_vanished,
	.subscription_set = sq_subscription_set,
	.subscription_list = sq_subscription_list,
	.mailbox_foreach = sq_mailbox_foreach,
	.mailbox_changes = sq_mailbox_changes,
	.mailbox_state = sq_mailbox_state,
	.message_set_flags = sq_message_set_flags,
	.message_copy = sq_message_copy,
	.message_move = sq_message_move,
	.message_store = sq_message_store,
	.message_state = sq_message_state,
	.message_structure = sq_message_structure,
	.message_set_structure = sq_message_set_structure,
	.message_read_range = sq_message_read_range,
	.poll_external = sq_poll_external,
	.integrity_check = sq_integrity_check,
	.scope_counts = sq_scope_counts,
	.keyword_counts = sq_keyword_counts,
};

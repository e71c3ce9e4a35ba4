/*
 * The mailstore as IMAP sees it: mailboxes of an inbox (create, delete,
 * rename, subscriptions, status, \Recent), and per-message state beyond
 * delivery (flags with keywords, copy, move, the MIME structure).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/store.h"
#include "store_internal.h"

const char *const store_imap_sql[QI_END - QI_FIRST] = {
#define Q(x) [(x) - QI_FIRST]
	Q(QI_MAILBOX_LIST) = MAILBOX_COLS "WHERE b.inbox_id = ?1 ORDER BY b.name",
	Q(QI_MAILBOX_BY_ID) = MAILBOX_COLS "WHERE b.id = ?1",
	Q(QI_MAILBOX_DEL) = "DELETE FROM mailbox WHERE id = ?1",
	Q(QI_MSG_DEL_MAILBOX) = "DELETE FROM message WHERE mailbox_id = ?1"
	    " RETURNING mailbox_id, id, (SELECT inbox_id FROM mailbox WHERE id = ?1)",
	Q(QI_MAILBOX_RENAME) = "UPDATE mailbox SET name = ?3 || substr(name, length(?2) + 1)"
	    " WHERE inbox_id = ?1 AND (name = ?2 OR substr(name, 1, length(?2) + 1) = ?2 || '/')",
	Q(QI_MSG_REHOME) = "UPDATE message SET mailbox_id = ?2 WHERE mailbox_id = ?1 RETURNING id",
	Q(QI_MAILBOX_COPY_COUNTERS) = "UPDATE mailbox SET"
	    " uidnext = (SELECT uidnext FROM mailbox WHERE id = ?1),"
	    " highestmodseq = (SELECT highestmodseq FROM mailbox WHERE id = ?1) WHERE id = ?2",
	Q(QI_MAILBOX_STATUS) = "SELECT count(*), coalesce(sum((flags & 1) = 0), 0),"
	    " coalesce(sum((flags & 8) != 0), 0), coalesce(sum(size), 0),"
	    " coalesce(sum(uid > (SELECT recent_uid FROM mailbox WHERE id = ?1)), 0)"
	    " FROM message WHERE mailbox_id = ?1",
	Q(QI_MAILBOX_RECENT_GET) = "SELECT recent_uid, uidnext - 1 FROM mailbox WHERE id = ?1",
	Q(QI_MAILBOX_RECENT_SET) = "UPDATE mailbox SET recent_uid = ?2 WHERE id = ?1",
	Q(QI_MAILBOX_UIDNEXT) = "UPDATE mailbox SET uidnext = uidnext + 1,"
	    " highestmodseq = highestmodseq + 1 WHERE id = ?1"
	    " RETURNING uidnext - 1, highestmodseq, inbox_id",
	Q(QI_MAILBOX_MODSEQ_NEXT) = "UPDATE mailbox SET highestmodseq = highestmodseq + 1"
	    " WHERE id = ?1 RETURNING highestmodseq, inbox_id",
	Q(QI_MAILBOX_INBOX) = "SELECT inbox_id FROM mailbox WHERE id = ?1",
	Q(QI_MAILBOX_KEYWORDS) = "SELECT DISTINCT k.keyword FROM message_keyword k"
	    " JOIN message m ON m.id = k.message_id WHERE m.mailbox_id = ?1 ORDER BY 1",
	Q(QI_SUB_ADD) = "INSERT OR IGNORE INTO subscription (inbox_id, name) VALUES (?1, ?2)",
	Q(QI_SUB_DEL) = "DELETE FROM subscription WHERE inbox_id = ?1 AND name = ?2",
	Q(QI_SUB_LIST) = "SELECT name FROM subscription WHERE inbox_id = ?1 ORDER BY name",
	Q(QI_SUB_COUNT) = "SELECT count(*) FROM subscription WHERE inbox_id = ?1",
	Q(QI_MAILBOX_COUNT) = "SELECT count(*) FROM mailbox WHERE inbox_id = ?1",
	Q(QI_MSG_COPY) = "INSERT INTO message (mailbox_id, body_id, uid, flags, modseq,"
	    " internal_date, size, mail_from, auth_user, client_addr,"
	    " hdr_from, hdr_to, hdr_subject, hdr_date, structure, has_attachment)"
	    " SELECT ?2, body_id, ?3, flags, ?4, internal_date, size, mail_from, auth_user,"
	    " client_addr, hdr_from, hdr_to, hdr_subject, hdr_date, structure, has_attachment"
	    " FROM message WHERE id = ?1",
	Q(QI_RCPT_COPY) = "INSERT INTO message_rcpt (message_id, seq, addr)"
	    " SELECT ?2, seq, addr FROM message_rcpt WHERE message_id = ?1",
	Q(QI_KW_COPY) = "INSERT INTO message_keyword (message_id, keyword)"
	    " SELECT ?2, keyword FROM message_keyword WHERE message_id = ?1",
	Q(QI_MSG_MOVE) = "UPDATE message SET mailbox_id = ?2, uid = ?3, modseq = ?4 WHERE id = ?1",
	Q(QI_MSG_STATE) = "SELECT mailbox_id, flags, modseq, keywords FROM message WHERE id = ?1",
	Q(QI_KW_ROOM) = "SELECT count(*), coalesce(sum(keyword = ?1), 0) FROM keyword_count",
	Q(QI_KW_ADD) = "INSERT OR IGNORE INTO message_keyword (message_id, keyword) VALUES (?1, ?2)",
	Q(QI_KW_DEL) = "DELETE FROM message_keyword WHERE message_id = ?1 AND keyword = ?2",
	Q(QI_KW_CLEAR) = "DELETE FROM message_keyword WHERE message_id = ?1",
	Q(QI_MSG_SET_FLAGS) = "UPDATE message SET flags = ?2, modseq = ?3 WHERE id = ?1",
	Q(QI_MSG_STRUCTURE) = "SELECT structure FROM message WHERE id = ?1",
	Q(QI_MSG_SET_STRUCTURE) = "UPDATE message SET structure = ?2 WHERE id = ?1",
	/* By modseq, as Q_MAILBOX_CHANGES: tombstones only grow. */
	Q(QI_VANISHED) = "SELECT uid FROM expunged INDEXED BY expunged_modseq"
	    " WHERE mailbox_id = ?1 AND modseq > ?2"
	    " ORDER BY uid",
	/* LIST a page at a time (imap_cmd_list.c), by the (inbox_id, name)
	 * indexes: names after ?2, at most ?3. */
	Q(QI_MAILBOX_PAGE) = MAILBOX_COLS "WHERE b.inbox_id = ?1 AND b.name > ?2"
	    " ORDER BY b.name LIMIT ?3",
	Q(QI_SUB_PAGE) = "SELECT name FROM subscription WHERE inbox_id = ?1 AND name > ?2"
	    " ORDER BY name LIMIT ?3",
	/* The counts schema 7's triggers keep: one row, however many messages. */
	Q(QI_MAILBOX_COUNTS) = "SELECT n_messages, n_unseen, uidnext, uidvalidity, highestmodseq"
	    " FROM mailbox WHERE id = ?1",
	/* Names below ?2 are those from ?2 || '/' up to ?2 || '0' ('/' + 1). */
	Q(QI_MAILBOX_CHILD) = "SELECT count(*) FROM (SELECT 1 FROM mailbox WHERE inbox_id = ?1"
	    " AND name >= ?2 || '/' AND name < ?2 || '0' LIMIT 1)",
#undef Q
};

/* The mailboxes every inbox has: INBOX and the RFC 6154 special uses. */
static const struct { const char *name, *use; } default_mailboxes[] = {
	{ "INBOX", NULL }, { "Drafts", "\\Drafts" }, { "Junk", "\\Junk" },
	{ "Sent", "\\Sent" }, { "Trash", "\\Trash" },
};

/* ---- small statement helpers ------------------------------------------- */

/* A one-row query returning integers into out[0..n). STORE_NOTFOUND if
 * no row. */
static int row_q(struct sqlite_store *st, int q, int64_t id, int64_t *out, int n)
{
	int rc = STORE_OK, r, k;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		for (k = 0; k < n; k++)
			out[k] = sqlite3_column_int64(s, k);
	} else {
		rc = r == SQLITE_DONE ? store_set_err(st, STORE_NOTFOUND, "not found")
		    : store_sql_fail(st, r);
	}
	store_stmt_put(st, q, s);
	return rc;
}

/* ---- mailboxes --------------------------------------------------------- */

static void mailbox_from_row(sqlite3_stmt *s, struct store_mailbox *out)
{
	out->id = sqlite3_column_int64(s, 0);
	out->inbox_id = sqlite3_column_int64(s, 1);
	snprintf(out->name, sizeof(out->name), "%s", store_col_str(s, 2));
	out->uidvalidity = (uint32_t)sqlite3_column_int64(s, 3);
	out->uidnext = (uint32_t)sqlite3_column_int64(s, 4);
	out->highestmodseq = (uint64_t)sqlite3_column_int64(s, 5);
	out->messages = (uint32_t)sqlite3_column_int64(s, 6);
	snprintf(out->special_use, sizeof(out->special_use), "%s", store_col_str(s, 7));
}

static int mailbox_query(struct sqlite_store *st, int q, int64_t id, const char *name,
    store_mailbox_cb cb, void *arg, struct store_mailbox *one)
{
	struct store_mailbox mb;
	int rc = STORE_OK, r, rows = 0;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	if (name != NULL)
		store_bind_str(s, 2, name);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		rows++;
		mailbox_from_row(s, one != NULL ? one : &mb);
		if (cb != NULL && (rc = cb(&mb, arg)) != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = store_sql_fail(st, r);
	else if (rc == STORE_OK && one != NULL && rows == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no mailbox '%s'", name ? name : "");
	store_stmt_put(st, q, s);
	return rc;
}

int sq_mailbox_get(struct store *base, int64_t inbox_id, const char *name,
    struct store_mailbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return mailbox_query(st, Q_MAILBOX_GET, inbox_id, name, NULL, NULL, out);
}

int sq_mailbox_get_by_id(struct store *base, int64_t id, struct store_mailbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return mailbox_query(st, QI_MAILBOX_BY_ID, id, NULL, NULL, NULL, out);
}

int sq_mailbox_list(struct store *base, int64_t inbox_id, store_mailbox_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return mailbox_query(st, QI_MAILBOX_LIST, inbox_id, NULL, cb, arg, NULL);
}

int store_inbox_mailboxes(struct sqlite_store *st, int64_t inbox)
{
	size_t i;
	int rc = STORE_OK;

	for (i = 0; i < sizeof(default_mailboxes) / sizeof(default_mailboxes[0]); i++) {
		rc = store_insert_mailbox(st, inbox, default_mailboxes[i].name,
		    default_mailboxes[i].use, NULL);
		if (rc == STORE_OK)
			rc = store_exec(st, QI_SUB_ADD, &(struct store_qargs){ .i = { inbox },
			    .t = { NULL, default_mailboxes[i].name }, .n = 2 }, NULL);
		if (rc != STORE_OK)
			break;
	}
	return rc;
}

int sq_mailbox_create(struct store *base, int64_t inbox_id, const char *name,
    struct store_mailbox *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct wtx w;
	int64_t id = 0;
	int rc;

	int64_t n = 0;

	if (name == NULL || name[0] == '\0' || strlen(name) >= STORE_MAILBOX_NAME_MAX)
		return store_set_err(st, STORE_ERR, "invalid mailbox name");
	if ((rc = row_q(st, QI_MAILBOX_COUNT, inbox_id, &n, 1)) != STORE_OK)
		return rc;
	if (n >= st->base.limits.mailboxes)
		return store_set_err(st, STORE_LIMIT, "more than %u mailboxes",
		    st->base.limits.mailboxes);
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = store_insert_mailbox(st, inbox_id, name, NULL, &id);
	if ((rc = store_wtx_end(st, &w, rc)) != STORE_OK)
		return rc;
	return out != NULL ? sq_mailbox_get_by_id(&st->base, id, out) : STORE_OK;
}

/* Runs a DELETE ... RETURNING mailbox_id, id, inbox, queueing expunges. */
static int delete_messages(struct sqlite_store *st, int64_t mailbox_id)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, QI_MSG_DEL_MAILBOX, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, mailbox_id);
	while ((r = sqlite3_step(s)) == SQLITE_ROW && rc == STORE_OK)
		rc = store_queue_event(st, STORE_CHANGE_EXPUNGE, sqlite3_column_int64(s, 2),
		    sqlite3_column_int64(s, 0), sqlite3_column_int64(s, 1));
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, QI_MSG_DEL_MAILBOX, s);
	return rc;
}

int sq_mailbox_delete(struct store *base, int64_t mailbox_id)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t queued = st->n_pending;
	int64_t n = 0;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = delete_messages(st, mailbox_id);
	if (rc == STORE_OK)
		rc = store_exec(st, QI_MAILBOX_DEL, &(struct store_qargs){ .i = { mailbox_id }, .n = 1 }, &n);
	if (rc == STORE_OK && n == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no mailbox %" PRId64, mailbox_id);
	return store_wtx_finish(st, &w, rc, queued);
}

/* RENAME INBOX: a new mailbox takes INBOX's messages and counters. */
static int rename_inbox(struct sqlite_store *st, int64_t inbox_id, const char *to)
{
	struct store_mailbox from;
	int64_t to_id = 0;
	int rc, r;
	sqlite3_stmt *s;

	if ((rc = sq_mailbox_get(&st->base, inbox_id, "INBOX", &from)) != STORE_OK)
		return rc;
	if ((rc = store_insert_mailbox(st, inbox_id, to, NULL, &to_id)) != STORE_OK)
		return rc;
	rc = store_exec(st, QI_MAILBOX_COPY_COUNTERS, &(struct store_qargs){ .i = { from.id, to_id },
	    .n = 2 }, NULL);
	if (rc != STORE_OK || (s = store_stmt_get(st, QI_MSG_REHOME, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, from.id);
	sqlite3_bind_int64(s, 2, to_id);
	while ((r = sqlite3_step(s)) == SQLITE_ROW && rc == STORE_OK) {
		int64_t id = sqlite3_column_int64(s, 0);
		rc = store_queue_event(st, STORE_CHANGE_EXPUNGE, inbox_id, from.id, id);
		if (rc == STORE_OK)
			rc = store_queue_event(st, STORE_CHANGE_NEW, inbox_id, to_id, id);
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, QI_MSG_REHOME, s);
	return rc;
}

static int rename_tree(struct sqlite_store *st, int64_t inbox_id, const char *from, const char *to)
{
	struct store_qargs a = { .i = { inbox_id }, .t = { NULL, from, to }, .n = 3 };
	int64_t n = 0;
	int rc = store_exec(st, QI_MAILBOX_RENAME, &a, &n);

	if (rc == STORE_ERR && sqlite3_extended_errcode(st->db) == SQLITE_CONSTRAINT_UNIQUE)
		return store_set_err(st, STORE_EXISTS, "mailbox '%s' exists", to);
	if (rc == STORE_OK && n == 0)
		return store_set_err(st, STORE_NOTFOUND, "no mailbox '%s'", from);
	return rc;
}

int sq_mailbox_rename(struct store *base, int64_t inbox_id, const char *from, const char *to)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_mailbox exists;
	size_t queued = st->n_pending;
	struct wtx w;
	int rc;

	if (to == NULL || to[0] == '\0' || strlen(to) >= STORE_MAILBOX_NAME_MAX)
		return store_set_err(st, STORE_ERR, "invalid mailbox name");
	if (sq_mailbox_get(&st->base, inbox_id, to, &exists) == STORE_OK)
		return store_set_err(st, STORE_EXISTS, "mailbox '%s' exists", to);
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	if (strcmp(from, "INBOX") == 0)
		rc = rename_inbox(st, inbox_id, to);
	else
		rc = rename_tree(st, inbox_id, from, to);
	return store_wtx_finish(st, &w, rc, queued);
}

int sq_mailbox_status(struct store *base, int64_t mailbox_id, struct store_mailbox_status *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_mailbox mb;
	int64_t v[5] = { 0 };
	int rc = sq_mailbox_get_by_id(&st->base, mailbox_id, &mb);

	if (rc == STORE_OK)
		rc = row_q(st, QI_MAILBOX_STATUS, mailbox_id, v, 5);
	if (rc != STORE_OK)
		return rc;
	out->messages = (uint32_t)v[0];
	out->unseen = (uint32_t)v[1];
	out->deleted = (uint32_t)v[2];
	out->size = (uint64_t)v[3];
	out->recent = (uint32_t)v[4];
	out->uidnext = mb.uidnext;
	out->uidvalidity = mb.uidvalidity;
	out->highestmodseq = mb.highestmodseq;
	return STORE_OK;
}

int sq_mailbox_claim_recent(struct store *base, int64_t mailbox_id, uint32_t *above)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t v[2] = { 0 };
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = row_q(st, QI_MAILBOX_RECENT_GET, mailbox_id, v, 2);
	if (rc == STORE_OK && v[1] > v[0])
		rc = store_exec(st, QI_MAILBOX_RECENT_SET, &(struct store_qargs){ .i = { mailbox_id, v[1] },
		    .n = 2 }, NULL);
	if ((rc = store_wtx_end(st, &w, rc)) != STORE_OK)
		return rc;
	/* Nothing new: no UID is above the last one. */
	*above = (uint32_t)(v[1] > v[0] ? v[0] : v[1]);
	return STORE_OK;
}

static int name_rows(struct sqlite_store *st, int q, int64_t id, store_name_cb cb, void *arg)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = cb(store_col_str(s, 0), arg)) != 0)
			break;
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, q, s);
	return rc;
}

int sq_mailbox_keywords(struct store *base, int64_t mailbox_id, store_name_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return name_rows(st, QI_MAILBOX_KEYWORDS, mailbox_id, cb, arg);
}

int sq_subscription_list(struct store *base, int64_t inbox_id, store_name_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return name_rows(st, QI_SUB_LIST, inbox_id, cb, arg);
}

/* ---- LIST a page at a time --------------------------------------------- */

static int page_stmt(struct store *base, int q, int64_t inbox_id, const char *after,
    unsigned limit, sqlite3_stmt **s)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;

	if (base->be != &store_sqlite_backend)
		return store_set_err(st, STORE_ERR, "no paged listing in this store");
	if ((*s = store_stmt_get(st, q, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(*s, 1, inbox_id);
	store_bind_str(*s, 2, after);
	sqlite3_bind_int64(*s, 3, limit);
	return STORE_OK;
}

int store_mailbox_page(struct store *base, int64_t inbox_id, const char *after, unsigned limit,
    store_mailbox_cb cb, void *arg, unsigned *rows)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_mailbox mb;
	sqlite3_stmt *s = NULL;
	int rc = page_stmt(base, QI_MAILBOX_PAGE, inbox_id, after, limit, &s), r = SQLITE_DONE;

	*rows = 0;
	if (rc != STORE_OK)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		(*rows)++;
		mailbox_from_row(s, &mb);
		if ((rc = cb(&mb, arg)) != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, QI_MAILBOX_PAGE, s);
	return rc;
}

int store_subscription_page(struct store *base, int64_t inbox_id, const char *after,
    unsigned limit, store_name_cb cb, void *arg, unsigned *rows)
{
	struct sqlite_store *st = sqlite_store_of(base);
	sqlite3_stmt *s = NULL;
	int rc = page_stmt(base, QI_SUB_PAGE, inbox_id, after, limit, &s), r = SQLITE_DONE;

	*rows = 0;
	if (rc != STORE_OK)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		(*rows)++;
		if ((rc = cb(store_col_str(s, 0), arg)) != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, QI_SUB_PAGE, s);
	return rc;
}

int store_mailbox_counts(struct store *base, int64_t mailbox_id, struct store_mailbox_status *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t v[5] = { 0 };
	int rc;

	if (base->be != &store_sqlite_backend)
		return store_mailbox_status(base, mailbox_id, out);
	if ((rc = row_q(st, QI_MAILBOX_COUNTS, mailbox_id, v, 5)) != STORE_OK)
		return rc;
	memset(out, 0, sizeof(*out));
	out->messages = (uint32_t)v[0];
	out->unseen = (uint32_t)v[1];
	out->uidnext = (uint32_t)v[2];
	out->uidvalidity = (uint32_t)v[3];
	out->highestmodseq = (uint64_t)v[4];
	return STORE_OK;
}

int store_mailbox_has_children(struct store *base, int64_t inbox_id, const char *name, bool *yes)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s;

	*yes = false;
	if (base->be != &store_sqlite_backend)
		return store_set_err(st, STORE_ERR, "no such query in this store");
	if ((s = store_stmt_get(st, QI_MAILBOX_CHILD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, inbox_id);
	store_bind_str(s, 2, name);
	if ((rc = store_step_row(st, s, "no count")) == STORE_OK)
		*yes = sqlite3_column_int64(s, 0) != 0;
	store_stmt_put(st, QI_MAILBOX_CHILD, s);
	return rc;
}

int sq_subscription_set(struct store *base, int64_t inbox_id, const char *name, bool on)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_qargs a = { .i = { inbox_id }, .t = { NULL, name }, .n = 2 };
	int64_t n = 0;
	int rc;

	if (on && (rc = row_q(st, QI_SUB_COUNT, inbox_id, &n, 1)) != STORE_OK)
		return rc;
	if (on && n >= st->base.limits.subscriptions)
		return store_set_err(st, STORE_LIMIT, "more than %u subscriptions",
		    st->base.limits.subscriptions);
	return store_exec(st, on ? QI_SUB_ADD : QI_SUB_DEL, &a, NULL);
}

/* ---- messages ---------------------------------------------------------- */

static int msg_rows(struct sqlite_store *st, int q, int64_t mailbox_id, uint64_t since,
    store_msg_cb cb, void *arg)
{
	struct store_msg m;
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, mailbox_id);
	if (q == Q_MAILBOX_CHANGES)
		sqlite3_bind_int64(s, 2, (int64_t)since);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		m.id = sqlite3_column_int64(s, 0);
		m.uid = (uint32_t)sqlite3_column_int64(s, 1);
		m.flags = (unsigned)sqlite3_column_int64(s, 2);
		m.size = (uint64_t)sqlite3_column_int64(s, 3);
		m.internal_date = sqlite3_column_int64(s, 4);
		m.modseq = (uint64_t)sqlite3_column_int64(s, 5);
		m.keywords = store_col_str(s, 6);
		if ((rc = cb(&m, arg)) != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, q, s);
	return rc;
}

int store_mailbox_read_all(struct sqlite_store *st, int64_t mailbox_id, store_msg_cb cb, void *arg)
{
	return msg_rows(st, Q_MAILBOX_MSGS, mailbox_id, 0, cb, arg);
}

int sq_mailbox_changes(struct store *base, int64_t mailbox_id, uint64_t since,
    store_msg_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);

	return msg_rows(st, Q_MAILBOX_CHANGES, mailbox_id, since, cb, arg);
}

int sq_mailbox_state(struct store *base, int64_t mailbox_id, struct store_mailbox_state *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t v[3] = { 0 };
	int rc = row_q(st, Q_MAILBOX_STATE, mailbox_id, v, 3);

	if (rc != STORE_OK)
		return rc;
	out->highestmodseq = (uint64_t)v[0];
	out->recent_above = (uint32_t)v[1];
	out->uidvalidity = (uint32_t)v[2];
	return STORE_OK;
}

int store_mailbox_take_uid(struct sqlite_store *st, int64_t mailbox, int64_t *uid,
    int64_t *modseq, int64_t *inbox)
{
	int64_t v[3] = { 0 };
	int rc = row_q(st, QI_MAILBOX_UIDNEXT, mailbox, v, 3);

	if (rc == STORE_NOTFOUND)
		return store_set_err(st, STORE_NOTFOUND, "no mailbox %" PRId64, mailbox);
	if (rc == STORE_OK && v[0] > UINT32_MAX)
		return store_set_err(st, STORE_ERR, "UIDs of mailbox %" PRId64 " exhausted", mailbox);
	*uid = v[0];
	*modseq = v[1];
	*inbox = v[2];
	return rc;
}

/* Whether one more message of the mailbox with keyword kw keeps the
 * mailbox within limits.keywords distinct keywords. keyword_count holds
 * every keyword of the store, a superset of the mailbox's: while it has
 * room, no pass over the mailbox's messages is needed. */
static bool keyword_fits(struct sqlite_store *st, int64_t mailbox, const char *kw)
{
	const char *one[1] = { kw };
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, QI_KW_ROOM, &rc);
	int64_t all = 0, known = 0;

	if (s == NULL)
		return false;
	store_bind_str(s, 1, kw);
	if (sqlite3_step(s) == SQLITE_ROW) {
		all = sqlite3_column_int64(s, 0);
		known = sqlite3_column_int64(s, 1);
	}
	store_stmt_put(st, QI_KW_ROOM, s);
	if (all + (known ? 0 : 1) <= (int64_t)st->base.limits.keywords)
		return true;
	return store_mailbox_keywords_room(&st->base, mailbox, one, 1, NULL) == STORE_OK;
}

/* Adds space-separated keywords to message id of the mailbox; one that
 * would take the mailbox beyond max-keywords is left out (a delivery is
 * not refused for its tags). */
int store_keywords_add(struct sqlite_store *st, int64_t id, int64_t mailbox, const char *keywords)
{
	char kw[256];
	const char *p = keywords;
	size_t n;
	int rc = STORE_OK;

	while (rc == STORE_OK && *p != '\0') {
		n = strcspn(p, " ");
		if (n > 0 && n < sizeof(kw)) {
			memcpy(kw, p, n);
			kw[n] = '\0';
			if (keyword_fits(st, mailbox, kw))
				rc = store_exec(st, QI_KW_ADD, &(struct store_qargs){ .i = { id },
				    .t = { NULL, kw }, .n = 2 }, NULL);
		}
		p += n;
		p += strspn(p, " ");
	}
	return rc;
}

int sq_message_copy(struct store *base, int64_t id, int64_t dest_mailbox,
    int64_t *new_id, uint32_t *new_uid)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t queued = st->n_pending;
	int64_t uid = 0, modseq = 0, nid = 0, n = 0, inbox = 0;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = store_mailbox_take_uid(st, dest_mailbox, &uid, &modseq, &inbox);
	if (rc == STORE_OK)
		rc = store_exec(st, QI_MSG_COPY, &(struct store_qargs){ .i = { id, dest_mailbox, uid, modseq },
		    .n = 4 }, &n);
	if (rc == STORE_OK && n == 0)
		rc = store_set_err(st, STORE_NOTFOUND, "no message %" PRId64, id);
	if (rc == STORE_OK) {
		struct store_qargs a = { .i = { id, sqlite3_last_insert_rowid(st->db) }, .n = 2 };
		nid = a.i[1];
		rc = store_exec(st, QI_RCPT_COPY, &a, NULL);
		if (rc == STORE_OK)
			rc = store_exec(st, QI_KW_COPY, &a, NULL);
	}
	if (rc == STORE_OK)
		rc = store_queue_event(st, STORE_CHANGE_NEW, inbox, dest_mailbox, nid);
	if ((rc = store_wtx_finish(st, &w, rc, queued)) != STORE_OK)
		return rc;
	if (new_id != NULL)
		*new_id = nid;
	if (new_uid != NULL)
		*new_uid = (uint32_t)uid;
	return STORE_OK;
}

int sq_message_move(struct store *base, int64_t id, int64_t dest_mailbox, uint32_t *new_uid)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t queued = st->n_pending;
	int64_t state[3] = { 0 }, uid = 0, modseq = 0, from_inbox = 0, inbox = 0;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = row_q(st, QI_MSG_STATE, id, state, 3);
	if (rc == STORE_OK)
		rc = row_q(st, QI_MAILBOX_INBOX, state[0], &from_inbox, 1);
	if (rc == STORE_OK)
		rc = store_mailbox_take_uid(st, dest_mailbox, &uid, &modseq, &inbox);
	if (rc == STORE_OK)
		rc = store_exec(st, QI_MSG_MOVE, &(struct store_qargs){ .i = { id, dest_mailbox, uid, modseq },
		    .n = 4 }, NULL);
	if (rc == STORE_OK)
		rc = store_queue_event(st, STORE_CHANGE_EXPUNGE, from_inbox, state[0], id);
	if (rc == STORE_OK)
		rc = store_queue_event(st, STORE_CHANGE_NEW, inbox, dest_mailbox, id);
	if ((rc = store_wtx_finish(st, &w, rc, queued)) != STORE_OK)
		return rc;
	if (new_uid != NULL)
		*new_uid = (uint32_t)uid;
	return STORE_OK;
}

int sq_message_state(struct store *base, int64_t id, unsigned *flags, char *kw, size_t kwsize,
    uint64_t *modseq)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, QI_MSG_STATE, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		if (flags != NULL)
			*flags = (unsigned)sqlite3_column_int64(s, 1);
		if (modseq != NULL)
			*modseq = (uint64_t)sqlite3_column_int64(s, 2);
		if (kw != NULL)
			snprintf(kw, kwsize, "%s", store_col_str(s, 3));
	} else {
		rc = r == SQLITE_DONE ? store_set_err(st, STORE_NOTFOUND, "no message %" PRId64, id)
		    : store_sql_fail(st, r);
	}
	store_stmt_put(st, QI_MSG_STATE, s);
	return rc;
}

/* Applies the keyword part of a STORE; *changed counts rows touched. */
static int store_keywords(struct sqlite_store *st, int64_t id, enum store_flags_op op,
    const char *const *kw, size_t n, int64_t *changed)
{
	int64_t c = 0;
	size_t i;
	int rc = STORE_OK;

	if (op == STORE_FLAGS_SET)
		rc = store_exec(st, QI_KW_CLEAR, &(struct store_qargs){ .i = { id }, .n = 1 }, &c);
	*changed += c;
	for (i = 0; i < n && rc == STORE_OK; i++) {
		struct store_qargs a = { .i = { id }, .t = { NULL, kw[i] }, .n = 2 };
		rc = store_exec(st, op == STORE_FLAGS_REMOVE ? QI_KW_DEL : QI_KW_ADD, &a, &c);
		*changed += c;
	}
	return rc;
}

static unsigned apply_flags(enum store_flags_op op, unsigned old, unsigned flags)
{
	if (op == STORE_FLAGS_SET)
		return flags;
	return op == STORE_FLAGS_ADD ? old | flags : old & ~flags;
}

int sq_message_store(struct store *base, int64_t id, enum store_flags_op op, unsigned flags,
    const char *const *keywords, size_t n_keywords, uint64_t unchangedsince,
    uint64_t *modseq)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t queued = st->n_pending;
	int64_t state[3] = { 0 }, changed = 0, next[2] = { 0 };
	unsigned newflags;
	struct wtx w;
	int rc;

	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = row_q(st, QI_MSG_STATE, id, state, 3);
	if (rc == STORE_OK && unchangedsince != 0 && (uint64_t)state[2] > unchangedsince)
		rc = STORE_MODIFIED;
	newflags = apply_flags(op, (unsigned)state[1], flags);
	if (rc == STORE_OK)
		rc = store_keywords(st, id, op, keywords, n_keywords, &changed);
	if (rc == STORE_OK && (changed > 0 || newflags != (unsigned)state[1])) {
		/* next: the new modseq and the mailbox's inbox */
		rc = row_q(st, QI_MAILBOX_MODSEQ_NEXT, state[0], next, 2);
		if (rc == STORE_OK)
			rc = store_exec(st, QI_MSG_SET_FLAGS, &(struct store_qargs){ .i = { id, newflags,
			    next[0] }, .n = 3 }, NULL);
		if (rc == STORE_OK)
			rc = store_queue_event(st, STORE_CHANGE_FLAGS, next[1], state[0], id);
		state[2] = next[0];
	}
	if (modseq != NULL)
		*modseq = (uint64_t)state[2];
	if (rc == STORE_MODIFIED) {
		store_wtx_end(st, &w, STORE_ERR);
		st->n_pending = queued;
		return STORE_MODIFIED;
	}
	return store_wtx_finish(st, &w, rc, queued);
}

int sq_message_structure(struct store *base, int64_t id, void **blob, size_t *len)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, QI_MSG_STRUCTURE, &rc);

	*blob = NULL;
	*len = 0;
	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	rc = store_step_row(st, s, "no message %" PRId64, id);
	if (rc == STORE_OK && sqlite3_column_type(s, 0) == SQLITE_BLOB) {
		*len = (size_t)sqlite3_column_bytes(s, 0);
		if ((*blob = malloc(*len ? *len : 1)) == NULL)
			rc = store_set_err(st, STORE_FULL, "out of memory");
		else
			memcpy(*blob, sqlite3_column_blob(s, 0), *len);
	}
	store_stmt_put(st, QI_MSG_STRUCTURE, s);
	return rc;
}

int sq_message_set_structure(struct store *base, int64_t id, const void *blob, size_t len)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, QI_MSG_SET_STRUCTURE, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_blob(s, 2, blob, (int)len, SQLITE_STATIC);
	rc = store_stmt_done(st, s);
	store_stmt_put(st, QI_MSG_SET_STRUCTURE, s);
	return rc;
}

int sq_mailbox_vanished(struct store *base, int64_t mailbox_id, uint64_t since,
    store_uid_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK, r;
	sqlite3_stmt *s = store_stmt_get(st, QI_VANISHED, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, mailbox_id);
	sqlite3_bind_int64(s, 2, (sqlite3_int64)since);
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		if ((rc = cb((uint32_t)sqlite3_column_int64(s, 0), arg)) != 0)
			break;
	if (rc == STORE_OK && r != SQLITE_DONE && r != SQLITE_ROW)
		rc = store_sql_fail(st, r);
	store_stmt_put(st, QI_VANISHED, s);
	return rc;
}

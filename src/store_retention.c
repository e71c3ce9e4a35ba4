/*
 * The SQLite backend's retention and space accounting: pruning by age
 * (max-age), the file's pages and SQLite's incremental vacuum, and the
 * per-inbox counts /metrics shows. These run a few times a second at
 * most, so their statements are prepared per call rather than kept in
 * store.c's cache.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "mailsnare/store.h"
#include "store_internal.h"

/* The first INBOX whose lowest UID arrived before ?1: one index seek per
 * inbox, never a pass over the messages. */
static const char sql_old_inbox[] =
    "SELECT b.id, b.inbox_id FROM mailbox b WHERE b.name = 'INBOX' AND"
    " (SELECT m.internal_date FROM message m WHERE m.mailbox_id = b.id"
    "  ORDER BY m.uid LIMIT 1) < ?1 LIMIT 1";

/* Of that INBOX's ?3 lowest UIDs, those older than ?2. */
static const char sql_prune_older[] =
    "DELETE FROM message WHERE id IN (SELECT id FROM message WHERE mailbox_id = ?1"
    " ORDER BY uid LIMIT ?3) AND internal_date < ?2 RETURNING mailbox_id, id";

/* The counts the store keeps per mailbox (schema 7's triggers): one row
 * per mailbox read, never the messages. */
static const char sql_counts[] =
    "SELECT i.name, coalesce(sum(b.n_messages), 0), coalesce(sum(b.n_unseen), 0)"
    " FROM inbox i LEFT JOIN mailbox b ON b.inbox_id = i.id GROUP BY i.id ORDER BY i.name";

static int prepare(struct sqlite_store *st, const char *sql, sqlite3_stmt **s)
{
	int r = sqlite3_prepare_v2(st->db, sql, -1, s, NULL);

	return r == SQLITE_OK ? STORE_OK : store_sql_fail(st, r);
}

/* -1: no INBOX starts with a message that old. */
static int old_inbox(struct sqlite_store *st, int64_t before, int64_t *mailbox, int64_t *inbox)
{
	sqlite3_stmt *s;
	int rc, r;

	if ((rc = prepare(st, sql_old_inbox, &s)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(s, 1, before);
	r = sqlite3_step(s);
	if (r == SQLITE_ROW) {
		*mailbox = sqlite3_column_int64(s, 0);
		*inbox = sqlite3_column_int64(s, 1);
		rc = STORE_OK;
	} else {
		rc = r == SQLITE_DONE ? STORE_NOTFOUND : store_sql_fail(st, r);
	}
	sqlite3_finalize(s);
	return rc;
}

static int delete_older(struct sqlite_store *st, int64_t mailbox, int64_t inbox,
    int64_t before, uint64_t *pruned)
{
	sqlite3_stmt *s;
	int rc, r;

	if ((rc = prepare(st, sql_prune_older, &s)) != STORE_OK)
		return rc;
	sqlite3_bind_int64(s, 1, mailbox);
	sqlite3_bind_int64(s, 2, before);
	sqlite3_bind_int64(s, 3, STORE_PRUNE_STEP);
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		(*pruned)++;
		rc = store_queue_event(st, STORE_CHANGE_PRUNE, inbox, sqlite3_column_int64(s, 0),
		    sqlite3_column_int64(s, 1));
		if (rc != STORE_OK)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	sqlite3_finalize(s);
	return rc;
}

int sq_prune_older(struct store *base, int64_t before, uint64_t *pruned)
{
	struct sqlite_store *st = sqlite_store_of(base);
	size_t queued = st->n_pending;
	int64_t mailbox = 0, inbox = 0;
	struct wtx w;
	int rc;

	*pruned = 0;
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	rc = old_inbox(st, before, &mailbox, &inbox);
	if (rc == STORE_OK)
		rc = delete_older(st, mailbox, inbox, before, pruned);
	if (rc == STORE_NOTFOUND)
		rc = STORE_OK;              /* nothing that old: done */
	if ((rc = store_wtx_finish(st, &w, rc, queued)) != STORE_OK) {
		*pruned = 0;
		return rc;
	}
	return *pruned > 0 ? STORE_MORE : STORE_OK;
}

static int pragma_value(struct sqlite_store *st, const char *sql, int64_t *v)
{
	sqlite3_stmt *s;
	int rc, r;

	if ((rc = prepare(st, sql, &s)) != STORE_OK)
		return rc;
	r = sqlite3_step(s);
	if (r == SQLITE_ROW)
		*v = sqlite3_column_int64(s, 0);
	rc = r == SQLITE_ROW ? STORE_OK : store_sql_fail(st, r);
	sqlite3_finalize(s);
	return rc;
}

int sq_space(struct store *base, struct store_space *out)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t mode = 0;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = pragma_value(st, "PRAGMA page_size", &out->page_size)) != STORE_OK ||
	    (rc = pragma_value(st, "PRAGMA page_count", &out->pages)) != STORE_OK ||
	    (rc = pragma_value(st, "PRAGMA freelist_count", &out->free_pages)) != STORE_OK ||
	    (rc = pragma_value(st, "PRAGMA auto_vacuum", &mode)) != STORE_OK)
		return rc;
	out->incremental = mode == 2;
	return STORE_OK;
}

/* incremental_vacuum answers with no rows; each step of it frees a page. */
int sq_vacuum_step(struct store *base, unsigned pages)
{
	struct sqlite_store *st = sqlite_store_of(base);
	char sql[64];
	sqlite3_stmt *s;
	int rc, r;

	snprintf(sql, sizeof(sql), "PRAGMA incremental_vacuum(%u)", pages);
	if ((rc = prepare(st, sql, &s)) != STORE_OK)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW)
		;
	rc = r == SQLITE_DONE ? STORE_OK : store_sql_fail(st, r);
	sqlite3_finalize(s);
	return rc;
}

int sq_make_incremental(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int r = sqlite3_exec(st->db, "PRAGMA auto_vacuum = INCREMENTAL; VACUUM", NULL, NULL, NULL);

	return r == SQLITE_OK ? STORE_OK : store_sql_fail(st, r);
}

int sq_inbox_counts(struct store *base, store_inbox_count_cb cb, void *arg)
{
	struct sqlite_store *st = sqlite_store_of(base);
	sqlite3_stmt *s;
	int rc, r;

	if ((rc = prepare(st, sql_counts, &s)) != STORE_OK)
		return rc;
	while ((r = sqlite3_step(s)) == SQLITE_ROW) {
		rc = cb(store_col_str(s, 0), sqlite3_column_int64(s, 1),
		    sqlite3_column_int64(s, 2), arg);
		if (rc != 0)
			break;
	}
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	sqlite3_finalize(s);
	return rc;
}

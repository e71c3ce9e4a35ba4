/*
 * Message bodies in segments (schema 7), so that a large one can be
 * copied into the store over several loop passes, each a short
 * transaction of its own: one INSERT of a 28 MB blob, or even of its
 * zeroblob, is 70-120 ms of one pass on the project's VM, and 20 of them
 * finishing together held every other client for seconds.
 *
 * A body's first bytes are body.data; a body written by store_body_stage
 * has the rest in body_more rows of STORE_SEGMENT bytes (seq 1, 2, ...),
 * the last one shorter. Bodies written in one go (store_message_add of an
 * unstaged message) are one blob, as before. Readers walk both through
 * store_body_drain. A staged body belongs to no message until the
 * message is stored with it (store_new_message.body_id); one left by a
 * crash in between is removed by store_body_gc at the next start. One in
 * segments that lost its last message is removed by store_body_purge, a
 * few segments per call.
 */
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/store.h"
#include "store_internal.h"

/* One segment: a fraction of a millisecond to insert here, so a step's
 * cost is set by how many its caller asks for. */
#define STORE_SEGMENT (256 * 1024)

/* Reads exactly want bytes of src into buf (fewer only at its end). */
static int src_read(struct sqlite_store *st, const struct store_source *src,
    unsigned char *buf, size_t want, size_t *got)
{
	ssize_t n;

	for (*got = 0; *got < want; *got += (size_t)n) {
		n = src->read(src->arg, buf + *got, want - *got);
		if (n < 0)
			return store_set_err(st, STORE_ERR, "reading the message failed");
		if (n == 0)
			break;
	}
	return STORE_OK;
}

/* Writes one segment: the body row itself for the first, a body_more row
 * for the others. */
static int segment_add(struct sqlite_store *st, struct store_body_stage *bs,
    const unsigned char *buf, size_t len)
{
	int q = bs->body_id == 0 ? Q_BODY_ADD_DATA : Q_BODY_MORE_ADD;
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, q, &rc);

	if (s == NULL)
		return rc;
	if (q == Q_BODY_ADD_DATA) {
		sqlite3_bind_blob(s, 1, buf, (int)len, SQLITE_STATIC);
	} else {
		sqlite3_bind_int64(s, 1, bs->body_id);
		sqlite3_bind_int64(s, 2, bs->seq);
		sqlite3_bind_blob(s, 3, buf, (int)len, SQLITE_STATIC);
	}
	rc = store_stmt_done(st, s);
	store_stmt_put(st, q, s);
	if (rc == STORE_OK && bs->body_id == 0)
		bs->body_id = sqlite3_last_insert_rowid(st->db);
	bs->seq++;
	return rc;
}

/* Up to max_bytes (whole segments, at least one) of src into buf (a
 * segment and a byte); sets *end once all of it is in and the source
 * showed it has nothing beyond its announced size. */
static int stage_segments(struct sqlite_store *st, struct store_body_stage *bs,
    const struct store_source *src, uint64_t max_bytes, unsigned char *buf, bool *end)
{
	uint64_t step = 0;
	size_t want, got;
	int rc = STORE_OK;

	while (rc == STORE_OK && !*end && (step == 0 || step < max_bytes)) {
		want = src->size - bs->done < STORE_SEGMENT ?
		    (size_t)(src->size - bs->done) : STORE_SEGMENT;
		if ((rc = src_read(st, src, buf, want, &got)) != STORE_OK)
			return rc;
		if (got < want)
			return store_set_err(st, STORE_ERR, "message ended after %" PRIu64
			    " of %" PRIu64 " bytes", bs->done + got, src->size);
		if (want > 0 || bs->body_id == 0)
			rc = segment_add(st, bs, buf, want);
		bs->done += want;
		step += want;
		if (rc == STORE_OK && bs->done == src->size) {
			if ((rc = src_read(st, src, buf, 1, &got)) == STORE_OK && got != 0)
				rc = store_set_err(st, STORE_ERR, "message longer than its"
				    " announced %" PRIu64 " bytes", src->size);
			*end = true;
		}
	}
	return rc;
}

int store_body_stage(struct store *base, struct store_body_stage *bs,
    const struct store_source *src, uint64_t max_bytes)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct store_body_stage before = *bs;
	unsigned char *buf;
	bool end = false;
	struct wtx w;
	int rc;

	if (base->be != &store_sqlite_backend || st->in_tx)
		return store_set_err(st, STORE_ERR, "a body is staged outside a transaction");
	if (src->size > INT_MAX)   /* blob offsets are ints */
		return store_set_err(st, STORE_ERR, "message too large for the store");
	if ((buf = malloc(STORE_SEGMENT)) == NULL)
		return store_set_err(st, STORE_FULL, "out of memory");
	if ((rc = store_wtx_begin(st, &w)) == STORE_OK) {
		rc = stage_segments(st, bs, src, max_bytes, buf, &end);
		rc = store_wtx_end(st, &w, rc);
	}
	free(buf);
	if (rc != STORE_OK) {
		/* The source has moved on: this body cannot be finished, and
		 * what earlier steps committed goes. */
		*bs = before;
		(void)store_body_discard(base, bs);
		return rc;
	}
	return end ? STORE_OK : STORE_MORE;
}

int store_body_discard(struct store *base, struct store_body_stage *bs)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int rc = STORE_OK;
	sqlite3_stmt *s;

	if (base->be != &store_sqlite_backend || bs->body_id == 0)
		return STORE_OK;
	/* One in segments is purged a step at a time (store_body_purge). */
	if ((rc = store_exec(st, Q_BODY_PURGE_ADD, &(struct store_qargs){ .i = { bs->body_id },
	    .n = 1 }, NULL)) != STORE_OK)
		return rc;
	if ((s = store_stmt_get(st, Q_BODY_DISCARD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, bs->body_id);
	rc = store_stmt_done(st, s);
	store_stmt_put(st, Q_BODY_DISCARD, s);
	if (rc == STORE_OK)
		memset(bs, 0, sizeof(*bs));
	return rc;
}

int store_body_gc(struct store *base)
{
	struct sqlite_store *st = sqlite_store_of(base);

	if (base->be != &store_sqlite_backend)
		return STORE_OK;
	return store_run(st, Q_BODY_ORPHANS);
}

/* The next body waiting in body_purge: 0 and *body, or STORE_NOTFOUND. */
static int purge_next(struct sqlite_store *st, int64_t *body)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_BODY_PURGE_NEXT, &rc);

	if (s == NULL)
		return rc;
	if ((rc = store_step_row(st, s, "no body to purge")) == STORE_OK)
		*body = sqlite3_column_int64(s, 0);
	store_stmt_put(st, Q_BODY_PURGE_NEXT, s);
	return rc;
}

int store_body_purge(struct store *base, uint64_t max_bytes)
{
	struct sqlite_store *st = sqlite_store_of(base);
	int64_t body = 0, segs = (int64_t)(max_bytes / STORE_SEGMENT), gone = 0;
	struct store_qargs a = { .n = 1 };
	struct wtx w;
	int rc;

	if (base->be != &store_sqlite_backend)
		return STORE_OK;
	if ((rc = purge_next(st, &body)) != STORE_OK)
		return rc == STORE_NOTFOUND ? STORE_OK : rc;
	if ((rc = store_wtx_begin(st, &w)) != STORE_OK)
		return rc;
	/* The last segments first: the body row, which keeps its id taken,
	 * goes with the step that finds none left. */
	rc = store_exec(st, Q_BODY_PURGE_SEGS, &(struct store_qargs){ .i = { body,
	    segs > 0 ? segs : 1 }, .n = 2 }, &gone);
	a.i[0] = body;
	if (rc == STORE_OK && gone == 0 &&
	    (rc = store_exec(st, Q_BODY_PURGE_BODY, &a, NULL)) == STORE_OK)
		rc = store_exec(st, Q_BODY_PURGE_DROP, &a, NULL);
	rc = store_wtx_end(st, &w, rc);
	return rc == STORE_OK ? STORE_MORE : rc;
}

/* ---- reading ------------------------------------------------------------ */

struct drain {
	uint64_t pos, offset, end;  /* where the segment starts; the range */
	store_sink sink;
	void *arg;
	unsigned char *buf;
};

/* Sends the part of one segment's blob that lies in the range. */
static int drain_blob(struct sqlite_store *st, const char *table, int64_t row,
    struct drain *d)
{
	sqlite3_blob *blob = NULL;
	uint64_t size, from, to;
	int r, rc = STORE_OK, n;

	r = sqlite3_blob_open(st->db, "main", table, "data", row, 0, &blob);
	if (r != SQLITE_OK) {
		sqlite3_blob_close(blob);
		return store_sql_fail(st, r);
	}
	size = (uint64_t)sqlite3_blob_bytes(blob);
	from = d->offset > d->pos ? d->offset - d->pos : 0;
	to = d->end - d->pos < size ? d->end - d->pos : size;
	for (; from < to && rc == STORE_OK; from += (uint64_t)n) {
		n = to - from < STORE_CHUNK ? (int)(to - from) : STORE_CHUNK;
		if ((r = sqlite3_blob_read(blob, d->buf, n, (int)from)) != SQLITE_OK)
			rc = store_sql_fail(st, r);
		else
			rc = d->sink(d->arg, d->buf, (size_t)n);
	}
	sqlite3_blob_close(blob);
	d->pos += size;
	return rc;
}

/* The body_more row seq of body: 0 and *row set, or STORE_NOTFOUND. */
static int more_row(struct sqlite_store *st, int64_t body, int64_t seq, int64_t *row,
    uint64_t *len)
{
	int rc = STORE_OK;
	sqlite3_stmt *s = store_stmt_get(st, Q_BODY_MORE_GET, &rc);

	if (s == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, body);
	sqlite3_bind_int64(s, 2, seq);
	if ((rc = store_step_row(st, s, "no segment %" PRId64, seq)) == STORE_OK) {
		*row = sqlite3_column_int64(s, 0);
		*len = (uint64_t)sqlite3_column_int64(s, 1);
	}
	store_stmt_put(st, Q_BODY_MORE_GET, s);
	return rc;
}

int store_body_drain(struct sqlite_store *st, int64_t body, uint64_t offset, uint64_t len,
    store_sink sink, void *arg)
{
	struct drain d = { 0, offset, len > UINT64_MAX - offset ? UINT64_MAX : offset + len,
	    sink, arg, NULL };
	uint64_t seglen = 0;
	int64_t seq, row = 0;
	int rc;

	if ((d.buf = malloc(STORE_CHUNK)) == NULL)
		return store_set_err(st, STORE_FULL, "out of memory");
	rc = drain_blob(st, "body", body, &d);
	for (seq = 1; rc == STORE_OK && d.pos < d.end; seq++) {
		if ((rc = more_row(st, body, seq, &row, &seglen)) == STORE_NOTFOUND) {
			rc = STORE_OK;
			break;
		}
		/* Segments wholly before the range are only counted. */
		if (rc == STORE_OK && d.pos + seglen <= d.offset)
			d.pos += seglen;
		else if (rc == STORE_OK)
			rc = drain_blob(st, "body_more", row, &d);
	}
	free(d.buf);
	return rc;
}

/*
 * The search side of the SQLite backend: what store_message_query needs
 * to evaluate a msg_search (include/mailsnare/msg_search.h), and the
 * index it reads, written at delivery.
 *
 * Per body (a COPY shares it; the triggers of schema 6 drop both rows
 * with the body):
 *   body_search  Subject, From, To, Cc, Bcc, Reply-To and Message-ID,
 *                decoded (RFC 2047) and case-folded with msg_search_fold,
 *                so a field term is instr(column, folded value): right for
 *                all of Unicode, unlike SQLite's ASCII-only LIKE and
 *                lower(). Bcc adds the envelope recipients that are not
 *                in To or Cc (where a Bcc recipient shows up). has_inline.
 *   body_tri     FTS5 trigram index of body_search's folded fields
 *                (external content, schema 10), case-sensitive: a field
 *                term of 3+ characters looks its bodies up there.
 *   body_fts     FTS5 (unicode61, remove_diacritics 2): subject, the
 *                addresses and the decoded text of the text/plain and
 *                text/html parts (tags dropped), for bare words; its
 *                tokenizer folds case for all of Unicode itself.
 *
 * Bounded: at most STORE_FTS_PART_MAX bytes of each text part are read
 * and STORE_FTS_TEXT_MAX bytes of text indexed per message; a mail trap
 * searches for what a test sent, which is near the top.
 */
#include "mailsnare/store.h"
#include "store_internal.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define STORE_FTS_PART_MAX (256 * 1024)
#define STORE_FTS_TEXT_MAX (256 * 1024)
#define STORE_FTS_FIELD_MAX (8 * 1024)

/* ---- query side --------------------------------------------------------- */

/* ms_fold(text): the text case-folded (msg_search_fold), for keywords and
 * envelope recipients, which have no folded column. */
static void sql_fold(sqlite3_context *ctx, int argc, sqlite3_value **argv)
{
	const char *in = (const char *)sqlite3_value_text(argv[0]);
	size_t len = (size_t)sqlite3_value_bytes(argv[0]);
	char *out;

	(void)argc;
	if (in == NULL) {
		sqlite3_result_null(ctx);
		return;
	}
	if ((out = sqlite3_malloc64(len * 2 + 1)) == NULL) {
		sqlite3_result_error_nomem(ctx);
		return;
	}
	len = msg_search_fold(in, len, out, len * 2 + 1);
	sqlite3_result_text(ctx, out, (int)len, sqlite3_free);
}

int store_fts_init(struct sqlite_store *st)
{
	int r = sqlite3_create_function_v2(st->db, "ms_fold", 1,
	    SQLITE_UTF8 | SQLITE_DETERMINISTIC | SQLITE_INNOCUOUS, NULL, sql_fold, NULL, NULL,
	    NULL);

	return r == SQLITE_OK ? STORE_OK : store_sql_fail(st, r);
}

static const char *field_column(enum msg_search_field f)
{
	switch (f) {
	case MSG_SEARCH_TO: return "hdr_to";
	case MSG_SEARCH_FROM: return "hdr_from";
	case MSG_SEARCH_CC: return "cc";
	case MSG_SEARCH_BCC: return "bcc";
	case MSG_SEARCH_REPLY_TO: return "reply_to";
	case MSG_SEARCH_SUBJECT: return "subject";
	case MSG_SEARCH_MESSAGE_ID: return "message_id";
	default: return NULL;
	}
}

/* Whether a field term goes through body_tri, the trigram index of the
 * folded fields (schema 10): a value of three characters or more (a
 * trigram index has nothing to find a shorter one with, so those scan
 * body_search). Both sides are folded by msg_search_fold and the index
 * is case-sensitive, so its substring match is instr()'s, for all of
 * Unicode (its own folding is ASCII-only). */
static bool tri_term(const struct msg_search_term *t)
{
	size_t i, chars = 0;

	if (field_column(t->field) == NULL && t->field != MSG_SEARCH_ADDRESSED)
		return false;
	for (i = 0; i < t->len && chars < 3; i++)
		if (((unsigned char)t->text[i] & 0xc0) != 0x80)
			chars++;
	return chars >= 3;
}

/* The trigram query of a field term: its column(s), the value as one
 * quoted string ('"' doubled). */
static char *tri_expr(const struct msg_search_term *t)
{
	const char *col = t->field == MSG_SEARCH_ADDRESSED ?
	    "{hdr_to hdr_from cc bcc reply_to}" : field_column(t->field);
	char *e = sqlite3_malloc64(strlen(col) + t->len * 2 + 8), *o;
	size_t i;

	if (e == NULL)
		return NULL;
	o = e + sprintf(e, "%s : \"", col);
	for (i = 0; i < t->len; i++) {
		if (t->text[i] == '"')
			*o++ = '"';
		*o++ = t->text[i];
	}
	*o++ = '"';
	*o = '\0';
	return e;
}

/* The terms answered by a set of body ids: their subquery, with the value
 * in parameter p; false for the others (tested per message). One text for
 * the SQL condition and for store_search_body_set, so that both mean the
 * same. */
static bool body_set_sql(const struct msg_search_term *t, int p, char *out, size_t outlen)
{
	const char *col = field_column(t->field);

	if (tri_term(t))
		snprintf(out, outlen, "SELECT rowid FROM body_tri WHERE body_tri MATCH ?%d", p);
	else if (col != NULL)
		snprintf(out, outlen, "SELECT body_id FROM body_search"
		    " WHERE instr(%s, ?%d) > 0", col, p);
	else if (t->field == MSG_SEARCH_TEXT)
		snprintf(out, outlen, "SELECT rowid FROM body_fts WHERE body_fts MATCH ?%d", p);
	else if (t->field == MSG_SEARCH_ADDRESSED)
		/* One instr per column: building the concatenation per row
		 * cost four times as much. */
		snprintf(out, outlen, "SELECT body_id FROM body_search WHERE"
		    " instr(hdr_to, ?%d) > 0 OR instr(hdr_from, ?%d) > 0 OR instr(cc, ?%d) > 0"
		    " OR instr(bcc, ?%d) > 0 OR instr(reply_to, ?%d) > 0", p, p, p, p, p);
	else if (t->field == MSG_SEARCH_INLINE)
		snprintf(out, outlen, "SELECT body_id FROM body_search WHERE has_inline != 0");
	else
		return false;
	return true;
}

bool store_search_body_term(const struct msg_search_term *t)
{
	char sql[STORE_SEARCH_COND_MAX];

	return body_set_sql(t, 1, sql, sizeof(sql));
}

/* Field terms test the body's row through a subquery that SQLite runs
 * once (not per message) into a set of body ids. */
void store_search_cond(const struct msg_search_term *t, int p, char *out, size_t outlen)
{
	char c[STORE_SEARCH_COND_MAX - 8], set[STORE_SEARCH_COND_MAX - 24];

	if (body_set_sql(t, p, set, sizeof(set)))
		snprintf(c, sizeof(c), "m.body_id IN (%s)", set);
	else switch (t->field) {
	case MSG_SEARCH_TAG:
		snprintf(c, sizeof(c), "EXISTS (SELECT 1 FROM message_keyword k"
		    " WHERE k.message_id = m.id AND ms_fold(k.keyword) = ?%d)", p);
		break;
	case MSG_SEARCH_INBOX:
		snprintf(c, sizeof(c), "m.mailbox_id IN (SELECT b.id FROM mailbox b"
		    " JOIN inbox i ON i.id = b.inbox_id WHERE i.name = ?%d)", p);
		break;
	case MSG_SEARCH_RCPT:
		snprintf(c, sizeof(c), "EXISTS (SELECT 1 FROM message_rcpt r"
		    " WHERE r.message_id = m.id AND instr(ms_fold(r.addr), ?%d) > 0)", p);
		break;
	case MSG_SEARCH_READ:
		snprintf(c, sizeof(c), "(m.flags & %d) != 0", STORE_FLAG_SEEN);
		break;
	case MSG_SEARCH_TAGGED:
		snprintf(c, sizeof(c), "EXISTS (SELECT 1 FROM message_keyword k"
		    " WHERE k.message_id = m.id)");
		break;
	case MSG_SEARCH_ATTACHMENT:
		snprintf(c, sizeof(c), "m.has_attachment != 0");
		break;
	case MSG_SEARCH_LARGER:
		snprintf(c, sizeof(c), "m.size > ?%d", p);
		break;
	case MSG_SEARCH_SMALLER:
		snprintf(c, sizeof(c), "m.size < ?%d", p);
		break;
	case MSG_SEARCH_BEFORE:
		snprintf(c, sizeof(c), "m.internal_date <= ?%d", p);
		break;
	case MSG_SEARCH_AFTER:
		snprintf(c, sizeof(c), "m.internal_date >= ?%d", p);
		break;
	default:
		snprintf(c, sizeof(c), "0");
		break;
	}
	snprintf(out, outlen, t->negated ? "NOT (%s)" : "(%s)", c);
}

/* A bare word or phrase as an FTS5 string: quoted (so that its own
 * punctuation separates words instead of being query syntax, '"'
 * doubled), its last word a prefix. A term the tokenizer finds no word in
 * matches nothing rather than being an FTS5 syntax error. */
static char *fts_expr(const struct msg_search_term *t)
{
	char *e = sqlite3_malloc64(t->len * 2 + 4), *o = e;
	size_t i;

	if (e == NULL)
		return NULL;
	*o++ = '"';
	for (i = 0; i < t->len; i++) {
		if (t->text[i] == '"')
			*o++ = '"';
		*o++ = t->text[i];
	}
	*o++ = '"';
	*o++ = '*';
	*o = '\0';
	return e;
}

static int bind_term(sqlite3_stmt *s, const struct msg_search_term *t, int p)
{
	char *e;

	switch (t->field) {
	case MSG_SEARCH_TEXT:
		if ((e = fts_expr(t)) == NULL)
			return SQLITE_NOMEM;
		return sqlite3_bind_text(s, p, e, -1, sqlite3_free);
	case MSG_SEARCH_LARGER: case MSG_SEARCH_SMALLER:
	case MSG_SEARCH_BEFORE: case MSG_SEARCH_AFTER:
		return sqlite3_bind_int64(s, p, t->number);
	case MSG_SEARCH_READ: case MSG_SEARCH_TAGGED:
	case MSG_SEARCH_ATTACHMENT: case MSG_SEARCH_INLINE:
		return SQLITE_OK;
	default:
		if (tri_term(t)) {
			if ((e = tri_expr(t)) == NULL)
				return SQLITE_NOMEM;
			return sqlite3_bind_text(s, p, e, -1, sqlite3_free);
		}
		return sqlite3_bind_text(s, p, t->text, (int)t->len, SQLITE_TRANSIENT);
	}
}

/* A parameter past the last one the text uses is SQLITE_RANGE: a term the
 * query leaves out (store_search_body_set answers it). */
int store_search_bind(sqlite3_stmt *s, const struct msg_search *search, int first)
{
	size_t i, n = msg_search_nterms(search);
	int r = SQLITE_OK;

	for (i = 0; i < n && (r == SQLITE_OK || r == SQLITE_RANGE); i++)
		r = bind_term(s, msg_search_term(search, i), first + (int)i);
	return r == SQLITE_RANGE ? SQLITE_OK : r;
}

/* ---- body sets ---------------------------------------------------------- */

/* Past this body id a search takes the SQL-only way (store.c): a set is a
 * bitmap of STORE_BODYSET_MAX_ID bits at most (8 MB). */
#define STORE_BODYSET_MAX_ID (INT64_C(1) << 26)

static int set_add(struct store_bodyset *set, int64_t id)
{
	size_t w = (size_t)id / 64;

	if (id < 0 || id >= STORE_BODYSET_MAX_ID)
		return STORE_LIMIT;
	if (w >= set->nw) {
		size_t nw = set->nw ? set->nw : 1024;
		uint64_t *p;

		while (nw <= w)
			nw *= 2;
		if ((p = realloc(set->w, nw * sizeof(*p))) == NULL)
			return STORE_FULL;
		memset(p + set->nw, 0, (nw - set->nw) * sizeof(*p));
		set->w = p;
		set->nw = nw;
	}
	if (!(set->w[w] & (UINT64_C(1) << (id % 64)))) {
		set->w[w] |= UINT64_C(1) << (id % 64);
		set->n++;
	}
	return STORE_OK;
}

/* Only the bodies in [lo, hi) (hi 0: all), a part of a split search:
 * the subquery's condition in parentheses, and a range of its rowid (or
 * body_search's primary key), which FTS5 and the b-trees seek to. */
static bool body_set_range(char *sql, size_t len, int64_t lo, int64_t hi)
{
	char *where = strstr(sql, " WHERE "), col[16], cond[STORE_SEARCH_COND_MAX];
	int n;

	if (hi <= 0)
		return true;
	if (where == NULL)
		return false;
	n = (int)(where - sql);
	snprintf(col, sizeof(col), "%s", strncmp(sql, "SELECT rowid", 12) == 0 ? "rowid" :
	    "body_id");
	snprintf(cond, sizeof(cond), "%s", where + 7);
	return snprintf(where, len - (size_t)n, " WHERE (%s) AND %s >= %" PRId64
	    " AND %s < %" PRId64, cond, col, lo, col, hi) < (int)(len - (size_t)n);
}

/* The bodies that term t matches (its negation is the caller's): one
 * pass over what its subquery yields, no temporary b-tree. */
int store_search_body_set(struct sqlite_store *st, const struct msg_search_term *t,
    struct store_bodyset *set)
{
	return store_search_body_set_range(st, t, 0, 0, set);
}

int store_search_body_set_range(struct sqlite_store *st, const struct msg_search_term *t,
    int64_t lo, int64_t hi, struct store_bodyset *set)
{
	char sql[STORE_SEARCH_COND_MAX + 128];
	sqlite3_stmt *s;
	int r, rc = STORE_OK;

	memset(set, 0, sizeof(*set));
	if (!body_set_sql(t, 1, sql, sizeof(sql)) || !body_set_range(sql, sizeof(sql), lo, hi))
		return store_set_err(st, STORE_ERR, "not a body term");
	if ((r = sqlite3_prepare_v2(st->db, sql, -1, &s, NULL)) != SQLITE_OK)
		return store_sql_fail(st, r);
	if ((r = bind_term(s, t, 1)) != SQLITE_OK) {
		sqlite3_finalize(s);
		return store_sql_fail(st, r);
	}
	while (rc == STORE_OK && (r = sqlite3_step(s)) == SQLITE_ROW)
		rc = set_add(set, sqlite3_column_int64(s, 0));
	sqlite3_finalize(s);
	if (rc == STORE_OK && r != SQLITE_DONE)
		rc = store_sql_fail(st, r);
	if (rc != STORE_OK)
		store_bodyset_free(set);
	return rc;
}

void store_bodyset_free(struct store_bodyset *set)
{
	free(set->w);
	memset(set, 0, sizeof(*set));
}

/* set |= other. */
int store_bodyset_or(struct store_bodyset *set, const struct store_bodyset *other)
{
	size_t i, n = 0;

	if (other->nw > set->nw) {
		uint64_t *p = realloc(set->w, other->nw * sizeof(*p));

		if (p == NULL)
			return STORE_FULL;
		memset(p + set->nw, 0, (other->nw - set->nw) * sizeof(*p));
		set->w = p;
		set->nw = other->nw;
	}
	for (i = 0; i < set->nw; i++) {
		if (i < other->nw)
			set->w[i] |= other->w[i];
		n += (size_t)__builtin_popcountll(set->w[i]);
	}
	set->n = n;
	return STORE_OK;
}

/* set &= other, or set &= ~other (invert). */
void store_bodyset_and(struct store_bodyset *set, const struct store_bodyset *other,
    bool invert)
{
	size_t i, n = 0;

	for (i = 0; i < set->nw; i++) {
		uint64_t o = i < other->nw ? other->w[i] : 0;

		set->w[i] &= invert ? ~o : o;
		n += (size_t)__builtin_popcountll(set->w[i]);
	}
	set->n = n;
}

/* ---- index side --------------------------------------------------------- */

/* A growable string, bounded by max. */
struct text {
	char *p;
	size_t len, cap, max;
};

static void text_add(struct text *t, const char *s, size_t n)
{
	size_t want;

	if (t->len + 1 >= t->max)
		return;
	if (n > t->max - t->len - 1)
		n = t->max - t->len - 1;
	want = t->len + n + 2;
	if (want > t->cap) {
		size_t cap = t->cap ? t->cap : 256;
		char *p;

		while (cap < want)
			cap *= 2;
		if ((p = realloc(t->p, cap)) == NULL)
			return;
		t->p = p;
		t->cap = cap;
	}
	memcpy(t->p + t->len, s, n);
	t->len += n;
	t->p[t->len] = '\0';
}

static const char *text_str(const struct text *t)
{
	return t->p != NULL ? t->p : "";
}

/* A header field of the root, RFC 2047-decoded into t (not folded). */
static void add_field(struct text *t, const struct mime_part *root, enum mime_env_field f)
{
	const char *v = mime_part_env(root, f);
	size_t n;
	char *d;

	if (v == NULL || (d = mime_header_decode(v, strlen(v), &n)) == NULL)
		return;
	text_add(t, d, n);
	free(d);
}

static char *fold_dup(const char *s)
{
	size_t n = strlen(s);
	char *f = malloc(n * 2 + 1);

	if (f != NULL)
		msg_search_fold(s, n, f, n * 2 + 1);
	return f;
}

struct sink_buf {
	char *p;
	size_t len, cap;
};

static int sink_add(void *arg, const void *buf, size_t len)
{
	struct sink_buf *b = arg;

	if (len > b->cap - b->len)
		len = b->cap - b->len;
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

static bool is_body_text(const struct mime_part *p)
{
	if (p->children != NULL || (p->flags & MIME_PART_MULTIPART) ||
	    strcmp(p->type, "text") != 0 ||
	    (strcmp(p->subtype, "plain") != 0 && strcmp(p->subtype, "html") != 0))
		return false;
	if (p->disposition != NULL && strcmp(p->disposition, "attachment") == 0)
		return false;
	return mime_part_param(p, "name") == NULL;
}

/* An inline part (an image a HTML body shows, Mailpit's Inline): a leaf
 * that is not body text, marked inline or named by a Content-ID. */
static bool is_inline(const struct mime_part *p)
{
	if (p->children != NULL || (p->flags & MIME_PART_MULTIPART) || is_body_text(p))
		return false;
	if (p->disposition != NULL)
		return strcmp(p->disposition, "inline") == 0;
	return p->id != NULL && p->parent != NULL;
}

/* HTML to its words: tags and the contents of style and script dropped,
 * the common entities of text read. In place (never longer). */
static size_t html_words(char *s, size_t n)
{
	static const struct { const char *e; char c; } ents[] = {
		{ "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' }, { "&quot;", '"' },
		{ "&nbsp;", ' ' }, { "&#39;", '\'' }, { "&apos;", '\'' },
	};
	size_t i = 0, o = 0, k, el;
	const char *skip = NULL;

	while (i < n) {
		if (s[i] == '<') {
			size_t j = i + 1;

			if (skip == NULL && (n - j >= 5 && strncasecmp(s + j, "style", 5) == 0))
				skip = "</style";
			else if (skip == NULL && n - j >= 6 && strncasecmp(s + j, "script", 6) == 0)
				skip = "</script";
			else if (skip != NULL && n - i >= strlen(skip) &&
			    strncasecmp(s + i, skip, strlen(skip)) == 0)
				skip = NULL;
			while (j < n && s[j] != '>')
				j++;
			i = j < n ? j + 1 : n;
			s[o++] = ' ';
			continue;
		}
		if (skip != NULL) {
			i++;
			continue;
		}
		if (s[i] == '&') {
			for (k = 0; k < sizeof(ents) / sizeof(ents[0]); k++) {
				el = strlen(ents[k].e);
				if (n - i >= el && strncasecmp(s + i, ents[k].e, el) == 0)
					break;
			}
			if (k < sizeof(ents) / sizeof(ents[0])) {
				s[o++] = ents[k].c;
				i += el;
				continue;
			}
		}
		s[o++] = s[i++];
	}
	return o;
}

/* The decoded text of one body part, appended to t. */
static int add_part_text(struct store *st, int64_t id, const struct mime_part *p, struct text *t)
{
	struct sink_buf raw = { NULL, 0, 0 };
	struct mime_decoder d;
	size_t want = p->body_size < STORE_FTS_PART_MAX ? p->body_size : STORE_FTS_PART_MAX;
	size_t n, u;
	char *dec, *utf;
	const struct mime_param *cs;
	int rc;

	if (want == 0)
		return STORE_OK;
	if ((raw.p = malloc(want)) == NULL ||
	    (dec = malloc(MIME_DECODE_OUT_MAX(want))) == NULL) {
		free(raw.p);
		return STORE_FULL;
	}
	raw.cap = want;
	rc = store_message_read_range(st, id, p->body_off, want, sink_add, &raw);
	if (rc == STORE_OK) {
		mime_decoder_init(&d, mime_encoding_from_name(p->encoding));
		n = mime_decoder_feed(&d, raw.p, raw.len, dec);
		n += mime_decoder_finish(&d, dec + n);
		cs = mime_part_param(p, "charset");
		utf = mime_charset_to_utf8(cs != NULL ? cs->value : NULL, dec, n, &u);
		if (utf != NULL) {
			if (strcmp(p->subtype, "html") == 0)
				u = html_words(utf, u);
			text_add(t, " ", 1);
			text_add(t, utf, u);
			free(utf);
		}
	}
	free(dec);
	free(raw.p);
	return rc;
}

struct doc {
	struct text f[7];           /* subject from to cc bcc reply-to message-id */
	struct text words;          /* the decoded text */
	bool has_inline;
};

static int walk_parts(struct store *st, int64_t id, const struct mime_part *p, struct doc *doc)
{
	const struct mime_part *c;
	int rc = STORE_OK;

	if (is_inline(p))
		doc->has_inline = true;
	if (is_body_text(p))
		return add_part_text(st, id, p, &doc->words);
	/* An attached message's text is not this message's. */
	if (p->flags & MIME_PART_RFC822)
		return STORE_OK;
	for (c = p->children; c != NULL && rc == STORE_OK; c = c->next)
		rc = walk_parts(st, id, c, doc);
	return rc;
}

/* Bcc: the Bcc field (kept by a few senders) and every envelope recipient
 * that To and Cc do not name, which is how a Bcc recipient shows. */
static void add_bcc(struct doc *doc, const char *rcpts)
{
	char *to = fold_dup(text_str(&doc->f[2])), *cc = fold_dup(text_str(&doc->f[3]));
	const char *p = rcpts, *e;
	char one[512], fone[1024];
	size_t n;

	while (to != NULL && cc != NULL && p != NULL && *p != '\0') {
		e = strstr(p, ", ");
		n = e != NULL ? (size_t)(e - p) : strlen(p);
		if (n > 0 && n < sizeof(one)) {
			memcpy(one, p, n);
			one[n] = '\0';
			msg_search_fold(one, n, fone, sizeof(fone));
			if (strstr(to, fone) == NULL && strstr(cc, fone) == NULL) {
				if (doc->f[4].len > 0)
					text_add(&doc->f[4], ", ", 2);
				text_add(&doc->f[4], one, n);
			}
		}
		p = e != NULL ? e + 2 : NULL;
	}
	free(to);
	free(cc);
}

struct info_copy {
	char *rcpts;
	int64_t body;
};

static int info_cb(const struct store_message_info *m, void *arg)
{
	struct info_copy *c = arg;

	c->rcpts = strdup(m->rcpts != NULL ? m->rcpts : "");
	return c->rcpts == NULL ? STORE_FULL : 0;
}

/* The tree kept with the message, or one scanned from its bytes. */
static int scan_sink(void *arg, const void *buf, size_t len)
{
	mime_scan_feed(arg, buf, len);
	return 0;
}

static struct mime_part *message_tree(struct store *st, int64_t id)
{
	struct mime_part *root = NULL;
	struct mime_scan *sc;
	void *blob = NULL;
	size_t len = 0;

	if (store_message_structure(st, id, &blob, &len) == STORE_OK && blob != NULL) {
		root = mime_tree_parse(blob, len);
		free(blob);
	}
	if (root != NULL || (sc = mime_scan_new()) == NULL)
		return root;
	if (store_message_read(st, id, scan_sink, sc) != STORE_OK) {
		mime_scan_abort(sc);
		return NULL;
	}
	return mime_scan_finish(sc);
}

static const enum mime_env_field doc_fields[7] = {
	MIME_ENV_SUBJECT, MIME_ENV_FROM, MIME_ENV_TO, MIME_ENV_CC, MIME_ENV_BCC,
	MIME_ENV_REPLY_TO, MIME_ENV_MESSAGE_ID
};

/* The envelope recipients joined with ", ", from the new message or the
 * store. malloc'd. */
static char *join_rcpts(struct store *st, int64_t id, const struct store_new_message *msg)
{
	struct info_copy info = { NULL, 0 };
	struct text t = { NULL, 0, 0, STORE_FTS_FIELD_MAX };
	size_t i;

	if (msg == NULL) {
		if (store_message_get_info(st, id, info_cb, &info) != STORE_OK)
			return NULL;
		return info.rcpts;
	}
	for (i = 0; i < msg->n_rcpts; i++) {
		if (i > 0)
			text_add(&t, ", ", 2);
		if (msg->rcpts[i] != NULL)
			text_add(&t, msg->rcpts[i], strlen(msg->rcpts[i]));
	}
	return t.p != NULL ? t.p : strdup("");
}

static int doc_build(struct store *st, int64_t id, const struct store_new_message *msg,
    struct doc *doc)
{
	struct mime_part *root = NULL;
	char *rcpts;
	size_t i;
	int rc;

	for (i = 0; i < 7; i++)
		doc->f[i].max = STORE_FTS_FIELD_MAX;
	doc->words.max = STORE_FTS_TEXT_MAX;
	if ((rcpts = join_rcpts(st, id, msg)) == NULL)
		return store_set_err(sqlite_store_of(st), STORE_FULL,
		    "message %" PRId64 ": no recipients read", id);
	if (msg != NULL && msg->structure != NULL)
		root = mime_tree_parse(msg->structure, msg->structure_len);
	/* The scanner fails only when memory runs out: worth a retry. */
	if (root == NULL && (root = message_tree(st, id)) == NULL) {
		free(rcpts);
		return store_set_err(sqlite_store_of(st), STORE_FULL,
		    "message %" PRId64 ": out of memory for its MIME structure", id);
	}
	for (i = 0; i < 7; i++)
		add_field(&doc->f[i], root, doc_fields[i]);
	add_bcc(doc, rcpts);
	free(rcpts);
	rc = walk_parts(st, id, root, doc);
	mime_part_free(root);
	return rc;
}

static void doc_free(struct doc *doc)
{
	size_t i;

	for (i = 0; i < 7; i++)
		free(doc->f[i].p);
	free(doc->words.p);
}

/* ---- writing ------------------------------------------------------------ */

/*
 * The index rows of a message are written after the commit that stored
 * it, several messages' at a time, not with each message: FTS5 writes a
 * new segment (and merges) at every commit and savepoint it takes part
 * in, and a delivery is a savepoint in a group commit of a few messages;
 * written with each message the index tripled SMTP ingest's CPU.
 *
 * So a message's rows wait in memory: in st->fts_txq while its
 * transaction is open (a rollback drops them), then in st->fts_queue
 * until a flush writes them in one transaction of their own. Flushes:
 * before any search (store_message_query with terms, so a search always
 * sees every committed message), twice a second from the server's poll
 * (sq_poll_external), when the queue holds STORE_FTS_QUEUE_DOCS messages
 * or STORE_FTS_QUEUE_MAX bytes (inside the commit that passes the bound),
 * and at close. A row is written only if its message still has that
 * body (a message deleted or pruned meanwhile has none to index; message
 * ids are never reused). If a flush fails (disk full) its rows are
 * dropped; those messages have no body_search row, which is what the
 * back-fill (store_index_pending) looks for at the next start.
 */
#define STORE_FTS_QUEUE_DOCS 256
#define STORE_FTS_QUEUE_MAX (4u * 1024 * 1024)

struct fts_row {
	int64_t id, body;
	char *folded[7];            /* body_search's columns */
	bool has_inline;
	char *subject, *addrs, *words;
	size_t bytes;
	struct fts_row *next;
};

enum { FTS_HAS, FTS_SEARCH_ADD, FTS_TRI_ADD, FTS_WORDS_ADD, FTS_BODY, FTS_PENDING, FTS_LIVE,
	FTS_HIGH, FTS_BACKLOG, FTS_NSTMTS };

static const char *const fts_sql[FTS_NSTMTS] = {
	[FTS_HAS] = "SELECT 1 FROM body_search WHERE body_id = ?1",
	[FTS_SEARCH_ADD] = "INSERT INTO body_search (body_id, subject, hdr_from,"
	    " hdr_to, cc, bcc, reply_to, message_id, has_inline)"
	    " VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	/* body_tri's content is body_search's row (external content). */
	[FTS_TRI_ADD] = "INSERT INTO body_tri (rowid, subject, hdr_from,"
	    " hdr_to, cc, bcc, reply_to, message_id) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
	/* One row, VALUES: an INSERT ... SELECT takes a statement savepoint,
	 * and FTS5 writes a segment at every savepoint. */
	[FTS_WORDS_ADD] = "INSERT INTO body_fts (rowid, subject, addrs, text)"
	    " VALUES (?1, ?2, ?3, ?4)",
	[FTS_BODY] = "SELECT body_id FROM message WHERE id = ?1",
	/* The next messages after the cursor, and whether each is indexed
	 * (the body's primary key answers each probe). */
	[FTS_PENDING] = "SELECT m.id, EXISTS (SELECT 1 FROM body_search s"
	    " WHERE s.body_id = m.body_id) FROM message m WHERE m.id > ?1 AND m.id <= ?3"
	    " ORDER BY m.id LIMIT ?2",
	/* Still there with that body, and the body not indexed yet (a COPY
	 * made before the flush shares it). */
	[FTS_LIVE] = "SELECT 1 FROM message WHERE id = ?1 AND body_id = ?2"
	    " AND NOT EXISTS (SELECT 1 FROM body_search WHERE body_id = ?2)",
	[FTS_HIGH] = "SELECT coalesce(max(id), 0) FROM message",
	/* One probe of the primary key, whatever the store's size. */
	[FTS_BACKLOG] = "SELECT 1 FROM message WHERE id > ?1 LIMIT 1",
};

_Static_assert(FTS_NSTMTS <= sizeof(((struct sqlite_store *)0)->fts_stmts) /
    sizeof(sqlite3_stmt *), "room for the statements");

static sqlite3_stmt *fts_stmt(struct sqlite_store *st, int q, int *rc)
{
	int r;

	if (st->fts_stmts[q] == NULL) {
		r = sqlite3_prepare_v3(st->db, fts_sql[q], -1, SQLITE_PREPARE_PERSISTENT,
		    &st->fts_stmts[q], NULL);
		if (r != SQLITE_OK) {
			*rc = store_sql_fail(st, r);
			return NULL;
		}
	}
	sqlite3_reset(st->fts_stmts[q]);
	sqlite3_clear_bindings(st->fts_stmts[q]);
	return st->fts_stmts[q];
}

static int step_done(struct sqlite_store *st, sqlite3_stmt *s)
{
	int r = sqlite3_step(s);

	sqlite3_reset(s);
	return r == SQLITE_DONE ? STORE_OK : store_sql_fail(st, r);
}

static void row_free(struct fts_row *r)
{
	size_t i;

	for (i = 0; i < 7; i++)
		free(r->folded[i]);
	free(r->subject);
	free(r->addrs);
	free(r->words);
	free(r);
}

static void rows_free(struct fts_row **head, struct fts_row ***tail)
{
	struct fts_row *r;

	while ((r = *head) != NULL) {
		*head = r->next;
		row_free(r);
	}
	*tail = head;
}

/* 1: write it; 0: its message or body went, or the body is indexed. */
static int row_live(struct sqlite_store *st, const struct fts_row *r)
{
	sqlite3_stmt *s;
	int rc = STORE_OK, x;

	if ((s = fts_stmt(st, FTS_LIVE, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, r->id);
	sqlite3_bind_int64(s, 2, r->body);
	x = sqlite3_step(s);
	sqlite3_reset(s);
	if (x == SQLITE_ROW || x == SQLITE_DONE)
		return x == SQLITE_ROW;
	return store_sql_fail(st, x);
}

static int row_write(struct sqlite_store *st, const struct fts_row *r)
{
	sqlite3_stmt *s;
	size_t i;
	int rc = row_live(st, r);

	if (rc <= 0)
		return rc;
	if ((s = fts_stmt(st, FTS_SEARCH_ADD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, r->body);
	for (i = 0; i < 7; i++)
		sqlite3_bind_text(s, 2 + (int)i, r->folded[i], -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 9, r->has_inline);
	if ((rc = step_done(st, s)) != STORE_OK)
		return rc;
	if ((s = fts_stmt(st, FTS_TRI_ADD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, r->body);
	for (i = 0; i < 7; i++)
		sqlite3_bind_text(s, 2 + (int)i, r->folded[i], -1, SQLITE_STATIC);
	if ((rc = step_done(st, s)) != STORE_OK)
		return rc;
	if ((s = fts_stmt(st, FTS_WORDS_ADD, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, r->body);
	sqlite3_bind_text(s, 2, r->subject, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, r->addrs, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 4, r->words, -1, SQLITE_STATIC);
	return step_done(st, s);
}

/* Writes the queue in the open transaction. */
static int write_queue(struct sqlite_store *st)
{
	struct fts_row *r;
	int rc = STORE_OK;

	for (r = st->fts_queue; r != NULL && rc == STORE_OK; r = r->next)
		rc = row_write(st, r);
	rows_free(&st->fts_queue, &st->fts_tail);
	st->fts_queued = st->fts_queued_docs = 0;
	return rc;
}

int store_fts_flush(struct sqlite_store *st)
{
	int rc;

	if (st->fts_queue == NULL)
		return STORE_OK;
	if (st->in_tx)
		return write_queue(st);
	if ((rc = store_run(st, Q_BEGIN)) != STORE_OK) {
		rows_free(&st->fts_queue, &st->fts_tail);
		st->fts_queued = st->fts_queued_docs = 0;
		return rc;
	}
	rc = write_queue(st);
	if (rc == STORE_OK)
		rc = store_run(st, Q_COMMIT);
	if (rc != STORE_OK && !sqlite3_get_autocommit(st->db))
		store_run(st, Q_ROLLBACK);
	return rc;
}

/* Just before COMMIT: past the bounds, the queue and this transaction's
 * rows are written in it (and go with it if the COMMIT fails). */
int store_fts_commit(struct sqlite_store *st)
{
	struct fts_row *r;
	size_t bytes = st->fts_queued, docs = st->fts_queued_docs;
	int rc;

	for (r = st->fts_txq; r != NULL; r = r->next) {
		bytes += r->bytes;
		docs++;
	}
	if (docs < STORE_FTS_QUEUE_DOCS && bytes < STORE_FTS_QUEUE_MAX)
		return STORE_OK;
	rc = write_queue(st);
	for (r = st->fts_txq; r != NULL && rc == STORE_OK; r = r->next)
		rc = row_write(st, r);
	rows_free(&st->fts_txq, &st->fts_txtail);
	return rc;
}

/* After COMMIT: the transaction's rows join the queue. */
void store_fts_committed(struct sqlite_store *st)
{
	struct fts_row *r;

	for (r = st->fts_txq; r != NULL; r = r->next) {
		st->fts_queued += r->bytes;
		st->fts_queued_docs++;
	}
	*st->fts_tail = st->fts_txq;
	if (st->fts_txq != NULL)
		st->fts_tail = st->fts_txtail;
	st->fts_txq = NULL;
	st->fts_txtail = &st->fts_txq;
}

void store_fts_rollback(struct sqlite_store *st)
{
	rows_free(&st->fts_txq, &st->fts_txtail);
}

void store_fts_close(struct sqlite_store *st)
{
	size_t i;

	store_fts_rollback(st);
	if (st->db != NULL)
		(void)store_fts_flush(st);
	rows_free(&st->fts_queue, &st->fts_tail);
	for (i = 0; i < FTS_NSTMTS; i++) {
		sqlite3_finalize(st->fts_stmts[i]);
		st->fts_stmts[i] = NULL;
	}
}

/* The message's body id, and whether the body is indexed already. */
static int body_state(struct sqlite_store *st, int64_t id, int64_t *body, bool *has)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s;

	if ((s = fts_stmt(st, FTS_BODY, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, id);
	if ((r = sqlite3_step(s)) != SQLITE_ROW) {
		sqlite3_reset(s);
		return r == SQLITE_DONE ? store_set_err(st, STORE_NOTFOUND,
		    "no message %" PRId64, id) : store_sql_fail(st, r);
	}
	*body = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	if ((s = fts_stmt(st, FTS_HAS, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, *body);
	r = sqlite3_step(s);
	*has = r == SQLITE_ROW;
	sqlite3_reset(s);
	return r == SQLITE_ROW || r == SQLITE_DONE ? STORE_OK : store_sql_fail(st, r);
}

static char *take(struct text *t)
{
	char *p = t->p != NULL ? t->p : strdup("");

	t->p = NULL;
	t->len = t->cap = 0;
	return p;
}

/* The doc as a queued row: in the transaction's list, or (autocommit:
 * the message is committed already) the queue. */
static int queue_doc(struct sqlite_store *st, int64_t id, int64_t body, struct doc *doc)
{
	struct fts_row *r = calloc(1, sizeof(*r));
	struct text addrs = { NULL, 0, 0, STORE_FTS_FIELD_MAX * 5 };
	bool ok = r != NULL;
	size_t i;

	for (i = 1; ok && i < 6; i++) {
		text_add(&addrs, text_str(&doc->f[i]), doc->f[i].len);
		text_add(&addrs, " ", 1);
	}
	for (i = 0; ok && i < 7; i++)
		ok = (r->folded[i] = fold_dup(text_str(&doc->f[i]))) != NULL;
	if (ok) {
		r->id = id;
		r->body = body;
		r->has_inline = doc->has_inline;
		r->subject = take(&doc->f[0]);
		r->addrs = take(&addrs);
		r->words = take(&doc->words);
		ok = r->subject != NULL && r->addrs != NULL && r->words != NULL;
	}
	free(addrs.p);
	if (!ok) {
		if (r != NULL)
			row_free(r);
		return store_set_err(st, STORE_FULL, "out of memory");
	}
	r->bytes = strlen(r->subject) + strlen(r->addrs) + strlen(r->words);
	if (st->in_tx) {
		*st->fts_txtail = r;
		st->fts_txtail = &r->next;
		return STORE_OK;
	}
	*st->fts_tail = r;
	st->fts_tail = &r->next;
	st->fts_queued += r->bytes;
	st->fts_queued_docs++;
	if (st->fts_queued_docs < STORE_FTS_QUEUE_DOCS && st->fts_queued < STORE_FTS_QUEUE_MAX)
		return STORE_OK;
	return store_fts_flush(st);
}

static int index_message(struct sqlite_store *st, int64_t id, const struct store_new_message *msg)
{
	struct doc doc;
	int64_t body = 0;
	bool has = false;
	int rc;

	if ((rc = body_state(st, id, &body, &has)) != STORE_OK || has)
		return rc;
	memset(&doc, 0, sizeof(doc));
	rc = doc_build(&st->base, id, msg, &doc);
	if (rc == STORE_OK)
		rc = queue_doc(st, id, body, &doc);
	doc_free(&doc);
	return rc;
}

int store_message_index(struct store *base, int64_t id)
{
	if (base->be != &store_sqlite_backend)
		return STORE_OK;
	return index_message(sqlite_store_of(base), id, NULL);
}

int store_fts_index_new(struct sqlite_store *st, int64_t id, const struct store_new_message *msg)
{
	return index_message(st, id, msg);
}

/* How many messages one call looks at, indexed or not: a slice's cost is
 * bounded by this, not by the size of the store. */
#define STORE_FTS_SCAN 512

int store_fts_open(struct sqlite_store *st, bool defer)
{
	int rc = STORE_OK, r;
	sqlite3_stmt *s = fts_stmt(st, FTS_HIGH, &rc);

	if (s == NULL)
		return rc;
	if ((r = sqlite3_step(s)) == SQLITE_ROW)
		st->fts_high = st->fts_live = sqlite3_column_int64(s, 0);
	sqlite3_reset(s);
	st->defer_index = defer;
	return r == SQLITE_ROW ? STORE_OK : store_sql_fail(st, r);
}

struct index_scan {
	int64_t *cursor, upto;     /* looks at ids in (*cursor, upto] */
	unsigned max;              /* messages to index at most (<= 64) */
	size_t budget;             /* bytes of index text, about */
	unsigned done;
	bool more;
};

/* The unindexed ids after the cursor, up to x->max of them; *last is the
 * last id looked at. */
static int scan_ids(struct sqlite_store *st, struct index_scan *x, int64_t *ids,
    unsigned *n, unsigned *seen, int64_t *last)
{
	int rc = STORE_OK, r = SQLITE_DONE;
	sqlite3_stmt *s;

	*n = *seen = 0;
	*last = *x->cursor;
	if ((s = fts_stmt(st, FTS_PENDING, &rc)) == NULL)
		return rc;
	sqlite3_bind_int64(s, 1, *x->cursor);
	sqlite3_bind_int(s, 2, STORE_FTS_SCAN);
	sqlite3_bind_int64(s, 3, x->upto);
	while (*n < x->max && (r = sqlite3_step(s)) == SQLITE_ROW) {
		(*seen)++;
		*last = sqlite3_column_int64(s, 0);
		if (sqlite3_column_int(s, 1) == 0)
			ids[(*n)++] = *last;
	}
	sqlite3_reset(s);
	return *n < x->max && r != SQLITE_DONE ? store_sql_fail(st, r) : STORE_OK;
}

/* One slice: indexes what it finds until x->max messages or x->budget
 * bytes, and writes the rows (one transaction). */
static int index_scan(struct sqlite_store *st, struct index_scan *x)
{
	int64_t ids[64], last;
	size_t start = st->fts_queued;
	unsigned n, seen, i;
	int rc;

	x->done = 0;
	x->more = false;
	if (x->max > sizeof(ids) / sizeof(ids[0]))
		x->max = sizeof(ids) / sizeof(ids[0]);
	if ((rc = scan_ids(st, x, ids, &n, &seen, &last)) != STORE_OK)
		return rc;
	for (i = 0; i < n && rc == STORE_OK; i++) {
		rc = index_message(st, ids[i], NULL);
		/* Deleted meanwhile (a callback of the caller's): nothing to do. */
		if (rc == STORE_NOTFOUND)
			rc = STORE_OK;
		if (rc == STORE_OK)
			x->done++;
		if (st->fts_queued - start >= x->budget && i + 1 < n) {
			last = ids[i];
			n = x->max;     /* more to do */
			break;
		}
	}
	if (rc == STORE_OK)
		rc = store_fts_flush(st);
	if (rc == STORE_OK) {
		*x->cursor = last;
		x->more = n == x->max || seen == STORE_FTS_SCAN;
	}
	return rc;
}

/* With defer_index, what deferred indexing has not reached yet; without
 * it (the CLI, whose search must also see what the server has not
 * indexed yet), every message not indexed. */
int store_fts_catch_up(struct sqlite_store *st)
{
	struct index_scan x = { st->defer_index ? &st->fts_live : &st->fts_cursor, INT64_MAX,
	    64, SIZE_MAX, 0, true };
	int rc = STORE_OK;

	while (x.more && rc == STORE_OK)
		rc = index_scan(st, &x);
	return rc;
}

bool store_index_backlog(struct store *base)
{
	struct sqlite_store *st;
	sqlite3_stmt *s;
	bool any;
	int rc = STORE_OK;

	if (base->be != &store_sqlite_backend)
		return false;
	st = sqlite_store_of(base);
	if (!st->defer_index || (s = fts_stmt(st, FTS_BACKLOG, &rc)) == NULL)
		return false;
	sqlite3_bind_int64(s, 1, st->fts_live);
	any = sqlite3_step(s) == SQLITE_ROW;
	sqlite3_reset(s);
	return any;
}

int store_index_pending(struct store *base, unsigned max, unsigned *done, bool *more)
{
	struct sqlite_store *st = sqlite_store_of(base);
	struct index_scan live = { &st->fts_live, INT64_MAX, max, STORE_INDEX_SLICE_BYTES, 0,
	    false };
	struct index_scan old = { &st->fts_cursor, st->fts_high, max, STORE_INDEX_SLICE_BYTES,
	    0, false };
	int rc = STORE_OK;

	*done = 0;
	*more = false;
#ifdef MAILSNARE_NO_SEARCH_INDEX
	/* bench/search.sh's build without the index. */
	return STORE_OK;
#endif
	if (base->be != &store_sqlite_backend)
		return STORE_OK;
	if (st->defer_index && (rc = index_scan(st, &live)) != STORE_OK)
		return rc;
	if (live.done == 0 && !live.more && (rc = index_scan(st, &old)) != STORE_OK)
		return rc;
	*done = live.done + old.done;
	*more = live.more || old.more;
	return STORE_OK;
}

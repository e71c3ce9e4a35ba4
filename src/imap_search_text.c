/*
 * SEARCH BODY and TEXT over a message's decoded text, a budget at a time:
 * the text parts (text and message types) are read in pieces, transfer-decoded
 * (base64, quoted-printable: the decoder keeps its state between pieces),
 * made UTF-8 (mime_conv: for the charsets iconv converts, one iconv
 * descriptor per part, its shift state and a sequence cut at a piece's
 * end carried to the next piece) and fed to one streaming matcher per
 * BODY/TEXT key (mime_search_feed: KMP, its state carried across pieces,
 * and a UTF-8 character cut by a piece's end folded whole), the parts
 * joined by "\n" as one text. A 16 MB body, in any charset, is so dozens
 * of slices, not one, and never sits whole in memory.
 */
#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap_search.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "imap_session.h"

/* Raw bytes read and decoded at a time. Each counts as TEXT_WEIGHT bytes
 * of a slice's budget: read, decoded, converted and matched, a byte of
 * text costs about that many of a header read (16 MB took 94 ms here). */
#define TEXT_PIECE (256u * 1024)
#define TEXT_WEIGHT 4
/* The same through iconv (mime_conv), which costs more: SEARCH over
 * Shift_JIS took 14 ns of server CPU a byte, over UTF-8 text 5.5
 * (bench/hostile.py's search-body rows). */
#define TEXT_WEIGHT_ICONV 10

struct text_key {
	const struct imap_search_node *node;
	struct mime_search *ms;
};

struct imap_text_scan {
	struct text_key *keys;
	size_t nkeys, nleft;             /* nleft: not found yet */
	struct mime_part *tree;          /* of the message being scanned */
	const struct mime_part **parts;  /* its text leaves, in order */
	size_t nparts, capparts, part;
	uint64_t pos;                    /* read of parts[part]'s body */
	struct mime_decoder dec;
	struct mime_conv *conv;          /* parts[part]'s, once it is begun */
};

static bool keys_add(struct imap_text_scan *ts, const struct imap_search_node *n)
{
	struct text_key *k;
	size_t i;

	if (n->key == IMAP_SK_BODY || n->key == IMAP_SK_TEXT) {
		if ((k = realloc(ts->keys, (ts->nkeys + 1) * sizeof(*k))) == NULL)
			return false;
		ts->keys = k;
		k[ts->nkeys].node = n;
		/* Too long a needle (over 64 KiB) is found nowhere. */
		k[ts->nkeys++].ms = mime_search_new(n->str, n->len);
	}
	for (i = 0; i < n->nchildren; i++)
		if (!keys_add(ts, &n->children[i]))
			return false;
	return true;
}

struct imap_text_scan *imap_text_scan_new(const struct imap_search_node *root)
{
	struct imap_text_scan *ts = calloc(1, sizeof(*ts));

	if (ts != NULL && !keys_add(ts, root)) {
		imap_text_scan_free(ts);
		return NULL;
	}
	return ts;
}

void imap_text_scan_reset(struct imap_text_scan *ts)
{
	size_t i;

	ts->nleft = 0;
	for (i = 0; i < ts->nkeys; i++) {
		if (ts->keys[i].ms != NULL) {
			mime_search_reset(ts->keys[i].ms);
			ts->nleft++;
		}
	}
	mime_part_free(ts->tree);
	ts->tree = NULL;
	mime_conv_free(ts->conv);
	ts->conv = NULL;
	ts->nparts = ts->part = 0;
	ts->pos = 0;
}

void imap_text_scan_free(struct imap_text_scan *ts)
{
	size_t i;

	if (ts == NULL)
		return;
	for (i = 0; i < ts->nkeys; i++)
		mime_search_free(ts->keys[i].ms);
	free(ts->keys);
	mime_conv_free(ts->conv);
	mime_part_free(ts->tree);
	free(ts->parts);
	free(ts);
}

bool imap_text_scan_found(const struct imap_text_scan *ts, const struct imap_search_node *n)
{
	size_t i;

	for (i = 0; i < ts->nkeys; i++)
		if (ts->keys[i].node == n)
			return ts->keys[i].ms != NULL && mime_search_found(ts->keys[i].ms);
	return false;
}

static bool parts_walk(struct imap_text_scan *ts, const struct mime_part *p)
{
	const struct mime_part *c, **q;

	if (p->children == NULL) {
		if (strcmp(p->type, "text") != 0 && strcmp(p->type, "message") != 0)
			return true;
		if (ts->nparts == ts->capparts) {
			size_t cap = ts->capparts ? ts->capparts * 2 : 8;
			if ((q = realloc(ts->parts, cap * sizeof(*q))) == NULL)
				return false;
			ts->parts = q;
			ts->capparts = cap;
		}
		ts->parts[ts->nparts++] = p;
		return true;
	}
	for (c = p->children; c; c = c->next)
		if (!parts_walk(ts, c))
			return false;
	return true;
}

/* Feeds text to every matcher that has not found its needle yet. */
static void feed(struct imap_text_scan *ts, const char *text, size_t len)
{
	size_t i;

	for (i = 0; i < ts->nkeys; i++) {
		struct mime_search *ms = ts->keys[i].ms;
		if (ms != NULL && !mime_search_found(ms) && mime_search_feed(ms, text, len))
			ts->nleft--;
	}
}

static void conv_sink(void *arg, const char *utf8, size_t len)
{
	feed(arg, utf8, len);
}

/* On to the next part; ended: its text is followed by "\n". */
static void part_done(struct imap_text_scan *ts, bool ended)
{
	mime_conv_free(ts->conv);
	ts->conv = NULL;
	if (ended)
		feed(ts, "\n", 1);
	ts->part++;
	ts->pos = 0;
}

/* The next piece of the current part: read, decoded, converted, fed.
 * false on no memory. */
static bool scan_piece(struct imap_session *s, struct imap_text_scan *ts,
    const struct imap_msg *m, uint64_t *cost)
{
	const struct mime_part *p = ts->parts[ts->part];
	uint64_t left = p->body_size - ts->pos, n = left > TEXT_PIECE ? TEXT_PIECE : left;
	char *raw, *out;
	size_t k;

	if (ts->pos == 0) {
		const struct mime_param *cs = mime_part_param(p, "charset");
		mime_decoder_init(&ts->dec, mime_encoding_from_name(p->encoding));
		mime_conv_free(ts->conv);
		if ((ts->conv = mime_conv_new(cs ? cs->value : NULL)) == NULL)
			return false;
	}
	*cost += n * (mime_conv_uses_iconv(ts->conv) ? TEXT_WEIGHT_ICONV : TEXT_WEIGHT);
	if ((raw = imap_msg_read(s, m, p->body_off + ts->pos, n)) == NULL) {
		/* Unreadable (gone meanwhile): the part has no text. */
		part_done(ts, false);
		return true;
	}
	if ((out = malloc(MIME_DECODE_OUT_MAX((size_t)n))) == NULL) {
		free(raw);
		return false;
	}
	k = mime_decoder_feed(&ts->dec, raw, (size_t)n, out);
	ts->pos += n;
	if (ts->pos == p->body_size)
		k += mime_decoder_finish(&ts->dec, out + k);
	free(raw);
	mime_conv_feed(ts->conv, out, k, conv_sink, ts);
	free(out);
	if (ts->pos == p->body_size)
		part_done(ts, true);
	return true;
}

int imap_text_scan_step(struct imap_session *s, struct imap_text_scan *ts,
    const struct imap_msg *m, uint64_t budget, uint64_t *cost)
{
	uint64_t spent = 0;

	if (ts->tree == NULL) {
		spent += IMAP_SLICE_TREE_COST;
		/* No structure (no memory, unreadable): no text, as before. */
		if ((ts->tree = imap_msg_tree(s, m)) == NULL) {
			*cost += spent;
			ts->part = ts->nparts = 0;
			return 1;
		}
		if (!parts_walk(ts, ts->tree))
			return -1;
	}
	while (ts->nleft > 0 && ts->part < ts->nparts) {
		if (spent >= budget) {
			*cost += spent;
			return 0;
		}
		if (!scan_piece(s, ts, m, &spent))
			return -1;
	}
	*cost += spent;
	return 1;
}

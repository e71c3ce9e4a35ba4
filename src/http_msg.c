/*
 * A message as the API shows it: its row, its keywords and its MIME tree
 * (kept in the store since delivery), with the parts sorted out the way
 * Mailpit's parser does: the first text/plain and text/html that are not
 * attachments are the bodies, parts with "attachment" disposition or a
 * file name are attachments, the other parts with a Content-ID (or
 * "inline" disposition) are inline.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/log.h"
#include "mailsnare/server.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"
#include "mailsnare/msg_search.h"
#include "mailsnare/msg_tree.h"
#include "http_internal.h"

/* Attachments and inline parts listed for one message at most. */
#define HTTP_PARTS_MAX 1000

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

static int info_cb(const struct store_message_info *i, void *arg)
{
	struct http_msg *m = arg;

	m->id = i->id;
	m->inbox_id = i->inbox_id;
	m->mailbox_id = i->mailbox_id;
	snprintf(m->inbox, sizeof(m->inbox), "%s", i->inbox ? i->inbox : "");
	m->flags = i->flags;
	m->size = i->size;
	m->internal_date = i->internal_date;
	m->mail_from = dup_or_empty(i->mail_from);
	m->rcpts = dup_or_empty(i->rcpts);
	m->auth_user = dup_or_empty(i->auth_user);
	m->client_addr = dup_or_empty(i->client_addr);
	return 0;
}

static const struct mime_param *disp_param(const struct mime_part *p, const char *name)
{
	uint32_t i;

	for (i = 0; i < p->ndisp_params; i++)
		if (strcmp(p->disp_params[i].name, name) == 0)
			return &p->disp_params[i];
	return NULL;
}

static bool has_filename(const struct mime_part *p)
{
	return disp_param(p, "filename") != NULL || mime_part_param(p, "name") != NULL;
}

static bool is_type(const struct mime_part *p, const char *type, const char *subtype)
{
	return strcmp(p->type, type) == 0 && strcmp(p->subtype, subtype) == 0;
}

static void add_part(struct http_msg *m, const struct mime_part *p, const char *section,
    bool is_inline)
{
	struct http_part *np;

	if (m->nparts >= HTTP_PARTS_MAX)
		return;
	if ((m->nparts & 15) == 0) {
		np = realloc(m->parts, (m->nparts + 16) * sizeof(*np));
		if (np == NULL)
			return;
		m->parts = np;
	}
	np = &m->parts[m->nparts++];
	np->p = p;
	snprintf(np->section, sizeof(np->section), "%s", section);
	np->is_inline = is_inline;
}

static void classify_leaf(struct http_msg *m, const struct mime_part *p, const char *section)
{
	bool attachment = p->disposition != NULL && strcmp(p->disposition, "attachment") == 0;
	bool body_like = !attachment && !has_filename(p);

	if (body_like && is_type(p, "text", "plain") && m->text == NULL) {
		m->text = p;
		snprintf(m->text_section, sizeof(m->text_section), "%s", section);
	} else if (body_like && is_type(p, "text", "html") && m->html == NULL) {
		m->html = p;
		snprintf(m->html_section, sizeof(m->html_section), "%s", section);
	} else if (attachment)
		add_part(m, p, section, false);
	else if (p->id != NULL || (p->disposition != NULL && strcmp(p->disposition, "inline") == 0))
		add_part(m, p, section, true);
	else if (has_filename(p) || strcmp(p->type, "text") != 0)
		add_part(m, p, section, false);
}

/* Walks the parts in IMAP section order; a message/rfc822 part is one
 * attachment, as in Mailpit. */
static void classify(struct http_msg *m, const struct mime_part *p, const char *section)
{
	const struct mime_part *c;
	char sub[HTTP_SECTION_MAX];
	unsigned n = 0;

	if (!(p->flags & MIME_PART_MULTIPART)) {
		classify_leaf(m, p, section[0] ? section : "1");
		return;
	}
	for (c = p->children; c != NULL; c = c->next) {
		n++;
		if (snprintf(sub, sizeof(sub), "%s%s%u", section, section[0] ? "." : "", n) >=
		    (int)sizeof(sub))
			continue;
		classify(m, c, sub);
	}
}

int http_msg_load(struct store *st, int64_t id, int64_t inbox_id, struct http_msg *m)
{
	char kw[4096];
	uint64_t modseq;
	int rc;

	memset(m, 0, sizeof(*m));
	rc = store_message_get_info(st, id, info_cb, m);
	if (rc != STORE_OK || m->id != id) {
		http_msg_free(m);
		return rc == STORE_OK ? STORE_NOTFOUND : rc;
	}
	if (inbox_id != 0 && m->inbox_id != inbox_id) {
		http_msg_free(m);
		return STORE_NOTFOUND;
	}
	kw[0] = '\0';
	if (store_message_state(st, id, &m->flags, kw, sizeof(kw), &modseq) != STORE_OK)
		kw[0] = '\0';
	m->keywords = strdup(kw);
	if ((m->root = msg_tree_load(st, id)) == NULL || m->keywords == NULL || m->mail_from == NULL ||
	    m->rcpts == NULL || m->auth_user == NULL || m->client_addr == NULL) {
		http_msg_free(m);
		return STORE_ERR;
	}
	classify(m, m->root, "");
	return STORE_OK;
}

void http_msg_free(struct http_msg *m)
{
	free(m->keywords);
	free(m->mail_from);
	free(m->rcpts);
	free(m->auth_user);
	free(m->client_addr);
	free(m->parts);
	if (m->root)
		mime_part_free(m->root);
	memset(m, 0, sizeof(*m));
}

const struct mime_part *http_msg_part(const struct http_msg *m, const char *section)
{
	size_t len = strlen(section);
	size_t i;

	for (i = 0; i < len; i++)
		if (!((section[i] >= '0' && section[i] <= '9') || section[i] == '.'))
			return NULL;
	return mime_part_find(m->root, section, len);
}

struct mem_sink {
	char *p;
	size_t len, cap;
};

static int mem_sink_cb(void *arg, const void *buf, size_t len)
{
	struct mem_sink *b = arg;

	if (len > b->cap - b->len)
		len = b->cap - b->len;
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

char *http_msg_header(struct store *st, const struct http_msg *m, size_t max, size_t *len)
{
	struct mem_sink b = { NULL, 0, 0 };

	b.cap = m->root->hdr_size < max ? (size_t)m->root->hdr_size : max;
	if ((b.p = malloc(b.cap + 1)) == NULL)
		return NULL;
	if (store_message_read_range(st, m->id, m->root->hdr_off, b.cap, mem_sink_cb, &b) !=
	    STORE_OK) {
		free(b.p);
		return NULL;
	}
	b.p[b.len] = '\0';
	*len = b.len;
	return b.p;
}

struct text_sink {
	struct mime_decoder dec;
	char *buf;
	size_t len, cap;
	bool failed;
};

static int text_sink_cb(void *arg, const void *data, size_t len)
{
	struct text_sink *t = arg;
	size_t need = t->len + MIME_DECODE_OUT_MAX(len) + 1;
	char *nb;

	if (need > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < need)
			cap *= 2;
		if ((nb = realloc(t->buf, cap)) == NULL) {
			t->failed = true;
			return -1;
		}
		t->buf = nb;
		t->cap = cap;
	}
	t->len += mime_decoder_feed(&t->dec, data, len, t->buf + t->len);
	return 0;
}

char *http_msg_text(struct store *st, const struct http_msg *m, const struct mime_part *p,
    uint64_t max, size_t *len)
{
	const struct mime_param *cs = mime_part_param(p, "charset");
	struct text_sink t = { .buf = NULL };
	uint64_t n = p->body_size < max ? p->body_size : max;
	char *utf8;

	mime_decoder_init(&t.dec, mime_encoding_from_name(p->encoding));
	if (store_message_read_range(st, m->id, p->body_off, n, text_sink_cb, &t) != STORE_OK ||
	    t.failed || text_sink_cb(&t, "", 0) < 0) {
		free(t.buf);
		return NULL;
	}
	t.len += mime_decoder_finish(&t.dec, t.buf + t.len);
	utf8 = mime_charset_to_utf8(cs ? cs->value : NULL, t.buf ? t.buf : "", t.len, len);
	free(t.buf);
	return utf8;
}

char *http_part_filename(const struct mime_part *p)
{
	const struct mime_param *fp = disp_param(p, "filename");
	size_t len;

	if (fp == NULL)
		fp = mime_part_param(p, "name");
	if (fp == NULL || fp->value == NULL)
		return strdup("");
	/* RFC 2231 names carry their charset; others may hold RFC 2047
	 * encoded words (what most mail programs send). */
	if (fp->charset != NULL && fp->charset[0] != '\0')
		return mime_charset_to_utf8(fp->charset, fp->value, strlen(fp->value), &len);
	return mime_header_decode(fp->value, strlen(fp->value), &len);
}

static int latest_cb(const struct store_message_info *i, void *arg)
{
	*(int64_t *)arg = i->id;
	return 0;
}

int http_resolve_id(struct http_req *r, const char *arg, int64_t *id)
{
	struct store_query q = { .inbox_id = r->inbox_id, .limit = 1 };
	char *end;
	long long v;

	const char *text = http_query(r, "query");
	struct msg_search *s = NULL;
	char err[256];
	int rc;

	if (strcmp(arg, "latest") == 0 && r->latest_known) {
		*id = r->latest_id;
		return *id > 0 ? STORE_OK : STORE_NOTFOUND;
	}
	if (strcmp(arg, "latest") == 0) {
		/* latest?query=: the newest message that matches. */
		if (text != NULL && text[0] != '\0' &&
		    msg_search_parse(text, http_query(r, "tz"), &s, err, sizeof(err)) < 0)
			return STORE_NOTFOUND;
		q.search = s;
		*id = 0;
		rc = store_message_query(r->srv->store, &q, latest_cb, id, NULL);
		msg_search_free(s);
		if (rc < 0)
			return STORE_ERR;
		return *id > 0 ? STORE_OK : STORE_NOTFOUND;
	}
	if (arg[0] < '1' || arg[0] > '9')
		return STORE_NOTFOUND;
	v = strtoll(arg, &end, 10);
	if (*end != '\0' || v <= 0)
		return STORE_NOTFOUND;
	*id = v;
	return STORE_OK;
}

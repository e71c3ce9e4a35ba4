/*
 * FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2): message attributes from
 * the view, ENVELOPE and BODYSTRUCTURE from the stored MIME structure,
 * and body sections as byte ranges of the stored message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mailsnare/imap_bodystructure.h"
#include "mailsnare/imap_date.h"
#include "mailsnare/imap_envelope.h"
#include "mailsnare/imap_fetchattr.h"
#include "mailsnare/mime.h"
#include "imap_session.h"

/* Per message: the structure is loaded at most once. */
struct fetch_msg {
	struct imap_msg *m;
	size_t seq;
	struct mime_part *tree;
	bool tree_failed;
};

static const struct mime_part *fetch_tree(struct imap_session *s, struct fetch_msg *fm)
{
	if (fm->tree == NULL && !fm->tree_failed) {
		fm->tree = imap_msg_tree(s, fm->m);
		fm->tree_failed = fm->tree == NULL;
	}
	return fm->tree;
}

static void send_evbuffer(struct imap_session *s, struct evbuffer *b)
{
	size_t len = evbuffer_get_length(b);
	char *p = (char *)evbuffer_pullup(b, -1);

	if (p != NULL)
		conn_write(s->conn, p, len);
}

static bool fetch_structure(struct imap_session *s, struct fetch_msg *fm,
    enum imap_fetch_item item)
{
	const struct mime_part *root = fetch_tree(s, fm);
	struct evbuffer *b;
	int rc;

	if (root == NULL || (b = evbuffer_new()) == NULL)
		return false;
	if (item == IMAP_FETCH_ENVELOPE) {
		evbuffer_add(b, "ENVELOPE ", 9);
		rc = imap_envelope_write(root, b);
	} else {
		bool ext = item == IMAP_FETCH_BODYSTRUCTURE;
		evbuffer_add_printf(b, "%s ", ext ? "BODYSTRUCTURE" : "BODY");
		rc = imap_bodystructure_write(root, ext, b);
	}
	if (rc >= 0)
		send_evbuffer(s, b);
	evbuffer_free(b);
	return rc >= 0;
}

/* The part a section names; message/rfc822 parts stand for the embedded
 * message when HEADER/TEXT follow (RFC 3501 §6.4.5). */
static const struct mime_part *section_part(const struct mime_part *root,
    const struct imap_section *sec)
{
	const struct mime_part *p = root;
	char path[IMAP_SECTION_MAX_PARTS * 11];
	size_t len = 0;
	unsigned i;

	if (sec->nparts == 0)
		return root;
	for (i = 0; i < sec->nparts; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%u", i ? "." : "",
		    sec->part[i]);
	p = mime_part_find(root, path, len);
	if (p != NULL && sec->text != IMAP_SECTION_ALL && sec->text != IMAP_SECTION_MIME)
		p = mime_part_message(p);
	return p;
}

/* The byte range of a section that is a plain range of the message. */
static bool section_range(const struct mime_part *p, const struct imap_section *sec,
    uint64_t *off, uint64_t *len)
{
	switch (sec->text) {
	case IMAP_SECTION_HEADER:
	case IMAP_SECTION_MIME:
		*off = p->hdr_off;
		*len = p->hdr_size;
		return true;
	case IMAP_SECTION_TEXT:
		*off = p->body_off;
		*len = p->body_size;
		return true;
	case IMAP_SECTION_ALL:
		if (sec->nparts == 0) {
			*off = p->hdr_off;
			*len = p->hdr_size + p->body_size;
		} else {
			*off = p->body_off;
			*len = p->body_size;
		}
		return true;
	default:
		return false;
	}
}

static void send_partial(struct imap_session *s, const struct imap_fetch_att *a,
    uint64_t total, uint64_t *off, uint64_t *len)
{
	uint64_t start = a->partial ? a->offset : 0;

	if (start > total)
		start = total;
	*off = start;
	*len = total - start;
	if (a->partial && a->length < *len)
		*len = a->length;
}

/* HEADER.FIELDS[.NOT]: the filtered header, from memory. */
static bool fetch_fields(struct imap_session *s, struct fetch_msg *fm,
    const struct mime_part *p, const struct imap_fetch_att *a)
{
	bool exclude = a->section.text == IMAP_SECTION_HEADER_FIELDS_NOT;
	struct evbuffer *b = evbuffer_new();
	char *hdr = imap_msg_read(s, fm->m, p->hdr_off, p->hdr_size);
	uint64_t off, len;
	bool ok = false;

	if (b != NULL && hdr != NULL &&
	    mime_header_filter(hdr, (size_t)p->hdr_size, a->section.fields, a->section.nfields,
	    exclude, b) >= 0) {
		char *text = (char *)evbuffer_pullup(b, -1);
		send_partial(s, a, evbuffer_get_length(b), &off, &len);
		imap_printf(s, "%s {%llu}\r\n", a->echo, (unsigned long long)len);
		conn_write(s->conn, text + off, (size_t)len);
		ok = true;
	}
	free(hdr);
	if (b)
		evbuffer_free(b);
	return ok;
}

static bool fetch_section(struct imap_session *s, struct fetch_msg *fm,
    const struct imap_fetch_att *a)
{
	const struct imap_section *sec = &a->section;
	const struct mime_part *root, *p;
	uint64_t off, len, roff, rlen;

	/* BODY[] needs no structure: the whole stored message. */
	if (sec->nparts == 0 && sec->text == IMAP_SECTION_ALL) {
		roff = 0;
		rlen = fm->m->size;
	} else {
		if ((root = fetch_tree(s, fm)) == NULL)
			return false;
		if ((p = section_part(root, sec)) == NULL) {
			/* A part that does not exist is empty (as Dovecot answers). */
			imap_printf(s, "%s NIL", a->echo);
			return true;
		}
		if (sec->text == IMAP_SECTION_HEADER_FIELDS ||
		    sec->text == IMAP_SECTION_HEADER_FIELDS_NOT)
			return fetch_fields(s, fm, p, a);
		if (!section_range(p, sec, &roff, &rlen))
			return false;
	}
	send_partial(s, a, rlen, &off, &len);
	imap_printf(s, "%s {%llu}\r\n", a->echo, (unsigned long long)len);
	return imap_msg_send(s, fm->m, roff + off, len) == STORE_OK;
}

static bool fetch_att(struct imap_session *s, struct fetch_msg *fm,
    const struct imap_fetch_att *a)
{
	char date[IMAP_DATETIME_SIZE + 1];
	struct imap_msg *m = fm->m;

	switch (a->item) {
	case IMAP_FETCH_FLAGS:
		imap_printf(s, "FLAGS ");
		imap_write_flags(s, m->flags, m->keywords);
		return true;
	case IMAP_FETCH_UID:
		imap_printf(s, "UID %u", m->uid);
		return true;
	case IMAP_FETCH_INTERNALDATE:
		imap_datetime_format(m->internal_date, 0, date, sizeof(date));
		imap_printf(s, "INTERNALDATE \"%s\"", date);
		return true;
	case IMAP_FETCH_RFC822_SIZE:
		imap_printf(s, "RFC822.SIZE %llu", (unsigned long long)m->size);
		return true;
	case IMAP_FETCH_MODSEQ:
		imap_printf(s, "MODSEQ (%llu)", (unsigned long long)m->modseq);
		return true;
	case IMAP_FETCH_ENVELOPE:
	case IMAP_FETCH_BODY:
	case IMAP_FETCH_BODYSTRUCTURE:
		return fetch_structure(s, fm, a->item);
	case IMAP_FETCH_RFC822:
	case IMAP_FETCH_RFC822_HEADER:
	case IMAP_FETCH_RFC822_TEXT:
	case IMAP_FETCH_BODY_SECTION:
		return fetch_section(s, fm, a);
	default:
		return false;
	}
}

/* Sets \Seen for a body fetch without PEEK; true if it changed. */
static bool fetch_set_seen(struct imap_session *s, struct imap_msg *m)
{
	char kw[2048];
	unsigned flags;
	uint64_t modseq;

	if (s->view->readonly || (m->flags & STORE_FLAG_SEEN))
		return false;
	if (store_message_store(s->srv->store, m->id, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, 0,
	    NULL) != STORE_OK ||
	    store_message_state(s->srv->store, m->id, &flags, kw, sizeof(kw), &modseq) != STORE_OK)
		return false;
	imap_view_set_state(m, flags, kw, modseq);
	return true;
}

static bool fetch_one(struct imap_session *s, const struct imap_fetch *f, struct fetch_msg *fm)
{
	bool ok = true, seen_changed = false, has_flags = false;
	size_t i;

	if (f->sets_seen)
		seen_changed = fetch_set_seen(s, fm->m);
	imap_printf(s, "* %zu FETCH (", fm->seq);
	for (i = 0; i < f->count && ok; i++) {
		if (i)
			imap_printf(s, " ");
		has_flags |= f->atts[i].item == IMAP_FETCH_FLAGS;
		ok = fetch_att(s, fm, &f->atts[i]);
	}
	/* RFC 3501 §6.4.5: a \Seen set by this fetch is reported. */
	if (ok && seen_changed && !has_flags) {
		imap_printf(s, " FLAGS ");
		imap_write_flags(s, fm->m->flags, fm->m->keywords);
	}
	imap_printf(s, ")\r\n");
	mime_part_free(fm->tree);
	return ok;
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_fetch f = { 0 };
	struct imap_error err = { 0 };
	struct imap_seqset set;
	struct imap_seq_iter it;
	uint32_t n;
	bool ok = true;

	if (cmd->nargs < 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: FETCH sequence-set items");
		return;
	}
	if (!imap_fetch_parse(cmd->args + 1, cmd->nargs - 1, cmd->uid, &f, &err)) {
		imap_tagged(s, cmd->tag, "BAD", "%s", err.msg[0] ? err.msg : "Invalid FETCH items");
		return;
	}
	for (size_t i = 0; i < f.count; i++) {
		if (f.atts[i].item == IMAP_FETCH_BINARY || f.atts[i].item == IMAP_FETCH_BINARY_SIZE) {
			imap_fetch_free(&f);
			imap_tagged(s, cmd->tag, "BAD", "BINARY is not supported");
			return;
		}
	}
	if ((cmd->uid && !imap_fetch_ensure(&f, IMAP_FETCH_UID))) {
		imap_fetch_free(&f);
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	imap_seqset_init(&set);
	if (imap_view_select(s, cmd->tag, cmd->args[0].str, cmd->uid, &set)) {
		imap_seq_iter_init(&it, &set);
		while (ok && imap_seq_iter_next(&it, &n)) {
			long i = cmd->uid ? imap_view_find_uid(s->view, n) : (long)n - 1;
			if (i < 0 || (size_t)i >= s->view->n || s->view->msgs[i].gone)
				continue;
			struct fetch_msg fm = { &s->view->msgs[i], (size_t)i + 1, NULL, false };
			ok = fetch_one(s, &f, &fm);
		}
		if (ok)
			imap_tagged(s, cmd->tag, "OK", "FETCH completed");
		else
			imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Cannot read a message");
	}
	imap_seqset_free(&set);
	imap_fetch_free(&f);
}

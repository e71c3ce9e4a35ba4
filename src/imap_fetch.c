/*
 * FETCH and UID FETCH (RFC 3501 §6.4.5, §7.4.2): message attributes from
 * the view, ENVELOPE and BODYSTRUCTURE from the stored MIME structure,
 * and body sections as byte ranges of the stored message.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/buffer.h>

#include "mailsnare/imap_bodystructure.h"
#include "mailsnare/imap_date.h"
#include "mailsnare/imap_envelope.h"
#include "mailsnare/imap_fetchattr.h"
#include "mailsnare/log.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_decode.h"
#include "imap_session.h"

/* Per message: the structure is loaded at most once. */
struct fetch_msg {
	struct imap_msg *m;
	size_t seq;
	struct mime_part *tree;
	bool tree_failed;
};

/* A FETCH in progress. Large bodies are sent in chunks while the
 * client reads; the job waits for the output to drain in between and is
 * resumed from imap_fetch_resume(). */
#define FETCH_OUT_HIGH (256 * 1024)
#define FETCH_CHUNK (64 * 1024)

struct imap_fetch_job {
	struct imap_command *cmd;   /* owned while the job is suspended */
	struct imap_fetch f;
	struct imap_seqset set;
	struct imap_seq_iter it;
	struct fetch_msg fm;
	bool in_msg;
	size_t att;
	bool seen_changed, has_flags, failed;
	bool expunged;               /* the set named a message expunged elsewhere */
	bool broken;                 /* a literal cannot be completed: close */
	const char *error;           /* the NO text when failed */
	uint64_t stream_off, stream_left;
	bool stream_first;           /* the first chunk goes with the response */
	struct imap_buf out;         /* responses not yet handed to the conn */
	size_t resp_start;           /* where the message's response starts in out */
	bool resp_sent;              /* some of it went to the conn already */
};

/* Responses are built in job->out and written in pieces of about this
 * size (and before a body is streamed, and before the tagged reply). */
#define FETCH_FLUSH (16 * 1024)

static void out_flush(struct imap_session *s, struct imap_fetch_job *job)
{
	if (job->out.len > 0)
		conn_write(s->conn, job->out.p, job->out.len);
	job->out.len = 0;
	job->resp_start = 0;
	job->resp_sent = job->in_msg;
}

static void out_str(struct imap_fetch_job *job, const char *str)
{
	imap_buf_add(&job->out, str, strlen(str));
}

/* The same flag list as imap_write_flags() writes, into the buffer. */
static void out_flags(struct imap_session *s, struct imap_fetch_job *job, unsigned flags,
    const char *keywords)
{
	static const struct { unsigned bit; const char *name; } names[] = {
		{ STORE_FLAG_ANSWERED, "\\Answered" }, { STORE_FLAG_FLAGGED, "\\Flagged" },
		{ STORE_FLAG_DELETED, "\\Deleted" }, { STORE_FLAG_SEEN, "\\Seen" },
		{ STORE_FLAG_DRAFT, "\\Draft" }, { IMAP_FLAG_RECENT, "\\Recent" },
	};
	bool first = true;

	imap_buf_addc(&job->out, '(');
	/* IMAP4rev2 has no \Recent (RFC 9051 Appendix E). */
	if (s->rev2)
		flags &= ~IMAP_FLAG_RECENT;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		if (flags & names[i].bit) {
			if (!first)
				imap_buf_addc(&job->out, ' ');
			out_str(job, names[i].name);
			first = false;
		}
	}
	if (keywords && keywords[0]) {
		if (!first)
			imap_buf_addc(&job->out, ' ');
		out_str(job, keywords);
	}
	imap_buf_addc(&job->out, ')');
}

/* "echo {len}\r\n", a literal's announcement. */
static void out_literal(struct imap_fetch_job *job, const char *echo, const char *prefix,
    uint64_t len)
{
	out_str(job, echo);
	imap_buf_addc(&job->out, ' ');
	out_str(job, prefix);
	imap_buf_addc(&job->out, '{');
	imap_buf_num(&job->out, len);
	IMAP_BUF_LIT(&job->out, "}\r\n");
}

static const struct mime_part *fetch_tree(struct imap_session *s, struct fetch_msg *fm)
{
	if (fm->tree == NULL && !fm->tree_failed) {
		fm->tree = imap_msg_tree(s, fm->m);
		fm->tree_failed = fm->tree == NULL;
	}
	return fm->tree;
}

static bool fetch_structure(struct imap_session *s, struct imap_fetch_job *job,
    enum imap_fetch_item item)
{
	const struct mime_part *root = fetch_tree(s, &job->fm);
	struct imap_buf *b = &job->out;

	if (root == NULL)
		return false;
	if (item == IMAP_FETCH_ENVELOPE) {
		IMAP_BUF_LIT(b, "ENVELOPE ");
		return imap_envelope_format(root, b);
	}
	if (item == IMAP_FETCH_BODYSTRUCTURE)
		IMAP_BUF_LIT(b, "BODYSTRUCTURE ");
	else
		IMAP_BUF_LIT(b, "BODY ");
	return imap_bodystructure_format(root, item == IMAP_FETCH_BODYSTRUCTURE, b);
}

/* The part a section names. HEADER, HEADER.FIELDS[.NOT] and TEXT after a
 * part number are those of the message a message/rfc822 part encapsulates
 * (RFC 3501 §6.4.5), at any depth; after any other part they name nothing
 * (as in Dovecot's imap_msgpart_find_part). MIME stays the part's own
 * header. */
static const struct mime_part *section_part(const struct mime_part *root,
    const struct imap_section *sec)
{
	char path[IMAP_SECTION_MAX_PARTS * 11];
	size_t len = 0;
	unsigned i;

	if (sec->nparts == 0)
		return root;
	for (i = 0; i < sec->nparts; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%u", i ? "." : "",
		    sec->part[i]);
	if (sec->text != IMAP_SECTION_ALL && sec->text != IMAP_SECTION_MIME)
		return mime_section_message(root, path, len);
	return mime_part_find(root, path, len);
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

static void send_partial(const struct imap_fetch_att *a, uint64_t total, uint64_t *off,
    uint64_t *len)
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
static bool fetch_fields(struct imap_session *s, struct imap_fetch_job *job,
    const struct mime_part *p, const struct imap_fetch_att *a)
{
	struct fetch_msg *fm = &job->fm;
	bool exclude = a->section.text == IMAP_SECTION_HEADER_FIELDS_NOT;
	struct evbuffer *b = evbuffer_new();
	char *hdr = imap_msg_read(s, fm->m, p->hdr_off, p->hdr_size);
	uint64_t off, len;
	bool ok = false;

	if (b != NULL && hdr != NULL &&
	    mime_header_filter(hdr, (size_t)p->hdr_size, a->section.fields, a->section.nfields,
	    exclude, b) >= 0) {
		char *text = (char *)evbuffer_pullup(b, -1);
		send_partial(a, evbuffer_get_length(b), &off, &len);
		out_literal(job, a->echo, "", len);
		imap_buf_add(&job->out, text + off, (size_t)len);
		ok = true;
	}
	free(hdr);
	if (b)
		evbuffer_free(b);
	return ok;
}

static bool fetch_section(struct imap_session *s, struct imap_fetch_job *job,
    const struct imap_fetch_att *a)
{
	struct fetch_msg *fm = &job->fm;
	struct imap_section rfc822 = a->section;
	const struct imap_section *sec = &rfc822;

	/* RFC822.HEADER is BODY.PEEK[HEADER], RFC822.TEXT is BODY[TEXT]. */
	if (a->item == IMAP_FETCH_RFC822_HEADER)
		rfc822.text = IMAP_SECTION_HEADER;
	else if (a->item == IMAP_FETCH_RFC822_TEXT)
		rfc822.text = IMAP_SECTION_TEXT;
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
			/* A part that does not exist, or HEADER/TEXT of one that
			 * is not message/rfc822, is empty: "{0}" (as Dovecot 2.3
			 * answers). */
			out_literal(job, a->echo, "", 0);
			return true;
		}
		if (sec->text == IMAP_SECTION_HEADER_FIELDS ||
		    sec->text == IMAP_SECTION_HEADER_FIELDS_NOT)
			return fetch_fields(s, job, p, a);
		if (!section_range(p, sec, &roff, &rlen))
			return false;
	}
	send_partial(a, rlen, &off, &len);
	out_literal(job, a->echo, "", len);
	job->stream_off = roff + off;
	job->stream_left = len;
	job->stream_first = true;
	return true;
}

/* ---- BINARY (RFC 3516) ------------------------------------------------- */

struct binary_out {
	struct mime_decoder dec;
	struct evbuffer *out;
	char *tmp;
	size_t tmpsize;
};

static bool binary_room(struct binary_out *b, size_t need)
{
	char *t;

	if (need <= b->tmpsize)
		return true;
	if ((t = realloc(b->tmp, need)) == NULL)
		return false;
	b->tmp = t;
	b->tmpsize = need;
	return true;
}

static int binary_sink(void *arg, const void *buf, size_t len)
{
	struct binary_out *b = arg;

	if (!binary_room(b, MIME_DECODE_OUT_MAX(len)))
		return -1;
	return evbuffer_add(b->out, b->tmp, mime_decoder_feed(&b->dec, buf, len, b->tmp));
}

static bool cte_known(const char *enc)
{
	static const char *const known[] = { "7bit", "8bit", "binary", "base64",
		"quoted-printable" };
	size_t i;

	if (enc == NULL || enc[0] == '\0')
		return true;
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strcasecmp(enc, known[i]) == 0)
			return true;
	return false;
}

/* The decoded content of a section, in memory (bounded by the message
 * size). Leaves and whole messages only; containers are sent as they are. */
static struct evbuffer *binary_decode(struct imap_session *s, struct fetch_msg *fm,
    const struct imap_section *sec, const char **err)
{
	const struct mime_part *root = fetch_tree(s, fm), *p;
	struct binary_out b = { .out = evbuffer_new() };
	char path[IMAP_SECTION_MAX_PARTS * 11];
	size_t len = 0;
	unsigned i;
	int rc;

	if (root == NULL || b.out == NULL)
		goto fail;
	for (i = 0; i < sec->nparts; i++)
		len += (size_t)snprintf(path + len, sizeof(path) - len, "%s%u", i ? "." : "",
		    sec->part[i]);
	p = sec->nparts ? mime_part_find(root, path, len) : root;
	if (p == NULL) {
		*err = "[NONEXISTENT] No such part";
		goto fail;
	}
	if (p->children == NULL && !cte_known(p->encoding)) {
		*err = "[UNKNOWN-CTE] Cannot decode this transfer encoding";
		goto fail;
	}
	mime_decoder_init(&b.dec, p->children == NULL && sec->nparts ?
	    mime_encoding_from_name(p->encoding) : MIME_ENC_IDENTITY);
	rc = sec->nparts ? store_message_read_range(s->srv->store, fm->m->id, p->body_off,
	    p->body_size, binary_sink, &b) : store_message_read(s->srv->store, fm->m->id,
	    binary_sink, &b);
	if (rc != STORE_OK || !binary_room(&b, MIME_DECODE_OUT_MAX(0)))
		goto fail;
	evbuffer_add(b.out, b.tmp, mime_decoder_finish(&b.dec, b.tmp));
	free(b.tmp);
	return b.out;
fail:
	free(b.tmp);
	if (b.out)
		evbuffer_free(b.out);
	return NULL;
}

static bool fetch_binary(struct imap_session *s, struct imap_fetch_job *job,
    const struct imap_fetch_att *a)
{
	const char *err = "[SERVERBUG] Cannot decode";
	struct evbuffer *b = binary_decode(s, &job->fm, &a->section, &err);
	uint64_t off, len, total;
	char *data;

	if (b == NULL) {
		job->error = err;
		return false;
	}
	total = evbuffer_get_length(b);
	data = (char *)evbuffer_pullup(b, -1);
	if (a->item == IMAP_FETCH_BINARY_SIZE) {
		out_str(job, a->echo);
		imap_buf_addc(&job->out, ' ');
		imap_buf_num(&job->out, total);
	} else {
		send_partial(a, total, &off, &len);
		/* A literal8 only when there is a NUL to carry (RFC 3516 §4.2). */
		out_literal(job, a->echo, len && memchr(data + off, '\0', len) ? "~" : "", len);
		imap_buf_add(&job->out, data + off, len);
	}
	evbuffer_free(b);
	return true;
}

static bool fetch_att(struct imap_session *s, struct imap_fetch_job *job,
    const struct imap_fetch_att *a)
{
	char date[IMAP_DATETIME_SIZE + 1];
	struct imap_msg *m = job->fm.m;
	struct imap_buf *b = &job->out;

	switch (a->item) {
	case IMAP_FETCH_FLAGS:
		IMAP_BUF_LIT(b, "FLAGS ");
		out_flags(s, job, m->flags, m->keywords);
		return true;
	case IMAP_FETCH_UID:
		IMAP_BUF_LIT(b, "UID ");
		imap_buf_num(b, m->uid);
		return true;
	case IMAP_FETCH_INTERNALDATE:
		imap_datetime_format(m->internal_date, 0, date, sizeof(date));
		IMAP_BUF_LIT(b, "INTERNALDATE \"");
		out_str(job, date);
		imap_buf_addc(b, '"');
		return true;
	case IMAP_FETCH_RFC822_SIZE:
		IMAP_BUF_LIT(b, "RFC822.SIZE ");
		imap_buf_num(b, m->size);
		return true;
	case IMAP_FETCH_MODSEQ:
		IMAP_BUF_LIT(b, "MODSEQ (");
		imap_buf_num(b, m->modseq);
		imap_buf_addc(b, ')');
		return true;
	case IMAP_FETCH_ENVELOPE:
	case IMAP_FETCH_BODY:
	case IMAP_FETCH_BODYSTRUCTURE:
		return fetch_structure(s, job, a->item);
	case IMAP_FETCH_RFC822:
	case IMAP_FETCH_RFC822_HEADER:
	case IMAP_FETCH_RFC822_TEXT:
	case IMAP_FETCH_BODY_SECTION:
		return fetch_section(s, job, a);
	case IMAP_FETCH_BINARY:
	case IMAP_FETCH_BINARY_SIZE:
		return fetch_binary(s, job, a);
	default:
		return false;
	}
}

/* Sets \Seen for a body fetch without PEEK; true if it changed. */
static bool fetch_set_seen(struct imap_session *s, struct imap_fetch_job *job,
    struct imap_msg *m)
{
	const char *kws[1];
	char kw[2048];
	unsigned flags;
	uint64_t modseq;

	if (s->view->readonly || (m->flags & STORE_FLAG_SEEN))
		return false;
	if (store_message_store(s->srv->store, m->id, STORE_FLAGS_ADD, STORE_FLAG_SEEN, NULL, 0, 0,
	    NULL) != STORE_OK ||
	    store_message_state(s->srv->store, m->id, &flags, kw, sizeof(kw), &modseq) != STORE_OK)
		return false;
	/* Another session may have given it a keyword this one was not told
	 * of yet: FLAGS first (RFC 3501 §7.2.6), after what is buffered. */
	out_flush(s, job);
	kws[0] = kw;
	imap_view_announce_keywords(s, kws, 1);
	imap_view_set_state(m, flags, kw, modseq);
	return true;
}

/*
 * A read of the message failed. While the FETCH waited for the client to
 * read, the event loop ran others: another session's EXPUNGE, POP3 or the
 * CLI may have taken the message away. If nothing of its response went
 * out yet, the response is dropped and the FETCH goes on, to end NO
 * [EXPUNGEISSUED] as for a message the view knows is gone (RFC 2180
 * §4.1.2). A literal already announced cannot be taken back (the client
 * would wait for its octets for ever, or read the replies after it as
 * message text): the connection is closed, as Dovecot does. Returns
 * whether the FETCH goes on.
 */
static bool fetch_msg_gone(struct imap_session *s, struct imap_fetch_job *job, bool in_literal)
{
	unsigned flags;
	uint64_t modseq;
	char kw[2048];

	job->stream_left = 0;
	if (job->resp_sent) {
		if (in_literal)
			job->broken = job->failed = true;
		return false;
	}
	if (!in_literal && store_message_state(s->srv->store, job->fm.m->id, &flags, kw,
	    sizeof(kw), &modseq) != STORE_NOTFOUND)
		return false;
	job->out.len = job->resp_start;
	mime_part_free(job->fm.tree);
	job->fm.tree = NULL;
	job->in_msg = false;
	if (in_literal && store_message_state(s->srv->store, job->fm.m->id, &flags, kw,
	    sizeof(kw), &modseq) != STORE_NOTFOUND)
		job->failed = true;
	else
		job->expunged = true;
	return true;
}

/* Sends the body being streamed while the output has room; false when
 * the job must wait for the client to read. The first chunk is read into
 * the response with its literal's announcement, before any of it goes
 * out and without a wait in between: a message expunged meanwhile then
 * leaves no literal half sent. */
static bool fetch_stream(struct imap_session *s, struct imap_fetch_job *job)
{
	while (job->stream_left > 0) {
		uint64_t n = job->stream_left < FETCH_CHUNK ? job->stream_left : FETCH_CHUNK;
		int rc;
		if (job->stream_first) {
			rc = imap_msg_copy(s, job->fm.m, job->stream_off, n, &job->out);
		} else {
			out_flush(s, job);
			if (conn_output_pending(s->conn) >= FETCH_OUT_HIGH)
				return false;
			rc = imap_msg_send(s, job->fm.m, job->stream_off, n);
		}
		if (rc != STORE_OK) {
			(void)fetch_msg_gone(s, job, true);
			return true;
		}
		job->stream_first = false;
		job->stream_off += n;
		job->stream_left -= n;
	}
	return true;
}

static void fetch_msg_begin(struct imap_session *s, struct imap_fetch_job *job, size_t i)
{
	memset(&job->fm, 0, sizeof(job->fm));
	job->fm.m = &s->view->msgs[i];
	job->fm.seq = i + 1;
	job->in_msg = true;
	job->att = 0;
	job->has_flags = false;
	job->seen_changed = job->f.sets_seen && fetch_set_seen(s, job, job->fm.m);
	job->resp_start = job->out.len;
	job->resp_sent = false;
	IMAP_BUF_LIT(&job->out, "* ");
	imap_buf_num(&job->out, job->fm.seq);
	IMAP_BUF_LIT(&job->out, " FETCH (");
}

static void fetch_msg_end(struct imap_session *s, struct imap_fetch_job *job)
{
	/* RFC 3501 §6.4.5: a \Seen set by this fetch is reported. */
	if (!job->failed && job->seen_changed && !job->has_flags) {
		IMAP_BUF_LIT(&job->out, " FLAGS ");
		out_flags(s, job, job->fm.m->flags, job->fm.m->keywords);
	}
	IMAP_BUF_LIT(&job->out, ")\r\n");
	if (job->out.len >= FETCH_FLUSH)
		out_flush(s, job);
	mime_part_free(job->fm.tree);
	job->fm.tree = NULL;
	job->in_msg = false;
}

/* Advances the job; true when it is finished (tagged reply sent). */
static bool fetch_run(struct imap_session *s, struct imap_fetch_job *job)
{
	const struct imap_command *cmd = job->cmd;
	uint32_t n;

	for (;;) {
		if (job->stream_left > 0 && !fetch_stream(s, job))
			return false;
		if (job->in_msg && job->att < job->f.count && !job->failed) {
			const struct imap_fetch_att *a = &job->f.atts[job->att++];
			if (job->att > 1)
				imap_buf_addc(&job->out, ' ');
			job->has_flags |= a->item == IMAP_FETCH_FLAGS;
			if (!fetch_att(s, job, a) && !fetch_msg_gone(s, job, false))
				job->failed = true;
			continue;
		}
		if (job->in_msg)
			fetch_msg_end(s, job);
		if (job->failed)
			break;
		/* Between messages, the client reads what it was sent (the
		 * output is bounded); the messages after may be expunged
		 * meanwhile (fetch_msg_gone). */
		if (conn_output_pending(s->conn) >= FETCH_OUT_HIGH) {
			out_flush(s, job);
			return false;
		}
		if (!imap_seq_iter_next(&job->it, &n))
			break;
		long i = cmd->uid ? imap_view_find_uid(s->view, n) : (long)n - 1;
		if (i < 0 || (size_t)i >= s->view->n)
			continue;
		/* Its bytes are gone with it: RFC 2180 §4.1.2, as Dovecot. */
		if (s->view->msgs[i].gone) {
			job->expunged = true;
			continue;
		}
		/* CHANGEDSINCE: only messages whose state moved on since. */
		if (job->f.changedsince_set && s->view->msgs[i].modseq <= job->f.changedsince)
			continue;
		fetch_msg_begin(s, job, (size_t)i);
	}
	if (job->out.failed) {
		job->failed = true;
		job->error = "[SERVERBUG] Out of memory";
	}
	if (job->broken)
		job->out.len = 0;   /* nothing after the cut literal */
	out_flush(s, job);
	if (job->broken) {
		log_info("imap: %s: message %lld gone in the middle of its literal; closing",
		    conn_peer(s->conn), (long long)job->fm.m->id);
		s->mode = IMAP_M_DONE;
		conn_close(s->conn);
	} else if (job->failed)
		imap_tagged(s, cmd->tag, "NO", "%s", job->error ? job->error :
		    "[SERVERBUG] Cannot read a message");
	else if (job->expunged)
		imap_tagged(s, cmd->tag, "NO", "[EXPUNGEISSUED] Some of the requested messages"
		    " no longer exist");
	else
		imap_tagged(s, cmd->tag, "OK", "FETCH completed");
	return true;
}

static void fetch_job_free(struct imap_fetch_job *job)
{
	if (job == NULL)
		return;
	mime_part_free(job->fm.tree);
	imap_buf_free(&job->out);
	imap_seqset_free(&job->set);
	imap_fetch_free(&job->f);
	free(job);
}

static void fetch_job_free_state(void *job)
{
	fetch_job_free(job);
}

/* Called again once the output drained: goes on, or finishes. */
static enum imap_cont fetch_cont(struct imap_session *s, void *job)
{
	return fetch_run(s, job) ? IMAP_CONT_DONE : IMAP_CONT_OUTPUT;
}

static bool fetch_prepare(struct imap_session *s, const struct imap_command *cmd,
    struct imap_fetch_job *job)
{
	struct imap_error err = { 0 };
	size_t i;

	if (cmd->nargs < 2 || cmd->args[0].type != IMAP_ARG_ATOM) {
		imap_tagged(s, cmd->tag, "BAD", "Syntax: FETCH sequence-set items");
		return false;
	}
	if (!imap_fetch_parse(cmd->args + 1, cmd->nargs - 1, cmd->uid, &job->f, &err)) {
		imap_tagged(s, cmd->tag, "BAD", "%s", err.msg[0] ? err.msg : "Invalid FETCH items");
		return false;
	}
	if (cmd->uid && !imap_fetch_ensure(&job->f, IMAP_FETCH_UID)) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return false;
	}
	if (job->f.vanished && !s->qresync) {
		imap_tagged(s, cmd->tag, "BAD", "VANISHED needs ENABLE QRESYNC");
		return false;
	}
	for (i = 0; i < job->f.count; i++)
		if (job->f.atts[i].item == IMAP_FETCH_MODSEQ)
			imap_condstore_enable(s);   /* MODSEQ, CHANGEDSINCE */
	return imap_view_select(s, cmd->tag, cmd->args[0].str, cmd->uid, &job->set);
}

struct vanished_ctx {
	const struct imap_seqset *want;
	struct imap_seqset out;
};

static int vanished_add(uint32_t uid, void *arg)
{
	struct vanished_ctx *v = arg;

	if (imap_seqset_contains(v->want, uid))
		imap_seqset_add(&v->out, uid, uid);
	return 0;
}

/* UID FETCH (CHANGEDSINCE m VANISHED): the UIDs of the set expunged since
 * m, before the FETCH responses (RFC 7162 §3.2.6). The set was evaluated
 * against the view, so expunged UIDs above its last one are not in it:
 * re-evaluate the client's set without that bound. */
static void fetch_vanished(struct imap_session *s, const struct imap_command *cmd,
    const struct imap_fetch_job *job)
{
	struct vanished_ctx v;
	struct imap_seqset parsed, all;

	imap_seqset_init(&parsed);
	imap_seqset_init(&all);
	imap_seqset_init(&v.out);
	v.want = &all;
	if (imap_seqset_parse(cmd->args[0].str, strlen(cmd->args[0].str), 10000, &parsed) ==
	    IMAP_SEQ_OK &&
	    imap_seqset_eval(&parsed, IMAP_SEQ_UID, UINT32_MAX, NULL, &all) == IMAP_SEQ_OK &&
	    store_mailbox_vanished(s->srv->store, s->view->mb.id, job->f.changedsince,
	    vanished_add, &v) == STORE_OK) {
		imap_seqset_normalize(&v.out);
		imap_send_vanished(s, &v.out, true);
	}
	imap_seqset_free(&parsed);
	imap_seqset_free(&all);
	imap_seqset_free(&v.out);
}

void imap_cmd_fetch(struct imap_session *s, const struct imap_command *cmd)
{
	struct imap_fetch_job *job = calloc(1, sizeof(*job));

	if (job == NULL) {
		imap_tagged(s, cmd->tag, "NO", "[SERVERBUG] Out of memory");
		return;
	}
	imap_seqset_init(&job->set);
	job->cmd = (struct imap_command *)cmd;
	if (fetch_prepare(s, cmd, job)) {
		if (job->f.vanished)
			fetch_vanished(s, cmd, job);
		imap_seq_iter_init(&job->it, &job->set);
		if (!fetch_run(s, job)) {
			/* The job uses the command (its strings) until done. */
			imap_pending_start(s, cmd, IMAP_CONT_OUTPUT, fetch_cont,
			    fetch_job_free_state, job);
			return;
		}
	}
	fetch_job_free(job);
}

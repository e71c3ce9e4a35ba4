/*
 * The incremental MIME scanner and the part tree (see mime.h).
 *
 * Input is cut into lines with memchr; of each line the scanner keeps only
 * its first PREFIX_MAX bytes (enough to recognise "--boundary--") and, in a
 * header, the header bytes up to MIME_MAX_HEADER. At the end of every line
 * it decides: header line, end of header, boundary (of any open multipart,
 * innermost first), or body line. Parts are closed when a boundary of an
 * enclosing multipart or the end of input is reached.
 */
#include "mailsnare/mime.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mime_internal.h"

#define PREFIX_MAX (2 + MIME_MAX_BOUNDARY + 4)
#define STRING_BUDGET (8u * 1024 * 1024)

struct mp_frame {
	struct mime_part *mp, *last;
	char boundary[MIME_MAX_BOUNDARY];
	size_t blen;
	bool closed; /* close delimiter seen: in the epilogue */
};

enum scan_state { S_HEADER, S_BODY };

struct mime_scan {
	struct mime_part *root, *cur;
	enum scan_state state;
	uint64_t pos, nlf;
	/* the current line */
	uint64_t line_start, lf_at_line_start, line_len;
	char prefix[PREFIX_MAX];
	size_t plen;
	char last, prev_last;
	bool prev_crlf; /* the line before the current one ended in CRLF */
	/* the header being collected */
	char *hbuf;
	size_t hlen, hline;
	bool htrunc, hskip, hdrop;
	struct mp_frame frames[MIME_MAX_DEPTH + 1];
	size_t nframes;
	unsigned nparts;
	size_t budget;
	bool failed;
};

static struct mime_part *part_new(struct mime_scan *sc, struct mime_part *parent, uint64_t off)
{
	struct mime_part *p = calloc(1, sizeof(*p));

	if (p == NULL) {
		sc->failed = true;
		return NULL;
	}
	p->parent = parent;
	p->hdr_off = off;
	sc->nparts++;
	sc->cur = p;
	sc->state = S_HEADER;
	sc->hlen = sc->hline = 0;
	sc->htrunc = sc->hskip = sc->hdrop = false;
	return p;
}

struct mime_scan *mime_scan_new(void)
{
	struct mime_scan *sc = calloc(1, sizeof(*sc));

	if (sc == NULL)
		return NULL;
	if ((sc->hbuf = malloc(MIME_MAX_HEADER)) == NULL || part_new(sc, NULL, 0) == NULL) {
		free(sc->hbuf);
		free(sc);
		return NULL;
	}
	sc->root = sc->cur;
	sc->root->flags = MIME_PART_MESSAGE;
	sc->budget = STRING_BUDGET;
	return sc;
}

static unsigned part_depth(const struct mime_part *p)
{
	unsigned d = 0;

	while ((p = p->parent) != NULL)
		d++;
	return d;
}

/* ---- header fields ---- */

static const char *const env_names[MIME_ENV_COUNT] = {
	"date", "subject", "from", "sender", "reply-to", "to", "cc", "bcc", "in-reply-to", "message-id",
};

static bool field_is(const struct mime_field *f, const char *name)
{
	return f->name_len == strlen(name) && strncasecmp(f->name, name, f->name_len) == 0;
}

/* Optional strings are kept while the scanner's string budget lasts. */
static void set_string(struct mime_scan *sc, char **dst, const struct mime_field *f, bool lower)
{
	if (*dst != NULL || f->value_len > sc->budget)
		return;
	*dst = mime_header_unfold(f->value, f->value_len, MIME_MAX_VALUE);
	if (*dst == NULL) {
		sc->failed = true;
		return;
	}
	sc->budget -= strlen(*dst);
	for (char *c = *dst; lower && *c != '\0'; c++)
		*c = mime_lower(*c);
}

static void set_content_type(struct mime_scan *sc, struct mime_part *p, const struct mime_field *f)
{
	if (p->type != NULL)
		return;
	p->nparams = (uint32_t)mime_header_parse_content_type(f->value, f->value_len, &p->type,
	    &p->subtype, &p->params);
	if (p->type == NULL) { /* invalid: RFC 2045 §5.2 default, no parameters */
		mime_params_free(p->params, p->nparams);
		p->params = NULL;
		p->nparams = 0;
	}
}

static void set_disposition(struct mime_scan *sc, struct mime_part *p, const struct mime_field *f)
{
	if (p->disposition != NULL)
		return;
	p->ndisp_params = (uint32_t)mime_header_parse_params(f->value, f->value_len,
	    &p->disposition, &p->disp_params);
	if (p->disposition == NULL) {
		mime_params_free(p->disp_params, p->ndisp_params);
		p->disp_params = NULL;
		p->ndisp_params = 0;
	}
}

static void parse_field(struct mime_scan *sc, struct mime_part *p, const struct mime_field *f)
{
	if (field_is(f, "content-type"))
		set_content_type(sc, p, f);
	else if (field_is(f, "content-disposition"))
		set_disposition(sc, p, f);
	else if (field_is(f, "content-transfer-encoding"))
		set_string(sc, &p->encoding, f, true);
	else if (field_is(f, "content-id"))
		set_string(sc, &p->id, f, false);
	else if (field_is(f, "content-description"))
		set_string(sc, &p->description, f, false);
	else if (field_is(f, "content-md5"))
		set_string(sc, &p->md5, f, false);
	else if (field_is(f, "content-language"))
		set_string(sc, &p->language, f, false);
	else if (field_is(f, "content-location"))
		set_string(sc, &p->location, f, false);
	else if (p->flags & MIME_PART_MESSAGE) {
		for (int i = 0; i < MIME_ENV_COUNT; i++) {
			if (field_is(f, env_names[i]))
				set_string(sc, &p->env[i], f, false);
		}
	}
}

static bool in_digest(const struct mime_part *p)
{
	const struct mime_part *mp = p->parent;
	return mp != NULL && (mp->flags & MIME_PART_MULTIPART) && strcmp(mp->subtype, "digest") == 0;
}

static void set_type(struct mime_scan *sc, struct mime_part *p, const char *type, const char *subtype)
{
	free(p->type);
	free(p->subtype);
	p->type = strdup(type);
	p->subtype = strdup(subtype);
	if (p->type == NULL || p->subtype == NULL)
		sc->failed = true;
}

static void parse_header(struct mime_scan *sc, struct mime_part *p)
{
	struct mime_field f;
	size_t pos = 0;

	while (mime_header_next(sc->hbuf, sc->hlen, &pos, &f))
		parse_field(sc, p, &f);
	if (p->type == NULL)
		set_type(sc, p, in_digest(p) ? "message" : "text", in_digest(p) ? "rfc822" : "plain");
}

/* A container that cannot be scanned becomes an opaque text/plain leaf. */
static void make_opaque(struct mime_scan *sc, struct mime_part *p)
{
	set_type(sc, p, "text", "plain");
	mime_params_free(p->params, p->nparams);
	p->params = NULL;
	p->nparams = 0;
	p->flags |= MIME_PART_OPAQUE;
}

static void start_multipart(struct mime_scan *sc, struct mime_part *p)
{
	const struct mime_param *b = mime_part_param(p, "boundary");
	struct mp_frame *f = &sc->frames[sc->nframes];
	size_t blen = b != NULL ? strlen(b->value) : 0;

	if (blen == 0 || blen > MIME_MAX_BOUNDARY || part_depth(p) >= MIME_MAX_DEPTH
	    || sc->nframes > MIME_MAX_DEPTH) {
		make_opaque(sc, p);
		return;
	}
	memset(f, 0, sizeof(*f));
	f->mp = p;
	memcpy(f->boundary, b->value, blen);
	f->blen = blen;
	sc->nframes++;
	p->flags |= MIME_PART_MULTIPART;
}

static void start_message(struct mime_scan *sc, struct mime_part *p)
{
	struct mime_part *m;

	if (part_depth(p) >= MIME_MAX_DEPTH || sc->nparts >= MIME_MAX_PARTS) {
		make_opaque(sc, p);
		return;
	}
	if ((m = part_new(sc, p, p->body_off)) == NULL)
		return;
	m->flags = MIME_PART_MESSAGE;
	p->flags |= MIME_PART_RFC822;
	p->children = m;
	p->nchildren = 1;
}

/* The header of sc->cur ends; its body starts at body_off. */
static void header_done(struct mime_scan *sc, uint64_t body_off, uint64_t lf, bool blank)
{
	struct mime_part *p = sc->cur;

	p->hdr_size = body_off - p->hdr_off;
	p->body_off = body_off;
	p->body_lines = lf; /* LF count at the body start, until closed */
	if (!blank)
		p->flags |= MIME_PART_NO_BLANK;
	if (sc->htrunc)
		p->flags |= MIME_PART_HDR_TRUNCATED;
	parse_header(sc, p);
	sc->state = S_BODY;
	if (sc->failed)
		return;
	if (strcmp(p->type, "multipart") == 0)
		start_multipart(sc, p);
	else if (strcmp(p->type, "message") == 0 && strcmp(p->subtype, "rfc822") == 0)
		start_message(sc, p);
}

/* ---- lines, boundaries, closing ---- */

/* Index of the innermost open multipart whose boundary this line is, or
 * -1. *close is set for a close delimiter "--boundary--". */
static int boundary_match(const struct mime_scan *sc, bool *close)
{
	const char *l = sc->prefix;

	if (sc->plen < 3 || l[0] != '-' || l[1] != '-')
		return -1;
	for (int i = (int)sc->nframes - 1; i >= 0; i--) {
		const struct mp_frame *f = &sc->frames[i];
		size_t a = 2 + f->blen;
		if (f->closed || sc->plen < a || memcmp(l + 2, f->boundary, f->blen) != 0)
			continue;
		if (sc->plen >= a + 2 && l[a] == '-' && l[a + 1] == '-') {
			*close = true;
			return i;
		}
		if (sc->plen == a || strchr(" \t\r\n", l[a]) != NULL) {
			*close = false;
			return i;
		}
	}
	return -1;
}

static void close_part(struct mime_part *p, uint64_t end, uint64_t lf_end)
{
	if (end < p->body_off)
		end = p->body_off;
	p->body_size = end - p->body_off;
	p->body_lines = (p->body_size == 0 || lf_end < p->body_lines) ? 0 : lf_end - p->body_lines;
}

/* Closes sc->cur and its ancestors below `upto` (exclusive; NULL: all).
 * A part whose (empty) body starts after `end` ends at its body start, at
 * the start of the boundary line; its parents then end there too, and
 * the LF before that line is theirs. */
static void close_upto(struct mime_scan *sc, struct mime_part *upto, uint64_t end, uint64_t lf_end)
{
	for (struct mime_part *p = sc->cur; p != NULL && p != upto; p = p->parent) {
		close_part(p, end, lf_end);
		if (p->body_off + p->body_size > end) {
			end = p->body_off + p->body_size;
			lf_end++;
		}
	}
	sc->cur = upto;
}

static void add_child(struct mime_scan *sc, struct mp_frame *f)
{
	struct mime_part *mp = f->mp, *c = part_new(sc, mp, sc->pos);

	if (c == NULL)
		return;
	if (f->last == NULL)
		mp->children = c;
	else
		f->last->next = c;
	f->last = c;
	mp->nchildren++;
}

/* A line in a body: a boundary ends parts and may start one. */
static void body_line(struct mime_scan *sc)
{
	bool close = false;
	int fi = boundary_match(sc, &close);
	uint64_t k = sc->prev_crlf ? 2 : 1, end;
	struct mp_frame *f;

	if (fi < 0)
		return;
	f = &sc->frames[fi];
	end = sc->line_start >= k ? sc->line_start - k : 0;
	close_upto(sc, f->mp, end, sc->lf_at_line_start - 1);
	sc->nframes = (size_t)fi + 1;
	sc->state = S_BODY;
	if (close)
		f->closed = true;
	else if (sc->nparts < MIME_MAX_PARTS)
		add_child(sc, f);
}

/* Header bytes are kept up to MIME_MAX_HEADER: a field that does not fit
 * is dropped whole (with its continuation lines), later ones may still
 * fit. */
static void header_append(struct mime_scan *sc, const char *p, size_t n)
{
	if (sc->line_len == 0) { /* a new line: a continuation of a dropped field? */
		sc->hskip = sc->hdrop && (p[0] == ' ' || p[0] == '\t');
		sc->hdrop = sc->hskip;
	}
	if (sc->hskip)
		return;
	if (n > MIME_MAX_HEADER - sc->hlen) {
		sc->hlen = sc->hline;
		sc->hskip = sc->hdrop = sc->htrunc = true;
		return;
	}
	memcpy(sc->hbuf + sc->hlen, p, n);
	sc->hlen += n;
}

static bool line_is_empty(const struct mime_scan *sc)
{
	return sc->line_len == 1 || (sc->line_len == 2 && sc->prefix[0] == '\r');
}

/* A header without a body runs into a boundary: it ends before the line
 * end that belongs to the boundary line (RFC 2046 §5.1.1). */
static void header_cut(struct mime_scan *sc)
{
	uint64_t k = sc->prev_crlf ? 2 : 1, end = sc->line_start, lf = sc->lf_at_line_start;

	if (end >= sc->cur->hdr_off + k) {
		end -= k;
		lf--;
	}
	sc->hlen = sc->hline;
	while (sc->state == S_HEADER && !sc->failed)
		header_done(sc, end, lf, false);
}

static void end_line(struct mime_scan *sc)
{
	bool close;

	if (sc->state == S_HEADER) {
		if (line_is_empty(sc) && sc->prefix[sc->line_len - 1] == '\n') {
			header_done(sc, sc->pos, sc->nlf, true);
		} else if (boundary_match(sc, &close) >= 0) {
			header_cut(sc);
			body_line(sc);
		} else {
			sc->hline = sc->hlen;
			sc->hskip = false;
		}
	} else {
		body_line(sc);
	}
	sc->prev_crlf = sc->line_len >= 2 && sc->last == '\n' && sc->prev_last == '\r';
	sc->line_start = sc->pos;
	sc->lf_at_line_start = sc->nlf;
	sc->line_len = 0;
	sc->plen = 0;
}

static void scan_bytes(struct mime_scan *sc, const char *p, size_t n)
{
	size_t room = PREFIX_MAX - sc->plen;

	memcpy(sc->prefix + sc->plen, p, n < room ? n : room);
	sc->plen += n < room ? n : room;
	if (sc->state == S_HEADER)
		header_append(sc, p, n);
	sc->prev_last = n >= 2 ? p[n - 2] : sc->last;
	sc->last = p[n - 1];
	sc->pos += n;
	sc->line_len += n;
	if (p[n - 1] == '\n')
		sc->nlf++;
}

void mime_scan_feed(struct mime_scan *sc, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0 && !sc->failed) {
		const char *lf = memchr(p, '\n', len);
		size_t n = lf != NULL ? (size_t)(lf - p) + 1 : len;
		scan_bytes(sc, p, n);
		if (lf != NULL)
			end_line(sc);
		p += n;
		len -= n;
	}
}

struct mime_part *mime_scan_finish(struct mime_scan *sc)
{
	struct mime_part *root;

	if (sc == NULL)
		return NULL;
	if (sc->line_len > 0 && !sc->failed)
		end_line(sc);
	while (sc->state == S_HEADER && !sc->failed)
		header_done(sc, sc->pos, sc->nlf, false);
	if (sc->failed) {
		mime_scan_abort(sc);
		return NULL;
	}
	close_upto(sc, NULL, sc->pos, sc->nlf);
	root = sc->root;
	free(sc->hbuf);
	free(sc);
	return root;
}

void mime_scan_abort(struct mime_scan *sc)
{
	if (sc == NULL)
		return;
	mime_part_free(sc->root);
	free(sc->hbuf);
	free(sc);
}

struct mime_part *mime_scan_buffer(const void *buf, size_t len)
{
	struct mime_scan *sc = mime_scan_new();

	if (sc == NULL)
		return NULL;
	mime_scan_feed(sc, buf, len);
	return mime_scan_finish(sc);
}

/* ---- the tree ---- */

static void part_free_fields(struct mime_part *p)
{
	free(p->type);
	free(p->subtype);
	mime_params_free(p->params, p->nparams);
	free(p->id);
	free(p->description);
	free(p->encoding);
	free(p->md5);
	free(p->language);
	free(p->location);
	free(p->disposition);
	mime_params_free(p->disp_params, p->ndisp_params);
	for (int i = 0; i < MIME_ENV_COUNT; i++)
		free(p->env[i]);
}

void mime_part_free(struct mime_part *p)
{
	if (p != NULL && (p->flags & MIME_PART_ARENA)) {
		mime_arena_free(p);
		return;
	}
	while (p != NULL) {
		struct mime_part *next = p->next;
		mime_part_free(p->children);
		part_free_fields(p);
		free(p);
		p = next;
	}
}

const struct mime_param *mime_part_param(const struct mime_part *p, const char *name)
{
	for (uint32_t i = 0; i < p->nparams; i++) {
		if (strcmp(p->params[i].name, name) == 0)
			return &p->params[i];
	}
	return NULL;
}

static const struct mime_part *nth_child(const struct mime_part *p, unsigned long n)
{
	const struct mime_part *c = p->children;

	while (c != NULL && --n > 0)
		c = c->next;
	return c;
}

const struct mime_part *mime_part_find(const struct mime_part *root, const char *section,
    size_t len)
{
	const struct mime_part *cur = root;
	bool in_msg = true; /* cur is a message whose parts we number */
	size_t i = 0;

	while (i < len) {
		unsigned long n = 0;
		size_t start = i;
		for (; i < len && section[i] >= '0' && section[i] <= '9' && n < 100000; i++)
			n = n * 10 + (unsigned long)(section[i] - '0');
		if (i == start || n == 0 || (i < len && (section[i] != '.' || i + 1 == len)))
			return NULL;
		i += i < len ? 1 : 0;
		if (!in_msg && (cur->flags & MIME_PART_RFC822) && cur->children != NULL) {
			cur = cur->children;
			in_msg = true;
		}
		if (cur->flags & MIME_PART_MULTIPART)
			cur = nth_child(cur, n);
		else if (!in_msg || n != 1)
			return NULL;
		in_msg = false;
		if (cur == NULL)
			return NULL;
	}
	return cur;
}

const struct mime_part *mime_part_message(const struct mime_part *p)
{
	if ((p->flags & MIME_PART_RFC822) && p->children != NULL)
		return p->children;
	return NULL;
}

const struct mime_part *mime_section_message(const struct mime_part *root, const char *section,
    size_t len)
{
	const struct mime_part *p;

	if (len == 0)
		return root;
	p = mime_part_find(root, section, len);
	return p != NULL ? mime_part_message(p) : NULL;
}

const char *mime_part_env(const struct mime_part *msg, enum mime_env_field f)
{
	if (!(msg->flags & MIME_PART_MESSAGE) || (unsigned)f >= MIME_ENV_COUNT)
		return NULL;
	return msg->env[f];
}

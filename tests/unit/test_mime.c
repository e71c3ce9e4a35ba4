/* The MIME scanner: offsets and sections (RFC 3501 §6.4.5), malformed and
 * hostile input (100 KB lines, boundaries split across chunks, nesting 100
 * deep, huge headers), the blob form (round trip, every truncation and
 * corruption rejected or valid), and a bounded mutation fuzz. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "mailsnare/imap_bodystructure.h"
#include "mailsnare/imap_envelope.h"
#include "mailsnare/mime.h"

static const char nested[] =
    "From: a@example.com\r\n"
    "Content-Type: multipart/mixed; boundary=outer\r\n"
    "\r\n"
    "preamble\r\n"
    "--outer\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "part one\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner\r\n"
    "Content-Type: multipart/alternative; boundary=inner\r\n"
    "\r\n"
    "--inner\r\n"
    "\r\n"
    "inner one\r\n"
    "--inner\r\n"
    "Content-Type: text/html\r\n"
    "\r\n"
    "<i>two</i>\r\n"
    "--inner--\r\n"
    "--outer\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: single\r\n"
    "\r\n"
    "single body\r\n"
    "--outer--\r\n"
    "epilogue\r\n";

/* The bytes of a range of `nested`. */
static char *range(uint64_t off, uint64_t size)
{
	return strndup(nested + off, size);
}

static const struct mime_part *find(const struct mime_part *root, const char *sec)
{
	return mime_part_find(root, sec, strlen(sec));
}

#define ASSERT_DEEP_BODY(root, sec, text) do { \
		const struct mime_part *p_ = find(root, sec); \
		cr_assert_not_null(p_, "section %s", sec); \
		char *b_ = strndup(deep + p_->body_off, p_->body_size); \
		cr_assert_str_eq(b_, text, "section %s", sec); \
		free(b_); \
	} while (0)

#define ASSERT_BODY(root, sec, text) do { \
		const struct mime_part *p_ = find(root, sec); \
		cr_assert_not_null(p_, "section %s", sec); \
		char *b_ = range(p_->body_off, p_->body_size); \
		cr_assert_str_eq(b_, text, "section %s", sec); \
		free(b_); \
	} while (0)

Test(mime, sections_and_offsets)
{
	struct mime_part *root = mime_scan_buffer(nested, strlen(nested));

	cr_assert_eq(root->nchildren, 3);
	ASSERT_BODY(root, "1", "part one");
	ASSERT_BODY(root, "2.1", "inner one");
	ASSERT_BODY(root, "2.2", "<i>two</i>");
	ASSERT_BODY(root, "3.1", "single body");
	ASSERT_BODY(root, "3", "Subject: single\r\n\r\nsingle body");
	cr_assert_null(find(root, "4"));
	cr_assert_null(find(root, "1.1"));
	cr_assert_null(find(root, "2.3"));
	cr_assert_null(find(root, "3.2"));
	cr_assert_null(find(root, "2."));
	cr_assert_null(find(root, "0"));
	cr_assert_null(find(root, "x"));
	cr_assert_eq(find(root, ""), root);
	/* 2.HEADER / 2.TEXT: the embedded message */
	{
		const struct mime_part *m = mime_part_message(find(root, "2"));
		char *h = range(m->hdr_off, m->hdr_size);
		cr_assert_str_eq(h, "Subject: inner\r\nContent-Type: multipart/alternative; boundary=inner\r\n\r\n");
		cr_assert_str_eq(mime_part_env(m, MIME_ENV_SUBJECT), "inner");
		free(h);
		h = range(find(root, "2.2")->hdr_off, find(root, "2.2")->hdr_size);
		cr_assert_str_eq(h, "Content-Type: text/html\r\n\r\n"); /* 2.2.MIME */
		free(h);
	}
	cr_assert_null(mime_part_message(find(root, "1")));
	cr_assert_eq(root->body_off, strstr(nested, "\r\n\r\n") - nested + 4);
	cr_assert_eq(root->body_off + root->body_size, strlen(nested));
	mime_part_free(root);
}

/* message/rfc822 inside message/rfc822 and inside a multipart inside one. */
static const char deep[] =
    "From: Outer <outer@example.test>\r\n"
    "Subject: outer\r\n"
    "Content-Type: multipart/mixed; boundary=b1\r\n"
    "\r\n"
    "--b1\r\n"
    "Content-Type: text/plain\r\n"
    "\r\n"
    "first part\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: middle\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: deepest\r\n"
    "\r\n"
    "deep body\r\n"
    "--b1\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: inner multi\r\n"
    "Content-Type: multipart/mixed; boundary=b2\r\n"
    "\r\n"
    "--b2\r\n"
    "\r\n"
    "b2 text\r\n"
    "--b2\r\n"
    "Content-Type: message/rfc822\r\n"
    "\r\n"
    "Subject: in b2\r\n"
    "\r\n"
    "b2 body\r\n"
    "--b2--\r\n"
    "--b1--\r\n";

/* HEADER and TEXT of the message section `sec` names (NULL: none). */
static void assert_msg(const struct mime_part *root, const char *sec, const char *hdr,
    const char *text)
{
	const struct mime_part *m = mime_section_message(root, sec, strlen(sec));
	char *h, *t;

	if (hdr == NULL) {
		cr_assert_null(m, "section %s", sec);
		return;
	}
	cr_assert_not_null(m, "section %s", sec);
	h = strndup(deep + m->hdr_off, m->hdr_size);
	t = strndup(deep + m->body_off, m->body_size);
	cr_assert_str_eq(h, hdr, "%s.HEADER", sec);
	cr_assert_str_eq(t, text, "%s.TEXT", sec);
	free(h);
	free(t);
}

Test(mime, header_and_text_of_encapsulated_messages)
{
	struct mime_part *root = mime_scan_buffer(deep, strlen(deep));
	const struct mime_part *p;
	char *h;

	cr_assert_not_null(root);
	assert_msg(root, "", "From: Outer <outer@example.test>\r\nSubject: outer\r\n"
	    "Content-Type: multipart/mixed; boundary=b1\r\n\r\n", root->body_off + deep);
	assert_msg(root, "2", "Subject: middle\r\nContent-Type: message/rfc822\r\n\r\n",
	    "Subject: deepest\r\n\r\ndeep body");
	/* 2.1 is the message/rfc822 body of the message in 2: its HEADER is
	 * the header of the message inside it, one level down. */
	assert_msg(root, "2.1", "Subject: deepest\r\n\r\n", "deep body");
	assert_msg(root, "2.1.1", NULL, NULL);
	assert_msg(root, "3", "Subject: inner multi\r\n"
	    "Content-Type: multipart/mixed; boundary=b2\r\n\r\n",
	    "--b2\r\n\r\nb2 text\r\n--b2\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Subject: in b2\r\n\r\nb2 body\r\n--b2--");
	assert_msg(root, "3.2", "Subject: in b2\r\n\r\n", "b2 body");
	assert_msg(root, "3.1", NULL, NULL);
	assert_msg(root, "1", NULL, NULL);
	assert_msg(root, "4", NULL, NULL);
	assert_msg(root, "2.2", NULL, NULL);
	/* MIME stays the part's own header; 2.1.MIME is the header of the
	 * message in 2 (Dovecot's choice for a message/rfc822 body). */
	p = find(root, "2");
	h = strndup(deep + p->hdr_off, p->hdr_size);
	cr_assert_str_eq(h, "Content-Type: message/rfc822\r\n\r\n");
	free(h);
	p = find(root, "2.1");
	h = strndup(deep + p->hdr_off, p->hdr_size);
	cr_assert_str_eq(h, "Subject: middle\r\nContent-Type: message/rfc822\r\n\r\n");
	free(h);
	ASSERT_DEEP_BODY(root, "2.1.1", "deep body");
	ASSERT_DEEP_BODY(root, "3.2.1", "b2 body");
	mime_part_free(root);
}

/* A message that is itself message/rfc822: 1.HEADER is the enclosed one's. */
Test(mime, top_level_message_rfc822)
{
	static const char m[] = "Subject: top\r\nContent-Type: message/rfc822\r\n\r\n"
	    "Subject: enclosed\r\n\r\nenclosed body\r\n";
	struct mime_part *root = mime_scan_buffer(m, strlen(m));
	const struct mime_part *e = mime_section_message(root, "1", 1);
	char *h;

	cr_assert_not_null(e);
	cr_assert_neq(e, root);
	h = strndup(m + e->hdr_off, e->hdr_size);
	cr_assert_str_eq(h, "Subject: enclosed\r\n\r\n");
	free(h);
	h = strndup(m + e->body_off, e->body_size);
	cr_assert_str_eq(h, "enclosed body\r\n");
	free(h);
	cr_assert_eq(mime_section_message(root, "", 0), root);
	cr_assert_null(mime_section_message(root, "1.1", 3));
	mime_part_free(root);
}

Test(mime, single_part_message_sections)
{
	static const char m[] = "Subject: x\r\n\r\nbody\r\n";
	struct mime_part *root = mime_scan_buffer(m, strlen(m));

	cr_assert_eq(find(root, "1"), root);
	cr_assert_null(find(root, "1.1"));
	cr_assert_null(find(root, "2"));
	cr_assert_eq(root->hdr_size, 14);
	cr_assert_eq(root->body_size, 6);
	cr_assert_eq(root->body_lines, 1);
	mime_part_free(root);
}

/* Builds a multipart message whose body line is n bytes long. */
static char *long_line_msg(size_t n, size_t *len)
{
	static const char head[] = "Subject: long\r\nX-Long: ";
	static const char mid[] = "\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n--b\r\n\r\n";
	static const char tail[] = "\r\n--b--\r\n";
	char *m = malloc(sizeof(head) + sizeof(mid) + sizeof(tail) + 2 * n), *p = m;

	p = mempcpy(p, head, sizeof(head) - 1);
	memset(p, 'h', n);
	p = mempcpy(p + n, mid, sizeof(mid) - 1);
	memset(p, 'x', n);
	p = mempcpy(p + n, tail, sizeof(tail) - 1);
	*len = (size_t)(p - m);
	return m;
}

Test(mime, lines_of_100k)
{
	size_t len, n = 100 * 1024;
	char *m = long_line_msg(n, &len);

	for (size_t chunk = 4093; chunk <= len; chunk = chunk * 3 + 1) {
		struct mime_scan *sc = mime_scan_new();
		struct mime_part *root;
		for (size_t i = 0; i < len; i += chunk)
			mime_scan_feed(sc, m + i, len - i < chunk ? len - i : chunk);
		root = mime_scan_finish(sc);
		cr_assert_eq(root->nchildren, 1);
		cr_assert_eq(root->children->body_size, n);
		cr_assert_eq(root->children->body_lines, 0);
		cr_assert_eq(root->hdr_size, 15 + 8 + n + 2 + 45 + 2);
		cr_assert_eq(root->flags & MIME_PART_HDR_TRUNCATED, MIME_PART_HDR_TRUNCATED);
		cr_assert_str_eq(root->subtype, "mixed");
		cr_assert_str_eq(mime_part_env(root, MIME_ENV_SUBJECT), "long");
		mime_part_free(root);
	}
	free(m);
}

Test(mime, boundary_split_at_every_offset)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=\"0123456789012345678901234567890123456789"
	    "012345678901234567890123456789\"\r\n\r\n"
	    "--0123456789012345678901234567890123456789012345678901234567890123456789\r\n\r\n"
	    "a\r\n"
	    "--0123456789012345678901234567890123456789012345678901234567890123456789--\r\n";
	size_t len = strlen(m);

	for (size_t cut = 0; cut <= len; cut++) {
		struct mime_scan *sc = mime_scan_new();
		struct mime_part *root;
		mime_scan_feed(sc, m, cut);
		mime_scan_feed(sc, m + cut, len - cut);
		root = mime_scan_finish(sc);
		cr_assert_eq(root->nchildren, 1, "cut at %zu", cut);
		cr_assert_eq(root->children->body_size, 1);
		cr_assert_eq(root->children->body_lines, 0);
		mime_part_free(root);
	}
}

Test(mime, boundary_prefix_of_another_is_not_a_boundary)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\n\r\n"
	    "--bx is text\r\n"
	    "--b \t\r\n\r\n"
	    "two\r\n"
	    "--b--";
	struct mime_part *root = mime_scan_buffer(m, strlen(m));

	cr_assert_eq(root->nchildren, 2);
	cr_assert_eq(root->children->body_size, 12);
	cr_assert_eq(root->children->next->body_size, 3);
	mime_part_free(root);
}

static unsigned tree_depth(const struct mime_part *p)
{
	unsigned d = 0;

	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		unsigned cd = tree_depth(c) + 1;
		d = cd > d ? cd : d;
	}
	return d;
}

static char *deep_msg(int levels, bool rfc822, size_t *len)
{
	size_t cap = (size_t)levels * 128 + 256, n = 0;
	char *m = malloc(cap);

	for (int i = 0; i < levels; i++) {
		if (rfc822)
			n += (size_t)sprintf(m + n, "Subject: level %d\r\nContent-Type: message/rfc822\r\n\r\n", i);
		else
			n += (size_t)sprintf(m + n, "Content-Type: multipart/mixed; boundary=\"l%d\"\r\n\r\n--l%d\r\n", i, i);
	}
	n += (size_t)sprintf(m + n, "Content-Type: text/plain\r\n\r\ndeep\r\n");
	for (int i = levels - 1; i >= 0 && !rfc822; i--)
		n += (size_t)sprintf(m + n, "--l%d--\r\n", i);
	*len = n;
	return m;
}

Test(mime, nesting_100_deep_is_bounded)
{
	for (int rfc822 = 0; rfc822 <= 1; rfc822++) {
		size_t len;
		char *m = deep_msg(100, rfc822, &len);
		struct mime_part *root = mime_scan_buffer(m, len);
		const struct mime_part *p = root;
		cr_assert_not_null(root);
		cr_assert_eq(tree_depth(root), MIME_MAX_DEPTH);
		while (p->children != NULL)
			p = p->children;
		cr_assert(p->flags & MIME_PART_OPAQUE);
		cr_assert_str_eq(p->type, "text");
		cr_assert_eq(p->body_off + p->body_size <= len, true);
		mime_part_free(root);
		free(m);
	}
}

Test(mime, no_blank_line_and_eof_in_header)
{
	static const char m[] = "Subject: only\r\nX-Cut: no line end";
	struct mime_part *root = mime_scan_buffer(m, strlen(m));

	cr_assert_eq(root->hdr_size, strlen(m));
	cr_assert_eq(root->body_off, strlen(m));
	cr_assert_eq(root->body_size, 0);
	cr_assert(root->flags & MIME_PART_NO_BLANK);
	cr_assert_str_eq(mime_part_env(root, MIME_ENV_SUBJECT), "only");
	mime_part_free(root);
}

Test(mime, part_limit)
{
	size_t cap = (MIME_MAX_PARTS + 10) * 8 + 128, n = 0;
	char *m = malloc(cap);
	struct mime_part *root;

	n += (size_t)sprintf(m, "Content-Type: multipart/mixed; boundary=b\r\n\r\n");
	for (int i = 0; i < MIME_MAX_PARTS + 5; i++)
		n += (size_t)sprintf(m + n, "--b\r\n\r\n");
	root = mime_scan_buffer(m, n);
	cr_assert_eq(root->nchildren, MIME_MAX_PARTS - 1);
	mime_part_free(root);
	free(m);
}

static void check_invariants(const struct mime_part *p, uint64_t msglen)
{
	cr_assert_eq(p->hdr_off + p->hdr_size, p->body_off);
	cr_assert(p->body_off + p->body_size <= msglen);
	cr_assert(p->body_lines <= p->body_size);
	cr_assert_not_null(p->type);
	cr_assert_not_null(p->subtype);
	for (const struct mime_part *c = p->children; c != NULL; c = c->next) {
		cr_assert(c->hdr_off >= p->body_off);
		cr_assert(c->body_off + c->body_size <= p->body_off + p->body_size);
		check_invariants(c, msglen);
	}
}

Test(mime, blob_round_trip_and_truncations)
{
	struct mime_part *root = mime_scan_buffer(nested, strlen(nested)), *back;
	unsigned char *blob, *b2;
	size_t len, l2;

	cr_assert(mime_tree_serialize(root, &blob, &len));
	back = mime_tree_parse(blob, len);
	cr_assert_not_null(back);
	cr_assert(mime_tree_serialize(back, &b2, &l2));
	cr_assert(l2 == len && memcmp(blob, b2, len) == 0);
	check_invariants(back, strlen(nested));
	for (size_t n = 0; n < len; n++)
		cr_assert_null(mime_tree_parse(blob, n), "prefix of %zu accepted", n);
	for (size_t i = 0; i < len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			struct mime_part *r;
			blob[i] ^= (unsigned char)(1 << bit);
			r = mime_tree_parse(blob, len);
			if (r != NULL)
				check_invariants(r, UINT64_MAX / 2);
			mime_part_free(r);
			blob[i] ^= (unsigned char)(1 << bit);
		}
	}
	free(blob);
	free(b2);
	mime_part_free(root);
	mime_part_free(back);
}

static char *structure_text(const struct mime_part *root)
{
	struct evbuffer *o = evbuffer_new();
	size_t n;
	char *s;

	cr_assert_eq(imap_envelope_write(root, o), 0);
	cr_assert_eq(imap_bodystructure_write(root, true, o), 0);
	n = evbuffer_get_length(o);
	s = malloc(n + 1);
	evbuffer_remove(o, s, n);
	s[n] = '\0';
	evbuffer_free(o);
	return s;
}

/* A parsed tree lives in an arena of 4 KB chunks: 400 parts and a 9,000
 * byte parameter need many chunks and one of their own; the tree reads
 * and writes back exactly as the scanned one, and its arena flag is not
 * stored. */
Test(mime, blob_of_a_large_tree)
{
	size_t cap = 400 * 128 + 20000, n = 0, len, l2;
	char *m = malloc(cap), *a, *b;
	struct mime_part *root, *back;
	unsigned char *blob, *b2;

	n += (size_t)snprintf(m + n, cap - n, "Subject: many\r\nFrom: A <a@b.test>\r\n"
	    "Content-Type: multipart/mixed; boundary=B; x-long=\"");
	for (int i = 0; i < 9000; i++)
		m[n++] = (char)('a' + i % 26);
	n += (size_t)snprintf(m + n, cap - n, "\"\r\n\r\n");
	for (int i = 0; i < 400; i++)
		n += (size_t)snprintf(m + n, cap - n, "--B\r\nContent-Type: text/plain; name=p%d\r\n"
		    "Content-Description: part %d\r\n\r\nbody %d\r\n", i, i, i);
	n += (size_t)snprintf(m + n, cap - n, "--B--\r\n");
	root = mime_scan_buffer(m, n);
	cr_assert_eq(root->nchildren, 400);
	cr_assert(mime_tree_serialize(root, &blob, &len));
	back = mime_tree_parse(blob, len);
	cr_assert_not_null(back);
	check_invariants(back, n);
	cr_assert_eq(strlen(mime_part_param(back, "x-long")->value), 9000);
	a = structure_text(root);
	b = structure_text(back);
	cr_assert_str_eq(a, b);
	cr_assert(mime_tree_serialize(back, &b2, &l2));
	cr_assert(l2 == len && memcmp(blob, b2, len) == 0, "the arena flag is not stored");
	free(a);
	free(b);
	free(blob);
	free(b2);
	free(m);
	mime_part_free(root);
	mime_part_free(back);
}

static struct mime_part *scan_chunked_rand(const char *m, size_t len, unsigned *seed)
{
	struct mime_scan *sc = mime_scan_new();

	for (size_t i = 0; i < len;) {
		size_t n = 1 + (size_t)rand_r(seed) % 40;
		n = n < len - i ? n : len - i;
		mime_scan_feed(sc, m + i, n);
		i += n;
	}
	return mime_scan_finish(sc);
}

/* Random mutations of the nested message (fixed seed, bounded time): the
 * scanner never fails and always yields a consistent tree whose blob
 * parses back. */
Test(mime, mutation_fuzz)
{
	size_t base = strlen(nested);
	char *m = malloc(base * 2);
	unsigned seed = 12345;
	static const char pieces[][12] = { "--outer", "--inner--", "\r\n", "\n", "\r\n\r\n",
		"Content-Type", ": message/", "rfc822", "multipart/", "boundary=", "\"", "=?", ";" };

	for (int iter = 0; iter < 3000; iter++) {
		size_t len = base;
		struct mime_part *root, *back;
		unsigned char *blob;
		size_t bl;
		memcpy(m, nested, base);
		for (int k = rand_r(&seed) % 8; k >= 0; k--) {
			size_t at = (size_t)rand_r(&seed) % len;
			int op = rand_r(&seed) % 3;
			const char *pc = pieces[rand_r(&seed) % (int)(sizeof(pieces) / sizeof(pieces[0]))];
			size_t pl = strlen(pc);
			if (op == 0)
				m[at] = (char)rand_r(&seed);
			else if (op == 1 && len > 1)
				memmove(m + at, m + at + 1, --len - at);
			else if (len + pl < base * 2) {
				memmove(m + at + pl, m + at, len - at);
				memcpy(m + at, pc, pl);
				len += pl;
			}
		}
		root = scan_chunked_rand(m, len, &seed);
		cr_assert_not_null(root);
		check_invariants(root, len);
		cr_assert(mime_tree_serialize(root, &blob, &bl));
		back = mime_tree_parse(blob, bl);
		cr_assert_not_null(back, "iteration %d", iter);
		{
			struct evbuffer *o = evbuffer_new();
			cr_assert_eq(imap_bodystructure_write(back, true, o), 0);
			cr_assert_eq(imap_envelope_write(back, o), 0);
			cr_assert_gt(evbuffer_get_length(o), 0);
			evbuffer_free(o);
		}
		free(blob);
		mime_part_free(back);
		mime_part_free(root);
	}
	free(m);
}

/* The one preparation of a message for the store (ingest.c): the list
 * columns from the MIME scanner's own header fields (the cases of the old
 * header.c: CRLF and bare LF, folding, odd spacing, prefixes of other field
 * names, 8-bit values, duplicates, the body never read), line-end
 * normalisation, the size limit, the spool read back, the structure and
 * the attachment flag. Every message is also fed one byte at a time. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/ingest.h"
#include "mailsnare/mime.h"

#define LIT(s) s, (sizeof(s) - 1)

struct prepared {
	struct ingest *in;
	struct store_new_message m;
};

static void prepare_opts(struct prepared *p, const char *buf, size_t len,
    const struct ingest_options *o, size_t step)
{
	size_t i, n;

	memset(p, 0, sizeof(*p));
	p->in = ingest_new(o);
	cr_assert_not_null(p->in);
	for (i = 0; i < len; i += n) {
		n = len - i < step ? len - i : step;
		ingest_write(p->in, buf + i, n);
	}
	cr_assert_eq(ingest_finish(p->in, &p->m), 0);
}

/* Prepares the message whole and byte by byte; both give the same
 * columns (checked by the callers on the whole one). */
static void prepare(struct prepared *p, const char *buf, size_t len)
{
	struct ingest_options o = { .mem_limit = 64 };
	struct prepared q;

	prepare_opts(p, buf, len, &o, len ? len : 1);
	prepare_opts(&q, buf, len, &o, 1);
#define SAME(f) cr_assert((p->m.f == NULL && q.m.f == NULL) || \
    (p->m.f && q.m.f && strcmp(p->m.f, q.m.f) == 0), #f)
	SAME(hdr_from);
	SAME(hdr_to);
	SAME(hdr_subject);
	SAME(hdr_date);
	SAME(keywords);
#undef SAME
	cr_assert_eq(p->m.structure_len, q.m.structure_len);
	cr_assert_eq(memcmp(p->m.structure, q.m.structure, p->m.structure_len), 0);
	ingest_free(q.in);
}

static char *read_back(struct prepared *p, size_t *len)
{
	char *buf = malloc(p->m.src.size + 1);
	size_t off = 0;
	ssize_t r;

	cr_assert_not_null(buf);
	while ((r = p->m.src.read(p->m.src.arg, buf + off, p->m.src.size + 1 - off)) > 0)
		off += (size_t)r;
	cr_assert_eq(r, 0);
	*len = off;
	return buf;
}

static const char crlf_msg[] =
    "Received: from x\r\n"
    "\tby y; Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    "fROM: Alice <alice@example.com>\r\n"
    "To-Foo: wrong\r\n"
    "To: bob@example.com\r\n"
    "Subject: Hello\r\n"
    " world\r\n"
    "\r\n"
    "Subject: not a header, body text\r\n"
    "Date: neither\r\n";

Test(ingest, fields_case_insensitive_prefix_folded_body_unread)
{
	struct prepared p;

	prepare(&p, LIT(crlf_msg));
	cr_assert_str_eq(p.m.hdr_from, "Alice <alice@example.com>");
	cr_assert_str_eq(p.m.hdr_to, "bob@example.com");
	cr_assert_str_eq(p.m.hdr_subject, "Hello world");
	cr_assert_null(p.m.hdr_date);
	cr_assert_eq(p.m.src.size, sizeof(crlf_msg) - 1);
	ingest_free(p.in);
}

Test(ingest, fields_bare_lf_value_on_next_line)
{
	static const char m[] = "Subject:\n  first\n\tsecond  \nTo: y\n\nbody";
	struct prepared p;

	prepare(&p, LIT(m));
	cr_assert_str_eq(p.m.hdr_subject, "first\tsecond");
	cr_assert_str_eq(p.m.hdr_to, "y");
	ingest_free(p.in);
}

Test(ingest, fields_tight_empty_blank)
{
	static const char m[] = "Subject:tight\r\nFrom:\r\nTo:   \r\n\r\n";
	struct prepared p;

	prepare(&p, LIT(m));
	cr_assert_str_eq(p.m.hdr_subject, "tight");
	cr_assert_str_eq(p.m.hdr_from, "");
	cr_assert_str_eq(p.m.hdr_to, "");
	cr_assert_null(p.m.hdr_date);
	ingest_free(p.in);
}

Test(ingest, fields_without_body_or_final_newline)
{
	struct prepared p;

	prepare(&p, LIT("From: a\r\nSubject: last"));
	cr_assert_str_eq(p.m.hdr_subject, "last");
	ingest_free(p.in);
	prepare(&p, LIT("Subject: last\r\n"));
	cr_assert_str_eq(p.m.hdr_subject, "last");
	ingest_free(p.in);
	prepare(&p, LIT("Subject: a\r\n b"));
	cr_assert_str_eq(p.m.hdr_subject, "a b");
	ingest_free(p.in);
	prepare(&p, "", 0);
	cr_assert_null(p.m.hdr_subject);
	cr_assert_eq(p.m.src.size, 0);
	ingest_free(p.in);
}

Test(ingest, fields_first_of_duplicates_and_8bit)
{
	static const char m[] = "Subject: Gr\xc3\xbc\xc3\x9f""e \xff\r\nSubject: two\r\n"
	    "Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n\r\n";
	struct prepared p;

	prepare(&p, LIT(m));
	cr_assert_str_eq(p.m.hdr_subject, "Gr\xc3\xbc\xc3\x9f""e \xff");
	cr_assert_str_eq(p.m.hdr_date, "Mon, 1 Jan 2024 00:00:00 +0000");
	ingest_free(p.in);
}

Test(ingest, fields_cut_on_a_character_boundary)
{
	char m[2048];
	size_t n;
	struct prepared p;

	/* "Subject: " then 'a' and 300 two-byte characters: the cut at
	 * INGEST_FIELD_MAX (511) would split one; it falls before it. */
	n = (size_t)snprintf(m, sizeof(m), "Subject: a");
	for (int i = 0; i < 300; i++) {
		m[n++] = '\xc3';
		m[n++] = '\xa9';
	}
	memcpy(m + n, "\r\n\r\n", 4);
	n += 4;
	prepare(&p, m, n);
	cr_assert_eq(strlen(p.m.hdr_subject), 511);
	cr_assert_eq(memcmp(p.m.hdr_subject, m + 9, 511), 0);
	ingest_free(p.in);
	m[9] = 'b';
	memmove(m + 10, m + 9, n - 9);  /* "ab" + characters: 511 is a boundary - 1 */
	prepare(&p, m, n + 1);
	cr_assert_eq(strlen(p.m.hdr_subject), 510);
	ingest_free(p.in);
}

Test(ingest, fields_continuation_and_garbage_lines)
{
	/* A line that starts with WSP is never a field of its own. */
	static const char m[] = "X: a\r\n To: folded\r\nnot a field\r\nTo: real\r\n\r\n";
	struct prepared p;

	prepare(&p, LIT(m));
	cr_assert_str_eq(p.m.hdr_to, "real");
	ingest_free(p.in);
}

/* X-Tags become keywords (msg_tags.h); the spool still reads back from
 * its start, in memory and spilled to a file (mem_limit 64). */
Test(ingest, x_tags_header_and_read_back)
{
	static const char m[] =
	    "Subject: s\r\n"
	    "X-Tags: Order Confirmation, urgent,\r\n"
	    "  URGENT , caf\xc3\xa9!,,  \r\n"
	    "X-Tags: second field ignored\r\n"
	    "\r\n"
	    "X-Tags: body, not header\r\n";
	struct prepared p;
	size_t len;
	char *back;

	prepare(&p, LIT(m));
	cr_assert_str_eq(p.m.keywords, "Order_Confirmation urgent caf");
	back = read_back(&p, &len);
	cr_assert_eq(len, sizeof(m) - 1);
	cr_assert_eq(memcmp(back, m, len), 0);
	free(back);
	ingest_free(p.in);
	prepare(&p, LIT(crlf_msg));
	cr_assert_null(p.m.keywords);
	ingest_free(p.in);
	prepare(&p, LIT("X-Tags: , ,!\r\n\r\nbody"));
	cr_assert_null(p.m.keywords);
	ingest_free(p.in);
}

Test(ingest, bytes_read_back_from_memory_and_file)
{
	char big[10000];
	size_t len;
	char *back;
	struct prepared p;

	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (char)('a' + i % 26);
	memcpy(big, "Subject: s\r\n\r\n", 14);
	prepare(&p, big, sizeof(big));     /* mem_limit 64: spilled */
	back = read_back(&p, &len);
	cr_assert_eq(len, sizeof(big));
	cr_assert_eq(memcmp(back, big, len), 0);
	free(back);
	ingest_free(p.in);
}

Test(ingest, crlf_normalised_only_when_asked)
{
	static const char m[] = "Subject: x\n\nline\nlast\r";
	struct ingest_options o = { .mem_limit = 4096, .crlf = true };
	struct prepared p;
	size_t len;
	char *back;

	prepare_opts(&p, LIT(m), &o, 1);
	back = read_back(&p, &len);
	cr_assert_eq(len, sizeof("Subject: x\r\n\r\nline\r\nlast\r") - 1);
	cr_assert_eq(memcmp(back, "Subject: x\r\n\r\nline\r\nlast\r", len), 0);
	cr_assert_eq(p.m.src.size, len);
	cr_assert_str_eq(p.m.hdr_subject, "x");
	free(back);
	ingest_free(p.in);
	o.crlf = false;
	prepare_opts(&p, LIT(m), &o, 3);
	back = read_back(&p, &len);
	cr_assert_eq(len, sizeof(m) - 1);
	cr_assert_eq(memcmp(back, m, len), 0);
	free(back);
	ingest_free(p.in);
}

Test(ingest, size_limit_and_nul)
{
	struct ingest_options o = { .mem_limit = 16, .max_size = 10 };
	struct store_new_message m = { 0 };
	struct ingest *in = ingest_new(&o);

	ingest_write(in, "0123456789", 10);
	cr_assert_eq(ingest_status(in), INGEST_OK);
	cr_assert_not(ingest_saw_nul(in));
	ingest_write(in, "x\0", 2);
	cr_assert_eq(ingest_status(in), INGEST_TOO_BIG);
	cr_assert(ingest_saw_nul(in));
	cr_assert_eq(ingest_size(in), 10);
	cr_assert_eq(ingest_finish(in, &m), -1);
	ingest_free(in);
	/* SMTP moves the limit past its own Received: header. */
	in = ingest_new(&o);
	ingest_write(in, "0123456789", 10);
	ingest_set_max_size(in, 12);
	ingest_write(in, "ab", 2);
	cr_assert_eq(ingest_status(in), INGEST_OK);
	ingest_free(in);   /* unfinished: freed as well */
}

Test(ingest, structure_and_attachment)
{
	static const char m[] =
	    "Content-Type: multipart/mixed; boundary=b\r\n\r\n"
	    "--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
	    "--b\r\nContent-Type: application/pdf; name=x.pdf\r\n\r\n%PDF\r\n"
	    "--b--\r\n";
	struct prepared p;
	struct mime_part *root;

	prepare(&p, LIT(m));
	cr_assert(p.m.has_attachment);
	root = mime_tree_parse(p.m.structure, p.m.structure_len);
	cr_assert_not_null(root);
	cr_assert_eq(root->nchildren, 2);
	cr_assert_str_eq(root->children->next->subtype, "pdf");
	mime_part_free(root);
	ingest_free(p.in);
	prepare(&p, LIT("Subject: plain\r\n\r\ntext\r\n"));
	cr_assert_not(p.m.has_attachment);
	ingest_free(p.in);
}

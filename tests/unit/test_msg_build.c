#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime.h"
#include "mailsnare/msg_build.h"

static struct msg_build base(void)
{
	static const struct msg_build_addr to[] = { { "Jane Doe", "jane@example.com" } };
	struct msg_build b = {
		.from = { "John", "john@example.com" },
		.to = to, .nto = 1,
		.subject = "Hello",
		.text = "Hi there",
		.date = "Wed, 02 Dec 2026 00:00:00 +0000",
		.message_id = "id1@mailsnare",
		.seed = 1,
	};
	return b;
}

static char *build_ok(const struct msg_build *b, size_t *len)
{
	char err[256] = "", *out = NULL;

	cr_assert_eq(msg_build(b, &out, len, err, sizeof(err)), 0, "%s", err);
	cr_assert_eq(strlen(out), *len);
	return out;
}

Test(msg_build, text_only_exact)
{
	struct msg_build b = base();
	size_t len;
	char *out = build_ok(&b, &len);

	cr_expect_str_eq(out,
	    "From: John <john@example.com>\r\n"
	    "To: Jane Doe <jane@example.com>\r\n"
	    "Subject: Hello\r\n"
	    "Date: Wed, 02 Dec 2026 00:00:00 +0000\r\n"
	    "Message-ID: <id1@mailsnare>\r\n"
	    "MIME-Version: 1.0\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Content-Transfer-Encoding: quoted-printable\r\n"
	    "\r\n"
	    "Hi there\r\n");
	free(out);
}

Test(msg_build, encoded_words_and_quoted_names)
{
	static const struct msg_build_addr cc[] = { { "Doe, Jane", "j@example.com" } };
	struct msg_build b = base();
	size_t len;
	char *out;

	b.from.name = "Jöhn";
	b.subject = "Grüße";
	b.cc = cc;
	b.ncc = 1;
	out = build_ok(&b, &len);
	cr_expect(strstr(out, "From: =?UTF-8?B?SsO2aG4=?= <john@example.com>\r\n") != NULL, "%s", out);
	cr_expect(strstr(out, "Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n") != NULL, "%s", out);
	cr_expect(strstr(out, "Cc: \"Doe, Jane\" <j@example.com>\r\n") != NULL, "%s", out);
	free(out);
}

Test(msg_build, quoted_printable_lines)
{
	struct msg_build b = base();
	char line[200];
	size_t len;
	char *out, *body;

	memset(line, 'a', 150);
	line[150] = '\0';
	b.text = line;
	out = build_ok(&b, &len);
	body = strstr(out, "\r\n\r\n") + 4;
	cr_expect_eq(strncmp(body, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa=\r\n",
	    78), 0, "%s", body);
	free(out);
	b.text = "x = 1 \nend";
	out = build_ok(&b, &len);
	cr_expect(strstr(out, "\r\n\r\nx =3D 1=20\r\nend\r\n") != NULL, "%s", out);
	free(out);
}

Test(msg_build, structure_scans_as_mixed_related_alternative)
{
	struct msg_build_att atts[2] = {
		{ "a.pdf", "application/pdf", NULL, "PDFDATA", 7 },
		{ "i.png", "image/png", "c1", "\x89PNG", 4 },
	};
	struct msg_build b = base();
	const struct mime_part *p;
	struct mime_part *root;
	size_t len;
	char *out;

	b.html = "<p>hi</p>";
	b.atts = atts;
	b.natts = 2;
	out = build_ok(&b, &len);
	root = mime_scan_buffer(out, len);
	cr_assert_not_null(root);
	cr_expect_str_eq(root->subtype, "mixed");
	p = mime_part_find(root, "1", 1);
	cr_expect_str_eq(p->subtype, "related");
	p = mime_part_find(root, "1.1", 3);
	cr_expect_str_eq(p->subtype, "alternative");
	p = mime_part_find(root, "1.1.2", 5);
	cr_expect_str_eq(p->subtype, "html");
	p = mime_part_find(root, "1.2", 3);
	cr_expect_str_eq(p->type, "image");
	cr_expect_str_eq(p->id, "<c1>");
	p = mime_part_find(root, "2", 1);
	cr_expect_str_eq(p->subtype, "pdf");
	cr_expect_str_eq(p->disposition, "attachment");
	cr_expect(strstr(out, "UERGREFUQQ==\r\n") != NULL, "%s", out);
	mime_part_free(root);
	free(out);
}

Test(msg_build, utf8_filename_rfc2231)
{
	struct msg_build_att att = { "résumé.pdf", "application/pdf", NULL, "x", 1 };
	struct msg_build b = base();
	size_t len;
	char *out;

	b.atts = &att;
	b.natts = 1;
	out = build_ok(&b, &len);
	cr_expect(strstr(out, "filename*=UTF-8''r%C3%A9sum%C3%A9.pdf") != NULL, "%s", out);
	free(out);
}

Test(msg_build, rejects)
{
	static const struct msg_build_addr bad_to[] = { { NULL, "no-at-sign" } };
	struct msg_build_header inj = { "X-Evil", "a\r\nBcc: victim@example.com" };
	struct msg_build_header own = { "Subject", "again" };
	struct msg_build_header badname = { "X Bad", "v" };
	struct msg_build b;
	char err[256], *out = NULL;
	size_t len;

	b = base();
	b.from.email = "john@";
	cr_expect_eq(msg_build(&b, &out, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "Invalid sender email address: john@");
	b = base();
	b.to = bad_to;
	cr_expect_eq(msg_build(&b, &out, &len, err, sizeof(err)), -1);
	cr_expect_str_eq(err, "Invalid 'To' email address: no-at-sign");
	b = base();
	b.headers = &inj;
	b.nheaders = 1;
	cr_expect_eq(msg_build(&b, &out, &len, err, sizeof(err)), -1);
	b.headers = &own;
	cr_expect_eq(msg_build(&b, &out, &len, err, sizeof(err)), -1);
	b.headers = &badname;
	cr_expect_eq(msg_build(&b, &out, &len, err, sizeof(err)), -1);
	cr_expect_null(out);
	cr_expect(msg_build_email_valid("a.b+c@example.com"));
	cr_expect(!msg_build_email_valid("a b@example.com"));
	cr_expect(!msg_build_email_valid("<a@example.com>"));
}

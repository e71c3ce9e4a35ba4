/*
 * sendmail_msg_build: what a sendmail caller wrote, as it goes after
 * DATA (line ends, dot-stuffing, the fields added, -t's recipients and
 * Bcc), and the dot line that ends the input without -i.
 */
#include <criterion/criterion.h>

#include <stdio.h>
#include <string.h>

#include "mailsnare/sendmail.h"

static const struct sendmail_opts plain = { .from = "me@host.test", .hostname = "host.test" };
static const struct sendmail_opts dash_t = { .rcpts_from_headers = true, .from = "me@host.test",
	.hostname = "host.test" };

static struct sendmail_msg build(const char *in, const struct sendmail_opts *o)
{
	struct sendmail_msg m;

	cr_assert_eq(sendmail_msg_build(in, strlen(in), o, &m), SENDMAIL_MSG_OK);
	return m;
}

/* The output without the Date: and Message-ID: lines added (they hold
 * the time). */
static void expect_out(const struct sendmail_msg *m, const char *want)
{
	char got[4096];
	const char *p = m->data;
	size_t n = 0;

	while (*p != '\0') {
		const char *e = strstr(p, "\r\n");
		size_t len = e ? (size_t)(e - p) + 2 : strlen(p);
		if (strncmp(p, "Date: ", 6) != 0 && strncmp(p, "Message-ID: <", 13) != 0) {
			cr_assert_lt(n + len, sizeof(got));
			memcpy(got + n, p, len);
			n += len;
		}
		p += len;
	}
	got[n] = '\0';
	cr_assert_str_eq(got, want);
	cr_assert_eq(strlen(m->data), m->len);
}

Test(sendmail_msg, line_ends_dots_and_added_fields)
{
	struct sendmail_msg m = build("Subject: x\n\n.one\nbare\rcr\r\n..two\nlast", &plain);

	expect_out(&m, "From: me@host.test\r\nSubject: x\r\n\r\n..one\r\nbare\r\ncr\r\n"
	    "...two\r\nlast\r\n.\r\n");
	cr_assert_not_null(strstr(m.data, "\r\nDate: "));
	cr_assert_not_null(strstr(m.data, "\r\nMessage-ID: <"));
	cr_assert(!m.eight_bit);
	cr_assert_eq(m.nrcpts, 0);
	sendmail_msg_free(&m);
}

Test(sendmail_msg, fields_present_are_not_added)
{
	struct sendmail_msg m = build("from: A <a@x.test>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-Id: <1@x>\r\n\r\nb\r\n", &plain);

	cr_assert_str_eq(m.data, "from: A <a@x.test>\r\nDATE: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
	    "Message-Id: <1@x>\r\n\r\nb\r\n.\r\n");
	sendmail_msg_free(&m);
}

Test(sendmail_msg, a_body_without_header_gets_its_empty_line)
{
	struct sendmail_msg m = build("just text: no\nheader here\n", &plain);

	expect_out(&m, "From: me@host.test\r\n\r\njust text: no\r\nheader here\r\n.\r\n");
	sendmail_msg_free(&m);
	m = build("", &plain);
	expect_out(&m, "From: me@host.test\r\n\r\n.\r\n");
	sendmail_msg_free(&m);
}

Test(sendmail_msg, t_collects_to_cc_bcc_and_drops_bcc)
{
	struct sendmail_msg m = build("To: One <one@x.test>,\n two@x.test\nCc: list: a@x.test, "
	    "\"B, C\" <b@x.test>;\nBcc: hidden@x.test,\n\tsecret@x.test\nSubject: s\n\nbody\n",
	    &dash_t);

	cr_assert_eq(m.nrcpts, 6);
	cr_assert_str_eq(m.rcpts[0], "one@x.test");
	cr_assert_str_eq(m.rcpts[1], "two@x.test");
	cr_assert_str_eq(m.rcpts[2], "a@x.test");
	cr_assert_str_eq(m.rcpts[3], "b@x.test");
	cr_assert_str_eq(m.rcpts[4], "hidden@x.test");
	cr_assert_str_eq(m.rcpts[5], "secret@x.test");
	expect_out(&m, "From: me@host.test\r\nTo: One <one@x.test>,\r\n two@x.test\r\n"
	    "Cc: list: a@x.test, \"B, C\" <b@x.test>;\r\nSubject: s\r\n\r\nbody\r\n.\r\n");
	sendmail_msg_free(&m);
	/* Without -t the header is only copied. */
	m = build("Bcc: kept@x.test\n\nb\n", &plain);
	cr_assert_eq(m.nrcpts, 0);
	cr_assert_not_null(strstr(m.data, "\r\nBcc: kept@x.test\r\n"));
	sendmail_msg_free(&m);
}

Test(sendmail_msg, eight_bit_and_utf8_addresses)
{
	struct sendmail_msg m = build("To: j\xc3\xb6rg@x.test\n\nGr\xc3\xbc\xc3\x9f" "e\n", &dash_t);

	cr_assert(m.eight_bit);
	cr_assert(m.utf8_rcpts);
	cr_assert_str_eq(m.rcpts[0], "j\xc3\xb6rg@x.test");
	sendmail_msg_free(&m);
}

Test(sendmail_msg, full_name_quoted_or_encoded)
{
	static const struct { const char *name, *want; } cases[] = {
		{ "Jane Doe", "From: Jane Doe <me@host.test>\r\n" },
		{ "Doe, Jane", "From: \"Doe, Jane\" <me@host.test>\r\n" },
		{ "say \"hi\"", "From: \"say \\\"hi\\\"\" <me@host.test>\r\n" },
		{ "J\xc3\xb6rg", "From: =?UTF-8?B?SsO2cmc=?= <me@host.test>\r\n" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sendmail_opts o = plain;
		struct sendmail_msg m;

		o.full_name = cases[i].name;
		m = build("\n", &o);
		cr_assert_eq(strncmp(m.data, cases[i].want, strlen(cases[i].want)), 0, "%s: %s",
		    cases[i].name, m.data);
		sendmail_msg_free(&m);
	}
}

Test(sendmail_msg, too_many_recipients)
{
	static char in[64 * 1024];
	struct sendmail_msg m;
	size_t n = 0;

	/* Fields of 100 (the address parser bounds the tokens of one). */
	for (int i = 0; i <= SENDMAIL_MAX_RCPTS; i++)
		n += (size_t)snprintf(in + n, sizeof(in) - n, "%sr%d@x.test", i % 100 == 0 ?
		    (i ? "\nCc: " : "To: ") : ", ", i);
	snprintf(in + n, sizeof(in) - n, "\n\nb\n");
	cr_assert_eq(sendmail_msg_build(in, strlen(in), &dash_t, &m), SENDMAIL_MSG_TOO_MANY);
	cr_assert_eq(m.nrcpts, 0);
}

Test(sendmail_msg, dot_line)
{
	cr_assert(sendmail_is_dot_line(".", 1));
	cr_assert(sendmail_is_dot_line(".\n", 2));
	cr_assert(sendmail_is_dot_line(".\r\n", 3));
	cr_assert(!sendmail_is_dot_line("..\n", 3));
	cr_assert(!sendmail_is_dot_line(". \n", 3));
	cr_assert(!sendmail_is_dot_line("\n", 1));
}

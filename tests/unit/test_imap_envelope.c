/* ENVELOPE: address lists (RFC 5322 §3.4 and appendix A), IMAP quoting,
 * Sender/Reply-To defaults; RFC 2047 decoding and HEADER.FIELDS filtering
 * of mime_header. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap_envelope.h"
#include "mailsnare/mime.h"
#include "mailsnare/mime_header.h"

static char *take(struct evbuffer *o)
{
	size_t n = evbuffer_get_length(o);
	char *s = malloc(n + 1);

	evbuffer_remove(o, s, n);
	s[n] = '\0';
	evbuffer_free(o);
	return s;
}

static void check_addr(const char *value, const char *want)
{
	struct evbuffer *o = evbuffer_new();
	char *got;

	cr_assert_eq(imap_envelope_write_addresses(value, o), 0);
	got = take(o);
	cr_assert_str_eq(got, want, "for %s", value);
	free(got);
}

/* A NUL ends the value: what follows is not parsed, and a local part cut
 * by it to nothing is MISSING_MAILBOX (fuzz_mime_address found "" here). */
Test(envelope, nul_ends_address_value)
{
	static const char v[] = "\"\0\0Gi\0)x@y.test";
	struct mime_address *a;
	size_t n = mime_address_parse(v, sizeof(v) - 1, 10, &a);

	cr_assert_eq(n, 1);
	cr_assert_str_eq(a[0].mailbox, "MISSING_MAILBOX");
	cr_assert_str_eq(a[0].host, "MISSING_DOMAIN");
	mime_addresses_free(a, n);
	n = mime_address_parse("a@b.test\0, c@d.test", 19, 10, &a);
	cr_assert_eq(n, 1);
	cr_assert_str_eq(a[0].mailbox, "a");
	cr_assert_str_eq(a[0].host, "b.test");
	mime_addresses_free(a, n);
}

Test(envelope, addresses)
{
	check_addr("John Doe <jdoe@machine.example>", "((\"John Doe\" NIL \"jdoe\" \"machine.example\"))");
	check_addr("\"Joe Q. Public\" <john.q.public@example.com>",
	    "((\"Joe Q. Public\" NIL \"john.q.public\" \"example.com\"))");
	check_addr("Joe Q. Public <jqp@example.com>", "((\"Joe Q. Public\" NIL \"jqp\" \"example.com\"))");
	check_addr("jdoe@example.org (John Doe)", "((\"John Doe\" NIL \"jdoe\" \"example.org\"))");
	check_addr("\"john \\\"jd\\\" doe\"@example.com",
	    "((NIL NIL \"john \\\"jd\\\" doe\" \"example.com\"))");
	check_addr("A Group:Ed Jones <c@a.test>,joe@where.test,John <jdoe@one.test>;",
	    "((NIL NIL \"A Group\" NIL)(\"Ed Jones\" NIL \"c\" \"a.test\")(NIL NIL \"joe\" \"where.test\")"
	    "(\"John\" NIL \"jdoe\" \"one.test\")(NIL NIL NIL NIL))");
	check_addr("Undisclosed recipients:;", "((NIL NIL \"Undisclosed recipients\" NIL)(NIL NIL NIL NIL))");
	check_addr("<@a.test,@b.test:x@c.test>", "((NIL \"@a.test,@b.test\" \"x\" \"c.test\"))");
	check_addr("nobody", "((NIL NIL \"nobody\" \"MISSING_DOMAIN\"))");
	check_addr("<>", "((NIL NIL \"MISSING_MAILBOX\" \"MISSING_DOMAIN\"))");
	check_addr("", "NIL");
	check_addr("  ,  ,", "NIL");
	check_addr(NULL, "NIL");
	check_addr("=?utf-8?q?J=C3=B6rg?= <j@x.test>", "((\"=?utf-8?q?J=C3=B6rg?=\" NIL \"j\" \"x.test\"))");
	check_addr("\"Caf\xC3\xA9\" <c@x.test>", "(({5}\r\nCaf\xC3\xA9 NIL \"c\" \"x.test\"))");
	check_addr("broken <a@b.test", "((\"broken\" NIL \"a\" \"b.test\"))");
	check_addr("a@b.test junk junk, c@d.test", "((NIL NIL \"a\" \"b.test\")(NIL NIL \"c\" \"d.test\"))");
	/* a backslash that escapes nothing stays */
	check_addr("u@h.test (trailing\\", "((\"trailing\\\\\" NIL \"u\" \"h.test\"))");
	check_addr("\"a\\\\b\\\"c\" <q@h.test>", "((\"a\\\\b\\\"c\" NIL \"q\" \"h.test\"))");
}

Test(envelope, nstring_quoting)
{
	struct evbuffer *o = evbuffer_new();
	char *got, big[IMAP_QUOTED_MAX + 2];

	imap_envelope_write_cstring(o, "a\"b\\c");
	imap_envelope_write_cstring(o, NULL);
	imap_envelope_write_nstring(o, "x\r\ny", 4);
	imap_envelope_write_nstring(o, "", 0);
	got = take(o);
	cr_assert_str_eq(got, "\"a\\\"b\\\\c\"NIL{4}\r\nx\r\ny\"\"");
	free(got);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	o = evbuffer_new();
	imap_envelope_write_cstring(o, big);
	got = take(o);
	cr_assert(strncmp(got, "{1025}\r\naaa", 11) == 0);
	free(got);
}

Test(envelope, defaults_and_raw_fields)
{
	static const char m[] =
	    "Subject:   Re: =?utf-8?q?x?=\r\n"
	    "  folded  \r\n"
	    "From: a@b.test\r\n"
	    "Reply-To:\r\n"
	    "Message-ID: <id@b.test>\r\n"
	    "Subject: second subject is ignored\r\n"
	    "\r\n";
	struct mime_part *root = mime_scan_buffer(m, strlen(m));
	struct evbuffer *o = evbuffer_new();
	char *got;

	imap_envelope_write(root, o);
	got = take(o);
	cr_assert_str_eq(got, "(NIL \"Re: =?utf-8?q?x?=  folded\" ((NIL NIL \"a\" \"b.test\")) "
	    "((NIL NIL \"a\" \"b.test\")) ((NIL NIL \"a\" \"b.test\")) NIL NIL NIL NIL \"<id@b.test>\")");
	free(got);
	mime_part_free(root);
}

static void check_decode(const char *in, const char *want)
{
	size_t n;
	char *got = mime_header_decode(in, strlen(in), &n);

	cr_assert_str_eq(got, want, "for %s", in);
	cr_assert_eq(n, strlen(want));
	free(got);
}

Test(envelope, rfc2047_decoding)
{
	check_decode("=?UTF-8?Q?Ren=C3=A9_Dupont?=", "Ren\xC3\xA9 Dupont");
	check_decode("=?ISO-8859-1?B?Sm9zyQ==?= <j@x>", "Jos\xC3\x89 <j@x>");
	check_decode("=?UTF-8?B?SGVsbG8=?= =?UTF-8?B?IHdvcmxk?=", "Hello world");
	check_decode("a =?us-ascii?q?b?= c", "a b c");
	check_decode("=?utf-8*en?q?lang?=", "lang");
	check_decode("=?iso-8859-15?q?=A4?=", "\xE2\x82\xAC");
	check_decode("=?x-unknown?q?raw=FF?=", "raw\xFF");
	check_decode("=?utf-8?q?not closed", "=?utf-8?q?not closed");
	check_decode("=?utf-8?x?bad?=", "=?utf-8?x?bad?=");
	check_decode("plain text", "plain text");
}

Test(envelope, header_fields_filter)
{
	static const char hdr[] =
	    "From: a@b.test\r\n"
	    "Subject: one\r\n"
	    " two\r\n"
	    "To: c@d.test\r\n"
	    "subject: again\r\n"
	    "\r\n";
	const char *names[] = { "SUBJECT", "X-None" };
	struct evbuffer *o = evbuffer_new();
	char *got;

	cr_assert_eq(mime_header_filter(hdr, strlen(hdr), names, 2, false, o), 38);
	got = take(o);
	cr_assert_str_eq(got, "Subject: one\r\n two\r\nsubject: again\r\n\r\n");
	free(got);
	o = evbuffer_new();
	mime_header_filter(hdr, strlen(hdr), names, 2, true, o);
	got = take(o);
	cr_assert_str_eq(got, "From: a@b.test\r\nTo: c@d.test\r\n\r\n");
	free(got);
}

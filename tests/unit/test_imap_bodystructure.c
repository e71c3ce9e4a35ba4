/* BODY/BODYSTRUCTURE and ENVELOPE of the hand-written corpus in
 * tests/data/mime (see its README), scanned whole, in chunks of every size
 * from 1 to 97 bytes and after a blob round trip; plus RFC 2231, empty
 * multiparts and Dovecot's own reference message. */
#include <criterion/criterion.h>
#include <event2/buffer.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap_bodystructure.h"
#include "mailsnare/imap_envelope.h"
#include "mailsnare/mime.h"

static const char *const corpus[] = {
	"plain", "alternative", "mixed_attach", "rfc822", "rfc822_single", "encoded_words",
	"rfc2231", "addresses", "missing_boundary", "no_final_boundary", "headers_only",
	"part_no_body", "eightbit", "digest", "no_boundary_param", "invalid_type",
};

static char *slurp(const char *name, const char *ext, size_t *len)
{
	const char *dir = getenv("MAILSNARE_SRCDIR");
	char path[512];
	FILE *f;
	char *buf;
	long n;

	snprintf(path, sizeof(path), "%s/tests/data/mime/%s.%s", dir ? dir : ".", name, ext);
	f = fopen(path, "rb");
	cr_assert_not_null(f, "cannot open %s", path);
	fseek(f, 0, SEEK_END);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	cr_assert_eq(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	buf[n] = '\0';
	*len = (size_t)n;
	return buf;
}

/* The message as SMTP stores it: every bare LF becomes CRLF. */
static char *load_eml(const char *name, size_t *len)
{
	size_t n, k = 0;
	char *raw = slurp(name, "eml", &n), *m = malloc(2 * n + 1);

	for (size_t i = 0; i < n; i++) {
		if (raw[i] == '\n' && (i == 0 || raw[i - 1] != '\r'))
			m[k++] = '\r';
		m[k++] = raw[i];
	}
	free(raw);
	*len = k;
	return m;
}

static char *render(const struct mime_part *root)
{
	struct evbuffer *o = evbuffer_new();
	size_t n;
	char *s;

	evbuffer_add_printf(o, "ENVELOPE ");
	cr_assert_eq(imap_envelope_write(root, o), 0);
	evbuffer_add_printf(o, "\nBODYSTRUCTURE ");
	cr_assert_eq(imap_bodystructure_write(root, true, o), 0);
	evbuffer_add_printf(o, "\nBODY ");
	cr_assert_eq(imap_bodystructure_write(root, false, o), 0);
	evbuffer_add_printf(o, "\n");
	n = evbuffer_get_length(o);
	s = malloc(n + 1);
	evbuffer_remove(o, s, n);
	s[n] = '\0';
	evbuffer_free(o);
	return s;
}

static struct mime_part *scan_chunked(const char *m, size_t len, size_t chunk)
{
	struct mime_scan *sc = mime_scan_new();

	for (size_t i = 0; i < len; i += chunk)
		mime_scan_feed(sc, m + i, len - i < chunk ? len - i : chunk);
	return mime_scan_finish(sc);
}

static void check_one(const char *name)
{
	size_t len, elen, bloblen;
	char *m = load_eml(name, &len), *exp = slurp(name, "expected", &elen), *got;
	struct mime_part *root = mime_scan_buffer(m, len), *back;
	unsigned char *blob;

	got = render(root);
	cr_assert_str_eq(got, exp, "%s: got\n%s", name, got);
	free(got);
	cr_assert(mime_tree_serialize(root, &blob, &bloblen));
	back = mime_tree_parse(blob, bloblen);
	cr_assert_not_null(back, "%s: blob does not parse back", name);
	got = render(back);
	cr_assert_str_eq(got, exp, "%s after the blob round trip", name);
	free(got);
	for (size_t chunk = 1; chunk < 98; chunk++) {
		struct mime_part *r = scan_chunked(m, len, chunk);
		unsigned char *b2;
		size_t l2;
		cr_assert(mime_tree_serialize(r, &b2, &l2));
		cr_assert(l2 == bloblen && memcmp(b2, blob, l2) == 0, "%s: chunks of %zu differ", name, chunk);
		free(b2);
		mime_part_free(r);
	}
	free(blob);
	mime_part_free(back);
	mime_part_free(root);
	free(m);
	free(exp);
}

Test(bodystructure, corpus)
{
	for (size_t i = 0; i < sizeof(corpus) / sizeof(corpus[0]); i++)
		check_one(corpus[i]);
}

static char *structure_of(const char *msg, bool ext)
{
	struct mime_part *root = mime_scan_buffer(msg, strlen(msg));
	struct evbuffer *o = evbuffer_new();
	char *s;
	size_t n;

	cr_assert_eq(imap_bodystructure_write(root, ext, o), 0);
	n = evbuffer_get_length(o);
	s = malloc(n + 1);
	evbuffer_remove(o, s, n);
	s[n] = '\0';
	evbuffer_free(o);
	mime_part_free(root);
	return s;
}

/* Dovecot's reference message of its imap-bodystructure test, with bare LF
 * line ends: sizes here are physical (Dovecot counts CRLF), lines equal. */
Test(bodystructure, bare_lf_message)
{
	static const char msg[] =
	    "From: user@domain.org\n"
	    "Content-Type: multipart/mixed; boundary=\"foo\n bar\"\n"
	    "\n"
	    "Root MIME prologue\n"
	    "\n"
	    "--foo bar\n"
	    "Content-Type: text/x-myown; charset=us-ascii; foo=\"quoted\\\"string\"\n"
	    "Content-Language: en, fi, se\n"
	    "\n"
	    "hello\n"
	    "\n"
	    "--foo bar--\n"
	    "Root MIME epilogue\n";
	char *s = structure_of(msg, true);

	cr_assert_str_eq(s, "((\"text\" \"x-myown\" (\"charset\" \"us-ascii\" \"foo\" "
	    "\"quoted\\\"string\") NIL NIL \"7bit\" 6 1 NIL NIL (\"en\" \"fi\" \"se\") NIL) "
	    "\"mixed\" (\"boundary\" \"foo bar\") NIL NIL NIL)");
	free(s);
}

Test(bodystructure, rfc2231_charset_and_continuations)
{
	static const char msg[] =
	    "Content-Type: application/x-stuff;\r\n"
	    " title*0*=us-ascii'en'This%20is%20even%20more%20;\r\n"
	    " title*1*=%2A%2A%2Afun%2A%2A%2A%20;\r\n"
	    " title*2=\"isn't it!\"\r\n"
	    "\r\n"
	    "x";
	char *s = structure_of(msg, false);

	cr_assert_str_eq(s, "(\"application\" \"x-stuff\" (\"title*\" "
	    "\"us-ascii'en'This%20is%20even%20more%20%2A%2A%2Afun%2A%2A%2A%20isn%27t%20it!\") "
	    "NIL NIL \"7bit\" 1)");
	free(s);
}

Test(bodystructure, rfc2231_wins_over_plain_and_gaps_stop)
{
	struct mime_part *root;
	static const char msg[] =
	    "Content-Type: text/plain; name=plain.txt; name*=utf-8''%E2%82%AC.txt;\r\n"
	    " x*0=a; x*1=b; x*3=d\r\n\r\n";
	const struct mime_param *p;

	root = mime_scan_buffer(msg, strlen(msg));
	p = mime_part_param(root, "name");
	cr_assert_not_null(p);
	cr_assert_str_eq(p->value, "\xE2\x82\xAC.txt");
	cr_assert_str_eq(p->charset, "utf-8");
	p = mime_part_param(root, "x");
	cr_assert_str_eq(p->value, "ab");
	cr_assert_null(p->charset);
	mime_part_free(root);
}

Test(bodystructure, empty_message)
{
	char *s = structure_of("", true);

	cr_assert_str_eq(s, "(\"text\" \"plain\" (\"charset\" \"us-ascii\") NIL NIL \"7bit\" 0 0 NIL NIL NIL NIL)");
	free(s);
}

Test(bodystructure, quoting_and_literals)
{
	static const char msg[] =
	    "Content-Type: text/plain; name=\"a \\\\ b \\\" c\"\r\n"
	    "Content-Description: caf\xC3\xA9\r\n"
	    "\r\n";
	char *s = structure_of(msg, false);

	cr_assert_str_eq(s, "(\"text\" \"plain\" (\"charset\" \"us-ascii\" \"name\" \"a \\\\ b \\\" c\") "
	    "NIL {5}\r\ncaf\xC3\xA9 \"7bit\" 0 0)");
	free(s);
}

/* Streaming base64 / quoted-printable decoding, split at every offset, and
 * case-insensitive (ASCII + simple UTF-8) substring search across chunks. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime_decode.h"

/* Decodes in, fed as two pieces cut at `cut`, into a NUL-terminated string. */
static char *decode_split(enum mime_encoding enc, const char *in, size_t cut)
{
	size_t len = strlen(in), o = 0;
	char *out = malloc(MIME_DECODE_OUT_MAX(len) * 2 + MIME_DECODE_OUT_MAX(0));
	struct mime_decoder d;

	mime_decoder_init(&d, enc);
	o += mime_decoder_feed(&d, in, cut, out + o);
	o += mime_decoder_feed(&d, in + cut, len - cut, out + o);
	o += mime_decoder_finish(&d, out + o);
	out[o] = '\0';
	return out;
}

static void check_all_splits(enum mime_encoding enc, const char *in, const char *want)
{
	for (size_t cut = 0; cut <= strlen(in); cut++) {
		char *got = decode_split(enc, in, cut);
		cr_assert_str_eq(got, want, "cut at %zu", cut);
		free(got);
	}
}

Test(decode, encoding_names)
{
	cr_assert_eq(mime_encoding_from_name("BASE64"), MIME_ENC_BASE64);
	cr_assert_eq(mime_encoding_from_name("Quoted-Printable"), MIME_ENC_QP);
	cr_assert_eq(mime_encoding_from_name("8bit"), MIME_ENC_IDENTITY);
	cr_assert_eq(mime_encoding_from_name(NULL), MIME_ENC_IDENTITY);
}

Test(decode, base64_lines_and_padding)
{
	check_all_splits(MIME_ENC_BASE64, "SGVsbG8s\r\nIHdvcmxk\r\nIQ==\r\n", "Hello, world!");
	check_all_splits(MIME_ENC_BASE64, "Zm9v YmFy\n", "foobar");
	check_all_splits(MIME_ENC_BASE64, "Zg==Zm8=", "ffo");
	check_all_splits(MIME_ENC_BASE64, "!!Zm9v**", "foo");
}

Test(decode, quoted_printable)
{
	check_all_splits(MIME_ENC_QP, "Caf=C3=A9 au lait\r\n", "Caf\xC3\xA9 au lait\r\n");
	check_all_splits(MIME_ENC_QP, "soft=\r\nbreak and=\nbare", "softbreak andbare");
	check_all_splits(MIME_ENC_QP, "trailing   \r\nspace\t\nend", "trailing\r\nspace\nend");
	check_all_splits(MIME_ENC_QP, "soft with ws= \t\r\nnext", "soft with wsnext");
	check_all_splits(MIME_ENC_QP, "bad =ZZ and =4 end=", "bad =ZZ and =4 end=");
	check_all_splits(MIME_ENC_QP, "lower =c3=a9", "lower \xC3\xA9");
	check_all_splits(MIME_ENC_QP, "a = b", "a = b");
	check_all_splits(MIME_ENC_QP, "x= \ny =\t\r\nz", "xy z");
}

Test(decode, qp_long_white_space_run_is_bounded)
{
	char in[300], want[300];

	memset(in, ' ', 200);
	strcpy(in + 200, "x\r\n");
	strcpy(want, in);
	check_all_splits(MIME_ENC_QP, in, want);
}

Test(decode, fold_utf8)
{
	char out[64];
	const char *in = "ABC \xC3\x89t\xC3\xA9 \xCE\xA3\xCE\xA9 \xD0\x96\xD0\x81 \xC5\x81";

	mime_fold_utf8(in, strlen(in) + 1, out);
	cr_assert_str_eq(out, "abc \xC3\xA9t\xC3\xA9 \xCF\x83\xCF\x89 \xD0\xB6\xD1\x91 \xC5\x82");
}

Test(decode, search_one_shot)
{
	cr_assert(mime_search_match("Hello World", 11, "wORLD", 5));
	cr_assert(mime_search_match("x", 1, "", 0));
	cr_assert_not(mime_search_match("Hello", 5, "hello!", 6));
	cr_assert(mime_search_match("\xC3\x89T\xC3\x89", 6, "\xC3\xA9t\xC3\xA9", 6));
	cr_assert(mime_search_match("\xD0\x9F\xD0\xA0\xD0\x98\xD0\x92\xD0\x95\xD0\xA2", 12,
	    "\xD0\xBF\xD1\x80\xD0\xB8", 6));
}

Test(decode, search_across_every_split)
{
	static const char hay[] = "some text then Caf\xC3\x89 Society and more";
	static const char needle[] = "caf\xC3\xA9 soc";

	for (size_t cut = 0; cut <= sizeof(hay) - 1; cut++) {
		struct mime_search *s = mime_search_new(needle, strlen(needle));
		mime_search_feed(s, hay, cut);
		mime_search_feed(s, hay + cut, sizeof(hay) - 1 - cut);
		cr_assert(mime_search_found(s), "cut at %zu", cut);
		mime_search_reset(s);
		cr_assert_not(mime_search_found(s));
		mime_search_feed(s, "caf", 3);
		cr_assert_not(mime_search_found(s));
		mime_search_free(s);
	}
}

/* Needles whose prefixes recur (the matcher must fall back, not restart),
 * and a 64 KiB needle fed a byte, then odd pieces, at a time: found where
 * it is, not where it almost is. */
Test(decode, search_borders_and_long_needle)
{
	size_t n = MIME_SEARCH_NEEDLE_MAX, len = 3 * n + 7, i, at;
	char *hay = malloc(len), *needle = malloc(n);
	struct mime_search *s;

	cr_assert(mime_search_match("aaab", 4, "aab", 3));
	cr_assert(mime_search_match("abababca", 8, "ababca", 6));
	cr_assert_not(mime_search_match("abababc", 7, "ababca", 6));
	cr_assert_not_null(hay);
	cr_assert_not_null(needle);
	memset(needle, 'q', n - 1);
	needle[n - 1] = 'Z';
	memset(hay, 'Q', len);
	hay[2 * n - 3] = 'x';              /* almost: n - 1 q's then not z */
	hay[len - 2] = 'z';                /* the needle ends here */
	s = mime_search_new(needle, n);
	cr_assert_not_null(s);
	for (at = 0; at < 2 * n; at++)
		mime_search_feed(s, hay + at, 1);
	cr_assert_not(mime_search_found(s));
	for (i = 7; at < len - 2; at += i, i = i * 3 % 4093 + 1)
		mime_search_feed(s, hay + at, at + i < len - 2 ? i : len - 2 - at);
	cr_assert_not(mime_search_found(s));
	mime_search_feed(s, hay + len - 2, 2);
	cr_assert(mime_search_found(s));
	cr_assert_null(mime_search_new(needle, n + 1));
	mime_search_free(s);
	free(hay);
	free(needle);
}

Test(decode, search_large_input)
{
	size_t n = 100000;
	char *big = malloc(n);
	struct mime_search *s = mime_search_new("NEEDLE", 6);

	memset(big, 'a', n);
	memcpy(big + n - 7, "needle", 6);
	for (size_t i = 0; i < n; i += 997)
		mime_search_feed(s, big + i, n - i < 997 ? n - i : 997);
	cr_assert(mime_search_found(s));
	mime_search_free(s);
	free(big);
}

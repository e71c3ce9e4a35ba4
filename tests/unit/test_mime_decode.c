/* Streaming base64 / quoted-printable decoding, split at every offset, and
 * case-insensitive (ASCII + simple UTF-8) substring search across chunks. */
#include <criterion/criterion.h>
#include <iconv.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"

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

/* ---- mime_conv: charset conversion in pieces ---------------------------- */

struct grow {
	char *p;
	size_t len, cap;
};

static void grow_sink(void *arg, const char *utf8, size_t len)
{
	struct grow *g = arg;

	if (g->len + len + 1 > g->cap) {
		g->cap = (g->len + len + 1) * 2;
		g->p = realloc(g->p, g->cap);
		cr_assert_not_null(g->p);
	}
	memcpy(g->p + g->len, utf8, len);
	g->len += len;
}

/* text (UTF-8) in charset cs, by iconv ("utf-8" and an "x-" charset: as
 * it is, bad bytes too); *len its length. */
static char *encode(const char *cs, const char *text, size_t *len)
{
	iconv_t cd = iconv_open(cs, "UTF-8");
	size_t left = strlen(text), room = left * 4 + 16;
	char *out = malloc(room), *ip = (char *)text, *op = out;

	if (strncmp(cs, "x-", 2) == 0 || strcmp(cs, "utf-8") == 0) {
		if (cd != (iconv_t)-1)
			iconv_close(cd);
		*len = left;
		memcpy(out, text, left);
		return out;
	}
	cr_assert_neq(cd, (iconv_t)-1, "iconv knows %s", cs);
	cr_assert_neq(iconv(cd, &ip, &left, &op, &room), (size_t)-1, "%s encodes", cs);
	cr_assert_neq(iconv(cd, NULL, NULL, &op, &room), (size_t)-1); /* back to ASCII */
	iconv_close(cd);
	*len = (size_t)(op - out);
	return out;
}

/* in[0..len) through one mime_conv in pieces: of size `step` (0: random
 * sizes, 1..max, from seed). The output, NUL-terminated, in *g. */
static void conv_pieces(const char *cs, const char *in, size_t len, size_t step, size_t max,
    unsigned seed, struct grow *g)
{
	struct mime_conv *c = mime_conv_new(cs);
	size_t at = 0;

	cr_assert_not_null(c);
	g->len = 0;
	while (at < len) {
		size_t n = step;
		if (n == 0) {
			seed = seed * 1103515245u + 12345u;
			n = 1 + (seed >> 16) % max;
		}
		n = n < len - at ? n : len - at;
		mime_conv_feed(c, in + at, n, grow_sink, g);
		at += n;
	}
	mime_conv_feed(c, in, 0, grow_sink, g);
	mime_conv_free(c);
	grow_sink(g, "", 0);
	g->p[g->len] = '\0';
}

/* Pieces of every fixed size up to 9 and of random sizes give what
 * mime_charset_to_utf8 gives for the whole. */
static void check_conv(const char *cs, const char *in, size_t len)
{
	struct grow g = { NULL, 0, 0 };
	size_t wlen;
	char *want = mime_charset_to_utf8(cs, in, len, &wlen);

	cr_assert_not_null(want);
	for (size_t step = 0; step <= 9; step++) {
		for (unsigned seed = 1; seed <= (step == 0 ? 40u : 1u); seed++) {
			conv_pieces(cs, in, len, step, seed % 2 ? 7 : 300, seed, &g);
			cr_assert_eq(g.len, wlen, "%s, step %zu, seed %u: %zu bytes, want %zu", cs, step,
			    seed, g.len, wlen);
			cr_assert(memcmp(g.p, want, wlen) == 0, "%s, step %zu, seed %u", cs, step, seed);
		}
	}
	free(g.p);
	free(want);
}

/* text encoded in cs, repeated to a few KiB, with bad bytes inserted
 * (bad: NULL for none) and a cut sequence at the end (cut bytes of the
 * encoded text again, 0 for none). */
static void check_conv_text(const char *cs, const char *text, const char *bad, size_t cut)
{
	size_t n, blen = bad ? strlen(bad) : 0, len = 0;
	char *one = encode(cs, text, &n), *in = malloc(n * 41 + blen * 40 + cut);

	for (int i = 0; i < 40; i++) {
		memcpy(in + len, one, n);
		len += n;
		if (bad != NULL && i % 7 == 3) {
			memcpy(in + len, bad, blen);
			len += blen;
		}
	}
	memcpy(in + len, one, cut);
	check_conv(cs, in, len + cut);
	if (bad == NULL && cut == 0 && strncmp(cs, "x-", 2) != 0 && strcmp(cs, "UTF-16") != 0
	    && strcmp(cs, "UTF-32") != 0) {
		/* And the whole is the text again (the whole, not only the
		 * pieces, goes 64 KiB of output at a time; UTF-16 and UTF-32
		 * have a BOM in every copy, U+FEFF after the first). */
		size_t ulen, tlen = strlen(text);
		char *u = mime_charset_to_utf8(cs, in, len, &ulen);
		cr_assert_eq(ulen, tlen * 40, "%s", cs);
		for (int i = 0; i < 40; i++)
			cr_assert(memcmp(u + i * tlen, text, tlen) == 0, "%s", cs);
		free(u);
	}
	free(in);
	free(one);
}

static const char ja[] = "日本語のテキスト、ABC abc。\r\n";

Test(conv, same_as_whole_japanese)
{
	check_conv_text("ISO-2022-JP", ja, NULL, 0);
	check_conv_text("ISO-2022-JP", ja, "\x1b$", 0);     /* an escape cut short */
	check_conv_text("ISO-2022-JP", ja, "\x1b(Jx\x80", 0);
	check_conv_text("ISO-2022-JP", ja, NULL, 4);         /* ends after ESC $ B, a byte */
	check_conv_text("Shift_JIS", "日本語のテキストです。半角ｶﾀｶﾅも。\r\n", "\x81\xff\xa0", 0);
	check_conv_text("Shift_JIS", ja, NULL, 1);           /* a lead byte at the end */
	check_conv_text("EUC-JP", ja, "\xa4", 1);
}

Test(conv, same_as_whole_other_multibyte)
{
	check_conv_text("EUC-KR", "한국어 텍스트 ABC\r\n", "\xff\xb0", 1);
	check_conv_text("GB18030", "中文文本 ABC €😀\r\n", "\x81\x30\x81", 3);
	check_conv_text("Big5", "中文文本 ABC\r\n", "\xa4", 1);
	check_conv_text("UTF-7", "Grüße, 日本 ABC\r\n", NULL, 0);
	check_conv_text("KOI8-R", "Привет ABC\r\n", NULL, 0);
	check_conv_text("windows-1252", "Grüße €\r\n", "\x81", 0);
	check_conv_text("x-no-such-charset", "bytes \xff as they are", NULL, 0);
	check_conv_text("ISO-8859-1", "Gr\xc3\xbc\xc3\x9f" "e", NULL, 0);
	check_conv_text("utf-8", "日本語 as is, \xe6\x97 cut", NULL, 2);
}

/* UTF-16 and UTF-32 with a BOM (either order; a BOM only at the start),
 * a lone surrogate, an odd byte at the end. */
Test(conv, same_as_whole_utf16)
{
	const char *text = "日本語 😀 ABC\r\n";
	size_t n, len;
	char *be = encode("UTF-16BE", text, &n), *in = malloc(n * 20 + 8);

	check_conv_text("UTF-16", text, NULL, 0);  /* iconv writes its BOM */
	check_conv_text("UTF-16LE", text, "\x00\xd8" "A\x00", 1);
	check_conv_text("UTF-32", text, NULL, 3);
	memcpy(in, "\xfe\xff", 2);
	for (len = 2; len < n * 20; len += n)
		memcpy(in + len, be, n);
	check_conv("UTF-16", in, len);
	in[len] = 'x';
	check_conv("UTF-16", in, len + 1);
	free(be);
	free(in);
}

/* The converter's output, cut anywhere, feeds the matcher: a needle
 * across any cut (and across a UTF-8 character cut) is found, case
 * folded. */
static void search_sink(void *arg, const char *utf8, size_t len)
{
	mime_search_feed(arg, utf8, len);
}

static bool conv_search(const char *cs, const char *in, size_t len, size_t cut,
    const char *needle)
{
	struct mime_conv *c = mime_conv_new(cs);
	struct mime_search *s = mime_search_new(needle, strlen(needle));
	bool found;

	mime_conv_feed(c, in, cut, search_sink, s);
	mime_conv_feed(c, in + cut, len - cut, search_sink, s);
	found = mime_search_found(s);
	mime_conv_free(c);
	mime_search_free(s);
	return found;
}

Test(conv, match_across_pieces)
{
	static const struct {
		const char *cs, *text, *needle;
	} t[] = {
		{ "Shift_JIS", "前置き日本語のテキストです後書き", "テキスト" },
		{ "ISO-2022-JP", "前置き abc 日本語のテキスト", "語のテ" },
		{ "UTF-16", "xx Grüße aus Köln yy", "GRÜSSE" },         /* not the same: ß */
		{ "UTF-16", "xx Grüße aus Köln yy", "GRÜßE AUS KÖLN" },
		{ "KOI8-R", "это Привет мир", "ПРИВЕТ МИР" },
		{ "utf-8", "это Привет мир", "ПРИВЕТ МИР" },             /* cut inside a character */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		size_t len;
		char *in = encode(t[i].cs, t[i].text, &len);
		bool want = i != 2;
		for (size_t cut = 0; cut <= len; cut++)
			cr_assert_eq(conv_search(t[i].cs, in, len, cut, t[i].needle), want,
			    "%s, cut at %zu", t[i].cs, cut);
		cr_assert_not(conv_search(t[i].cs, in, len, len / 2, "テキストx"));
		free(in);
	}
}

/*
 * Transfer decoders and the body matcher. From the input: (1) base64 and
 * quoted-printable decoding of the bytes fed whole and in chunks give the
 * same output; (2) the bytes encoded (base64_encode; a strict QP encoder
 * here) decode back to themselves, through the streaming decoders in
 * chunks and, for base64, base64_decode; (3) the streaming matcher fed in
 * chunks agrees with the one-shot match; (4) the charset converter
 * (mime_conv) fed in chunks gives what mime_charset_to_utf8 gives for the
 * whole. First 8 bytes: the split seed; for (3) the first 1..16 bytes
 * after it are the needle, for (4) the first byte picks the charset.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/base64.h"
#include "mailsnare/mime_decode.h"
#include "mailsnare/mime_header.h"
#include "fuzz.h"

static void decode(enum mime_encoding enc, const char *in, size_t n, bool split, uint64_t seed,
    struct fbuf *out)
{
	struct mime_decoder d;
	char *buf = malloc(MIME_DECODE_OUT_MAX(n));
	size_t off = 0, k;

	FUZZ_CHECK(buf != NULL);
	mime_decoder_init(&d, enc);
	while (off < n) {
		size_t len = split ? fuzz_chunk(&seed, n - off) : n - off;
		k = mime_decoder_feed(&d, in + off, len, buf);
		FUZZ_CHECK(k <= MIME_DECODE_OUT_MAX(len));
		fbuf_add(out, buf, k);
		off += len;
	}
	k = mime_decoder_finish(&d, buf);
	FUZZ_CHECK(k <= MIME_DECODE_OUT_MAX(0));
	fbuf_add(out, buf, k);
	free(buf);
}

/* Every octet but printable ASCII other than '=' as =XX, soft breaks. */
static void qp_encode(const uint8_t *d, size_t n, struct fbuf *out)
{
	size_t col = 0;

	for (size_t i = 0; i < n; i++) {
		if (col >= 70) {
			fbuf_adds(out, "=\r\n");
			col = 0;
		}
		if (d[i] > 0x20 && d[i] < 0x7f && d[i] != '=') {
			fbuf_add(out, &d[i], 1);
			col++;
		} else {
			fbuf_addf(out, "=%02X", d[i]);
			col += 3;
		}
	}
}

static void same_decoding(enum mime_encoding enc, const char *in, size_t n, uint64_t seed)
{
	struct fbuf a = { 0 }, b = { 0 };

	decode(enc, in, n, false, seed, &a);
	decode(enc, in, n, true, seed, &b);
	FUZZ_CHECK(fbuf_eq(&a, &b));
	fbuf_free(&a);
	fbuf_free(&b);
}

static void round_trip(const uint8_t *d, size_t n, uint64_t seed)
{
	struct fbuf qp = { 0 }, out = { 0 };
	size_t cap = BASE64_ENCODED_SIZE(n);
	char *b64 = malloc(cap);
	unsigned char *raw = malloc(n + 1);
	ssize_t k;

	FUZZ_CHECK(b64 != NULL && raw != NULL);
	k = base64_encode(d, n, b64, cap);
	FUZZ_CHECK(k >= 0 && (size_t)k == cap - 1);
	FUZZ_CHECK(base64_decode(b64, (size_t)k, raw, n + 1) == (ssize_t)n);
	FUZZ_CHECK(n == 0 || memcmp(raw, d, n) == 0);
	decode(MIME_ENC_BASE64, b64, (size_t)k, true, seed, &out);
	FUZZ_CHECK(out.len == n && (n == 0 || memcmp(out.p, d, n) == 0));
	fbuf_free(&out);
	qp_encode(d, n, &qp);
	decode(MIME_ENC_QP, (const char *)qp.p, qp.len, true, seed, &out);
	FUZZ_CHECK(out.len == n && (n == 0 || memcmp(out.p, d, n) == 0));
	fbuf_free(&out);
	fbuf_free(&qp);
	free(b64);
	free(raw);
}

static void matcher(const uint8_t *d, size_t n, uint64_t seed)
{
	size_t nlen = n > 0 ? (size_t)(d[0] % 16) + 1 : 0, off;
	struct mime_search *s;
	bool want;

	if (nlen + 1 > n)
		return;
	want = mime_search_match((const char *)d + 1 + nlen, n - 1 - nlen,
	    (const char *)d + 1, nlen);
	s = mime_search_new((const char *)d + 1, nlen);
	FUZZ_CHECK(s != NULL);
	for (off = 1 + nlen; off < n;) {
		size_t len = fuzz_chunk(&seed, n - off);
		(void)mime_search_feed(s, (const char *)d + off, len);
		off += len;
	}
	FUZZ_CHECK(mime_search_found(s) == want);
	mime_search_free(s);
}

static void conv_sink(void *arg, const char *utf8, size_t len)
{
	fbuf_add(arg, utf8, len);
}

static void converter(const uint8_t *d, size_t n, uint64_t seed)
{
	/* Not UTF-7: after bad base64, glibc's decoder says EILSEQ or not
	 * for a byte by how much input follows it in the call (so text
	 * SEARCH converts in pieces may differ there from the whole). */
	static const char *const cs[] = { "Shift_JIS", "ISO-2022-JP", "ISO-2022-KR", "UTF-16",
	    "UTF-16LE", "UTF-32", "GB18030", "EUC-KR", "EUC-JP", "Big5", "ISO-8859-1", "utf-8",
	    "x-unknown" };
	const char *name = n > 0 ? cs[d[0] % (sizeof(cs) / sizeof(cs[0]))] : "utf-8";
	struct mime_conv *c = mime_conv_new(name);
	struct fbuf out = { 0 };
	size_t wlen, off;
	char *want;

	FUZZ_CHECK(c != NULL);
	for (off = n > 0 ? 1 : 0; off < n;) {
		size_t len = fuzz_chunk(&seed, n - off);
		mime_conv_feed(c, (const char *)d + off, len, conv_sink, &out);
		off += len;
	}
	mime_conv_free(c);
	want = mime_charset_to_utf8(name, n > 0 ? (const char *)d + 1 : "", n > 0 ? n - 1 : 0, &wlen);
	FUZZ_CHECK(want != NULL && out.len == wlen && (wlen == 0 || memcmp(out.p, want, wlen) == 0));
	free(want);
	fbuf_free(&out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint64_t seed = fuzz_seed(&data, &size);
	unsigned char *raw;
	ssize_t k;

	if (size > 65536)
		return 0;
	same_decoding(MIME_ENC_BASE64, (const char *)data, size, seed);
	same_decoding(MIME_ENC_QP, (const char *)data, size, seed);
	round_trip(data, size, seed);
	matcher(data, size, seed);
	converter(data, size, seed);
	/* base64_decode on arbitrary text: within bounds, re-encodes. */
	raw = malloc(size + 1);
	FUZZ_CHECK(raw != NULL);
	k = base64_decode((const char *)data, size, raw, size + 1);
	FUZZ_CHECK(k >= -1 && k <= (ssize_t)size);
	free(raw);
	return 0;
}

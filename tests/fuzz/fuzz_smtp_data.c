/*
 * DATA (dot-stuffed) and BDAT decoding: the same bytes fed in one piece,
 * byte by byte, and in chunks of sizes from the input give the same output,
 * the same bytes consumed and the same flags. The output's line ends are
 * all CRLF. First byte: mode; next 8: the chunk seed.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/smtp_data.h"
#include "fuzz.h"

static int sink(void *arg, const char *buf, size_t len)
{
	FUZZ_CHECK(len > 0);
	fbuf_add(arg, buf, len);
	return 0;
}

enum split { ONE, BYTES, CHUNKS };

static size_t run(const uint8_t *d, size_t n, bool dot, enum split how, uint64_t seed,
    struct fbuf *out, struct smtp_data *st)
{
	size_t off = 0;

	smtp_data_init(st, dot);
	while (off < n && !st->done) {
		size_t len = how == ONE ? n - off : how == BYTES ? 1 : fuzz_chunk(&seed, n - off);
		ssize_t r = smtp_data_feed(st, (const char *)d + off, len, sink, out);
		FUZZ_CHECK(r >= 0 && (size_t)r <= len);
		FUZZ_CHECK((size_t)r == len || st->done);
		off += (size_t)r;
	}
	if (!dot)
		FUZZ_CHECK(smtp_data_finish(st, sink, out) == 0);
	return off;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf o1 = { 0 }, o2 = { 0 }, o3 = { 0 };
	struct smtp_data s1, s2, s3;
	size_t c1, c2, c3;
	uint64_t seed;
	bool dot;

	if (size < 1)
		return 0;
	dot = !(data[0] & 1);
	data++;
	size--;
	seed = fuzz_seed(&data, &size);
	c1 = run(data, size, dot, ONE, seed, &o1, &s1);
	c2 = run(data, size, dot, BYTES, seed, &o2, &s2);
	c3 = run(data, size, dot, CHUNKS, seed, &o3, &s3);
	FUZZ_CHECK(c1 == c2 && c1 == c3);
	FUZZ_CHECK(fbuf_eq(&o1, &o2) && fbuf_eq(&o1, &o3));
	FUZZ_CHECK(s1.done == s2.done && s1.done == s3.done);
	FUZZ_CHECK(s1.line_too_long == s2.line_too_long && s1.line_too_long == s3.line_too_long);
	if (dot && s1.done) {
		/* Consumed input ends in the terminator. */
		FUZZ_CHECK(c1 >= 3 && memcmp(data + c1 - 3, ".\r\n", 3) == 0);
	}
	/* Line ends normalised: every LF follows a CR. With BDAT, a CR at the
	 * very end was flushed by finish and may stand alone. */
	for (size_t i = 0; i < o1.len; i++)
		if (o1.p[i] == '\n')
			FUZZ_CHECK(i > 0 && o1.p[i - 1] == '\r');
	fbuf_free(&o1);
	fbuf_free(&o2);
	fbuf_free(&o3);
	return 0;
}

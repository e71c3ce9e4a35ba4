/*
 * RFC 6455 client frames (ws_parse_header, ws_unmask), read as the
 * websocket's stream reader reads them (http_events.c ws_readcb): a header
 * is parsed from what has arrived, then its payload waits until complete.
 * Invariants: the parser agrees with a naive reading of §5.2 on every
 * input; the frames of a stream are the same however it is split into
 * reads; an accepted header says the length in the form a server writes
 * (ws_frame_header); unmasking in pieces at their offsets is unmasking in
 * one go, and twice is nothing. Input: 8 bytes of seed for the split
 * points, one byte picking max_len, then the stream.
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/ws.h"
#include "fuzz.h"

/* The naive reading of §5.2 and the server's own rules (no extension;
 * masked; known opcodes; minimal lengths; short final control frames). */
static enum ws_parse_rc ref_parse(const uint8_t *b, size_t len, uint64_t max_len)
{
	size_t ext, need;
	uint64_t n = 0;
	uint8_t op;

	if (len < 2)
		return WS_PARSE_MORE;
	op = b[0] & 0x0f;
	if ((b[0] & 0x70) != 0 || !(op == 0 || op == 1 || op == 2 || op == 8 || op == 9 ||
	    op == 10) || (b[1] & 0x80) == 0)
		return WS_PARSE_ERROR;
	ext = (b[1] & 0x7f) == 126 ? 2 : (b[1] & 0x7f) == 127 ? 8 : 0;
	need = 2 + ext + 4;
	if (len < need)
		return WS_PARSE_MORE;
	if (ext == 0)
		n = b[1] & 0x7f;
	for (size_t i = 0; i < ext; i++)
		n = n << 8 | b[2 + i];
	if ((ext == 2 && n < 126) || (ext == 8 && (n < 65536 || n >= (1ull << 63))))
		return WS_PARSE_ERROR;
	if (op >= 8 && (!(b[0] & 0x80) || n > 125))
		return WS_PARSE_ERROR;
	return n > max_len ? WS_PARSE_TOOBIG : WS_PARSE_OK;
}

static void check_header(const uint8_t *b, size_t len, uint64_t max_len)
{
	enum ws_parse_rc rc, want = ref_parse(b, len, max_len);
	uint8_t h[WS_HEADER_MAX];
	struct ws_frame f;
	size_t hl;

	rc = ws_parse_header(b, len, max_len, &f);
	FUZZ_CHECK(rc == want);
	if (rc != WS_PARSE_OK)
		return;
	FUZZ_CHECK(f.header_len <= len && f.len <= max_len);
	FUZZ_CHECK(f.fin == ((b[0] & 0x80) != 0) && f.opcode == (b[0] & 0x0f));
	FUZZ_CHECK(memcmp(f.mask, b + f.header_len - 4, 4) == 0);
	/* The same length form as a server frame of that length (§5.2). */
	hl = ws_frame_header(f.opcode, f.len, h);
	FUZZ_CHECK(hl + 4 == f.header_len);
	FUZZ_CHECK((h[1] & 0x7f) == (b[1] & 0x7f) && memcmp(h + 2, b + 2, hl - 2) == 0);
}

/* One frame the reader took: opcode, fin, the unmasked payload's hash. */
struct taken {
	uint8_t opcode;
	bool fin;
	uint64_t len, hash;
};

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ull;
	return h;
}

/* Reads the stream as ws_readcb does, in reads of the sizes rng gives
 * (none: in one read); the frames taken until an error or the end. */
static size_t read_stream(const uint8_t *data, size_t size, uint64_t max_len, uint64_t *rng,
    struct taken *out, size_t cap, enum ws_parse_rc *last)
{
	size_t have = 0, pos = 0, n = 0;
	struct ws_frame f;

	*last = WS_PARSE_MORE;
	while (have < size && n < cap) {
		have += rng ? fuzz_chunk(rng, size - have) : size - have;
		for (;;) {
			*last = ws_parse_header(data + pos, have - pos, max_len, &f);
			if (*last != WS_PARSE_OK || have - pos - f.header_len < f.len)
				break;
			uint8_t *p = malloc(f.len ? (size_t)f.len : 1);
			FUZZ_CHECK(p != NULL);
			memcpy(p, data + pos + f.header_len, (size_t)f.len);
			ws_unmask(p, (size_t)f.len, f.mask, 0);
			out[n++] = (struct taken){ f.opcode, f.fin, f.len, fnv(0xcbf29ce484222325ull, p,
			    (size_t)f.len) };
			free(p);
			pos += f.header_len + (size_t)f.len;
			if (n == cap)
				break;
		}
		if (*last == WS_PARSE_ERROR || *last == WS_PARSE_TOOBIG)
			break;
	}
	return n;
}

static void check_unmask(const uint8_t *data, size_t size, uint64_t *rng)
{
	uint8_t mask[4] = { 0x37, 0xfa, 0x21, 0x3d }, *a, *b;
	size_t at = 0, n;

	if (size > 4096)
		size = 4096;
	if (size >= 4)
		memcpy(mask, data, 4);
	a = malloc(size + 1);
	b = malloc(size + 1);
	FUZZ_CHECK(a != NULL && b != NULL);
	memcpy(a, data, size);
	memcpy(b, data, size);
	ws_unmask(a, size, mask, 0);
	while (at < size) {
		n = fuzz_chunk(rng, size - at);
		ws_unmask(b + at, n, mask, at);
		at += n;
	}
	FUZZ_CHECK(memcmp(a, b, size) == 0);
	ws_unmask(a, size, mask, 0);
	FUZZ_CHECK(memcmp(a, data, size) == 0);
	free(a);
	free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint64_t maxes[] = { 0, 125, 126, 65535, 65536, UINT64_MAX };
	struct taken whole[64], split[64];
	enum ws_parse_rc lw, ls;
	uint64_t rng = fuzz_seed(&data, &size), max_len;
	size_t nw, ns;

	if (size == 0)
		return 0;
	max_len = maxes[data[0] % (sizeof(maxes) / sizeof(maxes[0]))];
	data++;
	size--;
	/* Every prefix of a header, up to the longest one. */
	for (size_t n = 0; n <= size && n <= WS_HEADER_MAX + 1; n++)
		check_header(data, n, max_len);
	nw = read_stream(data, size, max_len, NULL, whole, 64, &lw);
	ns = read_stream(data, size, max_len, &rng, split, 64, &ls);
	FUZZ_CHECK(nw == ns);
	for (size_t i = 0; i < nw; i++)
		FUZZ_CHECK(whole[i].opcode == split[i].opcode && whole[i].fin == split[i].fin &&
		    whole[i].len == split[i].len && whole[i].hash == split[i].hash);
	if (nw < 64)
		FUZZ_CHECK(lw == ls);
	check_unmask(data, size, &rng);
	return 0;
}

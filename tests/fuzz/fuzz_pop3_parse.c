/*
 * POP3: the command-line parser on the input as a line; the byte-stuffing
 * encoder and the TOP counter on the input as message bytes, fed in one
 * piece and in chunks (same output), and the stuffed response checked:
 * it ends in CRLF "." CRLF and no line of it but the last is a lone ".".
 */
#include <stdbool.h>
#include <stdint.h>

#include "mailsnare/pop3_parse.h"
#include "fuzz.h"

static int emit(void *arg, const void *buf, size_t len)
{
	fbuf_add(arg, buf, len);
	return 0;
}

static void parse_line(const uint8_t *d, size_t n)
{
	char *line = fuzz_strdup(d, n > 2048 ? 2048 : n);
	char w1[64], rest[256];
	const char *args, *p;
	enum pop3_verb v = pop3_parse_verb(line, &args);
	uint32_t msg;
	uint64_t cnt;

	FUZZ_CHECK(v < POP3_CMD_COUNT && args != NULL);
	FUZZ_CHECK(*args == '\0' || (args >= line && args <= line + strlen(line)));
	(void)pop3_verb_name(v);
	p = args;
	if (pop3_parse_msgno(&p, &msg) == 0) {
		FUZZ_CHECK(msg >= 1 && msg <= POP3_MSGNO_MAX);
		FUZZ_CHECK(p > args);
		(void)pop3_parse_count(&p, &cnt);
	}
	if (pop3_parse_two_words(args, w1, sizeof(w1), rest, sizeof(rest)) == 0) {
		FUZZ_CHECK(w1[0] != '\0' && strlen(w1) < sizeof(w1) && strlen(rest) < sizeof(rest));
		FUZZ_CHECK(strchr(w1, ' ') == NULL);
	}
	free(line);
}

static void stuff(const uint8_t *d, size_t n, bool split, uint64_t seed, struct fbuf *out)
{
	struct pop3_stuff st;
	size_t off = 0;

	pop3_stuff_init(&st);
	while (off < n) {
		size_t len = split ? fuzz_chunk(&seed, n - off) : n - off;
		FUZZ_CHECK(pop3_stuff_feed(&st, d + off, len, emit, out) == 0);
		off += len;
	}
	FUZZ_CHECK(pop3_stuff_finish(&st, emit, out) == 0);
}

static size_t top(const uint8_t *d, size_t n, uint64_t lines, bool split, uint64_t seed)
{
	struct pop3_top t;
	size_t off = 0, taken = 0;

	pop3_top_init(&t, lines);
	while (off < n && !t.done) {
		size_t len = split ? fuzz_chunk(&seed, n - off) : n - off;
		size_t k = pop3_top_feed(&t, d + off, len);
		FUZZ_CHECK(k <= len);
		FUZZ_CHECK(k == len || t.done);
		taken += k;
		off += len;
	}
	return taken;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fbuf a = { 0 }, b = { 0 };
	uint64_t seed, lines;

	parse_line(data, size);
	if (size < 1)
		return 0;
	lines = data[0] % 8;
	seed = fuzz_seed(&data, &size);
	stuff(data, size, false, seed, &a);
	stuff(data, size, true, seed, &b);
	FUZZ_CHECK(fbuf_eq(&a, &b));
	FUZZ_CHECK(a.len >= 3 && memcmp(a.p + a.len - 3, ".\r\n", 3) == 0);
	FUZZ_CHECK(a.len == 3 || (a.len >= 5 && memcmp(a.p + a.len - 5, "\r\n.\r\n", 5) == 0));
	/* A lone "." line (after an LF) appears only at the end. */
	for (size_t i = 0; i + 3 < a.len; i++) {
		bool bol = i == 0 || a.p[i - 1] == '\n';
		if (bol && a.p[i] == '.')
			FUZZ_CHECK(a.p[i + 1] == '.' || i + 3 == a.len);
	}
	FUZZ_CHECK(top(data, size, lines, false, seed) == top(data, size, lines, true, seed));
	fbuf_free(&a);
	fbuf_free(&b);
	return 0;
}

/* DATA/BDAT decoder: terminator, unstuffing, normalisation, smuggling,
 * and the same result for input split at every offset. */
#include <criterion/criterion.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/smtp_data.h"

struct sinkbuf {
	char buf[8192];
	size_t len;
};

static int sink(void *arg, const char *p, size_t n)
{
	struct sinkbuf *b = arg;

	cr_assert_leq(b->len + n, sizeof(b->buf));
	memcpy(b->buf + b->len, p, n);
	b->len += n;
	return 0;
}

/* Decodes in one go; returns bytes consumed. */
static size_t decode(const char *in, size_t len, bool dot, struct sinkbuf *out,
    struct smtp_data *d)
{
	ssize_t r;

	memset(out, 0, sizeof(*out));
	smtp_data_init(d, dot);
	r = smtp_data_feed(d, in, len, sink, out);
	cr_assert_geq(r, 0);
	return (size_t)r;
}

#define S(x) x, sizeof(x) - 1

Test(smtp_data, terminator_and_unstuffing)
{
	struct smtp_data d;
	struct sinkbuf out;
	const char in[] = "Subject: x\r\n\r\n..leading dot\r\nplain\r\n.\r\nQUIT\r\n";
	size_t used = decode(S(in), true, &out, &d);

	cr_assert(d.done);
	cr_assert_eq(used, sizeof(in) - 1 - strlen("QUIT\r\n"));
	cr_assert_eq(out.len, strlen("Subject: x\r\n\r\n.leading dot\r\nplain\r\n"));
	cr_assert_arr_eq(out.buf, "Subject: x\r\n\r\n.leading dot\r\nplain\r\n", out.len);
}

Test(smtp_data, empty_message)
{
	struct smtp_data d;
	struct sinkbuf out;

	cr_assert_eq(decode(S(".\r\n"), true, &out, &d), 3);
	cr_assert(d.done);
	cr_assert_eq(out.len, 0);
}

Test(smtp_data, bare_lf_normalised)
{
	struct smtp_data d;
	struct sinkbuf out;

	decode(S("a\nb\r\n.\r\n"), true, &out, &d);
	cr_assert(d.done);
	cr_assert_eq(out.len, 6);
	cr_assert_arr_eq(out.buf, "a\r\nb\r\n", 6);
}

Test(smtp_data, smuggling_sequences_are_data)
{
	struct smtp_data d;
	struct sinkbuf out;
	const char *cases[] = {
		"x\n.\nMAIL FROM:<evil@example>\r\n",
		"x\n.\r\nMAIL FROM:<evil@example>\r\n",
		"x\r\n.\nMAIL FROM:<evil@example>\r\n",
		"x\r.\rMAIL FROM:<evil@example>\r\n",
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		decode(cases[i], strlen(cases[i]), true, &out, &d);
		cr_assert_not(d.done, "case %zu ended DATA", i);
		cr_assert_not_null(memmem(out.buf, out.len, "MAIL FROM:<evil@example>", 24));
	}
}

Test(smtp_data, lone_dot_after_bare_lf_kept)
{
	struct smtp_data d;
	struct sinkbuf out;

	decode(S("x\n.\ny\r\n.\r\n"), true, &out, &d);
	cr_assert(d.done);
	cr_assert_eq(out.len, strlen("x\r\n.\r\ny\r\n"));
	cr_assert_arr_eq(out.buf, "x\r\n.\r\ny\r\n", out.len);
}

Test(smtp_data, bare_cr_kept)
{
	struct smtp_data d;
	struct sinkbuf out;

	decode(S("a\rb\r\n.\r\n"), true, &out, &d);
	cr_assert_eq(out.len, 5);
	cr_assert_arr_eq(out.buf, "a\rb\r\n", 5);
}

Test(smtp_data, line_length_limit)
{
	struct smtp_data d;
	struct sinkbuf out;
	char in[1100];

	memset(in, 'a', 998);
	memcpy(in + 998, "\r\n.\r\n", 5);
	decode(in, 1003, true, &out, &d);
	cr_assert(d.done);
	cr_assert_not(d.line_too_long, "998 octets + CRLF is allowed");
	memset(in, 'a', 999);
	memcpy(in + 999, "\r\n.\r\n", 5);
	decode(in, 1004, true, &out, &d);
	cr_assert(d.done);
	cr_assert(d.line_too_long);
}

Test(smtp_data, bdat_mode_takes_dots_verbatim)
{
	struct smtp_data d;
	struct sinkbuf out;

	decode(S("a\r\n.\r\n..b\nc\r"), false, &out, &d);
	cr_assert_not(d.done);
	cr_assert_eq(smtp_data_finish(&d, sink, &out), 0);
	cr_assert_eq(out.len, strlen("a\r\n.\r\n..b\r\nc\r"));
	cr_assert_arr_eq(out.buf, "a\r\n.\r\n..b\r\nc\r", out.len);
}

/* Every split point gives the same bytes and the same end. */
Test(smtp_data, split_at_every_offset)
{
	const char in[] = "H: v\r\n\r\n..a\nb\r\n.x\r\n\n.\n\r\n.\r\nNEXT";
	struct sinkbuf whole, part;
	struct smtp_data d;
	size_t used_whole = decode(S(in), true, &whole, &d);

	for (size_t cut = 0; cut <= sizeof(in) - 1; cut++) {
		size_t used;
		memset(&part, 0, sizeof(part));
		smtp_data_init(&d, true);
		used = (size_t)smtp_data_feed(&d, in, cut, sink, &part);
		if (!d.done)
			used += (size_t)smtp_data_feed(&d, in + cut, sizeof(in) - 1 - cut, sink, &part);
		cr_assert(d.done, "cut %zu", cut);
		cr_assert_eq(used, used_whole, "cut %zu", cut);
		cr_assert_eq(part.len, whole.len, "cut %zu", cut);
		cr_assert_arr_eq(part.buf, whole.buf, whole.len, "cut %zu", cut);
	}
}

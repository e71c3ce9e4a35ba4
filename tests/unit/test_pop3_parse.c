/* POP3 command lines, byte-stuffing (split at every offset), TOP line
 * counting, and SASL exchanges framed as POP3 sends them. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/base64.h"
#include "mailsnare/pop3_parse.h"
#include "mailsnare/sasl.h"

/* --- command lines --------------------------------------------------- */

Test(pop3_parse, verbs_case_insensitive)
{
	const char *args;

	cr_expect_eq(pop3_parse_verb("USER dev", &args), POP3_CMD_USER);
	cr_expect_str_eq(args, "dev");
	cr_expect_eq(pop3_parse_verb("user dev", &args), POP3_CMD_USER);
	cr_expect_eq(pop3_parse_verb("uSeR dev", &args), POP3_CMD_USER);
	cr_expect_eq(pop3_parse_verb("stat", &args), POP3_CMD_STAT);
	cr_expect_str_eq(args, "");
	cr_expect_eq(pop3_parse_verb("Top 1 10", &args), POP3_CMD_TOP);
	cr_expect_str_eq(args, "1 10");
	cr_expect_eq(pop3_parse_verb("LIST   3", &args), POP3_CMD_LIST);
	cr_expect_str_eq(args, "3");
	cr_expect_eq(pop3_parse_verb("STLS", &args), POP3_CMD_STLS);
	cr_expect_eq(pop3_parse_verb("capa", &args), POP3_CMD_CAPA);
	cr_expect_eq(pop3_parse_verb("APOP dev 0123", &args), POP3_CMD_APOP);
	cr_expect_str_eq(args, "dev 0123");
	cr_expect_eq(pop3_parse_verb("AUTH PLAIN AGRldgBkZXY=", &args), POP3_CMD_AUTH);
	cr_expect_str_eq(args, "PLAIN AGRldgBkZXY=");
	for (int v = POP3_CMD_UNKNOWN + 1; v < POP3_CMD_COUNT; v++)
		cr_expect_eq(pop3_parse_verb(pop3_verb_name(v), &args), v, "%s", pop3_verb_name(v));
}

Test(pop3_parse, unknown_verbs)
{
	const char *args;

	cr_expect_eq(pop3_parse_verb("", &args), POP3_CMD_UNKNOWN);
	cr_expect_str_eq(args, "");
	cr_expect_eq(pop3_parse_verb("USERX dev", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb("USE dev", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb(" USER dev", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb("XTND XMIT", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb("US", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb("EHLO x", &args), POP3_CMD_UNKNOWN);
	cr_expect_eq(pop3_parse_verb("USER\tdev", &args), POP3_CMD_UNKNOWN);
	cr_expect_str_eq(pop3_verb_name(POP3_CMD_UNKNOWN), "");
	cr_expect_str_eq(pop3_verb_name(POP3_CMD_COUNT), "");
}

Test(pop3_parse, message_numbers)
{
	const char *p;
	uint32_t n;
	uint64_t c;

	p = "1";
	cr_expect_eq(pop3_parse_msgno(&p, &n), 0);
	cr_expect_eq(n, 1);
	cr_expect_str_eq(p, "");
	p = "42 7";
	cr_expect_eq(pop3_parse_msgno(&p, &n), 0);
	cr_expect_eq(n, 42);
	cr_expect_str_eq(p, "7");
	cr_expect_eq(pop3_parse_count(&p, &c), 0);
	cr_expect_eq(c, 7);
	p = "1000000000";
	cr_expect_eq(pop3_parse_msgno(&p, &n), 0);
	cr_expect_eq(n, POP3_MSGNO_MAX);

	const char *bad[] = { "", "0", "-1", "+1", "1x", "x", " 1", "1000000001",
		"99999999999999999999999", "1.5", "0x10" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p = bad[i];
		cr_expect_eq(pop3_parse_msgno(&p, &n), -1, "\"%s\"", bad[i]);
		cr_expect_eq(p, bad[i], "pointer moved on \"%s\"", bad[i]);
	}
	p = "0";
	cr_expect_eq(pop3_parse_count(&p, &c), 0);
	cr_expect_eq(c, 0);
	p = "18446744073709551615";
	cr_expect_eq(pop3_parse_count(&p, &c), 0);
	cr_expect_eq(c, UINT64_MAX);
	p = "18446744073709551616";
	cr_expect_eq(pop3_parse_count(&p, &c), -1);
	p = "-0";
	cr_expect_eq(pop3_parse_count(&p, &c), -1);
}

Test(pop3_parse, two_words)
{
	char w[8], rest[16];

	cr_expect_eq(pop3_parse_two_words("dev c4c9", w, sizeof(w), rest, sizeof(rest)), 0);
	cr_expect_str_eq(w, "dev");
	cr_expect_str_eq(rest, "c4c9");
	cr_expect_eq(pop3_parse_two_words("PLAIN", w, sizeof(w), rest, sizeof(rest)), 0);
	cr_expect_str_eq(w, "PLAIN");
	cr_expect_str_eq(rest, "");
	cr_expect_eq(pop3_parse_two_words("a   b c  ", w, sizeof(w), rest, sizeof(rest)), 0);
	cr_expect_str_eq(rest, "b c");
	cr_expect_eq(pop3_parse_two_words("", w, sizeof(w), rest, sizeof(rest)), -1);
	cr_expect_eq(pop3_parse_two_words("toolongword x", w, sizeof(w), rest, sizeof(rest)), -1);
	cr_expect_eq(pop3_parse_two_words("a 0123456789abcdef", w, sizeof(w), rest, sizeof(rest)),
	    -1);
	/* Exactly at the bounds. */
	cr_expect_eq(pop3_parse_two_words("1234567 0123456789abcde", w, sizeof(w), rest,
	    sizeof(rest)), 0);
}

/* --- byte-stuffing ---------------------------------------------------- */

struct out {
	char *buf;
	size_t len, cap;
	unsigned calls;
};

static int out_emit(void *arg, const void *buf, size_t len)
{
	struct out *o = arg;

	cr_assert(len > 0, "empty emit");
	if (o->len + len + 1 > o->cap) {
		o->cap = (o->len + len + 1) * 2;
		o->buf = realloc(o->buf, o->cap);
		cr_assert_not_null(o->buf);
	}
	memcpy(o->buf + o->len, buf, len);
	o->len += len;
	o->buf[o->len] = '\0';
	o->calls++;
	return 0;
}

/* The encoder's output for `in`, fed whole or cut at `split` (and again
 * cut into single bytes when split is SIZE_MAX). */
static void stuff(const char *in, size_t len, size_t split, struct out *o)
{
	struct pop3_stuff st;

	memset(o, 0, sizeof(*o));
	pop3_stuff_init(&st);
	if (split == SIZE_MAX) {
		for (size_t i = 0; i < len; i++)
			cr_assert_eq(pop3_stuff_feed(&st, in + i, 1, out_emit, o), 0);
	} else {
		cr_assert_eq(pop3_stuff_feed(&st, in, split, out_emit, o), 0);
		cr_assert_eq(pop3_stuff_feed(&st, in + split, len - split, out_emit, o), 0);
	}
	cr_assert_eq(pop3_stuff_finish(&st, out_emit, o), 0);
}

/* Every split gives the same bytes as the expected encoding. */
static void check_stuff(const char *in, const char *want)
{
	size_t len = strlen(in);
	struct out o;

	for (size_t split = 0; split <= len; split++) {
		stuff(in, len, split, &o);
		cr_assert_eq(o.len, strlen(want), "split %zu of \"%s\": got \"%s\"", split, in,
		    o.buf);
		cr_assert_eq(memcmp(o.buf, want, o.len), 0, "split %zu of \"%s\": got \"%s\"",
		    split, in, o.buf);
		free(o.buf);
	}
	stuff(in, len, SIZE_MAX, &o);
	cr_assert_str_eq(o.buf, want, "bytewise \"%s\"", in);
	free(o.buf);
}

Test(pop3_stuff, plain_message)
{
	check_stuff("Subject: x\r\n\r\nhello\r\n", "Subject: x\r\n\r\nhello\r\n.\r\n");
}

Test(pop3_stuff, leading_dots)
{
	check_stuff(".\r\n", "..\r\n.\r\n");
	check_stuff("a\r\n.\r\nb\r\n", "a\r\n..\r\nb\r\n.\r\n");
	check_stuff("a\r\n..two\r\n.one\r\n", "a\r\n...two\r\n..one\r\n.\r\n");
	check_stuff("x.\r\n a.b\r\n", "x.\r\n a.b\r\n.\r\n");
	check_stuff(".\r\n.\r\n.\r\n", "..\r\n..\r\n..\r\n.\r\n");
	/* A smuggled terminator inside the message stays data. */
	check_stuff("a\r\n.\r\nRSET\r\n", "a\r\n..\r\nRSET\r\n.\r\n");
}

Test(pop3_stuff, not_ending_in_crlf)
{
	check_stuff("no newline", "no newline\r\n.\r\n");
	check_stuff("a\r\nlast.", "a\r\nlast.\r\n.\r\n");
	check_stuff("a\r\n.", "a\r\n..\r\n.\r\n");
	check_stuff("ends in cr\r", "ends in cr\r\r\n.\r\n");
	/* A bare LF is a line start for stuffing, but not the CRLF the
	 * terminator needs in front. */
	check_stuff("bare\n", "bare\n\r\n.\r\n");
	check_stuff("bare\n.dot\r\n", "bare\n..dot\r\n.\r\n");
	/* A CR alone does not start a line. */
	check_stuff("a\r.b\r\n", "a\r.b\r\n.\r\n");
}

Test(pop3_stuff, empty_message)
{
	check_stuff("", ".\r\n");
}

Test(pop3_stuff, few_emits_for_long_lines)
{
	/* Runs go out whole: no per-byte emit for ordinary text. */
	static char in[80 * 800];  /* whole 80-octet lines */
	struct out o;

	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (i % 80 == 78) ? '\r' : (i % 80 == 79) ? '\n' : 'a' + (char)(i % 26);
	stuff(in, sizeof(in), sizeof(in) / 2, &o);
	cr_expect_leq(o.calls, 4);
	cr_expect_eq(o.len, sizeof(in) + 3);
	free(o.buf);
}

Test(pop3_stuff, random_against_reference)
{
	/* A simple reference: scan byte by byte. */
	char in[200], want[600];
	struct out o;
	unsigned seed = 1;

	for (int round = 0; round < 300; round++) {
		size_t len = (size_t)(rand_r(&seed) % sizeof(in)), w = 0;
		bool bol = true;
		for (size_t i = 0; i < len; i++)
			in[i] = ".\r\nab"[rand_r(&seed) % 5];
		in[len] = '\0';
		for (size_t i = 0; i < len; i++) {
			if (bol && in[i] == '.')
				want[w++] = '.';
			want[w++] = in[i];
			bol = in[i] == '\n';
		}
		if (!(len >= 2 && in[len - 2] == '\r' && in[len - 1] == '\n') && len > 0) {
			want[w++] = '\r';
			want[w++] = '\n';
		}
		memcpy(want + w, ".\r\n", 4);
		for (size_t split = 0; split <= len; split += 7) {
			stuff(in, len, split, &o);
			cr_assert_str_eq(o.buf, want, "round %d split %zu", round, split);
			free(o.buf);
		}
	}
}

/* --- TOP ----------------------------------------------------------------- */

static const char top_msg[] =
    "Received: from x\r\n\tby y\r\n"
    "Subject: top\r\n"
    "\r\n"
    "line 1\r\n"
    "line 2\r\n"
    "\r\n"
    "line 4\r\n";

/* The bytes TOP keeps of msg for n lines, feeding it cut at split. */
static size_t top_len(const char *msg, size_t len, uint64_t n, size_t split, bool *done)
{
	struct pop3_top t;
	size_t kept;

	pop3_top_init(&t, n);
	if (split > len)
		split = len;
	kept = pop3_top_feed(&t, msg, split);
	if (!t.done && kept == split)
		kept += pop3_top_feed(&t, msg + split, len - split);
	*done = t.done;
	return kept;
}

static void check_top(const char *msg, uint64_t n, const char *want, bool want_done)
{
	size_t len = strlen(msg);
	bool done;

	for (size_t split = 0; split <= len; split++) {
		size_t kept = top_len(msg, len, n, split, &done);
		cr_assert_eq(kept, strlen(want), "n=%llu split %zu: kept \"%.*s\"",
		    (unsigned long long)n, split, (int)kept, msg);
		cr_assert_eq(memcmp(msg, want, kept), 0);
		cr_assert_eq(done, want_done, "n=%llu split %zu", (unsigned long long)n, split);
	}
}

Test(pop3_top, header_and_lines)
{
	const char *hdr = "Received: from x\r\n\tby y\r\nSubject: top\r\n\r\n";
	char want[256];

	check_top(top_msg, 0, hdr, true);
	snprintf(want, sizeof(want), "%sline 1\r\n", hdr);
	check_top(top_msg, 1, want, true);
	snprintf(want, sizeof(want), "%sline 1\r\nline 2\r\n\r\n", hdr);
	check_top(top_msg, 3, want, true);
	check_top(top_msg, 4, top_msg, true);
}

Test(pop3_top, beyond_the_end)
{
	check_top(top_msg, 5, top_msg, false);
	check_top(top_msg, UINT64_MAX, top_msg, false);
	/* A last line without CRLF is a line. */
	check_top("A: b\r\n\r\none\r\ntwo", 5, "A: b\r\n\r\none\r\ntwo", false);
	check_top("A: b\r\n\r\none\r\ntwo", 1, "A: b\r\n\r\none\r\n", true);
}

Test(pop3_top, no_body)
{
	/* All header, no blank line: the whole message. */
	check_top("A: b\r\nC: d\r\n", 0, "A: b\r\nC: d\r\n", false);
	check_top("", 0, "", false);
	/* Blank line at the very start: the header section is empty. */
	check_top("\r\nbody\r\n", 0, "\r\n", true);
	check_top("\r\nbody\r\n", 1, "\r\nbody\r\n", true);
	/* A header line with a CR inside is not a blank line. */
	check_top("A: \rb\r\n\r\nx\r\n", 0, "A: \rb\r\n\r\n", true);
	/* Bare LF line ends count too. */
	check_top("A: b\n\nx\ny\n", 1, "A: b\n\nx\n", true);
}

/* --- SASL framed as POP3 AUTH (RFC 5034) ---------------------------------- */

/* "AUTH PLAIN <initial>": the verb, then mechanism and initial response
 * split as the session does, then the shared SASL module. */
Test(pop3_sasl, plain_initial_response)
{
	const char *args;
	char mech[32], initial[POP3_AUTH_LINE_MAX], out[SASL_OUT_MAX];
	struct sasl s;

	cr_assert_eq(pop3_parse_verb("AUTH PLAIN AGRldgBzZWNyZXQ=", &args), POP3_CMD_AUTH);
	cr_assert_eq(pop3_parse_two_words(args, mech, sizeof(mech), initial, sizeof(initial)), 0);
	cr_assert_eq(sasl_mech_parse(mech), SASL_MECH_PLAIN);
	cr_assert_eq(sasl_start(&s, SASL_MECH_PLAIN, initial, "h", out, sizeof(out)), SASL_DONE);
	cr_expect_str_eq(s.user, "dev");
	cr_expect(sasl_verify(&s, "secret"));
	cr_expect_not(sasl_verify(&s, "wrong"));
}

Test(pop3_sasl, login_exchange_and_cancel)
{
	char out[SASL_OUT_MAX], line[64];
	struct sasl s;

	/* "+ VXNlcm5hbWU6" then the user, "+ UGFzc3dvcmQ6" then the password. */
	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_expect_str_eq(out, "VXNlcm5hbWU6");
	base64_encode("dev", 3, line, sizeof(line));
	cr_assert_eq(sasl_step(&s, line, out, sizeof(out)), SASL_CONTINUE);
	base64_encode("dev", 3, line, sizeof(line));
	cr_assert_eq(sasl_step(&s, line, out, sizeof(out)), SASL_DONE);
	cr_expect(sasl_verify(&s, "dev"));
	/* "*" cancels (RFC 5034 §4: the server answers -ERR). */
	cr_assert_eq(sasl_start(&s, SASL_MECH_LOGIN, NULL, "h", out, sizeof(out)), SASL_CONTINUE);
	cr_expect_eq(sasl_step(&s, "*", out, sizeof(out)), SASL_CANCELLED);
}

Test(pop3_sasl, cram_md5_exchange)
{
	char out[SASL_OUT_MAX], challenge[SASL_CHALLENGE_MAX], digest[33], resp[128], line[256];
	ssize_t n;
	struct sasl s;

	cr_assert_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, NULL, "pop.test", out, sizeof(out)),
	    SASL_CONTINUE);
	n = base64_decode(out, strlen(out), challenge, sizeof(challenge) - 1);
	cr_assert_gt(n, 0);
	challenge[n] = '\0';
	cr_expect(strstr(challenge, "@pop.test>") != NULL, "%s", challenge);
	sasl_hmac_md5_hex("dev", challenge, digest);
	snprintf(resp, sizeof(resp), "dev %s", digest);
	base64_encode(resp, strlen(resp), line, sizeof(line));
	cr_assert_eq(sasl_step(&s, line, out, sizeof(out)), SASL_DONE);
	cr_expect(sasl_verify(&s, "dev"));
	cr_expect_not(sasl_verify(&s, "dew"));
	/* An initial response makes no sense for CRAM-MD5. */
	cr_expect_eq(sasl_start(&s, SASL_MECH_CRAM_MD5, "abc", "h", out, sizeof(out)),
	    SASL_MALFORMED);
}

/* IMAP command assembly and generic arguments: byte strings in, events out. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailsnare/imap_parse.h"

/* ---- helpers: a dump of the argument tree and a transcript of events */

struct out {
	char s[16384];
	size_t len;
};

static void put(struct out *o, const char *s, size_t n)
{
	for (size_t i = 0; i < n && o->len + 3 < sizeof(o->s); i++) {
		if (s[i] == '\0') {
			o->s[o->len++] = '\\';
			o->s[o->len++] = '0';
		} else {
			o->s[o->len++] = s[i];
		}
	}
	o->s[o->len] = '\0';
}

static void puts_(struct out *o, const char *s)
{
	put(o, s, strlen(s));
}

static void dump_args(struct out *o, const struct imap_arg *a, size_t n)
{
	char num[32];

	for (size_t i = 0; i < n; i++) {
		if (i > 0)
			puts_(o, " ");
		switch (a[i].type) {
		case IMAP_ARG_ATOM:
			put(o, a[i].str, a[i].len);
			break;
		case IMAP_ARG_QUOTED:
			puts_(o, "q:");
			put(o, a[i].str, a[i].len);
			break;
		case IMAP_ARG_LITERAL:
			snprintf(num, sizeof(num), "%sl%zu%s:", a[i].flags & IMAP_AF_LITERAL8 ? "~" : "",
			    a[i].len, a[i].flags & IMAP_AF_NONSYNC ? "+" : "");
			puts_(o, num);
			put(o, a[i].str, a[i].len);
			break;
		case IMAP_ARG_LIST:
			puts_(o, "(");
			dump_args(o, a[i].list, a[i].count);
			puts_(o, ")");
			break;
		case IMAP_ARG_SECTION:
			puts_(o, "S:");
			puts_(o, a[i].str);
			puts_(o, "[");
			dump_args(o, a[i].list, a[i].count);
			puts_(o, "]");
			puts_(o, a[i].partial);
			break;
		}
	}
}

static void dump_cmd(struct out *o, const struct imap_command *c)
{
	puts_(o, c->tag);
	puts_(o, "|");
	puts_(o, c->verb);
	puts_(o, "|");
	dump_args(o, c->args, c->nargs);
}

static struct imap_limits deflim(void)
{
	struct imap_limits l;

	imap_limits_default(&l);
	return l;
}

/* Feeds one chunk like a session would, appending events to o. */
static void feed_chunk(struct imap_reader *r, const char *p, size_t n, struct out *o)
{
	while (n > 0) {
		size_t used = 0;
		enum imap_read_rc rc = imap_reader_feed(r, p, n, &used);
		char ev[IMAP_TAG_MAX + IMAP_ERRMSG_MAX + 64];
		struct imap_command *c;

		cr_assert_leq(used, n);
		p += used;
		n -= used;
		switch (rc) {
		case IMAP_READ_MORE:
			cr_assert_eq(n, 0);
			break;
		case IMAP_READ_CONTINUE:
			snprintf(ev, sizeof(ev), "+%llu;",
			    (unsigned long long)imap_reader_literal_size(r));
			puts_(o, ev);
			break;
		case IMAP_READ_COMMAND:
			c = imap_reader_take(r);
			cr_assert_not_null(c);
			puts_(o, "C:");
			dump_cmd(o, c);
			puts_(o, ";");
			imap_command_free(c);
			break;
		case IMAP_READ_ERROR:
			snprintf(ev, sizeof(ev), "E%d:%s:%s;", imap_reader_error(r)->code,
			    imap_reader_error(r)->tag, imap_reader_error(r)->msg);
			puts_(o, ev);
			break;
		}
	}
}

/* Transcript of the input fed in pieces cut at the given offsets. */
static void run_cuts(const struct imap_limits *l, const char *in, size_t len,
    const size_t *cuts, size_t ncuts, struct out *o)
{
	struct imap_reader *r = imap_reader_new(l);
	size_t at = 0;

	o->len = 0;
	o->s[0] = '\0';
	for (size_t i = 0; i <= ncuts; i++) {
		size_t to = i < ncuts ? cuts[i] : len;

		feed_chunk(r, in + at, to - at, o);
		at = to;
	}
	imap_reader_free(r);
}

static void run(const struct imap_limits *l, const char *in, size_t len, struct out *o)
{
	run_cuts(l, in, len, NULL, 0, o);
}

#define RUN(l, lit, o) run((l), (lit), sizeof(lit) - 1, (o))

static struct imap_command *parse(const char *s, size_t len)
{
	struct imap_limits l = deflim();
	struct imap_command *c;
	struct imap_error e;

	cr_assert_eq(imap_parse_command(&l, s, len, &c, &e), 0, "parse failed: %s", e.msg);
	return c;
}

#define PARSE(lit) parse((lit), sizeof(lit) - 1)

static enum imap_err parse_fail(const struct imap_limits *l, const char *s, size_t len)
{
	struct imap_command *c;
	struct imap_error e;

	cr_assert_neq(imap_parse_command(l, s, len, &c, &e), 0, "unexpectedly parsed: %s", s);
	cr_assert_null(c);
	cr_assert_neq(e.code, IMAP_ERR_NONE);
	cr_assert_neq(e.msg[0], '\0');
	return e.code;
}

#define FAIL(lit) ({ struct imap_limits l_ = deflim(); parse_fail(&l_, (lit), sizeof(lit) - 1); })

static void expect_dump(const char *in, size_t len, const char *want)
{
	struct imap_command *c = parse(in, len);
	struct out o = { .len = 0 };

	dump_cmd(&o, c);
	cr_assert_str_eq(o.s, want);
	imap_command_free(c);
}

#define DUMP(lit, want) expect_dump((lit), sizeof(lit) - 1, (want))

/* ---- simple commands */

Test(imap_parse, tag_verb_and_no_args)
{
	struct imap_command *c = PARSE("a001 noop\r\n");

	cr_assert_str_eq(c->tag, "a001");
	cr_assert_str_eq(c->verb, "NOOP");
	cr_assert_eq(c->nargs, 0);
	/* No nodes, no pointer arithmetic on NULL (fuzz_imap_reader found
	 * parse_all computing NULL + 0 here under UBSan). */
	cr_assert_null(c->args);
	cr_assert_not(c->uid);
	imap_command_free(c);
	DUMP("A1 CAPABILITY\n", "A1|CAPABILITY|");
	DUMP("x]y LOGOUT\r\n", "x]y|LOGOUT|");
	/* tolerated: a space after a verb without arguments */
	DUMP("a NOOP \r\n", "a|NOOP|");
}

Test(imap_parse, uid_prefix_joins_verb)
{
	struct imap_command *c = PARSE("t1 uid fetch 1:* (FLAGS)\r\n");

	cr_assert(c->uid);
	cr_assert_str_eq(c->verb, "UID FETCH");
	cr_assert_eq(c->nargs, 2);
	imap_command_free(c);
	cr_assert_eq(FAIL("t1 UID\r\n"), IMAP_ERR_SYNTAX);
}

Test(imap_parse, atoms_quoted_nil_lists)
{
	DUMP("a LOGIN user \"p a\\\"ss\\\\\"\r\n", "a|LOGIN|user q:p a\"ss\\");
	DUMP("a X NIL \"\" ()\r\n", "a|X|NIL q: ()");
	DUMP("a X (a (b (c \"d\")) NIL)\r\n", "a|X|(a (b (c q:d)) NIL)");
	DUMP("a STORE 1 +FLAGS.SILENT (\\Seen \\Deleted $Label)\r\n",
	    "a|STORE|1 +FLAGS.SILENT (\\Seen \\Deleted $Label)");
	DUMP("a LIST \"\" INBOX/%\r\n", "a|LIST|q: INBOX/%");
	DUMP("a LIST \"\" *\r\n", "a|LIST|q: *");
	DUMP("a SELECT foo]bar\r\n", "a|SELECT|foo]bar");
	DUMP("a FETCH 2,4:7,9,*:4 ALL\r\n", "a|FETCH|2,4:7,9,*:4 ALL");
	DUMP("a SEARCH $\r\n", "a|SEARCH|$");
}

Test(imap_parse, quoted_8bit_is_an_option)
{
	struct imap_limits l = deflim();
	struct imap_command *c;
	struct imap_error e;
	static const char in[] = "a SEARCH SUBJECT \"gr\xc3\xbc\xc3\x9f\"\r\n";

	cr_assert_eq(imap_parse_command(&l, in, sizeof(in) - 1, &c, &e), 0);
	cr_assert(c->args[1].flags & IMAP_AF_8BIT);
	cr_assert_str_eq(c->args[1].str, "gr\xc3\xbc\xc3\x9f");
	imap_command_free(c);
	l.allow_8bit_quoted = false;
	cr_assert_eq(parse_fail(&l, in, sizeof(in) - 1), IMAP_ERR_SYNTAX);
}

Test(imap_parse, sections_with_lists_and_partials)
{
	struct imap_command *c;

	DUMP("a FETCH 1 (BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100> FLAGS)\r\n",
	    "a|FETCH|1 (S:BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100> FLAGS)");
	DUMP("a FETCH 1 body[]\r\n", "a|FETCH|1 S:body[]");
	DUMP("a FETCH 1 (BINARY.PEEK[1]<0.5> BINARY.SIZE[2] BODY[TEXT])\r\n",
	    "a|FETCH|1 (S:BINARY.PEEK[1]<0.5> S:BINARY.SIZE[2] S:BODY[TEXT])");
	DUMP("a FETCH 1 BODY[HEADER.FIELDS.NOT (\"X-A\" {3+}\r\nX-B)]\r\n",
	    "a|FETCH|1 S:BODY[HEADER.FIELDS.NOT (q:X-A l3+:X-B)]");
	c = PARSE("a FETCH 1 BODY[1.MIME]<5.6>\r\n");
	cr_assert_eq(c->args[1].type, IMAP_ARG_SECTION);
	cr_assert_str_eq(c->args[1].str, "BODY");
	cr_assert_eq(c->args[1].count, 1);
	cr_assert_str_eq(c->args[1].list[0].str, "1.MIME");
	cr_assert_str_eq(c->args[1].partial, "<5.6>");
	imap_command_free(c);
	/* '[' in other atoms is an ordinary atom char */
	DUMP("a SELECT [Gmail]/Sent\r\n", "a|SELECT|[Gmail]/Sent");
	cr_assert_eq(FAIL("a FETCH 1 BODY[HEADER.FIELDS (From)\r\n"), IMAP_ERR_SYNTAX);
}

/* ---- literals */

Test(imap_parse, sync_literal_asks_for_continuation)
{
	struct imap_limits l = deflim();
	struct out o;

	RUN(&l, "a LOGIN {4}\r\nuser {4}\r\np\0ss\r\n", &o);
	cr_assert_str_eq(o.s, "+4;+4;C:a|LOGIN|l4:user l4:p\\0ss;");
}

Test(imap_parse, literal_forms)
{
	struct imap_limits l = deflim();
	struct out o;
	struct imap_command *c;

	RUN(&l, "a APPEND INBOX (\\Seen) {5+}\r\nhello\r\n", &o);
	cr_assert_str_eq(o.s, "C:a|APPEND|INBOX (\\Seen) l5+:hello;");
	RUN(&l, "a APPEND INBOX ~{3}\r\na\0b\r\n", &o);
	cr_assert_str_eq(o.s, "+3;C:a|APPEND|INBOX ~l3:a\\0b;");
	RUN(&l, "a X ({0}\r\n {2+}\r\n()) x\r\n", &o);
	cr_assert_str_eq(o.s, "+0;C:a|X|(l0: l2+:()) x;");
	c = PARSE("a LOGIN {1+}\r\nu {3+}\r\nx\r\n\r\n");
	cr_assert_eq(c->args[1].len, 3);
	cr_assert_str_eq(c->args[1].str, "x\r\n");
	imap_command_free(c);
	/* "{n}" inside a quoted string is text */
	DUMP("a X \"{5}\"\r\n", "a|X|q:{5}");
}

Test(imap_parse, literal_must_end_line)
{
	cr_assert_eq(FAIL("a X {3} abc\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X ab{3}\r\nabc\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X {}\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X {3}\r\nabcd\r\n"), IMAP_ERR_SYNTAX);
}

Test(imap_parse, string_accessors)
{
	struct imap_command *c = PARSE("a X atom \"q\" {1+}\r\nl ~{1+}\r\nb NIL 42 \\Seen \\* f]o *\r\n");
	const struct imap_arg *a = c->args;
	const char *s;
	size_t n;
	uint32_t u;
	uint64_t u64;

	cr_assert(imap_arg_atom(&a[0], &s));
	cr_assert(imap_arg_astring(&a[0], &s, &n) && n == 4);
	cr_assert_not(imap_arg_string(&a[0], &s, &n));
	cr_assert(imap_arg_string(&a[1], &s, &n) && strcmp(s, "q") == 0);
	cr_assert(imap_arg_astring(&a[2], &s, &n) && strcmp(s, "l") == 0);
	cr_assert_not(imap_arg_astring(&a[3], &s, &n), "literal8 is not a string");
	cr_assert(imap_arg_is_nil(&a[4]));
	cr_assert(imap_arg_nstring(&a[4], &s, &n) && s == NULL);
	cr_assert(imap_arg_astring(&a[4], &s, &n), "NIL is an atom where astring is expected");
	cr_assert(imap_arg_number(&a[5], &u) && u == 42);
	cr_assert(imap_arg_number64(&a[5], &u64) && u64 == 42);
	cr_assert_not(imap_arg_number(&a[0], &u));
	cr_assert(imap_arg_flag(&a[6], false, &s) && strcmp(s, "\\Seen") == 0);
	cr_assert_not(imap_arg_atom(&a[6], &s));
	cr_assert_not(imap_arg_flag(&a[7], false, &s));
	cr_assert(imap_arg_flag(&a[7], true, &s) && strcmp(s, "\\*") == 0);
	cr_assert(imap_arg_astring(&a[8], &s, &n), "']' is an astring char");
	cr_assert_not(imap_arg_atom(&a[8], &s));
	cr_assert_not(imap_arg_astring(&a[9], &s, &n));
	cr_assert(imap_arg_list_mailbox(&a[9], &s, &n) && strcmp(s, "*") == 0);
	cr_assert(imap_arg_equals(&a[0], "ATOM"));
	imap_command_free(c);
}

Test(imap_parse, numbers_and_inbox)
{
	uint64_t v;
	char buf[32];

	cr_assert(imap_parse_uint("4294967295", 10, UINT32_MAX, &v) && v == 4294967295u);
	cr_assert_not(imap_parse_uint("4294967296", 10, UINT32_MAX, &v));
	cr_assert_not(imap_parse_uint("", 0, UINT32_MAX, &v));
	cr_assert_not(imap_parse_uint("-1", 2, UINT32_MAX, &v));
	cr_assert(imap_parse_uint("9223372036854775807", 19, INT64_MAX, &v));
	cr_assert_not(imap_parse_uint("9223372036854775808", 19, INT64_MAX, &v));
	cr_assert(imap_mailbox_is_inbox("iNbOx"));
	cr_assert_not(imap_mailbox_is_inbox("INBOX/a"));
	cr_assert(imap_mailbox_canonical("inbox", '/', buf, sizeof(buf)));
	cr_assert_str_eq(buf, "INBOX");
	cr_assert(imap_mailbox_canonical("Inbox/Sub", '/', buf, sizeof(buf)));
	cr_assert_str_eq(buf, "INBOX/Sub");
	cr_assert(imap_mailbox_canonical("Inbox/Sub", '\0', buf, sizeof(buf)));
	cr_assert_str_eq(buf, "Inbox/Sub");
	cr_assert(imap_mailbox_canonical("inboxes", '/', buf, sizeof(buf)));
	cr_assert_str_eq(buf, "inboxes");
	cr_assert_not(imap_mailbox_canonical("inboxes", '/', buf, 4));
}

Test(imap_parse, char_classes)
{
	cr_assert(imap_is_atom_char('a'));
	cr_assert(imap_is_atom_char('['));
	cr_assert_not(imap_is_atom_char(']'));
	cr_assert(imap_is_astring_char(']'));
	cr_assert_not(imap_is_tag_char('+'));
	cr_assert(imap_is_tag_char(']'));
	cr_assert(imap_is_list_char('%'));
	cr_assert(imap_is_list_char('*'));
	for (const char *p = "(){ %*\"\\]"; *p; p++)
		cr_assert_not(imap_is_atom_char((unsigned char)*p), "%c", *p);
	cr_assert_not(imap_is_atom_char(0x7f));
	cr_assert_not(imap_is_atom_char(0x80));
	cr_assert_not(imap_is_atom_char('\t'));
}

/* ---- malformed input */

Test(imap_parse, malformed)
{
	cr_assert_eq(FAIL("a X (a b\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a b)\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X ((a)\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X \"abc\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X \"a\\bc\"\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a\0b\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X \"a\0b\"\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X f\xc3\xbc\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a  b\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a  \r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X ( a)\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a\"b\"\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X \\\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X a\rb\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a X\tb\r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a \r\n"), IMAP_ERR_SYNTAX);
	cr_assert_eq(FAIL("a\r\n"), IMAP_ERR_BAD_TAG);
	cr_assert_eq(FAIL("a+b NOOP\r\n"), IMAP_ERR_BAD_TAG);
	cr_assert_eq(FAIL("* NOOP\r\n"), IMAP_ERR_BAD_TAG);
	cr_assert_eq(FAIL("\"a\" NOOP\r\n"), IMAP_ERR_BAD_TAG);
	cr_assert_eq(FAIL("a NOOP"), IMAP_ERR_SYNTAX);   /* incomplete */
}

Test(imap_parse, bad_tag_reports_untagged)
{
	struct imap_limits l = deflim();
	struct out o;

	RUN(&l, "a+ NOOP\r\nb NOOP\r\n", &o);
	cr_assert_str_eq(o.s, "E2::Invalid tag;C:b|NOOP|;");
	RUN(&l, "t1 X (\r\n", &o);
	cr_assert_eq(strncmp(o.s, "E1:t1:", 6), 0, "%s", o.s);
}

Test(imap_parse, empty_lines_are_ignored)
{
	struct imap_limits l = deflim();
	struct out o;

	RUN(&l, "\r\n\na NOOP\r\n\r\n", &o);
	cr_assert_str_eq(o.s, "C:a|NOOP|;");
}

/* ---- limits */

Test(imap_parse, line_too_long_then_next_command)
{
	struct imap_limits l = deflim();
	char in[200];
	struct out o;
	int n;

	l.max_line = 40;
	n = snprintf(in, sizeof(in), "t7 LOGIN %060d x\r\nt8 NOOP\r\n", 0);
	run(&l, in, (size_t)n, &o);
	cr_assert_str_eq(o.s, "E3:t7:Command line too long;C:t8|NOOP|;");
	cr_assert_eq(imap_err_resp_code(IMAP_ERR_LINE_TOO_LONG), imap_err_resp_code(
	    IMAP_ERR_LITERAL_TOO_BIG));
	/* exactly at the limit is fine */
	n = snprintf(in, sizeof(in), "t7 X %035d\r\n", 0);
	cr_assert_eq(n - 2, 40);
	run(&l, in, (size_t)n, &o);
	cr_assert_eq(strncmp(o.s, "C:t7|X|", 7), 0);
}

Test(imap_parse, overlong_line_ending_in_nonsync_literal_skips_it)
{
	struct imap_limits l = deflim();
	char in[200];
	struct out o;
	int n;

	l.max_line = 20;
	n = snprintf(in, sizeof(in), "t1 APPEND %030d {5+}\r\n(x\r\n\r\nt2 NOOP\r\n", 0);
	run(&l, in, (size_t)n, &o);
	cr_assert_str_eq(o.s, "E3:t1:Command line too long;C:t2|NOOP|;");
}

Test(imap_parse, literal_too_big_refused_before_reading)
{
	struct imap_limits l = deflim();
	struct imap_reader *r;
	struct out o;
	size_t used;
	static const char in[] = "a1 APPEND INBOX {1001}\r\n";

	l.max_literal = 1000;
	RUN(&l, "a1 APPEND INBOX {1001}\r\na2 NOOP\r\n", &o);
	cr_assert_str_eq(o.s, "E4:a1:Literal too big;C:a2|NOOP|;");
	cr_assert(imap_err_is_no(IMAP_ERR_LITERAL_TOO_BIG));
	cr_assert_str_eq(imap_err_resp_code(IMAP_ERR_LITERAL_TOO_BIG), "TOOBIG");
	/* the error comes with the announcement: nothing else is read */
	r = imap_reader_new(&l);
	cr_assert_eq(imap_reader_feed(r, in, sizeof(in) - 1, &used), IMAP_READ_ERROR);
	cr_assert_eq(used, sizeof(in) - 1);
	cr_assert(imap_reader_idle(r));
	imap_reader_free(r);
	RUN(&l, "a1 X {99999999999999999999999}\r\na2 NOOP\r\n", &o);
	cr_assert_str_eq(o.s, "E4:a1:Literal too big;C:a2|NOOP|;");
	RUN(&l, "a1 X {1000}\r\n", &o);
	cr_assert_str_eq(o.s, "+1000;");
}

Test(imap_parse, nonsync_too_big_is_skipped)
{
	struct imap_limits l = deflim();
	char in[6000];
	struct out o;
	int n;

	l.max_nonsync = IMAP_LITERAL_MINUS_MAX;  /* LITERAL- */
	n = snprintf(in, sizeof(in), "a1 APPEND INBOX {4097+}\r\n");
	memset(in + n, 'x', 4097);
	n += 4097;
	n += snprintf(in + n, sizeof(in) - (size_t)n, " {2+}\r\n{}\r\na2 NOOP\r\n");
	run(&l, in, (size_t)n, &o);
	cr_assert_str_eq(o.s, "E5:a1:Non-synchronizing literal too big;C:a2|NOOP|;");
	cr_assert_not(imap_err_is_no(IMAP_ERR_NONSYNC_TOO_BIG));
	/* 4096 is allowed under LITERAL- */
	n = snprintf(in, sizeof(in), "a1 APPEND INBOX {4096+}\r\n");
	memset(in + n, 'y', 4096);
	n += 4096;
	n += snprintf(in + n, sizeof(in) - (size_t)n, "\r\n");
	run(&l, in, (size_t)n, &o);
	cr_assert_eq(strncmp(o.s, "C:a1|APPEND|INBOX l4096+:yyy", 28), 0);
	/* a sync literal of any allowed size still works */
	n = snprintf(in, sizeof(in), "a1 X {4097}\r\n");
	run(&l, in, (size_t)n, &o);
	cr_assert_str_eq(o.s, "+4097;");
	/* no non-sync literals at all */
	l.max_nonsync = 0;
	RUN(&l, "a1 LOGIN {1+}\r\nu {1+}\r\np\r\na2 NOOP\r\n", &o);
	cr_assert_str_eq(o.s, "E6:a1:Non-synchronizing literals not allowed;C:a2|NOOP|;");
}

Test(imap_parse, command_total_bound)
{
	struct imap_limits l = deflim();
	struct out o;

	l.max_command = 40;
	RUN(&l, "a1 X {10+}\r\n0123456789 {10+}\r\n0123456789 {10}\r\nb NOOP\r\n", &o);
	cr_assert_str_eq(o.s, "E7:a1:Command too long;C:b|NOOP|;");
}

Test(imap_parse, nesting_and_arg_count)
{
	struct imap_limits l = deflim();
	char in[256];
	int n;

	l.max_depth = 3;
	cr_assert_eq(parse_fail(&l, "a X ((((a))))\r\n", 15), IMAP_ERR_TOO_DEEP);
	n = snprintf(in, sizeof(in), "a X (((a)))\r\n");
	{
		struct imap_command *c;
		struct imap_error e;

		cr_assert_eq(imap_parse_command(&l, in, (size_t)n, &c, &e), 0);
		imap_command_free(c);
	}
	l = deflim();
	l.max_args = 5;
	cr_assert_eq(parse_fail(&l, "a X 1 2 3 (4 5)\r\n", 17), IMAP_ERR_TOO_MANY_ARGS);
	l.max_depth = 2;
	l.max_args = 1000;
	cr_assert_eq(parse_fail(&l, "a FETCH 1 BODY[HEADER.FIELDS ((a))]\r\n", 37), IMAP_ERR_TOO_DEEP);
}

/* ---- the same result whatever the split */

static const char split_input[] =
	"a1 LOGIN {4}\r\nuser \"pa\\\"ss\"\r\n"
	"a2 APPEND INBOX (\\Seen $x) \" 7-Feb-1994 21:52:25 -0800\" {12+}\r\nHello\r\nWorld\r\n"
	"a3 FETCH 1:* (BODY.PEEK[HEADER.FIELDS ({4}\r\nFrom To)]<0.10> FLAGS)\r\n"
	"\r\n"
	"a4 X (a (b ~{3}\r\nx\0y) {0+}\r\n)\r\n"
	"a5 BAD (\r\n"
	"a+6 NOOP\r\n"
	"a7 UID SEARCH RETURN (MIN) CHARSET UTF-8 OR 1:3 NOT SEEN\n";

Test(imap_parse, split_at_every_offset)
{
	struct imap_limits l = deflim();
	struct out whole, part;
	size_t len = sizeof(split_input) - 1;

	run(&l, split_input, len, &whole);
	cr_assert_eq(strncmp(whole.s, "+4;C:a1|LOGIN|l4:user q:pa\"ss;C:a2|APPEND|", 41), 0, "%s",
	    whole.s);
	cr_assert(strstr(whole.s, "E1:a5:") != NULL, "%s", whole.s);
	cr_assert(strstr(whole.s, "E2::") != NULL, "%s", whole.s);
	cr_assert(strstr(whole.s, "C:a4|X|(a (b ~l3:x\\0y) l0+:);") != NULL, "%s", whole.s);
	for (size_t cut = 0; cut <= len; cut++) {
		run_cuts(&l, split_input, len, &cut, 1, &part);
		cr_assert_str_eq(part.s, whole.s, "split at %zu", cut);
	}
	for (size_t a = 1; a < len; a += 3) {
		for (size_t b = a; b <= len; b += 7) {
			size_t cuts[2] = { a, b };

			run_cuts(&l, split_input, len, cuts, 2, &part);
			cr_assert_str_eq(part.s, whole.s, "split at %zu,%zu", a, b);
		}
	}
}

Test(imap_parse, byte_by_byte)
{
	struct imap_limits l = deflim();
	struct out whole, part;
	size_t len = sizeof(split_input) - 1;
	size_t cuts[sizeof(split_input)];

	for (size_t i = 0; i < len; i++)
		cuts[i] = i;
	run(&l, split_input, len, &whole);
	run_cuts(&l, split_input, len, cuts, len, &part);
	cr_assert_str_eq(part.s, whole.s);
}

Test(imap_parse, split_with_limit_errors)
{
	struct imap_limits l = deflim();
	char in[512];
	struct out whole, part;
	int n;

	l.max_line = 30;
	l.max_literal = 50;
	l.max_nonsync = 20;
	n = snprintf(in, sizeof(in), "a1 X %040d {3+}\r\nabc\r\na2 X {51}\r\n"
	    "a3 X {21+}\r\n%021d {4+}\r\n{1}\r\n\r\na4 X {3}\r\nabc\r\n", 0, 0);
	run(&l, in, (size_t)n, &whole);
	cr_assert_str_eq(whole.s, "E3:a1:Command line too long;E4:a2:Literal too big;"
	    "E5:a3:Non-synchronizing literal too big;+3;C:a4|X|l3:abc;");
	for (size_t cut = 0; cut <= (size_t)n; cut++) {
		run_cuts(&l, in, (size_t)n, &cut, 1, &part);
		cr_assert_str_eq(part.s, whole.s, "split at %zu", cut);
	}
}

Test(imap_parse, reader_tag_and_verb_before_continuation)
{
	struct imap_limits l = deflim();
	struct imap_reader *r = imap_reader_new(&l);
	static const char in[] = "x1 uid copy {3}\r\n";
	size_t used;

	cr_assert(imap_reader_idle(r));
	cr_assert_str_eq(imap_reader_tag(r), "");
	cr_assert_eq(imap_reader_feed(r, in, sizeof(in) - 1, &used), IMAP_READ_CONTINUE);
	cr_assert_str_eq(imap_reader_tag(r), "x1");
	cr_assert_str_eq(imap_reader_verb(r), "UID COPY");
	cr_assert_not(imap_reader_idle(r));
	imap_reader_free(r);
}

/* ---- fuzz: random input never crashes, and splitting never matters */

static unsigned fuzz_rand(unsigned *seed)
{
	*seed = *seed * 1103515245u + 12345u;
	return (*seed >> 16) & 0x7fff;
}

static char fuzz_byte(unsigned *seed)
{
	static const char alphabet[] = "aB1 9(){}+~\"\\*%]$[.:<>\r\n\r\n\x80\xff";
	unsigned v = fuzz_rand(seed);

	if (v % 13 == 0)
		return (char)(fuzz_rand(seed) & 0xff);
	return alphabet[v % (sizeof(alphabet) - 1)];
}

Test(imap_parse, fuzz_no_crash_split_invariant, .timeout = 30)
{
	struct imap_limits l = deflim();
	unsigned seed = 12345;
	char in[sizeof(split_input) + 300];
	struct out whole, part;
	clock_t start = clock();
	unsigned rounds = 0;

	l.max_line = 100;
	l.max_literal = 40;
	l.max_nonsync = 20;
	l.max_depth = 4;
	l.max_args = 30;
	while (clock() - start < CLOCKS_PER_SEC) {
		size_t len = 2 + fuzz_rand(&seed) % 298, cut;
		struct imap_command *c;
		struct imap_error e;

		if (rounds % 2 == 0) {
			memcpy(in, "a ", 2);
			for (size_t i = 2; i < len; i++)
				in[i] = fuzz_byte(&seed);
		} else {
			/* a valid stream with a few octets changed */
			len = sizeof(split_input) - 1;
			memcpy(in, split_input, len);
			for (int k = 0; k < 3; k++)
				in[fuzz_rand(&seed) % len] = fuzz_byte(&seed);
		}
		run(&l, in, len, &whole);
		cut = fuzz_rand(&seed) % (len + 1);
		run_cuts(&l, in, len, &cut, 1, &part);
		cr_assert_str_eq(part.s, whole.s, "round %u", rounds);
		if (imap_parse_command(&l, in, len, &c, &e) == 0)
			imap_command_free(c);
		rounds++;
	}
	cr_assert_gt(rounds, 100);
	cr_log_info("fuzz rounds %u", rounds);
}

/* mutt with SASL-IR sends "AUTHENTICATE CRAM-MD5 " (a trailing space). */
Test(imap_parse, one_trailing_space_ends_the_line)
{
	struct imap_command *c = PARSE("a AUTHENTICATE CRAM-MD5 \r\n");

	cr_assert_str_eq(c->verb, "AUTHENTICATE");
	cr_assert_eq(c->nargs, 1);
	cr_assert_str_eq(c->args[0].str, "CRAM-MD5");
	imap_command_free(c);
}

/* ---- line bound and UTF-8 (issue 9) */

Test(imap_parse, default_line_bound_is_64k)
{
	struct imap_limits l = deflim();
	size_t k = IMAP_LINE_MAX_DEFAULT - 6;   /* a X "<k octets>" is 64 KiB */
	char *in = malloc(IMAP_LINE_MAX_DEFAULT + 64);
	struct out o;

	cr_assert_eq(l.max_line, 65536);
	memcpy(in, "a X \"", 5);
	memset(in + 5, 'v', k);
	memcpy(in + 5 + k, "\"\r\n", 3);
	run(&l, in, 5 + k + 3, &o);
	cr_assert_eq(strncmp(o.s, "C:a|X|q:vvv", 11), 0, "%.40s", o.s);
	/* one octet over: TOOBIG, and the next command still parses */
	memset(in, 'x', IMAP_LINE_MAX_DEFAULT + 1);
	memcpy(in, "a X ", 4);
	memcpy(in + IMAP_LINE_MAX_DEFAULT + 1, "\r\nb NOOP\r\n", 10);
	run(&l, in, IMAP_LINE_MAX_DEFAULT + 11, &o);
	cr_assert_str_eq(o.s, "E3:a:Command line too long;C:b|NOOP|;");
	free(in);
}

/* RFC 2971's largest ID: 30 pairs of 30-octet fields and 1,024-octet values. */
Test(imap_parse, largest_id_fits_one_line)
{
	struct imap_limits l = deflim();
	struct imap_command *c;
	struct imap_error e;
	char *in = malloc(40000), *p = in;

	p += sprintf(p, "a ID (");
	for (int i = 0; i < 30; i++) {
		p += sprintf(p, "%s\"%029d%c\" \"", i ? " " : "", i, 'f');
		memset(p, 'a' + i % 26, 1024);
		p += 1024;
		*p++ = '"';
	}
	p += sprintf(p, ")\r\n");
	cr_assert_gt((size_t)(p - in), 8192);
	cr_assert_eq(imap_parse_command(&l, in, (size_t)(p - in), &c, &e), 0, "%s", e.msg);
	cr_assert_eq(c->nargs, 1);
	cr_assert_eq(c->args[0].count, 60);
	cr_assert_eq(c->args[0].list[59].len, 1024);
	cr_assert_eq(c->args[0].list[58].len, 30);
	imap_command_free(c);
	free(in);
}

Test(imap_parse, utf8_validity)
{
	static const struct { const char *s; bool ok; } t[] = {
		{ "", true }, { "plain", true }, { "gr\xc3\xbc\xc3\x9f", true },
		{ "\xe2\x82\xac", true }, { "\xf0\x9f\x98\x80", true }, { "\xf4\x8f\xbf\xbf", true },
		{ "\xff\xfe", false }, { "\x80", false }, { "\xc3", false }, { "\xc3(", false },
		{ "\xc0\xaf", false },            /* overlong '/' */
		{ "\xe0\x80\xaf", false },        /* overlong, 3 octets */
		{ "\xed\xa0\x80", false },        /* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", false },    /* above U+10FFFF */
		{ "\xf8\x88\x80\x80\x80", false },/* 5 octets */
		{ "ok\xe2\x82", false },          /* truncated at the end */
	};

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		cr_assert_eq(imap_utf8_valid(t[i].s, strlen(t[i].s)), t[i].ok, "case %zu", i);
}

Test(imap_parse, utf8_quoted_after_enable)
{
	struct imap_limits l = deflim();
	struct imap_command *c;
	struct imap_error e;
	bool utf8 = false;
	static const char bad[] = "t1 SEARCH SUBJECT \"\xff\xfe\"\r\n";
	static const char good[] = "t1 SELECT \"R\xc3\xa9sum\xc3\xa9\"\r\n";
	static const char lit[] = "t1 SEARCH SUBJECT {2}\r\n\xff\xfe\r\n";
	struct out o;

	/* without UTF8=ACCEPT (pointer unset, or its flag off): as before */
	cr_assert_eq(imap_parse_command(&l, bad, sizeof(bad) - 1, &c, &e), 0);
	cr_assert(c->args[1].flags & IMAP_AF_8BIT);
	imap_command_free(c);
	l.utf8_quoted = &utf8;
	cr_assert_eq(imap_parse_command(&l, bad, sizeof(bad) - 1, &c, &e), 0);
	imap_command_free(c);
	/* with it: a tagged syntax error (BAD), valid UTF-8 still parses */
	utf8 = true;
	cr_assert_neq(imap_parse_command(&l, bad, sizeof(bad) - 1, &c, &e), 0);
	cr_assert_eq(e.code, IMAP_ERR_SYNTAX);
	cr_assert_str_eq(e.tag, "t1");
	cr_assert_str_eq(e.msg, "Quoted string is not valid UTF-8");
	cr_assert_eq(imap_parse_command(&l, good, sizeof(good) - 1, &c, &e), 0);
	cr_assert_str_eq(c->args[0].str, "R\xc3\xa9sum\xc3\xa9");
	imap_command_free(c);
	/* literals carry octets: not checked */
	cr_assert_eq(imap_parse_command(&l, lit, sizeof(lit) - 1, &c, &e), 0, "%s", e.msg);
	imap_command_free(c);
	/* a quoted escape cannot smuggle a bad octet past the check either */
	{
		static const char esc[] = "t2 X \"\\\\\xc3\"\r\n";

		cr_assert_eq(sizeof(esc) - 1, 12);
		cr_assert_eq(imap_parse_command(&l, esc, sizeof(esc) - 1, &c, &e), -1);
		cr_assert_str_eq(e.msg, "Quoted string is not valid UTF-8");
	}
	/* the reader reads the flag per command: a flip takes effect next */
	utf8 = false;
	{
		struct imap_reader *r = imap_reader_new(&l);

		o.len = 0;
		o.s[0] = '\0';
		feed_chunk(r, bad, sizeof(bad) - 1, &o);
		utf8 = true;
		feed_chunk(r, bad, sizeof(bad) - 1, &o);
		imap_reader_free(r);
	}
	cr_assert_str_eq(o.s, "C:t1|SEARCH|SUBJECT q:\xff\xfe;"
	    "E1:t1:Quoted string is not valid UTF-8;");
}

/* ---- literals streamed to a sink (APPEND's messages) */

struct sink_log {
	char opened[256];       /* "size,lit8,prefix-tail;" per open */
	char data[256];
	size_t datalen;
	bool refuse_first;
	unsigned opens;
};

static bool sink_open(void *arg, const char *cmd, size_t len, uint64_t size, bool lit8)
{
	struct sink_log *l = arg;
	size_t n = strlen(l->opened);

	/* The command so far ends with the announcement. */
	cr_assert(len >= 3 && cmd[len - 1] == '}');
	snprintf(l->opened + n, sizeof(l->opened) - n, "%llu,%d;", (unsigned long long)size, lit8);
	return !(l->refuse_first && l->opens++ == 0);
}

static void sink_data(void *arg, const void *buf, size_t len)
{
	struct sink_log *l = arg;

	cr_assert(len > 0);
	cr_assert_leq(l->datalen + len, sizeof(l->data));
	memcpy(l->data + l->datalen, buf, len);
	l->datalen += len;
}

static void run_sink(struct sink_log *log, const char *in, size_t len, size_t step,
    struct out *o)
{
	struct imap_limits l = deflim();
	struct imap_reader *r = imap_reader_new(&l);
	const struct imap_literal_sink sink = { sink_open, sink_data, log };
	size_t at;

	imap_reader_set_sink(r, &sink);
	o->len = 0;
	o->s[0] = '\0';
	for (at = 0; at < len; at += step)
		feed_chunk(r, in + at, len - at < step ? len - at : step, o);
	imap_reader_free(r);
}

Test(imap_parse, streamed_literals_go_to_the_sink)
{
	static const char in[] = "a APPEND {5}\r\nINBOX {3}\r\nab\n ~{4+}\r\n\0x\ry\r\na2 NOOP\r\n";
	size_t step;

	for (step = 1; step <= sizeof(in); step++) {
		struct sink_log log = { .refuse_first = true };
		struct out o;

		run_sink(&log, in, sizeof(in) - 1, step, &o);
		/* The mailbox literal was refused (kept in the command), the two
		 * messages streamed: their octets are the sink's, in order. */
		cr_assert_str_eq(log.opened, "5,0;3,0;4,1;");
		cr_assert_eq(log.datalen, 7);
		cr_assert_eq(memcmp(log.data, "ab\n\0x\ry", 7), 0);
		cr_assert(strstr(o.s, "C:a2|NOOP|;") != NULL, "%s", o.s);
		cr_assert_eq(strncmp(o.s, "+5;+3;C:a|APPEND|", 17), 0, "%s", o.s);
	}
}

Test(imap_parse, streamed_literal_argument)
{
	static const char in[] = "a APPEND INBOX {3}\r\nabc ~{2}\r\nde\r\n";
	struct imap_limits l = deflim();
	struct imap_reader *r = imap_reader_new(&l);
	struct sink_log log = { 0 };
	const struct imap_literal_sink sink = { sink_open, sink_data, &log };
	struct imap_command *c = NULL;
	size_t off = 0, used;
	enum imap_read_rc rc;

	imap_reader_set_sink(r, &sink);
	do {
		rc = imap_reader_feed(r, in + off, sizeof(in) - 1 - off, &used);
		off += used;
	} while (rc == IMAP_READ_CONTINUE);
	cr_assert_eq(rc, IMAP_READ_COMMAND);
	c = imap_reader_take(r);
	cr_assert_eq(c->nargs, 3);
	cr_assert_eq(c->args[1].type, IMAP_ARG_LITERAL);
	cr_assert_eq(c->args[1].flags, IMAP_AF_STREAMED);
	cr_assert_eq(c->args[1].len, 3);
	cr_assert_str_eq(c->args[1].str, "");
	cr_assert_eq(c->args[2].flags, IMAP_AF_STREAMED | IMAP_AF_LITERAL8);
	cr_assert_eq(c->args[2].len, 2);
	/* never a string: a streamed literal has no value in the command */
	cr_assert_not(imap_arg_string(&c->args[1], &(const char *){ NULL }, NULL));
	cr_assert_eq(log.datalen, 5);
	imap_command_free(c);
	/* Without a sink the same input keeps both in the command. */
	imap_reader_set_sink(r, NULL);
	off = 0;
	do {
		rc = imap_reader_feed(r, in + off, sizeof(in) - 1 - off, &used);
		off += used;
	} while (rc == IMAP_READ_CONTINUE);
	c = imap_reader_take(r);
	cr_assert_str_eq(c->args[1].str, "abc");
	cr_assert_eq(c->args[2].flags & IMAP_AF_STREAMED, 0);
	imap_command_free(c);
	imap_reader_free(r);
}

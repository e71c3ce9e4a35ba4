/* SEARCH programs into an AST; RETURN, CHARSET, MODSEQ; SORT and THREAD. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "mailsnare/imap_search.h"

static const char *const key_names[] = {
	"ALL", "ANSWERED", "DELETED", "DRAFT", "FLAGGED", "NEW", "OLD", "RECENT", "SEEN",
	"UNANSWERED", "UNDELETED", "UNDRAFT", "UNFLAGGED", "UNSEEN", "KEYWORD", "UNKEYWORD",
	"BCC", "BODY", "CC", "FROM", "SUBJECT", "TEXT", "TO", "HEADER", "BEFORE", "ON", "SINCE",
	"SENTBEFORE", "SENTON", "SENTSINCE", "LARGER", "SMALLER", "MODSEQ", "SET", "UID",
	"AND", "OR", "NOT",
};

static void dump(const struct imap_search_node *n, char *out, size_t size)
{
	char tmp[64];

	strncat(out, key_names[n->key], size - strlen(out) - 1);
	switch (n->key) {
	case IMAP_SK_KEYWORD: case IMAP_SK_UNKEYWORD: case IMAP_SK_BCC: case IMAP_SK_BODY:
	case IMAP_SK_CC: case IMAP_SK_FROM: case IMAP_SK_SUBJECT: case IMAP_SK_TEXT:
	case IMAP_SK_TO:
		snprintf(tmp, sizeof(tmp), "=%s", n->str);
		break;
	case IMAP_SK_HEADER:
		snprintf(tmp, sizeof(tmp), "=%s:%s", n->field, n->str);
		break;
	case IMAP_SK_BEFORE: case IMAP_SK_ON: case IMAP_SK_SINCE: case IMAP_SK_SENTBEFORE:
	case IMAP_SK_SENTON: case IMAP_SK_SENTSINCE:
		snprintf(tmp, sizeof(tmp), "=%04d-%02d-%02d", n->date.year, n->date.month, n->date.day);
		break;
	case IMAP_SK_LARGER: case IMAP_SK_SMALLER: case IMAP_SK_MODSEQ:
		snprintf(tmp, sizeof(tmp), "=%llu", (unsigned long long)n->number);
		break;
	case IMAP_SK_SEQSET: case IMAP_SK_UID:
		snprintf(tmp, sizeof(tmp), "=%zu%s", n->set.count, n->set.saved ? "$" : "");
		break;
	default:
		tmp[0] = '\0';
	}
	strncat(out, tmp, size - strlen(out) - 1);
	if (n->nchildren == 0)
		return;
	strncat(out, "(", size - strlen(out) - 1);
	for (size_t i = 0; i < n->nchildren; i++) {
		if (i > 0)
			strncat(out, " ", size - strlen(out) - 1);
		dump(&n->children[i], out, size);
	}
	strncat(out, ")", size - strlen(out) - 1);
}

struct parsed {
	struct imap_command *cmd;
	struct imap_search s;
	struct imap_error err;
	bool ok;
};

static void search(struct parsed *p, const char *prog, unsigned depth, unsigned flags)
{
	struct imap_search_limits sl = { .max_depth = depth, .max_ranges = 100, .flags = flags };
	struct imap_limits l;
	struct imap_error e;
	char line[2048];
	int n = snprintf(line, sizeof(line), "t SEARCH %s\r\n", prog);

	imap_limits_default(&l);
	cr_assert_eq(imap_parse_command(&l, line, (size_t)n, &p->cmd, &e), 0, "%s: %s", prog, e.msg);
	p->ok = imap_search_parse(p->cmd->args, p->cmd->nargs, &sl, &p->s, &p->err);
}

static void done(struct parsed *p)
{
	imap_search_free(&p->s);
	imap_command_free(p->cmd);
}

static void shape(const char *prog, const char *want)
{
	struct parsed p;
	char got[2048] = "";

	search(&p, prog, 20, 0);
	cr_assert(p.ok, "%s: %s", prog, p.err.msg);
	dump(&p.s.root, got, sizeof(got));
	cr_assert_str_eq(got, want, "%s", prog);
	done(&p);
}

static enum imap_err fails(const char *prog)
{
	struct parsed p;
	enum imap_err code;

	search(&p, prog, 20, 0);
	cr_assert_not(p.ok, "accepted: %s", prog);
	cr_assert_neq(p.err.msg[0], '\0');
	cr_assert_eq(p.s.root.nchildren, 0);
	code = p.err.code;
	done(&p);
	return code;
}

Test(imap_search, flag_keys)
{
	shape("ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED "
	    "UNDRAFT UNFLAGGED UNSEEN",
	    "AND(ALL ANSWERED DELETED DRAFT FLAGGED NEW OLD RECENT SEEN UNANSWERED UNDELETED "
	    "UNDRAFT UNFLAGGED UNSEEN)");
	shape("keyword $Forwarded unkeyword Junk", "AND(KEYWORD=$Forwarded UNKEYWORD=Junk)");
}

Test(imap_search, string_date_number_keys)
{
	shape("BCC a CC \"b c\" FROM {3}\r\nx y SUBJECT s TEXT t TO u BODY \"\"",
	    "AND(BCC=a CC=b c FROM=x y SUBJECT=s TEXT=t TO=u BODY=)");
	shape("HEADER Message-ID \"<a@b>\" HEADER X-Empty \"\"",
	    "AND(HEADER=Message-ID:<a@b> HEADER=X-Empty:)");
	shape("BEFORE 1-Feb-1994 ON \"17-Jul-1996\" SINCE 01-jan-2000 SENTBEFORE 2-Mar-2001 "
	    "SENTON 3-Apr-2002 SENTSINCE 4-May-2003",
	    "AND(BEFORE=1994-02-01 ON=1996-07-17 SINCE=2000-01-01 SENTBEFORE=2001-03-02 "
	    "SENTON=2002-04-03 SENTSINCE=2003-05-04)");
	shape("LARGER 100 SMALLER 5000000000", "AND(LARGER=100 SMALLER=5000000000)");
}

Test(imap_search, sets)
{
	struct parsed p;

	shape("1:* UID 2,4:7,9 $ UID $", "AND(SET=1 UID=3 SET=0$ UID=0$)");
	search(&p, "UID 3:*", 20, 0);
	cr_assert(p.ok);
	cr_assert_eq(p.s.root.children[0].set.ranges[0].hi, IMAP_SEQ_STAR);
	cr_assert_not(p.s.uses_saved);
	done(&p);
	search(&p, "NOT $", 20, 0);
	cr_assert(p.ok && p.s.uses_saved);
	done(&p);
}

Test(imap_search, or_not_groups)
{
	shape("OR SEEN FLAGGED", "AND(OR(SEEN FLAGGED))");
	shape("NOT NOT SEEN", "AND(NOT(NOT(SEEN)))");
	shape("OR (SEEN FROM x) NOT (1:3)", "AND(OR(AND(SEEN FROM=x) NOT(AND(SET=1))))");
	shape("OR OR SEEN DRAFT NOT DELETED UNSEEN",
	    "AND(OR(OR(SEEN DRAFT) NOT(DELETED)) UNSEEN)");
	shape("(OR SEEN (DRAFT)) ((ALL))", "AND(AND(OR(SEEN AND(DRAFT))) AND(AND(ALL)))");
	shape("not uid 5 or 1 2", "AND(NOT(UID=1) OR(SET=1 SET=1))");
}

Test(imap_search, errors)
{
	static const char *const bad[] = {
		"", "FOO", "OR SEEN", "NOT", "()", "FROM", "HEADER x", "BEFORE 1-Feb", "BEFORE x",
		"ON 31-Feb-2000", "LARGER x", "LARGER -1", "UID", "UID x", "UID 0", "0", "1:0",
		"KEYWORD \\Seen", "KEYWORD \"a\"", "KEYWORD", "CHARSET", "RETURN", "RETURN (FOO) ALL",
		"RETURN MIN ALL", "MODSEQ", "MODSEQ x", "MODSEQ \"/flags/\\\\draft\" foo 5",
		"MODSEQ \"/flags/x\" all", "\\Seen", "\"ALL\"", "CHARSET UTF-8", "ALL RETURN (MIN)",
		"SMALLER 9223372036854775808", "1,$", "SEEN*",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		cr_assert_eq(fails(bad[i]), IMAP_ERR_SYNTAX, "%s", bad[i]);
}

Test(imap_search, charset)
{
	struct parsed p;

	search(&p, "CHARSET utf-8 SUBJECT x", 20, 0);
	cr_assert(p.ok && p.s.utf8);
	done(&p);
	search(&p, "CHARSET US-ASCII ALL", 20, 0);
	cr_assert(p.ok && !p.s.utf8);
	done(&p);
	search(&p, "ALL", 20, 0);
	cr_assert(p.ok && p.s.utf8);
	done(&p);
	cr_assert_eq(fails("CHARSET ISO-8859-1 SUBJECT x"), IMAP_ERR_BADCHARSET);
	cr_assert(imap_err_is_no(IMAP_ERR_BADCHARSET));
	cr_assert_str_eq(imap_err_resp_code(IMAP_ERR_BADCHARSET), "BADCHARSET (UTF-8 US-ASCII)");
}

Test(imap_search, esearch_return)
{
	struct parsed p;

	search(&p, "RETURN (MIN MAX COUNT) CHARSET UTF-8 UNSEEN", 20, 0);
	cr_assert(p.ok, "%s", p.err.msg);
	cr_assert(p.s.esearch);
	cr_assert_eq(p.s.ret, IMAP_SEARCH_RET_MIN | IMAP_SEARCH_RET_MAX | IMAP_SEARCH_RET_COUNT);
	done(&p);
	search(&p, "RETURN () ALL", 20, 0);
	cr_assert(p.ok && p.s.esearch && p.s.ret == IMAP_SEARCH_RET_ALL);
	done(&p);
	search(&p, "return (save all) SEEN", 20, 0);
	cr_assert(p.ok && p.s.ret == (IMAP_SEARCH_RET_SAVE | IMAP_SEARCH_RET_ALL));
	done(&p);
	search(&p, "SEEN", 20, 0);
	cr_assert(p.ok && !p.s.esearch && p.s.ret == 0);
	done(&p);
}

Test(imap_search, modseq)
{
	struct parsed p;

	search(&p, "MODSEQ 620162338", 20, 0);
	cr_assert(p.ok && p.s.modseq);
	cr_assert_eq(p.s.root.children[0].number, 620162338);
	cr_assert_null(p.s.root.children[0].field);
	done(&p);
	search(&p, "MODSEQ \"/flags/\\\\draft\" all 620162338", 20, 0);
	cr_assert(p.ok, "%s", p.err.msg);
	cr_assert_str_eq(p.s.root.children[0].field, "/flags/\\draft");
	cr_assert_eq(p.s.root.children[0].modseq_type, IMAP_MODSEQ_ALL);
	done(&p);
	search(&p, "OR MODSEQ 0 SEEN", 20, 0);
	cr_assert(p.ok && p.s.modseq);
	done(&p);
}

Test(imap_search, depth_bound)
{
	struct parsed p;
	char prog[1024] = "";

	for (int i = 0; i < 30; i++)
		strcat(prog, "NOT ");
	strcat(prog, "SEEN");
	search(&p, prog, 10, 0);
	cr_assert_not(p.ok);
	cr_assert_eq(p.err.code, IMAP_ERR_TOO_DEEP);
	done(&p);
	search(&p, prog, 40, 0);
	cr_assert(p.ok);
	done(&p);
	search(&p, "((((((((((((SEEN))))))))))))", 5, 0);
	cr_assert_eq(p.err.code, IMAP_ERR_TOO_DEEP);
	done(&p);
}

Test(imap_search, sort_and_thread)
{
	struct imap_search_limits sl = { .max_depth = 10, .max_ranges = 10,
		.flags = IMAP_SEARCH_CHARSET_REQUIRED | IMAP_SEARCH_NO_RETURN };
	static const char in[] = "t SORT (REVERSE DATE subject REVERSE size) UTF-8 UNSEEN\r\n";
	struct imap_limits l;
	struct imap_command *c;
	struct imap_error e;
	struct imap_sort_crit crit[8];
	struct imap_search s;
	enum imap_thread_alg alg;
	size_t n;

	imap_limits_default(&l);
	cr_assert_eq(imap_parse_command(&l, in, sizeof(in) - 1, &c, &e), 0);
	cr_assert(imap_sort_parse(&c->args[0], crit, 8, &n, &e), "%s", e.msg);
	cr_assert_eq(n, 3);
	cr_assert(crit[0].key == IMAP_SORT_DATE && crit[0].reverse);
	cr_assert(crit[1].key == IMAP_SORT_SUBJECT && !crit[1].reverse);
	cr_assert(crit[2].key == IMAP_SORT_SIZE && crit[2].reverse);
	cr_assert_not(imap_sort_parse(&c->args[0], crit, 2, &n, &e), "bounded");
	cr_assert(imap_search_parse(c->args + 1, c->nargs - 1, &sl, &s, &e), "%s", e.msg);
	cr_assert_eq(s.root.nchildren, 1);
	imap_search_free(&s);
	cr_assert_not(imap_search_parse(c->args + 2, c->nargs - 2, &sl, &s, &e));
	cr_assert_eq(e.code, IMAP_ERR_BADCHARSET, "UNSEEN is no charset");
	cr_assert(imap_thread_parse(&c->args[1], &alg, &e) == false);
	imap_command_free(c);

	static const char in2[] = "t THREAD references US-ASCII ALL\r\n";
	cr_assert_eq(imap_parse_command(&l, in2, sizeof(in2) - 1, &c, &e), 0);
	cr_assert(imap_thread_parse(&c->args[0], &alg, &e));
	cr_assert_eq(alg, IMAP_THREAD_REFERENCES);
	imap_command_free(c);

	static const char in3[] = "t SORT (REVERSE) () (ARRIVAL REVERSE) (FOO) ORDEREDSUBJECT\r\n";
	cr_assert_eq(imap_parse_command(&l, in3, sizeof(in3) - 1, &c, &e), 0);
	for (int i = 0; i < 4; i++)
		cr_assert_not(imap_sort_parse(&c->args[i], crit, 8, &n, &e), "%d", i);
	cr_assert(imap_thread_parse(&c->args[4], &alg, &e));
	cr_assert_eq(alg, IMAP_THREAD_ORDEREDSUBJECT);
	imap_command_free(c);
}

/* Random programs from the key vocabulary: never a crash, leak or hang. */
Test(imap_search, fuzz_vocabulary, .timeout = 30)
{
	static const char *const words[] = {
		"ALL", "OR", "NOT", "(", ")", "SEEN", "FROM", "x", "\"q\"", "HEADER", "1-Feb-1994",
		"BEFORE", "LARGER", "10", "UID", "1:*", "$", "*", "MODSEQ", "\"/flags/x\"", "all",
		"KEYWORD", "CHARSET", "UTF-8", "RETURN", "(MIN)", "()", "SMALLER", "{1+}\r\nz",
	};
	struct imap_search_limits sl = { .max_depth = 8, .max_ranges = 10 };
	struct imap_limits l;
	unsigned seed = 7, rounds = 0;
	clock_t start = clock();

	imap_limits_default(&l);
	while (clock() - start < CLOCKS_PER_SEC / 2) {
		char line[512] = "t SEARCH";
		struct imap_command *c;
		struct imap_error e;
		struct imap_search s;
		unsigned n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 12;
		for (unsigned i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			strcat(line, " ");
			strcat(line, words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))]);
		}
		strcat(line, "\r\n");
		if (imap_parse_command(&l, line, strlen(line), &c, &e) == 0) {
			if (imap_search_parse(c->args, c->nargs, &sl, &s, &e))
				imap_search_free(&s);
			else
				cr_assert_neq(e.code, IMAP_ERR_NONE);
			imap_command_free(c);
		}
		rounds++;
	}
	cr_assert_gt(rounds, 100);
}

/* ---- the address text FROM/TO/CC/BCC match (issue 9) */

static void addr_text(const char *value, const char *want, bool want_exact)
{
	size_t len;
	bool exact;
	char *got = imap_search_address_text(value, strlen(value), &len, &exact);

	cr_assert_not_null(got, "%s", value);
	cr_assert_str_eq(got, want, "%s", value);
	cr_assert_eq(len, strlen(want));
	cr_assert_eq(exact, want_exact, "%s", value);
	free(got);
}

Test(imap_search, address_text_drops_comments_and_folding)
{
	addr_text("<user (comment)@ (comment) domain.org>", "user@domain.org", true);
	addr_text("\"Name\" <user@domain.org> (comment)", "Name <user@domain.org>", true);
	/* folded (mime_header_unfold leaves the white space) */
	addr_text("\"Folded Name\"   <user @\t domain . org>", "Folded Name <user@domain.org>", true);
	addr_text("user@domain.org", "user@domain.org", true);
	/* an old-style trailing comment stands in for the name, as in ENVELOPE */
	addr_text("user@domain.org (Real Name)", "Real Name <user@domain.org>", true);
	addr_text("\"a \\\"q\\\" b\" <x.y@z.example>", "a \"q\" b <x.y@z.example>", true);
	addr_text("A <a@x.example>, b@y.example,\"C\" <c@z.example>",
	    "A <a@x.example>, b@y.example, C <c@z.example>", true);
}

Test(imap_search, address_text_names_groups_and_junk)
{
	addr_text("=?UTF-8?Q?J=C3=BCrgen?= <j@x.example>", "J\xc3\xbcrgen <j@x.example>", true);
	addr_text("team: a@x.example, \"B\" <b@y.example>; c@z.example",
	    "team: a@x.example, B <b@y.example>;, c@z.example", true);
	addr_text("undisclosed-recipients:;", "undisclosed-recipients: ;", true);
	addr_text("<@route.example:u@x.example>", "u@x.example", true);
	addr_text("N <@route.example:u@x.example>", "N <@route.example:u@x.example>", true);
	/* not all addresses: the caller also matches the text as sent */
	addr_text("Mailer Daemon", "MailerDaemon", false);
	addr_text("user@", "user", false);
	addr_text("", "", false);
}

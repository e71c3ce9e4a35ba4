/* FETCH attribute lists: items, macros, sections, partials, echo names, modifiers. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "mailsnare/imap_fetchattr.h"

struct parsed {
	struct imap_command *cmd;
	struct imap_fetch f;
	struct imap_error err;
	bool ok;
};

/* Parses "t FETCH 1 <atts>\r\n" (or UID FETCH). */
static void fetch(struct parsed *p, const char *atts, bool uid)
{
	struct imap_limits l;
	struct imap_error e;
	char line[1024];
	int n = snprintf(line, sizeof(line), "t %sFETCH 1 %s\r\n", uid ? "UID " : "", atts);

	imap_limits_default(&l);
	cr_assert_eq(imap_parse_command(&l, line, (size_t)n, &p->cmd, &e), 0, "%s: %s", atts, e.msg);
	p->ok = imap_fetch_parse(p->cmd->args + 1, p->cmd->nargs - 1, uid, &p->f, &p->err);
}

static void done(struct parsed *p)
{
	imap_fetch_free(&p->f);
	imap_command_free(p->cmd);
}

/* The echo names joined with spaces. */
static void echoes(const char *atts, const char *want)
{
	struct parsed p;
	char got[1024] = "";

	fetch(&p, atts, false);
	cr_assert(p.ok, "%s: %s", atts, p.err.msg);
	for (size_t i = 0; i < p.f.count; i++) {
		if (i > 0)
			strcat(got, " ");
		strcat(got, p.f.atts[i].echo);
	}
	cr_assert_str_eq(got, want, "%s", atts);
	done(&p);
}

static void rejects(const char *atts, bool uid)
{
	struct parsed p;

	fetch(&p, atts, uid);
	cr_assert_not(p.ok, "accepted: %s", atts);
	cr_assert_eq(p.err.code, IMAP_ERR_SYNTAX);
	cr_assert_neq(p.err.msg[0], '\0');
	cr_assert_eq(p.f.count, 0);
	done(&p);
}

Test(imap_fetchattr, macros)
{
	echoes("ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE");
	echoes("fast", "FLAGS INTERNALDATE RFC822.SIZE");
	echoes("Full", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY");
	rejects("(ALL)", false);
	rejects("(FLAGS FAST)", false);
}

Test(imap_fetchattr, simple_items)
{
	struct parsed p;

	echoes("(flags internaldate rfc822.size envelope body bodystructure uid rfc822 "
	    "rfc822.header rfc822.text modseq)",
	    "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID RFC822 "
	    "RFC822.HEADER RFC822.TEXT MODSEQ");
	echoes("UID", "UID");
	fetch(&p, "(RFC822.HEADER FLAGS)", false);
	cr_assert(p.ok);
	cr_assert_not(p.f.sets_seen);
	cr_assert_eq(p.f.atts[0].item, IMAP_FETCH_RFC822_HEADER);
	done(&p);
	fetch(&p, "RFC822.TEXT", false);
	cr_assert(p.ok && p.f.sets_seen);
	done(&p);
	fetch(&p, "RFC822", false);
	cr_assert(p.ok && p.f.sets_seen);
	done(&p);
}

Test(imap_fetchattr, sections_and_echo)
{
	echoes("BODY[]", "BODY[]");
	echoes("body.peek[]<0.100>", "BODY[]<0>");
	echoes("BODY[]<17.3>", "BODY[]<17>");
	echoes("BODY[HEADER]", "BODY[HEADER]");
	echoes("BODY.PEEK[text]", "BODY[TEXT]");
	echoes("BODY[1.2.3]", "BODY[1.2.3]");
	echoes("BODY[1.MIME]", "BODY[1.MIME]");
	echoes("BODY[2.HEADER]", "BODY[2.HEADER]");
	echoes("BODY[3.1.TEXT]", "BODY[3.1.TEXT]");
	echoes("BODY[HEADER.FIELDS (From)]", "BODY[HEADER.FIELDS (From)]");
	echoes("BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100>",
	    "BODY[1.2.HEADER.FIELDS (From Subject)]<0>");
	echoes("BODY[header.fields.not (\"X-Spam\" {4+}\r\nDate)]",
	    "BODY[HEADER.FIELDS.NOT (X-Spam Date)]");
	echoes("BODY[HEADER.FIELDS (\"a\\\"b\" c]d)]", "BODY[HEADER.FIELDS (\"a\\\"b\" \"c]d\")]");
	echoes("(BINARY[1] BINARY.PEEK[2.3]<5.10> BINARY.SIZE[1] BINARY[])",
	    "BINARY[1] BINARY[2.3]<5> BINARY.SIZE[1] BINARY[]");
}

Test(imap_fetchattr, section_details)
{
	struct parsed p;
	const struct imap_fetch_att *a;

	fetch(&p, "(BODY.PEEK[1.2.HEADER.FIELDS (From Subject)]<0.100> BODY[2.MIME])", false);
	cr_assert(p.ok, "%s", p.err.msg);
	a = &p.f.atts[0];
	cr_assert_eq(a->item, IMAP_FETCH_BODY_SECTION);
	cr_assert(a->peek);
	cr_assert_eq(a->section.nparts, 2);
	cr_assert_eq(a->section.part[0], 1);
	cr_assert_eq(a->section.part[1], 2);
	cr_assert_eq(a->section.text, IMAP_SECTION_HEADER_FIELDS);
	cr_assert_eq(a->section.nfields, 2);
	cr_assert_str_eq(a->section.fields[1], "Subject");
	cr_assert(a->partial);
	cr_assert_eq(a->offset, 0);
	cr_assert_eq(a->length, 100);
	a = &p.f.atts[1];
	cr_assert_not(a->peek);
	cr_assert_eq(a->section.text, IMAP_SECTION_MIME);
	cr_assert(p.f.sets_seen);
	done(&p);
	fetch(&p, "(BINARY.PEEK[1] BINARY.SIZE[1])", false);
	cr_assert(p.ok);
	cr_assert_eq(p.f.atts[0].item, IMAP_FETCH_BINARY);
	cr_assert_eq(p.f.atts[1].item, IMAP_FETCH_BINARY_SIZE);
	cr_assert_not(p.f.sets_seen, "PEEK and SIZE leave \\Seen alone");
	done(&p);
	fetch(&p, "BINARY[1]", false);
	cr_assert(p.ok && p.f.sets_seen);
	done(&p);
}

Test(imap_fetchattr, bad_attributes)
{
	static const char *const bad[] = {
		"FOO", "()", "(FLAGS FOO)", "BODY[MIME]", "BODY[0]", "BODY[1.0]", "BODY[01]",
		"BODY[1.]", "BODY[.1]", "BODY[HEADER.FIELDS]", "BODY[HEADER.FIELDS ()]",
		"BODY[HEADER (From)]", "BODY[TEXT.HEADER]", "BODY[HEADER.FIELDS (a:b)]",
		"BODY[HEADER.FIELDS (\"\")]", "BODY[HEADER.FIELDS (\"a b\")]", "BODY[]<0>",
		"BODY[]<0.0>", "BODY[]<a.1>", "BODY[]<0.1", "BODY[]<1.2.3>", "BODY[]x",
		"BODY[]<4294967296.1>", "BINARY[TEXT]", "BINARY[1.MIME]", "BINARY.SIZE[1]<0.5>",
		"BODY[1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22.23.24.25.26.27.28.29.30.31.32.33]",
		"\"FLAGS\"", "\\Seen", "BODY[FOO]", "(FLAGS) (FOO)", "FLAGS (CHANGEDSINCE)",
		"FLAGS ()", "FLAGS (CHANGEDSINCE x)", "FLAGS (CHANGEDSINCE 1 CHANGEDSINCE 2)",
		"FLAGS (VANISHED)", "FLAGS (CHANGEDSINCE 1 VANISHED)", "FLAGS (FOO 1)",
		"FLAGS (CHANGEDSINCE 9223372036854775808)", "FLAGS FLAGS",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		rejects(bad[i], false);
	rejects("FLAGS (VANISHED)", true);
}

Test(imap_fetchattr, modifiers)
{
	struct parsed p;

	fetch(&p, "(FLAGS) (CHANGEDSINCE 12345)", false);
	cr_assert(p.ok, "%s", p.err.msg);
	cr_assert(p.f.changedsince_set);
	cr_assert_eq(p.f.changedsince, 12345);
	cr_assert_not(p.f.vanished);
	cr_assert_eq(p.f.count, 2, "CHANGEDSINCE implies MODSEQ");
	cr_assert_eq(p.f.atts[1].item, IMAP_FETCH_MODSEQ);
	done(&p);
	fetch(&p, "(FLAGS MODSEQ) (changedsince 0 vanished)", true);
	cr_assert(p.ok, "%s", p.err.msg);
	cr_assert(p.f.vanished);
	cr_assert_eq(p.f.count, 2);
	done(&p);
}

Test(imap_fetchattr, ensure_adds_once)
{
	struct parsed p;

	fetch(&p, "(FLAGS UID)", true);
	cr_assert(p.ok);
	cr_assert(imap_fetch_ensure(&p.f, IMAP_FETCH_UID));
	cr_assert_eq(p.f.count, 2);
	cr_assert(imap_fetch_ensure(&p.f, IMAP_FETCH_MODSEQ));
	cr_assert_eq(p.f.count, 3);
	cr_assert_str_eq(p.f.atts[2].echo, "MODSEQ");
	done(&p);
}

/* Random attribute lists from the vocabulary: never a crash, leak or hang. */
Test(imap_fetchattr, fuzz_vocabulary, .timeout = 30)
{
	static const char *const words[] = {
		"FLAGS", "ALL", "(", ")", "BODY[]", "BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.5>",
		"BODY[1.MIME]", "BINARY[1]", "BINARY.SIZE[2]", "BODY[TEXT]<1.2>", "UID", "(CHANGEDSINCE",
		"1", "VANISHED)", "MODSEQ", "RFC822", "BODY[HEADER.FIELDS.NOT (a b)]", "x", "BODY[0]",
	};
	struct imap_limits l;
	unsigned seed = 11, rounds = 0;
	clock_t start = clock();

	imap_limits_default(&l);
	while (clock() - start < CLOCKS_PER_SEC / 2) {
		char line[512] = "t UID FETCH 1";
		struct imap_command *c;
		struct imap_error e;
		struct imap_fetch f;
		unsigned n;

		seed = seed * 1103515245u + 12345u;
		n = 1 + (seed >> 16) % 8;
		for (unsigned i = 0; i < n; i++) {
			seed = seed * 1103515245u + 12345u;
			strcat(line, " ");
			strcat(line, words[(seed >> 16) % (sizeof(words) / sizeof(words[0]))]);
		}
		strcat(line, "\r\n");
		if (imap_parse_command(&l, line, strlen(line), &c, &e) == 0) {
			if (imap_fetch_parse(c->args + 1, c->nargs - 1, true, &f, &e))
				imap_fetch_free(&f);
			imap_command_free(c);
		}
		rounds++;
	}
	cr_assert_gt(rounds, 100);
}

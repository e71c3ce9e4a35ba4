/*
 * The IMAP session fed byte strings through the conn double: exact
 * replies to the greeting, CAPABILITY, bad and pipelined commands, a
 * command over the pre-login bound, LOGIN, a literal, and LOGOUT.
 */
#include <criterion/criterion.h>

#include <stdlib.h>
#include <string.h>

#include "mailsnare/imap.h"
#include "mailsnare/server.h"
#include "conn_double.h"

/* Before login, without TLS on offer (the double has none). */
#define CAPS "IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE NAMESPACE UNSELECT" \
	" CHILDREN UIDPLUS MULTIAPPEND MOVE SPECIAL-USE CONDSTORE QRESYNC LIST-EXTENDED" \
	" LIST-STATUS ESEARCH SEARCHRES SORT SORT=DISPLAY THREAD=ORDEREDSUBJECT" \
	" THREAD=REFERENCES UTF8=ACCEPT BINARY COMPRESS=DEFLATE"
#define CAPS_NOTAUTH CAPS " AUTH=PLAIN AUTH=LOGIN AUTH=CRAM-MD5"

static struct conn *c;

static void setup(void) { c = cd_start(&imap_proto); }
static void teardown(void) { cd_stop(c); }

TestSuite(imap_session, .init = setup, .fini = teardown);

static void expect(const char *input, const char *reply)
{
	const char *got;

	cd_feeds(c, input);
	got = cd_output(c);
	cr_assert_str_eq(got, reply, "after %.60s: got %s", input, got);
}

Test(imap_session, greeting)
{
	cr_assert_str_eq(cd_output(c), "* OK [CAPABILITY " CAPS_NOTAUTH "] mailsnare IMAP ready\r\n");
}

Test(imap_session, capability)
{
	cd_output(c);
	expect("a1 CAPABILITY\r\n", "* CAPABILITY " CAPS_NOTAUTH "\r\na1 OK CAPABILITY completed\r\n");
}

Test(imap_session, bad_commands)
{
	cd_output(c);
	expect("a1 FROB\r\n", "a1 BAD Unknown command FROB\r\n");
	expect("a2 SELECT INBOX\r\n", "a2 BAD SELECT not allowed before login\r\n");
	cr_assert_not(cd_closed(c));
}

Test(imap_session, pipelined_login_and_select)
{
	cd_output(c);
	static const char head[] = "a1 OK NOOP completed\r\n"
	    "a2 OK [CAPABILITY " CAPS "] Logged in\r\n"
	    "* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n"
	    "* OK [PERMANENTFLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft \\*)]"
	    " Flags permitted\r\n"
	    "* 0 EXISTS\r\n* 0 RECENT\r\n* OK [UIDVALIDITY ";
	static const char tail[] = "] UIDs valid\r\n"
	    "* OK [UIDNEXT 1] Predicted next UID\r\n"
	    "* OK [HIGHESTMODSEQ 1] Highest\r\n"
	    "a3 OK [READ-WRITE] SELECT completed\r\n"
	    "a4 OK NOOP completed\r\n";
	const char *got, *t;

	cd_output(c);
	cd_feeds(c, "a1 NOOP\r\na2 LOGIN dev dev\r\na3 SELECT INBOX\r\na4 NOOP\r\n");
	got = cd_output(c);
	/* Everything but the UIDVALIDITY value, which is made at creation. */
	cr_assert(strncmp(got, head, sizeof(head) - 1) == 0, "got %s", got);
	t = got + sizeof(head) - 1;
	cr_assert(*t >= '1' && *t <= '9', "got %s", got);
	t += strspn(t, "0123456789");
	cr_assert_str_eq(t, tail, "got %s", got);
}

/* A LOGIN with its password as a synchronizing literal. */
Test(imap_session, literal)
{
	cd_output(c);
	expect("a1 LOGIN dev {3}\r\n", "+ Ready for literal data\r\n");
	expect("dev\r\n", "a1 OK [CAPABILITY " CAPS "] Logged in\r\n");
}

/* Before login a command line is bounded tightly (IMAP_PREAUTH_COMMAND_MAX);
 * [TOOBIG] is RFC 4469's response code. */
Test(imap_session, command_over_the_bound)
{
	size_t n = IMAP_PREAUTH_COMMAND_MAX + 16;
	char *line = malloc(n + 1);

	cd_output(c);
	memset(line, 'x', n);
	memcpy(line, "a1 NOOP ", 8);
	memcpy(line + n - 2, "\r\n", 3);
	expect(line, "a1 BAD [TOOBIG] Command line too long\r\n");
	free(line);
	expect("a2 NOOP\r\n", "a2 OK NOOP completed\r\n");
}

Test(imap_session, logout)
{
	cd_output(c);
	expect("a1 LOGOUT\r\n", "* BYE mailsnare logging out\r\na1 OK LOGOUT completed\r\n");
	cr_assert(cd_closed(c));
	expect("a2 NOOP\r\n", "");
}

/*
 * The POP3 session fed byte strings through the conn double: exact
 * replies to the greeting, CAPA, bad and pipelined commands, an over-long
 * command line, login, the maildrop lock (RFC 1939 §8) and QUIT.
 */
#include <criterion/criterion.h>

#include <string.h>

#include "mailsnare/pop3.h"
#include "mailsnare/pop3_parse.h"
#include "mailsnare/server.h"
#include "conn_double.h"

static struct conn *c;

static void setup(void) { c = cd_start(&pop3_proto); }
static void teardown(void) { cd_stop(c); }

TestSuite(pop3_session, .init = setup, .fini = teardown);

static void expect_on(struct conn *k, const char *input, const char *reply)
{
	cd_feeds(k, input);
	cr_assert_str_eq(cd_output(k), reply, "after %s", input);
}

#define expect(input, reply) expect_on(c, (input), (reply))

/* RFC 1939 §7 (APOP): the greeting ends with a msg-id shaped timestamp. */
Test(pop3_session, greeting_has_an_apop_timestamp)
{
	const char *g = cd_output(c);
	size_t n = strlen(g);

	cr_assert(strncmp(g, "+OK mailsnare POP3 ready <", 26) == 0, "%s", g);
	cr_assert_geq(n, 30);
	cr_assert_str_eq(g + n - 3, ">\r\n");
	cr_assert_not_null(strchr(g, '@'));
}

/* RFC 2449; no STLS: the server has no TLS here. */
Test(pop3_session, capa)
{
	cd_output(c);
	expect("CAPA\r\n", "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\n"
	    "SASL PLAIN LOGIN CRAM-MD5\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	    "EXPIRE NEVER\r\nIMPLEMENTATION mailsnare\r\n.\r\n");
}

Test(pop3_session, unknown_and_out_of_state)
{
	cd_output(c);
	expect("FROB\r\n", "-ERR Unknown command\r\n");
	expect("STAT\r\n", "-ERR Not logged in (USER/PASS, APOP or AUTH first)\r\n");
	expect("PASS dev\r\n", "-ERR Send USER first\r\n");
	cr_assert_not(cd_closed(c));
}

/* RFC 2449 PIPELINING: one read, replies in order. */
Test(pop3_session, pipelined_login)
{
	cd_output(c);
	expect("USER dev\r\nPASS dev\r\nSTAT\r\nLIST\r\nRETR 1\r\nNOOP\r\n",
	    "+OK Send your password\r\n"
	    "+OK Logged in, 0 messages (0 octets)\r\n"
	    "+OK 0 0\r\n"
	    "+OK 0 messages (0 octets)\r\n.\r\n"
	    "-ERR No such message\r\n"
	    "+OK\r\n");
}

/* RFC 2449 §4: a command line is at most 255 octets with CRLF. */
Test(pop3_session, command_line_over_the_bound)
{
	char line[300];

	cd_output(c);
	memset(line, 'x', sizeof(line));
	memcpy(line, "USER ", 5);
	memcpy(line + POP3_COMMAND_LINE_MAX - 1, "\r\n", 3);
	expect(line, "-ERR Line too long\r\n");
	memcpy(line + POP3_COMMAND_LINE_MAX - 2, "\r\n", 3);   /* the bound */
	expect(line, "+OK Send your password\r\n");
	expect("CAPA\r\n", "+OK Capability list follows\r\nTOP\r\nUIDL\r\nUSER\r\n"
	    "SASL PLAIN LOGIN CRAM-MD5\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n"
	    "EXPIRE NEVER\r\nIMPLEMENTATION mailsnare\r\n.\r\n");
}

/* An AUTH response line beyond POP3_AUTH_LINE_MAX ends the exchange;
 * the next line is a command again. */
Test(pop3_session, auth_line_over_the_bound)
{
	static char line[POP3_AUTH_LINE_MAX + 8];

	cd_output(c);
	expect("AUTH PLAIN\r\n", "+ \r\n");
	memset(line, 'A', sizeof(line));
	memcpy(line + POP3_AUTH_LINE_MAX + 1, "\r\n", 3);
	expect(line, "-ERR Authentication exchange line is too long\r\n");
	expect("USER dev\r\n", "+OK Send your password\r\n");
	cr_assert_not(cd_closed(c));
}

/* RFC 1939 §8: one session at a time owns a maildrop; QUIT gives it back. */
Test(pop3_session, maildrop_lock)
{
	struct conn *other = cd_open(conn_server(c), &pop3_proto, false);

	cd_output(c);
	cd_output(other);
	expect("USER dev\r\nPASS dev\r\n",
	    "+OK Send your password\r\n+OK Logged in, 0 messages (0 octets)\r\n");
	expect_on(other, "USER dev\r\nPASS dev\r\n", "+OK Send your password\r\n"
	    "-ERR [IN-USE] Mailbox is locked by another POP3 session\r\n");
	expect("QUIT\r\n", "+OK mailsnare POP3 server signing off (0 messages deleted)\r\n");
	cr_assert(cd_closed(c));
	expect_on(other, "USER dev\r\nPASS dev\r\n",
	    "+OK Send your password\r\n+OK Logged in, 0 messages (0 octets)\r\n");
	cd_free(other);
}

Test(pop3_session, quit_before_login)
{
	cd_output(c);
	expect("QUIT\r\n", "+OK mailsnare POP3 server signing off\r\n");
	cr_assert(cd_closed(c));
	expect("NOOP\r\n", "");
}

/*
 * The SMTP session fed byte strings through the conn double: exact
 * replies to the greeting, EHLO, bad and pipelined commands, an
 * over-long command line, QUIT, a whole transaction into the store, and
 * each chaos trigger's reply.
 */
#include <criterion/criterion.h>

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "mailsnare/chaos.h"
#include "mailsnare/deliver.h"
#include "mailsnare/server.h"
#include "mailsnare/smtp.h"
#include "mailsnare/store.h"
#include "conn_double.h"

static struct conn *c;

static void setup(void) { c = cd_start(&smtp_proto); }
static void teardown(void) { cd_stop(c); }

TestSuite(smtp_session, .init = setup, .fini = teardown);

static void expect(const char *input, const char *reply)
{
	cd_feeds(c, input);
	cr_assert_str_eq(cd_output(c), reply, "after %s", input);
}

Test(smtp_session, greeting)
{
	cr_assert_str_eq(cd_output(c), "220 mx.test ESMTP mailsnare\r\n");
	cr_assert_not(cd_closed(c));
}

/* No STARTTLS: the server has no TLS here. */
Test(smtp_session, ehlo_lists_the_extensions)
{
	char want[512];

	cd_output(c);
	snprintf(want, sizeof(want), "250-mx.test greets client.test\r\n"
	    "250-PIPELINING\r\n250-SIZE %" PRIu64 "\r\n"
	    "250-8BITMIME\r\n250-ENHANCEDSTATUSCODES\r\n250-SMTPUTF8\r\n"
	    "250-CHUNKING\r\n250-AUTH PLAIN LOGIN CRAM-MD5\r\n250 HELP\r\n",
	    conn_server(c)->cfg->max_message_size);
	expect("EHLO client.test\r\n", want);
}

Test(smtp_session, unknown_command_and_sequence)
{
	cd_output(c);
	expect("FROB\r\n", "500 5.5.1 Command unrecognized\r\n");
	expect("MAIL FROM:<a@b.test>\r\n", "503 5.5.1 Send HELO/EHLO first\r\n");
	cr_assert_not(cd_closed(c));
}

/* RFC 2920: pipelined commands are answered in order, from one read. */
Test(smtp_session, pipelined_commands)
{
	cd_output(c);
	expect("HELO a.test\r\nNOOP\r\nRSET\r\nFROB\r\nNOOP\r\n",
	    "250 mx.test\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"
	    "500 5.5.1 Command unrecognized\r\n250 2.0.0 Ok\r\n");
	cr_assert_eq(cd_input_left(c), 0);
}

/* While the client does not read its replies, commands wait unread. */
Test(smtp_session, output_full_holds_commands)
{
	cd_output(c);
	cd_set_output_full(c, true);
	expect("NOOP\r\nNOOP\r\n", "");
	cr_assert_eq(cd_input_left(c), 12);
	cd_set_output_full(c, false);
	cd_run(c);
	cr_assert_str_eq(cd_output(c), "250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n");
}

/* A command split across reads is taken once its line is complete. */
Test(smtp_session, command_in_pieces)
{
	cd_output(c);
	expect("HE", "");
	expect("LO a.t", "");
	expect("est\r\n", "250 mx.test\r\n");
}

/* RFC 5321 §4.5.3.1.4: a command line is at most 512 octets with CRLF. */
Test(smtp_session, command_line_over_the_bound)
{
	char line[600];

	cd_output(c);
	memset(line, 'x', sizeof(line));
	memcpy(line, "NOOP ", 5);
	memcpy(line + 511, "\r\n", 3);      /* 511 octets before CRLF */
	expect(line, "500 5.5.2 Line too long\r\n");
	memcpy(line + 510, "\r\n", 3);      /* 510: the bound */
	expect(line, "250 2.0.0 Ok\r\n");
	cr_assert_not(cd_closed(c));
}

/* Far past any buffer: one reply, the rest of the line is dropped as it
 * arrives, and the next line is a command again. */
Test(smtp_session, endless_line_is_dropped)
{
	static char junk[64 * 1024];

	cd_output(c);
	memset(junk, 'x', sizeof(junk));
	cd_feed(c, junk, sizeof(junk));
	cr_assert_str_eq(cd_output(c), "500 5.5.2 Line too long\r\n");
	cd_feed(c, junk, sizeof(junk));
	expect("xx\r\nNOOP\r\n", "250 2.0.0 Ok\r\n");
}

/* An AUTH response line beyond SMTP_AUTH_LINE_MAX ends the exchange
 * with 500 5.5.6; the next line is a command again. */
Test(smtp_session, auth_line_over_the_bound)
{
	static char line[SMTP_AUTH_LINE_MAX + 8];

	cd_output(c);
	expect("HELO a.test\r\n", "250 mx.test\r\n");
	expect("AUTH PLAIN\r\n", "334 \r\n");
	memset(line, 'A', sizeof(line));
	memcpy(line + SMTP_AUTH_LINE_MAX + 1, "\r\n", 3);
	expect(line, "500 5.5.6 Authentication exchange line is too long\r\n");
	expect("NOOP\r\n", "250 2.0.0 Ok\r\n");
	cr_assert_not(cd_closed(c));
}

Test(smtp_session, quit_closes)
{
	cd_output(c);
	expect("QUIT\r\n", "221 2.0.0 Bye\r\n");
	cr_assert(cd_closed(c));
	/* Nothing more is read after QUIT. */
	expect("NOOP\r\n", "");
}

struct text {
	char *buf;
	size_t len;
};

static int take(void *arg, const void *buf, size_t len)
{
	struct text *t = arg;

	t->buf = realloc(t->buf, t->len + len + 1);
	cr_assert_not_null(t->buf);
	memcpy(t->buf + t->len, buf, len);
	t->len += len;
	t->buf[t->len] = '\0';
	return 0;
}

struct stored {
	int n;
	int64_t id;
	char from[128], rcpts[256], subject[128];
	uint64_t size;
};

static int collect(const struct store_message_info *m, void *arg)
{
	struct stored *st = arg;

	st->n++;
	st->id = m->id;
	snprintf(st->from, sizeof(st->from), "%s", m->mail_from);
	snprintf(st->rcpts, sizeof(st->rcpts), "%s", m->rcpts);
	snprintf(st->subject, sizeof(st->subject), "%s", m->hdr_subject);
	st->size = m->size;
	return 0;
}

/* A whole transaction: the reply to the final dot waits for the group
 * commit (deliver_flush here, the end of the loop pass in the server),
 * and the stored message is what was sent, dot-unstuffed. */
Test(smtp_session, transaction_is_stored)
{
	static const char want[] = "Subject: hi\r\n\r\nbody\r\n.dot\r\n";
	struct stored st = { 0 };
	struct text t = { 0 };

	cd_output(c);
	cd_feeds(c, "EHLO a.test\r\n");
	cd_output(c);
	expect("MAIL FROM:<alice@a.test>\r\n", "250 2.1.0 Ok\r\n");
	expect("RCPT TO:<bob@b.test>\r\n", "250 2.1.5 Ok\r\n");
	expect("RCPT TO:<carol@b.test>\r\n", "250 2.1.5 Ok\r\n");
	expect("DATA\r\n", "354 End data with <CR><LF>.<CR><LF>\r\n");
	/* Pipelined after the dot: waits for the commit. */
	expect("Subject: hi\r\n\r\nbody\r\n..dot\r\n.\r\nNOOP\r\n", "");
	cr_assert(cd_paused(c));
	deliver_flush(conn_server(c)->deliver);
	cd_run(c);
	cr_assert_str_eq(cd_output(c), "250 2.0.0 Ok: queued as 1\r\n250 2.0.0 Ok\r\n");
	cr_assert_eq(store_message_foreach(conn_server(c)->store, SMTP_DEFAULT_INBOX, collect, &st), 0);
	cr_assert_eq(st.n, 1);
	cr_assert_str_eq(st.from, "alice@a.test");
	cr_assert_str_eq(st.rcpts, "bob@b.test, carol@b.test");
	cr_assert_str_eq(st.subject, "hi");
	cr_assert_eq(store_message_read(conn_server(c)->store, st.id, take, &t), 0);
	/* What the server adds goes in front (a Received line). */
	cr_assert_geq(t.len, sizeof(want) - 1);
	cr_assert_str_eq(t.buf + t.len - (sizeof(want) - 1), want);
	cr_assert_eq(st.size, t.len);
	free(t.buf);
}

/* ---- chaos: each trigger at 100 % ---- */

static void chaos_on(const char *spec)
{
	struct chaos_config cc;
	char err[128];

	chaos_config_default(&cc);
	cr_assert_eq(chaos_parse(spec, &cc, err, sizeof(err)), 0, "%s", err);
	chaos_setup(true, &cc, 1);
}

static void chaos_transaction_start(void)
{
	cd_output(c);
	cd_feeds(c, "EHLO a.test\r\n");
	cd_output(c);
}

Test(smtp_session, chaos_connect)
{
	cd_stop(c);
	chaos_on("Connect:421:100");
	c = cd_start(&smtp_proto);
	cr_assert_str_eq(cd_output(c), "421 Chaos connect error\r\n");
	cr_assert(cd_closed(c));
}

Test(smtp_session, chaos_sender_recipient_auth)
{
	chaos_on("Sender:451:100");
	chaos_transaction_start();
	expect("MAIL FROM:<a@a.test>\r\n", "451 Chaos sender error\r\n");
	chaos_on("Recipient:550:100");
	expect("MAIL FROM:<a@a.test>\r\n", "250 2.1.0 Ok\r\n");
	expect("RCPT TO:<b@b.test>\r\n", "550 Chaos recipient error\r\n");
	expect("RSET\r\n", "250 2.0.0 Ok\r\n");
	chaos_on("Authentication:535:100");
	expect("AUTH PLAIN AGRldgBkZXY=\r\n", "535 Chaos authentication error\r\n");
}

Test(smtp_session, chaos_data_refuses_after_the_data)
{
	struct stored st = { 0 };

	chaos_on("Data:554:100");
	chaos_transaction_start();
	expect("MAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	expect("Subject: x\r\n\r\nbody\r\n.\r\n", "554 Chaos data error\r\n");
	expect("NOOP\r\n", "250 2.0.0 Ok\r\n");
	cr_assert_eq(store_message_foreach(conn_server(c)->store, SMTP_DEFAULT_INBOX, collect, &st), 0);
	cr_assert_eq(st.n, 0);
}

Test(smtp_session, chaos_disconnect_in_data)
{
	chaos_on("Disconnect:421:100");
	chaos_transaction_start();
	expect("MAIL FROM:<a@a.test>\r\nRCPT TO:<b@b.test>\r\nDATA\r\n",
	    "250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
	cr_assert_not(cd_closed(c));
	expect("Subject: x\r\n\r\nhalf", "");
	cr_assert(cd_closed(c));
}

/* Delay: the command waits on a timer, the connection paused meanwhile. */
Test(smtp_session, chaos_delay_is_a_timer)
{
	chaos_on("Delay:20:100");
	cd_output(c);
	expect("NOOP\r\n", "");
	cr_assert(cd_paused(c));
	event_base_dispatch(conn_server(c)->base);
	cd_run(c);
	cr_assert_str_eq(cd_output(c), "250 2.0.0 Ok\r\n");
}

"""SMTP integration tests on raw sockets: pipelining, the SMTP smuggling
rule, input bounds, command sequence errors, BDAT, AUTH exchanges and
STARTTLS session reset. Every delivery is checked with `message get`."""

import hashlib
import hmac
import base64
import time

import harness
from harness import RawSMTP, normalize, queued_id, auth_plain, b64, CRLF


class RawCase(harness.TestCase):

    def open(self, ehlo=True, tls=False):
        if tls:
            c = RawSMTP(self.server.addr("smtps"), tls_context=harness.insecure_context())
        else:
            c = RawSMTP(self.server.addr("smtp"))
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        if ehlo:
            r = c.cmd("EHLO client.example.test")
            self.assertReply(r, 250)
        return c

    def envelope(self, c, sender="s@example.test", rcpts=("r@example.test",)):
        self.assertReply(c.cmd("MAIL FROM:<%s>" % sender), 250, "2.1.0")
        for rcpt in rcpts:
            self.assertReply(c.cmd("RCPT TO:<%s>" % rcpt), 250, "2.1.5")

    def data(self, c, payload):
        """DATA with `payload` sent as is; it must end the data itself."""
        self.assertReply(c.cmd("DATA"), 354)
        c.send(payload)
        return c.reply()

    def deliver(self, c, stuffed, **kw):
        self.envelope(c, **kw)
        r = self.data(c, stuffed)
        self.assertReply(r, 250, "2.0.0")
        return queued_id(r.text)

    def dev_ids(self):
        return set(self.server.message_ids("dev"))


class TestPipelining(RawCase):

    def test_whole_transaction_in_one_write(self):
        c = self.open(ehlo=False)
        c.send(b"EHLO client.example.test\r\n"
               b"MAIL FROM:<pipe@example.test>\r\n"
               b"RCPT TO:<one@example.test>\r\n"
               b"RCPT TO:<two@example.test>\r\n"
               b"DATA\r\n")
        ehlo = c.reply()
        self.assertReply(ehlo, 250)
        self.assertIn("PIPELINING", ehlo.keywords())
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        body = b"Subject: pipelined\r\n\r\nline 1\r\n..dot line\r\nline 3\r\n"
        c.send(body + b".\r\nQUIT\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertTrue(c.closed_by_peer(), "connection still open after QUIT")
        self.assertStored(queued_id(r.text),
                          b"Subject: pipelined\r\n\r\nline 1\r\n.dot line\r\nline 3\r\n",
                          inbox="dev")

    def test_two_transactions_pipelined_after_data(self):
        c = self.open()
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        c.send(b"Subject: first\r\n\r\n1\r\n.\r\n"
               b"RSET\r\nMAIL FROM:<c@example.test>\r\nRCPT TO:<d@example.test>\r\nDATA\r\n")
        r1 = c.reply()
        self.assertReply(r1, 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        c.send(b"Subject: second\r\n\r\n2\r\n.\r\nNOOP\r\nQUIT\r\n")
        r2 = c.reply()
        self.assertReply(r2, 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertStored(queued_id(r1.text), b"Subject: first\r\n\r\n1\r\n", inbox="dev")
        self.assertStored(queued_id(r2.text), b"Subject: second\r\n\r\n2\r\n", inbox="dev")

    def test_pipelined_errors_in_order(self):
        c = self.open()
        c.send(b"RCPT TO:<x@example.test>\r\n"
               b"MAIL FROM:<a@example.test>\r\n"
               b"RCPT TO:<bad@@address>\r\n"
               b"RCPT TO:<ok@example.test>\r\n"
               b"NOOP\r\n")
        self.assertReply(c.reply(), 503, "5.5.1")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 501, "5.1.3")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 250, "2.0.0")


class TestSmuggling(RawCase):
    """Only <CRLF>.<CRLF> ends DATA: anything that looks like an end of
    data with a bare LF or CR is data, and the commands after it are part of
    the first message."""

    SMUGGLED = (b"MAIL FROM:<evil@example.test>\r\n"
                b"RCPT TO:<victim@example.test>\r\n"
                b"DATA\r\n"
                b"Subject: smuggled\r\n\r\nevil\r\n")

    def smuggle(self, fake_end, exact=True):
        c = self.open()
        before = self.dev_ids()
        self.envelope(c, sender="honest@example.test")
        self.assertReply(c.cmd("DATA"), 354)
        data = b"Subject: honest\r\n\r\nhonest body" + fake_end + self.SMUGGLED
        c.send(data + b".\r\nQUIT\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        # the next reply must be the QUIT's: no reply to a smuggled command
        self.assertReply(c.reply(), 221, "2.0.0")
        self.assertTrue(c.closed_by_peer())
        msg_id = queued_id(r.text)
        new = self.dev_ids() - before
        self.assertEqual(new, {msg_id}, "expected exactly one new message")
        raw = self.server.message_bytes(msg_id)
        self.assertIn(b"MAIL FROM:<evil@example.test>", raw)
        self.assertIn(b"Subject: smuggled", raw)
        self.assertIn(b"evil", raw)
        if exact:
            with self.subTest("exact stored bytes"):
                self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_lf_dot_lf(self):
        self.smuggle(b"\n.\n")

    def test_lf_dot_crlf(self):
        self.smuggle(b"\n.\r\n")

    def test_crlf_dot_lf(self):
        # whether the dot (at the start of a CRLF line, followed by a bare
        # LF) is unstuffed is not part of the contract: no exact check
        self.smuggle(b"\r\n.\n", exact=False)

    def test_cr_dot_cr(self):
        self.smuggle(b"\r.\r", exact=False)

    def test_cr_dot_crlf(self):
        self.smuggle(b"\r.\r\n", exact=False)

    def test_end_split_across_writes(self):
        # a real <CRLF>.<CRLF> in several small writes still ends the data
        c = self.open()
        self.envelope(c)
        self.assertReply(c.cmd("DATA"), 354)
        for piece in (b"Subject: split\r\n\r\nbody\r", b"\n", b".", b"\r", b"\n"):
            c.send(piece)
            time.sleep(0.05)
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), b"Subject: split\r\n\r\nbody\r\n", inbox="dev")


class TestBounds(RawCase):

    def test_long_command_line(self):
        c = self.open()
        self.assertReply(c.cmd(b"NOOP " + b"x" * 600), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_command_line_at_512_accepted(self):
        c = self.open()
        line = b"NOOP " + b"y" * (510 - 5)
        self.assertEqual(len(line + CRLF), 512)
        self.assertReply(c.cmd(line), 250, "2.0.0")
        self.assertReply(c.cmd(line + b"y"), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_huge_command_line(self):
        c = self.open()
        self.assertReply(c.cmd(b"MAIL FROM:<" + b"z" * 200000 + b"@example.test>"), 500, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        msg_id = self.deliver(c, b"Subject: after huge line\r\n\r\nok\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: after huge line\r\n\r\nok\r\n", inbox="dev")

    def test_long_text_line(self):
        c = self.open()
        before = self.dev_ids()
        self.envelope(c)
        r = self.data(c, b"Subject: long line\r\n\r\n" + b"a" * 999 + b"\r\nend\r\n.\r\n")
        self.assertReply(r, 500, "5.5.2")
        self.assertEqual(self.dev_ids(), before, "a refused message was stored")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        msg_id = self.deliver(c, b"Subject: after long line\r\n\r\nok\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: after long line\r\n\r\nok\r\n", inbox="dev")

    def test_text_line_of_1000_accepted(self):
        c = self.open()
        data = b"Subject: 1000\r\n\r\n" + b"b" * 998 + b"\r\n"
        msg_id = self.deliver(c, data + b".\r\n")
        self.assertStored(msg_id, data, inbox="dev")

    def test_very_long_text_line(self):
        c = self.open()
        before = self.dev_ids()
        self.envelope(c)
        r = self.data(c, b"Subject: very long\r\n\r\n" + b"c" * 300000 + b"\r\n.\r\n")
        self.assertReply(r, 500, "5.5.2")
        self.assertEqual(self.dev_ids(), before)
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_too_many_recipients(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<many@example.test>"), 250, "2.1.0")
        rcpts = ["r%04d@example.test" % i for i in range(1002)]
        c.send(b"".join(b"RCPT TO:<%s>\r\n" % r.encode() for r in rcpts))
        replies = c.replies(len(rcpts))
        for i, r in enumerate(replies[:1000]):
            self.assertReply(r, 250, "2.1.5", "RCPT #%d: %r" % (i + 1, r))
        for i, r in enumerate(replies[1000:], 1001):
            self.assertReply(r, 452, "4.5.3", "RCPT #%d: %r" % (i, r))
        # the transaction goes on with the first 1000 recipients
        r = self.data(c, b"Subject: many\r\n\r\nmany rcpts\r\n.\r\n")
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), b"Subject: many\r\n\r\nmany rcpts\r\n", inbox="dev")

    def test_mail_size_parameter(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<s@example.test> SIZE=33554433"), 552, "5.3.4")
        self.assertReply(c.cmd("MAIL FROM:<s@example.test> SIZE=1000"), 250, "2.1.0")


class TestErrors(RawCase):

    def test_unknown_command(self):
        c = self.open()
        self.assertReply(c.cmd("FROBNICATE now"), 500, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_mail_before_ehlo(self):
        c = self.open(ehlo=False)
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 503, "5.5.1")
        self.assertReply(c.cmd("HELO client.example.test"), 250)
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250, "2.1.0")

    def test_rcpt_before_mail(self):
        c = self.open()
        self.assertReply(c.cmd("RCPT TO:<b@example.test>"), 503, "5.5.1")

    def test_data_before_mail(self):
        c = self.open()
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_data_before_rcpt(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")

    def test_nested_mail(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("MAIL FROM:<b@example.test>"), 503, "5.5.1")

    def test_bad_address_syntax(self):
        c = self.open()
        for line in ("MAIL FROM:<no-closing-bracket@example.test",
                     "MAIL FROM:<two@@example.test>"):
            with self.subTest(line=line):
                self.assertReply(c.cmd(line), 501, "5.1.7")
        self.assertReply(c.cmd("MAIL FROM:<ok@example.test>"), 250, "2.1.0")
        for line in ("RCPT TO:<no-closing-bracket@example.test",
                     "RCPT TO:<two@@example.test>",
                     "RCPT TO:<>"):
            with self.subTest(line=line):
                self.assertReply(c.cmd(line), 501, "5.1.3")

    def test_null_sender(self):
        c = self.open()
        msg_id = self.deliver(c, b"Subject: bounce\r\n\r\nnull sender\r\n.\r\n", sender="")
        self.assertStored(msg_id, b"Subject: bounce\r\n\r\nnull sender\r\n", inbox="dev")

    def test_unknown_parameter(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test> FROB=1"), 555, "5.5.4")
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<b@example.test> FROB=1"), 555, "5.5.4")

    def test_non_ascii_address_needs_smtputf8(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<jürgen@example.test>"), 553, "5.6.7")
        self.assertReply(c.cmd("MAIL FROM:<jürgen@example.test> SMTPUTF8"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<用户@例子.测试>"), 250, "2.1.5")
        data = "Subject: ütf8\r\n\r\nGrüße\r\n".encode("utf-8")
        r = self.data(c, data + b".\r\n")
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), data, inbox="dev")

    def test_non_ascii_rcpt_without_smtputf8(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<plain@example.test>"), 250, "2.1.0")
        self.assertReply(c.cmd("RCPT TO:<用户@例子.测试>"), 553, "5.6.7")

    def test_twenty_bad_commands_close(self):
        c = self.open()
        replies = []
        closed = False
        for i in range(25):
            try:
                c.send(b"BOGUS%d\r\n" % i)
                r = c.reply()
            except (EOFError, ConnectionError):
                closed = True
                break
            replies.append(r)
            if r.code == 421:
                closed = c.closed_by_peer()
                break
        codes = [r.code for r in replies]
        self.assertEqual(codes[:19], [500] * 19, codes)
        self.assertIn(421, codes, "no 421 after %d bad commands: %s" % (len(codes), codes))
        self.assertIn(codes.index(421), (19, 20),
                      "421 came after %d bad commands" % codes.index(421))
        self.assertTrue(closed, "connection not closed after 421")

    def test_vrfy(self):
        c = self.open()
        self.assertReply(c.cmd("VRFY dev"), 252)

    def test_help(self):
        c = self.open()
        self.assertReply(c.cmd("HELP"), 214)
        self.assertReply(c.cmd("HELP MAIL"), 214)

    def test_noop_and_quit(self):
        c = self.open()
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        self.assertReply(c.cmd("QUIT"), 221, "2.0.0")
        self.assertTrue(c.closed_by_peer())

    def test_rset_clears_transaction(self):
        c = self.open()
        before = self.dev_ids()
        self.envelope(c)
        self.assertReply(c.cmd("RSET"), 250, "2.0.0")
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")
        self.assertReply(c.cmd("RCPT TO:<r@example.test>"), 503, "5.5.1")
        self.assertEqual(self.dev_ids(), before)
        msg_id = self.deliver(c, b"Subject: after rset\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: after rset\r\n\r\nx\r\n", inbox="dev")

    def test_bare_lf_in_data_normalised(self):
        c = self.open()
        data = b"Subject: bare\nX-A: 1\r\n\nline\nline2\r\n"
        msg_id = self.deliver(c, data + b".\r\n")
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_dot_unstuffing(self):
        c = self.open()
        sent = b"Subject: dots\r\n\r\n..\r\n...x\r\n.. \r\n.y\r\n"
        msg_id = self.deliver(c, sent + b".\r\n")
        self.assertStored(msg_id, b"Subject: dots\r\n\r\n.\r\n..x\r\n. \r\ny\r\n", inbox="dev")

    def test_empty_message(self):
        c = self.open()
        msg_id = self.deliver(c, b".\r\n")
        raw = self.server.message_bytes(msg_id)
        self.assertTrue(raw.lower().startswith(b"received:"), raw)
        self.assertEqual(harness.strip_received(raw), b"")


class TestBdat(RawCase):

    def test_two_chunks_verbatim(self):
        c = self.open()
        self.assertIn("CHUNKING", c.cmd("EHLO again.example.test").keywords())
        self.envelope(c)
        chunk1 = b"Subject: bdat\r\n\r\nfirst chunk\r\n.\r\nnot the end\r\n"
        chunk2 = b"..two dots stay\r\n.\r\nlast line\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk1) + chunk1)
        self.assertReply(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(chunk2) + chunk2)
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), chunk1 + chunk2, inbox="dev")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_chunks_pipelined(self):
        c = self.open()
        chunk1 = b"Subject: bdat pipelined\r\n\r\nab"
        chunk2 = b"cd\nbare lf\r\n"
        c.send(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
               + b"BDAT %d\r\n" % len(chunk1) + chunk1
               + b"BDAT %d LAST\r\n" % len(chunk2) + chunk2 + b"NOOP\r\n")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 250)
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertReply(c.reply(), 250, "2.0.0")
        self.assertStored(queued_id(r.text), normalize(chunk1 + chunk2), inbox="dev")

    def test_last_with_zero_bytes(self):
        c = self.open()
        self.envelope(c)
        chunk = b"Subject: zero last\r\n\r\nbody\r\n"
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 250)
        r = c.cmd("BDAT 0 LAST")
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), chunk, inbox="dev")

    def test_bdat_before_rcpt(self):
        c = self.open()
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 250, "2.1.0")
        c.send(b"BDAT 5 LAST\r\nhello")
        self.assertReply(c.reply(), 503, "5.5.1")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_data_after_bdat(self):
        c = self.open()
        self.envelope(c)
        c.send(b"BDAT 4\r\nab\r\n")
        self.assertReply(c.reply(), 250)
        self.assertReply(c.cmd("DATA"), 503, "5.5.1")


class TestSizeLimitRaw(RawCase):
    server_args = ("--max-message-size", "10000")

    def test_data_too_big_pipelined_next_transaction(self):
        # the refusal comes after the end of data, and what follows it in
        # the same write is read as commands again
        c = self.open()
        before = self.dev_ids()
        self.envelope(c)
        self.assertReply(c.cmd("DATA"), 354)
        big = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 200
        c.send(big + b".\r\nMAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n")
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertReply(c.reply(), 250, "2.1.0")
        self.assertReply(c.reply(), 250, "2.1.5")
        self.assertReply(c.reply(), 354)
        self.assertEqual(self.dev_ids(), before, "an oversized message was stored")
        c.send(b"Subject: small\r\n\r\nsmall\r\n.\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        self.assertStored(queued_id(r.text), b"Subject: small\r\n\r\nsmall\r\n", inbox="dev")

    def test_bdat_too_big(self):
        c = self.open()
        before = self.dev_ids()
        self.envelope(c)
        chunk = b"Subject: big bdat\r\n\r\n" + (b"q" * 98 + b"\r\n") * 60
        c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 250)
        c.send(b"BDAT %d LAST\r\n" % len(chunk) + chunk)
        self.assertReply(c.reply(), 552, "5.3.4")
        self.assertEqual(self.dev_ids(), before, "an oversized message was stored")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")
        msg_id = self.deliver(c, b"Subject: after bdat\r\n\r\nok\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: after bdat\r\n\r\nok\r\n", inbox="dev")


class TestAuth(RawCase):

    def test_plain_initial_response(self):
        self.server.inbox_add("rawplain", "raw-pw")
        c = self.open()
        self.assertReply(c.cmd("AUTH PLAIN " + auth_plain("rawplain", "raw-pw")), 235, "2.7.0")
        msg_id = self.deliver(c, b"Subject: raw auth\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: raw auth\r\n\r\nx\r\n", inbox="rawplain")

    def test_plain_with_challenge(self):
        c = self.open()
        r = c.cmd("AUTH PLAIN")
        self.assertReply(r, 334)
        self.assertReply(c.cmd(auth_plain("dev", "dev")), 235, "2.7.0")

    def test_cancel(self):
        c = self.open()
        self.assertReply(c.cmd("AUTH PLAIN"), 334)
        self.assertReply(c.cmd("*"), 501, "5.0.0")
        self.assertReply(c.cmd("AUTH LOGIN"), 334)
        self.assertReply(c.cmd("*"), 501, "5.0.0")
        # not authenticated: delivery goes to dev, and AUTH can still be done
        self.assertReply(c.cmd("AUTH PLAIN " + auth_plain("dev", "dev")), 235, "2.7.0")

    def test_bad_base64(self):
        c = self.open()
        self.assertReply(c.cmd("AUTH PLAIN !!!not-base64!!!"), 501, "5.5.2")
        self.assertReply(c.cmd("AUTH PLAIN"), 334)
        self.assertReply(c.cmd("%%%%"), 501, "5.5.2")
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")

    def test_malformed_plain(self):
        c = self.open()
        # valid base64 but no NUL separators
        self.assertReply(c.cmd("AUTH PLAIN " + b64("devdev")), 501, "5.5.2")

    def test_unknown_mechanism(self):
        c = self.open()
        self.assertReply(c.cmd("AUTH GSSAPI"), 504, "5.5.4")

    def test_auth_twice(self):
        c = self.open()
        self.assertReply(c.cmd("AUTH PLAIN " + auth_plain("dev", "dev")), 235, "2.7.0")
        self.assertReply(c.cmd("AUTH PLAIN " + auth_plain("dev", "dev")), 503, "5.5.1")

    def test_login_exchange(self):
        self.server.inbox_add("rawlogin", "login-pw")
        c = self.open()
        r = c.cmd("AUTH LOGIN")
        self.assertReply(r, 334)
        self.assertEqual(base64.b64decode(r.text.strip()).lower(), b"username:")
        r = c.cmd(b64("rawlogin"))
        self.assertReply(r, 334)
        self.assertEqual(base64.b64decode(r.text.strip()).lower(), b"password:")
        self.assertReply(c.cmd(b64("login-pw")), 235, "2.7.0")
        msg_id = self.deliver(c, b"Subject: login\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: login\r\n\r\nx\r\n", inbox="rawlogin")

    def test_cram_md5_exchange(self):
        self.server.inbox_add("rawcram", "cram-pw")
        c = self.open()
        r = c.cmd("AUTH CRAM-MD5")
        self.assertReply(r, 334)
        challenge = base64.b64decode(r.text.strip(), validate=True)
        self.assertRegex(challenge, rb"^<.+@.+>$")
        digest = hmac.new(b"cram-pw", challenge, hashlib.md5).hexdigest()
        self.assertReply(c.cmd(b64("rawcram " + digest)), 235, "2.7.0")
        msg_id = self.deliver(c, b"Subject: cram\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: cram\r\n\r\nx\r\n", inbox="rawcram")

    def test_cram_md5_challenge_not_reused(self):
        c1 = self.open()
        c2 = self.open()
        r1 = c1.cmd("AUTH CRAM-MD5")
        r2 = c2.cmd("AUTH CRAM-MD5")
        self.assertNotEqual(r1.text, r2.text)

    def test_failure_delay(self):
        c = self.open()
        delays = []
        for _ in range(2):
            t0 = time.monotonic()
            self.assertReply(c.cmd("AUTH PLAIN " + auth_plain("dev", "wrong")), 535, "5.7.8")
            delays.append(time.monotonic() - t0)
        self.assertGreater(delays[0], 0.05, "no delay before 535: %r" % delays)
        self.assertGreaterEqual(delays[1], delays[0] * 0.9, "delay does not grow: %r" % delays)
        # the session is still usable
        self.assertReply(c.cmd("NOOP"), 250, "2.0.0")


class TestStarttls(RawCase):

    def test_session_reset(self):
        c = self.open()
        self.assertReply(c.cmd("STARTTLS"), 220, "2.0.0")
        c.starttls(harness.insecure_context())
        self.assertReply(c.cmd("MAIL FROM:<a@example.test>"), 503, "5.5.1")
        ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(ehlo, 250)
        kw = ehlo.keywords()
        self.assertNotIn("STARTTLS", kw)
        self.assertIn("AUTH", kw)
        msg_id = self.deliver(c, b"Subject: tls raw\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: tls raw\r\n\r\nx\r\n", inbox="dev")

    def test_plaintext_injection_after_starttls_ignored(self):
        # CVE-2011-0411 style: commands pipelined after STARTTLS in the
        # plaintext phase must not be executed inside the TLS session
        c = self.open()
        c.send(b"STARTTLS\r\nNOOP\r\n")
        self.assertReply(c.reply(), 220, "2.0.0")
        if c.buf:
            self.fail("bytes after the 220 to STARTTLS: %r" % c.buf)
        try:
            c.starttls(harness.insecure_context())
        except (OSError, harness.ssl.SSLError):
            return   # the injected bytes broke the handshake: nothing was executed
        r = c.cmd("EHLO client.example.test")
        self.assertGreater(len(r.lines), 1,
                           "first reply inside TLS is not the EHLO reply "
                           "(the injected NOOP was executed?): %r" % r)

    def test_implicit_tls_ehlo(self):
        c = self.open(ehlo=False, tls=True)
        ehlo = c.cmd("EHLO client.example.test")
        self.assertReply(ehlo, 250)
        self.assertNotIn("STARTTLS", ehlo.keywords())
        self.assertIn("AUTH", ehlo.keywords())
        msg_id = self.deliver(c, b"Subject: smtps raw\r\n\r\nx\r\n.\r\n")
        self.assertStored(msg_id, b"Subject: smtps raw\r\n\r\nx\r\n", inbox="dev")


if __name__ == "__main__":
    harness.main()

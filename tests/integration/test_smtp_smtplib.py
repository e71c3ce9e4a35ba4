"""SMTP integration tests with Python's smtplib: delivery with and without
AUTH, STARTTLS, implicit TLS, SMTPUTF8, 8BITMIME, SIZE, require-auth,
auth-accept-any and plaintext-auth policy. Every test checks the stored
bytes with `mailsnare message get`."""

import smtplib
import ssl

import harness
from harness import normalize, queued_id

CLIENT_NAME = "client.example.test"   # explicit, so smtplib does no DNS lookup
TIMEOUT = 15


def message(subject, body_lines, extra_headers=()):
    head = [b"From: Sender <sender@example.test>",
            b"To: Rcpt <rcpt@example.test>",
            b"Subject: " + subject.encode("utf-8"),
            b"Message-ID: <" + subject.replace(" ", ".").encode("utf-8") + b"@example.test>"]
    head += list(extra_headers)
    return b"\r\n".join(head) + b"\r\n\r\n" + b"\r\n".join(body_lines) + b"\r\n"


class SmtplibCase(harness.TestCase):

    def connect(self, tls=False):
        if tls:
            smtp = smtplib.SMTP_SSL(*self.server.addr("smtps"), local_hostname=CLIENT_NAME,
                                    timeout=TIMEOUT, context=harness.insecure_context())
        else:
            smtp = smtplib.SMTP(*self.server.addr("smtp"), local_hostname=CLIENT_NAME,
                                timeout=TIMEOUT)
        self.addCleanup(self._close, smtp)
        code, _ = smtp.ehlo()
        self.assertEqual(code, 250)
        return smtp

    @staticmethod
    def _close(smtp):
        try:
            smtp.quit()
        except (smtplib.SMTPException, OSError):
            smtp.close()

    def auth(self, smtp, mech, user, password, initial_response_ok=True):
        smtp.user, smtp.password = user, password
        handler = {"PLAIN": smtp.auth_plain, "LOGIN": smtp.auth_login,
                   "CRAM-MD5": smtp.auth_cram_md5}[mech]
        return smtp.auth(mech, handler, initial_response_ok=initial_response_ok)

    def assertAuthOk(self, smtp, mech, user, password, **kw):
        code, resp = self.auth(smtp, mech, user, password, **kw)
        self.assertEqual(code, 235, resp)
        self.assertTrue(resp.startswith(b"2.7.0"), resp)

    def assertAuthFails(self, smtp, mech, user, password, code, enhanced):
        with self.assertRaises(smtplib.SMTPAuthenticationError) as cm:
            self.auth(smtp, mech, user, password)
        self.assertEqual(cm.exception.smtp_code, code, cm.exception.smtp_error)
        self.assertTrue(cm.exception.smtp_error.startswith(enhanced.encode()),
                        cm.exception.smtp_error)

    def send(self, smtp, data, sender="sender@example.test",
             rcpts=("rcpt@example.test",), mail_options=(), rcpt_options=()):
        code, resp = smtp.mail(sender, list(mail_options))
        self.assertEqual((code, resp[:5]), (250, b"2.1.0"), resp)
        for rcpt in rcpts:
            code, resp = smtp.rcpt(rcpt, list(rcpt_options))
            self.assertEqual((code, resp[:5]), (250, b"2.1.5"), resp)
        code, resp = smtp.data(data)
        self.assertEqual((code, resp[:5]), (250, b"2.0.0"), resp)
        return queued_id(resp)


class TestDefaults(SmtplibCase):
    """Server with the built-in defaults (inbox dev/dev, plaintext AUTH ok)."""

    def test_ehlo_extensions(self):
        smtp = self.connect()
        f = smtp.esmtp_features
        for kw in ("pipelining", "size", "8bitmime", "enhancedstatuscodes", "smtputf8",
                   "chunking", "starttls", "auth", "help"):
            self.assertIn(kw, f, "EHLO does not list %s: %r" % (kw.upper(), f))
        self.assertEqual(f["size"].strip(), "33554432")
        self.assertEqual(sorted(f["auth"].upper().split()), ["CRAM-MD5", "LOGIN", "PLAIN"])

    def test_helo(self):
        smtp = smtplib.SMTP(*self.server.addr("smtp"), local_hostname=CLIENT_NAME,
                            timeout=TIMEOUT)
        self.addCleanup(self._close, smtp)
        code, _ = smtp.helo()
        self.assertEqual(code, 250)
        data = message("after helo", [b"sent after HELO"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_send_without_auth_goes_to_dev(self):
        smtp = self.connect()
        data = message("no auth", [b"Hello,", b"", b"this is a plain message.", b"-- ", b"sig"])
        before = set(self.server.message_ids("dev"))
        msg_id = self.send(smtp, data, rcpts=("one@example.test", "two@example.org"))
        self.assertNotIn(msg_id, before)
        self.assertStored(msg_id, normalize(data), inbox="dev")
        rows = [r for r in self.server.message_rows() if r["id"] == msg_id]
        self.assertEqual(len(rows), 1, "message %s listed %d times" % (msg_id, len(rows)))
        self.assertEqual(rows[0]["inbox"], "dev")
        self.assertIn("no auth", rows[0]["subject"])

    def test_recipient_does_not_choose_inbox(self):
        self.server.inbox_add("rcptname", "secret1")
        smtp = self.connect()
        data = message("rcpt is not inbox", [b"body"])
        msg_id = self.send(smtp, data, rcpts=("rcptname@example.test", "rcptname@localhost"))
        self.assertStored(msg_id, normalize(data), inbox="dev")
        self.assertNotIn(msg_id, self.server.message_ids("rcptname"))

    def test_bare_lf_is_normalised(self):
        smtp = self.connect()
        # bytes are sent as they are by smtplib (no EOL fixing for bytes;
        # it only adds CRLF at the end if missing, so end with CRLF here)
        data = b"Subject: bare lf\nX-Test: 1\n\nline one\nline two\r\nline three\nend\r\n"
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_two_messages_one_connection(self):
        smtp = self.connect()
        d1 = message("first of two", [b"one"])
        d2 = message("second of two", [b"two"])
        id1 = self.send(smtp, d1)
        id2 = self.send(smtp, d2)
        self.assertNotEqual(id1, id2)
        self.assertStored(id1, normalize(d1), inbox="dev")
        self.assertStored(id2, normalize(d2), inbox="dev")

    def _auth_and_send(self, mech, inbox, initial_response_ok=True):
        self.server.inbox_add(inbox, "pw-" + inbox)
        smtp = self.connect()
        self.assertAuthOk(smtp, mech, inbox, "pw-" + inbox,
                          initial_response_ok=initial_response_ok)
        data = message("auth %s" % mech, [b"authenticated with " + mech.encode()])
        msg_id = self.send(smtp, data, rcpts=("whoever@example.test",))
        self.assertStored(msg_id, normalize(data), inbox=inbox)
        self.assertNotIn(msg_id, self.server.message_ids("dev"))
        self.assertEqual(self.server.message_ids(inbox), [msg_id])

    def test_auth_plain(self):
        self._auth_and_send("PLAIN", "plainbox")

    def test_auth_plain_without_initial_response(self):
        self._auth_and_send("PLAIN", "plainbox2", initial_response_ok=False)

    def test_auth_login(self):
        self._auth_and_send("LOGIN", "loginbox")

    def test_auth_login_without_initial_response(self):
        self._auth_and_send("LOGIN", "loginbox2", initial_response_ok=False)

    def test_auth_cram_md5(self):
        self._auth_and_send("CRAM-MD5", "crambox")

    def test_login_default_choice(self):
        # smtplib.login picks the mechanism itself (CRAM-MD5 first)
        self.server.inbox_add("loginchoice", "choice-pw")
        smtp = self.connect()
        code, resp = smtp.login("loginchoice", "choice-pw")
        self.assertEqual(code, 235, resp)
        data = message("login choice", [b"x"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="loginchoice")

    def test_wrong_password(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                smtp = self.connect()
                self.assertAuthFails(smtp, mech, "dev", "not-the-password", 535, "5.7.8")
                # the session goes on: the right password works afterwards
                self.assertAuthOk(smtp, mech, "dev", "dev")

    def test_unknown_user(self):
        smtp = self.connect()
        self.assertAuthFails(smtp, "PLAIN", "no-such-inbox", "dev", 535, "5.7.8")

    def test_wrong_password_stores_nothing_in_other_inbox(self):
        self.server.inbox_add("victim", "victim-pw")
        smtp = self.connect()
        self.assertAuthFails(smtp, "PLAIN", "victim", "guess", 535, "5.7.8")
        data = message("after failed auth", [b"x"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")
        self.assertEqual(self.server.message_ids("victim"), [])

    def test_starttls_then_auth_then_send(self):
        self.server.inbox_add("tlsbox", "tls-pw")
        smtp = self.connect()
        self.assertIn("starttls", smtp.esmtp_features)
        code, resp = smtp.starttls(context=harness.insecure_context())
        self.assertEqual(code, 220, resp)
        self.assertTrue(resp.startswith(b"2.0.0"), resp)
        code, _ = smtp.ehlo()
        self.assertEqual(code, 250)
        f = smtp.esmtp_features
        self.assertNotIn("starttls", f, "STARTTLS still advertised after TLS: %r" % f)
        self.assertEqual(sorted(f.get("auth", "").upper().split()),
                         ["CRAM-MD5", "LOGIN", "PLAIN"])
        self.assertAuthOk(smtp, "PLAIN", "tlsbox", "tls-pw")
        data = message("over starttls", [b"sent over STARTTLS"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="tlsbox")

    def test_implicit_tls(self):
        smtp = self.connect(tls=True)
        self.assertNotIn("starttls", smtp.esmtp_features)
        data = message("implicit tls", [b"sent over smtps"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_implicit_tls_with_auth(self):
        self.server.inbox_add("smtpsbox", "smtps-pw")
        smtp = self.connect(tls=True)
        self.assertEqual(sorted(smtp.esmtp_features.get("auth", "").upper().split()),
                         ["CRAM-MD5", "LOGIN", "PLAIN"])
        self.assertAuthOk(smtp, "LOGIN", "smtpsbox", "smtps-pw")
        data = message("implicit tls auth", [b"sent over smtps with AUTH LOGIN"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="smtpsbox")

    def test_certificate_verifies(self):
        cert = self.server.cert_path()
        self.assertIsNotNone(cert, "no PEM certificate generated next to the db in %s"
                             % self.server.dir)
        ctx = ssl.create_default_context(cafile=cert)
        ctx.check_hostname = False
        smtp = smtplib.SMTP_SSL(*self.server.addr("smtps"), local_hostname=CLIENT_NAME,
                                timeout=TIMEOUT, context=ctx)
        self.addCleanup(self._close, smtp)
        code, _ = smtp.noop()
        self.assertEqual(code, 250)
        self.assertIn(smtp.sock.version(), ("TLSv1.2", "TLSv1.3"))

    def test_smtputf8(self):
        smtp = self.connect()
        self.assertIn("smtputf8", smtp.esmtp_features)
        data = ("From: Jürgen <jürgen@bücher.example>\r\n"
                "To: 用户 <用户@例子.测试>\r\n"
                "Subject: Grüße aus Köln — ünïcödé ✓\r\n"
                "MIME-Version: 1.0\r\n"
                "Content-Type: text/plain; charset=utf-8\r\n"
                "Content-Transfer-Encoding: 8bit\r\n"
                "\r\n"
                "Größenordnung: 10⁶ 🙂\r\n").encode("utf-8")
        msg_id = self.send(smtp, data, sender="jürgen@bücher.example",
                           rcpts=("用户@例子.测试",), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        self.assertStored(msg_id, normalize(data), inbox="dev")
        rows = [r for r in self.server.message_rows("dev") if r["id"] == msg_id]
        self.assertEqual(len(rows), 1)
        self.assertIn("Grüße aus Köln", rows[0]["subject"])

    def test_8bit_body(self):
        smtp = self.connect()
        self.assertIn("8bitmime", smtp.esmtp_features)
        body = bytes(b for b in range(0x80, 0x100)) + b" latin-1: caf\xe9 na\xefve"
        data = (b"Subject: 8bit body\r\nMIME-Version: 1.0\r\n"
                b"Content-Type: text/plain; charset=iso-8859-1\r\n"
                b"Content-Transfer-Encoding: 8bit\r\n\r\n" + body + b"\r\nend\r\n")
        msg_id = self.send(smtp, data, mail_options=["BODY=8BITMIME"])
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_leading_dots_round_trip(self):
        smtp = self.connect()
        data = message("dots", [b".", b"..", b"...", b".leading dot", b"..two dots",
                                b" .space dot", b"middle . dot", b".", b"end ."])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_5mb_message(self):
        lines = []
        size = 0
        i = 0
        while size < 5 * 1024 * 1024:
            # varied line lengths up to 998, some with leading dots
            n = (i * 7919) % 990
            line = (b"." if i % 13 == 0 else b"") + bytes((33 + (i + k) % 94) for k in range(n))
            lines.append(line)
            size += len(line) + 2
            i += 1
        data = message("five megabytes", lines)
        self.assertGreater(len(data), 5 * 1024 * 1024)
        smtp = self.connect()
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_inbox_list_counts(self):
        self.server.inbox_add("countbox", "count-pw")
        self.assertEqual(self.server.inbox_message_count("countbox"), 0)
        smtp = self.connect()
        self.assertAuthOk(smtp, "PLAIN", "countbox", "count-pw")
        ids = [self.send(smtp, message("count %d" % i, [b"n"])) for i in range(3)]
        self.assertEqual(sorted(self.server.message_ids("countbox")), sorted(ids))
        self.assertEqual(self.server.inbox_message_count("countbox"), 3)


class TestSizeLimit(SmtplibCase):
    server_args = ("--max-message-size", "10000")

    def test_size_advertised(self):
        smtp = self.connect()
        self.assertEqual(smtp.esmtp_features.get("size", "").strip(), "10000")

    def test_mail_size_parameter_too_big(self):
        smtp = self.connect()
        code, resp = smtp.mail("sender@example.test", ["SIZE=20000"])
        self.assertEqual((code, resp[:5]), (552, b"5.3.4"), resp)
        # the session goes on
        data = message("after SIZE refusal", [b"small"])
        msg_id = self.send(smtp, data, mail_options=["SIZE=%d" % len(data)])
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_data_too_big_then_small_message(self):
        smtp = self.connect()
        before = self.server.message_ids("dev")
        big = message("too big", [b"x" * 99] * 200)     # 20 kB
        self.assertGreater(len(big), 20000)
        code, resp = smtp.mail("sender@example.test")
        self.assertEqual(code, 250, resp)
        code, resp = smtp.rcpt("rcpt@example.test")
        self.assertEqual(code, 250, resp)
        code, resp = smtp.data(big)
        self.assertEqual((code, resp[:5]), (552, b"5.3.4"), resp)
        self.assertEqual(self.server.message_ids("dev"), before,
                         "a refused message was stored")
        code, resp = smtp.noop()
        self.assertEqual(code, 250, resp)
        small = message("small after big", [b"fits"])
        msg_id = self.send(smtp, small)
        self.assertStored(msg_id, normalize(small), inbox="dev")

    def test_message_below_limit(self):
        smtp = self.connect()
        data = message("below limit", [b"y" * 78] * 100)    # about 8 kB
        self.assertLess(len(data), 9000)
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")


class TestRequireAuth(SmtplibCase):
    server_args = ("--smtp-require-auth", "yes")

    def test_mail_without_auth_refused(self):
        smtp = self.connect()
        before = self.server.message_ids()
        code, resp = smtp.mail("sender@example.test")
        self.assertEqual((code, resp[:5]), (530, b"5.7.0"), resp)
        self.assertEqual(self.server.message_ids(), before)

    def test_mail_after_auth_accepted(self):
        smtp = self.connect()
        self.assertAuthOk(smtp, "PLAIN", "dev", "dev")
        data = message("required auth", [b"ok"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")


class TestAcceptAny(SmtplibCase):
    server_args = ("--auth-accept-any", "yes")

    def _check(self, mech, user):
        names = [r.get("name", r.get("0")) for r in self.server.inbox_rows()]
        self.assertNotIn(user, names)
        smtp = self.connect()
        self.assertAuthOk(smtp, mech, user, "any-password-at-all")
        data = message("accept any %s" % mech, [b"for " + user.encode()])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox=user)
        self.assertEqual(self.server.message_ids(user), [msg_id])
        self.assertEqual(self.server.inbox_message_count(user), 1)

    def test_plain_creates_inbox(self):
        self._check("PLAIN", "fixture-plain")

    def test_login_creates_inbox(self):
        self._check("LOGIN", "fixture-login")

    def test_cram_md5_creates_inbox(self):
        self._check("CRAM-MD5", "fixture-cram")

    def test_second_login_needs_the_first_password(self):
        # The inbox the first login made keeps that password
        # (test_auth_accept_any.py has every protocol).
        smtp = self.connect()
        self.assertAuthFails(smtp, "PLAIN", "dev", "not-dev", 535, "5.7.8")
        for pw in ("first", "first"):
            smtp = self.connect()
            self.assertAuthOk(smtp, "PLAIN", "fixture-twice", pw)
            data = message("twice " + pw, [pw.encode()])
            msg_id = self.send(smtp, data)
            self.assertStored(msg_id, normalize(data), inbox="fixture-twice")
        self.assertEqual(len(self.server.message_ids("fixture-twice")), 2)
        smtp = self.connect()
        self.assertAuthFails(smtp, "PLAIN", "fixture-twice", "second", 535, "5.7.8")


class TestNoPlaintextAuth(SmtplibCase):
    server_args = ("--allow-plaintext-auth", "no")

    def test_only_cram_md5_before_tls(self):
        smtp = self.connect()
        self.assertEqual(smtp.esmtp_features.get("auth", "").upper().split(), ["CRAM-MD5"])

    def test_plain_and_login_refused_before_tls(self):
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech):
                smtp = self.connect()
                smtp.esmtp_features["auth"] = "PLAIN LOGIN CRAM-MD5"
                self.assertAuthFails(smtp, mech, "dev", "dev", 538, "5.7.11")

    def test_cram_md5_before_tls(self):
        smtp = self.connect()
        self.assertAuthOk(smtp, "CRAM-MD5", "dev", "dev")
        data = message("cram without tls", [b"c"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_plain_after_starttls(self):
        smtp = self.connect()
        code, resp = smtp.starttls(context=harness.insecure_context())
        self.assertEqual(code, 220, resp)
        smtp.ehlo()
        self.assertEqual(sorted(smtp.esmtp_features.get("auth", "").upper().split()),
                         ["CRAM-MD5", "LOGIN", "PLAIN"])
        self.assertAuthOk(smtp, "PLAIN", "dev", "dev")
        data = message("plain after starttls", [b"p"])
        msg_id = self.send(smtp, data)
        self.assertStored(msg_id, normalize(data), inbox="dev")

    def test_plain_on_smtps(self):
        smtp = self.connect(tls=True)
        self.assertAuthOk(smtp, "PLAIN", "dev", "dev")


if __name__ == "__main__":
    harness.main()

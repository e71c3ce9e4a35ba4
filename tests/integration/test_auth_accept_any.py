#!/usr/bin/env python3
"""auth-accept-any (issue 11): a name that is not an inbox yet is created
with whatever password the login gives; an inbox that exists keeps its
password on every protocol and mechanism: SMTP AUTH PLAIN/LOGIN/CRAM-MD5,
POP3 USER/PASS and APOP, IMAP LOGIN and AUTHENTICATE PLAIN. The
mechanisms that never reveal the password (CRAM-MD5, APOP) verify it
against an existing inbox, and an inbox they create gets its own name as
password. A name that cannot be an inbox (spaces at either end, invalid
UTF-8, control characters) is a failed login, and no inbox is made.

Raw sockets, exact replies; Python standard library only."""

import base64
import hashlib
import hmac
import re

import harness
from harness import RawSMTP
from imap_helpers import RawIMAP, status_of, unique_name

SMTP_OK = "235 2.7.0 Authentication successful"
SMTP_FAIL = "535 5.7.8 Authentication credentials invalid"
POP3_FAIL = b"-ERR [AUTH] Authentication failed"
IMAP_FAIL = b"NO [AUTHENTICATIONFAILED] Invalid credentials"


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode()


class RawPOP3(harness.RawSocket):
    def line(self):
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("closed (pending %r)" % self.buf)
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def cmd(self, text):
        self.send(text.encode("utf-8") + b"\r\n")
        return self.line()


class AcceptAnyTest(harness.TestCase):
    server_args = ("--auth-accept-any", "yes")

    def setUp(self):
        super().setUp()
        # An inbox made beforehand, as a test fixture or the config does.
        self.known = unique_name("known")
        self.server.inbox_add(self.known, "secret")

    def passwords(self):
        return {r["name"]: r["password"] for r in self.server.inbox_rows()}

    # ---- SMTP

    def smtp(self):
        s = RawSMTP(self.server.addr("smtp"))
        self.addCleanup(s.close)
        s.greeting()
        s.cmd("EHLO accept-any.example")
        return s

    def smtp_auth(self, mech, user, password):
        s = self.smtp()
        if mech == "PLAIN":
            return s.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (user, password))).lines[-1]
        if mech == "LOGIN":
            s.cmd("AUTH LOGIN")
            s.cmd(b64(user))
            return s.cmd(b64(password)).lines[-1]
        challenge = s.cmd("AUTH CRAM-MD5")
        self.assertEqual(challenge.code, 334, challenge)
        nonce = base64.b64decode(challenge.lines[-1][4:])
        digest = hmac.new(password.encode(), nonce, hashlib.md5).hexdigest()
        return s.cmd(b64("%s %s" % (user, digest))).lines[-1]

    def test_smtp_existing_inbox_keeps_its_password(self):
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                self.assertEqual(self.smtp_auth(mech, self.known, "wrong"), SMTP_FAIL)
                self.assertEqual(self.smtp_auth(mech, self.known, "secret"), SMTP_OK)
        self.assertEqual(self.passwords()[self.known], "secret")

    def test_smtp_new_name_is_created_with_the_password(self):
        for mech in ("PLAIN", "LOGIN"):
            with self.subTest(mech=mech):
                name = unique_name("smtp-" + mech.lower())
                self.assertEqual(self.smtp_auth(mech, name, "first"), SMTP_OK)
                self.assertEqual(self.passwords()[name], "first")
                self.assertEqual(self.smtp_auth(mech, name, "second"), SMTP_FAIL)
                self.assertEqual(self.smtp_auth(mech, name, "first"), SMTP_OK)

    def test_smtp_cram_md5_new_name_gets_its_name_as_password(self):
        name = unique_name("smtp-cram")
        self.assertEqual(self.smtp_auth("CRAM-MD5", name, "whatever"), SMTP_OK)
        self.assertEqual(self.passwords()[name], name)
        self.assertEqual(self.smtp_auth("CRAM-MD5", name, "whatever"), SMTP_FAIL)
        self.assertEqual(self.smtp_auth("PLAIN", name, name), SMTP_OK)

    # ---- POP3

    def pop3(self):
        p = RawPOP3(self.server.addr("pop3"))
        self.addCleanup(p.close)
        greeting = p.line()
        self.assertTrue(greeting.startswith(b"+OK"), greeting)
        return p, re.search(rb"<[^>]+>", greeting).group(0)

    @staticmethod
    def quit_if_in(p, reply):
        """Ends a session that logged in: its maildrop lock ([IN-USE])
        would refuse the next login to the same inbox."""
        if reply.startswith(b"+OK"):
            p.cmd("QUIT")
        return reply

    def pop3_user_pass(self, user, password):
        p, _ = self.pop3()
        self.assertTrue(p.cmd("USER " + user).startswith(b"+OK"))
        return self.quit_if_in(p, p.cmd("PASS " + password))

    def pop3_apop(self, user, password):
        p, stamp = self.pop3()
        digest = hashlib.md5(stamp + password.encode()).hexdigest()
        return self.quit_if_in(p, p.cmd("APOP %s %s" % (user, digest)))

    def test_pop3_existing_inbox_keeps_its_password(self):
        self.assertEqual(self.pop3_user_pass(self.known, "wrong"), POP3_FAIL)
        self.assertTrue(self.pop3_user_pass(self.known, "secret").startswith(b"+OK"))
        self.assertEqual(self.pop3_apop(self.known, "wrong"), POP3_FAIL)
        self.assertTrue(self.pop3_apop(self.known, "secret").startswith(b"+OK"))
        self.assertEqual(self.passwords()[self.known], "secret")

    def test_pop3_new_names(self):
        name = unique_name("pop3-user")
        self.assertTrue(self.pop3_user_pass(name, "pw1").startswith(b"+OK"))
        self.assertEqual(self.passwords()[name], "pw1")
        self.assertEqual(self.pop3_user_pass(name, "pw2"), POP3_FAIL)
        name = unique_name("pop3-apop")
        self.assertTrue(self.pop3_apop(name, "anything").startswith(b"+OK"))
        self.assertEqual(self.passwords()[name], name)
        self.assertEqual(self.pop3_apop(name, "anything"), POP3_FAIL)
        self.assertTrue(self.pop3_apop(name, name).startswith(b"+OK"))

    # ---- IMAP

    def imap(self):
        m = RawIMAP(self.server.addr("imap"))
        self.addCleanup(m.close)
        m.greeting()
        return m

    def imap_login(self, user, password):
        _, tagged = self.imap().command('LOGIN "%s" "%s"' % (user, password))
        return tagged

    def imap_authenticate(self, user, password):
        _, tagged = self.imap().command("AUTHENTICATE PLAIN " +
                                        b64("\0%s\0%s" % (user, password)))
        return tagged

    def test_imap_existing_inbox_keeps_its_password(self):
        for how in (self.imap_login, self.imap_authenticate):
            with self.subTest(how=how.__name__):
                self.assertEqual(how(self.known, "wrong").split(b" ", 1)[1], IMAP_FAIL)
                self.assertEqual(status_of(how(self.known, "secret")), "OK")
        self.assertEqual(self.passwords()[self.known], "secret")

    def test_imap_new_name_is_created_with_the_password(self):
        for how in (self.imap_login, self.imap_authenticate):
            with self.subTest(how=how.__name__):
                name = unique_name("imap")
                self.assertEqual(status_of(how(name, "one")), "OK")
                self.assertEqual(self.passwords()[name], "one")
                self.assertEqual(how(name, "two").split(b" ", 1)[1], IMAP_FAIL)

    def test_the_default_inbox_keeps_its_password_too(self):
        self.assertEqual(self.imap_login("dev", "not-dev").split(b" ", 1)[1], IMAP_FAIL)
        self.assertEqual(status_of(self.imap_login("dev", "dev")), "OK")

    # ---- names that cannot be inboxes

    def test_invalid_names_are_failed_logins(self):
        before = set(self.passwords())
        for name in (" lead", "trail ", "a/b", ".dot", "x" * 64):
            with self.subTest(name=name):
                self.assertEqual(self.imap_login(name, "pw").split(b" ", 1)[1], IMAP_FAIL)
                self.assertEqual(self.smtp_auth("PLAIN", name, "pw"), SMTP_FAIL)
        # Bytes that are not UTF-8, and a control character, over POP3.
        p, _ = self.pop3()
        p.send(b"USER bad\xff\xfename\r\n")
        self.assertTrue(p.line().startswith(b"+OK"))
        self.assertEqual(p.cmd("PASS pw"), POP3_FAIL)
        self.assertEqual(self.smtp_auth("PLAIN", "esc\x1bname", "pw"), SMTP_FAIL)
        self.assertEqual(set(self.passwords()), before)


if __name__ == "__main__":
    harness.main()

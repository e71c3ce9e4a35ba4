"""POP3 integration tests with curl: pop3:// and pop3s:// listing and
retrieving, with each of curl's ways to log in. A retrieved message must be
the stored message byte for byte."""

import shutil
import subprocess

import harness
from test_pop3_poplib import POP3Case, make_message

CURL_TIMEOUT = 60


class TestCurlPOP3(POP3Case):

    def setUp(self):
        super().setUp()
        if shutil.which("curl") is None:
            self.fail("curl is not installed (apt-get install curl): these tests need it")

    def curl(self, path, user, password, scheme="pop3", *args, expect_ok=True):
        proto = "pop3s" if scheme == "pop3s" else "pop3"
        host, port = self.server.addr(proto)
        cmd = ["curl", "-sS", "-v", "--max-time", "30",
               "--url", "%s://%s:%d/%s" % (scheme, host, port, path),
               "-u", "%s:%s" % (user, password)] + list(args)
        if scheme == "pop3s" or "--ssl-reqd" in args:
            cmd.append("-k")
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=CURL_TIMEOUT)
        err = cp.stderr.decode("utf-8", "replace")
        if expect_ok:
            self.assertEqual(cp.returncode, 0, "curl failed (status %d):\n%s"
                             % (cp.returncode, err))
        return cp.returncode, cp.stdout, err

    def setup_inbox(self, n=2):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("curl%d" % i)) for i in range(n)]
        return inbox, pw, ids, [self.server.message_bytes(i) for i in ids]

    def test_list_and_retrieve(self):
        inbox, pw, ids, stored = self.setup_inbox()
        _, out, _ = self.curl("", inbox, pw)
        self.assertEqual(out, b"".join(b"%d %d\r\n" % (n, len(s))
                                       for n, s in enumerate(stored, 1)))
        for n, want in enumerate(stored, 1):
            _, out, _ = self.curl(str(n), inbox, pw)
            if out != want:
                self.fail("curl RETR %d: %s" % (n, harness.describe_difference(out, want)))
        # curl only retrieves: everything is still stored, now \Seen.
        self.assertEqual(self.server.message_ids(inbox), ids)
        self.assertTrue(all(self.seen(i) for i in ids))

    def test_pop3s(self):
        inbox, pw, ids, stored = self.setup_inbox(1)
        _, out, _ = self.curl("", inbox, pw, "pop3s")
        self.assertEqual(out, b"1 %d\r\n" % len(stored[0]))
        _, out, _ = self.curl("1", inbox, pw, "pop3s")
        self.assertEqual(out, stored[0])

    def test_stls(self):
        inbox, pw, ids, stored = self.setup_inbox(1)
        _, out, err = self.curl("1", inbox, pw, "pop3", "--ssl-reqd")
        self.assertRegex(err, r"(?m)^> STLS")
        self.assertEqual(out, stored[0])

    def test_each_login_method(self):
        inbox, pw, ids, stored = self.setup_inbox(1)
        for opt, sent in (("AUTH=+APOP", "APOP"), ("AUTH=PLAIN", "AUTH PLAIN"),
                          ("AUTH=LOGIN", "AUTH LOGIN"), ("AUTH=CRAM-MD5", "AUTH CRAM-MD5"),
                          ("AUTH=*", "AUTH")):
            with self.subTest(opt=opt):
                _, out, err = self.curl("1", inbox, pw, "pop3", "--login-options", opt)
                self.assertIn("> " + sent, err)
                self.assertEqual(out, stored[0])

    def test_top_and_dele_commands(self):
        inbox, pw, ids, stored = self.setup_inbox(2)
        _, out, _ = self.curl("", inbox, pw, "pop3", "-X", "UIDL")
        lines = out.split(b"\r\n")
        self.assertEqual(len([l for l in lines if l]), 2)
        _, out, _ = self.curl("", inbox, pw, "pop3", "-X", "TOP 1 0")
        header, _ = harness.split_message(stored[0])
        self.assertEqual(out, header + b"\r\n")
        self.curl("", inbox, pw, "pop3", "-X", "DELE 1", "-I")
        self.assertEqual(self.server.message_ids(inbox), ids[1:])

    def test_wrong_password(self):
        inbox, pw, ids, stored = self.setup_inbox(1)
        rc, out, err = self.curl("1", inbox, "wrong", expect_ok=False)
        self.assertNotEqual(rc, 0)
        self.assertIn("-ERR [AUTH]", err)
        self.assertEqual(out, b"")


if __name__ == "__main__":
    harness.main()

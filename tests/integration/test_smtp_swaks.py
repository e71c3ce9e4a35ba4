"""SMTP integration tests with swaks: each AUTH mechanism, STARTTLS
(--tls), implicit TLS (--tlsc) and PIPELINING (--pipeline). Every test
checks the stored message (`message get`) and the inbox it landed in.

swaks is required (Debian package swaks); without it every test fails with
a message saying so."""

import os
import re
import shutil
import subprocess

import harness
from harness import normalize, split_message

SWAKS_TIMEOUT = 60
QUEUED = re.compile(r"^\s*<[-~]\s+250 2\.0\.0 .*queued as <?([^\s>]+)>?", re.MULTILINE)


def data_file_content(tag, body_lines):
    # no newline at the end: swaks adds "\r\n.\r\n" itself, so the stored
    # message is the content plus one CRLF
    header = [b"From: Swaks Sender <sender@example.test>",
              b"To: Swaks Rcpt <rcpt@example.test>",
              b"Subject: swaks " + tag.encode(),
              b"Message-ID: <swaks-" + tag.encode() + b"@example.test>"]
    return b"\n".join(header) + b"\n\n" + b"\n".join(body_lines)


class SwaksCase(harness.TestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("swaks") is None:
            self.fail("swaks is not installed (apt-get install swaks): these tests need it")

    def swaks(self, tag, *args, body_lines=None, proto="smtp", expect_ok=True):
        if body_lines is None:
            body_lines = [b"Hello from swaks (" + tag.encode() + b").", b"",
                          b".leading dot", b"..two leading dots", b".", b"last line"]
        content = data_file_content(tag, body_lines)
        path = os.path.join(self.server.dir, "data-%s.eml" % tag)
        with open(path, "wb") as f:
            f.write(content)
        host, port = self.server.addr(proto)
        cmd = ["swaks", "--server", host, "--port", str(port),
               "--from", "sender@example.test", "--to", "rcpt@example.test",
               "--helo", "client.example.test", "--timeout", "20",
               "--data", "@" + path] + list(args)
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=SWAKS_TIMEOUT)
        out = cp.stdout.decode("utf-8", "replace")
        if not expect_ok:
            return cp.returncode, out
        self.assertEqual(cp.returncode, 0, "swaks failed (status %d):\n%s" % (cp.returncode, out))
        ids = QUEUED.findall(out)
        self.assertEqual(len(ids), 1, "expected one 'queued as' reply in:\n%s" % out)
        return ids[0], content, out

    def assertDelivered(self, msg_id, content, inbox):
        raw = self.server.message_bytes(msg_id)
        self.assertTrue(raw.lower().startswith(b"received:"),
                        "stored message does not start with Received: %r" % raw[:200])
        stored_header, stored_body = split_message(harness.strip_received(raw))
        sent_header, sent_body = split_message(normalize(content))
        if stored_body != sent_body:
            self.fail("stored body differs: %s"
                      % harness.describe_difference(stored_body, sent_body))
        for line in sent_header.split(b"\r\n"):
            if line:
                self.assertIn(line + b"\r\n", stored_header)
        self.assertIn(msg_id, self.server.message_ids(inbox),
                      "message %s is not in inbox %r" % (msg_id, inbox))


class TestSwaks(SwaksCase):

    def test_no_auth(self):
        msg_id, content, _ = self.swaks("noauth")
        self.assertDelivered(msg_id, content, "dev")

    def test_auth_plain(self):
        msg_id, content, out = self.swaks("plain", "--auth", "PLAIN",
                                          "--auth-user", "dev", "--auth-password", "dev")
        self.assertRegex(out, r"<[-~]\s+235 2\.7\.0")
        self.assertDelivered(msg_id, content, "dev")

    def test_auth_login(self):
        msg_id, content, out = self.swaks("login", "--auth", "LOGIN",
                                          "--auth-user", "dev", "--auth-password", "dev")
        self.assertRegex(out, r"<[-~]\s+235 2\.7\.0")
        self.assertDelivered(msg_id, content, "dev")

    def test_auth_cram_md5(self):
        msg_id, content, out = self.swaks("cram", "--auth", "CRAM-MD5",
                                          "--auth-user", "dev", "--auth-password", "dev")
        self.assertRegex(out, r"<[-~]\s+235 2\.7\.0")
        self.assertDelivered(msg_id, content, "dev")

    def test_auth_other_inbox(self):
        self.server.inbox_add("swaksbox", "swaks-pw")
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                msg_id, content, _ = self.swaks("other-" + mech.lower(), "--auth", mech,
                                                "--auth-user", "swaksbox",
                                                "--auth-password", "swaks-pw")
                self.assertDelivered(msg_id, content, "swaksbox")
                self.assertNotIn(msg_id, self.server.message_ids("dev"))

    def test_auth_wrong_password(self):
        before = self.server.message_ids()
        status, out = self.swaks("wrongpw", "--auth", "PLAIN", "--auth-user", "dev",
                                 "--auth-password", "wrong", expect_ok=False)
        self.assertNotEqual(status, 0, out)
        self.assertRegex(out, r"<\*\*\s+535 5\.7\.8")
        self.assertEqual(self.server.message_ids(), before)

    def test_starttls(self):
        msg_id, content, out = self.swaks("starttls", "--tls")
        self.assertRegex(out, r"<-\s+220 2\.0\.0")
        self.assertIn("TLS started", out)
        self.assertDelivered(msg_id, content, "dev")

    def test_starttls_auth(self):
        msg_id, content, _ = self.swaks("starttls-auth", "--tls", "--auth", "PLAIN",
                                        "--auth-user", "dev", "--auth-password", "dev")
        self.assertDelivered(msg_id, content, "dev")

    def test_tls_on_connect(self):
        msg_id, content, out = self.swaks("tlsc", "--tlsc", proto="smtps")
        self.assertIn("TLS started", out)
        self.assertDelivered(msg_id, content, "dev")

    def test_tls_on_connect_auth(self):
        msg_id, content, _ = self.swaks("tlsc-auth", "--tlsc", "--auth", "LOGIN",
                                        "--auth-user", "dev", "--auth-password", "dev",
                                        proto="smtps")
        self.assertDelivered(msg_id, content, "dev")

    def test_pipeline(self):
        msg_id, content, out = self.swaks("pipeline", "--pipeline")
        self.assertNotIn("does not support PIPELINING", out)
        self.assertDelivered(msg_id, content, "dev")

    def test_pipeline_tls_auth_many_rcpts(self):
        msg_id, content, _ = self.swaks(
            "pipeline-tls", "--pipeline", "--tls", "--auth", "CRAM-MD5",
            "--auth-user", "dev", "--auth-password", "dev",
            "--to", ",".join("r%d@example.test" % i for i in range(20)))
        self.assertDelivered(msg_id, content, "dev")

    def test_large_body(self):
        lines = [(b"%06d " % i) + b"x" * 70 for i in range(20000)]
        msg_id, content, _ = self.swaks("large", "--pipeline", body_lines=lines)
        self.assertDelivered(msg_id, content, "dev")


if __name__ == "__main__":
    harness.main()

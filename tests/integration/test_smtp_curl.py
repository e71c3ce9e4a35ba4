"""SMTP integration tests with curl uploads: smtp:// plain and with AUTH,
STARTTLS (--ssl-reqd), and smtps://. The stored message must be the
uploaded file byte for byte (after the prepended Received: header)."""

import os
import re
import shutil
import subprocess

import harness
from harness import normalize

CURL_TIMEOUT = 60
QUEUED = re.compile(r"^< 250 2\.0\.0 .*queued as <?([^\s>]+)>?\s*$", re.MULTILINE)


def crlf_file(tag, body_lines):
    header = [b"From: Curl Sender <sender@example.test>",
              b"To: Curl Rcpt <rcpt@example.test>",
              b"Subject: curl " + tag.encode(),
              b"Message-ID: <curl-" + tag.encode() + b"@example.test>"]
    return b"\r\n".join(header) + b"\r\n\r\n" + b"\r\n".join(body_lines) + b"\r\n"


DEFAULT_BODY = [b"Hello from curl.", b"", b".leading dot", b"..two dots", b".",
                b"tab\there", b"last line"]


class TestCurl(harness.TestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("curl") is None:
            self.fail("curl is not installed (apt-get install curl): these tests need it")

    def curl(self, tag, *args, content=None, scheme="smtp", rcpts=("rcpt@example.test",),
             expect_ok=True):
        if content is None:
            content = crlf_file(tag, DEFAULT_BODY)
        path = os.path.join(self.server.dir, "upload-%s.eml" % tag)
        with open(path, "wb") as f:
            f.write(content)
        host, port = self.server.addr("smtps" if scheme == "smtps" else "smtp")
        cmd = ["curl", "-sS", "-v", "--max-time", "30",
               "--url", "%s://%s:%d/client.example.test" % (scheme, host, port),
               "--mail-from", "sender@example.test"]
        for r in rcpts:
            cmd += ["--mail-rcpt", r]
        cmd += ["--upload-file", path] + list(args)
        cp = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, timeout=CURL_TIMEOUT)
        err = cp.stderr.decode("utf-8", "replace")
        if not expect_ok:
            return cp.returncode, err
        self.assertEqual(cp.returncode, 0, "curl failed (status %d):\n%s" % (cp.returncode, err))
        ids = QUEUED.findall(err)
        self.assertEqual(len(ids), 1, "expected one 'queued as' reply in:\n%s" % err)
        return ids[0], content, err

    def test_plain(self):
        msg_id, content, _ = self.curl("plain")
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_many_recipients(self):
        rcpts = ["r%d@example.test" % i for i in range(50)]
        msg_id, content, _ = self.curl("rcpts", rcpts=rcpts)
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_user_dev(self):
        msg_id, content, err = self.curl("user", "--user", "dev:dev")
        self.assertRegex(err, r"(?m)^< 235 2\.7\.0")
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_each_mechanism_other_inbox(self):
        self.server.inbox_add("curlbox", "curl-pw")
        for mech in ("PLAIN", "LOGIN", "CRAM-MD5"):
            with self.subTest(mech=mech):
                msg_id, content, err = self.curl(
                    "mech-" + mech.lower(), "--user", "curlbox:curl-pw",
                    "--login-options", "AUTH=" + mech)
                self.assertRegex(err, r"(?m)^> AUTH %s" % mech)
                self.assertStored(msg_id, normalize(content), inbox="curlbox")
                self.assertNotIn(msg_id, self.server.message_ids("dev"))

    def test_wrong_password(self):
        before = self.server.message_ids()
        status, err = self.curl("wrong", "--user", "dev:wrong", "--login-options", "AUTH=PLAIN",
                                expect_ok=False)
        self.assertEqual(status, 67, "curl status %d (want 67, login denied):\n%s"
                         % (status, err))
        self.assertRegex(err, r"(?m)^< 535 5\.7\.8")
        self.assertEqual(self.server.message_ids(), before)

    def test_starttls(self):
        msg_id, content, err = self.curl("starttls", "--ssl-reqd", "-k", "--user", "dev:dev")
        self.assertRegex(err, r"(?m)^< 220 2\.0\.0")
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_starttls_no_auth(self):
        msg_id, content, _ = self.curl("starttls-noauth", "--ssl-reqd", "-k")
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_smtps(self):
        msg_id, content, _ = self.curl("smtps", "-k", scheme="smtps")
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_smtps_auth(self):
        self.server.inbox_add("curltls", "tls-pw")
        msg_id, content, _ = self.curl("smtps-auth", "-k", "--user", "curltls:tls-pw",
                                       scheme="smtps")
        self.assertStored(msg_id, normalize(content), inbox="curltls")

    def test_crlf_option_with_lf_file(self):
        content = (b"Subject: curl lf file\n\nline one\n.dot line\nline three\n")
        msg_id, _, _ = self.curl("crlf", "--crlf", content=content)
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_8bit_and_utf8(self):
        content = crlf_file("utf8", ["Grüße, 你好, café".encode("utf-8"),
                                     b"latin-1 \xe9\xe8"])
        msg_id, content, _ = self.curl("utf8", content=content)
        self.assertStored(msg_id, normalize(content), inbox="dev")

    def test_large_upload(self):
        lines = [(b"%07d " % i) + bytes(33 + (i + k) % 94 for k in range(100))
                 for i in range(30000)]
        content = crlf_file("large", lines)
        self.assertGreater(len(content), 3 * 1000 * 1000)
        msg_id, content, _ = self.curl("large", content=content)
        self.assertStored(msg_id, normalize(content), inbox="dev")


if __name__ == "__main__":
    harness.main()

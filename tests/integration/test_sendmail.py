#!/usr/bin/env python3
"""`mailsnare sendmail` (issue 14): the message on standard input reaches
the running server over SMTP, as /usr/sbin/sendmail would send it: -t
takes the recipients from To/Cc/Bcc and drops Bcc, -i/-oi keep a line
that is a single dot, -f sets the envelope sender, -F the name of a From:
added; line ends become CRLF, dot lines survive, BODY=8BITMIME and
SMTPUTF8 are used when needed; exit statuses are sysexits.h's. The same
through a symlink named sendmail, PHP's mail() and git send-email.

The stored bytes are checked through the HTTP API (raw source and the
envelope's RcptTo), and what the client said in the server's debug log."""

import os
import shutil
import socket
import subprocess
import tempfile
import threading

import harness
import http_helpers as hh

EX_USAGE, EX_DATAERR, EX_NOUSER, EX_NOHOST, EX_UNAVAILABLE = 64, 65, 67, 68, 69
EX_TEMPFAIL, EX_PROTOCOL, EX_CONFIG = 75, 76, 78


def strip_added(raw):
    """The stored message without its Received:, Date: and Message-ID:
    lines (they hold the time), as a list of lines."""
    lines = raw.split(b"\r\n")
    out, skip = [], False
    for line in lines:
        if skip and line[:1] in (b" ", b"\t"):
            continue
        skip = line.startswith((b"Received:", b"Date:", b"Message-ID:"))
        if not skip:
            out.append(line)
    return out


class FakeSMTP:
    """A one-connection server that sends `script` lines, one per read."""

    def __init__(self, greeting, replies=()):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1)
        self.sock.settimeout(harness.SOCK_TIMEOUT)
        self.greeting, self.replies = greeting, list(replies)
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def addr(self):
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def run(self):
        try:
            c, _ = self.sock.accept()
        except OSError:
            return
        with c:
            c.settimeout(harness.SOCK_TIMEOUT)
            c.sendall(self.greeting)
            for r in self.replies:
                if not c.recv(4096):
                    return
                c.sendall(r)
            try:
                c.recv(4096)
            except OSError:
                pass

    def close(self):
        self.sock.close()
        self.thread.join(harness.SOCK_TIMEOUT)


class SendmailTest(harness.TestCase):

    def smtp(self):
        return "%s:%d" % self.server.addr("smtp")

    def sendmail(self, data, *args, smtp=None, argv0=None):
        cmd = [argv0 or harness.binary()] + ([] if argv0 else ["sendmail"])
        cmd += ["--smtp", smtp or self.smtp()] + list(args)
        return subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=harness.clean_env(), timeout=harness.CLI_TIMEOUT)

    def sent(self, data, *args, **kw):
        cp = self.sendmail(data, *args, **kw)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        self.assertEqual(cp.stdout, b"")
        return self.latest()

    def latest(self):
        msg = hh.get_json(self, self.server, "/api/v1/message/latest")
        raw = hh.request(self.server, "GET", "/api/v1/message/%s/raw" % msg["ID"]).body
        return msg, raw

    def rcpts(self, msg):
        return list(msg["RcptTo"] or [])

    def test_arguments_dot_line_and_added_fields(self):
        data = b"Subject: one\nTo: a@example.test\n\nfirst\n..two dots\n.\nnot read\n"
        msg, raw = self.sent(data, "-f", "sender@example.test", "a@example.test",
                             "b@example.test")
        self.assertEqual(self.rcpts(msg), ["a@example.test", "b@example.test"])
        self.assertEqual(msg["ReturnPath"], "sender@example.test")
        self.assertEqual(strip_added(raw), [b"From: sender@example.test", b"Subject: one",
                                            b"To: a@example.test", b"", b"first",
                                            b"..two dots", b""])
        self.assertRegex(raw, rb"\r\nDate: \w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d [+-]\d{4}\r\n")
        self.assertRegex(raw, rb"\r\nMessage-ID: <[^>]+@[^>]+>\r\n")

    def test_i_and_oi_keep_dot_lines_and_line_ends_become_crlf(self):
        data = b"From: Me <me@example.test>\nSubject: dots\n\na\n.\n.x\r\nbare\rcr\nend"
        for flag in ("-i", "-oi"):
            msg, raw = self.sent(data, flag, "a@example.test")
            self.assertEqual(strip_added(raw), [b"From: Me <me@example.test>", b"Subject: dots",
                                                b"", b"a", b".", b".x", b"bare", b"cr", b"end",
                                                b""], flag)

    def test_t_takes_to_cc_bcc_and_removes_bcc(self):
        data = (b"From: App <app@example.test>\nTo: One <one@example.test>,\n two@example.test\n"
                b"Cc: \"Three, Esq.\" <three@example.test>\nBcc: hidden@example.test\n"
                b"Subject: t\n\nbody\n")
        msg, raw = self.sent(data, "-t", "-i")
        self.assertEqual(self.rcpts(msg), ["one@example.test", "two@example.test",
                                           "three@example.test", "hidden@example.test"])
        self.assertNotIn(b"hidden", raw)
        self.assertNotIn(b"\r\nBcc:", raw)
        self.assertEqual(strip_added(raw)[:5], [b"From: App <app@example.test>",
                                                b"To: One <one@example.test>,",
                                                b" two@example.test",
                                                b"Cc: \"Three, Esq.\" <three@example.test>",
                                                b"Subject: t"])
        # Without -t, Bcc: stays as written (only -t reads the header).
        msg, raw = self.sent(b"Bcc: kept@example.test\n\nx\n", "a@example.test")
        self.assertIn(b"\r\nBcc: kept@example.test\r\n", raw)
        self.assertEqual(self.rcpts(msg), ["a@example.test"])

    def test_F_names_the_added_from(self):
        cases = [("Jane Doe", b"From: Jane Doe <jane@example.test>"),
                 ("Doe, Jane", b"From: \"Doe, Jane\" <jane@example.test>"),
                 ("J\u00f6rg", b"From: =?UTF-8?B?SsO2cmc=?= <jane@example.test>")]
        for name, want in cases:
            _, raw = self.sent(b"Subject: F\n\nx\n", "-F", name, "-fjane@example.test",
                               "a@example.test")
            self.assertEqual(strip_added(raw)[0], want, name)

    def test_8bitmime_and_smtputf8(self):
        body = "Gr\u00fc\u00dfe\n".encode("utf-8")
        off = self.server.log_size()
        msg, raw = self.sent(b"Subject: 8bit\n\n" + body, "a@example.test")
        self.assertTrue(raw.endswith(b"Gr\xc3\xbc\xc3\x9fe\r\n"), raw)
        log = self.server.read_log(off)
        self.assertIn(b"<<< MAIL FROM:<", log)
        self.assertRegex(log, rb"<<< MAIL FROM:<[^>]*> BODY=8BITMIME\n")
        off = self.server.log_size()
        msg, raw = self.sent(b"Subject: utf8\n\nascii\n", "j\u00f6rg@ex\u00e4mple.test")
        self.assertEqual(self.rcpts(msg), ["j\u00f6rg@ex\u00e4mple.test"])
        self.assertRegex(self.server.read_log(off), rb"<<< MAIL FROM:<[^>]*> SMTPUTF8\n")

    def test_symlink_and_config_file(self):
        with tempfile.TemporaryDirectory() as d:
            link = os.path.join(d, "sendmail")
            os.symlink(harness.binary(), link)
            msg, _ = self.sent(b"Subject: link\n\nx\n", "link@example.test", argv0=link)
            self.assertEqual(self.rcpts(msg), ["link@example.test"])
            conf = os.path.join(d, "m.conf")
            with open(conf, "w") as f:
                f.write("smtp = %s\n" % self.smtp())
            cp = subprocess.run([link, "-C", conf, "conf@example.test"], input=b"\n",
                                env=harness.clean_env(), stderr=subprocess.PIPE,
                                timeout=harness.CLI_TIMEOUT)
            self.assertEqual(cp.returncode, 0, cp.stderr)
            self.assertEqual(self.rcpts(self.latest()[0]), ["conf@example.test"])

    def test_exit_statuses(self):
        def status(data, *args, smtp=None):
            cp = self.sendmail(data, *args, smtp=smtp)
            self.assertTrue(cp.stderr.startswith(b"mailsnare sendmail: "), cp.stderr)
            return cp.returncode

        self.assertEqual(status(b"x\n"), EX_USAGE)                       # no recipient
        self.assertEqual(status(b"Subject: x\n\n", "-t"), EX_USAGE)    # none in the header
        self.assertEqual(status(b"x\n", "-q", "a@x.test"), EX_USAGE)
        self.assertEqual(status(b"x\n", "-bs", "a@x.test"), EX_USAGE)
        self.assertEqual(status(b"x\n", "--max-clients", "many", "a@x.test"), EX_CONFIG)
        self.assertEqual(status(b"x\n", "a@x.test", smtp="host.invalid:25"), EX_NOHOST)
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed = "127.0.0.1:%d" % s.getsockname()[1]
        s.close()
        self.assertEqual(status(b"x\n", "a@x.test", smtp=closed), EX_UNAVAILABLE)
        self.assertEqual(status(b"x\n", "a@x.test", smtp="off"), EX_UNAVAILABLE)
        self.assertEqual(status(b"x" * 2048, "--max-message-size", "1K", "a@x.test"),
                         EX_DATAERR)
        self.assertEqual(status(b"x\n", "not an address"), EX_NOUSER)

    def test_server_replies_map_to_statuses(self):
        cases = [(b"421 busy\r\n", (), EX_TEMPFAIL),
                 (b"554 go away\r\n", (), EX_UNAVAILABLE),
                 (b"garbage\r\n", (), EX_PROTOCOL),
                 (b"220 hi\r\n", (b"250 ok\r\n", b"250 ok\r\n", b"550 no such user\r\n"), EX_NOUSER),
                 (b"220 hi\r\n", (b"250 ok\r\n", b"451 later\r\n"), EX_TEMPFAIL),
                 (b"220 hi\r\n", (b"250 ok\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go\r\n",
                                  b"552 too big\r\n"), EX_DATAERR)]
        for greeting, replies, want in cases:
            fake = FakeSMTP(greeting, replies)
            try:
                cp = self.sendmail(b"Subject: x\n\nx\n", "a@x.test", smtp=fake.addr())
            finally:
                fake.close()
            self.assertEqual(cp.returncode, want, (greeting, replies, cp.stderr))

    def test_php_mail(self):
        php = shutil.which("php")
        if php is None:
            self.skipTest("php-cli is not installed")
        path = "%s sendmail --smtp %s -t -i" % (harness.binary(), self.smtp())
        script = ('exit(mail("php@example.test", "From PHP", "line 1\\n.\\nline 3",'
                  ' "From: App <app@example.test>\\r\\nCc: cc@example.test") ? 0 : 3);')
        cp = subprocess.run([php, "-n", "-d", "sendmail_path=" + path, "-r", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=harness.clean_env(), timeout=harness.CLI_TIMEOUT)
        self.assertEqual(cp.returncode, 0, cp.stderr)
        msg, raw = self.latest()
        self.assertEqual(self.rcpts(msg), ["php@example.test", "cc@example.test"])
        self.assertEqual(msg["Subject"], "From PHP")
        self.assertTrue(raw.endswith(b"\r\n\r\nline 1\r\n.\r\nline 3\r\n"), raw)
        self.assertIn(b"\r\nFrom: App <app@example.test>\r\n", raw)
        # Nothing listening: mail() is told (it returns false).
        bad = "%s sendmail --smtp off -t -i" % harness.binary()
        cp = subprocess.run([php, "-n", "-d", "sendmail_path=" + bad, "-r", script],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            env=harness.clean_env(), timeout=harness.CLI_TIMEOUT)
        self.assertEqual(cp.returncode, 3, cp.stderr)

    def test_git_send_email(self):
        git = shutil.which("git")
        if git is None or subprocess.run([git, "send-email", "--help"], stdout=subprocess.DEVNULL,
                                         stderr=subprocess.DEVNULL).returncode not in (0, 1):
            self.skipTest("git send-email (git-email) is not installed")
        with tempfile.TemporaryDirectory() as d:
            env = harness.clean_env()
            env.update(HOME=d, GIT_AUTHOR_NAME="Dev", GIT_AUTHOR_EMAIL="dev@example.test",
                       GIT_COMMITTER_NAME="Dev", GIT_COMMITTER_EMAIL="dev@example.test",
                       GIT_CONFIG_NOSYSTEM="1")

            def run(*args):
                cp = subprocess.run([git, "-C", d] + list(args), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, env=env, timeout=60)
                self.assertEqual(cp.returncode, 0, (args, cp.stderr))
                return cp.stdout

            run("init", "-q")
            with open(os.path.join(d, "f.txt"), "w") as f:
                f.write("hello\n.\n")
            run("add", "f.txt")
            run("commit", "-q", "-m", "Add f.txt")
            patch = run("format-patch", "-1", "-o", d).decode().strip()
            cmd = "%s sendmail --smtp %s" % (harness.binary(), self.smtp())
            run("send-email", "--sendmail-cmd=" + cmd, "--to=list@example.test",
                "--from=Dev <dev@example.test>", "--envelope-sender=dev@example.test",
                "--confirm=never", "--suppress-cc=all",
                "--no-validate", "--quiet", patch)
        msg, raw = self.latest()
        self.assertEqual(msg["Subject"], "[PATCH] Add f.txt")
        self.assertEqual(self.rcpts(msg), ["list@example.test"])
        self.assertEqual(msg["ReturnPath"], "dev@example.test")
        self.assertIn(b"\r\n+hello\r\n+.\r\n", raw)


if __name__ == "__main__":
    harness.main()

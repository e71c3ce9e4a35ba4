"""POP3 integration tests with fetchmail: `protocol APOP` on the plain
listener and `protocol POP3` with implicit TLS, each delivering through an
MDA into files. The delivered message must be what was sent over SMTP: the
body byte for byte, and every header line of the stored message present
(fetchmail prepends its own Received: header)."""

import glob
import os
import shutil
import subprocess

import harness
from test_pop3_poplib import POP3Case, make_message

FETCHMAIL_TIMEOUT = 60


class TestFetchmail(POP3Case):

    def setUp(self):
        super().setUp()
        if shutil.which("fetchmail") is None:
            self.fail("fetchmail is not installed (apt-get install fetchmail): "
                      "these tests need it")

    def fetch(self, tag, inbox, password, poll_opts, user_opts=""):
        """Runs fetchmail once with a private rcfile and home; returns the
        delivered files' bytes, in delivery order."""
        home = os.path.join(self.server.dir, "fm-" + tag)
        out = os.path.join(home, "out")
        os.makedirs(out)
        rcfile = os.path.join(home, "fetchmailrc")
        # Each message goes to its own file: the shell's $$ differs per MDA
        # run, and a counter keeps the delivery order.
        mda = "/bin/sh -c 'n=$(ls %s | wc -l); cat > %s/$(printf %%05d $n)-$$.eml'" % (out, out)
        rc = ("set no syslog\n"
              "poll 127.0.0.1 %s\n"
              "  user \"%s\" there with password \"%s\" is \"%s\" here\n"
              "  options fetchall no keep no stripcr no mimedecode %s\n"
              "  mda \"%s\"\n" % (poll_opts, inbox, password, inbox, user_opts,
                 mda.replace('"', '\\"')))
        fd = os.open(rcfile, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(rc)
        env = harness.clean_env()
        env["FETCHMAILHOME"] = home
        env["HOME"] = home
        cmd = ["fetchmail", "-f", rcfile, "--nosyslog", "--nodetach", "-v",
               "--pidfile", os.path.join(home, "pid"), "--idfile", os.path.join(home, "ids")]
        cp = subprocess.run(cmd, cwd=home, env=env, stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            timeout=FETCHMAIL_TIMEOUT)
        log = cp.stdout.decode("utf-8", "replace")
        # 0: mail delivered.
        self.assertEqual(cp.returncode, 0, "fetchmail exited %d:\n%s" % (cp.returncode, log))
        files = sorted(glob.glob(os.path.join(out, "*.eml")))
        delivered = []
        for path in files:
            with open(path, "rb") as f:
                delivered.append(f.read())
        return delivered, log

    def check_delivered(self, got, stored):
        """fetchmail's copy: its own header fields first, then the stored
        header lines, the blank line and the body unchanged."""
        s_head, s_body = harness.split_message(stored)
        g_head, g_body = harness.split_message(got)
        if g_body != s_body:
            self.fail("delivered body differs: %s" % harness.describe_difference(g_body, s_body))
        self.assertTrue(g_head.endswith(s_head),
                        "the stored header section is not the tail of the delivered one:\n"
                        "delivered %r\nstored %r" % (g_head, s_head))
        self.assertEqual(got, g_head[:len(g_head) - len(s_head)] + stored)

    def run_protocol(self, tag, poll_opts, user_opts=""):
        inbox, pw = self.new_inbox("fm-" + tag + "-pw")
        bodies = [None, [b"second", b".", b"..", b".x"],
                  [b"line %d" % i for i in range(5000)]]
        ids = [self.send(inbox, pw, make_message(tag + str(i), b)) for i, b in enumerate(bodies)]
        stored = [self.server.message_bytes(i) for i in ids]
        delivered, log = self.fetch(tag, inbox, pw, poll_opts, user_opts)
        self.assertEqual(len(delivered), len(stored), log)
        for got, want in zip(delivered, stored):
            self.check_delivered(got, want)
        # `no keep`: fetchmail deleted them (DELE, then QUIT).
        self.assertEqual(self.server.message_ids(inbox), [], log)
        return log

    def test_apop(self):
        host, port = self.server.addr("pop3")
        log = self.run_protocol("apop", "service %d protocol APOP" % port)
        self.assertIn("APOP", log)

    def test_pop3_over_ssl(self):
        host, port = self.server.addr("pop3s")
        log = self.run_protocol("ssl", "service %d protocol POP3" % port, "ssl no sslcertck")
        self.assertRegex(log, r"(?i)ssl|tls")


if __name__ == "__main__":
    harness.main()

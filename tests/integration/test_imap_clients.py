"""IMAP integration tests with real clients: curl (imap:// and imaps://,
STARTTLS, listing, fetching by UID and section, SEARCH, APPEND, custom
commands, each SASL mechanism) and mutt run headless in a pseudo-terminal
(script(1)) reading, flagging and deleting mail over IMAP, STARTTLS and
IMAPS.

Every test makes its own inbox; every client runs with a timeout."""

import os
import re
import select
import shlex
import shutil
import signal
import subprocess
import time

import harness
from harness import CRLF
from imap_helpers import (fetch, fetch_one, imap_login, imap_logout, new_inbox,
                          simple_message, smtp_send)

CLIENT_TIMEOUT = 30


def mutt_binary():
    return shutil.which("mutt") or shutil.which("neomutt")


_ANSI = re.compile(rb"\x1b(?:\[[0-9;?]*[A-Za-z]|[()][0-9A-Za-z]|[=>])")


def screen_text(raw):
    """A terminal transcript without escape sequences and shift characters."""
    text = _ANSI.sub(b"", raw).replace(b"\x0e", b"").replace(b"\x0f", b"")
    return text.replace(b"\r", b"\n").decode("utf-8", "replace")


def mbox_count(path):
    """How many messages the mbox file at `path` holds (-1: no file)."""
    try:
        with open(path, "rb") as f:
            return len(re.findall(rb"^From ", f.read(), re.M))
    except FileNotFoundError:
        return -1


class ClientTestCase(harness.TestCase):

    def inbox(self, prefix="c"):
        return new_inbox(self.server, prefix)

    def deliver(self, user, password, msg):
        return smtp_send(self.server, user, password, msg)

    def run_client(self, args, timeout=CLIENT_TIMEOUT, env=None):
        """Runs a client in its own process group; kills the group on
        timeout. Returns (status, stdout, stderr)."""
        proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=self.server.dir,
                                env=env or harness.clean_env(), start_new_session=True)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
            self.fail("%s did not finish within %d s\nstdout: %r\nstderr: %r"
                      % (args[0], timeout, out[-3000:], err[-3000:]))
        return proc.returncode, out, err


# ---------------------------------------------------------------------------
# curl


class CurlTests(ClientTestCase):

    def setUp(self):
        super().setUp()
        if shutil.which("curl") is None:
            self.fail("curl is not installed (apt-get install curl): these tests need it")

    def url(self, path="", tls=False):
        host, port = self.server.addr("imaps" if tls else "imap")
        return "%s://%s:%d/%s" % ("imaps" if tls else "imap", host, port, path)

    def curl(self, user, password, url, *extra, expect_status=0):
        args = ["curl", "-s", "-S", "--max-time", "20", "-u", "%s:%s" % (user, password)]
        args += list(extra) + [url]
        status, out, err = self.run_client(args)
        if expect_status is not None:
            self.assertEqual(status, expect_status,
                             "curl %s: exit status %d, stderr %r, stdout %r"
                             % (" ".join(args[5:]), status, err, out[:2000]))
        return out

    def test_list(self):
        user, pw = self.inbox()
        out = self.curl(user, pw, self.url())
        entries = {}
        for line in out.decode().splitlines():
            m = re.match(r'^\* LIST \(([^)]*)\) "/" "?([^"]*)"?$', line)
            self.assertTrue(m, "unexpected LIST line %r in %r" % (line, out))
            entries[m.group(2)] = m.group(1).split()
        self.assertEqual(set(entries), {"INBOX", "Drafts", "Junk", "Sent", "Trash"})
        self.assertIn("\\Sent", entries["Sent"])
        self.assertIn("\\Trash", entries["Trash"])
        self.assertIn("\\Drafts", entries["Drafts"])
        self.assertIn("\\Junk", entries["Junk"])
        # a folder made by a client shows up too
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        self.assertEqual(m.create("Projects/Curl")[0], "OK")
        out = self.curl(user, pw, self.url("Projects/"))
        self.assertIn(b'"Projects/Curl"', out)

    def test_fetch_by_uid(self):
        user, pw = self.inbox()
        ids = [self.deliver(user, pw, simple_message("curl fetch %d" % i)) for i in range(3)]
        for uid, msg_id in enumerate(ids, 1):
            out = self.curl(user, pw, self.url("INBOX;UID=%d" % uid))
            self.assertEqual(out, self.server.message_bytes(msg_id), "UID %d" % uid)
        # by message sequence number
        out = self.curl(user, pw, self.url("INBOX;MAILINDEX=2"))
        self.assertEqual(out, self.server.message_bytes(ids[1]))

    def test_fetch_section(self):
        user, pw = self.inbox()
        msg = simple_message("curl sections", body=b"section body line\r\n")
        msg_id = self.deliver(user, pw, msg)
        stored = self.server.message_bytes(msg_id)
        header, body = harness.split_message(stored)
        out = self.curl(user, pw, self.url("INBOX;UID=1;SECTION=TEXT"))
        self.assertEqual(out, body)
        out = self.curl(user, pw, self.url("INBOX;UID=1;SECTION=HEADER"))
        self.assertEqual(out, header + CRLF)
        out = self.curl(user, pw, self.url("INBOX;UID=1;SECTION=HEADER.FIELDS%20(SUBJECT)"))
        self.assertEqual(out, b"Subject: curl sections\r\n\r\n")
        out = self.curl(user, pw, self.url("INBOX;UID=1;PARTIAL=0.10"))
        self.assertEqual(out, stored[:10])

    def test_search(self):
        user, pw = self.inbox()
        self.deliver(user, pw, simple_message("alpha one"))
        self.deliver(user, pw, simple_message("beta two"))
        self.deliver(user, pw, simple_message("alpha three"))
        out = self.curl(user, pw, self.url("INBOX?SUBJECT%20alpha"))
        self.assertEqual(out.strip(), b"* SEARCH 1 3")
        out = self.curl(user, pw, self.url("INBOX?SUBJECT%20nothing-like-it"))
        self.assertEqual(out.strip(), b"* SEARCH")

    def test_custom_commands(self):
        user, pw = self.inbox()
        self.deliver(user, pw, simple_message("custom request"))
        out = self.curl(user, pw, self.url("INBOX"), "-X", "EXAMINE INBOX")
        self.assertIn(b"* 1 EXISTS", out)
        out = self.curl(user, pw, self.url("INBOX"), "-X", r"STORE 1 +FLAGS (\Flagged)")
        self.assertRegex(out, rb"\* 1 FETCH \(FLAGS \([^)]*\\Flagged")
        out = self.curl(user, pw, self.url(""), "-X", "STATUS INBOX (MESSAGES UNSEEN)")
        self.assertRegex(out, rb'\* STATUS "?INBOX"? \((MESSAGES 1 UNSEEN 1|UNSEEN 1 MESSAGES 1)\)')
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        self.assertEqual(m.select("INBOX")[0], "OK")
        self.assertIn("\\Flagged", fetch_one(m, "1", "(FLAGS)").flags())

    def test_append_upload(self):
        user, pw = self.inbox()
        msg = simple_message("uploaded by curl", body=b"Uploaded.\r\n.dot\r\n")
        path = os.path.join(self.server.dir, "upload.eml")
        with open(path, "wb") as f:
            f.write(msg)
        self.curl(user, pw, self.url("Sent"), "-T", path)
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        typ, data = m.select("Sent")
        self.assertEqual((typ, data), ("OK", [b"1"]))
        self.assertEqual(fetch_one(m, "1", "(BODY.PEEK[])")["BODY[]"], msg)

    def test_imaps(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, simple_message("curl over imaps"))
        out = self.curl(user, pw, self.url(tls=True), "-k")
        self.assertIn(b'"INBOX"', out)
        out = self.curl(user, pw, self.url("INBOX;UID=1", tls=True), "-k")
        self.assertEqual(out, self.server.message_bytes(msg_id))
        # with the server's own certificate as the CA (no -k)
        cert = self.server.cert_path()
        self.assertIsNotNone(cert, "no certificate file next to the db")
        out = self.curl(user, pw, self.url("INBOX;UID=1", tls=True), "--cacert", cert,
                        "--resolve", "localhost:%d:127.0.0.1" % self.server.addr("imaps")[1],
                        expect_status=None)
        # the self-signed certificate names localhost; over 127.0.0.1 curl
        # may refuse the name, which is not what this test is about
        if out:
            self.assertEqual(out, self.server.message_bytes(msg_id))

    def test_starttls(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, simple_message("curl starttls"))
        out = self.curl(user, pw, self.url("INBOX;UID=1"), "--ssl-reqd", "-k")
        self.assertEqual(out, self.server.message_bytes(msg_id))

    def test_sasl_mechanisms(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, simple_message("curl sasl"))
        want = self.server.message_bytes(msg_id)
        for opts in ("AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5"):
            with self.subTest(login_options=opts):
                out = self.curl(user, pw, self.url("INBOX;UID=1"), "--login-options", opts)
                self.assertEqual(out, want)
        # SASL-IR: the initial response on the AUTHENTICATE line
        out = self.curl(user, pw, self.url("INBOX;UID=1"), "--login-options", "AUTH=PLAIN",
                        "--sasl-ir")
        self.assertEqual(out, want)

    def test_wrong_password(self):
        user, pw = self.inbox()
        self.deliver(user, pw, simple_message("curl denied"))
        for opts in ("AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5"):
            with self.subTest(login_options=opts):
                # CURLE_LOGIN_DENIED, not a time-out (the failure answer is
                # delayed by at most a few hundred milliseconds)
                self.curl(user, "wrong", self.url("INBOX;UID=1"), "--login-options", opts,
                          "--max-time", "5", expect_status=67)


# ---------------------------------------------------------------------------
# mutt


class MuttTests(ClientTestCase):

    def setUp(self):
        super().setUp()
        self.mutt = mutt_binary()
        if self.mutt is None:
            self.fail("neither mutt nor neomutt is installed (apt-get install mutt): "
                      "these tests need one")
        if shutil.which("script") is None:
            self.fail("script(1) is not installed (util-linux): the mutt tests need it")
        self.runs = 0

    def run_mutt(self, user, password, url, steps, settings=(), timeout=CLIENT_TIMEOUT):
        """Runs mutt on `url` in a pseudo-terminal (script(1)) with its own
        home and muttrc, and types like a user: for each (pattern, keys) of
        `steps` it waits until the screen shows `pattern` (a regular
        expression; or until `pattern()` is true if it is a function),
        then types `keys`. mutt must then exit by itself.
        Returns the screen text."""
        self.runs += 1
        home = os.path.join(self.server.dir, "mutt-%s-%d" % (self._testMethodName, self.runs))
        os.makedirs(home)
        rc = os.path.join(home, "muttrc")
        lines = [
            # a folder of its own, else mutt asks whether to create ~/Mail
            "set folder=%s" % re.sub(r"^(imaps?://[^/]+/).*", r"\1", url),
            'set imap_user="%s"' % user,
            'set imap_pass="%s"' % password,
            "set certificate_file=%s" % self.server.cert_path(),
            "set ssl_verify_host=no",
            "set ssl_starttls=no",
            "set ssl_force_tls=no",
            "set confirmcreate=no",
            "set confirmappend=no",
            "set quit=yes",
            "set move=no",
            "set mbox_type=mbox",
            'set header_cache=""',
            'set message_cachedir=""',
            "set timeout=5",
            "set wait_key=no",
            "set sort=mailbox-order",
            "set mark_old=no",
            "set help=no",
        ] + list(settings)
        with open(rc, "w") as f:
            f.write("\n".join(lines) + "\n")
        cmd = ("stty rows 40 cols 160 2>/dev/null; exec %s -n -F %s -f %s"
               % (shlex.quote(self.mutt), shlex.quote(rc), shlex.quote(url)))
        env = harness.clean_env()
        env.update({"HOME": home, "TERM": "vt100", "LC_ALL": "C.UTF-8"})
        for var in ("MAIL", "MUTT", "MAILCHECK", "EDITOR", "VISUAL"):
            env.pop(var, None)
        proc = subprocess.Popen(["script", "-qec", cmd, "/dev/null"], stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                cwd=self.server.dir, env=env, start_new_session=True)
        out = b""
        deadline = time.monotonic() + timeout

        def read_some(wait):
            nonlocal out
            ready, _, _ = select.select([proc.stdout], [], [], wait)
            if not ready:
                return True
            chunk = os.read(proc.stdout.fileno(), 65536)
            out += chunk
            return bool(chunk)

        def kill():
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            proc.wait(5)

        try:
            seen_upto = 0
            for pattern, keys in steps:
                while True:
                    screen = screen_text(out)
                    if callable(pattern):
                        if pattern():
                            break
                    else:
                        m = re.compile(pattern).search(screen, seen_upto)
                        if m:
                            seen_upto = m.end()
                            break
                    left = deadline - time.monotonic()
                    if left <= 0 or not read_some(min(left, 0.5)) and proc.poll() is not None:
                        kill()
                        self.fail("mutt never showed %r; screen:\n%s" % (pattern, screen))
                proc.stdin.write(keys.encode())
                proc.stdin.flush()
            while proc.poll() is None or read_some(0):
                left = deadline - time.monotonic()
                if left <= 0:
                    kill()
                    self.fail("mutt did not exit within %d s; screen:\n%s"
                              % (timeout, screen_text(out)))
                if not read_some(min(left, 0.5)):
                    break
        finally:
            if proc.poll() is None:
                kill()
            proc.stdin.close()
            proc.stdout.close()
        screen = screen_text(out)
        self.last_screen = screen
        self.assertEqual(proc.returncode, 0, "mutt exit status %s; screen:\n%s"
                         % (proc.returncode, screen))
        return screen

    def url(self, proto="imap", path="INBOX"):
        host, port = self.server.addr(proto)
        return "%s://%s:%d/%s" % (proto, host, port, path)

    def copy_all(self, user, pw, url, count, settings=()):
        """mutt tags every message of the mailbox and copies them to a local
        mbox file (T ~A, ;C); returns (screen, mbox bytes)."""
        out = os.path.join(self.server.dir, "copy-%s-%d.mbox"
                           % (self._testMethodName, self.runs + 1))
        screen = self.run_mutt(user, pw, url, [
            (r"\[Msgs:%d\b" % count, "T"),
            (r"Tag messages matching:", "~A\r"),
            (r"Tag:%d\b" % count, ";C"),
            (r"Copy tagged to mailbox", out + "\r"),
            (lambda: mbox_count(out) == count, "q"),
        ], settings)
        try:
            with open(out, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            self.fail("mutt wrote no copy of the mailbox; screen:\n%s" % screen)
        return screen, data

    def assertMboxHas(self, mbox, msg_ids, screen):
        stored = [harness.split_message(self.server.message_bytes(i)) for i in msg_ids]
        # mbox: LF line ends, "From " separators, mutt adds Status/Lines/...
        text = mbox.replace(b"\r\n", b"\n")
        for header, body in stored:
            subject = re.search(rb"^Subject: (.*)$", header, re.M).group(1).strip()
            self.assertIn(b"Subject: " + subject + b"\n", text,
                          "subject %r not in mutt's copy; screen:\n%s" % (subject, screen))
            self.assertIn(body.replace(b"\r\n", b"\n"), text)
            # the index on the screen listed the subject
            self.assertIn(subject.decode(), screen,
                          "subject %r not on mutt's screen:\n%s" % (subject, screen))
        self.assertEqual(len(re.findall(rb"^From ", text, re.M)), len(msg_ids), text)

    def deliver_some(self, user, pw, n=2, tag="mutt"):
        return [self.deliver(user, pw, simple_message("%s message %d" % (tag, i),
                                                      body=b"Body of %s %d\r\n" % (tag.encode(), i)))
                for i in range(n)]

    def test_reads_inbox_login(self):
        user, pw = self.inbox("m")
        ids = self.deliver_some(user, pw, tag="login")
        screen, mbox = self.copy_all(user, pw, self.url(), 2,
                                     ['set imap_authenticators="login"'])
        self.assertIn("Selecting INBOX", screen)
        self.assertMboxHas(mbox, ids, screen)

    def test_reads_inbox_default_authenticators(self):
        # mutt's own choice of mechanism (Cyrus SASL: CRAM-MD5 here)
        user, pw = self.inbox("m")
        ids = self.deliver_some(user, pw, tag="default")
        screen, mbox = self.copy_all(user, pw, self.url(), 2)
        self.assertNotIn("authentication failed", screen.lower())
        self.assertMboxHas(mbox, ids, screen)

    def test_reads_inbox_plain(self):
        user, pw = self.inbox("m")
        ids = self.deliver_some(user, pw, tag="plain")
        screen, mbox = self.copy_all(user, pw, self.url(), 2,
                                     ['set imap_authenticators="plain"'])
        self.assertMboxHas(mbox, ids, screen)

    def test_reads_inbox_starttls(self):
        user, pw = self.inbox("m")
        ids = self.deliver_some(user, pw, tag="starttls")
        screen, mbox = self.copy_all(user, pw, self.url(), 2,
                                     ["set ssl_starttls=yes", "set ssl_force_tls=yes",
                                      'set imap_authenticators="login"'])
        self.assertRegex(screen, r"(SSL|TLS)")
        self.assertMboxHas(mbox, ids, screen)

    def test_reads_imaps(self):
        user, pw = self.inbox("m")
        ids = self.deliver_some(user, pw, tag="imaps")
        screen, mbox = self.copy_all(user, pw, self.url("imaps"), 2,
                                     ["set ssl_force_tls=yes",
                                      'set imap_authenticators="login"'])
        self.assertRegex(screen, r"(SSL|TLS)")
        self.assertMboxHas(mbox, ids, screen)

    def test_reads_other_folder(self):
        user, pw = self.inbox("m")
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        self.assertEqual(m.create("Archive/2025")[0], "OK")
        msg = simple_message("archived for mutt", body=b"in the archive\r\n")
        self.assertEqual(m.append("Archive/2025", None, None, msg)[0], "OK")
        screen, data = self.copy_all(user, pw, self.url(path="Archive/2025"), 1,
                                     ['set imap_authenticators="login"'])
        data = data.replace(b"\r\n", b"\n")
        self.assertIn(b"Subject: archived for mutt\n", data)
        self.assertIn(b"in the archive\n", data)
        self.assertIn("archived for mutt", screen)

    def test_flag_and_delete(self):
        user, pw = self.inbox("m")
        self.deliver_some(user, pw, n=3, tag="flagdel")
        # first message (oldest): flag; second: delete; then sync and quit
        self.run_mutt(user, pw, self.url(), [
            (r"\[Msgs:3\b", "F"),          # flag the first
            (r"Flag:1\b", "j"),             # to the second
            (r"\S", "d"),                   # delete it
            (r"Del:1\b", "$"),              # sync: expunge
            (r"1 deleted", "q"),
        ], ['set imap_authenticators="login"', "set delete=yes", "set resolve=no"])
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        typ, data = m.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"2"]), self.last_screen)
        got = fetch(m, "1:*", "(FLAGS ENVELOPE)")
        subjects = [f["ENVELOPE"][1] for f in got]
        self.assertEqual(subjects, [b"flagdel message 0", b"flagdel message 2"])
        self.assertIn("\\Flagged", got[0].flags())
        self.assertNotIn("\\Flagged", got[1].flags())

    def test_reading_sets_seen(self):
        user, pw = self.inbox("m")
        self.deliver_some(user, pw, n=1, tag="seen")
        screen = self.run_mutt(user, pw, self.url(), [
            (r"\[Msgs:1\b", "\r"),           # display the message
            (r"Body of seen 0", "q"),        # back to the index
            (r"\[Msgs:1\b", "q"),
        ], ['set imap_authenticators="login"'])
        self.assertIn("Subject: seen message 0", screen)
        m = imap_login(self.server, user, pw)
        self.addCleanup(imap_logout, m)
        self.assertEqual(m.select("INBOX")[0], "OK")
        self.assertIn("\\Seen", fetch_one(m, "1", "(FLAGS)").flags(), self.last_screen)


if __name__ == "__main__":
    harness.main()

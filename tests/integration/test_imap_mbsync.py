"""IMAP with mbsync (isync): an inbox synced with a local Maildir both
ways. Messages delivered over SMTP are pulled and compared byte for byte
(mbsync stores LF line ends); a message written into the Maildir is pushed
with APPEND and compared on the server; flags and deletions travel both
ways. Over plain IMAP (LOGIN) and implicit TLS (AUTH=PLAIN, the server's
certificate trusted). Skipped, saying why, without mbsync."""

import imaplib
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import unittest

import harness
from harness import SOCK_TIMEOUT

MBSYNC_TIMEOUT = 60


def mbsync_version():
    exe = shutil.which("mbsync")
    if exe is None:
        return None
    out = subprocess.run([exe, "--version"], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, timeout=10).stdout.decode()
    m = re.search(r"(\d+)\.(\d+)", out)
    return (int(m.group(1)), int(m.group(2))) if m else (0, 0)


def deliver(server, user, password, subject, body):
    msg = (b"From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n"
           b"Subject: " + subject.encode() + b"\r\n"
           b"Message-ID: <" + subject.replace(" ", ".").encode() + b"@example.test>\r\n"
           b"Date: Tue, 04 Mar 2025 10:20:30 +0000\r\n\r\n" + body)
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
        s.login(user, password)
        s.mail("sender@example.test")
        s.rcpt("rcpt@example.test")
        code, resp = s.data(msg)
        if code != 250:
            raise AssertionError("DATA: %d %r" % (code, resp))
    return harness.queued_id(resp)


def maildir_files(path):
    """{file name without flags: (flags, bytes)} of new/ and cur/."""
    files = {}
    for sub in ("new", "cur"):
        d = os.path.join(path, sub)
        for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
            base, _, flags = name.partition(":2,")
            with open(os.path.join(d, name), "rb") as f:
                files[base] = (flags, f.read())
    return files


def lf(data):
    return data.replace(b"\r\n", b"\n")


def without_tuid(data):
    """mbsync adds an X-TUID header field to every message it propagates
    (to find it again after an interrupted run); that field is its own."""
    m = re.search(rb"^X-TUID: [^\r\n]*\r?\n", data, re.M)
    end = re.search(rb"\r?\n\r?\n", data)
    if m and (end is None or m.start() <= end.start() + 2):
        return data[:m.start()] + data[m.end():]
    return data


@unittest.skipIf(mbsync_version() is None,
                 "mbsync test skipped: mbsync not found (install the Debian package isync)")
class MbsyncTest(harness.TestCase):

    def setUp(self):
        super().setUp()
        self.tmp = tempfile.TemporaryDirectory(prefix="mailsnare-mbsync-")
        self.addCleanup(self.tmp.cleanup)

    def write_config(self, user, password, tls):
        version = mbsync_version()
        host, port = self.server.addr("imaps" if tls else "imap")
        # isync 1.5 renamed SSLType to TLSType, 1.4 Master/Slave to Far/Near.
        tls_key = "TLSType" if version >= (1, 5) else "SSLType"
        far, near = ("Far", "Near") if version >= (1, 4) else ("Master", "Slave")
        maildir = os.path.join(self.tmp.name, "mail")
        os.makedirs(maildir, exist_ok=True)
        lines = [
            "IMAPAccount acct",
            "Host %s" % host,
            "Port %d" % port,
            "User %s" % user,
            'Pass "%s"' % password,
            "Timeout 20",
        ]
        if tls:
            lines += ["%s IMAPS" % tls_key, "CertificateFile %s" % self.server.cert_path(),
                      "AuthMechs PLAIN"]
        else:
            lines += ["%s None" % tls_key, "AuthMechs LOGIN"]
        lines += [
            "",
            "IMAPStore remote",
            "Account acct",
            "",
            "MaildirStore local",
            "Path %s/" % maildir,
            "Inbox %s/INBOX" % maildir,
            "",
            "Channel sync",
            "%s :remote:" % far,
            "%s :local:" % near,
            "Patterns INBOX",
            "Create Both",
            "Expunge Both",
            "SyncState *",
            "Sync All",
            "",
        ]
        conf = os.path.join(self.tmp.name, "mbsyncrc")
        with open(conf, "w") as f:
            f.write("\n".join(lines))
        return conf, os.path.join(maildir, "INBOX")

    def mbsync(self, conf):
        env = dict(harness.clean_env(), HOME=self.tmp.name)
        cp = subprocess.run(["mbsync", "-c", conf, "-V", "sync"], env=env, cwd=self.tmp.name,
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, timeout=MBSYNC_TIMEOUT)
        out = cp.stdout.decode("utf-8", "replace")
        if cp.returncode != 0:
            self.fail("mbsync exit status %d:\n%s" % (cp.returncode, out[-4000:]))
        return out

    def imap(self, user, password):
        host, port = self.server.addr("imap")
        m = imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)
        m.login(user, password)
        self.addCleanup(m.logout)
        m.select("INBOX")
        return m

    def run_sync(self, tls):
        tag = "tls" if tls else "plain"
        user = "mbsync-%s-%d" % (tag, os.getpid())
        password = "pw-" + user
        self.server.inbox_add(user, password)
        ids = [deliver(self.server, user, password, "pulled one", b"First body.\r\n" * 10),
               deliver(self.server, user, password, "pulled two",
                       b"Second body line, long enough to matter.\r\n" * 5000)]
        conf, inbox = self.write_config(user, password, tls)

        # 1. pull: the Maildir gets exactly the stored bytes (LF line ends)
        self.mbsync(conf)
        files = maildir_files(inbox)
        self.assertEqual(len(files), 2, files.keys())
        stored = sorted(lf(self.server.message_bytes(i)) for i in ids)
        got = sorted(without_tuid(data) for _, data in files.values())
        for g, want in zip(got, stored):
            if g != want:
                self.fail("pulled bytes differ: %s" % harness.describe_difference(g, want))

        # 2. push: a message written into the Maildir is appended on the server
        pushed = (b"From: Local <local@example.test>\nTo: rcpt@example.test\n"
                  b"Subject: pushed from the maildir\n"
                  b"Message-ID: <pushed.%s@example.test>\n"
                  b"Date: Wed, 05 Mar 2025 11:00:00 +0000\n\n" % tag.encode() +
                  b"Written locally.\n" * 100)
        with open(os.path.join(inbox, "new", "1741172400.pushed.localhost"), "wb") as f:
            f.write(pushed)
        # 3. and a flag set locally: the first pulled message becomes \Seen
        first = next(base for base, (_, data) in files.items() if b"pulled one" in data)
        for sub in ("new", "cur"):
            for name in os.listdir(os.path.join(inbox, sub)):
                if name.startswith(first):
                    os.rename(os.path.join(inbox, sub, name),
                              os.path.join(inbox, "cur", first + ":2,S"))
        self.mbsync(conf)

        m = self.imap(user, password)
        typ, data = m.uid("SEARCH", None, "SUBJECT", "pushed")
        self.assertEqual(typ, "OK")
        uids = data[0].split()
        self.assertEqual(len(uids), 1, data)
        typ, data = m.uid("FETCH", uids[0], "(BODY.PEEK[])")
        self.assertEqual(typ, "OK")
        got = without_tuid(data[0][1])
        if got != pushed.replace(b"\n", b"\r\n"):
            self.fail("pushed bytes differ: %s" % harness.describe_difference(
                got, pushed.replace(b"\n", b"\r\n")))
        typ, data = m.uid("SEARCH", None, "SEEN")
        self.assertEqual(typ, "OK")
        seen = data[0].split()
        self.assertEqual(len(seen), 1, data)
        typ, data = m.uid("FETCH", seen[0], "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertIn(b"pulled one", data[0][1])

        # 4. server side: flag one, delete another; the Maildir follows
        typ, data = m.uid("SEARCH", None, "SUBJECT", "\"pulled two\"")
        two = data[0].split()[0]
        m.uid("STORE", two, "+FLAGS", "(\\Flagged)")
        m.uid("STORE", seen[0], "+FLAGS", "(\\Deleted)")
        m.expunge()
        self.mbsync(conf)
        files = maildir_files(inbox)
        subjects = {re.search(rb"Subject: (.*)", data).group(1): flags
                    for flags, data in files.values()}
        self.assertEqual(sorted(subjects), [b"pulled two", b"pushed from the maildir"])
        self.assertIn("F", subjects[b"pulled two"])
        self.assertEqual(len(self.server.message_ids(user)), 2)

        # 5. nothing left to do: a further run changes nothing
        self.mbsync(conf)
        self.assertEqual(maildir_files(inbox), files)

    def test_plain_login(self):
        self.run_sync(tls=False)

    def test_imaps_plain(self):
        self.run_sync(tls=True)


if __name__ == "__main__":
    harness.main()

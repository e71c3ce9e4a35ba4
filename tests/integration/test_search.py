"""Search (Mailpit's syntax, include/mailsnare/msg_search.h) over mail
delivered with SMTP: `mailsnare message list --query` must list exactly
the messages a fixture expects, by the decoded headers, the envelope, the
decoded text of plain and HTML parts in any charset and transfer
encoding, flags and sizes, case-insensitively for non-ASCII text too.
Also: a database made before the index existed is indexed in the
background once the server starts."""

import json
import os
import smtplib
import sqlite3
import tempfile
import time
import urllib.parse
import urllib.request

import harness
from harness import queued_id

CLIENT = "client.example.test"
TIMEOUT = 15

PLAIN = (b"From: Alice Sender <alice@example.test>\r\n"
         b"To: Bob <bob@example.test>\r\n"
         b"Cc: Carol <carol@cc.test>\r\n"
         b"Subject: Your invoice 42\r\n"
         b"Message-ID: <inv-42@example.test>\r\n"
         b"\r\n"
         b"Hello Bob, the quarterly report is attached. Caf\xc3\xa9 tomorrow?\r\n")

# Subject and From RFC 2047-encoded, body KOI8-R in quoted-printable:
# "ПРИВЕТ мир" / "Привет мир ZEBRA".
CYRILLIC = (b"From: =?UTF-8?B?0JjQstCw0L0=?= <ivan@example.test>\r\n"
            b"To: Bob <bob@example.test>\r\n"
            b"Subject: =?UTF-8?B?0J/QoNCY0JLQldCiINC80LjRgA==?=\r\n"
            b"MIME-Version: 1.0\r\n"
            b"Content-Type: text/plain; charset=koi8-r\r\n"
            b"Content-Transfer-Encoding: quoted-printable\r\n"
            b"\r\n"
            b"=F0=D2=C9=D7=C5=D4 =CD=C9=D2 ZEBRA\r\n")

# HTML in base64 ("<html><style>.hiddenword {}</style><b>Build</b> passed
# &amp; green</html>"), an inline image, an attachment.
MIXED = (b"From: Build Bot <bot@ci.test>\r\n"
         b"To: team@example.test\r\n"
         b"Subject: Nightly build\r\n"
         b"MIME-Version: 1.0\r\n"
         b"Content-Type: multipart/mixed; boundary=\"b1\"\r\n"
         b"\r\n"
         b"--b1\r\n"
         b"Content-Type: multipart/related; boundary=\"b2\"\r\n"
         b"\r\n"
         b"--b2\r\n"
         b"Content-Type: text/html; charset=utf-8\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"\r\n"
         b"PGh0bWw+PHN0eWxlPi5oaWRkZW53b3JkIHt9PC9zdHlsZT48Yj5CdWlsZDwvYj4gcGFzc2VkICZhbXA7IGdyZWVuPC9odG1sPg==\r\n"
         b"--b2\r\n"
         b"Content-Type: image/png\r\n"
         b"Content-ID: <logo@ci>\r\n"
         b"Content-Transfer-Encoding: base64\r\n"
         b"\r\n"
         b"iVBORw0KGgo=\r\n"
         b"--b2--\r\n"
         b"--b1\r\n"
         b"Content-Type: text/plain; name=\"log.txt\"\r\n"
         b"Content-Disposition: attachment; filename=\"log.txt\"\r\n"
         b"\r\n"
         b"secretattachmentword\r\n"
         b"--b1--\r\n")


def send(server, data, rcpts, login=None):
    smtp = smtplib.SMTP(*server.addr("smtp"), local_hostname=CLIENT, timeout=TIMEOUT)
    try:
        if login is not None:
            smtp.login(*login)
        code, resp = smtp.ehlo()
        smtp.mail("app@sender.test")
        for r in rcpts:
            smtp.rcpt(r)
        code, resp = smtp.data(data)
        if code != 250:
            raise AssertionError("DATA: %d %r" % (code, resp))
        return queued_id(resp.decode())
    finally:
        smtp.quit()


def wait_for(server, query, want, timeout=10.0):
    deadline = time.monotonic() + timeout
    while search(server, query) != want and time.monotonic() < deadline:
        time.sleep(0.1)


def index_rows(db, want, timeout=20.0):
    """The rows of the word index once there are `want` (or at the
    deadline)."""
    deadline = time.monotonic() + timeout
    while True:
        con = sqlite3.connect(db, timeout=TIMEOUT)
        try:
            n = con.execute("SELECT count(*) FROM body_fts").fetchone()[0]
        finally:
            con.close()
        if n >= want or time.monotonic() > deadline:
            return n
        time.sleep(0.1)


def http_search(server, query):
    host, port = server.addr("http")
    url = "http://%s:%d/api/v1/search?limit=1000&query=%s" % (
        host, port, urllib.parse.quote(query))
    with urllib.request.urlopen(url, timeout=TIMEOUT) as r:
        return [m["ID"] for m in json.load(r)["messages"]]


def search(server, query, inbox=None):
    args = ["message", "list", "--query", query]
    if inbox is not None:
        args += ["--inbox", inbox]
    out = server.cli_ok(*args).stdout.decode("utf-8")
    lines = out.splitlines()
    assert lines[0] == "ID\tINBOX\tDATE\tFROM\tTO\tSUBJECT", lines[0]
    return [line.split("\t")[0] for line in lines[1:] if line]


class SearchCase(harness.TestCase):
    server_args = ("--inbox", "qa:qa-pw")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        s = cls.server
        cls.a = send(s, PLAIN, ["bob@example.test", "hidden@bcc.test"])
        cls.b = send(s, CYRILLIC, ["bob@example.test"])
        cls.c = send(s, MIXED, ["bob@example.test"], login=("qa", "qa-pw"))
        # The server writes index rows after the commit, in batches; another
        # process (the CLI) sees them within half a second (its poll).
        wait_for(s, "subject:nightly", [cls.c])

    def check(self, query, want, inbox=None):
        self.assertEqual(search(self.server, query, inbox), want, "query %r" % query)

    def test_headers(self):
        a, b, c = self.a, self.b, self.c
        self.check("to:BOB@example.test", [b, a])
        self.check("-to:bob", [c])
        self.check("from:ИВАН", [b])
        self.check("subject:привет", [b])
        self.check('subject:"invoice 42"', [a])
        self.check("cc:carol@cc", [a])
        self.check("message-id:inv-42@", [a])
        self.check("bcc:hidden@bcc.test", [a])
        self.check("addressed:bot@ci", [c])
        self.check("rcpt:HIDDEN@BCC", [a])

    def test_words(self):
        a, b, c = self.a, self.b, self.c
        self.check("quarterly", [a])
        self.check("QUART", [a])
        self.check("cafe", [a])
        self.check('"report is attached"', [a])
        self.check('"attached report"', [])
        self.check("привет zebra", [b])
        self.check("green passed", [c])
        self.check("hiddenword", [])
        self.check("secretattachmentword", [])
        self.check("-zebra subject:i", [c, a])

    def test_inbox_flags_and_sizes(self):
        a, b, c = self.a, self.b, self.c
        self.check("inbox:qa", [c])
        self.check("to:bob", [b, a], inbox="dev")
        self.check("has:attachment", [c])
        self.check("has:inline", [c])
        self.check("is:unread", [c, b, a])
        self.check("is:read", [])
        self.check("larger:700", [c])
        self.check("smaller:0.7k", [b, a])
        self.check("after:2000-01-01 before:2999-12-31", [c, b, a])
        self.check("before:2000-01-01", [])

    def test_bad_query(self):
        cp = self.server.cli("message", "list", "--query", "larger:huge")
        self.assertEqual(cp.returncode, 1, cp)
        self.assertEqual(cp.stderr.decode(),
                         'mailsnare: --query: bad size "huge" (use 100, 10kb, 2mb)\n')


class DeferredIndexCase(harness.TestCase):
    """The server indexes new mail after the burst that brought it, not
    before each 250; a search made before that indexes what is waiting
    first, so it always sees every message acknowledged."""

    def test_search_right_after_a_burst(self):
        ids = []
        for i in range(40):
            msg = PLAIN.replace(b"quarterly", b"q%dword" % i)
            ids.append(send(self.server, msg.replace(b"invoice", b"burst"),
                            ["bob@example.test"]))
        self.assertEqual(http_search(self.server, "q39word"), [ids[39]])
        self.assertEqual(http_search(self.server, "subject:burst"), ids[::-1])
        last = send(self.server, CYRILLIC.replace(b"ZEBRA", b"GIRAFFE"), ["bob@example.test"])
        self.assertEqual(search(self.server, "giraffe"), [last])      # the CLI
        self.assertEqual(http_search(self.server, "giraffe"), [last])

    def test_indexed_in_the_background(self):
        a = send(self.server, PLAIN, ["bob@example.test"])
        b = send(self.server, CYRILLIC, ["bob@example.test"])
        self.assertEqual(index_rows(self.server.db, 2), 2)
        self.assertEqual(http_search(self.server, "zebra"), [b])
        self.assertEqual(http_search(self.server, "quarterly"), [a])


class BackfillCase(harness.TestCase):
    """A version 5 database (no index yet) is upgraded at start-up and its
    messages indexed in the background, oldest first."""

    def test_backfill(self):
        first = send(self.server, PLAIN, ["bob@example.test"])
        second = send(self.server, CYRILLIC, ["bob@example.test"])
        wait_for(self.server, "quarterly", [first])
        self.assertEqual(search(self.server, "quarterly"), [first])
        tmp = tempfile.TemporaryDirectory(prefix="mailsnare-it-old-")
        self.addCleanup(tmp.cleanup)
        old = os.path.join(tmp.name, "old.db")
        src = sqlite3.connect(self.server.db, timeout=TIMEOUT)
        self.assertEqual(src.execute("SELECT count(*) FROM body_fts").fetchone()[0], 2)
        dst = sqlite3.connect(old)
        src.backup(dst)
        src.close()
        dst.executescript("DROP TRIGGER body_tri_gc; DROP TABLE body_tri;"
                          " DROP INDEX message_search;"
                          " CREATE INDEX message_body ON message(body_id);"
                          " DROP TABLE body_purge; DROP TRIGGER message_body_gc;"
                          " CREATE TRIGGER message_body_gc AFTER DELETE ON message BEGIN"
                          " DELETE FROM body WHERE id = OLD.body_id AND NOT EXISTS"
                          " (SELECT 1 FROM message WHERE body_id = OLD.body_id); END;"
                          " DROP TRIGGER body_more_gc; DROP TABLE body_more;"
                          " DROP TRIGGER message_count_add; DROP TRIGGER message_count_del;"
                          " DROP TRIGGER message_count_upd; DROP TRIGGER keyword_count_add;"
                          " DROP TRIGGER keyword_count_del; DROP TABLE keyword_count;"
                          " ALTER TABLE mailbox DROP COLUMN n_messages;"
                          " ALTER TABLE mailbox DROP COLUMN n_unseen;"
                          "DROP TRIGGER body_search_gc; DROP TABLE body_fts;"
                          " DROP TABLE body_search; PRAGMA user_version = 5;")
        dst.close()
        other = harness.Server("--db", old)
        other.start()
        self.addCleanup(other.stop)
        other.db = old
        # The server's own back-fill, before any search (a CLI search
        # would index what it finds unindexed itself).
        self.assertEqual(index_rows(old, 2), 2)
        self.assertEqual(search(other, "bob"), [second, first])
        self.assertEqual(search(other, "quarterly"), [first])
        self.assertEqual(search(other, "subject:привет"), [second])


if __name__ == "__main__":
    harness.main()

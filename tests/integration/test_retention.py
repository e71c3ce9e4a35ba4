#!/usr/bin/env python3
"""Retention (issue 14): with `max-age`, messages of every INBOX older
than it are pruned on a timer; an idling IMAP session sees them
expunged, an SSE client gets `prune` events, /metrics counts them, and
the file gives the space back (freelist empty, fewer pages) by
incremental vacuum. Other mailboxes keep their mail; INTERNALDATE is
what counts. A database from before auto_vacuum is converted at start."""

import os
import socket
import sqlite3
import tempfile
import time

import harness
import http_helpers as hh
from imap_helpers import RawIMAP, smtp_send, status_of
from test_http_events import SSE

WAIT = 20.0
USER, PASSWORD = "ret", "ret-pw"


def pragma(db, name):
    con = sqlite3.connect(db, timeout=10)
    try:
        return con.execute("PRAGMA %s" % name).fetchone()[0]
    finally:
        con.close()


class RetentionCase(harness.TestCase):
    """A server of its own per class, so that what one prunes does not
    show up in another's counts."""

    server_args = ("--max-age", "2s", "--inbox", "%s:%s" % (USER, PASSWORD))

    def imap(self):
        m = RawIMAP(self.server.addr("imap"))
        self.addCleanup(m.close)
        m.greeting()
        m.login(USER, PASSWORD)
        return m


class RetentionTest(RetentionCase):

    def test_pruned_messages_reach_imap_sse_metrics_and_the_file(self):
        self.assertEqual(pragma(self.server.db, "auto_vacuum"), 2)     # INCREMENTAL
        sse = SSE(self.server, auth=(USER, PASSWORD))
        self.addCleanup(sse.close)
        m = self.imap()
        untagged, tagged = m.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK")
        m.send(b"i1 IDLE\r\n")
        self.assertTrue(m.line().startswith(b"+ "))
        big = b"Subject: old news\r\n\r\n" + (b"y" * 998 + b"\r\n") * 300
        ids = [str(smtp_send(self.server, USER, PASSWORD, big)) for _ in range(3)]
        pages = pragma(self.server.db, "page_count")
        pruned = set()
        deadline = time.monotonic() + WAIT
        while len(pruned) < 3:
            kind, data, _ = sse.event(timeout=max(0.1, deadline - time.monotonic()),
                                      want=("prune", "delete"))
            self.assertEqual(kind, "prune", data)
            pruned.add(data["ID"])
        self.assertEqual(pruned, set(ids))
        expunges, exists = 0, 0
        while expunges < 3:
            self.assertLess(time.monotonic(), deadline, "IDLE saw %d EXPUNGE" % expunges)
            try:
                line = m.line(timeout=1)
            except socket.timeout:
                continue
            expunges += line.endswith(b" EXPUNGE")
            exists += line.endswith(b" EXISTS")
        self.assertGreaterEqual(exists, 1)
        m.send(b"DONE\r\n")
        m.until_tagged("i1")
        untagged, tagged = m.command("STATUS INBOX (MESSAGES)")
        self.assertIn(b"(MESSAGES 0)", b"".join(untagged))
        # The space is given back: no free page left, and fewer pages
        # (large bodies are purged in steps first, store_body_purge).
        while (pragma(self.server.db, "freelist_count") != 0 or
               pragma(self.server.db, "page_count") >= pages - 150):
            self.assertLess(time.monotonic(), deadline,
                            "free pages left or the file did not shrink: %d free, %d pages "
                            "(%d before)" % (pragma(self.server.db, "freelist_count"),
                                             pragma(self.server.db, "page_count"), pages))
            time.sleep(0.1)
        metrics = hh.request(self.server, "GET", "/metrics").body.decode()
        self.assertIn("\nmailsnare_pruned_age_total 3\n", metrics)
        self.assertIn("\nmailsnare_messages_deleted_total 3\n", metrics)
        stats = hh.get_json(self, self.server, "/api/v1/info")["RuntimeStats"]
        self.assertEqual(stats["MessagesDeleted"], 3)
        self.assertIn(b"retention: pruned", self.server.read_log(self._log_offset))


class MailboxesTest(RetentionCase):

    def test_other_mailboxes_keep_their_mail_and_internaldate_counts(self):
        m = self.imap()
        self.assertEqual(status_of(m.command("CREATE Keep")[1]), "OK")
        msg = b"Subject: appended\r\n\r\nold\r\n"
        for box in ("Keep", "INBOX"):
            m.send(b'a1 APPEND %s "01-Jan-2020 00:00:00 +0000" {%d}\r\n' % (box.encode(),
                                                                             len(msg)))
            self.assertTrue(m.line().startswith(b"+"))
            m.send(msg + b"\r\n")
            self.assertEqual(status_of(m.until_tagged("a1")[1]), "OK")
        deadline = time.monotonic() + WAIT
        while True:
            untagged, _ = m.command("STATUS INBOX (MESSAGES)")
            if b"(MESSAGES 0)" in b"".join(untagged):
                break
            self.assertLess(time.monotonic(), deadline, "the old INBOX message stayed")
            time.sleep(0.2)
        untagged, _ = m.command("STATUS Keep (MESSAGES)")
        self.assertIn(b"(MESSAGES 1)", b"".join(untagged))
        # A fresh message in INBOX lives until it is max-age old.
        smtp_send(self.server, USER, PASSWORD, b"Subject: fresh\r\n\r\nnew\r\n")
        untagged, _ = m.command("STATUS INBOX (MESSAGES)")
        self.assertIn(b"(MESSAGES 1)", b"".join(untagged))


class OldDatabaseTest(harness.TestCase):

    def test_converted_to_incremental_at_start(self):
        with tempfile.TemporaryDirectory() as d:
            db = os.path.join(d, "old.db")
            with harness.Server("--db", db) as s:
                smtp_send(s, "dev", "dev", b"Subject: kept\r\n\r\nx\r\n")
            con = sqlite3.connect(db)
            con.execute("PRAGMA auto_vacuum = NONE")
            con.execute("VACUUM")
            con.close()
            self.assertEqual(pragma(db, "auto_vacuum"), 0)
            with harness.Server("--db", db) as s:           # no max-age: left alone
                self.assertEqual(pragma(db, "auto_vacuum"), 0)
            with harness.Server("--db", db, "--max-age", "7d") as s:
                self.assertEqual(pragma(db, "auto_vacuum"), 2)
                self.assertIn(b"retention: converting the database to incremental vacuum",
                              s.read_log())
                self.assertEqual(hh.get_json(self, s, "/api/v1/messages")["total"], 1)

    def test_bad_max_age(self):
        for bad, why in (("7", "invalid duration '7' (want e.g. 90m, 36h, 7d, or 0)"),
                         ("-1d", "invalid duration '-1d' (want e.g. 90m, 36h, 7d, or 0)"),
                         ("9999d", "9999d out of range (want 0..316224000)")):
            cp = self.server.cli("--max-age", bad, "inbox", "list")
            self.assertEqual((cp.returncode, cp.stderr),
                             (2, ("mailsnare: --max-age: %s\n" % why).encode()), bad)


if __name__ == "__main__":
    harness.main()

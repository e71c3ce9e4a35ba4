"""Large messages are copied into the store over several loop passes
(issue 11: staged bodies, src/store_body.c and src/deliver.c): the bytes
come back exact, whole and in ranges across the 256 KiB segments, by
every protocol; a small message finishing after a large one is not held
back by it, and another client's IMAP NOOP is answered while the large
one is still being written (both checked on the wire: which reply comes
first, not how long anything took).

Raw SMTP and IMAP on 127.0.0.1 only; every socket has a timeout."""

import hashlib
import random
import select
import socket
import sqlite3
import struct
import time

import harness
from harness import CRLF, RawSMTP, queued_id, strip_received
from imap_helpers import RawIMAP, new_inbox, status_of

LONG = 120          # seconds for a large delivery on a loaded machine
BIG = 30 * 1024 * 1024


def body_lines(rng, size):
    """Printable lines of 76 characters and CRLF, about size bytes, that
    differ everywhere (a misplaced segment cannot go unnoticed)."""
    alphabet = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+/"
    line = bytes(rng.choice(alphabet) for _ in range(64 * 78))
    out = []
    n = 0
    while n < size:
        k = rng.randrange(len(line) - 76)
        chunk = b"%010d" % n + line[k:k + 66] + CRLF
        out.append(chunk)
        n += len(chunk)
    return b"".join(out)


def message(subject, body):
    return (b"From: big@example.test\r\nTo: dev@example.test\r\n"
            b"Subject: " + subject + b"\r\n"
            b"Message-ID: <" + subject + b"@example.test>\r\n\r\n" + body)


class LargeCase(harness.TestCase):
    server_args = ("--log-level", "warn")

    def smtp(self):
        c = RawSMTP(self.server.addr("smtp"), timeout=LONG)
        self.addCleanup(c.close)
        self.assertReply(c.greeting(), 220)
        self.assertReply(c.cmd("EHLO large.example.test"), 250)
        return c

    def open_data(self, c):
        self.assertReply(c.cmd("MAIL FROM:<big@example.test>"), 250)
        self.assertReply(c.cmd("RCPT TO:<dev@example.test>"), 250)
        self.assertReply(c.cmd("DATA"), 354)

    def db_int(self, sql):
        db = sqlite3.connect("file:%s?mode=ro" % self.server.db, uri=True, timeout=LONG)
        try:
            return db.execute(sql).fetchone()[0]
        finally:
            db.close()

    def imap(self, user, pw):
        c = RawIMAP(self.server.addr("imap"), timeout=LONG)
        self.addCleanup(c.close)
        c.greeting()
        c.login(user, pw)
        return c


class TestLargeBytes(LargeCase):

    def test_exact_whole_and_in_ranges(self):
        rng = random.Random(7)
        data = message(b"exact", body_lines(rng, 3 * 1024 * 1024 + 4321))
        c = self.smtp()
        self.open_data(c)
        c.send(data + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        msg_id = queued_id(r.text)
        raw = self.server.message_bytes(msg_id)
        self.assertEqual(hashlib.sha256(strip_received(raw)).hexdigest(),
                         hashlib.sha256(data).hexdigest())
        # IMAP partial fetches over the edges of the stored segments
        m = self.imap("dev", "dev")
        _, tagged = m.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK")
        for start, n in ((0, 100), (262140, 10), (262144, 262144), (524280, 300000),
                         (len(raw) - 7, 100)):
            untagged, tagged = m.command("UID FETCH 1:* (BODY.PEEK[]<%d.%d>)" % (start, n))
            self.assertEqual(status_of(tagged), "OK", tagged)
            want = raw[start:start + n]
            head = b"BODY[]<%d> {%d}\r\n" % (start, len(want))
            wire = b"".join(untagged)
            self.assertIn(head + want, wire, "range %d+%d" % (start, n))


class TestNotHeldBack(LargeCase):

    def test_small_after_large_and_noop_first(self):
        rng = random.Random(9)
        big = message(b"big", body_lines(rng, BIG - 4096))
        small = message(b"small", b"just a line\r\n")
        user, pw = new_inbox(self.server, "lg")
        noop = self.imap(user, pw)
        a, b = self.smtp(), self.smtp()
        # BDAT chunks (RFC 3030) are answered once read: both bodies are
        # in the server's spool before either message ends.
        for c, data in ((a, big), (b, small)):
            self.assertReply(c.cmd("MAIL FROM:<big@example.test>"), 250)
            self.assertReply(c.cmd("RCPT TO:<dev@example.test>"), 250)
            c.send(b"BDAT %d\r\n" % len(data) + data)
            self.assertReply(c.reply(), 250)
        # The large message ends first, then the small one, then the
        # other client asks for a NOOP: all within microseconds, while
        # the large body takes dozens of loop passes to be copied in.
        a.send(b"BDAT 0 LAST\r\n")
        b.send(b"BDAT 0 LAST\r\n")
        noop.send(b"n1 NOOP\r\n")
        first = self.first_replies({a.sock: "big", b.sock: "small", noop.sock: "noop"})
        self.assertTrue(first == {"big", "small", "noop"} or "big" not in first,
                        "the large message was acknowledged first (%s)" % sorted(first))
        _, tagged = noop.until_tagged("n1", timeout=LONG)
        self.assertEqual(tagged, b"n1 OK NOOP completed")
        rs, rb = b.reply(), a.reply()
        self.assertReply(rs, 250, "2.0.0")
        self.assertReply(rb, 250, "2.0.0")
        # Message ids count up as messages are stored: the small one
        # went in while the large one's body was still being copied.
        self.assertLess(int(queued_id(rs.text)), int(queued_id(rb.text)),
                        "the small message was stored after the large one")
        self.assertEqual(strip_received(self.server.message_bytes(queued_id(rb.text))), big)

    def first_replies(self, socks):
        """The names of the sockets that have bytes to read first."""
        ready, _, _ = select.select(list(socks), [], [], LONG)
        if not ready:
            self.fail("no reply within %d s" % LONG)
        return {socks[s] for s in ready}


class TestDeletedInSteps(LargeCase):
    """A deleted large body's segments go a few per loop pass (issue 18 §2:
    src/body_purge.c), never a partial body in sight: the messages beside
    it keep their exact bytes, the database passes its integrity check,
    and nothing of the deleted one is left once the purge is done."""

    def deliver(self, data):
        c = self.smtp()
        self.open_data(c)
        c.send(data + b".\r\n")
        r = c.reply()
        self.assertReply(r, 250, "2.0.0")
        return queued_id(r.text)

    def test_neighbours_intact_and_nothing_left(self):
        rng = random.Random(18)
        sent = {}
        for name, size in ((b"before", 700 * 1024), (b"doomed", 12 * 1024 * 1024),
                           (b"after", 3 * 1024 * 1024 + 77)):
            data = message(name, body_lines(rng, size))
            sent[self.deliver(data)] = data
        doomed = [i for i, d in sent.items() if b"Subject: doomed" in d][0]
        total = self.db_int("SELECT count(*) FROM body_more")
        mine = self.db_int("SELECT count(*) FROM body_more WHERE body_id ="
                           " (SELECT body_id FROM message WHERE id = %d)" % int(doomed))
        self.assertGreaterEqual(mine, 12 * 4 - 1)   # 256 KiB segments
        m = self.imap("dev", "dev")
        _, tagged = m.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK")
        self.server.cli_ok("message", "del", doomed)
        del sent[doomed]
        # IMAP reads the neighbours while the purge may still be going on
        # (and before the session heard of the deletion: RFC 2180 §4.1.2).
        untagged, tagged = m.command("FETCH 1:* (BODY.PEEK[])")
        self.assertTrue(status_of(tagged) == "OK" or b"NO [EXPUNGEISSUED]" in tagged, tagged)
        wire = b"".join(untagged)
        for data in sent.values():
            self.assertIn(data, wire)
        deadline = time.monotonic() + LONG
        while self.db_int("SELECT count(*) FROM body_purge") and time.monotonic() < deadline:
            time.sleep(0.1)
        self.assertEqual(self.db_int("SELECT count(*) FROM body_purge"), 0)
        self.assertEqual(self.db_int("SELECT count(*) FROM body"), 2)
        self.assertEqual(self.db_int("SELECT count(*) FROM body_more"), total - mine)
        self.assertEqual(self.db_int("PRAGMA integrity_check"), "ok")
        for msg_id, data in sent.items():
            self.assertEqual(strip_received(self.server.message_bytes(msg_id)), data)
        self.assertNotIn(b"purging deleted bodies", self.server.read_log())


class TestCancelledInSteps(LargeCase):
    """A large body being staged when its SMTP client goes (before the
    250: reset) is given up, and removed like a deleted message's (issue 11:
    body_purge, a 1 MB step per loop pass): nothing of it is left after a
    while, no message was stored, another client's SMTP is answered
    meanwhile and after. (A client gone before the end of DATA has nothing
    staged: the body is staged from the spool once the data is all in.)"""

    def counts(self):
        return [self.db_int("SELECT count(*) FROM %s" % t)
                for t in ("message", "body", "body_more", "body_purge")]

    def test_gone_before_the_250(self):
        data = message(b"cancelled", body_lines(random.Random(22), BIG))
        other = self.smtp()
        before = self.counts()
        c = self.smtp()
        self.open_data(c)
        c.send(data + b".\r\n")
        # Gone once the first segments are in the store.
        deadline = time.monotonic() + LONG
        while self.counts()[2] == before[2] and time.monotonic() < deadline:
            if select.select([c.sock], [], [], 0.005)[0]:
                self.skipTest("stored before its staging was seen: %r" % c.reply().lines)
        self.assertGreater(self.counts()[2], before[2], "no segment staged")
        # Reset, not closed: a client that half-closes after its data
        # still gets its 250 (and the message is stored).
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        c.close()
        while self.counts() != before and time.monotonic() < deadline:
            self.assertReply(other.cmd("NOOP"), 250)
        self.assertEqual(self.counts(), before)
        self.assertEqual(self.db_int("PRAGMA integrity_check"), "ok")
        log = self.server.read_log()
        self.assertNotIn(b"purging deleted bodies", log)
        self.assertNotIn(b"staged body stays", log)
        self.open_data(other)
        other.send(message(b"after", b"small\r\n") + b".\r\n")
        self.assertReply(other.reply(), 250, "2.0.0")

if __name__ == "__main__":
    harness.main()

"""Long IMAP commands in slices (issue 11, "bounded work per loop pass"):
SORT, THREAD, LIST (with STATUS), LSUB, EXPUNGE, CLOSE and max-messages
pruning over large mailboxes give the exact replies they must, and another
client's NOOP is answered while one of them runs: its tagged OK arrives
before the long command's own (checked on the wire, when the NOOP's answer
took long enough that the long command was running meanwhile).

Raw IMAP on 127.0.0.1 only; every socket has a timeout."""

import base64
import os
import random
import re
import shutil
import socket
import tempfile
import time
import unittest

import harness
from harness import CRLF
from imap_helpers import RawIMAP, new_inbox, raw_login, status_of

# Large enough that each command takes many loop passes (a slice is a few
# milliseconds), small enough to fill in a few seconds.
N_MSGS = int(os.environ.get("SLICES_MSGS", "6000"))
N_BOXES = 3000
LONG = 120          # seconds for a long command on a loaded machine
# A NOOP answered later than this was waiting while the long command ran.
NOOP_WINDOW = 0.5


def bdat_fill(server, user, password, messages):
    """Delivers the messages over one SMTP session, pipelined with BDAT
    (RFC 3030 lets every command go without waiting)."""
    s = socket.create_connection(server.addr("smtp"), timeout=LONG)
    f = s.makefile("rb")
    try:
        f.readline()
        s.sendall(b"EHLO slices\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        token = ("\0%s\0%s" % (user, password)).encode()
        s.sendall(b"AUTH PLAIN " + base64.b64encode(token) + CRLF)
        line = f.readline()
        assert line.startswith(b"235"), line
        # In batches, reading the replies in between: a client that only
        # writes is stopped by the server's output bound.
        for at in range(0, len(messages), 200):
            batch = messages[at:at + 200]
            s.sendall(b"".join(b"MAIL FROM:<a@example.test>\r\nRCPT TO:<b@example.test>\r\n"
                               b"BDAT %d LAST\r\n" % len(m) + m for m in batch))
            for i in range(3 * len(batch)):
                line = f.readline()
                assert line.startswith(b"250"), (at, i, line)
        s.sendall(b"QUIT\r\n")
    finally:
        f.close()
        s.close()


def message(i, subject, date_min):
    return (b"From: user%d@example.test\r\n"
            b"To: rcpt@example.test\r\n"
            b"Subject: %s\r\n"
            b"Date: Mon, 1 Jan 2024 %02d:%02d:00 +0000\r\n"
            b"Message-ID: <m%d@example.test>\r\n\r\n"
            b"Body %d.\r\n" % (i, subject.encode(), date_min // 60, date_min % 60, i, i))


class SlicesTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server("--log-level", "warn").start()
        cls.user, cls.pw = new_inbox(cls.server, "sl")
        # Subjects in a shuffled order, two messages each: SORT has to
        # move everything, ORDEREDSUBJECT makes pairs.
        rng = random.Random(11)
        cls.groups = list(range(N_MSGS // 2)) * 2
        rng.shuffle(cls.groups)
        cls.subjects = ["s%05d" % g for g in cls.groups]
        msgs = [message(i + 1, cls.subjects[i], i % 1440) for i in range(N_MSGS)]
        bdat_fill(cls.server, cls.user, cls.pw, msgs)

    @classmethod
    def tearDownClass(cls):
        cls.server.stop()

    def client(self, user=None, pw=None):
        return raw_login(self.server, user or self.user, pw or self.pw, self.addCleanup,
                         timeout=LONG)

    def ok(self, c, text, timeout=LONG):
        untagged, tagged = c.command(text, timeout=timeout)
        self.assertEqual(status_of(tagged), "OK", (text, tagged))
        return untagged

    def same(self, got, want):
        """assertEqual for long lists: the first difference, without
        difflib's quadratic report."""
        for i, (g, w) in enumerate(zip(got, want)):
            if g != w:
                self.fail("line %d: %r, expected %r" % (i, g[:300], w[:300]))
        self.assertEqual(len(got), len(want), "lines: %d, expected %d" % (len(got), len(want)))

    def noop_first(self, long_client, text, other, sliced=True):
        """Sends `text` on long_client, then NOOP on other; asserts that
        NOOP's tagged OK came while the long command's tagged reply had
        not arrived yet. Returns the long command's (untagged, tagged).
        Which of two commands sent at once the server reads first is up to
        the kernel and the loop, and on a quick machine the long command
        may be done in a few milliseconds: the order is asserted only when
        the NOOP's answer took long enough (NOOP_WINDOW) that the long
        command must have been running meanwhile (sliced=False: only the
        exact replies are checked)."""
        tag = long_client.next_tag()
        start = time.monotonic()
        long_client.send(tag.encode() + b" " + text.encode() + CRLF)
        other.send(b"n1 NOOP\r\n")
        noop_untagged, noop_tagged = other.until_tagged("n1", timeout=LONG)
        waited = time.monotonic() - start
        self.assertEqual(noop_tagged, b"n1 OK NOOP completed")
        # What the long command has sent so far, unread (kernel buffer
        # and RawIMAP's own): no tagged reply in it yet.
        pending = long_client.pending()
        finished = (CRLF + tag.encode() + b" ") in (CRLF + pending)
        if sliced and waited > NOOP_WINDOW:
            self.assertFalse(finished, "%s finished before the other client's NOOP was "
                             "answered (%.2f s)" % (text, waited))
        return long_client.until_tagged(tag, timeout=LONG), noop_untagged

    def test_sort_exact_and_noop_answered(self):
        a, b = self.client(), self.client()
        try:
            self.ok(a, "SELECT INBOX")
            (untagged, tagged), _ = self.noop_first(a, "SORT (SUBJECT) UTF-8 ALL", b)
            self.assertTrue(tagged.endswith(b" OK SORT completed"), tagged)
            # Subject, then sequence number for equal subjects.
            order = sorted(range(1, N_MSGS + 1), key=lambda i: (self.subjects[i - 1], i))
            self.assertEqual(untagged, [b"* SORT " + b" ".join(b"%d" % i for i in order)])
            # Reverse, on UIDs, with search criteria: the same in reverse.
            untagged = self.ok(a, "UID SORT (REVERSE SUBJECT) UTF-8 UID 1:%d" % N_MSGS)
            rev = sorted(range(1, N_MSGS + 1), key=lambda i: (self.subjects[i - 1], -i),
                         reverse=True)
            self.assertEqual(untagged, [b"* SORT " + b" ".join(b"%d" % i for i in rev)])
        finally:
            a.close()
            b.close()

    def test_thread_exact_and_noop_answered(self):
        a, b = self.client(), self.client()
        try:
            self.ok(a, "EXAMINE INBOX")
            (untagged, tagged), _ = self.noop_first(a, "THREAD ORDEREDSUBJECT UTF-8 ALL", b)
            self.assertTrue(tagged.endswith(b" OK THREAD completed"), tagged)
            # Pairs of the same subject: the earlier (sent date, then
            # number) holds the later; threads by their first's date.
            first = {}
            for i, g in enumerate(self.groups, 1):
                first.setdefault(g, []).append(i)
            date = lambda i: (i - 1) % 1440
            threads = []
            for g, members in first.items():
                members.sort(key=lambda i: (date(i), i))
                threads.append(members)
            threads.sort(key=lambda m: (date(m[0]), m[0]))
            want = b"".join(b"(%d %d)" % tuple(m) for m in threads)
            self.assertEqual(untagged, [b"* THREAD " + want])
            # REFERENCES: no message refers to another, so each pair of one
            # subject, neither a reply, goes under a dummy: "((a)(b))",
            # threads in the same order.
            (untagged, tagged), _ = self.noop_first(a, "UID THREAD REFERENCES UTF-8 ALL", b)
            self.assertTrue(tagged.endswith(b" OK THREAD completed"), tagged)
            want = b"".join(b"((%d)(%d))" % tuple(m) for m in threads)
            self.assertEqual(untagged, [b"* THREAD " + want])
        finally:
            a.close()
            b.close()

    def test_list_status_exact_and_noop_answered(self):
        user, pw = new_inbox(self.server, "lb")
        a, b = self.client(user, pw), self.client(user, pw)
        try:
            names = ["box%05d" % i for i in range(N_BOXES)]
            a.send(b"".join(b"c%d CREATE %s\r\n" % (i, n.encode()) for i, n in enumerate(names)))
            for i in range(N_BOXES):
                self.assertEqual(status_of(a.until_tagged("c%d" % i, timeout=LONG)[1]), "OK")
            (untagged, tagged), _ = self.noop_first(
                a, 'LIST "" "*" RETURN (STATUS (MESSAGES UIDNEXT))', b)
            self.assertTrue(tagged.endswith(b" OK LIST completed"), tagged)
            want = []
            for n in ["Drafts", "INBOX", "Junk", "Sent", "Trash"] + names:
                use = {"Drafts": " \\Drafts", "Junk": " \\Junk", "Sent": " \\Sent",
                       "Trash": " \\Trash"}.get(n, "")
                want.append(b'* LIST (\\HasNoChildren%s) "/" "%s"' % (use.encode(), n.encode()))
                want.append(b'* STATUS "%s" (MESSAGES 0 UIDNEXT 1)' % n.encode())
            self.same(untagged, want)
            # LSUB over as many subscriptions, with a final "%".
            a.send(b"".join(b"u%d SUBSCRIBE %s\r\n" % (i, n.encode())
                            for i, n in enumerate(names)))
            for i in range(N_BOXES):
                self.assertEqual(status_of(a.until_tagged("u%d" % i, timeout=LONG)[1]), "OK")
            untagged = self.ok(a, 'LSUB "" "box0%"')
            self.same(untagged, [b'* LSUB () "/" "%s"' % n.encode() for n in names])
        finally:
            a.close()
            b.close()

    def test_list_while_another_session_changes_mailboxes(self):
        """A LIST reads the names a page at a time over several loop passes
        (issue 11): a second session's CREATE, DELETE and RENAME between
        them leave a consistent answer, each name at most once, in order,
        the untouched ones all there, a deleted mailbox without its STATUS
        line, and the next LIST exact."""
        user, pw = new_inbox(self.server, "lc")
        a, b = self.client(user, pw), self.client(user, pw)
        try:
            boxes = ["m%04d" % i for i in range(N_BOXES)] + ["q"] + \
                ["q/%04d" % i for i in range(200)]
            self.pipeline(a, ["CREATE " + n for n in boxes])
            # As many subscriptions, read after the mailboxes: more pages.
            self.pipeline(a, ["SUBSCRIBE s/%04d" % i for i in range(N_BOXES)])
            # Names read late deleted; names read early renamed to names
            # read late, and the other way round.
            deleted = boxes[2500:N_BOXES] + ["q/%04d" % i for i in range(200)] + ["q"]
            later = {"m%04d" % i: "z%04d" % i for i in range(500, 800)}
            earlier = {"m%04d" % i: "a%04d" % i for i in range(2000, 2200)}
            created = ["n%04d" % i for i in range(300)]
            changes = ["RENAME %s %s" % kv for kv in list(later.items()) + list(earlier.items())] + \
                ["DELETE " + n for n in deleted] + ["CREATE " + n for n in created]
            tag = a.next_tag()
            a.send(tag.encode() + b' LIST "" "*" RETURN (STATUS (MESSAGES))' + CRLF)
            self.pipeline(b, changes)
            untagged, tagged = a.until_tagged(tag, timeout=LONG)
            self.assertEqual(status_of(tagged), "OK", tagged)
            listed, statuses = self.list_status_lines(untagged)
            names = [n for n, _ in listed]
            self.assertEqual(len(names), len(set(names)), "a name listed twice")
            self.assertEqual(names, sorted(names, key=self.hier_key), "not in hierarchy order")
            initial = ["INBOX", "Drafts", "Junk", "Sent", "Trash"] + boxes
            ever = set(initial) | set(later.values()) | set(earlier.values()) | set(created)
            self.assertLessEqual(set(names), ever)
            touched = set(deleted) | set(later) | set(earlier)
            for n in initial:
                if n not in touched:
                    self.assertIn(n, names)
            for n, attrs in listed:
                if n[0] in "mazn":
                    self.assertEqual(attrs, "\\HasNoChildren", n)
            # A STATUS line follows its LIST line, unless the mailbox went
            # in between (a renamed one keeps its line, under the name
            # listed).
            for n in statuses:
                self.assertIn(n, names)
            for n in names:
                if n not in touched and n not in created and n != "INBOX":
                    self.assertEqual(statuses.get(n), "0", n)
            final = sorted(set(initial) - set(deleted) - set(later) - set(earlier) |
                           set(later.values()) | set(earlier.values()) | set(created),
                           key=self.hier_key)
            listed, _ = self.list_status_lines(self.ok(a, 'LIST "" "*"'))
            self.same([n for n, _ in listed], final)
        finally:
            a.close()
            b.close()

    def pipeline(self, c, commands):
        """Sends the commands at once; every one must say OK."""
        c.send(b"".join(b"p%d %s\r\n" % (i, t.encode()) for i, t in enumerate(commands)))
        for i, t in enumerate(commands):
            self.assertEqual(status_of(c.until_tagged("p%d" % i, timeout=LONG)[1]), "OK", t)

    @staticmethod
    def hier_key(name):
        # The server's order: "/" below every other octet, above the end.
        return name.encode().replace(b"/", b"\x01")

    @staticmethod
    def list_status_lines(untagged):
        """[(name, attributes)] of the LIST lines, {name: MESSAGES} of the
        STATUS lines, each STATUS checked to follow its own LIST line."""
        listed, statuses = [], {}
        for line in untagged:
            m = re.match(rb'\* LIST \(([^)]*)\) "/" "([^"]*)"$', line)
            if m:
                listed.append((m.group(2).decode(), m.group(1).decode()))
                continue
            m = re.match(rb'\* STATUS "([^"]*)" \(MESSAGES (\d+)\)$', line)
            assert m, line
            assert listed and listed[-1][0] == m.group(1).decode(), line
            statuses[m.group(1).decode()] = m.group(2).decode()
        return listed, statuses

    def test_expunge_exact_and_others_consistent(self):
        user, pw = new_inbox(self.server, "ex")
        n = 3000
        bdat_fill(self.server, user, pw, [message(i, "x%d" % i, 0) for i in range(1, n + 1)])
        a = RawIMAP(self.server.addr("imap"), timeout=LONG)
        b = RawIMAP(self.server.addr("imap"), timeout=LONG)
        try:
            for c in (a, b):
                c.greeting()
                c.login(user, pw)
                self.ok(c, "SELECT INBOX")
            # Every message but each tenth one.
            gone = [i for i in range(1, n + 1) if i % 10]
            self.ok(a, "STORE 1:%d +FLAGS.SILENT (\\Deleted)" % n)
            self.ok(a, "UID STORE %s -FLAGS.SILENT (\\Deleted)"
                    % ",".join(str(i) for i in range(10, n + 1, 10)))
            (untagged, tagged), b_seen = self.noop_first(a, "EXPUNGE", b)
            self.assertTrue(tagged.endswith(b" OK EXPUNGE completed"), tagged)
            # EXPUNGE numbers as they shift: message i (1-based) is
            # reported at its position after the earlier removals.
            want, removed = [], 0
            for i in gone:
                want.append(b"* %d EXPUNGE" % (i - removed))
                removed += 1
            self.same(untagged, want)
            # The other session saw some of them mid-way and the rest at
            # its next NOOP: in all, the same removals in the same order,
            # and its view ends where the store is.
            rest = self.ok(b, "NOOP")
            seen = [x for x in b_seen + rest if x.endswith(b" EXPUNGE")]
            self.assertEqual(len(seen), len(gone))
            self.assertEqual(self.ok(a, "UID SEARCH ALL"),
                             [b"* SEARCH " + b" ".join(b"%d" % i for i in range(10, n + 1, 10))])
            self.assertEqual(self.ok(b, "UID SEARCH ALL"),
                             [b"* SEARCH " + b" ".join(b"%d" % i for i in range(10, n + 1, 10))])
            # CLOSE removes the rest, silently.
            self.ok(a, "STORE 1:* +FLAGS.SILENT (\\Deleted)")
            self.assertEqual(self.ok(a, "CLOSE"), [])
            rest = self.ok(b, "NOOP")
            self.same(rest, [b"* 1 EXPUNGE"] * (n // 10))
        finally:
            a.close()
            b.close()


class PruneTest(unittest.TestCase):
    """max-messages lowered below what an inbox holds: the next delivery
    prunes the excess a bounded step per loop pass, oldest first, and a
    session watching the INBOX ends up with the store's view."""

    def test_prune_far_over_the_limit(self):
        tmp = tempfile.mkdtemp(prefix="mailsnare-prune-")
        db = os.path.join(tmp, "p.db")
        try:
            # The same db for both runs: the later --db wins.
            srv = self.server(db)
            try:
                user, pw = new_inbox(srv, "pr")
                bdat_fill(srv, user, pw, [message(i, "p%d" % i, 0) for i in range(1, 1001)])
            finally:
                srv.stop()
            srv = self.server(db, "--max-messages", "5")
            try:
                c = RawIMAP(srv.addr("imap"), timeout=LONG)
                c.greeting()
                c.login(user, pw)
                untagged = self.ok(c, "SELECT INBOX")
                self.assertIn(b"* 1000 EXISTS", untagged)
                bdat_fill(srv, user, pw, [message(1001, "p1001", 0)])
                deadline = time.monotonic() + LONG
                while srv.inbox_message_count(user) != 5:
                    self.assertLess(time.monotonic(), deadline, "pruning did not finish")
                    time.sleep(0.05)
                untagged = self.ok(c, "NOOP")
                self.assertEqual(len([x for x in untagged if x.endswith(b" EXPUNGE")]), 996)
                self.assertEqual(self.ok(c, "UID SEARCH ALL"), [b"* SEARCH 997 998 999 1000 1001"])
                c.close()
            finally:
                srv.stop()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def server(db, *args):
        srv = harness.Server("--log-level", "warn", "--db", db, *args)
        srv.start()
        srv.db = db    # for the CLI calls too
        return srv

    def ok(self, c, text):
        untagged, tagged = c.command(text, timeout=LONG)
        self.assertEqual(status_of(tagged), "OK", (text, tagged))
        return untagged


if __name__ == "__main__":
    harness.main()

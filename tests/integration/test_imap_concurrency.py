#!/usr/bin/env python3
"""Several IMAP sessions on one mailbox while SMTP delivers, another IMAP
session expunges and POP3 deletes: every session's view must stay
consistent (issue 6, "Behaviour across sessions").

Each watcher keeps its own model of the mailbox from the untagged
responses alone (EXISTS, EXPUNGE, FETCH) and checks the RFC 3501 rules as
they arrive: EXISTS never shrinks, an EXPUNGE names a message the session
has, message numbers stay in range. At the end every model must equal
what the server lists."""

import poplib
import random
import re
import smtplib
import socket
import threading
import time
import unittest

import harness

DURATION = 4.0


class Watcher:
    """A raw IMAP session that mirrors the mailbox from untagged data."""

    def __init__(self, port, name):
        self.name = name
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.file = self.sock.makefile("rb")
        self.count = 0
        self.expunges = 0
        self.errors = []
        self.tag = 0
        self.readline()
        self.command("LOGIN dev dev")
        self.command("SELECT INBOX")

    def readline(self):
        line = self.file.readline()
        if not line:
            raise ConnectionError("%s: connection closed" % self.name)
        return line

    def untagged(self, line):
        m = re.match(rb"\* (\d+) (EXISTS|EXPUNGE|FETCH)", line)
        if m is None:
            return
        n, what = int(m.group(1)), m.group(2)
        if what == b"EXISTS":
            if n < self.count:
                self.errors.append("%s: EXISTS %d below %d" % (self.name, n, self.count))
            self.count = n
        elif what == b"EXPUNGE":
            if not 1 <= n <= self.count:
                self.errors.append("%s: EXPUNGE %d of %d" % (self.name, n, self.count))
            self.count -= 1
            self.expunges += 1
        elif not 1 <= n <= self.count:
            self.errors.append("%s: FETCH %d of %d" % (self.name, n, self.count))

    def command(self, text):
        """Sends a command; returns its untagged lines, checking each."""
        self.tag += 1
        tag = b"w%d" % self.tag
        self.sock.sendall(tag + b" " + text.encode() + b"\r\n")
        lines = []
        while True:
            line = self.readline()
            if line.startswith(tag + b" "):
                # A FETCH naming a message expunged elsewhere and not yet
                # announced answers NO [EXPUNGEISSUED] (RFC 2180 §4.1.2).
                expunged = line.startswith(tag + b" NO [EXPUNGEISSUED]") and \
                    text.startswith("FETCH")
                if not line.startswith(tag + b" OK") and not expunged:
                    self.errors.append("%s: %s -> %r" % (self.name, text, line))
                return lines
            # Literals (FETCH bodies) are not asked for here.
            self.untagged(line)
            lines.append(line)

    def uids(self):
        lines = self.command("FETCH 1:* (UID)") if self.count else []
        return [int(re.search(rb"UID (\d+)", l).group(1)) for l in lines if b"FETCH" in l]

    def close(self):
        try:
            self.command("LOGOUT")
        except (ConnectionError, OSError):
            pass
        self.sock.close()


class TestConcurrentSessions(unittest.TestCase):
    def test_views_stay_consistent(self):
        with harness.Server() as server:
            smtp_port = server.addr("smtp")[1]
            imap_port = server.addr("imap")[1]
            pop3_port = server.addr("pop3")[1]
            stop = threading.Event()
            failures = []

            def deliver():
                with smtplib.SMTP("127.0.0.1", smtp_port, timeout=10) as s:
                    i = 0
                    while not stop.is_set():
                        s.sendmail("a@example.test", ["b@example.test"],
                                   b"Subject: load %d\r\n\r\nbody\r\n" % i)
                        i += 1
                        time.sleep(0.005)

            def expunger():
                w = Watcher(imap_port, "expunger")
                rnd = random.Random(7)
                while not stop.is_set():
                    if w.count > 3:
                        n = rnd.randint(1, w.count)
                        w.command("STORE %d +FLAGS.SILENT (\\Deleted)" % n)
                        w.command("EXPUNGE")
                    time.sleep(0.02)
                failures.extend(w.errors)
                w.close()

            def pop3_deleter():
                while not stop.is_set():
                    p = poplib.POP3("127.0.0.1", pop3_port, timeout=10)
                    p.user("dev")
                    p.pass_("dev")
                    count, _ = p.stat()
                    if count:
                        p.retr(count)
                        p.dele(1)
                    p.quit()
                    time.sleep(0.1)

            watchers = [Watcher(imap_port, "watcher%d" % i) for i in range(3)]
            threads = [threading.Thread(target=f) for f in (deliver, expunger, pop3_deleter)]
            for t in threads:
                t.start()
            deadline = time.time() + DURATION
            while time.time() < deadline:
                for w in watchers:
                    w.command(random.choice(["NOOP", "FETCH 1:* (FLAGS)" if w.count else "NOOP",
                                             "SEARCH UNSEEN"]))
                time.sleep(0.01)
            stop.set()
            for t in threads:
                t.join(20)
            self.assertEqual(failures, [])
            # Everything has settled: each model must match the server.
            checker = Watcher(imap_port, "final")
            final = checker.uids()
            checker.close()
            self.assertGreater(len(final), 0)
            for w in watchers:
                w.command("NOOP")
                self.assertEqual(w.errors, [])
                # The load did reach every session.
                self.assertGreater(w.expunges, 0, w.name)
                self.assertEqual(w.count, len(final), w.name)
                self.assertEqual(w.uids(), final, w.name)
                w.close()


if __name__ == "__main__":
    unittest.main()

#!/usr/bin/env python3
"""Limits by state (issue 11): before login an IMAP literal or command may
be a few KiB, the message size only after; `login-timeout` ends a POP3 or
IMAP connection that does not log in, and any TLS handshake that does not
finish (a client that connects to imaps and never sends a ClientHello);
after login the protocol's own idle timeout applies (`imap-timeout`).
The caps per inbox and mailbox (`max-mailboxes`, `max-subscriptions`,
`max-keywords`) answer `NO [LIMIT]`, and `auth-fail-limit` sets the failed
logins per address after which every further one waits its turn."""

import socket
import threading
import time
import unittest

import harness
from imap_helpers import (RawIMAP, new_inbox, raw_login, simple_message, smtp_send,
                          status_of)


def closed_within(sock, seconds):
    """Reads until the server closes; returns the bytes and how long it took,
    or raises if it is still open after `seconds`."""
    sock.settimeout(seconds)
    start, data = time.monotonic(), b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, BrokenPipeError):
            chunk = b""
        if not chunk:
            return data, time.monotonic() - start
        data += chunk


class LimitsTest(harness.TestCase):
    server_args = ("--login-timeout", "2", "--imap-timeout", "4")

    def raw(self, proto="imap"):
        imap = RawIMAP(self.server.addr(proto))
        self.addCleanup(imap.close)
        imap.greeting()
        return imap

    def test_preauth_literal_is_small(self):
        imap = self.raw()
        # A literal as large as a message, before login: refused before it
        # is read (the connection would otherwise hold it whole). The
        # synchronising form gets no "+" and the session goes on.
        imap.send(b"a LOGIN {33554431}\r\n")
        _, tagged = imap.until_tagged("a")
        self.assertIn(b"[TOOBIG]", tagged)
        imap.send(b"b LOGIN {9000}\r\n")
        _, tagged = imap.until_tagged("b")
        self.assertIn(b"[TOOBIG]", tagged)
        # A literal LOGIN of ordinary size still works.
        imap.send(b"c LOGIN {3}\r\n")
        self.assertTrue(imap.line().startswith(b"+"))
        imap.send(b"dev {3}\r\n")
        self.assertTrue(imap.line().startswith(b"+"))
        imap.send(b"dev\r\n")
        _, tagged = imap.until_tagged("c")
        self.assertEqual(status_of(tagged), "OK", tagged)
        # Once logged in, a 1 MiB APPEND literal is fine.
        body = b"Subject: big\r\n\r\n" + (b"x" * 1022 + b"\r\n") * 1024
        imap.send(b"d APPEND INBOX {%d+}\r\n" % len(body) + body + b"\r\n")
        _, tagged = imap.until_tagged("d")
        self.assertEqual(status_of(tagged), "OK", tagged)

    def test_login_timeout_imap_and_pop3(self):
        for proto in ("imap", "pop3"):
            host, port = self.server.addr(proto)
            sock = socket.create_connection((host, port), timeout=10)
            self.addCleanup(sock.close)
            data, took = closed_within(sock, 10)
            self.assertLess(took, 8, proto)
            self.assertGreater(took, 1, proto)
            if proto == "imap":
                self.assertIn(b"* BYE", data)

    def test_tls_handshake_never_started(self):
        for proto in ("imaps", "pop3s", "smtps"):
            host, port = self.server.addr(proto)
            sock = socket.create_connection((host, port), timeout=10)
            self.addCleanup(sock.close)
            _, took = closed_within(sock, 10)
            self.assertLess(took, 8, "%s kept a silent connection" % proto)

    def test_logged_in_outlives_login_timeout_then_autologout(self):
        imap = self.raw()
        imap.login("dev", "dev")
        time.sleep(3)   # past login-timeout, within imap-timeout
        _, tagged = imap.command("NOOP")
        self.assertEqual(status_of(tagged), "OK")
        data, took = closed_within(imap.sock, 10)
        self.assertIn(b"* BYE Autologout", imap.buf + data)
        self.assertGreater(took, 2)


SYSTEM_FLAGS = rb"\Answered \Flagged \Deleted \Seen \Draft"


class CapsTest(harness.TestCase):
    # Every inbox starts with 5 mailboxes (INBOX and the special ones),
    # all of them subscribed.
    server_args = ("--max-keywords", "3", "--max-mailboxes", "7", "--max-subscriptions", "8")

    def session(self, n_messages=0):
        user, pw = new_inbox(self.server)
        for i in range(n_messages):
            smtp_send(self.server, user, pw, simple_message("caps %d" % i))
        return user, pw, raw_login(self.server, user, pw, self.addCleanup)

    def tagged(self, imap, text, status="OK"):
        untagged, tagged = imap.command(text)
        self.assertEqual(status_of(tagged), status, (text, tagged))
        return untagged, tagged

    def permanentflags(self, untagged):
        lines = [l for l in untagged if b"[PERMANENTFLAGS" in l]
        self.assertEqual(len(lines), 1, untagged)
        return lines[-1]

    def test_keywords_per_mailbox(self):
        user, pw, imap = self.session(2)
        untagged, _ = self.tagged(imap, "SELECT INBOX")
        self.assertEqual(self.permanentflags(untagged),
                         b"* OK [PERMANENTFLAGS (" + SYSTEM_FLAGS + rb" \*)] Flags permitted")
        self.tagged(imap, "STORE 1 +FLAGS.SILENT (k1 k2)")
        self.tagged(imap, "STORE 2 +FLAGS.SILENT (k3)")
        # A fourth is refused and nothing of the command is stored.
        _, tagged = self.tagged(imap, "STORE 1:2 +FLAGS (k1 k4)", "NO")
        self.assertEqual(tagged.split(b" ", 1)[1],
                         b"NO [LIMIT] Too many keywords in this mailbox (max 3)")
        _, tagged = self.tagged(imap, "STORE 2 FLAGS (k5)", "NO")
        untagged, _ = self.tagged(imap, "FETCH 1:2 (FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS (\\Recent k1 k2))",
                                    b"* 2 FETCH (FLAGS (\\Recent k3))"])
        # Those in use may still be set, on any message.
        untagged, _ = self.tagged(imap, "STORE 2 +FLAGS (k1)")
        self.assertEqual(untagged, [b"* 2 FETCH (FLAGS (\\Recent k1 k3))"])
        # A new session sees the mailbox full: no \* in PERMANENTFLAGS.
        other = raw_login(self.server, user, pw, self.addCleanup)
        untagged, _ = self.tagged(other, "SELECT INBOX")
        self.assertEqual(self.permanentflags(untagged),
                         b"* OK [PERMANENTFLAGS (" + SYSTEM_FLAGS + b" k1 k2 k3)] Flags permitted")
        self.tagged(other, "STORE 1 +FLAGS (other)", "NO")
        # Each mailbox has its own count, of the keywords in use: copies
        # bring theirs, and removing them makes room again.
        self.tagged(imap, "COPY 1 Drafts")
        self.tagged(imap, "SELECT Drafts")
        self.tagged(imap, "STORE 1 +FLAGS (d1)")
        self.tagged(imap, "STORE 1 +FLAGS (d2)", "NO")
        self.tagged(imap, "STORE 1 -FLAGS (k1 k2)")
        untagged, _ = self.tagged(imap, "STORE 1 +FLAGS (d2 d3)")
        self.assertEqual(untagged[-1], b"* 1 FETCH (FLAGS (\\Recent d1 d2 d3))")

    def append(self, imap, mailbox, flags, status="OK", n=1):
        msg = b"Subject: kw\r\n\r\nkeywords\r\n"
        one = b" (" + flags.encode() + b") {%d+}\r\n" % len(msg) + msg
        _, tagged = self.tagged(imap, b"APPEND " + mailbox.encode() + one * n, status)
        return tagged.split(b" ", 1)[1]

    def test_keywords_append_copy_move(self):
        user, pw, imap = self.session()
        self.assertTrue(self.append(imap, "INBOX", "k1 k2").startswith(b"OK [APPENDUID "))
        # APPEND makes no fourth keyword, as STORE; MULTIAPPEND counts
        # the keywords of all its messages, and stores none of them.
        self.assertEqual(self.append(imap, "INBOX", "k3 k4", "NO"),
                         b"NO [LIMIT] Too many keywords in this mailbox (max 3)")
        self.assertTrue(self.append(imap, "INBOX", "k2 k5").startswith(b"OK [APPENDUID "))
        untagged, _ = self.tagged(imap, "STATUS INBOX (MESSAGES)")
        self.assertEqual(untagged, [b"* STATUS \"INBOX\" (MESSAGES 2)"])
        msg = b"Subject: kw\r\n\r\nkeywords\r\n"
        _, tagged = self.tagged(imap, b"APPEND INBOX (k1) {%d+}\r\n" % len(msg) + msg +
                                b" (k6) {%d+}\r\n" % len(msg) + msg, "NO")
        self.assertEqual(tagged.split(b" ", 1)[1],
                         b"NO [LIMIT] Too many keywords in this mailbox (max 3)")
        untagged, _ = self.tagged(imap, "STATUS INBOX (MESSAGES)")
        self.assertEqual(untagged, [b"* STATUS \"INBOX\" (MESSAGES 2)"])
        # COPY and MOVE go on, without the keywords that would be new in
        # the destination beyond its limit.
        self.append(imap, "Drafts", "d1 d2")
        self.append(imap, "Junk", "j1 j2 j3")
        self.tagged(imap, "SELECT INBOX")
        untagged, _ = self.tagged(imap, "FETCH 1:2 (FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS (\\Recent k1 k2))",
                                    b"* 2 FETCH (FLAGS (\\Recent k2 k5))"])
        _, tagged = self.tagged(imap, "COPY 1:2 Drafts")
        self.assertTrue(tagged.split(b" ", 1)[1].startswith(b"OK [COPYUID "), tagged)
        _, tagged = self.tagged(imap, "MOVE 1 Junk")
        self.assertEqual(tagged.split(b" ", 1)[1], b"OK MOVE completed")
        other = raw_login(self.server, user, pw, self.addCleanup)
        self.tagged(other, "EXAMINE Drafts")
        untagged, _ = self.tagged(other, "FETCH 1:* (FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS (d1 d2))", b"* 2 FETCH (FLAGS (k1))",
                                    b"* 3 FETCH (FLAGS ())"])
        self.tagged(other, "EXAMINE Junk")
        untagged, _ = self.tagged(other, "FETCH 1:* (FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS (j1 j2 j3))", b"* 2 FETCH (FLAGS ())"])
        # The source keeps its own: what is left in INBOX is unchanged.
        self.tagged(other, "EXAMINE INBOX")
        untagged, _ = self.tagged(other, "FETCH 1:* (FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS (k2 k5))"])

    def test_mailboxes_per_inbox(self):
        _, _, imap = self.session()
        self.tagged(imap, "CREATE a")
        self.tagged(imap, "CREATE b")
        _, tagged = self.tagged(imap, "CREATE c", "NO")
        self.assertEqual(tagged.split(b" ", 1)[1], b"NO [LIMIT] more than 7 mailboxes")
        self.tagged(imap, "DELETE a")
        self.tagged(imap, "CREATE c")

    def test_subscriptions_per_inbox(self):
        _, _, imap = self.session()
        for name in ("x", "y", "z"):
            self.tagged(imap, "SUBSCRIBE " + name)
        _, tagged = self.tagged(imap, "SUBSCRIBE w", "NO")
        self.assertEqual(tagged.split(b" ", 1)[1], b"NO [LIMIT] more than 8 subscriptions")
        self.tagged(imap, "UNSUBSCRIBE x")
        self.tagged(imap, "SUBSCRIBE w")


class AuthFailLimitTest(harness.TestCase):
    # Past 2 failures a minute from 127.0.0.1, failures are answered one at
    # a time, 250 ms apart (AUTH_BUDGET_SPACING_MS), whatever connection
    # they come on. With the default of 20 the same 8 failures are each
    # answered after their connection's own delay (200 ms).
    server_args = ("--auth-fail-limit", "2")
    CONNECTIONS = 8

    def test_failures_beyond_the_limit_wait_their_turn(self):
        conns = []
        for _ in range(self.CONNECTIONS):
            imap = RawIMAP(self.server.addr("imap"))
            self.addCleanup(imap.close)
            imap.greeting()
            conns.append(imap)
        answers, errors = [], []

        def fail_once(imap):
            try:
                _, tagged = imap.command('LOGIN "dev" "wrong"', timeout=60)
                answers.append((time.monotonic(), tagged))
            except Exception as e:   # reported below, in the test's thread
                errors.append(e)

        start = time.monotonic()
        threads = [threading.Thread(target=fail_once, args=(c,)) for c in conns]
        for t in threads:
            t.start()
        for t in threads:
            t.join(90)
        self.assertEqual(errors, [])
        self.assertEqual(len(answers), self.CONNECTIONS)
        for _, tagged in answers:
            self.assertEqual(status_of(tagged), "NO", tagged)
        # 2 within the limit, then 6 one after the other: the last one
        # no sooner than 200 ms + 5 x 250 ms (a lower bound: load only
        # makes it later).
        last = max(t for t, _ in answers) - start
        self.assertGreaterEqual(last, 1.2, "8 failures answered within %.2f s" % last)
        # A success is not held back.
        imap = raw_login(self.server, "dev", "dev", self.addCleanup)
        self.tagged_ok(imap)

    def tagged_ok(self, imap):
        _, tagged = imap.command("NOOP")
        self.assertEqual(status_of(tagged), "OK")


if __name__ == "__main__":
    harness.main()

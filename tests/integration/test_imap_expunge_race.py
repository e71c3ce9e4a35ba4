#!/usr/bin/env python3
"""Expunges that reach a selected IMAP session while it may not be told
of them (issue 9 §1).

Session A has a mailbox selected; the message goes away elsewhere (IMAP
STORE \\Deleted + EXPUNGE in session B, POP3 DELE + QUIT, `mailsnare
message del`, MOVE in session B, max-messages pruning at SMTP delivery);
then A sends FETCH, STORE or SEARCH. RFC 3501 §7.4.1: the server MUST NOT
send EXPUNGE while one of those (non-UID) commands is in progress, so the
view keeps the message until A's next NOOP. Each test checks that

- the server is still up (a new connection gets a greeting),
- A's FETCH reports the message still (RFC 2180 §4.1.1) or says NO
  (§4.1.2), and no EXPUNGE (nor VANISHED) comes before its tagged reply;
  an OK with nothing is not an answer (Mark Crispin on imap-protocol,
  2006-09, about RFC 2180 §4.1.3: "definitely a server bug"),
- A's next NOOP reports `* n EXPUNGE` (`* VANISHED uid` with QRESYNC) with
  the right number, any EXISTS after it equals the new count, and a fresh
  FETCH 1:* (UID) lists exactly the messages that are left.

Originally the sequence with IMAP crashed the server (SIGSEGV in
sync_existing, src/imap.c). Each test has a server of its own, so that a
crash fails that test and not the ones after it.
"""

import poplib
import re
import smtplib
import socket
import time
import unittest

import harness
import imap_model
from harness import SOCK_TIMEOUT
from imap_helpers import (RawIMAP, new_inbox, parse_fetch_responses, simple_message,
                          smtp_send, status_of)
from imap_model import seqset_values

EXPUNGE_RE = re.compile(rb"^\* (\d+) EXPUNGE$")
VANISHED_RE = re.compile(rb"^\* VANISHED (?!\(EARLIER\))(\S+)$")
EXISTS_RE = re.compile(rb"^\* (\d+) EXISTS$")
FETCH_RE = re.compile(rb"^\* (\d+) FETCH \(")
UID_RE = re.compile(rb"\bUID (\d+)\b")

# The CLI writes from another process; the server polls for that every
# 0.5 s (SERVE_EXTERNAL_POLL_MS): wait up to this long for it to show.
EXTERNAL_WAIT = 5.0


class Session:
    """One raw IMAP session with a selected mailbox and the list of UIDs
    it has been told about (index = message number - 1)."""

    def __init__(self, test, server, user, password, mailbox="INBOX", qresync=False):
        self.test = test
        self.imap = RawIMAP(server.addr("imap"))
        test.addCleanup(self.imap.close)
        greeting = self.imap.greeting()
        test.assertTrue(greeting.startswith(b"* OK"), greeting)
        self.imap.login(user, password)
        self.qresync = qresync
        if qresync:
            self.ok("ENABLE QRESYNC")
        untagged, _ = self.ok("SELECT " + mailbox)
        counts = [int(m.group(1)) for m in map(EXISTS_RE.match, untagged) if m]
        test.assertEqual(len(counts), 1, untagged)
        self.uids = self.fetch_uids()
        test.assertEqual(len(self.uids), counts[0], "EXISTS vs FETCH 1:* (UID)")

    def ok(self, text):
        untagged, tagged = self.imap.command(text)
        self.test.assertEqual(status_of(tagged), "OK", (text, untagged, tagged))
        return untagged, tagged

    def fetch_uids(self):
        untagged, _ = self.ok("FETCH 1:* (UID)")
        seen = []
        for line in untagged:
            m = FETCH_RE.match(line)
            if m:
                seen.append((int(m.group(1)), int(UID_RE.search(line).group(1))))
        self.test.assertEqual([n for n, _ in seen], list(range(1, len(seen) + 1)),
                              "FETCH 1:* (UID) numbers: %r" % untagged)
        return [u for _, u in seen]

    def assert_no_expunge(self, text, untagged):
        for line in untagged:
            self.test.assertFalse(EXPUNGE_RE.match(line) or VANISHED_RE.match(line),
                                  "%s: %r during a command that may not report "
                                  "expunges (RFC 3501 §7.4.1); all: %r"
                                  % (text, line, untagged))
            m = EXISTS_RE.match(line)
            if m:
                self.test.assertGreaterEqual(int(m.group(1)), len(self.uids),
                                             "%s: EXISTS below the count: %r"
                                             % (text, untagged))
            m = FETCH_RE.match(line)
            if m:
                self.test.assertTrue(1 <= int(m.group(1)) <= len(self.uids),
                                     "%s: FETCH of a number out of range: %r"
                                     % (text, untagged))

    def deferred(self, text):
        """Runs FETCH/STORE/SEARCH `text` on the old numbers; returns
        (untagged, tagged) after checking that it was answered sanely."""
        untagged, tagged = self.imap.command(text)
        self.assert_no_expunge(text, untagged)
        self.test.assertIn(status_of(tagged), ("OK", "NO"), (text, untagged, tagged))
        self.absorb_exists(untagged)
        return untagged, tagged

    def absorb_exists(self, untagged):
        """New messages announced with EXISTS (allowed at any time): their
        UIDs are learnt at the next full sync."""
        for line in untagged:
            m = EXISTS_RE.match(line)
            if m and int(m.group(1)) > len(self.uids):
                self.uids += [None] * (int(m.group(1)) - len(self.uids))

    def apply_expunges(self, untagged):
        """Applies EXPUNGE / VANISHED responses in order (RFC 3501 §7.4.1:
        each renumbers the ones after it); returns the UIDs removed."""
        gone = []
        for line in untagged:
            m = EXPUNGE_RE.match(line)
            if m:
                self.test.assertFalse(self.qresync, "EXPUNGE after ENABLE QRESYNC "
                                      "(RFC 7162 §3.2.10 wants VANISHED): %r" % untagged)
                n = int(m.group(1))
                self.test.assertTrue(1 <= n <= len(self.uids),
                                     "EXPUNGE %d of %d: %r" % (n, len(self.uids), untagged))
                gone.append(self.uids.pop(n - 1))
                continue
            m = VANISHED_RE.match(line)
            if m:
                self.test.assertTrue(self.qresync, "VANISHED without QRESYNC: %r" % untagged)
                for uid in seqset_values(m.group(1)):
                    self.test.assertIn(uid, self.uids, "VANISHED of a UID the session "
                                       "does not have: %r" % untagged)
                    self.uids.remove(uid)
                    gone.append(uid)
                continue
            m = EXISTS_RE.match(line)
            if m:
                n = int(m.group(1))
                self.test.assertGreaterEqual(n, len(self.uids),
                                             "EXISTS below the count after the "
                                             "expunges: %r" % untagged)
                self.uids += [None] * (n - len(self.uids))
        return gone

    def noop_until_expunged(self, want_gone, wait=0.0):
        """NOOP (repeated up to `wait` seconds, for changes made by another
        process) until the UIDs in `want_gone` were reported expunged;
        then checks the view against a fresh FETCH 1:* (UID)."""
        deadline = time.monotonic() + wait
        gone = []
        while True:
            untagged, _ = self.ok("NOOP")
            gone += self.apply_expunges(untagged)
            if sorted(gone) == sorted(want_gone) or time.monotonic() >= deadline:
                break
            time.sleep(0.1)
        self.test.assertEqual(sorted(gone), sorted(want_gone),
                              "expunged UIDs reported by NOOP")
        known = list(self.uids)
        fresh = self.fetch_uids()
        self.test.assertEqual(len(fresh), len(known), "count after the expunges: model %r, "
                              "FETCH 1:* %r" % (known, fresh))
        for k, f in zip(known, fresh):
            if k is not None:
                self.test.assertEqual(k, f, "UIDs by number: model %r, FETCH 1:* %r"
                                      % (known, fresh))
        self.uids = fresh
        return fresh


class RaceBase(unittest.TestCase):
    server_args = ()

    def setUp(self):
        self.server = harness.Server(*self.server_args).start()
        self.addCleanup(self.stop_server)
        self.user, self.password = new_inbox(self.server)

    def stop_server(self):
        # Raises (with the server's log) if it died or does not exit 0.
        self.server.stop()

    def deliver(self, n, prefix="race"):
        return [smtp_send(self.server, self.user, self.password,
                          simple_message("%s %d" % (prefix, i))) for i in range(n)]

    def session(self, mailbox="INBOX", qresync=False):
        return Session(self, self.server, self.user, self.password, mailbox, qresync)

    def assert_alive(self):
        rc = self.server.proc.poll()
        self.assertIsNone(rc, "the server exited (status %s)\n%s"
                          % (rc, self.server.log_excerpt(max_lines=60)))
        with RawIMAP(self.server.addr("imap")) as probe:
            greeting = probe.greeting()
            self.assertTrue(greeting.startswith(b"* OK"), greeting)
            _, tagged = probe.command("LOGOUT")
            self.assertEqual(status_of(tagged), "OK", tagged)

    def assert_fetch_reports(self, untagged, tagged, numbers, uids=None):
        """FETCH on the old numbers: each message in `numbers` is reported
        (with its UID if asked), or the FETCH says NO."""
        if status_of(tagged) == "NO":
            return
        got = {}
        for line in untagged:
            m = FETCH_RE.match(line)
            if m and b"FLAGS (" in line:
                got.setdefault(int(m.group(1)), line)
        self.assertEqual(sorted(got), sorted(numbers),
                         "OK to FETCH without the data of every message asked for "
                         "(RFC 2180 §4.1.1 wants the data, §4.1.2 a NO): %r %r"
                         % (untagged, tagged))
        if uids is not None:
            for n, uid in zip(numbers, uids):
                m = UID_RE.search(got[n])
                self.assertTrue(m and int(m.group(1)) == uid,
                                "message %d should be UID %d: %r" % (n, uid, got[n]))

    # -- expunge sources

    def expunge_imap(self, seq=1, mailbox="INBOX"):
        b = self.session(mailbox)
        b.ok("STORE %d +FLAGS (\\Deleted)" % seq)
        untagged, _ = b.ok("EXPUNGE")
        self.assertIn(b"* %d EXPUNGE" % seq, untagged)
        b.ok("LOGOUT")

    def expunge_pop3(self, seq=1):
        host, port = self.server.addr("pop3")
        p = poplib.POP3(host, port, timeout=SOCK_TIMEOUT)
        try:
            p.user(self.user)
            p.pass_(self.password)
            self.assertTrue(p.dele(seq).startswith(b"+OK"))
        finally:
            self.assertTrue(p.quit().startswith(b"+OK"))

    def expunge_cli(self, msg_id):
        self.server.cli_ok("message", "del", msg_id)
        self.assertNotIn(msg_id, self.server.message_ids(self.user))

    def expunge_move(self, seq=1):
        b = self.session()
        b.ok("CREATE Moved")
        untagged, tagged = b.ok("MOVE %d Moved" % seq)
        self.assertIn(b"* %d EXPUNGE" % seq, untagged, (untagged, tagged))
        b.ok("LOGOUT")


class ExpungeRaceTest(RaceBase):
    # -- the exact sequence of the report, and its sources

    def one_message_race(self, expunge, wait=0.0, qresync=False):
        ids = self.deliver(1)
        a = self.session(qresync=qresync)
        self.assertEqual(len(a.uids), 1)
        uid = a.uids[0]
        expunge(ids)
        untagged, tagged = a.deferred("FETCH 1 FLAGS")
        self.assert_alive()
        self.assert_fetch_reports(untagged, tagged, [1])
        left = a.noop_until_expunged([uid], wait)
        self.assertEqual(left, [])
        untagged, _ = a.ok("SEARCH ALL")
        self.assertEqual(untagged, [b"* SEARCH"])
        self.assert_alive()

    def test_imap_store_deleted_expunge_then_fetch(self):
        self.one_message_race(lambda ids: self.expunge_imap())

    def test_imap_expunge_then_fetch_qresync(self):
        self.one_message_race(lambda ids: self.expunge_imap(), qresync=True)

    def test_pop3_dele_quit_then_fetch(self):
        self.one_message_race(lambda ids: self.expunge_pop3())

    def test_cli_message_del_then_fetch(self):
        def expunge(ids):
            self.expunge_cli(ids[0])
            # Give the server's poll of external changes time to fire
            # before A's FETCH, so that the FETCH meets the pending expunge.
            time.sleep(1.2)
        self.one_message_race(expunge, wait=EXTERNAL_WAIT)

    def test_move_in_another_session_then_fetch(self):
        self.one_message_race(lambda ids: self.expunge_move())

    # -- several messages, the middle one goes

    def test_middle_of_three_expunged_then_fetch(self):
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=2)
        untagged, tagged = a.deferred("FETCH 1:3 (UID FLAGS)")
        self.assert_alive()
        self.assert_fetch_reports(untagged, tagged, [1, 2, 3], uids)
        left = a.noop_until_expunged([uids[1]])
        self.assertEqual(left, [uids[0], uids[2]])
        # The numbers moved down: message 2 is now the third one.
        untagged, _ = a.ok("FETCH 2 (UID)")
        self.assertEqual(untagged, [b"* 2 FETCH (UID %d)" % uids[2]])

    def test_middle_of_three_expunged_by_pop3_then_fetch(self):
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_pop3(seq=2)
        untagged, tagged = a.deferred("FETCH 1:* (UID FLAGS)")
        self.assert_alive()
        self.assert_fetch_reports(untagged, tagged, [1, 2, 3], uids)
        self.assertEqual(a.noop_until_expunged([uids[1]]), [uids[0], uids[2]])

    def test_search_instead_of_fetch(self):
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=2)
        untagged, tagged = a.deferred("SEARCH ALL")
        self.assert_alive()
        self.assertEqual(status_of(tagged), "OK", tagged)
        hits = [l for l in untagged if l.startswith(b"* SEARCH")]
        self.assertEqual(len(hits), 1, untagged)
        # RFC 2180 §4.3: the expunged message may or may not be found;
        # the numbers are the old ones either way.
        self.assertIn(hits[0], (b"* SEARCH 1 2 3", b"* SEARCH 1 3"))
        self.assertEqual(a.noop_until_expunged([uids[1]]), [uids[0], uids[2]])
        untagged, _ = a.ok("SEARCH ALL")
        self.assertEqual(untagged, [b"* SEARCH 1 2"])

    def test_store_instead_of_fetch(self):
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=2)
        untagged, tagged = a.deferred("STORE 1:3 +FLAGS (\\Flagged)")
        self.assert_alive()
        # RFC 2180 §4.2: the others are stored and reported; whether the
        # expunged one is reported too (or the STORE says NO) is the
        # server's choice.
        fetched = sorted(int(FETCH_RE.match(l).group(1)) for l in untagged
                         if FETCH_RE.match(l))
        self.assertIn(fetched, ([1, 3], [1, 2, 3]), (untagged, tagged))
        for line in untagged:
            if FETCH_RE.match(line) and not line.startswith(b"* 2 "):
                self.assertIn(b"\\Flagged", line)
        self.assertEqual(a.noop_until_expunged([uids[1]]), [uids[0], uids[2]])
        untagged, _ = a.ok("FETCH 1:* (UID FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (UID %d FLAGS (\\Flagged \\Recent))" % uids[0],
                                    b"* 2 FETCH (UID %d FLAGS (\\Flagged \\Recent))" % uids[2]])

    def test_store_only_the_expunged_message(self):
        self.deliver(1)
        a = self.session()
        uid = a.uids[0]
        self.expunge_imap()
        untagged, tagged = a.deferred("STORE 1 +FLAGS (\\Seen)")
        self.assert_alive()
        for line in untagged:
            if FETCH_RE.match(line):
                self.assertTrue(line.startswith(b"* 1 FETCH (FLAGS ("), (untagged, tagged))
        self.assertEqual(a.noop_until_expunged([uid]), [])

    def test_silent_store_with_an_expunged_message(self):
        # RFC 2180 §4.2: the others are stored; .SILENT reports nothing of
        # them, neither now nor at the next NOOP (the change is the
        # session's own), so a client must take NO [EXPUNGEISSUED] as
        # "the ones that still exist were stored".
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=2)
        untagged, tagged = a.deferred("STORE 1:3 +FLAGS.SILENT (\\Flagged)")
        self.assertEqual(untagged, [])
        self.assertEqual(tagged.split(b" ", 1)[1],
                         b"NO [EXPUNGEISSUED] Some of the messages no longer exist")
        untagged, _ = a.ok("NOOP")
        self.assertEqual(untagged, [b"* 2 EXPUNGE"])
        a.uids = [uids[0], uids[2]]
        untagged, _ = a.ok("FETCH 1:* (UID FLAGS)")
        self.assertEqual(untagged, [b"* 1 FETCH (UID %d FLAGS (\\Flagged \\Recent))" % uids[0],
                                    b"* 2 FETCH (UID %d FLAGS (\\Flagged \\Recent))" % uids[2]])
        self.assert_alive()

    def test_stress_model_after_a_store_answered_expungeissued(self):
        # The stress test's model (imap_model.py) once took such a NO as
        # "nothing stored" and disagreed with the mailbox later; here is
        # that sequence without the luck of threads: STORE +FLAGS
        # (reported), then STORE -FLAGS.SILENT (\\Deleted), each while
        # message 2 is expunged elsewhere, then EXPUNGE (which must leave
        # message 1: the model must not suspect it) and the model's final
        # comparison with the mailbox.
        drv = imap_model.Driver(self.server, 0, 1, 0, inboxes=1)
        self.user, self.password = drv.inboxes[0]
        self.deliver(3)
        s = imap_model.Session(drv, 0, self.user, self.password, 0)
        self.addCleanup(s.close)
        try:
            s.connect()
            s.mb = imap_model.Mailbox("INBOX", False)
            s.cmd('SELECT "INBOX"', want=("OK",))
            s.op_fetch_all_uids()
            self.assertEqual(len(s.mb.msgs), 3)
            self.expunge_imap(seq=2)
            s.store("1:3", [1, 2, 3], {"\\Deleted", "k0_0"}, "+", False)
            self.assertIn((b"EXPUNGEISSUED", None), s.codes)
            s.cmd("NOOP", want=("OK",))
            self.assertEqual(len(s.mb.msgs), 2)
            # Both have \\Deleted now: B expunges only the second one.
            b = self.session()
            b.ok("UID EXPUNGE %d" % s.mb.msgs[1].uid)
            b.ok("LOGOUT")
            s.store("1:2", [1, 2], {"\\Deleted"}, "-", True)
            self.assertIn((b"EXPUNGEISSUED", None), s.codes)
            s.cmd("EXPUNGE", want=("OK",))
            s.deleted_left(s.mb.msgs)
            time.sleep(0.3)
            s.op_noop()
            self.assertEqual(s.final_check(), "checked")
        except imap_model.ModelError as e:
            self.fail("%s\n%s" % (e, "\n".join(s.transcript)))

    def test_two_deferred_expunges_and_new_mail(self):
        """The view holds an expunged message while more changes arrive:
        another expunge, a new message; FETCH twice, then NOOP."""
        self.deliver(4)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=1)
        untagged, tagged = a.deferred("FETCH 1:4 (UID FLAGS)")
        self.assert_fetch_reports(untagged, tagged, [1, 2, 3, 4], uids)
        self.expunge_imap(seq=2)        # B's numbers: uids[2]
        self.deliver(1, "late")
        untagged, tagged = a.deferred("FETCH 1:4 (UID FLAGS)")
        self.assert_alive()
        self.assert_fetch_reports(untagged, tagged, [1, 2, 3, 4], uids)
        untagged, tagged = a.deferred("SEARCH ALL")
        self.assert_alive()
        left = a.noop_until_expunged([uids[0], uids[2]])
        self.assertEqual(left[:2], [uids[1], uids[3]])
        self.assertEqual(len(left), 3)
        self.assertGreater(left[2], uids[3])

    def test_uid_fetch_after_deferred_expunge(self):
        """UID FETCH may report the pending EXPUNGE (RFC 3501 §7.4.1): it
        must then do so before data with the new numbers."""
        self.deliver(3)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=1)
        a.deferred("FETCH 1:3 (FLAGS)")
        untagged, tagged = a.imap.command("UID FETCH 1:* (FLAGS)")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assert_alive()
        a.apply_expunges(untagged)
        for line in untagged:
            m = FETCH_RE.match(line)
            if m:
                n, uid = int(m.group(1)), int(UID_RE.search(line).group(1))
                self.assertEqual(a.uids[n - 1], uid, (untagged, a.uids))
        pending = [uids[0]] if uids[0] in a.uids else []
        self.assertEqual(a.noop_until_expunged(pending), uids[1:])

    def test_idle_gets_the_expunge_at_once(self):
        self.deliver(2)
        a = self.session()
        uids = list(a.uids)
        a.imap.send(b"i1 IDLE\r\n")
        self.assertTrue(a.imap.line().startswith(b"+"))
        self.expunge_imap(seq=1)
        # During IDLE the EXPUNGE comes unsolicited (RFC 2177), perhaps
        # after the FETCH that reports B's \Deleted.
        lines = []
        deadline = time.monotonic() + 5
        while b"* 1 EXPUNGE" not in lines and time.monotonic() < deadline:
            lines.append(a.imap.line(timeout=max(0.1, deadline - time.monotonic())))
        self.assertEqual(lines[-1], b"* 1 EXPUNGE", lines)
        for line in lines[:-1]:
            self.assertRegex(line, rb"^\* 1 FETCH \(UID %d FLAGS \(.*\\Deleted" % uids[0])
        self.assertEqual(a.apply_expunges(lines), [uids[0]])
        a.imap.send(b"DONE\r\n")
        untagged, tagged = a.imap.until_tagged("i1")
        self.assertEqual(status_of(tagged), "OK", tagged)
        a.apply_expunges(untagged)
        self.assert_alive()
        self.assertEqual(a.noop_until_expunged([]), uids[1:])

    def test_idle_after_deferred_expunge(self):
        """The expunge was deferred by a FETCH; IDLE then reports it."""
        self.deliver(2)
        a = self.session()
        uids = list(a.uids)
        self.expunge_imap(seq=2)
        a.deferred("FETCH 1:2 (FLAGS)")
        a.imap.send(b"i2 IDLE\r\n")
        lines = []
        while True:
            line = a.imap.line(timeout=5)
            if line.startswith(b"+"):
                break
            lines.append(line)
        lines += a.imap.quiet(1.0)
        a.imap.send(b"DONE\r\n")
        untagged, tagged = a.imap.until_tagged("i2")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertEqual(a.apply_expunges(lines + untagged), [uids[1]])
        self.assert_alive()
        self.assertEqual(a.noop_until_expunged([]), uids[:1])

    # -- commands that may report the pending expunge, and what they act on

    def test_copy_after_expunge_elsewhere_copies_the_message_meant(self):
        """COPY may announce the pending EXPUNGE, but "2" is the message the
        client called 2 when it sent the command (Dovecot reads the set
        before it reports expunges; RFC 3501 §7.4.1)."""
        self.deliver(3, "meant")
        a = self.session()
        uids = list(a.uids)
        a.ok("CREATE Work")
        self.expunge_imap(seq=1)
        untagged, tagged = a.imap.command("COPY 2 Work")
        self.assertEqual(status_of(tagged), "OK", (untagged, tagged))
        self.assertRegex(tagged, rb"\[COPYUID \d+ %d \d+\]" % uids[1])
        a.apply_expunges(untagged)
        self.assertEqual(a.noop_until_expunged([] if uids[0] not in a.uids else [uids[0]]),
                         uids[1:])
        w = self.session("Work")
        untagged, _ = w.ok("FETCH 1:* (BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        self.assertEqual(len(untagged), 1, untagged)
        self.assertIn(b"Subject: meant 1\r\n", untagged[0])

    def test_move_into_the_selected_mailbox(self):
        """MOVE into the mailbox itself gives the message a new UID: the
        old one must be expunged from the session (RFC 6851 §3.3)."""
        self.deliver(1)
        a = self.session()
        old = a.uids[0]
        untagged, tagged = a.ok("MOVE 1 INBOX")
        m = re.search(rb"\[COPYUID \d+ (\d+) (\d+)\]", b" ".join(untagged + [tagged]))
        self.assertTrue(m, (untagged, tagged))
        self.assertEqual(int(m.group(1)), old)
        new = int(m.group(2))
        self.assertGreater(new, old)
        a.apply_expunges(untagged)
        self.assertEqual(a.noop_until_expunged([] if old not in a.uids else [old]), [new])
        self.assertEqual(self.session().uids, [new])

    def test_select_does_not_report_on_the_mailbox_it_leaves(self):
        """Changes to the mailbox A leaves are not reported in SELECT's
        reply, where a client without QRESYNC takes them for the new
        mailbox (RFC 7162 §3.2.11 added [CLOSED] for this). Dovecot closes
        the old mailbox without a word."""
        self.deliver(2)
        a = self.session()
        b = self.session()
        b.ok("CREATE Empty")
        b.ok("STORE 1 +FLAGS (\\Flagged newkeyword)")
        b.ok("STORE 2 +FLAGS (\\Deleted)")
        b.ok("EXPUNGE")
        untagged, tagged = a.ok("SELECT Empty")
        self.assertEqual(untagged[0][:9], b"* FLAGS (", untagged)
        self.assertIn(b"* 0 EXISTS", untagged)
        for line in untagged:
            self.assertFalse(EXPUNGE_RE.match(line) or FETCH_RE.match(line), untagged)
        self.assertEqual(len([l for l in untagged if EXISTS_RE.match(l)]), 1, untagged)

    def test_deleted_and_recreated_mailbox_stays_deleted_for_the_session(self):
        """A has "x" selected; B deletes it and creates a new "x". A's view
        loses every message and never sees the new ones: UIDs are never
        reused under one UIDVALIDITY (RFC 3501 §2.3.1.1)."""
        b = self.session()
        b.ok("CREATE x")
        msg = simple_message("old x")
        for _ in range(2):
            b.ok("APPEND x {%d+}\r\n" % len(msg) + msg.decode())
        a = self.session("x")
        self.assertEqual(len(a.uids), 2)
        b.ok("DELETE x")
        b.ok("CREATE x")
        for _ in range(3):
            b.ok("APPEND x {%d+}\r\n" % len(msg) + msg.decode())
        untagged, tagged = a.imap.command("NOOP")
        if status_of(tagged) == "OK" and not any(l.startswith(b"* BYE") for l in untagged):
            a.apply_expunges(untagged)
            self.assertEqual(a.uids, [], "the deleted mailbox's session sees messages: %r"
                             % untagged)
            untagged, tagged = a.imap.command("FETCH 1:* (UID)")
            self.assertEqual([l for l in untagged if FETCH_RE.match(l)], [], untagged)
        self.assert_alive()


class PruneRaceTest(RaceBase):
    """max-messages 1: delivering a second message prunes the first while
    A has it selected."""

    server_args = ("--max-messages", "1")

    def test_prune_at_delivery_then_fetch(self):
        self.deliver(1)
        a = self.session()
        uid = a.uids[0]
        self.deliver(1, "second")
        self.assertEqual(len(self.server.message_ids(self.user)), 1)
        untagged, tagged = a.deferred("FETCH 1 FLAGS")
        self.assert_alive()
        self.assert_fetch_reports(untagged, tagged, [1])
        left = a.noop_until_expunged([uid])
        self.assertEqual(len(left), 1)
        self.assertGreater(left[0], uid)

    def test_prune_at_delivery_then_search_and_store(self):
        self.deliver(1)
        a = self.session()
        uid = a.uids[0]
        self.deliver(1, "second")
        a.deferred("SEARCH ALL")
        a.deferred("STORE 1 +FLAGS (\\Seen)")
        self.assert_alive()
        left = a.noop_until_expunged([uid])
        self.assertEqual(len(left), 1)

    def test_prune_during_idle(self):
        self.deliver(1)
        a = self.session()
        uid = a.uids[0]
        a.imap.send(b"i3 IDLE\r\n")
        self.assertTrue(a.imap.line().startswith(b"+"))
        self.deliver(1, "second")
        lines = a.imap.quiet(1.5)
        a.imap.send(b"DONE\r\n")
        untagged, tagged = a.imap.until_tagged("i3")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertEqual(a.apply_expunges(lines + untagged), [uid])
        self.assert_alive()
        left = a.noop_until_expunged([])
        self.assertEqual(len(left), 1)
        self.assertGreater(left[0], uid)


class StreamingFetchRaceTest(RaceBase):
    """A FETCH too big for the client's socket waits for the client to read
    (output back-pressure) and lets the event loop run others meanwhile:
    the messages it has yet to send may be expunged then. The stress test
    (bench/imap_stress.sh) found sessions waiting for ever in the middle
    of such a FETCH: the server had announced a body's literal, found the
    message gone when it went on, and sent the end of the response and
    the tagged NO where the client still expected the literal's octets."""

    def bodies(self, n, size):
        """Delivers n messages of about `size` octets over one SMTP
        connection; returns {subject: message as sent}."""
        sent = {}
        host, port = self.server.addr("smtp")
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789\r\n"
        with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as smtp:
            smtp.login(self.user, self.password)
            for i in range(n):
                subject = "stream %d" % i
                msg = simple_message(subject, body=line * (size // len(line)))
                smtp.sendmail("sender@example.test", ["rcpt@example.test"], msg)
                sent[subject.encode()] = msg
        return sent

    def stalled_fetch(self, n, size):
        """Session A selects the n messages, asks for every body with a
        receive buffer far too small for them and does not read; another
        session expunges them all. Returns (A, sent)."""
        sent = self.bodies(n, size)
        a = self.session()
        self.assertEqual(len(a.uids), n)
        a.imap.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
        a.imap.send(b"f1 FETCH 1:* (UID BODY.PEEK[])\r\n")
        time.sleep(1.0)     # the server fills the socket and waits
        b = self.session()
        b.ok("STORE 1:* +FLAGS.SILENT (\\Deleted)")
        untagged, _ = b.ok("EXPUNGE")
        self.assertEqual(len([l for l in untagged if EXPUNGE_RE.match(l)]), n)
        b.ok("LOGOUT")
        return a, sent

    def test_small_bodies_expunged_while_fetch_waits(self):
        # 300 x 20 KB: about 6 MB, many times what the sockets hold.
        a, sent = self.stalled_fetch(300, 20000)
        got = []
        while True:
            line = a.imap.line(60)
            if line.startswith(b"f1 "):
                break
            m = FETCH_RE.match(line)
            self.assertTrue(m, "not a FETCH response: %r" % line[:300])
            fi = parse_fetch_responses(line + b"\r\n")[0]
            body = fi["BODY[]"]
            subject = re.search(rb"Subject: (stream \d+)\r\n", body)
            self.assertTrue(subject, "BODY[] of message %d: %r" % (fi.seq, body[:300]))
            self.assertEqual(harness.strip_received(body), sent[subject.group(1)],
                             "BODY[] of message %d" % fi.seq)
            got.append(fi.seq)
        self.assertEqual(got, list(range(1, len(got) + 1)), "message numbers in order")
        self.assertLess(len(got), 300, "the FETCH never waited: the test proves nothing")
        self.assertEqual(line, b"f1 NO [EXPUNGEISSUED] Some of the requested messages"
                         b" no longer exist")
        # The expunges come with the next NOOP.
        self.assertEqual(a.noop_until_expunged(list(a.uids)), [])
        self.assert_alive()

    def test_large_body_expunged_in_the_middle_of_its_literal(self):
        # A literal that was announced cannot be taken back: the server
        # closes the connection (as Dovecot does) rather than leave the
        # client waiting for octets, or reading the replies as the body.
        a, sent = self.stalled_fetch(4, 3000000)
        with self.assertRaises(EOFError):
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                a.imap.line(60)
        self.assertIn(b"gone in the middle of its literal; closing", self.server.read_log())
        self.assert_alive()


if __name__ == "__main__":
    harness.main()

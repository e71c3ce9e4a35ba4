#!/usr/bin/env python3
"""How a selected mailbox's view follows changes made elsewhere (issue 9):
keywords announced in FLAGS before a FETCH shows them (RFC 3501 §7.2.6),
RECENT on EXAMINE, HIGHESTMODSEQ when a command turns CONDSTORE on
(RFC 7162 §3.1, as Dovecot), changes made by the CLI (another process)
reaching an idling client, a selected mailbox deleted by another session,
and a view kept in step by what changed only (flags, new mail, expunges
interleaved) ending equal to a fresh SELECT. Raw IMAP, exact replies."""

import re
import socket
import time

import harness
from imap_helpers import raw_login, new_inbox, simple_message, smtp_send, status_of

SYS = b"\\Answered \\Flagged \\Deleted \\Seen \\Draft"


class ViewTest(harness.TestCase):

    def inbox(self, n_messages):
        user, pw = new_inbox(self.server)
        ids = [smtp_send(self.server, user, pw, simple_message("m%d" % i))
               for i in range(n_messages)]
        return user, pw, ids

    def client(self, user, pw):
        return raw_login(self.server, user, pw, self.addCleanup)

    def ok(self, imap, text):
        untagged, tagged = imap.command(text)
        self.assertEqual(status_of(tagged), "OK", (text, tagged))
        return untagged

    def flags_state(self, imap):
        """UID -> set of flags, from FETCH 1:* (UID FLAGS)."""
        out = {}
        for line in self.ok(imap, "FETCH 1:* (UID FLAGS)"):
            m = re.match(rb"\* (\d+) FETCH \(UID (\d+) FLAGS \(([^)]*)\)\)", line)
            self.assertIsNotNone(m, line)
            out[int(m.group(2))] = set(m.group(3).split()) - {b"\\Recent"}
        return out


class KeywordAnnouncementTest(ViewTest):
    def test_other_sessions_store_announces_flags_first(self):
        user, pw, _ = self.inbox(2)
        a, b = self.client(user, pw), self.client(user, pw)
        sel = self.ok(a, "SELECT INBOX")
        self.assertIn(b"* FLAGS (" + SYS + b")", sel)
        self.ok(b, "SELECT INBOX")
        own = self.ok(b, "STORE 2 +FLAGS ($Fresh)")
        # The session that stores it is told first, too.
        self.assertEqual(own, [
            b"* FLAGS (" + SYS + b" $Fresh)",
            b"* OK [PERMANENTFLAGS (" + SYS + b" $Fresh \\*)] Flags permitted",
            b"* 2 FETCH (FLAGS ($Fresh))"])
        seen = self.ok(a, "NOOP")
        self.assertEqual(seen, [
            b"* FLAGS (" + SYS + b" $Fresh)",
            b"* OK [PERMANENTFLAGS (" + SYS + b" $Fresh \\*)] Flags permitted",
            b"* 2 FETCH (UID 2 FLAGS (\\Recent $Fresh))"])
        # Known now: no second announcement.
        self.ok(b, "STORE 1 +FLAGS ($Fresh)")
        self.assertEqual(self.ok(a, "NOOP"), [b"* 1 FETCH (UID 1 FLAGS (\\Recent $Fresh))"])

    def test_silent_store_still_announces(self):
        user, pw, _ = self.inbox(1)
        b = self.client(user, pw)
        self.ok(b, "SELECT INBOX")
        self.assertEqual(self.ok(b, "STORE 1 +FLAGS.SILENT (Quiet)"), [
            b"* FLAGS (" + SYS + b" Quiet)",
            b"* OK [PERMANENTFLAGS (" + SYS + b" Quiet \\*)] Flags permitted"])

    def test_append_and_copy_with_new_keyword(self):
        user, pw, _ = self.inbox(1)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        msg = simple_message("appended")
        b.send(b"x APPEND INBOX (Appended) {%d}\r\n" % len(msg))
        self.assertTrue(b.line().startswith(b"+"))
        b.send(msg + b"\r\n")
        _, tagged = b.until_tagged("x")
        self.assertEqual(status_of(tagged), "OK", tagged)
        seen = self.ok(a, "NOOP")
        self.assertEqual(seen[:2], [
            b"* FLAGS (" + SYS + b" Appended)",
            b"* OK [PERMANENTFLAGS (" + SYS + b" Appended \\*)] Flags permitted"])
        self.assertIn(b"* 2 EXISTS", seen)
        self.ok(a, "CREATE Kept")
        self.ok(a, "COPY 2 Kept")
        c = self.client(user, pw)
        sel = self.ok(c, "SELECT Kept")
        self.assertIn(b"* FLAGS (" + SYS + b" Appended)", sel)

    def test_readonly_view_announces_with_empty_permanentflags(self):
        user, pw, _ = self.inbox(1)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "EXAMINE INBOX")
        self.ok(b, "SELECT INBOX")
        self.ok(b, "STORE 1 +FLAGS (Seenby)")
        self.assertEqual(self.ok(a, "NOOP"), [
            b"* FLAGS (" + SYS + b" Seenby)",
            b"* OK [PERMANENTFLAGS ()] Read-only mailbox",
            b"* 1 FETCH (UID 1 FLAGS (Seenby))"])


class ManyKeywordsTest(ViewTest):
    # Beyond the default max-keywords (200): FLAGS lines of any length.
    server_args = ("--max-keywords", "1000")

    def test_select_lists_every_keyword(self):
        user, pw, _ = self.inbox(1)
        a = self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        names = ["keyword_number_%04d" % i for i in range(400)]
        for i in range(0, 400, 50):
            self.ok(a, "STORE 1 +FLAGS.SILENT (%s)" % " ".join(names[i:i + 50]))
        b = self.client(user, pw)
        sel = self.ok(b, "SELECT INBOX")
        flags = [l for l in sel if l.startswith(b"* FLAGS ")]
        self.assertEqual(len(flags), 1)
        got = flags[0][len(b"* FLAGS ("):-1].split()
        self.assertEqual(got[:5], SYS.split())
        self.assertEqual(sorted(got[5:]), [n.encode() for n in names])
        perm = [l for l in sel if b"PERMANENTFLAGS" in l][0]
        self.assertTrue(perm.endswith(b" keyword_number_0399 \\*)] Flags permitted"), perm[-80:])


class RecentTest(ViewTest):
    def test_examine_counts_recent_without_claiming(self):
        user, pw, _ = self.inbox(2)
        a = self.client(user, pw)
        self.assertIn(b"* 2 RECENT", self.ok(a, "EXAMINE INBOX"))
        self.assertIn(b"* 2 RECENT", self.ok(a, "EXAMINE INBOX"), "EXAMINE claims nothing")
        b = self.client(user, pw)
        self.assertIn(b"* 2 RECENT", self.ok(b, "SELECT INBOX"))
        self.assertIn(b"* 0 RECENT", self.ok(a, "EXAMINE INBOX"), "SELECT claimed them")
        smtp_send(self.server, user, pw, simple_message("third"))
        self.assertEqual(self.ok(a, "NOOP"), [b"* 3 EXISTS", b"* 1 RECENT"])
        self.assertEqual(self.ok(b, "NOOP"), [b"* 3 EXISTS", b"* 3 RECENT"])


class CondstoreEnableTest(ViewTest):
    def highest(self, imap):
        lines = self.ok(imap, "STATUS INBOX (HIGHESTMODSEQ)")
        return int(re.search(rb"HIGHESTMODSEQ (\d+)", lines[-1]).group(1))

    def test_store_unchangedsince_reports_highestmodseq_once(self):
        user, pw, _ = self.inbox(2)
        probe = self.client(user, pw)
        a = self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        highest = self.highest(probe)
        untagged = self.ok(a, "STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % highest)
        self.assertEqual(untagged[0], b"* OK [HIGHESTMODSEQ %d] Highest" % highest)
        self.assertEqual(len(untagged), 2, untagged)
        self.assertRegex(untagged[1], rb"^\* 1 FETCH \(FLAGS \(\\Seen \\Recent\) MODSEQ \(\d+\)\)$")
        again = self.ok(a, "STORE 2 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % (highest + 5))
        self.assertFalse([l for l in again if b"HIGHESTMODSEQ" in l], again)

    def test_fetch_modseq_changedsince_and_search_modseq(self):
        user, pw, _ = self.inbox(2)
        probe = self.client(user, pw)
        for command in ("FETCH 1 (FLAGS MODSEQ)", "FETCH 1:* (FLAGS) (CHANGEDSINCE 1)",
                        "SEARCH MODSEQ 1"):
            a = self.client(user, pw)
            self.ok(a, "SELECT INBOX")
            highest = self.highest(probe)
            untagged = self.ok(a, command)
            self.assertEqual(untagged[0], b"* OK [HIGHESTMODSEQ %d] Highest" % highest, command)
            self.assertFalse([l for l in untagged[1:] if b"HIGHESTMODSEQ" in l], command)
            again = self.ok(a, command)
            self.assertFalse([l for l in again if b"HIGHESTMODSEQ" in l], command)

    def test_not_sent_without_a_selected_mailbox_or_when_on(self):
        user, pw, _ = self.inbox(1)
        a = self.client(user, pw)
        self.assertEqual(self.ok(a, "ENABLE CONDSTORE"), [b"* ENABLED CONDSTORE"])
        sel = self.ok(a, "SELECT INBOX")
        self.assertEqual(len([l for l in sel if b"HIGHESTMODSEQ" in l]), 1)


class ExternalChangeTest(ViewTest):
    def test_cli_delete_reaches_an_idling_client(self):
        user, pw, ids = self.inbox(2)
        a = self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        a.send(b"i IDLE\r\n")
        self.assertTrue(a.line().startswith(b"+"))
        self.server.cli_ok("message", "del", ids[0])
        # The server polls for other processes' commits twice a second.
        self.assertEqual(a.line(timeout=5), b"* 1 EXPUNGE")
        a.send(b"DONE\r\n")
        _, tagged = a.until_tagged("i")
        self.assertEqual(status_of(tagged), "OK")
        self.assertEqual(self.ok(a, "FETCH 1:* (UID)"), [b"* 1 FETCH (UID 2)"])

    def test_cli_delete_then_fetch_without_waiting(self):
        user, pw, ids = self.inbox(3)
        a = self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        self.server.cli_ok("message", "del", ids[1])
        # FETCH may not announce the expunge; it answers for the others
        # and says so (RFC 2180 §4.1.2, as Dovecot); the next NOOP tells.
        fetched, tagged = a.command("FETCH 1:* (UID)")
        self.assertEqual(fetched, [b"* 1 FETCH (UID 1)", b"* 3 FETCH (UID 3)"])
        self.assertRegex(tagged, rb"^r\d+ NO \[EXPUNGEISSUED\] ")
        self.assertEqual(self.ok(a, "NOOP"), [b"* 2 EXPUNGE"])
        self.assertEqual(self.ok(a, "FETCH 1:* (UID)"), [b"* 1 FETCH (UID 1)", b"* 2 FETCH (UID 3)"])


class DeletedMailboxTest(ViewTest):
    def test_selected_mailbox_deleted_by_another_session(self):
        user, pw, _ = self.inbox(0)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "CREATE Doomed")
        for i in range(3):
            msg = simple_message("d%d" % i)
            a.send(b"x APPEND Doomed {%d}\r\n" % len(msg))
            self.assertTrue(a.line().startswith(b"+"))
            a.send(msg + b"\r\n")
            self.assertEqual(status_of(a.until_tagged("x")[1]), "OK")
        self.ok(a, "SELECT Doomed")
        self.ok(b, "DELETE Doomed")
        fetched, tagged = a.command("FETCH 1:* (UID)")
        self.assertEqual(fetched, [])
        self.assertRegex(tagged, rb"^r\d+ NO \[EXPUNGEISSUED\] ")
        self.assertEqual(self.ok(a, "NOOP"), [b"* 1 EXPUNGE"] * 3)
        self.assertEqual(self.ok(a, "NOOP"), [])
        self.assertIn(b"* 0 EXISTS", self.ok(a, "SELECT INBOX"))


class NumberingTest(ViewTest):
    def test_copy_uses_the_numbers_the_client_had(self):
        user, pw, _ = self.inbox(3)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "CREATE Work")
        self.ok(a, "SELECT INBOX")
        self.ok(b, "SELECT INBOX")
        self.ok(b, "STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.ok(b, "EXPUNGE")
        untagged, tagged = a.command("COPY 2 Work")
        self.assertEqual(untagged, [], "no EXPUNGE before COPY's numbers are read")
        self.assertRegex(tagged, rb"^r\d+ OK \[COPYUID \d+ 2 1\] ")
        self.assertEqual(self.ok(a, "NOOP"), [b"* 1 EXPUNGE"])
        untagged, tagged = a.command("MOVE 1 Work")
        self.assertRegex(untagged[0], rb"^\* OK \[COPYUID \d+ 2 2\] ")
        self.assertEqual(untagged[1:], [b"* 1 EXPUNGE"])

    def test_copy_of_a_message_expunged_elsewhere_is_no(self):
        user, pw, _ = self.inbox(1)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        self.ok(b, "SELECT INBOX")
        self.ok(b, "STORE 1 +FLAGS.SILENT (\\Deleted)")
        self.ok(b, "EXPUNGE")
        _, tagged = a.command("COPY 1 Trash")
        self.assertRegex(tagged, rb"^r\d+ NO \[EXPUNGEISSUED\] ")
        _, tagged = a.command("STORE 1 +FLAGS (\\Seen)")
        self.assertRegex(tagged, rb"^r\d+ NO \[EXPUNGEISSUED\] ")
        self.assertEqual(self.ok(a, "NOOP"), [b"* 1 EXPUNGE"])

    def test_move_into_the_selected_mailbox_expunges_the_old_uid(self):
        user, pw, _ = self.inbox(1)
        a = self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        untagged = self.ok(a, "MOVE 1 INBOX")
        self.assertRegex(untagged[0], rb"^\* OK \[COPYUID \d+ 1 2\] ")
        self.assertIn(b"* 1 EXPUNGE", untagged)
        self.assertEqual(self.ok(a, "FETCH 1:* (UID)"), [b"* 1 FETCH (UID 2)"])


class IncrementalSyncTest(ViewTest):
    def test_interleaved_changes_end_equal_to_a_fresh_select(self):
        user, pw, _ = self.inbox(6)
        a, b = self.client(user, pw), self.client(user, pw)
        self.ok(a, "SELECT INBOX")
        self.ok(b, "SELECT INBOX")
        self.ok(b, "STORE 2 +FLAGS (\\Flagged kw1)")
        smtp_send(self.server, user, pw, simple_message("new1"))
        self.ok(b, "STORE 4 +FLAGS (\\Deleted)")
        self.ok(b, "STORE 5 +FLAGS (\\Seen)")
        self.ok(b, "EXPUNGE")
        self.ok(b, "STORE 1 FLAGS (kw2)")
        smtp_send(self.server, user, pw, simple_message("new2"))
        lines = self.ok(a, "NOOP")
        self.assertIn(b"* 4 EXPUNGE", lines)
        self.assertIn(b"* 7 EXISTS", lines)
        self.assertLess(lines.index(b"* 4 EXPUNGE"), lines.index(b"* 7 EXISTS"))
        fresh = self.client(user, pw)
        self.ok(fresh, "EXAMINE INBOX")
        self.assertEqual(self.flags_state(a), self.flags_state(fresh))
        state = self.flags_state(a)
        self.assertEqual(sorted(state), [1, 2, 3, 5, 6, 7, 8])
        self.assertEqual(state[1], {b"kw2"})
        self.assertEqual(state[2], {b"\\Flagged", b"kw1"})
        self.assertEqual(state[5], {b"\\Seen"})

    def test_many_sessions_idle_see_each_delivery_once(self):
        user, pw, _ = self.inbox(1)
        idlers = []
        for _ in range(8):
            c = self.client(user, pw)
            self.ok(c, "EXAMINE INBOX")
            c.send(b"i IDLE\r\n")
            self.assertTrue(c.line().startswith(b"+"))
            idlers.append(c)
        for n in range(2, 5):
            smtp_send(self.server, user, pw, simple_message("live%d" % n))
            for c in idlers:
                self.assertEqual(c.line(timeout=5), b"* %d EXISTS" % n)
                self.assertEqual(c.line(timeout=5), b"* %d RECENT" % n)
        for c in idlers:
            c.send(b"DONE\r\n")
            self.assertEqual(status_of(c.until_tagged("i")[1]), "OK")


if __name__ == "__main__":
    harness.main()

#!/usr/bin/env python3
"""`*` in a message set is the last message of the view as the client knew
it when it sent the command (RFC 3501 §6.4.7 and §6.4.8, RFC 9051: the
numbers are the client's). The server reports a message delivered since
the client's last command with `* n EXISTS` before that command's own
replies; `*` must not take in that message, which the client could not
have meant. Dovecot announces new messages only after the command, so
there its sets cannot name them either.

Each test: session A selects INBOX with two messages (UIDs 1 and 2), a
third arrives over SMTP, and A's next command uses `*`. Its exact reply is
checked: the EXISTS for the third message, then the command acting on the
first two only. Before the fix, COPY 1:* copied three messages.
"""

import re
import unittest

import harness
from imap_helpers import RawIMAP, new_inbox, simple_message, smtp_send, status_of

UIDVALIDITY_RE = re.compile(rb"^\* OK \[UIDVALIDITY (\d+)\]")


class StarTest(harness.TestCase):
    def setUp(self):
        super().setUp()
        self.user, self.pw = new_inbox(self.server)
        for i in range(2):
            smtp_send(self.server, self.user, self.pw, simple_message("old %d" % i))
        self.imap = RawIMAP(self.server.addr("imap"))
        self.addCleanup(self.imap.close)
        self.assertTrue(self.imap.greeting().startswith(b"* OK"))
        self.imap.login(self.user, self.pw)
        untagged, tagged = self.imap.command("CREATE Work")
        self.assertEqual(status_of(tagged), "OK", tagged)
        untagged, tagged = self.imap.command("STATUS Work (UIDVALIDITY)")
        self.work_validity = int(re.search(rb"UIDVALIDITY (\d+)", untagged[0]).group(1))
        untagged, tagged = self.imap.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertIn(b"* 2 EXISTS", untagged)
        # Delivered after A's last command: A knows nothing of UID 3 yet.
        smtp_send(self.server, self.user, self.pw, simple_message("new"))

    def command(self, text, tag):
        untagged, tagged = self.imap.command(text, tag=tag)
        return untagged + [tagged]

    def test_copy_star_is_the_clients_last_message(self):
        self.assertEqual(self.command("COPY 1:* Work", "c1"), [
            b"* 3 EXISTS", b"* 3 RECENT",
            b"c1 OK [COPYUID %d 1:2 1:2] COPY completed" % self.work_validity])
        self.assertEqual(self.command("STATUS Work (MESSAGES)", "c2"), [
            b'* STATUS "Work" (MESSAGES 2)', b"c2 OK STATUS completed"])

    def test_uid_copy_star_is_the_clients_last_uid(self):
        self.assertEqual(self.command("UID COPY 2:* Work", "c1"), [
            b"* 3 EXISTS", b"* 3 RECENT",
            b"c1 OK [COPYUID %d 2 1] COPY completed" % self.work_validity])

    def test_move_star(self):
        self.assertEqual(self.command("MOVE 1:* Work", "c1"), [
            b"* 3 EXISTS", b"* 3 RECENT",
            b"* OK [COPYUID %d 1:2 1:2] Moved" % self.work_validity,
            b"* 1 EXPUNGE", b"* 1 EXPUNGE", b"c1 OK MOVE completed"])
        # The new message stays, now number 1.
        self.assertEqual(self.command("FETCH 1:* (UID)", "c2"), [
            b"* 1 FETCH (UID 3)", b"c2 OK FETCH completed"])

    def test_uid_move_star(self):
        self.assertEqual(self.command("UID MOVE 2:* Work", "c1"), [
            b"* 3 EXISTS", b"* 3 RECENT",
            b"* OK [COPYUID %d 2 1] Moved" % self.work_validity,
            b"* 2 EXPUNGE", b"c1 OK MOVE completed"])

    def test_fetch_and_search_star(self):
        self.assertEqual(self.command("FETCH 2:* (UID)", "c1"), [
            b"* 3 EXISTS", b"* 3 RECENT", b"* 2 FETCH (UID 2)", b"c1 OK FETCH completed"])
        # Now A knows message 3: "*" is 3.
        self.assertEqual(self.command("SEARCH 2:*", "c2"), [
            b"* SEARCH 2 3", b"c2 OK SEARCH completed"])
        smtp_send(self.server, self.user, self.pw, simple_message("newer"))
        self.assertEqual(self.command("UID SEARCH UID 3:*", "c3"), [
            b"* 4 EXISTS", b"* 4 RECENT", b"* SEARCH 3", b"c3 OK SEARCH completed"])


if __name__ == "__main__":
    harness.main()

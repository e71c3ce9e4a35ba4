#!/usr/bin/env python3
"""IMAP extensions on the real binary, raw commands and exact replies:
CONDSTORE and QRESYNC (RFC 7162), LIST-EXTENDED and LIST-STATUS (RFC 5258,
5819), UTF8=ACCEPT (RFC 6855), BINARY (RFC 3516) and ENABLE IMAP4rev2
(RFC 9051)."""

import re
import unittest

import harness
from imap_helpers import raw_login, new_inbox, simple_message, smtp_send, status_of


def modseq_of(line):
    m = re.search(rb"MODSEQ \((\d+)\)", line)
    return int(m.group(1)) if m else None


class ExtTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server()
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def session(self, n_messages=3, body=None):
        """A new inbox with n messages, logged in over raw IMAP."""
        user, pw = new_inbox(self.server)
        for i in range(n_messages):
            smtp_send(self.server, user, pw, body or simple_message("msg %d" % i))
        return raw_login(self.server, user, pw, self.addCleanup)

    def ok(self, imap, text):
        untagged, tagged = imap.command(text)
        self.assertEqual(status_of(tagged), "OK", (text, tagged))
        return untagged, tagged


class CondstoreTest(ExtTest):
    def test_capabilities_advertised(self):
        imap = self.session(0)
        untagged, _ = self.ok(imap, "CAPABILITY")
        caps = untagged[0].split()
        for cap in (b"CONDSTORE", b"QRESYNC", b"LIST-EXTENDED", b"LIST-STATUS",
                    b"UTF8=ACCEPT", b"BINARY", b"IMAP4rev2", b"ESEARCH"):
            self.assertIn(cap, caps)

    def test_store_unchangedsince_and_changedsince(self):
        imap = self.session(3)
        untagged, _ = self.ok(imap, "SELECT INBOX (CONDSTORE)")
        highest = [l for l in untagged if b"HIGHESTMODSEQ" in l]
        self.assertEqual(len(highest), 1)
        start = int(re.search(rb"HIGHESTMODSEQ (\d+)", highest[0]).group(1))
        untagged, _ = self.ok(imap, "STORE 1 +FLAGS (\\Seen)")
        first = modseq_of(untagged[0])
        self.assertGreater(first, start)
        # Message 2 is older than `first` only if unchanged since: store
        # conditionally against a modseq below its own.
        _, tagged = self.ok(imap, "STORE 1,2 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % (first - 1))
        self.assertIn(b"[MODIFIED 1]", tagged)
        untagged, _ = self.ok(imap, "FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % start)
        fetched = sorted(int(l.split()[1]) for l in untagged if b" FETCH " in l)
        self.assertEqual(fetched, [1, 2])
        for line in untagged:
            self.assertIsNotNone(modseq_of(line), line)
        untagged, _ = self.ok(imap, "STATUS INBOX (HIGHESTMODSEQ)")
        self.assertRegex(untagged[0], rb"HIGHESTMODSEQ \d+")

    def test_qresync_vanished(self):
        imap = self.session(4)
        untagged, _ = self.ok(imap, "ENABLE QRESYNC")
        self.assertEqual(untagged, [b"* ENABLED CONDSTORE QRESYNC"])
        untagged, _ = self.ok(imap, "SELECT INBOX")
        uidvalidity = int(re.search(rb"UIDVALIDITY (\d+)",
                                    b"".join(l for l in untagged if b"UIDVALIDITY" in l)).group(1))
        before = int(re.search(rb"HIGHESTMODSEQ (\d+)",
                               b"".join(l for l in untagged if b"HIGHESTMODSEQ" in l)).group(1))
        self.ok(imap, "STORE 2 +FLAGS.SILENT (\\Deleted)")
        untagged, _ = self.ok(imap, "EXPUNGE")
        self.assertEqual(untagged, [b"* VANISHED 2"], "QRESYNC reports VANISHED, not EXPUNGE")
        self.ok(imap, "UID STORE 3 +FLAGS (\\Flagged)")
        untagged, _ = self.ok(imap, "UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d VANISHED)" % before)
        self.assertEqual(untagged[0], b"* VANISHED (EARLIER) 2")
        self.assertTrue(any(b"UID 3" in l for l in untagged[1:]), untagged)
        # Reselecting with the client's state: what vanished and what changed.
        untagged, _ = self.ok(imap, "SELECT INBOX (QRESYNC (%d %d))" % (uidvalidity, before))
        self.assertEqual(untagged[0], b"* OK [CLOSED] Previous mailbox closed")
        self.assertIn(b"* VANISHED (EARLIER) 2", untagged)
        self.assertTrue(any(b"FETCH (UID 3" in l and b"\\Flagged" in l for l in untagged))

    def test_qresync_needs_enable(self):
        imap = self.session(1)
        _, tagged = imap.command("SELECT INBOX (QRESYNC (1 1))")
        self.assertEqual(status_of(tagged), "BAD")


class ListExtendedTest(ExtTest):
    def test_subscribed_recursivematch(self):
        imap = self.session(0)
        # CREATE does not subscribe (RFC 3501 §6.3.6; issue 9 §2).
        self.ok(imap, "CREATE Projects/Alpha")
        self.ok(imap, "SUBSCRIBE Projects/Alpha")
        self.ok(imap, "SUBSCRIBE Gone")
        untagged, _ = self.ok(imap, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        lines = {re.search(rb'"/" ("[^"]*")', l).group(1): l for l in untagged}
        self.assertIn(b'("CHILDINFO" ("SUBSCRIBED"))', lines[b'"Projects"'])
        # Under "*" the subscribed child is listed itself, so the parent's
        # CHILDINFO is redundant and suppressed (RFC 5258 §3.5).
        untagged, _ = self.ok(imap, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "*"')
        lines = {re.search(rb'"/" ("[^"]*")', l).group(1): l for l in untagged}
        self.assertIn(b"\\Subscribed", lines[b'"Projects/Alpha"'])
        self.assertIn(b"\\NonExistent", lines[b'"Gone"'])
        self.assertIn(b"\\Sent", lines[b'"Sent"'])

    def test_return_status_and_patterns(self):
        imap = self.session(2)
        untagged, _ = self.ok(imap, 'LIST "" ("INBOX" "Tra*") RETURN (CHILDREN STATUS (MESSAGES UNSEEN))')
        self.assertEqual(untagged, [
            b'* LIST (\\HasNoChildren) "/" "INBOX"',
            b'* STATUS "INBOX" (MESSAGES 2 UNSEEN 2)',
            b'* LIST (\\HasNoChildren \\Trash) "/" "Trash"',
            b'* STATUS "Trash" (MESSAGES 0 UNSEEN 0)',
        ])

    def test_special_use_selection(self):
        imap = self.session(0)
        untagged, _ = self.ok(imap, 'LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE)')
        names = sorted(l.split(b'"/" ')[1] for l in untagged)
        self.assertEqual(names, [b'"Drafts"', b'"Junk"', b'"Sent"', b'"Trash"'])

    def test_recursivematch_alone_is_bad(self):
        imap = self.session(0)
        _, tagged = imap.command('LIST (RECURSIVEMATCH) "" "*"')
        self.assertEqual(status_of(tagged), "BAD")


class Utf8AndRev2Test(ExtTest):
    def test_utf8_accept_names(self):
        imap = self.session(0)
        self.ok(imap, "CREATE R&AOk-sum&AOk-")
        untagged, _ = self.ok(imap, 'LIST "" "R*"')
        self.assertEqual(untagged, [b'* LIST (\\HasNoChildren) "/" "R&AOk-sum&AOk-"'])
        untagged, _ = self.ok(imap, "ENABLE UTF8=ACCEPT")
        self.assertEqual(untagged, [b"* ENABLED UTF8=ACCEPT"])
        untagged, _ = self.ok(imap, 'LIST "" "R*"')
        self.assertEqual(untagged, ['* LIST (\\HasNoChildren) "/" "Résumé"'.encode()])
        self.ok(imap, 'CREATE "Ünïcode"')
        untagged, _ = self.ok(imap, 'STATUS "Ünïcode" (MESSAGES)')
        self.assertEqual(untagged, ['* STATUS "Ünïcode" (MESSAGES 0)'.encode()])

    def test_utf8_append(self):
        imap = self.session(0)
        self.ok(imap, "ENABLE UTF8=ACCEPT")
        msg = "Subject: café\r\n\r\nhi\r\n".encode()
        _, tagged = imap.command(b"APPEND INBOX UTF8 (~{%d+}\r\n" % len(msg) + msg + b")")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertIn(b"APPENDUID", tagged)

    def test_rev2_rules(self):
        imap = self.session(2)
        untagged, _ = self.ok(imap, "ENABLE IMAP4rev2")
        self.assertEqual(untagged, [b"* ENABLED IMAP4rev2"])
        untagged, _ = self.ok(imap, "SELECT INBOX")
        self.assertIn(b"* 2 EXISTS", untagged)
        self.assertFalse(any(l.endswith(b" RECENT") for l in untagged), untagged)
        self.assertIn(b'* LIST () "/" "INBOX"', untagged)
        untagged, tagged = self.ok(imap, "SEARCH ALL")
        self.assertEqual(untagged, [b'* ESEARCH (TAG "%s") ALL 1:2' % tagged.split()[0]])
        untagged, _ = self.ok(imap, "FETCH 1 FLAGS")
        self.assertEqual(untagged, [b"* 1 FETCH (FLAGS ())"], "no \\Recent in rev2")


class BinaryTest(ExtTest):
    MSG = (b"Subject: binary\r\nMIME-Version: 1.0\r\n"
           b"Content-Type: multipart/mixed; boundary=B\r\n\r\n"
           b"--B\r\nContent-Type: text/plain; charset=utf-8\r\n"
           b"Content-Transfer-Encoding: quoted-printable\r\n\r\ncaf=C3=A9 =3D ok\r\n"
           b"--B\r\nContent-Type: application/octet-stream\r\n"
           b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQ=\r\n"
           b"--B\r\nContent-Type: text/plain\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\n"
           b"begin\r\n--B--\r\n")

    def test_decoded_parts(self):
        imap = self.session(1, body=self.MSG)
        self.ok(imap, "SELECT INBOX")
        untagged, _ = self.ok(imap, "FETCH 1 (BINARY.PEEK[1] BINARY.SIZE[2])")
        self.assertEqual(untagged, ["* 1 FETCH (BINARY[1] {10}\r\ncafé = ok BINARY.SIZE[2] 5)".encode()])
        untagged, _ = self.ok(imap, "FETCH 1 BINARY.PEEK[2]")
        self.assertEqual(untagged, [b"* 1 FETCH (BINARY[2] ~{5}\r\n\x00\x01\x02\x03\x04)"])
        untagged, _ = self.ok(imap, "FETCH 1 (BINARY.PEEK[2]<1.2>)")
        self.assertEqual(untagged, [b"* 1 FETCH (BINARY[2]<1> {2}\r\n\x01\x02)"])
        untagged, _ = self.ok(imap, "FETCH 1 FLAGS")
        self.assertNotIn(b"\\Seen", untagged[0], "PEEK leaves \\Seen alone")

    def test_unknown_encoding(self):
        imap = self.session(1, body=self.MSG)
        self.ok(imap, "SELECT INBOX")
        _, tagged = imap.command("FETCH 1 BINARY.PEEK[3]")
        self.assertEqual(status_of(tagged), "NO")
        self.assertIn(b"[UNKNOWN-CTE]", tagged)


class EdgeCaseTest(ExtTest):
    """Found by trying other clients (offlineimap, s-nail, getmail)."""

    def test_delete_selected_mailbox_refused(self):
        imap = self.session(0)
        self.ok(imap, "CREATE doomed")
        self.ok(imap, "SELECT doomed")
        _, tagged = imap.command("DELETE doomed")
        self.assertEqual(status_of(tagged), "NO")
        self.assertIn(b"[INUSE]", tagged)
        self.ok(imap, "NOOP")
        self.ok(imap, "FETCH 1:* FLAGS")   # still selected
        self.ok(imap, "UNSELECT")
        self.ok(imap, "DELETE doomed")

    def test_append_line_ends_as_smtp(self):
        imap = self.session(0)
        raw = b"Subject: rawlf\n\nbefore\n.\nafter\rdot\n"
        _, tagged = imap.command(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.ok(imap, "SELECT INBOX")
        untagged, _ = self.ok(imap, "FETCH 1 (RFC822.SIZE BODY.PEEK[])")
        want = b"Subject: rawlf\r\n\r\nbefore\r\n.\r\nafter\rdot\r\n"
        self.assertEqual(untagged, [b"* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n%s)"
                                    % (len(want), len(want), want)])

    def test_nul_only_in_literal8(self):
        imap = self.session(0)
        msg = b"Subject: nul\r\n\r\nab\x00c\r\n"
        _, tagged = imap.command(b"APPEND INBOX {%d+}\r\n" % len(msg) + msg)
        self.assertEqual(status_of(tagged), "BAD")
        _, tagged = imap.command(b"APPEND INBOX ~{%d+}\r\n" % len(msg) + msg)
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.ok(imap, "SELECT INBOX")
        untagged, _ = self.ok(imap, "FETCH 1 BODY.PEEK[TEXT]")
        self.assertEqual(untagged, [b"* 1 FETCH (BODY[TEXT] {6}\r\nab\x80c\r\n)"])

    def test_numbers_on_an_empty_mailbox(self):
        imap = self.session(0)
        self.ok(imap, "SELECT Drafts")
        self.ok(imap, "FETCH 1:* (FLAGS)")
        for cmd in ("FETCH 1 (FLAGS)", "STORE 3 +FLAGS (\\Seen)", "COPY 2 Trash"):
            _, tagged = imap.command(cmd)
            self.assertEqual(status_of(tagged), "BAD", cmd)

    def test_cli_list_decodes_subjects(self):
        user, pw = new_inbox(self.server)
        smtp_send(self.server, user, pw, b"Subject: =?utf-8?B?w7xiZXI=?= mail\r\n\r\nx\r\n")
        out = self.server.cli_ok("message", "list", "--inbox", user).stdout.decode()
        self.assertIn("\u00fcber mail", out)


class EncapsulatedMessageTest(ExtTest):
    """BODY[n.HEADER], [n.HEADER.FIELDS (..)], [n.HEADER.FIELDS.NOT (..)] and
    [n.TEXT] of a message/rfc822 part are those of the message it holds, at
    every depth (RFC 3501 §6.4.5); [n.MIME] is the part's own header. The
    expected bytes are Dovecot 2.3.19's answers to the same message."""

    NESTED = (
        b"From: Outer <outer@example.test>\r\n"
        b"Subject: outer\r\n"
        b"MIME-Version: 1.0\r\n"
        b"Content-Type: multipart/mixed; boundary=b1\r\n"
        b"\r\n"
        b"--b1\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"first part\r\n"
        b"--b1\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"Content-Description: forwarded twice\r\n"
        b"\r\n"
        b"From: Middle <mid@example.test>\r\n"
        b"Subject: middle\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n"
        b"From: Deep <deep@example.test>\r\n"
        b"To: someone@example.test\r\n"
        b"Subject: deepest\r\n"
        b"\r\n"
        b"deep body\r\n"
        b"--b1\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n"
        b"Subject: inner multi\r\n"
        b"Content-Type: multipart/mixed; boundary=b2\r\n"
        b"\r\n"
        b"--b2\r\n"
        b"Content-Type: text/plain\r\n"
        b"\r\n"
        b"b2 text\r\n"
        b"--b2\r\n"
        b"Content-Type: message/rfc822\r\n"
        b"\r\n"
        b"Subject: in b2\r\n"
        b"X-Extra: yes\r\n"
        b"\r\n"
        b"b2 body\r\n"
        b"--b2--\r\n"
        b"--b1--\r\n")

    MIDDLE_HDR = (b"From: Middle <mid@example.test>\r\nSubject: middle\r\n"
                  b"Content-Type: message/rfc822\r\n\r\n")
    DEEP_HDR = (b"From: Deep <deep@example.test>\r\nTo: someone@example.test\r\n"
                b"Subject: deepest\r\n\r\n")

    WANT = [
        ("2.HEADER", MIDDLE_HDR),
        ("2.TEXT", DEEP_HDR + b"deep body"),
        ("2.MIME", b"Content-Type: message/rfc822\r\nContent-Description: forwarded twice\r\n\r\n"),
        ("2.1", DEEP_HDR + b"deep body"),
        ("2.1.HEADER", DEEP_HDR),
        ("2.1.TEXT", b"deep body"),
        ("2.1.MIME", MIDDLE_HDR),
        ("2.1.1", b"deep body"),
        ("2.1.1.MIME", DEEP_HDR),
        ("3.HEADER", b"Subject: inner multi\r\nContent-Type: multipart/mixed; boundary=b2\r\n\r\n"),
        ("3.2.HEADER", b"Subject: in b2\r\nX-Extra: yes\r\n\r\n"),
        ("3.2.TEXT", b"b2 body"),
        ("3.2.MIME", b"Content-Type: message/rfc822\r\n\r\n"),
        ("3.2.1", b"b2 body"),
        ("1.MIME", b"Content-Type: text/plain\r\n\r\n"),
        # HEADER/TEXT of a part that is not message/rfc822, and parts that
        # do not exist, are empty.
        ("2.1.1.HEADER", b""),
        ("3.1.HEADER", b""),
        ("1.HEADER", b""),
        ("1.TEXT", b""),
        ("9", b""),
        ("9.HEADER", b""),
    ]

    def fetch(self, imap, items):
        untagged, _ = self.ok(imap, "FETCH 1 (%s)" % items)
        self.assertEqual(len(untagged), 1, untagged)
        return untagged[0]

    def test_header_and_text_at_every_depth(self):
        imap = self.session(1, body=self.NESTED)
        self.ok(imap, "EXAMINE INBOX")
        for sec, want in self.WANT:
            self.assertEqual(self.fetch(imap, "BODY.PEEK[%s]" % sec),
                             b"* 1 FETCH (BODY[%s] {%d}\r\n%s)" % (sec.encode(), len(want), want),
                             sec)

    def test_fields_and_partials(self):
        imap = self.session(1, body=self.NESTED)
        self.ok(imap, "EXAMINE INBOX")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[2.HEADER.FIELDS (Subject From)]"),
                         b"* 1 FETCH (BODY[2.HEADER.FIELDS (Subject From)] {52}\r\n"
                         b"From: Middle <mid@example.test>\r\nSubject: middle\r\n\r\n)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[2.1.HEADER.FIELDS (To)]"),
                         b"* 1 FETCH (BODY[2.1.HEADER.FIELDS (To)] {28}\r\n"
                         b"To: someone@example.test\r\n\r\n)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[3.2.HEADER.FIELDS.NOT (Subject)]"),
                         b"* 1 FETCH (BODY[3.2.HEADER.FIELDS.NOT (Subject)] {16}\r\n"
                         b"X-Extra: yes\r\n\r\n)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[1.HEADER.FIELDS (Subject)]"),
                         b"* 1 FETCH (BODY[1.HEADER.FIELDS (Subject)] {0}\r\n)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[2.1.HEADER]<5.10>"),
                         b"* 1 FETCH (BODY[2.1.HEADER]<5> {10}\r\n Deep <dee)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[3.2.TEXT]<2.100>"),
                         b"* 1 FETCH (BODY[3.2.TEXT]<2> {5}\r\n body)")
        self.assertEqual(self.fetch(imap, "BODY.PEEK[2.TEXT]<87.5>"),
                         b"* 1 FETCH (BODY[2.TEXT]<87> {0}\r\n)")

    def test_without_peek_sets_seen(self):
        imap = self.session(1, body=self.NESTED)
        self.ok(imap, "SELECT INBOX")
        self.assertEqual(self.fetch(imap, "BODY[2.1.TEXT]"),
                         b"* 1 FETCH (BODY[2.1.TEXT] {9}\r\ndeep body FLAGS (\\Seen \\Recent))")
        self.assertEqual(self.fetch(imap, "UID BODY[3.2.HEADER]"),
                         b"* 1 FETCH (UID 1 BODY[3.2.HEADER] {32}\r\n"
                         b"Subject: in b2\r\nX-Extra: yes\r\n\r\n)")

    def test_message_that_is_message_rfc822(self):
        msg = (b"Subject: top\r\nContent-Type: message/rfc822\r\n\r\n"
               b"Subject: enclosed\r\nFrom: e@example.test\r\n\r\nenclosed body\r\n")
        imap = self.session(1, body=msg)
        self.ok(imap, "EXAMINE INBOX")
        want = [("1.HEADER", b"Subject: enclosed\r\nFrom: e@example.test\r\n\r\n"),
                ("1.TEXT", b"enclosed body\r\n"),
                ("1", b"Subject: enclosed\r\nFrom: e@example.test\r\n\r\nenclosed body\r\n"),
                ("1.1", b"enclosed body\r\n"),
                ("1.1.HEADER", b"")]
        for sec, body in want:
            self.assertEqual(self.fetch(imap, "BODY.PEEK[%s]" % sec),
                             b"* 1 FETCH (BODY[%s] {%d}\r\n%s)" % (sec.encode(), len(body), body),
                             sec)
        line = self.fetch(imap, "BODY.PEEK[HEADER.FIELDS (Subject)]")
        self.assertEqual(line, b"* 1 FETCH (BODY[HEADER.FIELDS (Subject)] {16}\r\n"
                               b"Subject: top\r\n\r\n)")


if __name__ == "__main__":
    unittest.main()

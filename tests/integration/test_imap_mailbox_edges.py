#!/usr/bin/env python3
"""IMAP mailbox and APPEND edges of issue 9 §2, over raw IMAP with the
exact replies: APPEND of a literal8 stored octet for octet (RFC 3516),
mailbox names that are not modified UTF-7 (RFC 3501 §5.1.3), subscriptions
independent of existence (RFC 3501 §6.3.6, §6.3.9, RFC 5258) and
MULTIAPPEND (RFC 3502) with its APPENDUID set (RFC 4315)."""

import re
import socket
import unittest

import harness
from harness import CRLF
from imap_helpers import raw_login, new_inbox, status_of

# The mailboxes every inbox starts with, subscribed, as LIST (SUBSCRIBED)
# shows them, in the order LIST sends them.
DEFAULTS_SUBSCRIBED = [
    b'* LIST (\\Subscribed \\HasNoChildren \\Drafts) "/" "Drafts"',
    b'* LIST (\\Subscribed \\HasNoChildren) "/" "INBOX"',
    b'* LIST (\\Subscribed \\HasNoChildren \\Junk) "/" "Junk"',
    b'* LIST (\\Subscribed \\HasNoChildren \\Sent) "/" "Sent"',
    b'* LIST (\\Subscribed \\HasNoChildren \\Trash) "/" "Trash"',
]
DEFAULTS_LSUB = [b'* LSUB () "/" "%s"' % n for n in
                 (b"Drafts", b"INBOX", b"Junk", b"Sent", b"Trash")]


class EdgeTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.server = harness.Server()
        cls.server.__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.server.__exit__(None, None, None)

    def session(self, user=None, pw=None):
        """Logged in over raw IMAP, to a new inbox unless one is given."""
        if user is None:
            user, pw = new_inbox(self.server)
            self.user, self.pw = user, pw
        return raw_login(self.server, user, pw, self.addCleanup)

    def ok(self, imap, text):
        untagged, tagged = imap.command(text)
        self.assertEqual(status_of(tagged), "OK", (text, tagged))
        return untagged, tagged

    def status(self, imap, box, items="MESSAGES UIDNEXT"):
        untagged, _ = self.ok(imap, "STATUS %s (%s)" % (box, items))
        self.assertEqual(len(untagged), 1, untagged)
        vals = re.findall(rb"([A-Z]+) (\d+)", untagged[0])
        return {k.decode(): int(v) for k, v in vals}


# ---------------------------------------------------------------------------
# 1. APPEND with a literal8


class Literal8Test(EdgeTest):
    # Bare LF, CRLF and a lone CR mixed, no final line end: a literal8 is
    # stored as sent, so every one of these octets comes back.
    RAW = b"Subject: raw8\nX-Mixed: a\r\n\nline one\nline two\r\nlone\rcr\nend"

    def test_literal8_stored_exactly(self):
        imap = self.session()
        _, tagged = imap.command(b"APPEND INBOX ~{%d+}\r\n" % len(self.RAW) + self.RAW)
        self.assertRegex(tagged, rb"^r\d+ OK \[APPENDUID \d+ 1\] APPEND completed$")
        self.ok(imap, "SELECT INBOX")
        n = len(self.RAW)
        untagged, _ = self.ok(imap, "FETCH 1 (RFC822.SIZE BINARY.SIZE[])")
        self.assertEqual(untagged, [b"* 1 FETCH (RFC822.SIZE %d BINARY.SIZE[] %d)" % (n, n)])
        untagged, _ = self.ok(imap, "FETCH 1 BINARY.PEEK[]")
        self.assertEqual(untagged, [b"* 1 FETCH (BINARY[] {%d}\r\n%s)" % (n, self.RAW)])
        untagged, _ = self.ok(imap, "FETCH 1 BODY.PEEK[]")
        self.assertEqual(untagged, [b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (n, self.RAW)])
        # The CLI reads the same octets out of the store.
        ids = self.server.message_ids(self.user)
        self.assertEqual(self.server.message_bytes(ids[-1]), self.RAW)

    def test_ordinary_literal_still_normalised(self):
        imap = self.session()
        _, tagged = imap.command(b"APPEND INBOX {%d+}\r\n" % len(self.RAW) + self.RAW)
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.ok(imap, "SELECT INBOX")
        # Bare LFs become CRLF as in SMTP; no line end is added at the end.
        want = b"Subject: raw8\r\nX-Mixed: a\r\n\r\nline one\r\nline two\r\nlone\rcr\r\nend"
        untagged, _ = self.ok(imap, "FETCH 1 (RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(untagged, [b"* 1 FETCH (RFC822.SIZE %d BODY[] {%d}\r\n%s)"
                                    % (len(want), len(want), want)])

    def test_literal8_with_nul(self):
        imap = self.session()
        raw = b"Subject: nul8\n\nab\x00c\nd"
        _, tagged = imap.command(b"APPEND INBOX {%d+}\r\n" % len(raw) + raw)
        self.assertEqual(tagged.split(b" ", 2)[1:], [b"BAD", b"NUL in a literal; use a literal8 (~{n})"])
        _, tagged = imap.command(b"APPEND INBOX ~{%d+}\r\n" % len(raw) + raw)
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.ok(imap, "SELECT INBOX")
        self.assertEqual(self.ok(imap, "FETCH 1 (BINARY.SIZE[] BINARY.PEEK[])")[0],
                         [b"* 1 FETCH (BINARY.SIZE[] %d BINARY[] ~{%d}\r\n%s)"
                          % (len(raw), len(raw), raw)])
        # BODY[] cannot carry NUL (RFC 3501 §4.3): it goes out as 0x80.
        self.assertEqual(self.ok(imap, "FETCH 1 BODY.PEEK[]")[0],
                         [b"* 1 FETCH (BODY[] {%d}\r\n%s)" % (len(raw), raw.replace(b"\x00", b"\x80"))])

    def test_sync_literal8(self):
        imap = self.session()
        imap.send(b"a1 APPEND INBOX (\\Seen) ~{%d}\r\n" % len(self.RAW))
        self.assertTrue(imap.line().startswith(b"+ "))
        imap.send(self.RAW + CRLF)
        _, tagged = imap.until_tagged("a1")
        self.assertEqual(tagged, b"a1 OK [APPENDUID %d 1] APPEND completed"
                         % self.status(imap, "INBOX", "UIDVALIDITY")["UIDVALIDITY"])
        self.ok(imap, "SELECT INBOX")
        self.assertEqual(self.ok(imap, "FETCH 1 (FLAGS BINARY.SIZE[])")[0],
                         [b"* 1 FETCH (FLAGS (\\Seen \\Recent) BINARY.SIZE[] %d)" % len(self.RAW)])


# ---------------------------------------------------------------------------
# 2. Names that are not modified UTF-7


INVALID = ["a&b", "&Jjo", "&AGE-", "&AOk-&AOk-", "&2D0-", "&AAA-"]
CANNOT = b"NO [CANNOT] Mailbox name is not valid mUTF-7"


class Mutf7Test(EdgeTest):
    def assertCannot(self, imap, text):
        _, tagged = imap.command(text)
        self.assertEqual(tagged.split(b" ", 1)[1], CANNOT, text)

    def test_invalid_names_are_no_cannot(self):
        imap = self.session()
        self.ok(imap, "CREATE Box")
        for name in INVALID:
            q = '"%s"' % name
            for cmd in ("SELECT %s", "EXAMINE %s", "CREATE %s", "DELETE %s",
                        "STATUS %s (MESSAGES)", "SUBSCRIBE %s", "UNSUBSCRIBE %s",
                        "RENAME %s Other", "RENAME Box %s"):
                self.assertCannot(imap, cmd % q)
            msg = b"Subject: x\r\n\r\ny\r\n"
            self.assertCannot(imap, b'APPEND %s {%d+}\r\n%s' % (q.encode(), len(msg), msg))
        # Nothing was made, renamed or subscribed on the way.
        untagged, _ = self.ok(imap, 'LIST "" "*"')
        self.assertEqual([l.rsplit(b" ", 1)[1] for l in untagged],
                         [b'"Box"', b'"Drafts"', b'"INBOX"', b'"Junk"', b'"Sent"', b'"Trash"'])
        self.assertEqual(self.ok(imap, 'LSUB "" "*"')[0], DEFAULTS_LSUB)
        # Still a session in good standing: these were NO, not BAD.
        self.ok(imap, "SELECT Box")

    def test_eight_bit_names_without_utf8_accept(self):
        imap = self.session()
        # Not UTF-8 at all: names nothing.
        self.assertCannot(imap, b'CREATE "\xff\xfe"')
        self.assertCannot(imap, b'SELECT "caf\xe9"')
        # UTF-8 sent raw (as some clients do without ENABLE): taken, and
        # listed back in modified UTF-7.
        self.ok(imap, b'CREATE "caf\xc3\xa9"')
        untagged, _ = self.ok(imap, 'LIST "" "caf*"')
        self.assertEqual(untagged, [b'* LIST (\\HasNoChildren) "/" "caf&AOk-"'])
        # COPY and MOVE to such a name: NO [CANNOT] too.
        self.ok(imap, "SELECT INBOX")
        self.assertCannot(imap, b'COPY 1:* "\xff"')
        self.assertCannot(imap, 'MOVE 1:* "a&b"')

    def test_eight_bit_names_in_literals(self):
        # A literal carries any octets; as a mailbox name they are checked
        # as UTF-8 the same way, before ENABLE UTF8=ACCEPT too.
        imap = self.session()
        for bad in (b"caf\xc3", b"\xff\xfe", b"\xed\xa0\x80", b"\xc0\xaf"):
            for verb in (b"CREATE", b"SELECT", b"SUBSCRIBE"):
                self.assertCannot(imap, verb + b" {%d+}\r\n" % len(bad) + bad)
        self.ok(imap, b"CREATE {6+}\r\nna\xc3\xafve")
        untagged, _ = self.ok(imap, 'LIST "" "na*"')
        self.assertEqual(untagged, [b'* LIST (\\HasNoChildren) "/" "na&AO8-ve"'])
        self.ok(imap, b"SELECT {6+}\r\nna\xc3\xafve")

    def test_not_an_astring_is_still_bad(self):
        imap = self.session()
        _, tagged = imap.command("SELECT")
        self.assertEqual(status_of(tagged), "BAD")
        _, tagged = imap.command("SELECT (Box)")
        self.assertEqual(status_of(tagged), "BAD")

    def test_empty_name(self):
        imap = self.session()
        _, tagged = imap.command('SELECT ""')
        self.assertEqual(tagged.split(b" ", 1)[1], b"NO [CANNOT] Empty mailbox name")

    def test_valid_edge_names(self):
        imap = self.session()
        # "&-" is "&"; "&Jjo-" is U+263A with two bits of padding.
        self.ok(imap, 'CREATE "&-"')
        self.ok(imap, 'CREATE "x&Jjo-y"')
        self.assertEqual(self.ok(imap, 'LIST "" "&-"')[0], [b'* LIST (\\HasNoChildren) "/" "&-"'])
        self.assertEqual(self.ok(imap, 'LIST "" "x*"')[0],
                         [b'* LIST (\\HasNoChildren) "/" "x&Jjo-y"'])
        untagged, tagged = self.ok(imap, 'SELECT "&-"')
        self.assertIn(b"* 0 EXISTS", untagged)
        self.assertEqual(self.status(imap, '"x&Jjo-y"', "MESSAGES"), {"MESSAGES": 0})
        # Encoded controls are valid modified UTF-7, but no name for a new
        # mailbox (as in Dovecot).
        _, tagged = imap.command('CREATE "&AAE-"')
        self.assertEqual(tagged.split(b" ", 1)[1], b"NO [CANNOT] Invalid mailbox name")
        # The names as UTF-8, once UTF8=ACCEPT is on.
        self.ok(imap, "ENABLE UTF8=ACCEPT")
        self.assertEqual(self.ok(imap, 'LIST "" "x*"')[0],
                         ['* LIST (\\HasNoChildren) "/" "x\u263ay"'.encode()])

    def test_list_patterns_match_nothing(self):
        imap = self.session()
        self.ok(imap, "CREATE a")
        for name in INVALID:
            for cmd in ('LIST "" "%s"', 'LSUB "" "%s"', 'LIST "" "%s*"',
                        'LIST "%s" "*"', 'LIST (SUBSCRIBED) "" "%s"'):
                untagged, tagged = self.ok(imap, cmd % name)
                self.assertEqual(untagged, [], cmd % name)
                self.assertRegex(tagged, rb"^r\d+ OK (LIST|LSUB) completed$")
        # One bad pattern of several leaves the others alone.
        untagged, _ = self.ok(imap, 'LIST "" ("INBOX" "a&b" "a")')
        self.assertEqual(untagged, [b'* LIST (\\HasNoChildren) "/" "INBOX"',
                                    b'* LIST (\\HasNoChildren) "/" "a"'])

    def test_utf8_accept_names_are_utf8(self):
        imap = self.session()
        self.ok(imap, "ENABLE UTF8=ACCEPT")
        # Not modified UTF-7 any more: "a&b" is just a name.
        self.ok(imap, 'CREATE "a&b"')
        self.assertEqual(self.ok(imap, 'LIST "" "a&b"')[0], [b'* LIST (\\HasNoChildren) "/" "a&b"'])
        self.ok(imap, 'SELECT "a&b"')
        # A client without UTF8=ACCEPT sees it encoded.
        other = self.session(self.user, self.pw)
        self.assertEqual(self.ok(other, 'LIST "" "a*"')[0], [b'* LIST (\\HasNoChildren) "/" "a&-b"'])
        self.ok(other, 'SELECT "a&-b"')


# ---------------------------------------------------------------------------
# 3. Subscriptions


class SubscriptionTest(EdgeTest):
    def test_create_does_not_subscribe_delete_does_not_unsubscribe(self):
        imap = self.session()
        self.ok(imap, "CREATE Box")
        self.assertEqual(self.ok(imap, 'LSUB "" "Box"')[0], [])
        self.assertEqual(self.ok(imap, 'LIST (SUBSCRIBED) "" "Box"')[0], [])
        self.assertEqual(self.ok(imap, 'LIST "" "Box" RETURN (SUBSCRIBED)')[0],
                         [b'* LIST (\\HasNoChildren) "/" "Box"'])
        self.ok(imap, "SUBSCRIBE Box")
        self.assertEqual(self.ok(imap, 'LIST "" "Box" RETURN (SUBSCRIBED)')[0],
                         [b'* LIST (\\Subscribed \\HasNoChildren) "/" "Box"'])
        self.ok(imap, "DELETE Box")
        self.assertEqual(self.ok(imap, 'LSUB "" "Box"')[0], [b'* LSUB () "/" "Box"'])
        self.assertEqual(self.ok(imap, 'LIST (SUBSCRIBED) "" "Box"')[0],
                         [b'* LIST (\\Subscribed \\NonExistent) "/" "Box"'])
        self.assertEqual(self.ok(imap, 'LIST "" "Box"')[0], [])
        # Created again, it is subscribed still.
        self.ok(imap, "CREATE Box")
        self.assertEqual(self.ok(imap, 'LIST (SUBSCRIBED) "" "Box"')[0],
                         [b'* LIST (\\Subscribed \\HasNoChildren) "/" "Box"'])
        # The default mailboxes stay subscribed.
        self.assertEqual(self.ok(imap, 'LIST (SUBSCRIBED) "" "*"')[0],
                         [b'* LIST (\\Subscribed \\HasNoChildren) "/" "Box"'] + DEFAULTS_SUBSCRIBED)

    def test_lsub_parent_noselect(self):
        # RFC 3501 §6.3.9: foo/bar subscribed, foo not: "%" returns foo,
        # flagged \Noselect, and not foo/bar.
        imap = self.session()
        self.ok(imap, "CREATE foo/bar")
        self.ok(imap, "SUBSCRIBE foo/bar")
        self.assertEqual(self.ok(imap, 'LSUB "" "%"')[0],
                         DEFAULTS_LSUB + [b'* LSUB (\\Noselect) "/" "foo"'])
        self.assertEqual(self.ok(imap, 'LSUB "" "foo/%"')[0], [b'* LSUB () "/" "foo/bar"'])
        # "*" reaches foo/bar itself: foo is not listed for it; nor
        # without a final "%" (as Dovecot).
        self.assertEqual(self.ok(imap, 'LSUB "" "f*"')[0], [b'* LSUB () "/" "foo/bar"'])
        self.assertEqual(self.ok(imap, 'LSUB "" "foo"')[0], [])
        self.assertEqual(self.ok(imap, 'LSUB "" "%o"')[0], [])
        # Once foo is subscribed it is a plain entry.
        self.ok(imap, "SUBSCRIBE foo")
        self.assertEqual(self.ok(imap, 'LSUB "" "foo"')[0], [b'* LSUB () "/" "foo"'])
        # A parent that is neither subscribed nor a mailbox.
        self.ok(imap, "SUBSCRIBE ghost/child")
        self.assertEqual(self.ok(imap, 'LSUB "" "gh%"')[0], [b'* LSUB (\\Noselect) "/" "ghost"'])
        self.assertEqual(self.ok(imap, 'LIST "" "gh*"')[0], [])

    def test_recursivematch_childinfo(self):
        # RFC 5258 §3.5 and §5 examples: a parent listed for a subscribed
        # child that "%" does not reach, with CHILDINFO; a subscribed
        # parent gets CHILDINFO too; under "*" the child is listed itself.
        imap = self.session()
        self.ok(imap, "CREATE Fruit/Banana")
        self.ok(imap, "SUBSCRIBE Fruit/Banana")
        self.ok(imap, "CREATE Vegetable/Broccoli")
        self.ok(imap, "SUBSCRIBE Vegetable")
        self.ok(imap, "SUBSCRIBE Vegetable/Broccoli")
        self.ok(imap, "SUBSCRIBE Ghost/Child")
        untagged, _ = self.ok(imap, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"')
        self.assertEqual(untagged, DEFAULTS_SUBSCRIBED[:1] + [
            b'* LIST (\\HasChildren) "/" "Fruit" ("CHILDINFO" ("SUBSCRIBED"))',
            b'* LIST (\\NonExistent) "/" "Ghost" ("CHILDINFO" ("SUBSCRIBED"))',
        ] + DEFAULTS_SUBSCRIBED[1:] + [
            b'* LIST (\\Subscribed \\HasChildren) "/" "Vegetable" ("CHILDINFO" ("SUBSCRIBED"))',
        ])
        untagged, _ = self.ok(imap, 'LIST (SUBSCRIBED RECURSIVEMATCH) "" "Fruit*"')
        self.assertEqual(untagged, [b'* LIST (\\Subscribed \\HasNoChildren) "/" "Fruit/Banana"'])
        # Without RECURSIVEMATCH: subscribed names only, no CHILDINFO.
        untagged, _ = self.ok(imap, 'LIST (SUBSCRIBED) "" "%"')
        self.assertEqual(untagged, DEFAULTS_SUBSCRIBED + [
            b'* LIST (\\Subscribed \\HasChildren) "/" "Vegetable"'])

    def test_rename_leaves_subscriptions_alone(self):
        # As Dovecot: RENAME moves the mailboxes, not the subscriptions.
        imap = self.session()
        self.ok(imap, "CREATE old/kid")
        self.ok(imap, "CREATE old/other")
        self.ok(imap, "SUBSCRIBE old")
        self.ok(imap, "SUBSCRIBE old/kid")
        self.ok(imap, "SUBSCRIBE new")        # a name subscribed before it exists
        self.ok(imap, "RENAME old new")
        self.assertEqual(self.ok(imap, 'LSUB "" "*"')[0], DEFAULTS_LSUB + [
            b'* LSUB () "/" "new"', b'* LSUB () "/" "old"', b'* LSUB () "/" "old/kid"'])
        self.assertEqual(self.ok(imap, 'LIST (SUBSCRIBED) "" "old*"')[0], [
            b'* LIST (\\Subscribed \\NonExistent) "/" "old"',
            b'* LIST (\\Subscribed \\NonExistent) "/" "old/kid"'])
        self.assertEqual(self.ok(imap, 'LIST "" "new*" RETURN (SUBSCRIBED)')[0], [
            b'* LIST (\\Subscribed \\HasChildren) "/" "new"',
            b'* LIST (\\HasNoChildren) "/" "new/kid"',
            b'* LIST (\\HasNoChildren) "/" "new/other"'])


# ---------------------------------------------------------------------------
# 4. MULTIAPPEND


def message(n):
    return (b"From: a@example.test\r\nSubject: multi %d\r\n"
            b"Date: Tue, 04 Mar 2025 10:20:30 +0000\r\n\r\nbody %d\r\n" % (n, n))


class MultiappendTest(EdgeTest):
    def test_capability(self):
        imap = self.session()
        untagged, _ = self.ok(imap, "CAPABILITY")
        self.assertIn(b"MULTIAPPEND", untagged[0].split())

    def test_three_messages_one_exists(self):
        imap = self.session()
        self.ok(imap, "CREATE Multi")
        uidvalidity = self.status(imap, "Multi", "UIDVALIDITY")["UIDVALIDITY"]
        # Another session idles on the mailbox.
        idler = self.session(self.user, self.pw)
        self.ok(idler, "SELECT Multi")
        idler.send(b"i1 IDLE\r\n")
        self.assertTrue(idler.line().startswith(b"+ "))
        m1, m2, m3 = message(1), message(2), message(3)
        # Synchronising literals: each "+" is waited for (RFC 3502 §6.3.11).
        imap.send(b"a1 APPEND Multi (\\Seen) {%d}\r\n" % len(m1))
        self.assertTrue(imap.line().startswith(b"+ "))
        imap.send(m1 + b' (\\Flagged \\Draft) "04-Mar-2025 10:20:30 +0100" {%d}\r\n' % len(m2))
        self.assertTrue(imap.line().startswith(b"+ "))
        imap.send(m2 + b" {%d}\r\n" % len(m3))
        self.assertTrue(imap.line().startswith(b"+ "))
        imap.send(m3 + CRLF)
        untagged, tagged = imap.until_tagged("a1")
        self.assertEqual(untagged, [])
        self.assertEqual(tagged, b"a1 OK [APPENDUID %d 1:3] APPEND completed" % uidvalidity)
        # All three at once, announced once.
        self.assertEqual(idler.quiet(1.0), [b"* 3 EXISTS", b"* 3 RECENT"])
        idler.send(b"DONE\r\n")
        self.assertEqual(idler.until_tagged("i1")[1], b"i1 OK IDLE terminated")
        untagged, _ = self.ok(idler, "FETCH 1:3 (UID FLAGS INTERNALDATE)")
        self.assertEqual(untagged[0][:43], b"* 1 FETCH (UID 1 FLAGS (\\Seen \\Recent) INTE")
        self.assertEqual(untagged[1], b'* 2 FETCH (UID 2 FLAGS (\\Flagged \\Draft \\Recent) '
                                      b'INTERNALDATE " 4-Mar-2025 09:20:30 +0000")')
        self.assertRegex(untagged[2], rb"^\* 3 FETCH \(UID 3 FLAGS \(\\Recent\) INTERNALDATE ")
        for i, m in enumerate((m1, m2, m3), 1):
            self.assertEqual(self.ok(idler, "FETCH %d BODY.PEEK[]" % i)[0],
                             [b"* %d FETCH (BODY[] {%d}\r\n%s)" % (i, len(m), m)])

    def test_literal_plus_and_selected_target(self):
        imap = self.session()
        self.ok(imap, "SELECT INBOX")
        m1, m2 = message(1), message(2)
        untagged, tagged = imap.command(b"APPEND INBOX {%d+}\r\n%s ~{%d+}\r\n%s"
                                        % (len(m1), m1, len(m2), m2))
        # The appending session has the mailbox selected: one EXISTS.
        self.assertEqual(untagged, [b"* 2 EXISTS", b"* 2 RECENT"])
        self.assertRegex(tagged, rb"^r\d+ OK \[APPENDUID \d+ 1:2\] APPEND completed$")

    def assertNothingStored(self, imap, before):
        self.assertEqual(self.status(imap, "Multi"), before)
        self.assertEqual(self.server.message_ids(self.user), [])

    def test_bad_flags_in_second_stores_none(self):
        imap = self.session()
        self.ok(imap, "CREATE Multi")
        before = self.status(imap, "Multi")
        m1, m2 = message(1), message(2)
        _, tagged = imap.command(b"APPEND Multi (\\Seen) {%d+}\r\n%s (\\Bogus) {%d+}\r\n%s"
                                 % (len(m1), m1, len(m2), m2))
        self.assertEqual(tagged.split(b" ", 1)[1], b"BAD Invalid system flag \\Bogus")
        self.assertNothingStored(imap, before)
        # A NUL in the second's ordinary literal.
        _, tagged = imap.command(b"APPEND Multi {%d+}\r\n%s {3+}\r\na\x00b"
                                 % (len(m1), m1))
        self.assertEqual(tagged.split(b" ", 1)[1], b"BAD NUL in a literal; use a literal8 (~{n})")
        # A date that is no date in the third.
        _, tagged = imap.command(b'APPEND Multi {%d+}\r\n%s {%d+}\r\n%s "yesterday" {%d+}\r\n%s'
                                 % (len(m1), m1, len(m2), m2, len(m1), m1))
        self.assertEqual(tagged.split(b" ", 1)[1], b"BAD Invalid date-time")
        # Something that is not a message at the end.
        _, tagged = imap.command(b"APPEND Multi {%d+}\r\n%s (\\Seen)" % (len(m1), m1))
        self.assertEqual(status_of(tagged), "BAD")
        self.assertNothingStored(imap, before)
        # Into a mailbox that does not exist.
        _, tagged = imap.command(b"APPEND Nope {%d+}\r\n%s {%d+}\r\n%s" % (len(m1), m1, len(m2), m2))
        self.assertEqual(tagged.split(b" ", 1)[1], b"NO [TRYCREATE] Mailbox does not exist")
        self.assertNothingStored(imap, before)

    def test_too_big_second_literal_stores_none(self):
        imap = self.session()
        self.ok(imap, "CREATE Multi")
        before = self.status(imap, "Multi")
        m1 = message(1)
        imap.send(b"a1 APPEND Multi {%d}\r\n" % len(m1))
        self.assertTrue(imap.line().startswith(b"+ "))
        # 64 MiB, over max-message-size: refused before "+" is sent.
        imap.send(m1 + b" {67108864}\r\n")
        untagged, tagged = imap.until_tagged("a1")
        self.assertEqual(untagged, [])
        self.assertEqual(status_of(tagged), "NO")
        self.assertIn(b"[TOOBIG]", tagged)
        self.assertNothingStored(imap, before)
        self.ok(imap, "NOOP")


if __name__ == "__main__":
    unittest.main()

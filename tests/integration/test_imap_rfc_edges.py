#!/usr/bin/env python3
"""IMAP on the edges of RFC 3501 (issue 9 §2), raw commands and exact
replies: command lines up to 64 KiB (ID with RFC 2971's own bounds) and
BAD [TOOBIG] beyond; SEARCH FROM/TO/CC/BCC on the parsed addresses
(RFC 5322 comments and folding removed, as Dovecot matches them); a
quoted string that is not UTF-8 after ENABLE UTF8=ACCEPT is BAD (RFC 6855
§3); SEARCH CHARSET with an unknown charset is NO [BADCHARSET (...)]."""

import socket
import time

import harness
from harness import CRLF
from imap_helpers import RawIMAP, new_inbox, smtp_send, status_of

LINE_MAX = 64 * 1024          # Dovecot's default imap_max_line_length
ID_REPLY = b'* ID ("name" "mailsnare" "vendor" "mailsnare")'


def message(headers, body=b"body text\r\n"):
    return (headers + b"Date: Tue, 04 Mar 2025 10:20:30 +0000\r\n"
            b"Message-ID: <%d.edges@example.test>\r\n\r\n" % id(headers) + body)


class EdgesTest(harness.TestCase):
    def session(self, *messages):
        """A new inbox holding `messages`, logged in over raw IMAP."""
        user, pw = new_inbox(self.server)
        for m in messages:
            smtp_send(self.server, user, pw, m)
        imap = RawIMAP(self.server.addr("imap"))
        self.addCleanup(imap.close)
        imap.greeting()
        imap.login(user, pw)
        return imap

    def exact(self, imap, text, untagged, tagged_rest, tag=None):
        """Sends text; asserts the untagged lines and "tag <tagged_rest>"."""
        tag = tag or imap.next_tag()
        got_untagged, got_tagged = imap.command(text, tag=tag)
        self.assertEqual(got_untagged, untagged, text[:80])
        self.assertEqual(got_tagged, tag.encode() + b" " + tagged_rest, text[:80])

    def search(self, imap, program, want):
        """SEARCH program; asserts "* SEARCH <want>" and the OK."""
        line = b"* SEARCH" + b"".join(b" %d" % n for n in want)
        self.exact(imap, program, [line], b"OK SEARCH completed")


# ---------------------------------------------------------------------------
# 1. Command lines: 64 KiB, ID at RFC 2971's bounds, TOOBIG beyond


class CommandLineTest(EdgesTest):
    @staticmethod
    def id_params(pairs, field_len, value_len):
        items = []
        for i in range(pairs):
            field = ("f%d-" % i).ljust(field_len, "x")
            items.append('"%s" "%s"' % (field, chr(ord("a") + i % 26) * value_len))
        return "(" + " ".join(items) + ")"

    def test_id_with_rfc2971_limits_is_answered(self):
        # 30 pairs, 30-octet fields, 1,024-octet values: ~31 KiB in one
        # line, over the old 8 KiB bound (was BAD [TOOBIG]).
        params = self.id_params(30, 30, 1024)
        self.assertGreater(len(params), 30 * 1024)
        imap = RawIMAP(self.server.addr("imap"))
        self.addCleanup(imap.close)
        imap.greeting()
        # before login (clients send ID first) and after it
        self.exact(imap, "ID " + params, [ID_REPLY], b"OK ID completed")
        user, pw = new_inbox(self.server)
        imap.login(user, pw)
        self.exact(imap, "ID " + params, [ID_REPLY], b"OK ID completed")
        self.exact(imap, "ID NIL", [ID_REPLY], b"OK ID completed")
        self.exact(imap, "ID ()", [ID_REPLY], b"OK ID completed")
        self.exact(imap, 'ID ("name" NIL "version" {3+}\r\n1.0)', [ID_REPLY], b"OK ID completed")

    def test_id_syntax_errors(self):
        imap = self.session()
        bad = b'BAD Syntax: ID ("field" "value" ...) or ID NIL'
        for params in ("", '("name")', '(name "x")', '"name" "x"', '(("name" "x"))',
                       'NIL NIL'):
            self.exact(imap, ("ID " + params).strip(), [], bad)
        self.exact(imap, "NOOP", [], b"OK NOOP completed")

    def test_line_of_64k_is_a_command(self):
        imap = self.session()
        # 'rN ID ("v" "...")' of exactly LINE_MAX octets before CRLF
        tag = "r64"
        head = '%s ID ("v" "' % tag
        line = head + "z" * (LINE_MAX - len(head) - 2) + '")'
        self.assertEqual(len(line), LINE_MAX)
        imap.send(line.encode() + CRLF)
        self.assertEqual(imap.until_tagged(tag), ([ID_REPLY], b"r64 OK ID completed"))
        # one octet more is too long
        imap.send(line.replace('"z', '"zz', 1).encode() + CRLF)
        self.assertEqual(imap.until_tagged(tag),
                         ([], b"r64 BAD [TOOBIG] Command line too long"))

    def test_70k_line_is_toobig_and_the_connection_goes_on(self):
        imap = self.session(message(b"From: a@example.test\r\nSubject: still here\r\n"))
        self.exact(imap, "ID " + self.id_params(1, 4, 70 * 1024), [],
                   b"BAD [TOOBIG] Command line too long")
        untagged, tagged = imap.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertIn(b"* 1 EXISTS", untagged)
        self.search(imap, "SEARCH SUBJECT still", [1])
        # the same with the long line split over many writes
        tag = imap.next_tag()
        data = (tag + " SEARCH SUBJECT " + "q" * (70 * 1024)).encode() + CRLF
        for i in range(0, len(data), 4096):
            imap.send(data[i:i + 4096])
        self.assertEqual(imap.until_tagged(tag),
                         ([], tag.encode() + b" BAD [TOOBIG] Command line too long"))
        self.exact(imap, "NOOP", [], b"OK NOOP completed")

    def test_literals_are_bounded_separately(self):
        # A 70 KiB literal is not a long line: APPEND takes it.
        imap = self.session()
        msg = b"Subject: big\r\n\r\n" + (b"y" * 76 + b"\r\n") * 920
        self.assertGreater(len(msg), 70 * 1024)
        tag = imap.next_tag()
        imap.send(tag.encode() + b" APPEND INBOX {%d+}\r\n" % len(msg) + msg + CRLF)
        _, tagged = imap.until_tagged(tag)
        self.assertEqual(status_of(tagged), "OK", tagged)


# ---------------------------------------------------------------------------
# 2. SEARCH FROM/TO/CC/BCC on the parsed address


class AddressSearchTest(EdgesTest):
    MESSAGES = (
        # 1: comments inside the angle address
        message(b"From: <user (comment)@ (comment) domain.org>\r\n"
                b"To: <rcpt(x)@(y)dest.example>\r\nSubject: one\r\n"),
        # 2: display name and a trailing comment
        message(b'From: "Name" <user@domain.org> (comment)\r\n'
                b"To: rcpt@dest.example\r\nSubject: two\r\n"),
        # 3: folded, white space around the '@'
        message(b'From: "Folded Person"\r\n <user\r\n @\r\n domain.org>\r\n'
                b"Cc: Copy (c) <copy @ (c) cc.example>\r\n"
                b"Bcc: <hidden (h)@ bcc.example>\r\nSubject: three\r\n"),
        # 4: someone else
        message(b"From: Other <other@example.test>\r\nTo: rcpt@dest.example\r\n"
                b"Subject: four\r\n"),
        # 5: not an address at all; its text still matches
        message(b"From: Mailer Daemon\r\nSubject: five\r\n"),
    )

    def setUp(self):
        super().setUp()
        self.imap = self.session(*self.MESSAGES)
        untagged, tagged = self.imap.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK", tagged)
        self.assertIn(b"* 5 EXISTS", untagged)

    def test_from_address_without_comments(self):
        self.search(self.imap, "SEARCH FROM user@domain.org", [1, 2, 3])
        self.search(self.imap, 'SEARCH FROM "user@domain.org"', [1, 2, 3])
        self.search(self.imap, "SEARCH FROM USER@DOMAIN.ORG", [1, 2, 3])
        self.search(self.imap, "SEARCH FROM domain.org", [1, 2, 3])
        self.search(self.imap, "SEARCH FROM user", [1, 2, 3])
        self.search(self.imap, "UID SEARCH FROM @domain.org", [1, 2, 3])
        self.search(self.imap, "SEARCH NOT FROM user@domain.org", [4, 5])

    def test_from_display_name(self):
        self.search(self.imap, "SEARCH FROM Name", [2])
        self.search(self.imap, 'SEARCH FROM "Folded Person"', [3])
        self.search(self.imap, "SEARCH FROM other", [4])
        self.search(self.imap, 'SEARCH FROM "Other <other@example.test>"', [4])
        # Comments are not part of the address (Dovecot: no match either).
        self.search(self.imap, "SEARCH FROM comment", [])
        self.search(self.imap, 'SEARCH FROM "user (comment)@"', [])
        # A value that holds no address is matched as it reads.
        self.search(self.imap, 'SEARCH FROM "Mailer Daemon"', [5])

    def test_to_cc_bcc(self):
        self.search(self.imap, "SEARCH TO rcpt@dest.example", [1, 2, 4])
        self.search(self.imap, "SEARCH CC copy@cc.example", [3])
        self.search(self.imap, "SEARCH CC Copy", [3])
        self.search(self.imap, "SEARCH BCC hidden@bcc.example", [3])
        self.search(self.imap, "SEARCH OR CC copy@cc.example BCC hidden@bcc.example", [3])
        self.search(self.imap, 'SEARCH FROM "" TO ""', [1, 2, 4])   # 3 has no To


# ---------------------------------------------------------------------------
# 3. Quoted strings after ENABLE UTF8=ACCEPT


class Utf8QuotedTest(EdgesTest):
    BAD = b"BAD Quoted string is not valid UTF-8"

    def setUp(self):
        super().setUp()
        self.imap = self.session(
            message("Subject: caf\u00e9 cr\u00e8me\r\n".encode("utf-8")),
            message(b"Subject: =?ISO-8859-1?Q?na=EFve?=\r\n"))
        untagged, tagged = self.imap.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK", tagged)

    def enable(self, what=b"UTF8=ACCEPT"):
        self.exact(self.imap, b"ENABLE " + what, [b"* ENABLED " + what],
                   b"OK ENABLE completed")

    def test_without_utf8_accept_8bit_quoted_is_taken_as_is(self):
        # RFC 3501 has no 8-bit in quoted strings; like Dovecot, the octets
        # are taken (as UTF-8) rather than refused: no match, no error.
        self.search(self.imap, b'SEARCH SUBJECT "\xff\xfe"', [])
        self.search(self.imap, 'SEARCH SUBJECT "caf\u00e9"'.encode("utf-8"), [1])

    def test_invalid_utf8_quoted_is_bad_after_enable(self):
        self.enable()
        for cmd in (b'SEARCH SUBJECT "\xff\xfe"', b'SEARCH SUBJECT "caf\xe9"',
                    b'SEARCH OR SUBJECT x (SUBJECT "\xc3")', b'CREATE "\xff\xfe"',
                    b'SELECT "\xed\xa0\x80"', b'STATUS "\xc0\xaf" (MESSAGES)',
                    b'UID SEARCH HEADER "X-\xfe" "x"', b'LIST "" "\xff*"'):
            self.exact(self.imap, cmd, [], self.BAD)
        # valid UTF-8 goes on working, and the session is still usable
        self.search(self.imap, 'SEARCH SUBJECT "caf\u00e9 cr\u00e8me"'.encode("utf-8"), [1])
        self.search(self.imap, 'SEARCH SUBJECT "na\u00efve"'.encode("utf-8"), [2])
        # a literal carries octets: not checked (matches nothing)
        tag = self.imap.next_tag()
        self.imap.send(tag.encode() + b" SEARCH SUBJECT {2+}\r\n\xff\xfe\r\n")
        self.assertEqual(self.imap.until_tagged(tag),
                         ([b"* SEARCH"], tag.encode() + b" OK SEARCH completed"))
        self.exact(self.imap, "NOOP", [], b"OK NOOP completed")

    def test_imap4rev2_checks_too(self):
        self.enable(b"IMAP4rev2")
        self.exact(self.imap, b'SEARCH SUBJECT "\xff\xfe"', [], self.BAD)


# ---------------------------------------------------------------------------
# 4. SEARCH CHARSET


class CharsetTest(EdgesTest):
    def test_unknown_charset_is_badcharset(self):
        imap = self.session(message(b"Subject: hello\r\n"))
        _, tagged = imap.command("SELECT INBOX")
        self.assertEqual(status_of(tagged), "OK", tagged)
        no = b"NO [BADCHARSET (UTF-8 US-ASCII)] Unsupported charset"
        for cs in ("KOI8-R", "X-UNKNOWN", '"ISO-8859-1"', "UTF8"):
            self.exact(imap, "SEARCH CHARSET %s SUBJECT hello" % cs, [], no)
            self.exact(imap, "UID SEARCH CHARSET %s SUBJECT hello" % cs, [], no)
        self.search(imap, "SEARCH CHARSET UTF-8 SUBJECT hello", [1])
        self.search(imap, "SEARCH CHARSET us-ascii SUBJECT hello", [1])
        # CHARSET with nothing after it is a syntax error, not a charset one
        _, tagged = imap.command("SEARCH CHARSET")
        self.assertEqual(status_of(tagged), "BAD", tagged)



# ---------------------------------------------------------------------------
# LIST patterns that made the old backtracking matcher take exponential time


class ListPatternTest(EdgesTest):
    def test_hostile_pattern_answers_and_others_are_served(self):
        imap = self.session()
        name = "a" * 250
        self.exact(imap, "CREATE %s" % name, [], b"OK CREATE completed")
        self.exact(imap, 'SUBSCRIBE %s' % ("a" * 200 + "/x"), [], b"OK SUBSCRIBE completed")
        other = self.session()
        # Eight "*a" made the old matcher run for practically forever;
        # now both patterns answer at once (the timeout is a hang bound).
        for verb in ("LIST", "LSUB"):
            tag = imap.next_tag()
            imap.send(('%s %s "" "%sb"\r\n' % (tag, verb, "*a" * 60)).encode())
            untagged, tagged = imap.until_tagged(tag, timeout=10)
            self.assertEqual(untagged, [], verb)
            self.assertEqual(tagged, tag.encode() + b" OK " + verb.encode() + b" completed")
            self.exact(other, "NOOP", [], b"OK NOOP completed")
        # And a pattern that does match still does.
        untagged, tagged = imap.command('LIST "" "%sa"' % ("*a" * 60))
        self.assertEqual(untagged, [b'* LIST (\\HasNoChildren) "/" "' + name.encode() + b'"'])

    def test_hierarchy_order_and_children_across_many_names(self):
        imap = self.session()
        for name in ("a", "a-b", "a/b", "a/b/c", "b"):
            self.exact(imap, "CREATE %s" % name, [], b"OK CREATE completed")
        # Many subscriptions: LIST must stay linear in them (it was
        # quadratic: 30,000 took 13 s, every other client waiting).
        tag = None
        for i in range(3000):
            tag = "s%d" % i
            imap.send(b"%s SUBSCRIBE z%d/y%d\r\n" % (tag.encode(), i % 7, i))
        _, tagged = imap.until_tagged(tag, timeout=30)
        self.assertEqual(tagged, tag.encode() + b" OK SUBSCRIBE completed")
        untagged, _ = imap.command('LIST "" "a*"', timeout=30)
        # Children follow their parent; "a" has some.
        self.assertEqual(untagged, [
            b'* LIST (\\HasChildren) "/" "a"',
            b'* LIST (\\HasChildren) "/" "a/b"',
            b'* LIST (\\HasNoChildren) "/" "a/b/c"',
            b'* LIST (\\HasNoChildren) "/" "a-b"'])
        untagged, _ = imap.command('LIST (SUBSCRIBED RECURSIVEMATCH) "" "%"', timeout=30)
        z = [l for l in untagged if b'"/" "z3"' in l]
        self.assertEqual(z, [b'* LIST (\\NonExistent) "/" "z3" ("CHILDINFO" ("SUBSCRIBED"))'])
        untagged, _ = imap.command('LSUB "" "z%"', timeout=30)
        self.assertEqual(sorted(untagged), [b'* LSUB (\\Noselect) "/" "z%d"' % i for i in range(7)])

    def test_subscriptions_are_bounded_per_inbox(self):
        imap = self.session()
        # 5 default mailboxes are subscribed; 9,995 more fit.
        n = 9995
        imap.send(b"".join(b"s%d SUBSCRIBE k%d\r\n" % (i, i) for i in range(n + 1)))
        untagged, tagged = imap.until_tagged("s%d" % (n - 1), timeout=120)
        self.assertEqual(tagged, b"s%d OK SUBSCRIBE completed" % (n - 1))
        _, tagged = imap.until_tagged("s%d" % n, timeout=30)
        self.assertEqual(tagged, b"s%d NO [LIMIT] more than 10000 subscriptions" % n)
        self.exact(imap, "UNSUBSCRIBE k0", [], b"OK UNSUBSCRIBE completed")
        self.exact(imap, "SUBSCRIBE extra", [], b"OK SUBSCRIBE completed")


# ---------------------------------------------------------------------------
# SEARCH over large bodies goes in slices: other clients are served between


class SearchSliceTest(EdgesTest):
    def test_body_search_lets_others_in_and_is_right(self):
        line = b"lorem ipsum dolor sit amet consectetur adipiscing elit sed do\r\n"
        big = line * (1024 * 1024 // len(line))
        msgs = []
        for i in range(40):
            extra = b"the needle is here\r\n" if i in (7, 33) else b""
            msgs.append(b"From: a@example.test\r\nSubject: big %d\r\n\r\n" % i + big + extra)
        imap = self.session(*msgs)
        imap.command("SELECT INBOX")
        other = self.session()
        # 20 pipelined searches over 40 MB each: 800 MB of work.
        imap.send(b"".join(b"q%d SEARCH BODY needle\r\n" % i for i in range(20)))
        time.sleep(0.05)
        # Sent while they run: answered between their slices (before, it
        # waited until all 20 were done).
        _, tagged = other.command("NOOP", timeout=60)
        self.assertTrue(tagged.endswith(b"OK NOOP completed"))
        seen = imap.buf
        imap.sock.setblocking(False)
        try:
            while True:
                chunk = imap.sock.recv(1 << 20)
                if not chunk:
                    break
                seen += chunk
        except BlockingIOError:
            pass
        finally:
            imap.sock.setblocking(True)
            imap.sock.settimeout(60)
        imap.buf = seen
        self.assertLess(seen.count(b"OK SEARCH completed"), 20,
                        "every SEARCH was done before another client got in")
        for i in range(20):
            untagged, tagged = imap.until_tagged("q%d" % i, timeout=60)
            self.assertEqual(untagged, [b"* SEARCH 8 34"])
            self.assertEqual(tagged, b"q%d OK SEARCH completed" % i)
        # The session goes on as usual: pipelined commands after a sliced
        # SEARCH wait for it, in order.
        imap.send(b"p1 SEARCH BODY needle\r\np2 NOOP\r\n")
        untagged, tagged = imap.until_tagged("p1", timeout=60)
        self.assertEqual(untagged, [b"* SEARCH 8 34"])
        _, tagged = imap.until_tagged("p2", timeout=60)
        self.assertEqual(tagged, b"p2 OK NOOP completed")

if __name__ == "__main__":
    harness.main()

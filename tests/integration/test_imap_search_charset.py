"""SEARCH BODY and TEXT over large parts in charsets iconv converts
(issue 11): Shift_JIS, UTF-16 (BOM, base64) and ISO-2022-JP are converted
256 KiB at a time like any other text (src/imap_search_text.c,
mime_conv in src/mime_decode.c), the iconv state and a character cut by a
piece's end carried to the next piece. The exact results must hold where
a needle's character is cut by a piece's edge, where ISO-2022-JP's escape
to kanji is in the piece before, and at the end of an 8 MB part; and
another client's NOOPs, sent one after the other while such a SEARCH
runs, are answered before it, several of them (the tagged OKs' order on
the wire).

Raw IMAP and SMTP on 127.0.0.1 only; every socket has a timeout."""

import base64
import time

import harness
from harness import CRLF
from imap_helpers import RawIMAP, new_inbox, raw_select, smtp_send, status_of

LONG = 120
# Time for the server to read the SEARCH and start on the part before the
# first NOOP is sent (which of two commands sent at once is read first is
# the kernel's); the SEARCH takes longer (about 0.1 s of CPU), and the
# NOOPs are counted only when it had not answered by then.
SEARCH_STARTED = 0.02
PIECE = 256 * 1024                              # TEXT_PIECE
SJIS_LINE = ("日本語のテキストです。半角ｶﾀｶﾅも。" * 2).encode("shift_jis") + CRLF
EDGE = "針を探す"                               # cut by the first piece's end
LAST = "末尾の針"
U16_LAST = "終わりの針"
JIS_EDGE = "針の山"
ABSENT = "見つからない"


def message(subject, ctype, cte, body):
    return (b"From: big@example.test\r\nTo: rcpt@example.test\r\nSubject: " + subject +
            b"\r\nMessage-ID: <" + subject + b"@example.test>\r\nMIME-Version: 1.0\r\n"
            b"Content-Type: " + ctype + b"\r\nContent-Transfer-Encoding: " + cte +
            b"\r\n\r\n" + body)


def pad_to(body, at):
    """body plus ASCII lines (under 998 bytes) up to exactly `at` bytes."""
    while at - len(body) > 900:
        body += b"a" * 76 + CRLF
    return body + b"b" * (at - len(body))


def sjis_body(size):
    """EDGE's second character is cut by the end of the body's first 256
    KiB piece; LAST at the end of `size` bytes."""
    head = pad_to(SJIS_LINE * ((PIECE - 2000) // len(SJIS_LINE)), PIECE - 3)
    body = head + EDGE.encode("shift_jis") + CRLF
    body += SJIS_LINE * ((size - len(body)) // len(SJIS_LINE))
    return body + LAST.encode("shift_jis") + CRLF


def utf16_body(size):
    """UTF-16 with a BOM (Python's, little-endian), base64: Köln in every
    line, U16_LAST at the end."""
    line = "UTF-16 の本文、Grüße aus Köln。\r\n"
    text = line * (size // (2 * len(line))) + U16_LAST + "\r\n"
    return base64.encodebytes(text.encode("utf-16")).replace(b"\n", CRLF)


def jis_body(size):
    """One line of kanji across the first piece's end: its ESC $ B is in
    the first piece, JIS_EDGE after the end, in the second."""
    run = "日本語" * 70                        # the line: 860 bytes
    line = ("始" + run + JIS_EDGE + run + "終").encode("iso2022_jp") + CRLF
    at = line.index(JIS_EDGE.encode("iso2022_jp")[3:-3])   # its kanji, no escapes
    body = pad_to(b"", PIECE - at + 298) + CRLF + line
    assert len(body) - len(line) + line.index(b"\x1b$B") < PIECE < len(body) - len(line) + at
    return pad_to(body, size)


class SearchCharsetTest(harness.TestCase):
    server_args = ("--log-level", "warn")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user, cls.pw = new_inbox(cls.server, "sc")
        msgs = [
            message(b"sjis", b"text/plain; charset=Shift_JIS", b"8bit",
                    sjis_body(8 * 1024 * 1024)),                               # 1
            message(b"utf16", b"text/plain; charset=UTF-16", b"base64",
                    utf16_body(4 * 1024 * 1024)),                              # 2
            message(b"jis", b"text/plain; charset=ISO-2022-JP", b"7bit",
                    jis_body(1024 * 1024)),                                    # 3
        ]
        for m in msgs:
            smtp_send(cls.server, cls.user, cls.pw, m)

    def client(self):
        return raw_select(self, self.user, self.pw, LONG)

    @staticmethod
    def key(name, needle):
        n = needle.encode()
        return b"%s {%d+}\r\n" % (name, len(n)) + n

    def search(self, c, *keys):
        text = b"SEARCH CHARSET UTF-8 " + b" ".join(keys)
        untagged, tagged = c.command(text, timeout=LONG)
        self.assertEqual(status_of(tagged), "OK", (text[:80], tagged))
        return [u for u in untagged if u.startswith(b"* SEARCH")]

    def test_exact_results(self):
        c = self.client()
        body = lambda n: self.key(b"BODY", n)   # noqa: E731
        self.assertEqual(self.search(c, body(EDGE)), [b"* SEARCH 1"])
        self.assertEqual(self.search(c, body(LAST)), [b"* SEARCH 1"])
        self.assertEqual(self.search(c, body("bb" + EDGE)), [b"* SEARCH 1"])
        self.assertEqual(self.search(c, body(U16_LAST)), [b"* SEARCH 2"])
        self.assertEqual(self.search(c, self.key(b"TEXT", "GRÜSSE AUS KÖLN")), [b"* SEARCH"])
        self.assertEqual(self.search(c, self.key(b"TEXT", "GRÜßE AUS KÖLN")), [b"* SEARCH 2"])
        self.assertEqual(self.search(c, body(JIS_EDGE)), [b"* SEARCH 3"])
        self.assertEqual(self.search(c, body("語" + JIS_EDGE + "日")), [b"* SEARCH 3"])
        self.assertEqual(self.search(c, body(ABSENT)), [b"* SEARCH"])
        self.assertEqual(self.search(c, b"OR " + body(EDGE) + b" " + body(JIS_EDGE)),
                         [b"* SEARCH 1 3"])
        self.assertEqual(self.search(c, b"NOT " + body(U16_LAST)), [b"* SEARCH 1 3"])

    def test_noops_answered_during_search(self):
        a, b = self.client(), self.client()
        tag = a.next_tag()
        done = CRLF + tag.encode() + b" "
        # The Shift_JIS part of 8 MB.
        a.send(tag.encode() + b" UID SEARCH CHARSET UTF-8 UID 1 " + self.key(b"BODY", ABSENT)
               + CRLF)
        time.sleep(SEARCH_STARTED)
        # NOOPs one after the other while the SEARCH has not answered: how
        # many are answered before it is.
        running, answered = done not in CRLF + a.pending(), 0
        while done not in CRLF + a.pending() and answered < 1000:
            b.send(b"n%d NOOP\r\n" % answered)
            _, noop = b.until_tagged("n%d" % answered, timeout=LONG)
            self.assertEqual(noop, b"n%d OK NOOP completed" % answered)
            answered += 1
        if running:
            # Now the part is some 20 slices, a NOOP answered between any
            # two (9 to 13 NOOPs here, load average 8); before, it was one
            # slice of seconds, which the first NOOP waited for, and the
            # SEARCH was done a pass or two later (1 or 2 NOOPs).
            self.assertGreaterEqual(answered, 4, "NOOPs answered while the SEARCH ran")
        untagged, tagged = a.until_tagged(tag, timeout=LONG)
        self.assertEqual(status_of(tagged), "OK")
        self.assertEqual([u for u in untagged if u.startswith(b"* SEARCH")], [b"* SEARCH"])


    def test_connection_closed_during_search(self):
        """The part's converter (an iconv descriptor and its buffer) goes
        with the SEARCH when its client goes mid-part: under ASan a leak
        fails the server's exit at the end of the class."""
        b = self.client()
        for _ in range(3):
            a = RawIMAP(self.server.addr("imap"), timeout=LONG)
            a.greeting()
            a.login(self.user, self.pw)
            a.command("SELECT INBOX", timeout=LONG)
            a.send(b"s1 SEARCH CHARSET UTF-8 " + self.key(b"BODY", ABSENT) + CRLF)
            time.sleep(SEARCH_STARTED)
            a.close()
            _, noop = b.command("NOOP", timeout=LONG)
            self.assertEqual(status_of(noop), "OK")


if __name__ == "__main__":
    harness.main()

"""SEARCH BODY and TEXT over large messages (issue 11): a body is matched
in pieces over several slices (src/imap_search_text.c), so the exact
results must hold where a needle crosses a piece's edge, in a base64 part,
and for a 64 KiB needle over text full of near misses; and another
client's NOOP is answered while such a SEARCH runs (its tagged OK before
the SEARCH's, checked on the wire).

Raw IMAP and SMTP on 127.0.0.1 only; every socket has a timeout."""

import base64

import harness
from harness import CRLF
from imap_helpers import new_inbox, raw_select, smtp_send, status_of

LONG = 120
LINE = b"x" * 76 + CRLF                      # 78 bytes
QLINE = b"q" * 76 + CRLF
EDGE = b"findme-across-the-edge"
B64_NEEDLE = b"hidden-in-base64"
LONG_NEEDLE = b"W" + CRLF + QLINE * 840      # 65,523 bytes


def plain(subject, body):
    return (b"From: big@example.test\r\nTo: rcpt@example.test\r\nSubject: " + subject +
            b"\r\nMessage-ID: <" + subject + b"@example.test>\r\n\r\n" + body)


def edge_body(size):
    """EDGE starts 4 bytes before the body's first 256 KiB piece ends."""
    head = LINE * 3360                          # 262,080 bytes
    line = b"y" * 60 + EDGE + CRLF              # EDGE at 262,140
    return head + line + LINE * ((size - len(head)) // len(LINE))


def b64_message(size):
    text = LINE * (size // len(LINE)) + B64_NEEDLE + CRLF
    enc = base64.encodebytes(text).replace(b"\n", CRLF)
    return (b"From: big@example.test\r\nTo: rcpt@example.test\r\nSubject: b64\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=bb\r\n\r\n"
            b"--bb\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nfirst part\r\n"
            b"--bb\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\n" + enc + b"--bb--\r\n")


class SearchLargeTest(harness.TestCase):
    server_args = ("--log-level", "warn")

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user, cls.pw = new_inbox(cls.server, "sl")
        msgs = [
            plain(b"edge", edge_body(12 * 1024 * 1024)),              # 1
            b64_message(4 * 1024 * 1024),                              # 2
            plain(b"long", LINE * 9000 + LONG_NEEDLE + LINE * 10),     # 3
            plain(b"misses", QLINE * (12 * 1024 * 1024 // len(QLINE))),  # 4
        ]
        for m in msgs:
            smtp_send(cls.server, cls.user, cls.pw, m)

    def client(self):
        return raw_select(self, self.user, self.pw, LONG)

    def search(self, c, text):
        untagged, tagged = c.command(text, timeout=LONG)
        self.assertEqual(status_of(tagged), "OK", (text[:80], tagged))
        return [u for u in untagged if u.startswith(b"* SEARCH")]

    def test_exact_results(self):
        c = self.client()
        self.assertEqual(self.search(c, b"SEARCH BODY " + EDGE), [b"* SEARCH 1"])
        self.assertEqual(self.search(c, b"SEARCH TEXT FINDME-across"), [b"* SEARCH 1"])
        self.assertEqual(self.search(c, b"SEARCH BODY " + B64_NEEDLE), [b"* SEARCH 2"])
        self.assertEqual(self.search(c, b"SEARCH BODY \"first part\""), [b"* SEARCH 2"])
        self.assertEqual(self.search(c, b"SEARCH NOT BODY " + EDGE), [b"* SEARCH 2 3 4"])
        self.assertEqual(self.search(c, b"SEARCH OR BODY " + B64_NEEDLE + b" BODY " + EDGE),
                         [b"* SEARCH 1 2"])
        self.assertEqual(self.search(c, b"SEARCH BODY absent-everywhere"), [b"* SEARCH"])
        # The keys before the text decide first: no text read for 1 and 4.
        self.assertEqual(self.search(c, b"SEARCH SUBJECT long BODY qqqq"), [b"* SEARCH 3"])
        lit = b"SEARCH BODY {%d+}\r\n" % len(LONG_NEEDLE) + LONG_NEEDLE
        self.assertEqual(self.search(c, lit), [b"* SEARCH 3"])
        # One byte more than message 3 has: found nowhere (message 4 is
        # all near misses).
        lit = b"SEARCH BODY {%d+}\r\n" % (len(LONG_NEEDLE) + 1) + LONG_NEEDLE + b"q"
        self.assertEqual(self.search(c, lit), [b"* SEARCH"])

    def test_noop_answered_during_search(self):
        a, b = self.client(), self.client()
        tag = a.next_tag()
        # The last message, of 12 MB: a few slices now, one before.
        a.send(tag.encode() + b" SEARCH UID 4 BODY absent-everywhere" + CRLF)
        b.send(b"n1 NOOP\r\n")
        _, noop = b.until_tagged("n1", timeout=LONG)
        self.assertEqual(noop, b"n1 OK NOOP completed")
        self.assertNotIn(CRLF + tag.encode() + b" ", CRLF + a.pending(),
                         "SEARCH finished before the other client's NOOP was answered")
        untagged, tagged = a.until_tagged(tag, timeout=LONG)
        self.assertEqual(status_of(tagged), "OK")
        self.assertEqual([u for u in untagged if u.startswith(b"* SEARCH")], [b"* SEARCH"])


if __name__ == "__main__":
    harness.main()

"""ESEARCH (RFC 4731), SEARCHRES (RFC 5182), SORT (RFC 5256, RFC 5957
DISPLAYFROM/DISPLAYTO) and THREAD=ORDEREDSUBJECT / THREAD=REFERENCES (RFC
5256) on the real binary, with raw IMAP commands (imaplib has no methods
for most of them) and imaplib for what it does have."""

import imaplib
import itertools
import os
import re

import harness
from harness import CRLF, SOCK_TIMEOUT

_names = itertools.count(1)


class RawIMAP(harness.RawSocket):
    """A line-based IMAP client: cmd() sends one command and returns the
    untagged lines and the tagged line (decoded, without CRLF)."""

    def __init__(self, addr):
        super().__init__(addr)
        self.tags = itertools.count(1)
        self.greeting = self.line()

    def line(self):
        while CRLF not in self.buf:
            data = self.sock.recv(65536)
            if not data:
                raise AssertionError("connection closed; pending %r" % self.buf)
            self.buf += data
        line, self.buf = self.buf.split(CRLF, 1)
        return line.decode("utf-8", "replace")

    def cmd(self, text):
        tag = "t%d" % next(self.tags)
        data = text if isinstance(text, bytes) else text.encode("utf-8")
        self.sock.sendall(tag.encode() + b" " + data + CRLF)
        untagged = []
        while True:
            line = self.line()
            if line.startswith(tag + " "):
                return untagged, line[len(tag) + 1:], tag
            untagged.append(line)

    def ok(self, text):
        untagged, status, _ = self.cmd(text)
        if not status.startswith("OK"):
            raise AssertionError("%s: %s" % (text, status))
        return untagged

    def one(self, text, prefix):
        """The untagged lines that start with prefix, of an OK command."""
        return [l for l in self.ok(text) if l.startswith(prefix)]

    def append(self, msg, date=None, mailbox="INBOX"):
        head = "APPEND %s " % mailbox
        if date:
            head += '"%s" ' % date
        data = head.encode() + b"{%d+}" % len(msg) + CRLF + msg
        untagged, status, _ = self.cmd(data)
        if not status.startswith("OK"):
            raise AssertionError("APPEND: %s" % status)


def message(subject=None, sender="a@example.test", to="b@example.test", cc=None,
            date=None, msgid=None, refs=None, irt=None, body="body\r\n"):
    h = ["From: %s" % sender, "To: %s" % to]
    if cc:
        h.append("Cc: %s" % cc)
    if subject is not None:
        h.append("Subject: %s" % subject)
    if date:
        h.append("Date: %s" % date)
    if msgid:
        h.append("Message-ID: %s" % msgid)
    if irt:
        h.append("In-Reply-To: %s" % irt)
    if refs:
        h.append("References: %s" % refs)
    return ("\r\n".join(h) + "\r\n\r\n" + body).encode("utf-8")


def day(n):
    return "Mon, %d Mar 2025 10:00:00 +0000" % n


class SearchExtTests(harness.TestCase):

    def session(self, messages=()):
        """A fresh inbox holding messages (bytes, or (bytes, internal date)),
        logged in with INBOX selected."""
        name = "sx%d-%d" % (os.getpid(), next(_names))
        self.server.inbox_add(name, "pw")
        c = RawIMAP(self.server.addr("imap"))
        self.addCleanup(c.close)
        c.ok("LOGIN %s pw" % name)
        for m in messages:
            if isinstance(m, tuple):
                c.append(m[0], m[1])
            else:
                c.append(m)
        c.ok("SELECT INBOX")
        return c

    def test_capabilities(self):
        c = self.session()
        caps = c.one("CAPABILITY", "* CAPABILITY")[0].split()
        for cap in ("ESEARCH", "SEARCHRES", "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT",
                    "THREAD=REFERENCES"):
            self.assertIn(cap, caps)

    # -- ESEARCH

    def test_esearch_result_options(self):
        c = self.session([message("m%d" % i) for i in range(1, 8)])
        c.ok("STORE 1,3 +FLAGS (\\Seen)")
        untagged, status, tag = c.cmd("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
        self.assertTrue(status.startswith("OK"), status)
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") MIN 2 MAX 7 COUNT 5 ALL 2,4:7' % tag])
        untagged, status, tag = c.cmd("UID SEARCH RETURN (COUNT) SEEN")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") UID COUNT 2' % tag])
        untagged, status, tag = c.cmd("SEARCH RETURN () 3:4")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") ALL 3:4' % tag])
        untagged, status, tag = c.cmd("SEARCH RETURN (MIN) SUBJECT m5")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") MIN 5' % tag])
        # nothing found: no MIN, MAX or ALL; COUNT 0 when asked for
        untagged, status, tag = c.cmd("SEARCH RETURN (MIN MAX ALL) SUBJECT nothing")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s")' % tag])
        untagged, status, tag = c.cmd("UID SEARCH RETURN (ALL COUNT) SUBJECT nothing")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") UID COUNT 0' % tag])
        # plain SEARCH is unchanged
        self.assertEqual(c.one("SEARCH SEEN", "* SEARCH"), ["* SEARCH 1 3"])
        _, status, _ = c.cmd("SEARCH RETURN (BOGUS) ALL")
        self.assertTrue(status.startswith("BAD"), status)

    def test_search_modseq(self):
        # CONDSTORE (RFC 7162 §3.1.5): a MODSEQ key adds the highest
        # mod-sequence of what was found
        c = self.session([message("q1"), message("q2"), message("q3")])
        c.ok("STORE 2 +FLAGS (\\Flagged)")
        line = c.one("FETCH 1:3 (MODSEQ)", "* 2 FETCH")[0]
        m2 = int(re.search(r"MODSEQ \((\d+)\)", line).group(1))
        self.assertEqual(c.one("SEARCH MODSEQ %d" % m2, "* SEARCH"),
                         ["* SEARCH 2 (MODSEQ %d)" % m2])
        self.assertEqual(c.one("SEARCH MODSEQ %d" % (m2 + 1), "* SEARCH"), ["* SEARCH"])
        untagged, _, tag = c.cmd("SEARCH RETURN (ALL) MODSEQ 1")
        self.assertEqual(len(untagged), 1)
        self.assertRegex(untagged[0], r'^\* ESEARCH \(TAG "%s"\) ALL 1:3 MODSEQ %d$' % (tag, m2))

    def test_esearch_uids(self):
        c = self.session([message("u%d" % i) for i in range(1, 6)])
        c.ok("STORE 2 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        # UIDs 1 3 4 5 remain, as message numbers 1 to 4
        untagged, _, tag = c.cmd("UID SEARCH RETURN (MIN MAX ALL) ALL")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") UID MIN 1 MAX 5 ALL 1,3:5' % tag])
        untagged, _, tag = c.cmd("SEARCH RETURN (ALL) ALL")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") ALL 1:4' % tag])

    def test_esearch_imaplib(self):
        name = "sxl%d-%d" % (os.getpid(), next(_names))
        self.server.inbox_add(name, "pw")
        host, port = self.server.addr("imap")
        m = imaplib.IMAP4(host, port, timeout=SOCK_TIMEOUT)
        try:
            m.login(name, "pw")
            m.append("INBOX", None, None, message("hello"))
            m.append("INBOX", None, None, message("world"))
            m.select("INBOX")
            typ, data = m._simple_command("SEARCH", "RETURN", "(COUNT MAX)", "ALL")
            self.assertEqual(typ, "OK")
            typ, data = m._untagged_response(typ, data, "ESEARCH")
            self.assertIn(b"COUNT 2", data[0])
            self.assertIn(b"MAX 2", data[0])
            typ, data = m.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [b"2 1"]))
            typ, data = m.thread("ORDEREDSUBJECT", "UTF-8", "ALL")
            self.assertEqual((typ, data), ("OK", [b"(1)(2)"]))
        finally:
            m.logout()

    # -- SEARCHRES

    def test_searchres_save_and_use(self):
        c = self.session([message("s%d" % i) for i in range(1, 7)])
        c.ok("STORE 2,4,5 +FLAGS (\\Flagged)")
        # SAVE alone: no ESEARCH response
        untagged = c.ok("SEARCH RETURN (SAVE) FLAGGED")
        self.assertEqual([l for l in untagged if "SEARCH" in l], [])
        lines = c.one("FETCH $ (FLAGS)", "* ")
        self.assertEqual([l.split()[1] for l in lines], ["2", "4", "5"])
        lines = c.one("UID FETCH $ (UID)", "* ")
        self.assertEqual(len(lines), 3)
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 2 4 5"])
        self.assertEqual(c.one("SEARCH UID $", "* SEARCH"), ["* SEARCH 2 4 5"])
        self.assertEqual(c.one("SEARCH NOT $", "* SEARCH"), ["* SEARCH 1 3 6"])
        self.assertEqual(c.one("UID SEARCH $ SUBJECT s4", "* SEARCH"), ["* SEARCH 4"])
        c.ok("STORE $ +FLAGS (\\Seen)")
        self.assertEqual(c.one("SEARCH SEEN", "* SEARCH"), ["* SEARCH 2 4 5"])
        # the saved result follows expunges (it holds UIDs)
        c.ok("STORE 4 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 2 4"])
        lines = c.one("FETCH $ (UID)", "* ")
        self.assertEqual(lines, ["* 2 FETCH (UID 2)", "* 4 FETCH (UID 5)"])
        # ESEARCH with SAVE; $ in SORT and THREAD
        untagged, _, tag = c.cmd("SEARCH RETURN (SAVE COUNT) 1:3")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") COUNT 3' % tag])
        self.assertEqual(c.one("SORT (REVERSE SUBJECT) UTF-8 $", "* SORT"), ["* SORT 3 2 1"])
        self.assertEqual(c.one("THREAD ORDEREDSUBJECT UTF-8 $", "* THREAD"),
                         ["* THREAD (1)(2)(3)"])
        # COPY $
        c.ok("CREATE Saved")
        c.ok("COPY $ Saved")
        status = c.one("STATUS Saved (MESSAGES)", "* STATUS")[0]
        self.assertIn("MESSAGES 3", status)

    def test_searchres_min_max(self):
        c = self.session([message("s%d" % i) for i in range(1, 6)])
        untagged, _, tag = c.cmd("SEARCH RETURN (SAVE MIN) 2:4")
        self.assertEqual(untagged, ['* ESEARCH (TAG "%s") MIN 2' % tag])
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 2"])
        c.ok("SEARCH RETURN (SAVE MIN MAX) 2:4")
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 2 4"])
        c.ok("UID SEARCH RETURN (SAVE MAX ALL) 2:4")
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 2 3 4"])

    def test_searchres_reset(self):
        c = self.session([message("r%d" % i) for i in range(1, 4)])
        c.ok("SEARCH RETURN (SAVE) ALL")
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 1 2 3"])
        # a NO (bad charset) empties it, a BAD leaves it
        c.ok("SEARCH RETURN (SAVE) 1")
        _, status, _ = c.cmd("SEARCH RETURN (SAVE) 1 BOGUSKEY")
        self.assertTrue(status.startswith("BAD"), status)
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH 1"])
        _, status, _ = c.cmd("SEARCH RETURN (SAVE) CHARSET KOI8-R ALL")
        self.assertTrue(status.startswith("NO [BADCHARSET"), status)
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH"])
        for reset in ("UNSELECT", "CLOSE"):
            c.ok("SEARCH RETURN (SAVE) ALL")
            c.ok(reset)
            c.ok("SELECT INBOX")
            self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH"])
            self.assertEqual(c.ok("FETCH $ (FLAGS)"), [])
        c.ok("SEARCH RETURN (SAVE) ALL")
        c.ok("EXAMINE INBOX")
        self.assertEqual(c.one("SEARCH $", "* SEARCH"), ["* SEARCH"])

    # -- SORT

    def sort_session(self):
        return self.session([
            (message("Re: banana", sender="Zed <zed@example.test>", to="m@example.test",
                     cc="cc2@example.test", date=day(3), body="x" * 300),
             "05-Mar-2025 10:00:00 +0000"),
            (message("[list] apple", sender='"Bob" <bob@example.test>',
                     to="Anna <k@example.test>", date=day(1), body="x" * 10),
             "01-Mar-2025 10:00:00 +0000"),
            (message("Fwd: Cherry (fwd)", sender="amy@example.test", to="z@example.test",
                     cc="cc1@example.test", date="garbage", body="x" * 150),
             "02-Mar-2025 12:00:00 +0000"),
            (message("banana", sender="Bob <bob@example.test>", to="a@example.test",
                     date=day(2), body="x" * 100),
             "04-Mar-2025 10:00:00 +0000"),
        ])

    def test_sort_keys(self):
        c = self.sort_session()

        def sort(crit, prog="ALL", uid=False):
            lines = c.one("%sSORT (%s) UTF-8 %s" % ("UID " if uid else "", crit, prog), "* SORT")
            self.assertEqual(len(lines), 1)
            return lines[0][len("* SORT"):].split()

        self.assertEqual(sort("SUBJECT"), ["2", "1", "4", "3"])
        self.assertEqual(sort("REVERSE SUBJECT"), ["3", "1", "4", "2"])
        self.assertEqual(sort("ARRIVAL"), ["2", "3", "4", "1"])
        # message 3's Date: is garbage: its internal date (2 March) is used
        self.assertEqual(sort("DATE"), ["2", "4", "3", "1"])
        self.assertEqual(sort("REVERSE DATE"), ["1", "3", "4", "2"])
        self.assertEqual(sort("FROM"), ["3", "2", "4", "1"])
        self.assertEqual(sort("TO"), ["4", "2", "1", "3"])
        self.assertEqual(sort("DISPLAYTO"), ["4", "2", "1", "3"])
        self.assertEqual(sort("DISPLAYFROM"), ["3", "2", "4", "1"])
        # no Cc sorts as the empty string
        self.assertEqual(sort("CC"), ["2", "4", "3", "1"])
        self.assertEqual(sort("SIZE"), ["2", "4", "3", "1"])
        self.assertEqual(sort("REVERSE SIZE"), ["1", "3", "4", "2"])
        self.assertEqual(sort("FROM REVERSE ARRIVAL"), ["3", "4", "2", "1"])
        self.assertEqual(sort("SUBJECT", "NOT 2"), ["1", "4", "3"])
        self.assertEqual(sort("SUBJECT", "SUBJECT nothing"), [])
        c.ok("STORE 2 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        self.assertEqual(sort("SUBJECT", uid=True), ["1", "4", "3"])
        self.assertEqual(sort("SUBJECT"), ["1", "3", "2"])

    def test_sort_errors(self):
        c = self.sort_session()
        for bad in ("SORT (SUBJECT) ALL", "SORT SUBJECT UTF-8 ALL", "SORT () UTF-8 ALL",
                    "SORT (BOGUS) UTF-8 ALL", "SORT (SUBJECT REVERSE) UTF-8 ALL",
                    "SORT (SUBJECT) UTF-8", "THREAD BOGUS UTF-8 ALL",
                    "THREAD REFERENCES ALL", "SORT (SUBJECT) UTF-8 ALL BOGUS"):
            _, status, _ = c.cmd(bad)
            self.assertTrue(status.startswith("BAD"), "%s: %s" % (bad, status))
        for nocs in ("SORT (SUBJECT) KOI8-R ALL", "SORT (SUBJECT) ALL NOT 1",
                     "THREAD REFERENCES KOI8-R ALL"):
            _, status, _ = c.cmd(nocs)
            self.assertTrue(status.startswith("NO [BADCHARSET"), "%s: %s" % (nocs, status))
        _, status, _ = c.cmd("SORT (SUBJECT) KOI8-R ALL")
        self.assertTrue(status.startswith("NO [BADCHARSET"), status)
        self.assertEqual(c.one("SORT (SUBJECT) US-ASCII ALL", "* SORT"), ["* SORT 2 1 4 3"])
        c.ok("UNSELECT")
        _, status, _ = c.cmd("SORT (SUBJECT) UTF-8 ALL")
        self.assertTrue(status.startswith("BAD"), status)

    # -- THREAD

    def thread_session(self):
        return self.session([
            message("alpha", date=day(1), msgid="<a1@x>"),
            message("beta", date=day(2), msgid="<b1@x>"),
            message("Re: alpha", date=day(3), msgid="<a2@x>", irt="<a1@x>", refs="<a1@x>"),
            message("Re: alpha", date=day(4), msgid="<a3@x>", refs="<a1@x> <a2@x>"),
            message("Re: alpha", date=day(5), msgid="<a4@x>", irt="<a1@x>"),
            message("Re: alpha", date=day(6), msgid="<a5@x>",
                    refs="<a1@x>\r\n <a2@x> <a3@x>"),
            message("gamma", date=day(7), msgid="<c2@x>", refs="<missing@x>"),
            message("other", date=day(8), msgid="<c3@x>", refs="<missing@x>"),
            message("Re: beta", date=day(9), msgid="<b2@x>"),
            message("delta", date=day(10)),
        ])

    def test_thread_references(self):
        c = self.thread_session()
        self.assertEqual(c.one("THREAD REFERENCES UTF-8 ALL", "* THREAD"),
                         ["* THREAD (1 (3 4 6)(5))(2 9)((7)(8))(10)"])
        self.assertEqual(c.one("UID THREAD REFERENCES UTF-8 ALL", "* THREAD"),
                         ["* THREAD (1 (3 4 6)(5))(2 9)((7)(8))(10)"])
        self.assertEqual(c.one("THREAD REFERENCES UTF-8 NOT 3", "* THREAD"),
                         ["* THREAD (1 (4 6)(5))(2 9)((7)(8))(10)"])
        self.assertEqual(c.one("THREAD REFERENCES UTF-8 SUBJECT nothing", "* THREAD"),
                         ["* THREAD"])
        c.ok("STORE 1 +FLAGS (\\Deleted)")
        c.ok("EXPUNGE")
        # without its root the alpha thread hangs from a dummy
        self.assertEqual(c.one("THREAD REFERENCES UTF-8 ALL", "* THREAD"),
                         ["* THREAD (1 8)((2 3 5)(4))((6)(7))(9)"])
        self.assertEqual(c.one("UID THREAD REFERENCES UTF-8 ALL", "* THREAD"),
                         ["* THREAD (2 9)((3 4 6)(5))((7)(8))(10)"])

    def test_thread_orderedsubject(self):
        c = self.thread_session()
        self.assertEqual(c.one("THREAD ORDEREDSUBJECT UTF-8 ALL", "* THREAD"),
                         ["* THREAD (1 (3)(4)(5)(6))(2 9)(7)(8)(10)"])
        self.assertEqual(c.one("UID THREAD ORDEREDSUBJECT US-ASCII 2:5", "* THREAD"),
                         ["* THREAD (2)(3 (4)(5))"])


if __name__ == "__main__":
    harness.main()

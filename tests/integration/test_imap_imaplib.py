"""IMAP4rev1 integration tests with Python's imaplib (and a raw socket
client where imaplib cannot see the wire): LOGIN, AUTHENTICATE PLAIN and
CRAM-MD5, STARTTLS and IMAPS, LOGINDISABLED; mail delivered over SMTP read
back byte for byte; ENVELOPE, BODYSTRUCTURE, sections and partials; SEARCH;
STORE; COPY, MOVE, UID EXPUNGE and APPEND with UIDPLUS codes; mailbox
management; two sessions seeing each other's changes; IDLE; POP3 interplay;
bad input.

Every test makes its own inbox, so tests do not see each other's mail;
every socket has a timeout."""

import base64
import datetime
import imaplib
import poplib
import re
import socket
import ssl
import time

import harness
from harness import CRLF, SOCK_TIMEOUT, insecure_context
from imap_helpers import (RawIMAP, fetch, fetch_one, imap_connect, imap_login,
                          imap_logout, join_imaplib, new_inbox, parse_fetch_responses,
                          parse_value, search_ids, simple_message, smtp_send, status_of)

CAPABILITIES = ("IMAP4REV1", "LITERAL+", "SASL-IR", "ID", "ENABLE", "IDLE", "NAMESPACE",
                "UNSELECT", "CHILDREN", "UIDPLUS", "MOVE", "SPECIAL-USE")


def caps_of(line):
    """The capability names (upper-cased) in a CAPABILITY response or code."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    m = re.search(r"CAPABILITY ([^\]]*)", text, re.I)
    if not m:
        raise AssertionError("no CAPABILITY in %r" % text)
    return set(w.upper() for w in m.group(1).split())


def ok(result, what=""):
    typ, data = result
    if typ != "OK":
        raise AssertionError("%s: %s %r" % (what, typ, data))
    return data


def code_in(data, code):
    """The text of the response code `code` ([CODE text]) in imaplib data."""
    for item in data:
        if isinstance(item, tuple):
            item = item[0]
        if item is None:
            continue
        m = re.search(rb"\[" + code.encode() + rb"(?: ([^\]]*))?\]", item, re.I)
        if m:
            return (m.group(1) or b"").decode()
    return None


def lines_matching(lines, pattern):
    return [l for l in lines if re.match(pattern, l, re.I)]


class ImapTestCase(harness.TestCase):
    """Helpers on top of the per-class server."""

    def inbox(self, prefix="i"):
        return new_inbox(self.server, prefix)

    def deliver(self, user, password, msg):
        return smtp_send(self.server, user, password, msg)

    def login(self, user, password, tls=False):
        m = imap_login(self.server, user, password, tls)
        self.addCleanup(imap_logout, m)
        return m

    def raw(self, tls=False):
        host_port = self.server.addr("imaps" if tls else "imap")
        r = RawIMAP(host_port, insecure_context() if tls else None)
        self.addCleanup(r.close)
        greeting = r.greeting()
        self.assertTrue(greeting.startswith(b"* OK"), greeting)
        return r

    def raw_login(self, user, password, select=None):
        r = self.raw()
        r.login(user, password)
        if select is not None:
            untagged, tagged = r.command('SELECT "%s"' % select)
            self.assertEqual(status_of(tagged), "OK", (untagged, tagged))
        return r

    def assertTaggedOK(self, tagged, msg=None):
        self.assertEqual(status_of(tagged), "OK", msg or tagged)

    def select_count(self, m, mailbox="INBOX", readonly=False):
        data = ok(m.select(mailbox, readonly), "SELECT %s" % mailbox)
        return int(data[0])


# ---------------------------------------------------------------------------
# Authentication and TLS


class AuthTests(ImapTestCase):

    def test_greeting_and_capability(self):
        r = self.raw()
        untagged, tagged = r.command("CAPABILITY")
        self.assertTaggedOK(tagged)
        caps = lines_matching(untagged, rb"\* CAPABILITY ")
        self.assertEqual(len(caps), 1, untagged)
        have = caps_of(caps[0])
        for cap in CAPABILITIES + ("STARTTLS", "AUTH=PLAIN", "AUTH=LOGIN", "AUTH=CRAM-MD5"):
            self.assertIn(cap, have)
        self.assertNotIn("LOGINDISABLED", have)

    def test_login(self):
        user, pw = self.inbox()
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        self.assertEqual(m.state, "NONAUTH")
        typ, data = m.login(user, pw)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(m.state, "AUTH")
        self.assertEqual(self.select_count(m), 0)
        typ, data = m.logout()
        self.assertEqual(typ, "BYE", data)

    def test_login_default_inbox(self):
        m = self.login("dev", "dev")
        ok(m.select("INBOX"), "SELECT INBOX of dev")

    def test_authenticate_plain(self):
        user, pw = self.inbox()
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        typ, data = m.authenticate("PLAIN", lambda challenge: ("\0%s\0%s" % (user, pw)).encode())
        self.assertEqual(typ, "OK", data)
        self.assertEqual(m.state, "AUTH")
        self.assertEqual(self.select_count(m), 0)

    def test_authenticate_plain_initial_response(self):
        user, pw = self.inbox()
        r = self.raw()
        untagged, tagged = r.command("AUTHENTICATE PLAIN " + harness.auth_plain(user, pw))
        self.assertTaggedOK(tagged)
        untagged, tagged = r.command("SELECT INBOX")
        self.assertTaggedOK(tagged)

    def test_authenticate_login(self):
        user, pw = self.inbox()
        r = self.raw()
        r.send(b"a1 AUTHENTICATE LOGIN\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.send(harness.b64(user).encode() + CRLF)
        self.assertTrue(r.line().startswith(b"+"))
        r.send(harness.b64(pw).encode() + CRLF)
        untagged, tagged = r.until_tagged("a1")
        self.assertTaggedOK(tagged)

    def test_cram_md5(self):
        user, pw = self.inbox()
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        typ, data = m.login_cram_md5(user, pw)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(m.state, "AUTH")
        self.assertEqual(self.select_count(m), 0)

    def tagged_within(self, r, tag, seconds=5.0):
        """Reads until the tagged reply; fails (showing what came instead)
        if there is none within `seconds`."""
        seen = []
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            try:
                if left <= 0:
                    raise socket.timeout()
                line = r.line(timeout=left)
            except socket.timeout:
                self.fail("no tagged reply for %s within %.0f s; got %r" % (tag, seconds, seen))
            if line.startswith(tag.encode() + b" "):
                return seen, line
            seen.append(line)

    def test_wrong_password_authenticate(self):
        user, pw = self.inbox()
        r = self.raw()
        r.send(b"w1 AUTHENTICATE PLAIN " + harness.auth_plain(user, "nope").encode() + CRLF)
        untagged, tagged = self.tagged_within(r, "w1")
        self.assertRegex(tagged, rb"^w1 NO \[AUTHENTICATIONFAILED\]")
        r.send(b"w2 AUTHENTICATE PLAIN\r\n")
        self.assertTrue(r.line().startswith(b"+"))
        r.send(harness.auth_plain(user, "nope").encode() + CRLF)
        untagged, tagged = self.tagged_within(r, "w2")
        self.assertRegex(tagged, rb"^w2 NO \[AUTHENTICATIONFAILED\]")
        # imaplib waits for the tagged reply as well
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        m.sock.settimeout(5)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.authenticate("PLAIN", lambda challenge: ("\0%s\0bad" % user).encode())
        self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))

    def test_wrong_password(self):
        user, pw = self.inbox()
        r = self.raw()
        untagged, tagged = r.command('LOGIN "%s" "wrong-%s"' % (user, pw), tag="w1")
        self.assertRegex(tagged, rb"^w1 NO \[AUTHENTICATIONFAILED\]")
        # still not authenticated, and the right password works after that
        untagged, tagged = r.command("SELECT INBOX")
        self.assertIn(status_of(tagged), ("BAD", "NO"), tagged)
        untagged, tagged = r.command('LOGIN "%s" "%s"' % (user, pw))
        self.assertTaggedOK(tagged)
        # imaplib sees the failure too
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        with self.assertRaises(imaplib.IMAP4.error) as cm:
            m.login(user, "bad")
        self.assertIn("AUTHENTICATIONFAILED", str(cm.exception))

    def test_unknown_user(self):
        r = self.raw()
        untagged, tagged = r.command('LOGIN "no-such-inbox-xyz" "dev"', tag="u1")
        self.assertRegex(tagged, rb"^u1 NO \[AUTHENTICATIONFAILED\]")

    def test_starttls(self):
        user, pw = self.inbox()
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        self.assertIn("STARTTLS", m.capabilities)
        typ, data = m.starttls(ssl_context=insecure_context())
        self.assertEqual(typ, "OK", data)
        self.assertIsInstance(m.sock, ssl.SSLSocket)
        # RFC 3501 6.2.1: the capabilities after TLS no longer offer STARTTLS
        caps = set(c.upper() for c in m.capabilities)
        self.assertNotIn("STARTTLS", caps)
        self.assertIn("AUTH=PLAIN", caps)
        ok(m.login(user, pw), "LOGIN after STARTTLS")
        self.assertEqual(self.select_count(m), 0)

    def test_starttls_twice_refused(self):
        r = self.raw()
        untagged, tagged = r.command("STARTTLS", tag="s1")
        self.assertTaggedOK(tagged)
        r.sock = insecure_context().wrap_socket(r.sock)
        untagged, tagged = r.command("STARTTLS", tag="s2")
        self.assertIn(status_of(tagged), ("BAD", "NO"), tagged)
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)

    def test_imaps(self):
        user, pw = self.inbox()
        msg = simple_message("over imaps")
        msg_id = self.deliver(user, pw, msg)
        m = imap_connect(self.server, tls=True)
        self.addCleanup(imap_logout, m)
        self.assertIsInstance(m.sock, ssl.SSLSocket)
        self.assertNotIn("STARTTLS", [c.upper() for c in m.capabilities])
        ok(m.login(user, pw))
        self.assertEqual(self.select_count(m), 1)
        item = fetch_one(m, "1", "(BODY.PEEK[])")
        self.assertEqual(item["BODY[]"], self.server.message_bytes(msg_id))


class PlaintextDisabledTests(ImapTestCase):
    server_args = ("--allow-plaintext-auth", "no")

    def test_logindisabled_advertised(self):
        r = self.raw()
        untagged, tagged = r.command("CAPABILITY")
        have = caps_of(lines_matching(untagged, rb"\* CAPABILITY ")[0])
        self.assertIn("LOGINDISABLED", have)
        self.assertIn("STARTTLS", have)
        self.assertIn("AUTH=CRAM-MD5", have)
        self.assertNotIn("AUTH=PLAIN", have)
        self.assertNotIn("AUTH=LOGIN", have)

    def test_login_refused_before_tls(self):
        r = self.raw()
        untagged, tagged = r.command('LOGIN "dev" "dev"', tag="p1")
        self.assertIn(status_of(tagged), ("NO", "BAD"), tagged)
        untagged, tagged = r.command("AUTHENTICATE PLAIN " + harness.auth_plain("dev", "dev"),
                                     tag="p2")
        self.assertIn(status_of(tagged), ("NO", "BAD"), tagged)
        untagged, tagged = r.command("SELECT INBOX", tag="p3")
        self.assertIn(status_of(tagged), ("NO", "BAD"), tagged)
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        with self.assertRaises(imaplib.IMAP4.error):
            m.login("dev", "dev")

    def test_cram_md5_allowed(self):
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        ok(m.login_cram_md5("dev", "dev"), "CRAM-MD5 without TLS")
        ok(m.select("INBOX"))

    def test_login_after_starttls(self):
        m = imap_connect(self.server)
        self.addCleanup(imap_logout, m)
        ok(m.starttls(ssl_context=insecure_context()))
        caps = set(c.upper() for c in m.capabilities)
        self.assertNotIn("LOGINDISABLED", caps)
        self.assertIn("AUTH=PLAIN", caps)
        ok(m.login("dev", "dev"), "LOGIN after STARTTLS")

    def test_login_over_imaps(self):
        m = imap_connect(self.server, tls=True)
        self.addCleanup(imap_logout, m)
        self.assertNotIn("LOGINDISABLED", [c.upper() for c in m.capabilities])
        ok(m.login("dev", "dev"), "LOGIN over IMAPS")


# ---------------------------------------------------------------------------
# Messages: delivery, FETCH


def lines(*ls):
    return b"".join(l + CRLF for l in ls)


STRUCT_HEADER = lines(
    b"From: Alice Example <alice@example.test>",
    b"To: Bob <bob@example.test>, carol@example.test",
    b'Cc: "Dave, Jr." <dave@example.test>',
    b"Subject: structure test",
    b"Date: Tue, 04 Mar 2025 10:20:30 +0000",
    b"Message-ID: <struct-1@example.test>",
    b"In-Reply-To: <parent-1@example.test>",
    b"MIME-Version: 1.0",
    b'Content-Type: multipart/mixed; boundary="outer-b"',
)
PART_PLAIN_MIME = lines(b"Content-Type: text/plain; charset=utf-8",
                        b"Content-Transfer-Encoding: quoted-printable", b"")
PART_PLAIN = lines(b"Hello plain", b"second line")
PART_HTML_MIME = lines(b"Content-Type: text/html; charset=utf-8", b"")
PART_HTML = lines(b"<p>Hello html</p>")
PART_ALT_MIME = lines(b'Content-Type: multipart/alternative; boundary="inner-b"', b"")
PART_ALT = (lines(b"--inner-b") + PART_PLAIN_MIME + PART_PLAIN + CRLF +
            lines(b"--inner-b") + PART_HTML_MIME + PART_HTML + CRLF +
            lines(b"--inner-b--"))
PART_PDF_MIME = lines(b'Content-Type: application/pdf; name="doc.pdf"',
                      b"Content-Transfer-Encoding: base64",
                      b'Content-Disposition: attachment; filename="doc.pdf"', b"")
PART_PDF = lines(b"JVBERi0xLjQK")
STRUCT_TEXT = (lines(b"This is a preamble.", b"--outer-b") + PART_ALT_MIME + PART_ALT +
               CRLF + lines(b"--outer-b") + PART_PDF_MIME + PART_PDF + CRLF +
               lines(b"--outer-b--"))
STRUCT_MSG = STRUCT_HEADER + CRLF + STRUCT_TEXT

STRUCT_ENVELOPE = (
    b'("Tue, 04 Mar 2025 10:20:30 +0000" "structure test" '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Alice Example" NIL "alice" "example.test")) '
    b'(("Bob" NIL "bob" "example.test")(NIL NIL "carol" "example.test")) '
    b'(("Dave, Jr." NIL "dave" "example.test")) NIL '
    b'"<parent-1@example.test>" "<struct-1@example.test>")')
STRUCT_BODYSTRUCTURE = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 26 2 NIL NIL NIL NIL)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 19 1 NIL NIL NIL NIL) '
    b'"alternative" ("boundary" "inner-b") NIL NIL NIL)'
    b'("application" "pdf" ("name" "doc.pdf") NIL NIL "base64" 14 NIL '
    b'("attachment" ("filename" "doc.pdf")) NIL NIL) '
    b'"mixed" ("boundary" "outer-b") NIL NIL NIL)')
STRUCT_BODY = (
    b'((("text" "plain" ("charset" "utf-8") NIL NIL "quoted-printable" 26 2)'
    b'("text" "html" ("charset" "utf-8") NIL NIL "7bit" 19 1) "alternative")'
    b'("application" "pdf" ("name" "doc.pdf") NIL NIL "base64" 14) "mixed")')

INNER_MSG = lines(b"From: inner@example.test", b"To: someone@example.test",
                  b"Subject: the inner one", b"", b"Inner body line.")
FORWARD_MSG = (lines(b"From: outer@example.test", b"To: rcpt@example.test",
                     b"Subject: forwarded", b"Date: Wed, 05 Mar 2025 08:00:00 +0000",
                     b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="fw"',
                     b"", b"--fw", b"Content-Type: text/plain", b"", b"See attached.", b"",
                     b"--fw", b"Content-Type: message/rfc822", b"") +
               INNER_MSG + CRLF + lines(b"--fw--"))


def text(value):
    """A parsed string or atom as str."""
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def item_named(fi, prefix):
    """The value of the first item whose name starts with `prefix`."""
    for name in fi.names:
        if name.upper().startswith(prefix.upper()):
            return fi.items[name.upper()]
    raise AssertionError("no %s item in %r" % (prefix, fi))


class FetchTests(ImapTestCase):

    def test_smtp_message_in_inbox(self):
        user, pw = self.inbox()
        msg = simple_message("delivered over smtp")
        msg_id = self.deliver(user, pw, msg)
        stored = self.server.message_bytes(msg_id)
        self.assertEqual(harness.strip_received(stored), msg)
        m = self.login(user, pw)
        typ, data = m.select("INBOX")
        self.assertEqual((typ, data), ("OK", [b"1"]))
        self.assertEqual(m.untagged_responses.get("RECENT"), [b"1"])
        uidvalidity = int(m.untagged_responses["UIDVALIDITY"][0])
        self.assertGreater(uidvalidity, 0)
        self.assertEqual(m.untagged_responses.get("UIDNEXT"), [b"2"])
        item = fetch_one(m, "1", "(UID RFC822.SIZE FLAGS INTERNALDATE BODY.PEEK[])")
        self.assertEqual(item.seq, 1)
        self.assertEqual(item["UID"], "1")
        self.assertEqual(item["BODY[]"], stored)
        self.assertEqual(int(item["RFC822.SIZE"]), len(stored))
        self.assertNotIn("\\Seen", item.flags())
        self.assertIn("\\Recent", item.flags())
        # INTERNALDATE is the arrival time
        when = imaplib.Internaldate2tuple(b'INTERNALDATE "' + item["INTERNALDATE"] + b'"')
        self.assertIsNotNone(when, item["INTERNALDATE"])
        self.assertLess(abs(time.mktime(when) - time.time()), 120)
        # the same by UID
        item = fetch_one(m, "1", "(BODY.PEEK[])", uid=True)
        self.assertEqual(item["BODY[]"], stored)
        self.assertEqual(item["UID"], "1")
        # a second message
        msg2 = simple_message("second one")
        msg_id2 = self.deliver(user, pw, msg2)
        ok(m.noop())
        self.assertEqual(self.select_count(m), 2)
        item = fetch_one(m, "2", "(UID BODY.PEEK[])")
        self.assertEqual(item["UID"], "2")
        self.assertEqual(item["BODY[]"], self.server.message_bytes(msg_id2))

    def test_rfc822_items(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, simple_message("rfc822 items"))
        stored = self.server.message_bytes(msg_id)
        header, body = harness.split_message(stored)
        m = self.login(user, pw)
        self.select_count(m)
        # RFC 3501 6.4.5: RFC822.HEADER is BODY.PEEK[HEADER], RFC822 is
        # BODY[], RFC822.TEXT is BODY[TEXT]
        with self.subTest("RFC822.HEADER"):
            item = fetch_one(m, "1", "(RFC822.HEADER)")
            self.assertEqual(item["RFC822.HEADER"], header + CRLF)
            self.assertNotIn("FLAGS", item)          # a peek
        with self.subTest("RFC822.TEXT"):
            item = fetch_one(m, "1", "(RFC822.TEXT)")
            self.assertEqual(item["RFC822.TEXT"], body)
            self.assertIn("\\Seen", item.flags())    # reported with the new flags
        with self.subTest("RFC822"):
            item = fetch_one(m, "1", "(RFC822)")
            self.assertEqual(item["RFC822"], stored)

    def test_macros(self):
        user, pw = self.inbox()
        self.deliver(user, pw, STRUCT_MSG)
        m = self.login(user, pw)
        self.select_count(m)
        fast = fetch_one(m, "1", "FAST")
        self.assertEqual(set(fast.items), {"FLAGS", "INTERNALDATE", "RFC822.SIZE"})
        al = fetch_one(m, "1", "ALL")
        self.assertEqual(set(al.items), {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"})
        full = fetch_one(m, "1", "FULL")
        self.assertEqual(set(full.items),
                         {"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"})
        self.assertEqual(full.raw["BODY"], STRUCT_BODY)

    def test_envelope_and_bodystructure(self):
        user, pw = self.inbox()
        self.deliver(user, pw, STRUCT_MSG)
        m = self.login(user, pw)
        self.select_count(m)
        item = fetch_one(m, "1", "(ENVELOPE BODYSTRUCTURE BODY)")
        self.assertEqual(item.raw["ENVELOPE"], STRUCT_ENVELOPE)
        self.assertEqual(item.raw["BODYSTRUCTURE"], STRUCT_BODYSTRUCTURE)
        self.assertEqual(item.raw["BODY"], STRUCT_BODY)

    def test_sections_of_multipart(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, STRUCT_MSG)
        stored = self.server.message_bytes(msg_id)
        header, text = harness.split_message(stored)
        self.assertEqual(text, STRUCT_TEXT)
        m = self.login(user, pw)
        self.select_count(m)
        want = {
            "BODY[HEADER]": header + CRLF,
            "BODY[TEXT]": STRUCT_TEXT,
            "BODY[1]": PART_ALT,
            "BODY[1.MIME]": PART_ALT_MIME,
            "BODY[1.1]": PART_PLAIN,
            "BODY[1.1.MIME]": PART_PLAIN_MIME,
            "BODY[1.2]": PART_HTML,
            "BODY[1.2.MIME]": PART_HTML_MIME,
            "BODY[2]": PART_PDF,
            "BODY[2.MIME]": PART_PDF_MIME,
        }
        for section, expected in want.items():
            peek = section.replace("BODY[", "BODY.PEEK[")
            item = fetch_one(m, "1", "(%s)" % peek)
            self.assertEqual(item.get(section), expected, "%s: %r" % (section, item))
            self.assertNotIn("FLAGS", item, section)
        # a part that does not exist is an empty string (or NIL), not an error
        item = fetch_one(m, "1", "(BODY.PEEK[3])")
        self.assertIn(item.get("BODY[3]"), (b"", None), item)

    def test_sections_of_message_rfc822(self):
        user, pw = self.inbox()
        self.deliver(user, pw, FORWARD_MSG)
        m = self.login(user, pw)
        self.select_count(m)
        inner_header, inner_body = INNER_MSG.split(CRLF + CRLF, 1)
        want = {
            "BODY[1]": lines(b"See attached."),
            "BODY[2]": INNER_MSG,
            "BODY[2.HEADER]": inner_header + CRLF + CRLF,
            "BODY[2.TEXT]": inner_body,
            "BODY[2.1]": inner_body,
            "BODY[2.MIME]": lines(b"Content-Type: message/rfc822", b""),
        }
        for section, expected in want.items():
            item = fetch_one(m, "1", "(%s)" % section.replace("BODY[", "BODY.PEEK["))
            self.assertEqual(item.get(section), expected, "%s: %r" % (section, item))
        item = fetch_one(m, "1", "(BODY.PEEK[2.HEADER.FIELDS (Subject)])")
        self.assertEqual(item_named(item, "BODY[2.HEADER.FIELDS"),
                         b"Subject: the inner one\r\n\r\n")
        item = fetch_one(m, "1", "(BODYSTRUCTURE)")
        bs = item["BODYSTRUCTURE"]
        self.assertEqual([text(x).lower() for x in bs[1][:2]], ["message", "rfc822"], bs)
        # body-type-msg: ... size envelope body lines
        envelope = bs[1][7]
        self.assertEqual(envelope[1], b"the inner one")
        self.assertEqual(int(bs[1][6]), len(INNER_MSG))
        self.assertEqual([text(x).lower() for x in bs[1][8][:2]], ["text", "plain"])
        self.assertEqual(int(bs[1][9]), INNER_MSG.count(b"\n"))

    def test_header_fields(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, STRUCT_MSG)
        stored = self.server.message_bytes(msg_id)
        m = self.login(user, pw)
        self.select_count(m)
        item = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS (subject FROM)])")
        self.assertEqual(item_named(item, "BODY[HEADER.FIELDS"),
                         b"From: Alice Example <alice@example.test>\r\n"
                         b"Subject: structure test\r\n\r\n")
        item = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS (X-Not-There)])")
        self.assertEqual(item_named(item, "BODY[HEADER.FIELDS"), b"\r\n")
        item = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS.NOT (Received Content-Type "
                                 "MIME-Version Message-ID In-Reply-To Cc)])")
        self.assertEqual(item_named(item, "BODY[HEADER.FIELDS.NOT"),
                         lines(b"From: Alice Example <alice@example.test>",
                               b"To: Bob <bob@example.test>, carol@example.test",
                               b"Subject: structure test",
                               b"Date: Tue, 04 Mar 2025 10:20:30 +0000", b""))
        item = fetch_one(m, "1", "(FLAGS)")
        self.assertNotIn("\\Seen", item.flags())
        # RFC822.HEADER / BODY[HEADER] include the Received: line the server added
        item = fetch_one(m, "1", "(BODY.PEEK[HEADER.FIELDS (Received)])")
        got = item_named(item, "BODY[HEADER.FIELDS")
        self.assertTrue(got.lower().startswith(b"received:"), got)
        self.assertTrue(stored.startswith(got[:-2]), got)

    def test_partial(self):
        user, pw = self.inbox()
        msg_id = self.deliver(user, pw, STRUCT_MSG)
        stored = self.server.message_bytes(msg_id)
        m = self.login(user, pw)
        self.select_count(m)
        item = fetch_one(m, "1", "(BODY.PEEK[]<0.10>)")
        self.assertEqual(item.names, ["BODY[]<0>"])
        self.assertEqual(item["BODY[]<0>"], stored[:10])
        item = fetch_one(m, "1", "(BODY.PEEK[]<100.57>)")
        self.assertEqual(item["BODY[]<100>"], stored[100:157])
        item = fetch_one(m, "1", "(BODY.PEEK[]<%d.100>)" % (len(stored) - 7))
        self.assertEqual(item["BODY[]<%d>" % (len(stored) - 7)], stored[-7:])
        item = fetch_one(m, "1", "(BODY.PEEK[]<%d.10>)" % (len(stored) + 5))
        self.assertEqual(item["BODY[]<%d>" % (len(stored) + 5)], b"")
        item = fetch_one(m, "1", "(BODY.PEEK[TEXT]<3.9>)")
        self.assertEqual(item["BODY[TEXT]<3>"], STRUCT_TEXT[3:12])
        item = fetch_one(m, "1", "(BODY.PEEK[1.1]<6.5>)")
        self.assertEqual(item["BODY[1.1]<6>"], b"plain")
        item = fetch_one(m, "1", "(FLAGS)")
        self.assertNotIn("\\Seen", item.flags())
        # without PEEK a partial fetch sets \Seen too
        item = fetch_one(m, "1", "(BODY[]<0.5>)")
        self.assertEqual(item["BODY[]<0>"], stored[:5])
        self.assertIn("\\Seen", item.flags())

    def test_peek_and_seen(self):
        user, pw = self.inbox()
        for i in range(3):
            self.deliver(user, pw, simple_message("seen test %d" % i))
        m = self.login(user, pw)
        self.assertEqual(self.select_count(m), 3)
        item = fetch_one(m, "1", "(BODY.PEEK[])")
        self.assertNotIn("FLAGS", item)
        item = fetch_one(m, "1", "(FLAGS)")
        self.assertNotIn("\\Seen", item.flags())
        # BODY[TEXT] without PEEK: \Seen set and the new FLAGS reported
        item = fetch_one(m, "2", "(BODY[TEXT])")
        self.assertIn("FLAGS", item, "FETCH BODY[TEXT] did not report FLAGS: %r" % item)
        self.assertIn("\\Seen", item.flags())
        item = fetch_one(m, "2", "(FLAGS)")
        self.assertIn("\\Seen", item.flags())
        # and it stays set in a new session
        m2 = self.login(user, pw)
        ok(m2.select("INBOX"))
        flags = {f.seq: f.flags() for f in fetch(m2, "1:3", "(FLAGS)")}
        self.assertNotIn("\\Seen", flags[1])
        self.assertIn("\\Seen", flags[2])
        self.assertNotIn("\\Seen", flags[3])
        # BODY[HEADER] without PEEK sets it too (RFC 3501 6.4.5)
        item = fetch_one(m2, "3", "(BODY[HEADER])")
        self.assertIn("\\Seen", item.flags())
        # a second non-peek fetch of a \Seen message need not report FLAGS
        item = fetch_one(m2, "3", "(BODY[HEADER] FLAGS)")
        self.assertIn("\\Seen", item.flags())

    def test_fetch_ranges(self):
        user, pw = self.inbox()
        for i in range(4):
            self.deliver(user, pw, simple_message("range %d" % i))
        m = self.login(user, pw)
        self.assertEqual(self.select_count(m), 4)
        self.assertEqual([f.seq for f in fetch(m, "1:*", "(UID)")], [1, 2, 3, 4])
        self.assertEqual([f.seq for f in fetch(m, "2,4", "(UID)")], [2, 4])
        self.assertEqual([f.seq for f in fetch(m, "*:3", "(UID)")], [3, 4])
        self.assertEqual([f.seq for f in fetch(m, "*", "(UID)")], [4])
        got = fetch(m, "3:*", "(FLAGS)", uid=True)
        self.assertEqual([(f.seq, f["UID"]) for f in got], [(3, "3"), (4, "4")])
        # UID FETCH of a range with no UIDs in it is not an error
        typ, data = m.uid("FETCH", "100:200", "(FLAGS)")
        self.assertEqual(typ, "OK", data)
        self.assertEqual([d for d in data if d], [])
        # "n:*" with n above the highest UID still returns the last message
        got = fetch(m, "100:*", "(FLAGS)", uid=True)
        self.assertEqual([f["UID"] for f in got], ["4"])


# ---------------------------------------------------------------------------
# SEARCH


def b64_lines(data, width=76):
    enc = base64.b64encode(data)
    return b"".join(enc[i:i + width] + CRLF for i in range(0, len(enc), width))


SEARCH_MSGS = [
    # (internal date, flags, message)
    ("01-Jan-2020 12:00:00 +0000", r"(\Seen)",
     lines(b"From: Alice Adams <alice@example.test>", b"To: team@example.test",
           b"Subject: =?UTF-8?B?w4ljbGFpciBhdSBjaG9jb2xhdA==?=",
           b"Date: Wed, 01 Jan 2020 11:00:00 +0000", b"X-Project: apollo",
           b"", b"A short plain body.")),
    ("15-Jun-2021 12:00:00 +0000", None,
     lines(b"From: bob@example.test", b"To: alice@example.test",
           b"Subject: weekly report", b"Date: Tue, 15 Jun 2021 09:00:00 +0000",
           b"MIME-Version: 1.0", b'Content-Type: multipart/mixed; boundary="sb"', b"",
           b"--sb", b"Content-Type: text/plain; charset=utf-8",
           b"Content-Transfer-Encoding: base64", b"") +
     b64_lines(b"Dear team,\r\nthe secret word is Needle-In-Base64 today.\r\n") +
     lines(b"--sb", b"Content-Type: application/octet-stream",
           b"Content-Transfer-Encoding: base64", b"") +
     b64_lines(bytes(range(256)) * 12) + lines(b"--sb--")),
    ("20-Dec-2022 12:00:00 +0000", r"(\Flagged $Label1)",
     lines(b"From: Carol <carol@example.test>", b"To: Dave <dave@example.test>",
           b"Cc: erin@example.test", b"Bcc: frank@example.test",
           b"Subject: =?ISO-8859-1?Q?caf=E9_menu?=",
           b"Date: Tue, 20 Dec 2022 10:00:00 +0000", b"MIME-Version: 1.0",
           b"Content-Type: text/plain; charset=iso-8859-1",
           b"Content-Transfer-Encoding: quoted-printable", b"",
           b"Soft=", b"break and caf=E9 au lait.")),
]


class SearchTests(ImapTestCase):
    """One inbox: a placeholder message appended and expunged first (so
    UIDs are sequence numbers + 1), then three appended messages with known
    internal dates, then one delivered over SMTP today."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.user, cls.pw = new_inbox(cls.server, "s")
        m = imap_login(cls.server, cls.user, cls.pw)
        try:
            ok(m.append("INBOX", None, None, simple_message("placeholder")))
            ok(m.select("INBOX"))
            ok(m.store("1", "+FLAGS", r"(\Deleted)"))
            ok(m.expunge())
            for date, flags, msg in SEARCH_MSGS:
                ok(m.append("INBOX", flags, '"%s"' % date, msg), "APPEND")
        finally:
            imap_logout(m)
        smtp_send(cls.server, cls.user, cls.pw,
                  simple_message("live mail", sender=b"Dan <dan@example.test>",
                                 body=b"delivered today\r\n"))

    def setUp(self):
        super().setUp()
        self.m = self.login(self.user, self.pw)
        self.assertEqual(self.select_count(self.m), 4)

    def search(self, *criteria, charset=None, literal=None):
        self.m.literal = literal
        typ, data = self.m.search(charset, *criteria)
        self.assertEqual(typ, "OK", (criteria, data))
        return search_ids(data)

    def uid_search(self, *criteria):
        typ, data = self.m.uid("SEARCH", *criteria)
        self.assertEqual(typ, "OK", (criteria, data))
        return search_ids(data)

    def test_all_and_sequence_sets(self):
        self.assertEqual(self.search("ALL"), [1, 2, 3, 4])
        self.assertEqual(self.search("2:*"), [2, 3, 4])
        self.assertEqual(self.search("*"), [4])
        self.assertEqual(self.search("1,3"), [1, 3])
        self.assertEqual(self.uid_search("ALL"), [2, 3, 4, 5])

    def test_uid_ranges(self):
        self.assertEqual(self.search("UID", "3:4"), [2, 3])
        self.assertEqual(self.search("UID", "4:*"), [3, 4])
        self.assertEqual(self.uid_search("UID", "3:4"), [3, 4])
        self.assertEqual(self.uid_search("UID", "1"), [])
        self.assertEqual(self.uid_search("UID", "2,5"), [2, 5])
        self.assertEqual(self.uid_search("1:2"), [2, 3])  # a sequence set is message numbers

    def test_from_to_cc_bcc(self):
        self.assertEqual(self.search("FROM", "alice"), [1])
        self.assertEqual(self.search("FROM", '"ALICE ADAMS"'), [1])
        self.assertEqual(self.search("FROM", "BOB@example"), [2])
        self.assertEqual(self.search("TO", "alice@example.test"), [2])
        self.assertEqual(self.search("TO", "dave"), [3])
        self.assertEqual(self.search("CC", "erin"), [3])
        self.assertEqual(self.search("BCC", "frank"), [3])
        self.assertEqual(self.search("FROM", "nobody-here"), [])

    def test_subject_rfc2047(self):
        self.assertEqual(self.search("SUBJECT", "chocolat"), [1])
        self.assertEqual(self.search("SUBJECT", charset="UTF-8",
                                     literal="Éclair".encode("utf-8")), [1])
        self.assertEqual(self.search("SUBJECT", charset="UTF-8",
                                     literal="café".encode("utf-8")), [3])
        # case-insensitive beyond ASCII too
        self.assertEqual(self.search("SUBJECT", charset="UTF-8",
                                     literal="ÉCLAIR".encode("utf-8")), [1])
        self.assertEqual(self.search("SUBJECT", charset="UTF-8",
                                     literal="CAFÉ".encode("utf-8")), [3])
        self.assertEqual(self.search("SUBJECT", "menu"), [3])
        self.assertEqual(self.search("SUBJECT", "WEEKLY"), [2])
        self.assertEqual(self.search("HEADER", "Subject", "caf"), [3])

    def test_header(self):
        self.assertEqual(self.search("HEADER", "X-Project", "APOLLO"), [1])
        self.assertEqual(self.search("HEADER", "X-Project", '""'), [1])
        self.assertEqual(self.search("HEADER", "Message-ID", "liveMail"), [4])

    def test_body_and_text(self):
        self.assertEqual(self.search("BODY", "needle-in-base64"), [2])
        self.assertEqual(self.search("BODY", "NEEDLE-IN"), [2])
        self.assertEqual(self.search("TEXT", '"secret word"'), [2])
        self.assertEqual(self.search("BODY", "Softbreak"), [3])
        self.assertEqual(self.search("BODY", '"delivered today"'), [4])
        self.assertEqual(self.search("BODY", '"short plain"'), [1])
        # TEXT looks at the header too, BODY does not
        self.assertEqual(self.search("TEXT", "apollo"), [1])
        self.assertEqual(self.search("BODY", "apollo"), [])
        self.assertEqual(self.search("BODY", "no-such-text"), [])

    def test_body_in_other_charset(self):
        # the search string is UTF-8 (CHARSET UTF-8), the body ISO-8859-1
        # quoted-printable: RFC 3501 6.4.4 matches text, not octets
        self.assertEqual(self.search("BODY", charset="UTF-8",
                                     literal="café au lait".encode("utf-8")), [3])

    def test_dates(self):
        self.assertEqual(self.search("BEFORE", "1-Jun-2021"), [1])
        self.assertEqual(self.search("SINCE", "1-Jun-2021"), [2, 3, 4])
        self.assertEqual(self.search("ON", "15-Jun-2021"), [2])
        self.assertEqual(self.search("ON", "16-Jun-2021"), [])
        self.assertEqual(self.search("SINCE", "15-Jun-2021", "BEFORE", "21-Dec-2022"), [2, 3])
        today = datetime.datetime.now().strftime("%d-%b-%Y")
        self.assertEqual(self.search("ON", today), [4])
        self.assertEqual(self.search("SENTON", "20-Dec-2022"), [3])
        self.assertEqual(self.search("SENTBEFORE", "1-Jan-2021"), [1])
        self.assertEqual(self.search("SENTSINCE", "1-Jan-2021", "SENTBEFORE", "1-Jan-2025"),
                         [2, 3])

    def test_sizes(self):
        sizes = {f.seq: int(f["RFC822.SIZE"]) for f in fetch(self.m, "1:*", "(RFC822.SIZE)")}
        self.assertEqual(sizes[1], len(SEARCH_MSGS[0][2]))
        self.assertEqual(sizes[2], len(SEARCH_MSGS[1][2]))
        self.assertGreater(sizes[2], 4000)
        self.assertEqual(self.search("LARGER", "4000"), [2])
        self.assertEqual(self.search("SMALLER", "4000"), [1, 3, 4])
        self.assertEqual(self.search("LARGER", str(sizes[2])), [])
        self.assertEqual(self.search("LARGER", str(sizes[2] - 1)), [2])
        self.assertEqual(self.search("SMALLER", str(sizes[1])), sorted(
            s for s, n in sizes.items() if n < sizes[1]))

    def test_flags(self):
        self.assertEqual(self.search("SEEN"), [1])
        self.assertEqual(self.search("UNSEEN"), [2, 3, 4])
        self.assertEqual(self.search("FLAGGED"), [3])
        self.assertEqual(self.search("UNFLAGGED"), [1, 2, 4])
        self.assertEqual(self.search("KEYWORD", "$Label1"), [3])
        self.assertEqual(self.search("KEYWORD", "$label1"), [3])
        self.assertEqual(self.search("UNKEYWORD", "$Label1"), [1, 2, 4])
        self.assertEqual(self.search("ANSWERED"), [])
        self.assertEqual(self.search("UNANSWERED"), [1, 2, 3, 4])
        self.assertEqual(self.search("DELETED"), [])
        self.assertEqual(self.search("UNDELETED"), [1, 2, 3, 4])
        self.assertEqual(self.search("DRAFT"), [])
        self.assertEqual(self.search("UNDRAFT"), [1, 2, 3, 4])

    def test_or_not_and_parentheses(self):
        self.assertEqual(self.search("OR", "FROM", "alice", "FROM", "carol"), [1, 3])
        self.assertEqual(self.search("NOT", "FROM", "alice"), [2, 3, 4])
        self.assertEqual(self.search("UNSEEN", "FROM", "bob"), [2])
        self.assertEqual(self.search("NOT", "(OR", "SEEN", "FLAGGED)"), [2, 4])
        self.assertEqual(self.search("OR", "(FROM", "alice", "SUBJECT", "nothing)",
                                     "(LARGER", "4000)"), [2])
        self.assertEqual(self.search("OR", "OR", "FROM", "alice", "FROM", "bob",
                                     "FROM", "dan"), [1, 2, 4])
        self.assertEqual(self.uid_search("NOT", "UID", "2:3"), [4, 5])

    def test_bad_charset_and_syntax(self):
        typ, data = self.m._simple_command("SEARCH", "CHARSET", "X-NO-SUCH", "ALL")
        self.assertEqual(typ, "NO", data)
        self.assertIsNotNone(code_in(data, "BADCHARSET"), data)
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.search(None, "FROBNICATE")
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.search(None, "BEFORE", "32-Foo-2020")


# ---------------------------------------------------------------------------
# STORE, COPY, MOVE, EXPUNGE, APPEND


class StoreTests(ImapTestCase):

    def setUp(self):
        super().setUp()
        self.user, self.pw = self.inbox("st")
        for i in range(3):
            self.deliver(self.user, self.pw, simple_message("store %d" % i))
        self.m = self.login(self.user, self.pw)
        self.assertEqual(self.select_count(self.m), 3)

    def flags(self, m=None):
        return {f.seq: f.flags() - {"\\Recent"} for f in fetch(m or self.m, "1:*", "(FLAGS)")}

    def test_permanentflags(self):
        pf = self.m.untagged_responses.get("PERMANENTFLAGS")
        self.assertTrue(pf, self.m.untagged_responses)
        names = set(str(x) for x in parse_value(pf[0]))
        self.assertLessEqual({"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft", "\\*"},
                             names)
        fl = set(str(x) for x in parse_value(self.m.untagged_responses["FLAGS"][0]))
        self.assertLessEqual({"\\Answered", "\\Flagged", "\\Deleted", "\\Seen", "\\Draft"}, fl)

    def test_store_flags_and_keywords(self):
        typ, data = self.m.store("1", "+FLAGS", r"(\Flagged $Work)")
        self.assertEqual(typ, "OK", data)
        got = parse_fetch_responses(join_imaplib(data))
        self.assertEqual(len(got), 1, data)
        self.assertLessEqual({"\\Flagged", "$Work"}, got[0].flags())
        self.assertEqual(self.flags()[1], {"\\Flagged", "$Work"})
        ok(self.m.store("1", "-FLAGS", r"(\Flagged)"))
        self.assertEqual(self.flags()[1], {"$Work"})
        ok(self.m.store("1:2", "FLAGS", r"(\Answered \Draft Custom1)"))
        fl = self.flags()
        self.assertEqual(fl[1], {"\\Answered", "\\Draft", "Custom1"})
        self.assertEqual(fl[2], {"\\Answered", "\\Draft", "Custom1"})
        self.assertEqual(fl[3], set())
        ok(self.m.store("1", "FLAGS", "()"))
        self.assertEqual(self.flags()[1], set())
        # keywords are kept across sessions and are in FLAGS' list afterwards
        ok(self.m.store("3", "+FLAGS", r"($Later \Seen)"))
        m2 = self.login(self.user, self.pw)
        ok(m2.select("INBOX"))
        self.assertEqual(self.flags(m2)[3], {"$Later", "\\Seen"})
        fl = set(str(x) for x in parse_value(m2.untagged_responses["FLAGS"][0]))
        self.assertIn("$Later", fl)

    def test_store_silent(self):
        typ, data = self.m.store("2", "+FLAGS.SILENT", r"(\Seen)")
        self.assertEqual(typ, "OK", data)
        self.assertEqual([d for d in data if d], [], "FETCH sent for .SILENT: %r" % data)
        self.assertEqual(self.flags()[2], {"\\Seen"})
        typ, data = self.m.store("2", "-FLAGS.SILENT", r"(\Seen)")
        self.assertEqual([d for d in data if d], [])
        self.assertEqual(self.flags()[2], set())
        typ, data = self.m.store("2", "FLAGS.SILENT", r"(\Flagged)")
        self.assertEqual([d for d in data if d], [])
        self.assertEqual(self.flags()[2], {"\\Flagged"})

    def test_uid_store(self):
        typ, data = self.m.uid("STORE", "2:3", "+FLAGS", r"(\Deleted)")
        self.assertEqual(typ, "OK", data)
        got = parse_fetch_responses(join_imaplib(data))
        self.assertEqual(sorted(f.seq for f in got), [2, 3])
        for f in got:
            # RFC 3501 6.4.8: FETCH responses caused by a UID command carry UID
            self.assertIn("UID", f, "UID STORE response without UID: %r" % f)
            self.assertEqual(f["UID"], str(f.seq))
            self.assertIn("\\Deleted", f.flags())
        self.assertEqual(self.flags()[1], set())

    def test_store_invalid(self):
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.store("1", "+FLAGS", r"(\NotAFlag)")
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.store("1", "BOGUS", r"(\Seen)")
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.store("9", "+FLAGS", r"(\Seen)")
        with self.assertRaises(imaplib.IMAP4.error):
            self.m.store("0", "+FLAGS", r"(\Seen)")

    def test_copy_with_copyuid(self):
        ok(self.m.create("Archive"))
        ok(self.m.store("1", "+FLAGS", r"(\Flagged $Keep)"))
        typ, data = self.m.copy("1:2", "Archive")
        self.assertEqual(typ, "OK", data)
        copyuid = code_in(data, "COPYUID")
        self.assertIsNotNone(copyuid, "COPY reply without COPYUID: %r" % data)
        uidvalidity, src, dst = copyuid.split()
        self.assertEqual(src, "1:2")
        self.assertEqual(dst, "1:2")
        st = ok(self.m.status("Archive", "(MESSAGES UIDVALIDITY UIDNEXT)"))
        self.assertRegex(st[0], rb"MESSAGES 2\b")
        self.assertRegex(st[0], rb"UIDVALIDITY %s\b" % uidvalidity.encode())
        self.assertRegex(st[0], rb"UIDNEXT 3\b")
        src_bodies = {f.seq: f["BODY[]"] for f in fetch(self.m, "1:2", "(BODY.PEEK[])")}
        self.assertEqual(self.select_count(self.m), 3)
        self.assertEqual(self.select_count(self.m, "Archive"), 2)
        got = {f.seq: f for f in fetch(self.m, "1:2", "(UID FLAGS BODY.PEEK[])")}
        self.assertEqual(got[1]["BODY[]"], src_bodies[1])
        self.assertEqual(got[2]["BODY[]"], src_bodies[2])
        self.assertLessEqual({"\\Flagged", "$Keep"}, got[1].flags())
        # RFC 3501 6.4.7: the copy gets \Recent
        self.assertIn("\\Recent", got[1].flags())
        # UID COPY, and COPY to a mailbox that does not exist
        ok(self.m.select("INBOX"))
        typ, data = self.m._simple_command("UID", "COPY", "3", "Archive")
        self.assertEqual(typ, "OK", data)
        self.assertIsNotNone(code_in(data, "COPYUID"), "UID COPY without COPYUID: %r" % data)
        self.assertEqual(code_in(data, "COPYUID").split()[1:], ["3", "3"])
        typ, data = self.m.copy("1", "No-Such-Box")
        self.assertEqual(typ, "NO", data)
        self.assertIsNotNone(code_in(data, "TRYCREATE"), data)

    def test_move(self):
        ok(self.m.create("Moved"))
        r = self.raw_login(self.user, self.pw, select="INBOX")
        untagged, tagged = r.command("MOVE 2 Moved")
        self.assertTaggedOK(tagged)
        copyuid = [l for l in untagged if re.match(rb"\* OK \[COPYUID ", l)]
        self.assertTrue(copyuid or b"[COPYUID " in tagged,
                        "MOVE without COPYUID: %r %r" % (untagged, tagged))
        if copyuid:
            # RFC 6851 4.3: the untagged OK [COPYUID] comes before the EXPUNGE
            self.assertLess(untagged.index(copyuid[0]), untagged.index(b"* 2 EXPUNGE"))
            code = copyuid[0]
        else:
            code = tagged
        self.assertRegex(code, rb"\[COPYUID \d+ 2 1\]")
        self.assertIn(b"* 2 EXPUNGE", untagged)
        untagged, tagged = r.command("UID MOVE 3 Moved")
        self.assertTaggedOK(tagged)
        self.assertIn(b"* 2 EXPUNGE", untagged)
        all_text = b"\n".join(untagged) + tagged
        self.assertRegex(all_text, rb"\[COPYUID \d+ 3 2\]")
        untagged, tagged = r.command("FETCH 1:* (UID)")
        self.assertEqual(lines_matching(untagged, rb"\* \d+ FETCH"), [b"* 1 FETCH (UID 1)"])
        self.assertEqual(self.select_count(self.m, "Moved"), 2)
        untagged, tagged = r.command("MOVE 1 Nowhere")
        self.assertEqual(status_of(tagged), "NO")
        self.assertIn(b"[TRYCREATE]", tagged)

    def test_expunge_and_uid_expunge(self):
        ok(self.m.store("1:3", "+FLAGS", r"(\Deleted)"))
        typ, data = self.m.uid("EXPUNGE", "2")
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.m.untagged_responses.pop("EXPUNGE", None), [b"2"])
        self.assertEqual([(f.seq, f["UID"]) for f in fetch(self.m, "1:*", "(UID)")],
                         [(1, "1"), (2, "3")])
        typ, data = self.m.expunge()
        self.assertEqual(typ, "OK", data)
        self.assertEqual(len(data), 2, data)
        self.assertEqual(self.select_count(self.m), 0)
        st = ok(self.m.status("INBOX", "(MESSAGES UIDNEXT)"))
        self.assertRegex(st[0], rb"MESSAGES 0\b")
        self.assertRegex(st[0], rb"UIDNEXT 4\b")
        # UIDs are never reused
        self.deliver(self.user, self.pw, simple_message("after expunge"))
        ok(self.m.noop())
        self.assertEqual([f["UID"] for f in fetch(self.m, "1:*", "(UID)")], ["4"])

    def test_close_expunges_unselect_does_not(self):
        ok(self.m.store("1", "+FLAGS", r"(\Deleted)"))
        ok(self.m._simple_command("UNSELECT"))
        self.assertEqual(self.select_count(self.m), 3)
        ok(self.m.store("1", "+FLAGS", r"(\Deleted)"))
        typ, data = self.m.close()
        self.assertEqual(typ, "OK", data)
        self.assertEqual(self.select_count(self.m), 2)
        # CLOSE on a read-only mailbox expunges nothing
        ok(self.m.store("1", "+FLAGS", r"(\Deleted)"))
        self.m.select("INBOX", readonly=True)
        ok(self.m.close())
        self.assertEqual(self.select_count(self.m), 2)

    def test_examine_is_read_only(self):
        typ, data = self.m.select("INBOX", readonly=True)
        self.assertEqual((typ, data), ("OK", [b"3"]))
        self.assertIn("READ-ONLY", self.m.untagged_responses)
        r = self.raw_login(self.user, self.pw)
        untagged, tagged = r.command("EXAMINE INBOX")
        self.assertRegex(tagged, rb"OK \[READ-ONLY\]")
        untagged, tagged = r.command(r"STORE 1 +FLAGS (\Flagged)")
        self.assertEqual(status_of(tagged), "NO", tagged)
        untagged, tagged = r.command("EXPUNGE")
        self.assertEqual(status_of(tagged), "NO", tagged)
        # a non-peek fetch in a read-only mailbox does not set \Seen
        untagged, tagged = r.command("FETCH 1 (BODY[TEXT])")
        self.assertTaggedOK(tagged)
        self.assertEqual(self.flags()[1], set())
        untagged, tagged = r.command("SELECT INBOX")
        self.assertRegex(tagged, rb"OK \[READ-WRITE\]")

    def test_append(self):
        msg = lines(b"From: appender@example.test", b"To: me@example.test",
                    b"Subject: appended", b"", b"Appended body.", b".dot line", b"")
        when = datetime.datetime(2021, 3, 4, 5, 6, 7, tzinfo=datetime.timezone(
            datetime.timedelta(hours=2)))
        self.m.untagged_responses.pop("EXISTS", None)
        typ, data = self.m.append("INBOX", r"(\Seen $Custom)",
                                  imaplib.Time2Internaldate(when), msg)
        self.assertEqual(typ, "OK", data)
        appenduid = code_in(data, "APPENDUID")
        self.assertIsNotNone(appenduid, "APPEND reply without APPENDUID: %r" % data)
        uidvalidity, uid = appenduid.split()
        self.assertEqual(uid, "4")
        self.assertEqual(self.m.untagged_responses.pop("EXISTS", None), [b"4"])
        item = fetch_one(self.m, "4", "(UID FLAGS INTERNALDATE RFC822.SIZE BODY.PEEK[])")
        self.assertEqual(item["UID"], "4")
        self.assertEqual(item["BODY[]"], msg)
        self.assertEqual(int(item["RFC822.SIZE"]), len(msg))
        self.assertLessEqual({"\\Seen", "$Custom"}, item.flags())
        # the same instant (the zone it is shown in may differ)
        got = imaplib.Internaldate2tuple(b'INTERNALDATE "' + item["INTERNALDATE"] + b'"')
        self.assertIsNotNone(got, item["INTERNALDATE"])
        self.assertEqual(time.mktime(got), when.timestamp(), item["INTERNALDATE"])
        # the structure was scanned like a delivery's
        item = fetch_one(self.m, "4", "(ENVELOPE)")
        self.assertEqual(item["ENVELOPE"][1], b"appended")
        # into another mailbox, without flags or date
        ok(self.m.create("Box"))
        typ, data = self.m.append("Box", None, None, msg)
        self.assertEqual(typ, "OK", data)
        self.assertEqual(code_in(data, "APPENDUID").split()[1], "1")
        st = ok(self.m.status("Box", "(MESSAGES UNSEEN)"))
        self.assertRegex(st[0], rb"MESSAGES 1\b")
        self.assertRegex(st[0], rb"UNSEEN 1\b")
        typ, data = self.m.append("No-Such-Box", None, None, msg)
        self.assertEqual(typ, "NO", data)
        self.assertIsNotNone(code_in(data, "TRYCREATE"), data)

    def test_append_literal_plus(self):
        msg = lines(b"Subject: literal plus", b"", b"body")
        r = self.raw_login(self.user, self.pw)
        r.send(b"a1 APPEND INBOX (\\Flagged) {%d+}\r\n" % len(msg) + msg + CRLF)
        untagged, tagged = r.until_tagged("a1")
        self.assertTaggedOK(tagged)
        self.assertRegex(tagged, rb"\[APPENDUID \d+ 4\]")
        self.assertFalse([l for l in untagged if l.startswith(b"+")], untagged)
        # synchronising literal: "+" first
        r.send(b"a2 APPEND INBOX {%d}\r\n" % len(msg))
        self.assertTrue(r.line().startswith(b"+ "))
        r.send(msg + CRLF)
        untagged, tagged = r.until_tagged("a2")
        self.assertTaggedOK(tagged)
        ok(self.m.noop())
        item = fetch(self.m, "4:5", "(FLAGS BODY.PEEK[])", uid=True)
        self.assertEqual([f["BODY[]"] for f in item], [msg, msg])
        self.assertIn("\\Flagged", item[0].flags())


# ---------------------------------------------------------------------------
# Mailboxes


def list_entries(data):
    """imaplib LIST/LSUB data -> {name: (set of attributes, delimiter)}."""
    out = {}
    for raw in data:
        if raw is None:
            continue
        if isinstance(raw, tuple):
            raw = raw[0] + CRLF + raw[1]
        p = parse_value(b"(" + raw + b")")
        attrs, delim, name = p
        name = name.decode() if isinstance(name, bytes) else str(name)
        out[name] = (set(str(a) for a in attrs), delim.decode() if delim else None)
    return out


class MailboxTests(ImapTestCase):

    def setUp(self):
        super().setUp()
        self.user, self.pw = self.inbox("mb")
        self.m = self.login(self.user, self.pw)

    def lst(self, ref, pattern):
        typ, data = self.m.list(ref, pattern)
        self.assertEqual(typ, "OK", data)
        return list_entries(data)

    def lsub(self, ref, pattern):
        typ, data = self.m.lsub(ref, pattern)
        self.assertEqual(typ, "OK", data)
        return list_entries(data)

    def test_default_mailboxes_and_special_use(self):
        got = self.lst('""', "*")
        self.assertEqual(set(got), {"INBOX", "Drafts", "Junk", "Sent", "Trash"})
        for name, (attrs, delim) in got.items():
            self.assertEqual(delim, "/", name)
        self.assertIn("\\Drafts", got["Drafts"][0])
        self.assertIn("\\Junk", got["Junk"][0])
        self.assertIn("\\Sent", got["Sent"][0])
        self.assertIn("\\Trash", got["Trash"][0])
        self.assertIn("\\HasNoChildren", got["Sent"][0])
        self.assertFalse(got["INBOX"][0] & {"\\Sent", "\\Drafts", "\\Junk", "\\Trash"})
        # the hierarchy delimiter query
        typ, data = self.m.list('""', '""')
        self.assertEqual(typ, "OK", data)
        self.assertEqual(len(data), 1, data)
        self.assertRegex(data[0], rb'^\(\\Noselect[^)]*\) "/" ""$')
        # INBOX is case-insensitive
        self.assertIn("INBOX", self.lst('""', "inbox"))
        ok(self.m.select("inbox"))

    def test_create_hierarchy_and_wildcards(self):
        ok(self.m.create("Projects/2025/Q1"))
        ok(self.m.create("Projects/Other"))
        ok(self.m.create("Caf&AOk-"))   # "Café" in modified UTF-7
        got = self.lst('""', "*")
        self.assertLessEqual({"Projects", "Projects/2025", "Projects/2025/Q1",
                              "Projects/Other"}, set(got))
        self.assertIn("\\HasChildren", got["Projects"][0])
        self.assertIn("\\HasChildren", got["Projects/2025"][0])
        self.assertIn("\\HasNoChildren", got["Projects/2025/Q1"][0])
        top = self.lst('""', "%")
        self.assertEqual(set(top), {"INBOX", "Drafts", "Junk", "Sent", "Trash",
                                    "Projects", "Caf&AOk-"})
        self.assertEqual(set(self.lst('""', "Projects/%")), {"Projects/2025", "Projects/Other"})
        self.assertEqual(set(self.lst('""', "Projects/*")),
                         {"Projects/2025", "Projects/2025/Q1", "Projects/Other"})
        self.assertEqual(set(self.lst("Projects/", "%")), {"Projects/2025", "Projects/Other"})
        self.assertEqual(set(self.lst('""', "*Q1")), {"Projects/2025/Q1"})
        self.assertEqual(set(self.lst('""', "P%/%/Q%")), {"Projects/2025/Q1"})
        # modified UTF-7 on the wire, both ways
        self.assertIn("Caf&AOk-", got)
        self.assertEqual(set(self.lst('""', "Caf&AOk-")), {"Caf&AOk-"})
        ok(self.m.select("Caf&AOk-"))
        # creating what exists fails
        typ, data = self.m.create("Projects/2025")
        self.assertEqual(typ, "NO", data)
        typ, data = self.m.create("INBOX")
        self.assertEqual(typ, "NO", data)
        # a trailing delimiter is ignored (RFC 3501 6.3.3)
        ok(self.m.create("Trailing/"))
        self.assertIn("Trailing", self.lst('""', "Trailing"))

    def test_rename_and_delete(self):
        ok(self.m.create("Projects/2025/Q1"))
        self.deliver(self.user, self.pw, simple_message("to be moved"))
        ok(self.m.select("INBOX"))
        ok(self.m.copy("1", "Projects/2025/Q1"))
        ok(self.m.close())
        ok(self.m.rename("Projects/2025", "Projects/2026"))
        got = self.lst('""', "Projects/*")
        self.assertEqual(set(got), {"Projects/2026", "Projects/2026/Q1"})
        self.assertEqual(self.select_count(self.m, "Projects/2026/Q1"), 1)
        ok(self.m.close())
        typ, data = self.m.rename("Projects/2026", "Sent")
        self.assertEqual(typ, "NO", data)
        typ, data = self.m.rename("Nope", "Other")
        self.assertEqual(typ, "NO", data)
        ok(self.m.delete("Projects/2026/Q1"))
        self.assertEqual(set(self.lst('""', "Projects/*")), {"Projects/2026"})
        typ, data = self.m.select("Projects/2026/Q1")
        self.assertEqual(typ, "NO", data)
        typ, data = self.m.delete("INBOX")
        self.assertEqual(typ, "NO", data)
        typ, data = self.m.delete("No-Such")
        self.assertEqual(typ, "NO", data)
        ok(self.m.delete("Projects/2026"))
        ok(self.m.delete("Projects"))
        self.assertEqual(set(self.lst('""', "*")), {"INBOX", "Drafts", "Junk", "Sent", "Trash"})

    def test_rename_inbox_moves_messages(self):
        for i in range(2):
            self.deliver(self.user, self.pw, simple_message("inbox rename %d" % i))
        ok(self.m.rename("INBOX", "Old-Inbox"))
        self.assertEqual(self.select_count(self.m, "Old-Inbox"), 2)
        subjects = [f["ENVELOPE"][1] for f in fetch(self.m, "1:*", "(ENVELOPE)")]
        self.assertEqual(subjects, [b"inbox rename 0", b"inbox rename 1"])
        self.assertEqual(self.select_count(self.m, "INBOX"), 0)
        self.assertIn("INBOX", self.lst('""', "*"))
        # new mail goes to the (now empty) INBOX
        self.deliver(self.user, self.pw, simple_message("after rename"))
        ok(self.m.noop())
        self.assertEqual(self.select_count(self.m, "INBOX"), 1)

    def test_subscribe_lsub(self):
        ok(self.m.create("Lists/dev"))
        ok(self.m.create("Lists/announce"))
        # (mailsnare subscribes what CREATE makes; UNSUBSCRIBE first)
        ok(self.m.unsubscribe("Lists/dev"))
        ok(self.m.unsubscribe("Lists/announce"))
        self.assertEqual(set(self.lsub('""', "Lists/*")), set())
        # LIST still shows them
        self.assertEqual(set(self.lst('""', "Lists/*")), {"Lists/dev", "Lists/announce"})
        ok(self.m.subscribe("Lists/dev"))
        ok(self.m.subscribe("Lists/announce"))
        got = self.lsub('""', "Lists/*")
        self.assertEqual(set(got), {"Lists/dev", "Lists/announce"})
        self.assertEqual(got["Lists/dev"][1], "/")
        ok(self.m.unsubscribe("Lists/announce"))
        self.assertEqual(set(self.lsub('""', "Lists/*")), {"Lists/dev"})
        self.assertIn("INBOX", self.lsub('""', "*"))
        # LSUB with % shows the parent of a subscribed child as \Noselect (RFC 3501 6.3.9)
        top = self.lsub('""', "Lists")
        if "Lists" in top:
            self.assertIn("\\Noselect", top["Lists"][0])
        # subscriptions are kept across sessions
        m2 = self.login(self.user, self.pw)
        typ, data = m2.lsub('""', "Lists/*")
        self.assertEqual(set(list_entries(data)), {"Lists/dev"})

    def test_status(self):
        ok(self.m.create("Stat"))
        for i in range(3):
            self.deliver(self.user, self.pw, simple_message("status %d" % i))
        typ, data = self.m.status("INBOX", "(MESSAGES RECENT UIDNEXT UIDVALIDITY UNSEEN)")
        self.assertEqual(typ, "OK", data)
        text = data[0]
        self.assertTrue(text.startswith(b'INBOX (') or text.startswith(b'"INBOX" ('), text)
        items = parse_value(text[text.index(b"("):])
        st = {str(items[i]).upper(): int(items[i + 1]) for i in range(0, len(items), 2)}
        self.assertEqual(st["MESSAGES"], 3)
        self.assertEqual(st["RECENT"], 3)
        self.assertEqual(st["UIDNEXT"], 4)
        self.assertEqual(st["UNSEEN"], 3)
        self.assertGreater(st["UIDVALIDITY"], 0)
        ok(self.m.select("INBOX"))
        self.assertEqual(self.m.untagged_responses["UIDVALIDITY"],
                         [str(st["UIDVALIDITY"]).encode()])
        ok(self.m.store("1", "+FLAGS", r"(\Seen)"))
        st2 = ok(self.m.status("Stat", "(MESSAGES UNSEEN UIDNEXT)"))
        self.assertRegex(st2[0], rb"MESSAGES 0\b")
        self.assertRegex(st2[0], rb"UIDNEXT 1\b")
        m2 = self.login(self.user, self.pw)
        st3 = ok(m2.status("INBOX", "(UNSEEN MESSAGES)"))
        self.assertRegex(st3[0], rb"UNSEEN 2\b")
        typ, data = m2.status("No-Such", "(MESSAGES)")
        self.assertEqual(typ, "NO", data)

    def test_namespace_id_enable(self):
        typ, data = self.m.namespace()
        self.assertEqual(typ, "OK", data)
        self.assertEqual(data[0], b'(("" "/")) NIL NIL')
        r = self.raw()
        untagged, tagged = r.command('ID ("name" "mailsnare-test")')
        self.assertTaggedOK(tagged)
        self.assertTrue(lines_matching(untagged, rb"\* ID "), untagged)
        r.login(self.user, self.pw)
        untagged, tagged = r.command("ENABLE X-UNKNOWN-EXT")
        self.assertTaggedOK(tagged)


# ---------------------------------------------------------------------------
# Two sessions, \Recent, IDLE


class ConcurrencyTests(ImapTestCase):

    def setUp(self):
        super().setUp()
        self.user, self.pw = self.inbox("cc")

    def test_expunge_seen_by_other_session(self):
        for i in range(3):
            self.deliver(self.user, self.pw, simple_message("two sessions %d" % i))
        a = self.raw_login(self.user, self.pw, select="INBOX")
        b = self.raw_login(self.user, self.pw, select="INBOX")
        untagged, tagged = a.command(r"STORE 1 +FLAGS.SILENT (\Deleted)")
        self.assertTaggedOK(tagged)
        untagged, tagged = a.command("EXPUNGE")
        self.assertTaggedOK(tagged)
        self.assertEqual(untagged, [b"* 1 EXPUNGE"])
        # B: no EXPUNGE during FETCH (RFC 3501 7.4.1), old numbers still valid
        untagged, tagged = b.command("FETCH 3 (UID)")
        self.assertTaggedOK(tagged)
        self.assertFalse(lines_matching(untagged, rb"\* \d+ EXPUNGE"),
                         "EXPUNGE sent during FETCH: %r" % untagged)
        self.assertIn(b"* 3 FETCH (UID 3)", untagged)
        untagged, tagged = b.command("SEARCH ALL")
        self.assertFalse(lines_matching(untagged, rb"\* \d+ EXPUNGE"),
                         "EXPUNGE sent during SEARCH: %r" % untagged)
        untagged, tagged = b.command(r"STORE 3 +FLAGS (\Answered)")
        self.assertTaggedOK(tagged)
        self.assertFalse(lines_matching(untagged, rb"\* \d+ EXPUNGE"),
                         "EXPUNGE sent during STORE: %r" % untagged)
        self.assertTrue(lines_matching(untagged, rb"\* 3 FETCH \(.*\\Answered"), untagged)
        # at NOOP it is reported
        untagged, tagged = b.command("NOOP")
        self.assertTaggedOK(tagged)
        self.assertEqual(lines_matching(untagged, rb"\* \d+ EXPUNGE"), [b"* 1 EXPUNGE"])
        untagged, tagged = b.command("FETCH 1:* (UID)")
        self.assertEqual(lines_matching(untagged, rb"\* \d+ FETCH"),
                         [b"* 1 FETCH (UID 2)", b"* 2 FETCH (UID 3)"])

    def test_flags_seen_by_other_session(self):
        for i in range(2):
            self.deliver(self.user, self.pw, simple_message("flags %d" % i))
        a = self.raw_login(self.user, self.pw, select="INBOX")
        b = self.raw_login(self.user, self.pw, select="INBOX")
        untagged, tagged = a.command(r"STORE 2 +FLAGS ($Shared \Flagged)")
        self.assertTaggedOK(tagged)
        untagged, tagged = b.command("NOOP")
        self.assertTaggedOK(tagged)
        fetches = parse_fetch_responses(b"".join(
            l + CRLF for l in lines_matching(untagged, rb"\* \d+ FETCH")))
        self.assertEqual([f.seq for f in fetches], [2], untagged)
        self.assertLessEqual({"$Shared", "\\Flagged"}, fetches[0].flags())
        # B's FLAGS list now names the new keyword (RFC 3501 7.2.6), if it says so
        flags_lines = lines_matching(untagged, rb"\* FLAGS ")
        if flags_lines:
            self.assertIn(b"$Shared", flags_lines[-1])
        # nothing more at the next NOOP
        untagged, tagged = b.command("NOOP")
        self.assertEqual(untagged, [])

    def test_new_mail_seen_by_selected_session(self):
        a = self.raw_login(self.user, self.pw, select="INBOX")
        self.deliver(self.user, self.pw, simple_message("new while selected"))
        untagged, tagged = a.command("NOOP")
        self.assertTaggedOK(tagged)
        self.assertIn(b"* 1 EXISTS", untagged)
        self.assertIn(b"* 1 RECENT", untagged)
        b = self.raw_login(self.user, self.pw, select="INBOX")
        msg = lines(b"Subject: appended by b", b"", b"x")
        b.send(b"b1 APPEND INBOX {%d+}\r\n" % len(msg) + msg + CRLF)
        untagged, tagged = b.until_tagged("b1")
        self.assertTaggedOK(tagged)
        untagged, tagged = a.command("NOOP")
        self.assertIn(b"* 2 EXISTS", untagged)

    def test_recent_only_in_first_session(self):
        self.deliver(self.user, self.pw, simple_message("recent"))
        a = self.raw_login(self.user, self.pw)
        untagged, tagged = a.command("SELECT INBOX")
        self.assertIn(b"* 1 RECENT", untagged)
        untagged, tagged = a.command("FETCH 1 (FLAGS)")
        self.assertIn(b"\\Recent", lines_matching(untagged, rb"\* 1 FETCH")[0])
        b = self.raw_login(self.user, self.pw)
        untagged, tagged = b.command("SELECT INBOX")
        self.assertIn(b"* 0 RECENT", untagged)
        untagged, tagged = b.command("FETCH 1 (FLAGS)")
        self.assertNotIn(b"\\Recent", lines_matching(untagged, rb"\* 1 FETCH")[0])
        untagged, tagged = b.command("SEARCH RECENT")
        self.assertIn(b"* SEARCH", untagged)
        self.assertEqual(lines_matching(untagged, rb"\* SEARCH"), [b"* SEARCH"])
        untagged, tagged = a.command("SEARCH RECENT")
        self.assertEqual(lines_matching(untagged, rb"\* SEARCH"), [b"* SEARCH 1"])
        untagged, tagged = a.command("SEARCH NEW")
        self.assertEqual(lines_matching(untagged, rb"\* SEARCH"), [b"* SEARCH 1"])
        a.command("LOGOUT")
        c = self.raw_login(self.user, self.pw)
        untagged, tagged = c.command("SELECT INBOX")
        self.assertIn(b"* 0 RECENT", untagged)
        # a session that already has the mailbox selected when mail arrives gets \Recent
        self.deliver(self.user, self.pw, simple_message("recent 2"))
        untagged, tagged = c.command("NOOP")
        self.assertIn(b"* 1 RECENT", untagged)
        untagged, tagged = b.command("NOOP")
        self.assertIn(b"* 2 EXISTS", untagged)
        self.assertNotIn(b"* 1 RECENT", untagged)

    def idle_start(self, r, tag="i1"):
        r.send(tag.encode() + b" IDLE\r\n")
        line = r.line(timeout=5)
        self.assertTrue(line.startswith(b"+"), line)

    def test_idle_new_mail(self):
        r = self.raw_login(self.user, self.pw, select="INBOX")
        self.idle_start(r)
        start = time.monotonic()
        self.deliver(self.user, self.pw, simple_message("while idling"))
        got = []
        while b"* 1 EXISTS" not in got:
            left = 2.0 - (time.monotonic() - start)
            if left <= 0:
                self.fail("no '* 1 EXISTS' within 2 s of the SMTP delivery; got %r" % got)
            try:
                got.append(r.line(timeout=left))
            except socket.timeout:
                self.fail("no '* 1 EXISTS' within 2 s of the SMTP delivery; got %r" % got)
        r.send(b"DONE\r\n")
        untagged, tagged = r.until_tagged("i1", timeout=5)
        self.assertTaggedOK(tagged)
        untagged, tagged = r.command("FETCH 1 (ENVELOPE)")
        self.assertIn(b'"while idling"', untagged[0])
        # a second IDLE in the same session works as well
        self.idle_start(r, "i2")
        self.deliver(self.user, self.pw, simple_message("while idling 2"))
        line = r.line(timeout=2)
        self.assertIn(line, (b"* 2 EXISTS", b"* 1 RECENT"), line)
        r.send(b"DONE\r\n")
        untagged, tagged = r.until_tagged("i2", timeout=5)
        self.assertTaggedOK(tagged)

    def test_idle_expunge_and_flags(self):
        for i in range(2):
            self.deliver(self.user, self.pw, simple_message("idle others %d" % i))
        r = self.raw_login(self.user, self.pw, select="INBOX")
        other = self.login(self.user, self.pw)
        ok(other.select("INBOX"))
        self.idle_start(r)
        ok(other.store("2", "+FLAGS", r"(\Flagged)"))
        line = r.line(timeout=2)
        self.assertRegex(line, rb"^\* 2 FETCH \(.*FLAGS \([^)]*\\Flagged")
        ok(other.store("1", "+FLAGS", r"(\Deleted)"))
        self.assertRegex(r.line(timeout=2), rb"^\* 1 FETCH \(.*\\Deleted")
        ok(other.expunge())
        self.assertEqual(r.line(timeout=2), b"* 1 EXPUNGE")
        r.send(b"DONE\r\n")
        untagged, tagged = r.until_tagged("i1", timeout=5)
        self.assertTaggedOK(tagged)
        self.assertEqual(untagged, [])

    def test_idle_without_selection(self):
        r = self.raw_login(self.user, self.pw)
        r.send(b"i1 IDLE\r\n")
        line = r.line(timeout=5)
        if line.startswith(b"+"):
            r.send(b"DONE\r\n")
            untagged, tagged = r.until_tagged("i1", timeout=5)
        else:
            tagged = line
        self.assertIn(status_of(tagged), ("OK", "BAD", "NO"), tagged)
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)


# ---------------------------------------------------------------------------
# POP3 beside IMAP


class Pop3InterplayTests(ImapTestCase):

    def setUp(self):
        super().setUp()
        self.user, self.pw = self.inbox("pi")

    def pop(self):
        host, port = self.server.addr("pop3")
        p = poplib.POP3(host, port, timeout=SOCK_TIMEOUT)
        p.user(self.user)
        p.pass_(self.pw)
        return p

    def test_retr_sets_seen(self):
        msg_id = self.deliver(self.user, self.pw, simple_message("pop retr"))
        r = self.raw_login(self.user, self.pw, select="INBOX")
        untagged, tagged = r.command("FETCH 1 (FLAGS)")
        self.assertNotIn(b"\\Seen", untagged[0])
        p = self.pop()
        resp, body_lines, octets = p.retr(1)
        self.assertEqual(CRLF.join(body_lines) + CRLF, self.server.message_bytes(msg_id))
        p.quit()
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)
        fetches = lines_matching(untagged, rb"\* 1 FETCH")
        self.assertTrue(fetches, "no FETCH FLAGS after POP3 RETR: %r" % untagged)
        self.assertIn(b"\\Seen", fetches[-1])
        m = self.login(self.user, self.pw)
        ok(m.select("INBOX"))
        self.assertIn("\\Seen", fetch_one(m, "1", "(FLAGS)").flags())

    def test_top_does_not_set_seen(self):
        self.deliver(self.user, self.pw, simple_message("pop top"))
        p = self.pop()
        p.top(1, 0)
        p.quit()
        m = self.login(self.user, self.pw)
        ok(m.select("INBOX"))
        self.assertNotIn("\\Seen", fetch_one(m, "1", "(FLAGS)").flags())

    def test_pop3_delete_seen_by_imap(self):
        for i in range(2):
            self.deliver(self.user, self.pw, simple_message("pop dele %d" % i))
        r = self.raw_login(self.user, self.pw, select="INBOX")
        p = self.pop()
        self.assertEqual(p.stat()[0], 2)
        p.dele(1)
        # not gone before QUIT
        untagged, tagged = r.command("NOOP")
        self.assertFalse(lines_matching(untagged, rb"\* \d+ EXPUNGE"), untagged)
        p.quit()
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)
        self.assertEqual(lines_matching(untagged, rb"\* \d+ EXPUNGE"), [b"* 1 EXPUNGE"])
        untagged, tagged = r.command("FETCH 1:* (ENVELOPE)")
        env = lines_matching(untagged, rb"\* \d+ FETCH")
        self.assertEqual(len(env), 1, untagged)
        self.assertIn(b'"pop dele 1"', env[0])
        m = self.login(self.user, self.pw)
        self.assertEqual(self.select_count(m), 1)

    def test_imap_seen_and_expunge_seen_by_pop3(self):
        ids = [self.deliver(self.user, self.pw, simple_message("imap to pop %d" % i))
               for i in range(3)]
        m = self.login(self.user, self.pw)
        ok(m.select("INBOX"))
        ok(m.store("1", "+FLAGS", r"(\Seen)"))
        ok(m.store("3", "+FLAGS", r"(\Deleted)"))
        ok(m.expunge())
        p = self.pop()
        count, size = p.stat()
        self.assertEqual(count, 2)
        resp, listing, _ = p.list()
        self.assertEqual(len(listing), 2)
        resp, body_lines, octets = p.retr(1)
        self.assertEqual(CRLF.join(body_lines) + CRLF, self.server.message_bytes(ids[0]))
        resp, body_lines, octets = p.retr(2)
        self.assertEqual(CRLF.join(body_lines) + CRLF, self.server.message_bytes(ids[1]))
        p.quit()
        ok(m.noop())
        flags = {f.seq: f.flags() for f in fetch(m, "1:*", "(FLAGS)")}
        self.assertIn("\\Seen", flags[1])
        self.assertIn("\\Seen", flags[2])


# ---------------------------------------------------------------------------
# Bad input


class BadInputTests(ImapTestCase):

    def test_unknown_command(self):
        r = self.raw()
        untagged, tagged = r.command("FROBNICATE now", tag="x1")
        self.assertRegex(tagged, rb"^x1 BAD ")
        r.login("dev", "dev")
        untagged, tagged = r.command("FROBNICATE", tag="x2")
        self.assertRegex(tagged, rb"^x2 BAD ")
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)

    def test_wrong_state(self):
        r = self.raw()
        for tag, cmd in (("w1", "SELECT INBOX"), ("w2", "FETCH 1 FLAGS"),
                         ("w3", "LIST \"\" *"), ("w4", "IDLE")):
            untagged, tagged = r.command(cmd, tag=tag)
            self.assertRegex(tagged, rb"^" + tag.encode() + rb" BAD ", cmd)
        r.login("dev", "dev")
        for tag, cmd in (("w5", "FETCH 1 FLAGS"), ("w6", "EXPUNGE"), ("w7", "CLOSE"),
                         ("w8", r"STORE 1 +FLAGS (\Seen)"), ("w9", "UID SEARCH ALL"),
                         ("w10", 'LOGIN "dev" "dev"')):
            untagged, tagged = r.command(cmd, tag=tag)
            self.assertRegex(tagged, rb"^" + tag.encode() + rb" BAD ", cmd)
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)

    def test_syntax_errors(self):
        r = self.raw()
        r.login("dev", "dev")
        r.command("SELECT INBOX")
        for tag, cmd in (("y1", 'LOGIN "unterminated'), ("y2", "FETCH"),
                         ("y3", "FETCH 1 (FLAGS"), ("y4", "FETCH 0 FLAGS"),
                         ("y5", "FETCH a:b FLAGS"), ("y6", "FETCH 1 BODY[9x]"),
                         ("y7", "SEARCH (FROM"), ("y8", "UID FROB 1")):
            untagged, tagged = r.command(cmd, tag=tag)
            self.assertRegex(tagged, rb"^" + tag.encode() + rb" BAD ", cmd)
        # no usable tag
        r.send(b'"x" NOOP\r\n')
        self.assertRegex(r.line(), rb"^\* BAD")
        r.send(b"+x NOOP\r\n")
        self.assertRegex(r.line(), rb"^\* BAD")
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)

    def test_overlong_line(self):
        r = self.raw()
        r.login("dev", "dev")
        r.send(b"L1 SELECT " + b"x" * 100000 + CRLF)
        untagged, tagged = r.until_tagged("L1")
        self.assertRegex(tagged, rb"^L1 BAD ")
        # the session goes on
        untagged, tagged = r.command("SELECT INBOX")
        self.assertTaggedOK(tagged)
        r.send(b"L2 FETCH 1:* (" + b"FLAGS " * 20000 + b")\r\n")
        untagged, tagged = r.until_tagged("L2")
        self.assertRegex(tagged, rb"^L2 BAD ")
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)

    def test_literal_too_big(self):
        r = self.raw()
        r.login("dev", "dev")
        r.send(b"T1 APPEND INBOX {%d}\r\n" % (33554432 + 1))
        line = r.line(timeout=5)
        self.assertFalse(line.startswith(b"+"), "server asked for a too-big literal: %r" % line)
        self.assertRegex(line, rb"^T1 NO \[TOOBIG\]")
        untagged, tagged = r.command("NOOP")
        self.assertTaggedOK(tagged)


class SmallLimitTests(ImapTestCase):
    server_args = ("--max-message-size", "2000")

    def test_literal_over_configured_limit(self):
        r = self.raw()
        r.login("dev", "dev")
        r.send(b"T1 APPEND INBOX {2001}\r\n")
        line = r.line(timeout=5)
        self.assertFalse(line.startswith(b"+"), "server asked for a too-big literal: %r" % line)
        self.assertRegex(line, rb"^T1 NO \[TOOBIG\]")
        msg = simple_message("fits", body=b"y" * 1000 + CRLF)
        self.assertLess(len(msg), 2000)
        r.send(b"T2 APPEND INBOX {%d}\r\n" % len(msg))
        self.assertTrue(r.line(timeout=5).startswith(b"+"))
        r.send(msg + CRLF)
        untagged, tagged = r.until_tagged("T2")
        self.assertTaggedOK(tagged)
        untagged, tagged = r.command("SELECT INBOX")
        self.assertTaggedOK(tagged)
        untagged, tagged = r.command("FETCH * (RFC822.SIZE)")
        self.assertIn(b"RFC822.SIZE %d" % len(msg), untagged[0])


if __name__ == "__main__":
    harness.main()

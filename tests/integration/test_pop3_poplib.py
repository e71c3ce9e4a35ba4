"""POP3 integration tests with Python's poplib and raw sockets: USER/PASS,
APOP, AUTH (SASL), STLS, POP3S, CAPA, STAT/LIST/UIDL/TOP/RETR against the
bytes stored for mail sent over SMTP, DELE/QUIT/RSET semantics, [IN-USE],
\\Seen for IMAP, a 10 MB message, allow-plaintext-auth = no, and bad input.

Every inbox is created by the test that uses it, so tests do not see each
other's mail; every socket has a timeout."""

import base64
import hashlib
import hmac
import imaplib
import itertools
import os
import poplib
import re
import smtplib
import socket
import sqlite3
import ssl
import time

import harness
from harness import CRLF, SOCK_TIMEOUT, insecure_context

_names = itertools.count(1)


def unique_inbox(prefix="p"):
    return "%s%d-%d" % (prefix, os.getpid(), next(_names))


def make_message(tag, body_lines=None):
    """A message whose body has the lines POP3 must byte-stuff."""
    if body_lines is None:
        body_lines = [b"Hello " + tag.encode(), b"", b".leading dot", b"..two dots",
                      b".", b"tab\there", b"last line"]
    header = [b"From: POP Sender <sender@example.test>",
              b"To: POP Rcpt <rcpt@example.test>",
              b"Subject: pop3 " + tag.encode(),
              b"Message-ID: <pop3-" + tag.encode() + b"@example.test>"]
    return CRLF.join(header) + CRLF + CRLF + CRLF.join(body_lines) + CRLF


def stuff(data):
    """The multi-line response RFC 1939 §3 expects for `data`."""
    lines = data.split(CRLF)
    tail = lines.pop() if lines else b""
    out = b"".join((b"." + l if l.startswith(b".") else l) + CRLF for l in lines)
    if tail:
        out += (b"." + tail if tail.startswith(b".") else tail) + CRLF
    return out + b"." + CRLF


def unstuff_lines(lines):
    """poplib's lines (already unstuffed) back to CRLF-ended bytes."""
    return b"".join(l + CRLF for l in lines)


class RawPOP3(harness.RawSocket):
    """Bytes in, lines out; no protocol logic of its own."""

    def _fill(self):
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise EOFError("connection closed by the server (pending %r)" % self.buf[:200])
        self.buf += chunk

    def line(self):
        while True:
            idx = self.buf.find(CRLF)
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 2:]
                return line
            if len(self.buf) > 1 << 16:
                raise AssertionError("reply line longer than 64 KiB")
            self._fill()

    def cmd(self, line):
        self.send(line + "\r\n" if isinstance(line, str) else line + CRLF)
        return self.line()

    def multiline_raw(self):
        """The bytes of a multi-line response body up to and including
        its terminating ".CRLF", exactly as sent."""
        while True:
            if self.buf.startswith(b"." + CRLF):
                end = 3
                break
            idx = self.buf.find(CRLF + b"." + CRLF)
            if idx >= 0:
                end = idx + 5
                break
            self._fill()
        data, self.buf = self.buf[:end], self.buf[end:]
        return data

    def closed_by_peer(self, timeout=5.0):
        self.sock.settimeout(timeout)
        try:
            while True:
                data = self.sock.recv(4096)
                if not data:
                    return True
                self.buf += data
        except socket.timeout:
            return False
        except (ConnectionResetError, ssl.SSLError):
            return True
        finally:
            self.sock.settimeout(SOCK_TIMEOUT)


class POP3Case(harness.TestCase):

    # -- helpers

    def new_inbox(self, password="secret-pw"):
        name = unique_inbox()
        self.server.inbox_add(name, password)
        return name, password

    def send(self, inbox, password, msg, rcpt="rcpt@example.test"):
        """Sends msg over SMTP with AUTH as inbox; returns the stored id."""
        host, port = self.server.addr("smtp")
        with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
            s.login(inbox, password)
            s.mail("sender@example.test")
            s.rcpt(rcpt)
            code, text = s.data(msg)
            self.assertEqual(code, 250, text)
        return harness.queued_id(text)

    def pop(self, user=None, password=None, tls=False):
        if tls:
            c = poplib.POP3_SSL(*self.server.addr("pop3s"), context=insecure_context(),
                                timeout=SOCK_TIMEOUT)
        else:
            c = poplib.POP3(*self.server.addr("pop3"), timeout=SOCK_TIMEOUT)
        if user is not None:
            c.user(user)
            c.pass_(password)
        return c

    def raw(self, tls=False):
        if tls:
            r = RawPOP3(self.server.addr("pop3s"), insecure_context())
        else:
            r = RawPOP3(self.server.addr("pop3"))
        greeting = r.line()
        self.assertTrue(greeting.startswith(b"+OK "), greeting)
        return r, greeting

    def login_raw(self, user, password, tls=False):
        r, _ = self.raw(tls)
        self.assertTrue(r.cmd("USER " + user).startswith(b"+OK"))
        reply = r.cmd("PASS " + password)
        self.assertTrue(reply.startswith(b"+OK"), reply)
        return r

    def assertErr(self, reply, code=None):
        if isinstance(reply, Exception):
            reply = reply.args[0]
        self.assertTrue(reply.startswith(b"-ERR"), reply)
        if code is not None:
            self.assertTrue(reply.startswith(b"-ERR [" + code.encode() + b"]"), reply)

    def wait_unlocked(self, user, password, timeout=5.0):
        """Logs in once the server has noticed that an earlier session of
        the inbox is gone (the lock is released when it frees it)."""
        deadline = time.monotonic() + timeout
        while True:
            c = self.pop()
            c.user(user)
            try:
                c.pass_(password)
                return c
            except poplib.error_proto as e:
                c.close()
                if b"[IN-USE]" not in e.args[0] or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def seen(self, msg_id):
        """\\Seen as IMAP sees it: message.flags bit 0, read-only."""
        con = sqlite3.connect("file:%s?mode=ro" % self.server.db, uri=True, timeout=10)
        try:
            row = con.execute("SELECT flags FROM message WHERE id = ?", (int(msg_id),)).fetchone()
        finally:
            con.close()
        self.assertIsNotNone(row, "message %s not in the store" % msg_id)
        return bool(row[0] & 1)


class TestPOP3(POP3Case):

    def test_greeting_timestamp_fresh(self):
        stamps = set()
        for _ in range(3):
            r, greeting = self.raw()
            m = re.match(rb"^\+OK mailsnare POP3 ready (<\d+\.\d+\.[0-9a-f]{16}@[^>]+>)$",
                         greeting)
            self.assertIsNotNone(m, greeting)
            stamps.add(m.group(1))
            r.close()
        self.assertEqual(len(stamps), 3, "APOP timestamps repeat: %r" % stamps)

    def test_capa(self):
        c = self.pop()
        try:
            capa = c.capa()
            for key in ("TOP", "UIDL", "USER", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING",
                        "STLS", "IMPLEMENTATION"):
                self.assertIn(key, capa)
            self.assertEqual(sorted(capa["SASL"]), ["CRAM-MD5", "LOGIN", "PLAIN"])
            self.assertEqual(capa["EXPIRE"], ["NEVER"])
            c.user("dev")
            c.pass_("dev")
            capa = c.capa()
            self.assertNotIn("STLS", capa, "STLS offered in TRANSACTION")
            self.assertIn("TOP", capa)
            c.quit()
        finally:
            c.close()
        c = self.pop(tls=True)
        try:
            capa = c.capa()
            self.assertNotIn("STLS", capa, "STLS offered over TLS")
            self.assertIn("USER", capa)
            c.quit()
        finally:
            c.close()

    def test_user_pass_stat_list_retr(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("m%d" % i)) for i in range(3)]
        stored = [self.server.message_bytes(i) for i in ids]
        c = self.pop(inbox, pw)
        try:
            count, octets = c.stat()
            self.assertEqual(count, 3)
            self.assertEqual(octets, sum(len(b) for b in stored))
            resp, listing, _ = c.list()
            self.assertEqual(listing, [b"%d %d" % (n + 1, len(b)) for n, b in enumerate(stored)])
            self.assertEqual(c.list(2), b"+OK 2 %d" % len(stored[1]))
            for n, want in enumerate(stored, 1):
                resp, lines, _ = c.retr(n)
                self.assertEqual(resp, b"+OK %d octets" % len(want))
                self.assertEqual(unstuff_lines(lines), want)
            c.quit()
        finally:
            c.close()

    def test_retr_wire_bytes_are_stuffed(self):
        inbox, pw = self.new_inbox()
        msg_id = self.send(inbox, pw, make_message("wire"))
        stored = self.server.message_bytes(msg_id)
        r = self.login_raw(inbox, pw)
        try:
            self.assertEqual(r.cmd("RETR 1"), b"+OK %d octets" % len(stored))
            self.assertEqual(r.multiline_raw(), stuff(stored))
            self.assertEqual(r.cmd("QUIT")[:3], b"+OK")
        finally:
            r.close()

    def test_apop(self):
        inbox, pw = self.new_inbox("apop-pw")
        msg_id = self.send(inbox, pw, make_message("apop"))
        c = self.pop()
        try:
            c.apop(inbox, pw)
            self.assertEqual(c.stat()[0], 1)
            resp, lines, _ = c.retr(1)
            self.assertEqual(unstuff_lines(lines), self.server.message_bytes(msg_id))
            c.quit()
        finally:
            c.close()
        # A digest for another connection's timestamp is refused.
        r, greeting = self.raw()
        stamp = re.search(rb"<[^>]+>", greeting).group(0)
        r.close()
        r, _ = self.raw()
        try:
            digest = hashlib.md5(stamp + pw.encode()).hexdigest()
            self.assertErr(r.cmd("APOP %s %s" % (inbox, digest)), "AUTH")
        finally:
            r.close()

    def test_wrong_password(self):
        inbox, pw = self.new_inbox()
        c = self.pop()
        try:
            c.user(inbox)
            with self.assertRaises(poplib.error_proto) as cm:
                c.pass_("wrong")
            self.assertErr(cm.exception, "AUTH")
            c.user("no-such-inbox")
            with self.assertRaises(poplib.error_proto) as cm:
                c.pass_(pw)
            self.assertErr(cm.exception, "AUTH")
            with self.assertRaises(poplib.error_proto) as cm:
                c.apop(inbox, "wrong")
            self.assertErr(cm.exception, "AUTH")
            # The session goes on.
            c.user(inbox)
            c.pass_(pw)
            self.assertEqual(c.stat(), (0, 0))
            c.quit()
        finally:
            c.close()

    def test_stls(self):
        inbox, pw = self.new_inbox()
        msg_id = self.send(inbox, pw, make_message("stls"))
        c = self.pop()
        try:
            c.stls(insecure_context())
            self.assertNotIn("STLS", c.capa())
            c.user(inbox)
            c.pass_(pw)
            resp, lines, _ = c.retr(1)
            self.assertEqual(unstuff_lines(lines), self.server.message_bytes(msg_id))
            c.quit()
        finally:
            c.close()

    def test_stls_discards_pipelined_cleartext(self):
        r, _ = self.raw()
        try:
            r.send("STLS\r\nUSER dev\r\nPASS dev\r\n")
            self.assertEqual(r.line(), b"+OK Begin TLS negotiation")
            self.assertEqual(r.buf, b"")
            r.sock = insecure_context().wrap_socket(r.sock)
            # USER was cleartext: it must not count after the handshake.
            self.assertErr(r.cmd("PASS dev"))
            self.assertErr(r.cmd("STLS"))
        finally:
            r.close()

    def test_pop3s(self):
        inbox, pw = self.new_inbox()
        msg_id = self.send(inbox, pw, make_message("pop3s"))
        c = self.pop(inbox, pw, tls=True)
        try:
            resp, lines, _ = c.retr(1)
            self.assertEqual(unstuff_lines(lines), self.server.message_bytes(msg_id))
            with self.assertRaises(poplib.error_proto):
                c.stls(insecure_context())
            c.quit()
        finally:
            c.close()

    def test_top(self):
        inbox, pw = self.new_inbox()
        body = [b"one", b".two", b"three", b"", b"five"]
        msg_id = self.send(inbox, pw, make_message("top", body))
        stored = self.server.message_bytes(msg_id)
        header, stored_body = harness.split_message(stored)
        c = self.pop(inbox, pw)
        try:
            for n in (0, 1, 2, 5, 6, 1000):
                resp, lines, _ = c.top(1, n)
                want = header + CRLF + b"".join(l + CRLF for l in body[:n])
                self.assertEqual(unstuff_lines(lines), want, "TOP 1 %d" % n)
            # TOP does not make the message \Seen.
            self.assertFalse(self.seen(msg_id))
            c.quit()
        finally:
            c.close()
        r = self.login_raw(inbox, pw)
        try:
            self.assertEqual(r.cmd("TOP 1 2")[:3], b"+OK")
            self.assertEqual(r.multiline_raw(), stuff(header + CRLF + b"one\r\n.two\r\n"))
            for bad in ("TOP 1", "TOP", "TOP x 1", "TOP 1 -1", "TOP 1 1 1"):
                self.assertErr(r.cmd(bad))
            self.assertErr(r.cmd("TOP 2 1"))
        finally:
            r.close()

    def test_uidl_stable_across_sessions(self):
        inbox, pw = self.new_inbox()
        for i in range(3):
            self.send(inbox, pw, make_message("u%d" % i))
        c = self.pop(inbox, pw)
        first = c.uidl()[1]
        self.assertEqual(len(first), 3)
        uids = [l.split()[1] for l in first]
        self.assertEqual(len(set(uids)), 3)
        for u in uids:
            self.assertRegex(u.decode(), r"^\d+\.\d+$")
        self.assertEqual(c.uidl(2), b"+OK 2 " + uids[1])
        c.dele(1)
        c.quit()
        c.close()
        self.send(inbox, pw, make_message("u3"))
        c = self.pop(inbox, pw)
        try:
            second = [l.split()[1] for l in c.uidl()[1]]
            self.assertEqual(second[:2], uids[1:], "UIDLs changed between sessions")
            self.assertNotIn(second[2], uids, "a UIDL was reused")
            c.quit()
        finally:
            c.close()

    def test_dele_then_quit_removes(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("d%d" % i)) for i in range(3)]
        c = self.pop(inbox, pw)
        try:
            self.assertEqual(c.dele(2), b"+OK Message 2 deleted")
            with self.assertRaises(poplib.error_proto):
                c.retr(2)
            with self.assertRaises(poplib.error_proto):
                c.dele(2)
            with self.assertRaises(poplib.error_proto):
                c.list(2)
            self.assertEqual(c.stat()[0], 2)
            self.assertEqual([l.split()[0] for l in c.list()[1]], [b"1", b"3"])
            # Not removed before QUIT.
            self.assertEqual(self.server.message_ids(inbox), ids)
            resp = c.quit()
            self.assertTrue(resp.startswith(b"+OK"), resp)
        finally:
            c.close()
        self.assertEqual(self.server.message_ids(inbox), [ids[0], ids[2]])

    def test_dele_then_dropped_connection_deletes_nothing(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("x%d" % i)) for i in range(2)]
        r = self.login_raw(inbox, pw)
        self.assertEqual(r.cmd("DELE 1")[:3], b"+OK")
        self.assertEqual(r.cmd("DELE 2")[:3], b"+OK")
        r.close()
        c = self.wait_unlocked(inbox, pw)
        try:
            self.assertEqual(c.stat()[0], 2)
            c.quit()
        finally:
            c.close()
        self.assertEqual(self.server.message_ids(inbox), ids)

    def test_rset(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("r%d" % i)) for i in range(2)]
        c = self.pop(inbox, pw)
        try:
            c.dele(1)
            c.dele(2)
            self.assertEqual(c.stat(), (0, 0))
            resp = c.rset()
            self.assertTrue(resp.startswith(b"+OK"), resp)
            self.assertEqual(c.stat()[0], 2)
            c.quit()
        finally:
            c.close()
        self.assertEqual(self.server.message_ids(inbox), ids)

    def test_in_use(self):
        inbox, pw = self.new_inbox()
        self.send(inbox, pw, make_message("lock"))
        first = self.pop(inbox, pw)
        try:
            second = self.pop()
            second.user(inbox)
            with self.assertRaises(poplib.error_proto) as cm:
                second.pass_(pw)
            self.assertErr(cm.exception, "IN-USE")
            # APOP and another inbox are not affected.
            other, opw = self.new_inbox()
            c = self.pop(other, opw)
            c.quit()
            c.close()
            first.quit()
            # Once the first is gone, the second may log in.
            second.user(inbox)
            second.pass_(pw)
            self.assertEqual(second.stat()[0], 1)
            second.quit()
            second.close()
        finally:
            first.close()

    def test_retr_sets_seen(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("s%d" % i)) for i in range(2)]
        self.assertFalse(self.seen(ids[0]))
        c = self.pop(inbox, pw)
        try:
            c.retr(2)
            self.assertTrue(self.seen(ids[1]))
            self.assertFalse(self.seen(ids[0]))
            c.quit()
        finally:
            c.close()

    def test_imap_sees_seen_and_expunge(self):
        """A message retrieved by POP3 is \\Seen in IMAP; DELE+QUIT reaches
        an IMAP session with INBOX selected as EXPUNGE."""
        if "imap" not in self.server.addrs:
            self.skipTest("no IMAP listener in this version")
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("i%d" % i)) for i in range(2)]
        imap = imaplib.IMAP4(*self.server.addr("imap"), timeout=SOCK_TIMEOUT)
        try:
            imap.login(inbox, pw)
            typ, data = imap.select("INBOX")
            self.assertEqual((typ, data), ("OK", [b"2"]))
            c = self.pop(inbox, pw)
            try:
                c.retr(1)
                c.dele(2)
                c.quit()
            finally:
                c.close()
            typ, data = imap.fetch("1", "(FLAGS)")
            self.assertEqual(typ, "OK")
            self.assertIn(b"\\Seen", data[0])
            deadline = time.monotonic() + 5
            expunged = None
            while expunged is None and time.monotonic() < deadline:
                imap.noop()
                expunged = imap.response("EXPUNGE")[1]
                expunged = expunged if expunged and expunged[0] else None
                if expunged is None:
                    time.sleep(0.05)
            self.assertEqual(expunged, [b"2"])
            imap.logout()
        finally:
            try:
                imap.shutdown()
            except OSError:
                pass
        self.assertEqual(self.server.message_ids(inbox), ids[:1])

    def test_snapshot_ignores_new_mail(self):
        inbox, pw = self.new_inbox()
        self.send(inbox, pw, make_message("before"))
        c = self.pop(inbox, pw)
        try:
            self.assertEqual(c.stat()[0], 1)
            self.send(inbox, pw, make_message("after"))
            self.assertEqual(c.stat()[0], 1)
            with self.assertRaises(poplib.error_proto):
                c.retr(2)
            c.quit()
        finally:
            c.close()
        c = self.pop(inbox, pw)
        try:
            self.assertEqual(c.stat()[0], 2)
            c.quit()
        finally:
            c.close()

    def test_message_removed_by_another_client(self):
        inbox, pw = self.new_inbox()
        ids = [self.send(inbox, pw, make_message("g%d" % i)) for i in range(2)]
        r = self.login_raw(inbox, pw)
        try:
            self.server.cli_ok("message", "del", ids[0])
            self.assertErr(r.cmd("RETR 1"))
            self.assertEqual(r.cmd("DELE 1")[:3], b"+OK")
            self.assertEqual(r.cmd("RETR 2")[:3], b"+OK")
            r.multiline_raw()
            self.assertEqual(r.cmd("QUIT")[:3], b"+OK")
        finally:
            r.close()
        self.assertEqual(self.server.message_ids(inbox), [ids[1]])

    def test_large_message_byte_for_byte(self):
        inbox, pw = self.new_inbox()
        line = b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-+/=~!"
        body = []
        size = 0
        i = 0
        while size < 10 * 1024 * 1024:
            l = (b"." if i % 97 == 0 else b"") + (b"%08d " % i) + line
            body.append(l)
            size += len(l) + 2
            i += 1
        msg_id = self.send(inbox, pw, make_message("big", body))
        stored = self.server.message_bytes(msg_id)
        self.assertGreater(len(stored), 10 * 1024 * 1024)
        for tls in (False, True):
            r = self.login_raw(inbox, pw, tls=tls)
            try:
                self.assertEqual(r.cmd("LIST 1"), b"+OK 1 %d" % len(stored))
                self.assertEqual(r.cmd("RETR 1"), b"+OK %d octets" % len(stored))
                got = r.multiline_raw()
                if got != stuff(stored):
                    self.fail("RETR differs: %s" % harness.describe_difference(got, stuff(stored)))
                # The session is usable after the stream.
                self.assertEqual(r.cmd("NOOP"), b"+OK")
                self.assertEqual(r.cmd("QUIT")[:3], b"+OK")
            finally:
                r.close()

    def test_slow_reader_gets_everything(self):
        """A client that starts reading late and then reads in small
        pieces: the server waits for its output to drain, and every byte
        arrives in order, followed by the next reply."""
        inbox, pw = self.new_inbox()
        body = [b"%06d slow reader line with some padding to make it longer" % i
                for i in range(40000)]
        msg_id = self.send(inbox, pw, make_message("slow", body))
        stored = self.server.message_bytes(msg_id)
        r = self.login_raw(inbox, pw)
        try:
            r.send("RETR 1\r\nNOOP\r\n")
            time.sleep(0.5)
            want = b"+OK %d octets\r\n" % len(stored) + stuff(stored) + b"+OK\r\n"
            got = r.buf
            r.buf = b""
            reads = 0
            while len(got) < len(want):
                chunk = r.sock.recv(4096)
                if not chunk:
                    break
                got += chunk
                reads += 1
                if reads < 200:
                    time.sleep(0.002)
            if got != want:
                self.fail("slow RETR differs: %s" % harness.describe_difference(got, want))
        finally:
            r.close()

    def test_pipelining(self):
        inbox, pw = self.new_inbox()
        msg_id = self.send(inbox, pw, make_message("pipe"))
        stored = self.server.message_bytes(msg_id)
        r, _ = self.raw()
        try:
            r.send("USER %s\r\nPASS %s\r\nSTAT\r\nRETR 1\r\nTOP 1 0\r\nLIST\r\nQUIT\r\n"
                   % (inbox, pw))
            self.assertEqual(r.line()[:3], b"+OK")
            self.assertEqual(r.line()[:3], b"+OK")
            self.assertEqual(r.line(), b"+OK 1 %d" % len(stored))
            self.assertEqual(r.line(), b"+OK %d octets" % len(stored))
            self.assertEqual(r.multiline_raw(), stuff(stored))
            self.assertEqual(r.line()[:3], b"+OK")
            r.multiline_raw()
            self.assertEqual(r.line()[:3], b"+OK")
            self.assertEqual(r.multiline_raw(), b"1 %d\r\n.\r\n" % len(stored))
            self.assertEqual(r.line()[:3], b"+OK")
            self.assertTrue(r.closed_by_peer())
        finally:
            r.close()

    def test_auth_sasl(self):
        inbox, pw = self.new_inbox()
        plain = base64.b64encode(b"\0" + inbox.encode() + b"\0" + pw.encode()).decode()
        # PLAIN with an initial response.
        r, _ = self.raw()
        try:
            self.assertEqual(r.cmd("AUTH PLAIN " + plain)[:3], b"+OK")
            self.assertEqual(r.cmd("STAT"), b"+OK 0 0")
            self.assertEqual(r.cmd("QUIT")[:3], b"+OK")
        finally:
            r.close()
        # PLAIN with an empty challenge.
        r, _ = self.raw()
        try:
            self.assertEqual(r.cmd("AUTH PLAIN"), b"+ ")
            self.assertEqual(r.cmd(plain)[:3], b"+OK")
        finally:
            r.close()
        # LOGIN.
        r, _ = self.raw()
        try:
            self.assertEqual(base64.b64decode(r.cmd("AUTH LOGIN")[2:]), b"Username:")
            self.assertEqual(base64.b64decode(r.cmd(harness.b64(inbox))[2:]), b"Password:")
            self.assertEqual(r.cmd(harness.b64(pw))[:3], b"+OK")
        finally:
            r.close()
        # CRAM-MD5.
        r, _ = self.raw()
        try:
            challenge = base64.b64decode(r.cmd("AUTH CRAM-MD5")[2:])
            digest = hmac.new(pw.encode(), challenge, hashlib.md5).hexdigest()
            self.assertEqual(r.cmd(harness.b64("%s %s" % (inbox, digest)))[:3], b"+OK")
        finally:
            r.close()
        # Cancel, bad base64, wrong password, unknown mechanism, the listing.
        r, _ = self.raw()
        try:
            self.assertEqual(r.cmd("AUTH LOGIN")[:1], b"+")
            self.assertErr(r.cmd("*"))
            self.assertEqual(r.cmd("AUTH PLAIN")[:1], b"+")
            self.assertErr(r.cmd("!!!not base64"))
            bad = base64.b64encode(b"\0" + inbox.encode() + b"\0wrong").decode()
            self.assertErr(r.cmd("AUTH PLAIN " + bad), "AUTH")
            self.assertErr(r.cmd("AUTH DIGEST-MD5"))
            self.assertEqual(r.cmd("AUTH")[:3], b"+OK")
            self.assertEqual(r.multiline_raw(), b"PLAIN\r\nLOGIN\r\nCRAM-MD5\r\n.\r\n")
            self.assertEqual(r.cmd("AUTH PLAIN " + plain)[:3], b"+OK")
            self.assertErr(r.cmd("AUTH PLAIN " + plain))
        finally:
            r.close()

    def test_out_of_state_and_bad_commands(self):
        r, _ = self.raw()
        try:
            for cmd in ("STAT", "LIST", "RETR 1", "DELE 1", "NOOP", "RSET", "TOP 1 1",
                        "UIDL", "PASS x", "XYZZY", "", "USER"):
                self.assertErr(r.cmd(cmd))
        finally:
            r.close()
        # A new connection: the error count of the first is near its limit.
        r, _ = self.raw()
        try:
            self.assertEqual(r.cmd("user dev")[:3], b"+OK")
            self.assertEqual(r.cmd("pass dev")[:3], b"+OK")
            for cmd in ("USER dev", "PASS dev", "APOP dev 0123", "AUTH PLAIN", "STLS",
                        "RETR", "RETR 0", "RETR x", "RETR 99999", "DELE -1", "LIST 1 2",
                        "STAT 1"):
                self.assertErr(r.cmd(cmd))
            self.assertEqual(r.cmd("noop"), b"+OK")
        finally:
            r.close()

    def test_long_line(self):
        r, _ = self.raw()
        try:
            self.assertErr(r.cmd("USER " + "a" * 300))
            # 255 octets with CRLF is the limit; one more is too long.
            self.assertEqual(r.cmd("USER " + "a" * 248)[:3], b"+OK")
            self.assertErr(r.cmd("USER " + "a" * 249))
            self.assertErr(r.cmd("NOOP " + "x" * 100000))
            self.assertEqual(r.cmd("USER dev")[:3], b"+OK")
            self.assertEqual(r.cmd("PASS dev")[:3], b"+OK")
            self.assertEqual(r.cmd("NOOP"), b"+OK")
        finally:
            r.close()

    def test_too_many_bad_commands_close(self):
        r, _ = self.raw()
        try:
            for _ in range(19):
                self.assertErr(r.cmd("BOGUS"))
            r.send("BOGUS\r\n")
            self.assertErr(r.line())
            self.assertErr(r.line())
            self.assertTrue(r.closed_by_peer())
        finally:
            r.close()

    def test_failed_logins_are_delayed_and_limited(self):
        r, _ = self.raw()
        try:
            times = []
            for i in range(10):
                self.assertEqual(r.cmd("USER dev")[:3], b"+OK")
                start = time.monotonic()
                self.assertErr(r.cmd("PASS wrong%d" % i), "AUTH")
                times.append(time.monotonic() - start)
            self.assertGreater(times[0], 0.05)
            self.assertGreater(times[-1], times[0] + 0.3, "delay does not grow: %r" % times)
            self.assertErr(r.line())
            self.assertTrue(r.closed_by_peer())
        finally:
            r.close()

    def test_delay_does_not_block_others(self):
        r, _ = self.raw()
        try:
            for i in range(5):
                r.cmd("USER dev")
                r.cmd("PASS wrong")
            r.send("USER dev\r\nPASS wrong\r\n")
            time.sleep(0.05)
            start = time.monotonic()
            c = self.pop("dev", "dev")
            c.stat()
            c.quit()
            c.close()
            self.assertLess(time.monotonic() - start, 0.4)
        finally:
            r.close()


class TestPOP3NoPlaintext(POP3Case):
    server_args = ("--allow-plaintext-auth", "no")

    def test_capa_before_and_after_tls(self):
        c = self.pop()
        try:
            capa = c.capa()
            self.assertNotIn("USER", capa)
            self.assertEqual(capa["SASL"], ["CRAM-MD5"])
            self.assertIn("STLS", capa)
            c.stls(insecure_context())
            capa = c.capa()
            self.assertIn("USER", capa)
            self.assertEqual(sorted(capa["SASL"]), ["CRAM-MD5", "LOGIN", "PLAIN"])
            c.user("dev")
            c.pass_("dev")
            c.quit()
        finally:
            c.close()

    def test_plaintext_refused_before_tls(self):
        plain = harness.auth_plain("dev", "dev")
        r, _ = self.raw()
        try:
            self.assertErr(r.cmd("USER dev"), "AUTH")
            self.assertErr(r.cmd("PASS dev"), "AUTH")
            self.assertErr(r.cmd("AUTH PLAIN " + plain), "AUTH")
            self.assertErr(r.cmd("AUTH LOGIN"), "AUTH")
            self.assertEqual(r.cmd("AUTH")[:3], b"+OK")
            self.assertEqual(r.multiline_raw(), b"CRAM-MD5\r\n.\r\n")
        finally:
            r.close()

    def test_apop_and_cram_allowed(self):
        c = self.pop()
        try:
            c.apop("dev", "dev")
            c.quit()
        finally:
            c.close()
        r, _ = self.raw()
        try:
            challenge = base64.b64decode(r.cmd("AUTH CRAM-MD5")[2:])
            digest = hmac.new(b"dev", challenge, hashlib.md5).hexdigest()
            self.assertEqual(r.cmd(harness.b64("dev " + digest))[:3], b"+OK")
            self.assertEqual(r.cmd("QUIT")[:3], b"+OK")
        finally:
            r.close()

    def test_pop3s_allows_user_pass(self):
        c = self.pop("dev", "dev", tls=True)
        try:
            self.assertIn("USER", c.capa())
            c.quit()
        finally:
            c.close()


class TestPOP3AcceptAny(POP3Case):
    server_args = ("--auth-accept-any", "yes")

    def test_any_credentials_name_the_inbox(self):
        name = unique_inbox("any")
        c = self.pop(name, "whatever")
        try:
            self.assertEqual(c.stat(), (0, 0))
            c.quit()
        finally:
            c.close()
        names = [list(row.values())[0] for row in self.server.inbox_rows()]
        self.assertIn(name, names)
        c = self.pop()
        try:
            c.apop(unique_inbox("apop"), "anything")
            c.quit()
        finally:
            c.close()


class TestPOP3Timeouts(POP3Case):
    # login-timeout before login, pop3-timeout after (test_limits.py has
    # the two apart).
    server_args = ("--pop3-timeout", "1", "--login-timeout", "1")

    def test_idle_timeout(self):
        r, _ = self.raw()
        try:
            start = time.monotonic()
            self.assertEqual(r.line(), b"-ERR Disconnected for inactivity")
            self.assertTrue(r.closed_by_peer())
            self.assertLess(time.monotonic() - start, 5)
        finally:
            r.close()


class TestPOP3Shutdown(POP3Case):

    def test_shutdown_notice(self):
        server = harness.Server().start()
        try:
            r = RawPOP3(server.addr("pop3"))
            r.line()
            r.cmd("USER dev")
            r.cmd("PASS dev")
            server.proc.send_signal(15)
            self.assertEqual(r.line(), b"-ERR [SYS/TEMP] server shutting down")
            self.assertTrue(r.closed_by_peer())
            r.close()
            self.assertEqual(server.proc.wait(harness.STOP_TIMEOUT), 0)
        finally:
            server._kill()
            server._cleanup()


if __name__ == "__main__":
    harness.main()

"""IMAP COMPRESS=DEFLATE (RFC 4978) on the real binary: a raw client that
wraps its socket in raw deflate (zlib, window bits -15, Z_SYNC_FLUSH after
every command) once the server answered "OK", over plain IMAP, implicit
TLS and STARTTLS; large FETCH and APPEND through the compressed stream,
IDLE, pipelining right behind the COMPRESS command, errors.

Python standard library only; every socket has a timeout."""

import base64
import os
import random
import re
import smtplib
import socket
import time
import zlib

import harness
from harness import CRLF, SOCK_TIMEOUT, insecure_context

_seq = [0]


def new_inbox(server):
    _seq[0] += 1
    name = "z%d-%d" % (os.getpid(), _seq[0])
    server.inbox_add(name, "pw-" + name)
    return name, "pw-" + name


def deliver(server, user, password, msg):
    host, port = server.addr("smtp")
    with smtplib.SMTP(host, port, timeout=SOCK_TIMEOUT) as s:
        s.login(user, password)
        s.sendmail("sender@example.test", ["rcpt@example.test"], msg)


def message(subject, body):
    return (b"From: Sender <sender@example.test>\r\nTo: rcpt@example.test\r\n"
            b"Subject: " + subject.encode() + b"\r\n"
            b"Date: Tue, 04 Mar 2025 10:20:30 +0000\r\n\r\n" + body)


def random_body(size, seed):
    """Base64 lines of random bytes: hardly compressible."""
    rnd = random.Random(seed)
    raw = bytes(rnd.getrandbits(8) for _ in range(size * 3 // 4))
    b64 = base64.b64encode(raw)
    return b"".join(b64[i:i + 76] + CRLF for i in range(0, len(b64), 76))


class ZClient:
    """IMAP over a socket that turns into a raw deflate stream both ways
    after compress()."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = b""
        self.inflate = None
        self.deflate = None
        self.wire_in = 0      # bytes received on the socket
        self.wire_out = 0

    @classmethod
    def connect(cls, server, tls=False):
        sock = socket.create_connection(server.addr("imaps" if tls else "imap"),
                                        timeout=SOCK_TIMEOUT)
        if tls:
            sock = insecure_context().wrap_socket(sock)
        c = cls(sock)
        greeting = c.line()
        if not greeting.startswith(b"* OK"):
            raise AssertionError("greeting %r" % greeting)
        return c

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- bytes

    def compressed(self, data):
        return self.deflate.compress(data) + self.deflate.flush(zlib.Z_SYNC_FLUSH)

    def send(self, data):
        if self.deflate is not None:
            data = self.compressed(data)
        self.wire_out += len(data)
        self.sock.sendall(data)

    def send_raw(self, data):
        self.sock.sendall(data)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("connection closed by the server (pending %r)" % self.buf[:200])
        self.wire_in += len(chunk)
        if self.inflate is not None:
            chunk = self.inflate.decompress(chunk)
        self.buf += chunk

    def line(self):
        while True:
            idx = self.buf.find(CRLF)
            if idx >= 0:
                line, self.buf = self.buf[:idx], self.buf[idx + 2:]
                return line
            self._fill()

    def exact(self, n):
        while len(self.buf) < n:
            self._fill()
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def start_compression(self):
        """Both directions compressed from here; whatever arrived behind
        the OK line is compressed data already."""
        self.inflate = zlib.decompressobj(-15)
        self.deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        pending, self.buf = self.buf, b""
        if pending:
            self.buf = self.inflate.decompress(pending)

    # -- IMAP

    def response(self, tag):
        """Lines up to the tagged one; a line with literals comes back as
        one bytes object with the literals inline. Returns (untagged, tagged)."""
        untagged = []
        while True:
            line = self.line()
            while True:
                m = re.search(rb"\{(\d+)\}$", line)
                if not m:
                    break
                line += CRLF + self.exact(int(m.group(1)))
                line += self.line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line
            untagged.append(line)

    def cmd(self, tag, text):
        self.send(tag.encode() + b" " + text.encode() + CRLF)
        return self.response(tag)

    def ok(self, tag, text):
        untagged, tagged = self.cmd(tag, text)
        if not tagged.startswith(tag.encode() + b" OK"):
            raise AssertionError("%s %s: %r (after %r)" % (tag, text, tagged, untagged[-3:]))
        return untagged

    def login(self, user, password):
        self.ok("L", 'LOGIN "%s" "%s"' % (user, password))

    def compress(self):
        _, tagged = self.cmd("Z", "COMPRESS DEFLATE")
        if not tagged.startswith(b"Z OK"):
            raise AssertionError("COMPRESS: %r" % tagged)
        self.start_compression()
        return tagged

    def fetch_body(self, tag, uid):
        untagged = self.ok(tag, "UID FETCH %d (BODY.PEEK[])" % uid)
        for line in untagged:
            m = re.match(rb"\* \d+ FETCH \(.*BODY\[\] \{(\d+)\}\r\n", line, re.S)
            if m:
                start = m.end()
                return line[start:start + int(m.group(1))]
        raise AssertionError("no BODY[] in %r" % [l[:100] for l in untagged])


class CompressTest(harness.TestCase):

    def session(self, tls=False):
        user, password = new_inbox(self.server)
        c = ZClient.connect(self.server, tls=tls)
        self.addCleanup(c.close)
        c.login(user, password)
        return c, user, password

    def capabilities(self, c):
        untagged = c.ok("C", "CAPABILITY")
        caps = [l for l in untagged if l.startswith(b"* CAPABILITY ")]
        self.assertEqual(len(caps), 1, untagged)
        return caps[0].split()[2:]

    def test_advertised(self):
        c = ZClient.connect(self.server)
        self.addCleanup(c.close)
        self.assertIn(b"COMPRESS=DEFLATE", self.capabilities(c))

    def test_not_before_login(self):
        c = ZClient.connect(self.server)
        self.addCleanup(c.close)
        _, tagged = c.cmd("a", "COMPRESS DEFLATE")
        self.assertTrue(tagged.startswith(b"a BAD"), tagged)
        # still plain text
        c.ok("b", "NOOP")

    def test_bad_arguments(self):
        c, _, _ = self.session()
        for tag, text in (("a", "COMPRESS"), ("b", "COMPRESS GZIP"),
                          ("c", "COMPRESS DEFLATE extra"), ("d", 'COMPRESS "DEFLATE" X')):
            _, tagged = c.cmd(tag, text)
            self.assertTrue(tagged.startswith(tag.encode() + b" BAD"), tagged)
        c.ok("e", "NOOP")

    def test_commands_and_large_fetch(self):
        c, user, password = self.session()
        small = message("small one", b"Hello, compressed world.\r\n" * 20)
        big_body = (b"The same line again and again, which compresses well.\r\n" * 40000 +
                    random_body(600 * 1024, 1))
        big = message("big one", big_body)
        deliver(self.server, user, password, small)
        deliver(self.server, user, password, big)
        tagged = c.compress()
        self.assertEqual(tagged, b"Z OK DEFLATE active")
        untagged = c.ok("s", "SELECT INBOX")
        self.assertIn(b"* 2 EXISTS", untagged)
        _, tagged = c.cmd("z2", "COMPRESS DEFLATE")
        self.assertTrue(tagged.startswith(b"z2 NO [COMPRESSIONACTIVE]"), tagged)
        self.assertIn(b"COMPRESS=DEFLATE", self.capabilities(c))
        wire_before = c.wire_in
        body = c.fetch_body("f1", 2)
        self.assertEqual(harness.strip_received(body), harness.normalize(big))
        wire = c.wire_in - wire_before
        self.assertLess(wire, len(body), "the FETCH was not compressed on the wire")
        body = c.fetch_body("f2", 1)
        self.assertEqual(harness.strip_received(body), harness.normalize(small))
        untagged = c.ok("h", "UID FETCH 1:* (FLAGS RFC822.SIZE ENVELOPE)")
        self.assertEqual(len(untagged), 2, untagged)
        # many commands in one compressed write
        c.send(b"".join(b"p%d NOOP\r\n" % i for i in range(200)))
        for i in range(200):
            _, tagged = c.response("p%d" % i)
            self.assertTrue(tagged.startswith(b"p%d OK" % i), tagged)
        untagged = c.ok("o", "LOGOUT")
        self.assertTrue(any(l.startswith(b"* BYE") for l in untagged), untagged)
        with self.assertRaises(EOFError):
            c.line()

    def test_pipelined_behind_compress(self):
        """Compressed commands sent in the same write as COMPRESS itself
        are kept and read once compression is on."""
        c, _, _ = self.session()
        deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        tail = deflate.compress(b"n1 NOOP\r\nn2 SELECT INBOX\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH)
        c.send_raw(b"Z COMPRESS DEFLATE\r\n" + tail)
        _, tagged = c.response("Z")
        self.assertEqual(tagged, b"Z OK DEFLATE active")
        c.start_compression()
        c.deflate = deflate
        _, tagged = c.response("n1")
        self.assertTrue(tagged.startswith(b"n1 OK"), tagged)
        _, tagged = c.response("n2")
        self.assertTrue(tagged.startswith(b"n2 OK"), tagged)
        c.ok("n3", "NOOP")

    def test_large_append(self):
        c, _, _ = self.session()
        c.compress()
        msg = message("appended", random_body(900 * 1024, 2) +
                      b"Repeated text that deflates to little.\r\n" * 30000)
        c.send(b"A APPEND INBOX (\\Seen) {%d}\r\n" % len(msg))
        cont = c.line()
        self.assertTrue(cont.startswith(b"+"), cont)
        # in pieces, each flushed, as a client streaming a file would
        for i in range(0, len(msg), 100000):
            c.send(msg[i:i + 100000])
        c.send(CRLF)
        _, tagged = c.response("A")
        self.assertTrue(tagged.startswith(b"A OK"), tagged)
        c.ok("s", "SELECT INBOX")
        self.assertEqual(c.fetch_body("f", 1), msg)

    def test_idle(self):
        c, user, password = self.session()
        c.compress()
        c.ok("s", "SELECT INBOX")
        c.send(b"i IDLE\r\n")
        self.assertTrue(c.line().startswith(b"+"))
        t0 = time.monotonic()
        deliver(self.server, user, password, message("during idle", b"new\r\n"))
        c.sock.settimeout(5)
        line = c.line()
        elapsed = time.monotonic() - t0
        self.assertEqual(line, b"* 1 EXISTS")
        self.assertLess(elapsed, 5)
        c.sock.settimeout(SOCK_TIMEOUT)
        c.send(b"DONE\r\n")
        untagged, tagged = c.response("i")
        self.assertTrue(tagged.startswith(b"i OK"), (untagged, tagged))

    def test_over_implicit_tls(self):
        c, user, password = self.session(tls=True)
        deliver(self.server, user, password, message("tls", random_body(300 * 1024, 3)))
        c.compress()
        c.ok("s", "SELECT INBOX")
        body = c.fetch_body("f", 1)
        self.assertIn(b"Subject: tls", body)
        c.ok("n", "NOOP")

    def test_over_starttls(self):
        user, password = new_inbox(self.server)
        c = ZClient.connect(self.server)
        self.addCleanup(c.close)
        c.ok("t", "STARTTLS")
        c.sock = insecure_context().wrap_socket(c.sock)
        c.login(user, password)
        deliver(self.server, user, password, message("starttls", random_body(300 * 1024, 4)))
        c.compress()
        c.ok("s", "SELECT INBOX")
        body = c.fetch_body("f", 1)
        self.assertIn(b"Subject: starttls", body)
        _, tagged = c.cmd("t2", "STARTTLS")
        self.assertTrue(tagged.startswith(b"t2 BAD"), tagged)

    def test_slow_reader(self):
        """A client that stops reading during a large compressed FETCH gets
        the whole body once it reads again."""
        c, user, password = self.session()
        body = random_body(3 * 1024 * 1024, 5)
        deliver(self.server, user, password, message("slow", body))
        c.compress()
        c.ok("s", "SELECT INBOX")
        c.send(b"f UID FETCH 1 (BODY.PEEK[])\r\n")
        time.sleep(1.0)
        untagged, tagged = c.response("f")
        self.assertTrue(tagged.startswith(b"f OK"), tagged)
        self.assertEqual(len(untagged), 1)
        self.assertIn(body, untagged[0])

    def test_corrupt_stream_closes(self):
        c, _, _ = self.session()
        c.compress()
        c.send_raw(b"\xff\xfe this is not deflate data \x00\x01\x02\r\n" * 4)
        c.sock.settimeout(5)
        with self.assertRaises((EOFError, ConnectionResetError)):
            while True:
                c.line()
        # the server goes on
        c2, _, _ = self.session()
        c2.ok("n", "NOOP")


if __name__ == "__main__":
    harness.main()
